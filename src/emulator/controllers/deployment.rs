//! The Deployment controller: one ReplicaSet per pod template, named
//! `<deployment>-<pod-template-hash>`, labelled and selected by
//! `pod-template-hash` and owned by the Deployment. A template change makes
//! a new ReplicaSet with all the replicas; the old ones are scaled to zero
//! once the new one is fully ready (at once for `Recreate`, whose new pods
//! wait for the old ones to go). Old ReplicaSets beyond
//! `revisionHistoryLimit` are deleted. Status carries the counts and the
//! `Available` and `Progressing` conditions, including
//! `ProgressDeadlineExceeded` when a rollout is not complete within
//! `spec.progressDeadlineSeconds` (or the configured override).

use std::time::Duration;

use serde_json::{json, Map, Value};

use crate::emulator::util::{child_mut, obj_mut};

use super::{
    conditions, desired_replicas, generation, i64_at, is_deleting, match_labels, name_of, owned,
    put_count, str_at, template_hash, uid_of, write_status, Cond, Ctx, Kind, Progress, Requeue,
    CONTROLLER_MANAGER,
};

const REVISION: &str = "deployment.kubernetes.io/revision";

fn revision(obj: &Value) -> i64 {
    obj.pointer("/metadata/annotations")
        .and_then(|a| a.get(REVISION))
        .and_then(Value::as_str)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

fn rs_hash(rs: &Value) -> Option<&str> {
    str_at(rs, "/metadata/labels/pod-template-hash")
}

/// `maxUnavailable` of a rolling update for `replicas` (an integer or a
/// percentage, rounded down; default 25%).
fn max_unavailable(d: &Value, replicas: i64) -> i64 {
    if str_at(d, "/spec/strategy/type") == Some("Recreate") {
        return 0;
    }
    let v = d.pointer("/spec/strategy/rollingUpdate/maxUnavailable");
    let n = match v {
        Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
        Some(Value::String(s)) => match s.strip_suffix('%').and_then(|p| p.parse::<i64>().ok()) {
            Some(pct) => replicas * pct / 100,
            None => s.parse().unwrap_or(0),
        },
        _ => replicas * 25 / 100,
    };
    n.clamp(0, replicas)
}

fn status_count(rs: &Value, field: &str) -> i64 {
    i64_at(rs, &format!("/status/{field}")).unwrap_or(0)
}

pub(super) fn reconcile(ctx: &mut Ctx<'_>, ns: &str, name: &str) -> Requeue {
    let d = super::get(ctx, Kind::Deployment, ns, name)?;
    if is_deleting(&d) {
        return None;
    }
    let replicas = desired_replicas(&d);
    let template = d.pointer("/spec/template").cloned().unwrap_or(json!({}));
    let hash = template_hash(&template);
    let paused = d.pointer("/spec/paused").and_then(Value::as_bool) == Some(true);
    let recreate = str_at(&d, "/spec/strategy/type") == Some("Recreate");
    let mut sets = owned(ctx.cluster, ctx.types.of(Kind::ReplicaSet), ns, &d);
    sets.sort_by_key(|rs| std::cmp::Reverse(revision(rs)));
    let max_revision = sets.iter().map(revision).max().unwrap_or(0);
    let new_index = sets
        .iter()
        .position(|rs| rs_hash(rs) == Some(hash.as_str()));
    let mut new_rs = new_index.map(|i| sets.remove(i));
    let olds = sets;
    let old_pods: i64 = olds
        .iter()
        .map(|rs| status_count(rs, "replicas").max(i64_at(rs, "/spec/replicas").unwrap_or(0)))
        .sum();

    if !paused {
        let target = if recreate && old_pods > 0 {
            0
        } else {
            replicas
        };
        match &new_rs {
            None => new_rs = create_replicaset(ctx, &d, &template, &hash, target, max_revision + 1),
            Some(rs) => {
                let mut patch = Map::new();
                if i64_at(rs, "/spec/replicas") != Some(target) {
                    patch.insert("spec".into(), json!({"replicas": target}));
                }
                if revision(rs) < max_revision {
                    // Rolled back to an old template: it becomes the newest revision.
                    patch.insert(
                        "metadata".into(),
                        json!({"annotations": {REVISION: (max_revision + 1).to_string()}}),
                    );
                }
                if !patch.is_empty() {
                    super::merge_patch(
                        ctx,
                        Kind::ReplicaSet,
                        ns,
                        name_of(rs),
                        Value::Object(patch),
                        CONTROLLER_MANAGER,
                    );
                }
            }
        }
        let new_ready = new_rs.as_ref().is_some_and(|rs| {
            i64_at(rs, "/spec/replicas") == Some(replicas)
                && status_count(rs, "replicas") == replicas
                && status_count(rs, "availableReplicas") >= replicas
        });
        for old in &olds {
            if i64_at(old, "/spec/replicas").unwrap_or(0) > 0 && (recreate || new_ready) {
                super::merge_patch(
                    ctx,
                    Kind::ReplicaSet,
                    ns,
                    name_of(old),
                    json!({"spec": {"replicas": 0}}),
                    CONTROLLER_MANAGER,
                );
            }
        }
        prune_history(ctx, &d, &olds);
    }

    if let Some(rs) = &new_rs {
        let rev = revision(rs).max(max_revision).to_string();
        let current = d
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(REVISION))
            .and_then(Value::as_str);
        if current != Some(rev.as_str()) {
            super::merge_patch(
                ctx,
                Kind::Deployment,
                ns,
                name,
                json!({"metadata": {"annotations": {REVISION: rev}}}),
                CONTROLLER_MANAGER,
            );
        }
    }

    // Status, from the ReplicaSets as last reported.
    let all: Vec<&Value> = new_rs.iter().chain(olds.iter()).collect();
    let sum = |f: &str| all.iter().map(|rs| status_count(rs, f)).sum::<i64>();
    let total = sum("replicas");
    let ready = sum("readyReplicas");
    let available = sum("availableReplicas");
    let updated = new_rs.as_ref().map_or(0, |rs| status_count(rs, "replicas"));
    let new_available = new_rs
        .as_ref()
        .map_or(0, |rs| status_count(rs, "availableReplicas"));
    let complete = new_rs.as_ref().is_some_and(|rs| {
        i64_at(rs, "/status/observedGeneration") >= i64_at(rs, "/metadata/generation")
    }) && updated == replicas
        && new_available >= replicas
        && total == replicas;
    let rs_name = new_rs
        .as_ref()
        .map(|rs| name_of(rs).to_string())
        .unwrap_or_default();

    let deadline = ctx.config.progress_deadline_override.unwrap_or_else(|| {
        Duration::from_secs(
            i64_at(&d, "/spec/progressDeadlineSeconds")
                .and_then(|s| u64::try_from(s).ok())
                .unwrap_or(600),
        )
    });
    let gen = generation(&d);
    let progress = ctx
        .state
        .progress
        .entry(uid_of(&d).to_string())
        .or_insert(Progress {
            generation: gen,
            since: Some(ctx.now),
        });
    if progress.generation != gen {
        *progress = Progress {
            generation: gen,
            since: Some(ctx.now),
        };
    }
    let mut requeue = None;
    let progressing = if paused {
        Cond::new(
            "Progressing",
            "Unknown",
            "DeploymentPaused",
            "Deployment is paused",
        )
    } else if complete {
        progress.since = None;
        Cond::new(
            "Progressing",
            "True",
            "NewReplicaSetAvailable",
            &format!("ReplicaSet \"{rs_name}\" has successfully progressed."),
        )
    } else {
        let since = *progress.since.get_or_insert(ctx.now);
        let elapsed = ctx.now.saturating_duration_since(since);
        if elapsed >= deadline {
            Cond::new(
                "Progressing",
                "False",
                "ProgressDeadlineExceeded",
                &format!("ReplicaSet \"{rs_name}\" has timed out progressing."),
            )
        } else {
            requeue = Some(deadline - elapsed);
            Cond::new(
                "Progressing",
                "True",
                "ReplicaSetUpdated",
                &format!("ReplicaSet \"{rs_name}\" is progressing."),
            )
        }
    };
    let available_cond = if available >= replicas - max_unavailable(&d, replicas) {
        Cond::new(
            "Available",
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.",
        )
    } else {
        Cond::new(
            "Available",
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
        )
    };
    let mut status = Map::new();
    status.insert("observedGeneration".into(), json!(gen));
    put_count(&mut status, "replicas", total);
    put_count(&mut status, "updatedReplicas", updated);
    put_count(&mut status, "readyReplicas", ready);
    put_count(&mut status, "availableReplicas", available);
    put_count(
        &mut status,
        "unavailableReplicas",
        (replicas.max(total) - available).max(0),
    );
    status.insert(
        "conditions".into(),
        conditions(&d, &[available_cond, progressing], true),
    );
    write_status(
        ctx,
        Kind::Deployment,
        &d,
        Value::Object(status),
        CONTROLLER_MANAGER,
    );
    requeue
}

