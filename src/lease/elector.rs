//! The elector: a task that runs the election against the API server (the
//! IO edge around [`super::decide`]) and the handles the controller holds.
//!
//! Every `retry_period` (a standby: up to 1.2 × that, jittered) the task
//! reads the Lease and writes what [`decide`] says, each write carrying the
//! resourceVersion read, so of two replicas racing for a free lease one gets
//! a 409 and stays standby. The leader first tries a renewal against the
//! object it last wrote (no read, one request per round), falling back to a
//! read on a conflict, like client-go.
//!
//! A leader stops counting itself leader `renew_deadline` after the start
//! of its last successful write — by a timer, so a hung request cannot
//! stretch it — which is before any standby may take the lease over.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::Api;
use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::config::{LeaseConfig, LeaseConfigError, JITTER_FACTOR};
use super::decide::{decide, leader_valid_until, Action, Candidate, LeaseRecord, View};

/// A failure to reach or write the Lease; the election goes on (retrying
/// every `retry_period`) — these are reported, not fatal.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("invalid leader election settings: {0}")]
    Config(#[from] LeaseConfigError),
    #[error("Lease {namespace}/{name}: {source}")]
    Api {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("Lease {namespace}/{name}: the API server did not answer within {after:?}")]
    Timeout {
        namespace: String,
        name: String,
        after: Duration,
    },
    #[error("the leader election task ended unexpectedly: {0}")]
    Task(String),
}

/// What the controller reads: whether this replica is the leader now.
/// Cheap to clone and to query.
#[derive(Debug, Clone)]
pub struct Leadership {
    rx: watch::Receiver<bool>,
    valid_until: Arc<Mutex<Option<Instant>>>,
}

impl Leadership {
    /// A replica that always leads (`--leader-elect=false`).
    pub fn always() -> Self {
        let (tx, rx) = watch::channel(true);
        // The receiver keeps the last value once the sender is gone.
        drop(tx);
        Leadership {
            rx,
            valid_until: Arc::new(Mutex::new(None)),
        }
    }

    /// `true` while this replica holds the lease and its last renewal is
    /// within `renew_deadline`: check it before each batch of writes. Reads
    /// a clock and a mutex, no request.
    pub fn is_leader(&self) -> bool {
        if !*self.rx.borrow() {
            return false;
        }
        match *self.valid_until.lock() {
            None => true, // `always()`
            Some(until) => Instant::now() < until,
        }
    }

    /// A receiver that changes to `true` on acquiring the lease and to
    /// `false` on losing it (stepping down, deposed, released). Once the
    /// elector has ended (released, aborted, dropped) `changed()` returns an
    /// error: treat that as "not leader" (and `is_leader()` says so).
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.rx.clone()
    }
}

/// The running election. [`LeaderElector::release`] ends it gracefully;
/// dropping it ends it without releasing (the lease then expires).
#[derive(Debug)]
pub struct LeaderElector {
    leadership: Leadership,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<Result<(), LeaseError>>>,
    config: LeaseConfig,
}

impl LeaderElector {
    /// Validates `config` and starts electing on the tokio runtime.
    pub fn spawn(client: kube::Client, config: LeaseConfig) -> Result<Self, LeaseError> {
        config.validate()?;
        let (tx, rx) = watch::channel(false);
        let (stop, stop_rx) = watch::channel(false);
        let valid_until = Arc::new(Mutex::new(Some(Instant::now())));
        let leadership = Leadership {
            rx,
            valid_until: valid_until.clone(),
        };
        let runner = Runner {
            api: Api::namespaced(client, &config.namespace),
            config: config.clone(),
            tx,
            valid_until,
            seen: None,
            leading_since: None,
            last_error: None,
        };
        let task = tokio::spawn(runner.run(stop_rx));
        Ok(LeaderElector {
            leadership,
            stop,
            task: Some(task),
            config,
        })
    }

    /// The leadership view the controller keeps.
    pub fn leadership(&self) -> Leadership {
        self.leadership.clone()
    }

