use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use chrono::TimeZone;
use http_body_util::BodyExt;
use tower_service::Service;

use super::html::{commit_link, escape, health_badge, path_segment, sync_badge};
use super::*;

fn row(name: &str) -> AppRow {
    AppRow {
        name: name.into(),
        tier: "app".into(),
        namespace: Some("web".into()),
        sync: Some(SyncStatus::Synced),
        health: Some(Health::Healthy),
        outcome: Outcome::Succeeded,
        applied_revision: Some("0123456789abcdef0123456789abcdef01234567".into()),
        deployed_revision: Some("0123456789abcdef0123456789abcdef01234567".into()),
        last_started: Some(Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0).unwrap()),
        last_finished: Some(Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 2).unwrap()),
        created: 3,
        configured: 1,
        pruned: 0,
        error: None,
        depends_on: vec!["namespaces".into()],
        blocked_by: vec![],
    }
}

#[derive(Default)]
struct Fake {
    runs: AtomicU64,
    synced: parking_lot::Mutex<Vec<String>>,
}

impl PageSource for Fake {
    fn index(&self) -> PageView {
        let mut hostile = row("<script>alert(1)</script>");
        hostile.error = Some("render failed: <b>bad</b> & \"quoted\"".into());
        hostile.sync = Some(SyncStatus::OutOfSync);
        hostile.health = Some(Health::Degraded);
        hostile.outcome = Outcome::Failed;
        PageView {
            source: "https://git.example/cfg.git @ main".into(),
            runs: self.runs.load(Ordering::SeqCst),
            leader: true,
            last_run: None,
            queued: false,
            diff_url_format: Some("https://git.example/cfg/commit/%s".into()),
            apps: vec![row("web"), hostile],
        }
    }
    fn app(&self, name: &str) -> Option<AppPageView> {
        (name == "web").then(|| AppPageView {
            app: row("web"),
            diff_url_format: None,
            objects: vec![ObjectRow {
                kind: "Secret".into(),
                namespace: Some("web".into()),
                name: "creds".into(),
                sync: Some(SyncStatus::OutOfSync),
                health: None,
                message: String::new(),
            }],
            diff: Some("-  password: '***'\n+  password: '***' (changed)\n".into()),
        })
    }
    fn run_now(&self) -> Trigger {
        self.runs.fetch_add(1, Ordering::SeqCst);
        Trigger::Started
    }
    fn sync_app(&self, name: &str) -> Option<Trigger> {
        (name == "web").then(|| {
            self.synced.lock().push(name.to_string());
            Trigger::Queued
        })
    }
}

async fn call(router: &Router, req: Request<Body>) -> (StatusCode, String, axum::http::HeaderMap) {
    let mut svc = router.clone();
    std::future::poll_fn(|cx| Service::<Request<Body>>::poll_ready(&mut svc, cx))
        .await
        .unwrap();
    let resp = svc.call(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned(), headers)
}

fn token_of(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    page[at..at + 64].to_string()
}

fn post(path: &str, body: String) -> Request<Body> {
    Request::post(path)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::HOST, "127.0.0.1:8080")
        .body(Body::from(body))
        .unwrap()
}

#[test]
fn escaping_covers_text_and_attributes() {
    assert_eq!(
        escape(r#"<a href="x">'&'</a>"#),
        "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
    );
    assert_eq!(path_segment("team a/../x"), "team%20a%2F..%2Fx");
}

#[test]
fn states_are_colour_and_words() {
    assert!(sync_badge(Some(SyncStatus::Synced)).contains("ok\">Synced<"));
    assert!(sync_badge(Some(SyncStatus::OutOfSync)).contains("warn\">OutOfSync<"));
    assert!(sync_badge(None).contains(">Unknown<"));
    assert!(health_badge(Some(Health::Degraded)).contains("bad\">Degraded<"));
    assert!(health_badge(Some(Health::Progressing)).contains("info\">Progressing<"));
}

#[test]
fn commit_links_follow_diff_url_format_and_only_http() {
    let sha = "0123456789abcdef0123456789abcdef01234567";
    let link = commit_link(sha, Some("https://github.com/o/r/commit/%s"));
    assert!(link.contains(&format!("href=\"https://github.com/o/r/commit/{sha}\"")));
    assert!(link.contains(">0123456789ab<"), "{link}");
    // A javascript: (or any non-http) format is shown as text, not linked.
    let plain = commit_link(sha, Some("javascript:alert('%s')"));
    assert!(!plain.contains("href"), "{plain}");
    assert!(!commit_link(sha, None).contains("href"));
}

#[tokio::test]
async fn the_index_shows_every_app_escaped() {
    let router = router(Arc::new(Fake::default()));
    let (status, page, headers) =
        call(&router, Request::get("/").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY");
    assert!(headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .contains("frame-ancestors 'none'"));
    assert!(page.contains("<tr data-app=\"web\">"));
    assert!(!page.contains("<script>alert(1)"), "unescaped name");
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(page.contains("render failed: &lt;b&gt;bad&lt;/b&gt; &amp; &quot;quoted&quot;"));
    assert!(page.contains("1 of 2 apps Synced and Healthy"));
    assert!(page.contains(
        "href=\"https://git.example/cfg/commit/0123456789abcdef0123456789abcdef01234567\""
    ));
    assert!(page.contains(&format!(
        "http-equiv=\"refresh\" content=\"{REFRESH_SECONDS}\""
    )));
    assert!(page.contains("No run yet."));
}

#[tokio::test]
async fn buttons_need_the_token_and_this_origin() {
    let fake = Arc::new(Fake::default());
    let router = router(fake.clone());
    let (_, page, _) = call(&router, Request::get("/").body(Body::empty()).unwrap()).await;
    let token = token_of(&page);

    // No token, a wrong token, a foreign Origin: refused, nothing runs.
    let (s, body, _) = call(&router, post("/ui/run", String::new())).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(body.contains("CSRF"));
    let (s, _, _) = call(&router, post("/ui/run", format!("csrf={}", "0".repeat(64)))).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let mut foreign = post("/ui/run", format!("csrf={token}"));
    foreign
        .headers_mut()
        .insert(header::ORIGIN, "https://evil.example".parse().unwrap());
    let (s, _, _) = call(&router, foreign).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(fake.runs.load(Ordering::SeqCst), 0);

    // The page's own form: accepted, back to the page.
    let mut own = post("/ui/run", format!("csrf={token}"));
    own.headers_mut()
        .insert(header::ORIGIN, "http://127.0.0.1:8080".parse().unwrap());
    let (s, _, h) = call(&router, own).await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert_eq!(h[header::LOCATION], "/");
    assert_eq!(fake.runs.load(Ordering::SeqCst), 1);

    let (s, _, h) = call(&router, post("/ui/apps/web/sync", format!("csrf={token}"))).await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert_eq!(h[header::LOCATION], "/apps/web");
    assert_eq!(*fake.synced.lock(), vec!["web".to_string()]);
    let (s, _, _) = call(&router, post("/ui/apps/nope/sync", format!("csrf={token}"))).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_app_page_shows_objects_and_the_masked_diff() {
    let router = router(Arc::new(Fake::default()));
    let (s, page, _) = call(
        &router,
        Request::get("/apps/web").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert!(page.contains("<td>Secret</td><td>web</td><td>creds</td>"));
    assert!(page.contains("id=\"diff\">-  password: &#39;***&#39;"));
    assert!(page.contains("3 created, 1 configured, 0 pruned"));
    let (s, page, _) = call(
        &router,
        Request::get("/apps/ghost").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(page.contains("no application named &quot;ghost&quot;"));
}
