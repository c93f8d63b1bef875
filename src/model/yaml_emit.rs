//! YAML output of JSON values that every consumer reads back as written:
//! `kubesync render` output piped into `kubectl apply -f -` (go-yaml, YAML
//! 1.1 rules), into other YAML 1.1 or 1.2 tools, or back into
//! [`super::yaml::documents`].
//!
//! The serializer of the `serde_yaml` crate quotes only the strings its own
//! (YAML 1.2) resolver would take for something else, so `"yes"`, `"on"`,
//! `"1_000"` or `"12:30"` come out bare and a YAML 1.1 parser reads a bool or
//! a number. This emitter decides quoting itself, erring on the side of
//! quotes: a string is written plain only when it cannot be anything but a
//! string under either version of the spec (see [`plain_is_safe`]).
//!
//! The layout is the usual Kubernetes one, as `serde_yaml` and kubectl print
//! it: block mappings indented by two, sequences under a key not indented,
//! empty collections as `{}` / `[]`, multi-line strings as literal blocks
//! (`|`, `|-`, with an indentation indicator when the first line starts with
//! a space) when a literal block holds them exactly, double-quoted with
//! escapes otherwise. Nothing is folded or wrapped.
//!
//! It writes values only; document markers and comments are the caller's.

use serde_json::{Map, Value};

/// The YAML text of one document holding `value`, ending in a newline.
pub fn to_string(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(m) if !m.is_empty() => write_map(&mut out, m, 0, false),
        Value::Array(a) if !a.is_empty() => write_seq(&mut out, a, 0, false),
        scalar => write_scalar(&mut out, scalar, 2),
    }
    out
}

/// Keys longer than this (in bytes) are written as explicit `? key` entries:
/// YAML parsers accept at most 1024 characters in an implicit key.
const MAX_IMPLICIT_KEY: usize = 1000;

fn indent(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n(' ', n));
}

/// A block mapping at column `at`; the first entry continues the current line
/// when `inline_first` (after a `- `).
fn write_map(out: &mut String, m: &Map<String, Value>, at: usize, inline_first: bool) {
    for (i, (k, v)) in m.iter().enumerate() {
        if i > 0 || !inline_first {
            indent(out, at);
        }
        let key = scalar_text(k);
        if key.len() > MAX_IMPLICIT_KEY {
            out.push_str("? ");
            out.push_str(&key);
            out.push('\n');
            indent(out, at);
            out.push(':');
            // Collections under an explicit `:` are indented further.
            match v {
                Value::Array(a) if !a.is_empty() => {
                    out.push('\n');
                    write_seq(out, a, at + 2, false);
                }
                _ => write_value(out, v, at),
            }
        } else {
            out.push_str(&key);
            out.push(':');
            write_value(out, v, at);
        }
    }
}

/// The value of a mapping entry whose key (and `:`) is written at column `at`.
fn write_value(out: &mut String, v: &Value, at: usize) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            out.push('\n');
            write_map(out, m, at + 2, false);
        }
        Value::Array(a) if !a.is_empty() => {
            out.push('\n');
            write_seq(out, a, at, false);
        }
        scalar => {
            out.push(' ');
            write_scalar(out, scalar, at + 2);
        }
    }
}

/// A block sequence at column `at`; the first item continues the current line
/// when `inline_first`.
fn write_seq(out: &mut String, a: &[Value], at: usize, inline_first: bool) {
    for (i, v) in a.iter().enumerate() {
        if i > 0 || !inline_first {
            indent(out, at);
        }
        out.push_str("- ");
        match v {
            Value::Object(m) if !m.is_empty() => write_map(out, m, at + 2, true),
            Value::Array(a) if !a.is_empty() => write_seq(out, a, at + 2, true),
            scalar => write_scalar(out, scalar, at + 2),
        }
    }
}

