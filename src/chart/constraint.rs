//! Chart versions and version constraints, as Helm reads them (the
//! Masterminds semver v3 rules `helm pull --version` and `Chart.yaml`
//! dependencies use): `1.2.3`, `1.2.x`, `1.2`, `*`, `>=1.0 <2`,
//! `>=1.0, <2`, `^1.2`, `~1.2.3`, `1.2 - 1.4`, alternatives with `||`.
//!
//! Pure: parsing and matching only. A version with a prerelease (`1.2.0-rc.1`)
//! matches only a constraint that itself names a prerelease, as in Helm.

use std::cmp::Ordering;
use std::fmt;

/// A chart version: `MAJOR[.MINOR[.PATCH]][-PRE][+BUILD]`, a leading `v` allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    inner: semver::Version,
    /// As written (what index.yaml and tags carry).
    original: String,
}

impl Version {
    pub fn parse(text: &str) -> Option<Version> {
        let (core, rest) = split_core(text.trim())?;
        let parts: Vec<&str> = core.split('.').collect();
        if parts.is_empty() || parts.len() > 3 || parts.iter().any(|p| !is_number(p)) {
            return None;
        }
        let mut full = parts.join(".");
        for _ in parts.len()..3 {
            full.push_str(".0");
        }
        full.push_str(rest);
        Some(Version {
            inner: semver::Version::parse(&full).ok()?,
            original: text.trim().to_string(),
        })
    }

    pub fn is_prerelease(&self) -> bool {
        !self.inner.pre.is_empty()
    }

    /// The version as written.
    pub fn as_str(&self) -> &str {
        &self.original
    }

    fn triple(&self) -> (u64, u64, u64) {
        (self.inner.major, self.inner.minor, self.inner.patch)
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Version {
    /// Semver precedence (build metadata ignored, then compared as text so
    /// the order is total).
    fn cmp(&self, other: &Self) -> Ordering {
        self.inner
            .cmp_precedence(&other.inner)
            .then_with(|| self.inner.build.cmp(&other.inner.build))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.original)
    }
}

/// `v1.2.3-rc.1+b` → (`1.2.3`, `-rc.1+b`).
fn split_core(text: &str) -> Option<(&str, &str)> {
    let t = text.strip_prefix('v').unwrap_or(text);
    if t.is_empty() {
        return None;
    }
    let cut = t.find(['-', '+']).unwrap_or(t.len());
    Some((&t[..cut], &t[cut..]))
}

fn is_number(p: &str) -> bool {
    !p.is_empty() && p.len() <= 19 && p.bytes().all(|b| b.is_ascii_digit())
}

fn is_wild(p: &str) -> bool {
    matches!(p, "x" | "X" | "*")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Tilde,
    Caret,
}

/// One comparison: an operator and a possibly partial version (`1.2` has
/// `given = 2` parts; `1.2.x` too).
#[derive(Debug, Clone)]
struct Comparison {
    op: Op,
    version: Version,
    /// How many leading parts were given (0 for `*`): the rest are wildcards.
    given: usize,
}

impl Comparison {
    fn parse(text: &str) -> Result<Comparison, String> {
        let t = text.trim();
        let (op, rest) = [
            (">=", Op::Ge),
            ("=>", Op::Ge),
            ("<=", Op::Le),
            ("=<", Op::Le),
            ("!=", Op::Ne),
            ("~>", Op::Tilde),
            (">", Op::Gt),
            ("<", Op::Lt),
            ("=", Op::Eq),
            ("~", Op::Tilde),
            ("^", Op::Caret),
        ]
        .iter()
        .find_map(|(p, op)| t.strip_prefix(p).map(|r| (*op, r.trim())))
        .unwrap_or((Op::Eq, t));
        let bad = || format!("\"{text}\" is not a version or version constraint");
        let (core, tail) = split_core(rest).ok_or_else(bad)?;
        let parts: Vec<&str> = core.split('.').collect();
        if parts.len() > 3 {
            return Err(bad());
        }
        let mut given = 0;
        for p in &parts {
            if is_wild(p) {
                break;
            }
            if !is_number(p) {
                return Err(bad());
            }
            given += 1;
        }
        if parts[given..].iter().any(|p| !is_wild(p)) {
            return Err(bad());
        }
        let mut nums: Vec<&str> = parts[..given].to_vec();
        nums.resize(3, "0");
        let tail = if given < 3 { "" } else { tail };
        let version = Version::parse(&format!("{}{tail}", nums.join("."))).ok_or_else(bad)?;
        Ok(Comparison { op, version, given })
    }

