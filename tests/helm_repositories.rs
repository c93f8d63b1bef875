//! Helm charts that are not in git, against real servers on loopback: a chart
//! repository served by the test (index.yaml + packaged charts, with a
//! basic-auth variant), an OCI registry (Debian's `docker-registry`, charts
//! pushed by the test over the Registry v2 API), chart dependencies
//! (repository, `file://`, alias + condition, `Chart.lock`), multi-source
//! apps with `$ref` value files, and Argo CD's `helm-dependency` example
//! against a local mirror of its chart repository, synced into the emulator.
//!
//! Rendering goes through a real `helm` when one is on PATH, else the
//! project's wrapper (tests/support/helm); kubesync fetches every chart
//! itself and hands helm a local directory.

mod support;
mod sync_support;

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kubesync::chart::HelmRepoCredentials;
use kubesync::source::{RepoOverride, Revision, SourceOptions, Sources};
use kubesync::tree::{AppTree, ExpandOptions};
use sha2::{Digest, Sha256};
use support::chart_repo::{chart, http_server, wordpress_mirror, write_chart, ChartRepo, Handler};
use support::registry::{Registry, PASSWORD, USER};
use support::tls::make_tls;
use sync_support::{emulator, fast_simulation, run, text, Repo};

// ---------------------------------------------------------------- fixtures

/// A chart whose one ConfigMap `<chart name>-cm` records its version and `.Values.greeting`.
fn web(version: &str) -> Vec<u8> {
    chart(
        "web",
        version,
        "",
        &[
            (
                "templates/cm.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Chart.Name }}-cm\ndata:\n  version: {{ .Chart.Version | quote }}\n  greeting: {{ .Values.greeting | default \"none\" | quote }}\n",
            ),
            ("values.yaml", "greeting: hello\n"),
        ],
    )
}

fn helm_binary() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    kubesync::render::find_in_path("helm".as_ref(), &path)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/helm/helm"))
}

fn expand(repo: &Repo, overrides: &[(&str, &Path)], creds: &str, cache: Option<&Path>) -> AppTree {
    let roots = kubesync::model::load_root(&repo.root()).expect("root");
    let sources = Sources::new(SourceOptions {
        root_manifest: repo.root(),
        overrides: overrides
            .iter()
            .map(|(u, p)| {
                format!("{u}={}", p.display())
                    .parse::<RepoOverride>()
                    .expect("override")
            })
            .collect(),
        cache_dir: cache.map(Path::to_path_buf),
        helm_credentials: HelmRepoCredentials::parse(creds, |_| None).expect("credentials"),
        ..Default::default()
    })
    .expect("sources");
    let renderer = kubesync::render::Renderer::new().with_helm(helm_binary());
    kubesync::tree::expand(roots, &sources, &renderer, &ExpandOptions::default())
}

fn node<'a>(tree: &'a AppTree, name: &str) -> &'a kubesync::tree::AppNode {
    tree.depth_first()
        .into_iter()
        .find(|n| n.app.name.as_str() == name)
        .unwrap_or_else(|| panic!("no app {name}"))
}

/// `name → data` of every ConfigMap an app rendered.
fn configmaps(tree: &AppTree, app: &str) -> Vec<(String, serde_json::Value)> {
    let n = node(tree, app);
    if let Some(f) = n.failure() {
        panic!("{app} failed: {f}");
    }
    n.manifests()
        .iter()
        .filter(|m| m.object["kind"] == "ConfigMap")
        .map(|m| {
            (
                m.object["metadata"]["name"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                m.object["data"].clone(),
            )
        })
        .collect()
}

fn failure_of(tree: &AppTree, app: &str) -> String {
    node(tree, app)
        .failure()
        .unwrap_or_else(|| panic!("{app} did not fail"))
        .message
        .clone()
}

fn argo_chart_app(name: &str, repo_url: &str, chart: &str, version: &str, extra: &str) -> String {
    format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {{name: {name}}}\nspec:\n  project: default\n  source:\n    repoURL: {repo_url}\n    chart: {chart}\n    targetRevision: \"{version}\"\n{extra}  destination: {{namespace: {name}, server: https://kubernetes.default.svc}}\n"
    )
}

fn standard_repo() -> ChartRepo {
    let mut r = ChartRepo::new(None);
    for v in ["1.0.0", "1.2.0", "2.0.0"] {
        r.add(&web(v), "web", v);
    }
    r
}

// ------------------------------------------------------------------- tests

