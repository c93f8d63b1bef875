//! [`ClusterClient`]: the verbs kubesync uses on a cluster — discovery,
//! server-side apply (and dry-run apply), get, list, delete, status patch,
//! namespace checks, waiting for a CRD to be Established — each under the
//! retry policy, counted in [`RequestStats`], and failing with a
//! [`ClusterError`] that names the object.
//!
//! Objects travel as `serde_json::Value` exactly as the server sent them (no
//! round trip through typed structs), so `diff` sees every field.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::core::params::{
    DeleteParams, GetParams, ListParams, Patch, PatchParams, PostParams, PropagationPolicy,
};
use kube::core::{GroupVersionKind, Request};
use serde_json::{json, Value};
use tokio::sync::Mutex as AsyncMutex;

use super::connect::EmulatorHandle;
use super::connect::{self, ClusterOptions, Target, READ_TIMEOUT};
use super::discovery::{parse_resource_list, DiscoveryCache, GroupVersionKinds, Resolved};
use super::error::{error_chain, ClusterError, Failure};
use super::ratelimit::RateLimiter;
use super::retry::RetryPolicy;
use super::retry_after::RetryAfterLayer;
use super::stats::{Counters, RequestKind, RequestStats};
use crate::model::ObjectRef;

/// Page size of list requests.
const LIST_PAGE: u32 = 500;

/// How a delete treats the object's dependents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Propagation {
    /// Delete now; the garbage collector removes dependents afterwards.
    #[default]
    Background,
    /// Delete dependents first; the object goes last.
    Foreground,
    /// Leave dependents in place.
    Orphan,
}

/// What a delete found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteOutcome {
    /// The server accepted the delete (the object may linger while
    /// finalizers run).
    Deleted,
    /// There was nothing to delete (404).
    AlreadyGone,
}

/// kubesync's connection to one cluster. Cheap to clone (one `Arc`); all
/// clones share the discovery cache, statistics and, with `--emulator`, the
/// emulator, which stops when the last clone is dropped.
#[derive(Clone)]
pub struct ClusterClient {
    inner: Arc<Inner>,
}

struct Inner {
    client: kube::Client,
    description: String,
    field_manager: String,
    force_conflicts: bool,
    retry: RetryPolicy,
    discovery: DiscoveryCache,
    /// Serialises discovery fetches so a cold cache is filled once.
    discovery_fetch: AsyncMutex<()>,
    counters: Counters,
    /// The client-side rate limit (`None`: unlimited).
    limiter: Option<RateLimiter>,
    /// Keeps an in-process emulator alive (never set without the
    /// `emulator` feature).
    #[cfg_attr(not(feature = "emulator"), allow(dead_code))]
    emulator: Option<EmulatorHandle>,
}

impl std::fmt::Debug for ClusterClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterClient")
            .field("target", &self.inner.description)
            .field("field_manager", &self.inner.field_manager)
            .field("force_conflicts", &self.inner.force_conflicts)
            .finish()
    }
}

impl ClusterClient {
    /// Connects to the cluster `opts` name: `--emulator` starts the emulator
    /// in-process (kept alive by this client), else `--server`, else a
    /// kubeconfig (`--kubeconfig`, `KUBECONFIG`, `~/.kube/config`, with
    /// `--context`), else in-cluster configuration. Checks the server answers
    /// (`GET /version`). With no cluster configured the error
    /// ([`ClusterError::NoCluster`]) tells the user how to point kubesync at
    /// one or to use `--emulator`.
    pub async fn connect(opts: ClusterOptions) -> Result<Self, ClusterError> {
        let target = connect::resolve_target(&opts).await?;
        Self::from_target(target, &opts).await
    }

    /// Connects to an emulator the caller started (with its own controllers
    /// or hooks); the client keeps it alive. The target fields of `opts`
    /// (`kubeconfig`, `context`, `server`, `emulator`) are ignored.
    #[cfg(feature = "emulator")]
    pub async fn with_emulator(
        handle: EmulatorHandle,
        opts: ClusterOptions,
    ) -> Result<Self, ClusterError> {
        let target = connect::emulator_target(handle).await?;
        Self::from_target(target, &opts).await
    }

