//! One app's sync, as named steps: [`AppSync::run`] plans (reads the
//! previous inventory, prepares every object before any write), ensures the
//! destination namespace, runs PreSync hooks, applies (`apply`, with Sync
//! hooks in their waves), prunes leftovers (`prune`), settles the outcome
//! and health, runs PostSync or SyncFail hooks (`hooks`), and writes the
//! status back. Every step
//! adds to the app's change set; whether the sync failed is read from it
//! ([`Change::halts`]), never kept on the side.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::Value;
use tracing::Instrument;

use super::change::{Change, HookNotRun, SkipReason};
use super::engine::{write_status, write_status_with, SyncOptions};
use super::failure::SyncFailure;
use super::hooks;
use super::prepare::{prepare, DesiredObject, PrepareContext, SyncMode};
use super::report::{AppOutcome, AppReport};
use super::shared::{crd_scopes, Shared};
use super::status::{self, InventoryEntry};
use crate::cluster::{ClusterClient, ClusterError, LiveCache};
use crate::diff::{IgnoreSet, ObjectDiff, SyncStatus};
use crate::health::{self, Health, HealthStatus};
use crate::model::hook::{Excluded, HookPhase, Role};
use crate::model::{AppName, Manifest, ObjectRef};
use crate::tree::AppNode;

/// The longest wait kubesync accepts (a typo such as `--timeout 9999999h`
/// must not overflow the clock); the model refuses longer durations.
pub(super) const MAX_WAIT: Duration = crate::model::MAX_DURATION;

pub(super) fn base_report(node: &AppNode, outcome: AppOutcome) -> AppReport {
    AppReport {
        name: node.app.name.clone(),
        tier: node.app.tier,
        namespace: node.app.destination.namespace.clone(),
        revision: node.revision_label(),
        outcome,
        sync: SyncStatus::OutOfSync,
        health: HealthStatus::new(Health::Unknown, ""),
        changes: Vec::new(),
        duration: Duration::ZERO,
    }
}

pub(super) fn blocked_report(node: &AppNode, by: Vec<AppName>) -> AppReport {
    base_report(node, AppOutcome::Blocked { by })
}

/// Syncs one app: never panics, always returns a report.
/// Also returns the status write a successful sync leaves to the caller
/// (see [`AppSync::run`]).
pub(super) async fn sync_app(
    node: &AppNode,
    live: &LiveCache,
    opts: &SyncOptions,
    shared: &Shared,
) -> (AppReport, Option<StatusWrite>) {
    let start = Instant::now();
    let span = tracing::info_span!("sync", app = %node.app.name);
    let ignore = match ignore_set(node, opts) {
        Ok(i) => i,
        Err(message) => {
            let failure = SyncFailure::IgnoreRules { message };
            let mut report = base_report(node, AppOutcome::Failed { failure });
            report.duration = start.elapsed();
            return (report, None);
        }
    };
    let sync = AppSync {
        node,
        client: live.client(),
        live,
        opts,
        shared,
        ignore: &ignore,
        converged_seen: ConvergedMemo::default(),
    };
    let mut attempt = 0;
    let (mut report, write) = loop {
        let (report, write) = sync.run().instrument(span.clone()).await;
        attempt += 1;
        match sync.retry_after(&report, attempt, start) {
            Some(wait) => {
                tracing::info!(app = %node.app.name, attempt, ?wait, "sync failed; retrying (syncPolicy.retry)");
                tokio::time::sleep(wait).await;
            }
            None => {
                if attempt > 1 {
                    tracing::info!(app = %node.app.name, retries = attempt - 1, "retried");
                }
                break (report, write);
            }
        }
    };
    if let (AppOutcome::Failed { failure }, true) = (&mut report.outcome, attempt > 1) {
        let last = Box::new(failure.clone());
        *failure = SyncFailure::Retried {
            retries: attempt - 1,
            last,
        };
    }
    report.duration = start.elapsed();
    (report, write)
}

