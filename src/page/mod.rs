//! The controller's status page: what kube-applier's page and Argo CD's
//! application list show, server-rendered from the controller's memory.
//!
//! This module owns the page's view model ([`PageView`], [`AppPageView`]),
//! the HTML ([`html`]: pure functions, everything escaped) and an axum
//! [`router`] serving `GET /`, `GET /apps/{name}` and the two buttons
//! (`POST /ui/run`, `POST /ui/apps/{name}/sync`). It does no Kubernetes or
//! git IO: the controller implements [`PageSource`] from the state it
//! already keeps, so a page view costs zero API requests.
//!
//! The buttons are HTML forms protected against cross-site request forgery:
//! each form carries a per-process random token that a cross-origin page
//! cannot read, a POST without it (or with an `Origin` that is not this
//! host) is refused with 403, and the page forbids framing
//! (`frame-ancestors 'none'`) so it cannot be clickjacked. The machine API
//! (`/api/v1/forceRun`, owned by the controller) is a separate endpoint.

pub mod html;

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::diff::SyncStatus;
use crate::health::Health;

/// How long the browser waits before reloading the page.
pub const REFRESH_SECONDS: u32 = 10;

/// Everything the index page shows.
#[derive(Debug, Clone, Default)]
pub struct PageView {
    /// What the controller follows, e.g. `https://git.example/cfg.git @ main`.
    pub source: String,
    /// Runs finished since the controller started.
    pub runs: u64,
    /// Whether this replica is the leader (a standby shows read-only state).
    pub leader: bool,
    /// The last run, as kube-applier shows it.
    pub last_run: Option<RunView>,
    /// A run waiting to start (a commit or "Run now" during a run).
    pub queued: bool,
    /// kube-applier's `DIFF_URL_FORMAT`: a commit link, `%s` is the sha.
    pub diff_url_format: Option<String>,
    pub apps: Vec<AppRow>,
}

/// A full run (everything re-rendered) or a quick one (changed apps only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunKind {
    Full,
    Quick,
}

impl RunKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RunKind::Full => "full",
            RunKind::Quick => "quick",
        }
    }
}

/// One run of the controller.
#[derive(Debug, Clone)]
pub struct RunView {
    pub kind: RunKind,
    pub started: DateTime<Utc>,
    /// `None` while it runs.
    pub finished: Option<DateTime<Utc>>,
    /// The commit it synced (full sha).
    pub commit: Option<String>,
    pub apps_synced: usize,
    /// Objects created, configured or pruned.
    pub objects_applied: usize,
    /// One line per failure, naming the app.
    pub errors: Vec<String>,
}

/// How an app's last sync ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    Failed,
    /// Not attempted: something it depends on failed or is not Healthy.
    Blocked,
    Running,
    /// Not synced by this controller yet.
    Pending,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Succeeded => "Succeeded",
            Outcome::Failed => "Failed",
            Outcome::Blocked => "Blocked",
            Outcome::Running => "Running",
            Outcome::Pending => "Pending",
        }
    }
}

/// One app's row on the index page.
#[derive(Debug, Clone)]
pub struct AppRow {
    pub name: String,
    pub tier: String,
    pub namespace: Option<String>,
    /// `None` before the first comparison.
    pub sync: Option<SyncStatus>,
    pub health: Option<Health>,
    pub outcome: Outcome,
    /// git-sync-operator's two versions: applied (written to the cluster)
    /// and deployed (Healthy at that revision).
    pub applied_revision: Option<String>,
    pub deployed_revision: Option<String>,
    pub last_started: Option<DateTime<Utc>>,
    pub last_finished: Option<DateTime<Utc>>,
    pub created: usize,
    pub configured: usize,
    pub pruned: usize,
    pub error: Option<String>,
    pub depends_on: Vec<String>,
    /// The prerequisites holding it back (failed or not Healthy).
    pub blocked_by: Vec<String>,
}

/// One object on an app's page.
#[derive(Debug, Clone)]
pub struct ObjectRow {
    /// `Deployment`, `apps/v1` style kind with group when not core.
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
    pub sync: Option<SyncStatus>,
    pub health: Option<Health>,
    pub message: String,
}

/// An app's own page: its row, its objects and the current diff.
#[derive(Debug, Clone)]
pub struct AppPageView {
    pub app: AppRow,
    pub diff_url_format: Option<String>,
    pub objects: Vec<ObjectRow>,
    /// The unified diff of what a sync would change, Secret values already
    /// masked by `diff`; `None` when not computed.
    pub diff: Option<String>,
}

