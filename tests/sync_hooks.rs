//! Resource hooks, in-process against the emulator: Argo CD's example apps
//! `pre-post-sync`, `sync-waves` and `helm-hooks` (equivalents under
//! tests/fixtures/argocd-example-apps) end Synced and Healthy with their
//! hooks run in order — read from the emulator's lossless stream of
//! committed writes — and cleaned up per policy; a failing PreSync hook
//! stops the sync and runs the SyncFail hooks; a converged re-sync runs no
//! hooks and writes nothing. Plus one CLI run for the output.

mod sync_support;

use std::path::Path;

use kubesync::emulator::{EmulatorHandle, EventType, SimulationConfig, WatchEvent};
use kubesync::model::hook::HookPhase;
use kubesync::sync::{Action, AppOutcome, ChangeError, HookNotRun, Note, SkipReason, SyncReport};
use kubesync::{diff::SyncStatus, health::Health};
use serde_json::Value;
use sync_support::*;
use tokio::sync::mpsc::UnboundedReceiver;

const FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/argocd-example-apps"
);

/// Copies fixture directory `name` to `objects/<name>` of the repository.
fn copy_fixture(repo: &Repo, name: &str) {
    let from = Path::new(FIXTURES).join(name);
    for entry in std::fs::read_dir(&from).expect("fixture dir") {
        let entry = entry.expect("entry");
        let text = std::fs::read_to_string(entry.path()).expect("read fixture");
        let file = entry.file_name();
        repo.write(&format!("objects/{name}/{}", file.to_string_lossy()), &text);
    }
}

const SPEC: &str = "  destination: {namespace: NS}\n  syncPolicy: {createNamespace: true, automated: {prune: true}, wait: {timeout: 30s}}\n";

fn spec(ns: &str) -> String {
    SPEC.replace("NS", ns)
}

/// The moments of a sync that tell its order, from the emulator's
/// committed writes: `add <resource> <name>`, `complete <job>` (the write
/// that made it Complete), `ready <replicaset|deployment>`, `delete
/// <resource> <name>`.
fn timeline(rx: &mut UnboundedReceiver<std::sync::Arc<WatchEvent>>) -> Vec<String> {
    let mut out = Vec::new();
    while let Ok(e) = rx.try_recv() {
        let res = e.resource.resource.as_str();
        if !["jobs", "replicasets", "deployments", "services", "pods"].contains(&res) {
            continue;
        }
        let name = &e.name;
        match e.event_type {
            EventType::Added => out.push(format!("add {res} {name}")),
            EventType::Deleted => out.push(format!("delete {res} {name}")),
            EventType::Modified => {
                let before = e.previous.as_ref();
                if res == "jobs" && job_complete(&e.object) && !before.is_some_and(job_complete) {
                    out.push(format!("complete {name}"));
                }
                let ready = |o: &Value| {
                    o.pointer("/status/readyReplicas")
                        .and_then(Value::as_i64)
                        .unwrap_or(0)
                        >= 1
                };
                if (res == "replicasets" || res == "deployments")
                    && ready(&e.object)
                    && !before.is_some_and(ready)
                {
                    out.push(format!("ready {res} {name}"));
                }
            }
        }
    }
    out
}

fn job_complete(o: &Value) -> bool {
    o.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c.get("type").and_then(Value::as_str) == Some("Complete")
                    && c.get("status").and_then(Value::as_str) == Some("True")
            })
        })
}

/// Index of the first moment starting with `prefix` (panics showing the
/// whole timeline when absent).
fn at(timeline: &[String], prefix: &str) -> usize {
    timeline
        .iter()
        .position(|m| m.starts_with(prefix))
        .unwrap_or_else(|| panic!("no \"{prefix}\" in {timeline:#?}"))
}

fn assert_before(timeline: &[String], first: &str, then: &str) {
    assert!(
        at(timeline, first) < at(timeline, then),
        "expected \"{first}\" before \"{then}\" in {timeline:#?}"
    );
}

