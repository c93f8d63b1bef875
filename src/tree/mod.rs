//! Expanding the root into the application tree.
//!
//! Each application is rendered; Application objects (either kind) in its
//! output become its children, which inherit the parent's repository and
//! revision when they name none. Expansion is breadth-first, rendering each
//! depth in parallel. One app's failure (its source, its render, its child
//! manifests) is that app's alone: it is recorded on its node and the rest of
//! the tree still expands. Structural mistakes (a duplicate name, an app that
//! renders itself, absurd depth) fail the app that made them.
//!
//! This module composes `source` and `render`; it does not talk to a cluster.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::graph::{AppGraph, GraphError, NodeSpec};
use crate::model::{
    is_app_project, is_application, looks_like_application, AppName, Application, Manifest,
    Project, RevisionSpec, Tier, DEFAULT_PROJECT, TIER_ANNOTATION,
};
use crate::render::{RenderInput, Rendered, Renderer};
use crate::source::{Checkout, Sources};

/// How deep an app-of-apps tree may nest before it is treated as a mistake.
pub const DEFAULT_MAX_DEPTH: usize = 16;

#[derive(Debug, Clone)]
pub struct ExpandOptions {
    pub max_depth: usize,
    /// Renders running at once.
    pub parallel: usize,
}

impl Default for ExpandOptions {
    fn default() -> Self {
        ExpandOptions {
            max_depth: DEFAULT_MAX_DEPTH,
            parallel: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
                .clamp(2, 8),
        }
    }
}

/// Why an application could not be rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum FailureKind {
    /// The app's manifest or its children's manifests are invalid, or the
    /// tree's shape is wrong (duplicate name, self-reference, depth).
    Config,
    /// Its repository or revision could not be had.
    Source,
    /// Its renderer failed.
    Render,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    pub kind: FailureKind,
    pub message: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// The outcome of rendering one application.
#[derive(Debug, Clone)]
pub enum NodeState {
    /// Everything the app renders, child Application objects included.
    Rendered(Arc<Rendered>),
    Failed(Failure),
}

/// One application in the tree.
#[derive(Debug, Clone)]
pub struct AppNode {
    pub app: Application,
    pub parent: Option<AppName>,
    pub children: Vec<AppName>,
    pub depth: usize,
    /// Repository URL after inheritance (`None`: the root repository).
    pub repo_url: Option<String>,
    /// Revision after inheritance (`None`: the work tree / default branch).
    pub revision: Option<RevisionSpec>,
    /// The resolved checkout, when the source could be had.
    pub checkout: Option<Arc<Checkout>>,
    /// The Argo CD project whose rules apply to this app (`None`: no rules —
    /// kubesync's own kind, or the implicit `default` project).
    pub project: Option<Arc<Project>>,
    pub state: NodeState,
}

impl AppNode {
    pub fn failure(&self) -> Option<&Failure> {
        match &self.state {
            NodeState::Failed(f) => Some(f),
            NodeState::Rendered(_) => None,
        }
    }

    /// The rendered manifests (empty when the render failed).
    pub fn manifests(&self) -> &[Manifest] {
        match &self.state {
            NodeState::Rendered(r) => &r.manifests,
            NodeState::Failed(_) => &[],
        }
    }

    /// The rendered objects that are applied: neither child Applications
    /// nor AppProjects (which the tree reads).
    pub fn objects(&self) -> impl Iterator<Item = &Manifest> {
        self.manifests()
            .iter()
            .filter(|m| !is_application(&m.object) && !is_app_project(&m.object))
    }

    /// The renderer that ran, or the one the spec asks for when it failed.
    pub fn renderer_name(&self) -> String {
        match &self.state {
            NodeState::Rendered(r) => r.renderer.to_string(),
            NodeState::Failed(_) => self.app.source.renderer.kind_name().to_string(),
        }
    }

    pub fn warnings(&self) -> &[String] {
        match &self.state {
            NodeState::Rendered(r) => &r.warnings,
            NodeState::Failed(_) => &[],
        }
    }

    /// A short revision for display: a 7-character sha, `worktree`, or `-`.
    pub fn revision_label(&self) -> String {
        self.checkout
            .as_ref()
            .map(|c| c.revision.short())
            .unwrap_or_else(|| "-".to_string())
    }

