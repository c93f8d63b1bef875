//! Hostile inputs to the renderers, in process: each must fail the app with
//! an error naming the app and the file at fault (returning no objects), or
//! be contained, never skipped silently, escape the repository or run
//! without bound.

mod render_support;

use std::time::{Duration, Instant};

use kubesync::model::Application;
use kubesync::render::{find_in_path, RenderError, RenderInput, Rendered, Renderer};
use render_support::{app, app_with, cm, names, render, Repo};

/// Renders `app` with the repository at `<tmp>/repo`, so that `<tmp>/outside`
/// is outside it.
fn render_in(
    renderer: &Renderer,
    tmp: &Repo,
    app: &Application,
) -> Result<std::sync::Arc<Rendered>, RenderError> {
    let root = tmp.path("repo");
    let app_dir = root.join(app.source.path.as_path());
    renderer.render(&RenderInput::new(app, &root, &app_dir, None))
}

fn err_text(r: Result<std::sync::Arc<Rendered>, RenderError>) -> String {
    match r {
        Ok(r) => panic!("rendered {:?}", names(&r)),
        Err(e) => e.to_string(),
    }
}

// A. Malformed documents are errors, not skips.

#[test]
fn a_malformed_document_fails_the_app_instead_of_being_skipped() {
    let repo = Repo::new();
    repo.write(
        "apps/web/objects.yaml",
        &format!(
            "{}---\napiVersion: v1\nKind: ConfigMap\nmetadata:\n  name: b\n",
            cm("a")
        ),
    );
    let app = app_with("web", None, "{path: apps/web}");
    assert_eq!(
        err_text(render(&Renderer::new(), &repo, &app, None)),
        "application \"web\": apps/web/objects.yaml: document 2: kind is missing (found \"Kind\"; field names are case-sensitive)"
    );
    repo.write(
        "apps/web/objects.yaml",
        "apiVersion: 5\nkind: ConfigMap\nmetadata: {name: a}\n",
    );
    assert_eq!(
        err_text(render(&Renderer::new(), &repo, &app, None)),
        "application \"web\": apps/web/objects.yaml: document 1: apiVersion must be a string, found a number"
    );
}

#[test]
fn a_malformed_document_in_transform_output_fails_the_app() {
    let repo = Repo::new();
    repo.script(
        "apps/gen/t.sh",
        "#!/bin/sh\nprintf 'apiVersion: v1\\nkind: ConfigMap\\nmetadata: [x]\\n' > \"$OUTDIR/out.yaml\"\n",
    );
    let app = app_with(
        "gen",
        None,
        "{path: apps/gen, transform: {command: [./t.sh]}}",
    );
    assert_eq!(
        err_text(render(&Renderer::new(), &repo, &app, None)),
        "application \"gen\": transform:out.yaml: document 1: metadata must be a mapping, found a sequence"
    );
}

// B. Everything confined to the repository.

fn outside_base(tmp: &Repo) {
    tmp.write("outside/base/kustomization.yaml", "resources: [cm.yaml]\n")
        .write("outside/base/cm.yaml", &cm("stolen"));
}

#[test]
fn a_kustomization_reaching_outside_the_repository_is_refused() {
    let tmp = Repo::new();
    outside_base(&tmp);
    tmp.write(
        "repo/apps/web/kustomization.yaml",
        "resources: [cm.yaml, ../../../outside/base]\n",
    )
    .write("repo/apps/web/cm.yaml", &cm("mine"));
    let app = app_with("web", None, "{path: apps/web, kustomize: {}}");
    // Refused before any kustomize runs (this one would fail if it ran).
    let renderer = Renderer::new().with_kustomize("/bin/false");
    assert_eq!(
        err_text(render_in(&renderer, &tmp, &app)),
        "application \"web\": apps/web/kustomization.yaml: resources entry \"../../../outside/base\" leads outside the repository (a kustomization may use other directories of the repository, such as ../base, but nothing beyond it)"
    );
    // Through a sibling base and a symlink, and from a generator's files.
    tmp.write("repo/apps/base/kustomization.yaml", "resources: [link]\n");
    std::os::unix::fs::symlink(tmp.path("outside/base"), tmp.path("repo/apps/base/link")).unwrap();
    tmp.write("repo/apps/web/kustomization.yaml", "resources: [../base]\n");
    assert!(
        err_text(render_in(&renderer, &tmp, &app))
            .starts_with("application \"web\": apps/base/kustomization.yaml: resources entry \"link\" leads outside the repository"),
    );
    tmp.write(
        "repo/apps/web/kustomization.yaml",
        "configMapGenerator:\n- name: x\n  files: [k=/etc/hostname]\n",
    );
    assert!(err_text(render_in(&renderer, &tmp, &app)).contains(
        "apps/web/kustomization.yaml: configMapGenerator.files entry \"/etc/hostname\" leads outside"
    ));
}

