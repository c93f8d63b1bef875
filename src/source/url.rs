//! Repository URLs as text: the comparison key that lets `https://`, `ssh://`
//! and scp-style spellings of one repository match, credential stripping for
//! display and for handing URLs to git, and `--repo-override URL=PATH`.
//!
//! Pure string work; nothing here touches the network or the file system.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// `--repo-override URL=PATH`: applications whose `repoURL` matches `url`
/// (compared with [`normalize_url`]) render from the local directory `path`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RepoOverride {
    pub url: String,
    pub path: PathBuf,
}

impl FromStr for RepoOverride {
    type Err = String;

    /// Splits at the first `=`: URL on the left, local path on the right.
    fn from_str(s: &str) -> Result<Self, String> {
        let expected = "expected URL=PATH, e.g. \
             https://git.example.com/org/config.git=../config";
        let Some((url, path)) = s.split_once('=') else {
            return Err(format!(
                "repo override \"{}\" has no \"=\": {expected}",
                redact_url(s)
            ));
        };
        let (url, path) = (url.trim(), path.trim());
        if url.is_empty() {
            return Err(format!(
                "repo override \"{}\" has an empty URL: {expected}",
                redact_url(s)
            ));
        }
        if path.is_empty() {
            return Err(format!(
                "repo override \"{}\" has an empty PATH: {expected}",
                redact_url(s)
            ));
        }
        Ok(RepoOverride {
            url: url.to_string(),
            path: PathBuf::from(path),
        })
    }
}

impl fmt::Display for RepoOverride {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", redact_url(&self.url), self.path.display())
    }
}

/// A user name and password for a remote. `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Credentials {
    pub user: String,
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Credentials {{ user: {:?}, password: <redacted> }}",
            self.user
        )
    }
}

/// A URL taken apart: `scheme://userinfo@host/path` or scp-style `user@host:path`.
#[derive(Debug, PartialEq, Eq)]
struct Parts<'a> {
    /// Lower-cased scheme; `None` for scp-style.
    scheme: Option<String>,
    user: Option<&'a str>,
    password: Option<&'a str>,
    /// `host` or `host:port` as written.
    hostport: &'a str,
    /// Everything after the host (without the separating `/` or `:`).
    path: &'a str,
}

fn parse(s: &str) -> Option<Parts<'_>> {
    if let Some((scheme, rest)) = s.split_once("://") {
        if scheme.is_empty()
            || !scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        {
            return None;
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        let (userinfo, hostport) = match authority.rfind('@') {
            Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
            None => (None, authority),
        };
        let (user, password) = match userinfo {
            None => (None, None),
            Some(ui) => match ui.split_once(':') {
                Some((u, p)) => (Some(u), Some(p)),
                None => (Some(ui), None),
            },
        };
        return Some(Parts {
            scheme: Some(scheme.to_ascii_lowercase()),
            user,
            password,
            hostport,
            path,
        });
    }
    // scp-style: `[user@]host:path`, a ':' before any '/', and not a one-letter
    // (Windows drive) host.
    let colon = s.find(':')?;
    if s[..colon].contains('/') {
        return None;
    }
    let (userhost, path) = (&s[..colon], &s[colon + 1..]);
    let (user, host) = match userhost.rfind('@') {
        Some(i) => (Some(&userhost[..i]), &userhost[i + 1..]),
        None => (None, userhost),
    };
    if host.len() < 2 || path.is_empty() {
        return None;
    }
    Some(Parts {
        scheme: None,
        user,
        password: None,
        hostport: host,
        path,
    })
}

fn default_port(scheme: Option<&str>) -> Option<&'static str> {
    match scheme {
        None | Some("ssh") | Some("git+ssh") | Some("ssh+git") => Some("22"),
        Some("https") => Some("443"),
        Some("http") => Some("80"),
        Some("git") => Some("9418"),
        _ => None,
    }
}

fn collapse_slashes(p: &str) -> String {
    let mut out = String::with_capacity(p.len());
    for part in p.split('/') {
        if part.is_empty() {
            continue;
        }
        out.push('/');
        out.push_str(part);
    }
    out
}

