//! Starting and stopping the emulator: [`EmulatorConfig`], [`Emulator::start`]
//! (in-process, on the current tokio runtime), the [`EmulatorHandle`] (URL,
//! kubeconfig, a kube-rs client, request accounting, the in-process
//! [`Cluster`], shutdown on drop) and [`serve_forever`] for the CLI.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

use super::accounting::{JournalEntry, RequestAccounting, RequestCounts};
use super::cluster::Cluster;
use super::controllers::{Simulation, SimulationConfig};
use super::faults::{self, FaultConfig, FaultConfigError, FaultInjector};
use super::hooks::{run_controllers, Controller, RequestHook};
use super::http::{router, Server};

/// The kubeconfig cluster, context and user name the emulator writes.
pub const CLUSTER_NAME: &str = "kubesync-emulator";

/// How to run an emulator.
#[derive(Clone)]
pub struct EmulatorConfig {
    /// Where to listen; `127.0.0.1:0` picks a free port.
    pub listen: SocketAddr,
    /// Require `Authorization: Bearer <token>` on every request.
    pub token: Option<String>,
    /// The `gitVersion` `/version` reports.
    pub version: String,
    /// How many committed changes watches can resume from.
    pub watch_history: usize,
    /// How often watches that allow bookmarks get one.
    pub bookmark_interval: Duration,
    /// Watch duration when the client sends no `timeoutSeconds`.
    pub default_watch_timeout: Duration,
    /// Simulated controllers (see [`Controller`]).
    pub controllers: Vec<Arc<dyn Controller>>,
    /// How often controllers get `tick`.
    pub tick_interval: Duration,
    /// Request hooks, run in order before each request (see [`RequestHook`]).
    pub request_hooks: Vec<Arc<dyn RequestHook>>,
    /// The simulated controllers (on by default; see `controllers`).
    pub simulation: SimulationConfig,
    /// Faults to inject from the start (none by default; see `faults`).
    pub faults: FaultConfig,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        EmulatorConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            token: None,
            version: "v1.32.0".into(),
            watch_history: 10_000,
            bookmark_interval: Duration::from_secs(10),
            default_watch_timeout: Duration::from_secs(1800),
            controllers: Vec::new(),
            tick_interval: Duration::from_millis(100),
            request_hooks: Vec::new(),
            simulation: SimulationConfig::default(),
            faults: FaultConfig::default(),
        }
    }
}

impl std::fmt::Debug for EmulatorConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmulatorConfig")
            .field("listen", &self.listen)
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .field("version", &self.version)
            .field("watch_history", &self.watch_history)
            .field("controllers", &self.controllers.len())
            .field("request_hooks", &self.request_hooks.len())
            .field("simulation", &self.simulation)
            .field("faults", &self.faults)
            .finish()
    }
}

/// The emulator.
pub struct Emulator;

/// A running emulator; dropping it shuts the server down.
pub struct EmulatorHandle {
    addr: SocketAddr,
    token: Option<String>,
    cluster: Cluster,
    accounting: Arc<RequestAccounting>,
    simulation: Option<Arc<Simulation>>,
    faults: Arc<FaultInjector>,
    shutdown: tokio::sync::watch::Sender<bool>,
    server: Option<tokio::task::JoinHandle<()>>,
}

impl Emulator {
    /// Binds `config.listen` and serves on the current tokio runtime.
    pub async fn start(config: EmulatorConfig) -> anyhow::Result<EmulatorHandle> {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding the emulator to {}", config.listen))?;
        let addr = listener.local_addr().context("reading the bound address")?;
        let cluster = Cluster::new(config.watch_history);
        let accounting = Arc::new(RequestAccounting::default());
        let injector = Arc::new(
            FaultInjector::new(config.faults.clone(), Some(accounting.clone()))
                .context("invalid fault configuration")?,
        );
        let mut hooks = config.request_hooks.clone();
        hooks.push(injector.clone());
        let mut controllers = config.controllers.clone();
        let simulation = config
            .simulation
            .enabled
            .then(|| Arc::new(Simulation::new(config.simulation.clone())));
        if let Some(sim) = &simulation {
            controllers.push(sim.clone());
        }
        let (tx, rx) = tokio::sync::watch::channel(false);
        let server = Arc::new(Server {
            cluster: cluster.clone(),
            accounting: accounting.clone(),
            hooks,
            token: config.token.clone(),
            version: config.version.clone(),
            address: addr.to_string(),
            bookmark_interval: config.bookmark_interval,
            default_watch_timeout: config.default_watch_timeout,
            shutdown: rx.clone(),
        });
        tokio::spawn(run_controllers(
            cluster.clone(),
            controllers,
            config.tick_interval,
            rx.clone(),
        ));
        let mut stop = rx;
        let app = faults::routes(injector.clone(), config.token.clone()).merge(router(server));
        let task = tokio::spawn(async move {
            let result = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stop.wait_for(|v| *v).await;
                })
                .await;
            if let Err(e) = result {
                tracing::error!(error = %e, "emulator server stopped");
            }
        });
        tracing::info!(url = %format!("http://{addr}"), "emulator listening");
        Ok(EmulatorHandle {
            addr,
            token: config.token,
            cluster,
            accounting,
            simulation,
            faults: injector,
            shutdown: tx,
            server: Some(task),
        })
    }
}

