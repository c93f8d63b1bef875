use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::object::{check_metadata, type_name, ObjectError};
use super::{
    argo, parse_duration, validate_dns1123_label, AppName, IgnoreRule, ModelError, ObjectOrigin,
    RevisionSpec, ARGOCD_API_VERSION, KUBESYNC_API_VERSION,
};

/// Guardrail class of an application. `App` may not write cluster-scoped
/// objects or into namespaces owned by the system tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    System,
    App,
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Tier::System => "system",
            Tier::App => "app",
        })
    }
}

/// Which manifest kind an application was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Flavor {
    /// `kubesync.dev/v1alpha1`
    Kubesync,
    /// `argoproj.io/v1alpha1`
    ArgoCd,
}

/// A path inside a repository: relative, normalised (`a/b`, or `.` for the
/// root), never containing `..`. Symlink escapes are checked by `source`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RepoPath(String);

impl RepoPath {
    pub fn new(path: &str) -> Result<Self, String> {
        if path.starts_with('/') || path.starts_with('\\') {
            return Err(format!(
                "\"{path}\" is absolute; paths are relative to the repository root"
            ));
        }
        let mut parts = Vec::new();
        for part in path.split('/') {
            match part {
                "" | "." => {}
                ".." => {
                    return Err(format!(
                        "\"{path}\" contains \"..\"; paths must stay inside their repository"
                    ))
                }
                p if p.contains('\0') => return Err("path contains a NUL byte".into()),
                p => parts.push(p),
            }
        }
        Ok(RepoPath(if parts.is_empty() {
            ".".to_string()
        } else {
            parts.join("/")
        }))
    }

    pub fn root() -> Self {
        RepoPath(".".into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn as_path(&self) -> &Path {
        Path::new(&self.0)
    }

    pub fn is_root(&self) -> bool {
        self.0 == "."
    }
}

impl fmt::Display for RepoPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Options of the plain-directory renderer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DirectoryOptions {
    pub recurse: bool,
    /// Glob (Argo CD syntax, `{a,b}` alternatives allowed) a file must match.
    pub include: Option<String>,
    /// Glob a file must not match.
    pub exclude: Option<String>,
    /// How `*.jsonnet` files of the directory are evaluated (Argo CD's
    /// `directory.jsonnet`).
    #[serde(default, skip_serializing_if = "JsonnetOptions::is_empty")]
    pub jsonnet: JsonnetOptions,
}

/// One jsonnet external variable or top-level argument: a string, or jsonnet
/// code when `code` is set (Argo CD's `JsonnetVar`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct JsonnetVar {
    pub name: String,
    pub value: String,
    #[serde(default)]
    pub code: bool,
}

/// Options of jsonnet evaluation in a directory app (Argo CD's
/// `directory.jsonnet`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JsonnetOptions {
    /// `std.extVar` values.
    pub ext_vars: Vec<JsonnetVar>,
    /// Top-level arguments: passed when a file evaluates to a function.
    pub tlas: Vec<JsonnetVar>,
    /// Library search directories, relative to the repository root.
    pub libs: Vec<String>,
}

impl JsonnetOptions {
    pub fn is_empty(&self) -> bool {
        self.ext_vars.is_empty() && self.tlas.is_empty() && self.libs.is_empty()
    }
}

/// Options of the minijinja renderer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JinjaOptions {
    pub vars: Map<String, Value>,
}

/// One `--set` parameter of a Helm render.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HelmParameter {
    pub name: String,
    pub value: String,
    /// `--set-string` instead of `--set`.
    pub force_string: bool,
}

/// Options of the Helm renderer (`helm template`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HelmOptions {
    /// Defaults to the application name.
    pub release_name: Option<String>,
    /// Value files, relative to the chart directory.
    pub value_files: Vec<String>,
    /// Inline values (kubesync `values` map, Argo CD `values` string and
    /// `valuesObject`, deep-merged in that order).
    pub values: Option<Value>,
    pub parameters: Vec<HelmParameter>,
    /// Leave the chart's `crds/` out (CRDs are included by default).
    pub skip_crds: bool,
    /// Ignore value files that do not exist (Argo CD `ignoreMissingValueFiles`).
    pub ignore_missing_value_files: bool,
}

