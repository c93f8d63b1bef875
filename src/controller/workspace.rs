//! Where the controller's tree comes from and how it is loaded at a commit
//! (blocking IO; run it on a blocking thread).
//!
//! The root is either a local manifest (`--root PATH`, as `bootstrap`
//! reads it) or a manifest inside a repository (`--repo URL --revision REV
//! --root PATH`). Either way, when the root repository is a git repository
//! the controller renders *commits*, never a work tree: the root manifest is
//! read from the commit its revision names, and the root apps are pinned to
//! that commit (children inherit it), so every app's applied revision is a
//! sha and uncommitted edits are never applied. A plain directory (no git)
//! is rendered as it is on disk and is never polled.
//!
//! Each load makes a fresh [`Sources`] (a consistent snapshot: every remote
//! fetched at most once) over one persistent cache, so remotes are fetched,
//! not cloned, and `changed_paths` can diff a remote's old and new commits.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::graph::AppGraph;
use crate::model::{load_root, Application, RevisionSpec};
use crate::render::Renderer;
use crate::source::{normalize_url, redact_url, RepoOverride, SourceOptions, Sources};
use crate::tree::{expand_reusing, AppTree, ExpandOptions, Reuse};

use super::reuse::{inputs_of, kept, TreeInputs, Unchanged};

/// Where the root manifest is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootSource {
    /// A manifest on the local disk (in a git work tree or a plain directory).
    Local { manifest: PathBuf },
    /// A manifest at `path` inside the repository `url` (`file://`, `https://`, …).
    Repo { url: String, path: String },
}

impl std::fmt::Display for RootSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RootSource::Local { manifest } => write!(f, "{}", manifest.display()),
            RootSource::Repo { url, path } => write!(f, "{path} in {}", redact_url(url)),
        }
    }
}

/// A loaded tree: what one run renders and syncs.
pub struct Loaded {
    pub tree: AppTree,
    pub graph: Result<AppGraph, String>,
    /// The snapshot the tree was rendered from.
    pub sources: Arc<Sources>,
    /// The root commit (None: a plain directory).
    pub root_commit: Option<String>,
    /// What the apps whose render a later load may keep were rendered from.
    pub inputs: TreeInputs,
    /// How many apps kept their previous render.
    pub kept: usize,
}

/// Credentials for the repositories and chart repositories a tree reads.
#[derive(Debug, Clone, Default)]
pub struct RepoAccess {
    /// Git credentials and ssh host keys (the environment's defaults when None).
    pub git: Option<crate::source::GitAuth>,
    pub helm: crate::chart::HelmRepoCredentials,
}

/// The root and the options every load uses.
pub struct Workspace {
    root: RootSource,
    access: RepoAccess,
    revision: Option<RevisionSpec>,
    overrides: Vec<RepoOverride>,
    cache: PathBuf,
    _temp: Option<tempfile::TempDir>,
    parallel: usize,
    /// For polls and repository keys (no checkout is made through it).
    probe: Arc<Sources>,
    /// What ApplicationSet generators know of the cluster (`--cluster-name`, …).
    generators: crate::tree::appset::GeneratorEnv,
    /// A seed's environment stands for the root manifest (`--root` unset):
    /// the root's objects are made from the commit, not read from a file.
    seed: Option<super::seeds::SeedRoot>,
}

impl Workspace {
    pub fn new(
        root: RootSource,
        revision: Option<RevisionSpec>,
        overrides: Vec<RepoOverride>,
        cache_dir: Option<PathBuf>,
        parallel: usize,
        access: RepoAccess,
    ) -> Result<Self, String> {
        let (cache, temp) = match cache_dir {
            Some(d) => {
                std::fs::create_dir_all(&d).map_err(|e| {
                    format!("cannot create the cache directory {}: {e}", d.display())
                })?;
                (d, None)
            }
            None => {
                let t = tempfile::Builder::new()
                    .prefix("kubesync-controller-")
                    .tempdir()
                    .map_err(|e| format!("cannot create a cache directory: {e}"))?;
                (t.path().to_path_buf(), Some(t))
            }
        };
        let probe = Arc::new(sources_for(&root, &overrides, &cache, &access)?);
        Ok(Workspace {
            root,
            access,
            revision,
            overrides,
            cache,
            _temp: temp,
            parallel,
            probe,
            generators: Default::default(),
            seed: None,
        })
    }

