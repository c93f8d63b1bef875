//! The commands that need no cluster: `tree`, `render`, `plan`.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::fmt::Write as _;

use serde_json::{json, Value};

use super::error::CliError;
use super::output::{or_dash, Table};
use super::stdio::{errln, out, outln};
use super::{GlobalArgs, Outcome, OutputFormat};
use crate::graph::{AppGraph, EdgeKind, GraphError};
use crate::model::{is_application, load_root, looks_like_application, AppName};
use crate::render::Renderer;
use crate::source::{redact_url, GitAuth, SourceOptions, Sources};
use crate::tree::{expand, AppNode, AppTree, ExpandOptions, FailureKind};

/// The expanded tree and, when it can be ordered, its graph.
pub struct Loaded {
    pub tree: AppTree,
    pub graph: Result<AppGraph, Vec<GraphError>>,
}

impl Loaded {
    /// Whether the tree itself is misconfigured: an invalid Application
    /// manifest, a duplicate name, an app rendering itself, absurd depth
    /// ([`FailureKind::Config`] on a node), a cycle or an unknown dependency
    /// (the graph). Every command exits 2 on these, and the cluster commands
    /// stop before connecting. An app whose own source or render fails is not
    /// one of them: that app fails alone (exit 1).
    pub fn has_config_errors(&self) -> bool {
        self.graph.is_err()
            || self
                .tree
                .failed()
                .any(|n| n.failure().map(|f| f.kind) == Some(FailureKind::Config))
    }

    /// Exit code for what loading found: 2 for configuration errors (see
    /// [`Self::has_config_errors`]), 1 for render failures.
    pub fn outcome(&self) -> Outcome {
        if self.has_config_errors() {
            Outcome::Usage
        } else if self.tree.failed().next().is_some() {
            Outcome::Failed
        } else {
            Outcome::Ok
        }
    }

    /// Prints every problem to stderr, one line each, naming the app.
    pub fn report_problems(&self) {
        for n in self.tree.failed() {
            if let Some(f) = n.failure() {
                errln!("error: application \"{}\": {}", n.app.name, f.message);
            }
        }
        if let Err(errs) = &self.graph {
            for e in errs {
                errln!("error: {e}");
            }
        }
    }
}

/// Loads the root, expands and renders the whole tree, and prints each app's
/// render warnings to stderr. Fails only on what stops everything: an
/// unreadable or invalid root, a source setup error.
pub fn load(global: &GlobalArgs) -> Result<Loaded, CliError> {
    let roots = load_root(&global.root)?;
    let sources = Sources::new(SourceOptions {
        root_manifest: global.root.clone(),
        overrides: global.repo_overrides.clone(),
        cache_dir: global.cache_dir.clone(),
        git_auth: Some(GitAuth::load(&global.git_auth)?),
    })?;
    let renderer = Renderer::new();
    let tree = expand(
        roots,
        &sources,
        &renderer,
        &ExpandOptions {
            // Renders are CPU-bound (helm, kustomize): at most the CPU-based default.
            parallel: global
                .parallel
                .clamp(1, ExpandOptions::default().parallel.max(4)),
            ..ExpandOptions::default()
        },
    );
    // Each app's render warnings, once, whatever the command.
    for n in tree.depth_first() {
        for w in n.warnings() {
            errln!("warning: application \"{}\": {w}", n.app.name);
        }
    }
    let graph = tree.graph();
    Ok(Loaded { tree, graph })
}

fn dependencies(node: &AppNode) -> String {
    let names: Vec<&str> = node.app.depends_on.iter().map(AppName::as_str).collect();
    or_dash(names.join(","))
}

fn status_word(node: &AppNode) -> &'static str {
    match node.failure() {
        None => "rendered",
        Some(_) => "failed",
    }
}

/// Live (sync, health) per app name, from the cluster's Application objects.
pub type LiveStatus = std::collections::HashMap<String, (String, String)>;

