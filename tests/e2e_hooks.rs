//! Resource hooks and Argo CD sync options against a real API server (the
//! real-cluster tier: the control plane of `scripts/control-plane up`, where
//! kwok completes Jobs): a PreSync Job runs to completion before the
//! Deployment is created, a PostSync Job runs after it, the hooks are kept
//! or deleted per their policy, are not in the inventory, and a converged
//! re-run runs none; `Replace=true`/`Force=true` and the resources
//! finalizer's cascade delete as the real server answers them.
//! Runs when `KUBESYNC_E2E_KUBECONFIG` is set (as `tests/e2e_real_cluster.rs`);
//! skipped, with the reason printed, otherwise.

mod support;
mod sync_support;

use std::sync::Mutex;

/// One test at a time (they share the `root` Application object).
static CLUSTER: Mutex<()> = Mutex::new(());

use serde_json::Value;
use support::real_cluster::{from_env, kubectl, kubectl_value, unique_name, Cleanup};
use sync_support::{deployment, kubesync_on as kubesync, text, Repo};

fn str_at<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or_default()
}

#[test]
fn a_presync_job_completes_on_the_real_cluster_before_the_deployment_is_applied() {
    let Some(kc) = from_env("real-cluster hook test").map(|c| c.kc) else {
        return;
    };
    let _one = CLUSTER.lock().unwrap_or_else(|p| p.into_inner());
    let ns = unique_name("kse2e-hooks");
    let app = "kse2e-hooks";
    let _cleanup = Cleanup {
        kc: &kc,
        namespaces: vec![ns.clone()],
        cluster_objects: vec![],
        apps: vec![app.to_string(), "root".to_string()],
    };
    let repo = Repo::new();
    // The root selects only this app (other tests' Application objects are
    // reported as no longer in the tree, and kept).
    repo.app(
        app,
        &format!("  destination: {{namespace: {ns}}}\n  syncPolicy: {{createNamespace: true, wait: {{timeout: 180s}}}}\n"),
    );
    let job = |name: &str, phase: &str, policy: &str| {
        format!(
            "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: {name}\n  annotations:\n    argocd.argoproj.io/hook: {phase}\n    argocd.argoproj.io/hook-delete-policy: {policy}\nspec:\n  backoffLimit: 0\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{{name: c, image: alpine, command: [sleep, '1']}}]\n"
        )
    };
    let dir = format!("objects/{app}");
    repo.write(
        &format!("{dir}/migrate.yaml"),
        &job("migrate", "PreSync", "BeforeHookCreation"),
    );
    repo.write(
        &format!("{dir}/smoke.yaml"),
        &job("smoke", "PostSync", "HookSucceeded"),
    );
    repo.write(&format!("{dir}/web.yaml"), &deployment("web", "nginx:1.27"));

    let out = kubesync(&kc, &repo.root(), &["--output", "json", "bootstrap"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).expect("json report");
    let changes = report["apps"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["name"] == app))
        .and_then(|a| a["changes"].as_array())
        .cloned()
        .expect("changes");
    let hooks: Vec<(&str, &str, &str)> = changes
        .iter()
        .filter(|c| c.get("hook").is_some())
        .map(|c| {
            (
                str_at(c, "/hook"),
                str_at(c, "/object/name"),
                str_at(c, "/action"),
            )
        })
        .collect();
    assert_eq!(
        hooks,
        [
            ("PreSync", "migrate", "created"),
            ("PostSync", "smoke", "created")
        ],
        "{changes:#?}"
    );

    // The PreSync Job (kept: BeforeHookCreation) completed before the
    // Deployment was created; the PostSync Job was deleted (HookSucceeded).
    let migrate = kubectl_value(&kc, &["get", "job", "migrate", "-n", &ns]);
    let web = kubectl_value(&kc, &["get", "deployment", "web", "-n", &ns]);
    let completed = str_at(&migrate, "/status/completionTime");
    let created = str_at(&web, "/metadata/creationTimestamp");
    assert!(!completed.is_empty(), "{migrate:#}");
    assert!(
        completed <= created,
        "Job completed {completed}, Deployment created {created}"
    );
    let smoke = kubectl(&kc, &["get", "job", "smoke", "-n", &ns]);
    assert!(!smoke.status.success(), "smoke deleted: {}", text(&smoke));

    // Hooks are not in the inventory.
    let status = kubectl_value(
        &kc,
        &[
            "get",
            "applications.kubesync.dev",
            app,
            "-n",
            "kubesync-system",
        ],
    );
    let inventory: Vec<&str> = status
        .pointer("/status/inventory")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|e| str_at(e, "/name"))
        .collect();
    assert_eq!(inventory, ["web"], "{status:#}");

    // Converged: no hook runs.
    let again = kubesync(&kc, &repo.root(), &["--output", "json", "bootstrap"]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    let report: Value = serde_json::from_slice(&again.stdout).expect("json report");
    let app_report = report["apps"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["name"] == app))
        .cloned()
        .expect("app");
    let not_run = app_report["changes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c.get("hook").is_some())
        .all(|c| c["reason"] == "nothingToSync");
    assert!(not_run, "{app_report:#}");
    let uid = str_at(&migrate, "/metadata/uid").to_string();
    let still = kubectl_value(&kc, &["get", "job", "migrate", "-n", &ns]);
    assert_eq!(str_at(&still, "/metadata/uid"), uid, "not recreated");
}

