//! Git credentials: which user/password (or token) or ssh key a remote is
//! fetched with, and which ssh host keys are trusted.
//!
//! [`GitAuth`] is loaded once (flags, files, environment) and asked per URL
//! ([`GitAuth::for_url`]) for a [`RemoteAuth`]; `remote` hands that to
//! git2's callbacks. The order, most specific first:
//!
//! 1. credentials in the URL itself (`https://user:token@host/…`);
//! 2. the entry of `--git-credentials` whose URL is the longest prefix of the
//!    repository's (compared scheme-less with [`normalize_url`], so
//!    `https://git.example.com/org` and `git@git.example.com:org` name the
//!    same prefix; user/password entries serve http(s) URLs, ssh-key entries
//!    ssh URLs);
//! 3. the defaults: `KUBESYNC_GIT_USERNAME`/`KUBESYNC_GIT_PASSWORD` or the
//!    seeds' `REPOCREDS=user:password` for http(s), `--ssh-private-key` for
//!    ssh (else the ssh agent).
//!
//! Secrets are held in [`Secret`], whose `Debug` and `Display` never show
//! them; errors name files and URLs (credentials stripped), never values.
//! Host keys are checked against `--ssh-known-hosts` (default
//! `~/.ssh/known_hosts`): an unknown host or a different key is refused.

use std::fmt;
use std::path::{Path, PathBuf};

use serde_yaml::Value;

use super::known_hosts::KnownHosts;
use super::url::{normalize_url, redact_url, strip_credentials, Credentials};
use super::{ENV_PASSWORD, ENV_REPOCREDS, ENV_USERNAME};

/// The user name a `token` entry without a `username` authenticates as
/// (GitHub's convention; GitLab and Gitea accept any name with a token).
pub const TOKEN_USER: &str = "x-access-token";

/// A secret string: never shown by `Debug` or `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The value, for handing to git.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// An ssh private key and how to unlock it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshKey {
    /// The ssh user when the URL names none (default `git`).
    pub user: Option<String>,
    pub key: KeySource,
    pub passphrase: Option<Secret>,
}

/// Where an ssh private key is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    File(PathBuf),
    /// The key's text (from a Secret key `sshPrivateKey`).
    Inline(Secret),
}

/// One credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// http(s) basic authentication: a user and a password or token.
    Basic { user: String, password: Secret },
    /// An ssh key.
    Ssh(SshKey),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    /// The prefix as written (credentials stripped), for messages.
    shown: String,
    /// [`normalize_url`] of the prefix.
    key: String,
    credential: Credential,
}

/// Every credential kubesync knows; see the module docs for the order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GitAuth {
    entries: Vec<Entry>,
    default_basic: Option<Credentials>,
    default_ssh: Option<SshKey>,
    /// `None`: `~/.ssh/known_hosts`.
    known_hosts: Option<PathBuf>,
}

/// What one remote is fetched with.
#[derive(Debug, Clone, Default)]
pub struct RemoteAuth {
    pub(crate) basic: Option<Credentials>,
    pub(crate) ssh: Option<SshKey>,
    pub(crate) known_hosts: Option<PathBuf>,
    /// Where the credential came from, for messages ("--git-credentials
    /// entry https://git.example.com/org").
    pub(crate) source: Option<String>,
}

impl RemoteAuth {
    /// The known_hosts file to check ssh host keys against.
    pub(crate) fn known_hosts_path(&self) -> Option<PathBuf> {
        self.known_hosts.clone().or_else(default_known_hosts)
    }
}

fn default_known_hosts() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| PathBuf::from(h).join(".ssh").join("known_hosts"))
}

/// A credentials file or directory that cannot be used. Names the file and
/// the entry, never a secret value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialsError {
    #[error("git credentials {}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
    #[error("git credentials {}: cannot read: {message}", path.display())]
    Unreadable { path: PathBuf, message: String },
}

