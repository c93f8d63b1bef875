//! ApplicationSets in the tree: a set as the root and inside a tree, its
//! generated apps rendered and synced in the emulator with the set as their
//! parent, generator and template errors failing the set alone, removed
//! elements handled per the set's policy, the seeds' layouts
//! (kube-applier's namespace directories with label gates, git-sync-operator's
//! cluster/namespace directories), and the CLI's `tree`/`plan` output.

mod sync_support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use kubesync::model::AppName;
use kubesync::sync::AppOutcome;
use serde_json::{json, Value};
use sync_support::*;

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .current_dir(dir)
        .args([
            "-c",
            "init.defaultBranch=main",
            "-c",
            "commit.gpgSign=false",
        ])
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A git repository whose root manifest is `root` and which holds a
/// ConfigMap directory per name in `dirs`, committed.
fn set_repo(root: &str, dirs: &[&str]) -> Repo {
    let repo = Repo::new();
    repo.write("root.yaml", root);
    for d in dirs {
        let name = d.rsplit('/').next().unwrap_or(d);
        repo.write(
            &format!("{d}/cm.yaml"),
            &configmap(&format!("cm-{name}"), "a: \"1\""),
        );
    }
    git(repo.path(), &["init", "-q"]);
    commit(&repo);
    repo
}

fn commit(repo: &Repo) {
    git(repo.path(), &["add", "-A"]);
    git(
        repo.path(),
        &["commit", "-q", "--allow-empty", "-m", "change"],
    );
}

