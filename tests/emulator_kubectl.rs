//! The emulator judged by the real `kubectl` (through a kubeconfig the
//! emulator wrote): server-side apply of a multi-document file, field-manager
//! conflicts and `--force-conflicts`, label-selected JSON output, client-side
//! apply with default validation, namespace deletion, CRD then instance, and
//! errors for malformed requests.

mod support;

use serde_json::Value;
use support::{start, Kubectl};

const APP: &str = r#"apiVersion: v1
kind: Namespace
metadata:
  name: shop
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
  labels: {app: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: nginx:1.25
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: web-config
  namespace: shop
  labels: {app: web}
data: {mode: prod}
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
  labels: {app: other}
spec:
  selector: {app: web}
  ports: [{port: 80}]
"#;

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("kubectl printed invalid JSON ({e}):\n{s}"))
}

#[tokio::test]
async fn kubectl_server_side_apply_conflicts_and_force() {
    let emu = start().await;
    let Some(k) = Kubectl::new(&emu) else { return };
    let file = k.file("app.yaml", APP);
    let out = k.ok(&["apply", "--server-side", "-f", &file]).await;
    for line in [
        "namespace/shop serverside-applied",
        "deployment.apps/web serverside-applied",
        "configmap/web-config serverside-applied",
        "service/web serverside-applied",
    ] {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }
    // Re-applying the same intent is a no-op.
    let rv = k
        .ok(&[
            "get",
            "deploy",
            "web",
            "-n",
            "shop",
            "-o",
            "jsonpath={.metadata.resourceVersion}",
        ])
        .await;
    k.ok(&["apply", "--server-side", "-f", &file]).await;
    let rv2 = k
        .ok(&[
            "get",
            "deploy",
            "web",
            "-n",
            "shop",
            "-o",
            "jsonpath={.metadata.resourceVersion}",
        ])
        .await;
    assert_eq!(rv, rv2);

    let other = k.file("other.yaml", &APP.replace("replicas: 2", "replicas: 5"));
    let err = k
        .fails(&[
            "apply",
            "--server-side",
            "--field-manager",
            "ops",
            "-f",
            &other,
        ])
        .await;
    assert!(
        err.contains("Apply failed with 1 conflict: conflict with \"kubectl\": .spec.replicas"),
        "{err}"
    );
    assert!(err.contains("--force-conflicts"), "{err}");
    k.ok(&[
        "apply",
        "--server-side",
        "--field-manager",
        "ops",
        "--force-conflicts",
        "-f",
        &other,
    ])
    .await;
    let d = json(
        &k.ok(&[
            "get",
            "deploy",
            "web",
            "-n",
            "shop",
            "-o",
            "json",
            "--show-managed-fields",
        ])
        .await,
    );
    assert_eq!(d["spec"]["replicas"], 5);
    assert_eq!(d["metadata"]["generation"], 2);
    let managers: Vec<&str> = d["metadata"]["managedFields"]
        .as_array()
        .expect("managedFields")
        .iter()
        .filter_map(|m| m["manager"].as_str())
        .collect();
    assert!(
        managers.contains(&"ops") && managers.contains(&"kubectl"),
        "{managers:?}"
    );
}

#[tokio::test]
async fn kubectl_get_json_with_label_selector() {
    let emu = start().await;
    let Some(k) = Kubectl::new(&emu) else { return };
    let file = k.file("app.yaml", APP);
    k.ok(&["apply", "--server-side", "-f", &file]).await;
    let list = json(
        &k.ok(&[
            "get",
            "deploy,cm,svc",
            "-n",
            "shop",
            "-o",
            "json",
            "-l",
            "app=web",
        ])
        .await,
    );
    let mut names: Vec<String> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| {
            format!(
                "{}/{}",
                i["kind"].as_str().unwrap_or(""),
                i["metadata"]["name"].as_str().unwrap_or("")
            )
        })
        .collect();
    names.sort();
    assert_eq!(names, ["ConfigMap/web-config", "Deployment/web"]);
    let table = k
        .ok(&["get", "cm", "-n", "shop", "-l", "app in (web)"])
        .await;
    assert!(
        table.starts_with("NAME") && table.contains("web-config"),
        "{table}"
    );
    let svc = json(
        &k.ok(&["get", "svc", "web", "-n", "shop", "-o", "json"])
            .await,
    );
    assert!(svc["spec"]["clusterIP"]
        .as_str()
        .is_some_and(|ip| ip.starts_with("10.96.")));
    assert_eq!(svc["spec"]["ports"][0]["protocol"], "TCP");
    let all = k.ok(&["get", "deploy", "-A", "-o", "name"]).await;
    assert_eq!(all.trim(), "deployment.apps/web");
}

