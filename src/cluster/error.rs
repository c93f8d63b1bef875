//! [`ClusterError`]: every way a cluster call fails, one variant per failure
//! the caller can act on, and the mapping from kube-rs errors onto it.
//!
//! Every message names the object (or collection) the call was about and
//! carries the API server's own message. None carries credentials: targets
//! are described by [`super::ClusterClient::describe`]-style strings with
//! URL user-info stripped, and kube-rs transport errors are reduced to their
//! message chain.

use std::fmt::Write as _;

/// A failed cluster call.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// No emulator, `--server`, kubeconfig or in-cluster configuration.
    #[error("no Kubernetes cluster configured: {hint}")]
    NoCluster { hint: String },

    /// A cluster was configured but could not be reached or its
    /// configuration could not be used.
    #[error("cannot connect to {target}: {message}")]
    Connect {
        /// What was being connected to (`context kind-dev (https://…)`).
        target: String,
        message: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },

    /// The server does not serve this group/version/kind (a CRD missing or
    /// not yet established, a typo in `apiVersion` or `kind`).
    #[error("{object}: the server does not serve kind {kind} in {api_version}{}", crd_hint(.group))]
    UnknownKind {
        /// The object (or collection) the call was about.
        object: String,
        group: String,
        version: String,
        kind: String,
        /// `apps/v1`, `v1`.
        api_version: String,
    },

    /// A server-side apply conflict: another field manager owns a field this
    /// apply sets and the apply was not forced (`--no-force`).
    #[error("{object}: apply conflict (not forced; drop --no-force to take ownership): {message}")]
    Conflict {
        object: String,
        /// The server's conflict text, naming each field and its manager.
        message: String,
    },

    /// The server refused the request as invalid (4xx other than auth and
    /// apply conflicts): a bad name, a missing field, a namespace that does
    /// not exist.
    #[error("{object}: rejected by the server ({code} {reason}): {message}")]
    Rejected {
        object: String,
        code: u16,
        /// The machine reason (`Invalid`, `NotFound`, `BadRequest`, …).
        reason: String,
        message: String,
    },

    /// 401 or 403: the credentials in use may not do this.
    #[error("{object}: forbidden: {message}")]
    Forbidden { object: String, message: String },

    /// A retryable failure (429, 5xx, connection error or timeout) that
    /// persisted through the retry policy's time budget.
    #[error("{object}: {}, retried for {:.1}s ({attempts} attempts): {message}", transient_what(.message), .waited.as_secs_f32())]
    Transient {
        object: String,
        message: String,
        attempts: u32,
        waited: std::time::Duration,
    },

    /// A wait (for a CRD to be Established) ran out of time.
    #[error("{object}: still waiting after {}s: {message}", .waited.as_secs_f32())]
    Timeout {
        object: String,
        waited: std::time::Duration,
        message: String,
    },

    /// A manifest that cannot be sent as it is (no `apiVersion`, no name, a
    /// namespaced object without a namespace).
    #[error("{object}: {message}")]
    BadObject { object: String, message: String },

    /// Anything else (an undecodable response, a request that cannot be built).
    #[error("{object}: {message}")]
    Other { object: String, message: String },
}

/// What a transient failure means for the user: a server that answered
/// "unavailable" is up but not serving; no answer at all is unreachable.
fn transient_what(message: &str) -> &'static str {
    let code = message.split_whitespace().next().unwrap_or("");
    match code {
        "503" => "the API server is unavailable",
        "429" => "the API server is throttling requests",
        "500" | "502" | "504" => "the API server failed",
        _ => "cannot reach the API server",
    }
}

fn crd_hint(group: &str) -> &'static str {
    if group.is_empty() || group.ends_with(".k8s.io") || !group.contains('.') {
        ""
    } else {
        " (is its CustomResourceDefinition installed and Established?)"
    }
}

impl ClusterError {
    /// Whether this error could go away by itself (worth a later retry by the
    /// engine's own loop): transient failures and connection problems.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ClusterError::Transient { .. }
                | ClusterError::Connect { .. }
                | ClusterError::Timeout { .. }
        )
    }

    /// The HTTP status the server answered with, when it answered.
    pub fn status_code(&self) -> Option<u16> {
        match self {
            ClusterError::Rejected { code, .. } => Some(*code),
            ClusterError::Conflict { .. } => Some(409),
            _ => None,
        }
    }
}

