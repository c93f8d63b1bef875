//! The sync engine, driven through the real `kubesync` binary over HTTP
//! against an in-process emulator; the cluster is checked afterwards.

mod sync_support;

use std::time::Duration;

use kubesync::emulator::{FaultConfig, FaultRule, SimulationConfig};
use serde_json::Value;
use sync_support::*;

const NS_SPEC: &str = "  destination: {namespace: NS}\n  syncPolicy: {createNamespace: true, automated: {prune: PRUNE}, wait: {timeout: 20s}}\n";

fn spec(ns: &str, prune: bool, deps: &[&str]) -> String {
    let mut s = NS_SPEC
        .replace("NS", ns)
        .replace("PRUNE", &prune.to_string());
    if !deps.is_empty() {
        s.push_str(&format!("  dependsOn: [{}]\n", deps.join(", ")));
    }
    s
}

fn app_status(v: &Value) -> (String, String) {
    (
        v.pointer("/status/sync/status")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        v.pointer("/status/health/status")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
    )
}

async fn application(emu: &kubesync::emulator::EmulatorHandle, name: &str) -> Option<Value> {
    get(
        emu,
        &format!("/apis/kubesync.dev/v1alpha1/namespaces/kubesync-system/applications/{name}"),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_tree_bootstraps_to_synced_and_healthy() {
    let emu = emulator(fast_simulation()).await;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("bootstrap/root.yaml");
    let out = run(&root, &emu.url(), &["bootstrap"]).await;
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("14/14 applications succeeded"),
        "{}",
        text(&out)
    );
    for app in [
        "root",
        "namespaces",
        "crds",
        "metrics-server",
        "ingress-nginx",
        "monitoring",
        "guestbook",
        "podinfo",
        "hello-transform",
        "static-site",
        "batch-jobs",
        "team-a",
        "team-a-api",
        "team-a-worker",
    ] {
        let a = application(&emu, app)
            .await
            .unwrap_or_else(|| panic!("Application {app} missing"));
        assert_eq!(
            app_status(&a),
            ("Synced".into(), "Healthy".into()),
            "{app}: {a:#}"
        );
        assert!(
            a.pointer("/status/deployedRevision")
                .and_then(Value::as_str)
                .is_some(),
            "{app}"
        );
    }
    // Objects really exist, labelled with their app.
    let dep = get(&emu, "/apis/apps/v1/namespaces/podinfo/deployments/podinfo")
        .await
        .expect("podinfo deployment");
    assert_eq!(dep["metadata"]["labels"]["kubesync.dev/app"], "podinfo");

    // A second run on the converged cluster writes nothing.
    emu.reset_requests();
    let again = run(&root, &emu.url(), &["bootstrap"]).await;
    assert!(again.status.success(), "{}", text(&again));
    assert_eq!(
        writes(&emu),
        0,
        "re-run wrote: {:?}",
        emu.requests().by_verb
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dependents_start_only_after_their_dependency_is_healthy() {
    let emu = emulator(SimulationConfig {
        ready_delay: Duration::from_millis(1500),
        ..fast_simulation()
    })
    .await;
    let repo = Repo::new();
    repo.app("db", &spec("db", false, &[]));
    repo.write("objects/db/deploy.yaml", &deployment("db", "postgres:16"));
    repo.app("web", &spec("web", false, &["db"]));
    repo.write("objects/web/cm.yaml", &configmap("web-config", "a: b"));

    // Record the resourceVersion at which db became available.
    let client = emu.kube_client();
    let watcher = tokio::spawn(async move {
        let api: kube::Api<k8s_openapi::api::apps::v1::Deployment> =
            kube::Api::namespaced(client, "db");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(d) = api.get("db").await {
                let ready = d
                    .status
                    .as_ref()
                    .and_then(|s| s.available_replicas)
                    .unwrap_or(0)
                    >= 1;
                if ready {
                    return d
                        .metadata
                        .resource_version
                        .and_then(|r| r.parse::<u64>().ok());
                }
            }
            if std::time::Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let out = run(&repo.root(), &emu.url(), &["bootstrap"]).await;
    assert!(out.status.success(), "{}", text(&out));
    let ready_rv = watcher.await.expect("join").expect("db became available");
    let cm = get(&emu, "/api/v1/namespaces/web/configmaps/web-config")
        .await
        .expect("web config");
    let cm_rv: u64 = cm["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|r| r.parse().ok())
        .expect("rv");
    assert!(
        cm_rv > ready_rv,
        "web was written (rv {cm_rv}) before db was available (rv {ready_rv})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dependency_that_never_gets_healthy_blocks_only_its_dependents() {
    let emu = emulator(SimulationConfig {
        failing_images: vec!["*broken*".into()],
        progress_deadline_override: Some(Duration::from_millis(500)),
        ..fast_simulation()
    })
    .await;
    let repo = Repo::new();
    repo.app("bad", &spec("bad", false, &[]));
    repo.write(
        "objects/bad/deploy.yaml",
        &deployment("bad", "example.com/broken:1"),
    );
    repo.app("dependent", &spec("dependent", false, &["bad"]));
    repo.write("objects/dependent/cm.yaml", &configmap("dep", "a: b"));
    repo.app("independent", &spec("independent", false, &[]));
    repo.write("objects/independent/cm.yaml", &configmap("ind", "a: b"));

    let out = run(&repo.root(), &emu.url(), &["bootstrap", "--timeout", "3s"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = |app: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(&format!("{app} ")))
            .unwrap_or("")
            .to_string()
    };
    assert!(
        line("bad").contains("TimedOut") && line("bad").contains("Degraded"),
        "{}",
        text(&out)
    );
    assert!(
        line("dependent").contains("Blocked") && line("dependent").contains("blocked by \"bad\""),
        "{}",
        text(&out)
    );
    assert!(line("independent").contains("Succeeded"), "{}", text(&out));
    // The blocked app was never attempted.
    assert!(get(&emu, "/api/v1/namespaces/dependent/configmaps/dep")
        .await
        .is_none());
    assert!(get(&emu, "/api/v1/namespaces/dependent").await.is_none());
    assert!(get(&emu, "/api/v1/namespaces/independent/configmaps/ind")
        .await
        .is_some());
    let dep_app = application(&emu, "dependent")
        .await
        .expect("status written for a blocked app");
    assert_eq!(dep_app["status"]["operationState"]["phase"], "Blocked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_is_reported_by_diff_and_undone_by_sync() {
    let emu = emulator(fast_simulation()).await;
    let repo = Repo::new();
    repo.app("web", &spec("web", false, &[]));
    repo.write(
        "objects/web/cm.yaml",
        &configmap("settings", "mode: blue, size: small"),
    );
    let out = run(&repo.root(), &emu.url(), &["bootstrap"]).await;
    assert!(out.status.success(), "{}", text(&out));

    let clean = run(&repo.root(), &emu.url(), &["diff", "web"]).await;
    assert_eq!(clean.status.code(), Some(0), "{}", text(&clean));

    // Someone edits a declared field with another field manager.
    let client = emu.kube_client();
    let api: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
        kube::Api::namespaced(client, "web");
    let pp = kube::api::PatchParams {
        field_manager: Some("kubectl-edit".into()),
        ..Default::default()
    };
    api.patch(
        "settings",
        &pp,
        &kube::api::Patch::Merge(serde_json::json!({"data": {"mode": "green"}})),
    )
    .await
    .expect("edit");

    let drift = run(&repo.root(), &emu.url(), &["diff", "web"]).await;
    assert_eq!(drift.status.code(), Some(1), "{}", text(&drift));
    let stdout = String::from_utf8_lossy(&drift.stdout);
    assert!(
        stdout.contains("ConfigMap web/settings differs"),
        "{}",
        text(&drift)
    );
    assert!(
        stdout.contains("-  mode: green") && stdout.contains("+  mode: blue"),
        "{}",
        text(&drift)
    );

    let fix = run(&repo.root(), &emu.url(), &["sync", "web"]).await;
    assert!(fix.status.success(), "{}", text(&fix));
    let cm = get(&emu, "/api/v1/namespaces/web/configmaps/settings")
        .await
        .expect("cm");
    assert_eq!(cm["data"]["mode"], "blue");
    let after = run(&repo.root(), &emu.url(), &["diff", "web"]).await;
    assert_eq!(after.status.code(), Some(0), "{}", text(&after));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_deletes_what_left_git_and_nothing_after_a_failed_render() {
    let emu = emulator(fast_simulation()).await;
    let repo = Repo::new();
    repo.app("web", &spec("web", true, &[]));
    repo.write("objects/web/a.yaml", &configmap("a", "x: '1'"));
    repo.write("objects/web/b.yaml", &configmap("b", "x: '1'"));
    repo.write("objects/web/c.yaml", &configmap("c", "x: '1'"));
    repo.app("other", &spec("other", true, &[]));
    repo.write("objects/other/o.yaml", &configmap("o", "x: '1'"));
    let out = run(&repo.root(), &emu.url(), &["bootstrap"]).await;
    assert!(out.status.success(), "{}", text(&out));

    repo.remove("objects/web/b.yaml");
    let out = run(&repo.root(), &emu.url(), &["sync", "web"]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1 pruned"),
        "{}",
        text(&out)
    );
    assert!(
        get(&emu, "/api/v1/namespaces/web/configmaps/b")
            .await
            .is_none(),
        "b should be pruned"
    );
    assert!(get(&emu, "/api/v1/namespaces/web/configmaps/a")
        .await
        .is_some());
    assert!(get(&emu, "/api/v1/namespaces/other/configmaps/o")
        .await
        .is_some());

    // A broken render prunes nothing, even though c left git too.
    repo.remove("objects/web/c.yaml");
    repo.write(
        "objects/web/broken.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x\n",
    );
    let out = run(&repo.root(), &emu.url(), &["bootstrap"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("objects/web/broken.yaml"),
        "{}",
        text(&out)
    );
    assert!(
        get(&emu, "/api/v1/namespaces/web/configmaps/c")
            .await
            .is_some(),
        "nothing pruned after a failed render"
    );
    assert!(get(&emu, "/api/v1/namespaces/web/configmaps/a")
        .await
        .is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crd_and_its_custom_resources_sync_in_one_pass() {
    let emu = emulator(fast_simulation()).await;
    let repo = Repo::new();
    repo.app("widgets", "  tier: system\n  destination: {namespace: widgets}\n  syncPolicy: {createNamespace: true}\n");
    repo.write(
        "objects/widgets/crd.yaml",
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: widgets.example.com}\nspec:\n  group: example.com\n  scope: Namespaced\n  names: {kind: Widget, plural: widgets, singular: widget}\n  versions:\n    - name: v1\n      served: true\n      storage: true\n      schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}\n",
    );
    repo.write(
        "objects/widgets/w.yaml",
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: gizmo}\nspec: {size: 3}\n",
    );
    let out = run(&repo.root(), &emu.url(), &["bootstrap"]).await;
    assert!(out.status.success(), "{}", text(&out));
    let w = get(
        &emu,
        "/apis/example.com/v1/namespaces/widgets/widgets/gizmo",
    )
    .await
    .expect("widget");
    assert_eq!(w["spec"]["size"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_tier_guardrails_refuse_cluster_scoped_and_system_namespace_writes() {
    let emu = emulator(fast_simulation()).await;
    let repo = Repo::new();
    repo.app(
        "sneaky",
        "  tier: app\n  destination: {namespace: sneaky}\n  syncPolicy: {createNamespace: true}\n",
    );
    repo.write("objects/sneaky/cm.yaml", &configmap("fine", "a: b"));
    repo.write(
        "objects/sneaky/role.yaml",
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: sneaky-admin}\nrules: []\n",
    );
    repo.write(
        "objects/sneaky/sys.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: patched, namespace: kube-system}\ndata: {a: b}\n",
    );
    emu.reset_requests();
    let out = run(&repo.root(), &emu.url(), &["bootstrap"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let all = text(&out);
    assert!(all.contains("ClusterRole.rbac.authorization.k8s.io sneaky-admin (objects/sneaky/role.yaml): application \"sneaky\" is tier app and may not write cluster-scoped objects"), "{all}");
    assert!(
        all.contains("may not write into namespace \"kube-system\""),
        "{all}"
    );
    // Nothing of the app was written, not even its allowed ConfigMap.
    assert!(get(&emu, "/api/v1/namespaces/sneaky/configmaps/fine")
        .await
        .is_none());
    assert!(get(
        &emu,
        "/apis/rbac.authorization.k8s.io/v1/clusterroles/sneaky-admin"
    )
    .await
    .is_none());
    assert!(
        get(&emu, "/api/v1/namespaces/kube-system/configmaps/patched")
            .await
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_api_errors_are_retried_and_bootstrap_converges() {
    let emu = emulator(fast_simulation()).await;
    emu.set_faults(FaultConfig {
        seed: 7,
        rules: vec![FaultRule::error(503).named("flaky").with_rate(0.05)],
    })
    .expect("faults");
    let repo = Repo::new();
    for i in 0..4 {
        let name = format!("app{i}");
        repo.app(&name, &spec(&name, false, &[]));
        for j in 0..5 {
            repo.write(
                &format!("objects/{name}/cm{j}.yaml"),
                &configmap(&format!("cm{j}"), "a: b"),
            );
        }
        repo.write(
            &format!("objects/{name}/deploy.yaml"),
            &deployment("web", "nginx:1.27"),
        );
    }
    let out = run(&repo.root(), &emu.url(), &["bootstrap"]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        emu.requests().faults.errors > 0,
        "the fault rule never fired"
    );
    for i in 0..4 {
        assert!(
            get(&emu, &format!("/api/v1/namespaces/app{i}/configmaps/cm4"))
                .await
                .is_some()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_writes_nothing_and_reports_out_of_sync() {
    let emu = emulator(fast_simulation()).await;
    let repo = Repo::new();
    repo.app("web", &spec("web", false, &[]));
    repo.write("objects/web/cm.yaml", &configmap("c", "a: b"));
    emu.reset_requests();
    let out = run(&repo.root(), &emu.url(), &["bootstrap", "--dry-run"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(get(&emu, "/api/v1/namespaces/web/configmaps/c")
        .await
        .is_none());
    assert!(get(&emu, "/api/v1/namespaces/web").await.is_none());
}

#[test]
fn without_a_cluster_the_error_says_how_to_point_at_one() {
    let home = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kubesync"))
        .args(["status"])
        .env_remove("KUBECONFIG")
        .env("HOME", home.path())
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--emulator") && err.contains("--kubeconfig"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_moved_to_another_app_is_handed_over_not_pruned() {
    let emu = emulator(fast_simulation()).await;
    let repo = Repo::new();
    repo.app(
        "ns",
        "  tier: system\n  syncPolicy: {automated: {prune: true}}\n",
    );
    repo.write(
        "objects/ns/data.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: data}\n",
    );
    repo.write(
        "objects/ns/shared.yaml",
        &configmap("shared", "a: b").replace("name: shared}", "name: shared, namespace: data}"),
    );
    repo.app("db", "  tier: system\n  destination: {namespace: data}\n  dependsOn: [ns]\n  syncPolicy: {automated: {prune: true}}\n");
    repo.write("objects/db/cm.yaml", &configmap("db-config", "a: b"));
    let out = run(&repo.root(), &emu.url(), &["bootstrap"]).await;
    assert!(out.status.success(), "{}", text(&out));
    let uid = get(&emu, "/api/v1/namespaces/data")
        .await
        .expect("namespace")["metadata"]["uid"]
        .clone();

    // Move the Namespace and the ConfigMap from `ns` to `db`.
    repo.remove("objects/ns/data.yaml");
    repo.remove("objects/ns/shared.yaml");
    repo.write(
        "objects/db/data.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: data}\n",
    );
    repo.write("objects/db/shared.yaml", &configmap("shared", "a: b"));
    let out = run(&repo.root(), &emu.url(), &["bootstrap"]).await;
    assert!(out.status.success(), "{}", text(&out));
    let after = get(&emu, "/api/v1/namespaces/data")
        .await
        .expect("namespace kept");
    assert_eq!(
        after["metadata"]["uid"],
        uid,
        "the namespace was deleted and re-created: {}",
        text(&out)
    );
    let cm = get(&emu, "/api/v1/namespaces/data/configmaps/shared")
        .await
        .expect("configmap kept");
    assert_eq!(cm["metadata"]["labels"]["kubesync.dev/app"], "db");
    assert!(get(&emu, "/api/v1/namespaces/data/configmaps/db-config")
        .await
        .is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_are_not_pruned_without_explicit_permission() {
    let emu = emulator(fast_simulation()).await;
    let repo = Repo::new();
    repo.app(
        "ns",
        "  tier: system\n  syncPolicy: {automated: {prune: true}}\n",
    );
    repo.write(
        "objects/ns/a.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: keep-me}\n",
    );
    repo.write(
        "objects/ns/b.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: drop-me, annotations: {kubesync.dev/prune: allow}}\n",
    );
    repo.write("objects/ns/c.yaml", &configmap("marker", "a: b"));
    let out = run(&repo.root(), &emu.url(), &["bootstrap"]).await;
    assert!(out.status.success(), "{}", text(&out));
    repo.remove("objects/ns/a.yaml");
    repo.remove("objects/ns/b.yaml");
    let out = run(&repo.root(), &emu.url(), &["sync", "ns", "-o", "json"]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        get(&emu, "/api/v1/namespaces/keep-me").await.is_some(),
        "{}",
        text(&out)
    );
    assert!(
        text(&out).contains("annotate it kubesync.dev/prune=allow"),
        "{}",
        text(&out)
    );
    assert!(
        eventually(Duration::from_secs(5), || async {
            get(&emu, "/api/v1/namespaces/drop-me").await.is_none()
        })
        .await,
        "the namespace annotated prune=allow should be pruned"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leftovers_in_a_namespace_turned_off_are_kept() {
    let emu = emulator(fast_simulation()).await;
    let repo = Repo::new();
    repo.app("web", &spec("web", true, &[]));
    repo.write("objects/web/a.yaml", &configmap("a", "x: y"));
    repo.write("objects/web/b.yaml", &configmap("b", "x: y"));
    let out = run(&repo.root(), &emu.url(), &["bootstrap"]).await;
    assert!(out.status.success(), "{}", text(&out));
    let client = emu.kube_client();
    let api: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(client);
    let pp = kube::api::PatchParams {
        field_manager: Some("ops".into()),
        ..Default::default()
    };
    api.patch(
        "web",
        &pp,
        &kube::api::Patch::Merge(
            serde_json::json!({"metadata": {"annotations": {"kubesync.dev/sync": "off"}}}),
        ),
    )
    .await
    .expect("annotate");
    repo.remove("objects/web/b.yaml");
    let out = run(&repo.root(), &emu.url(), &["sync", "web"]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        get(&emu, "/api/v1/namespaces/web/configmaps/b")
            .await
            .is_some(),
        "{}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_of_the_example_tree_on_an_empty_cluster_fails_nothing() {
    let emu = emulator(fast_simulation()).await;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("bootstrap/root.yaml");
    emu.reset_requests();
    let out = run(&root, &emu.url(), &["bootstrap", "--dry-run", "-o", "json"]).await;
    // Out of sync (exit 1), but every app was assessed: none failed or blocked.
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).expect("json report");
    for app in report["apps"].as_array().expect("apps") {
        assert_eq!(app["outcome"]["kind"], "dryRun", "{app:#}");
    }
    assert_eq!(
        writes(&emu) - emu.requests().by_verb.get("patch").copied().unwrap_or(0),
        0,
        "a dry run may only send dry-run patches"
    );
    assert!(get(&emu, "/api/v1/namespaces/podinfo").await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tree_shows_live_sync_and_health_from_the_cluster() {
    let emu = emulator(fast_simulation()).await;
    let repo = Repo::new();
    repo.app("web", &spec("web", false, &[]));
    repo.write("objects/web/cm.yaml", &configmap("c", "a: b"));
    repo.app("later", &spec("later", false, &[]));
    repo.write("objects/later/cm.yaml", &configmap("c", "a: b"));
    let out = run(&repo.root(), &emu.url(), &["sync", "web"]).await;
    assert!(out.status.success(), "{}", text(&out));
    let tree = run(&repo.root(), &emu.url(), &["tree"]).await;
    assert!(tree.status.success(), "{}", text(&tree));
    let stdout = String::from_utf8_lossy(&tree.stdout);
    let header = stdout.lines().next().unwrap_or("");
    assert!(
        header.ends_with("SYNC    HEALTH")
            || (header.contains("SYNC") && header.contains("HEALTH")),
        "{stdout}"
    );
    let web = stdout.lines().find(|l| l.contains("web ")).unwrap_or("");
    assert!(web.trim_end().ends_with("Synced  Healthy"), "{stdout}");
    let later = stdout.lines().find(|l| l.contains("later")).unwrap_or("");
    assert!(
        later.trim_end().ends_with("-       -") || later.trim_end().ends_with("-  -"),
        "never synced: {stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_removed_from_git_is_reported_and_its_objects_kept() {
    let emu = emulator(fast_simulation()).await;
    let repo = Repo::new();
    repo.app("stay", &spec("stay", true, &[]));
    repo.write("objects/stay/cm.yaml", &configmap("c", "a: b"));
    repo.app("gone", &spec("gone", true, &[]));
    repo.write("objects/gone/cm.yaml", &configmap("c", "a: b"));
    let out = run(&repo.root(), &emu.url(), &["bootstrap"]).await;
    assert!(out.status.success(), "{}", text(&out));
    repo.remove("apps/gone.yaml");
    let out = run(&repo.root(), &emu.url(), &["bootstrap"]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("1 application(s) in the cluster are no longer in the tree: gone"),
        "{}",
        text(&out)
    );
    assert!(get(&emu, "/api/v1/namespaces/gone/configmaps/c")
        .await
        .is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_get_applications_shows_sync_and_health() {
    let emu = emulator(fast_simulation()).await;
    let repo = Repo::new();
    repo.app("web", &spec("web", false, &[]));
    repo.write("objects/web/cm.yaml", &configmap("c", "a: b"));
    let out = run(&repo.root(), &emu.url(), &["bootstrap"]).await;
    assert!(out.status.success(), "{}", text(&out));
    let kc = repo.path().join("kubeconfig");
    emu.write_kubeconfig(&kc).expect("kubeconfig");
    let cache = repo.path().join("kubectl-cache");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&kc)
            .arg("--cache-dir")
            .arg(&cache)
            .args(["get", "applications", "-A", "--request-timeout", "20s"])
            .output()
            .expect("kubectl")
    })
    .await
    .expect("join");
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let header: Vec<&str> = stdout
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        [
            "NAMESPACE",
            "NAME",
            "TIER",
            "SYNC",
            "HEALTH",
            "REVISION",
            "DEPLOYED",
            "AGE"
        ],
        "{stdout}"
    );
    let web: Vec<&str> = stdout
        .lines()
        .find(|l| l.contains(" web "))
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(
        &web[..5],
        ["kubesync-system", "web", "app", "Synced", "Healthy"],
        "{stdout}"
    );
}
