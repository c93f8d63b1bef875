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
//! Signals go out per app as soon as it finished and its status write is
//! done ([`Signals::status_written`]), from a background queue
//! ([`super::sender`]): CI waiting for one app does not wait for the rest
//! of the tree, and a receiver that is down (retried for up to ~65 s)
//! never delays a run. Deliveries of one app are made in order, each
//! reading the ledger the one before wrote; up to [`CONCURRENCY`] apps at
//! once. The engine's status writes leave `status.notifications` alone
//! (this module is its only writer), so a later sync of the app never
//! overwrites what a delivery recorded. Only the leader runs syncs, so
//! only the leader sends (asked again before each delivery and each
//! ledger write); after a leadership change the ledger is read again from
//! the cluster and queued deliveries are dropped ([`Signals::forget`]).
//!
//! Which webhook an app has: the global one, and its own
//! `kubesync.dev/notify-webhook` annotation — on the Application in git
//! (the tree), else on the Application object in the cluster (one
//! annotated with `kubectl annotate`).
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
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio::sync::{oneshot, watch};

use super::sender::SendQueue;
use crate::cluster::ClusterClient;
use crate::events::{self, EventRecorder};
use crate::metrics::{Metrics, NotificationOutcome};
use crate::model::{AppName, Tier};
use crate::notify::{self, AppState, NotificationRecord, Notifier, NotifyConfig, SyncResult};
use crate::sync::status::{self, ApplicationStatus};
use crate::sync::{Action, AppOutcome, AppReport, Progress};
use crate::tree::{AppNode, AppTree};

/// Apps whose signals are delivered at once.
pub const CONCURRENCY: usize = 16;

/// What this process knows of an app's Application object.
#[derive(Debug, Clone, Default)]
struct Known {
    /// Its status (inventory left out: not needed, and the largest part);
    /// its `notifications` as last read (see [`Shared::ledgers`]).
    status: ApplicationStatus,
    /// Its `kubesync.dev/notify-webhook` annotation in the cluster.
    annotation: Option<String>,
    /// From its last report: what a health change between syncs reports.
    tier: Option<Tier>,
    namespace: Option<String>,
    /// The full commit of its applied revision (signals name it).
    full_revision: Option<String>,
    /// Its annotation in git, as of its last sync.
    desired_annotation: Option<String>,
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

/// One app's signals to check and send, as of one sync (or one health
/// change).
struct Delivery {
    report: AppReport,
    /// When the sync ended (the version file's body).
    finished_at: chrono::DateTime<chrono::Utc>,
    /// The full commit of the app's revision, when known.
    full_revision: Option<String>,
    /// The app's webhook annotation in git.
    desired_annotation: Option<String>,
    /// [`Shared::generation`] when it was queued.
    generation: u64,
}

/// What the background deliveries share with the controller.
struct Shared {
    client: ClusterClient,
    metrics: Arc<Metrics>,
    notifier: Option<Notifier>,
    known: Mutex<HashMap<AppName, Known>>,
    /// Per app, the ledger as this process last wrote it: newer than any
    /// status a sync read before that write, so it wins.
    ledgers: Mutex<HashMap<AppName, Vec<NotificationRecord>>>,
    leader: watch::Receiver<bool>,
    /// Bumped by [`Signals::forget`]: deliveries queued before are dropped.
    generation: AtomicU64,
}

/// Events, signals and file metrics of the controller's runs (and of a
/// one-shot `bootstrap` or `sync`: [`Signals::progress`]).
pub(crate) struct Signals {
    shared: Arc<Shared>,
    recorder: Option<Arc<EventRecorder>>,
    /// The background deliveries (none without status writes).
    queue: Option<SendQueue>,
    /// Per app, the gate its queued delivery waits on: opened by its
    /// status write.
    gates: Mutex<HashMap<AppName, oneshot::Sender<()>>>,
    /// Apps whose `SyncStarted` went out when they started.
    announced: Mutex<HashSet<AppName>>,
    /// Events being written (waited for by [`Signals::close`]).
    events: Mutex<tokio::task::JoinSet<()>>,
}

impl Signals {
    /// `writes`: the controller writes status (not a dry run, status on):
    /// without it there is no ledger, so no events and no signals.
    /// `leader` says whether this process leads (only the leader sends).
    /// Starts the background sender on the current runtime.
    pub fn new(
        client: ClusterClient,
        metrics: Arc<Metrics>,
        notify: NotifyConfig,
        instance: &str,
        writes: bool,
        leader: watch::Receiver<bool>,
    ) -> Self {
        let recorder = writes.then(|| Arc::new(EventRecorder::new(client.kube_client(), instance)));
        // Even without global targets: an app's annotation may name one.
        let notifier = writes.then(|| Notifier::new(notify));
        let queue = writes.then(|| SendQueue::start(CONCURRENCY));
        Signals {
            shared: Arc::new(Shared {
                client,
                metrics,
                notifier,
                known: Mutex::new(HashMap::new()),
                ledgers: Mutex::new(HashMap::new()),
                leader,
                generation: AtomicU64::new(0),
            }),
            recorder,
            queue,
            gates: Mutex::new(HashMap::new()),
            announced: Mutex::new(HashSet::new()),
            events: Mutex::new(tokio::task::JoinSet::new()),
        }
    }