/// The answer to a button press.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// Starts now.
    Started,
    /// A run is in progress; this one starts right after it (at most one
    /// waits).
    Queued,
    /// This replica is not the leader; nothing happens here.
    NotLeader,
}

/// What the page reads and what its buttons do; the controller implements
/// it from the state it keeps (no API request per page view).
pub trait PageSource: Send + Sync + 'static {
    fn index(&self) -> PageView;
    /// `None` for an unknown app.
    fn app(&self, name: &str) -> Option<AppPageView>;
    fn run_now(&self) -> Trigger;
    /// `None` for an unknown app.
    fn sync_app(&self, name: &str) -> Option<Trigger>;
}

struct PageState {
    source: Arc<dyn PageSource>,
    csrf: String,
}

/// The page's routes, to be merged into the controller's router.
pub fn router(source: Arc<dyn PageSource>) -> Router {
    let state = Arc::new(PageState {
        source,
        csrf: new_token(),
    });
    Router::new()
        .route("/", get(index))
        .route("/apps/{name}", get(app_page))
        .route("/ui/run", post(run_now))
        .route("/ui/apps/{name}/sync", post(sync_app))
        .with_state(state)
}

/// A token of 32 random bytes, hex: unguessable by another origin.
fn new_token() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

fn html_response(status: StatusCode, body: String) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            ),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            // Not `no-referrer`: with it, browsers send `Origin: null` on
            // the page's own form posts, which the CSRF check refuses.
            (header::REFERRER_POLICY, "same-origin"),
        ],
        body,
    )
        .into_response()
}

async fn index(State(st): State<Arc<PageState>>) -> Response {
    let view = st.source.index();
    html_response(StatusCode::OK, html::index(&view, &st.csrf))
}

async fn app_page(State(st): State<Arc<PageState>>, Path(name): Path<String>) -> Response {
    match st.source.app(&name) {
        Some(view) => html_response(StatusCode::OK, html::app(&view, &st.csrf)),
        None => html_response(StatusCode::NOT_FOUND, html::not_found(&name)),
    }
}

#[derive(Deserialize)]
struct ActionForm {
    #[serde(default)]
    csrf: String,
}

/// Refuses a POST that does not carry this process's token, or whose
/// `Origin` (sent by every current browser on a cross-site POST) is not the
/// host it was sent to.
fn csrf_refusal(st: &PageState, headers: &HeaderMap, form: &ActionForm) -> Option<Response> {
    let token_ok = constant_time_eq(form.csrf.as_bytes(), st.csrf.as_bytes());
    let origin_ok = match (headers.get(header::ORIGIN), headers.get(header::HOST)) {
        (None, _) => true,
        (Some(origin), Some(host)) => {
            let origin = origin.to_str().unwrap_or_default();
            let host = host.to_str().unwrap_or_default();
            origin
                .split_once("://")
                .is_some_and(|(_, authority)| authority == host)
        }
        (Some(_), None) => false,
    };
    (!(token_ok && origin_ok)).then(|| {
        html_response(
            StatusCode::FORBIDDEN,
            html::message(
                "Refused",
                "This form was not sent by kubesync's own page (missing or wrong CSRF token, or a foreign Origin). Reload the page and try again.",
            ),
        )
    })
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// After a button: back to where the user was (303: the reload is a GET).
fn see_other(location: &str) -> Response {
    (
        StatusCode::SEE_OTHER,
        [(header::LOCATION, location.to_string())],
    )
        .into_response()
}

async fn run_now(
    State(st): State<Arc<PageState>>,
    headers: HeaderMap,
    Form(form): Form<ActionForm>,
) -> Response {
    if let Some(refused) = csrf_refusal(&st, &headers, &form) {
        return refused;
    }
    match st.source.run_now() {
        Trigger::NotLeader => html_response(
            StatusCode::CONFLICT,
            html::message(
                "Not the leader",
                "This replica is a standby; the leader runs syncs. Open the page through the Service to reach it.",
            ),
        ),
        Trigger::Started | Trigger::Queued => see_other("/"),
    }
}

async fn sync_app(
    State(st): State<Arc<PageState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    Form(form): Form<ActionForm>,
) -> Response {
    if let Some(refused) = csrf_refusal(&st, &headers, &form) {
        return refused;
    }
    match st.source.sync_app(&name) {
        None => html_response(StatusCode::NOT_FOUND, html::not_found(&name)),
        Some(Trigger::NotLeader) => html_response(
            StatusCode::CONFLICT,
            html::message(
                "Not the leader",
                "This replica is a standby; the leader runs syncs.",
            ),
        ),
        Some(_) => see_other(&format!("/apps/{}", html::path_segment(&name))),
    }
}

#[cfg(test)]
mod tests;