    /// See [`Leadership::is_leader`].
    pub fn is_leader(&self) -> bool {
        self.leadership.is_leader()
    }

    /// See [`Leadership::subscribe`].
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.leadership.subscribe()
    }

    /// This replica's identity.
    pub fn identity(&self) -> &str {
        &self.config.identity
    }

    /// Graceful shutdown: stops electing and, if this replica holds the
    /// lease, writes it free (empty holder) so a standby takes over on its
    /// next try, about `retry_period`. Leadership turns `false` before the
    /// write. Call it once the controller has finished its writes.
    pub async fn release(mut self) -> Result<(), LeaseError> {
        let _ = self.stop.send(true);
        match self.task.take() {
            Some(task) => task.await.map_err(|e| LeaseError::Task(e.to_string()))?,
            None => Ok(()),
        }
    }

    /// Ends the election at once without touching the lease — what a
    /// killed process does; a standby takes over when the lease expires.
    pub fn abort(mut self) {
        self.end();
    }

    /// Stops the task; this process's view turns "not leader" at once.
    fn end(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        *self.leadership.valid_until.lock() = Some(Instant::now());
    }
}

impl Drop for LeaderElector {
    fn drop(&mut self) {
        self.end();
    }
}

/// The last Lease object read or written, and when it was first seen so.
struct Seen {
    lease: Lease,
    record: LeaseRecord,
    observed_at: Instant,
}

struct Runner {
    api: Api<Lease>,
    config: LeaseConfig,
    tx: watch::Sender<bool>,
    valid_until: Arc<Mutex<Option<Instant>>>,
    seen: Option<Seen>,
    /// The start of the last successful acquire or renew, while leading.
    leading_since: Option<Instant>,
    /// The last error logged, so a persistent failure is logged once.
    last_error: Option<String>,
}

/// How one round ended.
enum Round {
    Leading,
    Standby,
}

impl Runner {
    async fn run(mut self, mut stop: watch::Receiver<bool>) -> Result<(), LeaseError> {
        loop {
            if *stop.borrow() {
                return self.release().await;
            }
            let start = Instant::now();
            let deadline = self
                .leading_since
                .map(|t| leader_valid_until(t, self.config.renew_deadline));
            if deadline.is_some_and(|d| start >= d) {
                self.step_down("could not renew the lease within the renew deadline");
            }
            let limit = deadline
                .filter(|_| self.leading_since.is_some())
                .unwrap_or(start + self.config.renew_deadline);
            let round = tokio::time::timeout_at(limit.into(), self.round(start)).await;
            match round {
                Ok(Ok(Round::Leading)) => {
                    self.last_error = None;
                    self.lead(start);
                }
                Ok(Ok(Round::Standby)) => {
                    self.last_error = None;
                    if self.leading_since.is_some() {
                        self.step_down("another replica holds the lease");
                    }
                }
                Ok(Err(e)) => self.report(e),
                Err(_) => self.report(LeaseError::Timeout {
                    namespace: self.config.namespace.clone(),
                    name: self.config.name.clone(),
                    after: limit.saturating_duration_since(start),
                }),
            }
            let wait = if self.leading_since.is_some() {
                self.config.retry_period
            } else {
                jittered(self.config.retry_period)
            };
            let mut wake = Instant::now() + wait;
            if let Some(since) = self.leading_since {
                wake = wake.min(leader_valid_until(since, self.config.renew_deadline));
            }
            tokio::select! {
                _ = tokio::time::sleep_until(wake.into()) => {}
                _ = stop.changed() => {}
            }
        }
    }

    fn lead(&mut self, start: Instant) {
        let until = leader_valid_until(start, self.config.renew_deadline);
        *self.valid_until.lock() = Some(until);
        if self.leading_since.is_none() {
            tracing::info!(
                lease = %format!("{}/{}", self.config.namespace, self.config.name),
                identity = %self.config.identity,
                "became the leader"
            );
        }
        self.leading_since = Some(start);
        // Subscribers hear of a change of leadership, not of every renewal
        // (the controller makes a full run each time it starts leading).
        self.tx
            .send_if_modified(|leading| !std::mem::replace(leading, true));
    }

