//! Request accounting: how many API requests the emulator served, by verb and
//! by resource (and non-resource paths), readable in-process and at
//! `GET /emulator/requests`, reset with `DELETE /emulator/requests`. Tests and
//! benchmarks use it to assert how chatty a client is.
//!
//! Beside the counters, a bounded journal of resource requests (time, verb,
//! resource, namespace/name, dry run, user agent), oldest dropped first:
//! in-process through [`RequestAccounting::journal`], over HTTP at
//! `GET /emulator/requests/journal` (`?writes=true` for writes only). Tests
//! use it to say *which* writes a client made, not only how many.

use std::collections::{BTreeMap, VecDeque};

use parking_lot::Mutex;
use serde::Serialize;

use super::hooks::RequestInfo;

/// A snapshot of the counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestCounts {
    /// Every counted request.
    pub total: u64,
    /// Resource requests by Kubernetes verb.
    pub by_verb: BTreeMap<String, u64>,
    /// Resource requests by resource key (`deployments.apps`,
    /// `pods/status`) then verb.
    pub by_resource: BTreeMap<String, BTreeMap<String, u64>>,
    /// Non-resource requests (discovery, OpenAPI, `/version`) by path.
    pub non_resource: BTreeMap<String, u64>,
    /// Faults injected into these requests (see `faults`).
    pub faults: FaultCounts,
}

/// How many faults were injected, by effect and by rule.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultCounts {
    /// Requests a rule fired on.
    pub total: u64,
    /// Requests answered with an injected error.
    pub errors: u64,
    /// Requests delayed.
    pub delays: u64,
    /// Connections dropped without a response.
    pub drops: u64,
    /// Firings by rule name (`rule-<index>` for unnamed rules).
    pub by_rule: BTreeMap<String, u64>,
}

impl RequestCounts {
    /// Requests with `verb` on `resource_key` (e.g. `("patch", "deployments.apps")`).
    pub fn count(&self, verb: &str, resource_key: &str) -> u64 {
        self.by_resource
            .get(resource_key)
            .and_then(|m| m.get(verb))
            .copied()
            .unwrap_or(0)
    }

    /// Resource requests with `verb`, any resource.
    pub fn verb(&self, verb: &str) -> u64 {
        self.by_verb.get(verb).copied().unwrap_or(0)
    }
}

/// How many requests the journal keeps (the oldest go first).
pub const JOURNAL_CAPACITY: usize = 20_000;

/// One resource request as the emulator received it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JournalEntry {
    /// When it arrived (RFC 3339, milliseconds).
    pub time: String,
    /// Kubernetes verb (`get`, `list`, `watch`, `create`, `patch`, …).
    pub verb: String,
    /// Resource key as the counters use it (`deployments.apps`, `pods/status`).
    pub resource: String,
    pub namespace: Option<String>,
    pub name: Option<String>,
    /// `dryRun=All`: nothing was persisted.
    pub dry_run: bool,
    pub user_agent: String,
}

impl JournalEntry {
    /// A request that changes state: create, update, patch, delete or
    /// deletecollection, not a dry run.
    pub fn is_write(&self) -> bool {
        !self.dry_run && is_write_verb(&self.verb)
    }
}

/// Whether `verb` names a write.
pub fn is_write_verb(verb: &str) -> bool {
    matches!(
        verb,
        "create" | "update" | "patch" | "delete" | "deletecollection"
    )
}

/// The live counters and journal.
#[derive(Debug, Default)]
pub struct RequestAccounting {
    counts: Mutex<RequestCounts>,
    journal: Mutex<VecDeque<JournalEntry>>,
}

impl RequestAccounting {
    /// Counts `info` (and journals it when it names a resource); `dry_run`
    /// is whether the request carried `dryRun=All`.
    pub fn record_request(&self, info: &RequestInfo, dry_run: bool) {
        if info.is_resource {
            let entry = JournalEntry {
                time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                verb: info.verb.clone(),
                resource: info.resource_key(),
                namespace: info.namespace.clone(),
                name: info.name.clone(),
                dry_run,
                user_agent: info.user_agent.clone(),
            };
            let mut j = self.journal.lock();
            if j.len() >= JOURNAL_CAPACITY {
                j.pop_front();
            }
            j.push_back(entry);
        }
        self.record(info);
    }

    /// The journal, oldest first.
    pub fn journal(&self) -> Vec<JournalEntry> {
        self.journal.lock().iter().cloned().collect()
    }

    pub fn record(&self, info: &RequestInfo) {
        let mut c = self.counts.lock();
        c.total += 1;
        if info.is_resource {
            *c.by_verb.entry(info.verb.clone()).or_default() += 1;
            *c.by_resource
                .entry(info.resource_key())
                .or_default()
                .entry(info.verb.clone())
                .or_default() += 1;
        } else {
            *c.non_resource.entry(info.path.clone()).or_default() += 1;
        }
    }

    /// Counts one request a fault rule fired on, with what it did.
    pub fn record_fault(&self, rule: &str, error: bool, delay: bool, drop: bool) {
        let mut c = self.counts.lock();
        let f = &mut c.faults;
        f.total += 1;
        f.errors += u64::from(error);
        f.delays += u64::from(delay);
        f.drops += u64::from(drop);
        *f.by_rule.entry(rule.to_string()).or_default() += 1;
    }

    pub fn snapshot(&self) -> RequestCounts {
        self.counts.lock().clone()
    }

    /// Clears the counters and the journal.
    pub fn reset(&self) {
        *self.counts.lock() = RequestCounts::default();
        self.journal.lock().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_resets() {
        let a = RequestAccounting::default();
        let info = RequestInfo {
            verb: "patch".into(),
            is_resource: true,
            group: "apps".into(),
            resource: "deployments".into(),
            ..Default::default()
        };
        a.record(&info);
        a.record(&RequestInfo {
            path: "/api".into(),
            verb: "get".into(),
            ..Default::default()
        });
        let s = a.snapshot();
        assert_eq!(s.total, 2);
        assert_eq!(s.count("patch", "deployments.apps"), 1);
        assert_eq!(s.non_resource.get("/api"), Some(&1));
        a.reset();
        assert_eq!(a.snapshot().total, 0);
    }

    #[test]
    fn journal_is_bounded_and_marks_writes() {
        let a = RequestAccounting::default();
        let mut info = RequestInfo {
            verb: "patch".into(),
            is_resource: true,
            resource: "configmaps".into(),
            namespace: Some("ns".into()),
            name: Some("cm".into()),
            user_agent: "kubesync".into(),
            ..Default::default()
        };
        a.record_request(&info, true);
        a.record_request(&info, false);
        info.verb = "get".into();
        a.record_request(&info, false);
        a.record_request(
            &RequestInfo {
                path: "/api".into(),
                verb: "get".into(),
                ..Default::default()
            },
            false,
        );
        let j = a.journal();
        assert_eq!(
            j.len(),
            3,
            "non-resource requests are counted, not journalled"
        );
        assert_eq!(
            j.iter().map(JournalEntry::is_write).collect::<Vec<_>>(),
            [false, true, false]
        );
        assert_eq!(j[1].name.as_deref(), Some("cm"));
        for _ in 0..JOURNAL_CAPACITY + 5 {
            a.record_request(&info, false);
        }
        assert_eq!(a.journal().len(), JOURNAL_CAPACITY);
        a.reset();
        assert!(a.journal().is_empty());
    }
}
