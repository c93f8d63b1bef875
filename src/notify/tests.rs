use super::*;
use crate::sync::status::ApplicationStatus;

fn state(rev: &str, result: SyncResult, health: Health) -> AppState {
    AppState {
        app: "web".into(),
        namespace: "web".into(),
        revision: rev.into(),
        sync: SyncStatus::Synced,
        health,
        health_message: String::new(),
        result,
        objects: vec![],
        started_at: "2026-01-01T00:00:00Z".into(),
        finished_at: "2026-01-01T00:00:05Z".into(),
    }
}

fn hook() -> Target {
    Target::Webhook {
        url: "https://hooks.example.com/services/T0/B0/SECRETTOKEN".into(),
    }
}

fn deliver(
    ledger: &[NotificationRecord],
    s: &AppState,
    targets: &[Target],
    ok: bool,
) -> Vec<NotificationRecord> {
    let mut ledger = settle(s, ledger);
    for sig in due(s, targets, &ledger) {
        let r = if ok {
            Ok(())
        } else {
            Err(NotifyError::NotConfigured("test", "web".into()))
        };
        ledger = record(&ledger, &sig, &r, "t");
    }
    ledger
}

#[test]
fn deployed_once_per_revision() {
    let targets = [hook(), Target::S3];
    let s = state("aaa111", SyncResult::Succeeded, Health::Healthy);
    let d = due(&s, &targets, &[]);
    assert_eq!(d.len(), 2);
    assert!(d.iter().all(|x| x.trigger == Trigger::Deployed));
    let ledger = deliver(&[], &s, &targets, true);
    assert_eq!(ledger.len(), 2);
    // Every later check at the same revision: nothing due, ledger as is.
    assert!(due(&s, &targets, &ledger).is_empty());
    assert_eq!(settle(&s, &ledger), ledger);
    // A new revision is due again, replacing the entries (bounded ledger).
    let s2 = state("bbb222", SyncResult::Succeeded, Health::Healthy);
    assert_eq!(due(&s2, &targets, &ledger).len(), 2);
    let ledger2 = deliver(&ledger, &s2, &targets, true);
    assert_eq!(ledger2.len(), 2);
    assert!(ledger2.iter().all(|r| r.revision == "bbb222"));
    // Not yet healthy, or not synced: not deployed.
    assert!(due(
        &state("c", SyncResult::Succeeded, Health::Progressing),
        &targets,
        &[]
    )
    .is_empty());
    let mut oos = state("c", SyncResult::Succeeded, Health::Healthy);
    oos.sync = SyncStatus::OutOfSync;
    assert!(due(&oos, &targets, &[]).is_empty());
    // No commit to wait for: no signal.
    assert!(due(
        &state("worktree", SyncResult::Succeeded, Health::Healthy),
        &targets,
        &[]
    )
    .is_empty());
}

#[test]
fn the_ledger_survives_a_restart_through_the_status() {
    let targets = [hook(), Target::S3];
    let s = state("aaa111", SyncResult::Succeeded, Health::Healthy);
    let ledger = deliver(&[], &s, &targets, true);
    let status = ApplicationStatus {
        notifications: ledger.clone(),
        ..Default::default()
    };
    let wire = serde_json::json!({ "status": serde_json::to_value(&status).unwrap() });
    // What a new leader reads back: nothing due.
    let read = ApplicationStatus::of(&wire).notifications;
    assert_eq!(read, ledger);
    assert!(due(&s, &targets, &read).is_empty());
    // The stored form names no secret.
    let text = wire.to_string();
    assert!(
        !text.contains("SECRETTOKEN") && !text.contains("services"),
        "{text}"
    );
    assert!(text.contains("\"trigger\":\"on-deployed\""), "{text}");
    assert!(text.contains("webhook:hooks.example.com#"), "{text}");
    // An old status without the field still parses, and writes no field.
    let old = serde_json::json!({"status": {"deployedRevision": "x"}});
    let st = ApplicationStatus::of(&old);
    assert!(st.notifications.is_empty());
    assert!(serde_json::to_value(&st)
        .unwrap()
        .get("notifications")
        .is_none());
}

