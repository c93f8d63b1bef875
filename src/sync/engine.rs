//! The engine: ordered, parallel, readiness-gated sync of the app graph.
//!
//! Apps whose prerequisites are all done and ready start, up to `parallel`
//! at once; a failed, timed-out or blocked app blocks everything that waits
//! for it (reported Blocked, never attempted) while independent branches
//! carry on. Inside an app: prepare (guardrails before any write), ensure the
//! namespace, apply wave by wave and phase by phase (CRDs are waited for
//! until Established), prune the previous inventory's leftovers (never after
//! a failure), wait for health, write the status back.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};
use serde_json::Value;
use tracing::Instrument;

use super::change::{Action, Change, ChangeError, Note, SkipReason};
use super::prepare::{
    is_subset, prepare, DesiredObject, PrepareContext, SyncMode, SystemNamespaces,
    BUILTIN_SYSTEM_NAMESPACES, DESIRED_HASH_ANNOTATION,
};
use super::report::{AppOutcome, AppReport, SyncReport};
use super::schedule::Schedule;
use super::status::{self, ApplicationStatus, InventoryEntry};
use crate::cluster::{ClusterClient, ClusterError, Propagation};
use crate::diff::{ObjectDiff, SyncStatus};
use crate::graph::AppGraph;
use crate::health::{self, Health, HealthStatus};
use crate::model::{is_application, AppName, Manifest, ObjectRef, Tier, APP_LABEL};
use crate::tree::{AppNode, AppTree};

/// How a sync runs.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// Apps syncing at once.
    pub parallel: usize,
    /// Server-side dry run: report what would change, write nothing.
    pub dry_run: bool,
    /// Prune leftovers regardless of the apps' policies (`Some(true)`), never
    /// (`Some(false)`), or as each app's `syncPolicy.automated.prune` says.
    pub prune: Option<bool>,
    /// Overrides every app's wait timeout.
    pub timeout: Option<Duration>,
    /// Only these apps (`None`: all). Prerequisites outside the set are not gated on.
    pub only: Option<BTreeSet<AppName>>,
    /// Write Application objects and their status.
    pub write_status: bool,
    /// How often health is polled while waiting.
    pub poll_interval: Duration,
    /// Objects applied at once within one phase of one app.
    pub apply_concurrency: usize,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            parallel: 4,
            dry_run: false,
            prune: None,
            timeout: None,
            only: None,
            write_status: true,
            poll_interval: Duration::from_millis(200),
            apply_concurrency: 8,
        }
    }
}

/// Receives progress as apps start and finish (the CLI's display).
pub trait Progress: Send + Sync {
    fn started(&self, _app: &AppName) {}
    fn finished(&self, _report: &AppReport) {}
}

/// A [`Progress`] that shows nothing.
pub struct Quiet;
impl Progress for Quiet {}

/// Syncs the tree in dependency order and returns the change set.
pub async fn run(
    tree: &AppTree,
    graph: &AppGraph,
    client: &ClusterClient,
    opts: &SyncOptions,
    progress: &dyn Progress,
) -> SyncReport {
    let start = Instant::now();
    let selected: Vec<&AppNode> = tree
        .depth_first()
        .into_iter()
        .filter(|n| opts.only.as_ref().is_none_or(|o| o.contains(&n.app.name)))
        .collect();
    let names: Vec<AppName> = selected.iter().map(|n| n.app.name.clone()).collect();
    if opts.write_status && !opts.dry_run {
        if let Err(e) = ensure_status_crd(client).await {
            tracing::warn!("cannot install the Application CRD, status will not be written: {e}");
        }
    }
    let run = Run {
        nodes: selected.iter().map(|n| (n.app.name.clone(), *n)).collect(),
        client,
        opts,
        progress,
        shared: Shared::new(tree),
    };
    let mut reports = run.drive(Schedule::new(graph, &names)).await;
    let apps = names.iter().filter_map(|n| reports.remove(n)).collect();
    let orphaned = if opts.only.is_none() && opts.write_status {
        orphaned_apps(tree, client).await
    } else {
        Vec::new()
    };
    SyncReport {
        apps,
        orphaned,
        duration: start.elapsed(),
    }
}

/// One sync run: the selected apps and what every app's sync shares.
struct Run<'a> {
    nodes: HashMap<AppName, &'a AppNode>,
    client: &'a ClusterClient,
    opts: &'a SyncOptions,
    progress: &'a dyn Progress,
    shared: Shared,
}

