//! Table tests of the generators and templates, with Argo CD's documented
//! examples where they exist.

use std::path::Path;
use std::sync::Arc;

use serde_json::{json, Value};

use super::*;
use crate::model::{AppName, AppSetSpec, ApplicationsSync, Flavor, ObjectOrigin, RevisionSpec};
use crate::source::{Checkout, Revision};

/// A repository on disk, read as a work tree.
struct DirRepo(std::path::PathBuf);

impl Repos for DirRepo {
    fn checkout(
        &self,
        repo: Option<&str>,
        _revision: Option<&RevisionSpec>,
    ) -> Result<Arc<Checkout>, String> {
        if let Some(r) = repo.filter(|r| r.contains("unreachable")) {
            return Err(format!("cannot reach {r}"));
        }
        Ok(Arc::new(Checkout::new("test", &self.0, Revision::WorkTree)))
    }
}

fn write(dir: &Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// The layout of Argo CD's git generator examples.
fn repo() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    write(
        p,
        "cluster-addons/argo-workflows/kustomization.yaml",
        "resources: []\n",
    );
    write(
        p,
        "cluster-addons/prometheus-operator/Chart.yaml",
        "name: x\n",
    );
    write(p, "cluster-addons/exclude_me/a.yaml", "x: 1\n");
    write(p, "cluster-addons/.hidden/a.yaml", "x: 1\n");
    write(
        p,
        "cluster-config/engineering/dev/config.json",
        r#"{"aws_account": "123456", "asset_id": "11223344", "cluster": {"owner": "cluster-admin@company.com", "name": "engineering-dev", "address": "https://1.2.3.4"}}"#,
    );
    write(
        p,
        "cluster-config/engineering/prod/config.json",
        r#"{"aws_account": "123456", "asset_id": "11223344", "cluster": {"owner": "cluster-admin@company.com", "name": "engineering-prod", "address": "https://2.4.6.8"}}"#,
    );
    write(
        p,
        "lists/envs.yaml",
        "- env: dev\n  replicas: 1\n- env: prod\n  replicas: 3\n",
    );
    d
}

struct Case {
    generators: Value,
    template: Value,
    go: bool,
    missing_error: bool,
    patch: Option<&'static str>,
    rolling_sync: Option<Vec<Value>>,
}

impl Case {
    fn new(generators: Value, template: Value) -> Self {
        Case {
            generators,
            template,
            go: false,
            missing_error: false,
            patch: None,
            rolling_sync: None,
        }
    }

    fn go(mut self) -> Self {
        self.go = true;
        self
    }

    fn run_with(&self, dir: &Path, env: &GeneratorEnv) -> Result<Generated, AppSetError> {
        let spec = AppSetSpec {
            generates: Flavor::ArgoCd,
            generators: self.generators.as_array().cloned().unwrap(),
            template: Some(self.template.clone()),
            template_patch: self.patch.map(String::from),
            go_template: self.go,
            missing_key_error: self.missing_error,
            applications_sync: ApplicationsSync::Sync,
            preserve_resources_on_deletion: false,
            rolling_sync: self.rolling_sync.clone(),
        };
        let name = AppName::new("my-set").unwrap();
        let origin = ObjectOrigin {
            file: "set.yaml".into(),
            doc: 0,
        };
        let repos = DirRepo(dir.to_path_buf());
        generate(&SetContext {
            name: &name,
            spec: &spec,
            origin: &origin,
            env,
            repos: &repos,
            repo: None,
            revision: None,
        })
    }

    fn run(&self, dir: &Path) -> Result<Generated, AppSetError> {
        self.run_with(dir, &GeneratorEnv::default())
    }

