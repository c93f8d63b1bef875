//! What `kubesync run` tells the world, in-process against the emulator
//! over real HTTP: completion signals (a signed webhook to a local
//! receiver, the S3 version file to a real S3-compatible server, PyPI's
//! `moto`) exactly once per (app, revision) and not again after a
//! restart; Events on the Application for a sync and a failed sync, none
//! in a steady state; the per-app page's objects and masked drift diff;
//! and the webhook-delivery, file-apply and notification counters of
//! `/metrics`. `.ci/run` installs moto; in CI its absence fails the test,
//! elsewhere the S3 part is skipped (saying so).

mod controller_support;
mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use controller_support::*;
use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, ListParams};
use kubesync::controller::{ControllerHandle, Pending};
use kubesync::notify::NotifyArgs;
use kubesync::sync::status::{ApplicationStatus, DeliveryOutcome, STATUS_NAMESPACE};
use serde_json::json;
use support::receiver::Receiver;
use support::s3::{Moto, BUCKET};

const LONG: Duration = Duration::from_secs(30);
const HMAC_KEY: &[u8] = b"ci-hmac-key";
const PUSH_SECRET: &[u8] = b"push-secret";

/// The received events about `app` as (trigger, app, revision), each
/// signature checked.
fn received_for(seen: &Receiver, app: &str) -> Vec<(String, String, String)> {
    seen.signed_events(HMAC_KEY)
        .into_iter()
        .filter(|(_, a, _)| a == app)
        .collect()
}

// ------------------------------------------------------------ helpers

/// kubesync's Events about `app`: (reason, type, count), by name.
async fn events_of(
    emu: &kubesync::emulator::EmulatorHandle,
    app: &str,
) -> BTreeMap<String, (String, String, i32)> {
    let api: Api<Event> = Api::namespaced(emu.kube_client(), STATUS_NAMESPACE);
    api.list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.involved_object.name.as_deref() == Some(app))
        .map(|e| {
            (
                e.metadata.name.unwrap_or_default(),
                (
                    e.reason.unwrap_or_default(),
                    e.type_.unwrap_or_default(),
                    e.count.unwrap_or_default(),
                ),
            )
        })
        .collect()
}

fn reasons(events: &BTreeMap<String, (String, String, i32)>) -> Vec<&str> {
    events.values().map(|(r, _, _)| r.as_str()).collect()
}

async fn status_of(emu: &kubesync::emulator::EmulatorHandle, app: &str) -> ApplicationStatus {
    let obj = get(
        emu,
        &format!("/apis/kubesync.dev/v1alpha1/namespaces/{STATUS_NAMESPACE}/applications/{app}"),
    )
    .await
    .expect("the Application object");
    ApplicationStatus::of(&obj)
}

/// Asks for a full run and waits until it is done and its signals (sent
/// in the background) too.
async fn full_run(h: &ControllerHandle) {
    let addr = h.addr().unwrap();
    let before = apps(addr).await["lastFullRun"].clone();
    h.trigger(Pending {
        full: true,
        ..Pending::default()
    });
    wait_for(LONG, "a full run", || async {
        let a = apps(addr).await;
        a["lastFullRun"] != before && !a["queued"].as_bool().unwrap_or(true)
    })
    .await;
    signals_idle(h).await;
}

/// Waits until no completion signal is queued or being delivered.
async fn signals_idle(h: &ControllerHandle) {
    wait_for(LONG, "the signals to be delivered", || async {
        h.signals_pending() == 0
    })
    .await;
}

/// `/metrics` as (name, labels) → value (the classic text format).
fn parse_metrics(text: &str) -> Vec<(String, BTreeMap<String, String>, f64)> {
    let mut out = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line.rsplit_once(' ').expect("series value");
        let value: f64 = value.parse().expect("a number");
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => {
                let body = rest.strip_suffix('}').expect("closing brace");
                let labels = body
                    .split("\",")
                    .filter(|p| !p.is_empty())
                    .map(|p| {
                        let (k, v) = p.split_once("=\"").expect("label=value");
                        (k.to_string(), v.trim_end_matches('"').to_string())
                    })
                    .collect();
                (n.to_string(), labels)
            }
            None => (series.to_string(), BTreeMap::new()),
        };
        out.push((name, labels, value));
    }
    out
}

