use serde_json::{json, Value};

use super::*;

fn oref(kind: &str, name: &str) -> ObjectRef {
    ObjectRef {
        group: if kind == "Deployment" {
            "apps".into()
        } else {
            String::new()
        },
        version: "v1".into(),
        kind: kind.into(),
        namespace: Some("shop".into()),
        name: name.into(),
    }
}

fn deployment(replicas: i64) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web", "kubesync.dev/app": "shop"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "app", "image": "nginx:1.27", "ports": [{"containerPort": 80}]}]}
            }
        }
    })
}

/// `obj` as the API server returns it: bookkeeping and status added.
fn as_served(mut obj: Value, rv: &str) -> Value {
    let meta = obj["metadata"].as_object_mut().unwrap();
    meta.insert("uid".into(), json!("0b1c-…"));
    meta.insert("resourceVersion".into(), json!(rv));
    meta.insert("generation".into(), json!(4));
    meta.insert("creationTimestamp".into(), json!("2024-05-01T10:00:00Z"));
    meta.insert(
        "selfLink".into(),
        json!("/apis/apps/v1/namespaces/shop/deployments/web"),
    );
    meta.insert(
        "managedFields".into(),
        json!([{"manager": "kubesync", "operation": "Apply"}]),
    );
    meta.insert(
        "annotations".into(),
        json!({"deployment.kubernetes.io/revision": "3",
               "kubectl.kubernetes.io/last-applied-configuration": "{\"spec\":{}}"}),
    );
    obj["status"] = json!({"replicas": 3, "readyReplicas": 3, "observedGeneration": 4});
    obj
}

#[test]
fn normalize_drops_server_fields() {
    let n = normalize(&as_served(deployment(3), "100"));
    assert_eq!(n, deployment(3));
    let meta = n["metadata"].as_object().unwrap();
    assert!(
        !meta.contains_key("annotations"),
        "empty annotations removed"
    );
    // Annotations the user set survive; an explicitly empty labels map goes.
    let mut d = deployment(3);
    d["metadata"]["annotations"] =
        json!({"team": "shop", "deployment.kubernetes.io/revision": "9"});
    d["metadata"]["labels"] = json!({});
    let n = normalize(&d);
    assert_eq!(n["metadata"]["annotations"], json!({"team": "shop"}));
    assert!(n["metadata"].get("labels").is_none());
    // Not an object: unchanged, no panic.
    assert_eq!(normalize(&json!("x")), json!("x"));
    assert_eq!(normalize(&json!({"metadata": 3})), json!({"metadata": 3}));
}

#[test]
fn equal_after_normalisation_is_same() {
    let predicted = as_served(deployment(3), "101");
    let mut live = as_served(deployment(3), "100");
    live["metadata"]["generation"] = json!(3);
    live["status"]["readyReplicas"] = json!(1);
    live["metadata"]["managedFields"] = json!([]);
    let d = compare(oref("Deployment", "web"), Some(&predicted), Some(&live));
    assert_eq!(d.kind, ObjectDiffKind::Same);
    assert_eq!(d.diff, "");
    assert_eq!(app_status(&[d]), SyncStatus::Synced);
}

#[test]
fn changed_replicas_shows_the_changed_line() {
    let predicted = as_served(deployment(5), "101");
    let live = as_served(deployment(3), "100");
    let d = compare(oref("Deployment", "web"), Some(&predicted), Some(&live));
    assert_eq!(d.kind, ObjectDiffKind::Changed);
    assert!(
        d.diff.starts_with("--- live\n+++ desired\n@@ "),
        "{}",
        d.diff
    );
    assert!(
        d.diff.contains("\n-  replicas: 3\n+  replicas: 5\n"),
        "{}",
        d.diff
    );
    // Only the hunk around the change, with three lines of context each side.
    let body: Vec<&str> = d.diff.lines().skip(3).collect();
    assert_eq!(body.len(), 8, "{}", d.diff);
    assert!(
        !d.diff.contains("resourceVersion"),
        "server fields are not diffed"
    );
    assert!(!d.diff.contains("status"), "{}", d.diff);
    assert_eq!(d.object.to_string(), "Deployment.apps shop/web");
    assert_eq!(app_status(&[d]), SyncStatus::OutOfSync);
}

#[test]
fn missing_and_extra() {
    let desired = as_served(deployment(2), "1");
    let m = compare(oref("Deployment", "web"), Some(&desired), None);
    assert_eq!(m.kind, ObjectDiffKind::Missing);
    assert!(m.diff.starts_with("--- live\n+++ desired\n"), "{}", m.diff);
    assert!(m.diff.contains("+kind: Deployment\n"), "{}", m.diff);
    assert!(
        !m.diff.lines().skip(2).any(|l| l.starts_with('-')),
        "{}",
        m.diff
    );
    assert!(!m.diff.contains("uid"), "{}", m.diff);

    let e = compare(oref("Deployment", "web"), None, Some(&desired));
    assert_eq!(e.kind, ObjectDiffKind::Extra);
    assert!(e.diff.contains("-kind: Deployment\n"), "{}", e.diff);
    assert!(
        !e.diff.lines().skip(2).any(|l| l.starts_with('+')),
        "{}",
        e.diff
    );

    let none = compare(oref("Deployment", "web"), None, None);
    assert_eq!(none.kind, ObjectDiffKind::Same);

    assert_eq!(app_status(std::slice::from_ref(&none)), SyncStatus::Synced);
    assert_eq!(app_status(&[none, m]), SyncStatus::OutOfSync);
    assert_eq!(app_status(&[e]), SyncStatus::OutOfSync);
    assert_eq!(app_status(&[]), SyncStatus::Synced);
}

