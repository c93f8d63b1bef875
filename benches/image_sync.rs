//! Image sync at scale: 500 Deployments over 50 distinct images in the
//! emulator, against a real registry on loopback (Debian's
//! `docker-registry`, images pushed with `skopeo`). Prints, per run, the
//! registry requests, the API writes and the wall time:
//!
//! 1. nothing moved (the pods run what the registry serves) — goal: 50
//!    registry requests (one per tag), 0 writes;
//! 2. five tags pushed anew — 50 requests, one apply per affected workload;
//! 3. again — 50 requests, 0 writes (the pins hold the tags' digests).
//!
//! `cargo bench --bench image_sync` (needs docker-registry, skopeo; see
//! `.ci/run`). `KUBESYNC_BENCH_WORKLOADS` / `KUBESYNC_BENCH_IMAGES` change
//! the sizes.

#[allow(dead_code)]
#[path = "../tests/support/registry.rs"]
mod registry;
#[allow(dead_code)]
#[path = "../tests/support/tls.rs"]
mod tls;

use std::time::{Duration, Instant};

use kubesync::cluster::{ClusterClient, ClusterOptions};
use kubesync::emulator::{Emulator, EmulatorConfig, SimulationConfig};
use kubesync::image::sync::{FieldSelector, Namespaces};
use kubesync::image::{Report, Selection, SyncOpts};
use serde_json::json;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn print_run(label: &str, r: &Report, wall: Duration) {
    println!(
        "{label:<44} {:>4} workloads  {:>4} registry requests ({} manifest, {} token)  {:>4} API writes  {:>4} reads  {:>7.3} s",
        r.workloads.len(),
        r.registry.total(),
        r.registry.manifest_requests,
        r.registry.token_requests,
        r.api.writes(),
        r.api.reads,
        wall.as_secs_f64()
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let Some(reg) = registry::Registry::start(registry::Auth::None).await else {
        return;
    };
    let workloads = env_usize("KUBESYNC_BENCH_WORKLOADS", 500);
    let images = env_usize("KUBESYNC_BENCH_IMAGES", 50).max(1);
    let started = Instant::now();
    // The pods are written by the benchmark (one per workload, running the
    // digest the registry serves): the simulated controllers would take
    // minutes to roll 500 Deployments out on a loaded machine, and image
    // sync only reads the pods.
    let sim = SimulationConfig {
        enabled: false,
        ..SimulationConfig::default()
    };
    let mut tags = Vec::new();
    for i in 0..images {
        let tag = reg.image(&format!("svc{i}"), "stable");
        let digest = reg.push(
            &format!("svc{i}"),
            "stable",
            &format!("build one of {i}"),
            false,
        );
        tags.push((tag, digest));
    }
    println!(
        "pushed {images} images in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let emu = Emulator::start(EmulatorConfig {
        simulation: sim,
        ..EmulatorConfig::default()
    })
    .await
    .expect("emulator");
    let client = ClusterClient::connect(ClusterOptions::server(emu.url()))
        .await
        .expect("connect");
    for w in 0..workloads {
        let name = format!("w{w}");
        let (tag, digest) = &tags[w % images];
        let d = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{"name": "app", "image": tag}]}}}
        });
        client.apply(&d, false).await.expect("create deployment");
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("{name}-0"), "namespace": "default", "labels": {"app": name}},
            "spec": {"containers": [{"name": "app", "image": tag}]}
        });
        client.apply(&pod, false).await.expect("create pod");
        let r = kubesync::model::ObjectRef {
            group: String::new(),
            version: "v1".into(),
            kind: "Pod".into(),
            namespace: Some("default".into()),
            name: format!("{name}-0"),
        };
        let repo = tag.rsplit_once(':').map_or(tag.as_str(), |(r, _)| r);
        client
            .patch_status(
                &r,
                &json!({"phase": "Running", "containerStatuses": [{"name": "app", "image": tag,
                    "imageID": format!("{repo}@{digest}"), "ready": true, "restartCount": 0,
                    "state": {"running": {}}}]}),
            )
            .await
            .expect("pod status");
    }
    println!("created {workloads} Deployments and their pods");
    let selection = Selection {
        namespaces: Namespaces::One("default".into()),
        label_selector: String::new(),
        field_selector: FieldSelector::default(),
    };
    let opts = SyncOpts::default();

    let t = Instant::now();
    let r = kubesync::image::run_once(&client, &selection, &opts)
        .await
        .expect("run");
    print_run("1. nothing moved", &r, t.elapsed());

    let moved = 5.min(images);
    for i in 0..moved {
        reg.push(
            &format!("svc{i}"),
            "stable",
            &format!("build two of {i}"),
            false,
        );
    }
    let t = Instant::now();
    let r = kubesync::image::run_once(&client, &selection, &opts)
        .await
        .expect("run");
    print_run(&format!("2. {moved} tags pushed anew"), &r, t.elapsed());
    let pinned = r.updated();

    let t = Instant::now();
    let r = kubesync::image::run_once(&client, &selection, &opts)
        .await
        .expect("run");
    print_run("3. again", &r, t.elapsed());
    println!(
        "goal: {images} registry requests and 0 writes when nothing moved; {pinned} workloads pinned after {moved} pushes"
    );
}