impl EmulatorHandle {
    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A kubeconfig whose current context (`kubesync-emulator`) points here.
    pub fn kubeconfig_yaml(&self) -> String {
        kubeconfig_yaml(&self.url(), self.token.as_deref())
    }

    /// Writes [`Self::kubeconfig_yaml`] to `path`.
    pub fn write_kubeconfig(&self, path: &Path) -> anyhow::Result<()> {
        std::fs::write(path, self.kubeconfig_yaml())
            .with_context(|| format!("writing kubeconfig {}", path.display()))
    }

    /// A kube-rs client for this emulator.
    pub fn kube_client(&self) -> kube::Client {
        let uri: axum::http::Uri = self.url().parse().expect("the emulator URL is a valid URI");
        let mut config = kube::Config::new(uri);
        config.auth_info.token = self.token.clone().map(Into::into);
        kube::Client::try_from(config).expect("a plain-HTTP kube client builds")
    }

    /// The in-process API (for controllers and test setup).
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// Requests served so far.
    pub fn requests(&self) -> RequestCounts {
        self.accounting.snapshot()
    }

    pub fn reset_requests(&self) {
        self.accounting.reset();
    }

    /// The request journal, oldest first (see `accounting`).
    pub fn journal(&self) -> Vec<JournalEntry> {
        self.accounting.journal()
    }

    /// The journalled writes (create, update, patch, delete; not dry runs).
    pub fn journal_writes(&self) -> Vec<JournalEntry> {
        self.accounting
            .journal()
            .into_iter()
            .filter(JournalEntry::is_write)
            .collect()
    }

    /// The simulated controllers, unless disabled (their configuration can
    /// change at run time, e.g. [`Simulation::set_image_digest`]).
    pub fn simulation(&self) -> Option<&Arc<Simulation>> {
        self.simulation.as_ref()
    }

    /// Replaces the injected faults (also `POST /emulator/faults`).
    pub fn set_faults(&self, config: FaultConfig) -> Result<(), FaultConfigError> {
        self.faults.set(config)
    }

    /// The injected faults now in force.
    pub fn faults(&self) -> FaultConfig {
        self.faults.config()
    }

    /// Stops injecting faults.
    pub fn clear_faults(&self) {
        // An empty configuration always validates.
        let _ = self.faults.set(FaultConfig::default());
    }

    /// Stops serving and waits for the server to finish.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.server.take() {
            let _ = task.await;
        }
    }
}

impl Drop for EmulatorHandle {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

/// The kubeconfig for an emulator at `url`.
pub fn kubeconfig_yaml(url: &str, token: Option<&str>) -> String {
    let user = match token {
        Some(t) => format!("    token: {}\n", serde_json::Value::String(t.to_string())),
        None => "    {}\n".to_string(),
    };
    let user = if token.is_some() { user } else { String::new() };
    let user_block = if user.is_empty() {
        "  user: {}\n".to_string()
    } else {
        format!("  user:\n{user}")
    };
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: {CLUSTER_NAME}\n  cluster:\n    server: {url}\ncontexts:\n- name: {CLUSTER_NAME}\n  context:\n    cluster: {CLUSTER_NAME}\n    user: {CLUSTER_NAME}\n    namespace: default\ncurrent-context: {CLUSTER_NAME}\nusers:\n- name: {CLUSTER_NAME}\n{user_block}preferences: {{}}\n"
    )
}

/// Runs an emulator until Ctrl-C (the `kubesync emulator` command).
pub async fn serve_forever(
    config: EmulatorConfig,
    listen: SocketAddr,
    kubeconfig_out: Option<PathBuf>,
) -> anyhow::Result<()> {
    use std::io::Write as _;
    let handle = Emulator::start(EmulatorConfig { listen, ..config }).await?;
    // A reader that has gone away (`kubesync emulator | head -1`) does not
    // stop the emulator.
    let mut out = std::io::stdout();
    if let Some(path) = &kubeconfig_out {
        handle.write_kubeconfig(path)?;
        let _ = writeln!(out, "kubeconfig written to {}", path.display());
    }
    let _ = writeln!(out, "kubesync emulator serving at {}", handle.url());
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    handle.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubeconfig_parses() {
        for token in [None, Some("s3cret")] {
            let y = kubeconfig_yaml("http://127.0.0.1:1234", token);
            let v: serde_json::Value = serde_yaml::from_str(&y).expect("yaml");
            assert_eq!(v["current-context"], CLUSTER_NAME);
            assert_eq!(
                v["clusters"][0]["cluster"]["server"],
                "http://127.0.0.1:1234"
            );
            assert_eq!(v["users"][0]["user"]["token"].as_str(), token);
        }
    }
}
