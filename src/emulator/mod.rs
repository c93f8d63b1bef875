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
//! controllers and fault injection), `accounting`, and the pure `patch` and
//! `fieldmanager` helpers.
//!
//! Known simplifications: one stored version per resource (CRD versions are
//! served without conversion); lists always read the latest state (a
//! `resourceVersion` on a list is ignored, continue tokens resume by key);
//! spec schemas are not validated (`fieldValidation=Strict` accepts unknown
//! fields); deleting a namespace removes its contents immediately.

// `ApiError` is a whole `Status` (causes, details); it only travels on error
// paths of a test server, where boxing it everywhere buys nothing.
#![allow(clippy::result_large_err)]

pub mod accounting;
pub mod cluster;
pub mod controllers;
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
mod util;
pub mod validation;
pub mod watch;

use std::net::SocketAddr;
use std::path::PathBuf;

pub use accounting::{FaultCounts, RequestAccounting, RequestCounts};
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
}

impl EmulatorArgs {
    /// Runs the emulator as the arguments say, until Ctrl-C.
    pub async fn run(self) -> anyhow::Result<()> {
        let config = EmulatorConfig {
            token: self.token,
            version: self.kube_version,
            ..EmulatorConfig::default()
        };
        serve_forever(config, self.listen, self.kubeconfig_out).await
    }
}
