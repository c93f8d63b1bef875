//! Simulated controllers: what kube-controller-manager, the scheduler, the
//! kubelet and a load-balancer controller would do to the objects a client
//! writes, so that rollouts, readiness and health look real to kubesync,
//! kube-rs and `kubectl`.
//!
//! [`Simulation`] is one [`Controller`]: every committed write enqueues the
//! object (and its controlling owner), and each queued object is reconciled
//! level-triggered (once per batch of events, however many of them named
//! it), one kind per module (`deployment`, `replicaset`,
//! `statefulset`, `daemonset`, `job`, `pod`, `pvc`, `service`,
//! `apiservice`, `pdb`). A reconcile
//! may ask to run again after a delay; the controller task wakes when the
//! earliest such timer is due, so delayed transitions (a pod becoming ready
//! after [`SimulationConfig::ready_delay`], a progress deadline passing)
//! happen on time and everything else as soon as the triggering write is
//! seen.
//! Status is written through the status subresource under the real
//! controllers' field manager names, so spec ownership and `generation`
//! are never disturbed.
//!
//! It does not own deletion cascades (the `cluster` verbs collect dependents
//! by owner reference) nor fault injection (`faults`). Simplifications: one
//! node (`emulator-node`); pods are never evicted; no Events, Endpoints or
//! ControllerRevisions are written; a Job's first failed pod fails the Job;
//! CronJobs never run; PVCs bind at once (no PersistentVolume objects, the
//! emulator does not serve that type).

mod apiservice;
mod daemonset;
mod deployment;
mod images;
mod job;
mod pdb;
mod pod;
mod pvc;
mod replicaset;
mod service;
mod statefulset;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::cluster::{Cluster, DeleteOptions, ListOptions, PatchType, WriteOptions};
use super::errors::ApiError;
use super::hooks::Controller;
use super::resources::{GroupResource, ResourceType};
use super::store::{EventType, WatchEvent};
use super::util::now;

pub use images::{image_id, image_matches};

/// The field manager of the workload, Job and volume controllers.
pub const CONTROLLER_MANAGER: &str = "kube-controller-manager";
/// The field manager of pod status writes.
pub const KUBELET: &str = "kubelet";
/// The field manager that assigns pods to the node.
pub const SCHEDULER: &str = "kube-scheduler";
/// The field manager of load-balancer status writes.
pub const CLOUD_CONTROLLER: &str = "cloud-controller-manager";

/// How the simulated controllers behave. Deterministic: the same writes
/// with the same configuration produce the same names, hashes, digests and
/// IPs.
#[derive(Debug, Clone, PartialEq)]
pub struct SimulationConfig {
    /// Run the simulated controllers at all.
    pub enabled: bool,
    /// How long after a pod is first seen it becomes ready (or, for a Job's
    /// pod, finishes; for a failing image, reports its failure). Zero makes
    /// every transition happen as soon as the write is seen.
    pub ready_delay: Duration,
    /// Image patterns that never pull: their pods stay Pending with the
    /// container waiting in `ImagePullBackOff`. A pattern with `*` or `?` is a
    /// glob over the whole image reference; otherwise a substring.
    pub failing_images: Vec<String>,
    /// Image patterns whose containers start and crash: the pod is Running
    /// but never ready, the container waiting in `CrashLoopBackOff`.
    pub crashing_images: Vec<String>,
    /// Image patterns whose Job pods exit with an error: the Job fails with
    /// `BackoffLimitExceeded`; a bare pod with `restartPolicy: Never` fails too.
    pub failing_jobs: Vec<String>,
    /// What an image reference resolves to (`"nginx:1.25"` →
    /// `"sha256:<64 hex>"`, the `sha256:` prefix optional). Unlisted images
    /// resolve to the sha256 of their reference; an image pinned by digest
    /// resolves to its own digest.
    pub image_digests: HashMap<String, String>,
    /// Use this instead of each Deployment's `spec.progressDeadlineSeconds`
    /// (tests use a short one).
    pub progress_deadline_override: Option<Duration>,
    /// Addresses handed to `LoadBalancer` Services, lowest free first.
    pub lb_ip_pool: Vec<Ipv4Addr>,
    /// How often every object is reconciled again even without a write (a
    /// safety net; the first tick always resyncs).
    pub resync_interval: Duration,
}

