//! The seeds' environment-only configurations: `kubesync run` started with
//! nothing but the environment variables of KubeSync, kube-applier or
//! git-sync-operator does what that seed did. This module is pure: it maps
//! a set of variables to [`SeedSettings`] (each setting `None` when the seed
//! leaves it to kubesync's default) and, per commit, a seed's layout to the
//! root it stands for ([`SeedRoot::roots`]), so no root manifest is needed.
//!
//! | seed | repository | layout |
//! |---|---|---|
//! | KubeSync | `REPO` (one or more URLs, separated by spaces or commas) at `VERSION_MODE` (default `branch:master`) | one app per repository, named after it: `CMD`'s `$OUTDIR`, else `YMLDIR`, else `kubernetes/`, else the repository root |
//! | kube-applier | `REPO_PATH` (a local path in a git work tree) | each level-1 directory is its namespace's app, gated by `LABEL` |
//! | git-sync-operator | `CONFIG_REPO` at `CONFIG_BRANCH` (default `master`) | `$CLUSTER_NAME/$namespace` plus `$namespace` directories |
//!
//! The caller decides precedence: a kubesync flag (or its `KUBESYNC_*`
//! variable) always wins over a seed's variable. Two seeds' repository
//! variables at once are an error naming both.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};

use crate::model::{Application, ModelError, ObjectOrigin, RevisionSpec};

/// The systems kubesync grew from whose environment it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seed {
    KubeSync,
    KubeApplier,
    GitSyncOperator,
}

impl Seed {
    pub const ALL: [Seed; 3] = [Seed::KubeSync, Seed::KubeApplier, Seed::GitSyncOperator];

    pub fn name(self) -> &'static str {
        match self {
            Seed::KubeSync => "KubeSync",
            Seed::KubeApplier => "kube-applier",
            Seed::GitSyncOperator => "git-sync-operator",
        }
    }

    /// The variable whose presence selects this seed (its repository).
    pub fn repo_var(self) -> &'static str {
        match self {
            Seed::KubeSync => "REPO",
            Seed::KubeApplier => "REPO_PATH",
            Seed::GitSyncOperator => "CONFIG_REPO",
        }
    }

    /// The seed's other variables this module reads (for the warning about
    /// another seed's variables being ignored). `DIFF_URL_FORMAT`,
    /// `DRY_RUN`, `CLUSTER_NAME`, `MANAGED_NAMESPACES` and `REPOCREDS` are
    /// read by kubesync's own flags whatever the seed.
    fn other_vars(self) -> &'static [&'static str] {
        match self {
            Seed::KubeSync => &["INTERVAL", "VERSION_MODE", "CMD", "YMLDIR", "DRYRUN"],
            Seed::KubeApplier => &[
                "LISTEN_PORT",
                "SERVER",
                "POLL_INTERVAL_SECONDS",
                "FULL_RUN_INTERVAL_SECONDS",
                "LABEL",
            ],
            Seed::GitSyncOperator => &["CONFIG_BRANCH", "GIT_SYNC_INTERVAL"],
        }
    }
}

impl std::fmt::Display for Seed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// KubeSync's `INTERVAL` default (seconds).
pub const KUBESYNC_INTERVAL: Duration = Duration::from_secs(300);
/// KubeSync's `VERSION_MODE` default.
pub const KUBESYNC_VERSION_MODE: &str = "branch:master";
/// kube-applier's `POLL_INTERVAL_SECONDS` default.
pub const KUBE_APPLIER_POLL: Duration = Duration::from_secs(5);
/// kube-applier's `FULL_RUN_INTERVAL_SECONDS` default.
pub const KUBE_APPLIER_FULL_RUN: Duration = Duration::from_secs(300);
/// git-sync-operator's `CONFIG_BRANCH` default.
pub const GIT_SYNC_BRANCH: &str = "master";
/// git-sync-operator's `GIT_SYNC_INTERVAL` default (seconds).
pub const GIT_SYNC_INTERVAL: Duration = Duration::from_secs(60);
/// What `0` ("no wait between checks") becomes for a poll interval: a
/// local ref read this often costs next to nothing.
pub const CONTINUOUS_POLL: Duration = Duration::from_secs(1);

