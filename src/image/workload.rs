//! Workloads as image sync reads and writes them, pure: which kinds carry a
//! pod template and where (Deployment, DaemonSet, StatefulSet:
//! `spec.template`; CronJob: `spec.jobTemplate.spec.template`), their
//! containers and init containers, whether a pod belongs to a workload
//! (label selector), which field managers own a container's `image`
//! (`managedFields`), the minimal server-side apply patch of a pin, and
//! [`adopt_pins`] — the rule by which kubesync's own sync keeps a pin image
//! sync wrote. No IO.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{json, Map, Value};

use super::reference::is_pin_of;

/// The pod-template annotation `--restart` sets (as `kubectl rollout
/// restart` sets `kubectl.kubernetes.io/restartedAt`).
pub const RESTART_ANNOTATION: &str = "kubesync.dev/image-sync-restartedAt";

/// A kind image sync checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum WorkloadKind {
    Deployment,
    DaemonSet,
    StatefulSet,
    CronJob,
}

impl WorkloadKind {
    pub const ALL: [WorkloadKind; 4] = [
        WorkloadKind::Deployment,
        WorkloadKind::DaemonSet,
        WorkloadKind::StatefulSet,
        WorkloadKind::CronJob,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::DaemonSet => "DaemonSet",
            WorkloadKind::StatefulSet => "StatefulSet",
            WorkloadKind::CronJob => "CronJob",
        }
    }

    pub fn from_kind(group: &str, kind: &str) -> Option<WorkloadKind> {
        match (group, kind) {
            ("apps", "Deployment") => Some(WorkloadKind::Deployment),
            ("apps", "DaemonSet") => Some(WorkloadKind::DaemonSet),
            ("apps", "StatefulSet") => Some(WorkloadKind::StatefulSet),
            ("batch", "CronJob") => Some(WorkloadKind::CronJob),
            _ => None,
        }
    }

    pub fn api_version(self) -> &'static str {
        match self {
            WorkloadKind::CronJob => "batch/v1",
            _ => "apps/v1",
        }
    }

    pub fn group(self) -> &'static str {
        match self {
            WorkloadKind::CronJob => "batch",
            _ => "apps",
        }
    }

    /// The path of the pod template (`spec`, `template` for most kinds).
    pub fn template_path(self) -> &'static [&'static str] {
        match self {
            WorkloadKind::CronJob => &["spec", "jobTemplate", "spec", "template"],
            _ => &["spec", "template"],
        }
    }
}

impl fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `containers` or `initContainers`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum ContainerList {
    #[serde(rename = "initContainers")]
    Init,
    #[serde(rename = "containers")]
    Main,
}

impl ContainerList {
    pub const ALL: [ContainerList; 2] = [ContainerList::Init, ContainerList::Main];

    pub fn field(self) -> &'static str {
        match self {
            ContainerList::Init => "initContainers",
            ContainerList::Main => "containers",
        }
    }

    /// The pod status list of this kind of container.
    pub fn status_field(self) -> &'static str {
        match self {
            ContainerList::Init => "initContainerStatuses",
            ContainerList::Main => "containerStatuses",
        }
    }
}

/// One container of a pod template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateContainer {
    pub list: ContainerList,
    pub name: String,
    pub image: String,
}

fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |cur, k| cur.get(*k))
}

/// The pod template of a workload.
pub fn template(kind: WorkloadKind, obj: &Value) -> Option<&Value> {
    at(obj, kind.template_path())
}

/// Every container of the workload's pod template, init containers first.
/// A container without a string name or image is skipped (the API server
/// would not have stored it).
pub fn containers(kind: WorkloadKind, obj: &Value) -> Vec<TemplateContainer> {
    let Some(spec) = template(kind, obj).and_then(|t| t.get("spec")) else {
        return Vec::new();
    };
    pod_spec_containers(spec)
}

/// The containers of a pod spec, init containers first.
pub fn pod_spec_containers(spec: &Value) -> Vec<TemplateContainer> {
    let mut out = Vec::new();
    for list in ContainerList::ALL {
        for c in spec
            .get(list.field())
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let (Some(name), Some(image)) = (
                c.get("name").and_then(Value::as_str),
                c.get("image").and_then(Value::as_str),
            ) {
                out.push(TemplateContainer {
                    list,
                    name: name.to_string(),
                    image: image.to_string(),
                });
            }
        }
    }
    out
}

