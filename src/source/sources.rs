//! [`Sources`]: where each `repoURL` comes from (the root repository, an
//! override directory, or a cached mirror of a remote) and the memoised
//! path from `(repoURL, targetRevision)` to a [`Checkout`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use git2::{ErrorCode, Repository};
use parking_lot::Mutex;
use sha2::{Digest, Sha256};

use crate::model::RevisionSpec;

use super::checkout::{Checkout, Revision};
use super::credentials::{GitAuth, RemoteAuth};
use super::url::{is_cloneable, normalize_url, redact_url, strip_credentials};
use super::{export, remote, revision, RepoOverride, SourceError};

/// Environment variable with the user name for remotes (with
/// [`ENV_PASSWORD`]), used when a URL embeds no credentials.
pub const ENV_USERNAME: &str = "KUBESYNC_GIT_USERNAME";
/// Environment variable with the password or token for remotes.
pub const ENV_PASSWORD: &str = "KUBESYNC_GIT_PASSWORD";
/// The seeds' `REPOCREDS=user:password`, a fallback for the two above.
pub const ENV_REPOCREDS: &str = "REPOCREDS";

/// How [`Sources`] finds repositories.
#[derive(Debug, Clone, Default)]
pub struct SourceOptions {
    /// The root manifest's path; the repository containing it (git work tree
    /// top via git2 discover; outside git, the manifest's own directory —
    /// never the current directory) is "the root repository".
    pub root_manifest: PathBuf,
    /// `--repo-override URL=PATH`, repeatable: apps whose repoURL equals URL
    /// render from the local PATH.
    pub overrides: Vec<RepoOverride>,
    /// Where clones of remote repositories are cached (a fresh temp dir when None).
    pub cache_dir: Option<PathBuf>,
    /// Credentials and trusted ssh host keys for remotes (the environment's
    /// defaults when None: see [`GitAuth::from_env`]).
    pub git_auth: Option<GitAuth>,
    /// Settings (credentials, CA, TLS) for Helm chart repositories and OCI registries.
    pub helm_credentials: crate::chart::HelmRepoCredentials,
}

/// The root repository, for display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoInfo {
    /// Display name: the repository's directory.
    pub name: String,
    /// The work tree top (or the plain directory standing in for it).
    pub dir: PathBuf,
    /// The `origin` remote's URL, credentials removed, if it has one.
    pub origin: Option<String>,
    /// Whether `dir` is a git work tree (else only the work tree can be used).
    pub is_git: bool,
}

/// A repository on the local disk: the root or an override.
#[derive(Debug, Clone)]
struct LocalRepo {
    name: String,
    /// Canonical directory: the work tree, the plain directory, or (bare) the git dir.
    dir: PathBuf,
    git: bool,
    bare: bool,
}

/// Where a `repoURL` is read from.
#[derive(Debug, Clone)]
enum Target {
    Local(LocalRepo),
    Remote {
        /// Credential-free URL as written: display name and what git is given.
        url: String,
        key: String,
        auth: RemoteAuth,
    },
}

impl Target {
    fn memo_key(&self) -> String {
        match self {
            Target::Local(l) => format!("local:{}", l.dir.display()),
            Target::Remote { key, .. } => format!("remote:{key}"),
        }
    }
}

type Memo<K, T> = crate::memo::Memo<K, T, SourceError>;

/// Repositories and revisions for one run. `Send + Sync`; see the module docs.
pub struct Sources {
    root: RepoInfo,
    root_local: LocalRepo,
    root_origin_key: Option<String>,
    overrides: Vec<(String, LocalRepo)>,
    cache: PathBuf,
    _temp_cache: Option<tempfile::TempDir>,
    auth: GitAuth,
    checkouts: Memo<(String, Option<RevisionSpec>), Arc<Checkout>>,
    /// The commit each (repository, revision) names, resolved once.
    commits: Memo<(String, Option<RevisionSpec>), Option<Revision>>,
    /// Exports of one path of a commit ([`Sources::checkout_path`]).
    path_checkouts: Memo<(String, String, String), Option<Arc<Checkout>>>,
    mirrors: Memo<String, PathBuf>,
    charts: crate::chart::ChartFetcher,
    /// Open repositories for [`Sources::self_contained_tree_id`], by git directory.
    opened: Mutex<HashMap<PathBuf, Arc<Mutex<Repository>>>>,
}

impl std::fmt::Debug for Sources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sources")
            .field("root", &self.root)
            .field("overrides", &self.overrides)
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

