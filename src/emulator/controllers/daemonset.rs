//! The DaemonSet controller for the one node: a single pod
//! `<name>-<5 chars>` on `emulator-node`, replaced when the template changes
//! (its `controller-revision-hash` label differs). Status reports the
//! scheduled, ready, available and updated counts out of one desired.

use serde_json::{json, Map, Value};

use super::{
    generation, is_deleting, name_of, owned, pod_active, pod_ready, put_count, template_hash,
    write_status, Ctx, Kind, PodName, Requeue, CONTROLLER_MANAGER, NODE_NAME,
};

const REVISION_LABEL: &str = "controller-revision-hash";

pub(super) fn reconcile(ctx: &mut Ctx<'_>, ns: &str, name: &str) -> Requeue {
    let ds = super::get(ctx, Kind::DaemonSet, ns, name)?;
    if is_deleting(&ds) {
        return None;
    }
    let template = ds.pointer("/spec/template").cloned().unwrap_or(json!({}));
    let hash = template_hash(&template);
    let mut pods: Vec<Value> = owned(ctx.cluster, ctx.types.of(Kind::Pod), ns, &ds)
        .into_iter()
        .filter(pod_active)
        .collect();
    let is_current = |p: &Value| {
        p.pointer("/metadata/labels")
            .and_then(|l| l.get(REVISION_LABEL))
            .and_then(Value::as_str)
            == Some(hash.as_str())
    };
    // Keep at most one pod, preferring one on the current template.
    pods.sort_by_key(|p| (!is_current(p), name_of(p).to_string()));
    let on_delete = super::str_at(&ds, "/spec/updateStrategy/type") == Some("OnDelete");
    let mut keep = Vec::new();
    for (i, p) in pods.into_iter().enumerate() {
        if i == 0 && (is_current(&p) || on_delete) {
            keep.push(p);
        } else {
            super::delete(ctx, Kind::Pod, ns, name_of(&p));
        }
    }
    if keep.is_empty() {
        let generation_label = generation(&ds).to_string();
        if let Some(p) = super::create_pod(
            ctx,
            &ds,
            &template,
            PodName::Generated(name),
            &[
                (REVISION_LABEL, hash.clone()),
                ("pod-template-generation", generation_label),
            ],
            |spec| {
                spec.insert("nodeName".into(), json!(NODE_NAME));
            },
        ) {
            keep.push(p);
        }
    }
    let n = |f: &dyn Fn(&Value) -> bool| {
        i64::try_from(keep.iter().filter(|p| f(p)).count()).unwrap_or(0)
    };
    let scheduled = n(&|_| true);
    let ready = n(&pod_ready);
    let updated = n(&is_current);
    let mut status = Map::new();
    status.insert("currentNumberScheduled".into(), json!(scheduled));
    status.insert("desiredNumberScheduled".into(), json!(1));
    status.insert("numberMisscheduled".into(), json!(0));
    status.insert("numberReady".into(), json!(ready));
    put_count(&mut status, "numberAvailable", ready);
    put_count(&mut status, "numberUnavailable", 1 - ready);
    put_count(&mut status, "updatedNumberScheduled", updated);
    status.insert("observedGeneration".into(), json!(generation(&ds)));
    write_status(
        ctx,
        Kind::DaemonSet,
        &ds,
        Value::Object(status),
        CONTROLLER_MANAGER,
    );
    None
}
