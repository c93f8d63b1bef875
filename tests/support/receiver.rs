//! A webhook receiver on loopback (axum) for the completion-signal tests:
//! it records every request's headers and body, answers 500 to the first
//! `fail_first` requests and then a fixed status (optionally answering its
//! first request only after a delay), and decodes what it saw as signed
//! kubesync events.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use parking_lot::Mutex;
use serde_json::Value;

/// The secret part of the receiver's URL: tests assert it never shows in
/// an error, a ledger entry or a log line.
pub const TOKEN: &str = "TOKEN-abc123";

struct Inner {
    fail_first: usize,
    then: StatusCode,
    first_delay: Option<Duration>,
    seen: Vec<(HeaderMap, Bytes)>,
}

/// A running receiver: its URL (`http://ADDR/hook/TOKEN-abc123`) and what
/// it received. It stops with the test's runtime.
pub struct Receiver {
    pub url: String,
    inner: Arc<Mutex<Inner>>,
}

async fn receive(
    State(r): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let (status, delay) = {
        let mut r = r.lock();
        r.seen.push((headers, body));
        let status = if r.seen.len() <= r.fail_first {
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            r.then
        };
        (status, r.first_delay.filter(|_| r.seen.len() == 1))
    };
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    status
}

impl Receiver {
    /// A receiver that answers 200 to everything.
    pub async fn ok() -> Self {
        Self::start(0, 200).await
    }

    /// Answers 500 to the first `fail_first` requests, then `then`.
    pub async fn start(fail_first: usize, then: u16) -> Self {
        Self::serve(Inner {
            fail_first,
            then: StatusCode::from_u16(then).expect("an HTTP status"),
            first_delay: None,
            seen: vec![],
        })
        .await
    }

    /// Answers 200 to everything, the first request only after `delay` (a
    /// delivery still in flight while the test goes on).
    pub async fn slow_first(delay: Duration) -> Self {
        Self::serve(Inner {
            fail_first: 0,
            then: StatusCode::OK,
            first_delay: Some(delay),
            seen: vec![],
        })
        .await
    }

    async fn serve(inner: Inner) -> Self {
        let inner = Arc::new(Mutex::new(inner));
        let app = Router::new()
            .route("/hook/{token}", post(receive))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the receiver");
        let addr = listener.local_addr().expect("receiver address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver {
            url: format!("http://{addr}/hook/{TOKEN}"),
            inner,
        }
    }

    /// Every request received so far, headers and body.
    pub fn requests(&self) -> Vec<(HeaderMap, Bytes)> {
        self.inner.lock().seen.clone()
    }

    /// How many requests were received.
    pub fn count(&self) -> usize {
        self.inner.lock().seen.len()
    }

    /// Every received body, parsed as JSON.
    pub fn bodies(&self) -> Vec<Value> {
        self.inner
            .lock()
            .seen
            .iter()
            .map(|(_, b)| serde_json::from_slice(b).expect("a JSON body"))
            .collect()
    }

    /// Every received event as (trigger, app, revision), each signature
    /// checked against `key`.
    pub fn signed_events(&self, key: &[u8]) -> Vec<(String, String, String)> {
        self.inner
            .lock()
            .seen
            .iter()
            .map(|(h, body)| {
                let sig = h[kubesync::notify::SIGNATURE_HEADER]
                    .to_str()
                    .expect("an ASCII signature");
                assert!(
                    kubesync::notify::verify(key, body, sig),
                    "the signature must verify with the configured key"
                );
                let ev: Value = serde_json::from_slice(body).expect("a JSON event");
                let field = |k: &str| ev[k].as_str().expect(k).to_string();
                (field("trigger"), field("app"), field("revision"))
            })
            .collect()
    }
}
