//! Request statistics of one [`super::ClusterClient`] (and its clones): how
//! many write requests it sent, by kind, plus reads and retries. Tests use
//! [`RequestStats::writes`] to assert that a dry run wrote nothing; the
//! controller can export them as metrics; `-v` prints them after a sync
//! ([`RequestStats::summary`]).

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
    /// Gets, lists, discovery and version requests (each page of a list
    /// counts once). Watches are counted apart.
    pub reads: u64,
    /// Of `reads`: list pages.
    pub lists: u64,
    /// Watch requests (long-lived streams; each (re)start counts once).
    pub watches: u64,
    /// Retries of any request.
    pub retries: u64,
}

impl RequestStats {
    /// Requests that may have changed the cluster: applies, status patches,
    /// deletes (dry-run applies excluded).
    pub fn writes(&self) -> u64 {
        self.applies + self.status_patches + self.deletes
    }

    /// The counts since `earlier` (a snapshot of the same client).
    pub fn since(&self, earlier: &RequestStats) -> RequestStats {
        RequestStats {
            applies: self.applies - earlier.applies,
            dry_run_applies: self.dry_run_applies - earlier.dry_run_applies,
            status_patches: self.status_patches - earlier.status_patches,
            deletes: self.deletes - earlier.deletes,
            reads: self.reads - earlier.reads,
            lists: self.lists - earlier.lists,
            watches: self.watches - earlier.watches,
            retries: self.retries - earlier.retries,
        }
    }

    /// One line for people and scripts: `N reads (G gets, L lists), W watches,
    /// M writes (A applies, S status patches, D deletes), R dry-run applies,
    /// T retries`.
    pub fn summary(&self) -> String {
        format!(
            "{} reads ({} gets, {} lists), {} watches, {} writes ({} applies, {} status patches, {} deletes), {} dry-run applies, {} retries",
            self.reads,
            self.reads - self.lists,
            self.lists,
            self.watches,
            self.writes(),
            self.applies,
            self.status_patches,
            self.deletes,
            self.dry_run_applies,
            self.retries
        )
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
    /// One page of a list (also a read).
    List,
    Watch,
}

impl RequestKind {
    pub(crate) fn verb(self) -> &'static str {
        match self {
            RequestKind::Apply => "apply",
            RequestKind::DryRunApply => "dry-run apply",
            RequestKind::StatusPatch => "patch status",
            RequestKind::Delete => "delete",
            RequestKind::Read => "read",
            RequestKind::List => "list",
            RequestKind::Watch => "watch",
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
    lists: AtomicU64,
    watches: AtomicU64,
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
            RequestKind::List => {
                self.reads.fetch_add(1, Ordering::Relaxed);
                &self.lists
            }
            RequestKind::Watch => &self.watches,
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
            lists: self.lists.load(Ordering::Relaxed),
            watches: self.watches.load(Ordering::Relaxed),
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
        c.sent(RequestKind::List);
        c.sent(RequestKind::Watch);
        let t = c.snapshot();
        assert_eq!((t.reads, t.lists, t.watches), (2, 1, 1));
        assert_eq!(t.since(&s).reads, 1);
        assert!(t
            .summary()
            .starts_with("2 reads (1 gets, 1 lists), 1 watches, 3 writes"));
    }
}
