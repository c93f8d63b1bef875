//! Rendering: turning one application's source directory into Kubernetes
//! objects ([`Manifest`]s), with one renderer per kind — plain
//! [`directory`] YAML/JSON, minijinja templates ([`jinja`]), a Helm chart
//! ([`helm`], through `helm template`), a kustomization ([`kustomize`], through
//! `kustomize build` or `kubectl kustomize`) and a user command
//! ([`transform`], the seeds' `CMD` with `INDIR`/`OUTDIR`).
//!
//! This module owns renderer detection, the per-process render cache, the
//! lookup of external tools and the [`RenderError`] type. It does not fetch
//! sources (the `source` module hands it a directory already checked out and
//! confined), does not expand the app tree (`tree` reads Application objects
//! out of the result) and does not default namespaces or apply labels (`sync`
//! does). The renderers are pure functions of the files they read, except for
//! helm, kustomize and transform, whose subprocesses run at the edge through
//! [`process`] with a timeout and without a shell.
//!
//! Every error names the application and the file, directory or program at
//! fault; paths in errors and in [`ObjectOrigin`]s are repository-relative,
//! never a temporary directory.
//!
//! Every renderer's output goes through one document check (in
//! [`directory`]): a malformed document fails the app rather than being
//! skipped, since a skipped object would be pruned. Everything a render
//! reads stays inside the repository (symlinks, chart files, kustomization
//! references, transform input, which is a copy), and every renderer is
//! bounded: YAML nesting depth, jinja fuel and output size, helm/kustomize
//! output size, subprocess timeouts and descendants.

pub mod directory;
pub mod helm;
pub mod jinja;
pub mod jsonnet;
pub mod jsonnet_limit;
pub mod kustomize;
mod process;
pub mod transform;

use std::collections::{HashMap, VecDeque};
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use crate::model::{Application, Manifest, ObjectOrigin, RendererSpec};

pub use process::find_in_path;

/// Environment variable naming the helm binary (a path, or a name looked up on PATH).
pub const HELM_ENV: &str = "KUBESYNC_HELM";
/// Environment variable naming the kustomize binary, or a `kubectl` to run as
/// `kubectl kustomize` (chosen by its file name).
pub const KUSTOMIZE_ENV: &str = "KUBESYNC_KUSTOMIZE";
/// How long one helm or kustomize invocation may run, by default.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(300);
/// How many renders the cache keeps, by default (oldest evicted first).
pub const DEFAULT_CACHE_CAPACITY: usize = 512;

/// Which renderer produced (or will produce) an application's objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RendererKind {
    Directory,
    Jinja,
    Helm,
    Kustomize,
    Transform,
    /// Not a renderer: an ApplicationSet's generated Applications.
    ApplicationSet,
}

impl fmt::Display for RendererKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RendererKind::Directory => "directory",
            RendererKind::Jinja => "jinja",
            RendererKind::Helm => "helm",
            RendererKind::Kustomize => "kustomize",
            RendererKind::Transform => "transform",
            RendererKind::ApplicationSet => "applicationset",
        })
    }
}

/// What a render needs: the application and where its source is on disk.
#[derive(Debug, Clone, Copy)]
pub struct RenderInput<'a> {
    pub app: &'a Application,
    /// Directory holding the repository content at the app's revision (already confined by the source module).
    pub repo_root: &'a Path,
    /// The app's source directory inside repo_root (already resolved and confined).
    pub app_dir: &'a Path,
    /// Revision label for templates and the cache: a full commit sha, or None for an uncommitted work tree (not cached).
    pub revision: Option<&'a str>,
    /// The chart directory helm renders instead of `app_dir`: a temporary
    /// copy of it with its dependencies filled in (`chart::deps`). Value
    /// files and messages still refer to `app_dir`.
    pub chart_dir: Option<&'a Path>,
    /// Multi-source `ref` sources: a value file `$NAME/path` is `path` in
    /// the directory of the source named NAME (and must stay inside it).
    pub refs: &'a [(String, PathBuf)],
}

impl<'a> RenderInput<'a> {
    /// An input with no prepared chart and no refs.
    pub fn new(
        app: &'a Application,
        repo_root: &'a Path,
        app_dir: &'a Path,
        revision: Option<&'a str>,
    ) -> Self {
        RenderInput {
            app,
            repo_root,
            app_dir,
            revision,
            chart_dir: None,
            refs: &[],
        }
    }
}

