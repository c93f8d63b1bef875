//! Pod health. Succeeded is Healthy and Failed is Degraded. A container (or
//! init container) waiting for a reason that will not fix itself —
//! `CrashLoopBackOff`, `ImagePullBackOff`, `ErrImagePull`,
//! `CreateContainerConfigError`, `CreateContainerError`, `InvalidImageName`,
//! `ErrImageNeverPull` — is Degraded, with the container named. A running
//! pod with `restartPolicy: Always` (the default) is Healthy once Ready and
//! Progressing until then. A running pod with `Never` or `OnFailure` is a
//! run-to-completion task, as in Argo CD: Progressing until it Succeeds,
//! even while Ready. Pending is Progressing, with the scheduler's reason.

use serde_json::Value;

use super::fields::{array, checked, conditions, find, string, FieldError};
use super::HealthStatus;

/// Waiting reasons that mean the container will not start without a change.
const STUCK_REASONS: &[&str] = &[
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "ErrImageNeverPull",
    "CreateContainerConfigError",
    "CreateContainerError",
    "InvalidImageName",
];

pub(crate) fn pod(obj: &Value) -> HealthStatus {
    checked(|| {
        let phase = string(obj, "status.phase")?;
        let status_message = || {
            let msg = string(obj, "status.message").ok().flatten().unwrap_or("");
            let reason = string(obj, "status.reason").ok().flatten().unwrap_or("");
            match (reason.is_empty(), msg.is_empty()) {
                (false, false) => format!("{reason}: {msg}"),
                (false, true) => reason.to_string(),
                (true, _) => msg.to_string(),
            }
        };
        match phase {
            Some("Succeeded") => return Ok(HealthStatus::healthy(status_message())),
            Some("Failed") => {
                let msg = status_message();
                return Ok(HealthStatus::degraded(if msg.is_empty() {
                    "pod failed".to_string()
                } else {
                    msg
                }));
            }
            _ => {}
        }
        if let Some(stuck) = stuck_container(obj)? {
            return Ok(stuck);
        }
        let conds = conditions(obj)?;
        match phase {
            Some("Running") => {
                let policy = string(obj, "spec.restartPolicy")?.unwrap_or("Always");
                if policy != "Always" {
                    return Ok(HealthStatus::progressing(format!(
                        "pod with restartPolicy {policy} is running to completion"
                    )));
                }
                match find(&conds, "Ready") {
                    Some(c) if c.is_true() => Ok(HealthStatus::healthy("")),
                    Some(c) => Ok(HealthStatus::progressing(format!(
                        "waiting for pod to become ready: {}",
                        c.text()
                    ))),
                    None => Ok(HealthStatus::progressing("waiting for pod to become ready")),
                }
            }
            Some("Pending") | None => {
                let unscheduled = find(&conds, "PodScheduled").filter(|c| c.is_false());
                Ok(HealthStatus::progressing(match unscheduled {
                    Some(c) => format!("pod is not scheduled: {}", c.text()),
                    None => "pod is pending".to_string(),
                }))
            }
            Some(other) => Ok(HealthStatus::unknown(format!(
                "pod phase is {other}{}",
                if other == "Unknown" {
                    " (its node may be unreachable)"
                } else {
                    ""
                }
            ))),
        }
    })
}

