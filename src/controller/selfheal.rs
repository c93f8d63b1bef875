//! Self-heal by watch: one list+watch per kind kubesync applies, selected
//! by the `kubesync.dev/app` label, across the cluster. An event is drift
//! ([`classify`], pure) when it deletes an object an app wants, or when the
//! newest change to it was made by another field manager *and* the live
//! object no longer holds every field git declares (kubesync's own applies,
//! status-subresource writes, and other managers' writes to fields git
//! leaves alone — a controller's annotation — are not drift). Drift is queued on
//! the controller (`Pending::drift`), which re-syncs the app when it has
//! `selfHeal` (the engine writes only objects that differ, so nothing else
//! is touched) and otherwise reports it OutOfSync without writing. Objects
//! marked `kubesync.dev/sync: off` — in git or live — are never drift.
//! The same watches keep each object's health on the app's page
//! (`objects`), and an object whose health crosses Degraded between syncs
//! has its app's health re-checked by the loop (no sync: the Application
//! status, Events and signals follow from the objects' health).
//!
//! Where a kind is watched ([`WatchScope`]): cluster-wide, one list+watch
//! per kind; but a ServiceAccount bound by Roles in some namespaces only
//! (the chart's `rbac.mode: namespaced`) may not list a kind cluster-wide.
//! Such a kind — refused with 401/403, or every namespaced kind under
//! [`WatchScope::Namespaces`] — is watched in each namespace the tree puts
//! objects of that kind in ([`Desired::namespaces`]), and the set of
//! namespace watches follows the tree as apps come and go. Cluster-scoped
//! kinds can only be watched cluster-wide.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::core::WatchEvent;
use serde_json::Value;
use tokio::sync::watch;

use super::scheduler::Pending;
use super::state::SharedState;
use crate::cluster::{ClusterClient, ClusterError, GroupVersionKind, Resolved};
use crate::model::{is_app_project, is_application, AppName, ObjectRef, APP_LABEL};
use crate::render::Rendered;
use crate::sync::prepare::is_subset;
use crate::tree::{AppTree, NodeState};

/// How long one watch request lasts before it is renewed.
const WATCH_SECS: u32 = 290;
/// Pause before re-listing after a failed list or watch.
const RETRY: Duration = Duration::from_secs(2);
/// The longest pause between lists the server refuses (401/403): the
/// pause doubles from [`RETRY`] up to this, as RBAC seldom changes.
const REFUSED_RETRY_MAX: Duration = Duration::from_secs(30);

/// Where self-heal watches a namespaced kind (`--watch-scope`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WatchScope {
    /// Cluster-wide; a kind whose cluster-wide list is refused (401/403)
    /// is then watched per namespace.
    #[default]
    Auto,
    /// Per namespace from the start, never asking for a cluster-wide list
    /// (the chart's namespaced RBAC mode: no refused request per kind).
    Namespaces,
}

impl std::str::FromStr for WatchScope {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" | "cluster" => Ok(WatchScope::Auto),
            "namespaces" | "namespaced" => Ok(WatchScope::Namespaces),
            other => Err(format!(
                "unknown watch scope {other:?} (expected auto or namespaces)"
            )),
        }
    }
}

/// A kind, as the tree names it: group, version, kind.
type KindKey = (String, String, String);

/// group, kind, namespace and name in one string (see [`key`]): one
/// allocation per entry, as the index has an entry (or two) per object of
/// every app for the controller's lifetime.
type Key = Box<str>;

/// The index key of an object: its group, kind, namespace (or none) and
/// name, joined by a newline (which none of them can hold).
fn key(group: &str, kind: &str, namespace: Option<&str>, name: &str) -> Key {
    let (mark, ns) = match namespace {
        Some(ns) => ('+', ns),
        None => ('-', ""),
    };
    format!("{group}\n{kind}\n{mark}{ns}\n{name}").into_boxed_str()
}

/// What the tree wants, for classifying events.
#[derive(Debug, Clone, Default)]
pub struct Desired {
    objects: HashMap<Key, Entry>,
    /// Each kind, with the namespaces its objects are (or would be, if the
    /// kind is namespaced) applied in.
    kinds: BTreeMap<KindKey, BTreeSet<Box<str>>>,
    /// kube-applier's `LABEL`: a live object labelled `off` with it is
    /// left alone, so its changes are not drift.
    off_label: Option<String>,
}

