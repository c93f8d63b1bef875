//! `kubesync delete APP`: retires an app that left git but whose
//! Application object (and objects) the cluster kept, as Argo CD's
//! `argocd app delete APP [--cascade=false]` does. Loads the tree (to refuse
//! an app git still defines), connects, and calls [`crate::sync::retire`],
//! the deletion a sync runs for an app that leaves the tree with the
//! resources finalizer; prints what became of each object.

use std::time::Duration;

use super::error::CliError;
use super::offline::load;
use super::online::{connect, print_removed, ClusterArgs, Retired};
use super::stdio::{errln, outln};
use super::{GlobalArgs, Outcome, OutputFormat};
use crate::model::parse_duration;
use crate::sync::{self, SyncOptions};

/// The flags of `kubesync delete`.
#[derive(Debug, Clone, clap::Args)]
pub struct DeleteArgs {
    /// The application to delete: one git no longer defines whose
    /// Application object is still in the cluster.
    #[arg(value_name = "APP")]
    pub app: String,
    /// Delete the app's objects with it (the default, as `argocd app
    /// delete`); `--cascade=false` deletes only its Application object and
    /// leaves its objects in the cluster.
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true",
          value_parser = clap::builder::BoolishValueParser::new())]
    pub cascade: bool,
    /// Print what would be deleted and kept; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// How long each deletion hook, and each group of objects, may take to
    /// finish or be gone (default 5m), e.g. 30s, 10m.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub timeout: Option<Duration>,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// `kubesync delete APP [--cascade=false] [--dry-run]`
pub async fn delete(global: &GlobalArgs, args: &DeleteArgs) -> Result<Outcome, CliError> {
    // The whole tree as git defines it (no namespace gates: an app they
    // disable is still git's).
    let loaded = load(global)?;
    let client = connect(&args.cluster).await?;
    let opts = SyncOptions {
        dry_run: args.dry_run,
        timeout: args.timeout,
        ..SyncOptions::default()
    };
    let removed = sync::retire(&loaded.tree, &client, &args.app, args.cascade, &opts).await?;
    match global.output {
        OutputFormat::Json => outln!(
            "{}",
            serde_json::to_string_pretty(&removed).unwrap_or_default()
        ),
        _ => print_removed(&removed, Retired::Command),
    }
    if args.dry_run {
        errln!("dry run: nothing was deleted");
    }
    Ok(if removed.error.is_some() {
        Outcome::Failed
    } else {
        Outcome::Ok
    })
}
