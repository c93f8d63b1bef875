use std::time::Duration;

use chrono::TimeZone;

use super::*;
use crate::health::HealthStatus;
use crate::model::{AppName, ObjectRef, Tier};
use crate::sync::status::build_status;
use crate::sync::Action;

fn cm() -> ObjectRef {
    ObjectRef {
        group: String::new(),
        version: "v1".into(),
        kind: "ConfigMap".into(),
        namespace: Some("web".into()),
        name: "conf".into(),
    }
}

fn report(rev: &str, outcome: AppOutcome, health: HealthStatus, action: Action) -> AppReport {
    AppReport {
        name: AppName::new("web").unwrap(),
        tier: Tier::App,
        namespace: Some("web".into()),
        revision: rev.into(),
        outcome,
        sync: SyncStatus::Synced,
        health,
        changes: vec![Change::done(&cm(), action, false)],
        duration: Duration::from_secs(1),
    }
}

fn reasons(events: &[AppEvent]) -> Vec<Reason> {
    events.iter().map(|e| e.reason).collect()
}

#[test]
fn first_sync_then_steady_state() {
    let first = report(
        "aaaaaaa111",
        AppOutcome::Succeeded,
        HealthStatus::healthy(""),
        Action::Created,
    );
    assert_eq!(
        started("web", "aaaaaaa111", None).map(|e| e.reason),
        Some(Reason::SyncStarted)
    );
    let ev = after_sync(&first, None);
    assert_eq!(reasons(&ev), [Reason::SyncSucceeded]);
    assert_eq!(ev[0].message, "synced to revision aaaaaaa: 1 created");
    assert_eq!(ev[0].event_type(), EventType::Normal);

    // The next runs at the same revision change nothing: no event at all.
    let status = build_status(&first, &[], None, "t1");
    let again = report(
        "aaaaaaa111",
        AppOutcome::Succeeded,
        HealthStatus::healthy(""),
        Action::Unchanged,
    );
    assert_eq!(started("web", "aaaaaaa111", Some(&status)), None);
    assert!(after_sync(&again, Some(&status)).is_empty());

    // A new commit is news even when it changes nothing for this app.
    assert!(started("web", "bbbbbbb222", Some(&status)).is_some());
    let newrev = report(
        "bbbbbbb222",
        AppOutcome::Succeeded,
        HealthStatus::healthy(""),
        Action::Unchanged,
    );
    assert_eq!(
        reasons(&after_sync(&newrev, Some(&status))),
        [Reason::SyncSucceeded]
    );
}

#[test]
fn drift_failure_and_degradation() {
    let ok = report(
        "aaaaaaa111",
        AppOutcome::Succeeded,
        HealthStatus::healthy(""),
        Action::Created,
    );
    let status = build_status(&ok, &[], None, "t1");
    // Same revision, something written: someone else's edit was undone.
    let drift = report(
        "aaaaaaa111",
        AppOutcome::Succeeded,
        HealthStatus::healthy(""),
        Action::Configured,
    );
    let ev = after_sync(&drift, Some(&status));
    assert_eq!(reasons(&ev), [Reason::DriftRepaired]);
    assert!(ev[0]
        .message
        .starts_with("drift from revision aaaaaaa repaired"));

    let failed = report(
        "bbbbbbb222",
        AppOutcome::Failed {
            failure: crate::sync::SyncFailure::Render {
                kind: crate::tree::FailureKind::Render,
                message: "ConfigMap web/conf: forbidden".into(),
            },
        },
        HealthStatus::degraded("crash loop"),
        Action::Failed,
    );
    let ev = after_sync(&failed, Some(&status));
    assert_eq!(reasons(&ev), [Reason::SyncFailed, Reason::HealthDegraded]);
    assert!(ev.iter().all(|e| e.event_type() == EventType::Warning));
    assert!(ev[0].message.contains("forbidden"), "{}", ev[0].message);
    assert_eq!(
        ev[1].message,
        "health went Degraded at revision bbbbbbb: crash loop"
    );

    // Still degraded on the next run: the failure repeats (the correlator
    // counts it), the degradation is not news.
    let degraded = build_status(&failed, &[], Some(&status), "t2");
    let ev = after_sync(&failed, Some(&degraded));
    assert_eq!(reasons(&ev), [Reason::SyncFailed]);
    // A failed app's re-run is announced.
    assert!(started("web", "bbbbbbb222", Some(&degraded)).is_some());
}

