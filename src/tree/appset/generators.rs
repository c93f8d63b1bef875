//! The generators: each turns its spec into parameter sets. Parameters are
//! flat dotted keys with text values for fasttemplate (`path.basename`,
//! `path[0]`, `cluster.name`), nested values for Go templates (`.path.basename`,
//! `.path.segments`), as Argo CD makes them.

use std::collections::BTreeMap;

use globset::{Glob, GlobMatcher};
use serde_json::{json, Map, Value};

use super::fasttemplate::flatten;
use super::gotemplate::normalize;
use super::{fail, AppSetError, Expansion, ParamSet, IN_CLUSTER_NAME, IN_CLUSTER_SERVER};

/// How deeply matrix and merge generators may nest.
const MAX_NESTING: usize = 4;
/// Largest git generator file read.
const MAX_FILE_BYTES: u64 = 4 << 20;

const KINDS: &[&str] = &[
    "list",
    "clusters",
    "git",
    "matrix",
    "merge",
    "namespaceDirectories",
    "clusterNamespaceDirectories",
];
const UNSUPPORTED: &[&str] = &[
    "scmProvider",
    "pullRequest",
    "clusterDecisionResource",
    "plugin",
];

/// Runs one generator (a mapping with one generator kind and an optional
/// `selector`).
pub(super) fn run(
    exp: &Expansion,
    g: &Value,
    at: &str,
    depth: usize,
) -> Result<Vec<ParamSet>, AppSetError> {
    let Some(m) = g.as_object() else {
        return fail(at, "must be a mapping");
    };
    let kinds: Vec<&String> = m.keys().filter(|k| *k != "selector").collect();
    let kind = match kinds.as_slice() {
        [k] => k.as_str(),
        [] => {
            return fail(
                at,
                format!("names no generator (one of {})", KINDS.join(", ")),
            )
        }
        many => {
            return fail(
                at,
                format!(
                    "names {} generators ({}); one per entry",
                    many.len(),
                    many.iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        }
    };
    let here = format!("{at}.{kind}");
    if UNSUPPORTED.contains(&kind) {
        return fail(
            &here,
            format!(
                "the {kind} generator is not supported by kubesync (supported: {})",
                KINDS.join(", ")
            ),
        );
    }
    let spec = &m[kind];
    if !spec.is_object() {
        return fail(&here, "must be a mapping");
    }
    let mut sets = match kind {
        "list" => list(exp, spec, &here)?,
        "clusters" => clusters(exp, spec, &here)?,
        "git" => git(exp, spec, &here)?,
        "matrix" => matrix(exp, spec, &here, depth)?,
        "merge" => merge(exp, spec, &here, depth)?,
        "namespaceDirectories" => namespace_directories(exp, spec, &here)?,
        "clusterNamespaceDirectories" => cluster_namespace_directories(exp, spec, &here)?,
        other => {
            return fail(
                at,
                format!(
                    "unknown generator \"{other}\" (supported: {})",
                    KINDS.join(", ")
                ),
            )
        }
    };
    if let Some(t) = spec.get("template").filter(|t| !t.is_null()) {
        if !t.is_object() {
            return fail(&format!("{here}.template"), "must be a mapping");
        }
        for s in &mut sets {
            s.template = Some(t.clone());
        }
    }
    if let Some(sel) = m.get("selector").filter(|s| !s.is_null()) {
        let mut kept = Vec::new();
        for s in sets {
            let mut flat = Map::new();
            flatten("", &Value::Object(s.params.clone()), &mut flat);
            if selector_matches(sel, &flat).map_err(|e| AppSetError {
                at: format!("{at}.selector"),
                message: e,
            })? {
                kept.push(s);
            }
        }
        sets = kept;
    }
    Ok(sets)
}

fn opt_str(spec: &Value, key: &str, at: &str) -> Result<Option<String>, AppSetError> {
    match spec.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => fail(&format!("{at}.{key}"), "must be a string"),
    }
}

fn opt_bool(spec: &Value, key: &str, at: &str) -> Result<bool, AppSetError> {
    match spec.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => fail(&format!("{at}.{key}"), "must be true or false"),
    }
}

