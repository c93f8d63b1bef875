//! `kubesync run` through the binary: it serves its API, applies commits,
//! and stops with exit 0 soon after SIGTERM; bad flags exit 2.

mod controller_support;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use controller_support::*;
use serde_json::json;

struct Running {
    child: Child,
    addr: SocketAddr,
    stderr: mpsc::Receiver<String>,
}

/// Starts `kubesync run ARGS` and waits for the line naming its API address
/// (the caller waits for the child: `exit_within`).
#[allow(clippy::zombie_processes)]
fn spawn(args: &[&str], dir: &std::path::Path) -> Running {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kubesync"))
        .args(args)
        .args(["--listen", "127.0.0.1:0"])
        .env("PATH", path_with_helm())
        .env_remove("KUBECONFIG")
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kubesync run");
    let (addr, stderr, _) = announced_api(&mut child, "kubesync run");
    Running {
        child,
        addr,
        stderr,
    }
}

fn sigterm(child: &Child) {
    // SAFETY: kill(2) on the pid of a child this test started.
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(rc, 0);
}

/// Waits for the child's exit, up to `limit`.
fn exit_within(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(st) = child.try_wait().expect("wait") {
            return st;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("kubesync run did not exit within {limit:?} of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn run_applies_commits_and_stops_on_sigterm() {
    let repo = GitRepo::new();
    cm_app(&repo, "a", "ns-a", "k: v1", "");
    repo.commit("first");
    let emu = emulator(fast_simulation()).await;
    let root = repo.repo.root();
    let url = emu.url();
    let mut run = tokio::task::spawn_blocking({
        let dir = repo.path().to_path_buf();
        move || {
            spawn(
                &[
                    "run",
                    "--root",
                    root.to_str().expect("utf-8"),
                    "--server",
                    &url,
                    "--poll-interval",
                    "200ms",
                ],
                &dir,
            )
        }
    })
    .await
    .expect("join");
    let addr = run.addr;
    wait_for(Duration::from_secs(60), "ready", || async {
        http(addr, "GET", "/readyz", &[], b"").await.0 == 200
    })
    .await;
    assert_eq!(
        configmap_data(&emu, "ns-a", "a").await,
        Some(json!({"k": "v1"}))
    );
    repo.repo
        .write("objects/a/cm.yaml", &configmap("a", "k: v2"));
    repo.commit("second");
    wait_for(Duration::from_secs(30), "the commit applied", || async {
        configmap_data(&emu, "ns-a", "a").await == Some(json!({"k": "v2"}))
    })
    .await;

    sigterm(&run.child);
    let status = tokio::task::spawn_blocking(move || {
        let st = exit_within(&mut run.child, Duration::from_secs(10));
        let rest: Vec<String> = run.stderr.try_iter().collect();
        (st, rest)
    })
    .await
    .expect("join");
    assert_eq!(status.0.code(), Some(0), "{:#?}", status.1);
    assert!(
        status.1.iter().any(|l| l.contains("stopped")),
        "{:#?}",
        status.1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn run_emulator_is_a_local_demo() {
    let repo = GitRepo::new();
    cm_app(&repo, "demo", "demo", "k: v1", "");
    repo.commit("first");
    let root = repo.repo.root();
    let mut run = tokio::task::spawn_blocking({
        let dir = repo.path().to_path_buf();
        move || {
            spawn(
                &["run", "--emulator", "--root", root.to_str().expect("utf-8")],
                &dir,
            )
        }
    })
    .await
    .expect("join");
    let addr = run.addr;
    wait_for(Duration::from_secs(60), "ready", || async {
        http(addr, "GET", "/readyz", &[], b"").await.0 == 200
    })
    .await;
    let v = app_view(addr, "demo").await;
    assert_eq!(v["sync"], "Synced", "{v:#}");
    assert_eq!(v["health"], "Healthy", "{v:#}");
    sigterm(&run.child);
    let st =
        tokio::task::spawn_blocking(move || exit_within(&mut run.child, Duration::from_secs(10)))
            .await
            .expect("join");
    assert_eq!(st.code(), Some(0));
}

#[test]
fn an_unreadable_webhook_secret_is_a_usage_error() {
    let repo = GitRepo::new();
    repo.commit("first");
    let out = Command::new(env!("CARGO_BIN_EXE_kubesync"))
        .args([
            "run",
            "--emulator",
            "--listen",
            "127.0.0.1:0",
            "--webhook-secret-file",
            "/nonexistent/secret",
        ])
        .arg("--root")
        .arg(repo.repo.root())
        .env_remove("KUBECONFIG")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("/nonexistent/secret"),
        "{}",
        text(&out)
    );
}

#[test]
fn run_reads_the_settings_file_as_bootstrap_does() {
    let repo = GitRepo::new();
    repo.commit("first");
    let bad = repo.path().join("settings.yaml");
    std::fs::write(
        &bad,
        "ignoreDifferences: [{kind: ConfigMap, jsonPointers: 7}]\n",
    )
    .unwrap();
    // Spawned, not `output()`: a `run` that ignored --settings would run
    // on instead of exiting, and the test fails after its deadline.
    let mut child = Command::new(env!("CARGO_BIN_EXE_kubesync"))
        .args(["run", "--emulator", "--listen", "127.0.0.1:0", "--settings"])
        .arg(&bad)
        .arg("--root")
        .arg(repo.repo.root())
        .env_remove("KUBECONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run");
    let status = exit_within(&mut child, Duration::from_secs(30));
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut err)
        .expect("stderr");
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(err.contains("settings.yaml"), "{err}");
}
