//! Applying `ignoreDifferences` rules ([`IgnoreRule`]) to a desired/live
//! pair, as Argo CD does:
//!
//! - a rule applies to an object when its `group` and `kind` globs match
//!   (`*` any; an omitted group is the core group) and its `name` and
//!   `namespace`, when given, are the object's;
//! - `jsonPointers` (RFC 6901) and the paths a `jqPathExpressions`
//!   expression selects (jq's `path(EXPR)`, run by jaq) are removed from
//!   both sides before they are compared; a pointer or expression that
//!   selects nothing, or an expression that fails on an object, ignores
//!   nothing there (as in Argo CD);
//! - `managedFieldsManagers`: the fields those managers own in the live
//!   object's `managedFields` (the `fieldsV1` set) are removed from both
//!   sides; a list element one of them added (`.` in its set) is removed
//!   when git does not declare that element.
//!
//! [`IgnoreSet::respect`] is the other direction, for the sync option
//! `RespectIgnoreDifferences=true`: the desired object with every ignored
//! field taken from the live object, so that an apply leaves them as they
//! are.
//!
//! Pure: no IO. jq expressions run under a time limit (`jq`); one that
//! overruns fails its app ([`IgnoreSet::check_jq_limits`]).

use std::sync::Arc;

use globset::{GlobBuilder, GlobMatcher};
use serde_json::{Map, Value};

use crate::model::{IgnoreRule, ObjectRef};

/// At most this many paths are taken from one jq expression on one object.
pub const MAX_JQ_PATHS: usize = super::jq::MAX_PATHS;

/// A glob as Argo CD matches group and kind (`*` any sequence).
pub fn glob(pattern: &str) -> Result<GlobMatcher, String> {
    GlobBuilder::new(pattern)
        .literal_separator(false)
        .build()
        .map(|g| g.compile_matcher())
        .map_err(|e| e.kind().to_string())
}

/// Checks that a jq path expression compiles.
pub fn check_jq(expr: &str) -> Result<(), String> {
    super::jq::check(expr)
}

/// One step of a path into an object.
#[derive(Debug, Clone, PartialEq)]
enum Seg {
    Key(String),
    Index(usize),
    /// The list element whose fields equal these (`k:{…}` in fieldsV1).
    Match(Map<String, Value>),
    /// The list element equal to this value (`v:…` in fieldsV1).
    Equal(Value),
}

/// A path, and whether it names a list element a manager added (`.`)
/// rather than a field.
#[derive(Debug, Clone, PartialEq)]
struct IgnoredPath {
    segs: Vec<Seg>,
    element: bool,
}

/// The rules of one app (its own and the global ones), ready to apply.
#[derive(Debug, Clone, Default)]
pub struct IgnoreSet {
    rules: Vec<Compiled>,
}

#[derive(Debug, Clone)]
struct Compiled {
    group: GlobMatcher,
    kind: GlobMatcher,
    rule: IgnoreRule,
}