/// A parameter set from one generator's own values: as written for Go
/// templates, flattened for fasttemplate.
fn params_of(exp: &Expansion, v: &Map<String, Value>) -> Map<String, Value> {
    if exp.go {
        v.clone()
    } else {
        let mut out = Map::new();
        flatten("", &Value::Object(v.clone()), &mut out);
        out
    }
}

/// Adds a generator's `values` (templated with the parameters so far) as
/// `values.KEY`.
fn add_values(
    exp: &Expansion,
    spec: &Value,
    at: &str,
    params: &mut Map<String, Value>,
) -> Result<(), AppSetError> {
    let Some(values) = spec.get("values").filter(|v| !v.is_null()) else {
        return Ok(());
    };
    let Some(values) = values.as_object() else {
        return fail(&format!("{at}.values"), "must be a mapping of strings");
    };
    let mut rendered = Map::new();
    for (k, v) in values {
        let text = match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let r = exp.render_str(&text, params).map_err(|e| AppSetError {
            at: format!("{at}.values.{k}"),
            message: e,
        })?;
        rendered.insert(k.clone(), Value::String(r));
    }
    if exp.go {
        params.insert("values".into(), Value::Object(rendered));
    } else {
        for (k, v) in rendered {
            params.insert(format!("values.{k}"), v);
        }
    }
    Ok(())
}

fn list(exp: &Expansion, spec: &Value, at: &str) -> Result<Vec<ParamSet>, AppSetError> {
    let mut elements: Vec<Value> = match spec.get("elements") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a.clone(),
        Some(_) => return fail(&format!("{at}.elements"), "must be a sequence of mappings"),
    };
    if let Some(text) = opt_str(spec, "elementsYaml", at)? {
        let parsed: Value = serde_yaml::from_str(&text).map_err(|e| AppSetError {
            at: format!("{at}.elementsYaml"),
            message: format!("is not valid YAML: {e}"),
        })?;
        match parsed {
            Value::Array(a) => elements.extend(a),
            Value::Null => {}
            _ => {
                return fail(
                    &format!("{at}.elementsYaml"),
                    "must be a YAML sequence of mappings",
                )
            }
        }
    }
    elements
        .iter()
        .enumerate()
        .map(|(i, e)| match e {
            Value::Object(m) => Ok(ParamSet::new(params_of(exp, m))),
            _ => fail(&format!("{at}.elements[{i}]"), "must be a mapping"),
        })
        .collect()
}

fn clusters(exp: &Expansion, spec: &Value, at: &str) -> Result<Vec<ParamSet>, AppSetError> {
    let env = exp.ctx.env;
    let name = env
        .cluster_name
        .clone()
        .unwrap_or_else(|| IN_CLUSTER_NAME.to_string());
    let labels: Map<String, Value> = env
        .cluster_labels
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    if let Some(sel) = spec.get("selector").filter(|s| !s.is_null()) {
        let matches = selector_matches(sel, &labels).map_err(|e| AppSetError {
            at: format!("{at}.selector"),
            message: e,
        })?;
        if !matches {
            return Ok(Vec::new());
        }
    }
    let nested = json!({
        "name": name,
        "nameNormalized": normalize(&name),
        "server": IN_CLUSTER_SERVER,
        "project": "",
        "metadata": {"labels": labels, "annotations": {}},
    });
    let mut params = match nested {
        Value::Object(m) => params_of(exp, &m),
        _ => Map::new(),
    };
    add_values(exp, spec, at, &mut params)?;
    Ok(vec![ParamSet::new(params)])
}

