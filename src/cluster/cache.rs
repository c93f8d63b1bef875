//! [`LiveCache`]: one run's view of the live objects it reads, kept by
//! list+watch instead of a GET per object and a poll per wait.
//!
//! The first read of a kind lists it once — cluster-wide, or per namespace
//! ([`CacheScope`]) — restricted by a label selector the caller names (for
//! kubesync: the objects it applied), then watches the same selection and
//! keeps the copies current (a `410 Gone` or a broken stream relists; a
//! failed watch is retried after a pause). A kind that cannot be listed (no
//! permission, say) is read with GETs, as before. Reads of an object absent
//! from the selection ask the server (the object may exist without the
//! label), except in namespaces this run created ([`LiveCache::created_namespace`]).
//! A kind whose watch is refused (401/403) is read with GETs from then on.
//!
//! Waiters subscribe to the kinds they care about ([`LiveCache::subscribe`])
//! and wake on the first change — so a dependent app starts on the event
//! that makes its prerequisite ready, not on the next poll.
//!
//! Writes go to the server as before; their results are recorded here
//! ([`LiveCache::applied`], [`LiveCache::deleted`]) so a run reads its own
//! writes. Watch tasks stop when the cache is dropped.
//!
//! Copies are kept as compact JSON text and parsed when read: a run reads
//! each object a few times, and a parsed `serde_json::Value` (an ordered
//! map per mapping, a `String` per key) is about ten times the size of its
//! text — ~5 KB against ~0.5 KB for a small ConfigMap, which for a
//! controller's full run of 10,000 objects was 50 MB held at once.
//!
//! It owns no policy: which selector marks kubesync's objects and which
//! scope is cheaper are the caller's (`sync`).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::core::WatchEvent;
use parking_lot::Mutex;
use serde_json::Value;
use tokio::sync::{watch, OnceCell};

use super::client::ClusterClient;
use super::discovery::Resolved;
use super::error::ClusterError;
use crate::model::ObjectRef;

/// How long one watch request lasts (below the client's read timeout).
const WATCH_SECS: u32 = 45;

/// Pause before re-watching after a watch failed.
const WATCH_RETRY: Duration = Duration::from_secs(1);

/// What one list+watch covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheScope {
    /// One list+watch per kind across all namespaces (few requests; needs
    /// cluster-wide list and watch).
    Cluster,
    /// One list+watch per kind and namespace (when a run touches few).
    Namespace,
}

/// A run's cache of live objects (see the module docs).
pub struct LiveCache {
    client: ClusterClient,
    scope: CacheScope,
    kinds: Mutex<HashMap<KindKey, Arc<KindCache>>>,
    created_namespaces: Mutex<HashSet<String>>,
    tasks: Mutex<Vec<tokio::task::AbortHandle>>,
    /// Whether lists are followed by watches (not for a one-shot read such
    /// as `diff`, see [`LiveCache::snapshot`]).
    follow: bool,
    /// Whether the copies keep `metadata.managedFields` (see
    /// [`LiveCache::keep_managed_fields`]).
    managed_fields: bool,
}

/// One list+watch: a kind, a namespace (or all), a label selector.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct KindKey {
    group: String,
    kind: String,
    namespace: Option<String>,
    selector: String,
}

/// An object's key in its list+watch: (namespace, name).
type ObjectKey = (Option<String>, String);

/// One cached copy (see the module docs: text, parsed when read).
struct Kept {
    /// `metadata.resourceVersion` as a number, where the server uses
    /// numbers (see [`version_number`]).
    version: Option<u64>,
    json: Box<str>,
}

impl Kept {
    fn new(obj: &Value) -> Option<Kept> {
        Some(Kept {
            version: version_number(obj),
            json: serde_json::to_string(obj).ok()?.into_boxed_str(),
        })
    }

    fn parse(&self) -> Option<Value> {
        serde_json::from_str(&self.json).ok()
    }
}