    /// `(metadata.name, spec.source.path or "", destination.namespace or "")`.
    fn apps(&self, dir: &Path) -> Vec<(String, String, String)> {
        let g = self.run(dir).unwrap_or_else(|e| panic!("{e}"));
        g.manifests
            .iter()
            .map(|m| {
                let s = |p: &str| {
                    m.object
                        .pointer(p)
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string()
                };
                (
                    s("/metadata/name"),
                    s("/spec/source/path"),
                    s("/spec/destination/namespace"),
                )
            })
            .collect()
    }
}

fn triples(v: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
    v.iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect()
}

fn dir_template(name: &str, path: &str, ns: &str) -> Value {
    json!({
        "metadata": {"name": name},
        "spec": {"project": "default", "source": {"repoURL": "https://example.com/r.git", "path": path},
                 "destination": {"server": "https://kubernetes.default.svc", "namespace": ns}}
    })
}

#[test]
fn git_directories_fasttemplate_and_go() {
    let d = repo();
    let gens = json!([{"git": {"repoURL": "", "revision": "HEAD", "directories": [
        {"path": "cluster-addons/*"},
        {"path": "cluster-addons/exclude_me", "exclude": true}
    ]}}]);
    let want = triples(&[
        (
            "argo-workflows",
            "cluster-addons/argo-workflows",
            "argo-workflows",
        ),
        (
            "prometheus-operator",
            "cluster-addons/prometheus-operator",
            "prometheus-operator",
        ),
    ]);
    let fast = Case::new(
        gens.clone(),
        dir_template("{{path.basename}}", "{{path}}", "{{path.basename}}"),
    );
    assert_eq!(fast.apps(d.path()), want);
    let go = Case::new(
        gens,
        dir_template(
            "{{.path.basename}}",
            "{{.path.path}}",
            "{{ index .path.segments 1 }}",
        ),
    )
    .go();
    assert_eq!(go.apps(d.path()), want);
}

#[test]
fn git_directories_path_segments_and_normalized() {
    let d = repo();
    let c = Case::new(
        json!([{"git": {"repoURL": "", "revision": "HEAD", "directories": [{"path": "cluster-addons/exclude_me"}]}}]),
        dir_template(
            "{{path.basenameNormalized}}",
            "{{path[0]}}/{{path[1]}}",
            "{{path.basenameNormalized}}",
        ),
    );
    assert_eq!(
        c.apps(d.path()),
        triples(&[("exclude-me", "cluster-addons/exclude_me", "exclude-me")])
    );
    // Hidden directories are never listed; `*` does not cross `/`.
    let c = Case::new(
        json!([{"git": {"repoURL": "", "revision": "HEAD", "directories": [{"path": "*"}]}}]),
        dir_template("{{path.basenameNormalized}}", "{{path}}", "x"),
    );
    let names: Vec<String> = c.apps(d.path()).into_iter().map(|a| a.0).collect();
    assert_eq!(names, ["cluster-addons", "cluster-config", "lists"]);
}

#[test]
fn git_files_flatten_like_argo_docs() {
    let d = repo();
    let gens = json!([{"git": {"repoURL": "", "revision": "HEAD", "files": [{"path": "cluster-config/**/config.json"}]}}]);
    let fast = Case::new(
        gens.clone(),
        json!({"metadata": {"name": "{{cluster.name}}-guestbook"},
               "spec": {"source": {"path": "{{path}}/{{path.filename}}"},
                        "destination": {"server": "{{cluster.address}}", "namespace": "{{path.basename}}-{{path[1]}}"}}}),
    );
    assert_eq!(
        fast.apps(d.path()),
        triples(&[
            (
                "engineering-dev-guestbook",
                "cluster-config/engineering/dev/config.json",
                "dev-engineering"
            ),
            (
                "engineering-prod-guestbook",
                "cluster-config/engineering/prod/config.json",
                "prod-engineering"
            ),
        ])
    );
    let go = Case::new(
        gens,
        json!({"metadata": {"name": "{{.cluster.name}}-{{.path.filenameNormalized}}"},
               "spec": {"source": {"path": "{{.path.path}}"}, "destination": {"namespace": "{{.aws_account}}"}}}),
    )
    .go();
    assert_eq!(
        go.apps(d.path()),
        triples(&[
            (
                "engineering-dev-config.json",
                "cluster-config/engineering/dev",
                "123456"
            ),
            (
                "engineering-prod-config.json",
                "cluster-config/engineering/prod",
                "123456"
            ),
        ])
    );
    // A file holding a sequence: one parameter set per element.
    let list = Case::new(
        json!([{"git": {"repoURL": "", "revision": "HEAD", "files": [{"path": "lists/*.yaml"}]}}]),
        dir_template("app-{{env}}", "{{path}}", "{{env}}-{{replicas}}"),
    );
    assert_eq!(
        list.apps(d.path()),
        triples(&[
            ("app-dev", "lists", "dev-1"),
            ("app-prod", "lists", "prod-3")
        ])
    );
}

