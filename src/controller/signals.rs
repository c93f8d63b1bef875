//! What the controller tells the world after each app's sync: Kubernetes
//! Events on the Application (`events`), completion signals for CI
//! (`notify`: the webhook and the S3 version file) and kube-applier's
//! per-file apply counts (`/metrics`).
//!
//! The engine hands every finished app's report over with the Application
//! object it read before syncing ([`crate::sync::Progress::finished_with`]);
//! this module keeps, per app, the status that object had and the status
//! the sync wrote (a compact [`ApplicationStatus`], inventory left out), so
//! that the pure deciders — [`events::started`], [`events::after_sync`],
//! [`notify::due`] — compare with the truth even across restarts (the
//! ledger of sent signals lives in `status.notifications`).
//!
//! Timing. `SyncStarted` is recorded when an app starts when this process
//! already knows the app's status, else (the first sync after a start)
//! just before its outcome. Other events go out as each app finishes.
//! Signals go out when the whole run has ended and every status write of
//! the run is done ([`Signals::after_run`]), so the ledger this module
//! patches is never overwritten by a status write of the same run; up to
//! [`CONCURRENCY`] apps are notified at once. Only the leader runs syncs,
//! so only the leader sends; after a leadership change the ledger is read
//! again from the cluster ([`Signals::forget`]).
//!
//! Health between syncs. When the self-heal watches see an object's
//! health cross Degraded ([`Signals::health_changed`]), the app's health is
//! re-aggregated from its objects' (the engine's rule: the worst object's)
//! without a sync: written to the Application's `status.health`, with a
//! `HealthDegraded` event and the `on-health-degraded` signal when it
//! degraded; a recovery ends the failure episode in the ledger.
//!
//! Does not own: what an event or a signal says, the rate limits, the
//! retries (`events`, `notify`), nor when runs happen (`runner`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use futures::StreamExt;
use parking_lot::Mutex;
use serde_json::{json, Value};

use crate::cluster::ClusterClient;
use crate::events::{self, EventRecorder};
use crate::metrics::{Metrics, NotificationOutcome};
use crate::model::{AppName, Tier};
use crate::notify::{self, AppState, NotificationRecord, Notifier, NotifyConfig, SyncResult};
use crate::sync::status::{self, ApplicationStatus};
use crate::sync::{Action, AppOutcome, AppReport};
use crate::tree::AppTree;

/// Apps whose signals are sent at once after a run.
pub const CONCURRENCY: usize = 16;

/// What this process knows of an app's Application object.
#[derive(Debug, Clone, Default)]
struct Known {
    /// Its status (inventory left out: not needed, and the largest part).
    status: ApplicationStatus,
    /// Its `kubesync.dev/notify-webhook` annotation.
    annotation: Option<String>,
    /// From its last report: what a health change between syncs reports.
    tier: Option<Tier>,
    namespace: Option<String>,
    /// The full commit of its applied revision (signals name it).
    full_revision: Option<String>,
}

impl Known {
    fn of(app_object: &Value) -> Option<Known> {
        app_object.get("status")?;
        let mut status = ApplicationStatus::of(app_object);
        status.inventory = Vec::new();
        Some(Known {
            status,
            annotation: notify::webhook_annotation(app_object).map(str::to_string),
            ..Known::default()
        })
    }
}

/// A finished app waiting for its signals.
struct Finished {
    report: AppReport,
    /// The Application as it was after the sync (None: unknown, read it).
    after: Option<Known>,
}

/// Events, signals and file metrics of the controller's runs.
pub(super) struct Signals {
    client: ClusterClient,
    metrics: Arc<Metrics>,
    recorder: Option<Arc<EventRecorder>>,
    notifier: Option<Notifier>,
    known: Mutex<HashMap<AppName, Known>>,
    finished: Mutex<Vec<Finished>>,
    /// Apps whose `SyncStarted` went out when they started.
    announced: Mutex<HashSet<AppName>>,
}

impl Signals {
    /// `writes`: the controller writes status (not a dry run, status on):
    /// without it there is no ledger, so no events and no signals.
    pub fn new(
        client: ClusterClient,
        metrics: Arc<Metrics>,
        notify: NotifyConfig,
        instance: &str,
        writes: bool,
    ) -> Self {
        let recorder = writes.then(|| Arc::new(EventRecorder::new(client.kube_client(), instance)));
        // Even without global targets: an app's annotation may name one.
        let notifier = writes.then(|| Notifier::new(notify));
        Signals {
            client,
            metrics,
            recorder,
            notifier,
            known: Mutex::new(HashMap::new()),
            finished: Mutex::new(Vec::new()),
            announced: Mutex::new(HashSet::new()),
        }
    }