/// `kubesync tree`
pub fn tree(global: &GlobalArgs, live: Option<&LiveStatus>) -> Result<Outcome, CliError> {
    let loaded = load(global)?;
    let tree = &loaded.tree;
    match global.output {
        OutputFormat::Text => {
            let mut header = vec![
                "NAME",
                "TIER",
                "NAMESPACE",
                "RENDERER",
                "OBJECTS",
                "DEPENDS ON",
                "STATUS",
            ];
            if live.is_some() {
                header.extend(["SYNC", "HEALTH"]);
            }
            let mut t = Table::new(&header);
            for (node, prefix) in with_tree_prefixes(tree) {
                let mut row = vec![
                    format!("{prefix}{}", node.app.name),
                    node.app.tier.to_string(),
                    or_dash(node.app.destination.namespace.as_deref().unwrap_or("")),
                    node.renderer_name(),
                    node.failure()
                        .map(|_| "-".to_string())
                        .unwrap_or_else(|| node.objects().count().to_string()),
                    dependencies(node),
                    status_word(node).to_string(),
                ];
                if let Some(live) = live {
                    let (sync, health) = live
                        .get(node.app.name.as_str())
                        .cloned()
                        .unwrap_or_default();
                    row.push(or_dash(sync));
                    row.push(or_dash(health));
                }
                t.row(row);
            }
            out!("{}", t.render());
        }
        OutputFormat::Json => {
            let apps: Vec<Value> = tree
                .depth_first()
                .into_iter()
                .map(|n| {
                    let mut v = node_json(n, &loaded.graph);
                    if let Some((sync, health)) = live.and_then(|l| l.get(n.app.name.as_str())) {
                        v["live"] = json!({"sync": sync, "health": health});
                    }
                    v
                })
                .collect();
            let out = json!({
                "apps": apps,
                "levels": levels_json(&loaded.graph),
                "errors": graph_errors_json(&loaded.graph),
            });
            outln!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
        }
        OutputFormat::Dot => out!("{}", dot(tree, &loaded.graph)),
    }
    loaded.report_problems();
    Ok(loaded.outcome())
}

/// Tree-drawing prefixes (`├─ `, `│  └─ `) in depth-first order.
fn with_tree_prefixes(tree: &AppTree) -> Vec<(&AppNode, String)> {
    let mut out = Vec::new();
    fn walk<'a>(
        tree: &'a AppTree,
        node: &'a AppNode,
        lead: &str,
        prefix: String,
        out: &mut Vec<(&'a AppNode, String)>,
    ) {
        out.push((node, prefix));
        let n = node.children.len();
        for (i, c) in node.children.iter().enumerate() {
            let last = i + 1 == n;
            if let Some(child) = tree.get(c) {
                let branch = if last { "└─ " } else { "├─ " };
                let cont = if last { "   " } else { "│  " };
                walk(
                    tree,
                    child,
                    &format!("{lead}{cont}"),
                    format!("{lead}{branch}"),
                    out,
                );
            }
        }
    }
    for r in &tree.roots {
        if let Some(node) = tree.get(r) {
            walk(tree, node, "", String::new(), &mut out);
        }
    }
    out
}

fn node_json(n: &AppNode, graph: &Result<AppGraph, Vec<GraphError>>) -> Value {
    let prerequisites: Vec<Value> = match graph {
        Ok(g) => g
            .prerequisites(&n.app.name)
            .into_iter()
            .map(|(a, k)| json!({"app": a, "reason": k}))
            .collect(),
        Err(_) => Vec::new(),
    };
    json!({
        "name": n.app.name,
        "parent": n.parent,
        "children": n.children,
        "depth": n.depth,
        "tier": n.app.tier,
        "flavor": n.app.flavor,
        "namespace": n.app.destination.namespace,
        "renderer": n.renderer_name(),
        "repo": n.checkout.as_ref().map(|c| c.repo.clone()),
        "path": n.app.source.path,
        "revision": n.checkout.as_ref().map(|c| c.revision.id().map(str::to_string).unwrap_or_else(|| "worktree".into())),
        "dependsOn": n.app.depends_on,
        "prerequisites": prerequisites,
        "syncWave": n.app.sync_wave,
        "objects": n.failure().is_none().then(|| n.objects().count()),
        "status": status_word(n),
        "error": n.failure().map(|f| json!({"kind": f.kind, "message": f.message})),
        "warnings": n.warnings(),
        "origin": n.app.origin.to_string(),
    })
}

fn levels_json(graph: &Result<AppGraph, Vec<GraphError>>) -> Value {
    match graph {
        Ok(g) => json!(g.levels()),
        Err(_) => Value::Null,
    }
}

fn graph_errors_json(graph: &Result<AppGraph, Vec<GraphError>>) -> Value {
    match graph {
        Ok(_) => json!([]),
        Err(errs) => json!(errs.iter().map(|e| e.to_string()).collect::<Vec<_>>()),
    }
}

