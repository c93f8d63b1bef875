//! The sync engine: brings the cluster to the state of the app tree in
//! dependency order, gated on readiness, and returns a change set.
//!
//! `prepare` (pure) turns rendered manifests into apply-ready objects and
//! enforces the guardrails; `engine` schedules apps and does the IO through
//! `cluster`; `status` builds the Application objects and their status;
//! `report` is the change set every view is drawn from.

mod change;
mod engine;
pub mod prepare;
mod report;
pub mod schedule;
pub mod status;

pub use change::{Action, Change, ChangeError, Note, SkipReason};
pub use engine::{
    diff, ensure_status_crd, list_applications, run, system_namespaces, AppDiff, Progress, Quiet,
    SyncOptions,
};
pub use report::{ActionCounts, AppOutcome, AppReport, SyncReport};
pub use schedule::Schedule;
