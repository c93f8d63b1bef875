//! One image-sync run: for every selected workload (Deployments,
//! DaemonSets, StatefulSets, CronJobs; init containers included) compare
//! the digests its current pods run (`status.containerStatuses[].imageID`,
//! `initContainerStatuses`) with the digest the registry serves for the
//! tag, and pin the ones that differ to `repo:tag@sha256:…` by server-side
//! apply as [`FIELD_MANAGER`], owning only the image fields.
//!
//! The decision per container is [`decide`] (pure); this module's IO is
//! listing workloads, pods, Jobs (for CronJobs) and pull Secrets once per
//! run, resolving each tag once ([`RegistryClient`] caches), and one apply
//! per workload that changes. A run where nothing moved writes nothing.
//! [`run_once`] is the entry the CLI and the controller (`kubesync run`)
//! call; printing is the CLI's.

use std::collections::{BTreeMap, HashMap};

use futures::stream::{self, StreamExt};
use parking_lot::Mutex;
use serde::Serialize;
use serde_json::{Map, Value};

use super::credentials::{Credentials, DockerConfig};
use super::reference::{digest_of_image_id, Digest, Reference};
use super::registry::{RegistryClient, RegistryError, RegistryOptions, RegistryStats};
use super::workload::{
    self, annotation_owners, image_owners, pin_patch, ContainerList, TemplateContainer,
    WorkloadKind, RESTART_ANNOTATION,
};
use crate::cluster::{ClusterClient, GroupVersionKind, RequestStats};
use crate::model::ObjectRef;

/// The field manager image sync applies pins as.
pub const FIELD_MANAGER: &str = "kubesync-image-sync";

/// Which namespaces to look in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Namespaces {
    One(String),
    All,
}

/// A `--field-selector` on workloads: `metadata.name` and
/// `metadata.namespace` with `=`, `==` or `!=`, comma-separated — the
/// fields the API server supports for workload kinds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    pub fn parse(s: &str) -> Result<FieldSelector, String> {
        let mut out = Vec::new();
        for term in s.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let (field, eq, value) = if let Some((f, v)) = term.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = term.split_once("==") {
                (f, true, v)
            } else if let Some((f, v)) = term.split_once('=') {
                (f, true, v)
            } else {
                return Err(format!(
                    "field selector term \"{term}\" is not FIELD=VALUE or FIELD!=VALUE"
                ));
            };
            let field = field.trim();
            if !matches!(field, "metadata.name" | "metadata.namespace") {
                return Err(format!(
                    "field selector \"{field}\" is not supported for workloads (use metadata.name or metadata.namespace)"
                ));
            }
            out.push((field.to_string(), eq, value.trim().to_string()));
        }
        Ok(FieldSelector(out))
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.0.iter().all(|(field, eq, value)| {
            let actual = match field.as_str() {
                "metadata.name" => obj.pointer("/metadata/name"),
                _ => obj.pointer("/metadata/namespace"),
            }
            .and_then(Value::as_str)
            .unwrap_or_default();
            (actual == value) == *eq
        })
    }
}

/// Which workloads a run checks.
#[derive(Debug, Clone)]
pub struct Selection {
    pub namespaces: Namespaces,
    /// A label selector on the workloads (not on pods), `""` for all.
    pub label_selector: String,
    pub field_selector: FieldSelector,
}

/// How a run behaves.
#[derive(Debug, Clone, Default)]
pub struct SyncOpts {
    /// Decide and report, write nothing.
    pub dry_run: bool,
    /// Instead of pinning a tag whose pods run another digest, keep the tag
    /// and restart the pods (a pod-template annotation), for workloads
    /// that pull with `imagePullPolicy: Always`.
    pub restart: bool,
    /// Credentials from a mounted docker config (`--docker-config`), tried
    /// after the workload's own `imagePullSecrets`.
    pub docker_config: Option<DockerConfig>,
    pub registry: RegistryOptions,
    /// Workloads checked at once (0: 16).
    pub concurrency: usize,
}