/// The workload's `imagePullSecrets` names.
pub fn pull_secrets(kind: WorkloadKind, obj: &Value) -> Vec<String> {
    template(kind, obj)
        .and_then(|t| t.pointer("/spec/imagePullSecrets"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|s| s.get("name").and_then(Value::as_str))
        .map(str::to_string)
        .collect()
}

/// Whether `labels` match a `LabelSelector` (`matchLabels` and
/// `matchExpressions` with In, NotIn, Exists, DoesNotExist). An absent or
/// empty selector matches nothing (a workload always has one); an unknown
/// operator matches nothing.
pub fn selector_matches(selector: Option<&Value>, labels: &Map<String, Value>) -> bool {
    let Some(sel) = selector.and_then(Value::as_object) else {
        return false;
    };
    let match_labels = sel.get("matchLabels").and_then(Value::as_object);
    let exprs = sel.get("matchExpressions").and_then(Value::as_array);
    if match_labels.is_none_or(Map::is_empty) && exprs.is_none_or(Vec::is_empty) {
        return false;
    }
    let label = |k: &str| labels.get(k).and_then(Value::as_str);
    let ok_labels = match_labels
        .into_iter()
        .flatten()
        .all(|(k, v)| label(k) == v.as_str());
    let ok_exprs = exprs.into_iter().flatten().all(|e| {
        let key = e.get("key").and_then(Value::as_str).unwrap_or_default();
        let values: Vec<&str> = e
            .get("values")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        match e.get("operator").and_then(Value::as_str) {
            Some("In") => label(key).is_some_and(|v| values.contains(&v)),
            Some("NotIn") => label(key).is_none_or(|v| !values.contains(&v)),
            Some("Exists") => label(key).is_some(),
            Some("DoesNotExist") => label(key).is_none(),
            _ => false,
        }
    });
    ok_labels && ok_exprs
}

/// The field managers that own `image` of container `name` in the
/// workload's template, per `metadata.managedFields`.
pub fn image_owners(
    kind: WorkloadKind,
    obj: &Value,
    list: ContainerList,
    name: &str,
) -> Vec<String> {
    let key = format!("k:{}", json!({ "name": name }));
    let mut path: Vec<String> = kind
        .template_path()
        .iter()
        .map(|p| format!("f:{p}"))
        .collect();
    path.extend(["f:spec".to_string(), format!("f:{}", list.field()), key]);
    owners_of(obj, &path, "f:image")
}

/// The field managers that own the template annotation `key`.
pub fn annotation_owners(kind: WorkloadKind, obj: &Value, key: &str) -> Vec<String> {
    let mut path: Vec<String> = kind
        .template_path()
        .iter()
        .map(|p| format!("f:{p}"))
        .collect();
    path.extend(["f:metadata".to_string(), "f:annotations".to_string()]);
    owners_of(obj, &path, &format!("f:{key}"))
}

fn owners_of(obj: &Value, path: &[String], leaf: &str) -> Vec<String> {
    let mut out = Vec::new();
    for entry in obj
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(fields) = entry.get("fieldsV1") else {
            continue;
        };
        let Some(parent) = path.iter().try_fold(fields, |cur, k| cur.get(k.as_str())) else {
            continue;
        };
        if parent.get(leaf).is_some() {
            if let Some(m) = entry.get("manager").and_then(Value::as_str) {
                out.push(m.to_string());
            }
        }
    }
    out
}

/// The minimal server-side apply patch that sets these container images
/// (and template annotations) on a workload: identity, then only
/// `name` + `image` per container, so the applier owns nothing else.
pub fn pin_patch(
    kind: WorkloadKind,
    namespace: &str,
    name: &str,
    images: &BTreeMap<(ContainerList, String), String>,
    annotations: &BTreeMap<String, String>,
) -> Value {
    let mut spec = Map::new();
    for list in ContainerList::ALL {
        let items: Vec<Value> = images
            .iter()
            .filter(|((l, _), _)| *l == list)
            .map(|((_, c), image)| json!({"name": c, "image": image}))
            .collect();
        if !items.is_empty() {
            spec.insert(list.field().to_string(), Value::Array(items));
        }
    }
    let mut template = json!({ "spec": spec });
    if !annotations.is_empty() {
        template["metadata"] = json!({ "annotations": annotations });
    }
    let mut body = template;
    for key in kind.template_path().iter().rev() {
        body = json!({ *key: body });
    }
    let mut obj = json!({
        "apiVersion": kind.api_version(),
        "kind": kind.as_str(),
        "metadata": {"name": name, "namespace": namespace},
    });
    if let (Some(o), Some(b)) = (obj.as_object_mut(), body.as_object()) {
        for (k, v) in b {
            o.insert(k.clone(), v.clone());
        }
    }
    obj
}

