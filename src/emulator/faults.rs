//! Fault injection: a [`RequestHook`] that makes chosen API requests fail
//! (500, 503, 429 with `Retry-After`, …), slow down, or lose their
//! connection, at a chosen rate, so tests and demos can show how kubesync
//! copes with a flaky API server.
//!
//! A [`FaultConfig`] is a seed and a list of [`FaultRule`]s. A rule matches
//! requests by verb, resource, namespace and path prefix, fires on a
//! fraction (`rate`) of them — drawn from a per-rule RNG seeded from the
//! config's seed, so the same sequence of requests sees the same faults —
//! and then delays (`latencyMs`), drops the connection, or answers with an
//! error. The config changes at run time through
//! `EmulatorHandle::set_faults` or `POST /emulator/faults` (JSON, the shape
//! below; `GET` reads it back, `DELETE` clears it); either resets the RNGs.
//! Firings are counted in request accounting (`faults`). The
//! `/emulator/...` endpoints themselves are never faulted.
//!
//! ```json
//! {"seed": 7, "rules": [
//!   {"name": "flaky-cm-patch", "verbs": ["patch"], "resources": ["configmaps"],
//!    "rate": 0.05, "error": {"code": 503, "retryAfterSeconds": 1}},
//!   {"verbs": ["list"], "latencyMs": 200},
//!   {"pathPrefix": "/apis/apps", "rate": 0.01, "dropConnection": true}
//! ]}
//! ```

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::accounting::RequestAccounting;
use super::errors::ApiError;
use super::hooks::{Fault, RequestHook, RequestInfo};

/// The faults to inject.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultConfig {
    /// Seeds the per-rule random draws.
    #[serde(default)]
    pub seed: u64,
    /// Checked in order; every matching rule that fires contributes (delays
    /// add up; the first drop or error wins).
    #[serde(default)]
    pub rules: Vec<FaultRule>,
}

/// One kind of fault on one kind of request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultRule {
    /// Names the rule in accounting; `rule-<index>` when empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Kubernetes verbs (`get`, `list`, `watch`, `create`, `update`,
    /// `patch`, `delete`, `deletecollection`; the lower-case HTTP method for
    /// non-resource paths). Empty: any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verbs: Vec<String>,
    /// Resource keys as accounting names them (`configmaps`,
    /// `deployments.apps`, `pods/status`) or bare plurals (`deployments`);
    /// `*` for any resource. Empty: any request, resource or not.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    /// Namespaces. Empty: any (including cluster-scoped requests).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// URL path prefix (`/apis/apps/v1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_prefix: Option<String>,
    /// Fraction of matching requests the rule fires on, 0.0–1.0.
    #[serde(default = "always")]
    pub rate: f64,
    /// Answer with this error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorFault>,
    /// Delay the request this many milliseconds (before any error or drop).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    /// Close the connection without answering.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub drop_connection: bool,
    /// Fire at most this many times (then the rule is spent): "the first two
    /// patches fail".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
}

fn always() -> f64 {
    1.0
}

/// The error a rule answers with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ErrorFault {
    /// HTTP status, 400–599 (500, 503 and 429 are the usual ones).
    pub code: u16,
    /// Sent as the `Retry-After` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_seconds: Option<u64>,
    /// The `Status` message; a default per code when missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl FaultRule {
    /// A rule answering every request with `code`.
    pub fn error(code: u16) -> Self {
        FaultRule {
            error: Some(ErrorFault {
                code,
                retry_after_seconds: None,
                message: None,
            }),
            ..FaultRule::empty()
        }
    }

    /// A rule delaying every request by `delay`.
    pub fn latency(delay: Duration) -> Self {
        FaultRule {
            latency_ms: Some(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX)),
            ..FaultRule::empty()
        }
    }

    /// A rule dropping every connection.
    pub fn drop_connection() -> Self {
        FaultRule {
            drop_connection: true,
            ..FaultRule::empty()
        }
    }

    fn empty() -> Self {
        FaultRule {
            name: String::new(),
            verbs: Vec::new(),
            resources: Vec::new(),
            namespaces: Vec::new(),
            path_prefix: None,
            rate: 1.0,
            error: None,
            latency_ms: None,
            drop_connection: false,
            limit: None,
        }
    }

    pub fn named(mut self, name: &str) -> Self {
        self.name = name.to_string();
        self
    }

    pub fn on_verbs(mut self, verbs: &[&str]) -> Self {
        self.verbs = verbs.iter().map(|v| v.to_string()).collect();
        self
    }

    pub fn on_resources(mut self, resources: &[&str]) -> Self {
        self.resources = resources.iter().map(|r| r.to_string()).collect();
        self
    }

    pub fn in_namespaces(mut self, namespaces: &[&str]) -> Self {
        self.namespaces = namespaces.iter().map(|n| n.to_string()).collect();
        self
    }

    pub fn under_path(mut self, prefix: &str) -> Self {
        self.path_prefix = Some(prefix.to_string());
        self
    }

    pub fn with_rate(mut self, rate: f64) -> Self {
        self.rate = rate;
        self
    }

    pub fn at_most(mut self, times: u64) -> Self {
        self.limit = Some(times);
        self
    }

    pub fn retry_after(mut self, seconds: u64) -> Self {
        if let Some(e) = &mut self.error {
            e.retry_after_seconds = Some(seconds);
        }
        self
    }

    fn matches(&self, req: &RequestInfo) -> bool {
        if !self.verbs.is_empty() && !self.verbs.iter().any(|v| v.eq_ignore_ascii_case(&req.verb)) {
            return false;
        }
        if !self.resources.is_empty() {
            if !req.is_resource {
                return false;
            }
            let key = req.resource_key();
            let plain = match &req.subresource {
                Some(s) => format!("{}/{s}", req.resource),
                None => req.resource.clone(),
            };
            if !self
                .resources
                .iter()
                .any(|r| r == "*" || *r == key || *r == plain)
            {
                return false;
            }
        }
        if !self.namespaces.is_empty()
            && !req
                .namespace
                .as_ref()
                .is_some_and(|ns| self.namespaces.contains(ns))
        {
            return false;
        }
        if let Some(prefix) = &self.path_prefix {
            if !req.path.starts_with(prefix.as_str()) {
                return false;
            }
        }
        true
    }

    fn label(&self, index: usize) -> String {
        if self.name.is_empty() {
            format!("rule-{index}")
        } else {
            self.name.clone()
        }
    }
}

