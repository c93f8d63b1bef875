//! What the whole tree wants, shared by every app's sync: the system
//! namespaces, the scope of every custom kind the tree defines, which app
//! renders each object (so a moved object is handed over, never pruned),
//! and which apps failed to render (which freezes prune tree-wide). Pure:
//! built from the rendered tree.

use std::collections::HashMap;

use serde_json::Value;

use super::prepare::{SystemNamespaces, BUILTIN_SYSTEM_NAMESPACES};
use super::status;
use crate::model::{AppName, Manifest, ObjectRef, Tier};
use crate::tree::AppTree;

/// Namespaces owned by the system tier: reserved (the built-ins, kubesync's
/// own, system apps' destinations) and declared (Namespace objects system
/// apps render).
pub fn system_namespaces(tree: &AppTree) -> SystemNamespaces {
    let mut out = SystemNamespaces::default();
    out.reserved
        .extend(BUILTIN_SYSTEM_NAMESPACES.iter().map(|s| s.to_string()));
    out.reserved.insert(status::STATUS_NAMESPACE.to_string());
    for n in tree.nodes().iter().filter(|n| n.app.tier == Tier::System) {
        if let Some(ns) = &n.app.destination.namespace {
            out.reserved.insert(ns.clone());
        }
        for m in n.objects() {
            if m.kind() == "Namespace" && m.api_version() == "v1" {
                if let Ok(r) = m.object_ref() {
                    out.declared.insert(r.name);
                }
            }
        }
    }
    out
}

/// What the whole tree wants, shared by every app's sync: the system
/// namespaces, and which app renders each object (so that an object moved
/// from one app to another is handed over, never pruned).
pub(super) struct Shared {
    pub(super) namespaces: SystemNamespaces,
    /// Scope of every custom kind a CRD in the tree defines.
    pub(super) crd_scopes: HashMap<(String, String), bool>,
    /// (group, kind, name) → (namespace as rendered or defaulted, app).
    pub(super) wanted: WantedBy,
    /// Apps of the tree whose render failed this run: what they want now is
    /// unknown, so no app prunes anything (a leftover may have moved to them).
    pub(super) unrendered: Vec<AppName>,
    /// The run syncs a few apps of a larger tree ([`few_apps`], a commit's
    /// run on a large tree): each app's Application object is read by
    /// itself (one GET) instead of listing every Application of the
    /// cluster.
    pub(super) few_apps: bool,
}

/// See [`Shared::few_apps`].
const FEW_APPS: usize = 8;

/// Whether a run of `selected` apps out of a tree of `tree` reads each
/// app's Application object by itself: a part of the tree (a commit's run,
/// `sync APP`) of at most [`FEW_APPS`]. A whole-tree run lists them (one
/// request, however small the tree).
pub(super) fn few_apps(selected: usize, tree: usize) -> bool {
    selected <= FEW_APPS && selected < tree
}

impl Shared {
    pub(super) fn new(tree: &AppTree) -> Self {
        let mut wanted: WantedBy = HashMap::new();
        for n in tree.nodes() {
            let default_ns = n
                .app
                .destination
                .namespace
                .clone()
                .unwrap_or_else(|| "default".into());
            for m in n.objects() {
                if let Ok(r) = m.object_ref() {
                    let ns = r.namespace.clone().or_else(|| Some(default_ns.clone()));
                    wanted
                        .entry((r.group, r.kind, r.name))
                        .or_default()
                        .push((ns, n.app.name.clone()));
                }
            }
        }
        Shared {
            namespaces: system_namespaces(tree),
            crd_scopes: crd_scopes(tree.nodes().iter().flat_map(|n| n.objects())),
            wanted,
            unrendered: tree.failed().map(|n| n.app.name.clone()).collect(),
            few_apps: false,
        }
    }

    /// Another app of the tree that renders `r`, if any. `r` has its
    /// namespace resolved (`None`: cluster-scoped, so any namespace matches).
    pub(super) fn wanted_by_other(&self, r: &ObjectRef, me: &AppName) -> Option<&AppName> {
        self.wanted
            .get(&(r.group.clone(), r.kind.clone(), r.name.clone()))?
            .iter()
            .find(|(ns, app)| app != me && (r.namespace.is_none() || *ns == r.namespace))
            .map(|(_, app)| app)
    }
}

/// (group, kind, name) → every (namespace, app) that renders such an object.
type WantedBy = HashMap<(String, String, String), Vec<(Option<String>, AppName)>>;

/// (group, kind) → namespaced, for every CRD among `manifests`.
pub(super) fn crd_scopes<'a>(
    manifests: impl Iterator<Item = &'a Manifest>,
) -> HashMap<(String, String), bool> {
    let mut out = HashMap::new();
    for m in manifests.filter(|m| m.kind() == "CustomResourceDefinition") {
        let o = &m.object;
        if let (Some(g), Some(k)) = (
            o.pointer("/spec/group").and_then(Value::as_str),
            o.pointer("/spec/names/kind").and_then(Value::as_str),
        ) {
            let namespaced = o.pointer("/spec/scope").and_then(Value::as_str) != Some("Cluster");
            out.insert((g.to_string(), k.to_string()), namespaced);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::few_apps;

    #[test]
    fn a_few_apps_of_a_larger_tree_are_read_one_by_one_a_whole_tree_is_listed() {
        // A commit's run on a large tree, `sync APP`.
        assert!(few_apps(2, 1_001));
        assert!(few_apps(1, 4));
        assert!(few_apps(8, 9));
        // A whole tree, however small: one list.
        assert!(!few_apps(4, 4));
        assert!(!few_apps(1, 1));
        // Many apps: one list.
        assert!(!few_apps(9, 1_001));
    }
}