/// The node every pod runs on.
pub const NODE_NAME: &str = "emulator-node";
/// The node's address (`status.hostIP`).
pub const HOST_IP: &str = "172.18.0.2";

impl Default for SimulationConfig {
    fn default() -> Self {
        SimulationConfig {
            enabled: true,
            ready_delay: Duration::from_millis(300),
            failing_images: Vec::new(),
            crashing_images: Vec::new(),
            failing_jobs: Vec::new(),
            image_digests: HashMap::new(),
            progress_deadline_override: None,
            lb_ip_pool: (200..=250)
                .map(|n| Ipv4Addr::new(172, 18, 255, n))
                .collect(),
            resync_interval: Duration::from_secs(30),
        }
    }
}

/// The kinds the simulation reconciles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Kind {
    Deployment,
    ReplicaSet,
    StatefulSet,
    DaemonSet,
    Job,
    Pod,
    Pvc,
    Service,
    ApiService,
    Pdb,
}

impl Kind {
    const ALL: [Kind; 10] = [
        Kind::Deployment,
        Kind::ReplicaSet,
        Kind::StatefulSet,
        Kind::DaemonSet,
        Kind::Job,
        Kind::Pod,
        Kind::Pvc,
        Kind::Service,
        Kind::ApiService,
        Kind::Pdb,
    ];

    fn of_resource(gr: &GroupResource) -> Option<Kind> {
        Some(match (gr.group.as_str(), gr.resource.as_str()) {
            ("apps", "deployments") => Kind::Deployment,
            ("apps", "replicasets") => Kind::ReplicaSet,
            ("apps", "statefulsets") => Kind::StatefulSet,
            ("apps", "daemonsets") => Kind::DaemonSet,
            ("batch", "jobs") => Kind::Job,
            ("", "pods") => Kind::Pod,
            ("", "persistentvolumeclaims") => Kind::Pvc,
            ("", "services") => Kind::Service,
            ("apiregistration.k8s.io", "apiservices") => Kind::ApiService,
            ("policy", "poddisruptionbudgets") => Kind::Pdb,
            _ => return None,
        })
    }

    /// The kind an owner reference names.
    fn of_owner(api_version: &str, kind: &str) -> Option<Kind> {
        Some(match (api_version, kind) {
            ("apps/v1", "Deployment") => Kind::Deployment,
            ("apps/v1", "ReplicaSet") => Kind::ReplicaSet,
            ("apps/v1", "StatefulSet") => Kind::StatefulSet,
            ("apps/v1", "DaemonSet") => Kind::DaemonSet,
            ("batch/v1", "Job") => Kind::Job,
            _ => return None,
        })
    }
}

/// One object to reconcile.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Key {
    kind: Kind,
    namespace: String,
    name: String,
}

/// The served types the simulation writes.
struct Types {
    deployments: Arc<ResourceType>,
    replicasets: Arc<ResourceType>,
    statefulsets: Arc<ResourceType>,
    daemonsets: Arc<ResourceType>,
    jobs: Arc<ResourceType>,
    pods: Arc<ResourceType>,
    pvcs: Arc<ResourceType>,
    services: Arc<ResourceType>,
    apiservices: Arc<ResourceType>,
    pdbs: Arc<ResourceType>,
}

