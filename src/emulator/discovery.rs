//! Discovery documents built from the resource registry: `/version`, the
//! legacy `/api`, `/api/v1`, `/apis`, `/apis/{group}`, `/apis/{group}/{version}`
//! and the aggregated `apidiscovery.k8s.io/v2` lists that kubectl and kube-rs
//! ask for with their Accept header.

use serde_json::{json, Value};

use super::resources::{Registry, ResourceType};

/// The content type of an aggregated discovery response.
pub const AGGREGATED_V2: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";
const AGGREGATED_V2BETA1: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList";

/// Which aggregated format an Accept header asks for, if any (v2 preferred).
pub fn wants_aggregated(accept: &str) -> Option<&'static str> {
    let norm: String = accept.chars().filter(|c| !c.is_whitespace()).collect();
    let offers: Vec<&str> = norm.split(',').collect();
    let has = |g: &str, v: &str| {
        offers.iter().any(|o| {
            let params: Vec<&str> = o.split(';').collect();
            params.contains(&"as=APIGroupDiscoveryList")
                && params.contains(&g)
                && params.contains(&v)
        })
    };
    if has("g=apidiscovery.k8s.io", "v=v2") {
        Some(AGGREGATED_V2)
    } else if has("g=apidiscovery.k8s.io", "v=v2beta1") {
        Some(AGGREGATED_V2BETA1)
    } else {
        None
    }
}

/// `/version`.
pub fn version(git_version: &str) -> Value {
    let trimmed = git_version.trim_start_matches('v');
    let mut parts = trimmed.split('.');
    let major = parts.next().unwrap_or("1");
    let minor = parts.next().unwrap_or("0");
    json!({
        "major": major,
        "minor": minor,
        "gitVersion": git_version,
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z",
        "goVersion": "go1.23.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

/// `/api` (legacy).
pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

fn group_entry(group: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    json!({
        "name": group,
        "versions": vs,
        "preferredVersion": vs.first().cloned().unwrap_or(json!({})),
    })
}

/// `/apis` (legacy).
pub fn group_list(reg: &Registry) -> Value {
    let groups: Vec<Value> = reg
        .groups()
        .iter()
        .map(|(g, vs)| group_entry(g, vs))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/{group}` (legacy).
pub fn group(reg: &Registry, name: &str) -> Option<Value> {
    let groups = reg.groups();
    let (g, vs) = groups.iter().find(|(g, _)| g == name)?;
    let mut v = group_entry(g, vs);
    let m = v.as_object_mut()?;
    m.insert("kind".into(), json!("APIGroup"));
    m.insert("apiVersion".into(), json!("v1"));
    Some(v)
}

fn sub_verbs() -> Value {
    json!(["get", "patch", "update"])
}

/// `/api/v1` or `/apis/{group}/{version}` (legacy).
pub fn resource_list(reg: &Registry, group: &str, version: &str) -> Option<Value> {
    let types = reg.in_group_version(group, version);
    if types.is_empty() {
        return None;
    }
    let mut resources = Vec::new();
    for t in &types {
        let mut r = json!({
            "name": t.plural,
            "singularName": t.singular,
            "namespaced": t.namespaced,
            "kind": t.kind,
            "verbs": t.verbs,
        });
        if !t.short_names.is_empty() {
            r["shortNames"] = json!(t.short_names);
        }
        if !t.categories.is_empty() {
            r["categories"] = json!(t.categories);
        }
        resources.push(r);
        if t.status {
            resources.push(
                json!({"name": format!("{}/status", t.plural), "singularName": "",
                "namespaced": t.namespaced, "kind": t.kind, "verbs": sub_verbs()}),
            );
        }
        if t.scale {
            resources.push(
                json!({"name": format!("{}/scale", t.plural), "singularName": "",
                "namespaced": t.namespaced, "group": "autoscaling", "version": "v1",
                "kind": "Scale", "verbs": sub_verbs()}),
            );
        }
    }
    let gv = types[0].api_version();
    let mut out = json!({"kind": "APIResourceList", "groupVersion": gv, "resources": resources});
    if !group.is_empty() {
        out["apiVersion"] = json!("v1");
    }
    Some(out)
}

fn aggregated_resource(t: &ResourceType) -> Value {
    let gvk = json!({"group": t.group, "version": t.version, "kind": t.kind});
    let mut subs = Vec::new();
    if t.status {
        subs.push(json!({"subresource": "status", "responseKind": gvk, "verbs": sub_verbs()}));
    }
    if t.scale {
        subs.push(json!({"subresource": "scale",
            "responseKind": {"group": "autoscaling", "version": "v1", "kind": "Scale"},
            "verbs": sub_verbs()}));
    }
    let mut r = json!({
        "resource": t.plural,
        "responseKind": gvk,
        "scope": if t.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": t.singular,
        "verbs": t.verbs,
    });
    if !t.short_names.is_empty() {
        r["shortNames"] = json!(t.short_names);
    }
    if !t.categories.is_empty() {
        r["categories"] = json!(t.categories);
    }
    if !subs.is_empty() {
        r["subresources"] = Value::Array(subs);
    }
    r
}

fn aggregated_group(reg: &Registry, group: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| {
            let rs: Vec<Value> = reg
                .in_group_version(group, v)
                .iter()
                .map(|t| aggregated_resource(t))
                .collect();
            json!({"version": v, "resources": rs, "freshness": "Current"})
        })
        .collect();
    let meta = if group.is_empty() {
        json!({"creationTimestamp": null})
    } else {
        json!({"name": group, "creationTimestamp": null})
    };
    json!({"metadata": meta, "versions": vs})
}

/// Aggregated discovery for `/api` (`core == true`) or `/apis`, in the
/// requested `content_type`'s version.
pub fn aggregated(reg: &Registry, core: bool, content_type: &str) -> Value {
    let items: Vec<Value> = if core {
        vec![aggregated_group(reg, "", &["v1".to_string()])]
    } else {
        reg.groups()
            .iter()
            .map(|(g, vs)| aggregated_group(reg, g, vs))
            .collect()
    };
    let version = if content_type == AGGREGATED_V2 {
        "apidiscovery.k8s.io/v2"
    } else {
        "apidiscovery.k8s.io/v2beta1"
    };
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": version, "metadata": {}, "items": items})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_negotiation() {
        let kubectl = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(wants_aggregated(kubectl), Some(AGGREGATED_V2));
        assert_eq!(wants_aggregated("application/json"), None);
    }

    #[test]
    fn documents() {
        let reg = Registry::default();
        let core = resource_list(&reg, "", "v1").expect("core");
        assert!(core["resources"]
            .as_array()
            .expect("array")
            .iter()
            .any(|r| r["name"] == "pods/status"));
        let apps = aggregated(&reg, false, AGGREGATED_V2);
        let items = apps["items"].as_array().expect("items");
        assert!(items.iter().any(|i| i["metadata"]["name"] == "apps"));
        assert!(group(&reg, "batch").is_some());
    }
}
