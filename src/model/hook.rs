//! What an object's annotations say about its part in a sync: an ordinary
//! object, a resource hook (Argo CD's `argocd.argoproj.io/hook`, or a Helm
//! hook mapped as Argo CD maps it), or an object the sync leaves out
//! (`Skip`, Helm test hooks). Also the object's sync wave, which Argo CD
//! reads from `argocd.argoproj.io/sync-wave` and, failing that, from
//! `helm.sh/hook-weight` — for hooks and ordinary objects alike.
//!
//! Pure: reads annotations, returns data. Running hooks is `sync`'s.
//!
//! Argo CD's rules, as gitops-engine's `pkg/sync/hook` applies them:
//! - `argocd.argoproj.io/hook` is a comma-separated list of phases; when it
//!   is present, Helm's hook annotations are ignored. `Skip` alone leaves
//!   the object out of the sync.
//! - `helm.sh/hook`: `pre-install`/`pre-upgrade` → PreSync,
//!   `post-install`/`post-upgrade` → PostSync; `crd-install` is not a hook
//!   (the object is an ordinary one); any other Helm hook (`test`,
//!   `test-success`, `pre-delete`, `pre-rollback`, …) maps to no phase, so
//!   the object is never applied.
//! - Delete policies come from both `argocd.argoproj.io/hook-delete-policy`
//!   and `helm.sh/hook-delete-policy`; none given means BeforeHookCreation.
//!
//! Where kubesync is stricter: an unknown phase or delete policy is an error
//! naming the value (Argo CD silently ignores it, and the hook never runs or
//! is never deleted); `PreDelete`/`PostDelete` hooks are left out with a
//! reason (kubesync does not delete applications yet). Also read, as an
//! alias of the sync wave for hooks: `argocd.argoproj.io/hook-weight`.

use std::fmt;

use serde::Serialize;
use serde_json::Value;

use super::SYNC_WAVE_ANNOTATION;

/// Argo CD's hook annotation: the phases a hook runs in.
pub const HOOK_ANNOTATION: &str = "argocd.argoproj.io/hook";
/// Argo CD's hook delete policies.
pub const HOOK_DELETE_POLICY_ANNOTATION: &str = "argocd.argoproj.io/hook-delete-policy";
/// A hook's weight where the sync wave is not set (kubesync reads it too).
pub const HOOK_WEIGHT_ANNOTATION: &str = "argocd.argoproj.io/hook-weight";
/// Helm's hook annotation.
pub const HELM_HOOK_ANNOTATION: &str = "helm.sh/hook";
/// Helm's hook weight (Argo CD's sync wave when that is not set).
pub const HELM_HOOK_WEIGHT_ANNOTATION: &str = "helm.sh/hook-weight";
/// Helm's hook delete policies.
pub const HELM_HOOK_DELETE_POLICY_ANNOTATION: &str = "helm.sh/hook-delete-policy";

/// When a hook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum HookPhase {
    /// Before any object of the app is applied.
    PreSync,
    /// Among the app's objects, in its sync wave.
    Sync,
    /// After every object of the app is applied and Healthy.
    PostSync,
    /// When the sync failed.
    SyncFail,
}

impl fmt::Display for HookPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HookPhase::PreSync => "PreSync",
            HookPhase::Sync => "Sync",
            HookPhase::PostSync => "PostSync",
            HookPhase::SyncFail => "SyncFail",
        })
    }
}

/// When a hook object is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum DeletePolicy {
    /// The previous hook object is deleted before the hook is created again.
    BeforeHookCreation,
    /// Deleted once it succeeded.
    HookSucceeded,
    /// Deleted once it failed.
    HookFailed,
}

impl fmt::Display for DeletePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DeletePolicy::BeforeHookCreation => "BeforeHookCreation",
            DeletePolicy::HookSucceeded => "HookSucceeded",
            DeletePolicy::HookFailed => "HookFailed",
        })
    }
}

