//! Non-apply patch formats of the Kubernetes API: JSON merge patch (RFC 7386),
//! JSON patch (RFC 6902) and strategic merge patch for the built-in kinds'
//! common list keys. Pure functions over `serde_json::Value`.

use serde_json::Value;

/// A patch that cannot be applied; the message is what the API server returns.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct PatchError(pub String);

/// RFC 7386 JSON merge patch.
pub fn merge_patch(_target: &Value, _patch: &Value) -> Value {
    todo!("emulator patch helper")
}

/// RFC 6902 JSON patch.
pub fn json_patch(_target: &Value, _patch: &Value) -> Result<Value, PatchError> {
    todo!("emulator patch helper")
}

/// Strategic merge patch: like merge patch, but lists with a merge key
/// (containers, ports, env, volumes, …) merge element-wise by that key and
/// `$patch: delete` / `$retainKeys` / `$setElementOrder` directives are honoured.
pub fn strategic_merge_patch(_target: &Value, _patch: &Value) -> Result<Value, PatchError> {
    todo!("emulator patch helper")
}
