//! The in-memory object store: objects per resource keyed by namespace and
//! name, the global monotonically increasing resourceVersion, the bounded
//! history of committed changes that watches replay, and the fan-out of each
//! committed change to watchers and write listeners. It stores what the verbs
//! decided; it does not validate (see `cluster`).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use serde_json::Value;
use tokio::sync::{broadcast, mpsc};

use super::errors::ApiError;
use super::resources::{GroupResource, Registry};

/// The type of a committed change, as watch events name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One committed change to one object.
#[derive(Debug, Clone)]
pub struct WatchEvent {
    /// The resourceVersion this change produced.
    pub rv: u64,
    pub event_type: EventType,
    pub resource: GroupResource,
    /// `""` for cluster-scoped objects.
    pub namespace: String,
    pub name: String,
    /// The object after the change (for Deleted: its last state, carrying the
    /// deletion's resourceVersion).
    pub object: Value,
    /// The object before the change (Modified and Deleted).
    pub previous: Option<Value>,
}

/// `(namespace, name)`; namespace is `""` for cluster-scoped objects.
pub type ObjectKey = (String, String);

/// Everything the store holds; accessed under the cluster's lock.
pub struct State {
    rv: u64,
    pub registry: Registry,
    objects: HashMap<GroupResource, BTreeMap<ObjectKey, Value>>,
    history: VecDeque<Arc<WatchEvent>>,
    history_limit: usize,
    /// The highest resourceVersion whose event has left the history.
    evicted_rv: u64,
    events: broadcast::Sender<Arc<WatchEvent>>,
    listeners: Vec<mpsc::UnboundedSender<Arc<WatchEvent>>>,
}

impl State {
    pub fn new(history_limit: usize, channel_capacity: usize) -> Self {
        let (events, _) = broadcast::channel(channel_capacity.max(16));
        State {
            rv: 0,
            registry: Registry::default(),
            objects: HashMap::new(),
            history: VecDeque::new(),
            history_limit: history_limit.max(1),
            evicted_rv: 0,
            events,
            listeners: Vec::new(),
        }
    }

