//! Benchmark: bootstrap of a generated 200-app × 10-object tree against the
//! emulator, side by side with `kubectl apply --server-side -f` of the same
//! manifests app by app against a fresh emulator; then a no-op re-sync.
//!
//! Prints both wall times, their ratio, the no-op re-sync time and its write
//! count, and kubesync's peak resident memory (from `wait4`).
//!
//! Both emulators run as `kubesync emulator` child processes.
//!
//! Run: `cargo bench --bench sync_bootstrap` (needs `kubectl` on PATH).

mod common;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const APPS: usize = 200;

fn main() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let repo = tmp.path();
    generate(repo);
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_kubesync"));

    // Each emulator runs in its own process, so that this harness stays small
    // and the child's peak RSS (which Linux takes over from the forking
    // parent until exec) measures kubesync alone.
    let emu = EmulatorProcess::start(&bin, repo, "a");
    let (ks_wall, ks_rss, ok) = run_kubesync(&bin, repo, &emu.url);
    assert!(ok, "kubesync bootstrap failed");
    emu.reset_requests();
    let (noop_wall, noop_rss, ok) = run_kubesync(&bin, repo, &emu.url);
    assert!(ok, "kubesync re-sync failed");
    let counts = emu.requests();
    let verb = |v: &str| {
        counts
            .pointer(&format!("/byVerb/{v}"))
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0)
    };
    let writes: u64 = ["create", "update", "patch", "delete", "deletecollection"]
        .iter()
        .map(|v| verb(v))
        .sum();
    let reads = verb("get") + verb("list");
    drop(emu);

    // kubectl apply --server-side, app by app, into another fresh emulator.
    let emu2 = EmulatorProcess::start(&bin, repo, "b");
    let cache = repo.join("kubectl-cache");
    let start = Instant::now();
    for i in 0..APPS {
        let status = Command::new("kubectl")
            .args(["apply", "--server-side", "--field-manager", "bench", "-f"])
            .arg(repo.join(format!("kubectl/app-{i:03}.yaml")))
            .arg("--kubeconfig")
            .arg(&emu2.kubeconfig)
            .arg("--cache-dir")
            .arg(&cache)
            .stdout(Stdio::null())
            .status()
            .expect("run kubectl");
        assert!(status.success(), "kubectl apply app-{i:03}");
    }
    let kubectl_wall = start.elapsed();
    drop(emu2);

    println!("sync benchmark: {APPS} apps × 10 objects");
    println!(
        "{:<48} {:>10}",
        "kubesync bootstrap (ordered, health-gated)",
        secs(ks_wall)
    );
    println!(
        "{:<48} {:>10}",
        "kubectl apply --server-side, app by app",
        secs(kubectl_wall)
    );
    println!(
        "{:<48} {:>9.2}x",
        "ratio kubesync / kubectl",
        ks_wall.as_secs_f64() / kubectl_wall.as_secs_f64()
    );
    println!("{:<48} {:>10}", "no-op re-sync", secs(noop_wall));
    println!("{:<48} {:>10}", "no-op re-sync writes", writes);
    println!("{:<48} {:>10}", "no-op re-sync reads (get+list)", reads);
    println!(
        "{:<48} {:>7.1} MB",
        "kubesync peak RSS (bootstrap)",
        ks_rss as f64 / 1024.0
    );
    println!(
        "{:<48} {:>7.1} MB",
        "kubesync peak RSS (re-sync)",
        noop_rss as f64 / 1024.0
    );
}

/// `kubesync emulator` as a child process on a free loopback port.
struct EmulatorProcess {
    child: std::process::Child,
    url: String,
    addr: String,
    kubeconfig: PathBuf,
}

impl EmulatorProcess {
    fn start(bin: &Path, dir: &Path, tag: &str) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let addr = format!("127.0.0.1:{port}");
        let kubeconfig = dir.join(format!("kubeconfig-{tag}"));
        let child = Command::new(bin)
            .args([
                "emulator",
                "--listen",
                &addr,
                "--ready-delay-ms",
                "20",
                "--kubeconfig-out",
            ])
            .arg(&kubeconfig)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn emulator");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&addr).is_err() || !kubeconfig.exists() {
            assert!(Instant::now() < deadline, "emulator did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        EmulatorProcess {
            child,
            url: format!("http://{addr}"),
            addr,
            kubeconfig,
        }
    }

    fn http(&self, method: &str, path: &str) -> String {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(&self.addr).expect("connect");
        let _ = write!(s, "{method} {path} HTTP/1.0\r\nHost: {}\r\n\r\n", self.addr);
        let mut body = String::new();
        let _ = s.read_to_string(&mut body);
        body.split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default()
    }

    fn requests(&self) -> serde_json::Value {
        serde_json::from_str(&self.http("GET", "/emulator/requests")).expect("request counts")
    }

    fn reset_requests(&self) {
        self.http("DELETE", "/emulator/requests");
    }
}

