//! Jsonnet in directory apps, compared with the reference implementation
//! (PyPI's `jsonnet`, the C++ one, through tests/support/jsonnet_reference.py):
//! a corpus of standard-library calls, imports (relative, nested, library
//! paths, importstr/importbin), ext vars and TLAs (string and code), Argo
//! CD's jsonnet-guestbook examples, and errors (kubesync's must name the
//! file and line the reference names). Confinement and limits are checked
//! on temporary repositories.
//!
//! The reference is required in CI (`.ci/run` installs it); elsewhere the
//! comparisons are skipped, saying why, when it is not installed.

mod render_support;
mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use kubesync::render::{RenderError, Renderer};
use render_support::{app, names, origins, render, Repo};
use serde_json::{json, Value};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jsonnet")
}

/// A repository view of the fixtures directory.
fn fixture_repo() -> Repo {
    let repo = Repo::new();
    support::copy_dir(&fixtures(), repo.root());
    repo
}

/// The options the corpus app uses, as the reference takes them.
struct Vars {
    ext_vars: Value,
    ext_codes: Value,
    tla_vars: Value,
    tla_codes: Value,
    jpath: Vec<&'static str>,
}

fn corpus_vars() -> Vars {
    Vars {
        ext_vars: json!({"env": "prod"}),
        ext_codes: json!({"cfg": "{labels: {team: 'a'}, replicas: 3}"}),
        tla_vars: json!({"name": "web"}),
        tla_codes: json!({"replicas": "1 + 2", "extra": "{from: 'code', list: [1, 2]}"}),
        jpath: vec!["corpus", "vendor"],
    }
}

const CORPUS_APP: &str = r#"
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: corpus}
spec:
  destination: {namespace: corpus}
  source:
    path: corpus
    directory:
      jsonnet:
        extVars:
        - {name: env, value: prod}
        - {name: cfg, value: "{labels: {team: 'a'}, replicas: 3}", code: true}
        tlas:
        - {name: name, value: web}
        - {name: replicas, value: "1 + 2", code: true}
        - {name: extra, value: "{from: 'code', list: [1, 2]}", code: true}
        libs: [vendor]
"#;

/// Whether the reference is there; panics in CI when it is not.
fn reference_available() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import _jsonnet"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        if std::env::var_os("CI").is_some() {
            panic!("the reference jsonnet implementation is not installed (pip install jsonnet); .ci/run installs it");
        }
        eprintln!("skipping the comparison with the reference: python3's jsonnet module is not installed (pip install jsonnet)");
    }
    ok
}

/// Evaluates `file` (relative to `cwd`) with the reference: `Ok(json)` or `Err(message)`.
fn reference(cwd: &Path, file: &str, vars: &Vars) -> Result<Value, String> {
    let request = json!({
        "cwd": cwd, "file": file, "jpath": vars.jpath,
        "ext_vars": vars.ext_vars, "ext_codes": vars.ext_codes,
        "tla_vars": vars.tla_vars, "tla_codes": vars.tla_codes,
    });
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/jsonnet_reference.py");
    let mut child = Command::new("python3")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(request.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "reference failed on {file}");
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    match (answer.get("ok"), answer.get("error")) {
        (Some(v), _) => Ok(v.clone()),
        (_, Some(Value::String(e))) => Err(e.clone()),
        _ => panic!("unexpected reference answer {answer}"),
    }
}

/// The objects a jsonnet output stands for, as Argo CD reads them: arrays
/// (nested too) flattened, nulls skipped, Lists expanded.
fn objects_of(value: Value) -> Vec<Value> {
    let mut out = Vec::new();
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        match v {
            Value::Array(items) => stack.extend(items.into_iter().rev()),
            Value::Null => {}
            Value::Object(ref m)
                if m.get("kind")
                    .and_then(Value::as_str)
                    .is_some_and(|k| k.ends_with("List")) =>
            {
                if let Some(Value::Array(items)) = m.get("items") {
                    stack.extend(items.clone().into_iter().rev());
                }
            }
            other => out.push(other),
        }
    }
    out
}

