//! The emulator driven by the real kube-rs client: CRUD and error bodies,
//! generation, selectors and pagination, watch resume and 410, the kube-rs
//! watcher, dry run, server-side apply, CRDs, subresources, discovery, auth,
//! request accounting, hooks, and malformed requests.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams, WatchEvent,
    WatchParams,
};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::{watcher, WatchStreamExt};
use kubesync::emulator::{
    Cluster, Controller, EmulatorConfig, Fault, RequestHook, RequestInfo, WatchEvent as Committed,
};
use serde_json::{json, Value};
use support::{start, start_with, status, wait_for};

const SECS: Duration = Duration::from_secs(10);

fn cm(name: &str, labels: Value) -> ConfigMap {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "labels": labels},
        "data": {"k": "v"}
    }))
    .expect("configmap")
}

fn deployment(name: &str, replicas: i32) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": "nginx:1.25"}]}}
        }
    }))
    .expect("deployment")
}

fn rv_of<K: kube::Resource>(o: &K) -> u64 {
    o.meta()
        .resource_version
        .as_deref()
        .and_then(|r| r.parse().ok())
        .expect("numeric resourceVersion")
}

#[tokio::test]
async fn crud_roundtrip_with_real_status_errors() {
    let emu = start().await;
    let client = emu.kube_client();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let pp = PostParams::default();

    let created = cms.create(&pp, &cm("c1", json!({}))).await.expect("create");
    let meta = &created.metadata;
    assert!(meta.uid.is_some() && meta.creation_timestamp.is_some());
    assert_eq!(meta.namespace.as_deref(), Some("default"));

    let dup = status(
        cms.create(&pp, &cm("c1", json!({})))
            .await
            .expect_err("duplicate"),
    );
    assert_eq!((dup.code, dup.reason.as_str()), (409, "AlreadyExists"));
    assert_eq!(dup.message, "configmaps \"c1\" already exists");

    let mut stale = created.clone();
    stale.data = Some([("k".to_string(), "new".to_string())].into());
    let updated = cms.replace("c1", &pp, &stale).await.expect("replace");
    assert!(rv_of(&updated) > rv_of(&created));
    let conflict = status(cms.replace("c1", &pp, &stale).await.expect_err("stale"));
    assert_eq!(conflict.code, 409);
    assert_eq!(
        conflict.message,
        "Operation cannot be fulfilled on configmaps \"c1\": the object has been modified; please apply your changes to the latest version and try again"
    );

    let patched = cms
        .patch(
            "c1",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"extra": "1"}})),
        )
        .await
        .expect("merge patch");
    assert_eq!(
        patched
            .data
            .as_ref()
            .and_then(|d| d.get("extra"))
            .map(String::as_str),
        Some("1")
    );

    let deleted = cms
        .delete("c1", &DeleteParams::default())
        .await
        .expect("delete");
    assert!(deleted.is_right(), "configmap delete returns a Status");
    let missing = status(cms.get("c1").await.expect_err("gone"));
    assert_eq!(
        (missing.code, missing.message.as_str()),
        (404, "configmaps \"c1\" not found")
    );

    let nowhere: Api<ConfigMap> = Api::namespaced(client.clone(), "nope");
    let no_ns = status(
        nowhere
            .create(&pp, &cm("x", json!({})))
            .await
            .expect_err("no namespace"),
    );
    assert_eq!(
        (no_ns.code, no_ns.message.as_str()),
        (404, "namespaces \"nope\" not found")
    );

    let invalid = status(
        cms.create(&pp, &cm("Bad_Name", json!({})))
            .await
            .expect_err("invalid"),
    );
    assert_eq!((invalid.code, invalid.reason.as_str()), (422, "Invalid"));
    assert!(invalid.message.starts_with(
        "ConfigMap \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain"
    ));
    let namespaces: Api<Namespace> = Api::all(client);
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "a.b"}})).expect("ns");
    let bad_ns = status(namespaces.create(&pp, &ns).await.expect_err("label rule"));
    assert!(
        bad_ns.message.contains("a lowercase RFC 1123 label"),
        "{}",
        bad_ns.message
    );
}