/// A scalar (or empty collection) and its newline; a literal block's lines
/// are indented to column `block_at`.
fn write_scalar(out: &mut String, v: &Value, block_at: usize) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::Object(_) => out.push_str("{}"),
        Value::Array(_) => out.push_str("[]"),
        Value::String(s) => {
            if let Some(header) = literal_header(s) {
                out.push_str(header);
                out.push('\n');
                for line in s.strip_suffix('\n').unwrap_or(s).split('\n') {
                    if !line.is_empty() {
                        indent(out, block_at);
                        out.push_str(line);
                    }
                    out.push('\n');
                }
                return;
            }
            out.push_str(&scalar_text(s));
        }
    }
    out.push('\n');
}

/// `s` as a one-line scalar: plain when that is safe, single-quoted when
/// only quoting is needed, double-quoted when a character needs an escape.
fn scalar_text(s: &str) -> String {
    if s.chars().any(needs_escape) {
        double_quoted(s)
    } else if plain_is_safe(s) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "''"))
    }
}

/// Characters that only a double-quoted scalar can carry: line breaks
/// (including YAML 1.1's NEL, LS and PS), tabs, control characters, the byte
/// order mark and the non-characters YAML does not allow as text.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}'
        )
}

fn double_quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if needs_escape(c) => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The header of a literal block holding `s` exactly (`|` keeps one final
/// newline, `|-` none; `2` when the first line starts with a space), or
/// `None` when `s` is better double-quoted: a single line, control
/// characters, trailing whitespace on a line (editors strip it), several
/// final newlines, or no text at all.
fn literal_header(s: &str) -> Option<&'static str> {
    if !s.contains('\n') || s.chars().any(|c| c != '\n' && needs_escape(c)) {
        return None;
    }
    let body = s.strip_suffix('\n');
    let clip = body.is_some();
    let body = body.unwrap_or(s);
    if body.ends_with('\n') || body.split('\n').any(|l| l.ends_with(' ')) {
        return None;
    }
    let first = body.split('\n').find(|l| !l.is_empty())?;
    Some(match (first.starts_with(' '), clip) {
        (false, true) => "|",
        (false, false) => "|-",
        (true, true) => "|2",
        (true, false) => "|2-",
    })
}

/// Characters that start something other than a plain scalar (or might, in
/// some parser): indicators, quotes, and `-`, `?`, `:` even when a plain
/// scalar could start with them.
const LEADING_INDICATORS: &str = "-?:,[]{}#&*!|>'\"%@`";

/// Whether `s` may be written as a plain scalar and read back as this same
/// string by YAML 1.1 and 1.2 parsers (and as a mapping key or value, at any
/// indentation, including a top-level document). Conservative: a `false`
/// only costs two quotes.
pub fn plain_is_safe(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    !(LEADING_INDICATORS.contains(first)
        || s.starts_with(' ')
        || s.ends_with(' ')
        || s.ends_with(':')
        || s.contains(": ")
        || s.contains(" #")
        || s.starts_with("...")
        || s.chars().any(needs_escape)
        || resolves_to_non_string(s))
}