/// The comparison key of a repository URL, so that every spelling of one
/// repository gives the same key:
///
/// - `https://Host/org/repo.git/`, `http://host/org/repo`,
///   `ssh://git@host/org/repo`, `git@host:org/repo.git` → `host/org/repo`
///   (host lower-cased, credentials, scheme, default port, trailing `/` and
///   `.git` dropped; a non-default port is kept);
/// - `file:///srv/repo` and `/srv/repo` → `file:/srv/repo` (a local path keeps
///   its `.git` suffix: `/srv/repo.git` is another directory);
/// - anything else is returned trimmed.
pub fn normalize_url(url: &str) -> String {
    let s = url.trim();
    if s.starts_with('/') {
        return format!("file:{}", collapse_slashes(s));
    }
    let Some(parts) = parse(s) else {
        return s.to_string();
    };
    if parts.scheme.as_deref() == Some("file") {
        // file:///path (empty host) or file://localhost/path
        return format!("file:{}", collapse_slashes(parts.path));
    }
    let (host, port) = match parts.hostport.rsplit_once(':') {
        // An IPv6 literal `[::1]` has colons of its own.
        Some((h, p)) if !p.contains(']') && p.chars().all(|c| c.is_ascii_digit()) => (h, Some(p)),
        _ => (parts.hostport, None),
    };
    let mut key = host.to_ascii_lowercase();
    if let Some(p) = port {
        if !p.is_empty() && Some(p) != default_port(parts.scheme.as_deref()) {
            key.push(':');
            key.push_str(p);
        }
    }
    let mut path = parts.path.trim_end_matches('/');
    if let Some(stripped) = path.strip_suffix(".git") {
        path = stripped.trim_end_matches('/');
    }
    key.push_str(&collapse_slashes(path));
    key
}

/// `url` without its password (and, for `http(s)`, without any user info:
/// a user name there is often a token). Safe to show and to log.
pub fn redact_url(url: &str) -> String {
    strip_credentials(url).0
}

/// `url` as it may be given to git (see [`redact_url`]) and the credentials
/// it embedded, percent-decoded.
pub(crate) fn strip_credentials(url: &str) -> (String, Option<Credentials>) {
    let s = url.trim();
    match parse(s) {
        Some(Parts {
            scheme: Some(scheme),
            user: Some(user),
            password,
            hostport,
            path,
        }) => {
            let creds = Credentials {
                user: percent_decode(user),
                password: password.map(percent_decode).unwrap_or_default(),
            };
            let keep_user = !matches!(scheme.as_str(), "http" | "https");
            let userinfo = if keep_user {
                format!("{user}@")
            } else {
                String::new()
            };
            let sep = if path.is_empty() && !s.ends_with('/') {
                ""
            } else {
                "/"
            };
            let clean = format!("{scheme}://{userinfo}{hostport}{sep}{path}");
            // An ssh user name alone is not a secret and no credential to supply.
            let creds = (!keep_user || password.is_some()).then_some(creds);
            (clean, creds)
        }
        // scp-style and unknown forms: still never show `user:password@`.
        _ => match s.rfind('@') {
            Some(at) if s[..at].contains(':') && !s[..at].contains('/') => {
                let user = s[..at].split(':').next().unwrap_or_default();
                (format!("{user}{}", &s[at..]), None)
            }
            _ => (s.to_string(), None),
        },
    }
}

