//! The engine's entry points: [`run`] syncs the selected apps in dependency
//! order — a [`Schedule`] (pure) says which apps may start and which a
//! failure blocks; this module starts them, up to `parallel` at once, and
//! records blocked apps — and [`diff`] compares without writing. A run
//! reads the cluster through one [`LiveCache`] (list+watch per kind, so waits
//! wake on events and a converged re-sync reads by list). Also the
//! status IO: installing the Application CRD and writing each app's
//! Application object and status (built by `status`). One app's sync is
//! `app`'s.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};
use serde_json::Value;

use super::app::{blocked_report, namespace_ref, selector_for, sync_app, AppSync, StatusWrite};
use super::prepare::is_subset;
use super::report::{AppReport, SyncReport};
use super::schedule::Schedule;
use super::shared::{few_apps, Shared};
use super::status::{self, ApplicationStatus, InventoryEntry};
use crate::cluster::{CacheScope, ClusterClient, ClusterError, LiveCache};
use crate::diff::{ObjectDiff, SyncStatus};
use crate::graph::AppGraph;
use crate::model::{AppName, ObjectRef};
use crate::tree::{AppNode, AppTree};

/// How a sync runs.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// Apps syncing at once (they mostly wait on the API server and on
    /// readiness, so more than the CPU count).
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
    /// How often health is polled while waiting on objects whose kind is
    /// not watched (it could not be listed).
    pub poll_interval: Duration,
    /// While waiting on watched objects (woken by their events), how often
    /// they are read again anyway, in case a watch missed a change.
    pub watch_fallback: Duration,
    /// Objects applied at once within one phase of one app.
    pub apply_concurrency: usize,
    /// `ignoreDifferences` rules of every app (the settings file's), besides its own.
    pub ignore_differences: Vec<crate::model::IgnoreRule>,
    /// When this turns `true`, no further app is started; apps in flight
    /// finish (and write their status) and the run returns with the rest
    /// reported Blocked. A controller's graceful shutdown.
    pub stop: Option<tokio::sync::watch::Receiver<bool>>,
    /// Run every synced app's resource hooks even when its sync has
    /// nothing to apply or prune (Argo CD runs them on every sync; kubesync
    /// by default only when something changes, so a converged run writes
    /// nothing). `--run-hooks`: a migration Job re-run on request.
    pub run_hooks: bool,
    /// kube-applier's `LABEL`: a live object labelled with it `off` is
    /// left alone — not applied, not pruned — as git's own `LABEL=off`
    /// objects are (those are turned off in the tree, see
    /// `tree::gate_namespaces`).
    pub off_label: Option<String>,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            parallel: DEFAULT_PARALLEL,
            dry_run: false,
            run_hooks: false,
            prune: None,
            timeout: None,
            only: None,
            write_status: true,
            poll_interval: Duration::from_millis(200),
            watch_fallback: Duration::from_secs(2),
            apply_concurrency: 8,
            ignore_differences: Vec::new(),
            stop: None,
            off_label: None,
        }
    }
}

/// Apps syncing at once by default (`--parallel`). A syncing app mostly
/// waits (on the API server, on readiness), so this is well above the CPU
/// count; the request rate is bounded apart (`--qps`). Ready apps start in
/// tree order, so with fewer slots than independent dependency chains the
/// later chains wait for whole earlier chains to finish: 32 keeps a tree
/// of 20 chains (the benchmark's) moving at once.
pub const DEFAULT_PARALLEL: usize = 32;

/// Up to this many namespaces in a run, the cache lists and watches each
/// kind per namespace; beyond, once per kind across the cluster.
const NAMESPACED_CACHE_LIMIT: usize = 4;

/// Receives progress as apps start and finish (the CLI's display).
pub trait Progress: Send + Sync {
    fn started(&self, _app: &AppName) {}
    fn finished(&self, _report: &AppReport) {}
    /// [`Progress::finished`] with the app's Application object as this
    /// sync found it: `Some(None)` when there was none, `None` when it was
    /// not read (no status, a dry run, a sync that failed before reading
    /// it) — what the controller's events and completion signals compare
    /// the outcome with.
    fn finished_with(&self, report: &AppReport, _previous: Option<Option<&Value>>) {
        self.finished(report)
    }
    /// The status write of an app whose [`Progress::finished_with`] had
    /// `Some` previous object is done (made or failed): what reads the
    /// Application after its sync (the controller's completion signals)
    /// may go on.
    fn status_written(&self, _app: &AppName) {}
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
    let live = LiveCache::new(client.clone(), cache_scope(&selected))
        .keep_managed_fields(reads_managed_fields(&selected, opts));
    if opts.write_status && !opts.dry_run {
        match ensure_status(client).await {
            Ok(true) => live.created_namespace(status::STATUS_NAMESPACE),
            Ok(false) => {}
            Err(e) => tracing::warn!(
                "cannot install the Application CRD, status will not be written: {e}"
            ),
        }
    }
    let few_apps = few_apps(selected.len(), tree.len());
    live.warm(
        kinds_in_play(&selected, opts.write_status && !few_apps)
            .iter()
            .map(|r| (r, selector_for(r))),
    )
    .await;
    let run = Run {
        nodes: selected.iter().map(|n| (n.app.name.clone(), *n)).collect(),
        live: &live,
        opts,
        progress,
        shared: Shared {
            few_apps,
            ..Shared::new(tree)
        },
    };
    let mut reports = run.drive(Schedule::new(graph, &names)).await;
    let apps = names.iter().filter_map(|n| reports.remove(n)).collect();
    // The cache's copies are not needed past the apps' syncs: freed before
    // the removed apps' Application objects are listed (the two were the
    // run's peak memory together).
    drop(run);
    drop(live);
    let (orphaned, removed) = if opts.only.is_none() && opts.write_status {
        super::removed::removed_apps(tree, client, opts).await
    } else {
        (Vec::new(), Vec::new())
    };
    SyncReport {
        apps,
        orphaned,
        removed,
        duration: start.elapsed(),
    }
}

