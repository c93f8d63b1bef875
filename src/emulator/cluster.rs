//! The API verbs with the real server's semantics — get, list, watch start,
//! create, update, patch (merge, JSON, strategic, server-side apply), delete
//! (with finalizers, namespace and CRD cascades and owner-reference garbage
//! collection), deletecollection, and the status and scale subresources — over
//! the `store`. `Cluster` is also the in-process API that simulated
//! controllers use. It owns no HTTP: `http` decodes requests into these calls.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard};
use serde_json::{json, Map, Value};
use tokio::sync::{broadcast, mpsc};

use super::crdschema;
use super::defaults;
use super::errors::{success_status, ApiError, Cause, Details};
use super::fieldmanager::{self, Conflict};
use super::patch;
use super::resources::{types_from_crd, GroupResource, ResourceType};
use super::selector::{match_labels_string, FieldSelector, LabelSelector};
use super::store::{EventType, ObjectKey, State, WatchEvent};
use super::typed;
use super::util::{b64_decode, b64_encode, child_mut, meta_str, now, obj_mut, random_suffix};
use super::validation;

/// Options every write carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteOptions {
    /// `dryRun=All`: validate and return the result, store nothing.
    pub dry_run: bool,
    /// The field manager recorded in `managedFields`.
    pub field_manager: String,
    /// `fieldValidation=Strict`: an unknown field fails the request instead
    /// of being dropped.
    pub strict: bool,
}

impl WriteOptions {
    /// A committing write by `manager`.
    pub fn by(manager: &str) -> Self {
        WriteOptions {
            dry_run: false,
            field_manager: manager.to_string(),
            strict: false,
        }
    }
}

/// A subresource of an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subresource {
    Status,
    Scale,
}

impl Subresource {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "status" => Some(Subresource::Status),
            "scale" => Some(Subresource::Scale),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Subresource::Status => "status",
            Subresource::Scale => "scale",
        }
    }
}

/// The PATCH formats, by content type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// `application/merge-patch+json`
    Merge,
    /// `application/json-patch+json`
    Json,
    /// `application/strategic-merge-patch+json`
    Strategic,
    /// `application/apply-patch+yaml` (server-side apply)
    Apply { force: bool },
}

/// `propagationPolicy` of a delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Propagation {
    #[default]
    Background,
    Foreground,
    Orphan,
}

/// Options of a delete (query parameters or a `DeleteOptions` body).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteOptions {
    pub dry_run: bool,
    pub propagation: Propagation,
    pub precondition_uid: Option<String>,
    pub precondition_resource_version: Option<String>,
}

/// Options of a list.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    pub label_selector: LabelSelector,
    pub field_selector: FieldSelector,
    pub limit: Option<usize>,
    pub continue_token: Option<String>,
}

/// Where a watch starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchStart {
    /// At the current state; `initial` sends ADDED for every existing object
    /// first (no resourceVersion, `"0"`, or `sendInitialEvents=true`).
    Now { initial: bool },
    /// After this resourceVersion, replaying history.
    Since(u64),
}

/// What a started watch needs: live changes, the events to send first, and
/// the resourceVersion they bring the watcher to.
pub struct WatchBegin {
    pub receiver: broadcast::Receiver<Arc<WatchEvent>>,
    pub initial: Vec<Arc<WatchEvent>>,
    pub resource_version: u64,
}

/// The emulated cluster: the store plus the verbs over it. Cheap to clone.
#[derive(Clone)]
pub struct Cluster {
    state: Arc<Mutex<State>>,
    next_ip: Arc<AtomicU32>,
}

const CRD_RESOURCE: (&str, &str) = ("apiextensions.k8s.io", "customresourcedefinitions");

fn is_crd(rt: &ResourceType) -> bool {
    rt.group == CRD_RESOURCE.0 && rt.plural == CRD_RESOURCE.1 && rt.crd.is_none()
}

fn is_namespace(rt: &ResourceType) -> bool {
    rt.group.is_empty() && rt.plural == "namespaces"
}

/// The stored object as served at `rt`'s version.
fn present(rt: &ResourceType, obj: &Value) -> Value {
    let converted;
    let obj = if super::convert::converts(rt) {
        converted = super::convert::to_served(rt, obj);
        &converted
    } else {
        if served_shape(rt, obj) {
            // Already `apiVersion`, `kind`, then the rest: a plain copy
            // (the common case: what `put` stores came from `present`).
            return obj.clone();
        }
        obj
    };
    let mut out = Map::new();
    out.insert("apiVersion".into(), json!(rt.api_version()));
    out.insert("kind".into(), json!(rt.kind));
    if let Some(m) = obj.as_object() {
        for (k, v) in m {
            if k != "apiVersion" && k != "kind" {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(out)
}

/// The stored object `name` as served at `rt`'s version, or 404.
fn served(
    st: &State,
    rt: &ResourceType,
    gr: &GroupResource,
    ns: Option<&str>,
    name: &str,
) -> Result<Value, ApiError> {
    st.get(gr, ns_key(rt, ns), name)
        .map(|o| present(rt, o))
        .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))
}

fn ns_key<'a>(rt: &ResourceType, ns: Option<&'a str>) -> &'a str {
    if rt.namespaced {
        ns.unwrap_or_default()
    } else {
        ""
    }
}

fn uid_of(obj: &Value) -> String {
    meta_str(obj, "uid").unwrap_or_default().to_string()
}

fn finalizers(obj: &Value) -> usize {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map_or(0, Vec::len)
}