    /// The current (latest committed) resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    pub fn get(&self, gr: &GroupResource, ns: &str, name: &str) -> Option<&Value> {
        self.objects
            .get(gr)?
            .get(&(ns.to_string(), name.to_string()))
    }

    /// Objects of `gr` in key order, optionally limited to one namespace and
    /// to keys after `after`.
    pub fn iter<'a>(
        &'a self,
        gr: &GroupResource,
        ns: Option<&'a str>,
        after: Option<&'a ObjectKey>,
    ) -> impl Iterator<Item = (&'a ObjectKey, &'a Value)> + 'a {
        // Keys sort by namespace first: one namespace is one range.
        let from: ObjectKey = (ns.unwrap_or_default().to_string(), String::new());
        self.objects
            .get(gr)
            .into_iter()
            .flat_map(move |m| m.range(from.clone()..))
            .take_while(move |(k, _)| ns.is_none_or(|n| k.0 == n))
            .filter(move |(k, _)| after.is_none_or(|a| *k > a))
    }

    /// Every resource that has objects.
    pub fn resources(&self) -> Vec<GroupResource> {
        self.objects.keys().cloned().collect()
    }

    pub fn namespace_exists(&self, ns: &str) -> bool {
        let gr = GroupResource {
            group: String::new(),
            resource: "namespaces".into(),
        };
        self.get(&gr, "", ns).is_some()
    }

    fn record(&mut self, ev: WatchEvent) {
        let ev = Arc::new(ev);
        self.history.push_back(ev.clone());
        while self.history.len() > self.history_limit {
            if let Some(old) = self.history.pop_front() {
                self.evicted_rv = old.rv;
            }
        }
        // No receivers is fine: nobody is watching.
        let _ = self.events.send(ev.clone());
        self.listeners.retain(|l| l.send(ev.clone()).is_ok());
    }

    /// Stores `obj` under a new resourceVersion and emits `event_type`;
    /// returns the stored object (one copy goes to the map, one to the
    /// event; callers copy it again only to answer).
    pub fn put(&mut self, gr: &GroupResource, mut obj: Value, event_type: EventType) -> &Value {
        self.rv += 1;
        let rv = self.rv;
        if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
        }
        let ns = obj
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let key = (ns.clone(), name.clone());
        let previous = self
            .objects
            .entry(gr.clone())
            .or_default()
            .insert(key.clone(), obj.clone());
        self.record(WatchEvent {
            rv,
            event_type,
            resource: gr.clone(),
            namespace: ns,
            name,
            object: obj,
            previous,
        });
        self.objects
            .get(gr)
            .and_then(|m| m.get(&key))
            .expect("just stored")
    }

    /// Removes an object and emits DELETED; returns its last state (with the
    /// deletion's resourceVersion).
    pub fn remove(&mut self, gr: &GroupResource, ns: &str, name: &str) -> Option<Value> {
        let previous = self
            .objects
            .get_mut(gr)?
            .remove(&(ns.to_string(), name.to_string()))?;
        self.rv += 1;
        let rv = self.rv;
        let mut obj = previous.clone();
        if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
        }
        self.record(WatchEvent {
            rv,
            event_type: EventType::Deleted,
            resource: gr.clone(),
            namespace: ns.to_string(),
            name: name.to_string(),
            object: obj.clone(),
            previous: Some(previous),
        });
        Some(obj)
    }

    /// A receiver of every change committed from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<WatchEvent>> {
        self.events.subscribe()
    }

    /// A lossless, unbounded stream of every change committed from now on
    /// (for controllers and hooks).
    pub fn listen(&mut self) -> mpsc::UnboundedReceiver<Arc<WatchEvent>> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.listeners.push(tx);
        rx
    }

    /// Changes after `rv`, or 410 Gone when the history no longer reaches
    /// back that far.
    pub fn events_since(&self, rv: u64) -> Result<Vec<Arc<WatchEvent>>, ApiError> {
        if rv < self.evicted_rv {
            return Err(ApiError::gone(format!(
                "too old resource version: {rv} ({})",
                self.evicted_rv
            )));
        }
        Ok(self.history.iter().filter(|e| e.rv > rv).cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn gr() -> GroupResource {
        GroupResource {
            group: String::new(),
            resource: "configmaps".into(),
        }
    }

    #[test]
    fn versions_and_history() {
        let mut s = State::new(2, 16);
        for n in ["a", "b", "c"] {
            s.put(
                &gr(),
                json!({"metadata": {"name": n, "namespace": "ns"}}),
                EventType::Added,
            );
        }
        assert_eq!(s.resource_version(), 3);
        assert_eq!(
            s.get(&gr(), "ns", "c")
                .and_then(|o| o.pointer("/metadata/resourceVersion")),
            Some(&json!("3"))
        );
        assert!(s.events_since(0).is_err());
        assert_eq!(s.events_since(1).expect("in history").len(), 2);
        let gone = s.remove(&gr(), "ns", "a").expect("removed");
        assert_eq!(gone["metadata"]["resourceVersion"], "4");
        assert_eq!(s.iter(&gr(), Some("ns"), None).count(), 2);
    }

    #[test]
    fn a_namespace_lists_only_its_own_objects_in_key_order() {
        let mut s = State::new(100, 16);
        for (ns, n) in [
            ("b", "x"),
            ("a", "y"),
            ("c", "z"),
            ("b", "w"),
            ("", "cluster"),
        ] {
            s.put(
                &gr(),
                json!({"metadata": {"name": n, "namespace": ns}}),
                EventType::Added,
            );
        }
        let names = |ns: Option<&str>, after: Option<&ObjectKey>| -> Vec<String> {
            s.iter(&gr(), ns, after).map(|(k, _)| k.1.clone()).collect()
        };
        assert_eq!(names(Some("b"), None), ["w", "x"]);
        assert_eq!(names(Some("a"), None), ["y"]);
        assert!(names(Some("d"), None).is_empty());
        let after = ("b".to_string(), "w".to_string());
        assert_eq!(names(Some("b"), Some(&after)), ["x"]);
        assert_eq!(names(None, Some(&after)), ["x", "z"]);
        assert_eq!(names(None, None), ["cluster", "y", "w", "x", "z"]);
    }
}
