//! `kubesync run`: the controller command. Parses its flags (with the
//! environment as fallback), connects, starts `controller`, and stops it
//! gracefully on SIGTERM or SIGINT (exit 0).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::error::CliError;
use super::online::{connect, ClusterArgs, SyncArgs};
use super::stdio::errln;
use super::{GlobalArgs, Outcome};
use crate::controller::{Controller, ControllerConfig, RootSource, SHUTDOWN_GRACE};
use crate::lease::{LeaderElectionArgs, LeaderElector};
use crate::model::{parse_duration, RevisionSpec};

/// Environment variable holding the webhook secret (when no file is given).
pub const ENV_WEBHOOK_SECRET: &str = "KUBESYNC_WEBHOOK_SECRET";

#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// The repository holding the root manifest (file://, https://); --root
    /// is then a path inside it. Without it, --root is a local path (its git
    /// repository's commits are followed).
    #[arg(long, env = "KUBESYNC_REPO", value_name = "URL")]
    pub repo: Option<String>,
    /// The root repository's revision: branch:X, tag:X, tag:latest,
    /// commit:SHA, or a plain name (default: HEAD, the default branch).
    #[arg(long, env = "KUBESYNC_REVISION", value_name = "REV")]
    pub revision: Option<RevisionSpec>,
    /// How often every repository is polled (one ref lookup each; ±5 % jitter).
    #[arg(long, env = "KUBESYNC_POLL_INTERVAL", value_parser = parse_duration, default_value = "60s", value_name = "DURATION")]
    pub poll_interval: Duration,
    /// How often every app is re-rendered and synced (zero writes when converged).
    #[arg(long, env = "KUBESYNC_FULL_RUN_INTERVAL", value_parser = parse_duration, default_value = "1h", value_name = "DURATION")]
    pub full_run_interval: Duration,
    /// Where the HTTP API listens (/healthz, /readyz, /api/v1/apps,
    /// /api/v1/forceRun, /api/v1/apps/NAME/sync, /api/v1/webhook).
    #[arg(
        long,
        env = "KUBESYNC_LISTEN",
        default_value = "0.0.0.0:8080",
        value_name = "ADDR"
    )]
    pub listen: SocketAddr,
    /// A link to a commit on the status page, `%s` being the sha
    /// (kube-applier's DIFF_URL_FORMAT), e.g.
    /// https://github.com/org/repo/commit/%s.
    #[arg(long, env = "DIFF_URL_FORMAT", value_name = "FORMAT")]
    pub diff_url_format: Option<String>,
    /// Also run image sync (every namespace) this often: workloads running
    /// a mutable tag are pinned to the registry's current digest of it, as
    /// `kubesync image-sync -A` does (off by default; only the leader runs
    /// it).
    #[arg(long, env = "KUBESYNC_IMAGE_SYNC_INTERVAL", value_parser = parse_duration, value_name = "DURATION")]
    pub image_sync_interval: Option<Duration>,
    /// Where self-heal watches each namespaced kind it applies: `auto`
    /// (cluster-wide, or in each namespace the tree puts it in when the
    /// server refuses the cluster-wide list) or `namespaces` (per
    /// namespace from the start: a ServiceAccount with Roles in the managed
    /// namespaces only, as the chart's rbac.mode=namespaced).
    #[arg(
        long,
        env = "KUBESYNC_WATCH_SCOPE",
        default_value = "auto",
        value_name = "SCOPE"
    )]
    pub watch_scope: crate::controller::WatchScope,
    /// File holding the webhook secret (else $KUBESYNC_WEBHOOK_SECRET;
    /// with neither, every webhook is refused).
    #[arg(long, value_name = "PATH")]
    pub webhook_secret_file: Option<PathBuf>,
    /// Completion signals: --notify-webhook, --s3-bucket, AWS_* (the
    /// cluster's name in the S3 key is the global --cluster-name).
    #[command(flatten)]
    pub notify: crate::notify::NotifyArgs,
    #[command(flatten)]
    pub leader: LeaderElectionArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[command(flatten)]
    pub sync: SyncArgs,
    /// Which settings were given rather than defaulted (filled in by
    /// `cli::main`), so a seed's environment fills in only the others.
    #[arg(skip)]
    pub explicit: super::seeds::Explicit,
}

fn webhook_secret(args: &RunArgs) -> Result<Option<Vec<u8>>, CliError> {
    if let Some(p) = &args.webhook_secret_file {
        let text = std::fs::read_to_string(p).map_err(|e| {
            CliError::Controller(format!(
                "cannot read the webhook secret file {}: {e}",
                p.display()
            ))
        })?;
        return Ok(Some(
            text.trim_end_matches(['\n', '\r']).as_bytes().to_vec(),
        ));
    }
    Ok(std::env::var(ENV_WEBHOOK_SECRET)
        .ok()
        .filter(|s| !s.is_empty())
        .map(String::into_bytes))
}

