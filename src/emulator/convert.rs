//! Version conversion of built-in kinds served at more than one version
//! whose shapes differ: the HorizontalPodAutoscaler, stored as
//! `autoscaling/v2` and also served as `autoscaling/v1`, as the real API
//! server does. Pure functions from one shape to the other; `cluster`
//! converts what a client writes at v1 to the stored shape and what it
//! reads back to v1.
//!
//! The mapping follows the API server's: v1's
//! `targetCPUUtilizationPercentage` is v2's CPU `Utilization` resource
//! metric; v2 metrics v1 cannot express, `behavior` and `status.conditions`
//! travel in the `autoscaling.alpha.kubernetes.io/{metrics,behavior,
//! conditions}` annotations of the v1 view (so a v1 round trip keeps them);
//! `status.currentCPUUtilizationPercentage` is the current CPU utilization.
//! Not converted: managedFields (a v1 writer's entries keep v1 field paths).

use serde_json::{json, Map, Value};

use super::resources::ResourceType;

const METRICS_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/metrics";
const BEHAVIOR_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/behavior";
const CONDITIONS_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/conditions";

fn is_hpa_v1(rt: &ResourceType) -> bool {
    rt.group == "autoscaling" && rt.version == "v1" && rt.kind == "HorizontalPodAutoscaler"
}

/// Whether objects served at `rt` differ in shape from the stored ones.
pub fn converts(rt: &ResourceType) -> bool {
    is_hpa_v1(rt)
}

/// The stored object as served at `rt`'s version.
pub fn to_served(rt: &ResourceType, stored: &Value) -> Value {
    if is_hpa_v1(rt) {
        hpa_v2_to_v1(stored)
    } else {
        stored.clone()
    }
}

/// An object written at `rt`'s version, in the stored shape.
pub fn to_stored(rt: &ResourceType, written: Value) -> Value {
    if is_hpa_v1(rt) {
        hpa_v1_to_v2(written)
    } else {
        written
    }
}

fn is_cpu_utilization(m: &Value) -> bool {
    m.get("type").and_then(Value::as_str) == Some("Resource")
        && m.pointer("/resource/name").and_then(Value::as_str) == Some("cpu")
        && m.pointer("/resource/target/type").and_then(Value::as_str) == Some("Utilization")
}

fn annotations(obj: &mut Value) -> Option<&mut Map<String, Value>> {
    let meta = obj.get_mut("metadata")?.as_object_mut()?;
    meta.entry("annotations")
        .or_insert_with(|| json!({}))
        .as_object_mut()
}

fn drop_empty_annotations(obj: &mut Value) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        if meta
            .get("annotations")
            .and_then(Value::as_object)
            .is_some_and(Map::is_empty)
        {
            meta.remove("annotations");
        }
    }
}

fn hpa_v2_to_v1(v2: &Value) -> Value {
    let mut out = v2.clone();
    let Some(spec) = out.get_mut("spec").and_then(Value::as_object_mut) else {
        return out;
    };
    let metrics = spec
        .remove("metrics")
        .and_then(|m| m.as_array().cloned())
        .unwrap_or_default();
    let behavior = spec.remove("behavior");
    let (cpu, others): (Vec<Value>, Vec<Value>) = metrics.into_iter().partition(is_cpu_utilization);
    if let Some(u) = cpu
        .first()
        .and_then(|m| m.pointer("/resource/target/averageUtilization"))
    {
        spec.insert("targetCPUUtilizationPercentage".into(), u.clone());
    }
    let conditions = out
        .get_mut("status")
        .and_then(Value::as_object_mut)
        .and_then(|s| {
            let current = s.remove("currentMetrics");
            let cpu_now = current
                .as_ref()
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .find(|m| {
                    m.get("type").and_then(Value::as_str) == Some("Resource")
                        && m.pointer("/resource/name").and_then(Value::as_str) == Some("cpu")
                })
                .and_then(|m| m.pointer("/resource/current/averageUtilization"))
                .cloned();
            if let Some(u) = cpu_now {
                s.insert("currentCPUUtilizationPercentage".into(), u);
            }
            s.remove("conditions")
        });
    if let Some(a) = annotations(&mut out) {
        if !others.is_empty() {
            a.insert(
                METRICS_ANNOTATION.into(),
                json!(Value::Array(others).to_string()),
            );
        }
        if let Some(b) = behavior.filter(|b| !b.is_null()) {
            a.insert(BEHAVIOR_ANNOTATION.into(), json!(b.to_string()));
        }
        if let Some(c) = conditions.filter(|c| c.as_array().is_some_and(|c| !c.is_empty())) {
            a.insert(CONDITIONS_ANNOTATION.into(), json!(c.to_string()));
        }
    }
    drop_empty_annotations(&mut out);
    out
}