    /// Leadership changed: what another leader may have written since is
    /// read again from the cluster.
    /// Signals of an abandoned run are dropped (it is redone).
    pub fn forget(&self) {
        self.known.lock().clear();
        self.announced.lock().clear();
        self.finished.lock().clear();
    }

    /// An app's sync starts at `revision` (called from the engine's
    /// progress, on its thread: the event is written by a task).
    pub fn started(&self, app: &AppName, revision: &str) {
        let Some(recorder) = &self.recorder else {
            return;
        };
        let event = {
            let known = self.known.lock();
            let Some(k) = known.get(app) else { return };
            events::started(app.as_str(), revision, Some(&k.status))
        };
        self.announced.lock().insert(app.clone());
        if let Some(event) = event {
            let recorder = recorder.clone();
            tokio::spawn(async move { recorder.publish(&event).await });
        }
    }

    /// An app's sync ended; `previous` is its Application object as the
    /// sync read it (`Some(None)`: there was none; `None`: not read).
    /// Records its events now and queues its signals.
    pub fn finished(&self, report: &AppReport, previous: Option<Option<&Value>>) {
        if self.recorder.is_none() || report.outcome == AppOutcome::DryRun {
            return;
        }
        let announced = self.announced.lock().remove(&report.name);
        // Read and absent: the engine writes a status from scratch.
        let fresh = matches!(previous, Some(None));
        let before = previous
            .flatten()
            .and_then(Known::of)
            .or_else(|| self.known.lock().get(&report.name).cloned());
        if !matches!(report.outcome, AppOutcome::Blocked { .. }) {
            let prev = before.as_ref().map(|k| &k.status);
            let mut evs = Vec::new();
            if !announced {
                evs.extend(events::started(
                    report.name.as_str(),
                    &report.revision,
                    prev,
                ));
            }
            evs.extend(events::after_sync(report, prev));
            if let (Some(recorder), false) = (&self.recorder, evs.is_empty()) {
                let recorder = recorder.clone();
                tokio::spawn(async move { recorder.publish_all(&evs).await });
            }
        }
        // What the engine writes (build_status is the engine's own rule).
        let before = match before {
            None if fresh => Some(Known::default()),
            b => b,
        };
        let after = before.map(|b| {
            let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            Known {
                status: status::build_status(report, &[], Some(&b.status), &now),
                annotation: b.annotation,
                tier: Some(report.tier),
                namespace: report.namespace.clone(),
                full_revision: None,
            }
        });
        match &after {
            Some(a) => {
                self.known.lock().insert(report.name.clone(), a.clone());
            }
            None => {
                self.known.lock().remove(&report.name);
            }
        }
        self.finished.lock().push(Finished {
            report: report.clone(),
            after,
        });
    }

    /// After a run (every status write done): counts the files applied and
    /// sends the signals that are due, recording them in each app's
    /// `status.notifications`. `leading` is asked before each write.
    pub async fn after_run(&self, tree: &AppTree, leading: impl Fn() -> bool) {
        let done = std::mem::take(&mut *self.finished.lock());
        for f in &done {
            self.count_files(tree, &f.report);
        }
        if self.notifier.is_none() {
            return;
        }
        // CI waits for the commit it pushed: signals name the full sha.
        let full = |app: &AppName, short: &str| {
            tree.get(app)
                .and_then(|n| n.checkout.as_ref())
                .and_then(|c| c.revision.id())
                .filter(|id| id.len() > short.len() && id.starts_with(short))
                .map(str::to_string)
        };
        let done: Vec<(Finished, Option<String>)> = done
            .into_iter()
            .map(|f| {
                let rev = full(&f.report.name, &f.report.revision);
                if let Some(k) = self.known.lock().get_mut(&f.report.name) {
                    k.full_revision = rev.clone();
                }
                (f, rev)
            })
            .collect();
        futures::stream::iter(done)
            .map(|(f, rev)| self.notify_app(f, rev, &leading))
            .buffer_unordered(CONCURRENCY)
            .collect::<Vec<()>>()
            .await;
    }