    fn fail(&mut self, kind: FailureKind, message: String) {
        // The first failure is the one that matters; later ones add context.
        match &mut self.state {
            NodeState::Failed(f) => {
                f.message.push_str("; ");
                f.message.push_str(&message);
            }
            state => *state = NodeState::Failed(Failure { kind, message }),
        }
    }
}

/// The expanded application tree, in discovery order (breadth-first).
#[derive(Debug, Clone, Default)]
pub struct AppTree {
    nodes: Vec<AppNode>,
    index: HashMap<AppName, usize>,
    pub roots: Vec<AppName>,
}

impl AppTree {
    pub fn nodes(&self) -> &[AppNode] {
        &self.nodes
    }

    pub fn get(&self, name: &AppName) -> Option<&AppNode> {
        self.index.get(name).map(|&i| &self.nodes[i])
    }

    pub fn get_str(&self, name: &str) -> Option<&AppNode> {
        AppName::new(name).ok().and_then(|n| self.get(&n))
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn failed(&self) -> impl Iterator<Item = &AppNode> {
        self.nodes.iter().filter(|n| n.failure().is_some())
    }

    /// The dependency graph over the whole tree.
    pub fn graph(&self) -> Result<AppGraph, Vec<GraphError>> {
        let specs: Vec<NodeSpec> = self
            .nodes
            .iter()
            .map(|n| NodeSpec {
                name: n.app.name.clone(),
                depends_on: n.app.depends_on.clone(),
                parent: n.parent.clone(),
                sync_wave: n.app.sync_wave,
            })
            .collect();
        AppGraph::build(&specs)
    }

    /// Depth-first order (parents before children, children in discovery
    /// order): the order `tree` prints.
    pub fn depth_first(&self) -> Vec<&AppNode> {
        let mut out = Vec::with_capacity(self.nodes.len());
        let mut stack: Vec<&AppName> = self.roots.iter().rev().collect();
        while let Some(name) = stack.pop() {
            if let Some(node) = self.get(name) {
                out.push(node);
                stack.extend(node.children.iter().rev());
            }
        }
        out
    }

    fn push(&mut self, node: AppNode) {
        self.index.insert(node.app.name.clone(), self.nodes.len());
        self.nodes.push(node);
    }
}

/// Expands `roots` into the full tree, rendering every application.
pub fn expand(
    roots: Vec<Application>,
    sources: &Sources,
    renderer: &Renderer,
    opts: &ExpandOptions,
) -> AppTree {
    let mut tree = AppTree::default();
    let mut frontier: Vec<usize> = Vec::new();
    for app in roots {
        let name = app.name.clone();
        if tree.index.contains_key(&name) {
            // Two roots with one name: the second is refused.
            let first = &tree.nodes[tree.index[&name]];
            let msg = format!(
                "application \"{name}\" is defined twice: {} and {}",
                first.app.origin, app.origin
            );
            let i = tree.index[&name];
            tree.nodes[i].fail(FailureKind::Config, msg);
            continue;
        }
        tree.roots.push(name);
        frontier.push(tree.nodes.len());
        tree.push(new_node(app, None, 0, None, None));
    }

    while !frontier.is_empty() {
        render_all(&mut tree, &frontier, sources, renderer, opts.parallel);
        let mut next = Vec::new();
        for &i in &frontier {
            adopt_children(&mut tree, i, opts.max_depth, &mut next);
        }
        frontier = next;
    }
    resolve_projects(&mut tree);
    tree
}

/// Reads every AppProject the tree renders and holds each Argo CD
/// Application to the project it names: a project that does not exist, a
/// repository or destination the project does not allow, fail that app
/// before anything is written. The project's resource lists are checked per
/// object when the app syncs. An AppProject that does not parse fails the
/// app that rendered it.
fn resolve_projects(tree: &mut AppTree) {
    let mut projects: HashMap<String, Arc<Project>> = HashMap::new();
    let mut bad: Vec<(usize, String)> = Vec::new();
    for (i, node) in tree.nodes.iter().enumerate() {
        for m in node
            .manifests()
            .iter()
            .filter(|m| is_app_project(&m.object))
        {
            match Project::from_object(&m.object, &m.origin) {
                Ok(p) => match projects.get(&p.name) {
                    Some(first) => bad.push((
                        i,
                        format!(
                            "AppProject \"{}\" is defined twice: {} and {}",
                            p.name, first.origin, p.origin
                        ),
                    )),
                    None => {
                        projects.insert(p.name.clone(), Arc::new(p));
                    }
                },
                Err(e) => bad.push((i, e.to_string())),
            }
        }
    }
    for (i, message) in bad {
        tree.nodes[i].fail(FailureKind::Config, message);
    }
    for node in tree.nodes.iter_mut() {
        let Some(name) = node.app.project.clone() else {
            continue;
        };
        let project = match projects.get(&name) {
            Some(p) => p.clone(),
            None if name == DEFAULT_PROJECT => continue,
            None => {
                node.fail(
                    FailureKind::Config,
                    format!("project \"{name}\" does not exist (no AppProject of that name in the tree)"),
                );
                continue;
            }
        };
        let repo = node.repo_url.clone();
        let refusal = repo
            .as_deref()
            .and_then(|url| project.refuses_source(url))
            .or_else(|| {
                let d = &node.app.destination;
                project.refuses_destination(
                    d.namespace.as_deref().unwrap_or(""),
                    d.server.as_deref(),
                    d.name.as_deref(),
                )
            });
        if let Some(why) = refusal {
            node.fail(FailureKind::Config, why);
        }
        node.project = Some(project);
    }
}

fn new_node(
    app: Application,
    parent: Option<AppName>,
    depth: usize,
    parent_repo: Option<&Option<String>>,
    parent_revision: Option<&Option<RevisionSpec>>,
) -> AppNode {
    // A child inherits the parent's repository when it names none, and the
    // parent's revision only when it uses the parent's repository.
    let repo_url = match (&app.source.repo_url, parent_repo) {
        (Some(url), _) => Some(url.clone()),
        (None, Some(p)) => p.clone(),
        (None, None) => None,
    };
    let same_repo = parent_repo.map(|p| *p == repo_url).unwrap_or(false);
    let revision = match (&app.source.target_revision, parent_revision) {
        (Some(r), _) => Some(r.clone()),
        (None, Some(p)) if same_repo => p.clone(),
        _ => None,
    };
    AppNode {
        app,
        parent,
        children: Vec::new(),
        depth,
        repo_url,
        revision,
        checkout: None,
        project: None,
        state: NodeState::Failed(Failure {
            kind: FailureKind::Render,
            message: "not rendered yet".into(),
        }),
    }
}

/// A node index with its checkout and render outcome.
type RenderResult = (usize, Option<Arc<Checkout>>, NodeState);

/// Renders the nodes at `indexes` with up to `parallel` workers.
fn render_all(
    tree: &mut AppTree,
    indexes: &[usize],
    sources: &Sources,
    renderer: &Renderer,
    parallel: usize,
) {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<RenderResult>> = Mutex::new(Vec::new());
    let nodes = &tree.nodes;
    std::thread::scope(|s| {
        for _ in 0..parallel.max(1).min(indexes.len()) {
            s.spawn(|| loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                let Some(&i) = indexes.get(k) else { break };
                let (checkout, state) = render_one(&nodes[i], sources, renderer);
                if let Ok(mut r) = results.lock() {
                    r.push((i, checkout, state));
                }
            });
        }
    });
    let results = results.into_inner().unwrap_or_else(|p| p.into_inner());
    for (i, checkout, state) in results {
        let node = &mut tree.nodes[i];
        node.checkout = checkout;
        node.state = state;
    }
}