#[test]
fn failures_are_retried_for_a_few_rounds_then_given_up() {
    let targets = [hook()];
    let s = state("aaa111", SyncResult::Succeeded, Health::Healthy);
    let mut ledger = vec![];
    for round in 1..=MAX_ROUNDS {
        assert_eq!(due(&s, &targets, &ledger).len(), 1, "round {round}");
        ledger = deliver(&ledger, &s, &targets, false);
        assert_eq!(ledger[0].attempts, round);
        assert_eq!(ledger[0].outcome, DeliveryOutcome::Failed);
        assert!(ledger[0].error.contains("not configured"));
    }
    assert!(due(&s, &targets, &ledger).is_empty());
    // A new revision starts over.
    let s2 = state("bbb222", SyncResult::Succeeded, Health::Healthy);
    assert_eq!(due(&s2, &targets, &ledger).len(), 1);
    let ledger2 = deliver(&ledger, &s2, &targets, true);
    assert_eq!(
        (ledger2[0].attempts, ledger2[0].outcome),
        (1, DeliveryOutcome::Sent)
    );
    assert!(ledger2[0].error.is_empty());
}

#[test]
fn failure_triggers_fire_once_per_episode() {
    let targets = [hook(), Target::S3];
    let failed = state(
        "aaa111",
        SyncResult::Failed("boom".into()),
        Health::Degraded,
    );
    let d = due(&failed, &targets, &[]);
    // The version file only means "deployed".
    assert_eq!(
        d.iter()
            .map(|s| (s.trigger, s.target.id() == "s3"))
            .collect::<Vec<_>>(),
        [
            (Trigger::SyncFailed, false),
            (Trigger::HealthDegraded, false)
        ]
    );
    let ledger = deliver(&[], &failed, &targets, true);
    // Still failing: nothing more.
    assert!(due(&failed, &targets, &settle(&failed, &ledger)).is_empty());
    // Recovered at the same revision: deployed goes out, the episode ends…
    let ok = state("aaa111", SyncResult::Succeeded, Health::Healthy);
    let ledger = deliver(&ledger, &ok, &targets, true);
    assert!(
        ledger.iter().all(|r| r.trigger == Trigger::Deployed),
        "{ledger:?}"
    );
    // …so failing again at that revision is news again.
    assert_eq!(due(&failed, &targets, &settle(&failed, &ledger)).len(), 2);
    // A blocked run says nothing and changes nothing.
    let blocked = state("aaa111", SyncResult::NotRun, Health::Degraded);
    assert!(due(&blocked, &targets, &ledger).is_empty());
    assert_eq!(settle(&blocked, &ledger), ledger);
}

#[test]
fn targets_from_settings_and_annotation() {
    let cfg = NotifyConfig {
        webhook: Some("https://ci.example.com/hook".into()),
        ..Default::default()
    };
    let t = targets_for(&cfg, Some(" https://team.example.com/x "));
    assert_eq!(t.len(), 2);
    assert_eq!(
        targets_for(&cfg, Some("https://ci.example.com/hook")).len(),
        1
    );
    assert_eq!(targets_for(&cfg, Some("not a url")).len(), 1);
    assert!(targets_for(&NotifyConfig::default(), None).is_empty());
    let obj = serde_json::json!({"metadata": {"annotations": {WEBHOOK_ANNOTATION: "https://a.example/h"}}});
    assert_eq!(webhook_annotation(&obj), Some("https://a.example/h"));
    // Different URLs on one host are different targets, neither shown.
    let a = Target::Webhook {
        url: "https://h.example/a?token=1".into(),
    }
    .id();
    let b = Target::Webhook {
        url: "https://h.example/b?token=2".into(),
    }
    .id();
    assert_ne!(a, b);
    assert!(a.starts_with("webhook:h.example#") && !a.contains("token"));
}

