//! The commands that talk to a cluster: `bootstrap`, `sync`, `diff`,
//! `status`. Each connects (kubeconfig, `--server`, in-cluster, or the
//! in-process `--emulator`), loads the tree, calls `sync`, and prints a view
//! of the change set. `bootstrap` and `sync` record Events and send the
//! completion signals as `kubesync run` does (its `NotifyArgs`), and wait
//! for them before exiting.

use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};

use super::error::CliError;
use super::offline::{load, resolve_names, Loaded};
use super::output::{or_dash, Table};
use super::progress::Display;
use super::stdio::{errln, out, outln};
use super::{GlobalArgs, Outcome, OutputFormat};
use crate::cluster::{ClusterClient, ClusterOptions};
use crate::controller::signals::Signals;
use crate::diff::{ObjectDiffKind, SyncStatus};
use crate::model::{parse_duration, AppName};
use crate::notify::{NotifyArgs, NotifyConfig};
use crate::sync::status::ApplicationStatus;
use crate::sync::{self, SyncOptions, SyncReport};

/// How to reach the cluster.
#[derive(Debug, Clone, clap::Args)]
pub struct ClusterArgs {
    /// Path to a kubeconfig file (default: $KUBECONFIG, then ~/.kube/config,
    /// then the in-cluster service account).
    #[arg(long, env = "KUBECONFIG", value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
    /// The API server URL, bypassing kubeconfig (plain http allowed on loopback).
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// Start the built-in Kubernetes API emulator in-process and sync into it
    /// (no cluster needed; it lives as long as the command).
    #[arg(long)]
    pub emulator: bool,
    /// Make field-ownership conflicts with other managers errors instead of
    /// taking the fields over (git wins by default, as with Argo CD self-heal).
    #[arg(long)]
    pub no_force: bool,
    /// Client-side limit on API requests per second (bursts of up to 300),
    /// so a large sync does not crowd a shared API server; 429 answers are
    /// honoured regardless. 0: no limit. Never applied to --emulator.
    #[arg(long, env = "KUBESYNC_QPS", value_name = "N", default_value_t = crate::cluster::DEFAULT_QPS)]
    pub qps: f64,
    /// Named in the User-Agent (`run`: the leader-election identity).
    #[arg(skip)]
    pub agent: Option<String>,
}

/// How a sync behaves.
#[derive(Debug, Clone, clap::Args)]
pub struct SyncArgs {
    /// Report what would change without writing (server-side dry run).
    #[arg(long, env = "DRY_RUN", value_parser = clap::builder::BoolishValueParser::new(), default_missing_value = "true", num_args = 0..=1)]
    pub dry_run: bool,
    /// Prune objects no longer in git even where the app's policy does not.
    #[arg(long, conflicts_with = "no_prune")]
    pub prune: bool,
    /// Never prune in this run.
    #[arg(long)]
    pub no_prune: bool,
    /// How long each app may take to become Healthy (overrides the apps'
    /// `syncPolicy.wait.timeout`), e.g. 30s, 5m.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub timeout: Option<Duration>,
    /// Run the apps' resource hooks (PreSync, Sync, PostSync) even when
    /// their sync has nothing else to do — e.g. to re-run a migration Job
    /// (by default a converged app runs no hooks and writes nothing).
    #[arg(long)]
    pub run_hooks: bool,
}

impl SyncArgs {
    pub(super) fn options(&self, global: &GlobalArgs) -> SyncOptions {
        SyncOptions {
            parallel: global.parallel.max(1),
            dry_run: self.dry_run,
            prune: if self.prune {
                Some(true)
            } else if self.no_prune {
                Some(false)
            } else {
                None
            },
            timeout: self.timeout,
            run_hooks: self.run_hooks,
            ..SyncOptions::default()
        }
    }
}

