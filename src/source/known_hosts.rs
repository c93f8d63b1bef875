//! OpenSSH `known_hosts` files: parsing (plain and hashed host names,
//! `[host]:port`, `*`/`?` patterns and `!` negations, `@revoked`) and the
//! verdict on a server's host key. Pure; the file is read by the caller.
//!
//! `@cert-authority` lines are skipped (host certificates are not checked):
//! a host known only through a CA is reported unknown.

use base64::Engine;

/// What the file says about a host key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostKeyVerdict {
    /// A line lists this host with exactly this key.
    Trusted,
    /// The host is listed, but not with this key (`known` are the key
    /// types it is listed with).
    Mismatch { known: Vec<String> },
    /// The key is marked `@revoked`.
    Revoked,
    /// The host is not listed at all.
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Hosts {
    /// Comma-separated patterns, each possibly negated with `!`.
    Patterns(Vec<String>),
    /// `|1|base64(salt)|base64(HMAC-SHA1(salt, name))`.
    Hashed { salt: Vec<u8>, hash: Vec<u8> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Line {
    revoked: bool,
    hosts: Hosts,
    key_type: String,
    key: Vec<u8>,
}

/// A parsed `known_hosts` file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KnownHosts {
    lines: Vec<Line>,
}

impl KnownHosts {
    /// Parses the text of a `known_hosts` file; lines it cannot read
    /// (comments, `@cert-authority`, garbage) are skipped, as ssh does.
    pub fn parse(text: &str) -> Self {
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut lines = Vec::new();
        for raw in text.lines() {
            let raw = raw.trim();
            if raw.is_empty() || raw.starts_with('#') {
                continue;
            }
            let mut fields = raw.split_whitespace();
            let mut first = fields.next().unwrap_or_default();
            let mut revoked = false;
            if first.starts_with('@') {
                match first {
                    "@revoked" => revoked = true,
                    _ => continue, // @cert-authority: not supported
                }
                first = fields.next().unwrap_or_default();
            }
            let (Some(key_type), Some(key)) = (fields.next(), fields.next()) else {
                continue;
            };
            let Ok(key) = b64.decode(key) else {
                continue;
            };
            let hosts = if let Some(h) = first.strip_prefix("|1|") {
                let Some((salt, hash)) = h.split_once('|') else {
                    continue;
                };
                match (b64.decode(salt), b64.decode(hash)) {
                    (Ok(salt), Ok(hash)) => Hosts::Hashed { salt, hash },
                    _ => continue,
                }
            } else {
                Hosts::Patterns(first.split(',').map(str::to_string).collect())
            };
            lines.push(Line {
                revoked,
                hosts,
                key_type: key_type.to_string(),
                key,
            });
        }
        KnownHosts { lines }
    }

    /// The verdict on `key` (raw blob, as in the file after base64) of type
    /// `key_type` offered by `host` on `port`.
    pub fn check(&self, host: &str, port: u16, key_type: &str, key: &[u8]) -> HostKeyVerdict {
        let name = host_name(host, port);
        let mut known = Vec::new();
        let mut trusted = false;
        for line in self.lines.iter().filter(|l| l.matches(&name)) {
            let same = line.key_type == key_type && line.key == key;
            if line.revoked {
                if same {
                    return HostKeyVerdict::Revoked;
                }
                continue;
            }
            if same {
                trusted = true;
            } else if !known.contains(&line.key_type) {
                known.push(line.key_type.clone());
            }
        }
        // A revoked key anywhere for any host is revoked (OpenSSH's rule).
        if self
            .lines
            .iter()
            .any(|l| l.revoked && l.key_type == key_type && l.key == key)
        {
            return HostKeyVerdict::Revoked;
        }
        match (trusted, known.is_empty()) {
            (true, _) => HostKeyVerdict::Trusted,
            (false, false) => HostKeyVerdict::Mismatch { known },
            (false, true) => HostKeyVerdict::Unknown,
        }
    }
}

/// How `known_hosts` names a host: `host`, or `[host]:port` off port 22.
pub fn host_name(host: &str, port: u16) -> String {
    let host = host.to_ascii_lowercase();
    if port == 22 {
        host
    } else {
        format!("[{host}]:{port}")
    }
}

impl Line {
    fn matches(&self, name: &str) -> bool {
        match &self.hosts {
            Hosts::Hashed { salt, hash } => {
                let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, salt);
                ring::hmac::verify(&key, name.as_bytes(), hash).is_ok()
            }
            Hosts::Patterns(patterns) => {
                let mut hit = false;
                for p in patterns {
                    if let Some(neg) = p.strip_prefix('!') {
                        if glob(&neg.to_ascii_lowercase(), name) {
                            return false;
                        }
                    } else if glob(&p.to_ascii_lowercase(), name) {
                        hit = true;
                    }
                }
                hit
            }
        }
    }
}