    fn matches(&self, v: &Version) -> bool {
        let c = &self.version;
        let (vm, vn, vp) = v.triple();
        let (cm, cn, _) = c.triple();
        // The upper bound of the wildcard range (exclusive), e.g. 1.2.x → 1.3.0.
        let wild_upper = || -> Option<(u64, u64, u64)> {
            match self.given {
                0 => None,
                1 => Some((cm + 1, 0, 0)),
                2 => Some((cm, cn + 1, 0)),
                _ => None,
            }
        };
        let below = |upper: (u64, u64, u64)| (vm, vn, vp) < upper;
        match self.op {
            Op::Eq | Op::Ne => {
                let eq = match self.given {
                    0 => true,
                    3 => v.cmp(c) == Ordering::Equal,
                    _ => v >= c && wild_upper().map(below).unwrap_or(true),
                };
                eq == (self.op == Op::Eq)
            }
            Op::Gt => match self.given {
                0 => false,
                3 => v > c,
                _ => wild_upper().map(|u| !below(u)).unwrap_or(false),
            },
            Op::Ge => v >= c,
            Op::Lt => v < c,
            Op::Le => match self.given {
                0 => true,
                3 => v <= c,
                _ => wild_upper().map(below).unwrap_or(true),
            },
            Op::Tilde => {
                let upper = match self.given {
                    0 => return true,
                    1 => (cm + 1, 0, 0),
                    _ => (cm, cn + 1, 0),
                };
                v >= c && below(upper)
            }
            Op::Caret => {
                let (_, _, cp) = c.triple();
                let upper = match (self.given, cm, cn) {
                    (0, ..) => return true,
                    (_, m, _) if m > 0 => (m + 1, 0, 0),
                    (1, 0, _) => (1, 0, 0),
                    (2, 0, n) => (0, n + 1, 0),
                    (_, 0, n) if n > 0 => (0, n + 1, 0),
                    _ => (0, 0, cp + 1),
                };
                v >= c && below(upper)
            }
        }
    }
}

/// A parsed constraint: alternatives (`||`) of conjunctions.
#[derive(Debug, Clone)]
pub struct Constraint {
    text: String,
    any_of: Vec<Vec<Comparison>>,
}

impl Constraint {
    /// Parses a constraint; an empty text means "any non-prerelease version".
    pub fn parse(text: &str) -> Result<Constraint, String> {
        let trimmed = text.trim();
        let mut any_of = Vec::new();
        let source = if trimmed.is_empty() { "*" } else { trimmed };
        for alt in source.split("||") {
            let mut all = Vec::new();
            let alt = alt.trim();
            // A hyphen range `1.2 - 1.4.5` is `>=1.2 <=1.4.5`.
            if let Some((lo, hi)) = alt.split_once(" - ") {
                all.push(Comparison::parse(&format!(">={}", lo.trim()))?);
                all.push(Comparison::parse(&format!("<={}", hi.trim()))?);
                any_of.push(all);
                continue;
            }
            // Operators may be separated from their version by spaces
            // (`>= 1.0`): glue them back before splitting on spaces.
            let mut tokens: Vec<String> = Vec::new();
            for tok in alt.split([',', ' ']).filter(|t| !t.is_empty()) {
                match tokens.last_mut() {
                    Some(last) if last.chars().all(|c| "<>=!~^".contains(c)) => last.push_str(tok),
                    _ => tokens.push(tok.to_string()),
                }
            }
            if tokens.is_empty() {
                return Err(format!("\"{text}\" has an empty alternative"));
            }
            for tok in tokens {
                all.push(Comparison::parse(&tok)?);
            }
            any_of.push(all);
        }
        Ok(Constraint {
            text: trimmed.to_string(),
            any_of,
        })
    }

