//! Field sets in the `FieldsV1` format of `metadata.managedFields`: a trie of
//! path elements (`f:<field>`, `k:{<key fields>}`, `v:<value>`, `i:<index>`),
//! where a node is a *member* when the field itself is owned (a leaf `{}`, or
//! `".": {}` next to children). It owns the set algebra, the `FieldsV1`
//! (de)serialisation and the path rendering the API server uses in conflict
//! messages (`.spec.containers[name="app"].image`). It does not know about
//! objects or managers: that is `fieldmanager.rs`.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// One path element as it appears in `FieldsV1`: `f:name`, `k:{"name":"a"}`,
/// `v:"x"` or `i:0`.
pub type Element = String;

/// A set of field paths.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSet {
    member: bool,
    children: BTreeMap<Element, FieldSet>,
}

impl FieldSet {
    /// The empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether no path is a member.
    pub fn is_empty(&self) -> bool {
        !self.member && self.children.values().all(FieldSet::is_empty)
    }

    /// Adds `path` as a member.
    pub fn insert(&mut self, path: &[Element]) {
        let mut node = self;
        for e in path {
            node = node.children.entry(e.clone()).or_default();
        }
        node.member = true;
    }

    /// Whether `path` is a member.
    pub fn contains(&self, path: &[Element]) -> bool {
        self.node(path).is_some_and(|n| n.member)
    }

    /// Whether `path` or any path below it is a member.
    pub fn covers(&self, path: &[Element]) -> bool {
        self.node(path).is_some_and(|n| !n.is_empty())
    }

    /// Whether a path strictly below `path` is a member.
    pub fn has_descendants(&self, path: &[Element]) -> bool {
        self.node(path)
            .is_some_and(|n| n.children.values().any(|c| !c.is_empty()))
    }

    fn node(&self, path: &[Element]) -> Option<&FieldSet> {
        let mut node = self;
        for e in path {
            node = node.children.get(e)?;
        }
        Some(node)
    }

    /// Removes `path` as a member (paths below it stay).
    pub fn remove(&mut self, path: &[Element]) {
        fn go(node: &mut FieldSet, path: &[Element]) {
            match path.split_first() {
                None => node.member = false,
                Some((e, rest)) => {
                    if let Some(child) = node.children.get_mut(e) {
                        go(child, rest);
                        if child.is_empty() {
                            node.children.remove(e);
                        }
                    }
                }
            }
        }
        go(self, path);
    }

    /// Removes `path` and every path below it.
    pub fn remove_subtree(&mut self, path: &[Element]) {
        let Some((last, parents)) = path.split_last() else {
            *self = FieldSet::new();
            return;
        };
        let mut node = &mut *self;
        for e in parents {
            match node.children.get_mut(e) {
                Some(n) => node = n,
                None => return,
            }
        }
        node.children.remove(last);
        self.prune_empty();
    }

    fn prune_empty(&mut self) {
        self.children.retain(|_, c| {
            c.prune_empty();
            !c.is_empty()
        });
    }

    /// Every member path, depth first in element order.
    pub fn paths(&self) -> Vec<Vec<Element>> {
        fn go(node: &FieldSet, prefix: &mut Vec<Element>, out: &mut Vec<Vec<Element>>) {
            if node.member && !prefix.is_empty() {
                out.push(prefix.clone());
            }
            for (e, c) in &node.children {
                prefix.push(e.clone());
                go(c, prefix, out);
                prefix.pop();
            }
        }
        let mut out = Vec::new();
        go(self, &mut Vec::new(), &mut out);
        out
    }

    /// Members of either set.
    pub fn union(&self, other: &FieldSet) -> FieldSet {
        let mut out = self.clone();
        for p in other.paths() {
            out.insert(&p);
        }
        out
    }

    /// Members of `self` that are not members of `other`.
    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet::new();
        for p in self.paths() {
            if !other.contains(&p) {
                out.insert(&p);
            }
        }
        out
    }

    /// Members of both sets.
    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet::new();
        for p in self.paths() {
            if other.contains(&p) {
                out.insert(&p);
            }
        }
        out
    }

    /// The `FieldsV1` JSON of this set.
    pub fn to_fields_v1(&self) -> Value {
        fn go(node: &FieldSet, root: bool) -> Map<String, Value> {
            let mut m = Map::new();
            let live_children: Vec<_> = node
                .children
                .iter()
                .filter(|(_, c)| !c.is_empty())
                .collect();
            if node.member && !root && !live_children.is_empty() {
                m.insert(".".to_string(), Value::Object(Map::new()));
            }
            for (e, c) in live_children {
                m.insert(e.clone(), Value::Object(go(c, false)));
            }
            m
        }
        Value::Object(go(self, true))
    }

    /// Parses `FieldsV1` JSON; anything that is not an object of objects is
    /// ignored, so a malformed entry yields a smaller set, never a panic.
    pub fn from_fields_v1(v: &Value) -> FieldSet {
        fn go(v: &Value) -> FieldSet {
            let mut node = FieldSet::new();
            let Some(m) = v.as_object() else {
                return node;
            };
            for (k, c) in m {
                if k == "." {
                    node.member = true;
                    continue;
                }
                if !c.is_object() {
                    continue;
                }
                let mut child = go(c);
                if c.as_object().is_some_and(Map::is_empty) {
                    child.member = true;
                }
                if !child.is_empty() {
                    node.children.insert(k.clone(), child);
                }
            }
            node
        }
        let mut set = go(v);
        set.member = false;
        set
    }
}

