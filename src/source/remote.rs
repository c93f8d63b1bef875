//! Remote repositories: a bare mirror per URL in the cache
//! (`<cache>/<repo-hash>/mirror.git`), created on first use and fetched once
//! per [`super::Sources`]. Branches are mirrored as `refs/heads/*`, tags as
//! `refs/tags/*` (deleted branches pruned), and the mirror's `HEAD` follows the
//! remote's default branch.
//!
//! The URL handed to git never carries credentials: they are supplied through
//! git2's credential callback (see `credentials` for which) and never
//! written to disk or logged; ssh host keys are checked against a
//! known_hosts file in the certificate callback. [`ls_remote`] lists a
//! remote's refs without fetching, for polling. Connect timeouts are set
//! process-wide so an unreachable host fails fast.

use std::path::Path;
use std::sync::Once;

use std::sync::Arc;

use base64::Engine;
use git2::cert::CertHostkey;
use git2::{
    AutotagOption, CertificateCheckStatus, Cred, CredentialType, Direction, ErrorClass, ErrorCode,
    FetchOptions, FetchPrune, Remote, RemoteCallbacks, Repository,
};
use parking_lot::Mutex;
use sha2::{Digest, Sha256};

use super::credentials::{read_known_hosts, GitAuth, KeySource, RemoteAuth, SshKey};
use super::known_hosts::{host_name, HostKeyVerdict};
use super::url::{strip_credentials, Credentials};
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
    auth: &RemoteAuth,
) -> Result<(), SourceError> {
    set_timeouts();
    if mirror_dir.exists() {
        match Repository::open_bare(mirror_dir) {
            Ok(repo) => return fetch(&repo, url, shown, auth),
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
        .and_then(|repo| fetch(&repo, url, shown, auth));
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

fn fetch(repo: &Repository, url: &str, shown: &str, auth: &RemoteAuth) -> Result<(), SourceError> {
    let failure = Failure::default();
    let fail = |e: git2::Error| failure.error(shown, auth, &e);
    let mut remote = repo.remote_anonymous(url).map_err(fail)?;
    let mut opts = FetchOptions::new();
    opts.remote_callbacks(callbacks(auth, url, failure.clone()))
        .prune(FetchPrune::On)
        .download_tags(AutotagOption::All);
    remote
        .fetch(&REFSPECS, Some(&mut opts), None)
        .map_err(fail)?;
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

/// One ref a remote advertises.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteRef {
    /// `HEAD`, `refs/heads/main`, `refs/tags/v1`, `refs/tags/v1^{}` (peeled).
    pub name: String,
    /// The commit (or tag object) it points at, hex.
    pub oid: String,
    /// For a symbolic ref (`HEAD`), what it points to (`refs/heads/main`).
    pub symref_target: Option<String>,
}

/// The refs `url` advertises, in one connection and without fetching any
/// object (`git ls-remote`): what a poll needs to see whether anything
/// changed. Credentials and host keys as for a fetch (`auth`); failures are
/// [`SourceError::Auth`] (credentials, host key) or
/// [`SourceError::Unreachable`], naming the URL without credentials.
pub fn ls_remote(url: &str, auth: &GitAuth) -> Result<Vec<RemoteRef>, SourceError> {
    let (clean, _) = strip_credentials(url);
    ls_remote_as(&clean, &auth.for_url(url))
}

/// [`ls_remote`] of a credential-free `clean` URL with the credentials
/// already chosen for it (what [`super::Sources::poll`] holds).
pub(crate) fn ls_remote_as(
    clean: &str,
    remote_auth: &RemoteAuth,
) -> Result<Vec<RemoteRef>, SourceError> {
    set_timeouts();
    let clean = clean.to_string();
    let failure = Failure::default();
    let fail = |e: git2::Error| failure.error(&clean, remote_auth, &e);
    let mut remote = Remote::create_detached(clean.as_str()).map_err(fail)?;
    let cb = callbacks(remote_auth, &clean, failure.clone());
    let conn = remote
        .connect_auth(Direction::Fetch, Some(cb), None)
        .map_err(fail)?;
    let heads = conn.list().map_err(fail)?;
    Ok(heads
        .iter()
        .map(|h| RemoteRef {
            name: h.name().to_string(),
            oid: h.oid().to_string(),
            symref_target: h.symref_target().map(str::to_string),
        })
        .collect())
}

/// Why our callbacks refused a transfer (the git error then only says
/// "callback returned an error"): set by them, read when mapping the error.
#[derive(Clone, Default)]
struct Failure(Arc<Mutex<Option<String>>>);

impl Failure {
    fn set(&self, reason: String) -> git2::Error {
        let e = git2::Error::from_str(&reason);
        *self.0.lock() = Some(reason);
        e
    }

    fn error(&self, shown: &str, auth: &RemoteAuth, e: &git2::Error) -> SourceError {
        if let Some(reason) = self.0.lock().clone() {
            return SourceError::Auth {
                url: shown.to_string(),
                reason,
            };
        }
        let message = scrub(e.message(), auth.basic.as_ref());
        if matches!(e.code(), ErrorCode::Auth | ErrorCode::Certificate)
            || e.class() == ErrorClass::Ssh && message.to_ascii_lowercase().contains("auth")
        {
            return SourceError::Auth {
                url: shown.to_string(),
                reason: message,
            };
        }
        SourceError::Unreachable {
            url: shown.to_string(),
            reason: explain(&message),
        }
    }
}

/// Credential and certificate callbacks for `url`: each credential type is
/// offered once, so a refused password or key fails instead of looping; ssh
/// host keys are checked against the known_hosts file.
fn callbacks(auth: &RemoteAuth, url: &str, failure: Failure) -> RemoteCallbacks<'static> {
    let mut cb = RemoteCallbacks::new();
    let mut tried = CredentialType::empty();
    let creds = auth.clone();
    let from = auth
        .source
        .clone()
        .map(|s| format!(" (credentials from {s})"))
        .unwrap_or_default();
    let fail = failure.clone();
    cb.credentials(move |_url, username_from_url, allowed| {
        let user = username_from_url
            .map(str::to_string)
            .or_else(|| creds.ssh.as_ref().and_then(|k| k.user.clone()))
            .or_else(|| creds.basic.as_ref().map(|c| c.user.clone()))
            .unwrap_or_else(|| "git".to_string());
        if allowed.contains(CredentialType::USER_PASS_PLAINTEXT) {
            if let Some(c) = &creds.basic {
                if tried.contains(CredentialType::USER_PASS_PLAINTEXT) {
                    return Err(fail.set(format!(
                        "authentication failed: the server refused user \"{}\" and its password{from}",
                        c.user
                    )));
                }
                tried |= CredentialType::USER_PASS_PLAINTEXT;
                return Cred::userpass_plaintext(&c.user, &c.password);
            }
        }
        if allowed.contains(CredentialType::SSH_KEY) {
            if tried.contains(CredentialType::SSH_KEY) {
                let what = match &creds.ssh {
                    Some(_) => "the ssh key",
                    None => "the ssh agent's keys",
                };
                return Err(fail.set(format!(
                    "authentication failed: the server refused {what} for user \"{user}\"{from}"
                )));
            }
            tried |= CredentialType::SSH_KEY;
            return match &creds.ssh {
                Some(key) => ssh_cred(&user, key).map_err(|e| {
                    fail.set(format!("cannot use the ssh key{from}: {}", e.message()))
                }),
                None => Cred::ssh_key_from_agent(&user),
            };
        }
        if allowed.contains(CredentialType::USERNAME) && !tried.contains(CredentialType::USERNAME)
        {
            tried |= CredentialType::USERNAME;
            return Cred::username(&user);
        }
        if allowed.contains(CredentialType::DEFAULT) && !tried.contains(CredentialType::DEFAULT) {
            tried |= CredentialType::DEFAULT;
            return Cred::default();
        }
        Err(fail.set(
            "authentication required: no credentials for this URL; give them with \
             --git-credentials, KUBESYNC_GIT_USERNAME and KUBESYNC_GIT_PASSWORD, or \
             REPOCREDS=user:password"
                .to_string(),
        ))
    });
    let known_hosts = auth.known_hosts_path();
    let port = ssh_port(url);
    cb.certificate_check(move |cert, host| {
        let Some(hostkey) = cert.as_hostkey() else {
            // TLS: libgit2's own verification against the system's CAs.
            return Ok(CertificateCheckStatus::CertificatePassthrough);
        };
        check_host_key(hostkey, host, port, known_hosts.as_deref())
            .map(|()| CertificateCheckStatus::CertificateOk)
            .map_err(|reason| failure.set(format!("host key verification failed: {reason}")))
    });
    cb
}

fn ssh_cred(user: &str, key: &SshKey) -> Result<Cred, git2::Error> {
    let passphrase = key.passphrase.as_ref().map(|p| p.expose());
    match &key.key {
        KeySource::File(path) => Cred::ssh_key(user, None, path, passphrase),
        KeySource::Inline(text) => Cred::ssh_key_from_memory(user, None, text.expose(), passphrase),
    }
}

/// The ssh port of `url` (22 unless `ssh://host:port/`).
fn ssh_port(url: &str) -> u16 {
    let Some((_, rest)) = url.split_once("://") else {
        return 22;
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let hostport = authority.rsplit('@').next().unwrap_or_default();
    match hostport.rsplit_once(':') {
        Some((_, p)) if !p.contains(']') => p.parse().unwrap_or(22),
        _ => 22,
    }
}

/// `Ok` when `known_hosts` lists `host` with the key it offered; otherwise
/// why not, naming the file, the host and the key's fingerprint.
fn check_host_key(
    cert: &CertHostkey<'_>,
    host: &str,
    port: u16,
    known_hosts: Option<&Path>,
) -> Result<(), String> {
    let Some(file) = known_hosts else {
        return Err("no known_hosts file (HOME is unset; pass --ssh-known-hosts FILE)".into());
    };
    let (Some(key), Some(kind)) = (cert.hostkey(), cert.hostkey_type()) else {
        return Err(format!("{host} sent no host key kubesync can read"));
    };
    let fingerprint = format!(
        "SHA256:{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(Sha256::digest(key))
    );
    let name = host_name(host, port);
    let shown = file.display();
    match read_known_hosts(file).check(host, port, kind.name(), key) {
        HostKeyVerdict::Trusted => Ok(()),
        HostKeyVerdict::Unknown => Err(format!(
            "{name} is not in {shown} ({} key {fingerprint}); after checking that fingerprint, \
             add it: ssh-keyscan -p {port} {host} >> {shown}",
            kind.name()
        )),
        HostKeyVerdict::Mismatch { known } => Err(format!(
            "the {} key {name} offered ({fingerprint}) does not match {shown}, which lists \
             {name} with {}: the host key changed, or someone is intercepting the connection",
            kind.name(),
            known.join(", ")
        )),
        HostKeyVerdict::Revoked => Err(format!(
            "the key {name} offered ({fingerprint}) is marked @revoked in {shown}"
        )),
    }
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