/// The objects of one list+watch, by (namespace, name).
struct KindCache {
    /// Set by the first list: `true` when cached, `false` when the kind
    /// could not be listed (reads go to the server).
    listed: OnceCell<bool>,
    objects: Mutex<HashMap<ObjectKey, Kept>>,
    /// Bumped on every change.
    changed: watch::Sender<u64>,
    selector: String,
    /// Set when the watch is refused (401/403): the copies are no longer
    /// kept current, so reads go to the server and waits poll.
    refused: AtomicBool,
}

impl KindCache {
    /// Whether reads may be served from this entry.
    fn usable(&self) -> bool {
        self.listed.get() == Some(&true) && !self.refused.load(Ordering::Relaxed)
    }
}

/// Changes a waiter wakes on: taken before it reads, so that no change in
/// between is missed.
pub struct Subscription {
    receivers: Vec<watch::Receiver<u64>>,
}

impl Subscription {
    /// Whether any kind subscribed to is watched (else [`Self::changed`]
    /// never returns and the caller must poll).
    pub fn is_watched(&self) -> bool {
        !self.receivers.is_empty()
    }

    /// Returns once any subscribed kind changed since the subscription (or
    /// the last call); never, when nothing is watched.
    pub async fn changed(&mut self) {
        if self.receivers.is_empty() {
            return std::future::pending().await;
        }
        let waits = self.receivers.iter_mut().map(|r| Box::pin(r.changed()));
        // A closed channel (its watch task ended) counts as a change; the
        // caller reads again and, finding nothing new, waits on its poll.
        let _ = futures::future::select_all(waits).await;
    }
}

impl LiveCache {
    pub fn new(client: ClusterClient, scope: CacheScope) -> Self {
        LiveCache {
            client,
            scope,
            kinds: Mutex::new(HashMap::new()),
            created_namespaces: Mutex::new(HashSet::new()),
            tasks: Mutex::new(Vec::new()),
            follow: true,
            managed_fields: true,
        }
    }

    /// Whether the copies keep `metadata.managedFields` (kept by default).
    /// They are about 40% of a typical object's JSON and most readers never
    /// look at them; a caller that does not (for kubesync: no
    /// `ignoreDifferences` rule names `managedFieldsManagers`) drops them,
    /// which makes the cache of a 2,200-object bootstrap ~12 MB smaller.
    pub fn keep_managed_fields(mut self, keep: bool) -> Self {
        self.managed_fields = keep;
        self
    }

    /// `obj` as the cache keeps it.
    fn kept(&self, mut obj: Value) -> Value {
        if !self.managed_fields {
            without_managed_fields(&mut obj);
        }
        obj
    }

    /// A cache for reads only (no waits): each kind is listed once and not
    /// watched, so a one-shot comparison costs one LIST per kind (and
    /// namespace) and no watch. Its own writes are still recorded.
    pub fn snapshot(client: ClusterClient, scope: CacheScope) -> Self {
        let mut cache = LiveCache::new(client, scope);
        cache.follow = false;
        cache
    }

    pub fn client(&self) -> &ClusterClient {
        &self.client
    }

    /// The live object `r` (`None`: it does not exist): from the cache when
    /// its kind is watched with `selector` and the object is in the
    /// selection; else from the server (one GET), unless the selection is
    /// everything (`""`) or the object would live in a namespace this run
    /// created (then it cannot exist unlabelled).
    pub async fn get(&self, r: &ObjectRef, selector: &str) -> Result<Option<Value>, ClusterError> {
        self.inspect(r, selector, |v| v.cloned()).await
    }

    /// [`Self::get`] without a copy: `f` sees the object where it is kept.
    pub async fn inspect<T>(
        &self,
        r: &ObjectRef,
        selector: &str,
        f: impl FnOnce(Option<&Value>) -> T,
    ) -> Result<T, ClusterError> {
        let resolved = self.client.resolve(r).await?;
        let namespace = r.namespace.as_deref().filter(|_| resolved.namespaced);
        let kind = self.kind(&resolved, r, namespace, selector).await;
        if kind.usable() {
            let key = (namespace.map(str::to_string), r.name.clone());
            // A copy that does not parse (never expected: it was written
            // by serde_json) is read from the server instead.
            let held = kind.objects.lock().get(&key).map(Kept::parse);
            match held {
                Some(Some(v)) => return Ok(f(Some(&v))),
                Some(None) => {
                    let live = self.client.get(r).await?;
                    return Ok(f(live.as_ref()));
                }
                None => {}
            }
            // Absent from a selection of everything, or in a namespace this
            // run created: it does not exist.
            if selector.is_empty()
                || namespace.is_some_and(|ns| self.created_namespaces.lock().contains(ns))
            {
                return Ok(f(None));
            }
        }
        let live = self.client.get(r).await?;
        Ok(f(live.as_ref()))
    }

