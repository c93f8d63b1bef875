//! Pure preparation of an app's desired objects before any write: namespace
//! defaulting, kubesync's label and annotations, the desired-state hash, the
//! tier guardrails, the `kubesync.dev/sync` opt-outs and the apply order
//! (phases and sync waves). Nothing here does IO: scope (namespaced or not)
//! comes in as a function the caller backs with discovery.

use std::collections::BTreeSet;
use std::fmt;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::model::hook::{self, Role};
use crate::model::object_options::{object_options_over, ObjectOptions};
use crate::model::{
    AppName, Manifest, ObjectRef, Tier, APP_LABEL, SYNC_ANNOTATION, TRACKING_ANNOTATION,
};

/// Annotation holding a hash of the desired object kubesync last applied: a
/// live object that still carries it and still contains every desired field
/// needs no write.
pub const DESIRED_HASH_ANNOTATION: &str = "kubesync.dev/desired-hash";

/// Namespaces that always belong to the system tier.
pub const BUILTIN_SYSTEM_NAMESPACES: &[&str] = &["kube-system", "kube-public", "kube-node-lease"];

/// The order objects of one app are applied in, inside one sync wave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    Namespaces,
    /// CustomResourceDefinitions: applied, then waited for until Established.
    Crds,
    /// Other cluster-scoped objects: cluster RBAC, storage classes, …
    ClusterScoped,
    /// Namespaced configuration workloads need: ServiceAccounts, RBAC,
    /// ConfigMaps, Secrets, PVCs, Services, policies.
    Config,
    Workloads,
    /// Everything else: Ingresses, autoscalers, custom resources, …
    Rest,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Namespaces => "namespaces",
            Phase::Crds => "crds",
            Phase::ClusterScoped => "cluster",
            Phase::Config => "config",
            Phase::Workloads => "workloads",
            Phase::Rest => "rest",
        })
    }
}

/// The phase of an object of `kind` in `group`.
pub fn phase_of(group: &str, kind: &str, namespaced: bool) -> Phase {
    match (group, kind) {
        ("", "Namespace") => Phase::Namespaces,
        ("apiextensions.k8s.io", "CustomResourceDefinition") => Phase::Crds,
        _ if !namespaced => Phase::ClusterScoped,
        ("apps", "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet")
        | ("batch", "Job" | "CronJob")
        | ("", "Pod" | "ReplicationController") => Phase::Workloads,
        (
            "",
            "ServiceAccount"
            | "ConfigMap"
            | "Secret"
            | "PersistentVolumeClaim"
            | "Service"
            | "Endpoints"
            | "LimitRange"
            | "ResourceQuota",
        )
        | ("rbac.authorization.k8s.io", "Role" | "RoleBinding")
        | ("networking.k8s.io", "NetworkPolicy")
        | ("policy", "PodDisruptionBudget") => Phase::Config,
        _ => Phase::Rest,
    }
}

/// What `kubesync.dev/sync` says about an object or namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    On,
    /// Leave it alone entirely.
    Off,
    /// Report what would change, write nothing.
    DryRun,
}

/// The label, when live object `live` carries kube-applier's `LABEL`
/// (`off_label`) with the value `off`.
pub fn labelled_off(live: &Value, off_label: Option<&str>) -> Option<String> {
    let label = off_label?;
    live.pointer("/metadata/labels")
        .and_then(|l| l.get(label))
        .and_then(Value::as_str)
        .filter(|v| v.trim().eq_ignore_ascii_case("off"))
        .map(|_| label.to_string())
}

/// Reads `kubesync.dev/sync` (or the kube-applier style label of the same
/// name) from an object.
pub fn sync_mode(obj: &Value) -> SyncMode {
    let meta = obj.get("metadata");
    let value = meta
        .and_then(|m| m.get("annotations"))
        .and_then(|a| a.get(SYNC_ANNOTATION))
        .or_else(|| {
            meta.and_then(|m| m.get("labels"))
                .and_then(|l| l.get(SYNC_ANNOTATION))
        })
        .and_then(Value::as_str)
        .map(|s| s.trim().to_ascii_lowercase());
    match value.as_deref() {
        Some("off" | "false" | "disabled") => SyncMode::Off,
        Some("dry-run" | "dryrun") => SyncMode::DryRun,
        _ => SyncMode::On,
    }
}

