//! What becomes of an app an ApplicationSet stops generating, in-process
//! against the emulator and through the CLI: Argo CD's
//! `spec.syncPolicy.applicationsSync` (`sync`, the default, and
//! `create-delete` delete the Application — with its objects when it has
//! the resources finalizer, unless `preserveResourcesOnDeletion`;
//! `create-only` and `create-update` keep it) — and never anything deleted
//! while a generator fails (git unreachable) or a generated app is invalid.

mod sync_support;

use kubesync::emulator::EmulatorHandle;
use kubesync::model::AppName;
use kubesync::sync::AppOutcome;
use sync_support::*;

/// An Argo CD ApplicationSet `envs` as the root: one app `app-ENV` per
/// element (namespace ENV, a ConfigMap), with the resources finalizer when
/// `finalizer`; `policy` is the set's `syncPolicy`; `extra_generator` is
/// added after the list generator.
fn set(elements: &str, policy: &str, finalizer: bool, extra_generator: &str) -> String {
    let finalizers = if finalizer {
        "\n      finalizers: [resources-finalizer.argocd.argoproj.io]"
    } else {
        ""
    };
    format!(
        r#"apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata: {{name: envs}}
spec:
  goTemplate: true
  generators:
  - list:
      elements: {elements}
{extra_generator}
  template:
    metadata:
      name: 'app-{{{{.env}}}}'{finalizers}
    spec:
      project: default
      source: {{path: objects/app}}
      destination: {{namespace: '{{{{.env}}}}'}}
      syncPolicy: {{automated: {{prune: true}}, syncOptions: [CreateNamespace=true]}}
  syncPolicy: {policy}
"#
    )
}

fn repo_with(root: &str) -> Repo {
    let repo = Repo::new();
    repo.write("objects/app/cm.yaml", &configmap("settings", "a: \"1\""));
    repo.write("root.yaml", root);
    repo
}

async fn settings_in(emu: &EmulatorHandle, ns: &str) -> bool {
    get(emu, &format!("/api/v1/namespaces/{ns}/configmaps/settings"))
        .await
        .is_some()
}

async fn application_object(emu: &EmulatorHandle, name: &str) -> bool {
    get(
        emu,
        &format!("/apis/kubesync.dev/v1alpha1/namespaces/kubesync-system/applications/{name}"),
    )
    .await
    .is_some()
}

