//! The sync engine: brings the cluster to the state of the app tree in
//! dependency order, gated on readiness, and returns a change set.
//!
//! Pure: `prepare` turns rendered manifests into apply-ready objects and
//! enforces the guardrails; `schedule` orders apps over the graph (which may
//! start, which a failure blocks, with root causes); `change` is one entry
//! of the change set (action and typed reason); `report` the per-app and
//! per-run change set every view is drawn from; `status` the typed
//! Application status built from it; `shared` what the whole tree wants.
//!
//! IO: `engine` drives the schedule and writes status; `app` runs one app's
//! sync as named steps, with `apply` (waves, phases, CRDs), `hooks` (resource
//! hooks: PreSync, Sync, PostSync, SyncFail) and `prune` (leftovers and the
//! rules that keep them); `removed` deletes apps that left the tree, with
//! their `delete_hooks` (PreDelete, PostDelete).

mod app;
mod apply;
mod change;
mod delete_hooks;
mod engine;
mod failure;
mod gone;
mod hooks;
pub mod prepare;
mod prune;
mod removed;
mod report;
pub mod schedule;
mod shared;
pub mod status;

pub use change::{Action, Change, ChangeError, HookNotRun, Note, SkipReason};
pub use delete_hooks::DELETE_HOOKS_ANNOTATION;
pub use engine::{
    diff, diff_ignoring, ensure_status_crd, list_applications, run, AppDiff, Progress, Quiet,
    SyncOptions, DEFAULT_PARALLEL,
};
pub use failure::{ApiError, SyncFailure};
pub use prune::PRUNE_ANNOTATION;
pub use removed::{retire, RemovedApp, RetireError, CASCADE_ANNOTATION};
pub use report::{ActionCounts, AppOutcome, AppReport, SyncReport};
pub use schedule::Schedule;
pub use shared::system_namespaces;