/// Options of the kustomize renderer, applied as an overlay on the base.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KustomizeOptions {
    pub name_prefix: Option<String>,
    pub name_suffix: Option<String>,
    pub namespace: Option<String>,
    /// Image overrides as kustomize `edit set image` takes them:
    /// `name=newName:tag`, `name:tag`, `name@digest`.
    pub images: Vec<String>,
    pub common_labels: BTreeMap<String, String>,
    pub common_annotations: BTreeMap<String, String>,
}

impl KustomizeOptions {
    pub fn is_empty(&self) -> bool {
        *self == KustomizeOptions::default()
    }
}

/// Options of the transform renderer: a user command run without a shell with
/// `INDIR` (the source) and `OUTDIR` (an empty directory) set.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TransformOptions {
    /// Program and arguments; a program with a `/` is relative to the app's
    /// source directory.
    pub command: Vec<String>,
    #[serde(with = "duration_secs")]
    pub timeout: Duration,
}

/// The default time a transform command may run.
pub const DEFAULT_TRANSFORM_TIMEOUT: Duration = Duration::from_secs(120);

/// How an application's source becomes objects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RendererSpec {
    /// Detected from the source: `Chart.yaml` → helm, `kustomization.yaml` →
    /// kustomize, `*.j2` → jinja, else directory.
    Auto,
    Directory(DirectoryOptions),
    Jinja(JinjaOptions),
    Helm(HelmOptions),
    Kustomize(KustomizeOptions),
    Transform(TransformOptions),
    /// A source kubesync cannot render (an Argo CD plugin, jsonnet, …); the
    /// app fails at render time with this reason, the rest of the tree goes on.
    Unsupported(String),
    /// Not a source: an ApplicationSet, whose generators produce the app's
    /// children (see `tree::appset`).
    ApplicationSet(Box<super::AppSetSpec>),
}

impl RendererSpec {
    /// Short name as shown in `tree` and `plan`.
    pub fn kind_name(&self) -> &'static str {
        match self {
            RendererSpec::Auto => "auto",
            RendererSpec::Directory(_) => "directory",
            RendererSpec::Jinja(_) => "jinja",
            RendererSpec::Helm(_) => "helm",
            RendererSpec::Kustomize(_) => "kustomize",
            RendererSpec::Transform(_) => "transform",
            RendererSpec::Unsupported(_) => "unsupported",
            RendererSpec::ApplicationSet(_) => "applicationset",
        }
    }
}

/// Where an application's manifests come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Source {
    /// `None`: the repository of the parent application.
    pub repo_url: Option<String>,
    /// `None`: the revision of the parent application (or the work tree at the root).
    pub target_revision: Option<RevisionSpec>,
    pub path: RepoPath,
    pub renderer: RendererSpec,
    /// A chart from a Helm chart repository or OCI registry (Argo CD's
    /// `chart:`): `repo_url` is the repository, `path` is unused and the
    /// chart's own directory is what renders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chart: Option<ChartRef>,
    /// Argo CD multi-source `ref:`: other sources' value files reach this
    /// source's files as `$NAME/path`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ref_name: Option<String>,
    /// A `ref:` source naming neither `path` nor `chart`: it only lends its
    /// files to other sources and renders nothing itself.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ref_only: bool,
}

impl Source {
    /// A source of `repo_url` at `path`, rendered by `renderer` (no chart, no `ref`).
    pub fn new(
        repo_url: Option<String>,
        target_revision: Option<RevisionSpec>,
        path: RepoPath,
        renderer: RendererSpec,
    ) -> Self {
        Source {
            repo_url,
            target_revision,
            path,
            renderer,
            chart: None,
            ref_name: None,
            ref_only: false,
        }
    }
}

/// A chart named in a Helm repository: its name and the version or semver
/// constraint asked for (`1.2.3`, `1.2.x`, `>=1.0 <2`, `*`; empty = the
/// highest non-prerelease version).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ChartRef {
    pub name: String,
    pub version: String,
}

/// Where an application's objects go.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Destination {
    /// Default namespace for namespaced objects that name none.
    pub namespace: Option<String>,
    /// Argo CD `destination.server` / `name`, kept for display; kubesync
    /// syncs the cluster it is connected to.
    pub server: Option<String>,
    pub name: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Automated {
    pub prune: bool,
    pub self_heal: bool,
    /// Let prune delete every object of an app that now renders none
    /// (Argo CD's `allowEmpty`); without it such a sync fails instead.
    #[serde(default)]
    pub allow_empty: bool,
}

