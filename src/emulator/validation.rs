//! Object validation the real API server performs on every kind: object
//! names (per the kind's naming rule), label keys and values, and the
//! messages it reports, and the immutable fields of an update. Schema
//! validation of specs is out of scope.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

use super::errors::Cause;
use super::resources::NameRule;

const LABEL_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const SUBDOMAIN_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1035_FMT: &str = "[a-z]([-a-z0-9]*[a-z0-9])?";
const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";

fn anchored(fmt: &str) -> Regex {
    // The patterns above are constants; failing to compile one is a bug.
    Regex::new(&format!("^{fmt}$")).expect("valid built-in regex")
}

static LABEL_RE: LazyLock<Regex> = LazyLock::new(|| anchored(LABEL_FMT));
static SUBDOMAIN_RE: LazyLock<Regex> = LazyLock::new(|| anchored(SUBDOMAIN_FMT));
static DNS1035_RE: LazyLock<Regex> = LazyLock::new(|| anchored(DNS1035_FMT));
static LABEL_VALUE_RE: LazyLock<Regex> = LazyLock::new(|| anchored(LABEL_VALUE_FMT));
static QUALIFIED_NAME_RE: LazyLock<Regex> = LazyLock::new(|| anchored(QUALIFIED_NAME_FMT));

/// `msg (e.g. 'a',  or 'b', regex used for validation is 'fmt')`, the way the
/// real server words a regex failure.
fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    let mut out = format!("{msg} (e.g. ");
    for (i, e) in examples.iter().enumerate() {
        if i > 0 {
            out.push_str(" or ");
        }
        out.push_str(&format!("'{e}', "));
    }
    out.push_str(&format!("regex used for validation is '{fmt}')"));
    out
}

fn max_len(n: usize) -> String {
    format!("must be no more than {n} characters")
}

/// Problems with `value` as an RFC 1123 label (namespace names).
pub fn dns1123_label(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 63 {
        errs.push(max_len(63));
    }
    if !LABEL_RE.is_match(value) {
        errs.push(regex_error(
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character",
            LABEL_FMT,
            &["my-name", "123-abc"],
        ));
    }
    errs
}

/// Problems with `value` as an RFC 1123 subdomain (most object names).
pub fn dns1123_subdomain(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 253 {
        errs.push(max_len(253));
    }
    if !SUBDOMAIN_RE.is_match(value) {
        errs.push(regex_error(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
            SUBDOMAIN_FMT,
            &["example.com"],
        ));
    }
    errs
}

/// Problems with `value` as an RFC 1035 label (service names).
pub fn dns1035_label(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 63 {
        errs.push(max_len(63));
    }
    if !DNS1035_RE.is_match(value) {
        errs.push(regex_error(
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character",
            DNS1035_FMT,
            &["my-name", "abc-123"],
        ));
    }
    errs
}

fn path_segment(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value == "." || value == ".." {
        errs.push(format!("may not be '{value}'"));
    }
    for c in ["/", "%"] {
        if value.contains(c) {
            errs.push(format!("may not contain '{c}'"));
        }
    }
    errs
}

fn invalid(field: &str, value: &str, msg: &str) -> Cause {
    Cause {
        reason: "FieldValueInvalid".into(),
        message: format!("Invalid value: {value:?}: {msg}"),
        field: field.into(),
    }
}

/// Causes for an invalid object name under `rule`.
pub fn validate_name(rule: NameRule, name: &str) -> Vec<Cause> {
    let errs = match rule {
        NameRule::Subdomain => dns1123_subdomain(name),
        NameRule::Label => dns1123_label(name),
        NameRule::Dns1035 => dns1035_label(name),
        NameRule::PathSegment => path_segment(name),
    };
    errs.iter()
        .map(|m| invalid("metadata.name", name, m))
        .collect()
}

/// The cause for a missing name.
pub fn name_required() -> Cause {
    Cause {
        reason: "FieldValueRequired".into(),
        message: "Required value: name or generateName is required".into(),
        field: "metadata.name".into(),
    }
}

fn qualified_name(key: &str) -> Vec<String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let mut errs = Vec::new();
    if let Some(p) = prefix {
        if p.is_empty() {
            errs.push("prefix part must be non-empty".to_string());
        } else {
            errs.extend(
                dns1123_subdomain(p)
                    .into_iter()
                    .map(|m| format!("prefix part {m}")),
            );
        }
    }
    if name.is_empty() {
        errs.push("name part must be non-empty".into());
    } else {
        if name.len() > 63 {
            errs.push(format!("name part {}", max_len(63)));
        }
        if !QUALIFIED_NAME_RE.is_match(name) {
            errs.push(format!(
                "name part {}",
                regex_error(
                    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
                    QUALIFIED_NAME_FMT,
                    &["MyName", "my.name", "123-abc"],
                )
            ));
        }
    }
    errs
}