#[test]
fn a_repository_chart_resolves_its_constraint_and_is_cached_by_digest() {
    let charts = standard_repo();
    let repo = Repo::new();
    repo.write(
        "apps/web.yaml",
        &argo_chart_app(
            "web",
            &charts.url,
            "web",
            "1.x",
            "    helm: {valuesObject: {greeting: hi}}\n",
        ),
    );
    repo.write(
        "apps/pinned.yaml",
        &argo_chart_app("pinned", &charts.url, "web", "1.0.0", ""),
    );
    repo.write(
        "apps/range.yaml",
        &argo_chart_app("range", &format!("{}/", charts.url), "web", ">=1.0 <2", ""),
    );
    let cache = tempfile::tempdir().unwrap();
    let tree = expand(&repo, &[], "", Some(cache.path()));
    let cms = configmaps(&tree, "web");
    assert_eq!(cms.len(), 1, "{cms:?}");
    assert_eq!(cms[0].0, "web-cm");
    assert_eq!(cms[0].1["version"], "1.2.0");
    assert_eq!(cms[0].1["greeting"], "hi");
    assert_eq!(configmaps(&tree, "pinned")[0].1["version"], "1.0.0");
    assert_eq!(configmaps(&tree, "range")[0].1["version"], "1.2.0");
    match &node(&tree, "web")
        .checkout
        .as_ref()
        .expect("checkout")
        .revision
    {
        Revision::Chart { version, digest } => {
            assert_eq!(version, "1.2.0");
            assert_eq!(digest.len(), 64);
        }
        other => panic!("{other:?}"),
    }
    // 1.2.0 is fetched once for two apps; 1.0.0 once.
    assert_eq!(charts.archives_served(), 2);
    // A new run with the same cache downloads no archive again.
    let tree = expand(&repo, &[], "", Some(cache.path()));
    assert_eq!(configmaps(&tree, "web")[0].1["version"], "1.2.0");
    assert_eq!(charts.archives_served(), 2);
}

#[test]
fn repository_failures_name_the_chart_and_the_url() {
    let mut charts = standard_repo();
    charts.add(&web("3.0.0"), "tampered", "3.0.0");
    charts.write_index(Some("tampered"));
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}/charts", closed.local_addr().unwrap());
    drop(closed);
    let repo = Repo::new();
    repo.write(
        "apps/missing.yaml",
        &argo_chart_app("missing", &charts.url, "web", "9.x", ""),
    );
    repo.write(
        "apps/nochart.yaml",
        &argo_chart_app("nochart", &charts.url, "nope", "", ""),
    );
    repo.write(
        "apps/tampered.yaml",
        &argo_chart_app("tampered", &charts.url, "tampered", "", ""),
    );
    repo.write(
        "apps/dead.yaml",
        &argo_chart_app("dead", &dead, "web", "1.0.0", ""),
    );
    repo.write(
        "apps/fine.yaml",
        &argo_chart_app("fine", &charts.url, "web", "", ""),
    );
    let tree = expand(&repo, &[], "", None);

    let m = failure_of(&tree, "missing");
    assert!(
        m.contains("chart \"web\"") && m.contains(&charts.url),
        "{m}"
    );
    assert!(
        m.contains("\"9.x\"") && m.contains("2.0.0, 1.2.0, 1.0.0"),
        "{m}"
    );
    let m = failure_of(&tree, "nochart");
    assert_eq!(
        m,
        format!("chart \"nope\" is not in the repository {}", charts.url)
    );
    let m = failure_of(&tree, "tampered");
    assert!(
        m.contains("chart \"tampered\"") && m.contains(&charts.url) && m.contains("digest"),
        "{m}"
    );
    assert!(m.contains(&"0".repeat(64)), "{m}");
    let m = failure_of(&tree, "dead");
    assert!(
        m.starts_with(&format!(
            "chart \"web\" needs the repository {dead}, which cannot be reached:"
        )),
        "{m}"
    );
    // The others still render.
    assert_eq!(configmaps(&tree, "fine")[0].1["version"], "2.0.0");
}

