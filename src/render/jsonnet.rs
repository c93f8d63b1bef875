//! Jsonnet evaluation for directory apps, as Argo CD does it: every
//! `*.jsonnet` file the directory walk selects is evaluated on its own (a
//! fresh interpreter per file, `*.libsonnet` files only through imports),
//! with the app's `directory.jsonnet` options:
//!
//! - `extVars` (`std.extVar`) and `tlas` (top-level arguments, passed when
//!   the file evaluates to a function), each a string or, with `code: true`,
//!   jsonnet code; their values get Argo CD's build environment substituted
//!   (`$ARGOCD_APP_NAME`, `${ARGOCD_APP_NAMESPACE}`, … ; `$$` is a `$`);
//! - `libs`: library directories, relative to the repository root.
//!
//! Imports are resolved as go-jsonnet's file importer (which Argo CD uses)
//! resolves them: relative to the importing file first, then the library
//! directories, last one first, then the app directory. Unlike it, nothing
//! outside the repository can be read: an import (or a library directory)
//! that leads outside it through `..` or a symlink, or an absolute import
//! path, fails the app naming the file.
//!
//! The interpreter is `rsjsonnet-lang` (pure Rust, no `unsafe`; its parser,
//! analyser and evaluator keep their own stacks, so deeply nested input
//! cannot overflow the thread's stack). Limits: jsonnet's call stack depth
//! ([`MAX_STACK`], as the C++ and Go implementations bound it) and the size
//! of each file's output ([`MAX_OUTPUT`]); the crate has no instruction or
//! memory budget and no way to interrupt an evaluation, so a program that
//! loops forever without recursing is stopped by the time limit.
//!
//! Errors are values naming the app, the file evaluated and the file and
//! line the error points at (which may be an imported library). Time:
//! every evaluation runs under the jsonnet time limit
//! ([`super::jsonnet_limit`]: in a child process that is killed when the
//! limit passes).
//!
//! This module evaluates one file into JSON; turning that into objects is
//! [`super::directory`]'s.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rsjsonnet_lang::arena::Arena;
use rsjsonnet_lang::program::{
    AnalyzeError, Callbacks, EvalError, EvalErrorKind, EvalErrorValueType, EvalStackTraceItem,
    ImportError, LoadError, NativeError, Program, Thunk, Value as JValue,
};
use rsjsonnet_lang::span::{SpanContextId, SpanId};
use serde_json::Value;

use super::{normalize_lexically, Ctx, RenderError};
use crate::model::{JsonnetOptions, JsonnetVar};

/// Deepest jsonnet call stack (the default of the C++ and Go implementations).
pub const MAX_STACK: usize = 500;
/// Largest JSON output of one file.
pub const MAX_OUTPUT: usize = 64 * 1024 * 1024;

/// Whether `path` is a file to evaluate (`*.jsonnet`; `*.libsonnet` only
/// through imports).
pub(crate) fn is_jsonnet_file(path: &Path) -> bool {
    super::directory::has_extension(path, "jsonnet")
}

/// Where a jsonnet error points: a repository-relative file, 1-based line and column.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct JsonnetLocation {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
}

/// Evaluates one jsonnet file (`path`, canonical, inside the repository;
/// `label` its repository-relative name) into JSON, within the jsonnet
/// time limit ([`super::jsonnet_limit`]).
pub(crate) fn evaluate(
    ctx: &Ctx,
    opts: &JsonnetOptions,
    path: &Path,
    label: &Path,
) -> Result<Value, RenderError> {
    super::jsonnet_limit::evaluate(ctx, opts, path, label)
}