fn create_replicaset(
    ctx: &mut Ctx<'_>,
    d: &Value,
    template: &Value,
    hash: &str,
    replicas: i64,
    revision: i64,
) -> Option<Value> {
    let ns = super::namespace_of(d);
    let name = format!("{}-{hash}", name_of(d));
    let mut template = template.clone();
    let mut labels = template
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    labels.insert("pod-template-hash".into(), json!(hash));
    child_mut(&mut template, "metadata").insert("labels".into(), Value::Object(labels.clone()));
    let mut selector = d.pointer("/spec/selector").cloned().unwrap_or(json!({}));
    let mut match_labels = match_labels(d);
    match_labels.insert("pod-template-hash".into(), json!(hash));
    obj_mut(&mut selector).insert("matchLabels".into(), Value::Object(match_labels));
    let body = json!({
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": name,
            "namespace": ns,
            "labels": labels,
            "annotations": {
                REVISION: revision.to_string(),
                "deployment.kubernetes.io/desired-replicas": desired_replicas(d).to_string(),
                "deployment.kubernetes.io/max-replicas": desired_replicas(d).to_string(),
            },
            "ownerReferences": [super::controller_ref(d)],
        },
        "spec": {
            "replicas": replicas,
            "minReadySeconds": d.pointer("/spec/minReadySeconds").cloned().unwrap_or(json!(0)),
            "selector": selector,
            "template": template,
        },
    });
    match super::create(ctx, Kind::ReplicaSet, ns, body) {
        Ok(rs) => {
            tracing::debug!(namespace = ns, replicaset = %name, "simulation: created replica set");
            Some(rs)
        }
        Err(e) => {
            super::log_write_error("replica set create", Kind::ReplicaSet, ns, &name, &e);
            None
        }
    }
}