fn dot(tree: &AppTree, graph: &Result<AppGraph, Vec<GraphError>>) -> String {
    let mut s =
        String::from("digraph kubesync {\n  rankdir=LR;\n  node [shape=box, style=rounded];\n");
    for n in tree.nodes() {
        let color = if n.failure().is_some() {
            ", color=red"
        } else {
            ""
        };
        let _ = writeln!(
            s,
            "  \"{}\" [label=\"{}\\n{} · {}\"{color}];",
            n.app.name,
            n.app.name,
            n.app.tier,
            n.renderer_name()
        );
    }
    match graph {
        Ok(g) => {
            for (from, to, kind) in g.edges() {
                let style = match kind {
                    EdgeKind::Parent => "style=dashed, color=gray",
                    EdgeKind::DependsOn => "color=black",
                    EdgeKind::SyncWave => "style=dotted, color=blue",
                };
                let _ = writeln!(s, "  \"{from}\" -> \"{to}\" [{style}];");
            }
        }
        Err(_) => {
            for n in tree.nodes() {
                if let Some(p) = &n.parent {
                    let _ = writeln!(
                        s,
                        "  \"{p}\" -> \"{}\" [style=dashed, color=gray];",
                        n.app.name
                    );
                }
                for d in &n.app.depends_on {
                    let _ = writeln!(s, "  \"{d}\" -> \"{}\";", n.app.name);
                }
            }
        }
    }
    s.push_str("}\n");
    s
}

/// `kubesync render [APP]...`
pub fn render(global: &GlobalArgs, apps: &[String]) -> Result<Outcome, CliError> {
    let loaded = load(global)?;
    if loaded.has_config_errors() {
        loaded.report_problems();
        return Err(CliError::Misconfigured {
            consequence: "nothing was printed",
        });
    }
    let tree = &loaded.tree;
    let selected: Vec<&AppNode> = if apps.is_empty() {
        tree.depth_first()
    } else {
        resolve_names(&loaded, apps, global)?;
        let mut seen = BTreeSet::new();
        apps.iter()
            .filter_map(|a| tree.get_str(a))
            .filter(|n| seen.insert(n.app.name.clone()))
            .collect()
    };
    let failed: Vec<&&AppNode> = selected.iter().filter(|n| n.failure().is_some()).collect();
    if !failed.is_empty() {
        for n in &failed {
            if let Some(f) = n.failure() {
                errln!("error: application \"{}\": {}", n.app.name, f.message);
            }
        }
        return Err(CliError::RenderFailed {
            failed: failed.len(),
            total: selected.len(),
        });
    }
    match global.output {
        OutputFormat::Json => {
            let items: Vec<Cow<Value>> = selected
                .iter()
                .flat_map(|n| n.manifests().iter().map(|m| without_credentials(&m.object)))
                .collect();
            let list = json!({"apiVersion": "v1", "kind": "List", "metadata": {}, "items": items});
            outln!(
                "{}",
                serde_json::to_string_pretty(&list).unwrap_or_default()
            );
        }
        _ => {
            let mut out = String::new();
            for n in &selected {
                for m in n.manifests() {
                    let object = without_credentials(&m.object);
                    let note = if matches!(object, Cow::Owned(_)) {
                        " (credentials removed from repoURL)"
                    } else {
                        ""
                    };
                    let _ = writeln!(out, "---\n# Source: {}: {}{note}", n.app.name, m.origin);
                    out.push_str(&crate::model::yaml_emit::to_string(&object));
                }
            }
            out!("{out}");
        }
    }
    Ok(Outcome::Ok)
}

/// `obj` as `render` may print it: an Application (either kind) with the
/// credentials in its `spec.source.repoURL` / `spec.sources[].repoURL`
/// removed, the same way errors and logs show URLs; borrowed as it is when
/// there is nothing to remove.
fn without_credentials(obj: &Value) -> Cow<'_, Value> {
    if !is_application(obj) && !looks_like_application(obj) {
        return Cow::Borrowed(obj);
    }
    let mut pointers = vec!["/spec/source/repoURL".to_string()];
    if let Some(list) = obj.pointer("/spec/sources").and_then(Value::as_array) {
        pointers.extend((0..list.len()).map(|i| format!("/spec/sources/{i}/repoURL")));
    }
    let mut out = Cow::Borrowed(obj);
    for p in pointers {
        let Some(url) = obj.pointer(&p).and_then(Value::as_str) else {
            continue;
        };
        let clean = redact_url(url);
        if clean != url {
            if let Some(v) = out.to_mut().pointer_mut(&p) {
                *v = Value::String(clean);
            }
        }
    }
    out
}