/// The `f:` element of a map field.
pub fn field(name: &str) -> Element {
    format!("f:{name}")
}

/// Renders a path as the API server prints it in conflicts:
/// `.spec.template.spec.containers[name="app"].image`,
/// `.spec.ports[port=80,protocol="TCP"]`, `.metadata.finalizers[="x"]`.
pub fn render(path: &[Element]) -> String {
    let mut out = String::new();
    for e in path {
        if let Some(name) = e.strip_prefix("f:") {
            out.push('.');
            out.push_str(name);
        } else if let Some(key) = e.strip_prefix("k:") {
            match serde_json::from_str::<Map<String, Value>>(key) {
                Ok(m) => {
                    let parts: Vec<String> = m.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    out.push('[');
                    out.push_str(&parts.join(","));
                    out.push(']');
                }
                Err(_) => {
                    out.push('[');
                    out.push_str(key);
                    out.push(']');
                }
            }
        } else if let Some(v) = e.strip_prefix("v:") {
            out.push_str("[=");
            out.push_str(v);
            out.push(']');
        } else if let Some(i) = e.strip_prefix("i:") {
            out.push('[');
            out.push_str(i);
            out.push(']');
        } else {
            out.push('.');
            out.push_str(e);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(parts: &[&str]) -> Vec<Element> {
        parts.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn fields_v1_round_trip() {
        let v = json!({
            "f:metadata": {"f:labels": {"f:app": {}}},
            "f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {".": {}, "f:image": {}, "f:name": {}}}}
        });
        let set = FieldSet::from_fields_v1(&v);
        assert!(set.contains(&p(&["f:metadata", "f:labels", "f:app"])));
        assert!(set.contains(&p(&["f:spec", "f:containers", "k:{\"name\":\"app\"}"])));
        assert!(!set.contains(&p(&["f:spec"])));
        assert!(set.has_descendants(&p(&["f:spec"])));
        assert_eq!(set.to_fields_v1(), v);
        assert_eq!(set.paths().len(), 4);
    }

    #[test]
    fn algebra() {
        let mut a = FieldSet::new();
        a.insert(&p(&["f:a", "f:b"]));
        a.insert(&p(&["f:a", "f:c"]));
        let mut b = FieldSet::new();
        b.insert(&p(&["f:a", "f:c"]));
        b.insert(&p(&["f:d"]));
        assert_eq!(a.intersection(&b).paths(), vec![p(&["f:a", "f:c"])]);
        assert_eq!(a.difference(&b).paths(), vec![p(&["f:a", "f:b"])]);
        assert_eq!(a.union(&b).paths().len(), 3);
        a.remove(&p(&["f:a", "f:b"]));
        a.remove(&p(&["f:a", "f:c"]));
        assert!(a.is_empty());
        assert_eq!(a.to_fields_v1(), json!({}));
        b.remove_subtree(&p(&["f:a"]));
        assert_eq!(b.paths(), vec![p(&["f:d"])]);
    }

    #[test]
    fn malformed_input_is_ignored() {
        for v in [
            json!(null),
            json!([1]),
            json!({"f:a": 1, "f:b": {"x": "y"}}),
        ] {
            assert!(FieldSet::from_fields_v1(&v).is_empty(), "{v}");
        }
    }

    #[test]
    fn rendering() {
        let cases = [
            (p(&["f:spec", "f:replicas"]), ".spec.replicas"),
            (
                p(&[
                    "f:spec",
                    "f:template",
                    "f:spec",
                    "f:containers",
                    r#"k:{"name":"app"}"#,
                    "f:image",
                ]),
                r#".spec.template.spec.containers[name="app"].image"#,
            ),
            (
                p(&["f:spec", "f:ports", r#"k:{"port":80,"protocol":"TCP"}"#]),
                r#".spec.ports[port=80,protocol="TCP"]"#,
            ),
            (
                p(&["f:metadata", "f:finalizers", r#"v:"x""#]),
                r#".metadata.finalizers[="x"]"#,
            ),
            (
                p(&["f:metadata", "f:labels", "f:app"]),
                ".metadata.labels.app",
            ),
            (p(&["f:a", "i:3"]), ".a[3]"),
        ];
        for (path, want) in cases {
            assert_eq!(render(&path), want);
        }
    }
}
