//! Field ownership for server-side apply: the `metadata.managedFields` of an
//! object, per manager and operation (Apply / Update), in the `FieldsV1` format
//! the real API server uses. Pure functions over `serde_json::Value`.
//!
//! It owns: the field set an applied configuration declares, the merge of an
//! applied configuration into the live object (maps recursively, associative
//! lists element-wise by key, atomic lists whole), conflict detection and
//! forced transfer, pruning of fields a manager stopped applying, ownership
//! bookkeeping for non-apply writes, and the 409 conflict message. It does not
//! own storage, resource versions, defaulting or validation (the server does),
//! nor the list-type table (`listkeys.rs`) or set algebra (`fieldpath.rs`).
//!
//! As on the real server, server-owned metadata (`managedFields`,
//! `resourceVersion`, `uid`, `creationTimestamp`, `generation`, `selfLink`),
//! `metadata.name`/`namespace` and `apiVersion`/`kind` are never recorded in a
//! field set, and `status` is owned only through the status subresource.

use std::collections::HashSet;

use serde_json::{Map, Value};

use super::fieldpath::{self, Element, FieldSet};
use super::listkeys::{self, ListType};

/// One field that another manager owns and the applier tried to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The manager that owns the field.
    pub manager: String,
    /// The field path as the API server prints it, e.g. `.spec.replicas` or
    /// `.spec.template.spec.containers[name="app"].image`.
    pub field: String,
    /// How the owner got the field: `Apply` or `Update`.
    pub operation: String,
    /// The owner's `apiVersion` (the server prints it for `Update` owners).
    pub api_version: String,
    /// The owner's subresource (`status`), if it wrote through one.
    pub subresource: Option<String>,
}

/// One decoded `metadata.managedFields` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedEntry {
    /// The field manager name.
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: String,
    /// The API version the manager wrote with.
    pub api_version: String,
    /// When the manager's fields last changed (RFC 3339), if known.
    pub time: Option<String>,
    /// The subresource written through (`status`), if any.
    pub subresource: Option<String>,
    /// The fields this entry owns.
    pub fields: FieldSet,
}

impl ManagedEntry {
    fn same_identity(&self, manager: &str, operation: &str, subresource: Option<&str>) -> bool {
        self.manager == manager
            && self.operation == operation
            && self.subresource.as_deref() == subresource
    }
}

const APPLY: &str = "Apply";
const UPDATE: &str = "Update";

/// Metadata fields the server owns; they never enter a field set and an apply
/// never changes them.
const SERVER_METADATA: &[&str] = &[
    "managedFields",
    "resourceVersion",
    "uid",
    "creationTimestamp",
    "generation",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

/// Paths stripped exactly (not their children), as the real stripMeta
/// manager does.
const STRIPPED: &[&[&str]] = &[
    &["apiVersion"],
    &["kind"],
    &["metadata"],
    &["metadata", "name"],
    &["metadata", "namespace"],
    &["metadata", "creationTimestamp"],
    &["metadata", "selfLink"],
    &["metadata", "uid"],
    &["metadata", "clusterName"],
    &["metadata", "generation"],
    &["metadata", "resourceVersion"],
    &["metadata", "deletionTimestamp"],
    &["metadata", "deletionGracePeriodSeconds"],
];

fn fpath(names: &[&str]) -> Vec<Element> {
    names.iter().map(|n| fieldpath::field(n)).collect()
}

/// Drops what the server never records for a write through `subresource`.
fn strip_ignored(set: &mut FieldSet, subresource: Option<&str>) {
    for p in STRIPPED {
        set.remove(&fpath(p));
    }
    set.remove_subtree(&fpath(&["metadata", "managedFields"]));
    match subresource {
        None => set.remove_subtree(&fpath(&["status"])),
        Some("status") => {
            let status = fieldpath::field("status");
            let mut kept = FieldSet::new();
            for p in set.paths() {
                if p.first() == Some(&status) {
                    kept.insert(&p);
                }
            }
            *set = kept;
        }
        Some(_) => {}
    }
}

// ---------------------------------------------------------------------------
// managedFields (de)coding
// ---------------------------------------------------------------------------

fn str_field(m: &Map<String, Value>, k: &str) -> Option<String> {
    m.get(k).and_then(Value::as_str).map(str::to_string)
}

fn decode_entries(list: &[Value]) -> Vec<ManagedEntry> {
    let mut out: Vec<ManagedEntry> = Vec::new();
    for item in list {
        let Some(m) = item.as_object() else {
            continue;
        };
        if m.get("fieldsType")
            .and_then(Value::as_str)
            .is_some_and(|t| t != "FieldsV1")
        {
            continue;
        }
        let entry = ManagedEntry {
            manager: str_field(m, "manager").unwrap_or_default(),
            operation: str_field(m, "operation").unwrap_or_else(|| UPDATE.to_string()),
            api_version: str_field(m, "apiVersion").unwrap_or_default(),
            time: str_field(m, "time"),
            subresource: str_field(m, "subresource").filter(|s| !s.is_empty()),
            fields: m
                .get("fieldsV1")
                .map(FieldSet::from_fields_v1)
                .unwrap_or_default(),
        };
        match out.iter_mut().find(|e| {
            e.same_identity(
                &entry.manager,
                &entry.operation,
                entry.subresource.as_deref(),
            )
        }) {
            Some(existing) => {
                existing.fields = existing.fields.union(&entry.fields);
                if entry.time > existing.time {
                    existing.time = entry.time;
                    existing.api_version = entry.api_version;
                }
            }
            None => out.push(entry),
        }
    }
    out
}

/// The decoded `metadata.managedFields` of `obj` (entries of the same manager,
/// operation and subresource merged; malformed entries skipped).
pub fn managed_entries(obj: &Value) -> Vec<ManagedEntry> {
    match obj.pointer("/metadata/managedFields") {
        Some(Value::Array(list)) => decode_entries(list),
        _ => Vec::new(),
    }
}

fn encode_entries(mut entries: Vec<ManagedEntry>) -> Vec<Value> {
    entries.retain(|e| !e.fields.is_empty());
    // The real server's order: operation, then time, manager, apiVersion,
    // subresource.
    entries.sort_by(|p, q| {
        (
            &p.operation,
            &p.time,
            &p.manager,
            &p.api_version,
            &p.subresource,
        )
            .cmp(&(
                &q.operation,
                &q.time,
                &q.manager,
                &q.api_version,
                &q.subresource,
            ))
    });
    entries
        .into_iter()
        .map(|e| {
            let mut m = Map::new();
            m.insert("manager".into(), Value::String(e.manager));
            m.insert("operation".into(), Value::String(e.operation));
            m.insert("apiVersion".into(), Value::String(e.api_version));
            if let Some(t) = e.time {
                m.insert("time".into(), Value::String(t));
            }
            m.insert("fieldsType".into(), Value::String("FieldsV1".into()));
            m.insert("fieldsV1".into(), e.fields.to_fields_v1());
            if let Some(s) = e.subresource {
                m.insert("subresource".into(), Value::String(s));
            }
            Value::Object(m)
        })
        .collect()
}

/// Writes `entries` as `metadata.managedFields` of `obj` (removing the field
/// when no entry owns anything). Does nothing when `obj` is not an object.
fn set_managed_fields(obj: &mut Value, entries: Vec<ManagedEntry>) {
    let encoded = encode_entries(entries);
    let Value::Object(root) = obj else {
        return;
    };
    if encoded.is_empty() {
        if let Some(Value::Object(meta)) = root.get_mut("metadata") {
            meta.shift_remove("managedFields");
        }
        return;
    }
    let meta = root
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(Map::new());
    }
    if let Value::Object(meta) = meta {
        meta.insert("managedFields".into(), Value::Array(encoded));
    }
}