impl IgnoreSet {
    /// Compiles the rules; an invalid glob or jq expression is an error
    /// naming it (the model checks both when it reads them).
    pub fn new<'a>(rules: impl IntoIterator<Item = &'a IgnoreRule>) -> Result<Self, String> {
        let mut out = Vec::new();
        for rule in rules {
            for e in &rule.jq_path_expressions {
                check_jq(e).map_err(|m| format!("jqPathExpressions \"{e}\": {m}"))?;
            }
            out.push(Compiled {
                group: glob(&rule.group)
                    .map_err(|m| format!("invalid group glob \"{}\": {m}", rule.group))?,
                kind: glob(&rule.kind)
                    .map_err(|m| format!("invalid kind glob \"{}\": {m}", rule.kind))?,
                rule: rule.clone(),
            });
        }
        Ok(IgnoreSet { rules: out })
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    fn matching<'s>(&'s self, r: &'s ObjectRef) -> impl Iterator<Item = &'s IgnoreRule> + 's {
        self.rules.iter().filter_map(move |c| {
            let rule = &c.rule;
            let hit = c.group.is_match(&r.group)
                && c.kind.is_match(&r.kind)
                && rule.name.as_ref().is_none_or(|n| *n == r.name)
                && rule
                    .namespace
                    .as_ref()
                    .is_none_or(|n| Some(n) == r.namespace.as_ref());
            hit.then_some(rule)
        })
    }

    /// Runs every jq expression of the rules on each of `objects` (an app's
    /// rendered objects) that its rule applies to, under the jq time limit:
    /// the first one that overruns — now, or on any object before (a live
    /// one during an earlier diff) — is an error naming the expression and
    /// the object, so the app fails instead of hanging its sync.
    pub fn check_jq_limits<'a>(
        &self,
        objects: impl IntoIterator<Item = (ObjectRef, &'a Value)>,
    ) -> Result<(), String> {
        let exprs = || self.rules.iter().flat_map(|c| &c.rule.jq_path_expressions);
        if let Some(e) = exprs().find_map(|e| super::jq::timed_out(e)) {
            return Err(e.to_string());
        }
        if exprs().next().is_none() {
            return Ok(());
        }
        for (r, obj) in objects {
            let mut input: Option<Arc<Value>> = None;
            for rule in self.matching(&r) {
                for e in &rule.jq_path_expressions {
                    let input = input.get_or_insert_with(|| Arc::new(obj.clone()));
                    if let Err(err) = super::jq::paths(e, input) {
                        return Err(format!("{err} (on {r})"));
                    }
                }
            }
        }
        Ok(())
    }

    /// Whether any rule applies to `r`.
    pub fn applies_to(&self, r: &ObjectRef) -> bool {
        self.matching(r).next().is_some()
    }

    /// `desired` and `live` without the fields the rules ignore for `r`.
    pub fn strip(&self, r: &ObjectRef, desired: &Value, live: &Value) -> (Value, Value) {
        let (mut d, mut l) = (desired.clone(), live.clone());
        if !self.applies_to(r) {
            return (d, l);
        }
        // The managers' fields are read from live's managedFields once.
        let mut from_live = self.paths_on(r, live);
        from_live.extend(self.managed_on(r, live));
        let from_desired = self.paths_on(r, desired);
        // Resolved on the objects as they are, then removed deepest and
        // last first, so that no removal moves what another one names.
        let (mut on_d, mut on_l) = (Vec::new(), Vec::new());
        for p in from_live.iter().chain(&from_desired) {
            let in_d = resolve(desired, &p.segs);
            if p.element {
                // An element a trusted manager added: ignored unless git declares it.
                if in_d.is_none() {
                    on_l.extend(resolve(live, &p.segs));
                }
                continue;
            }
            on_d.extend(in_d);
            on_l.extend(resolve(live, &p.segs));
        }
        for (obj, paths) in [(&mut d, &mut on_d), (&mut l, &mut on_l)] {
            paths.sort_by(|a, b| seg_order(b, a));
            paths.dedup();
            for p in paths.iter() {
                remove(obj, p);
            }
        }
        (d, l)
    }

    /// `desired` with every field the rules ignore for `r` taken from
    /// `live`: set to the live value, or left out when live has none.
    pub fn respect(&self, r: &ObjectRef, desired: &Value, live: &Value) -> Value {
        let mut out = desired.clone();
        if !self.applies_to(r) {
            return out;
        }
        let managed = self.managed_on(r, live);
        let mut on_desired = self.paths_on(r, desired);
        on_desired.extend(managed.iter().cloned());
        // Remove deepest and last first, so indices stay valid.
        on_desired.sort_by(|a, b| seg_order(&b.segs, &a.segs));
        for p in on_desired.iter().filter(|p| !p.element) {
            if resolve(live, &p.segs).is_none() {
                remove(&mut out, &p.segs);
            }
        }
        for p in self.paths_on(r, live).into_iter().chain(managed) {
            let Some(concrete) = resolve(live, &p.segs) else {
                continue;
            };
            let Some(value) = get(live, &concrete) else {
                continue;
            };
            let selector = selector_path(live, &concrete);
            graft(&mut out, &selector, value.clone());
        }
        out
    }

    /// The paths of `obj` the rules for `r` name by JSON pointer or jq
    /// expression (`obj` is handed to jq once, however many expressions).
    fn paths_on(&self, r: &ObjectRef, obj: &Value) -> Vec<IgnoredPath> {
        let mut out = Vec::new();
        let mut jq_input: Option<Arc<Value>> = None;
        for rule in self.matching(r) {
            for p in &rule.json_pointers {
                if let Some(segs) = pointer_segments(p, obj) {
                    out.push(IgnoredPath {
                        segs,
                        element: false,
                    });
                }
            }
            if rule.jq_path_expressions.is_empty() {
                continue;
            }
            let input = jq_input.get_or_insert_with(|| Arc::new(obj.clone()));
            for e in &rule.jq_path_expressions {
                for segs in jq_paths(e, input) {
                    out.push(IgnoredPath {
                        segs,
                        element: false,
                    });
                }
            }
        }
        out
    }

    /// The paths the rules' `managedFieldsManagers` own in `live` (one walk
    /// of its `managedFields` per manager named).
    fn managed_on(&self, r: &ObjectRef, live: &Value) -> Vec<IgnoredPath> {
        let mut out = Vec::new();
        for rule in self.matching(r) {
            for m in &rule.managed_fields_managers {
                out.extend(managed_paths(live, m));
            }
        }
        out
    }
}

