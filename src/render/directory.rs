//! The directory renderer: plain `*.yaml`, `*.yml` and `*.json` files and
//! `*.jsonnet` programs, as
//! `kubectl apply -f DIR` and Argo CD's directory source read them.
//!
//! - Files are read in sorted path order; hidden files and directories
//!   (`.git`, `.helmignore`, …) are skipped; subdirectories only with `recurse`.
//! - `include`/`exclude` are Argo CD globs (`*`, `?`, `[…]`, `{a,b}`), each
//!   matched against the path relative to the app directory and against the
//!   file name; a `*` also crosses `/`.
//! - YAML files may hold many documents; JSON files one object or an array.
//!   `kind: List` (and any `…List` with `items`) is flattened.
//! - Every non-empty document must be a Kubernetes object, as kubectl
//!   requires: a mapping with string `apiVersion` and `kind`, a `metadata`
//!   mapping with a string `name` (and string labels and annotations).
//!   Anything else — a scalar or list, a values file without `apiVersion`
//!   and `kind`, `Kind:` for `kind:`, `apiVersion: 5` — is an error naming
//!   the file, the document and the field, never a skip: a skipped object
//!   would be pruned from the cluster. Only kustomize configuration kinds
//!   (`kustomize.config.k8s.io`, `config.kubernetes.io`) are skipped, with a
//!   warning.
//! - `*.jsonnet` files are evaluated ([`super::jsonnet`], with the
//!   options of `directory.jsonnet`) and their output read as a JSON file
//!   (one object or an array; nested arrays flattened, `null` skipped).
//! - A symlink is followed only when it leads inside the repository.
//!
//! The walking and document handling here are shared with the jinja,
//! transform, helm and kustomize renderers. This file reads files; it runs
//! nothing.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use serde_json::Value;

use super::{jsonnet, origin, Ctx, RenderError, Rendered, RendererKind};
use crate::model::{
    check_metadata, identity, is_application, looks_like_application, yaml, DirectoryOptions,
    Manifest, ObjectError, ObjectRef,
};

/// Renders a plain directory.
pub(crate) fn render(ctx: &Ctx, opts: &DirectoryOptions) -> Result<Rendered, RenderError> {
    let app = ctx.app_name();
    let include = compile_glob(&app, "directory.include", opts.include.as_deref())?;
    let exclude = compile_glob(&app, "directory.exclude", opts.exclude.as_deref())?;
    let filter = Filter { include, exclude };
    let files = walk(
        &Walk {
            app: &app,
            root: &ctx.app_dir,
            recurse: opts.recurse,
            hidden: false,
            allowed: &[&ctx.repo_root],
            label: &|rel| ctx.label_in_app(rel),
        },
        &|rel| (is_manifest_file(rel) || jsonnet::is_jsonnet_file(rel)) && filter.matches(rel),
    )?;
    let mut out = Collected::default();
    for f in files {
        let label = ctx.label_in_app(&f.rel);
        if jsonnet::is_jsonnet_file(&f.rel) {
            let value = jsonnet::evaluate(ctx, &opts.jsonnet, &f.path, &label)?;
            out.jsonnet_output(&app, &label, value)?;
        } else {
            out.file(&app, &label, &f.path)?;
        }
    }
    Ok(out.into_rendered(RendererKind::Directory))
}

/// Objects and warnings gathered so far.
#[derive(Debug, Default)]
pub(crate) struct Collected {
    pub manifests: Vec<Manifest>,
    pub warnings: Vec<String>,
}

impl Collected {
    pub fn into_rendered(self, renderer: RendererKind) -> Rendered {
        Rendered {
            renderer,
            manifests: self.manifests,
            warnings: self.warnings,
        }
    }

    /// Reads and collects one `.yaml`/`.yml`/`.json` file; `label` is what
    /// origins and errors call it.
    pub fn file(&mut self, app: &str, label: &Path, path: &Path) -> Result<(), RenderError> {
        let text = std::fs::read_to_string(path).map_err(|e| RenderError::Io {
            app: app.to_string(),
            path: label.to_path_buf(),
            source: e,
        })?;
        if has_extension(path, "json") {
            self.json_text(app, label, &text)
        } else {
            self.yaml_text(app, label, &text)
        }
    }

