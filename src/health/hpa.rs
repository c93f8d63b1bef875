//! HorizontalPodAutoscaler health: `AbleToScale=False` (it cannot read or
//! update its target's scale) is Degraded; `ScalingActive=False` with a
//! `Failed…` reason (`FailedGetResourceMetric`, `FailedGetExternalMetric`, …)
//! or an invalid selector or metric source is Degraded — typically a missing
//! metrics-server. Anything else, including `ScalingActive=False` with
//! `ScalingDisabled` (target scaled to zero) and no conditions yet, is
//! Healthy. For `autoscaling/v1`, whose schema has no conditions, the
//! conditions are read from the `autoscaling.alpha.kubernetes.io/conditions`
//! annotation the API server writes there.

use serde_json::{json, Value};

use super::fields::{checked, conditions, conditions_at, find, Condition, FieldError};
use super::HealthStatus;

const V1_CONDITIONS_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/conditions";

pub(crate) fn horizontal_pod_autoscaler(obj: &Value) -> HealthStatus {
    checked(|| {
        let conds = conditions(obj)?;
        if !conds.is_empty() {
            return Ok(from_conditions(&conds));
        }
        let annotation = obj
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(V1_CONDITIONS_ANNOTATION));
        let Some(annotation) = annotation else {
            return Ok(HealthStatus::healthy(""));
        };
        let path = format!("metadata.annotations.{V1_CONDITIONS_ANNOTATION}");
        let text = annotation
            .as_str()
            .ok_or_else(|| FieldError(format!("{path} is not a string")))?;
        let parsed: Value = serde_json::from_str(text)
            .map_err(|e| FieldError(format!("{path} is not valid JSON: {e}")))?;
        let wrapped = json!({ "conditions": parsed });
        Ok(from_conditions(&conditions_at(&wrapped, "conditions")?))
    })
}

fn from_conditions(conds: &[Condition<'_>]) -> HealthStatus {
    if let Some(c) = find(conds, "AbleToScale").filter(|c| c.is_false()) {
        return HealthStatus::degraded(c.text());
    }
    if let Some(c) = find(conds, "ScalingActive").filter(|c| {
        c.is_false()
            && (c.reason.starts_with("Failed")
                || c.reason == "InvalidSelector"
                || c.reason == "InvalidMetricSourceType")
    }) {
        return HealthStatus::degraded(c.text());
    }
    HealthStatus::healthy("")
}

#[cfg(test)]
mod tests {
    use super::super::tests::{table, Case};
    use super::super::Health::*;
    use serde_json::{json, Value};

    fn hpa(conditions: Value) -> Value {
        json!({
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                     "minReplicas": 2, "maxReplicas": 10},
            "status": {"currentReplicas": 2, "desiredReplicas": 2, "conditions": conditions},
        })
    }

    #[test]
    fn hpa_table() {
        let v1 = json!({
            "apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web", "annotations": {
                "autoscaling.alpha.kubernetes.io/conditions":
                    "[{\"type\":\"AbleToScale\",\"status\":\"True\",\"reason\":\"SucceededGetScale\"},{\"type\":\"ScalingActive\",\"status\":\"False\",\"reason\":\"FailedGetResourceMetric\",\"message\":\"unable to get metrics for resource cpu\"}]"}},
            "spec": {"maxReplicas": 3}, "status": {"currentReplicas": 1},
        });
        table(
            super::horizontal_pod_autoscaler,
            &[
                Case(
                    "scaling",
                    hpa(json!([
                        {"type": "AbleToScale", "status": "True", "reason": "ReadyForNewScale"},
                        {"type": "ScalingActive", "status": "True", "reason": "ValidMetricFound"},
                        {"type": "ScalingLimited", "status": "False", "reason": "DesiredWithinRange"}])),
                    Healthy,
                    "",
                ),
                Case("new", hpa(Value::Null), Healthy, ""),
                Case(
                    "no metrics server",
                    hpa(json!([
                        {"type": "AbleToScale", "status": "True", "reason": "SucceededGetScale"},
                        {"type": "ScalingActive", "status": "False", "reason": "FailedGetResourceMetric",
                         "message": "the HPA was unable to compute the replica count: failed to get cpu utilization"}])),
                    Degraded,
                    "FailedGetResourceMetric: the HPA was unable",
                ),
                Case(
                    "target missing",
                    hpa(
                        json!([{"type": "AbleToScale", "status": "False", "reason": "FailedGetScale",
                                "message": "deployments/scale.apps \"web\" not found"}]),
                    ),
                    Degraded,
                    "FailedGetScale",
                ),
                Case(
                    "scaled to zero",
                    hpa(
                        json!([{"type": "ScalingActive", "status": "False", "reason": "ScalingDisabled"}]),
                    ),
                    Healthy,
                    "",
                ),
                Case(
                    "v1 annotation",
                    v1,
                    Degraded,
                    "unable to get metrics for resource cpu",
                ),
            ],
        );
    }
}
