//! The ApplicationSet: Argo CD's `argoproj.io/v1alpha1` kind and kubesync's
//! own `kubesync.dev/v1alpha1` kind of the same shape, read into one
//! [`AppSetSpec`]. A set is a node of the tree like an Application; instead
//! of rendering a source, it generates child Applications (see
//! `tree::appset`, which owns generators and templates).
//!
//! Parsing here checks what can be checked without generating: metadata,
//! `generators` is a non-empty sequence of mappings, `template` a mapping,
//! `goTemplateOptions` known, the sync policy's values. Generators are kept as
//! written: a matrix's second generator may reference the first one's
//! parameters, so it can only be read once those are known; an unknown or
//! unsupported generator fails the set when it is expanded, not the tree.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::app::{wrong_type, Ctx};
use super::{
    Application, Destination, Flavor, ModelError, RendererSpec, RepoPath, Source, SyncPolicy, Tier,
    DEPENDS_ON_ANNOTATION, TIER_ANNOTATION,
};

/// What happens to generated Applications when the set stops generating them
/// (Argo CD's `spec.syncPolicy.applicationsSync`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ApplicationsSync {
    /// Create, update and delete (Argo CD's default).
    #[default]
    Sync,
    CreateOnly,
    CreateUpdate,
    CreateDelete,
}

impl ApplicationsSync {
    /// Whether Argo CD would delete an Application the set no longer generates.
    pub fn deletes(self) -> bool {
        matches!(
            self,
            ApplicationsSync::Sync | ApplicationsSync::CreateDelete
        )
    }
}

/// An ApplicationSet's spec, generators and template kept as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppSetSpec {
    /// The kind of Application the set generates (the set's own group).
    pub generates: Flavor,
    pub generators: Vec<Value>,
    /// `{metadata, spec}` of the generated Applications (`None`: kubesync's
    /// kind with its default template).
    pub template: Option<Value>,
    /// `templatePatch`: a templated YAML document merged onto each generated
    /// Application.
    pub template_patch: Option<String>,
    pub go_template: bool,
    /// `goTemplateOptions: ["missingkey=error"]`.
    pub missing_key_error: bool,
    pub applications_sync: ApplicationsSync,
    pub preserve_resources_on_deletion: bool,
    /// `strategy: {type: RollingSync}`: each step's `matchExpressions` (on
    /// the generated Applications' labels), in order. `None`: AllAtOnce.
    #[serde(default)]
    pub rolling_sync: Option<Vec<Value>>,
}

/// Whether `obj` is an ApplicationSet of a kind kubesync reads.
pub fn is_application_set(obj: &Value) -> bool {
    obj.get("kind").and_then(Value::as_str) == Some("ApplicationSet")
        && matches!(
            obj.get("apiVersion").and_then(Value::as_str),
            Some(super::KUBESYNC_API_VERSION | super::ARGOCD_API_VERSION)
        )
}

