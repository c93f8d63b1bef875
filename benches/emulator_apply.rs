//! Benchmark: sustained server-side-apply throughput and latency of the
//! emulator, from concurrent kube-rs clients over HTTP on loopback.
//!
//! 16 tasks apply ConfigMaps (create, then re-apply with a changed value) as
//! fast as they can for a fixed number of requests; prints applies/s and
//! p50/p99/max latency. Target: ≥ 2,000 applies/s on the 2-core machine, so
//! that the emulator is never the bottleneck of the sync benchmarks.
//!
//! Run: `cargo bench --bench emulator_apply`

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kubesync::emulator::{Emulator, EmulatorConfig};
use serde_json::json;

const TASKS: usize = 16;
const PER_TASK: usize = 1_000;
const NAMESPACES: usize = 8;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let emu = Emulator::start(EmulatorConfig::default())
            .await
            .expect("emulator");
        let client = emu.kube_client();
        let ns_api: Api<Namespace> = Api::all(client.clone());
        for i in 0..NAMESPACES {
            let ns: Namespace =
                serde_json::from_value(json!({"metadata": {"name": format!("bench-{i}")}}))
                    .expect("ns");
            ns_api
                .create(&PostParams::default(), &ns)
                .await
                .expect("create namespace");
        }
        let start = Instant::now();
        let mut handles = Vec::new();
        for t in 0..TASKS {
            let client = client.clone();
            handles.push(tokio::spawn(async move {
                let api: Api<ConfigMap> =
                    Api::namespaced(client, &format!("bench-{}", t % NAMESPACES));
                let pp = PatchParams::apply("bench").force();
                let mut latencies = Vec::with_capacity(PER_TASK);
                for i in 0..PER_TASK {
                    // Half creates, half updates of an existing object.
                    let name = format!("cm-{t}-{}", i / 2);
                    let body = json!({
                        "apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": name, "labels": {"app": "bench"}},
                        "data": {"round": i.to_string(), "task": t.to_string()}
                    });
                    let begin = Instant::now();
                    api.patch(&name, &pp, &Patch::Apply(&body))
                        .await
                        .expect("apply");
                    latencies.push(begin.elapsed());
                }
                latencies
            }));
        }
        let mut all: Vec<Duration> = Vec::with_capacity(TASKS * PER_TASK);
        for h in handles {
            all.extend(h.await.expect("task"));
        }
        let wall = start.elapsed();
        all.sort();
        let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
        println!(
            "emulator server-side apply: {TASKS} concurrent kube-rs clients, {} applies",
            all.len()
        );
        println!(
            "{:<24} {:>10.0}",
            "applies/s",
            all.len() as f64 / wall.as_secs_f64()
        );
        println!(
            "{:<24} {:>8.2}ms",
            "p50 latency",
            pct(0.50).as_secs_f64() * 1000.0
        );
        println!(
            "{:<24} {:>8.2}ms",
            "p99 latency",
            pct(0.99).as_secs_f64() * 1000.0
        );
        println!(
            "{:<24} {:>8.2}ms",
            "max latency",
            all.last().copied().unwrap_or_default().as_secs_f64() * 1000.0
        );
        println!("{:<24} {:>9.2}s", "wall", wall.as_secs_f64());
    });
}
