//! Applications that left the tree: found by their Application objects in
//! the cluster with no app of that name in the tree. Kept, with their
//! objects, and reported — unless the Argo CD Application carried
//! `resources-finalizer.argocd.argoproj.io` when it was last synced
//! (recorded on its Application object as [`CASCADE_ANNOTATION`]): then its
//! inventory is deleted in reverse dependency order (everything else, then
//! workloads, then their configuration, then cluster-scoped objects, CRDs
//! and Namespaces last, each group gone before the next) and the
//! Application object with it, as Argo CD's cascading delete does.
//!
//! Never deleted: an object whose live copy says
//! `argocd.argoproj.io/sync-options: Delete=false` or `kubesync.dev/sync:
//! off`, or that this app did not apply (label and tracking id). Nothing is
//! deleted while any app of the tree failed to render (an app that failed
//! may be the parent that would have rendered the "removed" one), nor in a
//! dry run.

use std::time::Instant;

use serde::Serialize;
use serde_json::Value;

use super::change::{Action, Change, ChangeError, SkipReason};
use super::engine::{list_applications, SyncOptions};
use super::gone::{wait_gone, Pace};
use super::prepare::{phase_of, Phase, SyncMode};
use super::prune::{annotation, applied_by};
use super::status;
use crate::cluster::{ClusterClient, Propagation};
use crate::model::object_options::object_options;
use crate::model::{AppName, ObjectRef};
use crate::tree::AppTree;

/// On a kubesync Application object: delete the app's objects when the app
/// leaves the tree (its Argo CD Application had the resources finalizer).
pub const CASCADE_ANNOTATION: &str = "kubesync.dev/cascade-delete";

/// An app that left the tree and was deleted with its objects.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RemovedApp {
    pub name: AppName,
    /// What happened to each object of its inventory.
    pub changes: Vec<Change>,
    /// Why the Application object was kept, when an object could not be
    /// deleted (the next run tries again).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The apps that left the tree: those kept (reported) and those deleted.
pub(super) async fn removed_apps(
    tree: &AppTree,
    client: &ClusterClient,
    opts: &SyncOptions,
) -> (Vec<AppName>, Vec<RemovedApp>) {
    let dry_run = opts.dry_run;
    let Ok(list) = list_applications(client).await else {
        return (Vec::new(), Vec::new());
    };
    let tree_complete = tree.failed().next().is_none();
    let mut kept = Vec::new();
    let mut removed = Vec::new();
    for obj in &list {
        let Some(name) = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .and_then(|n| AppName::new(n).ok())
        else {
            continue;
        };
        if tree.get(&name).is_some() {
            continue;
        }
        let cascade = annotation(obj, CASCADE_ANNOTATION) == Some("true");
        if cascade && tree_complete && !dry_run {
            removed.push(delete_app(client, &name, obj, opts).await);
        } else {
            kept.push(name);
        }
    }
    kept.sort();
    removed.sort_by(|a, b| a.name.cmp(&b.name));
    (kept, removed)
}

/// The order objects are deleted in: the reverse of the apply order.
fn deletion_rank(r: &ObjectRef) -> u8 {
    let namespaced = r.namespace.is_some();
    match phase_of(&r.group, &r.kind, namespaced) {
        Phase::Rest => 0,
        Phase::Workloads => 1,
        Phase::Config => 2,
        Phase::ClusterScoped => 3,
        Phase::Crds => 4,
        Phase::Namespaces => 5,
    }
}

