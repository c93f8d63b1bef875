//! What the loop does next (pure): the queue of pending work and the
//! clocks. Triggers (a poll that saw a new commit, a webhook, forceRun, an
//! app's sync request, drift) only *merge* into [`Pending`], so however many
//! arrive during a run, at most one more run follows it. Also the poll
//! jitter and the retry backoff of failed apps.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::model::AppName;

/// Work waiting for the loop. Merging is idempotent: a second forceRun
/// while one is queued changes nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pending {
    /// A full run: every app re-rendered and synced.
    pub full: bool,
    /// Poll every repository now.
    pub poll_all: bool,
    /// Poll these repositories (keys) now.
    pub poll_repos: BTreeSet<String>,
    /// Sync these apps (a changed commit, an explicit request, a refresh).
    pub apps: BTreeSet<AppName>,
    /// Drift seen on these apps' objects (the object and what happened).
    pub drift: BTreeMap<AppName, String>,
    /// Application objects whose `kubesync.dev/refresh` annotation is to
    /// be removed once their sync ran.
    pub refreshed: BTreeSet<AppName>,
}

impl Pending {
    pub fn is_empty(&self) -> bool {
        *self == Pending::default()
    }

    /// Whether a run (not only a poll) is waiting.
    pub fn wants_run(&self) -> bool {
        self.full || !self.apps.is_empty() || !self.drift.is_empty()
    }

    /// Takes the queued work, leaving the queue empty.
    pub fn take(&mut self) -> Pending {
        std::mem::take(self)
    }

    /// Puts back work that could not be done (not leader, shutting down).
    pub fn merge(&mut self, other: Pending) {
        self.full |= other.full;
        self.poll_all |= other.poll_all;
        self.poll_repos.extend(other.poll_repos);
        self.apps.extend(other.apps);
        self.drift.extend(other.drift);
        self.refreshed.extend(other.refreshed);
    }
}

/// `base` ±5 %, from a uniform `unit` in [0, 1): polls of many replicas
/// and repositories spread out instead of arriving together.
pub fn jittered(base: Duration, unit: f64) -> Duration {
    let unit = unit.clamp(0.0, 1.0);
    base.mul_f64(0.95 + 0.1 * unit)
}

/// The first retry of a failed app waits this long; each further failure doubles it.
pub const RETRY_BASE: Duration = Duration::from_secs(5);
/// Retries never wait longer than this.
pub const RETRY_MAX: Duration = Duration::from_secs(300);

/// How long to wait before retry number `attempt` (1-based).
pub fn backoff(attempt: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(16));
    RETRY_BASE.saturating_mul(factor).min(RETRY_MAX)
}

/// Failed apps waiting for their retry.
#[derive(Debug, Clone, Default)]
pub struct Retries {
    due: BTreeMap<AppName, (u32, Instant)>,
}

impl Retries {
    /// Records a failure of `app` at `now`; returns when it is retried.
    pub fn failed(&mut self, app: &AppName, now: Instant) -> Instant {
        let attempt = self.due.get(app).map(|(a, _)| a + 1).unwrap_or(1);
        let at = now + backoff(attempt);
        self.due.insert(app.clone(), (attempt, at));
        at
    }

    /// `app` succeeded (or left the tree): no more retries.
    pub fn succeeded(&mut self, app: &AppName) {
        self.due.remove(app);
    }

    /// The earliest retry time, if any.
    pub fn next(&self) -> Option<Instant> {
        self.due.values().map(|(_, at)| *at).min()
    }

    /// Apps whose retry is due at `now` (they stay recorded, so a further
    /// failure backs off more).
    pub fn due(&mut self, now: Instant) -> BTreeSet<AppName> {
        let mut out = BTreeSet::new();
        for (app, (_, at)) in self.due.iter_mut() {
            if *at <= now {
                out.insert(app.clone());
                // Not due again until it fails again.
                *at = now + RETRY_MAX * 1000;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> AppName {
        AppName::new(s).unwrap()
    }

    #[test]
    fn triggers_merge_into_at_most_one_run() {
        let mut p = Pending::default();
        assert!(!p.wants_run());
        p.full = true;
        p.merge(Pending {
            full: true,
            apps: [name("a")].into(),
            ..Pending::default()
        });
        p.merge(Pending {
            apps: [name("a")].into(),
            ..Pending::default()
        });
        assert!(p.wants_run());
        assert_eq!(p.apps.len(), 1);
        let taken = p.take();
        assert!(taken.full && p.is_empty());
    }

    #[test]
    fn jitter_stays_within_five_percent() {
        let base = Duration::from_secs(60);
        assert_eq!(jittered(base, 0.0), Duration::from_secs(57));
        assert_eq!(jittered(base, 0.5), Duration::from_secs(60));
        assert!(jittered(base, 0.999) <= Duration::from_secs(63));
        assert_eq!(jittered(base, 7.0), Duration::from_secs(63));
    }

    #[test]
    fn failed_apps_back_off_exponentially() {
        assert_eq!(backoff(1), Duration::from_secs(5));
        assert_eq!(backoff(2), Duration::from_secs(10));
        assert_eq!(backoff(30), RETRY_MAX);
        let now = Instant::now();
        let mut r = Retries::default();
        let a = name("a");
        assert_eq!(r.failed(&a, now), now + Duration::from_secs(5));
        assert!(r.due(now).is_empty());
        assert_eq!(r.due(now + Duration::from_secs(5)), [a.clone()].into());
        assert!(
            r.due(now + Duration::from_secs(6)).is_empty(),
            "due once per failure"
        );
        assert_eq!(r.failed(&a, now), now + Duration::from_secs(10));
        r.succeeded(&a);
        assert_eq!(r.next(), None);
    }
}
