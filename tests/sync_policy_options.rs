//! Argo CD sync policy details, in-process against the emulator: per-object
//! sync options (`Prune=false`, `Delete=false`, `Replace=true`,
//! `Force=true`, `Validate=false`), compare option `IgnoreExtraneous`,
//! `syncPolicy.retry`, and the `resources-finalizer.argocd.argoproj.io`
//! finalizer on an app that leaves the tree.

mod sync_support;

use kubesync::diff::SyncStatus;
use kubesync::emulator::FaultConfig;
use kubesync::sync::{Action, AppOutcome, Note, SkipReason};
use serde_json::{json, Value};
use sync_support::*;

const PRUNE: &str = "  destination: {namespace: NS}\n  syncPolicy: {createNamespace: true, automated: {prune: true}, wait: {timeout: 20s}}\n";

fn spec(ns: &str) -> String {
    PRUNE.replace("NS", ns)
}

fn cm_with(name: &str, annotations: &str, data: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  annotations: {{{annotations}}}\ndata: {{{data}}}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_false_keeps_a_leftover_and_ignore_extraneous_keeps_the_app_synced() {
    let emu = emulator(fast_simulation()).await;
    let repo = Repo::new();
    repo.app("a", &spec("po"));
    repo.write(
        "objects/a/keep.yaml",
        &cm_with(
            "keep",
            "argocd.argoproj.io/sync-options: Prune=false",
            "k: v",
        ),
    );
    repo.write("objects/a/plain.yaml", &configmap("plain", "k: v"));
    repo.write("objects/a/stay.yaml", &configmap("stay", "k: v"));
    let first = sync_repo(&repo, &emu).await;
    assert!(app(&first, "a").outcome.is_success(), "{first:#?}");

    repo.remove("objects/a/keep.yaml");
    repo.remove("objects/a/plain.yaml");
    let second = sync_repo(&repo, &emu).await;
    let a = app(&second, "a");
    assert_eq!(change_of(a, "plain").action, Action::Pruned);
    let keep = change_of(a, "keep");
    assert_eq!(keep.reason, Some(SkipReason::PruneDisabled), "{keep:#?}");
    assert!(!keep.in_sync);
    assert_eq!(
        a.sync,
        SyncStatus::OutOfSync,
        "Argo CD shows it OutOfSync too"
    );
    assert!(keep.message().contains("Prune=false"), "{}", keep.message());
    assert!(get(&emu, "/api/v1/namespaces/po/configmaps/keep")
        .await
        .is_some());

    // The same, with IgnoreExtraneous: kept and not counted.
    let repo2 = Repo::new();
    repo2.app("b", &spec("ie"));
    repo2.write(
        "objects/b/keep.yaml",
        &cm_with(
            "keep",
            "argocd.argoproj.io/sync-options: Prune=false, argocd.argoproj.io/compare-options: IgnoreExtraneous",
            "k: v",
        ),
    );
    repo2.write("objects/b/stay.yaml", &configmap("stay", "k: v"));
    sync_repo(&repo2, &emu).await;
    repo2.remove("objects/b/keep.yaml");
    let r = sync_repo(&repo2, &emu).await;
    let b = app(&r, "b");
    assert_eq!(change_of(b, "keep").reason, Some(SkipReason::PruneDisabled));
    assert!(change_of(b, "keep").in_sync);
    assert_eq!(b.sync, SyncStatus::Synced, "{b:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replace_puts_the_whole_object_and_force_recreates_on_an_immutable_change() {
    let emu = emulator(fast_simulation()).await;
    let repo = Repo::new();
    repo.app("r", &spec("rep"));
    repo.write(
        "objects/r/cm.yaml",
        &cm_with(
            "conf",
            "argocd.argoproj.io/sync-options: Replace=true",
            "k: v1",
        ),
    );
    let job = |image: &str| {
        format!(
            "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: once\n  annotations: {{argocd.argoproj.io/sync-options: 'Replace=true,Force=true'}}\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{{name: c, image: \"{image}\"}}]\n"
        )
    };
    repo.write("objects/r/job.yaml", &job("alpine:1"));
    let first = sync_repo(&repo, &emu).await;
    assert!(app(&first, "r").outcome.is_success(), "{first:#?}");
    let uid_before = get(&emu, "/apis/batch/v1/namespaces/rep/jobs/once")
        .await
        .expect("job")["metadata"]["uid"]
        .clone();

    // Someone else adds a label; a replace drops what git does not declare.
    let client = emu.kube_client();
    let api: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
        kube::Api::namespaced(client, "rep");
    api.patch(
        "conf",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(json!({"metadata": {"labels": {"extra": "yes"}}})),
    )
    .await
    .expect("patch");
    repo.write(
        "objects/r/cm.yaml",
        &cm_with(
            "conf",
            "argocd.argoproj.io/sync-options: Replace=true",
            "k: v2",
        ),
    );
    repo.write("objects/r/job.yaml", &job("alpine:2"));
    let second = sync_repo(&repo, &emu).await;
    let r = app(&second, "r");
    assert!(r.outcome.is_success(), "{r:#?}");
    let conf = change_of(r, "conf");
    assert_eq!(conf.action, Action::Configured);
    assert_eq!(conf.note, Some(Note::Replaced { recreated: false }));
    let live = get(&emu, "/api/v1/namespaces/rep/configmaps/conf")
        .await
        .expect("cm");
    assert_eq!(live["data"]["k"], "v2");
    assert!(live.pointer("/metadata/labels/extra").is_none(), "{live:#}");

    let once = change_of(r, "once");
    assert_eq!(
        once.note,
        Some(Note::Replaced { recreated: true }),
        "{once:#?}"
    );
    let job_live = get(&emu, "/apis/batch/v1/namespaces/rep/jobs/once")
        .await
        .expect("job");
    assert_ne!(job_live["metadata"]["uid"], uid_before, "a new Job");
    assert_eq!(
        job_live
            .pointer("/spec/template/spec/containers/0/image")
            .and_then(Value::as_str),
        Some("alpine:2")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_tries_a_failed_sync_again() {
    let emu = emulator(fast_simulation()).await;
    // The first apply of a ConfigMap in the namespace is refused (403 is
    // not retried by the client): the sync fails once, the retry succeeds.
    let faults: FaultConfig = serde_json::from_value(json!({"rules": [{
        "verbs": ["patch"], "resources": ["configmaps"], "namespaces": ["retry"],
        "rate": 1.0, "error": {"code": 403}, "limit": 1
    }]}))
    .expect("fault config");
    emu.set_faults(faults).expect("faults");
    let repo = Repo::new();
    repo.write(
        "apps/flaky.yaml",
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: flaky, namespace: argocd}\nspec:\n  source: {repoURL: '', path: objects/flaky}\n  destination: {namespace: retry, server: 'https://kubernetes.default.svc'}\n  syncPolicy:\n    syncOptions: [CreateNamespace=true]\n    retry: {limit: 2, backoff: {duration: 100ms, factor: 2, maxDuration: 1s}}\n",
    );
    repo.write("objects/flaky/cm.yaml", &configmap("c", "k: v"));
    let report = sync_repo(&repo, &emu).await;
    let a = app(&report, "flaky");
    assert_eq!(a.outcome, AppOutcome::Succeeded, "{a:#?}");
    assert!(get(&emu, "/api/v1/namespaces/retry/configmaps/c")
        .await
        .is_some());

    // Without retry the same fault fails the app.
    let emu2 = emulator(fast_simulation()).await;
    emu2.set_faults(emu.faults()).expect("faults");
    let repo2 = Repo::new();
    repo2.write(
        "apps/flaky.yaml",
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: flaky, namespace: argocd}\nspec:\n  source: {repoURL: '', path: objects/flaky}\n  destination: {namespace: retry, server: 'https://kubernetes.default.svc'}\n  syncPolicy: {syncOptions: [CreateNamespace=true]}\n",
    );
    repo2.write("objects/flaky/cm.yaml", &configmap("c", "k: v"));
    let report = sync_repo(&repo2, &emu2).await;
    assert!(matches!(
        app(&report, "flaky").outcome,
        AppOutcome::Failed { .. }
    ));
}

fn argo_child(name: &str, ns: &str, finalizer: bool) -> String {
    let fin = if finalizer {
        "\n  finalizers: [resources-finalizer.argocd.argoproj.io]"
    } else {
        ""
    };
    format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: {name}\n  namespace: argocd{fin}\nspec:\n  source: {{repoURL: '', path: objects/{name}}}\n  destination: {{namespace: {ns}, server: 'https://kubernetes.default.svc'}}\n  syncPolicy: {{syncOptions: [CreateNamespace=true]}}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_leaving_the_tree_with_the_resources_finalizer_is_deleted_with_its_objects() {
    let emu = emulator(fast_simulation()).await;
    let repo = Repo::new();
    repo.write("apps/gone.yaml", &argo_child("gone", "gone", true));
    repo.write("apps/kept.yaml", &argo_child("kept", "kept", false));
    repo.write("objects/gone/deploy.yaml", &deployment("web", "nginx:1"));
    repo.write("objects/gone/cm.yaml", &configmap("conf", "k: v"));
    repo.write(
        "objects/gone/precious.yaml",
        &cm_with(
            "precious",
            "argocd.argoproj.io/sync-options: Delete=false",
            "k: v",
        ),
    );
    repo.write("objects/kept/cm.yaml", &configmap("conf", "k: v"));
    let first = sync_repo(&repo, &emu).await;
    assert!(first.all_good(), "{first:#?}");
    let app_obj = get(
        &emu,
        "/apis/kubesync.dev/v1alpha1/namespaces/kubesync-system/applications/gone",
    )
    .await
    .expect("application");
    assert_eq!(
        app_obj["metadata"]["annotations"]["kubesync.dev/cascade-delete"],
        "true"
    );

    repo.remove("apps/gone.yaml");
    repo.remove("apps/kept.yaml");
    let second = sync_repo(&repo, &emu).await;
    assert_eq!(
        second.orphaned,
        [kubesync::model::AppName::new("kept").expect("name")]
    );
    assert_eq!(second.removed.len(), 1, "{second:#?}");
    let removed = &second.removed[0];
    assert_eq!(removed.name.as_str(), "gone");
    assert!(removed.error.is_none(), "{removed:#?}");
    // Reverse dependency order: the Deployment before its configuration.
    let order: Vec<&str> = removed
        .changes
        .iter()
        .map(|c| c.object.name.as_str())
        .collect();
    let at = |n: &str| order.iter().position(|o| *o == n).expect("in changes");
    assert!(at("web") < at("conf"), "{order:?}");
    let precious = removed
        .changes
        .iter()
        .find(|c| c.object.name == "precious")
        .expect("precious");
    assert_eq!(precious.reason, Some(SkipReason::DeleteDisabled));

    assert!(get(&emu, "/apis/apps/v1/namespaces/gone/deployments/web")
        .await
        .is_none());
    assert!(get(&emu, "/api/v1/namespaces/gone/configmaps/conf")
        .await
        .is_none());
    assert!(get(&emu, "/api/v1/namespaces/gone/configmaps/precious")
        .await
        .is_some());
    assert!(get(
        &emu,
        "/apis/kubesync.dev/v1alpha1/namespaces/kubesync-system/applications/gone"
    )
    .await
    .is_none());
    // Without the finalizer: kept, as before.
    assert!(get(&emu, "/api/v1/namespaces/kept/configmaps/conf")
        .await
        .is_some());
}

/// `Validate=false` is sent as `fieldValidation=Ignore`, but a server-side
/// apply is typed: the real API server (v1.37, checked with `kubectl apply
/// --server-side --validate=false`) still refuses a field its schema does
/// not declare, and so does the emulator. The failure names the field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_false_cannot_make_server_side_apply_take_undeclared_fields() {
    let emu = emulator(fast_simulation()).await;
    let repo = Repo::new();
    repo.app("v", &spec("val"));
    repo.write(
        "objects/v/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: loose\n  annotations: {argocd.argoproj.io/sync-options: Validate=false}\ndata: {k: v}\nsurplus: 1\n",
    );
    repo.write("objects/v/ok.yaml", &configmap("ok", "k: v"));
    let report = sync_repo(&repo, &emu).await;
    let a = app(&report, "v");
    let loose = change_of(a, "loose");
    assert_eq!(loose.action, Action::Failed, "{loose:#?}");
    assert!(
        loose
            .message()
            .contains(".surplus: field not declared in schema"),
        "{}",
        loose.message()
    );
}

const WIDGET_CRD: &str = r#"{"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
  "metadata": {"name": "widgets.example.com"},
  "spec": {"group": "example.com", "scope": "Namespaced",
    "names": {"kind": "Widget", "plural": "widgets", "singular": "widget", "listKind": "WidgetList"},
    "versions": [{"name": "v1", "served": true, "storage": true,
      "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}}"#;

/// `SkipDryRunOnMissingResource=true`: a custom resource whose CRD an
/// earlier wave's operator installs at run time is applied in its wave;
/// without the option the app is refused before any write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_dry_run_on_missing_resource_waits_for_its_wave() {
    let emu = emulator(fast_simulation()).await;
    let widget = |opts: &str| {
        format!(
            "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n  annotations: {{argocd.argoproj.io/sync-wave: '1'{opts}}}\nspec: {{size: 1}}\n"
        )
    };
    let repo = Repo::new();
    repo.app("op", &spec("op"));
    repo.write("objects/op/operator.yaml", &deployment("operator", "op:1"));
    repo.write("objects/op/widget.yaml", &widget(""));
    let refused = sync_repo(&repo, &emu).await;
    let m = failure(app(&refused, "op"));
    assert!(m.contains("does not serve kind Widget"), "{m}");

    repo.write(
        "objects/op/widget.yaml",
        &widget(", argocd.argoproj.io/sync-options: SkipDryRunOnMissingResource=true"),
    );
    // The "operator": installs the CRD once its Deployment exists.
    let client = emu.kube_client();
    let installer = tokio::spawn(async move {
        let deployments: kube::Api<k8s_openapi::api::apps::v1::Deployment> =
            kube::Api::namespaced(client.clone(), "op");
        let found = eventually(std::time::Duration::from_secs(20), || async {
            deployments
                .get_opt("operator")
                .await
                .ok()
                .flatten()
                .is_some()
        })
        .await;
        assert!(found, "operator Deployment never created");
        let crds: kube::Api<
            k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
        > = kube::Api::all(client);
        let crd = serde_json::from_str(WIDGET_CRD).expect("crd");
        crds.create(&kube::api::PostParams::default(), &crd)
            .await
            .expect("create crd");
    });
    let report = sync_repo(&repo, &emu).await;
    installer.await.expect("installer");
    let a = app(&report, "op");
    assert!(a.outcome.is_success(), "{a:#?}");
    assert_eq!(change_of(a, "w").action, Action::Created);
    assert!(get(&emu, "/apis/example.com/v1/namespaces/op/widgets/w")
        .await
        .is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_reports_an_app_removed_with_its_objects() {
    let emu = emulator(fast_simulation()).await;
    let repo = Repo::new();
    repo.write("apps/gone.yaml", &argo_child("gone", "cli-gone", true));
    repo.write("objects/gone/cm.yaml", &configmap("conf", "k: v"));
    let out = run(&repo.root(), &emu.url(), &["bootstrap"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    repo.remove("apps/gone.yaml");
    let out = run(&repo.root(), &emu.url(), &["bootstrap"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("removed application gone: no longer in the tree, deleted with its objects (resources-finalizer.argocd.argoproj.io): 1 deleted, 0 kept"),
        "{}",
        text(&out)
    );
    assert!(get(&emu, "/api/v1/namespaces/cli-gone/configmaps/conf")
        .await
        .is_none());
}
