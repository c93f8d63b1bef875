//! The table of resource types the emulator serves: the built-in kinds (one
//! row each: group, version, kind, plural, singular, short names, scope,
//! subresources, naming rule) and the types that CustomResourceDefinitions add
//! at run time. Owns lookups by path segment and by kind; does not own
//! objects (see `store`).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

/// Which name validation the real API server applies to a kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// RFC 1123 subdomain (most kinds).
    Subdomain,
    /// RFC 1123 label (namespaces).
    Label,
    /// RFC 1035 label (services).
    Dns1035,
    /// Any path segment (RBAC kinds).
    PathSegment,
}

/// The verbs every served resource accepts.
pub const STANDARD_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// One served resource at one group-version.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceType {
    /// API group, `""` for core.
    pub group: String,
    pub version: String,
    pub kind: String,
    /// URL segment, e.g. `deployments`.
    pub plural: String,
    pub singular: String,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub namespaced: bool,
    pub verbs: Vec<String>,
    /// Has a `/status` subresource.
    pub status: bool,
    /// Has a `/scale` subresource (with the spec/status replica paths).
    pub scale: bool,
    /// `metadata.generation` is maintained.
    pub generation: bool,
    pub name_rule: NameRule,
    /// Served from a CustomResourceDefinition (named here).
    pub crd: Option<String>,
}

impl ResourceType {
    /// `apps/v1` or `v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The storage identity shared by all versions of a resource.
    pub fn group_resource(&self) -> GroupResource {
        GroupResource {
            group: self.group.clone(),
            resource: self.plural.clone(),
        }
    }

    /// Whether strategic merge patch is accepted (built-in kinds only).
    pub fn strategic_merge(&self) -> bool {
        self.crd.is_none()
    }

    /// The `x-kubernetes-...`-style definition name used in OpenAPI.
    pub fn definition_name(&self) -> String {
        if self.crd.is_some() {
            let mut parts: Vec<&str> = self.group.split('.').collect();
            parts.reverse();
            return format!("{}.{}.{}", parts.join("."), self.version, self.kind);
        }
        let package = match self.group.as_str() {
            "" => "io.k8s.api.core".to_string(),
            "apiextensions.k8s.io" => {
                "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions".into()
            }
            g => format!("io.k8s.api.{}", g.split('.').next().unwrap_or(g)),
        };
        format!("{package}.{}.{}", self.version, self.kind)
    }
}

/// Storage key of a resource across versions, e.g. `deployments` in `apps`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupResource {
    pub group: String,
    pub resource: String,
}

struct Row {
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    short: &'static [&'static str],
    namespaced: bool,
    status: bool,
    scale: bool,
    generation: bool,
    name_rule: NameRule,
    categories: &'static [&'static str],
}

const fn row(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    short: &'static [&'static str],
    namespaced: bool,
) -> Row {
    Row {
        group,
        version,
        kind,
        plural,
        short,
        namespaced,
        status: false,
        scale: false,
        generation: false,
        name_rule: NameRule::Subdomain,
        categories: &[],
    }
}

impl Row {
    const fn status(mut self) -> Self {
        self.status = true;
        self
    }
    const fn scale(mut self) -> Self {
        self.scale = true;
        self
    }
    const fn generation(mut self) -> Self {
        self.generation = true;
        self
    }
    const fn names(mut self, rule: NameRule) -> Self {
        self.name_rule = rule;
        self
    }
    const fn all(mut self) -> Self {
        self.categories = &["all"];
        self
    }
}

