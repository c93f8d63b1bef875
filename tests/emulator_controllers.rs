//! The emulator's simulated controllers, seen through kube-rs and kubectl:
//! Deployments roll out to ready pods with sha256 image IDs, failing images
//! hit the progress deadline, Jobs complete or fail, PVCs bind, load
//! balancers get addresses, and owners' deletion collects their pods. Each
//! test runs its own emulator; waits have deadlines, never bare sleeps.

use std::future::Future;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Service};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::{await_condition, conditions, Condition};
use kube::Client;
use kubesync::emulator::{Emulator, EmulatorConfig, EmulatorHandle, SimulationConfig};
use serde_json::json;

const DEADLINE: Duration = Duration::from_secs(20);

async fn start(sim: SimulationConfig) -> (EmulatorHandle, Client) {
    let handle = Emulator::start(EmulatorConfig {
        simulation: sim,
        tick_interval: Duration::from_millis(20),
        ..EmulatorConfig::default()
    })
    .await
    .expect("emulator starts");
    let client = handle.kube_client();
    (handle, client)
}

fn fast() -> SimulationConfig {
    SimulationConfig {
        ready_delay: Duration::from_millis(50),
        ..SimulationConfig::default()
    }
}

/// Polls `check` until it yields a value, failing after [`DEADLINE`].
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits (by watch) until `name` satisfies `cond`.
async fn wait_until<K>(api: &Api<K>, name: &str, cond: impl Condition<K>) -> K
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    tokio::time::timeout(DEADLINE, await_condition(api.clone(), name, cond))
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {name}"))
        .expect("watch works")
        .unwrap_or_else(|| panic!("{name} exists"))
}

fn deployment(name: &str, image: &str, replicas: i32) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "main", "image": image}]},
            },
        },
    }))
    .expect("valid deployment")
}

fn condition<'a>(
    d: &'a Deployment,
    type_: &str,
) -> Option<&'a k8s_openapi::api::apps::v1::DeploymentCondition> {
    d.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_.as_deref() == Some(type_))
}

fn is_available() -> impl Condition<Deployment> {
    |d: Option<&Deployment>| {
        d.and_then(|d| condition(d, "Available"))
            .is_some_and(|c| c.status.as_deref() == Some("True"))
    }
}

async fn pods_of(client: &Client, selector: &str) -> Vec<Pod> {
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    pods.list(&ListParams::default().labels(selector))
        .await
        .expect("list pods")
        .items
}