fn hpa_v1_to_v2(v1: Value) -> Value {
    let mut out = v1;
    let mut restored = |key: &str| -> Option<Value> {
        let a = out
            .get_mut("metadata")?
            .get_mut("annotations")?
            .as_object_mut()?;
        let text = a.remove(key)?;
        serde_json::from_str(text.as_str()?).ok()
    };
    let others = restored(METRICS_ANNOTATION);
    let behavior = restored(BEHAVIOR_ANNOTATION);
    let conditions = restored(CONDITIONS_ANNOTATION);
    drop_empty_annotations(&mut out);
    if let Some(spec) = out.get_mut("spec").and_then(Value::as_object_mut) {
        let mut metrics = Vec::new();
        if let Some(u) = spec.remove("targetCPUUtilizationPercentage") {
            metrics.push(json!({"type": "Resource", "resource": {"name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": u}}}));
        }
        metrics.extend(
            others
                .and_then(|o| o.as_array().cloned())
                .unwrap_or_default(),
        );
        if !metrics.is_empty() {
            spec.insert("metrics".into(), Value::Array(metrics));
        }
        if let Some(b) = behavior {
            spec.insert("behavior".into(), b);
        }
    }
    if let Some(status) = out.get_mut("status").and_then(Value::as_object_mut) {
        if let Some(u) = status.remove("currentCPUUtilizationPercentage") {
            status.insert(
                "currentMetrics".into(),
                json!([{"type": "Resource", "resource": {"name": "cpu",
                    "current": {"averageUtilization": u}}}]),
            );
        }
        if let Some(c) = conditions {
            status.insert("conditions".into(), c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_round_trips_through_the_stored_v2_shape() {
        let v1 = json!({"metadata": {"name": "web"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                     "minReplicas": 1, "maxReplicas": 5, "targetCPUUtilizationPercentage": 50}});
        let v2 = hpa_v1_to_v2(v1.clone());
        assert_eq!(
            v2.pointer("/spec/metrics/0/resource/target/averageUtilization"),
            Some(&json!(50))
        );
        assert!(v2.pointer("/spec/targetCPUUtilizationPercentage").is_none());
        assert_eq!(hpa_v2_to_v1(&v2), v1);
    }

    #[test]
    fn what_v1_cannot_express_travels_in_annotations() {
        let v2 = json!({"metadata": {"name": "web"},
            "spec": {"maxReplicas": 3, "metrics": [
                {"type": "Resource", "resource": {"name": "memory", "target": {"type": "Utilization", "averageUtilization": 70}}}],
                "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}}},
            "status": {"currentReplicas": 1, "desiredReplicas": 1,
                "conditions": [{"type": "AbleToScale", "status": "True"}]}});
        let v1 = hpa_v2_to_v1(&v2);
        let a = &v1["metadata"]["annotations"];
        assert!(a[METRICS_ANNOTATION].as_str().unwrap().contains("memory"));
        assert!(a[CONDITIONS_ANNOTATION]
            .as_str()
            .unwrap()
            .contains("AbleToScale"));
        assert!(v1.pointer("/spec/targetCPUUtilizationPercentage").is_none());
        assert_eq!(hpa_v1_to_v2(v1), v2);
    }
}