/// Evaluates one jsonnet file here, in this thread, however long it takes.
pub(crate) fn evaluate_unbounded(
    ctx: &Ctx,
    opts: &JsonnetOptions,
    path: &Path,
    label: &Path,
) -> Result<Value, RenderError> {
    let app = ctx.app_name();
    let mut search = vec![ctx.app_dir.clone()];
    for (i, lib) in opts.libs.iter().enumerate() {
        search.push(lib_dir(ctx, lib, i)?);
    }
    let source = std::fs::read(path).map_err(|e| ctx.io(label, e))?;
    let env = build_env(ctx);

    let arena = Arena::new();
    let mut program = Program::new(&arena);
    program.set_max_stack(MAX_STACK);
    let mut files = Files {
        ctx,
        search,
        sources: HashMap::new(),
        cache: HashMap::new(),
        import_error: None,
    };

    let mut seen = Vec::new();
    for var in &opts.ext_vars {
        if seen.contains(&&var.name) {
            continue; // the model refuses duplicates
        }
        seen.push(&var.name);
        let thunk = files.var_thunk(&mut program, "extvar", var, &env, label)?;
        let name = program.intern_str(&var.name);
        program.add_ext_var(name, &thunk);
    }

    let main = files
        .load(
            &mut program,
            path.to_path_buf(),
            label.to_path_buf(),
            &source,
        )
        .map_err(|(m, at)| files.error(&program, label, m, at))?;
    let mut value = program
        .eval_value(&main, &mut files)
        .map_err(|e| files.eval_error(&program, label, &e))?;
    if value.is_function() {
        let mut named = Vec::new();
        for var in &opts.tlas {
            let thunk = files.var_thunk(&mut program, "tla", var, &env, label)?;
            named.push((program.intern_str(&var.name), thunk));
        }
        value = program
            .eval_call(&main, &[], &named, &mut files)
            .map_err(|e| files.eval_error(&program, label, &e))?;
    }
    let json = program
        .manifest_json(&value, false)
        .map_err(|e| files.eval_error(&program, label, &e))?;
    if json.len() > MAX_OUTPUT {
        return Err(RenderError::Jsonnet {
            app,
            file: label.to_path_buf(),
            at: None,
            message: format!(
                "the output is larger than {} MiB; refusing output that large",
                MAX_OUTPUT / (1024 * 1024)
            ),
        });
    }
    serde_json::from_str(&json).map_err(|e| RenderError::Jsonnet {
        app,
        file: label.to_path_buf(),
        at: None,
        message: format!("the output is not valid JSON: {e}"),
    })
}

/// A library directory of `directory.jsonnet.libs`: repository-relative,
/// inside the repository once symlinks are resolved.
fn lib_dir(ctx: &Ctx, lib: &str, i: usize) -> Result<PathBuf, RenderError> {
    let bad = |message: String| RenderError::BadOption {
        app: ctx.app_name(),
        option: format!("directory.jsonnet.libs[{i}]"),
        message,
    };
    let rel = Path::new(lib.trim_start_matches('/'));
    let joined = normalize_lexically(&ctx.repo_root.join(rel))
        .filter(|p| p.starts_with(&ctx.repo_root))
        .ok_or_else(|| ctx.escapes(rel))?;
    let real = joined.canonicalize().map_err(|e| {
        bad(format!(
            "\"{lib}\" is not a directory of the repository: {e}"
        ))
    })?;
    if !real.starts_with(&ctx.repo_root) {
        return Err(ctx.escapes(rel));
    }
    if !real.is_dir() {
        return Err(bad(format!("\"{lib}\" is not a directory")));
    }
    Ok(real)
}

/// Argo CD's build environment, substituted into ext var and TLA values.
fn build_env(ctx: &Ctx) -> HashMap<&'static str, String> {
    let app = ctx.app;
    let revision = ctx.revision.unwrap_or_default().to_string();
    let short = |n: usize| revision.chars().take(n).collect::<String>();
    let mut env = HashMap::new();
    env.insert("ARGOCD_APP_NAME", app.name.to_string());
    env.insert(
        "ARGOCD_APP_NAMESPACE",
        app.destination.namespace.clone().unwrap_or_default(),
    );
    env.insert(
        "ARGOCD_APP_PROJECT_NAME",
        app.project.clone().unwrap_or_default(),
    );
    env.insert("ARGOCD_APP_REVISION_SHORT", short(7));
    env.insert("ARGOCD_APP_REVISION_SHORT_8", short(8));
    env.insert("ARGOCD_APP_REVISION", revision.clone());
    env.insert(
        "ARGOCD_APP_SOURCE_REPO_URL",
        app.source.repo_url.clone().unwrap_or_default(),
    );
    env.insert("ARGOCD_APP_SOURCE_PATH", app.source.path.to_string());
    env.insert(
        "ARGOCD_APP_SOURCE_TARGET_REVISION",
        app.source
            .target_revision
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
    );
    env
}

