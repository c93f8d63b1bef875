//! Per-kind server-side behaviour on create and update that clients observe:
//! namespace phase, finalizer and name label; secrets' `stringData`; service
//! cluster IPs and port defaults; workload replica defaults; pod phase; and a
//! CRD's validation and `status` (conditions, accepted names, stored
//! versions). Deliberately small: only what tools read back.

use serde_json::{json, Value};

use super::errors::{ApiError, Cause};
use super::resources::ResourceType;
use super::util::{b64_encode, child_mut, meta_str, obj_mut};
use super::workload_defaults;

const TEMPLATE_GENERATION: &str = "deprecated.daemonset.template.generation";

/// Defaults applied to a new object before it is stored (and before its
/// creator's field ownership is recorded: the creator owns them).
pub fn on_create(rt: &ResourceType, obj: &mut Value) {
    common(rt, obj, None);
    match (rt.group.as_str(), rt.plural.as_str()) {
        ("", "namespaces") => {
            child_mut(obj, "status").insert("phase".into(), json!("Active"));
        }
        ("", "services") => {
            let spec = child_mut(obj, "spec");
            let ty = spec
                .entry("type")
                .or_insert_with(|| json!("ClusterIP"))
                .as_str()
                .unwrap_or("ClusterIP")
                .to_string();
            spec.entry("sessionAffinity")
                .or_insert_with(|| json!("None"));
            if ty != "ExternalName" {
                spec.entry("internalTrafficPolicy")
                    .or_insert_with(|| json!("Cluster"));
            }
            if ty == "LoadBalancer" || ty == "NodePort" {
                spec.entry("externalTrafficPolicy")
                    .or_insert_with(|| json!("Cluster"));
            }
            if ty == "LoadBalancer" {
                spec.entry("allocateLoadBalancerNodePorts")
                    .or_insert_with(|| json!(true));
            }
            child_mut(obj, "status")
                .entry("loadBalancer")
                .or_insert_with(|| json!({}));
        }
        ("apps", "daemonsets") => {
            child_mut(child_mut_value(obj, "metadata"), "annotations")
                .entry(TEMPLATE_GENERATION)
                .or_insert_with(|| json!("1"));
        }
        ("", "pods") => {
            child_mut(obj, "spec")
                .entry("enableServiceLinks")
                .or_insert_with(|| json!(true));
            child_mut(obj, "status")
                .entry("phase")
                .or_insert_with(|| json!("Pending"));
        }
        ("networking.k8s.io", "ingresses") => {
            child_mut(obj, "status")
                .entry("loadBalancer")
                .or_insert_with(|| json!({}));
        }
        ("", "persistentvolumeclaims") => {
            child_mut(obj, "status")
                .entry("phase")
                .or_insert_with(|| json!("Pending"));
        }
        _ => {}
    }
}

/// What the server allocates for a new object after recording its creator's
/// field ownership (so nobody owns it): a Service's cluster IPs, IP
/// families and node ports. `cluster_ip` is the next free service IP.
pub fn allocate(rt: &ResourceType, obj: &mut Value, cluster_ip: impl FnOnce() -> String) {
    match (rt.group.as_str(), rt.plural.as_str()) {
        ("", "services") => allocate_service(obj, cluster_ip),
        ("", "namespaces") => {
            child_mut(obj, "spec")
                .entry("finalizers")
                .or_insert_with(|| json!(["kubernetes"]));
        }
        ("", "pods") => admit_pod(obj),
        ("batch", "jobs") => job_selector(obj),
        _ => {}
    }
}

/// What admission adds to a new pod: the default ServiceAccount, priority,
/// the not-ready/unreachable tolerations (300 s), and generation 1.
fn admit_pod(obj: &mut Value) {
    child_mut(obj, "metadata").insert("generation".into(), json!(1));
    let spec = child_mut(obj, "spec");
    let sa = spec
        .get("serviceAccountName")
        .cloned()
        .unwrap_or_else(|| json!("default"));
    spec.entry("serviceAccountName").or_insert(sa.clone());
    spec.entry("serviceAccount").or_insert(sa);
    spec.entry("priority").or_insert_with(|| json!(0));
    spec.entry("preemptionPolicy")
        .or_insert_with(|| json!("PreemptLowerPriority"));
    let tolerations = spec.entry("tolerations").or_insert_with(|| json!([]));
    if let Some(list) = tolerations.as_array_mut() {
        for key in [
            "node.kubernetes.io/not-ready",
            "node.kubernetes.io/unreachable",
        ] {
            let has = list.iter().any(|t| {
                t.get("key").and_then(Value::as_str) == Some(key)
                    && t.get("effect").and_then(Value::as_str) == Some("NoExecute")
            });
            if !has {
                list.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}));
            }
        }
    }
}

