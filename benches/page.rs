//! The status page's render time and size for a large tree: 1,000 apps
//! (a realistic mix of states, errors and dependencies) rendered by
//! `kubesync::page::html::index`, the work a page view does (the controller
//! keeps the view model in memory; a view makes no API request). Prints
//! figures; the goal is under 150 ms per view for 1,000 apps.

use std::time::Instant;

use chrono::{TimeZone, Utc};
use kubesync::diff::SyncStatus;
use kubesync::health::Health;
use kubesync::page::{html, AppRow, Outcome, PageView, RunKind, RunView};

fn view(apps: usize) -> PageView {
    let t0 = Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0).unwrap();
    PageView {
        source: "https://git.example/platform/cluster.git @ main".into(),
        runs: 1234,
        leader: true,
        last_run: Some(RunView {
            kind: RunKind::Full,
            started: t0,
            finished: Some(t0 + chrono::Duration::seconds(14)),
            commit: Some("4f1c2e9a0b7d4f1c2e9a0b7d4f1c2e9a0b7d4f1c".into()),
            apps_synced: apps,
            objects_applied: apps * 10,
            errors: vec!["application \"app-0007\": helm template failed".into()],
        }),
        queued: false,
        diff_url_format: Some("https://git.example/platform/cluster/commit/%s".into()),
        apps: (0..apps)
            .map(|i| AppRow {
                name: format!("app-{i:04}"),
                tier: if i % 10 == 0 { "system" } else { "app" }.into(),
                namespace: Some(format!("team-{}", i % 40)),
                sync: Some(if i % 17 == 0 {
                    SyncStatus::OutOfSync
                } else {
                    SyncStatus::Synced
                }),
                health: Some(match i % 23 {
                    0 => Health::Degraded,
                    1 => Health::Progressing,
                    _ => Health::Healthy,
                }),
                outcome: if i % 23 == 0 {
                    Outcome::Failed
                } else {
                    Outcome::Succeeded
                },
                applied_revision: Some("4f1c2e9a0b7d4f1c2e9a0b7d4f1c2e9a0b7d4f1c".into()),
                deployed_revision: Some("4f1c2e9a0b7d4f1c2e9a0b7d4f1c2e9a0b7d4f1c".into()),
                last_started: Some(t0),
                last_finished: Some(t0 + chrono::Duration::milliseconds(850)),
                created: 0,
                configured: i % 3,
                pruned: 0,
                error: (i % 23 == 0).then(|| format!("application \"app-{i:04}\": Deployment web: rollout exceeded its progress deadline")),
                depends_on: if i % 10 == 0 {
                    vec![]
                } else {
                    vec![format!("app-{:04}", i - i % 10)]
                },
                blocked_by: vec![],
            })
            .collect(),
    }
}

fn main() {
    for apps in [100, 1_000, 5_000] {
        let v = view(apps);
        let token = "0".repeat(64);
        // Warm up, then take the median of 21 renders.
        let _ = html::index(&v, &token);
        let mut times: Vec<f64> = (0..21)
            .map(|_| {
                let t = Instant::now();
                let page = html::index(&v, &token);
                std::hint::black_box(page.len());
                t.elapsed().as_secs_f64() * 1000.0
            })
            .collect();
        times.sort_by(f64::total_cmp);
        let size = html::index(&v, &token).len();
        println!(
            "status page, {apps:>5} apps: render median {:.2} ms (min {:.2}, max {:.2}), {:.0} KiB of HTML",
            times[times.len() / 2],
            times[0],
            times[times.len() - 1],
            size as f64 / 1024.0
        );
    }
}
