//! Namespace health: Active is Healthy, Terminating is Progressing. A
//! Namespace without a phase (never written by an API server) is Healthy.

use serde_json::Value;

use super::fields::{checked, string};
use super::HealthStatus;

pub(crate) fn namespace(obj: &Value) -> HealthStatus {
    checked(|| {
        Ok(match string(obj, "status.phase")? {
            Some("Active") | None => HealthStatus::healthy(""),
            Some("Terminating") => HealthStatus::progressing("namespace is terminating"),
            Some(other) => HealthStatus::unknown(format!("namespace phase is {other}")),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::{table, Case};
    use super::super::Health::*;
    use serde_json::{json, Value};

    fn ns(status: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"},
               "spec": {"finalizers": ["kubernetes"]}, "status": status})
    }

    #[test]
    fn namespace_table() {
        table(
            super::namespace,
            &[
                Case("active", ns(json!({"phase": "Active"})), Healthy, ""),
                Case("no status", ns(Value::Null), Healthy, ""),
                Case(
                    "terminating",
                    ns(json!({"phase": "Terminating"})),
                    Progressing,
                    "terminating",
                ),
                Case(
                    "odd",
                    ns(json!({"phase": 1})),
                    Unknown,
                    "status.phase is not a string",
                ),
            ],
        );
    }
}