/// How long dependents wait for an app to become Healthy, by default.
pub const DEFAULT_WAIT_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncPolicy {
    pub automated: Option<Automated>,
    pub create_namespace: bool,
    /// How long dependents wait for this app to become Healthy.
    #[serde(with = "duration_secs")]
    pub wait_timeout: Duration,
    /// Argo CD `syncOptions` as written (`CreateNamespace=true` is also mapped
    /// onto `create_namespace`).
    pub sync_options: Vec<String>,
    /// Argo CD `syncPolicy.retry`: how a failed sync is tried again.
    #[serde(default)]
    pub retry: Option<RetryPolicy>,
    /// The Argo CD Application carries `resources-finalizer.argocd.argoproj.io`:
    /// when it leaves the tree, its objects are deleted with it.
    #[serde(default)]
    pub cascade_delete: bool,
    /// Generated by an ApplicationSet: its policy for when the set stops
    /// generating the app.
    #[serde(default)]
    pub generated_by: Option<super::GeneratedBy>,
}

/// Argo CD's `syncPolicy.retry`: a failed sync is tried again up to `limit`
/// more times (unlimited when negative — bounded by the app's wait timeout
/// in kubesync), waiting `duration`, then `factor` times longer each time,
/// at most `max_duration`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetryPolicy {
    pub limit: i64,
    #[serde(with = "duration_secs")]
    pub duration: Duration,
    pub factor: f64,
    #[serde(with = "duration_secs")]
    pub max_duration: Duration,
}

impl Eq for RetryPolicy {}

impl Default for RetryPolicy {
    /// Argo CD's defaults: 5 s, doubling, at most 3 min.
    fn default() -> Self {
        RetryPolicy {
            limit: 0,
            duration: Duration::from_secs(5),
            factor: 2.0,
            max_duration: Duration::from_secs(180),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `attempt` (1 for the first retry), or
    /// `None` when the limit is reached.
    pub fn backoff(&self, attempt: u32) -> Option<Duration> {
        if self.limit >= 0 && i64::from(attempt) > self.limit {
            return None;
        }
        let exp = i32::try_from(attempt.saturating_sub(1)).unwrap_or(i32::MAX);
        let secs = self.duration.as_secs_f64() * self.factor.max(1.0).powi(exp);
        let capped = secs.min(self.max_duration.as_secs_f64());
        Some(Duration::try_from_secs_f64(capped).unwrap_or(self.max_duration))
    }
}

impl Default for SyncPolicy {
    fn default() -> Self {
        SyncPolicy {
            automated: None,
            create_namespace: false,
            wait_timeout: DEFAULT_WAIT_TIMEOUT,
            sync_options: Vec::new(),
            retry: None,
            cascade_delete: false,
            generated_by: None,
        }
    }
}

impl SyncPolicy {
    pub fn prune(&self) -> bool {
        self.automated.map(|a| a.prune).unwrap_or(false)
    }

    pub fn self_heal(&self) -> bool {
        self.automated.map(|a| a.self_heal).unwrap_or(false)
    }

    pub fn allow_empty(&self) -> bool {
        self.automated.map(|a| a.allow_empty).unwrap_or(false)
    }

    /// `RespectIgnoreDifferences=true`: an apply takes ignored fields from
    /// the live object instead of resetting them to git's values.
    pub fn respect_ignore_differences(&self) -> bool {
        self.options().respect_ignore_differences
    }

    /// The app-level `syncOptions`, read (validated when the app was
    /// loaded; an option that does not read gives the defaults).
    pub fn options(&self) -> crate::model::object_options::AppSyncOptions {
        crate::model::object_options::app_sync_options(&self.sync_options).unwrap_or_default()
    }
}

/// One application of the tree, whichever kind it was read from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Application {
    pub name: AppName,
    pub flavor: Flavor,
    pub tier: Tier,
    pub source: Source,
    /// Further sources of an Argo CD multi-source app (`spec.sources[1..]`,
    /// `source` being the first): each renders into the same app, except
    /// `ref`-only sources, which lend their files to the others' value files.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_sources: Vec<Source>,
    pub destination: Destination,
    /// Explicit dependencies (`spec.dependsOn`, or the
    /// `kubesync.dev/depends-on` annotation on an Argo CD Application).
    pub depends_on: Vec<AppName>,
    pub sync_policy: SyncPolicy,
    /// `argocd.argoproj.io/sync-wave` (0 when absent): among siblings, a
    /// higher wave waits for every lower wave.
    pub sync_wave: i32,
    /// The Argo CD project the app names (`spec.project`); kubesync's own
    /// kind has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// `spec.ignoreDifferences`: fields diff, sync status and the skip
    /// decision leave out (the settings file adds global ones).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore_differences: Vec<IgnoreRule>,
    /// What to do with the images the app renders (`spec.images`).
    #[serde(default)]
    pub images: ImagePolicy,
    /// Its `kubesync.dev/notify-webhook` annotation in git: the app's own
    /// completion-signal webhook (checked where it is used: an invalid URL
    /// is ignored with a warning, never fails the tree).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_webhook: Option<String>,
    pub origin: ObjectOrigin,
}

/// `spec.images` of a kubesync Application.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImagePolicy {
    /// `pinDigests: true`: every workload image given by tag is resolved to
    /// the registry's digest while rendering and written as
    /// `repo:tag@sha256:…`, so the cluster never runs an unpinned tag of
    /// this app.
    pub pin_digests: bool,
}

