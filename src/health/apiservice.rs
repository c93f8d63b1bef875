//! APIService health: `Available=True` is Healthy. Anything else is
//! Progressing with the condition's reason (e.g. `MissingEndpoints`,
//! `FailedDiscoveryCheck`), as in gitops-engine: an aggregated API is
//! unavailable mostly while its backing Deployment starts, and that
//! Deployment reports its own failure as Degraded. Locally served
//! APIServices (no `spec.service`) are always Available.

use serde_json::Value;

use super::fields::{checked, conditions, find};
use super::HealthStatus;

pub(crate) fn api_service(obj: &Value) -> HealthStatus {
    checked(|| {
        let conds = conditions(obj)?;
        Ok(match find(&conds, "Available") {
            Some(c) if c.is_true() => HealthStatus::healthy(""),
            Some(c) => HealthStatus::progressing(format!("API is not available: {}", c.text())),
            None => HealthStatus::progressing("waiting for the API to become available"),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::{table, Case};
    use super::super::Health::*;
    use serde_json::{json, Value};

    fn api(conditions: Value) -> Value {
        json!({
            "apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
            "metadata": {"name": "v1beta1.metrics.k8s.io"},
            "spec": {"group": "metrics.k8s.io", "version": "v1beta1",
                     "service": {"name": "metrics-server", "namespace": "kube-system", "port": 443}},
            "status": {"conditions": conditions},
        })
    }

    #[test]
    fn apiservice_table() {
        table(
            super::api_service,
            &[
                Case(
                    "available",
                    api(json!([{"type": "Available", "status": "True", "reason": "Passed"}])),
                    Healthy,
                    "",
                ),
                Case(
                    "no endpoints",
                    api(
                        json!([{"type": "Available", "status": "False", "reason": "MissingEndpoints",
                                "message": "endpoints for service/metrics-server in \"kube-system\" have no addresses"}]),
                    ),
                    Progressing,
                    "MissingEndpoints: endpoints for service/metrics-server",
                ),
                Case("new", api(Value::Null), Progressing, "waiting for the API"),
            ],
        );
    }
}
