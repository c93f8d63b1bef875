//! The jinja renderer end to end: variables, the `app` context, includes and
//! imports, plain manifests beside templates, and errors naming file and line.

mod render_support;

use kubesync::render::{RenderError, Renderer, RendererKind};
use render_support::{app, cm, names, origins, render, Repo};

const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

fn jinja_app(vars: &str) -> kubesync::model::Application {
    app(&format!(
        "apiVersion: kubesync.dev/v1alpha1
kind: Application
metadata: {{name: web}}
spec:
  tier: app
  source:
    path: apps/web
    jinja: {{vars: {vars}}}
  destination: {{namespace: shop}}
"
    ))
}

#[test]
fn vars_app_context_includes_and_plain_files() {
    let repo = Repo::new();
    repo.write(
        "apps/web/deploy.yaml.j2",
        "{% import '_macros.j2' as m %}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ app.name }}-{{ env }}
  namespace: {{ app.namespace }}
  annotations:
    revision: \"{{ app.revision }}\"
    tier: {{ app.tier }}
    same: \"{{ vars.env == env }}\"
  labels: {{ m.labels(app.name) }}
spec:
  replicas: {{ replicas }}
---
{% include 'parts/_cm.j2' %}
",
    )
    .write("apps/web/_macros.j2", "{% macro labels(n) %}{app: {{ n }}}{% endmacro %}")
    .write(
        "apps/web/parts/_cm.j2",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n  token: {{ 'secret' | b64encode }}\n  settings: '{{ settings | tojson }}'\n",
    )
    .write(
        "apps/web/parts/svc.yaml.j2",
        "{% for p in ports %}---\napiVersion: v1\nkind: Service\nmetadata:\n  name: svc-{{ p }}\n{% endfor %}",
    )
    .write("apps/web/plain.yaml", &cm("plain"));
    let app = jinja_app("{env: prod, replicas: 3, ports: [80, 443], settings: {a: 1}}");
    let r = render(&Renderer::new(), &repo, &app, Some(SHA)).unwrap();
    assert_eq!(r.renderer, RendererKind::Jinja);
    assert_eq!(
        names(&r),
        vec![
            "Deployment/web-prod",
            "ConfigMap/cfg",
            "Service/svc-80",
            "Service/svc-443",
            "ConfigMap/plain"
        ]
    );
    assert_eq!(
        origins(&r),
        vec![
            "apps/web/deploy.yaml.j2",
            "apps/web/deploy.yaml.j2 (document 2)",
            "apps/web/parts/svc.yaml.j2",
            "apps/web/parts/svc.yaml.j2 (document 2)",
            "apps/web/plain.yaml",
        ]
    );
    let dep = &r.manifests[0].object;
    assert_eq!(dep["metadata"]["namespace"], "shop");
    assert_eq!(dep["metadata"]["annotations"]["revision"], SHA);
    assert_eq!(dep["metadata"]["annotations"]["tier"], "app");
    assert_eq!(dep["metadata"]["annotations"]["same"], "True");
    assert_eq!(dep["metadata"]["labels"]["app"], "web");
    assert_eq!(dep["spec"]["replicas"], 3);
    let cfg = &r.manifests[1].object;
    assert_eq!(cfg["data"]["token"], "c2VjcmV0");
    assert_eq!(cfg["data"]["settings"], r#"{"a":1}"#);
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
}

#[test]
fn detected_without_options_and_work_tree_revision_is_worktree() {
    let repo = Repo::new();
    repo.write(
        "apps/web/cm.yaml.j2",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: rev-{{ app.revision }}-{{ revision }}\n",
    );
    let app = render_support::app_with("web", None, "{path: apps/web}");
    let r = render(&Renderer::new(), &repo, &app, None).unwrap();
    assert_eq!(r.renderer, RendererKind::Jinja);
    assert_eq!(names(&r), vec!["ConfigMap/rev-worktree-worktree"]);
}

#[test]
fn undefined_variable_names_file_and_line() {
    let repo = Repo::new();
    repo.write(
        "apps/web/cm.yaml.j2",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ app.name }}\ndata:\n  x: {{ missing }}\n",
    );
    let e = render(&Renderer::new(), &repo, &jinja_app("{}"), Some(SHA)).unwrap_err();
    match &e {
        RenderError::Template { file, line, .. } => {
            assert_eq!(file.to_str(), Some("apps/web/cm.yaml.j2"));
            assert_eq!(*line, Some(6));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        e.to_string(),
        "application \"web\": apps/web/cm.yaml.j2:6: template error: undefined value"
    );
}

#[test]
fn errors_inside_an_include_name_the_included_file() {
    let repo = Repo::new();
    repo.write("apps/web/main.yaml.j2", "{% include '_part.j2' %}\n")
        .write(
            "apps/web/_part.j2",
            "apiVersion: v1\n\nkind: {{ nope.kind }}\n",
        );
    let e = render(&Renderer::new(), &repo, &jinja_app("{}"), Some(SHA)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "application \"web\": apps/web/_part.j2:3: template error: undefined value (included from apps/web/main.yaml.j2:1)"
    );
}

#[test]
fn includes_cannot_leave_the_app_directory() {
    let repo = Repo::new();
    repo.write("secret.j2", "password: hunter2\n")
        .write("apps/web/cm.yaml.j2", "{% include '../../secret.j2' %}\n");
    let e = render(&Renderer::new(), &repo, &jinja_app("{}"), Some(SHA)).unwrap_err();
    let text = e.to_string();
    assert!(
        text.starts_with("application \"web\": apps/web/cm.yaml.j2:1: template error:"),
        "{text}"
    );
    assert!(text.contains("outside the application directory"), "{text}");
}

#[test]
fn invalid_rendered_yaml_names_the_template() {
    let repo = Repo::new();
    repo.write("apps/web/cm.yaml.j2", "apiVersion: v1\nkind: {{ '[' }}\n");
    let e = render(&Renderer::new(), &repo, &jinja_app("{}"), Some(SHA)).unwrap_err();
    let text = e.to_string();
    assert!(
        text.starts_with(
            "application \"web\": apps/web/cm.yaml.j2: document 1: invalid YAML at line"
        ),
        "{text}"
    );
    assert!(text.ends_with("(in the rendered output)"), "{text}");
}

#[test]
fn template_syntax_error_names_file_and_line() {
    let repo = Repo::new();
    repo.write("apps/web/cm.yaml.j2", "a: 1\nb: {% if %}\n");
    let e = render(&Renderer::new(), &repo, &jinja_app("{}"), Some(SHA)).unwrap_err();
    assert!(
        e.to_string().starts_with(
            "application \"web\": apps/web/cm.yaml.j2:2: template error: syntax error"
        ),
        "{e}"
    );
}
