//! Hardening of the sync engine against what a hostile probe found: objects
//! pruned that git still wants, tier escalation through child Applications,
//! two apps fighting over one object, secrets derivable from the desired-state
//! hash, and transient API errors failing whole runs. The engine runs
//! in-process against an emulator over real HTTP; each case checks the
//! change set, the cluster afterwards, and the message users see.

mod sync_support;

use std::collections::BTreeSet;

use kubesync::emulator::{EmulatorHandle, FaultConfig, FaultRule};
use kubesync::sync::Action;
use serde_json::Value;
use sync_support::*;

const PRUNE_NS: &str = "  destination: {namespace: NS}\n  syncPolicy: {createNamespace: true, automated: {prune: true}, wait: {timeout: 20s}}\n";

fn spec(ns: &str) -> String {
    PRUNE_NS.replace("NS", ns)
}

async fn cm(emu: &EmulatorHandle, ns: &str, name: &str) -> Option<Value> {
    get(emu, &format!("/api/v1/namespaces/{ns}/configmaps/{name}")).await
}

async fn inventory(emu: &EmulatorHandle, app: &str) -> Vec<Value> {
    get(
        emu,
        &format!("/apis/kubesync.dev/v1alpha1/namespaces/kubesync-system/applications/{app}"),
    )
    .await
    .and_then(|a| a.pointer("/status/inventory").cloned())
    .and_then(|i| i.as_array().cloned())
    .unwrap_or_default()
}

/// Item 1: an object moves from `a` to `b` in the same commit that breaks
/// `b`'s render. `a` must not prune it (git still wants it, in `b`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moved_object_is_not_pruned_while_its_new_app_fails_to_render() {
    let emu = emulator(fast_simulation()).await;
    let repo = Repo::new();
    repo.app("a", &spec("shared"));
    repo.app("b", &spec("shared"));
    repo.write("objects/a/moving.yaml", &configmap("moving", "k: v"));
    repo.write("objects/a/stays.yaml", &configmap("stays", "k: v"));
    repo.write("objects/b/own.yaml", &configmap("own", "k: v"));
    let first = sync_repo(&repo, &emu).await;
    assert!(first.all_good(), "{first:#?}");

    repo.remove("objects/a/moving.yaml");
    repo.write("objects/b/moving.yaml", &configmap("moving", "k: v"));
    repo.write("objects/b/broken.yaml", "kind: [unclosed\n");
    let second = sync_repo(&repo, &emu).await;
    let b = app(&second, "b");
    assert!(failure(b).contains("broken.yaml"), "{b:#?}");
    let kept = change_of(app(&second, "a"), "moving");
    assert_eq!(kept.action, Action::Skipped, "{kept:#?}");
    assert!(
        kept.message()
            .contains("application \"b\" failed to render and may now render it"),
        "{}",
        kept.message()
    );
    assert!(cm(&emu, "shared", "moving").await.is_some(), "pruned");
    // Still in `a`'s inventory: pruned later if it really left git.
    assert!(inventory(&emu, "a")
        .await
        .iter()
        .any(|e| e["name"] == "moving"));

    // Once `b` renders, it takes the object over; nothing is deleted.
    repo.remove("objects/b/broken.yaml");
    let third = sync_repo(&repo, &emu).await;
    assert!(third.all_good(), "{third:#?}");
    let live = cm(&emu, "shared", "moving").await.expect("kept");
    assert_eq!(live["metadata"]["labels"]["kubesync.dev/app"], "b");
    assert!(!inventory(&emu, "a")
        .await
        .iter()
        .any(|e| e["name"] == "moving"));
}

