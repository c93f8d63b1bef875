//! Completion signals for CI: a webhook (JSON event, HMAC-signed, retried)
//! and git-sync-operator's S3 version file — each sent once per (app,
//! trigger, target, revision), across restarts and leader changes.
//!
//! Owns: the settings ([`NotifyArgs`], flags with environment fallbacks),
//! the targets an app has ([`targets_for`]: the global webhook, the
//! per-app `kubesync.dev/notify-webhook` annotation — the caller picks the
//! one on the Application in git, else the one on the object in the
//! cluster — and the S3 bucket), the
//! pure decision of what is due ([`due`]) against the ledger kept in the
//! Application status (`status.notifications`, typed as
//! [`NotificationRecord`]), the ledger's update ([`record`], [`settle`]),
//! and the sending ([`Notifier::send`], in `webhook` and `s3`).
//! Does not own: when to check (the controller's `signals` calls this after
//! each app's sync, as leader, from a background queue; the one-shot
//! `bootstrap` and `sync` through the same path) nor writing the status
//! (it patches `status.notifications` with what [`record`]/[`settle`]
//! returned).
//!
//! Triggers are Argo CD's: `on-deployed` (Synced and Healthy at a
//! revision), `on-sync-failed` and `on-health-degraded`. `on-deployed` is
//! sent once per revision; a failure trigger once per episode — while the
//! condition lasts at that revision — and again if it comes back after the
//! app recovered. The S3 version file answers `on-deployed` only, as in
//! git-sync-operator. A delivery that fails (after its retries) is recorded
//! as failed with its error, retried on the next checks up to
//! [`MAX_ROUNDS`] rounds, and never fails the sync.

mod s3;
mod webhook;

#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;
use sha2::{Digest, Sha256};

pub use s3::{S3Config, S3ErrorKind};
pub use webhook::{sign, verify, WebhookPolicy, SIGNATURE_HEADER};

use crate::diff::SyncStatus;
use crate::health::Health;
pub use crate::sync::status::{DeliveryOutcome, NotificationRecord, Trigger};
use crate::sync::{AppOutcome, AppReport};

/// The annotation on an Application naming its own webhook URL.
pub const WEBHOOK_ANNOTATION: &str = crate::model::NOTIFY_WEBHOOK_ANNOTATION;

/// Delivery rounds (each with its own retries) before a failing signal is
/// given up for that revision; the status keeps the error.
pub const MAX_ROUNDS: u32 = 3;

/// The settings of completion signals, for the controller to `#[command(flatten)]`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct NotifyArgs {
    /// POST a JSON event to this URL when an app is deployed (Synced and
    /// Healthy at a revision), its sync fails, or its health degrades.
    /// Apps can add their own with the `kubesync.dev/notify-webhook`
    /// annotation.
    #[arg(
        id = "notify_webhook",
        long = "notify-webhook",
        env = "KUBESYNC_NOTIFY_WEBHOOK",
        value_name = "URL"
    )]
    pub webhook: Option<String>,

    /// File holding the secret that signs webhook bodies (HMAC-SHA256, in
    /// the `X-Kubesync-Signature: sha256=<hex>` header).
    #[arg(
        id = "notify_webhook_secret_file",
        long = "notify-webhook-secret-file",
        env = "KUBESYNC_NOTIFY_WEBHOOK_SECRET_FILE",
        value_name = "PATH"
    )]
    pub webhook_secret_file: Option<PathBuf>,

    /// Write git-sync-operator's version file,
    /// `CLUSTER_NAME/NAMESPACE/APP/REVISION`, to this bucket when an app is
    /// deployed; its body is the UTC time of completion.
    #[arg(long = "s3-bucket", env = "S3_BUCKET", value_name = "BUCKET")]
    pub s3_bucket: Option<String>,

    /// The cluster's name: the first part of the version file's key. Not a
    /// flag of its own: the command fills it from the global
    /// `--cluster-name` (`CLUSTER_NAME`), the one the ApplicationSet
    /// generators read, so one cluster has one name.
    #[arg(skip)]
    pub cluster_name: Option<String>,

    /// S3 endpoint (default `https://s3.REGION.amazonaws.com`; any
    /// S3-compatible store, addressed path-style).
    #[arg(
        long = "aws-endpoint-url",
        env = "AWS_ENDPOINT_URL",
        value_name = "URL"
    )]
    pub aws_endpoint_url: Option<String>,

    /// S3 region.
    #[arg(
        long = "aws-region",
        env = "AWS_REGION",
        value_name = "REGION",
        default_value = "us-east-1"
    )]
    pub aws_region: String,

    /// S3 access key id (prefer the environment, from a Secret).
    #[arg(
        long = "aws-access-key-id",
        env = "AWS_ACCESS_KEY_ID",
        value_name = "ID",
        hide_env_values = true
    )]
    pub aws_access_key_id: Option<String>,

    /// S3 secret access key (prefer the environment, from a Secret).
    #[arg(
        long = "aws-secret-access-key",
        env = "AWS_SECRET_ACCESS_KEY",
        value_name = "KEY",
        hide_env_values = true
    )]
    pub aws_secret_access_key: Option<String>,
}