    /// The generators' view of the cluster, as the one-shot commands have it.
    pub fn with_generators(mut self, env: crate::tree::appset::GeneratorEnv) -> Self {
        self.generators = env;
        self
    }

    /// A seed's layout instead of a root manifest: the root's path (a
    /// local directory, or a path inside `--repo`) is the directory the
    /// seed points at.
    pub fn with_seed(mut self, seed: Option<super::seeds::SeedRoot>) -> Self {
        self.seed = seed;
        self
    }

    /// The sources used for polls and repository keys.
    pub fn probe(&self) -> &Arc<Sources> {
        &self.probe
    }

    /// The root repository as a poll target: its URL (None: the local root
    /// repository) and revision. None for a plain directory (never polled).
    pub fn root_target(&self) -> Option<(Option<String>, Option<RevisionSpec>)> {
        match &self.root {
            RootSource::Local { .. } if !self.probe.root_repo().is_git => None,
            RootSource::Local { .. } => Some((None, self.revision.clone())),
            RootSource::Repo { url, .. } => Some((Some(url.clone()), self.revision.clone())),
        }
    }

    /// The names a webhook may use for the root repository.
    pub fn root_names(&self) -> Vec<String> {
        match &self.root {
            RootSource::Repo { url, .. } => vec![normalize_url(url)],
            RootSource::Local { .. } => {
                let info = self.probe.root_repo();
                let mut names = vec![format!("file:{}", info.dir.display())];
                names.extend(info.origin.as_deref().map(normalize_url));
                names
            }
        }
    }

    fn sources(&self) -> Result<Sources, String> {
        sources_for(&self.root, &self.overrides, &self.cache, &self.access)
    }

    /// Loads and renders the whole tree at the root revision's current
    /// commit (fetching remotes once). An error here is tree-level: the
    /// root cannot be had or read; an app's own failures are in the tree.
    ///
    /// With `previous` (the inputs of an earlier load), an app whose inputs
    /// are unchanged keeps its earlier render (see [`super::reuse`]).
    pub fn load(&self, previous: Option<&TreeInputs>) -> Result<Loaded, String> {
        let started = std::time::Instant::now();
        let sources = self.sources()?;
        let (roots, root_commit) = match &self.root {
            RootSource::Local { manifest } if !sources.root_repo().is_git => match &self.seed {
                Some(seed) => {
                    let dir = &sources.root_repo().dir;
                    let rel = relative_to_repo(manifest, dir)?;
                    let roots = seed
                        .roots(dir, &rel.to_string_lossy())
                        .map_err(|e| e.to_string())?;
                    (roots, None)
                }
                None => (load_root(manifest).map_err(|e| e.to_string())?, None),
            },
            RootSource::Local { manifest } => {
                let rel = relative_to_repo(manifest, &sources.root_repo().dir)?;
                self.load_at(&sources, None, &rel, previous.is_some())?
            }
            RootSource::Repo { url, path } => {
                self.load_at(&sources, Some(url), Path::new(path), previous.is_some())?
            }
        };
        let unchanged = previous.map(|p| Unchanged::new(p, &sources));
        let tree = expand_reusing(
            roots,
            &sources,
            &Renderer::new(),
            &ExpandOptions {
                parallel: self
                    .parallel
                    .clamp(1, ExpandOptions::default().parallel.max(4)),
                generators: self.generators.clone(),
                ..ExpandOptions::default()
            },
            unchanged.as_ref().map(|u| u as &dyn Reuse),
        );
        let seen = unchanged.map(Unchanged::into_seen).unwrap_or_default();
        let inputs = inputs_of(&tree, &sources, &seen);
        let kept = previous.map_or(0, |p| kept(p, &inputs));
        let rendered_at = std::time::Instant::now();
        tracing::debug!(took = ?rendered_at - started, apps = tree.len(), kept, "tree rendered");
        let graph = tree.graph().map_err(|errs| {
            errs.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        });
        let graphed = rendered_at.elapsed();
        if let Some(sha) = &root_commit {
            self.forget_old_exports(&tree, sha);
        }
        tracing::debug!(graph = ?graphed, cleanup = ?rendered_at.elapsed().saturating_sub(graphed), "tree graphed, old exports removed");
        Ok(Loaded {
            tree,
            graph,
            sources: Arc::new(sources),
            root_commit,
            inputs,
            kept,
        })
    }