    /// The objects of `apps` crossed the Degraded line between syncs (a
    /// watch saw it): each app's health is re-aggregated from its objects
    /// and, when it changed from what its status says, written to its
    /// status, with a `HealthDegraded` event and the `on-health-degraded`
    /// signal when it degraded (a recovery settles the failure episode, so
    /// the next degradation is signalled again). Apps whose status this
    /// process does not know yet are left to their next sync.
    pub async fn health_changed(
        &self,
        state: &super::state::SharedState,
        apps: std::collections::BTreeSet<AppName>,
        leading: impl Fn() -> bool,
    ) {
        for app in apps {
            let Some(health) = state.objects.app_health(&app) else {
                continue;
            };
            state.set_app_health(&app, &health);
            let Some(known) = self.known.lock().get(&app).cloned() else {
                continue;
            };
            let (Some(tier), Some(sync)) = (known.tier, known.status.sync.clone()) else {
                continue;
            };
            if known.status.health.as_ref().map(|h| h.status) == Some(health.health)
                || self.recorder.is_none()
                || !leading()
            {
                continue;
            }
            tracing::info!(app = %app, health = health.health.as_str(), "health changed between syncs");
            // What a converged sync would report now: nothing written.
            let report = AppReport {
                name: app.clone(),
                tier,
                namespace: known.namespace.clone(),
                revision: sync.revision.clone(),
                outcome: AppOutcome::Succeeded,
                sync: sync.status,
                health: health.clone(),
                changes: Vec::new(),
                duration: std::time::Duration::ZERO,
            };
            let evs: Vec<events::AppEvent> = events::after_sync(&report, Some(&known.status))
                .into_iter()
                .filter(|e| e.reason == events::Reason::HealthDegraded)
                .collect();
            if let Some(recorder) = &self.recorder {
                recorder.publish_all(&evs).await;
            }
            let patch = json!({ "health": status::HealthState::from(&health) });
            match self
                .client
                .patch_status(&status::application_ref(app.as_str()), &patch)
                .await
            {
                Ok(_) => {
                    if let Some(k) = self.known.lock().get_mut(&app) {
                        k.status.health = Some(status::HealthState::from(&health));
                    }
                }
                Err(e) => {
                    tracing::warn!(app = %app, "cannot write the Application's health: {e}")
                }
            }
            let mut after = known.clone();
            after.status.health = Some(status::HealthState::from(&health));
            let full = known.full_revision.clone();
            self.notify_app(
                Finished {
                    report,
                    after: Some(after),
                },
                full,
                &leading,
            )
            .await;
        }
    }

    async fn notify_app(
        &self,
        f: Finished,
        full_revision: Option<String>,
        leading: &impl Fn() -> bool,
    ) {
        let Some(notifier) = &self.notifier else {
            return;
        };
        let app = f.report.name.clone();
        let mut state = AppState::from_report(&f.report, chrono::Utc::now());
        if let Some(rev) = full_revision {
            state.revision = rev;
        }
        if state.result == SyncResult::NotRun || !leading() {
            return;
        }
        let fires = notify::Trigger::ALL.iter().any(|t| state.fires(*t));
        let known = match f.after {
            Some(k) => k,
            // Nothing to send and no ledger in memory: nothing to settle
            // that matters; else read the ledger once.
            None if !fires => return,
            None => match self
                .client
                .get(&status::application_ref(app.as_str()))
                .await
            {
                Ok(Some(obj)) => Known::of(&obj).unwrap_or_default(),
                Ok(None) => Known::default(),
                Err(e) => {
                    tracing::warn!(app = %app, "cannot read the signals already sent, none sent now: {e}");
                    return;
                }
            },
        };
        if let Some(a) = known.annotation.as_deref() {
            if !a.trim().is_empty()
                && notify::targets_for(&NotifyConfig::default(), Some(a)).is_empty()
            {
                tracing::warn!(app = %app, "the {} annotation is not an http(s) URL: ignored", notify::WEBHOOK_ANNOTATION);
            }
        }
        let targets = notify::targets_for(notifier.config(), known.annotation.as_deref());
        let old = &known.status.notifications;
        let (ledger, results) = notifier.notify(&state, &targets, old).await;
        for (signal, result) in &results {
            let outcome = match result {
                Ok(()) => {
                    tracing::info!(app = %app, revision = %signal.revision, target = %signal.target.id(), trigger = signal.trigger.as_str(), "signal sent");
                    NotificationOutcome::Sent
                }
                Err(e) => {
                    tracing::warn!(app = %app, "signal not delivered: {e}");
                    NotificationOutcome::Failed
                }
            };
            self.metrics
                .notification((&signal.target).into(), signal.trigger.into(), outcome);
        }
        if ledger == *old || !leading() {
            return;
        }
        self.write_ledger(&app, &ledger).await;
    }

