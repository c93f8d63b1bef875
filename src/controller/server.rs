//! The HTTP server: health, readiness, the apps' state, and the triggers.
//!
//! | route | answer |
//! |---|---|
//! | `GET /healthz` | 200 while the process runs |
//! | `GET /readyz` | 200 once the first full run finished or an app synced, else 503 |
//! | `GET /api/v1/apps` | every app: sync, health, applied and deployed revisions, last run |
//! | `GET /api/v1/apps/{name}` | one app (404 unknown) |
//! | `POST /api/v1/forceRun` | a full run now, or queued after the one in flight (202) |
//! | `POST /api/v1/apps/{name}/sync` | that app's sync (202; 404 unknown) |
//! | `POST /api/v1/webhook` | a signed push: polls the repository it names (202; 401 bad signature; 400 malformed) |
//!
//! Handlers only read the shared state and queue work; the loop does it.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use parking_lot::RwLock;
use serde_json::json;

use super::poller::{matching, PollTarget};
use super::scheduler::Pending;
use super::state::SharedState;
use super::webhook::{self, WebhookError};
use crate::metrics::{WebhookOutcome, WebhookProvider};
use crate::model::AppName;

/// What the handlers need.
#[derive(Clone)]
pub struct Api {
    pub state: Arc<SharedState>,
    pub secret: Option<Arc<Vec<u8>>>,
    /// The repositories being polled (for matching webhooks).
    pub targets: Arc<RwLock<Vec<PollTarget>>>,
}

pub fn router(api: Api) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/api/v1/apps", get(apps))
        .route("/api/v1/apps/{name}", get(app))
        .route("/api/v1/apps/{name}/sync", post(sync_app))
        .route("/api/v1/forceRun", post(force_run))
        .route("/api/v1/webhook", post(webhook))
        .with_state(api)
}

async fn readyz(State(api): State<Api>) -> Response {
    if api.state.is_ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the first run has not finished\n",
        )
            .into_response()
    }
}

async fn apps(State(api): State<Api>) -> Response {
    Json(api.state.snapshot()).into_response()
}

fn not_found(name: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"error": format!("no application \"{name}\" in the tree")})),
    )
        .into_response()
}

async fn app(State(api): State<Api>, Path(name): Path<String>) -> Response {
    match AppName::new(&name).ok().and_then(|n| api.state.app(&n)) {
        Some(v) => Json(v).into_response(),
        None => not_found(&name),
    }
}

async fn sync_app(State(api): State<Api>, Path(name): Path<String>) -> Response {
    let Some(app) = AppName::new(&name).ok().filter(|n| api.state.knows(n)) else {
        return not_found(&name);
    };
    let mut p = Pending::default();
    p.apps.insert(app);
    api.state.trigger(p);
    (StatusCode::ACCEPTED, Json(json!({"queued": name}))).into_response()
}

async fn force_run(State(api): State<Api>) -> Response {
    api.state.trigger(Pending {
        full: true,
        ..Pending::default()
    });
    (StatusCode::ACCEPTED, Json(json!({"queued": "fullRun"}))).into_response()
}

/// Who sent a webhook, by the header it signed with (for `/metrics`, also
/// when the signature is refused). Gitea and Gogs sign as GitHub does.
fn provider_of(headers: &HeaderMap) -> WebhookProvider {
    if headers.contains_key(webhook::GITHUB_SIGNATURE) {
        if headers.contains_key("x-gitea-event") {
            WebhookProvider::Gitea
        } else {
            WebhookProvider::GitHub
        }
    } else if headers.contains_key(webhook::GITLAB_TOKEN) {
        WebhookProvider::GitLab
    } else {
        WebhookProvider::Generic
    }
}

async fn webhook(State(api): State<Api>, headers: HeaderMap, body: Bytes) -> Response {
    let header = |k: &str| headers.get(k).and_then(|v| v.to_str().ok());
    let verified = webhook::verify(header, &body, api.secret.as_deref().map(Vec::as_slice))
        .and_then(|provider| Ok((provider, webhook::push_repositories(&body)?)));
    let count = |outcome| {
        api.state
            .metrics
            .webhook_delivery(provider_of(&headers), outcome)
    };
    let (provider, urls) = match verified {
        Ok(v) => v,
        Err(e @ WebhookError::Unauthorized(_)) => {
            count(WebhookOutcome::Unauthorized);
            tracing::warn!("webhook refused: {e}");
            return (
                StatusCode::UNAUTHORIZED,
                Json(json!({"error": e.to_string()})),
            )
                .into_response();
        }
        Err(e @ WebhookError::Malformed(_)) => {
            count(WebhookOutcome::Invalid);
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": e.to_string()})),
            )
                .into_response();
        }
    };
    let keys = matching(&api.targets.read(), &urls);
    tracing::info!(?provider, repositories = ?urls, matched = keys.len(), "webhook");
    let polled: Vec<String> = keys.iter().cloned().collect();
    count(if keys.is_empty() {
        WebhookOutcome::Ignored
    } else {
        WebhookOutcome::Accepted
    });
    if !keys.is_empty() {
        api.state.trigger(Pending {
            poll_repos: keys,
            ..Pending::default()
        });
    }
    (
        StatusCode::ACCEPTED,
        Json(json!({"polled": polled, "repositories": urls})),
    )
        .into_response()
}
