//! `kubesync run` configured by nothing but one seed's environment
//! (KubeSync, kube-applier, git-sync-operator), through the binary against
//! the emulator: no root manifest, the seed's layout stands for it.

mod controller_support;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use controller_support::*;
use serde_json::json;

/// Every variable a seed or kubesync reads from the environment, removed so
/// the test's own environment cannot leak into the child.
const SEED_VARS: &[&str] = &[
    "REPO",
    "INTERVAL",
    "VERSION_MODE",
    "CMD",
    "YMLDIR",
    "REPOCREDS",
    "DRYRUN",
    "REPO_PATH",
    "LISTEN_PORT",
    "SERVER",
    "POLL_INTERVAL_SECONDS",
    "FULL_RUN_INTERVAL_SECONDS",
    "DIFF_URL_FORMAT",
    "DRY_RUN",
    "LABEL",
    "CONFIG_REPO",
    "CONFIG_BRANCH",
    "GIT_SYNC_INTERVAL",
    "MANAGED_NAMESPACES",
    "CLUSTER_NAME",
    "KUBECONFIG",
    "KUBESYNC_ROOT",
    "KUBESYNC_REPO",
    "KUBESYNC_REVISION",
    "KUBESYNC_POLL_INTERVAL",
    "KUBESYNC_FULL_RUN_INTERVAL",
    "KUBESYNC_LISTEN",
];