/// A resource hook as its annotations describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    /// The phases it runs in (most hooks have one).
    pub phases: Vec<HookPhase>,
    /// Its delete policies (BeforeHookCreation when none is given).
    pub delete_policies: Vec<DeletePolicy>,
    /// `metadata.generateName` when the hook has no `metadata.name`: it is
    /// created (never applied) under a new name each time it runs.
    pub generate_name: Option<String>,
}

impl Hook {
    pub fn deletes(&self, p: DeletePolicy) -> bool {
        self.delete_policies.contains(&p)
    }
}

/// Why an object is left out of the sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Excluded {
    /// `argocd.argoproj.io/hook: Skip`.
    SkipAnnotation,
    /// A Helm test hook (`helm.sh/hook: test`, `test-success`, …): Argo CD
    /// never runs them.
    HelmTest,
    /// A hook phase kubesync does not run (`PreDelete`, `pre-rollback`, …),
    /// as written.
    UnsupportedHook(String),
}

impl fmt::Display for Excluded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Excluded::SkipAnnotation => write!(f, "{HOOK_ANNOTATION}: Skip"),
            Excluded::HelmTest => write!(
                f,
                "a Helm test hook ({HELM_HOOK_ANNOTATION}: test): never applied, as in Argo CD"
            ),
            Excluded::UnsupportedHook(what) => {
                write!(f, "hook {what} is not run by kubesync: never applied")
            }
        }
    }
}

/// An object's part in a sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Applied, tracked in the inventory, pruned when it leaves git.
    Object,
    /// Run in its phases, waited for, deleted per its policies; never in
    /// the inventory.
    Hook(Hook),
    /// Never applied.
    Excluded(Excluded),
}

use super::annotation;

/// The comma-separated values of an annotation, trimmed, empty ones dropped.
fn csv<'a>(obj: &'a Value, key: &str) -> Vec<&'a str> {
    annotation(obj, key)
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// What an object's annotations make of it; an error names the annotation
/// and the value it does not understand.
pub fn role(obj: &Value) -> Result<Role, String> {
    let argo = annotation(obj, HOOK_ANNOTATION).is_some();
    let helm = annotation(obj, HELM_HOOK_ANNOTATION);
    let phases = if argo {
        let mut phases = Vec::new();
        let mut unsupported = Vec::new();
        let mut skip = false;
        for v in csv(obj, HOOK_ANNOTATION) {
            match v {
                "PreSync" => phases.push(HookPhase::PreSync),
                "Sync" => phases.push(HookPhase::Sync),
                "PostSync" => phases.push(HookPhase::PostSync),
                "SyncFail" => phases.push(HookPhase::SyncFail),
                "Skip" => skip = true,
                "PreDelete" | "PostDelete" => unsupported.push(v),
                other => {
                    return Err(format!(
                        "{HOOK_ANNOTATION} \"{other}\" is not a hook phase (PreSync, Sync, PostSync, SyncFail, Skip)"
                    ))
                }
            }
        }
        if phases.is_empty() {
            return Ok(Role::Excluded(match unsupported.first() {
                Some(p) => Excluded::UnsupportedHook(p.to_string()),
                None if skip => Excluded::SkipAnnotation,
                // An empty annotation: no phase, as Argo CD reads it.
                None => Excluded::UnsupportedHook(format!("{HOOK_ANNOTATION}: \"\"")),
            }));
        }
        phases
    } else {
        match helm {
            None => return Ok(Role::Object),
            // Helm marks CRDs this way (Helm 2); they are not hooks.
            Some(v) if v.trim() == "crd-install" => return Ok(Role::Object),
            Some(v) => {
                let mut phases = Vec::new();
                for t in csv(obj, HELM_HOOK_ANNOTATION) {
                    match t {
                        "pre-install" | "pre-upgrade" => phases.push(HookPhase::PreSync),
                        "post-install" | "post-upgrade" => phases.push(HookPhase::PostSync),
                        _ => {}
                    }
                }
                if phases.is_empty() {
                    let test = csv(obj, HELM_HOOK_ANNOTATION)
                        .iter()
                        .any(|t| t.starts_with("test"));
                    return Ok(Role::Excluded(if test {
                        Excluded::HelmTest
                    } else {
                        Excluded::UnsupportedHook(format!("{HELM_HOOK_ANNOTATION}: {v}"))
                    }));
                }
                phases
            }
        }
    };
    let mut phases = phases;
    phases.sort();
    phases.dedup();
    Ok(Role::Hook(Hook {
        phases,
        delete_policies: delete_policies(obj)?,
        generate_name: generate_name(obj),
    }))
}

