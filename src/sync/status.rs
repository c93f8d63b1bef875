//! Status write-back: the `applications.kubesync.dev` CRD, the Application
//! object kubesync keeps per app (in [`STATUS_NAMESPACE`]), and the status it
//! carries — sync status and applied revision, health, deployed revision
//! (set once Healthy: the seeds' "applied" vs "deployed"), inventory,
//! conditions and timestamps — typed as [`ApplicationStatus`], the one
//! reader and writer of that JSON. Pure: `engine` does the IO.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::change::Change;
use super::report::{AppOutcome, AppReport};
use crate::diff::SyncStatus;
use crate::health::{Health, HealthStatus};
use crate::model::{Application, ObjectRef, KUBESYNC_API_VERSION};

/// Namespace holding kubesync's Application objects.
pub const STATUS_NAMESPACE: &str = "kubesync-system";
/// Name of the Application CRD.
pub const CRD_NAME: &str = "applications.kubesync.dev";

/// The API group of kubesync's own kinds.
pub const KUBESYNC_GROUP: &str = "kubesync.dev";

/// The label every Application object kubesync writes carries (its tier):
/// the selection a run lists and watches Application objects by.
pub const APPLICATION_SELECTOR: &str = "kubesync.dev/tier";

/// The CustomResourceDefinition for kubesync's Application kind, with
/// printer columns so `kubectl get applications -A` shows the state.
pub fn application_crd() -> Value {
    let col = |name: &str, path: &str| json!({"name": name, "type": "string", "jsonPath": path});
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": CRD_NAME},
        "spec": {
            "group": "kubesync.dev",
            "scope": "Namespaced",
            "names": {
                "kind": "Application",
                "listKind": "ApplicationList",
                "plural": "applications",
                "singular": "application",
                "shortNames": ["ksapp", "ksapps"],
                "categories": ["kubesync"]
            },
            "versions": [{
                "name": "v1alpha1",
                "served": true,
                "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "x-kubernetes-preserve-unknown-fields": true
                }},
                "additionalPrinterColumns": [
                    col("Tier", ".spec.tier"),
                    col("Sync", ".status.sync.status"),
                    col("Health", ".status.health.status"),
                    col("Revision", ".status.sync.revision"),
                    col("Deployed", ".status.deployedRevision"),
                    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
                ]
            }]
        }
    })
}

/// The Namespace holding the Application objects.
pub fn status_namespace() -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": STATUS_NAMESPACE}})
}

/// The Application object for `app` (spec only; status is written separately).
pub fn application_object(app: &Application, parent: Option<&str>, repo: Option<&str>) -> Value {
    let mut source = json!({"path": app.source.path.as_str()});
    if let Some(r) = repo {
        source["repoURL"] = json!(r);
    }
    if let Some(rev) = &app.source.target_revision {
        source["targetRevision"] = json!(rev.to_string());
    }
    source["renderer"] = json!(app.source.renderer.kind_name());
    let mut labels = json!({"kubesync.dev/tier": app.tier.to_string()});
    if let Some(p) = parent {
        labels["kubesync.dev/parent"] = json!(p);
    }
    let mut metadata = json!({
        "name": app.name.as_str(),
        "namespace": STATUS_NAMESPACE,
        "labels": labels,
    });
    let generated = app.sync_policy.generated_by.as_ref();
    // preserveResourcesOnDeletion: Argo CD drops the resources finalizer
    // before deleting the Application, so its objects stay.
    let preserve = generated.is_some_and(|g| g.preserve_resources);
    if app.sync_policy.cascade_delete && !preserve {
        metadata["annotations"] = json!({super::removed::CASCADE_ANNOTATION: "true"});
    }
    if !app.sync_policy.options().objects.delete {
        metadata["annotations"][super::removed::DELETE_OBJECTS_ANNOTATION] = json!("false");
    }
    if let Some(g) = generated {
        metadata["annotations"][super::removed::GENERATED_ANNOTATION] = json!(g.set);
        metadata["annotations"][super::removed::WHEN_NOT_GENERATED_ANNOTATION] =
            json!(if g.applications_sync.deletes() {
                "delete"
            } else {
                "keep"
            });
    }
    json!({
        "apiVersion": KUBESYNC_API_VERSION,
        "kind": "Application",
        "metadata": metadata,
        "spec": {
            "tier": app.tier.to_string(),
            "source": source,
            "destination": {"namespace": app.destination.namespace},
            "dependsOn": app.depends_on,
            "syncPolicy": {
                "automated": app.sync_policy.automated.map(|a| json!({"prune": a.prune, "selfHeal": a.self_heal})),
                "createNamespace": app.sync_policy.create_namespace,
            }
        }
    })
}

