//! `PreDelete` and `PostDelete` hooks, in-process against the emulator: a
//! sync never applies them (reported `deleteHook`) and records them on the
//! app's Application object; when the app leaves the tree with the
//! resources finalizer, the PreDelete hooks run (and are waited for) before
//! any of its objects is deleted, the PostDelete hooks once they are gone,
//! each deleted per its policy; a failing PreDelete hook deletes nothing and
//! says why, and the next deletion (with the hook fixed) goes through.

mod sync_support;

use kubesync::emulator::{EmulatorHandle, EventType, SimulationConfig};
use kubesync::sync::SkipReason;
use serde_json::Value;
use sync_support::*;

fn argo_app(name: &str) -> String {
    format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: {name}\n  finalizers: [resources-finalizer.argocd.argoproj.io]\nspec:\n  project: default\n  source: {{path: objects/{name}}}\n  destination: {{namespace: {name}}}\n  syncPolicy:\n    automated: {{prune: true}}\n    syncOptions: [CreateNamespace=true]\n"
    )
}

fn hook_job(name: &str, phase: &str, policy: &str, image: &str) -> String {
    let policy = if policy.is_empty() {
        String::new()
    } else {
        format!("\n    argocd.argoproj.io/hook-delete-policy: {policy}")
    };
    format!(
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: {name}\n  annotations:\n    argocd.argoproj.io/hook: {phase}{policy}\nspec:\n  backoffLimit: 0\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{{name: c, image: \"{image}\"}}]\n"
    )
}

/// App `shop`: a ConfigMap, a Deployment, a PreDelete Job `drain`
/// (BeforeHookCreation and HookSucceeded, image `pre_image`) and a PostDelete Job `notify`
/// (default policy: BeforeHookCreation).
fn shop(repo: &Repo, pre_image: &str) {
    repo.write("apps/shop.yaml", &argo_app("shop"));
    repo.write("objects/shop/cm.yaml", &configmap("settings", "a: \"1\""));
    repo.write("objects/shop/web.yaml", &deployment("web", "nginx:1"));
    repo.write(
        "objects/shop/drain.yaml",
        &hook_job(
            "drain",
            "PreDelete",
            "BeforeHookCreation,HookSucceeded",
            pre_image,
        ),
    );
    repo.write(
        "objects/shop/notify.yaml",
        &hook_job("notify", "PostDelete", "", "notify:1"),
    );
}

async fn exists(emu: &EmulatorHandle, path: &str) -> bool {
    get(emu, path).await.is_some()
}

const CM: &str = "/api/v1/namespaces/shop/configmaps/settings";
const WEB: &str = "/apis/apps/v1/namespaces/shop/deployments/web";
const DRAIN: &str = "/apis/batch/v1/namespaces/shop/jobs/drain";
const NOTIFY: &str = "/apis/batch/v1/namespaces/shop/jobs/notify";
const APP: &str = "/apis/kubesync.dev/v1alpha1/namespaces/kubesync-system/applications/shop";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_hooks_run_around_the_deletion_of_an_app() {
    let emu = emulator(fast_simulation()).await;
    let repo = Repo::new();
    shop(&repo, "drain:1");
    let first = sync_repo(&repo, &emu).await;
    let a = app(&first, "shop");
    assert!(a.outcome.is_success(), "{a:#?}");
    // A sync never runs them.
    for name in ["drain", "notify"] {
        let c = change_of(a, name);
        assert!(matches!(c.reason, Some(SkipReason::Excluded(_))), "{c:#?}");
        assert_eq!(c.reason.as_ref().map(|r| r.tag()), Some("deleteHook"));
    }
    assert!(!exists(&emu, DRAIN).await && !exists(&emu, NOTIFY).await);
    let recorded = get(&emu, APP).await.expect("Application object");
    let hooks = recorded
        .pointer("/metadata/annotations/kubesync.dev~1delete-hooks")
        .and_then(Value::as_str)
        .expect("hooks recorded");
    assert!(
        hooks.contains("drain") && hooks.contains("notify"),
        "{hooks}"
    );
    // A converged re-sync writes nothing (the record is unchanged).
    let before = writes(&emu);
    sync_repo(&repo, &emu).await;
    assert_eq!(writes(&emu), before);

    // The app leaves the tree.
    let mut rx = emu.cluster().listen();
    repo.remove("apps/shop.yaml");
    let second = sync_repo(&repo, &emu).await;
    let removed = &second.removed;
    assert_eq!(removed.len(), 1, "{second:#?}");
    assert!(removed[0].error.is_none(), "{removed:#?}");
    assert!(removed[0].cascade);
    let mut order = Vec::new();
    while let Ok(e) = rx.try_recv() {
        let res = e.resource.resource.as_str();
        let complete = |o: &Value| {
            o.pointer("/status/conditions")
                .and_then(Value::as_array)
                .is_some_and(|c| {
                    c.iter()
                        .any(|c| c["type"] == "Complete" && c["status"] == "True")
                })
        };
        match e.event_type {
            EventType::Added if res == "jobs" => order.push(format!("add {}", e.name)),
            EventType::Modified
                if res == "jobs"
                    && complete(&e.object)
                    && !e.previous.as_ref().is_some_and(complete) =>
            {
                order.push(format!("complete {}", e.name))
            }
            EventType::Deleted if ["jobs", "configmaps", "deployments"].contains(&res) => {
                order.push(format!("delete {res} {}", e.name))
            }
            _ => {}
        }
    }
    let at = |what: &str| {
        order
            .iter()
            .position(|o| o == what)
            .unwrap_or_else(|| panic!("no {what:?} in {order:?}"))
    };
    assert!(at("add drain") < at("complete drain"), "{order:?}");
    assert!(
        at("complete drain") < at("delete configmaps settings"),
        "{order:?}"
    );
    assert!(
        at("complete drain") < at("delete deployments web"),
        "{order:?}"
    );
    assert!(at("delete deployments web") < at("add notify"), "{order:?}");
    assert!(
        at("complete drain") < at("delete jobs drain"),
        "HookSucceeded: {order:?}"
    );
    // Gone: the objects, the PreDelete hook (HookSucceeded), the
    // Application object; the PostDelete hook stays (BeforeHookCreation).
    assert!(!exists(&emu, CM).await && !exists(&emu, WEB).await);
    assert!(!exists(&emu, DRAIN).await);
    assert!(exists(&emu, NOTIFY).await);
    assert!(!exists(&emu, APP).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_predelete_hook_deletes_nothing() {
    let emu = emulator(SimulationConfig {
        failing_jobs: vec!["drain:bad".into()],
        ..fast_simulation()
    })
    .await;
    let repo = Repo::new();
    shop(&repo, "drain:bad");
    let first = sync_repo(&repo, &emu).await;
    assert!(app(&first, "shop").outcome.is_success(), "{first:#?}");

    repo.remove("apps/shop.yaml");
    let second = sync_repo(&repo, &emu).await;
    let removed = &second.removed;
    assert_eq!(removed.len(), 1, "{second:#?}");
    let error = removed[0].error.as_deref().unwrap_or("");
    assert!(
        error.contains("PreDelete hook Job.batch shop/drain failed: Job failed")
            && error.contains("nothing was deleted"),
        "{error}"
    );
    assert!(exists(&emu, CM).await && exists(&emu, WEB).await);
    assert!(exists(&emu, APP).await, "the Application object stays");
    assert!(!exists(&emu, NOTIFY).await, "no PostDelete hook ran");
    assert!(
        exists(&emu, DRAIN).await,
        "the failed hook stays (no HookFailed)"
    );

    // The CLI says so, and exits 1.
    let out = run(&repo.root(), &emu.url(), &["bootstrap"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("removed application shop")
            && text(&out).contains("PreDelete hook Job.batch shop/drain failed"),
        "{}",
        text(&out)
    );

    // Fixed in git (the app back with a good hook), then removed again.
    shop(&repo, "drain:2");
    let third = sync_repo(&repo, &emu).await;
    assert!(app(&third, "shop").outcome.is_success(), "{third:#?}");
    repo.remove("apps/shop.yaml");
    let fourth = sync_repo(&repo, &emu).await;
    assert!(
        fourth.removed.len() == 1 && fourth.removed[0].error.is_none(),
        "{fourth:#?}"
    );
    assert!(!exists(&emu, CM).await && !exists(&emu, APP).await);
    assert!(exists(&emu, NOTIFY).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runs_timeout_and_poll_interval_pace_a_deletion_hook() {
    // Jobs take 30 s: the PreDelete hook outlives the run's --timeout.
    let emu = emulator(SimulationConfig {
        ready_delay: std::time::Duration::from_secs(30),
        ..SimulationConfig::default()
    })
    .await;
    let repo = Repo::new();
    repo.write("apps/slow.yaml", &argo_app("slow"));
    repo.write("objects/slow/cm.yaml", &configmap("settings", "a: \"1\""));
    repo.write(
        "objects/slow/drain.yaml",
        &hook_job("drain", "PreDelete", "", "drain:1"),
    );
    let first = sync_repo(&repo, &emu).await;
    assert!(app(&first, "slow").outcome.is_success(), "{first:#?}");

    repo.remove("apps/slow.yaml");
    let root = repo.root();
    let tree = tokio::task::spawn_blocking(move || tree_of(&root))
        .await
        .expect("join");
    let graph = tree.graph().expect("graph");
    let client = kubesync::cluster::ClusterClient::connect(
        kubesync::cluster::ClusterOptions::server(emu.url()),
    )
    .await
    .expect("connect");
    let opts = kubesync::sync::SyncOptions {
        timeout: Some(std::time::Duration::from_secs(2)),
        poll_interval: std::time::Duration::from_millis(700),
        ..Default::default()
    };
    emu.reset_requests();
    let second = kubesync::sync::run(&tree, &graph, &client, &opts, &kubesync::sync::Quiet).await;
    let removed = &second.removed;
    assert_eq!(removed.len(), 1, "{second:#?}");
    let error = removed[0].error.as_deref().unwrap_or("");
    assert!(
        error.contains("PreDelete hook Job.batch slow/drain failed: not finished after 2s")
            && error.contains("nothing was deleted"),
        "{error}"
    );
    let slow = "/api/v1/namespaces/slow/configmaps/settings";
    assert!(exists(&emu, slow).await, "nothing deleted");
    // Read every 700 ms for 2 s (and once before it was created), not
    // every 200 ms.
    let reads = emu
        .journal()
        .iter()
        .filter(|e| {
            e.verb == "get" && e.resource == "jobs.batch" && e.name.as_deref() == Some("drain")
        })
        .count();
    assert!((2..=7).contains(&reads), "{reads} reads of the hook");
}
