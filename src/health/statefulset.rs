//! StatefulSet health, following `kubectl rollout status`: an unobserved
//! spec or too few ready pods is Progressing; with a `RollingUpdate`
//! partition, only the pods at or above the partition must be updated; with
//! `OnDelete`, pods change only when deleted, so the set is Healthy once its
//! pods are ready; otherwise the rollout is done when `currentRevision`
//! reaches `updateRevision`.

use serde_json::Value;

use super::fields::{checked, int, name, string, unobserved_generation};
use super::HealthStatus;

pub(crate) fn statefulset(obj: &Value) -> HealthStatus {
    checked(|| {
        let name = name(obj);
        if let Some((generation, observed)) = unobserved_generation(obj, Some(0))? {
            return Ok(HealthStatus::progressing(format!(
                "waiting for statefulset spec update to be observed (generation {generation}, observed {observed})"
            )));
        }
        let desired = int(obj, "spec.replicas")?.unwrap_or(1);
        let ready = int(obj, "status.readyReplicas")?.unwrap_or(0);
        let updated = int(obj, "status.updatedReplicas")?.unwrap_or(0);
        if ready < desired {
            return Ok(HealthStatus::progressing(format!(
                "Waiting for statefulset {name:?}: {} of {desired} pods are not ready yet...",
                desired.saturating_sub(ready)
            )));
        }
        let strategy = string(obj, "spec.updateStrategy.type")?.unwrap_or("RollingUpdate");
        if strategy == "OnDelete" {
            return Ok(HealthStatus::healthy(format!(
                "statefulset uses OnDelete updates: {ready} pods ready, pods update when deleted"
            )));
        }
        let partition = int(obj, "spec.updateStrategy.rollingUpdate.partition")?.unwrap_or(0);
        if partition > 0 {
            let expected = desired.saturating_sub(partition).max(0);
            if updated < expected {
                return Ok(HealthStatus::progressing(format!(
                    "Waiting for partitioned roll out to finish: {updated} out of {expected} new pods have been updated..."
                )));
            }
            return Ok(HealthStatus::healthy(format!(
                "partitioned roll out complete: {updated} new pods have been updated"
            )));
        }
        let current_rev = string(obj, "status.currentRevision")?.unwrap_or("");
        let update_rev = string(obj, "status.updateRevision")?.unwrap_or("");
        if current_rev != update_rev {
            return Ok(HealthStatus::progressing(format!(
                "waiting for statefulset rolling update to complete: {updated} of {desired} pods at revision {update_rev}..."
            )));
        }
        Ok(HealthStatus::healthy(""))
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::{table, Case};
    use super::super::Health::*;
    use serde_json::{json, Value};

    fn sts(spec: Value, status: Value) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "db", "namespace": "shop", "generation": 3},
            "spec": spec, "status": status,
        })
    }

    #[test]
    fn statefulset_table() {
        let rolled = json!({"observedGeneration": 3, "replicas": 3, "readyReplicas": 3,
            "currentReplicas": 3, "updatedReplicas": 3,
            "currentRevision": "db-6c9f", "updateRevision": "db-6c9f"});
        table(
            super::statefulset,
            &[
                Case(
                    "rolled out",
                    sts(json!({"replicas": 3}), rolled.clone()),
                    Healthy,
                    "",
                ),
                Case(
                    "unobserved",
                    sts(
                        json!({"replicas": 3}),
                        json!({"observedGeneration": 2, "readyReplicas": 3}),
                    ),
                    Progressing,
                    "spec update to be observed",
                ),
                Case(
                    "pods not ready",
                    sts(
                        json!({"replicas": 3}),
                        json!({"observedGeneration": 3, "readyReplicas": 1}),
                    ),
                    Progressing,
                    "2 of 3 pods are not ready yet",
                ),
                Case(
                    "revision rolling",
                    sts(
                        json!({"replicas": 3}),
                        json!({"observedGeneration": 3, "readyReplicas": 3,
                        "updatedReplicas": 1, "currentRevision": "db-6c9f", "updateRevision": "db-7a1b"}),
                    ),
                    Progressing,
                    "1 of 3 pods at revision db-7a1b",
                ),
                Case(
                    "partition in progress",
                    sts(
                        json!({"replicas": 4, "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}}),
                        json!({"observedGeneration": 3, "readyReplicas": 4, "updatedReplicas": 1,
                               "currentRevision": "db-1", "updateRevision": "db-2"}),
                    ),
                    Progressing,
                    "1 out of 2 new pods have been updated",
                ),
                Case(
                    "partition done, revisions legitimately differ",
                    sts(
                        json!({"replicas": 4, "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}}),
                        json!({"observedGeneration": 3, "readyReplicas": 4, "updatedReplicas": 2,
                               "currentRevision": "db-1", "updateRevision": "db-2"}),
                    ),
                    Healthy,
                    "partitioned roll out complete",
                ),
                Case(
                    "OnDelete ignores revisions",
                    sts(
                        json!({"replicas": 2, "updateStrategy": {"type": "OnDelete"}}),
                        json!({"observedGeneration": 3, "readyReplicas": 2,
                               "currentRevision": "db-1", "updateRevision": "db-2"}),
                    ),
                    Healthy,
                    "OnDelete",
                ),
                Case(
                    "OnDelete still waits for ready pods",
                    sts(
                        json!({"replicas": 2, "updateStrategy": {"type": "OnDelete"}}),
                        json!({"observedGeneration": 3, "readyReplicas": 0}),
                    ),
                    Progressing,
                    "2 of 2 pods",
                ),
                Case(
                    "partition as a string",
                    sts(
                        json!({"updateStrategy": {"rollingUpdate": {"partition": "1"}}}),
                        rolled,
                    ),
                    Unknown,
                    "partition is not an integer",
                ),
            ],
        );
    }
}