/// The ref of an app's Application object.
pub fn application_ref(name: &str) -> ObjectRef {
    ObjectRef {
        group: "kubesync.dev".into(),
        version: "v1alpha1".into(),
        kind: "Application".into(),
        namespace: Some(STATUS_NAMESPACE.into()),
        name: name.into(),
    }
}

/// One entry of an app's inventory: an object the app applied, and whether
/// git had turned it `kubesync.dev/sync: off` — remembered so that such an
/// object is never pruned once its file leaves git (the annotation may never
/// have reached the live object).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryEntry {
    #[serde(flatten)]
    pub object: ObjectRef,
    #[serde(
        default,
        rename = "syncOff",
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub sync_off: bool,
}

impl InventoryEntry {
    pub fn new(object: ObjectRef, sync_off: bool) -> Self {
        InventoryEntry { object, sync_off }
    }
}

/// The status of a kubesync Application object: what the last sync applied
/// and found. Written by [`build_status`], read back by everyone (the next
/// sync's prune, `kubesync status`, `kubesync tree`) through
/// [`ApplicationStatus::of`] — never by JSON pointers.
///
/// Reading is lenient, field by field: a status written by an older
/// kubesync, or one with a malformed field, still yields every field that
/// parses (a bad field reads as absent, a bad inventory entry is dropped).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationStatus {
    #[serde(default, deserialize_with = "lenient")]
    pub sync: Option<SyncState>,
    #[serde(default, deserialize_with = "lenient")]
    pub health: Option<HealthState>,
    /// The revision last seen Healthy (the seeds' "deployed", as opposed to
    /// the applied `sync.revision`).
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub deployed_revision: Option<String>,
    #[serde(default, deserialize_with = "lenient_list")]
    pub inventory: Vec<InventoryEntry>,
    #[serde(default, deserialize_with = "lenient_list")]
    pub conditions: Vec<Condition>,
    #[serde(default, deserialize_with = "lenient")]
    pub operation_state: Option<OperationState>,
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub reconciled_at: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub last_synced_at: Option<String>,
    /// The completion signals sent for this app (webhook, S3 version
    /// file): the ledger that makes each one go out once per revision,
    /// across restarts and leader changes. Kept by `notify`; carried over
    /// unchanged by every sync.
    #[serde(
        default,
        deserialize_with = "lenient_list",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub notifications: Vec<NotificationRecord>,
}

/// Which event a completion signal answers (Argo CD's trigger names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Trigger {
    /// Synced and Healthy at a revision.
    #[serde(rename = "on-deployed")]
    Deployed,
    /// The sync failed or timed out at a revision.
    #[serde(rename = "on-sync-failed")]
    SyncFailed,
    /// The app's health went Degraded at a revision.
    #[serde(rename = "on-health-degraded")]
    HealthDegraded,
}

impl Trigger {
    pub const ALL: [Trigger; 3] = [
        Trigger::Deployed,
        Trigger::SyncFailed,
        Trigger::HealthDegraded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Deployed => "on-deployed",
            Trigger::SyncFailed => "on-sync-failed",
            Trigger::HealthDegraded => "on-health-degraded",
        }
    }
}

/// Whether a signal reached its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeliveryOutcome {
    Sent,
    Failed,
}

/// One entry of `status.notifications`: the last signal of one trigger to
/// one target. `target` is an identifier safe to show (never a secret URL).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NotificationRecord {
    pub trigger: Trigger,
    pub target: String,
    pub revision: String,
    /// When it was sent (or last tried), RFC 3339.
    pub at: String,
    pub outcome: DeliveryOutcome,
    /// Delivery rounds tried for this revision (each with its own retries).
    #[serde(default = "one")]
    pub attempts: u32,
    /// Why the last round failed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error: String,
}

