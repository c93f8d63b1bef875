//! The schedule of one sync run: which selected apps may start, which are
//! blocked and by whom, and when the run is over. Pure bookkeeping over the
//! [`AppGraph`] — no IO, no clock, no concurrency; `engine` drives it and
//! does the syncing.
//!
//! Rules:
//! - only prerequisites inside the selection are gated on (`sync web` does
//!   not wait for a database nobody asked to sync);
//! - an app is decided once every selected prerequisite is done: it is
//!   ready to start when all of them ended ready, and blocked otherwise —
//!   blocked by the *root causes*, the apps that really failed, never by
//!   the blocked apps between them;
//! - a blocked app counts as not ready for its own dependents, so a failure
//!   blocks its whole subtree while independent branches carry on.
//!
//! How many apps run at once is the caller's choice: [`Schedule::ready`]
//! lists every app that may start, [`Schedule::start`] marks one running.

use std::collections::{BTreeSet, HashMap};

use crate::graph::AppGraph;
use crate::model::AppName;

/// Where one selected app is in the run.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Pending,
    Running,
    /// Finished; `true` when dependents may start.
    Done(bool),
    /// Never attempted; the root causes.
    Blocked(Vec<AppName>),
}

/// The run's bookkeeping, over the selected apps in a fixed order.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// Selected apps, in the order they are offered and blocked.
    order: Vec<AppName>,
    /// Per selected app, its prerequisites that are selected too.
    prerequisites: HashMap<AppName, Vec<AppName>>,
    state: HashMap<AppName, State>,
}

/// An app that will never start, and the apps whose failure caused it.
pub type Blocked = (AppName, Vec<AppName>);

impl Schedule {
    /// A schedule of `selected` (in that order) over `graph`.
    pub fn new(graph: &AppGraph, selected: &[AppName]) -> Self {
        let chosen: BTreeSet<&AppName> = selected.iter().collect();
        let prerequisites = selected
            .iter()
            .map(|app| {
                let pre = graph
                    .prerequisites(app)
                    .into_iter()
                    .map(|(p, _)| p)
                    .filter(|p| chosen.contains(p))
                    .collect();
                (app.clone(), pre)
            })
            .collect();
        Schedule {
            order: selected.to_vec(),
            prerequisites,
            state: selected
                .iter()
                .map(|a| (a.clone(), State::Pending))
                .collect(),
        }
    }

    /// Pending apps whose prerequisites all ended ready, in selection order.
    pub fn ready(&self) -> Vec<AppName> {
        self.pending()
            .filter(|a| self.prerequisites_of(a).all(|s| s == &State::Done(true)))
            .cloned()
            .collect()
    }

    /// Marks `app` running (the caller started it).
    pub fn start(&mut self, app: &AppName) {
        if let Some(s) = self.state.get_mut(app) {
            *s = State::Running;
        }
    }

    /// Apps started and not finished yet.
    pub fn running(&self) -> usize {
        self.state
            .values()
            .filter(|s| **s == State::Running)
            .count()
    }

    /// Records how `app` ended (`ok`: dependents may start) and returns the
    /// apps this decides as blocked, transitively, with their root causes.
    pub fn finish(&mut self, app: &AppName, ok: bool) -> Vec<Blocked> {
        if let Some(s) = self.state.get_mut(app) {
            *s = State::Done(ok);
        }
        let mut out = Vec::new();
        while let Some(next) = self.next_blocked() {
            self.state
                .insert(next.0.clone(), State::Blocked(next.1.clone()));
            out.push(next);
        }
        out
    }

    /// True when no app is pending or running.
    pub fn is_done(&self) -> bool {
        self.pending().next().is_none() && self.running() == 0
    }

    /// Apps that can never be decided (only with a cycle, which the graph
    /// rejects): pending while nothing runs and nothing is ready.
    pub fn stuck(&self) -> Vec<AppName> {
        if self.running() > 0 || !self.ready().is_empty() {
            return Vec::new();
        }
        self.pending().cloned().collect()
    }

    /// The first pending app whose prerequisites are all decided and not
    /// all ready, with the root causes of those that are not.
    fn next_blocked(&self) -> Option<Blocked> {
        self.pending().find_map(|app| {
            let pre = &self.prerequisites[app];
            let decided = pre
                .iter()
                .all(|p| matches!(self.state.get(p), Some(State::Done(_) | State::Blocked(_))));
            if !decided {
                return None;
            }
            let mut by = BTreeSet::new();
            for p in pre {
                match &self.state[p] {
                    State::Done(false) => {
                        by.insert(p.clone());
                    }
                    State::Blocked(causes) => by.extend(causes.iter().cloned()),
                    _ => {}
                }
            }
            (!by.is_empty()).then(|| (app.clone(), by.into_iter().collect()))
        })
    }

    fn pending(&self) -> impl Iterator<Item = &AppName> {
        self.order
            .iter()
            .filter(|a| self.state.get(*a) == Some(&State::Pending))
    }

