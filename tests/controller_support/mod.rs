//! Fixtures for the controller tests: a git repository (committed with
//! git2) holding a root app-of-apps, a controller started in-process
//! against an emulator, a tiny HTTP client for its API, and waits on
//! conditions with deadlines.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use kubesync::controller::{Controller, ControllerConfig, ControllerHandle, RootSource};
use kubesync::emulator::EmulatorHandle;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[path = "../sync_support/mod.rs"]
pub mod sync_support;
pub use sync_support::*;

/// A git repository with a root app-of-apps (see `sync_support::Repo`).
pub struct GitRepo {
    pub repo: Repo,
}

impl GitRepo {
    pub fn new() -> Self {
        let repo = Repo::new();
        let g = git2::Repository::init(repo.path()).expect("git init");
        let mut cfg = g.config().expect("config");
        cfg.set_str("user.name", "test").expect("user");
        cfg.set_str("user.email", "test@example.com")
            .expect("email");
        GitRepo { repo }
    }

    pub fn path(&self) -> &Path {
        self.repo.path()
    }

    /// Commits every file of the work tree; returns the commit id.
    pub fn commit(&self, message: &str) -> String {
        let g = git2::Repository::open(self.path()).expect("open");
        let mut index = g.index().expect("index");
        index
            .add_all(["*"], git2::IndexAddOption::DEFAULT, None)
            .expect("add");
        index.update_all(["*"], None).expect("update removed files");
        index.write().expect("write index");
        let tree = g
            .find_tree(index.write_tree().expect("tree"))
            .expect("tree");
        let sig = g.signature().expect("signature");
        let parent = g.head().ok().and_then(|h| h.peel_to_commit().ok());
        let parents: Vec<&git2::Commit> = parent.iter().collect();
        g.commit(Some("HEAD"), &sig, &sig, message, &tree, &parents)
            .expect("commit")
            .to_string()
    }

    pub fn file_url(&self) -> String {
        format!("file://{}", self.path().display())
    }
}

/// A controller config for `repo`'s root with fast polls and a server on
/// an ephemeral loopback port.
pub fn config(repo: &GitRepo, poll: Duration) -> ControllerConfig {
    let mut cfg = ControllerConfig::new(RootSource::Local {
        manifest: repo.repo.root(),
    });
    cfg.poll_interval = poll;
    cfg.listen = Some("127.0.0.1:0".parse().expect("addr"));
    cfg.sync.timeout = Some(Duration::from_secs(20));
    cfg
}

pub async fn client(emu: &EmulatorHandle) -> kubesync::cluster::ClusterClient {
    kubesync::cluster::ClusterClient::connect(kubesync::cluster::ClusterOptions::server(emu.url()))
        .await
        .expect("connect")
}

/// Starts a controller and waits for its first full run.
pub async fn start(
    cfg: ControllerConfig,
    emu: &EmulatorHandle,
    leader: Option<tokio::sync::watch::Receiver<bool>>,
) -> ControllerHandle {
    let h = Controller::start(cfg, client(emu).await, leader)
        .await
        .expect("start controller");
    h
}

pub async fn start_ready(cfg: ControllerConfig, emu: &EmulatorHandle) -> ControllerHandle {
    let h = start(cfg, emu, None).await;
    assert!(
        h.wait_ready(Duration::from_secs(60)).await,
        "not ready: {:#?}",
        h.state().snapshot()
    );
    h
}

/// One HTTP/1.1 request; returns status and body.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    s.write_all(body).await.expect("write body");
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.expect("read");
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// `GET /api/v1/apps` as JSON.
pub async fn apps(addr: SocketAddr) -> Value {
    let (status, body) = http(addr, "GET", "/api/v1/apps", &[], b"").await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).expect("json")
}

/// One app from `/api/v1/apps`.
pub async fn app_view(addr: SocketAddr, name: &str) -> Value {
    let all = apps(addr).await;
    all["apps"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["name"] == name).cloned())
        .unwrap_or_else(|| panic!("no app {name} in {all:#}"))
}

/// Waits until `f` holds, panicking with `what` after `timeout`.
pub async fn wait_for<F, Fut>(timeout: Duration, what: &str, f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    assert!(eventually(timeout, f).await, "timed out waiting for {what}");
}

/// Waits until the emulator served no request for `quiet` (watches that a
/// run leaves behind settle), up to `timeout`.
pub async fn quiesce(emu: &EmulatorHandle, quiet: Duration, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    let mut last = emu.requests().total;
    let mut since = Instant::now();
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = emu.requests().total;
        if now != last {
            last = now;
            since = Instant::now();
        } else if since.elapsed() >= quiet {
            return;
        }
    }
    panic!("the emulator never went quiet");
}

/// Polls of the root repository so far (from `/api/v1/apps`).
pub fn last_poll(h: &ControllerHandle) -> Option<chrono::DateTime<chrono::Utc>> {
    h.state()
        .snapshot()
        .repositories
        .iter()
        .filter_map(|r| r.last_poll)
        .max()
}

/// Waits for `n` more polls.
pub async fn polls(h: &ControllerHandle, n: usize) {
    for _ in 0..n {
        let before = last_poll(h);
        wait_for(Duration::from_secs(10), "a poll", || async {
            last_poll(h) != before
        })
        .await;
    }
}

/// The `data` of ConfigMap `ns/name`, if it exists.
pub async fn configmap_data(emu: &EmulatorHandle, ns: &str, name: &str) -> Option<Value> {
    get(emu, &format!("/api/v1/namespaces/{ns}/configmaps/{name}"))
        .await
        .map(|v| v["data"].clone())
}

/// An app rendering one ConfigMap `name` in namespace `ns` with `data`.
pub fn cm_app(repo: &GitRepo, app: &str, ns: &str, data: &str, policy: &str) {
    repo.repo.app(
        app,
        &format!(
            "  destination: {{namespace: {ns}}}\n  syncPolicy: {{createNamespace: true{policy}}}\n"
        ),
    );
    repo.repo
        .write(&format!("objects/{app}/cm.yaml"), &configmap(app, data));
}

/// A merge patch by another field manager (a person with kubectl edit).
pub async fn edit_configmap(emu: &EmulatorHandle, ns: &str, name: &str, patch: Value) {
    let api: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
        kube::Api::namespaced(emu.kube_client(), ns);
    let pp = kube::api::PatchParams {
        field_manager: Some("kubectl-edit".into()),
        ..Default::default()
    };
    api.patch(name, &pp, &kube::api::Patch::Merge(&patch))
        .await
        .expect("edit");
}

pub async fn delete_configmap(emu: &EmulatorHandle, ns: &str, name: &str) {
    let api: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
        kube::Api::namespaced(emu.kube_client(), ns);
    api.delete(name, &Default::default()).await.expect("delete");
}

/// The stderr of a `kubesync run` child, line by line, once it has said
/// where its API listens ("API on http://ADDR"): the address, the lines
/// still to come, and the lines read so far. Panics naming `who` with what
/// it said when no address comes within 60 s.
pub fn announced_api(
    child: &mut std::process::Child,
    who: &str,
) -> (SocketAddr, std::sync::mpsc::Receiver<String>, Vec<String>) {
    use std::io::{BufRead, BufReader};
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().expect("stderr piped");
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("{who}: no API address announced; stderr: {seen:#?}"));
        let addr = line
            .split("API on http://")
            .nth(1)
            .map(|a| a.trim().parse().expect("address"));
        seen.push(line);
        if let Some(addr) = addr {
            return (addr, rx, seen);
        }
    }
}
