//! CustomResourceDefinition health: `NamesAccepted=False` (a name clash) is
//! Degraded; `Established=True` is Healthy (its API is served, so custom
//! resources of the kind can be applied); anything else is Progressing.

use serde_json::Value;

use super::fields::{checked, conditions, find};
use super::HealthStatus;

pub(crate) fn custom_resource_definition(obj: &Value) -> HealthStatus {
    checked(|| {
        let conds = conditions(obj)?;
        if let Some(c) = find(&conds, "NamesAccepted").filter(|c| c.is_false()) {
            return Ok(HealthStatus::degraded(format!(
                "names not accepted: {}",
                c.text()
            )));
        }
        if find(&conds, "Established").is_some_and(|c| c.is_true()) {
            return Ok(HealthStatus::healthy(""));
        }
        Ok(HealthStatus::progressing(
            "waiting for the CustomResourceDefinition to be established",
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::{table, Case};
    use super::super::Health::*;
    use serde_json::{json, Value};

    fn crd(conditions: Value) -> Value {
        json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com", "generation": 1},
            "spec": {"group": "example.com", "names": {"kind": "Widget", "plural": "widgets"}, "scope": "Namespaced"},
            "status": {"conditions": conditions, "acceptedNames": {"kind": "Widget", "plural": "widgets"}},
        })
    }

    #[test]
    fn crd_table() {
        table(
            super::custom_resource_definition,
            &[
                Case(
                    "established",
                    crd(
                        json!([{"type": "NamesAccepted", "status": "True", "reason": "NoConflicts"},
                               {"type": "Established", "status": "True", "reason": "InitialNamesAccepted"}]),
                    ),
                    Healthy,
                    "",
                ),
                Case("new", crd(Value::Null), Progressing, "established"),
                Case(
                    "names accepted, not yet established",
                    crd(
                        json!([{"type": "NamesAccepted", "status": "True"}, {"type": "Established", "status": "False", "reason": "Installing"}]),
                    ),
                    Progressing,
                    "established",
                ),
                Case(
                    "name clash",
                    crd(
                        json!([{"type": "NamesAccepted", "status": "False", "reason": "MultipleNamesNotAllowed",
                                "message": "\"widget\" is already in use"},
                               {"type": "Established", "status": "False", "reason": "NotAccepted"}]),
                    ),
                    Degraded,
                    "MultipleNamesNotAllowed: \"widget\" is already in use",
                ),
            ],
        );
    }
}