pub(super) async fn connect(args: &ClusterArgs) -> Result<ClusterClient, CliError> {
    let opts = ClusterOptions {
        kubeconfig: args.kubeconfig.clone(),
        context: args.context.clone(),
        server: args.server.clone(),
        emulator: args.emulator,
        force_conflicts: !args.no_force,
        qps: args.qps,
        agent: args.agent.clone(),
        ..ClusterOptions::default()
    };
    let client = ClusterClient::connect(opts)
        .await
        .map_err(|e| CliError::Connect(Box::new(e)))?;
    tracing::info!("connected to {}", client.describe());
    Ok(client)
}

/// Loads the tree and checks it can be ordered: a cycle or an unknown
/// dependency stops here with exit 2, before the cluster is contacted. An
/// app with a configuration error of its own (an invalid manifest, a
/// duplicate name, a refused tier or project) fails alone — its dependents
/// are Blocked, the rest syncs — and the command still exits 2 at the end
/// ([`finish`]), exactly as `tree` and `plan` report it.
fn load_ordered(global: &GlobalArgs) -> Result<(Loaded, crate::graph::AppGraph), CliError> {
    let loaded = load(global)?;
    match &loaded.graph {
        Ok(g) => {
            let g = g.clone();
            if loaded.has_config_errors() {
                loaded.report_problems();
            }
            Ok((loaded, g))
        }
        Err(_) => {
            loaded.report_problems();
            Err(CliError::Misconfigured {
                consequence: "the cluster was not contacted",
            })
        }
    }
}

/// Settles the tree's namespace label gates (`namespaceDirectories` with a
/// `label`, kube-applier's mode) with the cluster's namespaces: an app whose
/// namespace is not labelled `on` or `dry-run` leaves the tree for this run,
/// a `dry-run` one is reported without writing. No gate, no request.
async fn settle_gates(
    loaded: &mut Loaded,
    graph: &mut crate::graph::AppGraph,
    client: &ClusterClient,
) -> Result<(), CliError> {
    if loaded.tree.namespace_gates().is_empty() {
        return Ok(());
    }
    let gvk = crate::cluster::GroupVersionKind::gvk("", "v1", "Namespace");
    let list = client
        .list(&gvk, None, "")
        .await
        .map_err(|e| CliError::NamespaceLabels(Box::new(e)))?;
    let mut labels = std::collections::HashMap::new();
    for ns in &list {
        let Some(name) = ns.pointer("/metadata/name").and_then(Value::as_str) else {
            continue;
        };
        let l: std::collections::BTreeMap<String, String> = ns
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        labels.insert(name.to_string(), l);
    }
    for (gate, decision) in crate::tree::gate_namespaces(&mut loaded.tree, &labels) {
        let what = match decision {
            crate::tree::GateDecision::On => continue,
            crate::tree::GateDecision::DryRun => "labelled {label}=dry-run: reported, not written",
            crate::tree::GateDecision::Disabled => {
                "not labelled {label}=on or dry-run: disabled, not synced"
            }
        };
        errln!(
            "application \"{}\": namespace {} is {}",
            gate.app,
            gate.namespace,
            what.replace("{label}", &gate.label)
        );
    }
    loaded.graph = loaded.tree.graph();
    match &loaded.graph {
        Ok(g) => *graph = g.clone(),
        Err(_) => {
            loaded.report_problems();
            return Err(CliError::Misconfigured {
                consequence: "nothing was synced",
            });
        }
    }
    Ok(())
}

/// The exit of a cluster command: 2 when the tree holds a configuration
/// error (that app failed alone), else what the run says.
fn finish(loaded: &Loaded, outcome: Outcome) -> Outcome {
    if loaded.has_config_errors() {
        Outcome::Usage
    } else {
        outcome
    }
}

/// The progress display for a run over `only` (all apps when None).
fn progress(graph: &crate::graph::AppGraph, only: Option<&BTreeSet<AppName>>) -> Display {
    let levels = graph
        .levels()
        .into_iter()
        .map(|l| {
            l.into_iter()
                .filter(|a| only.map(|o| o.contains(a)).unwrap_or(true))
                .collect::<Vec<_>>()
        })
        .filter(|l| !l.is_empty())
        .collect();
    Display::new(levels, std::io::stderr().is_terminal())
}

