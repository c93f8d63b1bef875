//! The directory renderer end to end: file selection, ordering, origins,
//! warnings and errors, on temporary repositories.

mod render_support;

use kubesync::model::{DirectoryOptions, RendererSpec};
use kubesync::render::{RenderError, Renderer, RendererKind};
use render_support::{app_with, cm, names, origins, render, Repo};

fn layout() -> Repo {
    let repo = Repo::new();
    repo.write("apps/web/a.yaml", &format!("{}---\n{}", cm("a1"), cm("a2")))
        .write("apps/web/b.yml", &cm("b"))
        .write(
            "apps/web/c.json",
            r#"{"apiVersion": "v1", "kind": "List", "items": [
                 {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "c1"}},
                 {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "c2"}}]}"#,
        )
        .write("apps/web/sub/d.yaml", &cm("d"))
        .write("apps/web/sub/deeper/e.yaml", &cm("e"))
        .write("apps/web/test-x.yaml", &cm("test-x"))
        .write("apps/web/.hidden.yaml", &cm("hidden"))
        .write("apps/web/.git/config.yaml", &cm("git"))
        .write("apps/web/README.md", "# not yaml\n");
    repo
}

#[test]
fn top_level_files_in_sorted_order_with_origins() {
    let repo = layout();
    let app = app_with("web", None, "{path: apps/web}");
    let r = render(&Renderer::new(), &repo, &app, None).unwrap();
    assert_eq!(r.renderer, RendererKind::Directory);
    assert_eq!(
        names(&r),
        vec![
            "ConfigMap/a1",
            "ConfigMap/a2",
            "ConfigMap/b",
            "Secret/c1",
            "Secret/c2",
            "ConfigMap/test-x"
        ]
    );
    assert_eq!(
        origins(&r),
        vec![
            "apps/web/a.yaml",
            "apps/web/a.yaml (document 2)",
            "apps/web/b.yml",
            "apps/web/c.json",
            "apps/web/c.json",
            "apps/web/test-x.yaml",
        ]
    );
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
}

#[test]
fn a_values_file_in_the_directory_is_an_error_not_a_skip() {
    let repo = layout();
    repo.write("apps/web/values.yaml", "replicaCount: 2\n");
    let app = app_with("web", None, "{path: apps/web}");
    let e = render(&Renderer::new(), &repo, &app, None).unwrap_err();
    assert_eq!(
        e.to_string(),
        "application \"web\": apps/web/values.yaml: document 1: not a Kubernetes object: it has neither apiVersion nor kind (kubectl refuses it too)"
    );
    // Excluding it is the way out.
    let app = app_with(
        "web",
        None,
        "{path: apps/web, directory: {exclude: values.yaml}}",
    );
    assert!(render(&Renderer::new(), &repo, &app, None).is_ok());
}

#[test]
fn recurse_include_exclude() {
    let repo = layout();
    let all = app_with("web", None, "{path: apps/web, directory: {recurse: true}}");
    let r = render(&Renderer::new(), &repo, &all, None).unwrap();
    assert_eq!(
        names(&r),
        vec![
            "ConfigMap/a1",
            "ConfigMap/a2",
            "ConfigMap/b",
            "Secret/c1",
            "Secret/c2",
            "ConfigMap/d",
            "ConfigMap/e",
            "ConfigMap/test-x"
        ]
    );
    assert!(origins(&r).contains(&"apps/web/sub/deeper/e.yaml".to_string()));

    let filtered = app_with(
        "web",
        None,
        "{path: apps/web, directory: {recurse: true, include: '{*.yml,*.json,sub/*}', exclude: 'sub/deeper/*'}}",
    );
    let r = render(&Renderer::new(), &repo, &filtered, None).unwrap();
    assert_eq!(
        names(&r),
        vec!["ConfigMap/b", "Secret/c1", "Secret/c2", "ConfigMap/d"]
    );

    let excluded = app_with(
        "web",
        None,
        "{path: apps/web, directory: {exclude: 'test-*'}}",
    );
    let r = render(&Renderer::new(), &repo, &excluded, None).unwrap();
    assert!(!names(&r).contains(&"ConfigMap/test-x".to_string()));
}

#[test]
fn invalid_glob_is_an_error() {
    let repo = layout();
    // The model validates globs too; a renderer handed a bad one still fails cleanly.
    let mut app = app_with("web", None, "{path: apps/web}");
    app.source.renderer = RendererSpec::Directory(DirectoryOptions {
        include: Some("{a,b".into()),
        ..Default::default()
    });
    let e = render(&Renderer::new(), &repo, &app, None).unwrap_err();
    assert!(matches!(e, RenderError::BadOption { .. }), "{e:?}");
    assert!(
        e.to_string()
            .starts_with("application \"web\": directory.include: \"{a,b\" is not a valid glob"),
        "{e}"
    );
}