#[tokio::test]
async fn generation_follows_spec_not_metadata_or_status() {
    let emu = start().await;
    let deploys: Api<Deployment> = Api::namespaced(emu.kube_client(), "default");
    let pp = PostParams::default();
    let d = deploys
        .create(&pp, &deployment("web", 2))
        .await
        .expect("create");
    assert_eq!(d.metadata.generation, Some(1));
    let labelled = deploys
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})),
        )
        .await
        .expect("label");
    assert_eq!(labelled.metadata.generation, Some(1));
    let scaled = deploys
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await
        .expect("spec");
    assert_eq!(scaled.metadata.generation, Some(2));
    let with_status = deploys
        .patch_status(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"readyReplicas": 3}, "spec": {"replicas": 9}})),
        )
        .await
        .expect("status");
    assert_eq!(with_status.metadata.generation, Some(2));
    assert_eq!(with_status.spec.replicas, Some(3));
    assert_eq!(
        with_status.status.as_ref().and_then(|s| s.ready_replicas),
        Some(3)
    );
    let main_status = deploys
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"readyReplicas": 0}})),
        )
        .await
        .expect("main resource");
    assert_eq!(
        main_status.status.as_ref().and_then(|s| s.ready_replicas),
        Some(3)
    );

    let scale = deploys.get_scale("web").await.expect("scale");
    assert_eq!(scale.spec.as_ref().and_then(|s| s.replicas), Some(3));
    assert_eq!(
        scale
            .status
            .as_ref()
            .and_then(|s| s.selector.clone())
            .as_deref(),
        Some("app=web")
    );
    deploys
        .patch_scale(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 5}})),
        )
        .await
        .expect("patch scale");
    let after = deploys.get("web").await.expect("get");
    assert_eq!(after.spec.replicas, Some(5));
    assert_eq!(after.metadata.generation, Some(3));
}

#[tokio::test]
async fn list_selectors_and_pagination() {
    let emu = start().await;
    let client = emu.kube_client();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    for i in 0..7 {
        let tier = if i % 2 == 0 { "fe" } else { "be" };
        let mut labels = json!({"app": "shop", "tier": tier});
        if i == 3 {
            labels["canary"] = json!("true");
        }
        cms.create(&PostParams::default(), &cm(&format!("cm-{i}"), labels))
            .await
            .expect("create");
    }
    let names = |l: kube::core::ObjectList<ConfigMap>| -> Vec<String> {
        l.items
            .into_iter()
            .filter_map(|c| c.metadata.name)
            .collect()
    };
    let count = |sel: &'static str| {
        let cms = cms.clone();
        async move {
            cms.list(&ListParams::default().labels(sel))
                .await
                .expect(sel)
                .items
                .len()
        }
    };
    assert_eq!(count("app=shop").await, 7);
    assert_eq!(count("tier==fe").await, 4);
    assert_eq!(count("tier!=fe").await, 3);
    assert_eq!(count("tier in (fe,be)").await, 7);
    assert_eq!(count("tier notin (fe)").await, 3);
    assert_eq!(count("canary").await, 1);
    assert_eq!(count("!canary,app=shop").await, 6);
    let by_name = cms
        .list(&ListParams::default().fields("metadata.name=cm-2"))
        .await
        .expect("field selector");
    assert_eq!(names(by_name), vec!["cm-2"]);
    let bad = status(
        cms.list(&ListParams::default().fields("data.k=v"))
            .await
            .expect_err("unsupported field"),
    );
    assert_eq!(
        (bad.code, bad.message.as_str()),
        (400, "field label not supported: data.k")
    );

    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut lp = ListParams::default().limit(3);
        if let Some(t) = &token {
            lp = lp.continue_token(t);
        }
        let page = cms.list(&lp).await.expect("page");
        pages += 1;
        token = page.metadata.continue_.clone().filter(|t| !t.is_empty());
        seen.extend(names(page));
        if token.is_none() {
            break;
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, (0..7).map(|i| format!("cm-{i}")).collect::<Vec<_>>());

    let all: Api<ConfigMap> = Api::all(client);
    let everywhere = all
        .list(&ListParams::default().labels("app=shop"))
        .await
        .expect("all namespaces");
    assert_eq!(everywhere.items.len(), 7);
}