#[test]
fn basic_auth_comes_from_the_credentials_file_and_a_401_is_named() {
    let mut charts = ChartRepo::new(Some(("alice", "s3cret")));
    charts.add(&web("1.0.0"), "web", "1.0.0");
    let repo = Repo::new();
    repo.write(
        "apps/web.yaml",
        &argo_chart_app("web", &charts.url, "web", "1.0.0", ""),
    );
    let tree = expand(&repo, &[], "", None);
    let m = failure_of(&tree, "web");
    assert_eq!(
        m,
        format!("chart \"web\": the repository {} refused access (401 Unauthorized); check its entry in --helm-repo-credentials", charts.url)
    );
    let wrong = format!(
        "repositories:\n- url: {}\n  username: alice\n  password: nope\n",
        charts.url
    );
    assert!(failure_of(&expand(&repo, &[], &wrong, None), "web").contains("401"));
    let creds = format!(
        "repositories:\n- url: {}\n  username: alice\n  password: s3cret\n",
        charts.url.trim_end_matches("/charts")
    );
    let tree = expand(&repo, &[], &creds, None);
    assert_eq!(configmaps(&tree, "web")[0].1["version"], "1.0.0");
}

#[test]
fn repo_override_serves_a_chart_repository_from_a_directory() {
    let mirror = tempfile::tempdir().unwrap();
    let tgz = web("4.5.6");
    std::fs::write(mirror.path().join("web-4.5.6.tgz"), &tgz).unwrap();
    std::fs::write(
        mirror.path().join("index.yaml"),
        format!(
            "apiVersion: v1\nentries:\n  web:\n  - version: 4.5.6\n    urls: [https://charts.example.invalid/stable/web-4.5.6.tgz]\n    digest: {}\n",
            hex::encode(Sha256::digest(&tgz))
        ),
    )
    .unwrap();
    let repo = Repo::new();
    let url = "https://charts.example.invalid/stable";
    repo.write(
        "apps/web.yaml",
        &argo_chart_app("web", url, "web", "4.x", ""),
    );
    let tree = expand(&repo, &[(url, mirror.path())], "", None);
    assert_eq!(configmaps(&tree, "web")[0].1["version"], "4.5.6");
}

/// A chart in git whose dependencies come from a repository, a `file://`
/// path, an alias with a false condition, and `Chart.lock`.
fn dependency_repo(charts: &ChartRepo, lock: Option<&str>) -> Repo {
    let repo = Repo::new();
    repo.write(
        "apps/shop.yaml",
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: shop}\nspec:\n  source: {path: charts/shop}\n  destination: {namespace: shop}\n",
    );
    write_chart(
        &repo.path().join("charts/shop"),
        "shop",
        "0.1.0",
        &format!(
            "dependencies:\n- name: web\n  version: 1.x\n  repository: {url}\n- name: web\n  alias: web-off\n  version: 1.x\n  repository: {url}\n  condition: webOff.enabled\n- name: lib\n  version: 0.1.0\n  repository: file://../lib\n",
            url = charts.url
        ),
        &[
            ("values.yaml", "webOff: {enabled: false}\nweb: {greeting: from-parent}\n"),
            ("templates/own.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: shop-cm}\n"),
        ],
    );
    write_chart(
        &repo.path().join("charts/lib"),
        "lib",
        "0.1.0",
        "",
        &[(
            "templates/cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: lib-cm}\n",
        )],
    );
    if let Some(lock) = lock {
        repo.write("charts/shop/Chart.lock", lock);
    }
    repo
}

#[test]
fn chart_dependencies_are_fetched_into_a_copy_never_into_the_repository() {
    let charts = standard_repo();
    let repo = dependency_repo(&charts, None);
    let tree = expand(&repo, &[], "", None);
    let cms = configmaps(&tree, "shop");
    let names: Vec<&str> = cms.iter().map(|(n, _)| n.as_str()).collect();
    assert!(
        names.contains(&"shop-cm") && names.contains(&"lib-cm") && names.contains(&"web-cm"),
        "{names:?}"
    );
    assert!(
        !names.contains(&"web-off-cm"),
        "the alias's condition is false: {names:?}"
    );
    let web = &cms.iter().find(|(n, _)| n == "web-cm").unwrap().1;
    assert_eq!(web["version"], "1.2.0");
    assert_eq!(web["greeting"], "from-parent");
    assert!(
        !repo.path().join("charts/shop/charts").exists(),
        "the repository was written"
    );

    // Chart.lock pins 1.0.0 (within 1.x): honoured.
    let lock = format!(
        "dependencies:\n- name: web\n  repository: {url}\n  version: 1.0.0\n- name: lib\n  repository: file://../lib\n  version: 0.1.0\ndigest: sha256:x\ngenerated: \"2024-01-01T00:00:00Z\"\n",
        url = charts.url
    );
    let repo = dependency_repo(&charts, Some(&lock));
    let cms = configmaps(&expand(&repo, &[], "", None), "shop");
    assert_eq!(
        cms.iter().find(|(n, _)| n == "web-cm").unwrap().1["version"],
        "1.0.0"
    );

    // A lock out of sync with Chart.yaml fails, naming the chart and the dependency.
    let stale = lock.replace("version: 1.0.0", "version: 2.0.0");
    let repo = dependency_repo(&charts, Some(&stale));
    let m = failure_of(&expand(&repo, &[], "", None), "shop");
    assert!(
        m.starts_with("chart charts/shop: Chart.lock is out of sync with Chart.yaml"),
        "{m}"
    );
    assert!(m.contains("\"web\" at 2.0.0"), "{m}");
}