fn one() -> u32 {
    1
}

/// `status.sync`: whether the cluster matched git, at which revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncState {
    pub status: SyncStatus,
    #[serde(default)]
    pub revision: String,
}

/// `status.health`: always with its `message` (empty when there is none),
/// as kubesync has always written it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthState {
    pub status: Health,
    #[serde(default)]
    pub message: String,
}

impl From<&HealthStatus> for HealthState {
    fn from(h: &HealthStatus) -> Self {
        HealthState {
            status: h.health,
            message: h.message.clone(),
        }
    }
}

/// One entry of `status.conditions`, Kubernetes-style.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub kind: String,
    pub status: ConditionStatus,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub last_transition_time: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

/// `status.operationState`: how the last sync that did something ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperationState {
    /// An [`AppOutcome`] label: `Succeeded`, `Failed`, …
    pub phase: String,
    #[serde(default)]
    pub message: String,
}

impl ApplicationStatus {
    /// The merge patch a sync writes: the whole status but the ledger of
    /// completion signals (`notifications`), which the controller's signals
    /// write on their own and which may have moved since the sync read the
    /// object — so a sync never overwrites it.
    pub fn sync_patch(&self) -> Result<Value, serde_json::Error> {
        let mut v = serde_json::to_value(self)?;
        if let Some(o) = v.as_object_mut() {
            o.remove("notifications");
        }
        Ok(v)
    }

    /// The status of an Application object (default when it has none).
    pub fn of(app_object: &Value) -> Self {
        app_object
            .get("status")
            .and_then(|s| serde_json::from_value(s.clone()).ok())
            .unwrap_or_default()
    }

    /// Synced and ready: nothing for a person to look at.
    pub fn is_good(&self) -> bool {
        self.sync.as_ref().map(|s| s.status) == Some(SyncStatus::Synced)
            && self.health.as_ref().is_some_and(|h| h.status.is_ready())
    }

    /// The same status, timestamps aside.
    fn same_as(&self, other: &Self) -> bool {
        let strip = |s: &Self| {
            let mut s = s.clone();
            s.reconciled_at = None;
            s.last_synced_at = None;
            s.conditions
                .iter_mut()
                .for_each(|c| c.last_transition_time.clear());
            s
        };
        strip(self) == strip(other)
    }
}

/// A field that does not parse reads as absent.
fn lenient<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    let v = Value::deserialize(d)?;
    Ok(serde_json::from_value(v).ok())
}

/// A list whose entries that do not parse are dropped.
fn lenient_list<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    let v = Value::deserialize(d)?;
    let items = v.as_array().cloned().unwrap_or_default();
    Ok(items
        .into_iter()
        .filter_map(|i| serde_json::from_value(i).ok())
        .collect())
}

/// Reads the inventory a previous sync recorded in an Application's status.
pub fn inventory_of(app_object: &Value) -> Vec<InventoryEntry> {
    ApplicationStatus::of(app_object).inventory
}

/// The status for an app after a sync. `previous` is the status it had, so
/// that timestamps and the deployed revision only move when something did:
/// a re-sync that changes nothing produces an identical status (no write).
pub fn build_status(
    report: &AppReport,
    inventory: &[InventoryEntry],
    previous: Option<&ApplicationStatus>,
    now: &str,
) -> ApplicationStatus {
    let prev = previous.cloned().unwrap_or_default();
    let ready = report.health.health.is_ready();
    let deployed_revision = if report.outcome == AppOutcome::Succeeded && ready {
        Some(report.revision.clone())
    } else {
        prev.deployed_revision.clone()
    };
    let (sync, health) = sync_and_health(report, &prev);
    let mut status = ApplicationStatus {
        sync: Some(sync),
        health: Some(health),
        deployed_revision,
        inventory: inventory.to_vec(),
        conditions: conditions(report, &prev, now),
        operation_state: Some(operation_state(report, &prev)),
        reconciled_at: None,
        last_synced_at: None,
        notifications: prev.notifications.clone(),
    };
    // Timestamps move only when the rest of the status does.
    let changed = previous.is_none_or(|p| !status.same_as(p));
    status.reconciled_at = match prev.reconciled_at {
        Some(t) if !changed => Some(t),
        _ => Some(now.to_string()),
    };
    let wrote = report.changes.iter().any(Change::wrote);
    status.last_synced_at = match prev.last_synced_at {
        Some(t) if !wrote => Some(t),
        _ => Some(now.to_string()),
    };
    status
}

