//! The real-cluster tier: kubesync against a real API server (in CI, the
//! control plane `scripts/control-plane up` builds from the Kubernetes Go
//! modules: kube-apiserver, etcd, controller-manager, scheduler and kwok's
//! fake nodes). Runs when `KUBESYNC_E2E_KUBECONFIG` names the kubeconfig
//! kubesync uses; skipped, with the reason printed, otherwise.
//!
//! - `KUBESYNC_E2E_ADMIN_KUBECONFIG`: a second identity for edits made "by
//!   someone else" (drift) and for the test's load-balancer provider
//!   (default: the same kubeconfig).
//! - `KUBESYNC_E2E_AUDIT_LOG`: the API server's audit log; when set, "a
//!   converged re-sync makes zero writes" is counted there, per request, for
//!   kubesync's user.
//!
//! Tests run one at a time (they share the cluster's `kubesync-system`
//! namespace); everything else lives in namespaces named `kse2e-…`, deleted
//! at the end.

mod support;
mod sync_support;

use std::io::Write as _;
use std::path::Path;
use std::process::Output;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::real_cluster::{
    from_env, kubectl, kubectl_json, unique_name, AuditLog, Cleanup, LoadBalancerProvider,
    RealCluster,
};
use sync_support::{configmap, deployment, kubesync_on as kubesync, text, Repo};

/// One test at a time on the shared cluster.
static CLUSTER: Mutex<()> = Mutex::new(());

/// Removes what the example tree put into the shared cluster, so that the
/// tests after it (the emulator's differential test among them) see a
/// cluster without its default IngressClass (which admission would add to
/// every Ingress), its never-available APIService, its RBAC, CRD and
/// namespaces — every cluster-scoped object kubesync labelled, except the
/// namespaces the cluster's own identities live in — and its Application
/// objects.
struct ExampleTreeCleanup<'a> {
    kc: &'a str,
}

impl Drop for ExampleTreeCleanup<'_> {
    fn drop(&mut self) {
        for kind in [
            "apiservices.apiregistration.k8s.io",
            "ingressclasses.networking.k8s.io",
            "clusterrolebindings.rbac.authorization.k8s.io",
            "clusterroles.rbac.authorization.k8s.io",
            "customresourcedefinitions.apiextensions.k8s.io",
        ] {
            let _ = kubectl(
                self.kc,
                &["delete", kind, "-l", "kubesync.dev/app", "--wait=false"],
            );
        }
        let _ = kubectl(
            self.kc,
            &[
                "delete",
                "namespaces",
                "-l",
                "kubesync.dev/app,kubernetes.io/metadata.name notin (kubesync-system,kube-system,default)",
                "--wait=false",
            ],
        );
        let _ = kubectl(
            self.kc,
            &[
                "delete",
                "applications.kubesync.dev",
                "-n",
                "kubesync-system",
                "--all",
            ],
        );
    }
}

/// Write requests (create, update, patch, delete — dry runs excluded) the
/// audit log recorded for kubesync's user since `mark` (a line count).
struct Audit {
    log: AuditLog,
    user: String,
}

impl Audit {
    fn new(env: &RealCluster) -> Option<Audit> {
        let path = env.audit.clone()?;
        let who = kubectl_json(&env.kc, &["auth", "whoami"])?;
        let user = who
            .pointer("/status/userInfo/username")?
            .as_str()?
            .to_string();
        Some(Audit {
            log: AuditLog { path },
            user,
        })
    }

    fn mark(&self) -> usize {
        self.log.mark()
    }

    /// `(verb resource name, count)` of kubesync's writes after `mark`.
    fn writes_since(&self, mark: usize) -> Vec<String> {
        let Ok(writes) = self.log.writes_since(mark) else {
            return vec!["audit log unreadable".into()];
        };
        let mut out = Vec::new();
        for e in writes {
            let s = |p: &str| e.pointer(p).and_then(Value::as_str).unwrap_or("");
            if s("/user/username") != self.user || s("/requestURI").contains("dryRun=") {
                continue;
            }
            out.push(format!(
                "{} {} {}/{}",
                s("/verb"),
                s("/objectRef/resource"),
                s("/objectRef/namespace"),
                s("/objectRef/name")
            ));
        }
        out
    }
}

fn report_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("json report: {e}\n{}", text(out)))
}

