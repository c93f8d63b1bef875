//! Benchmark: plan and full render of a generated 500-application tree.
//!
//! Generates, in a temporary git repository, a root app-of-apps with 500
//! children: 230 plain-directory apps, 230 jinja apps, 20 Helm charts and 20
//! kustomize bases, each rendering 10 objects, with dependencies between
//! them. Runs the release `kubesync` binary as a child process for `plan` and
//! `render`, and prints wall time, objects per second and the child's peak
//! resident memory (from `wait4`). A second, directory/jinja-only tree
//! measures the native renderers alone (target: ≥ 5,000 objects/s).
//!
//! Run: `cargo bench --bench render_tree`

mod common;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const DIR_APPS: usize = 230;
const JINJA_APPS: usize = 230;
const HELM_APPS: usize = 20;
const KUSTOMIZE_APPS: usize = 20;
const OBJECTS_PER_APP: usize = 10;

fn main() {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_kubesync"));
    let tmp = tempfile::tempdir().expect("temp dir");
    let repo = tmp.path();
    generate(repo, true);
    git_init(repo);

    let path_env = helm_path();
    println!(
        "kubesync render benchmark ({} apps, {} objects each)",
        DIR_APPS + JINJA_APPS + HELM_APPS + KUSTOMIZE_APPS,
        OBJECTS_PER_APP
    );
    println!(
        "{:<44} {:>9} {:>10} {:>12} {:>10}",
        "case", "apps", "wall", "objects/s", "peak RSS"
    );
    for (label, root, args) in [
        ("plan (dir+jinja only)", "bootstrap/fast.yaml", vec!["plan"]),
        (
            "render (dir+jinja only)",
            "bootstrap/fast.yaml",
            vec!["render"],
        ),
        (
            "plan (full: +20 helm, +20 kustomize)",
            "bootstrap/root.yaml",
            vec!["plan"],
        ),
        (
            "render (full: +20 helm, +20 kustomize)",
            "bootstrap/root.yaml",
            vec!["render"],
        ),
    ] {
        let apps = if root.contains("fast") {
            DIR_APPS + JINJA_APPS
        } else {
            DIR_APPS + JINJA_APPS + HELM_APPS + KUSTOMIZE_APPS
        };
        let objects = apps * OBJECTS_PER_APP;
        let mut best: Option<(Duration, u64)> = None;
        let runs = if root.contains("fast") { 5 } else { 1 };
        for _ in 0..runs {
            let (wall, rss_kb, ok) = run(&bin, repo, root, &args, &path_env);
            assert!(ok, "{label}: kubesync failed");
            best = Some(match best {
                Some((w, r)) if w <= wall => (w, r.max(rss_kb)),
                Some((_, r)) => (wall, r.max(rss_kb)),
                None => (wall, rss_kb),
            });
        }
        let (wall, rss_kb) = best.expect("at least one run");
        println!(
            "{:<44} {:>9} {:>9.3}s {:>12.0} {:>7.1} MB",
            label,
            apps,
            wall.as_secs_f64(),
            objects as f64 / wall.as_secs_f64(),
            rss_kb as f64 / 1024.0
        );
    }
}

/// Runs kubesync with `args` and returns (wall time, peak RSS in KiB, success).
fn run(
    bin: &Path,
    repo: &Path,
    root: &str,
    args: &[&str],
    path_env: &str,
) -> (Duration, u64, bool) {
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .arg("--root")
        .arg(root)
        .current_dir(repo)
        .env("PATH", path_env)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    let m = common::measure(cmd);
    (m.wall, m.peak_rss_kb, m.success)
}

/// PATH with the project's helm wrapper when no real helm is installed.
fn helm_path() -> String {
    let path = std::env::var("PATH").unwrap_or_default();
    let has_helm = std::env::split_paths(&path).any(|d| d.join("helm").is_file());
    if has_helm {
        path
    } else {
        let wrapper = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/helm");
        format!("{}:{path}", wrapper.display())
    }
}

fn git_init(repo: &Path) {
    for args in [
        vec!["init", "-q", "-b", "main"],
        vec!["add", "-A"],
        vec![
            "-c",
            "user.name=bench",
            "-c",
            "user.email=bench@example.com",
            "commit",
            "-qm",
            "generated",
        ],
    ] {
        let s = Command::new("git")
            .args(&args)
            .current_dir(repo)
            .status()
            .expect("git");
        assert!(s.success(), "git {args:?}");
    }
}

fn write(path: &Path, text: &str) {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p).expect("mkdir");
    }
    std::fs::write(path, text).expect("write");
}

