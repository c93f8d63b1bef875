//! The controller loop: one task that polls, loads, and runs, in that
//! order, each time it wakes (a timer, a trigger, a leadership change or
//! shutdown). Work that arrives while a run is in flight merges into the
//! queue (`Pending`), so at most one more run follows; polls go on during
//! a run, so a commit landing then is seen at once and queues that run. Only the leader
//! runs syncs or writes status; a follower polls and keeps its queue.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::RwLock;
use serde_json::json;
use tokio::sync::watch;

use super::changes::{changed_apps, digest_tree_after, AppDigest};
use super::poller::{self, PollOutcome, PollTarget};
use super::refresh;
use super::scheduler::{backoff, jittered, Pending, Retries};
use super::selfheal::{Desired, Watches};
use super::signals::Signals;
use super::state::SharedState;
use super::workspace::{Loaded, Workspace};
use super::ControllerConfig;
use crate::cluster::ClusterClient;
use crate::model::AppName;
use crate::source::Fingerprint;
use crate::sync::{self, AppOutcome, AppReport, Progress, SyncOptions};

/// The current tree and what is derived from it.
struct Current {
    loaded: Loaded,
    digests: std::collections::BTreeMap<AppName, AppDigest>,
}

pub(super) struct Runner {
    pub cfg: ControllerConfig,
    pub client: ClusterClient,
    pub state: Arc<SharedState>,
    pub workspace: Arc<Workspace>,
    pub leader: watch::Receiver<bool>,
    pub shutdown: watch::Receiver<bool>,
    pub targets: Arc<RwLock<Vec<PollTarget>>>,
    current: Option<Arc<Current>>,
    fingerprints: HashMap<String, Fingerprint>,
    retries: Retries,
    load_failures: u32,
    load_retry: Option<Instant>,
    next_poll: Instant,
    next_full: Instant,
    watches: Watches,
    refresh_watch: Option<tokio::task::JoinHandle<()>>,
    leader_gone: bool,
    /// Work queued while not leading, done once leading.
    parked: Pending,
    /// Events, completion signals and file metrics of each app's sync.
    signals: Arc<Signals>,
}

impl Runner {
    pub fn new(
        cfg: ControllerConfig,
        client: ClusterClient,
        state: Arc<SharedState>,
        workspace: Arc<Workspace>,
        leader: watch::Receiver<bool>,
        shutdown: watch::Receiver<bool>,
        targets: Arc<RwLock<Vec<PollTarget>>>,
    ) -> Self {
        let now = Instant::now();
        let signals = Arc::new(Signals::new(
            client.clone(),
            state.metrics.clone(),
            cfg.notify.clone(),
            &cfg.instance,
            cfg.sync.write_status && !cfg.sync.dry_run,
            leader.clone(),
        ));
        Runner {
            signals,
            next_full: now + cfg.full_run_interval,
            watches: Watches::new(client.clone(), state.clone())
                .with_scope(cfg.watch_scope)
                .with_off_label(cfg.sync.off_label.clone()),
            cfg,
            client,
            state,
            workspace,
            leader,
            shutdown,
            targets,
            current: None,
            fingerprints: HashMap::new(),
            retries: Retries::default(),
            load_failures: 0,
            load_retry: None,
            next_poll: now,
            refresh_watch: None,
            leader_gone: false,
            parked: Pending::default(),
        }
    }

    /// The events and signals of this loop's runs.
    pub fn signals(&self) -> Arc<Signals> {
        self.signals.clone()
    }

    fn is_leader(&self) -> bool {
        *self.leader.borrow()
    }

    pub async fn run(mut self) {
        // The first pass loads the tree and makes a full run (when leading,
        // else once leading). Leadership won before this point is seen by
        // that pass: marked seen here, so that it does not count as a new
        // leadership once the pass is over and make a second full run (every
        // start made two, and commits arriving meanwhile waited for both).
        self.leader.borrow_and_update();
        self.state.trigger(Pending {
            full: true,
            ..Pending::default()
        });
        while !*self.shutdown.borrow() {
            self.state.set_leader(self.is_leader());
            self.step().await;
            // After the pass, off the path from a commit to its sync.
            super::memory::release_free_memory();
            if *self.shutdown.borrow() {
                break;
            }
            self.wait().await;
        }
        if let Some(t) = self.refresh_watch.take() {
            t.abort();
        }
        self.signals.close(SIGNALS_GRACE).await;
        tracing::info!("controller stopped");
    }