const GIT_DIRECTORIES_SET: &str = r#"
apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata: {name: addons}
spec:
  generators:
  - git:
      repoURL: ""
      revision: HEAD
      directories:
      - path: addons/*
      - path: addons/skip
        exclude: true
  template:
    metadata: {name: '{{path.basename}}'}
    spec:
      project: default
      source: {path: '{{path}}', targetRevision: HEAD}
      destination: {server: https://kubernetes.default.svc, namespace: '{{path.basename}}'}
      syncPolicy:
        automated: {prune: true}
        syncOptions: [CreateNamespace=true]
"#;

fn names_under(tree: &kubesync::tree::AppTree, parent: &str) -> Vec<String> {
    tree.get_str(parent)
        .unwrap_or_else(|| panic!("no {parent}"))
        .children
        .iter()
        .map(|c| c.to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applicationset_root_with_git_directories_renders_and_syncs() {
    let repo = set_repo(
        GIT_DIRECTORIES_SET,
        &["addons/guestbook", "addons/redis", "addons/skip"],
    );
    let root = repo.root();
    let tree = tokio::task::spawn_blocking(move || tree_of(&root))
        .await
        .unwrap();
    assert_eq!(names_under(&tree, "addons"), ["guestbook", "redis"]);
    let gb = tree.get_str("guestbook").unwrap();
    assert_eq!(gb.parent.as_ref().map(AppName::as_str), Some("addons"));
    assert_eq!(gb.app.destination.namespace.as_deref(), Some("guestbook"));
    assert!(tree.get_str("addons").unwrap().objects().next().is_none());

    let emu = emulator(fast_simulation()).await;
    let report = sync_repo(&repo, &emu).await;
    for name in ["addons", "guestbook", "redis"] {
        assert_eq!(
            app(&report, name).outcome,
            AppOutcome::Succeeded,
            "{report:#?}"
        );
    }
    assert_eq!(
        change_of(app(&report, "guestbook"), "cm-guestbook")
            .action
            .to_string(),
        "created"
    );
    assert!(get(&emu, "/api/v1/namespaces/redis/configmaps/cm-redis")
        .await
        .is_some());
    assert!(get(&emu, "/api/v1/namespaces/skip/configmaps/cm-skip")
        .await
        .is_none());
    // The set itself is not an object in the cluster; its status is.
    assert!(get(
        &emu,
        "/apis/kubesync.dev/v1alpha1/namespaces/kubesync-system/applications/addons"
    )
    .await
    .is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_element_leaves_the_tree_per_the_sets_policy() {
    let set = |elements: &str, policy: &str| {
        format!(
            r#"apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata: {{name: envs}}
spec:
  goTemplate: true
  goTemplateOptions: ["missingkey=error"]
  generators:
  - list:
      elements: {elements}
  template:
    metadata: {{name: 'app-{{{{.env}}}}'}}
    spec:
      source: {{path: objects/app}}
      destination: {{namespace: '{{{{.env}}}}'}}
      syncPolicy: {{automated: {{prune: true}}, syncOptions: [CreateNamespace=true]}}
  syncPolicy: {policy}
"#
        )
    };
    let repo = Repo::new();
    repo.write("objects/app/cm.yaml", &configmap("settings", "a: \"1\""));
    repo.write(
        "root.yaml",
        &set(
            r#"[{env: dev}, {env: prod}]"#,
            "{preserveResourcesOnDeletion: true}",
        ),
    );
    let emu = emulator(fast_simulation()).await;
    let first = sync_repo(&repo, &emu).await;
    assert_eq!(
        app(&first, "app-prod").outcome,
        AppOutcome::Succeeded,
        "{first:#?}"
    );
    assert!(first.orphaned.is_empty());

    // `prod` leaves the list: its app leaves the tree and, by the set's
    // default policy, its Application object is deleted; its objects are
    // kept (preserveResourcesOnDeletion; the template has no finalizer
    // either). tests/appset_policy.rs covers every policy.
    repo.write(
        "root.yaml",
        &set(r#"[{env: dev}]"#, "{preserveResourcesOnDeletion: true}"),
    );
    let second = sync_repo(&repo, &emu).await;
    assert!(second.get(&AppName::new("app-prod").unwrap()).is_none());
    assert!(second.orphaned.is_empty(), "{second:#?}");
    assert_eq!(second.removed.len(), 1, "{second:#?}");
    assert_eq!(second.removed[0].name.as_str(), "app-prod");
    assert!(!second.removed[0].cascade);
    assert!(get(&emu, "/api/v1/namespaces/prod/configmaps/settings")
        .await
        .is_some());
    assert_eq!(app(&second, "app-dev").outcome, AppOutcome::Succeeded);

    // create-only: an app the set stops generating is kept and reported.
    repo.write(
        "root.yaml",
        &set(
            r#"[{env: dev}, {env: prod}]"#,
            "{applicationsSync: create-only}",
        ),
    );
    sync_repo(&repo, &emu).await;
    repo.write(
        "root.yaml",
        &set(r#"[{env: dev}]"#, "{applicationsSync: create-only}"),
    );
    let third = sync_repo(&repo, &emu).await;
    assert_eq!(third.orphaned, [AppName::new("app-prod").unwrap()]);
    repo.write(
        "root.yaml",
        &set(r#"[{env: dev}]"#, "{applicationsSync: sometimes}"),
    );
    let out = run(&repo.root(), &emu.url(), &["tree"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("spec.syncPolicy.applicationsSync"),
        "{}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matrix_of_git_directories_and_a_list_in_a_tree() {
    // The set is a child of an ordinary Application (inside the tree).
    let repo = set_repo("", &["clusters/a", "clusters/b"]);
    repo.write(
        "apps/platform.yaml",
        r#"apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata: {name: platform}
spec:
  generators:
  - matrix:
      generators:
      - git:
          repoURL: ""
          revision: HEAD
          directories: [{path: clusters/*}]
      - list:
          elements: [{tier: web}, {tier: db, extra: '{{path.basename}}'}]
  template:
    metadata: {name: '{{path.basename}}-{{tier}}'}
    spec:
      source: {path: '{{path}}'}
      destination: {namespace: '{{path.basename}}-{{tier}}'}
      syncPolicy: {syncOptions: [CreateNamespace=true]}
"#,
    );
    repo.write(
        "root.yaml",
        "apiVersion: kubesync.dev/v1alpha1\nkind: Application\nmetadata: {name: root}\nspec:\n  tier: system\n  source: {path: apps}\n",
    );
    commit(&repo);
    let root = repo.root();
    let tree = tokio::task::spawn_blocking(move || tree_of(&root))
        .await
        .unwrap();
    assert_eq!(names_under(&tree, "root"), ["platform"]);
    assert_eq!(
        names_under(&tree, "platform"),
        ["a-web", "a-db", "b-web", "b-db"]
    );
    let emu = emulator(fast_simulation()).await;
    let report = sync_repo(&repo, &emu).await;
    assert_eq!(
        app(&report, "b-db").outcome,
        AppOutcome::Succeeded,
        "{report:#?}"
    );
    assert!(get(&emu, "/api/v1/namespaces/b-db/configmaps/cm-b")
        .await
        .is_some());
    // The ApplicationSet was not applied as an object.
    assert_eq!(
        app(&report, "root").changes.len(),
        0,
        "{:#?}",
        app(&report, "root")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missingkey_error_and_unsupported_generators_fail_the_set_alone() {
    let repo = Repo::new();
    repo.app("plain", "");
    repo.write("objects/plain/cm.yaml", &configmap("plain", "a: \"1\""));
    repo.write(
        "apps/strict.yaml",
        r#"apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata: {name: strict}
spec:
  goTemplate: true
  goTemplateOptions: ["missingkey=error"]
  generators:
  - list: {elements: [{cluster: dev}]}
  template:
    metadata: {name: '{{.cluster}}-{{.nmespace}}'}
    spec: {source: {path: objects/plain}, destination: {namespace: x}}
"#,
    );
    repo.write(
        "apps/scm.yaml",
        r#"apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata: {name: from-github}
spec:
  generators:
  - scmProvider: {github: {organization: example}}
  template:
    metadata: {name: '{{repository}}'}
    spec: {source: {path: '.'}, destination: {namespace: x}}
"#,
    );
    let out = run(&repo.root(), "http://127.0.0.1:9", &["tree"]).await;
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        stderr.contains(r#"error: application "strict": ApplicationSet "strict": spec.generators[0] → spec.template: template "{{.cluster}}-{{.nmespace}}": at <.nmespace>: map has no entry for key "nmespace""#),
        "{}",
        text(&out)
    );
    assert!(
        stderr.contains(r#"application "from-github": ApplicationSet "from-github": spec.generators[0].scmProvider: the scmProvider generator is not supported"#),
        "{}",
        text(&out)
    );
    // The rest of the tree syncs.
    let emu = emulator(fast_simulation()).await;
    let report = sync_repo(&repo, &emu).await;
    assert_eq!(app(&report, "plain").outcome, AppOutcome::Succeeded);
    assert!(failure(app(&report, "strict")).contains("map has no entry for key"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_tree_and_plan_show_the_set_as_parent() {
    let repo = set_repo(GIT_DIRECTORIES_SET, &["addons/guestbook", "addons/redis"]);
    let out = run(&repo.root(), "http://127.0.0.1:9", &["tree"]).await;
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[1].starts_with("addons ") && lines[1].contains("applicationset"),
        "{stdout}"
    );
    assert!(lines[2].starts_with("├─ guestbook "), "{stdout}");
    assert!(lines[3].starts_with("└─ redis "), "{stdout}");

    let out = offline(&repo.root(), &["plan", "-o", "json"]);
    assert!(out.status.success(), "{}", text(&out));
    let plan: Value = serde_json::from_slice(&out.stdout).expect("json");
    let text_plan = plan.to_string();
    assert!(text_plan.contains("\"addons\""), "{plan:#}");
    let out = offline(&repo.root(), &["plan"]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let gb = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("guestbook"))
        .expect("guestbook line");
    assert!(
        gb.trim_end().ends_with("addons"),
        "guestbook waits for its set: {stdout}"
    );

    let out = run(&repo.root(), "http://127.0.0.1:9", &["tree", "-o", "json"]).await;
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    let s = v.to_string();
    assert!(s.contains("\"parent\":\"addons\""), "{v:#}");
}

/// Runs an offline command (`tree`, `plan`, `render`) on `root`.
fn offline(root: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_kubesync"))
        .args(args)
        .arg("--root")
        .arg(root)
        .env_remove("KUBECONFIG")
        .env_remove("CLUSTER_NAME")
        .env_remove("MANAGED_NAMESPACES")
        .output()
        .expect("run kubesync")
}

async fn post(emu: &kubesync::emulator::EmulatorHandle, path: &str, body: Value) {
    let client = emu.kube_client();
    let req = http::Request::post(path)
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&body).unwrap())
        .unwrap();
    client.request::<Value>(req).await.expect("POST");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_applier_namespace_directories_with_label_gates() {
    let repo = Repo::new();
    repo.write(
        "root.yaml",
        r#"apiVersion: kubesync.dev/v1alpha1
kind: ApplicationSet
metadata: {name: namespaces}
spec:
  tier: system
  generators:
  - namespaceDirectories: {path: cluster, label: kube-applier}
"#,
    );
    for ns in ["team-a", "team-b", "team-c", "team-d"] {
        repo.write(
            &format!("cluster/{ns}/cm.yaml"),
            &configmap("settings", "a: \"1\""),
        );
    }
    let emu = emulator(fast_simulation()).await;
    for (ns, label) in [
        ("team-a", Some("on")),
        ("team-b", Some("dry-run")),
        ("team-c", Some("off")),
        ("team-d", None),
    ] {
        let mut obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
        if let Some(l) = label {
            obj["metadata"]["labels"] = json!({"kube-applier": l});
        }
        post(&emu, "/api/v1/namespaces", obj).await;
    }
    // Offline, every namespace app is in the tree.
    let out = run(&repo.root(), &emu.url(), &["tree"]).await;
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    for ns in ["team-a", "team-b", "team-c", "team-d"] {
        assert!(stdout.contains(ns), "{}", text(&out));
    }
    let out = run(&repo.root(), &emu.url(), &["bootstrap"]).await;
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    // team-b's dry run leaves it OutOfSync: exit 1, as for any dry run.
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        stdout.contains("team-b") && stdout.contains("OutOfSync"),
        "{}",
        text(&out)
    );
    assert!(
        !stdout.contains("team-c") && !stdout.contains("team-d"),
        "{}",
        text(&out)
    );
    assert!(get(&emu, "/api/v1/namespaces/team-a/configmaps/settings")
        .await
        .is_some());
    for ns in ["team-b", "team-c", "team-d"] {
        assert!(
            get(
                &emu,
                &format!("/api/v1/namespaces/{ns}/configmaps/settings")
            )
            .await
            .is_none(),
            "{ns}: {}",
            text(&out)
        );
    }
    assert!(stderr.contains(r#"application "team-b": namespace team-b is labelled kube-applier=dry-run: reported, not written"#), "{}", text(&out));
    assert!(stderr.contains(r#"application "team-c": namespace team-c is not labelled kube-applier=on or dry-run: disabled, not synced"#), "{}", text(&out));
    assert!(stderr.contains(r#"application "team-d""#), "{}", text(&out));

    // `diff` settles the same gates: team-b differs (never written), the
    // disabled namespaces are not compared.
    let out = run(&repo.root(), &emu.url(), &["diff"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(stdout.contains("team-b"), "{}", text(&out));
    assert!(
        !stdout.contains("team-c") && !stdout.contains("team-d"),
        "{}",
        text(&out)
    );

    // Labelling a namespace `on` enables it on the next run.
    let client = emu.kube_client();
    let req = http::Request::patch("/api/v1/namespaces/team-d")
        .header("content-type", "application/merge-patch+json")
        .body(serde_json::to_vec(&json!({"metadata": {"labels": {"kube-applier": "on"}}})).unwrap())
        .unwrap();
    client.request::<Value>(req).await.expect("PATCH");
    let out = run(&repo.root(), &emu.url(), &["bootstrap"]).await;
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("team-d"),
        "{}",
        text(&out)
    );
    assert!(
        eventually(Duration::from_secs(5), || async {
            get(&emu, "/api/v1/namespaces/team-d/configmaps/settings")
                .await
                .is_some()
        })
        .await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_sync_operator_cluster_namespace_directories() {
    let repo = Repo::new();
    repo.write(
        "root.yaml",
        r#"apiVersion: kubesync.dev/v1alpha1
kind: ApplicationSet
metadata: {name: www-config}
spec:
  tier: system
  generators:
  - clusterNamespaceDirectories: {}
  template:
    metadata: {name: '{{cluster}}-{{namespace}}'}
    spec:
      source: {path: '{{path}}'}
      destination: {namespace: '{{namespace}}'}
      syncPolicy: {createNamespace: true}
"#,
    );
    for d in [
        "iowa-a/bedrock-dev",
        "iowa-a/bedrock-prod",
        "oregon-b/bedrock-dev",
        "all-clusters/bedrock-dev",
        "bedrock-stage",
    ] {
        let name = d.replace('/', "-");
        repo.write(&format!("{d}/cm.yaml"), &configmap(&name, "a: \"1\""));
    }
    let emu = emulator(fast_simulation()).await;
    let out = run(
        &repo.root(),
        &emu.url(),
        &[
            "bootstrap",
            "--cluster-name",
            "iowa-a",
            "--managed-namespaces",
            "bedrock-dev,bedrock-stage",
        ],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(stdout.contains("iowa-a-bedrock-dev"), "{stdout}");
    assert!(stdout.contains("iowa-a-bedrock-stage"), "{stdout}");
    assert!(
        !stdout.contains("bedrock-prod"),
        "not a managed namespace: {stdout}"
    );
    assert!(get(
        &emu,
        "/api/v1/namespaces/bedrock-dev/configmaps/iowa-a-bedrock-dev"
    )
    .await
    .is_some());
    assert!(get(
        &emu,
        "/api/v1/namespaces/bedrock-stage/configmaps/bedrock-stage"
    )
    .await
    .is_some());
    // Without a cluster name the set fails alone, saying what to set.
    let out = run(&repo.root(), &emu.url(), &["tree"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--cluster-name (CLUSTER_NAME)"),
        "{}",
        text(&out)
    );
}

#[test]
fn the_example_bootstraps_into_the_emulator() {
    let project = Path::new(env!("CARGO_MANIFEST_DIR"));
    let args = [
        "--root",
        "examples/argocd-applicationset/root.yaml",
        "--repo-override",
        "https://github.com/example-org/gitops-demo.git=.",
    ];
    let kubesync = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_kubesync"))
            .args(args)
            .args(extra)
            .current_dir(project)
            .env("PATH", path_with_helm())
            .env_remove("KUBECONFIG")
            .env_remove("CLUSTER_NAME")
            .output()
            .expect("run kubesync")
    };
    let render = kubesync(&["render", "apps", "-o", "json"]);
    let bootstrap = kubesync(&["bootstrap", "--emulator"]);
    assert!(render.status.success(), "{}", text(&render));
    let list: Value = serde_json::from_slice(&render.stdout).expect("json");
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i.pointer("/metadata/name").and_then(Value::as_str))
        .collect();
    assert_eq!(
        names,
        [
            "guestbook-dev",
            "guestbook-staging",
            "redis-dev",
            "redis-staging"
        ]
    );
    let staging = &list["items"][1];
    assert_eq!(
        staging.pointer("/metadata/annotations/example.com~1replicas"),
        Some(&json!("2"))
    );
    assert_eq!(
        list["items"][0].pointer("/metadata/annotations/example.com~1replicas"),
        None
    );

    assert!(bootstrap.status.success(), "{}", text(&bootstrap));
    let stdout = String::from_utf8_lossy(&bootstrap.stdout).to_string();
    assert!(
        stdout.contains("7/7 applications succeeded"),
        "{}",
        text(&bootstrap)
    );
    assert!(
        stdout.contains("config-in-cluster.json"),
        "{}",
        text(&bootstrap)
    );
    assert!(!stdout.contains("remote-eu"), "{}", text(&bootstrap));
}

#[test]
fn the_seed_layouts_example_bootstraps_into_the_emulator() {
    let out = Command::new(env!("CARGO_BIN_EXE_kubesync"))
        .args([
            "--root",
            "examples/seed-layouts/root.yaml",
            "--cluster-name",
            "iowa-a",
            "--managed-namespaces",
            "bedrock-dev,bedrock-stage",
            "bootstrap",
            "--emulator",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("KUBECONFIG")
        .env_remove("CLUSTER_NAME")
        .env_remove("MANAGED_NAMESPACES")
        .output()
        .expect("run kubesync");
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        stdout.contains("6/6 applications succeeded"),
        "{}",
        text(&out)
    );
    for app in [
        "team-a",
        "team-b",
        "iowa-a-bedrock-dev",
        "iowa-a-bedrock-stage",
    ] {
        assert!(stdout.contains(app), "{app}: {}", text(&out));
    }
    assert!(!stdout.contains("all-clusters"), "{}", text(&out));
}

#[test]
fn rolling_sync_steps_order_the_generated_apps() {
    let repo = Repo::new();
    repo.write("objects/gb/cm.yaml", &configmap("gb", "a: \"1\""));
    repo.write(
        "root.yaml",
        r#"apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata: {name: guestbook}
spec:
  goTemplate: true
  generators:
  - list:
      elements: [{env: dev}, {env: qa}, {env: prod}]
  strategy:
    type: RollingSync
    rollingSync:
      steps:
      - matchExpressions: [{key: envLabel, operator: In, values: [dev]}]
      - matchExpressions: [{key: envLabel, operator: In, values: [qa]}]
        maxUpdate: 0
      - matchExpressions: [{key: envLabel, operator: In, values: [prod]}]
        maxUpdate: 10%
  template:
    metadata:
      name: 'guestbook-{{.env}}'
      labels: {envLabel: '{{.env}}'}
    spec:
      source: {path: objects/gb}
      destination: {namespace: '{{.env}}'}
"#,
    );
    let out = offline(&repo.root(), &["plan"]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let waits = |app: &str| -> String {
        stdout
            .lines()
            .find(|l| l.trim_start().starts_with(app))
            .unwrap_or_else(|| panic!("{app}: {stdout}"))
            .split_whitespace()
            .last()
            .unwrap_or("")
            .to_string()
    };
    assert_eq!(waits("guestbook-dev "), "guestbook", "{stdout}");
    assert!(waits("guestbook-qa ").contains("guestbook-dev"), "{stdout}");
    assert!(
        waits("guestbook-prod ").contains("guestbook-qa"),
        "{stdout}"
    );
}
