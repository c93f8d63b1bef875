//! `cargo bench --bench controller`: the controller (`kubesync run`, the
//! release binary as a child process) on a generated tree of 1,000 apps
//! against the emulator (in this process). Prints:
//!
//! - the initial full run (bootstrap) time;
//! - commit-to-applied latency p50/p95 when a signed webhook announces each
//!   commit (poll interval 1 h), and with a 1 s poll and no webhook;
//! - drift repair latency p50/p95 (selfHeal: an object edited by another
//!   field manager until kubesync restored it);
//! - steady-state RSS of the controller and the writes it made over a
//!   steady period (goal 0; its leader election's Lease renewals are
//!   counted apart), from the emulator's request journal;
//! - the time from SIGTERM to exit.
//!
//! - the RSS slope per app: a second, smaller tree
//!   (`KUBESYNC_BENCH_SLOPE_APPS` apps, same objects per app, its own
//!   emulator) is brought to steady state first; the slope is the RSS
//!   difference over the app difference (0 apps skips it).
//!
//! Knobs: `KUBESYNC_BENCH_APPS` (1000), `KUBESYNC_BENCH_OBJECTS` per app
//! (10), `KUBESYNC_BENCH_SAMPLES` (15), `KUBESYNC_BENCH_STEADY_SECS` (60),
//! `KUBESYNC_BENCH_SLOPE_APPS` (100), `KUBESYNC_BENCH_BIN` (the kubesync
//! binary to run; this build's by default).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kubesync::emulator::{Emulator, EmulatorConfig, EmulatorHandle, SimulationConfig};
use serde_json::{json, Value};

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn configmap(app: usize, i: usize, value: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: app-{app}-cm-{i}}}\ndata: {{value: \"{value}\"}}\n"
    )
}

/// The tree: root → apps/app-N.yaml → objects/app-N/cm-I.yaml.
fn generate(dir: &Path, apps: usize, objects: usize) {
    std::fs::create_dir_all(dir.join("apps")).unwrap();
    std::fs::write(
        dir.join("root.yaml"),
        "apiVersion: kubesync.dev/v1alpha1\nkind: Application\nmetadata: {name: root}\nspec:\n  tier: system\n  source: {path: apps}\n",
    )
    .unwrap();
    for a in 0..apps {
        std::fs::write(
            dir.join(format!("apps/app-{a}.yaml")),
            format!(
                "apiVersion: kubesync.dev/v1alpha1\nkind: Application\nmetadata: {{name: app-{a}}}\nspec:\n  source: {{path: objects/app-{a}}}\n  destination: {{namespace: ns-{}}}\n  syncPolicy: {{createNamespace: true, automated: {{prune: true, selfHeal: true}}}}\n",
                a % 50
            ),
        )
        .unwrap();
        let d = dir.join(format!("objects/app-{a}"));
        std::fs::create_dir_all(&d).unwrap();
        for i in 0..objects {
            std::fs::write(d.join(format!("cm-{i}.yaml")), configmap(a, i, "v0")).unwrap();
        }
    }
}

fn commit(dir: &Path, message: &str) -> String {
    let g = git2::Repository::open(dir).unwrap();
    let mut index = g.index().unwrap();
    index
        .add_all(["*"], git2::IndexAddOption::DEFAULT, None)
        .unwrap();
    index.write().unwrap();
    let tree = g.find_tree(index.write_tree().unwrap()).unwrap();
    let sig = git2::Signature::now("bench", "bench@example.com").unwrap();
    let parent = g.head().ok().and_then(|h| h.peel_to_commit().ok());
    let parents: Vec<&git2::Commit> = parent.iter().collect();
    g.commit(Some("HEAD"), &sig, &sig, message, &tree, &parents)
        .unwrap()
        .to_string()
}

struct Controller {
    child: Child,
    addr: SocketAddr,
}

fn start(root: &Path, server: &str, poll: &str, secret: &Path, cache: &Path) -> Controller {
    // `KUBESYNC_BENCH_BIN`: another build of kubesync (an A/B against
    // another branch with the same harness).
    let bin = std::env::var_os("KUBESYNC_BENCH_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_kubesync")));
    let mut child = Command::new(bin)
        .args([
            "run",
            "--listen",
            "127.0.0.1:0",
            "--poll-interval",
            poll,
            "--qps",
            "0",
        ])
        .arg("--root")
        .arg(root)
        .arg("--server")
        .arg(server)
        .arg("--webhook-secret-file")
        .arg(secret)
        .arg("--cache-dir")
        .arg(cache)
        .env_remove("KUBECONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kubesync run");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("kubesync run ended").unwrap();
        if let Some(a) = line.split("API on http://").nth(1) {
            break a.trim().parse().unwrap();
        }
    };
    // Keep draining stderr so the child never blocks on it.
    std::thread::spawn(move || for _ in lines {});
    Controller { child, addr }
}

fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (
        status,
        out.split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default(),
    )
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

async fn value_of(emu: &EmulatorHandle, ns: &str, name: &str) -> Option<String> {
    let api: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
        kube::Api::namespaced(emu.kube_client(), ns);
    api.get_opt(name)
        .await
        .ok()
        .flatten()
        .and_then(|c| c.data.and_then(|d| d.get("value").cloned()))
}