impl Types {
    fn load(cluster: &Cluster) -> Option<Types> {
        Some(Types {
            deployments: cluster.resource("apps/v1", "Deployment")?,
            replicasets: cluster.resource("apps/v1", "ReplicaSet")?,
            statefulsets: cluster.resource("apps/v1", "StatefulSet")?,
            daemonsets: cluster.resource("apps/v1", "DaemonSet")?,
            jobs: cluster.resource("batch/v1", "Job")?,
            pods: cluster.resource("v1", "Pod")?,
            pvcs: cluster.resource("v1", "PersistentVolumeClaim")?,
            services: cluster.resource("v1", "Service")?,
            apiservices: cluster.resource("apiregistration.k8s.io/v1", "APIService")?,
            pdbs: cluster.resource("policy/v1", "PodDisruptionBudget")?,
        })
    }

    fn of(&self, kind: Kind) -> &Arc<ResourceType> {
        match kind {
            Kind::Deployment => &self.deployments,
            Kind::ReplicaSet => &self.replicasets,
            Kind::StatefulSet => &self.statefulsets,
            Kind::DaemonSet => &self.daemonsets,
            Kind::Job => &self.jobs,
            Kind::Pod => &self.pods,
            Kind::Pvc => &self.pvcs,
            Kind::Service => &self.services,
            Kind::ApiService => &self.apiservices,
            Kind::Pdb => &self.pdbs,
        }
    }
}

/// Where a Deployment's progress deadline is measured from.
#[derive(Debug, Clone)]
struct Progress {
    generation: i64,
    /// `None` while the rollout is complete.
    since: Option<Instant>,
}

/// The controllers' memory between reconciles.
#[derive(Default)]
struct SimState {
    types: Option<Arc<Types>>,
    queue: BTreeSet<Key>,
    timers: HashMap<Key, Instant>,
    /// When each pod (by uid) was first seen.
    pod_seen: HashMap<String, Instant>,
    /// Deployment (by uid) rollout clocks.
    progress: HashMap<String, Progress>,
    /// Load-balancer addresses by Service `(namespace, name)`.
    lb_ips: BTreeMap<(String, String), Ipv4Addr>,
    /// Pod IPs handed out so far.
    pod_ips: u32,
    /// Sequence for generated name suffixes.
    name_seq: u64,
    last_resync: Option<Instant>,
}

impl SimState {
    fn enqueue(&mut self, kind: Kind, namespace: &str, name: &str) {
        self.queue.insert(Key {
            kind,
            namespace: namespace.to_string(),
            name: name.to_string(),
        });
    }

    fn next_pod_ip(&mut self) -> String {
        self.pod_ips += 1;
        let n = self.pod_ips;
        format!("10.244.{}.{}", (n / 250) & 0xff, n % 250 + 2)
    }

    /// A deterministic five-character suffix, as `generateName` would add.
    fn next_suffix(&mut self, base: &str) -> String {
        self.name_seq += 1;
        let digest = Sha256::digest(format!("{base}/{}", self.name_seq).as_bytes());
        digest
            .iter()
            .take(5)
            .map(|b| SAFE_CHARS[usize::from(*b) % SAFE_CHARS.len()] as char)
            .collect()
    }
}

/// The alphabet Kubernetes uses for generated names and hashes.
const SAFE_CHARS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// What a reconcile sees.
struct Ctx<'a> {
    cluster: &'a Cluster,
    config: &'a SimulationConfig,
    types: &'a Types,
    state: &'a mut SimState,
    now: Instant,
}

/// A reconcile's verdict: run again after this long, or only on the next
/// write.
type Requeue = Option<Duration>;

/// The simulated controllers, as one [`Controller`]. Its configuration can
/// change while the emulator runs.
pub struct Simulation {
    config: RwLock<SimulationConfig>,
    state: Mutex<SimState>,
}

impl std::fmt::Debug for Simulation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulation")
            .field("config", &*self.config.read())
            .finish_non_exhaustive()
    }
}

/// Upper bound of reconciles per drain, so a misbehaving loop cannot starve
/// the controller task.
const MAX_RECONCILES_PER_DRAIN: usize = 10_000;

