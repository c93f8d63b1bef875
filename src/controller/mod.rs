//! `kubesync run`: the long-running controller. It keeps a cluster at the
//! state of git with the same engine as `bootstrap`:
//!
//! - `workspace` — where the root is (a local manifest, or a path inside
//!   `--repo URL` at `--revision`) and loading the tree at a commit;
//! - `poller` — one cheap ref lookup per followed repository/revision every
//!   `--poll-interval` (±5 %): an unchanged poll fetches, renders and asks
//!   the API server nothing;
//! - `changes` — which apps a new commit touches (git diff ∩ app paths,
//!   changed Application manifests, changed rendered output);
//! - `scheduler` — the queue (at most one run follows the one in flight),
//!   jitter and retry backoff;
//! - `runner` — the loop: poll, load, run (changed apps in dependency
//!   order; a full run every `--full-run-interval`; failed apps retried
//!   with backoff; a failure never prunes, as the engine guarantees);
//! - `selfheal` — watches on kubesync's objects: drift is repaired at once
//!   with `selfHeal`, else reported OutOfSync without writing;
//! - `refresh` — the `kubesync.dev/refresh` annotation;
//! - `server` and `webhook` — the HTTP API and signed push webhooks;
//! - `state` — the shared in-memory state `/api/v1/apps` shows, and
//!   `objects` — each app's objects, their health and drift diffs (the
//!   page's `/apps/NAME`);
//! - `signals` — after each app's sync (and on health changes between
//!   syncs): Kubernetes Events, completion signals for CI (webhook, S3
//!   version file, once per app and revision, the ledger in the
//!   Application status) and per-file apply counts; `sender` — the
//!   background queue that delivers the signals off the runs' path.
//! - `seeds` — the seeds' environment-only configurations (KubeSync,
//!   kube-applier, git-sync-operator) and the roots their layouts stand for.
//!
//! Leadership is an input: [`Controller::start`] takes an optional
//! `watch::Receiver<bool>` ("am I the leader"; none = always). While it
//! says `false` the controller polls and reads but writes nothing (no sync,
//! no status); a run in flight when it turns `false` is abandoned, and a
//! full run follows when it turns `true` again. Leader election itself
//! (a Lease) lives elsewhere and only has to feed that receiver.

mod changes;
mod memory;
mod objects;
mod page;
mod poller;
mod refresh;
mod reuse;
mod runner;
mod scheduler;
pub mod seeds;
mod selfheal;
mod sender;
mod server;
pub(crate) mod signals;
mod state;
mod webhook;
mod workspace;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use tokio::sync::watch;

use crate::cluster::ClusterClient;
use crate::model::RevisionSpec;
use crate::source::RepoOverride;
use crate::sync::SyncOptions;

pub use changes::{changed_apps, digest_tree, path_under, AppDigest};
pub use memory::limit_arenas;
pub use refresh::REFRESH_ANNOTATION;
pub use scheduler::{backoff, jittered, Pending};
pub use selfheal::{classify, Desired, Event, WatchScope};
pub use state::{AppView, RepoView, RunView, SharedState, Snapshot};
pub use webhook::{
    push_repositories, sign, verify, Provider, WebhookError, GENERIC_SIGNATURE, GITHUB_SIGNATURE,
    GITLAB_TOKEN,
};
pub use workspace::{RepoAccess, RootSource};

/// Default `--poll-interval`.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(60);
/// Default `--full-run-interval`.
pub const DEFAULT_FULL_RUN_INTERVAL: Duration = Duration::from_secs(3600);

/// How the controller runs.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    pub root: RootSource,
    /// The root repository's revision (None: HEAD / the default branch).
    pub revision: Option<RevisionSpec>,
    pub overrides: Vec<RepoOverride>,
    /// Where repositories are cached (None: a temporary directory).
    pub cache_dir: Option<std::path::PathBuf>,
    pub poll_interval: Duration,
    pub full_run_interval: Duration,
    /// Where the HTTP server listens (None: no server).
    pub listen: Option<SocketAddr>,
    /// The webhook secret (None: every webhook is refused).
    pub webhook_secret: Option<Vec<u8>>,
    /// How each run syncs (parallelism, dry run, prune, timeouts).
    pub sync: SyncOptions,
    /// Renders at once when loading the tree.
    pub parallel: usize,
    /// Credentials for git and chart repositories.
    pub access: workspace::RepoAccess,
    /// kube-applier's `DIFF_URL_FORMAT`: the status page links commits
    /// through it (`%s` is the sha).
    pub diff_url_format: Option<String>,
    /// What ApplicationSet generators know of the cluster (`--cluster-name`,
    /// `--cluster-label`, `--managed-namespaces`).
    pub generators: crate::tree::appset::GeneratorEnv,
    /// A seed's layout standing for the root manifest (no `--root` given).
    pub seed_root: Option<seeds::SeedRoot>,
    /// Completion signals (webhook, S3 version file); apps may add their
    /// own webhook by annotation even when this names none.
    pub notify: crate::notify::NotifyConfig,
    /// This replica's name on the Events it records (the pod's name).
    pub instance: String,
    /// Where self-heal watches namespaced kinds (`--watch-scope`).
    pub watch_scope: WatchScope,
}

