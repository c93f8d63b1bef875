//! Helm charts in OCI registries (Docker Registry HTTP API v2), as `helm
//! pull oci://…` fetches them: the version is a tag (a constraint is resolved
//! over `tags/list`, `+` written `_` in tags), the manifest names a layer of
//! media type [`CHART_LAYER`], whose blob is downloaded and checked against
//! its digest.
//!
//! Authentication answers the registry's `WWW-Authenticate` challenge:
//! `Basic` with the configured credentials, `Bearer` by asking the named
//! token service (anonymously or with the credentials) for a token scoped to
//! `repository:NAME:pull`. Plain HTTP is used only for a loopback registry or
//! one whose settings say `plainHttp: true`.

use serde::Deserialize;

use super::credentials::RepoSettings;
use super::http::{Auth, Http, Response, TransportError};

/// The media type of a Helm chart's content layer.
pub const CHART_LAYER: &str = "application/vnd.cncf.helm.chart.content.v1.tar+gzip";
/// The media type of an OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// The media type of a Helm chart's config blob.
pub const CHART_CONFIG: &str = "application/vnd.cncf.helm.config.v1+json";

/// `host[:port]` and the repository path (`charts/web`) of a chart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OciRef {
    pub registry: String,
    pub repository: String,
}

impl OciRef {
    /// `oci://host/path` (or Argo CD's `host/path`) with chart `web` →
    /// `host`, `path/web`. A repoURL already ending in `/web` is not doubled.
    pub fn new(repo_url: &str, chart: &str) -> Option<OciRef> {
        let rest = repo_url.strip_prefix("oci://").unwrap_or(repo_url);
        let rest = rest.trim_end_matches('/');
        let (registry, path) = rest.split_once('/').unwrap_or((rest, ""));
        if registry.is_empty() || chart.is_empty() {
            return None;
        }
        let repository = if path.is_empty() {
            chart.to_string()
        } else if path.rsplit('/').next() == Some(chart) {
            path.to_string()
        } else {
            format!("{path}/{chart}")
        };
        Some(OciRef {
            registry: registry.to_string(),
            repository,
        })
    }

    /// Whether the registry is on this machine (plain HTTP allowed).
    pub fn is_loopback(&self) -> bool {
        let host = match self.registry.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => self.registry.as_str(),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .map(|ip| ip.is_loopback())
                .unwrap_or(false)
    }

    fn base(&self, settings: &RepoSettings) -> String {
        let scheme = if settings.plain_http || self.is_loopback() {
            "http"
        } else {
            "https"
        };
        format!("{scheme}://{}/v2/{}", self.registry, self.repository)
    }
}

/// What went wrong talking to a registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OciError {
    Transport(TransportError),
    /// 401/403 after answering the challenge (or with no way to answer it).
    Unauthorized(u16),
    /// The repository or tag does not exist.
    NotFound(String),
    Status {
        status: u16,
        what: String,
    },
    Protocol(String),
}

#[derive(Deserialize)]
struct Tags {
    #[serde(default)]
    tags: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct Manifest {
    #[serde(default)]
    layers: Vec<Descriptor>,
}

#[derive(Deserialize)]
struct Descriptor {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    digest: String,
    #[serde(default)]
    size: u64,
}

#[derive(Deserialize)]
struct Token {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
}

/// One registry conversation (one chart): remembers the token it earned.
pub struct Session<'a> {
    http: &'a Http,
    settings: &'a RepoSettings,
    reference: &'a OciRef,
    auth: Auth,
}

/// The chart layer a manifest names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChartLayer {
    /// `sha256:<hex>`.
    pub digest: String,
    pub size: u64,
}

impl<'a> Session<'a> {
    pub fn new(http: &'a Http, settings: &'a RepoSettings, reference: &'a OciRef) -> Self {
        Session {
            http,
            settings,
            reference,
            auth: Auth::None,
        }
    }

