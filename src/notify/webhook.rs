//! The webhook: a POST of the JSON [`WebhookEvent`], signed with
//! HMAC-SHA256 over the exact body (`X-Kubesync-Signature: sha256=<hex>`,
//! GitHub's scheme, so receivers' existing verifiers work), retried with
//! capped exponential backoff on connection errors, timeouts, 429 and 5xx
//! — never on other 4xx, which a retry cannot fix.

use std::time::Duration;

use bytes::Bytes;
use hmac::{KeyInit, Mac};
use http_body_util::{BodyExt, Full};

use super::{HttpClient, NotifyError, WebhookEvent};

/// The signature header.
pub const SIGNATURE_HEADER: &str = "X-Kubesync-Signature";

type HmacSha256 = hmac::Hmac<sha2_hmac::Sha256>;

/// `sha256=<hex>` of `body` under `secret`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    // HMAC takes keys of any length.
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC accepts any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Whether `header` is the signature of `body` under `secret` (constant
/// time) — what a receiver does.
pub fn verify(secret: &[u8], body: &[u8], header: &str) -> bool {
    let Some(sig) = header
        .strip_prefix("sha256=")
        .and_then(|h| hex::decode(h).ok())
    else {
        return false;
    };
    let Ok(mut mac) = HmacSha256::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

/// How hard a delivery tries.
#[derive(Debug, Clone)]
pub struct WebhookPolicy {
    /// Attempts in all (the first included).
    pub attempts: u32,
    /// The wait before the first retry; doubled each time.
    pub backoff: Duration,
    /// The longest wait between attempts.
    pub max_backoff: Duration,
    /// Per attempt, for the whole response.
    pub timeout: Duration,
}

impl Default for WebhookPolicy {
    /// 5 attempts, waiting 1, 2, 4, 8 s: a receiver restarting within
    /// ~15 s still gets the event; a dead one costs at most ~65 s.
    fn default() -> Self {
        WebhookPolicy {
            attempts: 5,
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(8),
            timeout: Duration::from_secs(10),
        }
    }
}

enum Attempt {
    Done,
    Retry {
        status: Option<u16>,
        message: String,
    },
    Fatal {
        status: u16,
        message: String,
    },
}

/// POSTs `event` to `url` under `policy`.
pub(super) async fn deliver(
    client: &HttpClient,
    url: &str,
    target: &str,
    event: &WebhookEvent,
    secret: Option<&[u8]>,
    policy: &WebhookPolicy,
) -> Result<(), NotifyError> {
    let body = Bytes::from(serde_json::to_vec(event).map_err(|e| NotifyError::Webhook {
        app: event.app.clone(),
        target: target.to_string(),
        status: None,
        attempts: 0,
        message: format!("cannot encode the event: {e}"),
    })?);
    let signature = secret.map(|s| sign(s, &body));
    let mut wait = policy.backoff;
    let mut last = (None, String::new());
    let attempts = policy.attempts.max(1);
    for n in 1..=attempts {
        match attempt(
            client,
            url,
            &body,
            event,
            signature.as_deref(),
            policy.timeout,
        )
        .await
        {
            Attempt::Done => return Ok(()),
            Attempt::Fatal { status, message } => {
                return Err(NotifyError::Webhook {
                    app: event.app.clone(),
                    target: target.to_string(),
                    status: Some(status),
                    attempts: n,
                    message,
                })
            }
            Attempt::Retry { status, message } => {
                tracing::debug!(app = %event.app, target, attempt = n, "webhook delivery failed: {message}");
                last = (status, message);
            }
        }
        if n < attempts {
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(policy.max_backoff);
        }
    }
    Err(NotifyError::Webhook {
        app: event.app.clone(),
        target: target.to_string(),
        status: last.0,
        attempts,
        message: last.1,
    })
}

async fn attempt(
    client: &HttpClient,
    url: &str,
    body: &Bytes,
    event: &WebhookEvent,
    signature: Option<&str>,
    timeout: Duration,
) -> Attempt {
    let mut req = hyper::Request::post(url)
        .header("content-type", "application/json")
        .header(
            "user-agent",
            concat!("kubesync/", env!("CARGO_PKG_VERSION")),
        )
        .header("x-kubesync-event", event.trigger)
        .header("x-kubesync-delivery", &event.delivery_id);
    if let Some(sig) = signature {
        req = req.header(SIGNATURE_HEADER, sig);
    }
    let req = match req.body(Full::new(body.clone())) {
        Ok(r) => r,
        // The URL was checked when configured; an annotation's may not be.
        Err(_) => {
            return Attempt::Fatal {
                status: 0,
                message: "the URL is not valid".into(),
            }
        }
    };
    let send = async {
        let resp = client.request(req).await?;
        let status = resp.status();
        // Drain (a little of) the body so the connection can be reused.
        let _ = resp.into_body().collect().await;
        Ok::<_, hyper_util::client::legacy::Error>(status)
    };
    match tokio::time::timeout(timeout, send).await {
        Err(_) => Attempt::Retry {
            status: None,
            message: format!("no response within {}s", timeout.as_secs_f64()),
        },
        Ok(Err(e)) => Attempt::Retry {
            status: None,
            message: connection_error(&e),
        },
        Ok(Ok(s)) if s.is_success() => Attempt::Done,
        Ok(Ok(s)) if s.is_server_error() || s.as_u16() == 429 || s.as_u16() == 408 => {
            Attempt::Retry {
                status: Some(s.as_u16()),
                message: format!("the receiver answered {s}"),
            }
        }
        Ok(Ok(s)) => Attempt::Fatal {
            status: s.as_u16(),
            message: format!("the receiver refused the event: {s}"),
        },
    }
}

/// A connection error in words, without the URL (hyper's messages do not
/// carry it; its source chain says what failed).
fn connection_error(e: &hyper_util::client::legacy::Error) -> String {
    let mut msg = String::from("cannot reach the receiver");
    let mut src: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}
