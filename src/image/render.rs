//! Render-time pinning (`spec.images.pinDigests: true` on a kubesync
//! Application): every image of a rendered workload (Deployment, DaemonSet,
//! StatefulSet, ReplicaSet, Job, CronJob, Pod; init containers included)
//! that names a tag without a digest is resolved against its registry and
//! rewritten `repo:tag@sha256:…`, so `render`, `diff` and `sync` all see
//! and apply the digest. Images already pinned are kept as written.
//!
//! The render pipeline is synchronous, so the lookups run on a thread of
//! their own with a small runtime, each distinct reference asked once.
//! Credentials come from the docker config named by
//! `KUBESYNC_DOCKER_CONFIG` (the same file `image-sync --docker-config`
//! reads); loopback registries may be plain http, and
//! `KUBESYNC_INSECURE_REGISTRIES` (comma-separated hosts) names others.
//! A tag that cannot be resolved fails the app's render, naming the image,
//! the file and the reason: an app asking for pins never gets a tag.

use std::collections::BTreeMap;

use serde_json::Value;

use super::credentials::DockerConfig;
use super::reference::Reference;
use super::registry::{RegistryClient, RegistryOptions};
use crate::model::Manifest;

/// Where a kind keeps its pod spec.
fn pod_spec_pointer(api_version: &str, kind: &str) -> Option<&'static str> {
    let group = api_version.split_once('/').map_or("", |(g, _)| g);
    match (group, kind) {
        ("apps", "Deployment" | "DaemonSet" | "StatefulSet" | "ReplicaSet") | ("batch", "Job") => {
            Some("/spec/template/spec")
        }
        ("batch", "CronJob") => Some("/spec/jobTemplate/spec/template/spec"),
        ("", "Pod") => Some("/spec"),
        _ => None,
    }
}

/// The JSON pointers of every tag-only image in `obj`, with the image.
fn tagged_images(obj: &Value) -> Vec<(String, String)> {
    let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
    let Some(spec_ptr) = pod_spec_pointer(api_version, kind) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for list in ["initContainers", "containers"] {
        let items = obj
            .pointer(&format!("{spec_ptr}/{list}"))
            .and_then(Value::as_array);
        for (i, c) in items.into_iter().flatten().enumerate() {
            if let Some(image) = c.get("image").and_then(Value::as_str) {
                if !image.contains('@') {
                    out.push((format!("{spec_ptr}/{list}/{i}/image"), image.to_string()));
                }
            }
        }
    }
    out
}

fn options_from_env() -> Result<(RegistryOptions, Option<DockerConfig>), String> {
    let insecure = std::env::var("KUBESYNC_INSECURE_REGISTRIES")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let config = match std::env::var_os("KUBESYNC_DOCKER_CONFIG") {
        None => None,
        Some(path) => {
            let text = std::fs::read_to_string(&path).map_err(|e| {
                format!(
                    "cannot read KUBESYNC_DOCKER_CONFIG {}: {e}",
                    std::path::Path::new(&path).display()
                )
            })?;
            Some(DockerConfig::parse(&text).map_err(|e| {
                format!(
                    "KUBESYNC_DOCKER_CONFIG {}: {e}",
                    std::path::Path::new(&path).display()
                )
            })?)
        }
    };
    Ok((
        RegistryOptions {
            insecure,
            ..RegistryOptions::default()
        },
        config,
    ))
}

/// Pins every tag-only workload image of `manifests` in place. The error
/// names the first image that failed, its file and why.
pub fn pin_manifests(manifests: &mut [Manifest]) -> Result<(), String> {
    let mut wanted: BTreeMap<String, Vec<(usize, String)>> = BTreeMap::new();
    for (i, m) in manifests.iter().enumerate() {
        for (ptr, image) in tagged_images(&m.object) {
            wanted.entry(image).or_default().push((i, ptr));
        }
    }
    if wanted.is_empty() {
        return Ok(());
    }
    let mut refs = Vec::new();
    for (image, places) in &wanted {
        let file = &manifests[places[0].0].origin;
        let r = Reference::parse(image).map_err(|e| format!("image \"{image}\" in {file}: {e}"))?;
        refs.push(r);
    }
    let (opts, config) = options_from_env()?;
    let resolved = std::thread::scope(|s| {
        s.spawn(|| -> Result<Vec<Result<String, String>>, String> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start a runtime: {e}"))?;
            rt.block_on(async {
                let client = RegistryClient::new(opts).map_err(|e| e.to_string())?;
                let lookups = refs.iter().map(|r| {
                    let creds = config.as_ref().and_then(|c| c.lookup(&r.registry));
                    let client = &client;
                    async move {
                        client
                            .resolve(r, creds)
                            .await
                            .map(|d| r.pinned(&d))
                            .map_err(|e| e.to_string())
                    }
                });
                Ok(futures::future::join_all(lookups).await)
            })
        })
        .join()
        .unwrap_or_else(|_| Err("the digest lookup thread panicked".into()))
    })?;
    for ((image, places), pinned) in wanted.iter().zip(resolved) {
        let pinned = pinned.map_err(|e| {
            let file = &manifests[places[0].0].origin;
            format!("cannot resolve image \"{image}\" in {file}: {e}")
        })?;
        for (i, ptr) in places {
            if let Some(v) = manifests[*i].object.pointer_mut(ptr) {
                *v = Value::String(pinned.clone());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_tagged_images_of_workload_kinds_only() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"template": {"spec": {
            "initContainers": [{"name": "i", "image": "tool:1"}],
            "containers": [{"name": "a", "image": "app:v1"}, {"name": "b", "image": format!("app:v1@{digest}")}]}}}});
        assert_eq!(
            tagged_images(&d),
            vec![
                (
                    "/spec/template/spec/initContainers/0/image".to_string(),
                    "tool:1".to_string()
                ),
                (
                    "/spec/template/spec/containers/0/image".to_string(),
                    "app:v1".to_string()
                ),
            ]
        );
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "spec": {"containers": [{"name": "a", "image": "nginx"}]}});
        assert_eq!(tagged_images(&pod)[0].0, "/spec/containers/0/image");
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"image": "x"}});
        assert!(tagged_images(&cm).is_empty());
        let other = json!({"apiVersion": "example.com/v1", "kind": "Deployment", "spec": {"template": {"spec": {
            "containers": [{"name": "a", "image": "app:v1"}]}}}});
        assert!(tagged_images(&other).is_empty());
    }
}
