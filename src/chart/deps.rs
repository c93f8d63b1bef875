//! `Chart.yaml` dependencies, filled in as `helm dependency build` would:
//! each dependency already in `charts/` (a directory or an archive of that
//! name whose version satisfies the constraint) is used as it is; the others
//! are fetched — from an `https://` repository or an `oci://` registry by
//! [`ChartFetcher::fetch`], or copied from a `file://` path, which must stay
//! inside the repository — into `charts/` of a *temporary copy* of the chart
//! ([`PreparedChart`]). The user's repository is never written.
//!
//! `Chart.lock` (`requirements.lock` for apiVersion v1 charts) is honoured:
//! when every dependency has a lock entry of the same name and repository
//! whose version satisfies the constraint, the locked versions are fetched
//! exactly; a lock that does not match fails, as `helm dependency build`
//! does. `alias`, `condition`, `tags` and `import-values` are the renderer's
//! business (helm applies them when it renders); a dependency is fetched once
//! by name whatever its aliases.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::archive;
use super::constraint::{Constraint, Version};
use super::{ChartError, ChartFetcher};

/// A chart copied to a temporary directory with its dependencies in
/// `charts/`; removed when dropped.
#[derive(Debug)]
pub struct PreparedChart {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    /// `name version` of each dependency fetched or copied.
    pub fetched: Vec<String>,
}

impl PreparedChart {
    /// The chart directory to render.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Why a chart's dependencies could not be filled in.
#[derive(Debug)]
pub enum DependencyError {
    /// A dependency could not be fetched.
    Fetch {
        /// The chart, repository-relative.
        chart: String,
        dependency: String,
        error: Box<ChartError>,
    },
    /// The chart's dependency list, its lock or a `file://` path is wrong.
    Invalid { chart: String, message: String },
}

impl fmt::Display for DependencyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DependencyError::Fetch {
                chart,
                dependency,
                error,
            } => write!(f, "dependency \"{dependency}\" of chart {chart}: {error}"),
            DependencyError::Invalid { chart, message } => write!(f, "chart {chart}: {message}"),
        }
    }
}

impl std::error::Error for DependencyError {}

#[derive(Debug, Clone, Deserialize)]
struct Dependency {
    name: String,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    repository: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ChartYaml {
    #[serde(rename = "apiVersion", default)]
    api_version: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    dependencies: Option<Vec<Dependency>>,
}

#[derive(Debug, Deserialize)]
struct DepsFile {
    #[serde(default)]
    dependencies: Option<Vec<Dependency>>,
}

fn read_yaml<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_yaml::from_str(&text)
            .map(Some)
            .map_err(|e| format!("{}: {e}", file_name(path))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {e}", file_name(path))),
    }
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// What a chart's `charts/` already holds: (name, version, file name).
fn vendored(chart_dir: &Path) -> Vec<(String, Option<Version>, String)> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(chart_dir.join("charts")) else {
        return out;
    };
    for e in rd.flatten() {
        let path = e.path();
        let fname = file_name(&path);
        let meta: Option<ChartYaml> = if path.is_dir() {
            read_yaml(&path.join("Chart.yaml")).ok().flatten()
        } else if fname.ends_with(".tgz") || fname.ends_with(".tar.gz") {
            std::fs::read(&path)
                .ok()
                .and_then(|b| archive::chart_yaml(&b).ok())
                .and_then(|t| serde_yaml::from_str(&t).ok())
        } else {
            None
        };
        if let Some(ChartYaml {
            name: Some(name),
            version,
            ..
        }) = meta
        {
            out.push((name, version.as_deref().and_then(Version::parse), fname));
        }
    }
    out
}

fn same_repo(a: &str, b: &str) -> bool {
    a.trim().trim_end_matches('/') == b.trim().trim_end_matches('/')
}