/// `$NAME` and `${NAME}` replaced from `env` (unknown names by nothing, as
/// Argo CD does); `$$` is a literal `$`.
pub(crate) fn envsubst(s: &str, env: &HashMap<&'static str, String>) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(braced) = after.strip_prefix('{') {
            match braced.find('}') {
                Some(end) => {
                    out.push_str(env.get(&braced[..end]).map(String::as_str).unwrap_or(""));
                    rest = &braced[end + 1..];
                }
                None => {
                    out.push('$');
                    rest = after;
                }
            }
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            if end == 0 {
                out.push('$');
            } else {
                out.push_str(env.get(&after[..end]).map(String::as_str).unwrap_or(""));
            }
            rest = &after[end..];
        }
    }
    out.push_str(rest);
    out
}

/// A source the interpreter has loaded: where it is and what it holds.
struct SourceFile {
    /// Directory imports from it are resolved against.
    dir: PathBuf,
    /// Repository-relative label (or `<extvar:NAME>`).
    label: PathBuf,
    text: Vec<u8>,
}

/// The import side of one evaluation: the sources loaded so far (by span
/// context, for error locations and relative imports), the import cache
/// and the search path.
struct Files<'c, 'a, 'p> {
    ctx: &'c Ctx<'a>,
    /// App directory, then the library directories (searched last first).
    search: Vec<PathBuf>,
    sources: HashMap<SpanContextId, SourceFile>,
    cache: HashMap<PathBuf, Thunk<'p>>,
    /// Why the last import failed, when it is more than "not found" (it
    /// led outside the repository, or the imported file does not parse):
    /// the crate's import error carries no reason, so it is kept here.
    import_error: Option<RenderError>,
}