impl Application {
    /// Parses one Application manifest of either kind. `origin` names the file
    /// and document, for error messages.
    pub fn from_object(obj: &Value, origin: &ObjectOrigin) -> Result<Self, ModelError> {
        let ctx = Ctx::new(origin, obj);
        let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        match (api_version, obj.get("kind").and_then(Value::as_str)) {
            (KUBESYNC_API_VERSION, Some("Application")) => parse_kubesync(obj, &ctx),
            (ARGOCD_API_VERSION, Some("Application")) => argo::parse(obj, &ctx),
            (KUBESYNC_API_VERSION, Some("ApplicationSet")) => {
                super::appset::parse(obj, &ctx, Flavor::Kubesync)
            }
            (ARGOCD_API_VERSION, Some("ApplicationSet")) => {
                super::appset::parse(obj, &ctx, Flavor::ArgoCd)
            }
            (_, Some("ApplicationSet")) => Err(ctx.err(
                "apiVersion",
                format!(
                    "unsupported ApplicationSet apiVersion \"{api_version}\" (expected {KUBESYNC_API_VERSION} or {ARGOCD_API_VERSION})"
                ),
            )),
            (_, Some("Application")) => Err(ctx.err(
                "apiVersion",
                format!(
                    "unsupported Application apiVersion \"{api_version}\" (expected {KUBESYNC_API_VERSION} or {ARGOCD_API_VERSION})"
                ),
            )),
            _ => Err(ctx.err("kind", "not an Application")),
        }
    }

    /// The release name a Helm render uses.
    pub fn helm_release_name(&self) -> &str {
        match &self.source.renderer {
            RendererSpec::Helm(HelmOptions {
                release_name: Some(r),
                ..
            }) => r,
            _ => self.name.as_str(),
        }
    }
}

/// Whether `obj` is an Application or ApplicationSet of a kind kubesync
/// reads (either group): a node of the tree, never applied as an object.
pub fn is_application(obj: &Value) -> bool {
    super::is_application_set(obj)
        || (obj.get("kind").and_then(Value::as_str) == Some("Application")
            && matches!(
                obj.get("apiVersion").and_then(Value::as_str),
                Some(KUBESYNC_API_VERSION | ARGOCD_API_VERSION)
            ))
}

/// Whether `obj` claims to be an Application in some group (used to report a
/// wrong apiVersion instead of silently treating it as a plain object).
pub fn looks_like_application(obj: &Value) -> bool {
    matches!(
        obj.get("kind").and_then(Value::as_str),
        Some("Application" | "ApplicationSet")
    ) && obj
        .get("apiVersion")
        .and_then(Value::as_str)
        .map(|v| v.starts_with("kubesync.") || v.starts_with("argoproj.io/"))
        .unwrap_or(false)
}

