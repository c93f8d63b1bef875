//! Prometheus metrics of the controller, through the official Rust client
//! (`prometheus-client`), served at `GET /metrics` in the OpenMetrics text
//! format.
//!
//! Owns: the metric families (names, help, units, buckets), their label
//! sets — typed: closed sets are enums, open ones (app, file, repository)
//! are strings made safe here (repository URLs lose their credentials) —
//! and the HTTP handler. Does not own: when things happen — the controller
//! calls the typed methods of [`Metrics`] as it runs, polls, syncs and
//! notifies; this module never reads the cluster.
//!
//! Names follow kube-applier (`run_latency_seconds` with `success` and
//! `run_type`, `file_apply_count` with `file` and `success`) and Argo CD
//! (per-app info gauge, sync counts, reconcile histogram), all under the
//! `kubesync_` prefix. The per-app info gauge (`kubesync_app_info`) always
//! holds exactly one series per app: when an app's sync, health, tier or
//! revision changes, the old label set is removed, so no stale series
//! lingers until a restart.
//!
//! kube-applier's `run_latency_seconds` was a Summary; `prometheus-client`
//! has none, and a histogram is the better choice anyway (it aggregates
//! across replicas and restarts), so it is a histogram here.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use parking_lot::Mutex;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

use crate::diff::SyncStatus;
use crate::health::Health;
use crate::model::Tier;
use crate::source::redact_url;
use crate::sync::{AppOutcome, AppReport};

#[cfg(test)]
mod tests;

/// The content type of [`Metrics::encode`]'s output: OpenMetrics 1.0
/// text, what `prometheus-client` encodes (`# EOF` terminated, a counter
/// family `x` with samples `x_total`, `# UNIT` lines). Prometheus asks for
/// it first in its `Accept` header and parses it natively.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The content type of [`Metrics::encode_text`]: the classic Prometheus
/// text format, for scrapers that do not ask for OpenMetrics (`curl`,
/// older agents, `promtool check metrics`) — as the Go client's `promhttp`
/// negotiates. The same samples, only the framing differs.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The metric name prefix.
pub const PREFIX: &str = "kubesync";

macro_rules! label_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vdoc])* $variant),+ }

        impl $name {
            /// Every value, for clean-up and tests.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The label value.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl EncodeLabelValue for $name {
            fn encode(&self, encoder: &mut LabelValueEncoder) -> std::fmt::Result {
                encoder.write_str(self.as_str())
            }
        }
    };
}

label_enum!(
    /// kube-applier's run types: a full run applies everything, a quick run
    /// only what changed since the last commit.
    RunType { Full => "full", Quick => "quick" }
);

label_enum!(
    /// How an app's sync ended (from [`AppOutcome`]).
    SyncResult {
        Succeeded => "Succeeded",
        Failed => "Failed",
        TimedOut => "TimedOut",
        Blocked => "Blocked",
        DryRun => "DryRun",
    }
);

label_enum!(
    /// Whether a git poll (fetch and revision resolution) worked.
    PollResult { Success => "success", Failure => "failure" }
);

label_enum!(
    /// Which forge sent an inbound git webhook.
    WebhookProvider {
        GitHub => "github",
        GitLab => "gitlab",
        Bitbucket => "bitbucket",
        Gitea => "gitea",
        Generic => "generic",
    }
);

label_enum!(
    /// What became of an inbound git webhook delivery.
    WebhookOutcome {
        /// Valid, and it triggered a poll of a repository kubesync follows.
        Accepted => "accepted",
        /// Valid, but for a repository or ref nothing follows.
        Ignored => "ignored",
        /// The signature or token did not verify.
        Unauthorized => "unauthorized",
        /// Not a payload kubesync understands.
        Invalid => "invalid",
    }
);

label_enum!(
    /// Where a completion signal goes.
    NotificationKind { Webhook => "webhook", S3 => "s3" }
);

label_enum!(
    /// Which trigger a completion signal answers (Argo CD's names).
    NotificationTrigger {
        Deployed => "on-deployed",
        SyncFailed => "on-sync-failed",
        HealthDegraded => "on-health-degraded",
    }
);

label_enum!(
    /// Whether a completion signal was delivered.
    NotificationOutcome { Sent => "sent", Failed => "failed" }
);

