//! Argo CD AppProjects in the tree: read, never applied; their source,
//! destination and resource rules hold the Argo CD Applications that name
//! them, before anything is written. In-process against an emulator.

mod sync_support;

use sync_support::*;

const PROJECT: &str = "apiVersion: argoproj.io/v1alpha1\nkind: AppProject\nmetadata: {name: team, namespace: argocd}\nspec:\n  sourceRepos: ['*']\n  destinations: [{namespace: 'team-*', server: 'https://kubernetes.default.svc'}]\n  clusterResourceWhitelist: []\n  namespaceResourceBlacklist: [{group: '', kind: ResourceQuota}]\n";

/// An Argo CD Application `name` in `project`, deploying `objects/<name>` to `ns`.
fn argo_app(name: &str, project: &str, ns: &str) -> String {
    format!("apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {{name: {name}, namespace: argocd}}\nspec:\n  project: {project}\n  source: {{repoURL: '', path: objects/{name}}}\n  destination: {{namespace: {ns}, server: 'https://kubernetes.default.svc'}}\n  syncPolicy: {{syncOptions: [CreateNamespace=true]}}\n")
}

const ROLE: &str = "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: NAME}\nrules: []\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_projects_are_guardrails_not_objects() {
    let emu = emulator(fast_simulation()).await;
    let repo = Repo::new();
    repo.write("apps/project.yaml", PROJECT);
    repo.write("apps/ok.yaml", &argo_app("ok", "team", "team-a"));
    repo.write("objects/ok/cm.yaml", &configmap("c", "k: v"));
    repo.write(
        "apps/elsewhere.yaml",
        &argo_app("elsewhere", "team", "kube-system"),
    );
    repo.write("objects/elsewhere/cm.yaml", &configmap("c", "k: v"));
    repo.write(
        "apps/clusterwide.yaml",
        &argo_app("clusterwide", "team", "team-b"),
    );
    repo.write(
        "objects/clusterwide/role.yaml",
        &ROLE.replace("NAME", "team-role"),
    );
    repo.write("objects/clusterwide/cm.yaml", &configmap("c", "k: v"));
    repo.write("apps/quota.yaml", &argo_app("quota", "team", "team-c"));
    repo.write(
        "objects/quota/q.yaml",
        "apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: q}\nspec: {hard: {pods: '10'}}\n",
    );
    repo.write("apps/lost.yaml", &argo_app("lost", "nope", "team-d"));
    repo.write("objects/lost/cm.yaml", &configmap("c", "k: v"));
    repo.write(
        "apps/platform.yaml",
        &argo_app("platform", "default", "platform"),
    );
    repo.write(
        "objects/platform/role.yaml",
        &ROLE.replace("NAME", "platform-role"),
    );

    let report = sync_repo(&repo, &emu).await;
    // The root renders the AppProject and is not refused for it.
    assert!(app(&report, "root").outcome.is_success(), "{report:#?}");
    assert!(get(
        &emu,
        "/apis/argoproj.io/v1alpha1/namespaces/argocd/appprojects/team"
    )
    .await
    .is_none());
    assert!(app(&report, "ok").outcome.is_success(), "{report:#?}");
    assert!(get(&emu, "/api/v1/namespaces/team-a/configmaps/c")
        .await
        .is_some());
    assert_eq!(
        failure(app(&report, "elsewhere")),
        "project \"team\" does not allow destination namespace \"kube-system\""
    );
    let m = failure(app(&report, "clusterwide"));
    assert!(m.starts_with("refused before any write"), "{m}");
    assert!(
        m.contains("project \"team\" does not whitelist cluster-scoped kind ClusterRole.rbac.authorization.k8s.io"),
        "{m}"
    );
    assert!(
        get(&emu, "/api/v1/namespaces/team-b/configmaps/c")
            .await
            .is_none(),
        "nothing written"
    );
    assert!(failure(app(&report, "quota"))
        .contains("project \"team\" blacklists namespaced kind ResourceQuota"));
    assert_eq!(
        failure(app(&report, "lost")),
        "project \"nope\" does not exist (no AppProject of that name in the tree)"
    );
    // The implicit default project allows everything.
    assert!(app(&report, "platform").outcome.is_success(), "{report:#?}");
    assert!(get(
        &emu,
        "/apis/rbac.authorization.k8s.io/v1/clusterroles/platform-role"
    )
    .await
    .is_some());
    assert!(get(
        &emu,
        "/apis/rbac.authorization.k8s.io/v1/clusterroles/team-role"
    )
    .await
    .is_none());
}

#[test]
fn a_malformed_app_project_fails_the_app_that_renders_it() {
    let repo = Repo::new();
    repo.write(
        "apps/project.yaml",
        "apiVersion: argoproj.io/v1alpha1\nkind: AppProject\nmetadata: {name: team}\nspec: {sourceRepos: '*'}\n",
    );
    let tree = tree_of(&repo.root());
    let root = tree.get_str("root").expect("root");
    let f = root.failure().expect("root fails");
    assert_eq!(
        f.message,
        "apps/project.yaml: spec.sourceRepos: AppProject \"team\": must be a sequence, found a string"
    );
}
