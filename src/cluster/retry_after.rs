//! Carries an HTTP `Retry-After` header into the error kube-rs reports.
//!
//! kube-rs turns an error response into a `Status` from its body and drops
//! the headers, so a 429 or 503 whose server (or proxy) says when to come
//! back in the header only would lose that hint. This tower layer sits under
//! kube-rs's error handling: for an error response with a `Retry-After` of
//! whole seconds it rewrites the body so `details.retryAfterSeconds` carries
//! it (keeping the server's own value when the body already has one, and
//! wrapping a non-JSON body into a `Status`). Success responses pass through
//! untouched and unbuffered.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::{header::RETRY_AFTER, Request, Response};
use kube::client::DynBody;
use serde_json::{json, Value};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The layer (see the module docs).
#[derive(Debug, Clone, Copy, Default)]
pub struct RetryAfterLayer;

impl<S> tower_layer::Layer<S> for RetryAfterLayer {
    type Service = RetryAfterService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RetryAfterService { inner }
    }
}

/// The service [`RetryAfterLayer`] wraps around the HTTP stack.
#[derive(Debug, Clone)]
pub struct RetryAfterService<S> {
    inner: S,
}

impl<S, ReqBody> tower_service::Service<Request<ReqBody>> for RetryAfterService<S>
where
    S: tower_service::Service<Request<ReqBody>, Response = Response<Box<DynBody>>>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    type Response = Response<Box<DynBody>>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let fut = self.inner.call(req);
        Box::pin(async move {
            let res = fut.await.map_err(Into::into)?;
            let status = res.status();
            if !(status.is_client_error() || status.is_server_error()) {
                return Ok(res);
            }
            let Some(seconds) = res
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u32>().ok())
            else {
                return Ok(res);
            };
            let (parts, body) = res.into_parts();
            let bytes = body.collect().await?.to_bytes();
            let rewritten = with_retry_after(&bytes, status.as_u16(), seconds);
            let body: Box<DynBody> = Box::new(Full::new(rewritten).map_err(|never| match never {}));
            Ok(Response::from_parts(parts, body))
        })
    }
}

/// The error body with `details.retryAfterSeconds` set to `seconds` unless it
/// already has one.
fn with_retry_after(body: &[u8], code: u16, seconds: u32) -> Bytes {
    let mut status = match serde_json::from_slice::<Value>(body) {
        Ok(v @ Value::Object(_)) => v,
        _ => json!({
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Failure",
            "code": code,
            "message": String::from_utf8_lossy(body).trim(),
        }),
    };
    if let Some(obj) = status.as_object_mut() {
        let details = obj.entry("details").or_insert_with(|| json!({}));
        if !details.is_object() {
            *details = json!({});
        }
        if let Some(d) = details.as_object_mut() {
            let has = d
                .get("retryAfterSeconds")
                .and_then(Value::as_u64)
                .is_some_and(|s| s > 0);
            if !has {
                d.insert("retryAfterSeconds".into(), json!(seconds));
            }
        }
    }
    Bytes::from(serde_json::to_vec(&status).unwrap_or_else(|_| body.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn injects_into_status_and_plain_text() {
        let b = with_retry_after(
            br#"{"kind":"Status","code":429,"message":"slow down"}"#,
            429,
            3,
        );
        let v: Value = serde_json::from_slice(&b).expect("json");
        assert_eq!(v["details"]["retryAfterSeconds"], 3);
        assert_eq!(v["message"], "slow down");

        let b = with_retry_after(b"upstream busy\n", 503, 1);
        let v: Value = serde_json::from_slice(&b).expect("json");
        assert_eq!(v["details"]["retryAfterSeconds"], 1);
        assert_eq!(v["message"], "upstream busy");
        assert_eq!(v["code"], 503);
        let s: kube::core::Status = serde_json::from_value(v).expect("a Status");
        assert_eq!(s.details.map(|d| d.retry_after_seconds), Some(1));
    }

    #[test]
    fn keeps_the_servers_own_value() {
        let b = with_retry_after(br#"{"details":{"retryAfterSeconds":7}}"#, 429, 1);
        let v: Value = serde_json::from_slice(&b).expect("json");
        assert_eq!(v["details"]["retryAfterSeconds"], 7);
    }
}