/// One object ready to apply.
#[derive(Debug, Clone)]
pub struct DesiredObject {
    pub object_ref: ObjectRef,
    /// The object as it will be sent: namespace defaulted, labelled, annotated.
    pub object: Value,
    pub origin: crate::model::ObjectOrigin,
    pub namespaced: bool,
    pub phase: Phase,
    pub wave: i32,
    pub mode: SyncMode,
    /// Hash of the desired object (stored in [`DESIRED_HASH_ANNOTATION`]).
    pub hash: String,
    /// An ordinary object, a resource hook, or left out of the sync.
    pub role: Role,
    /// Its `argocd.argoproj.io/sync-options` and compare options.
    pub options: ObjectOptions,
}

impl DesiredObject {
    /// The hook, when the object is one.
    pub fn hook(&self) -> Option<&hook::Hook> {
        match &self.role {
            Role::Hook(h) => Some(h),
            _ => None,
        }
    }

    /// Whether it is created under a generated name (a `generateName` hook).
    pub fn generated(&self) -> bool {
        self.hook().is_some_and(|h| h.generate_name.is_some())
    }
}

/// Why an object cannot be prepared or may not be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub object: String,
    pub reason: String,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.object, self.reason)
    }
}

/// Namespaces the system tier owns.
#[derive(Debug, Clone, Default)]
pub struct SystemNamespaces {
    /// Never written by app-tier apps: the built-ins, kubesync's own, and
    /// system apps' destinations.
    pub reserved: BTreeSet<String>,
    /// Namespaces system apps render as Namespace objects: closed to app-tier
    /// apps except the one whose own destination it is (the "platform
    /// creates the namespace, the team deploys into it" pattern).
    pub declared: BTreeSet<String>,
}

/// Everything `prepare` needs to know about the app.
pub struct PrepareContext<'a> {
    pub app: &'a AppName,
    pub tier: Tier,
    /// The app's destination namespace (`default` when none).
    pub namespace: &'a str,
    pub system_namespaces: &'a SystemNamespaces,
    /// The Argo CD project whose resource lists the app's objects must pass.
    pub project: Option<&'a crate::model::Project>,
    /// What every object's options start from: the app-level `syncOptions`
    /// (an object's own annotation overrides them).
    pub object_defaults: ObjectOptions,
}

/// Turns rendered manifests into apply-ready objects in apply order.
/// `scope` answers whether an object is namespaced (`Err` for an unknown kind).
/// Every problem is returned at once so that nothing is written when any
/// object is refused.
pub fn prepare(
    ctx: &PrepareContext,
    manifests: &[&Manifest],
    mut scope: impl FnMut(&ObjectRef) -> Result<bool, String>,
) -> Result<Vec<DesiredObject>, Vec<Refusal>> {
    let mut out = Vec::new();
    let mut refusals = Vec::new();
    let mut seen: BTreeSet<(String, String, Option<String>, String)> = BTreeSet::new();
    for m in manifests {
        match prepare_one(ctx, m, &mut scope) {
            Ok(d) => {
                let r = &d.object_ref;
                let key = (
                    r.group.clone(),
                    r.kind.clone(),
                    r.namespace.clone(),
                    r.name.clone(),
                );
                // Hooks with generateName are new objects each time.
                if d.generated() || seen.insert(key) {
                    out.push(d);
                } else {
                    refusals.push(Refusal {
                        object: format!("{r} ({})", m.origin),
                        reason: "rendered twice in this application".into(),
                    });
                }
            }
            Err(refusal) => refusals.push(refusal),
        }
    }
    if !refusals.is_empty() {
        return Err(refusals);
    }
    out.sort_by(|a, b| apply_order(a).cmp(&apply_order(b)));
    Ok(out)
}

/// The sort key of apply order: wave, phase, then kind, namespace, name.
fn apply_order(d: &DesiredObject) -> (i32, Phase, &String, &Option<String>, &String) {
    let r = &d.object_ref;
    (d.wave, d.phase, &r.kind, &r.namespace, &r.name)
}

