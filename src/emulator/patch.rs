//! Non-apply patch formats of the Kubernetes API: JSON merge patch (RFC 7386),
//! JSON patch (RFC 6902) and strategic merge patch for the built-in kinds'
//! common list keys. Pure functions over `serde_json::Value`.
//!
//! Error messages follow the real API server (which uses evanphx/json-patch
//! and apimachinery's strategicpatch): a [`json_patch`] error is what the
//! server returns with status 422 (except a patch body that is not a list of
//! operations, which is a 400), a [`strategic_merge_patch`] error is a 422.
//! Server-side apply lives in `fieldmanager.rs`; the list-merge table shared
//! with it lives in `listkeys.rs`. Nothing here knows about HTTP or storage.

use serde_json::{Map, Value};

use super::listkeys;

/// A patch that cannot be applied; the message is what the API server returns.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct PatchError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, PatchError> {
    Err(PatchError(msg.into()))
}

/// RFC 7386 JSON merge patch.
pub fn merge_patch(target: &Value, patch: &Value) -> Value {
    let Value::Object(patch) = patch else {
        return patch.clone();
    };
    let mut out = match target {
        Value::Object(t) => t.clone(),
        _ => Map::new(),
    };
    for (k, v) in patch {
        if v.is_null() {
            out.remove(k);
        } else {
            let merged = merge_patch(out.get(k).unwrap_or(&Value::Null), v);
            out.insert(k.clone(), merged);
        }
    }
    Value::Object(out)
}

// ---------------------------------------------------------------------------
// RFC 6902 JSON patch
// ---------------------------------------------------------------------------

/// Go's name for a JSON value's type, as `encoding/json` prints it in
/// "cannot unmarshal" errors.
fn go_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Splits a JSON pointer into unescaped reference tokens; `None` when the
/// pointer does not start with `/` (the root pointer `""` included: the real
/// server cannot patch the document root).
fn pointer_tokens(path: &str) -> Option<Vec<String>> {
    let rest = path.strip_prefix('/')?;
    Some(
        rest.split('/')
            .map(|t| t.replace("~1", "/").replace("~0", "~"))
            .collect(),
    )
}

/// Go's `strconv.Atoi` on an array index token.
fn atoi(token: &str) -> Result<i64, String> {
    let digits = token
        .strip_prefix('-')
        .or_else(|| token.strip_prefix('+'))
        .unwrap_or(token);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "strconv.Atoi: parsing {}: invalid syntax",
            go_quote(token)
        ));
    }
    token.parse::<i64>().map_err(|_| {
        format!(
            "strconv.Atoi: parsing {}: value out of range",
            go_quote(token)
        )
    })
}

fn go_quote(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

/// The container (object or array) that holds the last token of `tokens`.
fn parent_mut<'a>(doc: &'a mut Value, tokens: &[String]) -> Option<&'a mut Value> {
    let (_, parents) = tokens.split_last()?;
    let mut cur = doc;
    for t in parents {
        cur = match cur {
            Value::Object(m) => m.get_mut(t)?,
            Value::Array(a) => {
                let i = usize::try_from(atoi(t).ok()?).ok()?;
                a.get_mut(i)?
            }
            _ => return None,
        };
    }
    match cur {
        Value::Object(_) | Value::Array(_) => Some(cur),
        _ => None,
    }
}

const MISSING: &str = "missing value";
const INVALID_INDEX: &str = "invalid index referenced";

/// Resolves an index token for an array of length `len`: negative indices
/// count from the end, as evanphx/json-patch allows. `extra` is 1 for add
/// (one past the end is valid).
fn resolve_index(token: &str, len: usize, extra: usize) -> Result<usize, String> {
    let idx = atoi(token)?;
    let size = i64::try_from(len + extra).unwrap_or(i64::MAX);
    let invalid = || format!("Unable to access invalid index: {idx}: {INVALID_INDEX}");
    if idx >= size || idx < -size {
        return Err(invalid());
    }
    let resolved = if idx < 0 { idx + size } else { idx };
    usize::try_from(resolved).map_err(|_| invalid())
}

fn container_get(c: &Value, key: &str) -> Result<Option<Value>, String> {
    match c {
        Value::Object(m) => Ok(m.get(key).cloned()),
        Value::Array(a) => {
            let i = resolve_index(key, a.len(), 0)?;
            Ok(a.get(i).cloned())
        }
        _ => Ok(None),
    }
}