/// When nothing was applied (blocked, refused, render failed), the cluster
/// still runs what was last applied: keep that sync state and health, and
/// say what happened in conditions and operationState only.
fn sync_and_health(report: &AppReport, prev: &ApplicationStatus) -> (SyncState, HealthState) {
    let applied = report.changes.iter().any(Change::attempted);
    let keep_previous = !applied
        && !matches!(
            report.outcome,
            AppOutcome::Succeeded | AppOutcome::TimedOut { .. }
        );
    match (keep_previous, &prev.sync, &prev.health) {
        (true, Some(sync), Some(health)) => (sync.clone(), health.clone()),
        _ => (
            SyncState {
                status: report.sync,
                revision: report.revision.clone(),
            },
            HealthState::from(&report.health),
        ),
    }
}

fn conditions(report: &AppReport, prev: &ApplicationStatus, now: &str) -> Vec<Condition> {
    let failed = !report.outcome.is_success();
    let failure = if failed {
        report.message()
    } else {
        String::new()
    };
    let health = &report.health;
    [
        (
            "Synced",
            report.sync == SyncStatus::Synced,
            report.sync.as_str(),
            String::new(),
        ),
        (
            "Healthy",
            health.health.is_ready(),
            health.health.as_str(),
            health.message.clone(),
        ),
        (
            "SyncFailed",
            failed,
            &*report.outcome.condition_reason(),
            failure,
        ),
    ]
    .into_iter()
    .map(|(kind, ok, reason, message)| {
        let status = if ok {
            ConditionStatus::True
        } else {
            ConditionStatus::False
        };
        // The transition time moves only when the condition flips.
        let last_transition_time = prev
            .conditions
            .iter()
            .find(|c| c.kind == kind && c.status == status)
            .map(|c| c.last_transition_time.clone())
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| now.to_string());
        Condition {
            kind: kind.to_string(),
            status,
            reason: reason.to_string(),
            message,
            last_transition_time,
        }
    })
    .collect()
}