fn render_one(
    node: &AppNode,
    sources: &Sources,
    renderer: &Renderer,
) -> (Option<Arc<Checkout>>, NodeState) {
    let app = &node.app;
    let _span = tracing::info_span!("render", app = %app.name).entered();
    let fail = |kind, message: String| NodeState::Failed(Failure { kind, message });
    // A source kubesync cannot render (a config-management plugin, …) fails
    // before its repository is fetched: the fetch could only fail for
    // another reason, or cost time for nothing.
    if let crate::model::RendererSpec::Unsupported(reason) = &app.source.renderer {
        return (None, fail(FailureKind::Render, reason.clone()));
    }
    let checkout = match sources.checkout(node.repo_url.as_deref(), node.revision.as_ref()) {
        Ok(c) => c,
        Err(e) => return (None, fail(FailureKind::Source, e.to_string())),
    };
    let app_dir = match checkout.resolve(&app.source.path) {
        Ok(d) => d,
        Err(e) => return (Some(checkout), fail(FailureKind::Source, e.to_string())),
    };
    let input = RenderInput {
        app,
        repo_root: &checkout.dir,
        app_dir: &app_dir,
        revision: checkout.revision.id(),
    };
    let state = match renderer.render(&input) {
        // Warnings are data ([`AppNode::warnings`]); the caller shows them.
        Ok(r) => NodeState::Rendered(r),
        Err(e) => fail(
            FailureKind::Render,
            strip_app_prefix(&app.name, e.to_string()),
        ),
    };
    (Some(checkout), state)
}