#[test]
fn vendored_dependencies_are_used_as_they_are_and_tags_switch_them() {
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}/charts", closed.local_addr().unwrap());
    drop(closed);
    let repo = Repo::new();
    repo.write(
        "apps/shop.yaml",
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: shop}\nspec:\n  source: {path: shop}\n",
    );
    // Both dependencies are vendored: the (unreachable) repository is never asked.
    write_chart(
        &repo.path().join("shop"),
        "shop",
        "0.1.0",
        &format!(
            "dependencies:\n- name: web\n  version: ^1.0.0\n  repository: {dead}\n- name: extras\n  version: 0.1.0\n  repository: {dead}\n  tags: [optional]\n"
        ),
        &[
            ("values.yaml", "tags: {optional: false}\n"),
            (
                "charts/extras/Chart.yaml",
                "apiVersion: v2\nname: extras\nversion: 0.1.0\n",
            ),
            (
                "charts/extras/templates/cm.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: extras-cm}\n",
            ),
        ],
    );
    std::fs::write(repo.path().join("shop/charts/web-1.0.0.tgz"), web("1.0.0")).unwrap();
    let tree = expand(&repo, &[], "", None);
    let cms = configmaps(&tree, "shop");
    let names: Vec<&str> = cms.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        vec!["web-cm"],
        "the tag switches extras off: {cms:?}"
    );
    // A vendored archive that does not satisfy the constraint is fetched
    // again — here from a repository that cannot be reached, which says so.
    std::fs::write(
        repo.path().join("shop/Chart.yaml"),
        format!("apiVersion: v2\nname: shop\nversion: 0.1.0\ndependencies:\n- name: web\n  version: ^2.0.0\n  repository: {dead}\n"),
    )
    .unwrap();
    let m = failure_of(&expand(&repo, &[], "", None), "shop");
    assert!(
        m.starts_with(&format!("dependency \"web\" of chart shop: chart \"web\" needs the repository {dead}, which cannot be reached")),
        "{m}"
    );
}

#[test]
fn a_dependency_that_cannot_be_fetched_names_the_chart_the_dependency_and_the_url() {
    let charts = standard_repo();
    let repo = dependency_repo(&charts, None);
    let text = std::fs::read_to_string(repo.path().join("charts/shop/Chart.yaml")).unwrap();
    std::fs::write(
        repo.path().join("charts/shop/Chart.yaml"),
        text.replace("version: 1.x", "version: 7.x"),
    )
    .unwrap();
    let m = failure_of(&expand(&repo, &[], "", None), "shop");
    assert!(
        m.starts_with(&format!("dependency \"web\" of chart charts/shop: chart \"web\": no version matching \"7.x\" in the repository {}", charts.url)),
        "{m}"
    );
    // A file:// dependency may not leave the repository.
    std::fs::write(
        repo.path().join("charts/shop/Chart.yaml"),
        "apiVersion: v2\nname: shop\nversion: 0.1.0\ndependencies:\n- name: lib\n  version: 0.1.0\n  repository: file://../../../etc\n",
    )
    .unwrap();
    let m = failure_of(&expand(&repo, &[], "", None), "shop");
    assert!(
        m.contains("dependency \"lib\"")
            && (m.contains("outside the repository") || m.contains("does not exist")),
        "{m}"
    );
}

