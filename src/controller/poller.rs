//! The git poller: which (repository, revision) pairs a tree follows, and
//! one cheap lookup per pair ([`crate::source::Sources::poll`]: a local ref
//! read or one `ls-remote`; no fetch, no render, no API request). A pair
//! whose fingerprint moved since the last poll means "load the tree again".
//! Pairs pinned to a commit are not polled (the root's own pin is covered by
//! the root target).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use crate::model::{AppName, RevisionSpec};
use crate::source::{normalize_url, Fingerprint, Sources};
use crate::tree::AppTree;

/// One (repository, revision) pair to poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollTarget {
    /// Repository key and revision: unique per pair.
    pub key: String,
    pub url: Option<String>,
    pub revision: Option<RevisionSpec>,
    /// For display.
    pub shown: String,
    /// Names a webhook may use for this repository (normalised URLs).
    pub names: Vec<String>,
    /// Apps rendering from it (all apps for the root); shared, so a poll
    /// round's copies of its targets do not copy the lists.
    pub apps: Arc<[AppName]>,
}

/// The targets of a tree: the root (when it is a git repository) and every
/// other repository/revision an app follows that is not a fixed commit.
pub fn targets(
    sources: &Sources,
    root: Option<(Option<String>, Option<RevisionSpec>)>,
    root_names: Vec<String>,
    tree: Option<&AppTree>,
) -> Vec<PollTarget> {
    let mut out: BTreeMap<String, PollTarget> = BTreeMap::new();
    let mut apps_of: BTreeMap<String, (Vec<AppName>, HashSet<AppName>)> = BTreeMap::new();
    let key_of = |url: Option<&str>, rev: Option<&RevisionSpec>| {
        let repo = sources
            .repo_key(url)
            .unwrap_or_else(|_| url.unwrap_or("").to_string());
        let rev = rev
            .map(ToString::to_string)
            .unwrap_or_else(|| "HEAD".into());
        format!("{repo}@{rev}")
    };
    let all_apps: Arc<[AppName]> = tree
        .map(|t| t.nodes().iter().map(|n| n.app.name.clone()).collect())
        .unwrap_or_default();
    if let Some((url, rev)) = root {
        let key = key_of(url.as_deref(), rev.as_ref());
        out.insert(
            key.clone(),
            PollTarget {
                key,
                // Never the credentials a --repo URL may carry.
                shown: url
                    .as_deref()
                    .map(crate::source::redact_url)
                    .unwrap_or_else(|| sources.root_repo().dir.display().to_string()),
                url,
                revision: rev,
                names: root_names,
                apps: all_apps,
            },
        );
    }
    for n in tree.map(|t| t.nodes()).unwrap_or_default() {
        if matches!(n.revision, Some(RevisionSpec::Commit(_))) {
            continue;
        }
        let url = n
            .repo_url
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty());
        let key = key_of(url, n.revision.as_ref());
        out.entry(key.clone()).or_insert_with(|| PollTarget {
            key: key.clone(),
            url: url.map(str::to_string),
            revision: n.revision.clone(),
            shown: url
                .map(crate::source::redact_url)
                .unwrap_or_else(|| sources.root_repo().dir.display().to_string()),
            names: url.map(normalize_url).into_iter().collect(),
            apps: Arc::from([]),
        });
        let (list, seen) = apps_of.entry(key).or_default();
        if seen.insert(n.app.name.clone()) {
            list.push(n.app.name.clone());
        }
    }
    out.into_iter()
        .map(|(key, mut t)| {
            if let Some((list, _)) = apps_of.remove(&key) {
                // The root's target lists every app already.
                if t.apps.is_empty() {
                    t.apps = list.into();
                }
            }
            t
        })
        .collect()
}

/// The keys of the targets a webhook's repository URLs name.
pub fn matching(targets: &[PollTarget], urls: &[String]) -> BTreeSet<String> {
    let wanted: Vec<String> = urls.iter().map(|u| normalize_url(u)).collect();
    targets
        .iter()
        .filter(|t| t.names.iter().any(|n| wanted.contains(n)))
        .map(|t| t.key.clone())
        .collect()
}

/// What one poll found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PollOutcome {
    /// First look at this target: nothing to compare with.
    Baseline(Fingerprint),
    Unchanged,
    Moved(Fingerprint),
    Failed(String),
}

/// Polls `targets` (blocking: one ref lookup each) against the last known
/// fingerprints, updating them.
pub fn poll(
    sources: &Sources,
    targets: &[PollTarget],
    known: &mut HashMap<String, Fingerprint>,
) -> Vec<(PollTarget, PollOutcome)> {
    targets
        .iter()
        .map(|t| {
            let outcome = match sources.poll(t.url.as_deref(), t.revision.as_ref()) {
                Err(e) => PollOutcome::Failed(e.to_string()),
                Ok(fp) => match known.insert(t.key.clone(), fp.clone()) {
                    None => PollOutcome::Baseline(fp),
                    Some(old) if old == fp => PollOutcome::Unchanged,
                    Some(_) => PollOutcome::Moved(fp),
                },
            };
            (t.clone(), outcome)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_urls_match_targets_by_normalised_name() {
        let t = PollTarget {
            key: "k".into(),
            url: Some("https://github.com/o/r.git".into()),
            revision: None,
            shown: String::new(),
            names: vec![normalize_url("https://github.com/o/r.git")],
            apps: Arc::from([]),
        };
        let ts = [t];
        assert_eq!(
            matching(&ts, &["git@github.com:o/r.git".into()]),
            ["k".to_string()].into()
        );
        assert!(matching(&ts, &["https://github.com/o/other".into()]).is_empty());
    }
}
