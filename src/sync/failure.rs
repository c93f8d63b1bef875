//! Why an app's sync failed, as a type: [`SyncFailure`] is what
//! [`super::AppOutcome::Failed`] carries, so the status writer (the
//! `SyncFailed` condition's reason), `-o json` (`reason`, `code`, …) and the
//! CLI's messages are views of one value. [`ApiError`] keeps a cluster
//! call's failure as data: its text (which names the object) and, when the
//! server answered, its status code and reason. A blocked app and one that
//! timed out waiting for health are outcomes of their own
//! ([`super::AppOutcome::Blocked`], [`super::AppOutcome::TimedOut`]).
//!
//! `Display` is the sentence users read; [`SyncFailure::reason`] the stable
//! machine name (`applyRejected`). No IO.

use std::fmt;

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use super::change::ChangeError;
use crate::cluster::ClusterError;
use crate::model::{AppName, ObjectRef};
use crate::tree::FailureKind;

/// A failed cluster call: the error's text and, when the API server
/// answered, its HTTP status code and machine reason (`Invalid`, `Forbidden`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub message: String,
    pub code: Option<u16>,
    pub reason: Option<String>,
}

impl From<&ClusterError> for ApiError {
    fn from(e: &ClusterError) -> Self {
        let (code, reason) = match e {
            ClusterError::Rejected { code, reason, .. } => (Some(*code), Some(reason.clone())),
            ClusterError::Conflict { .. } => (Some(409), Some("Conflict".to_string())),
            ClusterError::Forbidden { .. } => (Some(403), Some("Forbidden".to_string())),
            _ => (None, None),
        };
        ApiError {
            message: e.to_string(),
            code,
            reason,
        }
    }
}

impl From<ClusterError> for ApiError {
    fn from(e: ClusterError) -> Self {
        ApiError::from(&e)
    }
}

/// A failure known only by its text (no answer from a server).
impl From<String> for ApiError {
    fn from(message: String) -> Self {
        ApiError {
            message,
            code: None,
            reason: None,
        }
    }
}

impl From<&str> for ApiError {
    fn from(message: &str) -> Self {
        ApiError::from(message.to_string())
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Why an app's sync failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncFailure {
    /// The app did not render: its manifest (`Config`), its source or its
    /// renderer failed; nothing was written.
    Render { kind: FailureKind, message: String },
    /// Its `ignoreDifferences` rules (or the global ones) are invalid.
    IgnoreRules { message: String },
    /// The previous inventory (its Application object) could not be read;
    /// nothing was written.
    Inventory { app: AppName, error: ApiError },
    /// Refused before any write: a guardrail (a system namespace, a kind
    /// its project forbids) or an object another app renders too.
    Refused { message: String },
    /// Renders no objects and would prune the ones it applied before
    /// (without `allowEmpty`).
    EmptyRender { applied_before: usize },
    /// The cluster's API discovery failed for a kind the app renders.
    Discovery { kind: String, error: ApiError },
    /// Its destination namespace could not be created.
    Namespace { namespace: String, error: ApiError },
    /// An object failed: its apply rejected by the server (or a read, a
    /// CRD wait), a prune, a hook.
    Object {
        object: ObjectRef,
        error: ChangeError,
    },
    /// An earlier sync wave did not get ready, so later ones were not
    /// applied; the health message says what was not ready.
    WaveNotHealthy { message: String },
    /// Failed again after `retries` retries (`syncPolicy.retry`); `last` is
    /// the last attempt's failure.
    Retried {
        retries: u32,
        last: Box<SyncFailure>,
    },
}

impl SyncFailure {
    /// The stable machine name (`-o json`'s `reason`).
    pub fn reason(&self) -> &'static str {
        match self {
            SyncFailure::Render {
                kind: FailureKind::Config,
                ..
            } => "invalidApp",
            SyncFailure::Render {
                kind: FailureKind::Source,
                ..
            } => "sourceFailed",
            SyncFailure::Render {
                kind: FailureKind::Render,
                ..
            } => "renderFailed",
            SyncFailure::IgnoreRules { .. } => "invalidIgnoreDifferences",
            SyncFailure::Inventory { .. } => "inventoryUnreadable",
            SyncFailure::Refused { .. } => "refused",
            SyncFailure::EmptyRender { .. } => "pruneRefused",
            SyncFailure::Discovery { .. } => "discoveryFailed",
            SyncFailure::Namespace { .. } => "namespaceFailed",
            SyncFailure::Object {
                error: ChangeError::Cluster(_),
                ..
            } => "applyFailed",
            SyncFailure::Object {
                error: ChangeError::Prune(_),
                ..
            } => "pruneFailed",
            SyncFailure::Object {
                error: ChangeError::Hook { .. },
                ..
            } => "hookFailed",
            SyncFailure::WaveNotHealthy { .. } => "waveNotHealthy",
            SyncFailure::Retried { last, .. } => last.reason(),
        }
    }

    /// The reason as a Kubernetes condition reason (`ApplyFailed`).
    pub fn condition_reason(&self) -> String {
        let tag = self.reason();
        let mut chars = tag.chars();
        match chars.next() {
            Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
            None => String::new(),
        }
    }