/// Per kind and namespace when the selected apps touch few namespaces (a
/// `kubesync sync APP`), else per kind across the cluster (a bootstrap).
fn cache_scope(selected: &[&AppNode]) -> CacheScope {
    let mut namespaces = BTreeSet::new();
    namespaces.insert(status::STATUS_NAMESPACE.to_string());
    for n in selected {
        namespaces.extend(n.app.destination.namespace.clone());
        for m in n.objects() {
            if let Ok(r) = m.object_ref() {
                namespaces.extend(r.namespace);
            }
        }
    }
    if namespaces.len() <= NAMESPACED_CACHE_LIMIT {
        CacheScope::Namespace
    } else {
        CacheScope::Cluster
    }
}

/// Whether the sync reads live objects' `managedFields`: only an
/// `ignoreDifferences` rule with `managedFieldsManagers` does (the run's
/// cache drops them otherwise: they are ~40% of an object).
fn reads_managed_fields(selected: &[&AppNode], opts: &SyncOptions) -> bool {
    selected
        .iter()
        .flat_map(|n| &n.app.ignore_differences)
        .chain(&opts.ignore_differences)
        .any(|rule| !rule.managed_fields_managers.is_empty())
}

/// One object per kind and namespace the selected apps will read (their
/// objects, namespaces and Application objects), so that the cache lists
/// them all at once before the first app starts.
fn kinds_in_play(selected: &[&AppNode], with_status: bool) -> Vec<ObjectRef> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    let mut add = |r: ObjectRef| {
        if seen.insert((r.group.clone(), r.kind.clone(), r.namespace.clone())) {
            out.push(r);
        }
    };
    if with_status {
        if let Some(n) = selected.first() {
            add(status::application_ref(n.app.name.as_str()));
        }
    }
    for n in selected {
        let dest = n.app.destination.namespace.as_deref();
        if let Some(ns) = dest {
            add(namespace_ref(ns));
        }
        for m in n.objects() {
            if let Ok(mut r) = m.object_ref_or_generated() {
                if r.namespace.is_none() {
                    r.namespace = Some(dest.unwrap_or("default").to_string());
                }
                add(r);
            }
        }
    }
    out
}

/// One sync run: the selected apps and what every app's sync shares.
struct Run<'a> {
    nodes: HashMap<AppName, &'a AppNode>,
    live: &'a LiveCache,
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
        // Status writes of finished apps: made while dependents already run.
        let mut writes = FuturesUnordered::new();
        while !schedule.is_done() {
            let stopping = self.opts.stop.as_ref().is_some_and(|s| *s.borrow());
            let free = if stopping {
                0
            } else {
                self.opts.parallel.max(1).saturating_sub(schedule.running())
            };
            for name in schedule.ready().into_iter().take(free) {
                schedule.start(&name);
                let node = self.nodes[&name];
                self.progress.started(&name);
                running.push(async move {
                    (
                        node,
                        sync_app(node, self.live, self.opts, &self.shared).await,
                    )
                });
            }
            let next = loop {
                tokio::select! {
                    next = running.next() => break next,
                    Some(app) = writes.next(), if !writes.is_empty() => {
                        self.progress.status_written(&app);
                    }
                }
            };
            let Some((node, (report, write))) = next else {
                break;
            };
            let ok = report.lets_dependents_start(self.opts.dry_run);
            self.progress
                .finished_with(&report, write.as_ref().map(|w| w.previous.as_ref()));
            if let Some(StatusWrite {
                inventory,
                previous,
            }) = write
            {
                let report = report.clone();
                let client = self.live.client();
                writes.push(async move {
                    write_status_with(client, node, &report, &inventory, previous.as_ref()).await;
                    report.name
                });
            }
            reports.insert(node.app.name.clone(), report);
            for (name, by) in schedule.finish(&node.app.name, ok) {
                let report = self.blocked(self.nodes[&name], by).await;
                reports.insert(name, report);
            }
        }
        while let Some(app) = writes.next().await {
            self.progress.status_written(&app);
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
            write_status(self.live, node, &report).await;
        }
        report
    }
}