/// The objects one application renders to, in a deterministic order.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub renderer: RendererKind,
    pub manifests: Vec<Manifest>,
    /// Things the user should know that did not stop the render (skipped
    /// kustomize configuration documents, ignored missing value files, empty
    /// output). A document that is not a valid object is an error, never a
    /// warning.
    pub warnings: Vec<String>,
}

/// A render that failed. Every message names the application and the file,
/// directory or program at fault.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// A jsonnet file that does not evaluate; `at` is where the error
    /// points (the file itself or a library it imports).
    #[error("application \"{app}\": {}: jsonnet: {message}", jsonnet_where(file, at.as_ref()))]
    Jsonnet {
        app: String,
        /// The repository-relative `*.jsonnet` file evaluated.
        file: PathBuf,
        at: Option<jsonnet::JsonnetLocation>,
        message: String,
    },
    #[error("application \"{app}\": {binary} not found: {hint}")]
    MissingBinary {
        app: String,
        binary: String,
        hint: String,
    },
    #[error("application \"{app}\": {}: {}invalid YAML{}: {message}", file.display(), doc_label(*doc), line_label(*line))]
    Yaml {
        app: String,
        /// Repository-relative file (or `transform:…` for transform output).
        file: PathBuf,
        /// 0-based document index.
        doc: usize,
        /// 1-based line within the file (or the rendered output), when known.
        line: Option<usize>,
        message: String,
    },
    /// A YAML tag (`!custom foo`) in a manifest; `error` says which and where.
    #[error("application \"{app}\": {}: {}{error}", file.display(), doc_label(*doc))]
    YamlTag {
        app: String,
        file: PathBuf,
        /// 0-based document index.
        doc: usize,
        error: Box<crate::model::yaml::YamlError>,
    },
    #[error("application \"{app}\": {}: invalid JSON{}: {message}", file.display(), line_label(*line))]
    Json {
        app: String,
        file: PathBuf,
        line: Option<usize>,
        message: String,
    },
    #[error("application \"{app}\": {}{}: template error: {message}", file.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    Template {
        app: String,
        file: PathBuf,
        line: Option<usize>,
        message: String,
    },
    #[error("application \"{app}\": helm template of chart {} failed: {stderr}", chart.display())]
    Helm {
        app: String,
        /// Repository-relative chart directory.
        chart: PathBuf,
        stderr: String,
    },
    /// A value file written as an absolute path that is not in the
    /// repository: value files are repository-relative (a leading `/` is the
    /// repository root, as in Argo CD), never a path on the machine.
    #[error("application \"{app}\": value file {file} of chart {}: absolute paths are not allowed; value files are relative to the chart directory, or to the repository root with a leading \"/\" (there is no {} in the repository)", chart.display(), file.trim_start_matches('/'))]
    AbsoluteValueFile {
        app: String,
        chart: PathBuf,
        /// As written in the Application.
        file: String,
    },
    #[error("application \"{app}\": value file {file} of chart {} not found (set ignoreMissingValueFiles to skip missing value files)", chart.display())]
    MissingValueFile {
        app: String,
        chart: PathBuf,
        /// As written in the Application.
        file: String,
    },
    #[error("application \"{app}\": kustomize build of {} failed: {stderr}", dir.display())]
    Kustomize {
        app: String,
        dir: PathBuf,
        stderr: String,
    },
    #[error(
        "application \"{app}\": transform command `{command}` failed ({status}){}",
        stderr_suffix(stderr)
    )]
    Transform {
        app: String,
        command: String,
        status: String,
        /// The last lines of the command's stderr.
        stderr: String,
    },
    #[error("application \"{app}\": `{command}` did not finish within {} and was killed", human_duration(*after))]
    Timeout {
        app: String,
        command: String,
        after: Duration,
    },
    #[error("application \"{app}\": `{command}` printed more than {} MiB; refusing output that large", limit / (1024 * 1024))]
    OutputTooLarge {
        app: String,
        command: String,
        /// Bytes.
        limit: usize,
    },
    #[error("application \"{app}\": transform program {} is not executable (chmod +x it and commit the mode)", path.display())]
    NotExecutable { app: String, path: PathBuf },
    #[error("application \"{app}\": {}: {}{error}", file.display(), doc_label(*doc))]
    InvalidObject {
        app: String,
        file: PathBuf,
        doc: usize,
        error: crate::model::ObjectError,
    },
    #[error("application \"{app}\": {option}: {message}")]
    BadOption {
        app: String,
        /// e.g. `directory.include`.
        option: String,
        message: String,
    },
    #[error("application \"{app}\": cannot render: {reason}")]
    Unsupported { app: String, reason: String },
    /// `images.pinDigests`: a tag could not be resolved to a digest.
    #[error("application \"{app}\": images.pinDigests: {message}")]
    PinDigests { app: String, message: String },
    #[error("application \"{app}\": {} leads outside the repository (symlinks and \"..\" must stay inside it)", path.display())]
    PathEscapes { app: String, path: PathBuf },
    #[error("application \"{app}\": {}: {field} entry \"{entry}\" leads outside the repository (a kustomization may use other directories of the repository, such as ../base, but nothing beyond it)", file.display())]
    KustomizeEscapes {
        app: String,
        /// Repository-relative kustomization file.
        file: PathBuf,
        /// e.g. `resources`, `configMapGenerator.files`.
        field: String,
        /// The entry as written.
        entry: String,
    },
    #[error("application \"{app}\": {}: {source}", path.display())]
    Io {
        app: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// An error a jsonnet evaluator process reported, as it worded it (the
    /// same text the evaluation in this process would give).
    #[error("{message}")]
    Relayed { app: String, message: String },
}