impl ControllerConfig {
    pub fn new(root: RootSource) -> Self {
        ControllerConfig {
            root,
            revision: None,
            overrides: Vec::new(),
            cache_dir: None,
            poll_interval: DEFAULT_POLL_INTERVAL,
            full_run_interval: DEFAULT_FULL_RUN_INTERVAL,
            listen: None,
            webhook_secret: None,
            sync: SyncOptions::default(),
            parallel: crate::sync::DEFAULT_PARALLEL,
            access: workspace::RepoAccess::default(),
            diff_url_format: None,
            generators: Default::default(),
            seed_root: None,
            notify: crate::notify::NotifyConfig::default(),
            instance: default_instance(),
            watch_scope: WatchScope::default(),
        }
    }
}

/// The replica's name: `POD_NAME` (the chart sets it from the downward
/// API), else `HOSTNAME` (a pod's name too), else `kubesync`.
pub fn default_instance() -> String {
    ["POD_NAME", "HOSTNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.trim().is_empty()))
        .unwrap_or_else(|| "kubesync".to_string())
}

/// Why the controller could not start.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error("{0}")]
    Setup(String),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Starts controllers.
pub struct Controller;

impl Controller {
    /// Starts the loop (and the HTTP server when `listen` is set) on the
    /// current runtime. `leader`: the leadership signal (None: always leader).
    pub async fn start(
        cfg: ControllerConfig,
        client: ClusterClient,
        leader: Option<watch::Receiver<bool>>,
    ) -> Result<ControllerHandle, ControllerError> {
        let ws = workspace::Workspace::new(
            cfg.root.clone(),
            cfg.revision.clone(),
            cfg.overrides.clone(),
            cfg.cache_dir.clone(),
            cfg.parallel,
            cfg.access.clone(),
        )
        .map_err(ControllerError::Setup)?
        .with_generators(cfg.generators.clone())
        .with_seed(cfg.seed_root.clone());
        let ws = Arc::new(ws);
        let state = Arc::new(SharedState::default());
        let (stop_tx, stop_rx) = watch::channel(false);
        // Without an election this replica always leads; the sender lives
        // in the handle so the receiver never sees it closed.
        let (always_tx, always_rx) = watch::channel(true);
        let leader = leader.unwrap_or(always_rx);
        let targets = Arc::new(RwLock::new(poller::targets(
            ws.probe(),
            ws.root_target(),
            ws.root_names(),
            None,
        )));
        let mut addr = None;
        let mut server_task = None;
        if let Some(listen) = cfg.listen {
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .map_err(|source| ControllerError::Listen {
                    addr: listen,
                    source,
                })?;
            addr = listener.local_addr().ok();
            let api = server::Api {
                state: state.clone(),
                secret: cfg.webhook_secret.clone().map(Arc::new),
                targets: targets.clone(),
            };
            let page = page::ControllerPage {
                state: state.clone(),
                source: match &cfg.revision {
                    Some(rev) => format!("{} @ {rev}", cfg.root),
                    None => cfg.root.to_string(),
                },
                diff_url_format: cfg.diff_url_format.clone(),
            };
            let routes = server::router(api)
                .merge(crate::page::router(Arc::new(page)))
                .merge(state.metrics.router());
            let mut stop = stop_rx.clone();
            server_task = Some(tokio::spawn(async move {
                let serve = axum::serve(listener, routes).with_graceful_shutdown(async move {
                    let _ = stop.wait_for(|s| *s).await;
                });
                if let Err(e) = serve.await {
                    tracing::error!("HTTP server stopped: {e}");
                }
            }));
        }
        tracing::info!(root = %cfg.root, listen = ?addr, "controller starting");
        let runner = runner::Runner::new(cfg, client, state.clone(), ws, leader, stop_rx, targets);
        let signals = runner.signals();
        let task = tokio::spawn(runner.run());
        Ok(ControllerHandle {
            addr,
            state,
            signals,
            stop: stop_tx,
            task,
            server_task,
            _always_leader: always_tx,
        })
    }
}

/// A running controller.
pub struct ControllerHandle {
    addr: Option<SocketAddr>,
    state: Arc<SharedState>,
    signals: Arc<signals::Signals>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    server_task: Option<tokio::task::JoinHandle<()>>,
    _always_leader: watch::Sender<bool>,
}

impl ControllerHandle {
    /// The HTTP server's address (with port 0, the one chosen).
    pub fn addr(&self) -> Option<SocketAddr> {
        self.addr
    }

    pub fn state(&self) -> &Arc<SharedState> {
        &self.state
    }

    /// Completion signals queued or being delivered (they go out in the
    /// background, off the runs' path).
    pub fn signals_pending(&self) -> usize {
        self.signals.pending()
    }

    /// Queues work as the HTTP triggers do.
    pub fn trigger(&self, work: Pending) {
        self.state.trigger(work);
    }

    /// Waits until ready (first full run done), up to `timeout`.
    pub async fn wait_ready(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while !self.state.is_ready() {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    /// Stops gracefully: no new app starts, apps in flight finish and write
    /// their status, the server stops. After `grace` the loop is abandoned.
    /// True when it stopped within `grace`.
    pub async fn shutdown(self, grace: Duration) -> bool {
        let _ = self.stop.send(true);
        let task = self.task;
        let abort = task.abort_handle();
        let clean = tokio::time::timeout(grace, task).await.is_ok();
        if !clean {
            abort.abort();
        }
        if let Some(s) = self.server_task {
            let _ = tokio::time::timeout(Duration::from_secs(1), s).await;
        }
        clean
    }
}

/// The default grace of a graceful stop (under the 10 s a pod gets by default
/// before SIGKILL would be 30 s; kubesync promises 10 s).
pub const SHUTDOWN_GRACE: Duration = runner::SHUTDOWN_GRACE;
