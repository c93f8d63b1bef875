//! A Docker Registry v2 / OCI distribution client that answers one
//! question: which digest does `repository:tag` have today?
//!
//! `HEAD /v2/<repository>/manifests/<tag>` with an `Accept` header naming
//! the OCI image index, the Docker manifest list, the Docker schema 2
//! manifest and the OCI image manifest — so a multi-arch image answers with
//! its index digest, the digest a kubelet records — and the
//! `Docker-Content-Digest` header read; when a registry leaves the header
//! out, a `GET` of the manifest and the sha256 of its bytes. Auth follows
//! the registry's `WWW-Authenticate` challenge: anonymous, Basic, or a
//! Bearer token from the challenge's realm (`service`, `scope=repository:
//! <repo>:pull`, with Basic credentials when there are some). Registries
//! are reached over https (system roots plus `ca_files`); plain http only
//! for loopback hosts and hosts named insecure, after https failed to
//! connect. Each (registry, repository, tag, credentials) is asked once per
//! client: concurrent callers share the answer, errors included.
//!
//! Credentials never appear in errors, logs or [`RegistryStats`]. This
//! module does not know about workloads (`sync`) or where credentials come
//! from (`credentials`).

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{HeaderValue, ACCEPT, AUTHORIZATION, WWW_AUTHENTICATE};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use parking_lot::Mutex;
use tokio::sync::OnceCell;

use super::credentials::Credentials;
use super::reference::{Digest, Reference};

/// The manifest media types asked for, most specific last-resort last.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json";

/// The largest manifest or token answer read.
const MAX_BODY: usize = 4 << 20;

/// How the client reaches registries.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// Hosts (`host` or `host:port`) that may be reached over plain http
    /// when https fails (`--insecure-registry`). Loopback hosts always may.
    pub insecure: Vec<String>,
    /// PEM files of extra certificate authorities trusted for https.
    pub ca_files: Vec<PathBuf>,
    /// Per request (connect, answer and body).
    pub timeout: Duration,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            insecure: Vec::new(),
            ca_files: Vec::new(),
            timeout: Duration::from_secs(15),
        }
    }
}

/// Why a digest could not be resolved. Never carries credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error("registry {host} is unreachable: {message}")]
    Unreachable { host: String, message: String },
    #[error("registry {host} refused the credentials for {repository} (401 Unauthorized{hint})")]
    Unauthorized {
        host: String,
        repository: String,
        hint: String,
    },
    #[error("registry {host} denied access to {repository} (403 Forbidden)")]
    Forbidden { host: String, repository: String },
    #[error("tag {tag} of {repository} does not exist on {host} (404)")]
    NotFound {
        host: String,
        repository: String,
        tag: String,
    },
    #[error("registry {host} answered {status} for {repository}:{tag}")]
    Status {
        host: String,
        repository: String,
        tag: String,
        status: u16,
    },
    #[error("registry {host} sent a malformed answer for {repository}:{tag}: {message}")]
    Malformed {
        host: String,
        repository: String,
        tag: String,
        message: String,
    },
    #[error("the token server of {host} failed: {message}")]
    Token { host: String, message: String },
    #[error("cannot set up TLS: {0}")]
    Tls(String),
}

impl RegistryError {
    /// The message for a failure resolving `image`: errors about the
    /// registry as a whole (unreachable, token server, TLS) do not name the
    /// image, so it is put in front of them.
    pub fn for_image(&self, image: &str) -> String {
        match self {
            RegistryError::Unreachable { .. }
            | RegistryError::Token { .. }
            | RegistryError::Tls(_) => {
                format!("{image}: {self}")
            }
            _ => self.to_string(),
        }
    }
}

/// Requests sent to registries (answered or not).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RegistryStats {
    /// `HEAD`/`GET` of manifests (including re-sends after a challenge; an
    /// https attempt that fell back to plain http counts once).
    pub manifest_requests: u64,
    /// Token requests to a Bearer realm.
    pub token_requests: u64,
}

impl RegistryStats {
    pub fn total(&self) -> u64 {
        self.manifest_requests + self.token_requests
    }
}

