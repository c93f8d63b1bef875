//! The StatefulSet controller: pods `<name>-0 … <name>-(n-1)`, created in
//! order (each once the previous is ready) unless `podManagementPolicy` is
//! `Parallel`, with a PVC per `volumeClaimTemplates` entry and ordinal. A
//! template change is the update revision `<name>-<hash>`; with the
//! `RollingUpdate` strategy the highest outdated pod is replaced once all
//! pods are ready, one at a time. Status reports replicas, ready, current
//! and updated counts, both revisions and `observedGeneration`.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::{
    desired_replicas, generation, is_deleting, name_of, owned, pod_ready, put_count, str_at,
    template_hash, write_status, Ctx, Kind, PodName, Requeue, CONTROLLER_MANAGER,
};

const REVISION_LABEL: &str = "controller-revision-hash";

pub(super) fn reconcile(ctx: &mut Ctx<'_>, ns: &str, name: &str) -> Requeue {
    let sts = super::get(ctx, Kind::StatefulSet, ns, name)?;
    if is_deleting(&sts) {
        return None;
    }
    let replicas = usize::try_from(desired_replicas(&sts)).unwrap_or(0);
    let template = sts.pointer("/spec/template").cloned().unwrap_or(json!({}));
    let update_revision = format!("{name}-{}", template_hash(&template));
    let parallel = str_at(&sts, "/spec/podManagementPolicy") == Some("Parallel");
    let on_delete = str_at(&sts, "/spec/updateStrategy/type") == Some("OnDelete");
    let prefix = format!("{name}-");
    let mut pods: BTreeMap<usize, Value> = owned(ctx.cluster, ctx.types.of(Kind::Pod), ns, &sts)
        .into_iter()
        .filter_map(|p| {
            let ordinal = name_of(&p).strip_prefix(&prefix)?.parse::<usize>().ok()?;
            Some((ordinal, p))
        })
        .collect();

    // Scale down from the highest ordinal.
    let extra: Vec<usize> = pods.range(replicas..).map(|(o, _)| *o).collect();
    for ordinal in extra.into_iter().rev() {
        if let Some(p) = pods.remove(&ordinal) {
            super::delete(ctx, Kind::Pod, ns, name_of(&p));
        }
    }
    // Create missing ordinals.
    for ordinal in 0..replicas {
        if pods.contains_key(&ordinal) {
            continue;
        }
        if !parallel && !(0..ordinal).all(|o| pods.get(&o).is_some_and(pod_ready)) {
            break;
        }
        let pod_name = format!("{name}-{ordinal}");
        let claims = ensure_claims(ctx, &sts, ordinal);
        let service = str_at(&sts, "/spec/serviceName")
            .unwrap_or_default()
            .to_string();
        let host = pod_name.clone();
        let created = super::create_pod(
            ctx,
            &sts,
            &template,
            PodName::Fixed(&pod_name),
            &[
                (REVISION_LABEL, update_revision.clone()),
                ("statefulset.kubernetes.io/pod-name", pod_name.clone()),
                ("apps.kubernetes.io/pod-index", ordinal.to_string()),
            ],
            |spec| {
                spec.insert("hostname".into(), json!(host));
                if !service.is_empty() {
                    spec.insert("subdomain".into(), json!(service));
                }
                if !claims.is_empty() {
                    let volumes = spec.entry("volumes").or_insert_with(|| json!([]));
                    if let Some(v) = volumes.as_array_mut() {
                        for (vol, claim) in &claims {
                            v.push(
                                json!({"name": vol, "persistentVolumeClaim": {"claimName": claim}}),
                            );
                        }
                    }
                }
            },
        );
        match created {
            Some(p) => {
                pods.insert(ordinal, p);
            }
            None => break,
        }
        if !parallel {
            break;
        }
    }
    // Rolling update: replace the highest outdated pod once all are ready.
    let all_ready = pods.len() == replicas && pods.values().all(pod_ready);
    if !on_delete && all_ready {
        let outdated = pods
            .iter()
            .rev()
            .find(|(_, p)| revision_of(p) != Some(update_revision.as_str()))
            .map(|(o, p)| (*o, name_of(p).to_string()));
        if let Some((ordinal, pod_name)) = outdated {
            super::delete(ctx, Kind::Pod, ns, &pod_name);
            pods.remove(&ordinal);
        }
    }

    let count = |f: &dyn Fn(&Value) -> bool| {
        i64::try_from(pods.values().filter(|p| f(p)).count()).unwrap_or(0)
    };
    let total = count(&|_| true);
    let ready = count(&pod_ready);
    let updated = count(&|p| revision_of(p) == Some(update_revision.as_str()));
    let replicas_i = i64::try_from(replicas).unwrap_or(0);
    let current_revision = match str_at(&sts, "/status/currentRevision") {
        _ if updated == replicas_i && ready == replicas_i => update_revision.clone(),
        Some(r) => r.to_string(),
        None => update_revision.clone(),
    };
    let current = count(&|p| revision_of(p) == Some(current_revision.as_str()));
    let mut status = Map::new();
    status.insert("observedGeneration".into(), json!(generation(&sts)));
    status.insert("replicas".into(), json!(total));
    put_count(&mut status, "readyReplicas", ready);
    put_count(&mut status, "currentReplicas", current);
    put_count(&mut status, "updatedReplicas", updated);
    put_count(&mut status, "availableReplicas", ready);
    status.insert("currentRevision".into(), json!(current_revision));
    status.insert("updateRevision".into(), json!(update_revision));
    status.insert("collisionCount".into(), json!(0));
    write_status(
        ctx,
        Kind::StatefulSet,
        &sts,
        Value::Object(status),
        CONTROLLER_MANAGER,
    );
    None
}

fn revision_of(pod: &Value) -> Option<&str> {
    pod.pointer("/metadata/labels")
        .and_then(|l| l.get(REVISION_LABEL))
        .and_then(Value::as_str)
}

/// Creates the ordinal's PVCs (`<template>-<set>-<ordinal>`) when missing;
/// returns `(volume name, claim name)` pairs.
fn ensure_claims(ctx: &mut Ctx<'_>, sts: &Value, ordinal: usize) -> Vec<(String, String)> {
    let ns = super::namespace_of(sts).to_string();
    let set = name_of(sts).to_string();
    let templates: Vec<Value> = sts
        .pointer("/spec/volumeClaimTemplates")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut out = Vec::new();
    for t in templates {
        let Some(vol) = str_at(&t, "/metadata/name").map(str::to_string) else {
            continue;
        };
        let claim = format!("{vol}-{set}-{ordinal}");
        if super::get(ctx, Kind::Pvc, &ns, &claim).is_none() {
            let mut labels = super::match_labels(sts);
            if let Some(l) = t.pointer("/metadata/labels").and_then(Value::as_object) {
                labels.extend(l.clone());
            }
            let body = json!({
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {"name": claim, "namespace": ns, "labels": labels},
                "spec": t.get("spec").cloned().unwrap_or(json!({})),
            });
            if let Err(e) = super::create(ctx, Kind::Pvc, &ns, body) {
                super::log_write_error("claim create", Kind::Pvc, &ns, &claim, &e);
            }
        }
        out.push((vol, claim));
    }
    out
}
