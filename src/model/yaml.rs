//! Multi-document YAML parsing into JSON values, shared by the root loader
//! and the renderers. Empty documents are skipped but keep their index, so a
//! document number in an error matches what the user counts in the file.
//!
//! Stricter than the parser on its own, as the API server and kubectl are:
//!
//! - **Nesting depth** is checked first, by a linear scan of the text
//!   ([`check_depth`]): flow collections (`[[[`, `{{{`, brackets inside
//!   quoted scalars, block scalars and comments aside), compact block
//!   sequences (`- - - x`) and indentation. Deeper than [`MAX_DEPTH`] is an
//!   error naming the line, reported before the parser (whose time grows with
//!   the square of the depth) ever sees the text. Real manifests and CRD
//!   schemas stay far below it; the parser's own limit (128 nested
//!   collections) still applies to what passes the scan.
//! - **Duplicate mapping keys** are errors naming the key and its line (the
//!   parser alone would keep the last one silently).
//! - **Merge keys** (`<<: *anchor`, or a list of anchors) are expanded as
//!   kubectl expands them: keys written in the mapping win over merged ones,
//!   and earlier merged mappings win over later ones.

use std::fmt;

use std::cell::RefCell;

use serde::de::{
    self, DeserializeSeed, Deserializer as _, EnumAccess, MapAccess, SeqAccess, Visitor,
};
use serde_json::{Map, Number, Value};

/// The deepest nesting of collections a document may have.
pub const MAX_DEPTH: usize = 256;

/// A YAML document kubesync cannot read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    /// 0-based document index.
    pub doc: usize,
    /// 1-based line in the whole text, when known.
    pub line: Option<usize>,
    pub kind: YamlErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum YamlErrorKind {
    /// Not YAML, too deep, a duplicate key, a bad merge key (or anything
    /// not representable as JSON): what is wrong.
    Syntax(String),
    /// A local tag such as `!custom foo`: valid YAML, but Kubernetes
    /// manifests are plain JSON-compatible data and kubesync does not guess
    /// what a tag means. `path` is where it is (`data.a`, `items[2]`).
    UnsupportedTag { tag: String, path: String },
}

impl YamlError {
    fn syntax(doc: usize, line: Option<usize>, message: String) -> Self {
        YamlError {
            doc,
            line,
            kind: YamlErrorKind::Syntax(message),
        }
    }
}

impl fmt::Display for YamlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = self
            .line
            .map(|l| format!(" at line {l}"))
            .unwrap_or_default();
        match &self.kind {
            YamlErrorKind::Syntax(message) => write!(f, "invalid YAML{at}: {message}"),
            YamlErrorKind::UnsupportedTag { tag, path } => {
                write!(f, "YAML tag !{tag}{at}")?;
                if !path.is_empty() {
                    write!(f, " ({path})")?;
                }
                write!(
                    f,
                    " is not supported: YAML tags are not part of Kubernetes manifests (remove the tag, or quote the value to keep it as text)"
                )
            }
        }
    }
}

impl std::error::Error for YamlError {}

/// Parses every document of `text`; returns `(index, value)` for each
/// non-empty one. Stops at the first invalid document.
pub fn documents(text: &str) -> Result<Vec<(usize, Value)>, YamlError> {
    check_depth(text)?;
    let mut out = Vec::new();
    for (doc, de) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let found = RefCell::new(None);
        let value = de
            .deserialize_any(JsonVisitor { found: &found })
            .map_err(|e| {
                let line = e.location().map(|l| l.line());
                let kind = match found.into_inner() {
                    Some(TagFound { tag, mut path }) => {
                        path.reverse();
                        YamlErrorKind::UnsupportedTag {
                            tag,
                            path: path.concat().trim_start_matches('.').to_string(),
                        }
                    }
                    None => YamlErrorKind::Syntax(strip_location(&e.to_string())),
                };
                YamlError { doc, line, kind }
            })?;
        if !value.is_null() {
            out.push((doc, value));
        }
    }
    Ok(out)
}

/// serde_yaml appends " at line X column Y"; the line is reported separately.
fn strip_location(msg: &str) -> String {
    match msg.find(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

/// A tag met while parsing, and the path to it (segments innermost first,
/// added while the error unwinds, so a successful parse pays nothing).
struct TagFound {
    tag: String,
    path: Vec<String>,
}

/// Builds a JSON value from YAML events, refusing duplicate keys and tags
/// (which serde_yaml presents as enums; the tag is recorded in `found`) and
/// expanding merge keys.
#[derive(Clone, Copy)]
struct JsonVisitor<'a> {
    found: &'a RefCell<Option<TagFound>>,
}

impl JsonVisitor<'_> {
    /// Adds a path segment to a tag error passing through.
    fn segment<E>(&self, e: E, seg: impl FnOnce() -> String) -> E {
        if let Some(t) = self.found.borrow_mut().as_mut() {
            t.path.push(seg());
        }
        e
    }
}