    async fn from_target(target: Target, opts: &ClusterOptions) -> Result<Self, ClusterError> {
        let Target {
            mut config,
            description,
            emulator,
        } = target;
        // This module's retry loop is the only one (exact counts, one policy).
        config.default_retry = false;
        config.read_timeout = Some(READ_TIMEOUT);
        config.reset_reader_on_write = true;
        // Requests name kubesync in audit logs and the emulator's journal.
        config
            .headers
            .push((hyper::header::USER_AGENT, user_agent(opts.agent.as_deref())));
        let client = kube::client::ClientBuilder::try_from(config)
            .map_err(|e| ClusterError::Connect {
                target: description.clone(),
                message: error_chain(&e),
                source: None,
            })?
            .with_layer(&RetryAfterLayer)
            .build();
        let this = ClusterClient {
            inner: Arc::new(Inner {
                client,
                description,
                field_manager: opts.field_manager.clone(),
                force_conflicts: opts.force_conflicts,
                retry: opts.retry,
                discovery: DiscoveryCache::default(),
                discovery_fetch: AsyncMutex::new(()),
                counters: Counters::default(),
                limiter: match emulator {
                    Some(_) => None,
                    None => RateLimiter::new(opts.qps, opts.burst),
                },
                emulator,
            }),
        };
        let version = this
            .run(RequestKind::Read, "GET /version", || {
                let client = this.inner.client.clone();
                async move { client.apiserver_version().await }
            })
            .await
            .map_err(|f| ClusterError::Connect {
                target: this.describe(),
                message: match &f.error {
                    kube::Error::Api(s) => format!("{} {}: {}", s.code, s.reason, s.message),
                    other => error_chain(other),
                },
                source: Some(Box::new(f.error)),
            })?;
        tracing::info!(target = %this.describe(), version = %version.git_version, "connected");
        Ok(this)
    }

    /// What this client talks to, for logs and output: `emulator at
    /// http://127.0.0.1:1234`, `context kind-dev (https://127.0.0.1:6443)`,
    /// `server https://…`, `in-cluster (https://…)`. Never credentials.
    pub fn describe(&self) -> String {
        self.inner.description.clone()
    }

    /// The emulator this client started (`--emulator`) or was given.
    #[cfg(feature = "emulator")]
    pub fn emulator(&self) -> Option<&EmulatorHandle> {
        self.inner.emulator.as_ref()
    }

    /// The field manager applies are made as.
    pub fn field_manager(&self) -> &str {
        &self.inner.field_manager
    }

    /// Whether applies force conflicts.
    pub fn force_conflicts(&self) -> bool {
        self.inner.force_conflicts
    }

    /// The underlying kube-rs client, for what this module does not wrap yet
    /// (watches). Requests made through it bypass retries and statistics.
    pub fn kube_client(&self) -> kube::Client {
        self.inner.client.clone()
    }

    /// Requests this client (and its clones) has sent so far.
    pub fn request_stats(&self) -> RequestStats {
        self.inner.counters.snapshot()
    }

    // ----- discovery -------------------------------------------------------

    /// What the server serves for `obj`'s group/version/kind (cached; a miss
    /// refetches that group-version once). Unknown → [`ClusterError::UnknownKind`].
    pub async fn resolve(&self, obj: &ObjectRef) -> Result<Resolved, ClusterError> {
        self.resolve_parts(&obj.group, &obj.version, &obj.kind, &obj.to_string())
            .await
    }

    /// [`Self::resolve`] for a bare group/version/kind.
    pub async fn resolve_gvk(&self, gvk: &GroupVersionKind) -> Result<Resolved, ClusterError> {
        self.resolve_parts(&gvk.group, &gvk.version, &gvk.kind, &gvk_label(gvk))
            .await
    }

    /// Drops the discovery cache (call after applying or deleting a CRD;
    /// [`Self::wait_crd_established`] does).
    pub fn invalidate_discovery(&self) {
        self.inner.discovery.invalidate();
    }

    async fn resolve_parts(
        &self,
        group: &str,
        version: &str,
        kind: &str,
        object: &str,
    ) -> Result<Resolved, ClusterError> {
        let api_version = if group.is_empty() {
            version.to_string()
        } else {
            format!("{group}/{version}")
        };
        if let Some(r) = self.inner.discovery.lookup(&api_version, kind) {
            return Ok(r);
        }
        {
            let _fetching = self.inner.discovery_fetch.lock().await;
            // Another task may have filled it while this one waited.
            if let Some(r) = self.inner.discovery.lookup(&api_version, kind) {
                return Ok(r);
            }
            let kinds = self.fetch_group_version(group, version, object).await?;
            self.inner.discovery.store(&api_version, kinds);
        }
        self.inner
            .discovery
            .lookup(&api_version, kind)
            .ok_or_else(|| ClusterError::UnknownKind {
                object: object.to_string(),
                group: group.to_string(),
                version: version.to_string(),
                kind: kind.to_string(),
                api_version,
            })
    }

