//! `kubesync render` output read back as written: a corpus of strings that a
//! YAML 1.1 or 1.2 parser could take for something else (booleans, nulls,
//! numbers, timestamps, indicators, whitespace, line breaks, unicode), placed
//! in a ConfigMap's data, labels and annotation keys, rendered by the binary
//! and parsed back by kubesync's own parser and by `kubectl apply
//! --dry-run=client` against the emulator. Every value must come back as the
//! same string.

mod support;
mod sync_support;

use std::process::Command;

use serde_json::{json, Map, Value};
use support::{start, Kubectl};
use sync_support::{text, Repo};

/// Strings that must survive `render | kubectl apply -f -` unchanged.
const CORPUS: &[&str] = &[
    // YAML 1.1 booleans, in every case YAML 1.1 knows and some it does not.
    "y",
    "Y",
    "yes",
    "Yes",
    "YES",
    "yEs",
    "n",
    "N",
    "no",
    "No",
    "NO",
    "true",
    "True",
    "TRUE",
    "tRUE",
    "false",
    "False",
    "FALSE",
    "on",
    "On",
    "ON",
    "off",
    "Off",
    "OFF",
    // Nulls.
    "null",
    "Null",
    "NULL",
    "~",
    "",
    // Integers: octal (1.1 and 1.2), hex, binary, separators, signs, sexagesimal.
    "017",
    "0o17",
    "0x1F",
    "0X1f",
    "0b1010",
    "1_000",
    "+12",
    "-12",
    "12:30",
    "190:20:30",
    "-1:30",
    "8080",
    // Floats.
    "1e3",
    "1E3",
    "1.5",
    ".5",
    "1.",
    "6.8523015e+5",
    "685.230_15e+03",
    ".inf",
    "-.inf",
    "+.INF",
    ".Inf",
    ".nan",
    ".NaN",
    "NaN",
    "inf",
    // Timestamps.
    "2001-12-14",
    "2001-12-14t21:59:43.10-05:00",
    "2001-12-14 21:59:43.10 -5",
    "2001-12-15T02:59:43.1Z",
    // YAML 1.1 value and merge keys.
    "=",
    "<<",
    // Whitespace at the ends.
    " lead",
    "trail ",
    " both ",
    "  ",
    // Indicators and comments.
    "a: b",
    "a #b",
    "*alias",
    "&anchor",
    "!tag",
    "!!str",
    "%dir",
    "@at",
    "`tick",
    "- item",
    "-",
    "? q",
    ":x",
    "[a]",
    "{a: b}",
    "|",
    ">",
    "'single'",
    "\"double\"",
    "#comment",
    "a,b",
    "key:",
    "---",
    "...",
    "--- x",
    // Line breaks, tabs, control characters.
    "line1\nline2\n",
    "line1\nline2",
    "  indented\nx\n",
    "a\n\n\nb",
    "trailing \nspace",
    "\n",
    "two\n\n",
    "tab\there",
    "cr\r\nlf",
    "bell\u{7}",
    "nel\u{85}x",
    "ls\u{2028}ps\u{2029}",
    // Unicode.
    "héllo wörld",
    "日本語",
    "emoji 🎉",
    "\u{feff}bom",
    "nbsp\u{a0}",
    "ünïcode: ✓",
    // Plain strings that must stay strings (and stay readable).
    "10Gi",
    "500m",
    "v1.2.3",
    "1.2.3",
    "https://example.com/x?y=1#frag",
    "guestbook",
];

/// The ConfigMap holding the corpus: data values `kNNN`, label values
/// `lNNN`, and every string as an annotation key.
fn configmap() -> Value {
    let mut data = Map::new();
    let mut labels = Map::new();
    let mut annotations = Map::new();
    for (i, s) in CORPUS.iter().enumerate() {
        data.insert(format!("k{i:03}"), json!(s));
        labels.insert(format!("l{i:03}"), json!(s));
        // Our parser takes any `<<` key for a merge key, quoted or not.
        if *s != "<<" {
            annotations.insert(s.to_string(), json!(format!("key {i}")));
        }
    }
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "corpus",
            "namespace": "default",
            "labels": labels,
            "annotations": annotations,
        },
        "data": data,
    })
}

fn render(repo: &Repo) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_kubesync"))
        .arg("--root")
        .arg(repo.root())
        .args(["render", "corpus"])
        .output()
        .expect("run kubesync");
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Asserts `got` holds the corpus exactly as `want` does.
fn assert_same(got: &Value, want: &Value, by: &str) {
    for (field, prefix) in [("/data", "k"), ("/metadata/labels", "l")] {
        for (i, s) in CORPUS.iter().enumerate() {
            let key = format!("{prefix}{i:03}");
            let back = got.pointer(&format!("{field}/{key}"));
            assert_eq!(back, Some(&json!(s)), "{by}: {field}.{key}: {s:?}");
        }
    }
    let annotations = got
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .unwrap_or_else(|| panic!("{by}: no annotations in {got}"));
    for (key, value) in want["metadata"]["annotations"]
        .as_object()
        .expect("annotations")
    {
        assert_eq!(
            annotations.get(key),
            Some(value),
            "{by}: annotation key {key:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn rendered_strings_read_back_unchanged_by_kubesync_and_kubectl() {
    assert!(CORPUS.len() >= 40);
    let repo = Repo::new();
    repo.app("corpus", "");
    let cm = configmap();
    repo.write(
        "objects/corpus/cm.json",
        &serde_json::to_string_pretty(&cm).expect("json"),
    );
    let yaml = tokio::task::spawn_blocking(move || render(&repo))
        .await
        .expect("join");

    // (a) kubesync's own parser.
    let docs = kubesync::model::yaml::documents(&yaml).expect("render output parses");
    let objects: Vec<&Value> = docs.iter().map(|(_, v)| v).collect();
    assert_eq!(objects.len(), 1, "{yaml}");
    assert_same(objects[0], &cm, "kubesync");

    // (b) kubectl: a client-side dry run against the emulator.
    let emu = start().await;
    let Some(k) = Kubectl::new(&emu) else { return };
    let file = k.file("rendered.yaml", &yaml);
    let out = k
        .ok(&["apply", "--dry-run=client", "-o", "json", "-f", &file])
        .await;
    let applied: Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("kubectl JSON ({e}):\n{out}"));
    assert_same(&applied, &cm, "kubectl");

    // Readable: plain where plain is safe, literal blocks for multi-line text.
    assert!(yaml.contains(": 10Gi\n"), "{yaml}");
    assert!(yaml.contains(": 'yes'\n"), "{yaml}");
    assert!(yaml.contains(": |\n"), "{yaml}");
}