/// A Job's generated selector and pod template labels (unless it selects
/// manually).
fn job_selector(obj: &mut Value) {
    let uid = meta_str(obj, "uid").unwrap_or_default().to_string();
    let name = meta_str(obj, "name").unwrap_or_default().to_string();
    let spec = child_mut(obj, "spec");
    if spec.get("manualSelector") == Some(&json!(true)) || spec.contains_key("selector") {
        return;
    }
    spec.insert(
        "selector".into(),
        json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}),
    );
    let template = obj_mut(spec.entry("template").or_insert_with(|| json!({})));
    let meta = obj_mut(template.entry("metadata").or_insert_with(|| json!({})));
    let labels = obj_mut(meta.entry("labels").or_insert_with(|| json!({})));
    for (k, v) in [
        ("batch.kubernetes.io/controller-uid", &uid),
        ("batch.kubernetes.io/job-name", &name),
        ("controller-uid", &uid),
        ("job-name", &name),
    ] {
        labels.entry(k).or_insert_with(|| json!(v));
    }
}

fn allocate_service(obj: &mut Value, cluster_ip: impl FnOnce() -> String) {
    let seed = meta_str(obj, "uid")
        .unwrap_or_default()
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    let spec = child_mut(obj, "spec");
    let ty = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
        .to_string();
    if ty == "ExternalName" {
        return;
    }
    match spec.get("clusterIP").and_then(Value::as_str) {
        Some(ip) if !ip.is_empty() => {
            let ip = ip.to_string();
            spec.entry("clusterIPs").or_insert_with(|| json!([ip]));
        }
        _ => {
            let ip = cluster_ip();
            spec.insert("clusterIP".into(), json!(ip));
            spec.insert("clusterIPs".into(), json!([ip]));
        }
    }
    spec.entry("ipFamilies").or_insert_with(|| json!(["IPv4"]));
    spec.entry("ipFamilyPolicy")
        .or_insert_with(|| json!("SingleStack"));
    if ty == "LoadBalancer" || ty == "NodePort" {
        if let Some(Value::Array(ports)) = spec.get_mut("ports") {
            for (i, p) in ports.iter_mut().enumerate() {
                if let Some(p) = p.as_object_mut() {
                    let port = 30000 + (seed.wrapping_add(i as u32) % 2768);
                    p.entry("nodePort").or_insert_with(|| json!(port));
                }
            }
        }
    }
}

/// Defaults applied on every update, after the client's changes.
pub fn on_update(rt: &ResourceType, old: &Value, obj: &mut Value) {
    common(rt, obj, Some(old));
    if rt.group == "apps" && rt.plural == "daemonsets" {
        // The DaemonSet's template generation counts template changes.
        let prev = old
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(TEMPLATE_GENERATION))
            .and_then(Value::as_str)
            .and_then(|g| g.parse::<u64>().ok());
        if let Some(prev) = prev {
            let next = if old.pointer("/spec/template") != obj.pointer("/spec/template") {
                prev + 1
            } else {
                prev
            };
            child_mut(child_mut_value(obj, "metadata"), "annotations")
                .entry(TEMPLATE_GENERATION)
                .or_insert_with(|| json!(next.to_string()));
        }
    }
    if rt.group.is_empty() && rt.plural == "services" {
        // clusterIP is allocated once and immutable; an update omitting it keeps it.
        for key in ["clusterIP", "clusterIPs"] {
            if let Some(v) = old.pointer(&format!("/spec/{key}")) {
                child_mut(obj, "spec")
                    .entry(key)
                    .or_insert_with(|| v.clone());
            }
        }
    }
}

