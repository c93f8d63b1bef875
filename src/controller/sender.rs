//! The background queue that delivers completion signals off the run's
//! path: the controller loop hands each finished app's delivery over and
//! goes on at once; a receiver that is down or hangs (each webhook is
//! retried for up to ~65 s) delays only its own app's later signals, never
//! a run.
//!
//! Owns the order and the pace, not what is sent: deliveries of one app run
//! one after the other in the order they were queued (each reads the ledger
//! the one before it wrote), different apps' at once up to a limit. A
//! delivery may wait for a gate first — its app's status write of the same
//! sync — so that a signal never reaches CI before the Application's
//! status says what it announces, and its ledger is written onto an
//! Application object that exists. What a delivery does (deciding,
//! sending, recording) is the caller's closure (`signals`).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};

use crate::model::AppName;

/// One app's delivery, built when its turn comes (so that it reads what
/// the app's earlier deliveries recorded).
pub(super) type Work = Box<dyn FnOnce() -> BoxFuture<'static, ()> + Send>;

struct Job {
    app: AppName,
    /// Opened when the app's status write is done (dropped: never coming,
    /// e.g. an abandoned run; the delivery then decides for itself).
    gate: Option<oneshot::Receiver<()>>,
    work: Work,
}

/// A queue of deliveries with one worker task.
pub(super) struct SendQueue {
    tx: Mutex<Option<mpsc::UnboundedSender<Job>>>,
    /// Queued or in flight.
    pending: Arc<AtomicUsize>,
    worker: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl SendQueue {
    /// Starts the worker (on the current Tokio runtime): up to `limit`
    /// apps' deliveries at once.
    pub fn start(limit: usize) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let pending = Arc::new(AtomicUsize::new(0));
        let worker = tokio::spawn(worker(rx, limit.max(1), pending.clone()));
        SendQueue {
            tx: Mutex::new(Some(tx)),
            pending,
            worker: Mutex::new(Some(worker)),
        }
    }

    /// Queues a delivery for `app`, after `gate` when given.
    pub fn push(&self, app: AppName, gate: Option<oneshot::Receiver<()>>, work: Work) {
        let tx = self.tx.lock();
        let Some(tx) = tx.as_ref() else {
            tracing::debug!(app = %app, "signal queue closed: delivery dropped");
            return;
        };
        self.pending.fetch_add(1, Ordering::SeqCst);
        if tx.send(Job { app, gate, work }).is_err() {
            self.pending.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Deliveries queued or in flight.
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::SeqCst)
    }

    /// Takes no more deliveries and waits up to `grace` for those queued;
    /// what is left then is dropped (the ledger did not record it, so the
    /// next start sends it).
    pub async fn close(&self, grace: Duration) {
        drop(self.tx.lock().take());
        let Some(mut worker) = self.worker.lock().take() else {
            return;
        };
        if tokio::time::timeout(grace, &mut worker).await.is_err() {
            let left = self.pending();
            tracing::warn!(
                left,
                "stopping: completion signals still in flight are dropped (sent on the next start)"
            );
            worker.abort();
        }
    }
}

impl Drop for SendQueue {
    fn drop(&mut self) {
        if let Some(w) = self.worker.lock().take() {
            w.abort();
        }
    }
}

