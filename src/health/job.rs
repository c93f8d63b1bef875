//! Job health: a `Failed` (or, since Kubernetes 1.31, `FailureTarget`)
//! condition is Degraded with its reason; `Complete` (or
//! `SuccessCriteriaMet`) is Healthy; `spec.suspend` is Suspended; anything
//! else is still running, Progressing.

use serde_json::Value;

use super::fields::{boolean, checked, conditions, int};
use super::HealthStatus;

pub(crate) fn job(obj: &Value) -> HealthStatus {
    checked(|| {
        let conds = conditions(obj)?;
        let is = |kind: &str| conds.iter().find(|c| c.kind == kind && c.is_true());
        if let Some(c) = is("Failed").or_else(|| is("FailureTarget")) {
            return Ok(HealthStatus::degraded(format!("job failed: {}", c.text())));
        }
        if is("Complete")
            .or_else(|| is("SuccessCriteriaMet"))
            .is_some()
        {
            return Ok(HealthStatus::healthy(""));
        }
        if boolean(obj, "spec.suspend")?.unwrap_or(false) {
            return Ok(HealthStatus::suspended("job is suspended"));
        }
        let completions = int(obj, "spec.completions")?.unwrap_or(1);
        let succeeded = int(obj, "status.succeeded")?.unwrap_or(0);
        let active = int(obj, "status.active")?.unwrap_or(0);
        let failed = int(obj, "status.failed")?.unwrap_or(0);
        let mut msg = format!(
            "waiting for job to complete: {succeeded} of {completions} succeeded, {active} active"
        );
        if failed > 0 {
            msg.push_str(&format!(", {failed} failed"));
        }
        Ok(HealthStatus::progressing(msg))
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::{table, Case};
    use super::super::Health::*;
    use serde_json::{json, Value};

    fn job(spec: Value, status: Value) -> Value {
        json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "migrate", "namespace": "shop", "generation": 1},
            "spec": spec, "status": status,
        })
    }

    #[test]
    fn job_table() {
        table(
            super::job,
            &[
                Case(
                    "complete",
                    job(
                        json!({"completions": 1}),
                        json!({"succeeded": 1, "conditions": [
                        {"type": "SuccessCriteriaMet", "status": "True"},
                        {"type": "Complete", "status": "True", "lastTransitionTime": "2024-05-01T10:00:00Z"}]}),
                    ),
                    Healthy,
                    "",
                ),
                Case(
                    "failed",
                    job(
                        json!({"backoffLimit": 2}),
                        json!({"failed": 3, "conditions": [
                        {"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded"},
                        {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                         "message": "Job has reached the specified backoff limit"}]}),
                    ),
                    Degraded,
                    "job failed: BackoffLimitExceeded: Job has reached the specified backoff limit",
                ),
                Case(
                    "failure target before failed",
                    job(
                        json!({}),
                        json!({"conditions": [{"type": "FailureTarget", "status": "True", "reason": "DeadlineExceeded"}]}),
                    ),
                    Degraded,
                    "DeadlineExceeded",
                ),
                Case(
                    "suspended",
                    job(json!({"suspend": true}), json!({})),
                    Suspended,
                    "suspended",
                ),
                Case(
                    "running",
                    job(
                        json!({"completions": 3}),
                        json!({"active": 1, "succeeded": 1, "failed": 1}),
                    ),
                    Progressing,
                    "1 of 3 succeeded, 1 active, 1 failed",
                ),
                Case(
                    "condition false does not count",
                    job(
                        json!({}),
                        json!({"active": 1, "conditions": [{"type": "Complete", "status": "False"}]}),
                    ),
                    Progressing,
                    "0 of 1 succeeded",
                ),
                Case(
                    "suspend as a string",
                    job(json!({"suspend": "yes"}), json!({})),
                    Unknown,
                    "spec.suspend is not a boolean",
                ),
            ],
        );
    }
}