    /// Collects every document of a multi-document YAML text.
    pub fn yaml_text(&mut self, app: &str, label: &Path, text: &str) -> Result<(), RenderError> {
        let docs =
            yaml::documents(text).map_err(|e| RenderError::from_yaml(app, label, e.doc, e, ""))?;
        for (doc, value) in docs {
            self.document(app, label, doc, value)?;
        }
        Ok(())
    }

    /// Collects a JSON file: one object, or an array of them (each its own document).
    pub fn json_text(&mut self, app: &str, label: &Path, text: &str) -> Result<(), RenderError> {
        let value: Value = serde_json::from_str(text).map_err(|e| RenderError::Json {
            app: app.to_string(),
            file: label.to_path_buf(),
            line: Some(e.line()).filter(|l| *l > 0),
            message: strip_json_location(&e.to_string()),
        })?;
        match value {
            Value::Array(items) => {
                for (doc, item) in items.into_iter().enumerate() {
                    self.document(app, label, doc, item)?;
                }
                Ok(())
            }
            Value::Null => Ok(()),
            other => self.document(app, label, 0, other),
        }
    }

    /// Collects what a jsonnet file evaluated to, as Argo CD reads it: one
    /// object, or an array of them (nested arrays are flattened too, and
    /// `null` items skipped); each object is a document (its index in the
    /// flattened array), and `List`s are flattened as in YAML.
    pub fn jsonnet_output(
        &mut self,
        app: &str,
        label: &Path,
        value: Value,
    ) -> Result<(), RenderError> {
        let mut items = Vec::new();
        let mut stack = vec![value];
        while let Some(v) = stack.pop() {
            match v {
                Value::Array(list) => stack.extend(list.into_iter().rev()),
                Value::Null => {}
                other => items.push(other),
            }
        }
        for (doc, item) in items.into_iter().enumerate() {
            self.document(app, label, doc, item)?;
        }
        Ok(())
    }

    /// Collects one parsed document: an object, a list to flatten, or a
    /// kustomize configuration to skip with a warning. Anything else — a
    /// scalar, a list, a mapping without `apiVersion` and `kind`, or an
    /// object with a malformed `apiVersion`, `kind` or `metadata` — is an
    /// error, as kubectl would refuse it: skipping it would let a sync prune
    /// the live object it was meant to describe.
    pub fn document(
        &mut self,
        app: &str,
        label: &Path,
        doc: usize,
        value: Value,
    ) -> Result<(), RenderError> {
        let invalid = |error| RenderError::InvalidObject {
            app: app.to_string(),
            file: label.to_path_buf(),
            doc,
            error,
        };
        let (api_version, kind) = identity(&value).map_err(invalid)?;
        if kind.ends_with("List") {
            if let Some(Value::Array(items)) = value.get("items") {
                let items = items.clone();
                for item in items {
                    self.document(app, label, doc, item)?;
                }
                return Ok(());
            }
        }
        let group = crate::model::split_api_version(api_version).0;
        if group == "kustomize.config.k8s.io" || group == "config.kubernetes.io" {
            self.warnings.push(format!(
                "{}: document {}: skipped: a kustomize configuration ({kind}), not a Kubernetes object",
                label.display(),
                doc + 1
            ));
            return Ok(());
        }
        // Application objects are the model's to check (an invalid child is
        // a configuration error of the tree, reported under its own name).
        if !looks_like_application(&value) && !is_application(&value) {
            check_metadata(&value).map_err(invalid)?;
            // A hook may be named by `generateName` (created anew each run);
            // anything else is applied, which takes a name.
            // (Excluded objects are never applied; an unreadable hook
            // annotation is refused by the sync, naming the annotation.)
            let generated = crate::model::hook::generate_name(&value).is_some()
                && !matches!(
                    crate::model::hook::role(&value),
                    Ok(crate::model::hook::Role::Object)
                );
            if !generated {
                ObjectRef::from_object(&value).map_err(|e| match e {
                    ObjectError::Missing {
                        field: "metadata.name",
                        ..
                    } if crate::model::hook::generate_name(&value).is_some() => {
                        RenderError::InvalidObject {
                            app: app.to_string(),
                            file: label.to_path_buf(),
                            doc,
                            error: ObjectError::GenerateNameOutsideHook {
                                kind: kind.to_string(),
                                generate_name: crate::model::hook::generate_name(&value)
                                    .unwrap_or_default(),
                            },
                        }
                    }
                    e => invalid(e),
                })?;
            }
        }
        self.manifests.push(Manifest {
            object: value,
            origin: origin(label, doc),
        });
        Ok(())
    }
}

