//! Label selectors (`=`, `==`, `!=`, `in`, `notin`, exists, `!key`, `>`, `<`)
//! and field selectors (`metadata.name`, `metadata.namespace` and a few
//! per-kind fields) as list and watch requests carry them. Parsing returns
//! the real server's 400 messages; matching is pure.

use serde_json::Value;

use super::errors::ApiError;

#[derive(Debug, Clone, PartialEq)]
enum Op {
    Eq(String),
    Ne(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    NotExists,
    Gt(i64),
    Lt(i64),
}

/// A parsed label selector; empty matches everything.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LabelSelector {
    reqs: Vec<(String, Op)>,
}

fn split_top_level(s: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth <= 0 => {
                parts.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    parts.push(cur);
    parts
}

fn bad(msg: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!("unable to parse requirement: {msg}"))
}

fn check_key(key: &str) -> Result<String, ApiError> {
    let key = key.trim();
    if key.is_empty()
        || key
            .chars()
            .any(|c| c.is_whitespace() || "=!<>(),".contains(c))
    {
        return Err(bad(format!("invalid label key: {key:?}")));
    }
    Ok(key.to_string())
}

fn check_value(v: &str) -> Result<String, ApiError> {
    let v = v.trim();
    if v.chars()
        .any(|c| c.is_whitespace() || "=!<>(),".contains(c))
    {
        return Err(bad(format!("invalid label value: {v:?}")));
    }
    Ok(v.to_string())
}

fn set_op(rest: &str, word: &str) -> Option<Result<Vec<String>, ApiError>> {
    let rest = rest.trim_start().strip_prefix(word)?;
    let rest = rest.trim();
    if !rest.starts_with('(') {
        return None;
    }
    Some(
        match rest.strip_prefix('(').and_then(|r| r.strip_suffix(')')) {
            Some(inner) => inner
                .split(',')
                .map(check_value)
                .collect::<Result<Vec<_>, _>>(),
            None => Err(bad(format!("found '{rest}', expected: ')'"))),
        },
    )
}

impl LabelSelector {
    /// Parses the `labelSelector` query parameter.
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        let mut reqs = Vec::new();
        if s.trim().is_empty() {
            return Ok(LabelSelector { reqs });
        }
        for part in split_top_level(s) {
            let p = part.trim();
            if p.is_empty() {
                return Err(bad("found '', expected: identifier"));
            }
            if let Some(k) = p.strip_prefix('!') {
                reqs.push((check_key(k)?, Op::NotExists));
                continue;
            }
            // `key in (a,b)` / `key notin (a,b)`
            if let Some(idx) = p.find(|c: char| c.is_whitespace()) {
                let (k, rest) = p.split_at(idx);
                if let Some(vals) = set_op(rest, "notin") {
                    reqs.push((check_key(k)?, Op::NotIn(vals?)));
                    continue;
                }
                if let Some(vals) = set_op(rest, "in") {
                    reqs.push((check_key(k)?, Op::In(vals?)));
                    continue;
                }
            }
            let (k, op) = if let Some((k, v)) = p.split_once("!=") {
                (k, Op::Ne(check_value(v)?))
            } else if let Some((k, v)) = p.split_once("==") {
                (k, Op::Eq(check_value(v)?))
            } else if let Some((k, v)) = p.split_once('=') {
                (k, Op::Eq(check_value(v)?))
            } else if let Some((k, v)) = p.split_once('>') {
                let n = v.trim().parse().map_err(|_| {
                    bad(format!(
                        "for 'gt', 'lt' operators, the value must be an integer: {v}"
                    ))
                })?;
                (k, Op::Gt(n))
            } else if let Some((k, v)) = p.split_once('<') {
                let n = v.trim().parse().map_err(|_| {
                    bad(format!(
                        "for 'gt', 'lt' operators, the value must be an integer: {v}"
                    ))
                })?;
                (k, Op::Lt(n))
            } else {
                (p, Op::Exists)
            };
            reqs.push((check_key(k)?, op));
        }
        Ok(LabelSelector { reqs })
    }

    /// Whether an object's `metadata.labels` match.
    pub fn matches(&self, obj: &Value) -> bool {
        let labels = obj.pointer("/metadata/labels").and_then(Value::as_object);
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.reqs.iter().all(|(k, op)| {
            let v = get(k);
            match op {
                Op::Eq(x) => v == Some(x.as_str()),
                Op::Ne(x) => v != Some(x.as_str()),
                Op::In(xs) => v.is_some_and(|v| xs.iter().any(|x| x == v)),
                Op::NotIn(xs) => v.is_none_or(|v| !xs.iter().any(|x| x == v)),
                Op::Exists => v.is_some(),
                Op::NotExists => v.is_none(),
                Op::Gt(n) => v
                    .and_then(|v| v.parse::<i64>().ok())
                    .is_some_and(|v| v > *n),
                Op::Lt(n) => v
                    .and_then(|v| v.parse::<i64>().ok())
                    .is_some_and(|v| v < *n),
            }
        })
    }

    pub fn is_empty(&self) -> bool {
        self.reqs.is_empty()
    }
}

