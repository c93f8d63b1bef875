//! PodDisruptionBudget health.
//!
//! A `DisruptionAllowed=False` condition whose reason is anything but
//! `InsufficientPods` (e.g. `SyncFailed`) is Degraded. Fewer healthy pods
//! than the budget requires, with no disruptions allowed, is *Progressing*,
//! not Degraded: the budget only mirrors the health of pods whose own
//! workload already reports it, and on every fresh rollout the budget's pods
//! start unhealthy — calling that Degraded would turn every new app
//! Degraded for its first minute. Argo CD reached the same conclusion for
//! `InsufficientPods`. A budget that blocks all disruptions on purpose
//! (`minAvailable` equal to the replica count) is Healthy.

use serde_json::Value;

use super::fields::{checked, conditions, find, get, int, unobserved_generation};
use super::HealthStatus;

pub(crate) fn pod_disruption_budget(obj: &Value) -> HealthStatus {
    checked(|| {
        if get(obj, "status")?.is_none() {
            return Ok(HealthStatus::progressing(
                "waiting for the disruption controller to report status",
            ));
        }
        if let Some((generation, observed)) = unobserved_generation(obj, None)? {
            return Ok(HealthStatus::progressing(format!(
                "waiting for the budget to be observed (generation {generation}, observed {observed})"
            )));
        }
        let conds = conditions(obj)?;
        if let Some(c) = find(&conds, "DisruptionAllowed")
            .filter(|c| c.is_false() && c.reason != "InsufficientPods")
        {
            return Ok(HealthStatus::degraded(c.text()));
        }
        let current = int(obj, "status.currentHealthy")?.unwrap_or(0);
        let desired = int(obj, "status.desiredHealthy")?.unwrap_or(0);
        let allowed = int(obj, "status.disruptionsAllowed")?.unwrap_or(0);
        if allowed <= 0 && current < desired {
            return Ok(HealthStatus::progressing(format!(
                "waiting for pods: {current} of {desired} required pods are healthy, no disruptions allowed"
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

    fn pdb(status: Value) -> Value {
        json!({
            "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": "web", "namespace": "shop", "generation": 1},
            "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}},
            "status": status,
        })
    }

    #[test]
    fn pdb_table() {
        table(
            super::pod_disruption_budget,
            &[
                Case(
                    "room to disrupt",
                    pdb(
                        json!({"observedGeneration": 1, "currentHealthy": 3, "desiredHealthy": 2, "expectedPods": 3,
                        "disruptionsAllowed": 1,
                        "conditions": [{"type": "DisruptionAllowed", "status": "True", "reason": "SufficientPods"}]}),
                    ),
                    Healthy,
                    "",
                ),
                Case(
                    "blocks disruptions on purpose",
                    pdb(
                        json!({"observedGeneration": 1, "currentHealthy": 2, "desiredHealthy": 2, "expectedPods": 2,
                        "disruptionsAllowed": 0,
                        "conditions": [{"type": "DisruptionAllowed", "status": "False", "reason": "InsufficientPods"}]}),
                    ),
                    Healthy,
                    "",
                ),
                Case(
                    "pods not healthy yet",
                    pdb(
                        json!({"observedGeneration": 1, "currentHealthy": 1, "desiredHealthy": 2, "expectedPods": 2,
                        "disruptionsAllowed": 0,
                        "conditions": [{"type": "DisruptionAllowed", "status": "False", "reason": "InsufficientPods"}]}),
                    ),
                    Progressing,
                    "1 of 2 required pods are healthy",
                ),
                Case(
                    "sync failed",
                    pdb(
                        json!({"observedGeneration": 1, "conditions": [{"type": "DisruptionAllowed", "status": "False",
                        "reason": "SyncFailed", "message": "found no controllers for pod \"web-0\""}]}),
                    ),
                    Degraded,
                    "SyncFailed: found no controllers",
                ),
                Case(
                    "no status",
                    pdb(Value::Null),
                    Progressing,
                    "disruption controller",
                ),
                Case(
                    "stale",
                    pdb(json!({"observedGeneration": 0})),
                    Progressing,
                    "to be observed",
                ),
            ],
        );
    }
}