/// Kinds whose DELETE answers the deleted object rather than a `Status`
/// (their registries set `ReturnDeletedObject`).
fn returns_deleted_object(rt: &ResourceType) -> bool {
    rt.group.is_empty() && matches!(rt.plural.as_str(), "pods" | "services" | "serviceaccounts")
}

/// Whether `obj` already starts with `apiVersion` and `kind` as `rt`
/// serves them (so that [`present`] would only copy it).
fn served_shape(rt: &ResourceType, obj: &Value) -> bool {
    let Some(m) = obj.as_object() else {
        return false;
    };
    let mut entries = m.iter();
    let first = entries.next();
    let second = entries.next();
    matches!(first, Some((k, Value::String(v))) if k == "apiVersion" && *v == rt.api_version())
        && matches!(second, Some((k, Value::String(v))) if k == "kind" && *v == rt.kind)
}

/// Whether `a` and `b` are equal but for the top-level keys in `skip` (as
/// maps: key order does not count, as in `Value`'s own equality). Compares
/// in place, without copying either side.
fn equal_except(a: &Value, b: &Value, skip: &[&str]) -> bool {
    let (Some(am), Some(bm)) = (a.as_object(), b.as_object()) else {
        return a == b;
    };
    let kept = |m: &Map<String, Value>| m.keys().filter(|k| !skip.contains(&k.as_str())).count();
    kept(am) == kept(bm)
        && am
            .iter()
            .filter(|(k, _)| !skip.contains(&k.as_str()))
            .all(|(k, v)| bm.get(k) == Some(v))
}

/// Whether the two differ in anything but metadata and status (a change
/// there bumps generation).
fn spec_differs(a: &Value, b: &Value) -> bool {
    !equal_except(a, b, &["metadata", "status", "apiVersion", "kind"])
}

/// Whether the two are equal but for what changes on every write
/// (resourceVersion and managed-field timestamps): a no-op write.
fn stable_equal(a: &Value, b: &Value) -> bool {
    if !equal_except(a, b, &["metadata"]) {
        return false;
    }
    match (a.get("metadata"), b.get("metadata")) {
        (None, None) => true,
        (Some(ma), Some(mb)) => {
            if !(ma.is_object() && mb.is_object()) {
                return ma == mb;
            }
            if !equal_except(ma, mb, &["resourceVersion", "managedFields"]) {
                return false;
            }
            match (ma.get("managedFields"), mb.get("managedFields")) {
                (None, None) => true,
                (Some(Value::Array(x)), Some(Value::Array(y))) => {
                    x.len() == y.len()
                        && x.iter().zip(y).all(|(p, q)| equal_except(p, q, &["time"]))
                }
                (Some(x), Some(y)) => x == y,
                _ => false,
            }
        }
        _ => false,
    }
}

/// The 409 of a server-side apply that conflicts with other managers.
pub fn apply_conflict(conflicts: &[Conflict], api_version: &str) -> ApiError {
    let status = fieldmanager::conflict_status(conflicts, api_version);
    let mut e = ApiError::new(
        409,
        "Conflict",
        fieldmanager::conflict_message(conflicts, api_version),
    );
    let causes = status
        .pointer("/details/causes")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .map(|c| Cause {
                    reason: "FieldManagerConflict".into(),
                    message: c
                        .get("message")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .into(),
                    field: c
                        .get("field")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .into(),
                })
                .collect()
        })
        .unwrap_or_default();
    e.details = Some(Box::new(Details {
        causes,
        ..Default::default()
    }));
    e
}

/// Checks and normalises a request body for `rt`: apiVersion/kind (filled in
/// when missing), namespace and name against the URL; returns the object with
/// apiVersion, kind and metadata first.
fn prepare_body(
    rt: &ResourceType,
    ns: Option<&str>,
    body: Value,
    url_name: Option<&str>,
) -> Result<Value, ApiError> {
    let Value::Object(mut m) = body else {
        return Err(ApiError::bad_request(
            "the body of the request must be a JSON or YAML object",
        ));
    };
    match m.get("apiVersion") {
        None | Some(Value::Null) => {}
        Some(Value::String(av)) if *av == rt.api_version() => {}
        Some(Value::String(av))
            if rt.crd.is_some() && av.split('/').next() == Some(rt.group.as_str()) => {}
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({}) does not match the expected API version ({})",
                other.as_str().unwrap_or_default(),
                rt.api_version()
            )))
        }
    }
    match m.get("kind") {
        None | Some(Value::Null) => {}
        Some(Value::String(k)) if *k == rt.kind => {}
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({}) does not match the expected kind ({})",
                other.as_str().unwrap_or_default(),
                rt.kind
            )))
        }
    }
    let mut meta = match m.remove("metadata") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(meta)) => meta,
        Some(_) => return Err(ApiError::bad_request("metadata must be an object")),
    };
    if rt.namespaced {
        let url_ns = ns.unwrap_or_default();
        match meta.get("namespace").and_then(Value::as_str) {
            Some(body_ns) if !body_ns.is_empty() && body_ns != url_ns => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ))
            }
            _ => {
                meta.insert("namespace".into(), json!(url_ns));
            }
        }
    } else {
        meta.remove("namespace");
    }
    if let Some(url_name) = url_name {
        match meta.get("name").and_then(Value::as_str) {
            Some(n) if !n.is_empty() && n != url_name => {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({n}) does not match the name on the URL ({url_name})"
                )))
            }
            _ => {
                meta.insert("name".into(), json!(url_name));
            }
        }
    }
    meta.remove("selfLink");
    let mut out = Map::new();
    out.insert("apiVersion".into(), json!(rt.api_version()));
    out.insert("kind".into(), json!(rt.kind));
    out.insert("metadata".into(), Value::Object(meta));
    for (k, v) in m {
        if k != "apiVersion" && k != "kind" {
            out.insert(k, v);
        }
    }
    let mut out = Value::Object(out);
    typed::canonicalize_quantities(rt, &mut out)?;
    Ok(out)
}