#[test]
fn list_generator_elements_and_elements_yaml() {
    let d = repo();
    let c = Case::new(
        json!([{"list": {"elements": [
            {"cluster": "engineering-dev", "url": "https://1.2.3.4", "values": {"ns": "dev"}},
            {"cluster": "engineering-prod", "url": "https://2.4.6.8", "values": {"ns": "prod"}}
        ]}}]),
        dir_template(
            "{{cluster}}-guestbook",
            "guestbook/{{cluster}}",
            "{{values.ns}}",
        ),
    );
    assert_eq!(
        c.apps(d.path()),
        triples(&[
            (
                "engineering-dev-guestbook",
                "guestbook/engineering-dev",
                "dev"
            ),
            (
                "engineering-prod-guestbook",
                "guestbook/engineering-prod",
                "prod"
            ),
        ])
    );
    let c = Case::new(
        json!([{"list": {"elementsYaml": "- name: a\n  n: 1\n- name: b\n  n: 2\n"}}]),
        dir_template("{{ .name }}-{{ .n }}", "p", "ns"),
    )
    .go();
    assert_eq!(
        c.apps(d.path()),
        triples(&[("a-1", "p", "ns"), ("b-2", "p", "ns")])
    );
}

#[test]
fn clusters_generator_is_the_local_cluster() {
    let d = repo();
    let tmpl = dir_template("{{name}}-app", "p", "{{nameNormalized}}");
    let c = Case::new(json!([{"clusters": {}}]), tmpl.clone());
    assert_eq!(
        c.apps(d.path()),
        triples(&[("in-cluster-app", "p", "in-cluster")])
    );
    let g = c.run(d.path()).unwrap();
    assert_eq!(
        g.manifests[0].object.pointer("/spec/destination/server"),
        Some(&json!("https://kubernetes.default.svc"))
    );
    // A selector: the in-cluster has no labels unless configured.
    let sel = Case::new(
        json!([{"clusters": {"selector": {"matchLabels": {"env": "prod"}}, "values": {"x": "{{name}}"}}}]),
        dir_template("{{name}}-{{values.x}}", "p", "n"),
    );
    assert!(sel.run(d.path()).unwrap().manifests.is_empty());
    let env = GeneratorEnv {
        cluster_name: Some("prod-eu".into()),
        cluster_labels: [("env".to_string(), "prod".to_string())].into(),
        managed_namespaces: None,
    };
    let g = sel.run_with(d.path(), &env).unwrap();
    assert_eq!(
        g.manifests[0].object["metadata"]["name"],
        json!("prod-eu-prod-eu")
    );
    let exprs = Case::new(
        json!([{"clusters": {"selector": {"matchExpressions": [{"key": "env", "operator": "In", "values": ["prod", "staging"]}]}}}]),
        dir_template("{{.metadata.labels.env}}", "p", "n"),
    )
    .go();
    assert_eq!(exprs.run_with(d.path(), &env).unwrap().manifests.len(), 1);
}

