//! Benchmark: bootstrap of generated 200-app × 10-object trees, then a no-op
//! re-sync, side by side with one `kubectl apply --server-side -f all.yaml`
//! of the same objects, and with `kubectl apply --server-side -f APP.yaml`
//! app by app (200 kubectl processes one after another, as a script over
//! the app directories — KubeSync's and kube-applier's way — applies them).
//!
//! Two trees with the same objects (ConfigMaps, a Secret, RBAC, a Service
//! and a Deployment per app, each app in its own namespace):
//! - flat: every 10th app depends on the one 10 before it;
//! - chained: 20 chains of 10 apps, each app depending on the one before it
//!   in its chain (10 levels, each gated on a Deployment becoming ready).
//!
//! Against the emulator (default), each run gets a fresh `kubesync emulator`
//! child process with `--ready-delay-ms 20` (Deployments become ready 20 ms
//! after they are written), and kubesync runs with `--qps 0` (no client-side
//! rate limit: the figure measures the engine, not the limiter). Reads and
//! writes are counted by the emulator (`/emulator/requests`) and by kubesync
//! itself (its `-v` request line).
//!
//! Against a real cluster: set `KUBESYNC_BENCH_KUBECONFIG` to an admin
//! kubeconfig (e.g. the one `scripts/control-plane up` prints). Every run
//! uses fresh app and namespace names (a per-run tag), nothing is cleaned up
//! (use a disposable cluster), counts come from kubesync's own request line,
//! and kubesync runs with its default `--qps` unless `KUBESYNC_BENCH_QPS` is
//! set.
//!
//! Environment: `KUBESYNC_BENCH_BIN` (another kubesync binary),
//! `KUBESYNC_BENCH_PARALLEL` (passed as `--parallel`),
//! `KUBESYNC_BENCH_QPS` (passed as `--qps`), `KUBESYNC_BENCH_CASES`
//! (`flat,chained`), `KUBESYNC_BENCH_KUBECTL=0` skips kubectl,
//! `KUBESYNC_BENCH_KUBECTL_PER_APP=0` skips only the app-by-app kubectl.
//!
//! Run: `cargo bench --bench sync_bootstrap` (needs `kubectl` on PATH).

mod common;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const APPS: usize = 200;
const CHAIN: usize = 10;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Layout {
    Flat,
    Chained,
}

impl Layout {
    fn name(self) -> &'static str {
        match self {
            Layout::Flat => "flat",
            Layout::Chained => "chained",
        }
    }

    /// The app `i` depends on, if any.
    fn prerequisite(self, i: usize) -> Option<usize> {
        match self {
            Layout::Flat => (i >= CHAIN && i.is_multiple_of(CHAIN)).then(|| i - CHAIN),
            Layout::Chained => (!i.is_multiple_of(CHAIN)).then(|| i - 1),
        }
    }
}

/// Where the runs go: fresh emulators, or one real cluster.
enum Target {
    Emulator,
    Real { kubeconfig: PathBuf },
}

/// One measured run and what it sent.
struct Run {
    wall: Duration,
    rss_kb: u64,
    /// (reads, writes) as kubesync counted them (`-v` line), if printed.
    own: Option<(u64, u64)>,
    /// (gets, lists, watches, writes) as the emulator counted them.
    server: Option<(u64, u64, u64, u64)>,
}