/// A configuration mistake in the signal settings (a usage error, exit 2).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("--notify-webhook: {0:?} is not an http(s) URL")]
    WebhookUrl(String),
    #[error("--notify-webhook-secret-file {path}: {message}")]
    SecretFile { path: String, message: String },
    #[error("--s3-bucket is set but {0} is not")]
    S3Missing(&'static str),
    #[error("--aws-endpoint-url: {0:?} is not an http(s) URL")]
    EndpointUrl(String),
}

/// The settings, checked.
#[derive(Clone, Default)]
pub struct NotifyConfig {
    pub webhook: Option<String>,
    pub webhook_secret: Option<Vec<u8>>,
    pub s3: Option<S3Config>,
    pub policy: WebhookPolicy,
}

impl std::fmt::Debug for NotifyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotifyConfig")
            .field("webhook", &self.webhook.as_deref().map(target_id_of_url))
            .field(
                "webhook_secret",
                &self.webhook_secret.as_ref().map(|_| "***"),
            )
            .field("s3", &self.s3)
            .finish()
    }
}

fn http_url(s: &str) -> bool {
    url::Url::parse(s).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
}

impl NotifyArgs {
    /// Checks the settings and reads the secret file.
    pub fn config(&self) -> Result<NotifyConfig, ConfigError> {
        let webhook = match &self.webhook {
            Some(u) if !http_url(u) => {
                return Err(ConfigError::WebhookUrl(target_id_of_url(u)));
            }
            other => other.clone(),
        };
        let webhook_secret = match &self.webhook_secret_file {
            None => None,
            Some(p) => {
                let bytes = std::fs::read(p).map_err(|e| ConfigError::SecretFile {
                    path: p.display().to_string(),
                    message: e.to_string(),
                })?;
                // A trailing newline is the editor's, not the secret's.
                let trimmed = bytes.trim_ascii_end().to_vec();
                if trimmed.is_empty() {
                    return Err(ConfigError::SecretFile {
                        path: p.display().to_string(),
                        message: "the file is empty".into(),
                    });
                }
                Some(trimmed)
            }
        };
        let s3 = match &self.s3_bucket {
            None => None,
            Some(bucket) => {
                let cluster = self
                    .cluster_name
                    .clone()
                    .ok_or(ConfigError::S3Missing("CLUSTER_NAME (--cluster-name)"))?;
                let key_id = self
                    .aws_access_key_id
                    .clone()
                    .ok_or(ConfigError::S3Missing("AWS_ACCESS_KEY_ID"))?;
                let secret = self
                    .aws_secret_access_key
                    .clone()
                    .ok_or(ConfigError::S3Missing("AWS_SECRET_ACCESS_KEY"))?;
                let endpoint = match &self.aws_endpoint_url {
                    Some(e) if !http_url(e) => return Err(ConfigError::EndpointUrl(e.clone())),
                    Some(e) => e.trim_end_matches('/').to_string(),
                    None => format!("https://s3.{}.amazonaws.com", self.aws_region),
                };
                Some(S3Config {
                    bucket: bucket.clone(),
                    cluster_name: cluster,
                    endpoint,
                    region: self.aws_region.clone(),
                    access_key_id: key_id,
                    secret_access_key: secret,
                })
            }
        };
        Ok(NotifyConfig {
            webhook,
            webhook_secret,
            s3,
            policy: WebhookPolicy::default(),
        })
    }
}

