//! Hostile inputs to the model and the CLI, through the real binary: each
//! case asserts the exit code and the part of the message users see (file,
//! app and field named). Offline commands need no cluster; the cluster
//! commands run against an in-process emulator whose write count shows that
//! a configuration error stops them before anything is written.

mod sync_support;

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use sync_support::{
    configmap, emulator, fast_simulation, get, path_with_helm, run, text, writes, Repo,
};

/// `kubesync ARGS` in `dir` (no cluster configured).
fn kubesync(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kubesync"))
        .args(args)
        .current_dir(dir)
        .env_remove("KUBECONFIG")
        .env("HOME", dir)
        .env("PATH", path_with_helm())
        .output()
        .expect("run kubesync")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// Asserts the exit code and that stderr contains `want`.
fn expect(o: &Output, code: i32, want: &str) {
    assert_eq!(o.status.code(), Some(code), "{}", text(o));
    assert!(stderr(o).contains(want), "missing {want:?} in\n{}", text(o));
}

fn write_app(repo: &Repo, name: &str, spec: &str) {
    repo.write(
        &format!("apps/{name}.yaml"),
        &format!("apiVersion: kubesync.dev/v1alpha1\nkind: Application\nmetadata: {{name: {name}}}\nspec:\n{spec}"),
    );
}

// ----- item 8: durations ---------------------------------------------------

#[test]
fn huge_negative_or_malformed_durations_are_configuration_errors_not_panics() {
    const HUGE: &str = "99999999999999999999h";
    let repo = Repo::new();
    write_app(
        &repo,
        "x",
        &format!("  source: {{path: objects/x}}\n  syncPolicy: {{wait: {{timeout: {HUGE}}}}}\n"),
    );
    repo.write("objects/x/cm.yaml", &configmap("x", "a: b"));
    for cmd in ["tree", "plan", "render"] {
        let out = kubesync(repo.path(), &["--root", "root.yaml", cmd]);
        expect(
            &out,
            2,
            &format!("application \"x\": apps/x.yaml: spec.syncPolicy.wait.timeout: duration \"{HUGE}\" is too large (at most 24h)"),
        );
        assert!(!stderr(&out).contains("panicked"), "{}", text(&out));
    }

    write_app(
        &repo,
        "x",
        "  source:\n    path: objects/x\n    transform: {command: [./t.sh], timeout: 25h}\n",
    );
    let out = kubesync(repo.path(), &["--root", "root.yaml", "tree"]);
    expect(
        &out,
        2,
        "application \"x\": apps/x.yaml: spec.source.transform.timeout: duration \"25h\" is too large (at most 24h)",
    );

    write_app(
        &repo,
        "x",
        "  source: {path: objects/x}\n  syncPolicy: {wait: {timeout: -5m}}\n",
    );
    let out = kubesync(repo.path(), &["--root", "root.yaml", "plan"]);
    expect(
        &out,
        2,
        "spec.syncPolicy.wait.timeout: duration \"-5m\" is negative",
    );

    // The command line: a clap error, exit 2, before anything is loaded.
    write_app(&repo, "x", "  source: {path: objects/x}\n");
    let out = kubesync(
        repo.path(),
        &[
            "--root",
            "root.yaml",
            "bootstrap",
            "--emulator",
            "--timeout",
            HUGE,
        ],
    );
    expect(
        &out,
        2,
        &format!("invalid value '{HUGE}' for '--timeout <DURATION>': duration \"{HUGE}\" is too large (at most 24h)"),
    );
    let out = kubesync(
        repo.path(),
        &[
            "--root",
            "root.yaml",
            "sync",
            "x",
            "--emulator",
            "--timeout=NaNs",
        ],
    );
    expect(
        &out,
        2,
        "invalid value 'NaNs' for '--timeout <DURATION>': \"NaNs\" is not a duration like 30s, 5m or 1h30m",
    );
}

// ----- item 16: exit codes -------------------------------------------------

/// Trees with a configuration error, the message naming it.
fn misconfigured_trees() -> Vec<(&'static str, Repo, &'static str)> {
    let dup = Repo::new();
    write_app(&dup, "web", "  source: {path: objects/a}\n");
    dup.write(
        "apps/zz-web.yaml",
        "apiVersion: kubesync.dev/v1alpha1\nkind: Application\nmetadata: {name: web}\nspec: {source: {path: objects/a}}\n",
    );

    let selfdep = Repo::new();
    write_app(
        &selfdep,
        "web",
        "  source: {path: objects/a}\n  dependsOn: [web]\n",
    );

    let badpath = Repo::new();
    write_app(&badpath, "web", "  source: {path: ../outside}\n");

    let mut out = vec![
        (
            "duplicate name",
            dup,
            "renders application \"web\" (apps/zz-web.yaml (rendered by \"root\")), but that name is already defined at apps/web.yaml",
        ),
        (
            "self-dependency",
            selfdep,
            "application \"web\": apps/web.yaml: spec.dependsOn: \"web\" depends on itself",
        ),
        (
            "invalid path",
            badpath,
            "application \"web\": apps/web.yaml: spec.source.path: \"../outside\" contains \"..\"",
        ),
    ];
    for (_, repo, _) in &mut out {
        repo.write("objects/a/cm.yaml", &configmap("a", "x: y"));
        write_app(repo, "good", "  source: {path: objects/a}\n");
    }
    out
}

#[test]
fn configuration_errors_exit_2_in_every_offline_command() {
    for (what, repo, want) in misconfigured_trees() {
        for cmd in [&["tree"][..], &["plan"], &["render"], &["render", "good"]] {
            let mut args = vec!["--root", "root.yaml"];
            args.extend_from_slice(cmd);
            let out = kubesync(repo.path(), &args);
            expect(&out, 2, want);
            if cmd[0] == "render" {
                assert!(out.stdout.is_empty(), "{what}: {}", text(&out));
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_errors_exit_2_in_cluster_commands_and_fail_only_their_app() {
    for (what, repo, want) in misconfigured_trees() {
        let emu = emulator(fast_simulation()).await;
        let url = emu.url();
        for cmd in [&["bootstrap"][..], &["sync", "good"], &["diff"]] {
            let out = run(&repo.root(), &url, cmd).await;
            expect(&out, 2, want);
        }
        // The misconfigured app wrote nothing; an unrelated app synced —
        // unless the error is its parent's (a duplicate name fails the app
        // that renders both, so everything under it is Blocked).
        let good = get(&emu, "/api/v1/namespaces/default/configmaps/a").await;
        assert_eq!(good.is_some(), what != "duplicate name", "{what}");
    }

    // A cycle cannot be ordered: nothing is contacted at all.
    let cycle = Repo::new();
    write_app(
        &cycle,
        "a",
        "  source: {path: objects/a}\n  dependsOn: [b]\n",
    );
    write_app(
        &cycle,
        "b",
        "  source: {path: objects/a}\n  dependsOn: [a]\n",
    );
    cycle.write("objects/a/cm.yaml", &configmap("a", "x: y"));
    let emu = emulator(fast_simulation()).await;
    let url = emu.url();
    for cmd in [&["bootstrap"][..], &["sync", "a"], &["diff"]] {
        let out = run(&cycle.root(), &url, cmd).await;
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        assert!(stderr(&out).contains("cycle"), "{}", text(&out));
        assert_eq!(writes(&emu), 0, "{cmd:?} wrote to the cluster");
    }

    // An app whose own render fails is that app's failure: exit 1, and the
    // rest of the tree is synced.
    let repo = Repo::new();
    let spec = |dir: &str| {
        format!("  tier: system\n  source: {{path: objects/{dir}}}\n  destination: {{namespace: default}}\n")
    };
    write_app(&repo, "good", &spec("a"));
    repo.write("objects/a/cm.yaml", &configmap("a", "x: y"));
    write_app(&repo, "broken", &spec("b"));
    repo.write(
        "objects/b/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x\n",
    );
    let out = run(&repo.root(), &url, &["bootstrap"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let table = stdout(&out);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("good ") && l.contains("Succeeded")),
        "{table}"
    );
    assert!(writes(&emu) > 0);
}

// ----- item 17: messages that say what is wrong ---------------------------

#[test]
fn wrong_types_name_the_field_and_the_type_found() {
    let cases: [(&str, &str, i32, &str); 6] = [
        (
            "objects/a/cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: 12345}\n",
            1,
            "error: application \"a\": objects/a/cm.yaml: document 1: metadata.name must be a string, found a number",
        ),
        (
            "objects/a/cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [a, b]\n",
            1,
            "objects/a/cm.yaml: document 1: metadata.name must be a string, found a sequence",
        ),
        (
            "objects/a/cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: 42}\n",
            1,
            "objects/a/cm.yaml: document 1: metadata.namespace must be a string, found a number",
        ),
        (
            "objects/a/cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, labels: 5}\n",
            1,
            "objects/a/cm.yaml: document 1: metadata.labels must be a mapping of strings, found a number",
        ),
        (
            "objects/a/cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata:\n  k: !custom foo\n",
            1,
            "objects/a/cm.yaml: document 1: YAML tag !custom at line 5 (data.k) is not supported",
        ),
        (
            "apps/argo.yaml",
            "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: argo}\nspec: [1, 2]\n",
            2,
            "application \"argo\": apps/argo.yaml: spec: must be a mapping, found a sequence",
        ),
    ];
    for (file, content, code, want) in cases {
        let repo = Repo::new();
        write_app(&repo, "a", "  source: {path: objects/a}\n");
        repo.write("objects/a/cm.yaml", &configmap("a", "x: y"));
        repo.write(file, content);
        let out = kubesync(repo.path(), &["--root", "root.yaml", "tree"]);
        expect(&out, code, want);
    }

    // The same rules for an Application's own metadata.
    let repo = Repo::new();
    repo.write(
        "apps/b.yaml",
        "apiVersion: kubesync.dev/v1alpha1\nkind: Application\nmetadata: {name: b, namespace: 42}\nspec: {source: {path: objects/a}}\n",
    );
    let out = kubesync(repo.path(), &["--root", "root.yaml", "tree"]);
    expect(
        &out,
        2,
        "application \"b\": apps/b.yaml: metadata.namespace: must be a string, found a number",
    );
    let repo = Repo::new();
    repo.write(
        "root.yaml",
        "apiVersion: kubesync.dev/v1alpha1\nkind: Application\nmetadata: {name: 12345}\nspec: {source: {path: .}}\n",
    );
    let out = kubesync(repo.path(), &["--root", "root.yaml", "plan"]);
    expect(
        &out,
        2,
        "root.yaml: metadata.name: must be a string, found a number",
    );
}

#[test]
fn an_absolute_value_file_is_refused_as_absolute() {
    let repo = Repo::new();
    let outside = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(outside.path(), "a: 1\n").expect("write");
    let abs = outside.path().display().to_string();
    write_app(
        &repo,
        "c",
        &format!("  source: {{path: charts/c, helm: {{valueFiles: [\"{abs}\"]}}}}\n"),
    );
    repo.write(
        "charts/c/Chart.yaml",
        "apiVersion: v2\nname: c\nversion: 0.1.0\n",
    );
    repo.write(
        "charts/c/templates/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n",
    );
    let out = kubesync(repo.path(), &["--root", "root.yaml", "tree"]);
    expect(
        &out,
        1,
        &format!("error: application \"c\": value file {abs} of chart charts/c: absolute paths are not allowed; value files are relative to the chart directory, or to the repository root with a leading \"/\""),
    );
    assert!(!stderr(&out).contains("not found"), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_app_is_never_reported_healthy() {
    let emu = emulator(fast_simulation()).await;
    let repo = Repo::new();
    // One object applies (and is healthy), one is refused by the server.
    write_app(
        &repo,
        "w",
        "  tier: system\n  source: {path: objects/w}\n  destination: {namespace: default}\n",
    );
    repo.write("objects/w/ok.yaml", &configmap("ok", "a: b"));
    repo.write(
        "objects/w/bad.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bad, namespace: nope}\n",
    );
    // Nothing applies at all.
    write_app(
        &repo,
        "v",
        "  tier: system\n  source: {path: objects/v}\n  destination: {namespace: default}\n",
    );
    repo.write(
        "objects/v/bad.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bad2, namespace: nope}\n",
    );
    let out = run(
        &repo.root(),
        &emu.url(),
        &["bootstrap", "-o", "json", "--timeout", "10s"],
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).expect("json report");
    for name in ["w", "v"] {
        let app = report["apps"]
            .as_array()
            .and_then(|a| a.iter().find(|a| a["name"] == name))
            .unwrap_or_else(|| panic!("{name} in {report}"));
        assert_eq!(app["outcome"]["kind"], "failed", "{app}");
        assert_eq!(app["health"]["status"], "Missing", "{app}");
        assert!(
            app["health"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("ConfigMap nope/bad")),
            "{app}"
        );
        // The Application status `kubesync status` reads says the same.
        let path =
            format!("/apis/kubesync.dev/v1alpha1/namespaces/kubesync-system/applications/{name}");
        let live = get(&emu, &path).await.expect("Application object");
        assert_eq!(live["status"]["health"]["status"], "Missing", "{live}");
    }
}

// ----- item 18: relative paths outside git ---------------------------------

#[test]
fn relative_paths_resolve_against_the_root_manifests_directory_outside_git() {
    let top = tempfile::tempdir().expect("temp dir");
    let write = |rel: &str, text: &str| {
        let p = top.path().join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    };
    let root = "apiVersion: kubesync.dev/v1alpha1\nkind: Application\nmetadata: {name: root}\nspec: {tier: system, source: {path: apps}}\n";
    let app = |name: &str| {
        format!("apiVersion: kubesync.dev/v1alpha1\nkind: Application\nmetadata: {{name: {name}}}\nspec: {{source: {{path: objects}}}}\n")
    };
    write("other/dir/root.yaml", root);
    write("other/dir/apps/real.yaml", &app("real"));
    write("other/dir/objects/cm.yaml", &configmap("real", "a: b"));
    // A decoy where the current directory would put it.
    write("apps/decoy.yaml", &app("decoy"));
    write("objects/cm.yaml", &configmap("decoy", "a: b"));

    let from_top = kubesync(
        top.path(),
        &["--root", "other/dir/root.yaml", "tree", "-o", "json"],
    );
    let from_elsewhere = kubesync(
        &top.path().join("other"),
        &["--root", "dir/root.yaml", "tree", "-o", "json"],
    );
    for out in [from_top, from_elsewhere] {
        assert!(out.status.success(), "{}", text(&out));
        let tree: Value = serde_json::from_slice(&out.stdout).expect("json");
        let names: Vec<&str> = tree["apps"]
            .as_array()
            .expect("apps")
            .iter()
            .filter_map(|a| a["name"].as_str())
            .collect();
        assert_eq!(names, ["root", "real"], "{}", text(&out));
    }
}

// ----- item 7 (half): render redacts credentials ---------------------------

#[test]
fn render_removes_credentials_from_child_application_repo_urls() {
    let repo = Repo::new();
    repo.write(
        "apps/kube.yaml",
        "apiVersion: kubesync.dev/v1alpha1\nkind: Application\nmetadata: {name: kube}\nspec:\n  source: {repoURL: \"https://user:s3cret@git.example.com/org/repo.git\", path: objects}\n",
    );
    repo.write(
        "apps/argo.yaml",
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: argo}\nspec:\n  project: default\n  sources:\n    - {repoURL: \"https://t0ken@git.example.com/org/repo.git\", path: objects}\n  destination: {namespace: default}\n",
    );
    repo.write("objects/cm.yaml", &configmap("c", "a: b"));
    let base = [
        "--root",
        "root.yaml",
        "--repo-override",
        "https://git.example.com/org/repo.git=.",
        "render",
    ];
    let out = kubesync(repo.path(), &base);
    assert!(out.status.success(), "{}", text(&out));
    let yaml = stdout(&out);
    for secret in ["s3cret", "t0ken", "user@"] {
        assert!(!yaml.contains(secret), "{secret} printed:\n{yaml}");
    }
    assert!(
        yaml.contains("# Source: root: apps/kube.yaml (credentials removed from repoURL)"),
        "{yaml}"
    );
    assert!(
        yaml.contains("repoURL: https://git.example.com/org/repo.git"),
        "{yaml}"
    );

    let mut json_args = base.to_vec();
    json_args.extend(["-o", "json"]);
    let out = kubesync(repo.path(), &json_args);
    assert!(out.status.success(), "{}", text(&out));
    let list: Value = serde_json::from_slice(&out.stdout).expect("json");
    let items = list["items"].as_array().expect("items");
    let kube = items
        .iter()
        .find(|i| i["metadata"]["name"] == "kube")
        .expect("kube");
    assert_eq!(
        kube["spec"]["source"]["repoURL"],
        "https://git.example.com/org/repo.git"
    );
    let argo = items
        .iter()
        .find(|i| i["metadata"]["name"] == "argo")
        .expect("argo");
    assert_eq!(
        argo["spec"]["sources"][0]["repoURL"],
        "https://git.example.com/org/repo.git"
    );
}
