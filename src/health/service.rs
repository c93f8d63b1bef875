//! Service health: a `LoadBalancer` Service is Progressing until the cloud
//! provider publishes an address in `status.loadBalancer.ingress`; every other
//! Service is Healthy as soon as it exists.

use serde_json::Value;

use super::fields::{array, checked, string};
use super::HealthStatus;

pub(crate) fn service(obj: &Value) -> HealthStatus {
    checked(|| {
        if string(obj, "spec.type")? == Some("LoadBalancer")
            && array(obj, "status.loadBalancer.ingress")?.is_empty()
        {
            return Ok(HealthStatus::progressing(
                "waiting for the load balancer to be assigned an address",
            ));
        }
        Ok(HealthStatus::healthy(""))
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::{table, Case};
    use super::super::Health::*;
    use serde_json::{json, Value};

    fn svc(kind: &str, status: Value) -> Value {
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"type": kind, "ports": [{"port": 80, "targetPort": 8080}], "clusterIP": "10.96.0.12"},
            "status": status,
        })
    }

    #[test]
    fn service_table() {
        table(
            super::service,
            &[
                Case(
                    "cluster ip",
                    svc("ClusterIP", json!({"loadBalancer": {}})),
                    Healthy,
                    "",
                ),
                Case("node port", svc("NodePort", Value::Null), Healthy, ""),
                Case(
                    "lb pending",
                    svc("LoadBalancer", json!({"loadBalancer": {}})),
                    Progressing,
                    "load balancer",
                ),
                Case(
                    "lb no status",
                    svc("LoadBalancer", Value::Null),
                    Progressing,
                    "load balancer",
                ),
                Case(
                    "lb ready",
                    svc(
                        "LoadBalancer",
                        json!({"loadBalancer": {"ingress": [{"ip": "203.0.113.7"}]}}),
                    ),
                    Healthy,
                    "",
                ),
                Case(
                    "lb malformed",
                    svc("LoadBalancer", json!({"loadBalancer": {"ingress": "x"}})),
                    Unknown,
                    "is not a list",
                ),
            ],
        );
    }
}
