//! Application health, for both `kubesync.dev` and `argoproj.io`
//! Applications (children in an app of apps): the health the owning
//! controller wrote to `status.health` (`{status, message}`). An Application
//! that has no health yet has not been reconciled, so it is Progressing — a
//! parent waits for it rather than treating it as done. A value that is not
//! one of the six names is Unknown.

use serde_json::Value;

use super::fields::{checked, get, string};
use super::{Health, HealthStatus};

pub(crate) fn application(obj: &Value) -> HealthStatus {
    checked(|| {
        if get(obj, "status.health")?.is_none() {
            return Ok(HealthStatus::progressing(
                "waiting for the application's health to be reported",
            ));
        }
        let message = string(obj, "status.health.message")?.unwrap_or("");
        Ok(match string(obj, "status.health.status")? {
            None | Some("") => {
                HealthStatus::progressing("waiting for the application's health to be reported")
            }
            Some(s) => match s.parse::<Health>() {
                Ok(h) => HealthStatus::new(h, message),
                Err(e) => HealthStatus::unknown(e.to_string()),
            },
        })
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::{table, Case};
    use super::super::Health::*;
    use serde_json::{json, Value};

    fn app(api_version: &str, status: Value) -> Value {
        json!({
            "apiVersion": api_version, "kind": "Application",
            "metadata": {"name": "guestbook", "namespace": "argocd"},
            "spec": {"source": {"path": "apps/guestbook"}, "destination": {"namespace": "guestbook"}},
            "status": status,
        })
    }

    #[test]
    fn application_table() {
        let ks = "kubesync.dev/v1alpha1";
        let argo = "argoproj.io/v1alpha1";
        table(
            super::application,
            &[
                Case(
                    "kubesync healthy",
                    app(
                        ks,
                        json!({"health": {"status": "Healthy"}, "sync": {"status": "Synced"}}),
                    ),
                    Healthy,
                    "",
                ),
                Case(
                    "argo healthy",
                    app(argo, json!({"health": {"status": "Healthy"}})),
                    Healthy,
                    "",
                ),
                Case(
                    "argo degraded",
                    app(
                        argo,
                        json!({"health": {"status": "Degraded", "message": "1 of 3 objects Degraded"}}),
                    ),
                    Degraded,
                    "1 of 3 objects Degraded",
                ),
                Case(
                    "suspended",
                    app(ks, json!({"health": {"status": "Suspended"}})),
                    Suspended,
                    "",
                ),
                Case(
                    "missing",
                    app(argo, json!({"health": {"status": "Missing"}})),
                    Missing,
                    "",
                ),
                Case(
                    "no status",
                    app(ks, Value::Null),
                    Progressing,
                    "to be reported",
                ),
                Case(
                    "no health",
                    app(argo, json!({"sync": {"status": "OutOfSync"}})),
                    Progressing,
                    "to be reported",
                ),
                Case(
                    "odd",
                    app(argo, json!({"health": {"status": "Sad"}})),
                    Unknown,
                    "unknown health \"Sad\"",
                ),
                Case(
                    "malformed",
                    app(ks, json!({"health": "Healthy"})),
                    Unknown,
                    "status.health is not an object",
                ),
            ],
        );
    }

    #[test]
    fn written_back_status_reads_back() {
        let written = super::HealthStatus::degraded("2 of 4 objects Degraded: x");
        let obj = app(
            "kubesync.dev/v1alpha1",
            json!({"health": serde_json::to_value(&written).unwrap()}),
        );
        assert_eq!(super::application(&obj), written);
    }
}
