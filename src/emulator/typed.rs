//! What the real API server learns from decoding a body into its Go type,
//! for built-in kinds: resource quantities in canonical form (`0.5` →
//! `500m`, `1024Mi` → `1Gi`) and rejected when malformed, and the fields the
//! kind's schema does not declare (`spec.replica`) or that have the wrong
//! type. The schema is k8s-openapi's: a body is decoded into the kind's
//! type and encoded again, and whatever did not survive is unknown.
//!
//! It does not own validation of values (`validation`), defaults
//! (`defaults`) or custom resources (their schemas are not checked).

use k8s_openapi::api::{apps, autoscaling, batch, coordination, core, networking, policy, rbac};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use super::errors::ApiError;
use super::resources::ResourceType;

const QUANTITY_RE: &str = "^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$";

/// Keys whose object values map resource names to quantities.
const QUANTITY_MAPS: &[&str] = &["requests", "limits", "hard", "capacity", "allocatable"];

#[derive(Clone, Copy, PartialEq)]
enum Format {
    DecimalSi,
    BinarySi,
    DecimalExponent,
}

/// The canonical form of a quantity, or `None` when it is malformed.
pub fn canonical_quantity(s: &str) -> Option<String> {
    let s = s.trim();
    let num_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(s.len());
    let (num, suffix) = s.split_at(num_end);
    let (neg, digits) = match num.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, num.strip_prefix('+').unwrap_or(num)),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if (int.is_empty() && frac.is_empty())
        || !int.chars().chain(frac.chars()).all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let mut mantissa: i128 = 0;
    for c in int.chars().chain(frac.chars()) {
        mantissa = mantissa
            .checked_mul(10)?
            .checked_add(i128::from(c as u8 - b'0'))?;
    }
    let mut exp10 = -i32::try_from(frac.len()).ok()?;
    let (format, binary_pow) = match suffix {
        "" => (Format::DecimalSi, 0),
        "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei" => {
            let k = ["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"]
                .iter()
                .position(|x| *x == suffix)? as u32
                + 1;
            (Format::BinarySi, k)
        }
        "n" | "u" | "m" | "k" | "M" | "G" | "T" | "P" | "E" => {
            exp10 += match suffix {
                "n" => -9,
                "u" => -6,
                "m" => -3,
                "k" => 3,
                "M" => 6,
                "G" => 9,
                "T" => 12,
                "P" => 15,
                _ => 18,
            };
            (Format::DecimalSi, 0)
        }
        _ => {
            let e = suffix.strip_prefix(['e', 'E'])?;
            exp10 += e.parse::<i32>().ok()?;
            (Format::DecimalExponent, 0)
        }
    };
    if binary_pow > 0 {
        mantissa = mantissa.checked_mul(1024i128.checked_pow(binary_pow)?)?;
    }
    // Below nano precision rounds up to the next nano.
    if exp10 < -9 {
        let div = 10i128.checked_pow(u32::try_from(-9 - exp10).ok()?)?;
        mantissa = (mantissa + div - 1) / div;
        exp10 = -9;
    }
    while mantissa != 0 && mantissa % 10 == 0 {
        mantissa /= 10;
        exp10 += 1;
    }
    if mantissa == 0 {
        return Some("0".into());
    }
    let sign = if neg { "-" } else { "" };
    if format == Format::BinarySi && exp10 >= 0 {
        let v = mantissa.checked_mul(10i128.checked_pow(exp10 as u32)?)?;
        if v >= 1024 {
            let mut k = 0;
            let mut m = v;
            while k < 6 && m % 1024 == 0 {
                m /= 1024;
                k += 1;
            }
            let suffix = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][k];
            return Some(format!("{sign}{m}{suffix}"));
        }
    }
    // Decimal: the largest exponent, a multiple of 3, with an integral mantissa.
    let mut e3 = exp10.div_euclid(3) * 3;
    e3 = e3.min(18);
    let m = mantissa.checked_mul(10i128.checked_pow(u32::try_from(exp10 - e3).ok()?)?)?;
    if format == Format::DecimalExponent {
        return Some(if e3 == 0 {
            format!("{sign}{m}")
        } else {
            format!("{sign}{m}e{e3}")
        });
    }
    let suffix = match e3 {
        -9 => "n",
        -6 => "u",
        -3 => "m",
        0 => "",
        3 => "k",
        6 => "M",
        9 => "G",
        12 => "T",
        15 => "P",
        _ => "E",
    };
    Some(format!("{sign}{m}{suffix}"))
}

