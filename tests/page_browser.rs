//! The status page in a real browser: Debian's `chromium`, headless, driven
//! through the W3C WebDriver protocol (`chromedriver`) by the small client
//! below (plain JSON over HTTP; a WebDriver crate would bring a second TLS
//! stack into the test build for a loopback-only protocol). The page is served by
//! `kubesync::page::router` over a source whose run counter moves when "Run
//! now" is pressed: the test loads the page, reads the apps and their
//! states, presses the button (a real form POST with the page's CSRF token),
//! sees the counter move, and saves a screenshot under `target/`.
//!
//! Skipped, with the reason printed, when chromium or chromedriver is not
//! installed — except in CI (`CI` set), where `.ci/run` installs them and a
//! missing browser fails the test.

mod support;

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use kubesync::diff::SyncStatus;
use kubesync::health::Health;
use kubesync::page::{self, AppPageView, AppRow, Outcome, PageSource, PageView, Trigger};
use serde_json::{json, Value};

/// A W3C WebDriver session: just the commands this test needs.
struct Session {
    http: Client<hyper_util::client::legacy::connect::HttpConnector, Full<bytes::Bytes>>,
    base: String,
}

impl Session {
    async fn send(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let req = hyper::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(Full::new(bytes::Bytes::from(
                body.map(|b| b.to_string()).unwrap_or_default(),
            )))
            .map_err(|e| e.to_string())?;
        let resp = self.http.request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        let v: Value = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
        if !status.is_success() {
            return Err(format!(
                "{method} {path}: {status}: {}",
                v["value"]["message"]
            ));
        }
        Ok(v["value"].clone())
    }

    /// Starts chromium through chromedriver at `driver` (an http URL).
    async fn start(driver: &str, caps: Value) -> Result<Session, String> {
        let http = Client::builder(TokioExecutor::new()).build_http();
        let root = Session {
            http,
            base: driver.to_string(),
        };
        let created = root
            .send(
                "POST",
                "/session",
                Some(json!({"capabilities": {"alwaysMatch": caps}})),
            )
            .await?;
        let id = created["sessionId"]
            .as_str()
            .ok_or_else(|| format!("no session id in {created}"))?;
        Ok(Session {
            http: root.http,
            base: format!("{driver}/session/{id}"),
        })
    }

    async fn goto(&self, url: &str) -> Result<(), String> {
        self.send("POST", "/url", Some(json!({"url": url})))
            .await
            .map(|_| ())
    }

    async fn current_url(&self) -> Result<String, String> {
        Ok(self
            .send("GET", "/url", None)
            .await?
            .as_str()
            .unwrap_or_default()
            .to_string())
    }

    /// The element matching a CSS selector (its WebDriver id).
    async fn find(&self, css: &str) -> Result<String, String> {
        let v = self
            .send(
                "POST",
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await?;
        v.as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| format!("{css}: no element id in {v}"))
    }

    async fn text(&self, css: &str) -> Result<String, String> {
        let el = self.find(css).await?;
        let v = self
            .send("GET", &format!("/element/{el}/text"), None)
            .await?;
        Ok(v.as_str().unwrap_or_default().to_string())
    }

    async fn click(&self, css: &str) -> Result<(), String> {
        let el = self.find(css).await?;
        self.send("POST", &format!("/element/{el}/click"), Some(json!({})))
            .await
            .map(|_| ())
    }

    async fn screenshot(&self) -> Result<Vec<u8>, String> {
        use base64::Engine as _;
        let v = self.send("GET", "/screenshot", None).await?;
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or_default())
            .map_err(|e| e.to_string())
    }

    async fn close(&self) -> Result<(), String> {
        self.send("DELETE", "", None).await.map(|_| ())
    }
}

struct Source {
    runs: AtomicU64,
}

fn row(name: &str, sync: SyncStatus, health: Health, outcome: Outcome) -> AppRow {
    AppRow {
        name: name.into(),
        tier: "app".into(),
        namespace: Some(name.into()),
        sync: Some(sync),
        health: Some(health),
        outcome,
        applied_revision: Some("4f1c2e9a0b7d4f1c2e9a0b7d4f1c2e9a0b7d4f1c".into()),
        deployed_revision: None,
        last_started: None,
        last_finished: None,
        created: 2,
        configured: 0,
        pruned: 0,
        error: (outcome == Outcome::Failed)
            .then(|| "application \"api\": helm template failed: chart not found".into()),
        depends_on: vec![],
        blocked_by: vec![],
    }
}