/// One manifest made apply-ready: its namespace settled by its scope, the
/// guardrails checked, its wave read, and kubesync's label, tracking id and
/// desired hash stamped on it.
fn prepare_one(
    ctx: &PrepareContext,
    m: &Manifest,
    scope: &mut impl FnMut(&ObjectRef) -> Result<bool, String>,
) -> Result<DesiredObject, Refusal> {
    let mut r = m.object_ref_or_generated().map_err(|e| Refusal {
        object: m.origin.to_string(),
        reason: e.to_string(),
    })?;
    let refused = |r: &ObjectRef, reason: String| Refusal {
        object: format!("{r} ({})", m.origin),
        reason,
    };
    let namespaced = scope(&r).map_err(|e| refused(&r, e))?;
    let mut obj = m.object.clone();
    place(&mut r, &mut obj, namespaced, ctx.namespace);
    guardrail(ctx, &r, namespaced).map_err(|e| refused(&r, e))?;
    let wave = hook::wave(&m.object).map_err(|e| refused(&r, e))?;
    let role = hook::role(&m.object).map_err(|e| refused(&r, e))?;
    let options =
        object_options_over(&m.object, ctx.object_defaults).map_err(|e| refused(&r, e))?;
    let mode = sync_mode(&obj);
    let hash = stamp(&mut obj, ctx.app, &r);
    Ok(DesiredObject {
        phase: phase_of(&r.group, &r.kind, namespaced),
        object_ref: r,
        object: obj,
        origin: m.origin.clone(),
        namespaced,
        wave,
        mode,
        hash,
        role,
        options,
    })
}

/// A namespaced object without a namespace goes to the app's; a
/// cluster-scoped one loses any namespace (the real server ignores it too).
fn place(r: &mut ObjectRef, obj: &mut Value, namespaced: bool, namespace: &str) {
    if namespaced {
        if r.namespace.is_none() {
            r.namespace = Some(namespace.to_string());
            set_path(
                obj,
                &["metadata", "namespace"],
                Value::String(namespace.to_string()),
            );
        }
    } else if r.namespace.is_some() {
        r.namespace = None;
        if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("namespace");
        }
    }
}

/// Stamps the app label, the tracking id and the desired hash (of the
/// object with the first two); returns the hash.
fn stamp(obj: &mut Value, app: &AppName, r: &ObjectRef) -> String {
    set_path(
        obj,
        &["metadata", "labels", APP_LABEL],
        Value::String(app.to_string()),
    );
    set_path(
        obj,
        &["metadata", "annotations", TRACKING_ANNOTATION],
        Value::String(tracking_id(app, r)),
    );
    let hash = desired_hash(obj);
    set_path(
        obj,
        &["metadata", "annotations", DESIRED_HASH_ANNOTATION],
        Value::String(hash.clone()),
    );
    hash
}

/// The tier rule: an app-tier app writes only namespaced objects, outside the
/// system namespaces.
fn guardrail(ctx: &PrepareContext, r: &ObjectRef, namespaced: bool) -> Result<(), String> {
    if let Some(why) = ctx
        .project
        .and_then(|p| p.refuses_resource(&r.group, &r.kind, namespaced))
    {
        return Err(why);
    }
    if ctx.tier == Tier::System {
        return Ok(());
    }
    if !namespaced {
        return Err(format!(
            "application \"{}\" is tier app and may not write cluster-scoped objects (make it tier: system, or move the object to a system app)",
            ctx.app
        ));
    }
    if let Some(ns) = &r.namespace {
        let reserved = ctx.system_namespaces.reserved.contains(ns);
        let declared = ctx.system_namespaces.declared.contains(ns) && ns != ctx.namespace;
        if reserved || declared {
            return Err(format!(
                "application \"{}\" is tier app and may not write into namespace \"{ns}\", which belongs to the system tier",
                ctx.app
            ));
        }
    }
    Ok(())
}

/// `<app>:<group>/<kind>:<namespace>/<name>`, as Argo CD's annotation tracking.
pub fn tracking_id(app: &AppName, r: &ObjectRef) -> String {
    format!(
        "{app}:{}/{}:{}/{}",
        r.group,
        r.kind,
        r.namespace.as_deref().unwrap_or(""),
        r.name
    )
}