/// What one seed's environment asks of `kubesync run`. `None`: the seed
/// leaves it to kubesync (or to kubesync's own environment variable).
#[derive(Debug, Clone, PartialEq)]
pub struct SeedSettings {
    pub seed: Seed,
    /// `--repo`.
    pub repo: Option<String>,
    /// The local directory the root stands for (kube-applier's `REPO_PATH`).
    pub local_path: Option<PathBuf>,
    /// `--revision`.
    pub revision: Option<RevisionSpec>,
    pub poll_interval: Option<Duration>,
    pub full_run_interval: Option<Duration>,
    /// `--listen`.
    pub listen: Option<SocketAddr>,
    /// `--server`.
    pub server: Option<String>,
    /// `--dry-run`.
    pub dry_run: Option<bool>,
    /// The root the seed stands for when no `--root` is given.
    pub root: SeedRoot,
    /// Variables of other seeds that were set and are ignored.
    pub ignored: Vec<&'static str>,
}

/// A seed's layout: the in-memory root it stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeedRoot {
    /// One app: `CMD` (when its program is there) as a transform, else
    /// `YMLDIR`, else `kubernetes/` when it exists, else the repository root.
    ///
    /// `REPO` may name several repositories: the first is the root
    /// repository (`--repo`), each other one is an app of its own with the
    /// same chain (and `CMD`, `YMLDIR`), at the root's revision.
    KubeSync {
        /// The root repository's app's name (the repository's).
        name: String,
        /// `CMD`, split into words as the shell splits `$CMD`.
        cmd: Option<Vec<String>>,
        ymldir: Option<String>,
        /// `REPO`'s further repositories.
        others: Vec<SeedRepo>,
    },
    /// An ApplicationSet over `namespaceDirectories` (with `LABEL`'s gate).
    KubeApplier { label: Option<String> },
    /// An ApplicationSet over `clusterNamespaceDirectories` (`CLUSTER_NAME`,
    /// `MANAGED_NAMESPACES` from kubesync's flags of those names).
    GitSyncOperator,
}

/// One more of KubeSync's repositories: its app's name and URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedRepo {
    pub name: String,
    pub url: String,
}

/// How a seed root reaches repositories other than the root one (KubeSync's
/// further `REPO` URLs): a checkout of `url` at `revision` (None when it
/// cannot be had: the app is still made, and fails when it renders, naming
/// the repository).
pub struct OtherRepos<'a> {
    pub revision: Option<RevisionSpec>,
    pub checkout: &'a dyn Fn(&str) -> Option<PathBuf>,
}

impl OtherRepos<'_> {
    /// None of them is at hand (each app then takes its path from `YMLDIR`,
    /// else the repository root).
    pub fn none() -> OtherRepos<'static> {
        OtherRepos {
            revision: None,
            checkout: &|_| None,
        }
    }
}

/// A seed variable kubesync cannot honour, or an ambiguous mix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SeedError {
    #[error("the environment configures more than one seed ({}): set only one of them", .0.join(", "))]
    Ambiguous(Vec<String>),
    #[error("{seed}'s {var}=\"{value}\": {why}")]
    Invalid {
        seed: Seed,
        var: &'static str,
        value: String,
        why: String,
    },
}