    async fn fetch_group_version(
        &self,
        group: &str,
        version: &str,
        object: &str,
    ) -> Result<GroupVersionKinds, ClusterError> {
        let client = &self.inner.client;
        let result = self
            .run(RequestKind::Read, object, || async move {
                if group.is_empty() {
                    client.list_core_api_resources(version).await
                } else {
                    client
                        .list_api_group_resources(&format!("{group}/{version}"))
                        .await
                }
            })
            .await;
        match result {
            Ok(list) => {
                tracing::debug!(
                    group,
                    version,
                    resources = list.resources.len(),
                    "discovered"
                );
                Ok(parse_resource_list(group, version, &list))
            }
            Err(f) if is_404(&f.error) => Ok(GroupVersionKinds::new()),
            Err(f) => Err(f.into_cluster_error(object.to_string())),
        }
    }

    // ----- writes ----------------------------------------------------------

    /// Server-side apply of `obj` as the field manager, forcing conflicts
    /// unless `--no-force`; `dry_run` sends `dryRun=All` (nothing persists).
    /// Returns the object the server returned.
    ///
    /// `obj` must be complete: a namespaced kind needs `metadata.namespace`
    /// (set the app's destination first with [`with_default_namespace`] or
    /// [`Self::normalize`]); a namespace on a cluster-scoped kind is dropped,
    /// as the API server does.
    pub async fn apply(&self, obj: &Value, dry_run: bool) -> Result<Value, ClusterError> {
        self.apply_validated(obj, dry_run, true).await
    }

    /// [`Self::apply`]; without `validate` the server ignores unknown and
    /// duplicate fields instead of refusing them (`fieldValidation=Ignore`,
    /// Argo CD's `Validate=false`).
    pub async fn apply_validated(
        &self,
        obj: &Value,
        dry_run: bool,
        validate: bool,
    ) -> Result<Value, ClusterError> {
        let manager = self.inner.field_manager.clone();
        self.apply_as(obj, dry_run, &manager, self.inner.force_conflicts, validate)
            .await
    }

    /// [`Self::apply_validated`] under another field manager, forcing
    /// conflicts or not (image sync applies its pins as
    /// `kubesync-image-sync`, forcing, through whichever client it is given).
    pub async fn apply_as(
        &self,
        obj: &Value,
        dry_run: bool,
        field_manager: &str,
        force: bool,
        validate: bool,
    ) -> Result<Value, ClusterError> {
        let r = ObjectRef::from_object(obj).map_err(|message| ClusterError::BadObject {
            object: object_label(obj),
            message: message.to_string(),
        })?;
        let resolved = self.resolve(&r).await?;
        let (r, body) = scoped(r, &resolved, obj)?;
        let label = r.to_string();
        let mut pp = PatchParams::apply(field_manager);
        pp.force = force;
        pp.dry_run = dry_run;
        if !validate {
            pp.field_validation = Some(kube::core::params::ValidationDirective::Ignore);
        }
        let path = resolved.collection_path(r.namespace.as_deref());
        let kind = if dry_run {
            RequestKind::DryRunApply
        } else {
            RequestKind::Apply
        };
        let patch = Patch::Apply(body.as_ref());
        let live = self
            .request(kind, &label, || {
                Request::new(path.as_str()).patch(&r.name, &pp, &patch)
            })
            .await
            .map_err(|f| f.into_cluster_error(label.clone()))?;
        let resource_version = live
            .pointer("/metadata/resourceVersion")
            .and_then(|v| v.as_str())
            .unwrap_or("");
        tracing::debug!(object = %label, dry_run, resource_version, "applied");
        Ok(live)
    }

    /// Creates `obj` (a POST: the server fails it when the name is taken,
    /// and gives it a name from `metadata.generateName` when it has none).
    /// `r` names its kind and namespace (its name may be the generateName).
    /// Returns the created object, with the name the server chose.
    pub async fn create(&self, r: &ObjectRef, obj: &Value) -> Result<Value, ClusterError> {
        let resolved = self.resolve(r).await?;
        let (r, path) = self.object_path(r, &resolved)?;
        let label = r.to_string();
        let body = serde_json::to_vec(obj).map_err(|e| ClusterError::BadObject {
            object: label.clone(),
            message: e.to_string(),
        })?;
        let pp = PostParams {
            field_manager: Some(self.inner.field_manager.clone()),
            ..PostParams::default()
        };
        self.request(RequestKind::Apply, &label, || {
            Request::new(path.as_str()).create(&pp, body.clone())
        })
        .await
        .map_err(|f| f.into_cluster_error(label.clone()))
    }