#[derive(Debug, Clone)]
struct Entry {
    /// Shared by the app's entries.
    app: Arc<AppName>,
    sync_off: bool,
    /// The app's render (shared with the tree: the index holds no copy of
    /// any object) and the object's place in it.
    rendered: Arc<Rendered>,
    index: usize,
}

impl Entry {
    /// The object as git renders it.
    fn object(&self) -> &Value {
        &self.rendered.manifests[self.index].object
    }
}

/// `kubesync.dev/sync: off` on the object, read by the engine's own rule.
fn is_off(obj: &Value) -> bool {
    crate::sync::prepare::sync_mode(obj) == crate::sync::prepare::SyncMode::Off
}

impl Desired {
    /// Every object the tree's rendered apps apply.
    pub fn of(tree: &AppTree) -> Desired {
        let mut d = Desired::default();
        for n in tree.nodes() {
            let NodeState::Rendered(rendered) = &n.state else {
                continue;
            };
            let dest = n.app.destination.namespace.clone();
            let app = Arc::new(n.app.name.clone());
            // The same objects as `AppNode::objects`, with their places.
            let objects = rendered
                .manifests
                .iter()
                .enumerate()
                .filter(|(_, m)| !is_application(&m.object) && !is_app_project(&m.object));
            for (index, m) in objects {
                let Ok(r) = m.object_ref() else { continue };
                let namespaces = d
                    .kinds
                    .entry((r.group.clone(), r.version.clone(), r.kind.clone()))
                    .or_default();
                let ns = r
                    .namespace
                    .as_deref()
                    .or(dest.as_deref())
                    .unwrap_or("default");
                if !namespaces.contains(ns) {
                    namespaces.insert(ns.into());
                }
                let entry = Entry {
                    app: app.clone(),
                    sync_off: is_off(&m.object),
                    rendered: rendered.clone(),
                    index,
                };
                let mut put = |ns: Option<&str>| {
                    d.objects
                        .insert(key(&r.group, &r.kind, ns, &r.name), entry.clone());
                };
                match &r.namespace {
                    Some(ns) => put(Some(ns)),
                    None => {
                        // Cluster-scoped, or namespaced and defaulted at apply.
                        put(None);
                        put(Some(dest.as_deref().unwrap_or("default")));
                    }
                }
            }
        }
        d
    }

    /// The object git renders for live object `obj`, when the tree wants it.
    pub fn wanted(&self, obj: &Value) -> Option<&Value> {
        let r = ObjectRef::from_object(obj).ok()?;
        self.lookup(&r).map(Entry::object)
    }

    /// The kinds the tree applies.
    pub fn kinds(&self) -> impl Iterator<Item = &KindKey> {
        self.kinds.keys()
    }

    /// The namespaces the tree applies objects of `kind` in (for a
    /// cluster-scoped kind: where they would go if it were namespaced).
    pub fn namespaces(&self, kind: &KindKey) -> BTreeSet<Box<str>> {
        self.kinds.get(kind).cloned().unwrap_or_default()
    }

    fn lookup(&self, r: &ObjectRef) -> Option<&Entry> {
        self.objects
            .get(&key(&r.group, &r.kind, r.namespace.as_deref(), &r.name))
    }
}

/// A watch event, as far as drift is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Modified,
    Deleted,
}

/// Whether `event` on `obj` is drift of an app the tree wants: the app and
/// a description, or None (ours, not wanted, `sync: off`).
pub fn classify(
    event: Event,
    obj: &Value,
    desired: &Desired,
    manager: &str,
) -> Option<(AppName, String)> {
    let r = ObjectRef::from_object(obj).ok()?;
    let entry = desired.lookup(&r)?;
    let labelled = obj
        .pointer("/metadata/labels")
        .and_then(|l| l.get(APP_LABEL))
        .and_then(Value::as_str);
    if labelled.is_some_and(|l| l != entry.app.as_str())
        || entry.sync_off
        || is_off(obj)
        || crate::sync::prepare::labelled_off(obj, desired.off_label.as_deref()).is_some()
    {
        return None;
    }
    let app = AppName::clone(&entry.app);
    match event {
        Event::Deleted => Some((app, format!("{r} was deleted"))),
        Event::Modified => {
            let foreign = newest_foreign_manager(obj, manager)?;
            if is_subset(entry.object(), obj) {
                return None;
            }
            Some((app, format!("{r} was changed by {foreign}")))
        }
    }
}

