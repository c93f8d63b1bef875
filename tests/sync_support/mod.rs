//! Shared fixtures for the sync tests: a temporary repository holding a root
//! app-of-apps, an in-process emulator per test, and the real `kubesync`
//! binary driven over HTTP against it.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use kubesync::emulator::{Emulator, EmulatorConfig, EmulatorHandle, SimulationConfig};
use serde_json::Value;

/// A repository with `root.yaml` rendering `apps/*.yaml`.
pub struct Repo {
    pub dir: tempfile::TempDir,
}

impl Repo {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let repo = Repo { dir };
        repo.write(
            "root.yaml",
            "apiVersion: kubesync.dev/v1alpha1\nkind: Application\nmetadata: {name: root}\nspec:\n  tier: system\n  source: {path: apps, directory: {recurse: false}}\n",
        );
        std::fs::create_dir_all(repo.path().join("apps")).expect("mkdir apps");
        repo
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, rel: &str, text: &str) {
        let p = self.path().join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(p, text).expect("write");
    }

    pub fn remove(&self, rel: &str) {
        std::fs::remove_file(self.path().join(rel)).expect("remove");
    }

    /// Adds an Application `name` rendering the directory `objects/<name>`.
    /// `spec_extra` is YAML indented by two spaces under `spec:`.
    pub fn app(&self, name: &str, spec_extra: &str) {
        self.write(
            &format!("apps/{name}.yaml"),
            &format!(
                "apiVersion: kubesync.dev/v1alpha1\nkind: Application\nmetadata: {{name: {name}}}\nspec:\n  source: {{path: objects/{name}}}\n{spec_extra}"
            ),
        );
    }

    pub fn root(&self) -> PathBuf {
        self.path().join("root.yaml")
    }
}

/// Simulation defaults for tests: fast readiness.
pub fn fast_simulation() -> SimulationConfig {
    SimulationConfig {
        ready_delay: Duration::from_millis(100),
        ..SimulationConfig::default()
    }
}

pub async fn emulator(sim: SimulationConfig) -> EmulatorHandle {
    Emulator::start(EmulatorConfig {
        simulation: sim,
        ..EmulatorConfig::default()
    })
    .await
    .expect("start emulator")
}

/// PATH with the project's helm wrapper when no real helm is installed.
pub fn path_with_helm() -> String {
    let path = std::env::var("PATH").unwrap_or_default();
    if std::env::split_paths(&path).any(|d| d.join("helm").is_file()) {
        return path;
    }
    let wrapper = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/helm");
    format!("{}:{path}", wrapper.display())
}

/// Runs `kubesync ARGS --root ROOT --server URL` (blocking; call from
/// `spawn_blocking` or a multi-threaded runtime).
pub fn kubesync(root: &Path, url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kubesync"))
        .args(args)
        .arg("--root")
        .arg(root)
        .arg("--server")
        .arg(url)
        .env("PATH", path_with_helm())
        .env_remove("KUBECONFIG")
        .current_dir(root.parent().unwrap_or(Path::new(".")))
        .output()
        .expect("run kubesync")
}

/// Runs `kubesync ARGS --root ROOT --kubeconfig KC` (blocking): the
/// real-cluster tier's way to drive the binary.
pub fn kubesync_on(kc: &str, root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kubesync"))
        .args(args)
        .arg("--root")
        .arg(root)
        .arg("--kubeconfig")
        .arg(kc)
        .env("PATH", path_with_helm())
        .env_remove("KUBECONFIG")
        .output()
        .expect("run kubesync")
}

pub async fn run(root: &Path, url: &str, args: &[&str]) -> Output {
    let root = root.to_path_buf();
    let url = url.to_string();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        kubesync(&root, &url, &a)
    })
    .await
    .expect("join")
}