/// Why a run could not start or finish (not a container's failure: those
/// are in the report).
#[derive(Debug, thiserror::Error)]
pub enum ImageSyncError {
    #[error("cannot list {what}: {message}")]
    List { what: String, message: String },
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

/// Why a container is pinned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "reason")]
pub enum PinReason {
    /// Its current pods run other digests.
    Running { running: Vec<Digest> },
    /// It has no pods (a CronJob between runs, a workload scaled to zero):
    /// the next pods will run the tag's digest.
    NoPods,
    /// Image sync pinned it before and the tag moved since.
    Moved { from: Digest },
}

/// What happens to one container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "result")]
pub enum ContainerOutcome {
    /// The pods run the tag's digest (or the pin is the tag's digest).
    Ok { digest: Digest },
    /// Pinned (or, in a dry run, would be) to `to`.
    #[serde(rename_all = "camelCase")]
    Pin {
        to: String,
        digest: Digest,
        #[serde(flatten)]
        why: PinReason,
    },
    /// `--restart`: the pods run other digests; the workload is restarted.
    Restart {
        digest: Digest,
        running: Vec<Digest>,
    },
    /// Pinned by another field manager (git, through kubesync, or a person)
    /// to a digest the tag no longer has: reported, never rewritten.
    LeftAlone {
        pinned: Digest,
        digest: Digest,
        owners: Vec<String>,
    },
    /// Pods exist but none reports a registry digest for it yet.
    Pending { digest: Digest },
    /// Pinned by digest only: no tag to follow.
    DigestOnly,
    /// Its reference, credentials or the registry failed; left alone.
    Failed { reason: String },
}

impl ContainerOutcome {
    pub fn is_failure(&self) -> bool {
        matches!(self, ContainerOutcome::Failed { .. })
    }
}

/// One container's check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerReport {
    pub name: String,
    pub init: bool,
    pub image: String,
    #[serde(flatten)]
    pub outcome: ContainerOutcome,
}

/// What was written for a workload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "write")]
pub enum WriteOutcome {
    /// Nothing to write.
    None,
    /// Applied: these containers pinned, restarted or not.
    #[serde(rename_all = "camelCase")]
    Applied {
        containers: Vec<String>,
        restarted: bool,
    },
    /// `--dry-run`: would have applied.
    #[serde(rename_all = "camelCase")]
    DryRun {
        containers: Vec<String>,
        restarted: bool,
    },
    /// The apply failed.
    Failed { error: String },
}

/// One workload's check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadReport {
    pub kind: WorkloadKind,
    pub namespace: String,
    pub name: String,
    pub containers: Vec<ContainerReport>,
    #[serde(flatten)]
    pub write: WriteOutcome,
}

impl WorkloadReport {
    pub fn failed(&self) -> bool {
        matches!(self.write, WriteOutcome::Failed { .. })
            || self.containers.iter().any(|c| c.outcome.is_failure())
    }
}

/// A run's change set: every workload checked, in a stable order (kind,
/// namespace, name), with what the run cost.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub dry_run: bool,
    pub workloads: Vec<WorkloadReport>,
    pub registry: RegistryStats,
    /// API requests of this run (writes are applies).
    pub api: RequestStats,
}

impl Report {
    /// Whether any container or write failed (exit 1).
    pub fn failed(&self) -> bool {
        self.workloads.iter().any(WorkloadReport::failed)
    }

    /// Workloads written (or, in a dry run, that would be).
    pub fn updated(&self) -> usize {
        self.workloads
            .iter()
            .filter(|w| {
                matches!(
                    w.write,
                    WriteOutcome::Applied { .. } | WriteOutcome::DryRun { .. }
                )
            })
            .count()
    }
}

/// What [`decide`] knows about a container.
#[derive(Debug, Clone)]
pub struct Observed<'a> {
    pub reference: &'a Reference,
    /// The tag's digest now.
    pub current: &'a Digest,
    /// `None`: the workload has no current pods. `Some(empty)`: pods exist
    /// but none reports a registry digest yet.
    pub running: Option<Vec<Digest>>,
    /// Field managers owning the image field.
    pub owners: &'a [String],
    pub restart: bool,
}