    fn step_down(&mut self, why: &str) {
        *self.valid_until.lock() = Some(Instant::now());
        self.tx
            .send_if_modified(|leading| std::mem::replace(leading, false));
        if self.leading_since.take().is_some() {
            tracing::warn!(
                lease = %format!("{}/{}", self.config.namespace, self.config.name),
                identity = %self.config.identity,
                "stopped leading: {why}"
            );
        }
    }

    fn report(&mut self, e: LeaseError) {
        let text = e.to_string();
        if self.last_error.as_deref() != Some(&text) {
            tracing::warn!("leader election: {text}");
            self.last_error = Some(text);
        }
        // A leader keeps its role until its deadline (checked every round
        // and by `is_leader`), so one failed renewal does not stop it.
    }

    fn api_error(&self, source: kube::Error) -> LeaseError {
        LeaseError::Api {
            namespace: self.config.namespace.clone(),
            name: self.config.name.clone(),
            source,
        }
    }

    /// One acquire-or-renew round.
    async fn round(&mut self, start: Instant) -> Result<Round, LeaseError> {
        // The leader's fast path: renew against what it last wrote.
        if self.leading_since.is_some() {
            if let Some(seen) = &self.seen {
                if seen.record.holder == self.config.identity {
                    let record = LeaseRecord {
                        renew_time: Some(Timestamp::now()),
                        ..seen.record.clone()
                    };
                    let lease = seen.lease.clone();
                    if self.replace(lease, &record, start).await? {
                        return Ok(Round::Leading);
                    }
                    // Changed meanwhile: read it below.
                }
            }
        }
        let current = self
            .api
            .get_opt(&self.config.name)
            .await
            .map_err(|e| self.api_error(e))?;
        let now = Instant::now();
        let record = current.as_ref().map(record_of);
        match (&current, &record) {
            (Some(lease), Some(rec)) => {
                let changed = self.seen.as_ref().is_none_or(|s| {
                    s.lease.metadata.resource_version != lease.metadata.resource_version
                });
                if changed {
                    self.seen = Some(Seen {
                        lease: lease.clone(),
                        record: rec.clone(),
                        observed_at: now,
                    });
                }
            }
            _ => self.seen = None,
        }
        let view = View {
            record: record.as_ref(),
            observed_at: self.seen.as_ref().map_or(now, |s| s.observed_at),
        };
        let me = Candidate {
            identity: &self.config.identity,
            lease_duration: self.config.lease_duration,
        };
        match decide(view, me, now, Timestamp::now()) {
            Action::Wait { .. } => Ok(Round::Standby),
            Action::Create(rec) => self.create(&rec, start).await,
            Action::Acquire(rec) | Action::Renew(rec) => {
                let Some(lease) = current else {
                    return Ok(Round::Standby);
                };
                if self.replace(lease, &rec, start).await? {
                    Ok(Round::Leading)
                } else {
                    Ok(Round::Standby)
                }
            }
        }
    }