impl<'de> DeserializeSeed<'de> for JsonVisitor<'_> {
    type Value = Value;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for JsonVisitor<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        loop {
            match seq.next_element_seed(self) {
                Ok(Some(item)) => items.push(item),
                Ok(None) => return Ok(Value::Array(items)),
                Err(e) => return Err(self.segment(e, || format!("[{}]", items.len()))),
            }
        }
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut written = Map::new();
        let mut merged: Option<Vec<Map<String, Value>>> = None;
        while let Some(key) = map.next_key_seed(KeySeed {
            seen: &written,
            merge_seen: merged.is_some(),
        })? {
            if key == MERGE_KEY {
                merged = Some(map.next_value_seed(MergeSeed { value: self })?);
            } else {
                match map.next_value_seed(self) {
                    Ok(value) => {
                        written.insert(key, value);
                    }
                    Err(e) => return Err(self.segment(e, || format!(".{key}"))),
                }
            }
        }
        let Some(merged) = merged else {
            return Ok(Value::Object(written));
        };
        // As if the merged keys were written first: earlier merged mappings
        // win over later ones, written keys win over all of them.
        let mut out = Map::new();
        for m in merged {
            for (k, v) in m {
                out.entry(k).or_insert(v);
            }
        }
        for (k, v) in written {
            out.insert(k, v);
        }
        Ok(Value::Object(out))
    }
    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Value, A::Error> {
        let (tag, _) = data.variant::<String>()?;
        let message = format!("YAML tag !{tag} is not supported");
        *self.found.borrow_mut() = Some(TagFound {
            tag,
            path: Vec::new(),
        });
        Err(de::Error::custom(message))
    }
}

const MERGE_KEY: &str = "<<";

/// A mapping key; a key already written in the same mapping is an error
/// raised while the key is read, so it carries the key's own line.
struct KeySeed<'a> {
    seen: &'a Map<String, Value>,
    merge_seen: bool,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = String;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = String;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a mapping key")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        let duplicate = if v == MERGE_KEY {
            self.merge_seen
        } else {
            self.seen.contains_key(v)
        };
        if duplicate {
            return Err(E::custom(format!(
                "duplicate key \"{v}\" in the same mapping"
            )));
        }
        Ok(v.to_string())
    }
}

/// The value of a merge key: one mapping, or a list of mappings.
struct MergeSeed<'a> {
    value: JsonVisitor<'a>,
}

impl<'de> DeserializeSeed<'de> for MergeSeed<'_> {
    type Value = Vec<Map<String, Value>>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        let bad = || {
            de::Error::custom(
                "the merge key << takes a mapping (<<: *anchor) or a list of mappings ([*a, *b])",
            )
        };
        match self.value.deserialize(d)? {
            Value::Object(m) => Ok(vec![m]),
            Value::Array(items) => items
                .into_iter()
                .map(|i| match i {
                    Value::Object(m) => Ok(m),
                    _ => Err(bad()),
                })
                .collect(),
            _ => Err(bad()),
        }
    }
}

/// Rejects nesting deeper than [`MAX_DEPTH`] in time linear in the text's
/// length, naming the document and the line where the limit is passed.
///
/// An approximation of the parser's view, meant to count no more levels than
/// the parser sees in valid YAML: a block level per indentation column and
/// per compact `- ` on a line, a flow level per `[` or `{` that opens a
/// collection (not one inside a plain or quoted scalar, a comment or a block
/// scalar).
pub fn check_depth(text: &str) -> Result<(), YamlError> {
    let mut s = Scan::default();
    for (i, line) in text.lines().enumerate() {
        s.line(line).map_err(|depth| {
            YamlError::syntax(
                s.doc,
                Some(i + 1),
                format!(
                "nesting deeper than {MAX_DEPTH} levels (at least {depth}); kubesync refuses such documents"
            ),
            )
        })?;
    }
    Ok(())
}