fn hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_becomes_available_with_ready_pods_and_image_ids() {
    let (_emu, client) = start(fast()).await;
    let api: Api<Deployment> = Api::default_namespaced(client.clone());
    api.create(&PostParams::default(), &deployment("web", "nginx:1.25", 2))
        .await
        .expect("create");
    let d = wait_until(&api, "web", conditions::is_deployment_completed()).await;
    let d = if condition(&d, "Available").is_some_and(|c| c.status.as_deref() == Some("True")) {
        d
    } else {
        wait_until(&api, "web", is_available()).await
    };
    let status = d.status.clone().expect("status");
    assert_eq!(status.observed_generation, d.metadata.generation);
    assert_eq!(status.replicas, Some(2));
    assert_eq!(status.updated_replicas, Some(2));
    assert_eq!(status.ready_replicas, Some(2));
    assert_eq!(status.available_replicas, Some(2));
    let available = condition(&d, "Available").expect("Available");
    assert_eq!(
        available.reason.as_deref(),
        Some("MinimumReplicasAvailable")
    );
    let progressing = condition(&d, "Progressing").expect("Progressing");
    assert_eq!(progressing.status.as_deref(), Some("True"));
    assert_eq!(
        progressing.reason.as_deref(),
        Some("NewReplicaSetAvailable")
    );
    // Status was written through the status subresource by the controller.
    let managers = d.metadata.managed_fields.clone().unwrap_or_default();
    assert!(managers
        .iter()
        .any(|m| m.manager.as_deref() == Some("kube-controller-manager")
            && m.subresource.as_deref() == Some("status")));
    assert_eq!(
        d.metadata.generation,
        Some(1),
        "status writes keep generation"
    );

    let rs_api: Api<ReplicaSet> = Api::default_namespaced(client.clone());
    let sets = rs_api
        .list(&ListParams::default().labels("app=web"))
        .await
        .expect("list");
    assert_eq!(sets.items.len(), 1);
    let rs = &sets.items[0];
    let hash = rs
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("pod-template-hash"))
        .expect("hash label")
        .clone();
    let rs_name = rs.metadata.name.clone().expect("name");
    assert_eq!(rs_name, format!("web-{hash}"));
    let owner = &rs.metadata.owner_references.as_ref().expect("owned")[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.controller),
        ("Deployment", "web", Some(true))
    );
    assert_eq!(owner.uid, d.metadata.uid.clone().expect("uid"));

    let pods = pods_of(&client, "app=web").await;
    assert_eq!(pods.len(), 2);
    for p in &pods {
        let name = p.metadata.name.as_deref().expect("name");
        let suffix = name
            .strip_prefix(&format!("{rs_name}-"))
            .expect("pod named after its replica set");
        assert_eq!(suffix.len(), 5);
        let st = p.status.as_ref().expect("status");
        assert_eq!(st.phase.as_deref(), Some("Running"));
        assert!(st
            .conditions
            .as_ref()
            .expect("conditions")
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True"));
        let cs = &st.container_statuses.as_ref().expect("container statuses")[0];
        assert!(cs.ready);
        let digest = cs
            .image_id
            .strip_prefix("nginx@sha256:")
            .expect("repo@sha256 image id");
        assert!(hex64(digest), "{}", cs.image_id);
        assert_eq!(
            p.spec.as_ref().and_then(|s| s.node_name.as_deref()),
            Some("emulator-node")
        );
        assert_eq!(
            p.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("pod-template-hash")),
            Some(&hash)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_digest_is_reported() {
    let digest = "ab".repeat(32);
    let mut sim = fast();
    sim.image_digests
        .insert("registry.local/app:v1".into(), format!("sha256:{digest}"));
    let (emu, client) = start(sim).await;
    let api: Api<Deployment> = Api::default_namespaced(client.clone());
    api.create(
        &PostParams::default(),
        &deployment("app", "registry.local/app:v1", 1),
    )
    .await
    .expect("create");
    wait_until(&api, "app", is_available()).await;
    let pods = pods_of(&client, "app=app").await;
    let id = &pods[0]
        .status
        .as_ref()
        .expect("status")
        .container_statuses
        .as_ref()
        .expect("cs")[0]
        .image_id;
    assert_eq!(id, &format!("registry.local/app@sha256:{digest}"));

    // A digest changed at run time applies to pods created afterwards.
    let other = "cd".repeat(32);
    emu.simulation()
        .expect("simulation on")
        .set_image_digest("registry.local/app:v1", &other);
    let pods_api: Api<Pod> = Api::default_namespaced(client.clone());
    pods_api
        .delete(
            pods[0].metadata.name.as_deref().expect("name"),
            &DeleteParams::default(),
        )
        .await
        .expect("delete pod");
    let want = format!("registry.local/app@sha256:{other}");
    eventually("a replacement pod with the new digest", || {
        let client = client.clone();
        let want = want.clone();
        async move {
            pods_of(&client, "app=app").await.iter().find_map(|p| {
                let cs = p.status.as_ref()?.container_statuses.as_ref()?.first()?;
                (cs.image_id == want).then_some(())
            })
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_image_exceeds_the_progress_deadline() {
    let sim = SimulationConfig {
        ready_delay: Duration::from_millis(20),
        failing_images: vec!["*:broken".into()],
        progress_deadline_override: Some(Duration::from_millis(400)),
        ..SimulationConfig::default()
    };
    let (_emu, client) = start(sim).await;
    let api: Api<Deployment> = Api::default_namespaced(client.clone());
    api.create(
        &PostParams::default(),
        &deployment("bad", "nginx:broken", 1),
    )
    .await
    .expect("create");
    let d = wait_until(&api, "bad", |d: Option<&Deployment>| {
        d.and_then(|d| condition(d, "Progressing"))
            .is_some_and(|c| c.reason.as_deref() == Some("ProgressDeadlineExceeded"))
    })
    .await;
    let progressing = condition(&d, "Progressing").expect("Progressing");
    assert_eq!(progressing.status.as_deref(), Some("False"));
    assert!(progressing
        .message
        .as_deref()
        .is_some_and(|m| m.contains("has timed out progressing")));
    let available = condition(&d, "Available").expect("Available");
    assert_eq!(available.status.as_deref(), Some("False"));
    assert_eq!(d.status.as_ref().and_then(|s| s.ready_replicas), None);
    let pods = pods_of(&client, "app=bad").await;
    let st = pods[0].status.as_ref().expect("status");
    assert_eq!(st.phase.as_deref(), Some("Pending"));
    let waiting = st.container_statuses.as_ref().expect("cs")[0]
        .state
        .as_ref()
        .and_then(|s| s.waiting.as_ref())
        .expect("waiting");
    assert_eq!(waiting.reason.as_deref(), Some("ImagePullBackOff"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashing_image_never_becomes_ready() {
    let sim = SimulationConfig {
        ready_delay: Duration::ZERO,
        crashing_images: vec!["crashy".into()],
        ..SimulationConfig::default()
    };
    let (_emu, client) = start(sim).await;
    let api: Api<Deployment> = Api::default_namespaced(client.clone());
    api.create(
        &PostParams::default(),
        &deployment("crash", "example/crashy:1", 1),
    )
    .await
    .expect("create");
    let reason = eventually("CrashLoopBackOff", || {
        let client = client.clone();
        async move {
            let pods = pods_of(&client, "app=crash").await;
            let cs = pods
                .first()?
                .status
                .as_ref()?
                .container_statuses
                .as_ref()?
                .first()?
                .clone();
            cs.state?
                .waiting?
                .reason
                .filter(|r| r == "CrashLoopBackOff")
        }
    })
    .await;
    assert_eq!(reason, "CrashLoopBackOff");
    let d = api.get("crash").await.expect("get");
    assert_eq!(
        condition(&d, "Available").and_then(|c| c.status.as_deref()),
        Some("False")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_change_rolls_out_a_new_replica_set_and_scaling_adjusts_pods() {
    let (_emu, client) = start(fast()).await;
    let api: Api<Deployment> = Api::default_namespaced(client.clone());
    api.create(&PostParams::default(), &deployment("roll", "nginx:1.25", 2))
        .await
        .expect("create");
    wait_until(&api, "roll", conditions::is_deployment_completed()).await;
    api.patch(
        "roll",
        &PatchParams::default(),
        &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "nginx:1.26"}]}}}})),
    )
    .await
    .expect("patch image");
    let rs_api: Api<ReplicaSet> = Api::default_namespaced(client.clone());
    let d = wait_until(&api, "roll", |d: Option<&Deployment>| {
        d.is_some_and(|d| {
            let s = d.status.as_ref();
            s.and_then(|s| s.observed_generation) == Some(2)
                && s.and_then(|s| s.replicas) == Some(2)
                && s.and_then(|s| s.updated_replicas) == Some(2)
                && s.and_then(|s| s.available_replicas) == Some(2)
        })
    })
    .await;
    assert_eq!(
        d.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("deployment.kubernetes.io/revision"))
            .map(String::as_str),
        Some("2")
    );
    let sets = rs_api
        .list(&ListParams::default().labels("app=roll"))
        .await
        .expect("list")
        .items;
    assert_eq!(sets.len(), 2, "old replica set kept as history");
    let by_replicas: Vec<(i32, String)> = sets
        .iter()
        .map(|rs| {
            let image = rs
                .spec
                .template
                .as_ref()
                .and_then(|t| t.spec.as_ref())
                .map(|s| s.containers[0].image.clone().unwrap_or_default())
                .unwrap_or_default();
            (rs.spec.replicas.unwrap_or(-1), image)
        })
        .collect();
    assert!(
        by_replicas.contains(&(2, "nginx:1.26".to_string())),
        "{by_replicas:?}"
    );
    assert!(
        by_replicas.contains(&(0, "nginx:1.25".to_string())),
        "{by_replicas:?}"
    );
    eventually("only new pods", || {
        let client = client.clone();
        async move {
            let pods = pods_of(&client, "app=roll").await;
            let images: Vec<String> = pods
                .iter()
                .filter_map(|p| p.spec.as_ref()?.containers[0].image.clone())
                .collect();
            (images.len() == 2 && images.iter().all(|i| i == "nginx:1.26")).then_some(())
        }
    })
    .await;

    // Scale up and down.
    for n in [3, 1] {
        api.patch(
            "roll",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": n}})),
        )
        .await
        .expect("scale");
        eventually("scaled pods", || {
            let client = client.clone();
            async move { (pods_of(&client, "app=roll").await.len() == n).then_some(()) }
        })
        .await;
        wait_until(&api, "roll", move |d: Option<&Deployment>| {
            d.and_then(|d| d.status.as_ref()).is_some_and(|s| {
                s.ready_replicas == Some(i32::try_from(n).unwrap_or(0))
                    && s.replicas == Some(i32::try_from(n).unwrap_or(0))
            })
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_deployment_collects_its_replica_sets_and_pods() {
    let (_emu, client) = start(fast()).await;
    let api: Api<Deployment> = Api::default_namespaced(client.clone());
    api.create(&PostParams::default(), &deployment("gone", "nginx:1.25", 2))
        .await
        .expect("create");
    wait_until(&api, "gone", is_available()).await;
    assert_eq!(pods_of(&client, "app=gone").await.len(), 2);
    api.delete("gone", &DeleteParams::background())
        .await
        .expect("delete");
    eventually("pods collected", || {
        let client = client.clone();
        async move { pods_of(&client, "app=gone").await.is_empty().then_some(()) }
    })
    .await;
    let rs_api: Api<ReplicaSet> = Api::default_namespaced(client.clone());
    let sets = rs_api
        .list(&ListParams::default().labels("app=gone"))
        .await
        .expect("list");
    assert!(sets.items.is_empty());
}

fn job(name: &str, image: &str) -> Job {
    serde_json::from_value(json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"template": {"spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "run", "image": image}],
        }}},
    }))
    .expect("valid job")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_complete_or_fail() {
    let sim = SimulationConfig {
        failing_jobs: vec!["migrate:bad".into()],
        ..fast()
    };
    let (_emu, client) = start(sim).await;
    let api: Api<Job> = Api::default_namespaced(client.clone());
    api.create(&PostParams::default(), &job("ok", "migrate:good"))
        .await
        .expect("create");
    api.create(&PostParams::default(), &job("ko", "migrate:bad"))
        .await
        .expect("create");
    let ok = wait_until(&api, "ok", conditions::is_job_completed()).await;
    let st = ok.status.expect("status");
    assert_eq!(st.succeeded, Some(1));
    assert!(st.completion_time.is_some());
    assert!(st.start_time.is_some());
    let complete = st
        .conditions
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.type_ == "Complete")
        .expect("Complete");
    assert_eq!(complete.status, "True");

    let ko = wait_until(&api, "ko", |j: Option<&Job>| {
        j.and_then(|j| {
            j.status
                .as_ref()?
                .conditions
                .as_ref()?
                .iter()
                .find(|c| c.type_ == "Failed")
                .cloned()
        })
        .is_some_and(|c| c.status == "True")
    })
    .await;
    let st = ko.status.expect("status");
    assert_eq!(st.failed, Some(1));
    let failed = st
        .conditions
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.type_ == "Failed")
        .expect("Failed");
    assert_eq!(failed.reason.as_deref(), Some("BackoffLimitExceeded"));
    let pods = pods_of(&client, "job-name=ok").await;
    assert_eq!(pods.len(), 1);
    assert_eq!(
        pods[0].status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_bind_and_load_balancers_get_addresses() {
    let (_emu, client) = start(fast()).await;
    let pvcs: Api<PersistentVolumeClaim> = Api::default_namespaced(client.clone());
    pvcs.create(
        &PostParams::default(),
        &serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
        }))
        .expect("valid pvc"),
    )
    .await
    .expect("create pvc");
    let bound = wait_until(&pvcs, "data", |p: Option<&PersistentVolumeClaim>| {
        p.and_then(|p| p.status.as_ref()?.phase.clone())
            .is_some_and(|ph| ph == "Bound")
    })
    .await;
    assert!(bound
        .spec
        .and_then(|s| s.volume_name)
        .is_some_and(|v| v.starts_with("pvc-")));
    assert_eq!(
        bound
            .status
            .and_then(|s| s.capacity)
            .and_then(|c| c.get("storage").map(|q| q.0.clone())),
        Some("1Gi".to_string())
    );

    let svcs: Api<Service> = Api::default_namespaced(client.clone());
    for name in ["lb1", "lb2"] {
        svcs.create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": name},
                "spec": {"type": "LoadBalancer", "selector": {"app": "x"}, "ports": [{"port": 80}]},
            }))
            .expect("valid service"),
        )
        .await
        .expect("create service");
    }
    let ip = |s: &Service| {
        s.status
            .as_ref()?
            .load_balancer
            .as_ref()?
            .ingress
            .as_ref()?
            .first()?
            .ip
            .clone()
    };
    let lb1 = wait_until(
        &svcs,
        "lb1",
        conditions::is_service_loadbalancer_provisioned(),
    )
    .await;
    let lb2 = wait_until(
        &svcs,
        "lb2",
        conditions::is_service_loadbalancer_provisioned(),
    )
    .await;
    let (a, b) = (ip(&lb1).expect("ip"), ip(&lb2).expect("ip"));
    assert!(
        a.starts_with("172.18.255.") && b.starts_with("172.18.255."),
        "{a} {b}"
    );
    assert_ne!(a, b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statefulsets_and_daemonsets_become_ready() {
    let (_emu, client) = start(SimulationConfig {
        ready_delay: Duration::ZERO,
        ..fast()
    })
    .await;
    let sts: Api<StatefulSet> = Api::default_namespaced(client.clone());
    sts.create(
        &PostParams::default(),
        &serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "db"},
            "spec": {
                "replicas": 3, "serviceName": "db",
                "selector": {"matchLabels": {"app": "db"}},
                "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "pg", "image": "postgres:16"}]}},
                "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}],
            },
        }))
        .expect("valid sts"),
    )
    .await
    .expect("create sts");
    let s = wait_until(&sts, "db", |s: Option<&StatefulSet>| {
        s.and_then(|s| s.status.as_ref())
            .is_some_and(|st| st.ready_replicas == Some(3))
    })
    .await;
    let st = s.status.expect("status");
    assert_eq!(st.observed_generation, Some(1));
    assert_eq!(st.current_revision, st.update_revision);
    assert!(st
        .update_revision
        .as_deref()
        .is_some_and(|r| r.starts_with("db-")));
    let mut names: Vec<String> = pods_of(&client, "app=db")
        .await
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .collect();
    names.sort();
    assert_eq!(names, ["db-0", "db-1", "db-2"]);
    let pvcs: Api<PersistentVolumeClaim> = Api::default_namespaced(client.clone());
    wait_until(&pvcs, "data-db-2", |p: Option<&PersistentVolumeClaim>| {
        p.and_then(|p| p.status.as_ref()?.phase.clone())
            .is_some_and(|ph| ph == "Bound")
    })
    .await;

    let ds: Api<DaemonSet> = Api::default_namespaced(client.clone());
    ds.create(
        &PostParams::default(),
        &serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "agent"},
            "spec": {
                "selector": {"matchLabels": {"app": "agent"}},
                "template": {"metadata": {"labels": {"app": "agent"}}, "spec": {"containers": [{"name": "a", "image": "agent:1"}]}},
            },
        }))
        .expect("valid ds"),
    )
    .await
    .expect("create ds");
    let d = wait_until(&ds, "agent", |d: Option<&DaemonSet>| {
        d.and_then(|d| d.status.as_ref())
            .is_some_and(|s| s.number_ready == 1)
    })
    .await;
    let st = d.status.expect("status");
    assert_eq!(st.desired_number_scheduled, 1);
    assert_eq!(st.updated_number_scheduled, Some(1));
    assert_eq!(st.observed_generation, Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_waits_for_availability() {
    let (emu, client) = start(SimulationConfig {
        ready_delay: Duration::from_millis(300),
        ..SimulationConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    emu.write_kubeconfig(&kubeconfig)
        .expect("kubeconfig written");
    let api: Api<Deployment> = Api::default_namespaced(client.clone());
    api.create(
        &PostParams::default(),
        &deployment("waited", "nginx:1.25", 2),
    )
    .await
    .expect("create");
    let out = tokio::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args([
            "wait",
            "--for=condition=Available",
            "deployment/waited",
            "--timeout=30s",
        ])
        .output()
        .await
        .expect("kubectl runs");
    assert!(
        out.status.success(),
        "kubectl wait failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("condition met"));
    let out = tokio::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["rollout", "status", "deployment/waited", "--timeout=30s"])
        .output()
        .await
        .expect("kubectl runs");
    assert!(
        out.status.success(),
        "kubectl rollout status failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("successfully rolled out"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_simulation_leaves_status_alone() {
    let (_emu, client) = start(SimulationConfig {
        enabled: false,
        ..fast()
    })
    .await;
    let api: Api<Deployment> = Api::default_namespaced(client.clone());
    api.create(
        &PostParams::default(),
        &deployment("still", "nginx:1.25", 1),
    )
    .await
    .expect("create");
    // A later write is seen only after any earlier one would have been
    // processed; nothing happens for a disabled simulation.
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    assert!(pods
        .list(&ListParams::default())
        .await
        .expect("list")
        .items
        .is_empty());
    assert!(api.get("still").await.expect("get").status.is_none());
}

/// Counts controller ticks, so a test can wait for "N more ticks".
struct TickCounter(std::sync::Arc<std::sync::atomic::AtomicU64>);

impl kubesync::emulator::Controller for TickCounter {
    fn name(&self) -> &str {
        "tick-counter"
    }

    fn tick(&self, _cluster: &kubesync::emulator::Cluster) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settled_objects_are_not_rewritten() {
    let ticks = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let emu = Emulator::start(EmulatorConfig {
        simulation: SimulationConfig {
            resync_interval: Duration::from_millis(100),
            ..fast()
        },
        tick_interval: Duration::from_millis(20),
        controllers: vec![std::sync::Arc::new(TickCounter(ticks.clone()))],
        ..EmulatorConfig::default()
    })
    .await
    .expect("emulator starts");
    let client = emu.kube_client();
    let api: Api<Deployment> = Api::default_namespaced(client.clone());
    api.create(&PostParams::default(), &deployment("calm", "nginx:1.25", 2))
        .await
        .expect("create");
    let jobs: Api<Job> = Api::default_namespaced(client.clone());
    jobs.create(&PostParams::default(), &job("once", "busybox:1"))
        .await
        .expect("create job");
    wait_until(&api, "calm", conditions::is_deployment_completed()).await;
    wait_until(&jobs, "once", conditions::is_job_completed()).await;
    let settled_after = |n: u64| {
        let ticks = ticks.clone();
        async move {
            let start = ticks.load(std::sync::atomic::Ordering::SeqCst);
            eventually("ticks", || {
                let ticks = ticks.clone();
                async move {
                    (ticks.load(std::sync::atomic::Ordering::SeqCst) >= start + n).then_some(())
                }
            })
            .await;
        }
    };
    // Let in-flight status propagation finish, then watch for ten ticks
    // (two resyncs): nothing may be written.
    settled_after(10).await;
    let rv = emu.cluster().resource_version();
    settled_after(10).await;
    assert_eq!(
        emu.cluster().resource_version(),
        rv,
        "a settled cluster stays unchanged"
    );
}