#[test]
fn multi_source_apps_merge_their_sources_and_read_ref_value_files() {
    let charts = standard_repo();
    let repo = Repo::new();
    repo.write("env/prod/values.yaml", "greeting: from-ref\n");
    repo.write(
        "extra/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: extra-cm}\n",
    );
    repo.write(
        "apps/multi.yaml",
        &format!(
            "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {{name: multi}}\nspec:\n  destination: {{namespace: multi}}\n  sources:\n  - repoURL: {url}\n    chart: web\n    targetRevision: 1.0.0\n    helm:\n      valueFiles: [$values/env/prod/values.yaml]\n  - ref: values\n  - path: extra\n",
            url = charts.url
        ),
    );
    repo.write(
        "apps/badref.yaml",
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: badref}\nspec:\n  sources:\n  - path: extra\n    helm: {valueFiles: [$nope/values.yaml]}\n  - ref: values\n",
    );
    repo.write(
        "apps/project.yaml",
        "apiVersion: argoproj.io/v1alpha1\nkind: AppProject\nmetadata: {name: fenced-in}\nspec:\n  sourceRepos: ['https://git.example.com/*']\n  destinations: [{namespace: '*', server: '*'}]\n",
    );
    repo.write(
        "apps/fenced.yaml",
        &format!(
            "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {{name: fenced}}\nspec:\n  project: fenced-in\n  destination: {{namespace: fenced}}\n  sources:\n  - repoURL: https://git.example.com/values\n    ref: values\n  - repoURL: {url}\n    chart: web\n    targetRevision: 1.0.0\n",
            url = charts.url
        ),
    );
    repo.write(
        "apps/gitchart.yaml",
        &argo_chart_app(
            "gitchart",
            "https://github.com/example/charts.git",
            "web",
            "1.0.0",
            "",
        ),
    );
    let tree = expand(&repo, &[], "", None);
    let cms = configmaps(&tree, "multi");
    let web = &cms.iter().find(|(n, _)| n == "web-cm").expect("web-cm").1;
    assert_eq!(web["greeting"], "from-ref");
    assert_eq!(web["version"], "1.0.0");
    assert!(cms.iter().any(|(n, _)| n == "extra-cm"), "{cms:?}");
    // Every source's repository is held to the app's project.
    let m = failure_of(&tree, "fenced");
    assert!(m.contains(&charts.url) && m.contains("fenced-in"), "{m}");
    // A git repository is not a chart repository.
    let m = failure_of(&tree, "gitchart");
    assert!(
        m.contains("is a git repository") && m.contains("use `path:`"),
        "{m}"
    );
    let m = failure_of(&tree, "badref");
    assert!(
        m.contains("spec.sources[0].helm.valueFiles[0]") && m.contains("\"nope\""),
        "{m}"
    );
}

// ------------------------------------------------------------------- OCI

#[test]
fn oci_charts_come_from_a_registry() {
    let Some(reg) = Registry::start_for_charts(false) else {
        return;
    };
    for v in ["1.0.0", "1.2.0", "2.0.0"] {
        reg.push_chart(
            "charts/web",
            v,
            &web(v),
            &format!("{{\"name\":\"web\",\"version\":\"{v}\"}}"),
        );
    }
    let repo = Repo::new();
    let oci = format!("oci://{}/charts", reg.host());
    repo.write(
        "apps/range.yaml",
        &argo_chart_app("range", &oci, "web", ">=1.0 <2", ""),
    );
    repo.write(
        "apps/exact.yaml",
        &argo_chart_app("exact", &oci, "web", "2.0.0", ""),
    );
    // Argo CD's scheme-less form.
    repo.write(
        "apps/bare.yaml",
        &argo_chart_app(
            "bare",
            &format!("{}/charts", reg.host()),
            "web",
            "1.0.x",
            "",
        ),
    );
    repo.write(
        "apps/missing.yaml",
        &argo_chart_app("missing", &oci, "web", "3.0.0", ""),
    );
    repo.write(
        "apps/nochart.yaml",
        &argo_chart_app("nochart", &oci, "nope", "1.x", ""),
    );
    let tree = expand(&repo, &[], "", None);
    assert_eq!(configmaps(&tree, "range")[0].1["version"], "1.2.0");
    assert_eq!(configmaps(&tree, "exact")[0].1["version"], "2.0.0");
    assert_eq!(configmaps(&tree, "bare")[0].1["version"], "1.0.0");
    let m = failure_of(&tree, "missing");
    assert!(
        m.contains("chart \"web\"") && m.contains(&oci) && m.contains("\"3.0.0\""),
        "{m}"
    );
    let m = failure_of(&tree, "nochart");
    assert!(m.contains("chart \"nope\"") && m.contains(&oci), "{m}");

    // A chart dependency from the registry.
    let repo = Repo::new();
    repo.write(
        "apps/shop.yaml",
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: shop}\nspec:\n  source: {path: shop}\n",
    );
    write_chart(
        &repo.path().join("shop"),
        "shop",
        "0.1.0",
        &format!("dependencies:\n- name: web\n  version: ~1.0\n  repository: {oci}\n"),
        &[],
    );
    let cms = configmaps(&expand(&repo, &[], "", None), "shop");
    assert_eq!(cms[0].1["version"], "1.0.0");
}

