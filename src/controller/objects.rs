//! Per-app object memory for the status page's `/apps/NAME`: each app's
//! objects as its last sync left them (kind, namespace, name, sync state,
//! what the sync did and when it last wrote it), their health as the
//! self-heal watches last saw them, and — for an object that drifted
//! without being repaired — the diff from git to the live object, Secret
//! values masked by `diff`.
//!
//! Kept small on purpose, so a page view costs no API request and 1,000
//! apps × 10 objects cost a few MB: compact strings, never whole objects;
//! a diff only for OutOfSync objects, cut at [`DIFF_LIMIT`] bytes, and at
//! most [`DIFFS_PER_APP`] per app. Pure functions build the entries
//! ([`ObjectStore::synced`] from the engine's change set, [`drift_diff`]);
//! the store is updated by `state` (syncs) and `selfheal` (watch events).
//! It does not own health rules (`health`) nor the diff text (`diff`).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use serde_json::Value;

use crate::diff::SyncStatus;
use crate::health::{Health, HealthStatus};
use crate::model::{AppName, ObjectRef, APP_LABEL};
use crate::sync::{Action, AppOutcome, AppReport};

/// A diff longer than this is cut (the page says so).
pub const DIFF_LIMIT: usize = 4096;
/// At most this many objects of an app keep a diff.
pub const DIFFS_PER_APP: usize = 8;
/// Health messages are cut to this many bytes.
const MESSAGE_LIMIT: usize = 240;

/// One object of an app, compact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectEntry {
    pub group: Box<str>,
    pub kind: Box<str>,
    pub namespace: Option<Box<str>>,
    pub name: Box<str>,
    /// `None` until a sync has compared it.
    pub sync: Option<SyncStatus>,
    /// What the last sync did to it (`None`: only seen by a watch).
    pub action: Option<Action>,
    /// When kubesync last wrote it (created or configured), as far as
    /// this process knows.
    pub changed: Option<DateTime<Utc>>,
    pub health: Option<Health>,
    pub health_message: Box<str>,
    /// Git → live, Secret values masked; only while OutOfSync.
    pub diff: Option<Box<str>>,
}

impl ObjectEntry {
    fn of(r: &ObjectRef) -> Self {
        ObjectEntry {
            group: r.group.as_str().into(),
            kind: r.kind.as_str().into(),
            namespace: r.namespace.as_deref().map(Into::into),
            name: r.name.as_str().into(),
            sync: None,
            action: None,
            changed: None,
            health: None,
            health_message: "".into(),
            diff: None,
        }
    }

    fn is(&self, r: &ObjectRef) -> bool {
        *self.group == *r.group
            && *self.kind == *r.kind
            && *self.name == *r.name
            && self.namespace.as_deref() == r.namespace.as_deref()
    }

    /// `Deployment` or `Certificate.cert-manager.io`.
    pub fn kind_label(&self) -> String {
        if self.group.is_empty() {
            self.kind.to_string()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }

    fn set_health(&mut self, h: &HealthStatus) {
        self.health = Some(h.health);
        self.health_message = cut(&h.message, MESSAGE_LIMIT).into();
    }
}

fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… (cut at {max} bytes)", &s[..end])
}

/// The objects of every app (see the module doc).
#[derive(Debug, Default)]
pub struct ObjectStore {
    apps: Mutex<HashMap<AppName, Vec<ObjectEntry>>>,
}

/// The objects of a sync's change set, merged with what was known: health
/// and the last write time carry over, drift diffs are dropped (the sync
/// compared again). Hooks and pruned objects are not the app's objects.
pub fn merge_report(
    report: &AppReport,
    known: &[ObjectEntry],
    now: DateTime<Utc>,
) -> Vec<ObjectEntry> {
    let mut out: Vec<ObjectEntry> = Vec::with_capacity(report.changes.len());
    for c in &report.changes {
        if c.hook.is_some() || c.action == Action::Pruned || out.iter().any(|e| e.is(&c.object)) {
            continue;
        }
        let mut e = known
            .iter()
            .find(|e| e.is(&c.object))
            .cloned()
            .unwrap_or_else(|| ObjectEntry::of(&c.object));
        e.sync = Some(if c.in_sync {
            SyncStatus::Synced
        } else {
            SyncStatus::OutOfSync
        });
        e.action = Some(c.action);
        if matches!(c.action, Action::Created | Action::Configured) && !c.dry_run {
            e.changed = Some(now);
        }
        e.diff = None;
        out.push(e);
    }
    out.shrink_to_fit();
    out
}