/// A configuration the injector refuses, naming the rule and field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("fault rule {rule}: {problem}")]
pub struct FaultConfigError {
    pub rule: String,
    pub problem: String,
}

impl FaultConfig {
    /// Checks rates, codes and that every rule does something.
    pub fn validate(&self) -> Result<(), FaultConfigError> {
        for (i, r) in self.rules.iter().enumerate() {
            let fail = |problem: String| FaultConfigError {
                rule: r.label(i),
                problem,
            };
            if !(0.0..=1.0).contains(&r.rate) {
                return Err(fail(format!("rate {} is not between 0.0 and 1.0", r.rate)));
            }
            if let Some(e) = &r.error {
                if !(400..=599).contains(&e.code) {
                    return Err(fail(format!(
                        "error code {} is not an HTTP error status (400-599)",
                        e.code
                    )));
                }
            }
            if r.error.is_none() && r.latency_ms.is_none() && !r.drop_connection {
                return Err(fail(
                    "does nothing: set error, latencyMs or dropConnection".into(),
                ));
            }
        }
        Ok(())
    }
}

/// The default `Status` reason and message of an injected error.
fn error_for(e: &ErrorFault) -> ApiError {
    let (reason, message) = match e.code {
        429 => (
            "TooManyRequests",
            "Too many requests, please try again later.",
        ),
        500 => ("InternalError", "Internal error occurred: injected fault"),
        503 => (
            "ServiceUnavailable",
            "the server is currently unable to handle the request",
        ),
        504 => (
            "Timeout",
            "the server was unable to return a response in the time allotted",
        ),
        409 => ("Conflict", "the object has been modified (injected fault)"),
        404 => (
            "NotFound",
            "the server could not find the requested resource",
        ),
        _ => ("InternalError", "injected fault"),
    };
    ApiError::new(
        e.code,
        reason,
        e.message.clone().unwrap_or_else(|| message.into()),
    )
}

struct Active {
    config: FaultConfig,
    rngs: Vec<StdRng>,
    /// Firings per rule, for `limit`.
    fired: Vec<u64>,
}

impl Active {
    fn new(config: FaultConfig) -> Self {
        let rngs = (0..config.rules.len())
            .map(|i| {
                let i = u64::try_from(i).unwrap_or(u64::MAX);
                StdRng::seed_from_u64(config.seed ^ i.wrapping_mul(0x9e37_79b9_7f4a_7c15))
            })
            .collect();
        let fired = vec![0; config.rules.len()];
        Active {
            config,
            rngs,
            fired,
        }
    }
}

/// The fault-injecting request hook.
pub struct FaultInjector {
    active: Mutex<Active>,
    accounting: Option<Arc<RequestAccounting>>,
}

impl std::fmt::Debug for FaultInjector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultInjector")
            .field("config", &self.active.lock().config)
            .finish_non_exhaustive()
    }
}

impl FaultInjector {
    /// An injector for `config`, counting firings in `accounting`.
    pub fn new(
        config: FaultConfig,
        accounting: Option<Arc<RequestAccounting>>,
    ) -> Result<Self, FaultConfigError> {
        config.validate()?;
        Ok(FaultInjector {
            active: Mutex::new(Active::new(config)),
            accounting,
        })
    }