    /// Replaces the whole object (a PUT, Argo CD's `Replace=true`): fields
    /// git does not declare are dropped, whoever set them. The object must
    /// exist; its live `resourceVersion` is not required.
    pub async fn replace(&self, obj: &Value) -> Result<Value, ClusterError> {
        let r = ObjectRef::from_object(obj).map_err(|message| ClusterError::BadObject {
            object: object_label(obj),
            message: message.to_string(),
        })?;
        let resolved = self.resolve(&r).await?;
        let (r, body) = scoped(r, &resolved, obj)?;
        let label = r.to_string();
        let path = resolved.collection_path(r.namespace.as_deref());
        let data = serde_json::to_vec(body.as_ref()).map_err(|e| ClusterError::BadObject {
            object: label.clone(),
            message: e.to_string(),
        })?;
        let pp = PostParams {
            field_manager: Some(self.inner.field_manager.clone()),
            ..PostParams::default()
        };
        self.request(RequestKind::Apply, &label, || {
            Request::new(path.as_str()).replace(&r.name, &pp, data.clone())
        })
        .await
        .map_err(|f| f.into_cluster_error(label.clone()))
    }

    /// Resolves `obj`'s kind and gives it `default_namespace` when it is
    /// namespaced and has none (dropping a namespace from a cluster-scoped
    /// object). Returns its identity as it will be applied.
    pub async fn normalize(
        &self,
        obj: &mut Value,
        default_namespace: &str,
    ) -> Result<ObjectRef, ClusterError> {
        let r = ObjectRef::from_object(obj).map_err(|message| ClusterError::BadObject {
            object: object_label(obj),
            message: message.to_string(),
        })?;
        let resolved = self.resolve(&r).await?;
        with_default_namespace(obj, &resolved, default_namespace);
        ObjectRef::from_object(obj).map_err(|message| ClusterError::BadObject {
            object: r.to_string(),
            message: message.to_string(),
        })
    }

    /// Deletes the object. 404 → [`DeleteOutcome::AlreadyGone`].
    pub async fn delete(
        &self,
        r: &ObjectRef,
        propagation: Propagation,
    ) -> Result<DeleteOutcome, ClusterError> {
        let resolved = self.resolve(r).await?;
        let (r, path) = self.object_path(r, &resolved)?;
        let label = r.to_string();
        let dp = DeleteParams {
            propagation_policy: Some(match propagation {
                Propagation::Background => PropagationPolicy::Background,
                Propagation::Foreground => PropagationPolicy::Foreground,
                Propagation::Orphan => PropagationPolicy::Orphan,
            }),
            ..DeleteParams::default()
        };
        match self
            .request(RequestKind::Delete, &label, || {
                Request::new(path.as_str()).delete(&r.name, &dp)
            })
            .await
        {
            Ok(_) => {
                tracing::debug!(object = %label, "deleted");
                Ok(DeleteOutcome::Deleted)
            }
            Err(f) if is_404(&f.error) => Ok(DeleteOutcome::AlreadyGone),
            Err(f) => Err(f.into_cluster_error(label)),
        }
    }

    /// Merge-patches `status` into the object's status: on the `/status`
    /// subresource when the kind has one, else on the object itself (a CRD
    /// without `subresources.status`). Keys absent from `status` keep their
    /// values; set them to `null` to remove them. Returns the patched object.
    pub async fn patch_status(&self, r: &ObjectRef, status: &Value) -> Result<Value, ClusterError> {
        let resolved = self.resolve(r).await?;
        let (r, path) = self.object_path(r, &resolved)?;
        let label = r.to_string();
        let pp = PatchParams {
            field_manager: Some(self.inner.field_manager.clone()),
            ..PatchParams::default()
        };
        let patch = Patch::Merge(json!({ "status": status }));
        let on_status = resolved.status_subresource;
        self.request(RequestKind::StatusPatch, &label, || {
            let req = Request::new(path.as_str());
            if on_status {
                req.patch_subresource("status", &r.name, &pp, &patch)
            } else {
                req.patch(&r.name, &pp, &patch)
            }
        })
        .await
        .map_err(|f| f.into_cluster_error(label.clone()))
    }

    // ----- reads -----------------------------------------------------------

