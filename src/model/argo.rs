//! Mapping of the `argoproj.io/v1alpha1` Application onto the kubesync model.
//! `spec.project` is kept (the tree resolves it to an AppProject whose rules
//! become guardrails); Argo CD fields kubesync has no use for (info,
//! ignoreDifferences, revisionHistoryLimit, …) are accepted and ignored; sources kubesync cannot
//! render become [`RendererSpec::Unsupported`] so that the app fails alone.

use serde_json::Value;

use super::app::{wrong_type, Ctx};
use super::{
    Application, Automated, Destination, DirectoryOptions, Flavor, HelmOptions, HelmParameter,
    KustomizeOptions, ModelError, RendererSpec, Source, SyncPolicy, Tier, DEPENDS_ON_ANNOTATION,
    TIER_ANNOTATION,
};

pub(super) fn parse(obj: &Value, ctx: &Ctx) -> Result<Application, ModelError> {
    ctx.metadata(obj)?;
    let name = ctx.name(obj)?;
    let spec = match obj.get("spec") {
        Some(s @ Value::Object(_)) => s,
        None | Some(Value::Null) => return Err(ctx.err("spec", "is required")),
        Some(other) => return Err(ctx.err("spec", wrong_type("a mapping", other))),
    };

    let annotation = |key: &str| {
        obj.pointer("/metadata/annotations")
            .and_then(|a| a.get(key))
            .and_then(Value::as_str)
    };
    let tier = match annotation(TIER_ANNOTATION) {
        None | Some("system") => Tier::System,
        Some("app") => Tier::App,
        Some(other) => {
            return Err(ctx.err(
                &format!("metadata.annotations.{TIER_ANNOTATION}"),
                format!("\"{other}\" is not a tier (system or app)"),
            ))
        }
    };
    let depends_on = ctx.depends_on(
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
    )?;
    if depends_on.contains(&name) {
        return Err(ctx.err(
            &format!("metadata.annotations.{DEPENDS_ON_ANNOTATION}"),
            format!("\"{name}\" depends on itself"),
        ));
    }

    let (source_v, source_path) = match (spec.get("source"), spec.get("sources")) {
        (Some(s), _) if s.is_object() => (s.clone(), "spec.source".to_string()),
        (_, Some(Value::Array(list))) if list.len() == 1 => {
            (list[0].clone(), "spec.sources[0]".to_string())
        }
        (_, Some(Value::Array(list))) if list.len() > 1 => {
            // Multi-source applications fail alone, with the reason.
            let repo_url = list[0]
                .get("repoURL")
                .and_then(Value::as_str)
                .map(String::from);
            return Ok(Application {
                name,
                flavor: Flavor::ArgoCd,
                tier,
                source: Source {
                    repo_url,
                    target_revision: None,
                    path: super::RepoPath::root(),
                    renderer: RendererSpec::Unsupported(format!(
                        "multi-source applications (spec.sources with {} entries) are not supported",
                        list.len()
                    )),
                },
                destination: destination(spec, ctx)?,
                depends_on,
                sync_policy: sync_policy(spec, ctx)?,
                sync_wave: ctx.sync_wave(obj)?,
                project: project(spec, ctx)?,
                images: Default::default(),
                origin: ctx.origin.clone(),
            });
        }
        (Some(other), _) => return Err(ctx.err("spec.source", wrong_type("a mapping", other))),
        _ => return Err(ctx.err("spec.source", "is required")),
    };
    let sp = source_path.as_str();
    let repo_url = ctx
        .opt_str(&source_v, "repoURL", &format!("{sp}.repoURL"))?
        .filter(|s| !s.is_empty());
    let target_revision = ctx.revision(
        ctx.opt_str(&source_v, "targetRevision", &format!("{sp}.targetRevision"))?,
        &format!("{sp}.targetRevision"),
    )?;
    let chart = ctx.opt_str(&source_v, "chart", &format!("{sp}.chart"))?;
    let path = ctx.repo_path(
        ctx.opt_str(&source_v, "path", &format!("{sp}.path"))?,
        &format!("{sp}.path"),
    )?;

    let present = |k: &str| !matches!(source_v.get(k), None | Some(Value::Null));
    let renderer = if let Some(chart) = chart.filter(|_| !present("path")) {
        RendererSpec::Unsupported(format!(
            "Helm repository charts ({sp}.chart: \"{chart}\") are not supported; vendor the chart into git and use {sp}.path"
        ))
    } else if present("plugin") {
        RendererSpec::Unsupported(format!(
            "config management plugins ({sp}.plugin) are not supported; use a transform command in a kubesync Application"
        ))
    } else if source_v
        .pointer("/directory/jsonnet")
        .map(jsonnet_in_use)
        .unwrap_or(false)
    {
        RendererSpec::Unsupported(format!("jsonnet ({sp}.directory.jsonnet) is not supported"))
    } else if present("helm") {
        RendererSpec::Helm(helm_options(&source_v["helm"], ctx, &format!("{sp}.helm"))?)
    } else if present("kustomize") {
        RendererSpec::Kustomize(kustomize_options(
            &source_v["kustomize"],
            ctx,
            &format!("{sp}.kustomize"),
        )?)
    } else if present("directory") {
        RendererSpec::Directory(directory_options(
            &source_v["directory"],
            ctx,
            &format!("{sp}.directory"),
        )?)
    } else {
        RendererSpec::Auto
    };

    Ok(Application {
        name,
        flavor: Flavor::ArgoCd,
        tier,
        source: Source {
            repo_url,
            target_revision,
            path,
            renderer,
        },
        destination: destination(spec, ctx)?,
        depends_on,
        sync_policy: sync_policy(spec, ctx)?,
        sync_wave: ctx.sync_wave(obj)?,
        project: project(spec, ctx)?,
        images: Default::default(),
        origin: ctx.origin.clone(),
    })
}