/// The manager of the newest change to `obj` when it is not `ours`
/// (status-subresource entries aside; a tie counts as foreign).
fn newest_foreign_manager(obj: &Value, ours: &str) -> Option<String> {
    let entries = obj.pointer("/metadata/managedFields")?.as_array()?;
    let spec_entries: Vec<(&str, &str)> = entries
        .iter()
        .filter(|e| {
            e.get("subresource")
                .and_then(Value::as_str)
                .unwrap_or("")
                .is_empty()
        })
        .map(|e| {
            (
                e.get("manager").and_then(Value::as_str).unwrap_or(""),
                e.get("time").and_then(Value::as_str).unwrap_or(""),
            )
        })
        .collect();
    let newest = spec_entries.iter().map(|(_, t)| *t).max()?;
    spec_entries
        .iter()
        .find(|(m, t)| *t == newest && *m != ours)
        .map(|(m, _)| m.to_string())
}

/// The running watches, one task per kind (which may run one watch per
/// namespace); [`Watches::update`] follows the tree.
pub struct Watches {
    client: ClusterClient,
    state: Arc<SharedState>,
    scope: WatchScope,
    off_label: Option<String>,
    /// The tree's wants: read by every event's classification, and its
    /// changes wake the per-namespace kinds to start and stop watches.
    desired: watch::Sender<Arc<Desired>>,
    tasks: HashMap<KindKey, AbortOnDrop>,
}

/// A task aborted when its handle is dropped: a kind's task holds its
/// namespaces' tasks in these, so stopping the kind stops them all.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Watches {
    pub fn new(client: ClusterClient, state: Arc<SharedState>) -> Self {
        Watches {
            client,
            state,
            scope: WatchScope::default(),
            off_label: None,
            desired: watch::Sender::new(Arc::default()),
            tasks: HashMap::new(),
        }
    }

    /// Watches namespaced kinds per namespace from the start.
    pub fn with_scope(mut self, scope: WatchScope) -> Self {
        self.scope = scope;
        self
    }

    /// kube-applier's `LABEL` (`SyncOptions::off_label`): live objects
    /// labelled `off` with it are never drift.
    pub fn with_off_label(mut self, label: Option<String>) -> Self {
        self.off_label = label;
        self
    }

    /// Classifies events against `desired` from now on, watching its kinds
    /// (new kinds start, kinds no longer wanted stop; a kind watched per
    /// namespace follows its namespaces).
    pub fn update(&mut self, mut desired: Desired) {
        desired.off_label.clone_from(&self.off_label);
        let kinds: BTreeSet<KindKey> = desired.kinds().cloned().collect();
        self.desired.send_replace(Arc::new(desired));
        self.tasks.retain(|k, _| kinds.contains(k));
        for k in kinds {
            if self.tasks.contains_key(&k) {
                continue;
            }
            let task = tokio::spawn(watch_kind(
                Follow {
                    client: self.client.clone(),
                    desired: self.desired.subscribe(),
                    state: self.state.clone(),
                },
                k.clone(),
                self.scope,
            ));
            self.tasks.insert(k, AbortOnDrop(task.abort_handle()));
        }
    }
}

/// What every watch of every kind shares.
#[derive(Clone)]
struct Follow {
    client: ClusterClient,
    desired: watch::Receiver<Arc<Desired>>,
    state: Arc<SharedState>,
}

/// One kind: cluster-wide, or per namespace when the scope says so or the
/// server refuses the cluster-wide list.
async fn watch_kind(f: Follow, kind: KindKey, scope: WatchScope) {
    let gvk = GroupVersionKind::gvk(&kind.0, &kind.1, &kind.2);
    // The kind may not exist yet (a CRD the tree installs): retry.
    let resolved = loop {
        match f.client.resolve_gvk(&gvk).await {
            Ok(r) => break r,
            Err(_) => {
                tokio::time::sleep(RETRY).await;
                f.client.invalidate_discovery();
            }
        }
    };
    if scope == WatchScope::Auto || !resolved.namespaced {
        let refused = follow(&f, &resolved, None).await;
        tracing::info!(kind = %gvk.kind, "self-heal watches this kind in each namespace the tree's apps put it in, as the server refused a cluster-wide list: {refused}");
    }
    per_namespace(f, &resolved, &kind).await;
}