    /// The live object, or `None` when it does not exist.
    pub async fn get(&self, r: &ObjectRef) -> Result<Option<Value>, ClusterError> {
        let resolved = self.resolve(r).await?;
        let (r, path) = self.object_path(r, &resolved)?;
        let label = r.to_string();
        let gp = GetParams::default();
        match self
            .request(RequestKind::Read, &label, || {
                Request::new(path.as_str()).get(&r.name, &gp)
            })
            .await
        {
            Ok(v) => Ok(Some(v)),
            Err(f) if is_404(&f.error) => Ok(None),
            Err(f) => Err(f.into_cluster_error(label)),
        }
    }

    /// Every object of `gvk` matching `label_selector` (`""` for all), in
    /// `namespace` or, with `None`, in all namespaces (`namespace` is ignored
    /// for cluster-scoped kinds). Follows continue tokens; each item carries
    /// `apiVersion` and `kind`.
    pub async fn list(
        &self,
        gvk: &GroupVersionKind,
        namespace: Option<&str>,
        label_selector: &str,
    ) -> Result<Vec<Value>, ClusterError> {
        let resolved = self.resolve_gvk(gvk).await?;
        let (items, _) = self
            .list_resolved(&resolved, namespace, label_selector)
            .await?;
        Ok(items)
    }

    /// [`Self::list`] of a resolved kind, with the list's resourceVersion
    /// (where a watch of the same selection starts).
    pub async fn list_resolved(
        &self,
        resolved: &Resolved,
        namespace: Option<&str>,
        label_selector: &str,
    ) -> Result<(Vec<Value>, String), ClusterError> {
        let mut items = Vec::new();
        let version = self
            .list_each_resolved(resolved, namespace, label_selector, |item| items.push(item))
            .await?;
        Ok((items, version))
    }

