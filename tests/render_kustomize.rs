//! The kustomize renderer end to end through `kustomize build` or `kubectl
//! kustomize` (skipped, with the reason printed, when neither is installed).

mod render_support;

use std::path::PathBuf;

use kubesync::render::{find_in_path, RenderError, Renderer, RendererKind};
use render_support::{app_with, cm, names, origins, render, Repo};

fn tool() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    find_in_path("kustomize".as_ref(), &path).or_else(|| find_in_path("kubectl".as_ref(), &path))
}

macro_rules! require_kustomize {
    () => {
        match tool() {
            Some(t) => t,
            None => {
                eprintln!("skipped: neither kustomize nor kubectl is on PATH");
                return;
            }
        }
    };
}

fn base_and_overlay() -> Repo {
    let repo = Repo::new();
    repo.write(
        "base/kustomization.yaml",
        "resources: [cm.yaml, deploy.yaml]\n",
    )
    .write("base/cm.yaml", &cm("settings"))
    .write(
        "base/deploy.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n      - name: web\n        image: nginx:1.0\n",
    )
    .write(
        "overlays/prod/kustomization.yaml",
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [../../base]\nnamePrefix: prod-\n",
    );
    repo
}

#[test]
fn base_and_overlay_are_built() {
    let _t = require_kustomize!();
    let repo = base_and_overlay();
    let app = app_with("web", None, "{path: overlays/prod}");
    let r = render(&Renderer::new(), &repo, &app, None).unwrap();
    assert_eq!(r.renderer, RendererKind::Kustomize);
    assert_eq!(
        names(&r),
        vec!["ConfigMap/prod-settings", "Deployment/prod-web"]
    );
    assert_eq!(
        origins(&r),
        vec!["overlays/prod", "overlays/prod (document 2)"]
    );
}

#[test]
fn options_are_applied_as_an_overlay() {
    let _t = require_kustomize!();
    let repo = base_and_overlay();
    let app = app_with(
        "web",
        None,
        "{path: base, kustomize: {namePrefix: a-, nameSuffix: -z, namespace: shop, images: ['nginx=mirror.local/nginx:2.0'], commonLabels: {team: blue}, commonAnnotations: {owner: ops}}}",
    );
    let r = render(&Renderer::new(), &repo, &app, None).unwrap();
    assert_eq!(
        names(&r),
        vec!["ConfigMap/a-settings-z", "Deployment/a-web-z"]
    );
    assert_eq!(origins(&r)[0], "base");
    let dep = &r.manifests[1].object;
    assert_eq!(dep["metadata"]["namespace"], "shop");
    assert_eq!(dep["metadata"]["labels"]["team"], "blue");
    assert_eq!(dep["metadata"]["annotations"]["owner"], "ops");
    assert_eq!(dep["spec"]["selector"]["matchLabels"]["team"], "blue");
    assert_eq!(
        dep["spec"]["template"]["spec"]["containers"][0]["image"],
        "mirror.local/nginx:2.0"
    );
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    // The repository is left untouched.
    assert!(!repo.path("base/kustomization.yml").exists());
    assert_eq!(
        std::fs::read_to_string(repo.path("base/kustomization.yaml")).unwrap(),
        "resources: [cm.yaml, deploy.yaml]\n"
    );
}

#[test]
fn load_restrictions_still_apply_to_the_base() {
    let _t = require_kustomize!();
    let repo = Repo::new();
    repo.write("secret.txt", "hunter2\n").write(
        "app/kustomization.yaml",
        "configMapGenerator:\n- name: leak\n  files: [../secret.txt]\n",
    );
    let app = app_with("leaky", None, "{path: app, kustomize: {namePrefix: x-}}");
    let e = render(&Renderer::new(), &repo, &app, None).unwrap_err();
    assert!(matches!(e, RenderError::Kustomize { .. }), "{e:?}");
    let text = e.to_string();
    assert!(
        text.contains("security") || text.contains("outside"),
        "{text}"
    );
    assert!(!text.contains("/tmp/kubesync-kustomize"), "{text}");
}

#[test]
fn broken_kustomization_reports_stderr() {
    let _t = require_kustomize!();
    let repo = Repo::new();
    repo.write("apps/k/kustomization.yaml", "resources: [missing.yaml]\n");
    let app = app_with("k", None, "{path: apps/k}");
    let e = render(&Renderer::new(), &repo, &app, None).unwrap_err();
    let RenderError::Kustomize { app, dir, stderr } = &e else {
        panic!("{e:?}")
    };
    assert_eq!(app, "k");
    assert_eq!(dir.to_str(), Some("apps/k"));
    assert!(stderr.contains("missing.yaml"), "{stderr}");
    assert!(
        e.to_string()
            .starts_with("application \"k\": kustomize build of apps/k failed: "),
        "{e}"
    );
}

#[test]
fn explicit_kubectl_binary_is_used_as_kubectl_kustomize() {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let Some(kubectl) = find_in_path("kubectl".as_ref(), &path) else {
        eprintln!("skipped: kubectl is not on PATH");
        return;
    };
    let repo = base_and_overlay();
    let app = app_with("web", None, "{path: base}");
    let r = render(&Renderer::new().with_kustomize(kubectl), &repo, &app, None).unwrap();
    assert_eq!(names(&r), vec!["ConfigMap/settings", "Deployment/web"]);
}

#[test]
fn missing_tool_is_reported_with_a_hint() {
    let repo = base_and_overlay();
    let app = app_with("web", None, "{path: base}");
    if std::env::var_os("KUBESYNC_KUSTOMIZE").is_some() {
        eprintln!("skipped: KUBESYNC_KUSTOMIZE is set");
        return;
    }
    let e = render(&Renderer::new().with_search_path(""), &repo, &app, None).unwrap_err();
    assert!(matches!(e, RenderError::MissingBinary { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        "application \"web\": kustomize not found: base is a kustomization; install kustomize or kubectl on PATH (or set $KUBESYNC_KUSTOMIZE to one of them)"
    );
}

/// Argo CD's `kustomize.buildOptions`: `--load-restrictor
/// LoadRestrictionsNone` lets a kustomization read a file outside its own
/// root (still inside the repository), which kustomize's default refuses;
/// an option kubesync does not pass on fails the app naming it.
#[test]
fn build_options_loosen_the_load_restrictor_and_others_are_refused() {
    let _t = require_kustomize!();
    let repo = Repo::new();
    repo.write("shared/cm.yaml", &cm("shared"))
        .write("app/kustomization.yaml", "resources: [../shared/cm.yaml]\n");
    let app = app_with("web", None, "{path: app}");
    let err = render(
        &Renderer::new().with_kustomize_build_options(""),
        &repo,
        &app,
        None,
    )
    .unwrap_err();
    assert!(matches!(err, RenderError::Kustomize { .. }), "{err}");
    let loose =
        Renderer::new().with_kustomize_build_options("--load-restrictor LoadRestrictionsNone");
    let r = render(&loose, &repo, &app, None).unwrap();
    assert_eq!(names(&r), vec!["ConfigMap/shared"]);
    let err = render(
        &Renderer::new().with_kustomize_build_options("--enable-alpha-plugins"),
        &repo,
        &app,
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with("application \"web\": kustomize build of ")
            && err.contains("unsupported kustomize build option \"--enable-alpha-plugins\" (kubesync passes --enable-helm and --load-restrictor) ($KUBESYNC_KUSTOMIZE_BUILD_OPTIONS)"),
        "{err}"
    );
}
