//! Helm charts that are not in git: charts from HTTP chart repositories
//! (`index.yaml` + packaged `.tgz`), from OCI registries, and the
//! dependencies a `Chart.yaml` lists — fetched the way `helm pull` and
//! `helm dependency build` fetch them, in process, so `helm template` is only
//! ever handed a local chart directory.
//!
//! [`ChartFetcher`] owns that IO for one run: it resolves a version
//! constraint ([`constraint`]) against a repository's index ([`index`]) or a
//! registry's tags ([`oci`]), downloads the archive over [`http`] with the
//! settings [`credentials`] gives the URL, verifies its sha256 digest,
//! unpacks it safely ([`archive`]) and caches it by digest under the cache
//! directory (`<cache>/charts/sha256-<hex>/`), so a later run with the same
//! digest downloads nothing. `--repo-override URL=DIR` makes DIR (an
//! `index.yaml` with its archives) the repository at URL. [`deps`] builds a
//! temporary copy of a chart with `charts/` filled in; the user's repository
//! is never written.
//!
//! Every failure is a [`ChartError`] naming the chart and the repository URL
//! (the caller names the app).

pub mod archive;
pub mod constraint;
pub mod credentials;
pub mod deps;
pub mod http;
pub mod index;
pub mod oci;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

pub use credentials::{HelmRepoCredentials, RepoSettings};
pub use deps::PreparedChart;

use constraint::{Constraint, Version};
use http::{Auth, Http};
use index::{Index, Missing};
use oci::{OciError, OciRef, Session};

/// Why a chart could not be had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChartErrorKind {
    /// No connection (refused, DNS, timeout, TLS).
    Unreachable(String),
    /// 401/403: missing or wrong credentials.
    Unauthorized(u16),
    /// The repository does not list the chart.
    NoSuchChart,
    /// No version satisfies the constraint; the versions there are (highest first).
    NoVersion {
        constraint: String,
        available: Vec<String>,
    },
    /// The archive's sha256 is not the one the index or manifest gives.
    DigestMismatch { expected: String, actual: String },
    /// Any other HTTP status.
    Status { status: u16, what: String },
    /// A malformed index, manifest, archive, constraint or setting.
    Invalid(String),
    /// The local cache or an override directory.
    Io(String),
}

/// A chart that could not be had: which chart, from which repository, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChartError {
    pub chart: String,
    /// The repository URL as written (credentials never appear in it).
    pub url: String,
    pub kind: ChartErrorKind,
}

impl fmt::Display for ChartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (chart, url) = (&self.chart, &self.url);
        match &self.kind {
            ChartErrorKind::Unreachable(why) => write!(
                f,
                "chart \"{chart}\" needs the repository {url}, which cannot be reached: {why}"
            ),
            ChartErrorKind::Unauthorized(status) => write!(
                f,
                "chart \"{chart}\": the repository {url} refused access ({status} {}); check its entry in --helm-repo-credentials",
                if *status == 403 { "Forbidden" } else { "Unauthorized" }
            ),
            ChartErrorKind::NoSuchChart => {
                write!(f, "chart \"{chart}\" is not in the repository {url}")
            }
            ChartErrorKind::NoVersion {
                constraint,
                available,
            } => write!(
                f,
                "chart \"{chart}\": no version matching \"{constraint}\" in the repository {url} ({})",
                if available.is_empty() {
                    "it lists no version".to_string()
                } else {
                    format!("it has {}", available.join(", "))
                }
            ),
            ChartErrorKind::DigestMismatch { expected, actual } => write!(
                f,
                "chart \"{chart}\" from {url}: the archive's digest is sha256:{actual}, not the sha256:{expected} the repository lists; refusing it"
            ),
            ChartErrorKind::Status { status, what } => write!(
                f,
                "chart \"{chart}\": the repository {url} answered {status} for {what}"
            ),
            ChartErrorKind::Invalid(m) => write!(f, "chart \"{chart}\" from {url}: {m}"),
            ChartErrorKind::Io(m) => write!(f, "chart \"{chart}\" from {url}: {m}"),
        }
    }
}

impl std::error::Error for ChartError {}

/// A chart on the local disk, unpacked from a verified archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedChart {
    pub name: String,
    pub version: String,
    /// sha256 of the archive, hex.
    pub digest: String,
    /// The unpacked chart (read-only by convention: it is the cache).
    pub dir: PathBuf,
    /// The archive itself, as `helm dependency build` puts it in `charts/`.
    pub archive: PathBuf,
}

