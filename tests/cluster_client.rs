//! Integration tests of `kubesync::cluster` against the in-process emulator
//! over real HTTP with the real kube-rs client: the three ways of connecting
//! (`--emulator`, a kubeconfig the emulator wrote, `--server`), apply and
//! re-apply, dry-run, SSA conflicts forced and not, unknown kinds, CRDs and
//! discovery refresh, delete, list by label, status patches, rejected
//! objects, the no-cluster error (in a child process: it needs its own
//! environment), and retries of injected 503s and of a 429 with Retry-After.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::api::{Patch, PatchParams};
use kubesync::cluster::{
    ClusterClient, ClusterError, ClusterOptions, DeleteOutcome, GroupVersionKind, Propagation,
    RetryPolicy,
};
use kubesync::emulator::{
    ApiError, Emulator, EmulatorConfig, EmulatorHandle, Fault, RequestHook, RequestInfo,
};
use kubesync::model::ObjectRef;
use serde_json::{json, Value};

async fn emulator_client() -> ClusterClient {
    ClusterClient::connect(ClusterOptions::emulator())
        .await
        .expect("the emulator starts and answers")
}

fn namespace(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
}

fn config_map(ns: &str, name: &str, data: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns, "labels": {"kubesync.dev/app": "demo"}},
        "data": data,
    })
}

fn oref(obj: &Value) -> ObjectRef {
    ObjectRef::from_object(obj).expect("a complete object")
}

fn rv(obj: &Value) -> String {
    obj.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .expect("a resourceVersion")
        .to_string()
}

fn crd(plural: &str, kind: &str, status_subresource: bool) -> Value {
    let mut version = json!({
        "name": "v1", "served": true, "storage": true,
        "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}
    });
    if status_subresource {
        version["subresources"] = json!({"status": {}});
    }
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.example.com")},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {"plural": plural, "singular": kind.to_lowercase(), "kind": kind},
            "versions": [version]
        }
    })
}

#[tokio::test]
async fn apply_creates_then_reapply_leaves_resource_version() {
    let c = emulator_client().await;
    assert!(
        c.describe().starts_with("emulator at http://127.0.0.1:"),
        "{}",
        c.describe()
    );
    assert!(c.emulator().is_some());
    c.apply(&namespace("shop"), false).await.expect("namespace");
    assert!(c.namespace_exists("shop").await.expect("get ns"));
    assert!(!c.namespace_exists("nope").await.expect("get ns"));

    let cm = config_map("shop", "settings", json!({"color": "blue"}));
    let created = c.apply(&cm, false).await.expect("created");
    assert_eq!(created["data"]["color"], "blue");
    let again = c.apply(&cm, false).await.expect("re-applied");
    assert_eq!(rv(&created), rv(&again), "an unchanged apply is a no-op");
    let live = c.get(&oref(&cm)).await.expect("get").expect("exists");
    assert_eq!(rv(&live), rv(&created));
    let managers: Vec<&str> = live["metadata"]["managedFields"]
        .as_array()
        .expect("managedFields")
        .iter()
        .filter_map(|m| m["manager"].as_str())
        .collect();
    assert_eq!(managers, ["kubesync"]);

    let changed = c
        .apply(
            &config_map("shop", "settings", json!({"color": "red"})),
            false,
        )
        .await
        .expect("changed");
    assert_ne!(rv(&changed), rv(&created));
    assert_eq!(c.request_stats().applies, 4);
}

#[tokio::test]
async fn connects_through_a_kubeconfig_the_emulator_wrote() {
    let emu = Emulator::start(EmulatorConfig::default())
        .await
        .expect("emulator");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("kubeconfig");
    emu.write_kubeconfig(&path).expect("kubeconfig written");

    let c = ClusterClient::connect(ClusterOptions::kubeconfig(&path))
        .await
        .expect("connects through the kubeconfig");
    assert_eq!(
        c.describe(),
        format!("context kubesync-emulator ({})", emu.url())
    );
    assert!(c.emulator().is_none());
    c.apply(&namespace("viakubeconfig"), false)
        .await
        .expect("apply");
    assert!(emu.requests().count("patch", "namespaces") >= 1);

    let with_context = ClusterOptions {
        context: Some("kubesync-emulator".into()),
        ..ClusterOptions::kubeconfig(&path)
    };
    ClusterClient::connect(with_context)
        .await
        .expect("the named context works");

    let wrong = ClusterOptions {
        context: Some("kind-prod".into()),
        ..ClusterOptions::kubeconfig(&path)
    };
    let e = ClusterClient::connect(wrong)
        .await
        .expect_err("unknown context");
    let text = e.to_string();
    assert!(matches!(e, ClusterError::Connect { .. }), "{e:?}");
    assert!(
        text.contains("kind-prod") && text.contains("kubesync-emulator"),
        "{text}"
    );

    let missing = ClusterOptions::kubeconfig(dir.path().join("absent"));
    let e = ClusterClient::connect(missing).await.expect_err("no file");
    assert!(e.to_string().contains("absent"), "{e}");
}