#[tokio::test]
async fn watch_resumes_from_resource_version_and_reports_410() {
    let emu = start_with(EmulatorConfig {
        watch_history: 8,
        ..EmulatorConfig::default()
    })
    .await;
    let cms: Api<ConfigMap> = Api::namespaced(emu.kube_client(), "default");
    let pp = PostParams::default();
    let first = cms.create(&pp, &cm("w0", json!({}))).await.expect("w0");
    cms.create(&pp, &cm("w1", json!({}))).await.expect("w1");
    cms.patch(
        "w0",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "2"}})),
    )
    .await
    .expect("patch");
    cms.delete("w1", &DeleteParams::default())
        .await
        .expect("delete");

    let from = rv_of(&first).to_string();
    let stream = cms
        .watch(&WatchParams::default().timeout(2), &from)
        .await
        .expect("watch");
    let events: Vec<String> = tokio::time::timeout(SECS, stream.take(3).try_collect::<Vec<_>>())
        .await
        .expect("events in time")
        .expect("events")
        .into_iter()
        .map(|e| match e {
            WatchEvent::Added(c) => format!("ADDED {}", c.metadata.name.unwrap_or_default()),
            WatchEvent::Modified(c) => format!("MODIFIED {}", c.metadata.name.unwrap_or_default()),
            WatchEvent::Deleted(c) => format!("DELETED {}", c.metadata.name.unwrap_or_default()),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(events, ["ADDED w1", "MODIFIED w0", "DELETED w1"]);

    // Push the first write out of the bounded history.
    for i in 0..10 {
        cms.create(&pp, &cm(&format!("fill-{i}"), json!({})))
            .await
            .expect("fill");
    }
    let mut stream = cms
        .watch(&WatchParams::default().timeout(2), &from)
        .await
        .expect("watch")
        .boxed();
    match tokio::time::timeout(SECS, stream.next())
        .await
        .expect("event in time")
    {
        Some(Ok(WatchEvent::Error(s))) => {
            assert_eq!((s.code, s.reason.as_str()), (410, "Expired"));
            assert!(
                s.message.starts_with("too old resource version"),
                "{}",
                s.message
            );
        }
        other => panic!("expected a 410 ERROR event, got {other:?}"),
    }

    // Bookmarks carry a resourceVersion and timeoutSeconds ends the stream.
    let now = cms
        .list(&ListParams::default())
        .await
        .expect("list")
        .metadata
        .resource_version;
    let stream = cms
        .watch(
            &WatchParams {
                bookmarks: true,
                ..WatchParams::default().timeout(1)
            },
            now.as_deref().unwrap_or("0"),
        )
        .await
        .expect("watch");
    let rest: Vec<_> = tokio::time::timeout(SECS, stream.try_collect::<Vec<_>>())
        .await
        .expect("watch ends at its timeout")
        .expect("events");
    assert!(
        matches!(rest.last(), Some(WatchEvent::Bookmark(_))),
        "{rest:?}"
    );
}

#[tokio::test]
async fn kube_runtime_watcher_follows_changes() {
    let emu = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(emu.kube_client(), "default");
    cms.create(&PostParams::default(), &cm("before", json!({"app": "w"})))
        .await
        .expect("create");
    let mut stream = watcher(cms.clone(), watcher::Config::default().labels("app=w"))
        .applied_objects()
        .boxed();
    let mut names = Vec::new();
    let first = tokio::time::timeout(SECS, stream.try_next())
        .await
        .expect("in time");
    names.push(
        first
            .expect("ok")
            .expect("object")
            .metadata
            .name
            .unwrap_or_default(),
    );
    cms.create(&PostParams::default(), &cm("after", json!({"app": "w"})))
        .await
        .expect("create");
    cms.create(&PostParams::default(), &cm("other", json!({"app": "x"})))
        .await
        .expect("create");
    cms.patch(
        "after",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "2"}})),
    )
    .await
    .expect("patch");
    for _ in 0..2 {
        let next = tokio::time::timeout(SECS, stream.try_next())
            .await
            .expect("in time");
        names.push(
            next.expect("ok")
                .expect("object")
                .metadata
                .name
                .unwrap_or_default(),
        );
    }
    assert_eq!(names, ["before", "after", "after"]);
}