/// The decision for one container whose tag resolved (pure).
pub fn decide(o: &Observed<'_>) -> ContainerOutcome {
    let current = o.current.clone();
    if let Some(pinned) = &o.reference.digest {
        if *pinned == current {
            return ContainerOutcome::Ok { digest: current };
        }
        let ours = o.owners.is_empty() || o.owners.iter().any(|m| m == FIELD_MANAGER);
        if !ours {
            return ContainerOutcome::LeftAlone {
                pinned: pinned.clone(),
                digest: current,
                owners: o.owners.to_vec(),
            };
        }
        return ContainerOutcome::Pin {
            to: o.reference.pinned(&current),
            digest: current,
            why: PinReason::Moved {
                from: pinned.clone(),
            },
        };
    }
    match &o.running {
        None => ContainerOutcome::Pin {
            to: o.reference.pinned(&current),
            digest: current,
            why: PinReason::NoPods,
        },
        Some(r) if r.is_empty() => ContainerOutcome::Pending { digest: current },
        Some(r) if r.iter().all(|d| *d == current) => ContainerOutcome::Ok { digest: current },
        Some(r) => {
            let mut running = r.clone();
            running.sort();
            running.dedup();
            if o.restart {
                ContainerOutcome::Restart {
                    digest: current,
                    running,
                }
            } else {
                ContainerOutcome::Pin {
                    to: o.reference.pinned(&current),
                    digest: current,
                    why: PinReason::Running { running },
                }
            }
        }
    }
}

fn gvk(group: &str, version: &str, kind: &str) -> GroupVersionKind {
    GroupVersionKind::gvk(group, version, kind)
}

/// The cluster's view for one run: pods and Jobs by namespace, pull
/// secrets read once.
struct Snapshot {
    pods: HashMap<String, Vec<Value>>,
    jobs: HashMap<String, Vec<Value>>,
    secrets: Mutex<HashMap<(String, String), Result<DockerConfig, String>>>,
}

/// Checks the selected workloads once, pins what moved (unless
/// `opts.dry_run`) and returns the change set. A container whose reference,
/// credentials or registry fails is reported and left alone; the others go
/// on. Errors only when the workloads or pods cannot be listed.
pub async fn run_once(
    client: &ClusterClient,
    selection: &Selection,
    opts: &SyncOpts,
) -> Result<Report, ImageSyncError> {
    let registry = RegistryClient::new(opts.registry.clone())?;
    run_with(client, &registry, selection, opts).await
}

