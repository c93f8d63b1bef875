use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Identity of one Kubernetes object: group, version, kind, namespace, name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ObjectRef {
    /// API group; empty for the core group.
    pub group: String,
    pub version: String,
    pub kind: String,
    /// `None` for cluster-scoped objects (or objects whose namespace is not yet
    /// defaulted from the app's destination).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjectRef {
    /// Reads the identity from an object's `apiVersion`, `kind` and metadata.
    /// The error says which of them is missing, or which has the wrong type.
    pub fn from_object(obj: &Value) -> Result<Self, ObjectError> {
        let api_version =
            required_str(obj, "apiVersion", "apiVersion")?.ok_or(ObjectError::Missing {
                field: "apiVersion",
                kind: None,
            })?;
        let kind = required_str(obj, "kind", "kind")?.ok_or(ObjectError::Missing {
            field: "kind",
            kind: None,
        })?;
        let meta = match obj.get("metadata") {
            None | Some(Value::Null) => None,
            Some(m @ Value::Object(_)) => Some(m),
            Some(other) => return Err(ObjectError::wrong_type("metadata", "a mapping", other)),
        };
        let name = match meta {
            Some(m) => required_str(m, "name", "metadata.name")?,
            None => None,
        }
        .ok_or_else(|| ObjectError::Missing {
            field: "metadata.name",
            kind: Some(kind.to_string()),
        })?;
        let namespace = match meta {
            Some(m) => required_str(m, "namespace", "metadata.namespace")?,
            None => None,
        };
        let (group, version) = split_api_version(api_version);
        Ok(ObjectRef {
            group: group.to_string(),
            version: version.to_string(),
            kind: kind.to_string(),
            namespace: namespace.map(str::to_string),
            name: name.to_string(),
        })
    }

    /// `apiVersion` as written in manifests: `v1` or `apps/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `Kind` or `Kind.group`, as kubectl prints resource types.
    pub fn kind_group(&self) -> String {
        if self.group.is_empty() {
            self.kind.clone()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }

    /// Same object regardless of version (an object served at two versions is one object).
    pub fn same_object(&self, other: &ObjectRef) -> bool {
        self.group == other.group
            && self.kind == other.kind
            && self.namespace == other.namespace
            && self.name == other.name
    }
}

/// `obj[key]` when it is a non-empty string; `None` when absent, null or
/// empty; an error naming `field` when it is anything else.
fn required_str<'v>(
    obj: &'v Value,
    key: &str,
    field: &str,
) -> Result<Option<&'v str>, ObjectError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str()).filter(|s| !s.is_empty())),
        Some(other) => Err(ObjectError::wrong_type(field, "a string", other)),
    }
}

/// A document's `apiVersion` and `kind` (non-empty strings), or what is
/// wrong with them: the check every rendered document passes before it is
/// taken as an object (kubectl refuses the same documents).
pub fn identity(obj: &Value) -> Result<(&str, &str), ObjectError> {
    let Value::Object(map) = obj else {
        return Err(ObjectError::NotAMapping {
            found: type_name(obj),
        });
    };
    let near = |name: &str| {
        map.keys()
            .find(|k| k.as_str() != name && k.eq_ignore_ascii_case(name))
            .cloned()
    };
    let api_version = required_str(obj, "apiVersion", "apiVersion")?;
    let kind = required_str(obj, "kind", "kind")?;
    let missing = |field: &'static str| match near(field) {
        Some(near) => ObjectError::MissingNear { field, near },
        None => ObjectError::Missing { field, kind: None },
    };
    match (api_version, kind) {
        (Some(a), Some(k)) => Ok((a, k)),
        (None, None) => Err(ObjectError::NoIdentity {
            near: near("kind").or_else(|| near("apiVersion")),
        }),
        (Some(_), None) => Err(missing("kind")),
        (None, Some(_)) => Err(missing("apiVersion")),
    }
}