impl RenderError {
    /// The application the error belongs to.
    pub fn app(&self) -> &str {
        match self {
            RenderError::MissingBinary { app, .. }
            | RenderError::Yaml { app, .. }
            | RenderError::YamlTag { app, .. }
            | RenderError::Json { app, .. }
            | RenderError::Template { app, .. }
            | RenderError::Jsonnet { app, .. }
            | RenderError::Helm { app, .. }
            | RenderError::MissingValueFile { app, .. }
            | RenderError::AbsoluteValueFile { app, .. }
            | RenderError::Kustomize { app, .. }
            | RenderError::Transform { app, .. }
            | RenderError::Timeout { app, .. }
            | RenderError::NotExecutable { app, .. }
            | RenderError::OutputTooLarge { app, .. }
            | RenderError::InvalidObject { app, .. }
            | RenderError::BadOption { app, .. }
            | RenderError::Unsupported { app, .. }
            | RenderError::PinDigests { app, .. }
            | RenderError::PathEscapes { app, .. }
            | RenderError::KustomizeEscapes { app, .. }
            | RenderError::Relayed { app, .. }
            | RenderError::Io { app, .. } => app,
        }
    }
}

impl RenderError {
    /// The error for a YAML text that did not parse: a syntax error (with
    /// `context` appended, e.g. " (in helm's output)") or an unsupported tag.
    pub(crate) fn from_yaml(
        app: &str,
        file: &Path,
        doc: usize,
        error: crate::model::yaml::YamlError,
        context: &str,
    ) -> RenderError {
        use crate::model::yaml::YamlErrorKind;
        match error.kind {
            YamlErrorKind::Syntax(message) => RenderError::Yaml {
                app: app.to_string(),
                file: file.to_path_buf(),
                doc,
                line: error.line,
                message: format!("{message}{context}"),
            },
            YamlErrorKind::UnsupportedTag { .. } => RenderError::YamlTag {
                app: app.to_string(),
                file: file.to_path_buf(),
                doc,
                error: Box::new(error),
            },
        }
    }
}

/// `file:line:col` when the error is in the file evaluated, else
/// `file (at lib:line:col)`.
fn jsonnet_where(file: &Path, at: Option<&jsonnet::JsonnetLocation>) -> String {
    match at {
        Some(at) if at.file == file => format!("{}:{}:{}", file.display(), at.line, at.column),
        Some(at) => format!(
            "{} (at {}:{}:{})",
            file.display(),
            at.file.display(),
            at.line,
            at.column
        ),
        None => file.display().to_string(),
    }
}

fn doc_label(doc: usize) -> String {
    format!("document {}: ", doc + 1)
}