/// A Go `path.Match`-like glob: `*` and `?` stay within one path segment,
/// `[...]` classes; `**` also crosses segments (doublestar, as Argo CD's
/// file globbing).
fn glob(pattern: &str, at: &str) -> Result<GlobMatcher, AppSetError> {
    let p = pattern.trim_start_matches('/');
    let p = if p.is_empty() { "." } else { p };
    globset::GlobBuilder::new(p)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .or_else(|_| Glob::new(p))
        .map(|g| g.compile_matcher())
        .map_err(|e| AppSetError {
            at: at.to_string(),
            message: format!("invalid path pattern \"{pattern}\": {e}"),
        })
}

/// `path`, `path.basename`, … for a directory (Argo CD's git parameters).
fn path_params(
    exp: &Expansion,
    dir: &str,
    file: Option<&str>,
    prefix: Option<&str>,
) -> Map<String, Value> {
    let segments: Vec<&str> = if dir.is_empty() || dir == "." {
        Vec::new()
    } else {
        dir.split('/').collect()
    };
    let basename = segments.last().copied().unwrap_or(".");
    let mut p = json!({
        "path": if segments.is_empty() { "." } else { dir },
        "basename": basename,
        "basenameNormalized": normalize(basename),
        "segments": segments,
    });
    if let Some(f) = file {
        p["filename"] = json!(f);
        p["filenameNormalized"] = json!(normalize(f));
    }
    let mut out = Map::new();
    if exp.go {
        match prefix {
            Some(pre) => {
                out.insert(pre.to_string(), json!({ "path": p }));
            }
            None => {
                out.insert("path".into(), p);
            }
        }
    } else {
        let key = |k: &str| match prefix {
            Some(pre) => format!("{pre}.{k}"),
            None => k.to_string(),
        };
        out.insert(key("path"), p["path"].clone());
        for k in [
            "basename",
            "basenameNormalized",
            "filename",
            "filenameNormalized",
        ] {
            if let Some(v) = p.get(k) {
                out.insert(key(&format!("path.{k}")), v.clone());
            }
        }
        for (i, s) in segments.iter().enumerate() {
            out.insert(key(&format!("path[{i}]")), json!(s));
        }
    }
    out
}

fn git(exp: &Expansion, spec: &Value, at: &str) -> Result<Vec<ParamSet>, AppSetError> {
    let repo = opt_str(spec, "repoURL", at)?;
    let revision = opt_str(spec, "revision", at)?;
    let prefix = opt_str(spec, "pathParamPrefix", at)?;
    let has_dirs = spec.get("directories").is_some_and(|v| !v.is_null());
    let has_files = spec.get("files").is_some_and(|v| !v.is_null());
    if has_dirs == has_files {
        return fail(at, "needs exactly one of directories and files");
    }
    let field = if has_dirs { "directories" } else { "files" };
    let Some(items) = spec[field].as_array() else {
        return fail(
            &format!("{at}.{field}"),
            "must be a sequence of {path, exclude}",
        );
    };
    let mut include = Vec::new();
    let mut exclude = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let iat = format!("{at}.{field}[{i}]");
        let Some(path) = opt_str(item, "path", &iat)? else {
            return fail(&format!("{iat}.path"), "is required");
        };
        let m = glob(&path, &format!("{iat}.path"))?;
        if opt_bool(item, "exclude", &iat)? {
            exclude.push(m);
        } else {
            include.push(m);
        }
    }
    let listing = exp
        .listing(repo.as_deref(), revision.as_deref())
        .map_err(|e| AppSetError {
            at: at.to_string(),
            message: e,
        })?;
    let selected =
        |p: &str| include.iter().any(|g| g.is_match(p)) && !exclude.iter().any(|g| g.is_match(p));
    let mut out = Vec::new();
    if has_dirs {
        for d in listing.dirs.iter().filter(|d| selected(d)) {
            let mut params = path_params(exp, d, None, prefix.as_deref());
            add_values(exp, spec, at, &mut params)?;
            out.push(ParamSet::new(params));
        }
        return Ok(out);
    }
    for f in listing.files.iter().filter(|f| selected(f)) {
        let full = listing.checkout.dir.join(f);
        if !listing.checkout.contains(&full) {
            return fail(at, format!("{f} leads outside the repository"));
        }
        let size = std::fs::metadata(&full).map(|m| m.len()).unwrap_or(0);
        if size > MAX_FILE_BYTES {
            return fail(
                at,
                format!("{f} is larger than {} MiB", MAX_FILE_BYTES >> 20),
            );
        }
        let text = std::fs::read_to_string(&full).map_err(|e| AppSetError {
            at: at.to_string(),
            message: format!("cannot read {f}: {e}"),
        })?;
        let content: Value = if text.trim().is_empty() {
            Value::Null
        } else {
            crate::model::yaml::documents(&text)
                .map_err(|e| AppSetError {
                    at: at.to_string(),
                    message: format!("{f} is not valid YAML or JSON: {e}"),
                })?
                .into_iter()
                .next()
                .map(|(_, v)| v)
                .unwrap_or(Value::Null)
        };
        // A file holding a sequence gives one parameter set per element.
        let entries: Vec<Map<String, Value>> = match content {
            Value::Object(m) => vec![m],
            Value::Null => vec![Map::new()],
            Value::Array(a) => a
                .into_iter()
                .map(|v| match v {
                    Value::Object(m) => Ok(m),
                    _ => fail(at, format!("{f}: each element must be a mapping")),
                })
                .collect::<Result<_, _>>()?,
            _ => {
                return fail(
                    at,
                    format!("{f} must hold a mapping or a sequence of mappings"),
                )
            }
        };
        let (dir, filename) = match f.rsplit_once('/') {
            Some((d, n)) => (d, n),
            None => ("", f.as_str()),
        };
        for entry in entries {
            let mut params = params_of(exp, &entry);
            params.extend(path_params(exp, dir, Some(filename), prefix.as_deref()));
            add_values(exp, spec, at, &mut params)?;
            out.push(ParamSet::new(params));
        }
    }
    Ok(out)
}

