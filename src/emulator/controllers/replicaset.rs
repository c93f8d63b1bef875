//! The ReplicaSet controller: keeps `spec.replicas` active pods named
//! `<replicaset>-<5 chars>` from the template (deleting not-ready, then
//! newest, pods first when scaling down) and reports replicas, ready and
//! available counts and `observedGeneration`.

use serde_json::{json, Map, Value};

use super::{
    desired_replicas, generation, is_deleting, name_of, owned, pod_active, pod_ready, put_count,
    str_at, write_status, Ctx, Kind, PodName, Requeue, CONTROLLER_MANAGER,
};

pub(super) fn reconcile(ctx: &mut Ctx<'_>, ns: &str, name: &str) -> Requeue {
    let rs = super::get(ctx, Kind::ReplicaSet, ns, name)?;
    if is_deleting(&rs) {
        return None;
    }
    let want = desired_replicas(&rs);
    let mut pods: Vec<Value> = owned(ctx.cluster, ctx.types.of(Kind::Pod), ns, &rs)
        .into_iter()
        .filter(pod_active)
        .collect();
    let have = i64::try_from(pods.len()).unwrap_or(i64::MAX);
    if have < want {
        let template = rs.pointer("/spec/template").cloned().unwrap_or(json!({}));
        for _ in have..want {
            if let Some(p) =
                super::create_pod(ctx, &rs, &template, PodName::Generated(name), &[], |_| {})
            {
                pods.push(p);
            }
        }
    } else if have > want {
        // Not-ready pods go first, then the newest.
        pods.sort_by(|a, b| {
            pod_ready(a)
                .cmp(&pod_ready(b))
                .then_with(|| {
                    str_at(b, "/metadata/creationTimestamp")
                        .cmp(&str_at(a, "/metadata/creationTimestamp"))
                })
                .then_with(|| name_of(b).cmp(name_of(a)))
        });
        let excess = usize::try_from(have - want).unwrap_or(0);
        for p in pods.drain(..excess) {
            super::delete(ctx, Kind::Pod, ns, name_of(&p));
        }
    }
    let ready = pods.iter().filter(|p| pod_ready(p)).count();
    let ready = i64::try_from(ready).unwrap_or(0);
    let replicas = i64::try_from(pods.len()).unwrap_or(0);
    let mut status = Map::new();
    status.insert("replicas".into(), json!(replicas));
    put_count(&mut status, "fullyLabeledReplicas", replicas);
    put_count(&mut status, "readyReplicas", ready);
    put_count(&mut status, "availableReplicas", ready);
    status.insert("observedGeneration".into(), json!(generation(&rs)));
    write_status(
        ctx,
        Kind::ReplicaSet,
        &rs,
        Value::Object(status),
        CONTROLLER_MANAGER,
    );
    None
}