impl Simulation {
    pub fn new(config: SimulationConfig) -> Self {
        Simulation {
            config: RwLock::new(config),
            state: Mutex::new(SimState::default()),
        }
    }

    /// The current configuration.
    pub fn config(&self) -> SimulationConfig {
        self.config.read().clone()
    }

    /// Replaces the configuration; every object is reconciled again on the
    /// next tick.
    pub fn set_config(&self, config: SimulationConfig) {
        *self.config.write() = config;
        self.state.lock().last_resync = None;
    }

    /// Changes the configuration in place (see [`Self::set_config`]).
    pub fn update_config(&self, change: impl FnOnce(&mut SimulationConfig)) {
        change(&mut self.config.write());
        self.state.lock().last_resync = None;
    }

    /// Says what `image` resolves to from now on (pods created later report
    /// it in `imageID`).
    pub fn set_image_digest(&self, image: &str, digest: &str) {
        self.update_config(|c| {
            c.image_digests
                .insert(image.to_string(), digest.to_string());
        });
    }

    fn drain(&self, cluster: &Cluster) {
        let config = self.config.read().clone();
        let mut st = self.state.lock();
        let types = match &st.types {
            Some(t) => t.clone(),
            None => match Types::load(cluster) {
                Some(t) => {
                    let t = Arc::new(t);
                    st.types = Some(t.clone());
                    t
                }
                None => return,
            },
        };
        for _ in 0..MAX_RECONCILES_PER_DRAIN {
            let Some(key) = st.queue.pop_first() else {
                return;
            };
            let now = Instant::now();
            let mut ctx = Ctx {
                cluster,
                config: &config,
                types: &types,
                state: &mut st,
                now,
            };
            let (ns, name) = (key.namespace.as_str(), key.name.as_str());
            let requeue = match key.kind {
                Kind::Deployment => deployment::reconcile(&mut ctx, ns, name),
                Kind::ReplicaSet => replicaset::reconcile(&mut ctx, ns, name),
                Kind::StatefulSet => statefulset::reconcile(&mut ctx, ns, name),
                Kind::DaemonSet => daemonset::reconcile(&mut ctx, ns, name),
                Kind::Job => job::reconcile(&mut ctx, ns, name),
                Kind::Pod => pod::reconcile(&mut ctx, ns, name),
                Kind::Pvc => pvc::reconcile(&mut ctx, ns, name),
                Kind::Service => service::reconcile(&mut ctx, ns, name),
                Kind::ApiService => apiservice::reconcile(&mut ctx, ns, name),
                Kind::Pdb => pdb::reconcile(&mut ctx, ns, name),
            };
            if let Some(after) = requeue {
                let due = now + after;
                let entry = st.timers.entry(key).or_insert(due);
                if due < *entry {
                    *entry = due;
                }
            }
        }
        tracing::warn!(
            queued = st.queue.len(),
            "simulated controllers: reconcile budget exhausted; continuing next tick"
        );
    }

    /// Queues every object of every simulated kind.
    fn resync(&self, cluster: &Cluster) {
        let Some(types) = Types::load(cluster) else {
            return;
        };
        let mut st = self.state.lock();
        for kind in Kind::ALL {
            for obj in list(cluster, types.of(kind), None) {
                st.enqueue(kind, namespace_of(&obj), name_of(&obj));
            }
        }
        st.last_resync = Some(Instant::now());
    }
}

impl Controller for Simulation {
    fn name(&self) -> &str {
        "simulation"
    }

