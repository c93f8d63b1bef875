//! The `kubesync.dev/refresh` annotation: setting it on an Application
//! object in `kubesync-system` (`kubectl annotate application web -n
//! kubesync-system kubesync.dev/refresh=now`) queues that app's sync; the
//! controller removes the annotation once the sync ran. One list+watch of
//! the Application kind, started once the kind exists.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::core::WatchEvent;
use serde_json::{json, Value};

use super::scheduler::Pending;
use super::state::SharedState;
use crate::cluster::{ClusterClient, GroupVersionKind};
use crate::model::AppName;
use crate::sync::status::{KUBESYNC_GROUP, STATUS_NAMESPACE};

/// The annotation that asks for a sync.
pub const REFRESH_ANNOTATION: &str = "kubesync.dev/refresh";

fn gvk() -> GroupVersionKind {
    GroupVersionKind::gvk(KUBESYNC_GROUP, "v1alpha1", "Application")
}

/// The app an Application object asks to refresh, if it does.
pub fn refresh_request(obj: &Value) -> Option<AppName> {
    obj.pointer("/metadata/annotations")?
        .get(REFRESH_ANNOTATION)?;
    let name = obj.pointer("/metadata/name")?.as_str()?;
    AppName::new(name).ok()
}

/// Watches Application objects for the annotation until aborted.
pub async fn watch(client: ClusterClient, state: Arc<SharedState>) {
    let retry = Duration::from_secs(2);
    loop {
        let resolved = match client.resolve_gvk(&gvk()).await {
            Ok(r) => r,
            Err(_) => {
                client.invalidate_discovery();
                tokio::time::sleep(retry).await;
                continue;
            }
        };
        // Each listed Application (with its status) is looked at once and
        // dropped: page by page, never kept while watching (holding the
        // list cost tens of KB per app for the controller's lifetime).
        let listed = client
            .list_each_resolved(&resolved, Some(STATUS_NAMESPACE), "", |o| {
                request(&state, &o)
            })
            .await;
        let mut version = match listed {
            Ok(v) => v,
            Err(_) => {
                tokio::time::sleep(retry).await;
                continue;
            }
        };
        loop {
            let Ok(stream) = client
                .watch_resolved(&resolved, Some(STATUS_NAMESPACE), "", &version, 290)
                .await
            else {
                tokio::time::sleep(retry).await;
                break;
            };
            let mut stream = std::pin::pin!(stream);
            let mut gone = false;
            while let Some(ev) = stream.next().await {
                match ev {
                    Ok(WatchEvent::Added(o) | WatchEvent::Modified(o)) => {
                        if let Some(v) = o
                            .pointer("/metadata/resourceVersion")
                            .and_then(Value::as_str)
                        {
                            version = v.to_string();
                        }
                        request(&state, &o);
                    }
                    Ok(WatchEvent::Deleted(_)) => {}
                    Ok(WatchEvent::Bookmark(b)) => version = b.metadata.resource_version,
                    Ok(WatchEvent::Error(s)) => {
                        gone = s.code == 410;
                        break;
                    }
                    Err(_) => break,
                }
            }
            if gone {
                break;
            }
        }
    }
}

fn request(state: &SharedState, obj: &Value) {
    if let Some(app) = refresh_request(obj) {
        if state.knows(&app) {
            tracing::info!(app = %app, "refresh requested by annotation");
            let mut p = Pending::default();
            p.apps.insert(app.clone());
            p.refreshed.insert(app);
            state.trigger(p);
        }
    }
}

/// Removes the annotation from `app`'s Application object (a merge patch).
pub async fn clear(client: &ClusterClient, app: &AppName) {
    let resolved = match client.resolve_gvk(&gvk()).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(app = %app, "cannot remove {REFRESH_ANNOTATION}: {e}");
            return;
        }
    };
    let api: kube::Api<kube::api::DynamicObject> = kube::Api::namespaced_with(
        client.kube_client(),
        STATUS_NAMESPACE,
        &resolved.api_resource,
    );
    let patch = json!({"metadata": {"annotations": {REFRESH_ANNOTATION: null}}});
    let pp = kube::api::PatchParams {
        field_manager: Some(client.field_manager().to_string()),
        ..Default::default()
    };
    if let Err(e) = api
        .patch(app.as_str(), &pp, &kube::api::Patch::Merge(&patch))
        .await
    {
        tracing::warn!(app = %app, "cannot remove {REFRESH_ANNOTATION}: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_annotated_applications_ask() {
        let yes = json!({"metadata": {"name": "web", "annotations": {REFRESH_ANNOTATION: "now"}}});
        assert_eq!(refresh_request(&yes).unwrap().as_str(), "web");
        let no = json!({"metadata": {"name": "web", "annotations": {"x": "y"}}});
        assert_eq!(refresh_request(&no), None);
    }
}