impl Run<'_> {
    /// Starts every app the schedule offers (up to `parallel` at once),
    /// records each as it finishes, and reports the apps it blocks.
    async fn drive(&self, mut schedule: Schedule) -> HashMap<AppName, AppReport> {
        let mut reports = HashMap::new();
        let mut running = FuturesUnordered::new();
        loop {
            let free = self.opts.parallel.max(1).saturating_sub(schedule.running());
            for name in schedule.ready().into_iter().take(free) {
                schedule.start(&name);
                let node = self.nodes[&name];
                self.progress.started(&name);
                running.push(async move {
                    (
                        node,
                        sync_app(node, self.client, self.opts, &self.shared).await,
                    )
                });
            }
            let Some((node, report)) = running.next().await else {
                break;
            };
            let ok = report.outcome.is_success()
                && (self.opts.dry_run || report.health.health.is_ready());
            self.progress.finished(&report);
            reports.insert(node.app.name.clone(), report);
            for (name, by) in schedule.finish(&node.app.name, ok) {
                let report = self.blocked(self.nodes[&name], by).await;
                reports.insert(name, report);
            }
        }
        // Anything still pending could never start (only possible with a
        // cycle, which the graph rejects); report it rather than lose it.
        for name in schedule.stuck() {
            reports.insert(name.clone(), blocked_report(self.nodes[&name], Vec::new()));
        }
        reports
    }

    /// Reports (and records in the cluster) an app that will never start.
    async fn blocked(&self, node: &AppNode, by: Vec<AppName>) -> AppReport {
        let report = blocked_report(node, by);
        self.progress.finished(&report);
        if self.opts.write_status && !self.opts.dry_run {
            write_status(self.client, node, &report).await;
        }
        report
    }
}

/// Every kubesync Application object in the cluster (in [`status::STATUS_NAMESPACE`]).
pub async fn list_applications(client: &ClusterClient) -> Result<Vec<Value>, ClusterError> {
    let gvk = crate::cluster::GroupVersionKind::gvk("kubesync.dev", "v1alpha1", "Application");
    client.list(&gvk, Some(status::STATUS_NAMESPACE), "").await
}

/// Application objects in the cluster whose app is no longer in the tree
/// (removed from git). They and their objects are kept — deleting an app's
/// objects because its manifest disappeared is a decision for a person — and
/// reported so that nothing is left unseen.
async fn orphaned_apps(tree: &AppTree, client: &ClusterClient) -> Vec<AppName> {
    let Ok(list) = list_applications(client).await else {
        return Vec::new();
    };
    let mut out: Vec<AppName> = list
        .iter()
        .filter_map(|a| a.pointer("/metadata/name").and_then(Value::as_str))
        .filter_map(|n| AppName::new(n).ok())
        .filter(|n| tree.get(n).is_none())
        .collect();
    out.sort();
    out
}

/// Namespaces owned by the system tier: reserved (the built-ins, kubesync's
/// own, system apps' destinations) and declared (Namespace objects system
/// apps render).
pub fn system_namespaces(tree: &AppTree) -> SystemNamespaces {
    let mut out = SystemNamespaces::default();
    out.reserved
        .extend(BUILTIN_SYSTEM_NAMESPACES.iter().map(|s| s.to_string()));
    out.reserved.insert(status::STATUS_NAMESPACE.to_string());
    for n in tree.nodes().iter().filter(|n| n.app.tier == Tier::System) {
        if let Some(ns) = &n.app.destination.namespace {
            out.reserved.insert(ns.clone());
        }
        for m in n.objects() {
            if m.kind() == "Namespace" && m.api_version() == "v1" {
                if let Ok(r) = m.object_ref() {
                    out.declared.insert(r.name);
                }
            }
        }
    }
    out
}

/// What the whole tree wants, shared by every app's sync: the system
/// namespaces, and which app renders each object (so that an object moved
/// from one app to another is handed over, never pruned).
pub(crate) struct Shared {
    namespaces: SystemNamespaces,
    /// Scope of every custom kind a CRD in the tree defines.
    crd_scopes: HashMap<(String, String), bool>,
    /// (group, kind, name) → (namespace as rendered or defaulted, app).
    wanted: WantedBy,
    /// Apps of the tree whose render failed this run: what they want now is
    /// unknown, so no app prunes anything (a leftover may have moved to them).
    unrendered: Vec<AppName>,
}

impl Shared {
    fn new(tree: &AppTree) -> Self {
        let mut wanted: WantedBy = HashMap::new();
        for n in tree.nodes() {
            let default_ns = n
                .app
                .destination
                .namespace
                .clone()
                .unwrap_or_else(|| "default".into());
            for m in n.objects() {
                if let Ok(r) = m.object_ref() {
                    let ns = r.namespace.clone().or_else(|| Some(default_ns.clone()));
                    wanted
                        .entry((r.group, r.kind, r.name))
                        .or_default()
                        .push((ns, n.app.name.clone()));
                }
            }
        }
        Shared {
            namespaces: system_namespaces(tree),
            crd_scopes: crd_scopes(tree.nodes().iter().flat_map(|n| n.objects())),
            wanted,
            unrendered: tree.failed().map(|n| n.app.name.clone()).collect(),
        }
    }

    /// Another app of the tree that renders `r`, if any. `r` has its
    /// namespace resolved (`None`: cluster-scoped, so any namespace matches).
    fn wanted_by_other(&self, r: &ObjectRef, me: &AppName) -> Option<&AppName> {
        self.wanted
            .get(&(r.group.clone(), r.kind.clone(), r.name.clone()))?
            .iter()
            .find(|(ns, app)| app != me && (r.namespace.is_none() || *ns == r.namespace))
            .map(|(_, app)| app)
    }
}

/// (group, kind, name) → every (namespace, app) that renders such an object.
type WantedBy = HashMap<(String, String, String), Vec<(Option<String>, AppName)>>;

