//! Health of live Kubernetes objects: Healthy, Suspended, Progressing,
//! Unknown, Missing or Degraded, each with a human message.
//!
//! Modelled on argoproj/gitops-engine's `pkg/health`: one small file per kind
//! (`deployment.rs`, `job.rs`, …), each a pure function from the live object
//! as read from the API (`serde_json::Value`) to a [`HealthStatus`], with a
//! table test of real-shaped objects. [`assess`] dispatches on API group and
//! kind; kinds without a rule of their own get the kstatus-style
//! [`generic`](self) rule (`observedGeneration`, `Ready`/`Available`,
//! `Stalled`, `Reconciling`). [`aggregate`] folds many objects into one:
//! an app's health is its worst object's.
//!
//! This module owns only the rules. It does no IO: fetching the live object
//! is `cluster`'s job, deciding that an absent object is [`missing`] is the
//! caller's, and what to do about an unhealthy app (wait, block dependents)
//! is `sync`'s.
//!
//! Conventions shared by every rule:
//! - an object being deleted (`metadata.deletionTimestamp`) is Progressing;
//! - a field of the wrong JSON type (`spec.replicas: "3"`) makes the object
//!   Unknown with the field named — never a panic, never a guess;
//! - Healthy objects carry an empty message unless there is a caveat worth
//!   showing (an Ingress without an address, a partitioned rollout).

mod apiservice;
mod application;
mod crd;
mod cronjob;
mod daemonset;
mod deployment;
mod fields;
mod generic;
mod hpa;
mod ingress;
mod job;
mod namespace;
mod pdb;
mod pod;
mod pvc;
mod replicaset;
mod service;
mod statefulset;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::split_api_version;

/// The health of one object or one app.
///
/// Variants are declared from best to worst, so the derived [`Ord`] *is*
/// severity and [`Health::worst`] is `max`:
///
/// `Healthy < Suspended < Progressing < Unknown < Missing < Degraded`
///
/// This differs from Argo CD, which ranks `Unknown` worst of all. kubesync
/// ranks by what the aggregate should tell a person: `Degraded` (something
/// is known to be broken) must never be hidden behind `Unknown` (we could
/// not tell) or `Missing` (not created yet); a desired object that is absent
/// is a definite, actionable fact, so `Missing` outranks `Unknown`; and
/// `Unknown` outranks `Progressing` because Progressing promises convergence
/// while Unknown promises nothing. `Suspended` sits just above `Healthy`:
/// a paused rollout or suspended CronJob is a deliberate, stable state, but
/// not one an app should report as plain Healthy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Health {
    /// Running as desired.
    Healthy,
    /// Deliberately paused or suspended (`spec.paused`, `spec.suspend`).
    Suspended,
    /// Not there yet, but on its way: a rollout, a pending volume, a job.
    Progressing,
    /// The rule could not tell (an odd phase, a malformed field).
    Unknown,
    /// Desired but absent from the cluster (see [`missing`]).
    Missing,
    /// Known to be failing: a crash loop, a failed job, a lost volume.
    Degraded,
}

impl Health {
    /// Every variant, best first.
    pub const ALL: [Health; 6] = [
        Health::Healthy,
        Health::Suspended,
        Health::Progressing,
        Health::Unknown,
        Health::Missing,
        Health::Degraded,
    ];

    /// The worse of two healths (see the ordering on [`Health`]).
    pub fn worst(self, other: Health) -> Health {
        self.max(other)
    }

    /// Whether this health lets dependents start (and an app count as
    /// deployed): Healthy, or Suspended — a paused Deployment or suspended
    /// CronJob is as its owner wants it. The one definition of "ready".
    pub fn is_ready(self) -> bool {
        matches!(self, Health::Healthy | Health::Suspended)
    }

    /// The name as Kubernetes status fields and Argo CD spell it: `Healthy`.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Healthy => "Healthy",
            Health::Suspended => "Suspended",
            Health::Progressing => "Progressing",
            Health::Unknown => "Unknown",
            Health::Missing => "Missing",
            Health::Degraded => "Degraded",
        }
    }
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not one of the six health names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownHealth(pub String);

impl fmt::Display for UnknownHealth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown health {:?} (expected one of Healthy, Suspended, Progressing, Unknown, Missing, Degraded)",
            self.0
        )
    }
}

impl std::error::Error for UnknownHealth {}

impl FromStr for Health {
    type Err = UnknownHealth;

    /// Exact, case-sensitive names, as written by Argo CD and kubesync.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Health::ALL
            .into_iter()
            .find(|h| h.as_str() == s)
            .ok_or_else(|| UnknownHealth(s.to_string()))
    }
}

/// A health and the message that explains it.
///
/// Serialises as `{"status": "Degraded", "message": "…"}` — the shape of
/// Argo CD's `status.health` — so that an Application's health written back
/// by kubesync is read by [`assess`] (and by Argo CD tooling) unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HealthStatus {
    #[serde(rename = "status", alias = "health")]
    pub health: Health,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