    /// Sleeps until a timer, a trigger, a leadership change or shutdown.
    async fn wait(&mut self) {
        if self.state.has_pending() {
            return;
        }
        let mut next = self.next_poll.min(self.next_full);
        for t in [self.retries.next(), self.load_retry].into_iter().flatten() {
            next = next.min(t);
        }
        let leader_gone = self.leader_gone;
        tokio::select! {
            _ = self.state.woken() => {}
            _ = tokio::time::sleep_until(next.into()) => {}
            _ = self.shutdown.changed() => {}
            changed = self.leader.changed(), if !leader_gone => {
                match changed {
                    Err(_) => self.leader_gone = true,
                    Ok(()) if *self.leader.borrow() => {
                        tracing::info!("leading: a full run follows");
                        self.signals.forget();
                        let parked = self.parked.take();
                        self.state.trigger(parked);
                        self.state.trigger(Pending { full: true, ..Pending::default() });
                    }
                    Ok(()) => tracing::info!("no longer leading: no writes"),
                }
            }
        }
    }

    /// One pass: poll what is due, load on a new commit, run what is queued.
    async fn step(&mut self) {
        let health = self.state.take_health_changes();
        if !health.is_empty() && self.is_leader() {
            let leader = self.leader.clone();
            self.signals
                .health_changed(&self.state, health, || *leader.borrow())
                .await;
        }
        let now = Instant::now();
        let mut work = self.state.take_pending();
        if now >= self.next_poll {
            work.poll_all = true;
            self.next_poll = now + jittered(self.cfg.poll_interval, rand::random::<f64>());
        }
        if now >= self.next_full {
            work.full = true;
            self.next_full = now + self.cfg.full_run_interval;
        }
        let retry_load = self.load_retry.is_some_and(|t| t <= now);
        let due = self.retries.due(now);
        let mut trigger = if work.full { "full" } else { "request" };
        if !due.is_empty() && work.apps.is_empty() && work.drift.is_empty() {
            trigger = "retry";
        }
        work.apps.extend(due);

        let mut load = work.full || retry_load || self.current.is_none();
        // A full run renders everything afresh; a commit keeps the renders
        // whose inputs did not change.
        let reuse = !work.full;
        if work.poll_all || !work.poll_repos.is_empty() {
            let only = (!work.poll_all).then_some(&work.poll_repos);
            if self.poll(only).await {
                load = true;
                if !work.full && work.apps.is_empty() {
                    trigger = "commit";
                }
            }
        }
        if load {
            match self.load(reuse).await {
                Ok(changed) => {
                    if !work.full {
                        work.apps.extend(changed);
                    }
                }
                Err(e) => {
                    self.load_failures += 1;
                    let wait = backoff(self.load_failures);
                    tracing::warn!(
                        "cannot load the tree (retrying in {}s): {e}",
                        wait.as_secs()
                    );
                    self.state.set_tree_error(Some(e));
                    self.load_retry = Some(Instant::now() + wait);
                    // A full run needs a tree: it waits for the retry.
                    if work.full && self.current.is_none() {
                        work.full = false;
                        self.parked.full = true;
                    }
                }
            }
        }
        if !work.wants_run() {
            return;
        }
        if !self.is_leader() {
            self.parked.merge(Pending {
                poll_all: false,
                poll_repos: BTreeSet::new(),
                ..work
            });
            return;
        }
        if std::mem::take(&mut self.parked.full) {
            work.full = true;
        }
        self.execute(work, trigger).await;
    }

    /// The poll targets: every one, or those in `only` (a webhook's).
    fn targets_to_poll(&self, only: Option<&BTreeSet<String>>) -> Vec<PollTarget> {
        self.targets
            .read()
            .iter()
            .filter(|t| only.is_none_or(|o| o.contains(&t.key)))
            .cloned()
            .collect()
    }

