//! Image references as docker reads them, pure: `nginx`, `nginx:1.25`,
//! `ghcr.io/org/app:v1`, `registry:5000/app@sha256:…`,
//! `app:v1@sha256:…`. Owns the normalisation rules (a first path component
//! with a `.` or `:`, or `localhost`, names a registry; otherwise the image
//! is on Docker Hub, `docker.io`, whose API host is `registry-1.docker.io`,
//! and a one-component name lives under `library/`), the default tag
//! (`latest`), digests, and the pin (`<image as written>@<digest>`). It does
//! not talk to registries (`registry`) or clusters (`sync`).

use std::fmt;

/// Docker Hub's name in references.
pub const DOCKER_HUB: &str = "docker.io";
/// Docker Hub's registry API host.
pub const DOCKER_HUB_API: &str = "registry-1.docker.io";

/// A content digest: `sha256:<64 lowercase hex>` (or another algorithm with
/// its hex encoding, as the OCI spec allows).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct Digest(String);

impl Digest {
    /// Parses `algorithm:hex`. sha256 must have 64 hex digits, sha512 128.
    pub fn parse(s: &str) -> Result<Digest, ReferenceError> {
        let bad = || ReferenceError::BadDigest(s.to_string());
        let (alg, hex) = s.split_once(':').ok_or_else(bad)?;
        let len_ok = match alg {
            "sha256" => hex.len() == 64,
            "sha512" => hex.len() == 128,
            _ => false,
        };
        if !len_ok
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(bad());
        }
        Ok(Digest(s.to_string()))
    }

    /// The sha256 digest of `bytes`.
    pub fn sha256_of(bytes: &[u8]) -> Digest {
        use sha2::Digest as _;
        Digest(format!(
            "sha256:{}",
            hex::encode(sha2::Sha256::digest(bytes))
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first 12 hex digits, for humans (`sha256:0123456789ab`).
    pub fn short(&self) -> &str {
        let end = self.0.find(':').map_or(0, |i| i + 1) + 12;
        &self.0[..end.min(self.0.len())]
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a string is not an image reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("empty image reference")]
    Empty,
    #[error("invalid digest \"{0}\" (expected sha256:<64 hex digits>)")]
    BadDigest(String),
    #[error("invalid tag \"{0}\"")]
    BadTag(String),
    #[error("invalid repository name \"{0}\" (lowercase letters, digits and . _ - separators)")]
    BadRepository(String),
    #[error("invalid registry \"{0}\"")]
    BadRegistry(String),
}

/// A parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// The reference exactly as written (`nginx:1.25`).
    pub original: String,
    /// The registry as docker names it (`docker.io`, `ghcr.io`, `127.0.0.1:5000`).
    pub registry: String,
    /// The repository path inside the registry (`library/nginx`).
    pub repository: String,
    /// The tag as written; `None` when only a digest was given or no tag at
    /// all (see [`Reference::tag_or_latest`]).
    pub tag: Option<String>,
    /// The digest as written, if any.
    pub digest: Option<Digest>,
}

impl Reference {
    /// Parses a reference the way docker does.
    pub fn parse(s: &str) -> Result<Reference, ReferenceError> {
        let original = s.to_string();
        let s = s.trim();
        if s.is_empty() {
            return Err(ReferenceError::Empty);
        }
        let (name_tag, digest) = match s.split_once('@') {
            Some((n, d)) => (n, Some(Digest::parse(d)?)),
            None => (s, None),
        };
        let last_slash = name_tag.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name_tag[last_slash..].rfind(':') {
            Some(c) => (
                &name_tag[..last_slash + c],
                Some(name_tag[last_slash + c + 1..].to_string()),
            ),
            None => (name_tag, None),
        };
        if let Some(t) = &tag {
            if !valid_tag(t) {
                return Err(ReferenceError::BadTag(t.clone()));
            }
        }
        let (registry, path) = match name.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), rest.to_string())
            }
            _ => (DOCKER_HUB.to_string(), name.to_string()),
        };
        let registry = match registry.as_str() {
            "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB.to_string(),
            _ => registry,
        };
        if !valid_registry(&registry) {
            return Err(ReferenceError::BadRegistry(registry));
        }
        let repository = if registry == DOCKER_HUB && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        if !valid_repository(&repository) {
            return Err(ReferenceError::BadRepository(name.to_string()));
        }
        Ok(Reference {
            original,
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// The tag to resolve: the written one, else `latest` when no digest was
    /// written (docker's default); `None` for a digest-only reference.
    pub fn tag_or_latest(&self) -> Option<&str> {
        match (&self.tag, &self.digest) {
            (Some(t), _) => Some(t),
            (None, None) => Some("latest"),
            (None, Some(_)) => None,
        }
    }

    /// The host the registry API is served from (`registry-1.docker.io`
    /// for Docker Hub).
    pub fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            &self.registry
        }
    }

    /// The reference as written, without its digest (`app:v1@sha256:…` →
    /// `app:v1`).
    pub fn without_digest(&self) -> &str {
        let s = self.original.trim();
        s.split_once('@').map_or(s, |(n, _)| n)
    }

    /// The pinned form: the reference as written (tag kept, for humans)
    /// followed by `@digest`.
    pub fn pinned(&self, digest: &Digest) -> String {
        format!("{}@{digest}", self.without_digest())
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.original)
    }
}