/// Where a signal goes.
#[derive(Clone, PartialEq, Eq)]
pub enum Target {
    /// A webhook URL (which may hold a token: never shown; see [`Target::id`]).
    Webhook { url: String },
    /// The S3 version file.
    S3,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.id())
    }
}

impl Target {
    /// An identifier safe to show and to store: the webhook's host and a
    /// hash of its URL (paths and queries often hold tokens), or `s3`.
    pub fn id(&self) -> String {
        match self {
            Target::Webhook { url } => target_id_of_url(url),
            Target::S3 => "s3".to_string(),
        }
    }

    /// Whether this target answers `trigger` (the version file only means
    /// "deployed").
    pub fn answers(&self, trigger: Trigger) -> bool {
        match self {
            Target::Webhook { .. } => true,
            Target::S3 => trigger == Trigger::Deployed,
        }
    }
}

/// `webhook:HOST#HASH`: which webhook, without what may be secret in it.
fn target_id_of_url(url: &str) -> String {
    let host = url::Url::parse(url)
        .ok()
        .and_then(|u| {
            u.host_str().map(|h| match u.port() {
                Some(p) => format!("{h}:{p}"),
                None => h.to_string(),
            })
        })
        .unwrap_or_else(|| "invalid-url".into());
    let hash = hex::encode(Sha256::digest(url.as_bytes()));
    format!("webhook:{host}#{}", &hash[..8])
}

/// The targets of one app: the global webhook, its own annotation's
/// webhook (an invalid URL there is ignored, and logged by the caller),
/// and the S3 version file when configured.
pub fn targets_for(config: &NotifyConfig, annotation: Option<&str>) -> Vec<Target> {
    let mut out = Vec::new();
    if let Some(url) = &config.webhook {
        out.push(Target::Webhook { url: url.clone() });
    }
    if let Some(url) = annotation.map(str::trim).filter(|u| http_url(u)) {
        let t = Target::Webhook {
            url: url.to_string(),
        };
        if !out.contains(&t) {
            out.push(t);
        }
    }
    if config.s3.is_some() {
        out.push(Target::S3);
    }
    out
}

/// The per-app webhook annotation of an Application object, if any.
pub fn webhook_annotation(app_object: &serde_json::Value) -> Option<&str> {
    app_object
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(WEBHOOK_ANNOTATION))
        .and_then(serde_json::Value::as_str)
}

/// One object of the app, as the webhook reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectSummary {
    pub group: String,
    pub version: String,
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
    /// What the sync did to it (`created`, `configured`, `unchanged`, …).
    pub action: String,
}

/// How the app's last sync ended, as far as signals care.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncResult {
    Succeeded,
    /// Failed or timed out, with the message.
    Failed(String),
    /// Blocked or a dry run: no signal.
    NotRun,
}

/// What the signals know of an app after its sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppState {
    pub app: String,
    /// The app's destination namespace (the version file's second part).
    pub namespace: String,
    pub revision: String,
    pub sync: SyncStatus,
    pub health: Health,
    pub health_message: String,
    pub result: SyncResult,
    pub objects: Vec<ObjectSummary>,
    /// RFC 3339 times of the sync's start and end.
    pub started_at: String,
    pub finished_at: String,
}