#[test]
fn a_sibling_kustomize_base_inside_the_repository_still_renders() {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let Some(tool) = find_in_path("kustomize".as_ref(), &path)
        .or_else(|| find_in_path("kubectl".as_ref(), &path))
    else {
        eprintln!("skipped: neither kustomize nor kubectl is on PATH");
        return;
    };
    let tmp = Repo::new();
    tmp.write(
        "repo/apps/base/kustomization.yaml",
        "resources: [cm.yaml]\n",
    )
    .write("repo/apps/base/cm.yaml", &cm("base"))
    .write("repo/apps/web/kustomization.yaml", "resources: [../base]\n");
    let app = app_with("web", None, "{path: apps/web, kustomize: {}}");
    let r = render_in(&Renderer::new().with_kustomize(tool), &tmp, &app).unwrap();
    assert_eq!(names(&r), vec!["ConfigMap/base"]);
}

#[test]
fn a_helm_chart_with_a_symlink_outside_the_repository_is_refused() {
    let tmp = Repo::new();
    tmp.write("outside/secret.txt", "s3cret\n")
        .write(
            "repo/charts/web/Chart.yaml",
            "apiVersion: v2\nname: web\nversion: 0.1.0\n",
        )
        .write(
            "repo/charts/web/templates/cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata:\n  s: {{ .Files.Get \"files/.secret\" | quote }}\n",
        );
    std::fs::create_dir_all(tmp.path("repo/charts/web/files")).unwrap();
    std::os::unix::fs::symlink(
        tmp.path("outside/secret.txt"),
        tmp.path("repo/charts/web/files/.secret"),
    )
    .unwrap();
    let app = app_with("web", None, "{path: charts/web, helm: {}}");
    // Refused before helm runs (this one would fail if it ran).
    let renderer = Renderer::new().with_helm("/bin/false");
    assert_eq!(
        err_text(render_in(&renderer, &tmp, &app)),
        "application \"web\": charts/web/files/.secret leads outside the repository (symlinks and \"..\" must stay inside it)"
    );
}

#[test]
fn a_transform_gets_a_copy_of_its_input_directory() {
    let repo = Repo::new();
    repo.write("apps/gen/cm.yaml", &cm("original"))
        .write("apps/gen/sub/keep.txt", "keep\n")
        .script(
            "apps/gen/t.sh",
            "#!/bin/sh\nset -e\n[ \"$(pwd)\" = \"$INDIR\" ]\n[ -x \"$INDIR/t.sh\" ] && [ -f \"$INDIR/sub/keep.txt\" ]\nsed s/original/changed/ cm.yaml > \"$OUTDIR/cm.yaml\"\necho overwritten > \"$INDIR/cm.yaml\"\nrm -r \"$INDIR/sub\"\ntouch new-file\n",
        );
    let app = app_with(
        "gen",
        None,
        "{path: apps/gen, transform: {command: [./t.sh]}}",
    );
    let r = render(&Renderer::new(), &repo, &app, None).unwrap();
    assert_eq!(names(&r), vec!["ConfigMap/changed"]);
    assert_eq!(
        std::fs::read_to_string(repo.path("apps/gen/cm.yaml")).unwrap(),
        cm("original")
    );
    assert!(repo.path("apps/gen/sub/keep.txt").is_file());
    assert!(!repo.path("apps/gen/new-file").exists());
}

#[test]
fn a_transform_input_symlink_leading_outside_is_refused() {
    let tmp = Repo::new();
    tmp.write("outside/secret.txt", "s3cret\n").script(
        "repo/apps/gen/t.sh",
        "#!/bin/sh\ncat secret > \"$OUTDIR/x.yaml\"\n",
    );
    std::os::unix::fs::symlink(
        tmp.path("outside/secret.txt"),
        tmp.path("repo/apps/gen/secret"),
    )
    .unwrap();
    let app = app_with(
        "gen",
        None,
        "{path: apps/gen, transform: {command: [./t.sh]}}",
    );
    assert_eq!(
        err_text(render_in(&Renderer::new(), &tmp, &app)),
        "application \"gen\": apps/gen/secret leads outside the repository (symlinks and \"..\" must stay inside it)"
    );
}

#[test]
fn a_transform_flooding_stdout_is_drained_not_kept() {
    let repo = Repo::new();
    repo.script("apps/gen/t.sh", "#!/bin/sh\nhead -c 134217728 /dev/zero\n");
    let app = app_with(
        "gen",
        None,
        "{path: apps/gen, transform: {command: [./t.sh]}}",
    );
    let r = render(&Renderer::new(), &repo, &app, None).unwrap();
    assert!(r.manifests.is_empty());
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("printed 134217728 bytes on stdout")),
        "{:?}",
        r.warnings
    );
}