#[test]
fn long_messages_are_cut_on_a_char_boundary() {
    let e = AppEvent::new("web", Reason::SyncFailed, "é".repeat(800));
    assert!(e.message.len() <= 1004);
    assert!(e.message.ends_with('…'));
}

fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000 + secs, 0).unwrap()
}

#[test]
fn correlator_bumps_repeats_within_the_window() {
    let mut c = Correlator::new(CorrelatorConfig::default());
    let e = AppEvent::new("web", Reason::SyncFailed, "boom".into());
    let Decision::Create(first) = c.observe(&e, at(0)) else {
        panic!("first is created")
    };
    assert_eq!(first.count, 1);
    assert!(first.name.starts_with("web."));
    let Decision::Bump(b) = c.observe(&e, at(60)) else {
        panic!("repeat is a bump")
    };
    assert_eq!((b.name.as_str(), b.count), (first.name.as_str(), 2));
    assert_eq!((b.first, b.last), (at(0), at(60)));
    // A different message is a different event.
    assert!(matches!(
        c.observe(
            &AppEvent::new("web", Reason::SyncFailed, "other".into()),
            at(61)
        ),
        Decision::Create(_)
    ));
    // Past the window since the last occurrence: a new object.
    let Decision::Create(again) = c.observe(&e, at(60 + 601)) else {
        panic!("after the window, created anew")
    };
    assert_ne!(again.name, first.name);
}

#[test]
fn correlator_rate_limits_per_app() {
    let mut c = Correlator::new(CorrelatorConfig {
        burst: 3,
        refill: Duration::from_secs(300),
        ..Default::default()
    });
    let e = AppEvent::new("web", Reason::SyncFailed, "boom".into());
    let mut written = 0;
    for i in 0..10 {
        if c.observe(&e, at(i)) != Decision::Drop {
            written += 1;
        }
    }
    assert_eq!(written, 3);
    // Another app has its own bucket.
    let other = AppEvent::new("db", Reason::SyncFailed, "boom".into());
    assert!(matches!(c.observe(&other, at(10)), Decision::Create(_)));
    // Five minutes later one more write is allowed, carrying the true count.
    let Decision::Bump(b) = c.observe(&e, at(9 + 300)) else {
        panic!("refilled")
    };
    assert_eq!(b.count, 11);
}

#[test]
fn correlator_memory_is_bounded() {
    let mut c = Correlator::new(CorrelatorConfig {
        max_entries: 10,
        burst: 1000,
        ..Default::default()
    });
    for i in 0..100 {
        c.observe(
            &AppEvent::new("web", Reason::SyncFailed, format!("m{i}")),
            at(i),
        );
    }
    assert!(c.seen.len() <= 10);
}

#[test]
fn the_event_object_names_the_application() {
    let e = AppEvent::new("web", Reason::HealthDegraded, "bad".into());
    let o = Occurrence {
        name: "web.0123".into(),
        count: 3,
        first: at(0),
        last: at(5),
    };
    let v = event_object(&e, &o, Some("uid-1"), "kubesync-0");
    assert_eq!(v["involvedObject"]["kind"], "Application");
    assert_eq!(v["involvedObject"]["apiVersion"], "kubesync.dev/v1alpha1");
    assert_eq!(v["involvedObject"]["namespace"], "kubesync-system");
    assert_eq!(v["involvedObject"]["uid"], "uid-1");
    assert_eq!(v["type"], "Warning");
    assert_eq!(v["count"], 3);
    assert_eq!(v["firstTimestamp"], "2023-11-14T22:13:20Z");
    assert_eq!(v["lastTimestamp"], "2023-11-14T22:13:25Z");
    // It is a valid core v1 Event.
    let _: Event = serde_json::from_value(v).unwrap();
}