#[tokio::test]
async fn dry_run_writes_nothing() {
    let emu = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(emu.kube_client(), "default");
    let deploys: Api<Deployment> = Api::namespaced(emu.kube_client(), "default");
    let before = emu.cluster().resource_version();

    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let out = cms
        .create(&dry, &cm("ghost", json!({})))
        .await
        .expect("dry create");
    assert!(out.metadata.uid.is_some());
    let invalid = status(
        cms.create(&dry, &cm("Bad_Name", json!({})))
            .await
            .expect_err("validated"),
    );
    assert_eq!(invalid.code, 422);
    let ssa = PatchParams::apply("dry").dry_run();
    let applied = deploys
        .patch("ghost", &ssa, &Patch::Apply(deployment("ghost", 1)))
        .await
        .expect("dry apply");
    assert_eq!(applied.spec.replicas, Some(1));
    assert_eq!(
        emu.cluster().resource_version(),
        before,
        "no resourceVersion bump"
    );
    assert_eq!(
        status(cms.get("ghost").await.expect_err("not stored")).code,
        404
    );
    assert_eq!(
        status(deploys.get("ghost").await.expect_err("not stored")).code,
        404
    );

    let real = cms
        .create(&PostParams::default(), &cm("real", json!({})))
        .await
        .expect("create");
    let after_create = emu.cluster().resource_version();
    let dp = DeleteParams {
        dry_run: true,
        ..Default::default()
    };
    cms.delete("real", &dp).await.expect("dry delete");
    cms.patch(
        "real",
        &PatchParams::default().dry_run(),
        &Patch::Merge(json!({"data": {"k": "x"}})),
    )
    .await
    .expect("dry patch");
    assert_eq!(emu.cluster().resource_version(), after_create);
    let still = cms.get("real").await.expect("still there");
    assert_eq!(still.data, real.data);
}

#[tokio::test]
async fn server_side_apply_conflicts_and_force() {
    let emu = start().await;
    let deploys: Api<Deployment> = Api::namespaced(emu.kube_client(), "default");
    let created = deploys
        .patch(
            "api",
            &PatchParams::apply("team-a"),
            &Patch::Apply(deployment("api", 2)),
        )
        .await
        .expect("apply creates");
    let managers: Vec<(String, String)> = created
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .map(|m| {
            (
                m.manager.unwrap_or_default(),
                m.operation.unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(managers, [("team-a".to_string(), "Apply".to_string())]);

    let again = deploys
        .patch(
            "api",
            &PatchParams::apply("team-a"),
            &Patch::Apply(deployment("api", 2)),
        )
        .await
        .expect("idempotent apply");
    assert_eq!(
        again.metadata.resource_version, created.metadata.resource_version,
        "no-op apply"
    );

    let conflict = status(
        deploys
            .patch(
                "api",
                &PatchParams::apply("team-b"),
                &Patch::Apply(deployment("api", 4)),
            )
            .await
            .expect_err("conflict"),
    );
    assert_eq!((conflict.code, conflict.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        conflict.message,
        "Apply failed with 1 conflict: conflict with \"team-a\": .spec.replicas"
    );
    let causes = conflict.details.expect("details").causes;
    assert_eq!(causes.len(), 1);
    assert_eq!(
        (
            causes[0].reason.as_str(),
            causes[0].message.as_str(),
            causes[0].field.as_str()
        ),
        (
            "FieldManagerConflict",
            "conflict with \"team-a\"",
            ".spec.replicas"
        )
    );

    let forced = deploys
        .patch(
            "api",
            &PatchParams::apply("team-b").force(),
            &Patch::Apply(deployment("api", 4)),
        )
        .await
        .expect("forced");
    assert_eq!(forced.spec.replicas, Some(4));
    assert_eq!(forced.metadata.generation, Some(2));

    // A merge patch records an Update manager that later applies conflict with.
    deploys
        .patch(
            "api",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 7}})),
        )
        .await
        .expect("merge");
    let again = status(
        deploys
            .patch(
                "api",
                &PatchParams::apply("team-b"),
                &Patch::Apply(deployment("api", 4)),
            )
            .await
            .expect_err("conflict with updater"),
    );
    assert!(again.message.contains("using apps/v1"), "{}", again.message);
}