/// Checks the metadata fields kubesync reads or writes besides the identity:
/// `metadata.labels` and `metadata.annotations` must be mappings of strings
/// (the API server refuses anything else; better to say so at render time,
/// naming the file, than to drop or mangle them).
pub fn check_metadata(obj: &Value) -> Result<(), ObjectError> {
    let meta = match obj.get("metadata") {
        None | Some(Value::Null) => return Ok(()),
        Some(m @ Value::Object(_)) => m,
        Some(other) => return Err(ObjectError::wrong_type("metadata", "a mapping", other)),
    };
    for key in ["name", "namespace", "generateName"] {
        match meta.get(key) {
            None | Some(Value::Null) | Some(Value::String(_)) => {}
            Some(other) => {
                return Err(ObjectError::wrong_type(
                    &format!("metadata.{key}"),
                    "a string",
                    other,
                ))
            }
        }
    }
    for key in ["labels", "annotations"] {
        match meta.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::Object(m)) => {
                for (k, v) in m {
                    if !matches!(v, Value::String(_) | Value::Null) {
                        return Err(ObjectError::wrong_type(
                            &format!("metadata.{key}.{k}"),
                            "a string",
                            v,
                        ));
                    }
                }
            }
            Some(other) => {
                return Err(ObjectError::wrong_type(
                    &format!("metadata.{key}"),
                    "a mapping of strings",
                    other,
                ))
            }
        }
    }
    Ok(())
}

/// What is wrong with an object's identity or metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectError {
    /// A required field is absent or empty; `kind` is the object's kind when
    /// it is known.
    Missing {
        field: &'static str,
        kind: Option<String>,
    },
    /// The document is not a mapping at all (a scalar, a list).
    NotAMapping { found: &'static str },
    /// A mapping with neither `apiVersion` nor `kind`; `near` is a key that
    /// differs only in case (`Kind`), when there is one.
    NoIdentity { near: Option<String> },
    /// `apiVersion` or `kind` is missing while the other is there; `near`
    /// is a key that differs only in case (`Kind:` for `kind:`).
    MissingNear { field: &'static str, near: String },
    /// A field has the wrong type (`metadata.name: 12345`).
    WrongType {
        /// Dotted path, e.g. `metadata.namespace`.
        field: String,
        expected: &'static str,
        found: &'static str,
    },
    /// `metadata.generateName` without `metadata.name` on an object that is
    /// not a resource hook.
    GenerateNameOutsideHook { kind: String, generate_name: String },
}

impl ObjectError {
    fn wrong_type(field: &str, expected: &'static str, found: &Value) -> Self {
        ObjectError::WrongType {
            field: field.to_string(),
            expected,
            found: type_name(found),
        }
    }
}

impl fmt::Display for ObjectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ObjectError::Missing {
                field,
                kind: Some(kind),
            } => write!(f, "{kind} has no {field}"),
            ObjectError::Missing { field, kind: None } => write!(f, "{field} is missing"),
            ObjectError::NotAMapping { found } => write!(
                f,
                "not a Kubernetes object: the document is {found}, not a mapping"
            ),
            ObjectError::NoIdentity { near } => {
                write!(
                    f,
                    "not a Kubernetes object: it has neither apiVersion nor kind (kubectl refuses it too)"
                )?;
                match near {
                    Some(k) => write!(f, "; found \"{k}\", but field names are case-sensitive"),
                    None => Ok(()),
                }
            }
            ObjectError::MissingNear { field, near } => write!(
                f,
                "{field} is missing (found \"{near}\"; field names are case-sensitive)"
            ),
            ObjectError::WrongType {
                field,
                expected,
                found,
            } => write!(f, "{field} must be {expected}, found {found}"),
            ObjectError::GenerateNameOutsideHook {
                kind,
                generate_name,
            } => write!(
                f,
                "{kind} with metadata.generateName \"{generate_name}\" and no metadata.name: only resource hooks (argocd.argoproj.io/hook, helm.sh/hook) may use generateName, because every other object is applied by name (give it a metadata.name, or make it a hook)"
            ),
        }
    }
}

impl std::error::Error for ObjectError {}

/// How a value's type is named in messages, in YAML's words.
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a sequence",
        Value::Object(_) => "a mapping",
    }
}

/// Splits `apps/v1` into `("apps", "v1")` and `v1` into `("", "v1")`.
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.rsplit_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    }
}

impl fmt::Display for ObjectRef {
    /// `Deployment.apps guestbook/frontend`, `Namespace guestbook`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {}/{}", self.kind_group(), ns, self.name),
            None => write!(f, "{} {}", self.kind_group(), self.name),
        }
    }
}