async fn wait_value(
    emu: &EmulatorHandle,
    ns: &str,
    name: &str,
    want: &str,
    limit: Duration,
) -> Duration {
    let t0 = Instant::now();
    while value_of(emu, ns, name).await.as_deref() != Some(want) {
        assert!(t0.elapsed() < limit, "{ns}/{name} never became {want}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    t0.elapsed()
}

fn pct(samples: &mut [Duration], p: f64) -> f64 {
    samples.sort();
    let i = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[i].as_secs_f64()
}

fn stop(mut c: Controller) -> Duration {
    let t0 = Instant::now();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(c.child.id() as libc::pid_t, libc::SIGTERM) };
    let st = c.child.wait().unwrap();
    assert!(st.success(), "kubesync run exited {st:?}");
    t0.elapsed()
}

/// kubesync's writes, its leader election's Lease renewals aside (those
/// are [`lease_renewals`]: one per retry period, by design).
fn kubesync_writes(emu: &EmulatorHandle) -> usize {
    emu.journal_writes()
        .iter()
        .filter(|w| w.user_agent.starts_with("kubesync") && !is_lease(&w.resource))
        .count()
}

fn is_lease(resource: &str) -> bool {
    resource.starts_with("leases.")
}

fn lease_renewals(emu: &EmulatorHandle) -> usize {
    emu.journal_writes()
        .iter()
        .filter(|w| w.user_agent.starts_with("kubesync") && is_lease(&w.resource))
        .count()
}

/// A repository with a generated tree of `apps` apps, committed.
fn make_repo(dir: &Path, apps: usize, objects: usize) {
    std::fs::create_dir_all(dir).unwrap();
    git2::Repository::init(dir).unwrap();
    generate(dir, apps, objects);
    commit(dir, "initial");
}

/// Peak RSS (KB) of a controller over `secs` seconds of steady state on a
/// tree of `apps` apps, against an emulator of its own.
async fn steady_rss(base: &Path, apps: usize, objects: usize, secs: u64) -> u64 {
    let repo = base.join(format!("slope-{apps}"));
    make_repo(&repo, apps, objects);
    let emu = Emulator::start(EmulatorConfig {
        simulation: SimulationConfig::default(),
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let secret = base.join("secret");
    let c = start(
        &repo.join("root.yaml"),
        &emu.url(),
        "1h",
        &secret,
        &base.join(format!("slope-cache-{apps}")),
    );
    while http(c.addr, "GET", "/readyz", &[], b"").0 != 200 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let t = Instant::now();
    let mut rss = 0;
    while t.elapsed() < Duration::from_secs(secs) {
        rss = rss.max(rss_kb(c.child.id()));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    stop(c);
    rss
}

fn main() {
    let apps = env_num("KUBESYNC_BENCH_APPS", 1000) as usize;
    let slope_apps = env_num("KUBESYNC_BENCH_SLOPE_APPS", 100) as usize;
    let objects = env_num("KUBESYNC_BENCH_OBJECTS", 10) as usize;
    let samples = env_num("KUBESYNC_BENCH_SAMPLES", 15) as usize;
    let steady = Duration::from_secs(env_num("KUBESYNC_BENCH_STEADY_SECS", 60));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    make_repo(&repo, apps, objects);
    let secret_file = tmp.path().join("secret");
    std::fs::write(&secret_file, "bench-secret\n").unwrap();
    let cache = tmp.path().join("cache");
    let root = repo.join("root.yaml");
    println!(
        "controller benchmark: {apps} apps x {objects} ConfigMaps, {samples} samples per latency"
    );

    rt.block_on(async {
        let small_rss = (slope_apps > 0 && slope_apps < apps).then_some(slope_apps);
        let small_rss = match small_rss {
            Some(n) => Some((n, steady_rss(tmp.path(), n, objects, steady.as_secs().min(10)).await)),
            None => None,
        };
        let emu = Emulator::start(EmulatorConfig {
            simulation: SimulationConfig::default(),
            ..EmulatorConfig::default()
        })
        .await
        .unwrap();
        let url = emu.url();

        // --- webhook-driven -------------------------------------------
        let t0 = Instant::now();
        let c = start(&root, &url, "1h", &secret_file, &cache);
        while http(c.addr, "GET", "/readyz", &[], b"").0 != 200 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        println!("initial full run (bootstrap of {} objects): {:.1} s", apps * objects, t0.elapsed().as_secs_f64());

        // Steady state: writes and RSS.
        tokio::time::sleep(Duration::from_secs(2)).await;
        emu.reset_requests();
        let t = Instant::now();
        let mut rss_max = 0;
        while t.elapsed() < steady {
            rss_max = rss_max.max(rss_kb(c.child.id()));
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let steady_requests = emu.journal().iter().filter(|w| w.user_agent.starts_with("kubesync")).count();
        println!(
            "steady state over {}s: RSS {:.1} MB (peak sampled), {} writes ({} Lease renewals aside), {} requests of any kind",
            steady.as_secs(),
            rss_max as f64 / 1024.0,
            kubesync_writes(&emu),
            lease_renewals(&emu),
            steady_requests
        );
        // Name the writes, so a non-zero count says what it is.
        for w in emu
            .journal_writes()
            .iter()
            .filter(|w| w.user_agent.starts_with("kubesync") && !is_lease(&w.resource))
            .take(5)
        {
            println!(
                "  steady write: {} {} {}/{}",
                w.verb,
                w.resource,
                w.namespace.as_deref().unwrap_or("-"),
                w.name.as_deref().unwrap_or("-")
            );
        }
        if let Some((n, small)) = small_rss {
            println!(
                "RSS slope: {:.1} KB per app ({n} apps: {:.1} MB, {apps} apps: {:.1} MB; {objects} objects per app)",
                (rss_max as f64 - small as f64) / (apps - n) as f64,
                small as f64 / 1024.0,
                rss_max as f64 / 1024.0
            );
        }
        // A forced full run when converged: writes?
        emu.reset_requests();
        let before = http(c.addr, "GET", "/api/v1/apps", &[], b"").1;
        let before: Value = serde_json::from_str(&before).unwrap();
        let t = Instant::now();
        http(c.addr, "POST", "/api/v1/forceRun", &[], b"");
        loop {
            let now: Value = serde_json::from_str(&http(c.addr, "GET", "/api/v1/apps", &[], b"").1).unwrap();
            if now["lastFullRun"] != before["lastFullRun"] {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        println!(
            "converged full run: {:.2} s, {} writes ({} Lease renewals aside)",
            t.elapsed().as_secs_f64(),
            kubesync_writes(&emu),
            lease_renewals(&emu)
        );

        let mut lat = Vec::new();
        for s in 0..samples {
            let app = (s * 37 + 11) % apps;
            let value = format!("w{s}");
            std::fs::write(repo.join(format!("objects/app-{app}/cm-0.yaml")), configmap(app, 0, &value)).unwrap();
            commit(&repo, &format!("webhook {s}"));
            let body = json!({"repository": {"clone_url": format!("file://{}", repo.display())}}).to_string();
            let sig = kubesync::controller::sign(body.as_bytes(), b"bench-secret");
            let t0 = Instant::now();
            let (st, text) = http(c.addr, "POST", "/api/v1/webhook", &[("X-Hub-Signature-256", &sig)], body.as_bytes());
            assert_eq!(st, 202, "{text}");
            wait_value(&emu, &format!("ns-{}", app % 50), &format!("app-{app}-cm-0"), &value, Duration::from_secs(60)).await;
            lat.push(t0.elapsed());
        }
        println!(
            "commit-to-applied via webhook: p50 {:.3} s, p95 {:.3} s (goal p50 <= 0.5 s, p95 <= 1.5 s)",
            pct(&mut lat, 0.5),
            pct(&mut lat, 0.95)
        );

        let mut heal = Vec::new();
        let edit = kube::api::PatchParams { field_manager: Some("kubectl-edit".into()), ..Default::default() };
        for s in 0..samples {
            let app = (s * 53 + 7) % apps;
            let ns = format!("ns-{}", app % 50);
            let api: kube::Api<k8s_openapi::api::core::v1::ConfigMap> = kube::Api::namespaced(emu.kube_client(), &ns);
            let name = format!("app-{app}-cm-{}", 1 % objects);
            let name = name.as_str();
            let want = value_of(&emu, &ns, name).await.unwrap_or_default();
            let t0 = Instant::now();
            api.patch(name, &edit, &kube::api::Patch::Merge(json!({"data": {"value": "drifted"}})))
                .await
                .unwrap();
            wait_value(&emu, &ns, name, &want, Duration::from_secs(30)).await;
            heal.push(t0.elapsed());
        }
        println!(
            "drift repair (selfHeal): p50 {:.3} s, p95 {:.3} s (goal p95 <= 2 s)",
            pct(&mut heal, 0.5),
            pct(&mut heal, 0.95)
        );
        println!("SIGTERM to exit: {:.2} s", stop(c).as_secs_f64());

        // --- 1 s poll ---------------------------------------------------
        let c = start(&root, &url, "1s", &secret_file, &cache);
        while http(c.addr, "GET", "/readyz", &[], b"").0 != 200 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut lat = Vec::new();
        for s in 0..samples {
            let app = (s * 41 + 3) % apps;
            let value = format!("p{s}");
            std::fs::write(repo.join(format!("objects/app-{app}/cm-0.yaml")), configmap(app, 0, &value)).unwrap();
            let t0 = Instant::now();
            commit(&repo, &format!("poll {s}"));
            wait_value(&emu, &format!("ns-{}", app % 50), &format!("app-{app}-cm-0"), &value, Duration::from_secs(60)).await;
            lat.push(t0.elapsed());
        }
        println!(
            "commit-to-applied via 1 s poll: p50 {:.3} s, p95 {:.3} s",
            pct(&mut lat, 0.5),
            pct(&mut lat, 0.95)
        );
        stop(c);
    });
}