#[tokio::test]
async fn crd_then_custom_resource() {
    let emu = start().await;
    let client = emu.kube_client();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"kind": "Widget", "plural": "widgets", "shortNames": ["wd"]},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}
    }))
    .expect("crd");
    crds.create(&PostParams::default(), &crd)
        .await
        .expect("create crd");
    wait_for("the CRD to be established", SECS, || {
        let crds = crds.clone();
        async move {
            crds.get("widgets.example.com")
                .await
                .ok()
                .and_then(|c| c.status)
                .and_then(|s| s.conditions)
                .is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c.type_ == "Established" && c.status == "True")
                })
        }
    })
    .await;
    let got = crds.get("widgets.example.com").await.expect("crd");
    let accepted = got
        .status
        .and_then(|s| s.accepted_names)
        .expect("acceptedNames");
    assert_eq!(accepted.singular.as_deref(), Some("widget"));

    let discovery = kube::Discovery::new(client.clone())
        .run()
        .await
        .expect("discovery");
    let (ar, caps) = discovery
        .resolve_gvk(&GroupVersionKind::gvk("example.com", "v1", "Widget"))
        .expect("Widget discovered");
    assert_eq!(ar.plural, "widgets");
    assert_eq!(caps.scope, kube::discovery::Scope::Namespaced);

    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("example.com", "v1", "Widget"),
        "widgets",
    );
    let widgets: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &ar);
    let w: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "w1"}, "spec": {"size": 3}, "status": {"ignored": true}
    }))
    .expect("widget");
    let created = widgets
        .create(&PostParams::default(), &w)
        .await
        .expect("create widget");
    assert_eq!(created.data["spec"]["size"], 3);
    assert!(
        created.data.get("status").is_none(),
        "status is dropped on create"
    );
    let with_status = widgets
        .patch_status(
            "w1",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"ready": true}})),
        )
        .await
        .expect("status");
    assert_eq!(with_status.data["status"]["ready"], true);
    let strategic = status(
        widgets
            .patch(
                "w1",
                &PatchParams::default(),
                &Patch::Strategic(json!({"spec": {"size": 1}})),
            )
            .await
            .expect_err("415"),
    );
    assert_eq!(strategic.code, 415);
    let intent = Patch::Apply(
        json!({"apiVersion": "example.com/v1", "kind": "Widget", "spec": {"size": 5}}),
    );
    // The creator (kube-rs sends no user agent: manager "unknown") owns spec.size.
    let conflict = status(
        widgets
            .patch("w1", &PatchParams::apply("me"), &intent)
            .await
            .expect_err("conflict with the creator"),
    );
    assert_eq!(
        conflict.message,
        "Apply failed with 1 conflict: conflict with \"unknown\" using example.com/v1: .spec.size"
    );
    let applied = widgets
        .patch("w1", &PatchParams::apply("me").force(), &intent)
        .await
        .expect("apply custom resource");
    assert_eq!(applied.data["spec"]["size"], 5);

    crds.delete("widgets.example.com", &DeleteParams::default())
        .await
        .expect("delete crd");
    let gone = status(widgets.get("w1").await.expect_err("no longer served"));
    assert_eq!(gone.code, 404);
    assert_eq!(
        gone.message,
        "the server could not find the requested resource"
    );
}

