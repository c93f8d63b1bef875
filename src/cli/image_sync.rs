//! `kubesync image-sync`: parses the selection and registry flags, runs
//! [`crate::image::run_once`] and prints its change set — the
//! kubernetes-image-sync lines (`checking Deployment/x:`, `  c ok`,
//! `  c has to be updated to …`, `update Deployment/x images c`) or, with
//! `-o json`, the report. Exit 0 when everything is in sync or was pinned,
//! 1 when a container or a write failed, 2 for a usage error.

use std::path::PathBuf;

use super::error::CliError;
use super::online::{connect, ClusterArgs};
use super::stdio::{errln, outln};
use super::{GlobalArgs, Outcome, OutputFormat};
use crate::image::sync::{
    ContainerOutcome, ContainerReport, FieldSelector, Namespaces, PinReason, WorkloadReport,
    WriteOutcome,
};
use crate::image::{DockerConfig, RegistryOptions, Report, Selection, SyncOpts};

/// Pin workloads to the registry's current digest of their tag.
///
/// For every Deployment, DaemonSet, StatefulSet and CronJob selected (init
/// containers included), the digests its pods run (`imageID`) are compared
/// with the digest the registry serves for the tag; a container that
/// differs is pinned to `repo:tag@sha256:…` by server-side apply as
/// `kubesync-image-sync`, which owns only the image fields. kubesync's own
/// sync treats such a pin of git's tag as in sync.
///
/// Examples:
///   kubesync image-sync -n shop --dry-run      what would be pinned
///   kubesync image-sync -A -l team=web         every namespace, some workloads
///   kubesync image-sync --docker-config ~/.docker/config.json -o json
#[derive(Debug, Clone, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct ImageSyncArgs {
    /// Check workloads in this namespace (default: the kubeconfig context's).
    #[arg(
        short = 'n',
        long,
        value_name = "NS",
        conflicts_with = "all_namespaces"
    )]
    pub namespace: Option<String>,
    /// Check workloads in every namespace.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Only workloads with these labels (a label selector on the workloads,
    /// not on pods), e.g. `app=web,tier!=batch`.
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    pub selector: Option<String>,
    /// Only workloads matching this field selector (`metadata.name`,
    /// `metadata.namespace`; `=`, `==`, `!=`).
    #[arg(long, value_name = "SELECTOR")]
    pub field_selector: Option<String>,
    /// Report what would be pinned; write nothing.
    #[arg(long, env = "DRY_RUN", value_parser = clap::builder::BoolishValueParser::new(), default_missing_value = "true", num_args = 0..=1)]
    pub dry_run: bool,
    /// Restart instead of pinning: keep the tag and set the pod-template
    /// annotation `kubesync.dev/image-sync-restartedAt`, so pods pull the
    /// tag again (for workloads with `imagePullPolicy: Always`).
    #[arg(long)]
    pub restart: bool,
    /// A docker config file (`~/.docker/config.json`, a mounted
    /// `.dockerconfigjson`) with registry credentials, used after each
    /// workload's own imagePullSecrets.
    #[arg(long, env = "KUBESYNC_DOCKER_CONFIG", value_name = "PATH")]
    pub docker_config: Option<PathBuf>,
    /// A registry (`host[:port]`) that may be reached over plain http
    /// when https fails (repeatable). Loopback registries always may.
    #[arg(long = "insecure-registry", value_name = "HOST")]
    pub insecure_registries: Vec<String>,
    /// A PEM file of certificate authorities to trust for registries, in
    /// addition to the system's (repeatable).
    #[arg(long = "registry-ca", value_name = "PATH")]
    pub registry_cas: Vec<PathBuf>,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

impl ImageSyncArgs {
    fn selection(&self, default_namespace: &str) -> Result<Selection, CliError> {
        let field_selector = FieldSelector::parse(self.field_selector.as_deref().unwrap_or(""))
            .map_err(|e| CliError::ImageSyncUsage(format!("--field-selector: {e}")))?;
        Ok(Selection {
            namespaces: if self.all_namespaces {
                Namespaces::All
            } else {
                Namespaces::One(
                    self.namespace
                        .clone()
                        .unwrap_or_else(|| default_namespace.to_string()),
                )
            },
            label_selector: self.selector.clone().unwrap_or_default(),
            field_selector,
        })
    }