impl AppState {
    /// From a sync's report; `finished_at` is when it ended (the version
    /// file's body), `started_at` that minus its duration.
    pub fn from_report(report: &AppReport, finished_at: chrono::DateTime<chrono::Utc>) -> Self {
        let started = finished_at - chrono::Duration::from_std(report.duration).unwrap_or_default();
        let ts =
            |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        AppState {
            app: report.name.to_string(),
            namespace: report.namespace.clone().unwrap_or_default(),
            revision: report.revision.clone(),
            sync: report.sync,
            health: report.health.health,
            health_message: report.health.message.clone(),
            result: match &report.outcome {
                AppOutcome::Succeeded => SyncResult::Succeeded,
                AppOutcome::Failed { .. } | AppOutcome::TimedOut { .. } => {
                    SyncResult::Failed(report.message())
                }
                AppOutcome::Blocked { .. } | AppOutcome::DryRun => SyncResult::NotRun,
            },
            objects: report
                .changes
                .iter()
                .map(|c| ObjectSummary {
                    group: c.object.group.clone(),
                    version: c.object.version.clone(),
                    kind: c.object.kind.clone(),
                    namespace: c.object.namespace.clone(),
                    name: c.object.name.clone(),
                    action: c.action.to_string(),
                })
                .collect(),
            started_at: ts(started),
            finished_at: ts(finished_at),
        }
    }

    /// Whether `trigger`'s condition holds now. A revision that is not a
    /// commit (`worktree`, `-`) is not one CI can wait for: no signal.
    pub fn fires(&self, trigger: Trigger) -> bool {
        if self.revision.is_empty() || self.revision == "-" || self.revision == "worktree" {
            return false;
        }
        match trigger {
            Trigger::Deployed => {
                self.result == SyncResult::Succeeded
                    && self.sync == SyncStatus::Synced
                    && self.health == Health::Healthy
            }
            Trigger::SyncFailed => matches!(self.result, SyncResult::Failed(_)),
            Trigger::HealthDegraded => {
                self.result != SyncResult::NotRun && self.health == Health::Degraded
            }
        }
    }
}

/// A signal to send now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signal {
    pub trigger: Trigger,
    pub target: Target,
    pub revision: String,
}

/// What is due: for each trigger whose condition holds and each target
/// answering it, unless the ledger says it was sent at this revision (or
/// failed [`MAX_ROUNDS`] times). Pure.
pub fn due(state: &AppState, targets: &[Target], sent: &[NotificationRecord]) -> Vec<Signal> {
    let mut out = Vec::new();
    for trigger in Trigger::ALL {
        if !state.fires(trigger) {
            continue;
        }
        for target in targets.iter().filter(|t| t.answers(trigger)) {
            let id = target.id();
            let done = sent.iter().any(|r| {
                r.trigger == trigger
                    && r.target == id
                    && r.revision == state.revision
                    && (r.outcome == DeliveryOutcome::Sent || r.attempts >= MAX_ROUNDS)
            });
            if !done {
                out.push(Signal {
                    trigger,
                    target: target.clone(),
                    revision: state.revision.clone(),
                });
            }
        }
    }
    out
}

/// The ledger after a delivery of `signal`: the entry for its (trigger,
/// target) now says this revision, sent or failed (with the error and the
/// rounds tried). One entry per (trigger, target): the ledger stays small.
pub fn record(
    sent: &[NotificationRecord],
    signal: &Signal,
    result: &Result<(), NotifyError>,
    at: &str,
) -> Vec<NotificationRecord> {
    let id = signal.target.id();
    let same = |r: &NotificationRecord| r.trigger == signal.trigger && r.target == id;
    let attempts = sent
        .iter()
        .find(|r| same(r) && r.revision == signal.revision)
        .map_or(1, |r| r.attempts.saturating_add(1));
    let mut out: Vec<NotificationRecord> = sent.iter().filter(|r| !same(r)).cloned().collect();
    out.push(NotificationRecord {
        trigger: signal.trigger,
        target: id,
        revision: signal.revision.clone(),
        at: at.to_string(),
        outcome: if result.is_ok() {
            DeliveryOutcome::Sent
        } else {
            DeliveryOutcome::Failed
        },
        attempts,
        error: result
            .as_ref()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default(),
    });
    out.sort_by(|a, b| (a.trigger.as_str(), &a.target).cmp(&(b.trigger.as_str(), &b.target)));
    out
}

/// The ledger once a failure episode is over: entries of failure triggers
/// whose condition no longer holds are dropped, so the next failure —
/// even at the same revision — is signalled again. Unchanged (so no status
/// write) when nothing ended. Pure.
pub fn settle(state: &AppState, sent: &[NotificationRecord]) -> Vec<NotificationRecord> {
    if state.result == SyncResult::NotRun {
        return sent.to_vec();
    }
    sent.iter()
        .filter(|r| r.trigger == Trigger::Deployed || state.fires(r.trigger))
        .cloned()
        .collect()
}