    /// Lists and watches the kinds of `refs` (one sample per kind and
    /// namespace is enough) all at once, ahead of the reads that need them.
    /// Kinds that cannot be listed or are not served yet are left alone.
    pub async fn warm<'a>(&self, refs: impl IntoIterator<Item = (&'a ObjectRef, &'a str)>) {
        let starts = refs.into_iter().map(|(r, selector)| async move {
            let Ok(resolved) = self.client.resolve(r).await else {
                return;
            };
            let namespace = r.namespace.as_deref().filter(|_| resolved.namespaced);
            self.kind(&resolved, r, namespace, selector).await;
        });
        futures::future::join_all(starts).await;
    }

    /// Reads `r` from the server and records what it found (the fallback of
    /// a wait, in case a watch missed a change).
    pub async fn refresh(&self, r: &ObjectRef) -> Result<Option<Value>, ClusterError> {
        let live = self.client.get(r).await?;
        match &live {
            Some(v) => self.applied(v),
            None => self.deleted(r),
        }
        Ok(live)
    }

    /// Records an object the server returned from a write (not a dry run).
    pub fn applied(&self, obj: &Value) {
        let Ok(r) = ObjectRef::from_object(obj) else {
            return;
        };
        for kind in self.entries_for(&r) {
            if selects(&kind.selector, obj) {
                kind.put(&self.kept(obj.clone()));
            } else {
                kind.remove(&r.namespace, &r.name);
            }
        }
    }

    /// Records that `r` was deleted.
    pub fn deleted(&self, r: &ObjectRef) {
        for kind in self.entries_for(r) {
            kind.remove(&r.namespace, &r.name);
        }
    }

    /// Records that this run created namespace `ns`: nothing else can be in
    /// it, so reads of objects there need not ask the server.
    pub fn created_namespace(&self, ns: &str) {
        self.created_namespaces.lock().insert(ns.to_string());
    }

    /// Subscribes to changes of the kinds of `refs` (those already read).
    pub fn subscribe<'a>(&self, refs: impl IntoIterator<Item = &'a ObjectRef>) -> Subscription {
        let mut receivers = Vec::new();
        let mut seen = HashSet::new();
        for r in refs {
            for kind in self.entries_for(r) {
                if kind.usable() && seen.insert(Arc::as_ptr(&kind)) {
                    receivers.push(kind.changed.subscribe());
                }
            }
        }
        Subscription { receivers }
    }

    /// The list+watch entries that may hold `r` (any selector).
    fn entries_for(&self, r: &ObjectRef) -> Vec<Arc<KindCache>> {
        let kinds = self.kinds.lock();
        kinds
            .iter()
            .filter(|(k, _)| {
                k.group == r.group
                    && k.kind == r.kind
                    && (k.namespace.is_none() || k.namespace == r.namespace)
            })
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// The entry for `r`'s kind (listed and watched on first use).
    async fn kind(
        &self,
        resolved: &Resolved,
        r: &ObjectRef,
        namespace: Option<&str>,
        selector: &str,
    ) -> Arc<KindCache> {
        let key = KindKey {
            group: r.group.clone(),
            kind: r.kind.clone(),
            namespace: match self.scope {
                CacheScope::Cluster => None,
                CacheScope::Namespace => namespace.map(str::to_string),
            },
            selector: selector.to_string(),
        };
        let kind = self
            .kinds
            .lock()
            .entry(key.clone())
            .or_insert_with(|| {
                Arc::new(KindCache {
                    listed: OnceCell::new(),
                    objects: Mutex::new(HashMap::new()),
                    changed: watch::channel(0).0,
                    selector: selector.to_string(),
                    refused: AtomicBool::new(false),
                })
            })
            .clone();
        kind.listed
            .get_or_init(|| self.start(resolved, &key, kind.clone()))
            .await;
        kind
    }

    /// Lists the selection and starts its watch; `false` when it cannot be listed.
    async fn start(&self, resolved: &Resolved, key: &KindKey, kind: Arc<KindCache>) -> bool {
        let ns = key.namespace.as_deref();
        // Each object is trimmed as its page arrives: the whole list with
        // managedFields is never held at once.
        let mut items = HashMap::new();
        let listed = self
            .client
            .list_each_resolved(resolved, ns, &key.selector, |o| {
                items.extend(KindCache::entry(&self.kept(o)))
            })
            .await;
        match listed {
            Ok(version) => {
                kind.replace(items);
                if !self.follow {
                    return true;
                }
                let follow = follow(
                    self.client.clone(),
                    resolved.clone(),
                    key.namespace.clone(),
                    kind,
                    version,
                    self.managed_fields,
                );
                self.tasks.lock().push(tokio::spawn(follow).abort_handle());
                true
            }
            Err(e) => {
                tracing::debug!(kind = %key.kind, "cannot list, reading objects one by one: {e}");
                false
            }
        }
    }
}