/// The live object projected onto the fields git declares (what a sync
/// would compare), so server defaults, status and managedFields stay out
/// of the diff.
fn project(live: &Value, desired: &Value) -> Value {
    match (live, desired) {
        (Value::Object(l), Value::Object(d)) => Value::Object(
            d.iter()
                .filter_map(|(k, dv)| l.get(k).map(|lv| (k.clone(), project(lv, dv))))
                .collect(),
        ),
        (Value::Array(l), Value::Array(d)) if l.len() == d.len() => {
            Value::Array(l.iter().zip(d).map(|(lv, dv)| project(lv, dv)).collect())
        }
        _ => live.clone(),
    }
}

/// The diff from git (`desired`) to the live object (`None`: deleted),
/// on the fields git declares, Secret values masked, cut at
/// [`DIFF_LIMIT`]. Pure.
pub fn drift_diff(desired: &Value, live: Option<&Value>) -> String {
    let live = match live {
        Some(l) => project(l, desired),
        None => Value::Object(Default::default()),
    };
    let d = crate::diff::unified_yaml_diff(desired, &live, "git", "live");
    cut(&d, DIFF_LIMIT)
}

impl ObjectStore {
    /// Records a sync's change set (blocked apps and dry runs keep what
    /// they had: nothing was compared).
    pub fn synced(&self, report: &AppReport) {
        if matches!(
            report.outcome,
            AppOutcome::Blocked { .. } | AppOutcome::DryRun
        ) {
            return;
        }
        // A sync that failed before comparing anything keeps the list.
        if report.changes.is_empty() && !report.outcome.is_success() {
            return;
        }
        let mut apps = self.apps.lock();
        let known = apps.remove(&report.name).unwrap_or_default();
        apps.insert(
            report.name.clone(),
            merge_report(report, &known, Utc::now()),
        );
    }

    /// A watch saw `obj` (listed, added or modified; `deleted`: gone):
    /// its health is updated when it is one of its app's objects. Returns
    /// the app when the object's health crossed the Degraded line (became
    /// Degraded, or stopped being it) since it was last seen — a change of
    /// the app's health between syncs, which the controller re-checks.
    pub fn observed(&self, obj: &Value, deleted: bool) -> Option<AppName> {
        let app = obj
            .pointer("/metadata/labels")
            .and_then(|l| l.get(APP_LABEL))
            .and_then(Value::as_str)
            .and_then(|a| AppName::new(a).ok())?;
        let r = ObjectRef::from_object(obj).ok()?;
        let mut apps = self.apps.lock();
        let e = apps
            .get_mut(&app)
            .and_then(|v| v.iter_mut().find(|e| e.is(&r)))?;
        let before = e.health;
        if deleted {
            e.set_health(&crate::health::missing());
        } else {
            e.set_health(&crate::health::assess(obj));
        }
        let degraded = |h: Option<Health>| h == Some(Health::Degraded);
        (before.is_some() && degraded(before) != degraded(e.health)).then_some(app)
    }

    /// Drift that was not repaired: the object is OutOfSync with `diff`
    /// (kept for at most [`DIFFS_PER_APP`] objects of the app).
    pub fn drifted(&self, app: &AppName, r: &ObjectRef, diff: String) {
        let mut apps = self.apps.lock();
        let list = apps.entry(app.clone()).or_default();
        let with_diff = list.iter().filter(|e| e.diff.is_some() && !e.is(r)).count();
        let e = match list.iter_mut().position(|e| e.is(r)) {
            Some(i) => &mut list[i],
            None => {
                list.push(ObjectEntry::of(r));
                let last = list.len() - 1;
                &mut list[last]
            }
        };
        e.sync = Some(SyncStatus::OutOfSync);
        e.diff = (with_diff < DIFFS_PER_APP).then(|| diff.into_boxed_str());
    }