/// Deletes one removed app's objects, group by group, then its Application
/// object (kept when an object could not be deleted).
async fn delete_app(
    client: &ClusterClient,
    name: &AppName,
    app_obj: &Value,
    opts: &SyncOptions,
) -> RemovedApp {
    let mut inventory: Vec<ObjectRef> = status::inventory_of(app_obj)
        .into_iter()
        .filter(|e| !e.sync_off)
        .map(|e| e.object)
        .collect();
    inventory.sort_by_key(deletion_rank);
    let mut changes = Vec::new();
    let mut error = None;
    let mut i = 0;
    while i < inventory.len() {
        let rank = deletion_rank(&inventory[i]);
        let end = inventory[i..]
            .iter()
            .position(|r| deletion_rank(r) != rank)
            .map_or(inventory.len(), |n| i + n);
        let mut deleted = Vec::new();
        for r in &inventory[i..end] {
            let c = delete_one(client, name, r).await;
            if c.action == Action::Pruned && c.note.is_none() {
                deleted.push(r.clone());
            }
            if let Some(f) = c.failure() {
                error.get_or_insert(f);
            }
            changes.push(c);
        }
        if let Err(e) = wait_gone(client, &deleted, pace(opts)).await {
            error.get_or_insert(e.to_string());
        }
        i = end;
    }
    if error.is_none() {
        let app_ref = status::application_ref(name.as_str());
        if let Err(e) = client.delete(&app_ref, Propagation::Background).await {
            error = Some(format!("cannot delete the Application object: {e}"));
        } else {
            tracing::info!(app = %name, "removed from the tree: deleted with its objects");
        }
    }
    RemovedApp {
        name: name.clone(),
        changes,
        error,
    }
}

/// How a removed app's deletions are waited for: the run's poll interval,
/// up to its `--timeout` (the app's own wait timeout is gone with it: the
/// default one) per group.
fn pace(opts: &SyncOptions) -> Pace {
    let timeout = opts
        .timeout
        .unwrap_or(crate::model::DEFAULT_WAIT_TIMEOUT)
        .min(super::app::MAX_WAIT);
    let now = Instant::now();
    Pace {
        poll: opts.poll_interval,
        deadline: now.checked_add(timeout).unwrap_or(now),
    }
}

/// Deletes one object of a removed app, unless it must be kept.
async fn delete_one(client: &ClusterClient, app: &AppName, r: &ObjectRef) -> Change {
    let live = match client.get(r).await {
        Ok(Some(l)) => l,
        Ok(None) => return Change::gone(r, false),
        Err(e) => return Change::failed(r, false, ChangeError::Prune(e.into())),
    };
    if let Some(reason) = keep(&live, app) {
        return Change::skipped(r, false, reason);
    }
    match client.delete(r, Propagation::Background).await {
        Ok(_) => Change::done(r, Action::Pruned, false),
        Err(e) => Change::failed(r, false, ChangeError::Prune(e.into())),
    }
}

/// Why a live object of a removed app is kept, if it is.
fn keep(live: &Value, app: &AppName) -> Option<SkipReason> {
    if super::prepare::sync_mode(live) == SyncMode::Off {
        return Some(SkipReason::KeptSyncOff);
    }
    if object_options(live).map_or(true, |o| !o.delete) {
        return Some(SkipReason::DeleteDisabled);
    }
    (!applied_by(live, app)).then_some(SkipReason::NotOwned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(group: &str, kind: &str, ns: Option<&str>) -> ObjectRef {
        ObjectRef {
            group: group.into(),
            version: "v1".into(),
            kind: kind.into(),
            namespace: ns.map(str::to_string),
            name: "x".into(),
        }
    }

    #[test]
    fn deletion_runs_in_reverse_apply_order() {
        let mut refs = [
            r("", "Namespace", None),
            r("apiextensions.k8s.io", "CustomResourceDefinition", None),
            r("", "ConfigMap", Some("a")),
            r("apps", "Deployment", Some("a")),
            r("example.com", "Widget", Some("a")),
            r("rbac.authorization.k8s.io", "ClusterRole", None),
        ];
        refs.sort_by_key(deletion_rank);
        let kinds: Vec<&str> = refs.iter().map(|r| r.kind.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "Widget",
                "Deployment",
                "ConfigMap",
                "ClusterRole",
                "CustomResourceDefinition",
                "Namespace"
            ]
        );
    }
}