fn without_managed_fields(obj: &mut Value) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.shift_remove("managedFields");
    }
}

impl Drop for LiveCache {
    fn drop(&mut self) {
        for t in self.tasks.lock().drain(..) {
            t.abort();
        }
    }
}

impl KindCache {
    /// `obj`'s key and its copy as kept.
    fn entry(obj: &Value) -> Option<(ObjectKey, Kept)> {
        Some((Self::key_of(obj)?, Kept::new(obj)?))
    }

    fn key_of(obj: &Value) -> Option<ObjectKey> {
        let meta = obj.get("metadata")?;
        let name = meta.get("name")?.as_str()?.to_string();
        let ns = meta
            .get("namespace")
            .and_then(Value::as_str)
            .map(str::to_string);
        Some((ns, name))
    }

    /// Stores `obj` unless the copy held is newer (a write's result may
    /// arrive before the watch event of an older change).
    fn put(&self, obj: &Value) {
        let Some((key, kept)) = Self::entry(obj) else {
            return;
        };
        {
            let mut objects = self.objects.lock();
            if let Some(held) = objects.get(&key) {
                if let (Some(old), Some(new)) = (held.version, kept.version) {
                    if new < old {
                        return;
                    }
                }
            }
            objects.insert(key, kept);
        }
        self.changed.send_modify(|n| *n += 1);
    }

    fn remove(&self, ns: &Option<String>, name: &str) {
        let removed = self
            .objects
            .lock()
            .remove(&(ns.clone(), name.to_string()))
            .is_some();
        if removed {
            self.changed.send_modify(|n| *n += 1);
        }
    }

    fn replace(&self, objects: HashMap<ObjectKey, Kept>) {
        *self.objects.lock() = objects;
        self.changed.send_modify(|n| *n += 1);
    }
}

