//! Rendering only what changed: after a commit, an app whose inputs are
//! the same as in the previous load keeps its previous render instead of
//! being rendered again.
//!
//! "The same inputs" is decided only where it can be decided exactly: a
//! single-source plain-directory app (the directory renderer, chosen or
//! detected; no chart; no digest pinning, which asks a registry) at a
//! commit. Its output is a function of its Application (compared whole,
//! but for `targetRevision`, which only picks the commit, and the file it
//! was read from) and the bytes of its directory, and git names those bytes: the tree id
//! of the directory in the commit ([`Sources::self_contained_tree_id`],
//! which refuses directories holding symlinks, submodules or jsonnet files,
//! whose content can come from elsewhere in the repository). Every other
//! app — helm, kustomize, jinja (which sees the commit sha), transforms,
//! multi-source apps, sets, failed renders — is rendered again on every
//! load, so a shared values file or a kustomize base changing re-renders
//! every app that could read it.
//!
//! [`AppInputs`] records, per eligible app of a loaded tree, what the next
//! load compares against; [`Unchanged`] is the [`Reuse`] that compares.

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::model::{AppName, Application, RendererSpec};
use crate::render::{Rendered, RendererKind};
use crate::source::{Checkout, Revision, Sources};

use super::changes::path_under;
use crate::tree::{AppNode, AppTree, NodeState, Reuse};

/// What one app was rendered from, for an app whose render can be kept.
#[derive(Debug, Clone)]
pub struct AppInputs {
    app: Application,
    /// The repository key (see `Sources::repo_key`).
    repo: Option<String>,
    /// The commit it was rendered at.
    commit: String,
    /// The git tree id of its directory in that commit.
    dir: String,
    /// The checkout it was rendered from (its directory holds the app's
    /// path as of `commit`).
    checkout: Arc<Checkout>,
    rendered: Arc<Rendered>,
}

/// Inputs of every app of a tree whose render a later load may keep.
pub type TreeInputs = BTreeMap<AppName, AppInputs>;

/// Whether `app`'s output depends only on its Application and its directory.
fn eligible(app: &Application) -> bool {
    app.extra_sources.is_empty()
        && app.source.chart.is_none()
        && !app.images.pin_digests
        && matches!(
            app.source.renderer,
            RendererSpec::Auto | RendererSpec::Directory(_)
        )
}

/// Whether two Applications are the same but for `targetRevision` (which
/// only picks the commit: the directory's tree id stands for its content)
/// and where the manifest was read from (shown in messages, never
/// rendered). The controller pins its root apps to the root commit and
/// reads them from that commit's export, so without this a root app would
/// never keep its render.
fn same_but_revision(a: &Application, b: &Application) -> bool {
    if a.source.target_revision == b.source.target_revision && a.origin == b.origin {
        return a == b;
    }
    let mut b = b.clone();
    b.source.target_revision = a.source.target_revision.clone();
    b.origin = a.origin.clone();
    *a == b
}

/// The commit `checkout` holds (None: a work tree or a chart).
fn commit_of(checkout: &Checkout) -> Option<&str> {
    match &checkout.revision {
        crate::source::Revision::Commit { sha, .. } => Some(sha),
        _ => None,
    }
}

/// The [`Reuse`] of a load that follows another: keeps the previous render
/// of an eligible app whose Application and repository are unchanged and
/// whose directory holds no file the commits between the two loads changed
/// (git's diff of the two commits, made once per repository and pair of
/// commits: no per-app lookup in git, nothing exported). Remembers the
/// tree ids of the apps it kept for [`inputs_of`].
pub struct Unchanged<'a> {
    previous: &'a TreeInputs,
    sources: &'a Sources,
    seen: Mutex<BTreeMap<AppName, Option<String>>>,
    /// Changed paths per (repository key, old commit, new commit); None:
    /// the diff could not be had (nothing is kept then).
    diffs: Mutex<DiffMemo>,
}

type DiffMemo = BTreeMap<(Option<String>, String, String), Option<Arc<Vec<String>>>>;

impl<'a> Unchanged<'a> {
    pub fn new(previous: &'a TreeInputs, sources: &'a Sources) -> Self {
        Unchanged {
            previous,
            sources,
            seen: Mutex::default(),
            diffs: Mutex::default(),
        }
    }

    /// The directory tree ids of the apps kept (for [`inputs_of`]).
    pub fn into_seen(self) -> BTreeMap<AppName, Option<String>> {
        self.seen.into_inner()
    }

