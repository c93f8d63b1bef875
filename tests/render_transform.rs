//! The transform renderer end to end: INDIR/OUTDIR, the environment, no
//! shell, the execute bit, failures and timeouts.

mod render_support;

use std::time::{Duration, Instant};

use kubesync::render::{RenderError, Renderer, RendererKind};
use render_support::{app_with, names, origins, render, Repo};

const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

#[test]
fn reads_indir_writes_outdir() {
    let repo = Repo::new();
    repo.write(
        "apps/gen/in/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: copied\n",
    )
    .script(
        "apps/gen/transform.sh",
        r#"#!/bin/sh
set -eu
[ "$1" = "-o" ] && [ "$2" = "$OUTDIR" ] && [ "$3" = "-i" ] && [ "$4" = "$INDIR" ]
[ "$(pwd)" = "$INDIR" ]
[ -z "$(ls -A "$OUTDIR")" ]
cp "$INDIR/in/cm.yaml" "$OUTDIR/a.yaml"
mkdir "$OUTDIR/nested"
cat > "$OUTDIR/nested/env.yaml" <<YAML
apiVersion: v1
kind: ConfigMap
metadata:
  name: env
data:
  app: "$KUBESYNC_APP"
  namespace: "$KUBESYNC_NAMESPACE"
  revision: "$KUBESYNC_REVISION"
  leaked: "${CARGO_MANIFEST_DIR:-unset}"
  extra: "${EXTRA:-unset}"
  stdin: "$(cat || true)"
YAML
"#,
    );
    let app = app_with(
        "gen",
        Some("shop"),
        "{path: apps/gen, transform: {command: [./transform.sh, -o, $OUTDIR, -i, '${INDIR}']}}",
    );
    let renderer = Renderer::new().with_transform_env("EXTRA", "yes");
    let r = render(&renderer, &repo, &app, Some(SHA)).unwrap();
    assert_eq!(r.renderer, RendererKind::Transform);
    assert_eq!(names(&r), vec!["ConfigMap/copied", "ConfigMap/env"]);
    assert_eq!(
        origins(&r),
        vec!["transform:a.yaml", "transform:nested/env.yaml"]
    );
    let data = &r.manifests[1].object["data"];
    assert_eq!(data["app"], "gen");
    assert_eq!(data["namespace"], "shop");
    assert_eq!(data["revision"], SHA);
    assert_eq!(data["stdin"], "");
    // Only allow-listed and explicitly configured variables reach the command.
    assert!(std::env::var_os("CARGO_MANIFEST_DIR").is_some());
    assert_eq!(data["leaked"], "unset");
    assert_eq!(data["extra"], "yes");
}

#[test]
fn no_shell_expansion_of_arguments() {
    let repo = Repo::new();
    repo.script(
        "apps/gen/args.sh",
        "#!/bin/sh\nprintf 'apiVersion: v1\\nkind: ConfigMap\\nmetadata:\\n  name: args\\ndata:\\n  a: \"%s\"\\n  b: \"%s\"\\n  n: \"%s\"\\n' \"$1\" \"$2\" \"$#\" > \"$OUTDIR/args.yaml\"\n",
    );
    let app = app_with(
        "gen",
        None,
        "{path: apps/gen, transform: {command: [./args.sh, '$HOME', '*; echo hi']}}",
    );
    let r = render(&Renderer::new(), &repo, &app, None).unwrap();
    let data = &r.manifests[0].object["data"];
    assert_eq!(data["a"], "$HOME");
    assert_eq!(data["b"], "*; echo hi");
    assert_eq!(data["n"], "2");
}

#[test]
fn a_program_on_path_prints_nothing_to_outdir() {
    let repo = Repo::new();
    repo.mkdir("apps/gen");
    let app = app_with(
        "gen",
        None,
        "{path: apps/gen, transform: {command: [echo, '$HOME']}}",
    );
    let r = render(&Renderer::new(), &repo, &app, None).unwrap();
    assert!(r.manifests.is_empty());
    assert_eq!(
        r.warnings,
        vec![
            "transform command `echo $HOME` wrote no .yaml, .yml or .json files to $OUTDIR but printed 6 bytes on stdout; kubesync reads only $OUTDIR",
            "apps/gen rendered no objects (transform renderer)",
        ]
    );
}

#[test]
fn missing_execute_bit_is_reported() {
    let repo = Repo::new();
    repo.write("apps/gen/transform.sh", "#!/bin/sh\nexit 0\n");
    let app = app_with(
        "gen",
        None,
        "{path: apps/gen, transform: {command: [./transform.sh]}}",
    );
    let e = render(&Renderer::new(), &repo, &app, None).unwrap_err();
    assert_eq!(
        e.to_string(),
        "application \"gen\": transform program apps/gen/transform.sh is not executable (chmod +x it and commit the mode)"
    );
}

