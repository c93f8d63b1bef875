//! Remote repositories: a bare mirror per URL in the cache
//! (`<cache>/<repo-hash>/mirror.git`), created on first use and fetched once
//! per [`super::Sources`]. Branches are mirrored as `refs/heads/*`, tags as
//! `refs/tags/*` (deleted branches pruned), and the mirror's `HEAD` follows the
//! remote's default branch.
//!
//! The URL handed to git never carries credentials: they are supplied through
//! git2's credential callback and never written to disk or logged. Connect
//! timeouts are set process-wide so an unreachable host fails fast.

use std::path::Path;
use std::sync::Once;

use git2::{
    AutotagOption, Cred, CredentialType, FetchOptions, FetchPrune, RemoteCallbacks, Repository,
};

use super::url::Credentials;
use super::SourceError;

/// How long to wait for a TCP connection to a git server.
const CONNECT_TIMEOUT_MS: i32 = 10_000;
/// How long a git server may stay silent mid-transfer.
const READ_TIMEOUT_MS: i32 = 120_000;

const REFSPECS: [&str; 2] = ["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"];

pub(super) fn set_timeouts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: libgit2 global options, set once before any transfer of ours
        // starts; the setters only store an integer.
        unsafe {
            if let Err(e) =
                git2::opts::set_server_connect_timeout_in_milliseconds(CONNECT_TIMEOUT_MS)
            {
                tracing::debug!(error = %e, "git connect timeout not set");
            }
            if let Err(e) = git2::opts::set_server_timeout_in_milliseconds(READ_TIMEOUT_MS) {
                tracing::debug!(error = %e, "git read timeout not set");
            }
        }
    });
}

/// Brings the mirror at `mirror_dir` up to date with `url` (credential-free;
/// `shown` is what messages show), cloning it if it does not exist yet.
pub(crate) fn update_mirror(
    mirror_dir: &Path,
    url: &str,
    shown: &str,
    creds: Option<&Credentials>,
) -> Result<(), SourceError> {
    set_timeouts();
    if mirror_dir.exists() {
        match Repository::open_bare(mirror_dir) {
            Ok(repo) => return fetch(&repo, url, shown, creds),
            Err(e) => {
                tracing::warn!(repo = shown, dir = %mirror_dir.display(), error = %e.message(), "cached mirror unusable; cloning again");
                std::fs::remove_dir_all(mirror_dir).map_err(|e| SourceError::io(mirror_dir, e))?;
            }
        }
    }
    let parent = mirror_dir.parent().unwrap_or(mirror_dir);
    std::fs::create_dir_all(parent).map_err(|e| SourceError::io(parent, e))?;
    let tmp = parent.join(format!(".tmp-mirror-{}", uuid::Uuid::new_v4().simple()));
    let result = Repository::init_bare(&tmp)
        .map_err(|e| SourceError::git(shown, &e))
        .and_then(|repo| fetch(&repo, url, shown, creds));
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    match std::fs::rename(&tmp, mirror_dir) {
        Ok(()) => {
            tracing::info!(repo = shown, "cloned");
            Ok(())
        }
        Err(_) if mirror_dir.exists() => {
            // Another process cloned it meanwhile; ours was as fresh.
            let _ = std::fs::remove_dir_all(&tmp);
            Ok(())
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            Err(SourceError::io(mirror_dir, e))
        }
    }
}

fn fetch(
    repo: &Repository,
    url: &str,
    shown: &str,
    creds: Option<&Credentials>,
) -> Result<(), SourceError> {
    let unreachable = |e: git2::Error| SourceError::Unreachable {
        url: shown.to_string(),
        reason: explain(&scrub(e.message(), creds)),
    };
    let mut remote = repo.remote_anonymous(url).map_err(unreachable)?;
    let mut opts = FetchOptions::new();
    opts.remote_callbacks(callbacks(creds.cloned()))
        .prune(FetchPrune::On)
        .download_tags(AutotagOption::All);
    remote
        .fetch(&REFSPECS, Some(&mut opts), None)
        .map_err(unreachable)?;
    match remote.default_branch() {
        Ok(buf) => match buf.as_str() {
            Ok(head) if head.starts_with("refs/heads/") => {
                repo.set_head(head)
                    .map_err(|e| SourceError::git(shown, &e))?;
            }
            _ => tracing::debug!(repo = shown, "remote default branch is not a branch"),
        },
        Err(e) => {
            tracing::debug!(repo = shown, error = %e.message(), "remote has no default branch")
        }
    }
    tracing::debug!(repo = shown, "fetched");
    Ok(())
}

/// Credential callback: the given user and password for user/password
/// authentication (tried a bounded number of times, so a wrong password
/// fails instead of looping), the ssh agent for ssh.
pub(super) fn callbacks(creds: Option<Credentials>) -> RemoteCallbacks<'static> {
    let mut cb = RemoteCallbacks::new();
    let mut attempts = 0u32;
    cb.credentials(move |_url, username_from_url, allowed| {
        attempts += 1;
        if attempts > 3 {
            return Err(git2::Error::from_str(
                "authentication failed: the server refused the credentials",
            ));
        }
        if allowed.contains(CredentialType::USER_PASS_PLAINTEXT) {
            if let Some(c) = &creds {
                return Cred::userpass_plaintext(&c.user, &c.password);
            }
        }
        let user = username_from_url
            .map(str::to_string)
            .or_else(|| creds.as_ref().map(|c| c.user.clone()))
            .unwrap_or_else(|| "git".to_string());
        if allowed.contains(CredentialType::SSH_KEY) {
            return Cred::ssh_key_from_agent(&user);
        }
        if allowed.contains(CredentialType::USERNAME) {
            return Cred::username(&user);
        }
        if allowed.contains(CredentialType::DEFAULT) {
            return Cred::default();
        }
        Err(git2::Error::from_str(
            "authentication required: put user:password in the URL, or set \
             KUBESYNC_GIT_USERNAME and KUBESYNC_GIT_PASSWORD (or REPOCREDS=user:password)",
        ))
    });
    cb
}

/// A git transport message with a hint where the user can do something
/// about it: this build's libgit2 has no TLS or ssh transport.
fn explain(message: &str) -> String {
    let lower = message.to_ascii_lowercase();
    if lower.contains("tls") || lower.contains("ssl") || lower.contains("unsupported url protocol")
    {
        format!(
            "{message} (this kubesync's git has no https or ssh transport; clone the \
             repository yourself and pass --repo-override URL=PATH, or use a file:// URL)"
        )
    } else {
        message.to_string()
    }
}

/// `message` with any occurrence of the password removed (git messages
/// should never contain it, but a server's error text might echo it).
fn scrub(message: &str, creds: Option<&Credentials>) -> String {
    match creds {
        Some(c) if !c.password.is_empty() => message.replace(&c.password, "<redacted>"),
        _ => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_removes_password() {
        let c = Credentials {
            user: "u".into(),
            password: "hunter2".into(),
        };
        assert_eq!(scrub("bad hunter2!", Some(&c)), "bad <redacted>!");
        assert_eq!(scrub("bad", None), "bad");
    }
}