    /// Polls every target (or those in `only`); true when one moved.
    async fn poll(&mut self, only: Option<&BTreeSet<String>>) -> bool {
        let targets = self.targets_to_poll(only);
        if targets.is_empty() {
            return false;
        }
        let sources = self.workspace.probe().clone();
        let mut known = std::mem::take(&mut self.fingerprints);
        let polled_at = Instant::now();
        let (results, known) = tokio::task::spawn_blocking(move || {
            let r = poller::poll(&sources, &targets, &mut known);
            (r, known)
        })
        .await
        .unwrap_or_default();
        self.fingerprints = known;
        // One round polls every repository; each is charged the round's time.
        let took = polled_at.elapsed();
        let mut moved = false;
        for (t, outcome) in results {
            let result = match &outcome {
                PollOutcome::Failed(_) => crate::metrics::PollResult::Failure,
                _ => crate::metrics::PollResult::Success,
            };
            self.state.metrics.git_polled(&t.shown, result, took);
            match &outcome {
                PollOutcome::Failed(e) => {
                    tracing::warn!(repo = %t.shown, "poll failed: {e}");
                    self.state.polled(&t.key, &t.shown, Err(e.clone()));
                    self.state.source_error(&t.apps, Some(e));
                }
                PollOutcome::Baseline(fp) | PollOutcome::Moved(fp) => {
                    if matches!(outcome, PollOutcome::Moved(_)) {
                        tracing::info!(repo = %t.shown, revision = %fp, "new commit");
                        moved = true;
                    }
                    self.state.polled(&t.key, &t.shown, Ok(&fp.0));
                    self.state.source_error(&t.apps, None);
                }
                PollOutcome::Unchanged => {
                    self.state
                        .polled(&t.key, &t.shown, Ok(&self.fingerprints[&t.key].0));
                    self.state.source_error(&t.apps, None);
                }
            }
        }
        moved
    }

    /// A poll (of every target, or those in `only`: a webhook's) while a
    /// run is in flight: it records what it sees (the new
    /// commit shows on `/api/v1/apps` at once) but leaves the known
    /// fingerprints alone, so the targeted poll it queues for after the run
    /// sees the move and loads the new commit. However many commits land
    /// during the run, one more run follows it.
    async fn poll_during_run(&mut self, only: Option<&BTreeSet<String>>) {
        let targets = self.targets_to_poll(only);
        if targets.is_empty() {
            return;
        }
        let sources = self.workspace.probe().clone();
        let mut known = self.fingerprints.clone();
        let polled_at = Instant::now();
        let results =
            tokio::task::spawn_blocking(move || poller::poll(&sources, &targets, &mut known))
                .await
                .unwrap_or_default();
        let took = polled_at.elapsed();
        let mut moved = BTreeSet::new();
        for (t, outcome) in results {
            let result = match &outcome {
                PollOutcome::Failed(_) => crate::metrics::PollResult::Failure,
                _ => crate::metrics::PollResult::Success,
            };
            self.state.metrics.git_polled(&t.shown, result, took);
            match outcome {
                PollOutcome::Failed(e) => {
                    tracing::warn!(repo = %t.shown, "poll failed: {e}");
                    self.state.polled(&t.key, &t.shown, Err(e));
                }
                PollOutcome::Moved(fp) => {
                    tracing::info!(repo = %t.shown, revision = %fp, "new commit during a run: another run follows");
                    self.state.polled(&t.key, &t.shown, Ok(&fp.0));
                    moved.insert(t.key);
                }
                PollOutcome::Unchanged => {
                    if let Some(fp) = self.fingerprints.get(&t.key) {
                        self.state.polled(&t.key, &t.shown, Ok(&fp.0));
                    }
                }
                // A target the tree added: its baseline comes with the next load.
                PollOutcome::Baseline(_) => {}
            }
        }
        if !moved.is_empty() {
            // Queued without waking this loop (it is busy with the run; the
            // queue is looked at as soon as the run ends).
            self.state.requeue(Pending {
                poll_repos: moved,
                ..Pending::default()
            });
        }
    }

