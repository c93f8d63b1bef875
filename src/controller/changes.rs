//! Change detection (pure): which apps a new commit touches. Each app of a
//! loaded tree is summarised as an [`AppDigest`] — its Application spec as
//! kubesync writes it, a digest of what it renders, its repository, commit
//! and source path — and [`changed_apps`] compares two summaries:
//!
//! - an app that is new, whose Application manifest changed, whose rendered
//!   objects changed, or whose render started or stopped failing;
//! - an app whose repository moved to a new commit and whose source path
//!   holds a changed file (the git diff `old..new`, given by the caller);
//!
//! plus, through the graph, nothing else: dependents are not re-synced
//! because a prerequisite changed (the engine still orders the changed set).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::model::AppName;
use crate::sync::status::application_object;
use crate::tree::{AppNode, AppTree, NodeState};

/// What change detection knows of one app of one loaded tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppDigest {
    /// Digest of the Application object kubesync writes for it (spec).
    pub spec: String,
    /// Digest of the rendered objects, or of the render failure.
    pub rendered: String,
    /// The repository key (see `Sources::repo_key`) it renders from.
    pub repo: Option<String>,
    /// The repository URL as the tree names it (None: the root repository).
    pub repo_url: Option<String>,
    /// The commit it rendered (None: a work tree or no checkout).
    pub commit: Option<String>,
    /// Its source path inside the repository (`.` for the top).
    pub path: String,
}

/// A digest of every app of `tree`; `repo_key` maps a node's repository URL
/// to its key.
pub fn digest_tree(
    tree: &AppTree,
    repo_key: impl Fn(Option<&str>) -> Option<String>,
) -> BTreeMap<AppName, AppDigest> {
    digest_tree_after(tree, None, repo_key)
}

/// [`digest_tree`], taking from the previous tree's digests the rendered
/// digest of an app that kept its render (the very same `Rendered`), and
/// the spec digest of an app whose Application, parent and repository are
/// the same, instead of serialising them again.
pub fn digest_tree_after(
    tree: &AppTree,
    previous: Option<(&AppTree, &BTreeMap<AppName, AppDigest>)>,
    repo_key: impl Fn(Option<&str>) -> Option<String>,
) -> BTreeMap<AppName, AppDigest> {
    let kept_digest = |n: &AppNode| -> Option<String> {
        let (old_tree, old_digests) = previous?;
        let (NodeState::Rendered(now), NodeState::Rendered(then)) =
            (&n.state, &old_tree.get(&n.app.name)?.state)
        else {
            return None;
        };
        Arc::ptr_eq(now, then)
            .then(|| old_digests.get(&n.app.name).map(|d| d.rendered.clone()))
            .flatten()
    };
    let kept_spec = |n: &AppNode, repo: Option<&str>| -> Option<String> {
        let (old_tree, old_digests) = previous?;
        let old = old_tree.get(&n.app.name)?;
        let old_repo = old.checkout.as_ref().map(|c| c.repo.as_str());
        (same_but_origin(&old.app, &n.app) && old.parent == n.parent && old_repo == repo)
            .then(|| old_digests.get(&n.app.name).map(|d| d.spec.clone()))
            .flatten()
    };
    tree.nodes()
        .iter()
        .map(|n| {
            let repo = n.checkout.as_ref().map(|c| c.repo.as_str());
            let spec = kept_spec(n, repo).unwrap_or_else(|| {
                let object =
                    application_object(&n.app, n.parent.as_ref().map(AppName::as_str), repo);
                hex::encode(Sha256::digest(object.to_string().as_bytes()))
            });
            let rendered = kept_digest(n).unwrap_or_else(|| rendered_digest(n));
            let digest = AppDigest {
                spec,
                rendered,
                repo: repo_key(n.repo_url.as_deref()),
                repo_url: n.repo_url.clone(),
                commit: n
                    .checkout
                    .as_ref()
                    .and_then(|c| c.revision.id().map(str::to_string)),
                path: n.app.source.path.as_str().to_string(),
            };
            (n.app.name.clone(), digest)
        })
        .collect()
}

/// Whether two Applications are the same but for the file they were read
/// from (which the Application object kubesync writes does not hold).
fn same_but_origin(a: &crate::model::Application, b: &crate::model::Application) -> bool {
    if a.origin == b.origin {
        return a == b;
    }
    let mut b = b.clone();
    b.origin = a.origin.clone();
    *a == b
}