fn print_report(report: &SyncReport, output: OutputFormat) {
    match output {
        OutputFormat::Json => {
            outln!(
                "{}",
                serde_json::to_string_pretty(report).unwrap_or_default()
            );
        }
        _ => {
            let mut t = Table::new(&[
                "NAME",
                "TIER",
                "NAMESPACE",
                "RESULT",
                "SYNC",
                "HEALTH",
                "REVISION",
                "MESSAGE",
            ]);
            for a in &report.apps {
                t.row(vec![
                    a.name.to_string(),
                    a.tier.to_string(),
                    or_dash(a.namespace.as_deref().unwrap_or("")),
                    a.outcome.label().to_string(),
                    a.sync.to_string(),
                    a.health.health.to_string(),
                    a.revision.clone(),
                    a.message(),
                ]);
            }
            out!("{}", t.render());
            print_hooks(report);
            let totals = report.totals();
            let good = report
                .apps
                .iter()
                .filter(|a| a.outcome.is_success())
                .count();
            for r in &report.removed {
                outln!();
                print_removed(r, Retired::LeftTree);
            }
            if !report.orphaned.is_empty() {
                outln!(
                    "\nwarning: {} application(s) in the cluster are no longer in the tree: {} (their objects are kept; `kubesync delete APP` deletes one with its objects, `--cascade=false` without)",
                    report.orphaned.len(),
                    report.orphaned.iter().map(AppName::as_str).collect::<Vec<_>>().join(", ")
                );
            }
            outln!(
                "\n{good}/{} applications succeeded in {:.1}s: {} created, {} configured, {} unchanged, {} pruned, {} skipped, {} failed",
                report.apps.len(),
                report.duration.as_secs_f64(),
                totals.created,
                totals.configured,
                totals.unchanged,
                totals.pruned,
                totals.skipped,
                totals.failed
            );
        }
    }
}

/// Why a removed app was deleted: it left the tree (a sync deletes it by
/// its finalizer or its ApplicationSet's policy) or `kubesync delete`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Retired {
    LeftTree,
    Command,
}

/// One removed app: a line saying what became of it, then one line per
/// object (deleted, kept and why, left in place, a deletion hook).
pub(super) fn print_removed(r: &sync::RemovedApp, how: Retired) {
    let dry_run = r.dry_run;
    let deleted = r
        .changes
        .iter()
        .filter(|c| c.action == sync::Action::Pruned)
        .count();
    let kept = r
        .changes
        .iter()
        .filter(|c| c.action == sync::Action::Skipped && !is_hook_not_run(c))
        .count();
    let subject = if dry_run {
        format!("removed application {} (dry run)", r.name)
    } else {
        format!("removed application {}", r.name)
    };
    let why = match &r.application_set {
        Some(set) => format!("no longer generated by ApplicationSet \"{set}\""),
        None => "no longer in the tree".to_string(),
    };
    let went = if dry_run {
        "would be deleted"
    } else {
        "deleted"
    };
    let (with_objects, without) = match how {
        Retired::LeftTree => (
            " (resources-finalizer.argocd.argoproj.io)",
            " (no resources finalizer, or preserveResourcesOnDeletion)",
        ),
        Retired::Command => ("", " (--cascade=false)"),
    };
    let left = match how {
        Retired::LeftTree => String::new(),
        Retired::Command => format!(": {} object(s) left in the cluster", r.left.len()),
    };
    match &r.error {
        None if r.cascade => outln!(
            "{subject}: {why}, {went} with its objects{with_objects}: {deleted} {went}, {kept} kept"
        ),
        None => outln!("{subject}: {why}, {went}; its objects are kept{without}{left}"),
        Some(e) => outln!(
            "warning: removed application {}: {deleted} object(s) deleted, not finished: {e}",
            r.name
        ),
    }
    if how == Retired::LeftTree {
        return;
    }
    let verb = |done: &str, would: &str| {
        if dry_run {
            would.to_string()
        } else {
            done.to_string()
        }
    };
    for c in &r.changes {
        let what = match c.action {
            sync::Action::Skipped if is_hook_not_run(c) => {
                format!("would run deletion hook {}", c.object)
            }
            sync::Action::Created => format!("ran deletion hook {}: {}", c.object, c.message()),
            sync::Action::Pruned if c.note.is_some() => {
                format!("gone     {}: {}", c.object, c.message())
            }
            sync::Action::Pruned => format!("{} {}", verb("deleted ", "would delete"), c.object),
            sync::Action::Skipped => format!(
                "{} {}: {}",
                verb("kept    ", "would keep"),
                c.object,
                c.message()
            ),
            _ => format!("{:<8} {}: {}", c.action.to_string(), c.object, c.message()),
        };
        outln!("  {what}");
    }
    for o in &r.left {
        outln!("  {} {o}", verb("left    ", "would leave"));
    }
    if dry_run {
        outln!(
            "  would delete Application {} (namespace {})",
            r.name,
            sync::status::STATUS_NAMESPACE
        );
    } else if r.error.is_none() {
        outln!(
            "  deleted  Application {} (namespace {})",
            r.name,
            sync::status::STATUS_NAMESPACE
        );
    }
}