fn container_add(c: &mut Value, key: &str, val: Value) -> Result<(), String> {
    match c {
        Value::Object(m) => {
            m.insert(key.to_string(), val);
            Ok(())
        }
        Value::Array(a) => {
            if key == "-" {
                a.push(val);
                return Ok(());
            }
            let i = resolve_index(key, a.len(), 1).map_err(|e| {
                if e.starts_with("strconv") {
                    format!("value was not a proper array index: '{key}': {e}")
                } else {
                    e
                }
            })?;
            a.insert(i, val);
            Ok(())
        }
        _ => Err(MISSING.to_string()),
    }
}

fn container_remove(c: &mut Value, key: &str) -> Result<Value, String> {
    match c {
        Value::Object(m) => m
            .shift_remove(key)
            .ok_or_else(|| format!("Unable to remove nonexistent key: {key}: {MISSING}")),
        Value::Array(a) => {
            let i = resolve_index(key, a.len(), 0)?;
            Ok(a.remove(i))
        }
        _ => Err(MISSING.to_string()),
    }
}

/// One operation's field as a string, or the evanphx error for its absence.
fn op_str<'a>(op: &'a Map<String, Value>, field: &str) -> Option<&'a str> {
    op.get(field).and_then(Value::as_str)
}

/// RFC 6902 JSON patch.
pub fn json_patch(target: &Value, patch: &Value) -> Result<Value, PatchError> {
    let Value::Array(ops) = patch else {
        return err(format!(
            "json: cannot unmarshal {} into Go value of type jsonpatch.Patch",
            go_type(patch)
        ));
    };
    let mut doc = target.clone();
    for op in ops {
        let Value::Object(op) = op else {
            return err(format!(
                "json: cannot unmarshal {} into Go value of type jsonpatch.Operation",
                go_type(op)
            ));
        };
        let kind = op_str(op, "op").unwrap_or("unknown");
        match kind {
            "add" | "remove" | "replace" | "move" | "copy" | "test" => {}
            _ => return err(format!("Unexpected kind: {kind}")),
        }
        apply_op(&mut doc, kind, op)?;
    }
    Ok(doc)
}