impl<'p> Files<'_, '_, 'p> {
    /// Parses a source into a thunk; errors as (message, span).
    fn load(
        &mut self,
        program: &mut Program<'p>,
        path: PathBuf,
        label: PathBuf,
        text: &[u8],
    ) -> Result<Thunk<'p>, (String, Option<SpanId>)> {
        let (span_ctx, _) = program.span_manager_mut().insert_source_context(text.len());
        let dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| self.ctx.app_dir.clone());
        let this_file = label.to_string_lossy().into_owned();
        self.sources.insert(
            span_ctx,
            SourceFile {
                dir,
                label,
                text: text.to_vec(),
            },
        );
        program
            .load_source(span_ctx, text, true, &this_file)
            .map_err(|e| load_error_message(&e))
    }

    /// The thunk of an ext var or TLA: its value as a string, or parsed as code.
    fn var_thunk(
        &mut self,
        program: &mut Program<'p>,
        what: &str,
        var: &JsonnetVar,
        env: &HashMap<&'static str, String>,
        label: &Path,
    ) -> Result<Thunk<'p>, RenderError> {
        let value = envsubst(&var.value, env);
        if !var.code {
            return Ok(program.value_to_thunk(&JValue::string(&value)));
        }
        let virt = self.ctx.app_dir.join(format!("<{what}:{}>", var.name));
        let name = PathBuf::from(format!("<{what}:{}>", var.name));
        self.load(program, virt, name, value.as_bytes())
            .map_err(|(m, at)| self.error(program, label, m, at))
    }

    /// Resolves an import as go-jsonnet does, confined to the repository.
    fn resolve(&mut self, program: &Program<'p>, from: SpanId, path: &str) -> Option<PathBuf> {
        let (span_ctx, _, _) = program.span_manager().get_span(from);
        let importer_dir = self
            .sources
            .get(&span_ctx)
            .map(|s| s.dir.clone())
            .unwrap_or_else(|| self.ctx.app_dir.clone());
        let importer = self
            .sources
            .get(&span_ctx)
            .map(|s| s.label.clone())
            .unwrap_or_default();
        if Path::new(path).is_absolute() {
            self.import_error = Some(RenderError::Jsonnet {
                app: self.ctx.app_name(),
                file: importer,
                at: None,
                message: format!(
                    "import \"{path}\": absolute import paths are not allowed (imports are relative to the importing file or to directory.jsonnet.libs, inside the repository)"
                ),
            });
            return None;
        }
        let dirs = std::iter::once(importer_dir).chain(self.search.iter().rev().cloned());
        for dir in dirs {
            let candidate = dir.join(path);
            if std::fs::symlink_metadata(&candidate).is_err() {
                continue;
            }
            let inside =
                normalize_lexically(&candidate).is_some_and(|p| p.starts_with(&self.ctx.repo_root));
            let real = candidate.canonicalize().ok();
            match real {
                Some(real) if inside && real.starts_with(&self.ctx.repo_root) => {
                    if real.is_file() {
                        return Some(real);
                    }
                }
                _ => {
                    self.import_error = Some(RenderError::PathEscapes {
                        app: self.ctx.app_name(),
                        path: self.ctx.label_abs(
                            &normalize_lexically(&candidate).unwrap_or(candidate.clone()),
                        ),
                    });
                    return None;
                }
            }
        }
        None
    }

    fn read(
        &mut self,
        program: &Program<'p>,
        from: SpanId,
        path: &str,
    ) -> Option<(PathBuf, Vec<u8>)> {
        let real = self.resolve(program, from, path)?;
        let text = std::fs::read(&real).ok()?;
        Some((real, text))
    }

    /// The error for a failed evaluation of `label`.
    fn eval_error(&mut self, program: &Program<'p>, label: &Path, e: &EvalError) -> RenderError {
        if let Some(import_error) = self.import_error.take() {
            return import_error;
        }
        let (message, span) = eval_error_message(&e.kind);
        let span = span.or_else(|| {
            // Outermost first: the innermost frame in a user file is last.
            e.stack_trace.iter().rev().find_map(|item| {
                let span = trace_span(item)?;
                self.locate(program, span).map(|_| span)
            })
        });
        self.error(program, label, message, span)
    }

    fn error(
        &self,
        program: &Program<'p>,
        label: &Path,
        message: String,
        at: Option<SpanId>,
    ) -> RenderError {
        RenderError::Jsonnet {
            app: self.ctx.app_name(),
            file: label.to_path_buf(),
            at: at.and_then(|s| self.locate(program, s)),
            message,
        }
    }

    /// File, line and column of a span in a user source (`None` in the standard library).
    fn locate(&self, program: &Program<'p>, span: SpanId) -> Option<JsonnetLocation> {
        let (span_ctx, start, _) = program.span_manager().get_span(span);
        let source = self.sources.get(&span_ctx)?;
        let before = &source.text[..start.min(source.text.len())];
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let line_start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map(|i| i + 1)
            .unwrap_or(0);
        let column = String::from_utf8_lossy(&before[line_start..])
            .chars()
            .count()
            + 1;
        Some(JsonnetLocation {
            file: source.label.clone(),
            line,
            column,
        })
    }
}