/// Every kubesync Application object in the cluster (in [`status::STATUS_NAMESPACE`]).
pub async fn list_applications(client: &ClusterClient) -> Result<Vec<Value>, ClusterError> {
    let gvk = crate::cluster::GroupVersionKind::gvk("kubesync.dev", "v1alpha1", "Application");
    client.list(&gvk, Some(status::STATUS_NAMESPACE), "").await
}

/// Installs the Application CRD and the status namespace when missing.
pub async fn ensure_status_crd(client: &ClusterClient) -> Result<(), ClusterError> {
    ensure_status(client).await.map(|_| ())
}

/// [`ensure_status_crd`]; `true` when it created the status namespace.
async fn ensure_status(client: &ClusterClient) -> Result<bool, ClusterError> {
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
        return Ok(true);
    }
    Ok(false)
}

/// Writes the status of an app that applied nothing (render failed or
/// blocked), keeping the inventory it had.
pub(super) async fn write_status(live: &LiveCache, node: &AppNode, report: &AppReport) {
    let app_ref = status::application_ref(node.app.name.as_str());
    let previous = live
        .get(&app_ref, status::APPLICATION_SELECTOR)
        .await
        .ok()
        .flatten();
    let client = live.client();
    let inv = previous
        .as_ref()
        .map(status::inventory_of)
        .unwrap_or_default();
    write_status_with(client, node, report, &inv, previous.as_ref()).await
}

/// Writes the Application object (when its spec changed) and its status
/// (when it changed): a converged re-sync writes nothing.
pub(super) async fn write_status_with(
    client: &ClusterClient,
    node: &AppNode,
    report: &AppReport,
    inventory: &[InventoryEntry],
    previous: Option<&Value>,
) {
    let repo = node.checkout.as_ref().map(|c| c.repo.as_str());
    let mut desired =
        status::application_object(&node.app, node.parent.as_ref().map(AppName::as_str), repo);
    super::delete_hooks::record(&mut desired, &super::delete_hooks::of_node(node));
    // kubesync's annotations on the Application object (a dropped one is
    // not seen by the subset test).
    let ours = |o: &Value| -> Vec<Option<Value>> {
        [
            super::removed::CASCADE_ANNOTATION,
            super::removed::DELETE_OBJECTS_ANNOTATION,
            super::removed::GENERATED_ANNOTATION,
            super::removed::WHEN_NOT_GENERATED_ANNOTATION,
            super::delete_hooks::DELETE_HOOKS_ANNOTATION,
        ]
        .iter()
        .map(|k| {
            o.pointer("/metadata/annotations")
                .and_then(|a| a.get(*k))
                .cloned()
        })
        .collect()
    };
    let needs_spec = match previous {
        Some(p) => !is_subset(&desired, p) || ours(p) != ours(&desired),
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
    // Without the ledger of completion signals (the controller's to write).
    let written = new_status.sync_patch().map_err(|e| e.to_string());
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
    diff_ignoring(tree, client, only, &[]).await
}

/// [`diff`], honouring global `ignoreDifferences` rules besides each app's own.
pub async fn diff_ignoring(
    tree: &AppTree,
    client: &ClusterClient,
    only: Option<&BTreeSet<AppName>>,
    ignore_differences: &[crate::model::IgnoreRule],
) -> Vec<AppDiff> {
    let shared = Shared::new(tree);
    let opts = SyncOptions {
        dry_run: true,
        ignore_differences: ignore_differences.to_vec(),
        ..SyncOptions::default()
    };
    let selected: Vec<&AppNode> = tree
        .depth_first()
        .into_iter()
        .filter(|n| only.is_none_or(|o| o.contains(&n.app.name)))
        .collect();
    // One LIST per kind and namespace (or per kind) of what the apps
    // render, as `run` reads; no watches: nothing is waited for.
    let live = LiveCache::snapshot(client.clone(), cache_scope(&selected))
        .keep_managed_fields(reads_managed_fields(&selected, &opts));
    let few_apps = few_apps(selected.len(), tree.len());
    live.warm(
        kinds_in_play(&selected, opts.write_status && !few_apps)
            .iter()
            .map(|r| (r, selector_for(r))),
    )
    .await;
    let mut out = Vec::new();
    for node in selected {
        let result = match node.failure() {
            Some(f) => Err(f.message.clone()),
            None => match super::app::ignore_set(node, &opts) {
                Err(e) => Err(e),
                Ok(ignore) => {
                    AppSync {
                        node,
                        client,
                        live: &live,
                        opts: &opts,
                        shared: &shared,
                        ignore: &ignore,
                        converged_seen: Default::default(),
                    }
                    .diff()
                    .await
                }
            },
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