    /// [`Self::list_resolved`] handing each object to `each` as its page
    /// arrives, so a caller that only looks at each object (a watch's
    /// initial list) never holds the whole list: one page at a time.
    /// Returns the list's resourceVersion.
    pub async fn list_each_resolved(
        &self,
        resolved: &Resolved,
        namespace: Option<&str>,
        label_selector: &str,
        mut each: impl FnMut(Value),
    ) -> Result<String, ClusterError> {
        let ar = &resolved.api_resource;
        let gvk = GroupVersionKind::gvk(&ar.group, &ar.version, &ar.kind);
        let namespace = namespace.filter(|_| resolved.namespaced);
        let label = match namespace {
            Some(ns) => format!("{} in namespace {ns}", gvk_label(&gvk)),
            None => gvk_label(&gvk),
        };
        let path = resolved.collection_path(namespace);
        let mut continue_token: Option<String> = None;
        let mut version = None;
        loop {
            let lp = ListParams {
                label_selector: (!label_selector.is_empty()).then(|| label_selector.to_string()),
                limit: Some(LIST_PAGE),
                continue_token: continue_token.clone(),
                ..ListParams::default()
            };
            let mut page = self
                .request(RequestKind::List, &label, || {
                    Request::new(path.as_str()).list(&lp)
                })
                .await
                .map_err(|f| f.into_cluster_error(label.clone()))?;
            if version.is_none() {
                version = page
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
                    .map(str::to_string);
            }
            let next = page
                .pointer("/metadata/continue")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string);
            // Moved out of the page, not copied: a page of objects with
            // their managedFields is large (two copies at once doubled
            // the peak memory of a list).
            if let Some(Value::Array(page_items)) = page.get_mut("items").map(Value::take) {
                for mut item in page_items {
                    with_type(&mut item, resolved);
                    each(item);
                }
            }
            match next {
                Some(token) => continue_token = Some(token),
                None => break,
            }
        }
        Ok(version.unwrap_or_default())
    }

    /// Watches a resolved kind from `resource_version` (from
    /// [`Self::list_resolved`]) for up to `timeout_secs`, with bookmarks.
    /// Counted as one watch; not retried and not rate-limited (the caller
    /// re-watches or relists: see `cache`). Objects carry `apiVersion` and
    /// `kind`.
    pub(crate) async fn watch_resolved(
        &self,
        resolved: &Resolved,
        namespace: Option<&str>,
        label_selector: &str,
        resource_version: &str,
        timeout_secs: u32,
    ) -> Result<
        impl futures::Stream<Item = Result<kube::core::WatchEvent<Value>, kube::Error>> + use<>,
        kube::Error,
    > {
        let namespace = namespace.filter(|_| resolved.namespaced);
        let path = resolved.collection_path(namespace);
        // Bookmarks are on by default.
        let mut wp = kube::core::params::WatchParams::default().timeout(timeout_secs);
        if !label_selector.is_empty() {
            wp = wp.labels(label_selector);
        }
        let req = Request::new(path.as_str())
            .watch(&wp, resource_version)
            .map_err(kube::Error::BuildRequest)?;
        self.inner.counters.sent(RequestKind::Watch);
        let stream = self.inner.client.request_events::<Value>(req).await?;
        let resolved = resolved.clone();
        Ok(futures::StreamExt::map(
            stream,
            move |ev: Result<kube::core::WatchEvent<Value>, kube::Error>| {
                use kube::core::WatchEvent as E;
                ev.map(|mut ev| {
                    if let E::Added(o) | E::Modified(o) | E::Deleted(o) = &mut ev {
                        with_type(o, &resolved);
                    }
                    ev
                })
            },
        ))
    }

    /// Whether namespace `ns` exists (a terminating namespace still exists).
    pub async fn namespace_exists(&self, ns: &str) -> Result<bool, ClusterError> {
        let r = ObjectRef {
            group: String::new(),
            version: "v1".into(),
            kind: "Namespace".into(),
            namespace: None,
            name: ns.to_string(),
        };
        Ok(self.get(&r).await?.is_some())
    }

    /// Waits until CustomResourceDefinition `name` is Established and
    /// discovery serves its kind at every served version, then drops the
    /// discovery cache. Polls with backoff (100 ms doubling to 1 s) until
    /// `timeout`; the timeout error repeats the CRD's conditions.
    pub async fn wait_crd_established(
        &self,
        name: &str,
        timeout: Duration,
    ) -> Result<(), ClusterError> {
        let crd = ObjectRef {
            group: "apiextensions.k8s.io".into(),
            version: "v1".into(),
            kind: "CustomResourceDefinition".into(),
            namespace: None,
            name: name.to_string(),
        };
        let deadline = Instant::now() + timeout;
        let mut delay = Duration::from_millis(100);
        let mut last = "not found".to_string();
        loop {
            if let Some(live) = self.get(&crd).await? {
                match established(&live) {
                    Ok(()) => {
                        self.invalidate_discovery();
                        let mut served = true;
                        for gvk in served_kinds(&live) {
                            match self.resolve_gvk(&gvk).await {
                                Ok(_) => {}
                                Err(ClusterError::UnknownKind { .. }) => {
                                    served = false;
                                    last = format!(
                                        "Established, but discovery does not serve {} yet",
                                        gvk_label(&gvk)
                                    );
                                    break;
                                }
                                Err(e) => return Err(e),
                            }
                        }
                        if served {
                            tracing::debug!(crd = name, "established");
                            return Ok(());
                        }
                    }
                    Err(why) => last = why,
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(ClusterError::Timeout {
                    object: crd.to_string(),
                    waited: timeout,
                    message: format!("not Established: {last}"),
                });
            }
            tokio::time::sleep(delay.min(deadline - now)).await;
            delay = (delay * 2).min(Duration::from_secs(1));
        }
    }

    // ----- plumbing --------------------------------------------------------

    /// The collection path for `r` and `r` with its namespace checked against
    /// the kind's scope.
    fn object_path(
        &self,
        r: &ObjectRef,
        resolved: &Resolved,
    ) -> Result<(ObjectRef, String), ClusterError> {
        let mut r = r.clone();
        if resolved.namespaced {
            if r.namespace.is_none() {
                return Err(missing_namespace(&r));
            }
        } else {
            r.namespace = None;
        }
        check_name(&r)?;
        let path = resolved.collection_path(r.namespace.as_deref());
        Ok((r, path))
    }

    /// One API request returning JSON, under the retry policy.
    async fn request(
        &self,
        kind: RequestKind,
        object: &str,
        make: impl Fn() -> Result<hyper::Request<Vec<u8>>, kube::core::request::Error>,
    ) -> Result<Value, Failure> {
        let client = &self.inner.client;
        let make = &make;
        self.run(kind, object, || async move {
            let req = make().map_err(kube::Error::BuildRequest)?;
            client.request::<Value>(req).await
        })
        .await
    }

    /// Runs `attempt` under the retry policy, counting each attempt as `kind`.
    async fn run<T, Fut>(
        &self,
        kind: RequestKind,
        object: &str,
        attempt: impl Fn() -> Fut,
    ) -> Result<T, Failure>
    where
        Fut: std::future::Future<Output = Result<T, kube::Error>>,
    {
        let counters = &self.inner.counters;
        self.inner
            .retry
            .run(
                object,
                kind.verb(),
                || counters.retried(),
                || {
                    counters.sent(kind);
                    let attempt = attempt();
                    async move {
                        if let Some(l) = &self.inner.limiter {
                            l.acquire().await;
                        }
                        attempt.await
                    }
                },
            )
            .await
    }
}