fn line_label(line: Option<usize>) -> String {
    line.map(|l| format!(" at line {l}")).unwrap_or_default()
}

fn stderr_suffix(stderr: &str) -> String {
    if stderr.is_empty() {
        " with no output on stderr".to_string()
    } else {
        format!(": {stderr}")
    }
}

/// `1.5s`, `2m`, `2m30s`, `500ms`.
pub(crate) fn human_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    if !ms.is_multiple_of(1000) && ms < 60_000 {
        return format!("{:.1}s", d.as_secs_f64());
    }
    let secs = d.as_secs();
    match (secs / 60, secs % 60) {
        (0, s) => format!("{s}s"),
        (m, 0) => format!("{m}m"),
        (m, s) => format!("{m}m{s}s"),
    }
}

/// The per-render context the renderers share: the app, canonical roots and
/// the repository-relative label of the app directory.
pub(crate) struct Ctx<'a> {
    pub app: &'a Application,
    /// Canonical repository root.
    pub repo_root: PathBuf,
    /// Canonical app directory (inside `repo_root`).
    pub app_dir: PathBuf,
    /// `app_dir` relative to `repo_root` (empty for the root itself).
    pub app_rel: PathBuf,
    pub revision: Option<&'a str>,
    /// What helm renders when it is not `app_dir` (see [`RenderInput::chart_dir`]).
    pub chart_dir: Option<PathBuf>,
    /// Canonical directories of the multi-source `ref` sources, by name.
    pub refs: Vec<(String, PathBuf)>,
}

impl Ctx<'_> {
    pub fn app_name(&self) -> String {
        self.app.name.to_string()
    }

    /// The repository-relative label of the app directory (`.` for the root).
    pub fn app_label(&self) -> PathBuf {
        if self.app_rel.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            self.app_rel.clone()
        }
    }

    /// Repository-relative label of a path under the app directory.
    pub fn label_in_app(&self, rel: &Path) -> PathBuf {
        self.app_rel.join(rel)
    }

    /// Repository-relative label of an absolute path (unchanged if outside).
    pub fn label_abs(&self, path: &Path) -> PathBuf {
        path.strip_prefix(&self.repo_root)
            .map(Path::to_path_buf)
            .unwrap_or_else(|_| path.to_path_buf())
    }

    pub fn io(&self, path: impl Into<PathBuf>, source: std::io::Error) -> RenderError {
        RenderError::Io {
            app: self.app_name(),
            path: path.into(),
            source,
        }
    }

    pub fn escapes(&self, path: impl Into<PathBuf>) -> RenderError {
        RenderError::PathEscapes {
            app: self.app_name(),
            path: path.into(),
        }
    }
}

/// Lexically normalises `path` (drops `.`, resolves `..` against earlier
/// components). `None` when `..` would climb above the start of a relative
/// path or above the root.
pub(crate) fn normalize_lexically(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    let mut depth = 0usize;
    for c in path.components() {
        match c {
            Component::Prefix(_) | Component::RootDir => out.push(c.as_os_str()),
            Component::CurDir => {}
            Component::ParentDir => {
                if depth == 0 {
                    return None;
                }
                out.pop();
                depth -= 1;
            }
            Component::Normal(p) => {
                out.push(p);
                depth += 1;
            }
        }
    }
    Some(out)
}

/// Tools found so far (lookups that fail are retried on the next render, so
/// installing a tool does not need a restart).
#[derive(Default)]
struct Tools {
    helm: Option<PathBuf>,
    kustomize: Option<kustomize::Tool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct CacheKey {
    revision: String,
    repo_root: PathBuf,
    app_dir: PathBuf,
    /// The renderer spec serialised to JSON (it holds JSON values, which are not `Hash`).
    spec: String,
    app: String,
    namespace: Option<String>,
    release: String,
    tier: String,
}

#[derive(Default)]
struct Cache {
    map: HashMap<CacheKey, Arc<Rendered>>,
    order: VecDeque<CacheKey>,
}

/// Renders applications. `Send + Sync`: one is shared by every worker of a
/// run. Holds the tool lookup (helm, kustomize/kubectl, found lazily) and the
/// render cache: a committed revision renders once per process; work-tree
/// renders (`revision: None`) are never cached. Concurrent identical renders
/// are not coalesced: both run, the first to finish is kept.
pub struct Renderer {
    helm: Option<PathBuf>,
    kustomize: Option<PathBuf>,
    kustomize_build_options: Option<String>,
    path_env: Option<OsString>,
    transform_env: Vec<(OsString, OsString)>,
    command_timeout: Duration,
    cache_capacity: usize,
    tools: Mutex<Tools>,
    cache: Mutex<Cache>,
}

impl Default for Renderer {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Renderer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Renderer")
            .field("helm", &self.helm)
            .field("kustomize", &self.kustomize)
            .field("command_timeout", &self.command_timeout)
            .field("cache_capacity", &self.cache_capacity)
            .finish_non_exhaustive()
    }
}

