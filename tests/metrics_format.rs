//! `/metrics` as a scraper sees it: served over HTTP by the real handler,
//! negotiated (OpenMetrics for Prometheus, classic text otherwise), and
//! read by real parsers — `promtool check metrics` (Debian's `prometheus`
//! package) for the classic text format, and the Python client's strict
//! OpenMetrics parser (PyPI `prometheus_client`) for OpenMetrics. `.ci/run`
//! installs both; in CI a missing tool fails the test, elsewhere it is
//! skipped with the reason printed.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use kubesync::diff::SyncStatus;
use kubesync::health::{Health, HealthStatus};
use kubesync::metrics::*;
use kubesync::model::{AppName, Tier};
use kubesync::sync::{AppOutcome, AppReport};

/// A tool is needed: in CI its absence is a failure, elsewhere a skip.
fn require(tool: &str, probe: &mut Command) -> bool {
    let ok = probe
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "{tool} is not installed, and CI is set: .ci/run must install it"
        );
        eprintln!("skipped: {tool} is not installed (CI unset)");
    }
    ok
}

/// Metrics with a series in every family, and awkward label values.
fn populated() -> Metrics {
    let m = Metrics::new();
    m.run_finished(RunType::Full, true, Duration::from_millis(1200));
    m.run_finished(RunType::Quick, false, Duration::from_millis(300));
    m.file_applied("apps/web/deploy.yaml", true);
    m.file_applied("apps/odd \"quoted\" name\\x.yaml", false);
    for (i, outcome) in [
        AppOutcome::Succeeded,
        AppOutcome::Failed {
            failure: kubesync::sync::SyncFailure::Render {
                kind: kubesync::tree::FailureKind::Render,
                message: "boom".into(),
            },
        },
        AppOutcome::TimedOut { after_secs: 3 },
        AppOutcome::Blocked { by: vec![] },
    ]
    .into_iter()
    .enumerate()
    {
        m.app_synced(&AppReport {
            name: AppName::new(format!("app-{i}")).unwrap(),
            tier: Tier::App,
            namespace: Some("ns".into()),
            revision: "0123456789abcdef0123456789abcdef01234567".into(),
            outcome,
            sync: SyncStatus::OutOfSync,
            health: HealthStatus::progressing("rolling out"),
            changes: vec![],
            duration: Duration::from_millis(700),
        });
    }
    m.app_info(AppInfo {
        app: "app-0",
        sync: SyncStatus::Synced,
        health: Health::Healthy,
        tier: Tier::System,
        revision: "fedcba9",
    });
    m.git_polled(
        "https://user:secret@git.example.com/org/config.git",
        PollResult::Success,
        Duration::from_millis(80),
    );
    m.git_polled(
        "ssh://git@git.example.com/org/other",
        PollResult::Failure,
        Duration::from_secs(2),
    );
    m.drift_detected("app-0");
    m.set_leader(true);
    m.webhook_delivery(WebhookProvider::GitLab, WebhookOutcome::Ignored);
    m.notification(
        NotificationKind::Webhook,
        NotificationTrigger::HealthDegraded,
        NotificationOutcome::Failed,
    );
    m
}

async fn serve(m: Metrics) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = Arc::new(m).router();
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}/metrics")
}

/// GET `url` with an optional Accept header: (content type, body).
async fn scrape(url: &str, accept: Option<&str>) -> (String, String) {
    use http_body_util::{BodyExt, Empty};
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    let client: Client<_, Empty<bytes::Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut req = hyper::Request::get(url);
    if let Some(a) = accept {
        req = req.header("accept", a);
    }
    let resp = client
        .request(req.body(Empty::new()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (ct, String::from_utf8(body.to_vec()).unwrap())
}

/// Prometheus' own Accept header (2.x).
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

#[tokio::test]
async fn negotiated_content_types() {
    let url = serve(populated()).await;
    let (ct, om) = scrape(&url, Some(PROMETHEUS_ACCEPT)).await;
    assert_eq!(ct, CONTENT_TYPE);
    assert!(om.ends_with("# EOF\n"));
    let (ct, text) = scrape(&url, None).await;
    assert_eq!(ct, TEXT_CONTENT_TYPE);
    assert!(!text.contains("# EOF"));
    let (ct, _) = scrape(&url, Some("text/plain")).await;
    assert_eq!(ct, TEXT_CONTENT_TYPE);
    for body in [&om, &text] {
        assert!(!body.contains("secret"), "{body}");
        assert!(body.contains("kubesync_run_latency_seconds_bucket{"));
    }
}

#[tokio::test]
async fn promtool_accepts_the_classic_text_format() {
    if !require("promtool", Command::new("promtool").arg("--version")) {
        return;
    }
    let url = serve(populated()).await;
    let (_, text) = scrape(&url, None).await;
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n--- input:\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The Python client's OpenMetrics parser raises on anything outside the
/// spec (a missing `# EOF`, a sample not matching its family, a bad
/// escape); the script also prints what it read, to check it read all.
const PY_PARSE: &str = r#"
import sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
from prometheus_client.parser import text_string_to_metric_families as classic
text = sys.stdin.read()
mode = sys.argv[1]
parse = text_string_to_metric_families if mode == "openmetrics" else classic
for fam in parse(text):
    for s in fam.samples:
        print(fam.name, fam.type, s.name, sorted(s.labels.items()), s.value)
"#;

fn python_parse(mode: &str, body: &str) -> String {
    let mut child = Command::new("python3")
        .args(["-c", PY_PARSE, mode])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the {mode} parser refused /metrics:\n{}\n--- input:\n{body}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn the_python_parsers_read_every_family() {
    if !require(
        "python3 prometheus_client",
        Command::new("python3").args(["-c", "import prometheus_client"]),
    ) {
        return;
    }
    let url = serve(populated()).await;
    let (_, om) = scrape(&url, Some(PROMETHEUS_ACCEPT)).await;
    let (_, text) = scrape(&url, None).await;
    let parsed = python_parse("openmetrics", &om);
    for line in [
        "kubesync_run_latency_seconds histogram kubesync_run_latency_seconds_count [('run_type', 'full'), ('success', 'true')] 1",
        "kubesync_file_apply_count counter kubesync_file_apply_count_total [('file', 'apps/odd \"quoted\" name\\\\x.yaml'), ('success', 'false')] 1",
        "kubesync_app_info gauge kubesync_app_info [('app', 'app-0'), ('health', 'Healthy'), ('revision', 'fedcba9'), ('sync', 'Synced'), ('tier', 'system')] 1",
        "kubesync_app_sync counter kubesync_app_sync_total [('app', 'app-3'), ('result', 'Blocked')] 1",
        "kubesync_git_poll counter kubesync_git_poll_total [('repository', 'https://git.example.com/org/config.git'), ('result', 'success')] 1",
        "kubesync_leader gauge kubesync_leader [] 1",
        "kubesync_notifications counter kubesync_notifications_total [('kind', 'webhook'), ('outcome', 'failed'), ('trigger', 'on-health-degraded')] 1",
    ] {
        assert!(parsed.contains(line), "missing {line}\nparsed:\n{parsed}");
    }
    // One info series per app: app-0's first label set was replaced.
    assert_eq!(
        parsed
            .lines()
            .filter(|l| l.contains("kubesync_app_info [('app', 'app-0')"))
            .count(),
        1,
        "{parsed}"
    );
    // The classic parser reads the same samples from the text format.
    let classic = python_parse("classic", &text);
    let count = |s: &str| s.lines().count();
    assert_eq!(count(&classic), count(&parsed), "{classic}\n---\n{parsed}");
}
