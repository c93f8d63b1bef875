//! The command line: clap definitions and dispatch. Thin by design: parse,
//! call the modules that do the work, print. Exit codes mean something:
//! 0 everything ok, 1 something failed (or is out of sync), 2 a usage or
//! configuration error (bad manifest, cycle, unknown dependency). A reader
//! that closes standard output early is not an error: exit 0 (see `stdio`).

mod delete;
mod error;
mod image_sync;
mod offline;
mod online;
mod output;
mod progress;
mod run;
mod seeds;
mod stdio;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::source::RepoOverride;
use error::CliError;
use stdio::errln;

/// What an exit code means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything succeeded.
    Ok = 0,
    /// Something failed, was blocked, or is out of sync.
    Failed = 1,
    /// The command line or the configuration is wrong.
    Usage = 2,
}

impl From<Outcome> for ExitCode {
    fn from(o: Outcome) -> ExitCode {
        ExitCode::from(o as u8)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
    /// Graphviz (only for `tree`).
    Dot,
}

/// kubesync: take a cluster from empty to its full desired state with one
/// command, and keep it there.
///
/// A root "app of apps" manifest names every application; kubesync renders
/// each one (plain YAML, minijinja templates, Helm, kustomize or a transform
/// command), orders them as a dependency graph and syncs them in order.
///
/// Examples:
///   kubesync tree                          show the application tree
///   kubesync plan                          show the sync order
///   kubesync render guestbook | less       the objects one app renders
///   kubesync --root argocd/root.yaml \
///     --repo-override https://github.com/org/apps.git=. tree
#[derive(Debug, Parser)]
#[command(name = "kubesync", version, verbatim_doc_comment, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, clap::Args)]
pub struct GlobalArgs {
    /// The root app-of-apps manifest. Apps' `source.path`s are relative to
    /// the git work tree holding it; outside git, to the directory it is in
    /// (never to the current directory).
    #[arg(
        long,
        global = true,
        env = "KUBESYNC_ROOT",
        default_value = "bootstrap/root.yaml"
    )]
    pub root: PathBuf,

    /// Render apps whose repoURL is URL from the local checkout PATH instead
    /// (repeatable). An app whose repoURL is the root repository's `origin`
    /// uses the root repository automatically.
    #[arg(long = "repo-override", value_name = "URL=PATH", global = true)]
    pub repo_overrides: Vec<RepoOverride>,

    /// Output format.
    #[arg(long, short = 'o', value_enum, global = true, default_value = "text")]
    pub output: OutputFormat,

    /// How many applications sync at once (they mostly wait on the API
    /// server and on readiness; `--qps` bounds the request rate). Renders
    /// run at most this many at once, and no more than the CPUs allow.
    #[arg(long, global = true, env = "KUBESYNC_PARALLEL", default_value_t = crate::sync::DEFAULT_PARALLEL)]
    pub parallel: usize,

    /// Credentials and TLS settings for Helm chart repositories and OCI
    /// registries, per URL prefix: a YAML file `repositories: [{url,
    /// username, password | passwordEnv, caFile, insecureSkipVerify,
    /// plainHttp}]`.
    #[arg(
        long,
        global = true,
        env = "KUBESYNC_HELM_REPO_CREDENTIALS",
        value_name = "FILE"
    )]
    pub helm_repo_credentials: Option<PathBuf>,
    /// A kubesync settings file (YAML) for the whole tree: today its
    /// `ignoreDifferences` rules, honoured by every app besides its own
    /// (same fields as an Application's `spec.ignoreDifferences`).
    #[arg(long, global = true, env = "KUBESYNC_SETTINGS", value_name = "FILE")]
    pub settings: Option<PathBuf>,

    /// Where clones of remote repositories are cached (default: a temporary directory).
    #[arg(long, global = true, env = "KUBESYNC_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,

    #[command(flatten)]
    pub git_auth: crate::source::GitAuthArgs,

    /// More logging (-v info, -vv debug); RUST_LOG overrides.
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// The name of the cluster kubesync syncs, for ApplicationSet generators:
    /// the `clusters` generator's one cluster (default `in-cluster`, as in
    /// Argo CD) and `clusterNamespaceDirectories` (git-sync-operator's
    /// `$CLUSTER_NAME/$namespace` directories); `kubesync run` also starts
    /// the S3 version file's key with it (`--s3-bucket`).
    #[arg(long, global = true, env = "CLUSTER_NAME", value_name = "NAME")]
    pub cluster_name: Option<String>,

    /// A label of the local cluster, matched by `clusters` generator
    /// selectors (repeatable; without any, a selector matches no cluster, as
    /// Argo CD's in-cluster without a labelled cluster Secret).
    #[arg(
        long = "cluster-label",
        global = true,
        value_name = "KEY=VALUE",
        env = "KUBESYNC_CLUSTER_LABELS",
        value_delimiter = ','
    )]
    pub cluster_labels: Vec<String>,

    /// The namespaces `clusterNamespaceDirectories` generators manage
    /// (git-sync-operator's MANAGED_NAMESPACES; comma-separated).
    #[arg(
        long,
        global = true,
        env = "MANAGED_NAMESPACES",
        value_name = "NS,…",
        value_delimiter = ','
    )]
    pub managed_namespaces: Vec<String>,
}

