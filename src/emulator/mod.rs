//! A local Kubernetes API emulator: the cluster for kubesync's tests, demos and
//! offline dry runs.
//!
//! It speaks the real Kubernetes HTTP protocol on loopback so that the real
//! kube-rs client and `kubectl` talk to it exactly as they would to an API
//! server. It owns an in-memory object store, discovery and OpenAPI documents,
//! the API verbs (including watch and server-side apply), simulated workload
//! controllers, fault injection and request accounting. It does not own any
//! kubesync logic: nothing here knows about Applications beyond serving CRDs.
//!
//! Layout, request to storage: `server` (start/stop, kubeconfig) → `http`
//! (routing, decoding, auth, accounting, hooks) → `cluster` (the verbs) →
//! `store` (objects, resourceVersions, history). Alongside: `resources` (the
//! served types), `discovery`, `openapi`, `table`, `watch`, `selector`,
//! `validation`, `defaults`, `errors`, `hooks` (extension points for simulated
//! controllers and fault injection), `controllers` (the simulated
//! kube-controller-manager, scheduler, kubelet and load balancer, on by
//! default), `faults` (seeded fault injection, `/emulator/faults`),
//! `accounting`, and the pure `patch` and `fieldmanager` helpers.
//!
//! Known simplifications: one stored version per resource (CRD versions are
//! served without conversion); lists always read the latest state (a
//! `resourceVersion` on a list is ignored, continue tokens resume by key);
//! built-in kinds' bodies are checked against k8s-openapi's types (`typed`:
//! unknown fields, wrong types, quantities) but their values are not
//! validated beyond names, labels, immutable fields and the common spec
//! mistakes (`validation`); custom resources are checked against their
//! CRD's structural schema (`crdschema`: types, enums, bounds, required,
//! pruning); deleting a namespace removes its contents immediately.

pub mod accounting;
pub mod cluster;
pub mod controllers;
pub mod convert;
pub mod crdschema;
mod defaults;
pub mod discovery;
pub mod errors;
pub mod faults;
pub mod fieldmanager;
pub mod fieldpath;
pub mod hooks;
mod http;
pub mod listkeys;
pub mod openapi;
pub mod patch;
pub mod resources;
pub mod selector;
mod server;
pub mod store;
mod table;
pub mod typed;
mod util;
pub mod validation;
pub mod watch;
mod workload_defaults;

use std::net::SocketAddr;
use std::path::PathBuf;

pub use accounting::{FaultCounts, JournalEntry, RequestAccounting, RequestCounts};
pub use cluster::{
    Cluster, DeleteOptions, ListOptions, PatchType, Propagation, Subresource, WriteOptions,
};
pub use controllers::{Simulation, SimulationConfig};
pub use errors::ApiError;
pub use faults::{ErrorFault, FaultConfig, FaultConfigError, FaultInjector, FaultRule};
pub use hooks::{Controller, Fault, RequestHook, RequestInfo};
pub use http::MAX_BODY_BYTES;
pub use server::{
    kubeconfig_yaml, serve_forever, Emulator, EmulatorConfig, EmulatorHandle, CLUSTER_NAME,
};
pub use store::{EventType, WatchEvent};

/// `kubesync emulator`: run a local Kubernetes API emulator until Ctrl-C.
///
/// Examples:
///   kubesync emulator --listen 127.0.0.1:6443 --kubeconfig-out ./emulator.kubeconfig
///   kubectl --kubeconfig ./emulator.kubeconfig get namespaces
#[derive(Debug, Clone, clap::Args)]
pub struct EmulatorArgs {
    /// Address to listen on (plain HTTP; use a loopback address).
    #[arg(
        long,
        default_value = "127.0.0.1:6443",
        env = "KUBESYNC_EMULATOR_LISTEN"
    )]
    pub listen: SocketAddr,
    /// Write a kubeconfig for the emulator (context "kubesync-emulator") here.
    #[arg(long, value_name = "PATH")]
    pub kubeconfig_out: Option<PathBuf>,
    /// Require this bearer token on every request (written into the kubeconfig).
    #[arg(long, env = "KUBESYNC_EMULATOR_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Kubernetes version reported by /version.
    #[arg(long, default_value = "v1.32.0")]
    pub kube_version: String,
    /// Do not simulate controllers (Deployments get no pods, nothing becomes
    /// ready).
    #[arg(long)]
    pub no_simulation: bool,
    /// Milliseconds until a simulated pod becomes ready (or a Job finishes).
    #[arg(long, value_name = "MS", default_value_t = 300)]
    pub ready_delay_ms: u64,
    /// Images that never pull (glob with `*`, else substring); repeatable.
    /// Example: --failing-image '*:broken'
    #[arg(long, value_name = "PATTERN")]
    pub failing_image: Vec<String>,
    /// Images whose containers exit with an error (glob with `*`, else
    /// substring); repeatable: a Job running one fails (BackoffLimitExceeded),
    /// a bare pod with `restartPolicy: Never` fails — e.g. to simulate a
    /// failing hook. Example: --failing-job-image 'migrate:bad'
    #[arg(long, value_name = "PATTERN")]
    pub failing_job_image: Vec<String>,
    /// Inject faults from this JSON file (the body `POST /emulator/faults`
    /// takes), e.g. {"seed":1,"rules":[{"verbs":["patch"],"rate":0.1,"error":{"code":503}}]}
    #[arg(long, value_name = "PATH")]
    pub faults: Option<PathBuf>,
}

impl EmulatorArgs {
    /// Runs the emulator as the arguments say, until Ctrl-C.
    pub async fn run(self) -> anyhow::Result<()> {
        use anyhow::Context as _;
        let faults = match &self.faults {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading fault configuration {}", path.display()))?;
                serde_json::from_str(&text)
                    .with_context(|| format!("parsing fault configuration {}", path.display()))?
            }
            None => FaultConfig::default(),
        };
        let config = EmulatorConfig {
            token: self.token,
            version: self.kube_version,
            simulation: SimulationConfig {
                enabled: !self.no_simulation,
                ready_delay: std::time::Duration::from_millis(self.ready_delay_ms),
                failing_images: self.failing_image,
                failing_jobs: self.failing_job_image,
                ..SimulationConfig::default()
            },
            faults,
            ..EmulatorConfig::default()
        };
        serve_forever(config, self.listen, self.kubeconfig_out).await
    }
}