type Memo<K, T> = crate::memo::Memo<K, T, ChartError>;

/// Where a repository URL is read from.
enum RepoKind {
    /// A directory holding `index.yaml` and archives (`--repo-override`).
    Local(PathBuf),
    Http,
    Oci(OciRef),
}

/// Fetches charts for one run; `Send + Sync`. See the module docs.
pub struct ChartFetcher {
    cache: PathBuf,
    overrides: Vec<(String, PathBuf)>,
    credentials: HelmRepoCredentials,
    http: Http,
    indexes: Memo<String, Arc<Index>>,
    charts: Memo<(String, String, String), FetchedChart>,
}

impl fmt::Debug for ChartFetcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChartFetcher")
            .field("cache", &self.cache)
            .field("overrides", &self.overrides)
            .finish_non_exhaustive()
    }
}

/// `https://H/a/` and `https://h/a` are one repository.
fn repo_key(url: &str) -> String {
    let u = url.trim().trim_end_matches('/');
    match u.split_once("://") {
        Some((s, rest)) => {
            let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
            format!(
                "{}://{}/{}",
                s.to_ascii_lowercase(),
                host.to_ascii_lowercase(),
                path
            )
        }
        None => format!("oci://{u}"),
    }
}

impl ChartFetcher {
    /// `cache_dir` is the run's cache (charts go in its `charts/`);
    /// `overrides` map repository URLs to local repository directories.
    pub fn new(
        cache_dir: &Path,
        overrides: Vec<(String, PathBuf)>,
        credentials: HelmRepoCredentials,
    ) -> Self {
        ChartFetcher {
            cache: cache_dir.join("charts"),
            overrides: overrides
                .into_iter()
                .map(|(u, p)| (repo_key(&u), p))
                .collect(),
            credentials,
            http: Http::default(),
            indexes: Memo::default(),
            charts: Memo::default(),
        }
    }

    /// Whether `url` names a chart repository or registry kubesync fetches
    /// from (rather than a git repository).
    pub fn is_chart_repository(url: &str) -> bool {
        let u = url.trim();
        u.starts_with("oci://") || u.starts_with("http://") || u.starts_with("https://")
    }

    fn kind(&self, url: &str, chart: &str) -> Result<RepoKind, ChartError> {
        let key = repo_key(url);
        if let Some((_, dir)) = self.overrides.iter().find(|(k, _)| *k == key) {
            return Ok(RepoKind::Local(dir.clone()));
        }
        let u = url.trim();
        if u.ends_with(".git") || u.starts_with("git@") || u.starts_with("ssh://") {
            return Err(self.err(
                chart,
                url,
                ChartErrorKind::Invalid(
                    "is a git repository; `chart:` needs a Helm chart repository (https://… serving index.yaml) or an OCI registry (oci://…) — for a chart kept in git, use `path:`"
                        .into(),
                ),
            ));
        }
        if u.starts_with("http://") || u.starts_with("https://") {
            return Ok(RepoKind::Http);
        }
        // `oci://host/path`, or Argo CD's scheme-less `host/path`.
        if u.contains("://") && !u.starts_with("oci://") {
            return Err(self.err(
                chart,
                url,
                ChartErrorKind::Invalid(
                    "a chart repository URL is http(s)://… (an index.yaml) or oci://… (a registry)"
                        .into(),
                ),
            ));
        }
        OciRef::new(u, chart).map(RepoKind::Oci).ok_or_else(|| {
            self.err(
                chart,
                url,
                ChartErrorKind::Invalid("not a registry reference (oci://HOST/PATH)".into()),
            )
        })
    }

    fn err(&self, chart: &str, url: &str, kind: ChartErrorKind) -> ChartError {
        ChartError {
            chart: chart.to_string(),
            url: crate::source::redact_url(url),
            kind,
        }
    }

    /// Fetches `chart` at the highest version satisfying `version` (a
    /// version or constraint; empty: the highest non-prerelease) from the
    /// repository or registry at `url`.
    pub fn fetch(&self, url: &str, chart: &str, version: &str) -> Result<FetchedChart, ChartError> {
        let key = (repo_key(url), chart.to_string(), version.trim().to_string());
        self.charts.get_or_compute(key, || {
            let span = tracing::info_span!("chart", chart, url = %crate::source::redact_url(url));
            let _e = span.enter();
            let constraint = Constraint::parse(version).map_err(|m| {
                self.err(chart, url, ChartErrorKind::Invalid(format!("version: {m}")))
            })?;
            match self.kind(url, chart)? {
                RepoKind::Local(dir) => self.fetch_local(&dir, url, chart, &constraint),
                RepoKind::Http => self.fetch_http(url, chart, &constraint),
                RepoKind::Oci(r) => self.fetch_oci(&r, url, chart, &constraint),
            }
        })
    }