async fn names(emu: &EmulatorHandle, ns: &str, resource: &str) -> Vec<String> {
    let group = if resource == "jobs" {
        "/apis/batch/v1"
    } else if resource == "pods" {
        "/api/v1"
    } else {
        "/apis/apps/v1"
    };
    let list = get(emu, &format!("{group}/namespaces/{ns}/{resource}"))
        .await
        .expect("list");
    let mut out: Vec<String> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i.pointer("/metadata/name").and_then(Value::as_str))
        .map(str::to_string)
        .collect();
    out.sort();
    out
}

/// The names in the app's recorded inventory.
async fn inventory(emu: &EmulatorHandle, app: &str) -> Vec<String> {
    let obj = get(
        emu,
        &format!("/apis/kubesync.dev/v1alpha1/namespaces/kubesync-system/applications/{app}"),
    )
    .await
    .expect("application object");
    obj.pointer("/status/inventory")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| e.get("name").and_then(Value::as_str))
        .map(str::to_string)
        .collect()
}

/// The hook changes of `app` as (phase, name, action).
fn hook_changes(report: &SyncReport, name: &str) -> Vec<(HookPhase, String, Action)> {
    app(report, name)
        .changes
        .iter()
        .filter_map(|c| Some((c.hook?, c.object.name.clone(), c.action)))
        .collect()
}

fn assert_good(report: &SyncReport, name: &str) {
    let a = app(report, name);
    assert_eq!(a.outcome, AppOutcome::Succeeded, "{a:#?}");
    assert_eq!(a.sync, SyncStatus::Synced, "{a:#?}");
    assert_eq!(a.health.health, Health::Healthy, "{a:#?}");
}