/// [`run_once`] with a registry client the caller keeps (its cache and
/// statistics span the calls made with it).
pub async fn run_with(
    client: &ClusterClient,
    registry: &RegistryClient,
    selection: &Selection,
    opts: &SyncOpts,
) -> Result<Report, ImageSyncError> {
    let before_api = client.request_stats();
    let before_registry = registry.stats();
    let ns = match &selection.namespaces {
        Namespaces::One(n) => Some(n.as_str()),
        Namespaces::All => None,
    };
    let list = |what: String, g: GroupVersionKind, selector: String| async move {
        client
            .list(&g, ns, &selector)
            .await
            .map_err(|e| ImageSyncError::List {
                what,
                message: e.to_string(),
            })
    };
    let mut workloads = Vec::new();
    for kind in WorkloadKind::ALL {
        let items = list(
            format!("{}s", kind.as_str()),
            gvk(kind.group(), "v1", kind.as_str()),
            selection.label_selector.clone(),
        )
        .await?;
        workloads.extend(
            items
                .into_iter()
                .filter(|w| selection.field_selector.matches(w))
                .map(|w| (kind, w)),
        );
    }
    let mut snapshot = Snapshot {
        pods: HashMap::new(),
        jobs: HashMap::new(),
        secrets: Mutex::new(HashMap::new()),
    };
    if !workloads.is_empty() {
        for pod in list("Pods".into(), gvk("", "v1", "Pod"), String::new()).await? {
            snapshot
                .pods
                .entry(namespace_of(&pod))
                .or_default()
                .push(pod);
        }
    }
    if workloads.iter().any(|(k, _)| *k == WorkloadKind::CronJob) {
        for job in list("Jobs".into(), gvk("batch", "v1", "Job"), String::new()).await? {
            snapshot
                .jobs
                .entry(namespace_of(&job))
                .or_default()
                .push(job);
        }
    }
    let concurrency = if opts.concurrency == 0 {
        16
    } else {
        opts.concurrency
    };
    let snapshot = &snapshot;
    let mut reports: Vec<WorkloadReport> = stream::iter(workloads.iter())
        .map(|(kind, w)| check_workload(client, registry, snapshot, opts, *kind, w))
        .buffered(concurrency)
        .collect()
        .await;
    reports.sort_by(|a, b| (a.kind, &a.namespace, &a.name).cmp(&(b.kind, &b.namespace, &b.name)));
    let registry_now = registry.stats();
    Ok(Report {
        dry_run: opts.dry_run,
        workloads: reports,
        registry: RegistryStats {
            manifest_requests: registry_now.manifest_requests - before_registry.manifest_requests,
            token_requests: registry_now.token_requests - before_registry.token_requests,
        },
        api: client.request_stats().since(&before_api),
    })
}

fn namespace_of(obj: &Value) -> String {
    obj.pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn labels(obj: &Value) -> Map<String, Value> {
    obj.pointer("/metadata/labels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

fn owned_by<'a>(obj: &'a Value, kind: &str) -> impl Iterator<Item = &'a str> + 'a {
    let kind = kind.to_string();
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(move |o| o.get("kind").and_then(Value::as_str) == Some(kind.as_str()))
        .filter_map(|o| o.get("name").and_then(Value::as_str))
}

/// The workload's pods: matching its selector (a CronJob's: owned by its
/// Jobs), not being deleted.
fn pods_of<'a>(snapshot: &'a Snapshot, kind: WorkloadKind, w: &Value) -> Vec<&'a Value> {
    let ns = namespace_of(w);
    let name = w
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let pods = snapshot
        .pods
        .get(&ns)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let live = |p: &&Value| p.pointer("/metadata/deletionTimestamp").is_none();
    match kind {
        WorkloadKind::CronJob => {
            let jobs: Vec<&str> = snapshot
                .jobs
                .get(&ns)
                .into_iter()
                .flatten()
                .filter(|j| owned_by(j, "CronJob").any(|o| o == name))
                .filter_map(|j| j.pointer("/metadata/name").and_then(Value::as_str))
                .collect();
            pods.iter()
                .filter(live)
                .filter(|p| owned_by(p, "Job").any(|j| jobs.contains(&j)))
                .collect()
        }
        _ => {
            let selector = w.pointer("/spec/selector");
            pods.iter()
                .filter(live)
                .filter(|p| workload::selector_matches(selector, &labels(p)))
                .collect()
        }
    }
}

/// Digests the current pods run for container `c`: pods whose spec runs
/// the template's image for it. `None` when no pod is current.
fn running_digests(pods: &[&Value], c: &TemplateContainer) -> Option<Vec<Digest>> {
    let mut any = false;
    let mut out = Vec::new();
    for pod in pods {
        let spec_image = pod
            .pointer(&format!("/spec/{}", c.list.field()))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|x| x.get("name").and_then(Value::as_str) == Some(c.name.as_str()))
            .and_then(|x| x.get("image"))
            .and_then(Value::as_str);
        if spec_image != Some(c.image.as_str()) {
            continue;
        }
        any = true;
        let digest = pod
            .pointer(&format!("/status/{}", c.list.status_field()))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|s| s.get("name").and_then(Value::as_str) == Some(c.name.as_str()))
            .and_then(|s| s.get("imageID"))
            .and_then(Value::as_str)
            .and_then(digest_of_image_id);
        out.extend(digest);
    }
    any.then_some(out)
}

