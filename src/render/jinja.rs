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
//! - Bounded: each template render may execute at most [`FUEL`] minijinja
//!   instructions (a loop iteration, an output, a filter call each cost
//!   about one; the largest real templates use well under a million) and
//!   write at most [`MAX_OUTPUT`] bytes. Beyond either the app fails with a
//!   template error naming the file ("template too expensive: ran out of
//!   fuel", "template output too large") instead of running, or growing,
//!   without bound.
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

/// Instructions one template render may execute (minijinja fuel).
pub const FUEL: u64 = 50_000_000;
/// Bytes one template render may write.
pub const MAX_OUTPUT: usize = 64 * 1024 * 1024;

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
            hidden: false,
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
        let text = render_bounded(&env, &name, &context, MAX_OUTPUT)
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

/// Renders template `name`, failing once its output passes `cap` bytes.
fn render_bounded(
    env: &Environment,
    name: &str,
    context: &JValue,
    cap: usize,
) -> Result<String, minijinja::Error> {
    let template = env.get_template(name)?;
    let mut out = CappedWriter {
        buf: Vec::new(),
        cap,
        overflowed: false,
    };
    match template.render_captured_to(context, &mut out) {
        Ok(_) => Ok(String::from_utf8_lossy(&out.buf).into_owned()),
        Err(_) if out.overflowed => Err(minijinja::Error::new(
            ErrorKind::InvalidOperation,
            format!(
                "template output too large: more than {} MiB",
                cap / (1024 * 1024)
            ),
        )),
        Err(e) => Err(e),
    }
}

/// A buffer that refuses writes past `cap` bytes.
struct CappedWriter {
    buf: Vec<u8>,
    cap: usize,
    overflowed: bool,
}

impl std::io::Write for CappedWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.buf.len() + data.len() > self.cap {
            self.overflowed = true;
            return Err(std::io::Error::other("template output too large"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
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
    let mut message = match (innermost.kind(), innermost.detail()) {
        (ErrorKind::OutOfFuel, _) => format!(
            "template too expensive: ran out of fuel (more than {FUEL} instructions; are loops nested too deep or ranges too large?)"
        ),
        (_, Some(d)) => format!("{}: {d}", innermost.kind()),
        (_, None) => innermost.kind().to_string(),
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
    env.set_fuel(Some(FUEL));
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
    fn runaway_templates_run_out_of_fuel_or_room() {
        let (_d, env) = env_with(&[
            (
                "loops.j2",
                "{% for i in range(100000) %}{% for j in range(100000) %}{{ j }}{% endfor %}{% endfor %}",
            ),
            ("big.j2", "{% for i in range(100) %}{{ 'x' * 1000 }}{% endfor %}"),
        ]);
        let start = std::time::Instant::now();
        let e = render_bounded(&env, "loops.j2", &JValue::from(()), MAX_OUTPUT).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::OutOfFuel);
        assert!(start.elapsed() < std::time::Duration::from_secs(60));
        let e = render_bounded(&env, "big.j2", &JValue::from(()), 50_000).unwrap_err();
        assert!(e.to_string().contains("template output too large"), "{e}");
        assert_eq!(
            render_bounded(&env, "big.j2", &JValue::from(()), 100_000)
                .unwrap()
                .len(),
            100_000
        );
    }

    #[test]
    fn partials_and_names() {
        assert!(is_partial(Path::new("sub/_helpers.j2")));
        assert!(!is_partial(Path::new("deploy.yaml.j2")));
        assert_eq!(template_name(Path::new("a/b/c.j2")), "a/b/c.j2");
    }
}
