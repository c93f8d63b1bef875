//! The status page's view of the controller: [`ControllerPage`] implements
//! `page::PageSource` from the shared state the loop keeps, so a page view
//! makes no API request; its buttons queue work exactly as
//! `POST /api/v1/forceRun` and `POST /api/v1/apps/{name}/sync` do.

use std::sync::Arc;

use super::scheduler::Pending;
use super::state::{AppView, SharedState, SnapshotRef, TreeRunView};
use crate::model::AppName;
use crate::page::{AppPageView, AppRow, Outcome, PageSource, PageView, RunKind, RunView, Trigger};

/// The page's source: the controller's state, what it follows, and
/// kube-applier's `DIFF_URL_FORMAT` for commit links.
pub struct ControllerPage {
    pub state: Arc<SharedState>,
    /// e.g. `https://git.example/cfg.git @ main`.
    pub source: String,
    pub diff_url_format: Option<String>,
}

fn outcome(v: &AppView) -> Outcome {
    match v.last_run.as_ref() {
        None => Outcome::Pending,
        Some(r) if r.finished.is_none() => Outcome::Running,
        Some(r) => match r.result.as_str() {
            "Failed" | "TimedOut" => Outcome::Failed,
            "Blocked" => Outcome::Blocked,
            _ => Outcome::Succeeded,
        },
    }
}

fn row(v: &AppView) -> AppRow {
    let error = v
        .last_run
        .as_ref()
        .and_then(|r| r.error.clone())
        .or_else(|| v.source_error.clone())
        .or_else(|| v.drift.as_ref().map(|d| format!("drift: {d}")));
    AppRow {
        name: v.name.clone(),
        tier: v.tier.clone(),
        namespace: v.namespace.clone(),
        sync: v.sync,
        health: v.health,
        outcome: outcome(v),
        applied_revision: v.applied_revision.clone(),
        deployed_revision: v.deployed_revision.clone(),
        last_started: v.last_run.as_ref().map(|r| r.started),
        last_finished: v.last_run.as_ref().and_then(|r| r.finished),
        created: v.created,
        configured: v.configured,
        pruned: v.pruned,
        error,
        depends_on: v.depends_on.clone(),
        blocked_by: v.blocked_by.clone(),
    }
}

fn run(r: &TreeRunView) -> RunView {
    RunView {
        kind: if r.kind == "full" {
            RunKind::Full
        } else {
            RunKind::Quick
        },
        started: r.started,
        finished: r.finished,
        commit: r.commit.clone(),
        apps_synced: r.apps_synced,
        objects_applied: r.objects_applied,
        errors: r.errors.clone(),
    }
}

/// The index page's view of a snapshot (pure).
pub fn page_view(snap: &SnapshotRef<'_>, source: &str, diff_url_format: Option<&str>) -> PageView {
    // A tree that cannot be loaded is the first error of the last run.
    let mut last_run = snap.last_run.map(run);
    if let (Some(r), Some(e)) = (last_run.as_mut(), snap.tree_error) {
        r.errors
            .insert(0, format!("the tree could not be loaded: {e}"));
    }
    PageView {
        source: source.to_string(),
        runs: snap.runs,
        leader: snap.leader,
        last_run,
        queued: snap.queued,
        diff_url_format: diff_url_format.map(str::to_string),
        apps: snap.apps.values().map(row).collect(),
    }
}

impl ControllerPage {
    fn trigger(&self, work: Pending) -> Trigger {
        if !self.state.is_leader() {
            return Trigger::NotLeader;
        }
        let queued = self.state.has_pending();
        self.state.trigger(work);
        if queued {
            Trigger::Queued
        } else {
            Trigger::Started
        }
    }
}

impl PageSource for ControllerPage {
    fn index(&self) -> PageView {
        self.state
            .with_snapshot(|snap| page_view(snap, &self.source, self.diff_url_format.as_deref()))
    }

    fn app(&self, name: &str) -> Option<AppPageView> {
        let view = AppName::new(name).ok().and_then(|n| self.state.app(&n))?;
        Some(AppPageView {
            app: row(&view),
            diff_url_format: self.diff_url_format.clone(),
            // The controller keeps no per-object state in memory yet: the
            // page shows the app's state; `kubesync diff APP` shows objects.
            objects: Vec::new(),
            diff: None,
        })
    }

    fn run_now(&self) -> Trigger {
        self.trigger(Pending {
            full: true,
            ..Pending::default()
        })
    }

    fn sync_app(&self, name: &str) -> Option<Trigger> {
        let app = AppName::new(name).ok().filter(|n| self.state.knows(n))?;
        let mut work = Pending::default();
        work.apps.insert(app);
        Some(self.trigger(work))
    }
}