/// Matrix and merge generators nest at most [`MAX_NESTING`] levels, both
/// kinds counted alike.
fn check_nesting(at: &str, depth: usize) -> Result<(), AppSetError> {
    if depth >= MAX_NESTING {
        return fail(
            at,
            format!("matrix and merge generators nest deeper than {MAX_NESTING} levels"),
        );
    }
    Ok(())
}

/// The parameter sets of one merge child that take part in the merge, as
/// (merge key, position); two with the same key are an error naming the
/// child (`at`) and the keys.
fn keyed(
    sets: &[ParamSet],
    key_of: impl Fn(&ParamSet) -> Option<String>,
    keys: &[String],
    at: &str,
) -> Result<Vec<(String, usize)>, AppSetError> {
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for (i, ps) in sets.iter().enumerate() {
        let Some(k) = key_of(ps) else { continue };
        if !seen.insert(k.clone()) {
            return fail(
                at,
                format!(
                    "two parameter sets have the same merge keys ({})",
                    keys.join(", ")
                ),
            );
        }
        out.push((k, i));
    }
    Ok(out)
}

/// The child generators of a matrix or merge.
fn children<'v>(spec: &'v Value, at: &str) -> Result<&'v Vec<Value>, AppSetError> {
    match spec.get("generators") {
        Some(Value::Array(a)) => Ok(a),
        _ => fail(
            &format!("{at}.generators"),
            "is required (a sequence of generators)",
        ),
    }
}

fn matrix(
    exp: &Expansion,
    spec: &Value,
    at: &str,
    depth: usize,
) -> Result<Vec<ParamSet>, AppSetError> {
    check_nesting(at, depth)?;
    let gens = children(spec, at)?;
    if gens.len() != 2 {
        return fail(
            &format!("{at}.generators"),
            format!(
                "a matrix combines exactly two generators, found {}",
                gens.len()
            ),
        );
    }
    let first = run(exp, &gens[0], &format!("{at}.generators[0]"), depth + 1)?;
    let mut out = Vec::new();
    for a in first {
        // The second generator may use the first one's parameters.
        let second_spec = exp
            .render_value(&gens[1], &a.params)
            .map_err(|e| AppSetError {
                at: format!("{at}.generators[1]"),
                message: e,
            })?;
        let second = run(exp, &second_spec, &format!("{at}.generators[1]"), depth + 1)?;
        for b in second {
            let params = combine(exp, &a.params, &b.params).map_err(|e| AppSetError {
                at: at.to_string(),
                message: e,
            })?;
            out.push(ParamSet {
                params,
                template: b.template.clone().or_else(|| a.template.clone()),
                namespace_label: b
                    .namespace_label
                    .clone()
                    .or_else(|| a.namespace_label.clone()),
            });
        }
    }
    Ok(out)
}

