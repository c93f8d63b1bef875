//! The kustomize renderer: `kustomize build DIR`, or `kubectl kustomize DIR`
//! when only kubectl is installed, run without a shell through
//! [`super::process`].
//!
//! The app's kustomize options (namePrefix, nameSuffix, namespace, images,
//! commonLabels, commonAnnotations) are applied the way Argo CD's `kustomize
//! edit` would, but without touching the repository: kubesync writes an
//! overlay `kustomization.yaml` into a fresh temporary directory whose only
//! resource is the app directory, referenced by a *relative* path
//! (kustomize refuses absolute roots). This is correct under kustomize's
//! default load restrictions (`LoadRestrictionsRootOnly`): a directory
//! resource becomes a kustomization root of its own, so the base still reads
//! exactly the files it could read when built directly, and nothing else is
//! loosened. `commonLabels` is written as `labels` with `includeSelectors`
//! (the same effect, without kustomize's deprecation warning).
//!
//! Everything a kustomization reads must be inside the repository. Before
//! kustomize runs, kubesync walks the kustomization graph from the app
//! directory — `resources`, `bases`, `components` (recursing into
//! directories), `crds`, `configurations`, patch files, generator `files`,
//! `envs` and `env`, `replacements` paths, `openapi.path`, and file entries
//! of `generators`/`transformers`/`validators` — and refuses any local path
//! that resolves (after symlinks) outside the repository root, naming the
//! kustomization file and the entry. Sibling bases (`../base`) stay
//! legitimate. Remote resources (URLs, `github.com/…`) are left to kustomize
//! as before; a path that does not exist is left for kustomize to report.
//!
//! Objects' origins are the kustomization directory (repository-relative)
//! with the document index in kustomize's output. A failure is a
//! [`RenderError::Kustomize`] with kustomize's stderr; on success, its stderr
//! lines become warnings.

use std::ffi::OsStr;
use std::path::{Component, Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Map, Value};

use super::directory::Collected;
use super::process::{self, RunError};
use super::{normalize_lexically, Ctx, RenderError, Rendered, RendererKind};
use crate::model::yaml;
use crate::model::KustomizeOptions;

/// File names kustomize accepts for a kustomization, in its order of preference.
pub const KUSTOMIZATION_FILES: [&str; 3] =
    ["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// The program that builds kustomizations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tool {
    /// `kustomize build DIR`
    Kustomize(PathBuf),
    /// `kubectl kustomize DIR`
    Kubectl(PathBuf),
}

impl Tool {
    /// A configured binary: `kubectl…` by file name is run as `kubectl kustomize`.
    pub fn from_path(path: PathBuf) -> Self {
        let is_kubectl = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("kubectl"));
        if is_kubectl {
            Tool::Kubectl(path)
        } else {
            Tool::Kustomize(path)
        }
    }

    fn command(&self, dir: &Path, build_options: &[String]) -> (Command, String) {
        let (mut c, what) = match self {
            Tool::Kustomize(p) => {
                let mut c = Command::new(p);
                c.arg("build").arg(dir);
                (c, "kustomize build")
            }
            Tool::Kubectl(p) => {
                let mut c = Command::new(p);
                c.arg("kustomize").arg(dir);
                (c, "kubectl kustomize")
            }
        };
        c.args(build_options);
        (c, what.into())
    }
}

/// The environment variable holding kustomize build options for every
/// kustomize app (Argo CD's `kustomize.buildOptions` in `argocd-cm`).
pub const BUILD_OPTIONS_ENV: &str = "KUBESYNC_KUSTOMIZE_BUILD_OPTIONS";