/// Deletes scaled-down old ReplicaSets beyond `revisionHistoryLimit`
/// (oldest revisions first). `olds` is sorted newest first.
fn prune_history(ctx: &Ctx<'_>, d: &Value, olds: &[Value]) {
    let limit = i64_at(d, "/spec/revisionHistoryLimit").unwrap_or(10).max(0);
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let idle: Vec<&Value> = olds
        .iter()
        .filter(|rs| {
            i64_at(rs, "/spec/replicas").unwrap_or(0) == 0 && status_count(rs, "replicas") == 0
        })
        .collect();
    for rs in idle.iter().skip(limit) {
        super::delete(ctx, Kind::ReplicaSet, super::namespace_of(d), name_of(rs));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_unavailable_forms() {
        let d = |s: Value| json!({"spec": {"strategy": s}});
        assert_eq!(max_unavailable(&d(json!({})), 4), 1);
        assert_eq!(max_unavailable(&d(json!({})), 1), 0);
        assert_eq!(
            max_unavailable(&d(json!({"rollingUpdate": {"maxUnavailable": 2}})), 4),
            2
        );
        assert_eq!(
            max_unavailable(&d(json!({"rollingUpdate": {"maxUnavailable": "50%"}})), 5),
            2
        );
        assert_eq!(max_unavailable(&d(json!({"type": "Recreate"})), 5), 0);
    }
}
