//! Kubernetes Events on kubesync's Application objects (in
//! [`STATUS_NAMESPACE`]): sync started, succeeded, failed, drift repaired,
//! health degraded — what `kubectl describe application NAME -n
//! kubesync-system` and `kubectl get events` show.
//!
//! Three parts, two of them pure:
//! - [`started`] and [`after_sync`] decide *what happened* from the
//!   previous Application status and the sync's report. A run in which
//!   nothing happened (same revision, already Synced, nothing written, no
//!   health change) yields no event, so a steady state writes none.
//! - [`Correlator`] decides *whether to write*, as client-go's event
//!   correlator does: an event equal to one written within the last
//!   [`CorrelatorConfig::window`] (same app, type, reason and message)
//!   bumps that event's `count` and `lastTimestamp` instead of creating a
//!   new one, and a per-app token bucket (client-go's spam filter: burst
//!   25, one more every 5 minutes) drops writes beyond it — the count still
//!   grows, so the next written bump carries the true number.
//! - [`EventRecorder`] does the IO (create, or merge-patch the count).
//!
//! The API is core `v1` Event, not `events.k8s.io/v1`: both are views of
//! the same objects on a real API server, core v1 is what `kubectl
//! describe` searches (by `involvedObject`), its `count`/`firstTimestamp`/
//! `lastTimestamp` are exactly the correlator's aggregation, and the
//! emulator serves it. Event failures are logged, never returned to the
//! sync: an event is a courtesy, not part of the job.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, Patch, PatchParams, PostParams};
use parking_lot::Mutex;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::diff::SyncStatus;
use crate::health::Health;
use crate::model::KUBESYNC_API_VERSION;
use crate::sync::status::{ApplicationStatus, STATUS_NAMESPACE};
use crate::sync::{AppOutcome, AppReport, Change};

#[cfg(test)]
mod tests;

/// The `source.component` / `reportingComponent` of kubesync's events.
pub const COMPONENT: &str = "kubesync";

/// Kubernetes' two event types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// What happened to an app: the event's `reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    SyncStarted,
    SyncSucceeded,
    SyncFailed,
    DriftRepaired,
    HealthDegraded,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::SyncStarted => "SyncStarted",
            Reason::SyncSucceeded => "SyncSucceeded",
            Reason::SyncFailed => "SyncFailed",
            Reason::DriftRepaired => "DriftRepaired",
            Reason::HealthDegraded => "HealthDegraded",
        }
    }

    /// Failures and degradation are warnings; the rest is normal.
    pub fn event_type(self) -> EventType {
        match self {
            Reason::SyncFailed | Reason::HealthDegraded => EventType::Warning,
            _ => EventType::Normal,
        }
    }
}

/// One event about one app.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AppEvent {
    pub app: String,
    pub reason: Reason,
    pub message: String,
}

impl AppEvent {
    fn new(app: &str, reason: Reason, message: String) -> Self {
        // The API server refuses messages over 1 KiB in events.k8s.io;
        // keep ours short whatever the failure says.
        let message = truncate(&message, 1000);
        AppEvent {
            app: app.to_string(),
            reason,
            message,
        }
    }