    /// Reads the root manifest from the commit the revision names and pins
    /// the root apps that use the root repository to that commit. A load
    /// that follows another (`only_manifest`) exports the manifest alone
    /// when it can, not the whole commit (a seed's layout reads the whole
    /// commit).
    fn load_at(
        &self,
        sources: &Sources,
        url: Option<&String>,
        rel: &Path,
        only_manifest: bool,
    ) -> Result<(Vec<Application>, Option<String>), String> {
        let spec = self.revision.clone().unwrap_or(RevisionSpec::Head);
        let url_str = url.map(String::as_str);
        let manifest_path = crate::model::RepoPath::new(&rel.to_string_lossy()).ok();
        let alone = match (&self.seed, &manifest_path) {
            (None, Some(path)) if only_manifest => sources
                .checkout_path(url_str, Some(&spec), path)
                .map_err(|e| e.to_string())?,
            _ => None,
        };
        let co = match alone {
            Some(co) => co,
            None => sources
                .checkout(url_str, Some(&spec))
                .map_err(|e| e.to_string())?,
        };
        let sha = co.revision.id().map(str::to_string);
        let mut roots = match &self.seed {
            Some(seed) => {
                // KubeSync's further REPO URLs: each checked out at the
                // root's revision, so its app's path follows KubeSync's chain.
                let checkout = |url: &str| {
                    sources
                        .checkout(Some(url), Some(&spec))
                        .ok()
                        .map(|co| co.dir.clone())
                };
                let repos = super::seeds::OtherRepos {
                    revision: Some(spec.clone()),
                    checkout: &checkout,
                };
                seed.roots_with(&co.dir, &rel.to_string_lossy(), &repos)
                    .map_err(|e| e.to_string())?
            }
            None => load_root(&co.dir.join(rel)).map_err(|e| e.to_string())?,
        };
        for app in &mut roots {
            if app.source.repo_url.is_none() {
                app.source.repo_url = url.cloned();
                if app.source.target_revision.is_none() {
                    app.source.target_revision = sha.clone().map(RevisionSpec::Commit);
                }
            }
        }
        Ok((roots, sha))
    }

    /// Exports of commits no app renders any more are removed, so a
    /// long-running controller does not fill its cache with one copy of
    /// the repository per commit. They are renamed out of the way at once
    /// (so no later export takes one as its base) and deleted on a
    /// background thread: deleting thousands of files is not on the path
    /// from a commit to its sync.
    fn forget_old_exports(&self, tree: &AppTree, _root: &str) {
        let mut keep = std::collections::BTreeSet::new();
        let mut parents = std::collections::BTreeSet::new();
        for n in tree.nodes() {
            if let Some(co) = &n.checkout {
                if co.revision.id().is_some() {
                    keep.insert(co.dir.clone());
                    if let Some(p) = co.dir.parent() {
                        parents.insert(p.to_path_buf());
                    }
                }
            }
        }
        let mut doomed = Vec::new();
        for p in parents {
            let Ok(entries) = std::fs::read_dir(&p) else {
                continue;
            };
            for e in entries.flatten() {
                let path = e.path();
                let Some(name) = e.file_name().to_str().map(str::to_string) else {
                    continue;
                };
                if name.starts_with(TRASH_PREFIX) {
                    doomed.push(path);
                } else if is_export(&name) && !keep.contains(&path) {
                    let trash = p.join(format!(
                        "{TRASH_PREFIX}{name}-{}",
                        uuid::Uuid::new_v4().simple()
                    ));
                    match std::fs::rename(&path, &trash) {
                        Ok(()) => doomed.push(trash),
                        Err(_) => doomed.push(path),
                    }
                }
            }
        }
        if doomed.is_empty() {
            return;
        }
        let spawned = std::thread::Builder::new()
            .name("kubesync-export-gc".into())
            .spawn(move || {
                for d in doomed {
                    let _ = std::fs::remove_dir_all(&d);
                }
            });
        if let Err(e) = spawned {
            tracing::debug!("cannot start the export cleanup thread: {e}");
        }
    }
}