const BUILTINS: &[Row] = &[
    row("", "v1", "Namespace", "namespaces", &["ns"], false)
        .status()
        .names(NameRule::Label),
    row("", "v1", "ConfigMap", "configmaps", &["cm"], true),
    row("", "v1", "Secret", "secrets", &[], true),
    row("", "v1", "Service", "services", &["svc"], true)
        .status()
        .names(NameRule::Dns1035)
        .all(),
    row("", "v1", "ServiceAccount", "serviceaccounts", &["sa"], true),
    row("", "v1", "Pod", "pods", &["po"], true).status().all(),
    row(
        "",
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        &["pvc"],
        true,
    )
    .status(),
    row("", "v1", "Event", "events", &["ev"], true),
    row("", "v1", "Endpoints", "endpoints", &["ep"], true),
    row(
        "",
        "v1",
        "ResourceQuota",
        "resourcequotas",
        &["quota"],
        true,
    )
    .status(),
    row("", "v1", "LimitRange", "limitranges", &["limits"], true),
    row(
        "",
        "v1",
        "PersistentVolume",
        "persistentvolumes",
        &["pv"],
        false,
    )
    .status(),
    row("apps", "v1", "Deployment", "deployments", &["deploy"], true)
        .status()
        .scale()
        .generation()
        .all(),
    row("apps", "v1", "StatefulSet", "statefulsets", &["sts"], true)
        .status()
        .scale()
        .generation()
        .all(),
    row("apps", "v1", "DaemonSet", "daemonsets", &["ds"], true)
        .status()
        .generation()
        .all(),
    row("apps", "v1", "ReplicaSet", "replicasets", &["rs"], true)
        .status()
        .scale()
        .generation()
        .all(),
    row("batch", "v1", "Job", "jobs", &[], true)
        .status()
        .generation()
        .all(),
    row("batch", "v1", "CronJob", "cronjobs", &["cj"], true)
        .status()
        .generation()
        .all(),
    row(
        "rbac.authorization.k8s.io",
        "v1",
        "Role",
        "roles",
        &[],
        true,
    )
    .names(NameRule::PathSegment),
    row(
        "rbac.authorization.k8s.io",
        "v1",
        "RoleBinding",
        "rolebindings",
        &[],
        true,
    )
    .names(NameRule::PathSegment),
    row(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRole",
        "clusterroles",
        &[],
        false,
    )
    .names(NameRule::PathSegment),
    row(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        &[],
        false,
    )
    .names(NameRule::PathSegment),
    row(
        "networking.k8s.io",
        "v1",
        "Ingress",
        "ingresses",
        &["ing"],
        true,
    )
    .status()
    .generation(),
    row(
        "networking.k8s.io",
        "v1",
        "NetworkPolicy",
        "networkpolicies",
        &["netpol"],
        true,
    )
    .generation(),
    row(
        "policy",
        "v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        &["pdb"],
        true,
    )
    .status()
    .generation(),
    row(
        "autoscaling",
        "v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        &["hpa"],
        true,
    )
    .status()
    .generation()
    .all(),
    // Also served at v1 (converted; see `convert`), as the real server does.
    row(
        "autoscaling",
        "v1",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        &["hpa"],
        true,
    )
    .status()
    .generation(),
    row("coordination.k8s.io", "v1", "Lease", "leases", &[], true),
    row(
        "networking.k8s.io",
        "v1",
        "IngressClass",
        "ingressclasses",
        &[],
        false,
    )
    .generation(),
    row(
        "apiregistration.k8s.io",
        "v1",
        "APIService",
        "apiservices",
        &[],
        false,
    )
    .status()
    .generation(),
    row(
        "storage.k8s.io",
        "v1",
        "StorageClass",
        "storageclasses",
        &["sc"],
        false,
    ),
    row(
        "scheduling.k8s.io",
        "v1",
        "PriorityClass",
        "priorityclasses",
        &["pc"],
        false,
    ),
    row(
        "admissionregistration.k8s.io",
        "v1",
        "ValidatingWebhookConfiguration",
        "validatingwebhookconfigurations",
        &[],
        false,
    )
    .generation(),
    row(
        "admissionregistration.k8s.io",
        "v1",
        "MutatingWebhookConfiguration",
        "mutatingwebhookconfigurations",
        &[],
        false,
    )
    .generation(),
    row(
        "discovery.k8s.io",
        "v1",
        "EndpointSlice",
        "endpointslices",
        &[],
        true,
    ),
    row(
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        &["crd", "crds"],
        false,
    )
    .status()
    .generation(),
];

fn builtin_types() -> Vec<Arc<ResourceType>> {
    BUILTINS
        .iter()
        .map(|r| {
            let mut verbs: Vec<String> = STANDARD_VERBS.iter().map(|v| v.to_string()).collect();
            if r.plural == "namespaces" {
                verbs.retain(|v| v != "deletecollection");
            }
            Arc::new(ResourceType {
                group: r.group.into(),
                version: r.version.into(),
                kind: r.kind.into(),
                plural: r.plural.into(),
                singular: r.kind.to_lowercase(),
                short_names: r.short.iter().map(|s| s.to_string()).collect(),
                categories: r.categories.iter().map(|s| s.to_string()).collect(),
                namespaced: r.namespaced,
                verbs,
                status: r.status,
                scale: r.scale,
                generation: r.generation,
                name_rule: r.name_rule,
                crd: None,
            })
        })
        .collect()
}

/// Every resource type currently served: built-ins plus those of established
/// CRDs.
#[derive(Debug, Clone)]
pub struct Registry {
    builtins: Vec<Arc<ResourceType>>,
    /// CRD name → its served versions (storage version first).
    crds: BTreeMap<String, Vec<Arc<ResourceType>>>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            builtins: builtin_types(),
            crds: BTreeMap::new(),
        }
    }
}

impl Registry {
    /// All served types, built-ins first, in a stable order.
    pub fn all(&self) -> impl Iterator<Item = &Arc<ResourceType>> {
        self.builtins.iter().chain(self.crds.values().flatten())
    }