    fn on_event(&self, _cluster: &Cluster, event: &WatchEvent) {
        let Some(kind) = Kind::of_resource(&event.resource) else {
            return;
        };
        {
            let mut st = self.state.lock();
            st.enqueue(kind, &event.namespace, &event.name);
            for (owner, name) in controller_owners(&event.object)
                .into_iter()
                .chain(event.previous.iter().flat_map(controller_owners))
            {
                st.enqueue(owner, &event.namespace, &name);
            }
            if event.event_type == EventType::Deleted {
                let uid = uid_of(&event.object).to_string();
                match kind {
                    Kind::Pod => {
                        st.pod_seen.remove(&uid);
                    }
                    Kind::Deployment => {
                        st.progress.remove(&uid);
                    }
                    Kind::Service => {
                        st.lb_ips
                            .remove(&(event.namespace.clone(), event.name.clone()));
                    }
                    _ => {}
                }
            }
        }
    }

    /// Reconciles what the batch's events queued: an object written several
    /// times in one burst (a status write echoing back, a pod and its
    /// ReplicaSet) is reconciled once.
    fn after_events(&self, cluster: &Cluster) {
        self.drain(cluster);
    }

    fn next_due(&self) -> Option<Instant> {
        self.state.lock().timers.values().min().copied()
    }

    fn tick(&self, cluster: &Cluster) {
        let resync_due = {
            let st = self.state.lock();
            let interval = self.config.read().resync_interval;
            st.last_resync
                .is_none_or(|at| at.elapsed() >= interval.max(Duration::from_millis(100)))
        };
        if resync_due {
            self.resync(cluster);
        }
        {
            let mut st = self.state.lock();
            let now = Instant::now();
            let due: Vec<Key> = st
                .timers
                .iter()
                .filter(|(_, at)| **at <= now)
                .map(|(k, _)| k.clone())
                .collect();
            for k in due {
                st.timers.remove(&k);
                st.queue.insert(k);
            }
        }
        self.drain(cluster);
    }
}

// ---- helpers shared by the kind modules ----

fn name_of(obj: &Value) -> &str {
    str_at(obj, "/metadata/name").unwrap_or_default()
}

fn namespace_of(obj: &Value) -> &str {
    str_at(obj, "/metadata/namespace").unwrap_or_default()
}

fn uid_of(obj: &Value) -> &str {
    str_at(obj, "/metadata/uid").unwrap_or_default()
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

fn i64_at(v: &Value, pointer: &str) -> Option<i64> {
    v.pointer(pointer).and_then(Value::as_i64)
}

fn generation(obj: &Value) -> i64 {
    i64_at(obj, "/metadata/generation").unwrap_or(0)
}

fn is_deleting(obj: &Value) -> bool {
    obj.pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null())
}

/// `spec.replicas`, defaulting to 1, never negative.
fn desired_replicas(obj: &Value) -> i64 {
    i64_at(obj, "/spec/replicas").unwrap_or(1).max(0)
}

