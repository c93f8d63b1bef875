//! A local Kubernetes API emulator: the cluster for kubesync's tests, demos and
//! offline dry runs.
//!
//! It speaks the real Kubernetes HTTP protocol on loopback so that the real
//! kube-rs client and `kubectl` talk to it exactly as they would to an API
//! server. It owns an in-memory object store, discovery and OpenAPI documents,
//! the API verbs (including watch and server-side apply), simulated workload
//! controllers, fault injection and request accounting. It does not own any
//! kubesync logic: nothing here knows about Applications beyond serving CRDs.

pub mod fieldmanager;
pub mod fieldpath;
pub mod listkeys;
pub mod patch;
