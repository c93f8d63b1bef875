//! Mapping of the `argoproj.io/v1alpha1` Application onto the kubesync model.
//! `spec.project` is kept (the tree resolves it to an AppProject whose rules
//! become guardrails); `ignoreDifferences` is read; Argo CD fields kubesync
//! has no use for (info, revisionHistoryLimit, …) are accepted and ignored; sources kubesync cannot
//! render become [`RendererSpec::Unsupported`] so that the app fails alone.
//! `spec.sources` maps onto `source` (the first) and `extra_sources`; a
//! `chart:` source onto [`ChartRef`] (its `targetRevision` is a chart version
//! or constraint, never a git revision).

use std::time::Duration;

use serde_json::Value;

use super::app::{wrong_type, Ctx};
use super::{
    parse_duration, Application, Automated, ChartRef, Destination, DirectoryOptions, Flavor,
    HelmOptions, HelmParameter, JsonnetOptions, JsonnetVar, KustomizeOptions, ModelError,
    RendererSpec, RetryPolicy, Source, SyncPolicy, Tier, DEPENDS_ON_ANNOTATION, TIER_ANNOTATION,
};

pub(super) fn parse(obj: &Value, ctx: &Ctx) -> Result<Application, ModelError> {
    ctx.metadata(obj)?;
    let name = ctx.name(obj)?;
    let spec = ctx.spec(obj)?;

    let annotation = |key: &str| super::annotation(obj, key);
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

    // `spec.sources`, when given, wins over `spec.source` (as in Argo CD).
    let mut sources = match (spec.get("sources"), spec.get("source")) {
        (Some(Value::Array(list)), _) if !list.is_empty() => {
            let mut out = Vec::with_capacity(list.len());
            for (i, s) in list.iter().enumerate() {
                let sp = format!("spec.sources[{i}]");
                if !s.is_object() {
                    return Err(ctx.err(&sp, wrong_type("a mapping", s)));
                }
                out.push(parse_source(s, &sp, ctx)?);
            }
            out
        }
        (Some(Value::Array(_)) | None | Some(Value::Null), Some(s)) if s.is_object() => {
            vec![parse_source(s, "spec.source", ctx)?]
        }
        (Some(other @ Value::Object(_)), _) | (Some(other @ Value::String(_)), _) => {
            return Err(ctx.err("spec.sources", wrong_type("a sequence", other)))
        }
        (_, Some(other)) if !other.is_null() => {
            return Err(ctx.err("spec.source", wrong_type("a mapping", other)))
        }
        _ => return Err(ctx.err("spec.source", "is required")),
    };
    check_refs(&sources, ctx)?;
    let source = sources.remove(0);

    Ok(Application {
        name,
        flavor: Flavor::ArgoCd,
        tier,
        source,
        extra_sources: sources,
        destination: destination(spec, ctx)?,
        depends_on,
        sync_policy: sync_policy_of(obj, spec, ctx)?,
        ignore_differences: ignore_differences(spec, ctx)?,
        images: Default::default(),
        sync_wave: ctx.sync_wave(obj)?,
        project: project(spec, ctx)?,
        notify_webhook: super::notify_webhook_of(obj),
        origin: ctx.origin.clone(),
    })
}