fn command(args: &[&str], env: &[(&str, String)], dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kubesync"));
    cmd.args(args)
        .current_dir(dir)
        .env("PATH", path_with_helm());
    for v in SEED_VARS {
        cmd.env_remove(v);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

struct Running {
    child: Child,
    addr: SocketAddr,
    stderr: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `kubesync run ARGS` with `env` (and `--listen 127.0.0.1:0`, which
/// wins over any LISTEN_PORT) and waits for its API address (Drop kills and
/// waits for it).
#[allow(clippy::zombie_processes)]
fn spawn(args: &[&str], env: &[(&str, String)], dir: &std::path::Path) -> Running {
    let mut child = command(args, env, dir)
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kubesync run");
    let (addr, stderr, seen) = announced_api(&mut child, "kubesync run");
    Running {
        child,
        addr,
        stderr,
        seen,
    }
}

impl Running {
    fn stderr(&mut self) -> String {
        self.seen.extend(self.stderr.try_iter());
        self.seen.join("\n")
    }
}

async fn ready(run: &mut Running) {
    let addr = run.addr;
    if !eventually(Duration::from_secs(60), || async {
        http(addr, "GET", "/readyz", &[], b"").await.0 == 200
    })
    .await
    {
        panic!("never ready: {}", run.stderr());
    }
}

fn branch_of(repo: &GitRepo) -> String {
    git2::Repository::open(repo.path())
        .expect("open")
        .head()
        .expect("head")
        .shorthand()
        .expect("branch")
        .to_string()
}

async fn namespace(emu: &kubesync::emulator::EmulatorHandle, name: &str, labels: Value) {
    let api: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(emu.kube_client());
    let pp = kube::api::PatchParams::apply("test").force();
    api.patch(
        name,
        &pp,
        &kube::api::Patch::Apply(json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": labels},
        })),
    )
    .await
    .expect("namespace");
}

use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kubesync_env_follows_its_repository_and_yml_chain() {
    let repo = GitRepo::new();
    repo.repo.write("README.md", "# config\n");
    // No CMD, no YMLDIR: kubernetes/ is applied (not the root's files).
    repo.repo.write(
        "kubernetes/cm.yaml",
        &configmap_in("ks", "default", "k: v1"),
    );
    repo.repo
        .write("stray.yaml", &configmap_in("stray", "default", "k: v"));
    repo.commit("first");
    let emu = emulator(fast_simulation()).await;
    let env = [
        ("REPO", repo.file_url()),
        ("VERSION_MODE", format!("branch:{}", branch_of(&repo))),
        ("INTERVAL", "1".into()),
    ];
    let url = emu.url();
    let dir = repo.path().to_path_buf();
    let mut run =
        tokio::task::spawn_blocking(move || spawn(&["run", "--server", &url], &env, &dir))
            .await
            .expect("join");
    ready(&mut run).await;
    assert_eq!(
        configmap_data(&emu, "default", "ks").await,
        Some(json!({"k": "v1"})),
        "{}",
        run.stderr()
    );
    assert_eq!(configmap_data(&emu, "default", "stray").await, None);
    // One app, named after the repository.
    let name: String = repo
        .path()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let v = apps(run.addr).await;
    let names: Vec<&str> = v["apps"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["name"].as_str())
        .collect();
    assert_eq!(names, [name.trim_matches('-')], "{v:#}");
    // A commit is applied within INTERVAL (1 s), with no root manifest.
    repo.repo.write(
        "kubernetes/cm.yaml",
        &configmap_in("ks", "default", "k: v2"),
    );
    repo.commit("second");
    wait_for(Duration::from_secs(30), "the commit applied", || async {
        configmap_data(&emu, "default", "ks").await == Some(json!({"k": "v2"}))
    })
    .await;
    assert!(run
        .stderr()
        .contains("configured by KubeSync's environment"));
}

/// The app name KubeSync's seed gives a repository: its directory's name.
fn app_name(repo: &GitRepo) -> String {
    let name: String = repo
        .path()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    name.trim_matches('-').to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kubesync_env_with_several_repos_makes_one_app_per_repository() {
    // The root repository applies kubernetes/; the second has no such
    // directory, so its root; each follows its own commits.
    let a = GitRepo::new();
    a.repo.write(
        "kubernetes/cm.yaml",
        &configmap_in("from-a", "default", "k: v1"),
    );
    a.repo
        .write("stray.yaml", &configmap_in("stray-a", "default", "k: v"));
    a.commit("first");
    let b = GitRepo::new();
    // Only the ConfigMap at its root (not the fixture's root manifest).
    std::fs::remove_file(b.repo.root()).expect("rm root.yaml");
    b.repo
        .write("cm.yaml", &configmap_in("from-b", "default", "k: v1"));
    b.commit("first");
    let emu = emulator(fast_simulation()).await;
    let env = [
        // Separated by a comma and whitespace, as a pod spec may wrap it.
        ("REPO", format!("{},\n  {}", a.file_url(), b.file_url())),
        ("VERSION_MODE", format!("branch:{}", branch_of(&a))),
        ("INTERVAL", "1".into()),
    ];
    let url = emu.url();
    let dir = a.path().to_path_buf();
    let mut run =
        tokio::task::spawn_blocking(move || spawn(&["run", "--server", &url], &env, &dir))
            .await
            .expect("join");
    ready(&mut run).await;
    for name in ["from-a", "from-b"] {
        assert_eq!(
            configmap_data(&emu, "default", name).await,
            Some(json!({"k": "v1"})),
            "{name}: {}",
            run.stderr()
        );
    }
    assert_eq!(configmap_data(&emu, "default", "stray-a").await, None);
    let v = apps(run.addr).await;
    let mut names: Vec<&str> = v["apps"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|x| x["name"].as_str())
        .collect();
    names.sort();
    let mut want = vec![app_name(&a), app_name(&b)];
    want.sort();
    assert_eq!(names, want, "{v:#}");
    // A commit to the second repository is applied within INTERVAL.
    b.repo
        .write("cm.yaml", &configmap_in("from-b", "default", "k: v2"));
    b.commit("second");
    wait_for(
        Duration::from_secs(30),
        "the second repo's commit applied",
        || async { configmap_data(&emu, "default", "from-b").await == Some(json!({"k": "v2"})) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kube_applier_env_syncs_level_one_directories_gated_by_label() {
    let repo = GitRepo::new();
    repo.repo
        .write("manifests/team-a/cm.yaml", &configmap("a", "k: v1"));
    repo.repo
        .write("manifests/team-b/cm.yaml", &configmap("b", "k: v1"));
    repo.repo
        .write("other/team-c/cm.yaml", &configmap("c", "k: v1"));
    // Per object: LABEL=off in the manifest keeps it out.
    repo.repo.write(
        "manifests/team-a/paused.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: paused\n  labels: {kube-applier: 'off'}\ndata: {k: v1}\n",
    );
    repo.repo
        .write("manifests/team-a/held.yaml", &configmap("held", "k: v1"));
    repo.commit("first");
    let emu = emulator(fast_simulation()).await;
    namespace(&emu, "team-a", json!({"kube-applier": "on"})).await;
    namespace(&emu, "team-b", json!({})).await;
    namespace(&emu, "team-c", json!({"kube-applier": "on"})).await;
    let env = [
        (
            "REPO_PATH",
            repo.path().join("manifests").display().to_string(),
        ),
        ("SERVER", emu.url()),
        ("LISTEN_PORT", "1".into()),
        ("POLL_INTERVAL_SECONDS", "1".into()),
        ("LABEL", "kube-applier".into()),
    ];
    let dir = repo.path().to_path_buf();
    let mut run = tokio::task::spawn_blocking(move || spawn(&["run"], &env, &dir))
        .await
        .expect("join");
    ready(&mut run).await;
    assert_eq!(
        configmap_data(&emu, "team-a", "a").await,
        Some(json!({"k": "v1"})),
        "{}",
        run.stderr()
    );
    assert_eq!(
        configmap_data(&emu, "team-a", "paused").await,
        None,
        "paused is labelled kube-applier=off in git"
    );
    assert_eq!(
        configmap_data(&emu, "team-b", "b").await,
        None,
        "team-b is not labelled kube-applier=on"
    );
    // Per object, live: held, labelled kube-applier=off in the cluster, is
    // left alone from then on.
    let cms: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
        kube::Api::namespaced(emu.kube_client(), "team-a");
    cms.patch(
        "held",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(json!({"metadata": {"labels": {"kube-applier": "off"}}})),
    )
    .await
    .expect("label held");
    assert_eq!(
        configmap_data(&emu, "team-c", "c").await,
        None,
        "outside REPO_PATH"
    );
    // Labelling the namespace enables it from the next run on (forceRun:
    // kube-applier's button).
    namespace(&emu, "team-b", json!({"kube-applier": "on"})).await;
    let (status, _) = http(run.addr, "POST", "/api/v1/forceRun", &[], b"").await;
    assert_eq!(status, 202);
    wait_for(Duration::from_secs(30), "team-b enabled", || async {
        configmap_data(&emu, "team-b", "b").await == Some(json!({"k": "v1"}))
    })
    .await;
    // A commit is applied within POLL_INTERVAL_SECONDS.
    repo.repo
        .write("manifests/team-a/cm.yaml", &configmap("a", "k: v2"));
    repo.repo
        .write("manifests/team-a/held.yaml", &configmap("held", "k: v2"));
    repo.commit("second");
    wait_for(Duration::from_secs(30), "the commit applied", || async {
        configmap_data(&emu, "team-a", "a").await == Some(json!({"k": "v2"}))
    })
    .await;
    assert_eq!(
        configmap_data(&emu, "team-a", "held").await,
        Some(json!({"k": "v1"})),
        "held is labelled kube-applier=off live"
    );
    assert_eq!(configmap_data(&emu, "team-a", "paused").await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn git_sync_operator_env_syncs_its_cluster_and_managed_namespaces() {
    let repo = GitRepo::new();
    repo.repo.write(
        "iowa-a/bedrock-dev/cm.yaml",
        &configmap("cfg", "where: iowa"),
    );
    repo.repo
        .write("bedrock-dev/cm.yaml", &configmap("cfg", "where: generic"));
    repo.repo
        .write("bedrock-stage/cm.yaml", &configmap("cfg", "where: generic"));
    repo.repo
        .write("iowa-a/unmanaged/cm.yaml", &configmap("cfg", "where: iowa"));
    repo.repo.write(
        "all-clusters/bedrock-dev/cm.yaml",
        &configmap("cfg", "where: all"),
    );
    repo.commit("first");
    let emu = emulator(fast_simulation()).await;
    for ns in ["bedrock-dev", "bedrock-stage", "unmanaged"] {
        namespace(&emu, ns, json!({})).await;
    }
    let env = [
        ("CONFIG_REPO", repo.file_url()),
        ("CONFIG_BRANCH", branch_of(&repo)),
        ("GIT_SYNC_INTERVAL", "1".into()),
        ("MANAGED_NAMESPACES", "bedrock-dev,bedrock-stage".into()),
    ];
    let url = emu.url();
    let dir = repo.path().to_path_buf();
    // --cluster-name reaches the controller's tree loads (the generator's
    // cluster directory).
    let mut run = tokio::task::spawn_blocking(move || {
        spawn(
            &["--cluster-name", "iowa-a", "run", "--server", &url],
            &env,
            &dir,
        )
    })
    .await
    .expect("join");
    ready(&mut run).await;
    assert_eq!(
        configmap_data(&emu, "bedrock-dev", "cfg").await,
        Some(json!({"where": "iowa"})),
        "{}",
        run.stderr()
    );
    assert_eq!(
        configmap_data(&emu, "bedrock-stage", "cfg").await,
        Some(json!({"where": "generic"}))
    );
    assert_eq!(configmap_data(&emu, "unmanaged", "cfg").await, None);
    repo.repo.write(
        "iowa-a/bedrock-dev/cm.yaml",
        &configmap("cfg", "where: iowa-2"),
    );
    repo.commit("second");
    wait_for(Duration::from_secs(30), "the commit applied", || async {
        configmap_data(&emu, "bedrock-dev", "cfg").await == Some(json!({"where": "iowa-2"}))
    })
    .await;
}

#[test]
fn two_seeds_at_once_is_a_usage_error_naming_both() {
    let repo = GitRepo::new();
    repo.commit("first");
    let out = command(
        &["run", "--emulator", "--listen", "127.0.0.1:0"],
        &[("REPO", repo.file_url()), ("CONFIG_REPO", repo.file_url())],
        repo.path(),
    )
    .output()
    .expect("run");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("REPO (KubeSync)") && err.contains("CONFIG_REPO (git-sync-operator)"),
        "{err}"
    );
    let out = command(
        &["run", "--emulator", "--listen", "127.0.0.1:0"],
        &[("REPO", repo.file_url()), ("INTERVAL", "5m".into())],
        repo.path(),
    )
    .output()
    .expect("run");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("INTERVAL=\"5m\""));
}

fn configmap_in(name: &str, ns: &str, data: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: {ns}}}\ndata: {{{data}}}\n")
}