/// Writes the generated repository: bootstrap/root.yaml (all apps) and
/// bootstrap/fast.yaml (directory and jinja apps only).
fn generate(repo: &Path, _with_tools: bool) {
    let mut all = Vec::new();
    for i in 0..DIR_APPS {
        all.push((format!("dir-{i:03}"), "directory"));
    }
    for i in 0..JINJA_APPS {
        all.push((format!("jinja-{i:03}"), "jinja"));
    }
    for i in 0..HELM_APPS {
        all.push((format!("helm-{i:03}"), "helm"));
    }
    for i in 0..KUSTOMIZE_APPS {
        all.push((format!("kust-{i:03}"), "kustomize"));
    }
    for (k, (name, kind)) in all.iter().enumerate() {
        // Depend on an app 7 places back of the same family: a graph a few levels deep.
        let dep = if k >= 7 && k % 3 == 0 {
            Some(all[k - 7].0.clone())
        } else {
            None
        };
        let same_family = dep
            .as_ref()
            .map(|d| d.split('-').next() == name.split('-').next())
            .unwrap_or(false);
        let dep = dep.filter(|_| same_family);
        let dir = format!("apps/{name}");
        let source = match *kind {
            "helm" => "    helm: {values: {replicaCount: 2}}\n".to_string(),
            "jinja" => "    jinja: {vars: {replicas: 3, env: bench}}\n".to_string(),
            _ => String::new(),
        };
        let deps = dep
            .map(|d| format!("  dependsOn: [{d}]\n"))
            .unwrap_or_default();
        let family = if *kind == "directory" || *kind == "jinja" {
            "fast"
        } else {
            "slow"
        };
        write(
            &repo.join(format!("children/{family}/{name}.yaml")),
            &format!(
                "apiVersion: kubesync.dev/v1alpha1\nkind: Application\nmetadata:\n  name: {name}\nspec:\n  tier: app\n  source:\n    path: {dir}\n{source}  destination:\n    namespace: {name}\n{deps}  syncPolicy:\n    createNamespace: true\n"
            ),
        );
        match *kind {
            "directory" => write_directory_app(&repo.join(&dir), name),
            "jinja" => write_jinja_app(&repo.join(&dir)),
            "helm" => write_chart(&repo.join(&dir), name),
            _ => write_kustomize_app(&repo.join(&dir), name),
        }
    }
    let root = |name: &str, recurse: bool, path: &str| {
        format!(
            "apiVersion: kubesync.dev/v1alpha1\nkind: Application\nmetadata:\n  name: {name}\nspec:\n  tier: system\n  source:\n    path: {path}\n    directory: {{recurse: {recurse}}}\n"
        )
    };
    write(
        &repo.join("bootstrap/root.yaml"),
        &root("root", true, "children"),
    );
    write(
        &repo.join("bootstrap/fast.yaml"),
        &root("root", false, "children/fast"),
    );
}

fn deployment(name: &str, i: usize) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}-{i}\n  labels: {{app: {name}}}\nspec:\n  replicas: 2\n  selector:\n    matchLabels: {{app: {name}-{i}}}\n  template:\n    metadata:\n      labels: {{app: {name}-{i}}}\n    spec:\n      containers:\n        - name: app\n          image: nginx:1.27-alpine\n          ports: [{{containerPort: 80}}]\n          resources: {{requests: {{cpu: 10m, memory: 16Mi}}}}\n"
    )
}

fn write_directory_app(dir: &Path, name: &str) {
    let mut a = String::new();
    for i in 0..OBJECTS_PER_APP / 2 {
        let _ = write!(a, "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}-cfg-{i}\ndata:\n  key: value-{i}\n  other: \"{i}\"\n");
    }
    write(&dir.join("configmaps.yaml"), &a);
    let mut b = String::new();
    for i in 0..OBJECTS_PER_APP / 2 {
        let _ = write!(b, "---\n{}", deployment(name, i));
    }
    write(&dir.join("deployments.yaml"), &b);
}

fn write_jinja_app(dir: &Path) {
    let t = format!(
        "{{% for i in range({half}) %}}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{{{ app.name }}}}-cfg-{{{{ i }}}}\ndata:\n  env: {{{{ env }}}}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{{{ app.name }}}}-{{{{ i }}}}\nspec:\n  replicas: {{{{ replicas }}}}\n  selector:\n    matchLabels: {{app: \"{{{{ app.name }}}}-{{{{ i }}}}\"}}\n  template:\n    metadata:\n      labels: {{app: \"{{{{ app.name }}}}-{{{{ i }}}}\"}}\n    spec:\n      containers:\n        - name: app\n          image: nginx:1.27-alpine\n{{% endfor %}}\n",
        half = OBJECTS_PER_APP / 2
    );
    write(&dir.join("objects.yaml.j2"), &t);
}

fn write_chart(dir: &Path, name: &str) {
    write(
        &dir.join("Chart.yaml"),
        &format!("apiVersion: v2\nname: {name}\nversion: 0.1.0\n"),
    );
    write(&dir.join("values.yaml"), "replicaCount: 1\n");
    let mut t = String::new();
    for i in 0..OBJECTS_PER_APP {
        let _ = write!(t, "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{{{ .Release.Name }}}}-{i}\ndata:\n  replicas: \"{{{{ .Values.replicaCount }}}}\"\n");
    }
    write(&dir.join("templates/objects.yaml"), &t);
}

fn write_kustomize_app(dir: &Path, name: &str) {
    let mut res = String::new();
    for i in 0..OBJECTS_PER_APP {
        let _ = write!(
            res,
            "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}-{i}\ndata:\n  k: v\n"
        );
    }
    write(&dir.join("resources.yaml"), &res);
    write(
        &dir.join("kustomization.yaml"),
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [resources.yaml]\nlabels: [{pairs: {bench: \"true\"}}]\n",
    );
}