/// One source (`spec.source` or an entry of `spec.sources`), `sp` naming it.
fn parse_source(source_v: &Value, sp: &str, ctx: &Ctx) -> Result<Source, ModelError> {
    let repo_url = ctx
        .opt_str(source_v, "repoURL", &format!("{sp}.repoURL"))?
        .filter(|s| !s.is_empty());
    let raw_revision = ctx.opt_str(source_v, "targetRevision", &format!("{sp}.targetRevision"))?;
    let chart = ctx
        .opt_str(source_v, "chart", &format!("{sp}.chart"))?
        .filter(|c| !c.trim().is_empty());
    let ref_name = ctx
        .opt_str(source_v, "ref", &format!("{sp}.ref"))?
        .filter(|r| !r.is_empty());
    if let Some(r) = &ref_name {
        if !r
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(ctx.err(
                &format!("{sp}.ref"),
                format!("\"{r}\" is not a valid ref name (letters, digits, - and _)"),
            ));
        }
    }
    let present = |k: &str| !matches!(source_v.get(k), None | Some(Value::Null));
    let path = ctx.repo_path(
        ctx.opt_str(source_v, "path", &format!("{sp}.path"))?,
        &format!("{sp}.path"),
    )?;
    // A chart from a Helm repository: targetRevision is the chart version or
    // a semver constraint, not a git revision.
    let chart = match chart.filter(|_| !present("path")) {
        Some(name) => {
            if repo_url.is_none() {
                return Err(ctx.err(
                    &format!("{sp}.repoURL"),
                    format!("is required with {sp}.chart (the Helm repository or OCI registry of chart \"{name}\")"),
                ));
            }
            Some(ChartRef {
                name: name.trim().to_string(),
                version: raw_revision.clone().unwrap_or_default().trim().to_string(),
            })
        }
        None => None,
    };
    let target_revision = if chart.is_some() {
        None
    } else {
        ctx.revision(raw_revision, &format!("{sp}.targetRevision"))?
    };
    let ref_only = ref_name.is_some() && chart.is_none() && !present("path");

    let renderer = if present("plugin") {
        RendererSpec::Unsupported(format!(
            "config management plugins ({sp}.plugin) are not supported; use a transform command in a kubesync Application"
        ))
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
    Ok(Source {
        chart,
        ref_name,
        ref_only,
        ..Source::new(repo_url, target_revision, path, renderer)
    })
}

