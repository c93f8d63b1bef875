//! Leader election (`kubesync::lease`) with two electors against a real API:
//! the emulator always, and the real control plane when
//! `KUBESYNC_E2E_KUBECONFIG` names one (skipped, with the reason printed,
//! otherwise). Short durations (lease 2 s, renew deadline 1 s, retry 200 ms)
//! keep the failovers quick; the safety property — never two leaders, a
//! leader stepping down before its lease can expire elsewhere — is checked by
//! a sampler running beside every scenario.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{DeleteParams, PostParams};
use kube::Api;
use kubesync::emulator::{Emulator, EmulatorConfig, FaultConfig, FaultRule};
use kubesync::lease::{LeaderElector, Leadership, LeaseConfig};
use support::real_cluster::{client, from_env};

const LEASE: Duration = Duration::from_secs(2);
const RENEW: Duration = Duration::from_secs(1);
const RETRY: Duration = Duration::from_millis(200);
const NS: &str = "kubesync-system";

fn config(name: &str, identity: &str) -> LeaseConfig {
    LeaseConfig {
        name: name.into(),
        namespace: NS.into(),
        identity: identity.into(),
        lease_duration: LEASE,
        renew_deadline: RENEW,
        retry_period: RETRY,
    }
}

/// Counts any instant at which both replicas claim to lead.
struct Sampler {
    both: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Sampler {
    fn start(a: Leadership, b: Leadership) -> Self {
        let both = Arc::new(AtomicBool::new(false));
        let flag = both.clone();
        let task = tokio::spawn(async move {
            loop {
                if a.is_leader() && b.is_leader() {
                    flag.store(true, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        Sampler { both, task }
    }

    fn assert_never_two(self) {
        self.task.abort();
        assert!(
            !self.both.load(Ordering::SeqCst),
            "two replicas were leader at the same time"
        );
    }
}

/// Waits until `f` holds, at most `timeout`; the time it took.
async fn until(timeout: Duration, what: &str, f: impl Fn() -> bool) -> Duration {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    start.elapsed()
}

async fn ensure_namespace(client: &kube::Client) {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns = Namespace {
        metadata: kube::api::ObjectMeta {
            name: Some(NS.into()),
            ..Default::default()
        },
        ..Default::default()
    };
    match api.create(&PostParams::default(), &ns).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => panic!("create namespace: {e}"),
    }
}

async fn lease(client: &kube::Client, name: &str) -> Lease {
    Api::<Lease>::namespaced(client.clone(), NS)
        .get(name)
        .await
        .expect("the Lease exists")
}

fn spec_holder(l: &Lease) -> String {
    l.spec
        .as_ref()
        .and_then(|s| s.holder_identity.clone())
        .unwrap_or_default()
}

fn spec_transitions(l: &Lease) -> i32 {
    l.spec
        .as_ref()
        .and_then(|s| s.lease_transitions)
        .unwrap_or_default()
}

/// Two electors; exactly one leads; the Lease carries the leader's record.
async fn elect_two(
    client: &kube::Client,
    name: &str,
) -> (LeaderElector, LeaderElector, Sampler, Duration) {
    let a = LeaderElector::spawn(client.clone(), config(name, "replica-a")).expect("spawn a");
    let b = LeaderElector::spawn(client.clone(), config(name, "replica-b")).expect("spawn b");
    let sampler = Sampler::start(a.leadership(), b.leadership());
    let took = until(Duration::from_secs(10), "a leader is elected", || {
        a.is_leader() || b.is_leader()
    })
    .await;
    // One round more for the other to have seen the lease taken.
    tokio::time::sleep(RETRY * 3).await;
    assert!(a.is_leader() != b.is_leader(), "exactly one leader");
    (a, b, sampler, took)
}

fn leader_first(a: LeaderElector, b: LeaderElector) -> (LeaderElector, LeaderElector) {
    if a.is_leader() {
        (a, b)
    } else {
        (b, a)
    }
}

async fn failover_after_release(client: &kube::Client, name: &str) {
    let (a, b, sampler, _) = elect_two(client, name).await;
    let (leader, standby) = leader_first(a, b);
    let l = lease(client, name).await;
    assert_eq!(spec_holder(&l), leader.identity());
    let spec = l.spec.clone().expect("spec");
    assert_eq!(spec.lease_duration_seconds, Some(2));
    assert!(spec.acquire_time.is_some() && spec.renew_time.is_some());
    let transitions = spec_transitions(&l);

    let mut lost = leader.subscribe();
    let leadership = leader.leadership();
    let released = Instant::now();
    leader.release().await.expect("release");
    assert!(!*lost.borrow_and_update(), "released leader observes false");
    assert!(!leadership.is_leader());
    let took = until(Duration::from_secs(5), "the standby takes over", || {
        standby.is_leader()
    })
    .await;
    let since_release = released.elapsed();
    assert!(
        since_release < Duration::from_secs(2),
        "failover after release took {since_release:?} (retry period {RETRY:?})"
    );
    eprintln!("failover after release: {took:?}");
    let l = lease(client, name).await;
    assert_eq!(spec_holder(&l), standby.identity());
    assert_eq!(spec_transitions(&l), transitions + 1);
    sampler.assert_never_two();
    standby.release().await.expect("release");
    let l = lease(client, name).await;
    assert_eq!(spec_holder(&l), "", "a released lease has no holder");
}

async fn failover_after_kill(client: &kube::Client, name: &str) {
    let (a, b, sampler, _) = elect_two(client, name).await;
    let (leader, standby) = leader_first(a, b);
    let killed = Instant::now();
    let old = leader.leadership();
    leader.abort();
    assert!(!old.is_leader(), "an aborted elector's view is not leader");
    until(Duration::from_secs(10), "the standby takes over", || {
        standby.is_leader()
    })
    .await;
    let took = killed.elapsed();
    // The standby must wait for the lease to expire: at least the lease
    // duration after the last renewal it saw (at most one retry before the kill).
    assert!(
        took + RETRY * 2 >= LEASE,
        "standby took over after {took:?}, before the {LEASE:?} lease could expire"
    );
    eprintln!("failover after kill: {took:?}");
    assert_eq!(spec_holder(&lease(client, name).await), standby.identity());
    sampler.assert_never_two();
    standby.release().await.expect("release");
}

async fn deposed_leader_observes_false(client: &kube::Client, admin: &kube::Client, name: &str) {
    let (a, b, sampler, _) = elect_two(client, name).await;
    let (leader, standby) = leader_first(a, b);
    let mut rx = leader.subscribe();
    assert!(*rx.borrow_and_update());
    // Another party takes the lease by force (as `kubectl edit` would).
    let api: Api<Lease> = Api::namespaced(admin.clone(), NS);
    // The leader renews concurrently: a replace racing a renewal gets 409,
    // as any editor would; read again and retry.
    let mut attempts = 0;
    loop {
        let mut l = api.get(name).await.expect("get");
        let spec = l.spec.as_mut().expect("spec");
        spec.holder_identity = Some("intruder".into());
        spec.lease_duration_seconds = Some(30);
        spec.renew_time = Some(MicroTime(k8s_openapi::jiff::Timestamp::now()));
        l.metadata.managed_fields = None;
        match api.replace(name, &PostParams::default(), &l).await {
            Ok(_) => break,
            Err(kube::Error::Api(e)) if e.code == 409 && attempts < 10 => attempts += 1,
            Err(e) => panic!("replace: {e}"),
        }
    }
    tokio::time::timeout(Duration::from_secs(5), async {
        while *rx.borrow_and_update() {
            rx.changed().await.expect("elector alive");
        }
    })
    .await
    .expect("the deposed leader observes false");
    assert!(!leader.is_leader());
    tokio::time::sleep(RETRY * 3).await;
    assert!(!standby.is_leader(), "the intruder's lease is still valid");
    assert_eq!(spec_holder(&lease(client, name).await), "intruder");
    sampler.assert_never_two();
    leader.abort();
    standby.abort();
}

#[tokio::test]
async fn emulator_one_leader_and_failover_after_release() {
    let emu = Emulator::start(EmulatorConfig::default())
        .await
        .expect("emulator");
    let client = emu.kube_client();
    ensure_namespace(&client).await;
    failover_after_release(&client, "kubesync-controller").await;
}

#[tokio::test]
async fn emulator_failover_after_kill_waits_for_expiry() {
    let emu = Emulator::start(EmulatorConfig::default())
        .await
        .expect("emulator");
    let client = emu.kube_client();
    ensure_namespace(&client).await;
    failover_after_kill(&client, "kubesync-controller").await;
}

#[tokio::test]
async fn emulator_deposed_leader_observes_false() {
    let emu = Emulator::start(EmulatorConfig::default())
        .await
        .expect("emulator");
    let client = emu.kube_client();
    ensure_namespace(&client).await;
    deposed_leader_observes_false(&client, &client, "kubesync-controller").await;
}

/// The API server refuses the leader's renewals: it stops counting itself
/// leader within the renew deadline, before its lease could expire at the
/// standby; when the server is back, exactly one of them leads again.
#[tokio::test]
async fn emulator_leader_that_cannot_renew_steps_down_before_expiry() {
    let emu = Emulator::start(EmulatorConfig::default())
        .await
        .expect("emulator");
    let client = emu.kube_client();
    ensure_namespace(&client).await;
    let (a, b, sampler, _) = elect_two(&client, "kubesync-controller").await;
    let (leader, standby) = leader_first(a, b);
    let mut rx = leader.subscribe();
    let broken = Instant::now();
    emu.set_faults(FaultConfig {
        seed: 1,
        rules: vec![FaultRule::error(503).on_resources(&["leases"])],
    })
    .expect("faults");
    tokio::time::timeout(LEASE * 2, async {
        while *rx.borrow_and_update() {
            rx.changed().await.expect("elector alive");
        }
    })
    .await
    .expect("the leader steps down");
    let stepped_down = broken.elapsed();
    assert!(
        stepped_down < LEASE,
        "stepped down {stepped_down:?} after renewals began failing: not before the {LEASE:?} lease could expire"
    );
    assert!(!leader.is_leader() && !standby.is_leader());
    emu.clear_faults();
    until(Duration::from_secs(10), "a leader again", || {
        leader.is_leader() || standby.is_leader()
    })
    .await;
    sampler.assert_never_two();
}

#[tokio::test]
async fn emulator_lease_is_validated_like_the_real_server() {
    let emu = Emulator::start(EmulatorConfig::default())
        .await
        .expect("emulator");
    let client = emu.kube_client();
    ensure_namespace(&client).await;
    let api: Api<Lease> = Api::namespaced(client.clone(), NS);
    let bad: Lease = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "bad"},
        "spec": {"holderIdentity": "a", "leaseDurationSeconds": 0}
    }))
    .expect("lease");
    match api.create(&PostParams::default(), &bad).await {
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.code, 422, "{s:?}");
            assert!(
                s.message.contains("spec.leaseDurationSeconds"),
                "{}",
                s.message
            );
        }
        other => panic!("expected 422, got {other:?}"),
    }
    // A malformed MicroTime is a decode error, as on the real server.
    let raw = serde_json::json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "badtime"},
        "spec": {"renewTime": "yesterday"}
    });
    let req = http::Request::post(format!(
        "/apis/coordination.k8s.io/v1/namespaces/{NS}/leases"
    ))
    .header("content-type", "application/json")
    .body(serde_json::to_vec(&raw).expect("json"))
    .expect("request");
    let err = client
        .request::<Lease>(req)
        .await
        .expect_err("a bad time is refused");
    match err {
        kube::Error::Api(s) => assert_eq!(s.code, 400, "{s:?}"),
        other => panic!("expected 400, got {other:?}"),
    }
}