fn metric(
    m: &[(String, BTreeMap<String, String>, f64)],
    name: &str,
    labels: &[(&str, &str)],
) -> f64 {
    m.iter()
        .filter(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, _, v)| v)
        .sum()
}

fn signals_config(
    repo: &GitRepo,
    url: &str,
    moto: Option<&Moto>,
) -> kubesync::controller::ControllerConfig {
    let mut cfg = config(repo, Duration::from_millis(200));
    let mut args = NotifyArgs {
        webhook: Some(url.to_string()),
        aws_region: "us-east-1".into(),
        ..Default::default()
    };
    if let Some(m) = moto {
        args.s3_bucket = Some(BUCKET.into());
        args.cluster_name = Some("prod-eu".into());
        args.aws_endpoint_url = Some(m.endpoint.clone());
        args.aws_access_key_id = Some(m.key_id.clone());
        args.aws_secret_access_key = Some(m.secret.clone());
    }
    let mut notify = args.config().expect("valid signal settings");
    notify.webhook_secret = Some(HMAC_KEY.to_vec());
    cfg.notify = notify;
    cfg.webhook_secret = Some(PUSH_SECRET.to_vec());
    cfg
}

// ------------------------------------------------------------ tests

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn signals_once_per_revision_across_a_restart_events_and_counters() {
    let moto = tokio::task::spawn_blocking(|| Moto::start("the S3 part"))
        .await
        .unwrap();
    let seen = Receiver::ok().await;
    let url = seen.url.clone();
    let repo = GitRepo::new();
    cm_app(&repo, "a", "ns-a", "k: v1", "");
    let first = repo.commit("first");
    let emu = emulator(fast_simulation()).await;
    let h = start_ready(signals_config(&repo, &url, moto.as_ref()), &emu).await;
    let addr = h.addr().unwrap();

    // The first sync: one signed on-deployed POST naming the full commit,
    // one version file, both in the ledger; SyncStarted and SyncSucceeded.
    wait_for(LONG, "the on-deployed webhook", || async {
        !received_for(&seen, "a").is_empty()
    })
    .await;
    assert_eq!(
        received_for(&seen, "a"),
        [("on-deployed".to_string(), "a".to_string(), first.clone())]
    );
    // Recorded once delivered (in the background, a moment after the POST).
    let want = if moto.is_some() { 2 } else { 1 };
    wait_for(LONG, "the ledger", || async {
        status_of(&emu, "a").await.notifications.len() == want
    })
    .await;
    let ledger = status_of(&emu, "a").await.notifications;
    assert!(ledger
        .iter()
        .all(|r| r.outcome == DeliveryOutcome::Sent && r.revision == first));
    if let Some(m) = &moto {
        let files = m.objects().await;
        let key = format!("prod-eu/ns-a/a/{first}");
        let body = files
            .get(&key)
            .unwrap_or_else(|| panic!("{key} in {files:?}"));
        assert!(
            chrono::DateTime::parse_from_rfc3339(body).is_ok(),
            "the body is the UTC time of completion: {body}"
        );
    }
    wait_for(LONG, "the sync's events", || async {
        let r = reasons(&events_of(&emu, "a").await).join(",");
        r.contains("SyncStarted") && r.contains("SyncSucceeded")
    })
    .await;

    // A steady state over several full runs: no event, no signal.
    let steady = events_of(&emu, "a").await;
    let signals = seen.count();
    for _ in 0..3 {
        full_run(&h).await;
    }
    assert_eq!(
        events_of(&emu, "a").await,
        steady,
        "events in a steady state"
    );
    assert_eq!(seen.count(), signals, "a signal in a steady state");

    // A commit: one more signal, at the new revision.
    repo.repo
        .write("objects/a/cm.yaml", &configmap("a", "k: v2"));
    let second = repo.commit("second");
    wait_for(LONG, "the second on-deployed webhook", || async {
        received_for(&seen, "a").len() >= 2
    })
    .await;
    assert_eq!(
        received_for(&seen, "a")[1],
        ("on-deployed".to_string(), "a".to_string(), second.clone())
    );

    // Inbound git webhooks are counted, refused ones too.
    let body = json!({"repository": repo.file_url()}).to_string();
    let sig = kubesync::controller::sign(body.as_bytes(), PUSH_SECRET);
    let (status, _) = http(
        addr,
        "POST",
        "/api/v1/webhook",
        &[("X-Kubesync-Signature", sig)],
        body.as_bytes(),
    )
    .await;
    assert_eq!(status, 202);
    let (status, _) = http(
        addr,
        "POST",
        "/api/v1/webhook",
        &[("X-Kubesync-Signature", "sha256=00".into())],
        body.as_bytes(),
    )
    .await;
    assert_eq!(status, 401);
    // Every app signals (the root app too): the counter says how many. It
    // moves once a delivery has returned, a moment after the receiver saw
    // the POST, so it is given until the deadline to catch up.
    let deployed_sent = [
        ("kind", "webhook"),
        ("trigger", "on-deployed"),
        ("outcome", "sent"),
    ];
    wait_for(
        LONG,
        "the notification counter to count every POST",
        || async {
            let (_, text) = http(addr, "GET", "/metrics", &[], b"").await;
            let posted = seen.count() as f64;
            metric(
                &parse_metrics(&text),
                "kubesync_notifications_total",
                &deployed_sent,
            ) == posted
        },
    )
    .await;
    let (_, text) = http(addr, "GET", "/metrics", &[], b"").await;
    let m = parse_metrics(&text);
    let posted = seen.count() as f64;
    assert!(posted >= 2.0);
    assert_eq!(
        metric(&m, "kubesync_notifications_total", &deployed_sent),
        posted,
        "{text}"
    );
    if let Some(moto) = &moto {
        let s3_sent = [
            ("kind", "s3"),
            ("trigger", "on-deployed"),
            ("outcome", "sent"),
        ];
        wait_for(
            LONG,
            "the S3 counter to count every version file",
            || async {
                let (_, text) = http(addr, "GET", "/metrics", &[], b"").await;
                let files = moto.objects().await.len() as f64;
                metric(
                    &parse_metrics(&text),
                    "kubesync_notifications_total",
                    &s3_sent,
                ) == files
            },
        )
        .await;
    }
    let applied = metric(
        &m,
        "kubesync_file_apply_count_total",
        &[("success", "true")],
    );
    assert!(applied >= 2.0, "file applies counted: {text}");
    assert!(
        m.iter()
            .any(|(n, l, _)| n == "kubesync_file_apply_count_total"
                && l.get("file").is_some_and(|f| f.ends_with("cm.yaml"))),
        "{text}"
    );
    let accepted = [("provider", "generic"), ("outcome", "accepted")];
    assert_eq!(
        metric(&m, "kubesync_webhook_deliveries_total", &accepted),
        1.0
    );
    let refused = [("provider", "generic"), ("outcome", "unauthorized")];
    assert_eq!(
        metric(&m, "kubesync_webhook_deliveries_total", &refused),
        1.0
    );

    // A restart: the ledger in the status says it was sent; no event either.
    signals_idle(&h).await;
    let before_restart = events_of(&emu, "a").await;
    let signals = seen.count();
    assert!(h.shutdown(Duration::from_secs(10)).await);
    let h = start_ready(signals_config(&repo, &url, moto.as_ref()), &emu).await;
    full_run(&h).await;
    assert_eq!(seen.count(), signals, "a signal again after a restart");
    assert_eq!(events_of(&emu, "a").await, before_restart);
    if let Some(m) = &moto {
        let files = m.objects().await;
        let of_a: std::collections::BTreeSet<String> = files
            .keys()
            .filter(|k| k.starts_with("prod-eu/ns-a/a/"))
            .cloned()
            .collect();
        let want = [
            format!("prod-eu/ns-a/a/{first}"),
            format!("prod-eu/ns-a/a/{second}"),
        ];
        assert_eq!(of_a, want.into(), "one version file per revision");
    }

    // A failed sync: a Warning event and one on-sync-failed signal, not
    // repeated by the retries at that revision.
    repo.repo.write(
        "objects/a/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a\ndata: [\n",
    );
    let broken = repo.commit("break a");
    wait_for(LONG, "the on-sync-failed webhook", || async {
        received_for(&seen, "a")
            .iter()
            .any(|(t, _, _)| t == "on-sync-failed")
    })
    .await;
    wait_for(LONG, "the SyncFailed event", || async {
        events_of(&emu, "a")
            .await
            .values()
            .any(|(r, t, _)| r == "SyncFailed" && t == "Warning")
    })
    .await;
    full_run(&h).await;
    full_run(&h).await;
    let failed: Vec<_> = received_for(&seen, "a")
        .into_iter()
        .filter(|(t, _, _)| t == "on-sync-failed")
        .collect();
    assert_eq!(
        failed,
        [("on-sync-failed".to_string(), "a".to_string(), broken)]
    );
    let (_, text) = http(h.addr().unwrap(), "GET", "/metrics", &[], b"").await;
    let m = parse_metrics(&text);
    assert!(
        metric(
            &m,
            "kubesync_file_apply_count_total",
            &[("success", "false")]
        ) >= 1.0
    );
    assert!(h.shutdown(Duration::from_secs(10)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_app_page_shows_objects_and_a_masked_drift_diff() {
    let repo = GitRepo::new();
    cm_app(&repo, "manual", "ns-m", "k: git", "");
    // "git-password" and "live-password", base64.
    repo.repo.write(
        "objects/manual/secret.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata: {name: creds}\ntype: Opaque\ndata: {password: Z2l0LXBhc3N3b3Jk}\n",
    );
    repo.commit("first");
    let emu = emulator(fast_simulation()).await;
    let h = start_ready(config(&repo, Duration::from_secs(3600)), &emu).await;
    let addr = h.addr().unwrap();

    let (status, page) = http(addr, "GET", "/apps/manual", &[], b"").await;
    assert_eq!(status, 200);
    let objects = &page[page.find("id=\"objects\"").expect("objects table")..];
    assert!(
        objects.contains("ConfigMap") && objects.contains("creds"),
        "{objects}"
    );
    assert!(objects.contains(">Synced<"), "{objects}");
    assert!(page.contains("No difference"), "{page}");

    // Drift on both, without selfHeal: OutOfSync, and the diff on the page.
    edit_configmap(&emu, "ns-m", "manual", json!({"data": {"k": "edited"}})).await;
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(emu.kube_client(), "ns-m");
    let pp = kube::api::PatchParams {
        field_manager: Some("kubectl-edit".into()),
        ..Default::default()
    };
    secrets
        .patch(
            "creds",
            &pp,
            &kube::api::Patch::Merge(&json!({"data": {"password": "bGl2ZS1wYXNzd29yZA=="}})),
        )
        .await
        .expect("edit the Secret");
    wait_for(LONG, "both diffs on the page", || async {
        let (_, p) = http(addr, "GET", "/apps/manual", &[], b"").await;
        p.contains("k: edited") && p.contains("# Secret ns-m/creds")
    })
    .await;
    emu.reset_requests();
    let (_, page) = http(addr, "GET", "/apps/manual", &[], b"").await;
    assert!(
        emu.journal().is_empty(),
        "a page view made API requests: {:#?}",
        emu.journal()
    );
    let diff = &page[page.find("id=\"diff\"").expect("the diff")..];
    assert!(
        diff.contains("k: git") && diff.contains("k: edited"),
        "{diff}"
    );
    assert!(
        diff.contains("password"),
        "the changed key is named: {diff}"
    );
    for secret in [
        "Z2l0LXBhc3N3b3Jk",
        "bGl2ZS1wYXNzd29yZA",
        "git-password",
        "live-password",
    ] {
        assert!(!page.contains(secret), "a Secret value on the page: {diff}");
    }
    let objects = &page[page.find("id=\"objects\"").unwrap()..page.find("id=\"diff\"").unwrap()];
    assert_eq!(objects.matches(">OutOfSync<").count(), 2, "{objects}");
    assert!(h.shutdown(Duration::from_secs(10)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_new_leader_does_not_signal_again_and_a_follower_never_does() {
    let seen = Receiver::ok().await;
    let url = seen.url.clone();
    let repo = GitRepo::new();
    cm_app(&repo, "a", "ns-a", "k: v1", "");
    let first = repo.commit("first");
    let emu = emulator(fast_simulation()).await;
    let (lead_a, rx_a) = tokio::sync::watch::channel(true);
    let (lead_b, rx_b) = tokio::sync::watch::channel(false);
    let a = start(signals_config(&repo, &url, None), &emu, Some(rx_a)).await;
    assert!(a.wait_ready(LONG).await);
    let b = start(signals_config(&repo, &url, None), &emu, Some(rx_b)).await;
    wait_for(LONG, "the leader's on-deployed webhook", || async {
        !received_for(&seen, "a").is_empty()
    })
    .await;
    // The follower polls and loads, and sends nothing.
    full_run(&a).await;
    let signals = seen.count();
    let events = events_of(&emu, "a").await;

    // Leadership moves to b: its first full run finds the ledger in the
    // status and sends nothing again; nor does it record events.
    lead_a.send(false).unwrap();
    lead_b.send(true).unwrap();
    let b_addr = b.addr().unwrap();
    wait_for(LONG, "the new leader's full run", || async {
        !apps(b_addr).await["lastFullRun"].is_null()
    })
    .await;
    full_run(&b).await;
    assert_eq!(seen.count(), signals, "signals again after a leader change");
    assert_eq!(events_of(&emu, "a").await, events);

    // The new leader signals the next commit, once.
    repo.repo
        .write("objects/a/cm.yaml", &configmap("a", "k: v2"));
    let second = repo.commit("second");
    wait_for(LONG, "the new leader's webhook", || async {
        received_for(&seen, "a").len() == 2
    })
    .await;
    full_run(&b).await;
    assert_eq!(
        received_for(&seen, "a"),
        [
            ("on-deployed".to_string(), "a".to_string(), first),
            ("on-deployed".to_string(), "a".to_string(), second),
        ]
    );
    assert!(b.shutdown(Duration::from_secs(10)).await);
    assert!(a.shutdown(Duration::from_secs(10)).await);
}

const WIDGET_CRD: &str = "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {kind: Widget, plural: widgets, singular: widget, listKind: WidgetList}
  versions:
    - name: v1
      served: true
      storage: true
      schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn health_degrading_between_syncs_is_an_event_and_a_signal() {
    let seen = Receiver::ok().await;
    let url = seen.url.clone();
    let repo = GitRepo::new();
    repo.repo.app(
        "web",
        "  tier: system\n  destination: {namespace: ns-w}\n  syncPolicy: {createNamespace: true}\n",
    );
    repo.repo.write("objects/web/crd.yaml", WIDGET_CRD);
    repo.repo.write(
        "objects/web/widget.yaml",
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\nspec: {size: 1}\n",
    );
    let first = repo.commit("first");
    let emu = emulator(fast_simulation()).await;
    let h = start_ready(signals_config(&repo, &url, None), &emu).await;
    wait_for(LONG, "the on-deployed webhook", || async {
        !received_for(&seen, "web").is_empty()
    })
    .await;
    let addr = h.addr().unwrap();
    wait_for(LONG, "the Widget's health seen by the watch", || async {
        let (_, page) = http(addr, "GET", "/apps/web", &[], b"").await;
        page.contains("<td>w</td><td><span class=\"badge ok\">Synced</span></td><td><span class=\"badge ok\">Healthy</span>")
    })
    .await;

    // The Widget's controller reports it failed (a status write by another
    // manager on a field git leaves alone: not drift). The app is Degraded
    // without any commit or sync request.
    let widgets = Api::<kube::api::DynamicObject>::namespaced_with(
        emu.kube_client(),
        "ns-w",
        &kube::api::ApiResource {
            group: "example.com".into(),
            version: "v1".into(),
            api_version: "example.com/v1".into(),
            kind: "Widget".into(),
            plural: "widgets".into(),
        },
    );
    let pp = kube::api::PatchParams {
        field_manager: Some("widget-controller".into()),
        ..Default::default()
    };
    let status = json!({"status": {"conditions": [{
        "type": "Ready", "status": "False", "reason": "OutOfWidgets",
        "message": "no widget left"}]}});
    widgets
        .patch("w", &pp, &kube::api::Patch::Merge(&status))
        .await
        .expect("patch the Widget's status");
    wait_for(LONG, "the on-health-degraded webhook", || async {
        received_for(&seen, "web")
            .iter()
            .any(|(t, _, _)| t == "on-health-degraded")
    })
    .await;
    wait_for(LONG, "the HealthDegraded event", || async {
        events_of(&emu, "web")
            .await
            .values()
            .any(|(r, t, _)| r == "HealthDegraded" && t == "Warning")
    })
    .await;
    // No sync ran for it (nothing was asked, nothing committed).
    assert_eq!(
        app_view(addr, "web").await["lastRun"]["trigger"],
        "full",
        "the health change is seen without a sync"
    );
    assert_eq!(
        received_for(&seen, "web")
            .into_iter()
            .filter(|(t, _, _)| t == "on-health-degraded")
            .collect::<Vec<_>>(),
        [("on-health-degraded".to_string(), "web".to_string(), first)]
    );
    let (_, page) = http(addr, "GET", "/apps/web", &[], b"").await;
    let objects = &page[page.find("id=\"objects\"").unwrap()..];
    assert!(
        objects.contains(">Degraded<") && objects.contains("no widget left"),
        "{objects}"
    );
    assert_eq!(
        status_of(&emu, "web").await.health.unwrap().status,
        kubesync::health::Health::Degraded
    );
    assert_eq!(app_view(addr, "web").await["health"], "Degraded");
    assert!(h.shutdown(Duration::from_secs(10)).await);
}

/// A webhook receiver that accepts connections and never answers (a
/// receiver that hangs): its URL and how many connections it took.
async fn hanging_receiver() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let taken = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = taken.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = listener.accept().await {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            held.push(conn);
        }
    });
    (format!("http://{addr}/hook/TOKEN-1"), taken)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_receiver_that_hangs_delays_no_run() {
    let (url, taken) = hanging_receiver().await;
    let repo = GitRepo::new();
    cm_app(&repo, "a", "ns-a", "k: v1", "");
    repo.commit("first");
    let emu = emulator(fast_simulation()).await;
    // Ready once the first full run is done: its signals still hang (each
    // delivery is tried for up to ~65 s), and the run did not wait for them.
    let h = start_ready(signals_config(&repo, &url, None), &emu).await;
    wait_for(LONG, "a delivery to the hanging receiver", || async {
        taken.load(std::sync::atomic::Ordering::SeqCst) > 0
    })
    .await;

    // The next commit is applied while those deliveries still hang.
    repo.repo
        .write("objects/a/cm.yaml", &configmap("a", "k: v2"));
    repo.commit("second");
    wait_for(LONG, "the second commit applied", || async {
        configmap_data(&emu, "ns-a", "a").await == Some(json!({"k": "v2"}))
    })
    .await;
    let addr = h.addr().unwrap();
    wait_for(LONG, "the second run's end", || async {
        app_view(addr, "a").await["lastRun"]["result"] == "Succeeded"
            && !apps(addr).await["queued"].as_bool().unwrap_or(true)
    })
    .await;
    assert!(
        h.signals_pending() > 0,
        "the first signals were still being retried when the next run ended"
    );
    // Nothing was recorded as sent.
    assert!(status_of(&emu, "a")
        .await
        .notifications
        .iter()
        .all(|r| r.outcome != DeliveryOutcome::Sent));
    // A stop does not wait for the hanging receiver either.
    assert!(h.shutdown(Duration::from_secs(10)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_app_signals_before_its_slow_dependent_finishes() {
    let seen = Receiver::ok().await;
    let url = seen.url.clone();
    let repo = GitRepo::new();
    cm_app(&repo, "a", "ns-a", "k: v1", "");
    // b waits for a, then for a Deployment whose pods crash: it stays
    // Progressing until its sync times out.
    repo.repo.app(
        "b",
        "  destination: {namespace: ns-b}\n  dependsOn: [a]\n  syncPolicy: {createNamespace: true}\n",
    );
    repo.repo
        .write("objects/b/web.yaml", &deployment("web", "crashy:1"));
    let first = repo.commit("first");
    let emu = emulator(kubesync::emulator::SimulationConfig {
        crashing_images: vec!["crashy".into()],
        ..fast_simulation()
    })
    .await;
    let mut cfg = signals_config(&repo, &url, None);
    cfg.sync.timeout = Some(Duration::from_secs(10));
    let h = start(cfg, &emu, None).await;
    let addr = h.addr().unwrap();

    wait_for(LONG, "a's on-deployed webhook", || async {
        !received_for(&seen, "a").is_empty()
    })
    .await;
    // b is still syncing when a's signal is in.
    let b = app_view(addr, "b").await;
    assert_eq!(b["lastRun"]["result"], "Running", "{b:#}");
    assert!(received_for(&seen, "b").is_empty());
    assert_eq!(
        received_for(&seen, "a"),
        [("on-deployed".to_string(), "a".to_string(), first.clone())]
    );
    // The status said so before the signal went out (and holds the ledger).
    let a = status_of(&emu, "a").await;
    assert_eq!(
        a.sync.as_ref().map(|s| s.status),
        Some(kubesync::diff::SyncStatus::Synced)
    );
    wait_for(LONG, "a's ledger", || async {
        status_of(&emu, "a")
            .await
            .notifications
            .iter()
            .any(|r| r.outcome == DeliveryOutcome::Sent && r.revision == first)
    })
    .await;

    // b times out and tells so, once.
    wait_for(LONG, "b's on-sync-failed webhook", || async {
        !received_for(&seen, "b").is_empty()
    })
    .await;
    full_run(&h).await;
    assert_eq!(
        received_for(&seen, "b"),
        [("on-sync-failed".to_string(), "b".to_string(), first.clone())]
    );
    assert_eq!(received_for(&seen, "a").len(), 1);
    // b's retry may be waiting out its timeout: a stop lets it finish.
    assert!(h.shutdown(Duration::from_secs(30)).await);
}

/// Adds an app whose Application in git names its own webhook.
fn annotated_app(repo: &GitRepo, app: &str, ns: &str, hook: &str) {
    repo.repo.write(
        &format!("apps/{app}.yaml"),
        &format!(
            "apiVersion: kubesync.dev/v1alpha1\nkind: Application\nmetadata:\n  name: {app}\n  annotations: {{kubesync.dev/notify-webhook: \"{hook}\"}}\nspec:\n  source: {{path: objects/{app}}}\n  destination: {{namespace: {ns}}}\n  syncPolicy: {{createNamespace: true}}\n"
        ),
    );
    repo.repo
        .write(&format!("objects/{app}/cm.yaml"), &configmap(app, "k: v1"));
}

/// `kubectl annotate application APP kubesync.dev/notify-webhook=URL`.
async fn annotate_in_cluster(emu: &kubesync::emulator::EmulatorHandle, app: &str, url: &str) {
    let apps = Api::<kube::api::DynamicObject>::namespaced_with(
        emu.kube_client(),
        STATUS_NAMESPACE,
        &kube::api::ApiResource {
            group: "kubesync.dev".into(),
            version: "v1alpha1".into(),
            api_version: "kubesync.dev/v1alpha1".into(),
            kind: "Application".into(),
            plural: "applications".into(),
        },
    );
    let pp = kube::api::PatchParams {
        field_manager: Some("kubectl-annotate".into()),
        ..Default::default()
    };
    let patch = json!({"metadata": {"annotations": {"kubesync.dev/notify-webhook": url}}});
    apps.patch(app, &pp, &kube::api::Patch::Merge(&patch))
        .await
        .expect("annotate the Application");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_apps_webhook_annotation_in_git_wins_the_clusters_is_the_fallback() {
    let global_receiver = Receiver::ok().await;
    let global = global_receiver.url.clone();
    let git_seen = Receiver::ok().await;
    let in_git = git_seen.url.clone();
    let cluster_seen = Receiver::ok().await;
    let in_cluster = cluster_seen.url.clone();
    let repo = GitRepo::new();
    annotated_app(&repo, "c", "ns-c", &in_git);
    cm_app(&repo, "d", "ns-d", "k: v1", "");
    let first = repo.commit("first");
    let emu = emulator(fast_simulation()).await;
    let h = start_ready(signals_config(&repo, &global, None), &emu).await;

    // c's annotation in git is its webhook from its first sync on.
    wait_for(LONG, "c's webhook from git", || async {
        !received_for(&git_seen, "c").is_empty()
    })
    .await;
    signals_idle(&h).await;
    assert_eq!(
        git_seen.signed_events(HMAC_KEY),
        [("on-deployed".to_string(), "c".to_string(), first)]
    );

    // Both annotated in the cluster: d (none in git) takes it, c keeps git's.
    annotate_in_cluster(&emu, "c", &in_cluster).await;
    annotate_in_cluster(&emu, "d", &in_cluster).await;
    for app in ["c", "d"] {
        repo.repo
            .write(&format!("objects/{app}/cm.yaml"), &configmap(app, "k: v2"));
    }
    let second = repo.commit("second");
    wait_for(LONG, "d's webhook from the cluster", || async {
        !received_for(&cluster_seen, "d").is_empty()
    })
    .await;
    wait_for(LONG, "c's second webhook from git", || async {
        received_for(&git_seen, "c").len() == 2
    })
    .await;
    full_run(&h).await;
    assert_eq!(
        cluster_seen.signed_events(HMAC_KEY),
        [("on-deployed".to_string(), "d".to_string(), second.clone())],
        "the cluster's annotation is only a fallback"
    );
    assert_eq!(
        received_for(&git_seen, "c")[1],
        ("on-deployed".to_string(), "c".to_string(), second)
    );
    assert!(h.shutdown(Duration::from_secs(10)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sync_while_a_delivery_is_in_flight_keeps_its_ledger() {
    let seen = Receiver::slow_first(Duration::from_secs(3)).await;
    let url = seen.url.clone();
    let repo = GitRepo::new();
    // Only `a` signals, to its own webhook (named in git).
    annotated_app(&repo, "a", "ns-a", &url);
    let rev = repo.commit("first");
    let emu = emulator(fast_simulation()).await;
    let mut cfg = signals_config(&repo, &url, None);
    cfg.notify.webhook = None;
    let h = start_ready(cfg, &emu).await;
    let addr = h.addr().unwrap();
    wait_for(LONG, "a's delivery in flight", || async {
        !received_for(&seen, "a").is_empty()
    })
    .await;
    // A full run syncs `a` again (and writes its status) while the
    // delivery still waits for its answer.
    let before = apps(addr).await["lastFullRun"].clone();
    h.trigger(Pending {
        full: true,
        ..Pending::default()
    });
    wait_for(LONG, "the full run", || async {
        apps(addr).await["lastFullRun"] != before
    })
    .await;
    assert!(h.signals_pending() > 0, "the delivery was still in flight");
    signals_idle(&h).await;
    // The ledger the delivery wrote survived that run's status write, so
    // the next runs send nothing again.
    full_run(&h).await;
    full_run(&h).await;
    assert_eq!(
        received_for(&seen, "a"),
        [("on-deployed".to_string(), "a".to_string(), rev.clone())]
    );
    let ledger = status_of(&emu, "a").await.notifications;
    assert!(
        ledger
            .iter()
            .any(|r| r.outcome == DeliveryOutcome::Sent && r.revision == rev),
        "{ledger:#?}"
    );
    assert!(h.shutdown(Duration::from_secs(10)).await);
}
