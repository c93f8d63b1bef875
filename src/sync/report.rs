//! The change set: what a sync did, one entry per object, and per app the
//! outcome, sync status and health. Every view — the CLI table, JSON output,
//! Application status, metrics — is drawn from this, never recomputed.

use std::time::Duration;

use serde::Serialize;

use super::change::{Action, Change};
use super::failure::SyncFailure;
use crate::diff::SyncStatus;
use crate::health::{Health, HealthStatus};
use crate::model::{AppName, Tier};

/// How one application's sync ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum AppOutcome {
    /// Applied (or already in sync) and Healthy.
    Succeeded,
    /// Applied, but not Healthy within its wait timeout.
    TimedOut { after_secs: u64 },
    /// Rendering, guardrails, or a write failed; the failure says which.
    Failed {
        #[serde(flatten)]
        failure: SyncFailure,
    },
    /// Never attempted: a prerequisite failed, timed out or was blocked.
    Blocked { by: Vec<AppName> },
    /// A dry run: nothing was written.
    DryRun,
}

impl AppOutcome {
    pub fn is_success(&self) -> bool {
        matches!(self, AppOutcome::Succeeded | AppOutcome::DryRun)
    }

    pub fn label(&self) -> &'static str {
        match self {
            AppOutcome::Succeeded => "Succeeded",
            AppOutcome::TimedOut { .. } => "TimedOut",
            AppOutcome::Failed { .. } => "Failed",
            AppOutcome::Blocked { .. } => "Blocked",
            AppOutcome::DryRun => "DryRun",
        }
    }

    /// The reason of the Application's `SyncFailed` condition: the
    /// failure's (`ApplyFailed`, `RenderFailed`, …), else the label.
    pub fn condition_reason(&self) -> String {
        match self {
            AppOutcome::Failed { failure } => failure.condition_reason(),
            other => other.label().to_string(),
        }
    }

    /// The sync failure, when the app failed.
    pub fn failure(&self) -> Option<&SyncFailure> {
        match self {
            AppOutcome::Failed { failure } => Some(failure),
            _ => None,
        }
    }
}

/// The result of syncing one application.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppReport {
    pub name: AppName,
    pub tier: Tier,
    pub namespace: Option<String>,
    /// The revision rendered (sha, `worktree`, or `-` when unknown).
    pub revision: String,
    pub outcome: AppOutcome,
    pub sync: SyncStatus,
    pub health: HealthStatus,
    pub changes: Vec<Change>,
    #[serde(with = "secs")]
    pub duration: Duration,
}

impl AppReport {
    /// Counts of each action, in a fixed order, for summaries.
    pub fn counts(&self) -> ActionCounts {
        let mut c = ActionCounts::default();
        for ch in &self.changes {
            match ch.action {
                Action::Created => c.created += 1,
                Action::Configured => c.configured += 1,
                Action::Unchanged => c.unchanged += 1,
                Action::Pruned => c.pruned += 1,
                Action::Skipped => c.skipped += 1,
                Action::Failed => c.failed += 1,
            }
        }
        c
    }

    /// Whether apps waiting for this one may start: it succeeded and is
    /// ready (in a dry run, nothing is waited for, so success suffices).
    pub fn lets_dependents_start(&self, dry_run: bool) -> bool {
        self.outcome.is_success() && (dry_run || self.health.health.is_ready())
    }

    /// The one-line message shown in tables: the failure, the blocker, or
    /// the health message.
    pub fn message(&self) -> String {
        match &self.outcome {
            AppOutcome::Failed { failure } => failure.to_string(),
            AppOutcome::Blocked { by } => format!(
                "blocked by {}",
                by.iter()
                    .map(|a| format!("\"{a}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            AppOutcome::TimedOut { after_secs } => {
                format!("not healthy after {after_secs}s: {}", self.health.message)
            }
            _ => {
                let c = self.counts();
                let mut parts = Vec::new();
                for (n, word) in [
                    (c.created, "created"),
                    (c.configured, "configured"),
                    (c.pruned, "pruned"),
                    (c.skipped, "skipped"),
                    (c.failed, "failed"),
                ] {
                    if n > 0 {
                        parts.push(format!("{n} {word}"));
                    }
                }
                if parts.is_empty() {
                    parts.push(format!("{} unchanged", c.unchanged));
                }
                if !self.health.message.is_empty() && self.health.health != Health::Healthy {
                    parts.push(self.health.message.clone());
                }
                parts.join(", ")
            }
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ActionCounts {
    pub created: usize,
    pub configured: usize,
    pub unchanged: usize,
    pub pruned: usize,
    pub skipped: usize,
    pub failed: usize,
}

impl ActionCounts {
    /// Writes that changed the cluster (dry runs included).
    pub fn writes(&self) -> usize {
        self.created + self.configured + self.pruned
    }
}

/// The result of a whole sync run.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncReport {
    pub apps: Vec<AppReport>,
    /// Apps with an Application object in the cluster but no longer in the
    /// tree; their objects are kept.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub orphaned: Vec<AppName>,
    /// Apps no longer in the tree whose Argo CD Application had the
    /// resources finalizer: deleted with their objects.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<super::removed::RemovedApp>,
    #[serde(with = "secs")]
    pub duration: Duration,
}

impl SyncReport {
    /// True when every app succeeded, is Synced and Healthy, and every app
    /// removed with its objects is gone.
    pub fn all_good(&self) -> bool {
        self.removed.iter().all(|r| r.error.is_none()) && self.apps_good()
    }

    fn apps_good(&self) -> bool {
        self.apps.iter().all(|a| {
            a.outcome == AppOutcome::Succeeded
                && a.sync == SyncStatus::Synced
                && a.health.health.is_ready()
        }) || self
            .apps
            .iter()
            .all(|a| a.outcome == AppOutcome::DryRun && a.sync == SyncStatus::Synced)
    }

    pub fn get(&self, name: &AppName) -> Option<&AppReport> {
        self.apps.iter().find(|a| &a.name == name)
    }

    pub fn totals(&self) -> ActionCounts {
        let mut t = ActionCounts::default();
        for a in &self.apps {
            let c = a.counts();
            t.created += c.created;
            t.configured += c.configured;
            t.unchanged += c.unchanged;
            t.pruned += c.pruned;
            t.skipped += c.skipped;
            t.failed += c.failed;
        }
        t
    }
}

mod secs {
    use serde::Serializer;
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64((d.as_secs_f64() * 1000.0).round() / 1000.0)
    }
}