    async fn write_ledger(&self, app: &AppName, ledger: &[NotificationRecord]) {
        let patch = json!({ "notifications": ledger });
        match self
            .client
            .patch_status(&status::application_ref(app.as_str()), &patch)
            .await
        {
            Ok(_) => {
                // Only a status known whole is kept (a partial one would
                // look like news to the next sync's events).
                if let Some(k) = self.known.lock().get_mut(app) {
                    k.status.notifications = ledger.to_vec();
                }
            }
            Err(e) => {
                // Unknown now: read again before the next signal.
                self.known.lock().remove(app);
                tracing::warn!(app = %app, "cannot record the signals sent in the Application status: {e}")
            }
        }
    }

    /// kube-applier's `file_apply_count`: one count per source file of the
    /// app per sync that applied it, a success when none of its objects
    /// failed (an app refused before any write fails every file; one that
    /// rendered nothing fails its source path).
    fn count_files(&self, tree: &AppTree, report: &AppReport) {
        if matches!(
            report.outcome,
            AppOutcome::Blocked { .. } | AppOutcome::DryRun
        ) {
            return;
        }
        let Some(node) = tree.get(&report.name) else {
            return;
        };
        let files = file_results(node.objects(), report);
        if files.is_empty() && !report.outcome.is_success() {
            // Nothing rendered (a file that does not parse, a failed
            // renderer): the app's source path is what failed to apply.
            self.metrics
                .file_applied(node.app.source.path.as_str(), false);
        }
        for (file, success) in files {
            self.metrics.file_applied(&file, success);
        }
    }
}

/// Per source file of an app's objects: whether its objects applied. Pure.
fn file_results<'a>(
    manifests: impl Iterator<Item = &'a crate::model::Manifest>,
    report: &AppReport,
) -> BTreeMap<String, bool> {
    let refused = report.changes.is_empty() && !report.outcome.is_success();
    let mut out: BTreeMap<String, bool> = BTreeMap::new();
    for m in manifests {
        let file = m.origin.file.display().to_string();
        let failed = refused
            || m.object_ref().is_ok_and(|r| {
                report.changes.iter().any(|c| {
                    c.action == Action::Failed
                        && c.object.group == r.group
                        && c.object.kind == r.kind
                        && c.object.name == r.name
                        && (r.namespace.is_none() || c.object.namespace == r.namespace)
                })
            });
        let ok = out.entry(file).or_insert(true);
        *ok &= !failed;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::SyncStatus;
    use crate::health::HealthStatus;
    use crate::model::{Manifest, ObjectOrigin, ObjectRef, Tier};
    use crate::sync::Change;
    use std::time::Duration;

    fn manifest(file: &str, name: &str) -> Manifest {
        Manifest {
            object: json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}),
            origin: ObjectOrigin {
                file: file.into(),
                doc: 0,
            },
        }
    }

    fn cm(name: &str) -> ObjectRef {
        ObjectRef {
            group: String::new(),
            version: "v1".into(),
            kind: "ConfigMap".into(),
            namespace: Some("web".into()),
            name: name.into(),
        }
    }

    fn report(outcome: AppOutcome, changes: Vec<Change>) -> AppReport {
        AppReport {
            name: AppName::new("web").unwrap(),
            tier: Tier::App,
            namespace: Some("web".into()),
            revision: "abc".into(),
            outcome,
            sync: SyncStatus::Synced,
            health: HealthStatus::healthy(""),
            changes,
            duration: Duration::from_secs(1),
        }
    }

    #[test]
    fn files_fail_with_their_objects_or_when_the_app_was_refused() {
        let ms = [
            manifest("web/a.yaml", "a"),
            manifest("web/b.yaml", "b"),
            manifest("web/b.yaml", "b2"),
        ];
        let mut failed = Change::done(&cm("b2"), Action::Failed, false);
        failed.in_sync = false;
        let r = report(
            AppOutcome::Failed {
                message: "b2 refused".into(),
            },
            vec![
                Change::done(&cm("a"), Action::Created, false),
                Change::done(&cm("b"), Action::Unchanged, false),
                failed,
            ],
        );
        let got = file_results(ms.iter(), &r);
        assert!(got["web/a.yaml"]);
        assert!(!got["web/b.yaml"]);
        let refused = report(
            AppOutcome::Failed {
                message: "tier".into(),
            },
            vec![],
        );
        let got = file_results(ms.iter(), &refused);
        assert!(got.values().all(|ok| !ok));
    }
}