#[tokio::test]
async fn connects_with_server_url_and_reports_unreachable_servers() {
    let emu = Emulator::start(EmulatorConfig::default())
        .await
        .expect("emulator");
    let c = ClusterClient::connect(ClusterOptions::server(emu.url()))
        .await
        .expect("connects to --server");
    assert_eq!(c.describe(), format!("server {}", emu.url()));
    c.apply(&namespace("viaserver"), false)
        .await
        .expect("apply");

    // A port nothing listens on: connection refused, retried, then Connect.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let opts = ClusterOptions {
        retry: RetryPolicy {
            attempts: 2,
            base: Duration::from_millis(1),
            max: Duration::from_millis(1),
            budget: Duration::from_secs(5),
        },
        ..ClusterOptions::server(format!("http://{closed}"))
    };
    let e = ClusterClient::connect(opts).await.expect_err("refused");
    assert!(matches!(e, ClusterError::Connect { .. }), "{e:?}");
    assert!(
        e.to_string()
            .starts_with(&format!("cannot connect to server http://{closed}")),
        "{e}"
    );

    let e = ClusterClient::connect(ClusterOptions::server("http://10.1.2.3:8080"))
        .await
        .expect_err("plain http to a remote host");
    assert!(e.to_string().contains("loopback"), "{e}");
}

#[tokio::test]
async fn dry_run_writes_nothing() {
    let c = emulator_client().await;
    c.apply(&namespace("dry"), false).await.expect("namespace");
    let before = c.request_stats();
    let cm = config_map("dry", "preview", json!({"k": "v"}));
    let previewed = c.apply(&cm, true).await.expect("dry-run apply");
    assert_eq!(previewed["data"]["k"], "v");
    assert_eq!(previewed["metadata"]["name"], "preview");
    assert!(
        c.get(&oref(&cm)).await.expect("get").is_none(),
        "nothing stored"
    );
    let after = c.request_stats();
    assert_eq!(after.writes(), before.writes(), "no write requests");
    assert_eq!(after.dry_run_applies, before.dry_run_applies + 1);
}

#[tokio::test]
async fn conflicts_are_forced_by_default_and_errors_with_no_force() {
    let c = emulator_client().await;
    let url = c.emulator().expect("emulator").url();
    c.apply(&namespace("team"), false).await.expect("namespace");
    let cm = config_map("team", "limits", json!({"max": "1"}));
    c.apply(&cm, false).await.expect("created by kubesync");

    // Someone edits the field kubesync declares, as another manager.
    let other = c.emulator().expect("emulator").kube_client();
    let api: kube::Api<kube::api::DynamicObject> = kube::Api::namespaced_with(
        other,
        "team",
        &kube::api::ApiResource::erase::<k8s_openapi::api::core::v1::ConfigMap>(&()),
    );
    let edit = json!({"apiVersion": "v1", "kind": "ConfigMap",
                      "metadata": {"name": "limits", "namespace": "team"}, "data": {"max": "9"}});
    api.patch(
        "limits",
        &PatchParams::apply("kubectl-edit").force(),
        &Patch::Apply(&edit),
    )
    .await
    .expect("the other manager takes the field");

    let strict = ClusterClient::connect(ClusterOptions {
        force_conflicts: false,
        ..ClusterOptions::server(url)
    })
    .await
    .expect("second client");
    let e = strict.apply(&cm, false).await.expect_err("conflict");
    let text = e.to_string();
    match &e {
        ClusterError::Conflict { object, message } => {
            assert_eq!(object, "ConfigMap team/limits");
            assert!(
                message.contains("kubectl-edit") && message.contains(".data.max"),
                "{message}"
            );
        }
        other => panic!("expected Conflict, got {other:?}"),
    }
    assert!(
        text.starts_with("ConfigMap team/limits: apply conflict"),
        "{text}"
    );
    assert_eq!(
        strict.request_stats().retries,
        0,
        "conflicts are not retried"
    );

    let forced = c.apply(&cm, false).await.expect("forced by default");
    assert_eq!(forced["data"]["max"], "1", "git wins");
}