fn common(rt: &ResourceType, obj: &mut Value, _old: Option<&Value>) {
    match (rt.group.as_str(), rt.plural.as_str()) {
        ("", "namespaces") => {
            let name = meta_str(obj, "name").unwrap_or_default().to_string();
            child_mut(child_mut_value(obj, "metadata"), "labels")
                .insert("kubernetes.io/metadata.name".into(), json!(name));
        }
        ("", "secrets") => {
            let m = obj_mut(obj);
            if let Some(Value::Object(string_data)) = m.remove("stringData") {
                let data = m.entry("data").or_insert_with(|| json!({}));
                let data = obj_mut(data);
                for (k, v) in string_data {
                    let s = match v {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    data.insert(k, json!(b64_encode(s.as_bytes())));
                }
            }
            m.entry("type").or_insert_with(|| json!("Opaque"));
        }
        ("", "services") => {
            if let Some(ports) = obj.pointer_mut("/spec/ports").and_then(Value::as_array_mut) {
                for p in ports.iter_mut().filter(|p| p.is_object()) {
                    let port = p.get("port").cloned();
                    let pm = obj_mut(p);
                    pm.entry("protocol").or_insert_with(|| json!("TCP"));
                    if let Some(port) = port {
                        pm.entry("targetPort").or_insert(port);
                    }
                }
            }
        }
        ("apps", "deployments" | "statefulsets" | "replicasets") => {
            child_mut(obj, "spec")
                .entry("replicas")
                .or_insert_with(|| json!(1));
            if rt.plural == "deployments" {
                let spec = child_mut(obj, "spec");
                spec.entry("revisionHistoryLimit")
                    .or_insert_with(|| json!(10));
                spec.entry("progressDeadlineSeconds")
                    .or_insert_with(|| json!(600));
            }
        }
        ("batch", "jobs") => {
            let spec = child_mut(obj, "spec");
            spec.entry("completions").or_insert_with(|| json!(1));
            spec.entry("parallelism").or_insert_with(|| json!(1));
            spec.entry("backoffLimit").or_insert_with(|| json!(6));
        }
        ("", "persistentvolumeclaims") => {
            child_mut(obj, "spec")
                .entry("volumeMode")
                .or_insert_with(|| json!("Filesystem"));
        }
        _ => {}
    }
    workload_defaults::apply(&rt.group, &rt.plural, obj);
}

fn child_mut_value<'a>(v: &'a mut Value, key: &str) -> &'a mut Value {
    let m = obj_mut(v);
    let e = m
        .entry(key.to_string())
        .or_insert_with(|| Value::Object(Default::default()));
    if !e.is_object() {
        *e = json!({});
    }
    e
}

/// Validates a CustomResourceDefinition the way the real server does for the
/// fields the emulator relies on.
pub fn validate_crd(crd: &Value) -> Result<(), ApiError> {
    let name = meta_str(crd, "name").unwrap_or_default();
    let mut causes = Vec::new();
    let group = crd.pointer("/spec/group").and_then(Value::as_str);
    let plural = crd.pointer("/spec/names/plural").and_then(Value::as_str);
    let kind = crd.pointer("/spec/names/kind").and_then(Value::as_str);
    let required = |field: &str| Cause {
        reason: "FieldValueRequired".into(),
        message: "Required value".into(),
        field: field.into(),
    };
    if group.is_none_or(str::is_empty) {
        causes.push(required("spec.group"));
    }
    if plural.is_none_or(str::is_empty) {
        causes.push(required("spec.names.plural"));
    }
    if kind.is_none_or(str::is_empty) {
        causes.push(required("spec.names.kind"));
    }
    if let (Some(g), Some(p)) = (group, plural) {
        if name != format!("{p}.{g}") {
            causes.push(Cause {
                reason: "FieldValueInvalid".into(),
                message: format!(
                    "Invalid value: {name:?}: must be spec.names.plural+\".\"+spec.group"
                ),
                field: "metadata.name".into(),
            });
        }
    }
    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if versions.is_empty() {
        causes.push(Cause {
            reason: "FieldValueInvalid".into(),
            message:
                "Invalid value: \"null\": must have exactly one version marked as storage version"
                    .into(),
            field: "spec.versions".into(),
        });
    } else {
        let storage = versions
            .iter()
            .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
            .count();
        if storage != 1 {
            causes.push(Cause {
                reason: "FieldValueInvalid".into(),
                message: format!(
                    "Invalid value: {:?}: must have exactly one version marked as storage version",
                    serde_json::to_string(&versions).unwrap_or_default()
                ),
                field: "spec.versions".into(),
            });
        }
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "apiextensions.k8s.io",
            "CustomResourceDefinition",
            name,
            causes,
        ))
    }
}

