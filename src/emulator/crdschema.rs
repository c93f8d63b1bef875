//! Custom resources against their CRD's structural schema
//! (`openAPIV3Schema`), as the real server checks them: value types, `enum`,
//! `minimum`/`maximum`, `required`, and the fields the schema does not
//! declare (pruned, or rejected under `fieldValidation=Strict`; a server-side
//! apply naming one fails with 500). `x-kubernetes-preserve-unknown-fields`
//! and `additionalProperties` keep what they cover; `x-kubernetes-int-or-string`
//! takes both. Not covered: formats, patterns, lengths, CEL rules, defaults.

use serde_json::{Map, Value};

use super::errors::Cause;

/// What checking an object found.
#[derive(Debug, Default)]
pub struct Findings {
    /// Invalid values (the 422's causes).
    pub causes: Vec<Cause>,
    /// Undeclared fields, as `spec.extra`.
    pub unknown: Vec<String>,
    /// Type errors in the words of a typed patch (`.spec.size: expected
    /// numeric (int or float), got string`).
    pub typed: Vec<String>,
}

/// The schema of `version` in a CRD object.
pub fn version_schema<'a>(crd: &'a Value, version: &str) -> Option<&'a Value> {
    crd.pointer("/spec/versions")?
        .as_array()?
        .iter()
        .find(|v| v.get("name").and_then(Value::as_str) == Some(version))?
        .pointer("/schema/openAPIV3Schema")
}

/// Checks `obj` (below `apiVersion`, `kind` and `metadata`) against
/// `schema`; with `prune`, removes the undeclared fields from it.
pub fn check(schema: &Value, obj: &mut Value, prune: bool) -> Findings {
    let mut f = Findings::default();
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return f;
    };
    let Some(m) = obj.as_object_mut() else {
        return f;
    };
    let keys: Vec<String> = m.keys().cloned().collect();
    for k in keys {
        if matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
            continue;
        }
        match props.get(&k) {
            Some(s) => {
                if let Some(v) = m.get_mut(&k) {
                    walk(s, v, &k, prune, &mut f);
                }
            }
            None if preserves(schema) => {}
            None => {
                f.unknown.push(k.clone());
                if prune {
                    m.remove(&k);
                }
            }
        }
    }
    required(schema, m, "", &mut f);
    f
}

fn preserves(s: &Value) -> bool {
    s.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true))
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_ok(ty: &str, v: &Value) -> bool {
    match ty {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        _ => true,
    }
}

fn typed_words(ty: &str, v: &Value) -> String {
    let expected = match ty {
        "integer" | "number" => "numeric (int or float)",
        "object" => "map",
        "array" => "list",
        "boolean" => "boolean",
        other => other,
    };
    format!("expected {expected}, got {}", type_name(v))
}

