//! The jsonnet time limit, through the CLI (where each file is evaluated in
//! a child process that is killed at the limit): a program that runs for
//! ever fails its app with an error naming the file and the limit, the rest
//! of the tree syncs, and the run ends promptly; ordinary jsonnet errors
//! come back from the child with the same text (file and line).

mod sync_support;

use std::process::Command;
use std::time::{Duration, Instant};

use sync_support::*;

/// Runs `kubesync ARGS` against `url` with the jsonnet time limit `limit`.
fn kubesync_limited(repo: &Repo, url: &str, limit: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_kubesync"))
        .args(args)
        .arg("--root")
        .arg(repo.root())
        .arg("--server")
        .arg(url)
        .env("KUBESYNC_JSONNET_TIMEOUT", limit)
        .env_remove("KUBESYNC_JSONNET_EVALUATOR")
        .env_remove("KUBECONFIG")
        .current_dir(repo.path())
        .output()
        .expect("run kubesync")
}

fn argo_app(name: &str, ns: &str) -> String {
    format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {{name: {name}}}\nspec:\n  project: default\n  source: {{path: objects/{name}}}\n  destination: {{namespace: {ns}}}\n  syncPolicy: {{syncOptions: [CreateNamespace=true]}}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jsonnet_program_that_never_ends_fails_its_app_at_the_limit() {
    let emu = emulator(fast_simulation()).await;
    let repo = Repo::new();
    repo.write("apps/forever.yaml", &argo_app("forever", "forever"));
    // 2^64 calls, 64 frames deep: far below the stack limit, never done.
    repo.write(
        "objects/forever/main.jsonnet",
        "local f(n) = if n == 0 then 0 else f(n - 1) + f(n - 1);\n{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'never' }, data: { n: std.toString(f(64)) } }\n",
    );
    repo.write("apps/fine.yaml", &argo_app("fine", "fine"));
    repo.write(
        "objects/fine/main.jsonnet",
        "{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'quick' }, data: { n: std.toString(6 * 7) } }\n",
    );
    let url = emu.url();
    let start = Instant::now();
    let out = tokio::task::spawn_blocking({
        let url = url.clone();
        move || {
            let o = kubesync_limited(&repo, &url, "2s", &["bootstrap"]);
            (o, repo)
        }
    })
    .await
    .expect("join");
    let (out, _repo) = out;
    let elapsed = start.elapsed();
    assert!(!out.status.success(), "{}", text(&out));
    let all = text(&out);
    assert!(
        all.lines().any(|l| l.starts_with("forever") && l.contains("Failed"))
            && all.contains("objects/forever/main.jsonnet: jsonnet: the evaluation")
            && all.contains("did not finish within 2s (the jsonnet time limit; KUBESYNC_JSONNET_TIMEOUT sets it) and was stopped"),
        "{all}"
    );
    // The limit, not a hang: well under the default 90 s limit.
    assert!(elapsed < Duration::from_secs(60), "took {elapsed:?}\n{all}");
    // The other app rendered through its own child and synced.
    let quick = get(&emu, "/api/v1/namespaces/fine/configmaps/quick")
        .await
        .expect("quick ConfigMap");
    assert_eq!(quick["data"]["n"], "42");
    assert!(get(&emu, "/api/v1/namespaces/forever/configmaps/never")
        .await
        .is_none());
}

/// Each error as the CLI prints it (evaluated in a child) and as the
/// library gives it (evaluated in this process): the same text.
#[test]
fn errors_come_back_from_the_evaluator_with_the_same_text() {
    let repo = Repo::new();
    let cases: [(&str, &str, &str, &str); 3] = [
        (
            "in-lib",
            "",
            "local lib = import 'lib.libsonnet';\n{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'x' }, data: { v: lib.value } }\n",
            "(at objects/in-lib/lib.libsonnet:2:10): jsonnet: no value here",
        ),
        (
            "absolute",
            "",
            "import '/etc/passwd'\n",
            "absolute import paths are not allowed",
        ),
        (
            "bad-libs",
            "\n    directory: {jsonnet: {libs: [does-not-exist]}}",
            "{}\n",
            "directory.jsonnet.libs[0]",
        ),
    ];
    for (name, source_extra, main, _) in &cases {
        repo.write(
            &format!("apps/{name}.yaml"),
            &format!(
                "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {{name: {name}}}\nspec:\n  project: default\n  source:\n    path: objects/{name}{source_extra}\n  destination: {{namespace: x}}\n"
            ),
        );
        repo.write(
            &format!("objects/{name}/lib.libsonnet"),
            "{\n  value: error 'no value here',\n}\n",
        );
        repo.write(&format!("objects/{name}/main.jsonnet"), main);
    }
    let tree = tree_of(&repo.root());
    for (name, _, _, expect) in &cases {
        let out = Command::new(env!("CARGO_BIN_EXE_kubesync"))
            .args(["render", name, "--root"])
            .arg(repo.root())
            .env_remove("KUBESYNC_JSONNET_EVALUATOR")
            .current_dir(repo.path())
            .output()
            .expect("run kubesync");
        assert!(!out.status.success(), "{name}: {}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        let first = stderr.lines().next().unwrap_or("");
        assert!(first.contains(expect), "{name}: {}", text(&out));
        let node = tree
            .get(&kubesync::model::AppName::new(*name).expect("name"))
            .expect("node");
        let in_process = &node.failure().expect("failed").message;
        assert_eq!(
            first,
            format!("error: application \"{name}\": {in_process}"),
            "{name}"
        );
    }
}
