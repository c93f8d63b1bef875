//! What `kubesync run` serves to people and Prometheus beside its API: the
//! status page (`GET /`, `GET /apps/NAME`, the CSRF-protected "Run now"
//! form) and `GET /metrics`, in-process against the emulator. A page view
//! makes no API request; "Run now" starts a full run; `/metrics` carries
//! the apps, the runs and the polls.

mod controller_support;

use std::time::Duration;

use controller_support::*;

const LONG: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_status_page_and_metrics_come_from_memory() {
    let repo = GitRepo::new();
    cm_app(&repo, "a", "ns-a", "k: v1", "");
    let first = repo.commit("first");
    let emu = emulator(fast_simulation()).await;
    let h = start_ready(config(&repo, Duration::from_millis(200)), &emu).await;
    let addr = h.addr().expect("addr");
    quiesce(&emu, Duration::from_millis(600), LONG).await;

    // The page: every app with its state, the last run, the button; and
    // not one API request to build it.
    emu.reset_requests();
    let (status, page) = http(addr, "GET", "/", &[], b"").await;
    assert_eq!(status, 200, "{page}");
    assert!(
        emu.journal().is_empty(),
        "a page view made API requests: {:#?}",
        emu.journal()
    );
    assert!(page.contains("<tr data-app=\"a\">"), "{page}");
    let row = &page[page.find("<tr data-app=\"a\">").unwrap()..];
    let row = &row[..row.find("</tr>").unwrap()];
    assert!(
        row.contains(">Synced<") && row.contains(">Healthy<"),
        "{row}"
    );
    assert!(row.contains("<td>ns-a</td>"), "{row}");
    assert!(row.contains(&first[..7]), "the applied commit: {row}");
    assert!(page.contains("id=\"last-run\""), "{page}");
    let (status, app_page) = http(addr, "GET", "/apps/a", &[], b"").await;
    assert_eq!(status, 200, "{app_page}");
    let (status, _) = http(addr, "GET", "/apps/nope", &[], b"").await;
    assert_eq!(status, 404);

    // "Run now" without the page's token is refused; with it, a full run.
    let (status, _) = http(
        addr,
        "POST",
        "/ui/run",
        &[("Content-Type", "application/x-www-form-urlencoded".into())],
        b"csrf=forged",
    )
    .await;
    assert_eq!(status, 403);
    let at = page.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    let token = &page[at..at + 64];
    let before = apps(addr).await["lastFullRun"].clone();
    let body = format!("csrf={token}");
    let (status, _) = http(
        addr,
        "POST",
        "/ui/run",
        &[("Content-Type", "application/x-www-form-urlencoded".into())],
        body.as_bytes(),
    )
    .await;
    assert_eq!(status, 303);
    wait_for(LONG, "the full run Run now asked for", || async {
        apps(addr).await["lastFullRun"] != before
    })
    .await;

    // /metrics: the app's info series, runs, polls, leadership.
    let (status, metrics) = http(addr, "GET", "/metrics", &[], b"").await;
    assert_eq!(status, 200);
    for want in [
        "kubesync_app_info{",
        "app=\"a\"",
        "sync=\"Synced\"",
        "kubesync_run_latency_seconds_count{",
        "run_type=\"full\"",
        "kubesync_git_poll_total{",
        "kubesync_leader 1",
    ] {
        assert!(metrics.contains(want), "/metrics lacks {want}:\n{metrics}");
    }
    assert!(h.shutdown(Duration::from_secs(10)).await);
}