/// Old exports are renamed to this prefix before they are deleted.
const TRASH_PREFIX: &str = ".trash-";

/// Whether `name` is an export's directory name: a full commit sha (the
/// whole commit), or one followed by `-` and 16 hex digits (one path of it,
/// see `Sources::checkout_path`).
fn is_export(name: &str) -> bool {
    let hex = |s: &str| s.chars().all(|c| c.is_ascii_hexdigit());
    match name.split_once('-') {
        None => name.len() == 40 && hex(name),
        Some((sha, path)) => sha.len() == 40 && hex(sha) && path.len() == 16 && hex(path),
    }
}

fn sources_for(
    root: &RootSource,
    overrides: &[RepoOverride],
    cache: &Path,
    access: &RepoAccess,
) -> Result<Sources, String> {
    let root_manifest = match root {
        RootSource::Local { manifest } => manifest.clone(),
        // The "root repository" of a remote root is never used (the root
        // apps name the remote); any directory stands for it.
        RootSource::Repo { .. } => {
            let d = cache.join("controller-root");
            std::fs::create_dir_all(&d).map_err(|e| format!("{}: {e}", d.display()))?;
            d
        }
    };
    Sources::new(SourceOptions {
        root_manifest,
        overrides: overrides.to_vec(),
        cache_dir: Some(cache.to_path_buf()),
        git_auth: access.git.clone(),
        helm_credentials: access.helm.clone(),
    })
    .map_err(|e| e.to_string())
}

/// `manifest`'s path inside the repository at `repo_dir`.
fn relative_to_repo(manifest: &Path, repo_dir: &Path) -> Result<PathBuf, String> {
    let abs = std::fs::canonicalize(manifest)
        .map_err(|e| format!("cannot read the root manifest {}: {e}", manifest.display()))?;
    abs.strip_prefix(repo_dir)
        .map(Path::to_path_buf)
        .map_err(|_| {
            format!(
                "the root manifest {} is not inside its repository {}",
                manifest.display(),
                repo_dir.display()
            )
        })
}

/// Namespace labels by namespace name, for `namespaceDirectories` gates.
pub type NamespaceLabels =
    std::collections::HashMap<String, std::collections::BTreeMap<String, String>>;

/// Settles the tree's namespace label gates (kube-applier's `LABEL`) with
/// the cluster's namespace labels, read through `labels` only when a gate
/// exists: an app whose namespace is not labelled `on` or `dry-run` leaves
/// the tree for this load, a `dry-run` one is synced without writing. A
/// failure to read the labels is a tree-level failure (nothing is synced,
/// so nothing gated off is touched).
pub fn settle_gates(
    loaded: &mut Loaded,
    labels: impl FnOnce() -> Result<NamespaceLabels, String>,
) -> Result<(), String> {
    if loaded.tree.namespace_gates().is_empty() {
        return Ok(());
    }
    let labels =
        labels().map_err(|e| format!("cannot read namespace labels for the label gates: {e}"))?;
    for (gate, decision) in crate::tree::gate_namespaces(&mut loaded.tree, &labels) {
        let what = match decision {
            crate::tree::GateDecision::On => continue,
            crate::tree::GateDecision::DryRun => "dry-run: synced without writing",
            crate::tree::GateDecision::Disabled => "not on or dry-run: disabled, not synced",
        };
        tracing::info!(app = %gate.app, namespace = %gate.namespace, label = %gate.label, "namespace gate: {what}");
    }
    loaded.graph = loaded.tree.graph().map_err(|errs| {
        errs.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    });
    Ok(())
}

/// Every namespace's labels, as [`settle_gates`] wants them.
pub async fn namespace_labels(
    client: &crate::cluster::ClusterClient,
) -> Result<NamespaceLabels, String> {
    let gvk = crate::cluster::GroupVersionKind::gvk("", "v1", "Namespace");
    let list = client
        .list(&gvk, None, "")
        .await
        .map_err(|e| e.to_string())?;
    Ok(list
        .iter()
        .filter_map(|ns| {
            let name = ns.pointer("/metadata/name")?.as_str()?.to_string();
            let labels = ns
                .pointer("/metadata/labels")
                .and_then(serde_json::Value::as_object)
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                        .collect()
                })
                .unwrap_or_default();
            Some((name, labels))
        })
        .collect())
}
