//! Kubernetes Events on Application objects, against the emulator: the
//! events a real in-process sync produces, none in a steady state (zero
//! writes), repeats counted on one Event object, the per-app rate limit,
//! and an expired event re-created.

mod sync_support;

use chrono::{TimeZone, Utc};
use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, DeleteParams, ListParams};
use kubesync::events::*;
use kubesync::sync::status::{ApplicationStatus, STATUS_NAMESPACE};
use sync_support::*;

const SPEC: &str = "  destination: {namespace: web}\n  syncPolicy: {createNamespace: true, wait: {timeout: 20s}}\n";

async fn events(emu: &kubesync::emulator::EmulatorHandle) -> Vec<Event> {
    let api: Api<Event> = Api::namespaced(emu.kube_client(), STATUS_NAMESPACE);
    let mut list = api.list(&ListParams::default()).await.unwrap().items;
    list.sort_by_key(|e| e.last_timestamp.clone().map(|t| t.0));
    list
}

async fn status_of(
    emu: &kubesync::emulator::EmulatorHandle,
    app: &str,
) -> Option<ApplicationStatus> {
    get(
        emu,
        &format!("/apis/kubesync.dev/v1alpha1/namespaces/{STATUS_NAMESPACE}/applications/{app}"),
    )
    .await
    .map(|o| ApplicationStatus::of(&o))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_sync_records_its_events_and_a_steady_state_none() {
    let emu = emulator(fast_simulation()).await;
    let repo = Repo::new();
    repo.app("web", SPEC);
    repo.write("objects/web/cm.yaml", &configmap("web-config", "a: b"));
    let recorder = EventRecorder::new(emu.kube_client(), "kubesync-test-0");

    // First sync: the status did not exist.
    let before = status_of(&emu, "web").await;
    let report = sync_repo(&repo, &emu).await;
    let web = app(&report, "web");
    let mut evs: Vec<AppEvent> = started("web", &web.revision, before.as_ref())
        .into_iter()
        .collect();
    evs.extend(after_sync(web, before.as_ref()));
    recorder.publish_all(&evs).await;
    let written = events(&emu).await;
    let reasons: Vec<_> = written.iter().map(|e| e.reason.clone().unwrap()).collect();
    assert_eq!(reasons.len(), 2, "{written:#?}");
    assert!(reasons.contains(&"SyncStarted".to_string()));
    assert!(reasons.contains(&"SyncSucceeded".to_string()));
    let application = get(
        &emu,
        &format!("/apis/kubesync.dev/v1alpha1/namespaces/{STATUS_NAMESPACE}/applications/web"),
    )
    .await
    .expect("Application web");
    for e in &written {
        let io = &e.involved_object;
        assert_eq!(io.kind.as_deref(), Some("Application"));
        assert_eq!(io.name.as_deref(), Some("web"));
        assert_eq!(io.namespace.as_deref(), Some(STATUS_NAMESPACE));
        assert_eq!(
            io.uid.as_deref(),
            application["metadata"]["uid"].as_str(),
            "kubectl describe finds events by uid"
        );
        assert_eq!(e.type_.as_deref(), Some("Normal"));
        assert_eq!(e.count, Some(1));
        assert_eq!(e.reporting_component.as_deref(), Some("kubesync"));
    }

    // Steady state: the same revision again — nothing to say, nothing
    // written (the sync's own zero writes included).
    for _ in 0..3 {
        let before = status_of(&emu, "web").await;
        emu.reset_requests();
        let report = sync_repo(&repo, &emu).await;
        let web = app(&report, "web");
        let mut evs: Vec<AppEvent> = started("web", &web.revision, before.as_ref())
            .into_iter()
            .collect();
        evs.extend(after_sync(web, before.as_ref()));
        assert!(evs.is_empty(), "{evs:#?}");
        recorder.publish_all(&evs).await;
        assert_eq!(writes(&emu), 0, "{:?}", emu.requests().by_verb);
    }
    assert_eq!(events(&emu).await.len(), 2);

    // Someone edits the ConfigMap: the next sync repairs it — one event.
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(emu.kube_client(), "web");
    let patch = serde_json::json!({"data": {"a": "edited"}});
    cms.patch(
        "web-config",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&patch),
    )
    .await
    .unwrap();
    let before = status_of(&emu, "web").await;
    let report = sync_repo(&repo, &emu).await;
    let web = app(&report, "web");
    assert!(started("web", &web.revision, before.as_ref()).is_none());
    let evs = after_sync(web, before.as_ref());
    assert_eq!(evs.len(), 1, "{evs:#?} {web:#?}");
    assert_eq!(evs[0].reason, Reason::DriftRepaired);
    recorder.publish_all(&evs).await;
    assert!(events(&emu)
        .await
        .iter()
        .any(|e| e.reason.as_deref() == Some("DriftRepaired")));
}