fn invalid(path: &Path, message: impl Into<String>) -> CredentialsError {
    CredentialsError::Invalid {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

fn read(path: &Path) -> Result<String, CredentialsError> {
    std::fs::read_to_string(path).map_err(|e| CredentialsError::Unreadable {
        path: path.to_path_buf(),
        message: e.kind().to_string(),
    })
}

/// A value read from a file: without the trailing newline editors and
/// `kubectl create secret --from-file` leave.
fn trim_newline(s: String) -> String {
    s.trim_end_matches(['\n', '\r']).to_string()
}

/// The flags, for a command to `#[command(flatten)]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
pub struct GitAuthArgs {
    /// Credentials per repository URL prefix (repeatable): a YAML file, a
    /// directory holding one credential as files (a mounted Secret with keys
    /// `url`, `username`, `password` or `token`, `sshPrivateKey`,
    /// `sshPassphrase`), or a directory of such files and directories. The
    /// longest matching prefix wins.
    #[arg(
        long = "git-credentials",
        value_name = "PATH",
        global = true,
        env = "KUBESYNC_GIT_CREDENTIALS",
        value_delimiter = ','
    )]
    pub git_credentials: Vec<PathBuf>,
    /// The ssh key for ssh:// and git@host:path repositories no
    /// --git-credentials entry covers (default: the ssh agent).
    #[arg(
        long,
        value_name = "FILE",
        global = true,
        env = "KUBESYNC_SSH_PRIVATE_KEY"
    )]
    pub ssh_private_key: Option<PathBuf>,
    /// A file holding the passphrase of --ssh-private-key.
    #[arg(long, value_name = "FILE", global = true, requires = "ssh_private_key")]
    pub ssh_passphrase_file: Option<PathBuf>,
    /// The known_hosts file ssh host keys are checked against; an unknown
    /// host or a changed key is refused [default: ~/.ssh/known_hosts].
    #[arg(
        long,
        value_name = "FILE",
        global = true,
        env = "KUBESYNC_SSH_KNOWN_HOSTS"
    )]
    pub ssh_known_hosts: Option<PathBuf>,
}

impl GitAuth {
    /// The environment's defaults only (`KUBESYNC_GIT_USERNAME`/`_PASSWORD`,
    /// `REPOCREDS`).
    pub fn from_env() -> Self {
        GitAuth {
            default_basic: credentials_from(|k| std::env::var(k).ok()),
            ..GitAuth::default()
        }
    }

    /// Loads the flags' files, plus the environment's defaults.
    pub fn load(args: &GitAuthArgs) -> Result<Self, CredentialsError> {
        let mut auth = GitAuth::from_env();
        for path in &args.git_credentials {
            auth.entries.extend(load_path(path)?);
        }
        if let Some(key) = &args.ssh_private_key {
            if !key.is_file() {
                return Err(invalid(key, "--ssh-private-key: no such file"));
            }
            let passphrase = match &args.ssh_passphrase_file {
                Some(p) => Some(Secret::new(trim_newline(read(p)?))),
                None => None,
            };
            auth.default_ssh = Some(SshKey {
                user: None,
                key: KeySource::File(key.clone()),
                passphrase,
            });
        }
        auth.known_hosts = args.ssh_known_hosts.clone();
        Ok(auth)
    }

    /// Adds an entry (tests and callers that build credentials in code).
    pub fn with_entry(mut self, url_prefix: &str, credential: Credential) -> Self {
        self.entries.push(Entry {
            shown: redact_url(url_prefix),
            key: normalize_url(url_prefix),
            credential,
        });
        self
    }

    /// Sets the known_hosts file.
    pub fn with_known_hosts(mut self, path: impl Into<PathBuf>) -> Self {
        self.known_hosts = Some(path.into());
        self
    }

    /// Sets the default ssh key.
    pub fn with_ssh_key(mut self, key: SshKey) -> Self {
        self.default_ssh = Some(key);
        self
    }

    /// Sets the default user/password (as `REPOCREDS` does).
    pub fn with_basic(mut self, user: &str, password: &str) -> Self {
        self.default_basic = Some(Credentials {
            user: user.to_string(),
            password: password.to_string(),
        });
        self
    }

    /// The known_hosts file in force, parsed (empty when missing).
    pub fn known_hosts(&self) -> Option<PathBuf> {
        self.known_hosts.clone().or_else(default_known_hosts)
    }