/// `spec.project`, `default` when absent (as Argo CD defaults it).
fn project(spec: &Value, ctx: &Ctx) -> Result<Option<String>, ModelError> {
    Ok(Some(
        ctx.opt_str(spec, "project", "spec.project")?
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| super::DEFAULT_PROJECT.to_string()),
    ))
}

/// Argo CD writes `jsonnet: {}` on plain directory apps; only a non-empty
/// jsonnet block means jsonnet is in use.
fn jsonnet_in_use(j: &Value) -> bool {
    match j {
        Value::Object(m) => m.values().any(|v| match v {
            Value::Array(a) => !a.is_empty(),
            Value::Null => false,
            Value::Object(o) => !o.is_empty(),
            _ => true,
        }),
        Value::Null => false,
        _ => true,
    }
}

/// `spec.destination`, the same in both kinds.
pub(super) fn destination(spec: &Value, ctx: &Ctx) -> Result<Destination, ModelError> {
    let Some(_) = ctx.opt_map(spec, "destination", "spec.destination")? else {
        return Ok(Destination::default());
    };
    let d = &spec["destination"];
    Ok(Destination {
        namespace: ctx.namespace_name(
            ctx.opt_str(d, "namespace", "spec.destination.namespace")?,
            "spec.destination.namespace",
        )?,
        server: ctx.opt_str(d, "server", "spec.destination.server")?,
        name: ctx.opt_str(d, "name", "spec.destination.name")?,
    })
}

fn sync_policy(spec: &Value, ctx: &Ctx) -> Result<SyncPolicy, ModelError> {
    let mut policy = SyncPolicy::default();
    let Some(_) = ctx.opt_map(spec, "syncPolicy", "spec.syncPolicy")? else {
        return Ok(policy);
    };
    let sp = &spec["syncPolicy"];
    // In Argo CD, the presence of `automated` (even `{}`) turns automation on.
    if sp.get("automated").map(|a| !a.is_null()).unwrap_or(false) {
        ctx.opt_map(sp, "automated", "spec.syncPolicy.automated")?;
        let a = &sp["automated"];
        let enabled = ctx
            .opt_bool(a, "enabled", "spec.syncPolicy.automated.enabled")?
            .unwrap_or(true);
        if enabled {
            policy.automated = Some(Automated {
                prune: ctx
                    .opt_bool(a, "prune", "spec.syncPolicy.automated.prune")?
                    .unwrap_or(false),
                self_heal: ctx
                    .opt_bool(a, "selfHeal", "spec.syncPolicy.automated.selfHeal")?
                    .unwrap_or(false),
                allow_empty: ctx
                    .opt_bool(a, "allowEmpty", "spec.syncPolicy.automated.allowEmpty")?
                    .unwrap_or(false),
            });
        }
    }
    policy.sync_options = ctx.string_list(sp, "syncOptions", "spec.syncPolicy.syncOptions")?;
    policy.create_namespace = policy
        .sync_options
        .iter()
        .any(|o| o.trim() == "CreateNamespace=true");
    Ok(policy)
}