/// A short stable hash of an object (keys sorted, the hash annotation itself
/// excluded). It says which fields kubesync last applied, so that a field
/// removed from git is noticed; values are compared with the live object
/// separately. A Secret's values are left out: the hash is stored on the
/// object and printed by `diff`, and an unsalted hash of a short secret
/// (a PIN, a port-like password) is reversed by trying every candidate.
pub fn desired_hash(obj: &Value) -> String {
    let mut canonical = obj.clone();
    if let Some(a) = canonical
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    {
        a.remove(DESIRED_HASH_ANNOTATION);
    }
    if is_v1_secret(&canonical) {
        for field in ["data", "stringData"] {
            if let Some(m) = canonical.get_mut(field).and_then(Value::as_object_mut) {
                m.values_mut().for_each(|v| *v = Value::Null);
            }
        }
    }
    let text = canonical_json(&canonical);
    let digest = Sha256::digest(text.as_bytes());
    hex::encode(&digest[..12])
}

fn canonical_json(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .iter()
                .map(|k| {
                    format!(
                        "{}:{}",
                        serde_json::to_string(k).unwrap_or_default(),
                        canonical_json(&m[*k])
                    )
                })
                .collect();
            format!("{{{}}}", parts.join(","))
        }
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(canonical_json).collect::<Vec<_>>().join(",")
        ),
        other => other.to_string(),
    }
}

/// Whether every field of `desired` is present with the same value in `live`
/// (maps: recursively; lists: same length, element-wise). Extra live fields —
/// server defaults, status, other managers' fields — are allowed. Numbers
/// compare by value, and a desired string compares equal to a live number or
/// quantity of the same text.
pub fn is_subset(desired: &Value, live: &Value) -> bool {
    match (desired, live) {
        (Value::Object(d), Value::Object(l)) => d.iter().all(|(k, dv)| match l.get(k) {
            Some(lv) => is_subset(dv, lv),
            // An explicit null or empty map/list in git matches an absent live field.
            None => is_empty(dv),
        }),
        (Value::Array(d), Value::Array(l)) => {
            d.len() == l.len() && d.iter().zip(l).all(|(a, b)| is_subset(a, b))
        }
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (Value::String(a), Value::Number(b)) | (Value::Number(b), Value::String(a)) => {
            *a == b.to_string()
        }
        (Value::Array(d), Value::Null) | (Value::Array(d), Value::Object(_)) if d.is_empty() => {
            true
        }
        (Value::Object(d), Value::Null) => d.is_empty(),
        (a, b) => a == b,
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// The form of a desired object to compare with its live version: what the
/// API server would store for it. A Secret's `stringData` is stored as
/// base64 `data`, so it is folded in (a plain subset check would otherwise
/// see every Secret with `stringData` as drifted).
pub fn comparable(desired: &Value) -> std::borrow::Cow<'_, Value> {
    use base64::Engine as _;
    let Some(string_data) = desired
        .get("stringData")
        .and_then(Value::as_object)
        .filter(|_| is_v1_secret(desired))
    else {
        return std::borrow::Cow::Borrowed(desired);
    };
    let mut out = desired.clone();
    let mut data = out
        .get("data")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    for (k, v) in string_data {
        let text = v
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| v.to_string());
        data.insert(
            k.clone(),
            Value::String(base64::engine::general_purpose::STANDARD.encode(text)),
        );
    }
    if let Some(o) = out.as_object_mut() {
        o.remove("stringData");
        o.insert("data".into(), Value::Object(data));
    }
    std::borrow::Cow::Owned(out)
}

fn is_v1_secret(obj: &Value) -> bool {
    obj.get("kind").and_then(Value::as_str) == Some("Secret")
        && obj.get("apiVersion").and_then(Value::as_str) == Some("v1")
}