impl Renderer {
    pub fn new() -> Self {
        Renderer {
            helm: None,
            kustomize: None,
            kustomize_build_options: None,
            path_env: None,
            transform_env: Vec::new(),
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
            cache_capacity: DEFAULT_CACHE_CAPACITY,
            tools: Mutex::new(Tools::default()),
            cache: Mutex::new(Cache::default()),
        }
    }

    /// Uses this helm binary instead of `$KUBESYNC_HELM` or `helm` on PATH.
    pub fn with_helm(mut self, path: impl Into<PathBuf>) -> Self {
        self.helm = Some(path.into());
        self
    }

    /// Uses this kustomize binary (or a `kubectl`, run as `kubectl kustomize`)
    /// instead of `$KUBESYNC_KUSTOMIZE` or the PATH lookup.
    pub fn with_kustomize(mut self, path: impl Into<PathBuf>) -> Self {
        self.kustomize = Some(path.into());
        self
    }

    /// Kustomize build options (Argo CD's `kustomize.buildOptions` syntax)
    /// instead of `$KUBESYNC_KUSTOMIZE_BUILD_OPTIONS`.
    pub fn with_kustomize_build_options(mut self, options: impl Into<String>) -> Self {
        self.kustomize_build_options = Some(options.into());
        self
    }

    /// The PATH used to find tools and transform programs, and given to every
    /// subprocess (default: this process's PATH).
    pub fn with_search_path(mut self, path: impl Into<OsString>) -> Self {
        self.path_env = Some(path.into());
        self
    }

    /// Passes an extra environment variable to transform commands (their
    /// environment is otherwise limited to an allow-list; see [`transform`]).
    pub fn with_transform_env(
        mut self,
        name: impl Into<OsString>,
        value: impl Into<OsString>,
    ) -> Self {
        self.transform_env.push((name.into(), value.into()));
        self
    }

    /// How long one helm or kustomize invocation may run (transform commands
    /// use their own `timeout`).
    pub fn with_command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// How many renders to keep; 0 turns the cache off.
    pub fn with_cache_capacity(mut self, capacity: usize) -> Self {
        self.cache_capacity = capacity;
        self
    }

    /// Chooses a renderer from the files of a source directory: `Chart.yaml`
    /// → helm, `kustomization.yaml`/`.yml`/`Kustomization` → kustomize, any
    /// `*.j2` file (at any depth, hidden directories aside) → jinja, else
    /// directory.
    pub fn detect(app_dir: &Path) -> RendererKind {
        if app_dir.join("Chart.yaml").is_file() {
            return RendererKind::Helm;
        }
        if kustomize::KUSTOMIZATION_FILES
            .iter()
            .any(|f| app_dir.join(f).is_file())
        {
            return RendererKind::Kustomize;
        }
        if jinja::has_templates(app_dir) {
            return RendererKind::Jinja;
        }
        RendererKind::Directory
    }

