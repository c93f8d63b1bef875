//! The errors that end a command. Each command returns them instead of
//! printing them; [`super::main`] prints the one it gets, once, as
//! `error: …`, and exits with [`CliError::outcome`] (ripgrep's habit).
//!
//! Not here: problems that do not stop a command, such as the apps that
//! failed to render in `tree` (listed by `Loaded::report_problems`, one per
//! app), warnings, or a sync's per-app failures (its report).

use std::path::PathBuf;

use super::Outcome;
use crate::cluster::ClusterError;
use crate::model::ModelError;
use crate::source::SourceError;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The root manifest is unreadable or invalid.
    #[error("{0}")]
    Root(#[from] ModelError),
    /// Sources could not be set up (a bad override, an unusable cache dir).
    #[error("{0}")]
    Sources(#[from] SourceError),
    /// A `--git-credentials` file or the ssh key flags are unusable.
    #[error("{0}")]
    Credentials(#[from] crate::source::CredentialsError),
    /// The tree has configuration errors, already listed one per line above.
    #[error("the application tree is misconfigured; {consequence}")]
    Misconfigured { consequence: &'static str },
    /// Some of the apps to print failed to render (each listed above).
    #[error("{failed} of {total} application(s) failed to render; nothing was printed")]
    RenderFailed { failed: usize, total: usize },
    /// A name on the command line is not an app of the tree.
    #[error(
        "no application named \"{name}\" in the tree of {} (known: {})",
        root.display(),
        known.join(", ")
    )]
    UnknownApp {
        name: String,
        root: PathBuf,
        known: Vec<String>,
    },
    /// The cluster cannot be reached or the kubeconfig is wrong.
    #[error("{0}")]
    Connect(Box<ClusterError>),
    /// The cluster holds no readable Application objects.
    #[error("cannot read Application objects from {cluster}: {source} (has `kubesync bootstrap` run against this cluster?)")]
    ReadApplications {
        cluster: String,
        source: Box<ClusterError>,
    },
    /// A name on the command line is not an Application in the cluster.
    #[error("no Application \"{name}\" in {cluster}")]
    NoApplication { name: String, cluster: String },
    /// The async runtime did not start.
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    /// The emulator stopped with an error.
    #[error("{0:#}")]
    Emulator(anyhow::Error),
    /// A settings file (such as --helm-repo-credentials) is unreadable or invalid.
    #[error("{0}")]
    Config(String),
    /// A flag's value is malformed.
    #[error("{0}")]
    Usage(String),
    /// Namespace labels for `namespaceDirectories` label gates could not be read.
    #[error("cannot read namespace labels for the namespaceDirectories label gates: {0}")]
    NamespaceLabels(Box<ClusterError>),
    /// `image-sync` was given an unusable option (a field selector, a
    /// docker config, a CA file).
    #[error("{0}")]
    ImageSyncUsage(String),
    /// `image-sync` could not list what it checks.
    #[error("{0}")]
    ImageSync(String),
    /// The controller could not start (cache, listen address, secret file).
    #[error("{0}")]
    Controller(String),
    /// `delete` refused or could not start (the app is still in git,
    /// unknown, or the tree did not render).
    #[error("{0}")]
    Retire(#[from] crate::sync::RetireError),
}

impl CliError {
    /// The exit code: 2 for what the user must fix in the command line or
    /// the configuration, 1 for failures.
    pub fn outcome(&self) -> Outcome {
        match self {
            CliError::Root(_)
            | CliError::Sources(_)
            | CliError::Credentials(_)
            | CliError::Misconfigured { .. }
            | CliError::UnknownApp { .. }
            | CliError::Connect(_)
            | CliError::NoApplication { .. }
            | CliError::Config(_)
            | CliError::Usage(_)
            | CliError::ImageSyncUsage(_)
            | CliError::Controller(_) => Outcome::Usage,
            CliError::RenderFailed { .. }
            | CliError::ReadApplications { .. }
            | CliError::Runtime(_)
            | CliError::Emulator(_)
            | CliError::NamespaceLabels(_)
            | CliError::ImageSync(_) => Outcome::Failed,
            CliError::Retire(e) if e.is_refusal() => Outcome::Usage,
            CliError::Retire(_) => Outcome::Failed,
        }
    }
}
