//! A checkout: a directory holding one repository's content at one revision,
//! and the path guard every reader of that content goes through
//! ([`Checkout::resolve`], [`Checkout::contains`]): nothing an application
//! names may lead outside its repository, by `..` or by symlink.
//!
//! This file does not produce checkouts (that is [`super::Sources`]); it only
//! describes them and checks paths against them.

use std::fmt;
use std::path::{Component, Path, PathBuf};

use crate::model::{RepoPath, RevisionSpec};

use super::SourceError;

/// Which content a checkout holds.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Revision {
    /// The work tree as it is on disk, uncommitted changes included.
    WorkTree,
    /// A commit's tree.
    Commit {
        /// Full 40-hex commit id.
        sha: String,
        /// The revision as the application asked for it.
        spec: RevisionSpec,
    },
    /// A chart fetched from a Helm repository or OCI registry.
    Chart {
        /// The chart version chosen.
        version: String,
        /// sha256 of the chart archive, hex.
        digest: String,
    },
}

impl Revision {
    /// The 7-character abbreviated commit id, or `worktree`.
    pub fn short(&self) -> String {
        match self {
            Revision::WorkTree => "worktree".to_string(),
            Revision::Commit { sha, .. } => sha.chars().take(7).collect(),
            Revision::Chart { version, .. } => version.clone(),
        }
    }

    /// The full commit id, if this is a commit.
    pub fn id(&self) -> Option<&str> {
        match self {
            Revision::WorkTree => None,
            Revision::Commit { sha, .. } => Some(sha),
            Revision::Chart { digest, .. } => Some(digest),
        }
    }
}

impl fmt::Display for Revision {
    /// `worktree`, or `<short sha> (<spec>)`, e.g. `1a2b3c4 (tag:v1.2)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Revision::WorkTree => f.write_str("worktree"),
            Revision::Commit { spec, .. } => write!(f, "{} ({spec})", self.short()),
            Revision::Chart { version, digest } => {
                write!(f, "{version} (sha256:{})", &digest[..digest.len().min(12)])
            }
        }
    }
}

/// One repository's content at one revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkout {
    /// Display name: the URL as written (without credentials) or the local path.
    pub repo: String,
    /// The directory holding the content: the work tree itself for
    /// [`Revision::WorkTree`], an export of the commit's tree otherwise.
    pub dir: PathBuf,
    pub revision: Revision,
}

impl Checkout {
    pub fn new(repo: impl Into<String>, dir: impl Into<PathBuf>, revision: Revision) -> Self {
        Checkout {
            repo: repo.into(),
            dir: dir.into(),
            revision,
        }
    }

    /// Joins `path` onto [`Checkout::dir`], refusing anything that leaves the
    /// repository: the path must exist, and its canonical form (symlinks
    /// resolved) must stay under the canonical `dir`.
    ///
    /// Returns `dir.join(path)` (not the canonical form), so callers can
    /// still `strip_prefix(&checkout.dir)` for display.
    pub fn resolve(&self, path: &RepoPath) -> Result<PathBuf, SourceError> {
        let base = self.canonical_dir()?;
        let joined = if path.is_root() {
            self.dir.clone()
        } else {
            self.dir.join(path.as_path())
        };
        match std::fs::canonicalize(&joined) {
            Ok(real) if real.starts_with(&base) => Ok(joined),
            Ok(real) => Err(SourceError::PathEscapes {
                path: self.describe(path),
                target: real,
            }),
            Err(_) => {
                // Missing, or a dangling symlink: say where a link leads if
                // that is outside, else that the path is not there.
                if let Some(target) = dangling_target(&self.dir, path) {
                    let lexical = normalize_lexically(&target);
                    if !lexical.starts_with(&base)
                        && !lexical.starts_with(normalize_lexically(&self.dir))
                    {
                        return Err(SourceError::PathEscapes {
                            path: self.describe(path),
                            target,
                        });
                    }
                }
                Err(SourceError::PathNotFound {
                    repo: self.repo.clone(),
                    path: path.to_string(),
                    revision: self.revision.to_string(),
                })
            }
        }
    }

    /// Whether `p` (an absolute path found while walking the checkout) stays
    /// inside the repository once symlinks are resolved. A path that does not
    /// resolve (missing, dangling symlink) is not contained.
    pub fn contains(&self, p: &Path) -> bool {
        let Ok(base) = std::fs::canonicalize(&self.dir) else {
            return false;
        };
        let p = if p.is_relative() {
            self.dir.join(p)
        } else {
            p.to_path_buf()
        };
        std::fs::canonicalize(p).is_ok_and(|real| real.starts_with(&base))
    }

