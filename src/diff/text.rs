//! Rendering objects as key-sorted YAML and diffing them, with Secret
//! values masked.

use serde_json::{Map, Value};
use similar::TextDiff;

/// Shown for a Secret value that is the same on both sides.
pub const MASK_UNCHANGED: &str = "<unchanged>";
/// Shown on the desired side for a Secret value that differs from live.
pub const MASK_CHANGED: &str = "<changed>";
/// Shown for a Secret value on the live side when it changes, and for a
/// value present on one side only.
pub const MASK_HIDDEN: &str = "<hidden>";

/// A unified diff (3 lines of context, `--- {old_label}` / `+++ {new_label}`
/// headers) of the two objects rendered as YAML with keys sorted
/// recursively, so that objects that are equal print equally. `null`
/// renders as nothing: diffing from `null` shows the whole object added.
/// Returns an empty string when the renderings are equal.
///
/// When either side is a Secret (`v1` `Secret`), the values under `data`
/// and `stringData` (and its last-applied-configuration annotation, which
/// embeds them) are replaced before rendering: [`MASK_UNCHANGED`] on both
/// sides when equal; [`MASK_HIDDEN`] on the old side and [`MASK_CHANGED`]
/// on the new when they differ; [`MASK_HIDDEN`] when only one side has the
/// key. The keys stay visible, so a diff still says *which* entry changed.
pub fn unified_yaml_diff(old: &Value, new: &Value, old_label: &str, new_label: &str) -> String {
    let (old, new) = if is_secret(old) || is_secret(new) {
        mask_secret(old, new)
    } else {
        (old.clone(), new.clone())
    };
    let (a, b) = (to_yaml(&old), to_yaml(&new));
    if a == b {
        return String::new();
    }
    TextDiff::from_lines(&a, &b)
        .unified_diff()
        .context_radius(3)
        .header(old_label, new_label)
        .to_string()
}

/// The value with every object's keys in sorted order.
pub(super) fn sorted(v: &Value) -> Value {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let mut out = Map::new();
            for k in keys {
                out.insert(k.clone(), sorted(&map[k]));
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// Key-sorted YAML; `null` is empty.
pub(super) fn to_yaml(v: &Value) -> String {
    if v.is_null() {
        return String::new();
    }
    let v = sorted(v);
    serde_yaml::to_string(&v)
        .or_else(|_| serde_json::to_string_pretty(&v).map(|s| s + "\n"))
        .unwrap_or_default()
}

fn is_secret(v: &Value) -> bool {
    v.get("kind").and_then(Value::as_str) == Some("Secret")
        && v.get("apiVersion").and_then(Value::as_str) == Some("v1")
}

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Both sides with Secret values replaced by masks (see [`unified_yaml_diff`]).
fn mask_secret(old: &Value, new: &Value) -> (Value, Value) {
    let (mut old, mut new) = (old.clone(), new.clone());
    for field in ["data", "stringData"] {
        mask_map(field_mut(&mut old, &[field]), field_mut(&mut new, &[field]));
    }
    mask_pair(
        field_mut(&mut old, &["metadata", "annotations", LAST_APPLIED]),
        field_mut(&mut new, &["metadata", "annotations", LAST_APPLIED]),
    );
    (old, new)
}

fn field_mut<'a>(v: &'a mut Value, path: &[&str]) -> Option<&'a mut Value> {
    path.iter()
        .try_fold(v, |cur, key| cur.as_object_mut()?.get_mut(*key))
}

/// Masks each entry of two `data` maps, pairing entries by key. A side that
/// is not a map is masked whole.
fn mask_map(old: Option<&mut Value>, new: Option<&mut Value>) {
    match (old, new) {
        (Some(Value::Object(o)), Some(Value::Object(n))) => {
            for (k, ov) in o.iter_mut() {
                mask_pair(Some(ov), n.get_mut(k));
            }
            for (k, nv) in n.iter_mut() {
                if !o.contains_key(k) {
                    *nv = Value::from(MASK_HIDDEN);
                }
            }
        }
        (Some(Value::Object(o)), None) | (None, Some(Value::Object(o))) => {
            for v in o.values_mut() {
                *v = Value::from(MASK_HIDDEN);
            }
        }
        (o, n) => mask_pair(o, n),
    }
}

/// Masks one value present on either or both sides.
fn mask_pair(old: Option<&mut Value>, new: Option<&mut Value>) {
    match (old, new) {
        (Some(o), Some(n)) => {
            let same = *o == *n;
            *o = Value::from(if same { MASK_UNCHANGED } else { MASK_HIDDEN });
            *n = Value::from(if same { MASK_UNCHANGED } else { MASK_CHANGED });
        }
        (Some(v), None) | (None, Some(v)) => *v = Value::from(MASK_HIDDEN),
        (None, None) => {}
    }
}