    /// What `url` (possibly with credentials in it) is fetched with.
    pub fn for_url(&self, url: &str) -> RemoteAuth {
        let (clean, url_creds) = strip_credentials(url);
        let ssh = is_ssh(&clean);
        let key = normalize_url(&clean);
        let best = self
            .entries
            .iter()
            .filter(|e| matches!(e.credential, Credential::Ssh(_)) == ssh)
            .filter(|e| prefix_matches(&e.key, &key))
            .max_by_key(|e| e.key.len());
        let mut auth = RemoteAuth {
            known_hosts: self.known_hosts.clone(),
            ..RemoteAuth::default()
        };
        if let Some(c) = url_creds.filter(|_| !ssh) {
            auth.basic = Some(c);
            auth.source = Some("the URL".into());
            return auth;
        }
        match best.map(|e| (&e.credential, &e.shown)) {
            Some((Credential::Basic { user, password }, shown)) => {
                auth.basic = Some(Credentials {
                    user: user.clone(),
                    password: password.expose().to_string(),
                });
                auth.source = Some(format!("--git-credentials entry {shown}"));
            }
            Some((Credential::Ssh(k), shown)) => {
                auth.ssh = Some(k.clone());
                auth.source = Some(format!("--git-credentials entry {shown}"));
            }
            None if ssh => {
                auth.ssh = self.default_ssh.clone();
                auth.source = self
                    .default_ssh
                    .as_ref()
                    .map(|_| "--ssh-private-key".into());
            }
            None => {
                auth.basic = self.default_basic.clone();
                auth.source = self
                    .default_basic
                    .as_ref()
                    .map(|_| format!("{ENV_USERNAME}/{ENV_PASSWORD} or {ENV_REPOCREDS}"));
            }
        }
        auth
    }
}

/// Whether `url` is fetched over ssh (`ssh://`, `git+ssh://`, `git@host:path`).
pub(crate) fn is_ssh(url: &str) -> bool {
    let s = url.trim();
    match s.split_once("://") {
        Some((scheme, _)) => matches!(
            scheme.to_ascii_lowercase().as_str(),
            "ssh" | "git+ssh" | "ssh+git"
        ),
        None => !s.starts_with('/') && s.find(':').is_some_and(|c| !s[..c].contains('/') && c >= 2),
    }
}

/// `prefix` covers `key` at a path boundary (`host/org` covers
/// `host/org/repo`, not `host/organisation`).
fn prefix_matches(prefix: &str, key: &str) -> bool {
    key == prefix
        || prefix.is_empty()
        || (key.starts_with(prefix)
            && (prefix.ends_with('/') || key.as_bytes().get(prefix.len()) == Some(&b'/')))
}

/// Default user/password from the environment: `KUBESYNC_GIT_USERNAME` and
/// `KUBESYNC_GIT_PASSWORD`, else the seeds' `REPOCREDS=user:password`
/// (split at the first `:`, so the password may contain `:`).
pub(crate) fn credentials_from(get: impl Fn(&str) -> Option<String>) -> Option<Credentials> {
    let var = |k: &str| get(k).filter(|v| !v.is_empty());
    if let (Some(user), Some(password)) = (var(ENV_USERNAME), var(ENV_PASSWORD)) {
        return Some(Credentials { user, password });
    }
    let raw = var(ENV_REPOCREDS)?;
    match raw.split_once(':') {
        Some((user, password)) if !user.is_empty() => Some(Credentials {
            user: user.to_string(),
            password: password.to_string(),
        }),
        _ => {
            tracing::warn!("{ENV_REPOCREDS} is not in user:password form; ignoring it");
            None
        }
    }
}

/// Loads a file (YAML) or a directory (one credential, or several).
fn load_path(path: &Path) -> Result<Vec<Entry>, CredentialsError> {
    let meta = std::fs::metadata(path).map_err(|e| CredentialsError::Unreadable {
        path: path.to_path_buf(),
        message: e.kind().to_string(),
    })?;
    if meta.is_file() {
        return load_yaml(path);
    }
    if path.join("url").is_file() {
        return load_secret_dir(path).map(|e| vec![e]);
    }
    let mut names: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| CredentialsError::Unreadable {
            path: path.to_path_buf(),
            message: e.kind().to_string(),
        })?
        .filter_map(Result::ok)
        // `..data` and friends: the Secret volume's own bookkeeping.
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.path())
        .collect();
    names.sort();
    let mut out = Vec::new();
    for p in names {
        if p.is_dir() && p.join("url").is_file() {
            out.push(load_secret_dir(&p)?);
        } else if p.is_file() && p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
            out.extend(load_yaml(&p)?);
        }
    }
    if out.is_empty() {
        return Err(invalid(
            path,
            "no credentials found: expected a file `url` (a mounted Secret), \
             directories holding one, or *.yaml files",
        ));
    }
    Ok(out)
}

