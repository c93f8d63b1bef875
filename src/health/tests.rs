//! Shared table-test harness and tests of the dispatch and aggregation.

use serde_json::{json, Value};

use super::*;

/// One row of a per-kind table: name, live object, expected health, and a
/// substring the message must contain (`""` for "message is empty").
pub(super) struct Case(pub &'static str, pub Value, pub Health, pub &'static str);

/// Checks every row through both the kind's rule and [`assess`] (so the
/// dispatch is exercised too), and that the two agree.
pub(super) fn table(rule: fn(&Value) -> HealthStatus, cases: &[Case]) {
    for Case(name, obj, health, msg) in cases {
        let got = rule(obj);
        assert_eq!(got.health, *health, "{name}: {got:?}");
        if msg.is_empty() {
            assert_eq!(got.message, "", "{name}: message should be empty");
        } else {
            assert!(
                got.message.contains(msg),
                "{name}: {:?} lacks {msg:?}",
                got.message
            );
        }
        assert_eq!(assess(obj), got, "{name}: assess dispatches elsewhere");
    }
}

#[test]
fn order_is_severity() {
    use Health::*;
    assert!(Healthy < Suspended && Suspended < Progressing && Progressing < Unknown);
    assert!(Unknown < Missing && Missing < Degraded);
    assert_eq!(Progressing.worst(Degraded), Degraded);
    assert_eq!(Unknown.worst(Missing), Missing);
    assert_eq!(Healthy.worst(Suspended), Suspended);
    let mut all = Health::ALL;
    all.sort();
    assert_eq!(all, Health::ALL);
}

#[test]
fn names_round_trip() {
    for h in Health::ALL {
        assert_eq!(h.to_string().parse::<Health>(), Ok(h));
        assert_eq!(serde_json::to_value(h).unwrap(), json!(h.as_str()));
    }
    assert!("healthy".parse::<Health>().is_err());
}

#[test]
fn health_status_serialises_like_argo() {
    let s = HealthStatus::degraded("boom");
    assert_eq!(
        serde_json::to_value(&s).unwrap(),
        json!({"status": "Degraded", "message": "boom"})
    );
    assert_eq!(
        serde_json::to_value(HealthStatus::healthy("")).unwrap(),
        json!({"status": "Healthy"})
    );
    let back: HealthStatus =
        serde_json::from_value(json!({"status": "Degraded", "message": "boom"})).unwrap();
    assert_eq!(back, s);
    assert_eq!(s.to_string(), "Degraded: boom");
    assert_eq!(HealthStatus::healthy("").to_string(), "Healthy");
}

#[test]
fn aggregate_worst_wins_and_counts() {
    let items = [
        HealthStatus::healthy(""),
        HealthStatus::progressing("rolling out"),
        HealthStatus::degraded(""),
        HealthStatus::degraded("CrashLoopBackOff"),
        HealthStatus::degraded("ImagePullBackOff"),
        missing(),
    ];
    let agg = aggregate(&items);
    assert_eq!(agg.health, Health::Degraded);
    assert_eq!(agg.message, "3 of 6 objects Degraded: CrashLoopBackOff");

    let agg = aggregate(&items[..2]);
    assert_eq!(
        agg,
        HealthStatus::progressing("1 of 2 objects Progressing: rolling out")
    );

    let healthy = [HealthStatus::healthy(""), HealthStatus::healthy("")];
    assert_eq!(aggregate(&healthy).message, "2 of 2 objects Healthy");
    assert_eq!(aggregate(&healthy[..1]).message, "1 of 1 object Healthy");

    let agg = aggregate(&[missing(), HealthStatus::unknown("?")]);
    assert_eq!(agg.health, Health::Missing);
    assert_eq!(
        aggregate(std::iter::empty()),
        HealthStatus::healthy("no objects")
    );
}

#[test]
fn deletion_wins_over_kind_rules() {
    let obj = json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "old", "deletionTimestamp": "2024-05-01T10:00:00Z",
                     "finalizers": ["kubernetes"]},
        "status": {"phase": "Active"}
    });
    assert_eq!(
        assess(&obj),
        HealthStatus::progressing("being deleted; waiting on finalizers: kubernetes")
    );
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "c", "deletionTimestamp": "2024-05-01T10:00:00Z"}});
    assert_eq!(assess(&cm), HealthStatus::progressing("being deleted"));
}

#[test]
fn missing_and_odd_inputs() {
    assert_eq!(missing().health, Health::Missing);
    assert_eq!(assess(&json!(null)).health, Health::Unknown);
    assert_eq!(assess(&json!([1])).health, Health::Unknown);
    // No apiVersion or kind at all: the generic rule, which finds nothing wrong.
    assert_eq!(assess(&json!({})).health, Health::Healthy);
    let weird = json!({"apiVersion": 7, "kind": ["Deployment"], "metadata": "x", "status": 1});
    let _ = assess(&weird);
}

#[test]
fn every_rule_survives_hostile_shapes() {
    let kinds = [
        ("apps/v1", "Deployment"),
        ("apps/v1", "StatefulSet"),
        ("apps/v1", "DaemonSet"),
        ("apps/v1", "ReplicaSet"),
        ("v1", "Pod"),
        ("v1", "Service"),
        ("v1", "PersistentVolumeClaim"),
        ("v1", "Namespace"),
        ("batch/v1", "Job"),
        ("batch/v1", "CronJob"),
        ("networking.k8s.io/v1", "Ingress"),
        ("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
        ("autoscaling/v2", "HorizontalPodAutoscaler"),
        ("policy/v1", "PodDisruptionBudget"),
        ("apiregistration.k8s.io/v1", "APIService"),
        ("kubesync.dev/v1alpha1", "Application"),
        ("argoproj.io/v1alpha1", "Application"),
        ("example.com/v1", "Widget"),
    ];
    let shapes = [
        json!(null),
        json!("x"),
        json!(1),
        json!([]),
        json!({}),
        json!([{}]),
        json!(-1),
        json!(1.5),
        json!(i64::MAX),
        json!(u64::MAX),
        json!({"a": [null]}),
    ];
    for (api_version, kind) in kinds {
        for spec in &shapes {
            for status in &shapes {
                let obj = json!({
                    "apiVersion": api_version, "kind": kind,
                    "metadata": {"name": "x", "generation": spec,
                                 "annotations": {"autoscaling.alpha.kubernetes.io/conditions": "[{"}},
                    "spec": spec, "status": status,
                });
                let _ = assess(&obj);
                let nested = json!({
                    "apiVersion": api_version, "kind": kind, "metadata": {"name": "x"},
                    "spec": {"replicas": spec, "updateStrategy": spec, "template": spec, "type": spec,
                             "suspend": spec, "paused": spec},
                    "status": {"conditions": status, "phase": status, "replicas": status,
                               "containerStatuses": status, "loadBalancer": status,
                               "health": status, "observedGeneration": status},
                });
                let _ = assess(&nested);
            }
        }
    }
}