/// The digest of what `n` renders, or of its render failure.
fn rendered_digest(n: &AppNode) -> String {
    let mut rendered = Sha256::new();
    match n.failure() {
        Some(f) => {
            rendered.update(b"failed:");
            rendered.update(f.message.as_bytes());
        }
        None => {
            for m in n.manifests() {
                rendered.update(m.object.to_string().as_bytes());
                rendered.update(b"\n");
            }
        }
    }
    hex::encode(rendered.finalize())
}

/// Whether `file` (repository-relative) lies under the app path `dir`.
pub fn path_under(file: &str, dir: &str) -> bool {
    let dir = dir.trim_start_matches("./").trim_end_matches('/');
    if dir.is_empty() || dir == "." {
        return true;
    }
    file == dir
        || file
            .strip_prefix(dir)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// The apps of `new` that changed since `old` (see the module docs).
/// `diff(repo_url, old_commit, new_commit)` returns the changed paths, or
/// `None` when they cannot be had (then the rendered comparison decides).
pub fn changed_apps(
    old: &BTreeMap<AppName, AppDigest>,
    new: &BTreeMap<AppName, AppDigest>,
    mut diff: impl FnMut(Option<&str>, &str, &str) -> Option<Vec<String>>,
) -> BTreeSet<AppName> {
    let mut memo: BTreeMap<(Option<String>, String, String), Option<Vec<String>>> = BTreeMap::new();
    let mut out = BTreeSet::new();
    for (name, n) in new {
        let Some(o) = old.get(name) else {
            out.insert(name.clone());
            continue;
        };
        if o.spec != n.spec || o.rendered != n.rendered {
            out.insert(name.clone());
            continue;
        }
        if let (Some(oc), Some(nc)) = (&o.commit, &n.commit) {
            if oc != nc && o.repo == n.repo {
                let key = (n.repo.clone(), oc.clone(), nc.clone());
                let paths = memo
                    .entry(key)
                    .or_insert_with(|| diff(n.repo_url.as_deref(), oc, nc));
                if paths
                    .as_ref()
                    .is_some_and(|ps| ps.iter().any(|p| path_under(p, &n.path)))
                {
                    out.insert(name.clone());
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(spec: &str, rendered: &str, commit: &str, path: &str) -> AppDigest {
        AppDigest {
            spec: spec.into(),
            rendered: rendered.into(),
            repo: Some("r".into()),
            repo_url: None,
            commit: Some(commit.into()),
            path: path.into(),
        }
    }

    fn name(s: &str) -> AppName {
        AppName::new(s).unwrap()
    }

    #[test]
    fn paths_under_an_app_directory() {
        assert!(path_under("objects/a/cm.yaml", "objects/a"));
        assert!(path_under("objects/a/cm.yaml", "./objects/a/"));
        assert!(!path_under("objects/ab/cm.yaml", "objects/a"));
        assert!(path_under("anything", "."));
    }

    #[test]
    fn only_apps_whose_inputs_or_manifests_changed() {
        let old: BTreeMap<_, _> = [
            (name("a"), d("s", "ra", "c1", "objects/a")),
            (name("b"), d("s", "rb", "c1", "objects/b")),
            (name("c"), d("s", "rc", "c1", "objects/c")),
            (name("gone"), d("s", "rg", "c1", "objects/g")),
        ]
        .into();
        let new: BTreeMap<_, _> = [
            // A file under a's path changed, output identical (a comment).
            (name("a"), d("s", "ra", "c2", "objects/a")),
            // b's Application manifest changed.
            (name("b"), d("s2", "rb", "c2", "objects/b")),
            (name("c"), d("s", "rc", "c2", "objects/c")),
            (name("new"), d("s", "rn", "c2", "objects/n")),
        ]
        .into();
        let mut diffs = 0;
        let changed = changed_apps(&old, &new, |_, o, n| {
            diffs += 1;
            assert_eq!((o, n), ("c1", "c2"));
            Some(vec!["objects/a/cm.yaml".into()])
        });
        assert_eq!(changed, [name("a"), name("b"), name("new")].into());
        assert_eq!(diffs, 1, "one diff per repository and commit pair");
    }

    #[test]
    fn rendered_output_decides_when_no_diff() {
        let old: BTreeMap<_, _> = [(name("a"), d("s", "r1", "c1", "x"))].into();
        let new: BTreeMap<_, _> = [(name("a"), d("s", "r2", "c2", "x"))].into();
        assert_eq!(changed_apps(&old, &new, |_, _, _| None), [name("a")].into());
        let same: BTreeMap<_, _> = [(name("a"), d("s", "r1", "c2", "x"))].into();
        assert!(changed_apps(&old, &same, |_, _, _| None).is_empty());
    }
}
