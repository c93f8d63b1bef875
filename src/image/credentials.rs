//! Registry credentials, pure: reading a docker config (`.dockerconfigjson`
//! of a `kubernetes.io/dockerconfigjson` Secret, a mounted
//! `~/.docker/config.json`, or the older `.dockercfg` map) and choosing the
//! entry for a registry as the kubelet does (keys may be `host`,
//! `host:port`, `https://host/v1/`; Docker Hub answers to its aliases).
//! Owns [`Credentials`], whose `Debug` never shows the password. Reading the
//! Secrets and files is `sync`'s and the CLI's.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use serde_json::Value;

use super::reference::DOCKER_HUB;

/// A username and password (or token) for one registry.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl Credentials {
    /// The `Authorization: Basic …` value.
    pub fn basic_header(&self) -> String {
        let raw = format!("{}:{}", self.username, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }

    /// A short stable fingerprint (never reversible to the password) that
    /// tells cached results of different credentials apart.
    pub fn fingerprint(&self) -> String {
        let d = super::reference::Digest::sha256_of(
            format!("{}\0{}", self.username, self.password).as_bytes(),
        );
        d.short().to_string()
    }
}

/// The credentials of one docker config, by registry host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DockerConfig {
    entries: BTreeMap<String, Credentials>,
}

impl DockerConfig {
    /// Parses a docker config: `{"auths": {KEY: {"auth": base64(user:pass)}
    /// | {"username", "password"}}}`, or the legacy `.dockercfg` map
    /// without `auths`. Entries without usable credentials are skipped; a
    /// document that is not JSON is an error (naming nothing secret).
    pub fn parse(text: &str) -> Result<DockerConfig, String> {
        let v: Value = serde_json::from_str(text)
            .map_err(|e| format!("not a docker config (invalid JSON at line {})", e.line()))?;
        let map = match v.get("auths") {
            Some(Value::Object(m)) => m,
            Some(_) => return Err("not a docker config (\"auths\" is not a map)".into()),
            None => match &v {
                Value::Object(m) => m,
                _ => return Err("not a docker config (not a JSON object)".into()),
            },
        };
        let mut entries = BTreeMap::new();
        for (key, entry) in map {
            if let Some(c) = entry_credentials(entry) {
                entries.insert(normalize_key(key), c);
            }
        }
        Ok(DockerConfig { entries })
    }

    /// The credentials for `registry` (as a reference names it).
    pub fn lookup(&self, registry: &str) -> Option<&Credentials> {
        if let Some(c) = self.entries.get(registry) {
            return Some(c);
        }
        if registry == DOCKER_HUB {
            for alias in ["index.docker.io", "registry-1.docker.io"] {
                if let Some(c) = self.entries.get(alias) {
                    return Some(c);
                }
            }
        }
        None
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn entry_credentials(entry: &Value) -> Option<Credentials> {
    let text = |k: &str| {
        entry
            .get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    if let Some(auth) = text("auth") {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .ok()?;
        let raw = String::from_utf8(raw).ok()?;
        let (u, p) = raw.split_once(':')?;
        return Some(Credentials {
            username: u.to_string(),
            password: p.to_string(),
        });
    }
    Some(Credentials {
        username: text("username")?.to_string(),
        password: text("password")?.to_string(),
    })
}

/// `https://index.docker.io/v1/` → `index.docker.io`; `http://h:5000` →
/// `h:5000`; `h:5000/path` → `h:5000`.
fn normalize_key(key: &str) -> String {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = k.split('/').next().unwrap_or(k);
    if host == DOCKER_HUB {
        "index.docker.io".to_string()
    } else {
        host.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_and_username_password_entries() {
        let auth = base64::engine::general_purpose::STANDARD.encode("alice:s3cret:with:colons");
        let text = format!(
            r#"{{"auths": {{
                "127.0.0.1:5000": {{"auth": "{auth}"}},
                "https://index.docker.io/v1/": {{"username": "bob", "password": "pw"}},
                "ghcr.io": {{"email": "x@example.com"}}
            }}}}"#
        );
        let c = DockerConfig::parse(&text).unwrap();
        let a = c.lookup("127.0.0.1:5000").unwrap();
        assert_eq!(a.username, "alice");
        assert_eq!(a.password, "s3cret:with:colons");
        assert_eq!(c.lookup("docker.io").unwrap().username, "bob");
        assert!(c.lookup("ghcr.io").is_none());
        assert!(!format!("{a:?}").contains("s3cret"));
        assert_ne!(
            a.fingerprint(),
            c.lookup("docker.io").unwrap().fingerprint()
        );
    }

    #[test]
    fn legacy_dockercfg_and_keys_with_scheme() {
        let c = DockerConfig::parse(
            r#"{"http://registry.local:5000/v2/": {"username": "u", "password": "p"}}"#,
        )
        .unwrap();
        assert_eq!(c.lookup("registry.local:5000").unwrap().password, "p");
        let c =
            DockerConfig::parse(r#"{"auths": {"docker.io": {"username": "u", "password": "p"}}}"#)
                .unwrap();
        assert!(c.lookup("docker.io").is_some());
    }

    #[test]
    fn bad_documents_are_errors_without_content() {
        let e = DockerConfig::parse("{secret").unwrap_err();
        assert!(!e.contains("secret"), "{e}");
        assert!(DockerConfig::parse(r#"{"auths": 5}"#).is_err());
        assert!(DockerConfig::parse("[]").is_err());
        assert!(DockerConfig::parse(r#"{"auths": {"h": {"auth": "!!!"}}}"#)
            .unwrap()
            .is_empty());
    }
}