/// The kinds and names of `obj`'s controlling owners we simulate.
fn controller_owners(obj: &Value) -> Vec<(Kind, String)> {
    owner_refs(obj)
        .filter(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
        .filter_map(|r| {
            let kind = Kind::of_owner(
                r.get("apiVersion").and_then(Value::as_str)?,
                r.get("kind").and_then(Value::as_str)?,
            )?;
            Some((kind, r.get("name").and_then(Value::as_str)?.to_string()))
        })
        .collect()
}

fn owner_refs(obj: &Value) -> impl Iterator<Item = &Value> {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

/// Whether `obj` has an owner reference to the object with `uid`.
fn owned_by(obj: &Value, uid: &str) -> bool {
    !uid.is_empty() && owner_refs(obj).any(|r| r.get("uid").and_then(Value::as_str) == Some(uid))
}

/// A controlling owner reference to `owner`.
fn controller_ref(owner: &Value) -> Value {
    json!({
        "apiVersion": str_at(owner, "/apiVersion").unwrap_or_default(),
        "kind": str_at(owner, "/kind").unwrap_or_default(),
        "name": name_of(owner),
        "uid": uid_of(owner),
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// Every object of `rt` (in `ns`, or everywhere), in key order.
fn list(cluster: &Cluster, rt: &ResourceType, ns: Option<&str>) -> Vec<Value> {
    match cluster.list(rt, ns, &ListOptions::default()) {
        Ok(mut l) => match l.get_mut("items").map(Value::take) {
            Some(Value::Array(items)) => items,
            _ => Vec::new(),
        },
        Err(e) => {
            tracing::debug!(error = %e, resource = %rt.plural, "simulation: list failed");
            Vec::new()
        }
    }
}

/// The objects of `rt` in `ns` controlled by `owner`, not being deleted.
fn owned(cluster: &Cluster, rt: &ResourceType, ns: &str, owner: &Value) -> Vec<Value> {
    let uid = uid_of(owner);
    list(cluster, rt, Some(ns))
        .into_iter()
        .filter(|o| owned_by(o, uid) && !is_deleting(o))
        .collect()
}

fn get(ctx: &Ctx<'_>, kind: Kind, ns: &str, name: &str) -> Option<Value> {
    let rt = ctx.types.of(kind);
    let ns = rt.namespaced.then_some(ns);
    ctx.cluster.get(rt, ns, name).ok()
}

fn log_write_error(what: &str, kind: Kind, ns: &str, name: &str, e: &ApiError) {
    // Conflicts and NotFound mean another write raced ours; its event will
    // bring the object back to the queue.
    if matches!(e.code, 404 | 409) {
        tracing::debug!(error = %e, ?kind, namespace = ns, name, "simulation: {what} raced");
    } else {
        tracing::warn!(error = %e, ?kind, namespace = ns, name, "simulation: {what} failed");
    }
}

/// Replaces `obj`'s status through the status subresource as `manager`
/// (a no-op when nothing changed).
fn write_status(ctx: &Ctx<'_>, kind: Kind, obj: &Value, status: Value, manager: &str) {
    if obj.get("status") == Some(&status) {
        return;
    }
    let (ns, name) = (namespace_of(obj), name_of(obj));
    let rt = ctx.types.of(kind);
    // The controller owns status: last writer wins, no precondition.
    let result = ctx.cluster.update_status(
        rt,
        rt.namespaced.then_some(ns),
        name,
        status,
        &WriteOptions::by(manager),
    );
    if let Err(e) = result {
        log_write_error("status update", kind, ns, name, &e);
    }
}

/// A JSON merge patch of `name` (not its status) as `manager`.
fn merge_patch(ctx: &Ctx<'_>, kind: Kind, ns: &str, name: &str, patch: Value, manager: &str) {
    let rt = ctx.types.of(kind);
    let result = ctx.cluster.patch(
        rt,
        rt.namespaced.then_some(ns),
        name,
        PatchType::Merge,
        &patch,
        None,
        &WriteOptions::by(manager),
    );
    if let Err(e) = result {
        log_write_error("patch", kind, ns, name, &e);
    }
}

fn create(ctx: &Ctx<'_>, kind: Kind, ns: &str, body: Value) -> Result<Value, Box<ApiError>> {
    let rt = ctx.types.of(kind);
    ctx.cluster
        .create(
            rt,
            rt.namespaced.then_some(ns),
            body,
            &WriteOptions::by(CONTROLLER_MANAGER),
        )
        .map_err(Box::new)
}

fn delete(ctx: &Ctx<'_>, kind: Kind, ns: &str, name: &str) {
    let rt = ctx.types.of(kind);
    if let Err(e) = ctx.cluster.delete(
        rt,
        rt.namespaced.then_some(ns),
        name,
        &DeleteOptions::default(),
    ) {
        log_write_error("delete", kind, ns, name, &e);
    }
}

/// Creates a pod from `template` named `<base>-<5 chars>` (or exactly
/// `fixed_name`), owned by `owner`, with `extra_labels` added.
fn create_pod(
    ctx: &mut Ctx<'_>,
    owner: &Value,
    template: &Value,
    name: PodName<'_>,
    extra_labels: &[(&str, String)],
    edit_spec: impl Fn(&mut Map<String, Value>),
) -> Option<Value> {
    let ns = namespace_of(owner).to_string();
    let mut labels = template
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    for (k, v) in extra_labels {
        labels.insert((*k).to_string(), json!(v));
    }
    let mut spec = template
        .get("spec")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    edit_spec(&mut spec);
    let mut meta = Map::new();
    meta.insert("namespace".into(), json!(ns));
    meta.insert("labels".into(), Value::Object(labels));
    if let Some(a) = template
        .pointer("/metadata/annotations")
        .filter(|a| a.as_object().is_some_and(|m| !m.is_empty()))
    {
        meta.insert("annotations".into(), a.clone());
    }
    meta.insert("ownerReferences".into(), json!([controller_ref(owner)]));
    for attempt in 0..10 {
        let pod_name = match name {
            PodName::Fixed(n) => n.to_string(),
            PodName::Generated(base) => format!("{base}-{}", ctx.state.next_suffix(base)),
        };
        meta.insert("name".into(), json!(pod_name));
        let body = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": meta,
            "spec": spec,
        });
        match create(ctx, Kind::Pod, &ns, body) {
            Ok(pod) => return Some(pod),
            Err(e) if e.code == 409 && matches!(name, PodName::Generated(_)) && attempt < 9 => {}
            Err(e) => {
                log_write_error("pod create", Kind::Pod, &ns, &pod_name, &e);
                return None;
            }
        }
    }
    None
}

#[derive(Clone, Copy)]
enum PodName<'a> {
    Fixed(&'a str),
    Generated(&'a str),
}

/// Whether the pod is counted by its controller: not terminating, not
/// finished.
fn pod_active(pod: &Value) -> bool {
    !is_deleting(pod)
        && !matches!(
            str_at(pod, "/status/phase"),
            Some("Succeeded") | Some("Failed")
        )
}

/// Whether the pod's Ready condition is True.
fn pod_ready(pod: &Value) -> bool {
    condition_status(pod, "Ready") == Some("True")
}

fn condition_status<'a>(obj: &'a Value, type_: &str) -> Option<&'a str> {
    obj.pointer("/status/conditions")
        .and_then(Value::as_array)?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(type_))?
        .get("status")
        .and_then(Value::as_str)
}

/// One condition a controller asserts.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Cond {
    type_: &'static str,
    status: &'static str,
    reason: String,
    message: String,
}