/// Reads the root manifest: a YAML file holding one or more Applications.
pub fn load_root(path: &Path) -> Result<Vec<Application>, ModelError> {
    let err = |doc: usize, message: String| ModelError {
        file: path.to_path_buf(),
        doc,
        app: None,
        field: String::new(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| {
        err(
            0,
            format!("cannot read the root manifest: {e} (pass --root PATH)"),
        )
    })?;
    let docs = super::yaml::documents(&text).map_err(|e| err(e.doc, e.to_string()))?;
    let mut apps = Vec::new();
    for (doc, value) in docs {
        let origin = ObjectOrigin {
            file: path.to_path_buf(),
            doc,
        };
        if !is_application(&value) && !looks_like_application(&value) {
            return Err(err(
                doc,
                "the root manifest may only contain Application or ApplicationSet objects".into(),
            ));
        }
        apps.push(Application::from_object(&value, &origin)?);
    }
    if apps.is_empty() {
        return Err(err(0, "the root manifest contains no Application".into()));
    }
    Ok(apps)
}

/// Error context while parsing one manifest: file, document and app name.
pub(super) struct Ctx<'a> {
    pub origin: &'a ObjectOrigin,
    pub app: Option<String>,
}

impl<'a> Ctx<'a> {
    pub(super) fn new(origin: &'a ObjectOrigin, obj: &Value) -> Self {
        let app = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .map(str::to_string);
        Ctx { origin, app }
    }

    pub fn err(&self, field: &str, message: impl Into<String>) -> ModelError {
        ModelError {
            file: self.origin.file.clone(),
            doc: self.origin.doc,
            app: self.app.clone(),
            field: field.to_string(),
            message: message.into(),
        }
    }

