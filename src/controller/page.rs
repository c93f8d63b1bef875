//! The status page's view of the controller: [`ControllerPage`] implements
//! `page::PageSource` from the shared state the loop keeps, so a page view
//! makes no API request; its buttons queue work exactly as
//! `POST /api/v1/forceRun` and `POST /api/v1/apps/{name}/sync` do.

use std::sync::Arc;

use super::objects::ObjectEntry;
use super::scheduler::Pending;
use super::state::{AppView, SharedState, Snapshot, TreeRunView};
use crate::diff::SyncStatus;
use crate::model::AppName;
use crate::page::{
    AppPageView, AppRow, ObjectRow, Outcome, PageSource, PageView, RunKind, RunView, Trigger,
};

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

/// One object's row: its state, and what kubesync last did to it and when.
fn object_row(e: &ObjectEntry) -> ObjectRow {
    let mut message = Vec::new();
    if let Some(a) = e.action {
        match e.changed {
            Some(t) => message.push(format!(
                "{a}; last written {}",
                t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            )),
            None => message.push(a.to_string()),
        }
    }
    if !e.health_message.is_empty() {
        message.push(e.health_message.to_string());
    }
    ObjectRow {
        kind: e.kind_label(),
        namespace: e.namespace.as_deref().map(str::to_string),
        name: e.name.to_string(),
        sync: e.sync,
        health: e.health,
        message: message.join(" · "),
    }
}

/// The current diff of an app: its OutOfSync objects' (empty: none).
fn object_diff(objects: &[ObjectEntry]) -> String {
    let mut out = String::new();
    for e in objects
        .iter()
        .filter(|e| e.sync == Some(SyncStatus::OutOfSync))
    {
        let ns = e
            .namespace
            .as_deref()
            .map(|n| format!("{n}/"))
            .unwrap_or_default();
        out.push_str(&format!("# {} {ns}{}\n", e.kind_label(), e.name));
        match &e.diff {
            Some(d) => out.push_str(d),
            None => out.push_str("# (differs from git; run `kubesync diff` for the full diff)\n"),
        }
        if !out.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

/// The index page's view of a snapshot (pure).
pub fn page_view(snap: &Snapshot, source: &str, diff_url_format: Option<&str>) -> PageView {
    // A tree that cannot be loaded is the first error of the last run.
    let mut last_run = snap.last_run.as_ref().map(run);
    if let (Some(r), Some(e)) = (last_run.as_mut(), snap.tree_error.as_ref()) {
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
        apps: snap.apps.iter().map(row).collect(),
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
        page_view(
            &self.state.snapshot(),
            &self.source,
            self.diff_url_format.as_deref(),
        )
    }

    fn app(&self, name: &str) -> Option<AppPageView> {
        let name = AppName::new(name).ok()?;
        let view = self.state.app(&name)?;
        let objects = self.state.objects.of(&name);
        Some(AppPageView {
            app: row(&view),
            diff_url_format: self.diff_url_format.clone(),
            diff: objects.as_deref().map(object_diff),
            objects: objects.unwrap_or_default().iter().map(object_row).collect(),
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