/// `obj` without `metadata.managedFields`.
fn without_managed_fields(obj: &Value) -> Value {
    let mut out = obj.clone();
    if let Value::Object(root) = &mut out {
        if let Some(Value::Object(meta)) = root.get_mut("metadata") {
            if meta.shift_remove("managedFields").is_some() && meta.is_empty() {
                root.shift_remove("metadata");
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Field sets of values
// ---------------------------------------------------------------------------

/// The field set an applied configuration declares: every leaf (scalar,
/// null, empty map, atomic list or map), and every associative-list item
/// together with its fields.
pub fn applied_field_set(obj: &Value) -> FieldSet {
    let mut set = FieldSet::new();
    if let Value::Object(m) = obj {
        collect_map(m, &mut Vec::new(), &mut set);
    }
    set
}

fn collect_map(m: &Map<String, Value>, path: &mut Vec<Element>, set: &mut FieldSet) {
    for (k, v) in m {
        path.push(fieldpath::field(k));
        collect(v, Some(k), path, set);
        path.pop();
    }
}

fn collect(v: &Value, field: Option<&str>, path: &mut Vec<Element>, set: &mut FieldSet) {
    match v {
        Value::Object(m) if !m.is_empty() && !listkeys::is_atomic_map(field, v) => {
            collect_map(m, path, set);
        }
        Value::Array(items) if !items.is_empty() => {
            let lt = listkeys::list_type(field, &[items]);
            if lt == ListType::Atomic {
                set.insert(path);
                return;
            }
            for item in items {
                let Some(pe) = listkeys::item_element(lt, item) else {
                    continue;
                };
                path.push(pe);
                set.insert(path);
                if let Value::Object(im) = item {
                    collect_map(im, path, set);
                }
                path.pop();
            }
        }
        _ => set.insert(path),
    }
}

/// What changed between two versions of an object, as field sets.
#[derive(Debug, Default)]
struct Comparison {
    added: FieldSet,
    modified: FieldSet,
    removed: FieldSet,
    /// Record a map or struct that appears as a member itself (`.` in
    /// FieldsV1), as the server's typed comparison does for an `Update`.
    /// `Some(typed)`: `typed` says the object is a built-in kind, whose
    /// non-pointer structs exist (empty) even when absent in JSON.
    containers: Option<bool>,
}

impl Comparison {
    fn changed(&self) -> FieldSet {
        self.added.union(&self.modified)
    }
}

enum Shape<'a> {
    Absent,
    Leaf(&'a Value),
    Map(&'a Map<String, Value>),
    List(&'a [Value]),
}

fn shape<'a>(v: Option<&'a Value>, field: Option<&str>) -> Shape<'a> {
    match v {
        None => Shape::Absent,
        Some(x @ Value::Object(m)) if !m.is_empty() && !listkeys::is_atomic_map(field, x) => {
            Shape::Map(m)
        }
        Some(Value::Array(a)) if !a.is_empty() => Shape::List(a),
        Some(other) => Shape::Leaf(other),
    }
}

/// Fields of built-in kinds whose Go type is a non-pointer struct: they
/// exist in an empty typed object, so creating them is not an addition of
/// the struct itself (no `.` in an `Update` entry) unless their parent was
/// added too.
const VALUE_STRUCTS: &[&str] = &[
    "spec",
    "status",
    "template",
    "jobTemplate",
    "strategy",
    "updateStrategy",
    "resources",
    "scaleTargetRef",
    "target",
    "port",
    "backend",
    "loadBalancer",
];

/// List fields of built-in kinds that an empty typed object has (as null).
const LISTS_IN_EMPTY: &[&str] = &["containers", "rules", "versions"];

/// Whether `field`, with a parent that exists in the old object (really or
/// as an empty typed struct), exists in an empty typed object.
fn exists_when_empty(field: Option<&str>, typed: bool) -> bool {
    match field {
        None | Some("metadata") => true,
        Some(f) => typed && VALUE_STRUCTS.contains(&f),
    }
}

fn compare(
    l: Option<&Value>,
    r: Option<&Value>,
    field: Option<&str>,
    path: &mut Vec<Element>,
    cmp: &mut Comparison,
    parent_present: bool,
) {
    let empty_map = Map::new();
    let (ls, rs) = (shape(l, field), shape(r, field));
    // An empty map or list facing a non-empty one walks as an empty one.
    let (ls, rs) = match (ls, rs) {
        (Shape::Leaf(Value::Object(m)), Shape::Map(b)) if m.is_empty() => {
            (Shape::Map(&empty_map), Shape::Map(b))
        }
        (Shape::Map(a), Shape::Leaf(Value::Object(m))) if m.is_empty() => {
            (Shape::Map(a), Shape::Map(&empty_map))
        }
        (Shape::Leaf(Value::Array(x)), Shape::List(b)) if x.is_empty() => {
            (Shape::List(&[]), Shape::List(b))
        }
        (Shape::List(a), Shape::Leaf(Value::Array(x))) if x.is_empty() => {
            (Shape::List(a), Shape::List(&[]))
        }
        other => other,
    };
    match (ls, rs) {
        (Shape::Absent, Shape::Absent) => {}
        (Shape::Map(a), Shape::Map(b)) => compare_maps(Some(a), Some(b), path, cmp, true),
        (Shape::Map(a), Shape::Absent) => {
            // A removed map takes its own membership (`.`) with it.
            if cmp.containers.is_some() && !path.is_empty() {
                cmp.removed.insert(path);
            }
            compare_maps(Some(a), None, path, cmp, true)
        }
        (Shape::Absent, Shape::Map(b)) => {
            let mut present = false;
            if let Some(typed) = cmp.containers {
                present = parent_present && exists_when_empty(field, typed);
                if !present && !path.is_empty() {
                    cmp.added.insert(path);
                }
            }
            compare_maps(None, Some(b), path, cmp, present)
        }
        (Shape::List(a), Shape::List(b)) => compare_lists(field, a, b, l, r, path, cmp),
        (Shape::List(a), Shape::Absent) => {
            if cmp.containers.is_some() && !path.is_empty() {
                cmp.removed.insert(path);
            }
            compare_lists(field, a, &[], l, r, path, cmp)
        }
        (Shape::Absent, Shape::List(b)) => {
            // A new list is a member itself, unless the typed empty object
            // has it already (a Go slice without `omitempty` encodes as
            // null: a pod spec's `containers`, a role's `rules`).
            if let Some(typed) = cmp.containers {
                let in_empty =
                    typed && parent_present && field.is_some_and(|f| LISTS_IN_EMPTY.contains(&f));
                if !in_empty
                    && !path.is_empty()
                    && listkeys::list_type(field, &[b]) != ListType::Atomic
                {
                    cmp.added.insert(path);
                }
            }
            compare_lists(field, &[], b, l, r, path, cmp)
        }
        (Shape::Absent, Shape::Leaf(Value::Object(m)))
            if m.is_empty()
                && parent_present
                && cmp
                    .containers
                    .is_some_and(|typed| exists_when_empty(field, typed)) =>
        {
            // An empty struct that every typed object has is no change.
        }
        (Shape::Absent, _) => cmp.added.insert(path),
        (_, Shape::Absent) => cmp.removed.insert(path),
        (ls, rs) => {
            // Both present with different shapes, or two leaves.
            if l != r {
                cmp.modified.insert(path);
            }
            match ls {
                Shape::Map(a) => compare_maps(Some(a), None, path, cmp, true),
                Shape::List(a) if listkeys::list_type(field, &[a]) != ListType::Atomic => {
                    compare_lists(field, a, &[], l, None, path, cmp)
                }
                _ => {}
            }
            match rs {
                Shape::Map(b) => compare_maps(None, Some(b), path, cmp, true),
                Shape::List(b) if listkeys::list_type(field, &[b]) != ListType::Atomic => {
                    compare_lists(field, &[], b, None, r, path, cmp)
                }
                _ => {}
            }
        }
    }
}

fn compare_maps(
    l: Option<&Map<String, Value>>,
    r: Option<&Map<String, Value>>,
    path: &mut Vec<Element>,
    cmp: &mut Comparison,
    present: bool,
) {
    let present = present || l.is_some();
    let mut keys: Vec<&String> = l.map(|m| m.keys().collect()).unwrap_or_default();
    if let Some(r) = r {
        for k in r.keys() {
            if !l.is_some_and(|l| l.contains_key(k)) {
                keys.push(k);
            }
        }
    }
    for k in keys {
        path.push(fieldpath::field(k));
        compare(
            l.and_then(|m| m.get(k)),
            r.and_then(|m| m.get(k)),
            Some(k),
            path,
            cmp,
            present,
        );
        path.pop();
    }
}

#[allow(clippy::too_many_arguments)]
fn compare_lists(
    field: Option<&str>,
    a: &[Value],
    b: &[Value],
    l: Option<&Value>,
    r: Option<&Value>,
    path: &mut Vec<Element>,
    cmp: &mut Comparison,
) {
    let lt = listkeys::list_type(field, &[a, b]);
    if lt == ListType::Atomic {
        match (l, r) {
            (None, None) => {}
            (None, Some(_)) => cmp.added.insert(path),
            (Some(_), None) => cmp.removed.insert(path),
            (Some(x), Some(y)) => {
                if x != y {
                    cmp.modified.insert(path);
                }
            }
        }
        return;
    }
    let index = |items: &[Value]| -> Vec<(String, Value)> {
        let mut seen = HashSet::new();
        items
            .iter()
            .filter_map(|i| listkeys::item_element(lt, i).map(|pe| (pe, i.clone())))
            .filter(|(pe, _)| seen.insert(pe.clone()))
            .collect()
    };
    let (la, lb) = (index(a), index(b));
    let mut order: Vec<&String> = la.iter().map(|(pe, _)| pe).collect();
    for (pe, _) in &lb {
        if !la.iter().any(|(p, _)| p == pe) {
            order.push(pe);
        }
    }
    for pe in order {
        let li = la.iter().find(|(p, _)| p == pe).map(|(_, v)| v);
        let ri = lb.iter().find(|(p, _)| p == pe).map(|(_, v)| v);
        path.push(pe.clone());
        match (li, ri) {
            (Some(_), None) => cmp.removed.insert(path),
            (None, Some(_)) => cmp.added.insert(path),
            _ => {}
        }
        compare_maps(
            li.and_then(Value::as_object),
            ri.and_then(Value::as_object),
            path,
            cmp,
            false,
        );
        path.pop();
    }
}

fn diff(old: Option<&Value>, new: Option<&Value>, containers: Option<bool>) -> Comparison {
    let mut cmp = Comparison {
        containers,
        ..Comparison::default()
    };
    compare(old, new, None, &mut Vec::new(), &mut cmp, true);
    cmp
}

/// The part of [`diff`] of two objects under their `status`: what a write
/// through the status subresource records. Both must be objects (the root
/// of `diff` then walks their keys with the root present).
fn status_diff(old: &Value, new: &Value, containers: Option<bool>) -> Comparison {
    let mut cmp = Comparison {
        containers,
        ..Comparison::default()
    };
    compare(
        old.get("status"),
        new.get("status"),
        Some("status"),
        &mut vec![fieldpath::field("status")],
        &mut cmp,
        true,
    );
    cmp
}

/// Built-in kinds' groups: none, or a `*.k8s.io` group.
fn is_builtin(api_version: &str) -> bool {
    match api_version.rsplit_once('/') {
        None => true,
        Some((group, _)) => !group.contains('.') || group.ends_with(".k8s.io"),
    }
}

// ---------------------------------------------------------------------------
// Merging and pruning values
// ---------------------------------------------------------------------------

/// `v` with every null-valued map entry removed, recursively.
fn clean(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, c)| !c.is_null())
                .map(|(k, c)| (k.clone(), clean(c)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(clean).collect()),
        other => other.clone(),
    }
}

/// Merges an applied configuration into the live value; `None` when the
/// applied value is null (the field is unset).
fn merge(live: Option<&Value>, applied: &Value, field: Option<&str>) -> Option<Value> {
    match applied {
        Value::Null => None,
        Value::Object(am) => {
            if listkeys::is_atomic_map(field, applied) {
                return Some(clean(applied));
            }
            let mut out = match live {
                Some(Value::Object(lm)) => lm.clone(),
                _ => Map::new(),
            };
            for (k, av) in am {
                match merge(out.get(k), av, Some(k)) {
                    Some(v) => {
                        out.insert(k.clone(), v);
                    }
                    None => {
                        out.shift_remove(k);
                    }
                }
            }
            Some(Value::Object(out))
        }
        Value::Array(aitems) => {
            let Some(Value::Array(litems)) = live else {
                return Some(clean(applied));
            };
            match listkeys::list_type(field, &[litems, aitems]) {
                ListType::Atomic => Some(clean(applied)),
                lt => Some(Value::Array(merge_list(lt, litems, aitems))),
            }
        }
        scalar => Some(scalar.clone()),
    }
}

/// Merges two associative lists: applied items in applied order, live-only
/// items kept in place between them.
fn merge_list(lt: ListType, live: &[Value], applied: &[Value]) -> Vec<Value> {
    let pe = |v: &Value| listkeys::item_element(lt, v);
    let applied_pes: Vec<Option<String>> = applied.iter().map(pe).collect();
    let live_by_pe = |p: &Option<String>| live.iter().find(|l| pe(l) == *p);
    let merge_item = |a: &Value, p: &Option<String>| -> Value {
        match lt {
            ListType::Map(_) => merge(live_by_pe(p), a, None).unwrap_or_else(|| clean(a)),
            _ => a.clone(),
        }
    };
    let mut out = Vec::with_capacity(live.len() + applied.len());
    let mut emitted: HashSet<Option<String>> = HashSet::new();
    let mut ai = 0;
    for l in live {
        let lp = pe(l);
        if !applied_pes.contains(&lp) {
            out.push(l.clone());
            continue;
        }
        if emitted.contains(&lp) {
            continue;
        }
        while ai < applied.len() {
            let (a, ap) = (&applied[ai], &applied_pes[ai]);
            ai += 1;
            if !emitted.insert(ap.clone()) {
                continue;
            }
            out.push(merge_item(a, ap));
            if *ap == lp {
                break;
            }
        }
    }
    for (a, ap) in applied.iter().zip(&applied_pes).skip(ai) {
        if emitted.insert(ap.clone()) {
            out.push(merge_item(a, ap));
        }
    }
    out
}

/// Removes the field or list item at `path` from `v`. Maps and lists that the
/// removal empties are removed too, unless `keep` says someone owns them.
fn remove_path(
    v: &mut Value,
    field: Option<&str>,
    path: &[Element],
    prefix: &mut Vec<Element>,
    keep: &dyn Fn(&[Element]) -> bool,
) {
    let Some((e, rest)) = path.split_first() else {
        return;
    };
    prefix.push(e.clone());
    match v {
        Value::Object(m) => {
            if let Some(name) = e.strip_prefix("f:") {
                if rest.is_empty() {
                    m.shift_remove(name);
                } else if let Some(child) = m.get_mut(name) {
                    let was_empty = is_empty_container(child);
                    remove_path(child, Some(name), rest, prefix, keep);
                    if !was_empty && is_empty_container(child) && !keep(prefix) {
                        m.shift_remove(name);
                    }
                }
            }
        }
        Value::Array(items) => {
            let lt = listkeys::list_type(field, &[items]);
            let pos = if let Some(i) = e.strip_prefix("i:") {
                i.parse::<usize>().ok().filter(|i| *i < items.len())
            } else {
                items
                    .iter()
                    .position(|i| listkeys::item_element(lt, i).as_deref() == Some(e.as_str()))
            };
            if let Some(i) = pos {
                if rest.is_empty() {
                    items.remove(i);
                } else if let Some(item) = items.get_mut(i) {
                    remove_path(item, None, rest, prefix, keep);
                }
            }
        }
        _ => {}
    }
    prefix.pop();
}

/// Whether `path` names a key field of an associative-list item
/// (`…k:{"name":"a"}.f:name`): key fields leave only with their item.
fn is_key_field(path: &[Element]) -> bool {
    let [.., item, field] = path else {
        return false;
    };
    let (Some(key), Some(name)) = (item.strip_prefix("k:"), field.strip_prefix("f:")) else {
        return false;
    };
    serde_json::from_str::<Map<String, Value>>(key).is_ok_and(|k| k.contains_key(name))
}

fn is_empty_container(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// The part of an applied configuration that takes part in an apply through
/// `subresource`: the main resource never takes status or server metadata;
/// the status subresource takes only status.
fn effective_applied(applied: &Value, subresource: Option<&str>) -> Value {
    let Value::Object(m) = applied else {
        return applied.clone();
    };
    match subresource {
        Some("status") => {
            let mut out = Map::new();
            if let Some(s) = m.get("status") {
                out.insert("status".into(), s.clone());
            }
            Value::Object(out)
        }
        _ => {
            let mut out = m.clone();
            if subresource.is_none() {
                out.shift_remove("status");
            }
            if let Some(Value::Object(meta)) = out.get_mut("metadata") {
                for k in SERVER_METADATA {
                    meta.shift_remove(*k);
                }
            }
            Value::Object(out)
        }
    }
}

// ---------------------------------------------------------------------------
// Apply and update
// ---------------------------------------------------------------------------

/// Server-side apply of `applied` (the full intent of `manager`) onto `live`
/// (`None` when the object does not exist yet). Returns the new object, with
/// `metadata.managedFields` updated (an `Apply` entry for `manager`), or, when
/// `force` is false and another manager owns a field whose value the apply
/// changes, every such conflict. Fields `manager` applied before and no longer
/// applies are removed unless another manager owns them.
pub fn apply(
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
    api_version: &str,
    time: &str,
) -> Result<Value, Vec<Conflict>> {
    apply_subresource(live, applied, manager, force, api_version, time, None)
}

/// [`apply`] through a subresource: `Some("status")` applies (and owns) only
/// `status`; `None` is the main resource, which never touches `status`.
pub fn apply_subresource(
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
    api_version: &str,
    time: &str,
    subresource: Option<&str>,
) -> Result<Value, Vec<Conflict>> {
    let mut entries = live.map(managed_entries).unwrap_or_default();
    let live_plain = live.map(without_managed_fields);
    let applied = effective_applied(applied, subresource);

    let mut new_set = applied_field_set(&applied);
    strip_ignored(&mut new_set, subresource);

    let mine = |e: &ManagedEntry| e.same_identity(manager, APPLY, subresource);
    let previous = entries.iter().position(mine).map(|i| entries.remove(i));
    let last_set = previous
        .as_ref()
        .map(|e| e.fields.clone())
        .unwrap_or_default();

    let mut merged =
        merge(live_plain.as_ref(), &applied, None).unwrap_or_else(|| Value::Object(Map::new()));

    // Prune what this manager applied before and no longer applies, unless
    // someone (another manager, or this apply below it) still owns it.
    let others = entries
        .iter()
        .fold(FieldSet::new(), |acc, e| acc.union(&e.fields));
    let owned = others.union(&new_set);
    let keep = |p: &[Element]| owned.covers(p);
    for p in last_set.difference(&new_set).paths() {
        if owned.covers(&p) || is_key_field(&p) {
            continue;
        }
        remove_path(&mut merged, None, &p, &mut Vec::new(), &keep);
    }

    let cmp = diff(live_plain.as_ref(), Some(&merged), None);
    let changed = cmp.changed();

    let mut conflicts = Vec::new();
    for e in &entries {
        if e.manager == manager {
            continue;
        }
        for p in e.fields.intersection(&changed).paths() {
            conflicts.push(Conflict {
                manager: e.manager.clone(),
                field: fieldpath::render(&p),
                operation: e.operation.clone(),
                api_version: e.api_version.clone(),
                subresource: e.subresource.clone(),
            });
        }
    }
    if !force && !conflicts.is_empty() {
        conflicts.sort_by(|a, b| {
            (&a.manager, &a.operation, &a.subresource, &a.field).cmp(&(
                &b.manager,
                &b.operation,
                &b.subresource,
                &b.field,
            ))
        });
        return Err(conflicts);
    }

    for e in &mut entries {
        e.fields = e.fields.difference(&changed).difference(&cmp.removed);
    }
    // As on the server, an apply stamps its entry's time only when it
    // changed the object; otherwise the entry keeps the time it had (none,
    // for a manager new to the object).
    let object_changed = live_plain.as_ref() != Some(&merged);
    let time = if object_changed {
        Some(time.to_string())
    } else {
        previous.as_ref().and_then(|prev| prev.time.clone())
    };
    entries.push(ManagedEntry {
        manager: manager.to_string(),
        operation: APPLY.to_string(),
        api_version: api_version.to_string(),
        time,
        subresource: subresource.map(str::to_string),
        fields: new_set,
    });
    set_managed_fields(&mut merged, entries);
    Ok(merged)
}

/// Whether a request's `managedFields` asks to reset ownership: a list with
/// one empty entry.
fn is_reset(list: &[Value]) -> bool {
    list.len() == 1
        && list
            .first()
            .and_then(Value::as_object)
            .is_some_and(Map::is_empty)
}

/// Records an `Update` operation (create, PUT, or a non-apply PATCH) by
/// `manager` that turned `old` into `new`: `manager` takes ownership of every
/// field it set or changed, and those fields leave the other managers' sets.
/// `subresource` is `Some("status")` for status writes.
///
/// The previous ownership is read from `new`'s `managedFields` when the request
/// carried a non-empty valid list (a reset `[{}]` clears it), else from `old`.
pub fn record_update(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    api_version: &str,
    time: &str,
    subresource: Option<&str>,
) {
    let mut entries = match new.pointer("/metadata/managedFields") {
        Some(Value::Array(list)) if is_reset(list) => Vec::new(),
        Some(Value::Array(list)) if !decode_entries(list).is_empty() => decode_entries(list),
        _ => old.map(managed_entries).unwrap_or_default(),
    };
    let cmp = match (old, subresource) {
        // A status write records only fields under `status`: comparing the
        // two statuses alone gives the same sets without copying both
        // objects.
        (Some(old @ Value::Object(_)), Some("status")) if new.is_object() => {
            status_diff(old, new, Some(is_builtin(api_version)))
        }
        _ => {
            let old_plain = old.map(without_managed_fields);
            let new_plain = without_managed_fields(new);
            diff(
                old_plain.as_ref(),
                Some(&new_plain),
                Some(is_builtin(api_version)),
            )
        }
    };
    let mut changed = cmp.changed();
    strip_ignored(&mut changed, subresource);
    let mut removed = cmp.removed;
    strip_ignored(&mut removed, subresource);

    let mine = |e: &ManagedEntry| e.same_identity(manager, UPDATE, subresource);
    let previous = entries.iter().position(mine).map(|i| entries.remove(i));
    for e in &mut entries {
        e.fields = e.fields.difference(&changed).difference(&removed);
    }
    let prev_fields = previous
        .as_ref()
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    let fields = prev_fields.difference(&removed).union(&changed);
    let time = match &previous {
        Some(prev) if changed.is_empty() && prev.fields == fields => prev.time.clone(),
        _ => Some(time.to_string()),
    };
    let api_version = match &previous {
        Some(prev) if changed.is_empty() && prev.fields == fields => prev.api_version.clone(),
        _ => api_version.to_string(),
    };
    entries.push(ManagedEntry {
        manager: manager.to_string(),
        operation: UPDATE.to_string(),
        api_version,
        time,
        subresource: subresource.map(str::to_string),
        fields,
    });
    set_managed_fields(new, entries);
}

// ---------------------------------------------------------------------------
// Conflict messages
// ---------------------------------------------------------------------------

/// How the API server names a conflicting manager: `"kubesync"` for an
/// applier, `"kubectl-edit" using apps/v1` for an updater, with
/// ` with subresource "status"` when it wrote through one.
fn print_manager(c: &Conflict, api_version: &str) -> String {
    let mut s = Value::String(c.manager.clone()).to_string();
    if let Some(sub) = &c.subresource {
        s.push_str(&format!(" with subresource {}", Value::String(sub.clone())));
    }
    if c.operation == UPDATE {
        let v = if c.api_version.is_empty() {
            api_version
        } else {
            &c.api_version
        };
        s.push_str(&format!(" using {v}"));
    }
    s
}

/// The message of the real 409 apply conflict, e.g.
/// `Apply failed with 1 conflict: conflict with "kubectl-edit" using apps/v1: .spec.replicas`;
/// with several conflicts, one `conflicts with <manager>:` line per manager
/// followed by `- <field>` lines. `api_version` is printed for `Update` owners
/// whose conflict does not carry their own API version.
pub fn conflict_message(conflicts: &[Conflict], api_version: &str) -> String {
    if let [c] = conflicts {
        return format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            print_manager(c, api_version),
            c.field
        );
    }
    let mut managers: Vec<String> = conflicts
        .iter()
        .map(|c| print_manager(c, api_version))
        .collect();
    managers.sort();
    managers.dedup();
    let mut lines = Vec::new();
    for m in &managers {
        lines.push(format!("conflicts with {m}:"));
        for c in conflicts
            .iter()
            .filter(|c| &print_manager(c, api_version) == m)
        {
            lines.push(format!("- {}", c.field));
        }
    }
    format!(
        "Apply failed with {} conflicts: {}",
        conflicts.len(),
        lines.join("\n")
    )
}

/// The full `metav1.Status` body of the 409 the real server returns for apply
/// conflicts (reason `Conflict`, one `FieldManagerConflict` cause per field).
pub fn conflict_status(conflicts: &[Conflict], api_version: &str) -> Value {
    let causes: Vec<Value> = conflicts
        .iter()
        .map(|c| {
            serde_json::json!({
                "reason": "FieldManagerConflict",
                "message": format!("conflict with {}", print_manager(c, api_version)),
                "field": c.field,
            })
        })
        .collect();
    serde_json::json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": conflict_message(conflicts, api_version),
        "reason": "Conflict",
        "details": {"causes": causes},
        "code": 409,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const T0: &str = "2024-01-01T00:00:00Z";
    const T1: &str = "2024-01-01T00:01:00Z";
    const T2: &str = "2024-01-01T00:02:00Z";
    const V: &str = "apps/v1";

    /// The status-only comparison gives the sets the whole-object diff
    /// gives once the status write's stripping is done: added, changed,
    /// removed and emptied statuses, maps, lists of conditions, and a
    /// custom kind (no typed empty structs).
    #[test]
    fn status_diff_matches_whole_object_diff() {
        let cond = |t: &str, s: &str| json!({"type": t, "status": s, "reason": "R"});
        let with = |status: Option<Value>| {
            let mut o = json!({
                "apiVersion": V, "kind": "Deployment",
                "metadata": {"name": "d", "namespace": "n", "labels": {"a": "b"},
                    "managedFields": [{"manager": "m", "operation": "Update",
                        "apiVersion": V, "fieldsType": "FieldsV1",
                        "fieldsV1": {"f:status": {"f:replicas": {}}}, "subresource": "status"}]},
                "spec": {"replicas": 2},
            });
            if let Some(s) = status {
                o["status"] = s;
            }
            o
        };
        let statuses = [
            None,
            Some(json!({})),
            Some(json!({"replicas": 2})),
            Some(json!({"replicas": 3, "observedGeneration": 1})),
            Some(json!({"replicas": 3, "conditions": [cond("Available", "True")]})),
            Some(json!({"conditions": [cond("Available", "False"), cond("Progressing", "True")]})),
            Some(json!({"conditions": []})),
            Some(json!({"loadBalancer": {}})),
            Some(json!({"loadBalancer": {"ingress": [{"ip": "10.0.0.1"}]}})),
            Some(json!("odd")),
        ];
        for typed in [Some(true), Some(false)] {
            for a in &statuses {
                for b in &statuses {
                    let (old, mut new) = (with(a.clone()), with(b.clone()));
                    new["metadata"]["labels"]["a"] = json!("changed");
                    let full = diff(
                        Some(&without_managed_fields(&old)),
                        Some(&without_managed_fields(&new)),
                        typed,
                    );
                    let fast = status_diff(&old, &new, typed);
                    let strip = |mut f: FieldSet| {
                        strip_ignored(&mut f, Some("status"));
                        f
                    };
                    assert_eq!(
                        strip(full.changed()),
                        strip(fast.changed()),
                        "{a:?} -> {b:?}"
                    );
                    assert_eq!(strip(full.removed), strip(fast.removed), "{a:?} -> {b:?}");
                }
            }
        }
    }

    fn deploy(replicas: Option<i64>, containers: Value) -> Value {
        let mut d = json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
            "spec": {"selector": {"matchLabels": {"app": "web"}},
                     "template": {"spec": {"containers": containers}}}
        });
        if let Some(r) = replicas {
            d["spec"]["replicas"] = json!(r);
        }
        d
    }

    fn app(image: &str) -> Value {
        json!([{"name": "app", "image": image}])
    }

    fn entry(obj: &Value, manager: &str, operation: &str) -> Option<ManagedEntry> {
        managed_entries(obj)
            .into_iter()
            .find(|e| e.manager == manager && e.operation == operation)
    }

    fn owns(obj: &Value, manager: &str, operation: &str, path: &[&str]) -> bool {
        let p: Vec<Element> = path.iter().map(|s| s.to_string()).collect();
        entry(obj, manager, operation).is_some_and(|e| e.fields.contains(&p))
    }

    fn update(old: &Value, new: Value, manager: &str, time: &str) -> Value {
        let mut new = new;
        if let Some(mf) = old.pointer("/metadata/managedFields") {
            new["metadata"]["managedFields"] = mf.clone();
        }
        record_update(Some(old), &mut new, manager, V, time, None);
        new
    }

    fn strip_mf(v: &Value) -> Value {
        without_managed_fields(v)
    }

    #[test]
    fn create_records_apply_entry_in_fields_v1() {
        let applied = deploy(Some(2), app("app:1"));
        let out = apply(None, &applied, "kubesync", false, V, T0).expect("no conflicts");
        assert_eq!(strip_mf(&out), applied);
        assert_eq!(
            out["metadata"]["managedFields"],
            json!([{
                "manager": "kubesync",
                "operation": "Apply",
                "apiVersion": "apps/v1",
                "time": T0,
                "fieldsType": "FieldsV1",
                "fieldsV1": {
                    "f:metadata": {"f:labels": {"f:app": {}}},
                    "f:spec": {
                        "f:replicas": {},
                        "f:selector": {},
                        "f:template": {"f:spec": {"f:containers": {
                            "k:{\"name\":\"app\"}": {".": {}, "f:image": {}, "f:name": {}}
                        }}}
                    }
                }
            }])
        );
    }

    #[test]
    fn reapply_is_a_no_op() {
        let applied = deploy(Some(2), app("app:1"));
        let first = apply(None, &applied, "kubesync", false, V, T0).expect("create");
        let second = apply(Some(&first), &applied, "kubesync", false, V, T1).expect("re-apply");
        assert_eq!(second, first, "time and object unchanged");
    }

    #[test]
    fn dropped_fields_and_items_are_removed() {
        let mut a = deploy(
            Some(2),
            json!([{"name": "app", "image": "app:1"}, {"name": "side", "image": "s:1"}]),
        );
        a["metadata"]["labels"]["tier"] = json!("web");
        let first = apply(None, &a, "kubesync", false, V, T0).expect("create");
        let b = deploy(None, app("app:1"));
        let out = apply(Some(&first), &b, "kubesync", false, V, T1).expect("apply");
        assert_eq!(strip_mf(&out), b);
        assert!(!owns(&out, "kubesync", APPLY, &["f:spec", "f:replicas"]));
        assert_eq!(
            entry(&out, "kubesync", APPLY)
                .and_then(|e| e.time)
                .as_deref(),
            Some(T1)
        );
    }

    #[test]
    fn same_value_is_shared_without_conflict() {
        let first = apply(None, &deploy(Some(3), app("app:1")), "a", false, V, T0).expect("a");
        let shared = json!({"apiVersion": "apps/v1", "kind": "Deployment",
                            "metadata": {"name": "web"}, "spec": {"replicas": 3}});
        let second = apply(Some(&first), &shared, "b", false, V, T1).expect("no conflict");
        assert!(owns(&second, "a", APPLY, &["f:spec", "f:replicas"]));
        assert!(owns(&second, "b", APPLY, &["f:spec", "f:replicas"]));
        // a stops applying replicas: b still owns it, so it stays.
        let third = apply(
            Some(&second),
            &deploy(None, app("app:1")),
            "a",
            false,
            V,
            T2,
        )
        .expect("a again");
        assert_eq!(third["spec"]["replicas"], json!(3));
        assert!(!owns(&third, "a", APPLY, &["f:spec", "f:replicas"]));
        // Different value from b conflicts with a's Apply entry: no "using".
        let conflicts = apply(
            Some(&first),
            &json!({"spec": {"replicas": 4}}),
            "b",
            false,
            V,
            T1,
        )
        .expect_err("conflict");
        assert_eq!(
            conflict_message(&conflicts, V),
            "Apply failed with 1 conflict: conflict with \"a\": .spec.replicas"
        );
    }

    #[test]
    fn update_manager_conflicts_and_force_takes_ownership() {
        let applied = deploy(Some(3), app("app:1"));
        let first = apply(None, &applied, "kubesync", false, V, T0).expect("create");
        let mut edited = strip_mf(&first);
        edited["spec"]["replicas"] = json!(5);
        let edited = update(&first, edited, "kubectl-edit", T1);
        assert!(owns(
            &edited,
            "kubectl-edit",
            UPDATE,
            &["f:spec", "f:replicas"]
        ));
        assert!(!owns(&edited, "kubesync", APPLY, &["f:spec", "f:replicas"]));
        assert!(owns(
            &edited,
            "kubesync",
            APPLY,
            &["f:metadata", "f:labels", "f:app"]
        ));

        let conflicts =
            apply(Some(&edited), &applied, "kubesync", false, V, T2).expect_err("conflict");
        assert_eq!(
            conflicts,
            vec![Conflict {
                manager: "kubectl-edit".into(),
                field: ".spec.replicas".into(),
                operation: UPDATE.into(),
                api_version: V.into(),
                subresource: None,
            }]
        );
        assert_eq!(
            conflict_message(&conflicts, V),
            "Apply failed with 1 conflict: conflict with \"kubectl-edit\" using apps/v1: .spec.replicas"
        );
        let status = conflict_status(&conflicts, V);
        assert_eq!(status["code"], json!(409));
        assert_eq!(
            status["details"]["causes"][0]["field"],
            json!(".spec.replicas")
        );

        let forced = apply(Some(&edited), &applied, "kubesync", true, V, T2).expect("force");
        assert_eq!(forced["spec"]["replicas"], json!(3));
        assert!(owns(&forced, "kubesync", APPLY, &["f:spec", "f:replicas"]));
        assert!(
            entry(&forced, "kubectl-edit", UPDATE).is_none(),
            "empty manager dropped"
        );
    }

    #[test]
    fn omitted_field_owned_by_another_manager_is_kept() {
        // HPA style: the autoscaler owns spec.replicas; the applier omits it.
        let first = apply(
            None,
            &deploy(Some(3), app("app:1")),
            "kubesync",
            false,
            V,
            T0,
        )
        .expect("create");
        let mut scaled = strip_mf(&first);
        scaled["spec"]["replicas"] = json!(7);
        let scaled = update(&first, scaled, "hpa", T1);
        let out = apply(
            Some(&scaled),
            &deploy(None, app("app:2")),
            "kubesync",
            false,
            V,
            T2,
        )
        .expect("no conflict");
        assert_eq!(out["spec"]["replicas"], json!(7));
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"][0]["image"],
            json!("app:2")
        );
        assert!(owns(&out, "hpa", UPDATE, &["f:spec", "f:replicas"]));
    }

    #[test]
    fn list_item_fields_are_owned_per_key() {
        let two = |app_image: &str, side_image: &str| {
            deploy(
                None,
                json!([{"name": "app", "image": app_image}, {"name": "side", "image": side_image}]),
            )
        };
        let first = apply(None, &two("app:1", "s:1"), "kubesync", false, V, T0).expect("create");
        let mut edited = strip_mf(&first);
        edited["spec"]["template"]["spec"]["containers"][1]["image"] = json!("s:2");
        let edited = update(&first, edited, "kubectl-edit", T1);
        let side_image = [
            "f:spec",
            "f:template",
            "f:spec",
            "f:containers",
            r#"k:{"name":"side"}"#,
            "f:image",
        ];
        assert!(owns(&edited, "kubectl-edit", UPDATE, &side_image));
        assert!(
            owns(&edited, "kubesync", APPLY, &side_image[..5]),
            "item itself stays"
        );

        // Changing only the app image: no conflict, the sidecar edit survives
        // because the applier declares the value the editor set.
        let ok = apply(
            Some(&edited),
            &two("app:2", "s:2"),
            "kubesync",
            false,
            V,
            T2,
        )
        .expect("shared");
        assert_eq!(
            ok["spec"]["template"]["spec"]["containers"][1]["image"],
            json!("s:2")
        );

        let conflicts = apply(
            Some(&edited),
            &two("app:2", "s:1"),
            "kubesync",
            false,
            V,
            T2,
        )
        .expect_err("conflict on the sidecar image only");
        let fields: Vec<&str> = conflicts.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            fields,
            vec![r#".spec.template.spec.containers[name="side"].image"#]
        );
    }

    #[test]
    fn several_conflicts_group_by_manager() {
        let first = apply(
            None,
            &deploy(Some(1), app("app:1")),
            "kubesync",
            false,
            V,
            T0,
        )
        .expect("create");
        let mut e1 = strip_mf(&first);
        e1["spec"]["replicas"] = json!(2);
        e1["metadata"]["labels"]["app"] = json!("x");
        let e1 = update(&first, e1, "kubectl-edit", T1);
        let mut e2 = strip_mf(&e1);
        e2["spec"]["template"]["spec"]["containers"][0]["image"] = json!("app:9");
        let e2 = update(&e1, e2, "kubectl-set", T1);
        let conflicts = apply(
            Some(&e2),
            &deploy(Some(1), app("app:1")),
            "kubesync",
            false,
            V,
            T2,
        )
        .expect_err("conflicts");
        assert_eq!(
            conflict_message(&conflicts, V),
            "Apply failed with 3 conflicts: conflicts with \"kubectl-edit\" using apps/v1:\n\
             - .metadata.labels.app\n\
             - .spec.replicas\n\
             conflicts with \"kubectl-set\" using apps/v1:\n\
             - .spec.template.spec.containers[name=\"app\"].image"
        );
    }

    #[test]
    fn record_update_on_create_owns_every_field() {
        let mut created = deploy(
            Some(1),
            json!([{"name": "app", "image": "a", "ports": [{"containerPort": 80}]}]),
        );
        created["status"] = json!({"replicas": 0});
        created["metadata"]["uid"] = json!("u-1");
        record_update(None, &mut created, "kubectl-create", V, T0, None);
        let e = entry(&created, "kubectl-create", UPDATE).expect("entry");
        assert_eq!(e.time.as_deref(), Some(T0));
        assert_eq!(
            e.fields.to_fields_v1(),
            // The labels map is new, so it is a member itself (`.`), as on
            // the real server; `spec`, `template` (non-pointer structs) are
            // not; nor is `containers` (its parent existed), but `ports`, in
            // a new container, is.
            json!({
                "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                "f:spec": {
                    "f:replicas": {},
                    "f:selector": {},
                    "f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {
                        ".": {}, "f:image": {}, "f:name": {},
                        "f:ports": {".": {}, "k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}}
                    }}}}
                }
            })
        );
        // A no-change update keeps the entry (and its time) as it was.
        let same = update(&created, strip_mf(&created), "kubectl-create", T1);
        assert_eq!(same, created);
    }

    #[test]
    fn status_is_owned_only_through_the_status_subresource() {
        let mut a = deploy(Some(1), app("a"));
        a["status"] = json!({"replicas": 5});
        let out = apply(None, &a, "kubesync", false, V, T0).expect("create");
        assert!(
            out.get("status").is_none(),
            "main resource apply ignores status"
        );
        let st = apply_subresource(
            Some(&out),
            &json!({"status": {"replicas": 1}}),
            "ctrl",
            false,
            V,
            T1,
            Some("status"),
        )
        .expect("status apply");
        assert_eq!(st["status"], json!({"replicas": 1}));
        assert_eq!(st["spec"], out["spec"]);
        let e = managed_entries(&st)
            .into_iter()
            .find(|e| e.manager == "ctrl")
            .expect("ctrl entry");
        assert_eq!(e.subresource.as_deref(), Some("status"));
        assert_eq!(
            e.fields.to_fields_v1(),
            json!({"f:status": {"f:replicas": {}}})
        );

        let mut st2 = strip_mf(&st);
        st2["status"]["replicas"] = json!(2);
        let mut st2v = st2.clone();
        st2v["metadata"]["managedFields"] = st["metadata"]["managedFields"].clone();
        record_update(Some(&st), &mut st2v, "kcm", V, T2, Some("status"));
        let conflicts = apply_subresource(
            Some(&st2v),
            &json!({"status": {"replicas": 1}}),
            "ctrl",
            false,
            V,
            T2,
            Some("status"),
        )
        .expect_err("status conflict");
        assert_eq!(
            conflict_message(&conflicts, V),
            "Apply failed with 1 conflict: conflict with \"kcm\" with subresource \"status\" using apps/v1: .status.replicas"
        );
    }

    #[test]
    fn service_ports_and_finalizers_render_like_the_server() {
        let svc = |target: i64| {
            json!({"apiVersion": "v1", "kind": "Service",
                   "metadata": {"name": "s", "finalizers": ["x/y"]},
                   "spec": {"ports": [{"port": 80, "targetPort": target}]}})
        };
        let first = apply(None, &svc(8080), "kubesync", false, "v1", T0).expect("create");
        let mut edited = strip_mf(&first);
        edited["spec"]["ports"][0]["targetPort"] = json!(9090);
        let mut edited_v = edited.clone();
        edited_v["metadata"]["managedFields"] = first["metadata"]["managedFields"].clone();
        record_update(Some(&first), &mut edited_v, "edit", "v1", T1, None);
        let conflicts =
            apply(Some(&edited_v), &svc(8080), "kubesync", false, "v1", T2).expect_err("conflict");
        assert_eq!(
            conflicts[0].field,
            r#".spec.ports[port=80,protocol="TCP"].targetPort"#
        );
        assert!(owns(
            &first,
            "kubesync",
            APPLY,
            &["f:metadata", "f:finalizers", r#"v:"x/y""#]
        ));
    }

    #[test]
    fn merge_order_nulls_and_kept_items() {
        let live = json!({"spec": {"containers": [
            {"name": "a", "image": "a:1"}, {"name": "x", "image": "x:1"}, {"name": "b", "image": "b:1"}]}});
        let mut live_v = live.clone();
        record_update(None, &mut live_v, "creator", V, T0, None);
        // Applied order wins for applied items; live-only items stay in place.
        let out = apply(
            Some(&live_v),
            &json!({"spec": {"containers": [{"name": "b", "image": "b:1"}, {"name": "c", "image": "c:1"}, {"name": "a", "image": "a:1"}]}}),
            "m",
            false,
            V,
            T1,
        )
        .expect("shared values");
        let names: Vec<&str> = out["spec"]["containers"]
            .as_array()
            .map(|a| a.iter().filter_map(|c| c["name"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(names, vec!["b", "c", "a", "x"]);

        // A null in the applied configuration unsets the field (and owns it).
        let first = apply(
            None,
            &json!({"spec": {"replicas": 2, "paused": true}}),
            "m",
            false,
            V,
            T0,
        )
        .expect("create");
        let out = apply(
            Some(&first),
            &json!({"spec": {"replicas": 2, "paused": null}}),
            "m",
            false,
            V,
            T1,
        )
        .expect("null");
        assert_eq!(strip_mf(&out), json!({"spec": {"replicas": 2}}));

        // Dropping a container keeps it when another manager owns a field in it.
        let first = apply(
            None,
            &deploy(
                None,
                json!([{"name": "app", "image": "a"}, {"name": "side", "image": "s"}]),
            ),
            "m",
            false,
            V,
            T0,
        )
        .expect("create");
        let mut edited = strip_mf(&first);
        edited["spec"]["template"]["spec"]["containers"][1]["env"] =
            json!([{"name": "E", "value": "1"}]);
        let edited = update(&first, edited, "editor", T1);
        let out =
            apply(Some(&edited), &deploy(None, app("a")), "m", false, V, T2).expect("drop side");
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"][1]["name"],
            json!("side")
        );
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"][1]["env"][0]["name"],
            json!("E")
        );
    }

    #[test]
    fn update_removing_a_field_clears_every_owner() {
        let first = apply(None, &deploy(Some(2), app("a")), "m", false, V, T0).expect("create");
        let mut edited = strip_mf(&first);
        if let Some(spec) = edited["spec"].as_object_mut() {
            spec.shift_remove("replicas");
        }
        let edited = update(&first, edited, "editor", T1);
        assert!(!owns(&edited, "m", APPLY, &["f:spec", "f:replicas"]));
        // Nothing owns replicas now, so re-applying it is not a conflict.
        let out = apply(Some(&edited), &deploy(Some(2), app("a")), "m", false, V, T2)
            .expect("no conflict");
        assert_eq!(out["spec"]["replicas"], json!(2));
        assert!(
            entry(&out, "editor", UPDATE).is_none(),
            "editor owns nothing"
        );
    }

    #[test]
    fn never_panics_on_odd_input() {
        let weird = [
            json!(null),
            json!([1, 2]),
            json!("x"),
            json!({"metadata": "nope", "spec": [1]}),
            json!({"metadata": {"managedFields": [1, {"fieldsV1": "x"}, {"manager": 5}]}}),
            json!({"spec": {"containers": [{"image": "no-name"}, {"name": {"a": 1}}]}}),
            json!({"spec": {"containers": [{"name": "dup"}, {"name": "dup"}]}}),
            json!({"spec": {"ports": [{"containerPort": 1}, {"port": 2}]}}),
            json!({"metadata": {"finalizers": [{"a": 1}, "b"]}}),
        ];
        for live in &weird {
            for applied in &weird {
                let _ = apply(Some(live), applied, "m", false, V, T0);
                let _ = apply(Some(live), applied, "m", true, V, T0);
                let _ = apply(None, applied, "m", false, V, T0);
                let mut new = applied.clone();
                record_update(Some(live), &mut new, "m", V, T0, None);
                let mut new = applied.clone();
                record_update(None, &mut new, "m", V, T0, Some("status"));
            }
        }
    }
}
