//! `kubesync delete APP` through the binary against the emulator: an app
//! removed from git (no resources finalizer, so a sync kept it) is deleted
//! with its objects — its PreDelete hook first, objects that say
//! `Delete=false` kept — and its Application object; `--cascade=false`
//! deletes only the Application object; an app git still defines is refused
//! (exit 2, naming its file); an unknown app exits 1; `--dry-run` writes
//! nothing.

mod sync_support;

use kubesync::emulator::EmulatorHandle;
use sync_support::*;

const APP: &str = "/apis/kubesync.dev/v1alpha1/namespaces/kubesync-system/applications/gone";
const WEB: &str = "/apis/apps/v1/namespaces/gone/deployments/web";
const CONF: &str = "/api/v1/namespaces/gone/configmaps/conf";
const PRECIOUS: &str = "/api/v1/namespaces/gone/configmaps/precious";
const DRAIN: &str = "/apis/batch/v1/namespaces/gone/jobs/drain";

/// An Argo CD Application without the resources finalizer: a sync keeps it
/// (and its objects) when it leaves git.
fn argo_app(name: &str) -> String {
    format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: {name}\n  namespace: argocd\nspec:\n  source: {{repoURL: '', path: objects/{name}}}\n  destination: {{namespace: {name}, server: 'https://kubernetes.default.svc'}}\n  syncPolicy: {{syncOptions: [CreateNamespace=true]}}\n"
    )
}

