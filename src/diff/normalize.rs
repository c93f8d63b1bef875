//! Dropping what the server owns, so that two objects compare equal when
//! they differ only in bookkeeping.

use serde_json::Value;

/// `metadata` fields written by the API server, never by a user.
const SERVER_METADATA: &[&str] = &[
    "managedFields",
    "resourceVersion",
    "generation",
    "uid",
    "creationTimestamp",
    "selfLink",
];

/// Annotations written by tools and controllers, not by the desired state.
const SERVER_ANNOTATIONS: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    "deployment.kubernetes.io/revision",
];

/// A copy of `obj` without server-owned fields: `metadata.{managedFields,
/// resourceVersion, generation, uid, creationTimestamp, selfLink}`, the
/// `kubectl.kubernetes.io/last-applied-configuration` and
/// `deployment.kubernetes.io/revision` annotations, and `status`. Empty
/// `metadata.annotations` and `metadata.labels` maps are removed, so an
/// object whose only annotation was dropped equals one that never had any.
/// Anything that is not a JSON object is returned unchanged.
pub fn normalize(obj: &Value) -> Value {
    let mut out = obj.clone();
    let Some(map) = out.as_object_mut() else {
        return out;
    };
    map.remove("status");
    if let Some(meta) = map.get_mut("metadata").and_then(Value::as_object_mut) {
        for key in SERVER_METADATA {
            meta.remove(*key);
        }
        if let Some(ann) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
            for key in SERVER_ANNOTATIONS {
                ann.remove(*key);
            }
        }
        for key in ["annotations", "labels"] {
            let empty = match meta.get(key) {
                Some(Value::Object(m)) => m.is_empty(),
                Some(Value::Null) => true,
                _ => false,
            };
            if empty {
                meta.remove(key);
            }
        }
    }
    out
}
