//! Webhook verification and payloads (pure): which provider signed a push,
//! whether its signature is good, and which repositories it names.
//!
//! - GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>`;
//! - GitLab: `X-Gitlab-Token: <the secret>`, compared in constant time;
//! - anything else: `X-Kubesync-Signature: sha256=<hex HMAC-SHA256>`.
//!
//! A request with no secret configured, no signature header or a wrong
//! signature is [`WebhookError::Unauthorized`] (401); a verified body that
//! is not a push payload kubesync understands is [`WebhookError::Malformed`]
//! (400). The body is only parsed after its signature checked out.

use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2_hmac::Sha256;

/// The header GitHub signs with.
pub const GITHUB_SIGNATURE: &str = "x-hub-signature-256";
/// The header GitLab sends its secret token in.
pub const GITLAB_TOKEN: &str = "x-gitlab-token";
/// kubesync's own HMAC header, for any other sender (`sha256=<hex>`).
pub const GENERIC_SIGNATURE: &str = "x-kubesync-signature";

/// Who signed a verified request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    GitHub,
    GitLab,
    Generic,
}

/// Why a webhook was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// 401: no secret configured, no signature, or a wrong one.
    #[error("unauthorized: {0}")]
    Unauthorized(&'static str),
    /// 400: the verified body is not a push payload.
    #[error("malformed payload: {0}")]
    Malformed(String),
}

/// Checks the request's signature against `secret`. `header` returns a
/// request header by lower-case name.
pub fn verify<'a>(
    header: impl Fn(&str) -> Option<&'a str>,
    body: &[u8],
    secret: Option<&[u8]>,
) -> Result<Provider, WebhookError> {
    let Some(secret) = secret.filter(|s| !s.is_empty()) else {
        return Err(WebhookError::Unauthorized(
            "no webhook secret is configured (--webhook-secret-file or KUBESYNC_WEBHOOK_SECRET)",
        ));
    };
    if let Some(sig) = header(GITHUB_SIGNATURE) {
        return hmac_ok(sig, body, secret)
            .then_some(Provider::GitHub)
            .ok_or(WebhookError::Unauthorized(
                "X-Hub-Signature-256 does not match",
            ));
    }
    if let Some(token) = header(GITLAB_TOKEN) {
        return constant_time_eq(token.trim().as_bytes(), secret)
            .then_some(Provider::GitLab)
            .ok_or(WebhookError::Unauthorized("X-Gitlab-Token does not match"));
    }
    if let Some(sig) = header(GENERIC_SIGNATURE) {
        return hmac_ok(sig, body, secret)
            .then_some(Provider::Generic)
            .ok_or(WebhookError::Unauthorized(
                "X-Kubesync-Signature does not match",
            ));
    }
    Err(WebhookError::Unauthorized(
        "no signature (X-Hub-Signature-256, X-Gitlab-Token or X-Kubesync-Signature)",
    ))
}