pub fn text(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// GET a path from the emulator as JSON (None on 404).
pub async fn get(emu: &EmulatorHandle, path: &str) -> Option<Value> {
    let client = emu.kube_client();
    let req = http::Request::get(path).body(Vec::new()).expect("request");
    match client.request::<Value>(req).await {
        Ok(v) => Some(v),
        Err(kube::Error::Api(s)) if s.code == 404 => None,
        Err(e) => panic!("GET {path}: {e}"),
    }
}

/// Write requests (create, update, patch, delete) the emulator has served.
pub fn writes(emu: &EmulatorHandle) -> u64 {
    let c = emu.requests();
    ["create", "update", "patch", "delete", "deletecollection"]
        .iter()
        .map(|v| c.verb(v))
        .sum()
}

/// Polls `f` until it returns true or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if f().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn configmap(name: &str, data: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata: {{{data}}}\n")
}

pub fn deployment(name: &str, image: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}}}\nspec:\n  replicas: 1\n  selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata: {{labels: {{app: {name}}}}}\n    spec:\n      containers: [{{name: app, image: \"{image}\"}}]\n"
    )
}

/// Expands the tree of the root manifest `root` (in-process).
pub fn tree_of(root: &Path) -> kubesync::tree::AppTree {
    let roots = kubesync::model::load_root(root).expect("root manifest");
    let sources = kubesync::source::Sources::new(kubesync::source::SourceOptions {
        root_manifest: root.to_path_buf(),
        overrides: Vec::new(),
        cache_dir: None,
        ..Default::default()
    })
    .expect("sources");
    kubesync::tree::expand(
        roots,
        &sources,
        &kubesync::render::Renderer::new(),
        &kubesync::tree::ExpandOptions::default(),
    )
}

/// Renders the repository's tree and syncs it in-process against `emu`;
/// returns the change set.
pub async fn sync_repo(repo: &Repo, emu: &EmulatorHandle) -> kubesync::sync::SyncReport {
    sync_repo_with(repo, emu, &kubesync::sync::SyncOptions::default()).await
}

/// [`sync_repo`] with `opts`.
pub async fn sync_repo_with(
    repo: &Repo,
    emu: &EmulatorHandle,
    opts: &kubesync::sync::SyncOptions,
) -> kubesync::sync::SyncReport {
    let client = kubesync::cluster::ClusterClient::connect(
        kubesync::cluster::ClusterOptions::server(emu.url()),
    )
    .await
    .expect("connect");
    sync_with(repo, &client, opts).await
}

/// Renders the repository's tree and syncs it in-process through `client`
/// with `opts`; returns the change set.
pub async fn sync_with(
    repo: &Repo,
    client: &kubesync::cluster::ClusterClient,
    opts: &kubesync::sync::SyncOptions,
) -> kubesync::sync::SyncReport {
    let root = repo.root();
    let tree = tokio::task::spawn_blocking(move || tree_of(&root))
        .await
        .expect("join");
    let graph = tree.graph().expect("graph");
    kubesync::sync::run(&tree, &graph, client, opts, &kubesync::sync::Quiet).await
}

/// The report of app `name` (panics, showing the whole report, when absent).
pub fn app<'a>(
    report: &'a kubesync::sync::SyncReport,
    name: &str,
) -> &'a kubesync::sync::AppReport {
    report
        .get(&kubesync::model::AppName::new(name).expect("name"))
        .unwrap_or_else(|| panic!("no report for {name}: {report:#?}"))
}

/// The failure message of an app that must have failed.
pub fn failure(r: &kubesync::sync::AppReport) -> String {
    match &r.outcome {
        kubesync::sync::AppOutcome::Failed { failure } => failure.to_string(),
        other => panic!("{} did not fail: {other:?}: {r:#?}", r.name),
    }
}

/// The change for the object named `name` in app report `r`.
pub fn change_of<'a>(r: &'a kubesync::sync::AppReport, name: &str) -> &'a kubesync::sync::Change {
    r.changes
        .iter()
        .find(|c| c.object.name == name)
        .unwrap_or_else(|| panic!("no change for {name} in {}: {:#?}", r.name, r.changes))
}