/// What a registry asked for in its last challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

type CacheKey = (String, String, String, Option<String>);
type Shared<T> = Arc<OnceCell<Result<T, RegistryError>>>;

type Https = hyper_rustls::HttpsConnector<HttpConnector>;

/// A registry client for one run (its cache lives as long as it does).
pub struct RegistryClient {
    http: Client<Https, Full<Bytes>>,
    opts: RegistryOptions,
    digests: Mutex<HashMap<CacheKey, Shared<Digest>>>,
    tokens: Mutex<HashMap<CacheKey, Shared<String>>>,
    challenges: Mutex<HashMap<String, Challenge>>,
    /// Hosts known to speak plain http.
    plain: Mutex<HashSet<String>>,
    manifest_requests: AtomicU64,
    token_requests: AtomicU64,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient")
            .field("opts", &self.opts)
            .finish()
    }
}

/// Whether `host` (maybe with a port) is a loopback address or `localhost`.
pub fn is_loopback(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(rest),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    name == "localhost"
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl RegistryClient {
    pub fn new(opts: RegistryOptions) -> Result<RegistryClient, RegistryError> {
        let mut roots = rustls::RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        for cert in native.certs {
            let _ = roots.add(cert);
        }
        for path in &opts.ca_files {
            use rustls_pki_types::pem::PemObject as _;
            let certs = rustls_pki_types::CertificateDer::pem_file_iter(path)
                .map_err(|e| RegistryError::Tls(format!("{}: {e}", path.display())))?;
            let mut n = 0;
            for c in certs {
                let c = c.map_err(|e| RegistryError::Tls(format!("{}: {e}", path.display())))?;
                roots
                    .add(c)
                    .map_err(|e| RegistryError::Tls(format!("{}: {e}", path.display())))?;
                n += 1;
            }
            if n == 0 {
                return Err(RegistryError::Tls(format!(
                    "{}: no PEM certificate in the file",
                    path.display()
                )));
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| RegistryError::Tls(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(opts.timeout));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Ok(RegistryClient {
            http: Client::builder(TokioExecutor::new()).build(https),
            opts,
            digests: Mutex::default(),
            tokens: Mutex::default(),
            challenges: Mutex::default(),
            plain: Mutex::default(),
            manifest_requests: AtomicU64::new(0),
            token_requests: AtomicU64::new(0),
        })
    }

    pub fn stats(&self) -> RegistryStats {
        RegistryStats {
            manifest_requests: self.manifest_requests.load(Ordering::Relaxed),
            token_requests: self.token_requests.load(Ordering::Relaxed),
        }
    }

    /// The digest `reference`'s tag (`latest` when none is written) has
    /// now. A digest-only reference resolves to its own digest without a
    /// request.
    pub async fn resolve(
        &self,
        reference: &Reference,
        creds: Option<&Credentials>,
    ) -> Result<Digest, RegistryError> {
        let Some(tag) = reference.tag_or_latest() else {
            // No tag means a digest was written (see `tag_or_latest`).
            return reference
                .digest
                .clone()
                .ok_or_else(|| RegistryError::Malformed {
                    host: reference.api_host().to_string(),
                    repository: reference.repository.clone(),
                    tag: String::new(),
                    message: "neither a tag nor a digest".into(),
                });
        };
        let host = reference.api_host().to_string();
        let key = (
            host.clone(),
            reference.repository.clone(),
            tag.to_string(),
            creds.map(Credentials::fingerprint),
        );
        let cell = self.digests.lock().entry(key).or_default().clone();
        cell.get_or_init(|| self.fetch_digest(&host, &reference.repository, tag, creds))
            .await
            .clone()
    }

    async fn fetch_digest(
        &self,
        host: &str,
        repository: &str,
        tag: &str,
        creds: Option<&Credentials>,
    ) -> Result<Digest, RegistryError> {
        let path = format!("/v2/{repository}/manifests/{tag}");
        let resp = self
            .authorized(Method::HEAD, host, &path, repository, creds)
            .await?;
        let err = |status: StatusCode| self.status_error(status, host, repository, tag, creds);
        if !resp.status.is_success() {
            return Err(err(resp.status));
        }
        let malformed = |message: String| RegistryError::Malformed {
            host: host.to_string(),
            repository: repository.to_string(),
            tag: tag.to_string(),
            message,
        };
        if let Some(h) = resp.digest {
            return Digest::parse(&h)
                .map_err(|_| malformed(format!("Docker-Content-Digest \"{h}\" is not a digest")));
        }
        // No digest header: the manifest's own bytes say it.
        let resp = self
            .authorized(Method::GET, host, &path, repository, creds)
            .await?;
        if !resp.status.is_success() {
            return Err(err(resp.status));
        }
        let v: serde_json::Value = serde_json::from_slice(&resp.body)
            .map_err(|e| malformed(format!("the manifest is not JSON ({e})")))?;
        if v.get("schemaVersion").and_then(serde_json::Value::as_u64) != Some(2) {
            return Err(malformed("the manifest has no schemaVersion 2".into()));
        }
        Ok(Digest::sha256_of(&resp.body))
    }

    fn status_error(
        &self,
        status: StatusCode,
        host: &str,
        repository: &str,
        tag: &str,
        creds: Option<&Credentials>,
    ) -> RegistryError {
        match status {
            StatusCode::UNAUTHORIZED => RegistryError::Unauthorized {
                host: host.to_string(),
                repository: repository.to_string(),
                hint: if creds.is_none() {
                    "; no credentials for this registry: add an imagePullSecret or --docker-config"
                        .to_string()
                } else {
                    String::new()
                },
            },
            StatusCode::FORBIDDEN => RegistryError::Forbidden {
                host: host.to_string(),
                repository: repository.to_string(),
            },
            StatusCode::NOT_FOUND => RegistryError::NotFound {
                host: host.to_string(),
                repository: repository.to_string(),
                tag: tag.to_string(),
            },
            s => RegistryError::Status {
                host: host.to_string(),
                repository: repository.to_string(),
                tag: tag.to_string(),
                status: s.as_u16(),
            },
        }
    }

    /// Sends a manifest request with what the host's challenge asks for,
    /// answering one new challenge (401) by authenticating and re-sending.
    async fn authorized(
        &self,
        method: Method,
        host: &str,
        path: &str,
        repository: &str,
        creds: Option<&Credentials>,
    ) -> Result<Answer, RegistryError> {
        let known = self.challenges.lock().get(host).cloned();
        let auth = match &known {
            Some(c) => self.authorization(c, host, repository, creds).await?,
            None => None,
        };
        let resp = self
            .send(method.clone(), host, path, auth.as_deref())
            .await?;
        if resp.status != StatusCode::UNAUTHORIZED {
            return Ok(resp);
        }
        let Some(challenge) = resp.challenge.as_deref().and_then(parse_challenge) else {
            return Ok(resp);
        };
        if known.as_ref() == Some(&challenge) {
            // Already answered this challenge: the credentials are refused.
            return Ok(resp);
        }
        self.challenges
            .lock()
            .insert(host.to_string(), challenge.clone());
        match self
            .authorization(&challenge, host, repository, creds)
            .await?
        {
            Some(auth) => self.send(method, host, path, Some(&auth)).await,
            None => Ok(resp),
        }
    }

    /// The `Authorization` value for a challenge: Basic with credentials;
    /// a (cached) Bearer token from the realm, anonymous or with Basic
    /// credentials. `None`: nothing to send (Basic without credentials).
    async fn authorization(
        &self,
        challenge: &Challenge,
        host: &str,
        repository: &str,
        creds: Option<&Credentials>,
    ) -> Result<Option<String>, RegistryError> {
        match challenge {
            Challenge::Basic => Ok(creds.map(Credentials::basic_header)),
            Challenge::Bearer { realm, service } => {
                let scope = format!("repository:{repository}:pull");
                let key = (
                    host.to_string(),
                    scope.clone(),
                    realm.clone(),
                    creds.map(Credentials::fingerprint),
                );
                let cell = self.tokens.lock().entry(key).or_default().clone();
                let token = cell
                    .get_or_init(|| {
                        self.fetch_token(host, realm, service.as_deref(), &scope, creds)
                    })
                    .await
                    .clone()?;
                Ok(Some(format!("Bearer {token}")))
            }
        }
    }

    async fn fetch_token(
        &self,
        host: &str,
        realm: &str,
        service: Option<&str>,
        scope: &str,
        creds: Option<&Credentials>,
    ) -> Result<String, RegistryError> {
        let token_err = |message: String| RegistryError::Token {
            host: host.to_string(),
            message,
        };
        let mut url = url::Url::parse(realm)
            .map_err(|_| token_err(format!("the realm \"{realm}\" is not a URL")))?;
        let realm_host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            (None, _) => return Err(token_err(format!("the realm \"{realm}\" has no host"))),
        };
        if url.scheme() == "http" && !self.may_use_http(&realm_host) {
            return Err(token_err(format!(
                "the realm {realm} is plain http on a host that is neither loopback nor --insecure-registry"
            )));
        }
        {
            let mut q = url.query_pairs_mut();
            if let Some(s) = service {
                q.append_pair("service", s);
            }
            q.append_pair("scope", scope);
        }
        let mut req = Request::builder()
            .method(Method::GET)
            .uri(url.as_str())
            .header(ACCEPT, "application/json");
        if let Some(c) = creds {
            req = req.header(AUTHORIZATION, c.basic_header());
        }
        let req = req
            .body(Full::new(Bytes::new()))
            .map_err(|e| token_err(e.to_string()))?;
        self.token_requests.fetch_add(1, Ordering::Relaxed);
        let answer = self
            .exchange(req)
            .await
            .map_err(|m| token_err(format!("cannot reach {realm_host}: {m}")))?;
        match answer.status {
            s if s.is_success() => {}
            StatusCode::UNAUTHORIZED => {
                return Err(RegistryError::Unauthorized {
                    host: host.to_string(),
                    repository: scope.to_string(),
                    hint: " from the token server".to_string(),
                })
            }
            s => return Err(token_err(format!("it answered {}", s.as_u16()))),
        }
        let v: serde_json::Value = serde_json::from_slice(&answer.body)
            .map_err(|_| token_err("its answer is not JSON".into()))?;
        v.get("token")
            .or_else(|| v.get("access_token"))
            .and_then(serde_json::Value::as_str)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .ok_or_else(|| token_err("its answer has no token".into()))
    }

    fn may_use_http(&self, host: &str) -> bool {
        is_loopback(host) || self.opts.insecure.iter().any(|h| h == host)
    }

    /// Sends one manifest request over https, or plain http where allowed
    /// and https could not connect (remembered per host).
    async fn send(
        &self,
        method: Method,
        host: &str,
        path: &str,
        auth: Option<&str>,
    ) -> Result<Answer, RegistryError> {
        let unreachable = |message: String| RegistryError::Unreachable {
            host: host.to_string(),
            message,
        };
        let plain_known = self.plain.lock().contains(host);
        let schemes: &[&str] = if plain_known {
            &["http"]
        } else if self.may_use_http(host) {
            &["https", "http"]
        } else {
            &["https"]
        };
        let mut last = String::new();
        for scheme in schemes {
            let mut req = Request::builder()
                .method(method.clone())
                .uri(format!("{scheme}://{host}{path}"))
                .header(ACCEPT, MANIFEST_ACCEPT);
            if let Some(a) = auth {
                let mut v =
                    HeaderValue::from_str(a).map_err(|_| unreachable("bad token".into()))?;
                v.set_sensitive(true);
                req = req.header(AUTHORIZATION, v);
            }
            let req = req
                .body(Full::new(Bytes::new()))
                .map_err(|e| unreachable(e.to_string()))?;
            match self.exchange(req).await {
                // A TLS registry answers plain http with 400: the https
                // failure (an untrusted certificate) is the one to report.
                Ok(a)
                    if *scheme == "http"
                        && !last.is_empty()
                        && a.status == StatusCode::BAD_REQUEST =>
                {
                    self.manifest_requests.fetch_add(1, Ordering::Relaxed);
                    return Err(unreachable(format!(
                        "{last} (it speaks https; trust its certificate authority with --registry-ca)"
                    )));
                }
                Ok(a) => {
                    self.manifest_requests.fetch_add(1, Ordering::Relaxed);
                    if *scheme == "http" && !plain_known {
                        tracing::debug!(host, "registry reached over plain http");
                        self.plain.lock().insert(host.to_string());
                    }
                    return Ok(a);
                }
                Err(m) => last = m,
            }
        }
        // A request that never got an answer (over either scheme) counts once.
        self.manifest_requests.fetch_add(1, Ordering::Relaxed);
        Err(unreachable(last))
    }

    /// One request and its whole (bounded) answer; an error string names
    /// the transport failure (never a header value).
    async fn exchange(&self, req: Request<Full<Bytes>>) -> Result<Answer, String> {
        let method = req.method().clone();
        let fut = async {
            let resp = self.http.request(req).await.map_err(|e| error_chain(&e))?;
            let status = resp.status();
            let header = |name: &str| {
                resp.headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            let digest = header("docker-content-digest");
            let challenge = header(WWW_AUTHENTICATE.as_str());
            let body = if method == Method::HEAD {
                Bytes::new()
            } else {
                Limited::new(resp.into_body(), MAX_BODY)
                    .collect()
                    .await
                    .map_err(|e| format!("reading the answer: {e}"))?
                    .to_bytes()
            };
            Ok(Answer {
                status,
                digest,
                challenge,
                body,
            })
        };
        match tokio::time::timeout(self.opts.timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(format!("no answer within {:?}", self.opts.timeout)),
        }
    }
}

struct Answer {
    status: StatusCode,
    digest: Option<String>,
    challenge: Option<String>,
    body: Bytes,
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

/// Parses `Basic realm="…"` or `Bearer realm="…",service="…",scope="…"`.
fn parse_challenge(header: &str) -> Option<Challenge> {
    let (scheme, rest) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Some(Challenge::Basic),
        "bearer" => {
            let params = parse_params(rest);
            Some(Challenge::Bearer {
                realm: params.get("realm")?.clone(),
                service: params.get("service").cloned(),
            })
        }
        _ => None,
    }
}

/// `k="v", k2=v2` (quoted values may hold commas).
fn parse_params(s: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let Some((k, after)) = rest.split_once('=') else {
            break;
        };
        let key = k.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let after = after.trim_start();
        let (value, next) = if let Some(q) = after.strip_prefix('"') {
            match q.find('"') {
                Some(end) => (q[..end].to_string(), &q[end + 1..]),
                None => (q.to_string(), ""),
            }
        } else {
            match after.find(',') {
                Some(end) => (after[..end].trim().to_string(), &after[end..]),
                None => (after.trim().to_string(), ""),
            }
        };
        out.insert(key, value);
        rest = next.trim_start_matches([',', ' ']);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("registry.example".into())
            })
        );
        assert_eq!(parse_challenge("Bearer service=x"), None);
        assert_eq!(parse_challenge("Negotiate"), None);
    }

    #[test]
    fn loopback_hosts() {
        for h in [
            "127.0.0.1:5000",
            "localhost",
            "localhost:80",
            "[::1]:5000",
            "127.1.2.3",
        ] {
            assert!(is_loopback(h), "{h}");
        }
        for h in [
            "10.0.0.1:5000",
            "registry.local",
            "[2001:db8::1]:5000",
            "localhost.evil",
        ] {
            assert!(!is_loopback(h), "{h}");
        }
    }

    #[test]
    fn registry_wide_errors_name_the_image() {
        let down = RegistryError::Unreachable {
            host: "reg:5000".into(),
            message: "connection refused".into(),
        };
        assert_eq!(
            down.for_image("reg:5000/app:v1"),
            "reg:5000/app:v1: registry reg:5000 is unreachable: connection refused"
        );
        let missing = RegistryError::NotFound {
            host: "reg:5000".into(),
            repository: "app".into(),
            tag: "v9".into(),
        };
        assert_eq!(
            missing.for_image("reg:5000/app:v9"),
            "tag v9 of app does not exist on reg:5000 (404)"
        );
    }
}