// --- the real control plane -------------------------------------------------

async fn real_clients() -> Option<(kube::Client, kube::Client)> {
    let cluster = from_env("real-cluster lease tests")?;
    Some((client(&cluster.kc).await, client(&cluster.admin).await))
}

async fn cleanup(client: &kube::Client, name: &str) {
    let _ = Api::<Lease>::namespaced(client.clone(), NS)
        .delete(name, &DeleteParams::default())
        .await;
}

/// Against the real API server, as the kubesync ServiceAccount: the Lease is
/// created, failover after release and after a kill, a deposed leader.
#[tokio::test]
async fn real_cluster_leader_election() {
    let Some((client, admin)) = real_clients().await else {
        return;
    };
    ensure_namespace(&admin).await;
    let run = uuid::Uuid::new_v4().simple().to_string();
    for (i, scenario) in ["release", "kill", "deposed"].iter().enumerate() {
        let name = format!("kubesync-e2e-{}-{i}", &run[..8]);
        cleanup(&admin, &name).await;
        match *scenario {
            "release" => failover_after_release(&client, &name).await,
            "kill" => failover_after_kill(&client, &name).await,
            _ => deposed_leader_observes_false(&client, &admin, &name).await,
        }
        cleanup(&admin, &name).await;
    }
}

/// Subscribers hear of changes of leadership, never of renewals: the
/// controller starts a full run each time it hears "leading", so a
/// notification per renewal made it re-sync the whole tree every retry
/// period.
#[tokio::test]
async fn emulator_renewals_do_not_notify_subscribers() {
    let emu = Emulator::start(EmulatorConfig::default())
        .await
        .expect("emulator");
    let client = emu.kube_client();
    ensure_namespace(&client).await;
    let name = "kubesync-renewals";
    let elector = LeaderElector::spawn(client.clone(), config(name, "replica-a")).expect("spawn");
    let mut rx = elector.subscribe();
    tokio::time::timeout(LEASE * 2, async {
        while !*rx.borrow_and_update() {
            rx.changed().await.expect("elector alive");
        }
    })
    .await
    .expect("it leads");
    // Wait for three renewals of the Lease, then look for news.
    let renew_time =
        |l: &Lease| format!("{:?}", l.spec.as_ref().and_then(|s| s.renew_time.clone()));
    let mut seen = vec![renew_time(&lease(&client, name).await)];
    let deadline = Instant::now() + LEASE * 5;
    while seen.len() < 4 {
        assert!(
            Instant::now() < deadline,
            "the leader stopped renewing: {seen:?}"
        );
        let now = renew_time(&lease(&client, name).await);
        if seen.last() != Some(&now) {
            seen.push(now);
        }
        tokio::time::sleep(RETRY / 4).await;
    }
    assert!(
        !rx.has_changed().expect("elector alive"),
        "a renewal notified the subscribers"
    );
    assert!(*rx.borrow());
    assert!(elector.is_leader());
}