/// `*` (any run) and `?` (one character) matching, as ssh's host patterns.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIB0aLpT2qk0p3pI0l1mD3v1x0i0b3n2qj8mGvK7zPq9A";
    const KEY_B: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIHh0dHBzOi8vZXhhbXBsZS5jb20vbm90LWEta2V5IQ==";

    fn raw(b64: &str) -> Vec<u8> {
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap()
    }

    fn hashed(name: &str, salt: &[u8]) -> String {
        let b64 = base64::engine::general_purpose::STANDARD;
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, salt);
        let tag = ring::hmac::sign(&key, name.as_bytes());
        format!("|1|{}|{}", b64.encode(salt), b64.encode(tag.as_ref()))
    }

    #[test]
    fn verdicts() {
        let text = format!(
            "# comment\n\
             git.example.com,10.0.0.1 ssh-ed25519 {KEY_A}\n\
             [git.example.com]:2222 ssh-ed25519 {KEY_B}\n\
             {} ssh-ed25519 {KEY_A}\n\
             *.corp.example,!bad.corp.example ssh-ed25519 {KEY_A}\n\
             @cert-authority *.ca.example ssh-ed25519 {KEY_A}\n\
             @revoked * ssh-ed25519 {KEY_B}\n\
             not a valid line\n",
            hashed("[hashed.example]:2200", b"saltsaltsaltsaltsalt")
        );
        let kh = KnownHosts::parse(&text);
        let (a, b) = (raw(KEY_A), raw(KEY_B));
        let ed = "ssh-ed25519";
        let cases = [
            ("git.example.com", 22, ed, &a, HostKeyVerdict::Trusted),
            ("GIT.example.com", 22, ed, &a, HostKeyVerdict::Trusted),
            ("10.0.0.1", 22, ed, &a, HostKeyVerdict::Trusted),
            (
                "git.example.com",
                2222,
                ed,
                &a,
                HostKeyVerdict::Mismatch {
                    known: vec![ed.into()],
                },
            ),
            ("git.example.com", 2222, ed, &b, HostKeyVerdict::Revoked),
            ("hashed.example", 2200, ed, &a, HostKeyVerdict::Trusted),
            ("hashed.example", 22, ed, &a, HostKeyVerdict::Unknown),
            ("x.corp.example", 22, ed, &a, HostKeyVerdict::Trusted),
            ("bad.corp.example", 22, ed, &a, HostKeyVerdict::Unknown),
            ("h.ca.example", 22, ed, &a, HostKeyVerdict::Unknown),
            ("other.example", 22, ed, &a, HostKeyVerdict::Unknown),
            (
                "git.example.com",
                22,
                "ssh-rsa",
                &a,
                HostKeyVerdict::Mismatch {
                    known: vec![ed.into()],
                },
            ),
        ];
        for (host, port, ty, key, want) in cases {
            assert_eq!(kh.check(host, port, ty, key), want, "{host}:{port} {ty}");
        }
    }

    #[test]
    fn globs() {
        assert!(glob("*.example.com", "a.example.com"));
        assert!(glob("host?", "host1"));
        assert!(!glob("host?", "host12"));
        assert!(glob("*", ""));
        assert!(!glob("a*b", "acd"));
    }
}