/// The example tree, bootstrapped into a real cluster: every app Synced and
/// Healthy — except metrics-server, whose APIService a kwok cluster can never
/// serve (no pod really runs), which must say exactly that — and a re-run
/// that writes nothing.
#[test]
fn real_cluster_bootstraps_the_example_tree_and_a_rerun_writes_nothing() {
    let Some(env) = from_env("real-cluster tier") else {
        return;
    };
    let _one = CLUSTER.lock().unwrap_or_else(|p| p.into_inner());
    let _lb = LoadBalancerProvider::start(&env.admin);
    let _gone = ExampleTreeCleanup { kc: &env.admin };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("bootstrap/root.yaml");
    let out = kubesync(
        &env.kc,
        &root,
        &["bootstrap", "-o", "json", "--timeout", "30s"],
    );
    let report = report_of(&out);
    for app in report["apps"].as_array().expect("apps") {
        let name = app["name"].as_str().unwrap_or("");
        if name == "metrics-server" {
            assert_eq!(app["sync"], "Synced", "{app:#}");
            let message = app["health"]["message"].as_str().unwrap_or("");
            assert!(
                message.contains("APIService.apiregistration.k8s.io v1beta1.metrics.k8s.io")
                    && message.contains("FailedDiscoveryCheck"),
                "{app:#}"
            );
            continue;
        }
        assert_eq!(
            (
                &app["outcome"]["kind"],
                &app["sync"],
                &app["health"]["status"]
            ),
            (
                &Value::from("succeeded"),
                &Value::from("Synced"),
                &Value::from("Healthy")
            ),
            "{name}: {app:#}\n{}",
            text(&out)
        );
    }
    assert_eq!(report["apps"].as_array().map(Vec::len), Some(14));

    // Converged: the re-run writes no object, and no status (metrics-server
    // ends the same way again). metrics-server's sync fails again (its
    // APIService never becomes available on a kwok cluster), so the re-run
    // patches its status and records that attempt as Events (SyncStarted,
    // SyncFailed), as Argo CD records every sync operation; nothing else may
    // be written.
    let audit = Audit::new(&env);
    let mark = audit.as_ref().map(Audit::mark).unwrap_or(0);
    let again = kubesync(
        &env.kc,
        &root,
        &["bootstrap", "-o", "json", "--timeout", "5s"],
    );
    let again_report = report_of(&again);
    for app in again_report["apps"].as_array().expect("apps") {
        for change in app["changes"].as_array().into_iter().flatten() {
            assert_eq!(change["action"], "unchanged", "{change:#}");
        }
    }
    match audit {
        Some(a) => {
            let writes: Vec<String> = a
                .writes_since(mark)
                .into_iter()
                .filter(|w| {
                    !w.starts_with("patch applications kubesync-system/metrics-server")
                        && !w.starts_with("create events kubesync-system/metrics-server.")
                })
                .collect();
            assert!(writes.is_empty(), "a converged re-run wrote: {writes:#?}");
        }
        None => {
            let _ = writeln!(
                std::io::stderr(),
                "zero-write check by audit log skipped: set KUBESYNC_E2E_AUDIT_LOG"
            );
        }
    }
    // `kubectl get applications -A` shows the same.
    let listed = kubectl(
        &env.kc,
        &["get", "applications.kubesync.dev", "-n", "kubesync-system"],
    );
    assert!(
        String::from_utf8_lossy(&listed.stdout).contains("Synced"),
        "{}",
        text(&listed)
    );
}

