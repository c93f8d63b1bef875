//! The change set, asserted directly: each case renders a temporary repo,
//! syncs it in-process against its own emulator, and checks the action and
//! the typed [`SkipReason`] of the objects it is about — no binary spawned,
//! no stdout grepped. The reasons' words are asserted once, where the JSON
//! shape is.

mod sync_support;

use kubesync::cluster::{ClusterClient, ClusterOptions};
use kubesync::emulator::{EmulatorHandle, SimulationConfig};
use kubesync::model::AppName;
use kubesync::sync::{Action, AppOutcome, Change, SkipReason, SyncOptions, SyncReport};
use serde_json::{json, Value};
use sync_support::*;

const PRUNE: &str = "  destination: {namespace: NS}\n  syncPolicy: {createNamespace: true, automated: {prune: true}, wait: {timeout: 20s}}\n";
const NO_PRUNE: &str =
    "  destination: {namespace: NS}\n  syncPolicy: {createNamespace: true, wait: {timeout: 20s}}\n";

fn spec(template: &str, ns: &str) -> String {
    template.replace("NS", ns)
}

async fn client(emu: &EmulatorHandle) -> ClusterClient {
    ClusterClient::connect(ClusterOptions::server(emu.url()))
        .await
        .expect("connect")
}

/// Asserts `name` in `app` was skipped for `reason`.
fn assert_skipped(report: &SyncReport, app_name: &str, name: &str, reason: SkipReason) {
    let c = change_of(app(report, app_name), name);
    assert_eq!(c.action, Action::Skipped, "{c:#?}");
    assert_eq!(c.reason.as_ref(), Some(&reason), "{c:#?}");
    assert_eq!(c.in_sync, reason.in_sync(), "{c:#?}");
}

fn annotated_cm(name: &str, annotations: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, annotations: {{{annotations}}}}}\ndata: {{k: v}}\n")
}

