//! The controller's shared in-memory state: what `/api/v1/apps` shows and
//! what the loop and the HTTP server share — per app its sync status,
//! health, applied and deployed revisions and last run; per repository its
//! last poll; readiness; and the queue of pending work with the wake-up the
//! loop waits on. Updated from the engine's change set (never recomputed).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::Notify;

use super::objects::ObjectStore;
use super::scheduler::Pending;
use crate::diff::SyncStatus;
use crate::health::Health;
use crate::metrics::Metrics;
use crate::model::AppName;
use crate::sync::{AppOutcome, AppReport};

/// One app as `/api/v1/apps` shows it.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppView {
    pub name: String,
    pub tier: String,
    /// The app's destination namespace, when it names one.
    pub namespace: Option<String>,
    /// What it waits for: `dependsOn` and its parent app.
    pub depends_on: Vec<String>,
    /// `Synced`, `OutOfSync`, or absent before its first sync.
    pub sync: Option<SyncStatus>,
    pub health: Option<Health>,
    pub health_message: String,
    /// The commit last applied (short sha).
    pub applied_revision: Option<String>,
    /// The commit last seen Healthy.
    pub deployed_revision: Option<String>,
    pub self_heal: bool,
    /// Drift seen and not repaired (no selfHeal), naming the object.
    pub drift: Option<String>,
    /// Why its repository cannot be polled, when it cannot.
    pub source_error: Option<String>,
    pub last_run: Option<RunView>,
    /// Objects its last sync created, configured and pruned.
    pub created: usize,
    pub configured: usize,
    pub pruned: usize,
    /// The prerequisites that kept its last sync from starting.
    pub blocked_by: Vec<String>,
}

/// What the tree says about an app (for [`SharedState::set_apps`]).
#[derive(Debug, Clone, Default)]
pub struct AppMeta {
    pub self_heal: bool,
    pub tier: String,
    pub namespace: Option<String>,
    pub depends_on: Vec<String>,
}

/// The controller's last run as a whole (kube-applier's "last run").
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TreeRunView {
    /// `full` or `quick` (only what a commit, a request or drift named).
    pub kind: String,
    pub started: DateTime<Utc>,
    pub finished: Option<DateTime<Utc>>,
    /// The root commit it synced.
    pub commit: Option<String>,
    pub apps_synced: usize,
    /// Objects created, configured or pruned.
    pub objects_applied: usize,
    /// One line per failed app.
    pub errors: Vec<String>,
}

/// One sync of one app.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunView {
    pub started: DateTime<Utc>,
    pub finished: Option<DateTime<Utc>>,
    /// `Succeeded`, `Failed`, `TimedOut`, `Blocked`, or `Running`.
    pub result: String,
    pub error: Option<String>,
    /// What started it: `full`, `commit`, `request`, `selfHeal`, `retry`.
    pub trigger: String,
}

/// One polled repository.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RepoView {
    pub repo: String,
    pub revision: Option<String>,
    pub fingerprint: Option<String>,
    pub last_poll: Option<DateTime<Utc>>,
    pub error: Option<String>,
}

/// Everything `/api/v1/apps` answers.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    pub ready: bool,
    pub leader: bool,
    /// Why the tree could not be loaded, when it could not (the previous
    /// tree is kept meanwhile).
    pub tree_error: Option<String>,
    pub runs: u64,
    pub last_full_run: Option<DateTime<Utc>>,
    pub last_run: Option<TreeRunView>,
    /// A run is waiting to start.
    pub queued: bool,
    pub apps: Vec<AppView>,
    pub repositories: Vec<RepoView>,
}

/// [`Snapshot`] borrowed from the state under its lock (no app or
/// repository is cloned): what a page view or `/api/v1/apps` reads. It
/// serialises exactly as a `Snapshot` does.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotRef<'a> {
    pub ready: bool,
    pub leader: bool,
    pub tree_error: Option<&'a str>,
    pub runs: u64,
    pub last_full_run: Option<DateTime<Utc>>,
    pub last_run: Option<&'a TreeRunView>,
    pub queued: bool,
    #[serde(serialize_with = "values")]
    pub apps: &'a BTreeMap<AppName, AppView>,
    #[serde(serialize_with = "values")]
    pub repositories: &'a BTreeMap<String, RepoView>,
}

/// A map serialised as the list of its values (in key order).
fn values<S: serde::Serializer, K, V: Serialize>(
    map: &&BTreeMap<K, V>,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_seq(map.values())
}

#[derive(Debug, Default)]
struct Inner {
    apps: BTreeMap<AppName, AppView>,
    repos: BTreeMap<String, RepoView>,
    tree_error: Option<String>,
    runs: u64,
    last_full_run: Option<DateTime<Utc>>,
    last_run: Option<TreeRunView>,
}

