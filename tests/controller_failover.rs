//! Two (then three) real `kubesync run` processes electing a leader on a
//! Lease in the emulator: only the leader syncs; on SIGTERM it exits 0
//! within 10 s and releases the lease, so a standby leads within about the
//! retry period and syncs the next commit; after a kill -9 a standby leads
//! once the lease expires. The emulator's request journal (each replica
//! names its identity in its User-Agent) shows that no replica wrote
//! anything but the Lease while another one was leading.
//!
//! Prints the measured failover times (`--nocapture` shows them).

mod controller_support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use controller_support::*;
use kubesync::emulator::JournalEntry;
use serde_json::json;

/// Lease settings of the test: the default retry period (2 s), a lease
/// short enough for the kill -9 case to stay quick.
const LEASE: &[&str] = &[
    "--lease-duration",
    "6s",
    "--renew-deadline",
    "4s",
    "--retry-period",
    "2s",
];

struct Replica {
    id: String,
    child: Child,
    addr: SocketAddr,
    stderr: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Replica {
    fn start(id: &str, root: &std::path::Path, url: &str, dir: &std::path::Path) -> Replica {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kubesync"))
            .args(["run", "--root"])
            .arg(root)
            .args(["--server", url, "--poll-interval", "200ms"])
            .args(["--listen", "127.0.0.1:0", "--leader-identity", id])
            .args(LEASE)
            .env("PATH", path_with_helm())
            .env_remove("KUBECONFIG")
            .env_remove("POD_NAME")
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn kubesync run");
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().expect("stderr");
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
                .unwrap_or_else(|_| panic!("{id}: no API address announced; stderr: {seen:#?}"));
            if let Some(a) = line.split("API on http://").nth(1) {
                let addr = a.trim().parse().expect("address");
                seen.push(line);
                return Replica {
                    id: id.to_string(),
                    child,
                    addr,
                    stderr: rx,
                    seen,
                };
            }
            seen.push(line);
        }
    }

    fn stderr(&mut self) -> String {
        self.seen.extend(self.stderr.try_iter());
        format!("{}'s stderr:\n{}", self.id, self.seen.join("\n"))
    }

    fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill(2) on the pid of a child this test started.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, sig) };
        assert_eq!(rc, 0);
    }
}

/// Whether the replica at `addr` says it leads (None: it does not answer).
async fn leads(addr: SocketAddr) -> Option<bool> {
    let conn = tokio::time::timeout(
        Duration::from_secs(2),
        http(addr, "GET", "/api/v1/apps", &[], b""),
    )
    .await
    .ok()?;
    let v: serde_json::Value = serde_json::from_str(&conn.1).ok()?;
    v["leader"].as_bool()
}

