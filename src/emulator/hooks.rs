//! Extension points for behaviour layered on the emulator:
//!
//! * [`Controller`] — a simulated controller (Deployments rolling out, Jobs
//!   completing, PVCs binding, load balancers getting IPs). It sees every
//!   committed write, in commit order, after the write is stored and visible,
//!   and gets periodic ticks; it acts through the in-process [`Cluster`] API
//!   with the same semantics as HTTP clients (resourceVersions, watch events,
//!   field managers).
//! * [`RequestHook`] — runs before each API request is served (after it is
//!   classified and counted) and may delay it or answer it with an error:
//!   the seam for fault injection.
//!
//! The emulator only calls these; it ships none.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::cluster::Cluster;
use super::errors::ApiError;
use super::store::WatchEvent;

/// What a request is, as the real server's request-info resolver sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RequestInfo {
    /// HTTP method, upper case.
    pub method: String,
    /// URL path without the query.
    pub path: String,
    /// Kubernetes verb (`get`, `list`, `watch`, `create`, `update`, `patch`,
    /// `delete`, `deletecollection`) for resource requests; the lower-case
    /// HTTP method otherwise.
    pub verb: String,
    /// Whether the path names an API resource (as opposed to discovery,
    /// OpenAPI, `/version`, …).
    pub is_resource: bool,
    pub group: String,
    pub version: String,
    /// Resource plural (`deployments`); empty for non-resource requests.
    pub resource: String,
    pub subresource: Option<String>,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub user_agent: String,
}

impl RequestInfo {
    /// `deployments.apps`, `pods/status`, `deployments.apps/scale`: the key
    /// request accounting counts under.
    pub fn resource_key(&self) -> String {
        let base = super::errors::qualified(&self.group, &self.resource);
        match &self.subresource {
            Some(s) => format!("{base}/{s}"),
            None => base,
        }
    }
}

/// What a [`RequestHook`] does to a request.
#[derive(Debug, Clone, Default)]
pub struct Fault {
    /// Wait this long before serving (or failing) the request.
    pub delay: Option<Duration>,
    /// Answer with this error instead of serving the request.
    pub error: Option<ApiError>,
    /// With `error`: send a `Retry-After` header of this many seconds.
    pub retry_after_seconds: Option<u64>,
    /// Close the connection without answering (takes precedence over
    /// `error`).
    pub drop_connection: bool,
}

/// Runs before each API request; return `Some(Fault)` to delay or fail it.
pub trait RequestHook: Send + Sync + 'static {
    fn before(&self, request: &RequestInfo) -> Option<Fault>;
}

/// A simulated controller. Both methods run on the emulator's controller
/// task, one call at a time, and must not block for long.
pub trait Controller: Send + Sync + 'static {
    /// A short name for logs.
    fn name(&self) -> &str;

    /// Called once per committed write (create, update, patch, delete,
    /// including the controller's own), in resourceVersion order.
    fn on_event(&self, _cluster: &Cluster, _event: &WatchEvent) {}

    /// Called after [`Controller::on_event`] has been called for every
    /// event waiting (a burst of writes is handed over as one batch), so a
    /// controller can queue in `on_event` and reconcile here, once per
    /// object however many of its events the batch held.
    fn after_events(&self, _cluster: &Cluster) {}

    /// Called every `EmulatorConfig::tick_interval`, and as soon as the
    /// instant [`Controller::next_due`] names has passed.
    fn tick(&self, _cluster: &Cluster) {}

    /// The earliest instant at which this controller has delayed work (a
    /// timer), so the task wakes then instead of at the next tick: a pod's
    /// 20 ms readiness delay takes 20 ms, not up to a whole tick.
    fn next_due(&self) -> Option<Instant> {
        None
    }
}

/// The controller task: feeds committed writes and ticks to `controllers`
/// until `shutdown` flips. A tick runs every `tick_interval` and whenever a
/// controller's earliest timer is due, whichever comes first.
/// Events handed to the controllers in one batch at most (between two
/// [`Controller::after_events`]).
const MAX_EVENT_BATCH: usize = 256;

pub(crate) async fn run_controllers(
    cluster: Cluster,
    controllers: Vec<Arc<dyn Controller>>,
    tick_interval: Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    if controllers.is_empty() {
        return;
    }
    let mut events = cluster.listen();
    let tick_interval = tick_interval.max(Duration::from_millis(1));
    // The first tick runs at once (controllers resync on it).
    let mut next_tick = Instant::now();
    loop {
        let wake = controllers
            .iter()
            .filter_map(|c| c.next_due())
            .fold(next_tick, Instant::min);
        tokio::select! {
            ev = events.recv() => match ev {
                Some(ev) => {
                    let mut batch = vec![ev];
                    while batch.len() < MAX_EVENT_BATCH {
                        match events.try_recv() {
                            Ok(ev) => batch.push(ev),
                            Err(_) => break,
                        }
                    }
                    for ev in &batch {
                        for c in &controllers {
                            c.on_event(&cluster, ev);
                        }
                    }
                    for c in &controllers {
                        c.after_events(&cluster);
                    }
                }
                None => break,
            },
            _ = tokio::time::sleep_until(wake.into()) => {
                for c in &controllers {
                    c.tick(&cluster);
                }
                let now = Instant::now();
                if now >= next_tick {
                    next_tick = now + tick_interval;
                }
            }
            _ = shutdown.changed() => break,
        }
    }
}
