//! The cluster edge: kubesync's only kube-rs IO. [`ClusterClient`] connects
//! to a cluster (the in-process emulator, `--server`, a kubeconfig context or
//! in-cluster configuration), resolves kinds through cached discovery, and
//! performs the few verbs the engine needs: server-side apply (field manager
//! `kubesync`, forced unless `--no-force`, optionally dry-run), get, list by
//! label selector, watch, delete, status merge patch, namespace checks and
//! waiting for a CRD to be Established. [`LiveCache`] keeps a run's view of
//! live objects by list+watch.
//!
//! Every call runs under one [`RetryPolicy`] (429 honouring Retry-After, 5xx
//! and transport failures; never other 4xx) and the client-side rate limit
//! (`--qps`; watches excepted), is counted in [`RequestStats`],
//! and fails with a [`ClusterError`] naming the object and carrying the
//! server's message — never credentials.
//!
//! It owns no policy: which objects to apply, in what order, whether a write
//! is allowed (guardrails), and how to compare live and desired state belong
//! to `sync`, `diff` and `health`. Objects go in and come out as
//! `serde_json::Value`, exactly as the server sent them.
//!
//! Namespaces: [`ClusterClient::apply`] sends objects as given; a namespaced
//! object must already carry its namespace. The engine sets the app's
//! destination with [`with_default_namespace`] (or
//! [`ClusterClient::normalize`], which also resolves the kind) — the
//! kubeconfig context's namespace is never used implicitly, so an object can
//! not land in `default` by accident.
//!
//! Layout: `connect` (options, target selection, the no-cluster hint),
//! `client` (the verbs), `cache` (a run's list+watch view of live objects,
//! which waits wake on), `discovery` (the cache of kinds), `retry` (policy
//! and loop), `retry_after` (Retry-After header → Status), `ratelimit`
//! (`--qps`), `error`, `stats`.

mod cache;
mod client;
mod connect;
mod discovery;
mod error;
mod ratelimit;
mod retry;
mod retry_after;
mod stats;

pub use cache::{CacheScope, LiveCache, Subscription};
pub use client::{with_default_namespace, ClusterClient, DeleteOutcome, Propagation};
pub use connect::{
    ClusterOptions, DEFAULT_BURST, DEFAULT_QPS, FIELD_MANAGER, NO_CLUSTER_HINT, NO_EMULATOR,
    READ_TIMEOUT,
};
pub use discovery::Resolved;
pub use error::ClusterError;
pub use kube::core::GroupVersionKind;
pub use retry::{RetryPolicy, MAX_RETRY_AFTER};
pub use stats::RequestStats;