    /// Replaces the rules and reseeds.
    pub fn set(&self, config: FaultConfig) -> Result<(), FaultConfigError> {
        config.validate()?;
        tracing::info!(
            rules = config.rules.len(),
            seed = config.seed,
            "fault injection configured"
        );
        *self.active.lock() = Active::new(config);
        Ok(())
    }

    /// The current rules.
    pub fn config(&self) -> FaultConfig {
        self.active.lock().config.clone()
    }
}

impl RequestHook for FaultInjector {
    fn before(&self, request: &RequestInfo) -> Option<Fault> {
        let mut guard = self.active.lock();
        let Active {
            config,
            rngs,
            fired: fired_counts,
        } = &mut *guard;
        if config.rules.is_empty() {
            return None;
        }
        let mut fault = Fault::default();
        let mut fired = false;
        for (i, ((rule, rng), times)) in config
            .rules
            .iter()
            .zip(rngs.iter_mut())
            .zip(fired_counts.iter_mut())
            .enumerate()
        {
            if !rule.matches(request) || rule.limit.is_some_and(|l| *times >= l) {
                continue;
            }
            let fires = if rule.rate >= 1.0 {
                true
            } else {
                rule.rate > 0.0 && rng.random::<f64>() < rule.rate
            };
            if !fires {
                continue;
            }
            fired = true;
            *times += 1;
            let decided = fault.drop_connection || fault.error.is_some();
            let delay = rule.latency_ms.map(Duration::from_millis);
            if let Some(d) = delay {
                fault.delay = Some(fault.delay.unwrap_or_default() + d);
            }
            let mut error = false;
            let mut dropped = false;
            if !decided {
                if rule.drop_connection {
                    fault.drop_connection = true;
                    dropped = true;
                } else if let Some(e) = &rule.error {
                    fault.error = Some(error_for(e));
                    fault.retry_after_seconds = e.retry_after_seconds;
                    error = true;
                }
            }
            if let Some(a) = &self.accounting {
                a.record_fault(&rule.label(i), error, delay.is_some(), dropped);
            }
            tracing::debug!(
                rule = %rule.label(i),
                verb = %request.verb,
                path = %request.path,
                "fault injected"
            );
        }
        fired.then_some(fault)
    }
}

/// State of the `/emulator/faults` endpoint.
#[derive(Clone)]
struct Endpoint {
    injector: Arc<FaultInjector>,
    token: Option<String>,
}

/// `GET|POST|PUT|DELETE /emulator/faults`, behind the emulator's token.
pub(crate) fn routes(injector: Arc<FaultInjector>, token: Option<String>) -> axum::Router {
    axum::Router::new()
        .route(
            "/emulator/faults",
            axum::routing::get(get_faults)
                .post(set_faults)
                .put(set_faults)
                .delete(clear_faults),
        )
        .with_state(Endpoint { injector, token })
}

fn status_response(e: &ApiError) -> Response {
    let code = StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        e.to_status().to_string(),
    )
        .into_response()
}

fn config_response(config: &FaultConfig) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        json!(config).to_string(),
    )
        .into_response()
}