impl ChartFetcher {
    /// Fills in the dependencies of the chart at `chart_dir` that `charts/`
    /// lacks. `None` when nothing is missing (render the chart in place).
    /// `repo_root` confines `file://` dependencies; `label` is the chart's
    /// repository-relative path, for messages.
    pub fn prepare_dependencies(
        &self,
        chart_dir: &Path,
        repo_root: &Path,
        label: &str,
    ) -> Result<Option<PreparedChart>, DependencyError> {
        let invalid = |message: String| DependencyError::Invalid {
            chart: label.to_string(),
            message,
        };
        let chart: ChartYaml = match read_yaml(&chart_dir.join("Chart.yaml")).map_err(invalid)? {
            Some(c) => c,
            None => return Ok(None),
        };
        let v1 = chart.api_version.as_deref() == Some("v1");
        let (deps, lock_file) = if v1 {
            let f: Option<DepsFile> =
                read_yaml(&chart_dir.join("requirements.yaml")).map_err(invalid)?;
            (
                f.and_then(|f| f.dependencies).unwrap_or_default(),
                "requirements.lock",
            )
        } else {
            (chart.dependencies.unwrap_or_default(), "Chart.lock")
        };
        if deps.is_empty() {
            return Ok(None);
        }
        let have = vendored(chart_dir);
        // Which dependencies charts/ does not satisfy, by name (aliases share one fetch).
        let mut missing: Vec<&Dependency> = Vec::new();
        for d in &deps {
            let constraint = Constraint::parse(d.version.as_deref().unwrap_or(""))
                .map_err(|m| invalid(format!("dependency \"{}\": version {m}", d.name)))?;
            let satisfied = have.iter().any(|(n, v, _)| {
                *n == d.name && v.as_ref().map(|v| constraint.matches(v)).unwrap_or(true)
            });
            if !satisfied && !missing.iter().any(|m| m.name == d.name) {
                missing.push(d);
            }
        }
        if missing.is_empty() {
            return Ok(None);
        }
        let lock: Option<DepsFile> = read_yaml(&chart_dir.join(lock_file)).map_err(invalid)?;
        let locked = lock.and_then(|l| l.dependencies);

        // The copy: <tmp>/<chart dir name>/, charts/ cleared of what is re-fetched.
        let tmp = tempfile::Builder::new()
            .prefix("kubesync-chart-")
            .tempdir()
            .map_err(|e| invalid(format!("cannot make a temporary directory: {e}")))?;
        let dir_name = chart_dir
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_else(|| "chart".into());
        let dir = tmp.path().join(dir_name);
        copy_confined(chart_dir, &dir, repo_root).map_err(invalid)?;
        let charts = dir.join("charts");
        std::fs::create_dir_all(&charts).map_err(|e| invalid(format!("charts/: {e}")))?;
        for (name, _, fname) in &have {
            if missing.iter().any(|m| m.name == *name) {
                let p = charts.join(fname);
                let _ = std::fs::remove_dir_all(&p).or_else(|_| std::fs::remove_file(&p));
            }
        }

        let mut fetched = Vec::new();
        for d in missing {
            let repository = d.repository.clone().unwrap_or_default();
            let mut version = d.version.clone().unwrap_or_default();
            if let Some(locked) = &locked {
                let constraint = Constraint::parse(&version).map_err(&invalid)?;
                let entry = locked.iter().find(|l| {
                    l.name == d.name
                        && same_repo(l.repository.as_deref().unwrap_or(""), &repository)
                });
                match entry.and_then(|l| l.version.clone()) {
                    Some(v) if Version::parse(&v).map(|v| constraint.matches(&v)).unwrap_or(false) => {
                        version = v
                    }
                    Some(v) => {
                        return Err(invalid(format!(
                            "{lock_file} is out of sync with Chart.yaml: it locks dependency \"{}\" at {v}, which does not satisfy \"{version}\" (run `helm dependency update` and commit {lock_file})",
                            d.name
                        )))
                    }
                    None => {
                        return Err(invalid(format!(
                            "{lock_file} is out of sync with Chart.yaml: dependency \"{}\" ({repository}) is not in it (run `helm dependency update` and commit {lock_file})",
                            d.name
                        )))
                    }
                }
            }
            let repo = repository.trim();
            if repo.is_empty() {
                return Err(invalid(format!(
                    "dependency \"{}\" names no repository and charts/ does not hold it (vendor it into charts/ or give its repository)",
                    d.name
                )));
            }
            if let Some(path) = repo.strip_prefix("file://") {
                let got = copy_file_dependency(chart_dir, repo_root, path, &d.name, &charts)
                    .map_err(|m| invalid(format!("dependency \"{}\" ({repo}): {m}", d.name)))?;
                fetched.push(format!("{} {got}", d.name));
                continue;
            }
            if repo.starts_with('@') || repo.starts_with("alias:") {
                return Err(invalid(format!(
                    "dependency \"{}\" names the repository \"{repo}\" by a local `helm repo add` name; kubesync has no such list — write the repository's URL in Chart.yaml",
                    d.name
                )));
            }
            let got =
                self.fetch(repo, &d.name, &version)
                    .map_err(|error| DependencyError::Fetch {
                        chart: label.to_string(),
                        dependency: d.name.clone(),
                        error: Box::new(error),
                    })?;
            let target = charts.join(format!("{}-{}.tgz", d.name, got.version));
            std::fs::copy(&got.archive, &target)
                .map_err(|e| invalid(format!("charts/{}: {e}", file_name(&target))))?;
            fetched.push(format!("{} {}", d.name, got.version));
        }
        tracing::debug!(chart = label, ?fetched, "dependencies filled in");
        Ok(Some(PreparedChart {
            _tmp: tmp,
            dir,
            fetched,
        }))
    }
}