impl From<&AppOutcome> for SyncResult {
    fn from(o: &AppOutcome) -> Self {
        match o {
            AppOutcome::Succeeded => SyncResult::Succeeded,
            AppOutcome::Failed { .. } => SyncResult::Failed,
            AppOutcome::TimedOut { .. } => SyncResult::TimedOut,
            AppOutcome::Blocked { .. } => SyncResult::Blocked,
            AppOutcome::DryRun => SyncResult::DryRun,
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    success: bool,
    run_type: RunType,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FileLabels {
    file: String,
    success: bool,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AppInfoLabels {
    app: String,
    sync: String,
    health: String,
    tier: String,
    revision: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AppLabels {
    app: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SyncLabels {
    app: String,
    result: SyncResult,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RepoLabels {
    repository: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PollLabels {
    repository: String,
    result: PollResult,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WebhookLabels {
    provider: WebhookProvider,
    outcome: WebhookOutcome,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NotificationLabels {
    kind: NotificationKind,
    trigger: NotificationTrigger,
    outcome: NotificationOutcome,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn run_buckets() -> Histogram {
    // 0.1 s … ~27 min: a run of a large tree with slow rollouts.
    Histogram::new(exponential_buckets(0.1, 2.0, 15))
}

fn reconcile_buckets() -> Histogram {
    // 0.05 s … ~14 min per app (waits for health included).
    Histogram::new(exponential_buckets(0.05, 2.0, 15))
}

fn poll_buckets() -> Histogram {
    // 10 ms … ~41 s: a fetch of a large repository over a slow link.
    Histogram::new(exponential_buckets(0.01, 2.0, 13))
}

/// The application's facts the info gauge shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppInfo<'a> {
    pub app: &'a str,
    pub sync: SyncStatus,
    pub health: Health,
    pub tier: Tier,
    pub revision: &'a str,
}

/// Every metric kubesync exports. One per process, shared behind an `Arc`
/// (all methods take `&self`; updates are atomic, label maps are locked
/// briefly).
pub struct Metrics {
    registry: Registry,
    run_latency: HistogramFamily<RunLabels>,
    file_apply: Family<FileLabels, Counter>,
    app_info: Family<AppInfoLabels, Gauge>,
    /// The label set each app's info series has now, to remove it when it
    /// changes.
    app_info_now: Mutex<HashMap<String, AppInfoLabels>>,
    syncs: Family<SyncLabels, Counter>,
    reconcile: HistogramFamily<AppLabels>,
    polls: Family<PollLabels, Counter>,
    poll_duration: HistogramFamily<RepoLabels>,
    poll_last_success: Family<RepoLabels, Gauge<f64, AtomicU64>>,
    drift: Family<AppLabels, Counter>,
    leader: Gauge,
    webhooks: Family<WebhookLabels, Counter>,
    notifications: Family<NotificationLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// A fresh set of metrics, all registered (families without series
    /// encode as just their `# HELP`/`# TYPE` lines).
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix(PREFIX);
        let run_latency = HistogramFamily::<RunLabels>::new_with_constructor(run_buckets as _);
        registry.register_with_unit(
            "run_latency",
            "Duration of each run (kube-applier), by whether every app succeeded and by run type",
            Unit::Seconds,
            run_latency.clone(),
        );
        let file_apply = Family::<FileLabels, Counter>::default();
        registry.register(
            "file_apply_count",
            "Apply attempts per file of the repository (kube-applier), by result",
            file_apply.clone(),
        );
        let app_info = Family::<AppInfoLabels, Gauge>::default();
        registry.register(
            "app_info",
            "Per application: sync status, health, tier and applied revision (always 1)",
            app_info.clone(),
        );
        let syncs = Family::<SyncLabels, Counter>::default();
        registry.register(
            "app_sync",
            "Application syncs, by how they ended",
            syncs.clone(),
        );
        let reconcile = HistogramFamily::<AppLabels>::new_with_constructor(reconcile_buckets as _);
        registry.register_with_unit(
            "app_reconcile_duration",
            "Duration of each application's sync, health wait included",
            Unit::Seconds,
            reconcile.clone(),
        );
        let polls = Family::<PollLabels, Counter>::default();
        registry.register(
            "git_poll",
            "Git polls (fetch and revision resolution) per repository, by result",
            polls.clone(),
        );
        let poll_duration = HistogramFamily::<RepoLabels>::new_with_constructor(poll_buckets as _);
        registry.register_with_unit(
            "git_poll_duration",
            "Duration of each git poll per repository",
            Unit::Seconds,
            poll_duration.clone(),
        );
        let poll_last_success = Family::<RepoLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "git_poll_last_success_timestamp_seconds",
            "Unix time of the last successful git poll per repository",
            poll_last_success.clone(),
        );
        let drift = Family::<AppLabels, Counter>::default();
        registry.register(
            "drift_detected",
            "Times an application was found drifted from git (and repaired when self-heal is on)",
            drift.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this replica holds the leader lease, else 0",
            leader.clone(),
        );
        let webhooks = Family::<WebhookLabels, Counter>::default();
        registry.register(
            "webhook_deliveries",
            "Inbound git webhook deliveries, by provider and outcome",
            webhooks.clone(),
        );
        let notifications = Family::<NotificationLabels, Counter>::default();
        registry.register(
            "notifications",
            "Completion signals sent (webhook, S3 version file), by trigger and outcome",
            notifications.clone(),
        );
        Metrics {
            registry,
            run_latency,
            file_apply,
            app_info,
            app_info_now: Mutex::new(HashMap::new()),
            syncs,
            reconcile,
            polls,
            poll_duration,
            poll_last_success,
            drift,
            leader,
            webhooks,
            notifications,
        }
    }

    /// A whole run (every app of the tree) ended; `success` when no app
    /// failed.
    pub fn run_finished(&self, run_type: RunType, success: bool, took: Duration) {
        self.run_latency
            .get_or_create(&RunLabels { success, run_type })
            .observe(took.as_secs_f64());
    }

    /// An apply attempt of one file of the repository (a path relative to
    /// its root, as kube-applier labelled them).
    pub fn file_applied(&self, file: &str, success: bool) {
        self.file_apply
            .get_or_create(&FileLabels {
                file: file.to_string(),
                success,
            })
            .inc();
    }

    /// Sets an app's info series, removing the one it had when any label
    /// changed (no stale series).
    pub fn app_info(&self, info: AppInfo<'_>) {
        let labels = AppInfoLabels {
            app: info.app.to_string(),
            sync: info.sync.as_str().to_string(),
            health: info.health.as_str().to_string(),
            tier: info.tier.to_string(),
            revision: info.revision.to_string(),
        };
        let mut now = self.app_info_now.lock();
        if let Some(old) = now.get(info.app) {
            if *old == labels {
                return;
            }
            self.app_info.remove(old);
        }
        self.app_info.get_or_create(&labels).set(1);
        now.insert(labels.app.clone(), labels);
    }

    /// One app's sync ended: counts it by result, observes its duration
    /// and updates its info series.
    pub fn app_synced(&self, report: &AppReport) {
        let app = report.name.as_str();
        self.syncs
            .get_or_create(&SyncLabels {
                app: app.to_string(),
                result: SyncResult::from(&report.outcome),
            })
            .inc();
        self.reconcile
            .get_or_create(&AppLabels {
                app: app.to_string(),
            })
            .observe(report.duration.as_secs_f64());
        self.app_info(AppInfo {
            app,
            sync: report.sync,
            health: report.health.health,
            tier: report.tier,
            revision: &report.revision,
        });
    }

    /// An app left the tree: every per-app series of it goes.
    pub fn app_removed(&self, app: &str) {
        if let Some(old) = self.app_info_now.lock().remove(app) {
            self.app_info.remove(&old);
        }
        let app = app.to_string();
        for &result in SyncResult::ALL {
            self.syncs.remove(&SyncLabels {
                app: app.clone(),
                result,
            });
        }
        self.reconcile.remove(&AppLabels { app: app.clone() });
        self.drift.remove(&AppLabels { app });
    }

    /// A git poll of `repository` ended (the URL may carry credentials:
    /// they never reach a label).
    pub fn git_polled(&self, repository: &str, result: PollResult, took: Duration) {
        self.git_polled_at(repository, result, took, SystemTime::now());
    }

    /// [`Self::git_polled`] at a given wall-clock time (for tests).
    pub fn git_polled_at(
        &self,
        repository: &str,
        result: PollResult,
        took: Duration,
        at: SystemTime,
    ) {
        let repository = repository_label(repository);
        self.polls
            .get_or_create(&PollLabels {
                repository: repository.clone(),
                result,
            })
            .inc();
        let repo = RepoLabels { repository };
        self.poll_duration
            .get_or_create(&repo)
            .observe(took.as_secs_f64());
        if result == PollResult::Success {
            let secs = at
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0);
            self.poll_last_success.get_or_create(&repo).set(secs);
        }
    }

    /// An app was found drifted (OutOfSync at the revision it last
    /// synced, by someone else's edit).
    pub fn drift_detected(&self, app: &str) {
        self.drift
            .get_or_create(&AppLabels {
                app: app.to_string(),
            })
            .inc();
    }

    /// This replica gained or lost the leader lease.
    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    /// An inbound git webhook was handled.
    pub fn webhook_delivery(&self, provider: WebhookProvider, outcome: WebhookOutcome) {
        self.webhooks
            .get_or_create(&WebhookLabels { provider, outcome })
            .inc();
    }

    /// A completion signal was sent, or failed for good (after its
    /// retries).
    pub fn notification(
        &self,
        kind: NotificationKind,
        trigger: NotificationTrigger,
        outcome: NotificationOutcome,
    ) {
        self.notifications
            .get_or_create(&NotificationLabels {
                kind,
                trigger,
                outcome,
            })
            .inc();
    }

    /// The OpenMetrics text of every metric (see [`CONTENT_TYPE`]).
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(4096);
        // Writing to a String cannot fail; an encoder error would be a bug
        // in a label type, and is reported in the body rather than panicking.
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            out.clear();
            let _ = writeln!(out, "# encoding failed: {e}\n# EOF");
        }
        out
    }

    /// The same metrics in the classic Prometheus text format (see
    /// [`TEXT_CONTENT_TYPE`]).
    pub fn encode_text(&self) -> String {
        openmetrics_to_text(&self.encode())
    }

    /// The `/metrics` route, to `merge` into the controller's router.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/metrics", get(metrics_handler))
            .with_state(Arc::clone(self))
    }
}

/// `GET /metrics`, negotiated like the Go client's `promhttp`: OpenMetrics
/// ([`CONTENT_TYPE`]) when the `Accept` header names
/// `application/openmetrics-text` (Prometheus does), else the classic text
/// format ([`TEXT_CONTENT_TYPE`]). Usable in any router whose state gives an
/// `Arc<Metrics>` (`FromRef`), or through [`Metrics::router`].
pub async fn metrics_handler(
    State(metrics): State<Arc<Metrics>>,
    headers: axum::http::HeaderMap,
) -> Response {
    let openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    let (content_type, body) = if openmetrics {
        (CONTENT_TYPE, metrics.encode())
    } else {
        (TEXT_CONTENT_TYPE, metrics.encode_text())
    };
    (StatusCode::OK, [(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// OpenMetrics text as the classic Prometheus text format (0.0.4): a
/// counter family takes its samples' `_total` name, and the `# UNIT` and
/// `# EOF` lines (which 0.0.4 does not have) go. Samples are unchanged.
pub fn openmetrics_to_text(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    let mut help: Option<&str> = None;
    for line in openmetrics.lines() {
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        if line.starts_with("# HELP ") {
            // Held until the TYPE line says whether the name changes.
            if let Some(h) = help.replace(line) {
                out.push_str(h);
                out.push('\n');
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, ""));
            let total = kind == "counter" && !name.ends_with("_total");
            if let Some(h) = help.take() {
                match (
                    total,
                    h.strip_prefix("# HELP ").and_then(|r| r.split_once(' ')),
                ) {
                    (true, Some((hname, text))) if hname == name => {
                        let _ = writeln!(out, "# HELP {name}_total {text}");
                    }
                    _ => {
                        out.push_str(h);
                        out.push('\n');
                    }
                }
            }
            if total {
                let _ = writeln!(out, "# TYPE {name}_total counter");
            } else {
                out.push_str(line);
                out.push('\n');
            }
            continue;
        }
        if let Some(h) = help.take() {
            out.push_str(h);
            out.push('\n');
        }
        out.push_str(line);
        out.push('\n');
    }
    if let Some(h) = help {
        out.push_str(h);
        out.push('\n');
    }
    out
}

/// A repository URL as a label: without credentials (the same redaction
/// `render` and logs use), and without a query or fragment, which some
/// forges use for tokens.
pub fn repository_label(url: &str) -> String {
    let clean = redact_url(url);
    let end = clean.find(['?', '#']).unwrap_or(clean.len());
    clean[..end].to_string()
}
