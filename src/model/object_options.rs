//! Argo CD's per-object options: `argocd.argoproj.io/sync-options` (how an
//! object is written and whether it may be pruned or deleted) and
//! `argocd.argoproj.io/compare-options` (whether a live object outside git
//! counts against the app's sync status). Pure: reads annotations.
//!
//! Accepted, as Argo CD documents them: `Prune=false`, `Delete=false`,
//! `Replace=true`, `Force=true` (with `Replace=true`: delete and recreate
//! when the replace is refused, e.g. an immutable field changed),
//! `Validate=false` (the server ignores unknown fields instead of refusing
//! them), `SkipDryRunOnMissingResource=true`, `ServerSideApply=true` (what
//! kubesync always does), `PruneLast=true` (kubesync prunes after every
//! apply anyway); compare option `IgnoreExtraneous`. Anything else is an
//! error naming the option (Argo CD ignores what it does not know, which
//! hides typos).

use serde_json::Value;

/// Argo CD's per-object sync options annotation.
pub const SYNC_OPTIONS_ANNOTATION: &str = "argocd.argoproj.io/sync-options";
/// Argo CD's per-object compare options annotation.
pub const COMPARE_OPTIONS_ANNOTATION: &str = "argocd.argoproj.io/compare-options";

/// What an object's options ask of a sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectOptions {
    /// `Prune=false` makes this false: never pruned, reported instead.
    pub prune: bool,
    /// `Delete=false` makes this false: kept when its app is deleted.
    pub delete: bool,
    /// `Replace=true`: written with a replace (PUT), not an apply.
    pub replace: bool,
    /// `Force=true`: with `replace`, deleted and recreated when the replace
    /// is refused.
    pub force: bool,
    /// `Validate=false` makes this false: the server ignores unknown and
    /// duplicate fields (`fieldValidation=Ignore`).
    pub validate: bool,
    /// `SkipDryRunOnMissingResource=true`: a dry run whose kind is not
    /// served yet (its CRD comes in the same sync) is not an error.
    pub skip_dry_run_on_missing: bool,
    /// Compare option `IgnoreExtraneous`: a leftover of this object does not
    /// make its app OutOfSync.
    pub ignore_extraneous: bool,
}

impl Default for ObjectOptions {
    fn default() -> Self {
        ObjectOptions {
            prune: true,
            delete: true,
            replace: false,
            force: false,
            validate: true,
            skip_dry_run_on_missing: false,
            ignore_extraneous: false,
        }
    }
}

use super::annotation;

/// The options an object's annotations set; an error names the option
/// kubesync does not know.
pub fn object_options(obj: &Value) -> Result<ObjectOptions, String> {
    let mut o = ObjectOptions::default();
    let list = |key| {
        annotation(obj, key)
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
    };
    for opt in list(SYNC_OPTIONS_ANNOTATION) {
        let (k, v) = opt.split_once('=').unwrap_or((opt, ""));
        let flag = match v.trim() {
            "true" => true,
            "false" => false,
            other => {
                return Err(format!(
                    "{SYNC_OPTIONS_ANNOTATION}: \"{opt}\": expected {k}=true or {k}=false, found \"{other}\""
                ))
            }
        };
        match k.trim() {
            "Prune" => o.prune = flag,
            "Delete" => o.delete = flag,
            "Replace" => o.replace = flag,
            "Force" => o.force = flag,
            "Validate" => o.validate = flag,
            "SkipDryRunOnMissingResource" => o.skip_dry_run_on_missing = flag,
            // kubesync always applies server-side and prunes after applying.
            "ServerSideApply" | "PruneLast" => {}
            other => {
                return Err(format!(
                    "{SYNC_OPTIONS_ANNOTATION}: \"{other}\" is not a per-object sync option kubesync knows (Prune, Delete, Replace, Force, Validate, SkipDryRunOnMissingResource, ServerSideApply, PruneLast)"
                ))
            }
        }
    }
    for opt in list(COMPARE_OPTIONS_ANNOTATION) {
        match opt {
            "IgnoreExtraneous" => o.ignore_extraneous = true,
            other => {
                return Err(format!(
                    "{COMPARE_OPTIONS_ANNOTATION}: \"{other}\" is not a compare option kubesync knows (IgnoreExtraneous)"
                ))
            }
        }
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn with(sync: &str, compare: &str) -> Result<ObjectOptions, String> {
        object_options(&json!({"metadata": {"annotations": {
            SYNC_OPTIONS_ANNOTATION: sync, COMPARE_OPTIONS_ANNOTATION: compare}}}))
    }

    #[test]
    fn defaults_without_annotations() {
        let o = object_options(&json!({"metadata": {}})).unwrap();
        assert_eq!(o, ObjectOptions::default());
        assert!(o.prune && o.delete && o.validate && !o.replace);
    }

    #[test]
    fn reads_every_option() {
        let o = with(
            "Prune=false, Delete=false,Replace=true,Force=true,Validate=false,SkipDryRunOnMissingResource=true,ServerSideApply=true",
            "IgnoreExtraneous",
        )
        .unwrap();
        assert!(!o.prune && !o.delete && o.replace && o.force && !o.validate);
        assert!(o.skip_dry_run_on_missing && o.ignore_extraneous);
    }

    #[test]
    fn unknown_options_are_named() {
        let e = with("Prun=false", "").unwrap_err();
        assert!(
            e.contains("\"Prun\" is not a per-object sync option"),
            "{e}"
        );
        let e = with("Prune=no", "").unwrap_err();
        assert!(e.contains("\"Prune=no\""), "{e}");
        let e = with("", "IgnoreEverything").unwrap_err();
        assert!(e.contains("\"IgnoreEverything\""), "{e}");
    }
}