/// Helm options, shared by both kinds (kubesync's `values` is a mapping; Argo
/// CD's `values` is a YAML string and `valuesObject` a mapping).
pub(super) fn helm_options(v: &Value, ctx: &Ctx, path: &str) -> Result<HelmOptions, ModelError> {
    let mut values: Option<Value> = None;
    match v.get("values") {
        None | Some(Value::Null) => {}
        Some(Value::String(text)) if text.trim().is_empty() => {}
        Some(Value::String(text)) => {
            let parsed: Value = serde_yaml::from_str(text).map_err(|e| {
                ctx.err(&format!("{path}.values"), format!("is not valid YAML: {e}"))
            })?;
            if !parsed.is_object() {
                return Err(ctx.err(&format!("{path}.values"), "must be a YAML mapping"));
            }
            values = Some(parsed);
        }
        Some(m @ Value::Object(_)) => values = Some(m.clone()),
        Some(other) => {
            return Err(ctx.err(
                &format!("{path}.values"),
                wrong_type("a mapping or a YAML string", other),
            ))
        }
    }
    if let Some(obj) = ctx.opt_map(v, "valuesObject", &format!("{path}.valuesObject"))? {
        let mut base = values
            .take()
            .unwrap_or_else(|| Value::Object(Default::default()));
        deep_merge(&mut base, &Value::Object(obj.clone()));
        values = Some(base);
    }
    let mut parameters = Vec::new();
    match v.get("parameters") {
        None | Some(Value::Null) => {}
        Some(Value::Array(list)) => {
            for (i, p) in list.iter().enumerate() {
                let pp = format!("{path}.parameters[{i}]");
                let name = ctx
                    .opt_str(p, "name", &format!("{pp}.name"))?
                    .filter(|n| !n.is_empty())
                    .ok_or_else(|| ctx.err(&format!("{pp}.name"), "is required"))?;
                parameters.push(HelmParameter {
                    name,
                    value: ctx
                        .opt_str(p, "value", &format!("{pp}.value"))?
                        .unwrap_or_default(),
                    force_string: ctx
                        .opt_bool(p, "forceString", &format!("{pp}.forceString"))?
                        .unwrap_or(false),
                });
            }
        }
        Some(other) => {
            return Err(ctx.err(
                &format!("{path}.parameters"),
                wrong_type("a sequence of {name, value} mappings", other),
            ))
        }
    }
    let value_files = ctx.string_list(v, "valueFiles", &format!("{path}.valueFiles"))?;
    for (i, f) in value_files.iter().enumerate() {
        if f.contains("://") {
            return Err(ctx.err(
                &format!("{path}.valueFiles[{i}]"),
                format!("\"{f}\": remote value files are not supported"),
            ));
        }
    }
    Ok(HelmOptions {
        release_name: ctx
            .opt_str(v, "releaseName", &format!("{path}.releaseName"))?
            .filter(|s| !s.is_empty()),
        value_files,
        values,
        parameters,
        skip_crds: ctx
            .opt_bool(v, "skipCrds", &format!("{path}.skipCrds"))?
            .unwrap_or(false),
        ignore_missing_value_files: ctx
            .opt_bool(
                v,
                "ignoreMissingValueFiles",
                &format!("{path}.ignoreMissingValueFiles"),
            )?
            .unwrap_or(false),
    })
}

pub(super) fn kustomize_options(
    v: &Value,
    ctx: &Ctx,
    path: &str,
) -> Result<KustomizeOptions, ModelError> {
    Ok(KustomizeOptions {
        name_prefix: ctx
            .opt_str(v, "namePrefix", &format!("{path}.namePrefix"))?
            .filter(|s| !s.is_empty()),
        name_suffix: ctx
            .opt_str(v, "nameSuffix", &format!("{path}.nameSuffix"))?
            .filter(|s| !s.is_empty()),
        namespace: ctx.namespace_name(
            ctx.opt_str(v, "namespace", &format!("{path}.namespace"))?,
            &format!("{path}.namespace"),
        )?,
        images: ctx.string_list(v, "images", &format!("{path}.images"))?,
        common_labels: ctx.string_map(v, "commonLabels", &format!("{path}.commonLabels"))?,
        common_annotations: ctx.string_map(
            v,
            "commonAnnotations",
            &format!("{path}.commonAnnotations"),
        )?,
    })
}

pub(super) fn directory_options(
    v: &Value,
    ctx: &Ctx,
    path: &str,
) -> Result<DirectoryOptions, ModelError> {
    let glob = |key: &str| -> Result<Option<String>, ModelError> {
        let field = format!("{path}.{key}");
        let g = ctx.opt_str(v, key, &field)?.filter(|s| !s.is_empty());
        if let Some(g) = &g {
            globset::Glob::new(g)
                .map_err(|e| ctx.err(&field, format!("invalid glob \"{g}\": {e}")))?;
        }
        Ok(g)
    };
    Ok(DirectoryOptions {
        recurse: ctx
            .opt_bool(v, "recurse", &format!("{path}.recurse"))?
            .unwrap_or(false),
        include: glob("include")?,
        exclude: glob("exclude")?,
    })
}

/// Recursively merges `overlay` into `base` (mappings merge, everything else replaces).
pub fn deep_merge(base: &mut Value, overlay: &Value) {
    match (base, overlay) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(k) {
                    Some(existing) => deep_merge(existing, v),
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, o) => *b = o.clone(),
    }
}