/// Apps `gone` (a Deployment, two ConfigMaps, one `Delete=false`, and a
/// PreDelete Job `drain`) and `stays`, bootstrapped; then `gone` leaves
/// git and a second bootstrap keeps it (reported).
async fn removed_from_git(emu: &EmulatorHandle) -> Repo {
    let repo = Repo::new();
    repo.write("apps/gone.yaml", &argo_app("gone"));
    repo.write("apps/stays.yaml", &argo_app("stays"));
    repo.write("objects/gone/web.yaml", &deployment("web", "nginx:1"));
    repo.write("objects/gone/conf.yaml", &configmap("conf", "k: v"));
    repo.write(
        "objects/gone/precious.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: precious\n  annotations: {argocd.argoproj.io/sync-options: Delete=false}\ndata: {k: v}\n",
    );
    repo.write(
        "objects/gone/drain.yaml",
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: drain\n  annotations:\n    argocd.argoproj.io/hook: PreDelete\nspec:\n  backoffLimit: 0\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{name: c, image: \"drain:1\"}]\n",
    );
    repo.write("objects/stays/conf.yaml", &configmap("conf", "k: v"));
    let out = run(&repo.root(), &emu.url(), &["bootstrap"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    repo.remove("apps/gone.yaml");
    let out = run(&repo.root(), &emu.url(), &["bootstrap"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("no longer in the tree: gone (their objects are kept; `kubesync delete APP`"),
        "{}",
        text(&out)
    );
    for path in [APP, WEB, CONF, PRECIOUS] {
        assert!(get(emu, path).await.is_some(), "{path} kept by bootstrap");
    }
    assert!(get(emu, DRAIN).await.is_none(), "a sync never runs it");
    repo
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_removed_from_git_is_deleted_with_its_objects() {
    let emu = emulator(fast_simulation()).await;
    let repo = removed_from_git(&emu).await;
    let out = run(&repo.root(), &emu.url(), &["delete", "gone"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let s = stdout(&out);
    for line in [
        "removed application gone: no longer in the tree, deleted with its objects: 2 deleted, 1 kept",
        "  ran deletion hook Job.batch gone/drain",
        "  deleted  Deployment.apps gone/web",
        "  deleted  ConfigMap gone/conf",
        "  kept     ConfigMap gone/precious:",
        "  deleted  Application gone (namespace kubesync-system)",
    ] {
        assert!(s.contains(line), "missing {line:?} in {}", text(&out));
    }
    // The hook ran before the objects went; the workload before its config.
    let pos = |l: &str| s.find(l).unwrap_or(usize::MAX);
    assert!(pos("ran deletion hook") < pos("deleted  Deployment.apps"));
    assert!(pos("deleted  Deployment.apps") < pos("deleted  ConfigMap gone/conf"));
    assert!(get(&emu, DRAIN).await.is_some(), "the PreDelete hook ran");
    for path in [APP, WEB, CONF] {
        assert!(get(&emu, path).await.is_none(), "{path} deleted");
    }
    assert!(get(&emu, PRECIOUS).await.is_some(), "Delete=false is kept");
    // The other app is untouched, and a second delete finds nothing.
    assert!(get(&emu, "/api/v1/namespaces/stays/configmaps/conf")
        .await
        .is_some());
    let again = run(&repo.root(), &emu.url(), &["delete", "gone"]).await;
    assert_eq!(again.status.code(), Some(1), "{}", text(&again));
    // And the next bootstrap no longer reports it.
    let out = run(&repo.root(), &emu.url(), &["bootstrap"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!stdout(&out).contains("gone"), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_cascade_only_the_application_object_goes() {
    let emu = emulator(fast_simulation()).await;
    let repo = removed_from_git(&emu).await;
    let out = run(
        &repo.root(),
        &emu.url(),
        &["delete", "gone", "--cascade=false"],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let s = stdout(&out);
    assert!(
        s.contains("removed application gone: no longer in the tree, deleted; its objects are kept (--cascade=false): 3 object(s) left in the cluster"),
        "{}",
        text(&out)
    );
    assert!(
        s.contains("  left     Deployment.apps gone/web"),
        "{}",
        text(&out)
    );
    assert!(get(&emu, APP).await.is_none(), "Application object deleted");
    for path in [WEB, CONF, PRECIOUS] {
        assert!(get(&emu, path).await.is_some(), "{path} left in place");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_still_in_git_is_refused() {
    let emu = emulator(fast_simulation()).await;
    let repo = removed_from_git(&emu).await;
    let before = writes(&emu);
    let out = run(&repo.root(), &emu.url(), &["delete", "stays"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let e = stderr(&out);
    assert!(
        e.contains("application \"stays\" is still defined in git by")
            && e.contains("apps/stays.yaml")
            && e.contains("remove it from git first"),
        "{}",
        text(&out)
    );
    assert_eq!(writes(&emu), before, "nothing written");
    assert!(get(&emu, "/api/v1/namespaces/stays/configmaps/conf")
        .await
        .is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_app_exits_1_naming_it() {
    let emu = emulator(fast_simulation()).await;
    let repo = removed_from_git(&emu).await;
    let before = writes(&emu);
    let out = run(&repo.root(), &emu.url(), &["delete", "nosuch"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        stderr(&out).contains("no application \"nosuch\" in"),
        "{}",
        text(&out)
    );
    assert_eq!(writes(&emu), before, "nothing written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_writes_nothing() {
    let emu = emulator(fast_simulation()).await;
    let repo = removed_from_git(&emu).await;
    let before = writes(&emu);
    let out = run(&repo.root(), &emu.url(), &["delete", "gone", "--dry-run"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let s = stdout(&out);
    for line in [
        "removed application gone (dry run): no longer in the tree, would be deleted with its objects: 2 would be deleted, 1 kept",
        "  would run deletion hook Job.batch gone/drain",
        "  would delete Deployment.apps gone/web",
        "  would delete ConfigMap gone/conf",
        "  would keep ConfigMap gone/precious:",
        "  would delete Application gone (namespace kubesync-system)",
    ] {
        assert!(s.contains(line), "missing {line:?} in {}", text(&out));
    }
    assert_eq!(writes(&emu), before, "a dry run writes nothing");
    for path in [APP, WEB, CONF, PRECIOUS] {
        assert!(get(&emu, path).await.is_some(), "{path} still there");
    }
    assert!(get(&emu, DRAIN).await.is_none(), "no hook ran");
    // Without cascade, the dry run lists what would be left.
    let out = run(
        &repo.root(),
        &emu.url(),
        &["delete", "gone", "--dry-run", "--cascade=false"],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let s = stdout(&out);
    for line in [
        "removed application gone (dry run): no longer in the tree, would be deleted; its objects are kept (--cascade=false): 3 object(s) left in the cluster",
        "  would leave Deployment.apps gone/web",
        "  would delete Application gone (namespace kubesync-system)",
    ] {
        assert!(s.contains(line), "missing {line:?} in {}", text(&out));
    }
    assert!(!s.contains("  deleted "), "{}", text(&out));
    assert_eq!(writes(&emu), before, "a dry run writes nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_deleted_while_an_app_of_the_tree_fails_to_render() {
    let emu = emulator(fast_simulation()).await;
    let repo = removed_from_git(&emu).await;
    // An app whose source is missing: it may be the parent that defines `gone`.
    repo.write(
        "apps/broken.yaml",
        "apiVersion: kubesync.dev/v1alpha1\nkind: Application\nmetadata: {name: broken}\nspec:\n  source: {path: objects/missing}\n",
    );
    let before = writes(&emu);
    let out = run(&repo.root(), &emu.url(), &["delete", "gone"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        stderr(&out).contains(
            "cannot tell whether git still defines application \"gone\": \"broken\" failed to render"
        ),
        "{}",
        text(&out)
    );
    assert_eq!(writes(&emu), before, "nothing written");
    assert!(get(&emu, WEB).await.is_some());
}