/// Sets a nested field, creating maps on the way.
pub fn set_path(obj: &mut Value, path: &[&str], value: Value) {
    let mut cur = obj;
    for (i, key) in path.iter().enumerate() {
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        let Some(map) = cur.as_object_mut() else {
            return;
        };
        if i + 1 == path.len() {
            map.insert((*key).to_string(), value);
            return;
        }
        cur = map
            .entry((*key).to_string())
            .or_insert_with(|| Value::Object(Map::new()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ObjectOrigin;
    use serde_json::json;
    use std::path::PathBuf;

    fn manifest(obj: Value) -> Manifest {
        Manifest {
            object: obj,
            origin: ObjectOrigin {
                file: PathBuf::from("apps/web/all.yaml"),
                doc: 0,
            },
        }
    }

    fn scope(r: &ObjectRef) -> Result<bool, String> {
        match r.kind.as_str() {
            "Namespace" | "ClusterRole" | "CustomResourceDefinition" => Ok(false),
            "Widget" => Err("no kind Widget in example.com/v1".into()),
            _ => Ok(true),
        }
    }

    fn ctx<'a>(app: &'a AppName, tier: Tier, sys: &'a SystemNamespaces) -> PrepareContext<'a> {
        PrepareContext {
            app,
            tier,
            namespace: "web",
            system_namespaces: sys,
            project: None,
            object_defaults: ObjectOptions::default(),
        }
    }

    #[test]
    fn defaults_namespace_labels_and_orders_by_phase() {
        let app = AppName::new("web").unwrap();
        let sys = SystemNamespaces::default();
        let ms = [
            manifest(
                json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "web"}}),
            ),
            manifest(
                json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}}),
            ),
            manifest(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}})),
            manifest(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "web"}})),
            manifest(
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "late",
                "annotations": {"argocd.argoproj.io/sync-wave": "1"}}}),
            ),
        ];
        let refs: Vec<&Manifest> = ms.iter().collect();
        let out = prepare(&ctx(&app, Tier::System, &sys), &refs, scope).unwrap();
        let order: Vec<String> = out.iter().map(|d| d.object_ref.to_string()).collect();
        assert_eq!(
            order,
            vec![
                "Namespace web",
                "ConfigMap web/cfg",
                "Deployment.apps web/web",
                "Ingress.networking.k8s.io web/web",
                "ConfigMap web/late"
            ]
        );
        let dep = &out[2].object;
        assert_eq!(dep["metadata"]["namespace"], "web");
        assert_eq!(dep["metadata"]["labels"][APP_LABEL], "web");
        assert_eq!(
            dep["metadata"]["annotations"][TRACKING_ANNOTATION],
            "web:apps/Deployment:web/web"
        );
        assert_eq!(
            dep["metadata"]["annotations"][DESIRED_HASH_ANNOTATION]
                .as_str()
                .unwrap()
                .len(),
            24
        );
    }

    #[test]
    fn app_tier_guardrails_refuse_everything_at_once() {
        let app = AppName::new("web").unwrap();
        let sys = SystemNamespaces {
            reserved: ["kube-system".to_string()].into(),
            declared: ["web".to_string(), "shop".to_string()].into(),
        };
        let ms = [
            manifest(
                json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "r"}}),
            ),
            manifest(
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "kube-system"}}),
            ),
            manifest(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ok"}})),
        ];
        let refs: Vec<&Manifest> = ms.iter().collect();
        let errs = prepare(&ctx(&app, Tier::App, &sys), &refs, scope).unwrap_err();
        assert_eq!(errs.len(), 2);
        assert_eq!(
            errs[0].to_string(),
            "ClusterRole.rbac.authorization.k8s.io r (apps/web/all.yaml): application \"web\" is tier app and may not write cluster-scoped objects (make it tier: system, or move the object to a system app)"
        );
        assert!(
            errs[1]
                .to_string()
                .contains("may not write into namespace \"kube-system\""),
            "{}",
            errs[1]
        );
    }

    #[test]
    fn app_tier_may_use_its_own_namespace_declared_by_a_system_app() {
        let app = AppName::new("web").unwrap();
        let sys = SystemNamespaces {
            reserved: ["kube-system".to_string()].into(),
            declared: ["web".to_string(), "shop".to_string()].into(),
        };
        let ms = [manifest(
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}),
        )];
        let refs: Vec<&Manifest> = ms.iter().collect();
        assert!(prepare(&ctx(&app, Tier::App, &sys), &refs, scope).is_ok());
        let other = [manifest(
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "shop"}}),
        )];
        let refs: Vec<&Manifest> = other.iter().collect();
        let errs = prepare(&ctx(&app, Tier::App, &sys), &refs, scope).unwrap_err();
        assert!(
            errs[0]
                .reason
                .contains("namespace \"shop\", which belongs to the system tier"),
            "{}",
            errs[0]
        );
    }

    #[test]
    fn unknown_kind_and_duplicates_are_refused() {
        let app = AppName::new("web").unwrap();
        let sys = SystemNamespaces::default();
        let ms = [
            manifest(
                json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}),
            ),
            manifest(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}})),
            manifest(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}})),
        ];
        let refs: Vec<&Manifest> = ms.iter().collect();
        let errs = prepare(&ctx(&app, Tier::System, &sys), &refs, scope).unwrap_err();
        assert_eq!(errs[0].reason, "no kind Widget in example.com/v1");
        assert_eq!(errs[1].reason, "rendered twice in this application");
    }

    #[test]
    fn sync_modes() {
        assert_eq!(
            sync_mode(&json!({"metadata": {"annotations": {"kubesync.dev/sync": "off"}}})),
            SyncMode::Off
        );
        assert_eq!(
            sync_mode(&json!({"metadata": {"labels": {"kubesync.dev/sync": "dry-run"}}})),
            SyncMode::DryRun
        );
        assert_eq!(sync_mode(&json!({"metadata": {}})), SyncMode::On);
    }

    #[test]
    fn subset_semantics() {
        let desired = json!({"spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "a", "image": "x"}]}}}, "data": {}});
        let live = json!({"spec": {"replicas": 2, "strategy": {}, "template": {"spec": {"containers": [{"name": "a", "image": "x", "imagePullPolicy": "Always"}]}}}, "status": {}});
        assert!(is_subset(&desired, &live));
        let drifted = json!({"spec": {"replicas": 3, "template": {"spec": {"containers": [{"name": "a", "image": "x"}]}}}});
        assert!(!is_subset(&desired, &drifted));
        assert!(is_subset(&json!({"port": "80"}), &json!({"port": 80})));
        assert!(!is_subset(&json!({"a": [1, 2]}), &json!({"a": [1]})));
    }

    #[test]
    fn secret_string_data_compares_as_stored_data() {
        let desired = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"token": "abc"}});
        let live = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"token": "YWJj"}, "type": "Opaque"});
        assert!(!is_subset(&desired, &live));
        assert!(is_subset(&comparable(&desired), &live));
        let changed = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"token": "eHl6"}});
        assert!(!is_subset(&comparable(&desired), &changed));
    }

    #[test]
    fn hash_leaves_secret_values_out() {
        let secret = |pin: &str| {
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                   "data": {"pin": pin}, "stringData": {"code": pin}})
        };
        // Values never change the hash (it cannot be reversed to them)...
        assert_eq!(
            desired_hash(&secret("MTIzNA==")),
            desired_hash(&secret("OTk5OQ=="))
        );
        // ...but the keys do (a removed key is still noticed).
        let mut fewer = secret("MTIzNA==");
        fewer["data"].as_object_mut().unwrap().remove("pin");
        assert_ne!(desired_hash(&fewer), desired_hash(&secret("MTIzNA==")));
        // Other kinds hash their values.
        let cm = |v: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": v}});
        assert_ne!(desired_hash(&cm("1")), desired_hash(&cm("2")));
    }

    #[test]
    fn hash_ignores_key_order_and_itself() {
        let a = json!({"b": 1, "a": {"y": 2, "x": 1}});
        let mut b = json!({"a": {"x": 1, "y": 2}, "b": 1});
        assert_eq!(desired_hash(&a), desired_hash(&b));
        set_path(
            &mut b,
            &["metadata", "annotations", DESIRED_HASH_ANNOTATION],
            json!("zzz"),
        );
        set_path(&mut b, &["metadata", "annotations"], json!({}));
        assert_ne!(desired_hash(&a), desired_hash(&b));
    }
}