    /// An optional string field.
    pub fn opt_str(
        &self,
        obj: &Value,
        key: &str,
        path: &str,
    ) -> Result<Option<String>, ModelError> {
        match obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            // YAML turns `v1.2`-like or numeric revisions into numbers; accept them as text.
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(Value::Bool(b)) => Ok(Some(b.to_string())),
            Some(other) => Err(self.err(path, wrong_type("a string", other))),
        }
    }

    pub fn opt_bool(&self, obj: &Value, key: &str, path: &str) -> Result<Option<bool>, ModelError> {
        match obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) if s == "true" || s == "false" => Ok(Some(s == "true")),
            Some(other) => Err(self.err(path, wrong_type("true or false", other))),
        }
    }

    pub fn opt_map<'v>(
        &self,
        obj: &'v Value,
        key: &str,
        path: &str,
    ) -> Result<Option<&'v Map<String, Value>>, ModelError> {
        match obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(m)) => Ok(Some(m)),
            Some(other) => Err(self.err(path, wrong_type("a mapping", other))),
        }
    }

    pub fn string_list(
        &self,
        obj: &Value,
        key: &str,
        path: &str,
    ) -> Result<Vec<String>, ModelError> {
        match obj.get(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::String(s) => Ok(s.clone()),
                    Value::Number(n) => Ok(n.to_string()),
                    other => Err(self.err(&format!("{path}[{i}]"), wrong_type("a string", other))),
                })
                .collect(),
            Some(other) => Err(self.err(path, wrong_type("a sequence of strings", other))),
        }
    }

    pub fn string_map(
        &self,
        obj: &Value,
        key: &str,
        path: &str,
    ) -> Result<BTreeMap<String, String>, ModelError> {
        let mut out = BTreeMap::new();
        if let Some(m) = self.opt_map(obj, key, path)? {
            for (k, v) in m {
                let v = match v {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    other => {
                        return Err(self.err(&format!("{path}.{k}"), wrong_type("a string", other)))
                    }
                };
                out.insert(k.clone(), v);
            }
        }
        Ok(out)
    }

    /// Rejects keys of `m` not in `known` (kubesync's own kind is strict so
    /// that a typo such as `dependOn` is an error, not a silent no-op).
    pub fn only_known(
        &self,
        m: &Map<String, Value>,
        known: &[&str],
        path: &str,
    ) -> Result<(), ModelError> {
        for k in m.keys() {
            if !known.contains(&k.as_str()) {
                let field = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                return Err(self.err(
                    &field,
                    format!("unknown field (known fields: {})", known.join(", ")),
                ));
            }
        }
        Ok(())
    }

    /// `spec`, which every Application and ApplicationSet must have as a
    /// mapping.
    pub fn spec<'v>(&self, obj: &'v Value) -> Result<&'v Value, ModelError> {
        match obj.get("spec") {
            Some(s @ Value::Object(_)) => Ok(s),
            None | Some(Value::Null) => Err(self.err("spec", "is required")),
            Some(other) => Err(self.err("spec", wrong_type("a mapping", other))),
        }
    }

    /// `metadata.name`, which must be a string (YAML `name: 12345` is a
    /// number, and Kubernetes would refuse it), and a valid [`AppName`].
    pub fn name(&self, obj: &Value) -> Result<AppName, ModelError> {
        let name = match obj.get("metadata").and_then(|m| m.get("name")) {
            None | Some(Value::Null) => return Err(self.err("metadata.name", "is required")),
            Some(Value::String(s)) => s.clone(),
            Some(other) => return Err(self.err("metadata.name", wrong_type("a string", other))),
        };
        AppName::new(name).map_err(|e| self.err("metadata.name", e))
    }

    /// The metadata every object must get right (`metadata` a mapping,
    /// `namespace` a string, `labels`/`annotations` mappings of strings),
    /// checked by the same rules as rendered objects.
    pub fn metadata(&self, obj: &Value) -> Result<(), ModelError> {
        let wrong = |e: ObjectError| match e {
            ObjectError::WrongType {
                field,
                expected,
                found,
            } => self.err(&field, format!("must be {expected}, found {found}")),
            ObjectError::Missing { field, .. } => self.err(field, "is required"),
            other => self.err("", other.to_string()),
        };
        match obj.get("metadata") {
            None | Some(Value::Null) => return Err(self.err("metadata.name", "is required")),
            Some(Value::Object(m)) => {
                if let Some(ns) = m
                    .get("namespace")
                    .filter(|v| !v.is_null() && !v.is_string())
                {
                    return Err(self.err("metadata.namespace", wrong_type("a string", ns)));
                }
            }
            Some(other) => return Err(self.err("metadata", wrong_type("a mapping", other))),
        }
        check_metadata(obj).map_err(wrong)
    }

    pub fn namespace_name(
        &self,
        ns: Option<String>,
        path: &str,
    ) -> Result<Option<String>, ModelError> {
        match ns {
            Some(ns) if ns.is_empty() => Ok(None),
            Some(ns) => {
                validate_dns1123_label(&ns).map_err(|e| self.err(path, e))?;
                Ok(Some(ns))
            }
            None => Ok(None),
        }
    }

    pub fn revision(
        &self,
        rev: Option<String>,
        path: &str,
    ) -> Result<Option<RevisionSpec>, ModelError> {
        rev.map(|r| r.parse::<RevisionSpec>().map_err(|e| self.err(path, e)))
            .transpose()
    }

    pub fn repo_path(&self, p: Option<String>, path: &str) -> Result<RepoPath, ModelError> {
        match p {
            None => Ok(RepoPath::root()),
            Some(p) => RepoPath::new(&p).map_err(|e| self.err(path, e)),
        }
    }

    pub fn sync_wave(&self, obj: &Value) -> Result<i32, ModelError> {
        match obj
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(super::SYNC_WAVE_ANNOTATION))
        {
            None | Some(Value::Null) => Ok(0),
            Some(Value::String(s)) => s.trim().parse::<i32>().map_err(|_| {
                self.err(
                    &format!("metadata.annotations.{}", super::SYNC_WAVE_ANNOTATION),
                    format!("\"{s}\" is not an integer"),
                )
            }),
            Some(other) => Err(self.err(
                &format!("metadata.annotations.{}", super::SYNC_WAVE_ANNOTATION),
                wrong_type("an integer string", other),
            )),
        }
    }

    pub fn depends_on(&self, names: Vec<String>, path: &str) -> Result<Vec<AppName>, ModelError> {
        let mut out: Vec<AppName> = Vec::new();
        for (i, n) in names.into_iter().enumerate() {
            let n = AppName::new(n.trim()).map_err(|e| self.err(&format!("{path}[{i}]"), e))?;
            if !out.contains(&n) {
                out.push(n);
            }
        }
        Ok(out)
    }
}

/// "must be a string, found a number": the message of every wrong-type error.
pub(super) fn wrong_type(expected: &str, found: &Value) -> String {
    format!("must be {expected}, found {}", type_name(found))
}