/// Reads one seed's settings from the environment (`var` returns a
/// variable's value; empty counts as unset). `Ok(None)`: no seed's
/// repository variable is set, so the environment configures no seed.
pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Option<SeedSettings>, SeedError> {
    let get = |name: &str| {
        var(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let present: Vec<Seed> = Seed::ALL
        .into_iter()
        .filter(|s| get(s.repo_var()).is_some())
        .collect();
    let seed = match present.as_slice() {
        [] => return Ok(None),
        [one] => *one,
        many => {
            return Err(SeedError::Ambiguous(
                many.iter()
                    .map(|s| format!("{} ({s})", s.repo_var()))
                    .collect(),
            ))
        }
    };
    let invalid = |var: &'static str, value: &str, why: &str| SeedError::Invalid {
        seed,
        var,
        value: value.to_string(),
        why: why.to_string(),
    };
    let seconds =
        |name: &'static str, zero: Option<Duration>| -> Result<Option<Duration>, SeedError> {
            let Some(v) = get(name) else { return Ok(None) };
            let n: u64 = v
                .parse()
                .map_err(|_| invalid(name, &v, "expected a whole number of seconds"))?;
            match (n, zero) {
                (0, Some(z)) => Ok(Some(z)),
                (0, None) => Err(invalid(
                    name,
                    &v,
                    "0 (back-to-back runs) is not supported: give a positive number of seconds",
                )),
                (n, _) => Ok(Some(Duration::from_secs(n))),
            }
        };
    let ignored: Vec<&'static str> = Seed::ALL
        .into_iter()
        .filter(|s| *s != seed)
        .flat_map(|s| s.other_vars().iter().copied())
        .filter(|v| get(v).is_some())
        .collect();
    let mut out = SeedSettings {
        seed,
        repo: None,
        local_path: None,
        revision: None,
        poll_interval: None,
        full_run_interval: None,
        listen: None,
        server: None,
        dry_run: None,
        root: SeedRoot::GitSyncOperator,
        ignored,
    };
    match seed {
        Seed::KubeSync => {
            let urls: Vec<String> = get("REPO")
                .unwrap_or_default()
                .split(|c: char| c.is_whitespace() || c == ',')
                .filter(|u| !u.is_empty())
                .map(str::to_string)
                .collect();
            let mut names = unique_names(&urls).into_iter();
            let name = names.next().unwrap_or_else(|| "kubesync".into());
            let others = urls
                .iter()
                .skip(1)
                .zip(names)
                .map(|(url, name)| SeedRepo {
                    name,
                    url: url.clone(),
                })
                .collect();
            let repo = urls.first().cloned().unwrap_or_default();
            let mode = get("VERSION_MODE").unwrap_or_else(|| KUBESYNC_VERSION_MODE.into());
            let revision: RevisionSpec = match mode.split_once(':') {
                Some(("branch" | "tag" | "commit", _)) => mode
                    .parse()
                    .map_err(|e: String| invalid("VERSION_MODE", &mode, &e))?,
                _ => {
                    return Err(invalid(
                        "VERSION_MODE",
                        &mode,
                        "expected branch:NAME, commit:SHA, tag:NAME or tag:latest",
                    ))
                }
            };
            // KubeSync pulls and applies every INTERVAL: both the poll and
            // the full run (a converged full run writes nothing).
            let every = seconds("INTERVAL", None)?.unwrap_or(KUBESYNC_INTERVAL);
            out.poll_interval = Some(every);
            out.full_run_interval = Some(every);
            out.revision = Some(revision);
            out.dry_run = get("DRYRUN").map(|v| truthy(&v));
            out.root = SeedRoot::KubeSync {
                name,
                cmd: get("CMD").map(|c| c.split_whitespace().map(String::from).collect()),
                ymldir: get("YMLDIR"),
                others,
            };
            out.repo = Some(repo);
        }
        Seed::KubeApplier => {
            out.local_path = get("REPO_PATH").map(PathBuf::from);
            out.poll_interval = Some(
                seconds("POLL_INTERVAL_SECONDS", Some(CONTINUOUS_POLL))?
                    .unwrap_or(KUBE_APPLIER_POLL),
            );
            out.full_run_interval =
                Some(seconds("FULL_RUN_INTERVAL_SECONDS", None)?.unwrap_or(KUBE_APPLIER_FULL_RUN));
            if let Some(p) = get("LISTEN_PORT") {
                let port: u16 = p
                    .parse()
                    .map_err(|_| invalid("LISTEN_PORT", &p, "expected a port number"))?;
                out.listen = Some(SocketAddr::from(([0, 0, 0, 0], port)));
            }
            out.server = get("SERVER");
            let label = get("LABEL");
            if let Some(l) = &label {
                crate::model::validate_dns1123_subdomain(l.rsplit('/').next().unwrap_or(l))
                    .map_err(|e| invalid("LABEL", l, &format!("not a label key: {e}")))?;
            }
            out.root = SeedRoot::KubeApplier { label };
        }
        Seed::GitSyncOperator => {
            out.repo = get("CONFIG_REPO");
            let branch = get("CONFIG_BRANCH").unwrap_or_else(|| GIT_SYNC_BRANCH.into());
            out.revision = Some(
                format!("branch:{branch}")
                    .parse()
                    .map_err(|e: String| invalid("CONFIG_BRANCH", &branch, &e))?,
            );
            let every =
                seconds("GIT_SYNC_INTERVAL", Some(CONTINUOUS_POLL))?.unwrap_or(GIT_SYNC_INTERVAL);
            out.poll_interval = Some(every);
            out.root = SeedRoot::GitSyncOperator;
        }
    }
    Ok(Some(out))
}

