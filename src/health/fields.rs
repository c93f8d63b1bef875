//! Typed, panic-free reads of the fields health rules look at.
//!
//! A field that is absent (or `null`) reads as `None`; a field of the wrong
//! type is a [`FieldError`], which [`checked`] turns into `Unknown` health
//! naming the field, the way gitops-engine reports a failed conversion of an
//! unstructured object. Nothing here panics on any input.

use serde_json::Value;

use super::{Health, HealthStatus};

/// A field whose JSON type is not what the API schema says it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FieldError(pub String);

/// What a rule returns before malformed fields are mapped to `Unknown`.
pub(super) type Check = Result<HealthStatus, FieldError>;

/// Runs a rule; a malformed field becomes `Unknown` with the field named.
pub(super) fn checked(rule: impl FnOnce() -> Check) -> HealthStatus {
    rule().unwrap_or_else(|FieldError(msg)| {
        HealthStatus::new(Health::Unknown, format!("cannot assess health: {msg}"))
    })
}

/// The value at a dotted path (`status.loadBalancer.ingress`). Absent or
/// `null` anywhere along the way is `None`; a non-object in the middle is an
/// error.
pub(super) fn get<'a>(obj: &'a Value, path: &str) -> Result<Option<&'a Value>, FieldError> {
    let mut cur = obj;
    let mut walked = String::new();
    for key in path.split('.') {
        match cur {
            Value::Null => return Ok(None),
            Value::Object(map) => match map.get(key) {
                Some(v) => cur = v,
                None => return Ok(None),
            },
            _ => {
                let what = if walked.is_empty() { "object" } else { &walked };
                return Err(FieldError(format!("{what} is not an object")));
            }
        }
        if !walked.is_empty() {
            walked.push('.');
        }
        walked.push_str(key);
    }
    Ok(if cur.is_null() { None } else { Some(cur) })
}

/// An integer field. JSON numbers with no fractional part are accepted
/// (`3.0`); strings are not (`"3"` is a malformed object, not three).
pub(super) fn int(obj: &Value, path: &str) -> Result<Option<i64>, FieldError> {
    let Some(v) = get(obj, path)? else {
        return Ok(None);
    };
    let n = v.as_i64().or_else(|| {
        v.as_f64()
            .filter(|f| f.fract() == 0.0 && *f >= i64::MIN as f64 && *f <= i64::MAX as f64)
            .map(|f| f as i64)
    });
    n.map(Some)
        .ok_or_else(|| FieldError(format!("{path} is not an integer: {v}")))
}

/// A string field.
pub(super) fn string<'a>(obj: &'a Value, path: &str) -> Result<Option<&'a str>, FieldError> {
    match get(obj, path)? {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(v) => Err(FieldError(format!("{path} is not a string: {v}"))),
    }
}

/// A boolean field.
pub(super) fn boolean(obj: &Value, path: &str) -> Result<Option<bool>, FieldError> {
    match get(obj, path)? {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(v) => Err(FieldError(format!("{path} is not a boolean: {v}"))),
    }
}

/// An array field; absent reads as empty.
pub(super) fn array<'a>(obj: &'a Value, path: &str) -> Result<&'a [Value], FieldError> {
    match get(obj, path)? {
        None => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(v) => Err(FieldError(format!("{path} is not a list: {v}"))),
    }
}

/// `metadata.name`, for messages; empty when absent.
pub(super) fn name(obj: &Value) -> &str {
    obj.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// `(generation, observedGeneration)` when the controller has not yet seen
/// the latest spec. `absent_observed` is what an absent
/// `status.observedGeneration` counts as: `Some(0)` for built-in workloads
/// (whose controllers always set it, so absent means "not yet"), `None` for
/// everything else (absent means "this kind does not report it").
pub(super) fn unobserved_generation(
    obj: &Value,
    absent_observed: Option<i64>,
) -> Result<Option<(i64, i64)>, FieldError> {
    let Some(generation) = int(obj, "metadata.generation")? else {
        return Ok(None);
    };
    let Some(observed) = int(obj, "status.observedGeneration")?.or(absent_observed) else {
        return Ok(None);
    };
    Ok((observed < generation).then_some((generation, observed)))
}

/// One entry of `status.conditions`. Missing fields read as empty strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Condition<'a> {
    pub kind: &'a str,
    pub status: &'a str,
    pub reason: &'a str,
    pub message: &'a str,
}

impl<'a> Condition<'a> {
    fn from_value(v: &'a Value) -> Option<Self> {
        let field = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("");
        v.is_object().then(|| Condition {
            kind: field("type"),
            status: field("status"),
            reason: field("reason"),
            message: field("message"),
        })
    }

    pub fn is_true(&self) -> bool {
        self.status == "True"
    }

    pub fn is_false(&self) -> bool {
        self.status == "False"
    }

    /// `reason: message`, or whichever of them is set.
    pub fn text(&self) -> String {
        match (self.reason.is_empty(), self.message.is_empty()) {
            (false, false) => format!("{}: {}", self.reason, self.message),
            (false, true) => self.reason.to_string(),
            (true, false) => self.message.to_string(),
            (true, true) => format!("{} is {}", self.kind, self.status),
        }
    }
}

/// The conditions at `path` (normally `status.conditions`).
pub(super) fn conditions_at<'a>(
    obj: &'a Value,
    path: &str,
) -> Result<Vec<Condition<'a>>, FieldError> {
    array(obj, path)?
        .iter()
        .enumerate()
        .map(|(i, v)| {
            Condition::from_value(v)
                .ok_or_else(|| FieldError(format!("{path}[{i}] is not an object")))
        })
        .collect()
}

/// `status.conditions`.
pub(super) fn conditions(obj: &Value) -> Result<Vec<Condition<'_>>, FieldError> {
    conditions_at(obj, "status.conditions")
}

/// The first condition of the given type.
pub(super) fn find<'c, 'a>(conds: &'c [Condition<'a>], kind: &str) -> Option<&'c Condition<'a>> {
    conds.iter().find(|c| c.kind == kind)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_are_typed_and_never_panic() {
        let obj = json!({"spec": {"replicas": 3, "f": 2.0, "s": "3", "b": true}, "status": "odd"});
        assert_eq!(int(&obj, "spec.replicas"), Ok(Some(3)));
        assert_eq!(int(&obj, "spec.f"), Ok(Some(2)));
        assert_eq!(int(&obj, "spec.missing"), Ok(None));
        assert!(int(&obj, "spec.s")
            .unwrap_err()
            .0
            .contains("spec.s is not an integer"));
        assert_eq!(boolean(&obj, "spec.b"), Ok(Some(true)));
        assert!(string(&obj, "spec.b").is_err());
        let e = int(&obj, "status.replicas").unwrap_err();
        assert_eq!(e.0, "status is not an object");
        assert_eq!(
            int(&json!("x"), "a").unwrap_err().0,
            "object is not an object"
        );
        assert_eq!(array(&obj, "spec.list"), Ok(&[][..]));
    }

    #[test]
    fn conditions_tolerate_missing_fields() {
        let obj = json!({"status": {"conditions": [{"type": "Ready"}, {"type": "X", "status": "False", "reason": "R"}]}});
        let c = conditions(&obj).unwrap();
        assert_eq!(find(&c, "Ready").unwrap().status, "");
        assert_eq!(find(&c, "X").unwrap().text(), "R");
        let bad = json!({"status": {"conditions": [1]}});
        assert!(conditions(&bad).is_err());
    }
}