    /// Loads the tree at the current commits (keeping the renders whose
    /// inputs did not change when `reuse`); returns the apps that changed.
    async fn load(&mut self, reuse: bool) -> Result<BTreeSet<AppName>, String> {
        let ws = self.workspace.clone();
        let old = self.current.clone();
        let client = self.client.clone();
        let handle = tokio::runtime::Handle::current();
        let (loaded, digests, changed) = tokio::task::spawn_blocking(move || {
            let previous = old.as_ref().filter(|_| reuse);
            let mut loaded = ws.load(previous.map(|c| &c.loaded.inputs))?;
            // kube-applier's LABEL gates, read again at every load.
            super::workspace::settle_gates(&mut loaded, || {
                handle.block_on(super::workspace::namespace_labels(&client))
            })?;
            let t = Instant::now();
            let sources = loaded.sources.clone();
            let digests = digest_tree_after(
                &loaded.tree,
                previous.map(|c| (&c.loaded.tree, &c.digests)),
                |u| sources.repo_key(u).ok(),
            );
            tracing::debug!(took = ?t.elapsed(), "digests");
            let changed = match &old {
                Some(old) => changed_apps(&old.digests, &digests, |url, a, b| {
                    sources.changed_paths(url, a, b).ok()
                }),
                None => digests.keys().cloned().collect(),
            };
            tracing::debug!(took = ?t.elapsed(), "change detection");
            Ok::<_, String>((loaded, digests, changed))
        })
        .await
        .map_err(|e| format!("the tree load stopped: {e}"))??;
        let published = Instant::now();
        self.load_failures = 0;
        self.load_retry = None;
        self.state
            .set_tree_error(loaded.graph.as_ref().err().cloned());
        self.state.set_apps(loaded.tree.nodes().iter().map(|n| {
            let mut depends_on: Vec<String> =
                n.app.depends_on.iter().map(ToString::to_string).collect();
            if let Some(parent) = &n.parent {
                depends_on.insert(0, parent.to_string());
            }
            (
                n.app.name.clone(),
                super::state::AppMeta {
                    self_heal: n.app.sync_policy.self_heal(),
                    tier: n.app.tier.to_string(),
                    namespace: n.app.destination.namespace.clone(),
                    depends_on,
                },
            )
        }));
        let targets = poller::targets(
            self.workspace.probe(),
            self.workspace.root_target(),
            self.workspace.root_names(),
            Some(&loaded.tree),
        );
        *self.targets.write() = targets.clone();
        self.watches.update(Desired::of(&loaded.tree));
        tracing::debug!(took = ?published.elapsed(), "state, poll targets and self-heal index updated");
        tracing::info!(
            apps = loaded.tree.len(),
            changed = changed.len(),
            kept = loaded.kept,
            commit = loaded.root_commit.as_deref().unwrap_or("worktree"),
            "tree loaded"
        );
        self.current = Some(Arc::new(Current { loaded, digests }));
        // Targets the new tree added get their baseline now.
        let new_targets: BTreeSet<String> = targets
            .iter()
            .filter(|t| !self.fingerprints.contains_key(&t.key))
            .map(|t| t.key.clone())
            .collect();
        if !new_targets.is_empty() {
            self.poll(Some(&new_targets)).await;
        }
        Ok(changed)
    }

    /// Runs the queued work (leader only).
    async fn execute(&mut self, work: Pending, trigger: &str) {
        let Some(current) = self.current.clone() else {
            return;
        };
        let tree = &current.loaded.tree;
        if let Err(e) = &current.loaded.graph {
            tracing::warn!("the tree cannot be ordered, nothing is synced: {e}");
            return;
        }
        let mut only: BTreeSet<AppName> = work
            .apps
            .iter()
            .filter(|a| tree.get(a).is_some())
            .cloned()
            .collect();
        let mut trigger = trigger.to_string();
        for (app, what) in &work.drift {
            let Some(node) = tree.get(app) else { continue };
            if node.app.sync_policy.self_heal() {
                if only.is_empty() {
                    trigger = "selfHeal".into();
                }
                only.insert(app.clone());
            } else if !work.full && !only.contains(app) {
                self.report_drift(app, what).await;
            }
        }
        let only = if work.full {
            None
        } else if only.is_empty() {
            return;
        } else {
            Some(only)
        };
        let opts = SyncOptions {
            only: only.clone(),
            stop: Some(self.shutdown.clone()),
            ..self.cfg.sync.clone()
        };
        let names: Vec<AppName> = match &only {
            Some(o) => o.iter().cloned().collect(),
            None => tree.nodes().iter().map(|n| n.app.name.clone()).collect(),
        };
        tracing::info!(apps = names.len(), trigger = %trigger, "run");
        let progress = StateProgress {
            state: self.state.clone(),
            trigger: trigger.clone(),
            signals: self.signals.clone(),
            current: current.clone(),
        };
        // The engine's future is not `Send` (it borrows the tree across
        // awaits in ways the compiler cannot prove), so it runs on a
        // blocking thread that drives it on this runtime.
        let leader = self.leader.clone();
        let client = self.client.clone();
        let run_current = current.clone();
        let handle = tokio::runtime::Handle::current();
        let run_started = Instant::now();
        self.state
            .run_started(work.full, current.loaded.root_commit.as_deref());
        let run = tokio::task::spawn_blocking(move || {
            handle.block_on(async move {
                let mut leader = leader;
                let tree = &run_current.loaded.tree;
                let Ok(graph) = &run_current.loaded.graph else {
                    return None;
                };
                tokio::select! {
                    r = sync::run(tree, graph, &client, &opts, &progress) => Some(r),
                    _ = leadership_lost(&mut leader) => {
                        tracing::warn!("leadership lost mid-run: the run is abandoned");
                        None
                    }
                }
            })
        });
        // Polls go on while the run is in flight: a commit that lands now
        // is seen now, and queues (at most) one more run.
        tokio::pin!(run);
        let report = loop {
            let next_poll = self.next_poll;
            tokio::select! {
                r = &mut run => break r.ok().flatten(),
                _ = tokio::time::sleep_until(next_poll.into()) => {
                    self.next_poll =
                        Instant::now() + jittered(self.cfg.poll_interval, rand::random::<f64>());
                    self.poll_during_run(None).await;
                }
                // A webhook's poll is done now too; everything else queued
                // waits for the run to end.
                _ = self.state.woken() => {
                    let mut queued = self.state.take_pending();
                    let all = std::mem::take(&mut queued.poll_all);
                    let repos = std::mem::take(&mut queued.poll_repos);
                    self.state.requeue(queued);
                    if all {
                        self.poll_during_run(None).await;
                    } else if !repos.is_empty() {
                        self.poll_during_run(Some(&repos)).await;
                    }
                }
            }
        };
        let Some(report) = report else {
            self.signals.forget();
            // Redo it when leading again.
            self.parked.merge(Pending {
                full: work.full,
                apps: work.apps,
                drift: work.drift,
                ..Pending::default()
            });
            return;
        };
        tracing::debug!(took = ?run_started.elapsed(), apps = report.apps.len(), "run finished");
        self.state.run_finished(&report.apps, run_started.elapsed());
        let now = Instant::now();
        let stopping = *self.shutdown.borrow();
        let mut any_success = false;
        for a in &report.apps {
            match &a.outcome {
                AppOutcome::Failed { .. } | AppOutcome::TimedOut { .. } => {
                    let at = self.retries.failed(&a.name, now);
                    tracing::warn!(app = %a.name, retry_in = ?at.saturating_duration_since(now), "sync failed: {}", a.message());
                }
                AppOutcome::Blocked { .. } if stopping => continue,
                AppOutcome::Blocked { .. } => {}
                _ => {
                    any_success = true;
                    self.retries.succeeded(&a.name);
                }
            }
        }
        if work.full && !stopping {
            self.state.full_run_done();
            self.state.set_ready();
        } else if any_success {
            self.state.set_ready();
        }
        for app in &work.refreshed {
            refresh::clear(&self.client, app).await;
        }
        if self.refresh_watch.is_none() && self.cfg.sync.write_status {
            self.refresh_watch = Some(tokio::spawn(refresh::watch(
                self.client.clone(),
                self.state.clone(),
            )));
        }
    }

