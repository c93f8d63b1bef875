//! Table tests of Application parsing: both kinds, the Argo CD mapping, and
//! the error text users see.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};

use super::*;

fn origin() -> ObjectOrigin {
    ObjectOrigin {
        file: PathBuf::from("apps/web.yaml"),
        doc: 0,
    }
}

fn parse_yaml(text: &str) -> Result<Application, ModelError> {
    let v: Value = serde_yaml::from_str(text).unwrap();
    Application::from_object(&v, &origin())
}

#[test]
fn kubesync_full_spec() {
    let app = parse_yaml(
        r#"
apiVersion: kubesync.dev/v1alpha1
kind: Application
metadata:
  name: guestbook
  annotations: {argocd.argoproj.io/sync-wave: "2"}
spec:
  tier: app
  source:
    repoURL: https://git.example.com/org/config.git
    targetRevision: branch:main
    path: applications/apps/guestbook/
    helm: {releaseName: gb, valueFiles: [values-prod.yaml], values: {replicaCount: 2}, parameters: [{name: image.tag, value: "1.2"}]}
  destination: {namespace: guestbook}
  dependsOn: [ingress, metrics-server]
  syncPolicy:
    automated: {prune: true, selfHeal: true}
    createNamespace: true
    wait: {timeout: 5m}
"#,
    )
    .unwrap();
    assert_eq!(app.name.as_str(), "guestbook");
    assert_eq!(app.flavor, Flavor::Kubesync);
    assert_eq!(app.tier, Tier::App);
    assert_eq!(app.source.path.as_str(), "applications/apps/guestbook");
    assert_eq!(
        app.source.target_revision,
        Some(RevisionSpec::Branch("main".into()))
    );
    assert_eq!(app.sync_wave, 2);
    assert_eq!(app.helm_release_name(), "gb");
    match &app.source.renderer {
        RendererSpec::Helm(h) => {
            assert_eq!(h.value_files, vec!["values-prod.yaml"]);
            assert_eq!(h.values, Some(json!({"replicaCount": 2})));
            assert_eq!(h.parameters[0].name, "image.tag");
            assert_eq!(h.parameters[0].value, "1.2");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(app.destination.namespace.as_deref(), Some("guestbook"));
    assert_eq!(
        app.depends_on
            .iter()
            .map(AppName::as_str)
            .collect::<Vec<_>>(),
        vec!["ingress", "metrics-server"]
    );
    assert!(app.sync_policy.prune() && app.sync_policy.self_heal());
    assert!(app.sync_policy.create_namespace);
    assert_eq!(app.sync_policy.wait_timeout, Duration::from_secs(300));
}

#[test]
fn kubesync_defaults_and_renderers() {
    let app = parse_yaml(
        "apiVersion: kubesync.dev/v1alpha1\nkind: Application\nmetadata: {name: a}\nspec: {source: {path: x}}\n",
    )
    .unwrap();
    assert_eq!(app.tier, Tier::App);
    assert_eq!(app.source.renderer, RendererSpec::Auto);
    assert_eq!(app.source.repo_url, None);
    assert_eq!(app.source.target_revision, None);
    assert_eq!(app.sync_policy, SyncPolicy::default());

    let app = parse_yaml(
        "apiVersion: kubesync.dev/v1alpha1\nkind: Application\nmetadata: {name: a}\nspec:\n  source:\n    path: x\n    transform: {command: [./t.sh, --flag], timeout: 30s}\n",
    )
    .unwrap();
    assert_eq!(
        app.source.renderer,
        RendererSpec::Transform(TransformOptions {
            command: vec!["./t.sh".into(), "--flag".into()],
            timeout: Duration::from_secs(30)
        })
    );
    let app = parse_yaml(
        "apiVersion: kubesync.dev/v1alpha1\nkind: Application\nmetadata: {name: a}\nspec:\n  source:\n    path: x\n    directory: {recurse: true, include: '*.yaml', exclude: 'test-*'}\n",
    )
    .unwrap();
    assert_eq!(
        app.source.renderer,
        RendererSpec::Directory(DirectoryOptions {
            recurse: true,
            include: Some("*.yaml".into()),
            exclude: Some("test-*".into()),
            ..Default::default()
        })
    );
    let app = parse_yaml(
        "apiVersion: kubesync.dev/v1alpha1\nkind: Application\nmetadata: {name: a}\nspec:\n  source:\n    path: x\n    jinja: {vars: {env: prod, replicas: 3}}\n",
    )
    .unwrap();
    match app.source.renderer {
        RendererSpec::Jinja(j) => assert_eq!(j.vars["replicas"], 3),
        other => panic!("{other:?}"),
    }
}

#[test]
fn kubesync_errors_name_file_app_and_field() {
    let cases: &[(&str, &str)] = &[
        (
            "apiVersion: kubesync.dev/v1alpha1\nkind: Application\nmetadata: {name: web}\nspec: {source: {path: x}, dependOn: [a]}\n",
            "apps/web.yaml: application \"web\": spec.dependOn: unknown field (known fields: tier, source, destination, dependsOn, syncPolicy, ignoreDifferences, images)",
        ),
        (
            "apiVersion: kubesync.dev/v1alpha1\nkind: Application\nmetadata: {name: web}\nspec: {source: {path: x}, images: {pinDigest: true}}\n",
            "apps/web.yaml: application \"web\": spec.images.pinDigest: unknown field (known fields: pinDigests)",
        ),
        (
            "apiVersion: kubesync.dev/v1alpha1\nkind: Application\nmetadata: {name: web}\nspec: {source: {path: x}, images: {pinDigests: 'yes'}}\n",
            "apps/web.yaml: application \"web\": spec.images.pinDigests: must be true or false, found a string",
        ),
        (
            "apiVersion: kubesync.dev/v1alpha1\nkind: Application\nmetadata: {name: web}\nspec: {source: {path: ../etc}}\n",
            "apps/web.yaml: application \"web\": spec.source.path: \"../etc\" contains \"..\"; paths must stay inside their repository",
        ),
        (
            "apiVersion: kubesync.dev/v1alpha1\nkind: Application\nmetadata: {name: web}\nspec: {source: {path: /etc}}\n",
            "apps/web.yaml: application \"web\": spec.source.path: \"/etc\" is absolute; paths are relative to the repository root",
        ),
        (
            "apiVersion: kubesync.dev/v1alpha1\nkind: Application\nmetadata: {name: Web}\nspec: {source: {path: x}}\n",
            "apps/web.yaml: application \"Web\": metadata.name: \"Web\" is not a valid DNS-1123 subdomain: lowercase letters, digits, '-' and '.', starting and ending with a letter or digit",
        ),
        (
            "apiVersion: kubesync.dev/v1alpha1\nkind: Application\nmetadata: {name: web}\nspec: {tier: platform, source: {path: x}}\n",
            "apps/web.yaml: application \"web\": spec.tier: \"platform\" is not a tier (system or app)",
        ),
        (
            "apiVersion: kubesync.dev/v1alpha1\nkind: Application\nmetadata: {name: web}\nspec: {source: {path: x, helm: {}, kustomize: {}}}\n",
            "apps/web.yaml: application \"web\": spec.source: choose one renderer, not helm and kustomize",
        ),
        (
            "apiVersion: kubesync.dev/v1alpha1\nkind: Application\nmetadata: {name: web}\nspec: {source: {path: x, targetRevision: 'commit:zz'}}\n",
            "apps/web.yaml: application \"web\": spec.source.targetRevision: \"commit:zz\": a commit is 4 to 40 hexadecimal characters",
        ),
        (
            "apiVersion: kubesync.dev/v1alpha1\nkind: Application\nmetadata: {name: web}\nspec: {source: {path: x}, syncPolicy: {wait: {timeout: 5 minutes}}}\n",
            "apps/web.yaml: application \"web\": spec.syncPolicy.wait.timeout: \"5 minutes\" is not a duration like 30s, 5m or 1h30m",
        ),
        (
            "apiVersion: kubesync.dev/v1alpha1\nkind: Application\nmetadata: {name: web}\nspec: {source: {path: x}, dependsOn: [web]}\n",
            "apps/web.yaml: application \"web\": spec.dependsOn: \"web\" depends on itself",
        ),
        (
            "apiVersion: kubesync.dev/v1alpha1\nkind: Application\nmetadata: {name: web}\nspec: {source: {path: x}, destination: {namespace: Bad_NS}}\n",
            "apps/web.yaml: application \"web\": spec.destination.namespace: \"Bad_NS\" is not a valid DNS-1123 label: lowercase letters, digits and '-', starting and ending with a letter or digit",
        ),
        (
            "apiVersion: kubesync.dev/v1beta9\nkind: Application\nmetadata: {name: web}\nspec: {}\n",
            "apps/web.yaml: application \"web\": apiVersion: unsupported Application apiVersion \"kubesync.dev/v1beta9\" (expected kubesync.dev/v1alpha1 or argoproj.io/v1alpha1)",
        ),
        (
            "apiVersion: kubesync.dev/v1alpha1\nkind: Application\nmetadata: {}\nspec: {source: {path: x}}\n",
            "apps/web.yaml: metadata.name: is required",
        ),
        // `spec: null` reads the same for every kind of Application.
        (
            "apiVersion: kubesync.dev/v1alpha1\nkind: Application\nmetadata: {name: web}\nspec: null\n",
            "apps/web.yaml: application \"web\": spec: is required",
        ),
        (
            "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: web}\nspec: null\n",
            "apps/web.yaml: application \"web\": spec: is required",
        ),
        (
            "apiVersion: kubesync.dev/v1alpha1\nkind: Application\nmetadata: {name: web}\nspec: [a]\n",
            "apps/web.yaml: application \"web\": spec: must be a mapping, found a sequence",
        ),
    ];
    for (input, want) in cases {
        let err = parse_yaml(input).unwrap_err();
        assert_eq!(err.to_string(), *want, "input:\n{input}");
    }
}

#[test]
fn argocd_application_maps_onto_the_model() {
    let app = parse_yaml(
        r#"
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: helm-guestbook
  namespace: argocd
  annotations:
    argocd.argoproj.io/sync-wave: "-1"
  finalizers: [resources-finalizer.argocd.argoproj.io]
spec:
  project: default
  source:
    repoURL: https://github.com/example-org/gitops-demo.git
    targetRevision: HEAD
    path: helm-guestbook
    helm:
      releaseName: hg
      valueFiles: [values-production.yaml]
      values: |
        replicaCount: 1
        service: {type: ClusterIP}
      valuesObject:
        replicaCount: 3
      parameters:
        - {name: image.tag, value: "0.2", forceString: true}
  destination:
    server: https://kubernetes.default.svc
    namespace: helm-guestbook
  syncPolicy:
    automated: {prune: true, selfHeal: true}
    syncOptions: [CreateNamespace=true]
  ignoreDifferences: []
"#,
    )
    .unwrap();
    assert_eq!(app.flavor, Flavor::ArgoCd);
    assert_eq!(app.tier, Tier::System);
    assert_eq!(app.sync_wave, -1);
    assert_eq!(app.source.target_revision, Some(RevisionSpec::Head));
    assert_eq!(
        app.source.repo_url.as_deref(),
        Some("https://github.com/example-org/gitops-demo.git")
    );
    assert!(app.sync_policy.create_namespace);
    assert!(app.sync_policy.prune());
    assert_eq!(
        app.destination.server.as_deref(),
        Some("https://kubernetes.default.svc")
    );
    match &app.source.renderer {
        RendererSpec::Helm(h) => {
            assert_eq!(h.release_name.as_deref(), Some("hg"));
            // valuesObject is merged over the values string.
            assert_eq!(
                h.values,
                Some(json!({"replicaCount": 3, "service": {"type": "ClusterIP"}}))
            );
            assert!(h.parameters[0].force_string);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn argocd_automated_presence_and_extensions() {
    let app = parse_yaml(
        r#"
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: web
  annotations: {kubesync.dev/tier: app, kubesync.dev/depends-on: "ingress, db"}
spec:
  source: {repoURL: https://x/y.git, path: web, directory: {recurse: true, jsonnet: {}}}
  destination: {namespace: web}
  syncPolicy: {automated: {}}
"#,
    )
    .unwrap();
    assert_eq!(app.tier, Tier::App);
    assert_eq!(
        app.depends_on
            .iter()
            .map(AppName::as_str)
            .collect::<Vec<_>>(),
        vec!["ingress", "db"]
    );
    assert_eq!(app.sync_policy.automated, Some(Automated::default()));
    assert!(matches!(app.source.renderer, RendererSpec::Directory(ref d) if d.recurse));
}

#[test]
fn argocd_unsupported_sources_fail_alone() {
    let cases = [(
        "source: {repoURL: https://x/y.git, path: p, plugin: {name: cmp}}",
        "config management plugins",
    )];
    for (source, want) in cases {
        let app = parse_yaml(&format!(
            "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {{name: x}}\nspec:\n  {source}\n  destination: {{namespace: x}}\n"
        ))
        .unwrap();
        match app.source.renderer {
            RendererSpec::Unsupported(reason) => assert!(reason.contains(want), "{reason}"),
            other => panic!("{source}: {other:?}"),
        }
    }
}

#[test]
fn argocd_chart_and_multi_source_apps_are_read() {
    let app = parse_yaml(
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: x}\nspec:\n  source: {repoURL: https://charts.example.com, chart: redis, targetRevision: '>=1.0 <2'}\n",
    )
    .unwrap();
    assert_eq!(
        app.source.chart,
        Some(ChartRef {
            name: "redis".into(),
            version: ">=1.0 <2".into()
        })
    );
    assert_eq!(app.source.target_revision, None);
    let app = parse_yaml(
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: x}\nspec:\n  sources:\n  - {repoURL: oci://r.example.com/charts, chart: web, targetRevision: 1.x, helm: {valueFiles: [$values/prod.yaml]}}\n  - {repoURL: https://x/y.git, ref: values}\n  - {repoURL: https://x/z.git, path: b, targetRevision: main}\n",
    )
    .unwrap();
    assert_eq!(
        app.source.chart.as_ref().map(|c| c.name.as_str()),
        Some("web")
    );
    assert_eq!(app.extra_sources.len(), 2);
    assert!(app.extra_sources[0].ref_only);
    assert_eq!(app.extra_sources[0].ref_name.as_deref(), Some("values"));
    assert!(!app.extra_sources[1].ref_only);
    for (sources, want) in [
        (
            "[{path: a, helm: {valueFiles: [$nope/v.yaml]}}]",
            "names ref \"nope\"",
        ),
        (
            "[{path: a, ref: v}, {path: b, ref: v}]",
            "\"v\" is used by two sources",
        ),
        (
            "[{chart: web}]",
            "spec.sources[0].repoURL: is required with spec.sources[0].chart",
        ),
        ("[{path: a, ref: 'a/b'}]", "not a valid ref name"),
    ] {
        let e = parse_yaml(&format!(
            "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {{name: x}}\nspec:\n  sources: {sources}\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains(want), "{sources}: {e}");
    }
}

#[test]
fn repo_paths_normalise() {
    assert_eq!(RepoPath::new("./a//b/").unwrap().as_str(), "a/b");
    assert!(RepoPath::new("").unwrap().is_root());
    assert!(RepoPath::new("a/../../b").is_err());
}

#[test]
fn load_root_rejects_non_applications() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("root.yaml");
    std::fs::write(&p, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n").unwrap();
    let err = load_root(&p).unwrap_err();
    assert!(
        err.to_string()
            .ends_with("the root manifest may only contain Application or ApplicationSet objects"),
        "{err}"
    );
    std::fs::write(&p, "").unwrap();
    assert!(load_root(&p)
        .unwrap_err()
        .to_string()
        .ends_with("contains no Application"));
    let missing = dir.path().join("nope.yaml");
    assert!(load_root(&missing)
        .unwrap_err()
        .to_string()
        .contains("cannot read the root manifest"));
}

#[test]
fn argocd_retry_policy_with_defaults_and_backoff() {
    let app = |retry: &str| {
        parse_yaml(&format!(
            "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {{name: x}}\nspec:\n  source: {{repoURL: 'https://e.com/r.git', path: x}}\n  destination: {{namespace: x}}\n  syncPolicy:\n    retry: {retry}\n"
        ))
    };
    let r = app("{limit: 3, backoff: {duration: 1s, factor: 3, maxDuration: 5s}}")
        .expect("parses")
        .sync_policy
        .retry
        .expect("retry");
    assert_eq!(r.limit, 3);
    let waits: Vec<_> = (1..=4).map(|a| r.backoff(a)).collect();
    assert_eq!(
        waits,
        [
            Some(Duration::from_secs(1)),
            Some(Duration::from_secs(3)),
            Some(Duration::from_secs(5)),
            None
        ]
    );
    let d = app("{limit: 1}")
        .expect("parses")
        .sync_policy
        .retry
        .expect("retry");
    assert_eq!(d.duration, Duration::from_secs(5));
    assert_eq!(d.max_duration, Duration::from_secs(180));
    let unlimited = app("{limit: -1}")
        .expect("parses")
        .sync_policy
        .retry
        .expect("retry");
    assert_eq!(unlimited.backoff(100), Some(Duration::from_secs(180)));
    let e = app("{limit: many}").unwrap_err().to_string();
    assert!(e.contains("spec.syncPolicy.retry.limit"), "{e}");
    let e = app("{backoff: {duration: soon}}").unwrap_err().to_string();
    assert!(e.contains("spec.syncPolicy.retry.backoff.duration"), "{e}");
}

#[test]
fn jsonnet_options_of_both_kinds() {
    let want = JsonnetOptions {
        ext_vars: vec![JsonnetVar {
            name: "env".into(),
            value: "prod".into(),
            code: false,
        }],
        tlas: vec![JsonnetVar {
            name: "replicas".into(),
            value: "3".into(),
            code: true,
        }],
        libs: vec!["vendor".into()],
    };
    for head in [
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: x}\nspec:\n  destination: {namespace: x}\n",
        "apiVersion: kubesync.dev/v1alpha1\nkind: Application\nmetadata: {name: x}\nspec:\n",
    ] {
        let app = parse_yaml(&format!(
            "{head}  source:\n    path: p\n    directory:\n      jsonnet:\n        extVars: [{{name: env, value: prod}}]\n        tlas: [{{name: replicas, value: '3', code: true}}]\n        libs: [vendor]\n"
        ))
        .unwrap();
        match app.source.renderer {
            RendererSpec::Directory(d) => assert_eq!(d.jsonnet, want),
            other => panic!("{other:?}"),
        }
    }
    for (jsonnet, want) in [
        (
            "{tlas: [{value: a}]}",
            "spec.source.directory.jsonnet.tlas[0].name: is required",
        ),
        (
            "{extVars: [{name: a}, {name: a}]}",
            "spec.source.directory.jsonnet.extVars[1].name: \"a\" is given twice",
        ),
        ("{tlas: {a: b}}", "spec.source.directory.jsonnet.tlas"),
        (
            "{libs: ['']}",
            "spec.source.directory.jsonnet.libs[0]: is empty",
        ),
    ] {
        let e = parse_yaml(&format!(
            "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {{name: x}}\nspec:\n  destination: {{namespace: x}}\n  source: {{path: p, directory: {{jsonnet: {jsonnet}}}}}\n"
        ))
        .unwrap_err();
        assert!(e.to_string().contains(want), "{jsonnet}: {e}");
    }
}

#[test]
fn ignore_differences_of_both_kinds() {
    let rules = "  ignoreDifferences:\n  - group: apps\n    kind: Deployment\n    name: web\n    jsonPointers: [/spec/replicas]\n    jqPathExpressions: ['.spec.template.spec.containers[] | select(.name == \"x\") | .image']\n  - {group: '*', kind: '*', managedFieldsManagers: [kube-controller-manager]}\n";
    for head in [
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: web}\nspec:\n  destination: {namespace: x}\n  source: {path: p}\n  syncPolicy: {syncOptions: [RespectIgnoreDifferences=true]}\n",
        "apiVersion: kubesync.dev/v1alpha1\nkind: Application\nmetadata: {name: web}\nspec:\n  source: {path: p}\n  syncPolicy: {syncOptions: [RespectIgnoreDifferences=true]}\n",
    ] {
        let app = parse_yaml(&format!("{head}{rules}")).unwrap();
        assert_eq!(app.ignore_differences.len(), 2);
        let r = &app.ignore_differences[0];
        assert_eq!((r.group.as_str(), r.kind.as_str()), ("apps", "Deployment"));
        assert_eq!(r.name.as_deref(), Some("web"));
        assert_eq!(r.json_pointers, vec!["/spec/replicas"]);
        assert_eq!(r.jq_path_expressions.len(), 1);
        assert_eq!(
            app.ignore_differences[1].managed_fields_managers,
            vec!["kube-controller-manager"]
        );
        assert!(app.sync_policy.respect_ignore_differences());
    }
    let e = parse_yaml(
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: web}\nspec:\n  destination: {namespace: x}\n  source: {path: p}\n  ignoreDifferences:\n  - {kind: Deployment, jqPathExpressions: ['.spec | nope']}\n",
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("spec.ignoreDifferences[0].jqPathExpressions[0]: not a valid jq expression: undefined nope"),
        "{e}"
    );
}
