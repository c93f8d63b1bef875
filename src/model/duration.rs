//! Durations as users write them (`30s`, `5m`, `1h30m`, `500ms`, or a bare
//! number of seconds): `syncPolicy.wait.timeout`, `transform.timeout` and the
//! CLI's `--timeout`. Parsing is total: a value that is too large, negative
//! or not a number is a [`DurationError`] saying which, never a panic.

use std::fmt;
use std::time::Duration;

/// The longest duration kubesync accepts anywhere (a wait, a transform
/// timeout, `--timeout`): one day. The sync engine never waits longer either;
/// a typo such as `99999999999999h` must not overflow the clock.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

/// Why a duration does not parse. Each variant keeps the text as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DurationError {
    Empty,
    /// Not of the form `30s`, `5m`, `1h30m`.
    Malformed(String),
    /// A number without a unit inside a compound duration (`1h30`).
    MissingUnit(String),
    UnknownUnit {
        text: String,
        unit: String,
    },
    Negative(String),
    /// Larger than [`MAX_DURATION`] (or too large for any clock).
    TooLarge(String),
}

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DurationError::Empty => f.write_str("empty duration"),
            DurationError::Malformed(s) => {
                write!(f, "\"{s}\" is not a duration like 30s, 5m or 1h30m")
            }
            DurationError::MissingUnit(s) => write!(f, "\"{s}\": missing unit (use s, m or h)"),
            DurationError::UnknownUnit { text, unit } => {
                write!(f, "\"{text}\": unknown unit \"{unit}\" (use ms, s, m or h)")
            }
            DurationError::Negative(s) => write!(
                f,
                "duration \"{s}\" is negative (write 0s or more, e.g. 30s, 5m or 1h30m)"
            ),
            DurationError::TooLarge(s) => write!(
                f,
                "duration \"{s}\" is too large (at most {})",
                format_duration(MAX_DURATION)
            ),
        }
    }
}

impl std::error::Error for DurationError {}

/// Parses `30s`, `5m`, `1h30m`, `2h`, `500ms` or a bare number of seconds,
/// at most [`MAX_DURATION`].
pub fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    let s = s.trim();
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    if s.starts_with('-') {
        return Err(DurationError::Negative(s.to_string()));
    }
    let max = MAX_DURATION.as_secs_f64();
    if s.bytes().all(|b| b.is_ascii_digit()) {
        // A bare number of seconds; too many digits for u64 is too large too.
        return match s.parse::<u64>() {
            Ok(secs) if secs as f64 <= max => Ok(Duration::from_secs(secs)),
            _ => Err(DurationError::TooLarge(s.to_string())),
        };
    }
    if s.contains(char::is_whitespace) {
        return Err(DurationError::Malformed(s.to_string()));
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .ok_or_else(|| DurationError::MissingUnit(s.to_string()))?;
        if digits == 0 {
            return Err(DurationError::Malformed(s.to_string()));
        }
        let n: f64 = rest[..digits]
            .parse()
            .map_err(|_| DurationError::Malformed(s.to_string()))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let scale = match unit {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => {
                return Err(DurationError::UnknownUnit {
                    text: s.to_string(),
                    unit: unit.to_string(),
                })
            }
        };
        // `n` is finite and non-negative (digits and dots only), but may be
        // huge: compare before converting, never after.
        total += n * scale;
        if !total.is_finite() || total > max {
            return Err(DurationError::TooLarge(s.to_string()));
        }
    }
    Ok(Duration::from_secs_f64(total))
}

/// `24h`, `5m`, `1h30m`, `90s`, `500ms`: the shortest form [`parse_duration`]
/// reads back.
pub fn format_duration(d: Duration) -> String {
    let secs = d.as_secs();
    let millis = d.subsec_millis();
    if secs == 0 {
        return format!("{millis}ms");
    }
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || millis > 0 {
        if millis > 0 {
            out.push_str(&format!("{s}.{millis:03}s"));
        } else {
            out.push_str(&format!("{s}s"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_durations() {
        for (s, secs) in [
            ("30s", 30.0),
            ("5m", 300.0),
            ("1h30m", 5400.0),
            ("90", 90.0),
            ("500ms", 0.5),
            ("0s", 0.0),
            ("24h", 86400.0),
            ("86400", 86400.0),
            ("1.5h", 5400.0),
        ] {
            assert_eq!(parse_duration(s).unwrap().as_secs_f64(), secs, "{s}");
        }
    }

    #[test]
    fn overflow_is_an_error_not_a_panic() {
        for s in [
            "99999999999999999999h",
            "99999999999999999999",
            "86401",
            "24h1s",
            "25h",
            &format!("{}h", "9".repeat(400)),
            "23h59m60s1ms",
        ] {
            assert_eq!(
                parse_duration(s),
                Err(DurationError::TooLarge(s.to_string())),
                "{s}"
            );
        }
        assert_eq!(
            parse_duration("99999999999999999999h")
                .unwrap_err()
                .to_string(),
            "duration \"99999999999999999999h\" is too large (at most 24h)"
        );
    }

    #[test]
    fn negative_nan_and_garbage_are_errors() {
        assert_eq!(
            parse_duration("-5m"),
            Err(DurationError::Negative("-5m".into()))
        );
        assert_eq!(
            parse_duration("-1"),
            Err(DurationError::Negative("-1".into()))
        );
        for s in ["5x", "1h-3m"] {
            assert!(parse_duration(s).is_err(), "{s}");
        }
        for s in ["NaN", "NaNs", "inf", "infh", "m", "1..5s", "1 h", "soon"] {
            assert_eq!(
                parse_duration(s),
                Err(DurationError::Malformed(s.to_string())),
                "{s}"
            );
        }
        assert_eq!(parse_duration(""), Err(DurationError::Empty));
        assert_eq!(
            parse_duration("1h30"),
            Err(DurationError::MissingUnit("1h30".into()))
        );
        assert!(matches!(
            parse_duration("5x"),
            Err(DurationError::UnknownUnit { .. })
        ));
        assert!(matches!(
            parse_duration("1e5s"),
            Err(DurationError::UnknownUnit { .. })
        ));
    }

    #[test]
    fn format_round_trips() {
        for s in ["24h", "5m", "1h30m", "90s", "500ms", "1h0m1s"] {
            let d = parse_duration(s).unwrap();
            assert_eq!(parse_duration(&format_duration(d)).unwrap(), d, "{s}");
        }
        assert_eq!(format_duration(MAX_DURATION), "24h");
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
    }
}