fn parse_kubesync(obj: &Value, ctx: &Ctx) -> Result<Application, ModelError> {
    ctx.metadata(obj)?;
    let name = ctx.name(obj)?;
    let spec = ctx.spec(obj)?;
    if let Some(m) = spec.as_object() {
        ctx.only_known(
            m,
            &[
                "tier",
                "source",
                "destination",
                "dependsOn",
                "syncPolicy",
                "ignoreDifferences",
                "images",
            ],
            "spec",
        )?;
    }
    let tier = match ctx.opt_str(spec, "tier", "spec.tier")?.as_deref() {
        None | Some("app") => Tier::App,
        Some("system") => Tier::System,
        Some(other) => {
            return Err(ctx.err(
                "spec.tier",
                format!("\"{other}\" is not a tier (system or app)"),
            ))
        }
    };

    let source_v = spec
        .get("source")
        .ok_or_else(|| ctx.err("spec.source", "is required"))?;
    let source_m = ctx
        .opt_map(spec, "source", "spec.source")?
        .ok_or_else(|| ctx.err("spec.source", "is required"))?;
    ctx.only_known(
        source_m,
        &[
            "repoURL",
            "targetRevision",
            "path",
            "helm",
            "kustomize",
            "directory",
            "jinja",
            "transform",
        ],
        "spec.source",
    )?;
    let repo_url = ctx
        .opt_str(source_v, "repoURL", "spec.source.repoURL")?
        .filter(|s| !s.is_empty());
    let target_revision = ctx.revision(
        ctx.opt_str(source_v, "targetRevision", "spec.source.targetRevision")?,
        "spec.source.targetRevision",
    )?;
    let path = ctx.repo_path(
        ctx.opt_str(source_v, "path", "spec.source.path")?,
        "spec.source.path",
    )?;
    let renderer = kubesync_renderer(source_v, ctx)?;

    if let Some(m) = ctx.opt_map(spec, "destination", "spec.destination")? {
        ctx.only_known(m, &["namespace", "server", "name"], "spec.destination")?;
    }
    let destination = argo::destination(spec, ctx)?;

    let depends_on = ctx.depends_on(
        ctx.string_list(spec, "dependsOn", "spec.dependsOn")?,
        "spec.dependsOn",
    )?;
    if depends_on.contains(&name) {
        return Err(ctx.err("spec.dependsOn", format!("\"{name}\" depends on itself")));
    }

    let mut sync_policy = SyncPolicy::default();
    if let Some(m) = ctx.opt_map(spec, "syncPolicy", "spec.syncPolicy")? {
        ctx.only_known(
            m,
            &["automated", "createNamespace", "wait", "syncOptions"],
            "spec.syncPolicy",
        )?;
        let sp = spec.get("syncPolicy").unwrap_or(&Value::Null);
        if let Some(a) = ctx.opt_map(sp, "automated", "spec.syncPolicy.automated")? {
            ctx.only_known(
                a,
                &["prune", "selfHeal", "allowEmpty"],
                "spec.syncPolicy.automated",
            )?;
            let av = sp.get("automated").unwrap_or(&Value::Null);
            sync_policy.automated = Some(Automated {
                prune: ctx
                    .opt_bool(av, "prune", "spec.syncPolicy.automated.prune")?
                    .unwrap_or(false),
                self_heal: ctx
                    .opt_bool(av, "selfHeal", "spec.syncPolicy.automated.selfHeal")?
                    .unwrap_or(false),
                allow_empty: ctx
                    .opt_bool(av, "allowEmpty", "spec.syncPolicy.automated.allowEmpty")?
                    .unwrap_or(false),
            });
        }
        sync_policy.create_namespace = ctx
            .opt_bool(sp, "createNamespace", "spec.syncPolicy.createNamespace")?
            .unwrap_or(false);
        if let Some(w) = ctx.opt_map(sp, "wait", "spec.syncPolicy.wait")? {
            ctx.only_known(w, &["timeout"], "spec.syncPolicy.wait")?;
            if let Some(t) = ctx.opt_str(
                sp.get("wait").unwrap_or(&Value::Null),
                "timeout",
                "spec.syncPolicy.wait.timeout",
            )? {
                sync_policy.wait_timeout = parse_duration(&t)
                    .map_err(|e| ctx.err("spec.syncPolicy.wait.timeout", e.to_string()))?;
            }
        }
        sync_policy.sync_options =
            ctx.string_list(sp, "syncOptions", "spec.syncPolicy.syncOptions")?;
        crate::model::object_options::app_sync_options(&sync_policy.sync_options)
            .map_err(|e| ctx.err("spec.syncPolicy.syncOptions", e))?;
        if sync_policy
            .sync_options
            .iter()
            .any(|o| o == "CreateNamespace=true")
        {
            sync_policy.create_namespace = true;
        }
    }
    sync_policy.generated_by = super::generated_by(obj);

    let mut images = ImagePolicy::default();
    if let Some(m) = ctx.opt_map(spec, "images", "spec.images")? {
        ctx.only_known(m, &["pinDigests"], "spec.images")?;
        images.pin_digests = ctx
            .opt_bool(
                spec.get("images").unwrap_or(&Value::Null),
                "pinDigests",
                "spec.images.pinDigests",
            )?
            .unwrap_or(false);
    }

    Ok(Application {
        name,
        flavor: Flavor::Kubesync,
        tier,
        source: Source::new(repo_url, target_revision, path, renderer),
        extra_sources: Vec::new(),
        destination,
        depends_on,
        sync_policy,
        sync_wave: ctx.sync_wave(obj)?,
        project: None,
        ignore_differences: super::ignore::parse_rules(
            spec,
            "ignoreDifferences",
            ctx,
            "spec.ignoreDifferences",
        )?,
        images,
        notify_webhook: super::notify_webhook_of(obj),
        origin: ctx.origin.clone(),
    })
}