    async fn create(&mut self, record: &LeaseRecord, start: Instant) -> Result<Round, LeaseError> {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(self.config.name.clone()),
                namespace: Some(self.config.namespace.clone()),
                labels: Some(
                    [(
                        "app.kubernetes.io/managed-by".to_string(),
                        "kubesync".to_string(),
                    )]
                    .into(),
                ),
                ..ObjectMeta::default()
            },
            spec: Some(spec_of(record)),
        };
        match self.api.create(&PostParams::default(), &lease).await {
            Ok(created) => {
                self.seen = Some(Seen {
                    record: record_of(&created),
                    lease: created,
                    observed_at: start,
                });
                Ok(Round::Leading)
            }
            // Another replica created it first.
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(Round::Standby),
            Err(e) => Err(self.api_error(e)),
        }
    }

    /// Writes `record` into `lease` (whose resourceVersion is the one read);
    /// `false` on a conflict (someone wrote it meanwhile).
    async fn replace(
        &mut self,
        mut lease: Lease,
        record: &LeaseRecord,
        start: Instant,
    ) -> Result<bool, LeaseError> {
        lease.spec = Some(spec_of(record));
        lease.metadata.managed_fields = None;
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(written) => {
                self.seen = Some(Seen {
                    record: record_of(&written),
                    lease: written,
                    observed_at: start,
                });
                Ok(true)
            }
            Err(kube::Error::Api(s)) if s.code == 409 => {
                self.seen = None;
                Ok(false)
            }
            Err(e) => Err(self.api_error(e)),
        }
    }

    /// Graceful end: leadership off first, then the lease freed if ours.
    async fn release(mut self) -> Result<(), LeaseError> {
        let was_leading = self.leading_since.is_some();
        self.step_down("released");
        if !was_leading {
            return Ok(());
        }
        let Some(seen) = self.seen.take() else {
            return Ok(());
        };
        if seen.record.holder != self.config.identity {
            return Ok(());
        }
        let record = seen.record.released(Timestamp::now());
        let limit = self.config.renew_deadline;
        match tokio::time::timeout(limit, self.replace(seen.lease, &record, Instant::now())).await {
            Ok(Ok(true)) => {
                tracing::info!(
                    lease = %format!("{}/{}", self.config.namespace, self.config.name),
                    "released the lease"
                );
                Ok(())
            }
            // Someone else wrote it: it is not ours to release any more.
            Ok(Ok(false)) => Ok(()),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(LeaseError::Timeout {
                namespace: self.config.namespace.clone(),
                name: self.config.name.clone(),
                after: limit,
            }),
        }
    }
}

/// `base` to `base × JITTER_FACTOR`, so standbys do not retry in lockstep.
fn jittered(base: Duration) -> Duration {
    let f = rand::random::<f64>() * (JITTER_FACTOR - 1.0);
    base + base.mul_f64(f)
}

fn record_of(lease: &Lease) -> LeaseRecord {
    let spec = lease.spec.clone().unwrap_or_default();
    LeaseRecord {
        holder: spec.holder_identity.unwrap_or_default(),
        lease_duration: Duration::from_secs(
            spec.lease_duration_seconds
                .and_then(|s| u64::try_from(s).ok())
                .unwrap_or(0),
        ),
        acquire_time: spec.acquire_time.map(|t| t.0),
        renew_time: spec.renew_time.map(|t| t.0),
        transitions: spec.lease_transitions.unwrap_or(0),
    }
}

fn spec_of(r: &LeaseRecord) -> LeaseSpec {
    LeaseSpec {
        holder_identity: Some(r.holder.clone()),
        lease_duration_seconds: Some(i32::try_from(r.lease_duration.as_secs()).unwrap_or(i32::MAX)),
        acquire_time: r.acquire_time.map(MicroTime),
        renew_time: r.renew_time.map(MicroTime),
        lease_transitions: Some(r.transitions),
        ..LeaseSpec::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_and_spec_round_trip() {
        let r = LeaseRecord {
            holder: "a".into(),
            lease_duration: Duration::from_secs(15),
            acquire_time: Some(Timestamp::from_second(10).unwrap()),
            renew_time: Some(Timestamp::from_second(20).unwrap()),
            transitions: 2,
        };
        let lease = Lease {
            metadata: ObjectMeta::default(),
            spec: Some(spec_of(&r)),
        };
        assert_eq!(record_of(&lease), r);
        let empty = Lease {
            metadata: ObjectMeta::default(),
            spec: None,
        };
        assert!(!record_of(&empty).is_held());
    }

    #[test]
    fn jitter_stays_within_the_factor() {
        for _ in 0..100 {
            let d = jittered(Duration::from_secs(2));
            assert!(d >= Duration::from_secs(2) && d <= Duration::from_millis(2400));
        }
    }

    #[test]
    fn always_leads() {
        let l = Leadership::always();
        assert!(l.is_leader());
        assert!(*l.subscribe().borrow());
    }
}