/// Whether `url` names a repository reached over the network or on disk by
/// URL (as opposed to text git cannot clone at all).
pub(crate) fn is_cloneable(url: &str) -> bool {
    let s = url.trim();
    s.starts_with('/') || parse(s).is_some()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_of_one_repository_match() {
        let same = [
            "https://github.com/org/repo",
            "https://github.com/org/repo.git",
            "https://github.com/org/repo/",
            "https://github.com/org/repo.git/",
            "https://GitHub.COM/org/repo",
            "http://github.com/org/repo",
            "https://github.com:443/org/repo",
            "https://user:secret@github.com/org/repo.git",
            "ssh://git@github.com/org/repo",
            "ssh://git@github.com:22/org/repo.git",
            "git@github.com:org/repo.git",
            "git@github.com:org/repo",
            "github.com:org/repo",
            "  https://github.com/org/repo  ",
        ];
        for s in same {
            assert_eq!(normalize_url(s), "github.com/org/repo", "{s}");
        }
    }

    #[test]
    fn different_repositories_differ() {
        let a = normalize_url("https://github.com/org/repo");
        for other in [
            "https://github.com/org/Repo",
            "https://github.com/org/repo2",
            "https://gitlab.com/org/repo",
            "https://github.com:8443/org/repo",
            "https://github.com/other/repo",
        ] {
            assert_ne!(normalize_url(other), a, "{other}");
        }
    }

    #[test]
    fn local_paths_and_file_urls() {
        assert_eq!(normalize_url("/srv/git/repo"), "file:/srv/git/repo");
        assert_eq!(normalize_url("file:///srv/git/repo"), "file:/srv/git/repo");
        assert_eq!(
            normalize_url("file:///srv//git/repo/"),
            "file:/srv/git/repo"
        );
        assert_ne!(
            normalize_url("/srv/git/repo.git"),
            normalize_url("/srv/git/repo")
        );
        assert_eq!(normalize_url("relative/dir"), "relative/dir");
    }

    #[test]
    fn redaction_removes_secrets() {
        let cases = [
            (
                "https://user:p%40ss@host/org/r.git",
                "https://host/org/r.git",
            ),
            ("https://token@host/org/r.git", "https://host/org/r.git"),
            ("ssh://git:secret@host/org/r", "ssh://git@host/org/r"),
            ("ssh://git@host/org/r", "ssh://git@host/org/r"),
            ("git@host:org/r.git", "git@host:org/r.git"),
            ("https://host/org/r.git", "https://host/org/r.git"),
            ("file:///srv/r", "file:///srv/r"),
            ("/srv/r", "/srv/r"),
            ("user:pw@weird host", "user@weird host"),
            ("user:pw@host:org/r", "user@host:org/r"),
            ("git@host:org/r@v1", "git@host:org/r@v1"),
        ];
        for (input, want) in cases {
            assert_eq!(redact_url(input), want, "{input}");
        }
    }

    #[test]
    fn credentials_are_extracted_and_decoded() {
        let (clean, creds) = strip_credentials("https://alice:p%40ss%3Aw@host/r.git");
        assert_eq!(clean, "https://host/r.git");
        let creds = creds.expect("credentials");
        assert_eq!(creds.user, "alice");
        assert_eq!(creds.password, "p@ss:w");
        assert!(!format!("{creds:?}").contains("p@ss"));

        let (_, creds) = strip_credentials("https://tok123@host/r.git");
        assert_eq!(creds.map(|c| c.user), Some("tok123".to_string()));
        assert!(strip_credentials("ssh://git@host/r").1.is_none());
        assert!(strip_credentials("git@host:r").1.is_none());
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%zz%41"), "%zzA");
    }

    #[test]
    fn repo_override_parses() {
        let o: RepoOverride = "https://git.example.com/org/config.git=../config"
            .parse()
            .unwrap();
        assert_eq!(o.url, "https://git.example.com/org/config.git");
        assert_eq!(o.path, PathBuf::from("../config"));
        let o: RepoOverride = " git@h:o/r.git = /tmp/a=b ".parse().unwrap();
        assert_eq!(o.url, "git@h:o/r.git");
        assert_eq!(o.path, PathBuf::from("/tmp/a=b"));
        assert_eq!(o.to_string(), "git@h:o/r.git=/tmp/a=b");
    }

    #[test]
    fn repo_override_errors_say_the_expected_form() {
        for bad in ["https://host/r.git", "=/tmp/x", "https://host/r.git=", ""] {
            let err = bad.parse::<RepoOverride>().unwrap_err();
            assert!(err.contains("URL=PATH"), "{bad}: {err}");
        }
        let err = "https://u:secret@host/r.git"
            .parse::<RepoOverride>()
            .unwrap_err();
        assert!(!err.contains("secret"), "{err}");
    }
}
