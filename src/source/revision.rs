//! Resolving a [`RevisionSpec`] to a commit id in a git repository.
//!
//! Reads refs and objects only, never the work tree. The choice of
//! `tag:latest` among candidate tags and the version-aware name order are pure
//! functions ([`pick_latest_tag`], [`version_cmp`]) so they are tested without
//! a repository.
//!
//! - `branch:X` → `refs/heads/X`, else `refs/remotes/origin/X`;
//! - `tag:X` → `refs/tags/X`, annotated tags peeled to their commit;
//! - `tag:latest` → among tags whose commit is reachable from the default
//!   branch (HEAD's branch, else `main`, else `master`), the one on the most
//!   recently committed commit; ties go to the highest version-ordered name;
//! - `commit:SHA` → a full id or an unambiguous prefix;
//! - a plain name → branch, then tag, then commit;
//! - `HEAD` → HEAD's commit.

use std::cmp::Ordering;
use std::collections::HashSet;

use git2::{ErrorCode, Oid, Repository};

use crate::model::RevisionSpec;

use super::SourceError;

/// How many branch or tag names an error lists.
const LIST_LIMIT: usize = 10;

/// Resolves `spec` in `repo` (shown as `name` in errors) to a commit id.
pub(crate) fn resolve(
    repo: &Repository,
    name: &str,
    spec: &RevisionSpec,
) -> Result<Oid, SourceError> {
    let not_found = |detail: String| SourceError::RevisionNotFound {
        repo: name.to_string(),
        revision: spec.to_string(),
        detail,
    };
    match spec {
        // An unborn HEAD (a remote whose HEAD names a missing branch) falls
        // back to `main`, then `master`.
        RevisionSpec::Head => match head_commit(repo).map_err(|e| SourceError::git(name, &e))? {
            Some(oid) => Ok(oid),
            None => default_branch(repo).map(|(_, oid)| oid).ok_or_else(|| {
                not_found(format!(
                    "HEAD has no commit and there is no main or master branch; {}",
                    list("branches", branch_names(repo))
                ))
            }),
        },
        RevisionSpec::Branch(b) => match find_branch(repo, b) {
            Some(oid) => Ok(oid),
            None => Err(not_found(format!(
                "no branch \"{b}\" (looked for refs/heads/{b} and refs/remotes/origin/{b}); {}",
                list("branches", branch_names(repo))
            ))),
        },
        RevisionSpec::Tag(t) => match find_tag(repo, t) {
            Some(oid) => Ok(oid),
            None => Err(not_found(format!(
                "no tag \"{t}\" on a commit; {}",
                list("tags", tag_names(repo))
            ))),
        },
        RevisionSpec::Commit(c) => match find_commit(repo, c) {
            CommitLookup::Found(oid) => Ok(oid),
            CommitLookup::Ambiguous => Err(not_found(ambiguous(c))),
            CommitLookup::NotFound => Err(not_found(format!("no commit starts with \"{c}\""))),
        },
        RevisionSpec::Plain(p) => {
            if let Some(oid) = find_branch(repo, p) {
                return Ok(oid);
            }
            if let Some(oid) = find_tag(repo, p) {
                return Ok(oid);
            }
            match find_commit(repo, p) {
                CommitLookup::Found(oid) => Ok(oid),
                CommitLookup::Ambiguous => Err(not_found(ambiguous(p))),
                CommitLookup::NotFound => Err(not_found(format!(
                    "not a branch (refs/heads/{p}, refs/remotes/origin/{p}), a tag \
                     (refs/tags/{p}) or a commit; {}; {}",
                    list("branches", branch_names(repo)),
                    list("tags", tag_names(repo))
                ))),
            }
        }
        RevisionSpec::LatestTag => latest_tag(repo, name),
    }
}

fn ambiguous(prefix: &str) -> String {
    format!(
        "\"{prefix}\" is ambiguous: more than one object id starts with it; \
         give more characters of the commit id"
    )
}

fn list(what: &str, mut names: Vec<String>) -> String {
    if names.is_empty() {
        return format!("the repository has no {what}");
    }
    names.sort_by(|a, b| version_cmp(a, b));
    let total = names.len();
    let shown: Vec<String> = names.into_iter().take(LIST_LIMIT).collect();
    let mut s = format!("{what}: {}", shown.join(", "));
    if total > LIST_LIMIT {
        s.push_str(&format!(" and {} more", total - LIST_LIMIT));
    }
    s
}

fn head_commit(repo: &Repository) -> Result<Option<Oid>, git2::Error> {
    match repo.head() {
        Ok(head) => Ok(Some(head.peel_to_commit()?.id())),
        Err(e) if matches!(e.code(), ErrorCode::UnbornBranch | ErrorCode::NotFound) => Ok(None),
        Err(e) => Err(e),
    }
}