/// Keeps one watch per namespace the tree applies `kind` in, starting and
/// stopping them as the tree changes.
async fn per_namespace(mut f: Follow, resolved: &Resolved, kind: &KindKey) {
    let mut tasks: HashMap<Box<str>, AbortOnDrop> = HashMap::new();
    loop {
        let wanted = f.desired.borrow_and_update().namespaces(kind);
        tasks.retain(|ns, _| wanted.contains(ns));
        for ns in wanted {
            if tasks.contains_key(&ns) {
                continue;
            }
            let (f, resolved, name) = (f.clone(), resolved.clone(), ns.clone());
            // Never ends by itself: in a namespace, `follow` retries even
            // a refusal (the Role may come later).
            let task = tokio::spawn(async move { follow(&f, &resolved, Some(&name)).await });
            tasks.insert(ns, AbortOnDrop(task.abort_handle()));
        }
        // The sender is gone: the controller stopped.
        if f.desired.changed().await.is_err() {
            return;
        }
    }
}

/// Lists and watches `resolved` (in `namespace`, or cluster-wide) for as
/// long as the server allows it, classifying each event. Returns the
/// refusal of a cluster-wide list of a namespaced kind (the caller turns
/// to namespaces); any other failure, and a refusal in a namespace or of a
/// cluster-scoped kind, is retried here (a refusal is said once at warn
/// level, and retried with a pause growing to [`REFUSED_RETRY_MAX`]).
async fn follow(f: &Follow, resolved: &Resolved, namespace: Option<&str>) -> ClusterError {
    let kind = resolved.api_resource.kind.as_str();
    let manager = f.client.field_manager().to_string();
    let state = &f.state;
    let mut warned = false;
    let mut refused_pause = RETRY;
    loop {
        // Each listed object is looked at once (its health): page by page,
        // never the whole kind's objects at once.
        let listed = f
            .client
            .list_each_resolved(resolved, namespace, APP_LABEL, |o| {
                health_changed(state, state.objects.observed(&o, false));
            })
            .await;
        let mut version = match listed {
            Ok(v) => v,
            Err(e @ ClusterError::Forbidden { .. }) => {
                if namespace.is_none() && resolved.namespaced {
                    return e;
                }
                if !warned {
                    warned = true;
                    let whre = namespace.map_or("cluster-wide".to_string(), |ns| {
                        format!("in namespace {ns}")
                    });
                    tracing::warn!(kind, "self-heal cannot list this kind {whre}, so drift of its objects there is not seen (retrying): {e}");
                }
                tokio::time::sleep(refused_pause).await;
                refused_pause = (refused_pause * 2).min(REFUSED_RETRY_MAX);
                continue;
            }
            Err(e) => {
                tracing::debug!(kind, namespace, "self-heal: cannot list: {e}");
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        if warned {
            warned = false;
            refused_pause = RETRY;
            tracing::info!(kind, namespace, "self-heal: the server now allows the list");
        }
        // Follow until the server says the version is gone (then relist).
        'watch: loop {
            let stream = match f
                .client
                .watch_resolved(resolved, namespace, APP_LABEL, &version, WATCH_SECS)
                .await
            {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!(kind, namespace, "self-heal: cannot watch: {e}");
                    tokio::time::sleep(RETRY).await;
                    break 'watch;
                }
            };
            let mut stream = std::pin::pin!(stream);
            while let Some(ev) = stream.next().await {
                let (event, obj) = match ev {
                    Ok(WatchEvent::Modified(o)) => (Event::Modified, o),
                    Ok(WatchEvent::Deleted(o)) => (Event::Deleted, o),
                    Ok(WatchEvent::Added(o)) => {
                        health_changed(state, state.objects.observed(&o, false));
                        if let Some(v) = resource_version(&o) {
                            version = v;
                        }
                        continue;
                    }
                    Ok(WatchEvent::Bookmark(b)) => {
                        version = b.metadata.resource_version;
                        continue;
                    }
                    Ok(WatchEvent::Error(s)) if s.code == 410 => break 'watch,
                    Ok(WatchEvent::Error(_)) | Err(_) => {
                        tokio::time::sleep(RETRY).await;
                        continue 'watch;
                    }
                };
                if let Some(v) = resource_version(&obj) {
                    version = v;
                }
                health_changed(state, state.objects.observed(&obj, event == Event::Deleted));
                let d = f.desired.borrow().clone();
                drifted(state, &d, event, &obj, &manager);
            }
            // The watch timed out normally: renew it from where it was.
        }
    }
}