fn t(secs: i64) -> chrono::DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000 + secs, 0).unwrap()
}

async fn setup_namespace(emu: &kubesync::emulator::EmulatorHandle) {
    let ns: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(emu.kube_client());
    let obj: k8s_openapi::api::core::v1::Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": STATUS_NAMESPACE}}))
            .unwrap();
    ns.create(&Default::default(), &obj).await.unwrap();
}

#[tokio::test]
async fn repeats_are_counted_on_one_event_and_rate_limited() {
    let emu = emulator(fast_simulation()).await;
    setup_namespace(&emu).await;
    let recorder = EventRecorder::with_config(
        emu.kube_client(),
        "kubesync-test-0",
        CorrelatorConfig {
            burst: 4,
            ..Default::default()
        },
    );
    let fail = AppEvent {
        app: "api".into(),
        reason: Reason::SyncFailed,
        message: "sync to revision abc1234 failed: Deployment api/api: forbidden".into(),
    };
    // Three failures a minute apart: one Event, count 3 (2 writes left).
    for i in 0..3 {
        recorder.try_publish(&fail, t(i * 60)).await.unwrap();
    }
    let list = events(&emu).await;
    assert_eq!(list.len(), 1, "{list:#?}");
    assert_eq!(list[0].count, Some(3));
    assert_eq!(list[0].type_.as_deref(), Some("Warning"));
    assert_eq!(
        list[0].first_timestamp.as_ref().map(|t| t.0.as_second()),
        Some(1_800_000_000)
    );
    assert_eq!(
        list[0].last_timestamp.as_ref().map(|t| t.0.as_second()),
        Some(1_800_000_120)
    );

    // The bucket holds one more write; then everything is dropped …
    emu.reset_requests();
    for i in 3..10 {
        recorder.try_publish(&fail, t(120 + i)).await.unwrap();
    }
    assert_eq!(writes(&emu), 1, "{:?}", emu.requests().by_verb);
    assert_eq!(events(&emu).await[0].count, Some(4));
    // … until the bucket refills (one write per 5 minutes), and that write
    // carries every occurrence.
    recorder.try_publish(&fail, t(120 + 300)).await.unwrap();
    assert_eq!(events(&emu).await[0].count, Some(11));

    // The event expired (or was deleted): the next repeat creates it anew.
    let api: Api<Event> = Api::namespaced(emu.kube_client(), STATUS_NAMESPACE);
    let name = events(&emu).await[0].metadata.name.clone().unwrap();
    api.delete(&name, &DeleteParams::default()).await.unwrap();
    recorder.try_publish(&fail, t(120 + 600)).await.unwrap();
    let list = events(&emu).await;
    assert_eq!(list.len(), 1, "{list:#?}");
    assert_eq!(list[0].count, Some(1));

    // Another app is not limited by this one's bucket.
    let other = AppEvent {
        app: "db".into(),
        reason: Reason::HealthDegraded,
        message: "health went Degraded at revision abc1234".into(),
    };
    recorder.try_publish(&other, t(120 + 601)).await.unwrap();
    assert_eq!(events(&emu).await.len(), 2);
    // No uid to find for an app without an Application object: the event
    // still names it.
    let list = events(&emu).await;
    assert_eq!(list[1].involved_object.name.as_deref(), Some("db"));
}
