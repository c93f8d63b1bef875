use std::time::{Duration, UNIX_EPOCH};

use super::*;
use crate::health::HealthStatus;
use crate::model::AppName;

/// The value of the one sample named `name` whose labels contain every
/// `key="value"` of `labels`; `None` when there is no such sample.
pub(super) fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let found: Vec<f64> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (n, rest) = series.split_once('{').unwrap_or((series, "}"));
            if n != name {
                return None;
            }
            let all = labels
                .iter()
                .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
            all.then(|| value.parse().ok()).flatten()
        })
        .collect();
    assert!(found.len() <= 1, "{name} {labels:?} matches several series");
    found.first().copied()
}

fn report(app: &str, outcome: AppOutcome, health: HealthStatus, secs: u64) -> AppReport {
    AppReport {
        name: AppName::new(app).unwrap(),
        tier: Tier::App,
        namespace: Some(app.into()),
        revision: "abc1234".into(),
        outcome,
        sync: SyncStatus::Synced,
        health,
        changes: vec![],
        duration: Duration::from_secs(secs),
    }
}

#[test]
fn values_after_a_sequence_of_calls() {
    let m = Metrics::new();
    m.run_finished(RunType::Full, true, Duration::from_millis(1500));
    m.run_finished(RunType::Full, true, Duration::from_millis(500));
    m.run_finished(RunType::Quick, false, Duration::from_secs(3));
    m.file_applied("apps/web/deploy.yaml", true);
    m.file_applied("apps/web/deploy.yaml", true);
    m.file_applied("apps/web/deploy.yaml", false);
    m.app_synced(&report(
        "web",
        AppOutcome::Succeeded,
        HealthStatus::healthy(""),
        2,
    ));
    m.app_synced(&report(
        "web",
        AppOutcome::Failed {
            failure: crate::sync::SyncFailure::Render {
                kind: crate::tree::FailureKind::Render,
                message: "boom".into(),
            },
        },
        HealthStatus::healthy(""),
        1,
    ));
    m.app_synced(&report(
        "db",
        AppOutcome::TimedOut { after_secs: 5 },
        HealthStatus::progressing("rolling"),
        5,
    ));
    m.drift_detected("web");
    m.drift_detected("web");
    m.set_leader(true);
    m.webhook_delivery(WebhookProvider::GitHub, WebhookOutcome::Accepted);
    m.webhook_delivery(WebhookProvider::GitHub, WebhookOutcome::Unauthorized);
    m.webhook_delivery(WebhookProvider::GitHub, WebhookOutcome::Accepted);
    m.notification(
        NotificationKind::S3,
        NotificationTrigger::Deployed,
        NotificationOutcome::Sent,
    );
    let at = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    m.git_polled_at(
        "https://git.example.com/org/config.git",
        PollResult::Success,
        Duration::from_millis(40),
        at,
    );
    m.git_polled_at(
        "https://git.example.com/org/config.git",
        PollResult::Failure,
        Duration::from_millis(10),
        at + Duration::from_secs(60),
    );

    let t = m.encode();
    let full_ok = [("success", "true"), ("run_type", "full")];
    assert_eq!(
        sample(&t, "kubesync_run_latency_seconds_count", &full_ok),
        Some(2.0)
    );
    assert_eq!(
        sample(&t, "kubesync_run_latency_seconds_sum", &full_ok),
        Some(2.0)
    );
    assert_eq!(
        sample(
            &t,
            "kubesync_run_latency_seconds_count",
            &[("success", "false"), ("run_type", "quick")]
        ),
        Some(1.0)
    );
    let bucket = |le| {
        sample(
            &t,
            "kubesync_run_latency_seconds_bucket",
            &[("success", "true"), ("run_type", "full"), ("le", le)],
        )
    };
    assert_eq!(bucket("0.8"), Some(1.0), "{t}");
    assert_eq!(bucket("1.6"), Some(2.0));
    let file = "apps/web/deploy.yaml";
    assert_eq!(
        sample(
            &t,
            "kubesync_file_apply_count_total",
            &[("file", file), ("success", "true")]
        ),
        Some(2.0)
    );
    assert_eq!(
        sample(
            &t,
            "kubesync_file_apply_count_total",
            &[("file", file), ("success", "false")]
        ),
        Some(1.0)
    );
    for (app, result, n) in [
        ("web", "Succeeded", 1.0),
        ("web", "Failed", 1.0),
        ("db", "TimedOut", 1.0),
    ] {
        assert_eq!(
            sample(
                &t,
                "kubesync_app_sync_total",
                &[("app", app), ("result", result)]
            ),
            Some(n)
        );
    }
    assert_eq!(
        sample(
            &t,
            "kubesync_app_reconcile_duration_seconds_sum",
            &[("app", "web")]
        ),
        Some(3.0)
    );
    assert_eq!(
        sample(
            &t,
            "kubesync_app_info",
            &[("app", "db"), ("health", "Progressing"), ("tier", "app")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&t, "kubesync_drift_detected_total", &[("app", "web")]),
        Some(2.0)
    );
    assert_eq!(sample(&t, "kubesync_leader", &[]), Some(1.0));
    assert_eq!(
        sample(
            &t,
            "kubesync_webhook_deliveries_total",
            &[("provider", "github"), ("outcome", "accepted")]
        ),
        Some(2.0)
    );
    assert_eq!(
        sample(
            &t,
            "kubesync_notifications_total",
            &[
                ("kind", "s3"),
                ("trigger", "on-deployed"),
                ("outcome", "sent")
            ]
        ),
        Some(1.0)
    );
    let repo = [("repository", "https://git.example.com/org/config.git")];
    assert_eq!(
        sample(
            &t,
            "kubesync_git_poll_total",
            &[repo[0], ("result", "failure")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&t, "kubesync_git_poll_duration_seconds_count", &repo),
        Some(2.0)
    );
    // The last *successful* poll, not the last poll.
    assert_eq!(
        sample(
            &t,
            "kubesync_git_poll_last_success_timestamp_seconds",
            &repo
        ),
        Some(1_700_000_000.0)
    );
    m.set_leader(false);
    assert_eq!(sample(&m.encode(), "kubesync_leader", &[]), Some(0.0));
    assert!(t.ends_with("# EOF\n"));
}

#[test]
fn the_info_series_is_replaced_not_added() {
    let m = Metrics::new();
    let info = |revision, health| AppInfo {
        app: "web",
        sync: SyncStatus::Synced,
        health,
        tier: Tier::System,
        revision,
    };
    m.app_info(info("aaa1111", Health::Progressing));
    m.app_info(info("aaa1111", Health::Healthy));
    m.app_info(info("bbb2222", Health::Healthy));
    m.app_info(AppInfo {
        app: "db",
        ..info("ccc3333", Health::Degraded)
    });
    let t = m.encode();
    let series: Vec<&str> = t
        .lines()
        .filter(|l| l.starts_with("kubesync_app_info{"))
        .collect();
    assert_eq!(series.len(), 2, "{t}");
    assert_eq!(
        sample(
            &t,
            "kubesync_app_info",
            &[
                ("app", "web"),
                ("revision", "bbb2222"),
                ("health", "Healthy"),
                ("sync", "Synced"),
                ("tier", "system")
            ]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&t, "kubesync_app_info", &[("revision", "aaa1111")]),
        None
    );

    // An app that leaves the tree leaves no series behind.
    m.app_synced(&report(
        "db",
        AppOutcome::Succeeded,
        HealthStatus::healthy(""),
        1,
    ));
    m.drift_detected("db");
    m.app_removed("db");
    let t = m.encode();
    assert!(
        !t.lines().any(|l| l.contains("app=\"db\"")),
        "stale series of a removed app:\n{t}"
    );
    assert_eq!(
        sample(&t, "kubesync_app_info", &[("app", "web")]),
        Some(1.0)
    );
}

#[test]
fn no_secret_reaches_a_label() {
    let m = Metrics::new();
    let urls = [
        "https://alice:s3cr3t-pass@git.example.com/org/a.git",
        "https://ghp_TOKENTOKEN@github.com/org/b.git",
        "ssh://git:hunter2-key@git.example.com/org/c",
        "https://git.example.com/org/d.git?private_token=glpat-SECRETX",
        "https://git.example.com/org/e.git#access_token=SECRETY",
    ];
    for u in urls {
        m.git_polled(u, PollResult::Success, Duration::from_millis(5));
    }
    let t = m.encode() + &m.encode_text();
    for secret in [
        "s3cr3t",
        "alice",
        "ghp_TOKEN",
        "hunter2",
        "glpat",
        "SECRETX",
        "SECRETY",
        "token",
    ] {
        assert!(!t.contains(secret), "{secret} in:\n{t}");
    }
    assert!(t.contains("repository=\"https://git.example.com/org/a.git\""));
    assert!(t.contains("repository=\"ssh://git@git.example.com/org/c\""));
    assert!(t.contains("repository=\"https://git.example.com/org/d.git\""));
}

#[test]
fn label_values_are_escaped() {
    let m = Metrics::new();
    m.file_applied("odd \"name\"\\with\nnewline.yaml", true);
    let t = m.encode();
    assert!(
        t.contains(r#"file="odd \"name\"\\with\nnewline.yaml""#),
        "{t}"
    );
}

#[test]
fn classic_text_renames_counter_families() {
    let m = Metrics::new();
    m.drift_detected("web");
    m.run_finished(RunType::Full, true, Duration::from_secs(1));
    let text = m.encode_text();
    assert!(text.contains("# HELP kubesync_drift_detected_total "));
    assert!(text.contains("# TYPE kubesync_drift_detected_total counter"));
    assert!(text.contains("kubesync_drift_detected_total{app=\"web\"} 1"));
    assert!(text.contains("# TYPE kubesync_run_latency_seconds histogram"));
    assert!(!text.contains("# EOF"));
    assert!(!text.contains("# UNIT"));
    // Every HELP is immediately followed by the TYPE of the same name.
    let lines: Vec<&str> = text.lines().collect();
    for (i, l) in lines.iter().enumerate() {
        if let Some(rest) = l.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap();
            assert!(
                lines[i + 1].starts_with(&format!("# TYPE {name} ")),
                "{l} / {}",
                lines[i + 1]
            );
        }
    }
}

/// `prometheus-client` leaves out families without series: before the
/// first run only the leader gauge is there; each family appears with its
/// first series.
#[test]
fn families_appear_with_their_first_series() {
    let m = Metrics::new();
    let families = |t: &str| -> Vec<String> {
        t.lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .map(|l| l.split(' ').next().unwrap().to_string())
            .collect()
    };
    assert_eq!(families(&m.encode()), ["kubesync_leader"]);
    m.run_finished(RunType::Full, true, Duration::from_secs(1));
    m.file_applied("a.yaml", true);
    m.app_synced(&report(
        "web",
        AppOutcome::Succeeded,
        HealthStatus::healthy(""),
        1,
    ));
    m.git_polled(
        "https://h/r.git",
        PollResult::Success,
        Duration::from_millis(1),
    );
    m.drift_detected("web");
    m.webhook_delivery(WebhookProvider::Generic, WebhookOutcome::Invalid);
    m.notification(
        NotificationKind::Webhook,
        NotificationTrigger::SyncFailed,
        NotificationOutcome::Failed,
    );
    let mut got = families(&m.encode());
    got.sort();
    assert_eq!(
        got,
        [
            "kubesync_app_info",
            "kubesync_app_reconcile_duration_seconds",
            "kubesync_app_sync",
            "kubesync_drift_detected",
            "kubesync_file_apply_count",
            "kubesync_git_poll",
            "kubesync_git_poll_duration_seconds",
            "kubesync_git_poll_last_success_timestamp_seconds",
            "kubesync_leader",
            "kubesync_notifications",
            "kubesync_run_latency_seconds",
            "kubesync_webhook_deliveries",
        ]
    );
}