/// `kubesync plan`
pub fn plan(global: &GlobalArgs) -> Result<Outcome, CliError> {
    let loaded = load(global)?;
    let Ok(graph) = &loaded.graph else {
        loaded.report_problems();
        return Err(CliError::Misconfigured {
            consequence: "nothing was printed",
        });
    };
    let levels = graph.levels();
    match global.output {
        OutputFormat::Json => {
            let levels: Vec<Value> = levels
                .iter()
                .map(|l| {
                    json!(l
                        .iter()
                        .filter_map(|a| loaded.tree.get(a))
                        .map(|n| json!({
                            "name": n.app.name,
                            "tier": n.app.tier,
                            "renderer": n.renderer_name(),
                            "objects": n.failure().is_none().then(|| n.objects().count()),
                            "waitsFor": graph.prerequisites(&n.app.name).into_iter().map(|(a, _)| a).collect::<Vec<_>>(),
                            "error": n.failure().map(|f| f.message.clone()),
                        }))
                        .collect::<Vec<_>>())
                })
                .collect();
            outln!(
                "{}",
                serde_json::to_string_pretty(&json!({"levels": levels})).unwrap_or_default()
            );
        }
        _ => {
            let total: usize = loaded
                .tree
                .nodes()
                .iter()
                .map(|n| n.objects().count())
                .sum();
            outln!(
                "{} applications, {} objects, {} levels",
                loaded.tree.len(),
                total,
                levels.len()
            );
            for (i, level) in levels.iter().enumerate() {
                outln!("\nlevel {i}:");
                let mut t = Table::new(&["  APP", "TIER", "RENDERER", "OBJECTS", "WAITS FOR"]);
                for a in level {
                    let Some(n) = loaded.tree.get(a) else {
                        continue;
                    };
                    let waits: Vec<String> = graph
                        .prerequisites(a)
                        .into_iter()
                        .map(|(p, _)| p.to_string())
                        .collect();
                    t.row(vec![
                        format!("  {}", n.app.name),
                        n.app.tier.to_string(),
                        n.renderer_name(),
                        n.failure()
                            .map(|_| "failed".to_string())
                            .unwrap_or_else(|| n.objects().count().to_string()),
                        or_dash(waits.join(",")),
                    ]);
                }
                out!("{}", t.render());
            }
        }
    }
    loaded.report_problems();
    Ok(loaded.outcome())
}

/// The named apps of the tree; an unknown name is a usage error that lists
/// the known ones.
pub(super) fn resolve_names(
    loaded: &Loaded,
    apps: &[String],
    global: &GlobalArgs,
) -> Result<BTreeSet<AppName>, CliError> {
    let mut out = BTreeSet::new();
    for a in apps {
        match loaded.tree.get_str(a) {
            Some(n) => {
                out.insert(n.app.name.clone());
            }
            None => {
                let known: BTreeSet<String> = loaded
                    .tree
                    .nodes()
                    .iter()
                    .map(|n| n.app.name.to_string())
                    .collect();
                return Err(CliError::UnknownApp {
                    name: a.clone(),
                    root: global.root.clone(),
                    known: known.into_iter().collect(),
                });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_removes_credentials_from_application_repo_urls() {
        let app = json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
            "metadata": {"name": "a"},
            "spec": {
                "source": {"repoURL": "https://user:t0ken@git.example.com/org/repo.git"},
                "sources": [
                    {"repoURL": "https://t0ken@git.example.com/org/one.git"},
                    {"repoURL": "https://git.example.com/org/two.git"}
                ]
            }
        });
        let out = without_credentials(&app);
        assert!(matches!(out, Cow::Owned(_)));
        assert!(!out.to_string().contains("t0ken"), "{out}");
        assert_eq!(
            out["spec"]["source"]["repoURL"],
            "https://git.example.com/org/repo.git"
        );
        assert_eq!(
            out["spec"]["sources"][0]["repoURL"],
            "https://git.example.com/org/one.git"
        );
        let mut ks = app.clone();
        ks["apiVersion"] = json!("kubesync.dev/v1alpha1");
        assert!(!without_credentials(&ks).to_string().contains("t0ken"));

        // Nothing to remove, or not an Application: printed as it is.
        let clean = json!({"apiVersion": "kubesync.dev/v1alpha1", "kind": "Application",
            "spec": {"source": {"repoURL": "https://git.example.com/org/repo.git"}}});
        assert!(matches!(without_credentials(&clean), Cow::Borrowed(_)));
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "data": {"repoURL": "https://user:t0ken@host/r.git"}});
        assert!(matches!(without_credentials(&cm), Cow::Borrowed(_)));
    }
}
