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
//! A source naming a `chart:` is fetched from its Helm repository or OCI
//! registry, a chart's missing dependencies are filled into a temporary copy
//! before it renders (`chart`), and a multi-source app renders each of its
//! sources (its `ref` sources lending their files to `$ref/…` value files)
//! into one set of objects.
//!
//! An ApplicationSet is a node like an Application: instead of rendering a
//! source, it is expanded by its generators ([`appset`]) into Application
//! objects, which become its children the same way. Namespace gates (apps a
//! `namespaceDirectories` generator made with a `label`) are settled once the
//! cluster is known, by [`gate_namespaces`].
//!
//! This module composes `source`, `chart` and `render`; it does not talk to a cluster.

pub mod appset;

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
    /// What ApplicationSet generators know of the cluster.
    pub generators: appset::GeneratorEnv,
}

impl Default for ExpandOptions {
    fn default() -> Self {
        ExpandOptions {
            max_depth: DEFAULT_MAX_DEPTH,
            parallel: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
                .clamp(2, 8),
            generators: appset::GeneratorEnv::default(),
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
    /// The parent's repository and revision (what a multi-source app's
    /// sources that name no `repoURL` read; `None`: the root repository).
    pub inherited: (Option<String>, Option<RevisionSpec>),
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

/// What a new expansion may keep from an earlier one: the render of an app
/// whose inputs did not change (see [`expand_reusing`]).
///
/// An expansion with a `Reuse` is one that follows another (a commit's): an
/// app it renders again with the plain-directory renderer is rendered from
/// an export of its own directory only ([`Sources::checkout_path`]), not of
/// the whole commit.
pub trait Reuse: Sync {
    /// An earlier render of `node`, to be used as it is, when nothing it was
    /// rendered from differs at the revision this expansion renders, with
    /// the checkout that stands for its source there; None renders it.
    fn kept(&self, node: &AppNode) -> Option<(Arc<Checkout>, Arc<Rendered>)>;
}

/// Expands `roots` into the full tree, rendering every application.
pub fn expand(
    roots: Vec<Application>,
    sources: &Sources,
    renderer: &Renderer,
    opts: &ExpandOptions,
) -> AppTree {
    expand_reusing(roots, sources, renderer, opts, None)
}

/// [`expand`], keeping the renders `reuse` vouches for. Only a
/// single-source app that is not a chart is asked about; its checkout is
/// resolved as usual first (so source failures are as they would be), and
/// children, projects and failures are derived from the kept render exactly
/// as from a fresh one.
pub fn expand_reusing(
    roots: Vec<Application>,
    sources: &Sources,
    renderer: &Renderer,
    opts: &ExpandOptions,
    reuse: Option<&dyn Reuse>,
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
        render_all(&mut tree, &frontier, sources, renderer, opts, reuse);
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
        // Every source's repository (a multi-source app's too) must be allowed.
        let refusal = std::iter::once(node.repo_url.clone())
            .chain(node.app.extra_sources.iter().map(|s| s.repo_url.clone()))
            .flatten()
            .find_map(|url| project.refuses_source(&url))
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
        inherited: (
            parent_repo.cloned().flatten(),
            parent_revision.cloned().flatten(),
        ),
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
    opts: &ExpandOptions,
    reuse: Option<&dyn Reuse>,
) {
    let parallel = opts.parallel;
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<RenderResult>> = Mutex::new(Vec::new());
    let nodes = &tree.nodes;
    std::thread::scope(|s| {
        for _ in 0..parallel.max(1).min(indexes.len()) {
            s.spawn(|| loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                let Some(&i) = indexes.get(k) else { break };
                let (checkout, state) = match &nodes[i].app.source.renderer {
                    crate::model::RendererSpec::ApplicationSet(spec) => {
                        expand_set(&nodes[i], spec, sources, &opts.generators)
                    }
                    _ => render_one(&nodes[i], sources, renderer, reuse),
                };
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
    reuse: Option<&dyn Reuse>,
) -> (Option<Arc<Checkout>>, NodeState) {
    let app = &node.app;
    let _span = tracing::info_span!("render", app = %app.name).entered();
    // A source kubesync cannot render (a config-management plugin, …) fails
    // before any repository is fetched: the fetch could only fail for
    // another reason, or cost time for nothing.
    for s in std::iter::once(&app.source).chain(&app.extra_sources) {
        if let crate::model::RendererSpec::Unsupported(reason) = &s.renderer {
            return (None, fail(FailureKind::Render, reason.clone()));
        }
    }
    if app.extra_sources.is_empty() {
        if let Some(reuse) = reuse.filter(|_| app.source.chart.is_none()) {
            if let Some((checkout, kept)) = reuse.kept(node) {
                tracing::debug!(app = %app.name, "inputs unchanged: earlier render kept");
                return (Some(checkout), NodeState::Rendered(kept));
            }
            if let Some(done) = render_path_only(node, sources, renderer) {
                return done;
            }
        }
        return match fetch_source(
            &app.source,
            node.repo_url.as_deref(),
            node.revision.as_ref(),
            sources,
        ) {
            Ok((checkout, dir)) => {
                let state = match render_source(app, &checkout, &dir, &[], sources, renderer) {
                    Ok(r) => NodeState::Rendered(r),
                    Err(f) => NodeState::Failed(f),
                };
                (Some(checkout), state)
            }
            Err((checkout, f)) => (checkout, NodeState::Failed(f)),
        };
    }
    render_multi(node, sources, renderer)
}

/// Renders a plain-directory app from an export of its directory alone
/// (see [`Reuse`]). None when that cannot be done exactly — the directory
/// reads content from elsewhere, the source is a chart, or what it holds
/// is rendered by another renderer (a chart, a kustomization), which may
/// read outside it — or when the render fails (the caller renders again
/// from the whole commit, which also words the failure).
fn render_path_only(
    node: &AppNode,
    sources: &Sources,
    renderer: &Renderer,
) -> Option<(Option<Arc<Checkout>>, NodeState)> {
    let app = &node.app;
    let plain = matches!(
        app.source.renderer,
        crate::model::RendererSpec::Auto | crate::model::RendererSpec::Directory(_)
    );
    if !plain || app.source.chart.is_some() || !app.extra_sources.is_empty() {
        return None;
    }
    let checkout = sources
        .checkout_path(
            node.repo_url.as_deref(),
            node.revision.as_ref(),
            &app.source.path,
        )
        .ok()??;
    let dir = checkout.resolve(&app.source.path).ok()?;
    let detected = matches!(app.source.renderer, crate::model::RendererSpec::Auto)
        .then(|| Renderer::detect(&dir));
    if detected.is_some_and(|k| k != crate::render::RendererKind::Directory) {
        return None;
    }
    match render_source(app, &checkout, &dir, &[], sources, renderer) {
        Ok(r) if r.renderer == crate::render::RendererKind::Directory => {
            Some((Some(checkout), NodeState::Rendered(r)))
        }
        _ => None,
    }
}

fn fail(kind: FailureKind, message: String) -> NodeState {
    NodeState::Failed(Failure { kind, message })
}

/// A source's content on disk: the checkout and the directory to render.
/// A chart source is fetched from its Helm repository or OCI registry.
#[allow(clippy::type_complexity)]
fn fetch_source(
    source: &crate::model::Source,
    repo_url: Option<&str>,
    revision: Option<&RevisionSpec>,
    sources: &Sources,
) -> Result<(Arc<Checkout>, std::path::PathBuf), (Option<Arc<Checkout>>, Failure)> {
    let failure = |message: String| Failure {
        kind: FailureKind::Source,
        message,
    };
    if let Some(chart) = &source.chart {
        let url = repo_url.unwrap_or_default();
        let got = sources
            .charts()
            .fetch(url, &chart.name, &chart.version)
            .map_err(|e| (None, failure(e.to_string())))?;
        let checkout = Arc::new(Checkout::new(
            crate::source::redact_url(url),
            got.dir.clone(),
            crate::source::Revision::Chart {
                version: got.version,
                digest: got.digest,
            },
        ));
        return Ok((checkout, got.dir));
    }
    let checkout = sources
        .checkout(repo_url, revision)
        .map_err(|e| (None, failure(e.to_string())))?;
    match checkout.resolve(&source.path) {
        Ok(dir) => Ok((checkout, dir)),
        Err(e) => Err((Some(checkout), failure(e.to_string()))),
    }
}

/// Renders one source of `app` from `dir` in `checkout`, with the chart's
/// missing dependencies filled in first when it is a Helm chart.
fn render_source(
    app: &Application,
    checkout: &Checkout,
    dir: &std::path::Path,
    refs: &[(String, std::path::PathBuf)],
    sources: &Sources,
    renderer: &Renderer,
) -> Result<Arc<Rendered>, Failure> {
    use crate::model::RendererSpec;
    let is_chart = matches!(
        app.source.renderer,
        RendererSpec::Auto | RendererSpec::Helm(_)
    ) && dir.join("Chart.yaml").is_file();
    let prepared = if is_chart {
        let label = dir
            .strip_prefix(&checkout.dir)
            .ok()
            .map(|p| p.display().to_string())
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| ".".into());
        sources
            .charts()
            .prepare_dependencies(dir, &checkout.dir, &label)
            .map_err(|e| Failure {
                kind: FailureKind::Source,
                message: e.to_string(),
            })?
    } else {
        None
    };
    let input = RenderInput {
        app,
        repo_root: &checkout.dir,
        app_dir: dir,
        revision: checkout.revision.id(),
        chart_dir: prepared.as_ref().map(|p| p.dir()),
        refs,
    };
    // Warnings are data ([`AppNode::warnings`]); the caller shows them.
    renderer.render(&input).map_err(|e| Failure {
        kind: FailureKind::Render,
        message: strip_app_prefix(&app.name, e.to_string()),
    })
}

/// A multi-source app: the `ref` sources are fetched first (their files feed
/// `$NAME/…` value files), then every source that names a path or a chart
/// is rendered, and their objects are merged into the app's.
fn render_multi(
    node: &AppNode,
    sources: &Sources,
    renderer: &Renderer,
) -> (Option<Arc<Checkout>>, NodeState) {
    let app = &node.app;
    let all: Vec<&crate::model::Source> = std::iter::once(&app.source)
        .chain(&app.extra_sources)
        .collect();
    let location = |i: usize, s: &crate::model::Source| -> (Option<String>, Option<RevisionSpec>) {
        if i == 0 {
            return (node.repo_url.clone(), node.revision.clone());
        }
        // A source naming no repository reads the parent's, at the
        // parent's revision (as the app's first source would).
        let (parent_url, parent_rev) = &node.inherited;
        let url = s.repo_url.clone().or_else(|| parent_url.clone());
        let rev = s
            .target_revision
            .clone()
            .or_else(|| (url == *parent_url).then(|| parent_rev.clone()).flatten());
        (url, rev)
    };
    let label = |i: usize, m: String| format!("spec.sources[{i}]: {m}");
    let mut refs = Vec::new();
    for (i, s) in all.iter().enumerate() {
        let Some(name) = &s.ref_name else { continue };
        let (url, rev) = location(i, s);
        let fetched = if s.chart.is_some() {
            fetch_source(s, url.as_deref(), rev.as_ref(), sources).map(|(c, _)| c)
        } else {
            sources.checkout(url.as_deref(), rev.as_ref()).map_err(|e| {
                (
                    None,
                    Failure {
                        kind: FailureKind::Source,
                        message: e.to_string(),
                    },
                )
            })
        };
        match fetched {
            Ok(c) => refs.push((name.clone(), c.dir.clone())),
            Err((c, f)) => return (c, fail(f.kind, label(i, f.message))),
        }
    }
    let mut first: Option<Arc<Checkout>> = None;
    let mut merged: Option<Rendered> = None;
    for (i, s) in all.iter().enumerate() {
        if s.ref_only {
            continue;
        }
        let (url, rev) = location(i, s);
        let (checkout, dir) = match fetch_source(s, url.as_deref(), rev.as_ref(), sources) {
            Ok(x) => x,
            Err((c, f)) => return (first.or(c), fail(f.kind, label(i, f.message))),
        };
        let one = Application {
            source: (*s).clone(),
            extra_sources: Vec::new(),
            ..app.clone()
        };
        let rendered = match render_source(&one, &checkout, &dir, &refs, sources, renderer) {
            Ok(r) => r,
            Err(f) => return (first.or(Some(checkout)), fail(f.kind, label(i, f.message))),
        };
        first.get_or_insert(checkout);
        match &mut merged {
            None => merged = Some((*rendered).clone()),
            Some(m) => {
                m.manifests.extend(rendered.manifests.iter().cloned());
                m.warnings.extend(rendered.warnings.iter().cloned());
            }
        }
    }
    match merged {
        Some(m) => (first, NodeState::Rendered(Arc::new(m))),
        None => (
            first,
            fail(
                FailureKind::Config,
                "every source of spec.sources is a `ref` source; none names a path or a chart to render".into(),
            ),
        ),
    }
}

/// Reads repositories for a set's git generators through `source`.
struct SourceRepos<'a> {
    sources: &'a Sources,
    /// The first checkout a generator read (the set's revision in `tree`).
    own: Mutex<Option<Arc<Checkout>>>,
}

impl appset::Repos for SourceRepos<'_> {
    fn checkout(
        &self,
        repo: Option<&str>,
        revision: Option<&RevisionSpec>,
    ) -> Result<Arc<Checkout>, String> {
        let co = self
            .sources
            .checkout(repo, revision)
            .map_err(|e| e.to_string())?;
        if let Ok(mut own) = self.own.lock() {
            own.get_or_insert_with(|| co.clone());
        }
        Ok(co)
    }
}

/// Expands an ApplicationSet node: its generated Application objects are its
/// rendered manifests (the tree adopts them as children); a generator or
/// template error fails the set alone, naming the generator.
fn expand_set(
    node: &AppNode,
    spec: &crate::model::AppSetSpec,
    sources: &Sources,
    env: &appset::GeneratorEnv,
) -> (Option<Arc<Checkout>>, NodeState) {
    let _span = tracing::info_span!("expand", set = %node.app.name).entered();
    let repos = SourceRepos {
        sources,
        own: Mutex::new(None),
    };
    let ctx = appset::SetContext {
        name: &node.app.name,
        spec,
        origin: &node.app.origin,
        env,
        repos: &repos,
        repo: node.repo_url.as_deref(),
        revision: node.revision.as_ref(),
    };
    let result = appset::generate(&ctx);
    // The set's revision shows in `tree` when a generator read its repository.
    let checkout = repos.own.into_inner().ok().flatten();
    let state = match result {
        Ok(g) => NodeState::Rendered(Arc::new(Rendered {
            renderer: crate::render::RendererKind::ApplicationSet,
            manifests: g.manifests,
            warnings: g.warnings,
        })),
        Err(e) => NodeState::Failed(Failure {
            kind: FailureKind::Config,
            message: format!("ApplicationSet \"{}\": {e}", node.app.name),
        }),
    };
    (checkout, state)
}

/// An app whose namespace a `namespaceDirectories` generator gates on a label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceGate {
    pub app: AppName,
    pub namespace: String,
    /// The label key (kube-applier's `LABEL`).
    pub label: String,
}

/// What [`gate_namespaces`] decided for a gated app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GateDecision {
    /// The namespace carries the label `on`: synced.
    On,
    /// `dry-run`: synced as a dry run (its objects are marked `kubesync.dev/sync: dry-run`).
    DryRun,
    /// No such label, `off`, or no such namespace: left out of the tree.
    Disabled,
}

impl AppTree {
    /// Apps generated with a namespace label gate.
    pub fn namespace_gates(&self) -> Vec<NamespaceGate> {
        let mut out = Vec::new();
        for node in &self.nodes {
            for m in node
                .manifests()
                .iter()
                .filter(|m| is_application(&m.object))
            {
                let label = m
                    .object
                    .pointer("/metadata/annotations")
                    .and_then(|a| a.get(appset::NAMESPACE_LABEL_ANNOTATION))
                    .and_then(serde_json::Value::as_str);
                let name = m
                    .object
                    .pointer("/metadata/name")
                    .and_then(serde_json::Value::as_str)
                    .and_then(|n| AppName::new(n).ok());
                let (Some(label), Some(name)) = (label, name) else {
                    continue;
                };
                let Some(child) = self.get(&name) else {
                    continue;
                };
                if child.parent.as_ref() != Some(&node.app.name) {
                    continue;
                }
                out.push(NamespaceGate {
                    app: name,
                    namespace: child
                        .app
                        .destination
                        .namespace
                        .clone()
                        .unwrap_or_else(|| "default".into()),
                    label: label.to_string(),
                });
            }
        }
        out
    }

    /// Removes `name` and everything below it.
    fn remove_subtree(&mut self, name: &AppName) {
        let mut gone = vec![name.clone()];
        let mut k = 0;
        while k < gone.len() {
            if let Some(n) = self.get(&gone[k]) {
                gone.extend(n.children.iter().cloned());
            }
            k += 1;
        }
        self.nodes.retain(|n| !gone.contains(&n.app.name));
        for n in &mut self.nodes {
            n.children.retain(|c| !gone.contains(c));
        }
        self.roots.retain(|r| !gone.contains(r));
        self.index = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.app.name.clone(), i))
            .collect();
    }
}

