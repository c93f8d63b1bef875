//! App-level `spec.syncPolicy.syncOptions`, in-process against the
//! emulator: they are the defaults every object of the app starts from
//! (`Replace=true`, `Prune=false`, …), which an object's own
//! `argocd.argoproj.io/sync-options` overrides; `PrunePropagationPolicy`
//! decides what happens to a pruned object's dependents;
//! `FailOnSharedResource=true` refuses to take over another app's object;
//! the options kubesync always honours are accepted and an unknown one is a
//! configuration error naming it (through the CLI).

mod sync_support;

use kubesync::sync::{Action, AppOutcome, Note, SkipReason};
use serde_json::{json, Value};
use std::time::Duration;
use sync_support::*;

/// An app spec (kubesync kind) with the given app-level sync options.
fn spec(ns: &str, options: &str) -> String {
    format!(
        "  destination: {{namespace: {ns}}}\n  syncPolicy:\n    createNamespace: true\n    automated: {{prune: true}}\n    wait: {{timeout: 20s}}\n    syncOptions: [{options}]\n"
    )
}

fn cm_with(name: &str, annotations: &str, data: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  annotations: {{{annotations}}}\ndata: {{{data}}}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_level_replace_is_the_default_an_annotation_overrides() {
    let emu = emulator(fast_simulation()).await;
    let repo = Repo::new();
    repo.app(
        "r",
        &spec(
            "arep",
            "Replace=true, ServerSideApply=true, ApplyOutOfSyncOnly=true",
        ),
    );
    repo.write("objects/r/a.yaml", &configmap("by-app", "k: v1"));
    repo.write(
        "objects/r/b.yaml",
        &cm_with(
            "by-annotation",
            "argocd.argoproj.io/sync-options: Replace=false",
            "k: v1",
        ),
    );
    let first = sync_repo(&repo, &emu).await;
    assert!(app(&first, "r").outcome.is_success(), "{first:#?}");

    // Someone else labels both; a replace drops the label, an apply keeps it.
    let client = emu.kube_client();
    let api: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
        kube::Api::namespaced(client, "arep");
    for name in ["by-app", "by-annotation"] {
        api.patch(
            name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"metadata": {"labels": {"extra": "yes"}}})),
        )
        .await
        .expect("patch");
    }
    repo.write("objects/r/a.yaml", &configmap("by-app", "k: v2"));
    repo.write(
        "objects/r/b.yaml",
        &cm_with(
            "by-annotation",
            "argocd.argoproj.io/sync-options: Replace=false",
            "k: v2",
        ),
    );
    let second = sync_repo(&repo, &emu).await;
    let r = app(&second, "r");
    assert!(r.outcome.is_success(), "{r:#?}");
    assert_eq!(
        change_of(r, "by-app").note,
        Some(Note::Replaced { recreated: false })
    );
    assert_ne!(
        change_of(r, "by-annotation").note,
        Some(Note::Replaced { recreated: false })
    );
    let by_app = get(&emu, "/api/v1/namespaces/arep/configmaps/by-app")
        .await
        .expect("cm");
    assert_eq!(by_app["data"]["k"], "v2");
    assert!(
        by_app.pointer("/metadata/labels/extra").is_none(),
        "{by_app:#}"
    );
    let by_ann = get(&emu, "/api/v1/namespaces/arep/configmaps/by-annotation")
        .await
        .expect("cm");
    assert_eq!(by_ann["data"]["k"], "v2");
    assert_eq!(
        by_ann.pointer("/metadata/labels/extra"),
        Some(&json!("yes"))
    );

    // Converged: a third sync writes nothing, Replace=true or not.
    let before = writes(&emu);
    let third = sync_repo(&repo, &emu).await;
    assert!(app(&third, "r").outcome.is_success(), "{third:#?}");
    assert_eq!(writes(&emu), before, "{third:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_level_prune_false_keeps_leftovers_unless_an_object_says_prune_true() {
    let emu = emulator(fast_simulation()).await;
    let repo = Repo::new();
    repo.app("p", &spec("apru", "Prune=false"));
    repo.write("objects/p/kept.yaml", &configmap("kept", "k: v"));
    repo.write(
        "objects/p/pruned.yaml",
        &cm_with(
            "pruned",
            "argocd.argoproj.io/sync-options: Prune=true",
            "k: v",
        ),
    );
    repo.write("objects/p/stay.yaml", &configmap("stay", "k: v"));
    let first = sync_repo(&repo, &emu).await;
    assert!(app(&first, "p").outcome.is_success(), "{first:#?}");

    repo.remove("objects/p/kept.yaml");
    repo.remove("objects/p/pruned.yaml");
    let second = sync_repo(&repo, &emu).await;
    let p = app(&second, "p");
    assert_eq!(
        change_of(p, "kept").reason,
        Some(SkipReason::PruneDisabled),
        "{p:#?}"
    );
    assert_eq!(change_of(p, "pruned").action, Action::Pruned, "{p:#?}");
    assert!(get(&emu, "/api/v1/namespaces/apru/configmaps/kept")
        .await
        .is_some());
    assert!(get(&emu, "/api/v1/namespaces/apru/configmaps/pruned")
        .await
        .is_none());
}