    /// The failed cluster call's answer, when the server gave one.
    pub fn api_error(&self) -> Option<&ApiError> {
        match self {
            SyncFailure::Inventory { error, .. }
            | SyncFailure::Discovery { error, .. }
            | SyncFailure::Namespace { error, .. } => Some(error),
            SyncFailure::Object {
                error: ChangeError::Cluster(e) | ChangeError::Prune(e),
                ..
            } => Some(e),
            SyncFailure::Retried { last, .. } => last.api_error(),
            _ => None,
        }
    }

    /// The object the failure is about, when one is.
    pub fn object(&self) -> Option<&ObjectRef> {
        match self {
            SyncFailure::Object { object, .. } => Some(object),
            SyncFailure::Retried { last, .. } => last.object(),
            _ => None,
        }
    }

    /// Whether trying again cannot help: the app's own configuration is
    /// wrong (not a cluster or hook failure).
    pub fn is_configuration(&self) -> bool {
        match self {
            SyncFailure::Render { kind, .. } => *kind == FailureKind::Config,
            SyncFailure::IgnoreRules { .. }
            | SyncFailure::Refused { .. }
            | SyncFailure::EmptyRender { .. } => true,
            SyncFailure::Retried { last, .. } => last.is_configuration(),
            _ => false,
        }
    }
}

impl fmt::Display for SyncFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SyncFailure::Render { message, .. }
            | SyncFailure::IgnoreRules { message }
            | SyncFailure::WaveNotHealthy { message } => f.write_str(message),
            SyncFailure::Inventory { app, error } => write!(
                f,
                "cannot read the previous inventory of application \"{app}\" from the cluster (nothing was written): {error}"
            ),
            SyncFailure::Refused { message } => write!(f, "refused before any write: {message}"),
            SyncFailure::EmptyRender { applied_before } => write!(
                f,
                "renders no objects; refusing to prune the {applied_before} object(s) it applied before \
                 (set syncPolicy.automated.allowEmpty: true if the app really should be empty)"
            ),
            SyncFailure::Discovery { kind, error } => {
                write!(f, "cannot look up kind {kind}: {error}")
            }
            SyncFailure::Namespace { namespace, error } => {
                write!(f, "cannot create namespace \"{namespace}\": {error}")
            }
            SyncFailure::Object { object, error } => match error {
                // The cluster error's text names the object already.
                ChangeError::Cluster(e) => write!(f, "{e}"),
                e => write!(f, "{object}: {e}"),
            },
            SyncFailure::Retried { retries, last } => {
                write!(f, "{last} (after {retries} retries)")
            }
        }
    }
}

/// On the wire: `reason` (the machine name), `message` (the sentence), and
/// when known `object`, `code` and `statusReason` (the server's answer)
/// and `retries`.
impl Serialize for SyncFailure {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("reason", self.reason())?;
        m.serialize_entry("message", &self.to_string())?;
        if let Some(object) = self.object() {
            m.serialize_entry("object", object)?;
        }
        if let Some(e) = self.api_error() {
            if let Some(code) = e.code {
                m.serialize_entry("code", &code)?;
            }
            if let Some(reason) = &e.reason {
                m.serialize_entry("statusReason", reason)?;
            }
        }
        if let SyncFailure::Retried { retries, .. } = self {
            m.serialize_entry("retries", retries)?;
        }
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cm() -> ObjectRef {
        ObjectRef {
            group: String::new(),
            version: "v1".into(),
            kind: "ConfigMap".into(),
            namespace: Some("web".into()),
            name: "conf".into(),
        }
    }

    #[test]
    fn a_rejected_apply_keeps_the_servers_code_and_reason() {
        let e = ClusterError::Rejected {
            object: "ConfigMap web/conf".into(),
            code: 422,
            reason: "Invalid".into(),
            message: "data: Invalid value".into(),
        };
        let f = SyncFailure::Object {
            object: cm(),
            error: ChangeError::Cluster(ApiError::from(&e)),
        };
        assert_eq!(f.reason(), "applyFailed");
        assert_eq!(f.condition_reason(), "ApplyFailed");
        assert_eq!(
            f.to_string(),
            "ConfigMap web/conf: rejected by the server (422 Invalid): data: Invalid value"
        );
        let v = serde_json::to_value(&f).unwrap();
        assert_eq!(v["code"], 422);
        assert_eq!(v["statusReason"], "Invalid");
        assert_eq!(v["reason"], "applyFailed");
        assert_eq!(v["object"]["name"], "conf");
    }

    #[test]
    fn retries_wrap_the_last_failure() {
        let f = SyncFailure::Retried {
            retries: 2,
            last: Box::new(SyncFailure::Object {
                object: cm(),
                error: ChangeError::Prune("gone wrong".into()),
            }),
        };
        assert_eq!(f.reason(), "pruneFailed");
        assert_eq!(
            f.to_string(),
            "ConfigMap web/conf: prune failed: gone wrong (after 2 retries)"
        );
        assert_eq!(serde_json::to_value(&f).unwrap()["retries"], 2);
        assert!(!f.is_configuration());
        let empty = SyncFailure::EmptyRender { applied_before: 3 };
        assert!(empty.is_configuration());
        assert_eq!(empty.reason(), "pruneRefused");
    }
}