fn ref_commit(repo: &Repository, refname: &str) -> Option<Oid> {
    let r = repo.find_reference(refname).ok()?;
    r.peel_to_commit().ok().map(|c| c.id())
}

fn find_branch(repo: &Repository, branch: &str) -> Option<Oid> {
    ref_commit(repo, &format!("refs/heads/{branch}"))
        .or_else(|| ref_commit(repo, &format!("refs/remotes/origin/{branch}")))
}

fn find_tag(repo: &Repository, tag: &str) -> Option<Oid> {
    ref_commit(repo, &format!("refs/tags/{tag}"))
}

enum CommitLookup {
    Found(Oid),
    NotFound,
    Ambiguous,
}

fn find_commit(repo: &Repository, sha: &str) -> CommitLookup {
    if sha.len() < 4 || sha.len() > 40 || !sha.chars().all(|c| c.is_ascii_hexdigit()) {
        return CommitLookup::NotFound;
    }
    let sha = sha.to_ascii_lowercase();
    let object = if sha.len() == 40 {
        Oid::from_str(&sha).and_then(|oid| repo.find_object(oid, None))
    } else {
        repo.find_object_by_prefix(&sha, None)
    };
    match object {
        Ok(obj) => match obj.peel_to_commit() {
            Ok(c) => CommitLookup::Found(c.id()),
            Err(_) => CommitLookup::NotFound,
        },
        Err(e) if e.code() == ErrorCode::Ambiguous => CommitLookup::Ambiguous,
        Err(_) => CommitLookup::NotFound,
    }
}

/// Local branches and `origin/*` remote-tracking branches, by short name.
fn branch_names(repo: &Repository) -> Vec<String> {
    let mut names = Vec::new();
    if let Ok(refs) = repo.references() {
        for r in refs.flatten() {
            let Ok(full) = r.name() else { continue };
            let short = full
                .strip_prefix("refs/heads/")
                .or_else(|| full.strip_prefix("refs/remotes/origin/"));
            if let Some(short) = short {
                if short != "HEAD" && !names.iter().any(|n| n == short) {
                    names.push(short.to_string());
                }
            }
        }
    }
    names
}