impl<'p> Callbacks<'p> for Files<'_, '_, 'p> {
    fn import(
        &mut self,
        program: &mut Program<'p>,
        from: SpanId,
        path: &str,
    ) -> Result<Thunk<'p>, ImportError> {
        let real = self.resolve(program, from, path).ok_or(ImportError)?;
        if let Some(hit) = self.cache.get(&real) {
            return Ok(hit.clone());
        }
        let text = std::fs::read(&real).map_err(|_| ImportError)?;
        let label = self.ctx.label_abs(&real);
        match self.load(program, real.clone(), label.clone(), &text) {
            Ok(thunk) => {
                self.cache.insert(real, thunk.clone());
                Ok(thunk)
            }
            Err((message, at)) => {
                self.import_error = Some(self.error(program, &label, message, at));
                Err(ImportError)
            }
        }
    }

    fn import_str(
        &mut self,
        program: &mut Program<'p>,
        from: SpanId,
        path: &str,
    ) -> Result<String, ImportError> {
        let (_, text) = self.read(program, from, path).ok_or(ImportError)?;
        String::from_utf8(text).map_err(|_| ImportError)
    }

    fn import_bin(
        &mut self,
        program: &mut Program<'p>,
        from: SpanId,
        path: &str,
    ) -> Result<Vec<u8>, ImportError> {
        self.read(program, from, path)
            .map(|(_, text)| text)
            .ok_or(ImportError)
    }

    fn trace(&mut self, _program: &mut Program<'p>, message: &str, _stack: &[EvalStackTraceItem]) {
        tracing::info!(app = %self.ctx.app.name, "std.trace: {message}");
    }

    fn native_call(
        &mut self,
        _program: &mut Program<'p>,
        _name: rsjsonnet_lang::interner::InternedStr<'p>,
        _args: &[JValue<'p>],
    ) -> Result<JValue<'p>, NativeError> {
        // No native functions are registered, so std.native never returns one.
        Err(NativeError)
    }
}

fn trace_span(item: &EvalStackTraceItem) -> Option<SpanId> {
    match item {
        EvalStackTraceItem::Expr { span }
        | EvalStackTraceItem::Variable { span, .. }
        | EvalStackTraceItem::Import { span } => Some(*span),
        EvalStackTraceItem::Call { span, .. }
        | EvalStackTraceItem::ArrayItem { span, .. }
        | EvalStackTraceItem::ObjectField { span, .. } => *span,
        _ => None,
    }
}

fn type_name(t: EvalErrorValueType) -> &'static str {
    match t {
        EvalErrorValueType::Null => "null",
        EvalErrorValueType::Bool => "boolean",
        EvalErrorValueType::Number => "number",
        EvalErrorValueType::String => "string",
        EvalErrorValueType::Array => "array",
        EvalErrorValueType::Object => "object",
        EvalErrorValueType::Function => "function",
    }
}

fn load_error_message(e: &LoadError) -> (String, Option<SpanId>) {
    use rsjsonnet_lang::lexer::LexError as L;
    match e {
        LoadError::Lex(l) => {
            let (what, span) = match l {
                L::InvalidChar { span, chr } => (format!("invalid character {chr:?}"), *span),
                L::InvalidUtf8 { span, .. } => ("invalid UTF-8".to_string(), *span),
                L::UnfinishedMultilineComment { span } => ("unterminated comment".into(), *span),
                L::LeadingZeroInNumber { span } => ("number with a leading zero".into(), *span),
                L::MissingFracDigits { span } => ("missing digits after \".\"".into(), *span),
                L::MissingExpDigits { span } => ("missing exponent digits".into(), *span),
                L::MissingDigitAfterUnderscore { span } => {
                    ("missing digit after \"_\"".into(), *span)
                }
                L::ExpOverflow { span } => ("exponent too large".into(), *span),
                L::InvalidEscapeInString { span, chr } => {
                    (format!("invalid escape \\{chr} in string"), *span)
                }
                L::IncompleteUnicodeEscape { span } => {
                    ("incomplete \\u escape in string".into(), *span)
                }
                L::InvalidUtf16EscapeSequence { span, .. } => {
                    ("invalid \\u escape sequence in string".into(), *span)
                }
                L::UnfinishedString { span } => ("unterminated string".into(), *span),
                L::MissingLineBreakAfterTextBlockStart { span } => {
                    ("missing line break after |||".into(), *span)
                }
                L::MissingWhitespaceTextBlockStart { span } => {
                    ("text block lines must be indented".into(), *span)
                }
                L::InvalidTextBlockTermination { span } => {
                    ("text block not terminated correctly".into(), *span)
                }
            };
            (format!("syntax error: {what}"), Some(span))
        }
        LoadError::Parse(rsjsonnet_lang::parser::ParseError::Expected {
            span,
            expected,
            instead,
        }) => {
            let expected: Vec<String> = expected.iter().map(|t| format!("{t:?}")).collect();
            (
                format!(
                    "syntax error: expected {}, found {instead:?}",
                    expected.join(" or ")
                ),
                Some(*span),
            )
        }
        LoadError::Analyze(a) => {
            let (message, span) = match a {
                AnalyzeError::UnknownVariable { span, name } => {
                    (format!("unknown variable: {name}"), *span)
                }
                AnalyzeError::SelfOutsideObject { self_span } => {
                    ("self used outside an object".into(), *self_span)
                }
                AnalyzeError::SuperOutsideObject { super_span } => {
                    ("super used outside an object".into(), *super_span)
                }
                AnalyzeError::DollarOutsideObject { dollar_span } => {
                    ("$ used outside an object".into(), *dollar_span)
                }
                AnalyzeError::RepeatedLocalName {
                    repeated_span,
                    name,
                    ..
                } => (format!("local \"{name}\" defined twice"), *repeated_span),
                AnalyzeError::RepeatedFieldName {
                    repeated_span,
                    name,
                    ..
                } => (format!("duplicate field: {name}"), *repeated_span),
                AnalyzeError::RepeatedParamName {
                    repeated_span,
                    name,
                    ..
                } => (format!("parameter \"{name}\" given twice"), *repeated_span),
                AnalyzeError::PositionalArgAfterNamed { arg_span } => (
                    "positional argument after a named argument".into(),
                    *arg_span,
                ),
                AnalyzeError::TextBlockAsImportPath { span } => {
                    ("a text block cannot be an import path".into(), *span)
                }
                AnalyzeError::ComputedImportPath { span } => (
                    "computed imports are not allowed (the path must be a string literal)".into(),
                    *span,
                ),
            };
            (format!("static error: {message}"), Some(span))
        }
    }
}