impl HealthStatus {
    pub fn new(health: Health, message: impl Into<String>) -> Self {
        HealthStatus {
            health,
            message: message.into(),
        }
    }

    pub fn healthy(message: impl Into<String>) -> Self {
        Self::new(Health::Healthy, message)
    }

    pub fn suspended(message: impl Into<String>) -> Self {
        Self::new(Health::Suspended, message)
    }

    pub fn progressing(message: impl Into<String>) -> Self {
        Self::new(Health::Progressing, message)
    }

    pub fn unknown(message: impl Into<String>) -> Self {
        Self::new(Health::Unknown, message)
    }

    pub fn degraded(message: impl Into<String>) -> Self {
        Self::new(Health::Degraded, message)
    }
}

impl fmt::Display for HealthStatus {
    /// `Degraded: back-off restarting failed container`, or just `Healthy`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.message.is_empty() {
            write!(f, "{}", self.health)
        } else {
            write!(f, "{}: {}", self.health, self.message)
        }
    }
}

/// The health of a desired object that has no live counterpart.
pub fn missing() -> HealthStatus {
    HealthStatus::new(Health::Missing, "object does not exist in the cluster")
}

/// The health of one live object.
///
/// Dispatches on the API group (from `apiVersion`) and `kind`; any kind
/// without a rule of its own gets the generic, condition-based rule, under
/// which plain configuration objects (ConfigMap, Secret, RBAC, …) are
/// Healthy. An object being deleted is Progressing whatever its kind.
pub fn assess(obj: &Value) -> HealthStatus {
    if !obj.is_object() {
        return HealthStatus::unknown("cannot assess health: not a Kubernetes object");
    }
    if let Some(deleting) = being_deleted(obj) {
        return deleting;
    }
    let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
    let (group, _) = split_api_version(api_version);
    rule_for(group, kind)(obj)
}

type Rule = fn(&Value) -> HealthStatus;

/// The rule for a group and kind (like gitops-engine's `GetHealthCheckFunc`).
fn rule_for(group: &str, kind: &str) -> Rule {
    match (group, kind) {
        ("apps" | "extensions", "Deployment") => deployment::deployment,
        ("apps", "StatefulSet") => statefulset::statefulset,
        ("apps" | "extensions", "DaemonSet") => daemonset::daemonset,
        ("apps" | "extensions", "ReplicaSet") => replicaset::replicaset,
        ("", "Pod") => pod::pod,
        ("", "Service") => service::service,
        ("", "PersistentVolumeClaim") => pvc::persistent_volume_claim,
        ("", "Namespace") => namespace::namespace,
        ("batch", "Job") => job::job,
        ("batch", "CronJob") => cronjob::cronjob,
        ("networking.k8s.io" | "extensions", "Ingress") => ingress::ingress,
        ("apiextensions.k8s.io", "CustomResourceDefinition") => crd::custom_resource_definition,
        ("autoscaling", "HorizontalPodAutoscaler") => hpa::horizontal_pod_autoscaler,
        ("policy", "PodDisruptionBudget") => pdb::pod_disruption_budget,
        ("apiregistration.k8s.io", "APIService") => apiservice::api_service,
        (crate::model::KUBESYNC_GROUP | "argoproj.io", "Application") => application::application,
        _ => generic::generic,
    }
}

/// Progressing while `metadata.deletionTimestamp` is set, naming the
/// finalizers that hold the object.
fn being_deleted(obj: &Value) -> Option<HealthStatus> {
    let meta = obj.get("metadata")?;
    if meta.get("deletionTimestamp").is_none_or(Value::is_null) {
        return None;
    }
    let finalizers: Vec<&str> = meta
        .get("finalizers")
        .and_then(Value::as_array)
        .map(|f| f.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    Some(HealthStatus::progressing(if finalizers.is_empty() {
        "being deleted".to_string()
    } else {
        format!(
            "being deleted; waiting on finalizers: {}",
            finalizers.join(", ")
        )
    }))
}

/// Folds many healths into one: the worst wins.
///
/// The message says how many of the objects are in that state and carries
/// the first non-empty message among them, e.g. `2 of 5 objects Degraded:
/// back-off restarting failed container`. No objects at all is Healthy.
pub fn aggregate<'a>(items: impl IntoIterator<Item = &'a HealthStatus>) -> HealthStatus {
    let mut total = 0usize;
    let mut worst: Option<(Health, usize, &str)> = None;
    for item in items {
        total += 1;
        worst = match worst {
            Some((h, n, msg)) if h == item.health => {
                Some((h, n + 1, if msg.is_empty() { &item.message } else { msg }))
            }
            Some((h, _, _)) if h > item.health => worst,
            _ => Some((item.health, 1, &item.message)),
        };
    }
    let Some((health, count, first)) = worst else {
        return HealthStatus::healthy("no objects");
    };
    let noun = if total == 1 { "object" } else { "objects" };
    let summary = format!("{count} of {total} {noun} {health}");
    HealthStatus::new(
        health,
        if first.is_empty() {
            summary
        } else {
            format!("{summary}: {first}")
        },
    )
}

#[cfg(test)]
mod tests;