/// How the retry loop classifies a kube-rs error.
#[derive(Debug)]
pub(crate) struct Failure {
    pub error: kube::Error,
    pub attempts: u32,
    /// Time from the first attempt to giving up.
    pub waited: std::time::Duration,
    pub retryable: bool,
}

impl Failure {
    /// Maps a final failure onto a [`ClusterError`] about `object`.
    pub(crate) fn into_cluster_error(self, object: String) -> ClusterError {
        let Failure {
            error,
            attempts,
            waited,
            retryable,
        } = self;
        match &error {
            kube::Error::Api(status) => {
                let message = if status.message.is_empty() {
                    status.reason.clone()
                } else {
                    status.message.clone()
                };
                let code = status.code;
                if retryable {
                    return ClusterError::Transient {
                        object,
                        message: format!("{code} {}: {message}", status.reason),
                        attempts,
                        waited,
                    };
                }
                let message = if code == 422 && message.contains("field is immutable") {
                    format!("{message}{IMMUTABLE_HINT}")
                } else {
                    message
                };
                match code {
                    401 | 403 => ClusterError::Forbidden { object, message },
                    500 if is_schema_error(status) => ClusterError::Rejected {
                        object,
                        code,
                        reason: status.reason.clone(),
                        message,
                    },
                    409 if status.reason == "Conflict" && message.starts_with("Apply failed") => {
                        ClusterError::Conflict { object, message }
                    }
                    400..=499 => ClusterError::Rejected {
                        object,
                        code,
                        reason: status.reason.clone(),
                        message,
                    },
                    _ => ClusterError::Other {
                        object,
                        message: format!("{code} {}: {message}", status.reason),
                    },
                }
            }
            _ if retryable => ClusterError::Transient {
                object,
                message: error_chain(&error),
                attempts,
                waited,
            },
            _ => ClusterError::Other {
                object,
                message: error_chain(&error),
            },
        }
    }
}

/// Whether a kube-rs error is worth retrying: 429, 500, 502, 503, 504, and
/// transport failures (connection refused or reset, timeouts).
pub(crate) fn is_retryable(error: &kube::Error) -> bool {
    match error {
        kube::Error::Api(status) if is_schema_error(status) => false,
        kube::Error::Api(status) => matches!(status.code, 429 | 500 | 502 | 503 | 504),
        kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::ReadEvents(_) => true,
        _ => false,
    }
}

/// A server-side apply the server cannot even type-check: a field the
/// kind's schema does not declare (`spec.replica`), a duplicate key in a
/// list-map, a wrong type. The real API server answers 500, but asking
/// again will not help: it is the object that is wrong.
fn is_schema_error(status: &kube::core::Status) -> bool {
    status.code == 500
        && status
            .message
            .contains("failed to create typed patch object")
}

/// What to do about an immutable field, appended to the server's message.
const IMMUTABLE_HINT: &str = " (an immutable field cannot change in place: delete the object so that kubesync re-creates it, or revert the change in git)";

/// The server's `Retry-After`, when it sent one (as `details.retryAfterSeconds`
/// in the Status body, or as the header, which [`super::retry_after`] folds
/// into the body).
pub(crate) fn retry_after(error: &kube::Error) -> Option<std::time::Duration> {
    match error {
        kube::Error::Api(status) => status
            .details
            .as_ref()
            .map(|d| d.retry_after_seconds)
            .filter(|s| *s > 0)
            .map(|s| std::time::Duration::from_secs(u64::from(s))),
        _ => None,
    }
}

