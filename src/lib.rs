//! kubesync: a pull-based GitOps engine for Kubernetes.
//!
//! Data flows top to bottom through one module per concern: `model` (the
//! Application), `source` (repositories and revisions), `render` (one renderer
//! per kind), `tree` (app-of-apps expansion), `graph` (the dependency DAG),
//! `health` and `diff` (pure judgements of live objects), then the
//! cluster-facing modules, with `cli` as a thin shell on top. `emulator`
//! stands in for a Kubernetes API server in tests and offline runs.

pub mod chart;
pub mod cli;
pub mod cluster;
pub mod controller;
pub mod diff;
#[cfg(feature = "emulator")]
pub mod emulator;
pub mod events;
pub mod graph;
pub mod health;
pub mod image;
pub mod lease;
pub mod memo;
pub mod metrics;
pub mod model;
pub mod notify;
pub mod page;
pub mod render;
pub mod source;
pub mod sync;
pub mod tree;