#[test]
fn matrix_git_directories_times_list() {
    let d = repo();
    let gens = json!([{"matrix": {"generators": [
        {"git": {"repoURL": "", "revision": "HEAD", "directories": [{"path": "cluster-addons/*"}, {"path": "cluster-addons/exclude_me", "exclude": true}]}},
        {"list": {"elements": [{"env": "dev"}, {"env": "prod", "suffix": "{{path.basename}}"}]}}
    ]}}]);
    let c = Case::new(
        gens,
        dir_template("{{path.basename}}-{{env}}", "{{path}}", "{{env}}{{suffix}}"),
    );
    assert_eq!(
        c.apps(d.path()),
        triples(&[
            (
                "argo-workflows-dev",
                "cluster-addons/argo-workflows",
                "dev{{suffix}}"
            ),
            (
                "argo-workflows-prod",
                "cluster-addons/argo-workflows",
                "prodargo-workflows"
            ),
            (
                "prometheus-operator-dev",
                "cluster-addons/prometheus-operator",
                "dev{{suffix}}"
            ),
            (
                "prometheus-operator-prod",
                "cluster-addons/prometheus-operator",
                "prodprometheus-operator"
            ),
        ])
    );
    // Go templates: the second generator's spec uses the first's parameters.
    let gens = json!([{"matrix": {"generators": [
        {"list": {"elements": [{"dir": "cluster-config/engineering"}]}},
        {"git": {"repoURL": "", "revision": "HEAD", "files": [{"path": "{{.dir}}/*/config.json"}]}}
    ]}}]);
    let c = Case::new(
        gens,
        dir_template("{{.cluster.name}}", "{{.dir}}", "{{.path.basename}}"),
    )
    .go();
    assert_eq!(
        c.apps(d.path()),
        triples(&[
            ("engineering-dev", "cluster-config/engineering", "dev"),
            ("engineering-prod", "cluster-config/engineering", "prod"),
        ])
    );
    // Conflicting keys (fasttemplate) are an error naming the matrix.
    let c = Case::new(
        json!([{"matrix": {"generators": [{"list": {"elements": [{"a": "1"}]}}, {"list": {"elements": [{"a": "2"}]}}]}}]),
        dir_template("x", "p", "n"),
    );
    let e = c.run(d.path()).unwrap_err();
    assert_eq!(e.at, "spec.generators[0].matrix");
    assert!(e.message.contains("duplicate key \"a\""), "{e}");
    let c = Case::new(
        json!([{"matrix": {"generators": [{"list": {"elements": []}}]}}]),
        dir_template("x", "p", "n"),
    );
    assert!(c.run(d.path()).unwrap_err().message.contains("exactly two"));
}

#[test]
fn merge_overrides_by_merge_keys() {
    let d = repo();
    // Argo CD's documented merge example, reduced to list generators.
    let gens = json!([{"merge": {"mergeKeys": ["server"], "generators": [
        {"list": {"elements": [{"server": "a", "kafka": "true", "redis": "false"}, {"server": "b", "kafka": "true", "redis": "false"}]}},
        {"list": {"elements": [{"server": "b", "redis": "true"}, {"server": "zz", "redis": "true"}]}}
    ]}}]);
    let c = Case::new(
        gens.clone(),
        dir_template("{{server}}", "{{kafka}}", "{{redis}}"),
    );
    assert_eq!(
        c.apps(d.path()),
        triples(&[("a", "true", "false"), ("b", "true", "true")])
    );
    let go = Case::new(
        gens,
        dir_template("{{.server}}", "{{.kafka}}", "{{.redis}}"),
    )
    .go();
    assert_eq!(
        go.apps(d.path()),
        triples(&[("a", "true", "false"), ("b", "true", "true")])
    );
    let dup = Case::new(
        json!([{"merge": {"mergeKeys": ["k"], "generators": [
            {"list": {"elements": [{"k": "1"}, {"k": "1"}]}}, {"list": {"elements": []}}]}}]),
        dir_template("x", "p", "n"),
    );
    let err = dup.run(d.path()).unwrap_err();
    assert!(err.message.contains("same merge keys (k)"), "{err:?}");
    assert!(err.at.ends_with("merge.generators[0]"), "{err:?}");
    // In a later generator too, named.
    let dup_later = Case::new(
        json!([{"merge": {"mergeKeys": ["k"], "generators": [
            {"list": {"elements": [{"k": "1"}]}},
            {"list": {"elements": [{"k": "2"}, {"k": "2"}]}}]}}]),
        dir_template("x", "p", "n"),
    );
    let err = dup_later.run(d.path()).unwrap_err();
    assert!(err.message.contains("same merge keys (k)"), "{err:?}");
    assert!(err.at.ends_with("merge.generators[1]"), "{err:?}");
}