/// Sets a served CRD's status: names accepted, established, stored versions.
pub fn establish_crd(crd: &mut Value, now: &str) {
    let names = crd.pointer("/spec/names").cloned().unwrap_or(json!({}));
    let mut accepted = names.clone();
    let kind = names
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    {
        let a = obj_mut(&mut accepted);
        a.entry("singular")
            .or_insert_with(|| json!(kind.to_lowercase()));
        a.entry("listKind")
            .or_insert_with(|| json!(format!("{kind}List")));
    }
    let storage: Vec<Value> = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .map(|vs| {
            vs.iter()
                .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
                .filter_map(|v| v.get("name").cloned())
                .collect()
        })
        .unwrap_or_default();
    let old_status = crd.get("status").cloned().unwrap_or(json!({}));
    let mut stored: Vec<Value> = old_status
        .get("storedVersions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for v in storage {
        if !stored.contains(&v) {
            stored.push(v);
        }
    }
    let cond = |ty: &str, reason: &str, message: &str| {
        let since = old_status
            .get("conditions")
            .and_then(Value::as_array)
            .and_then(|cs| cs.iter().find(|c| c.get("type") == Some(&json!(ty))))
            .and_then(|c| c.get("lastTransitionTime").cloned())
            .unwrap_or_else(|| json!(now));
        json!({"type": ty, "status": "True", "lastTransitionTime": since, "reason": reason, "message": message})
    };
    let status = json!({
        "conditions": [
            cond("NamesAccepted", "NoConflicts", "no conflicts found"),
            cond("Established", "InitialNamesAccepted", "the initial names have been accepted"),
        ],
        "acceptedNames": accepted,
        "storedVersions": stored,
    });
    obj_mut(crd).insert("status".into(), status);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulator::resources::Registry;

    #[test]
    fn secret_string_data() {
        let reg = Registry::default();
        let rt = reg.lookup("", "v1", "secrets").expect("secrets");
        let mut s = json!({"metadata": {"name": "s"}, "stringData": {"k": "hi"}});
        on_create(&rt, &mut s);
        assert_eq!(s["data"]["k"], "aGk=");
        assert_eq!(s["type"], "Opaque");
        assert!(s.get("stringData").is_none());
    }

    #[test]
    fn service_allocation_is_separate_from_defaults() {
        let reg = Registry::default();
        let rt = reg.lookup("", "v1", "services").expect("services");
        let mut s = json!({"metadata": {"name": "s", "uid": "u"},
            "spec": {"type": "LoadBalancer", "ports": [{"port": 443}]}});
        on_create(&rt, &mut s);
        assert!(s["spec"].get("clusterIP").is_none());
        assert_eq!(s["spec"]["allocateLoadBalancerNodePorts"], true);
        allocate(&rt, &mut s, || "10.96.0.9".into());
        assert_eq!(s["spec"]["clusterIPs"], json!(["10.96.0.9"]));
        assert!(s["spec"]["ports"][0]["nodePort"].is_u64());
        let mut headless = json!({"metadata": {"name": "h"}, "spec": {"clusterIP": "None"}});
        allocate(&rt, &mut headless, || unreachable!());
        assert_eq!(headless["spec"]["clusterIPs"], json!(["None"]));
    }

    #[test]
    fn crd_checks() {
        let crd = json!({"metadata": {"name": "wrong"}, "spec": {"group": "example.com",
            "names": {"kind": "Widget", "plural": "widgets"},
            "versions": [{"name": "v1", "served": true, "storage": true}]}});
        let e = validate_crd(&crd).expect_err("bad name");
        assert_eq!(e.code, 422);
        let mut ok = crd.clone();
        ok["metadata"]["name"] = json!("widgets.example.com");
        assert!(validate_crd(&ok).is_ok());
        establish_crd(&mut ok, "2024-01-01T00:00:00Z");
        assert_eq!(ok["status"]["acceptedNames"]["listKind"], "WidgetList");
        assert_eq!(ok["status"]["conditions"][1]["type"], "Established");
    }
}