/// The credentials for `registry`: the first of the workload's pull
/// secrets with an entry for it, else the mounted docker config.
async fn credentials_for(
    client: &ClusterClient,
    snapshot: &Snapshot,
    opts: &SyncOpts,
    namespace: &str,
    secrets: &[String],
    registry: &str,
) -> (Option<Credentials>, Vec<String>) {
    let mut problems = Vec::new();
    for name in secrets {
        let key = (namespace.to_string(), name.clone());
        let cached = snapshot.secrets.lock().get(&key).cloned();
        let config = match cached {
            Some(c) => c,
            None => {
                let c = read_pull_secret(client, namespace, name).await;
                snapshot.secrets.lock().insert(key, c.clone());
                c
            }
        };
        match config {
            Ok(c) => {
                if let Some(creds) = c.lookup(registry) {
                    return (Some(creds.clone()), problems);
                }
            }
            Err(e) => problems.push(e),
        }
    }
    let file = opts
        .docker_config
        .as_ref()
        .and_then(|c| c.lookup(registry))
        .cloned();
    (file, problems)
}

async fn read_pull_secret(
    client: &ClusterClient,
    namespace: &str,
    name: &str,
) -> Result<DockerConfig, String> {
    use base64::Engine as _;
    let r = ObjectRef {
        group: String::new(),
        version: "v1".into(),
        kind: "Secret".into(),
        namespace: Some(namespace.to_string()),
        name: name.to_string(),
    };
    let label = format!("pull secret {namespace}/{name}");
    let secret = match client.get(&r).await {
        Ok(Some(s)) => s,
        Ok(None) => return Err(format!("{label} does not exist")),
        Err(e) => return Err(format!("cannot read {label}: {e}")),
    };
    let data = secret
        .pointer("/data/.dockerconfigjson")
        .or_else(|| secret.pointer("/data/.dockercfg"))
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{label} has no .dockerconfigjson"))?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|_| format!("{label}: .dockerconfigjson is not base64"))?;
    let text = String::from_utf8(raw).map_err(|_| format!("{label}: not UTF-8"))?;
    DockerConfig::parse(&text).map_err(|e| format!("{label}: {e}"))
}

async fn check_workload(
    client: &ClusterClient,
    registry: &RegistryClient,
    snapshot: &Snapshot,
    opts: &SyncOpts,
    kind: WorkloadKind,
    w: &Value,
) -> WorkloadReport {
    let namespace = namespace_of(w);
    let name = w
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let pods = pods_of(snapshot, kind, w);
    let secrets = workload::pull_secrets(kind, w);
    let mut reports = Vec::new();
    for c in workload::containers(kind, w) {
        let outcome = check_container(
            client, registry, snapshot, opts, kind, w, &namespace, &secrets, &pods, &c,
        )
        .await;
        reports.push(ContainerReport {
            name: c.name.clone(),
            init: c.list == ContainerList::Init,
            image: c.image.clone(),
            outcome,
        });
    }
    let write = write_workload(client, opts, kind, w, &namespace, &name, &reports).await;
    WorkloadReport {
        kind,
        namespace,
        name,
        containers: reports,
        write,
    }
}