/// Gives a listed or watched object its `apiVersion` and `kind` (list items
/// may come without them).
fn with_type(item: &mut Value, resolved: &Resolved) {
    if let Some(o) = item.as_object_mut() {
        o.entry("apiVersion")
            .or_insert_with(|| json!(resolved.api_resource.api_version));
        o.entry("kind")
            .or_insert_with(|| json!(resolved.api_resource.kind));
    }
}

/// Gives a namespaced object `ns` when it has no namespace, and drops the
/// namespace of a cluster-scoped one. Leaves an object without a `metadata`
/// mapping alone (apply reports it).
pub fn with_default_namespace(obj: &mut Value, resolved: &Resolved, ns: &str) {
    let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    if resolved.namespaced {
        let has = meta
            .get("namespace")
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty());
        if !has && !ns.is_empty() {
            meta.insert("namespace".into(), json!(ns));
        }
    } else {
        meta.remove("namespace");
    }
}

/// `r` and the body to apply, with the namespace checked against the scope
/// (dropped, in a copy, for cluster-scoped kinds).
fn scoped<'a>(
    mut r: ObjectRef,
    resolved: &Resolved,
    obj: &'a Value,
) -> Result<(ObjectRef, std::borrow::Cow<'a, Value>), ClusterError> {
    if resolved.namespaced {
        if r.namespace.is_none() {
            return Err(missing_namespace(&r));
        }
        check_name(&r)?;
        return Ok((r, std::borrow::Cow::Borrowed(obj)));
    }
    check_name(&r)?;
    if r.namespace.take().is_some() || obj.pointer("/metadata/namespace").is_some() {
        let mut body = obj.clone();
        if let Some(meta) = body.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("namespace");
        }
        return Ok((r, std::borrow::Cow::Owned(body)));
    }
    Ok((r, std::borrow::Cow::Borrowed(obj)))
}

fn missing_namespace(r: &ObjectRef) -> ClusterError {
    ClusterError::BadObject {
        object: r.to_string(),
        message: format!(
            "{} is namespaced but the object has no metadata.namespace (the app's destination namespace should have been set)",
            r.kind_group()
        ),
    }
}

/// Names and namespaces go into the URL path: refuse what would change it
/// (the server would reject them as invalid anyway).
fn check_name(r: &ObjectRef) -> Result<(), ClusterError> {
    let bad = |s: &str| s.contains(['/', '?', '#', '%']) || s == "." || s == "..";
    if bad(&r.name) || r.namespace.as_deref().is_some_and(bad) {
        return Err(ClusterError::BadObject {
            object: r.to_string(),
            message: "names and namespaces may not contain '/', '?', '#' or '%', or be '.' or '..'"
                .into(),
        });
    }
    Ok(())
}

