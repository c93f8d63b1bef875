//! Request statistics of one [`super::ClusterClient`] (and its clones): how
//! many write requests it sent, by kind, plus reads and retries. Tests use
//! [`RequestStats::writes`] to assert that a dry run wrote nothing; the
//! controller can export them as metrics.

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of the counters. Every HTTP request is counted once per
/// attempt, so a retried apply counts as several applies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RequestStats {
    /// Server-side applies that may persist (not dry-run).
    pub applies: u64,
    /// Server-side applies with `dryRun=All`.
    pub dry_run_applies: u64,
    /// Status (or status-fallback) merge patches.
    pub status_patches: u64,
    /// Deletes.
    pub deletes: u64,
    /// Gets, lists, discovery and version requests.
    pub reads: u64,
    /// Retries of any request.
    pub retries: u64,
}

impl RequestStats {
    /// Requests that may have changed the cluster: applies, status patches,
    /// deletes (dry-run applies excluded).
    pub fn writes(&self) -> u64 {
        self.applies + self.status_patches + self.deletes
    }
}

/// Which counter a request goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RequestKind {
    Apply,
    DryRunApply,
    StatusPatch,
    Delete,
    Read,
}

impl RequestKind {
    pub(crate) fn verb(self) -> &'static str {
        match self {
            RequestKind::Apply => "apply",
            RequestKind::DryRunApply => "dry-run apply",
            RequestKind::StatusPatch => "patch status",
            RequestKind::Delete => "delete",
            RequestKind::Read => "read",
        }
    }
}

/// The live counters.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    applies: AtomicU64,
    dry_run_applies: AtomicU64,
    status_patches: AtomicU64,
    deletes: AtomicU64,
    reads: AtomicU64,
    retries: AtomicU64,
}

impl Counters {
    pub(crate) fn sent(&self, kind: RequestKind) {
        let c = match kind {
            RequestKind::Apply => &self.applies,
            RequestKind::DryRunApply => &self.dry_run_applies,
            RequestKind::StatusPatch => &self.status_patches,
            RequestKind::Delete => &self.deletes,
            RequestKind::Read => &self.reads,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn retried(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> RequestStats {
        RequestStats {
            applies: self.applies.load(Ordering::Relaxed),
            dry_run_applies: self.dry_run_applies.load(Ordering::Relaxed),
            status_patches: self.status_patches.load(Ordering::Relaxed),
            deletes: self.deletes.load(Ordering::Relaxed),
            reads: self.reads.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_exclude_dry_runs_and_reads() {
        let c = Counters::default();
        c.sent(RequestKind::Apply);
        c.sent(RequestKind::DryRunApply);
        c.sent(RequestKind::Read);
        c.sent(RequestKind::Delete);
        c.sent(RequestKind::StatusPatch);
        c.retried();
        let s = c.snapshot();
        assert_eq!(s.writes(), 3);
        assert_eq!(s.dry_run_applies, 1);
        assert_eq!(s.retries, 1);
    }
}
