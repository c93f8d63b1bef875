//! The dependency DAG of applications (petgraph).
//!
//! Edges run from a prerequisite to the app that waits for it: `dependsOn`,
//! parent → child (a child exists only once its parent's output is applied),
//! and sync waves among siblings (a child in wave 2 waits for its siblings in
//! the highest lower wave). This module owns cycle and unknown-dependency
//! detection, topological levels, and the set of apps a failure blocks. It
//! is pure: it takes names and edges and returns names.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::fmt;

use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;
use petgraph::Direction;
use serde::Serialize;

use crate::model::AppName;

/// What one application contributes to the graph.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    pub name: AppName,
    pub depends_on: Vec<AppName>,
    pub parent: Option<AppName>,
    pub sync_wave: i32,
}

/// Why an edge exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum EdgeKind {
    DependsOn,
    Parent,
    SyncWave,
}

/// A graph that cannot be ordered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GraphError {
    #[error("application \"{app}\" depends on \"{missing}\", which is not in the tree{}", suggestion.as_ref().map(|s| format!(" (did you mean \"{s}\"?)")).unwrap_or_default())]
    UnknownDependency {
        app: AppName,
        missing: AppName,
        suggestion: Option<AppName>,
    },
    #[error("dependency cycle: {}", cycle_text(.apps))]
    Cycle { apps: Vec<AppName> },
}

fn cycle_text(apps: &[AppName]) -> String {
    let mut parts: Vec<&str> = apps.iter().map(AppName::as_str).collect();
    if let Some(first) = apps.first() {
        parts.push(first.as_str());
    }
    parts.join(" → ")
}

/// The ordered application graph.
#[derive(Debug, Clone)]
pub struct AppGraph {
    graph: DiGraph<AppName, EdgeKind>,
    index: HashMap<AppName, NodeIndex>,
}

impl AppGraph {
    /// Builds the graph; every unknown dependency and every cycle is an error.
    /// Nodes keep the order given (the tree's discovery order), which makes
    /// levels and listings deterministic.
    pub fn build(nodes: &[NodeSpec]) -> Result<Self, Vec<GraphError>> {
        let mut graph = DiGraph::new();
        let mut index = HashMap::new();
        for n in nodes {
            index
                .entry(n.name.clone())
                .or_insert_with(|| graph.add_node(n.name.clone()));
        }
        let mut errors = Vec::new();
        let add = |g: &mut DiGraph<AppName, EdgeKind>, from: NodeIndex, to: NodeIndex, kind| {
            if !g.contains_edge(from, to) {
                g.add_edge(from, to, kind);
            }
        };
        for n in nodes {
            let to = index[&n.name];
            if let Some(p) = &n.parent {
                if let Some(&from) = index.get(p) {
                    add(&mut graph, from, to, EdgeKind::Parent);
                }
            }
            for d in &n.depends_on {
                match index.get(d) {
                    Some(&from) => add(&mut graph, from, to, EdgeKind::DependsOn),
                    None => errors.push(GraphError::UnknownDependency {
                        app: n.name.clone(),
                        missing: d.clone(),
                        suggestion: closest(d, nodes.iter().map(|n| &n.name)),
                    }),
                }
            }
        }
        // Sync waves: among the children of one parent, a wave waits for the
        // highest lower wave (which transitively waits for the ones below).
        let mut siblings: BTreeMap<Option<&AppName>, Vec<&NodeSpec>> = BTreeMap::new();
        for n in nodes {
            siblings.entry(n.parent.as_ref()).or_default().push(n);
        }
        for group in siblings.values() {
            let waves: BTreeSet<i32> = group.iter().map(|n| n.sync_wave).collect();
            for n in group {
                let Some(prev) = waves.range(..n.sync_wave).next_back() else {
                    continue;
                };
                for m in group.iter().filter(|m| m.sync_wave == *prev) {
                    add(
                        &mut graph,
                        index[&m.name],
                        index[&n.name],
                        EdgeKind::SyncWave,
                    );
                }
            }
        }
        let g = AppGraph { graph, index };
        errors.extend(g.cycles());
        if errors.is_empty() {
            Ok(g)
        } else {
            Err(errors)
        }
    }

    /// Every cycle, one per strongly connected component, as an ordered path.
    fn cycles(&self) -> Vec<GraphError> {
        let mut out = Vec::new();
        for scc in tarjan_scc(&self.graph) {
            let members: HashSet<NodeIndex> = scc.iter().copied().collect();
            let self_loop = scc.len() == 1 && self.graph.contains_edge(scc[0], scc[0]);
            if scc.len() < 2 && !self_loop {
                continue;
            }
            // Start at the first member in node order, walk successors inside
            // the component until we come back: that path is the cycle.
            let start = *scc.iter().min().unwrap_or(&scc[0]);
            out.push(GraphError::Cycle {
                apps: self.cycle_path(start, &members),
            });
        }
        out.sort_by_key(|e| e.to_string());
        out
    }