/// JSON equality with numbers compared as numbers (Python reads the
/// reference's `-0` as the integer 0).
fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same_json(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

fn rendered_objects(r: &kubesync::render::Rendered) -> Vec<Value> {
    r.manifests.iter().map(|m| m.object.clone()).collect()
}

#[test]
fn corpus_renders_like_the_reference() {
    let repo = fixture_repo();
    let r = render(&Renderer::new(), &repo, &app(CORPUS_APP), None).unwrap();
    // Every *.jsonnet file, in path order; *.libsonnet and other files only through imports.
    let files: Vec<String> = origins(&r);
    assert!(
        files
            .iter()
            .all(|f| f.starts_with("corpus/") && f.contains(".jsonnet")),
        "{files:?}"
    );
    assert_eq!(
        names(&r),
        vec![
            "Corpus/imports",
            "ConfigMap/plain",
            "Corpus/strings",
            "Corpus/arrays",
            "Corpus/objects",
            "Corpus/numbers",
            "Corpus/manifest",
            "ConfigMap/web-prod",
            "ConfigMap/in-a-list",
        ]
    );
    // Spot checks that hold whatever the reference says.
    let web = &r.manifests[7].object;
    assert_eq!(web["data"]["replicas"], "3");
    assert_eq!(web["data"]["replicasType"], "number");
    assert_eq!(web["data"]["extra"], r#"{"from":"code","list":[1,2]}"#);
    assert_eq!(web["data"]["unset"], "default");
    assert_eq!(web["metadata"]["labels"]["team"], "a");
    assert_eq!(
        r.manifests[1].object["data"]["file"],
        "corpus/plain.jsonnet"
    );
    assert_eq!(
        r.manifests[0].object["spec"]["helper"],
        "web runs 2 replicas of guestbook (from-sub)"
    );

    if !reference_available() {
        return;
    }
    let vars = corpus_vars();
    let mut want = Vec::new();
    for file in ["imports", "plain", "std", "vars"] {
        let out = reference(repo.root(), &format!("corpus/{file}.jsonnet"), &vars)
            .unwrap_or_else(|e| panic!("reference failed on corpus/{file}.jsonnet: {e}"));
        want.extend(objects_of(out));
    }
    let got = rendered_objects(&r);
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert!(
            same_json(g, w),
            "{} differs from the reference:\nkubesync:  {}\nreference: {}",
            g["metadata"]["name"],
            serde_json::to_string_pretty(g).unwrap(),
            serde_json::to_string_pretty(w).unwrap()
        );
    }
}

#[test]
fn argocd_example_guestbooks_render_like_the_reference() {
    let repo = fixture_repo();
    let plain = app(
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: jsonnet-guestbook}\nspec:\n  destination: {namespace: default}\n  source: {path: jsonnet-guestbook}\n",
    );
    let tla = app(
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: jsonnet-guestbook-tla}\nspec:\n  destination: {namespace: default}\n  source:\n    path: jsonnet-guestbook-tla\n    directory:\n      jsonnet:\n        tlas:\n        - {name: name, value: tla-guestbook-ui}\n        - {name: replicas, value: '2', code: true}\n",
    );
    let r_plain = render(&Renderer::new(), &repo, &plain, None).unwrap();
    let r_tla = render(&Renderer::new(), &repo, &tla, None).unwrap();
    assert_eq!(
        names(&r_plain),
        vec![
            "Service/jsonnet-guestbook-ui",
            "Deployment/jsonnet-guestbook-ui"
        ]
    );
    assert_eq!(
        names(&r_tla),
        vec!["Service/tla-guestbook-ui", "Deployment/tla-guestbook-ui"]
    );
    assert_eq!(r_tla.manifests[1].object["spec"]["replicas"], 2);
    assert_eq!(
        r_tla.manifests[1].object["spec"]["template"]["spec"]["containers"][0]["image"],
        "gcr.io/google-samples/gb-frontend:v5"
    );

    if !reference_available() {
        return;
    }
    let none = Vars {
        ext_vars: json!({}),
        ext_codes: json!({}),
        tla_vars: json!({}),
        tla_codes: json!({}),
        jpath: vec!["jsonnet-guestbook"],
    };
    let want = objects_of(
        reference(repo.root(), "jsonnet-guestbook/guestbook-ui.jsonnet", &none).unwrap(),
    );
    assert_eq!(rendered_objects(&r_plain), want);
    let with_tlas = Vars {
        tla_vars: json!({"name": "tla-guestbook-ui"}),
        tla_codes: json!({"replicas": "2"}),
        jpath: vec!["jsonnet-guestbook-tla"],
        ..none
    };
    let want = objects_of(
        reference(
            repo.root(),
            "jsonnet-guestbook-tla/guestbook-ui.jsonnet",
            &with_tlas,
        )
        .unwrap(),
    );
    assert_eq!(rendered_objects(&r_tla), want);
}

