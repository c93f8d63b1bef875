//! The one-shot `kubesync bootstrap` and `kubesync sync` send the
//! completion signals and record the Events `kubesync run` does, with its
//! flags (`--notify-webhook`, `--notify-webhook-secret-file`, …) and its
//! ledger in the Application status: through the real binary against an
//! emulator, a signed webhook to a receiver on loopback, once per (app,
//! revision) across separate processes (bootstrap, then sync), none in a
//! dry run, and a bad setting a usage error (exit 2) before the cluster is
//! contacted.

mod controller_support;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use controller_support::*;
use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, ListParams};
use kubesync::notify::SIGNATURE_HEADER;
use kubesync::sync::status::{ApplicationStatus, DeliveryOutcome, STATUS_NAMESPACE};
use parking_lot::Mutex;
use serde_json::Value;

const KEY: &str = "one-shot-key";

type Seen = Arc<Mutex<Vec<(HeaderMap, Bytes)>>>;

async fn receive(State(seen): State<Seen>, headers: HeaderMap, body: Bytes) -> StatusCode {
    seen.lock().push((headers, body));
    StatusCode::OK
}

async fn receiver() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let app = Router::new()
        .route("/hook", post(receive))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hook"), seen)
}

/// (trigger, app, revision) of every POST, each signature checked.
fn received(seen: &Seen) -> Vec<(String, String, String)> {
    let mut out: Vec<_> = seen
        .lock()
        .iter()
        .map(|(h, body)| {
            let sig = h[SIGNATURE_HEADER].to_str().unwrap();
            assert!(kubesync::notify::verify(KEY.as_bytes(), body, sig));
            let ev: Value = serde_json::from_slice(body).unwrap();
            (
                ev["trigger"].as_str().unwrap().to_string(),
                ev["app"].as_str().unwrap().to_string(),
                ev["revision"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    out.sort();
    out
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

async fn reasons(emu: &kubesync::emulator::EmulatorHandle, app: &str) -> Vec<String> {
    let api: Api<Event> = Api::namespaced(emu.kube_client(), STATUS_NAMESPACE);
    let mut out: Vec<String> = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.involved_object.name.as_deref() == Some(app))
        .filter_map(|e| e.reason)
        .collect();
    out.sort();
    out
}

fn deployed(app: &str, rev: &str) -> (String, String, String) {
    ("on-deployed".into(), app.into(), rev.into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bootstrap_and_sync_signal_once_per_revision_and_record_events() {
    let (url, seen) = receiver().await;
    let repo = GitRepo::new();
    // Signals name a commit: the root (and the apps it inherits to) at
    // HEAD, not the work tree.
    repo.repo.write(
        "root.yaml",
        "apiVersion: kubesync.dev/v1alpha1\nkind: Application\nmetadata: {name: root}\nspec:\n  tier: system\n  source: {path: apps, targetRevision: HEAD, directory: {recurse: false}}\n",
    );
    cm_app(&repo, "a", "ns-a", "k: v1", "");
    cm_app(&repo, "b", "ns-b", "k: v1", "");
    let first = repo.commit("first");
    let secret = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(secret.path(), format!("{KEY}\n")).unwrap();
    let secret = secret.path().to_str().unwrap().to_string();
    let emu = emulator(fast_simulation()).await;
    let root = repo.repo.root();
    // The command with the signal flags.
    let with_signals = |cmd: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = cmd.iter().map(|s| s.to_string()).collect();
        v.extend([
            "--notify-webhook".into(),
            url.clone(),
            "--notify-webhook-secret-file".into(),
            secret.clone(),
        ]);
        v
    };
    let oneshot = |cmd: &[&str]| {
        let args = with_signals(cmd);
        let (root, emu_url) = (root.clone(), emu.url());
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            run(&root, &emu_url, &args).await
        }
    };

    // A dry run writes no status: no ledger, so no signal and no event.
    let out = oneshot(&["bootstrap", "--dry-run"]).await;
    assert_eq!(out.status.code(), Some(1), "OutOfSync: {}", text(&out));
    assert!(seen.lock().is_empty(), "a signal from a dry run");

    // bootstrap: every app signals once (the root too), with the full
    // commit, before the command exits; the ledger and the events are in.
    let out = oneshot(&["bootstrap"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        received(&seen),
        [
            deployed("a", &first),
            deployed("b", &first),
            deployed("root", &first)
        ],
        "{}",
        text(&out)
    );
    for app in ["a", "b"] {
        let ledger = status_of(&emu, app).await.notifications;
        assert_eq!(ledger.len(), 1, "{ledger:#?}");
        assert_eq!(ledger[0].outcome, DeliveryOutcome::Sent);
        assert_eq!(ledger[0].revision, first);
        assert_eq!(reasons(&emu, app).await, ["SyncStarted", "SyncSucceeded"]);
    }

    // Again, as separate processes: the ledger says it was sent.
    let out = oneshot(&["bootstrap"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = oneshot(&["sync", "a"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        received(&seen).len(),
        3,
        "a signal again at the same revision"
    );
    assert_eq!(reasons(&emu, "a").await, ["SyncStarted", "SyncSucceeded"]);

    // A new commit synced with `sync a`: a's signal at it, b's none.
    repo.repo
        .write("objects/a/cm.yaml", &configmap("a", "k: v2"));
    let second = repo.commit("second");
    let out = oneshot(&["sync", "a"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let got = received(&seen);
    assert_eq!(got.len(), 4, "{got:?}");
    assert!(got.contains(&deployed("a", &second)), "{got:?}");

    // A bad setting is a usage error, before anything is written.
    let out = run(
        &root,
        &emu.url(),
        &["sync", "a", "--notify-webhook", "ftp://x"],
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("--notify-webhook"), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn apps_synced_from_the_work_tree_are_named_as_not_signalled() {
    let (url, seen) = receiver().await;
    let repo = GitRepo::new();
    cm_app(&repo, "a", "ns-a", "k: v1", "");
    repo.commit("first");
    let emu = emulator(fast_simulation()).await;
    let out = run(
        &repo.repo.root(),
        &emu.url(),
        &["bootstrap", "--notify-webhook", &url],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(seen.lock().is_empty());
    assert!(
        text(&out).contains("2 application(s) were synced from the work tree"),
        "{}",
        text(&out)
    );
}