#[test]
fn a_registry_behind_basic_auth_needs_the_credentials_file() {
    let Some(reg) = Registry::start_for_charts(true) else {
        return;
    };
    reg.push_chart("private/web", "1.0.0", &web("1.0.0"), "{}");
    let repo = Repo::new();
    let oci = format!("oci://{}/private", reg.host());
    repo.write(
        "apps/web.yaml",
        &argo_chart_app("web", &oci, "web", "1.x", ""),
    );
    let m = failure_of(&expand(&repo, &[], "", None), "web");
    assert_eq!(
        m,
        format!("chart \"web\": the repository {oci} refused access (401 Unauthorized); check its entry in --helm-repo-credentials")
    );
    let creds = format!(
        "repositories:\n- url: oci://{}\n  username: {USER}\n  password: {PASSWORD}\n",
        reg.host()
    );
    let tree = expand(&repo, &[], &creds, None);
    assert_eq!(configmaps(&tree, "web")[0].1["version"], "1.0.0");
}

#[test]
fn a_registry_with_bearer_token_auth_is_answered_through_its_token_service() {
    use base64::Engine;
    let tgz = web("1.1.0");
    let layer = format!("sha256:{}", hex::encode(Sha256::digest(&tgz)));
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "config": {"mediaType": kubesync::chart::oci::CHART_CONFIG, "digest": "sha256:00", "size": 2},
        "layers": [{"mediaType": kubesync::chart::oci::CHART_LAYER, "digest": layer, "size": tgz.len()}],
    })
    .to_string();
    let scopes = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let addr = Arc::new(std::sync::OnceLock::<String>::new());
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("robot:t0ken")
    );
    let handler: Arc<Handler> = {
        let (scopes, addr, layer) = (Arc::clone(&scopes), Arc::clone(&addr), layer.clone());
        Arc::new(move |path: &str, auth: Option<&str>| {
            if let Some(query) = path.strip_prefix("/token?") {
                scopes.lock().unwrap().push(query.to_string());
                return if auth == Some(basic.as_str()) {
                    (200, vec![], br#"{"token":"tok-123"}"#.to_vec())
                } else {
                    (401, vec![], vec![])
                };
            }
            if auth != Some("Bearer tok-123") {
                let realm = format!(
                    "Bearer realm=\"http://{}/token\",service=\"fake\",scope=\"repository:charts/web:pull\"",
                    addr.get().cloned().unwrap_or_default()
                );
                return (401, vec![("WWW-Authenticate".into(), realm)], vec![]);
            }
            match path {
                "/v2/charts/web/tags/list" => (
                    200,
                    vec![],
                    br#"{"name":"charts/web","tags":["1.0.0","1.1.0","latest"]}"#.to_vec(),
                ),
                "/v2/charts/web/manifests/1.1.0" => (200, vec![], manifest.clone().into_bytes()),
                p if p == format!("/v2/charts/web/blobs/{layer}") => (200, vec![], tgz.clone()),
                _ => (404, vec![], vec![]),
            }
        })
    };
    let bound = http_server(handler);
    addr.set(bound.clone()).unwrap();
    let repo = Repo::new();
    let oci = format!("oci://{bound}/charts");
    repo.write(
        "apps/web.yaml",
        &argo_chart_app("web", &oci, "web", "1.x", ""),
    );
    // Anonymous: the token service refuses, the app says 401 naming chart and URL.
    let m = failure_of(&expand(&repo, &[], "", None), "web");
    assert!(
        m.contains("chart \"web\"") && m.contains(&oci) && m.contains("401"),
        "{m}"
    );
    let creds = format!(
        "repositories:\n- url: oci://{bound}/charts\n  username: robot\n  password: t0ken\n"
    );
    let tree = expand(&repo, &[], &creds, None);
    assert_eq!(configmaps(&tree, "web")[0].1["version"], "1.1.0");
    let scopes = scopes.lock().unwrap();
    assert!(
        scopes
            .iter()
            .all(|q| q.contains("service=fake")
                && q.contains("scope=repository%3Acharts%2Fweb%3Apull")),
        "{scopes:?}"
    );
}

