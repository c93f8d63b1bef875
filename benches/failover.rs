//! `cargo bench --bench failover`: leader failover of `kubesync run` (the
//! release binary, two replicas as child processes) against the emulator
//! (in this process), with the default lease settings (15 s lease, 10 s
//! renew deadline, 2 s retry period) unless overridden. Prints, per sample
//! and as min/median/max:
//!
//! - SIGTERM of the leader → its exit (goal ≤ 10 s);
//! - SIGTERM of the leader → the standby leading (the lease is released:
//!   about the retry period);
//! - kill -9 of the leader → the standby leading (the lease must expire:
//!   about the lease duration plus up to one retry period).
//!
//! "Leading" is read from each replica's `GET /api/v1/apps` (`leader`)
//! every 10 ms. Knobs: `KUBESYNC_BENCH_SAMPLES` (3),
//! `KUBESYNC_BENCH_LEASE` (`15s,10s,2s`: lease, renew, retry).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kubesync::emulator::{Emulator, EmulatorConfig};

struct Replica {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(id: &str, root: &Path, server: &str, lease: &[String]) -> Replica {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kubesync"))
        .args(["run", "--listen", "127.0.0.1:0", "--poll-interval", "1s"])
        .arg("--root")
        .arg(root)
        .args(["--server", server, "--leader-identity", id])
        .args(["--lease-duration", &lease[0]])
        .args(["--renew-deadline", &lease[1]])
        .args(["--retry-period", &lease[2]])
        .env_remove("KUBECONFIG")
        .env_remove("POD_NAME")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kubesync run");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let addr = loop {
        let line = lines.next().expect("kubesync run ended").expect("stderr");
        if let Some(a) = line.split("API on http://").nth(1) {
            break a.trim().parse().expect("address");
        }
    };
    // Keep draining stderr so the child never blocks on it.
    std::thread::spawn(move || for _ in lines {});
    Replica { child, addr }
}

/// Whether the replica says it leads (None: it does not answer).
fn leads(addr: SocketAddr) -> Option<bool> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET /api/v1/apps HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let body = out.split_once("\r\n\r\n")?.1;
    serde_json::from_str::<serde_json::Value>(body).ok()?["leader"].as_bool()
}

fn until_leading(r: &Replica, limit: Duration) -> Instant {
    let t0 = Instant::now();
    loop {
        if leads(r.addr) == Some(true) {
            return Instant::now();
        }
        assert!(t0.elapsed() < limit, "no leader within {limit:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn summary(what: &str, samples: &mut [Duration]) {
    samples.sort();
    let s = |d: Duration| format!("{:.2}", d.as_secs_f64());
    println!(
        "{what}: min {} s, median {} s, max {} s ({} samples)",
        s(samples[0]),
        s(samples[samples.len() / 2]),
        s(samples[samples.len() - 1]),
        samples.len()
    );
}

fn main() {
    let samples: usize = std::env::var("KUBESYNC_BENCH_SAMPLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1);
    let lease: Vec<String> = std::env::var("KUBESYNC_BENCH_LEASE")
        .unwrap_or_else(|_| "15s,10s,2s".into())
        .split(',')
        .map(|s| s.trim().to_string())
        .collect();
    assert_eq!(lease.len(), 3, "KUBESYNC_BENCH_LEASE: lease,renew,retry");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let emu = rt
        .block_on(Emulator::start(EmulatorConfig::default()))
        .expect("emulator");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("objects/a")).expect("mkdir");
    std::fs::write(
        dir.path().join("root.yaml"),
        "apiVersion: kubesync.dev/v1alpha1\nkind: Application\nmetadata: {name: a}\nspec:\n  source: {path: objects/a}\n  destination: {namespace: bench-failover}\n  syncPolicy: {createNamespace: true}\n",
    )
    .expect("root");
    std::fs::write(
        dir.path().join("objects/a/cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {k: v}\n",
    )
    .expect("cm");
    let root = dir.path().join("root.yaml");
    let url = emu.url();
    println!(
        "failover of kubesync run: lease {}, renew deadline {}, retry period {}",
        lease[0], lease[1], lease[2]
    );

    let mut n = 0;
    let mut next_id = || {
        n += 1;
        format!("bench-{n}")
    };
    let mut leader = start(&next_id(), &root, &url, &lease);
    until_leading(&leader, Duration::from_secs(60));
    let mut standby = start(&next_id(), &root, &url, &lease);
    let (mut exits, mut term, mut kill) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..samples {
        // SIGTERM: the lease is released.
        let t0 = Instant::now();
        // SAFETY: signalling our own child.
        unsafe { libc::kill(leader.child.id() as libc::pid_t, libc::SIGTERM) };
        // The exit comes long before the standby's next try (it leads
        // after the exit, so waiting for the exit first loses nothing).
        let st = leader.child.wait().expect("wait");
        let exit = t0.elapsed();
        assert!(st.success(), "kubesync run exited {st:?}");
        let led = until_leading(&standby, Duration::from_secs(60));
        exits.push(exit);
        term.push(led - t0);
        leader = std::mem::replace(&mut standby, start(&next_id(), &root, &url, &lease));
        while leads(standby.addr) != Some(false) {
            std::thread::sleep(Duration::from_millis(10));
        }
        // kill -9: the lease must expire.
        let t0 = Instant::now();
        leader.child.kill().expect("kill -9");
        let led = until_leading(&standby, Duration::from_secs(120));
        kill.push(led - t0);
        let _ = leader.child.wait();
        leader = std::mem::replace(&mut standby, start(&next_id(), &root, &url, &lease));
        while leads(standby.addr) != Some(false) {
            std::thread::sleep(Duration::from_millis(10));
        }
        println!(
            "sample {}: SIGTERM → exit {:.2} s, SIGTERM → standby leading {:.2} s, kill -9 → standby leading {:.2} s",
            i + 1,
            exits[i].as_secs_f64(),
            term[i].as_secs_f64(),
            kill[i].as_secs_f64()
        );
    }
    summary("SIGTERM → exit (goal <= 10 s)", &mut exits);
    summary("SIGTERM → standby leading (lease released)", &mut term);
    summary("kill -9 → standby leading (lease expired)", &mut kill);
    drop((leader, standby));
    drop(emu);
}
