//! The kubesync settings file (`--settings FILE`, or `$KUBESYNC_SETTINGS`):
//! what applies to every application of the tree rather than to one. Today
//! one key, `ignoreDifferences` (Argo CD's global
//! `resource.customizations.ignoreDifferences` in `argocd-cm`), whose
//! rules are added to each app's own:
//!
//! ```yaml
//! apiVersion: kubesync.dev/v1alpha1   # optional
//! kind: Settings                      # optional
//! ignoreDifferences:
//! - group: apps
//!   kind: Deployment
//!   jsonPointers: [/spec/replicas]
//! - group: "*"
//!   kind: "*"
//!   managedFieldsManagers: [kube-controller-manager]
//! ```
//!
//! Unknown keys are errors naming the file and key, as in Applications.

use std::path::Path;

use serde_json::Value;

use super::app::Ctx;
use super::{IgnoreRule, ModelError, ObjectOrigin};

/// Settings of the whole tree.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    /// Rules every app's comparison honours (besides its own).
    pub ignore_differences: Vec<IgnoreRule>,
}

impl Settings {
    /// Reads and validates a settings file.
    pub fn load(path: &Path) -> Result<Settings, ModelError> {
        let err = |message: String| ModelError {
            file: path.to_path_buf(),
            doc: 0,
            app: None,
            field: String::new(),
            message,
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| err(format!("cannot read the settings file: {e}")))?;
        let docs = super::yaml::documents(&text).map_err(|e| err(e.to_string()))?;
        let mut docs = docs.into_iter();
        let value = match (docs.next(), docs.next()) {
            (None, _) => return Ok(Settings::default()),
            (Some((_, v)), None) => v,
            (Some(_), Some(_)) => {
                return Err(err("a settings file holds one YAML document".into()))
            }
        };
        Settings::from_value(&value, path)
    }

    /// Settings from a parsed document (`file` names it in errors).
    pub fn from_value(value: &Value, file: &Path) -> Result<Settings, ModelError> {
        let origin = ObjectOrigin {
            file: file.to_path_buf(),
            doc: 0,
        };
        let ctx = Ctx::new(&origin, &Value::Null);
        let m = match value {
            Value::Null => return Ok(Settings::default()),
            Value::Object(m) => m,
            other => return Err(ctx.err("", super::app::wrong_type("a mapping", other))),
        };
        ctx.only_known(m, &["apiVersion", "kind", "ignoreDifferences"], "")?;
        Ok(Settings {
            ignore_differences: super::ignore::parse_rules(
                value,
                "ignoreDifferences",
                &ctx,
                "ignoreDifferences",
            )?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_read_and_refuse() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("settings.yaml");
        std::fs::write(
            &p,
            "kind: Settings\nignoreDifferences:\n- {group: apps, kind: Deployment, jsonPointers: [/spec/replicas]}\n",
        )
        .unwrap();
        let s = Settings::load(&p).unwrap();
        assert_eq!(s.ignore_differences.len(), 1);
        assert_eq!(
            s.ignore_differences[0].json_pointers,
            vec!["/spec/replicas"]
        );
        for (text, want) in [
            ("ignoreDiferences: []\n", "unknown field"),
            (
                "ignoreDifferences:\n- {kind: Deployment, jsonPointers: [spec/replicas]}\n",
                "ignoreDifferences[0].jsonPointers[0]: \"spec/replicas\" is not a JSON pointer",
            ),
            (
                "ignoreDifferences:\n- {kind: Deployment, jqPathExpressions: ['.spec.[']}\n",
                "ignoreDifferences[0].jqPathExpressions[0]: not a valid jq expression",
            ),
            (
                "ignoreDifferences:\n- {jsonPointers: [/a]}\n",
                "ignoreDifferences[0].kind: is required",
            ),
            (
                "ignoreDifferences:\n- {kind: Deployment}\n",
                "ignores nothing",
            ),
        ] {
            std::fs::write(&p, text).unwrap();
            let e = Settings::load(&p).unwrap_err().to_string();
            assert!(e.contains(want), "{text}: {e}");
            assert!(e.starts_with(&p.display().to_string()), "{e}");
        }
    }
}
