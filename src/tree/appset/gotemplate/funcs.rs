//! The functions a template may call: Go's builtins, the sprig functions
//! Argo CD's ApplicationSet templates use, and Argo CD's own additions.

use std::fmt::Write as _;

use serde_json::{Map, Value};

use super::{err, go_string, go_type, truthy, TemplateError, V};

fn as_str(v: &V) -> String {
    match v {
        V::Missing | V::Val(Value::Null) => String::new(),
        V::Val(v) => go_string(v),
    }
}

fn as_int(v: &V, fname: &str) -> Result<i64, TemplateError> {
    match v {
        V::Val(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .ok_or_else(|| TemplateError(format!("{fname}: not an integer"))),
        V::Val(Value::String(s)) => s
            .trim()
            .parse::<i64>()
            .map_err(|_| TemplateError(format!("{fname}: \"{s}\" is not an integer"))),
        V::Val(Value::Bool(b)) => Ok(*b as i64),
        _ => Ok(0),
    }
}

fn as_f64(v: &V) -> f64 {
    match v {
        V::Val(Value::Number(n)) => n.as_f64().unwrap_or(0.0),
        V::Val(Value::String(s)) => s.trim().parse().unwrap_or(0.0),
        _ => 0.0,
    }
}

fn arity(name: &str, args: &[V], n: usize) -> Result<(), TemplateError> {
    if args.len() != n {
        return err(format!(
            "wrong number of args for {name}: want {n} got {}",
            args.len()
        ));
    }
    Ok(())
}

fn s(v: impl Into<String>) -> Result<V, TemplateError> {
    Ok(V::Val(Value::String(v.into())))
}

/// Argo CD's `normalize` (and the `Normalized` parameters): lower case, every
/// character other than `a-z`, `0-9`, `-` and `.` replaced by `-`, at most 253
/// characters, no leading or trailing `-`/`.`.
pub fn normalize(name: &str) -> String {
    let lower = name.to_lowercase();
    let mapped: String = lower
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let cut: String = mapped.chars().take(253).collect();
    cut.trim_matches(|c| c == '-' || c == '.').to_string()
}

/// Argo CD's `slugify`: lower case, runs of anything but `a-z0-9` become one
/// `-`, cut at `max` characters (at a `-` when `smart`).
fn slugify(max: usize, smart: bool, text: &str) -> String {
    let mut out = String::new();
    for c in text.to_lowercase().chars() {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let mut out = out.trim_matches('-').to_string();
    if out.len() > max {
        out.truncate(max);
        if smart {
            if let Some(i) = out.rfind('-') {
                out.truncate(i);
            }
        }
        out = out.trim_matches('-').to_string();
    }
    out
}

fn compare(a: &V, b: &V) -> Result<std::cmp::Ordering, TemplateError> {
    use std::cmp::Ordering;
    match (a, b) {
        (V::Val(Value::Number(x)), V::Val(Value::Number(y))) => Ok(x
            .as_f64()
            .unwrap_or(0.0)
            .partial_cmp(&y.as_f64().unwrap_or(0.0))
            .unwrap_or(Ordering::Equal)),
        (V::Val(Value::String(x)), V::Val(Value::String(y))) => Ok(x.cmp(y)),
        (V::Val(Value::Bool(x)), V::Val(Value::Bool(y))) => Ok(x.cmp(y)),
        _ => err("incompatible types for comparison"),
    }
}

fn equal(a: &V, b: &V) -> bool {
    match (a, b) {
        (V::Val(Value::Number(x)), V::Val(Value::Number(y))) => x.as_f64() == y.as_f64(),
        (V::Missing, V::Missing) => true,
        (V::Val(x), V::Val(y)) => x == y,
        (V::Missing, V::Val(Value::Null)) | (V::Val(Value::Null), V::Missing) => true,
        _ => false,
    }
}

fn list_of(v: &V) -> Vec<Value> {
    match v {
        V::Val(Value::Array(a)) => a.clone(),
        V::Val(Value::Null) | V::Missing => Vec::new(),
        V::Val(other) => vec![other.clone()],
    }
}

fn printf(format: &str, args: &[V]) -> String {
    let mut out = String::new();
    let mut it = args.iter();
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        // Flags and width are read and ignored except for zero padding.
        let mut spec = String::new();
        while let Some(&f) = chars.peek() {
            if f.is_ascii_digit() || f == '-' || f == '+' || f == '.' || f == '#' || f == ' ' {
                spec.push(f);
                chars.next();
            } else {
                break;
            }
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = it.next() else {
            let _ = write!(out, "%!{verb}(MISSING)");
            continue;
        };
        let text = match verb {
            'q' => serde_json::to_string(&as_str(arg)).unwrap_or_default(),
            'd' => match arg {
                V::Val(Value::Number(_)) => as_int(arg, "printf")
                    .map(|i| i.to_string())
                    .unwrap_or_default(),
                other => format!("%!d({})", as_str(other)),
            },
            'f' => {
                let prec = spec
                    .split_once('.')
                    .and_then(|(_, p)| p.parse::<usize>().ok())
                    .unwrap_or(6);
                format!("{:.*}", prec, as_f64(arg))
            }
            _ => match arg {
                V::Missing => "<nil>".into(),
                V::Val(v) => go_string(v),
            },
        };
        let width: usize = spec
            .trim_start_matches(['-', '+', '#', ' '])
            .split('.')
            .next()
            .and_then(|w| w.parse().ok())
            .unwrap_or(0);
        if text.chars().count() < width {
            let pad = width - text.chars().count();
            if spec.starts_with('-') {
                out.push_str(&text);
                out.push_str(&" ".repeat(pad));
            } else if spec.starts_with('0') && verb == 'd' {
                out.push_str(&"0".repeat(pad));
                out.push_str(&text);
            } else {
                out.push_str(&" ".repeat(pad));
                out.push_str(&text);
            }
        } else {
            out.push_str(&text);
        }
    }
    for extra in it {
        let _ = write!(out, "%!(EXTRA {})", as_str(extra));
    }
    out
}

fn to_yaml(v: &Value) -> Result<String, TemplateError> {
    if v.is_null() {
        return Ok("null".into());
    }
    let text = serde_yaml::to_string(v).map_err(|e| TemplateError(format!("toYaml: {e}")))?;
    Ok(text.trim_end_matches('\n').to_string())
}

pub(super) fn call(name: &str, args: Vec<V>) -> Result<V, TemplateError> {
    let a = &args;
    match name {
        // Go's builtins.
        "and" => {
            let mut last = V::Missing;
            for v in args {
                if !truthy(&v) {
                    return Ok(v);
                }
                last = v;
            }
            Ok(last)
        }
        "or" => {
            let mut last = V::Missing;
            for v in args {
                if truthy(&v) {
                    return Ok(v);
                }
                last = v;
            }
            Ok(last)
        }
        "not" => {
            arity(name, a, 1)?;
            Ok(V::Val(Value::Bool(!truthy(&a[0]))))
        }
        "len" => {
            arity(name, a, 1)?;
            let n = match &a[0] {
                V::Val(Value::String(s)) => s.len(),
                V::Val(Value::Array(x)) => x.len(),
                V::Val(Value::Object(m)) => m.len(),
                _ => return err("len of nil pointer"),
            };
            Ok(V::Val(Value::from(n)))
        }
        "index" => {
            let Some((first, keys)) = a.split_first() else {
                return err("wrong number of args for index: want at least 1 got 0");
            };
            let mut cur = first.clone();
            for k in keys {
                cur = match (&cur, k) {
                    (V::Val(Value::Object(m)), k) => match m.get(&as_str(k)) {
                        Some(v) => V::Val(v.clone()),
                        None => V::Missing,
                    },
                    (V::Val(Value::Array(arr)), k) => {
                        let i = as_int(k, "index")?;
                        match usize::try_from(i).ok().and_then(|i| arr.get(i)) {
                            Some(v) => V::Val(v.clone()),
                            None => {
                                return err(format!("error calling index: index out of range: {i}"))
                            }
                        }
                    }
                    (V::Missing | V::Val(Value::Null), _) => {
                        return err("error calling index: index of untyped nil")
                    }
                    (V::Val(other), _) => {
                        return err(format!(
                            "error calling index: can't index item of type {}",
                            go_type(other)
                        ))
                    }
                };
            }
            Ok(cur)
        }
        "print" => s(a.iter().map(as_str).collect::<Vec<_>>().join("")),
        "println" => s(format!(
            "{}\n",
            a.iter().map(as_str).collect::<Vec<_>>().join(" ")
        )),
        "printf" => {
            let Some((f, rest)) = a.split_first() else {
                return err("wrong number of args for printf: want at least 1 got 0");
            };
            s(printf(&as_str(f), rest))
        }
        "eq" => {
            let Some((first, rest)) = a.split_first() else {
                return err("missing argument for comparison");
            };
            Ok(V::Val(Value::Bool(rest.iter().any(|b| equal(first, b)))))
        }
        "ne" => {
            arity(name, a, 2)?;
            Ok(V::Val(Value::Bool(!equal(&a[0], &a[1]))))
        }
        "lt" | "le" | "gt" | "ge" => {
            arity(name, a, 2)?;
            let o = compare(&a[0], &a[1])
                .map_err(|e| TemplateError(format!("error calling {name}: {e}")))?;
            use std::cmp::Ordering::*;
            let r = match name {
                "lt" => o == Less,
                "le" => o != Greater,
                "gt" => o == Greater,
                _ => o != Less,
            };
            Ok(V::Val(Value::Bool(r)))
        }
        // Argo CD's additions.
        "normalize" => {
            arity(name, a, 1)?;
            s(normalize(&as_str(&a[0])))
        }
        "slugify" => {
            arity(name, a, 3)?;
            let max = as_int(&a[0], name)?.max(0) as usize;
            s(slugify(max, truthy(&a[1]), &as_str(&a[2])))
        }
        "toYaml" => {
            arity(name, a, 1)?;
            s(to_yaml(&a[0].clone().into_value())?)
        }
        "fromYaml" | "fromYamlArray" | "fromJson" => {
            arity(name, a, 1)?;
            let v: Value = serde_yaml::from_str(&as_str(&a[0]))
                .map_err(|e| TemplateError(format!("error calling {name}: {e}")))?;
            Ok(V::Val(v))
        }
        "toJson" | "mustToJson" => {
            arity(name, a, 1)?;
            s(serde_json::to_string(&a[0].clone().into_value()).unwrap_or_default())
        }
        "toPrettyJson" => {
            arity(name, a, 1)?;
            s(serde_json::to_string_pretty(&a[0].clone().into_value()).unwrap_or_default())
        }
        // sprig: strings.
        "lower" => {
            arity(name, a, 1)?;
            s(as_str(&a[0]).to_lowercase())
        }
        "upper" => {
            arity(name, a, 1)?;
            s(as_str(&a[0]).to_uppercase())
        }
        "title" => {
            arity(name, a, 1)?;
            let text = as_str(&a[0]);
            let mut out = String::new();
            let mut start = true;
            for c in text.chars() {
                if start {
                    out.extend(c.to_uppercase());
                } else {
                    out.push(c);
                }
                start = c.is_whitespace();
            }
            s(out)
        }
        "trim" => {
            arity(name, a, 1)?;
            s(as_str(&a[0]).trim())
        }
        "trimPrefix" => {
            arity(name, a, 2)?;
            let text = as_str(&a[1]);
            s(text.strip_prefix(as_str(&a[0]).as_str()).unwrap_or(&text))
        }
        "trimSuffix" => {
            arity(name, a, 2)?;
            let text = as_str(&a[1]);
            s(text.strip_suffix(as_str(&a[0]).as_str()).unwrap_or(&text))
        }
        "trimAll" => {
            arity(name, a, 2)?;
            let cut = as_str(&a[0]);
            s(as_str(&a[1]).trim_matches(|c| cut.contains(c)))
        }
        "replace" => {
            arity(name, a, 3)?;
            s(as_str(&a[2]).replace(&as_str(&a[0]), &as_str(&a[1])))
        }
        "trunc" => {
            arity(name, a, 2)?;
            let n = as_int(&a[0], name)?;
            let text: Vec<char> = as_str(&a[1]).chars().collect();
            let out: String = if n >= 0 {
                text.iter().take(n as usize).collect()
            } else {
                let keep = (-n) as usize;
                text.iter().skip(text.len().saturating_sub(keep)).collect()
            };
            s(out)
        }
        "quote" => s(a
            .iter()
            .filter(|v| !matches!(v, V::Missing | V::Val(Value::Null)))
            .map(|v| serde_json::to_string(&as_str(v)).unwrap_or_default())
            .collect::<Vec<_>>()
            .join(" ")),
        "squote" => s(a
            .iter()
            .filter(|v| !matches!(v, V::Missing | V::Val(Value::Null)))
            .map(|v| format!("'{}'", as_str(v)))
            .collect::<Vec<_>>()
            .join(" ")),
        "contains" => {
            arity(name, a, 2)?;
            Ok(V::Val(Value::Bool(as_str(&a[1]).contains(&as_str(&a[0])))))
        }
        "hasPrefix" => {
            arity(name, a, 2)?;
            Ok(V::Val(Value::Bool(
                as_str(&a[1]).starts_with(&as_str(&a[0])),
            )))
        }
        "hasSuffix" => {
            arity(name, a, 2)?;
            Ok(V::Val(Value::Bool(as_str(&a[1]).ends_with(&as_str(&a[0])))))
        }
        "repeat" => {
            arity(name, a, 2)?;
            let n = as_int(&a[0], name)?.clamp(0, 10_000) as usize;
            s(as_str(&a[1]).repeat(n))
        }
        "kebabcase" | "snakecase" => {
            arity(name, a, 1)?;
            let sep = if name == "kebabcase" { '-' } else { '_' };
            let mut out = String::new();
            for (i, c) in as_str(&a[0]).chars().enumerate() {
                if c.is_uppercase() {
                    if i > 0 && !out.ends_with(sep) {
                        out.push(sep);
                    }
                    out.extend(c.to_lowercase());
                } else if c == ' ' || c == '-' || c == '_' {
                    if !out.ends_with(sep) {
                        out.push(sep);
                    }
                } else {
                    out.push(c);
                }
            }
            s(out)
        }
        "toString" => {
            arity(name, a, 1)?;
            s(as_str(&a[0]))
        }
        "b64enc" => {
            arity(name, a, 1)?;
            use base64::Engine;
            s(base64::engine::general_purpose::STANDARD.encode(as_str(&a[0])))
        }
        "b64dec" => {
            arity(name, a, 1)?;
            use base64::Engine;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(as_str(&a[0]))
                .map_err(|e| TemplateError(format!("b64dec: {e}")))?;
            s(String::from_utf8_lossy(&bytes))
        }
        "sha256sum" => {
            arity(name, a, 1)?;
            use sha2::Digest;
            s(hex::encode(sha2::Sha256::digest(as_str(&a[0]).as_bytes())))
        }
        // sprig: lists and dicts.
        "join" => {
            arity(name, a, 2)?;
            let items: Vec<String> = list_of(&a[1]).iter().map(go_string).collect();
            s(items.join(&as_str(&a[0])))
        }
        "splitList" => {
            arity(name, a, 2)?;
            let sep = as_str(&a[0]);
            let text = as_str(&a[1]);
            let parts: Vec<Value> = if sep.is_empty() {
                text.chars().map(|c| Value::String(c.to_string())).collect()
            } else {
                text.split(sep.as_str())
                    .map(|p| Value::String(p.into()))
                    .collect()
            };
            Ok(V::Val(Value::Array(parts)))
        }
        "list" => Ok(V::Val(Value::Array(
            args.into_iter().map(V::into_value).collect(),
        ))),
        "first" => {
            arity(name, a, 1)?;
            Ok(list_of(&a[0])
                .into_iter()
                .next()
                .map(V::Val)
                .unwrap_or(V::Missing))
        }
        "last" => {
            arity(name, a, 1)?;
            Ok(list_of(&a[0]).pop().map(V::Val).unwrap_or(V::Missing))
        }
        "dict" => {
            let mut m = Map::new();
            for pair in a.chunks(2) {
                let v = pair
                    .get(1)
                    .cloned()
                    .map(V::into_value)
                    .unwrap_or(Value::String(String::new()));
                m.insert(as_str(&pair[0]), v);
            }
            Ok(V::Val(Value::Object(m)))
        }
        "hasKey" => {
            arity(name, a, 2)?;
            let has = match &a[0] {
                V::Val(Value::Object(m)) => m.contains_key(&as_str(&a[1])),
                _ => false,
            };
            Ok(V::Val(Value::Bool(has)))
        }
        "get" => {
            arity(name, a, 2)?;
            Ok(match &a[0] {
                V::Val(Value::Object(m)) => m
                    .get(&as_str(&a[1]))
                    .cloned()
                    .map(V::Val)
                    .unwrap_or(V::Val(Value::String(String::new()))),
                _ => V::Val(Value::String(String::new())),
            })
        }
        "keys" => {
            let mut keys: Vec<String> = Vec::new();
            for d in a {
                if let V::Val(Value::Object(m)) = d {
                    keys.extend(m.keys().cloned());
                }
            }
            Ok(V::Val(Value::Array(
                keys.into_iter().map(Value::String).collect(),
            )))
        }
        // sprig: defaults and flow.
        "default" => {
            arity(name, a, 2)?;
            Ok(if truthy(&a[1]) {
                a[1].clone()
            } else {
                a[0].clone()
            })
        }
        "empty" => {
            arity(name, a, 1)?;
            Ok(V::Val(Value::Bool(!truthy(&a[0]))))
        }
        "coalesce" => Ok(args.into_iter().find(truthy).unwrap_or(V::Missing)),
        "ternary" => {
            arity(name, a, 3)?;
            Ok(if truthy(&a[2]) {
                a[0].clone()
            } else {
                a[1].clone()
            })
        }
        "required" => {
            arity(name, a, 2)?;
            if truthy(&a[1]) {
                Ok(a[1].clone())
            } else {
                err(as_str(&a[0]))
            }
        }
        "fail" => {
            arity(name, a, 1)?;
            err(as_str(&a[0]))
        }
        // sprig: numbers.
        "atoi" | "int" | "int64" => {
            arity(name, a, 1)?;
            Ok(V::Val(Value::from(as_int(&a[0], name).unwrap_or(0))))
        }
        "add" => Ok(V::Val(Value::from(
            a.iter().map(|v| as_int(v, name)).sum::<Result<i64, _>>()?,
        ))),
        "sub" => {
            arity(name, a, 2)?;
            Ok(V::Val(Value::from(
                as_int(&a[0], name)? - as_int(&a[1], name)?,
            )))
        }
        "mul" => Ok(V::Val(Value::from(
            a.iter()
                .map(|v| as_int(v, name))
                .product::<Result<i64, _>>()?,
        ))),
        "env" | "expandenv" | "getHostByName" => err(format!(
            "function \"{name}\" is removed by Argo CD for security"
        )),
        other => err(format!("function \"{other}\" not defined")),
    }
}
