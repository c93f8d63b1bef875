//! Argo CD's own example repository, whole, driven the way a user would:
//! the root is the repository's `apps` chart (an app of apps rendering one
//! Argo CD Application per example, each with the resources finalizer,
//! `CreateNamespace=true` and automated prune), the repository URL is
//! pointed at a local copy with `--repo-override`, and the chart repository
//! `helm-dependency` needs at a local mirror. `kubesync bootstrap` must end
//! with every app Synced and Healthy — guestbook, helm-guestbook,
//! kustomize-guestbook, sock-shop, helm-hooks, pre-post-sync, sync-waves,
//! helm-dependency, jsonnet-guestbook, jsonnet-guestbook-tla — with the
//! hooks run and cleaned up per policy, and a second bootstrap must write
//! nothing.
//!
//! The repository is assembled from our own equivalents (no upstream file is
//! copied): tests/fixtures/argocd-example-apps (apps, sock-shop,
//! helm-dependency, the hook examples), examples/argocd-app-of-apps
//! (guestbook, helm-guestbook) and tests/fixtures/jsonnet (the jsonnet
//! examples). Against the emulator always; against a real control plane
//! too when `KUBESYNC_E2E_KUBECONFIG` is set.

mod support;
mod sync_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;
use support::chart_repo::wordpress_mirror;
use support::real_cluster::{from_env, kubectl, LoadBalancerProvider};
use sync_support::{emulator, fast_simulation, kubesync_on, run, text, writes};

const UPSTREAM: &str = "https://github.com/argoproj/argocd-example-apps";
const STABLE: &str = "https://charts.helm.sh/stable";

/// Every example the root renders, as `example.NAME` in namespace NAME.
const EXAMPLES: [&str; 10] = [
    "guestbook",
    "helm-dependency",
    "helm-guestbook",
    "helm-hooks",
    "jsonnet-guestbook",
    "jsonnet-guestbook-tla",
    "kustomize-guestbook",
    "pre-post-sync",
    "sock-shop",
    "sync-waves",
];

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The example repository's layout, assembled in a temporary directory, plus
/// the root Application (what a user `kubectl apply`s to Argo CD).
struct ExampleRepo {
    dir: tempfile::TempDir,
    mirror: tempfile::TempDir,
}

impl ExampleRepo {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let repo = dir.path().join("repo");
        let fixtures = manifest_dir().join("tests/fixtures");
        support::copy_dir(&fixtures.join("argocd-example-apps"), &repo);
        std::fs::remove_file(repo.join("README.md")).expect("fixture README");
        for name in ["guestbook", "helm-guestbook"] {
            support::copy_dir(
                &manifest_dir()
                    .join("examples/argocd-app-of-apps")
                    .join(name),
                &repo.join(name),
            );
        }
        for name in ["jsonnet-guestbook", "jsonnet-guestbook-tla"] {
            support::copy_dir(&fixtures.join("jsonnet").join(name), &repo.join(name));
        }
        // A git repository with a `master` branch, as upstream's
        // `targetRevision: master` needs.
        for args in [
            &["init", "-q", "-b", "master"][..],
            &["add", "-A"],
            &[
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@example.test",
                "commit",
                "-qm",
                "examples",
            ],
        ] {
            let out = Command::new("git")
                .args(args)
                .current_dir(&repo)
                .output()
                .expect("run git");
            assert!(out.status.success(), "git {args:?}: {}", text(&out));
        }
        std::fs::write(
            dir.path().join("root.yaml"),
            format!(
                "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: applications\n  namespace: argocd\nspec:\n  project: default\n  source:\n    repoURL: {UPSTREAM}\n    targetRevision: master\n    path: apps\n  destination:\n    server: https://kubernetes.default.svc\n    namespace: argocd\n  syncPolicy:\n    automated: {{prune: true, selfHeal: true}}\n"
            ),
        )
        .expect("root.yaml");
        ExampleRepo {
            dir,
            mirror: wordpress_mirror(),
        }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root.yaml")
    }

    fn repo(&self) -> PathBuf {
        self.dir.path().join("repo")
    }

    /// `--repo-override` for the example repository and the chart mirror.
    fn overrides(&self) -> Vec<String> {
        vec![
            "--repo-override".into(),
            format!("{UPSTREAM}={}", self.repo().display()),
            "--repo-override".into(),
            format!("{STABLE}={}", self.mirror.path().display()),
        ]
    }
}