#[tokio::test]
async fn namespace_delete_cascades_and_owners_collect_dependents() {
    let emu = start().await;
    let client = emu.kube_client();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "team"}})).expect("ns");
    let created = namespaces
        .create(&PostParams::default(), &ns)
        .await
        .expect("ns");
    assert_eq!(
        created.status.and_then(|s| s.phase).as_deref(),
        Some("Active")
    );
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "team");
    let owner = cms
        .create(&PostParams::default(), &cm("owner", json!({})))
        .await
        .expect("owner");
    let mut dependent = cm("dependent", json!({}));
    dependent.metadata.owner_references = Some(vec![serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid
    }))
    .expect("owner ref")]);
    cms.create(&PostParams::default(), &dependent)
        .await
        .expect("dependent");
    cms.create(&PostParams::default(), &cm("keeper", json!({})))
        .await
        .expect("keeper");
    cms.delete("owner", &DeleteParams::background())
        .await
        .expect("delete owner");
    assert_eq!(
        status(cms.get("dependent").await.expect_err("collected")).code,
        404
    );

    let deleted = namespaces
        .delete("team", &DeleteParams::default())
        .await
        .expect("delete ns");
    assert!(deleted.is_left(), "namespace delete returns the namespace");
    assert_eq!(
        status(namespaces.get("team").await.expect_err("gone")).code,
        404
    );
    assert_eq!(
        status(cms.get("keeper").await.expect_err("contents gone")).code,
        404
    );

    // Finalizers hold an object until they are removed.
    let defaults: Api<ConfigMap> = Api::namespaced(client, "default");
    let mut held = cm("held", json!({}));
    held.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    defaults
        .create(&PostParams::default(), &held)
        .await
        .expect("held");
    defaults
        .delete("held", &DeleteParams::default())
        .await
        .expect("delete held");
    let terminating = defaults.get("held").await.expect("still there");
    assert!(terminating.metadata.deletion_timestamp.is_some());
    defaults
        .patch(
            "held",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await
        .expect("release");
    assert_eq!(
        status(defaults.get("held").await.expect_err("released")).code,
        404
    );
}