/// `outer: inner: innermost`, without repeating a message a wrapper already
/// includes.
pub(crate) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            let _ = write!(out, ": {text}");
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;

    fn api(code: u16, reason: &str, message: &str) -> kube::Error {
        kube::Error::Api(Status::failure(message, reason).with_code(code).boxed())
    }

    fn map(e: kube::Error) -> ClusterError {
        let retryable = is_retryable(&e);
        Failure {
            error: e,
            attempts: if retryable { 5 } else { 1 },
            waited: std::time::Duration::from_millis(1500),
            retryable,
        }
        .into_cluster_error("Deployment.apps shop/web".into())
    }

    #[test]
    fn classification() {
        for code in [429, 500, 502, 503, 504] {
            assert!(is_retryable(&api(code, "X", "x")), "{code}");
        }
        for code in [400, 401, 403, 404, 409, 410, 422] {
            assert!(!is_retryable(&api(code, "X", "x")), "{code}");
        }
    }

    #[test]
    fn mapping_names_object_and_message() {
        let e = map(api(
            409,
            "Conflict",
            "Apply failed with 1 conflict: conflict with \"kubectl-edit\" using apps/v1: .spec.replicas",
        ));
        assert!(matches!(e, ClusterError::Conflict { .. }), "{e:?}");
        let text = e.to_string();
        assert!(
            text.starts_with("Deployment.apps shop/web: apply conflict"),
            "{text}"
        );
        assert!(
            text.contains("kubectl-edit") && text.contains(".spec.replicas"),
            "{text}"
        );

        let e = map(api(
            409,
            "Conflict",
            "Operation cannot be fulfilled: modified",
        ));
        assert!(
            matches!(e, ClusterError::Rejected { code: 409, .. }),
            "{e:?}"
        );

        let e = map(api(
            422,
            "Invalid",
            "Deployment.apps \"Bad_Name\" is invalid",
        ));
        assert_eq!(
            e.to_string(),
            "Deployment.apps shop/web: rejected by the server (422 Invalid): Deployment.apps \"Bad_Name\" is invalid"
        );
        assert!(matches!(
            map(api(403, "Forbidden", "no")),
            ClusterError::Forbidden { .. }
        ));
        let e = map(api(503, "ServiceUnavailable", "busy"));
        assert!(
            matches!(e, ClusterError::Transient { attempts: 5, .. }),
            "{e:?}"
        );
        assert!(e.is_transient());
        assert_eq!(
            e.to_string(),
            "Deployment.apps shop/web: the API server is unavailable, retried for 1.5s (5 attempts): 503 ServiceUnavailable: busy"
        );
    }

    #[test]
    fn schema_errors_and_immutable_fields_are_permanent_and_say_what_to_do() {
        let e = map(api(
            500,
            "InternalError",
            "failed to create typed patch object (/v1, Kind=ConfigMap): .spec.replica: field not declared in schema",
        ));
        assert!(!e.is_transient(), "{e:?}");
        assert_eq!(
            e.to_string(),
            "Deployment.apps shop/web: rejected by the server (500 InternalError): failed to create typed patch object (/v1, Kind=ConfigMap): .spec.replica: field not declared in schema"
        );
        // Any other 500 is still transient.
        assert!(map(api(500, "InternalError", "etcd timeout")).is_transient());
        let e = map(api(
            422,
            "Invalid",
            "Deployment.apps \"web\" is invalid: spec.selector: Invalid value: {}: field is immutable",
        ));
        assert!(e.to_string().ends_with(IMMUTABLE_HINT), "{e}");
    }

    #[test]
    fn unknown_kind_hints_at_crds_only_for_custom_groups() {
        let e = ClusterError::UnknownKind {
            object: "Widget.example.com ns/w".into(),
            group: "example.com".into(),
            version: "v1".into(),
            kind: "Widget".into(),
            api_version: "example.com/v1".into(),
        };
        let text = e.to_string();
        assert!(text.contains("kind Widget in example.com/v1"), "{text}");
        assert!(text.contains("CustomResourceDefinition"), "{text}");
        let e = ClusterError::UnknownKind {
            object: "Deploymnt.apps ns/w".into(),
            group: "apps".into(),
            version: "v1".into(),
            kind: "Deploymnt".into(),
            api_version: "apps/v1".into(),
        };
        assert!(!e.to_string().contains("CustomResourceDefinition"));
    }

    #[test]
    fn retry_after_from_details() {
        let mut s = Status::failure("slow down", "TooManyRequests").with_code(429);
        s.details = Some(kube::core::response::StatusDetails {
            name: String::new(),
            group: String::new(),
            kind: String::new(),
            uid: String::new(),
            causes: Vec::new(),
            retry_after_seconds: 2,
        });
        let e = kube::Error::Api(s.boxed());
        assert_eq!(retry_after(&e), Some(std::time::Duration::from_secs(2)));
        assert_eq!(retry_after(&api(503, "X", "x")), None);
    }
}