/// Item 3: an app whose render is suddenly empty (an include glob matching
/// nothing) fails instead of pruning everything, unless it allows empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_render_never_prunes_without_allow_empty() {
    let emu = emulator(fast_simulation()).await;
    let repo = Repo::new();
    repo.app("web", &spec("web"));
    repo.write("objects/web/one.yaml", &configmap("one", "k: v"));
    repo.write("objects/web/two.yaml", &configmap("two", "k: v"));
    assert!(sync_repo(&repo, &emu).await.all_good());

    let emptied = format!(
        "apiVersion: kubesync.dev/v1alpha1\nkind: Application\nmetadata: {{name: web}}\nspec:\n  source: {{path: objects/web, directory: {{include: \"*.yml\"}}}}\n{}",
        spec("web")
    );
    repo.write("apps/web.yaml", &emptied);
    let report = sync_repo(&repo, &emu).await;
    let web = app(&report, "web");
    assert_eq!(
        failure(web),
        "renders no objects; refusing to prune the 2 object(s) it applied before (set syncPolicy.automated.allowEmpty: true if the app really should be empty)"
    );
    assert!(cm(&emu, "web", "one").await.is_some());
    assert!(cm(&emu, "web", "two").await.is_some());
    assert_eq!(inventory(&emu, "web").await.len(), 2, "inventory kept");

    repo.write(
        "apps/web.yaml",
        &emptied.replace("prune: true}", "prune: true, allowEmpty: true}"),
    );
    let report = sync_repo(&repo, &emu).await;
    assert!(report.all_good(), "{report:#?}");
    assert_eq!(app(&report, "web").counts().pruned, 2);
    assert!(cm(&emu, "web", "one").await.is_none());
}

/// Item 4: `kubesync.dev/sync: off` set in git (the annotation never reaches
/// the live object), then the file removed: the object is kept and released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_turned_off_in_git_is_never_pruned() {
    let emu = emulator(fast_simulation()).await;
    let repo = Repo::new();
    repo.app("web", &spec("web"));
    repo.write("objects/web/keep.yaml", &configmap("keep", "k: v"));
    repo.write("objects/web/marker.yaml", &configmap("marker", "k: v"));
    assert!(sync_repo(&repo, &emu).await.all_good());

    repo.write(
        "objects/web/keep.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: keep, annotations: {kubesync.dev/sync: \"off\"}}\ndata: {k: v}\n",
    );
    let report = sync_repo(&repo, &emu).await;
    assert_eq!(
        change_of(app(&report, "web"), "keep").action,
        Action::Skipped
    );
    let inv = inventory(&emu, "web").await;
    let entry = inv
        .iter()
        .find(|e| e["name"] == "keep")
        .expect("in inventory");
    assert_eq!(entry["syncOff"], true, "{inv:#?}");
    let live = cm(&emu, "web", "keep").await.expect("live");
    assert!(live["metadata"]["annotations"]
        .get("kubesync.dev/sync")
        .is_none());

    repo.remove("objects/web/keep.yaml");
    let report = sync_repo(&repo, &emu).await;
    assert!(report.all_good(), "{report:#?}");
    let c = change_of(app(&report, "web"), "keep");
    assert_eq!(c.action, Action::Skipped);
    assert!(
        c.message().contains("kubesync.dev/sync: off in git"),
        "{c:#?}"
    );
    assert!(cm(&emu, "web", "keep").await.is_some(), "pruned");
    assert!(!inventory(&emu, "web")
        .await
        .iter()
        .any(|e| e["name"] == "keep"));
}

/// Item 5: a child never has more power than its parent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_tier_app_cannot_create_system_tier_apps() {
    let emu = emulator(fast_simulation()).await;
    let repo = Repo::new();
    repo.app("team", &spec("team"));
    let role = "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: everything}\nrules: [{apiGroups: [\"*\"], resources: [\"*\"], verbs: [\"*\"]}]\n";
    // An explicit `tier: system` child: refused, naming the parent.
    repo.write(
        "objects/team/escalate.yaml",
        "apiVersion: kubesync.dev/v1alpha1\nkind: Application\nmetadata: {name: escalate}\nspec:\n  tier: system\n  source: {path: evil}\n  destination: {namespace: kube-system}\n",
    );
    // An Argo CD child (system by default) placed in kubesync-system: app tier.
    repo.write(
        "objects/team/argo.yaml",
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: argo-child, namespace: kubesync-system}\nspec:\n  project: default\n  source: {repoURL: \"\", path: evil2}\n  destination: {namespace: kube-system, server: https://kubernetes.default.svc}\n",
    );
    repo.write("evil/role.yaml", role);
    repo.write(
        "evil2/role.yaml",
        &role.replace("name: everything", "name: everything2"),
    );
    repo.write(
        "evil2/cm.yaml",
        &configmap("planted", "k: v")
            .replace("name: planted}", "name: planted, namespace: kube-system}"),
    );
    let report = sync_repo(&repo, &emu).await;
    assert!(app(&report, "team").outcome.is_success(), "{report:#?}");
    assert_eq!(
        failure(app(&report, "escalate")),
        "objects/team/escalate.yaml: asks for tier system, but its parent \"team\" is tier app; a child never has more power than its parent",
    );
    let argo = app(&report, "argo-child");
    assert_eq!(argo.tier, kubesync::model::Tier::App);
    let message = failure(argo);
    assert!(message.starts_with("refused before any write"), "{message}");
    assert!(message.contains("ClusterRole"), "{message}");
    for path in [
        "/apis/rbac.authorization.k8s.io/v1/clusterroles/everything",
        "/apis/rbac.authorization.k8s.io/v1/clusterroles/everything2",
        "/api/v1/namespaces/kube-system/configmaps/planted",
    ] {
        assert!(get(&emu, path).await.is_none(), "{path} was written");
    }
}