    /// Renders one application. A committed revision is rendered once per
    /// process; the same `Arc` is returned for identical inputs.
    pub fn render(&self, input: &RenderInput) -> Result<Arc<Rendered>, RenderError> {
        let app = input.app;
        let span = tracing::info_span!("render", app = %app.name);
        let _enter = span.enter();

        if let RendererSpec::Unsupported(reason) = &app.source.renderer {
            return Err(RenderError::Unsupported {
                app: app.name.to_string(),
                reason: reason.clone(),
            });
        }
        let ctx = self.context(input)?;
        let key = self.cache_key(input, &ctx);
        if let Some(key) = &key {
            if let Some(hit) = self.cache.lock().map.get(key) {
                tracing::debug!("render cache hit");
                return Ok(Arc::clone(hit));
            }
        }

        let mut rendered = match &app.source.renderer {
            RendererSpec::Auto => match Self::detect(&ctx.app_dir) {
                RendererKind::Directory => {
                    directory::render(&ctx, &crate::model::DirectoryOptions::default())?
                }
                RendererKind::Jinja => jinja::render(&ctx, &crate::model::JinjaOptions::default())?,
                RendererKind::Helm => helm::render(
                    &ctx,
                    &crate::model::HelmOptions::default(),
                    &self.helm_tool(&ctx)?,
                    self.search_path(),
                    self.command_timeout,
                )?,
                RendererKind::Kustomize => kustomize::render(
                    &ctx,
                    &crate::model::KustomizeOptions::default(),
                    &self.kustomize_tool(&ctx)?,
                    &self.kustomize_build_options(&ctx)?,
                    self.search_path(),
                    self.command_timeout,
                )?,
                // detect never chooses transform (nor a set).
                RendererKind::Transform | RendererKind::ApplicationSet => {
                    directory::render(&ctx, &crate::model::DirectoryOptions::default())?
                }
            },
            RendererSpec::Directory(o) => directory::render(&ctx, o)?,
            RendererSpec::Jinja(o) => jinja::render(&ctx, o)?,
            RendererSpec::Helm(o) => helm::render(
                &ctx,
                o,
                &self.helm_tool(&ctx)?,
                self.search_path(),
                self.command_timeout,
            )?,
            RendererSpec::Kustomize(o) => kustomize::render(
                &ctx,
                o,
                &self.kustomize_tool(&ctx)?,
                &self.kustomize_build_options(&ctx)?,
                self.search_path(),
                self.command_timeout,
            )?,
            RendererSpec::Transform(o) => {
                transform::render(&ctx, o, self.search_path(), &self.transform_env)?
            }
            RendererSpec::Unsupported(reason) => {
                return Err(RenderError::Unsupported {
                    app: ctx.app_name(),
                    reason: reason.clone(),
                })
            }
            // The tree expands sets; a renderer has nothing to render.
            RendererSpec::ApplicationSet(_) => {
                return Err(RenderError::Unsupported {
                    app: ctx.app_name(),
                    reason: "an ApplicationSet is expanded by the tree, not rendered".into(),
                })
            }
        };
        if app.images.pin_digests {
            crate::image::render::pin_manifests(&mut rendered.manifests).map_err(|message| {
                RenderError::PinDigests {
                    app: ctx.app_name(),
                    message,
                }
            })?;
        }
        if rendered.manifests.is_empty() {
            rendered.warnings.push(format!(
                "{} rendered no objects ({} renderer)",
                ctx.app_label().display(),
                rendered.renderer
            ));
        }
        tracing::debug!(
            renderer = %rendered.renderer,
            objects = rendered.manifests.len(),
            "rendered"
        );
        let rendered = Arc::new(rendered);
        if let Some(key) = key {
            let mut cache = self.cache.lock();
            if let Some(existing) = cache.map.get(&key) {
                return Ok(Arc::clone(existing));
            }
            while cache.map.len() >= self.cache_capacity {
                match cache.order.pop_front() {
                    Some(old) => {
                        cache.map.remove(&old);
                    }
                    None => break,
                }
            }
            cache.order.push_back(key.clone());
            cache.map.insert(key, Arc::clone(&rendered));
        }
        Ok(rendered)
    }

    /// Drops every cached render.
    pub fn clear_cache(&self) {
        let mut cache = self.cache.lock();
        cache.map.clear();
        cache.order.clear();
    }