    pub fn event_type(&self) -> EventType {
        self.reason.event_type()
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

fn short(rev: &str) -> &str {
    rev.get(..7).unwrap_or(rev)
}

/// Whether a sync of `app` at `revision` is news: a revision it has not
/// applied, or an app not Synced or whose last operation did not succeed.
/// `None` when this run only re-checks a converged app.
pub fn started(
    app: &str,
    revision: &str,
    previous: Option<&ApplicationStatus>,
) -> Option<AppEvent> {
    let news = match previous {
        None => true,
        Some(p) => {
            let same_rev = p.sync.as_ref().is_some_and(|s| s.revision == revision);
            let synced = p.sync.as_ref().map(|s| s.status) == Some(SyncStatus::Synced);
            let ok = p
                .operation_state
                .as_ref()
                .is_none_or(|o| o.phase == AppOutcome::Succeeded.label());
            !(same_rev && synced && ok)
        }
    };
    news.then(|| {
        AppEvent::new(
            app,
            Reason::SyncStarted,
            format!("syncing to revision {}", short(revision)),
        )
    })
}

/// The events of a finished sync, given the app's status before it.
/// Empty when nothing happened: same revision, nothing written, health
/// not newly degraded.
pub fn after_sync(report: &AppReport, previous: Option<&ApplicationStatus>) -> Vec<AppEvent> {
    let app = report.name.as_str();
    let rev = short(&report.revision);
    let mut out = Vec::new();
    let wrote = report.changes.iter().any(Change::wrote);
    let announced = started(app, &report.revision, previous).is_some();
    match &report.outcome {
        AppOutcome::Failed { .. } | AppOutcome::TimedOut { .. } => out.push(AppEvent::new(
            app,
            Reason::SyncFailed,
            format!("sync to revision {rev} failed: {}", report.message()),
        )),
        AppOutcome::Succeeded if wrote && !announced => out.push(AppEvent::new(
            app,
            Reason::DriftRepaired,
            format!("drift from revision {rev} repaired: {}", report.message()),
        )),
        AppOutcome::Succeeded if wrote || announced => out.push(AppEvent::new(
            app,
            Reason::SyncSucceeded,
            format!("synced to revision {rev}: {}", report.message()),
        )),
        _ => {}
    }
    let was_degraded = previous
        .and_then(|p| p.health.as_ref())
        .is_some_and(|h| h.status == Health::Degraded);
    if report.health.health == Health::Degraded && !was_degraded {
        let why = if report.health.message.is_empty() {
            String::new()
        } else {
            format!(": {}", report.health.message)
        };
        out.push(AppEvent::new(
            app,
            Reason::HealthDegraded,
            format!("health went Degraded at revision {rev}{why}"),
        ));
    }
    out
}

/// The correlator's knobs (client-go's defaults).
#[derive(Debug, Clone)]
pub struct CorrelatorConfig {
    /// An equal event within this long of the last one is a repeat.
    pub window: Duration,
    /// Writes an app may make at once (token bucket size).
    pub burst: u32,
    /// One more write allowed per this long.
    pub refill: Duration,
    /// Events remembered (the oldest are forgotten first).
    pub max_entries: usize,
}

impl Default for CorrelatorConfig {
    fn default() -> Self {
        CorrelatorConfig {
            window: Duration::from_secs(600),
            burst: 25,
            refill: Duration::from_secs(300),
            max_entries: 4096,
        }
    }
}

/// What to do with an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Write a new Event object.
    Create(Occurrence),
    /// An equal event was written recently: raise its count.
    Bump(Occurrence),
    /// Over the app's rate: write nothing (the count is remembered).
    Drop,
}

/// The Event object's aggregate state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Occurrence {
    pub name: String,
    pub count: i32,
    pub first: DateTime<Utc>,
    pub last: DateTime<Utc>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: DateTime<Utc>,
}

/// client-go's event correlator, as a pure state machine over injected
/// time (see the module doc).
#[derive(Debug, Default)]
pub struct Correlator {
    config: CorrelatorConfig,
    seen: HashMap<AppEvent, Occurrence>,
    buckets: HashMap<String, Bucket>,
}

impl Correlator {
    pub fn new(config: CorrelatorConfig) -> Self {
        Correlator {
            config,
            ..Default::default()
        }
    }

    /// Decides what to do with `event` at `now`, and remembers it.
    pub fn observe(&mut self, event: &AppEvent, now: DateTime<Utc>) -> Decision {
        let window = chrono::Duration::from_std(self.config.window).unwrap_or_default();
        let occurrence = match self.seen.get_mut(event) {
            Some(o) if now - o.last < window => {
                o.count = o.count.saturating_add(1);
                o.last = now;
                Decision::Bump(o.clone())
            }
            _ => {
                let o = Occurrence {
                    name: event_name(event, now),
                    count: 1,
                    first: now,
                    last: now,
                };
                self.forget_oldest();
                self.seen.insert(event.clone(), o.clone());
                Decision::Create(o)
            }
        };
        if self.take_token(&event.app, now) {
            occurrence
        } else {
            Decision::Drop
        }
    }

    /// The event's object is gone (expired after the API server's event
    /// TTL, or deleted): it starts over as a new object, count 1.
    pub fn restart(&mut self, event: &AppEvent, now: DateTime<Utc>) -> Occurrence {
        let o = Occurrence {
            name: event_name(event, now),
            count: 1,
            first: now,
            last: now,
        };
        self.seen.insert(event.clone(), o.clone());
        o
    }

    fn forget_oldest(&mut self) {
        if self.seen.len() < self.config.max_entries {
            return;
        }
        if let Some(oldest) = self
            .seen
            .iter()
            .min_by_key(|(_, o)| o.last)
            .map(|(k, _)| k.clone())
        {
            self.seen.remove(&oldest);
        }
    }

