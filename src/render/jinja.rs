//! The jinja renderer: every `*.j2` file under the app directory (at any
//! depth, hidden entries aside) rendered with minijinja, its output read as
//! multi-document YAML (or JSON for `*.json.j2`). Plain `*.yaml`/`*.yml`/
//! `*.json` files beside the templates are included as they are.
//!
//! - Context: the app's `jinja.vars` at the top level and under `vars`, plus
//!   `app` = `{name, namespace, revision, tier}` (`namespace` is `none` when
//!   there is no destination namespace; `revision` is the commit sha, or
//!   `worktree` for an uncommitted work tree). `app` and `vars` win over variables of the same name. The
//!   same four are also top-level shortcuts (`{{ name }}`), unless a var of
//!   that name exists.
//! - Undefined variables are errors (strict mode) naming the template and line.
//! - `{% include %}`, `{% import %}` and `{% extends %}` load templates by
//!   their path relative to the app directory, and only from inside it.
//!   Files whose name starts with `_` (e.g. `_helpers.j2`) are only loaded
//!   that way, never rendered on their own.
//! - Extra filters: `b64encode`, `b64decode`, `sha256`, `tojson`/`to_json`,
//!   `to_yaml`.
//!
//! Pure: reads files, runs nothing; no auto-escaping.

use std::path::{Path, PathBuf};

use base64::Engine;
use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior, Value as JValue};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::directory::{has_extension, is_manifest_file, walk, Collected, Walk};
use super::{normalize_lexically, Ctx, RenderError, Rendered, RendererKind};
use crate::model::JinjaOptions;

/// Whether `dir` holds a `*.j2` file at any depth (hidden entries and
/// symlinks aside).
pub(crate) fn has_templates(dir: &Path) -> bool {
    walkdir::WalkDir::new(dir)
        .follow_links(false)
        .into_iter()
        .filter_entry(|e| e.depth() == 0 || !e.file_name().to_string_lossy().starts_with('.'))
        .filter_map(Result::ok)
        .any(|e| e.file_type().is_file() && is_template(e.path()))
}

fn is_template(path: &Path) -> bool {
    has_extension(path, "j2")
}

fn is_partial(rel: &Path) -> bool {
    rel.file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with('_'))
}

/// Renders the templates and plain manifests of the app directory.
pub(crate) fn render(ctx: &Ctx, opts: &JinjaOptions) -> Result<Rendered, RenderError> {
    let app = ctx.app_name();
    let files = walk(
        &Walk {
            app: &app,
            root: &ctx.app_dir,
            recurse: true,
            allowed: &[&ctx.repo_root],
            label: &|rel| ctx.label_in_app(rel),
        },
        &|rel| (is_template(rel) && !is_partial(rel)) || is_manifest_file(rel),
    )?;
    let env = environment(ctx.app_dir.clone());
    let mut out = Collected::default();
    let context = context(ctx, opts, &mut out.warnings);
    for f in files {
        let label = ctx.label_in_app(&f.rel);
        if !is_template(&f.rel) {
            out.file(&app, &label, &f.path)?;
            continue;
        }
        let name = template_name(&f.rel);
        let text = env
            .get_template(&name)
            .and_then(|t| t.render(&context))
            .map_err(|e| template_error(ctx, &name, &e))?;
        let stem = f.rel.with_extension("");
        let parsed = if has_extension(&stem, "json") {
            out.json_text(&app, &label, &text)
        } else {
            out.yaml_text(&app, &label, &text)
        };
        parsed.map_err(|e| match e {
            RenderError::Yaml {
                app,
                file,
                doc,
                line,
                message,
            } => RenderError::Yaml {
                app,
                file,
                doc,
                line,
                message: format!("{message} (in the rendered output)"),
            },
            RenderError::Json {
                app,
                file,
                line,
                message,
            } => RenderError::Json {
                app,
                file,
                line,
                message: format!("{message} (in the rendered output)"),
            },
            other => other,
        })?;
    }
    Ok(out.into_rendered(RendererKind::Jinja))
}

/// A template's name: its path relative to the app directory, `/`-separated.
fn template_name(rel: &Path) -> String {
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

fn context(ctx: &Ctx, opts: &JinjaOptions, warnings: &mut Vec<String>) -> JValue {
    let mut top: Map<String, Value> = opts.vars.clone();
    for reserved in ["app", "vars"] {
        if top.contains_key(reserved) {
            warnings.push(format!(
                "jinja variable \"{reserved}\" is shadowed by kubesync's own \"{reserved}\"; use vars.{reserved}"
            ));
        }
    }
    top.insert("vars".into(), Value::Object(opts.vars.clone()));
    let mut app = Map::new();
    app.insert("name".into(), Value::String(ctx.app.name.to_string()));
    app.insert(
        "namespace".into(),
        ctx.app
            .destination
            .namespace
            .clone()
            .map(Value::String)
            .unwrap_or(Value::Null),
    );
    app.insert(
        "revision".into(),
        Value::String(ctx.revision.unwrap_or("worktree").to_string()),
    );
    app.insert("tier".into(), Value::String(ctx.app.tier.to_string()));
    // Shortcuts for the common case (`{{ name }}`, `{{ namespace }}`), as
    // the design describes the context; a var of the same name wins.
    for (k, v) in &app {
        top.entry(k.clone()).or_insert_with(|| v.clone());
    }
    top.insert("app".into(), Value::Object(app));
    JValue::from_serialize(Value::Object(top))
}

fn template_error(ctx: &Ctx, name: &str, e: &minijinja::Error) -> RenderError {
    // An error inside an included or imported template is reported at its
    // own file and line (the innermost template error of the chain), with
    // where it was included from.
    let mut chain = vec![e];
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(inner) = s.downcast_ref::<minijinja::Error>() {
            chain.push(inner);
        }
        source = s.source();
    }
    let innermost = chain
        .iter()
        .rev()
        .find(|err| err.name().is_some())
        .copied()
        .unwrap_or(e);
    let file = innermost.name().unwrap_or(name);
    let mut message = match innermost.detail() {
        Some(d) => format!("{}: {d}", innermost.kind()),
        None => innermost.kind().to_string(),
    };
    if !std::ptr::eq(innermost, e) {
        if let Some(outer) = e.name() {
            let at = ctx.label_in_app(Path::new(outer));
            match e.line() {
                Some(l) => message.push_str(&format!(" (included from {}:{l})", at.display())),
                None => message.push_str(&format!(" (included from {})", at.display())),
            }
        }
    }
    RenderError::Template {
        app: ctx.app_name(),
        file: ctx.label_in_app(Path::new(file)),
        line: innermost.line(),
        message,
    }
}