    fn context<'a>(&self, input: &RenderInput<'a>) -> Result<Ctx<'a>, RenderError> {
        let name = input.app.name.to_string();
        let repo_root = input
            .repo_root
            .canonicalize()
            .map_err(|e| RenderError::Io {
                app: name.clone(),
                path: input.repo_root.to_path_buf(),
                source: e,
            })?;
        let app_dir = match input.app_dir.canonicalize() {
            Ok(d) => d,
            Err(e) => {
                let label = input
                    .app_dir
                    .strip_prefix(input.repo_root)
                    .unwrap_or(input.app_dir)
                    .to_path_buf();
                return Err(RenderError::Io {
                    app: name,
                    path: label,
                    source: std::io::Error::new(
                        e.kind(),
                        format!("source directory does not exist or cannot be read: {e}"),
                    ),
                });
            }
        };
        let app_rel = match app_dir.strip_prefix(&repo_root) {
            Ok(rel) => rel.to_path_buf(),
            Err(_) => {
                return Err(RenderError::PathEscapes {
                    app: name,
                    path: input
                        .app_dir
                        .strip_prefix(input.repo_root)
                        .unwrap_or(input.app_dir)
                        .to_path_buf(),
                })
            }
        };
        if !app_dir.is_dir() {
            return Err(RenderError::Io {
                app: name,
                path: app_rel,
                source: std::io::Error::other("the source path is not a directory"),
            });
        }
        let mut refs = Vec::with_capacity(input.refs.len());
        for (name, dir) in input.refs {
            let real = dir.canonicalize().map_err(|e| RenderError::Io {
                app: input.app.name.to_string(),
                path: PathBuf::from(format!("${name}")),
                source: e,
            })?;
            refs.push((name.clone(), real));
        }
        Ok(Ctx {
            app: input.app,
            repo_root,
            app_dir,
            app_rel,
            revision: input.revision,
            chart_dir: input.chart_dir.map(Path::to_path_buf),
            refs,
        })
    }

    fn cache_key(&self, input: &RenderInput, ctx: &Ctx) -> Option<CacheKey> {
        if self.cache_capacity == 0 {
            return None;
        }
        let revision = input.revision?;
        let mut spec = serde_json::to_string(&input.app.source.renderer).ok()?;
        // The refs' contents feed value files: a different ref is a different render.
        for (name, dir) in &ctx.refs {
            spec.push_str(&format!("|${name}={}", dir.display()));
        }
        Some(CacheKey {
            revision: revision.to_string(),
            repo_root: ctx.repo_root.clone(),
            app_dir: ctx.app_dir.clone(),
            spec,
            app: input.app.name.to_string(),
            namespace: input.app.destination.namespace.clone(),
            release: input.app.helm_release_name().to_string(),
            tier: input.app.tier.to_string(),
        })
    }

    fn search_path(&self) -> Option<&OsStr> {
        self.path_env.as_deref()
    }

    fn path_or_env(&self) -> OsString {
        match &self.path_env {
            Some(p) => p.clone(),
            None => std::env::var_os("PATH").unwrap_or_default(),
        }
    }

    /// Resolves a configured binary: a path with a `/` must exist; a bare name
    /// is looked up on the search path.
    fn resolve_binary(&self, name: &Path) -> Option<PathBuf> {
        if name.components().count() > 1 || name.is_absolute() {
            return process::is_executable(name).then(|| name.to_path_buf());
        }
        find_in_path(name.as_os_str(), &self.path_or_env())
    }

    fn helm_tool(&self, ctx: &Ctx) -> Result<PathBuf, RenderError> {
        if let Some(found) = &self.tools.lock().helm {
            return Ok(found.clone());
        }
        let missing = |hint: String| RenderError::MissingBinary {
            app: ctx.app_name(),
            binary: "helm".into(),
            hint,
        };
        let found = if let Some(explicit) = &self.helm {
            self.resolve_binary(explicit).ok_or_else(|| {
                missing(format!(
                    "the configured helm binary {} does not exist or is not executable",
                    explicit.display()
                ))
            })?
        } else if let Some(env) = std::env::var_os(HELM_ENV).filter(|v| !v.is_empty()) {
            self.resolve_binary(Path::new(&env)).ok_or_else(|| {
                missing(format!(
                    "${HELM_ENV} is {} but that does not exist or is not executable",
                    Path::new(&env).display()
                ))
            })?
        } else {
            self.resolve_binary(Path::new("helm")).ok_or_else(|| {
                missing(format!(
                    "the chart of {} needs helm 3 or later on PATH (or set ${HELM_ENV} to its path)",
                    ctx.app_label().display()
                ))
            })?
        };
        tracing::debug!(helm = %found.display(), "found helm");
        self.tools.lock().helm = Some(found.clone());
        Ok(found)
    }

    /// The kustomize build options: the builder's, else
    /// `$KUBESYNC_KUSTOMIZE_BUILD_OPTIONS`; a bad one fails the app naming it.
    fn kustomize_build_options(&self, ctx: &Ctx) -> Result<Vec<String>, RenderError> {
        let text = match &self.kustomize_build_options {
            Some(t) => t.clone(),
            None => std::env::var(kustomize::BUILD_OPTIONS_ENV).unwrap_or_default(),
        };
        kustomize::parse_build_options(&text).map_err(|e| RenderError::Kustomize {
            app: ctx.app_name(),
            dir: ctx.app_label().to_path_buf(),
            stderr: format!("{e} (${})", kustomize::BUILD_OPTIONS_ENV),
        })
    }

    fn kustomize_tool(&self, ctx: &Ctx) -> Result<kustomize::Tool, RenderError> {
        if let Some(found) = &self.tools.lock().kustomize {
            return Ok(found.clone());
        }
        let missing = |hint: String| RenderError::MissingBinary {
            app: ctx.app_name(),
            binary: "kustomize".into(),
            hint,
        };
        let configured = self.kustomize.clone().or_else(|| {
            std::env::var_os(KUSTOMIZE_ENV)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        });
        let found = if let Some(path) = configured {
            let resolved = self.resolve_binary(&path).ok_or_else(|| {
                missing(format!(
                    "the configured kustomize binary {} (${KUSTOMIZE_ENV} or --kustomize) does not exist or is not executable",
                    path.display()
                ))
            })?;
            kustomize::Tool::from_path(resolved)
        } else if let Some(k) = self.resolve_binary(Path::new("kustomize")) {
            kustomize::Tool::Kustomize(k)
        } else if let Some(k) = self.resolve_binary(Path::new("kubectl")) {
            kustomize::Tool::Kubectl(k)
        } else {
            return Err(missing(format!(
                "{} is a kustomization; install kustomize or kubectl on PATH (or set ${KUSTOMIZE_ENV} to one of them)",
                ctx.app_label().display()
            )));
        };
        self.tools.lock().kustomize = Some(found.clone());
        Ok(found)
    }
}