/// serde_json appends " at line X column Y"; the line is reported separately.
fn strip_json_location(msg: &str) -> String {
    match msg.find(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

pub(crate) fn has_extension(path: &Path, ext: &str) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case(ext))
}

/// `*.yaml`, `*.yml` or `*.json`.
pub(crate) fn is_manifest_file(path: &Path) -> bool {
    ["yaml", "yml", "json"]
        .iter()
        .any(|e| has_extension(path, e))
}

/// Compiles an Argo CD style glob (`{a,b}` alternatives; `*` crosses `/`).
pub(crate) fn compile_glob(
    app: &str,
    option: &str,
    pattern: Option<&str>,
) -> Result<Option<GlobSet>, RenderError> {
    let Some(pattern) = pattern.map(str::trim).filter(|p| !p.is_empty()) else {
        return Ok(None);
    };
    let glob = GlobBuilder::new(pattern)
        .literal_separator(false)
        .build()
        .map_err(|e| RenderError::BadOption {
            app: app.to_string(),
            option: option.to_string(),
            message: format!("\"{pattern}\" is not a valid glob: {}", e.kind()),
        })?;
    let mut set = GlobSetBuilder::new();
    set.add(glob);
    set.build().map(Some).map_err(|e| RenderError::BadOption {
        app: app.to_string(),
        option: option.to_string(),
        message: format!("\"{pattern}\" is not a valid glob: {e}"),
    })
}

/// Include/exclude filter on paths relative to the app directory.
pub(crate) struct Filter {
    pub include: Option<GlobSet>,
    pub exclude: Option<GlobSet>,
}

impl Filter {
    pub fn matches(&self, rel: &Path) -> bool {
        let name = rel.file_name().map(Path::new).unwrap_or(rel);
        let hit = |g: &GlobSet| g.is_match(rel) || g.is_match(name);
        if let Some(ex) = &self.exclude {
            if hit(ex) {
                return false;
            }
        }
        match &self.include {
            Some(inc) => hit(inc),
            None => true,
        }
    }
}

/// A file found by [`walk`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileEntry {
    /// Path relative to the walked root, through symlinks as named.
    pub rel: PathBuf,
    /// The path to read (symlinks resolved).
    pub path: PathBuf,
}

/// What to walk and how to name what is found.
pub(crate) struct Walk<'a> {
    pub app: &'a str,
    /// Canonical directory to walk.
    pub root: &'a Path,
    pub recurse: bool,
    /// Whether hidden entries (`.name`) are listed too.
    pub hidden: bool,
    /// Canonical directories symlinks may lead into.
    pub allowed: &'a [&'a Path],
    /// The label of a path relative to `root`, for errors.
    pub label: &'a dyn Fn(&Path) -> PathBuf,
}

/// Lists the files under `w.root` that `want` accepts (given their relative
/// path), sorted by path, skipping hidden entries unless `w.hidden`. A symlink leading outside
/// `w.allowed` is an error when it is a wanted file or a directory to descend
/// into.
pub(crate) fn walk(w: &Walk, want: &dyn Fn(&Path) -> bool) -> Result<Vec<FileEntry>, RenderError> {
    let mut out = Vec::new();
    let mut visited = HashSet::new();
    visited.insert(w.root.to_path_buf());
    walk_dir(w, want, w.root, Path::new(""), &mut visited, &mut out)?;
    out.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(out)
}

