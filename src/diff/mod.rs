//! Desired vs live: whether each object, and so each app, is Synced or
//! OutOfSync, with a readable YAML diff of what would change.
//!
//! Modelled on argoproj/gitops-engine's `pkg/diff`, which only compares.
//! The desired side is the *predicted* object — what the API server returns
//! for a server-side dry-run apply of the desired manifest, i.e. the live
//! object as it would be after the apply, with defaults filled in and fields
//! owned by other managers (an HPA's `replicas`) kept. Both sides are
//! [`normalize`]d (server-owned bookkeeping dropped) and compared as values;
//! the diff is a unified diff of key-sorted YAML. A Secret's `data` and
//! `stringData` values never appear in a diff (see [`unified_yaml_diff`]).
//!
//! [`ignore`] leaves out what an app's `ignoreDifferences` ignore
//! ([`compare_ignoring`]).
//!
//! This module is pure: the dry-run and the read of the live object are
//! `cluster`'s; deciding which live objects are in the inventory (and so can
//! be [`ObjectDiffKind::Extra`]) is `sync`'s.

pub mod ignore;
pub mod jq;
mod normalize;
mod text;

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::ObjectRef;

pub use ignore::IgnoreSet;
pub use normalize::normalize;
pub use text::{unified_yaml_diff, MASK_CHANGED, MASK_HIDDEN, MASK_UNCHANGED};

/// Whether the cluster matches the desired state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncStatus {
    Synced,
    OutOfSync,
}

impl SyncStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SyncStatus::Synced => "Synced",
            SyncStatus::OutOfSync => "OutOfSync",
        }
    }
}

impl fmt::Display for SyncStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How one object's desired and live states relate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum ObjectDiffKind {
    /// Desired, but not in the cluster: apply would create it.
    Missing,
    /// In both, different after normalisation: apply would change it.
    Changed,
    /// Live and in the app's inventory, but no longer desired: prune would delete it.
    Extra,
    /// In both and equal after normalisation.
    Same,
}

impl ObjectDiffKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectDiffKind::Missing => "Missing",
            ObjectDiffKind::Changed => "Changed",
            ObjectDiffKind::Extra => "Extra",
            ObjectDiffKind::Same => "Same",
        }
    }

    /// The object's own sync status.
    pub fn sync_status(self) -> SyncStatus {
        match self {
            ObjectDiffKind::Same => SyncStatus::Synced,
            _ => SyncStatus::OutOfSync,
        }
    }
}

impl fmt::Display for ObjectDiffKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The comparison of one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObjectDiff {
    pub object: ObjectRef,
    pub kind: ObjectDiffKind,
    /// Unified diff of the normalised YAML, `--- live` / `+++ desired`; the
    /// whole object as added (Missing) or removed (Extra); empty when Same.
    pub diff: String,
}

/// Label of the live side in diffs.
pub const LIVE_LABEL: &str = "live";
/// Label of the desired (predicted) side in diffs.
pub const DESIRED_LABEL: &str = "desired";

/// Compares one object.
///
/// `predicted` is what the server returns for a server-side dry-run apply of
/// the desired object (the live object as it would be after apply), `None`
/// when the object is no longer desired; `live` is the current object,
/// `None` when it does not exist. Both are [`normalize`]d, then compared.
/// Neither side present is `Same` (nothing to do).
pub fn compare(object: ObjectRef, predicted: Option<&Value>, live: Option<&Value>) -> ObjectDiff {
    let (kind, old, new) = match (predicted, live) {
        (Some(p), Some(l)) => {
            let (p, l) = (normalize(p), normalize(l));
            if p == l {
                (ObjectDiffKind::Same, Value::Null, Value::Null)
            } else {
                (ObjectDiffKind::Changed, l, p)
            }
        }
        (Some(p), None) => (ObjectDiffKind::Missing, Value::Null, normalize(p)),
        (None, Some(l)) => (ObjectDiffKind::Extra, normalize(l), Value::Null),
        (None, None) => (ObjectDiffKind::Same, Value::Null, Value::Null),
    };
    let diff = unified_yaml_diff(&old, &new, LIVE_LABEL, DESIRED_LABEL);
    ObjectDiff { object, kind, diff }
}

/// [`compare`], leaving out what `ignore` ignores for the object (its
/// `managedFieldsManagers` read from the live object before normalising).
pub fn compare_ignoring(
    object: ObjectRef,
    predicted: Option<&Value>,
    live: Option<&Value>,
    ignore: &IgnoreSet,
) -> ObjectDiff {
    match (predicted, live) {
        (Some(p), Some(l)) if ignore.applies_to(&object) => {
            let (p, l) = ignore.strip(&object, p, l);
            compare(object, Some(&p), Some(&l))
        }
        _ => compare(object, predicted, live),
    }
}

/// An app is Synced when every one of its objects is Same (and when it has
/// none); OutOfSync otherwise.
pub fn app_status(diffs: &[ObjectDiff]) -> SyncStatus {
    if diffs.iter().all(|d| d.kind == ObjectDiffKind::Same) {
        SyncStatus::Synced
    } else {
        SyncStatus::OutOfSync
    }
}

#[cfg(test)]
mod tests;
