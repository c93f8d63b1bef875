//! Shared fixtures of the `render_*` integration tests: a temporary
//! repository, Applications parsed from YAML, and short views of a render.
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kubesync::model::{Application, ObjectOrigin};
use kubesync::render::{RenderError, RenderInput, Rendered, Renderer};

/// A temporary repository.
pub struct Repo {
    pub dir: tempfile::TempDir,
}

impl Repo {
    pub fn new() -> Self {
        Repo {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes a file, creating its directories.
    pub fn write(&self, rel: &str, text: &str) -> &Self {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, text).expect("write");
        self
    }

    /// Writes an executable script.
    pub fn script(&self, rel: &str, text: &str) -> &Self {
        self.write(rel, text);
        let p = self.path(rel);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        self
    }

    pub fn mkdir(&self, rel: &str) -> &Self {
        std::fs::create_dir_all(self.path(rel)).expect("mkdir");
        self
    }
}

/// Parses a kubesync Application from YAML.
pub fn app(yaml: &str) -> Application {
    let value: serde_json::Value = serde_yaml::from_str(yaml).expect("application yaml");
    Application::from_object(
        &value,
        &ObjectOrigin {
            file: "root.yaml".into(),
            doc: 0,
        },
    )
    .unwrap_or_else(|e| panic!("invalid application: {e}"))
}

/// An Application named `name` with the given `source` block (YAML flow or
/// block, indented under `source:`).
pub fn app_with(name: &str, namespace: Option<&str>, source: &str) -> Application {
    let ns = namespace
        .map(|n| format!("  destination: {{namespace: {n}}}\n"))
        .unwrap_or_default();
    app(&format!(
        "apiVersion: kubesync.dev/v1alpha1\nkind: Application\nmetadata: {{name: {name}}}\nspec:\n  source: {source}\n{ns}"
    ))
}

pub fn render(
    renderer: &Renderer,
    repo: &Repo,
    app: &Application,
    revision: Option<&str>,
) -> Result<Arc<Rendered>, RenderError> {
    let app_dir = repo.root().join(app.source.path.as_path());
    renderer.render(&RenderInput::new(app, repo.root(), &app_dir, revision))
}

/// `Kind/name` of every object, in order.
pub fn names(r: &Rendered) -> Vec<String> {
    r.manifests
        .iter()
        .map(|m| {
            format!(
                "{}/{}",
                m.kind(),
                m.object["metadata"]["name"].as_str().unwrap_or("?")
            )
        })
        .collect()
}

/// The origin of every object, as displayed.
pub fn origins(r: &Rendered) -> Vec<String> {
    r.manifests.iter().map(|m| m.origin.to_string()).collect()
}

pub fn cm(name: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n")
}