/// `file:line` of the first frame the reference names outside its standard library.
fn reference_location(message: &str) -> Option<(String, usize)> {
    let re = regex::Regex::new(r"(errors/[\w.-]+\.(?:jsonnet|libsonnet)):\(?(\d+):").unwrap();
    let c = re.captures(message)?;
    Some((c[1].to_string(), c[2].parse().ok()?))
}

#[test]
fn errors_name_the_file_and_line_the_reference_names() {
    let repo = fixture_repo();
    let reference_on = reference_available();
    let mut cases: Vec<String> = std::fs::read_dir(fixtures().join("errors"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".jsonnet"))
        .collect();
    cases.sort();
    assert!(cases.len() >= 12, "{cases:?}");
    for case in cases {
        let a = app(&format!(
            "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {{name: broken}}\nspec:\n  destination: {{namespace: x}}\n  source: {{path: errors, directory: {{include: '{case}'}}}}\n"
        ));
        let e = render(&Renderer::new(), &repo, &a, None)
            .map(|r| names(&r))
            .expect_err(&case);
        let text = e.to_string();
        let file = format!("errors/{case}");
        assert!(
            text.starts_with(&format!("application \"broken\": {file}")),
            "{case}: {text}"
        );
        let RenderError::Jsonnet { at, message, .. } = &e else {
            panic!("{case}: not a jsonnet error: {e:?}")
        };
        assert!(!message.is_empty());
        if case == "recursion.jsonnet" {
            assert!(message.contains("max stack frames exceeded"), "{text}");
        } else if case == "missing-tla.jsonnet" {
            // No line to point at (the reference names none either): the file and the fix.
            assert!(message.contains("missing argument: name"), "{text}");
            assert!(message.contains("directory.jsonnet.tlas"), "{text}");
        } else {
            let at = at
                .as_ref()
                .unwrap_or_else(|| panic!("{case}: no location: {text}"));
            assert!(text.contains(&format!(":{}:", at.line)), "{text}");
        }
        if !reference_on {
            continue;
        }
        let none = Vars {
            ext_vars: json!({}),
            ext_codes: json!({}),
            tla_vars: json!({}),
            tla_codes: json!({}),
            jpath: vec!["errors"],
        };
        let reference_error = reference(repo.root(), &file, &none)
            .expect_err(&format!("the reference evaluates {case}"));
        if case == "recursion.jsonnet" {
            assert!(reference_error.contains("max stack frames exceeded"));
            continue;
        }
        let Some((ref_file, ref_line)) = reference_location(&reference_error) else {
            assert_eq!(case, "missing-tla.jsonnet", "{reference_error}");
            continue;
        };
        let at = at.as_ref().unwrap();
        assert_eq!(
            (at.file.display().to_string(), at.line),
            (ref_file, ref_line),
            "{case}: kubesync says {text}\nthe reference says {reference_error}"
        );
    }
}

