//! Self-heal where kubesync may not list a kind cluster-wide (a
//! ServiceAccount bound by Roles in the managed namespaces only, as the
//! chart's `rbac.mode: namespaced`): the emulator refuses every
//! cluster-wide list and watch of ConfigMaps with 403, as such an API
//! server does, and kubesync watches them in each namespace its apps put
//! them in instead — drift repaired with `selfHeal`, reported OutOfSync
//! without it, and the namespace watches following apps added to the tree.
//! With `--watch-scope namespaces` no cluster-wide list is asked at all.
//! The same on a real API server with the chart's own RBAC is in
//! `chart_kubesync.rs` (the real-cluster tier).

mod controller_support;

use std::time::Duration;

use controller_support::*;
use kubesync::controller::WatchScope;
use kubesync::emulator::{FaultConfig, FaultRule};
use serde_json::json;

const LONG: Duration = Duration::from_secs(30);

/// 403 on every cluster-wide list and watch of ConfigMaps (the paths
/// without a namespace), as RBAC with Roles only answers; and `extra`.
fn refuse_cluster_wide_configmaps(emu: &kubesync::emulator::EmulatorHandle, extra: &[FaultRule]) {
    let mut rule = FaultRule::error(403)
        .named("rbac-namespaced")
        .on_verbs(&["list", "watch"])
        .under_path("/api/v1/configmaps");
    if let Some(e) = &mut rule.error {
        e.message = Some(
            "configmaps is forbidden: User \"system:serviceaccount:kubesync-system:kubesync\" cannot list resource \"configmaps\" in API group \"\" at the cluster scope".into(),
        );
    }
    emu.set_faults(FaultConfig {
        seed: 1,
        rules: [&[rule][..], extra].concat(),
    })
    .expect("faults");
}

/// The cluster-wide lists and watches of ConfigMaps asked so far, and
/// those in namespace `ns`.
fn configmap_lists(emu: &kubesync::emulator::EmulatorHandle, ns: Option<&str>) -> usize {
    emu.journal()
        .iter()
        .filter(|e| {
            e.resource == "configmaps"
                && (e.verb == "list" || e.verb == "watch")
                && e.name.is_none()
                && e.namespace.as_deref() == ns
                && e.user_agent.starts_with("kubesync")
        })
        .count()
}

/// Edits ConfigMap `ns/name` until the controller puts git's `k: git` back
/// (an edit made before the namespace's watch started is seen by no one,
/// so it is made again), within `LONG`.
async fn drift_is_repaired(emu: &kubesync::emulator::EmulatorHandle, ns: &str, name: &str) {
    wait_for(LONG, &format!("drift of {ns}/{name} repaired"), || async {
        edit_configmap(emu, ns, name, json!({"data": {"k": "edited"}})).await;
        eventually(Duration::from_secs(3), || async {
            configmap_data(emu, ns, name).await == Some(json!({"k": "git"}))
        })
        .await
    })
    .await;
}