#[tokio::test]
async fn unknown_kinds_name_group_version_and_kind() {
    let c = emulator_client().await;
    let widget = json!({"apiVersion": "example.com/v1", "kind": "Widget",
                        "metadata": {"name": "w", "namespace": "default"}});
    let e = c.apply(&widget, false).await.expect_err("unknown kind");
    match &e {
        ClusterError::UnknownKind {
            group,
            version,
            kind,
            ..
        } => {
            assert_eq!(
                (group.as_str(), version.as_str(), kind.as_str()),
                ("example.com", "v1", "Widget")
            );
        }
        other => panic!("expected UnknownKind, got {other:?}"),
    }
    let text = e.to_string();
    assert!(
        text.starts_with(
            "Widget.example.com default/w: the server does not serve kind Widget in example.com/v1"
        ),
        "{text}"
    );
    let typo = json!({"apiVersion": "apps/v1", "kind": "Deploymnt", "metadata": {"name": "x", "namespace": "default"}});
    let e = c.get(&oref(&typo)).await.expect_err("unknown kind");
    assert!(e.to_string().contains("kind Deploymnt in apps/v1"), "{e}");
}

#[tokio::test]
async fn crd_then_custom_resource_in_the_same_client() {
    let c = emulator_client().await;
    c.apply(&namespace("widgets"), false).await.expect("ns");
    let gadget = json!({"apiVersion": "example.com/v1", "kind": "Gadget",
                        "metadata": {"name": "g1", "namespace": "widgets"}, "spec": {"size": 3}});
    // Discovery says "unknown" first (and caches the answer)...
    assert!(matches!(
        c.resolve(&oref(&gadget)).await,
        Err(ClusterError::UnknownKind { .. })
    ));
    c.apply(&crd("gadgets", "Gadget", true), false)
        .await
        .expect("CRD applied");
    c.wait_crd_established("gadgets.example.com", Duration::from_secs(10))
        .await
        .expect("established");
    // ...and the same client now serves the kind.
    let live = c
        .apply(&gadget, false)
        .await
        .expect("custom resource applied");
    assert_eq!(live["spec"]["size"], 3);
    let resolved = c.resolve(&oref(&gadget)).await.expect("resolved");
    assert!(resolved.namespaced && resolved.status_subresource);
    assert_eq!(resolved.api_resource.plural, "gadgets");

    // A miss refreshes discovery by itself, without invalidation.
    c.apply(&crd("gizmos", "Gizmo", false), false)
        .await
        .expect("second CRD");
    let gizmo = json!({"apiVersion": "example.com/v1", "kind": "Gizmo",
                       "metadata": {"name": "z", "namespace": "widgets"}});
    c.apply(&gizmo, false).await.expect("refreshed on the miss");

    let e = c
        .wait_crd_established("absent.example.com", Duration::from_millis(300))
        .await
        .expect_err("times out");
    assert!(matches!(e, ClusterError::Timeout { .. }), "{e:?}");
    assert!(e.to_string().contains("absent.example.com"), "{e}");
}

#[tokio::test]
async fn delete_then_already_gone() {
    let c = emulator_client().await;
    c.apply(&namespace("del"), false).await.expect("ns");
    let cm = config_map("del", "doomed", json!({}));
    c.apply(&cm, false).await.expect("created");
    let r = oref(&cm);
    assert_eq!(
        c.delete(&r, Propagation::Background).await.expect("delete"),
        DeleteOutcome::Deleted
    );
    assert!(c.get(&r).await.expect("get").is_none());
    assert_eq!(
        c.delete(&r, Propagation::Background).await.expect("delete"),
        DeleteOutcome::AlreadyGone
    );
    assert_eq!(c.request_stats().deletes, 2);
}