impl GlobalArgs {
    /// What ApplicationSet generators know of the cluster, from the flags.
    pub fn generator_env(&self) -> Result<crate::tree::appset::GeneratorEnv, CliError> {
        let mut labels = std::collections::BTreeMap::new();
        for l in &self.cluster_labels {
            let Some((k, v)) = l.split_once('=') else {
                return Err(CliError::Usage(format!(
                    "--cluster-label \"{l}\": expected KEY=VALUE"
                )));
            };
            labels.insert(k.trim().to_string(), v.trim().to_string());
        }
        let managed: Vec<String> = self
            .managed_namespaces
            .iter()
            .flat_map(|s| s.split([',', ' ']))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        Ok(crate::tree::appset::GeneratorEnv {
            cluster_name: self.cluster_name.clone().filter(|s| !s.trim().is_empty()),
            cluster_labels: labels,
            managed_namespaces: (!managed.is_empty()).then_some(managed),
        })
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show the application tree: each app's tier, namespace, renderer,
    /// object count and dependencies (`-o json` or `-o dot` for machines),
    /// plus each app's live sync status and health when a cluster is
    /// configured and reachable.
    Tree {
        #[command(flatten)]
        cluster: online::ClusterArgs,
    },
    /// Print the objects applications render, as one YAML stream (all apps
    /// when none is named). Nothing is printed unless every named app renders.
    Render {
        /// Applications to render.
        apps: Vec<String>,
    },
    /// Show the sync order: topological levels, and per app its renderer and
    /// object count.
    Plan,
    /// Sync the whole tree into a cluster, in dependency order, each app
    /// gated on the health of what it depends on: one command from an empty
    /// cluster to everything Synced and Healthy.
    ///
    /// Examples:
    ///   kubesync bootstrap --emulator              into the built-in emulator
    ///   kubesync bootstrap bootstrap/root.yaml     into the current kubeconfig context
    #[command(verbatim_doc_comment)]
    Bootstrap {
        /// The root manifest (overrides --root).
        #[arg(value_name = "ROOT")]
        root_manifest: Option<PathBuf>,
        #[command(flatten)]
        cluster: online::ClusterArgs,
        #[command(flatten)]
        sync: online::SyncArgs,
        /// Completion signals and Events, as `kubesync run` sends them.
        #[command(flatten)]
        notify: crate::notify::NotifyArgs,
    },
    /// Sync the named applications (and, with --with-deps, what they depend on).
    Sync {
        #[arg(required = true)]
        apps: Vec<String>,
        /// Also sync every application the named ones depend on, in order.
        #[arg(long)]
        with_deps: bool,
        #[command(flatten)]
        cluster: online::ClusterArgs,
        #[command(flatten)]
        sync: online::SyncArgs,
        /// Completion signals and Events, as `kubesync run` sends them.
        #[command(flatten)]
        notify: crate::notify::NotifyArgs,
    },
    /// Show per object what a sync would change (exit 1 when anything is OutOfSync).
    Diff {
        apps: Vec<String>,
        #[command(flatten)]
        cluster: online::ClusterArgs,
    },
    /// Show the applications' sync status and health as recorded in the cluster.
    Status {
        apps: Vec<String>,
        #[command(flatten)]
        cluster: online::ClusterArgs,
    },
    /// Delete an application git no longer defines, with its objects
    /// (`--cascade`, the default) or without (`--cascade=false`), as
    /// `argocd app delete`. Refused while git still defines it.
    ///
    /// Examples:
    ///   kubesync delete guestbook --dry-run            what would be deleted
    ///   kubesync delete guestbook --cascade=false      only its Application object
    #[command(verbatim_doc_comment)]
    Delete(Box<delete::DeleteArgs>),
    /// Pin workloads that run a mutable tag to the digest the registry
    /// serves for it today (`repo:tag@sha256:…`), when their pods run
    /// another one.
    ImageSync(image_sync::ImageSyncArgs),
    /// Serve the built-in Kubernetes API emulator until stopped.
    #[cfg(feature = "emulator")]
    Emulator(crate::emulator::EmulatorArgs),
    /// Serve the built-in Kubernetes API emulator (not in this build: it
    /// was built without the cargo feature `emulator`).
    #[cfg(not(feature = "emulator"))]
    Emulator {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
        args: Vec<String>,
    },
    /// Keep the cluster at the state of git: poll every repository, sync
    /// the apps a commit changes, repair drift of selfHeal apps, a full run
    /// every --full-run-interval, and an HTTP API (webhooks, forceRun,
    /// per-app sync, /api/v1/apps). Stops gracefully on SIGTERM/SIGINT.
    ///
    /// Examples:
    ///   kubesync run --emulator --root bootstrap/root.yaml --listen 127.0.0.1:8080
    ///   kubesync run --repo https://git.example.com/org/config.git --revision branch:main
    #[command(verbatim_doc_comment)]
    Run(Box<run::RunArgs>),
}

/// Parses the command line, runs the command and returns the exit code.
pub fn main() -> ExitCode {
    let matches = <Cli as clap::CommandFactory>::command().get_matches();
    let mut cli =
        <Cli as clap::FromArgMatches>::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    // `run` lets a seed's environment fill in only what was not given.
    if let (Command::Run(args), Some(("run", sub))) = (&mut cli.command, matches.subcommand()) {
        args.explicit = seeds::Explicit::from_matches(&matches, sub);
    }
    init_logging(cli.global.verbose);
    let outcome = match run(&cli) {
        Ok(outcome) => outcome,
        Err(e) => {
            errln!("error: {e}");
            e.outcome()
        }
    };
    match stdio::state() {
        // The reader has what it wanted (`kubesync render | head`).
        stdio::Stdout::Closed => Outcome::Ok,
        stdio::Stdout::Failed if outcome == Outcome::Ok => Outcome::Failed,
        _ => outcome,
    }
    .into()
}

/// Runs the command; the error that ends it, if any, is printed by [`main`].
fn run(cli: &Cli) -> Result<Outcome, CliError> {
    match cli.command {
        Command::Tree { ref cluster } => {
            let live = run_async_value(online::live_statuses(cluster));
            offline::tree(&cli.global, live.flatten().as_ref())
        }
        Command::Render { ref apps } => offline::render(&cli.global, apps),
        Command::Plan => offline::plan(&cli.global),
        Command::Bootstrap {
            ref root_manifest,
            ref cluster,
            ref sync,
            ref notify,
        } => run_async(online::bootstrap(
            &cli.global,
            root_manifest.clone(),
            cluster,
            sync,
            notify,
        )),
        Command::Sync {
            ref apps,
            with_deps,
            ref cluster,
            ref sync,
            ref notify,
        } => run_async(online::sync(
            &cli.global,
            apps,
            with_deps,
            cluster,
            sync,
            notify,
        )),
        Command::Diff {
            ref apps,
            ref cluster,
        } => run_async(online::diff(&cli.global, apps, cluster)),
        Command::Status {
            ref apps,
            ref cluster,
        } => run_async(online::status(&cli.global, apps, cluster)),
        Command::Delete(ref args) => run_async(delete::delete(&cli.global, args)),
        Command::ImageSync(ref args) => run_async(image_sync::run(&cli.global, args)),
        Command::Run(ref args) => {
            crate::controller::limit_arenas();
            run_async(run::run(&cli.global, args))
        }
        #[cfg(feature = "emulator")]
        Command::Emulator(ref args) => run_async(async {
            args.clone().run().await.map_err(CliError::Emulator)?;
            Ok(Outcome::Ok)
        }),
        #[cfg(not(feature = "emulator"))]
        Command::Emulator { .. } => Err(CliError::Usage(format!(
            "`kubesync emulator` is not available: {}",
            crate::cluster::NO_EMULATOR
        ))),
    }
}

fn run_async<F: std::future::Future<Output = Result<Outcome, CliError>>>(
    f: F,
) -> Result<Outcome, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(CliError::Runtime)?
        .block_on(f)
}

