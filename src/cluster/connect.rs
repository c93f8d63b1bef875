//! Choosing the cluster: [`ClusterOptions`] and the order kubesync looks for
//! a cluster in — `--emulator` (an in-process emulator), `--server URL`, a
//! kubeconfig (`--kubeconfig`, else `KUBECONFIG`, else `~/.kube/config`,
//! with `--context`), in-cluster service-account configuration — and the
//! error that tells the user what to do when there is none.
//!
//! It produces a kube-rs `Config` and a one-line description of the target
//! (`context kind-dev (https://127.0.0.1:6443)`) that never carries
//! credentials. It does not send requests.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::Config;

use super::error::{error_chain, ClusterError};
use super::retry::RetryPolicy;
#[cfg(feature = "emulator")]
pub(crate) use crate::emulator::EmulatorHandle;
#[cfg(feature = "emulator")]
use crate::emulator::{Emulator, EmulatorConfig};

/// What keeps an in-process emulator alive for a client; nothing can, in
/// a build without the emulator (cargo feature `emulator`).
#[cfg(not(feature = "emulator"))]
pub(crate) type EmulatorHandle = std::convert::Infallible;

/// The field manager kubesync applies as.
pub const FIELD_MANAGER: &str = "kubesync";

/// How long kubesync waits for any single response (connect excluded).
pub const READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Default client-side request rate (`--qps`) for real API servers: Flux's
/// and Argo CD's default (50/s). The in-process emulator is not limited.
pub const DEFAULT_QPS: f64 = 50.0;

/// Default burst above the rate: a small app syncs without waiting (Flux's
/// default, also kubectl's discovery burst).
pub const DEFAULT_BURST: u32 = 300;

/// Which cluster to talk to and how to write to it.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// `--kubeconfig PATH`: this file instead of `KUBECONFIG` / `~/.kube/config`.
    pub kubeconfig: Option<PathBuf>,
    /// `--context NAME`: this kubeconfig context instead of the current one.
    pub context: Option<String>,
    /// `--server URL`: talk to this API server directly, without credentials.
    /// Plain `http://` is accepted only for loopback addresses.
    pub server: Option<String>,
    /// `--emulator`: start the local API emulator in-process and use it.
    pub emulator: bool,
    /// The server-side apply field manager (`kubesync`).
    pub field_manager: String,
    /// Force apply conflicts (take ownership of every declared field); `false`
    /// with `--no-force`, turning conflicts into [`ClusterError::Conflict`].
    pub force_conflicts: bool,
    /// Retries of transient failures.
    pub retry: RetryPolicy,
    /// Client-side request rate limit in requests per second; `0` (the
    /// library's default) for none. The CLI's `--qps` defaults to
    /// [`DEFAULT_QPS`]. Never applied to the in-process emulator.
    pub qps: f64,
    /// Requests allowed at once above the rate.
    pub burst: u32,
    /// Who is asking, added to the User-Agent (`kubesync/VERSION (AGENT)`)
    /// so audit logs and the emulator's journal tell replicas apart (`run`
    /// passes its leader-election identity).
    pub agent: Option<String>,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            kubeconfig: None,
            context: None,
            server: None,
            emulator: false,
            field_manager: FIELD_MANAGER.to_string(),
            force_conflicts: true,
            retry: RetryPolicy::default(),
            qps: 0.0,
            burst: DEFAULT_BURST,
            agent: None,
        }
    }
}

impl ClusterOptions {
    /// Options for an in-process emulator.
    pub fn emulator() -> Self {
        ClusterOptions {
            emulator: true,
            ..ClusterOptions::default()
        }
    }

    /// Options for an API server at `url`.
    pub fn server(url: impl Into<String>) -> Self {
        ClusterOptions {
            server: Some(url.into()),
            ..ClusterOptions::default()
        }
    }

    /// Options for a kubeconfig file (its current context).
    pub fn kubeconfig(path: impl Into<PathBuf>) -> Self {
        ClusterOptions {
            kubeconfig: Some(path.into()),
            ..ClusterOptions::default()
        }
    }
}

/// What the user should do when no cluster is configured.
#[cfg(feature = "emulator")]
pub const NO_CLUSTER_HINT: &str = "point kubesync at a cluster with --kubeconfig PATH (or the KUBECONFIG environment variable, or ~/.kube/config) and optionally --context NAME, or with --server URL; run it inside a cluster with a service account; or pass --emulator to use a local in-process Kubernetes API emulator";
/// What the user should do when no cluster is configured.
#[cfg(not(feature = "emulator"))]
pub const NO_CLUSTER_HINT: &str = "point kubesync at a cluster with --kubeconfig PATH (or the KUBECONFIG environment variable, or ~/.kube/config) and optionally --context NAME, or with --server URL; or run it inside a cluster with a service account";