    /// GET with the challenge answered once.
    fn get(&mut self, url: &str, accept: Option<&str>, limit: u64) -> Result<Response, OciError> {
        let resp = self
            .http
            .get(url, self.settings, &self.auth, accept, limit)
            .map_err(OciError::Transport)?;
        if resp.status != 401 {
            return Ok(resp);
        }
        let challenge = resp.www_authenticate.clone().unwrap_or_default();
        self.auth = self.answer(&challenge)?;
        let resp = self
            .http
            .get(url, self.settings, &self.auth, accept, limit)
            .map_err(OciError::Transport)?;
        if resp.status == 401 || resp.status == 403 {
            return Err(OciError::Unauthorized(resp.status));
        }
        Ok(resp)
    }

    fn answer(&self, challenge: &str) -> Result<Auth, OciError> {
        let (scheme, params) = parse_challenge(challenge);
        match scheme.to_ascii_lowercase().as_str() {
            "basic" => match Auth::basic_from(self.settings) {
                Auth::None => Err(OciError::Unauthorized(401)),
                auth => Ok(auth),
            },
            "bearer" => {
                let realm = params
                    .iter()
                    .find(|(k, _)| k == "realm")
                    .map(|(_, v)| v.clone())
                    .ok_or_else(|| {
                        OciError::Protocol("a Bearer challenge without a realm".into())
                    })?;
                let mut url = url::Url::parse(&realm)
                    .map_err(|e| OciError::Protocol(format!("token realm \"{realm}\": {e}")))?;
                {
                    let mut q = url.query_pairs_mut();
                    if let Some((_, service)) = params.iter().find(|(k, _)| k == "service") {
                        q.append_pair("service", service);
                    }
                    let scope = params
                        .iter()
                        .find(|(k, _)| k == "scope")
                        .map(|(_, v)| v.clone())
                        .unwrap_or_else(|| {
                            format!("repository:{}:pull", self.reference.repository)
                        });
                    q.append_pair("scope", &scope);
                }
                let resp = self
                    .http
                    .get(
                        url.as_str(),
                        self.settings,
                        &Auth::basic_from(self.settings),
                        None,
                        1024 * 1024,
                    )
                    .map_err(OciError::Transport)?;
                if resp.status == 401 || resp.status == 403 {
                    return Err(OciError::Unauthorized(resp.status));
                }
                if !resp.ok() {
                    return Err(OciError::Status {
                        status: resp.status,
                        what: format!("token service {realm}"),
                    });
                }
                let t: Token = serde_json::from_slice(&resp.body).map_err(|e| {
                    OciError::Protocol(format!("token service {realm} answered: {e}"))
                })?;
                t.token
                    .or(t.access_token)
                    .filter(|t| !t.is_empty())
                    .map(Auth::Bearer)
                    .ok_or_else(|| {
                        OciError::Protocol(format!("token service {realm} gave no token"))
                    })
            }
            _ => Err(OciError::Unauthorized(401)),
        }
    }

    /// Every tag of the repository.
    pub fn tags(&mut self) -> Result<Vec<String>, OciError> {
        let url = format!("{}/tags/list", self.reference.base(self.settings));
        let resp = self.get(&url, Some("application/json"), 16 * 1024 * 1024)?;
        match resp.status {
            404 => return Err(OciError::NotFound(self.reference.repository.clone())),
            s if !(200..300).contains(&s) => {
                return Err(OciError::Status {
                    status: s,
                    what: "tags/list".into(),
                })
            }
            _ => {}
        }
        let tags: Tags = serde_json::from_slice(&resp.body)
            .map_err(|e| OciError::Protocol(format!("tags/list answered: {e}")))?;
        Ok(tags.tags.unwrap_or_default())
    }