/// Turns the Application objects node `i` rendered into child nodes.
fn adopt_children(tree: &mut AppTree, i: usize, max_depth: usize, next: &mut Vec<usize>) {
    let parent_name = tree.nodes[i].app.name.clone();
    let depth = tree.nodes[i].depth;
    let child_manifests: Vec<Manifest> = tree.nodes[i]
        .manifests()
        .iter()
        .filter(|m| is_application(&m.object) || looks_like_application(&m.object))
        .cloned()
        .collect();
    if child_manifests.is_empty() {
        return;
    }
    if depth + 1 > max_depth {
        let path = ancestry(tree, &parent_name).join(" → ");
        tree.nodes[i].fail(
            FailureKind::Config,
            format!("the application tree is deeper than {max_depth} levels ({path} → …); does an app render its own ancestors?"),
        );
        return;
    }
    let parent_repo = tree.nodes[i].repo_url.clone();
    let parent_rev = tree.nodes[i].revision.clone();
    let parent_tier = tree.nodes[i].app.tier;
    for (k, m) in child_manifests.into_iter().enumerate() {
        let where_ = format!("{} ({})", m.origin, rel_desc(&parent_name));
        let parsed = Application::from_object(&m.object, &m.origin)
            .map_err(|e| {
                // Under its own name, the message need not name it again.
                let full = e.to_string();
                let name = e.app.clone();
                let own = crate::model::ModelError { app: None, ..e }.to_string();
                (name, own, full)
            })
            .and_then(|child| inherit_tier(child, parent_tier, &parent_name, &m));
        let child = match parsed {
            Ok(app) => app,
            Err((name, own_message, full_message)) => {
                // An invalid child fails alone, under its own name when that
                // name is usable, else under a stand-in name: its siblings and
                // its parent carry on.
                let own = name
                    .as_deref()
                    .and_then(|n| AppName::new(n).ok())
                    .filter(|n| !tree.index.contains_key(n));
                let (name, message) = match own {
                    Some(name) => (name, own_message),
                    None => (
                        stand_in_name(tree, &parent_name, k),
                        format!("invalid child Application {where_}: {full_message}"),
                    ),
                };
                let mut node = new_node(
                    placeholder_app(name, &m),
                    Some(parent_name.clone()),
                    depth + 1,
                    Some(&parent_repo),
                    Some(&parent_rev),
                );
                node.state = NodeState::Failed(Failure {
                    kind: FailureKind::Config,
                    message,
                });
                let child_name = node.app.name.clone();
                tree.push(node);
                tree.nodes[i].children.push(child_name);
                continue;
            }
        };
        if child.name == parent_name {
            tree.nodes[i].fail(
                FailureKind::Config,
                format!("application \"{parent_name}\" renders itself ({where_})"),
            );
            continue;
        }
        if let Some(&existing) = tree.index.get(&child.name) {
            let other = &tree.nodes[existing];
            let msg =
                format!(
                "renders application \"{}\" ({where_}), but that name is already defined at {}{}",
                child.name,
                other.app.origin,
                other.parent.as_ref().map(|p| format!(" (child of \"{p}\")")).unwrap_or_default()
            );
            tree.nodes[i].fail(FailureKind::Config, msg);
            continue;
        }
        let node = new_node(
            child,
            Some(parent_name.clone()),
            depth + 1,
            Some(&parent_repo),
            Some(&parent_rev),
        );
        let child_name = node.app.name.clone();
        next.push(tree.nodes.len());
        tree.push(node);
        tree.nodes[i].children.push(child_name);
    }
}