/// Causes for invalid `metadata.labels` keys or values, and non-string
/// label or annotation values.
pub fn validate_metadata_maps(obj: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    if let Some(labels) = obj.pointer("/metadata/labels").and_then(Value::as_object) {
        for (k, v) in labels {
            for m in qualified_name(k) {
                causes.push(invalid("metadata.labels", k, &m));
            }
            match v.as_str() {
                Some(s) => {
                    if s.len() > 63 {
                        causes.push(invalid("metadata.labels", s, &max_len(63)));
                    }
                    if !LABEL_VALUE_RE.is_match(s) {
                        causes.push(invalid(
                            "metadata.labels",
                            s,
                            &regex_error(
                                "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
                                LABEL_VALUE_FMT,
                                &["MyValue", "my_value", "12345"],
                            ),
                        ))
                    }
                }
                None => causes.push(invalid(
                    "metadata.labels",
                    &v.to_string(),
                    "must be a string",
                )),
            }
        }
    }
    if let Some(ann) = obj
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
    {
        for (k, v) in ann {
            for m in qualified_name(&k.to_lowercase()) {
                causes.push(invalid("metadata.annotations", k, &m));
            }
            if !v.is_string() {
                causes.push(invalid(
                    "metadata.annotations",
                    &v.to_string(),
                    "must be a string",
                ));
            }
        }
    }
    causes
}

fn required(field: &str, detail: &str) -> Cause {
    Cause {
        reason: "FieldValueRequired".into(),
        message: if detail.is_empty() {
            "Required value".into()
        } else {
            format!("Required value: {detail}")
        },
        field: field.into(),
    }
}

fn invalid_value(field: &str, value: &Value, msg: &str) -> Cause {
    Cause {
        reason: "FieldValueInvalid".into(),
        message: format!("Invalid value: {value}: {msg}"),
        field: field.into(),
    }
}

fn forbidden(field: &str, msg: &str) -> Cause {
    Cause {
        reason: "FieldValueForbidden".into(),
        message: format!("Forbidden: {msg}"),
        field: field.into(),
    }
}

/// Causes for a pod template of a workload at `prefix` (`spec.template`).
fn validate_template(obj: &Value, ptr: &str, prefix: &str, causes: &mut Vec<Cause>) {
    let containers = obj
        .pointer(&format!("{ptr}/spec/containers"))
        .and_then(Value::as_array);
    if containers.is_none_or(|c| c.is_empty()) {
        causes.push(required(&format!("{prefix}.spec.containers"), ""));
    }
}

/// Causes for the spec of a built-in kind, checked the way the real server
/// checks the fields tools most often get wrong: workload selectors (present,
/// matching the template's labels), containers present, replicas not
/// negative, a Job's restart policy, Service port ranges.
/// The Lease rules of the real server's `ValidateLeaseSpec`.
fn validate_lease(obj: &Value, causes: &mut Vec<Cause>) {
    if let Some(d) = obj
        .pointer("/spec/leaseDurationSeconds")
        .and_then(Value::as_i64)
    {
        if d <= 0 {
            causes.push(invalid_value(
                "spec.leaseDurationSeconds",
                &Value::from(d),
                "must be greater than 0",
            ));
        }
    }
    if let Some(t) = obj
        .pointer("/spec/leaseTransitions")
        .and_then(Value::as_i64)
    {
        if t < 0 {
            causes.push(invalid_value(
                "spec.leaseTransitions",
                &Value::from(t),
                "must be greater than or equal to 0",
            ));
        }
    }
    let preferred = obj
        .pointer("/spec/preferredHolder")
        .and_then(Value::as_str)
        .is_some_and(|s| !s.is_empty());
    let strategy = obj
        .pointer("/spec/strategy")
        .and_then(Value::as_str)
        .is_some_and(|s| !s.is_empty());
    if preferred && !strategy {
        causes.push(forbidden(
            "spec.preferredHolder",
            "preferredHolder can only be set if strategy is set",
        ));
    }
}