/// kubesync's side of the agreement with image sync: a copy of `desired`
/// in which every container whose image the live object holds pinned —
/// the same text followed by `@sha256:…` ([`is_pin_of`]) — carries the
/// live, pinned image. `None` when nothing is pinned (or the object is not
/// a workload kind image sync handles).
///
/// kubesync applies (and compares) this copy, so a pin is neither reported
/// as drift nor reverted by a sync: when kubesync has to write the object
/// for another reason, it applies the pinned value and shares ownership of
/// the field with image sync. A change of the tag in git (`app:v1` →
/// `app:v2`) is not a pin of it, so git wins and image sync pins the new
/// tag on its next run.
pub fn adopt_pins(desired: &Value, live: &Value) -> Option<Value> {
    let group = desired
        .get("apiVersion")
        .and_then(Value::as_str)
        .and_then(|v| v.split_once('/'))
        .map_or("", |(g, _)| g);
    let kind = WorkloadKind::from_kind(group, desired.get("kind")?.as_str()?)?;
    let live_images: BTreeMap<(ContainerList, String), String> = containers(kind, live)
        .into_iter()
        .map(|c| ((c.list, c.name), c.image))
        .collect();
    let mut out: Option<Value> = None;
    for c in containers(kind, desired) {
        let Some(live_image) = live_images.get(&(c.list, c.name.clone())) else {
            continue;
        };
        if !is_pin_of(&c.image, live_image) {
            continue;
        }
        let obj = out.get_or_insert_with(|| desired.clone());
        let mut path: Vec<&str> = kind.template_path().to_vec();
        path.extend(["spec", c.list.field()]);
        let list = path
            .iter()
            .try_fold(&mut *obj, |cur, k| cur.get_mut(*k))
            .and_then(Value::as_array_mut);
        if let Some(items) = list {
            for item in items {
                if item.get("name").and_then(Value::as_str) == Some(c.name.as_str()) {
                    item["image"] = Value::String(live_image.clone());
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    fn deployment(images: &[(&str, &str)], init: &[(&str, &str)]) -> Value {
        let list = |xs: &[(&str, &str)]| {
            xs.iter()
                .map(|(n, i)| json!({"name": n, "image": i}))
                .collect::<Vec<_>>()
        };
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": list(images), "initContainers": list(init),
                        "imagePullSecrets": [{"name": "regcred"}]}}}
        })
    }

    #[test]
    fn containers_init_first_and_cronjob_template() {
        let d = deployment(&[("app", "app:v1")], &[("migrate", "tool:1")]);
        let cs = containers(WorkloadKind::Deployment, &d);
        assert_eq!(cs.len(), 2);
        assert_eq!(
            (cs[0].list, cs[0].name.as_str()),
            (ContainerList::Init, "migrate")
        );
        assert_eq!(pull_secrets(WorkloadKind::Deployment, &d), vec!["regcred"]);
        let cj = json!({"apiVersion": "batch/v1", "kind": "CronJob", "spec": {"jobTemplate": {"spec":
            {"template": {"spec": {"containers": [{"name": "job", "image": "busybox"}]}}}}}});
        let cs = containers(WorkloadKind::CronJob, &cj);
        assert_eq!(cs[0].image, "busybox");
    }

    #[test]
    fn selectors() {
        let labels = |v: Value| v.as_object().cloned().unwrap();
        let sel = json!({"matchLabels": {"app": "web"}, "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["front", "edge"]},
            {"key": "canary", "operator": "DoesNotExist"}]});
        assert!(selector_matches(
            Some(&sel),
            &labels(json!({"app": "web", "tier": "front"}))
        ));
        assert!(!selector_matches(
            Some(&sel),
            &labels(json!({"app": "web", "tier": "back"}))
        ));
        assert!(!selector_matches(
            Some(&sel),
            &labels(json!({"app": "web", "tier": "front", "canary": "1"}))
        ));
        assert!(!selector_matches(
            Some(&json!({})),
            &labels(json!({"app": "web"}))
        ));
        assert!(!selector_matches(None, &labels(json!({"app": "web"}))));
        let bad = json!({"matchExpressions": [{"key": "a", "operator": "Gt"}]});
        assert!(!selector_matches(Some(&bad), &labels(json!({"a": "1"}))));
    }

    #[test]
    fn owners_from_managed_fields() {
        let mut d = deployment(&[("app", "app:v1")], &[]);
        d["metadata"]["managedFields"] = json!([
            {"manager": "kubesync", "operation": "Apply", "fieldsV1": {"f:spec": {"f:template": {"f:spec": {
                "f:containers": {"k:{\"name\":\"app\"}": {".": {}, "f:name": {}}}}}}}},
            {"manager": "kubesync-image-sync", "operation": "Apply", "fieldsV1": {"f:spec": {"f:template": {"f:spec": {
                "f:containers": {"k:{\"name\":\"app\"}": {"f:image": {}, "f:name": {}}}}}}}}
        ]);
        assert_eq!(
            image_owners(WorkloadKind::Deployment, &d, ContainerList::Main, "app"),
            vec!["kubesync-image-sync"]
        );
        assert!(image_owners(WorkloadKind::Deployment, &d, ContainerList::Init, "app").is_empty());
        assert!(
            image_owners(WorkloadKind::Deployment, &d, ContainerList::Main, "other").is_empty()
        );
    }

    #[test]
    fn pin_patch_is_minimal() {
        let mut images = BTreeMap::new();
        images.insert(
            (ContainerList::Main, "app".to_string()),
            "app:v1@x".to_string(),
        );
        images.insert(
            (ContainerList::Init, "init".to_string()),
            "tool:1@y".to_string(),
        );
        let p = pin_patch(
            WorkloadKind::CronJob,
            "ns",
            "nightly",
            &images,
            &BTreeMap::new(),
        );
        assert_eq!(
            p,
            json!({"apiVersion": "batch/v1", "kind": "CronJob",
                "metadata": {"name": "nightly", "namespace": "ns"},
                "spec": {"jobTemplate": {"spec": {"template": {"spec": {
                    "initContainers": [{"name": "init", "image": "tool:1@y"}],
                    "containers": [{"name": "app", "image": "app:v1@x"}]}}}}}})
        );
        let mut ann = BTreeMap::new();
        ann.insert(RESTART_ANNOTATION.to_string(), "t".to_string());
        let p = pin_patch(
            WorkloadKind::Deployment,
            "ns",
            "web",
            &BTreeMap::new(),
            &ann,
        );
        assert_eq!(
            p["spec"]["template"]["metadata"]["annotations"][RESTART_ANNOTATION],
            "t"
        );
    }

    #[test]
    fn adopting_pins() {
        let desired = deployment(
            &[("app", "app:v1"), ("side", "envoy:1")],
            &[("init", "tool:1")],
        );
        let pin = format!("app:v1@{}", digest('a'));
        let live = deployment(&[("app", &pin), ("side", "envoy:1")], &[("init", "tool:1")]);
        let adopted = adopt_pins(&desired, &live).expect("a pin to adopt");
        assert_eq!(
            containers(WorkloadKind::Deployment, &adopted),
            containers(WorkloadKind::Deployment, &live)
        );
        // Nothing pinned: nothing to adopt.
        assert!(adopt_pins(&desired, &desired).is_none());
        // A new tag in git is not a pin of it: git wins.
        let newer = deployment(
            &[("app", "app:v2"), ("side", "envoy:1")],
            &[("init", "tool:1")],
        );
        assert!(adopt_pins(&newer, &live).is_none());
        // Git's own pin is never replaced.
        let git_pinned = deployment(&[("app", &format!("app:v1@{}", digest('b')))], &[]);
        assert!(adopt_pins(&git_pinned, &live).is_none());
        // Not a workload: untouched.
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}});
        assert!(adopt_pins(&cm, &cm).is_none());
        // Init containers too.
        let live_init = deployment(
            &[("app", "app:v1"), ("side", "envoy:1")],
            &[("init", &format!("tool:1@{}", digest('c')))],
        );
        let adopted = adopt_pins(&desired, &live_init).unwrap();
        assert_eq!(
            adopted["spec"]["template"]["spec"]["initContainers"][0]["image"],
            format!("tool:1@{}", digest('c'))
        );
    }
}
