//! The one error type of the `source` module: a variant per failure a user can
//! act on. Every variant names the repository (by its display name, never with
//! credentials) and, where it applies, the revision and path involved.

use std::path::PathBuf;
use std::sync::Arc;

/// Why a repository, revision or path could not be provided.
///
/// `Clone` so a failure (an unreachable remote, say) can be memoised and
/// reported to every application that uses the same repository.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SourceError {
    /// The root manifest does not exist.
    #[error("root manifest {} not found", path.display())]
    RootNotFound { path: PathBuf },

    /// A revision other than the work tree was asked of a directory that is
    /// not a git repository.
    #[error("{} is not a git repository: {message}", path.display())]
    NotAGitRepository { path: PathBuf, message: String },

    /// The revision names no branch, tag or commit of the repository.
    #[error("revision \"{revision}\" not found in {repo}: {detail}")]
    RevisionNotFound {
        repo: String,
        revision: String,
        /// What was tried, and what is available.
        detail: String,
    },

    /// `tag:latest` on a repository with no tag reachable from its default branch.
    #[error("tag:latest: {repo} has no tag on a commit reachable from its default branch")]
    NoTags { repo: String },

    /// An application's path does not exist at the revision.
    #[error("path \"{path}\" not found in {repo} at {revision}")]
    PathNotFound {
        repo: String,
        path: String,
        revision: String,
    },

    /// A path (or a symlink on it) leads outside its repository.
    #[error("path \"{path}\" leads outside its repository (to {})", target.display())]
    PathEscapes { path: String, target: PathBuf },

    /// A remote repository could not be cloned or fetched.
    #[error("cannot fetch {url}: {reason}")]
    Unreachable { url: String, reason: String },

    /// The remote refused our credentials, none were configured for it, or
    /// its ssh host key is unknown or changed. Retrying will not help;
    /// fixing the credentials or known_hosts will.
    #[error("cannot fetch {url}: {reason}")]
    Auth { url: String, reason: String },

    /// Any other git failure (a corrupt repository, an unreadable object).
    #[error("git error in {repo}: {message}")]
    Git { repo: String, message: String },

    /// A file-system failure on a path kubesync reads or writes.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: Arc<std::io::Error>,
    },
}

impl SourceError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        SourceError::Io {
            path: path.into(),
            source: Arc::new(source),
        }
    }

    pub(crate) fn git(repo: &str, err: &git2::Error) -> Self {
        SourceError::Git {
            repo: repo.to_string(),
            message: err.message().to_string(),
        }
    }
}