#[test]
fn matrix_and_merge_nesting_is_bounded_alike() {
    let d = repo();
    let list = json!({"list": {"elements": [{"k": "1"}]}});
    // Five levels, alternating matrix and merge: one too many.
    let mut g = list.clone();
    for level in 0..5 {
        g = if level % 2 == 0 {
            json!({"matrix": {"generators": [g, list.clone()]}})
        } else {
            json!({"merge": {"mergeKeys": ["k"], "generators": [g, list.clone()]}})
        };
    }
    let err = Case::new(json!([g]), dir_template("x", "p", "n"))
        .run(d.path())
        .unwrap_err();
    assert!(
        err.message
            .contains("matrix and merge generators nest deeper than 4 levels"),
        "{err:?}"
    );
}

#[test]
fn unsupported_and_unknown_generators_name_the_generator() {
    let d = repo();
    for (g, at, want) in [
        (
            json!({"scmProvider": {}}),
            "spec.generators[0].scmProvider",
            "the scmProvider generator is not supported",
        ),
        (
            json!({"pullRequest": {}}),
            "spec.generators[0].pullRequest",
            "not supported",
        ),
        (
            json!({"clusterDecisionResource": {}}),
            "spec.generators[0].clusterDecisionResource",
            "not supported",
        ),
        (
            json!({"plugin": {}}),
            "spec.generators[0].plugin",
            "not supported",
        ),
        (
            json!({"bogus": {}}),
            "spec.generators[0]",
            "unknown generator \"bogus\"",
        ),
        (
            json!({"list": {}, "git": {}}),
            "spec.generators[0]",
            "one per entry",
        ),
        (
            json!({"git": {"repoURL": "", "directories": [{"path": "x"}], "files": [{"path": "y"}]}}),
            "spec.generators[0].git",
            "exactly one of",
        ),
        (
            json!({"git": {"repoURL": "https://unreachable.example/x.git", "directories": [{"path": "x"}]}}),
            "spec.generators[0].git",
            "cannot reach",
        ),
        (
            json!({"git": {"repoURL": "", "directories": [{"path": "["}]}}),
            "spec.generators[0].git.directories[0].path",
            "invalid path pattern",
        ),
    ] {
        let c = Case::new(json!([g]), dir_template("x", "p", "n"));
        let e = c.run(d.path()).unwrap_err();
        assert_eq!(e.at, at, "{e}");
        assert!(e.message.contains(want), "{e}");
    }
    // In a matrix, the path names the nesting.
    let c = Case::new(
        json!([{"matrix": {"generators": [{"list": {"elements": [{"a": "1"}]}}, {"plugin": {}}]}}]),
        dir_template("x", "p", "n"),
    );
    assert_eq!(
        c.run(d.path()).unwrap_err().at,
        "spec.generators[0].matrix.generators[1].plugin"
    );
}