/// (group, kind) → namespaced, for every CRD among `manifests`.
fn crd_scopes<'a>(
    manifests: impl Iterator<Item = &'a Manifest>,
) -> HashMap<(String, String), bool> {
    let mut out = HashMap::new();
    for m in manifests.filter(|m| m.kind() == "CustomResourceDefinition") {
        let o = &m.object;
        if let (Some(g), Some(k)) = (
            o.pointer("/spec/group").and_then(Value::as_str),
            o.pointer("/spec/names/kind").and_then(Value::as_str),
        ) {
            let namespaced = o.pointer("/spec/scope").and_then(Value::as_str) != Some("Cluster");
            out.insert((g.to_string(), k.to_string()), namespaced);
        }
    }
    out
}

/// The longest wait kubesync accepts (a typo such as `--timeout 9999999h`
/// must not overflow the clock); the model refuses longer durations.
const MAX_WAIT: Duration = crate::model::MAX_DURATION;

fn base_report(node: &AppNode, outcome: AppOutcome) -> AppReport {
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

fn blocked_report(node: &AppNode, by: Vec<AppName>) -> AppReport {
    base_report(node, AppOutcome::Blocked { by })
}

/// Syncs one app: never panics, always returns a report.
async fn sync_app(
    node: &AppNode,
    client: &ClusterClient,
    opts: &SyncOptions,
    shared: &Shared,
) -> AppReport {
    let start = Instant::now();
    let span = tracing::info_span!("sync", app = %node.app.name);
    let mut report = AppSync {
        node,
        client,
        opts,
        shared,
    }
    .run()
    .instrument(span)
    .await;
    report.duration = start.elapsed();
    report
}

/// What one app's sync works from.
struct Plan {
    /// The app's Application object as the previous sync left it.
    previous: Option<Value>,
    desired: Vec<DesiredObject>,
    /// The previous sync's inventory.
    inventory: Vec<InventoryEntry>,
    prune: bool,
}

/// The desired objects in apply groups: consecutive objects of one sync
/// wave and one phase (they arrive sorted by wave, then phase).
fn groups(desired: &[DesiredObject]) -> Vec<Vec<&DesiredObject>> {
    let mut groups: Vec<Vec<&DesiredObject>> = Vec::new();
    for d in desired {
        match groups.last_mut() {
            Some(g) if g[0].wave == d.wave && g[0].phase == d.phase => g.push(d),
            _ => groups.push(vec![d]),
        }
    }
    groups
}

/// What the app owns after this sync: every desired object (those turned
/// off in git marked so), and the leftovers it kept.
fn inventory(desired: &[DesiredObject], kept: Vec<InventoryEntry>) -> Vec<InventoryEntry> {
    let mut out: Vec<InventoryEntry> = desired
        .iter()
        .map(|d| InventoryEntry::new(d.object_ref.clone(), d.mode == SyncMode::Off))
        .collect();
    out.extend(kept);
    out
}

/// Synced when every change left its object as git wants it.
fn sync_status(changes: &[Change]) -> SyncStatus {
    if changes.iter().all(|c| c.in_sync) {
        SyncStatus::Synced
    } else {
        SyncStatus::OutOfSync
    }
}

struct AppSync<'a> {
    node: &'a AppNode,
    client: &'a ClusterClient,
    opts: &'a SyncOptions,
    shared: &'a Shared,
}