fn seg_order(a: &[Seg], b: &[Seg]) -> std::cmp::Ordering {
    for (x, y) in a.iter().zip(b) {
        let o = match (x, y) {
            (Seg::Index(i), Seg::Index(j)) => i.cmp(j),
            (Seg::Key(i), Seg::Key(j)) => i.cmp(j),
            _ => std::cmp::Ordering::Equal,
        };
        if o != std::cmp::Ordering::Equal {
            return o;
        }
    }
    a.len().cmp(&b.len())
}

/// An RFC 6901 pointer as segments (numeric segments are indices where `obj` has a list).
fn pointer_segments(pointer: &str, obj: &Value) -> Option<Vec<Seg>> {
    let mut segs = Vec::new();
    let mut cur = Some(obj);
    for raw in pointer.split('/').skip(1) {
        let key = raw.replace("~1", "/").replace("~0", "~");
        let seg = match cur {
            Some(Value::Array(items)) => {
                let i: usize = key.parse().ok()?;
                cur = items.get(i);
                Seg::Index(i)
            }
            Some(Value::Object(m)) => {
                cur = m.get(&key);
                Seg::Key(key)
            }
            _ => {
                cur = None;
                Seg::Key(key)
            }
        };
        segs.push(seg);
    }
    Some(segs)
}

/// Resolves selector segments against `obj` into concrete keys/indices.
fn resolve(obj: &Value, segs: &[Seg]) -> Option<Vec<Seg>> {
    let mut cur = obj;
    let mut out = Vec::with_capacity(segs.len());
    for seg in segs {
        match (seg, cur) {
            (Seg::Key(k), Value::Object(m)) => {
                cur = m.get(k)?;
                out.push(Seg::Key(k.clone()));
            }
            (Seg::Index(i), Value::Array(items)) => {
                cur = items.get(*i)?;
                out.push(Seg::Index(*i));
            }
            (Seg::Match(fields), Value::Array(items)) => {
                let i = items.iter().position(|item| {
                    fields
                        .iter()
                        .all(|(k, v)| item.get(k).is_some_and(|x| loose_eq(x, v)))
                })?;
                cur = &items[i];
                out.push(Seg::Index(i));
            }
            (Seg::Equal(v), Value::Array(items)) => {
                let i = items.iter().position(|item| loose_eq(item, v))?;
                cur = &items[i];
                out.push(Seg::Index(i));
            }
            _ => return None,
        }
    }
    Some(out)
}