#[test]
fn key_order_does_not_matter() {
    let a = json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "c", "labels": {"b": "2", "a": "1"}},
                   "data": {"z": "1", "a": {"y": 1, "x": [{"k2": 1, "k1": 2}]}}});
    let b = json!({"data": {"a": {"x": [{"k1": 2, "k2": 1}], "y": 1}, "z": "1"},
                   "metadata": {"labels": {"a": "1", "b": "2"}, "name": "c"},
                   "kind": "ConfigMap", "apiVersion": "v1"});
    assert_eq!(
        compare(oref("ConfigMap", "c"), Some(&a), Some(&b)).kind,
        ObjectDiffKind::Same
    );
    assert_eq!(unified_yaml_diff(&a, &b, "live", "desired"), "");
    assert_eq!(text::to_yaml(&a), text::to_yaml(&b));
    assert!(
        text::to_yaml(&a).starts_with("apiVersion: v1\ndata:\n"),
        "{}",
        text::to_yaml(&a)
    );
    // Order within lists is meaningful and stays.
    let c = json!({"l": [1, 2]});
    let d = json!({"l": [2, 1]});
    assert_ne!(unified_yaml_diff(&c, &d, "a", "b"), "");
}

fn secret(data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
           "metadata": {"name": "db", "namespace": "shop"}, "data": data})
}

#[test]
fn secret_values_never_appear() {
    // c2VjcmV0MQ== / c2VjcmV0Mg== are "secret1" / "secret2".
    let live = secret(json!({"password": "c2VjcmV0MQ==", "user": "YWRtaW4=", "old": "b2xk"}));
    let mut desired =
        secret(json!({"password": "c2VjcmV0Mg==", "user": "YWRtaW4=", "new": "bmV3"}));
    desired["stringData"] = json!({"token": "plain-text-token"});
    let d = compare(oref("Secret", "db"), Some(&desired), Some(&live));
    assert_eq!(
        d.kind,
        ObjectDiffKind::Changed,
        "comparison uses the real values"
    );
    for value in [
        "c2VjcmV0MQ==",
        "c2VjcmV0Mg==",
        "YWRtaW4=",
        "b2xk",
        "bmV3",
        "plain-text-token",
    ] {
        assert!(!d.diff.contains(value), "{value} leaked:\n{}", d.diff);
    }
    assert!(d.diff.contains("\n-  password: <hidden>\n"), "{}", d.diff);
    assert!(d.diff.contains("\n+  password: <changed>\n"), "{}", d.diff);
    assert!(d.diff.contains("   user: <unchanged>\n"), "{}", d.diff);
    assert!(d.diff.contains("-  old: <hidden>\n"), "{}", d.diff);
    assert!(d.diff.contains("+  new: <hidden>\n"), "{}", d.diff);
    assert!(d.diff.contains("+  token: <hidden>\n"), "{}", d.diff);

    // Same values: Same, and no diff at all.
    let same = compare(oref("Secret", "db"), Some(&live), Some(&live));
    assert_eq!(same.kind, ObjectDiffKind::Same);
    assert_eq!(same.diff, "");

    // Missing, Extra, and a diff of raw (un-normalised) objects mask too.
    let mut raw = secret(json!({"password": "c2VjcmV0MQ=="}));
    raw["metadata"]["annotations"] = json!({
        "kubectl.kubernetes.io/last-applied-configuration": "{\"data\":{\"password\":\"c2VjcmV0MQ==\"}}"});
    for text in [
        compare(oref("Secret", "db"), Some(&raw), None).diff,
        compare(oref("Secret", "db"), None, Some(&raw)).diff,
        unified_yaml_diff(&Value::Null, &raw, "live", "desired"),
        unified_yaml_diff(&raw, &secret(json!("not-a-map")), "live", "desired"),
        unified_yaml_diff(&secret(json!("bm90LWEtbWFw")), &raw, "live", "desired"),
    ] {
        assert!(!text.contains("c2VjcmV0MQ=="), "leaked:\n{text}");
        assert!(!text.contains("bm90LWEtbWFw"), "leaked:\n{text}");
        assert!(
            text.contains("<hidden>") || text.contains("<changed>"),
            "{text}"
        );
    }
}

#[test]
fn non_secret_data_is_shown() {
    let a = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "one"}});
    let b = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "two"}});
    let d = compare(oref("ConfigMap", "c"), Some(&b), Some(&a));
    assert!(d.diff.contains("-  k: one\n+  k: two\n"), "{}", d.diff);
}

#[test]
fn statuses_display_and_serialise() {
    assert_eq!(SyncStatus::OutOfSync.to_string(), "OutOfSync");
    assert_eq!(
        serde_json::to_value(SyncStatus::Synced).unwrap(),
        json!("Synced")
    );
    assert_eq!(ObjectDiffKind::Extra.sync_status(), SyncStatus::OutOfSync);
    assert_eq!(ObjectDiffKind::Same.sync_status(), SyncStatus::Synced);
    let d = compare(oref("ConfigMap", "c"), None, None);
    let v = serde_json::to_value(&d).unwrap();
    assert_eq!(v["kind"], json!("Same"));
    assert_eq!(v["object"]["name"], json!("c"));
}