fn is_404(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// `Deployment.apps` for a group/version/kind.
fn gvk_label(gvk: &GroupVersionKind) -> String {
    if gvk.group.is_empty() {
        gvk.kind.clone()
    } else {
        format!("{}.{}", gvk.kind, gvk.group)
    }
}

/// The best name for an object that has no complete identity.
fn object_label(obj: &Value) -> String {
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("object");
    match obj.pointer("/metadata/name").and_then(Value::as_str) {
        Some(name) => format!("{kind} {name}"),
        None => format!("{kind} without a name"),
    }
}

/// `Ok` when the CRD's `Established` condition is `True`; else what its
/// conditions say.
fn established(crd: &Value) -> Result<(), String> {
    let conditions = crd
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let is_true = |c: &Value| c.get("status").and_then(Value::as_str) == Some("True");
    if conditions
        .iter()
        .any(|c| c.get("type").and_then(Value::as_str) == Some("Established") && is_true(c))
    {
        return Ok(());
    }
    let said: Vec<String> = conditions
        .iter()
        .map(|c| {
            let field = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            let mut s = format!("{}={}", field("type"), field("status"));
            let msg = field("message");
            if !msg.is_empty() {
                s.push_str(&format!(" ({msg})"));
            }
            s
        })
        .collect();
    Err(if said.is_empty() {
        "no conditions yet".into()
    } else {
        said.join(", ")
    })
}

/// The group/version/kinds a CRD serves.
fn served_kinds(crd: &Value) -> Vec<GroupVersionKind> {
    let group = crd
        .pointer("/spec/group")
        .and_then(Value::as_str)
        .unwrap_or("");
    let kind = crd
        .pointer("/spec/names/kind")
        .and_then(Value::as_str)
        .unwrap_or("");
    if group.is_empty() || kind.is_empty() {
        return Vec::new();
    }
    crd.pointer("/spec/versions")
        .and_then(Value::as_array)
        .map(|versions| {
            versions
                .iter()
                .filter(|v| v.get("served").and_then(Value::as_bool).unwrap_or(true))
                .filter_map(|v| v.get("name").and_then(Value::as_str))
                .map(|v| GroupVersionKind::gvk(group, v, kind))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::ApiResource;

    fn resolved(namespaced: bool) -> Resolved {
        Resolved {
            api_resource: ApiResource {
                group: String::new(),
                version: "v1".into(),
                api_version: "v1".into(),
                kind: "ConfigMap".into(),
                plural: "configmaps".into(),
            },
            namespaced,
            status_subresource: false,
        }
    }

    #[test]
    fn default_namespace_only_when_missing_and_namespaced() {
        let mut o = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}});
        with_default_namespace(&mut o, &resolved(true), "shop");
        assert_eq!(o["metadata"]["namespace"], "shop");
        with_default_namespace(&mut o, &resolved(true), "other");
        assert_eq!(o["metadata"]["namespace"], "shop");
        with_default_namespace(&mut o, &resolved(false), "shop");
        assert!(o["metadata"].get("namespace").is_none());
    }

    #[test]
    fn scoped_checks_namespace() {
        let o = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}});
        let r = ObjectRef::from_object(&o).expect("ref");
        let e = scoped(r.clone(), &resolved(true), &o).expect_err("needs a namespace");
        assert!(
            e.to_string()
                .starts_with("ConfigMap a: ConfigMap is namespaced"),
            "{e}"
        );
        let o = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "x"}});
        let r = ObjectRef::from_object(&o).expect("ref");
        let (r, body) = scoped(r, &resolved(false), &o).expect("cluster-scoped");
        assert!(r.namespace.is_none());
        assert!(body.pointer("/metadata/namespace").is_none());
        let bad = ObjectRef {
            name: "a/b".into(),
            ..r
        };
        assert!(check_name(&bad).is_err());
    }

    #[test]
    fn crd_conditions_and_kinds() {
        let crd = json!({
            "spec": {"group": "example.com", "names": {"kind": "Widget"},
                     "versions": [{"name": "v1", "served": true}, {"name": "v0", "served": false}]},
            "status": {"conditions": [
                {"type": "NamesAccepted", "status": "True"},
                {"type": "Established", "status": "False", "message": "not yet"}]}
        });
        let e = established(&crd).expect_err("not established");
        assert!(e.contains("Established=False (not yet)"), "{e}");
        let kinds = served_kinds(&crd);
        assert_eq!(
            kinds,
            vec![GroupVersionKind::gvk("example.com", "v1", "Widget")]
        );
        let ok = json!({"status": {"conditions": [{"type": "Established", "status": "True"}]}});
        assert!(established(&ok).is_ok());
    }
}

/// `kubesync/VERSION`, with `(AGENT)` when given (visible ASCII only; a
/// value a header cannot carry is left out).
fn user_agent(agent: Option<&str>) -> hyper::header::HeaderValue {
    const BASE: &str = concat!("kubesync/", env!("CARGO_PKG_VERSION"));
    let agent: Option<String> = agent
        .map(|a| {
            a.chars()
                .filter(|c| c.is_ascii_graphic() || *c == ' ')
                .collect::<String>()
        })
        .map(|a| a.replace(['(', ')'], "_"))
        .filter(|a| !a.trim().is_empty());
    agent
        .and_then(|a| hyper::header::HeaderValue::from_str(&format!("{BASE} ({})", a.trim())).ok())
        .unwrap_or_else(|| hyper::header::HeaderValue::from_static(BASE))
}

#[cfg(test)]
mod user_agent_tests {
    #[test]
    fn the_agent_is_named_in_the_user_agent() {
        let base = concat!("kubesync/", env!("CARGO_PKG_VERSION"));
        assert_eq!(super::user_agent(None), base);
        assert_eq!(super::user_agent(Some("  ")), base);
        assert_eq!(
            super::user_agent(Some("pod-1_42")),
            format!("{base} (pod-1_42)").as_str()
        );
        assert_eq!(
            super::user_agent(Some("a(b)\nc")),
            format!("{base} (a_b_c)").as_str()
        );
    }
}
