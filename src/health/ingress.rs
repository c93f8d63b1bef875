//! Ingress health: always Healthy, with a note when no address is published.
//!
//! Argo CD reports an Ingress without `status.loadBalancer.ingress` as
//! Progressing. kubesync deliberately does not: many working setups never
//! publish an address (ingress-nginx without `publishService`, bare-metal
//! and kind clusters, controllers that do not write status, the emulator),
//! and since dependents start only when an app is Healthy, Progressing would
//! block them forever for a routing object that is in fact serving. The
//! missing address is shown in the message instead.

use serde_json::Value;

use super::fields::{array, checked};
use super::HealthStatus;

pub(crate) fn ingress(obj: &Value) -> HealthStatus {
    checked(|| {
        Ok(HealthStatus::healthy(
            if array(obj, "status.loadBalancer.ingress")?.is_empty() {
                "no load balancer address published yet"
            } else {
                ""
            },
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::{table, Case};
    use super::super::Health::*;
    use serde_json::{json, Value};

    fn ing(api_version: &str, status: Value) -> Value {
        json!({
            "apiVersion": api_version, "kind": "Ingress",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"ingressClassName": "nginx", "rules": [{"host": "shop.example.com"}]},
            "status": status,
        })
    }

    #[test]
    fn ingress_table() {
        table(
            super::ingress,
            &[
                Case(
                    "address",
                    ing(
                        "networking.k8s.io/v1",
                        json!({"loadBalancer": {"ingress": [{"hostname": "lb.example.com"}]}}),
                    ),
                    Healthy,
                    "",
                ),
                Case(
                    "no address",
                    ing("networking.k8s.io/v1", json!({"loadBalancer": {}})),
                    Healthy,
                    "no load balancer address",
                ),
                Case(
                    "legacy group",
                    ing("extensions/v1beta1", Value::Null),
                    Healthy,
                    "no load balancer address",
                ),
                Case(
                    "malformed",
                    ing("networking.k8s.io/v1", json!({"loadBalancer": 3})),
                    Unknown,
                    "status.loadBalancer is not an object",
                ),
            ],
        );
    }
}