/// A parsed field selector; empty matches everything.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FieldSelector {
    reqs: Vec<(String, bool, String)>,
}

/// Fields beyond `metadata.name`/`metadata.namespace` a kind supports.
fn kind_fields(plural: &str) -> &'static [&'static str] {
    match plural {
        "pods" => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        "events" => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        "secrets" => &["type"],
        "namespaces" => &["status.phase"],
        "replicasets" => &["status.replicas"],
        "jobs" => &["status.successful"],
        _ => &[],
    }
}

impl FieldSelector {
    /// Parses the `fieldSelector` query parameter for resource `plural`.
    pub fn parse(s: &str, plural: &str) -> Result<Self, ApiError> {
        let mut reqs = Vec::new();
        for part in s.split(',') {
            let p = part.trim();
            if p.is_empty() {
                continue;
            }
            let (k, eq, v) = if let Some((k, v)) = p.split_once("!=") {
                (k, false, v)
            } else if let Some((k, v)) = p.split_once("==") {
                (k, true, v)
            } else if let Some((k, v)) = p.split_once('=') {
                (k, true, v)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid selector: '{s}'; can't understand '{p}'"
                )));
            };
            let k = k.trim();
            if k != "metadata.name"
                && k != "metadata.namespace"
                && !kind_fields(plural).contains(&k)
            {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {k}"
                )));
            }
            reqs.push((k.to_string(), eq, v.trim().to_string()));
        }
        Ok(FieldSelector { reqs })
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.reqs.iter().all(|(k, eq, v)| {
            let pointer = format!("/{}", k.replace('.', "/"));
            let actual = match obj.pointer(&pointer) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            };
            (actual == *v) == *eq
        })
    }

    pub fn is_empty(&self) -> bool {
        self.reqs.is_empty()
    }
}

/// `k=v,k2=v2` for a `matchLabels` map (the scale subresource's selector).
pub fn match_labels_string(selector: Option<&Value>) -> String {
    let Some(sel) = selector else {
        return String::new();
    };
    let mut parts: Vec<String> = sel
        .get("matchLabels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    if let Some(exprs) = sel.get("matchExpressions").and_then(Value::as_array) {
        for e in exprs {
            let key = e.get("key").and_then(Value::as_str).unwrap_or_default();
            let vals: Vec<&str> = e
                .get("values")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            match e.get("operator").and_then(Value::as_str) {
                Some("In") => parts.push(format!("{key} in ({})", vals.join(","))),
                Some("NotIn") => parts.push(format!("{key} notin ({})", vals.join(","))),
                Some("Exists") => parts.push(key.to_string()),
                Some("DoesNotExist") => parts.push(format!("!{key}")),
                _ => {}
            }
        }
    }
    parts.sort();
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(labels: Value) -> Value {
        json!({"metadata": {"name": "a", "namespace": "ns", "labels": labels}})
    }

    #[test]
    fn label_ops() {
        let o = obj(json!({"app": "web", "tier": "fe"}));
        for (sel, want) in [
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("app in (web, db)", true),
            ("app notin (web)", false),
            ("tier", true),
            ("!tier", false),
            ("!missing,app=web", true),
            ("app in (db),tier", false),
            ("", true),
        ] {
            assert_eq!(
                LabelSelector::parse(sel).expect(sel).matches(&o),
                want,
                "{sel}"
            );
        }
        assert!(LabelSelector::parse("app=(x").is_err());
        assert!(LabelSelector::parse("a b").is_err());
    }

    #[test]
    fn field_ops() {
        let o = obj(json!({}));
        assert!(FieldSelector::parse("metadata.name=a", "pods")
            .expect("p")
            .matches(&o));
        assert!(!FieldSelector::parse("metadata.namespace!=ns", "pods")
            .expect("p")
            .matches(&o));
        let e = FieldSelector::parse("spec.foo=1", "configmaps").expect_err("unsupported");
        assert_eq!(e.message, "field label not supported: spec.foo");
    }
}