#[tokio::test]
async fn list_by_label_selector() {
    let c = emulator_client().await;
    for ns in ["l1", "l2"] {
        c.apply(&namespace(ns), false).await.expect("ns");
    }
    c.apply(&config_map("l1", "a", json!({})), false)
        .await
        .expect("a");
    c.apply(&config_map("l2", "b", json!({})), false)
        .await
        .expect("b");
    let mut other = config_map("l1", "c", json!({}));
    other["metadata"]["labels"] = json!({"kubesync.dev/app": "other"});
    c.apply(&other, false).await.expect("c");

    let gvk = GroupVersionKind::gvk("", "v1", "ConfigMap");
    let all = c
        .list(&gvk, None, "kubesync.dev/app=demo")
        .await
        .expect("list all namespaces");
    let mut names: Vec<String> = all
        .iter()
        .map(|o| {
            format!(
                "{}/{}",
                o["metadata"]["namespace"].as_str().unwrap_or(""),
                o["metadata"]["name"].as_str().unwrap_or("")
            )
        })
        .collect();
    names.sort();
    assert_eq!(names, ["l1/a", "l2/b"]);
    assert!(all
        .iter()
        .all(|o| o["kind"] == "ConfigMap" && o["apiVersion"] == "v1"));

    let one = c
        .list(&gvk, Some("l1"), "kubesync.dev/app")
        .await
        .expect("list one namespace");
    assert_eq!(one.len(), 2);
    let none = c
        .list(&gvk, Some("l2"), "kubesync.dev/app=other")
        .await
        .expect("empty list");
    assert!(none.is_empty());
    let namespaces = c
        .list(
            &GroupVersionKind::gvk("", "v1", "Namespace"),
            Some("ignored"),
            "",
        )
        .await
        .expect("cluster-scoped list");
    assert!(namespaces.iter().any(|n| n["metadata"]["name"] == "l1"));
}

#[tokio::test]
async fn status_patch_on_subresource_and_without_one() {
    let c = emulator_client().await;
    c.apply(&namespace("apps"), false).await.expect("ns");
    for (plural, kind, sub) in [("trackers", "Tracker", true), ("plains", "Plain", false)] {
        let def = crd(plural, kind, sub);
        c.apply(&def, false).await.expect("crd");
        c.wait_crd_established(&format!("{plural}.example.com"), Duration::from_secs(10))
            .await
            .expect("established");
        let obj = json!({"apiVersion": "example.com/v1", "kind": kind,
                         "metadata": {"name": "guestbook", "namespace": "apps"}, "spec": {"x": 1}});
        c.apply(&obj, false).await.expect("cr");
        let status = json!({"sync": {"status": "Synced", "revision": "abc123"}, "health": {"status": "Healthy"}});
        let patched = c
            .patch_status(&oref(&obj), &status)
            .await
            .unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert_eq!(patched["status"]["sync"]["revision"], "abc123", "{kind}");
        assert_eq!(patched["spec"]["x"], 1, "{kind}");
        let live = c.get(&oref(&obj)).await.expect("get").expect("exists");
        assert_eq!(live["status"]["health"]["status"], "Healthy", "{kind}");

        // Merge semantics: other keys stay, null removes.
        let patched = c
            .patch_status(
                &oref(&obj),
                &json!({"health": null, "deployedRevision": "abc123"}),
            )
            .await
            .expect("second patch");
        assert_eq!(patched["status"]["sync"]["status"], "Synced");
        assert!(patched["status"].get("health").is_none());
    }
    assert_eq!(c.request_stats().status_patches, 4);
}

#[tokio::test]
async fn invalid_objects_are_rejected_with_the_servers_message() {
    let c = emulator_client().await;
    c.apply(&namespace("bad"), false).await.expect("ns");
    let cm = config_map("bad", "Bad_Name", json!({}));
    let e = c.apply(&cm, false).await.expect_err("invalid name");
    match &e {
        ClusterError::Rejected {
            object,
            code,
            reason,
            message,
        } => {
            assert_eq!(object, "ConfigMap bad/Bad_Name");
            assert_eq!(*code, 422);
            assert_eq!(reason, "Invalid");
            assert!(
                message.contains("Bad_Name") && message.contains("metadata.name"),
                "{message}"
            );
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
    assert!(
        e.to_string()
            .starts_with("ConfigMap bad/Bad_Name: rejected by the server (422 Invalid)"),
        "{e}"
    );
    assert_eq!(c.request_stats().retries, 0, "4xx is never retried");

    // Into a namespace that does not exist: also the server's word.
    let e = c
        .apply(&config_map("ghost", "x", json!({})), false)
        .await
        .expect_err("no namespace");
    assert!(
        matches!(e, ClusterError::Rejected { code: 404, .. }),
        "{e:?}"
    );
    assert!(e.to_string().contains("ghost"), "{e}");

    // Incomplete objects never reach the server.
    let e = c
        .apply(
            &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "nons"}}),
            false,
        )
        .await
        .expect_err("no namespace given");
    assert!(matches!(e, ClusterError::BadObject { .. }), "{e:?}");
    assert!(e.to_string().contains("ConfigMap nons"), "{e}");
    let e = c
        .apply(
            &json!({"kind": "ConfigMap", "metadata": {"name": "x"}}),
            false,
        )
        .await
        .expect_err("no apiVersion");
    assert!(e.to_string().contains("apiVersion"), "{e}");
}