/// `ref` names are unique, and every `$NAME/…` value file names one of them.
fn check_refs(sources: &[Source], ctx: &Ctx) -> Result<(), ModelError> {
    let mut names: Vec<&str> = Vec::new();
    for (i, s) in sources.iter().enumerate() {
        if let Some(r) = &s.ref_name {
            if names.contains(&r.as_str()) {
                return Err(ctx.err(
                    &format!("spec.sources[{i}].ref"),
                    format!("\"{r}\" is used by two sources"),
                ));
            }
            names.push(r);
        }
    }
    for (i, s) in sources.iter().enumerate() {
        let RendererSpec::Helm(h) = &s.renderer else {
            continue;
        };
        for (k, f) in h.value_files.iter().enumerate() {
            let Some(rest) = f.strip_prefix('$') else {
                continue;
            };
            let name = rest.split('/').next().unwrap_or("");
            if !names.contains(&name) {
                let field = if sources.len() > 1 {
                    format!("spec.sources[{i}].helm.valueFiles[{k}]")
                } else {
                    format!("spec.source.helm.valueFiles[{k}]")
                };
                return Err(ctx.err(
                    &field,
                    format!(
                        "\"{f}\" names ref \"{name}\", but no source of spec.sources has `ref: {name}`"
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// `spec.project`, `default` when absent (as Argo CD defaults it).
fn project(spec: &Value, ctx: &Ctx) -> Result<Option<String>, ModelError> {
    Ok(Some(
        ctx.opt_str(spec, "project", "spec.project")?
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| super::DEFAULT_PROJECT.to_string()),
    ))
}

/// `spec.ignoreDifferences`.
fn ignore_differences(spec: &Value, ctx: &Ctx) -> Result<Vec<super::IgnoreRule>, ModelError> {
    super::ignore::parse_rules(spec, "ignoreDifferences", ctx, "spec.ignoreDifferences")
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

/// Argo CD's finalizer asking that an app's objects be deleted with it
/// (also with a `/foreground` or `/background` suffix).
pub const RESOURCES_FINALIZER: &str = "resources-finalizer.argocd.argoproj.io";

/// The sync policy, with `cascade_delete` from the Application's finalizers.
fn sync_policy_of(obj: &Value, spec: &Value, ctx: &Ctx) -> Result<SyncPolicy, ModelError> {
    let mut policy = sync_policy(spec, ctx)?;
    policy.cascade_delete = obj
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .any(|f| f == RESOURCES_FINALIZER || f.starts_with(&format!("{RESOURCES_FINALIZER}/")));
    policy.generated_by = super::generated_by(obj);
    Ok(policy)
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
    policy.retry = retry(sp, ctx)?;
    policy.sync_options = ctx.string_list(sp, "syncOptions", "spec.syncPolicy.syncOptions")?;
    policy.create_namespace = crate::model::object_options::app_sync_options(&policy.sync_options)
        .map_err(|e| ctx.err("spec.syncPolicy.syncOptions", e))?
        .create_namespace;
    Ok(policy)
}

/// `spec.syncPolicy.retry`: `limit` (an integer), `backoff.duration`,
/// `backoff.factor` (an integer, as Argo CD's API has it) and
/// `backoff.maxDuration`; unset fields take Argo CD's defaults.
fn retry(sp: &Value, ctx: &Ctx) -> Result<Option<RetryPolicy>, ModelError> {
    let Some(_) = ctx.opt_map(sp, "retry", "spec.syncPolicy.retry")? else {
        return Ok(None);
    };
    let r = &sp["retry"];
    let mut out = RetryPolicy::default();
    match r.get("limit") {
        None | Some(Value::Null) => {}
        Some(Value::Number(n)) if n.as_i64().is_some() => out.limit = n.as_i64().unwrap_or(0),
        Some(Value::String(s)) if s.trim().parse::<i64>().is_ok() => {
            out.limit = s.trim().parse().unwrap_or(0)
        }
        Some(other) => {
            return Err(ctx.err(
                "spec.syncPolicy.retry.limit",
                wrong_type("an integer", other),
            ))
        }
    }
    if ctx
        .opt_map(r, "backoff", "spec.syncPolicy.retry.backoff")?
        .is_some()
    {
        let b = &r["backoff"];
        let duration = |key: &str, field: &str| -> Result<Option<Duration>, ModelError> {
            match ctx.opt_str(b, key, field)? {
                None => Ok(None),
                Some(t) => parse_duration(&t)
                    .map(Some)
                    .map_err(|e| ctx.err(field, e.to_string())),
            }
        };
        if let Some(d) = duration("duration", "spec.syncPolicy.retry.backoff.duration")? {
            out.duration = d;
        }
        if let Some(d) = duration("maxDuration", "spec.syncPolicy.retry.backoff.maxDuration")? {
            out.max_duration = d;
        }
        match b.get("factor") {
            None | Some(Value::Null) => {}
            Some(Value::Number(n)) if n.as_f64().is_some_and(|f| f >= 1.0) => {
                out.factor = n.as_f64().unwrap_or(2.0)
            }
            Some(other) => {
                return Err(ctx.err(
                    "spec.syncPolicy.retry.backoff.factor",
                    format!("must be a number of at least 1, found {other}"),
                ))
            }
        }
    }
    Ok(Some(out))
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
        jsonnet: jsonnet_options(v, ctx, &format!("{path}.jsonnet"))?,
    })
}

/// `directory.jsonnet`: `extVars` and `tlas` (`{name, value, code}`) and
/// `libs` (repository-relative directories).
fn jsonnet_options(dir: &Value, ctx: &Ctx, path: &str) -> Result<JsonnetOptions, ModelError> {
    let Some(_) = ctx.opt_map(dir, "jsonnet", path)? else {
        return Ok(JsonnetOptions::default());
    };
    let v = &dir["jsonnet"];
    let vars = |key: &str| -> Result<Vec<JsonnetVar>, ModelError> {
        let field = format!("{path}.{key}");
        let items = match v.get(key) {
            None | Some(Value::Null) => return Ok(Vec::new()),
            Some(Value::Array(items)) => items,
            Some(other) => return Err(ctx.err(&field, wrong_type("a list", other))),
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let at = format!("{field}[{i}]");
            if !item.is_object() {
                return Err(ctx.err(&at, wrong_type("a mapping", item)));
            }
            let name = ctx
                .opt_str(item, "name", &format!("{at}.name"))?
                .filter(|n| !n.is_empty())
                .ok_or_else(|| ctx.err(&format!("{at}.name"), "is required"))?;
            if out.iter().any(|o: &JsonnetVar| o.name == name) {
                return Err(ctx.err(&format!("{at}.name"), format!("\"{name}\" is given twice")));
            }
            out.push(JsonnetVar {
                name,
                value: ctx
                    .opt_str(item, "value", &format!("{at}.value"))?
                    .unwrap_or_default(),
                code: ctx
                    .opt_bool(item, "code", &format!("{at}.code"))?
                    .unwrap_or(false),
            });
        }
        Ok(out)
    };
    let libs = ctx.string_list(v, "libs", &format!("{path}.libs"))?;
    for (i, lib) in libs.iter().enumerate() {
        if lib.trim().is_empty() {
            return Err(ctx.err(&format!("{path}.libs[{i}]"), "is empty"));
        }
    }
    Ok(JsonnetOptions {
        ext_vars: vars("extVars")?,
        tlas: vars("tlas")?,
        libs,
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