/// Follows one selection: watches from `version`, applies every event,
/// re-watches when a watch ends, relists on `410 Gone`.
async fn follow(
    client: ClusterClient,
    resolved: Resolved,
    namespace: Option<String>,
    kind: Arc<KindCache>,
    mut version: String,
    managed_fields: bool,
) {
    let ns = namespace.as_deref();
    loop {
        let gone = match client
            .watch_resolved(&resolved, ns, &kind.selector, &version, WATCH_SECS)
            .await
        {
            Ok(stream) => {
                let mut stream = std::pin::pin!(stream);
                let mut gone = false;
                while let Some(event) = stream.next().await {
                    match event {
                        Ok(WatchEvent::Added(mut o) | WatchEvent::Modified(mut o)) => {
                            version = object_version(&o).unwrap_or(version);
                            if !managed_fields {
                                without_managed_fields(&mut o);
                            }
                            kind.put(&o);
                        }
                        Ok(WatchEvent::Deleted(o)) => {
                            version = object_version(&o).unwrap_or(version);
                            if let Some((ns, name)) = KindCache::key_of(&o) {
                                kind.remove(&ns, &name);
                            }
                        }
                        Ok(WatchEvent::Bookmark(b)) => version = b.metadata.resource_version,
                        Ok(WatchEvent::Error(s)) => {
                            gone = s.code == 410;
                            if !gone {
                                tracing::debug!(kind = %resolved.api_resource.kind, "watch error: {}", s.message);
                                tokio::time::sleep(WATCH_RETRY).await;
                            }
                            break;
                        }
                        Err(e) => {
                            tracing::debug!(kind = %resolved.api_resource.kind, "watch ended: {e}");
                            break;
                        }
                    }
                }
                gone
            }
            Err(kube::Error::Api(s)) if s.code == 410 => true,
            Err(kube::Error::Api(s)) if s.code == 401 || s.code == 403 => {
                tracing::debug!(kind = %resolved.api_resource.kind, "watch refused, reading objects one by one: {}", s.message);
                kind.refused.store(true, Ordering::Relaxed);
                // Waiters subscribed to this kind wake, and poll from now on.
                kind.changed.send_modify(|n| *n += 1);
                return;
            }
            Err(e) => {
                tracing::debug!(kind = %resolved.api_resource.kind, "cannot watch: {e}");
                tokio::time::sleep(WATCH_RETRY).await;
                false
            }
        };
        if gone {
            let mut items = HashMap::new();
            let relisted = client
                .list_each_resolved(&resolved, ns, &kind.selector, |mut o| {
                    if !managed_fields {
                        without_managed_fields(&mut o);
                    }
                    items.extend(KindCache::entry(&o));
                })
                .await;
            match relisted {
                Ok(v) => {
                    kind.replace(items);
                    version = v;
                }
                Err(e) => {
                    tracing::debug!(kind = %resolved.api_resource.kind, "cannot relist: {e}");
                    tokio::time::sleep(WATCH_RETRY).await;
                }
            }
        }
    }
}

fn object_version(o: &Value) -> Option<String> {
    o.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// The resourceVersion as a number, where the server uses numbers (etcd
/// revisions, the emulator); opaque versions are never compared.
fn version_number(o: &Value) -> Option<u64> {
    o.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)?
        .parse()
        .ok()
}

/// Whether `obj` is in `selector`'s selection. Handles what kubesync asks
/// for: `""` (all) and comma-separated `key` (exists) or `key=value` terms.
fn selects(selector: &str, obj: &Value) -> bool {
    let labels = obj.pointer("/metadata/labels");
    selector
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .all(|term| {
            let (key, value) = match term.split_once('=') {
                Some((k, v)) => (k.trim(), Some(v.trim())),
                None => (term, None),
            };
            let have = labels.and_then(|l| l.get(key)).and_then(Value::as_str);
            match value {
                None => have.is_some(),
                Some(v) => have == Some(v),
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn selectors() {
        let o = json!({"metadata": {"labels": {"kubesync.dev/app": "web", "tier": "x"}}});
        assert!(selects("", &o));
        assert!(selects("kubesync.dev/app", &o));
        assert!(selects("kubesync.dev/app=web,tier", &o));
        assert!(!selects("kubesync.dev/app=db", &o));
        assert!(!selects("other", &json!({"metadata": {}})));
    }

    #[test]
    fn older_versions_do_not_replace_newer() {
        let k = KindCache {
            listed: OnceCell::new(),
            objects: Mutex::new(HashMap::new()),
            changed: watch::channel(0).0,
            selector: String::new(),
            refused: AtomicBool::new(false),
        };
        let v = |rv: &str, n: i64| json!({"metadata": {"name": "a", "namespace": "x", "resourceVersion": rv}, "n": n});
        let held = || {
            k.objects.lock()[&(Some("x".into()), "a".into())]
                .parse()
                .unwrap()["n"]
                .clone()
        };
        k.put(&v("10", 1));
        k.put(&v("9", 2));
        assert_eq!(held(), 1);
        k.put(&v("11", 3));
        assert_eq!(held(), 3);
    }
}