fn tag_names(repo: &Repository) -> Vec<String> {
    repo.tag_names(None)
        .map(|names| {
            names
                .iter()
                .filter_map(|n| n.ok().flatten().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The default branch: HEAD's branch, else `main`, else `master`.
fn default_branch(repo: &Repository) -> Option<(String, Oid)> {
    if let Ok(head) = repo.head() {
        if head.is_branch() {
            if let (Ok(name), Ok(commit)) = (head.shorthand(), head.peel_to_commit()) {
                return Some((name.to_string(), commit.id()));
            }
        }
    }
    ["main", "master"]
        .into_iter()
        .find_map(|b| find_branch(repo, b).map(|oid| (b.to_string(), oid)))
}

fn latest_tag(repo: &Repository, name: &str) -> Result<Oid, SourceError> {
    let spec = RevisionSpec::LatestTag;
    let Some((branch, tip)) = default_branch(repo) else {
        return Err(SourceError::RevisionNotFound {
            repo: name.to_string(),
            revision: spec.to_string(),
            detail: "no default branch: HEAD is not on a branch and neither \"main\" nor \
                     \"master\" exists"
                .into(),
        });
    };
    // Tagged commits, then which of them the default branch reaches (one walk).
    let mut tagged: Vec<(String, Oid)> = Vec::new();
    for tag in tag_names(repo) {
        if let Some(oid) = find_tag(repo, &tag) {
            tagged.push((tag, oid));
        }
    }
    let mut wanted: HashSet<Oid> = tagged.iter().map(|(_, oid)| *oid).collect();
    let mut reachable: HashSet<Oid> = HashSet::new();
    if !wanted.is_empty() {
        let mut walk = repo.revwalk().map_err(|e| SourceError::git(name, &e))?;
        walk.push(tip).map_err(|e| SourceError::git(name, &e))?;
        for oid in walk {
            let oid = oid.map_err(|e| SourceError::git(name, &e))?;
            if wanted.remove(&oid) {
                reachable.insert(oid);
                if wanted.is_empty() {
                    break;
                }
            }
        }
    }
    let mut candidates = Vec::new();
    for (tag, oid) in tagged {
        if !reachable.contains(&oid) {
            tracing::debug!(
                repo = name,
                tag,
                branch,
                "tag:latest ignores a tag not on the default branch"
            );
            continue;
        }
        let commit = repo
            .find_commit(oid)
            .map_err(|e| SourceError::git(name, &e))?;
        candidates.push(TagCandidate {
            name: tag,
            time: commit.time().seconds(),
            oid,
        });
    }
    match pick_latest_tag(&candidates) {
        Some(c) => Ok(c.oid),
        None => Err(SourceError::NoTags {
            repo: name.to_string(),
        }),
    }
}

/// A tag considered for `tag:latest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TagCandidate {
    pub name: String,
    /// Commit time (seconds since the epoch) of the tagged commit.
    pub time: i64,
    pub oid: Oid,
}

/// The tag on the most recent commit; on equal times, the highest name in
/// version order.
pub(crate) fn pick_latest_tag(candidates: &[TagCandidate]) -> Option<&TagCandidate> {
    candidates.iter().max_by(|a, b| {
        a.time
            .cmp(&b.time)
            .then_with(|| version_cmp(&a.name, &b.name))
    })
}

/// Version-aware name order: runs of digits compare as numbers (`v1.10` >
/// `v1.9`), everything else as text, and a name that continues with `-` or `~`
/// after another name's end is a pre-release of it (`v1.0-rc1` < `v1.0`).
pub fn version_cmp(a: &str, b: &str) -> Ordering {
    let (ca, cb) = (chunks(a), chunks(b));
    for i in 0..ca.len().max(cb.len()) {
        match (ca.get(i), cb.get(i)) {
            (Some(x), Some(y)) => {
                let ord = match (is_num(x), is_num(y)) {
                    (true, true) => num_cmp(x, y),
                    _ => x.cmp(y),
                };
                if ord != Ordering::Equal {
                    return ord;
                }
            }
            (Some(x), None) => {
                return if is_prerelease(x) {
                    Ordering::Less
                } else {
                    Ordering::Greater
                }
            }
            (None, Some(y)) => {
                return if is_prerelease(y) {
                    Ordering::Greater
                } else {
                    Ordering::Less
                }
            }
            (None, None) => break,
        }
    }
    Ordering::Equal
}

fn is_prerelease(chunk: &str) -> bool {
    chunk.starts_with('-') || chunk.starts_with('~')
}

fn is_num(s: &str) -> bool {
    s.as_bytes().first().is_some_and(u8::is_ascii_digit)
}

fn num_cmp(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.trim_start_matches('0'), b.trim_start_matches('0'));
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

fn chunks(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let bytes = s.as_bytes();
    for i in 1..=bytes.len() {
        if i == bytes.len() || bytes[i].is_ascii_digit() != bytes[i - 1].is_ascii_digit() {
            out.push(&s[start..i]);
            start = i;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_order() {
        let ascending = [
            "v0.9", "v1.0-rc1", "v1.0-rc2", "v1.0", "v1.0.1", "v1.2", "v1.9", "v1.10", "v2", "v10",
        ];
        for w in ascending.windows(2) {
            assert_eq!(
                version_cmp(w[0], w[1]),
                Ordering::Less,
                "{} < {}",
                w[0],
                w[1]
            );
            assert_eq!(
                version_cmp(w[1], w[0]),
                Ordering::Greater,
                "{} > {}",
                w[1],
                w[0]
            );
        }
        assert_eq!(version_cmp("v1.02", "v1.2"), Ordering::Equal);
        assert_eq!(version_cmp("", ""), Ordering::Equal);
        assert_eq!(version_cmp("", "a"), Ordering::Less);
    }

    #[test]
    fn latest_tag_prefers_time_then_version() {
        let oid = Oid::ZERO_SHA1;
        let c = |name: &str, time| TagCandidate {
            name: name.into(),
            time,
            oid,
        };
        assert_eq!(pick_latest_tag(&[]), None);
        let cands = [c("v1.10", 100), c("v1.9", 200), c("v1.2", 50)];
        assert_eq!(
            pick_latest_tag(&cands).map(|c| c.name.as_str()),
            Some("v1.9")
        );
        let tie = [c("v1.9", 100), c("v1.10", 100), c("v1.10-rc1", 100)];
        assert_eq!(
            pick_latest_tag(&tie).map(|c| c.name.as_str()),
            Some("v1.10")
        );
    }

    #[test]
    fn error_lists_are_bounded() {
        let names: Vec<String> = (0..15).map(|i| format!("b{i}")).collect();
        let s = list("branches", names);
        assert!(s.starts_with("branches: b0, b1, b2"), "{s}");
        assert!(s.ends_with("and 5 more"), "{s}");
        assert_eq!(list("tags", vec![]), "the repository has no tags");
    }
}