/// The `ignoreDifferences` rules `node` honours: its own and the run's
/// global ones.
/// Their jq expressions are tried on the app's rendered objects first,
/// under the jq time limit: one that overruns fails the app, naming it.
pub(super) fn ignore_set(node: &AppNode, opts: &SyncOptions) -> Result<IgnoreSet, String> {
    let set = IgnoreSet::new(
        node.app
            .ignore_differences
            .iter()
            .chain(&opts.ignore_differences),
    )
    .map_err(|e| format!("ignoreDifferences: {e}"))?;
    set.check_jq_limits(
        node.objects()
            .filter_map(|m| m.object_ref().ok().map(|r| (r, &m.object))),
    )
    .map_err(|e| format!("ignoreDifferences: {e}"))?;
    Ok(set)
}

/// The Application status write that ends a sync which applied: the
/// engine does it off the critical path (dependents start first).
pub(super) struct StatusWrite {
    pub(super) inventory: Vec<InventoryEntry>,
    pub(super) previous: Option<Value>,
}

/// What one app's sync works from.
pub(super) struct Plan {
    /// The app's Application object as the previous sync left it.
    pub(super) previous: Option<Value>,
    /// The app's ordinary objects (applied, in the inventory).
    pub(super) desired: Vec<DesiredObject>,
    /// Its resource hooks (run, never in the inventory).
    pub(super) hooks: Vec<DesiredObject>,
    /// Objects it renders and never applies (`Skip`, Helm test hooks).
    pub(super) excluded: Vec<DesiredObject>,
    /// The previous sync's inventory.
    pub(super) inventory: Vec<InventoryEntry>,
    pub(super) prune: bool,
}

/// What the app owns after this sync: every desired object (those turned
/// off in git marked so), and the leftovers it kept.
pub(super) fn inventory(
    desired: &[DesiredObject],
    kept: Vec<InventoryEntry>,
) -> Vec<InventoryEntry> {
    let mut out: Vec<InventoryEntry> = desired
        .iter()
        .map(|d| InventoryEntry::new(d.object_ref.clone(), d.mode == SyncMode::Off))
        .collect();
    out.extend(kept);
    out
}

/// Synced when every change left its object as git wants it.
pub(super) fn sync_status(changes: &[Change]) -> SyncStatus {
    if changes.iter().all(|c| c.in_sync) {
        SyncStatus::Synced
    } else {
        SyncStatus::OutOfSync
    }
}

/// One app's sync in progress: the app, the cluster (written through
/// `client`, read through the run's `live` cache), the run's options and
/// what the whole tree wants. Its steps live here, in `apply` and in `prune`.
pub(super) struct AppSync<'a> {
    pub(super) node: &'a AppNode,
    pub(super) client: &'a ClusterClient,
    pub(super) live: &'a LiveCache,
    pub(super) opts: &'a SyncOptions,
    pub(super) shared: &'a Shared,
    /// What comparisons leave out (the app's and the global `ignoreDifferences`).
    pub(super) ignore: &'a IgnoreSet,
    /// Answers of [`AppSync::converged`] by object and live resourceVersion:
    /// the check before hooks and the apply ask it once per object.
    pub(super) converged_seen: ConvergedMemo,
}

/// Remembered answers of "does this live object already hold what git
/// declares", keyed by the object and the live resourceVersion judged (a
/// newer live object is judged again).
pub(super) type ConvergedMemo = parking_lot::Mutex<HashMap<(ObjectRef, String), bool>>;