/// `sha256=<hex>` of `body` under `secret`: what a sender puts in the header.
pub fn sign(body: &[u8], secret: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn hmac_ok(header: &str, body: &[u8], secret: &[u8]) -> bool {
    let Some(given) = header.trim().strip_prefix("sha256=") else {
        return false;
    };
    let Ok(given) = hex::decode(given) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    // Constant-time comparison.
    mac.verify_slice(&given).is_ok()
}

/// Equal bytes, in time independent of where they differ (the length is
/// not secret).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The repository URLs a push payload names (every spelling it gives:
/// clone, ssh, html), for matching against the repositories kubesync
/// polls. GitHub (`repository.clone_url`, `ssh_url`, `html_url`), GitLab
/// (`project.git_http_url`, `git_ssh_url`, `web_url`, or `repository.*`) and
/// the generic form `{"repository": "URL"}` or `{"repoURL": "URL"}`.
pub fn push_repositories(body: &[u8]) -> Result<Vec<String>, WebhookError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| WebhookError::Malformed(format!("not JSON: {e}")))?;
    if !v.is_object() {
        return Err(WebhookError::Malformed("expected a JSON object".into()));
    }
    let mut out = Vec::new();
    let mut take = |x: Option<&Value>| {
        if let Some(s) = x.and_then(Value::as_str).filter(|s| !s.is_empty()) {
            if !out.iter().any(|o| o == s) {
                out.push(s.to_string());
            }
        }
    };
    take(v.get("repoURL"));
    if let Some(r) = v.get("repository") {
        take(Some(r));
        for k in [
            "clone_url",
            "ssh_url",
            "html_url",
            "git_http_url",
            "git_ssh_url",
            "url",
            "homepage",
        ] {
            take(r.get(k));
        }
    }
    if let Some(p) = v.get("project") {
        for k in ["git_http_url", "git_ssh_url", "web_url"] {
            take(p.get(k));
        }
    }
    if out.is_empty() {
        return Err(WebhookError::Malformed(
            "no repository URL (repository.clone_url, project.git_http_url, repository or repoURL)"
                .into(),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers<'a>(pairs: &'a [(&'static str, String)]) -> impl Fn(&str) -> Option<&'a str> + 'a {
        move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.as_str())
    }

    #[test]
    fn github_gitlab_and_generic_signatures() {
        let body = br#"{"repository":{"clone_url":"https://g/x.git"}}"#;
        let secret = b"s3cret".as_slice();
        let gh = [(GITHUB_SIGNATURE, sign(body, secret))];
        assert_eq!(
            verify(headers(&gh), body, Some(secret)),
            Ok(Provider::GitHub)
        );
        let gl = [(GITLAB_TOKEN, "s3cret".to_string())];
        assert_eq!(
            verify(headers(&gl), body, Some(secret)),
            Ok(Provider::GitLab)
        );
        let ks = [(GENERIC_SIGNATURE, sign(body, secret))];
        assert_eq!(
            verify(headers(&ks), body, Some(secret)),
            Ok(Provider::Generic)
        );
    }

    #[test]
    fn bad_or_missing_signatures_are_refused() {
        let body = b"{}";
        let secret = b"s3cret".as_slice();
        let unauthorized =
            |r: Result<Provider, WebhookError>| matches!(r, Err(WebhookError::Unauthorized(_)));
        assert!(unauthorized(verify(headers(&[]), body, Some(secret))));
        let wrong = [(GITHUB_SIGNATURE, sign(body, b"other"))];
        assert!(unauthorized(verify(headers(&wrong), body, Some(secret))));
        let tampered = [(GITHUB_SIGNATURE, sign(b"{ }", secret))];
        assert!(unauthorized(verify(headers(&tampered), body, Some(secret))));
        let not_hex = [(GENERIC_SIGNATURE, "sha256=zz".to_string())];
        assert!(unauthorized(verify(headers(&not_hex), body, Some(secret))));
        let token = [(GITLAB_TOKEN, "s3cre".to_string())];
        assert!(unauthorized(verify(headers(&token), body, Some(secret))));
        let good = [(GITHUB_SIGNATURE, sign(body, secret))];
        assert!(
            unauthorized(verify(headers(&good), body, None)),
            "no secret: nothing is trusted"
        );
    }

    #[test]
    fn payloads_name_their_repositories() {
        let gh = br#"{"ref":"refs/heads/main","repository":{"clone_url":"https://github.com/o/r.git","ssh_url":"git@github.com:o/r.git"}}"#;
        assert_eq!(
            push_repositories(gh).unwrap(),
            ["https://github.com/o/r.git", "git@github.com:o/r.git"]
        );
        let gl =
            br#"{"object_kind":"push","project":{"git_http_url":"https://gitlab.com/o/r.git"}}"#;
        assert_eq!(
            push_repositories(gl).unwrap(),
            ["https://gitlab.com/o/r.git"]
        );
        assert_eq!(
            push_repositories(br#"{"repository":"file:///r"}"#).unwrap(),
            ["file:///r"]
        );
        assert!(matches!(
            push_repositories(b"not json"),
            Err(WebhookError::Malformed(_))
        ));
        assert!(matches!(
            push_repositories(b"[1]"),
            Err(WebhookError::Malformed(_))
        ));
        assert!(matches!(
            push_repositories(b"{\"zen\":1}"),
            Err(WebhookError::Malformed(_))
        ));
    }

    #[test]
    fn constant_time_eq_compares() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