pub fn validate_spec(group: &str, plural: &str, obj: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    match (group, plural) {
        ("apps", "deployments" | "replicasets" | "statefulsets" | "daemonsets") => {
            if let Some(r) = obj.pointer("/spec/replicas").and_then(Value::as_i64) {
                if r < 0 {
                    causes.push(invalid_value(
                        "spec.replicas",
                        &Value::from(r),
                        "must be greater than or equal to 0",
                    ));
                }
            }
            let selector = obj.pointer("/spec/selector");
            let labels = obj
                .pointer("/spec/template/metadata/labels")
                .cloned()
                .unwrap_or(Value::Null);
            let label_map = labels.as_object();
            match selector {
                None | Some(Value::Null) => {
                    causes.push(required("spec.selector", ""));
                    causes.push(invalid_value(
                        "spec.template.metadata.labels",
                        &labels,
                        "`selector` does not match template `labels`",
                    ));
                }
                Some(sel) => {
                    let matches = sel
                        .get("matchLabels")
                        .and_then(Value::as_object)
                        .into_iter()
                        .flatten()
                        .all(|(k, v)| label_map.and_then(|l| l.get(k)) == Some(v));
                    let has_terms = sel
                        .get("matchLabels")
                        .is_some_and(|m| m.as_object().is_some_and(|m| !m.is_empty()))
                        || sel
                            .get("matchExpressions")
                            .and_then(Value::as_array)
                            .is_some_and(|e| !e.is_empty());
                    if !has_terms {
                        causes.push(invalid_value(
                            "spec.selector",
                            sel,
                            "empty selector is invalid for deployment",
                        ));
                    } else if !matches {
                        causes.push(invalid_value(
                            "spec.template.metadata.labels",
                            &labels,
                            "`selector` does not match template `labels`",
                        ));
                    }
                }
            }
            validate_template(obj, "/spec/template", "spec.template", &mut causes);
        }
        ("coordination.k8s.io", "leases") => validate_lease(obj, &mut causes),
        ("batch", "jobs") => {
            validate_template(obj, "/spec/template", "spec.template", &mut causes);
            let policy = obj
                .pointer("/spec/template/spec/restartPolicy")
                .and_then(Value::as_str);
            if !matches!(policy, Some("OnFailure" | "Never")) {
                causes.push(required(
                    "spec.template.spec.restartPolicy",
                    "valid values: \"OnFailure\", \"Never\"",
                ));
            }
        }
        ("", "secrets") => {
            let required_keys: &[&str] = match obj.get("type").and_then(Value::as_str) {
                Some("kubernetes.io/tls") => &["tls.crt", "tls.key"],
                Some("kubernetes.io/dockerconfigjson") => &[".dockerconfigjson"],
                _ => &[],
            };
            for key in required_keys {
                if obj.pointer("/data").and_then(|d| d.get(*key)).is_none() {
                    causes.push(required(&format!("data[{key}]"), ""));
                }
            }
        }
        ("", "services") => {
            let ports = obj.pointer("/spec/ports").and_then(Value::as_array);
            for (i, p) in ports.into_iter().flatten().enumerate() {
                for key in ["port", "targetPort"] {
                    if let Some(n) = p.get(key).and_then(Value::as_i64) {
                        if !(1..=65535).contains(&n) {
                            causes.push(invalid_value(
                                &format!("spec.ports[{i}].{key}"),
                                &Value::from(n),
                                "must be between 1 and 65535, inclusive",
                            ));
                        }
                    }
                }
            }
        }
        _ => {}
    }
    causes
}

fn immutable_invalid(field: &str, value: &Value) -> Cause {
    Cause {
        reason: "FieldValueInvalid".into(),
        message: format!("Invalid value: {value}: field is immutable"),
        field: field.into(),
    }
}

fn immutable_forbidden(field: &str) -> Cause {
    Cause {
        reason: "FieldValueForbidden".into(),
        message: "Forbidden: field is immutable when `immutable` is set".into(),
        field: field.into(),
    }
}