#[test]
fn real_cluster_drift_prune_sync_off_and_missing_namespace() {
    let Some(env) = from_env("real-cluster tier") else {
        return;
    };
    let _one = CLUSTER.lock().unwrap_or_else(|p| p.into_inner());
    let id = unique_name("kse2e");
    let (db, web) = (format!("{id}-db"), format!("{id}-web"));
    let _cleanup = Cleanup {
        kc: &env.admin,
        namespaces: vec![db.clone(), web.clone()],
        cluster_objects: Vec::new(),
        apps: vec![db.clone(), web.clone(), format!("{id}-nons")],
    };
    let repo = Repo::new();
    let spec = |ns: &str, deps: &str| {
        format!("  destination: {{namespace: {ns}}}\n  syncPolicy: {{createNamespace: true, automated: {{prune: true}}, wait: {{timeout: 3m}}}}\n{deps}")
    };
    repo.app(&db, &spec(&db, ""));
    repo.write(
        &format!("objects/{db}/deploy.yaml"),
        // Quantities the server stores in another form (0.5 → 500m, 1024Mi → 1Gi).
        &deployment("db", "registry.k8s.io/pause:3.10").replace(
            "image: \"registry.k8s.io/pause:3.10\"}",
            "image: \"registry.k8s.io/pause:3.10\", resources: {requests: {cpu: 0.5, memory: 1024Mi}}}",
        ),
    );
    repo.app(&web, &spec(&web, &format!("  dependsOn: [{db}]\n")));
    repo.write(
        &format!("objects/{web}/a.yaml"),
        &configmap("a", "mode: blue"),
    );
    repo.write(&format!("objects/{web}/b.yaml"), &configmap("b", "x: y"));
    repo.write(
        &format!("objects/{web}/off.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: off, annotations: {kubesync.dev/sync: \"off\"}}\ndata: {x: y}\n",
    );

    let out = kubesync(&env.kc, &repo.root(), &["bootstrap"]);
    assert!(out.status.success(), "{}", text(&out));
    let audit = Audit::new(&env);
    let mark = audit.as_ref().map(Audit::mark).unwrap_or(0);
    let again = kubesync(&env.kc, &repo.root(), &["bootstrap"]);
    assert!(again.status.success(), "{}", text(&again));
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("0 created, 0 configured"),
        "{}",
        text(&again)
    );
    if let Some(a) = &audit {
        assert_eq!(
            a.writes_since(mark),
            Vec::<String>::new(),
            "converged re-run wrote"
        );
    }
    // sync: off in git: never created.
    assert!(kubectl_json(&env.admin, &["-n", &web, "get", "configmap", "off"]).is_none());

    // Drift by another field manager is undone by `sync`.
    let edit = kubectl(
        &env.admin,
        &[
            "-n",
            &web,
            "patch",
            "configmap",
            "a",
            "--type",
            "merge",
            "-p",
            "{\"data\":{\"mode\":\"green\"}}",
        ],
    );
    assert!(edit.status.success(), "{}", text(&edit));
    let drift = kubesync(&env.kc, &repo.root(), &["diff", &web]);
    assert_eq!(drift.status.code(), Some(1), "{}", text(&drift));
    let fix = kubesync(&env.kc, &repo.root(), &["sync", &web]);
    assert!(fix.status.success(), "{}", text(&fix));
    let a = kubectl_json(&env.admin, &["-n", &web, "get", "configmap", "a"]).expect("a");
    assert_eq!(a["data"]["mode"], "blue");

    // Prune of an object that left git.
    repo.remove(&format!("objects/{web}/b.yaml"));
    let prune = kubesync(&env.kc, &repo.root(), &["sync", &web]);
    assert!(prune.status.success(), "{}", text(&prune));
    let deadline = Instant::now() + Duration::from_secs(30);
    while kubectl_json(&env.admin, &["-n", &web, "get", "configmap", "b"]).is_some() {
        assert!(Instant::now() < deadline, "b was not pruned");
        std::thread::sleep(Duration::from_millis(200));
    }

    // An object into a namespace that does not exist: a clear error naming it.
    let nons = format!("{id}-nons");
    repo.app(&nons, "  destination: {namespace: default}\n");
    repo.write(
        &format!("objects/{nons}/cm.yaml"),
        &configmap("c", "k: v").replace("name: c}", &format!("name: c, namespace: {id}-nowhere}}")),
    );
    let out = kubesync(&env.kc, &repo.root(), &["sync", &nons]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("ConfigMap {id}-nowhere/c")) && stdout.contains("not found"),
        "{}",
        text(&out)
    );
}