fn walk(s: &Value, v: &mut Value, path: &str, prune: bool, f: &mut Findings) {
    if v.is_null() {
        return;
    }
    let int_or_string = s.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true));
    if int_or_string {
        if !(v.is_string() || v.is_i64() || v.is_u64()) {
            f.typed
                .push(format!(".{path}: {}", typed_words("string", v)));
        }
        return;
    }
    if let Some(ty) = s.get("type").and_then(Value::as_str) {
        if !type_ok(ty, v) {
            let actual = type_name(v);
            f.causes.push(Cause {
                reason: "FieldValueTypeInvalid".into(),
                message: format!(
                    "Invalid value: \"{actual}\": {path} in body must be of type {ty}: \"{actual}\""
                ),
                field: path.into(),
            });
            // An integer-typed field given a whole-valued float still types.
            if !(ty == "integer" && v.is_number()) {
                f.typed.push(format!(".{path}: {}", typed_words(ty, v)));
            }
            return;
        }
    }
    if let Some(allowed) = s.get("enum").and_then(Value::as_array) {
        if !allowed.contains(v) {
            let list: Vec<String> = allowed.iter().map(Value::to_string).collect();
            f.causes.push(Cause {
                reason: "FieldValueNotSupported".into(),
                message: format!(
                    "Unsupported value: {v}: supported values: {}",
                    list.join(", ")
                ),
                field: path.into(),
            });
        }
    }
    if let Some(n) = v.as_f64() {
        let bound = |key: &str| s.get(key).and_then(Value::as_f64);
        if let Some(min) = bound("minimum").filter(|m| n < *m) {
            f.causes
                .push(bound_cause(path, v, "greater", min, s.get("minimum")));
        }
        if let Some(max) = bound("maximum").filter(|m| n > *m) {
            f.causes
                .push(bound_cause(path, v, "less", max, s.get("maximum")));
        }
    }
    match v {
        Value::Object(m) => {
            let props = s.get("properties").and_then(Value::as_object);
            let additional = s.get("additionalProperties");
            let keys: Vec<String> = m.keys().cloned().collect();
            for k in keys {
                let child = format!("{path}.{k}");
                let sub = props
                    .and_then(|p| p.get(&k))
                    .or(additional.filter(|a| a.is_object()));
                match sub {
                    Some(sub) => {
                        if let Some(cv) = m.get_mut(&k) {
                            walk(sub, cv, &child, prune, f);
                        }
                    }
                    None if preserves(s) || additional == Some(&Value::Bool(true)) => {}
                    None if props.is_none() && additional.is_none() && s.get("type").is_none() => {}
                    None => {
                        f.unknown.push(child);
                        if prune {
                            m.remove(&k);
                        }
                    }
                }
            }
            required(s, m, path, f);
        }
        Value::Array(items) => {
            if let Some(item_schema) = s.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    walk(item_schema, item, &format!("{path}[{i}]"), prune, f);
                }
            }
        }
        _ => {}
    }
}

fn bound_cause(path: &str, v: &Value, dir: &str, _b: f64, raw: Option<&Value>) -> Cause {
    let shown = raw.map(Value::to_string).unwrap_or_default();
    Cause {
        reason: "FieldValueInvalid".into(),
        message: format!(
            "Invalid value: {v}: {path} in body should be {dir} than or equal to {shown}"
        ),
        field: path.into(),
    }
}

fn required(s: &Value, m: &Map<String, Value>, path: &str, f: &mut Findings) {
    for r in s
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if !m.contains_key(r) {
            f.causes.push(Cause {
                reason: "FieldValueRequired".into(),
                message: "Required value".into(),
                field: if path.is_empty() {
                    r.to_string()
                } else {
                    format!("{path}.{r}")
                },
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({"type": "object", "properties": {
            "spec": {"type": "object", "required": ["size"], "properties": {
                "size": {"type": "integer", "minimum": 0, "maximum": 100},
                "color": {"type": "string", "enum": ["red", "blue"]},
                "port": {"x-kubernetes-int-or-string": true},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}}}}}})
    }

    #[test]
    fn values_are_checked_and_unknown_fields_pruned() {
        let mut ok = json!({"apiVersion": "x/v1", "kind": "W", "metadata": {"name": "w"},
            "spec": {"size": 3, "color": "red", "port": "http", "free": {"a": {"b": 1}}, "labels": {"k": "v"}}});
        let f = check(&schema(), &mut ok, true);
        assert!(f.causes.is_empty() && f.unknown.is_empty(), "{f:?}");

        let mut bad = json!({"spec": {"size": "big", "color": "purple", "extra": 1}, "top": 2});
        let f = check(&schema(), &mut bad, true);
        let fields: Vec<_> = f
            .causes
            .iter()
            .map(|c| (c.field.as_str(), c.reason.as_str()))
            .collect();
        assert_eq!(
            fields,
            [
                ("spec.size", "FieldValueTypeInvalid"),
                ("spec.color", "FieldValueNotSupported")
            ]
        );
        assert_eq!(f.unknown, ["spec.extra", "top"]);
        assert_eq!(
            f.typed,
            [".spec.size: expected numeric (int or float), got string"]
        );
        assert!(bad.pointer("/spec/extra").is_none() && bad.get("top").is_none());

        let mut missing = json!({"spec": {"size": 1000}});
        let f = check(&schema(), &mut missing, false);
        assert_eq!(
            f.causes[0].message,
            "Invalid value: 1000: spec.size in body should be less than or equal to 100"
        );
        let mut empty = json!({"spec": {}});
        assert_eq!(
            check(&schema(), &mut empty, false).causes[0].field,
            "spec.size"
        );
    }
}