async fn cm(emu: &EmulatorHandle, ns: &str, name: &str) -> Option<Value> {
    get(emu, &format!("/api/v1/namespaces/{ns}/configmaps/{name}")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_off_on_the_object_the_live_object_and_the_namespace() {
    let emu = emulator(fast_simulation()).await;
    let c = client(&emu).await;
    c.apply(
        &json!({"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": "frozen", "annotations": {"kubesync.dev/sync": "off"}}}),
        false,
    )
    .await
    .expect("frozen namespace");
    let repo = Repo::new();
    repo.app("web", &spec(PRUNE, "web"));
    repo.app("cold", &spec(PRUNE, "frozen"));
    repo.write(
        "objects/web/off.yaml",
        &annotated_cm("off", "kubesync.dev/sync: \"off\""),
    );
    repo.write("objects/web/live.yaml", &configmap("live", "k: v"));
    repo.write("objects/cold/inside.yaml", &configmap("inside", "k: v"));
    let first = sync_repo(&repo, &emu).await;
    assert_skipped(&first, "web", "off", SkipReason::SyncOff);
    assert_skipped(&first, "cold", "inside", SkipReason::SyncOffOnNamespace);
    assert!(cm(&emu, "web", "off").await.is_none(), "written");
    assert!(cm(&emu, "frozen", "inside").await.is_none(), "written");

    // Someone turns the live object off: kubesync leaves it alone.
    c.apply(
        &json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "live", "namespace": "web",
                             "annotations": {"kubesync.dev/sync": "off"}},
                "data": {"k": "changed"}}),
        false,
    )
    .await
    .expect("annotate live");
    let second = sync_repo(&repo, &emu).await;
    assert_skipped(&second, "web", "live", SkipReason::SyncOffOnLive);
    assert_eq!(
        cm(&emu, "web", "live").await.expect("live")["data"]["k"],
        "changed"
    );
    assert!(second.all_good(), "{second:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_off_keeps_a_leftover_out_of_sync() {
    let emu = emulator(fast_simulation()).await;
    let repo = Repo::new();
    repo.app("web", &spec(NO_PRUNE, "web"));
    repo.write("objects/web/a.yaml", &configmap("a", "k: v"));
    repo.write("objects/web/b.yaml", &configmap("b", "k: v"));
    assert!(sync_repo(&repo, &emu).await.all_good());
    repo.remove("objects/web/b.yaml");
    let report = sync_repo(&repo, &emu).await;
    assert_skipped(&report, "web", "b", SkipReason::PruneOff);
    assert!(cm(&emu, "web", "b").await.is_some());
    assert!(!report.all_good(), "a leftover is OutOfSync");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moved_object_is_handed_over() {
    let emu = emulator(fast_simulation()).await;
    let repo = Repo::new();
    repo.app("a", &spec(PRUNE, "shared"));
    repo.app("b", &spec(PRUNE, "shared"));
    repo.write("objects/a/moving.yaml", &configmap("moving", "k: v"));
    repo.write("objects/b/own.yaml", &configmap("own", "k: v"));
    assert!(sync_repo(&repo, &emu).await.all_good());
    repo.remove("objects/a/moving.yaml");
    repo.write("objects/b/moving.yaml", &configmap("moving", "k: v"));
    let report = sync_repo(&repo, &emu).await;
    let to = AppName::new("b").expect("name");
    assert_skipped(&report, "a", "moving", SkipReason::HandedOver { to });
    let live = cm(&emu, "shared", "moving").await.expect("kept");
    assert_eq!(live["metadata"]["labels"]["kubesync.dev/app"], "b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_is_frozen_while_another_app_fails_to_render() {
    let emu = emulator(fast_simulation()).await;
    let repo = Repo::new();
    repo.app("a", &spec(PRUNE, "a"));
    repo.app("b", &spec(PRUNE, "b"));
    repo.write("objects/a/gone.yaml", &configmap("gone", "k: v"));
    repo.write("objects/a/stays.yaml", &configmap("stays", "k: v"));
    repo.write("objects/b/own.yaml", &configmap("own", "k: v"));
    assert!(sync_repo(&repo, &emu).await.all_good());
    repo.remove("objects/a/gone.yaml");
    repo.write("objects/b/broken.yaml", "kind: [unclosed\n");
    let report = sync_repo(&repo, &emu).await;
    let b = AppName::new("b").expect("name");
    assert_skipped(&report, "a", "gone", SkipReason::Unrendered { app: b });
    assert!(cm(&emu, "a", "gone").await.is_some(), "pruned");

    repo.remove("objects/b/broken.yaml");
    let report = sync_repo(&repo, &emu).await;
    assert_eq!(change_of(app(&report, "a"), "gone").action, Action::Pruned);
    assert!(report.all_good(), "{report:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_leaving_git_is_kept_without_permission() {
    let emu = emulator(fast_simulation()).await;
    let repo = Repo::new();
    repo.app(
        "ns",
        "  tier: system\n  syncPolicy: {automated: {prune: true}}\n",
    );
    repo.write(
        "objects/ns/a.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: keep-me}\n",
    );
    repo.write("objects/ns/c.yaml", &configmap("marker", "a: b"));
    assert!(sync_repo(&repo, &emu).await.all_good());
    repo.remove("objects/ns/a.yaml");
    let report = sync_repo(&repo, &emu).await;
    let kind = "Namespace".to_string();
    assert_skipped(&report, "ns", "keep-me", SkipReason::Cascading { kind });
    assert!(get(&emu, "/api/v1/namespaces/keep-me").await.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leftover_another_app_took_is_not_pruned() {
    let emu = emulator(fast_simulation()).await;
    let repo = Repo::new();
    repo.app("web", &spec(PRUNE, "web"));
    repo.write("objects/web/a.yaml", &configmap("a", "k: v"));
    repo.write("objects/web/taken.yaml", &configmap("taken", "k: v"));
    assert!(sync_repo(&repo, &emu).await.all_good());
    // Someone relabels it for another owner, then it leaves git.
    client(&emu)
        .await
        .apply(
            &json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "taken", "namespace": "web",
                                 "labels": {"kubesync.dev/app": "someone-else"}},
                    "data": {"k": "v"}}),
            false,
        )
        .await
        .expect("relabel");
    repo.remove("objects/web/taken.yaml");
    let report = sync_repo(&repo, &emu).await;
    assert_skipped(&report, "web", "taken", SkipReason::NotOwned);
    assert!(cm(&emu, "web", "taken").await.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wave_that_never_gets_healthy_stops_the_later_waves() {
    let emu = emulator(SimulationConfig {
        failing_images: vec!["*broken*".into()],
        ..fast_simulation()
    })
    .await;
    let repo = Repo::new();
    repo.app(
        "web",
        "  destination: {namespace: web}\n  syncPolicy: {createNamespace: true, automated: {prune: true}, wait: {timeout: 2s}}\n",
    );
    repo.write("objects/web/old.yaml", &configmap("old", "k: v"));
    assert!(sync_repo(&repo, &emu).await.all_good());
    repo.remove("objects/web/old.yaml");
    repo.write(
        "objects/web/deploy.yaml",
        &deployment("api", "example.com/broken:1"),
    );
    repo.write(
        "objects/web/later.yaml",
        &annotated_cm("later", "argocd.argoproj.io/sync-wave: \"1\""),
    );
    let report = sync_repo(&repo, &emu).await;
    let web = app(&report, "web");
    assert!(matches!(web.outcome, AppOutcome::Failed { .. }), "{web:#?}");
    assert_eq!(change_of(web, "api").action, Action::Created);
    assert_skipped(&report, "web", "later", SkipReason::WaveNotHealthy);
    // Never prune after a failure.
    assert_skipped(&report, "web", "old", SkipReason::SyncFailed);
    assert!(cm(&emu, "web", "later").await.is_none());
    assert!(cm(&emu, "web", "old").await.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_apply_skips_the_rest() {
    let emu = emulator(fast_simulation()).await;
    let repo = Repo::new();
    repo.app("web", &spec(PRUNE, "web"));
    // Into a namespace nobody creates: the apply is rejected.
    repo.write(
        "objects/web/lost.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: lost, namespace: nowhere}\ndata: {k: v}\n",
    );
    repo.write(
        "objects/web/later.yaml",
        &annotated_cm("later", "argocd.argoproj.io/sync-wave: \"1\""),
    );
    let report = sync_repo(&repo, &emu).await;
    let web = app(&report, "web");
    let lost = change_of(web, "lost");
    assert_eq!(lost.action, Action::Failed, "{lost:#?}");
    assert!(lost.error.is_some() && lost.reason.is_none(), "{lost:#?}");
    assert_skipped(&report, "web", "later", SkipReason::AfterFailure);
    match &web.outcome {
        AppOutcome::Failed { failure } => {
            let message = failure.to_string();
            assert!(message.contains("nowhere"), "{message}");
            assert_eq!(failure.reason(), "applyFailed", "{failure:?}");
            assert_eq!(failure.object().map(|o| o.name.as_str()), Some("lost"));
        }
        other => panic!("{other:?}"),
    }
}

/// `-o json` keeps each change's sentence in `message` and adds the
/// machine `reason`; the words are today's.
#[test]
fn json_of_a_skip_has_message_and_reason() {
    let object = kubesync::model::ObjectRef {
        group: String::new(),
        version: "v1".into(),
        kind: "Namespace".into(),
        namespace: None,
        name: "keep-me".into(),
    };
    let cases = [
        (SkipReason::SyncOff, "syncOff", "kubesync.dev/sync: off"),
        (
            SkipReason::PruneOff,
            "pruneOff",
            "no longer in git; prune is off",
        ),
        (
            SkipReason::NotOwned,
            "notOwned",
            "no longer in git; kept: not applied by this app",
        ),
        (
            SkipReason::WaveNotHealthy,
            "waveNotHealthy",
            "not attempted: an earlier sync wave is not healthy",
        ),
        (
            SkipReason::Cascading {
                kind: "Namespace".into(),
            },
            "cascading",
            "no longer in git; kept: deleting a Namespace deletes everything in it (annotate it kubesync.dev/prune=allow to let kubesync prune it)",
        ),
    ];
    for (reason, tag, words) in cases {
        let v = serde_json::to_value(Change::skipped(&object, false, reason)).expect("json");
        assert_eq!(v["action"], "skipped");
        assert_eq!(v["reason"], tag);
        assert_eq!(v["message"], words);
    }
}

/// A chain of apps gated on Deployments: with polling and the fallback
/// re-read both far beyond the wait timeout, only watch events can tell the
/// engine a Deployment became ready — every app must still succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waits_wake_on_watch_events() {
    let emu = emulator(fast_simulation()).await;
    let c = client(&emu).await;
    let repo = Repo::new();
    for (name, deps) in [("first", ""), ("second", "first"), ("third", "second")] {
        let mut extra = spec(PRUNE, name);
        if !deps.is_empty() {
            extra.push_str(&format!("  dependsOn: [{deps}]\n"));
        }
        repo.app(name, &extra);
        repo.write(
            &format!("objects/{name}/web.yaml"),
            &deployment("web", "nginx:1.27"),
        );
    }
    let opts = SyncOptions {
        poll_interval: std::time::Duration::from_secs(3600),
        watch_fallback: std::time::Duration::from_secs(3600),
        timeout: Some(std::time::Duration::from_secs(30)),
        ..SyncOptions::default()
    };
    let report = sync_with(&repo, &c, &opts).await;
    assert!(report.all_good(), "{report:#?}");
    for name in ["first", "second", "third"] {
        assert_eq!(app(&report, name).outcome, AppOutcome::Succeeded);
    }
}

/// A re-sync of a converged tree writes nothing and reads by list: no GET
/// per object (the GETs left are discovery and the status CRD checks).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn converged_resync_reads_by_list_and_writes_nothing() {
    let emu = emulator(fast_simulation()).await;
    let repo = Repo::new();
    for name in ["alpha", "beta", "gamma"] {
        repo.app(name, &spec(PRUNE, name));
        for i in 0..4 {
            repo.write(
                &format!("objects/{name}/cm{i}.yaml"),
                &configmap(&format!("cm{i}"), "k: v"),
            );
        }
        repo.write(
            &format!("objects/{name}/web.yaml"),
            &deployment("web", "nginx:1.27"),
        );
    }
    let first = sync_with(&repo, &client(&emu).await, &SyncOptions::default()).await;
    assert!(first.all_good(), "{first:#?}");
    let c = client(&emu).await;
    let before = c.request_stats();
    let second = sync_with(&repo, &c, &SyncOptions::default()).await;
    assert!(second.all_good(), "{second:#?}");
    let used = c.request_stats().since(&before);
    assert_eq!(used.writes(), 0, "{}", used.summary());
    // 15 objects, 3 namespaces and 3 Application objects: an old-style
    // re-sync sent a GET for each; discovery (4 API groups) and the CRD and
    // status-namespace checks remain.
    let gets = used.reads - used.lists;
    assert!(gets <= 6, "{}", used.summary());
    // At most one list per kind and namespace: ConfigMaps and Deployments
    // in each of the 3 namespaces, Namespaces, Application objects, and the
    // orphaned-Application check.
    assert!(used.lists <= 9, "{}", used.summary());
}