/// Copies the server-owned metadata of `old` onto `new`.
fn carry_system_meta(old: &Value, new: &mut Value) {
    let meta = child_mut(new, "metadata");
    for k in [
        "uid",
        "creationTimestamp",
        "generation",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
    ] {
        match old.get("metadata").and_then(|m| m.get(k)) {
            Some(v) => {
                meta.insert(k.into(), v.clone());
            }
            None => {
                meta.remove(k);
            }
        }
    }
    meta.remove("resourceVersion");
}

fn continue_token(rv: u64, key: &ObjectKey) -> String {
    let raw =
        json!({"v": "meta.k8s.io/v1", "rv": rv, "start": format!("{}/{}\u{0}", key.0, key.1)});
    b64_encode(raw.to_string().as_bytes())
}

fn parse_continue(token: &str) -> Result<(u64, ObjectKey), ApiError> {
    let bad = |why: &str| ApiError::bad_request(format!("continue key is not valid: {why}"));
    let raw = b64_decode(token).ok_or_else(|| bad("illegal base64 data"))?;
    let v: Value = serde_json::from_slice(&raw).map_err(|e| bad(&e.to_string()))?;
    let rv = v
        .get("rv")
        .and_then(Value::as_u64)
        .ok_or_else(|| bad("missing rv"))?;
    let start = v
        .get("start")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("missing start"))?
        .trim_end_matches('\u{0}');
    let (ns, name) = start.split_once('/').ok_or_else(|| bad("invalid start"))?;
    Ok((rv, (ns.to_string(), name.to_string())))
}