/// Waits until the replica at `addr` leads; returns when it was seen leading.
async fn until_leading(addr: SocketAddr, within: Duration, what: &str) -> Instant {
    let deadline = Instant::now() + within;
    loop {
        if leads(addr).await == Some(true) {
            return Instant::now();
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not leading within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn at(e: &JournalEntry) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(&e.time)
        .expect("journal time")
        .with_timezone(&Utc)
}

fn by(e: &JournalEntry, id: &str) -> bool {
    e.user_agent.ends_with(&format!("({id})"))
}

fn is_lease(e: &JournalEntry) -> bool {
    e.resource.starts_with("leases")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failover_after_sigterm_and_kill_9_without_a_write_by_the_deposed_leader() {
    let repo = GitRepo::new();
    cm_app(&repo, "a", "ns-a", "k: v1", "");
    repo.commit("first");
    let emu = emulator(fast_simulation()).await;
    let root = repo.repo.root();
    let url = emu.url();
    let dir = repo.path().to_path_buf();

    let start = |id: &'static str| {
        let (root, url, dir) = (root.clone(), url.clone(), dir.clone());
        tokio::task::spawn_blocking(move || Replica::start(id, &root, &url, &dir))
    };
    let mut r1 = start("r1").await.expect("join");
    // r1 leads first (it is alone), then r2 joins as a standby.
    until_leading(r1.addr, Duration::from_secs(30), "r1").await;
    let mut r2 = start("r2").await.expect("join");
    wait_for(Duration::from_secs(60), "r1's first sync", || async {
        configmap_data(&emu, "ns-a", "a").await == Some(json!({"k": "v1"}))
    })
    .await;
    assert_eq!(leads(r2.addr).await, Some(false), "{}", r2.stderr());

    // The leader syncs a commit.
    repo.repo
        .write("objects/a/cm.yaml", &configmap("a", "k: v2"));
    repo.commit("second");
    wait_for(
        Duration::from_secs(30),
        "the second commit applied",
        || async { configmap_data(&emu, "ns-a", "a").await == Some(json!({"k": "v2"})) },
    )
    .await;

    // SIGTERM the leader: it exits 0 within 10 s, releasing the lease.
    let term_at = Utc::now();
    let termed = Instant::now();
    r1.signal(libc::SIGTERM);
    let r2_addr = r2.addr;
    let r2_leads = tokio::spawn(async move {
        until_leading(r2_addr, Duration::from_secs(20), "r2 after SIGTERM").await
    });
    let (status, exited) = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(st) = r1.child.try_wait().expect("wait") {
                return (st, Instant::now(), r1);
            }
            assert!(
                Instant::now() < deadline,
                "r1 did not exit within 10 s of SIGTERM: {}",
                r1.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    })
    .await
    .map(|(st, t, mut r1)| ((st, r1.stderr()), t))
    .expect("join");
    assert_eq!(status.0.code(), Some(0), "{}", status.1);
    let r1_gone = Utc::now();
    let r2_led = r2_leads.await.expect("join");
    let sigterm_exit = exited - termed;
    let sigterm_failover = r2_led - termed;

    // The new leader syncs the next commit; r3 joins as the standby.
    repo.repo
        .write("objects/a/cm.yaml", &configmap("a", "k: v3"));
    repo.commit("third");
    wait_for(
        Duration::from_secs(30),
        "the third commit applied by r2",
        || async { configmap_data(&emu, "ns-a", "a").await == Some(json!({"k": "v3"})) },
    )
    .await;
    let mut r3 = start("r3").await.expect("join");
    let r3_addr = r3.addr;
    wait_for(Duration::from_secs(30), "r3 up as a standby", || async {
        leads(r3_addr).await == Some(false)
    })
    .await;

    // kill -9 the leader: r3 takes over once the lease expires.
    let killed_at = Utc::now();
    let killed = Instant::now();
    r2.signal(libc::SIGKILL);
    let r3_led = until_leading(r3.addr, Duration::from_secs(30), "r3 after kill -9").await;
    let kill_failover = r3_led - killed;
    let _ = r2.child.wait();
    repo.repo
        .write("objects/a/cm.yaml", &configmap("a", "k: v4"));
    repo.commit("fourth");
    wait_for(
        Duration::from_secs(30),
        "the fourth commit applied by r3",
        || async { configmap_data(&emu, "ns-a", "a").await == Some(json!({"k": "v4"})) },
    )
    .await;

    println!(
        "failover: SIGTERM → exit {:.2}s, SIGTERM → standby leading {:.2}s; kill -9 → standby leading {:.2}s (lease 6s, renew 4s, retry 2s)",
        sigterm_exit.as_secs_f64(),
        sigterm_failover.as_secs_f64(),
        kill_failover.as_secs_f64()
    );
    assert!(
        sigterm_failover < Duration::from_secs(6),
        "after a release the standby should lead within about the retry period, not the lease duration: {sigterm_failover:?}"
    );
    assert!(
        kill_failover >= Duration::from_secs(3),
        "after kill -9 the lease must expire first: {kill_failover:?}"
    );

    // The journal: every replica names itself; non-Lease writes never
    // interleave (one writer at a time), the deposed leaders wrote nothing
    // after losing the lease, and standbys wrote nothing but the Lease.
    let writes: Vec<JournalEntry> = emu
        .journal_writes()
        .into_iter()
        .filter(|e| e.user_agent.starts_with("kubesync/"))
        .collect();
    for id in ["r1", "r2", "r3"] {
        assert!(
            writes.iter().any(|e| by(e, id)),
            "no write by {id} in the journal: {writes:#?}"
        );
    }
    let r1_last = writes.iter().filter(|e| by(e, "r1")).last().expect("r1");
    assert!(
        is_lease(r1_last),
        "r1's last write must be the lease release, after its last status write: {r1_last:?}"
    );
    assert!(at(r1_last) <= r1_gone);
    let r1_release = at(r1_last);
    for e in writes.iter().filter(|e| !is_lease(e)) {
        if by(e, "r1") {
            assert!(
                at(e) <= r1_release,
                "r1 wrote after releasing the lease: {e:?}"
            );
        } else if by(e, "r2") {
            assert!(
                at(e) >= r1_release && at(e) <= killed_at,
                "r2 wrote while not leading: {e:?} (r1 released at {r1_release}, r2 killed at {killed_at})"
            );
        } else if by(e, "r3") {
            assert!(at(e) >= killed_at, "r3 wrote while r2 led: {e:?}");
        } else {
            panic!("a write by an unknown replica: {e:?}");
        }
    }
    assert!(term_at <= r1_release);
    let owners: Vec<&str> = writes
        .iter()
        .filter(|e| !is_lease(e))
        .map(|e| &e.user_agent[e.user_agent.len() - 3..e.user_agent.len() - 1])
        .collect();
    let mut runs = owners.clone();
    runs.dedup();
    assert_eq!(runs, ["r1", "r2", "r3"], "writers interleaved: {owners:?}");
    drop(r3.stderr());
}
