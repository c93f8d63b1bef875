//! The offline commands (`tree`, `render`, `plan`) through the real binary:
//! the example tree, the Argo CD app-of-apps through `--repo-override`, and
//! every tree-level error with the text users see and the exit code.

mod sync_support;

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use sync_support::{configmap, path_with_helm, text, Repo};

fn kubesync(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kubesync"))
        .args(args)
        .current_dir(dir)
        .env("PATH", path_with_helm())
        .output()
        .expect("run kubesync")
}

fn project() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

#[test]
fn example_tree_plan_and_render() {
    let out = kubesync(project(), &["tree", "-o", "json"]);
    assert!(out.status.success(), "{}", text(&out));
    let tree: Value = serde_json::from_slice(&out.stdout).expect("json");
    let apps = tree["apps"].as_array().expect("apps");
    assert_eq!(apps.len(), 14);
    let renderers: std::collections::BTreeSet<&str> =
        apps.iter().filter_map(|a| a["renderer"].as_str()).collect();
    for r in ["directory", "jinja", "helm", "kustomize", "transform"] {
        assert!(renderers.contains(r), "renderer {r} unused: {renderers:?}");
    }
    let worker = apps
        .iter()
        .find(|a| a["name"] == "team-a-worker")
        .expect("nested child");
    assert_eq!(worker["parent"], "team-a");
    assert_eq!(worker["depth"], 2);

    let plan = kubesync(project(), &["plan"]);
    assert!(plan.status.success(), "{}", text(&plan));
    let stdout = String::from_utf8_lossy(&plan.stdout);
    assert!(stdout.starts_with("14 applications, "), "{stdout}");
    let level_of = |app: &str| {
        let mut level = None;
        for line in stdout.lines() {
            if let Some(l) = line.strip_prefix("level ") {
                level = l.trim_end_matches(':').parse::<usize>().ok();
            } else if line.trim_start().starts_with(&format!("{app} ")) {
                return level;
            }
        }
        None
    };
    assert!(
        level_of("guestbook") > level_of("ingress-nginx"),
        "{stdout}"
    );
    assert!(level_of("monitoring") > level_of("crds"), "{stdout}");

    let render = kubesync(project(), &["render", "metrics-server"]);
    assert!(render.status.success(), "{}", text(&render));
    let yaml = String::from_utf8_lossy(&render.stdout);
    assert!(
        yaml.contains("# Source: metrics-server: charts/metrics-server/templates/"),
        "{yaml}"
    );
    assert!(
        yaml.contains("registry.k8s.io/metrics-server/metrics-server:v0.7.2"),
        "{yaml}"
    );
}