/// Settles namespace gates with the cluster's namespace labels (name →
/// labels; a namespace that does not exist is absent): kube-applier's rule,
/// an app is synced only while its namespace is labelled `on` or `dry-run`
/// with the gate's key. A disabled app leaves the tree for this run (what it
/// applied before is kept, as for any app removed from the tree).
pub fn gate_namespaces(
    tree: &mut AppTree,
    namespace_labels: &HashMap<String, std::collections::BTreeMap<String, String>>,
) -> Vec<(NamespaceGate, GateDecision)> {
    let mut out = Vec::new();
    for gate in tree.namespace_gates() {
        let value = namespace_labels
            .get(&gate.namespace)
            .and_then(|l| l.get(&gate.label))
            .map(|v| v.trim().to_ascii_lowercase());
        let decision = match value.as_deref() {
            Some("on" | "true" | "enabled") => GateDecision::On,
            Some("dry-run" | "dryrun") => GateDecision::DryRun,
            _ => GateDecision::Disabled,
        };
        match decision {
            GateDecision::Disabled => tree.remove_subtree(&gate.app),
            GateDecision::DryRun => {
                if let Some(&i) = tree.index.get(&gate.app) {
                    mark_dry_run(&mut tree.nodes[i]);
                }
            }
            GateDecision::On => {}
        }
        if decision != GateDecision::Disabled {
            if let Some(&i) = tree.index.get(&gate.app) {
                mark_label_off(&mut tree.nodes[i], &gate.label);
            }
        }
        out.push((gate, decision));
    }
    out
}

