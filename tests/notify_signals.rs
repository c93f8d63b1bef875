//! Completion signals end to end: the webhook against a small axum
//! receiver (signature, retries after 500s, once per revision through the
//! ledger, failure events, a receiver that refuses), and the S3 version
//! file against a real S3-compatible server on loopback (PyPI's `moto` in
//! server mode, with authentication on): the file written with the right
//! key and body; wrong credentials, a missing bucket and an unreachable
//! endpoint each a clear error value with nothing secret in it. `.ci/run`
//! installs moto; in CI its absence fails the test, elsewhere it skips.

mod support;

use std::time::Duration;

use kubesync::diff::SyncStatus;
use kubesync::health::Health;
use kubesync::notify::*;
use support::receiver::Receiver;
use support::s3::{Moto, BUCKET};

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
    let rx = Receiver::start(2, 200).await;
    let n = notifier(&rx.url, b"hmac-key");
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
        let seen = rx.requests();
        // Two 500s, then delivered: three identical, signed requests.
        assert_eq!(seen.len(), 3);
        for (h, body) in &seen {
            let sig = h[SIGNATURE_HEADER].to_str().unwrap();
            assert!(verify(b"hmac-key", body, sig), "signature must verify");
            assert!(!verify(b"wrong-key", body, sig));
            assert_eq!(h["x-kubesync-event"], "on-deployed");
            assert_eq!(h["content-type"], "application/json");
            assert_eq!(h["x-kubesync-delivery"], seen[0].0["x-kubesync-delivery"]);
        }
        let ev: serde_json::Value = serde_json::from_slice(&seen[0].1).unwrap();
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
    assert_eq!(rx.count(), 3);

    // A new revision is signalled.
    let s2 = state("fedcba9876543210", SyncResult::Succeeded, Health::Healthy);
    let (ledger2, results) = n.notify(&s2, &targets, &ledger).await;
    assert_eq!(results.len(), 1);
    assert_eq!(ledger2[0].revision, "fedcba9876543210");
    assert_eq!(rx.count(), 4);
}

#[tokio::test]
async fn failure_and_degradation_events() {
    let rx = Receiver::ok().await;
    let n = notifier(&rx.url, b"k");
    let targets = targets_for(n.config(), None);
    let mut s = state(
        "0123456789abcdef0123",
        SyncResult::Failed("Deployment web-prod/web: admission webhook denied".into()),
        Health::Degraded,
    );
    s.health_message = "Deployment web-prod/web: ImagePullBackOff".into();
    let (ledger, results) = n.notify(&s, &targets, &[]).await;
    assert_eq!(results.len(), 2);
    let events = rx.bodies();
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
    let rx = Receiver::start(usize::MAX, 200).await;
    let n = notifier(&rx.url, b"k");
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
    assert_eq!(rx.count(), 4);
    assert_eq!(ledger[0].outcome, DeliveryOutcome::Failed);
    assert_eq!(ledger[0].error, msg);

    // A 4xx is not retried.
    let rx = Receiver::start(0, 403).await;
    let n = notifier(&rx.url, b"k");
    let (_, results) = n.notify(&s, &targets_for(n.config(), None), &[]).await;
    assert!(matches!(
        results[0].1,
        Err(NotifyError::Webhook {
            status: Some(403),
            attempts: 1,
            ..
        })
    ));
    assert_eq!(rx.count(), 1);

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
    let (grx, orx) = (Receiver::ok().await, Receiver::ok().await);
    let (global, own) = (grx.url.clone(), orx.url.clone());
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
    assert_eq!(grx.count(), 1);
    assert_eq!(orx.count(), 1);
}

// ---------------------------------------------------------------- S3 (moto)

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
    let Some(moto) = tokio::task::spawn_blocking(|| Moto::start("the S3 test"))
        .await
        .unwrap()
    else {
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
    let body = moto
        .get_object(BUCKET, "prod-eu/web-prod/web/0123456789abcdef0123")
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