#[tokio::test]
async fn discovery_legacy_and_aggregated() {
    let emu = start().await;
    let client = emu.kube_client();
    let legacy = kube::Discovery::new(client.clone())
        .run()
        .await
        .expect("legacy discovery");
    let aggregated = kube::Discovery::new(client.clone())
        .run_aggregated()
        .await
        .expect("aggregated discovery");
    for d in [&legacy, &aggregated] {
        for (g, v, k) in [
            ("", "v1", "ConfigMap"),
            ("apps", "v1", "Deployment"),
            ("batch", "v1", "CronJob"),
            ("rbac.authorization.k8s.io", "v1", "ClusterRole"),
            ("networking.k8s.io", "v1", "Ingress"),
            ("policy", "v1", "PodDisruptionBudget"),
            ("autoscaling", "v2", "HorizontalPodAutoscaler"),
            ("coordination.k8s.io", "v1", "Lease"),
            ("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
        ] {
            assert!(
                d.resolve_gvk(&GroupVersionKind::gvk(g, v, k)).is_some(),
                "{g}/{v} {k}"
            );
        }
    }
    let version = client.apiserver_version().await.expect("version");
    assert_eq!(
        (version.major.as_str(), version.minor.as_str()),
        ("1", "32")
    );
}

#[tokio::test]
async fn bearer_token_is_required_when_configured() {
    let emu = start_with(EmulatorConfig {
        token: Some("s3cret".into()),
        ..EmulatorConfig::default()
    })
    .await;
    let cms: Api<ConfigMap> = Api::namespaced(emu.kube_client(), "default");
    cms.list(&ListParams::default()).await.expect("authorized");
    let anonymous =
        kube::Client::try_from(kube::Config::new(emu.url().parse().expect("uri"))).expect("client");
    let denied: Api<ConfigMap> = Api::namespaced(anonymous, "default");
    let s = status(denied.list(&ListParams::default()).await.expect_err("401"));
    assert_eq!((s.code, s.reason.as_str()), (401, "Unauthorized"));
    assert!(emu.kubeconfig_yaml().contains("token: \"s3cret\""));
}

#[tokio::test]
async fn request_accounting_counts_and_resets() {
    let emu = start().await;
    let client = emu.kube_client();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "default");
    emu.reset_requests();
    cms.create(&PostParams::default(), &cm("a", json!({})))
        .await
        .expect("create");
    cms.get("a").await.expect("get");
    cms.list(&ListParams::default()).await.expect("list");
    deploys
        .patch(
            "d",
            &PatchParams::apply("m"),
            &Patch::Apply(deployment("d", 1)),
        )
        .await
        .expect("apply");
    deploys.get_scale("d").await.expect("scale");
    let counts = emu.requests();
    assert_eq!(counts.count("create", "configmaps"), 1);
    assert_eq!(counts.count("get", "configmaps"), 1);
    assert_eq!(counts.count("list", "configmaps"), 1);
    assert_eq!(counts.count("patch", "deployments.apps"), 1);
    assert_eq!(counts.count("get", "deployments.apps/scale"), 1);
    assert_eq!(counts.verb("get"), 2);

    let req = axum::http::Request::get("/emulator/requests")
        .body(Vec::new())
        .expect("request");
    let over_http: Value = client.request(req).await.expect("accounting over HTTP");
    assert_eq!(over_http["byResource"]["configmaps"]["create"], 1);
    let reset = axum::http::Request::delete("/emulator/requests")
        .body(Vec::new())
        .expect("request");
    let _: Value = client.request(reset).await.expect("reset");
    assert_eq!(emu.requests().total, 0);
}

struct Counter {
    events: AtomicUsize,
    ticks: AtomicUsize,
}

impl Controller for Counter {
    fn name(&self) -> &str {
        "counter"
    }
    fn on_event(&self, cluster: &Cluster, event: &Committed) {
        self.events.fetch_add(1, Ordering::SeqCst);
        // React to a ConfigMap by labelling it, through the in-process API.
        if event.resource.resource == "configmaps" && event.name == "trigger" {
            if let Some(rt) = cluster.resource("v1", "ConfigMap") {
                let _ = cluster.patch(
                    &rt,
                    Some("default"),
                    "trigger",
                    kubesync::emulator::PatchType::Merge,
                    &json!({"metadata": {"labels": {"seen": "yes"}}}),
                    None,
                    &kubesync::emulator::WriteOptions::by("counter"),
                );
            }
        }
    }
    fn tick(&self, _cluster: &Cluster) {
        self.ticks.fetch_add(1, Ordering::SeqCst);
    }
}

struct FailCreates;

impl RequestHook for FailCreates {
    fn before(&self, r: &RequestInfo) -> Option<Fault> {
        (r.verb == "create" && r.resource == "secrets").then(|| Fault {
            delay: Some(Duration::from_millis(5)),
            error: Some(kubesync::emulator::ApiError::new(
                500,
                "InternalError",
                "injected",
            )),
            ..Fault::default()
        })
    }
}