/// The fields of one credential, whichever way they were written.
#[derive(Default)]
struct Fields {
    url: Option<String>,
    username: Option<String>,
    password: Option<Secret>,
    token: Option<Secret>,
    ssh_key: Option<KeySource>,
    passphrase: Option<Secret>,
}

fn entry_of(path: &Path, what: &str, f: Fields) -> Result<Entry, CredentialsError> {
    let Some(url) = f.url.filter(|u| !u.trim().is_empty()) else {
        return Err(invalid(path, format!("{what}: `url` is required")));
    };
    let (clean, in_url) = strip_credentials(url.trim());
    if in_url.is_some() {
        return Err(invalid(
            path,
            format!("{what} ({clean}): put the password in `password`, not in `url`"),
        ));
    }
    let credential = match (f.password, f.token, f.ssh_key) {
        (Some(password), None, None) => Credential::Basic {
            user: f.username.filter(|u| !u.is_empty()).ok_or_else(|| {
                invalid(
                    path,
                    format!("{what} ({clean}): `password` needs a `username`"),
                )
            })?,
            password,
        },
        (None, Some(token), None) => Credential::Basic {
            user: f
                .username
                .filter(|u| !u.is_empty())
                .unwrap_or_else(|| TOKEN_USER.to_string()),
            password: token,
        },
        (None, None, Some(key)) => Credential::Ssh(SshKey {
            user: f.username.filter(|u| !u.is_empty()),
            key,
            passphrase: f.passphrase,
        }),
        (None, None, None) => {
            return Err(invalid(
                path,
                format!("{what} ({clean}): needs `password`, `token` or an ssh private key"),
            ))
        }
        _ => {
            return Err(invalid(
                path,
                format!("{what} ({clean}): give one of `password`, `token` or an ssh private key"),
            ))
        }
    };
    Ok(Entry {
        key: normalize_url(&clean),
        shown: clean,
        credential,
    })
}

/// A directory of files named after Argo CD's repository Secret keys.
fn load_secret_dir(dir: &Path) -> Result<Entry, CredentialsError> {
    let file = |name: &str| -> Result<Option<String>, CredentialsError> {
        let p = dir.join(name);
        if p.is_file() {
            read(&p).map(|s| Some(trim_newline(s)))
        } else {
            Ok(None)
        }
    };
    let ssh_key = dir.join("sshPrivateKey");
    let fields = Fields {
        url: file("url")?,
        username: file("username")?,
        password: file("password")?.map(Secret::new),
        token: file("token")?.map(Secret::new),
        ssh_key: ssh_key.is_file().then_some(KeySource::File(ssh_key)),
        passphrase: file("sshPassphrase")?.map(Secret::new),
    };
    entry_of(dir, "credential", fields)
}

const YAML_KEYS: [&str; 10] = [
    "url",
    "username",
    "password",
    "passwordFile",
    "token",
    "tokenFile",
    "sshPrivateKey",
    "sshPrivateKeyFile",
    "sshPassphrase",
    "sshPassphraseFile",
];