    /// Writes `evs` in the background.
    fn publish(&self, evs: Vec<events::AppEvent>) {
        let Some(recorder) = self.recorder.clone() else {
            return;
        };
        if evs.is_empty() {
            return;
        }
        let mut tasks = self.events.lock();
        // Reap the finished ones: the set stays as small as what is in flight.
        while tasks.try_join_next().is_some() {}
        tasks.spawn(async move { recorder.publish_all(&evs).await });
    }

    /// Leadership changed: what another leader may have written since is
    /// read again from the cluster; deliveries still queued are dropped
    /// (the new leader's runs decide again from the ledger).
    pub fn forget(&self) {
        self.shared.generation.fetch_add(1, Ordering::SeqCst);
        self.shared.known.lock().clear();
        self.shared.ledgers.lock().clear();
        self.announced.lock().clear();
        self.gates.lock().clear();
    }

    /// Deliveries queued or in flight.
    pub fn pending(&self) -> usize {
        self.queue.as_ref().map_or(0, SendQueue::pending)
    }

    /// Stopping: waits up to `grace` for the deliveries queued and the
    /// events being written. A signal left is not in the ledger, so the
    /// next start (or sync of the app) sends it.
    pub async fn close(&self, grace: Duration) {
        let deadline = tokio::time::Instant::now() + grace;
        if let Some(q) = &self.queue {
            q.close(grace).await;
        }
        let mut tasks = std::mem::take(&mut *self.events.lock());
        let drained = tokio::time::timeout_at(deadline, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!("stopping: events still being written are dropped");
            tasks.abort_all();
        }
    }

