//! Cached discovery: group/version/kind → [`Resolved`] (the REST resource,
//! whether it is namespaced, whether it has a `status` subresource).
//!
//! The cache is filled one group-version at a time (`GET /apis/g/v` or
//! `/api/v1`), on demand: resolving a kind whose group-version is not cached,
//! or is cached without that kind, fetches that one group-version again
//! (at most once per call) before reporting the kind unknown. A CRD apply
//! therefore needs no full refresh; [`DiscoveryCache::invalidate`] is there
//! for callers that know the served set changed (after a CRD is applied or
//! deleted) and drops everything.
//!
//! This module parses; the fetching is done by the client (`mod.rs`) so it
//! goes through the same retry loop and statistics as every other request.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::APIResourceList;
use kube::core::ApiResource;
use parking_lot::RwLock;

/// What the server serves for one kind.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    /// Group, version, kind and plural (the URL segment).
    pub api_resource: ApiResource,
    /// Namespaced (`true`) or cluster-scoped.
    pub namespaced: bool,
    /// Whether `<plural>/status` is served (status writes go there).
    pub status_subresource: bool,
}

impl Resolved {
    /// The collection path: `/apis/apps/v1/namespaces/ns/deployments`,
    /// `/api/v1/namespaces`. `namespace` is ignored for cluster-scoped kinds.
    pub fn collection_path(&self, namespace: Option<&str>) -> String {
        let ar = &self.api_resource;
        let base = if ar.group.is_empty() {
            format!("/api/{}", ar.version)
        } else {
            format!("/apis/{}/{}", ar.group, ar.version)
        };
        match namespace.filter(|_| self.namespaced) {
            Some(ns) => format!("{base}/namespaces/{ns}/{}", ar.plural),
            None => format!("{base}/{}", ar.plural),
        }
    }
}

/// Kinds of one group-version, by kind name.
pub(crate) type GroupVersionKinds = HashMap<String, Resolved>;

/// The cache (see the module docs). Cheap to share; never holds a lock across
/// a request.
#[derive(Debug, Default)]
pub(crate) struct DiscoveryCache {
    by_group_version: RwLock<HashMap<String, Arc<GroupVersionKinds>>>,
}

impl DiscoveryCache {
    /// The cached entry for `api_version`/`kind`, if any.
    pub(crate) fn lookup(&self, api_version: &str, kind: &str) -> Option<Resolved> {
        self.by_group_version
            .read()
            .get(api_version)
            .and_then(|kinds| kinds.get(kind))
            .cloned()
    }

    /// Stores a freshly fetched group-version (an empty map records that the
    /// group-version is not served at all).
    pub(crate) fn store(&self, api_version: &str, kinds: GroupVersionKinds) {
        self.by_group_version
            .write()
            .insert(api_version.to_string(), Arc::new(kinds));
    }

    /// Forgets everything.
    pub(crate) fn invalidate(&self) {
        self.by_group_version.write().clear();
    }
}

/// The kinds an `APIResourceList` for `group`/`version` serves. Subresources
/// (`deployments/status`) only set `status_subresource` on their parent.
pub(crate) fn parse_resource_list(
    group: &str,
    version: &str,
    list: &APIResourceList,
) -> GroupVersionKinds {
    let api_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    let mut kinds = GroupVersionKinds::new();
    let mut with_status = Vec::new();
    for r in &list.resources {
        if let Some((parent, sub)) = r.name.split_once('/') {
            if sub == "status" {
                with_status.push(parent.to_string());
            }
            continue;
        }
        if r.kind.is_empty() || kinds.contains_key(&r.kind) {
            continue;
        }
        kinds.insert(
            r.kind.clone(),
            Resolved {
                api_resource: ApiResource {
                    group: group.to_string(),
                    version: version.to_string(),
                    api_version: api_version.clone(),
                    kind: r.kind.clone(),
                    plural: r.name.clone(),
                },
                namespaced: r.namespaced,
                status_subresource: false,
            },
        );
    }
    for resolved in kinds.values_mut() {
        if with_status.contains(&resolved.api_resource.plural) {
            resolved.status_subresource = true;
        }
    }
    kinds
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn list() -> APIResourceList {
        serde_json::from_value(json!({
            "groupVersion": "apps/v1",
            "resources": [
                {"name": "deployments", "singularName": "deployment", "namespaced": true, "kind": "Deployment", "verbs": ["get"]},
                {"name": "deployments/status", "singularName": "", "namespaced": true, "kind": "Deployment", "verbs": ["get"]},
                {"name": "deployments/scale", "singularName": "", "namespaced": true, "group": "autoscaling", "version": "v1", "kind": "Scale", "verbs": ["get"]},
                {"name": "controllerrevisions", "singularName": "", "namespaced": true, "kind": "ControllerRevision", "verbs": ["get"]}
            ]
        }))
        .expect("an APIResourceList")
    }

    #[test]
    fn parses_kinds_scope_and_status() {
        let kinds = parse_resource_list("apps", "v1", &list());
        assert_eq!(kinds.len(), 2);
        let d = &kinds["Deployment"];
        assert_eq!(d.api_resource.plural, "deployments");
        assert_eq!(d.api_resource.api_version, "apps/v1");
        assert!(d.namespaced && d.status_subresource);
        assert!(!kinds["ControllerRevision"].status_subresource);
        assert!(!kinds.contains_key("Scale"));
        assert_eq!(
            d.collection_path(Some("shop")),
            "/apis/apps/v1/namespaces/shop/deployments"
        );
    }

    #[test]
    fn cluster_scoped_paths_ignore_namespace() {
        let ns = Resolved {
            api_resource: ApiResource {
                group: String::new(),
                version: "v1".into(),
                api_version: "v1".into(),
                kind: "Namespace".into(),
                plural: "namespaces".into(),
            },
            namespaced: false,
            status_subresource: true,
        };
        assert_eq!(ns.collection_path(Some("x")), "/api/v1/namespaces");
    }

    #[test]
    fn cache_lookup_store_invalidate() {
        let cache = DiscoveryCache::default();
        assert!(cache.lookup("apps/v1", "Deployment").is_none());
        cache.store("apps/v1", parse_resource_list("apps", "v1", &list()));
        assert!(cache.lookup("apps/v1", "Deployment").is_some());
        assert!(cache.lookup("apps/v1", "Nope").is_none());
        cache.invalidate();
        assert!(cache.lookup("apps/v1", "Deployment").is_none());
    }
}