/// Item 7: the desired-state hash kubesync stores (and `diff` prints) does
/// not change with a Secret's values, so it cannot be reversed to them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_desired_hash_of_a_secret_does_not_depend_on_its_values() {
    let emu = emulator(fast_simulation()).await;
    let repo = Repo::new();
    repo.app("web", &spec("web"));
    let secret = |pin: &str| {
        format!("apiVersion: v1\nkind: Secret\nmetadata: {{name: pin}}\nstringData: {{pin: \"{pin}\"}}\n")
    };
    repo.write("objects/web/s.yaml", &secret("1234"));
    assert!(sync_repo(&repo, &emu).await.all_good());
    let path = "/api/v1/namespaces/web/secrets/pin";
    let before = get(&emu, path).await.expect("secret");
    repo.write("objects/web/s.yaml", &secret("9999"));
    let report = sync_repo(&repo, &emu).await;
    assert_eq!(
        change_of(app(&report, "web"), "pin").action,
        Action::Configured
    );
    let after = get(&emu, path).await.expect("secret");
    let hash = |v: &Value| v["metadata"]["annotations"]["kubesync.dev/desired-hash"].clone();
    assert!(hash(&before).is_string());
    assert_eq!(hash(&before), hash(&after));
    assert_eq!(
        after["data"]["pin"], "OTk5OQ==",
        "the new value was applied"
    );
}

/// Item 12: two apps rendering one object is an error naming both; neither
/// writes it (nor anything else) until one gives it up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_apps_claiming_one_object_both_fail_and_neither_writes_it() {
    let emu = emulator(fast_simulation()).await;
    let repo = Repo::new();
    repo.app("a", &spec("shared"));
    repo.app("b", &spec("shared"));
    repo.write("objects/a/x.yaml", &configmap("x", "owner: a"));
    repo.write("objects/b/x.yaml", &configmap("x", "owner: b"));
    repo.write("objects/b/other.yaml", &configmap("other", "k: v"));
    let report = sync_repo(&repo, &emu).await;
    for (me, other) in [("a", "b"), ("b", "a")] {
        let m = failure(app(&report, me));
        assert!(
            m.contains(&format!(
                "ConfigMap shared/x (objects/{me}/x.yaml): also rendered by application \"{other}\""
            )),
            "{me}: {m}"
        );
    }
    assert!(cm(&emu, "shared", "x").await.is_none());
    assert!(cm(&emu, "shared", "other").await.is_none());

    repo.remove("objects/a/x.yaml");
    let report = sync_repo(&repo, &emu).await;
    assert!(report.all_good(), "{report:#?}");
    assert_eq!(
        cm(&emu, "shared", "x").await.expect("x")["data"]["owner"],
        "b"
    );
}