/// Shared between the loop, the watches and the HTTP server.
#[derive(Debug, Default)]
pub struct SharedState {
    inner: Mutex<Inner>,
    pending: Mutex<Pending>,
    wake: Notify,
    ready: AtomicBool,
    leader: AtomicBool,
    /// `/metrics`: updated as runs, syncs, polls and drift happen.
    pub metrics: Arc<Metrics>,
    /// Each app's objects, for its page (see `objects`).
    pub objects: ObjectStore,
    /// Apps whose objects' health crossed Degraded since the loop looked.
    health_changes: Mutex<std::collections::BTreeSet<AppName>>,
}

impl SharedState {
    /// Queues work and wakes the loop.
    pub fn trigger(&self, work: Pending) {
        self.pending.lock().merge(work);
        self.wake.notify_one();
    }

    /// Puts work back in the queue without waking the loop (it was taken
    /// to pick out what can be done now; the rest waits for its turn).
    pub fn requeue(&self, work: Pending) {
        self.pending.lock().merge(work);
    }

    /// An object of `app` became Degraded or stopped being it (a watch
    /// saw it): the loop re-checks the app's health.
    pub fn health_changed(&self, app: AppName) {
        self.health_changes.lock().insert(app);
        self.wake.notify_one();
    }

    pub fn take_health_changes(&self) -> std::collections::BTreeSet<AppName> {
        std::mem::take(&mut *self.health_changes.lock())
    }

    /// The app's health, seen between syncs.
    pub fn set_app_health(&self, app: &AppName, health: &crate::health::HealthStatus) {
        if let Some(v) = self.inner.lock().apps.get_mut(app) {
            v.health = Some(health.health);
            v.health_message = health.message.clone();
        }
    }

    /// Takes the queued work.
    pub fn take_pending(&self) -> Pending {
        self.pending.lock().take()
    }

    pub fn has_pending(&self) -> bool {
        !self.pending.lock().is_empty()
    }

