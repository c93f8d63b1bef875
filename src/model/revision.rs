use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Which revision of a repository an application follows (the seeds'
/// `VERSION_MODE`): `branch:X`, `tag:X`, `tag:latest`, `commit:SHA`, or a plain
/// name (`main`, `v1.2`, `HEAD`, a SHA) resolved as branch, then tag, then commit.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum RevisionSpec {
    /// The checked-out `HEAD` (for a remote: its default branch).
    Head,
    Branch(String),
    Tag(String),
    /// The most recent tag on a commit reachable from the default branch.
    LatestTag,
    /// A full or abbreviated commit id.
    Commit(String),
    /// A bare name: branch, then tag, then commit.
    Plain(String),
}

impl RevisionSpec {
    /// Whether this names something that never moves (a commit or a named tag).
    pub fn is_pinned(&self) -> bool {
        matches!(self, RevisionSpec::Commit(_) | RevisionSpec::Tag(_))
    }
}

impl FromStr for RevisionSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let nonempty = |mode: &str, v: &str| -> Result<String, String> {
            if v.is_empty() {
                Err(format!("\"{mode}:\" needs a name after the colon"))
            } else {
                Ok(v.to_string())
            }
        };
        if s.is_empty() || s == "HEAD" {
            return Ok(RevisionSpec::Head);
        }
        if let Some(v) = s.strip_prefix("branch:") {
            return Ok(RevisionSpec::Branch(nonempty("branch", v)?));
        }
        if let Some(v) = s.strip_prefix("tag:") {
            if v == "latest" {
                return Ok(RevisionSpec::LatestTag);
            }
            return Ok(RevisionSpec::Tag(nonempty("tag", v)?));
        }
        if let Some(v) = s.strip_prefix("commit:") {
            let v = nonempty("commit", v)?;
            if v.len() < 4 || v.len() > 40 || !v.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(format!(
                    "\"commit:{v}\": a commit is 4 to 40 hexadecimal characters"
                ));
            }
            return Ok(RevisionSpec::Commit(v.to_ascii_lowercase()));
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("\"{s}\" is not a valid revision name"));
        }
        Ok(RevisionSpec::Plain(s.to_string()))
    }
}

impl TryFrom<String> for RevisionSpec {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<RevisionSpec> for String {
    fn from(r: RevisionSpec) -> String {
        r.to_string()
    }
}

impl fmt::Display for RevisionSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RevisionSpec::Head => f.write_str("HEAD"),
            RevisionSpec::Branch(b) => write!(f, "branch:{b}"),
            RevisionSpec::Tag(t) => write!(f, "tag:{t}"),
            RevisionSpec::LatestTag => f.write_str("tag:latest"),
            RevisionSpec::Commit(c) => write!(f, "commit:{c}"),
            RevisionSpec::Plain(p) => f.write_str(p),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_mode() {
        let cases = [
            ("", RevisionSpec::Head),
            ("HEAD", RevisionSpec::Head),
            ("branch:main", RevisionSpec::Branch("main".into())),
            ("tag:v1.2", RevisionSpec::Tag("v1.2".into())),
            ("tag:latest", RevisionSpec::LatestTag),
            ("commit:ABCDEF1", RevisionSpec::Commit("abcdef1".into())),
            ("main", RevisionSpec::Plain("main".into())),
            ("v1.2", RevisionSpec::Plain("v1.2".into())),
        ];
        for (input, want) in cases {
            assert_eq!(input.parse::<RevisionSpec>().unwrap(), want, "{input}");
        }
    }

    #[test]
    fn rejects_bad_revisions() {
        for bad in ["branch:", "tag:", "commit:xyz", "commit:12", "two words"] {
            let err = bad.parse::<RevisionSpec>().unwrap_err();
            assert!(!err.is_empty(), "{bad}");
        }
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "HEAD",
            "branch:dev",
            "tag:v1",
            "tag:latest",
            "commit:abcd",
            "main",
        ] {
            let r: RevisionSpec = s.parse().unwrap();
            assert_eq!(r.to_string(), s);
            assert_eq!(r.to_string().parse::<RevisionSpec>().unwrap(), r);
        }
    }
}