/// The minijinja environment: strict undefined, no auto-escaping, a loader
/// confined to `root`, kubesync's filters.
fn environment(root: PathBuf) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_keep_trailing_newline(true);
    env.set_loader(move |name| load(&root, name));
    env.add_filter("b64encode", b64encode);
    env.add_filter("b64decode", b64decode);
    env.add_filter("sha256", sha256);
    env.add_filter("tojson", tojson);
    env.add_filter("to_json", tojson);
    env.add_filter("to_yaml", to_yaml);
    env
}

/// Loads `name` (relative to `root`) if it exists inside `root`.
fn load(root: &Path, name: &str) -> Result<Option<String>, minijinja::Error> {
    let escapes = || {
        minijinja::Error::new(
            ErrorKind::InvalidOperation,
            format!("template \"{name}\" is outside the application directory"),
        )
    };
    let rel = Path::new(name);
    if rel.is_absolute() {
        return Err(escapes());
    }
    let Some(rel) = normalize_lexically(rel) else {
        return Err(escapes());
    };
    let path = match root.join(rel).canonicalize() {
        Ok(p) => p,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(
                minijinja::Error::new(ErrorKind::InvalidOperation, "cannot read template")
                    .with_source(e),
            )
        }
    };
    if !path.starts_with(root) {
        return Err(escapes());
    }
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some(text)),
        Err(e) => Err(
            minijinja::Error::new(ErrorKind::InvalidOperation, "cannot read template")
                .with_source(e),
        ),
    }
}

fn b64encode(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s.as_bytes())
}

fn b64decode(s: &str) -> Result<String, minijinja::Error> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .map_err(|e| {
            minijinja::Error::new(ErrorKind::InvalidOperation, format!("b64decode: {e}"))
        })?;
    String::from_utf8(bytes).map_err(|_| {
        minijinja::Error::new(
            ErrorKind::InvalidOperation,
            "b64decode: the decoded bytes are not UTF-8 text",
        )
    })
}

fn sha256(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

fn tojson(v: JValue) -> Result<JValue, minijinja::Error> {
    serde_json::to_string(&v)
        .map(JValue::from_safe_string)
        .map_err(|e| minijinja::Error::new(ErrorKind::InvalidOperation, format!("tojson: {e}")))
}

fn to_yaml(v: JValue) -> Result<JValue, minijinja::Error> {
    serde_yaml::to_string(&v)
        .map(|s| JValue::from_safe_string(s.trim_end_matches('\n').to_string()))
        .map_err(|e| minijinja::Error::new(ErrorKind::InvalidOperation, format!("to_yaml: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_with(files: &[(&str, &str)]) -> (tempfile::TempDir, Environment<'static>) {
        let d = tempfile::tempdir().unwrap();
        for (name, text) in files {
            let p = d.path().join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        let root = d.path().canonicalize().unwrap();
        (d, environment(root))
    }

    #[test]
    fn filters() {
        let (_d, env) = env_with(&[]);
        let r = |src: &str| {
            env.render_str(
                src,
                minijinja::context! {m => minijinja::context!{a => 1, b => "x"}},
            )
            .unwrap()
        };
        assert_eq!(r("{{ 'hello' | b64encode }}"), "aGVsbG8=");
        assert_eq!(r("{{ 'aGVsbG8=' | b64decode }}"), "hello");
        assert_eq!(
            r("{{ 'abc' | sha256 }}"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(r("{{ m | tojson }}"), r#"{"a":1,"b":"x"}"#);
        assert_eq!(r("{{ m | to_yaml }}"), "a: 1\nb: x");
    }

    #[test]
    fn strict_undefined() {
        let (_d, env) = env_with(&[]);
        let e = env.render_str("{{ nope }}", ()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::UndefinedError);
    }

    #[test]
    fn loader_is_confined() {
        let (d, env) = env_with(&[("a.j2", "A"), ("sub/b.j2", "{% include 'a.j2' %}B")]);
        std::fs::write(d.path().parent().unwrap().join("secret.j2"), "S").ok();
        assert_eq!(
            env.get_template("sub/b.j2").unwrap().render(()).unwrap(),
            "AB"
        );
        let e = env
            .render_str("{% include '../secret.j2' %}", ())
            .unwrap_err();
        assert!(
            e.to_string().contains("outside the application directory"),
            "{e}"
        );
        let e = env
            .render_str("{% include '/etc/passwd' %}", ())
            .unwrap_err();
        assert!(
            e.to_string().contains("outside the application directory"),
            "{e}"
        );
    }

    #[test]
    fn partials_and_names() {
        assert!(is_partial(Path::new("sub/_helpers.j2")));
        assert!(!is_partial(Path::new("deploy.yaml.j2")));
        assert_eq!(template_name(Path::new("a/b/c.j2")), "a/b/c.j2");
    }
}