/// Whether a plain scalar `s` could be read as null, a bool, a number, a
/// timestamp or a YAML 1.1 special (`=`, `<<`) under YAML 1.1 or 1.2, in any
/// letter case.
fn resolves_to_non_string(s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    if matches!(
        lower.as_str(),
        "~" | "null" | "y" | "n" | "yes" | "no" | "true" | "false" | "on" | "off" | "=" | "<<"
    ) {
        return true;
    }
    let unsigned = lower.trim_start_matches(['+', '-']);
    if matches!(unsigned, ".inf" | ".nan" | "inf" | "nan" | "infinity") {
        return true;
    }
    // Integers (decimal, 0x, 0o, 0b, leading-zero octal, `_` separators),
    // floats (exponents, leading dot), sexagesimal numbers (`12:30`) and
    // timestamps (`2001-12-14`, `2001-12-14t21:59:43.10-05:00`,
    // `2001-12-14 21:59:43.10 z`): all start with a digit or a dot and a
    // digit, and use only these characters.
    let mut chars = unsigned.chars();
    let numeric_start = match chars.next() {
        Some(c) if c.is_ascii_digit() => true,
        Some('.') => chars.next().is_some_and(|c| c.is_ascii_digit()),
        _ => false,
    };
    numeric_start
        && unsigned
            .chars()
            .all(|c| c.is_ascii_hexdigit() || "xob_.:+-tz ".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn back(text: &str) -> Value {
        let docs = super::super::yaml::documents(text).expect("parses");
        assert_eq!(docs.len(), 1, "{text}");
        docs.into_iter().next().expect("one").1
    }

    #[test]
    fn layout_matches_kubernetes_style() {
        let v = json!({
            "apiVersion": "v1",
            "metadata": {"name": "cm", "labels": {}},
            "data": {"multi": "line1\nline2\n", "lead": "  indented\nx"},
            "list": [1, "2", {"a": "b", "c": ["x", "z"]}, ["p", "q"], [], null, true, 1.5]
        });
        let text = to_string(&v);
        assert_eq!(
            text,
            "apiVersion: v1\nmetadata:\n  name: cm\n  labels: {}\ndata:\n  multi: |\n    line1\n    line2\n  lead: |2-\n      indented\n    x\nlist:\n- 1\n- '2'\n- a: b\n  c:\n  - x\n  - z\n- - p\n  - q\n- []\n- null\n- true\n- 1.5\n"
        );
        assert_eq!(back(&text), v);
    }

    #[test]
    fn ambiguous_strings_are_quoted_and_plain_ones_are_not() {
        for s in [
            "yes",
            "No",
            "ON",
            "off",
            "y",
            "N",
            "True",
            "null",
            "~",
            "",
            "1_000",
            "12:30",
            "0x1F",
            "0o17",
            "017",
            "0b101",
            "1e3",
            ".5",
            ".inf",
            "-.Inf",
            ".NaN",
            "2001-12-14",
            "=",
            "<<",
            " x",
            "x ",
            "a: b",
            "a #b",
            "*x",
            "&x",
            "!x",
            "%x",
            "@x",
            "`x",
            "- x",
            "-",
            "?",
            "key:",
            "...",
            "'q'",
            "\"q\"",
            "{a}",
            "[a]",
            "|",
            ">",
        ] {
            assert!(!plain_is_safe(s), "{s:?} written plain");
            // Our parser takes any `<<` key for a merge key, quoted or not.
            let v = if s == "<<" {
                json!({ "k": s })
            } else {
                json!({ s: s })
            };
            assert_eq!(back(&to_string(&v)), v, "{s:?}");
        }
        for s in [
            "guestbook",
            "registry.k8s.io/metrics-server:v0.7.2",
            "10Gi",
            "500m",
            "v1",
            "a:b",
            "a#b",
            "https://example.com/x?y=1#z",
            "héllo wörld",
            "日本語",
            "~/path",
        ] {
            assert!(plain_is_safe(s), "{s:?} quoted");
        }
    }

    #[test]
    fn escapes_and_literal_blocks_round_trip() {
        for s in [
            "tab\there",
            "cr\r\nlf",
            "bell\u{7}",
            "nel\u{85}x",
            "ls\u{2028}x",
            "\u{feff}bom",
            "trailing space \nx",
            "two\n\n",
            "\n",
            "\n\n",
            "\nleading newline",
            "  \n  ",
            "quote ' and \" and \\",
            "line\n---\n...\n# not a comment\n",
            " lead\n  more\n",
            "a\n\n\nb",
        ] {
            let v = json!({"k": s, s: [s]});
            let text = to_string(&v);
            assert_eq!(back(&text), v, "{s:?}\n{text}");
        }
        assert_eq!(to_string(&json!("a\nb")), "|-\n  a\n  b\n");
    }

    #[test]
    fn long_keys_are_explicit() {
        let long = "k".repeat(1500);
        let v = json!({ long.clone(): {"a": 1}, "x": {long.clone(): ["b"]}, "y": 2 });
        let text = to_string(&v);
        assert!(text.starts_with("? "), "{text}");
        assert_eq!(back(&text), v);
    }

    #[test]
    fn top_level_scalars_and_collections() {
        for v in [
            json!("yes"),
            json!("plain"),
            json!(3),
            json!([]),
            json!({}),
            json!(["a", {"b": []}]),
        ] {
            assert_eq!(back(&to_string(&v)), v, "{}", to_string(&v));
        }
    }
}