impl AppSync<'_> {
    /// How long to wait before trying a failed sync again (Argo CD's
    /// `syncPolicy.retry`), or `None`: it did not fail, it cannot succeed
    /// by trying again (a configuration error, a dry run), or the retries
    /// are spent. An unlimited retry (a negative limit) stops at the app's
    /// wait timeout.
    fn retry_after(&self, report: &AppReport, attempt: u32, start: Instant) -> Option<Duration> {
        let retry = self.node.app.sync_policy.retry?;
        // Only a failure that may pass: not a render failure (the tree is
        // rendered once per run) nor the app's own configuration.
        let may_pass = match report.outcome.failure() {
            Some(SyncFailure::Render { .. }) | None => false,
            Some(f) => !f.is_configuration(),
        };
        if !may_pass || self.opts.dry_run {
            return None;
        }
        let wait = retry.backoff(attempt)?;
        let unlimited_over = retry.limit < 0 && start.elapsed() + wait > self.timeout();
        (!unlimited_over).then_some(wait)
    }

    /// The steps, in order; a step that cannot go on ends the sync with the
    /// app Failed and its inventory unchanged. Once the app applied, its
    /// status write is returned for the caller to make (none in a dry run
    /// or without status).
    pub(super) async fn run(&self) -> (AppReport, Option<StatusWrite>) {
        let mut report = base_report(self.node, AppOutcome::Succeeded);
        if let Some(f) = self.node.failure() {
            report.outcome = AppOutcome::Failed {
                failure: SyncFailure::Render {
                    kind: f.kind,
                    message: f.message.clone(),
                },
            };
            if self.opts.write_status && !self.opts.dry_run {
                write_status(self.live, self.node, &report).await;
            }
            return (report, None);
        }
        let plan = match self.plan().await {
            Ok(p) => p,
            Err((failure, previous)) => {
                return (self.fail(report, failure, previous.as_ref()).await, None)
            }
        };
        if let Err(failure) = self.ensure_destination().await {
            return (
                self.fail(report, failure, plan.previous.as_ref()).await,
                None,
            );
        }
        let leftover_refs: Vec<ObjectRef> = plan
            .inventory
            .iter()
            .map(|e| e.object.clone())
            .chain(plan.hooks.iter().map(|h| h.object_ref.clone()))
            .collect();
        let namespaces = self.namespace_modes(&plan.desired, &leftover_refs).await;
        report.changes.extend(plan.excluded.iter().map(|d| {
            let why = match &d.role {
                Role::Excluded(e) => e.clone(),
                _ => Excluded::SkipAnnotation,
            };
            Change::skipped(&d.object_ref, false, SkipReason::Excluded(why))
        }));
        let hooks_run = self.hooks_run(&plan, &namespaces).await;
        let sync_hooks = match hooks_run {
            Ok(()) => {
                let pre = hooks::of_phase(&plan.hooks, HookPhase::PreSync);
                self.run_hooks(&pre, HookPhase::PreSync, true, &mut report)
                    .await;
                hooks::of_phase(&plan.hooks, HookPhase::Sync)
            }
            Err(why) => {
                for phase in [
                    HookPhase::PreSync,
                    HookPhase::Sync,
                    HookPhase::PostSync,
                    HookPhase::SyncFail,
                ] {
                    let of = hooks::of_phase(&plan.hooks, phase);
                    report.changes.extend(hooks::not_run(&of, phase, why));
                }
                Vec::new()
            }
        };
        self.apply_groups(&plan.desired, &sync_hooks, &namespaces, &mut report)
            .await;
        let kept = self.prune_leftovers(&plan, &namespaces, &mut report).await;
        let inventory = inventory(&plan.desired, kept);
        report.sync = sync_status(&report.changes);
        self.settle_health(&plan.desired, &mut report).await;
        if hooks_run.is_ok() {
            self.finish_hooks(&plan.hooks, &mut report).await;
        }
        let write = (self.opts.write_status && !self.opts.dry_run).then(|| StatusWrite {
            inventory,
            previous: plan.previous,
        });
        (report, write)
    }

    /// What this sync works from: the previous Application object and its
    /// inventory, the prepared desired objects, whether to prune. Refuses a
    /// render of nothing that would prune everything the app applied.
    pub(super) async fn plan(&self) -> Result<Plan, (SyncFailure, Option<Value>)> {
        let app = &self.node.app;
        let (previous, desired) = self.prepared().await?;
        let (hooks, rest): (Vec<_>, Vec<_>) = desired
            .into_iter()
            .partition(|d| matches!(d.role, Role::Hook(_)));
        let (excluded, desired): (Vec<_>, Vec<_>) = rest
            .into_iter()
            .partition(|d| matches!(d.role, Role::Excluded(_)));
        let inventory = previous
            .as_ref()
            .map(status::inventory_of)
            .unwrap_or_default();
        let prune = self.opts.prune.unwrap_or_else(|| app.sync_policy.prune());
        // Objects a render of nothing would prune (not those handed over).
        let applied_before = inventory
            .iter()
            .filter(|e| !e.sync_off && self.shared.wanted_by_other(&e.object, &app.name).is_none())
            .count();
        if desired.is_empty() && prune && applied_before > 0 && !app.sync_policy.allow_empty() {
            return Err((SyncFailure::EmptyRender { applied_before }, previous));
        }
        Ok(Plan {
            previous,
            desired,
            hooks,
            excluded,
            inventory,
            prune,
        })
    }

    /// Whether this sync runs the app's hooks: not in a dry run, and only
    /// when it has something to apply or prune (a converged re-sync makes
    /// no write; Argo CD, which syncs on request, runs them every time) or
    /// the run asks for them (`--run-hooks`).
    async fn hooks_run(
        &self,
        plan: &Plan,
        namespaces: &HashMap<String, Option<crate::sync::prepare::SyncMode>>,
    ) -> Result<(), HookNotRun> {
        if plan.hooks.is_empty() {
            return Ok(());
        }
        if self.opts.dry_run {
            return Err(HookNotRun::DryRun);
        }
        if self.opts.run_hooks || self.has_work(plan, namespaces).await {
            Ok(())
        } else {
            Err(HookNotRun::NothingToSync)
        }
    }

    /// After the objects: PostSync hooks once the app is Healthy; SyncFail
    /// hooks when the sync failed (a PostSync failure included) or the app
    /// never got Healthy. A PostSync failure fails the app.
    async fn finish_hooks(&self, all: &[DesiredObject], report: &mut AppReport) {
        let post = hooks::of_phase(all, HookPhase::PostSync);
        let fail = hooks::of_phase(all, HookPhase::SyncFail);
        match report.outcome {
            AppOutcome::Succeeded => {
                self.run_hooks(&post, HookPhase::PostSync, true, report)
                    .await;
                if let Some(failure) = report
                    .changes
                    .iter()
                    .filter(|c| c.hook == Some(HookPhase::PostSync))
                    .find_map(Change::sync_failure)
                {
                    report.outcome = AppOutcome::Failed { failure };
                }
            }
            AppOutcome::TimedOut { .. } => report.changes.extend(hooks::not_run(
                &post,
                HookPhase::PostSync,
                HookNotRun::NotHealthy,
            )),
            _ => report.changes.extend(hooks::not_run(
                &post,
                HookPhase::PostSync,
                HookNotRun::SyncFailed,
            )),
        }
        if report.outcome.is_success() {
            let ok = HookNotRun::SyncSucceeded;
            report
                .changes
                .extend(hooks::not_run(&fail, HookPhase::SyncFail, ok));
        } else {
            self.run_hooks(&fail, HookPhase::SyncFail, false, report)
                .await;
        }
    }

    /// The outcome and health: after a failure, the health of everything
    /// the app meant to write; after a dry run, what is there; else waits
    /// (up to the app's timeout) for what was written to be ready.
    pub(super) async fn settle_health(&self, desired: &[DesiredObject], report: &mut AppReport) {
        if report.changes.iter().any(Change::halts) {
            let failure = report
                .changes
                .iter()
                .find_map(Change::sync_failure)
                .unwrap_or_else(|| SyncFailure::WaveNotHealthy {
                    message: report.health.message.clone(),
                });
            report.outcome = AppOutcome::Failed { failure };
            // Every object the app meant to write, the failed ones included
            // (absent ones are Missing): a failed app is never Healthy
            // because its few written objects are, nor for having none.
            let meant: Vec<&DesiredObject> =
                desired.iter().filter(|d| d.mode == SyncMode::On).collect();
            report.health = if meant.is_empty() {
                HealthStatus::new(Health::Unknown, "not assessed: the sync failed")
            } else {
                self.current_health(&meant).await
            };
            return;
        }
        let watched: Vec<&DesiredObject> = desired
            .iter()
            .filter(|d| {
                let holds = |c: &Change| c.object == d.object_ref && c.holds_desired();
                report.changes.iter().any(holds)
            })
            .collect();
        if self.opts.dry_run {
            report.outcome = AppOutcome::DryRun;
            report.health = self.current_health(&watched).await;
            return;
        }
        report.health = self.wait_healthy(&watched, self.deadline()).await;
        if !report.health.health.is_ready() {
            let after_secs = self.timeout().as_secs();
            report.outcome = AppOutcome::TimedOut { after_secs };
        }
    }

    /// Records the sync in the app's Application object (not in a dry run).
    pub(super) async fn write_back(
        &self,
        report: &AppReport,
        inventory: &[InventoryEntry],
        previous: Option<&Value>,
    ) {
        if self.opts.write_status && !self.opts.dry_run {
            write_status_with(self.client, self.node, report, inventory, previous).await;
        }
    }

    /// The app's previous Application object and its prepared desired
    /// objects; on error, the message and the previous object.
    #[allow(clippy::type_complexity)]
    pub(super) async fn prepared(
        &self,
    ) -> Result<(Option<Value>, Vec<DesiredObject>), (SyncFailure, Option<Value>)> {
        let previous = self.previous().await.map_err(|m| (m, None))?;
        match self.desired().await {
            Ok(desired) => Ok((previous, desired)),
            Err(message) => Err((message, previous)),
        }
    }

    /// The app's Application object as the last sync left it (its status
    /// holds the inventory prune works from).
    pub(super) async fn previous(&self) -> Result<Option<Value>, SyncFailure> {
        if !self.opts.write_status {
            return Ok(None);
        }
        let name = &self.node.app.name;
        let app_ref = status::application_ref(name.as_str());
        let read = if self.shared.few_apps {
            // Read by itself, not by listing every Application (see
            // `Shared::few_apps`): kubesync's own (labelled) only, without
            // managedFields, as the cache keeps it.
            self.live.client().get(&app_ref).await.map(|found| {
                let mut found = found.filter(|o| {
                    o.pointer("/metadata/labels")
                        .and_then(|l| l.get(status::APPLICATION_SELECTOR))
                        .is_some()
                })?;
                if let Some(m) = found.get_mut("metadata").and_then(Value::as_object_mut) {
                    m.remove("managedFields");
                }
                Some(found)
            })
        } else {
            self.live.get(&app_ref, status::APPLICATION_SELECTOR).await
        };
        match read {
            Ok(p) => Ok(p),
            // No Application CRD yet (a dry run on a fresh cluster): no history.
            Err(ClusterError::UnknownKind { .. }) => Ok(None),
            Err(e) => Err(SyncFailure::Inventory {
                app: name.clone(),
                error: e.into(),
            }),
        }
    }

    /// Every object the app renders, prepared (guardrails checked, apply
    /// order) before anything is written; any refusal refuses the app.
    pub(super) async fn desired(&self) -> Result<Vec<DesiredObject>, SyncFailure> {
        let app = &self.node.app;
        let manifests: Vec<&Manifest> = self.node.objects().collect();
        let namespace = app.destination.namespace.as_deref().unwrap_or("default");
        let scopes = self.scopes(&manifests).await?;
        let ctx = PrepareContext {
            app: &app.name,
            tier: app.tier,
            namespace,
            system_namespaces: &self.shared.namespaces,
            project: self.node.project.as_deref(),
            object_defaults: app.sync_policy.options().objects,
        };
        let prepared = prepare(&ctx, &manifests, |r| {
            scopes
                .get(&(r.group.clone(), r.kind.clone()))
                .cloned()
                .unwrap_or_else(|| Err(format!("no scope known for {}", r.kind_group())))
        });
        let refusal = match prepared {
            Ok(d) => match self.claimed_by_others(&d) {
                None => match self.shared_with_others(&d).await {
                    None => return Ok(d),
                    Some(message) => message,
                },
                Some(message) => message,
            },
            Err(refusals) => {
                let texts: Vec<String> = refusals.iter().map(|r| r.to_string()).collect();
                texts.join("; ")
            }
        };
        Err(SyncFailure::Refused { message: refusal })
    }

    /// Objects another app of the tree renders too: two apps owning one
    /// object would rewrite it in turn on every run, so neither writes it
    /// until one of them gives it up.
    pub(super) fn claimed_by_others(&self, desired: &[DesiredObject]) -> Option<String> {
        let me = &self.node.app.name;
        let claims: Vec<String> = desired
            .iter()
            .filter(|d| d.role == Role::Object)
            .filter_map(|d| {
                let other = self.shared.wanted_by_other(&d.object_ref, me)?;
                Some(format!(
                    "{} ({}): also rendered by application \"{other}\"; an object belongs to one application (remove it from one of them)",
                    d.object_ref, d.origin
                ))
            })
            .collect();
        (!claims.is_empty()).then(|| claims.join("; "))
    }

    /// `FailOnSharedResource=true`: objects another application applied
    /// (their live label names another app), which this app would
    /// otherwise take over. Without the option: none.
    pub(super) async fn shared_with_others(&self, desired: &[DesiredObject]) -> Option<String> {
        if !self.node.app.sync_policy.options().fail_on_shared_resource {
            return None;
        }
        let me = &self.node.app.name;
        let mut shared = Vec::new();
        for d in desired.iter().filter(|d| d.role == Role::Object) {
            let Ok(Some(live)) = self.read(&d.object_ref).await else {
                continue;
            };
            let owner = live
                .pointer("/metadata/labels")
                .and_then(|l| l.get(crate::model::APP_LABEL))
                .and_then(Value::as_str);
            if let Some(other) = owner.filter(|o| *o != me.as_str()) {
                shared.push(format!(
                    "{} ({}): already applied by application \"{other}\" (FailOnSharedResource=true)",
                    d.object_ref, d.origin
                ));
            }
        }
        (!shared.is_empty()).then(|| shared.join("; "))
    }

    /// Per object, what a sync would change: server-side dry-run apply
    /// compared with the live object, plus inventory leftovers. Live
    /// objects are read through the run's cache (one LIST per kind and
    /// namespace, warmed by [`super::engine::diff_ignoring`]); an object
    /// that carries the desired hash and holds git's fields as written is
    /// Same without a dry run (the engine's own skip rule), so a converged
    /// app costs no request per object.
    pub(super) async fn diff(&self) -> Result<Vec<ObjectDiff>, String> {
        let (previous, desired) = self.prepared().await.map_err(|(f, _)| f.to_string())?;
        let mut out = Vec::new();
        for d in &desired {
            if d.mode == SyncMode::Off || d.role != Role::Object {
                continue;
            }
            let live = self.read(&d.object_ref).await.map_err(|e| e.to_string())?;
            if live
                .as_ref()
                .map(|l| super::prepare::sync_mode(l) == SyncMode::Off)
                .unwrap_or(false)
            {
                continue;
            }
            let predicted = match &live {
                // A create cannot be dry-run before its namespace exists; the
                // desired object is the prediction.
                None => Some(d.object.clone()),
                Some(l) => {
                    // A pin image sync wrote is kept (see `apply_one`).
                    let d = super::apply::with_pins(d, Some(l));
                    let hash = super::prune::annotation(l, super::prepare::DESIRED_HASH_ANNOTATION);
                    if hash == Some(d.hash.as_str()) && self.holds_as_written(&d, l) {
                        out.push(ObjectDiff {
                            object: d.object_ref.clone(),
                            kind: crate::diff::ObjectDiffKind::Same,
                            diff: String::new(),
                        });
                        continue;
                    }
                    Some(
                        self.client
                            .apply(&self.to_apply(&d, Some(l)), true)
                            .await
                            .map_err(|e| e.to_string())?,
                    )
                }
            };
            out.push(crate::diff::compare_ignoring(
                d.object_ref.clone(),
                predicted.as_ref(),
                live.as_ref(),
                self.ignore,
            ));
        }
        let inventory = previous
            .as_ref()
            .map(status::inventory_of)
            .unwrap_or_default();
        for old in inventory {
            // Objects turned off in git are never pruned: no difference to show.
            if old.sync_off
                || desired
                    .iter()
                    .any(|d| d.role == Role::Object && d.object_ref.same_object(&old.object))
            {
                continue;
            }
            if let Ok(Some(live)) = self.read(&old.object).await {
                out.push(crate::diff::compare(old.object.clone(), None, Some(&live)));
            }
        }
        Ok(out)
    }

    pub(super) fn timeout(&self) -> Duration {
        self.opts
            .timeout
            .unwrap_or(self.node.app.sync_policy.wait_timeout)
            .min(MAX_WAIT)
    }

    pub(super) fn deadline(&self) -> Instant {
        let now = Instant::now();
        now.checked_add(self.timeout()).unwrap_or(now)
    }

    /// How this app waits for objects it deleted: polled at the run's
    /// `poll_interval`, up to its wait timeout from now.
    pub(super) fn pace(&self) -> super::gone::Pace {
        super::gone::Pace {
            poll: self.opts.poll_interval,
            deadline: self.deadline(),
        }
    }

    /// Ends a sync that wrote nothing: the app failed with `message`, and
    /// keeps the inventory `previous` recorded.
    pub(super) async fn fail(
        &self,
        mut report: AppReport,
        failure: SyncFailure,
        previous: Option<&Value>,
    ) -> AppReport {
        report.outcome = AppOutcome::Failed { failure };
        let inventory = previous.map(status::inventory_of).unwrap_or_default();
        self.write_back(&report, &inventory, previous).await;
        report
    }

    /// Scope of every (group, kind) the app renders: from discovery, or from
    /// a CRD the same app renders (its custom resources apply in one pass).
    pub(super) async fn scopes(
        &self,
        manifests: &[&Manifest],
    ) -> Result<HashMap<(String, String), Result<bool, String>>, SyncFailure> {
        // CRDs of this app are applied first; CRDs of apps this one depends
        // on are applied before it starts (and in a dry run, never).
        let own = crd_scopes(manifests.iter().copied());
        let crd_scopes = |key: &(String, String)| {
            own.get(key)
                .or_else(|| self.shared.crd_scopes.get(key))
                .copied()
        };
        let defaults = self.node.app.sync_policy.options().objects;
        let skips_missing = |key: &(String, String)| {
            manifests.iter().any(|m| {
                m.object_ref_or_generated()
                    .is_ok_and(|r| r.group == key.0 && r.kind == key.1)
                    && crate::model::object_options::object_options_over(&m.object, defaults)
                        .is_ok_and(|o| o.skip_dry_run_on_missing)
            })
        };
        let mut out = HashMap::new();
        for m in manifests {
            let Ok(r) = m.object_ref_or_generated() else {
                continue;
            };
            let key = (r.group.clone(), r.kind.clone());
            if out.contains_key(&key) {
                continue;
            }
            let scope = match self.client.resolve(&r).await {
                Ok(res) => Ok(res.namespaced),
                Err(ClusterError::UnknownKind { .. }) if crd_scopes(&key).is_some() => Ok(crd_scopes(&key).unwrap_or(true)),
                // SkipDryRunOnMissingResource=true: its CRD is expected to be
                // served by the time its wave applies (installed by an
                // earlier wave's operator); taken as namespaced until then.
                Err(ClusterError::UnknownKind { .. }) if skips_missing(&key) => Ok(true),
                Err(ClusterError::UnknownKind { kind, api_version, .. }) => Err(format!(
                    "the cluster does not serve kind {kind} in {api_version} (is its CRD installed by an app this one depends on?)"
                )),
                Err(e) => {
                    return Err(SyncFailure::Discovery {
                        kind: r.kind_group(),
                        error: e.into(),
                    })
                }
            };
            out.insert(key, scope);
        }
        Ok(out)
    }

    /// The live object `r` as this run sees it (see [`LiveCache::get`]).
    pub(super) async fn read(&self, r: &ObjectRef) -> Result<Option<Value>, ClusterError> {
        self.live.get(r, selector_for(r)).await
    }

    pub(super) async fn current_health(&self, objects: &[&DesiredObject]) -> HealthStatus {
        let mut statuses = Vec::with_capacity(objects.len());
        for d in objects {
            statuses.push(self.object_health(&d.object_ref).await);
        }
        health::aggregate(statuses.iter())
    }

    /// One object's health as this run sees it (Missing when absent).
    async fn object_health(&self, r: &ObjectRef) -> HealthStatus {
        let assessed = self.live.inspect(r, selector_for(r), |live| match live {
            Some(live) => named(r, health::assess(live)),
            None => named(r, health::missing()),
        });
        match assessed.await {
            Ok(h) => h,
            Err(e) => HealthStatus::new(Health::Unknown, format!("{r}: {e}")),
        }
    }

    /// Waits until every object has been ready or the deadline passes:
    /// woken by the watch events of the kinds still waited on (an object
    /// once ready is not read again), re-reading those objects from the
    /// server every `watch_fallback` in case a watch missed a change;
    /// objects whose kind is not watched are polled every `poll_interval`.
    pub(super) async fn wait_healthy(
        &self,
        objects: &[&DesiredObject],
        deadline: Instant,
    ) -> HealthStatus {
        let mut latest: Vec<Option<HealthStatus>> = vec![None; objects.len()];
        let mut pending: Vec<usize> = (0..objects.len()).collect();
        let mut reread_at = Instant::now() + self.opts.watch_fallback;
        loop {
            let refs = || pending.iter().map(|&i| &objects[i].object_ref);
            // Subscribed before reading, so no change after the read is missed.
            let mut changes = self.live.subscribe(refs());
            for &i in &pending {
                latest[i] = Some(self.object_health(&objects[i].object_ref).await);
            }
            pending.retain(|&i| !latest[i].as_ref().is_some_and(|h| h.health.is_ready()));
            if pending.is_empty() || Instant::now() >= deadline {
                return health::aggregate(latest.iter().flatten());
            }
            let refs = || pending.iter().map(|&i| &objects[i].object_ref);
            if !changes.is_watched() && self.live.subscribe(refs()).is_watched() {
                continue; // the reads above started the watches
            }
            let watched = changes.is_watched();
            let wake = if watched {
                reread_at
            } else {
                Instant::now() + self.opts.poll_interval
            };
            tokio::select! {
                _ = changes.changed() => {}
                _ = tokio::time::sleep_until(wake.min(deadline).into()) => {
                    if watched && Instant::now() >= reread_at {
                        for r in refs() {
                            let _ = self.live.refresh(r).await;
                        }
                        reread_at = Instant::now() + self.opts.watch_fallback;
                    }
                }
            }
        }
    }
}

/// Which objects of `r`'s kind a run lists and watches: those kubesync
/// wrote (every applied object carries `kubesync.dev/app`; kubesync's own
/// Application objects carry their tier) — an object outside the selection
/// costs a GET — except Namespaces, which are few and all listed, so that a
/// missing namespace (and everything in it) costs no read.
pub(super) fn selector_for(r: &ObjectRef) -> &'static str {
    if r.group == status::KUBESYNC_GROUP {
        status::APPLICATION_SELECTOR
    } else if r.group.is_empty() && r.kind == "Namespace" {
        ""
    } else {
        crate::model::APP_LABEL
    }
}

/// Prefixes a non-empty health message with the object it is about.
fn named(r: &ObjectRef, h: HealthStatus) -> HealthStatus {
    if h.message.is_empty() || h.health == Health::Healthy {
        h
    } else {
        HealthStatus::new(h.health, format!("{r}: {}", h.message))
    }
}

pub(super) fn namespace_ref(name: &str) -> ObjectRef {
    ObjectRef {
        group: String::new(),
        version: "v1".into(),
        kind: "Namespace".into(),
        namespace: None,
        name: name.into(),
    }
}
