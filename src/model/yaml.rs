//! Multi-document YAML parsing into JSON values, shared by the root loader
//! and the renderers. Empty documents are skipped but keep their index, so a
//! document number in an error matches what the user counts in the file.

use std::fmt;

use serde::Deserialize;
use serde_json::Value;

/// A YAML document that does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    /// 0-based document index.
    pub doc: usize,
    /// 1-based line in the whole text, when known.
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for YamlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "invalid YAML at line {l}: {}", self.message),
            None => write!(f, "invalid YAML: {}", self.message),
        }
    }
}

impl std::error::Error for YamlError {}

/// Parses every document of `text`; returns `(index, value)` for each
/// non-empty one. Stops at the first invalid document.
pub fn documents(text: &str) -> Result<Vec<(usize, Value)>, YamlError> {
    let mut out = Vec::new();
    for (doc, de) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let value = Value::deserialize(de).map_err(|e| YamlError {
            doc,
            line: e.location().map(|l| l.line()),
            message: strip_location(&e.to_string()),
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
}