fn report_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("json report: {e}\n{}", text(out)))
}

/// Every app of the report Synced and Healthy, and exactly the root plus
/// the examples.
fn assert_all_synced_and_healthy(report: &Value, out: &Output) {
    let apps = report["apps"].as_array().expect("apps");
    let mut names: Vec<&str> = apps.iter().filter_map(|a| a["name"].as_str()).collect();
    names.sort_unstable();
    let mut want: Vec<String> = EXAMPLES.iter().map(|e| format!("example.{e}")).collect();
    want.push("applications".into());
    want.sort();
    assert_eq!(names, want, "{}", text(out));
    for app in apps {
        assert_eq!(app["sync"], "Synced", "{app:#}\n{}", text(out));
        assert_eq!(app["health"]["status"], "Healthy", "{app:#}\n{}", text(out));
    }
}

/// The hooks of one app, as `(phase, object name, reason)`.
fn hooks_of(report: &Value, app: &str) -> Vec<(String, String, String)> {
    let app = report["apps"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["name"] == app)
        .unwrap_or_else(|| panic!("no app {app}"));
    app["changes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c.get("hook").is_some())
        .map(|c| {
            (
                c["hook"].as_str().unwrap_or("").to_string(),
                c["object"]["name"].as_str().unwrap_or("").to_string(),
                c["reason"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_repository_ends_synced_and_healthy_and_a_rerun_writes_nothing() {
    let repo = ExampleRepo::new();
    let emu = emulator(fast_simulation()).await;
    let mut args: Vec<String> = ["bootstrap", "-o", "json", "--timeout", "60s"]
        .map(String::from)
        .to_vec();
    args.extend(repo.overrides());
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();

    let first = run(&repo.root(), &emu.url(), &argv).await;
    assert!(first.status.success(), "{}", text(&first));
    let report = report_of(&first);
    assert_all_synced_and_healthy(&report, &first);

    // The hook examples ran their hooks, in their phases.
    let pre_post = hooks_of(&report, "example.pre-post-sync");
    assert!(
        pre_post
            .iter()
            .any(|(p, n, _)| p == "PreSync" && n.contains("before"))
            && pre_post
                .iter()
                .any(|(p, n, _)| p == "PostSync" && n.contains("after")),
        "{pre_post:?}"
    );
    let waves = hooks_of(&report, "example.sync-waves");
    assert!(
        waves.iter().any(|(p, _, _)| p == "PreSync") && waves.iter().any(|(p, _, _)| p == "Sync"),
        "{waves:?}"
    );
    let helm_hooks = hooks_of(&report, "example.helm-hooks");
    assert!(!helm_hooks.is_empty(), "{helm_hooks:?}");

    // Objects of each kind of source, where Argo CD would put them.
    for path in [
        "/apis/apps/v1/namespaces/guestbook/deployments/guestbook-ui",
        "/apis/apps/v1/namespaces/helm-guestbook/deployments/helm-guestbook",
        "/apis/apps/v1/namespaces/kustomize-guestbook/deployments/kustomize-guestbook-ui",
        "/apis/apps/v1/namespaces/sock-shop/deployments/front-end",
        "/apis/networking.k8s.io/v1/namespaces/sock-shop/ingresses/front-end-ingress",
        "/apis/apps/v1/namespaces/helm-dependency/deployments/helm-dependency-wordpress",
        "/apis/apps/v1/namespaces/helm-dependency/statefulsets/helm-dependency-mariadb",
        "/apis/apps/v1/namespaces/jsonnet-guestbook/deployments/jsonnet-guestbook-ui",
        "/apis/apps/v1/namespaces/jsonnet-guestbook-tla/deployments/jsonnet-guestbook-ui",
    ] {
        assert!(
            sync_support::get(&emu, path).await.is_some(),
            "{path} missing\n{}",
            text(&first)
        );
    }
    // helm-dependency: the dependency's values from the umbrella chart.
    let wp = sync_support::get(
        &emu,
        "/apis/apps/v1/namespaces/helm-dependency/deployments/helm-dependency-wordpress",
    )
    .await
    .expect("wordpress");
    assert_eq!(
        wp.pointer("/spec/template/spec/containers/0/image"),
        Some(&Value::from("bitnami/wordpress:invalid"))
    );
    // Hooks cleaned up per policy: pre-post-sync's HookSucceeded Jobs are
    // gone; helm-hooks' before-hook-creation Jobs stay until the next run.
    let jobs = |ns: &'static str| {
        let emu = &emu;
        async move {
            sync_support::get(emu, &format!("/apis/batch/v1/namespaces/{ns}/jobs"))
                .await
                .and_then(|l| l["items"].as_array().map(Vec::len))
                .unwrap_or(0)
        }
    };
    assert!(
        sync_support::eventually(Duration::from_secs(20), || async {
            jobs("pre-post-sync").await == 0
        })
        .await,
        "HookSucceeded jobs left behind"
    );
    assert!(
        jobs("helm-hooks").await > 0,
        "before-hook-creation jobs deleted"
    );

    // A second bootstrap: everything converged, nothing written, no hook run.
    let before = writes(&emu);
    let second = run(&repo.root(), &emu.url(), &argv).await;
    assert!(second.status.success(), "{}", text(&second));
    let report = report_of(&second);
    assert_all_synced_and_healthy(&report, &second);
    assert_eq!(
        writes(&emu),
        before,
        "a converged re-run wrote\n{}",
        text(&second)
    );
    for app in [
        "example.pre-post-sync",
        "example.sync-waves",
        "example.helm-hooks",
    ] {
        assert!(
            hooks_of(&report, app)
                .iter()
                .all(|(_, _, reason)| reason == "nothingToSync"),
            "{app}: {:?}",
            hooks_of(&report, app)
        );
    }
}

// ------------------------------------------------------------ real cluster

/// Deletes what the examples created on the real cluster, even when the
/// test fails.
struct Cleanup<'a> {
    kc: &'a str,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let mut apps = vec!["applications".to_string()];
        apps.extend(EXAMPLES.iter().map(|e| format!("example.{e}")));
        let mut args = vec![
            "-n",
            "kubesync-system",
            "delete",
            "applications.kubesync.dev",
        ];
        args.extend(apps.iter().map(String::as_str));
        args.push("--ignore-not-found");
        let _ = kubectl(self.kc, &args);
        // Waited for: other real-cluster tests use some of these names
        // (guestbook) and cannot create objects in a terminating namespace.
        let mut args = vec![
            "delete",
            "namespace",
            "--ignore-not-found",
            "--timeout=180s",
        ];
        args.extend(EXAMPLES);
        let _ = kubectl(self.kc, &args);
    }
}

/// Waits (up to 3 min) until none of the examples' namespaces is still
/// being deleted by an earlier test.
fn wait_namespaces_not_terminating(kc: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    loop {
        let out = kubectl(kc, &["get", "namespaces", "-o", "json"]);
        let list: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        let terminating: Vec<&str> = list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|n| n.pointer("/status/phase").and_then(Value::as_str) == Some("Terminating"))
            .filter_map(|n| n.pointer("/metadata/name").and_then(Value::as_str))
            .filter(|n| EXAMPLES.contains(n))
            .collect();
        if terminating.is_empty() {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "namespaces still terminating after 3 min: {terminating:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The same, against a real control plane (`KUBESYNC_E2E_KUBECONFIG`).
#[test]
fn real_cluster_the_example_repository_ends_synced_and_healthy() {
    let Some(cluster) = from_env("real-cluster example repository") else {
        return;
    };
    let (kc, admin) = (cluster.kc, cluster.admin);
    let repo = ExampleRepo::new();
    wait_namespaces_not_terminating(&admin);
    let _lb = LoadBalancerProvider::start(&admin);
    let _gone = Cleanup { kc: &admin };
    let bootstrap = || {
        let mut args: Vec<String> = ["bootstrap", "-o", "json", "--timeout", "120s"]
            .map(String::from)
            .into();
        args.extend(repo.overrides());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        kubesync_on(&kc, &repo.root(), &args)
    };
    let first = bootstrap();
    assert!(first.status.success(), "{}", text(&first));
    assert_all_synced_and_healthy(&report_of(&first), &first);
    let second = bootstrap();
    assert!(second.status.success(), "{}", text(&second));
    let report = report_of(&second);
    assert_all_synced_and_healthy(&report, &second);
    // Nothing written the second time: every change is a no-op.
    for app in report["apps"].as_array().into_iter().flatten() {
        for c in app["changes"].as_array().into_iter().flatten() {
            let action = c["action"].as_str().unwrap_or("");
            assert!(
                ["unchanged", "skipped"].contains(&action),
                "{}: {c:#}\n{}",
                app["name"],
                text(&second)
            );
        }
    }
}