    fn canonical_dir(&self) -> Result<PathBuf, SourceError> {
        std::fs::canonicalize(&self.dir).map_err(|e| SourceError::io(&self.dir, e))
    }

    fn describe(&self, path: &RepoPath) -> String {
        format!("{}:{path} ({})", self.repo, self.revision)
    }
}

/// If some prefix of `path` under `dir` is a symlink whose target does not
/// exist, where it leads (absolute, not canonical).
fn dangling_target(dir: &Path, path: &RepoPath) -> Option<PathBuf> {
    let mut cur = dir.to_path_buf();
    for comp in path.as_path().components() {
        cur.push(comp);
        let meta = std::fs::symlink_metadata(&cur).ok()?;
        if meta.file_type().is_symlink() && std::fs::metadata(&cur).is_err() {
            let link = std::fs::read_link(&cur).ok()?;
            let parent = cur.parent().unwrap_or(dir);
            return Some(parent.join(link));
        }
    }
    None
}

/// `.` and `..` removed without touching the file system.
fn normalize_lexically(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for comp in p.components() {
        match comp {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rp(s: &str) -> RepoPath {
        RepoPath::new(s).unwrap()
    }

    #[test]
    fn revision_short_and_id() {
        let sha = "0123456789abcdef0123456789abcdef01234567".to_string();
        let r = Revision::Commit {
            sha: sha.clone(),
            spec: RevisionSpec::Head,
        };
        assert_eq!(r.short(), "0123456");
        assert_eq!(r.id(), Some(sha.as_str()));
        assert_eq!(r.to_string(), "0123456 (HEAD)");
        assert_eq!(Revision::WorkTree.short(), "worktree");
        assert_eq!(Revision::WorkTree.id(), None);
    }

    #[cfg(unix)]
    #[test]
    fn resolve_and_contains_guard_the_repository() {
        use std::os::unix::fs::symlink;
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "x").unwrap();
        let repo = tempfile::tempdir().unwrap();
        let dir = repo.path();
        std::fs::create_dir_all(dir.join("apps/a")).unwrap();
        std::fs::write(dir.join("apps/a/x.yaml"), "a: 1").unwrap();
        symlink("apps/a", dir.join("inside-link")).unwrap();
        symlink(outside.path(), dir.join("out-dir")).unwrap();
        symlink("../../etc/nowhere-kubesync", dir.join("apps/dangling-out")).unwrap();
        symlink("missing", dir.join("apps/dangling-in")).unwrap();
        let co = Checkout::new("test-repo", dir, Revision::WorkTree);

        assert_eq!(co.resolve(&rp("apps/a")).unwrap(), dir.join("apps/a"));
        assert_eq!(co.resolve(&RepoPath::root()).unwrap(), dir.to_path_buf());
        assert_eq!(
            co.resolve(&rp("inside-link/x.yaml")).unwrap(),
            dir.join("inside-link/x.yaml")
        );

        match co.resolve(&rp("out-dir")) {
            Err(SourceError::PathEscapes { path, target }) => {
                assert!(path.contains("out-dir"), "{path}");
                assert_eq!(target, std::fs::canonicalize(outside.path()).unwrap());
            }
            other => panic!("expected PathEscapes, got {other:?}"),
        }
        match co.resolve(&rp("out-dir/secret")) {
            Err(SourceError::PathEscapes { .. }) => {}
            other => panic!("expected PathEscapes, got {other:?}"),
        }
        match co.resolve(&rp("apps/dangling-out")) {
            Err(e @ SourceError::PathEscapes { .. }) => {
                assert!(e.to_string().contains("nowhere-kubesync"), "{e}");
            }
            other => panic!("expected PathEscapes, got {other:?}"),
        }
        match co.resolve(&rp("apps/dangling-in")) {
            Err(SourceError::PathNotFound { .. }) => {}
            other => panic!("expected PathNotFound, got {other:?}"),
        }
        match co.resolve(&rp("apps/nope")) {
            Err(e @ SourceError::PathNotFound { .. }) => {
                let msg = e.to_string();
                assert!(
                    msg.contains("apps/nope") && msg.contains("test-repo"),
                    "{msg}"
                );
                assert!(msg.contains("worktree"), "{msg}");
            }
            other => panic!("expected PathNotFound, got {other:?}"),
        }

        assert!(co.contains(&dir.join("apps/a/x.yaml")));
        assert!(co.contains(&dir.join("inside-link")));
        assert!(co.contains(Path::new("apps/a")));
        assert!(!co.contains(&dir.join("out-dir")));
        assert!(!co.contains(&dir.join("out-dir/secret")));
        assert!(!co.contains(&dir.join("apps/dangling-in")));
        assert!(!co.contains(outside.path()));
    }
}
