//! Repositories and revisions: turns an application's `repoURL` and
//! `targetRevision` into a directory holding that content ([`Checkout`]).
//!
//! [`Sources`] owns every git operation kubesync does (git2, vendored
//! libgit2): discovering the root repository, mapping `repoURL`s onto it or
//! onto `--repo-override` directories, cloning and fetching remotes into a
//! cache, resolving revision modes (`branch:`, `tag:`, `tag:latest`,
//! `commit:`), and exporting commits as plain files. It also owns the path
//! guard ([`Checkout::resolve`], [`Checkout::contains`]) that keeps every read
//! inside its repository.
//!
//! It does not render, and it does not poll: one `Sources` is a consistent
//! snapshot for one run (each remote fetched at most once, each checkout
//! memoised); a controller makes a new `Sources` per run to see new commits.
//!
//! Pure parts (URL normalisation and redaction, overrides, version order,
//! the `tag:latest` choice, the path guard) are separate from the IO parts
//! (`remote` fetches, `export` writes, `sources` composes).

mod checkout;
mod credentials;
mod error;
mod export;
mod known_hosts;
mod poll;
mod remote;
mod revision;
mod sources;
mod url;

pub use checkout::{Checkout, Revision};
pub use credentials::{
    Credential, CredentialsError, GitAuth, GitAuthArgs, KeySource, RemoteAuth, Secret, SshKey,
    TOKEN_USER,
};
pub use error::SourceError;
pub use known_hosts::{HostKeyVerdict, KnownHosts};
pub use poll::{fingerprint, Fingerprint};
pub use remote::{ls_remote, RemoteRef};
pub use revision::version_cmp;
pub use sources::{RepoInfo, SourceOptions, Sources, ENV_PASSWORD, ENV_REPOCREDS, ENV_USERNAME};
pub use url::{normalize_url, redact_url, RepoOverride};
