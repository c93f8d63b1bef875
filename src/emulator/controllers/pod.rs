//! The scheduler and kubelet of the one simulated node: a pod is bound to
//! `emulator-node`, reports `ContainerCreating` until `ready_delay` has
//! passed since it was first seen, then runs and becomes Ready — unless an
//! image is configured to fail (`ImagePullBackOff`) or crash
//! (`CrashLoopBackOff`). A pod that runs to completion — a Job's, or a bare
//! pod with `restartPolicy: Never` or `OnFailure` — instead finishes:
//! Succeeded, or, when an image matches `failing_jobs`, Failed (`Never`, and
//! a Job's pod) or restarted until it crash-loops (a bare `OnFailure` pod,
//! as the kubelet restarts it). Status changes only at these stage
//! transitions, so repeated reconciles write nothing.

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::images::{any_matches, image_id};
use super::{
    conditions, is_deleting, str_at, uid_of, write_status, Cond, Ctx, Kind, Requeue, HOST_IP,
    KUBELET, NODE_NAME, SCHEDULER,
};
use crate::emulator::util::now;

/// Where a pod is in its simulated life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Creating,
    Ready,
    PullBackOff,
    CrashLoop,
    Succeeded,
    Failed,
}

impl Stage {
    fn terminal(self) -> bool {
        matches!(self, Stage::Succeeded | Stage::Failed)
    }
}

/// The stage the pod's status shows, if it is one the simulation wrote.
fn current_stage(pod: &Value) -> Option<Stage> {
    let waiting = str_at(pod, "/status/containerStatuses/0/state/waiting/reason");
    match (str_at(pod, "/status/phase"), waiting) {
        (Some("Succeeded"), _) => Some(Stage::Succeeded),
        (Some("Failed"), _) => Some(Stage::Failed),
        (Some("Running"), Some("CrashLoopBackOff")) => Some(Stage::CrashLoop),
        (Some("Running"), _) if super::pod_ready(pod) => Some(Stage::Ready),
        (Some("Pending"), Some("ImagePullBackOff")) => Some(Stage::PullBackOff),
        (Some("Pending"), Some("ContainerCreating")) => Some(Stage::Creating),
        _ => None,
    }
}

fn images(pod: &Value, list: &str) -> Vec<String> {
    pod.pointer(&format!("/spec/{list}"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("image").and_then(Value::as_str))
        .map(str::to_string)
        .collect()
}

/// How a pod's containers end, as its owner and `restartPolicy` decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lifetime {
    /// Restarted whenever they exit (`Always`, the default): it runs.
    Serves,
    /// Runs once; a failure fails the pod (a Job's pod, `Never`).
    Once,
    /// Restarted only on failure (a bare `OnFailure` pod): success
    /// completes it, a failure crash-loops.
    UntilSuccess,
}

fn lifetime(pod: &Value) -> Lifetime {
    if super::controller_owners(pod)
        .iter()
        .any(|(k, _)| *k == Kind::Job)
    {
        return Lifetime::Once;
    }
    match str_at(pod, "/spec/restartPolicy") {
        Some("Never") => Lifetime::Once,
        Some("OnFailure") => Lifetime::UntilSuccess,
        _ => Lifetime::Serves,
    }
}

pub(super) fn reconcile(ctx: &mut Ctx<'_>, ns: &str, name: &str) -> Requeue {
    let mut pod = super::get(ctx, Kind::Pod, ns, name)?;
    if is_deleting(&pod) {
        return None;
    }
    if str_at(&pod, "/spec/nodeName").is_none_or(str::is_empty) {
        let rt = ctx.types.of(Kind::Pod);
        match ctx.cluster.patch(
            rt,
            Some(ns),
            name,
            crate::emulator::cluster::PatchType::Merge,
            &json!({"spec": {"nodeName": NODE_NAME}}),
            None,
            &crate::emulator::cluster::WriteOptions::by(SCHEDULER),
        ) {
            Ok((p, _)) => pod = p,
            Err(e) => {
                super::log_write_error("scheduling", Kind::Pod, ns, name, &e);
                return None;
            }
        }
    }
    let current = current_stage(&pod);
    if current.is_some_and(Stage::terminal) {
        return None;
    }
    let seen = *ctx
        .state
        .pod_seen
        .entry(uid_of(&pod).to_string())
        .or_insert(ctx.now);
    let due = seen + ctx.config.ready_delay;
    let all_images: Vec<String> = images(&pod, "initContainers")
        .into_iter()
        .chain(images(&pod, "containers"))
        .collect();
    let matches = |patterns: &[String]| all_images.iter().any(|i| any_matches(patterns, i));
    let (desired, requeue) = if ctx.now < due {
        (Stage::Creating, Some(due - ctx.now))
    } else if matches(&ctx.config.failing_images) {
        (Stage::PullBackOff, None)
    } else if lifetime(&pod) != Lifetime::Serves {
        match (matches(&ctx.config.failing_jobs), lifetime(&pod)) {
            (false, _) => (Stage::Succeeded, None),
            (true, Lifetime::UntilSuccess) => (Stage::CrashLoop, None),
            (true, _) => (Stage::Failed, None),
        }
    } else if matches(&ctx.config.crashing_images) {
        (Stage::CrashLoop, None)
    } else {
        (Stage::Ready, None)
    };
    if current != Some(desired) {
        let status = status_for(ctx, &pod, desired);
        write_status(ctx, Kind::Pod, &pod, status, KUBELET);
    }
    requeue
}