#[test]
fn go_template_missingkey_error_and_default() {
    let d = repo();
    let gens = json!([{"list": {"elements": [{"cluster": "dev"}]}}]);
    let mut c = Case::new(
        gens.clone(),
        dir_template("{{.cluster}}-{{.nope}}", "p", "n"),
    )
    .go();
    assert_eq!(c.apps(d.path())[0].0, "dev-<no value>");
    c.missing_error = true;
    let e = c.run(d.path()).unwrap_err();
    assert_eq!(e.at, "spec.generators[0] → spec.template");
    assert!(
        e.message.contains("map has no entry for key \"nope\""),
        "{e}"
    );
    // Functions Argo CD documents.
    let c = Case::new(
        gens,
        dir_template(
            "{{ .cluster | upper | lower }}-{{ printf \"%s\" .cluster | trunc 2 }}",
            "{{ splitList \"-\" \"a-b\" | join \"/\" }}",
            "{{ default \"x\" .missing }}",
        ),
    )
    .go();
    assert_eq!(c.apps(d.path()), triples(&[("dev-de", "a/b", "x")]));
}

#[test]
fn template_patch_and_generator_template() {
    let d = repo();
    let mut c = Case::new(
        json!([{"list": {"elements": [{"name": "a", "auto": true}, {"name": "b", "auto": false}],
                          "template": {"metadata": {"labels": {"from": "list"}}}}}]),
        dir_template("{{.name}}", "p", "n"),
    )
    .go();
    c.patch =
        Some("{{ if .auto }}\nspec:\n  syncPolicy:\n    automated: {prune: true}\n{{ end }}\n");
    let g = c.run(d.path()).unwrap();
    let a = &g.manifests[0].object;
    assert_eq!(
        a.pointer("/spec/syncPolicy/automated/prune"),
        Some(&json!(true))
    );
    assert_eq!(a.pointer("/metadata/labels/from"), Some(&json!("list")));
    assert_eq!(
        a.pointer("/metadata/annotations/kubesync.dev~1application-set"),
        Some(&json!("my-set"))
    );
    assert_eq!(g.manifests[1].object.pointer("/spec/syncPolicy"), None);
    assert_eq!(a["apiVersion"], json!("argoproj.io/v1alpha1"));
}

#[test]
fn namespace_directories_kube_applier_layout() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "cluster/team-a/cm.yaml", "x");
    write(d.path(), "cluster/team-b/deep/cm.yaml", "x");
    write(d.path(), "cluster/Not_A_Namespace/cm.yaml", "x");
    write(d.path(), "cluster/file.yaml", "x");
    let spec = |label: Value| {
        let mut c = Case::new(
            json!([{"namespaceDirectories": {"path": "cluster", "label": label}}]),
            json!({}),
        );
        c.template = default_template(false);
        c
    };
    let c = spec(Value::Null);
    assert_eq!(
        c.apps(d.path()),
        triples(&[
            ("team-a", "cluster/team-a", "team-a"),
            ("team-b", "cluster/team-b", "team-b")
        ])
    );
    let g = spec(json!("kube-applier")).run(d.path()).unwrap();
    assert_eq!(
        g.manifests[0]
            .object
            .pointer("/metadata/annotations/kubesync.dev~1namespace-label"),
        Some(&json!("kube-applier"))
    );
    assert!(spec(json!("bad key!")).run(d.path()).is_err());
}

