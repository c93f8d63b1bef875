//! The retry policy for cluster calls: [`RetryPolicy`] (a time budget, an
//! attempt cap, base and maximum delay), exponential backoff with jitter, and
//! the loop that runs a request under it.
//!
//! A request is retried for as long as its time budget lasts (30 s by
//! default), not a fixed number of times: under a 20–35 % error rate a short
//! fixed count fails whole runs, while a budget rides out both a flaky server
//! and a restart of the API server. Retries are logged at debug level; the
//! caller sees one error naming the object when the budget runs out.
//!
//! Retried: 429 (honouring the server's Retry-After), 500, 502, 503, 504,
//! and transport failures (connection refused or reset, timeouts). Never
//! retried: any other 4xx — a rejected object or an apply conflict will not
//! change by asking again. kube-rs's own retry layer is switched off (see
//! `connect`), so this loop is the only one and its counts are exact.

use std::future::Future;
use std::time::Duration;

use rand::Rng as _;

use super::error::{is_retryable, retry_after, Failure};

/// The longest Retry-After kubesync honours; a server asking for more gets
/// this instead (the engine has its own, longer, loop).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// How often and how patiently a failing request is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts at most, including the first (1 = never retry).
    pub attempts: u32,
    /// Delay before the first retry; doubles for each further retry.
    pub base: Duration,
    /// Upper bound of the backoff delay (Retry-After may exceed it, up to
    /// [`MAX_RETRY_AFTER`]).
    pub max: Duration,
    /// How long, from the first attempt, a request is retried: no retry
    /// starts whose delay would end past it.
    pub budget: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 60,
            base: Duration::from_millis(100),
            max: Duration::from_secs(2),
            budget: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// Never retry.
    pub fn none() -> Self {
        RetryPolicy {
            attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// The backoff before retry number `retry` (1-based), without jitter:
    /// `base * 2^(retry-1)`, capped at `max`.
    pub fn backoff(&self, retry: u32) -> Duration {
        let factor = 1u32 << retry.saturating_sub(1).min(20);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// The backoff with "equal jitter": uniformly in `[d/2, d]`, so retries
    /// of many clients spread out but never collapse to zero.
    pub fn jittered(&self, retry: u32) -> Duration {
        let d = self.backoff(retry);
        let half = d / 2;
        let extra_ms = half.as_millis() as u64;
        let jitter = if extra_ms == 0 {
            Duration::ZERO
        } else {
            Duration::from_millis(rand::rng().random_range(0..=extra_ms))
        };
        half + jitter
    }

    /// The delay before retry number `retry`: the server's Retry-After when it
    /// sent one (capped at [`MAX_RETRY_AFTER`]), else the jittered backoff.
    pub(crate) fn delay(&self, retry: u32, server_hint: Option<Duration>) -> Duration {
        match server_hint {
            Some(hint) => hint.min(MAX_RETRY_AFTER),
            None => self.jittered(retry),
        }
    }

    /// Runs `attempt` until it succeeds, fails with a non-retryable error, or
    /// the attempts run out. `object` and `verb` only label the log lines;
    /// `on_retry` is called once per retry (for request statistics).
    pub(crate) async fn run<T, Fut>(
        &self,
        object: &str,
        verb: &str,
        on_retry: impl Fn(),
        mut attempt: impl FnMut() -> Fut,
    ) -> Result<T, Failure>
    where
        Fut: Future<Output = Result<T, kube::Error>>,
    {
        let attempts = self.attempts.max(1);
        // tokio's clock: the same as std's at run time, and paused in tests.
        let start = tokio::time::Instant::now();
        let mut n = 1;
        loop {
            match attempt().await {
                Ok(v) => return Ok(v),
                Err(error) => {
                    let retryable = is_retryable(&error);
                    let delay = self.delay(n, retry_after(&error));
                    let over_budget = start.elapsed() + delay > self.budget;
                    if !retryable || n >= attempts || over_budget {
                        if retryable {
                            tracing::debug!(%object, verb, attempts = n, error = %short(&error), "giving up");
                        }
                        return Err(Failure {
                            error,
                            attempts: n,
                            waited: start.elapsed(),
                            retryable,
                        });
                    }
                    tracing::debug!(%object, verb, attempt = n, delay_ms = delay.as_millis() as u64, error = %short(&error), "retrying");
                    on_retry();
                    tokio::time::sleep(delay).await;
                    n += 1;
                }
            }
        }
    }
}

/// A one-line description of a kube-rs error for logs (the server's code,
/// reason and message rather than the whole Status debug dump).
fn short(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(s) => format!("{} {}: {}", s.code, s.reason, s.message),
        other => super::error::error_chain(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn unavailable() -> kube::Error {
        kube::Error::Api(
            kube::core::Status::failure("busy", "ServiceUnavailable")
                .with_code(503)
                .boxed(),
        )
    }

    fn fast() -> RetryPolicy {
        RetryPolicy {
            attempts: 4,
            base: Duration::from_millis(1),
            max: Duration::from_millis(4),
            budget: Duration::from_secs(10),
        }
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let p = RetryPolicy::default();
        assert_eq!(p.backoff(1), Duration::from_millis(100));
        assert_eq!(p.backoff(2), Duration::from_millis(200));
        assert_eq!(p.backoff(4), Duration::from_millis(800));
        assert_eq!(p.backoff(6), Duration::from_secs(2));
        assert_eq!(p.backoff(60), Duration::from_secs(2));
        for retry in 1..8 {
            let j = p.jittered(retry);
            assert!(j >= p.backoff(retry) / 2 && j <= p.backoff(retry), "{j:?}");
        }
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(3))),
            Duration::from_secs(3)
        );
        assert_eq!(p.delay(1, Some(Duration::from_secs(600))), MAX_RETRY_AFTER);
    }

    #[tokio::test]
    async fn retries_transient_then_succeeds() {
        let calls = AtomicU32::new(0);
        let retries = AtomicU32::new(0);
        let out = fast()
            .run(
                "ConfigMap a/b",
                "get",
                || {
                    retries.fetch_add(1, Ordering::SeqCst);
                },
                || {
                    let n = calls.fetch_add(1, Ordering::SeqCst);
                    async move {
                        if n < 2 {
                            Err(unavailable())
                        } else {
                            Ok(n)
                        }
                    }
                },
            )
            .await;
        assert_eq!(out.ok(), Some(2));
        assert_eq!(retries.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_when_the_time_budget_runs_out() {
        let calls = AtomicU32::new(0);
        let policy = RetryPolicy {
            attempts: 1000,
            base: Duration::from_millis(20),
            max: Duration::from_millis(20),
            budget: Duration::from_millis(200),
        };
        let started = tokio::time::Instant::now();
        let err = policy
            .run::<(), _>(
                "x",
                "get",
                || {},
                || {
                    calls.fetch_add(1, Ordering::SeqCst);
                    async { Err(unavailable()) }
                },
            )
            .await
            .expect_err("always fails");
        // 10–20 ms per retry (jittered) within 200 ms: far fewer than 1000.
        let n = calls.load(Ordering::SeqCst);
        assert!((8..=25).contains(&n), "{n} attempts");
        assert_eq!(err.attempts, n);
        assert!(err.waited <= Duration::from_millis(200), "{:?}", err.waited);
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn gives_up_after_attempts_and_never_retries_4xx() {
        let calls = AtomicU32::new(0);
        let err = fast()
            .run::<(), _>(
                "x",
                "get",
                || {},
                || {
                    calls.fetch_add(1, Ordering::SeqCst);
                    async { Err(unavailable()) }
                },
            )
            .await
            .expect_err("always fails");
        assert_eq!(err.attempts, 4);
        assert!(err.retryable);
        assert_eq!(calls.load(Ordering::SeqCst), 4);

        calls.store(0, Ordering::SeqCst);
        let err = fast()
            .run::<(), _>(
                "x",
                "get",
                || {},
                || {
                    calls.fetch_add(1, Ordering::SeqCst);
                    async {
                        Err(kube::Error::Api(
                            kube::core::Status::failure("bad", "Invalid")
                                .with_code(422)
                                .boxed(),
                        ))
                    }
                },
            )
            .await
            .expect_err("fails");
        assert_eq!(err.attempts, 1);
        assert!(!err.retryable);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