    /// The paths that differ between `old` and `new` of `repo_url`.
    fn changed(
        &self,
        repo: &Option<String>,
        repo_url: Option<&str>,
        old: &str,
        new: &str,
    ) -> Option<Arc<Vec<String>>> {
        let key = (repo.clone(), old.to_string(), new.to_string());
        let mut diffs = self.diffs.lock();
        diffs
            .entry(key)
            .or_insert_with(|| {
                self.sources
                    .changed_paths(repo_url, old, new)
                    .ok()
                    .map(Arc::new)
            })
            .clone()
    }
}

/// Whether the directory `dir` holds none of `changed` (nor is one of them,
/// nor lies under one: a directory replaced by a file).
fn untouched(changed: &[String], dir: &str) -> bool {
    !changed
        .iter()
        .any(|p| path_under(p, dir) || path_under(dir, p))
}

impl Reuse for Unchanged<'_> {
    fn kept(&self, node: &AppNode) -> Option<(Arc<Checkout>, Arc<Rendered>)> {
        let previous = self.previous.get(&node.app.name)?;
        if !eligible(&node.app) || !same_but_revision(&previous.app, &node.app) {
            return None;
        }
        let repo = self.sources.repo_key(node.repo_url.as_deref()).ok();
        if repo != previous.repo {
            return None;
        }
        let revision = self
            .sources
            .resolve_commit(node.repo_url.as_deref(), node.revision.as_ref())
            .ok()??;
        let Revision::Commit { sha, .. } = &revision else {
            return None;
        };
        let path = node.app.source.path.as_path().to_string_lossy();
        let same = *sha == previous.commit
            || self
                .changed(&repo, node.repo_url.as_deref(), &previous.commit, sha)
                .is_some_and(|c| untouched(&c, &path));
        if !same {
            return None;
        }
        self.seen
            .lock()
            .insert(node.app.name.clone(), Some(previous.dir.clone()));
        let checkout = Checkout::new(
            previous.checkout.repo.clone(),
            previous.checkout.dir.clone(),
            revision,
        );
        Some((Arc::new(checkout), previous.rendered.clone()))
    }
}

/// The inputs of every eligible, rendered app of `tree` (tree ids already
/// computed during the load are in `seen`).
pub fn inputs_of(
    tree: &AppTree,
    sources: &Sources,
    seen: &BTreeMap<AppName, Option<String>>,
) -> TreeInputs {
    let mut out = TreeInputs::new();
    for n in tree.nodes() {
        let NodeState::Rendered(rendered) = &n.state else {
            continue;
        };
        if rendered.renderer != RendererKind::Directory || !eligible(&n.app) {
            continue;
        }
        let Some(sha) = n.checkout.as_deref().and_then(commit_of) else {
            continue;
        };
        let dir = match seen.get(&n.app.name) {
            Some(d) => d.clone(),
            None => sources.self_contained_tree_id(n.repo_url.as_deref(), sha, &n.app.source.path),
        };
        let Some(dir) = dir else { continue };
        let Some(checkout) = n.checkout.clone() else {
            continue;
        };
        out.insert(
            n.app.name.clone(),
            AppInputs {
                app: n.app.clone(),
                repo: sources.repo_key(n.repo_url.as_deref()).ok(),
                commit: sha.to_string(),
                dir,
                checkout,
                rendered: rendered.clone(),
            },
        );
    }
    out
}