impl Sources {
    pub fn new(opts: SourceOptions) -> Result<Self, SourceError> {
        let (root, root_local) = discover_root(&opts.root_manifest)?;
        let root_origin_key = root.origin.as_deref().map(normalize_url);

        let mut overrides = Vec::new();
        let mut chart_overrides = Vec::new();
        for o in &opts.overrides {
            let dir = std::fs::canonicalize(&o.path).map_err(|e| SourceError::io(&o.path, e))?;
            if !dir.is_dir() {
                return Err(SourceError::io(
                    &o.path,
                    std::io::Error::other("a repo override must be a directory"),
                ));
            }
            let (git, bare) = match Repository::open(&dir) {
                Ok(r) => (true, r.is_bare()),
                Err(e) if e.code() == ErrorCode::Owner => return Err(not_owned(&dir, &e)),
                Err(_) => (false, false),
            };
            tracing::debug!(url = %redact_url(&o.url), path = %dir.display(), git, "repo override");
            chart_overrides.push((o.url.clone(), dir.clone()));
            overrides.push((
                normalize_url(&o.url),
                LocalRepo {
                    name: o.path.display().to_string(),
                    dir,
                    git,
                    bare,
                },
            ));
        }

        let (cache, temp) = match opts.cache_dir {
            Some(dir) => {
                std::fs::create_dir_all(&dir).map_err(|e| SourceError::io(&dir, e))?;
                (dir, None)
            }
            None => {
                let t = tempfile::Builder::new()
                    .prefix("kubesync-cache-")
                    .tempdir()
                    .map_err(|e| SourceError::io(std::env::temp_dir(), e))?;
                (t.path().to_path_buf(), Some(t))
            }
        };

        let charts =
            crate::chart::ChartFetcher::new(&cache, chart_overrides, opts.helm_credentials);
        Ok(Sources {
            charts,
            root,
            root_local,
            root_origin_key,
            overrides,
            cache,
            _temp_cache: temp,
            auth: opts.git_auth.unwrap_or_else(GitAuth::from_env),
            checkouts: Memo::default(),
            commits: Memo::default(),
            path_checkouts: Memo::default(),
            mirrors: Memo::default(),
            opened: Mutex::default(),
        })
    }

    /// The root repository's identity (for display) and its `origin` remote URL if any.
    pub fn root_repo(&self) -> &RepoInfo {
        &self.root
    }

    /// Fetches Helm charts from chart repositories and OCI registries (and
    /// chart dependencies), with the same overrides and cache directory.
    pub fn charts(&self) -> &crate::chart::ChartFetcher {
        &self.charts
    }

    /// Where exports and mirrors are kept.
    pub fn cache_dir(&self) -> &Path {
        &self.cache
    }

    /// Resolves `repo_url` (None = the root repository) at `revision` (None =
    /// the work tree as it is on disk, uncommitted changes included, for the
    /// root repository or an override; for a remote, its default branch HEAD)
    /// to a directory holding that content.
    pub fn checkout(
        &self,
        repo_url: Option<&str>,
        revision: Option<&RevisionSpec>,
    ) -> Result<Arc<Checkout>, SourceError> {
        let target = self.target(repo_url)?;
        let key = (target.memo_key(), revision.cloned());
        self.checkouts.get_or_compute(key, || {
            let co = match &target {
                Target::Local(local) => self.checkout_local(local, revision)?,
                Target::Remote { url, key, auth } => {
                    self.checkout_remote(url, key, auth, revision)?
                }
            };
            tracing::debug!(repo = %co.repo, revision = %co.revision, dir = %co.dir.display(), "checkout");
            Ok(Arc::new(co))
        })
    }

    /// A stable key for `repo_url` (None = the root repository): the same
    /// for every URL spelling that reaches the same repository here.
    pub fn repo_key(&self, repo_url: Option<&str>) -> Result<String, SourceError> {
        Ok(self.target(repo_url)?.memo_key())
    }

    /// The commit `revision` of `repo_url` names (None = the root
    /// repository), resolved once per (repository, revision) and without
    /// exporting anything (a remote is fetched first, as for a checkout).
    /// None when the content is not a commit: a plain directory, or a work
    /// tree read as it is on disk (no revision).
    pub fn resolve_commit(
        &self,
        repo_url: Option<&str>,
        revision: Option<&RevisionSpec>,
    ) -> Result<Option<Revision>, SourceError> {
        let target = self.target(repo_url)?;
        let key = (target.memo_key(), revision.cloned());
        self.commits.get_or_compute(key, || {
            let (repo, name) = match &target {
                Target::Local(local) => {
                    if !local.git || (revision.is_none() && !local.bare) {
                        return Ok(None);
                    }
                    (
                        Repository::open(&local.dir)
                            .map_err(|e| SourceError::git(&local.name, &e))?,
                        local.name.clone(),
                    )
                }
                Target::Remote { url, key, auth } => {
                    let mirror = self.mirror(url, key, auth)?;
                    (
                        Repository::open_bare(&mirror).map_err(|e| SourceError::git(url, &e))?,
                        url.clone(),
                    )
                }
            };
            let spec = revision.cloned().unwrap_or(RevisionSpec::Head);
            let oid = revision::resolve(&repo, &name, &spec)?;
            Ok(Some(Revision::Commit {
                sha: oid.to_string(),
                spec,
            }))
        })
    }

