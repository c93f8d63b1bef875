//! What the election is configured with: [`LeaseConfig`] (validated: the
//! durations must nest as client-go requires) and the reusable clap flags
//! [`LeaderElectionArgs`] a command flattens in.

use std::time::Duration;

use crate::model::{format_duration, parse_duration};

/// The Lease's default name.
pub const DEFAULT_LEASE_NAME: &str = "kubesync-controller";
/// The Lease's default namespace.
pub const DEFAULT_LEASE_NAMESPACE: &str = "kubesync-system";
/// client-go's jitter factor: a standby retries every `retry_period` to
/// `retry_period × 1.2`, so `renew_deadline` must exceed that.
pub const JITTER_FACTOR: f64 = 1.2;

/// One elector's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseConfig {
    /// The Lease object's name.
    pub name: String,
    /// The Lease object's namespace.
    pub namespace: String,
    /// This replica's name in `holderIdentity`; unique per replica.
    pub identity: String,
    /// How long a standby waits, after it last saw the lease renewed,
    /// before it takes the lease over.
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew before it steps down.
    pub renew_deadline: Duration,
    /// How often each replica tries to acquire or renew.
    pub retry_period: Duration,
}

/// Durations that cannot work together, or an empty name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeaseConfigError {
    #[error("--{flag} must not be empty")]
    Empty { flag: &'static str },
    #[error("--{flag} must be positive")]
    NotPositive { flag: &'static str },
    #[error(
        "--lease-duration ({lease}) must be longer than --renew-deadline ({renew}): \
         a leader must step down before its lease can expire elsewhere"
    )]
    LeaseNotLongerThanRenew { lease: String, renew: String },
    #[error(
        "--renew-deadline ({renew}) must be longer than 1.2 × --retry-period ({retry}): \
         the leader needs more than one try to renew"
    )]
    RenewNotLongerThanRetry { renew: String, retry: String },
    #[error("--lease-duration must be whole seconds (the Lease stores seconds), got {0}")]
    FractionalLease(String),
}

impl LeaseConfig {
    /// The defaults near client-go's (15 s / 10 s / 2 s) for `identity`.
    pub fn new(identity: impl Into<String>) -> Self {
        LeaseConfig {
            name: DEFAULT_LEASE_NAME.to_string(),
            namespace: DEFAULT_LEASE_NAMESPACE.to_string(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }

    /// Checks the names and that `lease_duration > renew_deadline >
    /// 1.2 × retry_period > 0` (client-go's rule).
    pub fn validate(&self) -> Result<(), LeaseConfigError> {
        for (flag, v) in [
            ("lease-name", &self.name),
            ("lease-namespace", &self.namespace),
            ("leader-identity", &self.identity),
        ] {
            if v.trim().is_empty() {
                return Err(LeaseConfigError::Empty { flag });
            }
        }
        for (flag, d) in [
            ("lease-duration", self.lease_duration),
            ("renew-deadline", self.renew_deadline),
            ("retry-period", self.retry_period),
        ] {
            if d.is_zero() {
                return Err(LeaseConfigError::NotPositive { flag });
            }
        }
        if self.lease_duration.subsec_nanos() != 0 {
            return Err(LeaseConfigError::FractionalLease(format_duration(
                self.lease_duration,
            )));
        }
        if self.lease_duration <= self.renew_deadline {
            return Err(LeaseConfigError::LeaseNotLongerThanRenew {
                lease: format_duration(self.lease_duration),
                renew: format_duration(self.renew_deadline),
            });
        }
        if self.renew_deadline.as_secs_f64() <= self.retry_period.as_secs_f64() * JITTER_FACTOR {
            return Err(LeaseConfigError::RenewNotLongerThanRetry {
                renew: format_duration(self.renew_deadline),
                retry: format_duration(self.retry_period),
            });
        }
        Ok(())
    }
}

/// This process's default identity: `<hostname>_<pid>` (in a pod the
/// hostname is the pod's name).
pub fn default_identity() -> String {
    format!("{}_{}", hostname(), std::process::id())
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at most
    // that many bytes.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let name = if rc == 0 {
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        String::new()
    };
    if name.is_empty() {
        std::env::var("HOSTNAME").unwrap_or_else(|_| "kubesync".to_string())
    } else {
        name
    }
}

fn duration_arg(s: &str) -> Result<Duration, String> {
    parse_duration(s).map_err(|e| e.to_string())
}

/// The leader-election flags, for a command to `#[command(flatten)]`.
///
/// ```text
/// kubesync run --leader-elect --lease-name kubesync-prod --lease-duration 15s
/// kubesync run --leader-elect=false      # one replica, no Lease
/// ```
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct LeaderElectionArgs {
    /// Elect a leader through a coordination.k8s.io/v1 Lease so that only one
    /// replica writes; `--leader-elect=false` for a single replica.
    #[arg(
        long,
        env = "KUBESYNC_LEADER_ELECT",
        default_value_t = true,
        num_args = 0..=1,
        default_missing_value = "true",
        action = clap::ArgAction::Set,
        help_heading = "Leader election"
    )]
    pub leader_elect: bool,
    /// The Lease's name.
    #[arg(long, default_value = DEFAULT_LEASE_NAME, help_heading = "Leader election")]
    pub lease_name: String,
    /// The Lease's namespace.
    #[arg(long, default_value = DEFAULT_LEASE_NAMESPACE, help_heading = "Leader election")]
    pub lease_namespace: String,
    /// How long a standby waits after the lease was last renewed before it
    /// takes over (whole seconds).
    #[arg(long, default_value = "15s", value_parser = duration_arg, help_heading = "Leader election")]
    pub lease_duration: Duration,
    /// How long the leader keeps retrying a failed renewal before it stops
    /// writing; shorter than --lease-duration.
    #[arg(long, default_value = "10s", value_parser = duration_arg, help_heading = "Leader election")]
    pub renew_deadline: Duration,
    /// How often each replica tries to acquire or renew the lease.
    #[arg(long, default_value = "2s", value_parser = duration_arg, help_heading = "Leader election")]
    pub retry_period: Duration,
    /// This replica's identity in the Lease [default: <hostname>_<pid>].
    #[arg(long, env = "POD_NAME", help_heading = "Leader election")]
    pub leader_identity: Option<String>,
}

