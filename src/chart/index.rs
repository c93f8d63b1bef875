//! A chart repository's `index.yaml`: which versions of which charts it
//! holds, where their archives are and their digests. Pure: parsing, the
//! version choice and URL resolution.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::constraint::{Constraint, Version};

/// The most an `index.yaml` may weigh (large public repositories reach tens of MiB).
pub const MAX_INDEX_BYTES: u64 = 128 * 1024 * 1024;

#[derive(Debug, Deserialize)]
struct RawIndex {
    #[serde(default)]
    entries: BTreeMap<String, Option<Vec<RawEntry>>>,
}

#[derive(Debug, Clone, Deserialize)]
struct RawEntry {
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    urls: Vec<String>,
    #[serde(default)]
    digest: Option<String>,
}

/// A repository index.
#[derive(Debug, Clone)]
pub struct Index {
    entries: BTreeMap<String, Vec<Entry>>,
}

/// One version of one chart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub version: Version,
    /// As written: relative to the repository URL, or absolute.
    pub urls: Vec<String>,
    /// sha256 of the archive, hex, when the index gives one.
    pub digest: Option<String>,
}

/// Why no version could be chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Missing {
    /// The index does not list the chart at all.
    Chart,
    /// No listed version satisfies the constraint; the versions listed, highest first (at most 10).
    Version(Vec<String>),
}

impl Index {
    pub fn parse(text: &[u8]) -> Result<Index, String> {
        let raw: RawIndex = serde_yaml::from_slice(text).map_err(|e| e.to_string())?;
        let mut entries = BTreeMap::new();
        for (name, list) in raw.entries {
            let mut out = Vec::new();
            for e in list.unwrap_or_default() {
                // An entry whose version is not semver cannot be chosen by a constraint.
                let Some(version) = e.version.as_deref().and_then(Version::parse) else {
                    continue;
                };
                out.push(Entry {
                    version,
                    urls: e.urls,
                    digest: e.digest.filter(|d| !d.is_empty()),
                });
            }
            entries.insert(name, out);
        }
        Ok(Index { entries })
    }

    /// The highest version of `chart` satisfying `constraint`.
    pub fn choose(&self, chart: &str, constraint: &Constraint) -> Result<&Entry, Missing> {
        let list = self.entries.get(chart).ok_or(Missing::Chart)?;
        list.iter()
            .filter(|e| constraint.matches(&e.version))
            .max_by(|a, b| a.version.cmp(&b.version))
            .ok_or_else(|| {
                let mut vs: Vec<&Version> = list.iter().map(|e| &e.version).collect();
                vs.sort();
                vs.reverse();
                Missing::Version(vs.iter().take(10).map(|v| v.to_string()).collect())
            })
    }
}

/// Resolves an entry URL against the repository URL: absolute URLs are kept,
/// relative ones are joined onto the repository's base.
pub fn resolve_url(repo_url: &str, entry_url: &str) -> String {
    if entry_url.contains("://") {
        return entry_url.to_string();
    }
    let base = format!("{}/", repo_url.trim_end_matches('/'));
    match url::Url::parse(&base).and_then(|b| b.join(entry_url)) {
        Ok(u) => u.to_string(),
        Err(_) => format!("{base}{}", entry_url.trim_start_matches('/')),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INDEX: &str = r#"
apiVersion: v1
entries:
  web:
  - version: 1.0.0
    urls: [web-1.0.0.tgz]
    digest: aa
  - version: 1.2.0
    urls: [https://cdn.example.com/web-1.2.0.tgz]
    digest: bb
  - version: 2.0.0-rc.1
    urls: [web-2.0.0-rc.1.tgz]
  - version: not-semver
    urls: [x.tgz]
  empty:
generated: "2024-01-01T00:00:00Z"
"#;

    #[test]
    fn chooses_the_highest_matching_version() {
        let idx = Index::parse(INDEX.as_bytes()).unwrap();
        let e = idx.choose("web", &Constraint::parse("").unwrap()).unwrap();
        assert_eq!(e.version.as_str(), "1.2.0");
        assert_eq!(e.digest.as_deref(), Some("bb"));
        let e = idx
            .choose("web", &Constraint::parse("1.0.x").unwrap())
            .unwrap();
        assert_eq!(e.urls, vec!["web-1.0.0.tgz"]);
        assert_eq!(
            idx.choose("web", &Constraint::parse("3.x").unwrap()),
            Err(Missing::Version(vec![
                "2.0.0-rc.1".into(),
                "1.2.0".into(),
                "1.0.0".into()
            ]))
        );
        assert_eq!(
            idx.choose("nope", &Constraint::parse("").unwrap()),
            Err(Missing::Chart)
        );
        assert!(matches!(
            idx.choose("empty", &Constraint::parse("").unwrap()),
            Err(Missing::Version(v)) if v.is_empty()
        ));
    }

    #[test]
    fn urls_resolve_against_the_repository() {
        assert_eq!(
            resolve_url("https://h/charts", "web-1.0.0.tgz"),
            "https://h/charts/web-1.0.0.tgz"
        );
        assert_eq!(
            resolve_url("https://h/charts/", "sub/web.tgz"),
            "https://h/charts/sub/web.tgz"
        );
        assert_eq!(
            resolve_url("https://h/c", "https://o/x.tgz"),
            "https://o/x.tgz"
        );
    }
}