#[test]
fn a_transform_setsid_child_does_not_outlive_the_render() {
    let repo = Repo::new();
    let marker = tempfile::tempdir().unwrap();
    let survivor = marker.path().join("survivor");
    repo.script(
        "apps/gen/t.sh",
        &format!(
            "#!/bin/sh\nsetsid sh -c 'sleep 1; touch {}' &\ncp cm.yaml \"$OUTDIR/\"\n",
            survivor.display()
        ),
    )
    .write("apps/gen/cm.yaml", &cm("a"));
    let app = app_with(
        "gen",
        None,
        "{path: apps/gen, transform: {command: [./t.sh]}}",
    );
    let start = Instant::now();
    let r = render(&Renderer::new(), &repo, &app, None).unwrap();
    assert_eq!(names(&r), vec!["ConfigMap/a"]);
    assert!(start.elapsed() < Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        !survivor.exists(),
        "the setsid child outlived the transform"
    );
}

// C. Bounded jinja.

#[test]
fn a_runaway_jinja_template_runs_out_of_fuel() {
    let repo = Repo::new();
    repo.write(
        "apps/web/loops.yaml.j2",
        "{% for i in range(100000) %}{% for j in range(100000) %}# {{ i }} {{ j }}\n{% endfor %}{% endfor %}",
    );
    let app = app_with("web", None, "{path: apps/web, jinja: {}}");
    let start = Instant::now();
    let e = err_text(render(&Renderer::new(), &repo, &app, None));
    assert!(
        e.starts_with("application \"web\": apps/web/loops.yaml.j2:1: template error: template too expensive: ran out of fuel"),
        "{e}"
    );
    assert!(start.elapsed() < Duration::from_secs(120));
}

// D. YAML depth in linear time.

#[test]
fn deeply_nested_yaml_is_refused_quickly_naming_the_line() {
    let repo = Repo::new();
    let n = 100_000;
    repo.write(
        "apps/web/deep.yaml",
        &format!(
            "{}---\na: 1\nb: {}{}\n",
            cm("a"),
            "[".repeat(n),
            "]".repeat(n)
        ),
    );
    let app = app_with("web", None, "{path: apps/web}");
    let start = Instant::now();
    assert_eq!(
        err_text(render(&Renderer::new(), &repo, &app, None)),
        "application \"web\": apps/web/deep.yaml: document 2: invalid YAML at line 7: nesting deeper than 256 levels (at least 257); kubesync refuses such documents"
    );
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
}

// E. Strict YAML.

#[test]
fn a_duplicate_key_fails_the_app_naming_file_and_line() {
    let repo = Repo::new();
    repo.write(
        "apps/web/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  x: one\n  x: two\n",
    );
    let app = app_with("web", None, "{path: apps/web}");
    assert_eq!(
        err_text(render(&Renderer::new(), &repo, &app, None)),
        "application \"web\": apps/web/cm.yaml: document 1: invalid YAML at line 7: data: duplicate key \"x\" in the same mapping"
    );
}

#[test]
fn merge_keys_are_expanded_not_sent_as_labels() {
    let repo = Repo::new();
    repo.write(
        "apps/web/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  labels: &common\n    team: a\n    tier: web\n  annotations:\n    <<: *common\n    tier: override\n",
    );
    let app = app_with("web", None, "{path: apps/web}");
    let r = render(&Renderer::new(), &repo, &app, None).unwrap();
    assert_eq!(
        r.manifests[0].object["metadata"]["annotations"],
        serde_json::json!({"team": "a", "tier": "override"})
    );
}

#[test]
fn an_application_with_a_duplicated_source_is_refused() {
    // The root loader shares the parser: a duplicated `source:` no longer
    // deploys the second one silently.
    let repo = Repo::new();
    repo.write(
        "apps/root/child.yaml",
        "apiVersion: kubesync.dev/v1alpha1\nkind: Application\nmetadata: {name: child}\nspec:\n  source: {path: apps/a}\n  source: {path: apps/b}\n",
    );
    let parent = app("apiVersion: kubesync.dev/v1alpha1\nkind: Application\nmetadata: {name: root}\nspec:\n  source: {path: apps/root}\n");
    let e = err_text(render(&Renderer::new(), &repo, &parent, None));
    assert!(
        e.contains("apps/root/child.yaml: document 1: invalid YAML at line 6: spec: duplicate key \"source\""),
        "{e}"
    );
}