/// A deletion hook a dry run did not run.
fn is_hook_not_run(c: &sync::Change) -> bool {
    matches!(c.reason, Some(sync::SkipReason::HookNotRun(_)))
}

/// The resource hooks that ran, in the order they ran, one line each:
/// app, phase, object, what came of it.
fn print_hooks(report: &SyncReport) {
    let ran: Vec<(&AppName, &sync::Change)> = report
        .apps
        .iter()
        .flat_map(|a| a.changes.iter().map(move |c| (&a.name, c)))
        .filter(|(_, c)| c.hook.is_some() && c.action != sync::Action::Skipped)
        .collect();
    if ran.is_empty() {
        return;
    }
    let mut t = Table::new(&["APP", "HOOK", "OBJECT", "RESULT"]);
    for (app, c) in ran {
        let phase = c.hook.map(|p| p.to_string()).unwrap_or_default();
        t.row(vec![
            app.to_string(),
            phase,
            c.object.to_string(),
            c.message(),
        ]);
    }
    outln!("\nhooks:");
    out!("{}", t.render());
}

fn outcome_of(report: &SyncReport) -> Outcome {
    if report.all_good() {
        Outcome::Ok
    } else {
        Outcome::Failed
    }
}

/// One line, once, when the API server needed retries: transient errors
/// are logged per request only at debug level.
/// With `-v`, also the requests the command sent (reads, watches, writes).
fn note_retries(client: &ClusterClient, verbose: u8) {
    let stats = client.request_stats();
    if stats.retries > 0 {
        let retries = stats.retries;
        errln!("note: {retries} request(s) were retried after transient API errors (429/5xx/connection); -vv shows each");
    }
    if verbose > 0 {
        errln!("requests: {}", stats.summary());
    }
}

/// The settings file named by `--settings` (none: defaults); an invalid one
/// is a configuration error, before the cluster is contacted.
pub(super) fn load_settings(
    global: &GlobalArgs,
) -> Result<crate::model::settings::Settings, CliError> {
    match &global.settings {
        Some(path) => Ok(crate::model::settings::Settings::load(path)?),
        None => Ok(crate::model::settings::Settings::default()),
    }
}

/// The signal settings, the cluster's name being the global one (the
/// generators' `--cluster-name` / `CLUSTER_NAME`); a mistake is a usage
/// error, before the cluster is contacted.
pub(super) fn notify_config(
    global: &GlobalArgs,
    args: &NotifyArgs,
) -> Result<NotifyConfig, CliError> {
    let mut notify = args.clone();
    notify.cluster_name = global.cluster_name.clone().filter(|s| !s.trim().is_empty());
    notify.config().map_err(|e| CliError::Usage(e.to_string()))
}

