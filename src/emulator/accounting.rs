//! Request accounting: how many API requests the emulator served, by verb and
//! by resource (and non-resource paths), readable in-process and at
//! `GET /emulator/requests`, reset with `DELETE /emulator/requests`. Tests and
//! benchmarks use it to assert how chatty a client is.

use std::collections::BTreeMap;

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

/// The live counters.
#[derive(Debug, Default)]
pub struct RequestAccounting {
    counts: Mutex<RequestCounts>,
}

impl RequestAccounting {
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

    pub fn reset(&self) {
        *self.counts.lock() = RequestCounts::default();
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
}
