//! How the binary treats its standard streams: a reader that closes stdout
//! early ends the command quietly with exit 0 (`kubesync render | head`), and
//! stderr that is not a terminal gets no colour codes, with each render
//! warning said once.

mod sync_support;

use std::io::Read;
use std::process::{Command, Stdio};

use sync_support::{text, Repo};

/// A tree of `apps` apps, each rendering one ConfigMap of about 1 KiB: far
/// more output than a pipe buffers.
fn big_tree(apps: usize) -> Repo {
    let repo = Repo::new();
    let filler = "x".repeat(1024);
    for i in 0..apps {
        let name = format!("app-{i:03}");
        repo.app(&name, "");
        repo.write(
            &format!("objects/{name}/cm.yaml"),
            &format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata: {{filler: {filler}}}\n"),
        );
    }
    repo
}

/// Runs kubesync with `args`, reads a few bytes of its stdout and closes the
/// pipe; returns the exit code and stderr.
fn run_closing_stdout_early(repo: &Repo, args: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kubesync"))
        .arg("--root")
        .arg(repo.root())
        .args(args)
        .env_remove("KUBECONFIG")
        .env("HOME", repo.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kubesync");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut first = [0u8; 16];
    stdout.read_exact(&mut first).expect("some output");
    drop(stdout);
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("read stderr");
    let status = child.wait().expect("wait");
    (status.code(), stderr)
}

#[test]
fn a_reader_closing_stdout_early_ends_the_command_quietly_with_exit_0() {
    let repo = big_tree(300);
    for args in [
        &["render"][..],
        &["tree", "-o", "json"],
        &["render", "-o", "json"],
    ] {
        let (code, stderr) = run_closing_stdout_early(&repo, args);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(!stderr.contains("Broken pipe"), "{args:?}: {stderr}");
        assert_eq!(code, Some(0), "{args:?}: {stderr}");
    }
}

#[test]
fn logs_are_plain_off_a_terminal_and_each_warning_is_said_once() {
    let repo = Repo::new();
    repo.app("web", "");
    repo.write(
        "objects/web/all.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web}\n---\napiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [a.yaml]\n",
    );
    for command in ["render", "tree", "plan"] {
        for verbosity in [None, Some("-vv")] {
            let out = Command::new(env!("CARGO_BIN_EXE_kubesync"))
                .arg("--root")
                .arg(repo.root())
                .arg(command)
                .args(verbosity)
                .env_remove("RUST_LOG")
                .env_remove("NO_COLOR")
                .env_remove("KUBECONFIG")
                .env("HOME", repo.path())
                .output()
                .expect("run kubesync");
            assert!(out.status.success(), "{}", text(&out));
            let stderr = String::from_utf8_lossy(&out.stderr);
            if verbosity.is_some() {
                assert!(stderr.contains("DEBUG"), "no log lines at -vv: {stderr}");
            }
            assert!(
                !stderr.contains("\x1b["),
                "colour codes off a terminal: {stderr:?}"
            );
            assert_eq!(
                stderr
                    .matches("a kustomize configuration (Kustomization)")
                    .count(),
                1,
                "{command} {verbosity:?}: {stderr}"
            );
            assert!(
                stderr.contains(
                    "warning: application \"web\": objects/web/all.yaml: document 2: skipped"
                ),
                "{stderr}"
            );
        }
    }
}

#[test]
fn the_error_that_ends_a_command_is_printed_once() {
    let repo = Repo::new();
    repo.app("web", "");
    repo.write(
        "objects/web/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web}\n",
    );
    let root = repo.root();
    let root = root.to_str().expect("utf-8 path");
    let missing = repo.path().join("missing.yaml");
    let missing = missing.to_str().expect("utf-8 path");
    for (args, code, message) in [
        (
            vec!["--root", root, "render", "nope"],
            2,
            "error: no application named \"nope\"",
        ),
        (
            vec!["--root", missing, "plan"],
            2,
            "cannot read the root manifest",
        ),
        (
            vec![
                "--root",
                root,
                "sync",
                "nope",
                "--server",
                "http://127.0.0.1:1",
            ],
            2,
            "error: no application named \"nope\"",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_kubesync"))
            .args(&args)
            .env_remove("KUBECONFIG")
            .env("HOME", repo.path())
            .output()
            .expect("run kubesync");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {}", text(&out));
        assert_eq!(stderr.matches(message).count(), 1, "{args:?}: {stderr}");
        assert_eq!(stderr.matches("error:").count(), 1, "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}: {}", text(&out));
    }
}
