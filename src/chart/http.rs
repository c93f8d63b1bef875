//! The HTTP edge of chart fetching: GET with a size cap, basic or bearer
//! auth, a custom CA or no verification per repository ([`RepoSettings`]),
//! a timeout. One agent per TLS configuration is kept for the run, so
//! connections are reused across charts of one repository.
//!
//! Statuses are returned as data (a registry's 401 carries the challenge the
//! caller answers); only a transport failure is an error, worded for a
//! person ("connection refused", "certificate is not trusted").

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use parking_lot::Mutex;

use super::credentials::RepoSettings;

/// How long one request may take, connection and body included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Credentials sent with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    None,
    Basic { user: String, password: String },
    Bearer(String),
}

impl Auth {
    /// Basic auth from the settings, when they carry a username.
    pub fn basic_from(settings: &RepoSettings) -> Auth {
        match &settings.username {
            Some(user) => Auth::Basic {
                user: user.clone(),
                password: settings.password.clone().unwrap_or_default(),
            },
            None => Auth::None,
        }
    }

    fn header(&self) -> Option<String> {
        use base64::Engine;
        match self {
            Auth::None => None,
            Auth::Basic { user, password } => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            )),
            Auth::Bearer(t) => Some(format!("Bearer {t}")),
        }
    }
}

/// A response: its status, the headers the callers read and the body.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
    pub www_authenticate: Option<String>,
    pub content_type: Option<String>,
}

impl Response {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// A transport failure (no HTTP status), worded for a person.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    #[error("{0}")]
    Unreachable(String),
    #[error("the response is larger than {} MiB", limit / (1024 * 1024))]
    TooLarge { limit: u64 },
    #[error("{0}")]
    Tls(String),
}

/// The HTTP client of one run.
#[derive(Default)]
pub struct Http {
    agents: Mutex<HashMap<(Option<PathBuf>, bool), ureq::Agent>>,
}

impl std::fmt::Debug for Http {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http").finish_non_exhaustive()
    }
}

impl Http {
    fn agent(&self, settings: &RepoSettings) -> Result<ureq::Agent, TransportError> {
        let key = (settings.ca_file.clone(), settings.insecure_skip_verify);
        if let Some(a) = self.agents.lock().get(&key) {
            return Ok(a.clone());
        }
        let mut tls = ureq::tls::TlsConfig::builder()
            .provider(ureq::tls::TlsProvider::Rustls)
            .disable_verification(settings.insecure_skip_verify);
        if let Some(ca) = &settings.ca_file {
            let pem = std::fs::read(ca).map_err(|e| {
                TransportError::Tls(format!("cannot read the CA file {}: {e}", ca.display()))
            })?;
            let mut certs = Vec::new();
            for item in ureq::tls::parse_pem(&pem) {
                if let Ok(ureq::tls::PemItem::Certificate(c)) = item {
                    certs.push(c);
                }
            }
            if certs.is_empty() {
                return Err(TransportError::Tls(format!(
                    "the CA file {} holds no PEM certificate",
                    ca.display()
                )));
            }
            tls = tls.root_certs(ureq::tls::RootCerts::new_with_certs(&certs));
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            // Credentials follow a redirect on the same host only (a
            // registry's blob redirect to object storage carries none).
            .redirect_auth_headers(ureq::config::RedirectAuthHeaders::SameHost)
            .timeout_global(Some(REQUEST_TIMEOUT))
            .user_agent(concat!("kubesync/", env!("CARGO_PKG_VERSION")))
            .tls_config(tls.build())
            .build()
            .into();
        self.agents.lock().insert(key, agent.clone());
        Ok(agent)
    }

    /// GETs `url`, reading at most `limit` bytes of body.
    pub fn get(
        &self,
        url: &str,
        settings: &RepoSettings,
        auth: &Auth,
        accept: Option<&str>,
        limit: u64,
    ) -> Result<Response, TransportError> {
        let agent = self.agent(settings)?;
        let mut req = agent.get(url);
        if let Some(h) = auth.header() {
            req = req.header("Authorization", h);
        }
        if let Some(a) = accept {
            req = req.header("Accept", a);
        }
        tracing::debug!(url, "GET");
        let resp = req.call().map_err(transport)?;
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(String::from)
        };
        let status = resp.status().as_u16();
        let www_authenticate = header("www-authenticate");
        let content_type = header("content-type");
        let body = resp
            .into_body()
            .with_config()
            .limit(limit)
            .read_to_vec()
            .map_err(|e| match e {
                ureq::Error::BodyExceedsLimit(_) => TransportError::TooLarge { limit },
                other => transport(other),
            })?;
        Ok(Response {
            status,
            body,
            www_authenticate,
            content_type,
        })
    }
}

fn transport(e: ureq::Error) -> TransportError {
    match e {
        ureq::Error::HostNotFound => TransportError::Unreachable("host not found (DNS)".into()),
        ureq::Error::Io(io) => TransportError::Unreachable(io.to_string()),
        ureq::Error::Timeout(t) => TransportError::Unreachable(format!("timed out ({t})")),
        ureq::Error::Tls(m) => TransportError::Tls(m.to_string()),
        ureq::Error::Rustls(r) => TransportError::Tls(r.to_string()),
        other => TransportError::Unreachable(other.to_string()),
    }
}