/// The hook's delete policies from both annotations; BeforeHookCreation
/// when neither names one.
fn delete_policies(obj: &Value) -> Result<Vec<DeletePolicy>, String> {
    let mut out = Vec::new();
    for v in csv(obj, HOOK_DELETE_POLICY_ANNOTATION) {
        out.push(match v {
            "BeforeHookCreation" => DeletePolicy::BeforeHookCreation,
            "HookSucceeded" => DeletePolicy::HookSucceeded,
            "HookFailed" => DeletePolicy::HookFailed,
            other => return Err(format!(
                "{HOOK_DELETE_POLICY_ANNOTATION} \"{other}\" is not a delete policy (BeforeHookCreation, HookSucceeded, HookFailed)"
            )),
        });
    }
    for v in csv(obj, HELM_HOOK_DELETE_POLICY_ANNOTATION) {
        out.push(match v {
            "before-hook-creation" => DeletePolicy::BeforeHookCreation,
            "hook-succeeded" => DeletePolicy::HookSucceeded,
            "hook-failed" => DeletePolicy::HookFailed,
            other => return Err(format!(
                "{HELM_HOOK_DELETE_POLICY_ANNOTATION} \"{other}\" is not a delete policy (before-hook-creation, hook-succeeded, hook-failed)"
            )),
        });
    }
    if out.is_empty() {
        out.push(DeletePolicy::BeforeHookCreation);
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// `metadata.generateName` of an object without `metadata.name`.
pub fn generate_name(obj: &Value) -> Option<String> {
    let meta = obj.get("metadata")?;
    let named = meta
        .get("name")
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty());
    if named {
        return None;
    }
    meta.get("generateName")
        .and_then(Value::as_str)
        .filter(|g| !g.is_empty())
        .map(str::to_string)
}

/// The object's sync wave, as Argo CD reads it: `argocd.argoproj.io/sync-wave`,
/// else (kubesync) `argocd.argoproj.io/hook-weight`, else
/// `helm.sh/hook-weight`, else 0. A value that is not an integer is an
/// error naming the annotation.
pub fn wave(obj: &Value) -> Result<i32, String> {
    for key in [
        SYNC_WAVE_ANNOTATION,
        HOOK_WEIGHT_ANNOTATION,
        HELM_HOOK_WEIGHT_ANNOTATION,
    ] {
        if let Some(w) = annotation(obj, key) {
            return w
                .trim()
                .parse::<i32>()
                .map_err(|_| format!("{key} \"{w}\" is not an integer"));
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(annotations: Value) -> Value {
        json!({"apiVersion": "batch/v1", "kind": "Job",
               "metadata": {"name": "j", "annotations": annotations}})
    }

    fn hook(annotations: Value) -> Hook {
        match role(&obj(annotations)).expect("role") {
            Role::Hook(h) => h,
            other => panic!("not a hook: {other:?}"),
        }
    }

    #[test]
    fn argo_phases_and_default_delete_policy() {
        let h = hook(json!({HOOK_ANNOTATION: "PostSync, PreSync"}));
        assert_eq!(h.phases, [HookPhase::PreSync, HookPhase::PostSync]);
        assert_eq!(h.delete_policies, [DeletePolicy::BeforeHookCreation]);
        let h = hook(json!({HOOK_ANNOTATION: "SyncFail",
            HOOK_DELETE_POLICY_ANNOTATION: "HookSucceeded,HookFailed"}));
        assert_eq!(h.phases, [HookPhase::SyncFail]);
        assert_eq!(
            h.delete_policies,
            [DeletePolicy::HookSucceeded, DeletePolicy::HookFailed]
        );
    }

    #[test]
    fn argo_annotation_wins_over_helm() {
        let h = hook(json!({HOOK_ANNOTATION: "Sync", HELM_HOOK_ANNOTATION: "post-install"}));
        assert_eq!(h.phases, [HookPhase::Sync]);
    }

    #[test]
    fn helm_hooks_map_as_argo_maps_them() {
        let cases = [
            ("pre-install", vec![HookPhase::PreSync]),
            ("pre-upgrade", vec![HookPhase::PreSync]),
            ("post-install,post-upgrade", vec![HookPhase::PostSync]),
            (
                "pre-install,post-install",
                vec![HookPhase::PreSync, HookPhase::PostSync],
            ),
        ];
        for (v, phases) in cases {
            assert_eq!(hook(json!({HELM_HOOK_ANNOTATION: v})).phases, phases, "{v}");
        }
        let h = hook(json!({HELM_HOOK_ANNOTATION: "pre-install",
            HELM_HOOK_DELETE_POLICY_ANNOTATION: "hook-succeeded,before-hook-creation"}));
        assert_eq!(
            h.delete_policies,
            [
                DeletePolicy::BeforeHookCreation,
                DeletePolicy::HookSucceeded
            ]
        );
    }

    #[test]
    fn excluded_and_ordinary_objects() {
        let r = |a: Value| role(&obj(a)).expect("role");
        assert_eq!(r(json!({})), Role::Object);
        assert_eq!(
            r(json!({HELM_HOOK_ANNOTATION: "crd-install"})),
            Role::Object
        );
        assert_eq!(
            r(json!({HOOK_ANNOTATION: "Skip"})),
            Role::Excluded(Excluded::SkipAnnotation)
        );
        for t in ["test", "test-success", "test-failure"] {
            assert_eq!(
                r(json!({HELM_HOOK_ANNOTATION: t})),
                Role::Excluded(Excluded::HelmTest),
                "{t}"
            );
        }
        assert!(matches!(
            r(json!({HELM_HOOK_ANNOTATION: "pre-delete"})),
            Role::Excluded(Excluded::UnsupportedHook(_))
        ));
        assert!(matches!(
            r(json!({HOOK_ANNOTATION: "PreDelete"})),
            Role::Excluded(Excluded::UnsupportedHook(_))
        ));
    }

    #[test]
    fn unknown_values_are_errors_naming_them() {
        let e = role(&obj(json!({HOOK_ANNOTATION: "Presync"}))).unwrap_err();
        assert!(e.contains("\"Presync\" is not a hook phase"), "{e}");
        let e = role(&obj(
            json!({HOOK_ANNOTATION: "PreSync", HOOK_DELETE_POLICY_ANNOTATION: "Always"}),
        ))
        .unwrap_err();
        assert!(e.contains("\"Always\" is not a delete policy"), "{e}");
    }

    #[test]
    fn generate_name_only_without_a_name() {
        let g = json!({"metadata": {"generateName": "migrate-"}});
        assert_eq!(generate_name(&g).as_deref(), Some("migrate-"));
        let both = json!({"metadata": {"name": "m", "generateName": "migrate-"}});
        assert_eq!(generate_name(&both), None);
    }

    #[test]
    fn wave_falls_back_to_hook_weights() {
        assert_eq!(wave(&obj(json!({}))).unwrap(), 0);
        assert_eq!(
            wave(&obj(json!({HELM_HOOK_WEIGHT_ANNOTATION: "-2"}))).unwrap(),
            -2
        );
        assert_eq!(
            wave(&obj(
                json!({SYNC_WAVE_ANNOTATION: "3", HELM_HOOK_WEIGHT_ANNOTATION: "-2"})
            ))
            .unwrap(),
            3
        );
        assert_eq!(wave(&obj(json!({HOOK_WEIGHT_ANNOTATION: "5"}))).unwrap(), 5);
        let e = wave(&obj(json!({HELM_HOOK_WEIGHT_ANNOTATION: "x"}))).unwrap_err();
        assert!(e.contains("helm.sh/hook-weight \"x\""), "{e}");
    }
}