#[test]
fn settings_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "s3cr3t\n").unwrap();
    let args = NotifyArgs {
        webhook: Some("https://ci.example.com/hook".into()),
        webhook_secret_file: Some(secret.clone()),
        aws_region: "eu-west-1".into(),
        ..Default::default()
    };
    let cfg = args.config().unwrap();
    assert_eq!(cfg.webhook_secret.as_deref(), Some(&b"s3cr3t"[..]));
    assert!(!format!("{cfg:?}").contains("s3cr3t"));
    assert!(cfg.s3.is_none());

    let bad = NotifyArgs {
        webhook: Some("ftp://x/token123".into()),
        ..Default::default()
    };
    let err = bad.config().unwrap_err().to_string();
    assert!(
        err.contains("not an http(s) URL") && !err.contains("token123"),
        "{err}"
    );
    let missing = NotifyArgs {
        webhook_secret_file: Some(dir.path().join("nope")),
        ..Default::default()
    };
    assert!(matches!(
        missing.config(),
        Err(ConfigError::SecretFile { .. })
    ));

    let s3 = NotifyArgs {
        s3_bucket: Some("versions".into()),
        aws_region: "eu-west-1".into(),
        ..Default::default()
    };
    assert_eq!(
        s3.config().unwrap_err(),
        ConfigError::S3Missing("CLUSTER_NAME (--cluster-name)")
    );
    let s3 = NotifyArgs {
        cluster_name: Some("prod".into()),
        aws_access_key_id: Some("AKIA".into()),
        aws_secret_access_key: Some("sk".into()),
        ..s3
    };
    let cfg = s3.config().unwrap();
    assert_eq!(
        cfg.s3.unwrap().endpoint,
        "https://s3.eu-west-1.amazonaws.com"
    );
}

#[test]
fn notify_args_parse_from_flags_and_env_names() {
    use clap::Parser;
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        notify: NotifyArgs,
    }
    let cli = Cli::try_parse_from([
        "x",
        "--notify-webhook",
        "https://ci.example.com/h",
        "--s3-bucket",
        "b",
        "--aws-endpoint-url",
        "http://127.0.0.1:9000",
        "--aws-region",
        "eu-west-1",
    ])
    .unwrap();
    assert_eq!(cli.notify.s3_bucket.as_deref(), Some("b"));
    assert_eq!(cli.notify.aws_region, "eu-west-1");
    // The cluster's name is the global --cluster-name's, not a flag here.
    assert_eq!(cli.notify.cluster_name, None);
    assert!(Cli::try_parse_from(["x", "--cluster-name", "prod"]).is_err());
    // The environment names are the AWS SDKs' and git-sync-operator's.
    let help = <Cli as clap::CommandFactory>::command()
        .render_long_help()
        .to_string();
    for env in [
        "KUBESYNC_NOTIFY_WEBHOOK",
        "S3_BUCKET",
        "AWS_ENDPOINT_URL",
        "AWS_REGION",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
    ] {
        assert!(help.contains(env), "{env} missing from help:\n{help}");
    }
}

#[test]
fn webhook_event_has_flux_fields() {
    let s = state(
        "0123456789abcdef",
        SyncResult::Failed("Deployment web/web: forbidden".into()),
        Health::Healthy,
    );
    let sig = Signal {
        trigger: Trigger::SyncFailed,
        target: hook(),
        revision: s.revision.clone(),
    };
    let e = serde_json::to_value(webhook_event(&s, &sig, Some("prod"))).unwrap();
    assert_eq!(e["involvedObject"]["kind"], "Application");
    assert_eq!(e["involvedObject"]["namespace"], "kubesync-system");
    assert_eq!(e["severity"], "error");
    assert_eq!(e["reason"], "SyncFailed");
    assert_eq!(e["metadata"]["revision"], "0123456789abcdef");
    assert_eq!(e["metadata"]["cluster"], "prod");
    assert_eq!(e["trigger"], "on-sync-failed");
    assert_eq!(
        e["message"],
        "web failed to sync revision 0123456: Deployment web/web: forbidden"
    );
    assert_eq!(e["deliveryId"].as_str().unwrap().len(), 32);
    // Stable across retries and restarts.
    assert_eq!(
        webhook_event(&s, &sig, None).delivery_id,
        e["deliveryId"].as_str().unwrap()
    );
}

#[test]
fn signatures_verify() {
    let body = br#"{"app":"web"}"#;
    let sig = sign(b"key", body);
    assert!(sig.starts_with("sha256=") && sig.len() == 7 + 64);
    assert!(verify(b"key", body, &sig));
    assert!(!verify(b"other", body, &sig));
    assert!(!verify(b"key", b"{}", &sig));
    assert!(!verify(b"key", body, "sha1=00"));
    // RFC 4231 test case 2.
    assert_eq!(
        sign(b"Jefe", b"what do ya want for nothing?"),
        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
}