/// Whether `live` is `desired` pinned to a digest: exactly `desired` (which
/// has no digest of its own) followed by `@<valid digest>`. This is the one
/// rule by which kubesync's sync and image sync agree that a workload
/// running `app:v1@sha256:…` is what git's `app:v1` asks for.
pub fn is_pin_of(desired: &str, live: &str) -> bool {
    if desired.contains('@') {
        return false;
    }
    match live.strip_prefix(desired).and_then(|r| r.strip_prefix('@')) {
        Some(d) => Digest::parse(d).is_ok(),
        None => false,
    }
}

/// The digest an `imageID` names: `docker.io/library/nginx@sha256:…`,
/// `docker-pullable://nginx@sha256:…` (repository digests, comparable with
/// a registry's manifest digest); `None` for a bare `sha256:…` (the local
/// image ID, not the manifest's digest), an empty or malformed one.
pub fn digest_of_image_id(image_id: &str) -> Option<Digest> {
    let (_, d) = image_id.rsplit_once('@')?;
    Digest::parse(d).ok()
}

fn valid_tag(t: &str) -> bool {
    let mut chars = t.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric() || c == '_')
        && t.len() <= 128
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn valid_registry(r: &str) -> bool {
    !r.is_empty()
        && r.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
}

/// Path components: `[a-z0-9]+` joined by `.`, `_`, `__` or runs of `-`.
fn valid_repository(repo: &str) -> bool {
    repo.split('/').all(|part| {
        let bytes = part.as_bytes();
        if bytes.is_empty() || !is_alnum(bytes[0]) || !is_alnum(bytes[bytes.len() - 1]) {
            return false;
        }
        let mut i = 0;
        while i < bytes.len() {
            if is_alnum(bytes[i]) {
                i += 1;
                continue;
            }
            let start = i;
            while i < bytes.len() && !is_alnum(bytes[i]) {
                i += 1;
            }
            let sep = &part[start..i];
            let ok = matches!(sep, "." | "_" | "__") || sep.bytes().all(|b| b == b'-');
            if !ok {
                return false;
            }
        }
        true
    })
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    #[test]
    fn docker_hub_names_expand() {
        let r = Reference::parse("nginx").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str()),
            ("docker.io", "library/nginx")
        );
        assert_eq!(r.tag, None);
        assert_eq!(r.tag_or_latest(), Some("latest"));
        assert_eq!(r.api_host(), "registry-1.docker.io");
        let r = Reference::parse("bitnami/redis:7").unwrap();
        assert_eq!(r.repository, "bitnami/redis");
        assert_eq!(r.tag.as_deref(), Some("7"));
        let r = Reference::parse("docker.io/nginx:1.25").unwrap();
        assert_eq!(r.repository, "library/nginx");
        let r = Reference::parse("index.docker.io/library/nginx").unwrap();
        assert_eq!(r.registry, "docker.io");
    }

    #[test]
    fn registries_are_recognised() {
        for (s, reg, repo) in [
            ("ghcr.io/org/app:v1", "ghcr.io", "org/app"),
            ("127.0.0.1:5000/app:v1", "127.0.0.1:5000", "app"),
            ("localhost/app", "localhost", "app"),
            ("registry:5000/team/app", "registry:5000", "team/app"),
            ("[::1]:5000/app:v1", "[::1]:5000", "app"),
        ] {
            let r = Reference::parse(s).unwrap();
            assert_eq!(
                (r.registry.as_str(), r.repository.as_str()),
                (reg, repo),
                "{s}"
            );
            assert_eq!(r.api_host(), reg);
        }
    }

    #[test]
    fn tags_and_digests() {
        let pinned = format!("127.0.0.1:5000/app:v1@{}", d('a'));
        let r = Reference::parse(&pinned).unwrap();
        assert_eq!(r.tag.as_deref(), Some("v1"));
        assert_eq!(r.digest.as_ref().map(Digest::as_str), Some(d('a').as_str()));
        assert_eq!(r.without_digest(), "127.0.0.1:5000/app:v1");
        let only = Reference::parse(&format!("nginx@{}", d('b'))).unwrap();
        assert_eq!(only.tag_or_latest(), None);
        let digest = Digest::parse(&d('c')).unwrap();
        assert_eq!(
            Reference::parse("nginx:1.25").unwrap().pinned(&digest),
            format!("nginx:1.25@{}", d('c'))
        );
        // A re-pin replaces the old digest, keeping the text as written.
        assert_eq!(
            r.pinned(&digest),
            format!("127.0.0.1:5000/app:v1@{}", d('c'))
        );
        assert_eq!(digest.short(), "sha256:cccccccccccc");
    }

    #[test]
    fn bad_references_are_errors() {
        assert_eq!(Reference::parse(""), Err(ReferenceError::Empty));
        assert!(matches!(
            Reference::parse("nginx@sha256:abc"),
            Err(ReferenceError::BadDigest(_))
        ));
        assert!(matches!(
            Reference::parse(&format!("nginx@md5:{}", "a".repeat(32))),
            Err(ReferenceError::BadDigest(_))
        ));
        assert!(matches!(
            Reference::parse("Nginx:1"),
            Err(ReferenceError::BadRepository(_))
        ));
        assert!(matches!(
            Reference::parse("nginx:-x"),
            Err(ReferenceError::BadTag(_))
        ));
        assert!(matches!(
            Reference::parse("a//b"),
            Err(ReferenceError::BadRepository(_))
        ));
        assert!(Reference::parse("my-app__x/a.b_c--d:1").is_ok());
    }

    #[test]
    fn pins_and_image_ids() {
        let pin = format!("nginx:1.25@{}", d('a'));
        assert!(is_pin_of("nginx:1.25", &pin));
        assert!(!is_pin_of("nginx:1.26", &pin));
        assert!(!is_pin_of("nginx:1.2", &pin));
        assert!(!is_pin_of("nginx:1.25", "nginx:1.25@sha256:short"));
        assert!(!is_pin_of(&pin, &pin));
        assert!(!is_pin_of("nginx:1.25", "nginx:1.25"));
        assert_eq!(
            digest_of_image_id(&format!("docker.io/library/nginx@{}", d('e'))),
            Some(Digest::parse(&d('e')).unwrap())
        );
        assert_eq!(
            digest_of_image_id(&format!("docker-pullable://nginx@{}", d('e'))),
            Some(Digest::parse(&d('e')).unwrap())
        );
        assert_eq!(digest_of_image_id(&d('e')), None);
        assert_eq!(digest_of_image_id(""), None);
    }
}
