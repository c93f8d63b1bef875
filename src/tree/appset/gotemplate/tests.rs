//! Table tests of the Go template evaluator (Go's documented behaviour).

use super::*;
use serde_json::json;

fn data() -> Value {
    json!({
        "path": {"path": "apps/my_app", "basename": "my_app", "segments": ["apps", "my_app"]},
        "name": "Guestbook",
        "cluster": {"name": "dev", "labels": {"env": "staging"}},
        "replicas": 3,
        "list": ["a", "b"],
        "empty": ""
    })
}

#[test]
fn table() {
    let cases: &[(&str, &str)] = &[
        ("{{.path.basename}}", "my_app"),
        ("{{ .path.path }}-x", "apps/my_app-x"),
        ("{{index .path.segments 1}}", "my_app"),
        ("{{ index .cluster.labels \"env\" }}", "staging"),
        ("{{.path.basename | normalize}}", "my-app"),
        ("{{normalize .path.basename}}", "my-app"),
        ("{{ .name | lower }}", "guestbook"),
        ("{{ upper .name }}", "GUESTBOOK"),
        ("{{ replace \"_\" \"-\" .path.basename }}", "my-app"),
        ("{{ .empty | default \"fallback\" }}", "fallback"),
        ("{{ default \"x\" .name }}", "Guestbook"),
        ("{{ trunc 3 .name }}", "Gue"),
        ("{{ trunc -4 .name }}", "book"),
        ("{{ quote .name }}", "\"Guestbook\""),
        ("{{ printf \"%s-%d\" .cluster.name .replicas }}", "dev-3"),
        ("{{ printf \"%03d\" 7 }}", "007"),
        ("{{ join \",\" .list }}", "a,b"),
        (
            "{{ join \"/\" (splitList \"/\" .path.path) }}",
            "apps/my_app",
        ),
        ("{{ (splitList \"/\" .path.path) | last }}", "my_app"),
        (
            "{{ if eq .cluster.name \"dev\" }}yes{{ else }}no{{ end }}",
            "yes",
        ),
        (
            "{{ if eq .cluster.name \"prod\" }}p{{ else if eq .cluster.name \"dev\" }}d{{ end }}",
            "d",
        ),
        (
            "{{ range $i, $v := .list }}{{$i}}={{$v}};{{ end }}",
            "0=a;1=b;",
        ),
        ("{{ range .list }}[{{.}}]{{ else }}none{{ end }}", "[a][b]"),
        ("{{ with .cluster }}{{ .name }}{{ end }}", "dev"),
        (
            "{{ $n := .cluster.name }}{{ $n }}-{{ $.name }}",
            "dev-Guestbook",
        ),
        ("a  {{- \" b \" -}}  c", "a b c"),
        ("{{/* comment */}}x", "x"),
        ("{{ toYaml .cluster.labels }}", "env: staging"),
        ("{{ .cluster.labels | toJson }}", "{\"env\":\"staging\"}"),
        ("{{ slugify 10 true \"Hello World Again\" }}", "hello"),
        ("{{ .missing }}", "<no value>"),
        ("{{ len .list }}", "2"),
        ("{{ and .name .empty }}|{{ or .empty .name }}", "|Guestbook"),
        ("{{ if not .empty }}t{{ end }}", "t"),
        ("{{ hasPrefix \"app\" .path.path }}", "true"),
        ("{{ .cluster }}", "map[labels:map[env:staging] name:dev]"),
        ("{{ ternary \"a\" \"b\" true }}", "a"),
        ("{{ dict \"k\" \"v\" | toJson }}", "{\"k\":\"v\"}"),
        ("{{ trimSuffix \"_app\" .path.basename }}", "my"),
        ("{{ gt .replicas 2 }}", "true"),
        ("{{ (index .path.segments 0) | upper }}", "APPS"),
    ];
    for (src, want) in cases {
        let got =
            render(src, &data(), MissingKey::Default).unwrap_or_else(|e| panic!("{src}: {e}"));
        assert_eq!(&got, want, "{src}");
    }
}

#[test]
fn missingkey_error_names_the_key_and_action() {
    let e = render("{{ .path.nope }}", &data(), MissingKey::Error).unwrap_err();
    assert_eq!(e.0, "at <.path.nope>: map has no entry for key \"nope\"");
    // Default mode: a missing key prints <no value>; deeper is Go's nil error.
    let e = render("{{ .nope.deeper }}", &data(), MissingKey::Default).unwrap_err();
    assert!(
        e.0.contains("nil pointer evaluating interface {}.deeper"),
        "{e}"
    );
}

#[test]
fn parse_errors() {
    for (src, want) in [
        ("{{ if .x }}a", "has no {{end}}"),
        ("{{ .x ", "unclosed action"),
        ("{{ nosuch .x }}", "function \"nosuch\" not defined"),
        ("{{ end }}", "unexpected {{end}}"),
        ("{{ template \"x\" }}", "not supported"),
        ("{{ env \"HOME\" }}", "removed by Argo CD"),
        ("{{ \"x }}", "unclosed action"),
        ("{{ range 1000000000 }}x{{ end }}", "can't iterate"),
        (
            "{{ range 100000 }}{{ repeat 1000 \"x\" }}{{ end }}",
            "larger than",
        ),
    ] {
        let e = render(src, &data(), MissingKey::Default).unwrap_err();
        assert!(e.0.contains(want), "{src}: {e}");
    }
}

#[test]
fn normalize_matches_argo() {
    assert_eq!(normalize("directory_2"), "directory-2");
    assert_eq!(normalize("My.App_"), "my.app");
    assert_eq!(normalize("--x--"), "x");
}