/// A CRD and its custom resources in one app, and in a dependent app; the
/// app tier refused cluster-scoped writes; a dry run on a fresh app writes
/// nothing.
#[test]
fn real_cluster_crds_guardrails_and_dry_run() {
    let Some(env) = from_env("real-cluster tier") else {
        return;
    };
    let _one = CLUSTER.lock().unwrap_or_else(|p| p.into_inner());
    let id = unique_name("kse2e");
    let group = format!("{id}.kubesync.dev");
    let crd_name = format!("widgets.{group}");
    let (defs, users, team) = (
        format!("{id}-defs"),
        format!("{id}-users"),
        format!("{id}-team"),
    );
    let _cleanup = Cleanup {
        kc: &env.admin,
        namespaces: vec![defs.clone(), users.clone(), team.clone()],
        cluster_objects: vec![
            ("customresourcedefinition".into(), crd_name.clone()),
            ("clusterrole".into(), format!("{id}-everything")),
        ],
        apps: vec![
            defs.clone(),
            users.clone(),
            team.clone(),
            format!("{id}-escalate"),
        ],
    };
    let crd = format!(
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {{name: {crd_name}}}\nspec:\n  group: {group}\n  scope: Namespaced\n  names: {{kind: Widget, plural: widgets, singular: widget, listKind: WidgetList}}\n  versions:\n  - name: v1\n    served: true\n    storage: true\n    schema:\n      openAPIV3Schema:\n        type: object\n        properties:\n          spec: {{type: object, properties: {{size: {{type: integer}}}}}}\n"
    );
    let widget = |name: &str| {
        format!(
            "apiVersion: {group}/v1\nkind: Widget\nmetadata: {{name: {name}}}\nspec: {{size: 3}}\n"
        )
    };
    let repo = Repo::new();
    let spec = |ns: &str, extra: &str| {
        format!("  tier: system\n  destination: {{namespace: {ns}}}\n  syncPolicy: {{createNamespace: true, wait: {{timeout: 2m}}}}\n{extra}")
    };
    repo.app(&defs, &spec(&defs, ""));
    repo.write(&format!("objects/{defs}/crd.yaml"), &crd);
    repo.write(&format!("objects/{defs}/w.yaml"), &widget("same-app"));
    repo.app(&users, &spec(&users, &format!("  dependsOn: [{defs}]\n")));
    repo.write(&format!("objects/{users}/w.yaml"), &widget("other-app"));
    repo.app(
        &team,
        &format!("  tier: app\n  destination: {{namespace: {team}}}\n  syncPolicy: {{createNamespace: true}}\n"),
    );
    repo.write(
        &format!("objects/{team}/role.yaml"),
        &format!("apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {{name: {id}-everything}}\nrules: []\n"),
    );

    // Dry run on the fresh apps: nothing written.
    let audit = Audit::new(&env);
    let mark = audit.as_ref().map(Audit::mark).unwrap_or(0);
    let dry = kubesync(&env.kc, &repo.root(), &["sync", &defs, &users, "--dry-run"]);
    // Exit 1: what a dry run would create is OutOfSync.
    assert_eq!(dry.status.code(), Some(1), "{}", text(&dry));
    assert!(
        String::from_utf8_lossy(&dry.stdout).contains("2/2 applications succeeded"),
        "{}",
        text(&dry)
    );
    assert!(kubectl_json(&env.admin, &["get", "crd", &crd_name]).is_none());
    if let Some(a) = &audit {
        assert_eq!(
            a.writes_since(mark),
            Vec::<String>::new(),
            "a dry run wrote"
        );
    }

    // An app-tier app that renders a system-tier child: the child is refused
    // (a child never has more power than its parent).
    let escalate = format!("{id}-escalate");
    repo.write(
        &format!("objects/{team}/child.yaml"),
        &format!("apiVersion: kubesync.dev/v1alpha1\nkind: Application\nmetadata: {{name: {escalate}}}\nspec:\n  tier: system\n  source: {{path: evil}}\n"),
    );
    repo.write(
        "evil/role.yaml",
        &format!("apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {{name: {id}-evil}}\nrules: [{{apiGroups: ['*'], resources: ['*'], verbs: ['*']}}]\n"),
    );
    let out = kubesync(
        &env.kc,
        &repo.root(),
        &["sync", &defs, &users, &team, &escalate],
    );
    // Exit 2: the tree holds a configuration error (the escalating child).
    assert_eq!(
        out.status.code(),
        Some(2),
        "the team app must be refused: {}",
        text(&out)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!("\"{escalate}\"")),
        "{}",
        text(&out)
    );
    assert!(kubectl_json(&env.admin, &["get", "clusterrole", &format!("{id}-evil")]).is_none());
    for (ns, name) in [(&defs, "same-app"), (&users, "other-app")] {
        let w = kubectl_json(
            &env.admin,
            &["-n", ns, "get", &format!("widgets.{group}"), name],
        )
        .unwrap_or_else(|| panic!("widget {ns}/{name}: {}", text(&out)));
        assert_eq!(w["spec"]["size"], 3);
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("refused before any write") && stdout.contains("ClusterRole"),
        "{}",
        text(&out)
    );
    assert!(kubectl_json(
        &env.admin,
        &["get", "clusterrole", &format!("{id}-everything")]
    )
    .is_none());
}