/// The first init or app container waiting for a [`STUCK_REASONS`] reason.
fn stuck_container(obj: &Value) -> Result<Option<HealthStatus>, FieldError> {
    for path in ["status.initContainerStatuses", "status.containerStatuses"] {
        for cs in array(obj, path)? {
            let waiting = cs.pointer("/state/waiting");
            let reason = waiting
                .and_then(|w| w.get("reason"))
                .and_then(Value::as_str)
                .unwrap_or("");
            if !STUCK_REASONS.contains(&reason) {
                continue;
            }
            let container = cs.get("name").and_then(Value::as_str).unwrap_or("?");
            let message = waiting
                .and_then(|w| w.get("message"))
                .and_then(Value::as_str)
                .unwrap_or("");
            let mut text = format!("container {container:?} is waiting: {reason}");
            if !message.is_empty() {
                text = format!("{text}: {message}");
            }
            return Ok(Some(HealthStatus::degraded(text)));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{table, Case};
    use super::super::Health::*;
    use serde_json::{json, Value};

    fn pod(policy: &str, status: Value) -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web-0", "namespace": "shop"},
            "spec": {"restartPolicy": policy, "containers": [{"name": "app", "image": "nginx:1.27"}]},
            "status": status,
        })
    }

    fn waiting(reason: &str, message: &str) -> Value {
        json!({"phase": "Pending", "conditions": [{"type": "Ready", "status": "False"}],
               "containerStatuses": [{"name": "app", "ready": false, "restartCount": 0,
                   "state": {"waiting": {"reason": reason, "message": message}}}]})
    }

    #[test]
    fn pod_table() {
        let ready = json!({"phase": "Running", "conditions": [
            {"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True"},
            {"type": "ContainersReady", "status": "True"}, {"type": "PodScheduled", "status": "True"}],
            "containerStatuses": [{"name": "app", "ready": true, "state": {"running": {"startedAt": "2024-05-01T10:00:00Z"}}}]});
        table(
            super::pod,
            &[
                Case(
                    "running and ready",
                    pod("Always", ready.clone()),
                    Healthy,
                    "",
                ),
                Case(
                    "succeeded",
                    pod("Never", json!({"phase": "Succeeded"})),
                    Healthy,
                    "",
                ),
                Case(
                    "failed",
                    pod(
                        "Never",
                        json!({"phase": "Failed", "reason": "Evicted", "message": "The node was low on resource: memory."}),
                    ),
                    Degraded,
                    "Evicted: The node was low on resource: memory.",
                ),
                Case(
                    "failed, no detail",
                    pod("Never", json!({"phase": "Failed"})),
                    Degraded,
                    "pod failed",
                ),
                Case(
                    "crash loop",
                    pod(
                        "Always",
                        json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}],
                        "containerStatuses": [{"name": "app", "ready": false, "restartCount": 5,
                            "state": {"waiting": {"reason": "CrashLoopBackOff",
                                "message": "back-off 2m40s restarting failed container=app pod=web-0_shop"}},
                            "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}}}]}),
                    ),
                    Degraded,
                    "container \"app\" is waiting: CrashLoopBackOff: back-off 2m40s",
                ),
                Case(
                    "image pull backoff",
                    pod(
                        "Always",
                        waiting("ImagePullBackOff", "Back-off pulling image \"nginx:nope\""),
                    ),
                    Degraded,
                    "ImagePullBackOff: Back-off pulling image",
                ),
                Case(
                    "err image pull",
                    pod("Always", waiting("ErrImagePull", "")),
                    Degraded,
                    "ErrImagePull",
                ),
                Case(
                    "config error",
                    pod(
                        "Always",
                        waiting("CreateContainerConfigError", "secret \"db\" not found"),
                    ),
                    Degraded,
                    "secret \"db\" not found",
                ),
                Case(
                    "invalid image",
                    pod("Always", waiting("InvalidImageName", "")),
                    Degraded,
                    "InvalidImageName",
                ),
                Case(
                    "init container stuck",
                    pod(
                        "Always",
                        json!({"phase": "Pending", "initContainerStatuses": [{"name": "migrate",
                        "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}),
                    ),
                    Degraded,
                    "container \"migrate\"",
                ),
                Case(
                    "container creating",
                    pod("Always", waiting("ContainerCreating", "")),
                    Progressing,
                    "pod is pending",
                ),
                Case(
                    "unschedulable",
                    pod(
                        "Always",
                        json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
                        "reason": "Unschedulable", "message": "0/3 nodes are available: 3 Insufficient cpu."}]}),
                    ),
                    Progressing,
                    "not scheduled: Unschedulable: 0/3 nodes are available",
                ),
                Case(
                    "running, not ready",
                    pod(
                        "Always",
                        json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "False",
                        "reason": "ContainersNotReady", "message": "containers with unready status: [app]"}]}),
                    ),
                    Progressing,
                    "waiting for pod to become ready: ContainersNotReady",
                ),
                Case(
                    "run to completion",
                    pod("Never", ready.clone()),
                    Progressing,
                    "running to completion",
                ),
                Case(
                    "on failure",
                    pod("OnFailure", ready),
                    Progressing,
                    "restartPolicy OnFailure",
                ),
                Case(
                    "no status yet",
                    pod("Always", Value::Null),
                    Progressing,
                    "pending",
                ),
                Case(
                    "node lost",
                    pod("Always", json!({"phase": "Unknown"})),
                    Unknown,
                    "unreachable",
                ),
            ],
        );
    }
}
