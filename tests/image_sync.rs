//! `kubesync image-sync` against a real registry on loopback (Debian's
//! `docker-registry`, images pushed with `skopeo`) and the emulator as the
//! cluster, whose pods report the digest the test says a tag runs
//! (`SimulationConfig::image_digests`). In-process through
//! `kubesync::image::run_once` for the change set, and through the binary
//! for output and exit codes. Each test starts its own registry and
//! emulator (tests/support/registry.rs).

mod support;
mod sync_support;

use std::time::Duration;

use kubesync::cluster::{ClusterClient, ClusterOptions};
use kubesync::emulator::EmulatorHandle;
use kubesync::image::sync::{
    ContainerOutcome, FieldSelector, Namespaces, PinReason, WorkloadReport, WriteOutcome,
};
use kubesync::image::{DockerConfig, Report, Selection, SyncOpts};
use serde_json::{json, Value};
use support::registry::{Auth, Registry, PASSWORD};
use sync_support::{eventually, fast_simulation, Repo};

const STALE: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";

async fn cluster(digests: &[(&str, &str)]) -> (EmulatorHandle, ClusterClient) {
    let mut sim = fast_simulation();
    sim.ready_delay = Duration::from_millis(20);
    for (image, digest) in digests {
        sim.image_digests
            .insert(image.to_string(), digest.to_string());
    }
    let emu = sync_support::emulator(sim).await;
    let client = ClusterClient::connect(ClusterOptions::server(emu.url()))
        .await
        .expect("connect");
    (emu, client)
}

fn deployment(name: &str, image: &str, init_image: Option<&str>) -> Value {
    let mut d = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": image}]}}}
    });
    if let Some(i) = init_image {
        d["spec"]["template"]["spec"]["initContainers"] = json!([{"name": "init", "image": i}]);
    }
    d
}

fn selection() -> Selection {
    Selection {
        namespaces: Namespaces::One("default".into()),
        label_selector: String::new(),
        field_selector: FieldSelector::default(),
    }
}

async fn image_sync(client: &ClusterClient, opts: &SyncOpts) -> Report {
    kubesync::image::run_once(client, &selection(), opts)
        .await
        .expect("image sync run")
}

fn workload<'a>(r: &'a Report, name: &str) -> &'a WorkloadReport {
    r.workloads
        .iter()
        .find(|w| w.name == name)
        .unwrap_or_else(|| panic!("no report for {name}: {r:#?}"))
}

async fn live(client: &ClusterClient, kind: &str, name: &str) -> Value {
    let (group, version) = match kind {
        "CronJob" => ("batch", "v1"),
        _ => ("apps", "v1"),
    };
    let r = kubesync::model::ObjectRef {
        group: group.into(),
        version: version.into(),
        kind: kind.into(),
        namespace: Some("default".into()),
        name: name.into(),
    };
    client.get(&r).await.expect("get").expect("exists")
}

