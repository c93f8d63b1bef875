//! Multi-document YAML parsing into JSON values, shared by the root loader
//! and the renderers. Empty documents are skipped but keep their index, so a
//! document number in an error matches what the user counts in the file.

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

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
    /// Not YAML (or not representable as JSON): the parser's message.
    Syntax(String),
    /// A local tag such as `!custom foo`: valid YAML, but Kubernetes
    /// manifests are plain JSON-compatible data and kubesync does not guess
    /// what a tag means. `path` is where it is (`data.a`, `items[2]`).
    UnsupportedTag { tag: String, path: String },
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
    let mut out = Vec::new();
    for (doc, de) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let found = RefCell::new(None);
        let value = ValueSeed { found: &found }.deserialize(de).map_err(|e| {
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

/// Deserializes any YAML value into a JSON [`Value`], as serde_json's own
/// visitor does, except that a tagged node (which serde_yaml presents as an
/// enum) is recorded in `found` and refused.
#[derive(Clone, Copy)]
struct ValueSeed<'a> {
    found: &'a RefCell<Option<TagFound>>,
}

impl ValueSeed<'_> {
    /// Adds a path segment to a tag error passing through.
    fn segment<E>(&self, e: E, seg: impl FnOnce() -> String) -> E {
        if let Some(t) = self.found.borrow_mut().as_mut() {
            t.path.push(seg());
        }
        e
    }
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
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

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        self.deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        loop {
            match seq.next_element_seed(self) {
                Ok(Some(v)) => items.push(v),
                Ok(None) => return Ok(Value::Array(items)),
                Err(e) => return Err(self.segment(e, || format!("[{}]", items.len()))),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            match map.next_value_seed(self) {
                Ok(v) => {
                    out.insert(key, v);
                }
                Err(e) => return Err(self.segment(e, || format!(".{key}"))),
            }
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

#[cfg(test)]
mod tests {
    use super::*;

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