fn apply_op(doc: &mut Value, kind: &str, op: &Map<String, Value>) -> Result<(), PatchError> {
    let value = op.get("value").cloned().unwrap_or(Value::Null);
    let from = || {
        let from = op_str(op, "from").ok_or_else(|| {
            PatchError(format!("{kind} operation failed to decode from: {MISSING}"))
        })?;
        let tokens = pointer_tokens(from).unwrap_or_default();
        Ok::<_, PatchError>((from.to_string(), tokens))
    };
    let path = op_str(op, "path")
        .ok_or_else(|| PatchError(format!("{kind} operation failed to decode path: {MISSING}")))?;
    let tokens = pointer_tokens(path).unwrap_or_default();
    let key = tokens.last().cloned().unwrap_or_default();
    match kind {
        "add" => {
            let Some(parent) = parent_mut(doc, &tokens) else {
                return err(format!(
                    "add operation does not apply: doc is missing path: \"{path}\": {MISSING}"
                ));
            };
            container_add(parent, &key, value)
                .map_err(|e| PatchError(format!("error in add for path: '{path}': {e}")))
        }
        "remove" => {
            let Some(parent) = parent_mut(doc, &tokens) else {
                return err(format!(
                    "remove operation does not apply: doc is missing path: \"{path}\": {MISSING}"
                ));
            };
            container_remove(parent, &key)
                .map(|_| ())
                .map_err(|e| PatchError(format!("error in remove for path: '{path}': {e}")))
        }
        "replace" => {
            let Some(parent) = parent_mut(doc, &tokens) else {
                return err(format!(
                    "replace operation does not apply: doc is missing path: {path}: {MISSING}"
                ));
            };
            let missing_key = || {
                PatchError(format!(
                    "replace operation does not apply: doc is missing key: {path}: {MISSING}"
                ))
            };
            match parent {
                // As the server's json-patch (v4) does, a missing object key
                // is set, not refused.
                Value::Object(m) => {
                    m.insert(key, value);
                }
                Value::Array(a) => {
                    let i = resolve_index(&key, a.len(), 0).map_err(|_| missing_key())?;
                    match a.get_mut(i) {
                        Some(slot) => *slot = value,
                        None => return Err(missing_key()),
                    }
                }
                _ => return Err(missing_key()),
            }
            Ok(())
        }
        "move" => {
            let (from, from_tokens) = from()?;
            let from_key = from_tokens.last().cloned().unwrap_or_default();
            let Some(src) = parent_mut(doc, &from_tokens) else {
                return err(format!(
                    "move operation does not apply: doc is missing from path: {from}: {MISSING}"
                ));
            };
            let val = container_remove(src, &from_key)
                .map_err(|e| PatchError(format!("error in move for path: '{from_key}': {e}")))?;
            let Some(dst) = parent_mut(doc, &tokens) else {
                return err(format!(
                    "move operation does not apply: doc is missing destination path: {path}: {MISSING}"
                ));
            };
            container_add(dst, &key, val)
                .map_err(|e| PatchError(format!("error in move for path: '{path}': {e}")))
        }
        "copy" => {
            let (from, from_tokens) = from()?;
            let from_key = from_tokens.last().cloned().unwrap_or_default();
            let missing_from = || {
                PatchError(format!(
                    "copy operation does not apply: doc is missing from path: {from}: {MISSING}"
                ))
            };
            let src = parent_mut(doc, &from_tokens).ok_or_else(missing_from)?;
            let val = container_get(src, &from_key)
                .map_err(|e| PatchError(format!("error in copy for from: '{from}': {e}")))?
                .ok_or_else(missing_from)?;
            let Some(dst) = parent_mut(doc, &tokens) else {
                return err(format!(
                    "copy operation does not apply: doc is missing destination path: {path}: {MISSING}"
                ));
            };
            container_add(dst, &key, val)
                .map_err(|e| PatchError(format!("error while adding value during copy: {e}")))
        }
        _ => {
            // test
            let Some(parent) = parent_mut(doc, &tokens) else {
                return err(format!(
                    "test operation does not apply: is missing path: {path}: {MISSING}"
                ));
            };
            let found = container_get(parent, &key)
                .map_err(|e| PatchError(format!("error in test for path: '{path}': {e}")))?;
            let wanted = op.get("value");
            let ok = match (found.as_ref(), wanted) {
                (None, None | Some(Value::Null)) => true,
                (Some(f), Some(w)) => f == w,
                _ => false,
            };
            if ok {
                Ok(())
            } else {
                err(format!("testing value {path} failed: test failed"))
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Strategic merge patch
// ---------------------------------------------------------------------------

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const DELETE_FROM_PRIMITIVE: &str = "$deleteFromPrimitiveList/";
const SET_ELEMENT_ORDER: &str = "$setElementOrder/";

/// Strategic merge patch: like merge patch, but lists with a merge key
/// (containers, ports, env, volumes, …) merge element-wise by that key and
/// `$patch: delete` / `$retainKeys` / `$setElementOrder` directives are honoured.
pub fn strategic_merge_patch(target: &Value, patch: &Value) -> Result<Value, PatchError> {
    let Value::Object(patch) = patch else {
        return err(format!(
            "json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
            go_type(patch)
        ));
    };
    let target = target.as_object();
    Ok(Value::Object(smp_map(target, patch)?.unwrap_or_default()))
}

/// Merges `patch` into `target`; `None` means the map is deleted
/// (`$patch: delete`).
fn smp_map(
    target: Option<&Map<String, Value>>,
    patch: &Map<String, Value>,
) -> Result<Option<Map<String, Value>>, PatchError> {
    let mut out = match patch.get(DIRECTIVE) {
        None => target.cloned().unwrap_or_default(),
        Some(Value::String(d)) if d == "merge" => target.cloned().unwrap_or_default(),
        Some(Value::String(d)) if d == "replace" => Map::new(),
        Some(Value::String(d)) if d == "delete" => return Ok(None),
        Some(other) => {
            return err(format!(
                "Unknown patch type: {} in map: {}",
                other
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| other.to_string()),
                Value::Object(patch.clone())
            ))
        }
    };
    let retain = match patch.get(RETAIN_KEYS) {
        None => None,
        Some(Value::Array(keys)) if keys.iter().all(Value::is_string) => Some(
            keys.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect::<Vec<_>>(),
        ),
        Some(_) => return err("invalid patch format of retainKeys"),
    };
    let mut orders: Vec<(&str, &Vec<Value>)> = Vec::new();
    for (k, v) in patch {
        if k == DIRECTIVE || k == RETAIN_KEYS {
            continue;
        }
        if let Some(field) = k.strip_prefix(DELETE_FROM_PRIMITIVE) {
            let Value::Array(values) = v else {
                return err("invalid patch format of primitive list");
            };
            if let Some(Value::Array(items)) = out.get_mut(field) {
                items.retain(|i| !values.contains(i));
            }
            continue;
        }
        if let Some(field) = k.strip_prefix(SET_ELEMENT_ORDER) {
            let Value::Array(order) = v else {
                return err("invalid patch format of setElementOrder list");
            };
            orders.push((field, order));
            continue;
        }
        if k.starts_with('$') {
            // Unknown directives are dropped, never stored.
            continue;
        }
        match v {
            Value::Null => {
                out.shift_remove(k);
            }
            Value::Object(p) => {
                let t = out.get(k).and_then(Value::as_object);
                match smp_map(t, p)? {
                    Some(m) => {
                        out.insert(k.clone(), Value::Object(m));
                    }
                    None => {
                        out.shift_remove(k);
                    }
                }
            }
            Value::Array(p) => {
                let t = out.get(k).and_then(Value::as_array).map(Vec::as_slice);
                let merged = smp_list(k, t, p)?;
                out.insert(k.clone(), Value::Array(merged));
            }
            scalar => {
                out.insert(k.clone(), scalar.clone());
            }
        }
    }
    for (field, order) in orders {
        if let Some(Value::Array(items)) = out.get_mut(field) {
            let key = listkeys::merge_key(field, items);
            reorder(items, order, key);
        }
    }
    if let Some(retain) = retain {
        out.retain(|k, _| retain.iter().any(|r| r == k));
    }
    Ok(Some(out))
}

/// A patch map with its directives applied to nothing: what a new item or a
/// replaced list stores.
fn strip(v: &Value) -> Result<Option<Value>, PatchError> {
    match v {
        Value::Object(m) => Ok(smp_map(None, m)?.map(Value::Object)),
        other => Ok(Some(other.clone())),
    }
}

fn describe(item: &Value) -> String {
    format!("map: {item}")
}

fn smp_list(
    field: &str,
    target: Option<&[Value]>,
    patch: &[Value],
) -> Result<Vec<Value>, PatchError> {
    let is_replace = |i: &Value| i.get(DIRECTIVE).and_then(Value::as_str) == Some("replace");
    if patch.iter().any(is_replace) {
        let mut out = Vec::new();
        for item in patch.iter().filter(|i| !is_replace(i)) {
            out.extend(strip(item)?);
        }
        return Ok(out);
    }
    let target = target.unwrap_or_default();
    let all: Vec<Value> = patch.iter().chain(target).cloned().collect();
    if let Some(key) = listkeys::merge_key(field, &all) {
        let mut out: Vec<Value> = target.to_vec();
        for item in patch {
            let Value::Object(pm) = item else {
                return err(format!(
                    "{} does not contain declared merge key: {key}",
                    describe(item)
                ));
            };
            let Some(kv) = pm.get(key) else {
                return err(format!(
                    "{} does not contain declared merge key: {key}",
                    describe(item)
                ));
            };
            let pos = out.iter().position(|t| t.get(key) == Some(kv));
            let delete = pm.get(DIRECTIVE).and_then(Value::as_str) == Some("delete");
            if delete {
                out.retain(|t| t.get(key) != Some(kv));
                continue;
            }
            match pos {
                Some(i) => match smp_map(out[i].as_object(), pm)? {
                    Some(m) => out[i] = Value::Object(m),
                    None => {
                        out.remove(i);
                    }
                },
                None => {
                    if let Some(m) = smp_map(None, pm)? {
                        out.push(Value::Object(m));
                    }
                }
            }
        }
        return Ok(out);
    }
    if listkeys::is_merged_primitive_list(field) && patch.iter().all(|i| !i.is_object()) {
        let mut out: Vec<Value> = target.to_vec();
        for item in patch {
            if !out.contains(item) {
                out.push(item.clone());
            }
        }
        return Ok(out);
    }
    let mut out = Vec::new();
    for item in patch {
        out.extend(strip(item)?);
    }
    Ok(out)
}

/// Reorders `items` as `order` lists them (`$setElementOrder`); items the
/// order does not name keep their relative order after the named ones.
fn reorder(items: &mut Vec<Value>, order: &[Value], key: Option<&str>) {
    let ident = |v: &Value| -> Value {
        match key {
            Some(k) => v.get(k).cloned().unwrap_or(Value::Null),
            None => v.clone(),
        }
    };
    let mut rest: Vec<Value> = std::mem::take(items);
    for o in order {
        let want = ident(o);
        if let Some(i) = rest.iter().position(|v| ident(v) == want) {
            items.push(rest.remove(i));
        }
    }
    items.append(&mut rest);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_rfc7386_examples() {
        // RFC 7386 appendix A.
        let cases = [
            (json!({"a":"b"}), json!({"a":"c"}), json!({"a":"c"})),
            (json!({"a":"b"}), json!({"b":"c"}), json!({"a":"b","b":"c"})),
            (json!({"a":"b"}), json!({"a":null}), json!({})),
            (
                json!({"a":"b","b":"c"}),
                json!({"a":null}),
                json!({"b":"c"}),
            ),
            (json!({"a":["b"]}), json!({"a":"c"}), json!({"a":"c"})),
            (json!({"a":"c"}), json!({"a":["b"]}), json!({"a":["b"]})),
            (
                json!({"a":{"b":"c"}}),
                json!({"a":{"b":"d","c":null}}),
                json!({"a":{"b":"d"}}),
            ),
            (json!({"a":[{"b":"c"}]}), json!({"a":[1]}), json!({"a":[1]})),
            (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
            (json!({"a":"b"}), json!(["c"]), json!(["c"])),
            (json!({"a":"foo"}), json!(null), json!(null)),
            (json!({"a":"foo"}), json!("bar"), json!("bar")),
            (json!({"e":null}), json!({"a":1}), json!({"e":null,"a":1})),
            (json!([1, 2]), json!({"a":"b","c":null}), json!({"a":"b"})),
            (
                json!({}),
                json!({"a":{"bb":{"ccc":null}}}),
                json!({"a":{"bb":{}}}),
            ),
        ];
        for (target, patch, want) in cases {
            assert_eq!(merge_patch(&target, &patch), want, "{target} + {patch}");
        }
    }

    #[test]
    fn json_patch_rfc6902_examples() {
        // RFC 6902 appendix A (the successful ones).
        let cases = [
            (
                json!({"foo":"bar"}),
                json!([{"op":"add","path":"/baz","value":"qux"}]),
                json!({"baz":"qux","foo":"bar"}),
            ),
            (
                json!({"foo":["bar","baz"]}),
                json!([{"op":"add","path":"/foo/1","value":"qux"}]),
                json!({"foo":["bar","qux","baz"]}),
            ),
            (
                json!({"baz":"qux","foo":"bar"}),
                json!([{"op":"remove","path":"/baz"}]),
                json!({"foo":"bar"}),
            ),
            (
                json!({"foo":["bar","qux","baz"]}),
                json!([{"op":"remove","path":"/foo/1"}]),
                json!({"foo":["bar","baz"]}),
            ),
            (
                json!({"baz":"qux","foo":"bar"}),
                json!([{"op":"replace","path":"/baz","value":"boo"}]),
                json!({"baz":"boo","foo":"bar"}),
            ),
            (
                json!({"foo":{"bar":"baz","waldo":"fred"},"qux":{"corge":"grault"}}),
                json!([{"op":"move","from":"/foo/waldo","path":"/qux/thud"}]),
                json!({"foo":{"bar":"baz"},"qux":{"corge":"grault","thud":"fred"}}),
            ),
            (
                json!({"foo":["all","grass","cows","eat"]}),
                json!([{"op":"move","from":"/foo/1","path":"/foo/3"}]),
                json!({"foo":["all","cows","eat","grass"]}),
            ),
            (
                json!({"baz":"qux","foo":["a",2,"c"]}),
                json!([
                    {"op":"test","path":"/baz","value":"qux"},
                    {"op":"test","path":"/foo/1","value":2}
                ]),
                json!({"baz":"qux","foo":["a",2,"c"]}),
            ),
            (
                json!({"foo":"bar"}),
                json!([{"op":"add","path":"/child","value":{"grandchild":{}}}]),
                json!({"foo":"bar","child":{"grandchild":{}}}),
            ),
            (
                json!({"foo":"bar"}),
                json!([{"op":"add","path":"/baz","value":"qux","xyz":123}]),
                json!({"foo":"bar","baz":"qux"}),
            ),
            (
                json!({"foo":["bar"]}),
                json!([{"op":"add","path":"/foo/-","value":["abc","def"]}]),
                json!({"foo":["bar",["abc","def"]]}),
            ),
            (
                json!({"/":9,"~1":10}),
                json!([{"op":"test","path":"/~01","value":10}]),
                json!({"/":9,"~1":10}),
            ),
            (
                json!({"a/b":1,"m~n":2}),
                json!([
                    {"op":"replace","path":"/a~1b","value":3},
                    {"op":"copy","from":"/m~0n","path":"/c"}
                ]),
                json!({"a/b":3,"m~n":2,"c":2}),
            ),
            (
                json!({"spec":{"containers":[{"name":"a","image":"x"}]}}),
                json!([{"op":"replace","path":"/spec/containers/0/image","value":"y"}]),
                json!({"spec":{"containers":[{"name":"a","image":"y"}]}}),
            ),
        ];
        for (target, patch, want) in cases {
            assert_eq!(json_patch(&target, &patch), Ok(want), "{patch}");
        }
    }

    #[test]
    fn json_patch_errors() {
        let cases = [
            (
                json!({"baz":"qux"}),
                json!([{"op":"test","path":"/baz","value":"bar"}]),
                "testing value /baz failed: test failed",
            ),
            (
                json!({"/":9,"~1":10}),
                json!([{"op":"test","path":"/~01","value":"10"}]),
                "testing value /~01 failed: test failed",
            ),
            (
                json!({"foo":"bar"}),
                json!([{"op":"add","path":"/baz/bat","value":"qux"}]),
                "add operation does not apply: doc is missing path: \"/baz/bat\": missing value",
            ),
            (
                json!({"foo":"bar"}),
                json!([{"op":"remove","path":"/nope"}]),
                "error in remove for path: '/nope': Unable to remove nonexistent key: nope: missing value",
            ),
            (
                json!({"foo":[1]}),
                json!([{"op":"replace","path":"/foo/5","value":1}]),
                "replace operation does not apply: doc is missing key: /foo/5: missing value",
            ),
            (
                json!({"foo":[1]}),
                json!([{"op":"add","path":"/foo/5","value":1}]),
                "error in add for path: '/foo/5': Unable to access invalid index: 5: invalid index referenced",
            ),
            (
                json!({"foo":[1]}),
                json!([{"op":"remove","path":"/foo/1"}]),
                "error in remove for path: '/foo/1': Unable to access invalid index: 1: invalid index referenced",
            ),
            (
                json!({"foo":[1]}),
                json!([{"op":"add","path":"/foo/x","value":1}]),
                "error in add for path: '/foo/x': value was not a proper array index: 'x': strconv.Atoi: parsing \"x\": invalid syntax",
            ),
            (
                json!({"foo":1}),
                json!([{"op":"frob","path":"/foo"}]),
                "Unexpected kind: frob",
            ),
            (
                json!({"foo":1}),
                json!([{"path":"/foo"}]),
                "Unexpected kind: unknown",
            ),
            (
                json!({"foo":1}),
                json!([{"op":"add","value":1}]),
                "add operation failed to decode path: missing value",
            ),
            (
                json!({"foo":1}),
                json!([{"op":"move","path":"/a"}]),
                "move operation failed to decode from: missing value",
            ),
            (
                json!({"foo":1}),
                json!([{"op":"copy","from":"/x","path":"/a"}]),
                "copy operation does not apply: doc is missing from path: /x: missing value",
            ),
            (
                json!({"foo":1}),
                json!({"op":"add"}),
                "json: cannot unmarshal object into Go value of type jsonpatch.Patch",
            ),
            (
                json!({"foo":1}),
                json!(["add"]),
                "json: cannot unmarshal string into Go value of type jsonpatch.Operation",
            ),
            (
                json!({"foo":1}),
                json!([{"op":"replace","path":"","value":{}}]),
                "replace operation does not apply: doc is missing path: : missing value",
            ),
        ];
        for (target, patch, want) in cases {
            assert_eq!(
                json_patch(&target, &patch),
                Err(PatchError(want.into())),
                "{patch}"
            );
        }
    }

    #[test]
    fn json_patch_is_atomic_and_negative_indices() {
        let target = json!({"a":[1,2,3]});
        // A failing op leaves the input untouched (we return a new value).
        assert!(json_patch(
            &target,
            &json!([
                {"op":"remove","path":"/a/0"},
                {"op":"test","path":"/a/0","value":9}
            ])
        )
        .is_err());
        assert_eq!(
            json_patch(&target, &json!([{"op":"remove","path":"/a/-1"}])),
            Ok(json!({"a":[1,2]}))
        );
        // Huge indices never panic.
        assert!(json_patch(
            &target,
            &json!([{"op":"add","path":"/a/99999999999999999999","value":1}])
        )
        .is_err());
        assert!(json_patch(&json!(5), &json!([{"op":"add","path":"/a","value":1}])).is_err());
    }

    #[test]
    fn strategic_merge_patch_cases() {
        let deploy = json!({
            "metadata": {"name": "d", "labels": {"app": "a", "tier": "web"}, "finalizers": ["x"]},
            "spec": {"replicas": 1, "template": {"spec": {
                "containers": [
                    {"name": "app", "image": "app:1", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                     "ports": [{"containerPort": 80}], "args": ["a", "b"]},
                    {"name": "sidecar", "image": "side:1"}
                ],
                "tolerations": [{"key": "k"}]
            }}}
        });
        let cases: Vec<(&str, Value, Value)> = vec![
            (
                "container merged by name, env by name, args replaced",
                json!({"spec": {"template": {"spec": {"containers": [
                    {"name": "app", "image": "app:2", "env": [{"name": "B", "value": "3"}, {"name": "C", "value": "4"}], "args": ["c"]}
                ]}}}}),
                json!({
                    "metadata": {"name": "d", "labels": {"app": "a", "tier": "web"}, "finalizers": ["x"]},
                    "spec": {"replicas": 1, "template": {"spec": {
                        "containers": [
                            {"name": "app", "image": "app:2", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "3"}, {"name": "C", "value": "4"}],
                             "ports": [{"containerPort": 80}], "args": ["c"]},
                            {"name": "sidecar", "image": "side:1"}
                        ],
                        "tolerations": [{"key": "k"}]
                    }}}
                }),
            ),
            (
                "$patch: delete removes a container; null deletes a label; finalizers union",
                json!({"metadata": {"labels": {"tier": null}, "finalizers": ["y"]},
                       "spec": {"template": {"spec": {"containers": [{"name": "sidecar", "$patch": "delete"}],
                                                      "tolerations": [{"key": "j"}]}}}}),
                json!({
                    "metadata": {"name": "d", "labels": {"app": "a"}, "finalizers": ["x", "y"]},
                    "spec": {"replicas": 1, "template": {"spec": {
                        "containers": [
                            {"name": "app", "image": "app:1", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                             "ports": [{"containerPort": 80}], "args": ["a", "b"]}
                        ],
                        "tolerations": [{"key": "j"}]
                    }}}
                }),
            ),
            (
                "$patch: replace on a map, new container appended, port merged by containerPort",
                json!({"metadata": {"labels": {"$patch": "replace", "only": "this"}},
                       "spec": {"template": {"spec": {"containers": [
                           {"name": "app", "ports": [{"containerPort": 80, "name": "http"}]},
                           {"name": "new", "image": "n:1"}]}}}}),
                json!({
                    "metadata": {"name": "d", "labels": {"only": "this"}, "finalizers": ["x"]},
                    "spec": {"replicas": 1, "template": {"spec": {
                        "containers": [
                            {"name": "app", "image": "app:1", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                             "ports": [{"containerPort": 80, "name": "http"}], "args": ["a", "b"]},
                            {"name": "sidecar", "image": "side:1"},
                            {"name": "new", "image": "n:1"}
                        ],
                        "tolerations": [{"key": "k"}]
                    }}}
                }),
            ),
            (
                "$patch: replace in a list, $deleteFromPrimitiveList, $setElementOrder",
                json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["x"]},
                       "spec": {"template": {"spec": {
                           "$setElementOrder/containers": [{"name": "sidecar"}, {"name": "app"}],
                           "containers": [{"name": "sidecar", "image": "side:2"}],
                           "tolerations": [{"$patch": "replace"}, {"key": "z"}]}}}}),
                json!({
                    "metadata": {"name": "d", "labels": {"app": "a", "tier": "web"}, "finalizers": []},
                    "spec": {"replicas": 1, "template": {"spec": {
                        "containers": [
                            {"name": "sidecar", "image": "side:2"},
                            {"name": "app", "image": "app:1", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                             "ports": [{"containerPort": 80}], "args": ["a", "b"]}
                        ],
                        "tolerations": [{"key": "z"}]
                    }}}
                }),
            ),
            (
                "$retainKeys keeps only the listed keys; $patch: delete on a map",
                json!({"spec": {"replicas": 2, "template": {"spec": {"$retainKeys": ["containers"]}},
                                "strategy": {"$patch": "delete"}}}),
                json!({
                    "metadata": {"name": "d", "labels": {"app": "a", "tier": "web"}, "finalizers": ["x"]},
                    "spec": {"replicas": 2, "template": {"spec": {
                        "containers": [
                            {"name": "app", "image": "app:1", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                             "ports": [{"containerPort": 80}], "args": ["a", "b"]},
                            {"name": "sidecar", "image": "side:1"}
                        ]
                    }}}
                }),
            ),
        ];
        for (name, patch, want) in cases {
            assert_eq!(strategic_merge_patch(&deploy, &patch), Ok(want), "{name}");
        }
    }

    #[test]
    fn never_panics_on_odd_input() {
        let values = [
            json!(null),
            json!(1),
            json!("s"),
            json!([1, {"a": 2}]),
            json!({"a": [1, 2], "b": {"c": null}}),
            json!({"spec": {"containers": [{"name": "a"}, {"image": "b"}, 3]}}),
            json!({"$patch": "delete"}),
            json!({"$retainKeys": 1, "$setElementOrder/x": 2, "$deleteFromPrimitiveList/y": 3}),
            json!({"spec": {"containers": [{"$patch": "replace"}, {"$patch": "delete"}]}}),
            json!([{"op": "move", "from": "/a", "path": "/a/b"}, {"op": "copy", "from": "/", "path": "/-"}]),
            json!([{"op": "add", "path": "/a/-1/x", "value": 1}, {"op": "remove", "path": "/a/-9"}]),
            json!([{"op": "test", "path": 5}, {"op": 7}, {"op": "replace", "path": "/a/~2", "value": 1}]),
        ];
        for t in &values {
            for p in &values {
                let _ = merge_patch(t, p);
                let _ = json_patch(t, p);
                let _ = strategic_merge_patch(t, p);
            }
        }
    }

    #[test]
    fn strategic_merge_patch_service_ports_and_errors() {
        let svc = json!({"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443}]}});
        assert_eq!(
            strategic_merge_patch(
                &svc,
                &json!({"spec": {"ports": [{"port": 80, "targetPort": 9090}]}})
            ),
            Ok(json!({"spec": {"ports": [{"port": 80, "targetPort": 9090}, {"port": 443}]}}))
        );
        assert_eq!(
            strategic_merge_patch(&svc, &json!({"spec": {"ports": [{"targetPort": 1}]}})),
            Err(PatchError(
                "map: {\"targetPort\":1} does not contain declared merge key: port".into()
            ))
        );
        assert!(strategic_merge_patch(&svc, &json!([1])).is_err());
        assert!(strategic_merge_patch(&svc, &json!({"spec": {"$patch": "frob"}})).is_err());
        // Unknown target shapes never panic.
        assert_eq!(
            strategic_merge_patch(&json!("x"), &json!({"a": {"b": null}})),
            Ok(json!({"a": {}}))
        );
    }
}
