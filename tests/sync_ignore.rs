//! `ignoreDifferences` end to end against the emulator: a field another
//! controller owns (an HPA's `replicas`, a sidecar image, a second field
//! manager's fields) is left as that controller set it, the app is Synced,
//! and a re-sync writes nothing; `RespectIgnoreDifferences=true` keeps the
//! ignored fields when git changes something else; `kubesync diff` shows
//! the difference without a rule and not with one (per app, or global from
//! `--settings`). Without a rule, the same drift is repaired — the control
//! that shows each test would catch a regression.

mod sync_support;

use kubesync::diff::SyncStatus;
use kubesync::emulator::EmulatorHandle;
use kubesync::sync::{Action, SyncReport};
use serde_json::{json, Value};
use sync_support::{app, change_of, emulator, fast_simulation, get, run, sync_repo, writes, Repo};

const DEPLOY: &str = "/apis/apps/v1/namespaces/web/deployments";

fn deployment(name: &str, replicas: u32, images: &[(&str, &str)]) -> String {
    let containers: Vec<String> = images
        .iter()
        .map(|(n, i)| format!("{{name: {n}, image: \"{i}\"}}"))
        .collect();
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}, namespace: web}}\nspec:\n  replicas: {replicas}\n  selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata: {{labels: {{app: {name}}}}}\n    spec:\n      containers: [{}]\n",
        containers.join(", ")
    )
}

/// An app `name` (kubesync kind) rendering `objects/<name>/d.yaml`, with `extra` under `spec:`.
fn add_app(repo: &Repo, name: &str, object: &str, extra: &str) {
    repo.write(&format!("objects/{name}/d.yaml"), object);
    let policy = if extra.contains("syncPolicy:") {
        ""
    } else {
        "  syncPolicy: {createNamespace: true}\n"
    };
    repo.app(
        name,
        &format!("  tier: system\n  destination: {{namespace: web}}\n{policy}{extra}"),
    );
}

/// A new emulator with `repo` synced into it once: the emulator and that
/// first report.
async fn synced(repo: &Repo) -> (EmulatorHandle, SyncReport) {
    let emu = emulator(fast_simulation()).await;
    let first = sync_repo(repo, &emu).await;
    (emu, first)
}

/// Another controller's write to each named Deployment: `manager` sends
/// `body(name)` as a `kind` patch.
async fn drift(
    emu: &EmulatorHandle,
    names: &[&str],
    manager: &str,
    kind: &str,
    body: impl Fn(&str) -> Value,
) {
    for name in names {
        patch_as(emu, &format!("{DEPLOY}/{name}"), manager, kind, body(name)).await;
    }
}

/// A write by another field manager (an Update, as a controller makes it).
async fn patch_as(emu: &EmulatorHandle, path: &str, manager: &str, kind: &str, body: Value) {
    let client = emu.kube_client();
    let content_type = match kind {
        "merge" => "application/merge-patch+json",
        "strategic" => "application/strategic-merge-patch+json",
        "apply" => "application/apply-patch+yaml",
        other => panic!("{other}"),
    };
    let force = if kind == "apply" { "&force=true" } else { "" };
    let req = http::Request::patch(format!("{path}?fieldManager={manager}{force}"))
        .header("content-type", content_type)
        .body(serde_json::to_vec(&body).unwrap())
        .unwrap();
    client
        .request::<Value>(req)
        .await
        .unwrap_or_else(|e| panic!("PATCH {path} as {manager}: {e}"));
}