    fn index(&self, url: &str, chart: &str) -> Result<Arc<Index>, ChartError> {
        self.indexes
            .get_or_compute(repo_key(url), || {
                let settings = self.credentials.for_url(url);
                let index_url = index::resolve_url(url, "index.yaml");
                let resp = self
                    .http
                    .get(
                        &index_url,
                        &settings,
                        &Auth::basic_from(&settings),
                        None,
                        index::MAX_INDEX_BYTES,
                    )
                    .map_err(|e| {
                        self.err(chart, url, ChartErrorKind::Unreachable(e.to_string()))
                    })?;
                match resp.status {
                    401 | 403 => {
                        return Err(self.err(chart, url, ChartErrorKind::Unauthorized(resp.status)))
                    }
                    s if !(200..300).contains(&s) => {
                        return Err(self.err(
                            chart,
                            url,
                            ChartErrorKind::Status {
                                status: s,
                                what: "index.yaml (is it a Helm chart repository?)".into(),
                            },
                        ))
                    }
                    _ => {}
                }
                Index::parse(&resp.body).map(Arc::new).map_err(|m| {
                    self.err(
                        chart,
                        url,
                        ChartErrorKind::Invalid(format!("index.yaml: {m}")),
                    )
                })
            })
            // The memoised error names the first chart that asked; name this one.
            .map_err(|e| ChartError {
                chart: chart.to_string(),
                ..e
            })
    }

