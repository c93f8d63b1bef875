//! The helm renderer end to end through a `helm` binary: a real helm on PATH
//! (or `$KUBESYNC_HELM`), else the helm-compatible test wrapper at
//! `tests/support/helm/helm`. Skipped, with the reason printed, when neither
//! works on this machine.

mod render_support;

use std::path::PathBuf;

use kubesync::render::{find_in_path, RenderError, Renderer, RendererKind};
use render_support::{app_with, names, origins, render, Repo};

fn helm() -> Result<PathBuf, String> {
    let candidates: Vec<PathBuf> = std::env::var_os("KUBESYNC_HELM")
        .map(PathBuf::from)
        .into_iter()
        .chain(find_in_path(
            "helm".as_ref(),
            &std::env::var_os("PATH").unwrap_or_default(),
        ))
        .chain(Some(
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/support/helm/helm"),
        ))
        .collect();
    let mut tried = Vec::new();
    for c in candidates {
        match std::process::Command::new(&c)
            .args(["version", "--short"])
            .output()
        {
            Ok(o) if o.status.success() => return Ok(c),
            Ok(o) => tried.push(format!(
                "{}: {}",
                c.display(),
                String::from_utf8_lossy(&o.stderr).trim()
            )),
            Err(e) => tried.push(format!("{}: {e}", c.display())),
        }
    }
    Err(format!("no working helm ({})", tried.join("; ")))
}

macro_rules! require_helm {
    () => {
        match helm() {
            Ok(h) => Renderer::new().with_helm(h),
            Err(why) => {
                eprintln!("skipped: {why}");
                return;
            }
        }
    };
}

fn chart() -> Repo {
    let repo = Repo::new();
    repo.write(
        "charts/web/Chart.yaml",
        "apiVersion: v2\nname: webchart\nversion: 0.1.0\n",
    )
    .write(
        "charts/web/values.yaml",
        "replicas: 1\nimage: {repository: nginx, tag: \"1.0\"}\ngreeting: hello\nlist: \"\"\n",
    )
    .write(
        "charts/web/values-prod.yaml",
        "replicas: 3\ngreeting: prod\n",
    )
    .write("shared/values-common.yaml", "image: {tag: \"1.5\"}\n")
    .write(
        "charts/web/templates/deploy.yaml",
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}
  namespace: {{ .Release.Namespace }}
spec:
  replicas: {{ .Values.replicas }}
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: {{ .Values.image.repository }}:{{ .Values.image.tag }}
",
    )
    .write(
        "charts/web/templates/cm.yaml",
        "apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-a
data:
  greeting: {{ .Values.greeting | quote }}
  list: {{ .Values.list | quote }}
  port: {{ .Values.port | default 80 | quote }}
  kind: {{ kindOf .Values.port | quote }}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-b
",
    )
    .write(
        "charts/web/crds/widgets.yaml",
        "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  names: {kind: Widget, plural: widgets}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema: {openAPIV3Schema: {type: object}}
",
    );
    repo
}

#[test]
fn defaults_with_crds_and_origins() {
    let renderer = require_helm!();
    let repo = chart();
    let app = app_with("web", Some("shop"), "{path: charts/web}");
    let r = render(&renderer, &repo, &app, None).unwrap();
    assert_eq!(r.renderer, RendererKind::Helm);
    let mut got = names(&r);
    got.sort();
    assert_eq!(
        got,
        vec![
            "ConfigMap/web-a",
            "ConfigMap/web-b",
            "CustomResourceDefinition/widgets.example.com",
            "Deployment/web"
        ]
    );
    let by_name = |n: &str| {
        r.manifests
            .iter()
            .find(|m| m.object["metadata"]["name"] == n)
            .unwrap_or_else(|| panic!("no {n}"))
    };
    assert_eq!(
        by_name("web").origin.to_string(),
        "charts/web/templates/deploy.yaml"
    );
    assert_eq!(
        by_name("web-b").origin.to_string(),
        "charts/web/templates/cm.yaml (document 2)"
    );
    assert_eq!(
        by_name("widgets.example.com").origin.to_string(),
        "charts/web/crds/widgets.yaml"
    );
    assert_eq!(by_name("web").object["metadata"]["namespace"], "shop");
    assert_eq!(by_name("web").object["spec"]["replicas"], 1);
    assert!(origins(&r).iter().all(|o| o.starts_with("charts/web/")));
}