    /// An app's health from its objects' last seen health (None when none
    /// was seen yet), as the engine aggregates it: the worst object's.
    pub fn app_health(&self, app: &AppName) -> Option<HealthStatus> {
        let apps = self.apps.lock();
        let statuses: Vec<HealthStatus> = apps
            .get(app)?
            .iter()
            .filter_map(|e| {
                let h = e.health?;
                let label = match &e.namespace {
                    Some(ns) => format!("{} {ns}/{}", e.kind, e.name),
                    None => format!("{} {}", e.kind, e.name),
                };
                let message = if e.health_message.is_empty() {
                    label
                } else {
                    format!("{label}: {}", e.health_message)
                };
                Some(HealthStatus::new(h, message))
            })
            .collect();
        (!statuses.is_empty()).then(|| crate::health::aggregate(statuses.iter()))
    }

    /// An app's objects (empty before its first sync).
    pub fn of(&self, app: &AppName) -> Option<Vec<ObjectEntry>> {
        self.apps.lock().get(app).cloned()
    }

    /// Forgets apps that left the tree.
    pub fn retain(&self, keep: impl Fn(&AppName) -> bool) {
        self.apps.lock().retain(|a, _| keep(a));
    }

    /// Bytes the store holds (an estimate, for the benchmark and tests).
    pub fn approx_bytes(&self) -> usize {
        let apps = self.apps.lock();
        apps.iter()
            .map(|(a, v)| {
                a.as_str().len()
                    + v.capacity() * std::mem::size_of::<ObjectEntry>()
                    + v.iter()
                        .map(|e| {
                            e.group.len()
                                + e.kind.len()
                                + e.name.len()
                                + e.namespace.as_ref().map_or(0, |n| n.len())
                                + e.health_message.len()
                                + e.diff.as_ref().map_or(0, |d| d.len())
                        })
                        .sum::<usize>()
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::HealthStatus;
    use crate::model::Tier;
    use crate::sync::Change;
    use serde_json::json;
    use std::time::Duration;

    fn r(kind: &str, name: &str) -> ObjectRef {
        ObjectRef {
            group: String::new(),
            version: "v1".into(),
            kind: kind.into(),
            namespace: Some("web".into()),
            name: name.into(),
        }
    }

    fn report(changes: Vec<Change>) -> AppReport {
        AppReport {
            name: AppName::new("web").unwrap(),
            tier: Tier::App,
            namespace: Some("web".into()),
            revision: "abc".into(),
            outcome: AppOutcome::Succeeded,
            sync: SyncStatus::Synced,
            health: HealthStatus::healthy(""),
            changes,
            duration: Duration::from_secs(1),
        }
    }

    #[test]
    fn a_sync_lists_its_objects_and_keeps_health_and_write_times() {
        let store = ObjectStore::default();
        let rep = report(vec![
            Change::done(&r("ConfigMap", "a"), Action::Created, false),
            Change::done(&r("Secret", "s"), Action::Unchanged, false),
            Change::done(&r("ConfigMap", "old"), Action::Pruned, false),
        ]);
        store.synced(&rep);
        let app = AppName::new("web").unwrap();
        let objs = store.of(&app).unwrap();
        assert_eq!(objs.len(), 2, "pruned objects are not listed");
        assert_eq!(objs[0].sync, Some(SyncStatus::Synced));
        let created_at = objs[0].changed.expect("a create is a change");
        assert_eq!(objs[1].changed, None);
        // A watch sees the ConfigMap: its health is kept across syncs.
        store.observed(
            &json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "a", "namespace": "web", "labels": {APP_LABEL: "web"}}}),
            false,
        );
        store.synced(&report(vec![Change::done(
            &r("ConfigMap", "a"),
            Action::Unchanged,
            false,
        )]));
        let objs = store.of(&app).unwrap();
        assert_eq!(objs.len(), 1);
        assert_eq!(objs[0].health, Some(Health::Healthy));
        assert_eq!(
            objs[0].changed,
            Some(created_at),
            "unchanged keeps the time"
        );
        // Deleted: Missing.
        store.observed(
            &json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "a", "namespace": "web", "labels": {APP_LABEL: "web"}}}),
            true,
        );
        assert_eq!(store.of(&app).unwrap()[0].health, Some(Health::Missing));
    }

    #[test]
    fn crossing_the_degraded_line_is_reported_once() {
        let store = ObjectStore::default();
        store.synced(&report(vec![Change::done(
            &r("Pod", "p"),
            Action::Created,
            false,
        )]));
        let pod = |phase: &str| {
            json!({"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": "p", "namespace": "web", "labels": {APP_LABEL: "web"}},
                   "spec": {"restartPolicy": "Never"},
                   "status": {"phase": phase}})
        };
        // First sight: nothing to compare with.
        assert_eq!(store.observed(&pod("Running"), false), None);
        assert_eq!(store.observed(&pod("Running"), false), None);
        let app = AppName::new("web").unwrap();
        assert_eq!(store.observed(&pod("Failed"), false), Some(app.clone()));
        assert_eq!(store.observed(&pod("Failed"), false), None);
        assert_eq!(store.observed(&pod("Running"), false), Some(app));
    }

    #[test]
    fn drift_diffs_mask_secrets_leave_server_fields_out_and_are_bounded() {
        let desired = json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "s", "namespace": "web"},
            "stringData": {"password": "hunter2"}});
        let live = json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "s", "namespace": "web", "resourceVersion": "7",
                         "managedFields": [{"manager": "kubectl"}]},
            "stringData": {"password": "letmein"}});
        let d = drift_diff(&desired, Some(&live));
        assert!(d.contains("password"), "{d}");
        assert!(!d.contains("hunter2") && !d.contains("letmein"), "{d}");
        assert!(
            !d.contains("managedFields") && !d.contains("resourceVersion"),
            "{d}"
        );
        let cm = |v: &str| {
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "c", "namespace": "web"}, "data": {"k": v}})
        };
        let big = "x".repeat(20_000);
        let d = drift_diff(&cm("a"), Some(&cm(&big)));
        assert!(d.len() < DIFF_LIMIT + 64, "cut: {}", d.len());
        assert!(d.ends_with("(cut at 4096 bytes)"));
        // At most DIFFS_PER_APP diffs per app.
        let store = ObjectStore::default();
        let app = AppName::new("web").unwrap();
        for i in 0..(DIFFS_PER_APP + 3) {
            store.drifted(&app, &r("ConfigMap", &format!("c{i}")), "-a\n+b\n".into());
        }
        let objs = store.of(&app).unwrap();
        assert_eq!(
            objs.iter().filter(|e| e.diff.is_some()).count(),
            DIFFS_PER_APP
        );
        assert!(objs.iter().all(|e| e.sync == Some(SyncStatus::OutOfSync)));
        // The next sync compares again: diffs go.
        store.synced(&report(vec![Change::done(
            &r("ConfigMap", "c0"),
            Action::Configured,
            false,
        )]));
        assert!(store.of(&app).unwrap().iter().all(|e| e.diff.is_none()));
    }

    #[test]
    fn a_thousand_apps_of_ten_objects_stay_small() {
        let store = ObjectStore::default();
        for a in 0..1000 {
            let mut rep = report(
                (0..10)
                    .map(|i| {
                        Change::done(
                            &r("ConfigMap", &format!("object-{i}")),
                            Action::Created,
                            false,
                        )
                    })
                    .collect(),
            );
            rep.name = AppName::new(format!("app-{a}")).unwrap();
            store.synced(&rep);
        }
        let bytes = store.approx_bytes();
        eprintln!("object memory: {bytes} bytes for 1,000 apps × 10 objects");
        assert!(bytes < 4 * 1024 * 1024, "{bytes} bytes for 10,000 objects");
    }
}
