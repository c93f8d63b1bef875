//! Deployment health, following `kubectl rollout status`: paused is
//! Suspended; an unobserved spec, too few updated replicas, old replicas still
//! terminating, or updated replicas not yet available are Progressing; a
//! `Progressing` condition with reason `ProgressDeadlineExceeded` is Degraded.

use serde_json::Value;

use super::fields::{boolean, checked, conditions, find, int, name, unobserved_generation};
use super::HealthStatus;

pub(crate) fn deployment(obj: &Value) -> HealthStatus {
    checked(|| {
        let name = name(obj);
        if boolean(obj, "spec.paused")?.unwrap_or(false) {
            return Ok(HealthStatus::suspended(format!(
                "deployment {name:?} rollout is paused"
            )));
        }
        if let Some((generation, observed)) = unobserved_generation(obj, Some(0))? {
            return Ok(HealthStatus::progressing(format!(
                "waiting for rollout to be observed (generation {generation}, observed {observed})"
            )));
        }
        let conds = conditions(obj)?;
        if let Some(c) =
            find(&conds, "Progressing").filter(|c| c.reason == "ProgressDeadlineExceeded")
        {
            let mut msg = format!("deployment {name:?} exceeded its progress deadline");
            if !c.message.is_empty() {
                msg = format!("{msg}: {}", c.message);
            }
            return Ok(HealthStatus::degraded(msg));
        }
        let desired = int(obj, "spec.replicas")?.unwrap_or(1);
        let replicas = int(obj, "status.replicas")?.unwrap_or(0);
        let updated = int(obj, "status.updatedReplicas")?.unwrap_or(0);
        let available = int(obj, "status.availableReplicas")?.unwrap_or(0);
        let waiting = |what: String| {
            HealthStatus::progressing(format!(
                "Waiting for deployment {name:?} rollout to finish: {what}..."
            ))
        };
        if updated < desired {
            return Ok(waiting(format!(
                "{updated} out of {desired} new replicas have been updated"
            )));
        }
        if replicas > updated {
            return Ok(waiting(format!(
                "{} old replicas are pending termination",
                replicas.saturating_sub(updated)
            )));
        }
        if available < updated {
            return Ok(waiting(format!(
                "{available} of {updated} updated replicas are available"
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

    fn deploy(spec: Value, status: Value) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop", "generation": 2,
                         "annotations": {"deployment.kubernetes.io/revision": "2"}},
            "spec": spec,
            "status": status,
        })
    }

    fn done(replicas: i64) -> Value {
        json!({
            "observedGeneration": 2, "replicas": replicas, "updatedReplicas": replicas,
            "readyReplicas": replicas, "availableReplicas": replicas,
            "conditions": [
                {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
                {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
                 "message": "ReplicaSet \"web-7d4b9c\" has successfully progressed."}
            ]
        })
    }

    #[test]
    fn deployment_table() {
        table(
            super::deployment,
            &[
                Case("rolled out", deploy(json!({"replicas": 3}), done(3)), Healthy, ""),
                Case("default one replica", deploy(json!({}), done(1)), Healthy, ""),
                Case("scaled to zero", deploy(json!({"replicas": 0}), json!({"observedGeneration": 2})), Healthy, ""),
                Case(
                    "paused",
                    deploy(json!({"replicas": 3, "paused": true}), json!({"observedGeneration": 1})),
                    Suspended,
                    "rollout is paused",
                ),
                Case(
                    "spec not observed",
                    deploy(json!({"replicas": 3}), json!({"observedGeneration": 1, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3})),
                    Progressing,
                    "waiting for rollout to be observed",
                ),
                Case("no status yet", deploy(json!({"replicas": 3}), Value::Null), Progressing, "observed 0"),
                Case(
                    "updating",
                    deploy(json!({"replicas": 3}), json!({"observedGeneration": 2, "replicas": 4, "updatedReplicas": 1, "availableReplicas": 3})),
                    Progressing,
                    "1 out of 3 new replicas have been updated",
                ),
                Case(
                    "old pods terminating",
                    deploy(json!({"replicas": 3}), json!({"observedGeneration": 2, "replicas": 5, "updatedReplicas": 3, "availableReplicas": 3})),
                    Progressing,
                    "2 old replicas are pending termination",
                ),
                Case(
                    "not yet available",
                    deploy(json!({"replicas": 3}), json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 1})),
                    Progressing,
                    "1 of 3 updated replicas are available",
                ),
                Case(
                    "deadline exceeded",
                    deploy(json!({"replicas": 3}), json!({
                        "observedGeneration": 2, "replicas": 4, "updatedReplicas": 1, "availableReplicas": 3,
                        "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                                        "message": "ReplicaSet \"web-5f\" has timed out progressing."}]
                    })),
                    Degraded,
                    "deployment \"web\" exceeded its progress deadline: ReplicaSet \"web-5f\" has timed out progressing.",
                ),
                Case(
                    "replicas as a string",
                    deploy(json!({"replicas": "3"}), done(3)),
                    Unknown,
                    "spec.replicas is not an integer",
                ),
                Case(
                    "status is not an object",
                    deploy(json!({"replicas": 3}), json!([1, 2])),
                    Unknown,
                    "status is not an object",
                ),
            ],
        );
    }

    #[test]
    fn extensions_group_is_assessed_too() {
        let mut d = deploy(json!({"replicas": 3, "paused": true}), Value::Null);
        d["apiVersion"] = json!("extensions/v1beta1");
        assert_eq!(super::super::assess(&d).health, Suspended);
    }
}
