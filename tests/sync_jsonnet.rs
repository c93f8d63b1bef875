//! Jsonnet apps end to end against the emulator: Argo CD's example apps
//! jsonnet-guestbook (imports a params library) and jsonnet-guestbook-tla
//! (a top-level function given TLAs), and a kubesync Application asking
//! for jsonnet with ext vars, end Synced and Healthy, and a re-sync writes
//! nothing. A jsonnet error fails that app alone, naming file and line —
//! never "Synced" with zero objects.

mod sync_support;

use std::path::Path;

use kubesync::diff::SyncStatus;
use kubesync::health::Health;
use kubesync::sync::AppOutcome;
use sync_support::{app, emulator, failure, fast_simulation, get, sync_repo, writes, Repo};

fn fixture(rel: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/jsonnet")
            .join(rel),
    )
    .expect("fixture")
}

fn guestbook_repo() -> Repo {
    let repo = Repo::new();
    for f in [
        "jsonnet-guestbook/guestbook-ui.jsonnet",
        "jsonnet-guestbook/params.libsonnet",
        "jsonnet-guestbook-tla/guestbook-ui.jsonnet",
    ] {
        repo.write(f, &fixture(f));
    }
    repo.write(
        "apps/jsonnet-guestbook.yaml",
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: jsonnet-guestbook}\nspec:\n  project: default\n  source: {path: jsonnet-guestbook}\n  destination: {server: https://kubernetes.default.svc, namespace: jsonnet-guestbook}\n  syncPolicy: {syncOptions: [CreateNamespace=true]}\n",
    );
    repo.write(
        "apps/jsonnet-guestbook-tla.yaml",
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: jsonnet-guestbook-tla}\nspec:\n  project: default\n  source:\n    path: jsonnet-guestbook-tla\n    directory:\n      jsonnet:\n        tlas:\n        - {name: name, value: tla-guestbook-ui}\n        - {name: replicas, value: '2', code: true}\n  destination: {server: https://kubernetes.default.svc, namespace: jsonnet-guestbook-tla}\n  syncPolicy: {syncOptions: [CreateNamespace=true]}\n",
    );
    // kubesync's own kind asks for jsonnet the same way.
    repo.write(
        "objects/own/app.jsonnet",
        "local k = import 'k.libsonnet';\nk.cm(std.extVar('name'), std.extVar('data'))\n",
    );
    repo.write(
        "lib/k.libsonnet",
        "{ cm(name, data):: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: name }, data: data } }\n",
    );
    repo.write(
        "apps/own.yaml",
        "apiVersion: kubesync.dev/v1alpha1\nkind: Application\nmetadata: {name: own}\nspec:\n  destination: {namespace: default}\n  source:\n    path: objects/own\n    directory:\n      jsonnet:\n        extVars: [{name: name, value: own-config}, {name: data, value: '{greeting: \"hi\"}', code: true}]\n        libs: [lib]\n",
    );
    repo
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn argocd_jsonnet_examples_end_synced_and_healthy() {
    let repo = guestbook_repo();
    let emu = emulator(fast_simulation()).await;
    let report = sync_repo(&repo, &emu).await;
    for name in ["jsonnet-guestbook", "jsonnet-guestbook-tla", "own"] {
        let r = app(&report, name);
        assert_eq!(r.outcome, AppOutcome::Succeeded, "{name}: {r:#?}");
        assert_eq!(r.sync, SyncStatus::Synced, "{name}");
        assert_eq!(r.health.health, Health::Healthy, "{name}: {:?}", r.health);
        assert!(!r.changes.is_empty(), "{name} applied nothing");
    }
    let d = get(
        &emu,
        "/apis/apps/v1/namespaces/jsonnet-guestbook-tla/deployments/tla-guestbook-ui",
    )
    .await
    .expect("the TLA guestbook's Deployment");
    assert_eq!(d["spec"]["replicas"], 2);
    let d = get(
        &emu,
        "/apis/apps/v1/namespaces/jsonnet-guestbook/deployments/jsonnet-guestbook-ui",
    )
    .await
    .expect("the guestbook's Deployment");
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "gcr.io/google-samples/gb-frontend:v5"
    );
    let cm = get(&emu, "/api/v1/namespaces/default/configmaps/own-config")
        .await
        .expect("own ConfigMap");
    assert_eq!(cm["data"]["greeting"], "hi");

    let before = writes(&emu);
    let again = sync_repo(&repo, &emu).await;
    for name in ["jsonnet-guestbook", "jsonnet-guestbook-tla", "own"] {
        assert_eq!(app(&again, name).sync, SyncStatus::Synced, "{name}");
    }
    // Only status bookkeeping may be written; no object of the apps.
    let object_writes: Vec<_> = again
        .apps
        .iter()
        .flat_map(|a| a.changes.iter())
        .filter(|c| c.action != kubesync::sync::Action::Unchanged)
        .collect();
    assert!(object_writes.is_empty(), "{object_writes:#?}");
    assert_eq!(writes(&emu), before, "a converged re-sync wrote");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jsonnet_error_fails_the_app_naming_file_and_line() {
    let repo = guestbook_repo();
    repo.write(
        "jsonnet-guestbook/params.libsonnet",
        "{\n  containerPort: 80,\n  replicas: error 'replicas: set me',\n  image: 'gcr.io/google-samples/gb-frontend:v5',\n  name: 'jsonnet-guestbook-ui',\n  servicePort: 80,\n  type: 'LoadBalancer',\n}\n",
    );
    let emu = emulator(fast_simulation()).await;
    let report = sync_repo(&repo, &emu).await;
    let r = app(&report, "jsonnet-guestbook");
    let message = failure(r);
    assert!(
        message.contains(
            "jsonnet-guestbook/guestbook-ui.jsonnet (at jsonnet-guestbook/params.libsonnet:3:13): jsonnet: replicas: set me"
        ),
        "{message}"
    );
    assert_ne!(r.sync, SyncStatus::Synced);
    // The others sync.
    assert_eq!(
        app(&report, "jsonnet-guestbook-tla").outcome,
        AppOutcome::Succeeded
    );
}