/// The full pod status of `stage`.
fn status_for(ctx: &mut Ctx<'_>, pod: &Value, stage: Stage) -> Value {
    let ts = now();
    let start = str_at(pod, "/status/startTime")
        .map(str::to_string)
        .unwrap_or_else(|| ts.clone());
    let name = str_at(pod, "/metadata/name").unwrap_or_default();
    let containers: Vec<Value> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let container_names: Vec<&str> = containers
        .iter()
        .filter_map(|c| c.get("name").and_then(Value::as_str))
        .collect();
    let running = matches!(stage, Stage::Ready | Stage::CrashLoop);
    let mut status = Map::new();
    let phase = match stage {
        Stage::Creating | Stage::PullBackOff => "Pending",
        Stage::Ready | Stage::CrashLoop => "Running",
        Stage::Succeeded => "Succeeded",
        Stage::Failed => "Failed",
    };
    status.insert("phase".into(), json!(phase));
    let not_ready_msg = format!(
        "containers with unready status: [{}]",
        container_names.join(" ")
    );
    let (ready, reason, message) = match stage {
        Stage::Ready => (true, String::new(), String::new()),
        Stage::Succeeded | Stage::Failed => (false, "PodCompleted".into(), String::new()),
        _ => (false, "ContainersNotReady".into(), not_ready_msg),
    };
    let ready_status = if ready { "True" } else { "False" };
    let started = stage != Stage::Creating;
    let conds = [
        Cond::new(
            "PodReadyToStartContainers",
            if started && !stage.terminal() {
                "True"
            } else {
                "False"
            },
            "",
            "",
        ),
        Cond::new(
            "Initialized",
            "True",
            if stage.terminal() { "PodCompleted" } else { "" },
            "",
        ),
        Cond::new("Ready", ready_status, &reason, &message),
        Cond::new("ContainersReady", ready_status, &reason, &message),
        Cond::new("PodScheduled", "True", "", ""),
    ];
    status.insert("conditions".into(), conditions(pod, &conds, false));
    status.insert("hostIP".into(), json!(HOST_IP));
    status.insert("hostIPs".into(), json!([{"ip": HOST_IP}]));
    if started {
        let ip = match str_at(pod, "/status/podIP") {
            Some(ip) => ip.to_string(),
            None => ctx.state.next_pod_ip(),
        };
        status.insert("podIP".into(), json!(ip));
        status.insert("podIPs".into(), json!([{"ip": ip}]));
    }
    status.insert("startTime".into(), json!(start));
    let digests = &ctx.config.image_digests;
    let uid = uid_of(pod);
    let container_status = |c: &Value, init: bool| -> Value {
        let cname = c.get("name").and_then(Value::as_str).unwrap_or_default();
        let image = c.get("image").and_then(Value::as_str).unwrap_or_default();
        let container_id = format!(
            "containerd://{}",
            hex::encode(Sha256::digest(format!("{uid}/{cname}").as_bytes()))
        );
        let pulled = !matches!(stage, Stage::Creating | Stage::PullBackOff);
        let (state, ready, last_state, restarts) = if init {
            match stage {
                Stage::Creating | Stage::PullBackOff => (
                    json!({"waiting": {"reason": "PodInitializing"}}),
                    false,
                    json!({}),
                    0,
                ),
                _ => (
                    json!({"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": ts, "finishedAt": ts, "containerID": container_id}}),
                    true,
                    json!({}),
                    0,
                ),
            }
        } else {
            match stage {
                Stage::Creating => (
                    json!({"waiting": {"reason": "ContainerCreating"}}),
                    false,
                    json!({}),
                    0,
                ),
                Stage::PullBackOff => (
                    json!({"waiting": {"reason": "ImagePullBackOff", "message": format!("Back-off pulling image \"{image}\"")}}),
                    false,
                    json!({}),
                    0,
                ),
                Stage::CrashLoop => (
                    json!({"waiting": {"reason": "CrashLoopBackOff", "message": format!("back-off 10s restarting failed container={cname} pod={name}")}}),
                    false,
                    json!({"terminated": {"exitCode": 1, "reason": "Error", "startedAt": ts, "finishedAt": ts, "containerID": container_id}}),
                    1,
                ),
                Stage::Ready => (json!({"running": {"startedAt": ts}}), true, json!({}), 0),
                Stage::Succeeded => (
                    json!({"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": start, "finishedAt": ts, "containerID": container_id}}),
                    false,
                    json!({}),
                    0,
                ),
                Stage::Failed => (
                    json!({"terminated": {"exitCode": 1, "reason": "Error", "startedAt": start, "finishedAt": ts, "containerID": container_id}}),
                    false,
                    json!({}),
                    0,
                ),
            }
        };
        let mut m = Map::new();
        m.insert("name".into(), json!(cname));
        m.insert("image".into(), json!(image));
        m.insert(
            "imageID".into(),
            json!(if pulled {
                image_id(image, digests)
            } else {
                String::new()
            }),
        );
        if pulled {
            m.insert("containerID".into(), json!(container_id));
        }
        m.insert("ready".into(), json!(ready));
        m.insert("restartCount".into(), json!(restarts));
        if !init {
            m.insert("started".into(), json!(running));
        }
        m.insert("state".into(), state);
        m.insert("lastState".into(), last_state);
        Value::Object(m)
    };
    if let Some(inits) = pod
        .pointer("/spec/initContainers")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty())
    {
        let statuses: Vec<Value> = inits.iter().map(|c| container_status(c, true)).collect();
        status.insert("initContainerStatuses".into(), Value::Array(statuses));
    }
    let statuses: Vec<Value> = containers
        .iter()
        .map(|c| container_status(c, false))
        .collect();
    status.insert("containerStatuses".into(), Value::Array(statuses));
    status.insert("qosClass".into(), json!(qos_class(&containers)));
    Value::Object(status)
}

