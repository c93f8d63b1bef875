//! The disruption controller: a PodDisruptionBudget reports how many of the
//! pods its selector matches are healthy (Ready), how many must be, and how
//! many disruptions that allows, with the `DisruptionAllowed` condition.
//! Budgets are looked at again periodically, since pods come and go.

use serde_json::{json, Map, Value};

use super::{is_deleting, list, pod_ready, write_status, Ctx, Kind, Requeue};

const DISRUPTION_CONTROLLER: &str = "kube-controller-manager";

pub(super) fn reconcile(ctx: &mut Ctx<'_>, ns: &str, name: &str) -> Requeue {
    let pdb = super::get(ctx, Kind::Pdb, ns, name)?;
    if is_deleting(&pdb) {
        return None;
    }
    let selector = pdb
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let pods: Vec<Value> = list(ctx.cluster, ctx.types.of(Kind::Pod), Some(ns))
        .into_iter()
        .filter(|p| !selector.is_empty() && matches(p, &selector))
        .collect();
    let expected = pods.len() as i64;
    let healthy = pods.iter().filter(|p| pod_ready(p)).count() as i64;
    let desired = match (
        pdb.pointer("/spec/minAvailable"),
        pdb.pointer("/spec/maxUnavailable"),
    ) {
        (Some(v), _) => resolve(v, expected, false),
        (None, Some(v)) => (expected - resolve(v, expected, true)).max(0),
        (None, None) => expected,
    };
    let allowed = (healthy - desired).max(0);
    let (cond, reason) = if allowed > 0 {
        ("True", "SufficientPods")
    } else {
        ("False", "InsufficientPods")
    };
    let mut status = Map::new();
    status.insert(
        "observedGeneration".into(),
        pdb.pointer("/metadata/generation")
            .cloned()
            .unwrap_or(json!(1)),
    );
    status.insert("currentHealthy".into(), json!(healthy));
    status.insert("desiredHealthy".into(), json!(desired));
    status.insert("expectedPods".into(), json!(expected));
    status.insert("disruptionsAllowed".into(), json!(allowed));
    let prev_time = pdb
        .pointer("/status/conditions/0/lastTransitionTime")
        .cloned()
        .filter(|_| {
            pdb.pointer("/status/conditions/0/status")
                .and_then(Value::as_str)
                == Some(cond)
        });
    status.insert(
        "conditions".into(),
        json!([{
            "type": "DisruptionAllowed",
            "status": cond,
            "reason": reason,
            "message": "",
            "observedGeneration": pdb.pointer("/metadata/generation").cloned().unwrap_or(json!(1)),
            "lastTransitionTime": prev_time.unwrap_or_else(|| json!(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true))),
        }]),
    );
    write_status(
        ctx,
        Kind::Pdb,
        &pdb,
        Value::Object(status),
        DISRUPTION_CONTROLLER,
    );
    Some(std::time::Duration::from_millis(500))
}

fn matches(pod: &Value, selector: &Map<String, Value>) -> bool {
    let labels = pod.pointer("/metadata/labels").and_then(Value::as_object);
    selector
        .iter()
        .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

/// An int-or-percent against `total` pods (percentages round up for
/// minAvailable and maxUnavailable, as the real controller does).
fn resolve(v: &Value, total: i64, _unavailable: bool) -> i64 {
    match v {
        Value::Number(n) => n.as_i64().unwrap_or(0),
        Value::String(s) => match s
            .strip_suffix('%')
            .and_then(|p| p.trim().parse::<i64>().ok())
        {
            Some(pct) => (total * pct + 99) / 100,
            None => s.trim().parse().unwrap_or(0),
        },
        _ => 0,
    }
}