    /// A checkout of `repo_url` at `revision` that holds only `path` (a
    /// directory or a file of the commit), for a reader that reads nothing
    /// else: exporting one directory instead of the whole commit is what
    /// keeps a commit's load proportional to what it changed. The export is
    /// `<cache>/<repo>/<sha>-<digest of path>/<path>`, written under a
    /// temporary name and renamed into place (complete or absent, like a
    /// whole export). Returns the whole commit's export instead when one
    /// exists already, and None — export the whole commit — when the
    /// content is not a commit, when `path` is the repository's top, or when
    /// anything under `path` could pull in content from elsewhere (a
    /// symlink, a submodule, a jsonnet file; see
    /// [`Sources::self_contained_tree_id`]).
    pub fn checkout_path(
        &self,
        repo_url: Option<&str>,
        revision: Option<&RevisionSpec>,
        path: &crate::model::RepoPath,
    ) -> Result<Option<Arc<Checkout>>, SourceError> {
        if path.is_root() {
            return Ok(None);
        }
        let Some(Revision::Commit { sha, spec }) = self.resolve_commit(repo_url, revision)? else {
            return Ok(None);
        };
        let target = self.target(repo_url)?;
        let (git_dir, name, export_key) = match &target {
            Target::Local(local) => (
                local.dir.clone(),
                local.name.clone(),
                format!("file:{}", local.dir.display()),
            ),
            Target::Remote { url, key, .. } => (
                self.repo_cache(key).join("mirror.git"),
                url.clone(),
                key.clone(),
            ),
        };
        let repo_cache = self.repo_cache(&export_key);
        let whole = repo_cache.join(&sha);
        if whole.is_dir() {
            return self.checkout(repo_url, revision).map(Some);
        }
        let rel = path.as_path().to_string_lossy().into_owned();
        let key = (target.memo_key(), sha.clone(), rel.clone());
        self.path_checkouts.get_or_compute(key, || {
            let repo = self.opened_repo(&git_dir).ok_or_else(|| {
                SourceError::git(&name, &git2::Error::from_str("cannot open the repository"))
            })?;
            let repo = repo.lock();
            let oid = git2::Oid::from_str(&sha).map_err(|e| SourceError::git(&name, &e))?;
            let digest = hex::encode(Sha256::digest(rel.as_bytes()));
            let dir = repo_cache.join(format!("{sha}-{}", &digest[..16]));
            let exported =
                export::export_path(&repo, &name, oid, path.as_path(), &repo_cache, &dir)?;
            if !exported {
                return Ok(None);
            }
            tracing::debug!(repo = %name, commit = %sha, path = %rel, dir = %dir.display(), "exported one path of a commit");
            Ok(Some(Arc::new(Checkout::new(
                &name,
                dir,
                Revision::Commit {
                    sha: sha.clone(),
                    spec: spec.clone(),
                },
            ))))
        })
    }

    /// A remote's mirror, fetched at most once per `Sources`.
    fn mirror(&self, url: &str, key: &str, auth: &RemoteAuth) -> Result<PathBuf, SourceError> {
        let repo_cache = self.repo_cache(key);
        self.mirrors.get_or_compute(key.to_string(), || {
            let dir = repo_cache.join("mirror.git");
            remote::update_mirror(&dir, url, url, auth)?;
            Ok(dir)
        })
    }

    /// The repository at `git_dir`, opened once per `Sources`.
    fn opened_repo(&self, git_dir: &Path) -> Option<Arc<Mutex<Repository>>> {
        let mut opened = self.opened.lock();
        if let Some(r) = opened.get(git_dir) {
            return Some(r.clone());
        }
        let r = Arc::new(Mutex::new(Repository::open(git_dir).ok()?));
        opened.insert(git_dir.to_path_buf(), r.clone());
        Some(r)
    }