    /// A shortest cycle through `start` within `members` (BFS back to start).
    fn cycle_path(&self, start: NodeIndex, members: &HashSet<NodeIndex>) -> Vec<AppName> {
        let mut prev: HashMap<NodeIndex, NodeIndex> = HashMap::new();
        let mut queue = VecDeque::from([start]);
        let mut seen = HashSet::from([start]);
        while let Some(n) = queue.pop_front() {
            let mut succ: Vec<NodeIndex> = self
                .graph
                .neighbors_directed(n, Direction::Outgoing)
                .filter(|s| members.contains(s))
                .collect();
            succ.sort();
            for s in succ {
                if s == start {
                    let mut path = vec![n];
                    let mut cur = n;
                    while let Some(&p) = prev.get(&cur) {
                        path.push(p);
                        cur = p;
                    }
                    path.reverse();
                    return path.into_iter().map(|i| self.graph[i].clone()).collect();
                }
                if seen.insert(s) {
                    prev.insert(s, n);
                    queue.push_back(s);
                }
            }
        }
        vec![self.graph[start].clone()]
    }

    /// Topological levels: level 0 has no prerequisites; an app's level is one
    /// more than its deepest prerequisite's. Apps of one level may run together.
    pub fn levels(&self) -> Vec<Vec<AppName>> {
        let mut level: HashMap<NodeIndex, usize> = HashMap::new();
        let order = petgraph::algo::toposort(&self.graph, None).unwrap_or_default();
        for n in &order {
            let l = self
                .graph
                .neighbors_directed(*n, Direction::Incoming)
                .map(|p| level.get(&p).copied().unwrap_or(0) + 1)
                .max()
                .unwrap_or(0);
            level.insert(*n, l);
        }
        let depth = level.values().copied().max().map(|m| m + 1).unwrap_or(0);
        let mut out = vec![Vec::new(); depth];
        for n in self.graph.node_indices() {
            out[level[&n]].push(self.graph[n].clone());
        }
        out
    }

