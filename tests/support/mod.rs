//! Shared fixtures for the integration tests: starting an emulator,
//! waiting on a condition with a deadline, and running kubectl against it;
//! and one module for each real server a test talks to, so that each is
//! set up in one place.

#![allow(dead_code)]

pub mod chart_repo;
pub mod real_cluster;
pub mod receiver;
pub mod registry;
pub mod s3;
pub mod tls;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kubesync::emulator::{Emulator, EmulatorConfig, EmulatorHandle};

/// Starts an emulator on 127.0.0.1:0 with the default configuration but
/// without simulated controllers: these tests pin exact resourceVersions,
/// statuses and watch events, which controllers would change.
pub async fn start() -> EmulatorHandle {
    start_with(EmulatorConfig {
        simulation: kubesync::emulator::SimulationConfig {
            enabled: false,
            ..Default::default()
        },
        ..EmulatorConfig::default()
    })
    .await
}

pub async fn start_with(config: EmulatorConfig) -> EmulatorHandle {
    Emulator::start(config).await.expect("emulator starts")
}

/// A free TCP port on 127.0.0.1 (bound, read, released) for a server a
/// test starts as a child process.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Copies the directory tree `from` to `to` (created).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).unwrap_or_else(|e| panic!("read {}: {e}", from.display()))
    {
        let entry = entry.expect("dir entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// Polls `check` until it returns true; panics naming `what` after `timeout`.
pub async fn wait_for<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The API `Status` of a failed kube-rs call.
pub fn status(err: kube::Error) -> kube::core::Status {
    match err {
        kube::Error::Api(s) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// kubectl pointed at one emulator through a kubeconfig the emulator wrote,
/// with its own discovery cache.
pub struct Kubectl {
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
}

/// What a kubectl run printed.
pub struct Run {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Kubectl {
    /// `None` when kubectl is not installed (the test then returns early).
    pub fn new(handle: &EmulatorHandle) -> Option<Self> {
        if std::process::Command::new("kubectl")
            .arg("version")
            .arg("--client")
            .output()
            .is_err()
        {
            eprintln!("kubectl not found on PATH; skipping");
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let kubeconfig = dir.path().join("kubeconfig");
        handle
            .write_kubeconfig(&kubeconfig)
            .expect("kubeconfig written");
        Some(Kubectl { dir, kubeconfig })
    }

    /// Writes `content` to a file in the fixture directory; returns its path.
    pub fn file(&self, name: &str, content: &str) -> String {
        let p = self.dir.path().join(name);
        std::fs::write(&p, content).expect("write fixture");
        p.display().to_string()
    }

    /// Runs kubectl with `args` (plus kubeconfig, cache dir, request timeout).
    pub async fn run(&self, args: &[&str]) -> Run {
        let mut cmd = tokio::process::Command::new("kubectl");
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.dir.path().join("cache"))
            .arg("--request-timeout")
            .arg("20s")
            .args(args)
            .kill_on_drop(true);
        let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
            .await
            .unwrap_or_else(|_| panic!("kubectl {args:?} timed out"))
            .expect("kubectl runs");
        Run {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs kubectl and asserts it succeeded; returns stdout.
    pub async fn ok(&self, args: &[&str]) -> String {
        let r = self.run(args).await;
        assert!(r.ok, "kubectl {args:?} failed:\n{}{}", r.stdout, r.stderr);
        r.stdout
    }

    /// Runs kubectl and asserts it failed; returns stderr.
    pub async fn fails(&self, args: &[&str]) -> String {
        let r = self.run(args).await;
        assert!(
            !r.ok,
            "kubectl {args:?} unexpectedly succeeded:\n{}",
            r.stdout
        );
        r.stderr
    }
}