/// Why `--emulator` fails in a build without the emulator.
pub const NO_EMULATOR: &str = "this kubesync was built without the Kubernetes API emulator (cargo feature `emulator`, on by default); point it at a cluster with --kubeconfig, --server or in-cluster configuration, or use a build with the emulator";

/// A resolved target: kube-rs configuration, its description, and the
/// emulator when one was started for it.
pub(crate) struct Target {
    pub config: Config,
    pub description: String,
    pub emulator: Option<EmulatorHandle>,
}

/// Finds the cluster `opts` point at (see the module docs for the order).
pub(crate) async fn resolve_target(opts: &ClusterOptions) -> Result<Target, ClusterError> {
    if opts.emulator {
        #[cfg(feature = "emulator")]
        {
            let handle = Emulator::start(EmulatorConfig::default())
                .await
                .map_err(|e| ClusterError::Connect {
                    target: "the in-process emulator".into(),
                    message: format!("{e:#}"),
                    source: None,
                })?;
            return emulator_target(handle).await;
        }
        #[cfg(not(feature = "emulator"))]
        return Err(ClusterError::Connect {
            target: "the in-process emulator (--emulator)".into(),
            message: NO_EMULATOR.into(),
            source: None,
        });
    }
    if let Some(server) = &opts.server {
        return server_target(server);
    }
    if let Some(target) = kubeconfig_target(opts).await? {
        return Ok(target);
    }
    if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() {
        let config = Config::incluster().map_err(|e| ClusterError::Connect {
            target: "the in-cluster API server".into(),
            message: error_chain(&e),
            source: Some(Box::new(e)),
        })?;
        let description = format!("in-cluster ({})", redact_uri(&config.cluster_url));
        return Ok(Target {
            config,
            description,
            emulator: None,
        });
    }
    let mut hint = String::new();
    if let Some(v) = std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
        hint.push_str(&format!(
            "KUBECONFIG is set to {:?} but none of its files exist; ",
            v.to_string_lossy()
        ));
    }
    if let Some(ctx) = &opts.context {
        hint.push_str(&format!(
            "--context {ctx} needs a kubeconfig that defines it; "
        ));
    }
    hint.push_str(NO_CLUSTER_HINT);
    Err(ClusterError::NoCluster { hint })
}

/// The target for a running emulator: its own kubeconfig (which carries its
/// token, when it requires one).
#[cfg(feature = "emulator")]
pub(crate) async fn emulator_target(handle: EmulatorHandle) -> Result<Target, ClusterError> {
    let url = handle.url();
    let fail = |message: String| ClusterError::Connect {
        target: format!("emulator at {url}"),
        message,
        source: None,
    };
    let kc = Kubeconfig::from_yaml(&handle.kubeconfig_yaml()).map_err(|e| fail(error_chain(&e)))?;
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .map_err(|e| fail(error_chain(&e)))?;
    Ok(Target {
        config,
        description: format!("emulator at {url}"),
        emulator: Some(handle),
    })
}

fn server_target(server: &str) -> Result<Target, ClusterError> {
    let bad = |message: String| ClusterError::Connect {
        target: format!("--server {}", redact_str(server)),
        message,
        source: None,
    };
    let url = url::Url::parse(server).map_err(|e| bad(format!("not a URL: {e}")))?;
    match url.scheme() {
        "https" => {}
        "http" => {
            if !is_loopback(&url) {
                return Err(bad(
                    "plain http:// is only allowed for loopback addresses (127.0.0.1, ::1, localhost); use https://".into(),
                ));
            }
        }
        other => return Err(bad(format!("unsupported scheme {other:?}; use https://"))),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
            "credentials in the URL are not accepted; use a kubeconfig".into(),
        ));
    }
    let uri: hyper::Uri = server
        .parse()
        .map_err(|e: hyper::http::uri::InvalidUri| bad(e.to_string()))?;
    let description = format!("server {}", redact_uri(&uri));
    Ok(Target {
        config: Config::new(uri),
        description,
        emulator: None,
    })
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// The kubeconfig files to read: `--kubeconfig` (which must exist), else the
/// existing files named by `KUBECONFIG` (when it is set, kubectl looks
/// nowhere else), else `~/.kube/config` when it exists.
fn kubeconfig_paths(opts: &ClusterOptions) -> Result<Vec<PathBuf>, ClusterError> {
    if let Some(path) = &opts.kubeconfig {
        if !path.exists() {
            return Err(ClusterError::Connect {
                target: format!("kubeconfig {}", path.display()),
                message: "no such file".into(),
                source: None,
            });
        }
        return Ok(vec![path.clone()]);
    }
    if let Some(value) = std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
        return Ok(std::env::split_paths(&value)
            .filter(|p| !p.as_os_str().is_empty() && p.exists())
            .collect());
    }
    let home = std::env::var_os("HOME")
        .or_else(|| std::env::var_os("USERPROFILE"))
        .filter(|h| !h.is_empty());
    Ok(home
        .map(|h| Path::new(&h).join(".kube").join("config"))
        .filter(|p| p.exists())
        .into_iter()
        .collect())
}

