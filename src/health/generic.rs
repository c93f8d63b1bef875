//! The rule for every kind without one of its own, after Flux's kstatus:
//!
//! 1. `status.observedGeneration` below `metadata.generation` is Progressing
//!    (the controller has not seen the latest spec; objects that do not
//!    report `observedGeneration` skip this);
//! 2. `Stalled=True` is Degraded;
//! 3. `Reconciling=True` is Progressing (Flux sets `Ready=False` while it
//!    works, so this must come before `Ready`);
//! 4. `Ready`, else `Available`: `True` is Healthy, `False` Degraded,
//!    `Unknown` Progressing, with the condition's reason and message;
//! 5. anything else — including no status at all (ConfigMap, Secret,
//!    ServiceAccount, RBAC) — is Healthy with an empty message.

use serde_json::Value;

use super::fields::{checked, conditions, find, unobserved_generation};
use super::HealthStatus;

pub(crate) fn generic(obj: &Value) -> HealthStatus {
    checked(|| {
        if let Some((generation, observed)) = unobserved_generation(obj, None)? {
            return Ok(HealthStatus::progressing(format!(
                "waiting for the controller to observe generation {generation} (observed {observed})"
            )));
        }
        let conds = conditions(obj)?;
        if let Some(c) = find(&conds, "Stalled").filter(|c| c.is_true()) {
            return Ok(HealthStatus::degraded(c.text()));
        }
        if let Some(c) = find(&conds, "Reconciling").filter(|c| c.is_true()) {
            return Ok(HealthStatus::progressing(c.text()));
        }
        if let Some(c) = find(&conds, "Ready").or_else(|| find(&conds, "Available")) {
            return Ok(match c.status {
                "True" => HealthStatus::healthy(""),
                "False" => HealthStatus::degraded(c.text()),
                _ => HealthStatus::progressing(c.text()),
            });
        }
        Ok(HealthStatus::healthy(""))
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::{table, Case};
    use super::super::Health::*;
    use serde_json::{json, Value};

    fn cr(generation: i64, status: Value) -> Value {
        json!({
            "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
            "metadata": {"name": "podinfo", "namespace": "flux-system", "generation": generation},
            "spec": {"url": "https://github.com/stefanprodan/podinfo", "interval": "1m"},
            "status": status,
        })
    }

    fn cond(kind: &str, status: &str, reason: &str, message: &str) -> Value {
        json!({"type": kind, "status": status, "reason": reason, "message": message})
    }

    #[test]
    fn generic_table() {
        table(
            super::generic,
            &[
                Case(
                    "configmap",
                    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "b"}}),
                    Healthy,
                    "",
                ),
                Case(
                    "secret",
                    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "type": "Opaque"}),
                    Healthy,
                    "",
                ),
                Case(
                    "service account",
                    json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "sa"}}),
                    Healthy,
                    "",
                ),
                Case(
                    "cluster role",
                    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "r"}, "rules": []}),
                    Healthy,
                    "",
                ),
                Case(
                    "ready",
                    cr(
                        2,
                        json!({"observedGeneration": 2, "conditions": [cond("Ready", "True", "Succeeded", "stored artifact")]}),
                    ),
                    Healthy,
                    "",
                ),
                Case(
                    "stale generation",
                    cr(
                        3,
                        json!({"observedGeneration": 2, "conditions": [cond("Ready", "True", "Succeeded", "")]}),
                    ),
                    Progressing,
                    "observe generation 3 (observed 2)",
                ),
                Case(
                    "not ready",
                    cr(
                        2,
                        json!({"observedGeneration": 2, "conditions": [cond("Ready", "False", "GitOperationFailed", "authentication required")]}),
                    ),
                    Degraded,
                    "GitOperationFailed: authentication required",
                ),
                Case(
                    "reconciling beats ready=false",
                    cr(
                        2,
                        json!({"observedGeneration": 2, "conditions": [
                        cond("Reconciling", "True", "Progressing", "building artifact"),
                        cond("Ready", "False", "Progressing", "reconciliation in progress")]}),
                    ),
                    Progressing,
                    "building artifact",
                ),
                Case(
                    "stalled beats reconciling",
                    cr(
                        2,
                        json!({"observedGeneration": 2, "conditions": [
                        cond("Reconciling", "True", "Progressing", ""),
                        cond("Stalled", "True", "InvalidURL", "bad url")]}),
                    ),
                    Degraded,
                    "InvalidURL: bad url",
                ),
                Case(
                    "ready unknown",
                    cr(
                        1,
                        json!({"conditions": [cond("Ready", "Unknown", "Progressing", "")]}),
                    ),
                    Progressing,
                    "Progressing",
                ),
                Case(
                    "available false",
                    json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
                           "status": {"conditions": [cond("Available", "False", "", "backend down")]}}),
                    Degraded,
                    "backend down",
                ),
                Case(
                    "no observedGeneration reported",
                    cr(5, json!({"conditions": []})),
                    Healthy,
                    "",
                ),
                Case(
                    "conditions malformed",
                    cr(1, json!({"conditions": {"Ready": true}})),
                    Unknown,
                    "status.conditions is not a list",
                ),
            ],
        );
    }
}