/// Equality of a key field in fieldsV1 with the object's (`80` vs `80.0`).
fn loose_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn get<'v>(obj: &'v Value, concrete: &[Seg]) -> Option<&'v Value> {
    let mut cur = obj;
    for seg in concrete {
        cur = match (seg, cur) {
            (Seg::Key(k), Value::Object(m)) => m.get(k)?,
            (Seg::Index(i), Value::Array(items)) => items.get(*i)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// Removes what `segs` selects (nothing when it selects nothing).
fn remove(obj: &mut Value, segs: &[Seg]) {
    let Some(concrete) = resolve(obj, segs) else {
        return;
    };
    let Some((last, parents)) = concrete.split_last() else {
        return;
    };
    let mut cur = obj;
    for seg in parents {
        cur = match (seg, cur) {
            (Seg::Key(k), Value::Object(m)) => match m.get_mut(k) {
                Some(v) => v,
                None => return,
            },
            (Seg::Index(i), Value::Array(items)) => match items.get_mut(*i) {
                Some(v) => v,
                None => return,
            },
            _ => return,
        };
    }
    match (last, cur) {
        (Seg::Key(k), Value::Object(m)) => {
            m.shift_remove(k);
        }
        (Seg::Index(i), Value::Array(items)) if *i < items.len() => {
            items.remove(*i);
        }
        _ => {}
    }
}

/// A concrete path on `live` as selectors another object can resolve: list
/// elements with a `name` are found by name (as Kubernetes merges them),
/// others by index.
fn selector_path(live: &Value, concrete: &[Seg]) -> Vec<Seg> {
    let mut cur = live;
    let mut out = Vec::with_capacity(concrete.len());
    for seg in concrete {
        match (seg, cur) {
            (Seg::Index(i), Value::Array(items)) => {
                let item = &items[*i];
                match item.get("name") {
                    Some(name) if item.is_object() => {
                        let mut m = Map::new();
                        m.insert("name".into(), name.clone());
                        out.push(Seg::Match(m));
                    }
                    _ => out.push(Seg::Index(*i)),
                }
                cur = item;
            }
            (Seg::Key(k), Value::Object(m)) => {
                out.push(Seg::Key(k.clone()));
                cur = &m[k];
            }
            _ => return out,
        }
    }
    out
}

/// Sets what `segs` selects in `obj` to `value`, creating missing mappings
/// (and lists); a list element that is not there is appended when it is
/// the last step, and nothing is set when it is not (there is nothing to
/// attach to).
fn graft(obj: &mut Value, segs: &[Seg], value: Value) {
    let Some((first, rest)) = segs.split_first() else {
        *obj = value;
        return;
    };
    match (first, obj) {
        (Seg::Key(k), Value::Object(m)) => {
            if rest.is_empty() {
                m.insert(k.clone(), value);
                return;
            }
            let next_is_list = matches!(rest[0], Seg::Index(_) | Seg::Match(_) | Seg::Equal(_));
            let child = m.entry(k.clone()).or_insert_with(|| {
                if next_is_list {
                    Value::Array(Vec::new())
                } else {
                    Value::Object(Map::new())
                }
            });
            graft(child, rest, value);
        }
        (seg, list @ Value::Array(_)) => {
            let found = resolve_one(list, seg);
            let Value::Array(items) = list else { return };
            match (found, rest.is_empty()) {
                (Some(i), true) => items[i] = value,
                (Some(i), false) => graft(&mut items[i], rest, value),
                (None, true) => items.push(value),
                (None, false) => {}
            }
        }
        _ => {}
    }
}

fn resolve_one(list: &Value, seg: &Seg) -> Option<usize> {
    match resolve(list, std::slice::from_ref(seg))?.first()? {
        Seg::Index(i) => Some(*i),
        _ => None,
    }
}

/// Paths the fieldsV1 set of `manager` (in `live`'s `managedFields`) owns.
fn managed_paths(live: &Value, manager: &str) -> Vec<IgnoredPath> {
    let mut out = Vec::new();
    let Some(entries) = live
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
    else {
        return out;
    };
    for e in entries {
        if e.get("manager").and_then(Value::as_str) != Some(manager) {
            continue;
        }
        if let Some(set) = e.get("fieldsV1") {
            fields_v1(set, &mut Vec::new(), &mut out);
        }
    }
    out
}

/// Walks a fieldsV1 set: `f:NAME` a field, `k:{…}` a list element by key
/// fields, `v:VALUE` a set element, `i:N` an element by index, `.` the
/// node itself. Leaves (`{}`) are owned fields.
fn fields_v1(node: &Value, prefix: &mut Vec<Seg>, out: &mut Vec<IgnoredPath>) {
    let Some(m) = node.as_object() else { return };
    if m.is_empty() {
        if !prefix.is_empty() {
            out.push(IgnoredPath {
                segs: prefix.clone(),
                element: false,
            });
        }
        return;
    }
    let is_element = matches!(
        prefix.last(),
        Some(Seg::Match(_) | Seg::Equal(_) | Seg::Index(_))
    );
    for (key, child) in m {
        if key == "." {
            if is_element {
                out.push(IgnoredPath {
                    segs: prefix.clone(),
                    element: true,
                });
            }
            continue;
        }
        let seg = if let Some(name) = key.strip_prefix("f:") {
            Seg::Key(name.to_string())
        } else if let Some(k) = key.strip_prefix("k:") {
            match serde_json::from_str::<Value>(k) {
                Ok(Value::Object(fields)) => Seg::Match(fields),
                _ => continue,
            }
        } else if let Some(v) = key.strip_prefix("v:") {
            match serde_json::from_str::<Value>(v) {
                Ok(value) => Seg::Equal(value),
                _ => continue,
            }
        } else if let Some(i) = key.strip_prefix("i:") {
            match i.parse() {
                Ok(i) => Seg::Index(i),
                _ => continue,
            }
        } else {
            continue;
        };
        prefix.push(seg);
        fields_v1(child, prefix, out);
        prefix.pop();
    }
}

/// The paths `expr` selects in `input` (none when it fails on it, or
/// overran its time limit: logged by `jq`, and the app's next sync fails
/// naming it, see [`IgnoreSet::check_jq_limits`]).
fn jq_paths(expr: &str, input: &Arc<Value>) -> Vec<Vec<Seg>> {
    let Ok(Some(paths)) = super::jq::paths(expr, input) else {
        return Vec::new();
    };
    paths
        .into_iter()
        .filter_map(|parts| {
            parts
                .into_iter()
                .map(|p| match p {
                    Value::String(s) => Some(Seg::Key(s)),
                    Value::Number(n) => n.as_u64().map(|i| Seg::Index(i as usize)),
                    _ => None,
                })
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment_ref() -> ObjectRef {
        ObjectRef {
            group: "apps".into(),
            version: "v1".into(),
            kind: "Deployment".into(),
            namespace: Some("web".into()),
            name: "web".into(),
        }
    }

    fn set(rule: IgnoreRule) -> IgnoreSet {
        IgnoreSet::new([&rule]).unwrap()
    }

    fn rule(pointers: &[&str], jq: &[&str], managers: &[&str]) -> IgnoreRule {
        IgnoreRule {
            group: "apps".into(),
            kind: "Deployment".into(),
            json_pointers: pointers.iter().map(|s| s.to_string()).collect(),
            jq_path_expressions: jq.iter().map(|s| s.to_string()).collect(),
            managed_fields_managers: managers.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    fn dep(replicas: i64, images: &[(&str, &str)]) -> Value {
        let containers: Vec<Value> = images
            .iter()
            .map(|(n, i)| json!({"name": n, "image": i}))
            .collect();
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "web"},
               "spec": {"replicas": replicas, "template": {"spec": {"containers": containers}}}})
    }

    #[test]
    fn json_pointers_are_removed_from_both_sides() {
        let s = set(rule(&["/spec/replicas", "/spec/missing/deep"], &[], &[]));
        let (d, l) = s.strip(&deployment_ref(), &dep(1, &[]), &dep(5, &[]));
        assert_eq!(d, l);
        assert!(d["spec"].get("replicas").is_none());
        // Escapes: ~1 is "/", ~0 is "~".
        let s = set(rule(&["/metadata/annotations/a~1b~0c"], &[], &[]));
        let mut with = dep(1, &[]);
        with["metadata"]["annotations"] = json!({"a/b~c": "x", "keep": "y"});
        let (d, _) = s.strip(&deployment_ref(), &with, &dep(1, &[]));
        assert_eq!(d["metadata"]["annotations"], json!({"keep": "y"}));
    }

    #[test]
    fn rules_match_group_kind_name_namespace() {
        let mut r = rule(&["/spec/replicas"], &[], &[]);
        assert!(set(r.clone()).applies_to(&deployment_ref()));
        r.group = "*".into();
        r.kind = "Deploy*".into();
        assert!(set(r.clone()).applies_to(&deployment_ref()));
        r.name = Some("other".into());
        assert!(!set(r.clone()).applies_to(&deployment_ref()));
        r.name = Some("web".into());
        r.namespace = Some("elsewhere".into());
        assert!(!set(r.clone()).applies_to(&deployment_ref()));
        let mut core = rule(&["/x"], &[], &[]);
        core.group = String::new();
        assert!(
            !set(core).applies_to(&deployment_ref()),
            "an omitted group is the core group"
        );
    }

    #[test]
    fn jq_expressions_select_list_items() {
        let s = set(rule(
            &[],
            &[r#".spec.template.spec.containers[] | select(.name == "sidecar") | .image"#],
            &[],
        ));
        let desired = dep(1, &[("app", "app:1"), ("sidecar", "sc:1")]);
        let live = dep(1, &[("sidecar", "sc:9"), ("app", "app:1")]);
        let (d, l) = s.strip(&deployment_ref(), &desired, &live);
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"][1],
            json!({"name": "sidecar"})
        );
        assert_eq!(
            l["spec"]["template"]["spec"]["containers"][0],
            json!({"name": "sidecar"})
        );
        // The app container is still compared.
        let live2 = dep(1, &[("app", "app:2"), ("sidecar", "sc:9")]);
        let (d, l) = s.strip(&deployment_ref(), &desired, &live2);
        assert_ne!(d, l);
        // A failing expression ignores nothing; an invalid one is refused.
        let s = set(rule(&[], &[".spec.replicas | error(\"no\")"], &[]));
        let (d, _) = s.strip(&deployment_ref(), &desired, &live);
        assert_eq!(d, desired);
        assert!(check_jq(".spec.[").is_err());
        assert!(check_jq("nosuchfunction(1)").is_err());
    }

    #[test]
    fn respect_takes_ignored_fields_from_live() {
        let s = set(rule(
            &["/spec/replicas"],
            &[r#".spec.template.spec.containers[] | select(.name == "sidecar") | .image"#],
            &[],
        ));
        let desired = dep(1, &[("app", "app:2"), ("sidecar", "sc:1")]);
        let live = dep(7, &[("sidecar", "sc:9"), ("app", "app:1")]);
        let out = s.respect(&deployment_ref(), &desired, &live);
        assert_eq!(out["spec"]["replicas"], 7);
        let containers = &out["spec"]["template"]["spec"]["containers"];
        assert_eq!(containers[0], json!({"name": "app", "image": "app:2"}));
        assert_eq!(containers[1], json!({"name": "sidecar", "image": "sc:9"}));
        // Live without the field: git's value is left out, not kept.
        let mut live = dep(7, &[]);
        live["spec"].as_object_mut().unwrap().remove("replicas");
        let out = s.respect(&deployment_ref(), &dep(1, &[]), &live);
        assert!(out["spec"].get("replicas").is_none(), "{out}");
    }

    #[test]
    fn managed_fields_of_trusted_managers_are_ignored() {
        let s = set(rule(&[], &[], &["hpa-controller"]));
        let mut live = dep(4, &[("app", "app:1"), ("injected", "proxy:1")]);
        live["metadata"]["managedFields"] = json!([
            {"manager": "kubesync", "operation": "Apply", "fieldsType": "FieldsV1", "fieldsV1": {
                "f:spec": {"f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {".": {}, "f:image": {}, "f:name": {}}}}}}}},
            {"manager": "hpa-controller", "operation": "Update", "fieldsType": "FieldsV1", "fieldsV1": {
                "f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"injected\"}": {".": {}, "f:image": {}, "f:name": {}}}}}}}}
        ]);
        let desired = dep(1, &[("app", "app:1")]);
        let (d, l) = s.strip(&deployment_ref(), &desired, &crate::diff::normalize(&live));
        // managedFields were dropped by normalize: the set comes from `live` given here.
        let (d2, l2) = s.strip(&deployment_ref(), &desired, &live);
        assert_ne!(d, l, "without managedFields nothing is known");
        assert_eq!(crate::diff::normalize(&d2), crate::diff::normalize(&l2));
        // Another manager's fields are still compared.
        let other = set(rule(&[], &[], &["someone-else"]));
        let (d3, l3) = other.strip(&deployment_ref(), &desired, &live);
        assert_ne!(crate::diff::normalize(&d3), crate::diff::normalize(&l3));
    }
}