/// Rewrites every quantity of a built-in object into canonical form; the
/// 400 the server answers for a malformed one.
pub fn canonicalize_quantities(rt: &ResourceType, obj: &mut Value) -> Result<(), ApiError> {
    if rt.crd.is_some() {
        return Ok(());
    }
    let mut bad = false;
    walk(obj, &mut bad);
    if bad {
        return Err(ApiError::bad_request(format!(
            "{kind} in version \"{v}\" cannot be handled as a {kind}: quantities must match the regular expression '{QUANTITY_RE}'",
            kind = rt.kind,
            v = rt.version
        )));
    }
    Ok(())
}

fn walk(v: &mut Value, bad: &mut bool) {
    match v {
        Value::Object(m) => {
            for (k, child) in m.iter_mut() {
                if QUANTITY_MAPS.contains(&k.as_str()) || k == "sizeLimit" {
                    canonicalize_map_or_value(child, bad);
                } else {
                    walk(child, bad);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| walk(x, bad)),
        _ => {}
    }
}

fn canonicalize_map_or_value(v: &mut Value, bad: &mut bool) {
    let one = |q: &mut Value, bad: &mut bool| {
        let text = match q {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => return,
        };
        match canonical_quantity(&text) {
            Some(c) => *q = Value::String(c),
            None => *bad = true,
        }
    };
    match v {
        Value::Object(m) => m.values_mut().for_each(|q| one(q, bad)),
        other => one(other, bad),
    }
}

fn roundtrip<K: DeserializeOwned + Serialize>(v: &Value) -> Result<Value, String> {
    let k: K = serde_json::from_value(v.clone()).map_err(|e| e.to_string())?;
    serde_json::to_value(k).map_err(|e| e.to_string())
}

/// `v` decoded into the built-in kind's type and encoded again; `None` for
/// kinds not typed here (custom resources, rarer kinds).
fn typed_roundtrip(rt: &ResourceType, v: &Value) -> Option<Result<Value, String>> {
    if rt.crd.is_some() {
        return None;
    }
    Some(
        match (rt.group.as_str(), rt.version.as_str(), rt.kind.as_str()) {
            ("", "v1", "ConfigMap") => roundtrip::<core::v1::ConfigMap>(v),
            ("", "v1", "Secret") => roundtrip::<core::v1::Secret>(v),
            ("", "v1", "Service") => roundtrip::<core::v1::Service>(v),
            ("", "v1", "Pod") => roundtrip::<core::v1::Pod>(v),
            ("", "v1", "ServiceAccount") => roundtrip::<core::v1::ServiceAccount>(v),
            ("", "v1", "PersistentVolumeClaim") => roundtrip::<core::v1::PersistentVolumeClaim>(v),
            ("apps", "v1", "Deployment") => roundtrip::<apps::v1::Deployment>(v),
            ("apps", "v1", "StatefulSet") => roundtrip::<apps::v1::StatefulSet>(v),
            ("apps", "v1", "DaemonSet") => roundtrip::<apps::v1::DaemonSet>(v),
            ("apps", "v1", "ReplicaSet") => roundtrip::<apps::v1::ReplicaSet>(v),
            ("batch", "v1", "Job") => roundtrip::<batch::v1::Job>(v),
            ("batch", "v1", "CronJob") => roundtrip::<batch::v1::CronJob>(v),
            ("coordination.k8s.io", "v1", "Lease") => roundtrip::<coordination::v1::Lease>(v),
            ("networking.k8s.io", "v1", "Ingress") => roundtrip::<networking::v1::Ingress>(v),
            ("networking.k8s.io", "v1", "NetworkPolicy") => {
                roundtrip::<networking::v1::NetworkPolicy>(v)
            }
            ("autoscaling", "v2", "HorizontalPodAutoscaler") => {
                roundtrip::<autoscaling::v2::HorizontalPodAutoscaler>(v)
            }
            ("policy", "v1", "PodDisruptionBudget") => {
                roundtrip::<policy::v1::PodDisruptionBudget>(v)
            }
            ("rbac.authorization.k8s.io", "v1", "Role") => roundtrip::<rbac::v1::Role>(v),
            ("rbac.authorization.k8s.io", "v1", "RoleBinding") => {
                roundtrip::<rbac::v1::RoleBinding>(v)
            }
            ("rbac.authorization.k8s.io", "v1", "ClusterRole") => {
                roundtrip::<rbac::v1::ClusterRole>(v)
            }
            ("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding") => {
                roundtrip::<rbac::v1::ClusterRoleBinding>(v)
            }
            _ => return None,
        },
    )
}

/// The problems decoding `v` as its kind finds: `Err` for a value of the
/// wrong type (the decoder's message), else the paths of undeclared fields
/// (`.spec.replica`, `.spec.template.spec.containers[name="app"].imagePullPolice`).
pub fn unknown_fields(rt: &ResourceType, v: &Value) -> Result<Vec<String>, String> {
    let Some(decoded) = typed_roundtrip(rt, v) else {
        return Ok(Vec::new());
    };
    let decoded = decoded?;
    let mut out = Vec::new();
    missing("", v, &decoded, &mut out);
    Ok(out)
}

fn missing(at: &str, orig: &Value, kept: &Value, out: &mut Vec<String>) {
    match (orig, kept) {
        (Value::Object(o), Value::Object(k)) => {
            for (key, val) in o {
                let p = format!("{at}.{key}");
                match k.get(key) {
                    Some(kv) => missing(&p, val, kv, out),
                    None if !val.is_null() => out.push(p),
                    None => {}
                }
            }
        }
        (Value::Array(o), Value::Array(k)) if o.len() == k.len() => {
            for (i, (a, b)) in o.iter().zip(k).enumerate() {
                let p = match a.get("name").and_then(Value::as_str) {
                    Some(n) => format!("{at}[name={}]", Value::String(n.to_string())),
                    None => format!("{at}[{i}]"),
                };
                missing(&p, a, b, out);
            }
        }
        _ => {}
    }
}

/// The 500 a server-side apply gets when its configuration does not fit
/// the kind's schema, worded like the real server's.
pub fn check_apply(rt: &ResourceType, name: &str, applied: &Value) -> Result<(), ApiError> {
    let problem = match unknown_fields(rt, applied) {
        Err(e) => e,
        Ok(paths) => match paths.first() {
            Some(p) => format!("{p}: field not declared in schema"),
            None => return Ok(()),
        },
    };
    Err(typed_patch_error(rt, name, &problem))
}

/// The 500 of an applied configuration that does not fit the schema.
pub fn typed_patch_error(rt: &ResourceType, name: &str, problem: &str) -> ApiError {
    let gv = if rt.group.is_empty() {
        format!("/{}", rt.version)
    } else {
        format!("{}/{}", rt.group, rt.version)
    };
    ApiError::new(
        500,
        "",
        format!(
            "failed to create typed patch object (/{name}; {gv}, Kind={}): {problem}",
            rt.kind
        ),
    )
}

/// The 400 of a strict decoding that met undeclared fields.
pub fn strict_error(rt: &ResourceType, unknown: &[String]) -> ApiError {
    let list: Vec<String> = unknown
        .iter()
        .map(|p| format!("unknown field \"{}\"", p.trim_start_matches('.')))
        .collect();
    ApiError::bad_request(format!(
        "{kind} in version \"{v}\" cannot be handled as a {kind}: strict decoding error: {}",
        list.join(", "),
        kind = rt.kind,
        v = rt.version
    ))
}

/// On create and update: the 400 a malformed body gets (a wrong type, or an
/// unknown field under `fieldValidation=Strict`); otherwise unknown fields
/// are dropped, as decoding into the Go type drops them.
pub fn decode_body(rt: &ResourceType, obj: &mut Value, strict: bool) -> Result<(), ApiError> {
    let cannot = |why: String| {
        ApiError::bad_request(format!(
            "{kind} in version \"{v}\" cannot be handled as a {kind}: {why}",
            kind = rt.kind,
            v = rt.version
        ))
    };
    let paths = unknown_fields(rt, obj).map_err(cannot)?;
    if paths.is_empty() {
        return Ok(());
    }
    if strict {
        return Err(strict_error(rt, &paths));
    }
    for p in &paths {
        remove_path(obj, p);
    }
    Ok(())
}

/// Removes the field at a path as [`unknown_fields`] prints it.
fn remove_path(obj: &mut Value, path: &str) {
    let mut segs: Vec<String> = Vec::new();
    for part in path.trim_start_matches('.').split('.') {
        segs.push(part.to_string());
    }
    // Re-join segments split inside `[name="a.b"]`.
    let mut joined: Vec<String> = Vec::new();
    for s in segs {
        match joined.last_mut() {
            Some(last) if last.matches('[').count() > last.matches(']').count() => {
                last.push('.');
                last.push_str(&s);
            }
            _ => joined.push(s),
        }
    }
    let Some((leaf, parents)) = joined.split_last() else {
        return;
    };
    let mut cur = obj;
    for seg in parents {
        let Some(next) = step(cur, seg) else {
            return;
        };
        cur = next;
    }
    let (key, index) = split_index(leaf);
    if index.is_some() {
        return;
    }
    if let Some(m) = cur.as_object_mut() {
        m.remove(key);
    }
}

fn split_index(seg: &str) -> (&str, Option<&str>) {
    match seg.split_once('[') {
        Some((k, rest)) => (k, Some(rest.trim_end_matches(']'))),
        None => (seg, None),
    }
}

fn step<'a>(cur: &'a mut Value, seg: &str) -> Option<&'a mut Value> {
    let (key, index) = split_index(seg);
    let child = cur.as_object_mut()?.get_mut(key)?;
    match index {
        None => Some(child),
        Some(ix) => {
            let items = child.as_array_mut()?;
            if let Some(name) = ix.strip_prefix("name=") {
                let name: String = serde_json::from_str(name).ok()?;
                items
                    .iter_mut()
                    .find(|i| i.get("name").and_then(Value::as_str) == Some(name.as_str()))
            } else {
                items.get_mut(ix.parse::<usize>().ok()?)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_take_the_servers_canonical_form() {
        for (input, want) in [
            ("0.5", "500m"),
            ("1000m", "1"),
            ("1024Mi", "1Gi"),
            ("1536Mi", "1536Mi"),
            ("2048Mi", "2Gi"),
            ("1e3", "1e3"),
            ("1000", "1k"),
            ("1500", "1500"),
            ("100m", "100m"),
            ("64Mi", "64Mi"),
            ("0.5Gi", "512Mi"),
            ("2", "2"),
            ("0", "0"),
            ("1.5", "1500m"),
            ("0.1Ki", "102400m"),
        ] {
            assert_eq!(canonical_quantity(input).as_deref(), Some(want), "{input}");
        }
        assert_eq!(canonical_quantity("lots"), None);
        assert_eq!(canonical_quantity("1Qi"), None);
    }

    #[test]
    fn unknown_and_mistyped_fields() {
        let reg = super::super::resources::Registry::default();
        let rt = reg
            .lookup("apps", "v1", "deployments")
            .expect("deployments");
        let rt = rt.as_ref();
        let d = serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
            "spec": {"replica": 2, "template": {"spec": {"containers": [{"name": "app", "image": "x", "imagePullPolice": "A"}]}}}});
        assert_eq!(
            unknown_fields(rt, &d),
            Ok(vec![
                ".spec.replica".to_string(),
                ".spec.template.spec.containers[name=\"app\"].imagePullPolice".to_string()
            ])
        );
        let mut d2 = d.clone();
        decode_body(rt, &mut d2, false).expect("dropped");
        assert!(d2.pointer("/spec/replica").is_none());
        assert!(d2
            .pointer("/spec/template/spec/containers/0/imagePullPolice")
            .is_none());
        assert!(decode_body(rt, &mut d.clone(), true).is_err());
        let wrong = serde_json::json!({"spec": {"replicas": "three"}});
        assert!(unknown_fields(rt, &wrong).is_err());
    }
}