impl Default for LeaderElectionArgs {
    fn default() -> Self {
        LeaderElectionArgs {
            leader_elect: true,
            lease_name: DEFAULT_LEASE_NAME.to_string(),
            lease_namespace: DEFAULT_LEASE_NAMESPACE.to_string(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
            leader_identity: None,
        }
    }
}

impl LeaderElectionArgs {
    /// The validated configuration; `None` with `--leader-elect=false`.
    pub fn config(&self) -> Result<Option<LeaseConfig>, LeaseConfigError> {
        if !self.leader_elect {
            return Ok(None);
        }
        let config = LeaseConfig {
            name: self.lease_name.clone(),
            namespace: self.lease_namespace.clone(),
            identity: self
                .leader_identity
                .clone()
                .unwrap_or_else(default_identity),
            lease_duration: self.lease_duration,
            renew_deadline: self.renew_deadline,
            retry_period: self.retry_period,
        };
        config.validate()?;
        Ok(Some(config))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        le: LeaderElectionArgs,
    }

    fn parse(args: &[&str]) -> LeaderElectionArgs {
        let mut argv = vec!["x"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).expect("parses").le
    }

    #[test]
    fn defaults_and_flags() {
        let d = parse(&[]);
        assert!(d.leader_elect);
        let c = d.config().unwrap().unwrap();
        assert_eq!(c.name, "kubesync-controller");
        assert_eq!(c.namespace, "kubesync-system");
        assert_eq!(
            (c.lease_duration, c.renew_deadline, c.retry_period),
            (
                Duration::from_secs(15),
                Duration::from_secs(10),
                Duration::from_secs(2)
            )
        );
        assert!(c.identity.ends_with(&format!("_{}", std::process::id())));

        assert!(parse(&["--leader-elect"]).leader_elect);
        assert_eq!(parse(&["--leader-elect=false"]).config(), Ok(None));
        let c = parse(&[
            "--lease-name",
            "l",
            "--lease-namespace",
            "ns",
            "--lease-duration",
            "4s",
            "--renew-deadline",
            "3s",
            "--retry-period",
            "500ms",
            "--leader-identity",
            "pod-1",
        ])
        .config()
        .unwrap()
        .unwrap();
        assert_eq!(
            c,
            LeaseConfig {
                name: "l".into(),
                namespace: "ns".into(),
                identity: "pod-1".into(),
                lease_duration: Duration::from_secs(4),
                renew_deadline: Duration::from_secs(3),
                retry_period: Duration::from_millis(500),
            }
        );
    }

    #[test]
    fn durations_must_nest() {
        let bad = [
            (
                &["--lease-duration", "10s"][..],
                "longer than --renew-deadline",
            ),
            (&["--retry-period", "9s"][..], "1.2 × --retry-period"),
            (&["--lease-duration", "0s"][..], "positive"),
            (&["--lease-duration", "15500ms"][..], "whole seconds"),
            (&["--leader-identity", " "][..], "leader-identity"),
        ];
        for (args, want) in bad {
            let err = parse(args).config().unwrap_err().to_string();
            assert!(err.contains(want), "{args:?}: {err}");
        }
        let mut argv = vec!["x", "--lease-duration", "soon"];
        assert!(Cli::try_parse_from(&argv).is_err());
        argv.truncate(1);
        assert!(Cli::try_parse_from(&argv).is_ok());
    }
}