    /// Direct prerequisites of `app`, with why.
    pub fn prerequisites(&self, app: &AppName) -> Vec<(AppName, EdgeKind)> {
        let Some(&i) = self.index.get(app) else {
            return Vec::new();
        };
        let mut v: Vec<(AppName, EdgeKind)> = self
            .graph
            .edges_directed(i, Direction::Incoming)
            .map(|e| (self.graph[e.source()].clone(), *e.weight()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Every app that (transitively) waits for one of `failed`, excluding the
    /// failed apps themselves: the set a failure blocks.
    pub fn blocked_by(&self, failed: &HashSet<AppName>) -> BTreeSet<AppName> {
        self.closure(failed, Direction::Outgoing)
            .into_iter()
            .filter(|a| !failed.contains(a))
            .collect()
    }

    /// `apps` plus everything they (transitively) wait for: what
    /// `sync --with-deps` runs.
    pub fn with_prerequisites(&self, apps: &HashSet<AppName>) -> BTreeSet<AppName> {
        self.closure(apps, Direction::Incoming)
    }

    fn closure(&self, from: &HashSet<AppName>, dir: Direction) -> BTreeSet<AppName> {
        let mut seen: HashSet<NodeIndex> = HashSet::new();
        let mut stack: Vec<NodeIndex> = from
            .iter()
            .filter_map(|a| self.index.get(a).copied())
            .collect();
        while let Some(n) = stack.pop() {
            if seen.insert(n) {
                stack.extend(self.graph.neighbors_directed(n, dir));
            }
        }
        seen.into_iter().map(|i| self.graph[i].clone()).collect()
    }

    pub fn contains(&self, app: &AppName) -> bool {
        self.index.contains_key(app)
    }

    pub fn len(&self) -> usize {
        self.graph.node_count()
    }

    pub fn is_empty(&self) -> bool {
        self.graph.node_count() == 0
    }

    /// All edges as (from, to, kind), in a stable order (for `tree --output dot`).
    pub fn edges(&self) -> Vec<(AppName, AppName, EdgeKind)> {
        let mut v: Vec<_> = self
            .graph
            .edge_references()
            .map(|e| {
                (
                    self.graph[e.source()].clone(),
                    self.graph[e.target()].clone(),
                    *e.weight(),
                )
            })
            .collect();
        v.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        v
    }
}

impl fmt::Display for AppGraph {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, level) in self.levels().iter().enumerate() {
            let names: Vec<&str> = level.iter().map(AppName::as_str).collect();
            writeln!(f, "level {i}: {}", names.join(", "))?;
        }
        Ok(())
    }
}

/// The known name closest to `missing`, if it is plausibly a typo.
fn closest<'a>(missing: &AppName, known: impl Iterator<Item = &'a AppName>) -> Option<AppName> {
    known
        .map(|k| (edit_distance(missing.as_str(), k.as_str()), k))
        .filter(|(d, k)| *d <= 2.max(k.as_str().len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k.clone())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(row[j]).min(row[j + 1])
            };
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(name: &str, deps: &[&str], parent: Option<&str>, wave: i32) -> NodeSpec {
        NodeSpec {
            name: AppName::new(name).unwrap(),
            depends_on: deps.iter().map(|d| AppName::new(*d).unwrap()).collect(),
            parent: parent.map(|p| AppName::new(p).unwrap()),
            sync_wave: wave,
        }
    }

    fn names(v: &[AppName]) -> Vec<&str> {
        v.iter().map(AppName::as_str).collect()
    }

    #[test]
    fn levels_follow_dependencies_and_parents() {
        let g = AppGraph::build(&[
            n("root", &[], None, 0),
            n("ns", &[], Some("root"), 0),
            n("ingress", &["ns"], Some("root"), 0),
            n("crds", &["ns"], Some("root"), 0),
            n("web", &["ingress"], Some("root"), 0),
        ])
        .unwrap();
        let levels = g.levels();
        let levels: Vec<Vec<&str>> = levels.iter().map(|l| names(l)).collect();
        assert_eq!(
            levels,
            vec![
                vec!["root"],
                vec!["ns"],
                vec!["ingress", "crds"],
                vec!["web"]
            ]
        );
    }

    #[test]
    fn unknown_dependency_names_app_and_suggests() {
        let errs = AppGraph::build(&[n("ingress", &[], None, 0), n("web", &["ingres"], None, 0)])
            .unwrap_err();
        assert_eq!(
            errs[0].to_string(),
            "application \"web\" depends on \"ingres\", which is not in the tree (did you mean \"ingress\"?)"
        );
        let errs = AppGraph::build(&[n("web", &["zzz-unrelated"], None, 0)]).unwrap_err();
        assert_eq!(
            errs[0].to_string(),
            "application \"web\" depends on \"zzz-unrelated\", which is not in the tree"
        );
    }

    #[test]
    fn cycle_names_every_app_on_it() {
        let errs = AppGraph::build(&[
            n("a", &["c"], None, 0),
            n("b", &["a"], None, 0),
            n("c", &["b"], None, 0),
            n("d", &[], None, 0),
        ])
        .unwrap_err();
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].to_string(), "dependency cycle: a → b → c → a");
        match &errs[0] {
            GraphError::Cycle { apps } => assert_eq!(names(apps), vec!["a", "b", "c"]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn cycle_through_parent_edge() {
        // A parent that depends on its own child can never start.
        let errs =
            AppGraph::build(&[n("p", &["c"], None, 0), n("c", &[], Some("p"), 0)]).unwrap_err();
        assert_eq!(errs[0].to_string(), "dependency cycle: p → c → p");
    }

    #[test]
    fn blocked_set_is_transitive_and_spares_independent_branches() {
        let g = AppGraph::build(&[
            n("crds", &[], None, 0),
            n("monitoring", &["crds"], None, 0),
            n("alerts", &["monitoring"], None, 0),
            n("web", &[], None, 0),
        ])
        .unwrap();
        let failed = HashSet::from([AppName::new("crds").unwrap()]);
        let blocked = g.blocked_by(&failed);
        assert_eq!(
            blocked.iter().map(AppName::as_str).collect::<Vec<_>>(),
            vec!["alerts", "monitoring"]
        );
    }

    #[test]
    fn with_prerequisites_collects_upstream() {
        let g = AppGraph::build(&[
            n("ns", &[], None, 0),
            n("ingress", &["ns"], None, 0),
            n("web", &["ingress"], None, 0),
            n("other", &[], None, 0),
        ])
        .unwrap();
        let set = g.with_prerequisites(&HashSet::from([AppName::new("web").unwrap()]));
        assert_eq!(
            set.iter().map(AppName::as_str).collect::<Vec<_>>(),
            vec!["ingress", "ns", "web"]
        );
    }

    #[test]
    fn sync_waves_order_siblings() {
        let g = AppGraph::build(&[
            n("root", &[], None, 0),
            n("crds", &[], Some("root"), -1),
            n("db", &[], Some("root"), 0),
            n("cache", &[], Some("root"), 0),
            n("web", &[], Some("root"), 5),
        ])
        .unwrap();
        let levels = g.levels();
        let levels: Vec<Vec<&str>> = levels.iter().map(|l| names(l)).collect();
        assert_eq!(
            levels,
            vec![vec!["root"], vec!["crds"], vec!["db", "cache"], vec!["web"]]
        );
        let pre = g.prerequisites(&AppName::new("web").unwrap());
        assert!(pre
            .iter()
            .all(|(_, k)| *k == EdgeKind::SyncWave || *k == EdgeKind::Parent));
    }

    #[test]
    fn empty_graph() {
        let g = AppGraph::build(&[]).unwrap();
        assert!(g.is_empty());
        assert!(g.levels().is_empty());
    }
}