/// A matrix's two parameter sets as one: for fasttemplate a key both define
/// with different values is an error (as in Argo CD); for Go templates the
/// second is merged over the first.
fn combine(
    exp: &Expansion,
    a: &Map<String, Value>,
    b: &Map<String, Value>,
) -> Result<Map<String, Value>, String> {
    if exp.go {
        let mut out = Value::Object(a.clone());
        crate::model::deep_merge(&mut out, &Value::Object(b.clone()));
        return Ok(match out {
            Value::Object(m) => m,
            _ => Map::new(),
        });
    }
    let mut out = a.clone();
    for (k, v) in b {
        match out.get(k) {
            Some(existing) if existing != v => {
                return Err(format!(
                    "found duplicate key \"{k}\" with different values: {existing} and {v}"
                ))
            }
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    Ok(out)
}

fn lookup<'v>(params: &'v Map<String, Value>, key: &str) -> Option<&'v Value> {
    if let Some(v) = params.get(key) {
        return Some(v);
    }
    // Go templates: a dotted key reads nested values.
    let mut parts = key.split('.');
    let mut cur = params.get(parts.next()?)?;
    for p in parts {
        cur = cur.get(p)?;
    }
    Some(cur)
}

fn merge(
    exp: &Expansion,
    spec: &Value,
    at: &str,
    depth: usize,
) -> Result<Vec<ParamSet>, AppSetError> {
    check_nesting(at, depth)?;
    let keys: Vec<String> = match spec.get("mergeKeys") {
        Some(Value::Array(a)) if !a.is_empty() => a
            .iter()
            .map(|k| k.as_str().map(String::from))
            .collect::<Option<_>>()
            .ok_or_else(|| AppSetError {
                at: format!("{at}.mergeKeys"),
                message: "must be a sequence of strings".into(),
            })?,
        _ => return fail(&format!("{at}.mergeKeys"), "is required (at least one key)"),
    };
    let gens = children(spec, at)?;
    if gens.len() < 2 {
        return fail(
            &format!("{at}.generators"),
            "a merge needs at least two generators",
        );
    }
    // A parameter set's merge key: its values at `mergeKeys` (`None` when it
    // lacks one: it takes no part in the merge).
    let key_of = |ps: &ParamSet| -> Option<String> {
        let parts: Option<Vec<String>> = keys
            .iter()
            .map(|k| lookup(&ps.params, k).map(Value::to_string))
            .collect();
        parts.map(|p| p.join("\u{1f}"))
    };
    let at0 = format!("{at}.generators[0]");
    let mut base = run(exp, &gens[0], &at0, depth + 1)?;
    let index: BTreeMap<String, usize> = keyed(&base, key_of, &keys, &at0)?.into_iter().collect();
    for (gi, g) in gens.iter().enumerate().skip(1) {
        let gat = format!("{at}.generators[{gi}]");
        let sets = run(exp, g, &gat, depth + 1)?;
        for (k, j) in keyed(&sets, key_of, &keys, &gat)? {
            if let Some(&i) = index.get(&k) {
                let mut merged = Value::Object(base[i].params.clone());
                crate::model::deep_merge(&mut merged, &Value::Object(sets[j].params.clone()));
                if let Value::Object(m) = merged {
                    base[i].params = m;
                }
            }
        }
    }
    Ok(base)
}