/// How many apps of `now` kept their render from `previous`.
pub fn kept(previous: &TreeInputs, now: &TreeInputs) -> usize {
    now.iter()
        .filter(|(name, i)| {
            previous
                .get(*name)
                .is_some_and(|p| Arc::ptr_eq(&p.rendered, &i.rendered))
        })
        .count()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::controller::workspace::{Loaded, RepoAccess, RootSource, Workspace};

    fn write(dir: &Path, path: &str, text: &str) {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    fn app(name: &str, path: &str, namespace: &str) -> String {
        format!(
            "apiVersion: kubesync.dev/v1alpha1\nkind: Application\nmetadata: {{name: {name}}}\n\
             spec:\n  source: {{path: {path}}}\n  destination: {{namespace: {namespace}}}\n"
        )
    }

    fn cm(name: &str, value: &str) -> String {
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata: {{v: \"{value}\"}}\n")
    }

    fn commit(dir: &Path) {
        let repo = git2::Repository::open(dir).unwrap();
        let mut index = repo.index().unwrap();
        index
            .add_all(["*"], git2::IndexAddOption::DEFAULT, None)
            .unwrap();
        index.update_all(["*"], None).unwrap();
        index.write().unwrap();
        let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
        let sig = git2::Signature::now("t", "t@example.com").unwrap();
        let parent = repo.head().ok().and_then(|h| h.peel_to_commit().ok());
        let parents: Vec<&git2::Commit> = parent.iter().collect();
        repo.commit(Some("HEAD"), &sig, &sig, "c", &tree, &parents)
            .unwrap();
    }

    struct Fixture {
        repo: tempfile::TempDir,
        _cache: tempfile::TempDir,
        ws: Workspace,
    }

    /// a and c read the shared file through a symlink; b and d are plain.
    fn fixture() -> Fixture {
        let repo = tempfile::tempdir().unwrap();
        let d = repo.path();
        git2::Repository::init(d).unwrap();
        write(
            d,
            "root.yaml",
            "apiVersion: kubesync.dev/v1alpha1\nkind: Application\nmetadata: {name: root}\n\
             spec:\n  tier: system\n  source: {path: apps}\n",
        );
        for n in ["a", "b", "c", "d"] {
            write(
                d,
                &format!("apps/{n}.yaml"),
                &app(n, &format!("objects/{n}"), &format!("ns-{n}")),
            );
            write(
                d,
                &format!("objects/{n}/own.yaml"),
                &cm(&format!("{n}-own"), "1"),
            );
        }
        write(d, "shared/values.yaml", &cm("shared", "1"));
        for n in ["a", "c"] {
            std::os::unix::fs::symlink(
                "../../shared/values.yaml",
                d.join(format!("objects/{n}/shared.yaml")),
            )
            .unwrap();
        }
        commit(d);
        let cache = tempfile::tempdir().unwrap();
        let ws = Workspace::new(
            RootSource::Local {
                manifest: d.join("root.yaml"),
            },
            None,
            Vec::new(),
            Some(cache.path().to_path_buf()),
            2,
            RepoAccess::default(),
        )
        .unwrap();
        Fixture {
            repo,
            _cache: cache,
            ws,
        }
    }

    fn rendered(l: &Loaded, name: &str) -> Arc<Rendered> {
        match &l.tree.get_str(name).unwrap().state {
            NodeState::Rendered(r) => r.clone(),
            NodeState::Failed(f) => panic!("{name} failed: {f}"),
        }
    }

    /// The apps of `now` rendered afresh rather than kept from `before`.
    fn rerendered(before: &Loaded, now: &Loaded) -> Vec<String> {
        now.tree
            .nodes()
            .iter()
            .filter(|n| {
                before.tree.get(&n.app.name).is_none_or(|b| {
                    !Arc::ptr_eq(
                        &rendered(before, b.app.name.as_str()),
                        &rendered(now, n.app.name.as_str()),
                    )
                })
            })
            .map(|n| n.app.name.to_string())
            .collect()
    }

    /// What each app renders, as JSON, for comparing a reusing load with a fresh one.
    fn objects(l: &Loaded) -> BTreeMap<String, Vec<serde_json::Value>> {
        l.tree
            .nodes()
            .iter()
            .map(|n| {
                (
                    n.app.name.to_string(),
                    n.manifests().iter().map(|m| m.object.clone()).collect(),
                )
            })
            .collect()
    }

    /// Loads after the last commit, reusing `before`; checks the result is
    /// what a fresh load renders, and that every app names the new commit.
    fn next(f: &Fixture, before: &Loaded) -> Loaded {
        let now = f.ws.load(Some(&before.inputs)).unwrap();
        let fresh = f.ws.load(None).unwrap();
        assert_eq!(
            objects(&now),
            objects(&fresh),
            "a kept render differs from a fresh one"
        );
        for n in now.tree.nodes() {
            let sha = n
                .checkout
                .as_ref()
                .and_then(|c| c.revision.id().map(str::to_string));
            assert_eq!(sha, now.root_commit, "{} renders an old commit", n.app.name);
        }
        now
    }

    #[cfg(unix)]
    #[test]
    fn only_apps_whose_inputs_changed_are_rendered_again() {
        let f = fixture();
        let d = f.repo.path();
        let first = f.ws.load(None).unwrap();
        assert!(first.tree.failed().next().is_none());
        // a and c read outside their directory: never kept.
        let eligible: Vec<&str> = first.inputs.keys().map(AppName::as_str).collect();
        assert_eq!(eligible, ["b", "d", "root"]);

        // A file of b's directory: b again (and a and c, which are never
        // kept); d and the root (its directory, apps/, is unchanged) kept.
        write(d, "objects/b/own.yaml", &cm("b-own", "2"));
        commit(d);
        let second = next(&f, &first);
        assert_eq!(rerendered(&first, &second), ["a", "b", "c"]);
        assert_eq!(second.kept, 2);
        assert_eq!(
            second.tree.get_str("b").unwrap().manifests()[0].object["data"]["v"],
            "2"
        );

        // The shared file a and c read: both again, with its new content.
        write(d, "shared/values.yaml", &cm("shared", "2"));
        commit(d);
        let third = next(&f, &second);
        assert_eq!(rerendered(&second, &third), ["a", "c"]);
        for n in ["a", "c"] {
            let shared = third
                .tree
                .get_str(n)
                .unwrap()
                .manifests()
                .iter()
                .find(|m| m.object["metadata"]["name"] == "shared")
                .unwrap()
                .object["data"]["v"]
                .clone();
            assert_eq!(shared, "2", "{n}");
        }

        // d's Application moves its path (same content elsewhere): rendered
        // again from the new path; b's manifest changes its namespace; the
        // root's directory changed.
        write(d, "objects/d2/own.yaml", &cm("d-moved", "1"));
        write(d, "apps/d.yaml", &app("d", "objects/d2", "ns-d"));
        write(d, "apps/b.yaml", &app("b", "objects/b", "other"));
        commit(d);
        let fourth = next(&f, &third);
        assert_eq!(rerendered(&third, &fourth), ["root", "a", "b", "c", "d"]);
        assert_eq!(
            fourth.tree.get_str("d").unwrap().manifests()[0].object["metadata"]["name"],
            "d-moved"
        );

        // A commit outside every app: only what is never kept.
        write(d, "README.md", "x");
        commit(d);
        let fifth = next(&f, &fourth);
        assert_eq!(rerendered(&fourth, &fifth), ["a", "c"]);
        assert_eq!(fifth.kept, 3);
    }

    /// The repository cache's entries for commit `sha` (whole and per-path exports).
    fn exports_of(cache: &Path, sha: &str) -> Vec<String> {
        let mut out = Vec::new();
        for repo in std::fs::read_dir(cache).unwrap().flatten() {
            let Ok(entries) = std::fs::read_dir(repo.path()) else {
                continue;
            };
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with(sha) {
                    out.push(name);
                }
            }
        }
        out.sort();
        out
    }

    #[cfg(unix)]
    #[test]
    fn a_commit_exports_only_the_directories_it_renders_again() {
        let repo = tempfile::tempdir().unwrap();
        let d = repo.path();
        git2::Repository::init(d).unwrap();
        write(
            d,
            "root.yaml",
            "apiVersion: kubesync.dev/v1alpha1\nkind: Application\nmetadata: {name: root}\n\
             spec:\n  tier: system\n  source: {path: apps}\n",
        );
        for n in ["b", "d"] {
            write(
                d,
                &format!("apps/{n}.yaml"),
                &app(n, &format!("objects/{n}"), "ns"),
            );
            write(
                d,
                &format!("objects/{n}/own.yaml"),
                &cm(&format!("{n}-own"), "1"),
            );
        }
        commit(d);
        let cache = tempfile::tempdir().unwrap();
        let ws = Workspace::new(
            RootSource::Local {
                manifest: d.join("root.yaml"),
            },
            None,
            Vec::new(),
            Some(cache.path().to_path_buf()),
            2,
            RepoAccess::default(),
        )
        .unwrap();
        let first = ws.load(None).unwrap();
        let first_sha = first.root_commit.clone().unwrap();
        assert_eq!(exports_of(cache.path(), &first_sha), [first_sha.as_str()]);

        write(d, "objects/b/own.yaml", &cm("b-own", "2"));
        commit(d);
        let second = ws.load(Some(&first.inputs)).unwrap();
        let sha = second.root_commit.clone().unwrap();
        // An export of b's directory alone, never the whole commit (the
        // root manifest's own export served the load only and is gone).
        let exports = exports_of(cache.path(), &sha);
        assert_eq!(exports.len(), 1, "{exports:?}");
        assert!(exports.iter().all(|e| e.starts_with(&format!("{sha}-"))));
        let b = second.tree.get_str("b").unwrap();
        let b_dir = &b.checkout.as_ref().unwrap().dir;
        assert!(b_dir.join("objects/b/own.yaml").is_file());
        assert!(!b_dir.join("objects/d").exists());
        assert_eq!(b.manifests()[0].object["data"]["v"], "2");
        // d and the root kept their render; their checkouts name the new
        // commit and hold their directories (the first export, kept).
        for n in ["d", "root"] {
            let node = second.tree.get_str(n).unwrap();
            let co = node.checkout.as_ref().unwrap();
            assert_eq!(co.revision.id(), Some(sha.as_str()), "{n}");
            assert!(co.dir.join(node.app.source.path.as_path()).is_dir(), "{n}");
        }
        assert_eq!(second.kept, 2);
        // The same as a fresh load, which exports the whole commit.
        let fresh = ws.load(None).unwrap();
        assert_eq!(objects(&second), objects(&fresh));
        assert!(exports_of(cache.path(), &sha).contains(&sha));
    }
}