/// Why a signal was not delivered. Messages name the app and the target
/// by its safe id; never a URL's path or query, a key or a signature.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum NotifyError {
    #[error("webhook {target} for application \"{app}\": {message} (after {attempts} attempt(s))")]
    Webhook {
        app: String,
        target: String,
        /// The last HTTP status, when there was a response.
        status: Option<u16>,
        attempts: u32,
        message: String,
    },
    #[error("S3 version file s3://{bucket}/{key} for application \"{app}\": {message}")]
    S3 {
        app: String,
        bucket: String,
        key: String,
        kind: S3ErrorKind,
        message: String,
    },
    #[error("{0} for application \"{1}\" is not configured")]
    NotConfigured(&'static str, String),
}

/// The webhook's JSON event: Flux's notification `Event` fields
/// (`involvedObject`, `severity`, `timestamp`, `message`, `reason`,
/// `metadata`, `reportingController`) plus kubesync's own (`app`,
/// `namespace`, `revision`, `sync`, `health`, `objects`, times).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookEvent {
    pub involved_object: InvolvedObject,
    /// `info` or `error`, as Flux.
    pub severity: &'static str,
    pub timestamp: String,
    pub message: String,
    /// `Deployed`, `SyncFailed` or `HealthDegraded`.
    pub reason: &'static str,
    pub metadata: std::collections::BTreeMap<String, String>,
    pub reporting_controller: &'static str,
    /// The trigger: `on-deployed`, `on-sync-failed`, `on-health-degraded`.
    pub trigger: &'static str,
    pub app: String,
    pub namespace: String,
    pub revision: String,
    pub sync: &'static str,
    pub health: &'static str,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub health_message: String,
    pub objects: Vec<ObjectSummary>,
    pub started_at: String,
    pub finished_at: String,
    /// Stable for this (app, trigger, revision, target): the same on a
    /// retry or after a restart, so receivers can drop duplicates.
    pub delivery_id: String,
}

/// The Application object the event is about.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InvolvedObject {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub namespace: &'static str,
    pub name: String,
}

/// The delivery id of a signal for an app (see [`WebhookEvent::delivery_id`]).
pub fn delivery_id(app: &str, signal: &Signal) -> String {
    let mut h = Sha256::new();
    for part in [
        app,
        signal.trigger.as_str(),
        &signal.revision,
        &signal.target.id(),
    ] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    hex::encode(&h.finalize()[..16])
}

/// The JSON event of `signal` for `state`.
pub fn webhook_event(state: &AppState, signal: &Signal, cluster: Option<&str>) -> WebhookEvent {
    let short = state.revision.get(..7).unwrap_or(&state.revision);
    let (severity, reason, message) = match signal.trigger {
        Trigger::Deployed => (
            "info",
            "Deployed",
            format!(
                "{} deployed revision {short}: Synced and Healthy",
                state.app
            ),
        ),
        Trigger::SyncFailed => (
            "error",
            "SyncFailed",
            format!(
                "{} failed to sync revision {short}: {}",
                state.app,
                match &state.result {
                    SyncResult::Failed(m) => m.as_str(),
                    _ => "",
                }
            ),
        ),
        Trigger::HealthDegraded => (
            "error",
            "HealthDegraded",
            format!(
                "{} is Degraded at revision {short}: {}",
                state.app, state.health_message
            ),
        ),
    };
    let mut metadata = std::collections::BTreeMap::new();
    metadata.insert("revision".to_string(), state.revision.clone());
    metadata.insert("trigger".to_string(), signal.trigger.as_str().to_string());
    if let Some(c) = cluster {
        metadata.insert("cluster".to_string(), c.to_string());
    }
    WebhookEvent {
        involved_object: InvolvedObject {
            api_version: crate::model::KUBESYNC_API_VERSION,
            kind: "Application",
            namespace: crate::sync::status::STATUS_NAMESPACE,
            name: state.app.clone(),
        },
        severity,
        timestamp: state.finished_at.clone(),
        message,
        reason,
        metadata,
        reporting_controller: "kubesync",
        trigger: signal.trigger.as_str(),
        app: state.app.clone(),
        namespace: state.namespace.clone(),
        revision: state.revision.clone(),
        sync: state.sync.as_str(),
        health: state.health.as_str(),
        health_message: state.health_message.clone(),
        objects: state.objects.clone(),
        started_at: state.started_at.clone(),
        finished_at: state.finished_at.clone(),
        delivery_id: delivery_id(&state.app, signal),
    }
}