/// The renderer block of a kubesync source: at most one of helm, kustomize,
/// directory, jinja, transform.
fn kubesync_renderer(source: &Value, ctx: &Ctx) -> Result<RendererSpec, ModelError> {
    let present: Vec<&str> = ["helm", "kustomize", "directory", "jinja", "transform"]
        .into_iter()
        .filter(|k| !matches!(source.get(*k), None | Some(Value::Null)))
        .collect();
    if present.len() > 1 {
        return Err(ctx.err(
            "spec.source",
            format!("choose one renderer, not {}", present.join(" and ")),
        ));
    }
    let Some(kind) = present.first() else {
        return Ok(RendererSpec::Auto);
    };
    let path = format!("spec.source.{kind}");
    let m = ctx
        .opt_map(source, kind, &path)?
        .cloned()
        .unwrap_or_default();
    let v = Value::Object(m.clone());
    Ok(match *kind {
        "helm" => {
            ctx.only_known(
                &m,
                &[
                    "releaseName",
                    "valueFiles",
                    "values",
                    "valuesObject",
                    "parameters",
                    "skipCrds",
                    "ignoreMissingValueFiles",
                ],
                &path,
            )?;
            RendererSpec::Helm(argo::helm_options(&v, ctx, &path)?)
        }
        "kustomize" => {
            ctx.only_known(
                &m,
                &[
                    "namePrefix",
                    "nameSuffix",
                    "namespace",
                    "images",
                    "commonLabels",
                    "commonAnnotations",
                ],
                &path,
            )?;
            RendererSpec::Kustomize(argo::kustomize_options(&v, ctx, &path)?)
        }
        "directory" => {
            ctx.only_known(&m, &["recurse", "include", "exclude", "jsonnet"], &path)?;
            if let Some(Value::Object(j)) = m.get("jsonnet") {
                ctx.only_known(j, &["extVars", "tlas", "libs"], &format!("{path}.jsonnet"))?;
            }
            RendererSpec::Directory(argo::directory_options(&v, ctx, &path)?)
        }
        "jinja" => {
            ctx.only_known(&m, &["vars"], &path)?;
            RendererSpec::Jinja(JinjaOptions {
                vars: ctx
                    .opt_map(&v, "vars", &format!("{path}.vars"))?
                    .cloned()
                    .unwrap_or_default(),
            })
        }
        _ => {
            ctx.only_known(&m, &["command", "timeout"], &path)?;
            let command = ctx.string_list(&v, "command", &format!("{path}.command"))?;
            if command.is_empty() || command[0].is_empty() {
                return Err(ctx.err(&format!("{path}.command"), "must name a program"));
            }
            let timeout = match ctx.opt_str(&v, "timeout", &format!("{path}.timeout"))? {
                Some(t) => parse_duration(&t)
                    .map_err(|e| ctx.err(&format!("{path}.timeout"), e.to_string()))?,
                None => DEFAULT_TRANSFORM_TIMEOUT,
            };
            RendererSpec::Transform(TransformOptions { command, timeout })
        }
    })
}

mod duration_secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
    }
}