async fn kubeconfig_target(opts: &ClusterOptions) -> Result<Option<Target>, ClusterError> {
    let paths = kubeconfig_paths(opts)?;
    if paths.is_empty() {
        return Ok(None);
    }
    let shown = paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(":");
    let fail = |message: String| ClusterError::Connect {
        target: format!("kubeconfig {shown}"),
        message,
        source: None,
    };
    let mut merged: Option<Kubeconfig> = None;
    for path in &paths {
        let kc = Kubeconfig::read_from(path).map_err(|e| fail(error_chain(&e)))?;
        merged = Some(match merged {
            Some(m) => m.merge(kc).map_err(|e| fail(error_chain(&e)))?,
            None => kc,
        });
    }
    let kc = merged.unwrap_or_default();
    let context = opts
        .context
        .clone()
        .or_else(|| kc.current_context.clone())
        .unwrap_or_default();
    if context.is_empty() {
        return Err(fail(
            "no current-context is set; pass --context NAME".into(),
        ));
    }
    if !kc.contexts.iter().any(|c| c.name == context) {
        let known: Vec<&str> = kc.contexts.iter().map(|c| c.name.as_str()).collect();
        return Err(fail(format!(
            "no context named {context:?} (contexts: {})",
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        )));
    }
    let options = KubeConfigOptions {
        context: Some(context.clone()),
        ..KubeConfigOptions::default()
    };
    let config = Config::from_custom_kubeconfig(kc, &options)
        .await
        .map_err(|e| ClusterError::Connect {
            target: format!("context {context} in kubeconfig {shown}"),
            message: error_chain(&e),
            source: None,
        })?;
    let description = format!("context {context} ({})", redact_uri(&config.cluster_url));
    Ok(Some(Target {
        config,
        description,
        emulator: None,
    }))
}

/// A URI without user-info, query or fragment.
pub(crate) fn redact_uri(uri: &hyper::Uri) -> String {
    redact_str(&uri.to_string())
}

/// A URL string without user-info, query or fragment (unparseable input is
/// reduced to its scheme and host part as far as it can be found).
pub(crate) fn redact_str(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u.set_fragment(None);
            let s = u.to_string();
            // `Url` (and `Uri`) add a slash to bare hosts; drop it for display.
            if u.path() == "/" {
                s.trim_end_matches('/').to_string()
            } else {
                s
            }
        }
        Err(_) => match url.rsplit_once('@') {
            Some((_, host)) => host.to_string(),
            None => url.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_userinfo() {
        assert_eq!(
            redact_str("https://user:pw@k8s.example.com:6443/?token=x"),
            "https://k8s.example.com:6443"
        );
        assert_eq!(redact_str("http://127.0.0.1:1234"), "http://127.0.0.1:1234");
        assert_eq!(
            redact_str("http://127.0.0.1:1234/"),
            "http://127.0.0.1:1234"
        );
        assert_eq!(redact_str("https://h/k8s/"), "https://h/k8s/");
    }

    #[test]
    fn server_urls() {
        assert!(server_target("http://127.0.0.1:8080").is_ok());
        assert!(server_target("http://localhost:8080").is_ok());
        assert!(server_target("http://[::1]:8080").is_ok());
        assert!(server_target("https://k8s.example.com").is_ok());
        let e = server_target("http://k8s.example.com:8080")
            .err()
            .expect("plain http to a remote host is refused");
        assert!(e.to_string().contains("loopback"), "{e}");
        let e = server_target("https://me:secret@k8s.example.com")
            .err()
            .expect("credentials refused");
        assert!(!e.to_string().contains("secret"), "{e}");
        assert!(server_target("ftp://x").is_err());
    }
}