    fn choose<'i>(
        &self,
        idx: &'i Index,
        url: &str,
        chart: &str,
        constraint: &Constraint,
    ) -> Result<&'i index::Entry, ChartError> {
        idx.choose(chart, constraint).map_err(|m| match m {
            Missing::Chart => self.err(chart, url, ChartErrorKind::NoSuchChart),
            Missing::Version(available) => self.err(
                chart,
                url,
                ChartErrorKind::NoVersion {
                    constraint: constraint.to_string(),
                    available,
                },
            ),
        })
    }

    fn fetch_http(
        &self,
        url: &str,
        chart: &str,
        constraint: &Constraint,
    ) -> Result<FetchedChart, ChartError> {
        let idx = self.index(url, chart)?;
        let entry = self.choose(&idx, url, chart, constraint)?;
        let version = entry.version.to_string();
        if let Some(hit) = self.cached(chart, &version, entry.digest.as_deref()) {
            return Ok(hit);
        }
        let settings = self.credentials.for_url(url);
        let mut last = None;
        for u in &entry.urls {
            let archive_url = index::resolve_url(url, u);
            // Credentials go only to the repository's own host (as helm
            // does without --pass-credentials).
            let auth = if same_origin(url, &archive_url) {
                Auth::basic_from(&settings)
            } else {
                Auth::None
            };
            let archive_settings = self.credentials.for_url(&archive_url);
            let settings = if same_origin(url, &archive_url) {
                &settings
            } else {
                &archive_settings
            };
            match self.http.get(
                &archive_url,
                settings,
                &auth,
                None,
                archive::MAX_ARCHIVE_BYTES,
            ) {
                Ok(r) if r.ok() => {
                    return self.store(url, chart, &version, entry.digest.as_deref(), &r.body)
                }
                Ok(r) if r.status == 401 || r.status == 403 => {
                    last = Some(self.err(chart, url, ChartErrorKind::Unauthorized(r.status)))
                }
                Ok(r) => {
                    last = Some(self.err(
                        chart,
                        url,
                        ChartErrorKind::Status {
                            status: r.status,
                            what: archive_url.clone(),
                        },
                    ))
                }
                Err(e) => {
                    last = Some(self.err(chart, url, ChartErrorKind::Unreachable(e.to_string())))
                }
            }
        }
        Err(last.unwrap_or_else(|| {
            self.err(
                chart,
                url,
                ChartErrorKind::Invalid(format!("index.yaml lists no URL for version {version}")),
            )
        }))
    }

    /// A repository directory standing in for `url` (`--repo-override`).
    fn fetch_local(
        &self,
        dir: &Path,
        url: &str,
        chart: &str,
        constraint: &Constraint,
    ) -> Result<FetchedChart, ChartError> {
        let index_path = dir.join("index.yaml");
        let text = std::fs::read(&index_path).map_err(|e| {
            self.err(
                chart,
                url,
                ChartErrorKind::Io(format!(
                    "the override directory {} has no readable index.yaml: {e}",
                    dir.display()
                )),
            )
        })?;
        let idx = Index::parse(&text).map_err(|m| {
            self.err(
                chart,
                url,
                ChartErrorKind::Invalid(format!("{}: {m}", index_path.display())),
            )
        })?;
        let entry = self.choose(&idx, url, chart, constraint)?;
        let version = entry.version.to_string();
        for u in &entry.urls {
            // Relative URLs are files of the directory; an absolute URL is
            // looked up by its file name there (a mirror keeps the archives
            // beside its index).
            let rel = if u.contains("://") {
                u.rsplit('/').next().unwrap_or(u)
            } else {
                u.as_str()
            };
            let Some(path) =
                crate::render::normalize_lexically(&dir.join(rel)).filter(|p| p.starts_with(dir))
            else {
                continue;
            };
            if let Ok(bytes) = std::fs::read(&path) {
                return self.store(url, chart, &version, entry.digest.as_deref(), &bytes);
            }
        }
        Err(self.err(
            chart,
            url,
            ChartErrorKind::Io(format!(
                "the override directory {} does not hold the archive of version {version} ({})",
                dir.display(),
                entry.urls.join(", ")
            )),
        ))
    }

    fn fetch_oci(
        &self,
        r: &OciRef,
        url: &str,
        chart: &str,
        constraint: &Constraint,
    ) -> Result<FetchedChart, ChartError> {
        let settings = self
            .credentials
            .for_url(&format!("oci://{}/{}", r.registry, r.repository));
        let mut session = Session::new(&self.http, &settings, r);
        let oci_err = |e: OciError| {
            let kind = match e {
                OciError::Transport(t) => ChartErrorKind::Unreachable(t.to_string()),
                OciError::Unauthorized(s) => ChartErrorKind::Unauthorized(s),
                OciError::NotFound(what) if what == r.repository => ChartErrorKind::NoSuchChart,
                OciError::NotFound(what) => ChartErrorKind::Status { status: 404, what },
                OciError::Status { status, what } => ChartErrorKind::Status { status, what },
                OciError::Protocol(m) => ChartErrorKind::Invalid(m),
            };
            self.err(chart, url, kind)
        };
        let version = match constraint.exact() {
            Some(v) => v.to_string(),
            None => {
                let tags = session.tags().map_err(oci_err)?;
                let versions: Vec<Version> = tags
                    .iter()
                    .filter_map(|t| Version::parse(&oci::tag_to_version(t)))
                    .collect();
                match constraint.best(&versions) {
                    Some(v) => v.to_string(),
                    None => {
                        let mut all: Vec<&Version> = versions.iter().collect();
                        all.sort();
                        all.reverse();
                        return Err(self.err(
                            chart,
                            url,
                            ChartErrorKind::NoVersion {
                                constraint: constraint.to_string(),
                                available: all.iter().take(10).map(|v| v.to_string()).collect(),
                            },
                        ));
                    }
                }
            }
        };
        let layer = match session.chart_layer(&oci::version_to_tag(&version)) {
            Err(OciError::NotFound(_)) if constraint.exact().is_some() => {
                return Err(self.err(
                    chart,
                    url,
                    ChartErrorKind::NoVersion {
                        constraint: constraint.to_string(),
                        available: session
                            .tags()
                            .unwrap_or_default()
                            .iter()
                            .map(|t| oci::tag_to_version(t))
                            .collect(),
                    },
                ))
            }
            other => other.map_err(oci_err)?,
        };
        let expected = layer
            .digest
            .strip_prefix("sha256:")
            .ok_or_else(|| {
                self.err(
                    chart,
                    url,
                    ChartErrorKind::Invalid(format!("layer digest {} is not sha256", layer.digest)),
                )
            })?
            .to_string();
        if let Some(hit) = self.cached(chart, &version, Some(&expected)) {
            return Ok(hit);
        }
        if layer.size > archive::MAX_ARCHIVE_BYTES {
            return Err(self.err(
                chart,
                url,
                ChartErrorKind::Invalid(format!(
                    "the chart layer is {} bytes, more than the {} MiB allowed",
                    layer.size,
                    archive::MAX_ARCHIVE_BYTES / (1024 * 1024)
                )),
            ));
        }
        let bytes = session
            .blob(&layer.digest, archive::MAX_ARCHIVE_BYTES)
            .map_err(oci_err)?;
        self.store(url, chart, &version, Some(&expected), &bytes)
    }

    /// The cached chart for a known digest, if complete.
    fn cached(&self, chart: &str, version: &str, digest: Option<&str>) -> Option<FetchedChart> {
        let digest = digest?.to_ascii_lowercase();
        let dir = self.cache.join(format!("sha256-{digest}"));
        let archive = self.cache.join(format!("sha256-{digest}.tgz"));
        (dir.join("Chart.yaml").is_file() && archive.is_file()).then(|| {
            tracing::debug!(chart, version, "chart cache hit");
            FetchedChart {
                name: chart.to_string(),
                version: version.to_string(),
                digest,
                dir,
                archive,
            }
        })
    }

    /// Verifies `bytes` against `expected` and unpacks them into the cache.
    fn store(
        &self,
        url: &str,
        chart: &str,
        version: &str,
        expected: Option<&str>,
        bytes: &[u8],
    ) -> Result<FetchedChart, ChartError> {
        let actual = hex::encode(Sha256::digest(bytes));
        if let Some(expected) = expected {
            if !expected.eq_ignore_ascii_case(&actual) {
                return Err(self.err(
                    chart,
                    url,
                    ChartErrorKind::DigestMismatch {
                        expected: expected.to_ascii_lowercase(),
                        actual,
                    },
                ));
            }
        }
        if let Some(hit) = self.cached(chart, version, Some(&actual)) {
            return Ok(hit);
        }
        let io = |e: std::io::Error, what: &Path| {
            self.err(
                chart,
                url,
                ChartErrorKind::Io(format!("cache {}: {e}", what.display())),
            )
        };
        std::fs::create_dir_all(&self.cache).map_err(|e| io(e, &self.cache))?;
        let staging = tempfile::Builder::new()
            .prefix(".unpack-")
            .tempdir_in(&self.cache)
            .map_err(|e| io(e, &self.cache))?;
        let unpacked = staging.path().join("chart");
        archive::unpack(bytes, &unpacked).map_err(|e| {
            self.err(
                chart,
                url,
                ChartErrorKind::Invalid(format!("version {version}: the archive {e}")),
            )
        })?;
        let dir = self.cache.join(format!("sha256-{actual}"));
        let archive_path = self.cache.join(format!("sha256-{actual}.tgz"));
        let tmp_archive = staging.path().join("chart.tgz");
        std::fs::write(&tmp_archive, bytes).map_err(|e| io(e, &tmp_archive))?;
        // Another process may have stored the same digest meanwhile: theirs is as good.
        if !dir.exists() {
            if let Err(e) = std::fs::rename(&unpacked, &dir) {
                if !dir.join("Chart.yaml").is_file() {
                    return Err(io(e, &dir));
                }
            }
        }
        std::fs::rename(&tmp_archive, &archive_path).map_err(|e| io(e, &archive_path))?;
        tracing::info!(chart, version, digest = %actual, "fetched chart");
        Ok(FetchedChart {
            name: chart.to_string(),
            version: version.to_string(),
            digest: actual,
            dir,
            archive: archive_path,
        })
    }
}

/// Whether two URLs share scheme, host and port.
fn same_origin(a: &str, b: &str) -> bool {
    match (url::Url::parse(a), url::Url::parse(b)) {
        (Ok(a), Ok(b)) => a.origin() == b.origin(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fetcher_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<ChartFetcher>();
        check::<ChartError>();
    }

    #[test]
    fn errors_name_chart_and_url() {
        let e = ChartError {
            chart: "web".into(),
            url: "https://charts.example.com".into(),
            kind: ChartErrorKind::NoVersion {
                constraint: "9.x".into(),
                available: vec!["1.0.0".into()],
            },
        };
        assert_eq!(
            e.to_string(),
            "chart \"web\": no version matching \"9.x\" in the repository https://charts.example.com (it has 1.0.0)"
        );
    }

    #[test]
    fn repository_keys() {
        assert_eq!(
            repo_key("https://H.example.com/a/"),
            "https://h.example.com/a"
        );
        assert_eq!(
            repo_key("registry.example.com/x"),
            "oci://registry.example.com/x"
        );
    }
}