impl Drop for EmulatorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn secs(d: Duration) -> String {
    format!("{:.3}s", d.as_secs_f64())
}

/// Runs `kubesync bootstrap` and returns (wall, peak RSS KiB, success).
fn run_kubesync(bin: &Path, repo: &Path, url: &str) -> (Duration, u64, bool) {
    let mut cmd = Command::new(bin);
    cmd.args([
        "bootstrap",
        "--root",
        "root.yaml",
        "--server",
        url,
        "--parallel",
        "8",
    ])
    .current_dir(repo)
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    let m = common::measure(cmd);
    (m.wall, m.peak_rss_kb, m.success)
}

fn write(path: &Path, text: &str) {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p).expect("mkdir");
    }
    std::fs::write(path, text).expect("write");
}

/// Ten objects for app `i` in namespace `ns` (namespace set only when `with_ns`).
fn objects(i: usize, ns: Option<&str>) -> String {
    let meta = |name: &str| match ns {
        Some(ns) => format!("metadata: {{name: {name}, namespace: {ns}}}"),
        None => format!("metadata: {{name: {name}}}"),
    };
    let mut s = String::new();
    for j in 0..4 {
        let _ = write!(
            s,
            "---\napiVersion: v1\nkind: ConfigMap\n{}\ndata: {{index: \"{j}\", app: \"{i}\"}}\n",
            meta(&format!("cfg-{j}"))
        );
    }
    let _ = write!(
        s,
        "---\napiVersion: v1\nkind: Secret\n{}\nstringData: {{token: t{i}}}\n",
        meta("creds")
    );
    let _ = write!(
        s,
        "---\napiVersion: v1\nkind: ServiceAccount\n{}\n",
        meta("runner")
    );
    let _ = write!(s, "---\napiVersion: rbac.authorization.k8s.io/v1\nkind: Role\n{}\nrules: [{{apiGroups: [\"\"], resources: [configmaps], verbs: [get]}}]\n", meta("reader"));
    let _ = write!(s, "---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\n{}\nroleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: reader}}\nsubjects: [{{kind: ServiceAccount, name: runner}}]\n", meta("reader"));
    let _ = write!(s, "---\napiVersion: v1\nkind: Service\n{}\nspec: {{selector: {{app: web}}, ports: [{{port: 80}}]}}\n", meta("web"));
    let _ = write!(s, "---\napiVersion: apps/v1\nkind: Deployment\n{}\nspec:\n  replicas: 1\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    spec: {{containers: [{{name: web, image: nginx:1.27-alpine}}]}}\n", meta("web"));
    s
}

fn generate(repo: &Path) {
    write(
        &repo.join("root.yaml"),
        "apiVersion: kubesync.dev/v1alpha1\nkind: Application\nmetadata: {name: root}\nspec:\n  tier: system\n  source: {path: apps}\n",
    );
    for i in 0..APPS {
        let name = format!("app-{i:03}");
        // A few levels of dependencies: every 10th app waits for the one 10 before it.
        let deps = if i >= 10 && i % 10 == 0 {
            format!("  dependsOn: [app-{:03}]\n", i - 10)
        } else {
            String::new()
        };
        write(
            &repo.join(format!("apps/{name}.yaml")),
            &format!(
                "apiVersion: kubesync.dev/v1alpha1\nkind: Application\nmetadata: {{name: {name}}}\nspec:\n  tier: app\n  source: {{path: objects/{name}}}\n  destination: {{namespace: {name}}}\n  syncPolicy: {{createNamespace: true, automated: {{prune: true}}}}\n{deps}"
            ),
        );
        write(
            &repo.join(format!("objects/{name}/objects.yaml")),
            &objects(i, None),
        );
        write(
            &repo.join(format!("kubectl/{name}.yaml")),
            &format!(
                "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {name}}}\n{}",
                objects(i, Some(&name))
            ),
        );
    }
}