/// Queues `event` on `obj` as drift of its app when [`classify`] says so.
fn drifted(state: &SharedState, d: &Desired, event: Event, obj: &Value, manager: &str) {
    let Some((app, what)) = classify(event, obj, d, manager) else {
        return;
    };
    tracing::info!(app = %app, "drift: {what}");
    if let (Some(git), Ok(r)) = (d.wanted(obj), ObjectRef::from_object(obj)) {
        let live = (event == Event::Modified).then_some(obj);
        let diff = super::objects::drift_diff(git, live);
        state.objects.drifted(&app, &r, diff);
    }
    let mut p = Pending::default();
    p.drift.insert(app, what);
    state.trigger(p);
}

/// An object's health crossed the Degraded line between syncs: the loop
/// re-aggregates the app's health, so its status, Events
/// (`HealthDegraded`) and signals (`on-health-degraded`) follow it.
fn health_changed(state: &SharedState, app: Option<AppName>) {
    if let Some(app) = app {
        state.health_changed(app);
    }
}

fn resource_version(obj: &Value) -> Option<String> {
    obj.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn desired(off: bool) -> Desired {
        let mut d = Desired::default();
        d.objects.insert(
            key("", "ConfigMap", Some("ns"), "cm"),
            Entry {
                app: Arc::new(AppName::new("a").unwrap()),
                sync_off: off,
                rendered: Arc::new(Rendered {
                    renderer: crate::render::RendererKind::Directory,
                    manifests: vec![crate::model::Manifest {
                        object: json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}, "data": {"k": "git"}}),
                        origin: crate::model::ObjectOrigin { file: "cm.yaml".into(), doc: 0 },
                    }],
                    warnings: Vec::new(),
                }),
                index: 0,
            },
        );
        d
    }

    fn cm(managers: &[(&str, &str, &str)], extra: Value) -> Value {
        cm_with(managers, extra, "edited")
    }

    fn cm_with(managers: &[(&str, &str, &str)], extra: Value, value: &str) -> Value {
        let mf: Vec<Value> = managers
            .iter()
            .map(|(m, t, sub)| json!({"manager": m, "time": t, "subresource": sub}))
            .collect();
        let mut o = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "cm", "namespace": "ns", "labels": {"kubesync.dev/app": "a"}, "managedFields": mf},
            "data": {"k": value}});
        if let Some(a) = extra.get("annotations") {
            o["metadata"]["annotations"] = a.clone();
        }
        o
    }

    #[test]
    fn foreign_changes_and_deletions_are_drift() {
        let d = desired(false);
        let edited = cm(
            &[
                ("kubesync", "2026-01-01T00:00:00Z", ""),
                ("kubectl-edit", "2026-01-01T00:00:05Z", ""),
            ],
            json!({}),
        );
        let (app, what) = classify(Event::Modified, &edited, &d, "kubesync").unwrap();
        assert_eq!(app.as_str(), "a");
        assert!(what.contains("kubectl-edit"), "{what}");
        let ours = cm(
            &[
                ("kubectl-edit", "2026-01-01T00:00:00Z", ""),
                ("kubesync", "2026-01-01T00:00:05Z", ""),
            ],
            json!({}),
        );
        assert_eq!(classify(Event::Modified, &ours, &d, "kubesync"), None);
        let status = cm(
            &[
                ("kubesync", "2026-01-01T00:00:00Z", ""),
                ("ctrl", "2026-01-01T00:00:09Z", "status"),
            ],
            json!({}),
        );
        assert_eq!(
            classify(Event::Modified, &status, &d, "kubesync"),
            None,
            "status writes are not drift"
        );
        assert!(classify(Event::Deleted, &ours, &d, "kubesync")
            .unwrap()
            .1
            .contains("deleted"));
    }

    #[test]
    fn watch_scopes_parse_as_the_flag_spells_them() {
        assert_eq!("auto".parse(), Ok(WatchScope::Auto));
        assert_eq!("namespaces".parse(), Ok(WatchScope::Namespaces));
        let e = "everywhere".parse::<WatchScope>().unwrap_err();
        assert!(e.contains("everywhere") && e.contains("namespaces"), "{e}");
    }

    #[test]
    fn each_kind_knows_the_namespaces_its_objects_go_to() {
        let repo = tempfile::tempdir().unwrap();
        let w = |p: &str, t: &str| {
            let p = repo.path().join(p);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, t).unwrap();
        };
        let app = |name: &str, ns: &str| {
            format!("apiVersion: kubesync.dev/v1alpha1\nkind: Application\nmetadata: {{name: {name}}}\nspec:\n  source: {{path: objects/{name}}}\n  destination: {{namespace: {ns}}}\n")
        };
        w("root.yaml", "apiVersion: kubesync.dev/v1alpha1\nkind: Application\nmetadata: {name: root}\nspec:\n  source: {path: apps}\n");
        w("apps/a.yaml", &app("a", "ns-a"));
        w("apps/b.yaml", &app("b", "ns-b"));
        w("objects/a/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: elsewhere, namespace: ns-x}\n");
        w("objects/b/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {}\n");
        let root = repo.path().join("root.yaml");
        let sources = crate::source::Sources::new(crate::source::SourceOptions {
            root_manifest: root.clone(),
            ..Default::default()
        })
        .unwrap();
        let tree = crate::tree::expand(
            crate::model::load_root(&root).unwrap(),
            &sources,
            &crate::render::Renderer::new(),
            &crate::tree::ExpandOptions::default(),
        );
        let d = Desired::of(&tree);
        let cm = (String::new(), "v1".to_string(), "ConfigMap".to_string());
        let deploy = (
            "apps".to_string(),
            "v1".to_string(),
            "Deployment".to_string(),
        );
        let names = |k: &KindKey| -> Vec<String> {
            d.namespaces(k).iter().map(|n| n.to_string()).collect()
        };
        assert_eq!(names(&cm), ["ns-a", "ns-b", "ns-x"]);
        assert_eq!(names(&deploy), ["ns-b"]);
        assert_eq!(d.kinds().count(), 2);
    }

    #[test]
    fn keys_tell_namespaces_and_cluster_scope_apart() {
        let cluster = key("", "Namespace", None, "a");
        assert_ne!(cluster, key("", "Namespace", Some(""), "a"));
        assert_ne!(
            key("", "ConfigMap", Some("ns"), "a"),
            key("", "ConfigMap", Some("ns2"), "a")
        );
        assert_ne!(
            key("apps", "Deployment", Some("ns"), "a"),
            key("", "Deployment", Some("ns"), "a")
        );
        let d = desired(false);
        let live = cm(&[], json!({}));
        assert!(d.wanted(&live).is_some(), "found by its namespace");
        let mut elsewhere = live.clone();
        elsewhere["metadata"]["namespace"] = json!("other");
        assert!(d.wanted(&elsewhere).is_none());
    }

    #[test]
    fn sync_off_and_unwanted_objects_are_never_drift() {
        let edited = cm(&[("kubectl-edit", "2026-01-01T00:00:05Z", "")], json!({}));
        assert_eq!(
            classify(Event::Deleted, &edited, &desired(true), "kubesync"),
            None
        );
        let off_live = cm(
            &[("kubectl-edit", "2026-01-01T00:00:05Z", "")],
            json!({"annotations": {"kubesync.dev/sync": "off"}}),
        );
        assert_eq!(
            classify(Event::Modified, &off_live, &desired(false), "kubesync"),
            None
        );
        assert_eq!(
            classify(Event::Deleted, &edited, &Desired::default(), "kubesync"),
            None
        );
        // kube-applier's LABEL=off on the live object, when the label is set.
        let mut d = desired(false);
        let mut paused = edited.clone();
        paused["metadata"]["labels"]["kube-applier"] = json!("off");
        assert!(classify(Event::Modified, &paused, &d, "kubesync").is_some());
        d.off_label = Some("kube-applier".into());
        assert_eq!(classify(Event::Modified, &paused, &d, "kubesync"), None);
    }
}