    /// The type served at `group/version/plural`.
    pub fn lookup(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceType>> {
        self.all()
            .find(|r| r.group == group && r.version == version && r.plural == plural)
            .cloned()
    }

    /// Whether anything is served at `group/version`.
    pub fn serves_group_version(&self, group: &str, version: &str) -> bool {
        self.all().any(|r| r.group == group && r.version == version)
    }

    /// Groups (excluding core) with their versions, preferred first, in
    /// discovery order: built-in groups first, then CRD groups by name.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for r in self.all() {
            if r.group.is_empty() {
                continue;
            }
            match out.iter_mut().find(|(g, _)| *g == r.group) {
                Some((_, versions)) => {
                    if !versions.contains(&r.version) {
                        versions.push(r.version.clone());
                    }
                }
                None => out.push((r.group.clone(), vec![r.version.clone()])),
            }
        }
        out
    }

    /// Types served at one group-version.
    pub fn in_group_version(&self, group: &str, version: &str) -> Vec<Arc<ResourceType>> {
        self.all()
            .filter(|r| r.group == group && r.version == version)
            .cloned()
            .collect()
    }

    /// The storage-version type of a group/resource, for in-process access
    /// and garbage collection.
    pub fn by_group_resource(&self, gr: &GroupResource) -> Option<Arc<ResourceType>> {
        self.all()
            .find(|r| r.group == gr.group && r.plural == gr.resource)
            .cloned()
    }

    /// The type for an `apiVersion` + `kind` pair.
    pub fn by_kind(&self, api_version: &str, kind: &str) -> Option<Arc<ResourceType>> {
        self.all()
            .find(|r| r.api_version() == api_version && r.kind == kind)
            .cloned()
    }

    /// Start serving the versions of a CRD (replacing what it served before).
    pub fn set_crd(&mut self, name: &str, types: Vec<Arc<ResourceType>>) {
        self.crds.insert(name.to_string(), types);
    }

    /// Stop serving a CRD; returns what it served.
    pub fn remove_crd(&mut self, name: &str) -> Vec<Arc<ResourceType>> {
        self.crds.remove(name).unwrap_or_default()
    }

    /// Whether `gr` is served by a CRD other than `crd_name` or by a built-in.
    pub fn name_taken(&self, gr: &GroupResource, crd_name: &str) -> bool {
        self.builtins.iter().any(|r| r.group_resource() == *gr)
            || self
                .crds
                .iter()
                .any(|(n, ts)| n != crd_name && ts.iter().any(|r| r.group_resource() == *gr))
    }
}

/// The types a CRD object (`apiextensions.k8s.io/v1`) serves, storage version
/// first; `None` when the spec lacks what is needed.
pub fn types_from_crd(crd: &Value) -> Option<Vec<Arc<ResourceType>>> {
    let name = crd.pointer("/metadata/name")?.as_str()?;
    let spec = crd.get("spec")?;
    let group = spec.get("group")?.as_str()?;
    let names = spec.get("names")?;
    let kind = names.get("kind")?.as_str()?;
    let plural = names.get("plural")?.as_str()?;
    let singular = names
        .get("singular")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| kind.to_lowercase());
    let strings = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let short_names = strings(names.get("shortNames"));
    let categories = strings(names.get("categories"));
    let namespaced = spec.get("scope").and_then(Value::as_str) != Some("Cluster");
    let mut out = Vec::new();
    for v in spec.get("versions")?.as_array()? {
        if v.get("served").and_then(Value::as_bool) == Some(false) {
            continue;
        }
        let version = v.get("name")?.as_str()?;
        let subs = v.get("subresources");
        let t = Arc::new(ResourceType {
            group: group.into(),
            version: version.into(),
            kind: kind.into(),
            plural: plural.into(),
            singular: singular.clone(),
            short_names: short_names.clone(),
            categories: categories.clone(),
            namespaced,
            verbs: STANDARD_VERBS.iter().map(|s| s.to_string()).collect(),
            status: subs.and_then(|s| s.get("status")).is_some(),
            scale: subs.and_then(|s| s.get("scale")).is_some(),
            generation: true,
            name_rule: NameRule::Subdomain,
            crd: Some(name.into()),
        });
        if v.get("storage").and_then(Value::as_bool) == Some(true) {
            out.insert(0, t);
        } else {
            out.push(t);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_and_groups() {
        let r = Registry::default();
        let d = r.lookup("apps", "v1", "deployments").expect("deployments");
        assert!(d.scale && d.status && d.namespaced);
        assert_eq!(d.definition_name(), "io.k8s.api.apps.v1.Deployment");
        assert!(r.lookup("", "v1", "deployments").is_none());
        assert!(r
            .groups()
            .iter()
            .any(|(g, v)| g == "autoscaling" && v == &["v2", "v1"]));
    }

    #[test]
    fn crd_types() {
        let crd = serde_json::json!({
            "metadata": {"name": "widgets.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced",
                "names": {"kind": "Widget", "plural": "widgets"},
                "versions": [{"name": "v1beta1", "served": true, "storage": false},
                             {"name": "v1", "served": true, "storage": true, "subresources": {"status": {}}}]}
        });
        let t = types_from_crd(&crd).expect("types");
        assert_eq!(t[0].version, "v1");
        assert!(t[0].status);
        assert_eq!(t[0].singular, "widget");
        assert_eq!(t[0].definition_name(), "com.example.v1.Widget");
    }
}