#[test]
fn replace_force_and_cascade_delete_on_the_real_cluster() {
    let Some(kc) = from_env("real-cluster hook test").map(|c| c.kc) else {
        return;
    };
    let _one = CLUSTER.lock().unwrap_or_else(|p| p.into_inner());
    let ns = format!("kse2e-opts-{:x}", std::process::id());
    let app = "kse2e-opts";
    let _cleanup = Cleanup {
        kc: &kc,
        namespaces: vec![ns.clone()],
        cluster_objects: vec![],
        apps: vec![app.to_string(), "root".to_string()],
    };
    let repo = Repo::new();
    let child = format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: {app}\n  namespace: argocd\n  finalizers: [resources-finalizer.argocd.argoproj.io]\nspec:\n  source: {{repoURL: '', path: objects/{app}}}\n  destination: {{namespace: {ns}, server: 'https://kubernetes.default.svc'}}\n  syncPolicy: {{syncOptions: [CreateNamespace=true]}}\n"
    );
    repo.write(&format!("apps/{app}.yaml"), &child);
    let job = |image: &str| {
        format!(
            "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: once\n  annotations: {{argocd.argoproj.io/sync-options: 'Replace=true,Force=true'}}\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{{name: c, image: '{image}'}}]\n"
        )
    };
    let cm = |v: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: conf\n  annotations: {{argocd.argoproj.io/sync-options: Replace=true}}\ndata: {{k: '{v}'}}\n"
        )
    };
    let dir = format!("objects/{app}");
    repo.write(&format!("{dir}/job.yaml"), &job("alpine:1"));
    repo.write(&format!("{dir}/cm.yaml"), &cm("1"));
    let out = kubesync(&kc, &repo.root(), &["bootstrap"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let uid = str_at(
        &kubectl_value(&kc, &["get", "job", "once", "-n", &ns]),
        "/metadata/uid",
    )
    .to_string();

    repo.write(&format!("{dir}/job.yaml"), &job("alpine:2"));
    repo.write(&format!("{dir}/cm.yaml"), &cm("2"));
    let out = kubesync(&kc, &repo.root(), &["--output", "json", "bootstrap"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    let changes = report["apps"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["name"] == app))
        .and_then(|a| a["changes"].as_array())
        .cloned()
        .expect("changes");
    let reason = |name: &str| {
        changes
            .iter()
            .find(|c| c["object"]["name"] == name)
            .map(|c| str_at(c, "/reason").to_string())
            .unwrap_or_default()
    };
    assert_eq!(reason("conf"), "replaced", "{changes:#?}");
    assert_eq!(reason("once"), "recreated", "{changes:#?}");
    let job_now = kubectl_value(&kc, &["get", "job", "once", "-n", &ns]);
    assert_ne!(str_at(&job_now, "/metadata/uid"), uid);
    let conf = kubectl_value(&kc, &["get", "configmap", "conf", "-n", &ns]);
    assert_eq!(str_at(&conf, "/data/k"), "2");

    // The app leaves the tree with the resources finalizer: its objects go.
    std::fs::remove_file(repo.path().join(format!("apps/{app}.yaml"))).expect("remove");
    let out = kubesync(&kc, &repo.root(), &["--output", "json", "bootstrap"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    let removed = report["removed"].as_array().cloned().unwrap_or_default();
    assert!(
        removed
            .iter()
            .any(|r| r["name"] == app && r.get("error").is_none()),
        "{report:#}"
    );
    assert!(!kubectl(&kc, &["get", "job", "once", "-n", &ns])
        .status
        .success());
    assert!(!kubectl(&kc, &["get", "configmap", "conf", "-n", &ns])
        .status
        .success());
    assert!(!kubectl(
        &kc,
        &[
            "get",
            "applications.kubesync.dev",
            app,
            "-n",
            "kubesync-system"
        ]
    )
    .status
    .success());
}