/// A readable message for an evaluation error, and the span it points at.
fn eval_error_message(kind: &EvalErrorKind) -> (String, Option<SpanId>) {
    use EvalErrorKind as K;
    let t = |v: &EvalErrorValueType| type_name(*v);
    match kind {
        K::StackOverflow => (
            format!("max stack frames exceeded ({MAX_STACK}): too deep a recursion"),
            None,
        ),
        K::InfiniteRecursion => ("infinite recursion".into(), None),
        K::InvalidIndexedType { span, got_type } => {
            (format!("cannot index a value of type {}", t(got_type)), Some(*span))
        }
        K::InvalidSlicedType { span, got_type } => {
            (format!("cannot slice a value of type {}", t(got_type)), Some(*span))
        }
        K::SliceIndexOrStepIsNotNumber { span, got_type } => (
            format!("slice index or step must be a number, got {}", t(got_type)),
            Some(*span),
        ),
        K::StringIndexIsNotNumber { span, got_type }
        | K::ArrayIndexIsNotNumber { span, got_type } => {
            (format!("index must be a number, got {}", t(got_type)), Some(*span))
        }
        K::NumericIndexIsNotValid { span, index } => {
            (format!("index {index} is not an integer"), Some(*span))
        }
        K::NumericIndexOutOfRange {
            span,
            index,
            length,
        } => (
            format!("index {index} out of bounds (length {length})"),
            Some(*span),
        ),
        K::ObjectIndexIsNotString { span, got_type } => (
            format!("object field name must be a string, got {}", t(got_type)),
            Some(*span),
        ),
        K::RepeatedFieldName { span, name } => (format!("duplicate field: {name}"), Some(*span)),
        K::FieldNameIsNotString { span, got_type } => (
            format!("field name must be a string, got {}", t(got_type)),
            Some(*span),
        ),
        K::UnknownObjectField { span, field_name } => (
            format!("field does not exist: {field_name}"),
            Some(*span),
        ),
        K::FieldOfNonObject { span } => ("field access on a non-object".into(), Some(*span)),
        K::SuperWithoutSuperObject { span } => ("super used without a super object".into(), Some(*span)),
        K::ForSpecValueIsNotArray { span, got_type } => (
            format!("for-loop over a {}, expected an array", t(got_type)),
            Some(*span),
        ),
        K::CondIsNotBool { span, got_type } => (
            format!("condition must be a boolean, got {}", t(got_type)),
            Some(*span),
        ),
        K::CalleeIsNotFunction { span, got_type } => {
            (format!("only functions can be called, got {}", t(got_type)), *span)
        }
        K::TooManyCallArgs { span, num_params } => (
            format!("too many arguments (the function takes {num_params})"),
            *span,
        ),
        K::UnknownCallParam { span, param_name } => {
            (format!("function has no parameter {param_name}"), *span)
        }
        K::RepeatedCallParam { span, param_name } => {
            (format!("argument {param_name} given twice"), *span)
        }
        K::CallParamNotBound { span, param_name } => (
            format!("missing argument: {param_name} (a top-level function's arguments come from directory.jsonnet.tlas)"),
            *span,
        ),
        K::NativeCallFailed => ("native function failed".into(), None),
        K::InvalidUnaryOpType { span, op, rhs_type } => (
            format!("unary operator {op:?} does not take a {}", t(rhs_type)),
            Some(*span),
        ),
        K::InvalidBinaryOpTypes {
            span,
            op,
            lhs_type,
            rhs_type,
        } => (
            format!(
                "binary operator {op:?} does not take {} and {}",
                t(lhs_type),
                t(rhs_type)
            ),
            *span,
        ),
        K::NumberNotBitwiseSafe { span } => ("number is not bitwise safe".into(), *span),
        K::NumberOverflow { span } => ("number overflow".into(), *span),
        K::NumberNan { span } => ("not a number (NaN)".into(), *span),
        K::DivByZero { span } => ("division by zero".into(), *span),
        K::ShiftByNegative { span } => ("shift by a negative amount".into(), *span),
        K::InvalidStdFuncArgType {
            func_name,
            arg_index,
            expected_types,
            got_type,
        } => {
            let expected: Vec<&str> = expected_types.iter().map(|e| type_name(*e)).collect();
            (
                format!(
                    "std.{func_name}: argument {} must be {}, got {}",
                    arg_index + 1,
                    expected.join(" or "),
                    t(got_type)
                ),
                None,
            )
        }
        K::AssertFailed { span, message } => (
            match message {
                Some(m) => format!("assertion failed: {m}"),
                None => "assertion failed".into(),
            },
            Some(*span),
        ),
        K::AssertEqualFailed { lhs, rhs } => {
            (format!("std.assertEqual failed: {lhs} != {rhs}"), None)
        }
        K::ExplicitError { span, message } => (message.clone(), Some(*span)),
        K::ImportFailed { span, path } => (
            format!("import \"{path}\" not found (searched next to the importing file, in directory.jsonnet.libs and in the app directory)"),
            Some(*span),
        ),
        K::UnknownExtVar { name } => (
            format!("undefined external variable: {name} (set it in directory.jsonnet.extVars)"),
            None,
        ),
        K::ManifestFunction => ("a function cannot be output as JSON".into(), None),
        K::CompareNullInequality
        | K::CompareBooleanInequality
        | K::CompareObjectInequality
        | K::CompareFunctions => ("these values cannot be compared".into(), None),
        K::CompareDifferentTypesInequality { lhs_type, rhs_type } => (
            format!("cannot compare {} with {}", t(lhs_type), t(rhs_type)),
            None,
        ),
        K::PrimitiveEqualsNonPrimitive { got_type } => (
            format!("std.primitiveEquals does not take a {}", t(got_type)),
            None,
        ),
        K::Other { span, message } => (message.clone(), *span),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envsubst_as_argo_cd() {
        let mut env = HashMap::new();
        env.insert("ARGOCD_APP_NAME", "web".to_string());
        for (input, want) in [
            ("$ARGOCD_APP_NAME", "web"),
            ("${ARGOCD_APP_NAME}-x", "web-x"),
            ("a-$ARGOCD_APP_NAME.b", "a-web.b"),
            ("$$ARGOCD_APP_NAME", "$ARGOCD_APP_NAME"),
            ("$UNKNOWN!", "!"),
            ("cost: 5$", "cost: 5$"),
            ("${open", "${open"),
            ("plain", "plain"),
        ] {
            assert_eq!(envsubst(input, &env), want, "{input}");
        }
    }
}