#[test]
fn cluster_namespace_directories_git_sync_operator_layout() {
    let d = tempfile::tempdir().unwrap();
    for p in [
        "iowa-a/bedrock-dev/deploy.yaml",
        "iowa-a/bedrock-prod/deploy.yaml",
        "iowa-a/bedrock-demo/git-sync-operator.yaml",
        "oregon-b/bedrock-dev/deploy.yaml",
        "all-clusters/bedrock-dev/deploy.yaml",
        "bedrock-stage/deploy.yaml",
        "bedrock-prod/deploy.yaml",
    ] {
        write(d.path(), p, "x");
    }
    let mut c = Case::new(json!([{"clusterNamespaceDirectories": {}}]), json!({}));
    c.template = default_template(false);
    // No cluster name: a clear error.
    assert!(c
        .run(d.path())
        .unwrap_err()
        .message
        .contains("CLUSTER_NAME"));
    let env = GeneratorEnv {
        cluster_name: Some("iowa-a".into()),
        ..GeneratorEnv::default()
    };
    let names = |g: Generated| -> Vec<(String, String)> {
        g.manifests
            .iter()
            .map(|m| {
                (
                    m.object["metadata"]["name"].as_str().unwrap().to_string(),
                    m.object["spec"]["source"]["path"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                )
            })
            .collect()
    };
    assert_eq!(
        names(c.run_with(d.path(), &env).unwrap()),
        [
            (
                "bedrock-demo".to_string(),
                "iowa-a/bedrock-demo".to_string()
            ),
            ("bedrock-dev".into(), "iowa-a/bedrock-dev".into()),
            ("bedrock-prod".into(), "iowa-a/bedrock-prod".into()),
        ]
    );
    // MANAGED_NAMESPACES: only those, and `$namespace` directories for the
    // ones without a cluster directory.
    let env = GeneratorEnv {
        cluster_name: Some("iowa-a".into()),
        managed_namespaces: Some(vec!["bedrock-prod".into(), "bedrock-stage".into()]),
        ..GeneratorEnv::default()
    };
    assert_eq!(
        names(c.run_with(d.path(), &env).unwrap()),
        [
            (
                "bedrock-prod".to_string(),
                "iowa-a/bedrock-prod".to_string()
            ),
            ("bedrock-stage".into(), "bedrock-stage".into()),
        ]
    );
    // The generator's own fields win over the environment.
    let mut own = Case::new(
        json!([{"clusterNamespaceDirectories": {"cluster": "oregon-b", "namespaces": "bedrock-dev"}}]),
        json!({}),
    );
    own.template = default_template(false);
    assert_eq!(
        names(own.run_with(d.path(), &env).unwrap()),
        [(
            "bedrock-dev".to_string(),
            "oregon-b/bedrock-dev".to_string()
        )]
    );
}

#[test]
fn a_name_naming_no_parameter_fails_the_set_listing_the_parameters() {
    let d = repo();
    let c = Case::new(
        json!([{"git": {"repoURL": "", "revision": "HEAD", "directories": [{"path": "lists"}]}}]),
        dir_template("{{path.basenme}}", "p", "n"),
    );
    let e = c.run(d.path()).unwrap_err();
    assert_eq!(e.at, "spec.generators[0] → spec.template");
    assert!(
        e.message.contains("\"{{path.basenme}}\" names a parameter this generator does not produce (its parameters: path, path.basename, path.basenameNormalized, path[0])"),
        "{e}"
    );
}

#[test]
fn rolling_sync_steps_become_sync_waves() {
    let d = repo();
    let mut c = Case::new(
        json!([{"list": {"elements": [{"env": "dev"}, {"env": "qa"}, {"env": "prod"}, {"env": "other"}]}}]),
        json!({"metadata": {"name": "gb-{{env}}", "labels": {"envLabel": "{{env}}"}},
               "spec": {"source": {"path": "p"}, "destination": {"namespace": "{{env}}"}}}),
    );
    let step = |v: &str| json!([{"key": "envLabel", "operator": "In", "values": [v]}]);
    c.rolling_sync = Some(vec![step("dev"), step("qa"), step("prod")]);
    let g = c.run(d.path()).unwrap();
    let waves: Vec<(&str, &str)> = g
        .manifests
        .iter()
        .map(|m| {
            (
                m.object["metadata"]["name"].as_str().unwrap(),
                m.object
                    .pointer("/metadata/annotations/argocd.argoproj.io~1sync-wave")
                    .and_then(Value::as_str)
                    .unwrap(),
            )
        })
        .collect();
    assert_eq!(
        waves,
        [
            ("gb-dev", "0"),
            ("gb-qa", "1"),
            ("gb-prod", "2"),
            ("gb-other", "3")
        ]
    );
}
