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
    /// The error says which of them is missing.
    pub fn from_object(obj: &Value) -> Result<Self, String> {
        let api_version = obj
            .get("apiVersion")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or("apiVersion is missing")?;
        let kind = obj
            .get("kind")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or("kind is missing")?;
        let meta = obj.get("metadata");
        let name = meta
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| format!("{kind} has no metadata.name"))?;
        let namespace = meta
            .and_then(|m| m.get("namespace"))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        let (group, version) = split_api_version(api_version);
        Ok(ObjectRef {
            group: group.to_string(),
            version: version.to_string(),
            kind: kind.to_string(),
            namespace,
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
    pub fn object_ref(&self) -> Result<ObjectRef, String> {
        ObjectRef::from_object(&self.object)
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
        self.object
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(key))
            .and_then(Value::as_str)
    }
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
        assert!(e.contains("apiVersion"), "{e}");
        let e =
            ObjectRef::from_object(&json!({"apiVersion": "v1", "kind": "ConfigMap"})).unwrap_err();
        assert_eq!(e, "ConfigMap has no metadata.name");
    }
}
