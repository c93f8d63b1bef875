//! The list-merge table of the emulator: which lists of the built-in kinds are
//! associative (merged element-wise by key fields), which are sets of scalars,
//! and which are atomic (replaced whole). Strategic merge patch
//! (`patch.rs`) and server-side apply field ownership (`fieldmanager.rs`) both
//! read it, so the two agree on what a list item is.
//!
//! The emulator has no OpenAPI schema walker, so the table is keyed by the
//! name of the field that holds the list, and the items themselves decide
//! ambiguous cases (a `ports` list whose items carry `containerPort` is a
//! container's; otherwise it is a Service's). A list whose items do not all
//! carry the key fields is treated as atomic: that keeps every input mergeable
//! and never panics. It does not own merging itself, only the classification.

use serde_json::{Map, Value};

/// One key field of an associative list; `default` fills in an item that
/// omits it (as the OpenAPI default does for `protocol: TCP`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyField {
    /// Field name inside each item.
    pub name: &'static str,
    /// Value assumed when the item omits the field.
    pub default: Option<&'static str>,
}

/// How a list merges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListType {
    /// Replaced as a whole; owned as one field.
    Atomic,
    /// A set of scalars (`metadata.finalizers`); items are `v:` elements.
    Set,
    /// Items are objects identified by these key fields; items are `k:`
    /// elements. The first key is the strategic-merge-patch merge key.
    Map(&'static [KeyField]),
}

const fn key(name: &'static str) -> KeyField {
    KeyField {
        name,
        default: None,
    }
}

const NAME: &[KeyField] = &[key("name")];
const MOUNT_PATH: &[KeyField] = &[key("mountPath")];
const DEVICE_PATH: &[KeyField] = &[key("devicePath")];
const IP: &[KeyField] = &[key("ip")];
const TYPE: &[KeyField] = &[key("type")];
const UID: &[KeyField] = &[key("uid")];
const RESOURCE_NAME: &[KeyField] = &[key("resourceName")];
const CONTAINER_PORT: &[KeyField] = &[
    key("containerPort"),
    KeyField {
        name: "protocol",
        default: Some("TCP"),
    },
];
const SERVICE_PORT: &[KeyField] = &[
    key("port"),
    KeyField {
        name: "protocol",
        default: Some("TCP"),
    },
];
const TOPOLOGY_SPREAD: &[KeyField] = &[key("topologyKey"), key("whenUnsatisfiable")];

/// The declared (schema) list type of the field `field`, before the items are
/// checked. `items` disambiguates `ports`.
fn declared<'a>(field: &str, mut items: impl Iterator<Item = &'a Value>) -> ListType {
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "env"
        | "imagePullSecrets"
        | "resourceClaims"
        | "schedulingGates"
        | "webhooks"
        | "secrets" => ListType::Map(NAME),
        "volumeMounts" => ListType::Map(MOUNT_PATH),
        "volumeDevices" => ListType::Map(DEVICE_PATH),
        "hostAliases" => ListType::Map(IP),
        "conditions" => ListType::Map(TYPE),
        "ownerReferences" => ListType::Map(UID),
        "resizePolicy" => ListType::Map(RESOURCE_NAME),
        "topologySpreadConstraints" => ListType::Map(TOPOLOGY_SPREAD),
        "ports" => {
            if items.any(|i| i.get("containerPort").is_some()) {
                ListType::Map(CONTAINER_PORT)
            } else {
                ListType::Map(SERVICE_PORT)
            }
        }
        "finalizers" => ListType::Set,
        _ => ListType::Atomic,
    }
}

/// How the list held by `field` merges, given every item that will take part
/// (live and applied/patch items together). Falls back to [`ListType::Atomic`]
/// when an item does not fit the declared type (a keyed item missing a key
/// without default, a non-object item, a non-scalar set item, or two items
/// with the same key on one side).
pub fn list_type(field: Option<&str>, sides: &[&[Value]]) -> ListType {
    let Some(field) = field else {
        return ListType::Atomic;
    };
    let declared = declared(field, sides.iter().flat_map(|s| s.iter()));
    let fits = match declared {
        ListType::Atomic => true,
        ListType::Set => sides.iter().all(|side| {
            side.iter().all(|i| !i.is_object() && !i.is_array())
                && no_duplicates(side.iter().map(|i| item_element(declared, i)))
        }),
        ListType::Map(_) => sides.iter().all(|side| {
            side.iter().all(|i| item_element(declared, i).is_some())
                && no_duplicates(side.iter().map(|i| item_element(declared, i)))
        }),
    };
    if fits {
        declared
    } else {
        ListType::Atomic
    }
}

fn no_duplicates(elements: impl Iterator<Item = Option<String>>) -> bool {
    let mut seen = std::collections::HashSet::new();
    for e in elements {
        match e {
            Some(e) => {
                if !seen.insert(e) {
                    return false;
                }
            }
            None => return false,
        }
    }
    true
}