/// The last operation: replaced when this sync wrote something or ended
/// differently; a no-op re-sync keeps the previous one (so that a converged
/// cluster sees no status write).
fn operation_state(report: &AppReport, prev: &ApplicationStatus) -> OperationState {
    let wrote = report.changes.iter().any(Change::wrote);
    match &prev.operation_state {
        Some(p)
            if !wrote
                && p.phase == report.outcome.label()
                && report.outcome == AppOutcome::Succeeded =>
        {
            p.clone()
        }
        _ => OperationState {
            phase: report.outcome.label().to_string(),
            message: report.message(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::HealthStatus;
    use crate::model::{AppName, Tier};
    use std::time::Duration;

    fn report(outcome: AppOutcome, health: HealthStatus) -> AppReport {
        AppReport {
            name: AppName::new("web").unwrap(),
            tier: Tier::App,
            namespace: Some("web".into()),
            revision: "abc1234".into(),
            outcome,
            sync: SyncStatus::Synced,
            health,
            changes: vec![],
            duration: Duration::ZERO,
        }
    }

    #[test]
    fn a_syncs_patch_leaves_the_signal_ledger_alone() {
        let mut status = build_status(
            &report(AppOutcome::Succeeded, HealthStatus::healthy("")),
            &[],
            None,
            "t1",
        );
        status.notifications = vec![NotificationRecord {
            trigger: Trigger::Deployed,
            target: "s3".into(),
            revision: "abc1234".into(),
            at: "t1".into(),
            outcome: DeliveryOutcome::Sent,
            attempts: 1,
            error: String::new(),
        }];
        let patch = status.sync_patch().unwrap();
        assert!(patch.get("notifications").is_none(), "{patch}");
        assert_eq!(patch["sync"]["revision"], "abc1234");
        assert!(serde_json::to_value(&status).unwrap()["notifications"].is_array());
    }

    #[test]
    fn deployed_revision_only_when_healthy() {
        let ok = build_status(
            &report(AppOutcome::Succeeded, HealthStatus::healthy("")),
            &[],
            None,
            "t1",
        );
        assert_eq!(ok.deployed_revision.as_deref(), Some("abc1234"));
        let slow = build_status(
            &report(
                AppOutcome::TimedOut { after_secs: 5 },
                HealthStatus::progressing("rolling out"),
            ),
            &[],
            Some(&ok),
            "t2",
        );
        // Still the previously deployed revision: applied is not deployed.
        assert_eq!(slow.deployed_revision.as_deref(), Some("abc1234"));
        assert_eq!(slow.health.map(|h| h.status), Some(Health::Progressing));
    }

    #[test]
    fn unchanged_status_is_identical() {
        let r = report(AppOutcome::Succeeded, HealthStatus::healthy(""));
        let first = build_status(&r, &[], None, "t1");
        let second = build_status(&r, &[], Some(&first), "t2");
        assert_eq!(first, second);
    }

    /// The JSON kubesync has always written (`json!`-built before the status
    /// was typed): existing clusters' statuses must read, and write back
    /// byte-for-byte the same, or every converged app would be rewritten.
    #[test]
    fn todays_json_round_trips() {
        let wire = serde_json::json!({
            "sync": {"status": "Synced", "revision": "abc1234"},
            "health": {"status": "Healthy", "message": ""},
            "deployedRevision": "abc1234",
            "inventory": [
                {"group": "", "version": "v1", "kind": "ConfigMap", "namespace": "web", "name": "conf"},
                {"group": "apps", "version": "v1", "kind": "Deployment", "namespace": "web", "name": "web", "syncOff": true},
                {"group": "", "version": "v1", "kind": "Namespace", "name": "web"}
            ],
            "conditions": [
                {"type": "Synced", "status": "True", "reason": "Synced", "message": "", "lastTransitionTime": "t1"},
                {"type": "Healthy", "status": "True", "reason": "Healthy", "message": "", "lastTransitionTime": "t1"},
                {"type": "SyncFailed", "status": "False", "reason": "Succeeded", "message": "", "lastTransitionTime": "t1"}
            ],
            "operationState": {"phase": "Succeeded", "message": "1 created"},
            "reconciledAt": "t1",
            "lastSyncedAt": "t1"
        });
        let obj = serde_json::json!({"status": wire.clone()});
        let typed = ApplicationStatus::of(&obj);
        assert_eq!(typed.inventory.len(), 3);
        assert!(typed.inventory[1].sync_off);
        assert!(typed.is_good());
        assert_eq!(serde_json::to_value(&typed).unwrap(), wire);
        // And a re-sync of the same report writes the same shape.
        let mut r = report(AppOutcome::Succeeded, HealthStatus::healthy(""));
        r.changes = vec![];
        let again = build_status(&r, &typed.inventory, Some(&typed), "t2");
        let again = serde_json::to_value(&again).unwrap();
        assert_eq!(again["health"], wire["health"]);
        assert_eq!(again["conditions"][0], wire["conditions"][0]);
    }

    #[test]
    fn a_malformed_field_reads_as_absent_and_the_rest_survives() {
        let obj = serde_json::json!({"status": {
            "health": {"status": "Sad"},
            "sync": "Synced",
            "inventory": [{"kind": "ConfigMap"}, {"group": "", "version": "v1", "kind": "ConfigMap", "name": "a", "namespace": "x"}],
            "lastSyncedAt": "t0"
        }});
        let s = ApplicationStatus::of(&obj);
        assert_eq!(s.health, None);
        assert_eq!(s.sync, None);
        assert_eq!(s.inventory.len(), 1);
        assert_eq!(s.last_synced_at.as_deref(), Some("t0"));
        assert!(!s.is_good());
        assert_eq!(
            ApplicationStatus::of(&serde_json::json!({})),
            ApplicationStatus::default()
        );
    }

    #[test]
    fn crd_has_printer_columns() {
        let crd = application_crd();
        assert_eq!(
            crd["spec"]["versions"][0]["additionalPrinterColumns"][1]["name"],
            "Sync"
        );
    }
}