fn main() {
    let tmp = tempfile::tempdir().expect("temp dir");
    // KUBESYNC_BENCH_BIN: another build (e.g. an older one, for before/after).
    let bin = std::env::var_os("KUBESYNC_BENCH_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_kubesync")));
    let target = match std::env::var_os("KUBESYNC_BENCH_KUBECONFIG") {
        Some(k) => Target::Real {
            kubeconfig: PathBuf::from(k),
        },
        None => Target::Emulator,
    };
    // Fresh names per run on a real cluster (it keeps what earlier runs made).
    let tag = match target {
        Target::Emulator => String::new(),
        Target::Real { .. } => format!(
            "{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() % 100_000)
                .unwrap_or(0)
        ),
    };
    let cases: Vec<Layout> = std::env::var("KUBESYNC_BENCH_CASES")
        .unwrap_or_else(|_| "flat,chained".into())
        .split(',')
        .filter_map(|c| match c.trim() {
            "flat" => Some(Layout::Flat),
            "chained" => Some(Layout::Chained),
            _ => None,
        })
        .collect();
    let mut extra: Vec<String> = Vec::new();
    if let Ok(p) = std::env::var("KUBESYNC_BENCH_PARALLEL") {
        extra.extend(["--parallel".into(), p]);
    }
    let qps = std::env::var("KUBESYNC_BENCH_QPS")
        .ok()
        .or_else(|| matches!(target, Target::Emulator).then(|| "0".into()));
    if let Some(q) = &qps {
        if supports(&bin, "--qps") {
            extra.extend(["--qps".into(), q.clone()]);
        }
    }

    let mut rows: Vec<(String, Run)> = Vec::new();
    for layout in &cases {
        let prefix = format!("{}{tag}", &layout.name()[..1]);
        let repo = tmp.path().join(layout.name());
        generate(&repo, *layout, &prefix);
        let (boot, noop) = bench_kubesync(&bin, &repo, &target, &extra);
        rows.push((format!("kubesync bootstrap, {}", layout.name()), boot));
        rows.push((format!("kubesync no-op re-sync, {}", layout.name()), noop));
    }
    let kubectl = (std::env::var("KUBESYNC_BENCH_KUBECTL").as_deref() != Ok("0")).then(|| {
        let repo = tmp.path().join("kubectl");
        let prefix = format!("k{tag}");
        write(&repo.join("all.yaml"), &all_yaml(&prefix));
        bench_kubectl(&bin, &repo, &target)
    });
    if let Some(k) = kubectl {
        rows.push(("kubectl apply --server-side -f all.yaml".into(), k));
    }
    let per_app = std::env::var("KUBESYNC_BENCH_KUBECTL").as_deref() != Ok("0")
        && std::env::var("KUBESYNC_BENCH_KUBECTL_PER_APP").as_deref() != Ok("0");
    if per_app {
        let repo = tmp.path().join("kubectl-per-app");
        let prefix = format!("q{tag}");
        let files: Vec<PathBuf> = (0..APPS)
            .map(|i| {
                let f = repo.join(format!("apps/{i:03}.yaml"));
                write(&f, &app_yaml(&prefix, i));
                f
            })
            .collect();
        rows.push((
            "kubectl apply --server-side, app by app".into(),
            bench_kubectl_per_app(&bin, &repo, &files, &target),
        ));
    }

    let on = match &target {
        Target::Emulator => "emulator, --ready-delay-ms 20".to_string(),
        Target::Real { kubeconfig } => format!("real cluster ({})", kubeconfig.display()),
    };
    println!("sync benchmark: {APPS} apps × 10 objects; {on}; kubesync flags: {extra:?}");
    println!(
        "{:<44} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "run", "wall", "RSS MB", "reads", "writes", "srv get", "srv list", "srv wtch", "srv wr"
    );
    let opt = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_else(|| "-".into());
    for (name, r) in &rows {
        println!(
            "{:<44} {:>9} {:>8.1} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
            name,
            secs(r.wall),
            r.rss_kb as f64 / 1024.0,
            opt(r.own.map(|o| o.0)),
            opt(r.own.map(|o| o.1)),
            opt(r.server.map(|s| s.0)),
            opt(r.server.map(|s| s.1)),
            opt(r.server.map(|s| s.2)),
            opt(r.server.map(|s| s.3)),
        );
    }
    for (baseline, label) in [
        ("kubectl apply --server-side -f all.yaml", "kubectl"),
        (
            "kubectl apply --server-side, app by app",
            "kubectl app by app",
        ),
    ] {
        let Some((_, k)) = rows.iter().find(|(n, _)| n == baseline) else {
            continue;
        };
        for (name, r) in rows.iter().filter(|(n, _)| n.contains("bootstrap")) {
            println!(
                "{:<60} {:>8.2}x",
                format!("ratio {name} / {label}"),
                r.wall.as_secs_f64() / k.wall.as_secs_f64()
            );
        }
    }
}