#[allow(clippy::too_many_arguments)]
async fn check_container(
    client: &ClusterClient,
    registry: &RegistryClient,
    snapshot: &Snapshot,
    opts: &SyncOpts,
    kind: WorkloadKind,
    w: &Value,
    namespace: &str,
    secrets: &[String],
    pods: &[&Value],
    c: &TemplateContainer,
) -> ContainerOutcome {
    let reference = match Reference::parse(&c.image) {
        Ok(r) => r,
        Err(e) => {
            return ContainerOutcome::Failed {
                reason: format!("invalid image reference \"{}\": {e}", c.image),
            }
        }
    };
    if reference.tag.is_none() && reference.digest.is_some() {
        return ContainerOutcome::DigestOnly;
    }
    let (creds, problems) = credentials_for(
        client,
        snapshot,
        opts,
        namespace,
        secrets,
        &reference.registry,
    )
    .await;
    let current = match registry.resolve(&reference, creds.as_ref()).await {
        Ok(d) => d,
        Err(e) => {
            let mut reason = e.for_image(&c.image);
            if !problems.is_empty() {
                reason.push_str(&format!(" ({})", problems.join("; ")));
            }
            return ContainerOutcome::Failed { reason };
        }
    };
    let owners = image_owners(kind, w, c.list, &c.name);
    decide(&Observed {
        reference: &reference,
        current: &current,
        running: running_digests(pods, c),
        owners: &owners,
        restart: opts.restart,
    })
}

/// Applies the workload's pins (and restart annotation) as one minimal
/// server-side apply, keeping every image field image sync already owns
/// at its value (an apply that left one out would remove it).
async fn write_workload(
    client: &ClusterClient,
    opts: &SyncOpts,
    kind: WorkloadKind,
    w: &Value,
    namespace: &str,
    name: &str,
    reports: &[ContainerReport],
) -> WriteOutcome {
    let mut changed = Vec::new();
    let mut images: BTreeMap<(ContainerList, String), String> = BTreeMap::new();
    let mut restart = false;
    for (c, r) in workload::containers(kind, w).into_iter().zip(reports) {
        let key = (c.list, c.name.clone());
        match &r.outcome {
            ContainerOutcome::Pin { to, .. } => {
                changed.push(c.name.clone());
                images.insert(key, to.clone());
            }
            ContainerOutcome::Restart { .. } => restart = true,
            _ => {
                if image_owners(kind, w, c.list, &c.name)
                    .iter()
                    .any(|m| m == FIELD_MANAGER)
                {
                    images.insert(key, c.image.clone());
                }
            }
        }
    }
    if changed.is_empty() && !restart {
        return WriteOutcome::None;
    }
    let mut annotations = BTreeMap::new();
    let existing = workload::template(kind, w)
        .and_then(|t| t.pointer("/metadata/annotations"))
        .and_then(|a| a.get(RESTART_ANNOTATION))
        .and_then(Value::as_str);
    if restart {
        annotations.insert(
            RESTART_ANNOTATION.to_string(),
            chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        );
    } else if let Some(v) = existing.filter(|_| {
        annotation_owners(kind, w, RESTART_ANNOTATION)
            .iter()
            .any(|m| m == FIELD_MANAGER)
    }) {
        annotations.insert(RESTART_ANNOTATION.to_string(), v.to_string());
    }
    if opts.dry_run {
        return WriteOutcome::DryRun {
            containers: changed,
            restarted: restart,
        };
    }
    let patch = pin_patch(kind, namespace, name, &images, &annotations);
    match client
        .apply_as(&patch, false, FIELD_MANAGER, true, true)
        .await
    {
        Ok(_) => {
            tracing::info!(workload = %format!("{kind}/{name}"), namespace, containers = ?changed, restart, "pinned");
            WriteOutcome::Applied {
                containers: changed,
                restarted: restart,
            }
        }
        Err(e) => WriteOutcome::Failed {
            error: e.to_string(),
        },
    }
}

