//! CronJob health: `spec.suspend` is Suspended, otherwise Healthy. Whether
//! the last run failed is the Job's health, not the CronJob's; Jobs created
//! by a schedule are not in an app's inventory, so kubesync keeps this simple.

use serde_json::Value;

use super::fields::{boolean, checked};
use super::HealthStatus;

pub(crate) fn cronjob(obj: &Value) -> HealthStatus {
    checked(|| {
        if boolean(obj, "spec.suspend")?.unwrap_or(false) {
            return Ok(HealthStatus::suspended("cronjob is suspended"));
        }
        Ok(HealthStatus::healthy(""))
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::{table, Case};
    use super::super::Health::*;
    use serde_json::{json, Value};

    fn cj(suspend: Value) -> Value {
        json!({
            "apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": "report", "namespace": "shop"},
            "spec": {"schedule": "0 * * * *", "suspend": suspend, "jobTemplate": {"spec": {}}},
            "status": {"lastScheduleTime": "2024-05-01T10:00:00Z"},
        })
    }

    #[test]
    fn cronjob_table() {
        table(
            super::cronjob,
            &[
                Case("scheduled", cj(json!(false)), Healthy, ""),
                Case("default", cj(Value::Null), Healthy, ""),
                Case(
                    "suspended",
                    cj(json!(true)),
                    Suspended,
                    "cronjob is suspended",
                ),
                Case("malformed", cj(json!(1)), Unknown, "spec.suspend"),
            ],
        );
    }
}