/// `BestEffort` without any requests or limits, `Guaranteed` when every
/// container's limits equal its requests (or only limits are set), else
/// `Burstable`.
fn qos_class(containers: &[Value]) -> &'static str {
    let resources = |c: &Value, k: &str| {
        c.pointer(&format!("/resources/{k}"))
            .and_then(Value::as_object)
            .filter(|m| !m.is_empty())
            .cloned()
    };
    if containers
        .iter()
        .all(|c| resources(c, "requests").is_none() && resources(c, "limits").is_none())
    {
        return "BestEffort";
    }
    let guaranteed = containers.iter().all(|c| match resources(c, "limits") {
        Some(limits) => {
            limits.contains_key("cpu")
                && limits.contains_key("memory")
                && resources(c, "requests").is_none_or(|r| r == limits)
        }
        None => false,
    });
    if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qos() {
        assert_eq!(qos_class(&[json!({"name": "a"})]), "BestEffort");
        assert_eq!(
            qos_class(&[json!({"resources": {"requests": {"cpu": "1"}}})]),
            "Burstable"
        );
        assert_eq!(
            qos_class(&[json!({"resources": {"limits": {"cpu": "1", "memory": "1Gi"}}})]),
            "Guaranteed"
        );
    }

    #[test]
    fn stages_read_back() {
        let p = json!({"status": {"phase": "Pending", "containerStatuses": [{"state": {"waiting": {"reason": "ImagePullBackOff"}}}]}});
        assert_eq!(current_stage(&p), Some(Stage::PullBackOff));
        let r = json!({"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}], "containerStatuses": [{"state": {"running": {}}}]}});
        assert_eq!(current_stage(&r), Some(Stage::Ready));
        assert_eq!(current_stage(&json!({})), None);
    }
}
