//! The defaults the real API server's scheme fills into workloads and pod
//! specs (v1.37): rollout strategies, history limits, StatefulSet and Job
//! policies, CronJob limits, and per pod spec the DNS and restart policies,
//! scheduler, grace period, and per container the pull policy, termination
//! message, port protocol and probe timings. Applied on create and update,
//! before field ownership is recorded (the writer owns them, as on the real
//! server). It does not allocate anything (IPs, ports) nor run admission.

use serde_json::{json, Map, Value};

use super::util::{child_mut, obj_mut};

fn default(m: &mut Map<String, Value>, key: &str, v: Value) {
    m.entry(key.to_string()).or_insert(v);
}

/// Workload-level defaults for `(group, plural)`, pod template defaults
/// included.
pub fn apply(group: &str, plural: &str, obj: &mut Value) {
    match (group, plural) {
        ("apps", "deployments") => {
            let spec = child_mut(obj, "spec");
            let strategy = obj_mut(spec.entry("strategy").or_insert_with(|| json!({})));
            default(strategy, "type", json!("RollingUpdate"));
            if strategy.get("type") == Some(&json!("RollingUpdate")) {
                let ru = obj_mut(strategy.entry("rollingUpdate").or_insert_with(|| json!({})));
                default(ru, "maxUnavailable", json!("25%"));
                default(ru, "maxSurge", json!("25%"));
            }
            template(obj, "/spec/template/spec");
        }
        ("apps", "statefulsets") => {
            let spec = child_mut(obj, "spec");
            default(spec, "podManagementPolicy", json!("OrderedReady"));
            default(spec, "revisionHistoryLimit", json!(10));
            let policy = obj_mut(
                spec.entry("persistentVolumeClaimRetentionPolicy")
                    .or_insert_with(|| json!({})),
            );
            default(policy, "whenDeleted", json!("Retain"));
            default(policy, "whenScaled", json!("Retain"));
            let us = obj_mut(spec.entry("updateStrategy").or_insert_with(|| json!({})));
            default(us, "type", json!("RollingUpdate"));
            if us.get("type") == Some(&json!("RollingUpdate")) {
                let ru = obj_mut(us.entry("rollingUpdate").or_insert_with(|| json!({})));
                default(ru, "partition", json!(0));
                default(ru, "maxUnavailable", json!(1));
            }
            template(obj, "/spec/template/spec");
        }
        ("apps", "daemonsets") => {
            let spec = child_mut(obj, "spec");
            default(spec, "revisionHistoryLimit", json!(10));
            let us = obj_mut(spec.entry("updateStrategy").or_insert_with(|| json!({})));
            default(us, "type", json!("RollingUpdate"));
            if us.get("type") == Some(&json!("RollingUpdate")) {
                let ru = obj_mut(us.entry("rollingUpdate").or_insert_with(|| json!({})));
                default(ru, "maxUnavailable", json!(1));
                default(ru, "maxSurge", json!(0));
            }
            template(obj, "/spec/template/spec");
        }
        ("apps", "replicasets") => template(obj, "/spec/template/spec"),
        ("batch", "jobs") => {
            let spec = child_mut(obj, "spec");
            default(spec, "completionMode", json!("NonIndexed"));
            default(spec, "manualSelector", json!(false));
            default(spec, "suspend", json!(false));
            default(spec, "podReplacementPolicy", json!("TerminatingOrFailed"));
            template(obj, "/spec/template/spec");
        }
        ("batch", "cronjobs") => {
            let spec = child_mut(obj, "spec");
            default(spec, "concurrencyPolicy", json!("Allow"));
            default(spec, "suspend", json!(false));
            default(spec, "successfulJobsHistoryLimit", json!(3));
            default(spec, "failedJobsHistoryLimit", json!(1));
            if let Some(jt) = spec.get_mut("jobTemplate").and_then(Value::as_object_mut) {
                default(jt, "metadata", json!({}));
                if let Some(t) = jt
                    .get_mut("spec")
                    .and_then(|s| s.get_mut("template"))
                    .and_then(Value::as_object_mut)
                {
                    default(t, "metadata", json!({}));
                }
            }
            template(obj, "/spec/jobTemplate/spec/template/spec");
        }
        ("", "pods") => template(obj, "/spec"),
        _ => {}
    }
}

/// The pod spec at `ptr`, if there is one, defaulted.
fn template(obj: &mut Value, ptr: &str) {
    if let Some(spec) = obj.pointer_mut(ptr).and_then(Value::as_object_mut) {
        pod_spec(spec);
    }
}

fn pod_spec(spec: &mut Map<String, Value>) {
    default(spec, "restartPolicy", json!("Always"));
    default(spec, "terminationGracePeriodSeconds", json!(30));
    default(spec, "dnsPolicy", json!("ClusterFirst"));
    default(spec, "securityContext", json!({}));
    default(spec, "schedulerName", json!("default-scheduler"));
    for key in ["containers", "initContainers"] {
        if let Some(Value::Array(cs)) = spec.get_mut(key) {
            for c in cs.iter_mut().filter_map(Value::as_object_mut) {
                container(c);
            }
        }
    }
}

/// `Always` for an untagged or `:latest` image, else `IfNotPresent`.
fn pull_policy(image: &str) -> &'static str {
    if image.contains('@') {
        return "IfNotPresent";
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.split_once(':') {
        Some((_, "latest")) | None => "Always",
        Some(_) => "IfNotPresent",
    }
}

fn container(c: &mut Map<String, Value>) {
    let image = c.get("image").and_then(Value::as_str).unwrap_or_default();
    let policy = pull_policy(image);
    default(c, "imagePullPolicy", json!(policy));
    default(c, "resources", json!({}));
    default(c, "terminationMessagePath", json!("/dev/termination-log"));
    default(c, "terminationMessagePolicy", json!("File"));
    if let Some(Value::Array(ports)) = c.get_mut("ports") {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            default(p, "protocol", json!("TCP"));
        }
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = c.get_mut(probe).and_then(Value::as_object_mut) {
            default(p, "timeoutSeconds", json!(1));
            default(p, "periodSeconds", json!(10));
            default(p, "successThreshold", json!(1));
            default(p, "failureThreshold", json!(3));
            if let Some(h) = p.get_mut("httpGet").and_then(Value::as_object_mut) {
                default(h, "scheme", json!("HTTP"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_defaults_match_the_server() {
        let mut d = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "a", "image": "nginx:1.25", "ports": [{"containerPort": 80}]},
            {"name": "b", "image": "busybox"}]}}}});
        apply("apps", "deployments", &mut d);
        assert_eq!(
            d["spec"]["strategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
        );
        let c = &d["spec"]["template"]["spec"]["containers"];
        assert_eq!(c[0]["imagePullPolicy"], "IfNotPresent");
        assert_eq!(c[1]["imagePullPolicy"], "Always");
        assert_eq!(c[0]["ports"][0]["protocol"], "TCP");
        assert_eq!(d["spec"]["template"]["spec"]["dnsPolicy"], "ClusterFirst");
        let mut r = json!({"spec": {"strategy": {"type": "Recreate"}}});
        apply("apps", "deployments", &mut r);
        assert!(r["spec"]["strategy"].get("rollingUpdate").is_none());
    }

    #[test]
    fn pull_policies() {
        for (image, want) in [
            ("nginx", "Always"),
            ("nginx:latest", "Always"),
            ("nginx:1.25", "IfNotPresent"),
            ("localhost:5000/app", "Always"),
            ("repo/app@sha256:abc", "IfNotPresent"),
        ] {
            assert_eq!(pull_policy(image), want, "{image}");
        }
    }
}