    fn opts(&self) -> Result<SyncOpts, CliError> {
        let docker_config = match &self.docker_config {
            None => None,
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    CliError::ImageSyncUsage(format!(
                        "--docker-config {}: cannot read it: {e}",
                        path.display()
                    ))
                })?;
                Some(DockerConfig::parse(&text).map_err(|e| {
                    CliError::ImageSyncUsage(format!("--docker-config {}: {e}", path.display()))
                })?)
            }
        };
        Ok(SyncOpts {
            dry_run: self.dry_run,
            restart: self.restart,
            docker_config,
            registry: RegistryOptions {
                insecure: self.insecure_registries.clone(),
                ca_files: self.registry_cas.clone(),
                ..RegistryOptions::default()
            },
            concurrency: 0,
        })
    }
}

pub(super) async fn run(global: &GlobalArgs, args: &ImageSyncArgs) -> Result<Outcome, CliError> {
    let opts = args.opts()?;
    if let Some(ca) = args.registry_cas.iter().find(|p| !p.is_file()) {
        return Err(CliError::ImageSyncUsage(format!(
            "--registry-ca {}: no such file",
            ca.display()
        )));
    }
    let client = connect(&args.cluster).await?;
    let selection = args.selection(client.kube_client().default_namespace())?;
    let report = crate::image::run_once(&client, &selection, &opts)
        .await
        .map_err(|e| match e {
            crate::image::sync::ImageSyncError::Registry(r) => {
                CliError::ImageSyncUsage(r.to_string())
            }
            other => CliError::ImageSync(other.to_string()),
        })?;
    match global.output {
        OutputFormat::Json => outln!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        ),
        _ => print_text(&report, matches!(selection.namespaces, Namespaces::All)),
    }
    if global.verbose > 0 {
        errln!(
            "registry: {} manifest requests, {} token requests; API: {}",
            report.registry.manifest_requests,
            report.registry.token_requests,
            report.api.summary()
        );
    }
    Ok(if report.failed() {
        Outcome::Failed
    } else {
        Outcome::Ok
    })
}

fn workload_label(w: &WorkloadReport, with_namespace: bool) -> String {
    if with_namespace {
        format!("{}/{} in {}", w.kind, w.name, w.namespace)
    } else {
        format!("{}/{}", w.kind, w.name)
    }
}

/// The line for one container, after two spaces.
pub fn container_line(c: &ContainerReport) -> String {
    let name = if c.init {
        format!("{} (init)", c.name)
    } else {
        c.name.clone()
    };
    match &c.outcome {
        ContainerOutcome::Ok { .. } => format!("{name} ok"),
        ContainerOutcome::Pin { to, why, .. } => match why {
            PinReason::Running { .. } | PinReason::Moved { .. } => {
                format!("{name} has to be updated to {to}")
            }
            PinReason::NoPods => format!("{name} has to be updated to {to} (no pods run it now)"),
        },
        ContainerOutcome::Restart { digest, running } => format!(
            "{name} runs {} but the tag is at {}: restarting",
            running
                .iter()
                .map(|d| d.short().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            digest.short()
        ),
        ContainerOutcome::LeftAlone {
            pinned,
            digest,
            owners,
        } => format!(
            "{name} is pinned to {} by {}, the tag is now at {} (left alone: the pin is not image-sync's)",
            pinned.short(),
            owners.join(", "),
            digest.short()
        ),
        ContainerOutcome::Pending { .. } => {
            format!("{name} ok (no pod reports a digest for it yet)")
        }
        ContainerOutcome::DigestOnly => format!("{name} ok (pinned by digest, no tag to follow)"),
        ContainerOutcome::Failed { reason } => format!("{name} cannot be checked: {reason}"),
    }
}

fn print_text(report: &Report, with_namespace: bool) {
    for w in &report.workloads {
        let label = workload_label(w, with_namespace);
        outln!("checking {label}:");
        for c in &w.containers {
            outln!("  {}", container_line(c));
        }
        match &w.write {
            WriteOutcome::None => {}
            WriteOutcome::Applied {
                containers,
                restarted,
            } => {
                if !containers.is_empty() {
                    outln!("update {label} images {}", containers.join(" "));
                }
                if *restarted {
                    outln!("restart {label}");
                }
            }
            WriteOutcome::DryRun {
                containers,
                restarted,
            } => {
                if !containers.is_empty() {
                    outln!(
                        "would update {label} images {} (dry run)",
                        containers.join(" ")
                    );
                }
                if *restarted {
                    outln!("would restart {label} (dry run)");
                }
            }
            WriteOutcome::Failed { error } => outln!("error: cannot update {label}: {error}"),
        }
    }
    let failed = report.workloads.iter().filter(|w| w.failed()).count();
    outln!(
        "{} workload(s) checked, {} {}, {} with failures",
        report.workloads.len(),
        report.updated(),
        if report.dry_run {
            "would be updated"
        } else {
            "updated"
        },
        failed
    );
}