    /// Drift of an app without selfHeal: OutOfSync in memory and in its
    /// Application status; none of its objects is written.
    async fn report_drift(&self, app: &AppName, what: &str) {
        tracing::info!(app = %app, "out of sync (no selfHeal, not repaired): {what}");
        self.state.drifted(app, what);
        if !self.cfg.sync.write_status || self.cfg.sync.dry_run {
            return;
        }
        let r = sync::status::application_ref(app.as_str());
        let patch = json!({"sync": {"status": "OutOfSync"}});
        if let Err(e) = self.client.patch_status(&r, &patch).await {
            tracing::warn!(app = %app, "cannot write the Application status: {e}");
        }
    }
}

async fn leadership_lost(leader: &mut watch::Receiver<bool>) {
    loop {
        if !*leader.borrow() {
            return;
        }
        if leader.changed().await.is_err() {
            // No one can take leadership away any more.
            std::future::pending::<()>().await;
        }
    }
}

/// Feeds the engine's progress into the shared state and the signals.
struct StateProgress {
    state: Arc<SharedState>,
    trigger: String,
    signals: Arc<Signals>,
    current: Arc<Current>,
}

impl Progress for StateProgress {
    fn started(&self, app: &AppName) {
        self.state.started(std::slice::from_ref(app), &self.trigger);
        if let Some(node) = self.current.loaded.tree.get(app) {
            self.signals.started(app, &node.revision_label());
        }
    }

    fn finished(&self, report: &AppReport) {
        self.finished_with(report, None);
    }

    fn finished_with(&self, report: &AppReport, previous: Option<Option<&serde_json::Value>>) {
        self.state.finished(report);
        let node = self.current.loaded.tree.get(&report.name);
        self.signals.finished(report, previous, node);
    }

    fn status_written(&self, app: &AppName) {
        self.signals.status_written(app);
    }
}

/// How long a stop waits for completion signals still being delivered
/// (what is left is sent by the next start: the ledger did not record it).
const SIGNALS_GRACE: Duration = Duration::from_secs(3);

/// How long a graceful stop may take before the loop is abandoned.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(9);
