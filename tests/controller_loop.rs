//! The controller in-process against the emulator: commits applied, quiet
//! polls, only changed apps synced, full runs with zero writes, self-heal,
//! drift reported without selfHeal, leadership, refresh, bad input.

mod controller_support;

use std::time::Duration;

use controller_support::*;
use kubesync::controller::Pending;
use serde_json::json;

const LONG: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn commit_is_applied_and_quiet_polls_cost_nothing() {
    let repo = GitRepo::new();
    cm_app(&repo, "a", "ns-a", "k: v1", "");
    let first = repo.commit("first");
    let emu = emulator(fast_simulation()).await;
    let h = start_ready(config(&repo, Duration::from_millis(200)), &emu).await;
    let addr = h.addr().expect("addr");

    assert_eq!(
        configmap_data(&emu, "ns-a", "a").await,
        Some(json!({"k": "v1"}))
    );
    let v = app_view(addr, "a").await;
    assert_eq!(v["sync"], "Synced", "{v:#}");
    assert_eq!(v["appliedRevision"], first[..7], "{v:#}");
    assert_eq!(v["lastRun"]["result"], "Succeeded", "{v:#}");
    let (status, _) = http(addr, "GET", "/readyz", &[], b"").await;
    assert_eq!(status, 200);

    // Unchanged polls: not one API request.
    quiesce(&emu, Duration::from_millis(600), LONG).await;
    emu.reset_requests();
    polls(&h, 4).await;
    assert!(
        emu.journal().is_empty(),
        "unchanged polls made API requests: {:#?}",
        emu.journal()
    );

    // A commit is applied.
    repo.repo
        .write("objects/a/cm.yaml", &configmap("a", "k: v2"));
    let second = repo.commit("second");
    wait_for(LONG, "the new commit applied", || async {
        configmap_data(&emu, "ns-a", "a").await == Some(json!({"k": "v2"}))
    })
    .await;
    wait_for(LONG, "the applied revision reported", || async {
        app_view(addr, "a").await["appliedRevision"] == second[..7]
    })
    .await;
    let st = get(
        &emu,
        "/apis/kubesync.dev/v1alpha1/namespaces/kubesync-system/applications/a",
    )
    .await
    .expect("Application a");
    assert_eq!(st["status"]["sync"]["revision"], second[..7], "{st:#}");
    assert!(h.shutdown(Duration::from_secs(10)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_the_changed_app_is_synced() {
    let repo = GitRepo::new();
    cm_app(&repo, "a", "ns-a", "k: v1", "");
    cm_app(&repo, "b", "ns-b", "k: v1", "");
    repo.commit("first");
    let emu = emulator(fast_simulation()).await;
    let h = start_ready(config(&repo, Duration::from_millis(200)), &emu).await;
    let addr = h.addr().expect("addr");
    let b_before = app_view(addr, "b").await["lastRun"].clone();
    quiesce(&emu, Duration::from_millis(600), LONG).await;
    emu.reset_requests();

    repo.repo
        .write("objects/a/cm.yaml", &configmap("a", "k: v2"));
    // A file outside every app's path changes nothing.
    repo.repo.write("README.md", "docs\n");
    repo.commit("change a");
    wait_for(LONG, "a's change applied", || async {
        configmap_data(&emu, "ns-a", "a").await == Some(json!({"k": "v2"}))
    })
    .await;
    wait_for(LONG, "a's run recorded", || async {
        app_view(addr, "a").await["lastRun"]["trigger"] == "commit"
    })
    .await;
    quiesce(&emu, Duration::from_millis(600), LONG).await;
    let writes = emu.journal_writes();
    assert!(
        writes
            .iter()
            .all(|w| w.namespace.as_deref() != Some("ns-b") && w.name.as_deref() != Some("b")),
        "b was written: {writes:#?}"
    );
    assert!(
        writes
            .iter()
            .any(|w| w.resource == "configmaps" && w.name.as_deref() == Some("a")),
        "{writes:#?}"
    );
    assert_eq!(
        app_view(addr, "b").await["lastRun"],
        b_before,
        "b was not re-synced"
    );

    // A full run re-syncs everything: it writes no object (b merely moves
    // to the new commit in its status), and the next one writes nothing.
    for round in 0..2 {
        emu.reset_requests();
        let started = apps(addr).await["lastFullRun"].clone();
        let (status, _) = http(addr, "POST", "/api/v1/forceRun", &[], b"").await;
        assert_eq!(status, 202);
        wait_for(LONG, "the forced full run", || async {
            apps(addr).await["lastFullRun"] != started
        })
        .await;
        quiesce(&emu, Duration::from_millis(600), LONG).await;
        let writes = emu.journal_writes();
        if round == 0 {
            // (And b's Events: its sync moved it to a new revision.)
            assert!(
                writes
                    .iter()
                    .all(|w| (w.resource == "applications.kubesync.dev/status"
                        && w.name.as_deref() == Some("b"))
                        || (w.resource == "events"
                            && w.namespace.as_deref() == Some("kubesync-system"))),
                "the first full run after a commit wrote more than b's revision: {writes:#?}"
            );
        } else {
            assert!(writes.is_empty(), "a converged full run wrote: {writes:#?}");
        }
    }
    assert!(h.shutdown(Duration::from_secs(10)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn webhooks_are_verified_and_poll_at_once() {
    let repo = GitRepo::new();
    cm_app(&repo, "a", "ns-a", "k: v1", "");
    repo.commit("first");
    let emu = emulator(fast_simulation()).await;
    let mut cfg = config(&repo, Duration::from_secs(3600));
    cfg.webhook_secret = Some(b"hush".to_vec());
    let h = start_ready(cfg, &emu).await;
    let addr = h.addr().expect("addr");
    repo.repo
        .write("objects/a/cm.yaml", &configmap("a", "k: v2"));
    repo.commit("second");

    let body = json!({"ref": "refs/heads/master", "repository": {"clone_url": repo.file_url()}})
        .to_string();
    let good = kubesync::controller::sign(body.as_bytes(), b"hush");
    let bad = kubesync::controller::sign(body.as_bytes(), b"wrong");
    let polls_before = last_poll(&h);
    for headers in [
        vec![],
        vec![("X-Hub-Signature-256", bad.clone())],
        vec![("X-Gitlab-Token", "hus".to_string())],
        vec![("X-Kubesync-Signature", bad)],
    ] {
        let (status, text) = http(addr, "POST", "/api/v1/webhook", &headers, body.as_bytes()).await;
        assert_eq!(status, 401, "{headers:?}: {text}");
    }
    // Signed garbage: 400.
    let junk = b"not json";
    let junk_sig = kubesync::controller::sign(junk, b"hush");
    let (status, _) = http(
        addr,
        "POST",
        "/api/v1/webhook",
        &[("X-Hub-Signature-256", junk_sig)],
        junk,
    )
    .await;
    assert_eq!(status, 400);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(last_poll(&h), polls_before, "a refused webhook polled");
    assert_eq!(
        configmap_data(&emu, "ns-a", "a").await,
        Some(json!({"k": "v1"}))
    );

    let (status, text) = http(
        addr,
        "POST",
        "/api/v1/webhook",
        &[("X-Hub-Signature-256", good)],
        body.as_bytes(),
    )
    .await;
    assert_eq!(status, 202, "{text}");
    assert!(text.contains("polled"), "{text}");
    wait_for(LONG, "the pushed commit applied", || async {
        configmap_data(&emu, "ns-a", "a").await == Some(json!({"k": "v2"}))
    })
    .await;

    // GitLab's token works the same.
    repo.repo
        .write("objects/a/cm.yaml", &configmap("a", "k: v3"));
    repo.commit("third");
    let gl =
        json!({"object_kind": "push", "project": {"git_http_url": repo.file_url()}}).to_string();
    let (status, _) = http(
        addr,
        "POST",
        "/api/v1/webhook",
        &[("X-Gitlab-Token", "hush".into())],
        gl.as_bytes(),
    )
    .await;
    assert_eq!(status, 202);
    wait_for(LONG, "the GitLab push applied", || async {
        configmap_data(&emu, "ns-a", "a").await == Some(json!({"k": "v3"}))
    })
    .await;

    // Per-app sync: unknown 404, known 202.
    let (status, _) = http(addr, "POST", "/api/v1/apps/nope/sync", &[], b"").await;
    assert_eq!(status, 404);
    let (status, _) = http(addr, "POST", "/api/v1/apps/a/sync", &[], b"").await;
    assert_eq!(status, 202);
    wait_for(LONG, "the requested sync", || async {
        app_view(addr, "a").await["lastRun"]["trigger"] == "request"
    })
    .await;
    assert!(h.shutdown(Duration::from_secs(10)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn self_heal_repairs_drift_and_recreates_deleted_objects() {
    let repo = GitRepo::new();
    cm_app(
        &repo,
        "heal",
        "ns-h",
        "k: git",
        ", automated: {selfHeal: true}",
    );
    repo.repo
        .write("objects/heal/other.yaml", &configmap("other", "x: git"));
    repo.repo.write(
        "objects/heal/off.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: off, annotations: {kubesync.dev/sync: \"off\"}}\ndata: {x: git}\n",
    );
    repo.commit("first");
    let emu = emulator(fast_simulation()).await;
    // The `sync: off` object exists (someone else manages it), labelled as
    // if kubesync had applied it once.
    let nsapi: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(emu.kube_client());
    nsapi
        .create(
            &Default::default(),
            &serde_json::from_value(json!({"metadata": {"name": "ns-h"}})).expect("ns"),
        )
        .await
        .expect("create ns");
    let cms: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
        kube::Api::namespaced(emu.kube_client(), "ns-h");
    cms.create(
        &Default::default(),
        &serde_json::from_value(json!({"metadata": {"name": "off", "labels": {"kubesync.dev/app": "heal"}}, "data": {"x": "theirs"}}))
            .expect("cm"),
    )
    .await
    .expect("create off");
    let h = start_ready(config(&repo, Duration::from_secs(3600)), &emu).await;
    quiesce(&emu, Duration::from_millis(600), LONG).await;
    let other_rv = get(&emu, "/api/v1/namespaces/ns-h/configmaps/other")
        .await
        .expect("other")["metadata"]["resourceVersion"]
        .clone();

    edit_configmap(&emu, "ns-h", "heal", json!({"data": {"k": "edited"}})).await;
    wait_for(Duration::from_secs(10), "drift repaired", || async {
        configmap_data(&emu, "ns-h", "heal").await == Some(json!({"k": "git"}))
    })
    .await;
    delete_configmap(&emu, "ns-h", "heal").await;
    wait_for(
        Duration::from_secs(10),
        "deleted object re-created",
        || async { configmap_data(&emu, "ns-h", "heal").await == Some(json!({"k": "git"})) },
    )
    .await;
    quiesce(&emu, Duration::from_millis(600), LONG).await;
    let other_now = get(&emu, "/api/v1/namespaces/ns-h/configmaps/other")
        .await
        .expect("other");
    assert_eq!(
        other_now["metadata"]["resourceVersion"], other_rv,
        "an undrifted object was written"
    );

    // `sync: off` objects are never touched, even with selfHeal.
    emu.reset_requests();
    edit_configmap(&emu, "ns-h", "off", json!({"data": {"x": "mine"}})).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    quiesce(&emu, Duration::from_millis(600), LONG).await;
    assert_eq!(
        configmap_data(&emu, "ns-h", "off").await,
        Some(json!({"x": "mine"}))
    );
    let writes: Vec<_> = emu
        .journal_writes()
        .into_iter()
        .filter(|w| w.user_agent.starts_with("kubesync"))
        .collect();
    assert!(
        writes.iter().all(|w| w.name.as_deref() != Some("off")),
        "{writes:#?}"
    );
    assert!(h.shutdown(Duration::from_secs(10)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_self_heal_drift_is_reported_not_repaired() {
    let repo = GitRepo::new();
    cm_app(&repo, "manual", "ns-m", "k: git", "");
    repo.repo
        .write("objects/manual/deploy.yaml", &deployment("web", "nginx:1"));
    repo.commit("first");
    let emu = emulator(fast_simulation()).await;
    let h = start_ready(config(&repo, Duration::from_secs(3600)), &emu).await;
    let addr = h.addr().expect("addr");
    quiesce(&emu, Duration::from_millis(600), LONG).await;
    // The cluster's own controllers writing what git leaves alone (a
    // Deployment's revision annotation, status) are not drift.
    let v = app_view(addr, "manual").await;
    assert_eq!(v["sync"], "Synced", "{v:#}");
    assert!(v["drift"].is_null(), "{v:#}");
    emu.reset_requests();

    edit_configmap(&emu, "ns-m", "manual", json!({"data": {"k": "edited"}})).await;
    wait_for(Duration::from_secs(10), "OutOfSync reported", || async {
        app_view(addr, "manual").await["sync"] == "OutOfSync"
    })
    .await;
    let v = app_view(addr, "manual").await;
    assert!(
        v["drift"].as_str().unwrap_or("").contains("kubectl-edit"),
        "{v:#}"
    );
    wait_for(
        Duration::from_secs(10),
        "OutOfSync in the Application status",
        || async {
            get(
                &emu,
                "/apis/kubesync.dev/v1alpha1/namespaces/kubesync-system/applications/manual",
            )
            .await
            .is_some_and(|a| a["status"]["sync"]["status"] == "OutOfSync")
        },
    )
    .await;
    quiesce(&emu, Duration::from_millis(600), LONG).await;
    assert_eq!(
        configmap_data(&emu, "ns-m", "manual").await,
        Some(json!({"k": "edited"}))
    );
    let kubesync_writes: Vec<_> = emu
        .journal_writes()
        .into_iter()
        .filter(|w| w.user_agent.starts_with("kubesync") && w.resource == "configmaps")
        .collect();
    assert!(
        kubesync_writes.is_empty(),
        "kubesync wrote an object of an app without selfHeal: {kubesync_writes:#?}"
    );
    assert!(h.shutdown(Duration::from_secs(10)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leading_from_the_start_makes_one_full_run() {
    let repo = GitRepo::new();
    cm_app(&repo, "a", "ns-a", "k: v1", "");
    repo.commit("first");
    let emu = emulator(fast_simulation()).await;
    // The elector won before the loop started (as `kubesync run`'s does).
    let (tx, rx) = tokio::sync::watch::channel(false);
    tx.send(true).expect("lead");
    let h = start(config(&repo, Duration::from_millis(200)), &emu, Some(rx)).await;
    let addr = h.addr().expect("addr");
    assert!(h.wait_ready(LONG).await);
    let first = apps(addr).await["lastFullRun"].clone();
    assert!(!first.is_null());
    polls(&h, 3).await;
    assert_eq!(
        apps(addr).await["lastFullRun"],
        first,
        "a second full run followed the first"
    );
    assert!(h.shutdown(Duration::from_secs(10)).await);
    drop(tx);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_writes_nothing_until_it_leads() {
    let repo = GitRepo::new();
    cm_app(&repo, "a", "ns-a", "k: v1", "");
    repo.commit("first");
    let emu = emulator(fast_simulation()).await;
    let (tx, rx) = tokio::sync::watch::channel(false);
    let h = start(config(&repo, Duration::from_millis(200)), &emu, Some(rx)).await;
    let addr = h.addr().expect("addr");
    polls(&h, 3).await;
    assert!(
        emu.journal_writes().is_empty(),
        "{:#?}",
        emu.journal_writes()
    );
    let (status, _) = http(addr, "GET", "/readyz", &[], b"").await;
    assert_eq!(status, 503);
    assert_eq!(apps(addr).await["leader"], false);
    // Triggers are queued, not run.
    let (status, _) = http(addr, "POST", "/api/v1/forceRun", &[], b"").await;
    assert_eq!(status, 202);
    polls(&h, 2).await;
    assert!(
        emu.journal_writes().is_empty(),
        "{:#?}",
        emu.journal_writes()
    );
    assert_eq!(configmap_data(&emu, "ns-a", "a").await, None);

    tx.send(true).expect("lead");
    assert!(h.wait_ready(LONG).await);
    assert_eq!(
        configmap_data(&emu, "ns-a", "a").await,
        Some(json!({"k": "v1"}))
    );
    assert!(h.shutdown(Duration::from_secs(10)).await);
    drop(tx);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_refresh_annotation_syncs_the_app_and_is_removed() {
    let repo = GitRepo::new();
    cm_app(&repo, "a", "ns-a", "k: v1", "");
    repo.commit("first");
    let emu = emulator(fast_simulation()).await;
    let h = start_ready(config(&repo, Duration::from_secs(3600)), &emu).await;
    let addr = h.addr().expect("addr");
    let api: kube::Api<kube::api::DynamicObject> = kube::Api::namespaced_with(
        emu.kube_client(),
        "kubesync-system",
        &kube::api::ApiResource {
            group: "kubesync.dev".into(),
            version: "v1alpha1".into(),
            api_version: "kubesync.dev/v1alpha1".into(),
            kind: "Application".into(),
            plural: "applications".into(),
        },
    );
    api.patch(
        "a",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(
            json!({"metadata": {"annotations": {"kubesync.dev/refresh": "now"}}}),
        ),
    )
    .await
    .expect("annotate");
    wait_for(LONG, "the refresh sync", || async {
        app_view(addr, "a").await["lastRun"]["trigger"] == "request"
    })
    .await;
    wait_for(LONG, "the annotation removed", || async {
        get(
            &emu,
            "/apis/kubesync.dev/v1alpha1/namespaces/kubesync-system/applications/a",
        )
        .await
        .is_some_and(|a| {
            a["metadata"]["annotations"]
                .get("kubesync.dev/refresh")
                .is_none()
        })
    })
    .await;
    assert!(h.shutdown(Duration::from_secs(10)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failures_are_reported_retried_and_never_prune() {
    let repo = GitRepo::new();
    cm_app(&repo, "a", "ns-a", "k: v1", ", automated: {prune: true}");
    cm_app(&repo, "b", "ns-b", "k: v1", ", automated: {prune: true}");
    repo.repo
        .write("objects/b/extra.yaml", &configmap("extra", "x: y"));
    repo.commit("first");
    let emu = emulator(fast_simulation()).await;
    let h = start_ready(config(&repo, Duration::from_millis(200)), &emu).await;
    let addr = h.addr().expect("addr");

    // b stops rendering and drops extra.yaml in the same commit: b fails
    // with the reason, nothing is pruned, a still syncs its change.
    repo.repo.write(
        "objects/b/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b\ndata: [\n",
    );
    repo.repo.remove("objects/b/extra.yaml");
    repo.repo
        .write("objects/a/cm.yaml", &configmap("a", "k: v2"));
    repo.commit("break b");
    wait_for(LONG, "b's failure reported", || async {
        let v = app_view(addr, "b").await;
        v["lastRun"]["result"] == "Failed"
            && v["lastRun"]["error"]
                .as_str()
                .is_some_and(|e| e.contains("cm.yaml"))
    })
    .await;
    wait_for(LONG, "a applied", || async {
        configmap_data(&emu, "ns-a", "a").await == Some(json!({"k": "v2"}))
    })
    .await;
    assert!(
        configmap_data(&emu, "ns-b", "extra").await.is_some(),
        "a failed render pruned"
    );
    let st = get(
        &emu,
        "/apis/kubesync.dev/v1alpha1/namespaces/kubesync-system/applications/b",
    )
    .await
    .expect("Application b");
    assert!(
        st["status"]["operationState"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("cm.yaml"),
        "{st:#}"
    );

    // Fixed: b syncs (and now prunes what left git).
    repo.repo
        .write("objects/b/cm.yaml", &configmap("b", "k: v2"));
    repo.commit("fix b");
    wait_for(LONG, "b recovered", || async {
        configmap_data(&emu, "ns-b", "b").await == Some(json!({"k": "v2"}))
            && app_view(addr, "b").await["lastRun"]["result"] == "Succeeded"
    })
    .await;
    assert!(h.shutdown(Duration::from_secs(10)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bad_revision_fails_the_tree_and_the_loop_goes_on() {
    let repo = GitRepo::new();
    cm_app(&repo, "a", "ns-a", "k: v1", "");
    repo.commit("first");
    let emu = emulator(fast_simulation()).await;
    let mut cfg = config(&repo, Duration::from_millis(200));
    cfg.revision = Some("branch:nope".parse().expect("revision"));
    let h = start(cfg, &emu, None).await;
    let addr = h.addr().expect("addr");
    wait_for(LONG, "the error reported", || async {
        let all = apps(addr).await;
        all["treeError"]
            .as_str()
            .is_some_and(|e| e.contains("nope"))
            && all["repositories"][0]["error"]
                .as_str()
                .is_some_and(|e| e.contains("nope"))
    })
    .await;
    polls(&h, 2).await;
    assert!(emu.journal_writes().is_empty());
    let (status, _) = http(addr, "GET", "/healthz", &[], b"").await;
    assert_eq!(status, 200);
    h.trigger(Pending::default());
    assert!(h.shutdown(Duration::from_secs(10)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_root_inside_a_repository_url_is_followed() {
    let repo = GitRepo::new();
    cm_app(&repo, "a", "ns-a", "k: v1", "");
    repo.commit("first");
    let emu = emulator(fast_simulation()).await;
    let mut cfg = config(&repo, Duration::from_millis(200));
    cfg.root = kubesync::controller::RootSource::Repo {
        url: repo.file_url(),
        path: "root.yaml".into(),
    };
    let branch = git2::Repository::open(repo.path())
        .expect("open")
        .head()
        .expect("head")
        .shorthand()
        .expect("branch")
        .to_string();
    cfg.revision = Some(format!("branch:{branch}").parse().expect("revision"));
    let h = start_ready(cfg, &emu).await;
    let addr = h.addr().expect("addr");
    assert_eq!(
        configmap_data(&emu, "ns-a", "a").await,
        Some(json!({"k": "v1"}))
    );
    // Uncommitted edits in the repository are never applied.
    repo.repo
        .write("objects/a/cm.yaml", &configmap("a", "k: dirty"));
    polls(&h, 2).await;
    assert_eq!(
        configmap_data(&emu, "ns-a", "a").await,
        Some(json!({"k": "v1"}))
    );
    let third = {
        repo.repo
            .write("objects/a/cm.yaml", &configmap("a", "k: v2"));
        repo.commit("second")
    };
    wait_for(LONG, "the pushed commit applied", || async {
        configmap_data(&emu, "ns-a", "a").await == Some(json!({"k": "v2"}))
            && app_view(addr, "a").await["appliedRevision"] == third[..7]
    })
    .await;
    assert!(h.shutdown(Duration::from_secs(10)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shutdown_finishes_the_app_in_flight_and_starts_no_other() {
    let repo = GitRepo::new();
    repo.repo.app(
        "slow",
        "  destination: {namespace: ns-s}\n  syncPolicy: {createNamespace: true}\n",
    );
    repo.repo
        .write("objects/slow/deploy.yaml", &deployment("slow", "nginx:1"));
    repo.repo.app(
        "after",
        "  destination: {namespace: ns-s}\n  dependsOn: [slow]\n",
    );
    repo.repo
        .write("objects/after/cm.yaml", &configmap("after", "k: v"));
    repo.commit("first");
    let emu = emulator(kubesync::emulator::SimulationConfig {
        ready_delay: Duration::from_millis(1500),
        ..fast_simulation()
    })
    .await;
    let h = start(config(&repo, Duration::from_secs(3600)), &emu, None).await;
    let state = h.state().clone();
    let slow = kubesync::model::AppName::new("slow").expect("name");
    wait_for(LONG, "slow in flight", || {
        let state = state.clone();
        let slow = slow.clone();
        async move {
            state
                .app(&slow)
                .and_then(|v| v.last_run)
                .is_some_and(|r| r.result == "Running")
        }
    })
    .await;
    let t0 = std::time::Instant::now();
    assert!(
        h.shutdown(Duration::from_secs(9)).await,
        "not stopped within the grace"
    );
    assert!(t0.elapsed() < Duration::from_secs(10));
    let v = state.app(&slow).expect("slow");
    assert_eq!(
        v.last_run.as_ref().map(|r| r.result.as_str()),
        Some("Succeeded"),
        "{v:#?}"
    );
    let after = state
        .app(&kubesync::model::AppName::new("after").expect("name"))
        .expect("after");
    assert!(
        after.last_run.is_none(),
        "a new app started while stopping: {after:#?}"
    );
    let st = get(
        &emu,
        "/apis/kubesync.dev/v1alpha1/namespaces/kubesync-system/applications/slow",
    )
    .await
    .expect("Application slow");
    assert_eq!(st["status"]["health"]["status"], "Healthy", "{st:#}");
    assert_eq!(configmap_data(&emu, "ns-s", "after").await, None);
}