    /// The engine's [`Progress`] for a sync of `tree`: `inner`'s (the
    /// CLI's display), plus this module's events, signals and file counts
    /// — what the one-shot `bootstrap` and `sync` use, the same path the
    /// controller's runs take.
    pub fn progress<'a>(
        &'a self,
        tree: &'a AppTree,
        inner: &'a dyn Progress,
    ) -> impl Progress + 'a {
        SignalsProgress {
            signals: self,
            tree,
            inner,
        }
    }

    /// An app's sync starts at `revision` (called from the engine's
    /// progress, on its thread: the event is written by a task).
    pub fn started(&self, app: &AppName, revision: &str) {
        if self.recorder.is_none() {
            return;
        }
        let event = {
            let known = self.shared.known.lock();
            let Some(k) = known.get(app) else { return };
            events::started(app.as_str(), revision, Some(&k.status))
        };
        self.announced.lock().insert(app.clone());
        if let Some(event) = event {
            self.publish(vec![event]);
        }
    }

    /// An app's sync ended; `previous` is its Application object as the
    /// sync read it (`Some(None)`: there was none; `None`: not read — and
    /// then no status write follows this call); `node` is the app in the
    /// tree the sync ran. Records its events and file counts now and queues
    /// its signals, which wait for its status write when one follows
    /// ([`Signals::status_written`]).
    pub fn finished(
        &self,
        report: &AppReport,
        previous: Option<Option<&Value>>,
        node: Option<&AppNode>,
    ) {
        if self.recorder.is_none() || report.outcome == AppOutcome::DryRun {
            return;
        }
        if let Some(node) = node {
            self.count_files(node, report);
        }
        let announced = self.announced.lock().remove(&report.name);
        // Read and absent: the engine writes a status from scratch.
        let fresh = matches!(previous, Some(None));
        let before = previous
            .flatten()
            .and_then(Known::of)
            .or_else(|| self.shared.known.lock().get(&report.name).cloned());
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
            self.publish(evs);
        }
        // CI waits for the commit it pushed: signals name the full sha.
        let full_revision = node.and_then(|n| full_revision(n, &report.revision));
        let desired_annotation = node.and_then(|n| n.app.notify_webhook.clone());
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
                full_revision: full_revision.clone(),
                desired_annotation: desired_annotation.clone(),
            }
        });
        match after {
            Some(a) => {
                self.shared.known.lock().insert(report.name.clone(), a);
            }
            None => {
                self.shared.known.lock().remove(&report.name);
            }
        }
        if matches!(report.outcome, AppOutcome::Blocked { .. }) {
            return;
        }
        // A status write follows exactly when the sync read the object.
        let gate = previous.is_some().then(|| {
            let (open, gate) = oneshot::channel();
            self.gates.lock().insert(report.name.clone(), open);
            gate
        });
        self.queue_delivery(
            Delivery {
                report: report.clone(),
                finished_at: chrono::Utc::now(),
                full_revision,
                desired_annotation,
                generation: self.shared.generation.load(Ordering::SeqCst),
            },
            gate,
        );
    }

    /// The status write of `app`'s sync is done: its signals may go.
    pub fn status_written(&self, app: &AppName) {
        if let Some(open) = self.gates.lock().remove(app) {
            let _ = open.send(());
        }
    }

    fn queue_delivery(&self, delivery: Delivery, gate: Option<oneshot::Receiver<()>>) {
        let Some(queue) = &self.queue else { return };
        if self.shared.notifier.is_none() {
            return;
        }
        let shared = self.shared.clone();
        let app = delivery.report.name.clone();
        queue.push(
            app,
            gate,
            Box::new(move || Box::pin(async move { shared.deliver(delivery).await })),
        );
    }

    /// The objects of `apps` crossed the Degraded line between syncs (a
    /// watch saw it): each app's health is re-aggregated from its objects
    /// and, when it changed from what its status says, written to its
    /// status, with a `HealthDegraded` event and the `on-health-degraded`
    /// signal when it degraded (a recovery settles the failure episode, so
    /// the next degradation is signalled again). Apps whose status this
    /// process does not know yet are left to their next sync. Signals are
    /// queued, not waited for.
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
            let Some(known) = self.shared.known.lock().get(&app).cloned() else {
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
                .shared
                .client
                .patch_status(&status::application_ref(app.as_str()), &patch)
                .await
            {
                Ok(_) => {
                    if let Some(k) = self.shared.known.lock().get_mut(&app) {
                        k.status.health = Some(status::HealthState::from(&health));
                    }
                }
                Err(e) => {
                    tracing::warn!(app = %app, "cannot write the Application's health: {e}")
                }
            }
            self.queue_delivery(
                Delivery {
                    report,
                    finished_at: chrono::Utc::now(),
                    full_revision: known.full_revision.clone(),
                    desired_annotation: known.desired_annotation.clone(),
                    generation: self.shared.generation.load(Ordering::SeqCst),
                },
                None,
            );
        }
    }

    /// kube-applier's `file_apply_count`: one count per source file of the
    /// app per sync that applied it, a success when none of its objects
    /// failed (an app refused before any write fails every file; one that
    /// rendered nothing fails its source path).
    fn count_files(&self, node: &AppNode, report: &AppReport) {
        if matches!(
            report.outcome,
            AppOutcome::Blocked { .. } | AppOutcome::DryRun
        ) {
            return;
        }
        let metrics = &self.shared.metrics;
        let files = file_results(node.objects(), report);
        if files.is_empty() && !report.outcome.is_success() {
            // Nothing rendered (a file that does not parse, a failed
            // renderer): the app's source path is what failed to apply.
            metrics.file_applied(node.app.source.path.as_str(), false);
        }
        for (file, success) in files {
            metrics.file_applied(&file, success);
        }
    }
}

/// [`Signals::progress`].
struct SignalsProgress<'a> {
    signals: &'a Signals,
    tree: &'a AppTree,
    inner: &'a dyn Progress,
}