impl Cluster {
    /// An empty cluster with the default namespaces (`default`,
    /// `kube-system`, `kube-public`, `kube-node-lease`).
    pub fn new(history_limit: usize) -> Self {
        let cluster = Cluster {
            state: Arc::new(Mutex::new(State::new(history_limit, 4096))),
            next_ip: Arc::new(AtomicU32::new(1)),
        };
        let ns_type = cluster.resource("v1", "Namespace");
        if let Some(rt) = ns_type {
            for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
                // Creating a fresh namespace with a valid name cannot fail.
                let _ = cluster.create(
                    &rt,
                    None,
                    json!({"metadata": {"name": ns}}),
                    &WriteOptions::by("kube-apiserver"),
                );
            }
        }
        cluster
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock()
    }

    /// The served type for `apiVersion` + `kind`.
    pub fn resource(&self, api_version: &str, kind: &str) -> Option<Arc<ResourceType>> {
        self.lock().registry.by_kind(api_version, kind)
    }

    /// The served type at `group/version/plural`.
    pub fn resource_at(
        &self,
        group: &str,
        version: &str,
        plural: &str,
    ) -> Option<Arc<ResourceType>> {
        self.lock().registry.lookup(group, version, plural)
    }

    /// A snapshot of the served types.
    pub fn registry(&self) -> super::resources::Registry {
        self.lock().registry.clone()
    }

    /// The latest committed resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.lock().resource_version()
    }

    /// Every change committed from now on, losslessly (for controllers).
    pub fn listen(&self) -> mpsc::UnboundedReceiver<Arc<WatchEvent>> {
        self.lock().listen()
    }

    pub fn get(&self, rt: &ResourceType, ns: Option<&str>, name: &str) -> Result<Value, ApiError> {
        let st = self.lock();
        st.get(&rt.group_resource(), ns_key(rt, ns), name)
            .map(|o| present(rt, o))
            .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))
    }

    /// The `Scale` of an object with a scale subresource.
    pub fn get_scale(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
    ) -> Result<Value, ApiError> {
        Ok(scale_of(&self.get(rt, ns, name)?))
    }

    /// A `<Kind>List` of the objects matching `opts` (one page of them when
    /// `limit` is set). Pages continue from the key after the last one
    /// returned, over the live state.
    pub fn list(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        opts: &ListOptions,
    ) -> Result<Value, ApiError> {
        let st = self.lock();
        let (list_rv, after) = match opts.continue_token.as_deref().filter(|t| !t.is_empty()) {
            Some(t) => {
                let (rv, key) = parse_continue(t)?;
                (rv, Some(key))
            }
            None => (st.resource_version(), None),
        };
        let ns = if rt.namespaced { ns } else { None };
        let mut items = Vec::new();
        let mut cont = None;
        let mut remaining = 0u64;
        let mut last: Option<&ObjectKey> = None;
        for (key, obj) in st.iter(&rt.group_resource(), ns, after.as_ref()) {
            if !opts.label_selector.matches(obj) || !opts.field_selector.matches(obj) {
                continue;
            }
            if let Some(limit) = opts.limit.filter(|l| *l > 0) {
                if items.len() >= limit {
                    if cont.is_none() {
                        cont = last.map(|k| continue_token(list_rv, k));
                    }
                    remaining += 1;
                    continue;
                }
            }
            items.push(present(rt, obj));
            last = Some(key);
        }
        let mut meta = Map::new();
        meta.insert("resourceVersion".into(), json!(list_rv.to_string()));
        if let Some(c) = cont {
            meta.insert("continue".into(), json!(c));
            if opts.label_selector.is_empty() && opts.field_selector.is_empty() {
                meta.insert("remainingItemCount".into(), json!(remaining));
            }
        }
        Ok(json!({
            "kind": format!("{}List", rt.kind),
            "apiVersion": rt.api_version(),
            "metadata": meta,
            "items": items,
        }))
    }

    /// Subscribes to changes and computes what a watch sends first.
    pub fn watch_begin(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        start: WatchStart,
    ) -> Result<WatchBegin, ApiError> {
        let st = self.lock();
        let receiver = st.subscribe();
        let rv = st.resource_version();
        let initial = match start {
            WatchStart::Since(from) => st.events_since(from)?,
            WatchStart::Now { initial: false } => Vec::new(),
            WatchStart::Now { initial: true } => {
                let gr = rt.group_resource();
                let ns = if rt.namespaced { ns } else { None };
                st.iter(&gr, ns, None)
                    .map(|(k, o)| {
                        Arc::new(WatchEvent {
                            rv: o
                                .pointer("/metadata/resourceVersion")
                                .and_then(Value::as_str)
                                .and_then(|s| s.parse().ok())
                                .unwrap_or(rv),
                            event_type: EventType::Added,
                            resource: gr.clone(),
                            namespace: k.0.clone(),
                            name: k.1.clone(),
                            object: o.clone(),
                            previous: None,
                        })
                    })
                    .collect()
            }
        };
        Ok(WatchBegin {
            receiver,
            initial,
            resource_version: rv,
        })
    }

    /// POST: creates an object (201 semantics); returns it as stored.
    pub fn create(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        body: Value,
        opts: &WriteOptions,
    ) -> Result<Value, ApiError> {
        let mut obj = prepare_body(rt, ns, body, None)?;
        typed::decode_body(rt, &mut obj, opts.strict)?;
        let mut st = self.lock();
        self.insert_new(&mut st, rt, obj, opts, true)
    }

    fn insert_new(
        &self,
        st: &mut State,
        rt: &ResourceType,
        mut obj: Value,
        opts: &WriteOptions,
        record: bool,
    ) -> Result<Value, ApiError> {
        obj = super::convert::to_stored(rt, obj);
        let meta = child_mut(&mut obj, "metadata");
        let name = match meta
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
        {
            Some(n) => n.to_string(),
            None => match meta
                .get("generateName")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
            {
                Some(prefix) => {
                    let n = format!("{prefix}{}", random_suffix());
                    meta.insert("name".into(), json!(n));
                    n
                }
                None => {
                    return Err(ApiError::invalid(
                        &rt.group,
                        &rt.kind,
                        "",
                        vec![validation::name_required()],
                    ))
                }
            },
        };
        let ns = meta
            .get("namespace")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let mut causes = validation::validate_name(rt.name_rule, &name);
        causes.extend(validation::validate_metadata_maps(&obj));
        if !causes.is_empty() {
            return Err(ApiError::invalid(&rt.group, &rt.kind, &name, causes));
        }
        if rt.namespaced && !st.namespace_exists(&ns) {
            return Err(ApiError::not_found("", "namespaces", &ns));
        }
        let gr = rt.group_resource();
        if st.get(&gr, &ns, &name).is_some() {
            return Err(ApiError::already_exists(&rt.group, &rt.plural, &name));
        }
        let ts = now();
        {
            let meta = child_mut(&mut obj, "metadata");
            for k in [
                "resourceVersion",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
            ] {
                meta.remove(k);
            }
            meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
            meta.insert("creationTimestamp".into(), json!(ts));
            if rt.generation {
                meta.insert("generation".into(), json!(1));
            } else {
                meta.remove("generation");
            }
        }
        if rt.status {
            obj_mut(&mut obj).remove("status");
        }
        defaults::on_create(rt, &mut obj);
        let causes = validation::validate_spec(&rt.group, &rt.plural, &obj);
        if !causes.is_empty() {
            return Err(ApiError::invalid(&rt.group, &rt.kind, &name, causes));
        }
        check_custom(st, rt, &name, &mut obj, opts.strict)?;
        if is_crd(rt) {
            defaults::validate_crd(&obj)?;
            defaults::establish_crd(&mut obj, &ts);
        }
        if record {
            fieldmanager::record_update(
                None,
                &mut obj,
                &opts.field_manager,
                &rt.api_version(),
                &ts,
                None,
            );
        }
        let next_ip = &self.next_ip;
        defaults::allocate(rt, &mut obj, || {
            let n = next_ip.fetch_add(1, Ordering::Relaxed);
            format!("10.96.{}.{}", (n >> 8) & 0xff, n & 0xff)
        });
        if opts.dry_run {
            return Ok(present(rt, &obj));
        }
        if is_crd(rt) {
            register_crd(st, &obj);
        }
        Ok(present(rt, st.put(&gr, obj, EventType::Added)))
    }

    /// PUT: replaces an object (or, for `Some(Status)`, only its status; for
    /// `Some(Scale)`, only its replicas, with a `Scale` body and result).
    pub fn update(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        body: Value,
        sub: Option<Subresource>,
        opts: &WriteOptions,
    ) -> Result<Value, ApiError> {
        let mut st = self.lock();
        let gr = rt.group_resource();
        let old = served(&st, rt, &gr, ns, name)?;
        if sub == Some(Subresource::Scale) {
            check_rv(rt, name, &old, meta_str(&body, "resourceVersion"))?;
            let new = with_replicas(rt, name, &old, &body)?;
            let out = self.commit_update(&mut st, rt, &old, new, opts, sub, true)?;
            return Ok(scale_of(&out));
        }
        let mut body = prepare_body(rt, ns, body, Some(name))?;
        typed::decode_body(rt, &mut body, opts.strict)?;
        match meta_str(&body, "resourceVersion") {
            Some(rv) if !rv.is_empty() => check_rv(rt, name, &old, Some(rv))?,
            _ if rt.crd.is_some() => {
                return Err(ApiError::invalid(
                    &rt.group,
                    &rt.kind,
                    name,
                    vec![Cause {
                        reason: "FieldValueInvalid".into(),
                        message: "Invalid value: 0x0: must be specified for an update".into(),
                        field: "metadata.resourceVersion".into(),
                    }],
                ))
            }
            _ => {}
        }
        self.commit_update(&mut st, rt, &old, body, opts, sub, true)
    }

    /// A PUT of `name`'s status subresource with `status` as the new status
    /// and no resourceVersion precondition, as a controller in the cluster
    /// writes it: the same result as [`Cluster::update`] of the stored
    /// object with `status` in place, without copying and re-checking the
    /// rest of the object (only the new status is decoded). Kinds stored at
    /// another version take the full path.
    pub fn update_status(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        status: Value,
        opts: &WriteOptions,
    ) -> Result<Value, ApiError> {
        if super::convert::converts(rt) || opts.strict {
            let mut body = self.get(rt, ns, name)?;
            obj_mut(&mut body).insert("status".into(), status);
            child_mut(&mut body, "metadata").remove("resourceVersion");
            return self.update(rt, ns, name, body, Some(Subresource::Status), opts);
        }
        // The status as a body decodes it (unknown fields dropped) alone:
        // the full path decodes the whole object, and keeps only its status.
        let mut body = prepare_body(rt, ns, json!({ "status": status }), Some(name))?;
        typed::decode_body(rt, &mut body, false)?;
        let status = obj_mut(&mut body).remove("status").unwrap_or(Value::Null);
        let mut st = self.lock();
        let gr = rt.group_resource();
        let old = served(&st, rt, &gr, ns, name)?;
        let mut new = Map::new();
        if !status.is_null() {
            new.insert("status".into(), status);
        }
        self.commit_update(
            &mut st,
            rt,
            &old,
            Value::Object(new),
            opts,
            Some(Subresource::Status),
            true,
        )
    }

    /// PATCH in any of the four formats. Returns the result and whether it
    /// created the object (server-side apply of a missing object).
    #[allow(clippy::too_many_arguments)]
    pub fn patch(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        patch_type: PatchType,
        patch_body: &Value,
        sub: Option<Subresource>,
        opts: &WriteOptions,
    ) -> Result<(Value, bool), ApiError> {
        let mut st = self.lock();
        let gr = rt.group_resource();
        let old = st.get(&gr, ns_key(rt, ns), name).map(|o| present(rt, o));
        let ts = now();
        if let PatchType::Apply { force } = patch_type {
            if sub == Some(Subresource::Scale) {
                let old = old.ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))?;
                let new = with_replicas(rt, name, &old, patch_body)?;
                let out = self.commit_update(&mut st, rt, &old, new, opts, sub, false)?;
                return Ok((scale_of(&out), false));
            }
            let applied = prepare_body(rt, ns, patch_body.clone(), Some(name))?;
            typed::check_apply(rt, name, &applied)?;
            if let Some(schema) = custom_schema(&st, rt) {
                let mut probe = applied.clone();
                let f = crdschema::check(&schema, &mut probe, false);
                let problem = f
                    .unknown
                    .first()
                    .map(|p| format!(".{p}: field not declared in schema"))
                    .or_else(|| f.typed.first().cloned());
                if let Some(problem) = problem {
                    return Err(typed::typed_patch_error(rt, name, &problem));
                }
            }
            let manager = opts.field_manager.as_str();
            let api_version = rt.api_version();
            return match old {
                None if sub.is_some() => Err(ApiError::not_found(&rt.group, &rt.plural, name)),
                None => {
                    let created =
                        fieldmanager::apply(None, &applied, manager, force, &api_version, &ts)
                            .map_err(|c| apply_conflict(&c, &api_version))?;
                    let obj = prepare_body(rt, ns, created, Some(name))?;
                    Ok((self.insert_new(&mut st, rt, obj, opts, false)?, true))
                }
                Some(old) => {
                    if let Some(rv) =
                        meta_str(&applied, "resourceVersion").filter(|r| !r.is_empty())
                    {
                        check_rv(rt, name, &old, Some(rv))?;
                    }
                    let merged = fieldmanager::apply_subresource(
                        Some(&old),
                        &applied,
                        manager,
                        force,
                        &api_version,
                        &ts,
                        sub.map(Subresource::as_str),
                    )
                    .map_err(|c| apply_conflict(&c, &api_version))?;
                    let merged = prepare_body(rt, ns, merged, Some(name))?;
                    Ok((
                        self.commit_update(&mut st, rt, &old, merged, opts, sub, false)?,
                        false,
                    ))
                }
            };
        }
        let old = old.ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))?;
        let target = if sub == Some(Subresource::Scale) {
            scale_of(&old)
        } else {
            old.clone()
        };
        let patched = match patch_type {
            PatchType::Merge => Ok(patch::merge_patch(&target, patch_body)),
            PatchType::Json => patch::json_patch(&target, patch_body),
            PatchType::Strategic => patch::strategic_merge_patch(&target, patch_body),
            PatchType::Apply { .. } => unreachable!("handled above"),
        }
        .map_err(|e| ApiError::new(422, "Invalid", e.0))?;
        if let Some(rv) = meta_str(&patched, "resourceVersion").filter(|r| !r.is_empty()) {
            check_rv(rt, name, &old, Some(rv))?;
        }
        if sub == Some(Subresource::Scale) {
            let new = with_replicas(rt, name, &old, &patched)?;
            let out = self.commit_update(&mut st, rt, &old, new, opts, sub, true)?;
            return Ok((scale_of(&out), false));
        }
        let mut patched = prepare_body(rt, ns, patched, Some(name))?;
        typed::decode_body(rt, &mut patched, opts.strict)?;
        Ok((
            self.commit_update(&mut st, rt, &old, patched, opts, sub, true)?,
            false,
        ))
    }

    /// The common tail of update and patch: keeps server-owned metadata,
    /// confines subresource writes, applies defaults, records field
    /// ownership, bumps generation, detects no-ops, completes finalizer-gated
    /// deletions, and commits.
    #[allow(clippy::too_many_arguments)]
    fn commit_update(
        &self,
        st: &mut State,
        rt: &ResourceType,
        old: &Value,
        mut new: Value,
        opts: &WriteOptions,
        sub: Option<Subresource>,
        record: bool,
    ) -> Result<Value, ApiError> {
        // A write at another version than the stored one: both sides in
        // the stored shape.
        let converted;
        let old = if super::convert::converts(rt) {
            converted = super::convert::to_stored(rt, old.clone());
            new = super::convert::to_stored(rt, new);
            &converted
        } else {
            old
        };
        let name = meta_str(old, "name").unwrap_or_default().to_string();
        let ts = now();
        carry_system_meta(old, &mut new);
        match sub {
            Some(Subresource::Status) => {
                let status = new.get("status").cloned();
                let managed = new.pointer("/metadata/managedFields").cloned();
                new = old.clone();
                let m = obj_mut(&mut new);
                match status {
                    Some(s) => m.insert("status".into(), s),
                    None => m.remove("status"),
                };
                if let Some(mf) = managed.filter(|_| !record) {
                    child_mut(&mut new, "metadata").insert("managedFields".into(), mf);
                }
                child_mut(&mut new, "metadata").remove("resourceVersion");
            }
            Some(Subresource::Scale) => {}
            None if rt.status => {
                let m = obj_mut(&mut new);
                match old.get("status") {
                    Some(s) => m.insert("status".into(), s.clone()),
                    None => m.remove("status"),
                };
            }
            None => {}
        }
        let mut causes = validation::validate_metadata_maps(&new);
        if sub.is_none() {
            causes.extend(validation::validate_immutable(
                &rt.group, &rt.plural, old, &new,
            ));
        }
        defaults::on_update(rt, old, &mut new);
        if sub.is_none() {
            causes.extend(validation::validate_spec(&rt.group, &rt.plural, &new));
        }
        if !causes.is_empty() {
            return Err(ApiError::invalid(&rt.group, &rt.kind, &name, causes));
        }
        check_custom(st, rt, &name, &mut new, opts.strict)?;
        if is_crd(rt) {
            defaults::validate_crd(&new)?;
            defaults::establish_crd(&mut new, &ts);
        }
        if record {
            fieldmanager::record_update(
                Some(old),
                &mut new,
                &opts.field_manager,
                &rt.api_version(),
                &ts,
                sub.map(Subresource::as_str),
            );
        }
        if rt.generation && spec_differs(&new, old) {
            let g = old
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            child_mut(&mut new, "metadata").insert("generation".into(), json!(g + 1));
        }
        if stable_equal(&new, old) {
            return Ok(old.clone());
        }
        if opts.dry_run {
            if let Some(rv) = old.pointer("/metadata/resourceVersion") {
                child_mut(&mut new, "metadata").insert("resourceVersion".into(), rv.clone());
            }
            return Ok(present(rt, &new));
        }
        let gr = rt.group_resource();
        let ns = meta_str(&new, "namespace").unwrap_or_default().to_string();
        if new.pointer("/metadata/deletionTimestamp").is_some() && finalizers(&new) == 0 {
            let removed = st.put(&gr, new, EventType::Modified).clone();
            let gone = st.remove(&gr, &ns, &name).unwrap_or(removed);
            self.after_remove(st, rt, &gone, Propagation::Background);
            return Ok(present(rt, &gone));
        }
        if is_crd(rt) {
            register_crd(st, &new);
        }
        Ok(present(rt, st.put(&gr, new, EventType::Modified)))
    }

    /// DELETE. Returns the body the real server returns: the object (pods,
    /// namespaces, objects held by finalizers) or a success `Status`.
    pub fn delete(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<Value, ApiError> {
        let mut st = self.lock();
        self.delete_locked(&mut st, rt, ns, name, opts)
    }

    fn delete_locked(
        &self,
        st: &mut State,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<Value, ApiError> {
        let gr = rt.group_resource();
        let key_ns = ns_key(rt, ns).to_string();
        let old = st
            .get(&gr, &key_ns, name)
            .cloned()
            .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))?;
        if rt.group.is_empty()
            && rt.plural == "namespaces"
            && matches!(name, "default" | "kube-system" | "kube-public")
        {
            // The NamespaceLifecycle admission plugin's immortal namespaces.
            return Err(ApiError::new(
                403,
                "Forbidden",
                format!("namespaces \"{name}\" is forbidden: this namespace may not be deleted"),
            )
            .with(name, "", "namespaces"));
        }
        if let Some(uid) = &opts.precondition_uid {
            if *uid != uid_of(&old) {
                return Err(ApiError::conflict(
                    &rt.group,
                    &rt.plural,
                    name,
                    &format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                        uid_of(&old)
                    ),
                ));
            }
        }
        if let Some(rv) = &opts.precondition_resource_version {
            let cur = meta_str(&old, "resourceVersion").unwrap_or_default();
            if rv != cur {
                return Err(ApiError::conflict(
                    &rt.group,
                    &rt.plural,
                    name,
                    &format!(
                        "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {cur}"
                    ),
                ));
            }
        }
        let ts = now();
        let terminating = |mut o: Value| {
            let meta = child_mut(&mut o, "metadata");
            meta.entry("deletionTimestamp").or_insert_with(|| json!(ts));
            if !is_namespace(rt) {
                meta.entry("deletionGracePeriodSeconds")
                    .or_insert_with(|| json!(0));
            }
            o
        };
        if is_namespace(rt) {
            let mut shown = terminating(old.clone());
            child_mut(&mut shown, "status").insert("phase".into(), json!("Terminating"));
            if opts.dry_run {
                return Ok(present(rt, &shown));
            }
            for r in st.resources() {
                let Some(rtype) = st.registry.by_group_resource(&r) else {
                    continue;
                };
                if !rtype.namespaced {
                    continue;
                }
                let keys: Vec<ObjectKey> = st
                    .iter(&r, Some(name), None)
                    .map(|(k, _)| k.clone())
                    .collect();
                for k in keys {
                    st.remove(&r, &k.0, &k.1);
                }
            }
            st.remove(&gr, "", name);
            return Ok(present(rt, &shown));
        }
        if finalizers(&old) > 0 {
            if old.pointer("/metadata/deletionTimestamp").is_some() || opts.dry_run {
                return Ok(present(rt, &terminating(old)));
            }
            return Ok(present(
                rt,
                st.put(&gr, terminating(old), EventType::Modified),
            ));
        }
        if opts.dry_run {
            return Ok(if returns_deleted_object(rt) {
                present(rt, &old)
            } else {
                success_status(&rt.group, &rt.plural, name, &uid_of(&old))
            });
        }
        let removed = st.remove(&gr, &key_ns, name).unwrap_or(old);
        self.after_remove(st, rt, &removed, opts.propagation);
        Ok(if returns_deleted_object(rt) {
            present(rt, &removed)
        } else {
            success_status(&rt.group, &rt.plural, name, &uid_of(&removed))
        })
    }

    /// What follows the removal of an object: a CRD's objects and types go,
    /// and dependents are collected (or orphaned) by owner reference.
    fn after_remove(
        &self,
        st: &mut State,
        rt: &ResourceType,
        removed: &Value,
        propagation: Propagation,
    ) {
        if is_crd(rt) {
            let name = meta_str(removed, "name").unwrap_or_default();
            let types = st.registry.remove_crd(name);
            if let Some(t) = types.first() {
                let gr = t.group_resource();
                let keys: Vec<ObjectKey> =
                    st.iter(&gr, None, None).map(|(k, _)| k.clone()).collect();
                for k in keys {
                    st.remove(&gr, &k.0, &k.1);
                }
            }
        }
        let ns = meta_str(removed, "namespace").map(str::to_string);
        let mut queue = vec![(uid_of(removed), ns)];
        while let Some((uid, owner_ns)) = queue.pop() {
            for gr in st.resources() {
                let deps: Vec<(ObjectKey, Value)> = st
                    .iter(&gr, owner_ns.as_deref(), None)
                    .filter(|(_, o)| {
                        o.pointer("/metadata/ownerReferences")
                            .and_then(Value::as_array)
                            .is_some_and(|refs| {
                                refs.iter()
                                    .any(|r| r.get("uid").and_then(Value::as_str) == Some(&uid))
                            })
                    })
                    .map(|(k, o)| (k.clone(), o.clone()))
                    .collect();
                for (key, mut obj) in deps {
                    let meta = child_mut(&mut obj, "metadata");
                    let remaining: Vec<Value> = meta
                        .get("ownerReferences")
                        .and_then(Value::as_array)
                        .map(|refs| {
                            refs.iter()
                                .filter(|r| r.get("uid").and_then(Value::as_str) != Some(&uid))
                                .cloned()
                                .collect()
                        })
                        .unwrap_or_default();
                    if propagation == Propagation::Orphan || !remaining.is_empty() {
                        if remaining.is_empty() {
                            meta.remove("ownerReferences");
                        } else {
                            meta.insert("ownerReferences".into(), Value::Array(remaining));
                        }
                        st.put(&gr, obj, EventType::Modified);
                    } else if let Some(gone) = st.remove(&gr, &key.0, &key.1) {
                        let dep_ns = (!key.0.is_empty()).then(|| key.0.clone());
                        queue.push((uid_of(&gone), dep_ns));
                    }
                }
            }
        }
    }

    /// DELETE on a collection: deletes every object matching the selectors;
    /// returns the list of what was deleted.
    pub fn delete_collection(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        list: &ListOptions,
        opts: &DeleteOptions,
    ) -> Result<Value, ApiError> {
        let mut st = self.lock();
        let gr = rt.group_resource();
        let ns = if rt.namespaced { ns } else { None };
        let targets: Vec<(ObjectKey, Value)> = st
            .iter(&gr, ns, None)
            .filter(|(_, o)| list.label_selector.matches(o) && list.field_selector.matches(o))
            .map(|(k, o)| (k.clone(), present(rt, o)))
            .collect();
        let mut items = Vec::new();
        for (key, obj) in targets {
            let ns = (!key.0.is_empty()).then_some(key.0.as_str());
            match self.delete_locked(&mut st, rt, ns, &key.1, opts) {
                Ok(_) => items.push(obj),
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(json!({
            "kind": format!("{}List", rt.kind),
            "apiVersion": rt.api_version(),
            "metadata": {"resourceVersion": st.resource_version().to_string()},
            "items": items,
        }))
    }
}

/// Serve (or re-serve) the types of a CRD object.
/// The `openAPIV3Schema` of a custom resource's version, from its CRD.
fn custom_schema(st: &State, rt: &ResourceType) -> Option<Value> {
    let crd_name = rt.crd.as_deref()?;
    let gr = GroupResource {
        group: CRD_RESOURCE.0.to_string(),
        resource: CRD_RESOURCE.1.to_string(),
    };
    let crd = st.get(&gr, "", crd_name)?;
    crdschema::version_schema(crd, &rt.version).cloned()
}

/// A custom resource against its schema: 422 for invalid values, 400 for
/// undeclared fields under `fieldValidation=Strict`, else they are pruned.
fn check_custom(
    st: &State,
    rt: &ResourceType,
    name: &str,
    obj: &mut Value,
    strict: bool,
) -> Result<(), ApiError> {
    let Some(schema) = custom_schema(st, rt) else {
        return Ok(());
    };
    let f = crdschema::check(&schema, obj, !strict);
    if strict && !f.unknown.is_empty() {
        return Err(typed::strict_error(rt, &f.unknown));
    }
    if !f.causes.is_empty() {
        return Err(ApiError::invalid(&rt.group, &rt.kind, name, f.causes));
    }
    Ok(())
}

fn register_crd(st: &mut State, crd: &Value) {
    let name = meta_str(crd, "name").unwrap_or_default().to_string();
    if let Some(types) = types_from_crd(crd) {
        if let Some(first) = types.first() {
            if st.registry.name_taken(&first.group_resource(), &name) {
                return;
            }
        }
        st.registry.set_crd(&name, types);
    }
}

fn check_rv(rt: &ResourceType, name: &str, old: &Value, rv: Option<&str>) -> Result<(), ApiError> {
    match rv {
        Some(rv) if !rv.is_empty() && Some(rv) != meta_str(old, "resourceVersion") => {
            Err(ApiError::conflict_modified(&rt.group, &rt.plural, name))
        }
        _ => Ok(()),
    }
}

/// The `autoscaling/v1` `Scale` view of an object.
fn scale_of(obj: &Value) -> Value {
    let meta = obj.get("metadata").cloned().unwrap_or(json!({}));
    let mut m = Map::new();
    for k in [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
    ] {
        if let Some(v) = meta.get(k) {
            m.insert(k.into(), v.clone());
        }
    }
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": m,
        "spec": {"replicas": obj.pointer("/spec/replicas").cloned().unwrap_or(json!(0))},
        "status": {
            "replicas": obj.pointer("/status/replicas").cloned().unwrap_or(json!(0)),
            "selector": match_labels_string(obj.pointer("/spec/selector")),
        },
    })
}