#[test]
fn imports_and_libraries_stay_inside_the_repository() {
    let repo = Repo::new();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(
        outside.path().join("secret.libsonnet"),
        "{ name: 'stolen' }",
    )
    .unwrap();
    let cm = "{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: lib.name } }";
    repo.write(
        "apps/dots/main.jsonnet",
        &format!(
            "local lib = import '../../../{}/secret.libsonnet';\n{cm}",
            outside.path().file_name().unwrap().to_string_lossy()
        ),
    )
    .write(
        "apps/abs/main.jsonnet",
        &format!(
            "local lib = import '{}';\n{cm}",
            outside.path().join("secret.libsonnet").display()
        ),
    )
    .write(
        "apps/link/main.jsonnet",
        &format!("local lib = import 'secret.libsonnet';\n{cm}"),
    )
    .write(
        "apps/lib/main.jsonnet",
        &format!("local lib = import 'x.libsonnet';\n{cm}"),
    );
    std::os::unix::fs::symlink(
        outside.path().join("secret.libsonnet"),
        repo.path("apps/link/secret.libsonnet"),
    )
    .unwrap();
    let argo = |name: &str, extra: &str| {
        app(&format!(
            "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {{name: {name}}}\nspec:\n  destination: {{namespace: x}}\n  source: {{path: apps/{name}{extra}}}\n"
        ))
    };
    for (name, extra, want) in [
        ("dots", "", "leads outside the repository"),
        ("abs", "", "absolute import paths are not allowed"),
        ("link", "", "leads outside the repository"),
        (
            "lib",
            ", directory: {jsonnet: {libs: ['../..']}}",
            "leads outside the repository",
        ),
    ] {
        let e = render(&Renderer::new(), &repo, &argo(name, extra), None).unwrap_err();
        let text = e.to_string();
        assert!(
            text.starts_with(&format!("application \"{name}\": ")),
            "{text}"
        );
        assert!(text.contains(want), "{name}: {text}");
        assert!(!text.contains("stolen"), "{text}");
    }
}

#[test]
fn output_is_checked_like_any_manifest() {
    let repo = Repo::new();
    repo.write("apps/a/values.jsonnet", "{ replicas: 3 }")
        .write("apps/b/n.jsonnet", "[1]")
        .write("apps/c/huge.jsonnet", "{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'x' }, data: { big: local s(n) = if n == 0 then 'x' else (local t = s(n - 1); t + t); s(26) } }")
        .write("apps/d/only.libsonnet", "{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'x' } }");
    let argo = |name: &str| {
        app(&format!(
            "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {{name: {name}}}\nspec:\n  destination: {{namespace: x}}\n  source: {{path: apps/{name}}}\n"
        ))
    };
    let e = render(&Renderer::new(), &repo, &argo("a"), None).unwrap_err();
    assert!(
        e.to_string()
            .contains("apps/a/values.jsonnet: document 1: not a Kubernetes object"),
        "{e}"
    );
    let e = render(&Renderer::new(), &repo, &argo("b"), None).unwrap_err();
    assert!(
        e.to_string().contains("apps/b/n.jsonnet: document 1:"),
        "{e}"
    );
    let e = render(&Renderer::new(), &repo, &argo("c"), None).unwrap_err();
    assert!(e.to_string().contains("larger than 64 MiB"), "{e}");
    // A library alone is not evaluated: nothing rendered (and said so).
    let r = render(&Renderer::new(), &repo, &argo("d"), None).unwrap();
    assert!(r.manifests.is_empty());
}

#[test]
fn build_environment_is_substituted_in_vars() {
    let repo = Repo::new();
    repo.write(
        "apps/env/main.jsonnet",
        "function(tla) { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: std.extVar('n') }, data: { tla: tla } }",
    );
    let a = app(
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: envapp}\nspec:\n  project: default\n  destination: {namespace: team-a}\n  source:\n    path: apps/env\n    directory:\n      jsonnet:\n        extVars: [{name: n, value: '${ARGOCD_APP_NAME}-cm'}]\n        tlas: [{name: tla, value: '$ARGOCD_APP_NAMESPACE/$ARGOCD_APP_PROJECT_NAME/$ARGOCD_APP_SOURCE_PATH costs $$5'}]\n",
    );
    let r = render(&Renderer::new(), &repo, &a, None).unwrap();
    assert_eq!(r.manifests[0].object["metadata"]["name"], "envapp-cm");
    assert_eq!(
        r.manifests[0].object["data"]["tla"],
        "team-a/default/apps/env costs $5"
    );
}