pub(super) fn parse(obj: &Value, ctx: &Ctx, generates: Flavor) -> Result<Application, ModelError> {
    ctx.metadata(obj)?;
    let name = ctx.name(obj)?;
    let spec = ctx.spec(obj)?;
    let annotation = |key: &str| super::annotation(obj, key);
    let own_tier = ctx.opt_str(spec, "tier", "spec.tier")?;
    let (asked, field) = match generates {
        Flavor::Kubesync => (own_tier.as_deref(), "spec.tier".to_string()),
        Flavor::ArgoCd => (
            annotation(TIER_ANNOTATION),
            format!("metadata.annotations.{TIER_ANNOTATION}"),
        ),
    };
    let tier = match asked {
        Some("system") => Tier::System,
        Some("app") => Tier::App,
        Some(other) => {
            return Err(ctx.err(&field, format!("\"{other}\" is not a tier (system or app)")))
        }
        // Argo CD's kind is system by default (as its Applications are).
        None if generates == Flavor::ArgoCd => Tier::System,
        None => Tier::App,
    };
    if generates == Flavor::Kubesync {
        if let Some(m) = spec.as_object() {
            ctx.only_known(
                m,
                &[
                    "tier",
                    "generators",
                    "template",
                    "templatePatch",
                    "goTemplate",
                    "goTemplateOptions",
                    "syncPolicy",
                    "strategy",
                    "dependsOn",
                ],
                "spec",
            )?;
        }
    }
    let generators = match spec.get("generators") {
        Some(Value::Array(list)) if !list.is_empty() => {
            for (i, g) in list.iter().enumerate() {
                if !g.is_object() {
                    return Err(
                        ctx.err(&format!("spec.generators[{i}]"), wrong_type("a mapping", g))
                    );
                }
            }
            list.clone()
        }
        Some(Value::Array(_)) | None | Some(Value::Null) => {
            return Err(ctx.err("spec.generators", "is required (at least one generator)"))
        }
        Some(other) => return Err(ctx.err("spec.generators", wrong_type("a sequence", other))),
    };
    let template = match spec.get("template") {
        Some(t @ Value::Object(_)) => Some(t.clone()),
        None | Some(Value::Null) if generates == Flavor::Kubesync => None,
        None | Some(Value::Null) => return Err(ctx.err("spec.template", "is required")),
        Some(other) => return Err(ctx.err("spec.template", wrong_type("a mapping", other))),
    };
    let go_template = ctx
        .opt_bool(spec, "goTemplate", "spec.goTemplate")?
        .unwrap_or(false);
    let mut missing_key_error = false;
    for (i, o) in ctx
        .string_list(spec, "goTemplateOptions", "spec.goTemplateOptions")?
        .iter()
        .enumerate()
    {
        match o.trim() {
            "missingkey=error" => missing_key_error = true,
            "missingkey=default" | "missingkey=invalid" | "missingkey=zero" => {}
            other => {
                return Err(ctx.err(
                    &format!("spec.goTemplateOptions[{i}]"),
                    format!(
                        "\"{other}\" is not a Go template option (missingkey=default|zero|error)"
                    ),
                ))
            }
        }
    }
    let template_patch = ctx.opt_str(spec, "templatePatch", "spec.templatePatch")?;
    if template_patch.is_some() && !go_template {
        return Err(ctx.err(
            "spec.templatePatch",
            "is only supported with goTemplate: true (as in Argo CD)",
        ));
    }
    let mut applications_sync = ApplicationsSync::default();
    let mut preserve = false;
    if ctx
        .opt_map(spec, "syncPolicy", "spec.syncPolicy")?
        .is_some()
    {
        let sp = &spec["syncPolicy"];
        if let Some(v) = ctx.opt_str(sp, "applicationsSync", "spec.syncPolicy.applicationsSync")? {
            applications_sync = match v.as_str() {
                "sync" => ApplicationsSync::Sync,
                "create-only" => ApplicationsSync::CreateOnly,
                "create-update" => ApplicationsSync::CreateUpdate,
                "create-delete" => ApplicationsSync::CreateDelete,
                other => {
                    return Err(ctx.err(
                        "spec.syncPolicy.applicationsSync",
                        format!("\"{other}\" is not a policy (create-only, create-update, create-delete, sync)"),
                    ))
                }
            };
        }
        preserve = ctx
            .opt_bool(
                sp,
                "preserveResourcesOnDeletion",
                "spec.syncPolicy.preserveResourcesOnDeletion",
            )?
            .unwrap_or(false);
    }
    let mut rolling_sync = None;
    if ctx.opt_map(spec, "strategy", "spec.strategy")?.is_some() {
        let st = &spec["strategy"];
        match ctx.opt_str(st, "type", "spec.strategy.type")?.as_deref() {
            None | Some("AllAtOnce") => {}
            Some("RollingSync") => {
                let mut steps = Vec::new();
                let list = match st.pointer("/rollingSync/steps") {
                    Some(Value::Array(a)) => a.clone(),
                    None | Some(Value::Null) => Vec::new(),
                    Some(other) => {
                        return Err(ctx.err(
                            "spec.strategy.rollingSync.steps",
                            wrong_type("a sequence", other),
                        ))
                    }
                };
                for (i, step) in list.iter().enumerate() {
                    let field = format!("spec.strategy.rollingSync.steps[{i}].matchExpressions");
                    match step.get("matchExpressions") {
                        None | Some(Value::Null) => steps.push(Value::Array(Vec::new())),
                        Some(e @ Value::Array(_)) => steps.push(e.clone()),
                        Some(other) => return Err(ctx.err(&field, wrong_type("a sequence", other))),
                    }
                }
                rolling_sync = Some(steps);
            }
            Some(other) => {
                return Err(ctx.err(
                    "spec.strategy.type",
                    format!("\"{other}\" is not a strategy (AllAtOnce or RollingSync)"),
                ))
            }
        }
    }
    let depends_on = match generates {
        Flavor::Kubesync => ctx.depends_on(
            ctx.string_list(spec, "dependsOn", "spec.dependsOn")?,
            "spec.dependsOn",
        )?,
        Flavor::ArgoCd => ctx.depends_on(
            annotation(DEPENDS_ON_ANNOTATION)
                .map(|s| {
                    s.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default(),
            &format!("metadata.annotations.{DEPENDS_ON_ANNOTATION}"),
        )?,
    };
    let set = AppSetSpec {
        generates,
        generators,
        template,
        template_patch,
        go_template,
        missing_key_error,
        applications_sync,
        preserve_resources_on_deletion: preserve,
        rolling_sync,
    };
    Ok(Application {
        name,
        flavor: generates,
        tier,
        source: Source::new(
            None,
            None,
            RepoPath::root(),
            RendererSpec::ApplicationSet(Box::new(set)),
        ),
        extra_sources: Vec::new(),
        destination: Destination::default(),
        depends_on,
        sync_policy: SyncPolicy::default(),
        ignore_differences: Vec::new(),
        images: Default::default(),
        sync_wave: ctx.sync_wave(obj)?,
        project: None,
        origin: ctx.origin.clone(),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::model::ObjectOrigin;

    fn parse_obj(obj: serde_json::Value) -> Result<Application, ModelError> {
        let origin = ObjectOrigin {
            file: "set.yaml".into(),
            doc: 0,
        };
        Application::from_object(&obj, &origin)
    }

    fn argo(spec: serde_json::Value) -> serde_json::Value {
        json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "ApplicationSet", "metadata": {"name": "s"}, "spec": spec})
    }

    fn set_of(app: &Application) -> &AppSetSpec {
        match &app.source.renderer {
            RendererSpec::ApplicationSet(s) => s,
            other => panic!("not a set: {other:?}"),
        }
    }

    #[test]
    fn reads_both_kinds() {
        let app = parse_obj(argo(json!({
            "goTemplate": true,
            "goTemplateOptions": ["missingkey=error"],
            "generators": [{"list": {"elements": []}}],
            "template": {"metadata": {"name": "x"}, "spec": {}},
            "syncPolicy": {"applicationsSync": "create-update", "preserveResourcesOnDeletion": true}
        })))
        .unwrap();
        assert_eq!(app.tier, Tier::System);
        assert_eq!(app.source.renderer.kind_name(), "applicationset");
        let s = set_of(&app);
        assert!(s.go_template && s.missing_key_error && s.preserve_resources_on_deletion);
        assert_eq!(s.applications_sync, ApplicationsSync::CreateUpdate);
        assert!(!s.applications_sync.deletes());
        assert_eq!(s.generates, Flavor::ArgoCd);

        let own = parse_obj(json!({
            "apiVersion": "kubesync.dev/v1alpha1", "kind": "ApplicationSet",
            "metadata": {"name": "ns"},
            "spec": {"generators": [{"namespaceDirectories": {"path": "cluster"}}], "dependsOn": ["base"]}
        }))
        .unwrap();
        assert_eq!(own.tier, Tier::App);
        assert_eq!(own.depends_on[0].as_str(), "base");
        assert_eq!(set_of(&own).template, None);
        assert_eq!(set_of(&own).generates, Flavor::Kubesync);
    }

    #[test]
    fn errors_name_the_field() {
        let gens = json!([{"list": {"elements": []}}]);
        let tmpl = json!({"metadata": {"name": "x"}, "spec": {}});
        for (spec, field, want) in [
            (json!({"template": tmpl}), "spec.generators", "is required"),
            (
                json!({"generators": [], "template": tmpl}),
                "spec.generators",
                "at least one",
            ),
            (
                json!({"generators": ["x"], "template": tmpl}),
                "spec.generators[0]",
                "a mapping",
            ),
            (json!({"generators": gens}), "spec.template", "is required"),
            (
                json!({"generators": gens, "template": tmpl, "goTemplateOptions": ["missingkey=maybe"]}),
                "spec.goTemplateOptions[0]",
                "not a Go template option",
            ),
            (
                json!({"generators": gens, "template": tmpl, "templatePatch": "x"}),
                "spec.templatePatch",
                "goTemplate: true",
            ),
            (
                json!({"generators": gens, "template": tmpl, "syncPolicy": {"applicationsSync": "never"}}),
                "spec.syncPolicy.applicationsSync",
                "not a policy",
            ),
        ] {
            let e = parse_obj(argo(spec.clone())).unwrap_err();
            assert_eq!(e.field, field, "{spec}: {e}");
            assert!(e.message.contains(want), "{spec}: {e}");
        }
        let e = parse_obj(json!({
            "apiVersion": "kubesync.dev/v1alpha1", "kind": "ApplicationSet", "metadata": {"name": "s"},
            "spec": {"generators": gens, "generator": []}
        }))
        .unwrap_err();
        assert_eq!(e.field, "spec.generator");
        let e = parse_obj(json!({"apiVersion": "argoproj.io/v1beta9", "kind": "ApplicationSet", "metadata": {"name": "s"}, "spec": {}})).unwrap_err();
        assert!(
            e.message.contains("unsupported ApplicationSet apiVersion"),
            "{e}"
        );
    }
}