/// A shell's idea of "set": anything but empty, `0`, `false`, `no`, `off`.
fn truthy(v: &str) -> bool {
    !matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "" | "0" | "false" | "no" | "off"
    )
}

/// An app name per repository URL ([`app_name_of`]), made unique by
/// `-2`, `-3`, … in order (two repositories both called `config`).
fn unique_names(urls: &[String]) -> Vec<String> {
    let mut taken = std::collections::BTreeSet::new();
    urls.iter()
        .map(|url| {
            let base = app_name_of(url);
            let mut name = base.clone();
            let mut n = 2;
            while !taken.insert(name.clone()) {
                let suffix = format!("-{n}");
                let keep = 63 - suffix.len();
                name = format!(
                    "{}{suffix}",
                    base.chars()
                        .take(keep)
                        .collect::<String>()
                        .trim_end_matches('-')
                );
                n += 1;
            }
            name
        })
        .collect()
}

/// An app name from a repository URL: its last segment without `.git`,
/// lower-cased, with anything outside `[a-z0-9-]` made `-` ("kubesync" when
/// nothing is left).
fn app_name_of(url: &str) -> String {
    let last = url
        .trim_end_matches('/')
        .rsplit(['/', ':'])
        .next()
        .unwrap_or("")
        .trim_end_matches(".git");
    let mut name: String = last
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    name = name.trim_matches('-').chars().take(63).collect();
    let name = name.trim_matches('-').to_string();
    if name.is_empty() {
        "kubesync".into()
    } else {
        name
    }
}

/// One KubeSync app, by KubeSync's chain: `CMD`'s `$OUTDIR` (when its
/// program is there) → `YMLDIR` → `kubernetes/` → the repository's root.
/// `dir`: the repository's checkout (None: not at hand, so neither `CMD`'s
/// path nor `kubernetes/` can be seen there); `join` makes a path of the
/// repository relative to its checkout.
fn kubesync_app(
    name: &str,
    cmd: &Option<Vec<String>>,
    ymldir: &Option<String>,
    dir: Option<&Path>,
    join: &dyn Fn(&str) -> String,
) -> Value {
    let exists = |p: &str, file: bool| {
        dir.is_some_and(|d| {
            let p = d.join(join(p));
            if file {
                p.is_file()
            } else {
                p.is_dir()
            }
        })
    };
    let program = cmd.as_ref().and_then(|c| c.first());
    // A bare name is found on PATH by the renderer (or fails there, naming
    // it); a path must exist in the commit.
    let cmd_exists = program.is_some_and(|p| !p.contains('/') || exists(p, true));
    let mut source = json!({});
    if let (true, Some(cmd)) = (cmd_exists, cmd) {
        source["path"] = json!(join(""));
        source["transform"] = json!({ "command": cmd });
    } else if let Some(y) = ymldir {
        source["path"] = json!(join(y));
    } else if exists("kubernetes", false) {
        source["path"] = json!(join("kubernetes"));
    } else {
        source["path"] = json!(join(""));
    }
    json!({
        "apiVersion": crate::model::KUBESYNC_API_VERSION,
        "kind": "Application",
        "metadata": {"name": name},
        // `kubectl apply` of anything: system services included.
        "spec": {"tier": "system", "source": source},
    })
}

