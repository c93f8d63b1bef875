//! `/metrics` for a 1,000-app tree: prints the size of both exposition
//! formats and how long encoding takes (the controller encodes on every
//! scrape). Every per-app family has a series per app (info, sync counts
//! for two results, reconcile histogram, drift), plus 50 repositories and
//! 5,000 files. Run: `cargo bench --bench metrics`.

use std::time::{Duration, Instant};

use kubesync::diff::SyncStatus;
use kubesync::health::HealthStatus;
use kubesync::metrics::*;
use kubesync::model::{AppName, Tier};
use kubesync::sync::{AppOutcome, AppReport};

const APPS: usize = 1_000;
const ROUNDS: u32 = 20;

fn main() {
    let m = Metrics::new();
    let fill = Instant::now();
    for i in 0..APPS {
        for outcome in [
            AppOutcome::Succeeded,
            AppOutcome::Failed {
                failure: kubesync::sync::SyncFailure::Render {
                    kind: kubesync::tree::FailureKind::Render,
                    message: "x".into(),
                },
            },
        ] {
            m.app_synced(&AppReport {
                name: AppName::new(format!("app-{i:04}")).expect("app name"),
                tier: if i % 10 == 0 { Tier::System } else { Tier::App },
                namespace: Some(format!("ns-{i}")),
                revision: "0123456789abcdef0123456789abcdef01234567".into(),
                outcome,
                sync: SyncStatus::Synced,
                health: HealthStatus::healthy(""),
                changes: vec![],
                duration: Duration::from_millis(100 + i as u64),
            });
        }
        m.drift_detected(&format!("app-{i:04}"));
        for f in 0..5 {
            m.file_applied(&format!("apps/app-{i:04}/file-{f}.yaml"), true);
        }
    }
    for r in 0..50 {
        m.git_polled(
            &format!("https://git.example.com/org/repo-{r}.git"),
            PollResult::Success,
            Duration::from_millis(50),
        );
    }
    m.run_finished(RunType::Full, true, Duration::from_secs(40));
    let filled = fill.elapsed();

    let om = m.encode();
    let text = m.encode_text();
    let t = Instant::now();
    for _ in 0..ROUNDS {
        std::hint::black_box(m.encode());
    }
    let per_om = t.elapsed() / ROUNDS;
    let t = Instant::now();
    for _ in 0..ROUNDS {
        std::hint::black_box(m.encode_text());
    }
    let per_text = t.elapsed() / ROUNDS;
    println!("metrics bench: {APPS} apps, 5 files each, 50 repositories");
    println!("  recording all series:   {filled:>10.2?}");
    println!(
        "  OpenMetrics:  {:>8.1} KiB, {:>6} lines, encode {per_om:>9.2?}",
        om.len() as f64 / 1024.0,
        om.lines().count()
    );
    println!(
        "  text 0.0.4:   {:>8.1} KiB, {:>6} lines, encode {per_text:>9.2?}",
        text.len() as f64 / 1024.0,
        text.lines().count()
    );
}