#[test]
fn missing_program_is_reported() {
    let repo = Repo::new();
    repo.mkdir("apps/gen");
    let local = app_with(
        "gen",
        None,
        "{path: apps/gen, transform: {command: [./nope.sh]}}",
    );
    let e = render(&Renderer::new(), &repo, &local, None).unwrap_err();
    assert_eq!(
        e.to_string(),
        "application \"gen\": ./nope.sh not found: apps/gen/nope.sh does not exist in the repository"
    );
    let on_path = app_with(
        "gen",
        None,
        "{path: apps/gen, transform: {command: [kubesync-no-such-tool]}}",
    );
    let e = render(&Renderer::new(), &repo, &on_path, None).unwrap_err();
    assert!(matches!(e, RenderError::MissingBinary { .. }), "{e:?}");
}

#[test]
fn program_outside_the_repository_is_refused() {
    let repo = Repo::new();
    repo.mkdir("apps/gen");
    let app = app_with(
        "gen",
        None,
        "{path: apps/gen, transform: {command: [../../../bin/sh]}}",
    );
    let e = render(&Renderer::new(), &repo, &app, None).unwrap_err();
    assert!(matches!(e, RenderError::PathEscapes { .. }), "{e:?}");
}

#[test]
fn non_zero_exit_carries_status_and_stderr_tail() {
    let repo = Repo::new();
    repo.script(
        "apps/gen/fail.sh",
        "#!/bin/sh\nfor i in $(seq 1 30); do echo \"line $i\" >&2; done\nexit 3\n",
    );
    let app = app_with(
        "gen",
        None,
        "{path: apps/gen, transform: {command: [./fail.sh, x]}}",
    );
    let e = render(&Renderer::new(), &repo, &app, None).unwrap_err();
    let RenderError::Transform { status, stderr, .. } = &e else {
        panic!("{e:?}")
    };
    assert_eq!(status, "exit status 3");
    assert!(
        stderr.starts_with("[… 10 earlier lines]\nline 11\n"),
        "{stderr}"
    );
    assert!(stderr.ends_with("line 30"), "{stderr}");
    assert!(
        e.to_string()
            .starts_with("application \"gen\": transform command `./fail.sh x` failed (exit status 3): [… 10 earlier lines]"),
        "{e}"
    );
}

#[test]
fn timeout_kills_the_command_and_its_children() {
    let repo = Repo::new();
    let marker = tempfile::tempdir().unwrap();
    let survivor = marker.path().join("survived");
    repo.script(
        "apps/gen/slow.sh",
        "#!/bin/sh\n(sleep 3; touch \"$1\") &\nsleep 60\n",
    );
    let app = app_with(
        "gen",
        None,
        &format!(
            "{{path: apps/gen, transform: {{command: [./slow.sh, '{}'], timeout: 500ms}}}}",
            survivor.display()
        ),
    );
    let start = Instant::now();
    let e = render(&Renderer::new(), &repo, &app, None).unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    assert!(matches!(e, RenderError::Timeout { .. }), "{e:?}");
    assert!(
        e.to_string()
            .starts_with("application \"gen\": `./slow.sh ")
            && e.to_string()
                .ends_with("` did not finish within 500ms and was killed"),
        "{e}"
    );
    // The background child would have touched the marker after 3s.
    std::thread::sleep(Duration::from_millis(3500));
    assert!(
        !survivor.exists(),
        "the transform's child outlived the timeout"
    );
}

#[test]
fn output_symlinks_may_not_escape() {
    let repo = Repo::new();
    repo.script(
        "apps/gen/link.sh",
        "#!/bin/sh\nln -s /etc/hostname \"$OUTDIR/x.yaml\"\n",
    );
    let app = app_with(
        "gen",
        None,
        "{path: apps/gen, transform: {command: [./link.sh]}}",
    );
    let e = render(&Renderer::new(), &repo, &app, None).unwrap_err();
    assert_eq!(
        e.to_string(),
        "application \"gen\": transform:x.yaml leads outside the repository (symlinks and \"..\" must stay inside it)"
    );
}

#[test]
fn invalid_output_names_the_outdir_file() {
    let repo = Repo::new();
    repo.script(
        "apps/gen/bad.sh",
        "#!/bin/sh\nprintf 'a: [1\\n' > \"$OUTDIR/bad.yaml\"\n",
    );
    let app = app_with(
        "gen",
        None,
        "{path: apps/gen, transform: {command: [./bad.sh]}}",
    );
    let e = render(&Renderer::new(), &repo, &app, None).unwrap_err();
    assert!(
        e.to_string().starts_with(
            "application \"gen\": transform:bad.yaml: document 1: invalid YAML at line"
        ),
        "{e}"
    );
}
