//! Watch streams: newline-delimited JSON `{"type", "object"}` events for one
//! resource (optionally one namespace and selectors), starting with replayed
//! or synthetic events, then live changes; BOOKMARK events when asked; the
//! `410 Expired` ERROR event; ends at `timeoutSeconds` or shutdown. Owns the
//! translation of committed changes into what a watcher sees, not the
//! subscription (see `cluster::Cluster::watch_begin`).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use serde_json::{json, Value};
use tokio::sync::broadcast::error::RecvError;

use super::cluster::WatchBegin;
use super::errors::ApiError;
use super::resources::ResourceType;
use super::selector::{FieldSelector, LabelSelector};
use super::store::{EventType, WatchEvent};

/// What a watch request asked for.
#[derive(Debug, Clone)]
pub struct WatchParams {
    pub namespace: Option<String>,
    pub label_selector: LabelSelector,
    pub field_selector: FieldSelector,
    /// `allowWatchBookmarks=true`
    pub bookmarks: bool,
    /// `sendInitialEvents=true`: end the initial events with a bookmark
    /// annotated `k8s.io/initial-events-end`.
    pub initial_events_end: bool,
    pub timeout: Duration,
    pub bookmark_interval: Duration,
}

fn line(event_type: &str, object: Value) -> Bytes {
    let mut s = json!({"type": event_type, "object": object}).to_string();
    s.push('\n');
    Bytes::from(s)
}

/// The single ERROR event a watch sends when it cannot start.
pub fn error_line(err: &ApiError) -> Bytes {
    line("ERROR", err.to_status())
}

fn bookmark(rt: &ResourceType, rv: u64, initial_end: bool) -> Bytes {
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    line(
        "BOOKMARK",
        json!({"kind": rt.kind, "apiVersion": rt.api_version(), "metadata": meta}),
    )
}

fn as_served(rt: &ResourceType, obj: &Value) -> Value {
    let mut o = super::convert::to_served(rt, obj);
    if let Some(m) = o.as_object_mut() {
        m.insert("apiVersion".into(), json!(rt.api_version()));
        m.insert("kind".into(), json!(rt.kind));
    }
    o
}

/// What a watcher with these parameters sees of a committed change: an
/// object entering the selection is ADDED, leaving it is DELETED.
fn translate(rt: &ResourceType, p: &WatchParams, ev: &WatchEvent) -> Option<Bytes> {
    if ev.resource != rt.group_resource() {
        return None;
    }
    if let Some(ns) = &p.namespace {
        if rt.namespaced && ev.namespace != *ns {
            return None;
        }
    }
    let matches = |o: &Value| p.label_selector.matches(o) && p.field_selector.matches(o);
    let now = matches(&ev.object);
    let before = ev.previous.as_ref().is_some_and(matches);
    let ty = match ev.event_type {
        EventType::Added => now.then_some("ADDED"),
        EventType::Deleted => (now || before).then_some("DELETED"),
        EventType::Modified => match (before, now) {
            (true, true) => Some("MODIFIED"),
            (false, true) => Some("ADDED"),
            (true, false) => Some("DELETED"),
            (false, false) => None,
        },
    }?;
    Some(line(ty, as_served(rt, &ev.object)))
}

/// The body of a watch response.
pub fn stream(
    rt: Arc<ResourceType>,
    params: WatchParams,
    begin: WatchBegin,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> impl Stream<Item = Result<Bytes, Infallible>> {
    async_stream::stream! {
        let WatchBegin { mut receiver, initial, resource_version } = begin;
        let mut last_rv = resource_version;
        for ev in &initial {
            if let Some(b) = translate(&rt, &params, ev) {
                yield Ok(b);
            }
        }
        if params.initial_events_end && params.bookmarks {
            yield Ok(bookmark(&rt, last_rv, true));
        }
        let deadline = tokio::time::Instant::now() + params.timeout;
        let mut ticker = tokio::time::interval_at(
            tokio::time::Instant::now() + params.bookmark_interval,
            params.bookmark_interval,
        );
        loop {
            tokio::select! {
                r = receiver.recv() => match r {
                    Ok(ev) => {
                        if ev.rv <= last_rv {
                            continue;
                        }
                        last_rv = ev.rv;
                        if let Some(b) = translate(&rt, &params, &ev) {
                            yield Ok(b);
                        }
                    }
                    // A watcher too slow for the channel is closed; it
                    // resumes from its last resourceVersion.
                    Err(RecvError::Lagged(_)) | Err(RecvError::Closed) => break,
                },
                _ = tokio::time::sleep_until(deadline) => {
                    if params.bookmarks {
                        yield Ok(bookmark(&rt, last_rv, false));
                    }
                    break;
                }
                _ = ticker.tick(), if params.bookmarks => {
                    yield Ok(bookmark(&rt, last_rv, false));
                }
                _ = shutdown.changed() => break,
            }
        }
    }
}