/// kube-applier's per-object gate: every object of an enabled gated app
/// whose manifest (in git) carries the gate's label with the value `off` is
/// turned off (`kubesync.dev/sync: off`, with the label named for the
/// report): never applied, and — being desired — never pruned.
fn mark_label_off(node: &mut AppNode, label: &str) {
    let NodeState::Rendered(r) = &node.state else {
        return;
    };
    let is_off = |o: &serde_json::Value| {
        o.pointer("/metadata/labels")
            .and_then(|l| l.get(label))
            .and_then(serde_json::Value::as_str)
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("off"))
    };
    if !r.manifests.iter().any(|m| is_off(&m.object)) {
        return;
    }
    let rendered = (**r).clone();
    node.state = NodeState::Rendered(Arc::new(annotate_objects(
        rendered,
        is_off,
        &[
            (crate::model::SYNC_ANNOTATION, "off"),
            (crate::model::OFF_BY_LABEL_ANNOTATION, label),
        ],
    )));
}

/// Marks every object of a rendered node `kubesync.dev/sync: dry-run`.
fn mark_dry_run(node: &mut AppNode) {
    let NodeState::Rendered(r) = &node.state else {
        return;
    };
    let rendered = (**r).clone();
    node.state = NodeState::Rendered(Arc::new(annotate_objects(
        rendered,
        |_| true,
        &[(crate::model::SYNC_ANNOTATION, "dry-run")],
    )));
}