/// Causes for an update of `old` into `new` that changes a field the real
/// server keeps immutable: new finalizers on an object being deleted,
/// workload selectors, a Job's pod template, a StatefulSet's service name,
/// and the contents of a ConfigMap or Secret created with `immutable: true`.
pub fn validate_immutable(group: &str, plural: &str, old: &Value, new: &Value) -> Vec<Cause> {
    let changed = |ptr: &str| old.pointer(ptr) != new.pointer(ptr);
    let value = |ptr: &str| new.pointer(ptr).cloned().unwrap_or(Value::Null);
    let mut causes = Vec::new();
    if old.pointer("/metadata/deletionTimestamp").is_some() {
        let finalizers = |o: &Value| -> Vec<String> {
            o.pointer("/metadata/finalizers")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|f| f.as_str().map(str::to_string))
                .collect()
        };
        let before = finalizers(old);
        let added: Vec<String> = finalizers(new)
            .into_iter()
            .filter(|f| !before.contains(f))
            .collect();
        if !added.is_empty() {
            causes.push(Cause {
                reason: "FieldValueForbidden".into(),
                message: format!(
                    "Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers {added:?}"
                ),
                field: "metadata.finalizers".into(),
            });
        }
    }
    match (group, plural) {
        ("apps", "deployments" | "replicasets" | "statefulsets" | "daemonsets") => {
            if changed("/spec/selector") {
                causes.push(immutable_invalid("spec.selector", &value("/spec/selector")));
            }
            if plural == "statefulsets" && changed("/spec/serviceName") {
                causes.push(immutable_invalid(
                    "spec.serviceName",
                    &value("/spec/serviceName"),
                ));
            }
        }
        ("batch", "jobs") if changed("/spec/template") => {
            causes.push(immutable_invalid(
                "spec.template",
                &value("/spec/template/metadata"),
            ));
        }
        ("", "secrets") if changed("/type") && old.get("type").is_some() => {
            causes.push(immutable_invalid("type", &value("/type")));
            if old.get("immutable") == Some(&Value::Bool(true))
                && old.get("data") != new.get("data")
            {
                causes.push(immutable_forbidden("data"));
            }
        }
        ("", "configmaps" | "secrets") if old.get("immutable") == Some(&Value::Bool(true)) => {
            for key in ["data", "binaryData"] {
                if old.get(key) != new.get(key) {
                    causes.push(immutable_forbidden(key));
                }
            }
            if changed("/immutable") {
                causes.push(immutable_forbidden("immutable"));
            }
        }
        _ => {}
    }
    causes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(validate_name(NameRule::Subdomain, "web.example").is_empty());
        let c = validate_name(NameRule::Subdomain, "Bad_Name");
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].message, "Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')");
        let l = validate_name(NameRule::Label, "a.b");
        assert!(l[0]
            .message
            .contains("(e.g. 'my-name',  or '123-abc', regex"));
        assert!(!validate_name(NameRule::Dns1035, "1abc").is_empty());
        assert!(validate_name(NameRule::PathSegment, "system:admin").is_empty());
        assert!(!validate_name(NameRule::PathSegment, "a/b").is_empty());
    }

    #[test]
    fn lease_spec() {
        let ok = serde_json::json!({"spec": {"holderIdentity": "a", "leaseDurationSeconds": 15, "leaseTransitions": 0}});
        assert!(validate_spec("coordination.k8s.io", "leases", &ok).is_empty());
        let bad = serde_json::json!({"spec": {"leaseDurationSeconds": 0, "leaseTransitions": -1, "preferredHolder": "b"}});
        let c = validate_spec("coordination.k8s.io", "leases", &bad);
        let fields: Vec<_> = c.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "spec.leaseDurationSeconds",
                "spec.leaseTransitions",
                "spec.preferredHolder"
            ]
        );
        assert_eq!(c[0].message, "Invalid value: 0: must be greater than 0");
    }

    #[test]
    fn immutable_fields() {
        let d = serde_json::json!({"spec": {"selector": {"matchLabels": {"app": "a"}}}});
        let mut d2 = d.clone();
        d2["spec"]["selector"]["matchLabels"]["v"] = serde_json::json!("2");
        let c = validate_immutable("apps", "deployments", &d, &d2);
        assert_eq!(c[0].field, "spec.selector");
        assert!(c[0].message.ends_with("field is immutable"));
        assert!(validate_immutable("apps", "deployments", &d, &d).is_empty());
        let cm = serde_json::json!({"immutable": true, "data": {"a": "1"}});
        let cm2 = serde_json::json!({"immutable": true, "data": {"a": "2"}});
        assert_eq!(
            validate_immutable("", "configmaps", &cm, &cm2)[0].field,
            "data"
        );
    }

    #[test]
    fn workload_specs() {
        let ok = serde_json::json!({"spec": {"selector": {"matchLabels": {"app": "a"}},
            "template": {"metadata": {"labels": {"app": "a", "x": "y"}},
                "spec": {"containers": [{"name": "c", "image": "i"}]}}}});
        assert!(validate_spec("apps", "deployments", &ok).is_empty());
        let mut other = ok.clone();
        other["spec"]["selector"]["matchLabels"]["app"] = serde_json::json!("b");
        let c = validate_spec("apps", "deployments", &other);
        assert_eq!(c[0].field, "spec.template.metadata.labels");
        let mut none = ok.clone();
        none["spec"]
            .as_object_mut()
            .expect("spec")
            .remove("selector");
        let fields: Vec<_> = validate_spec("apps", "deployments", &none)
            .into_iter()
            .map(|c| c.field)
            .collect();
        assert_eq!(fields, ["spec.selector", "spec.template.metadata.labels"]);
    }

    #[test]
    fn labels() {
        let ok =
            serde_json::json!({"metadata": {"labels": {"app.kubernetes.io/name": "web", "x": ""}}});
        assert!(validate_metadata_maps(&ok).is_empty());
        let bad = serde_json::json!({"metadata": {"labels": {"app": "has space"}}});
        assert_eq!(validate_metadata_maps(&bad).len(), 1);
    }
}