impl Progress for SignalsProgress<'_> {
    fn started(&self, app: &AppName) {
        self.inner.started(app);
        if let Some(node) = self.tree.get(app) {
            self.signals.started(app, &node.revision_label());
        }
    }

    fn finished(&self, report: &AppReport) {
        self.finished_with(report, None);
    }

    fn finished_with(&self, report: &AppReport, previous: Option<Option<&Value>>) {
        self.inner.finished_with(report, previous);
        self.signals
            .finished(report, previous, self.tree.get(&report.name));
    }

    fn status_written(&self, app: &AppName) {
        self.inner.status_written(app);
        self.signals.status_written(app);
    }
}

/// The full commit of an app's short `revision`, from its checkout.
fn full_revision(node: &AppNode, short: &str) -> Option<String> {
    node.checkout
        .as_ref()
        .and_then(|c| c.revision.id())
        .filter(|id| id.len() > short.len() && id.starts_with(short))
        .map(str::to_string)
}

impl Shared {
    fn leading(&self) -> bool {
        *self.leader.borrow()
    }

    /// Still the leader of the generation `d` was queued in.
    fn current(&self, d: &Delivery) -> bool {
        self.generation.load(Ordering::SeqCst) == d.generation && self.leading()
    }

    /// Sends the signals of `d` that are due and records them in the
    /// app's ledger (in the background queue, after the app's earlier
    /// deliveries).
    async fn deliver(&self, d: Delivery) {
        let Some(notifier) = &self.notifier else {
            return;
        };
        if !self.current(&d) {
            return;
        }
        let app = d.report.name.clone();
        let mut state = AppState::from_report(&d.report, d.finished_at);
        if let Some(rev) = &d.full_revision {
            state.revision = rev.clone();
        }
        if state.result == SyncResult::NotRun {
            return;
        }
        let fires = notify::Trigger::ALL.iter().any(|t| state.fires(*t));
        // The ledger as of now (the earlier deliveries of this app are
        // done): as this process last wrote it, else as last read.
        let known = self.known.lock().get(&app).cloned();
        let written = self.ledgers.lock().get(&app).cloned();
        let (old, cluster_annotation) = match (known, written) {
            (Some(k), w) => (w.unwrap_or(k.status.notifications), k.annotation),
            // Nothing to send: only settling what was written.
            (None, Some(w)) if !fires => (w, None),
            // Nothing to send and no ledger in memory: nothing to settle
            // that matters.
            (None, None) if !fires => return,
            // Else read the Application once.
            (None, w) => match self
                .client
                .get(&status::application_ref(app.as_str()))
                .await
            {
                Ok(Some(obj)) => {
                    let k = Known::of(&obj).unwrap_or_default();
                    let annotation = notify::webhook_annotation(&obj).map(str::to_string);
                    (w.unwrap_or(k.status.notifications), annotation)
                }
                Ok(None) => (w.unwrap_or_default(), None),
                Err(e) => {
                    tracing::warn!(app = %app, "cannot read the signals already sent, none sent now: {e}");
                    return;
                }
            },
        };
        // The annotation in git wins; the one on the object in the
        // cluster (kubectl annotate) is the fallback.
        let annotation = d
            .desired_annotation
            .as_deref()
            .or(cluster_annotation.as_deref());
        if let Some(a) = annotation {
            if !a.trim().is_empty()
                && notify::targets_for(&NotifyConfig::default(), Some(a)).is_empty()
            {
                tracing::warn!(app = %app, "the {} annotation is not an http(s) URL: ignored", notify::WEBHOOK_ANNOTATION);
            }
        }
        let targets = notify::targets_for(notifier.config(), annotation);
        let (ledger, results) = notifier.notify(&state, &targets, &old).await;
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
        if ledger == old || !self.current(&d) {
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
                self.ledgers.lock().insert(app.clone(), ledger.to_vec());
                // Only a status known whole is kept (a partial one would
                // look like news to the next sync's events).
                if let Some(k) = self.known.lock().get_mut(app) {
                    k.status.notifications = ledger.to_vec();
                }
            }
            Err(e) => {
                // Unknown now: read again before the next signal.
                self.ledgers.lock().remove(app);
                self.known.lock().remove(app);
                tracing::warn!(app = %app, "cannot record the signals sent in the Application status: {e}")
            }
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
    use crate::sync::{Change, SyncFailure};
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
                failure: SyncFailure::Refused {
                    message: "b2 refused".into(),
                },
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
                failure: SyncFailure::Refused {
                    message: "tier".into(),
                },
            },
            vec![],
        );
        let got = file_results(ms.iter(), &refused);
        assert!(got.values().all(|ok| !ok));
    }
}
