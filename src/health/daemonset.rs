//! DaemonSet health, following `kubectl rollout status`: an unobserved spec,
//! nodes still running an old pod, or updated pods not yet available are
//! Progressing. With `OnDelete` updates, old pods are replaced only when
//! deleted, so only availability is waited for.

use serde_json::Value;

use super::fields::{checked, int, name, string, unobserved_generation};
use super::HealthStatus;

pub(crate) fn daemonset(obj: &Value) -> HealthStatus {
    checked(|| {
        let name = name(obj);
        if let Some((generation, observed)) = unobserved_generation(obj, Some(0))? {
            return Ok(HealthStatus::progressing(format!(
                "waiting for daemon set spec update to be observed (generation {generation}, observed {observed})"
            )));
        }
        let desired = int(obj, "status.desiredNumberScheduled")?.unwrap_or(0);
        let updated = int(obj, "status.updatedNumberScheduled")?.unwrap_or(0);
        let available = int(obj, "status.numberAvailable")?.unwrap_or(0);
        let on_delete = string(obj, "spec.updateStrategy.type")? == Some("OnDelete");
        let waiting = |what: String| {
            HealthStatus::progressing(format!(
                "Waiting for daemon set {name:?} rollout to finish: {what}..."
            ))
        };
        if !on_delete && updated < desired {
            return Ok(waiting(format!(
                "{updated} out of {desired} new pods have been updated"
            )));
        }
        if available < desired {
            let of = if on_delete { "scheduled" } else { "updated" };
            return Ok(waiting(format!(
                "{available} of {desired} {of} pods are available"
            )));
        }
        Ok(HealthStatus::healthy(if on_delete && updated < desired {
            format!("daemon set uses OnDelete updates: {updated} of {desired} pods updated")
        } else {
            String::new()
        }))
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::{table, Case};
    use super::super::Health::*;
    use serde_json::{json, Value};

    fn ds(spec: Value, status: Value) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "node-exporter", "namespace": "monitoring", "generation": 1},
            "spec": spec, "status": status,
        })
    }

    #[test]
    fn daemonset_table() {
        table(
            super::daemonset,
            &[
                Case(
                    "rolled out",
                    ds(
                        json!({}),
                        json!({"observedGeneration": 1, "desiredNumberScheduled": 3, "currentNumberScheduled": 3,
                        "updatedNumberScheduled": 3, "numberAvailable": 3, "numberReady": 3}),
                    ),
                    Healthy,
                    "",
                ),
                Case(
                    "no nodes match",
                    ds(
                        json!({}),
                        json!({"observedGeneration": 1, "desiredNumberScheduled": 0}),
                    ),
                    Healthy,
                    "",
                ),
                Case(
                    "unobserved",
                    ds(json!({}), json!({})),
                    Progressing,
                    "spec update to be observed",
                ),
                Case(
                    "updating",
                    ds(
                        json!({}),
                        json!({"observedGeneration": 1, "desiredNumberScheduled": 3,
                        "updatedNumberScheduled": 1, "numberAvailable": 3}),
                    ),
                    Progressing,
                    "1 out of 3 new pods have been updated",
                ),
                Case(
                    "not available",
                    ds(
                        json!({}),
                        json!({"observedGeneration": 1, "desiredNumberScheduled": 3,
                        "updatedNumberScheduled": 3, "numberAvailable": 2}),
                    ),
                    Progressing,
                    "2 of 3 updated pods are available",
                ),
                Case(
                    "OnDelete with old pods",
                    ds(
                        json!({"updateStrategy": {"type": "OnDelete"}}),
                        json!({"observedGeneration": 1,
                        "desiredNumberScheduled": 3, "updatedNumberScheduled": 1, "numberAvailable": 3}),
                    ),
                    Healthy,
                    "OnDelete updates: 1 of 3",
                ),
                Case(
                    "OnDelete not available",
                    ds(
                        json!({"updateStrategy": {"type": "OnDelete"}}),
                        json!({"observedGeneration": 1,
                        "desiredNumberScheduled": 3, "updatedNumberScheduled": 1, "numberAvailable": 1}),
                    ),
                    Progressing,
                    "1 of 3 scheduled pods are available",
                ),
            ],
        );
    }
}