fn run_async_value<T, F: std::future::Future<Output = T>>(f: F) -> Option<T> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .ok()
        .map(|rt| rt.block_on(f))
}

/// Colour only for a person at a terminal: stderr is a terminal and
/// `NO_COLOR` is unset or empty (<https://no-color.org>).
fn colour_on_stderr() -> bool {
    use std::io::IsTerminal;
    colour(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    )
}

fn colour(terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
}

fn init_logging(verbose: u8) {
    // kube-rs logs every non-2xx answer at error level ("failed with status
    // 503") without naming the object; kubesync's retry loop reports what
    // matters, so that line is only shown at -vv.
    let default = match verbose {
        0 => "warn,kube_client::client::builder=off",
        1 => "info,kubesync=info,kube_client::client::builder=off",
        _ => "debug,kubesync=debug,hyper=info,h2=info,tower=info,rustls=info",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour_on_stderr())
        .with_target(false)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(colour(true, None));
        assert!(colour(true, Some(OsStr::new(""))));
        assert!(!colour(true, Some(OsStr::new("1"))));
        assert!(!colour(false, None));
        assert!(!colour(false, Some(OsStr::new("1"))));
    }

    /// Every command's flags are consistent (unique ids and names): clap
    /// only checks this when a command is built, so check them all here.
    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        // `run` has one --cluster-name (the generators' and the S3 key's).
        let run = Cli::try_parse_from([
            "kubesync",
            "run",
            "--cluster-name",
            "prod-eu",
            "--s3-bucket",
            "versions",
            "--notify-webhook",
            "https://ci.example.com/h",
            "--notify-webhook-secret-file",
            "/etc/kubesync/notify/secret",
            "--webhook-secret-file",
            "/etc/kubesync/webhook/secret",
        ])
        .expect("run's flags parse");
        assert_eq!(run.global.cluster_name.as_deref(), Some("prod-eu"));
        let Command::Run(args) = run.command else {
            panic!("not run")
        };
        assert_eq!(args.notify.s3_bucket.as_deref(), Some("versions"));
        assert!(args.notify.webhook_secret_file.is_some() && args.webhook_secret_file.is_some());
    }
}
