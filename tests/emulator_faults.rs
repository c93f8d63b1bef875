//! Fault injection in the emulator, seen by kube-rs and by raw HTTP:
//! error rules hit only what they match, seeded rates are reproducible,
//! latency delays, dropped connections fail the client while the server
//! keeps serving, and faults toggle over HTTP.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::Client;
use kubesync::emulator::{
    Emulator, EmulatorConfig, EmulatorHandle, FaultConfig, FaultRule, SimulationConfig,
};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A kube-rs client that does not retry 429/503/504 (kube's default client
/// does, up to 15 times with backoff), so tests see the injected errors.
fn no_retry_client(emu: &EmulatorHandle) -> Client {
    let mut config = kube::Config::new(emu.url().parse().expect("emulator URL parses"));
    config.default_retry = false;
    Client::try_from(config).expect("client builds")
}

async fn start() -> (EmulatorHandle, Client) {
    let handle = Emulator::start(EmulatorConfig {
        simulation: SimulationConfig {
            enabled: false,
            ..SimulationConfig::default()
        },
        ..EmulatorConfig::default()
    })
    .await
    .expect("emulator starts");
    let client = no_retry_client(&handle);
    (handle, client)
}

async fn make_configmap(client: &Client, name: &str) -> Api<ConfigMap> {
    let api: Api<ConfigMap> = Api::default_namespaced(client.clone());
    api.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": name}, "data": {"k": "v"}}))
            .expect("valid configmap"),
    )
    .await
    .expect("create configmap");
    api
}

fn api_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

/// One raw HTTP/1.1 exchange; the whole response, or the I/O error.
async fn raw_http(
    emu: &EmulatorHandle,
    method: &str,
    path: &str,
    body: &str,
) -> std::io::Result<String> {
    let mut s = tokio::net::TcpStream::connect(emu.addr()).await?;
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: emulator\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await?;
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no response"))??;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

fn body_json(response: &str) -> Value {
    let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
    serde_json::from_str(body).unwrap_or(Value::Null)
}

#[tokio::test]
async fn patch_rule_fails_patches_while_gets_work() {
    let (emu, client) = start().await;
    let api = make_configmap(&client, "cfg").await;
    emu.set_faults(FaultConfig {
        seed: 1,
        rules: vec![FaultRule::error(503)
            .on_verbs(&["patch"])
            .on_resources(&["configmaps"])],
    })
    .expect("valid faults");
    let patch = Patch::Merge(json!({"data": {"k": "w"}}));
    for _ in 0..3 {
        let err = api
            .patch("cfg", &PatchParams::default(), &patch)
            .await
            .expect_err("patch fails");
        assert_eq!(api_code(&err), Some(503), "{err}");
    }
    let cm = api.get("cfg").await.expect("get still works");
    assert_eq!(
        cm.data.and_then(|d| d.get("k").cloned()).as_deref(),
        Some("v")
    );
    let counts = emu.requests();
    assert_eq!(counts.faults.errors, 3);
    assert_eq!(counts.faults.by_rule.get("rule-0"), Some(&3));
    assert_eq!(
        counts.count("patch", "configmaps"),
        3,
        "faulted requests are still counted"
    );

    emu.clear_faults();
    api.patch("cfg", &PatchParams::default(), &patch)
        .await
        .expect("patch works once cleared");
}

#[tokio::test]
async fn kube_default_client_retries_through_transient_503s() {
    let (emu, client) = start().await;
    make_configmap(&client, "cfg").await;
    emu.set_faults(FaultConfig {
        seed: 1,
        rules: vec![FaultRule::error(503)
            .on_verbs(&["patch"])
            .on_resources(&["configmaps"])
            .at_most(2)],
    })
    .expect("valid faults");
    emu.reset_requests();
    let retrying: Api<ConfigMap> = Api::default_namespaced(emu.kube_client());
    let cm = retrying
        .patch(
            "cfg",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"k": "w"}})),
        )
        .await
        .expect("succeeds after retries");
    assert_eq!(
        cm.data.and_then(|d| d.get("k").cloned()).as_deref(),
        Some("w")
    );
    let counts = emu.requests();
    assert_eq!(counts.count("patch", "configmaps"), 3);
    assert_eq!(counts.faults.errors, 2);
}

#[tokio::test]
async fn retry_after_is_sent_with_429() {
    let (emu, _client) = start().await;
    emu.set_faults(FaultConfig {
        seed: 0,
        rules: vec![FaultRule::error(429).retry_after(7).on_verbs(&["list"])],
    })
    .expect("valid faults");
    let resp = raw_http(&emu, "GET", "/api/v1/namespaces/default/configmaps", "")
        .await
        .expect("response");
    assert!(resp.starts_with("HTTP/1.1 429"), "{resp}");
    assert!(
        resp.to_ascii_lowercase().contains("retry-after: 7"),
        "{resp}"
    );
    let status = body_json(&resp);
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["reason"], "TooManyRequests");
    assert_eq!(status["code"], 429);
}