/// `old` with `spec.replicas` from a `Scale` body.
fn with_replicas(
    rt: &ResourceType,
    name: &str,
    old: &Value,
    scale: &Value,
) -> Result<Value, ApiError> {
    let replicas = scale.pointer("/spec/replicas").and_then(Value::as_i64);
    let Some(n) = replicas.filter(|n| *n >= 0) else {
        return Err(ApiError::invalid(
            "autoscaling",
            "Scale",
            name,
            vec![Cause {
                reason: "FieldValueInvalid".into(),
                message: format!(
                    "Invalid value: {}: must be greater than or equal to 0",
                    scale.pointer("/spec/replicas").unwrap_or(&Value::Null)
                ),
                field: "spec.replicas".into(),
            }],
        ));
    };
    let _ = rt;
    let mut new = old.clone();
    child_mut(&mut new, "spec").insert("replicas".into(), json!(n));
    Ok(new)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object() -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": "a",
                "resourceVersion": "7",
                "managedFields": [{"manager": "m", "time": "2026-01-01T00:00:00Z"}],
            },
            "data": {"k": "v"},
        })
    }

    #[test]
    fn a_write_that_changes_only_the_version_or_times_is_a_no_op() {
        let old = object();
        let mut new = old.clone();
        new["metadata"]["resourceVersion"] = json!("8");
        new["metadata"]["managedFields"][0]["time"] = json!("2026-02-02T00:00:00Z");
        assert!(stable_equal(&new, &old));
        // Key order does not count, as in `Value`'s own equality.
        let reordered = json!({
            "data": {"k": "v"},
            "metadata": old["metadata"].clone(),
            "kind": "ConfigMap",
            "apiVersion": "v1",
        });
        assert!(stable_equal(&reordered, &old));
    }

    #[test]
    fn anything_else_is_a_change() {
        let old = object();
        for change in [
            json!({"data": {"k": "w"}}),
            json!({"metadata": {"labels": {"a": "b"}}}),
            json!({"metadata": {"managedFields": [{"manager": "n", "time": "x"}]}}),
            json!({"extra": 1}),
        ] {
            let new = crate::emulator::patch::merge_patch(&old, &change);
            assert!(!stable_equal(&new, &old), "{change}");
        }
        let mut fewer = old.clone();
        obj_mut(&mut fewer).remove("data");
        assert!(!stable_equal(&fewer, &old));
        assert!(!stable_equal(&old, &fewer));
    }

    #[test]
    fn generation_follows_everything_but_metadata_and_status() {
        let old = object();
        let mut status_only = old.clone();
        obj_mut(&mut status_only).insert("status".into(), json!({"x": 1}));
        status_only["metadata"]["labels"] = json!({"a": "b"});
        assert!(!spec_differs(&status_only, &old));
        let mut data = old.clone();
        data["data"]["k"] = json!("w");
        assert!(spec_differs(&data, &old));
    }
}