/// `kubesync run`
pub async fn run(global: &GlobalArgs, args: &RunArgs) -> Result<Outcome, CliError> {
    // A seed's environment (KubeSync's REPO, kube-applier's REPO_PATH,
    // git-sync-operator's CONFIG_REPO) fills in what the flags leave unset.
    let (args, seed) = super::seeds::resolve(args)?;
    let args = &args;
    let (seed_root, seed_dir) = match seed {
        Some(s) => (Some(s.root), s.dir),
        None => (None, None),
    };
    let root = match (&args.repo, &seed_root, seed_dir) {
        // The seed's layout at the repository's root.
        (Some(url), Some(_), _) => RootSource::Repo {
            url: url.clone(),
            path: ".".into(),
        },
        (Some(url), None, _) => RootSource::Repo {
            url: url.clone(),
            path: global.root.to_string_lossy().into_owned(),
        },
        (None, Some(_), Some(dir)) => RootSource::Local { manifest: dir },
        (None, Some(seed), None) => {
            return Err(CliError::Usage(format!(
                "{} names no repository",
                seed.describe()
            )))
        }
        (None, None, _) => RootSource::Local {
            manifest: global.root.clone(),
        },
    };
    let mut cfg = ControllerConfig::new(root);
    cfg.seed_root = seed_root;
    cfg.generators = global.generator_env()?;
    cfg.revision = args.revision.clone();
    cfg.overrides = global.repo_overrides.clone();
    cfg.cache_dir = global.cache_dir.clone();
    cfg.poll_interval = args.poll_interval;
    cfg.full_run_interval = args.full_run_interval;
    cfg.listen = Some(args.listen);
    cfg.webhook_secret = webhook_secret(args)?;
    cfg.diff_url_format = args.diff_url_format.clone();
    cfg.watch_scope = args.watch_scope;
    cfg.notify = super::online::notify_config(global, &args.notify)?;
    cfg.sync = args.sync.options(global);
    // kube-applier's LABEL also turns off single objects: a live one
    // labelled LABEL=off is left alone (git's are turned off in the tree).
    if let Some(crate::controller::seeds::SeedRoot::KubeApplier { label }) = &cfg.seed_root {
        cfg.sync.off_label = label.clone();
    }
    // The tree-wide ignoreDifferences of --settings, as bootstrap has them.
    cfg.sync.ignore_differences = super::online::load_settings(global)?.ignore_differences;
    cfg.parallel = global.parallel.max(1);
    cfg.access = crate::controller::RepoAccess {
        git: Some(crate::source::GitAuth::load(&global.git_auth)?),
        helm: match &global.helm_repo_credentials {
            Some(path) => {
                crate::chart::HelmRepoCredentials::load(path).map_err(CliError::Config)?
            }
            None => crate::chart::HelmRepoCredentials::default(),
        },
    };
    let lease = args
        .leader
        .config()
        .map_err(|e| CliError::Usage(e.to_string()))?;
    // Each replica names itself in its requests' User-Agent (audit logs,
    // the emulator's journal).
    let mut cluster = args.cluster.clone();
    cluster.agent = lease.as_ref().map(|l| l.identity.clone());
    let client = connect(&cluster).await?;
    // Only the leader writes; with --leader-elect=false this replica always
    // is. The Lease lives in kubesync's status namespace, which must exist
    // before the first replica can create it.
    let elector = match lease {
        Some(lease) => {
            if let Err(e) = crate::sync::ensure_status_crd(&client).await {
                errln!("warning: cannot install kubesync's Application CRD and namespace: {e}");
            }
            let elector = LeaderElector::spawn(client.kube_client(), lease)
                .map_err(|e| CliError::Controller(e.to_string()))?;
            errln!(
                "leader election: as {} on Lease {}/{}",
                elector.identity(),
                args.leader.lease_namespace,
                args.leader.lease_name
            );
            Some(elector)
        }
        None => None,
    };
    let handle = Controller::start(
        cfg,
        client.clone(),
        elector.as_ref().map(LeaderElector::subscribe),
    )
    .await
    .map_err(|e| CliError::Controller(e.to_string()))?;
    let (image_stop, image_stop_rx) = tokio::sync::watch::channel(false);
    let image_task = args.image_sync_interval.map(|every| {
        let leadership = elector.as_ref().map(LeaderElector::leadership);
        // Image sync's future is not `Send` (as the engine's): it runs on a
        // blocking thread that drives it on this runtime.
        let handle = tokio::runtime::Handle::current();
        let client = client.clone();
        tokio::task::spawn_blocking(move || {
            handle.block_on(crate::image::run_every(
                client.clone(),
                crate::image::Selection {
                    namespaces: crate::image::sync::Namespaces::All,
                    label_selector: String::new(),
                    field_selector: Default::default(),
                },
                crate::image::SyncOpts::default(),
                every,
                move || leadership.as_ref().is_none_or(|l| l.is_leader()),
                image_stop_rx,
            ))
        })
    });
    errln!(
        "kubesync controller running against {}; API on http://{}",
        client.describe(),
        handle.addr().map(|a| a.to_string()).unwrap_or_default()
    );
    wait_for_signal().await;
    errln!("stopping: finishing the apps in flight");
    let _ = image_stop.send(true);
    if let Some(task) = image_task {
        let _ = task.await;
    }
    if handle.shutdown(SHUTDOWN_GRACE).await {
        errln!("stopped");
    } else {
        errln!(
            "stopped after {}s with apps still in flight",
            SHUTDOWN_GRACE.as_secs()
        );
    }
    // The last status write is done: hand the lease over at once, so a
    // standby takes over within its retry period instead of the lease
    // duration.
    if let Some(elector) = elector {
        if let Err(e) = elector.release().await {
            errln!("warning: could not release the lease: {e}");
        }
    }
    Ok(Outcome::Ok)
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