async fn heals_per_namespace(scope: WatchScope) {
    let repo = GitRepo::new();
    cm_app(
        &repo,
        "heal",
        "ns-heal",
        "k: git",
        ", automated: {selfHeal: true}",
    );
    cm_app(&repo, "manual", "ns-manual", "k: git", "");
    repo.commit("first");
    let emu = emulator(fast_simulation()).await;
    refuse_cluster_wide_configmaps(&emu, &[]);
    let mut cfg = config(&repo, Duration::from_millis(300));
    cfg.watch_scope = scope;
    let h = start_ready(cfg, &emu).await;
    let addr = h.addr().expect("addr");
    assert_eq!(
        configmap_data(&emu, "ns-heal", "heal").await,
        Some(json!({"k": "git"}))
    );

    // selfHeal: the edit is undone through the namespace's watch (the full
    // run is an hour away, and no commit comes).
    drift_is_repaired(&emu, "ns-heal", "heal").await;
    // A deletion is drift too.
    delete_configmap(&emu, "ns-heal", "heal").await;
    wait_for(LONG, "the deleted ConfigMap re-created", || async {
        configmap_data(&emu, "ns-heal", "heal").await == Some(json!({"k": "git"}))
    })
    .await;

    // Without selfHeal: reported, not written.
    wait_for(LONG, "OutOfSync reported", || async {
        edit_configmap(
            &emu,
            "ns-manual",
            "manual",
            json!({"data": {"k": "edited"}}),
        )
        .await;
        eventually(Duration::from_secs(3), || async {
            app_view(addr, "manual").await["sync"] == "OutOfSync"
        })
        .await
    })
    .await;
    let v = app_view(addr, "manual").await;
    assert!(
        v["drift"].as_str().unwrap_or("").contains("kubectl-edit"),
        "{v:#}"
    );
    assert_eq!(
        configmap_data(&emu, "ns-manual", "manual").await,
        Some(json!({"k": "edited"}))
    );

    // An app added to the tree: its namespace is watched from then on.
    cm_app(
        &repo,
        "late",
        "ns-late",
        "k: git",
        ", automated: {selfHeal: true}",
    );
    repo.commit("add late");
    wait_for(LONG, "the new app applied", || async {
        configmap_data(&emu, "ns-late", "late").await == Some(json!({"k": "git"}))
    })
    .await;
    drift_is_repaired(&emu, "ns-late", "late").await;
    for ns in ["ns-heal", "ns-manual", "ns-late"] {
        assert!(
            configmap_lists(&emu, Some(ns)) > 0,
            "ConfigMaps were watched in {ns}"
        );
    }

    // An app removed from the tree: its namespace's watch stops. Every
    // watch in ns-brief is answered 410 Gone, so a live watch there
    // re-lists and re-watches every couple of seconds: seen while the app
    // is in the tree, then not once it is gone.
    refuse_cluster_wide_configmaps(
        &emu,
        &[FaultRule::error(410)
            .named("gone-in-ns-brief")
            .on_verbs(&["watch"])
            .in_namespaces(&["ns-brief"])],
    );
    cm_app(&repo, "brief", "ns-brief", "k: git", ", automated: {}");
    repo.commit("add brief");
    wait_for(
        LONG,
        "ns-brief watched while its app is in the tree",
        || async { configmap_lists(&emu, Some("ns-brief")) >= 4 },
    )
    .await;
    std::fs::remove_file(repo.path().join("apps/brief.yaml")).expect("rm app");
    std::fs::remove_dir_all(repo.path().join("objects/brief")).expect("rm objects");
    repo.commit("remove brief");
    wait_for(LONG, "the app gone from the API", || async {
        apps(addr).await["apps"]
            .as_array()
            .is_some_and(|a| a.iter().all(|x| x["name"] != "brief"))
    })
    .await;
    // The tree reaches the watches right after the API shows it: allow
    // one request in flight, then nothing for well over a retry pause
    // (a negative, so a wait of fixed length), while drift elsewhere is
    // still repaired.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = configmap_lists(&emu, Some("ns-brief"));
    drift_is_repaired(&emu, "ns-heal", "heal").await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        configmap_lists(&emu, Some("ns-brief")),
        before,
        "ns-brief is still watched after its app left the tree"
    );
    if scope == WatchScope::Namespaces {
        assert_eq!(
            configmap_lists(&emu, None),
            0,
            "--watch-scope namespaces asked for a cluster-wide list"
        );
    } else {
        assert!(
            configmap_lists(&emu, None) > 0,
            "auto tried cluster-wide first"
        );
    }
    assert!(h.shutdown(Duration::from_secs(10)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refused_cluster_wide_list_falls_back_to_namespace_watches() {
    heals_per_namespace(WatchScope::Auto).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watch_scope_namespaces_never_lists_cluster_wide() {
    heals_per_namespace(WatchScope::Namespaces).await;
}