/// Copies a `file://` dependency (relative to the chart) into `charts/NAME/`;
/// returns its version.
fn copy_file_dependency(
    chart_dir: &Path,
    repo_root: &Path,
    path: &str,
    name: &str,
    charts: &Path,
) -> Result<String, String> {
    let joined = if Path::new(path).is_absolute() {
        PathBuf::from(path)
    } else {
        chart_dir.join(path)
    };
    let root = repo_root
        .canonicalize()
        .map_err(|e| format!("{}: {e}", repo_root.display()))?;
    let src = crate::render::normalize_lexically(&joined)
        .and_then(|p| p.canonicalize().ok())
        .ok_or_else(|| format!("{path} does not exist"))?;
    if !src.starts_with(&root) {
        return Err(format!("{path} leads outside the repository"));
    }
    let meta: ChartYaml =
        read_yaml(&src.join("Chart.yaml"))?.ok_or_else(|| format!("{path} holds no Chart.yaml"))?;
    if meta.name.as_deref() != Some(name) {
        return Err(format!(
            "{path} holds chart \"{}\", not \"{name}\"",
            meta.name.unwrap_or_default()
        ));
    }
    copy_confined(&src, &charts.join(name), &root)?;
    Ok(meta.version.unwrap_or_default())
}

/// Copies a directory tree, following symlinks only when they stay inside `root`.
fn copy_confined(src: &Path, dst: &Path, root: &Path) -> Result<(), String> {
    let root = root
        .canonicalize()
        .map_err(|e| format!("{}: {e}", root.display()))?;
    for entry in walkdir::WalkDir::new(src).follow_links(true) {
        let entry = entry.map_err(|e| e.to_string())?;
        let rel = entry.path().strip_prefix(src).map_err(|e| e.to_string())?;
        let real = entry
            .path()
            .canonicalize()
            .map_err(|e| format!("{}: {e}", rel.display()))?;
        if !real.starts_with(&root) {
            return Err(format!("{} leads outside the repository", rel.display()));
        }
        let target = dst.join(rel);
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&target).map_err(|e| format!("{}: {e}", target.display()))?;
        } else {
            std::fs::copy(entry.path(), &target)
                .map_err(|e| format!("{}: {e}", target.display()))?;
        }
    }
    Ok(())
}