#[test]
fn bad_yaml_names_file_document_and_line() {
    let repo = Repo::new();
    repo.write("apps/web/ok.yaml", &cm("ok")).write(
        "apps/web/bad.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: v1\nkind: ConfigMap\ndata: [1, 2\n",
    );
    let app = app_with("web", None, "{path: apps/web}");
    let e = render(&Renderer::new(), &repo, &app, None).unwrap_err();
    match &e {
        RenderError::Yaml {
            app,
            file,
            doc,
            line,
            ..
        } => {
            assert_eq!(app, "web");
            assert_eq!(file.to_str(), Some("apps/web/bad.yaml"));
            assert_eq!(*doc, 1);
            assert_eq!(*line, Some(8));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        e.to_string(),
        "application \"web\": apps/web/bad.yaml: document 2: invalid YAML at line 8: did not find expected ',' or ']'"
    );
}

#[test]
fn object_without_a_name_is_an_error() {
    let repo = Repo::new();
    repo.write(
        "apps/web/x.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  labels: {a: b}\n",
    );
    let app = app_with("web", None, "{path: apps/web}");
    let e = render(&Renderer::new(), &repo, &app, None).unwrap_err();
    assert_eq!(
        e.to_string(),
        "application \"web\": apps/web/x.yaml: document 1: Deployment has no metadata.name"
    );
}

#[test]
fn symlinks_inside_are_followed_and_escapes_refused() {
    let repo = Repo::new();
    repo.write("shared/common.yaml", &cm("common"))
        .write("apps/web/own.yaml", &cm("own"));
    std::os::unix::fs::symlink(
        "../../shared/common.yaml",
        repo.path("apps/web/common.yaml"),
    )
    .unwrap();
    let app = app_with("web", None, "{path: apps/web}");
    let r = render(&Renderer::new(), &repo, &app, None).unwrap();
    assert_eq!(names(&r), vec!["ConfigMap/common", "ConfigMap/own"]);
    assert_eq!(origins(&r)[0], "apps/web/common.yaml");

    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.yaml"), cm("stolen")).unwrap();
    std::os::unix::fs::symlink(
        outside.path().join("secret.yaml"),
        repo.path("apps/web/evil.yaml"),
    )
    .unwrap();
    let e = render(&Renderer::new(), &repo, &app, None).unwrap_err();
    assert!(matches!(e, RenderError::PathEscapes { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        "application \"web\": apps/web/evil.yaml leads outside the repository (symlinks and \"..\" must stay inside it)"
    );
}

#[test]
fn symlinked_directory_escape_is_refused_when_recursing() {
    let repo = Repo::new();
    repo.write("apps/web/own.yaml", &cm("own"));
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("x.yaml"), cm("x")).unwrap();
    std::os::unix::fs::symlink(outside.path(), repo.path("apps/web/ext")).unwrap();
    let flat = app_with("web", None, "{path: apps/web}");
    assert_eq!(
        names(&render(&Renderer::new(), &repo, &flat, None).unwrap()),
        vec!["ConfigMap/own"]
    );
    let deep = app_with("web", None, "{path: apps/web, directory: {recurse: true}}");
    let e = render(&Renderer::new(), &repo, &deep, None).unwrap_err();
    assert_eq!(
        e.to_string(),
        "application \"web\": apps/web/ext leads outside the repository (symlinks and \"..\" must stay inside it)"
    );
}

#[test]
fn empty_directory_renders_nothing_with_a_warning() {
    let repo = Repo::new();
    repo.mkdir("apps/empty");
    let app = app_with("empty", None, "{path: apps/empty}");
    let r = render(&Renderer::new(), &repo, &app, None).unwrap();
    assert!(r.manifests.is_empty());
    assert_eq!(
        r.warnings,
        vec!["apps/empty rendered no objects (directory renderer)"]
    );
}

#[test]
fn missing_source_directory_is_an_error() {
    let repo = Repo::new();
    let app = app_with("web", None, "{path: apps/nope}");
    let e = render(&Renderer::new(), &repo, &app, None).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("application \"web\": apps/nope: source directory does not exist"),
        "{e}"
    );
}

#[test]
fn unsupported_sources_fail_with_their_reason() {
    let repo = Repo::new();
    let mut app = app_with("plug", None, "{path: .}");
    app.source.renderer =
        RendererSpec::Unsupported("config management plugins are not supported".into());
    let e = render(&Renderer::new(), &repo, &app, None).unwrap_err();
    assert_eq!(
        e.to_string(),
        "application \"plug\": cannot render: config management plugins are not supported"
    );
}

#[test]
fn applications_are_rendered_like_any_object() {
    let repo = Repo::new();
    repo.write(
        "root/apps.yaml",
        "apiVersion: kubesync.dev/v1alpha1\nkind: Application\nmetadata: {name: child}\nspec:\n  source: {path: apps/child}\n",
    );
    let app = app_with("root", None, "{path: root}");
    let r = render(&Renderer::new(), &repo, &app, None).unwrap();
    assert_eq!(names(&r), vec!["Application/child"]);
}
