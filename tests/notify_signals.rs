//! Completion signals end to end: the webhook against a small axum
//! receiver (signature, retries after 500s, once per revision through the
//! ledger, failure events, a receiver that refuses), and the S3 version
//! file against a real S3-compatible server on loopback (PyPI's `moto` in
//! server mode, with authentication on): the file written with the right
//! key and body; wrong credentials, a missing bucket and an unreachable
//! endpoint each a clear error value with nothing secret in it. `.ci/run`
//! installs moto; in CI its absence fails the test, elsewhere it skips.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use kubesync::diff::SyncStatus;
use kubesync::health::Health;
use kubesync::notify::*;
use parking_lot::Mutex;

#[derive(Default)]
struct Receiver {
    /// Answer 500 to this many requests first.
    fail_first: usize,
    /// Then answer this status (200 when None).
    answer: Option<u16>,
    seen: Vec<(HeaderMap, Bytes)>,
}

async fn receive(
    State(r): State<Arc<Mutex<Receiver>>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let mut r = r.lock();
    r.seen.push((headers, body));
    if r.seen.len() <= r.fail_first {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    StatusCode::from_u16(r.answer.unwrap_or(200)).unwrap()
}

async fn receiver(fail_first: usize, answer: Option<u16>) -> (String, Arc<Mutex<Receiver>>) {
    let state = Arc::new(Mutex::new(Receiver {
        fail_first,
        answer,
        seen: vec![],
    }));
    let app = Router::new()
        .route("/hook/{token}", post(receive))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hook/TOKEN-abc123"), state)
}

fn fast() -> WebhookPolicy {
    WebhookPolicy {
        attempts: 4,
        backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(80),
        timeout: Duration::from_secs(5),
    }
}

fn state(rev: &str, result: SyncResult, health: Health) -> AppState {
    AppState {
        app: "web".into(),
        namespace: "web-prod".into(),
        revision: rev.into(),
        sync: SyncStatus::Synced,
        health,
        health_message: String::new(),
        result,
        objects: vec![ObjectSummary {
            group: "apps".into(),
            version: "v1".into(),
            kind: "Deployment".into(),
            namespace: Some("web-prod".into()),
            name: "web".into(),
            action: "configured".into(),
        }],
        started_at: "2026-11-25T21:00:00Z".into(),
        finished_at: "2026-11-25T21:00:07Z".into(),
    }
}

fn notifier(url: &str, secret: &[u8]) -> Notifier {
    Notifier::new(NotifyConfig {
        webhook: Some(url.into()),
        webhook_secret: Some(secret.to_vec()),
        s3: None,
        policy: fast(),
    })
}

#[tokio::test]
async fn webhook_signed_retried_and_sent_once_per_revision() {
    let (url, rx) = receiver(2, None).await;
    let n = notifier(&url, b"hmac-key");
    let targets = targets_for(n.config(), None);
    let s = state(
        "0123456789abcdef0123",
        SyncResult::Succeeded,
        Health::Healthy,
    );

    let (ledger, results) = n.notify(&s, &targets, &[]).await;
    assert_eq!(results.len(), 1);
    assert!(results[0].1.is_ok(), "{:?}", results[0].1);
    {
        let r = rx.lock();
        // Two 500s, then delivered: three identical, signed requests.
        assert_eq!(r.seen.len(), 3);
        for (h, body) in &r.seen {
            let sig = h[SIGNATURE_HEADER].to_str().unwrap();
            assert!(verify(b"hmac-key", body, sig), "signature must verify");
            assert!(!verify(b"wrong-key", body, sig));
            assert_eq!(h["x-kubesync-event"], "on-deployed");
            assert_eq!(h["content-type"], "application/json");
            assert_eq!(h["x-kubesync-delivery"], r.seen[0].0["x-kubesync-delivery"]);
        }
        let ev: serde_json::Value = serde_json::from_slice(&r.seen[0].1).unwrap();
        assert_eq!(ev["app"], "web");
        assert_eq!(ev["namespace"], "web-prod");
        assert_eq!(ev["revision"], "0123456789abcdef0123");
        assert_eq!(ev["sync"], "Synced");
        assert_eq!(ev["health"], "Healthy");
        assert_eq!(ev["severity"], "info");
        assert_eq!(ev["reason"], "Deployed");
        assert_eq!(ev["involvedObject"]["name"], "web");
        assert_eq!(ev["objects"][0]["kind"], "Deployment");
        assert_eq!(ev["startedAt"], "2026-11-25T21:00:00Z");
        assert_eq!(ev["finishedAt"], "2026-11-25T21:00:07Z");
    }
    assert_eq!(ledger.len(), 1);
    assert_eq!(ledger[0].outcome, DeliveryOutcome::Sent);
    assert!(!ledger[0].target.contains("TOKEN"), "{:?}", ledger[0]);

    // The next checks at the same revision (or a new leader reading the
    // ledger back from the status) send nothing.
    for _ in 0..3 {
        let (again, results) = n.notify(&s, &targets, &ledger).await;
        assert!(results.is_empty());
        assert_eq!(again, ledger);
    }
    assert_eq!(rx.lock().seen.len(), 3);

    // A new revision is signalled.
    let s2 = state("fedcba9876543210", SyncResult::Succeeded, Health::Healthy);
    let (ledger2, results) = n.notify(&s2, &targets, &ledger).await;
    assert_eq!(results.len(), 1);
    assert_eq!(ledger2[0].revision, "fedcba9876543210");
    assert_eq!(rx.lock().seen.len(), 4);
}

#[tokio::test]
async fn failure_and_degradation_events() {
    let (url, rx) = receiver(0, None).await;
    let n = notifier(&url, b"k");
    let targets = targets_for(n.config(), None);
    let mut s = state(
        "0123456789abcdef0123",
        SyncResult::Failed("Deployment web-prod/web: admission webhook denied".into()),
        Health::Degraded,
    );
    s.health_message = "Deployment web-prod/web: ImagePullBackOff".into();
    let (ledger, results) = n.notify(&s, &targets, &[]).await;
    assert_eq!(results.len(), 2);
    let events: Vec<serde_json::Value> = rx
        .lock()
        .seen
        .iter()
        .map(|(_, b)| serde_json::from_slice(b).unwrap())
        .collect();
    assert_eq!(events[0]["reason"], "SyncFailed");
    assert_eq!(events[0]["severity"], "error");
    assert!(events[0]["message"]
        .as_str()
        .unwrap()
        .contains("admission webhook denied"));
    assert_eq!(events[1]["reason"], "HealthDegraded");
    assert!(events[1]["message"]
        .as_str()
        .unwrap()
        .contains("ImagePullBackOff"));
    // Still failing: no repeat.
    let (_, results) = n.notify(&s, &targets, &ledger).await;
    assert!(results.is_empty());
}

#[tokio::test]
async fn a_receiver_that_keeps_failing_or_refuses_gives_an_error_value() {
    // 500 forever: every attempt made, then a failure naming the target
    // by its safe id.
    let (url, rx) = receiver(usize::MAX, None).await;
    let n = notifier(&url, b"k");
    let targets = targets_for(n.config(), None);
    let s = state(
        "0123456789abcdef0123",
        SyncResult::Succeeded,
        Health::Healthy,
    );
    let (ledger, results) = n.notify(&s, &targets, &[]).await;
    let err = results[0].1.as_ref().unwrap_err();
    assert!(
        matches!(
            err,
            NotifyError::Webhook {
                status: Some(500),
                attempts: 4,
                ..
            }
        ),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("application \"web\"") && msg.contains("500"),
        "{msg}"
    );
    assert!(!msg.contains("TOKEN") && !msg.contains("/hook"), "{msg}");
    assert_eq!(rx.lock().seen.len(), 4);
    assert_eq!(ledger[0].outcome, DeliveryOutcome::Failed);
    assert_eq!(ledger[0].error, msg);

    // A 4xx is not retried.
    let (url, rx) = receiver(0, Some(403)).await;
    let n = notifier(&url, b"k");
    let (_, results) = n.notify(&s, &targets_for(n.config(), None), &[]).await;
    assert!(matches!(
        results[0].1,
        Err(NotifyError::Webhook {
            status: Some(403),
            attempts: 1,
            ..
        })
    ));
    assert_eq!(rx.lock().seen.len(), 1);

    // Nobody listening: a connection error, retried, then an error value.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let n = notifier(&format!("http://{closed}/hook/TOKEN-x"), b"k");
    let (_, results) = n.notify(&s, &targets_for(n.config(), None), &[]).await;
    let msg = results[0].1.as_ref().unwrap_err().to_string();
    assert!(msg.contains("cannot reach the receiver"), "{msg}");
    assert!(!msg.contains("TOKEN"), "{msg}");
}

#[tokio::test]
async fn the_per_app_annotation_adds_a_target() {
    let (global, grx) = receiver(0, None).await;
    let (own, orx) = receiver(0, None).await;
    let n = notifier(&global, b"k");
    let obj = serde_json::json!({"metadata": {"annotations": {WEBHOOK_ANNOTATION: own}}});
    let targets = targets_for(n.config(), webhook_annotation(&obj));
    let s = state(
        "0123456789abcdef0123",
        SyncResult::Succeeded,
        Health::Healthy,
    );
    let (ledger, _) = n.notify(&s, &targets, &[]).await;
    assert_eq!(ledger.len(), 2);
    assert_eq!(grx.lock().seen.len(), 1);
    assert_eq!(orx.lock().seen.len(), 1);
}

// ---------------------------------------------------------------- S3 (moto)

struct Moto {
    child: Child,
    endpoint: String,
    key_id: String,
    secret: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Creates the bucket, an IAM user allowed `s3:PutObject` on it (the
/// seed's push-only policy, plus `s3:GetObject` so the test can read the
/// file back) and its access key, during moto's first unauthenticated
/// requests; prints the key.
const MOTO_SETUP: &str = r#"
import sys, boto3
ep = sys.argv[1]
kw = dict(endpoint_url=ep, region_name="us-east-1", aws_access_key_id="setup", aws_secret_access_key="setup")
boto3.client("s3", **kw).create_bucket(Bucket="kubesync-versions")
iam = boto3.client("iam", **kw)
iam.create_user(UserName="kubesync")
iam.put_user_policy(UserName="kubesync", PolicyName="push", PolicyDocument='{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:PutObject","s3:GetObject"],"Resource":"arn:aws:s3:::kubesync-versions/*"}]}')
k = iam.create_access_key(UserName="kubesync")["AccessKey"]
print(k["AccessKeyId"], k["SecretAccessKey"])
"#;

fn start_moto() -> Option<Moto> {
    let probe = Command::new("moto_server")
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !probe.is_ok_and(|s| s.success()) {
        assert!(
            std::env::var_os("CI").is_none(),
            "moto_server is not installed, and CI is set: .ci/run must install moto[server]"
        );
        eprintln!("skipped: moto_server is not installed (pip install 'moto[server]'); CI unset");
        return None;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("moto_server")
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        // Authentication (IAM) is enforced after the setup's 4 requests.
        .env("INITIAL_NO_AUTH_ACTION_COUNT", "4")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start moto_server");
    let endpoint = format!("http://127.0.0.1:{port}");
    let mut moto = Moto {
        child,
        endpoint,
        key_id: String::new(),
        secret: String::new(),
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "moto_server did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = Command::new("python3")
        .args(["-c", MOTO_SETUP, &moto.endpoint])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "moto setup: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut parts = text.split_whitespace();
    moto.key_id = parts.next().unwrap().to_string();
    moto.secret = parts.next().unwrap().to_string();
    Some(moto)
}

fn s3_notifier(endpoint: &str, key_id: &str, secret: &str, bucket: &str) -> Notifier {
    let args = NotifyArgs {
        s3_bucket: Some(bucket.into()),
        cluster_name: Some("prod-eu".into()),
        aws_endpoint_url: Some(endpoint.into()),
        aws_region: "us-east-1".into(),
        aws_access_key_id: Some(key_id.into()),
        aws_secret_access_key: Some(secret.into()),
        ..Default::default()
    };
    Notifier::new(args.config().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_version_file_against_moto() {
    let Some(moto) = tokio::task::spawn_blocking(start_moto).await.unwrap() else {
        return;
    };
    let s = state(
        "0123456789abcdef0123",
        SyncResult::Succeeded,
        Health::Healthy,
    );

    // Right credentials: the file is written, key and body as the seed says.
    let n = s3_notifier(
        &moto.endpoint,
        &moto.key_id,
        &moto.secret,
        "kubesync-versions",
    );
    let targets = targets_for(n.config(), None);
    assert_eq!(targets, [Target::S3]);
    let (ledger, results) = n.notify(&s, &targets, &[]).await;
    assert!(results[0].1.is_ok(), "{:?}", results[0].1);
    assert_eq!(ledger[0].outcome, DeliveryOutcome::Sent);
    let body = get_object(
        &moto,
        "kubesync-versions",
        "prod-eu/web-prod/web/0123456789abcdef0123",
    )
    .await;
    assert_eq!(body, "2026-11-25T21:00:07Z");
    // Sent once: nothing due on the next checks.
    let (_, results) = n.notify(&s, &targets, &ledger).await;
    assert!(results.is_empty());

    // Wrong secret: a clear error value, no secret in it.
    let bad = s3_notifier(
        &moto.endpoint,
        &moto.key_id,
        "not-the-secret-XYZ",
        "kubesync-versions",
    );
    let err = bad
        .send(
            &s,
            &Signal {
                trigger: Trigger::Deployed,
                target: Target::S3,
                revision: s.revision.clone(),
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            NotifyError::S3 {
                kind: S3ErrorKind::Unauthorized,
                ..
            }
        ),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("access denied") && msg.contains("SignatureDoesNotMatch"),
        "{msg}"
    );
    assert!(
        msg.contains("s3://kubesync-versions/prod-eu/web-prod/web/0123456789abcdef0123"),
        "{msg}"
    );
    assert!(
        !msg.contains("not-the-secret") && !msg.contains(&moto.secret),
        "{msg}"
    );

    // Unknown key id.
    let bad = s3_notifier(
        &moto.endpoint,
        "AKIAUNKNOWNKEY000000",
        "x",
        "kubesync-versions",
    );
    let err = bad
        .send(
            &s,
            &Signal {
                trigger: Trigger::Deployed,
                target: Target::S3,
                revision: s.revision.clone(),
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            NotifyError::S3 {
                kind: S3ErrorKind::Unauthorized,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("InvalidAccessKeyId"), "{err}");

    // A bucket the key may not write (and which does not exist).
    let other = s3_notifier(
        &moto.endpoint,
        &moto.key_id,
        &moto.secret,
        "no-such-bucket-here",
    );
    let err = other
        .send(
            &s,
            &Signal {
                trigger: Trigger::Deployed,
                target: Target::S3,
                revision: s.revision.clone(),
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            NotifyError::S3 {
                kind: S3ErrorKind::Unauthorized | S3ErrorKind::NoSuchBucket,
                ..
            }
        ),
        "{err:?}"
    );

    // Unreachable endpoint: an error value, recorded in the ledger.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let gone = s3_notifier(
        &format!("http://{closed}"),
        &moto.key_id,
        &moto.secret,
        "kubesync-versions",
    );
    let (ledger, results) = gone.notify(&s, &targets, &[]).await;
    let err = results[0].1.as_ref().unwrap_err();
    assert!(
        matches!(
            err,
            NotifyError::S3 {
                kind: S3ErrorKind::Unreachable,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("cannot reach http://127.0.0.1:"),
        "{err}"
    );
    assert_eq!(ledger[0].outcome, DeliveryOutcome::Failed);
    assert!(ledger[0].error.contains("cannot reach"));
    assert!(!ledger[0].error.contains(&moto.secret));
}

/// The object's body, read back with boto3 (an independent S3 client).
async fn get_object(moto: &Moto, bucket: &str, key: &str) -> String {
    let script = r#"
import sys, boto3
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1", aws_access_key_id=sys.argv[4], aws_secret_access_key=sys.argv[5])
try:
    print(s3.get_object(Bucket=sys.argv[2], Key=sys.argv[3])["Body"].read().decode(), end="")
except Exception as e:
    print("ERR", e, file=sys.stderr); sys.exit(1)
"#;
    let args = [
        moto.endpoint.clone(),
        bucket.to_string(),
        key.to_string(),
        moto.key_id.clone(),
        moto.secret.clone(),
    ];
    let out = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg("-c")
            .arg(script)
            .args(&args)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "get_object: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