#[tokio::test]
async fn normalize_sets_the_destination_namespace() {
    let c = emulator_client().await;
    c.apply(&namespace("dest"), false).await.expect("ns");
    let mut cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "n"}});
    let r = c.normalize(&mut cm, "dest").await.expect("normalized");
    assert_eq!(r.to_string(), "ConfigMap dest/n");
    c.apply(&cm, false).await.expect("applied in dest");
    let mut ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "extra", "namespace": "dest"}});
    let r = c.normalize(&mut ns, "dest").await.expect("normalized");
    assert_eq!(r.to_string(), "Namespace extra");
}

// ----- no cluster: runs in a child process with its own environment ---------

const CHILD: &str = "KUBESYNC_TEST_NO_CLUSTER_CHILD";

/// Runs only as the child of `no_cluster_error_tells_the_user_what_to_do`.
#[tokio::test]
async fn no_cluster_child() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let e = ClusterClient::connect(ClusterOptions::default())
        .await
        .expect_err("no cluster anywhere");
    assert!(matches!(e, ClusterError::NoCluster { .. }), "{e:?}");
    println!("NO_CLUSTER_MESSAGE: {e}");
}

#[test]
fn no_cluster_error_tells_the_user_what_to_do() {
    let home = tempfile::tempdir().expect("tempdir");
    let missing = home.path().join("no-such-kubeconfig");
    let run = |kubeconfig: Option<&std::path::Path>| {
        let mut cmd = std::process::Command::new(std::env::current_exe().expect("test binary"));
        cmd.args([
            "--exact",
            "no_cluster_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .env("HOME", home.path())
        .env_remove("USERPROFILE")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBECONFIG");
        if let Some(k) = kubeconfig {
            cmd.env("KUBECONFIG", k);
        }
        let out = cmd.output().expect("child runs");
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "child failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
            .lines()
            .find_map(|l| l.split_once("NO_CLUSTER_MESSAGE: ").map(|(_, m)| m))
            .map(str::to_string)
            .unwrap_or_else(|| panic!("child printed no message:\n{stdout}"))
    };

    let msg = run(None);
    for needle in [
        "no Kubernetes cluster configured",
        "--kubeconfig",
        "KUBECONFIG",
        "--server",
        "--emulator",
    ] {
        assert!(msg.contains(needle), "{needle:?} missing from: {msg}");
    }
    let msg = run(Some(&missing));
    assert!(msg.contains("KUBECONFIG is set to"), "{msg}");
    assert!(msg.contains("no-such-kubeconfig"), "{msg}");
    assert!(msg.contains("--emulator"), "{msg}");
}

// ----- retries ----------------------------------------------------------------

/// Fails the first `remaining` PATCH requests with 503.
struct FailPatches {
    remaining: AtomicU32,
}

impl RequestHook for FailPatches {
    fn before(&self, request: &RequestInfo) -> Option<Fault> {
        if request.verb != "patch" {
            return None;
        }
        let left = self.remaining.load(Ordering::SeqCst);
        if left == 0 {
            return None;
        }
        self.remaining.store(left - 1, Ordering::SeqCst);
        Some(Fault {
            delay: None,
            error: Some(ApiError::new(
                503,
                "ServiceUnavailable",
                "the server is currently unable to handle the request",
            )),
            ..Fault::default()
        })
    }
}

async fn emulator_failing_patches(n: u32) -> EmulatorHandle {
    Emulator::start(EmulatorConfig {
        request_hooks: vec![Arc::new(FailPatches {
            remaining: AtomicU32::new(n),
        })],
        ..EmulatorConfig::default()
    })
    .await
    .expect("emulator")
}

fn fast_retries(attempts: u32) -> ClusterOptions {
    ClusterOptions {
        retry: RetryPolicy {
            attempts,
            base: Duration::from_millis(5),
            max: Duration::from_millis(20),
            budget: Duration::from_secs(10),
        },
        ..ClusterOptions::default()
    }
}

#[tokio::test]
async fn a_503_burst_on_patches_is_retried_and_succeeds() {
    let emu = emulator_failing_patches(3).await;
    let c = ClusterClient::with_emulator(emu, fast_retries(5))
        .await
        .expect("client");
    let live = c
        .apply(&namespace("flaky"), false)
        .await
        .expect("succeeds on the 4th attempt");
    assert_eq!(live["metadata"]["name"], "flaky");
    let stats = c.request_stats();
    assert_eq!(stats.retries, 3);
    assert_eq!(stats.applies, 4);
    let served = c.emulator().expect("emulator").requests();
    assert_eq!(served.count("patch", "namespaces"), 4);
}

#[tokio::test]
async fn retries_run_out_as_transient() {
    let emu = emulator_failing_patches(100).await;
    let c = ClusterClient::with_emulator(emu, fast_retries(3))
        .await
        .expect("client");
    let e = c
        .apply(&namespace("down"), false)
        .await
        .expect_err("never succeeds");
    match &e {
        ClusterError::Transient {
            object,
            attempts,
            message,
            ..
        } => {
            assert_eq!(object, "Namespace down");
            assert_eq!(*attempts, 3);
            assert!(message.contains("503"), "{message}");
        }
        other => panic!("expected Transient, got {other:?}"),
    }
    assert!(e.is_transient());
    assert_eq!(c.request_stats().retries, 2);
}

/// A minimal API server: `/version`, core discovery with ConfigMaps, and a
/// PATCH that answers 429 with `Retry-After: 1` (plain-text body, as a proxy
/// would) the first time and the applied object after.
async fn throttling_server() -> (String, Arc<AtomicU32>) {
    use axum::http::{header, StatusCode};
    use axum::response::IntoResponse;
    let patches = Arc::new(AtomicU32::new(0));
    let counter = patches.clone();
    let app = axum::Router::new()
        .route(
            "/version",
            axum::routing::get(|| async {
                axum::Json(json!({"major": "1", "minor": "32", "gitVersion": "v1.32.0",
                    "gitCommit": "", "gitTreeState": "", "buildDate": "", "goVersion": "",
                    "compiler": "", "platform": ""}))
            }),
        )
        .route(
            "/api/v1",
            axum::routing::get(|| async {
                axum::Json(
                    json!({"kind": "APIResourceList", "groupVersion": "v1", "resources": [
                    {"name": "configmaps", "singularName": "configmap", "namespaced": true,
                     "kind": "ConfigMap", "verbs": ["get", "patch"]}]}),
                )
            }),
        )
        .route(
            "/api/v1/namespaces/{ns}/configmaps/{name}",
            axum::routing::patch(move |body: axum::body::Bytes| {
                let counter = counter.clone();
                async move {
                    if counter.fetch_add(1, Ordering::SeqCst) == 0 {
                        return (
                            StatusCode::TOO_MANY_REQUESTS,
                            [(header::RETRY_AFTER, "1")],
                            "slow down",
                        )
                            .into_response();
                    }
                    let obj: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    axum::Json(obj).into_response()
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), patches)
}

#[tokio::test]
async fn a_429_waits_for_retry_after_header() {
    let (url, patches) = throttling_server().await;
    let c = ClusterClient::connect(ClusterOptions {
        server: Some(url),
        ..fast_retries(3)
    })
    .await
    .expect("client");
    let started = Instant::now();
    let live = c
        .apply(&config_map("default", "x", json!({"a": "b"})), false)
        .await
        .expect("succeeds after the throttle");
    let waited = started.elapsed();
    assert_eq!(live["data"]["a"], "b");
    assert_eq!(patches.load(Ordering::SeqCst), 2);
    assert!(
        waited >= Duration::from_millis(950),
        "Retry-After: 1 honoured over a 5 ms backoff (waited {waited:?})"
    );
    assert_eq!(c.request_stats().retries, 1);
}