fn kustomize_available() -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = kubesync::render::find_in_path("kustomize".as_ref(), &path)
        .or_else(|| kubesync::render::find_in_path("kubectl".as_ref(), &path));
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "kustomize or kubectl must be on PATH in CI (pre-post-sync is a kustomize app)"
        );
        eprintln!("skipped: neither kustomize nor kubectl is on PATH");
    }
    found.is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pre_post_sync_runs_its_jobs_around_the_app_and_deletes_them() {
    if !kustomize_available() {
        return;
    }
    let emu = emulator(fast_simulation()).await;
    let repo = Repo::new();
    copy_fixture(&repo, "kustomize-guestbook");
    copy_fixture(&repo, "pre-post-sync");
    repo.app("pre-post-sync", &spec("pps"));
    let mut rx = emu.cluster().listen();
    let report = sync_repo(&repo, &emu).await;
    assert_good(&report, "pre-post-sync");
    let tl = timeline(&mut rx);

    // PreSync Job finished before the Deployment was created; PostSync Job
    // created only once the Deployment was ready; both deleted on success.
    assert_before(&tl, "complete pre-post-sync-before", "add deployments");
    assert_before(&tl, "ready deployments", "add jobs pre-post-sync-after");
    assert_before(
        &tl,
        "complete pre-post-sync-after",
        "delete jobs pre-post-sync-after",
    );
    assert!(
        tl.contains(&"delete jobs pre-post-sync-before".to_string()),
        "{tl:#?}"
    );
    assert_eq!(names(&emu, "pps", "jobs").await, Vec::<String>::new());

    assert_eq!(
        hook_changes(&report, "pre-post-sync"),
        [
            (
                HookPhase::PreSync,
                "pre-post-sync-before".into(),
                Action::Created
            ),
            (
                HookPhase::PostSync,
                "pre-post-sync-after".into(),
                Action::Created
            ),
        ]
    );
    let a = app(&report, "pre-post-sync");
    let before = change_of(a, "pre-post-sync-before");
    assert_eq!(before.note, Some(Note::HookSucceeded { deleted: true }));
    // Hooks are not in the inventory: only the guestbook's two objects.
    let mut inv = inventory(&emu, "pre-post-sync").await;
    inv.sort();
    assert_eq!(
        inv,
        [
            "pre-post-sync-kustomize-guestbook-ui",
            "pre-post-sync-kustomize-guestbook-ui"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_waves_interleave_sync_hooks_and_a_converged_resync_runs_none() {
    let emu = emulator(fast_simulation()).await;
    let repo = Repo::new();
    copy_fixture(&repo, "sync-waves");
    repo.app("sync-waves", &spec("waves"));
    let mut rx = emu.cluster().listen();
    let report = sync_repo(&repo, &emu).await;
    assert_good(&report, "sync-waves");
    let tl = timeline(&mut rx);
    assert_before(
        &tl,
        "complete upgrade-sql-schema",
        "add replicasets backend",
    );
    assert_before(&tl, "ready replicasets backend", "add jobs maint-page-up");
    assert_before(&tl, "complete maint-page-up", "add replicasets frontend");
    assert_before(
        &tl,
        "ready replicasets frontend",
        "add jobs maint-page-down",
    );
    assert_before(&tl, "add services frontend", "add jobs maint-page-down");

    let hooks = hook_changes(&report, "sync-waves");
    assert_eq!(hooks.len(), 3, "{hooks:#?}");
    assert_eq!(hooks[0].0, HookPhase::PreSync);
    assert!(
        hooks[0].1.starts_with("upgrade-sql-schema")
            && hooks[0].1.len() > "upgrade-sql-schema".len(),
        "a generated name: {hooks:#?}"
    );
    assert_eq!(
        hooks[1..],
        [
            (HookPhase::Sync, "maint-page-up".into(), Action::Created),
            (HookPhase::Sync, "maint-page-down".into(), Action::Created),
        ]
    );
    // BeforeHookCreation (explicit or the default) keeps the hooks until the
    // next run; they are not in the inventory.
    let jobs = names(&emu, "waves", "jobs").await;
    assert_eq!(jobs.len(), 3, "{jobs:?}");
    let inv = inventory(&emu, "sync-waves").await;
    assert!(
        inv.iter()
            .all(|n| !n.starts_with("maint") && !n.starts_with("upgrade")),
        "{inv:?}"
    );
    assert_eq!(inv.len(), 4, "{inv:?}");

    // Converged: no hook runs, nothing is written.
    let writes_before = writes(&emu);
    let again = sync_repo(&repo, &emu).await;
    assert_good(&again, "sync-waves");
    let a = app(&again, "sync-waves");
    let hook_skips: Vec<_> = a.changes.iter().filter(|c| c.hook.is_some()).collect();
    assert_eq!(hook_skips.len(), 3, "{a:#?}");
    assert!(hook_skips.iter().all(|c| c.action == Action::Skipped
        && c.reason == Some(SkipReason::HookNotRun(HookNotRun::NothingToSync))));
    assert_eq!(
        writes(&emu),
        writes_before,
        "a converged re-sync writes nothing"
    );

    // A change in git runs the hooks again: the earlier generated Job and
    // the named ones are replaced (BeforeHookCreation), not piled up.
    let manifests = std::fs::read_to_string(repo.path().join("objects/sync-waves/manifests.yaml"))
        .expect("read");
    repo.write(
        "objects/sync-waves/manifests.yaml",
        &manifests.replacen("port: 8080", "port: 8081", 1).replacen(
            "targetPort: 8080",
            "targetPort: 8081",
            1,
        ),
    );
    let third = sync_repo(&repo, &emu).await;
    assert_good(&third, "sync-waves");
    let ran = hook_changes(&third, "sync-waves");
    assert!(
        ran.iter().all(|(_, _, a)| *a == Action::Created),
        "{ran:#?}"
    );
    let jobs_after = names(&emu, "waves", "jobs").await;
    assert_eq!(jobs_after.len(), 3, "{jobs_after:?}");
    let generated = |js: &[String]| {
        js.iter()
            .find(|j| j.starts_with("upgrade-sql-schema"))
            .cloned()
    };
    assert_ne!(
        generated(&jobs),
        generated(&jobs_after),
        "a new generated Job"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_hooks_map_to_phases_and_weights() {
    let emu = emulator(fast_simulation()).await;
    let repo = Repo::new();
    copy_fixture(&repo, "helm-hooks");
    repo.app("helm-hooks", &spec("helm-hooks"));
    let mut rx = emu.cluster().listen();
    let report = sync_repo(&repo, &emu).await;
    assert_good(&report, "helm-hooks");
    let tl = timeline(&mut rx);
    // pre-install by weight (-2 then -1), then the objects (the Service in
    // wave 2 by its helm.sh/hook-weight, as Argo CD reads it), then
    // post-install once healthy.
    assert_before(&tl, "complete upgrade-sql-schema", "add jobs maint-page-up");
    assert_before(&tl, "complete maint-page-up", "add replicasets frontend");
    assert_before(&tl, "ready replicasets frontend", "add services frontend");
    assert_before(&tl, "add services frontend", "add jobs maint-page-down");
    let phases: Vec<HookPhase> = hook_changes(&report, "helm-hooks")
        .iter()
        .map(|h| h.0)
        .collect();
    assert_eq!(
        phases,
        [HookPhase::PreSync, HookPhase::PreSync, HookPhase::PostSync]
    );
    assert_eq!(names(&emu, "helm-hooks", "jobs").await.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_presync_hook_stops_the_sync_and_runs_syncfail_hooks() {
    let emu = emulator(SimulationConfig {
        failing_jobs: vec!["migrate:bad".into()],
        ..fast_simulation()
    })
    .await;
    let repo = Repo::new();
    let job = |name: &str, phase: &str, policy: &str, image: &str| {
        format!(
            "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: {name}\n  annotations:\n    argocd.argoproj.io/hook: {phase}\n    argocd.argoproj.io/hook-delete-policy: {policy}\nspec:\n  backoffLimit: 0\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{{name: c, image: \"{image}\"}}]\n"
        )
    };
    repo.write(
        "objects/shop/migrate.yaml",
        &job("migrate", "PreSync", "HookFailed", "migrate:bad"),
    );
    repo.write(
        "objects/shop/cleanup.yaml",
        &job("cleanup", "SyncFail", "HookSucceeded", "alpine"),
    );
    repo.write(
        "objects/shop/smoke.yaml",
        &job("smoke", "PostSync", "HookSucceeded", "alpine"),
    );
    repo.write("objects/shop/web.yaml", &deployment("web", "nginx:1"));
    repo.app("shop", &spec("shop"));
    let report = sync_repo(&repo, &emu).await;
    let a = app(&report, "shop");
    let msg = failure(a);
    assert!(
        msg.contains("Job.batch shop/migrate") && msg.contains("BackoffLimitExceeded"),
        "{msg}"
    );
    let migrate = change_of(a, "migrate");
    assert_eq!(migrate.action, Action::Failed);
    assert!(
        matches!(
            &migrate.error,
            Some(ChangeError::Hook { deleted: true, .. })
        ),
        "HookFailed deletes it: {migrate:#?}"
    );
    let web = change_of(a, "web");
    assert_eq!(web.reason, Some(SkipReason::AfterFailure), "{web:#?}");
    let smoke = change_of(a, "smoke");
    assert_eq!(
        smoke.reason,
        Some(SkipReason::HookNotRun(HookNotRun::SyncFailed))
    );
    let cleanup = change_of(a, "cleanup");
    assert_eq!(cleanup.hook, Some(HookPhase::SyncFail));
    assert_eq!(cleanup.note, Some(Note::HookSucceeded { deleted: true }));
    assert!(get(&emu, "/apis/apps/v1/namespaces/shop/deployments/web")
        .await
        .is_none());
    assert_eq!(names(&emu, "shop", "jobs").await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_and_helm_test_hooks_are_never_applied_and_bare_pod_hooks_complete() {
    let emu = emulator(fast_simulation()).await;
    let repo = Repo::new();
    repo.write(
        "objects/misc/test-pod.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  generateName: misc-test-\n  annotations: {helm.sh/hook: test-success}\nspec:\n  restartPolicy: Never\n  containers: [{name: t, image: busybox}]\n",
    );
    repo.write(
        "objects/misc/skipped.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: skipped\n  annotations: {argocd.argoproj.io/hook: Skip}\ndata: {a: b}\n",
    );
    repo.write(
        "objects/misc/check.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: check\n  annotations: {argocd.argoproj.io/hook: PostSync}\nspec:\n  restartPolicy: Never\n  containers: [{name: t, image: busybox}]\n",
    );
    repo.write("objects/misc/cm.yaml", &configmap("settings", "a: b"));
    repo.app("misc", &spec("misc"));
    let report = sync_repo(&repo, &emu).await;
    assert_good(&report, "misc");
    let a = app(&report, "misc");
    let skipped = change_of(a, "skipped");
    assert_eq!(skipped.action, Action::Skipped);
    assert_eq!(skipped.reason_tag(), Some("hookSkip"));
    let test = change_of(a, "misc-test-");
    assert_eq!(test.reason_tag(), Some("helmTestHook"));
    let check = change_of(a, "check");
    assert_eq!(check.hook, Some(HookPhase::PostSync));
    assert_eq!(check.note, Some(Note::HookSucceeded { deleted: false }));
    let pod = get(&emu, "/api/v1/namespaces/misc/pods/check")
        .await
        .expect("pod kept");
    assert_eq!(
        pod.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded")
    );
    assert!(get(&emu, "/api/v1/namespaces/misc/configmaps/skipped")
        .await
        .is_none());
    assert_eq!(names(&emu, "misc", "pods").await, ["check"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generate_name_outside_a_hook_fails_the_app_naming_the_object() {
    let emu = emulator(fast_simulation()).await;
    let repo = Repo::new();
    repo.write(
        "objects/gen/job.yaml",
        "apiVersion: batch/v1\nkind: Job\nmetadata: {generateName: once-}\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{name: c, image: alpine}]\n",
    );
    repo.app("gen", &spec("gen"));
    let report = sync_repo(&repo, &emu).await;
    let msg = failure(app(&report, "gen"));
    assert!(
        msg.contains("objects/gen/job.yaml")
            && msg.contains("generateName \"once-\"")
            && msg.contains("only resource hooks"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_shows_hooks_in_text_and_json() {
    let emu = emulator(fast_simulation()).await;
    let repo = Repo::new();
    copy_fixture(&repo, "sync-waves");
    repo.app("sync-waves", &spec("cli-waves"));
    let out = run(&repo.root(), &emu.url(), &["bootstrap"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("\nhooks:\n"), "{}", text(&out));
    let line = stdout
        .lines()
        .find(|l| l.contains("Job.batch cli-waves/maint-page-up"))
        .unwrap_or_else(|| panic!("no hook line: {}", text(&out)));
    assert!(
        line.contains("Sync") && line.contains("hook succeeded"),
        "{line}"
    );

    // A converged re-run in JSON: every hook reported, not run, and why.
    let out = run(&repo.root(), &emu.url(), &["--output", "json", "bootstrap"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    let changes = v
        .pointer("/apps")
        .and_then(Value::as_array)
        .and_then(|apps| apps.iter().find(|a| a["name"] == "sync-waves"))
        .and_then(|a| a["changes"].as_array())
        .cloned()
        .expect("changes");
    let hooks: Vec<&Value> = changes.iter().filter(|c| c.get("hook").is_some()).collect();
    assert_eq!(hooks.len(), 3, "{changes:#?}");
    let pre = hooks
        .iter()
        .find(|c| c["hook"] == "PreSync")
        .expect("PreSync");
    assert_eq!(pre["action"], "skipped");
    assert_eq!(pre["reason"], "nothingToSync");
}