impl AppSync<'_> {
    async fn run(&self) -> AppReport {
        let mut report = base_report(self.node, AppOutcome::Succeeded);
        if let Some(f) = self.node.failure() {
            report.outcome = AppOutcome::Failed {
                message: f.message.clone(),
            };
            if self.opts.write_status && !self.opts.dry_run {
                write_status(self.client, self.node, &report).await;
            }
            return report;
        }
        let plan = match self.plan().await {
            Ok(p) => p,
            Err((message, previous)) => return self.fail(report, message, previous.as_ref()).await,
        };
        if let Err(message) = self.ensure_destination().await {
            return self.fail(report, message, plan.previous.as_ref()).await;
        }
        let leftover_refs: Vec<ObjectRef> =
            plan.inventory.iter().map(|e| e.object.clone()).collect();
        let namespaces = self.namespace_modes(&plan.desired, &leftover_refs).await;
        self.apply_groups(&plan.desired, &namespaces, &mut report)
            .await;
        let kept = self.prune_leftovers(&plan, &namespaces, &mut report).await;
        let inventory = inventory(&plan.desired, kept);
        report.sync = sync_status(&report.changes);
        self.settle_health(&plan.desired, &mut report).await;
        self.write_back(&report, &inventory, plan.previous.as_ref())
            .await;
        report
    }

    /// What this sync works from: the previous Application object and its
    /// inventory, the prepared desired objects, whether to prune. Refuses a
    /// render of nothing that would prune everything the app applied.
    async fn plan(&self) -> Result<Plan, (String, Option<Value>)> {
        let app = &self.node.app;
        let (previous, desired) = self.prepared().await?;
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
            let message = format!(
                "renders no objects; refusing to prune the {applied_before} object(s) it applied before \
                 (set syncPolicy.automated.allowEmpty: true if the app really should be empty)"
            );
            return Err((message, previous));
        }
        Ok(Plan {
            previous,
            desired,
            inventory,
            prune,
        })
    }

    /// Creates the destination namespace when the app asks for it.
    async fn ensure_destination(&self) -> Result<(), String> {
        let app = &self.node.app;
        let (true, Some(namespace)) = (
            app.sync_policy.create_namespace,
            app.destination.namespace.as_ref(),
        ) else {
            return Ok(());
        };
        self.ensure_namespace(namespace, self.opts.dry_run)
            .await
            .map_err(|e| format!("cannot create namespace \"{namespace}\": {e}"))
    }

    /// Applies the desired objects group by group (a group: one phase of
    /// one sync wave). A later wave waits until the earlier ones are ready;
    /// after a failure, or a wave that never gets ready, the rest is skipped.
    async fn apply_groups(
        &self,
        desired: &[DesiredObject],
        namespaces: &HashMap<String, Option<SyncMode>>,
        report: &mut AppReport,
    ) {
        let dry = self.opts.dry_run;
        let mut ready_before: Vec<&DesiredObject> = Vec::new();
        let mut current_wave: Option<i32> = None;
        for group in groups(desired) {
            let skip = |reason: SkipReason| {
                let skipped = group
                    .iter()
                    .map(|d| Change::skipped(&d.object_ref, dry, reason.clone()));
                skipped.collect::<Vec<_>>()
            };
            if report.changes.iter().any(Change::halts) {
                report.changes.extend(skip(SkipReason::AfterFailure));
                continue;
            }
            let wave = group[0].wave;
            if current_wave.is_some_and(|w| w != wave) && !dry {
                let h = self.wait_healthy(&ready_before, self.deadline()).await;
                if !h.health.is_ready() {
                    report.changes.extend(skip(SkipReason::WaveNotHealthy));
                    report.health = h;
                    continue;
                }
            }
            current_wave = Some(wave);
            let results = self.apply_group(&group, namespaces).await;
            ready_before.extend(
                group
                    .iter()
                    .zip(&results)
                    .filter(|(_, c)| c.holds_desired())
                    .map(|(d, _)| *d),
            );
            report.changes.extend(results);
        }
    }

    /// Applies one group concurrently; CRDs are then waited for until
    /// Established, so that anything after them can use their kinds.
    async fn apply_group(
        &self,
        group: &[&DesiredObject],
        namespaces: &HashMap<String, Option<SyncMode>>,
    ) -> Vec<Change> {
        let mut results: Vec<Change> =
            futures::stream::iter(group.iter().map(|d| self.apply_one(d, namespaces)))
                .buffered(self.opts.apply_concurrency.max(1))
                .collect()
                .await;
        let crds = group[0].phase == super::prepare::Phase::Crds;
        if crds && !self.opts.dry_run && !results.iter().any(Change::is_failure) {
            for (d, c) in group.iter().zip(results.iter_mut()) {
                if !c.holds_desired() {
                    continue;
                }
                let wait = self
                    .client
                    .wait_crd_established(&d.object_ref.name, self.timeout());
                if let Err(e) = wait.await {
                    *c = Change::failed(&d.object_ref, false, ChangeError::Cluster(e.to_string()));
                }
            }
            self.client.invalidate_discovery();
        }
        results
    }

    /// Decides every leftover of the previous inventory (see [`Self::leftover`])
    /// and returns those that stay in the inventory.
    async fn prune_leftovers(
        &self,
        plan: &Plan,
        namespaces: &HashMap<String, Option<SyncMode>>,
        report: &mut AppReport,
    ) -> Vec<InventoryEntry> {
        let leftovers = plan.inventory.iter().filter(|old| {
            !plan
                .desired
                .iter()
                .any(|d| d.object_ref.same_object(&old.object))
        });
        let mut kept = Vec::new();
        for old in leftovers {
            // Never prune after a failure (a failed prune included).
            let failed = report.changes.iter().any(Change::halts);
            let (c, keep) = self.leftover(old, failed, plan.prune, namespaces).await;
            if keep {
                kept.push(old.clone());
            }
            report.changes.push(c);
        }
        kept
    }

    /// The outcome and health: after a failure, the health of everything
    /// the app meant to write; after a dry run, what is there; else waits
    /// (up to the app's timeout) for what was written to be ready.
    async fn settle_health(&self, desired: &[DesiredObject], report: &mut AppReport) {
        if report.changes.iter().any(Change::halts) {
            let message = report
                .changes
                .iter()
                .find_map(Change::failure)
                .unwrap_or_else(|| report.health.message.clone());
            report.outcome = AppOutcome::Failed { message };
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
    async fn write_back(
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
    async fn prepared(
        &self,
    ) -> Result<(Option<Value>, Vec<DesiredObject>), (String, Option<Value>)> {
        let previous = self.previous().await.map_err(|m| (m, None))?;
        match self.desired().await {
            Ok(desired) => Ok((previous, desired)),
            Err(message) => Err((message, previous)),
        }
    }

    /// The app's Application object as the last sync left it (its status
    /// holds the inventory prune works from).
    async fn previous(&self) -> Result<Option<Value>, String> {
        if !self.opts.write_status {
            return Ok(None);
        }
        let name = &self.node.app.name;
        match self.client.get(&status::application_ref(name.as_str())).await {
            Ok(p) => Ok(p),
            // No Application CRD yet (a dry run on a fresh cluster): no history.
            Err(ClusterError::UnknownKind { .. }) => Ok(None),
            Err(e) => Err(format!(
                "cannot read the previous inventory of application \"{name}\" from the cluster (nothing was written): {e}"
            )),
        }
    }

    /// Every object the app renders, prepared (guardrails checked, apply
    /// order) before anything is written; any refusal refuses the app.
    async fn desired(&self) -> Result<Vec<DesiredObject>, String> {
        let app = &self.node.app;
        let manifests: Vec<&Manifest> = self
            .node
            .manifests()
            .iter()
            .filter(|m| !is_application(&m.object))
            .collect();
        let namespace = app.destination.namespace.as_deref().unwrap_or("default");
        let scopes = self.scopes(&manifests).await?;
        let ctx = PrepareContext {
            app: &app.name,
            tier: app.tier,
            namespace,
            system_namespaces: &self.shared.namespaces,
        };
        let prepared = prepare(&ctx, &manifests, |r| {
            scopes
                .get(&(r.group.clone(), r.kind.clone()))
                .cloned()
                .unwrap_or_else(|| Err(format!("no scope known for {}", r.kind_group())))
        });
        let refusal = match prepared {
            Ok(d) => match self.claimed_by_others(&d) {
                None => return Ok(d),
                Some(message) => message,
            },
            Err(refusals) => {
                let texts: Vec<String> = refusals.iter().map(|r| r.to_string()).collect();
                texts.join("; ")
            }
        };
        Err(format!("refused before any write: {refusal}"))
    }

    /// Objects another app of the tree renders too: two apps owning one
    /// object would rewrite it in turn on every run, so neither writes it
    /// until one of them gives it up.
    fn claimed_by_others(&self, desired: &[DesiredObject]) -> Option<String> {
        let me = &self.node.app.name;
        let claims: Vec<String> = desired
            .iter()
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

    /// Per object, what a sync would change: server-side dry-run apply
    /// compared with the live object, plus inventory leftovers.
    async fn diff(&self) -> Result<Vec<ObjectDiff>, String> {
        let (previous, desired) = self.prepared().await.map_err(|(m, _)| m)?;
        let mut out = Vec::new();
        for d in &desired {
            if d.mode == SyncMode::Off {
                continue;
            }
            let live = self
                .client
                .get(&d.object_ref)
                .await
                .map_err(|e| e.to_string())?;
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
                Some(_) => Some(
                    self.client
                        .apply(&d.object, true)
                        .await
                        .map_err(|e| e.to_string())?,
                ),
            };
            out.push(crate::diff::compare(
                d.object_ref.clone(),
                predicted.as_ref(),
                live.as_ref(),
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
                    .any(|d| d.object_ref.same_object(&old.object))
            {
                continue;
            }
            if let Ok(Some(live)) = self.client.get(&old.object).await {
                out.push(crate::diff::compare(old.object.clone(), None, Some(&live)));
            }
        }
        Ok(out)
    }

    fn timeout(&self) -> Duration {
        self.opts
            .timeout
            .unwrap_or(self.node.app.sync_policy.wait_timeout)
            .min(MAX_WAIT)
    }

    fn deadline(&self) -> Instant {
        let now = Instant::now();
        now.checked_add(self.timeout()).unwrap_or(now)
    }

    /// Ends a sync that wrote nothing: the app failed with `message`, and
    /// keeps the inventory `previous` recorded.
    async fn fail(
        &self,
        mut report: AppReport,
        message: String,
        previous: Option<&Value>,
    ) -> AppReport {
        report.outcome = AppOutcome::Failed { message };
        let inventory = previous.map(status::inventory_of).unwrap_or_default();
        self.write_back(&report, &inventory, previous).await;
        report
    }

    /// Scope of every (group, kind) the app renders: from discovery, or from
    /// a CRD the same app renders (its custom resources apply in one pass).
    async fn scopes(
        &self,
        manifests: &[&Manifest],
    ) -> Result<HashMap<(String, String), Result<bool, String>>, String> {
        // CRDs of this app are applied first; CRDs of apps this one depends
        // on are applied before it starts (and in a dry run, never).
        let own = crd_scopes(manifests.iter().copied());
        let crd_scopes = |key: &(String, String)| {
            own.get(key)
                .or_else(|| self.shared.crd_scopes.get(key))
                .copied()
        };
        let mut out = HashMap::new();
        for m in manifests {
            let Ok(r) = m.object_ref() else { continue };
            let key = (r.group.clone(), r.kind.clone());
            if out.contains_key(&key) {
                continue;
            }
            let scope = match self.client.resolve(&r).await {
                Ok(res) => Ok(res.namespaced),
                Err(ClusterError::UnknownKind { .. }) if crd_scopes(&key).is_some() => Ok(crd_scopes(&key).unwrap_or(true)),
                Err(ClusterError::UnknownKind { kind, api_version, .. }) => Err(format!(
                    "the cluster does not serve kind {kind} in {api_version} (is its CRD installed by an app this one depends on?)"
                )),
                Err(e) => return Err(format!("cannot look up kind {}: {e}", r.kind_group())),
            };
            out.insert(key, scope);
        }
        Ok(out)
    }

    async fn ensure_namespace(&self, ns: &str, dry: bool) -> Result<(), ClusterError> {
        if self.client.get(&namespace_ref(ns)).await?.is_some() {
            return Ok(());
        }
        let obj = serde_json::json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": ns, "labels": {APP_LABEL: self.node.app.name.as_str()}}
        });
        self.client.apply(&obj, dry).await.map(|_| ())
    }

    /// The namespaces the app's objects (and leftovers) live in: `None` when
    /// the namespace does not exist yet, else its `kubesync.dev/sync` mode.
    async fn namespace_modes(
        &self,
        desired: &[DesiredObject],
        leftovers: &[ObjectRef],
    ) -> HashMap<String, Option<SyncMode>> {
        let mut out = HashMap::new();
        let namespaces: BTreeSet<&String> = desired
            .iter()
            .map(|d| &d.object_ref)
            .chain(leftovers.iter())
            .filter_map(|r| r.namespace.as_ref())
            .collect();
        for ns in namespaces {
            let r = namespace_ref(ns);
            let mode = match self.client.get(&r).await {
                Ok(Some(live)) => Some(super::prepare::sync_mode(&live)),
                Ok(None) => None,
                // Unknown: treat as existing and on; the apply reports the error.
                Err(_) => Some(SyncMode::On),
            };
            out.insert(ns.clone(), mode);
        }
        out
    }

    /// Applies one desired object, unless it is turned off (in git, on its
    /// namespace or on the live object) or already converged.
    async fn apply_one(
        &self,
        d: &DesiredObject,
        namespaces: &HashMap<String, Option<SyncMode>>,
    ) -> Change {
        let r = &d.object_ref;
        // `None`: the namespace does not exist yet; `Some(mode)`: it does.
        let ns_state = r
            .namespace
            .as_ref()
            .and_then(|n| namespaces.get(n))
            .copied();
        let ns_mode = ns_state.flatten();
        if d.mode == SyncMode::Off {
            return Change::skipped(r, false, SkipReason::SyncOff);
        }
        if ns_mode == Some(SyncMode::Off) {
            return Change::skipped(r, false, SkipReason::SyncOffOnNamespace);
        }
        let live = match self.client.get(r).await {
            Ok(l) => l,
            // The kind is served only once a CRD of this app is applied: in a
            // dry run that never happens, so the object would be created.
            Err(ClusterError::UnknownKind { .. }) if self.opts.dry_run => {
                return Change::done(r, Action::Created, true).noted(Note::AfterItsCrd)
            }
            Err(e) => {
                return Change::failed(r, self.opts.dry_run, ChangeError::Cluster(e.to_string()))
            }
        };
        let live_mode = live.as_ref().map(super::prepare::sync_mode);
        if let Some(l) = &live {
            if live_mode == Some(SyncMode::Off) {
                return Change::skipped(r, false, SkipReason::SyncOffOnLive);
            }
            if annotation(l, DESIRED_HASH_ANNOTATION) == Some(d.hash.as_str())
                && self.converged(d, l).await
            {
                return Change::done(r, Action::Unchanged, false);
            }
        }
        let dry = self.opts.dry_run
            || [Some(d.mode), ns_mode, live_mode].contains(&Some(SyncMode::DryRun));
        // A dry-run create into a namespace this run would create first
        // cannot be checked by the server; report it as a create.
        if dry && live.is_none() && r.namespace.is_some() && ns_state == Some(None) {
            return Change::done(r, Action::Created, true).noted(Note::WithItsNamespace);
        }
        self.write_one(d, live.as_ref(), dry).await
    }

    /// The server-side apply of one object, and what it did to `live`.
    async fn write_one(&self, d: &DesiredObject, live: Option<&Value>, dry: bool) -> Change {
        let r = &d.object_ref;
        match self.client.apply(&d.object, dry).await {
            Ok(result) => {
                let action = match live {
                    None => Action::Created,
                    Some(l) if rv(l) == rv(&result) && !dry => Action::Unchanged,
                    Some(l)
                        if dry
                            && crate::diff::compare(r.clone(), Some(&result), Some(l)).kind
                                == crate::diff::ObjectDiffKind::Same =>
                    {
                        Action::Unchanged
                    }
                    Some(_) => Action::Configured,
                };
                tracing::info!(object = %r, %action, dry_run = dry, "applied");
                Change::done(r, action, dry)
            }
            Err(e) => {
                tracing::warn!(object = %r, "apply failed: {e}");
                Change::failed(r, dry, ChangeError::Cluster(e.to_string()))
            }
        }
    }

    /// Decides one leftover of the previous inventory (an object this app
    /// applied that it no longer renders): prune it, or keep it and say why.
    /// Returns the change and whether the object stays in the inventory.
    async fn leftover(
        &self,
        old: &InventoryEntry,
        failed: bool,
        prune: bool,
        namespaces: &HashMap<String, Option<SyncMode>>,
    ) -> (Change, bool) {
        let r = &old.object;
        let dry = self.opts.dry_run;
        let me = &self.node.app.name;
        let reason = if failed {
            Some(SkipReason::SyncFailed)
        } else if !prune {
            Some(SkipReason::PruneOff)
        } else if old.sync_off {
            // Released: kubesync stops tracking it and never deletes it.
            Some(SkipReason::Released)
        } else if let Some(to) = self.shared.wanted_by_other(r, me) {
            // Handed over: the other app applies it (and owns it from now on).
            Some(SkipReason::HandedOver { to: to.clone() })
        } else {
            self.shared
                .unrendered
                .first()
                .map(|app| SkipReason::Unrendered { app: app.clone() })
        };
        if let Some(reason) = reason {
            let keep = reason.keeps_tracking();
            return (Change::skipped(r, dry, reason), keep);
        }
        let c = self.prune_one(r, dry, namespaces).await;
        let keep = c.action != Action::Pruned;
        (c, keep)
    }

    /// Whether a live object that carries the desired hash (git has not
    /// changed since kubesync applied it) still holds what git declares.
    /// Git's text is compared first; when the server stored it in another
    /// form (quantities such as `0.5` → `500m`, defaulted fields), the server
    /// is asked what an apply would leave (a dry run, never a write), so a
    /// converged object costs no write on a real API server either.
    async fn converged(&self, d: &DesiredObject, live: &Value) -> bool {
        if is_subset(&super::prepare::comparable(&d.object), live) {
            return true;
        }
        match self.client.apply(&d.object, true).await {
            Ok(predicted) => {
                crate::diff::compare(d.object_ref.clone(), Some(&predicted), Some(live)).kind
                    == crate::diff::ObjectDiffKind::Same
            }
            Err(_) => false,
        }
    }

    /// Deletes one leftover, unless it must be kept (see [`keep_leftover`]).
    async fn prune_one(
        &self,
        r: &ObjectRef,
        dry: bool,
        namespaces: &HashMap<String, Option<SyncMode>>,
    ) -> Change {
        let ns_mode = r
            .namespace
            .as_ref()
            .and_then(|n| namespaces.get(n))
            .copied()
            .flatten();
        if ns_mode == Some(SyncMode::Off) {
            return Change::skipped(r, dry, SkipReason::KeptSyncOffNamespace);
        }
        let live = match self.client.get(r).await {
            Ok(None) => return Change::gone(r, dry),
            Ok(Some(live)) => live,
            Err(e) => return Change::failed(r, dry, ChangeError::Prune(e.to_string())),
        };
        if let Some(reason) = keep_leftover(r, &live, &self.node.app.name) {
            return Change::skipped(r, dry, reason);
        }
        let mode = super::prepare::sync_mode(&live);
        if dry || mode == SyncMode::DryRun || ns_mode == Some(SyncMode::DryRun) {
            return Change::done(r, Action::Pruned, true).noted(Note::WouldBePruned);
        }
        match self.client.delete(r, Propagation::Background).await {
            Ok(_) => {
                tracing::info!(object = %r, "pruned");
                Change::done(r, Action::Pruned, false)
            }
            Err(e) => Change::failed(r, false, ChangeError::Prune(e.to_string())),
        }
    }

    async fn current_health(&self, objects: &[&DesiredObject]) -> HealthStatus {
        let mut statuses = Vec::with_capacity(objects.len());
        for d in objects {
            statuses.push(match self.client.get(&d.object_ref).await {
                Ok(Some(live)) => named(&d.object_ref, health::assess(&live)),
                Ok(None) => named(&d.object_ref, health::missing()),
                Err(e) => HealthStatus::new(Health::Unknown, format!("{}: {e}", d.object_ref)),
            });
        }
        health::aggregate(statuses.iter())
    }

    /// Polls health until every object is ready or the deadline passes.
    async fn wait_healthy(&self, objects: &[&DesiredObject], deadline: Instant) -> HealthStatus {
        loop {
            let h = self.current_health(objects).await;
            if h.health.is_ready() || Instant::now() >= deadline {
                return h;
            }
            tokio::time::sleep(
                self.opts
                    .poll_interval
                    .min(deadline.saturating_duration_since(Instant::now())),
            )
            .await;
        }
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

/// Why a live leftover must be kept, if it must: turned off, not applied
/// by `me` (its label and tracking id), or a Namespace or CRD — whose
/// deletion cascades to everything in it — without `kubesync.dev/prune: allow`.
fn keep_leftover(r: &ObjectRef, live: &Value, me: &AppName) -> Option<SkipReason> {
    if super::prepare::sync_mode(live) == SyncMode::Off {
        return Some(SkipReason::KeptSyncOff);
    }
    let owner = live
        .pointer("/metadata/labels")
        .and_then(|l| l.get(APP_LABEL))
        .and_then(Value::as_str);
    let tracked = annotation(live, crate::model::TRACKING_ANNOTATION)
        .and_then(|t| t.strip_prefix(me.as_str()))
        .is_some_and(|rest| rest.starts_with(':'));
    if owner != Some(me.as_str()) || !tracked {
        return Some(SkipReason::NotOwned);
    }
    let cascading = (r.group.is_empty() && r.kind == "Namespace")
        || (r.group == "apiextensions.k8s.io" && r.kind == "CustomResourceDefinition");
    if cascading && annotation(live, PRUNE_ANNOTATION) != Some("allow") {
        let kind = r.kind.clone();
        return Some(SkipReason::Cascading { kind });
    }
    None
}

/// The value of one annotation of a live object.
fn annotation<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj.pointer("/metadata/annotations")
        .and_then(|a| a.get(key))
        .and_then(Value::as_str)
}

/// Annotation that lets kubesync prune a Namespace or CRD.
pub const PRUNE_ANNOTATION: &str = "kubesync.dev/prune";

fn namespace_ref(name: &str) -> ObjectRef {
    ObjectRef {
        group: String::new(),
        version: "v1".into(),
        kind: "Namespace".into(),
        namespace: None,
        name: name.into(),
    }
}

fn rv(obj: &Value) -> Option<&str> {
    obj.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
}

/// Installs the Application CRD and the status namespace when missing.
pub async fn ensure_status_crd(client: &ClusterClient) -> Result<(), ClusterError> {
    let crd_ref = ObjectRef {
        group: "apiextensions.k8s.io".into(),
        version: "v1".into(),
        kind: "CustomResourceDefinition".into(),
        namespace: None,
        name: status::CRD_NAME.into(),
    };
    if client.get(&crd_ref).await?.is_none() {
        client.apply(&status::application_crd(), false).await?;
        client
            .wait_crd_established(status::CRD_NAME, Duration::from_secs(60))
            .await?;
        client.invalidate_discovery();
    }
    if client
        .get(&namespace_ref(status::STATUS_NAMESPACE))
        .await?
        .is_none()
    {
        client.apply(&status::status_namespace(), false).await?;
    }
    Ok(())
}

/// Writes the status of an app that applied nothing (render failed or
/// blocked), keeping the inventory it had.
async fn write_status(client: &ClusterClient, node: &AppNode, report: &AppReport) {
    let previous = client
        .get(&status::application_ref(node.app.name.as_str()))
        .await
        .ok()
        .flatten();
    let inv = previous
        .as_ref()
        .map(status::inventory_of)
        .unwrap_or_default();
    write_status_with(client, node, report, &inv, previous.as_ref()).await
}

/// Writes the Application object (when its spec changed) and its status
/// (when it changed): a converged re-sync writes nothing.
async fn write_status_with(
    client: &ClusterClient,
    node: &AppNode,
    report: &AppReport,
    inventory: &[InventoryEntry],
    previous: Option<&Value>,
) {
    let repo = node.checkout.as_ref().map(|c| c.repo.as_str());
    let desired =
        status::application_object(&node.app, node.parent.as_ref().map(AppName::as_str), repo);
    let needs_spec = match previous {
        Some(p) => !is_subset(&desired, p),
        None => true,
    };
    if needs_spec {
        if let Err(e) = client.apply(&desired, false).await {
            tracing::warn!(app = %node.app.name, "cannot write the Application object: {e}");
            return;
        }
    }
    let prev_status = previous
        .filter(|p| p.get("status").is_some())
        .map(ApplicationStatus::of);
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let new_status = status::build_status(report, inventory, prev_status.as_ref(), &now);
    if prev_status.as_ref() == Some(&new_status) {
        return;
    }
    let app_ref = status::application_ref(node.app.name.as_str());
    let written = serde_json::to_value(&new_status).map_err(|e| e.to_string());
    let patched = match written {
        Ok(v) => client
            .patch_status(&app_ref, &v)
            .await
            .map_err(|e| e.to_string()),
        Err(e) => Err(e),
    };
    if let Err(e) = patched {
        tracing::warn!(app = %node.app.name, "cannot write the Application status: {e}");
    }
}

/// What `kubesync diff` reports for one app.
#[derive(Debug, Clone)]
pub struct AppDiff {
    pub name: AppName,
    /// Per object (empty when the app could not be compared).
    pub objects: Vec<ObjectDiff>,
    /// Why the app could not be compared (render failure, refusal, API error).
    pub error: Option<String>,
}

impl AppDiff {
    pub fn sync_status(&self) -> SyncStatus {
        if self.error.is_some() {
            SyncStatus::OutOfSync
        } else {
            crate::diff::app_status(&self.objects)
        }
    }
}

/// Compares the named apps (all when `only` is None) with the cluster.
/// Writes nothing (server-side dry runs only).
pub async fn diff(
    tree: &AppTree,
    client: &ClusterClient,
    only: Option<&BTreeSet<AppName>>,
) -> Vec<AppDiff> {
    let shared = Shared::new(tree);
    let opts = SyncOptions {
        dry_run: true,
        ..SyncOptions::default()
    };
    let mut out = Vec::new();
    for node in tree.depth_first() {
        if only.map(|o| !o.contains(&node.app.name)).unwrap_or(false) {
            continue;
        }
        let result = match node.failure() {
            Some(f) => Err(f.message.clone()),
            None => {
                AppSync {
                    node,
                    client,
                    opts: &opts,
                    shared: &shared,
                }
                .diff()
                .await
            }
        };
        out.push(match result {
            Ok(objects) => AppDiff {
                name: node.app.name.clone(),
                objects,
                error: None,
            },
            Err(e) => AppDiff {
                name: node.app.name.clone(),
                objects: Vec::new(),
                error: Some(e),
            },
        });
    }
    out
}