/// The build options kubesync passes on, from Argo CD's
/// `kustomize.buildOptions` syntax (`--enable-helm --load-restrictor
/// LoadRestrictionsNone`), normalised to one argument each. Other options
/// are refused by name: some run programs (`--enable-alpha-plugins`,
/// `--enable-exec`, `--helm-command`) or write files (`--output`).
pub fn parse_build_options(text: &str) -> Result<Vec<String>, String> {
    const RESTRICTIONS: [&str; 2] = ["LoadRestrictionsRootOnly", "LoadRestrictionsNone"];
    let mut out = Vec::new();
    let mut words = text.split_whitespace();
    while let Some(w) = words.next() {
        let (flag, inline) = match w.split_once('=') {
            Some((f, v)) => (f, Some(v)),
            None => (w, None),
        };
        match flag {
            "--enable-helm" if inline.is_none() => out.push(flag.to_string()),
            "--load-restrictor" => {
                let value = inline.or_else(|| words.next()).unwrap_or("");
                if !RESTRICTIONS.contains(&value) {
                    return Err(format!(
                        "--load-restrictor takes {} (found \"{value}\")",
                        RESTRICTIONS.join(" or ")
                    ));
                }
                out.push(format!("--load-restrictor={value}"));
            }
            _ => {
                return Err(format!(
                    "unsupported kustomize build option \"{w}\" (kubesync passes --enable-helm and --load-restrictor)"
                ))
            }
        }
    }
    Ok(out)
}

/// Builds the kustomization in the app directory, with the options overlay if any.
pub(crate) fn render(
    ctx: &Ctx,
    opts: &KustomizeOptions,
    tool: &Tool,
    build_options: &[String],
    path_env: Option<&OsStr>,
    timeout: Duration,
) -> Result<Rendered, RenderError> {
    let app = ctx.app_name();
    let dir_label = ctx.app_label();
    check_confined(ctx, &ctx.app_dir, &mut Vec::new())?;
    // Kept alive until the build has run.
    let overlay = if opts.is_empty() {
        None
    } else {
        let tmp = tempfile::Builder::new()
            .prefix("kubesync-kustomize-")
            .tempdir()
            .map_err(|e| ctx.io("(temporary kustomize overlay)", e))?;
        let tmp_path = tmp
            .path()
            .canonicalize()
            .map_err(|e| ctx.io("(temporary kustomize overlay)", e))?;
        let base = relative_path(&tmp_path, &ctx.app_dir);
        let text = overlay_kustomization(&app, &base, opts)?;
        std::fs::write(tmp_path.join("kustomization.yaml"), text)
            .map_err(|e| ctx.io("(temporary kustomize overlay)", e))?;
        Some((tmp, tmp_path))
    };
    let build_dir = overlay
        .as_ref()
        .map(|(_, p)| p.clone())
        .unwrap_or_else(|| ctx.app_dir.clone());

    let (mut cmd, what) = tool.command(&build_dir, build_options);
    cmd.current_dir(&ctx.app_dir);
    if let Some(p) = path_env {
        cmd.env("PATH", p);
    }
    tracing::debug!(dir = %dir_label.display(), tool = ?tool, "kustomize build");
    let out = process::run(cmd, timeout, process::Stdout::Keep(process::STDOUT_CAP)).map_err(
        |e| match e {
            RunError::Spawn(e) if e.kind() == std::io::ErrorKind::NotFound => {
                RenderError::MissingBinary {
                    app: app.clone(),
                    binary: "kustomize".into(),
                    hint: format!("{what} could not be started: {e}"),
                }
            }
            RunError::Spawn(e) | RunError::Wait(e) => RenderError::Io {
                app: app.clone(),
                path: dir_label.clone(),
                source: e,
            },
            RunError::TimedOut => RenderError::Timeout {
                app: app.clone(),
                command: format!("{what} {}", dir_label.display()),
                after: timeout,
            },
        },
    )?;
    let hide_tmp = |s: &str| match &overlay {
        Some((_, p)) => s.replace(&*p.to_string_lossy(), "<kubesync options overlay>"),
        None => s.to_string(),
    };
    if out.stdout_overflowed() {
        return Err(RenderError::OutputTooLarge {
            app,
            command: format!("{what} {}", dir_label.display()),
            limit: process::STDOUT_CAP,
        });
    }
    if !out.status.success() {
        let stderr = hide_tmp(String::from_utf8_lossy(&out.stderr).trim());
        return Err(RenderError::Kustomize {
            app,
            dir: dir_label,
            stderr: if stderr.is_empty() {
                format!(
                    "{what} {} with no output on stderr",
                    process::status_text(out.status)
                )
            } else {
                stderr
            },
        });
    }
    let mut collected = Collected::default();
    for line in String::from_utf8_lossy(&out.stderr)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
    {
        collected
            .warnings
            .push(format!("kustomize: {}", hide_tmp(line)));
    }
    collected.yaml_text(&app, &dir_label, &String::from_utf8_lossy(&out.stdout))?;
    Ok(collected.into_rendered(RendererKind::Kustomize))
}