    /// Resolves when work is queued (or was queued since the last wait).
    pub async fn woken(&self) {
        self.wake.notified().await
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Release);
    }

    /// Whether this replica leads (what the loop last saw).
    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::Acquire)
    }

    pub fn set_leader(&self, leader: bool) {
        self.metrics.set_leader(leader);
        self.leader.store(leader, Ordering::Release);
    }

    pub fn knows(&self, app: &AppName) -> bool {
        self.inner.lock().apps.contains_key(app)
    }

    /// Makes the app set the tree's: new apps appear, removed ones go.
    pub fn set_apps(&self, apps: impl IntoIterator<Item = (AppName, AppMeta)>) {
        let mut inner = self.inner.lock();
        let mut next = BTreeMap::new();
        for (name, meta) in apps {
            let mut view = inner.apps.remove(&name).unwrap_or_else(|| AppView {
                name: name.to_string(),
                ..AppView::default()
            });
            view.self_heal = meta.self_heal;
            view.tier = meta.tier;
            view.namespace = meta.namespace;
            view.depends_on = meta.depends_on;
            next.insert(name, view);
        }
        // Apps that left the tree leave /metrics too.
        for gone in inner.apps.keys() {
            self.metrics.app_removed(gone.as_str());
        }
        inner.apps = next;
        self.objects.retain(|a| inner.apps.contains_key(a));
    }

    /// A run of the whole tree (or of the apps a trigger named) starts.
    pub fn run_started(&self, full: bool, commit: Option<&str>) {
        self.inner.lock().last_run = Some(TreeRunView {
            kind: if full { "full" } else { "quick" }.into(),
            started: Utc::now(),
            finished: None,
            commit: commit.map(str::to_string),
            apps_synced: 0,
            objects_applied: 0,
            errors: Vec::new(),
        });
    }

    /// The run ended with these reports (its duration goes to `/metrics`).
    pub fn run_finished(&self, reports: &[AppReport], took: std::time::Duration) {
        let mut inner = self.inner.lock();
        let Some(run) = inner.last_run.as_mut() else {
            return;
        };
        run.finished = Some(Utc::now());
        run.apps_synced = reports
            .iter()
            .filter(|r| !matches!(r.outcome, AppOutcome::Blocked { .. }))
            .count();
        run.objects_applied = reports
            .iter()
            .map(|r| {
                let c = r.counts();
                c.created + c.configured + c.pruned
            })
            .sum();
        run.errors = reports
            .iter()
            .filter(|r| {
                matches!(
                    r.outcome,
                    AppOutcome::Failed { .. } | AppOutcome::TimedOut { .. }
                )
            })
            .map(|r| format!("{}: {}", r.name, r.message()))
            .collect();
        let run_type = if run.kind == "full" {
            crate::metrics::RunType::Full
        } else {
            crate::metrics::RunType::Quick
        };
        self.metrics
            .run_finished(run_type, run.errors.is_empty(), took);
    }

    pub fn set_tree_error(&self, error: Option<String>) {
        self.inner.lock().tree_error = error;
    }

    /// Marks the apps of a run as running.
    pub fn started(&self, apps: &[AppName], trigger: &str) {
        let now = Utc::now();
        let mut inner = self.inner.lock();
        inner.runs += 1;
        for a in apps {
            if let Some(v) = inner.apps.get_mut(a) {
                v.last_run = Some(RunView {
                    started: now,
                    finished: None,
                    result: "Running".into(),
                    error: None,
                    trigger: trigger.into(),
                });
            }
        }
    }

    /// Records one app's report.
    pub fn finished(&self, report: &AppReport) {
        let now = Utc::now();
        let mut inner = self.inner.lock();
        let Some(v) = inner.apps.get_mut(&report.name) else {
            return;
        };
        let error = match &report.outcome {
            AppOutcome::Failed { .. }
            | AppOutcome::TimedOut { .. }
            | AppOutcome::Blocked { .. } => Some(report.message()),
            _ => None,
        };
        let started = v.last_run.as_ref().map(|r| r.started).unwrap_or(now);
        let trigger = v
            .last_run
            .as_ref()
            .map(|r| r.trigger.clone())
            .unwrap_or_default();
        v.last_run = Some(RunView {
            started,
            finished: Some(now),
            result: report.outcome.label().to_string(),
            error,
            trigger,
        });
        v.sync = Some(report.sync);
        v.health = Some(report.health.health);
        v.health_message = report.health.message.clone();
        let counts = report.counts();
        (v.created, v.configured, v.pruned) = (counts.created, counts.configured, counts.pruned);
        v.blocked_by = match &report.outcome {
            AppOutcome::Blocked { by } => by.iter().map(ToString::to_string).collect(),
            _ => Vec::new(),
        };
        self.metrics.app_synced(report);
        self.objects.synced(report);
        if !matches!(report.outcome, AppOutcome::Blocked { .. }) && report.revision != "-" {
            v.applied_revision = Some(report.revision.clone());
        }
        if report.outcome.is_success() && report.health.health == Health::Healthy {
            v.deployed_revision = Some(report.revision.clone());
            v.drift = None;
        }
    }

    /// Drift that is reported, not repaired (no selfHeal).
    pub fn drifted(&self, app: &AppName, what: &str) {
        self.metrics.drift_detected(app.as_str());
        if let Some(v) = self.inner.lock().apps.get_mut(app) {
            v.sync = Some(SyncStatus::OutOfSync);
            v.drift = Some(what.to_string());
        }
    }

    pub fn full_run_done(&self) {
        self.inner.lock().last_full_run = Some(Utc::now());
    }

    /// Records a poll of repository `key`.
    pub fn polled(&self, key: &str, shown: &str, result: Result<&str, String>) {
        let mut inner = self.inner.lock();
        let r = inner.repos.entry(key.to_string()).or_default();
        r.repo = shown.to_string();
        r.last_poll = Some(Utc::now());
        match result {
            Ok(fp) => {
                r.fingerprint = Some(fp.to_string());
                r.revision = Some(fp.chars().take(7).collect());
                r.error = None;
            }
            Err(e) => r.error = Some(e),
        }
    }

    /// Sets the source error of apps of a repository (None clears it).
    pub fn source_error(&self, apps: &[AppName], error: Option<&str>) {
        let mut inner = self.inner.lock();
        for a in apps {
            if let Some(v) = inner.apps.get_mut(a) {
                v.source_error = error.map(str::to_string);
            }
        }
    }

    pub fn snapshot(&self) -> Snapshot {
        let inner = self.inner.lock();
        Snapshot {
            ready: self.is_ready(),
            leader: self.is_leader(),
            tree_error: inner.tree_error.clone(),
            runs: inner.runs,
            last_full_run: inner.last_full_run,
            last_run: inner.last_run.clone(),
            queued: self.has_pending(),
            apps: inner.apps.values().cloned().collect(),
            repositories: inner.repos.values().cloned().collect(),
        }
    }

    /// Calls `f` with the state as it is, borrowed under the lock: keep `f`
    /// short (render or serialise, nothing that waits).
    pub fn with_snapshot<R>(&self, f: impl FnOnce(&SnapshotRef<'_>) -> R) -> R {
        let inner = self.inner.lock();
        f(&SnapshotRef {
            ready: self.is_ready(),
            leader: self.is_leader(),
            tree_error: inner.tree_error.as_deref(),
            runs: inner.runs,
            last_full_run: inner.last_full_run,
            last_run: inner.last_run.as_ref(),
            queued: self.has_pending(),
            apps: &inner.apps,
            repositories: &inner.repos,
        })
    }

    pub fn app(&self, name: &AppName) -> Option<AppView> {
        self.inner.lock().apps.get(name).cloned()
    }
}