/// Failures among `n` gets with a 5% rule seeded with `seed`.
async fn failures_at_five_percent(seed: u64, n: usize) -> (usize, u64) {
    let (emu, client) = start().await;
    let api = make_configmap(&client, "cfg").await;
    emu.set_faults(FaultConfig {
        seed,
        rules: vec![FaultRule::error(500)
            .on_verbs(&["get"])
            .on_resources(&["configmaps"])
            .with_rate(0.05)],
    })
    .expect("valid faults");
    let mut failed = 0;
    for _ in 0..n {
        match api.get("cfg").await {
            Ok(_) => {}
            Err(e) => {
                assert_eq!(api_code(&e), Some(500), "{e}");
                failed += 1;
            }
        }
    }
    (failed, emu.requests().faults.errors)
}

#[tokio::test]
async fn seeded_rate_gives_a_stable_count() {
    let (a, counted) = failures_at_five_percent(2024, 200).await;
    assert_eq!(u64::try_from(a).unwrap_or(0), counted);
    assert!((2..=25).contains(&a), "{a} failures of 200 at 5%");
    let (b, _) = failures_at_five_percent(2024, 200).await;
    assert_eq!(a, b, "same seed, same faults");
    // Pinned: seed 2024 gives 9 of 200 with rand 0.9's StdRng. A rand
    // upgrade may change the stream; then re-pin.
    assert_eq!(a, 9);
}

#[tokio::test]
async fn latency_rule_delays_matching_requests() {
    let (emu, client) = start().await;
    let api = make_configmap(&client, "cfg").await;
    emu.set_faults(FaultConfig {
        seed: 0,
        rules: vec![FaultRule::latency(Duration::from_millis(400))
            .on_verbs(&["get"])
            .on_resources(&["configmaps"])],
    })
    .expect("valid faults");
    let t = Instant::now();
    api.get("cfg").await.expect("slow get succeeds");
    let slow = t.elapsed();
    assert!(slow >= Duration::from_millis(400), "{slow:?}");
    let t = Instant::now();
    api.list(&Default::default()).await.expect("list");
    assert!(
        t.elapsed() < Duration::from_millis(400),
        "lists are not delayed"
    );
    assert_eq!(emu.requests().faults.delays, 1);
}

#[tokio::test]
async fn dropped_connection_fails_the_client_and_the_server_keeps_serving() {
    let (emu, client) = start().await;
    let api = make_configmap(&client, "cfg").await;
    emu.set_faults(FaultConfig {
        seed: 0,
        rules: vec![FaultRule::drop_connection()
            .on_verbs(&["get"])
            .on_resources(&["configmaps"])],
    })
    .expect("valid faults");
    let err = api.get("cfg").await.expect_err("dropped");
    assert_eq!(api_code(&err), None, "not an API status: {err}");
    let raw = raw_http(&emu, "GET", "/api/v1/namespaces/default/configmaps/cfg", "").await;
    // Closed without a byte of response (or reset).
    if let Ok(text) = raw {
        assert!(text.is_empty(), "{text}");
    }
    assert!(
        api.list(&Default::default()).await.is_ok(),
        "other requests are served"
    );
    emu.clear_faults();
    api.get("cfg").await.expect("served again once cleared");
    assert!(emu.requests().faults.drops >= 2);
}

#[tokio::test]
async fn faults_toggle_over_http() {
    let (emu, client) = start().await;
    let api = make_configmap(&client, "cfg").await;
    let config = json!({"seed": 3, "rules": [
        {"name": "no-gets", "verbs": ["get"], "resources": ["configmaps"], "error": {"code": 503}}
    ]});
    let resp = raw_http(&emu, "POST", "/emulator/faults", &config.to_string())
        .await
        .expect("post");
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    let err = api.get("cfg").await.expect_err("faulted");
    assert_eq!(api_code(&err), Some(503));

    let read = body_json(
        &raw_http(&emu, "GET", "/emulator/faults", "")
            .await
            .expect("get"),
    );
    assert_eq!(read["seed"], 3);
    assert_eq!(read["rules"][0]["name"], "no-gets");
    assert_eq!(read["rules"][0]["error"]["code"], 503);
    assert_eq!(emu.faults().rules.len(), 1);

    let counts = body_json(
        &raw_http(&emu, "GET", "/emulator/requests", "")
            .await
            .expect("get"),
    );
    assert_eq!(counts["faults"]["byRule"]["no-gets"], 1);

    let bad = raw_http(
        &emu,
        "POST",
        "/emulator/faults",
        r#"{"rules": [{"rate": 2.0, "latencyMs": 1}]}"#,
    )
    .await
    .expect("post");
    assert!(bad.starts_with("HTTP/1.1 400"), "{bad}");
    assert!(body_json(&bad)["message"]
        .as_str()
        .is_some_and(|m| m.contains("rate")));
    assert_eq!(
        emu.faults().rules.len(),
        1,
        "a rejected config changes nothing"
    );

    let resp = raw_http(&emu, "DELETE", "/emulator/faults", "")
        .await
        .expect("delete");
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    api.get("cfg").await.expect("cleared over HTTP");
}

#[tokio::test]
async fn fault_endpoint_requires_the_token() {
    let handle = Emulator::start(EmulatorConfig {
        token: Some("s3cret".into()),
        ..EmulatorConfig::default()
    })
    .await
    .expect("emulator starts");
    let resp = raw_http(&handle, "GET", "/emulator/faults", "")
        .await
        .expect("get");
    assert!(resp.starts_with("HTTP/1.1 401"), "{resp}");
}
