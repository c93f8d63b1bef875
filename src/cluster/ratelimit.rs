//! The client-side request rate limit (`--qps`): a token bucket shared by
//! every clone of a [`super::ClusterClient`], taken once per request attempt
//! (watch streams excepted: they are long-lived, one request each).
//!
//! Why a limit at all when the server already answers 429 (which the retry
//! loop honours): a busy API server sheds load by priority and fairness, and
//! a GitOps bootstrap of thousands of objects should not be the client that
//! makes it do so. The default (see [`super::connect::DEFAULT_QPS`]) follows
//! Flux and Argo CD (50 requests per second); the in-process emulator is not
//! limited, and `--qps 0` turns the limit off.

use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// A token bucket: `burst` requests at once, then `qps` per second.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    qps: f64,
    burst: f64,
    state: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimiter {
    /// `None` when `qps` is not positive (no limit).
    pub(crate) fn new(qps: f64, burst: u32) -> Option<Self> {
        if qps.is_nan() || qps <= 0.0 {
            return None;
        }
        let burst = f64::from(burst.max(1));
        Some(RateLimiter {
            qps,
            burst,
            state: Mutex::new(Bucket {
                tokens: burst,
                at: Instant::now(),
            }),
        })
    }

    /// Takes one token, waiting until one is available. Tokens are reserved
    /// in arrival order (the bucket may go negative), so waiters never spin.
    pub(crate) async fn acquire(&self) {
        let wait = self.reserve(Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    /// Reserves a token at `now`; returns how long to wait before using it.
    fn reserve(&self, now: Instant) -> Duration {
        let mut b = self.state.lock();
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.qps).min(self.burst);
        b.at = now;
        b.tokens -= 1.0;
        if b.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-b.tokens / self.qps)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_rate() {
        let l = RateLimiter::new(10.0, 3).expect("limited");
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(l.reserve(t0), Duration::ZERO);
        }
        // The 4th and 5th wait 100 ms and 200 ms.
        let w4 = l.reserve(t0).as_millis();
        let w5 = l.reserve(t0).as_millis();
        assert!((99..=101).contains(&w4), "{w4}");
        assert!((199..=201).contains(&w5), "{w5}");
        // A second later the debt is paid and 8 more tokens accrued (cap 3).
        assert_eq!(l.reserve(t0 + Duration::from_secs(2)), Duration::ZERO);
    }

    #[test]
    fn zero_means_unlimited() {
        assert!(RateLimiter::new(0.0, 10).is_none());
        assert!(RateLimiter::new(-1.0, 10).is_none());
    }
}