/// The key values of an item of an associative list, in key-name order, or
/// `None` when the item is not an object or lacks a key without default.
pub fn item_key(keys: &[KeyField], item: &Value) -> Option<Map<String, Value>> {
    let obj = item.as_object()?;
    let mut sorted: Vec<&KeyField> = keys.iter().collect();
    sorted.sort_by_key(|k| k.name);
    let mut out = Map::new();
    for k in sorted {
        let v = match (obj.get(k.name), k.default) {
            (Some(Value::Null) | None, Some(d)) => Value::String(d.to_string()),
            (Some(Value::Null) | None, None) => return None,
            (Some(v), _) => {
                if v.is_object() || v.is_array() {
                    return None;
                }
                v.clone()
            }
        };
        out.insert(k.name.to_string(), v);
    }
    Some(out)
}

/// The `FieldsV1` path element (`k:{…}` or `v:…`) that names `item` in a list
/// of type `list`, or `None` for atomic lists and items that do not fit.
pub fn item_element(list: ListType, item: &Value) -> Option<String> {
    match list {
        ListType::Atomic => None,
        ListType::Set => {
            if item.is_object() || item.is_array() {
                None
            } else {
                Some(format!("v:{item}"))
            }
        }
        ListType::Map(keys) => {
            let k = item_key(keys, item)?;
            Some(format!("k:{}", Value::Object(k)))
        }
    }
}

/// The strategic-merge-patch merge key of the list held by `field`, if the
/// list merges by key (the patch items decide `ports`).
pub fn merge_key(field: &str, items: &[Value]) -> Option<&'static str> {
    match declared(field, items.iter()) {
        ListType::Map(keys) => keys.first().map(|k| k.name),
        _ => None,
    }
}

/// Whether the list held by `field` is a strategic-merge-patch primitive
/// list merged as a set (`finalizers`).
pub fn is_merged_primitive_list(field: &str) -> bool {
    matches!(declared(field, std::iter::empty()), ListType::Set)
}

/// Whether the map held by `field` is atomic (owned and replaced whole), as
/// `LabelSelector` is: a `selector` with `matchLabels`/`matchExpressions`.
pub fn is_atomic_map(field: Option<&str>, value: &Value) -> bool {
    let Some(m) = value.as_object() else {
        return false;
    };
    match field {
        // LabelSelector is an atomic struct; a Service's (or
        // ReplicationController's) `selector` and a pod's `nodeSelector` are
        // atomic maps.
        Some("selector") => true,
        Some("labelSelector" | "namespaceSelector") => {
            m.contains_key("matchLabels") || m.contains_key("matchExpressions")
        }
        // Atomic references (`x-kubernetes-map-type: atomic`).
        Some(
            "nodeSelector" | "configMapKeyRef" | "secretKeyRef" | "configMapRef" | "secretRef"
            | "fieldRef" | "resourceFieldRef",
        ) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn list_types() {
        let containers = vec![json!({"name": "a"}), json!({"name": "b"})];
        let cports = vec![json!({"containerPort": 80})];
        let sports = vec![json!({"port": 80, "targetPort": 8080})];
        let strings = vec![json!("a"), json!("b")];
        let missing = vec![json!({"image": "x"})];
        let dup = vec![json!({"name": "a"}), json!({"name": "a"})];
        let cases: Vec<(&str, &[Value], ListType)> = vec![
            ("containers", &containers, ListType::Map(NAME)),
            ("ports", &cports, ListType::Map(CONTAINER_PORT)),
            ("ports", &sports, ListType::Map(SERVICE_PORT)),
            ("finalizers", &strings, ListType::Set),
            ("args", &strings, ListType::Atomic),
            ("containers", &missing, ListType::Atomic),
            ("containers", &strings, ListType::Atomic),
            ("containers", &dup, ListType::Atomic),
            ("tolerations", &containers, ListType::Atomic),
        ];
        for (field, items, want) in cases {
            assert_eq!(list_type(Some(field), &[items]), want, "{field}");
        }
    }

    #[test]
    fn elements() {
        assert_eq!(
            item_element(ListType::Map(CONTAINER_PORT), &json!({"containerPort": 80})).as_deref(),
            Some(r#"k:{"containerPort":80,"protocol":"TCP"}"#)
        );
        assert_eq!(
            item_element(ListType::Map(NAME), &json!({"name": "app", "image": "x"})).as_deref(),
            Some(r#"k:{"name":"app"}"#)
        );
        assert_eq!(
            item_element(ListType::Set, &json!("a/b")).as_deref(),
            Some(r#"v:"a/b""#)
        );
        assert_eq!(
            item_element(ListType::Map(NAME), &json!({"name": {}})),
            None
        );
    }

    #[test]
    fn merge_keys() {
        assert_eq!(merge_key("containers", &[]), Some("name"));
        assert_eq!(merge_key("volumeMounts", &[]), Some("mountPath"));
        assert_eq!(
            merge_key("ports", &[json!({"containerPort": 1})]),
            Some("containerPort")
        );
        assert_eq!(merge_key("ports", &[json!({"port": 1})]), Some("port"));
        assert_eq!(merge_key("tolerations", &[]), None);
        assert!(is_merged_primitive_list("finalizers"));
    }
}
