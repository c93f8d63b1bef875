//! PersistentVolumeClaim health: Bound is Healthy, Pending is Progressing
//! (a `WaitForFirstConsumer` class binds only once a pod uses the claim),
//! Lost is Degraded.

use serde_json::Value;

use super::fields::{checked, string};
use super::HealthStatus;

pub(crate) fn persistent_volume_claim(obj: &Value) -> HealthStatus {
    checked(|| {
        Ok(match string(obj, "status.phase")? {
            Some("Bound") => HealthStatus::healthy(""),
            Some("Pending") | None => {
                HealthStatus::progressing("waiting for the claim to be bound to a volume")
            }
            Some("Lost") => HealthStatus::degraded("the claim's volume is lost"),
            Some(other) => HealthStatus::unknown(format!("claim phase is {other}")),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::{table, Case};
    use super::super::Health::*;
    use serde_json::{json, Value};

    fn pvc(status: Value) -> Value {
        json!({
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data-db-0", "namespace": "shop"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
            "status": status,
        })
    }

    #[test]
    fn pvc_table() {
        table(
            super::persistent_volume_claim,
            &[
                Case(
                    "bound",
                    pvc(json!({"phase": "Bound", "capacity": {"storage": "1Gi"}})),
                    Healthy,
                    "",
                ),
                Case(
                    "pending",
                    pvc(json!({"phase": "Pending"})),
                    Progressing,
                    "to be bound",
                ),
                Case("no status", pvc(Value::Null), Progressing, "to be bound"),
                Case(
                    "lost",
                    pvc(json!({"phase": "Lost"})),
                    Degraded,
                    "volume is lost",
                ),
                Case(
                    "odd phase",
                    pvc(json!({"phase": "Weird"})),
                    Unknown,
                    "Weird",
                ),
            ],
        );
    }
}