fn image_of(obj: &Value, pointer: &str) -> String {
    obj.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

const APP_IMAGE: &str = "/spec/template/spec/containers/0/image";

/// Waits until the Deployment's pods all run `image` and report a digest.
async fn wait_pods(client: &ClusterClient, app: &str, image: &str) {
    let gvk = kubesync::cluster::GroupVersionKind::gvk("", "v1", "Pod");
    let ok = eventually(Duration::from_secs(20), || async {
        let pods = client
            .list(&gvk, Some("default"), &format!("app={app}"))
            .await
            .unwrap_or_default();
        let current: Vec<&Value> = pods
            .iter()
            .filter(|p| image_of(p, "/spec/containers/0/image") == image)
            .collect();
        current.len() == 2
            && current
                .iter()
                .all(|p| !image_of(p, "/status/containerStatuses/0/imageID").is_empty())
    })
    .await;
    assert!(ok, "pods of {app} never ran {image}");
}

/// A new emulator whose pods of `tag` report `STALE` (an older build than
/// the registry serves), with Deployment `web` applied and its pods running.
async fn web_running_stale(tag: &str, web: Value) -> (EmulatorHandle, ClusterClient) {
    let (emu, client) = cluster(&[(tag, STALE)]).await;
    client.apply(&web, false).await.expect("create");
    wait_pods(&client, "web", tag).await;
    (emu, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mismatch_is_pinned_match_untouched_and_a_new_push_repins() {
    let Some(reg) = Registry::start(Auth::None).await else {
        return;
    };
    let tag = reg.image("app", "v1");
    let d1 = reg.push("app", "v1", "build one", false);
    // The pods run an older build of the tag than the registry serves.
    let (_emu, client) = web_running_stale(&tag, deployment("web", &tag, Some(&tag))).await;

    let r = image_sync(&client, &SyncOpts::default()).await;
    let w = workload(&r, "web");
    assert_eq!(w.containers.len(), 2, "{w:#?}");
    let pinned = format!("{tag}@{d1}");
    for c in &w.containers {
        match &c.outcome {
            ContainerOutcome::Pin {
                to,
                why: PinReason::Running { running },
                ..
            } => {
                assert_eq!(to, &pinned);
                assert_eq!(
                    running.iter().map(|d| d.as_str()).collect::<Vec<_>>(),
                    vec![STALE]
                );
            }
            other => panic!("{} not pinned: {other:?}", c.name),
        }
    }
    assert!(matches!(&w.write, WriteOutcome::Applied { containers, .. } if containers.len() == 2));
    assert_eq!(r.api.writes(), 1, "one apply for the workload");
    assert_eq!(r.registry.manifest_requests, 1, "one tag, one request");
    let obj = live(&client, "Deployment", "web").await;
    assert_eq!(image_of(&obj, APP_IMAGE), pinned);
    assert_eq!(
        image_of(&obj, "/spec/template/spec/initContainers/0/image"),
        pinned
    );
    // Image sync owns the image fields, and only them.
    let owners = kubesync::image::workload::image_owners(
        kubesync::image::workload::WorkloadKind::Deployment,
        &obj,
        kubesync::image::workload::ContainerList::Main,
        "app",
    );
    assert_eq!(owners, vec![kubesync::image::FIELD_MANAGER]);
    let ours = obj["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["manager"] == kubesync::image::FIELD_MANAGER)
        .expect("image sync's managed fields")
        .to_string();
    assert!(
        !ours.contains("f:replicas") && !ours.contains("f:selector"),
        "{ours}"
    );

    // The new pods run the pinned digest: nothing to do, nothing written.
    wait_pods(&client, "web", &pinned).await;
    let r = image_sync(&client, &SyncOpts::default()).await;
    let w = workload(&r, "web");
    assert!(
        w.containers
            .iter()
            .all(|c| matches!(c.outcome, ContainerOutcome::Ok { .. })),
        "{w:#?}"
    );
    assert_eq!(w.write, WriteOutcome::None);
    assert_eq!(r.api.writes(), 0);

    // A new push to the tag re-pins.
    let d2 = reg.push("app", "v1", "build two", false);
    assert_ne!(d1, d2);
    let r = image_sync(&client, &SyncOpts::default()).await;
    let w = workload(&r, "web");
    match &w.containers[1].outcome {
        ContainerOutcome::Pin {
            to,
            why: PinReason::Moved { from },
            ..
        } => {
            assert_eq!(to, &format!("{tag}@{d2}"));
            assert_eq!(from.as_str(), d1);
        }
        other => panic!("not re-pinned: {other:?}"),
    }
    let obj = live(&client, "Deployment", "web").await;
    assert_eq!(image_of(&obj, APP_IMAGE), format!("{tag}@{d2}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubesync_sync_and_image_sync_never_fight() {
    let Some(reg) = Registry::start(Auth::None).await else {
        return;
    };
    let tag = reg.image("app", "v1");
    let d1 = reg.push("app", "v1", "one", false);
    let (emu, client) = cluster(&[(&tag, STALE)]).await;
    let repo = Repo::new();
    repo.app("web", "  destination: {namespace: default}\n");
    let manifest = |replicas: u32, image: &str| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web}}\nspec:\n  replicas: {replicas}\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    spec:\n      containers: [{{name: app, image: \"{image}\"}}]\n"
        )
    };
    repo.write("objects/web/deploy.yaml", &manifest(2, &tag));
    let report = sync_support::sync_repo(&repo, &emu).await;
    assert_eq!(sync_support::app(&report, "web").sync.to_string(), "Synced");
    wait_pods(&client, "web", &tag).await;

    // image sync pins ...
    let r = image_sync(&client, &SyncOpts::default()).await;
    assert!(matches!(
        workload(&r, "web").write,
        WriteOutcome::Applied { .. }
    ));
    let pinned = format!("{tag}@{d1}");
    // ... kubesync sees git's tag, pinned, as in sync and writes nothing ...
    let before = sync_support::writes(&emu);
    let report = sync_support::sync_repo(&repo, &emu).await;
    let app = sync_support::app(&report, "web");
    assert_eq!(app.sync.to_string(), "Synced", "{app:#?}");
    assert_eq!(
        sync_support::change_of(app, "web").action,
        kubesync::sync::Action::Unchanged
    );
    let status_writes = sync_support::writes(&emu) - before;
    assert_eq!(
        status_writes, 0,
        "a converged sync after a pin writes nothing"
    );
    assert_eq!(
        image_of(&live(&client, "Deployment", "web").await, APP_IMAGE),
        pinned
    );
    // ... `diff` agrees ...
    let out = sync_support::run(&repo.root(), &emu.url(), &["diff", "web"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", sync_support::text(&out));
    // ... and image sync has nothing new to do.
    wait_pods(&client, "web", &pinned).await;
    let r = image_sync(&client, &SyncOpts::default()).await;
    assert_eq!(r.api.writes(), 0, "{r:#?}");

    // Git changes something else: kubesync writes, keeping the pin (both
    // managers now own the image field, with the same value).
    repo.write("objects/web/deploy.yaml", &manifest(3, &tag));
    let report = sync_support::sync_repo(&repo, &emu).await;
    let app = sync_support::app(&report, "web");
    assert_eq!(
        sync_support::change_of(app, "web").action,
        kubesync::sync::Action::Configured
    );
    let obj = live(&client, "Deployment", "web").await;
    assert_eq!(image_of(&obj, APP_IMAGE), pinned);
    assert_eq!(obj["spec"]["replicas"], 3);

    // Git moves to another tag: git wins, image sync pins the new tag next.
    let tag2 = reg.image("app", "v2");
    let d2 = reg.push("app", "v2", "two", false);
    repo.write("objects/web/deploy.yaml", &manifest(3, &tag2));
    let report = sync_support::sync_repo(&repo, &emu).await;
    assert_eq!(sync_support::app(&report, "web").sync.to_string(), "Synced");
    assert_eq!(
        image_of(&live(&client, "Deployment", "web").await, APP_IMAGE),
        tag2
    );
    let r = image_sync(&client, &SyncOpts::default()).await;
    assert!(
        matches!(workload(&r, "web").write, WriteOutcome::Applied { .. }),
        "{r:#?}"
    );
    assert_eq!(
        image_of(&live(&client, "Deployment", "web").await, APP_IMAGE),
        format!("{tag2}@{d2}")
    );
    let report = sync_support::sync_repo(&repo, &emu).await;
    let app = sync_support::app(&report, "web");
    assert_eq!(app.sync.to_string(), "Synced");
    assert_eq!(
        sync_support::change_of(app, "web").action,
        kubesync::sync::Action::Unchanged
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_arch_images_compare_by_their_index_digest() {
    let Some(reg) = Registry::start(Auth::None).await else {
        return;
    };
    let tag = reg.image("multi", "v1");
    let index = reg.push("multi", "v1", "fat", true);
    // The kubelet reports the index digest: in sync.
    let (_emu, client) = cluster(&[(&tag, &index)]).await;
    client
        .apply(&deployment("fat", &tag, None), false)
        .await
        .expect("create");
    wait_pods(&client, "fat", &tag).await;
    let r = image_sync(&client, &SyncOpts::default()).await;
    let w = workload(&r, "fat");
    assert_eq!(
        w.containers[0].outcome,
        ContainerOutcome::Ok {
            digest: kubesync::image::Digest::parse(&index).unwrap()
        }
    );
    assert_eq!(r.api.writes(), 0);
    // A new multi-arch push: pinned to the new index's digest.
    let index2 = reg.push("multi", "v1", "fatter", true);
    let r = image_sync(&client, &SyncOpts::default()).await;
    assert!(matches!(
        workload(&r, "fat").write,
        WriteOutcome::Applied { .. }
    ));
    assert_eq!(
        image_of(&live(&client, "Deployment", "fat").await, APP_IMAGE),
        format!("{tag}@{index2}")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_through_the_cli_with_a_docker_config() {
    let Some(reg) = Registry::start(Auth::Basic).await else {
        return;
    };
    let tag = reg.image("private", "v1");
    let d1 = reg.push("private", "v1", "secret build", false);
    let (emu, client) = web_running_stale(&tag, deployment("web", &tag, None)).await;
    let repo = Repo::new();
    let config = repo.path().join("docker-config.json");
    std::fs::write(&config, reg.docker_config()).expect("write config");

    // Without credentials: reported, left alone, exit 1, nothing written.
    let out = sync_support::run(&repo.root(), &emu.url(), &["image-sync", "-n", "default"]).await;
    let text = sync_support::text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("checking Deployment/web:\n"), "{text}");
    assert!(text.contains("  app cannot be checked: registry"), "{text}");
    assert!(text.contains("401 Unauthorized"), "{text}");
    assert_eq!(
        image_of(&live(&client, "Deployment", "web").await, APP_IMAGE),
        tag
    );

    // A dry run with credentials says what it would do and writes nothing.
    let config_arg = config.display().to_string();
    let before = sync_support::writes(&emu);
    let out = sync_support::run(
        &repo.root(),
        &emu.url(),
        &[
            "image-sync",
            "-n",
            "default",
            "--docker-config",
            &config_arg,
            "--dry-run",
        ],
    )
    .await;
    let text = sync_support::text(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains(&format!("  app has to be updated to {tag}@{d1}\n")),
        "{text}"
    );
    assert!(
        text.contains("would update Deployment/web images app (dry run)"),
        "{text}"
    );
    assert_eq!(
        sync_support::writes(&emu),
        before,
        "a dry run writes nothing"
    );
    assert_eq!(
        image_of(&live(&client, "Deployment", "web").await, APP_IMAGE),
        tag
    );

    // For real: the seed's lines, exit 0; JSON on a second run says ok.
    let out = sync_support::run(
        &repo.root(),
        &emu.url(),
        &[
            "image-sync",
            "-n",
            "default",
            "--docker-config",
            &config_arg,
        ],
    )
    .await;
    let text = sync_support::text(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("update Deployment/web images app\n"),
        "{text}"
    );
    assert!(!text.contains(PASSWORD), "credentials leaked: {text}");
    assert_eq!(
        image_of(&live(&client, "Deployment", "web").await, APP_IMAGE),
        format!("{tag}@{d1}")
    );
    wait_pods(&client, "web", &format!("{tag}@{d1}")).await;
    let out = sync_support::run(
        &repo.root(),
        &emu.url(),
        &[
            "image-sync",
            "-n",
            "default",
            "--docker-config",
            &config_arg,
            "-o",
            "json",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", sync_support::text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).expect("json report");
    assert_eq!(v["workloads"][0]["containers"][0]["result"], "ok", "{v:#}");
    assert_eq!(v["workloads"][0]["write"], "none");
    assert_eq!(v["api"]["applies"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_secret_credentials() {
    use base64::Engine as _;
    let Some(reg) = Registry::start(Auth::Basic).await else {
        return;
    };
    let tag = reg.image("private", "v1");
    let d1 = reg.push("private", "v1", "p", false);
    let (_emu, client) = cluster(&[(&tag, STALE)]).await;
    let secret = json!({
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
        "metadata": {"name": "regcred", "namespace": "default"},
        "data": {".dockerconfigjson": base64::engine::general_purpose::STANDARD.encode(reg.docker_config())}
    });
    client.apply(&secret, false).await.expect("secret");
    let mut d = deployment("web", &tag, None);
    d["spec"]["template"]["spec"]["imagePullSecrets"] = json!([{"name": "regcred"}]);
    client.apply(&d, false).await.expect("create");
    wait_pods(&client, "web", &tag).await;
    let r = image_sync(&client, &SyncOpts::default()).await;
    let w = workload(&r, "web");
    assert!(
        matches!(w.containers[0].outcome, ContainerOutcome::Pin { .. }),
        "{w:#?}"
    );
    assert_eq!(
        image_of(&live(&client, "Deployment", "web").await, APP_IMAGE),
        format!("{tag}@{d1}")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_token_auth() {
    let Some(reg) = Registry::start(Auth::Token).await else {
        return;
    };
    let tag = reg.image("team/app", "v1");
    let d1 = reg.push("team/app", "v1", "t1", false);
    let tag2 = reg.image("team/app", "v2");
    reg.push("team/app", "v2", "t2", false);
    let (_emu, client) = cluster(&[(&tag, STALE), (&tag2, STALE)]).await;
    client
        .apply(&deployment("one", &tag, None), false)
        .await
        .expect("create");
    client
        .apply(&deployment("two", &tag2, None), false)
        .await
        .expect("create");
    wait_pods(&client, "one", &tag).await;
    wait_pods(&client, "two", &tag2).await;
    let issued_before = reg.tokens_issued();
    let opts = SyncOpts {
        docker_config: Some(DockerConfig::parse(&reg.docker_config()).unwrap()),
        concurrency: 1,
        ..SyncOpts::default()
    };
    let r = image_sync(&client, &opts).await;
    assert!(!r.failed(), "{r:#?}");
    assert_eq!(
        image_of(&live(&client, "Deployment", "one").await, APP_IMAGE),
        format!("{tag}@{d1}")
    );
    // One token for the repository, shared by both tags.
    assert_eq!(r.registry.token_requests, 1, "{r:#?}");
    assert_eq!(reg.tokens_issued() - issued_before, 1);
    // Without credentials the token server refuses: reported, not pinned.
    let r = image_sync(&client, &SyncOpts::default()).await;
    assert!(
        r.workloads.iter().all(|w| w.write == WriteOutcome::None),
        "{r:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_tag_and_registry_down_are_reported_and_others_go_on() {
    let Some(reg) = Registry::start(Auth::None).await else {
        return;
    };
    let good = reg.image("app", "v1");
    let d1 = reg.push("app", "v1", "g", false);
    let missing = reg.image("app", "nope");
    let down = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("127.0.0.1:{}/app:v1", l.local_addr().unwrap().port())
    };
    let (emu, client) = cluster(&[(&good, STALE)]).await;
    for (name, image) in [("good", &good), ("missing", &missing), ("down", &down)] {
        client
            .apply(&deployment(name, image, None), false)
            .await
            .expect("create");
    }
    wait_pods(&client, "good", &good).await;
    let repo = Repo::new();
    let out = sync_support::run(&repo.root(), &emu.url(), &["image-sync", "-n", "default"]).await;
    let text = sync_support::text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!("tag nope of app does not exist on {}", reg.host())),
        "{text}"
    );
    assert!(
        text.contains(&format!("{down}: registry 127.0.0.1:")) && text.contains("is unreachable"),
        "the unreachable registry's error names the image: {text}"
    );
    assert!(text.contains("update Deployment/good images app"), "{text}");
    assert_eq!(
        image_of(&live(&client, "Deployment", "missing").await, APP_IMAGE),
        missing
    );
    assert_eq!(
        image_of(&live(&client, "Deployment", "down").await, APP_IMAGE),
        down
    );
    assert_eq!(
        image_of(&live(&client, "Deployment", "good").await, APP_IMAGE),
        format!("{good}@{d1}")
    );
    // A deleted tag is reported the same way.
    reg.delete("app", "v1");
    let r = image_sync(&client, &SyncOpts::default()).await;
    assert!(matches!(
        &workload(&r, "good").containers[0].outcome,
        ContainerOutcome::Failed { reason } if reason.contains("does not exist")
    ));
    assert_eq!(r.api.writes(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cronjobs_and_statefulsets() {
    let Some(reg) = Registry::start(Auth::None).await else {
        return;
    };
    let tag = reg.image("batch", "v1");
    let d1 = reg.push("batch", "v1", "b", false);
    let (_emu, client) = cluster(&[(&tag, STALE)]).await;
    let cron = json!({
        "apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": "nightly", "namespace": "default"},
        "spec": {"schedule": "0 3 * * *", "jobTemplate": {"spec": {"template": {"spec": {
            "restartPolicy": "OnFailure", "containers": [{"name": "job", "image": tag}]}}}}}
    });
    let sts = json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "db", "namespace": "default"},
        "spec": {"replicas": 2, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
            "template": {"metadata": {"labels": {"app": "db"}},
                "spec": {"containers": [{"name": "app", "image": tag}]}}}
    });
    client.apply(&cron, false).await.expect("cronjob");
    client.apply(&sts, false).await.expect("statefulset");
    wait_pods(&client, "db", &tag).await;
    let r = image_sync(&client, &SyncOpts::default()).await;
    assert!(
        matches!(
            workload(&r, "nightly").containers[0].outcome,
            ContainerOutcome::Pin {
                why: PinReason::NoPods,
                ..
            }
        ),
        "{r:#?}"
    );
    assert!(matches!(
        workload(&r, "db").containers[0].outcome,
        ContainerOutcome::Pin {
            why: PinReason::Running { .. },
            ..
        }
    ));
    let pinned = format!("{tag}@{d1}");
    assert_eq!(
        image_of(
            &live(&client, "CronJob", "nightly").await,
            "/spec/jobTemplate/spec/template/spec/containers/0/image"
        ),
        pinned
    );
    assert_eq!(
        image_of(&live(&client, "StatefulSet", "db").await, APP_IMAGE),
        pinned
    );
    // The CronJob's pin holds on the next run.
    let r = image_sync(&client, &SyncOpts::default()).await;
    assert_eq!(workload(&r, "nightly").write, WriteOutcome::None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_errors_exit_2() {
    let emu = sync_support::emulator(fast_simulation()).await;
    let repo = Repo::new();
    for args in [
        &["image-sync", "--field-selector", "spec.replicas=1"][..],
        &["image-sync", "-n", "a", "-A"][..],
        &["image-sync", "--docker-config", "/nonexistent/config.json"][..],
    ] {
        let out = sync_support::run(&repo.root(), &emu.url(), args).await;
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            sync_support::text(&out)
        );
    }
    // Nothing selected: exit 0.
    let out = sync_support::run(&repo.root(), &emu.url(), &["image-sync", "-A"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", sync_support::text(&out));
}

/// The standalone CronJob + RBAC example is accepted by the API (the
/// emulator validates typed specs), and its ClusterRole allows every
/// request `image-sync -A` makes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cronjob_example_is_valid_and_its_rbac_covers_image_sync() {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples/image-sync/image-sync.yaml"),
    )
    .expect("example");
    let docs: Vec<Value> = text
        .split("\n---\n")
        .map(|d| serde_yaml::from_str::<Value>(d).expect("YAML document"))
        .collect();
    let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    assert_eq!(
        kinds,
        [
            "Namespace",
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "CronJob"
        ]
    );
    let (_emu, client) = cluster(&[]).await;
    for d in &docs {
        client
            .apply(d, false)
            .await
            .unwrap_or_else(|e| panic!("{} refused: {e}", d["kind"]));
    }
    let cron = live_in(&client, "kubesync-system", "CronJob", "kubesync-image-sync").await;
    let args = &cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"];
    assert_eq!(args[0], "image-sync");
    // Every request image sync makes is allowed.
    let role = docs.iter().find(|d| d["kind"] == "ClusterRole").unwrap();
    let allows = |group: &str, resource: &str, verb: &str| {
        role["rules"].as_array().unwrap().iter().any(|r| {
            let has = |k: &str, v: &str| r[k].as_array().unwrap().iter().any(|x| x == v);
            has("apiGroups", group) && has("resources", resource) && has("verbs", verb)
        })
    };
    for (group, resource, verbs) in [
        ("", "pods", &["list"][..]),
        ("", "secrets", &["get"][..]),
        ("apps", "deployments", &["list", "patch"][..]),
        ("apps", "daemonsets", &["list", "patch"][..]),
        ("apps", "statefulsets", &["list", "patch"][..]),
        ("batch", "cronjobs", &["list", "patch"][..]),
        ("batch", "jobs", &["list"][..]),
    ] {
        for verb in verbs {
            assert!(
                allows(group, resource, verb),
                "{verb} {group}/{resource} not allowed"
            );
        }
    }
    // It runs the command this project builds.
    let parsed = <kubesync::cli::Cli as clap::Parser>::try_parse_from(
        std::iter::once("kubesync")
            .chain(args.as_array().unwrap().iter().filter_map(Value::as_str)),
    );
    assert!(parsed.is_ok(), "{:?}", parsed.err());
}

async fn live_in(client: &ClusterClient, ns: &str, kind: &str, name: &str) -> Value {
    let r = kubesync::model::ObjectRef {
        group: "batch".into(),
        version: "v1".into(),
        kind: kind.into(),
        namespace: Some(ns.into()),
        name: name.into(),
    };
    client.get(&r).await.expect("get").expect("exists")
}

/// `spec.images.pinDigests: true`: tags resolved while rendering, shown by
/// `render` and `diff`, applied pinned; image sync leaves git's pin alone
/// and reports it when the tag moves; a re-render pins the new digest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn render_time_pinning() {
    let Some(reg) = Registry::start(Auth::None).await else {
        return;
    };
    let tag = reg.image("app", "v1");
    let d1 = reg.push("app", "v1", "r1", false);
    let (emu, client) = cluster(&[]).await;
    let repo = Repo::new();
    repo.app(
        "web",
        "  destination: {namespace: default}\n  images: {pinDigests: true}\n",
    );
    repo.write(
        "objects/web/deploy.yaml",
        &sync_support::deployment("web", &tag),
    );
    let render = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_kubesync"))
            .args(args)
            .arg("--root")
            .arg(repo.root())
            .env_remove("KUBESYNC_DOCKER_CONFIG")
            .output()
            .expect("run kubesync")
    };
    let out = render(&["render", "web"]);
    let text = sync_support::text(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains(&format!("image: {tag}@{d1}")), "{text}");

    let out = sync_support::run(&repo.root(), &emu.url(), &["diff", "web"]).await;
    let text = sync_support::text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains(&format!("{tag}@{d1}")), "{text}");

    let report = sync_support::sync_repo(&repo, &emu).await;
    assert_eq!(sync_support::app(&report, "web").sync.to_string(), "Synced");
    let pinned = format!("{tag}@{d1}");
    assert_eq!(
        image_of(&live(&client, "Deployment", "web").await, APP_IMAGE),
        pinned
    );

    // The tag moves: the pin is git's, so image sync reports and leaves it.
    let d2 = reg.push("app", "v1", "r2", false);
    let r = image_sync(&client, &SyncOpts::default()).await;
    match &workload(&r, "web").containers[0].outcome {
        ContainerOutcome::LeftAlone {
            pinned,
            digest,
            owners,
        } => {
            assert_eq!(pinned.as_str(), d1);
            assert_eq!(digest.as_str(), d2);
            assert_eq!(owners, &vec!["kubesync".to_string()]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(r.api.writes(), 0);
    // kubesync's next sync renders (and applies) the new digest.
    let report = sync_support::sync_repo(&repo, &emu).await;
    assert_eq!(sync_support::app(&report, "web").sync.to_string(), "Synced");
    assert_eq!(
        image_of(&live(&client, "Deployment", "web").await, APP_IMAGE),
        format!("{tag}@{d2}")
    );

    // A tag that does not exist fails the app's render, naming the image.
    repo.write(
        "objects/web/deploy.yaml",
        &sync_support::deployment("web", &reg.image("app", "missing")),
    );
    let out = render(&["render", "web"]);
    let text = sync_support::text(&out);
    assert_ne!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("images.pinDigests: cannot resolve image"),
        "{text}"
    );
    assert!(text.contains("does not exist"), "{text}");
}

/// The emulator's pods report the digest they were started with: a tag's
/// configured digest (or a stable per-tag one), a pinned digest as such; a
/// digest configured later applies only to pods started later — what tests
/// use to drive a mismatch and its convergence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emulator_pods_keep_the_digest_they_pulled() {
    let (a, b) = (
        format!("sha256:{}", "a".repeat(64)),
        format!("sha256:{}", "b".repeat(64)),
    );
    let tag = "registry.local/app:v1";
    let (emu, client) = cluster(&[(tag, &a)]).await;
    client
        .apply(&deployment("web", tag, None), false)
        .await
        .expect("create");
    wait_pods(&client, "web", tag).await;
    let gvk = kubesync::cluster::GroupVersionKind::gvk("", "v1", "Pod");
    let ids = |pods: &[Value]| -> Vec<String> {
        pods.iter()
            .map(|p| image_of(p, "/status/containerStatuses/0/imageID"))
            .collect()
    };
    let first = client.list(&gvk, Some("default"), "app=web").await.unwrap();
    assert_eq!(ids(&first), vec![format!("registry.local/app@{a}"); 2]);
    emu.simulation()
        .expect("simulation")
        .set_image_digest(tag, &b);
    let mut scaled = deployment("web", tag, None);
    scaled["spec"]["replicas"] = json!(4);
    client.apply(&scaled, false).await.expect("scale");
    let ok = eventually(Duration::from_secs(20), || async {
        let pods = client
            .list(&gvk, Some("default"), "app=web")
            .await
            .unwrap_or_default();
        ids(&pods).iter().filter(|i| i.ends_with(&b)).count() == 2
    })
    .await;
    assert!(ok, "the new pods never reported the new digest");
    let pods = client.list(&gvk, Some("default"), "app=web").await.unwrap();
    for old in &first {
        let name = old["metadata"]["name"].as_str().unwrap();
        let now = pods
            .iter()
            .find(|p| p["metadata"]["name"] == name)
            .expect("still there");
        assert_eq!(
            image_of(now, "/status/containerStatuses/0/imageID"),
            format!("registry.local/app@{a}")
        );
    }
    // A pinned image reports its own digest, whatever the tag maps to.
    let pinned = format!("{tag}@{a}");
    client
        .apply(&deployment("pinned", &pinned, None), false)
        .await
        .expect("create");
    wait_pods(&client, "pinned", &pinned).await;
    let pods = client
        .list(&gvk, Some("default"), "app=pinned")
        .await
        .unwrap();
    assert_eq!(ids(&pods), vec![format!("registry.local/app@{a}"); 2]);
}

/// A registry over https with a certificate from a private CA: trusted
/// with `--registry-ca` (here `RegistryOptions::ca_files`), refused without.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_registry_with_a_custom_ca() {
    let Some(reg) = Registry::start(Auth::Tls).await else {
        return;
    };
    let tag = reg.image("secure", "v1");
    let d1 = reg.push("secure", "v1", "tls", false);
    let (_emu, client) = web_running_stale(&tag, deployment("web", &tag, None)).await;
    // The CA is not trusted: reported (saying why), left alone.
    let r = image_sync(&client, &SyncOpts::default()).await;
    match &workload(&r, "web").containers[0].outcome {
        ContainerOutcome::Failed { reason } => {
            assert!(reason.contains("certificate"), "{reason}");
            assert!(reason.contains("--registry-ca"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(r.api.writes(), 0);
    let opts = SyncOpts {
        registry: kubesync::image::RegistryOptions {
            ca_files: vec![reg.ca()],
            ..Default::default()
        },
        ..SyncOpts::default()
    };
    let r = image_sync(&client, &opts).await;
    assert!(!r.failed(), "{r:#?}");
    assert_eq!(
        image_of(&live(&client, "Deployment", "web").await, APP_IMAGE),
        format!("{tag}@{d1}")
    );
}

/// `--restart`: the tag is kept and the pod template annotated, so pods
/// pull the tag again; once they run the tag's digest, nothing is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_instead_of_pin() {
    let Some(reg) = Registry::start(Auth::None).await else {
        return;
    };
    let tag = reg.image("app", "v1");
    let d1 = reg.push("app", "v1", "restart", false);
    let mut d = deployment("web", &tag, None);
    d["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = json!("Always");
    let (emu, client) = web_running_stale(&tag, d).await;
    // From now on a pull of the tag gets the registry's build.
    emu.simulation()
        .expect("simulation")
        .set_image_digest(&tag, &d1);
    let opts = SyncOpts {
        restart: true,
        ..SyncOpts::default()
    };
    let r = image_sync(&client, &opts).await;
    let w = workload(&r, "web");
    assert!(
        matches!(w.containers[0].outcome, ContainerOutcome::Restart { .. }),
        "{w:#?}"
    );
    assert_eq!(
        w.write,
        WriteOutcome::Applied {
            containers: vec![],
            restarted: true
        }
    );
    let obj = live(&client, "Deployment", "web").await;
    assert_eq!(image_of(&obj, APP_IMAGE), tag, "the tag is kept");
    let annotation = format!(
        "/spec/template/metadata/annotations/{}",
        kubesync::image::workload::RESTART_ANNOTATION.replace('/', "~1")
    );
    assert!(!image_of(&obj, &annotation).is_empty(), "{obj:#}");
    // The restarted pods run the registry's digest: nothing more to do.
    let gvk = kubesync::cluster::GroupVersionKind::gvk("", "v1", "Pod");
    let want = format!("{}@{d1}", tag.rsplit_once(':').unwrap().0);
    let ok = eventually(Duration::from_secs(20), || async {
        let pods = client
            .list(&gvk, Some("default"), "app=web")
            .await
            .unwrap_or_default();
        pods.len() == 2
            && pods
                .iter()
                .all(|p| image_of(p, "/status/containerStatuses/0/imageID") == want)
    })
    .await;
    assert!(ok, "the pods were never replaced");
    let r = image_sync(&client, &opts).await;
    assert_eq!(r.api.writes(), 0, "{r:#?}");
    assert!(matches!(
        workload(&r, "web").containers[0].outcome,
        ContainerOutcome::Ok { .. }
    ));
}

/// The loop `kubesync run --image-sync-interval` runs: nothing while this
/// replica does not lead, then a pin within an interval, a re-pin after a
/// new push, and an end when asked to stop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_periodic_loop_pins_only_while_leading_and_follows_new_pushes() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let Some(reg) = Registry::start(Auth::None).await else {
        return;
    };
    let tag = reg.image("app", "v1");
    let d1 = reg.push("app", "v1", "build one", false);
    let (_emu, client) = web_running_stale(&tag, deployment("web", &tag, None)).await;

    let leading = Arc::new(AtomicBool::new(false));
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let l = leading.clone();
    let every = Duration::from_millis(100);
    let image_loop = kubesync::image::run_every(
        client.clone(),
        selection(),
        SyncOpts::default(),
        every,
        move || l.load(Ordering::SeqCst),
        stop_rx,
    );
    let check = async {
        // A standby writes nothing, however many intervals pass.
        tokio::time::sleep(every * 6).await;
        let obj = live(&client, "Deployment", "web").await;
        assert_eq!(image_of(&obj, APP_IMAGE), tag, "a standby pinned");
        // Leading: pinned on the next round.
        leading.store(true, Ordering::SeqCst);
        let pinned = format!("{tag}@{d1}");
        assert!(
            eventually(Duration::from_secs(20), || async {
                image_of(&live(&client, "Deployment", "web").await, APP_IMAGE) == pinned
            })
            .await,
            "not pinned while leading"
        );
        wait_pods(&client, "web", &pinned).await;
        // A new push to the tag: re-pinned by a later round.
        let d2 = reg.push("app", "v1", "build two", false);
        let repinned = format!("{tag}@{d2}");
        assert!(
            eventually(Duration::from_secs(20), || async {
                image_of(&live(&client, "Deployment", "web").await, APP_IMAGE) == repinned
            })
            .await,
            "not re-pinned after a new push"
        );
        stop.send(true).expect("stop");
    };
    let (_, ()) = tokio::time::timeout(Duration::from_secs(60), async {
        tokio::join!(image_loop, check)
    })
    .await
    .expect("the loop ends when asked to stop");
}