    fn prerequisites_of<'a>(&'a self, app: &AppName) -> impl Iterator<Item = &'a State> {
        self.prerequisites
            .get(app)
            .into_iter()
            .flatten()
            .filter_map(|p| self.state.get(p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::NodeSpec;

    fn name(s: &str) -> AppName {
        AppName::new(s).unwrap()
    }

    fn names(v: &[&str]) -> Vec<AppName> {
        v.iter().map(|s| name(s)).collect()
    }

    /// A graph of `(app, dependsOn)` and a schedule of every app (or `only`).
    fn schedule(edges: &[(&str, &[&str])], only: Option<&[&str]>) -> Schedule {
        let nodes: Vec<NodeSpec> = edges
            .iter()
            .map(|(a, deps)| NodeSpec {
                name: name(a),
                depends_on: names(deps),
                parent: None,
                sync_wave: 0,
            })
            .collect();
        let graph = AppGraph::build(&nodes).unwrap();
        let selected = match only {
            Some(o) => names(o),
            None => nodes.iter().map(|n| n.name.clone()).collect(),
        };
        Schedule::new(&graph, &selected)
    }

    fn blocked(v: &[(&str, &[&str])]) -> Vec<Blocked> {
        v.iter().map(|(a, by)| (name(a), names(by))).collect()
    }

    /// Starts everything ready, then finishes `app`.
    fn step(s: &mut Schedule, app: &str, ok: bool) -> Vec<Blocked> {
        for a in s.ready() {
            s.start(&a);
        }
        s.finish(&name(app), ok)
    }

    #[test]
    fn a_chain_runs_one_at_a_time() {
        let mut s = schedule(&[("a", &[]), ("b", &["a"]), ("c", &["b"])], None);
        assert_eq!(s.ready(), names(&["a"]));
        s.start(&name("a"));
        assert_eq!(s.ready(), Vec::<AppName>::new());
        assert!(s.finish(&name("a"), true).is_empty());
        assert_eq!(s.ready(), names(&["b"]));
        assert!(step(&mut s, "b", true).is_empty());
        assert_eq!(s.ready(), names(&["c"]));
        assert!(!s.is_done());
        assert!(step(&mut s, "c", true).is_empty());
        assert!(s.is_done());
    }

    #[test]
    fn a_diamond_joins_only_when_both_sides_are_ready() {
        let edges: &[(&str, &[&str])] = &[
            ("top", &[]),
            ("left", &["top"]),
            ("right", &["top"]),
            ("bottom", &["left", "right"]),
        ];
        let mut s = schedule(edges, None);
        step(&mut s, "top", true);
        assert_eq!(s.ready(), names(&["left", "right"]));
        step(&mut s, "left", true);
        assert!(s.ready().is_empty(), "bottom waits for right");
        assert_eq!(s.running(), 1);
        step(&mut s, "right", true);
        assert_eq!(s.ready(), names(&["bottom"]));
    }

    #[test]
    fn a_failure_blocks_its_subtree_while_an_independent_branch_continues() {
        let edges: &[(&str, &[&str])] = &[
            ("db", &[]),
            ("api", &["db"]),
            ("web", &["api"]),
            ("cache", &[]),
            ("worker", &["cache"]),
        ];
        let mut s = schedule(edges, None);
        assert_eq!(s.ready(), names(&["db", "cache"]));
        assert_eq!(
            step(&mut s, "db", false),
            blocked(&[("api", &["db"]), ("web", &["db"])]),
            "transitively, root cause named"
        );
        assert_eq!(s.ready(), Vec::<AppName>::new(), "cache still running");
        assert!(step(&mut s, "cache", true).is_empty());
        assert_eq!(s.ready(), names(&["worker"]));
        step(&mut s, "worker", true);
        assert!(s.is_done());
    }

    #[test]
    fn root_causes_pass_through_blocked_apps_and_join() {
        let edges: &[(&str, &[&str])] = &[
            ("a", &[]),
            ("b", &[]),
            ("a2", &["a"]),
            ("b2", &["b"]),
            ("join", &["a2", "b2"]),
            ("after", &["join"]),
        ];
        let mut s = schedule(edges, None);
        // `join` is decided only once both sides are: it names both causes.
        assert_eq!(step(&mut s, "a", false), blocked(&[("a2", &["a"])]));
        assert_eq!(
            step(&mut s, "b", false),
            blocked(&[
                ("b2", &["b"]),
                ("join", &["a", "b"]),
                ("after", &["a", "b"])
            ])
        );
        assert!(s.is_done());
    }

    #[test]
    fn a_blocker_that_is_one_of_many_prerequisites_waits_for_the_rest() {
        let edges: &[(&str, &[&str])] = &[("a", &[]), ("b", &[]), ("c", &["a", "b"])];
        let mut s = schedule(edges, None);
        assert!(step(&mut s, "a", false).is_empty(), "b still running");
        assert_eq!(step(&mut s, "b", true), blocked(&[("c", &["a"])]));
        assert!(s.is_done());
    }

    #[test]
    fn prerequisites_outside_the_selection_are_not_gated_on() {
        let edges: &[(&str, &[&str])] = &[("db", &[]), ("api", &["db"]), ("web", &["api"])];
        let mut s = schedule(edges, Some(&["api", "web"]));
        assert_eq!(s.ready(), names(&["api"]), "db is not waited for");
        assert_eq!(step(&mut s, "api", false), blocked(&[("web", &["api"])]));
        assert!(s.is_done());
        // An unselected app is no part of the run.
        assert!(s.finish(&name("db"), false).is_empty());
    }

    #[test]
    fn an_empty_selection_is_done_at_once() {
        let s = schedule(&[("a", &[])], Some(&[]));
        assert!(s.is_done());
        assert!(s.ready().is_empty());
        assert!(s.stuck().is_empty());
    }
}