impl Cond {
    fn new(type_: &'static str, status: &'static str, reason: &str, message: &str) -> Self {
        Cond {
            type_,
            status,
            reason: reason.to_string(),
            message: message.to_string(),
        }
    }
}

/// `conds` as a `status.conditions` array, keeping the timestamps of `old`
/// where nothing changed: `lastTransitionTime` while the status holds,
/// `lastUpdateTime` (when `update_time`) while status, reason and message
/// hold. Stable output keeps reconciles from writing forever.
fn conditions(old: &Value, conds: &[Cond], update_time: bool) -> Value {
    let ts = now();
    let prior = old
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let items: Vec<Value> = conds
        .iter()
        .map(|c| {
            let was = prior
                .iter()
                .find(|p| p.get("type").and_then(Value::as_str) == Some(c.type_));
            let same_status =
                was.is_some_and(|p| p.get("status").and_then(Value::as_str) == Some(c.status));
            let same_all = same_status
                && was.is_some_and(|p| {
                    p.get("reason").and_then(Value::as_str) == Some(c.reason.as_str())
                        && p.get("message").and_then(Value::as_str) == Some(c.message.as_str())
                });
            let keep = |field: &str, same: bool| -> Value {
                match was.and_then(|p| p.get(field)).filter(|_| same) {
                    Some(v) => v.clone(),
                    None => json!(ts),
                }
            };
            let mut m = Map::new();
            m.insert("type".into(), json!(c.type_));
            m.insert("status".into(), json!(c.status));
            if update_time {
                m.insert("lastUpdateTime".into(), keep("lastUpdateTime", same_all));
            }
            m.insert(
                "lastTransitionTime".into(),
                keep("lastTransitionTime", same_status),
            );
            if !c.reason.is_empty() {
                m.insert("reason".into(), json!(c.reason));
            }
            if !c.message.is_empty() {
                m.insert("message".into(), json!(c.message));
            }
            Value::Object(m)
        })
        .collect();
    Value::Array(items)
}