fn prod() -> AppName {
    AppName::new("app-prod").expect("name")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_default_an_app_no_longer_generated_is_deleted_with_its_objects() {
    let emu = emulator(fast_simulation()).await;
    let both = r#"[{env: dev}, {env: prod}]"#;
    let repo = repo_with(&set(both, "{}", true, ""));
    let first = sync_repo(&repo, &emu).await;
    assert_eq!(
        app(&first, "app-prod").outcome,
        AppOutcome::Succeeded,
        "{first:#?}"
    );
    assert!(settings_in(&emu, "prod").await);

    repo.write("root.yaml", &set("[{env: dev}]", "{}", true, ""));
    let second = sync_repo(&repo, &emu).await;
    assert!(second.orphaned.is_empty(), "{second:#?}");
    let removed = &second.removed;
    assert_eq!(removed.len(), 1, "{second:#?}");
    assert_eq!(removed[0].name, prod());
    assert!(
        removed[0].cascade && removed[0].error.is_none(),
        "{removed:#?}"
    );
    assert_eq!(removed[0].application_set.as_deref(), Some("envs"));
    assert!(
        !settings_in(&emu, "prod").await,
        "objects deleted with the app"
    );
    assert!(!application_object(&emu, "app-prod").await);
    // The app still generated is untouched.
    assert_eq!(app(&second, "app-dev").outcome, AppOutcome::Succeeded);
    assert!(settings_in(&emu, "dev").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_policy_keeps_or_deletes_as_argo_cd_does() {
    let emu = emulator(fast_simulation()).await;
    let both = r#"[{env: dev}, {env: prod}]"#;
    for (policy, finalizer, deleted, objects_kept) in [
        ("{applicationsSync: create-only}", true, false, true),
        ("{applicationsSync: create-update}", true, false, true),
        ("{applicationsSync: create-delete}", true, true, false),
        (
            "{applicationsSync: create-delete, preserveResourcesOnDeletion: true}",
            true,
            true,
            true,
        ),
        ("{applicationsSync: sync}", false, true, true),
    ] {
        let repo = repo_with(&set(both, policy, finalizer, ""));
        let first = sync_repo(&repo, &emu).await;
        assert_eq!(
            app(&first, "app-prod").outcome,
            AppOutcome::Succeeded,
            "{policy}"
        );
        repo.write("root.yaml", &set("[{env: dev}]", policy, finalizer, ""));
        let r = sync_repo(&repo, &emu).await;
        assert_eq!(
            r.removed.iter().any(|a| a.name == prod()),
            deleted,
            "{policy}: {r:#?}"
        );
        assert_eq!(r.orphaned.contains(&prod()), !deleted, "{policy}: {r:#?}");
        assert_eq!(
            application_object(&emu, "app-prod").await,
            !deleted,
            "{policy}"
        );
        assert_eq!(settings_in(&emu, "prod").await, objects_kept, "{policy}");
        if let Some(removed) = r.removed.iter().find(|a| a.name == prod()) {
            assert_eq!(removed.cascade, !objects_kept, "{policy}: {removed:#?}");
        }
        // Leave the cluster as each case found it.
        if !deleted {
            kubesync_delete_application(&emu, "app-prod").await;
        }
        if objects_kept {
            delete_settings(&emu, "prod").await;
        }
    }
}

async fn kubesync_delete_application(emu: &EmulatorHandle, name: &str) {
    let req = http::Request::delete(format!(
        "/apis/kubesync.dev/v1alpha1/namespaces/kubesync-system/applications/{name}"
    ))
    .body(Vec::new())
    .expect("request");
    emu.kube_client()
        .request_text(req)
        .await
        .expect("delete Application");
}

async fn delete_settings(emu: &EmulatorHandle, ns: &str) {
    let req = http::Request::delete(format!("/api/v1/namespaces/{ns}/configmaps/settings"))
        .body(Vec::new())
        .expect("request");
    emu.kube_client()
        .request_text(req)
        .await
        .expect("delete ConfigMap");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_generator_or_an_invalid_generated_app_deletes_nothing() {
    let emu = emulator(fast_simulation()).await;
    let both = r#"[{env: dev}, {env: prod}]"#;
    let repo = repo_with(&set(both, "{}", true, ""));
    let first = sync_repo(&repo, &emu).await;
    assert_eq!(
        app(&first, "app-prod").outcome,
        AppOutcome::Succeeded,
        "{first:#?}"
    );

    // prod leaves the list, and a git generator cannot reach its repository:
    // the set fails, so none of its apps is deleted (dev included).
    let unreachable = "  - git:\n      repoURL: http://127.0.0.1:9/unreachable.git\n      revision: HEAD\n      directories: [{path: '*'}]\n";
    repo.write("root.yaml", &set("[{env: dev}]", "{}", true, unreachable));
    let r = sync_repo(&repo, &emu).await;
    assert!(r.removed.is_empty(), "{r:#?}");
    for ns in ["dev", "prod"] {
        assert!(settings_in(&emu, ns).await, "{ns}: {r:#?}");
        assert!(application_object(&emu, &format!("app-{ns}")).await, "{ns}");
    }

    // prod leaves the list, and another element makes an invalid app: that
    // app fails alone, and still nothing is deleted.
    repo.write(
        "root.yaml",
        &set(r#"[{env: dev}, {env: Not_A_Name}]"#, "{}", true, ""),
    );
    let r = sync_repo(&repo, &emu).await;
    assert!(r.removed.is_empty(), "{r:#?}");
    assert!(r.orphaned.contains(&prod()), "{r:#?}");
    assert!(settings_in(&emu, "prod").await);
    assert!(application_object(&emu, "app-prod").await);

    // Fixed: now prod goes, with its objects.
    repo.write("root.yaml", &set("[{env: dev}]", "{}", true, ""));
    let r = sync_repo(&repo, &emu).await;
    assert!(r.removed.iter().any(|a| a.name == prod()), "{r:#?}");
    assert!(!settings_in(&emu, "prod").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_reports_an_app_no_longer_generated() {
    let emu = emulator(fast_simulation()).await;
    let both = r#"[{env: dev}, {env: prod}]"#;
    let policy = "{applicationsSync: create-delete, preserveResourcesOnDeletion: true}";
    let repo = repo_with(&set(both, policy, true, ""));
    let out = run(&repo.root(), &emu.url(), &["bootstrap"]).await;
    assert!(out.status.success(), "{}", text(&out));
    repo.write("root.yaml", &set("[{env: dev}]", policy, true, ""));
    // A dry run deletes nothing.
    let dry = run(&repo.root(), &emu.url(), &["bootstrap", "--dry-run"]).await;
    assert!(application_object(&emu, "app-prod").await, "{}", text(&dry));
    let out = run(&repo.root(), &emu.url(), &["bootstrap"]).await;
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(
            "removed application app-prod: no longer generated by ApplicationSet \"envs\", deleted; its objects are kept"
        ),
        "{}",
        text(&out)
    );
    assert!(settings_in(&emu, "prod").await);
    assert!(!application_object(&emu, "app-prod").await);
}
