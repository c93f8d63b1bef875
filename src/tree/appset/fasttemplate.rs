//! Argo CD's default template syntax (fasttemplate): `{{key}}` (spaces inside
//! the braces allowed) is replaced by the parameter `key`; a tag naming no
//! parameter is left as written, as Argo CD leaves it.

use serde_json::{Map, Value};

/// Replaces every `{{ key }}` of `text` whose key is a parameter.
pub fn render(text: &str, params: &Map<String, Value>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        let tag = &after[..end];
        match params.get(tag.trim()) {
            Some(v) if !tag.trim().is_empty() => out.push_str(&param_text(v)),
            _ => {
                out.push_str("{{");
                out.push_str(tag);
                out.push_str("}}");
            }
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

fn param_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Flattens nested mappings and sequences into dotted keys, as Argo CD
/// flattens a git file's content (`cluster.name`, `list.0`); scalars become
/// text.
pub fn flatten(prefix: &str, v: &Value, out: &mut Map<String, Value>) {
    let key = |k: &str| {
        if prefix.is_empty() {
            k.to_string()
        } else {
            format!("{prefix}.{k}")
        }
    };
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                flatten(&key(k), v, out);
            }
        }
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                flatten(&key(&i.to_string()), v, out);
            }
        }
        Value::String(s) => {
            out.insert(prefix.to_string(), Value::String(s.clone()));
        }
        Value::Null => {
            out.insert(prefix.to_string(), Value::String(String::new()));
        }
        other => {
            out.insert(prefix.to_string(), Value::String(other.to_string()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn table() {
        let p = json!({"path.basename": "guestbook", "cluster": "dev", "n": 3});
        let p = p.as_object().unwrap();
        for (src, want) in [
            ("{{path.basename}}", "guestbook"),
            ("{{ path.basename }}-{{cluster}}", "guestbook-dev"),
            ("{{unknown}}", "{{unknown}}"),
            ("{{ }}", "{{ }}"),
            ("a {{cluster", "a {{cluster"),
            ("n={{n}}", "n=3"),
            ("no tags", "no tags"),
        ] {
            assert_eq!(render(src, p), want, "{src}");
        }
    }

    #[test]
    fn flatten_like_argo() {
        let mut out = Map::new();
        flatten(
            "",
            &json!({"aws_account": "123456", "cluster": {"name": "engineering-dev", "address": "https://1.2.3.4"}, "n": 1, "l": ["x"]}),
            &mut out,
        );
        assert_eq!(
            Value::Object(out),
            json!({"aws_account": "123456", "cluster.name": "engineering-dev", "cluster.address": "https://1.2.3.4", "n": "1", "l.0": "x"})
        );
    }
}