/// A child never has more power than its parent: under an app-tier parent,
/// a child that asks for the system tier is refused, and one that is system
/// only by default (an Argo CD Application) becomes app tier.
fn inherit_tier(
    mut child: Application,
    parent_tier: Tier,
    parent: &AppName,
    m: &Manifest,
) -> Result<Application, (Option<String>, String, String)> {
    if parent_tier == Tier::System || child.tier == Tier::App {
        return Ok(child);
    }
    if declares_system_tier(&m.object) {
        let why = format!("asks for tier system, but its parent \"{parent}\" is tier app; a child never has more power than its parent");
        return Err((
            Some(child.name.to_string()),
            format!("{}: {why}", m.origin),
            format!("{}: application \"{}\" {why}", m.origin, child.name),
        ));
    }
    child.tier = Tier::App;
    Ok(child)
}

/// Whether an Application manifest asks for the system tier explicitly
/// (kubesync's `spec.tier`, or the tier annotation on an Argo CD one).
fn declares_system_tier(obj: &serde_json::Value) -> bool {
    let explicit = obj
        .pointer("/spec/tier")
        .and_then(serde_json::Value::as_str)
        .or_else(|| {
            obj.pointer("/metadata/annotations")
                .and_then(|a| a.get(TIER_ANNOTATION))
                .and_then(serde_json::Value::as_str)
        });
    explicit == Some("system")
}

/// A name for an invalid child whose own name is unusable (missing, not a
/// valid name, or taken): `<parent>-invalid-<n>`, unique in the tree.
fn stand_in_name(tree: &AppTree, parent: &AppName, k: usize) -> AppName {
    let mut n = k + 1;
    loop {
        let suffix = format!("-invalid-{n}");
        let base: String = parent.as_str().chars().take(63 - suffix.len()).collect();
        let candidate = format!("{}{suffix}", base.trim_end_matches(['-', '.']));
        if let Ok(name) = AppName::new(candidate) {
            if !tree.index.contains_key(&name) {
                return name;
            }
        }
        n += 1;
    }
}

fn rel_desc(parent: &AppName) -> String {
    format!("rendered by \"{parent}\"")
}

fn ancestry(tree: &AppTree, name: &AppName) -> Vec<String> {
    let mut out = vec![name.to_string()];
    let mut cur = tree.get(name).and_then(|n| n.parent.clone());
    while let Some(p) = cur {
        out.push(p.to_string());
        cur = tree.get(&p).and_then(|n| n.parent.clone());
    }
    out.reverse();
    out
}

/// A stand-in Application for a child whose manifest is invalid but whose
/// name is known, so the failure shows up under its own name.
fn placeholder_app(name: AppName, m: &Manifest) -> Application {
    use crate::model::{Destination, Flavor, RendererSpec, RepoPath, Source, SyncPolicy};
    Application {
        name,
        flavor: if m.api_version().starts_with("argoproj.io") {
            Flavor::ArgoCd
        } else {
            Flavor::Kubesync
        },
        tier: Tier::App,
        source: Source {
            repo_url: None,
            target_revision: None,
            path: RepoPath::root(),
            renderer: RendererSpec::Unsupported("invalid manifest".into()),
        },
        destination: Destination::default(),
        depends_on: Vec::new(),
        sync_policy: SyncPolicy::default(),
        sync_wave: 0,
        project: None,
        images: Default::default(),
        origin: m.origin.clone(),
    }
}

/// Render errors name their app (they stand alone in logs); the tree keeps the
/// message without it, since every view prints the app next to it.
fn strip_app_prefix(app: &AppName, message: String) -> String {
    let prefix = format!("application \"{app}\": ");
    match message.strip_prefix(&prefix) {
        Some(rest) => rest.to_string(),
        None => message,
    }
}