    /// Where `revision` of `repo_url` points now, with one ref lookup and
    /// nothing else: a read of the local refs, or one `ls-remote` (no fetch).
    /// With no revision, a local work tree answers its `HEAD` commit (only
    /// commits are polled, never uncommitted edits).
    pub fn poll(
        &self,
        repo_url: Option<&str>,
        revision: Option<&RevisionSpec>,
    ) -> Result<super::Fingerprint, SourceError> {
        match self.target(repo_url)? {
            Target::Local(local) if local.git => {
                super::poll::poll_local(&local.dir, &local.name, revision)
            }
            // A plain directory has no revisions: it never "moves".
            Target::Local(_) => Ok(super::Fingerprint("plain-directory".into())),
            Target::Remote { url, auth, .. } => {
                let refs: Vec<(String, String)> = super::remote::ls_remote_as(&url, &auth)?
                    .into_iter()
                    .map(|r| (r.name, r.oid))
                    .collect();
                super::poll::fingerprint(&refs, revision).ok_or_else(|| {
                    SourceError::RevisionNotFound {
                        repo: url.clone(),
                        revision: revision
                            .map(ToString::to_string)
                            .unwrap_or_else(|| "HEAD".into()),
                        detail: "the remote does not advertise it".into(),
                    }
                })
            }
        }
    }

    /// Paths that differ between commits `old` and `new` of `repo_url`
    /// (None = the root repository); both must be in the local repository
    /// or in the cached mirror (a remote fetched by an earlier run).
    pub fn changed_paths(
        &self,
        repo_url: Option<&str>,
        old: &str,
        new: &str,
    ) -> Result<Vec<String>, SourceError> {
        let (repo, name) = match self.target(repo_url)? {
            Target::Local(local) => (
                Repository::open(&local.dir).map_err(|e| SourceError::git(&local.name, &e))?,
                local.name,
            ),
            Target::Remote { url, key, .. } => {
                let dir = self.repo_cache(&key).join("mirror.git");
                (
                    Repository::open_bare(&dir).map_err(|e| SourceError::git(&url, &e))?,
                    url,
                )
            }
        };
        super::poll::diff_paths(&repo, &name, old, new)
    }

    /// The git tree id of directory `path` at commit `sha` of `repo_url`
    /// (None = the root repository) when that directory is self-contained
    /// as far as a plain-directory render can tell: None when it is not a
    /// directory of that commit (or the repository or commit cannot be
    /// read), or when anything under it could pull content from elsewhere —
    /// a symlink, a submodule, a jsonnet file (imports). Equal ids mean
    /// byte-identical directories, whatever else the commits changed.
    pub fn self_contained_tree_id(
        &self,
        repo_url: Option<&str>,
        sha: &str,
        path: &crate::model::RepoPath,
    ) -> Option<String> {
        let git_dir = match self.target(repo_url).ok()? {
            Target::Local(local) if local.git => local.dir,
            Target::Local(_) => return None,
            Target::Remote { key, .. } => self.repo_cache(&key).join("mirror.git"),
        };
        let repo = self.opened_repo(&git_dir)?;
        let repo = repo.lock();
        let root = git2::Oid::from_str(sha)
            .and_then(|o| repo.find_commit(o))
            .and_then(|c| c.tree())
            .ok()?;
        let tree = if path.is_root() {
            root
        } else {
            let entry = root.get_path(path.as_path()).ok()?;
            if entry.kind() != Some(git2::ObjectType::Tree) {
                return None;
            }
            repo.find_tree(entry.id()).ok()?
        };
        export::self_contained(&tree).then(|| tree.id().to_string())
    }

    fn target(&self, repo_url: Option<&str>) -> Result<Target, SourceError> {
        let Some(url) = repo_url.map(str::trim).filter(|u| !u.is_empty()) else {
            return Ok(Target::Local(self.root_local.clone()));
        };
        let key = normalize_url(url);
        if let Some((_, local)) = self.overrides.iter().find(|(k, _)| *k == key) {
            return Ok(Target::Local(local.clone()));
        }
        if self.root_origin_key.as_deref() == Some(key.as_str())
            || key == format!("file:{}", self.root_local.dir.display())
        {
            return Ok(Target::Local(self.root_local.clone()));
        }
        let (clean, _) = strip_credentials(url);
        if !is_cloneable(url) {
            return Err(SourceError::Unreachable {
                url: clean,
                reason: "not a URL git can fetch (expected https://, ssh://, git@host:path, \
                         file:// or an absolute path)"
                    .into(),
            });
        }
        Ok(Target::Remote {
            url: clean,
            key,
            auth: self.auth.for_url(url),
        })
    }

