//! Polls go on while a run is in flight: commits that land during a long
//! run are seen at once (the repository's revision on `/api/v1/apps` moves
//! while the run is still going) and queue exactly one more run; a
//! webhook's push during a run is polled at once as well.

mod controller_support;

use std::time::Duration;

use controller_support::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn commits_during_a_run_are_seen_at_once_and_one_run_follows() {
    let repo = GitRepo::new();
    cm_app(&repo, "a", "ns-a", "k: v1", "");
    repo.repo.app(
        "slow",
        "  destination: {namespace: ns-slow}\n  syncPolicy: {createNamespace: true}\n",
    );
    repo.repo
        .write("objects/slow/cm.yaml", &configmap("slow", "k: v1"));
    repo.commit("first");
    // Deployments become ready 3 s after they change: a run that applies
    // one lasts that long.
    let emu = emulator(kubesync::emulator::SimulationConfig {
        ready_delay: Duration::from_secs(3),
        ..fast_simulation()
    })
    .await;
    let h = start_ready(config(&repo, Duration::from_millis(200)), &emu).await;
    let runs_before = tree_runs(&h);

    repo.repo
        .write("objects/slow/deploy.yaml", &deployment("slow", "nginx:1"));
    let second = repo.commit("second: a slow run");
    wait_for(
        Duration::from_secs(20),
        "the slow run in flight",
        || async {
            let s = h.state().snapshot();
            s.last_run.as_ref().is_some_and(|r| {
                r.finished.is_none() && r.commit.as_deref() == Some(second.as_str())
            })
        },
    )
    .await;

    // Two commits land during the run.
    repo.repo
        .write("objects/a/cm.yaml", &configmap("a", "k: v3"));
    repo.commit("third");
    repo.repo
        .write("objects/a/cm.yaml", &configmap("a", "k: v4"));
    let fourth = repo.commit("fourth");
    wait_for(
        Duration::from_secs(2),
        "the fourth commit seen by a poll while the slow run is in flight",
        || async {
            let s = h.state().snapshot();
            let in_flight = s.last_run.as_ref().is_some_and(|r| {
                r.finished.is_none() && r.commit.as_deref() == Some(second.as_str())
            });
            assert!(
                in_flight,
                "the slow run ended before a poll saw the new commit: {:#?}",
                s.last_run
            );
            s.queued
                && s.repositories.iter().any(|r| {
                    r.fingerprint
                        .as_deref()
                        .is_some_and(|f| f.contains(&fourth))
                })
        },
    )
    .await;

    // One more run follows the slow one and applies the newest commit.
    wait_for(
        Duration::from_secs(30),
        "the fourth commit applied",
        || async { configmap_data(&emu, "ns-a", "a").await == Some(json!({"k": "v4"})) },
    )
    .await;
    quiesce(&emu, Duration::from_millis(800), Duration::from_secs(20)).await;
    let s = h.state().snapshot();
    assert_eq!(
        tree_runs(&h),
        runs_before + 2,
        "the slow run and one follow-up: {:#?}",
        s.last_run
    );
    assert_eq!(
        s.last_run.as_ref().and_then(|r| r.commit.as_deref()),
        Some(fourth.as_str())
    );
    h.shutdown(Duration::from_secs(10)).await;
}

/// Tree runs finished so far (the `run_latency_seconds` summary's count).
fn tree_runs(h: &kubesync::controller::ControllerHandle) -> u64 {
    h.state()
        .metrics
        .encode_text()
        .lines()
        .filter(|l| l.contains("run_latency_seconds_count"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// A webhook's push during a run is polled at once too (polls are hourly
/// here: only the webhook can have seen the commit).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_webhook_during_a_run_polls_at_once() {
    let repo = GitRepo::new();
    cm_app(&repo, "a", "ns-a", "k: v1", "");
    repo.commit("first");
    let emu = emulator(kubesync::emulator::SimulationConfig {
        ready_delay: Duration::from_secs(3),
        ..fast_simulation()
    })
    .await;
    let mut cfg = config(&repo, Duration::from_secs(3600));
    cfg.webhook_secret = Some(b"hush".to_vec());
    let h = start_ready(cfg, &emu).await;
    let addr = h.addr().expect("addr");
    let body = json!({"repository": {"clone_url": repo.file_url()}}).to_string();
    let push = || async {
        let sig = kubesync::controller::sign(body.as_bytes(), b"hush");
        let (status, text) = http(
            addr,
            "POST",
            "/api/v1/webhook",
            &[("X-Hub-Signature-256", sig)],
            body.as_bytes(),
        )
        .await;
        assert_eq!(status, 202, "{text}");
    };

    repo.repo
        .write("objects/a/deploy.yaml", &deployment("slow", "nginx:1"));
    let second = repo.commit("second: a slow run");
    push().await;
    wait_for(
        Duration::from_secs(20),
        "the slow run in flight",
        || async {
            h.state().snapshot().last_run.as_ref().is_some_and(|r| {
                r.finished.is_none() && r.commit.as_deref() == Some(second.as_str())
            })
        },
    )
    .await;
    repo.repo
        .write("objects/a/cm.yaml", &configmap("a", "k: v3"));
    let third = repo.commit("third");
    push().await;
    wait_for(
        Duration::from_secs(2),
        "the pushed commit seen while the slow run is in flight",
        || async {
            let s = h.state().snapshot();
            assert!(
                s.last_run.as_ref().is_some_and(|r| r.finished.is_none()),
                "the slow run ended before the webhook's poll: {:#?}",
                s.last_run
            );
            s.repositories
                .iter()
                .any(|r| r.fingerprint.as_deref().is_some_and(|f| f.contains(&third)))
        },
    )
    .await;
    wait_for(
        Duration::from_secs(30),
        "the pushed commit applied",
        || async { configmap_data(&emu, "ns-a", "a").await == Some(json!({"k": "v3"})) },
    )
    .await;
    h.shutdown(Duration::from_secs(10)).await;
}