/// A YAML file: a list of entries, or `{credentials: [...]}`. Read through
/// `Value` with messages of our own, so no parser message can quote a secret.
fn load_yaml(path: &Path) -> Result<Vec<Entry>, CredentialsError> {
    let text = read(path)?;
    let doc: Value = serde_yaml::from_str(&text).map_err(|e| {
        let at = e
            .location()
            .map(|l| format!(" at line {}", l.line()))
            .unwrap_or_default();
        invalid(path, format!("not valid YAML{at}"))
    })?;
    let list = match &doc {
        Value::Sequence(s) => s.clone(),
        Value::Mapping(m) => match m.get("credentials") {
            Some(Value::Sequence(s)) => s.clone(),
            _ => {
                return Err(invalid(
                    path,
                    "expected a list of entries, or `credentials:` with one",
                ))
            }
        },
        Value::Null => Vec::new(),
        _ => return Err(invalid(path, "expected a list of entries")),
    };
    let base = path.parent().unwrap_or(Path::new("."));
    let mut out = Vec::new();
    for (i, item) in list.iter().enumerate() {
        let what = format!("entry {}", i + 1);
        let Value::Mapping(m) = item else {
            return Err(invalid(path, format!("{what}: expected a mapping")));
        };
        let get = |k: &str| -> Result<Option<String>, CredentialsError> {
            match m.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(invalid(
                    path,
                    format!("{what}: `{k}` must be a string (quote it)"),
                )),
            }
        };
        for k in m.keys() {
            let name = k.as_str().unwrap_or_default();
            if !YAML_KEYS.contains(&name) {
                return Err(invalid(
                    path,
                    format!(
                        "{what}: unknown key `{name}` (known: {})",
                        YAML_KEYS.join(", ")
                    ),
                ));
            }
        }
        let from_file = |p: Option<String>| -> Result<Option<Secret>, CredentialsError> {
            match p {
                Some(p) => read(&base.join(p)).map(|s| Some(Secret::new(trim_newline(s)))),
                None => Ok(None),
            }
        };
        let either = |inline: Option<String>, file: Option<String>, key: &str| match (inline, file)
        {
            (Some(_), Some(_)) => Err(invalid(
                path,
                format!("{what}: give `{key}` or `{key}File`, not both"),
            )),
            (Some(v), None) => Ok(Some(Secret::new(v))),
            (None, f) => from_file(f),
        };
        let url = get("url")?;
        let username = get("username")?;
        let password = either(get("password")?, get("passwordFile")?, "password")?;
        let token = either(get("token")?, get("tokenFile")?, "token")?;
        let passphrase = either(
            get("sshPassphrase")?,
            get("sshPassphraseFile")?,
            "sshPassphrase",
        )?;
        let ssh_key = match (get("sshPrivateKey")?, get("sshPrivateKeyFile")?) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    path,
                    format!("{what}: give `sshPrivateKey` or `sshPrivateKeyFile`, not both"),
                ))
            }
            (Some(k), None) => Some(KeySource::Inline(Secret::new(k))),
            (None, Some(f)) => {
                let p = base.join(f);
                if !p.is_file() {
                    return Err(invalid(
                        path,
                        format!("{what}: sshPrivateKeyFile {} does not exist", p.display()),
                    ));
                }
                Some(KeySource::File(p))
            }
            (None, None) => None,
        };
        out.push(entry_of(
            path,
            &what,
            Fields {
                url,
                username,
                password,
                token,
                ssh_key,
                passphrase,
            },
        )?);
    }
    Ok(out)
}

