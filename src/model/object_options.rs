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
//!
//! App-level `spec.syncPolicy.syncOptions` ([`AppSyncOptions`]) set the
//! defaults every object of the app starts from (`Prune`, `Delete`,
//! `Replace`, `Force`, `Validate`, `SkipDryRunOnMissingResource`), which an
//! object's own annotation overrides, plus what only makes sense for the
//! whole app: `PrunePropagationPolicy`, `FailOnSharedResource`,
//! `CreateNamespace`, `RespectIgnoreDifferences`; and `ServerSideApply`,
//! `PruneLast`, `ApplyOutOfSyncOnly`, accepted because they are what
//! kubesync always does.

use serde_json::Value;

/// `PrunePropagationPolicy`: how a pruned object's dependents are deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrunePropagation {
    /// Dependents first, the object last (Argo CD's default).
    Foreground,
    /// The object now, dependents by the garbage collector afterwards
    /// (kubesync's default).
    Background,
    /// Dependents left in place.
    Orphan,
}

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
    object_options_over(obj, ObjectOptions::default())
}

/// The options an object's annotations set over the app's `defaults`
/// (from its app-level `syncOptions`): an annotation overrides the app.
pub fn object_options_over(obj: &Value, defaults: ObjectOptions) -> Result<ObjectOptions, String> {
    let mut o = defaults;
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

/// Argo CD's app-level `spec.syncPolicy.syncOptions`, read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppSyncOptions {
    /// What every object of the app starts from (`Prune=false`,
    /// `Delete=false`, `Replace=true`, `Force=true`, `Validate=false`,
    /// `SkipDryRunOnMissingResource=true`); an object's annotation wins.
    pub objects: ObjectOptions,
    /// `PrunePropagationPolicy=foreground|background|orphan`: how leftovers
    /// are deleted. Unset: background, kubesync's behaviour before the
    /// option existed (Argo CD's default is foreground; name it to get it).
    pub prune_propagation: PrunePropagation,
    /// `FailOnSharedResource=true`: an object another application applied
    /// (its label and tracking id name another app) fails this app before
    /// any write, instead of being taken over.
    pub fail_on_shared_resource: bool,
    /// `CreateNamespace=true`.
    pub create_namespace: bool,
    /// `RespectIgnoreDifferences=true`.
    pub respect_ignore_differences: bool,
}

impl Default for AppSyncOptions {
    fn default() -> Self {
        AppSyncOptions {
            objects: ObjectOptions::default(),
            prune_propagation: PrunePropagation::Background,
            fail_on_shared_resource: false,
            create_namespace: false,
            respect_ignore_differences: false,
        }
    }
}

/// Reads app-level `syncOptions` (`KEY=VALUE` each); an error names the
/// option kubesync does not know or a value it cannot read.
pub fn app_sync_options<S: AsRef<str>>(list: &[S]) -> Result<AppSyncOptions, String> {
    let mut o = AppSyncOptions::default();
    for opt in list
        .iter()
        .map(|s| s.as_ref().trim())
        .filter(|s| !s.is_empty())
    {
        let (k, v) = opt.split_once('=').unwrap_or((opt, ""));
        let (k, v) = (k.trim(), v.trim());
        if k == "PrunePropagationPolicy" {
            o.prune_propagation = match v.to_ascii_lowercase().as_str() {
                "foreground" => PrunePropagation::Foreground,
                "background" => PrunePropagation::Background,
                "orphan" => PrunePropagation::Orphan,
                _ => {
                    return Err(format!(
                    "\"{opt}\": expected PrunePropagationPolicy=foreground, background or orphan"
                ))
                }
            };
            continue;
        }
        let flag = match v {
            "true" => true,
            "false" => false,
            other => {
                return Err(format!(
                    "\"{opt}\": expected {k}=true or {k}=false, found \"{other}\""
                ))
            }
        };
        match k {
            "Prune" => o.objects.prune = flag,
            "Delete" => o.objects.delete = flag,
            "Replace" => o.objects.replace = flag,
            "Force" => o.objects.force = flag,
            "Validate" => o.objects.validate = flag,
            "SkipDryRunOnMissingResource" => o.objects.skip_dry_run_on_missing = flag,
            "FailOnSharedResource" => o.fail_on_shared_resource = flag,
            "CreateNamespace" => o.create_namespace = flag,
            "RespectIgnoreDifferences" => o.respect_ignore_differences = flag,
            // What kubesync always does: server-side apply, prune after
            // every apply, write only what differs. `=false` cannot be had.
            "ServerSideApply" | "PruneLast" | "ApplyOutOfSyncOnly" => {
                if !flag {
                    return Err(format!(
                        "\"{opt}\": kubesync always works this way ({k}=true); it cannot be turned off"
                    ));
                }
            }
            other => {
                return Err(format!(
                    "\"{other}\" is not a sync option kubesync knows (CreateNamespace, RespectIgnoreDifferences, Prune, Delete, Replace, Force, Validate, SkipDryRunOnMissingResource, PrunePropagationPolicy, FailOnSharedResource, ServerSideApply, PruneLast, ApplyOutOfSyncOnly)"
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

    #[test]
    fn app_options_are_defaults_an_annotation_overrides() {
        let app = app_sync_options(&[
            "Replace=true",
            "Validate=false",
            "Prune=false",
            "PrunePropagationPolicy=orphan",
            "FailOnSharedResource=true",
            "ServerSideApply=true",
            "PruneLast=true",
            "ApplyOutOfSyncOnly=true",
            "CreateNamespace=true",
        ])
        .unwrap();
        assert!(app.objects.replace && !app.objects.validate && !app.objects.prune);
        assert_eq!(app.prune_propagation, PrunePropagation::Orphan);
        assert!(app.fail_on_shared_resource && app.create_namespace);
        assert!(!app.respect_ignore_differences);
        // No annotation: the app's defaults.
        let plain = object_options_over(&json!({"metadata": {}}), app.objects).unwrap();
        assert_eq!(plain, app.objects);
        // An annotation overrides the app.
        let obj = json!({"metadata": {"annotations": {
            SYNC_OPTIONS_ANNOTATION: "Replace=false,Prune=true"}}});
        let o = object_options_over(&obj, app.objects).unwrap();
        assert!(!o.replace && o.prune && !o.validate);
    }

    #[test]
    fn app_option_defaults_and_errors() {
        let d = app_sync_options::<&str>(&[]).unwrap();
        assert_eq!(d, AppSyncOptions::default());
        assert_eq!(d.prune_propagation, PrunePropagation::Background);
        let e = app_sync_options(&["PrunePropagationPolicy=sideways"]).unwrap_err();
        assert!(e.contains("foreground, background or orphan"), "{e}");
        let e = app_sync_options(&["Replace=yes"]).unwrap_err();
        assert!(e.contains("\"Replace=yes\""), "{e}");
        let e = app_sync_options(&["ServerSideApply=false"]).unwrap_err();
        assert!(e.contains("cannot be turned off"), "{e}");
        let e = app_sync_options(&["CreateNamespaces=true"]).unwrap_err();
        assert!(
            e.contains("\"CreateNamespaces\" is not a sync option"),
            "{e}"
        );
        assert!(app_sync_options(&["PrunePropagationPolicy=Background"]).is_ok());
    }
}
