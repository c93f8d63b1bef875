use std::fmt;

use serde::{Deserialize, Serialize};

/// The name of an application: unique across the whole tree, a DNS-1123
/// subdomain (it becomes an object name and a label value).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AppName(String);

impl AppName {
    /// Validates and wraps a name; the error says what is wrong with it.
    pub fn new(name: impl Into<String>) -> Result<Self, String> {
        let name = name.into();
        validate_dns1123_subdomain(&name)?;
        if name.len() > 63 {
            // Label values are limited to 63 characters.
            return Err(format!(
                "\"{name}\" is {} characters long; an application name is at most 63 (it is used as a label value)",
                name.len()
            ));
        }
        Ok(Self(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AppName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for AppName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// RFC 1123 label: at most 63 characters, lowercase alphanumerics and '-',
/// starting and ending with an alphanumeric.
pub fn validate_dns1123_label(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.len() > 63 {
        return Err(format!("\"{s}\" must be no more than 63 characters"));
    }
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    if !s.chars().all(ok_char) || !s.starts_with(alnum) || !s.ends_with(alnum) {
        return Err(format!(
            "\"{s}\" is not a valid DNS-1123 label: lowercase letters, digits and '-', starting and ending with a letter or digit"
        ));
    }
    Ok(())
}

/// RFC 1123 subdomain: at most 253 characters, dot-separated labels.
pub fn validate_dns1123_subdomain(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.len() > 253 {
        return Err(format!("\"{s}\" must be no more than 253 characters"));
    }
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.';
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    if !s.chars().all(ok_char) || !s.starts_with(alnum) || !s.ends_with(alnum) || s.contains("..") {
        return Err(format!(
            "\"{s}\" is not a valid DNS-1123 subdomain: lowercase letters, digits, '-' and '.', starting and ending with a letter or digit"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_names() {
        for ok in ["a", "guestbook", "metrics-server", "team-a.web", "x1"] {
            assert!(AppName::new(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Guestbook", "-a", "a-", "a_b", "a..b", &"x".repeat(64)] {
            assert!(AppName::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn labels() {
        assert!(validate_dns1123_label("kube-system").is_ok());
        assert!(validate_dns1123_label("a.b").is_err());
        assert!(validate_dns1123_label(&"a".repeat(64)).is_err());
    }
}