#[derive(Default)]
struct Scan {
    /// 0-based document index (for errors).
    doc: usize,
    /// Whether the current document has begun (content or `---`).
    started: bool,
    /// Indentation columns of the open block levels, increasing.
    block: Vec<usize>,
    /// Open flow collections.
    flow: usize,
    /// Block depth where the current flow collection started.
    flow_base: usize,
    /// Inside a quoted scalar spanning lines: its quote character.
    quote: Option<u8>,
    /// Inside a block scalar: lines indented deeper than this are its content.
    block_scalar: Option<isize>,
}

impl Scan {
    /// Scans one line; `Err(depth)` when too deep.
    fn line(&mut self, line: &str) -> Result<(), usize> {
        let b = line.as_bytes();
        let marker =
            |m: &[u8]| b.starts_with(m) && b.get(3).is_none_or(|c| *c == b' ' || *c == b'\t');
        if self.quote.is_none() && (marker(b"---") || marker(b"...")) {
            if b[0] == b'-' {
                if self.started {
                    self.doc += 1;
                }
                self.started = true;
            } else {
                self.doc += 1;
                self.started = false;
            }
            self.block.clear();
            self.flow = 0;
            self.block_scalar = None;
            return if b[0] == b'-' && b.len() > 4 {
                self.content(b, 4, 4)
            } else {
                Ok(())
            };
        }
        let indent = b.iter().take_while(|c| **c == b' ').count();
        if let Some(threshold) = self.block_scalar {
            if indent == b.len() || indent as isize > threshold {
                return Ok(());
            }
            self.block_scalar = None;
        }
        if self.quote.is_some() || self.flow > 0 {
            return self.content(b, indent, indent);
        }
        let first = b.get(indent).copied();
        if first.is_none() || first == Some(b'#') || (indent == 0 && first == Some(b'%')) {
            return Ok(());
        }
        self.started = true;
        while self.block.last().is_some_and(|top| *top > indent) {
            self.block.pop();
        }
        if self.block.last() != Some(&indent) {
            self.block.push(indent);
        }
        self.check(self.block.len())?;
        self.content(b, indent, indent)
    }

    fn check(&self, depth: usize) -> Result<(), usize> {
        if depth > MAX_DEPTH {
            Err(depth)
        } else {
            Ok(())
        }
    }

    /// Scans `b[start..]`; `node` is the column of the node that owns a block
    /// scalar starting at the beginning of the content.
    fn content(&mut self, b: &[u8], start: usize, mut node: usize) -> Result<(), usize> {
        let mut i = start;
        // Whether a new scalar or collection may start at `i`.
        let mut token_start = true;
        while i < b.len() {
            let c = b[i];
            if let Some(q) = self.quote {
                if q == b'"' && c == b'\\' {
                    i += 2;
                    continue;
                }
                if c == q {
                    if q == b'\'' && b.get(i + 1) == Some(&b'\'') {
                        i += 2;
                        continue;
                    }
                    self.quote = None;
                    token_start = false;
                }
                i += 1;
                continue;
            }
            let after_space = i == 0 || matches!(b[i - 1], b' ' | b'\t');
            match c {
                b' ' | b'\t' => {}
                b'#' if after_space => return Ok(()),
                b'"' | b'\'' if token_start => {
                    self.quote = Some(c);
                    token_start = false;
                }
                b'[' | b'{' if token_start || self.flow > 0 => {
                    if self.flow == 0 {
                        self.flow_base = self.block.len();
                    }
                    self.flow += 1;
                    self.check(self.flow_base + self.flow)?;
                    token_start = true;
                }
                b']' | b'}' if self.flow > 0 => {
                    self.flow -= 1;
                    token_start = false;
                }
                b',' if self.flow > 0 => token_start = true,
                b'-' | b'?'
                    if token_start
                        && self.flow == 0
                        && b.get(i + 1).is_none_or(|n| *n == b' ' || *n == b'\t') =>
                {
                    // A block sequence entry (or complex key); a compact one
                    // (`- - x`) opens a level of its own.
                    node = i;
                    if self.block.last().is_some_and(|top| *top < i) {
                        self.block.push(i);
                        self.check(self.block.len())?;
                    }
                }
                b':' if self.flow == 0
                    && b.get(i + 1).is_none_or(|n| *n == b' ' || *n == b'\t') =>
                {
                    token_start = true;
                }
                b':' if self.flow > 0 => token_start = true,
                b'|' | b'>' if token_start && self.flow == 0 && block_header(&b[i + 1..]) => {
                    self.block_scalar = Some(node as isize);
                    return Ok(());
                }
                b'&' | b'!' if token_start => {
                    // An anchor or a tag: the node follows it. Flow indicators
                    // end the name (`&a[` opens a collection for the parser).
                    i += 1 + b[i + 1..]
                        .iter()
                        .take_while(|n| {
                            !matches!(n, b' ' | b'\t' | b'[' | b']' | b'{' | b'}' | b',')
                        })
                        .count();
                    continue;
                }
                _ => {
                    if token_start && self.flow == 0 {
                        // A key (or a plain scalar) starts here: a block
                        // scalar that is its value belongs to it.
                        node = i;
                    }
                    token_start = false;
                }
            }
            i += 1;
        }
        Ok(())
    }
}

