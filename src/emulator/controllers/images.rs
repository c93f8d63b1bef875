//! Images as the simulated kubelet sees them: whether an image reference
//! matches a configured pattern, and the `imageID` a container reports
//! (`<repository>@sha256:<64 hex>`). Pure functions.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

/// Whether `image` matches `pattern`: a glob over the whole reference when
/// the pattern has `*`, `?` or `[`, else a substring. An invalid glob matches
/// nothing.
pub fn image_matches(pattern: &str, image: &str) -> bool {
    if pattern.is_empty() {
        return false;
    }
    if pattern.contains(['*', '?', '[']) {
        match globset::Glob::new(pattern) {
            Ok(g) => g.compile_matcher().is_match(image),
            Err(e) => {
                tracing::warn!(pattern, error = %e, "simulation: invalid image glob");
                false
            }
        }
    } else {
        image.contains(pattern)
    }
}

/// Whether any of `patterns` matches `image`.
pub fn any_matches(patterns: &[String], image: &str) -> bool {
    patterns.iter().any(|p| image_matches(p, image))
}

/// The repository of an image reference: without its digest and tag
/// (`registry:5000/app:v1@sha256:…` → `registry:5000/app`). No registry
/// normalisation (`nginx` stays `nginx`).
pub fn repository(image: &str) -> &str {
    let no_digest = image.split('@').next().unwrap_or(image);
    let last_slash = no_digest.rfind('/').map_or(0, |i| i + 1);
    match no_digest[last_slash..].rfind(':') {
        Some(colon) => &no_digest[..last_slash + colon],
        None => no_digest,
    }
}

/// The `imageID` a container running `image` reports: a pinned digest is
/// kept; a configured digest (`digests[image]`) is used; otherwise the
/// sha256 of the reference.
pub fn image_id(image: &str, digests: &HashMap<String, String>) -> String {
    if let Some((repo, digest)) = image.split_once('@') {
        return format!("{}@{digest}", repository(repo));
    }
    let digest = match digests.get(image) {
        Some(d) if d.starts_with("sha256:") => d.clone(),
        Some(d) => format!("sha256:{d}"),
        None => format!("sha256:{}", hex::encode(Sha256::digest(image.as_bytes()))),
    };
    format!("{}@{digest}", repository(image))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching() {
        assert!(image_matches("broken", "registry/broken:1"));
        assert!(!image_matches("broken", "nginx:1"));
        assert!(image_matches("*:bad", "nginx:bad"));
        assert!(image_matches("ghcr.io/*/app:*", "ghcr.io/org/app:v2"));
        assert!(!image_matches("nginx:1.*", "nginx:2.0"));
        assert!(!image_matches("", "nginx"));
        assert!(!image_matches("[", "nginx"));
    }

    #[test]
    fn repositories() {
        assert_eq!(repository("nginx"), "nginx");
        assert_eq!(repository("nginx:1.25"), "nginx");
        assert_eq!(repository("registry:5000/app"), "registry:5000/app");
        assert_eq!(repository("registry:5000/app:v1"), "registry:5000/app");
        assert_eq!(repository("ghcr.io/o/app:v1@sha256:ab"), "ghcr.io/o/app");
    }

    #[test]
    fn image_ids() {
        let none = HashMap::new();
        let id = image_id("nginx:1.25", &none);
        let hex_part = id.strip_prefix("nginx@sha256:").expect("repo@sha256 form");
        assert_eq!(hex_part.len(), 64);
        assert!(hex_part.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(id, image_id("nginx:1.25", &none));
        assert_ne!(id, image_id("nginx:1.26", &none));
        let d = "a".repeat(64);
        let mut digests = HashMap::new();
        digests.insert("nginx:1.25".to_string(), d.clone());
        assert_eq!(
            image_id("nginx:1.25", &digests),
            format!("nginx@sha256:{d}")
        );
        digests.insert("app:v1".to_string(), format!("sha256:{d}"));
        assert_eq!(image_id("app:v1", &digests), format!("app@sha256:{d}"));
        assert_eq!(
            image_id(&format!("app:v1@sha256:{d}"), &none),
            format!("app@sha256:{d}")
        );
    }
}