/// The ReplicaSets of Deployment `name` in `ns` (by its pods' label: an
/// orphaned ReplicaSet loses its owner reference).
async fn replicasets_of(emu: &kubesync::emulator::EmulatorHandle, ns: &str, name: &str) -> usize {
    get(emu, &format!("/apis/apps/v1/namespaces/{ns}/replicasets"))
        .await
        .and_then(|l| {
            l["items"].as_array().map(|items| {
                items
                    .iter()
                    .filter(|rs| {
                        rs.pointer("/metadata/labels/app").and_then(Value::as_str) == Some(name)
                    })
                    .count()
            })
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_propagation_policy_orphan_leaves_the_dependents() {
    let emu = emulator(fast_simulation()).await;
    for (ns, policy, orphaned) in [
        ("porph", "PrunePropagationPolicy=orphan", true),
        ("pfore", "PrunePropagationPolicy=foreground", false),
        ("pback", "", false),
    ] {
        let repo = Repo::new();
        repo.app("d", &spec(ns, policy));
        repo.write("objects/d/web.yaml", &deployment("web", "nginx:1"));
        repo.write("objects/d/cm.yaml", &configmap("stay", "k: v"));
        let first = sync_repo(&repo, &emu).await;
        assert!(app(&first, "d").outcome.is_success(), "{ns}: {first:#?}");
        assert!(
            eventually(Duration::from_secs(10), || async {
                replicasets_of(&emu, ns, "web").await == 1
            })
            .await,
            "{ns}: no ReplicaSet"
        );
        repo.remove("objects/d/web.yaml");
        let second = sync_repo(&repo, &emu).await;
        let d = app(&second, "d");
        assert_eq!(change_of(d, "web").action, Action::Pruned, "{ns}: {d:#?}");
        assert!(
            eventually(Duration::from_secs(10), || async {
                get(
                    &emu,
                    &format!("/apis/apps/v1/namespaces/{ns}/deployments/web"),
                )
                .await
                .is_none()
            })
            .await,
            "{ns}: Deployment not deleted"
        );
        let left = eventually(Duration::from_secs(3), || async {
            (replicasets_of(&emu, ns, "web").await == 1) == orphaned
        })
        .await;
        assert!(
            left,
            "{ns} ({policy}): ReplicaSet orphaned should be {orphaned}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_on_shared_resource_refuses_another_apps_object() {
    let emu = emulator(fast_simulation()).await;
    // App "owner" (one repository) applies ConfigMap shared/conf.
    let first = Repo::new();
    first.app("owner", &spec("shared", ""));
    first.write("objects/owner/conf.yaml", &configmap("conf", "k: owner"));
    let r = sync_repo(&first, &emu).await;
    assert!(app(&r, "owner").outcome.is_success(), "{r:#?}");

    // App "taker" (another repository, same cluster) renders it too.
    let second = Repo::new();
    second.app("taker", &spec("shared", "FailOnSharedResource=true"));
    second.write("objects/taker/conf.yaml", &configmap("conf", "k: taker"));
    second.write("objects/taker/own.yaml", &configmap("own", "k: v"));
    let r = sync_repo(&second, &emu).await;
    let taker = app(&r, "taker");
    let message = failure(taker);
    assert!(
        message.contains("ConfigMap shared/conf")
            && message.contains("already applied by application \"owner\"")
            && message.contains("FailOnSharedResource=true"),
        "{message}"
    );
    // Refused before any write: neither object was written.
    let conf = get(&emu, "/api/v1/namespaces/shared/configmaps/conf")
        .await
        .expect("cm");
    assert_eq!(conf["data"]["k"], "owner");
    assert!(get(&emu, "/api/v1/namespaces/shared/configmaps/own")
        .await
        .is_none());

    // Without the option, the object is taken over (kubesync's default).
    second.app("taker", &spec("shared", ""));
    let r = sync_repo(&second, &emu).await;
    assert!(
        matches!(app(&r, "taker").outcome, AppOutcome::Succeeded),
        "{r:#?}"
    );
    let conf = get(&emu, "/api/v1/namespaces/shared/configmaps/conf")
        .await
        .expect("cm");
    assert_eq!(conf["data"]["k"], "taker");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_names_an_unknown_or_unreadable_app_level_option() {
    let emu = emulator(fast_simulation()).await;
    let repo = Repo::new();
    repo.write(
        "apps/typo.yaml",
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: typo}\nspec:\n  project: default\n  source: {path: objects/typo}\n  destination: {namespace: typo}\n  syncPolicy:\n    syncOptions: [CreateNamespace=true, PruneLasst=true]\n",
    );
    repo.write("objects/typo/cm.yaml", &configmap("c", "k: v"));
    repo.app("fine", &spec("fine", "PrunePropagationPolicy=background"));
    repo.write("objects/fine/cm.yaml", &configmap("c", "k: v"));
    let out = run(&repo.root(), &emu.url(), &["bootstrap"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let all = text(&out);
    assert!(
        all.contains("spec.syncPolicy.syncOptions")
            && all.contains("\"PruneLasst\" is not a sync option kubesync knows"),
        "{all}"
    );
    // The other app synced.
    assert!(
        get(&emu, "/api/v1/namespaces/fine/configmaps/c")
            .await
            .is_some(),
        "{all}"
    );

    repo.write(
        "apps/typo.yaml",
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: typo}\nspec:\n  project: default\n  source: {path: objects/typo}\n  destination: {namespace: typo}\n  syncPolicy:\n    syncOptions: [PrunePropagationPolicy=sideways]\n",
    );
    let out = run(&repo.root(), &emu.url(), &["bootstrap"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("expected PrunePropagationPolicy=foreground, background or orphan"),
        "{}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_level_delete_false_keeps_objects_when_the_app_is_deleted() {
    let emu = emulator(fast_simulation()).await;
    let repo = Repo::new();
    repo.write(
        "apps/d.yaml",
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: d\n  finalizers: [resources-finalizer.argocd.argoproj.io]\nspec:\n  project: default\n  source: {path: objects/d}\n  destination: {namespace: adel}\n  syncPolicy:\n    automated: {prune: true}\n    syncOptions: [CreateNamespace=true, Delete=false]\n",
    );
    repo.write("objects/d/kept.yaml", &configmap("kept", "k: v"));
    repo.write(
        "objects/d/gone.yaml",
        &cm_with(
            "gone",
            "argocd.argoproj.io/sync-options: Delete=true",
            "k: v",
        ),
    );
    let first = sync_repo(&repo, &emu).await;
    assert!(app(&first, "d").outcome.is_success(), "{first:#?}");

    repo.remove("apps/d.yaml");
    let second = sync_repo(&repo, &emu).await;
    assert_eq!(second.removed.len(), 1, "{second:#?}");
    let removed = &second.removed[0];
    assert!(removed.error.is_none(), "{removed:#?}");
    let kept = removed
        .changes
        .iter()
        .find(|c| c.object.name == "kept")
        .expect("kept");
    assert_eq!(
        kept.reason,
        Some(SkipReason::DeleteDisabled),
        "{removed:#?}"
    );
    assert!(get(&emu, "/api/v1/namespaces/adel/configmaps/kept")
        .await
        .is_some());
    assert!(get(&emu, "/api/v1/namespaces/adel/configmaps/gone")
        .await
        .is_none());
}