/// Whether what follows a `|` or `>` makes it a block scalar header:
/// indicators (`+`, `-`, a digit), then the end of the line or a comment.
fn block_header(rest: &[u8]) -> bool {
    let n = rest
        .iter()
        .take_while(|c| matches!(c, b'+' | b'-' | b'1'..=b'9'))
        .count();
    let rest = &rest[n..];
    rest.iter().all(|c| matches!(c, b' ' | b'\t'))
        || (rest.first().is_some_and(|c| matches!(c, b' ' | b'\t'))
            && rest.iter().find(|c| !matches!(c, b' ' | b'\t')) == Some(&b'#'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(e: &YamlError) -> &str {
        match &e.kind {
            YamlErrorKind::Syntax(m) => m,
            other => panic!("not a syntax error: {other:?}"),
        }
    }
    use std::time::{Duration, Instant};

    #[test]
    fn multi_document_keeps_indexes() {
        let docs = documents("a: 1\n---\n---\nb: 2\n").unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].0, 0);
        assert_eq!(docs[1].0, 2);
        assert_eq!(docs[1].1["b"], 2);
    }

    #[test]
    fn errors_carry_document_and_line() {
        let e = documents("a: 1\n---\nb: [1, 2\n").unwrap_err();
        assert_eq!(e.doc, 1);
        assert!(e.line.is_some(), "{e:?}");
        assert!(e.to_string().starts_with("invalid YAML at line"), "{e}");
    }

    #[test]
    fn scalars_keep_their_types() {
        let docs =
            documents("a: 1\nb: -2\nc: 1.5\nd: true\ne: ~\nf: x\ng: '1'\n1: int key\n").unwrap();
        assert_eq!(
            docs[0].1,
            serde_json::json!({"a": 1, "b": -2, "c": 1.5, "d": true, "e": null, "f": "x", "g": "1", "1": "int key"})
        );
    }

    #[test]
    fn duplicate_keys_are_errors_naming_key_and_line() {
        let text = "apiVersion: v1\nkind: ConfigMap\n---\nspec:\n  source: {path: a}\n  other: 1\n  source: {path: b}\n";
        let e = documents(text).unwrap_err();
        assert_eq!(e.doc, 1);
        assert_eq!(e.line, Some(7), "{e:?}");
        assert_eq!(
            msg(&e),
            "spec: duplicate key \"source\" in the same mapping"
        );
        // The same key in different mappings is fine.
        assert!(documents("a: {x: 1}\nb: {x: 2}\n").is_ok());
        let e = documents("a: &x {k: 1}\nb:\n  <<: *x\n  <<: *x\n").unwrap_err();
        assert!(msg(&e).contains("duplicate key \"<<\""), "{e:?}");
    }

    #[test]
    fn merge_keys_are_expanded() {
        let text = "base: &base\n  app: web\n  tier: backend\nextra: &extra\n  tier: frontend\n  team: a\nlabels:\n  <<: [*base, *extra]\n  app: override\none:\n  <<: *base\n";
        let docs = documents(text).unwrap();
        let v = &docs[0].1;
        assert_eq!(
            v["labels"],
            serde_json::json!({"app": "override", "tier": "backend", "team": "a"})
        );
        assert_eq!(
            v["one"],
            serde_json::json!({"app": "web", "tier": "backend"})
        );
        assert!(v["labels"].get("<<").is_none());
        let e = documents("a:\n  <<: 5\n").unwrap_err();
        assert!(msg(&e).contains("merge key"), "{e:?}");
    }

    fn depth_error(text: &str) -> Option<YamlError> {
        check_depth(text).err()
    }

    #[test]
    fn depth_scan_counts_flow_and_compact_sequences() {
        let deep = |n: usize| format!("a: {}{}\n", "[".repeat(n), "]".repeat(n));
        assert!(depth_error(&deep(MAX_DEPTH - 1)).is_none());
        let e = depth_error(&format!("x: 1\n---\nok: 1\n{}", deep(MAX_DEPTH + 5))).unwrap();
        assert_eq!((e.doc, e.line), (1, Some(4)), "{e:?}");
        assert!(msg(&e).starts_with("nesting deeper than 256 levels"), "{e}");
        assert!(depth_error(&format!("{}x\n", "- ".repeat(MAX_DEPTH + 1))).is_some());
        assert!(depth_error(&format!("{}x\n", "- ".repeat(MAX_DEPTH - 1))).is_none());
        assert!(depth_error(&format!("a: {}\n", "{b: ".repeat(MAX_DEPTH + 1))).is_some());
        assert!(depth_error(&format!("a: &x{}\n", "[".repeat(MAX_DEPTH + 1))).is_some());
        assert!(depth_error(&format!("a: !!seq {}\n", "[".repeat(MAX_DEPTH + 1))).is_some());
        let mut indented = String::new();
        for i in 0..MAX_DEPTH + 1 {
            indented.push_str(&format!("{}k{i}:\n", " ".repeat(i)));
        }
        assert_eq!(depth_error(&indented).unwrap().line, Some(MAX_DEPTH + 1));
    }

    #[test]
    fn depth_scan_ignores_brackets_in_scalars_and_comments() {
        let many = "[".repeat(MAX_DEPTH * 2);
        for text in [
            format!("a: \"{many}\"\n"),
            format!("a: '{many}'\n"),
            format!("a: 'it''s {many}'\n"),
            format!("a: \"multi\n  line \\\" {many}\"\n"),
            format!("a: plain {many}\n"),
            format!("a: 1 # {many}\n"),
            format!("# {many}\n"),
            format!("a: |\n  {many}\n  more\nb: 1\n"),
            format!("- k: >-\n    {many}\n  other: 1\n"),
            format!("- |\n  {many}\n"),
            format!("a: [\"{many}\", '{many}']\n"),
        ] {
            assert!(depth_error(&text).is_none(), "{text}");
            assert!(documents(&text).is_ok(), "{text}");
        }
        // After a block scalar, brackets count again.
        let text = format!("a: |\n  x\nb: {}\n", "[".repeat(MAX_DEPTH + 1));
        assert_eq!(depth_error(&text).unwrap().line, Some(3));
    }

    #[test]
    fn deep_input_is_rejected_in_linear_time() {
        let n = 100_000;
        for text in [
            format!("a: {}{}\n", "[".repeat(n), "]".repeat(n)),
            format!("a: {}\n", "{a: ".repeat(n)),
            format!("{}x\n", "- ".repeat(n)),
        ] {
            let start = Instant::now();
            let e = documents(&text).unwrap_err();
            assert!(msg(&e).starts_with("nesting deeper"), "{e}");
            assert!(
                start.elapsed() < Duration::from_secs(1),
                "{:?}",
                start.elapsed()
            );
        }
    }

    #[test]
    fn tags_are_refused_naming_tag_line_and_path() {
        let e = documents("a: 1\n---\nkind: ConfigMap\ndata:\n  x: ok\n  a: !custom foo\n")
            .unwrap_err();
        assert_eq!(e.doc, 1);
        assert_eq!(e.line, Some(6));
        assert_eq!(
            e.kind,
            YamlErrorKind::UnsupportedTag {
                tag: "custom".into(),
                path: "data.a".into()
            }
        );
        assert!(
            e.to_string()
                .starts_with("YAML tag !custom at line 6 (data.a) is not supported"),
            "{e}"
        );
        // On a mapping or a sequence item too.
        let e = documents("items:\n  - 1\n  - !thing {a: 1}\n").unwrap_err();
        assert_eq!(
            e.kind,
            YamlErrorKind::UnsupportedTag {
                tag: "thing".into(),
                path: "items[1]".into()
            }
        );
        // Standard tags are not custom tags.
        let docs = documents("a: !!str 12\nb: !!int \"3\"\n").unwrap();
        assert_eq!(docs[0].1["a"], "12");
    }

    #[test]
    fn values_match_serde_json() {
        let text = "a: 1\nb: -2\nc: 1.5\nd: [x, null, true]\ne: {f: ~}\ng: .nan\n";
        let docs = documents(text).unwrap();
        let want: Value = serde_json::json!({
            "a": 1, "b": -2, "c": 1.5, "d": ["x", null, true], "e": {"f": null}, "g": null
        });
        assert_eq!(docs[0].1, want);
    }
}
