//! The cheap questions a controller asks a repository between runs: "has
//! the revision an app follows moved?" ([`Sources::poll`]: one ref lookup —
//! a read of the local refs, or one `ls-remote` for a remote, no fetch) and
//! "which files did a new commit change?" ([`Sources::changed_paths`]: a
//! tree-to-tree diff of two commits already in the local repository or
//! mirror).
//!
//! The fingerprint of a revision from an `ls-remote` answer is a pure
//! function ([`fingerprint`]) so it is tested without a server. Remote
//! lookups are `remote::ls_remote_as`, with the same credentials and host
//! key checks as fetches.

use git2::{Oid, Repository};
use sha2::{Digest, Sha256};

use crate::model::RevisionSpec;

use super::SourceError;

/// What a poll found: an opaque token that changes when the revision moves
/// (a commit id for branches, tags and HEAD; a digest over every tag for
/// `tag:latest`, whose choice needs the commit graph).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub String);

impl std::fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.chars().take(12).collect::<String>())
    }
}

/// The fingerprint of `spec` in the refs a remote advertised (`(name,
/// oid)`, peeled tags as `refs/tags/X^{}`). `None` when the revision names
/// nothing there.
pub fn fingerprint(refs: &[(String, String)], spec: Option<&RevisionSpec>) -> Option<Fingerprint> {
    let find = |name: &str| {
        refs.iter()
            .find(|(n, _)| n == name)
            .map(|(_, oid)| oid.clone())
    };
    let tag =
        |t: &str| find(&format!("refs/tags/{t}^{{}}")).or_else(|| find(&format!("refs/tags/{t}")));
    let found = match spec {
        None | Some(RevisionSpec::Head) => find("HEAD"),
        Some(RevisionSpec::Branch(b)) => find(&format!("refs/heads/{b}")),
        Some(RevisionSpec::Tag(t)) => tag(t),
        Some(RevisionSpec::Commit(c)) => Some(c.clone()),
        Some(RevisionSpec::Plain(p)) if p == "HEAD" => find("HEAD"),
        Some(RevisionSpec::Plain(p)) => find(&format!("refs/heads/{p}"))
            .or_else(|| tag(p))
            .or_else(|| Some(p.clone())),
        Some(RevisionSpec::LatestTag) => {
            let mut h = Sha256::new();
            for (n, oid) in refs
                .iter()
                .filter(|(n, _)| n == "HEAD" || n.starts_with("refs/tags/"))
            {
                h.update(n.as_bytes());
                h.update(b"=");
                h.update(oid.as_bytes());
                h.update(b"\n");
            }
            Some(format!("tags:{}", hex::encode(h.finalize())))
        }
    };
    found.map(Fingerprint)
}

/// Resolves `spec` in a local repository (reads refs only).
pub(crate) fn poll_local(
    dir: &std::path::Path,
    name: &str,
    spec: Option<&RevisionSpec>,
) -> Result<Fingerprint, SourceError> {
    let repo = Repository::open(dir).map_err(|e| SourceError::git(name, &e))?;
    let spec = spec.cloned().unwrap_or(RevisionSpec::Head);
    let oid = super::revision::resolve(&repo, name, &spec)?;
    Ok(Fingerprint(oid.to_string()))
}

/// Paths (repository-relative, `/`-separated) that differ between commits
/// `old` and `new` of `repo`, both sides of renames included.
pub(crate) fn diff_paths(
    repo: &Repository,
    name: &str,
    old: &str,
    new: &str,
) -> Result<Vec<String>, SourceError> {
    let git = |e: git2::Error| SourceError::git(name, &e);
    let tree = |sha: &str| -> Result<git2::Tree<'_>, SourceError> {
        let oid = Oid::from_str(sha).map_err(git)?;
        repo.find_commit(oid).and_then(|c| c.tree()).map_err(git)
    };
    let (a, b) = (tree(old)?, tree(new)?);
    let diff = repo
        .diff_tree_to_tree(Some(&a), Some(&b), None)
        .map_err(git)?;
    let mut out = Vec::new();
    for d in diff.deltas() {
        for f in [d.old_file(), d.new_file()] {
            if let Some(p) = f.path().and_then(|p| p.to_str()) {
                if !out.iter().any(|o| o == p) {
                    out.push(p.to_string());
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs() -> Vec<(String, String)> {
        [
            ("HEAD", "aaa"),
            ("refs/heads/main", "aaa"),
            ("refs/heads/dev", "bbb"),
            ("refs/tags/v1", "t1"),
            ("refs/tags/v1^{}", "c1"),
            ("refs/tags/v2", "c2"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
    }

    #[test]
    fn fingerprints_follow_the_revision() {
        let r = refs();
        let fp = |s: Option<RevisionSpec>| fingerprint(&r, s.as_ref()).map(|f| f.0);
        assert_eq!(fp(None).as_deref(), Some("aaa"));
        assert_eq!(
            fp(Some(RevisionSpec::Branch("dev".into()))).as_deref(),
            Some("bbb")
        );
        assert_eq!(
            fp(Some(RevisionSpec::Tag("v1".into()))).as_deref(),
            Some("c1"),
            "annotated tags are peeled"
        );
        assert_eq!(
            fp(Some(RevisionSpec::Tag("v2".into()))).as_deref(),
            Some("c2")
        );
        assert_eq!(
            fp(Some(RevisionSpec::Plain("dev".into()))).as_deref(),
            Some("bbb")
        );
        assert_eq!(fp(Some(RevisionSpec::Branch("gone".into()))), None);
        let latest = fp(Some(RevisionSpec::LatestTag)).unwrap();
        let mut moved = refs();
        moved.push(("refs/tags/v3".into(), "c3".into()));
        assert_ne!(
            fingerprint(&moved, Some(&RevisionSpec::LatestTag))
                .unwrap()
                .0,
            latest
        );
        // A push to another branch moves nothing a HEAD follower sees.
        let mut other = refs();
        other[2].1 = "zzz".into();
        assert_eq!(fingerprint(&other, None).unwrap().0, "aaa");
    }
}