#[test]
fn value_files_inline_values_and_parameters() {
    let renderer = require_helm!();
    let repo = chart();
    let app = app_with(
        "web",
        None,
        "{path: charts/web, helm: {releaseName: rel, skipCrds: true,
          valueFiles: [values-prod.yaml, /shared/values-common.yaml],
          values: {greeting: inline, image: {repository: mirror/nginx}},
          parameters: [{name: image.tag, value: '2.0'}, {name: port, value: '8080', forceString: true}, {name: list, value: 'a,b'}]}}",
    );
    let r = render(&renderer, &repo, &app, None).unwrap();
    let mut got = names(&r);
    got.sort();
    assert_eq!(
        got,
        vec!["ConfigMap/rel-a", "ConfigMap/rel-b", "Deployment/rel"]
    );
    let dep = &r
        .manifests
        .iter()
        .find(|m| m.kind() == "Deployment")
        .unwrap()
        .object;
    assert_eq!(dep["metadata"]["namespace"], "default");
    assert_eq!(dep["spec"]["replicas"], 3);
    assert_eq!(
        dep["spec"]["template"]["spec"]["containers"][0]["image"],
        "mirror/nginx:2.0"
    );
    let cm = &r
        .manifests
        .iter()
        .find(|m| m.object["metadata"]["name"] == "rel-a")
        .unwrap()
        .object;
    assert_eq!(cm["data"]["greeting"], "inline");
    assert_eq!(cm["data"]["port"], "8080");
    assert_eq!(cm["data"]["kind"], "string");
    assert_eq!(cm["data"]["list"], "a,b");
}

#[test]
fn chart_errors_reach_the_user() {
    let renderer = require_helm!();
    let repo = chart();
    repo.write(
        "charts/web/templates/fail.yaml",
        "{{ required \"dbPassword is required\" .Values.dbPassword }}\n",
    );
    let app = app_with("web", None, "{path: charts/web}");
    let e = render(&renderer, &repo, &app, None).unwrap_err();
    let RenderError::Helm { chart, stderr, .. } = &e else {
        panic!("{e:?}")
    };
    assert_eq!(chart.to_str(), Some("charts/web"));
    assert!(stderr.contains("dbPassword is required"), "{stderr}");
    assert!(
        e.to_string()
            .starts_with("application \"web\": helm template of chart charts/web failed: Error:"),
        "{e}"
    );
}

#[test]
fn missing_value_files() {
    let renderer = require_helm!();
    let repo = chart();
    let strict = app_with(
        "web",
        None,
        "{path: charts/web, helm: {valueFiles: [values-nope.yaml]}}",
    );
    let e = render(&renderer, &repo, &strict, None).unwrap_err();
    assert_eq!(
        e.to_string(),
        "application \"web\": value file values-nope.yaml of chart charts/web not found (set ignoreMissingValueFiles to skip missing value files)"
    );
    let lenient = app_with(
        "web",
        None,
        "{path: charts/web, helm: {valueFiles: [values-nope.yaml], ignoreMissingValueFiles: true}}",
    );
    let r = render(&renderer, &repo, &lenient, None).unwrap();
    assert_eq!(
        r.warnings,
        vec!["value file values-nope.yaml of chart charts/web not found; ignored (ignoreMissingValueFiles)"]
    );
}

#[test]
fn value_files_must_stay_in_the_repository() {
    // Checked before helm runs: no helm needed.
    let repo = chart();
    let app = app_with(
        "web",
        None,
        "{path: charts/web, helm: {valueFiles: [../../../../etc/passwd]}}",
    );
    let e = render(&Renderer::new().with_helm("/bin/true"), &repo, &app, None).unwrap_err();
    assert!(matches!(e, RenderError::PathEscapes { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        "application \"web\": charts/web/../../../../etc/passwd leads outside the repository (symlinks and \"..\" must stay inside it)"
    );
}

#[test]
fn missing_helm_names_the_binary_and_the_app() {
    if std::env::var_os("KUBESYNC_HELM").is_some() {
        eprintln!("skipped: KUBESYNC_HELM is set");
        return;
    }
    let repo = chart();
    let app = app_with("web", None, "{path: charts/web}");
    let e = render(&Renderer::new().with_search_path(""), &repo, &app, None).unwrap_err();
    assert!(matches!(e, RenderError::MissingBinary { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        "application \"web\": helm not found: the chart of charts/web needs helm 3 or later on PATH (or set $KUBESYNC_HELM to its path)"
    );
}