fn walk_dir(
    w: &Walk,
    want: &dyn Fn(&Path) -> bool,
    dir: &Path,
    rel_dir: &Path,
    visited: &mut HashSet<PathBuf>,
    out: &mut Vec<FileEntry>,
) -> Result<(), RenderError> {
    let io = |rel: &Path, e: std::io::Error| RenderError::Io {
        app: w.app.to_string(),
        path: (w.label)(rel),
        source: e,
    };
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| io(rel_dir, e))? {
        let entry = entry.map_err(|e| io(rel_dir, e))?;
        names.push(entry.file_name());
    }
    names.sort();
    for name in names {
        if !w.hidden && name.to_string_lossy().starts_with('.') {
            continue;
        }
        let path = dir.join(&name);
        let rel = rel_dir.join(&name);
        let meta = std::fs::symlink_metadata(&path).map_err(|e| io(&rel, e))?;
        let (real, is_dir) = if meta.file_type().is_symlink() {
            let wanted_file = want(&rel);
            let target = match path.canonicalize() {
                Ok(t) => t,
                Err(e) if wanted_file => {
                    return Err(io(
                        &rel,
                        std::io::Error::new(e.kind(), format!("broken symlink: {e}")),
                    ))
                }
                Err(_) => continue,
            };
            let is_dir = target.is_dir();
            if !(wanted_file || (is_dir && w.recurse)) {
                continue;
            }
            if !w.allowed.iter().any(|a| target.starts_with(a)) {
                return Err(RenderError::PathEscapes {
                    app: w.app.to_string(),
                    path: (w.label)(&rel),
                });
            }
            (target, is_dir)
        } else {
            (path, meta.is_dir())
        };
        if is_dir {
            if w.recurse && visited.insert(real.clone()) {
                walk_dir(w, want, &real, &rel, visited, out)?;
            }
        } else if real.is_file() && want(&rel) {
            out.push(FileEntry { rel, path: real });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn collect_yaml(text: &str) -> Result<Collected, RenderError> {
        let mut c = Collected::default();
        c.yaml_text("web", Path::new("apps/web/x.yaml"), text)?;
        Ok(c)
    }

    #[test]
    fn lists_are_flattened() {
        let c = collect_yaml(
            "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: a}}\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: b}}\n",
        )
        .unwrap();
        assert_eq!(c.manifests.len(), 2);
        assert_eq!(c.manifests[1].object["metadata"]["name"], "b");
        assert_eq!(c.manifests[1].origin.doc, 0);
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    }

    #[test]
    fn malformed_documents_are_errors_naming_document_and_field() {
        let ok = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ok}\n---\n";
        for (doc, want) in [
            ("replicas: 3\n", "not a Kubernetes object: it has neither apiVersion nor kind (kubectl refuses it too)"),
            ("- 1\n", "not a Kubernetes object: the document is a sequence, not a mapping"),
            ("just text\n", "not a Kubernetes object: the document is a string, not a mapping"),
            ("apiVersion: v1\nKind: ConfigMap\nmetadata: {name: a}\n", "kind is missing (found \"Kind\"; field names are case-sensitive)"),
            ("kind: ConfigMap\nmetadata: {name: a}\n", "apiVersion is missing"),
            ("apiVersion: 5\nkind: ConfigMap\nmetadata: {name: a}\n", "apiVersion must be a string, found a number"),
            ("apiVersion: v1\nkind: {a: b}\nmetadata: {name: a}\n", "kind must be a string, found a mapping"),
            ("apiVersion: v1\nkind: ''\nmetadata: {name: a}\n", "kind is missing"),
            ("apiVersion: v1\nkind: ConfigMap\nmetadata: [a]\n", "metadata must be a mapping, found a sequence"),
            ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: 5}\n", "metadata.name must be a string, found a number"),
            ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, labels: {n: 1}}\n", "metadata.labels.n must be a string, found a number"),
            ("Kind: ConfigMap\nmetadata: {name: a}\n", "not a Kubernetes object: it has neither apiVersion nor kind (kubectl refuses it too); found \"Kind\", but field names are case-sensitive"),
        ] {
            let e = collect_yaml(&format!("{ok}{doc}")).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("application \"web\": apps/web/x.yaml: document 2: {want}"),
                "{doc}"
            );
        }
        // Items of a List are held to the same rules.
        let e = collect_yaml(
            "apiVersion: v1\nkind: List\nitems:\n- {kind: ConfigMap, metadata: {name: a}}\n",
        )
        .unwrap_err();
        assert!(
            e.to_string().ends_with("document 1: apiVersion is missing"),
            "{e}"
        );
    }

    #[test]
    fn kustomize_configuration_is_skipped() {
        let c = collect_yaml(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [a.yaml]\n",
        )
        .unwrap();
        assert!(c.manifests.is_empty());
        assert_eq!(c.warnings.len(), 1);
        assert!(
            c.warnings[0].contains("kustomize configuration"),
            "{:?}",
            c.warnings
        );
    }

    #[test]
    fn object_without_name_is_an_error() {
        let e = collect_yaml(
            "apiVersion: v1\nkind: ConfigMap\n---\napiVersion: v1\nkind: Secret\nmetadata: {}\n",
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "application \"web\": apps/web/x.yaml: document 1: ConfigMap has no metadata.name"
        );
    }

    #[test]
    fn invalid_yaml_names_document_and_line() {
        let e =
            collect_yaml("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\nkey: [1, 2\n")
                .unwrap_err();
        match &e {
            RenderError::Yaml { doc, line, .. } => {
                assert_eq!(*doc, 1);
                assert!(line.is_some());
            }
            other => panic!("{other:?}"),
        }
        assert!(
            e.to_string().starts_with(
                "application \"web\": apps/web/x.yaml: document 2: invalid YAML at line"
            ),
            "{e}"
        );
    }

    #[test]
    fn json_arrays_and_objects() {
        let mut c = Collected::default();
        c.json_text(
            "web",
            Path::new("a.json"),
            &json!([
                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}},
                {"apiVersion": "v1", "kind": "List", "items": [
                    {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b"}}
                ]}
            ])
            .to_string(),
        )
        .unwrap();
        assert_eq!(c.manifests.len(), 2);
        assert_eq!(c.manifests[1].origin.doc, 1);
        let e = c
            .json_text("web", Path::new("b.json"), "{\n  \"a\": 1,\n}")
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "application \"web\": b.json: invalid JSON at line 3: trailing comma"
        );
    }

    #[test]
    fn filters_match_relative_path_or_file_name() {
        let g = |p: &str| compile_glob("a", "x", Some(p)).unwrap();
        let f = Filter {
            include: g("{*.yaml,*.json}"),
            exclude: g("test-*"),
        };
        assert!(f.matches(Path::new("deploy.yaml")));
        assert!(f.matches(Path::new("sub/deploy.yaml")));
        assert!(f.matches(Path::new("a.json")));
        assert!(!f.matches(Path::new("a.yml")));
        assert!(!f.matches(Path::new("test-x.yaml")));
        assert!(!f.matches(Path::new("sub/test-x.yaml")));
        let only_sub = Filter {
            include: g("sub/*"),
            exclude: None,
        };
        assert!(only_sub.matches(Path::new("sub/a.yaml")));
        assert!(!only_sub.matches(Path::new("a.yaml")));
        let e = compile_glob("web", "directory.include", Some("{a,b")).unwrap_err();
        assert!(
            e.to_string().starts_with(
                "application \"web\": directory.include: \"{a,b\" is not a valid glob"
            ),
            "{e}"
        );
    }
}
