//! Field ownership for server-side apply: the `metadata.managedFields` of an
//! object, per manager and operation (Apply / Update), in the `FieldsV1` format
//! the real API server uses. Pure functions over `serde_json::Value`.

use serde_json::Value;

/// One field that another manager owns and the applier tried to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The manager that owns the field.
    pub manager: String,
    /// The field path as the API server prints it, e.g. `.spec.replicas` or
    /// `.spec.template.spec.containers[name="app"].image`.
    pub field: String,
}

/// Server-side apply of `applied` (the full intent of `manager`) onto `live`
/// (`None` when the object does not exist yet). Returns the new object, with
/// `metadata.managedFields` updated (an `Apply` entry for `manager`), or, when
/// `force` is false and another manager owns a field whose value the apply
/// changes, every such conflict. Fields `manager` applied before and no longer
/// applies are removed unless another manager owns them.
pub fn apply(
    _live: Option<&Value>,
    _applied: &Value,
    _manager: &str,
    _force: bool,
    _api_version: &str,
    _time: &str,
) -> Result<Value, Vec<Conflict>> {
    todo!("emulator field manager helper")
}

/// Records an `Update` operation (create, PUT, or a non-apply PATCH) by
/// `manager` that turned `old` into `new`: `manager` takes ownership of every
/// field it set or changed, and those fields leave the other managers' sets.
/// `subresource` is `Some("status")` for status writes.
pub fn record_update(
    _old: Option<&Value>,
    _new: &mut Value,
    _manager: &str,
    _api_version: &str,
    _time: &str,
    _subresource: Option<&str>,
) {
    todo!("emulator field manager helper")
}