/// How long a one-shot sync waits, once done, for its completion signals
/// (a webhook that is down is retried for up to ~65 s) and Events.
const SIGNALS_GRACE: Duration = Duration::from_secs(120);

/// Runs the engine as a one-shot command does, with the controller's
/// Events and completion signals (one code path: [`Signals`]), and waits
/// for those before returning. Without status writes (a dry run) there is
/// no ledger: no events, no signals.
async fn run_with_signals(
    loaded: &Loaded,
    graph: &crate::graph::AppGraph,
    client: &ClusterClient,
    opts: &SyncOptions,
    display: &Display,
    notify: NotifyConfig,
) -> SyncReport {
    let writes = opts.write_status && !opts.dry_run;
    let targets = notify.webhook.is_some() || notify.s3.is_some();
    // A one-shot command leads for its lifetime (the sender is kept so the
    // receiver never sees it closed).
    let (_leading, leader) = tokio::sync::watch::channel(true);
    let signals = Signals::new(
        client.clone(),
        std::sync::Arc::new(crate::metrics::Metrics::new()),
        notify,
        &crate::controller::default_instance(),
        writes,
        leader,
    );
    let progress = signals.progress(&loaded.tree, display);
    let report = sync::run(&loaded.tree, graph, client, opts, &progress).await;
    let pending = signals.pending();
    if pending > 0 {
        errln!("sending {pending} completion signal(s)…");
    }
    signals.close(SIGNALS_GRACE).await;
    // CI waits for a commit: the work tree is not one.
    let unpinned = report
        .apps
        .iter()
        .filter(|a| a.revision == "worktree")
        .count();
    if writes && targets && unpinned > 0 {
        errln!(
            "note: {unpinned} application(s) were synced from the work tree: no completion signal \
             for them (a signal names a commit; give the root `targetRevision: HEAD` to sync the \
             checked-out commit)"
        );
    }
    report
}

/// `kubesync bootstrap [ROOT]`
pub async fn bootstrap(
    global: &GlobalArgs,
    root: Option<PathBuf>,
    cluster: &ClusterArgs,
    args: &SyncArgs,
    notify: &NotifyArgs,
) -> Result<Outcome, CliError> {
    let mut global = global.clone();
    if let Some(r) = root {
        global.root = r;
    }
    let notify = notify_config(&global, notify)?;
    let (mut loaded, mut graph) = load_ordered(&global)?;
    let settings = load_settings(&global)?;
    let client = connect(cluster).await?;
    settle_gates(&mut loaded, &mut graph, &client).await?;
    errln!(
        "bootstrapping {} applications from {} into {}",
        loaded.tree.len(),
        global.root.display(),
        client.describe()
    );
    let report = run_with_signals(
        &loaded,
        &graph,
        &client,
        &SyncOptions {
            ignore_differences: settings.ignore_differences,
            ..args.options(&global)
        },
        &progress(&graph, None),
        notify,
    )
    .await;
    print_report(&report, global.output);
    note_retries(&client, global.verbose);
    Ok(finish(&loaded, outcome_of(&report)))
}

/// `kubesync sync APP…`
pub async fn sync(
    global: &GlobalArgs,
    apps: &[String],
    with_deps: bool,
    cluster: &ClusterArgs,
    args: &SyncArgs,
    notify: &NotifyArgs,
) -> Result<Outcome, CliError> {
    let notify = notify_config(global, notify)?;
    let (mut loaded, mut graph) = load_ordered(global)?;
    let names = resolve_names(&loaded, apps, global)?;
    let client = connect(cluster).await?;
    settle_gates(&mut loaded, &mut graph, &client).await?;
    // A disabled app named on the command line has nothing to sync.
    let names: BTreeSet<AppName> = names
        .into_iter()
        .filter(|n| loaded.tree.get(n).is_some())
        .collect();
    let only: BTreeSet<AppName> = if with_deps {
        graph.with_prerequisites(&names.iter().cloned().collect())
    } else {
        names
    };
    let settings = load_settings(global)?;
    let display = progress(&graph, Some(&only));
    let opts = SyncOptions {
        only: Some(only),
        ignore_differences: settings.ignore_differences,
        ..args.options(global)
    };
    let report = run_with_signals(&loaded, &graph, &client, &opts, &display, notify).await;
    print_report(&report, global.output);
    note_retries(&client, global.verbose);
    Ok(finish(&loaded, outcome_of(&report)))
}