impl SeedRoot {
    /// What the environment's root is called (errors and the status page).
    pub fn describe(&self) -> &'static str {
        match self {
            SeedRoot::KubeSync { .. } => "KubeSync's environment (REPO, CMD, YMLDIR)",
            SeedRoot::KubeApplier { .. } => "kube-applier's environment (REPO_PATH, LABEL)",
            SeedRoot::GitSyncOperator => {
                "git-sync-operator's environment (CONFIG_REPO, CLUSTER_NAME)"
            }
        }
    }

    /// The root's objects for a checkout at `dir`, `base` being the
    /// directory the seed points at, relative to the checkout ("" or "."
    /// for its root). Reads only whether paths exist.
    pub fn objects(&self, dir: &Path, base: &str) -> Vec<Value> {
        self.objects_with(dir, base, &OtherRepos::none())
    }

    /// [`Self::objects`], reaching KubeSync's further repositories through
    /// `repos` (their checkouts decide each app's path by the same chain).
    pub fn objects_with(&self, dir: &Path, base: &str, repos: &OtherRepos<'_>) -> Vec<Value> {
        let base = match base.trim_matches('/') {
            "" => ".".to_string(),
            b => b.to_string(),
        };
        let join = |p: &str| -> String {
            let p = p.trim_start_matches("./").trim_matches('/');
            match (base.as_str(), p) {
                (".", "") | (".", ".") => ".".into(),
                (".", p) => p.into(),
                (b, "") | (b, ".") => b.into(),
                (b, p) => format!("{b}/{p}"),
            }
        };
        match self {
            SeedRoot::KubeSync {
                name,
                cmd,
                ymldir,
                others,
            } => {
                let mut apps = vec![kubesync_app(name, cmd, ymldir, Some(dir), &join)];
                for other in others {
                    let checkout = (repos.checkout)(&other.url);
                    let at_root = |p: &str| -> String {
                        match p.trim_start_matches("./").trim_matches('/') {
                            "" | "." => ".".into(),
                            p => p.into(),
                        }
                    };
                    let mut app =
                        kubesync_app(&other.name, cmd, ymldir, checkout.as_deref(), &at_root);
                    app["spec"]["source"]["repoURL"] = json!(other.url);
                    if let Some(rev) = &repos.revision {
                        app["spec"]["source"]["targetRevision"] = json!(rev.to_string());
                    }
                    apps.push(app);
                }
                apps
            }
            SeedRoot::KubeApplier { label } => {
                let mut gen = json!({ "path": base });
                if let Some(l) = label {
                    gen["label"] = json!(l);
                }
                vec![json!({
                    "apiVersion": crate::model::KUBESYNC_API_VERSION,
                    "kind": "ApplicationSet",
                    "metadata": {"name": "kube-applier"},
                    "spec": {
                        "tier": "system",
                        "generators": [{"namespaceDirectories": gen}],
                        "template": {
                            "metadata": {"name": "{{namespace}}"},
                            "spec": {
                                "source": {"path": "{{path}}"},
                                "destination": {"namespace": "{{namespace}}"},
                                // kube-applier applies with prune, per namespace.
                                "syncPolicy": {"automated": {"prune": true}},
                            },
                        },
                    },
                })]
            }
            SeedRoot::GitSyncOperator => vec![json!({
                "apiVersion": crate::model::KUBESYNC_API_VERSION,
                "kind": "ApplicationSet",
                "metadata": {"name": "git-sync-operator"},
                "spec": {
                    "tier": "system",
                    "generators": [{"clusterNamespaceDirectories": {"path": base}}],
                    "template": {
                        "metadata": {"name": "{{namespace}}"},
                        "spec": {
                            "source": {"path": "{{path}}"},
                            "destination": {"namespace": "{{namespace}}"},
                        },
                    },
                },
            })],
        }
    }

    /// The root's Applications for a checkout at `dir` (see [`Self::objects`]).
    pub fn roots(&self, dir: &Path, base: &str) -> Result<Vec<Application>, ModelError> {
        self.roots_with(dir, base, &OtherRepos::none())
    }

    /// [`Self::roots`] with KubeSync's further repositories at hand.
    pub fn roots_with(
        &self,
        dir: &Path,
        base: &str,
        repos: &OtherRepos<'_>,
    ) -> Result<Vec<Application>, ModelError> {
        self.objects_with(dir, base, repos)
            .iter()
            .enumerate()
            .map(|(doc, v)| {
                Application::from_object(
                    v,
                    &ObjectOrigin {
                        file: PathBuf::from(format!("<{}>", self.describe())),
                        doc,
                    },
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> Result<Option<SeedSettings>, SeedError> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        from_env(|k| m.get(k).cloned())
    }

    fn secs(n: u64) -> Option<Duration> {
        Some(Duration::from_secs(n))
    }

    #[test]
    fn no_seed_variable_means_no_seed() {
        assert_eq!(env(&[]), Ok(None));
        // Other seeds' settings alone select nothing (INTERVAL, LABEL and
        // SERVER are common names).
        assert_eq!(
            env(&[("INTERVAL", "5"), ("LABEL", "x"), ("REPO", "")]),
            Ok(None)
        );
    }

    #[test]
    fn each_seed_maps_to_kubesync_settings() {
        struct Case {
            env: &'static [(&'static str, &'static str)],
            seed: Seed,
            repo: Option<&'static str>,
            revision: Option<&'static str>,
            poll: Option<Duration>,
            full: Option<Duration>,
            listen: Option<&'static str>,
            dry_run: Option<bool>,
        }
        let cases = [
            Case {
                env: &[("REPO", "https://git.example/org/cluster-config.git")],
                seed: Seed::KubeSync,
                repo: Some("https://git.example/org/cluster-config.git"),
                revision: Some("branch:master"),
                poll: secs(300),
                full: secs(300),
                listen: None,
                dry_run: None,
            },
            Case {
                env: &[
                    ("REPO", "https://git.example/r.git"),
                    ("INTERVAL", "30"),
                    ("VERSION_MODE", "tag:latest"),
                    ("DRYRUN", "true"),
                ],
                seed: Seed::KubeSync,
                repo: Some("https://git.example/r.git"),
                revision: Some("tag:latest"),
                poll: secs(30),
                full: secs(30),
                listen: None,
                dry_run: Some(true),
            },
            Case {
                env: &[
                    ("REPO", "https://g/r"),
                    ("VERSION_MODE", "commit:abcdef0"),
                    ("DRYRUN", "0"),
                ],
                seed: Seed::KubeSync,
                repo: Some("https://g/r"),
                revision: Some("commit:abcdef0"),
                poll: secs(300),
                full: secs(300),
                listen: None,
                dry_run: Some(false),
            },
            Case {
                env: &[
                    ("REPO_PATH", "/git/repo/manifests"),
                    ("LISTEN_PORT", "2020"),
                ],
                seed: Seed::KubeApplier,
                repo: None,
                revision: None,
                poll: secs(5),
                full: secs(300),
                listen: Some("0.0.0.0:2020"),
                dry_run: None,
            },
            Case {
                env: &[
                    ("REPO_PATH", "/git/repo"),
                    ("POLL_INTERVAL_SECONDS", "0"),
                    ("FULL_RUN_INTERVAL_SECONDS", "60"),
                ],
                seed: Seed::KubeApplier,
                repo: None,
                revision: None,
                poll: Some(CONTINUOUS_POLL),
                full: secs(60),
                listen: None,
                dry_run: None,
            },
            Case {
                env: &[("CONFIG_REPO", "https://github.com/mozmeao/www-config")],
                seed: Seed::GitSyncOperator,
                repo: Some("https://github.com/mozmeao/www-config"),
                revision: Some("branch:master"),
                poll: secs(60),
                full: None,
                listen: None,
                dry_run: None,
            },
            Case {
                env: &[
                    ("CONFIG_REPO", "https://g/www-config"),
                    ("CONFIG_BRANCH", "main"),
                    ("GIT_SYNC_INTERVAL", "15"),
                ],
                seed: Seed::GitSyncOperator,
                repo: Some("https://g/www-config"),
                revision: Some("branch:main"),
                poll: secs(15),
                full: None,
                listen: None,
                dry_run: None,
            },
        ];
        for c in cases {
            let s = env(c.env).unwrap().unwrap();
            let what = format!("{:?}", c.env);
            assert_eq!(s.seed, c.seed, "{what}");
            assert_eq!(s.repo.as_deref(), c.repo, "{what}");
            assert_eq!(s.revision, c.revision.map(|r| r.parse().unwrap()), "{what}");
            assert_eq!(s.poll_interval, c.poll, "{what}");
            assert_eq!(s.full_run_interval, c.full, "{what}");
            assert_eq!(s.listen, c.listen.map(|l| l.parse().unwrap()), "{what}");
            assert_eq!(s.dry_run, c.dry_run, "{what}");
        }
        let ka = env(&[
            ("REPO_PATH", "/r"),
            ("SERVER", "https://api:6443"),
            ("LABEL", "kube-applier"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(ka.server.as_deref(), Some("https://api:6443"));
        assert_eq!(ka.local_path, Some(PathBuf::from("/r")));
        assert_eq!(
            ka.root,
            SeedRoot::KubeApplier {
                label: Some("kube-applier".into())
            }
        );
        let ks = env(&[
            ("REPO", "git@github.com:Org/My_Config.git"),
            ("CMD", "./transform.sh -o $OUTDIR -i $INDIR"),
            ("YMLDIR", "out"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(
            ks.root,
            SeedRoot::KubeSync {
                name: "my-config".into(),
                cmd: Some(vec![
                    "./transform.sh".into(),
                    "-o".into(),
                    "$OUTDIR".into(),
                    "-i".into(),
                    "$INDIR".into()
                ]),
                ymldir: Some("out".into()),
                others: Vec::new(),
            }
        );
    }

    #[test]
    fn ambiguous_and_invalid_settings_are_errors_naming_the_variable() {
        let e = env(&[("REPO", "https://a/r"), ("CONFIG_REPO", "https://b/r")]).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("REPO (KubeSync)") && msg.contains("CONFIG_REPO (git-sync-operator)"),
            "{msg}"
        );
        for (pairs, var) in [
            (
                &[("REPO", "https://a/r"), ("INTERVAL", "5m")][..],
                "INTERVAL",
            ),
            (
                &[("REPO", "https://a/r"), ("INTERVAL", "0")][..],
                "INTERVAL",
            ),
            (
                &[("REPO", "https://a/r"), ("VERSION_MODE", "latest")][..],
                "VERSION_MODE",
            ),
            (
                &[("REPO", "https://a/r"), ("VERSION_MODE", "commit:xyz")][..],
                "VERSION_MODE",
            ),
            (
                &[("REPO_PATH", "/r"), ("LISTEN_PORT", "http")][..],
                "LISTEN_PORT",
            ),
            (
                &[("REPO_PATH", "/r"), ("FULL_RUN_INTERVAL_SECONDS", "0")][..],
                "FULL_RUN_INTERVAL_SECONDS",
            ),
            (&[("REPO_PATH", "/r"), ("LABEL", "Bad Label")][..], "LABEL"),
            (
                &[("CONFIG_REPO", "https://a/r"), ("GIT_SYNC_INTERVAL", "-1")][..],
                "GIT_SYNC_INTERVAL",
            ),
        ] {
            let e = env(pairs).unwrap_err();
            assert!(
                matches!(&e, SeedError::Invalid { var: v, .. } if *v == var),
                "{pairs:?}: {e}"
            );
        }
        // Another seed's variables are reported as ignored, not an error.
        let s = env(&[
            ("CONFIG_REPO", "https://a/r"),
            ("POLL_INTERVAL_SECONDS", "3"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(s.ignored, vec!["POLL_INTERVAL_SECONDS"]);
        assert_eq!(s.poll_interval, secs(60));
    }

    #[test]
    fn kubesync_reads_outdir_then_ymldir_then_kubernetes_then_the_root() {
        let d = tempfile::tempdir().unwrap();
        let path_of = |root: &SeedRoot, base: &str| {
            let o = &root.objects(d.path(), base)[0];
            (
                o.pointer("/spec/source/path")
                    .and_then(Value::as_str)
                    .unwrap()
                    .to_string(),
                o.pointer("/spec/source/transform/command").is_some(),
            )
        };
        let ks = |cmd: Option<&str>, ymldir: Option<&str>| SeedRoot::KubeSync {
            name: "r".into(),
            cmd: cmd.map(|c| c.split_whitespace().map(String::from).collect()),
            ymldir: ymldir.map(String::from),
            others: Vec::new(),
        };
        // Nothing there: the repository root.
        assert_eq!(path_of(&ks(None, None), ""), (".".into(), false));
        // CMD missing from the commit: the chain goes on.
        assert_eq!(
            path_of(&ks(Some("./t.sh -o $OUTDIR"), None), ""),
            (".".into(), false)
        );
        std::fs::create_dir(d.path().join("kubernetes")).unwrap();
        assert_eq!(
            path_of(&ks(Some("./t.sh"), None), ""),
            ("kubernetes".into(), false)
        );
        assert_eq!(
            path_of(&ks(Some("./t.sh"), Some("./deploy/")), ""),
            ("deploy".into(), false)
        );
        std::fs::write(d.path().join("t.sh"), "#!/bin/sh\n").unwrap();
        assert_eq!(
            path_of(&ks(Some("./t.sh -o $OUTDIR"), Some("deploy")), ""),
            (".".into(), true)
        );
        // A bare program name is looked up on PATH when rendering.
        assert_eq!(
            path_of(&ks(Some("gen-manifests"), None), ""),
            (".".into(), true)
        );
        // Every root parses as an Application or ApplicationSet.
        for root in [
            ks(Some("./t.sh -o $OUTDIR -i $INDIR"), None),
            ks(None, Some("deploy")),
            SeedRoot::KubeApplier {
                label: Some("kube-applier".into()),
            },
            SeedRoot::KubeApplier { label: None },
            SeedRoot::GitSyncOperator,
        ] {
            let apps = root.roots(d.path(), "sub/dir").unwrap();
            assert_eq!(apps.len(), 1, "{root:?}");
        }
        let ka = SeedRoot::KubeApplier {
            label: Some("kube-applier".into()),
        }
        .objects(d.path(), "manifests");
        assert_eq!(
            ka[0].pointer("/spec/generators/0/namespaceDirectories"),
            Some(&json!({"path": "manifests", "label": "kube-applier"}))
        );
        let gso = SeedRoot::GitSyncOperator.objects(d.path(), "");
        assert_eq!(
            gso[0].pointer("/spec/generators/0/clusterNamespaceDirectories"),
            Some(&json!({"path": "."}))
        );
    }

    #[test]
    fn repo_may_name_several_repositories_each_its_own_app() {
        let ks = env(&[
            (
                "REPO",
                "https://g/org/platform.git, https://g/team/apps.git\n  https://h/x/config https://h/y/config.git",
            ),
            ("YMLDIR", "deploy"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(ks.repo.as_deref(), Some("https://g/org/platform.git"));
        let SeedRoot::KubeSync { name, others, .. } = &ks.root else {
            panic!("{:?}", ks.root)
        };
        assert_eq!(name, "platform");
        let got: Vec<(&str, &str)> = others
            .iter()
            .map(|o| (o.name.as_str(), o.url.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("apps", "https://g/team/apps.git"),
                ("config", "https://h/x/config"),
                ("config-2", "https://h/y/config.git"),
            ]
        );
        // Each further repository's app: the same chain in its own
        // checkout, at the root's revision.
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        std::fs::create_dir(b.path().join("kubernetes")).unwrap();
        let root = SeedRoot::KubeSync {
            name: "platform".into(),
            cmd: None,
            ymldir: None,
            others: vec![
                SeedRepo {
                    name: "apps".into(),
                    url: "https://g/team/apps.git".into(),
                },
                SeedRepo {
                    name: "config".into(),
                    url: "https://h/x/config".into(),
                },
            ],
        };
        let (ap, bp) = (a.path().to_path_buf(), b.path().to_path_buf());
        let checkout = move |url: &str| -> Option<PathBuf> {
            match url {
                "https://g/team/apps.git" => Some(ap.clone()),
                "https://h/x/config" => Some(bp.clone()),
                _ => None,
            }
        };
        let repos = OtherRepos {
            revision: Some("tag:latest".parse().unwrap()),
            checkout: &checkout,
        };
        let objs = root.objects_with(a.path(), ".", &repos);
        let view: Vec<Value> = objs
            .iter()
            .map(|o| json!([o["metadata"]["name"], o["spec"]["source"]]))
            .collect();
        assert_eq!(
            view,
            [
                json!(["platform", {"path": "."}]),
                json!(["apps", {"path": ".", "repoURL": "https://g/team/apps.git", "targetRevision": "tag:latest"}]),
                json!(["config", {"path": "kubernetes", "repoURL": "https://h/x/config", "targetRevision": "tag:latest"}]),
            ]
        );
        assert_eq!(root.roots_with(a.path(), ".", &repos).unwrap().len(), 3);
    }

    #[test]
    fn app_names_come_from_the_repository() {
        assert_eq!(
            app_name_of("https://github.com/org/cluster-config.git"),
            "cluster-config"
        );
        assert_eq!(app_name_of("git@github.com:Org/My_Repo"), "my-repo");
        assert_eq!(app_name_of("https://host/"), "host");
        assert_eq!(app_name_of("___"), "kubesync");
    }
}