/// Sends signals: one per process, shared (the HTTP client pools
/// connections).
pub struct Notifier {
    config: NotifyConfig,
    client: HttpClient,
}

pub(crate) type HttpClient = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    http_body_util::Full<bytes::Bytes>,
>;

fn http_client() -> HttpClient {
    use hyper_rustls::ConfigBuilderExt;
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(Duration::from_secs(5)));
    // ring supports the default protocol versions (TLS 1.2 and 1.3), so
    // this cannot fail.
    let builder = || {
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(rustls::DEFAULT_VERSIONS)
        .expect("ring supports TLS 1.2 and 1.3")
    };
    // Without the system's roots (a scratch image) https targets fail with
    // a certificate error naming the target; http ones still work.
    let tls = match builder().with_native_roots() {
        Ok(b) => b.with_no_client_auth(),
        Err(e) => {
            tracing::warn!(
                "no system CA certificates ({e}): https webhooks and S3 endpoints will fail"
            );
            builder()
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth()
        }
    };
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build(connector)
}

impl Notifier {
    pub fn new(config: NotifyConfig) -> Self {
        Notifier {
            config,
            client: http_client(),
        }
    }

    pub fn config(&self) -> &NotifyConfig {
        &self.config
    }

    /// Sends one signal (with the webhook's retries). The error is a value
    /// for the status; it never fails the sync.
    pub async fn send(&self, state: &AppState, signal: &Signal) -> Result<(), NotifyError> {
        match &signal.target {
            Target::Webhook { url } => {
                let event = webhook_event(
                    state,
                    signal,
                    self.config.s3.as_ref().map(|s| s.cluster_name.as_str()),
                );
                webhook::deliver(
                    &self.client,
                    url,
                    &signal.target.id(),
                    &event,
                    self.config.webhook_secret.as_deref(),
                    &self.config.policy,
                )
                .await
            }
            Target::S3 => match &self.config.s3 {
                Some(s3) => s3::put_version_file(&self.client, s3, state).await,
                None => Err(NotifyError::NotConfigured(
                    "the S3 version file",
                    state.app.clone(),
                )),
            },
        }
    }

    /// Sends what is due and returns the ledger to store (unchanged when
    /// nothing was due and no episode ended: then no status write is
    /// needed), with each delivery's result for metrics and logs.
    pub async fn notify(
        &self,
        state: &AppState,
        targets: &[Target],
        sent: &[NotificationRecord],
    ) -> (
        Vec<NotificationRecord>,
        Vec<(Signal, Result<(), NotifyError>)>,
    ) {
        let mut ledger = settle(state, sent);
        let mut results = Vec::new();
        for signal in due(state, targets, &ledger) {
            let result = self.send(state, &signal).await;
            let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            ledger = record(&ledger, &signal, &result, &now);
            results.push((signal, result));
        }
        (ledger, results)
    }
}

impl From<Trigger> for crate::metrics::NotificationTrigger {
    fn from(t: Trigger) -> Self {
        match t {
            Trigger::Deployed => crate::metrics::NotificationTrigger::Deployed,
            Trigger::SyncFailed => crate::metrics::NotificationTrigger::SyncFailed,
            Trigger::HealthDegraded => crate::metrics::NotificationTrigger::HealthDegraded,
        }
    }
}

impl From<&Target> for crate::metrics::NotificationKind {
    fn from(t: &Target) -> Self {
        match t {
            Target::Webhook { .. } => crate::metrics::NotificationKind::Webhook,
            Target::S3 => crate::metrics::NotificationKind::S3,
        }
    }
}