/// Builds a [`Manifest`] origin.
pub(crate) fn origin(file: impl Into<PathBuf>, doc: usize) -> ObjectOrigin {
    ObjectOrigin {
        file: file.into(),
        doc,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_display_is_lowercase() {
        assert_eq!(RendererKind::Kustomize.to_string(), "kustomize");
        assert_eq!(RendererKind::Jinja.to_string(), "jinja");
    }

    #[test]
    fn durations_read_like_a_human_wrote_them() {
        assert_eq!(human_duration(Duration::from_millis(300)), "300ms");
        assert_eq!(human_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(human_duration(Duration::from_secs(2)), "2s");
        assert_eq!(human_duration(Duration::from_secs(120)), "2m");
        assert_eq!(human_duration(Duration::from_secs(150)), "2m30s");
    }

    #[test]
    fn lexical_normalisation_refuses_to_climb_out() {
        assert_eq!(
            normalize_lexically(Path::new("a/./b/../c")),
            Some(PathBuf::from("a/c"))
        );
        assert_eq!(normalize_lexically(Path::new("a/../../c")), None);
        assert_eq!(
            normalize_lexically(Path::new("/r/a/../b")),
            Some(PathBuf::from("/r/b"))
        );
    }

    #[test]
    fn detection() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(Renderer::detect(d.path()), RendererKind::Directory);
        std::fs::create_dir(d.path().join("sub")).unwrap();
        std::fs::write(d.path().join("sub/x.yaml.j2"), "a: 1").unwrap();
        assert_eq!(Renderer::detect(d.path()), RendererKind::Jinja);
        std::fs::write(d.path().join("Kustomization"), "resources: []").unwrap();
        assert_eq!(Renderer::detect(d.path()), RendererKind::Kustomize);
        std::fs::write(d.path().join("Chart.yaml"), "name: x").unwrap();
        assert_eq!(Renderer::detect(d.path()), RendererKind::Helm);
    }

    #[test]
    fn renderer_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Renderer>();
        check::<RenderError>();
    }
}