#[test]
fn argocd_app_of_apps_renders_through_a_repo_override() {
    let out = kubesync(
        project(),
        &[
            "--root",
            "examples/argocd-app-of-apps/root.yaml",
            "--repo-override",
            "https://github.com/example-org/gitops-demo.git=.",
            "render",
            "-o",
            "json",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let list: Value = serde_json::from_slice(&out.stdout).expect("json");
    let items = list["items"].as_array().expect("items");
    let argo_children = items
        .iter()
        .filter(|i| i["apiVersion"] == "argoproj.io/v1alpha1" && i["kind"] == "Application")
        .count();
    assert_eq!(
        argo_children, 3,
        "the chart renders three Argo CD Applications"
    );
    assert!(
        items.iter().any(|i| i["kind"] == "Deployment"),
        "children render too"
    );

    // Without the override the remote cannot be reached: those apps fail alone, naming it.
    let out = kubesync(
        project(),
        &["--root", "examples/argocd-app-of-apps/root.yaml", "tree"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        stderr(&out).contains("github.com/example-org/gitops-demo.git"),
        "{}",
        text(&out)
    );
}

fn write_app(repo: &Repo, name: &str, spec: &str) {
    repo.write(
        &format!("apps/{name}.yaml"),
        &format!("apiVersion: kubesync.dev/v1alpha1\nkind: Application\nmetadata: {{name: {name}}}\nspec:\n{spec}"),
    );
}

#[test]
fn configuration_errors_exit_2_and_name_the_apps() {
    // A cycle.
    let repo = Repo::new();
    write_app(
        &repo,
        "a",
        "  source: {path: objects/a}\n  dependsOn: [b]\n",
    );
    write_app(
        &repo,
        "b",
        "  source: {path: objects/b}\n  dependsOn: [a]\n",
    );
    repo.write("objects/a/cm.yaml", &configmap("a", "x: y"));
    repo.write("objects/b/cm.yaml", &configmap("b", "x: y"));
    let out = kubesync(repo.path(), &["--root", "root.yaml", "plan"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        stderr(&out).contains("error: dependency cycle: a → b → a"),
        "{}",
        text(&out)
    );

    // An unknown dependency, with a suggestion.
    let repo = Repo::new();
    write_app(&repo, "ingress", "  source: {path: objects/a}\n");
    write_app(
        &repo,
        "web",
        "  source: {path: objects/a}\n  dependsOn: [ingres]\n",
    );
    repo.write("objects/a/cm.yaml", &configmap("a", "x: y"));
    let out = kubesync(repo.path(), &["--root", "root.yaml", "tree"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        stderr(&out).contains("application \"web\" depends on \"ingres\", which is not in the tree (did you mean \"ingress\"?)"),
        "{}",
        text(&out)
    );

    // A duplicate name fails the parent that rendered it.
    let repo = Repo::new();
    write_app(&repo, "web", "  source: {path: objects/a}\n");
    repo.write(
        "apps/web-again.yaml",
        "apiVersion: kubesync.dev/v1alpha1\nkind: Application\nmetadata: {name: web}\nspec: {source: {path: objects/a}}\n",
    );
    repo.write("objects/a/cm.yaml", &configmap("a", "x: y"));
    let out = kubesync(repo.path(), &["--root", "root.yaml", "tree"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        stderr(&out).contains("error: application \"root\": renders application \"web\""),
        "{}",
        text(&out)
    );
    assert!(
        stderr(&out).contains("but that name is already defined at"),
        "{}",
        text(&out)
    );

    // An app that renders itself.
    let repo = Repo::new();
    repo.write(
        "root.yaml",
        "apiVersion: kubesync.dev/v1alpha1\nkind: Application\nmetadata: {name: root}\nspec: {tier: system, source: {path: .}, }\n",
    );
    repo.write(
        "self.yaml",
        "apiVersion: kubesync.dev/v1alpha1\nkind: Application\nmetadata: {name: root}\nspec: {source: {path: .}}\n",
    );
    let out = kubesync(repo.path(), &["--root", "root.yaml", "tree"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        stderr(&out).contains("application \"root\" renders itself"),
        "{}",
        text(&out)
    );

    // An invalid child manifest names the file and the field.
    let repo = Repo::new();
    write_app(
        &repo,
        "web",
        "  source: {path: objects/a}\n  syncPolicy: {wait: {timeout: soon}}\n",
    );
    repo.write("objects/a/cm.yaml", &configmap("a", "x: y"));
    let out = kubesync(repo.path(), &["--root", "root.yaml", "tree"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        stderr(&out).contains(
            "error: application \"web\": apps/web.yaml: spec.syncPolicy.wait.timeout: \"soon\""
        ),
        "{}",
        text(&out)
    );

    // A missing root.
    let out = kubesync(repo.path(), &["--root", "nope.yaml", "tree"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        stderr(&out).contains("nope.yaml: cannot read the root manifest"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_failing_app_fails_alone_and_render_prints_nothing_partial() {
    let repo = Repo::new();
    write_app(&repo, "good", "  source: {path: objects/good}\n");
    repo.write("objects/good/cm.yaml", &configmap("good", "x: y"));
    write_app(&repo, "broken", "  source: {path: objects/broken}\n");
    repo.write(
        "objects/broken/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x\n",
    );
    write_app(
        &repo,
        "charted",
        "  source: {path: objects/chart, helm: {}}\n",
    );
    repo.write(
        "objects/chart/Chart.yaml",
        "apiVersion: v2\nname: c\nversion: 0.1.0\n",
    );
    repo.write("objects/chart/templates/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ required \"name is required\" .Values.name }}\n");

    let out = kubesync(repo.path(), &["--root", "root.yaml", "tree"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = stderr(&out);
    assert!(
        err.contains("error: application \"broken\": objects/broken/cm.yaml"),
        "{err}"
    );
    assert!(err.contains("invalid YAML at line"), "{err}");
    assert!(
        err.contains("error: application \"charted\"") && err.contains("name is required"),
        "{err}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout
            .lines()
            .any(|l| l.contains("good") && l.ends_with("rendered")),
        "{stdout}"
    );

    let out = kubesync(repo.path(), &["--root", "root.yaml", "render"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        out.stdout.is_empty(),
        "partial output printed: {}",
        text(&out)
    );
    assert!(
        stderr(&out).contains("2 of 4 application(s) failed to render; nothing was printed"),
        "{}",
        text(&out)
    );

    // Just the good one renders fine.
    let out = kubesync(repo.path(), &["--root", "root.yaml", "render", "good"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("name: good"));

    // An unknown app name is a usage error listing the known ones.
    let out = kubesync(repo.path(), &["--root", "root.yaml", "render", "nope"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        stderr(&out).contains("no application named \"nope\""),
        "{}",
        text(&out)
    );
}

#[test]
fn a_missing_helm_binary_names_the_binary_and_the_app() {
    let repo = Repo::new();
    write_app(&repo, "charted", "  source: {path: objects/chart}\n");
    repo.write(
        "objects/chart/Chart.yaml",
        "apiVersion: v2\nname: c\nversion: 0.1.0\n",
    );
    repo.write(
        "objects/chart/templates/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
    );
    let out = Command::new(env!("CARGO_BIN_EXE_kubesync"))
        .args(["--root", "root.yaml", "tree"])
        .current_dir(repo.path())
        .env("PATH", "/nonexistent")
        .env_remove("KUBESYNC_HELM")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        stderr(&out).contains("error: application \"charted\": helm not found"),
        "{}",
        text(&out)
    );
}