/// `kubesync diff [APP…]`
pub async fn diff(
    global: &GlobalArgs,
    apps: &[String],
    cluster: &ClusterArgs,
) -> Result<Outcome, CliError> {
    let (mut loaded, mut graph) = load_ordered(global)?;
    let only = if apps.is_empty() {
        None
    } else {
        Some(resolve_names(&loaded, apps, global)?)
    };
    let settings = load_settings(global)?;
    let client = connect(cluster).await?;
    settle_gates(&mut loaded, &mut graph, &client).await?;
    let diffs = sync::diff_ignoring(
        &loaded.tree,
        &client,
        only.as_ref(),
        &settings.ignore_differences,
    )
    .await;
    let out_of_sync = diffs
        .iter()
        .any(|d| d.sync_status() == SyncStatus::OutOfSync);
    match global.output {
        OutputFormat::Json => {
            let v: Vec<Value> = diffs
                .iter()
                .map(|d| {
                    json!({
                        "app": d.name,
                        "sync": d.sync_status().to_string(),
                        "error": d.error,
                        "objects": d.objects.iter().map(|o| json!({
                            "object": o.object,
                            "status": format!("{:?}", o.kind),
                            "diff": o.diff,
                        })).collect::<Vec<_>>(),
                    })
                })
                .collect();
            outln!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        }
        _ => {
            for d in &diffs {
                if let Some(e) = &d.error {
                    outln!("=== {}: cannot compare: {e}", d.name);
                    continue;
                }
                let changed: Vec<_> = d
                    .objects
                    .iter()
                    .filter(|o| o.kind != ObjectDiffKind::Same)
                    .collect();
                if changed.is_empty() {
                    continue;
                }
                outln!(
                    "=== {} ({} of {} objects out of sync)",
                    d.name,
                    changed.len(),
                    d.objects.len()
                );
                for o in changed {
                    let what = match o.kind {
                        ObjectDiffKind::Missing => "missing from the cluster",
                        ObjectDiffKind::Changed => "differs",
                        ObjectDiffKind::Extra => "no longer in git",
                        ObjectDiffKind::Same => "same",
                    };
                    outln!("--- {} {what}", o.object);
                    out!("{}", o.diff);
                    if !o.diff.ends_with('\n') && !o.diff.is_empty() {
                        outln!();
                    }
                }
            }
            let n = diffs
                .iter()
                .filter(|d| d.sync_status() == SyncStatus::OutOfSync)
                .count();
            errln!("{n} of {} applications out of sync", diffs.len());
        }
    }
    note_retries(&client, global.verbose);
    let outcome = if out_of_sync {
        Outcome::Failed
    } else {
        Outcome::Ok
    };
    Ok(finish(&loaded, outcome))
}