    fn take_token(&mut self, app: &str, now: DateTime<Utc>) -> bool {
        let burst = f64::from(self.config.burst);
        let refill = self.config.refill.as_secs_f64().max(f64::MIN_POSITIVE);
        let b = self.buckets.entry(app.to_string()).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let elapsed = (now - b.at).to_std().unwrap_or_default().as_secs_f64();
        b.tokens = (b.tokens + elapsed / refill).min(burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// `<app>.<hash>`: unique per event and first time, stable for its bumps.
fn event_name(event: &AppEvent, first: DateTime<Utc>) -> String {
    let mut h = Sha256::new();
    h.update(event.app.as_bytes());
    h.update([0]);
    h.update(event.reason.as_str().as_bytes());
    h.update([0]);
    h.update(event.message.as_bytes());
    h.update(
        first
            .timestamp_nanos_opt()
            .unwrap_or_default()
            .to_le_bytes(),
    );
    let digest = hex::encode(h.finalize());
    // Names are at most 253 characters; app names are at most 63.
    format!("{}.{}", event.app, &digest[..16])
}

/// The Event object for `event` at its aggregate state.
pub fn event_object(
    event: &AppEvent,
    o: &Occurrence,
    uid: Option<&str>,
    instance: &str,
) -> serde_json::Value {
    let ts = |t: &DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut involved = json!({
        "apiVersion": KUBESYNC_API_VERSION,
        "kind": "Application",
        "namespace": STATUS_NAMESPACE,
        "name": event.app,
    });
    if let Some(uid) = uid {
        involved["uid"] = json!(uid);
    }
    json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": o.name, "namespace": STATUS_NAMESPACE},
        "involvedObject": involved,
        "reason": event.reason.as_str(),
        "message": event.message,
        "type": event.event_type().as_str(),
        "count": o.count,
        "firstTimestamp": ts(&o.first),
        "lastTimestamp": ts(&o.last),
        "source": {"component": COMPONENT, "host": instance},
        "reportingComponent": COMPONENT,
        "reportingInstance": instance,
    })
}

/// Writes events through the API server, correlated and rate-limited.
pub struct EventRecorder {
    client: kube::Client,
    instance: String,
    state: Mutex<Correlator>,
    uids: Mutex<HashMap<String, String>>,
}

impl EventRecorder {
    /// `instance` names this replica (the pod name), shown as the event's
    /// `reportingInstance` and `source.host`.
    pub fn new(client: kube::Client, instance: impl Into<String>) -> Self {
        Self::with_config(client, instance, CorrelatorConfig::default())
    }

    pub fn with_config(
        client: kube::Client,
        instance: impl Into<String>,
        config: CorrelatorConfig,
    ) -> Self {
        EventRecorder {
            client,
            instance: instance.into(),
            state: Mutex::new(Correlator::new(config)),
            uids: Mutex::new(HashMap::new()),
        }
    }

    /// Publishes each event (see [`Self::publish`]).
    pub async fn publish_all(&self, events: &[AppEvent]) {
        for e in events {
            self.publish(e).await;
        }
    }

    /// Publishes one event: created, counted on an equal recent one, or
    /// dropped over the app's rate. A failure is logged, never returned.
    pub async fn publish(&self, event: &AppEvent) {
        if let Err(e) = self.try_publish(event, Utc::now()).await {
            tracing::warn!(app = %event.app, reason = event.reason.as_str(), "cannot record event: {e}");
        }
    }

    /// [`Self::publish`] at a given time, with the error (for tests).
    pub async fn try_publish(
        &self,
        event: &AppEvent,
        now: DateTime<Utc>,
    ) -> Result<(), kube::Error> {
        let decision = self.state.lock().observe(event, now);
        let api: Api<Event> = Api::namespaced(self.client.clone(), STATUS_NAMESPACE);
        match decision {
            Decision::Drop => Ok(()),
            Decision::Create(o) => self.create(&api, event, &o).await,
            Decision::Bump(o) => {
                let patch = json!({
                    "count": o.count,
                    "lastTimestamp": o.last.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                });
                match api
                    .patch(&o.name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                {
                    Ok(_) => Ok(()),
                    // Expired (events live an hour) or deleted: start anew.
                    Err(kube::Error::Api(s)) if s.code == 404 => {
                        // This write already took its token.
                        let o = self.state.lock().restart(event, now);
                        self.create(&api, event, &o).await
                    }
                    Err(e) => Err(e),
                }
            }
        }
    }

    async fn create(
        &self,
        api: &Api<Event>,
        event: &AppEvent,
        o: &Occurrence,
    ) -> Result<(), kube::Error> {
        let uid = self.uid_of(&event.app).await;
        let obj = event_object(event, o, uid.as_deref(), &self.instance);
        let ev: Event = serde_json::from_value(obj).map_err(kube::Error::SerdeError)?;
        api.create(&PostParams::default(), &ev).await.map(|_| ())
    }

    /// The Application object's uid (so `kubectl describe` finds the
    /// event), looked up once per app.
    async fn uid_of(&self, app: &str) -> Option<String> {
        if let Some(uid) = self.uids.lock().get(app) {
            return Some(uid.clone());
        }
        let path = format!(
            "/apis/{KUBESYNC_API_VERSION}/namespaces/{STATUS_NAMESPACE}/applications/{app}"
        );
        let req = axum::http::Request::get(path).body(Vec::new()).ok()?;
        let obj: serde_json::Value = self.client.request(req).await.ok()?;
        let uid = obj.pointer("/metadata/uid")?.as_str()?.to_string();
        self.uids.lock().insert(app.to_string(), uid.clone());
        Some(uid)
    }
}