async fn field(emu: &EmulatorHandle, name: &str, pointer: &str) -> Value {
    let d = get(emu, &format!("{DEPLOY}/{name}")).await.expect(name);
    d.pointer(pointer).cloned().unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hpa_replicas_ignored_by_json_pointer_stay_and_cost_no_write() {
    let repo = Repo::new();
    add_app(
        &repo,
        "scaled",
        &deployment("scaled", 1, &[("app", "nginx:1")]),
        "  ignoreDifferences:\n  - {group: apps, kind: Deployment, jsonPointers: [/spec/replicas]}\n",
    );
    // The control: the same drift, no rule.
    add_app(
        &repo,
        "unruled",
        &deployment("unruled", 1, &[("app", "nginx:1")]),
        "",
    );
    let (emu, first) = synced(&repo).await;
    assert_eq!(app(&first, "scaled").sync, SyncStatus::Synced);

    // The HPA scales both (kube-controller-manager writes the scale).
    drift(
        &emu,
        &["scaled", "unruled"],
        "kube-controller-manager",
        "merge",
        |_| json!({"spec": {"replicas": 4}}),
    )
    .await;
    let before = writes(&emu);
    let again = sync_repo(&repo, &emu).await;
    let scaled = app(&again, "scaled");
    assert_eq!(scaled.sync, SyncStatus::Synced, "{scaled:#?}");
    assert_eq!(change_of(scaled, "scaled").action, Action::Unchanged);
    assert_eq!(field(&emu, "scaled", "/spec/replicas").await, 4);
    // The control is repaired: git's 1 replica again.
    assert_eq!(
        change_of(app(&again, "unruled"), "unruled").action,
        Action::Configured
    );
    assert_eq!(field(&emu, "unruled", "/spec/replicas").await, 1);
    let control_writes = writes(&emu) - before;
    assert!(control_writes >= 1);

    // Once converged, a re-sync writes nothing at all.
    let before = writes(&emu);
    let third = sync_repo(&repo, &emu).await;
    assert_eq!(app(&third, "scaled").sync, SyncStatus::Synced);
    assert_eq!(writes(&emu), before, "a converged re-sync wrote");
    assert_eq!(field(&emu, "scaled", "/spec/replicas").await, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jq_expression_on_a_container_list_and_respect_ignore_differences() {
    let repo = Repo::new();
    let rule = "  ignoreDifferences:\n  - group: apps\n    kind: Deployment\n    jqPathExpressions: ['.spec.template.spec.containers[] | select(.name == \"sidecar\") | .image']\n";
    let images = [("app", "app:1"), ("sidecar", "sc:1")];
    add_app(
        &repo,
        "respected",
        &deployment("respected", 1, &images),
        &format!("{rule}  syncPolicy: {{createNamespace: true, syncOptions: [RespectIgnoreDifferences=true]}}\n"),
    );
    add_app(&repo, "reset", &deployment("reset", 1, &images), rule);
    let (emu, _) = synced(&repo).await;

    // A mutating webhook or another tool pins the sidecar's image.
    drift(
        &emu,
        &["respected", "reset"],
        "sidecar-injector",
        "strategic",
        |_| json!({"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "image": "sc:9"}]}}}}),
    )
    .await;
    let before = writes(&emu);
    let again = sync_repo(&repo, &emu).await;
    for name in ["respected", "reset"] {
        let r = app(&again, name);
        assert_eq!(r.sync, SyncStatus::Synced, "{r:#?}");
        assert_eq!(change_of(r, name).action, Action::Unchanged);
    }
    assert_eq!(writes(&emu), before, "ignored drift was rewritten");

    // Git changes the app container: both are applied; only the app with
    // RespectIgnoreDifferences keeps the sidecar image the injector set.
    let images = [("app", "app:2"), ("sidecar", "sc:1")];
    repo.write(
        "objects/respected/d.yaml",
        &deployment("respected", 1, &images),
    );
    repo.write("objects/reset/d.yaml", &deployment("reset", 1, &images));
    let third = sync_repo(&repo, &emu).await;
    for name in ["respected", "reset"] {
        assert_eq!(
            change_of(app(&third, name), name).action,
            Action::Configured
        );
        let containers = field(&emu, name, "/spec/template/spec/containers").await;
        let image = |c: &str| {
            containers
                .as_array()
                .unwrap()
                .iter()
                .find(|x| x["name"] == c)
                .map(|x| x["image"].clone())
                .unwrap()
        };
        assert_eq!(image("app"), "app:2", "{name}");
        let want = if name == "respected" { "sc:9" } else { "sc:1" };
        assert_eq!(image("sidecar"), want, "{name}: {containers}");
    }
    // And the respected app is converged: nothing more to write.
    let before = writes(&emu);
    let fourth = sync_repo(&repo, &emu).await;
    assert_eq!(app(&fourth, "respected").sync, SyncStatus::Synced);
    assert_eq!(
        change_of(app(&fourth, "respected"), "respected").action,
        Action::Unchanged
    );
    assert_eq!(writes(&emu), before, "a converged re-sync wrote");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fields_of_a_trusted_field_manager_are_ignored() {
    let repo = Repo::new();
    add_app(
        &repo,
        "trusted",
        &deployment("trusted", 1, &[("app", "app:1")]),
        "  ignoreDifferences:\n  - {group: apps, kind: Deployment, managedFieldsManagers: [rollout-operator]}\n",
    );
    add_app(
        &repo,
        "untrusted",
        &deployment("untrusted", 1, &[("app", "app:1")]),
        "  ignoreDifferences:\n  - {group: apps, kind: Deployment, managedFieldsManagers: [someone-else]}\n",
    );
    let (emu, _) = synced(&repo).await;
    // A second field manager takes replicas and the image (server-side apply, forced).
    drift(
        &emu,
        &["trusted", "untrusted"],
        "rollout-operator",
        "apply",
        |name| json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": "web"},
                   "spec": {"replicas": 3, "template": {"spec": {"containers": [{"name": "app", "image": "app:canary"}]}}}}),

    )
    .await;
    let before = writes(&emu);
    let again = sync_repo(&repo, &emu).await;
    let trusted = app(&again, "trusted");
    assert_eq!(trusted.sync, SyncStatus::Synced, "{trusted:#?}");
    assert_eq!(change_of(trusted, "trusted").action, Action::Unchanged);
    assert_eq!(field(&emu, "trusted", "/spec/replicas").await, 3);
    assert_eq!(
        field(&emu, "trusted", "/spec/template/spec/containers/0/image").await,
        "app:canary"
    );
    // Rules naming another manager do not ignore these fields: git wins.
    assert_eq!(
        change_of(app(&again, "untrusted"), "untrusted").action,
        Action::Configured
    );
    assert_eq!(field(&emu, "untrusted", "/spec/replicas").await, 1);
    assert!(writes(&emu) > before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diff_shows_ignored_fields_only_without_a_rule() {
    let repo = Repo::new();
    add_app(
        &repo,
        "plain",
        &deployment("plain", 1, &[("app", "nginx:1")]),
        "",
    );
    let (emu, _) = synced(&repo).await;
    patch_as(
        &emu,
        &format!("{DEPLOY}/plain"),
        "kube-controller-manager",
        "merge",
        json!({"spec": {"replicas": 6}}),
    )
    .await;
    let root = repo.root();
    let url = emu.url().to_string();

    // No rule: OutOfSync, exit 1, the replicas line in the diff.
    let out = run(&root, &url, &["diff", "plain"]).await;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("-  replicas: 6") && text.contains("+  replicas: 1"),
        "{text}"
    );

    // A global rule from --settings: Synced, exit 0, no diff.
    let settings = repo.path().join("settings.yaml");
    std::fs::write(
        &settings,
        "ignoreDifferences:\n- {group: apps, kind: Deployment, jsonPointers: [/spec/replicas]}\n",
    )
    .unwrap();
    let s2 = settings.display().to_string();
    let out = run(&root, &url, &["--settings", &s2, "diff", "plain"]).await;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!text.contains("replicas"), "{text}");

    // The same rule on the app: the same.
    add_app(
        &repo,
        "plain",
        &deployment("plain", 1, &[("app", "nginx:1")]),
        "  ignoreDifferences:\n  - {group: apps, kind: Deployment, name: plain, jsonPointers: [/spec/replicas]}\n",
    );
    let out = run(&root, &url, &["diff", "plain"]).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // An invalid settings file is a configuration error (exit 2) naming it.
    std::fs::write(
        &settings,
        "ignoreDifferences:\n- {kind: Deployment, jsonPointers: [replicas]}\n",
    )
    .unwrap();
    let s2 = settings.display().to_string();
    let out = run(&root, &url, &["--settings", &s2, "diff"]).await;
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("settings.yaml: ignoreDifferences[0].jsonPointers[0]"),
        "{err}"
    );
}

/// `Replace=true` (a PUT instead of an apply) honours
/// `RespectIgnoreDifferences=true` as the apply does: the HPA's `replicas`
/// stays when git changes the image. The control, without the option, is
/// replaced with git's replicas.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replace_with_respect_ignore_differences_keeps_the_ignored_field() {
    let repo = Repo::new();
    let replaced = |name: &str, image: &str| {
        deployment(name, 1, &[("app", image)]).replace(
            &format!("metadata: {{name: {name}, namespace: web}}"),
            &format!("metadata: {{name: {name}, namespace: web, annotations: {{argocd.argoproj.io/sync-options: Replace=true}}}}"),
        )
    };
    let rule = "  ignoreDifferences:\n  - {group: apps, kind: Deployment, jsonPointers: [/spec/replicas]}\n";
    add_app(
        &repo,
        "kept",
        &replaced("kept", "app:1"),
        &format!("{rule}  syncPolicy: {{createNamespace: true, syncOptions: [RespectIgnoreDifferences=true]}}\n"),
    );
    add_app(&repo, "control", &replaced("control", "app:1"), rule);
    let (emu, first) = synced(&repo).await;
    assert!(first.all_good(), "{first:#?}");
    drift(
        &emu,
        &["kept", "control"],
        "kube-controller-manager",
        "merge",
        |_| json!({"spec": {"replicas": 4}}),
    )
    .await;
    repo.write("objects/kept/d.yaml", &replaced("kept", "app:2"));
    repo.write("objects/control/d.yaml", &replaced("control", "app:2"));
    let before = emu.requests().count("update", "deployments.apps");
    let again = sync_repo(&repo, &emu).await;
    // Both went through a replace (PUT), not an apply.
    assert_eq!(
        emu.requests().count("update", "deployments.apps") - before,
        2,
        "{again:#?}"
    );
    for name in ["kept", "control"] {
        let c = change_of(app(&again, name), name);
        assert_eq!(c.action, Action::Configured, "{c:#?}");
        assert_eq!(
            field(&emu, name, "/spec/template/spec/containers/0/image").await,
            "app:2"
        );
    }
    assert_eq!(field(&emu, "kept", "/spec/replicas").await, 4);
    assert_eq!(field(&emu, "control", "/spec/replicas").await, 1);
}

/// `kubesync diff` reads an app's live objects by one LIST per kind and
/// namespace, never a GET per object, and a converged object costs no
/// dry-run apply; a changed one costs one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diff_reads_by_list_and_dry_runs_only_what_changed() {
    let repo = Repo::new();
    for i in 0..12 {
        repo.write(
            &format!("objects/many/cm-{i:02}.yaml"),
            &format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cm-{i:02}, namespace: web}}\ndata: {{k: v{i}}}\n"),
        );
    }
    add_app(
        &repo,
        "many",
        &deployment("many", 1, &[("app", "app:1")]),
        "",
    );
    let (emu, first) = synced(&repo).await;
    assert!(first.all_good());
    let client = kubesync::cluster::ClusterClient::connect(
        kubesync::cluster::ClusterOptions::server(emu.url()),
    )
    .await
    .expect("connect");
    let trees = |repo_root: std::path::PathBuf| async move {
        tokio::task::spawn_blocking(move || sync_support::tree_of(&repo_root))
            .await
            .expect("join")
    };
    // Converged: every object Same, no GET of an object, no dry run.
    let tree = trees(repo.root()).await;
    let counts = emu.requests();
    let diffs = kubesync::sync::diff(&tree, &client, None).await;
    let after = emu.requests();
    let many = diffs
        .iter()
        .find(|d| d.name.as_str() == "many")
        .expect("many");
    assert_eq!(many.error, None);
    assert_eq!(many.objects.len(), 13, "{many:#?}");
    assert_eq!(many.sync_status(), SyncStatus::Synced, "{many:#?}");
    let delta = |verb: &str, res: &str| after.count(verb, res) - counts.count(verb, res);
    assert_eq!(delta("get", "configmaps"), 0, "a GET per object");
    assert_eq!(delta("get", "deployments.apps"), 0);
    assert_eq!(delta("list", "configmaps"), 1);
    assert_eq!(delta("list", "deployments.apps"), 1);
    assert_eq!(
        delta("watch", "configmaps"),
        0,
        "a one-shot diff watches nothing"
    );
    assert_eq!(
        after.verb("patch") - counts.verb("patch"),
        0,
        "dry runs of converged objects"
    );

    // One object changed in git: one dry run, still no GET.
    repo.write(
        "objects/many/cm-03.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm-03, namespace: web}\ndata: {k: changed}\n",
    );
    let tree = trees(repo.root()).await;
    let counts = emu.requests();
    let diffs = kubesync::sync::diff(&tree, &client, None).await;
    let after = emu.requests();
    let many = diffs
        .iter()
        .find(|d| d.name.as_str() == "many")
        .expect("many");
    assert_eq!(many.sync_status(), SyncStatus::OutOfSync);
    let changed: Vec<_> = many
        .objects
        .iter()
        .filter(|o| o.kind != kubesync::diff::ObjectDiffKind::Same)
        .collect();
    assert_eq!(changed.len(), 1, "{changed:#?}");
    assert_eq!(changed[0].object.name, "cm-03");
    assert!(changed[0].diff.contains("changed"), "{}", changed[0].diff);
    assert_eq!(
        after.count("patch", "configmaps") - counts.count("patch", "configmaps"),
        1
    );
    assert_eq!(
        after.count("get", "configmaps") - counts.count("get", "configmaps"),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jq_expression_that_overruns_its_time_limit_fails_its_app_naming_it() {
    let emu = emulator(fast_simulation()).await;
    let repo = Repo::new();
    // A loop that yields nothing for a long while (finite, so the thread
    // left running ends on its own).
    let slow = "(range(100000000) | select(. < 0)) as $x | .spec.replicas";
    add_app(
        &repo,
        "slowjq",
        &deployment("slowjq", 1, &[("app", "nginx:1")]),
        &format!(
            "  ignoreDifferences:\n    - group: apps\n      kind: Deployment\n      jqPathExpressions: ['{slow}']\n"
        ),
    );
    add_app(
        &repo,
        "fine",
        &deployment("fine", 1, &[("app", "nginx:1")]),
        "",
    );
    let report = sync_repo(&repo, &emu).await;
    let failed = app(&report, "slowjq");
    assert!(!failed.outcome.is_success(), "{failed:#?}");
    let message = failed.message();
    assert!(
        message.contains(&format!(
            "jqPathExpressions \"{slow}\" did not finish within 1s"
        )) && message.contains("Deployment.apps web/slowjq"),
        "{message}"
    );
    // Nothing of it was applied; the other app synced.
    assert!(get(&emu, &format!("{DEPLOY}/slowjq")).await.is_none());
    assert!(app(&report, "fine").outcome.is_success(), "{report:#?}");
    // Again: it fails at once, naming it (not run again).
    let again = sync_repo(&repo, &emu).await;
    assert!(app(&again, "slowjq")
        .message()
        .contains("is not run again until kubesync restarts"));
}