#[tokio::test]
async fn controllers_and_request_hooks_plug_in() {
    let counter = Arc::new(Counter {
        events: AtomicUsize::new(0),
        ticks: AtomicUsize::new(0),
    });
    let emu = start_with(EmulatorConfig {
        controllers: vec![counter.clone()],
        request_hooks: vec![Arc::new(FailCreates)],
        tick_interval: Duration::from_millis(10),
        ..EmulatorConfig::default()
    })
    .await;
    let client = emu.kube_client();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    cms.create(&PostParams::default(), &cm("trigger", json!({})))
        .await
        .expect("create");
    wait_for("the controller to label the object", SECS, || {
        let cms = cms.clone();
        async move {
            cms.get("trigger")
                .await
                .ok()
                .and_then(|c| c.metadata.labels)
                .is_some_and(|l| l.get("seen").map(String::as_str) == Some("yes"))
        }
    })
    .await;
    wait_for("ticks", SECS, || {
        let c = counter.clone();
        async move { c.ticks.load(Ordering::SeqCst) >= 2 }
    })
    .await;
    assert!(counter.events.load(Ordering::SeqCst) >= 2);

    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client, "default");
    let s: k8s_openapi::api::core::v1::Secret =
        serde_json::from_value(json!({"metadata": {"name": "s"}, "stringData": {"a": "b"}}))
            .expect("secret");
    let injected = status(
        secrets
            .create(&PostParams::default(), &s)
            .await
            .expect_err("injected"),
    );
    assert_eq!(
        (injected.code, injected.message.as_str()),
        (500, "injected")
    );
}

#[tokio::test]
async fn malformed_requests_get_real_errors_and_the_server_keeps_serving() {
    let emu = start().await;
    let client = emu.kube_client();
    let send = |method: &str, path: &str, content_type: &str, body: Vec<u8>| {
        let client = client.clone();
        let req = axum::http::Request::builder()
            .method(method)
            .uri(path)
            .header("Content-Type", content_type)
            .body(body)
            .expect("request");
        async move {
            status(
                client
                    .request::<Value>(req)
                    .await
                    .expect_err("an error status"),
            )
        }
    };
    let cms = "/api/v1/namespaces/default/configmaps";
    let bad_json = send("POST", cms, "application/json", b"{not json".to_vec()).await;
    assert_eq!(
        (bad_json.code, bad_json.reason.as_str()),
        (400, "BadRequest")
    );
    assert!(bad_json
        .message
        .starts_with("couldn't get version/kind; json parse error"));

    let unknown = send(
        "GET",
        "/api/v1/namespaces/default/gizmos",
        "application/json",
        vec![],
    )
    .await;
    assert_eq!(
        (unknown.code, unknown.message.as_str()),
        (404, "the server could not find the requested resource")
    );

    let media = send("POST", cms, "text/plain", b"{}".to_vec()).await;
    assert_eq!(media.code, 415);
    let patch_media = send(
        "PATCH",
        &format!("{cms}/x"),
        "application/xml",
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(patch_media.code, 415);

    let big = vec![b' '; kubesync::emulator::MAX_BODY_BYTES + 10];
    let too_large = send("POST", cms, "application/json", big).await;
    assert_eq!(
        (too_large.code, too_large.message.as_str()),
        (413, "Request entity too large: limit is 3145728")
    );

    let no_manager = send(
        "PATCH",
        &format!("{cms}/x"),
        "application/apply-patch+yaml",
        b"apiVersion: v1\nkind: ConfigMap\n".to_vec(),
    )
    .await;
    assert_eq!(no_manager.code, 422);
    assert_eq!(
        no_manager.message,
        "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"
    );
    let bad_yaml = send(
        "PATCH",
        &format!("{cms}/x?fieldManager=m"),
        "application/apply-patch+yaml",
        b"metadata: [unclosed".to_vec(),
    )
    .await;
    assert_eq!(bad_yaml.code, 400);
    let bad_selector = send(
        "GET",
        &format!("{cms}?labelSelector=a%20b"),
        "application/json",
        vec![],
    )
    .await;
    assert_eq!(bad_selector.code, 400);
    let wrong_kind = send(
        "POST",
        cms,
        "application/json",
        br#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"x"}}"#.to_vec(),
    )
    .await;
    assert_eq!(wrong_kind.code, 400);

    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    api.create(&PostParams::default(), &cm("fine", json!({})))
        .await
        .expect("still serving");
}