    /// Whether `v` satisfies the constraint.
    pub fn matches(&self, v: &Version) -> bool {
        self.any_of.iter().any(|all| {
            let allows_pre = all
                .iter()
                .any(|c| c.version.is_prerelease() && c.version.triple() == v.triple());
            (!v.is_prerelease() || allows_pre) && all.iter().all(|c| c.matches(v))
        })
    }

    /// The exact version this constraint names, if it names exactly one
    /// (`1.2.3` or `=1.2.3`): a registry can be asked for it by tag.
    pub fn exact(&self) -> Option<&Version> {
        match self.any_of.as_slice() {
            [all] => match all.as_slice() {
                [c] if c.op == Op::Eq && c.given == 3 => Some(&c.version),
                _ => None,
            },
            _ => None,
        }
    }

    /// The highest of `versions` that satisfies the constraint.
    pub fn best<'a, I: IntoIterator<Item = &'a Version>>(
        &self,
        versions: I,
    ) -> Option<&'a Version> {
        versions.into_iter().filter(|v| self.matches(v)).max()
    }
}

impl fmt::Display for Constraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.text.is_empty() {
            f.write_str("(latest)")
        } else {
            f.write_str(&self.text)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(c: &str, v: &str) -> bool {
        Constraint::parse(c)
            .unwrap()
            .matches(&Version::parse(v).unwrap())
    }

    #[test]
    fn helm_constraint_table() {
        let cases: &[(&str, &str, bool)] = &[
            ("1.2.3", "1.2.3", true),
            ("1.2.3", "1.2.4", false),
            ("=1.2.3", "v1.2.3", true),
            ("1.2.x", "1.2.9", true),
            ("1.2.x", "1.3.0", false),
            ("1.2", "1.2.7", true),
            ("1.2", "1.3.0", false),
            ("1", "1.9.0", true),
            ("*", "0.0.1", true),
            ("*", "1.0.0-rc.1", false),
            ("", "3.1.4", true),
            (">=1.0 <2", "1.9.9", true),
            (">=1.0 <2", "2.0.0", false),
            (">=1.0, <2", "0.9.0", false),
            (">= 1.0 < 2", "1.5.0", true),
            ("^1.2", "1.9.0", true),
            ("^1.2", "2.0.0", false),
            ("^0.2.3", "0.2.9", true),
            ("^0.2.3", "0.3.0", false),
            ("^0.0.3", "0.0.4", false),
            ("~1.2.3", "1.2.9", true),
            ("~1.2.3", "1.3.0", false),
            ("~1", "1.9.0", true),
            ("~1", "2.0.0", false),
            ("1.2 - 1.4.5", "1.4.5", true),
            ("1.2 - 1.4.5", "1.4.6", false),
            ("<1.0 || >=3", "3.1.0", true),
            ("<1.0 || >=3", "2.0.0", false),
            (">1.2", "1.2.9", false),
            (">1.2", "1.3.0", true),
            ("<=1.2", "1.2.9", true),
            ("!=1.2.3", "1.2.4", true),
            (">=1.0.0-0", "1.0.0-rc.1", true),
            (">=1.0.0-rc.1", "1.0.0-rc.2", true),
            ("1.0.0", "1.0.0-rc.1", false),
        ];
        for (c, v, want) in cases {
            assert_eq!(m(c, v), *want, "constraint {c:?} on {v}");
        }
    }

    #[test]
    fn bad_constraints_are_refused() {
        for c in ["1.2.3.4", "latest", ">=", "1.x.3", "a - b"] {
            assert!(Constraint::parse(c).is_err(), "{c}");
        }
    }

    #[test]
    fn best_is_the_highest_match_and_exact_is_recognised() {
        let vs: Vec<Version> = ["1.0.0", "1.2.0", "1.10.0", "2.0.0", "1.11.0-rc.1"]
            .iter()
            .map(|v| Version::parse(v).unwrap())
            .collect();
        let c = Constraint::parse("1.x").unwrap();
        assert_eq!(c.best(&vs).unwrap().as_str(), "1.10.0");
        assert!(c.exact().is_none());
        assert_eq!(
            Constraint::parse("=2.0.0")
                .unwrap()
                .exact()
                .unwrap()
                .as_str(),
            "2.0.0"
        );
        assert!(Constraint::parse("3.x").unwrap().best(&vs).is_none());
    }
}