/// Matches Kubernetes label selector semantics (`matchLabels`,
/// `matchExpressions` with In, NotIn, Exists, DoesNotExist) against `labels`.
pub(super) fn selector_matches(sel: &Value, labels: &Map<String, Value>) -> Result<bool, String> {
    let Some(sel) = sel.as_object() else {
        return Err("must be a mapping".into());
    };
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if let Some(ml) = sel.get("matchLabels").filter(|v| !v.is_null()) {
        let Some(ml) = ml.as_object() else {
            return Err("matchLabels must be a mapping".into());
        };
        for (k, v) in ml {
            if labels.get(k).map(text) != Some(text(v)) {
                return Ok(false);
            }
        }
    }
    if let Some(exprs) = sel.get("matchExpressions").filter(|v| !v.is_null()) {
        let Some(exprs) = exprs.as_array() else {
            return Err("matchExpressions must be a sequence".into());
        };
        for (i, e) in exprs.iter().enumerate() {
            let key = e
                .get("key")
                .and_then(Value::as_str)
                .ok_or(format!("matchExpressions[{i}].key is required"))?;
            let op = e.get("operator").and_then(Value::as_str).unwrap_or("");
            let values: Vec<String> = e
                .get("values")
                .and_then(Value::as_array)
                .map(|a| a.iter().map(text).collect())
                .unwrap_or_default();
            let have = labels.get(key).map(text);
            let ok = match op {
                "In" => have.is_some_and(|h| values.contains(&h)),
                "NotIn" => !have.is_some_and(|h| values.contains(&h)),
                "Exists" => have.is_some(),
                "DoesNotExist" => have.is_none(),
                other => return Err(format!("matchExpressions[{i}].operator \"{other}\" is not In, NotIn, Exists or DoesNotExist")),
            };
            if !ok {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// The parameters of a namespace directory: `name` and `namespace` (the
/// directory's name), `path`…, plus `cluster` for the cluster layout.
fn namespace_params(
    exp: &Expansion,
    dir: &str,
    ns: &str,
    cluster: Option<&str>,
) -> Map<String, Value> {
    let mut params = path_params(exp, dir, None, None);
    params.insert("name".into(), json!(ns));
    params.insert("namespace".into(), json!(ns));
    if let Some(c) = cluster {
        params.insert("cluster".into(), json!(c));
    }
    params
}

/// The level-1 directories of `base` in a listing.
fn children_of<'l>(
    dirs: &'l [String],
    base: &str,
) -> impl Iterator<Item = (&'l str, &'l str)> + 'l {
    let prefix = if base == "." || base.is_empty() {
        String::new()
    } else {
        format!("{}/", base.trim_matches('/'))
    };
    dirs.iter().filter_map(move |d| {
        let rest = d.strip_prefix(prefix.as_str())?;
        (!rest.is_empty() && !rest.contains('/')).then_some((d.as_str(), rest))
    })
}

fn base_path(spec: &Value, at: &str) -> Result<String, AppSetError> {
    let p = opt_str(spec, "path", at)?.unwrap_or_else(|| ".".into());
    crate::model::RepoPath::new(&p)
        .map(|p| p.as_str().to_string())
        .map_err(|e| AppSetError {
            at: format!("{at}.path"),
            message: e,
        })
}

/// kube-applier's layout: every level-1 directory of `path` is the app of the
/// namespace of that name. With `label`, an app is only synced while its
/// namespace carries that label `on` (or `dry-run`: reported, not written),
/// which is checked where the cluster is known.
fn namespace_directories(
    exp: &Expansion,
    spec: &Value,
    at: &str,
) -> Result<Vec<ParamSet>, AppSetError> {
    let base = base_path(spec, at)?;
    let label = opt_str(spec, "label", at)?;
    if let Some(l) = &label {
        crate::model::validate_dns1123_subdomain(l.rsplit('/').next().unwrap_or(l)).map_err(
            |e| AppSetError {
                at: format!("{at}.label"),
                message: format!("\"{l}\" is not a label key: {e}"),
            },
        )?;
    }
    let listing = exp
        .listing(
            opt_str(spec, "repoURL", at)?.as_deref(),
            opt_str(spec, "revision", at)?.as_deref(),
        )
        .map_err(|e| AppSetError {
            at: at.to_string(),
            message: e,
        })?;
    let mut out = Vec::new();
    for (dir, ns) in children_of(&listing.dirs, &base) {
        if crate::model::validate_dns1123_label(ns).is_err() {
            // Not a namespace name (kube-applier would fail to apply it): skipped.
            continue;
        }
        let mut ps = ParamSet::new(namespace_params(exp, dir, ns, None));
        add_values(exp, spec, at, &mut ps.params)?;
        ps.namespace_label = label.clone();
        out.push(ps);
    }
    Ok(out)
}

/// git-sync-operator's layout: `path/$CLUSTER/$namespace` directories of this
/// cluster, plus `path/$namespace` for the managed namespaces that have no
/// cluster-specific directory; with managed namespaces (`namespaces`, else
/// `MANAGED_NAMESPACES`), only those.
fn cluster_namespace_directories(
    exp: &Expansion,
    spec: &Value,
    at: &str,
) -> Result<Vec<ParamSet>, AppSetError> {
    let base = base_path(spec, at)?;
    let cluster =
        match opt_str(spec, "cluster", at)?.or_else(|| exp.ctx.env.cluster_name.clone()) {
            Some(c) => c,
            None => return fail(
                at,
                "names no cluster: set cluster, or run kubesync with --cluster-name (CLUSTER_NAME)",
            ),
        };
    if cluster.contains('/') || cluster == ".." || cluster == "." {
        return fail(
            &format!("{at}.cluster"),
            format!("\"{cluster}\" is not a directory name"),
        );
    }
    let managed: Option<Vec<String>> = match spec.get("namespaces") {
        None | Some(Value::Null) => exp.ctx.env.managed_namespaces.clone(),
        Some(Value::Array(a)) => Some(
            a.iter()
                .map(|v| v.as_str().map(String::from))
                .collect::<Option<_>>()
                .ok_or_else(|| AppSetError {
                    at: format!("{at}.namespaces"),
                    message: "must be a sequence of namespace names".into(),
                })?,
        ),
        Some(Value::String(s)) => Some(split_list(s)),
        Some(_) => {
            return fail(
                &format!("{at}.namespaces"),
                "must be a sequence of namespace names",
            )
        }
    };
    let listing = exp
        .listing(
            opt_str(spec, "repoURL", at)?.as_deref(),
            opt_str(spec, "revision", at)?.as_deref(),
        )
        .map_err(|e| AppSetError {
            at: at.to_string(),
            message: e,
        })?;
    let cluster_dir = if base == "." {
        cluster.clone()
    } else {
        format!("{base}/{cluster}")
    };
    let managed_ok = |ns: &str| managed.as_ref().is_none_or(|m| m.iter().any(|x| x == ns));
    let mut out = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (dir, ns) in children_of(&listing.dirs, &cluster_dir) {
        if !managed_ok(ns) || crate::model::validate_dns1123_label(ns).is_err() {
            continue;
        }
        seen.insert(ns.to_string());
        let mut ps = ParamSet::new(namespace_params(exp, dir, ns, Some(&cluster)));
        add_values(exp, spec, at, &mut ps.params)?;
        out.push(ps);
    }
    if let Some(managed) = &managed {
        for (dir, ns) in children_of(&listing.dirs, &base) {
            if seen.contains(ns) || !managed.iter().any(|m| m == ns) {
                continue;
            }
            let mut ps = ParamSet::new(namespace_params(exp, dir, ns, Some(&cluster)));
            add_values(exp, spec, at, &mut ps.params)?;
            out.push(ps);
        }
    }
    Ok(out)
}

/// `a,b c` → `[a, b, c]` (the seeds' comma- or space-separated lists).
pub fn split_list(s: &str) -> Vec<String> {
    s.split([',', ' '])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}
