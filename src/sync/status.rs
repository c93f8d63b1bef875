//! Status write-back: the `applications.kubesync.dev` CRD, the Application
//! object kubesync keeps per app (in [`STATUS_NAMESPACE`]), and the status it
//! carries — sync status and applied revision, health, deployed revision
//! (set once Healthy: the seeds' "applied" vs "deployed"), inventory,
//! conditions and timestamps. Pure: builds JSON; `engine` writes it.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::change::Change;
use super::report::{AppOutcome, AppReport};
use crate::diff::SyncStatus;
use crate::model::{Application, ObjectRef, KUBESYNC_API_VERSION};

/// Namespace holding kubesync's Application objects.
pub const STATUS_NAMESPACE: &str = "kubesync-system";
/// Name of the Application CRD.
pub const CRD_NAME: &str = "applications.kubesync.dev";

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
    json!({
        "apiVersion": KUBESYNC_API_VERSION,
        "kind": "Application",
        "metadata": {
            "name": app.name.as_str(),
            "namespace": STATUS_NAMESPACE,
            "labels": labels,
        },
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

/// Reads the inventory a previous sync recorded in an Application's status.
pub fn inventory_of(app_object: &Value) -> Vec<InventoryEntry> {
    app_object
        .pointer("/status/inventory")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|i| serde_json::from_value::<InventoryEntry>(i.clone()).ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The status for an app after a sync. `previous` is the status it had, so
/// that timestamps and the deployed revision only move when something did:
/// a re-sync that changes nothing produces an identical status (no write).
pub fn build_status(
    report: &AppReport,
    inventory: &[InventoryEntry],
    previous: Option<&Value>,
    now: &str,
) -> Value {
    let prev = |p: &str| previous.and_then(|v| v.pointer(p)).cloned();
    let healthy = report.outcome == AppOutcome::Succeeded && report.health.health.is_ready();
    let deployed = if healthy {
        json!(report.revision)
    } else {
        prev("/deployedRevision").unwrap_or(Value::Null)
    };
    let conditions = vec![
        condition(
            "Synced",
            report.sync == SyncStatus::Synced,
            &report.sync.to_string(),
            "",
            previous,
            now,
        ),
        condition(
            "Healthy",
            report.health.health.is_ready(),
            report.health.health.as_str(),
            &report.health.message,
            previous,
            now,
        ),
        condition(
            "SyncFailed",
            !report.outcome.is_success() && report.outcome != AppOutcome::Succeeded,
            report.outcome.label(),
            &match &report.outcome {
                AppOutcome::Succeeded | AppOutcome::DryRun => String::new(),
                _ => report.message(),
            },
            previous,
            now,
        ),
    ];
    // When nothing was applied (blocked, refused, render failed), the
    // cluster still runs what was last applied: keep that sync state,
    // health and revision, and say what happened in conditions and
    // operationState only.
    let applied = report.changes.iter().any(Change::attempted);
    let keep_previous = !applied
        && !matches!(
            report.outcome,
            AppOutcome::Succeeded | AppOutcome::TimedOut { .. }
        );
    let (sync, health) = match (keep_previous, prev("/sync"), prev("/health")) {
        (true, Some(sync), Some(health)) => (sync, health),
        _ => (
            json!({"status": report.sync.to_string(), "revision": report.revision}),
            json!({"status": report.health.health.as_str(), "message": report.health.message}),
        ),
    };
    let mut status = json!({
        "sync": sync,
        "health": health,
        "inventory": inventory,
        "conditions": conditions,
        "operationState": operation_state(report, previous),
    });
    // A merge patch drops null keys, so none are written (else every
    // comparison with the stored status would differ).
    if !deployed.is_null() {
        status["deployedRevision"] = deployed;
    }
    // Timestamps move only when the rest of the status does.
    let mut without_times = status.clone();
    strip_times(&mut without_times);
    let mut prev_without = previous.cloned().unwrap_or(Value::Null);
    strip_times(&mut prev_without);
    let changed = without_times != prev_without;
    let last_sync = if changed || prev("/reconciledAt").is_none() {
        json!(now)
    } else {
        prev("/reconciledAt").unwrap_or(json!(now))
    };
    status["reconciledAt"] = last_sync;
    let wrote = report.changes.iter().any(Change::wrote);
    if wrote || prev("/lastSyncedAt").is_none() {
        status["lastSyncedAt"] = json!(now);
    } else {
        status["lastSyncedAt"] = prev("/lastSyncedAt").unwrap_or(Value::Null);
    }
    status
}

fn condition(
    kind: &str,
    ok: bool,
    reason: &str,
    message: &str,
    previous: Option<&Value>,
    now: &str,
) -> Value {
    let status = if ok { "True" } else { "False" };
    let prev = previous
        .and_then(|p| p.get("conditions"))
        .and_then(Value::as_array)
        .and_then(|cs| {
            cs.iter()
                .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))
        });
    let transition = match prev {
        Some(c) if c.get("status").and_then(Value::as_str) == Some(status) => {
            c.get("lastTransitionTime").cloned().unwrap_or(json!(now))
        }
        _ => json!(now),
    };
    json!({
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": transition,
    })
}

/// The last operation: replaced when this sync wrote something or ended
/// differently; a no-op re-sync keeps the previous one (so that a converged
/// cluster sees no status write).
fn operation_state(report: &AppReport, previous: Option<&Value>) -> Value {
    let wrote = report.changes.iter().any(Change::wrote);
    let prev = previous.and_then(|p| p.get("operationState"));
    let same_phase =
        prev.and_then(|p| p.get("phase")).and_then(Value::as_str) == Some(report.outcome.label());
    match prev {
        Some(p) if !wrote && same_phase && report.outcome == AppOutcome::Succeeded => p.clone(),
        _ => json!({"phase": report.outcome.label(), "message": report.message()}),
    }
}

fn strip_times(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.remove("reconciledAt");
            m.remove("lastSyncedAt");
            m.remove("lastTransitionTime");
            for x in m.values_mut() {
                strip_times(x);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(strip_times),
        _ => {}
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
    fn deployed_revision_only_when_healthy() {
        let ok = build_status(
            &report(AppOutcome::Succeeded, HealthStatus::healthy("")),
            &[],
            None,
            "t1",
        );
        assert_eq!(ok["deployedRevision"], "abc1234");
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
        assert_eq!(slow["deployedRevision"], "abc1234");
        assert_eq!(slow["health"]["status"], "Progressing");
    }

    #[test]
    fn unchanged_status_is_identical() {
        let r = report(AppOutcome::Succeeded, HealthStatus::healthy(""));
        let first = build_status(&r, &[], None, "t1");
        let second = build_status(&r, &[], Some(&first), "t2");
        assert_eq!(first, second);
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