    /// The chart layer of the manifest tagged `tag`.
    pub fn chart_layer(&mut self, tag: &str) -> Result<ChartLayer, OciError> {
        let url = format!("{}/manifests/{tag}", self.reference.base(self.settings));
        let resp = self.get(&url, Some(OCI_MANIFEST), 4 * 1024 * 1024)?;
        match resp.status {
            404 => {
                return Err(OciError::NotFound(format!(
                    "{}:{tag}",
                    self.reference.repository
                )))
            }
            s if !(200..300).contains(&s) => {
                return Err(OciError::Status {
                    status: s,
                    what: format!("manifest {tag}"),
                })
            }
            _ => {}
        }
        let m: Manifest = serde_json::from_slice(&resp.body)
            .map_err(|e| OciError::Protocol(format!("manifest {tag}: {e}")))?;
        m.layers
            .into_iter()
            .find(|l| l.media_type == CHART_LAYER)
            .map(|l| ChartLayer {
                digest: l.digest,
                size: l.size,
            })
            .ok_or_else(|| {
                OciError::Protocol(format!(
                    "manifest {tag} has no layer of media type {CHART_LAYER} (is it a Helm chart?)"
                ))
            })
    }

    /// Downloads a blob (at most `limit` bytes).
    pub fn blob(&mut self, digest: &str, limit: u64) -> Result<Vec<u8>, OciError> {
        let url = format!("{}/blobs/{digest}", self.reference.base(self.settings));
        let resp = self.get(&url, None, limit)?;
        match resp.status {
            404 => Err(OciError::NotFound(digest.to_string())),
            s if !(200..300).contains(&s) => Err(OciError::Status {
                status: s,
                what: format!("blob {digest}"),
            }),
            _ => Ok(resp.body),
        }
    }
}

/// `Bearer realm="https://a",service="b",scope="c"` → (`Bearer`, pairs).
pub fn parse_challenge(header: &str) -> (String, Vec<(String, String)>) {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    let mut params = Vec::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            let mut escaped = false;
            for c in chars.by_ref() {
                match (escaped, c) {
                    (false, '\\') => escaped = true,
                    (false, '"') => break,
                    _ => {
                        value.push(c);
                        escaped = false;
                    }
                }
            }
        } else {
            value = chars.by_ref().take_while(|c| *c != ',').collect();
        }
        params.push((key.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    (scheme.to_string(), params)
}

/// A chart version as a tag: `+` is not allowed in tags, Helm writes `_`.
pub fn version_to_tag(version: &str) -> String {
    version.replace('+', "_")
}

/// A tag as a chart version (the reverse of [`version_to_tag`]).
pub fn tag_to_version(tag: &str) -> String {
    tag.replace('_', "+")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_from_both_url_forms() {
        assert_eq!(
            OciRef::new("oci://127.0.0.1:5000/charts", "web"),
            Some(OciRef {
                registry: "127.0.0.1:5000".into(),
                repository: "charts/web".into()
            })
        );
        let r = OciRef::new("registry.example.com/charts/web", "web").unwrap();
        assert_eq!(r.repository, "charts/web");
        assert!(!r.is_loopback());
        assert!(OciRef::new("oci://localhost:5000", "web")
            .unwrap()
            .is_loopback());
        assert!(OciRef::new("oci://[::1]:5000/x", "web")
            .unwrap()
            .is_loopback());
        assert_eq!(
            OciRef::new("oci://r.example.com/x", "web")
                .unwrap()
                .base(&RepoSettings::default()),
            "https://r.example.com/v2/x/web"
        );
    }

    #[test]
    fn challenges_are_parsed() {
        let (s, p) = parse_challenge(
            r#"Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:charts/web:pull""#,
        );
        assert_eq!(s, "Bearer");
        assert_eq!(
            p,
            vec![
                ("realm".into(), "https://auth.example.com/token".into()),
                ("service".into(), "registry.example.com".into()),
                ("scope".into(), "repository:charts/web:pull".into()),
            ]
        );
        let (s, p) = parse_challenge(r#"Basic realm="Registry Realm""#);
        assert_eq!((s.as_str(), p.len()), ("Basic", 1));
        assert_eq!(version_to_tag("1.0.0+build.1"), "1.0.0_build.1");
        assert_eq!(tag_to_version("1.0.0_build.1"), "1.0.0+build.1");
    }
}