/// Sets `annotations` on every rendered object (Applications aside) that
/// `pick` selects.
fn annotate_objects(
    mut r: Rendered,
    pick: impl Fn(&serde_json::Value) -> bool,
    annotations: &[(&str, &str)],
) -> Rendered {
    for m in r
        .manifests
        .iter_mut()
        .filter(|m| !is_application(&m.object) && pick(&m.object))
    {
        if let Some(meta) = m.object.get_mut("metadata").and_then(|v| v.as_object_mut()) {
            let ann = meta
                .entry("annotations")
                .or_insert_with(|| serde_json::json!({}));
            if let Some(a) = ann.as_object_mut() {
                for (k, v) in annotations {
                    a.insert(k.to_string(), serde_json::json!(v));
                }
            }
        }
    }
    r
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
        source: Source::new(
            None,
            None,
            RepoPath::root(),
            RendererSpec::Unsupported("invalid manifest".into()),
        ),
        extra_sources: Vec::new(),
        destination: Destination::default(),
        depends_on: Vec::new(),
        sync_policy: SyncPolicy::default(),
        sync_wave: 0,
        project: None,
        ignore_differences: Vec::new(),
        images: Default::default(),
        // A failed app signals too: to its own webhook when one is named.
        notify_webhook: crate::model::notify_webhook_of(&m.object),
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
