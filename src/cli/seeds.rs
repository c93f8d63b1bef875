//! `kubesync run`'s precedence between its own settings and a seed's
//! environment ([`crate::controller::seeds`] reads the variables): a flag,
//! or kubesync's own variable for it (`KUBESYNC_POLL_INTERVAL`, …), always
//! wins; a seed's variable fills in what neither gave; kubesync's defaults
//! come last. The seed's layout stands for the root only when `--root`
//! (`KUBESYNC_ROOT`) is not given.

use clap::parser::ValueSource;
use clap::ArgMatches;

use super::run::RunArgs;
use super::stdio::errln;
use crate::controller::seeds::{SeedRoot, SeedSettings};

/// Which of `run`'s settings were given (on the command line or through
/// kubesync's own environment variable) rather than defaulted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Explicit {
    pub root: bool,
    pub repo: bool,
    pub revision: bool,
    pub poll_interval: bool,
    pub full_run_interval: bool,
    pub listen: bool,
    pub server: bool,
    pub dry_run: bool,
}

impl Explicit {
    /// From the parsed command line: `top` (global flags) and `run`'s own.
    pub fn from_matches(top: &ArgMatches, run: &ArgMatches) -> Self {
        let given = |m: &ArgMatches, id: &str| {
            matches!(
                m.try_get_raw(id).ok().flatten().and(m.value_source(id)),
                Some(ValueSource::CommandLine | ValueSource::EnvVariable)
            )
        };
        Explicit {
            root: given(top, "root") || given(run, "root"),
            repo: given(run, "repo"),
            revision: given(run, "revision"),
            poll_interval: given(run, "poll_interval"),
            full_run_interval: given(run, "full_run_interval"),
            listen: given(run, "listen"),
            server: given(run, "server"),
            dry_run: given(run, "dry_run"),
        }
    }
}

/// `args` with the seed's settings filled in where kubesync's were not
/// given, and the seed's layout when it stands for the root. Pure.
pub fn apply(args: &RunArgs, seed: SeedSettings) -> (RunArgs, Option<SeedRoot>, Vec<String>) {
    let mut out = args.clone();
    let x = &args.explicit;
    let mut notes = Vec::new();
    let name = seed.seed.name();
    if !seed.ignored.is_empty() {
        notes.push(format!(
            "{name} is configured ({}); ignoring {}",
            seed.seed.repo_var(),
            seed.ignored.join(", ")
        ));
    }
    if !x.repo {
        out.repo = seed.repo.clone().or(out.repo);
    } else if seed.repo.is_some() {
        notes.push(format!("--repo wins over {}", seed.seed.repo_var()));
    }
    if !x.revision && seed.revision.is_some() {
        out.revision = seed.revision.clone();
    }
    if let (false, Some(p)) = (x.poll_interval, seed.poll_interval) {
        out.poll_interval = p;
    }
    if let (false, Some(f)) = (x.full_run_interval, seed.full_run_interval) {
        out.full_run_interval = f;
    }
    if let (false, Some(l)) = (x.listen, seed.listen) {
        out.listen = l;
    }
    if let (false, Some(s)) = (x.server, &seed.server) {
        out.cluster.server = Some(s.clone());
    }
    if let (false, Some(d)) = (x.dry_run, seed.dry_run) {
        out.sync.dry_run = d;
    }
    let root = if x.root {
        notes.push(format!("--root wins over {name}'s layout"));
        None
    } else {
        Some(seed.root.clone())
    };
    (out, root, notes)
}

/// A seed's layout standing for the root, and the local directory it
/// points at (kube-applier's `REPO_PATH`; None: the repository's root).
pub struct SeedLayout {
    pub root: SeedRoot,
    pub dir: Option<std::path::PathBuf>,
}