impl PageSource for Source {
    fn index(&self) -> PageView {
        PageView {
            source: "file:///srv/cluster-config @ main".into(),
            runs: self.runs.load(Ordering::SeqCst),
            leader: true,
            last_run: None,
            queued: false,
            diff_url_format: Some("https://git.example/cfg/commit/%s".into()),
            apps: vec![
                row(
                    "web",
                    SyncStatus::Synced,
                    Health::Healthy,
                    Outcome::Succeeded,
                ),
                row(
                    "api",
                    SyncStatus::OutOfSync,
                    Health::Degraded,
                    Outcome::Failed,
                ),
            ],
        }
    }
    fn app(&self, _name: &str) -> Option<AppPageView> {
        None
    }
    fn run_now(&self) -> Trigger {
        self.runs.fetch_add(1, Ordering::SeqCst);
        Trigger::Started
    }
    fn sync_app(&self, _name: &str) -> Option<Trigger> {
        None
    }
}

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn browser() -> Option<(String, String)> {
    let find = |names: &[&str]| {
        names.iter().find_map(|n| {
            Command::new("which")
                .arg(n)
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        })
    };
    let chromium = find(&["chromium", "chromium-browser", "google-chrome"]);
    let driver = find(&["chromedriver"]);
    match (chromium, driver) {
        (Some(c), Some(d)) => Some((c, d)),
        _ if std::env::var_os("CI").is_some() => {
            panic!("chromium and chromedriver must be installed in CI (.ci/run installs Debian's chromium and chromium-driver)")
        }
        _ => {
            eprintln!(
                "browser test skipped: install Debian's chromium and chromium-driver to run it"
            );
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_now_in_a_real_browser_moves_the_run_counter() {
    let Some((chromium, chromedriver)) = browser() else {
        return;
    };
    let source = Arc::new(Source {
        runs: AtomicU64::new(0),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = page::router(source.clone());
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });

    let port = support::free_port();
    let _driver = Driver(
        Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver"),
    );
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,900"]
        }
    });
    // chromedriver takes a moment to listen.
    let driver = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let client = loop {
        match Session::start(&driver, caps.clone()).await {
            Ok(c) => break c,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("cannot start a chromium session through chromedriver: {e}"),
        }
    };

    let base = format!("http://{addr}/");
    client.goto(&base).await.expect("load the page");
    let text = |css: &'static str| {
        let client = &client;
        async move {
            client
                .text(css)
                .await
                .unwrap_or_else(|e| panic!("{css}: {e}"))
        }
    };
    assert_eq!(text("tr[data-app='web'] td.sync").await, "Synced");
    assert_eq!(text("tr[data-app='web'] td.health").await, "Healthy");
    assert_eq!(text("tr[data-app='api'] td.sync").await, "OutOfSync");
    assert_eq!(text("tr[data-app='api'] td.health").await, "Degraded");
    assert_eq!(text("tr[data-app='api'] td.outcome").await, "Failed");
    assert_eq!(text("#summary").await, "1 of 2 apps Synced and Healthy");
    assert_eq!(text("#run-counter").await, "0");

    client.click("#run-now").await.expect("click Run now");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let shown = match client.text("#run-counter").await {
            Ok(t) => t,
            Err(e) => format!(
                "no counter ({e}); the browser shows: {}",
                client.text("body").await.unwrap_or_default()
            ),
        };
        if shown == "1" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the run counter did not move (shows {shown:?}, source saw {})",
            source.runs.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(source.runs.load(Ordering::SeqCst), 1);
    assert_eq!(client.current_url().await.unwrap(), base);

    let png = client.screenshot().await.expect("screenshot");
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/page-screenshot.png");
    std::fs::write(&out, &png).expect("save the screenshot");
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    client.close().await.expect("close the session");
}