#[tokio::test]
async fn kubectl_client_side_apply_with_default_validation() {
    let emu = start().await;
    let Some(k) = Kubectl::new(&emu) else { return };
    let file = k.file("app.yaml", APP);
    let out = k.ok(&["apply", "-f", &file]).await;
    assert!(out.contains("deployment.apps/web created"), "{out}");
    let changed = k.file(
        "changed.yaml",
        &APP.replace("replicas: 2", "replicas: 3")
            .replace("mode: prod", "mode: test"),
    );
    let out = k.ok(&["apply", "-f", &changed]).await;
    assert!(out.contains("deployment.apps/web configured"), "{out}");
    assert!(out.contains("configmap/web-config configured"), "{out}");
    assert!(out.contains("namespace/shop unchanged"), "{out}");
    let d = json(
        &k.ok(&["get", "deploy", "web", "-n", "shop", "-o", "json"])
            .await,
    );
    assert_eq!(d["spec"]["replicas"], 3);
    assert!(
        d["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .is_string()
    );
    let mode = k
        .ok(&[
            "get",
            "cm",
            "web-config",
            "-n",
            "shop",
            "-o",
            "jsonpath={.data.mode}",
        ])
        .await;
    assert_eq!(mode, "test");
    let dry = k.ok(&["apply", "-f", &file, "--dry-run=server"]).await;
    assert!(dry.contains("(server dry run)"), "{dry}");
    let still = k
        .ok(&[
            "get",
            "deploy",
            "web",
            "-n",
            "shop",
            "-o",
            "jsonpath={.spec.replicas}",
        ])
        .await;
    assert_eq!(still, "3");
}

#[tokio::test]
async fn kubectl_delete_namespace_cascades() {
    let emu = start().await;
    let Some(k) = Kubectl::new(&emu) else { return };
    let file = k.file("app.yaml", APP);
    k.ok(&["apply", "--server-side", "-f", &file]).await;
    let out = k
        .ok(&["delete", "namespace", "shop", "--timeout=20s"])
        .await;
    assert!(out.contains("namespace \"shop\" deleted"), "{out}");
    let err = k.fails(&["get", "namespace", "shop"]).await;
    assert!(err.contains("namespaces \"shop\" not found"), "{err}");
    let left = k
        .run(&["get", "deploy,cm,svc", "-n", "shop", "-o", "name"])
        .await;
    assert!(left.stdout.trim().is_empty(), "{}", left.stdout);
    // The namespace name is free again.
    k.ok(&["apply", "--server-side", "-f", &file]).await;
}

const CRD: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {kind: Widget, plural: widgets, singular: widget, shortNames: [wd]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
"#;

#[tokio::test]
async fn kubectl_crd_then_instance() {
    let emu = start().await;
    let Some(k) = Kubectl::new(&emu) else { return };
    let crd = k.file("crd.yaml", CRD);
    k.ok(&["apply", "-f", &crd]).await;
    k.ok(&[
        "wait",
        "--for",
        "condition=Established",
        "crd/widgets.example.com",
        "--timeout=20s",
    ])
    .await;
    let w = "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w1, namespace: default}\nspec: {size: 3}\n";
    let wfile = k.file("w.yaml", w);
    let out = k.ok(&["apply", "-f", &wfile]).await;
    assert!(out.contains("widget.example.com/w1 created"), "{out}");
    let changed = k.file("w2.yaml", &w.replace("size: 3", "size: 4"));
    let out = k.ok(&["apply", "-f", &changed]).await;
    assert!(out.contains("widget.example.com/w1 configured"), "{out}");
    let size = k
        .ok(&["get", "wd", "w1", "-o", "jsonpath={.spec.size}"])
        .await;
    assert_eq!(size, "4");
    let ssa = k
        .ok(&["apply", "--server-side", "--force-conflicts", "-f", &wfile])
        .await;
    assert!(ssa.contains("serverside-applied"), "{ssa}");
    let err = k
        .fails(&[
            "patch",
            "wd",
            "w1",
            "--type",
            "strategic",
            "-p",
            r#"{"spec":{"size":1}}"#,
        ])
        .await;
    assert!(
        err.contains("application/strategic-merge-patch+json is not supported"),
        "{err}"
    );
    k.ok(&["delete", "crd", "widgets.example.com"]).await;
    let gone = k.fails(&["get", "widgets.example.com"]).await;
    assert!(
        gone.contains("the server could not find the requested resource")
            || gone.contains("doesn't have a resource type"),
        "{gone}"
    );
}

#[tokio::test]
async fn kubectl_reports_malformed_requests() {
    let emu = start().await;
    let Some(k) = Kubectl::new(&emu) else { return };
    let bad_name = k.file(
        "bad.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: Bad_Name, namespace: default}\n",
    );
    let err = k.fails(&["create", "-f", &bad_name]).await;
    assert!(
        err.contains(
            "ConfigMap \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\""
        ),
        "{err}"
    );
    let raw = k.file("raw.json", "{\"apiVersion\": \"v1\", \"kind\": ");
    let err = k
        .fails(&[
            "create",
            "--raw",
            "/api/v1/namespaces/default/configmaps",
            "-f",
            &raw,
        ])
        .await;
    assert!(
        err.contains("(BadRequest)") || err.contains("json parse error"),
        "{err}"
    );
    let err = k.fails(&["get", "gizmos"]).await;
    assert!(
        err.contains("the server doesn't have a resource type \"gizmos\""),
        "{err}"
    );
    let err = k
        .fails(&["get", "--raw", "/apis/apps/v1/namespaces/default/gizmos"])
        .await;
    assert!(
        err.contains("NotFound") || err.contains("could not find"),
        "{err}"
    );
    let missing_ns = k.file(
        "ns.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: nowhere}\n",
    );
    let err = k
        .fails(&["apply", "--server-side", "-f", &missing_ns])
        .await;
    assert!(err.contains("namespaces \"nowhere\" not found"), "{err}");
    let default_ns = k.file(
        "default.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: default}\n",
    );
    let conflict = k.fails(&["create", "-f", &default_ns]).await;
    assert!(
        conflict.contains("namespaces \"default\" already exists"),
        "{conflict}"
    );
    k.ok(&["get", "namespaces"]).await;
}
