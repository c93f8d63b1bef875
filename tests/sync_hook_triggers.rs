//! Hooks on request: a converged re-sync runs no hooks and writes nothing,
//! but `--run-hooks` (`SyncOptions::run_hooks`) runs them anyway — Argo
//! CD's behaviour on every sync, e.g. to re-run a migration Job — in
//! process and through the CLI (`kubesync sync APP --run-hooks`).

mod sync_support;

use std::path::Path;

use kubesync::model::hook::HookPhase;
use kubesync::sync::{Action, HookNotRun, SkipReason, SyncOptions};
use serde_json::Value;
use sync_support::*;

const FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/argocd-example-apps"
);

/// Argo CD's `pre-post-sync` example (a kustomize overlay of
/// `kustomize-guestbook` with a PreSync and a PostSync Job, both
/// HookSucceeded) as app `pre-post-sync` in namespace `pps`.
fn pre_post_sync_repo() -> Repo {
    let repo = Repo::new();
    for dir in ["pre-post-sync", "kustomize-guestbook"] {
        for entry in std::fs::read_dir(Path::new(FIXTURES).join(dir)).expect("fixture") {
            let entry = entry.expect("entry");
            let text = std::fs::read_to_string(entry.path()).expect("read");
            repo.write(
                &format!("objects/{dir}/{}", entry.file_name().to_string_lossy()),
                &text,
            );
        }
    }
    repo.app(
        "pre-post-sync",
        "  destination: {namespace: pps}\n  syncPolicy: {createNamespace: true, automated: {prune: true}, wait: {timeout: 30s}}\n",
    );
    repo
}

/// The hook changes of app `name`: (phase, object name, action).
fn hooks(report: &kubesync::sync::SyncReport, name: &str) -> Vec<(HookPhase, String, Action)> {
    app(report, name)
        .changes
        .iter()
        .filter_map(|c| Some((c.hook?, c.object.name.clone(), c.action)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_hooks_runs_the_hooks_of_a_converged_app() {
    let emu = emulator(fast_simulation()).await;
    let repo = pre_post_sync_repo();
    let first = sync_repo(&repo, &emu).await;
    assert!(
        app(&first, "pre-post-sync").outcome.is_success(),
        "{first:#?}"
    );

    // Converged: no hook, no write.
    let before = writes(&emu);
    let again = sync_repo(&repo, &emu).await;
    let a = app(&again, "pre-post-sync");
    assert!(a.outcome.is_success(), "{a:#?}");
    assert!(a
        .changes
        .iter()
        .filter(|c| c.hook.is_some())
        .all(|c| c.reason == Some(SkipReason::HookNotRun(HookNotRun::NothingToSync))));
    assert_eq!(writes(&emu), before);

    // On request: both hooks run, in their phases, and are deleted again
    // (HookSucceeded); the app's own objects are untouched.
    let mut rx = emu.cluster().listen();
    let forced = sync_repo_with(
        &repo,
        &emu,
        &SyncOptions {
            run_hooks: true,
            ..SyncOptions::default()
        },
    )
    .await;
    let a = app(&forced, "pre-post-sync");
    assert!(a.outcome.is_success(), "{a:#?}");
    assert_eq!(
        hooks(&forced, "pre-post-sync"),
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
        ],
        "{a:#?}"
    );
    assert!(a
        .changes
        .iter()
        .filter(|c| c.hook.is_none())
        .all(|c| c.action == Action::Unchanged));
    let mut added = Vec::new();
    while let Ok(e) = rx.try_recv() {
        if e.event_type == kubesync::emulator::EventType::Added && e.resource.resource == "jobs" {
            added.push(e.name.clone());
        }
    }
    assert_eq!(added, ["pre-post-sync-before", "pre-post-sync-after"]);
    assert!(
        eventually(std::time::Duration::from_secs(10), || async {
            get(&emu, "/apis/batch/v1/namespaces/pps/jobs")
                .await
                .and_then(|l| l["items"].as_array().map(Vec::is_empty))
                .unwrap_or(false)
        })
        .await,
        "HookSucceeded hooks deleted"
    );

    // A dry run never runs hooks, even when asked.
    let before = writes(&emu);
    let dry = sync_repo_with(
        &repo,
        &emu,
        &SyncOptions {
            run_hooks: true,
            dry_run: true,
            ..SyncOptions::default()
        },
    )
    .await;
    assert!(app(&dry, "pre-post-sync")
        .changes
        .iter()
        .filter(|c| c.hook.is_some())
        .all(|c| c.reason == Some(SkipReason::HookNotRun(HookNotRun::DryRun))));
    assert_eq!(writes(&emu), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_sync_run_hooks_reruns_them() {
    let emu = emulator(fast_simulation()).await;
    let repo = pre_post_sync_repo();
    let first = run(&repo.root(), &emu.url(), &["bootstrap"]).await;
    assert!(first.status.success(), "{}", text(&first));

    let reasons = |out: &std::process::Output| -> Vec<(String, String)> {
        let v: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("json: {e}\n{}", text(out)));
        v["apps"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|a| a["changes"].as_array().cloned().unwrap_or_default())
            .filter(|c| c.get("hook").is_some())
            .map(|c| {
                (
                    c["action"].as_str().unwrap_or("").to_string(),
                    c["reason"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    };
    let plain = run(
        &repo.root(),
        &emu.url(),
        &["sync", "pre-post-sync", "-o", "json"],
    )
    .await;
    assert!(plain.status.success(), "{}", text(&plain));
    let r = reasons(&plain);
    assert_eq!(r.len(), 2, "{}", text(&plain));
    assert!(r.iter().all(|(_, why)| why == "nothingToSync"), "{r:?}");

    let forced = run(
        &repo.root(),
        &emu.url(),
        &["sync", "pre-post-sync", "--run-hooks", "-o", "json"],
    )
    .await;
    assert!(forced.status.success(), "{}", text(&forced));
    let r = reasons(&forced);
    assert_eq!(r.len(), 2, "{}", text(&forced));
    assert!(
        r.iter().all(|(action, _)| action == "created"),
        "{r:?}\n{}",
        text(&forced)
    );

    // Text output: the hooks table shows them run.
    let forced = run(
        &repo.root(),
        &emu.url(),
        &["sync", "pre-post-sync", "--run-hooks"],
    )
    .await;
    assert!(forced.status.success(), "{}", text(&forced));
    let out = String::from_utf8_lossy(&forced.stdout);
    assert!(
        out.contains("PreSync") && out.contains("PostSync") && !out.contains("nothing to sync"),
        "{}",
        text(&forced)
    );
}