    fn repo_cache(&self, key: &str) -> PathBuf {
        let digest = Sha256::digest(key.as_bytes());
        self.cache.join(&hex::encode(digest)[..16])
    }

    fn checkout_local(
        &self,
        local: &LocalRepo,
        revision: Option<&RevisionSpec>,
    ) -> Result<Checkout, SourceError> {
        let worktree = || Checkout::new(&local.name, &local.dir, Revision::WorkTree);
        if !local.git {
            return match revision {
                None | Some(RevisionSpec::Head) => Ok(worktree()),
                Some(spec) => Err(SourceError::NotAGitRepository {
                    path: local.dir.clone(),
                    message: format!(
                        "revision \"{spec}\" needs a git repository; a plain directory can only \
                         be used as it is (no targetRevision, or HEAD)"
                    ),
                }),
            };
        }
        let spec = match revision {
            None if !local.bare => return Ok(worktree()),
            None => RevisionSpec::Head,
            Some(spec) => spec.clone(),
        };
        let repo = Repository::open(&local.dir).map_err(|e| SourceError::git(&local.name, &e))?;
        let oid = revision::resolve(&repo, &local.name, &spec)?;
        let key = format!("file:{}", local.dir.display());
        let dir = export::export_commit(&repo, &local.name, oid, &self.repo_cache(&key))?;
        Ok(Checkout::new(
            &local.name,
            dir,
            Revision::Commit {
                sha: oid.to_string(),
                spec,
            },
        ))
    }

    fn checkout_remote(
        &self,
        url: &str,
        key: &str,
        auth: &RemoteAuth,
        revision: Option<&RevisionSpec>,
    ) -> Result<Checkout, SourceError> {
        let repo_cache = self.repo_cache(key);
        let mirror_dir = self.mirror(url, key, auth)?;
        let repo = Repository::open_bare(&mirror_dir).map_err(|e| SourceError::git(url, &e))?;
        let spec = revision.cloned().unwrap_or(RevisionSpec::Head);
        let oid = revision::resolve(&repo, url, &spec)?;
        let dir = export::export_commit(&repo, url, oid, &repo_cache)?;
        Ok(Checkout::new(
            url,
            dir,
            Revision::Commit {
                sha: oid.to_string(),
                spec,
            },
        ))
    }
}

fn not_owned(dir: &Path, e: &git2::Error) -> SourceError {
    SourceError::NotAGitRepository {
        path: dir.to_path_buf(),
        message: format!(
            "{} (the repository belongs to another user; run as its owner or add it to \
             git's safe.directory)",
            e.message()
        ),
    }
}

/// Finds the root repository from the root manifest's path.
fn discover_root(manifest: &Path) -> Result<(RepoInfo, LocalRepo), SourceError> {
    let abs = std::fs::canonicalize(manifest).map_err(|_| SourceError::RootNotFound {
        path: manifest.to_path_buf(),
    })?;
    let manifest_dir = if abs.is_dir() {
        abs.clone()
    } else {
        abs.parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| abs.clone())
    };

    let discovered = match Repository::discover(&manifest_dir) {
        Ok(repo) => Some(repo),
        // A repository is there but libgit2 will not read it: say so rather
        // than silently falling back to the work tree as a plain directory.
        Err(e) if e.code() == ErrorCode::Owner => return Err(not_owned(&manifest_dir, &e)),
        Err(_) => None,
    };
    if let Some(repo) = discovered {
        if let Some(workdir) = repo.workdir() {
            let dir = std::fs::canonicalize(workdir).map_err(|e| SourceError::io(workdir, e))?;
            let origin = repo
                .find_remote("origin")
                .ok()
                .and_then(|r| r.url().ok().map(redact_url));
            let name = dir.display().to_string();
            tracing::debug!(root = %name, origin = ?origin, "root repository");
            return Ok((
                RepoInfo {
                    name: name.clone(),
                    dir: dir.clone(),
                    origin,
                    is_git: true,
                },
                LocalRepo {
                    name,
                    dir,
                    git: true,
                    bare: false,
                },
            ));
        }
    }
    // Outside git, the directory holding the root manifest stands for the
    // repository root, whatever the current directory: `path`s resolve the
    // same from wherever kubesync is run, as they do in a work tree.
    let dir = manifest_dir;
    let name = dir.display().to_string();
    tracing::debug!(root = %name, "root is a plain directory (not a git work tree)");
    Ok((
        RepoInfo {
            name: name.clone(),
            dir: dir.clone(),
            origin: None,
            is_git: false,
        },
        LocalRepo {
            name,
            dir,
            git: false,
            bare: false,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Sources>();
        check::<Checkout>();
        check::<SourceError>();
    }
}