/// Item 15: one invalid child Application (an unusable name, null metadata)
/// fails on its own; its parent and siblings sync.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_child_fails_alone() {
    let emu = emulator(fast_simulation()).await;
    let repo = Repo::new();
    repo.app("good", &spec("good"));
    repo.write("objects/good/c.yaml", &configmap("c", "k: v"));
    repo.write(
        "apps/upper.yaml",
        "apiVersion: kubesync.dev/v1alpha1\nkind: Application\nmetadata: {name: Upper}\nspec:\n  source: {path: objects/good}\n",
    );
    repo.write(
        "apps/null.yaml",
        "apiVersion: kubesync.dev/v1alpha1\nkind: Application\nmetadata: null\nspec:\n  source: {path: objects/good}\n",
    );
    let report = sync_repo(&repo, &emu).await;
    assert!(app(&report, "root").outcome.is_success(), "{report:#?}");
    assert!(app(&report, "good").outcome.is_success(), "{report:#?}");
    assert!(cm(&emu, "good", "c").await.is_some());
    let stand_ins: BTreeSet<String> = report
        .apps
        .iter()
        .filter(|a| a.name.as_str().starts_with("root-invalid-"))
        .map(|a| format!("{}: {}", a.name, failure(a)))
        .collect();
    assert_eq!(stand_ins.len(), 2, "{stand_ins:#?}");
    assert!(
        stand_ins
            .iter()
            .any(|m| m.contains("apps/upper.yaml") && m.contains("\"Upper\"")),
        "{stand_ins:#?}"
    );
    assert!(
        stand_ins.iter().any(|m| m.contains("apps/null.yaml")),
        "{stand_ins:#?}"
    );
}

/// Item 13: under 30 % injected 503s a bootstrap still converges — retries
/// are bounded by time, not by five attempts — and the user sees no
/// per-request ERROR lines, one summary note instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_errors_are_ridden_out_and_summarised_once() {
    let emu = emulator(fast_simulation()).await;
    let repo = Repo::new();
    for name in ["a", "b", "c"] {
        repo.app(name, &spec(name));
        for i in 0..5 {
            repo.write(
                &format!("objects/{name}/cm{i}.yaml"),
                &configmap(&format!("cm{i}"), "k: v"),
            );
        }
    }
    emu.set_faults(FaultConfig {
        seed: 7,
        rules: vec![FaultRule::error(503).with_rate(0.3)],
    })
    .expect("faults");
    let out = run(&repo.root(), &emu.url(), &["bootstrap"]).await;
    assert!(out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("ERROR"), "{stderr}");
    assert!(!stderr.contains("failed with status"), "{stderr}");
    assert!(
        stderr.contains("were retried after transient API errors"),
        "{stderr}"
    );
    assert!(emu.requests().faults.errors > 0);
    for name in ["a", "b", "c"] {
        assert!(cm(&emu, name, "cm4").await.is_some());
    }
}

/// Item 2: a typo in `kind` (or a non-string `apiVersion`) in a synced file
/// fails the app; the live object is kept, never pruned as "left git".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_typo_in_kind_fails_the_app_and_deletes_nothing() {
    let emu = emulator(fast_simulation()).await;
    let repo = Repo::new();
    repo.app("web", &spec("web"));
    repo.write("objects/web/a.yaml", &configmap("a", "k: v"));
    repo.write("objects/web/b.yaml", &configmap("b", "k: v"));
    assert!(sync_repo(&repo, &emu).await.all_good());
    for typo in [
        "apiVersion: v1\nKind: ConfigMap\nmetadata: {name: a}\ndata: {k: v}\n",
        "apiVersion: 5\nkind: ConfigMap\nmetadata: {name: a}\ndata: {k: v}\n",
        "apiVersion: v1\nkind: {a: b}\nmetadata: {name: a}\ndata: {k: v}\n",
    ] {
        repo.write("objects/web/a.yaml", typo);
        let before = writes(&emu);
        let report = sync_repo(&repo, &emu).await;
        let web = app(&report, "web");
        assert!(failure(web).contains("objects/web/a.yaml"), "{web:#?}");
        assert!(cm(&emu, "web", "a").await.is_some(), "pruned after {typo}");
        assert!(cm(&emu, "web", "b").await.is_some());
        // Only the Application's status may be written, no object.
        let served = emu.requests();
        assert_eq!(served.count("delete", "configmaps"), 0, "{typo}");
        assert!(writes(&emu) - before <= 2, "{typo}");
    }
}