/// Inserts `key: n` unless `n` is zero (the API omits zero counts).
fn put_count(status: &mut Map<String, Value>, key: &str, n: i64) {
    if n != 0 {
        status.insert(key.into(), json!(n));
    }
}

/// A stable hash of a pod template, in the form of `pod-template-hash`
/// (up to ten characters of the safe alphabet). Key order does not matter.
fn template_hash(template: &Value) -> String {
    let mut t = template.clone();
    if let Some(labels) = t
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove("pod-template-hash");
        labels.remove("controller-revision-hash");
    }
    let mut canonical = String::new();
    write_canonical(&t, &mut canonical);
    let mut hash: u32 = 0x811c_9dc5;
    for b in canonical.bytes() {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash.to_string()
        .bytes()
        .map(|b| SAFE_CHARS[usize::from(b) % SAFE_CHARS.len()] as char)
        .collect()
}

/// JSON with object keys sorted, so equal values hash equally.
fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String((*k).clone()).to_string());
                out.push(':');
                if let Some(child) = m.get(*k) {
                    write_canonical(child, out);
                }
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, child) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(child, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// The label selector of a workload as a map (its `matchLabels`).
fn match_labels(obj: &Value) -> Map<String, Value> {
    obj.pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_hash_is_stable_and_order_free() {
        let a = json!({"metadata": {"labels": {"app": "x", "tier": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}});
        let b = json!({"spec": {"containers": [{"image": "nginx:1", "name": "c"}]}, "metadata": {"labels": {"tier": "web", "app": "x"}}});
        let h = template_hash(&a);
        assert_eq!(h, template_hash(&b));
        assert!(!h.is_empty() && h.len() <= 10);
        assert!(h.bytes().all(|c| SAFE_CHARS.contains(&c)));
        let c = json!({"metadata": {"labels": {"app": "x", "tier": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx:2"}]}});
        assert_ne!(h, template_hash(&c));
        let mut with_hash = a.clone();
        with_hash["metadata"]["labels"]["pod-template-hash"] = json!(h.clone());
        assert_eq!(h, template_hash(&with_hash));
    }

    #[test]
    fn suffixes_are_deterministic() {
        let mut a = SimState::default();
        let mut b = SimState::default();
        let s1 = a.next_suffix("web-abc");
        assert_eq!(s1, b.next_suffix("web-abc"));
        assert_eq!(s1.len(), 5);
        assert_ne!(s1, a.next_suffix("web-abc"));
    }

    #[test]
    fn conditions_keep_timestamps_when_unchanged() {
        let old = json!({"status": {"conditions": [
            {"type": "Available", "status": "True", "lastUpdateTime": "T0", "lastTransitionTime": "T0", "reason": "R", "message": "M"}
        ]}});
        let same = conditions(&old, &[Cond::new("Available", "True", "R", "M")], true);
        assert_eq!(same[0]["lastTransitionTime"], "T0");
        assert_eq!(same[0]["lastUpdateTime"], "T0");
        let msg = conditions(&old, &[Cond::new("Available", "True", "R", "M2")], true);
        assert_eq!(msg[0]["lastTransitionTime"], "T0");
        assert_ne!(msg[0]["lastUpdateTime"], "T0");
        let flipped = conditions(&old, &[Cond::new("Available", "False", "R", "M")], false);
        assert_ne!(flipped[0]["lastTransitionTime"], "T0");
        assert!(flipped[0].get("lastUpdateTime").is_none());
    }
}