#[test]
fn an_oci_layer_whose_bytes_do_not_match_its_digest_is_refused() {
    let honest = web("1.0.0");
    let layer = format!("sha256:{}", hex::encode(Sha256::digest(&honest)));
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "layers": [{"mediaType": kubesync::chart::oci::CHART_LAYER, "digest": layer, "size": honest.len()}],
    })
    .to_string();
    let tampered = web("6.6.6");
    let handler: Arc<Handler> = Arc::new(move |path: &str, _auth: Option<&str>| match path {
        "/v2/charts/web/manifests/1.0.0" => (200, vec![], manifest.clone().into_bytes()),
        p if p.starts_with("/v2/charts/web/blobs/") => (200, vec![], tampered.clone()),
        _ => (404, vec![], vec![]),
    });
    let addr = http_server(handler);
    let repo = Repo::new();
    let oci = format!("oci://{addr}/charts");
    repo.write(
        "apps/web.yaml",
        &argo_chart_app("web", &oci, "web", "1.0.0", ""),
    );
    let m = failure_of(&expand(&repo, &[], "", None), "web");
    assert!(
        m.starts_with(&format!(
            "chart \"web\" from {oci}: the archive's digest is sha256:"
        )) && m.contains(&format!("not the {layer} the repository lists")),
        "{m}"
    );
    // A version the registry does not have lists what it has (here: tags/list is 404).
    repo.write(
        "apps/web.yaml",
        &argo_chart_app("web", &oci, "web", "2.0.0", ""),
    );
    let m = failure_of(&expand(&repo, &[], "", None), "web");
    assert!(
        m.contains("no version matching \"2.0.0\"") && m.contains(&oci),
        "{m}"
    );
}

