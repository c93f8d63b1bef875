//! Settings for Helm chart repositories and OCI registries, per URL prefix:
//! basic-auth credentials, a custom CA, skipping TLS verification, plain HTTP
//! for a registry. Read from the file `--helm-repo-credentials` names
//! (`$KUBESYNC_HELM_REPO_CREDENTIALS`):
//!
//! ```yaml
//! repositories:
//!   - url: https://charts.example.com/private   # a URL prefix
//!     username: alice
//!     password: s3cret           # or passwordEnv: CHARTS_PASSWORD
//!     caFile: /etc/ssl/charts-ca.pem
//!     insecureSkipVerify: false
//!   - url: oci://registry.example.com/charts
//!     username: robot
//!     passwordEnv: REGISTRY_TOKEN
//!     plainHttp: false            # talk http (not https) to this registry
//! ```
//!
//! The longest matching prefix wins (matched on whole path segments). Git
//! credentials are a separate mechanism (`source`); the shape is the same on
//! purpose. Nothing here does IO except reading the file and the
//! environment variables it names.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// What applies to one repository URL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepoSettings {
    pub username: Option<String>,
    pub password: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub insecure_skip_verify: bool,
    pub plain_http: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Entry {
    url: String,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    password_env: Option<String>,
    #[serde(default)]
    ca_file: Option<PathBuf>,
    #[serde(default)]
    insecure_skip_verify: bool,
    #[serde(default)]
    plain_http: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    repositories: Vec<Entry>,
}

/// Every repository's settings, by URL prefix.
#[derive(Debug, Clone, Default)]
pub struct HelmRepoCredentials {
    entries: Vec<(String, RepoSettings)>,
}

impl HelmRepoCredentials {
    /// Reads the credentials file; errors name the file and the entry.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("helm repository credentials {}: {e}", path.display()))?;
        Self::parse(&text, |k| std::env::var(k).ok())
            .map_err(|e| format!("helm repository credentials {}: {e}", path.display()))
    }

    /// Parses the file's text; `env` reads `passwordEnv` variables.
    pub fn parse(text: &str, env: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let file: File = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
        let mut entries = Vec::new();
        for (i, e) in file.repositories.into_iter().enumerate() {
            if e.url.trim().is_empty() {
                return Err(format!("repositories[{i}].url is required"));
            }
            let password = match (&e.password, &e.password_env) {
                (Some(_), Some(_)) => {
                    return Err(format!(
                        "repositories[{i}] ({}): give password or passwordEnv, not both",
                        e.url
                    ))
                }
                (Some(p), None) => Some(p.clone()),
                (None, Some(var)) => Some(env(var).ok_or_else(|| {
                    format!(
                        "repositories[{i}] ({}): passwordEnv names {var}, which is not set",
                        e.url
                    )
                })?),
                (None, None) => None,
            };
            if password.is_some() && e.username.is_none() {
                return Err(format!(
                    "repositories[{i}] ({}): a password needs a username",
                    e.url
                ));
            }
            entries.push((
                prefix_key(&e.url),
                RepoSettings {
                    username: e.username,
                    password,
                    ca_file: e.ca_file,
                    insecure_skip_verify: e.insecure_skip_verify,
                    plain_http: e.plain_http,
                },
            ));
        }
        Ok(HelmRepoCredentials { entries })
    }

    /// The settings for `url` (defaults when no prefix matches).
    pub fn for_url(&self, url: &str) -> RepoSettings {
        let key = prefix_key(url);
        self.entries
            .iter()
            .filter(|(prefix, _)| {
                key == *prefix
                    || key
                        .strip_prefix(prefix.as_str())
                        .map(|rest| rest.starts_with('/') || prefix.ends_with('/'))
                        .unwrap_or(false)
            })
            .max_by_key(|(prefix, _)| prefix.len())
            .map(|(_, s)| s.clone())
            .unwrap_or_default()
    }
}

/// `https://Host/a/` → `https://host/a` (scheme and host lower-cased, trailing `/` dropped).
fn prefix_key(url: &str) -> String {
    let url = url.trim().trim_end_matches('/');
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
            let mut out = format!(
                "{}://{}",
                scheme.to_ascii_lowercase(),
                host.to_ascii_lowercase()
            );
            if !path.is_empty() {
                out.push('/');
                out.push_str(path);
            }
            out
        }
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_prefix_on_segment_boundaries() {
        let c = HelmRepoCredentials::parse(
            "repositories:\n- url: https://charts.example.com\n  username: a\n  password: p\n- url: https://charts.example.com/private/\n  username: b\n  passwordEnv: PW\n  insecureSkipVerify: true\n",
            |k| (k == "PW").then(|| "from-env".to_string()),
        )
        .unwrap();
        let s = c.for_url("https://Charts.example.com/private/index.yaml");
        assert_eq!(s.username.as_deref(), Some("b"));
        assert_eq!(s.password.as_deref(), Some("from-env"));
        assert!(s.insecure_skip_verify);
        assert_eq!(
            c.for_url("https://charts.example.com/privateer")
                .username
                .as_deref(),
            Some("a")
        );
        assert_eq!(
            c.for_url("https://charts.example.com.evil/x"),
            RepoSettings::default()
        );
    }

    #[test]
    fn mistakes_are_named() {
        let env = |_: &str| None;
        assert!(
            HelmRepoCredentials::parse("repositories:\n- url: x\n  password: p\n", env)
                .unwrap_err()
                .contains("needs a username")
        );
        assert!(HelmRepoCredentials::parse(
            "repositories:\n- url: x\n  username: u\n  passwordEnv: NOPE\n",
            env
        )
        .unwrap_err()
        .contains("NOPE, which is not set"));
        assert!(
            HelmRepoCredentials::parse("repositories:\n- url: x\n  pasword: p\n", env).is_err()
        );
    }
}