fn authorized(ep: &Endpoint, headers: &HeaderMap) -> bool {
    let Some(token) = &ep.token else {
        return true;
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    given == Some(token.as_str())
}

async fn get_faults(State(ep): State<Endpoint>, headers: HeaderMap) -> Response {
    if !authorized(&ep, &headers) {
        return status_response(&ApiError::unauthorized());
    }
    config_response(&ep.injector.config())
}

async fn set_faults(
    State(ep): State<Endpoint>,
    headers: HeaderMap,
    body: bytes::Bytes,
) -> Response {
    if !authorized(&ep, &headers) {
        return status_response(&ApiError::unauthorized());
    }
    let config: FaultConfig = match serde_json::from_slice(&body) {
        Ok(c) => c,
        Err(e) => {
            return status_response(&ApiError::bad_request(format!(
                "invalid fault configuration: {e}"
            )))
        }
    };
    match ep.injector.set(config) {
        Ok(()) => config_response(&ep.injector.config()),
        Err(e) => status_response(&ApiError::bad_request(e.to_string())),
    }
}

async fn clear_faults(State(ep): State<Endpoint>, headers: HeaderMap) -> Response {
    if !authorized(&ep, &headers) {
        return status_response(&ApiError::unauthorized());
    }
    // An empty configuration always validates.
    let _ = ep.injector.set(FaultConfig::default());
    config_response(&ep.injector.config())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(verb: &str, group: &str, resource: &str, ns: Option<&str>) -> RequestInfo {
        RequestInfo {
            method: "GET".into(),
            path: format!("/apis/{group}/v1/{resource}"),
            verb: verb.into(),
            is_resource: true,
            group: group.into(),
            version: "v1".into(),
            resource: resource.into(),
            namespace: ns.map(str::to_string),
            ..Default::default()
        }
    }

    #[test]
    fn matching() {
        let r = FaultRule::error(503)
            .on_verbs(&["patch"])
            .on_resources(&["configmaps"]);
        assert!(r.matches(&req("patch", "", "configmaps", Some("a"))));
        assert!(!r.matches(&req("get", "", "configmaps", Some("a"))));
        assert!(!r.matches(&req("patch", "", "secrets", Some("a"))));
        let d = FaultRule::error(500).on_resources(&["deployments"]);
        assert!(d.matches(&req("get", "apps", "deployments", None)));
        let d = FaultRule::error(500)
            .on_resources(&["deployments.apps"])
            .in_namespaces(&["x"]);
        assert!(d.matches(&req("get", "apps", "deployments", Some("x"))));
        assert!(!d.matches(&req("get", "apps", "deployments", Some("y"))));
        assert!(!d.matches(&req("get", "apps", "deployments", None)));
        let p = FaultRule::drop_connection().under_path("/apis/apps");
        assert!(p.matches(&req("list", "apps", "deployments", None)));
        assert!(!p.matches(&req("list", "batch", "jobs", None)));
        let any = FaultRule::latency(Duration::from_millis(1));
        assert!(any.matches(&RequestInfo {
            path: "/version".into(),
            verb: "get".into(),
            ..Default::default()
        }));
    }

    #[test]
    fn seeded_rate_is_reproducible() {
        let config = FaultConfig {
            seed: 42,
            rules: vec![FaultRule::error(503).with_rate(0.05)],
        };
        let count = || {
            let inj = FaultInjector::new(config.clone(), None).expect("valid");
            (0..1000)
                .filter(|_| inj.before(&req("get", "", "pods", None)).is_some())
                .count()
        };
        let n = count();
        assert_eq!(n, count());
        assert!((20..=80).contains(&n), "{n} of 1000 at 5%");
    }

    #[test]
    fn combines_and_counts() {
        let acc = Arc::new(RequestAccounting::default());
        let inj = FaultInjector::new(
            FaultConfig {
                seed: 1,
                rules: vec![
                    FaultRule::latency(Duration::from_millis(5)).named("slow"),
                    FaultRule::error(429).retry_after(3),
                    FaultRule::error(500),
                ],
            },
            Some(acc.clone()),
        )
        .expect("valid");
        let f = inj.before(&req("get", "", "pods", None)).expect("fires");
        assert_eq!(f.delay, Some(Duration::from_millis(5)));
        let e = f.error.expect("error");
        assert_eq!(e.code, 429);
        assert_eq!(f.retry_after_seconds, Some(3));
        let c = acc.snapshot().faults;
        assert_eq!((c.total, c.errors, c.delays, c.drops), (3, 1, 1, 0));
        assert_eq!(c.by_rule.get("slow"), Some(&1));
        assert_eq!(c.by_rule.get("rule-2"), Some(&1));
    }

    #[test]
    fn limit_spends_a_rule() {
        let inj = FaultInjector::new(
            FaultConfig {
                seed: 0,
                rules: vec![FaultRule::error(503).at_most(2)],
            },
            None,
        )
        .expect("valid");
        let fired: Vec<bool> = (0..4)
            .map(|_| inj.before(&req("get", "", "pods", None)).is_some())
            .collect();
        assert_eq!(fired, [true, true, false, false]);
    }

    #[test]
    fn validation_and_json() {
        assert!(FaultConfig {
            seed: 0,
            rules: vec![FaultRule::error(503).with_rate(1.5)]
        }
        .validate()
        .is_err());
        assert!(FaultConfig {
            seed: 0,
            rules: vec![FaultRule::error(200)]
        }
        .validate()
        .is_err());
        let mut nothing = FaultRule::error(500);
        nothing.error = None;
        let err = FaultConfig {
            seed: 0,
            rules: vec![nothing],
        }
        .validate()
        .expect_err("does nothing");
        assert!(err.to_string().contains("rule-0"));
        let parsed: FaultConfig = serde_json::from_str(
            r#"{"seed": 7, "rules": [{"verbs": ["patch"], "resources": ["configmaps"], "error": {"code": 503, "retryAfterSeconds": 1}}, {"latencyMs": 20, "rate": 0.5}]}"#,
        )
        .expect("parses");
        assert_eq!(parsed.rules[0].rate, 1.0);
        assert_eq!(parsed.rules[1].latency_ms, Some(20));
        let back: FaultConfig = serde_json::from_value(json!(parsed.clone())).expect("round trip");
        assert_eq!(back, parsed);
        assert!(serde_json::from_str::<FaultConfig>(r#"{"rulez": []}"#).is_err());
    }
}