/// Reads the environment's seed (if any) and applies it to `args`; the
/// notes go to stderr.
pub fn resolve(args: &RunArgs) -> Result<(RunArgs, Option<SeedLayout>), super::error::CliError> {
    let seed = crate::controller::seeds::from_env(|k| std::env::var(k).ok())
        .map_err(|e| super::error::CliError::Usage(e.to_string()))?;
    let Some(seed) = seed else {
        return Ok((args.clone(), None));
    };
    let local = seed.local_path.clone();
    let which = seed.seed;
    let (out, root, notes) = apply(args, seed);
    errln!(
        "configured by {which}'s environment ({}){}",
        which.repo_var(),
        if root.is_some() {
            ", its layout standing for the root"
        } else {
            ""
        }
    );
    for n in notes {
        errln!("note: {n}");
    }
    Ok((out, root.map(|root| SeedLayout { root, dir: local })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, FromArgMatches};
    use std::time::Duration;

    fn parse(argv: &[&str]) -> RunArgs {
        let matches = crate::cli::Cli::command()
            .try_get_matches_from(argv)
            .unwrap();
        let cli = crate::cli::Cli::from_arg_matches(&matches).unwrap();
        let crate::cli::Command::Run(mut args) = cli.command else {
            panic!("not run")
        };
        args.explicit = Explicit::from_matches(&matches, matches.subcommand().unwrap().1);
        *args
    }

    fn kube_applier() -> SeedSettings {
        crate::controller::seeds::from_env(|k| match k {
            "REPO_PATH" => Some("/git/repo".into()),
            "LISTEN_PORT" => Some("2020".into()),
            "POLL_INTERVAL_SECONDS" => Some("7".into()),
            "SERVER" => Some("https://api:6443".into()),
            "DRY_RUN" => Some("true".into()),
            _ => None,
        })
        .unwrap()
        .unwrap()
    }

    #[test]
    fn flags_win_over_the_seed_and_the_seed_over_defaults() {
        let args = parse(&["kubesync", "run"]);
        assert_eq!(args.explicit, Explicit::default());
        let (out, root, _) = apply(&args, kube_applier());
        assert_eq!(out.poll_interval, Duration::from_secs(7));
        assert_eq!(out.full_run_interval, Duration::from_secs(300));
        assert_eq!(out.listen.to_string(), "0.0.0.0:2020");
        assert_eq!(out.cluster.server.as_deref(), Some("https://api:6443"));
        assert!(matches!(root, Some(SeedRoot::KubeApplier { .. })));

        let args = parse(&[
            "kubesync",
            "--root",
            "my/root.yaml",
            "run",
            "--poll-interval",
            "2s",
            "--listen",
            "127.0.0.1:9",
            "--server",
            "http://127.0.0.1:1",
            "--full-run-interval",
            "10m",
        ]);
        assert!(args.explicit.root && args.explicit.poll_interval && args.explicit.server);
        let (out, root, notes) = apply(&args, kube_applier());
        assert_eq!(out.poll_interval, Duration::from_secs(2));
        assert_eq!(out.full_run_interval, Duration::from_secs(600));
        assert_eq!(out.listen.to_string(), "127.0.0.1:9");
        assert_eq!(out.cluster.server.as_deref(), Some("http://127.0.0.1:1"));
        assert_eq!(root, None, "--root wins over the layout");
        assert!(notes.iter().any(|n| n.contains("--root wins")), "{notes:?}");
    }

    #[test]
    fn the_seed_repository_and_revision_fill_in() {
        let seed = crate::controller::seeds::from_env(|k| match k {
            "CONFIG_REPO" => Some("https://g/www-config".into()),
            "CONFIG_BRANCH" => Some("main".into()),
            _ => None,
        })
        .unwrap()
        .unwrap();
        let (out, root, _) = apply(&parse(&["kubesync", "run"]), seed.clone());
        assert_eq!(out.repo.as_deref(), Some("https://g/www-config"));
        assert_eq!(out.revision, Some("branch:main".parse().unwrap()));
        assert_eq!(root, Some(SeedRoot::GitSyncOperator));
        let (out, _, notes) = apply(
            &parse(&[
                "kubesync",
                "run",
                "--repo",
                "file:///x",
                "--revision",
                "tag:v1",
            ]),
            seed,
        );
        assert_eq!(out.repo.as_deref(), Some("file:///x"));
        assert_eq!(out.revision, Some("tag:v1".parse().unwrap()));
        assert!(notes
            .iter()
            .any(|n| n.contains("--repo wins over CONFIG_REPO")));
    }
}
