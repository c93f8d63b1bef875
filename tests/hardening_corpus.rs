//! The bad-input corpus: every way a user's repository can be wrong that the
//! hostile probe tried (and more), each run through `kubesync render` as a
//! user would. Every case must end with a clear error — exit 1 (that app
//! failed) or 2 (configuration error), a message naming the file or app and
//! saying what is wrong — never a panic, a hang or a silent success. The
//! test prints the tally (`corpus: N cases: N clear errors, 0 wrongly
//! accepted, 0 panics, 0 unclear`).
//!
//! Data loss (prune after a bad render) is covered against the emulator in
//! `hardening_sync.rs`; here nothing touches a cluster.

mod sync_support;

use std::process::Command;
use std::time::{Duration, Instant};

use sync_support::{path_with_helm, Repo};

/// One bad input: files written over a fresh repository (whose `root.yaml`
/// renders `apps/*.yaml`), the exit code expected, and what the message
/// must contain.
struct Case {
    name: &'static str,
    files: Vec<(&'static str, String)>,
    exit: i32,
    says: Vec<&'static str>,
}

fn case(
    name: &'static str,
    files: &[(&'static str, &str)],
    exit: i32,
    says: &[&'static str],
) -> Case {
    Case {
        name,
        files: files.iter().map(|(p, t)| (*p, t.to_string())).collect(),
        exit,
        says: says.to_vec(),
    }
}

const APP: &str = "apiVersion: kubesync.dev/v1alpha1\nkind: Application\nmetadata: {name: web}\nspec:\n  source: {path: objects/web}\n  destination: {namespace: web}\n";
const CM: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ok}\ndata: {k: v}\n";

/// The app `web` with `spec` lines appended (two-space indented).
fn app_with(extra: &str) -> String {
    format!("{APP}{extra}")
}

/// The app `web` with its `source` replaced.
fn app_source(source: &str) -> String {
    APP.replace(
        "  source: {path: objects/web}\n",
        &format!("  source: {source}\n"),
    )
}

fn argo(spec: &str) -> String {
    format!("apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {{name: web}}\nspec: {spec}\n")
}

fn corpus() -> Vec<Case> {
    let deep = format!("a: {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
    let web = ("apps/web.yaml", APP);
    let ok = ("objects/web/ok.yaml", CM);
    vec![
        // YAML that is not YAML, or more than kubesync accepts.
        case("unclosed flow sequence", &[web, ("objects/web/x.yaml", "a: [1, 2\n")], 1, &["objects/web/x.yaml", "invalid YAML at line"]),
        case("tab indentation", &[web, ("objects/web/x.yaml", "a:\n\tb: 1\n")], 1, &["objects/web/x.yaml", "invalid YAML"]),
        case("duplicate key in an object", &[web, ("objects/web/x.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {k: 1}\ndata: {k: 2}\n")], 1, &["objects/web/x.yaml", "duplicate key \"data\""]),
        case("duplicate source in an Application", &[("apps/web.yaml", &format!("{APP}  source: {{path: objects/other}}\n")), ok], 1, &["apps/web.yaml", "line 7", "duplicate key \"source\""]),
        case("custom YAML tag", &[web, ("objects/web/x.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {k: !custom v}\n")], 1, &["objects/web/x.yaml", "YAML tag !custom", "data.k"]),
        case("100,000 levels of nesting", &[web, ("objects/web/x.yaml", &deep)], 1, &["objects/web/x.yaml", "nesting deeper than 256 levels"]),
        case("merge key on a scalar", &[web, ("objects/web/x.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, <<: 5}\n")], 1, &["objects/web/x.yaml", "merge key"]),
        case("invalid UTF-8", &[web, ("objects/web/x.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: \u{FFFD}\n")], 1, &["objects/web/x.yaml"]),
        case("unclosed quote", &[web, ("objects/web/x.yaml", "a: \"open\n")], 1, &["objects/web/x.yaml", "invalid YAML"]),
        case("JSON syntax error", &[web, ("objects/web/x.json", "{\"apiVersion\": \"v1\",}")], 1, &["objects/web/x.json"]),
        // Documents that look like objects but are not valid ones.
        case("Kind: instead of kind:", &[web, ("objects/web/x.yaml", "apiVersion: v1\nKind: ConfigMap\nmetadata: {name: a}\n")], 1, &["objects/web/x.yaml", "kind is missing (found \"Kind\""]),
        case("apiVersion: 5", &[web, ("objects/web/x.yaml", "apiVersion: 5\nkind: ConfigMap\nmetadata: {name: a}\n")], 1, &["objects/web/x.yaml", "apiVersion must be a string, found a number"]),
        case("kind: {a: b}", &[web, ("objects/web/x.yaml", "apiVersion: v1\nkind: {a: b}\nmetadata: {name: a}\n")], 1, &["kind must be a string, found a mapping"]),
        case("metadata: [a]", &[web, ("objects/web/x.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: [a]\n")], 1, &["metadata must be a mapping, found a sequence"]),
        case("metadata.name: 12345", &[web, ("objects/web/x.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: 12345}\n")], 1, &["metadata.name must be a string, found a number"]),
        case("metadata.name: [a]", &[web, ("objects/web/x.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: [a]}\n")], 1, &["metadata.name must be a string, found a sequence"]),
        case("no metadata.name", &[web, ("objects/web/x.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n")], 1, &["objects/web/x.yaml", "ConfigMap has no metadata.name"]),
        case("metadata.namespace: 42", &[web, ("objects/web/x.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: 42}\n")], 1, &["metadata.namespace must be a string, found a number"]),
        case("metadata.labels: 5", &[web, ("objects/web/x.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, labels: 5}\n")], 1, &["metadata.labels must be a mapping of strings, found a number"]),
        case("a label value that is a number", &[web, ("objects/web/x.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, labels: {tier: 1}}\n")], 1, &["metadata.labels.tier must be a string, found a number"]),
        case("a values file among the manifests", &[web, ("objects/web/values.yaml", "replicaCount: 3\n")], 1, &["objects/web/values.yaml", "neither apiVersion nor kind"]),
        case("a scalar document", &[web, ("objects/web/x.yaml", "just text\n")], 1, &["the document is a string, not a mapping"]),
        case("a list document", &[web, ("objects/web/x.yaml", "- 1\n- 2\n")], 1, &["the document is a sequence, not a mapping"]),
        case("a List with a bad item", &[web, ("objects/web/x.yaml", "apiVersion: v1\nkind: List\nitems:\n- {kind: ConfigMap, metadata: {name: a}}\n")], 1, &["objects/web/x.yaml", "apiVersion is missing"]),
        // Application manifests.
        case("a typo in a spec field", &[("apps/web.yaml", &app_with("  dependOn: [db]\n")), ok], 2, &["apps/web.yaml", "dependOn"]),
        case("an unknown tier", &[("apps/web.yaml", &app_with("  tier: root\n")), ok], 2, &["apps/web.yaml", "spec.tier", "\"root\" is not a tier"]),
        case("a huge wait timeout", &[("apps/web.yaml", &app_with("  syncPolicy: {wait: {timeout: 99999999999999999999h}}\n")), ok], 2, &["apps/web.yaml", "spec.syncPolicy.wait.timeout", "too large (at most 24h)"]),
        case("a negative wait timeout", &[("apps/web.yaml", &app_with("  syncPolicy: {wait: {timeout: -5s}}\n")), ok], 2, &["spec.syncPolicy.wait.timeout"]),
        case("a wait timeout that is not a duration", &[("apps/web.yaml", &app_with("  syncPolicy: {wait: {timeout: soon}}\n")), ok], 2, &["spec.syncPolicy.wait.timeout", "\"soon\""]),
        case("a huge transform timeout", &[("apps/web.yaml", &app_source("{path: objects/web, transform: {command: [./t.sh], timeout: 25h}}")), ok], 2, &["spec.source.transform.timeout", "too large"]),
        case("an Application with null metadata", &[("apps/web.yaml", "apiVersion: kubesync.dev/v1alpha1\nkind: Application\nmetadata: null\nspec:\n  source: {path: objects/web}\n"), ok], 2, &["apps/web.yaml", "metadata.name"]),
        case("an Application with an uppercase name", &[("apps/web.yaml", &APP.replace("name: web", "name: Web")), ok], 2, &["apps/web.yaml", "\"Web\"", "DNS-1123"]),
        case("an Application name that is a number", &[("apps/web.yaml", &APP.replace("name: web", "name: 12345")), ok], 2, &["apps/web.yaml", "metadata.name", "must be a string, found a number"]),
        case("an Application without spec", &[("apps/web.yaml", "apiVersion: kubesync.dev/v1alpha1\nkind: Application\nmetadata: {name: web}\n"), ok], 2, &["apps/web.yaml", "spec"]),
        case("an unknown Application version", &[("apps/web.yaml", &APP.replace("v1alpha1", "v9")), ok], 2, &["apps/web.yaml", "kubesync.dev/v9"]),
        case("a self dependency", &[("apps/web.yaml", &app_with("  dependsOn: [web]\n")), ok], 2, &["apps/web.yaml", "depends on itself"]),
        case("an unknown dependency", &[("apps/web.yaml", &app_with("  dependsOn: [wbe-db]\n")), ok], 2, &["web", "wbe-db"]),
        case("a dependency cycle", &[("apps/web.yaml", &app_with("  dependsOn: [db]\n")), ("apps/db.yaml", &app_with("  dependsOn: [web]\n").replace("name: web", "name: db")), ok], 2, &["cycle", "web", "db"]),
        case("a duplicate application name", &[web, ("apps/web2.yaml", APP), ok], 2, &["\"web\"", "apps/web2.yaml"]),
        case("a source path with ..", &[("apps/web.yaml", &app_source("{path: ../outside}")), ok], 2, &["apps/web.yaml", "spec.source.path", "\"..\""]),
        case("an absolute source path", &[("apps/web.yaml", &app_source("{path: /etc}")), ok], 2, &["apps/web.yaml", "spec.source.path"]),
        case("a source path that does not exist", &[("apps/web.yaml", &app_source("{path: objects/nope}"))], 1, &["web", "objects/nope"]),
        case("a child that asks for more power than its parent", &[("apps/web.yaml", &app_with("  tier: app\n").replace("path: objects/web", "path: children")), ("children/sys.yaml", &APP.replace("name: web", "name: sys").replace("  source:", "  tier: system\n  source:")), ok], 2, &["sys", "asks for tier system", "parent \"web\" is tier app"]),
        // Argo CD Applications.
        case("an Argo CD spec that is a list", &[("apps/web.yaml", &argo("[1, 2]"))], 2, &["apps/web.yaml", "spec: must be a mapping, found a sequence"]),
        case("an Argo CD config-management plugin", &[("apps/web.yaml", &argo("{project: default, source: {repoURL: '', path: objects/web, plugin: {name: cmp}}, destination: {namespace: web}}")), ok], 1, &["web", "plugin"]),
        case("a plugin on an unreachable repository", &[("apps/web.yaml", &argo("{project: default, source: {repoURL: 'https://127.0.0.1:9/org/repo.git', path: x, plugin: {name: cmp}}, destination: {namespace: web}}"))], 1, &["web", "config management plugins", "use a transform command"]),
        case("an unreachable repository", &[("apps/web.yaml", &app_source("{repoURL: 'https://user:s3cret@127.0.0.1:9/org/repo.git', path: objects/web}"))], 1, &["web", "127.0.0.1:9"]),
        // Renderers.
        case("a helm value file that does not exist", &[("apps/web.yaml", &app_source("{path: objects/chart, helm: {valueFiles: [missing.yaml]}}")), ("objects/chart/Chart.yaml", "apiVersion: v2\nname: c\nversion: 0.1.0\n")], 1, &["web", "missing.yaml"]),
        case("an absolute helm value file", &[("apps/web.yaml", &app_source("{path: objects/chart, helm: {valueFiles: [/etc/hostname]}}")), ("objects/chart/Chart.yaml", "apiVersion: v2\nname: c\nversion: 0.1.0\n")], 1, &["web", "absolute paths are not allowed"]),
        case("a kustomization leaving the repository", &[("apps/web.yaml", &app_source("{path: objects/k}")), ("objects/k/kustomization.yaml", "resources: [../../../../outside]\n")], 1, &["web", "objects/k/kustomization.yaml", "outside the repository"]),
        case("an undefined jinja variable", &[("apps/web.yaml", &app_source("{path: objects/j}")), ("objects/j/cm.yaml.j2", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: {{ nope }}}\n")], 1, &["objects/j/cm.yaml.j2", "undefined"]),
        case("a jinja syntax error", &[("apps/web.yaml", &app_source("{path: objects/j}")), ("objects/j/cm.yaml.j2", "{% if %}\n")], 1, &["objects/j/cm.yaml.j2"]),
        case("a runaway jinja template", &[("apps/web.yaml", &app_source("{path: objects/j}")), ("objects/j/cm.yaml.j2", "{% for a in range(100000) %}{% for b in range(100000) %}x{% endfor %}{% endfor %}\n")], 1, &["objects/j/cm.yaml.j2", "ran out of fuel"]),
        case("a transform that fails", &[("apps/web.yaml", &app_source("{path: objects/t, transform: {command: [sh, -c, 'echo broken >&2; exit 3']}}")), ("objects/t/in.txt", "x")], 1, &["web", "broken"]),
        case("a transform that is not on PATH", &[("apps/web.yaml", &app_source("{path: objects/t, transform: {command: [no-such-tool-kubesync]}}")), ("objects/t/in.txt", "x")], 1, &["web", "no-such-tool-kubesync"]),
        case("a transform that writes bad YAML", &[("apps/web.yaml", &app_source("{path: objects/t, transform: {command: [sh, -c, 'echo \"a: [\" > $OUTDIR/o.yaml']}}")), ("objects/t/in.txt", "x")], 1, &["web", "transform:o.yaml", "invalid YAML"]),
        case("a transform that hangs", &[("apps/web.yaml", &app_source("{path: objects/t, transform: {command: [sleep, '30'], timeout: 1s}}")), ("objects/t/in.txt", "x")], 1, &["web", "did not finish within 1s and was killed"]),
        case("a bad include glob", &[("apps/web.yaml", &app_source("{path: objects/web, directory: {include: '[a'}}")), ok], 2, &["web", "include"]),
    ]
}

/// How one case ended.
#[derive(Debug, PartialEq)]
enum Verdict {
    Clear,
    WronglyAccepted,
    Panic,
    Unclear(String),
}

#[test]
fn every_bad_input_gets_a_clear_error() {
    let cases = corpus();
    let mut tally: Vec<(&str, Verdict, String)> = Vec::new();
    for c in &cases {
        let repo = Repo::new();
        for (path, text) in &c.files {
            repo.write(path, text);
        }
        if c.name == "invalid UTF-8" {
            std::fs::write(
                repo.path().join("objects/web/x.yaml"),
                b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: \xff\xfe}\n",
            )
            .unwrap();
        }
        if c.name == "a kustomization leaving the repository" {
            std::fs::create_dir_all(repo.path().join("../outside")).ok();
        }
        let started = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_kubesync"))
            .args(["--root", "root.yaml", "render"])
            .current_dir(repo.path())
            .env("PATH", path_with_helm())
            .output()
            .expect("run kubesync");
        let took = started.elapsed();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let verdict = match out.status.code() {
            None | Some(101) => Verdict::Panic,
            Some(0) => Verdict::WronglyAccepted,
            Some(code) => {
                let missing: Vec<&&str> = c.says.iter().filter(|s| !stderr.contains(**s)).collect();
                if code != c.exit {
                    Verdict::Unclear(format!("exit {code}, expected {}", c.exit))
                } else if !missing.is_empty() {
                    Verdict::Unclear(format!("message lacks {missing:?}"))
                } else if !stdout.trim().is_empty() {
                    Verdict::Unclear("printed a partial render".into())
                } else if stderr.contains("s3cret") {
                    Verdict::Unclear("leaked a credential".into())
                } else if took > Duration::from_secs(20) {
                    Verdict::Unclear(format!("took {took:?}"))
                } else {
                    Verdict::Clear
                }
            }
        };
        tally.push((c.name, verdict, stderr));
    }
    let count = |f: &dyn Fn(&Verdict) -> bool| tally.iter().filter(|(_, v, _)| f(v)).count();
    let clear = count(&|v| *v == Verdict::Clear);
    let accepted = count(&|v| *v == Verdict::WronglyAccepted);
    let panics = count(&|v| *v == Verdict::Panic);
    let unclear = count(&|v| matches!(v, Verdict::Unclear(_)));
    // Past the harness's capture, so CI's log shows the figure.
    use std::io::Write as _;
    let _ = writeln!(
        std::io::stderr(),
        "corpus: {} cases: {clear} clear errors, {accepted} wrongly accepted, {panics} panics, {unclear} unclear",
        tally.len()
    );
    let bad: Vec<String> = tally
        .iter()
        .filter(|(_, v, _)| *v != Verdict::Clear)
        .map(|(name, v, stderr)| format!("{name}: {v:?}\n{stderr}"))
        .collect();
    assert!(bad.is_empty(), "{}", bad.join("\n---\n"));
}