/// `openssl s_server -WWW` serving a directory over HTTPS with a certificate
/// issued by a test CA (support::tls, written to `ca.crt` in the directory).
struct TlsServer {
    child: std::process::Child,
    url: String,
    ca: PathBuf,
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tls_server(dir: &Path) -> Option<TlsServer> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    if kubesync::render::find_in_path("openssl".as_ref(), &path).is_none() {
        if std::env::var_os("CI").is_some() {
            panic!("openssl is not installed (.ci/run installs it)");
        }
        eprintln!("skipping: openssl is not installed");
        return None;
    }
    make_tls(dir);
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = std::process::Command::new("openssl")
        .args(["s_server", "-accept", &format!("127.0.0.1:{port}")])
        .args(["-cert", "tls.crt", "-key", "tls.key", "-WWW", "-quiet"])
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("openssl s_server");
    let server = TlsServer {
        child,
        url: format!("https://127.0.0.1:{port}/charts"),
        ca: dir.join("ca.crt"),
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "openssl s_server did not listen"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Some(server)
}

#[test]
fn an_https_repository_with_a_private_ca_needs_ca_file_or_insecure_skip_verify() {
    let dir = tempfile::tempdir().unwrap();
    let charts = dir.path().join("charts");
    std::fs::create_dir_all(&charts).unwrap();
    let tgz = web("1.0.0");
    std::fs::write(charts.join("web-1.0.0.tgz"), &tgz).unwrap();
    std::fs::write(
        charts.join("index.yaml"),
        format!(
            "apiVersion: v1\nentries:\n  web:\n  - version: 1.0.0\n    urls: [web-1.0.0.tgz]\n    digest: {}\n",
            hex::encode(Sha256::digest(&tgz))
        ),
    )
    .unwrap();
    let Some(server) = tls_server(dir.path()) else {
        return;
    };
    let repo = Repo::new();
    repo.write(
        "apps/web.yaml",
        &argo_chart_app("web", &server.url, "web", "1.x", ""),
    );
    let m = failure_of(&expand(&repo, &[], "", None), "web");
    assert!(
        m.starts_with(&format!(
            "chart \"web\" needs the repository {}, which cannot be reached:",
            server.url
        )) && m.to_lowercase().contains("cert"),
        "{m}"
    );
    let with_ca = format!(
        "repositories:\n- url: {}\n  caFile: {}\n",
        server.url,
        server.ca.display()
    );
    assert_eq!(
        configmaps(&expand(&repo, &[], &with_ca, None), "web")[0].1["version"],
        "1.0.0"
    );
    let insecure = format!(
        "repositories:\n- url: {}\n  insecureSkipVerify: true\n",
        server.url
    );
    assert_eq!(
        configmaps(&expand(&repo, &[], &insecure, None), "web")[0].1["version"],
        "1.0.0"
    );
}

// ------------------------------------------------- argocd-example-apps

const HELM_DEPENDENCY_CHART: &str = "apiVersion: v2\nname: wordpress\ndescription: A Helm chart for Kubernetes\ntype: application\nversion: 0.1.0\nappVersion: \"1.0\"\n\ndependencies:\n- name: wordpress\n  version: 9.0.3\n  repository: https://charts.helm.sh/stable";
const HELM_DEPENDENCY_VALUES: &str = "wordpress:\n  image:\n    tag: invalid #break this app on purpose until a dedicated broken app is created\n  wordpressPassword: foo\n  mariadb:\n    db:\n      password: bar\n    rootUser:\n      password: baz";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn argocd_example_helm_dependency_ends_synced_and_healthy() {
    let mirror = wordpress_mirror();
    let repo = Repo::new();
    // The example's files as they are in argoproj/argocd-example-apps.
    repo.write("helm-dependency/Chart.yaml", HELM_DEPENDENCY_CHART);
    repo.write("helm-dependency/values.yaml", HELM_DEPENDENCY_VALUES);
    repo.write(
        "apps/helm-dependency.yaml",
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: helm-dependency\n  namespace: argocd\nspec:\n  project: default\n  source:\n    repoURL: https://github.com/argoproj/argocd-example-apps.git\n    targetRevision: HEAD\n    path: helm-dependency\n  destination:\n    server: https://kubernetes.default.svc\n    namespace: helm-dependency\n  syncPolicy:\n    automated: {}\n    syncOptions: [CreateNamespace=true]\n",
    );
    let emu = emulator(fast_simulation()).await;
    let stable = format!("https://charts.helm.sh/stable={}", mirror.path().display());
    let example = format!(
        "https://github.com/argoproj/argocd-example-apps.git={}",
        repo.path().display()
    );
    let args = [
        "bootstrap",
        "--repo-override",
        &stable,
        "--repo-override",
        &example,
    ];
    let out = run(&repo.root(), &emu.url(), &args).await;
    assert!(out.status.success(), "{}", text(&out));
    let tree = run(
        &repo.root(),
        &emu.url(),
        &[
            "tree",
            "--repo-override",
            &stable,
            "--repo-override",
            &example,
        ],
    )
    .await;
    let stdout = String::from_utf8_lossy(&tree.stdout);
    let line = stdout
        .lines()
        .find(|l| l.contains("helm-dependency"))
        .unwrap_or("");
    assert!(
        line.trim_end().ends_with("Synced  Healthy"),
        "{}",
        text(&tree)
    );
    // The dependency's objects, with the example's values.
    let deploy = sync_support::get(
        &emu,
        "/apis/apps/v1/namespaces/helm-dependency/deployments/helm-dependency-wordpress",
    )
    .await
    .expect("wordpress Deployment");
    assert_eq!(
        deploy
            .pointer("/spec/template/spec/containers/0/image")
            .and_then(|v| v.as_str()),
        Some("bitnami/wordpress:invalid")
    );
    assert!(sync_support::get(
        &emu,
        "/apis/apps/v1/namespaces/helm-dependency/statefulsets/helm-dependency-mariadb"
    )
    .await
    .is_some());
    assert!(!repo.path().join("helm-dependency/charts").exists());
}

/// Runs the kubesync binary offline (no cluster).
fn offline(root: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_kubesync"))
        .args(args)
        .arg("--root")
        .arg(root)
        .env("PATH", sync_support::path_with_helm())
        .env_remove("KUBECONFIG")
        .output()
        .expect("run kubesync")
}

#[test]
fn the_cli_names_the_app_chart_and_url_of_an_unreachable_repository() {
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}/charts", closed.local_addr().unwrap());
    drop(closed);
    let repo = Repo::new();
    repo.write(
        "apps/web.yaml",
        &argo_chart_app("web", &dead, "web", "1.0.0", ""),
    );
    let out = offline(&repo.root(), &["render", "web"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "application \"web\": chart \"web\" needs the repository {dead}, which cannot be reached"
        )),
        "{}",
        text(&out)
    );
    // A bad credentials file is a usage error naming the file.
    let creds = repo.path().join("creds.yaml");
    std::fs::write(&creds, "repositories:\n- url: x\n  password: p\n").unwrap();
    let out = offline(
        &repo.root(),
        &["plan", "--helm-repo-credentials", creds.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("creds.yaml"),
        "{}",
        text(&out)
    );
}