/// `kubesync status [APP…]`: the Application objects' status in the cluster.
pub async fn status(
    global: &GlobalArgs,
    apps: &[String],
    cluster: &ClusterArgs,
) -> Result<Outcome, CliError> {
    let client = connect(cluster).await?;
    let list =
        sync::list_applications(&client)
            .await
            .map_err(|source| CliError::ReadApplications {
                cluster: client.describe(),
                source: Box::new(source),
            })?;
    let wanted: BTreeSet<&str> = apps.iter().map(String::as_str).collect();
    let rows: Vec<&Value> = list
        .iter()
        .filter(|a| {
            wanted.is_empty()
                || a.pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .map(|n| wanted.contains(n))
                    .unwrap_or(false)
        })
        .collect();
    for w in &wanted {
        if !rows
            .iter()
            .any(|a| a.pointer("/metadata/name").and_then(Value::as_str) == Some(*w))
        {
            return Err(CliError::NoApplication {
                name: w.to_string(),
                cluster: client.describe(),
            });
        }
    }
    let s = |v: &Value, p: &str| {
        v.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    match global.output {
        OutputFormat::Json => outln!(
            "{}",
            serde_json::to_string_pretty(&rows).unwrap_or_default()
        ),
        _ => {
            let mut t = Table::new(&[
                "NAME",
                "TIER",
                "NAMESPACE",
                "SYNC",
                "HEALTH",
                "REVISION",
                "MESSAGE",
            ]);
            for a in &rows {
                let st = ApplicationStatus::of(a);
                t.row(vec![
                    s(a, "/metadata/name"),
                    or_dash(s(a, "/spec/tier")),
                    or_dash(s(a, "/spec/destination/namespace")),
                    or_dash(sync_word(&st)),
                    or_dash(health_word(&st)),
                    or_dash(st.sync.map(|s| s.revision).unwrap_or_default()),
                    st.operation_state.map(|o| o.message).unwrap_or_default(),
                ]);
            }
            out!("{}", t.render());
        }
    }
    let all_good = rows.iter().all(|a| ApplicationStatus::of(a).is_good());
    Ok(if all_good {
        Outcome::Ok
    } else {
        Outcome::Failed
    })
}

/// Sync status and health of each app as recorded in the cluster, for
/// `kubesync tree`: `None` when no cluster is configured or it cannot be
/// reached (the tree is still shown, without live columns).
pub(super) async fn live_statuses(
    args: &ClusterArgs,
) -> Option<std::collections::HashMap<String, (String, String)>> {
    let configured = args.emulator
        || args.server.is_some()
        || args.kubeconfig.is_some()
        || std::env::var_os("KUBERNETES_SERVICE_HOST").is_some()
        || std::env::var_os("HOME")
            .map(|h| PathBuf::from(h).join(".kube/config").is_file())
            .unwrap_or(false);
    if !configured {
        return None;
    }
    let opts = ClusterOptions {
        kubeconfig: args.kubeconfig.clone(),
        context: args.context.clone(),
        server: args.server.clone(),
        emulator: args.emulator,
        ..ClusterOptions::default()
    };
    let client =
        match tokio::time::timeout(Duration::from_secs(10), ClusterClient::connect(opts)).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                errln!("warning: no live status: {e}");
                return None;
            }
            Err(_) => {
                errln!("warning: no live status: the cluster did not answer within 10s");
                return None;
            }
        };
    let list = match sync::list_applications(&client).await {
        Ok(l) => l,
        // No Application CRD: nothing synced here yet; every app shows as unknown.
        Err(crate::cluster::ClusterError::UnknownKind { .. }) => Vec::new(),
        Err(e) => {
            errln!("warning: no live status from {}: {e}", client.describe());
            return None;
        }
    };
    Some(
        list.iter()
            .map(|a| {
                let name = a.pointer("/metadata/name").and_then(Value::as_str);
                let st = ApplicationStatus::of(a);
                let words = (sync_word(&st), health_word(&st));
                (name.unwrap_or("").to_string(), words)
            })
            .collect(),
    )
}

/// `Synced` / `OutOfSync`, empty when never recorded.
fn sync_word(st: &ApplicationStatus) -> String {
    st.sync
        .as_ref()
        .map(|s| s.status.to_string())
        .unwrap_or_default()
}

/// `Healthy`, `Degraded`, …, empty when never recorded.
fn health_word(st: &ApplicationStatus) -> String {
    st.health
        .as_ref()
        .map(|h| h.status.to_string())
        .unwrap_or_default()
}