async fn worker(mut rx: mpsc::UnboundedReceiver<Job>, limit: usize, pending: Arc<AtomicUsize>) {
    let mut queues: HashMap<AppName, VecDeque<Job>> = HashMap::new();
    // Apps with a queued job and none in flight, in the order they became so.
    let mut ready: VecDeque<AppName> = VecDeque::new();
    let mut busy: HashSet<AppName> = HashSet::new();
    let mut running = FuturesUnordered::new();
    let mut open = true;
    loop {
        while running.len() < limit {
            let Some(app) = ready.pop_front() else { break };
            let Some(job) = queues.get_mut(&app).and_then(VecDeque::pop_front) else {
                continue;
            };
            if queues.get(&app).is_some_and(VecDeque::is_empty) {
                queues.remove(&app);
            }
            busy.insert(app);
            running.push(run(job));
        }
        if !open && running.is_empty() && ready.is_empty() {
            return;
        }
        tokio::select! {
            job = rx.recv(), if open => match job {
                Some(job) => {
                    let app = job.app.clone();
                    let q = queues.entry(app.clone()).or_default();
                    q.push_back(job);
                    if q.len() == 1 && !busy.contains(&app) {
                        ready.push_back(app);
                    }
                }
                None => open = false,
            },
            Some(app) = running.next(), if !running.is_empty() => {
                pending.fetch_sub(1, Ordering::SeqCst);
                busy.remove(&app);
                if queues.contains_key(&app) {
                    ready.push_back(app);
                }
            }
        }
    }
}

async fn run(job: Job) -> AppName {
    if let Some(gate) = job.gate {
        let _ = gate.await;
    }
    (job.work)().await;
    job.app
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(n: &str) -> AppName {
        AppName::new(n).unwrap()
    }

    /// Waits (with a deadline) until `f` holds.
    async fn until(what: &str, f: impl Fn() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !f() {
            assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn one_app_in_order_others_not_held_up_by_a_stuck_one() {
        let q = SendQueue::start(4);
        let log: Arc<Mutex<Vec<String>>> = Arc::default();
        // `slow`'s first delivery hangs until released.
        let (release, hold) = oneshot::channel::<()>();
        let l = log.clone();
        q.push(
            app("slow"),
            None,
            Box::new(move || {
                Box::pin(async move {
                    let _ = hold.await;
                    l.lock().push("slow-1".into());
                })
            }),
        );
        for (a, tag) in [("slow", "slow-2"), ("fast", "fast-1"), ("fast", "fast-2")] {
            let l = log.clone();
            q.push(
                app(a),
                None,
                Box::new(move || {
                    Box::pin(async move {
                        l.lock().push(tag.into());
                    })
                }),
            );
        }
        until("fast's deliveries", || log.lock().len() == 2).await;
        assert_eq!(*log.lock(), ["fast-1", "fast-2"]);
        assert_eq!(q.pending(), 2, "slow's two are still pending");
        release.send(()).unwrap();
        until("slow's deliveries", || q.pending() == 0).await;
        assert_eq!(*log.lock(), ["fast-1", "fast-2", "slow-1", "slow-2"]);
    }

    #[tokio::test]
    async fn a_delivery_waits_for_its_gate_and_close_drains() {
        let q = SendQueue::start(2);
        let done = Arc::new(AtomicUsize::new(0));
        let (open, gate) = oneshot::channel();
        let d = done.clone();
        q.push(
            app("a"),
            Some(gate),
            Box::new(move || {
                Box::pin(async move {
                    d.fetch_add(1, Ordering::SeqCst);
                })
            }),
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(done.load(Ordering::SeqCst), 0, "ran before its gate");
        open.send(()).unwrap();
        q.close(Duration::from_secs(5)).await;
        assert_eq!(done.load(Ordering::SeqCst), 1);
        assert_eq!(q.pending(), 0);
        // Closed: nothing more is taken.
        q.push(app("a"), None, Box::new(|| Box::pin(async {})));
        assert_eq!(q.pending(), 0);
    }

    #[tokio::test]
    async fn the_limit_bounds_deliveries_in_flight() {
        let q = SendQueue::start(2);
        let now = Arc::new(AtomicUsize::new(0));
        let max = Arc::new(AtomicUsize::new(0));
        for i in 0..6 {
            let (now, max) = (now.clone(), max.clone());
            q.push(
                app(&format!("app-{i}")),
                None,
                Box::new(move || {
                    Box::pin(async move {
                        let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                        max.fetch_max(n, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        now.fetch_sub(1, Ordering::SeqCst);
                    })
                }),
            );
        }
        until("all delivered", || q.pending() == 0).await;
        assert_eq!(max.load(Ordering::SeqCst), 2);
    }
}