/// Reads the known_hosts file at `path` (a missing file knows no host).
pub(crate) fn read_known_hosts(path: &Path) -> KnownHosts {
    match std::fs::read_to_string(path) {
        Ok(text) => KnownHosts::parse(&text),
        Err(_) => KnownHosts::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_urls() {
        for u in [
            "ssh://git@h/x",
            "git+ssh://h/x",
            "git@github.com:org/repo",
            "host:path",
        ] {
            assert!(is_ssh(u), "{u}");
        }
        for u in [
            "https://h/x",
            "file:///x",
            "/abs/path",
            "http://h:80/x",
            "C:/x",
        ] {
            assert!(!is_ssh(u), "{u}");
        }
    }

    #[test]
    fn longest_prefix_wins_per_transport() {
        let basic = |u: &str| Credential::Basic {
            user: u.into(),
            password: Secret::new("p"),
        };
        let key = |f: &str| {
            Credential::Ssh(SshKey {
                user: None,
                key: KeySource::File(f.into()),
                passphrase: None,
            })
        };
        let auth = GitAuth::default()
            .with_entry("https://git.example.com", basic("host"))
            .with_entry("https://git.example.com/team/", basic("team"))
            .with_entry("https://git.example.com/team/special.git", basic("repo"))
            .with_entry("git@git.example.com:team", key("team-key"))
            .with_basic("env", "e");
        let user = |u: &str| auth.for_url(u).basic.map(|c| c.user);
        assert_eq!(user("https://git.example.com/other/x"), Some("host".into()));
        assert_eq!(
            user("https://git.example.com/team/x.git"),
            Some("team".into())
        );
        assert_eq!(
            user("https://git.example.com/team/special"),
            Some("repo".into())
        );
        assert_eq!(
            user("https://git.example.com/teamwork/x"),
            Some("host".into())
        );
        assert_eq!(user("https://elsewhere.example/x"), Some("env".into()));
        assert_eq!(user("https://u:pw@elsewhere.example/x"), Some("u".into()));
        let ssh = auth.for_url("ssh://git@git.example.com/team/x.git");
        assert!(ssh.basic.is_none());
        assert_eq!(
            ssh.ssh.map(|k| k.key),
            Some(KeySource::File("team-key".into()))
        );
        assert!(auth.for_url("git@git.example.com:other/x").ssh.is_none());
    }

    #[test]
    fn repocreds_and_env() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let c = credentials_from(env(&[("REPOCREDS", "bot:pa:ss")])).unwrap();
        assert_eq!((c.user.as_str(), c.password.as_str()), ("bot", "pa:ss"));
        let c = credentials_from(env(&[
            ("REPOCREDS", "bot:x"),
            ("KUBESYNC_GIT_USERNAME", "u"),
            ("KUBESYNC_GIT_PASSWORD", "p"),
        ]))
        .unwrap();
        assert_eq!(c.user, "u");
        assert!(credentials_from(env(&[("REPOCREDS", "nocolon")])).is_none());
        assert!(credentials_from(env(&[])).is_none());
    }

    #[test]
    fn files_and_secret_directories() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("token"), "tok-secret\n").unwrap();
        std::fs::write(d.join("id_ed25519"), "KEY").unwrap();
        std::fs::write(
            d.join("creds.yaml"),
            "credentials:\n\
             - url: https://git.example.com/org\n  username: bot\n  password: hunter2\n\
             - url: https://tokens.example.com/\n  tokenFile: token\n\
             - url: git@git.example.com:org\n  sshPrivateKeyFile: id_ed25519\n  username: deploy\n",
        )
        .unwrap();
        let secret = d.join("secret");
        std::fs::create_dir(&secret).unwrap();
        std::fs::create_dir(secret.join("..data")).unwrap();
        std::fs::write(secret.join("url"), "https://secret.example.com/x\n").unwrap();
        std::fs::write(secret.join("username"), "s\n").unwrap();
        std::fs::write(secret.join("password"), "from-secret\n").unwrap();

        let auth = GitAuth::load(&GitAuthArgs {
            git_credentials: vec![d.join("creds.yaml"), secret.clone()],
            ..GitAuthArgs::default()
        })
        .unwrap();
        let b = |u: &str| auth.for_url(u).basic.unwrap();
        assert_eq!(b("https://git.example.com/org/r").password, "hunter2");
        let t = b("https://tokens.example.com/r");
        assert_eq!(
            (t.user.as_str(), t.password.as_str()),
            (TOKEN_USER, "tok-secret")
        );
        assert_eq!(
            b("https://secret.example.com/x.git").password,
            "from-secret"
        );
        let k = auth.for_url("ssh://git@git.example.com/org/r").ssh.unwrap();
        assert_eq!(k.user.as_deref(), Some("deploy"));
        // The directory of both is read the same way.
        let all = GitAuth::load(&GitAuthArgs {
            git_credentials: vec![d.to_path_buf()],
            ..GitAuthArgs::default()
        })
        .unwrap();
        assert_eq!(all.entries.len(), 4);
        // Debug never shows a secret.
        let dbg = format!(
            "{auth:?} {:?}",
            auth.for_url("https://git.example.com/org/r")
        );
        assert!(
            !dbg.contains("hunter2") && !dbg.contains("tok-secret"),
            "{dbg}"
        );
    }

    #[test]
    fn bad_files_are_named_without_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            (
                "- url: https://h/x\n  password: 12345\n  username: u\n",
                "must be a string",
            ),
            (
                "- url: https://h/x\n  passwrd: hunter2\n",
                "unknown key `passwrd`",
            ),
            (
                "- url: https://h/x\n  password: hunter2\n",
                "needs a `username`",
            ),
            ("- url: https://u:hunter2@h/x\n  token: t\n", "not in `url`"),
            ("- username: u\n  password: hunter2\n", "`url` is required"),
            (
                "- url: https://h/x\n  token: a\n  password: hunter2\n  username: u\n",
                "give one of",
            ),
            ("- url: https://h/x\n", "needs `password`"),
            ("password: [hunter2\n", "not valid YAML"),
        ];
        for (i, (text, want)) in cases.iter().enumerate() {
            let p = dir.path().join(format!("c{i}.yaml"));
            std::fs::write(&p, text).unwrap();
            let err = GitAuth::load(&GitAuthArgs {
                git_credentials: vec![p.clone()],
                ..GitAuthArgs::default()
            })
            .unwrap_err()
            .to_string();
            assert!(err.contains(want), "{text}: {err}");
            assert!(err.contains(&p.display().to_string()), "{err}");
            assert!(!err.contains("hunter2") && !err.contains("12345"), "{err}");
        }
    }
}
