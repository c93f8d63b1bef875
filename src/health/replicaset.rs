//! ReplicaSet health: a `ReplicaFailure` condition (quota exceeded, a pod
//! rejected by admission) is Degraded; fewer available replicas than desired
//! is Progressing.

use serde_json::Value;

use super::fields::{checked, conditions, find, int, name, unobserved_generation};
use super::HealthStatus;

pub(crate) fn replicaset(obj: &Value) -> HealthStatus {
    checked(|| {
        let name = name(obj);
        if let Some((generation, observed)) = unobserved_generation(obj, Some(0))? {
            return Ok(HealthStatus::progressing(format!(
                "waiting for replica set spec update to be observed (generation {generation}, observed {observed})"
            )));
        }
        let conds = conditions(obj)?;
        if let Some(c) = find(&conds, "ReplicaFailure").filter(|c| c.is_true()) {
            return Ok(HealthStatus::degraded(c.text()));
        }
        let desired = int(obj, "spec.replicas")?.unwrap_or(1);
        let available = int(obj, "status.availableReplicas")?.unwrap_or(0);
        if available < desired {
            return Ok(HealthStatus::progressing(format!(
                "Waiting for replica set {name:?}: {available} of {desired} replicas are available..."
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

    fn rs(replicas: i64, status: Value) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "web-7d4b9c", "namespace": "shop", "generation": 1,
                         "ownerReferences": [{"kind": "Deployment", "name": "web"}]},
            "spec": {"replicas": replicas}, "status": status,
        })
    }

    #[test]
    fn replicaset_table() {
        table(
            super::replicaset,
            &[
                Case(
                    "available",
                    rs(
                        2,
                        json!({"observedGeneration": 1, "replicas": 2, "readyReplicas": 2, "availableReplicas": 2}),
                    ),
                    Healthy,
                    "",
                ),
                Case(
                    "scaled down",
                    rs(0, json!({"observedGeneration": 1, "replicas": 0})),
                    Healthy,
                    "",
                ),
                Case(
                    "unobserved",
                    rs(2, json!({})),
                    Progressing,
                    "to be observed",
                ),
                Case(
                    "coming up",
                    rs(
                        2,
                        json!({"observedGeneration": 1, "replicas": 2, "availableReplicas": 1}),
                    ),
                    Progressing,
                    "1 of 2 replicas are available",
                ),
                Case(
                    "quota exceeded",
                    rs(
                        2,
                        json!({"observedGeneration": 1, "replicas": 0, "conditions": [{
                        "type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
                        "message": "pods \"web-7d4b9c-x\" is forbidden: exceeded quota: compute"}]}),
                    ),
                    Degraded,
                    "FailedCreate: pods \"web-7d4b9c-x\" is forbidden: exceeded quota",
                ),
            ],
        );
    }
}