/// Whether a kustomization entry names something remote (left to kustomize).
fn is_remote(entry: &str) -> bool {
    entry.contains("://")
        || entry.starts_with("git@")
        || entry.starts_with("github.com/")
        || entry.starts_with("gitlab.com/")
        || entry.starts_with("bitbucket.org/")
        || entry.contains("?ref=")
}

/// The local paths a kustomization refers to: `(field, entry, is_kustomization_root)`,
/// where the last is true for entries that may be directories to recurse into.
fn local_references(k: &Value) -> Vec<(String, String, bool)> {
    let mut out = Vec::new();
    let strings = |v: Option<&Value>| -> Vec<String> {
        match v {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|i| i.as_str().map(str::to_string))
                .collect(),
            Some(Value::String(s)) => vec![s.clone()],
            _ => Vec::new(),
        }
    };
    for field in ["resources", "bases", "components"] {
        for e in strings(k.get(field)) {
            out.push((field.to_string(), e, true));
        }
    }
    for field in ["generators", "transformers", "validators"] {
        for e in strings(k.get(field)) {
            // Inline configurations are YAML text, not paths.
            if !e.contains('\n') {
                out.push((field.to_string(), e, true));
            }
        }
    }
    for field in ["crds", "configurations", "patchesStrategicMerge"] {
        for e in strings(k.get(field)) {
            if !e.contains('\n') {
                out.push((field.to_string(), e, false));
            }
        }
    }
    for field in ["patches", "patchesJson6902", "replacements"] {
        if let Some(Value::Array(items)) = k.get(field) {
            for i in items {
                match i {
                    Value::String(e) if !e.contains('\n') => {
                        out.push((field.to_string(), e.clone(), false))
                    }
                    Value::Object(_) => {
                        for e in strings(i.get("path")) {
                            out.push((format!("{field}.path"), e, false));
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    for field in ["configMapGenerator", "secretGenerator", "helmCharts"] {
        if let Some(Value::Array(items)) = k.get(field) {
            for i in items {
                for e in strings(i.get("files")) {
                    // `key=path` or `path`.
                    let path = e.split_once('=').map(|(_, p)| p.to_string()).unwrap_or(e);
                    out.push((format!("{field}.files"), path, false));
                }
                for sub in ["envs", "env", "valuesFile", "additionalValuesFiles"] {
                    for e in strings(i.get(sub)) {
                        out.push((format!("{field}.{sub}"), e, false));
                    }
                }
            }
        }
    }
    for e in strings(k.get("openapi").and_then(|o| o.get("path"))) {
        out.push(("openapi.path".to_string(), e, false));
    }
    for e in strings(k.get("helmGlobals").and_then(|o| o.get("chartHome"))) {
        out.push(("helmGlobals.chartHome".to_string(), e, false));
    }
    out
}

/// Refuses a kustomization (at canonical directory `dir`, and every local
/// kustomization it uses) that refers to a path outside the repository.
fn check_confined(ctx: &Ctx, dir: &Path, seen: &mut Vec<PathBuf>) -> Result<(), RenderError> {
    if seen.iter().any(|d| d == dir) {
        return Ok(());
    }
    seen.push(dir.to_path_buf());
    let Some(file) = KUSTOMIZATION_FILES
        .iter()
        .map(|f| dir.join(f))
        .find(|p| p.is_file())
    else {
        // Not a kustomization (kustomize reports it if it needs one).
        return Ok(());
    };
    let label = ctx.label_abs(&file);
    let app = ctx.app_name();
    let text = std::fs::read_to_string(&file).map_err(|e| ctx.io(&label, e))?;
    let docs =
        yaml::documents(&text).map_err(|e| RenderError::from_yaml(&app, &label, e.doc, e, ""))?;
    let Some((_, k)) = docs.into_iter().next() else {
        return Ok(());
    };
    for (field, entry, may_recurse) in local_references(&k) {
        if is_remote(&entry) {
            continue;
        }
        let escapes = || RenderError::KustomizeEscapes {
            app: app.clone(),
            file: label.clone(),
            field: field.clone(),
            entry: entry.clone(),
        };
        let joined = normalize_lexically(&dir.join(&entry))
            .filter(|p| p.starts_with(&ctx.repo_root))
            .ok_or_else(escapes)?;
        let Ok(real) = joined.canonicalize() else {
            // Missing: kustomize reports it.
            continue;
        };
        if !real.starts_with(&ctx.repo_root) {
            return Err(escapes());
        }
        if may_recurse && real.is_dir() {
            check_confined(ctx, &real, seen)?;
        }
    }
    Ok(())
}

/// The overlay kustomization (as JSON, which kustomize reads as YAML).
fn overlay_kustomization(
    app: &str,
    base: &Path,
    opts: &KustomizeOptions,
) -> Result<String, RenderError> {
    let mut k = Map::new();
    k.insert(
        "apiVersion".into(),
        json!("kustomize.config.k8s.io/v1beta1"),
    );
    k.insert("kind".into(), json!("Kustomization"));
    k.insert("resources".into(), json!([base.to_string_lossy()]));
    if let Some(p) = &opts.name_prefix {
        k.insert("namePrefix".into(), json!(p));
    }
    if let Some(s) = &opts.name_suffix {
        k.insert("nameSuffix".into(), json!(s));
    }
    if let Some(ns) = &opts.namespace {
        k.insert("namespace".into(), json!(ns));
    }
    if !opts.images.is_empty() {
        let images = opts
            .images
            .iter()
            .map(|i| {
                parse_image(i).map_err(|message| RenderError::BadOption {
                    app: app.to_string(),
                    option: "kustomize.images".into(),
                    message,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        k.insert("images".into(), Value::Array(images));
    }
    if !opts.common_labels.is_empty() {
        k.insert(
            "labels".into(),
            json!([{"pairs": opts.common_labels, "includeSelectors": true}]),
        );
    }
    if !opts.common_annotations.is_empty() {
        k.insert("commonAnnotations".into(), json!(opts.common_annotations));
    }
    serde_json::to_string_pretty(&Value::Object(k)).map_err(|e| RenderError::BadOption {
        app: app.to_string(),
        option: "kustomize".into(),
        message: e.to_string(),
    })
}

/// Parses an image override as `kustomize edit set image` and Argo CD take
/// it: `[name=]newName[:tag][@digest]`, or `name:tag` / `name@digest`.
fn parse_image(spec: &str) -> Result<Value, String> {
    let spec = spec.trim();
    let bad = || {
        format!("\"{spec}\" is not an image override like nginx:1.25, nginx=registry/nginx:1.25 or nginx@sha256:…")
    };
    let (old, new) = match spec.split_once('=') {
        Some((old, new)) => (Some(old.trim()), new.trim()),
        None => (None, spec),
    };
    let (reference, digest) = match new.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (new, None),
    };
    let last_slash = reference.rfind('/').map(|i| i + 1).unwrap_or(0);
    let (image, tag) = match reference[last_slash..].rfind(':') {
        Some(i) => (
            &reference[..last_slash + i],
            Some(&reference[last_slash + i + 1..]),
        ),
        None => (reference, None),
    };
    let mut m = Map::new();
    match old {
        Some(old) => {
            if old.is_empty() {
                return Err(bad());
            }
            m.insert("name".into(), json!(old));
            if !image.is_empty() && image != old {
                m.insert("newName".into(), json!(image));
            }
        }
        None => {
            if image.is_empty() {
                return Err(bad());
            }
            m.insert("name".into(), json!(image));
        }
    }
    if let Some(t) = tag {
        if t.is_empty() {
            return Err(bad());
        }
        m.insert("newTag".into(), json!(t));
    }
    if let Some(d) = digest {
        if d.is_empty() {
            return Err(bad());
        }
        m.insert("digest".into(), json!(d));
    }
    if m.len() == 1 {
        return Err(bad());
    }
    Ok(Value::Object(m))
}

/// A relative path from directory `from` to `to` (both absolute, canonical).
fn relative_path(from: &Path, to: &Path) -> PathBuf {
    let f: Vec<Component> = from.components().collect();
    let t: Vec<Component> = to.components().collect();
    let common = f.iter().zip(&t).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..f.len() {
        out.push("..");
    }
    for c in &t[common..] {
        out.push(c.as_os_str());
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_overrides() {
        let p = |s: &str| parse_image(s).unwrap();
        assert_eq!(p("nginx:1.25"), json!({"name": "nginx", "newTag": "1.25"}));
        assert_eq!(
            p("nginx=registry:5000/web/nginx:1.25"),
            json!({"name": "nginx", "newName": "registry:5000/web/nginx", "newTag": "1.25"})
        );
        assert_eq!(
            p("registry:5000/nginx@sha256:abc"),
            json!({"name": "registry:5000/nginx", "digest": "sha256:abc"})
        );
        assert_eq!(
            p("nginx=mirror/nginx"),
            json!({"name": "nginx", "newName": "mirror/nginx"})
        );
        for bad in ["nginx", "=x:1", "nginx:", "nginx@"] {
            assert!(parse_image(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn relative_paths() {
        assert_eq!(
            relative_path(Path::new("/tmp/x"), Path::new("/work/repo/app")),
            PathBuf::from("../../work/repo/app")
        );
        assert_eq!(
            relative_path(Path::new("/a/b"), Path::new("/a/b/c")),
            PathBuf::from("c")
        );
    }

    #[test]
    fn local_references_cover_the_path_fields() {
        let k: Value = serde_json::from_str(
            r#"{
            "resources": ["../base", "https://github.com/x/y", "cm.yaml"],
            "components": ["../comp"],
            "patches": [{"path": "p.yaml"}, {"patch": "inline"}],
            "patchesStrategicMerge": ["psm.yaml", "a: 1\nb: 2"],
            "configMapGenerator": [{"files": ["k=f.txt", "g.txt"], "envs": ["e.env"]}],
            "openapi": {"path": "schema.json"}
        }"#,
        )
        .unwrap();
        let refs: Vec<String> = local_references(&k)
            .into_iter()
            .map(|(f, e, _)| format!("{f}:{e}"))
            .collect();
        assert_eq!(
            refs,
            vec![
                "resources:../base",
                "resources:https://github.com/x/y",
                "resources:cm.yaml",
                "components:../comp",
                "patchesStrategicMerge:psm.yaml",
                "patches.path:p.yaml",
                "configMapGenerator.files:f.txt",
                "configMapGenerator.files:g.txt",
                "configMapGenerator.envs:e.env",
                "openapi.path:schema.json",
            ]
        );
        assert!(is_remote("https://github.com/x/y"));
        assert!(is_remote("github.com/org/repo//dir?ref=v1"));
        assert!(!is_remote("../base"));
    }

    #[test]
    fn kubectl_is_recognised_by_name() {
        assert!(matches!(
            Tool::from_path("/usr/bin/kubectl".into()),
            Tool::Kubectl(_)
        ));
        assert!(matches!(
            Tool::from_path("/opt/kustomize".into()),
            Tool::Kustomize(_)
        ));
    }

    #[test]
    fn build_options_pass_only_what_is_safe() {
        assert_eq!(parse_build_options("").unwrap(), Vec::<String>::new());
        assert_eq!(
            parse_build_options("--enable-helm --load-restrictor LoadRestrictionsNone").unwrap(),
            vec!["--enable-helm", "--load-restrictor=LoadRestrictionsNone"]
        );
        assert_eq!(
            parse_build_options("--load-restrictor=LoadRestrictionsRootOnly").unwrap(),
            vec!["--load-restrictor=LoadRestrictionsRootOnly"]
        );
        assert_eq!(
            parse_build_options("--load-restrictor").unwrap_err(),
            "--load-restrictor takes LoadRestrictionsRootOnly or LoadRestrictionsNone (found \"\")"
        );
        for refused in [
            "--enable-alpha-plugins",
            "--enable-exec",
            "--helm-command=/bin/sh",
            "-o out",
            "--enable-helm=false",
        ] {
            let err = parse_build_options(refused).unwrap_err();
            assert!(
                err.starts_with("unsupported kustomize build option"),
                "{refused}: {err}"
            );
        }
    }
}