/// Where a rendered object came from: the file (relative to the repository
/// root, or a renderer's description such as `helm template charts/x`) and the
/// 0-based document index within it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ObjectOrigin {
    pub file: PathBuf,
    pub doc: usize,
}

impl fmt::Display for ObjectOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.doc == 0 {
            write!(f, "{}", self.file.display())
        } else {
            write!(f, "{} (document {})", self.file.display(), self.doc + 1)
        }
    }
}

/// One rendered Kubernetes object and where it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub object: Value,
    pub origin: ObjectOrigin,
}

impl Manifest {
    pub fn object_ref(&self) -> Result<ObjectRef, ObjectError> {
        ObjectRef::from_object(&self.object)
    }

    /// The identity, with `metadata.generateName` standing in for a missing
    /// name (a hook created under a generated name: the server picks the
    /// rest).
    pub fn object_ref_or_generated(&self) -> Result<ObjectRef, ObjectError> {
        match super::hook::generate_name(&self.object) {
            Some(prefix) => {
                let mut named = self.object.clone();
                if let Some(meta) = named.get_mut("metadata").and_then(Value::as_object_mut) {
                    meta.insert("name".into(), Value::String(prefix));
                }
                ObjectRef::from_object(&named)
            }
            None => self.object_ref(),
        }
    }

    pub fn kind(&self) -> &str {
        self.object
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    pub fn api_version(&self) -> &str {
        self.object
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    /// An annotation's value, if set to a string.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        annotation(&self.object, key)
    }
}

/// The value of one annotation of any object (rendered, live or an
/// Application), if it is set to a string.
pub fn annotation<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj.pointer("/metadata/annotations")
        .and_then(|a| a.get(key))
        .and_then(Value::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn object_ref_from_object() {
        let r = ObjectRef::from_object(&json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop"}
        }))
        .unwrap();
        assert_eq!(r.group, "apps");
        assert_eq!(r.api_version(), "apps/v1");
        assert_eq!(r.to_string(), "Deployment.apps shop/web");
        let ns = ObjectRef::from_object(&json!({
            "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}
        }))
        .unwrap();
        assert_eq!(ns.to_string(), "Namespace shop");
        assert_eq!(ns.group, "");
    }

    #[test]
    fn object_ref_errors_name_the_missing_part() {
        let e = ObjectRef::from_object(&json!({"kind": "X"})).unwrap_err();
        assert!(e.to_string().contains("apiVersion"), "{e}");
        let e =
            ObjectRef::from_object(&json!({"apiVersion": "v1", "kind": "ConfigMap"})).unwrap_err();
        assert_eq!(e.to_string(), "ConfigMap has no metadata.name");
    }

    #[test]
    fn object_ref_errors_name_the_wrong_type() {
        let cases = [
            (
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": 12345}}),
                "metadata.name must be a string, found a number",
            ),
            (
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": ["a"]}}),
                "metadata.name must be a string, found a sequence",
            ),
            (
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": 42}}),
                "metadata.namespace must be a string, found a number",
            ),
            (
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": [1]}),
                "metadata must be a mapping, found a sequence",
            ),
            (
                json!({"apiVersion": 1, "kind": "ConfigMap", "metadata": {"name": "a"}}),
                "apiVersion must be a string, found a number",
            ),
        ];
        for (obj, want) in cases {
            assert_eq!(
                ObjectRef::from_object(&obj).unwrap_err().to_string(),
                want,
                "{obj}"
            );
        }
    }

    #[test]
    fn labels_and_annotations_must_be_mappings_of_strings() {
        let with = |meta: Value| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta});
        assert_eq!(
            check_metadata(&with(
                json!({"name": "a", "labels": {"a": "b"}, "annotations": null})
            )),
            Ok(())
        );
        assert_eq!(
            check_metadata(&with(json!({"name": "a", "labels": 5})))
                .unwrap_err()
                .to_string(),
            "metadata.labels must be a mapping of strings, found a number"
        );
        assert_eq!(
            check_metadata(&with(json!({"name": "a", "annotations": {"x": {"y": 1}}})))
                .unwrap_err()
                .to_string(),
            "metadata.annotations.x must be a string, found a mapping"
        );
    }
}