/// Whether `kubesync bootstrap --help` mentions `flag` (the bench also runs
/// older binaries, for before/after figures).
fn supports(bin: &Path, flag: &str) -> bool {
    Command::new(bin)
        .args(["bootstrap", "--help"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains(flag))
        .unwrap_or(false)
}

/// Bootstrap, then a no-op re-sync, of the tree in `repo`.
fn bench_kubesync(bin: &Path, repo: &Path, target: &Target, extra: &[String]) -> (Run, Run) {
    match target {
        Target::Emulator => {
            let emu = EmulatorProcess::start(bin, repo, "a");
            let args = ["--server".to_string(), emu.url.clone()];
            let mut boot = run_kubesync(bin, repo, &args, extra);
            boot.server = Some(emu.take_requests());
            let mut noop = run_kubesync(bin, repo, &args, extra);
            noop.server = Some(emu.take_requests());
            (boot, noop)
        }
        Target::Real { kubeconfig } => {
            let args = ["--kubeconfig".to_string(), kubeconfig.display().to_string()];
            let boot = run_kubesync(bin, repo, &args, extra);
            let noop = run_kubesync(bin, repo, &args, extra);
            (boot, noop)
        }
    }
}

/// One process of `kubectl apply --server-side -f all.yaml`.
fn bench_kubectl(bin: &Path, repo: &Path, target: &Target) -> Run {
    bench_kubectl_per_app(bin, repo, &[repo.join("all.yaml")], target)
}

/// `kubectl apply --server-side -f FILE` for each file in turn, against
/// one server: the summed wall and the largest peak RSS.
fn bench_kubectl_per_app(bin: &Path, repo: &Path, files: &[PathBuf], target: &Target) -> Run {
    let emu = matches!(target, Target::Emulator).then(|| EmulatorProcess::start(bin, repo, "k"));
    let kubeconfig = match (target, &emu) {
        (Target::Real { kubeconfig }, _) => kubeconfig.clone(),
        (_, Some(e)) => e.kubeconfig.clone(),
        (_, None) => unreachable!("an emulator target starts an emulator"),
    };
    let (mut wall, mut rss_kb) = (Duration::ZERO, 0);
    for file in files {
        let mut cmd = Command::new("kubectl");
        cmd.args(["apply", "--server-side", "--field-manager", "bench", "-f"])
            .arg(file)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .arg("--cache-dir")
            .arg(repo.join("kubectl-cache"))
            .stdout(Stdio::null());
        let m = common::measure(cmd);
        assert!(m.success, "kubectl apply -f {} failed", file.display());
        wall += m.wall;
        rss_kb = rss_kb.max(m.peak_rss_kb);
    }
    let server = emu.as_ref().map(EmulatorProcess::take_requests);
    Run {
        wall,
        rss_kb,
        own: None,
        server,
    }
}

/// Runs `kubesync bootstrap -v` and reads its request line from stderr.
fn run_kubesync(bin: &Path, repo: &Path, target_args: &[String], extra: &[String]) -> Run {
    let log = repo.join("kubesync.log");
    let stderr = std::fs::File::create(&log).expect("log file");
    let mut cmd = Command::new(bin);
    cmd.args(["bootstrap", "--root", "root.yaml", "-v"])
        .args(target_args)
        .args(extra)
        .env("RUST_LOG", "warn")
        .current_dir(repo)
        .stdout(Stdio::null())
        .stderr(stderr);
    let m = common::measure(cmd);
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(m.success, "kubesync bootstrap failed:\n{text}");
    // The line reads "… requests: N reads (…), M writes (…) …".
    let own = text
        .lines()
        .find(|l| l.contains("requests:"))
        .and_then(|l| {
            let n = |word: &str| -> Option<u64> {
                let before = l.split(word).next()?;
                before.split_whitespace().last()?.parse().ok()
            };
            Some((n(" reads")?, n(" writes")?))
        });
    Run {
        wall: m.wall,
        rss_kb: m.peak_rss_kb,
        own,
        server: None,
    }
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

    /// (gets, lists, watches, writes) since the last call; resets the counts.
    fn take_requests(&self) -> (u64, u64, u64, u64) {
        let counts: serde_json::Value =
            serde_json::from_str(&self.http("GET", "/emulator/requests")).expect("request counts");
        self.http("DELETE", "/emulator/requests");
        let verb = |v: &str| {
            counts
                .pointer(&format!("/byVerb/{v}"))
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(0)
        };
        let writes = ["create", "update", "patch", "delete", "deletecollection"]
            .iter()
            .map(|v| verb(v))
            .sum();
        (verb("get"), verb("list"), verb("watch"), writes)
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

/// Every app's namespace and objects in one stream, for one kubectl process.
fn all_yaml(prefix: &str) -> String {
    (0..APPS).map(|i| app_yaml(prefix, i)).collect()
}

/// App `i`'s namespace and objects, as kubectl applies one app.
fn app_yaml(prefix: &str, i: usize) -> String {
    let name = format!("{prefix}-{i:03}");
    format!(
        "---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: {name}}}\n{}",
        objects(i, Some(&name))
    )
}

/// The app-of-apps tree: a root and `APPS` apps named `PREFIX-NNN`, each
/// syncing its objects into its own namespace.
fn generate(repo: &Path, layout: Layout, prefix: &str) {
    write(
        &repo.join("root.yaml"),
        &format!("apiVersion: kubesync.dev/v1alpha1\nkind: Application\nmetadata: {{name: {prefix}-root}}\nspec:\n  tier: system\n  source: {{path: apps}}\n"),
    );
    for i in 0..APPS {
        let name = format!("{prefix}-{i:03}");
        let deps = match layout.prerequisite(i) {
            Some(p) => format!("  dependsOn: [{prefix}-{p:03}]\n"),
            None => String::new(),
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
    }
}