/// Image sync as a periodic loop (what `kubesync run --image-sync-interval`
/// runs): a [`run_once`] every `every` while `is_leader()` says this replica
/// may write, until `stop` turns true. Each round has a fresh registry
/// client, so a tag is asked once per round and a push between rounds is
/// seen by the next one. A failed round is logged and the loop goes on.
pub async fn run_every(
    client: ClusterClient,
    selection: Selection,
    opts: SyncOpts,
    every: std::time::Duration,
    is_leader: impl Fn() -> bool + Send,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        if *stop.borrow() {
            return;
        }
        if is_leader() {
            match run_once(&client, &selection, &opts).await {
                Ok(report) => {
                    let pinned = report
                        .workloads
                        .iter()
                        .filter(|w| matches!(w.write, WriteOutcome::Applied { .. }))
                        .count();
                    if pinned > 0 || report.failed() {
                        tracing::info!(
                            workloads = report.workloads.len(),
                            pinned,
                            failed = report.failed(),
                            "image sync"
                        );
                    } else {
                        tracing::debug!(
                            workloads = report.workloads.len(),
                            "image sync: nothing moved"
                        );
                    }
                }
                Err(e) => tracing::warn!("image sync failed: {e}"),
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(c: char) -> Digest {
        Digest::parse(&format!("sha256:{}", c.to_string().repeat(64))).unwrap()
    }

    fn observed<'a>(
        r: &'a Reference,
        current: &'a Digest,
        running: Option<Vec<Digest>>,
        owners: &'a [String],
    ) -> Observed<'a> {
        Observed {
            reference: r,
            current,
            running,
            owners,
            restart: false,
        }
    }

    #[test]
    fn tag_only_containers() {
        let r = Reference::parse("reg.local/app:v1").unwrap();
        let (a, b) = (d('a'), d('b'));
        assert_eq!(
            decide(&observed(&r, &a, Some(vec![a.clone(), a.clone()]), &[])),
            ContainerOutcome::Ok { digest: a.clone() }
        );
        assert_eq!(
            decide(&observed(
                &r,
                &a,
                Some(vec![b.clone(), a.clone(), b.clone()]),
                &[]
            )),
            ContainerOutcome::Pin {
                to: format!("reg.local/app:v1@{a}"),
                digest: a.clone(),
                why: PinReason::Running {
                    running: vec![a.clone(), b.clone()]
                }
            }
        );
        assert!(matches!(
            decide(&observed(&r, &a, None, &[])),
            ContainerOutcome::Pin {
                why: PinReason::NoPods,
                ..
            }
        ));
        assert_eq!(
            decide(&observed(&r, &a, Some(vec![]), &[])),
            ContainerOutcome::Pending { digest: a.clone() }
        );
        let mut o = observed(&r, &a, Some(vec![b.clone()]), &[]);
        o.restart = true;
        assert_eq!(
            decide(&o),
            ContainerOutcome::Restart {
                digest: a,
                running: vec![b]
            }
        );
    }

    #[test]
    fn pinned_containers() {
        let (a, b) = (d('a'), d('b'));
        let r = Reference::parse(&format!("app:v1@{a}")).unwrap();
        let ours = vec![FIELD_MANAGER.to_string(), "kubesync".to_string()];
        let theirs = vec!["kubesync".to_string()];
        assert_eq!(
            decide(&observed(&r, &a, None, &ours)),
            ContainerOutcome::Ok { digest: a.clone() }
        );
        assert_eq!(
            decide(&observed(&r, &b, Some(vec![a.clone()]), &ours)),
            ContainerOutcome::Pin {
                to: format!("app:v1@{b}"),
                digest: b.clone(),
                why: PinReason::Moved { from: a.clone() }
            }
        );
        assert_eq!(
            decide(&observed(&r, &b, Some(vec![a.clone()]), &theirs)),
            ContainerOutcome::LeftAlone {
                pinned: a,
                digest: b,
                owners: theirs.clone()
            }
        );
    }

    #[test]
    fn field_selectors() {
        let obj = serde_json::json!({"metadata": {"name": "web", "namespace": "shop"}});
        assert!(FieldSelector::parse("metadata.name=web")
            .unwrap()
            .matches(&obj));
        assert!(
            FieldSelector::parse("metadata.name==web,metadata.namespace=shop")
                .unwrap()
                .matches(&obj)
        );
        assert!(!FieldSelector::parse("metadata.name!=web")
            .unwrap()
            .matches(&obj));
        assert!(FieldSelector::parse("").unwrap().matches(&obj));
        assert!(FieldSelector::parse("spec.replicas=1").is_err());
        assert!(FieldSelector::parse("metadata.name").is_err());
    }
}
