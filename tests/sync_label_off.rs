//! kube-applier's per-object gate, in-process against the emulator: in a
//! namespace enabled with the gate's label (`LABEL=on`), an object whose
//! manifest carries `LABEL: off` is not applied, not pruned, and reported
//! skipped as `LabelOff`; a live object someone labelled `LABEL=off` is
//! left alone too (`LabelOffOnLive` while git still has it, `KeptLabelOff`
//! once git drops it), when the sync knows the label (kube-applier's
//! environment sets it: `SyncOptions::off_label`).

mod sync_support;

use std::collections::{BTreeMap, HashMap};

use kubesync::sync::{Action, SkipReason, SyncOptions};
use serde_json::json;
use sync_support::*;

const LABEL: &str = "kube-applier";

/// The root kube-applier's environment stands for: each level-1 directory
/// of `manifests/` is its namespace's app, gated by `LABEL`, with prune.
fn repo() -> Repo {
    let repo = Repo::new();
    repo.write(
        "root.yaml",
        &format!(
            "apiVersion: kubesync.dev/v1alpha1
kind: ApplicationSet
metadata: {{name: kube-applier}}
spec:
  tier: system
  generators:
    - namespaceDirectories: {{path: manifests, label: {LABEL}}}
  template:
    metadata: {{name: '{{{{namespace}}}}'}}
    spec:
      source: {{path: '{{{{path}}}}'}}
      destination: {{namespace: '{{{{namespace}}}}'}}
      syncPolicy: {{automated: {{prune: true}}}}
"
        ),
    );
    repo
}

/// The emulator, with namespace team-a labelled `LABEL=on` (enabled).
async fn cluster() -> kubesync::emulator::EmulatorHandle {
    let emu = emulator(fast_simulation()).await;
    let api: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(emu.kube_client());
    api.patch(
        "team-a",
        &kube::api::PatchParams::apply("test").force(),
        &kube::api::Patch::Apply(json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "team-a", "labels": {LABEL: "on"}},
        })),
    )
    .await
    .expect("namespace");
    emu
}

fn cm(name: &str, data: &str, off: bool) -> String {
    let labels = if off {
        format!("\n  labels: {{{LABEL}: 'off'}}")
    } else {
        String::new()
    };
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}{labels}\ndata: {{{data}}}\n"
    )
}

/// Renders, gates on team-a being `LABEL=on`, and syncs with `off_label`.
async fn sync(
    repo: &Repo,
    emu: &kubesync::emulator::EmulatorHandle,
    off_label: Option<&str>,
) -> kubesync::sync::AppReport {
    let root = repo.root();
    let mut tree = tokio::task::spawn_blocking(move || tree_of(&root))
        .await
        .expect("join");
    let labels: HashMap<String, BTreeMap<String, String>> = HashMap::from([(
        "team-a".to_string(),
        BTreeMap::from([(LABEL.to_string(), "on".to_string())]),
    )]);
    kubesync::tree::gate_namespaces(&mut tree, &labels);
    let graph = tree.graph().expect("graph");
    let client = kubesync::cluster::ClusterClient::connect(
        kubesync::cluster::ClusterOptions::server(emu.url()),
    )
    .await
    .expect("connect");
    let opts = SyncOptions {
        off_label: off_label.map(str::to_string),
        ..SyncOptions::default()
    };
    let report = kubesync::sync::run(&tree, &graph, &client, &opts, &kubesync::sync::Quiet).await;
    app(&report, "team-a").clone()
}

async fn data(emu: &kubesync::emulator::EmulatorHandle, name: &str) -> Option<serde_json::Value> {
    get(emu, &format!("/api/v1/namespaces/team-a/configmaps/{name}"))
        .await
        .map(|v| v["data"].clone())
}

fn skipped(r: &kubesync::sync::AppReport, name: &str) -> SkipReason {
    let c = change_of(r, name);
    assert_eq!(c.action, Action::Skipped, "{name}: {c:#?}");
    c.reason.clone().expect("a skip has a reason")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_labelled_off_in_git_are_neither_applied_nor_pruned() {
    let repo = repo();
    repo.write("manifests/team-a/web.yaml", &cm("web", "k: v1", false));
    repo.write("manifests/team-a/paused.yaml", &cm("paused", "k: v1", true));
    let emu = cluster().await;
    let off = || SkipReason::LabelOff {
        label: LABEL.to_string(),
    };

    let r = sync(&repo, &emu, None).await;
    assert_eq!(change_of(&r, "web").action, Action::Created);
    assert_eq!(skipped(&r, "paused"), off());
    assert_eq!(
        skipped(&r, "paused").to_string(),
        "labelled kube-applier=off"
    );
    assert_eq!(data(&emu, "paused").await, None, "paused was applied");

    // Enabled: applied. Turned off again with a change: the change is not
    // applied and the object is not pruned (it is still in git).
    repo.write(
        "manifests/team-a/paused.yaml",
        &cm("paused", "k: v1", false),
    );
    let r = sync(&repo, &emu, None).await;
    assert_eq!(change_of(&r, "paused").action, Action::Created);
    repo.write("manifests/team-a/paused.yaml", &cm("paused", "k: v2", true));
    let r = sync(&repo, &emu, None).await;
    assert_eq!(skipped(&r, "paused"), off());
    assert_eq!(data(&emu, "paused").await, Some(json!({"k": "v1"})));
    assert!(
        r.changes.iter().all(|c| c.action != Action::Pruned),
        "{:#?}",
        r.changes
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_objects_labelled_off_are_left_alone_when_the_label_is_known() {
    let repo = repo();
    repo.write("manifests/team-a/web.yaml", &cm("web", "k: v1", false));
    let emu = cluster().await;
    let r = sync(&repo, &emu, Some(LABEL)).await;
    assert_eq!(change_of(&r, "web").action, Action::Created);

    // Someone pauses it in the cluster.
    let api: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
        kube::Api::namespaced(emu.kube_client(), "team-a");
    api.patch(
        "web",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(json!({"metadata": {"labels": {LABEL: "off"}}})),
    )
    .await
    .expect("label");
    repo.write("manifests/team-a/web.yaml", &cm("web", "k: v2", false));
    let r = sync(&repo, &emu, Some(LABEL)).await;
    assert_eq!(
        skipped(&r, "web"),
        SkipReason::LabelOffOnLive {
            label: LABEL.to_string()
        }
    );
    assert_eq!(data(&emu, "web").await, Some(json!({"k": "v1"})));

    // Gone from git: a leftover, kept (the app prunes otherwise).
    std::fs::remove_file(repo.path().join("manifests/team-a/web.yaml")).expect("rm");
    repo.write("manifests/team-a/other.yaml", &cm("other", "k: v1", false));
    let r = sync(&repo, &emu, Some(LABEL)).await;
    assert_eq!(
        skipped(&r, "web"),
        SkipReason::KeptLabelOff {
            label: LABEL.to_string()
        }
    );
    assert_eq!(data(&emu, "web").await, Some(json!({"k": "v1"})));

    // Without the label known, the same leftover is pruned: the label was
    // what kept it.
    let r = sync(&repo, &emu, None).await;
    assert_eq!(change_of(&r, "web").action, Action::Pruned);
}
