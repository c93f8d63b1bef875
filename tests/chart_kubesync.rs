//! The in-cluster Helm chart, `charts/kubesync`: rendered through kubesync's
//! own helm path (a real `helm`, else the project's wrapper over Helm's Go
//! engine) in both RBAC modes, refused by its `values.schema.json` when the
//! values are wrong, bootstrapped by kubesync into the emulator (kubesync
//! installing kubesync), and — on the real control plane, when
//! `KUBESYNC_E2E_ADMIN_KUBECONFIG` is set — its RBAC asked by the API server
//! what the controller's ServiceAccount may and may not do.

mod support;
mod sync_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use sync_support::{emulator, fast_simulation, path_with_helm, run, text};

fn chart_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/kubesync")
}

/// A repository holding a copy of the chart and a root app rendering it with
/// `values` (YAML indented by eight spaces, under `helm.values`).
fn repo_with_chart(values: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    support::copy_dir(&chart_dir(), &dir.path().join("charts/kubesync"));
    let root = format!(
        "apiVersion: kubesync.dev/v1alpha1
kind: Application
metadata: {{name: kubesync}}
spec:
  tier: system
  source:
    path: charts/kubesync
    helm:
      releaseName: kubesync
      values:
{values}
  destination:
    namespace: kubesync-system
  syncPolicy:
    automated: {{prune: true}}
"
    );
    std::fs::write(dir.path().join("root.yaml"), root).expect("write root");
    dir
}

/// `kubesync render -o json` of the chart: the objects, or the error text.
fn render(values: &str) -> Result<Vec<Value>, String> {
    let repo = repo_with_chart(values);
    let out = Command::new(env!("CARGO_BIN_EXE_kubesync"))
        .args(["render", "-o", "json", "--root"])
        .arg(repo.path().join("root.yaml"))
        .env("PATH", path_with_helm())
        .output()
        .expect("run kubesync render");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let list: Value = serde_json::from_slice(&out.stdout).expect("render -o json is JSON");
    Ok(list["items"].as_array().cloned().unwrap_or_default())
}

const CLUSTER_VALUES: &str =
    "        git: {repo: 'https://git.example.com/platform/cluster.git', revision: main}";

const NAMESPACED_VALUES: &str = "        git: {repo: 'https://git.example.com/platform/cluster.git'}
        rbac: {mode: namespaced, managedNamespaces: [team-a, team-b]}
        imageSync: {enabled: true}
        webhook: {existingSecret: kubesync-webhook}
        notify:
          webhookURL: https://ci.example.com/hooks/kubesync
          existingSecret: kubesync-notify
          s3: {bucket: deployments, clusterName: iowa-a, region: us-east-1, existingSecret: kubesync-s3}";

fn find<'a>(objs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objs.iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| {
            let have: Vec<String> = objs
                .iter()
                .map(|o| format!("{}/{}", o["kind"], o["metadata"]["name"]))
                .collect();
            panic!("no {kind}/{name} among {have:?}")
        })
}

fn kinds(objs: &[Value], kind: &str) -> Vec<String> {
    objs.iter()
        .filter(|o| o["kind"] == kind)
        .map(|o| {
            format!(
                "{}/{}",
                o["metadata"]["namespace"].as_str().unwrap_or(""),
                o["metadata"]["name"].as_str().unwrap_or("")
            )
        })
        .collect()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn the_crd_the_chart_ships_is_the_one_kubesync_installs() {
    let path = chart_dir().join("crds/applications.kubesync.dev.yaml");
    let code = kubesync::sync::status::application_crd();
    if std::env::var_os("KUBESYNC_BLESS").is_some() {
        let yaml = serde_yaml::to_string(&code).expect("yaml");
        std::fs::write(
            &path,
            format!(
                "# kubesync's Application CRD (status of every app), as `kubesync bootstrap`\n# installs it; tests/chart_kubesync.rs keeps the two equal\n# (KUBESYNC_BLESS=1 rewrites this file).\n{yaml}"
            ),
        )
        .expect("write crd");
    }
    let text = std::fs::read_to_string(&path).expect("read the chart's CRD");
    let shipped: Value = serde_yaml::from_str(&text).expect("CRD parses");
    assert_eq!(
        shipped, code,
        "charts/kubesync/crds differs from the CRD kubesync installs; rerun with KUBESYNC_BLESS=1"
    );
}

#[test]
fn cluster_mode_renders_a_hardened_controller_with_leader_election() {
    let objs = render(CLUSTER_VALUES).expect("the chart renders");
    let dep = find(&objs, "Deployment", "kubesync");
    assert_eq!(dep["metadata"]["namespace"], "kubesync-system");
    assert_eq!(dep["spec"]["replicas"], 2);
    let pod = &dep["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    let args = strings(&c["args"]);
    for want in [
        "run",
        "--repo=https://git.example.com/platform/cluster.git",
        "--revision=main",
        "--root=bootstrap/root.yaml",
        "--leader-elect",
        "--lease-namespace=kubesync-system",
        "--listen=0.0.0.0:8080",
    ] {
        assert!(
            args.iter().any(|a| a == want),
            "{want} missing from {args:?}"
        );
    }
    // The ClusterRole may list every kind cluster-wide: self-heal's default.
    assert!(
        !args.iter().any(|a| a.starts_with("--watch-scope")),
        "{args:?}"
    );
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(c["securityContext"]["capabilities"]["drop"][0], "ALL");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    assert!(c["resources"]["limits"]["memory"].is_string());
    // The read-only root filesystem leaves /tmp (clones, caches) writable.
    assert_eq!(c["volumeMounts"][0]["mountPath"], "/tmp");
    assert_eq!(pod["volumes"][0]["emptyDir"]["sizeLimit"], "2Gi");
    // Installed into kubesync-system: no Namespace object of its own.
    assert!(kinds(&objs, "Namespace").is_empty());
    // One ClusterRole (system tiers need the whole cluster) bound to the SA.
    assert_eq!(kinds(&objs, "ClusterRole"), vec!["/kubesync"]);
    let crb = find(&objs, "ClusterRoleBinding", "kubesync");
    assert_eq!(crb["subjects"][0]["name"], "kubesync");
    assert_eq!(crb["subjects"][0]["namespace"], "kubesync-system");
    // Its own Applications, Lease and Events.
    let self_role = find(&objs, "Role", "kubesync-self");
    let rules = serde_json::to_string(&self_role["rules"]).unwrap();
    assert!(rules.contains("leases") && rules.contains("applications/status"));
    find(&objs, "Service", "kubesync");
    find(&objs, "PodDisruptionBudget", "kubesync");
    assert!(
        kinds(&objs, "CronJob").is_empty(),
        "image sync is off by default"
    );
    assert!(kinds(&objs, "ServiceMonitor").is_empty());
}

#[test]
fn namespaced_mode_binds_only_the_managed_namespaces() {
    let objs = render(NAMESPACED_VALUES).expect("the chart renders");
    // No wildcard ClusterRole is bound cluster-wide.
    for cr in objs.iter().filter(|o| o["kind"] == "ClusterRole") {
        let rules = serde_json::to_string(&cr["rules"]).unwrap();
        assert!(
            !rules.contains("\"*\""),
            "namespaced mode must not grant wildcards: {cr}"
        );
    }
    assert_eq!(
        kinds(&objs, "RoleBinding"),
        vec![
            "team-a/kubesync",
            "team-b/kubesync",
            "kubesync-system/kubesync-self"
        ]
    );
    let read = find(&objs, "ClusterRole", "kubesync-read");
    let rules = serde_json::to_string(&read["rules"]).unwrap();
    assert!(
        !rules.contains("create") && !rules.contains("patch"),
        "{rules}"
    );
    // Secrets by existingSecret: mounted files and env references, never values.
    let dep = find(&objs, "Deployment", "kubesync");
    let c = &dep["spec"]["template"]["spec"]["containers"][0];
    let args = strings(&c["args"]);
    assert!(
        args.contains(&"--webhook-secret-file=/etc/kubesync/webhook/webhook-secret".to_string())
    );
    assert!(args.contains(&"--notify-webhook=https://ci.example.com/hooks/kubesync".to_string()));
    // Roles only in the managed namespaces: self-heal watches per namespace
    // from the start (no cluster-wide list to be refused).
    assert!(
        args.contains(&"--watch-scope=namespaces".to_string()),
        "{args:?}"
    );
    let env = serde_json::to_string(&c["env"]).unwrap();
    assert!(env.contains("\"S3_BUCKET\"") && env.contains("\"CLUSTER_NAME\""));
    assert!(env.contains("secretKeyRef") && env.contains("kubesync-s3"));
    // The image-sync CronJob, with its own least-privilege account.
    let cj = find(&objs, "CronJob", "kubesync-image-sync");
    let job = &cj["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    assert_eq!(job["serviceAccountName"], "kubesync-image-sync");
    assert_eq!(strings(&job["containers"][0]["args"])[0], "image-sync");
    let isr = find(&objs, "ClusterRole", "kubesync-image-sync");
    let rules = serde_json::to_string(&isr["rules"]).unwrap();
    assert!(
        rules.contains("\"patch\"")
            && !rules.contains("\"delete\"")
            && !rules.contains("\"create\"")
    );
}

#[test]
fn the_schema_refuses_wrong_values_naming_them() {
    for (values, needle) in [
        (
            "        git: {repo: 'https://x.example/r.git'}\n        replicaCount: two",
            "replicaCount",
        ),
        (
            "        git: {repo: 'https://x.example/r.git'}\n        rbac: {mode: everything}",
            "mode",
        ),
        (
            "        git: {repo: 'https://x.example/r.git', pollInterval: often}",
            "pollInterval",
        ),
        ("        replicaCount: 1", "git.repo is required"),
        (
            "        git: {repo: 'https://x.example/r.git'}\n        rbac: {mode: namespaced}",
            "managedNamespaces",
        ),
    ] {
        let err = render(values).expect_err(values);
        eprintln!("{err}");
        assert!(
            err.contains(needle) && err.contains("kubesync"),
            "values {values:?}: want an error naming {needle:?} and the app, got:\n{err}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubesync_bootstraps_its_own_chart_into_the_emulator() {
    let emu = emulator(fast_simulation()).await;
    let repo = repo_with_chart(CLUSTER_VALUES);
    let root = repo.path().join("root.yaml");
    let out = run(&root, &emu.url(), &["bootstrap", "--timeout", "60s"]).await;
    assert!(out.status.success(), "{}", text(&out));
    let dep = sync_support::get(
        &emu,
        "/apis/apps/v1/namespaces/kubesync-system/deployments/kubesync",
    )
    .await
    .expect("the controller Deployment exists");
    assert_eq!(dep["status"]["readyReplicas"], 2, "{dep}");
    sync_support::get(
        &emu,
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/kubesync",
    )
    .await
    .expect("the ClusterRoleBinding exists");
    let app = sync_support::get(
        &emu,
        "/apis/kubesync.dev/v1alpha1/namespaces/kubesync-system/applications/kubesync",
    )
    .await
    .expect("kubesync's Application for itself");
    assert_eq!(app["status"]["sync"]["status"], "Synced", "{app}");
    assert_eq!(app["status"]["health"]["status"], "Healthy", "{app}");
    // A second bootstrap of the same chart writes nothing.
    let before = sync_support::writes(&emu);
    let out = run(&root, &emu.url(), &["bootstrap"]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(sync_support::writes(&emu), before, "{}", text(&out));
}

/// The chart's RBAC on a real API server: what the ServiceAccount may do,
/// and what it is refused, asked with `kubectl auth can-i --as`.
#[test]
fn on_the_real_control_plane_the_rbac_allows_the_job_and_nothing_more() {
    let Some(admin) = support::real_cluster::admin_from_env("real-cluster chart test") else {
        return;
    };
    let kubectl = |args: &[&str], stdin: Option<&str>| {
        use std::io::Write as _;
        let mut cmd = Command::new("kubectl");
        cmd.arg("--kubeconfig").arg(&admin).args(args);
        cmd.stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().expect("run kubectl");
        if let Some(s) = stdin {
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(s.as_bytes())
                .expect("write stdin");
        } else {
            drop(child.stdin.take());
        }
        child.wait_with_output().expect("kubectl output")
    };
    // Namespaced mode, under its own names so nothing collides with the
    // cluster's own kubesync ServiceAccount (cluster-admin for the e2e tier).
    let values = NAMESPACED_VALUES
        .replace("team-a", "kschart-a")
        .replace("team-b", "kschart-b")
        + "\n        fullnameOverride: kschart";
    let objs = render(&values).expect("the chart renders");
    let rbac: Vec<&Value> = objs
        .iter()
        .filter(|o| {
            matches!(
                o["kind"].as_str(),
                Some(
                    "ServiceAccount"
                        | "ClusterRole"
                        | "ClusterRoleBinding"
                        | "Role"
                        | "RoleBinding"
                )
            )
        })
        .collect();
    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": rbac});
    // A previous run's namespaces may still be terminating (its clean-up
    // does not wait): a RoleBinding cannot live in one.
    for ns in ["kschart-a", "kschart-b", "kschart-c"] {
        kubectl(
            &[
                "wait",
                "--for=delete",
                &format!("namespace/{ns}"),
                "--timeout=120s",
            ],
            None,
        );
    }
    for ns in ["kubesync-system", "kschart-a", "kschart-b", "kschart-c"] {
        let o = kubectl(&["create", "namespace", ns], None);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success() || err.contains("AlreadyExists"), "{err}");
    }
    // The chart ships kubesync's Application CRD (crds/): install it as
    // helm would, so the server knows the kind its RBAC names.
    let crd = chart_dir().join("crds/applications.kubesync.dev.yaml");
    let o = kubectl(
        &["apply", "--server-side", "-f", &crd.to_string_lossy()],
        None,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = kubectl(
        &[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/applications.kubesync.dev",
        ],
        None,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = kubectl(
        &["apply", "--server-side", "-f", "-"],
        Some(&list.to_string()),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let sa = "system:serviceaccount:kubesync-system:kschart";
    let can = |verb: &str, resource: &str, ns: Option<&str>| -> bool {
        let (resource, sub) = match resource.split_once('/') {
            Some((r, sub)) => (r, Some(sub)),
            None => (resource, None),
        };
        let mut args = vec!["auth", "can-i", verb, resource, "--as", sa];
        if let Some(sub) = sub {
            args.extend(["--subresource", sub]);
        }
        if let Some(ns) = ns {
            args.extend(["-n", ns]);
        }
        let o = kubectl(&args, None);
        String::from_utf8_lossy(&o.stdout).trim() == "yes"
    };
    let checks = [
        ("patch", "deployments.apps", Some("kschart-a"), true),
        ("delete", "configmaps", Some("kschart-b"), true),
        ("watch", "secrets", Some("kschart-a"), true),
        (
            "update",
            "leases.coordination.k8s.io",
            Some("kubesync-system"),
            true,
        ),
        (
            "patch",
            "applications.kubesync.dev/status",
            Some("kubesync-system"),
            true,
        ),
        (
            "create",
            "events.events.k8s.io",
            Some("kubesync-system"),
            true,
        ),
        ("get", "namespaces", None, true),
        (
            "get",
            "customresourcedefinitions.apiextensions.k8s.io",
            None,
            true,
        ),
        // Refused: other namespaces, cluster-scoped writes, escalation.
        ("patch", "deployments.apps", Some("kschart-c"), false),
        ("get", "secrets", Some("kube-system"), false),
        ("create", "namespaces", None, false),
        (
            "create",
            "customresourcedefinitions.apiextensions.k8s.io",
            None,
            false,
        ),
        (
            "create",
            "clusterrolebindings.rbac.authorization.k8s.io",
            None,
            false,
        ),
        (
            "update",
            "leases.coordination.k8s.io",
            Some("kube-system"),
            false,
        ),
    ];
    // The API server's authorizer reads RBAC from an informer: give fresh
    // bindings a few seconds to be seen before calling an answer wrong, and
    // ask the refusals only once the grants are visible.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let (grants, refusals): (Vec<_>, Vec<_>) = checks.iter().partition(|c| c.3);
    let mut pending = grants;
    loop {
        pending.retain(|(verb, res, ns, _)| !can(verb, res, *ns));
        if pending.is_empty() || std::time::Instant::now() > deadline {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    let mut wrong: Vec<String> = pending
        .iter()
        .map(|(verb, res, ns, _)| format!("{verb} {res} in {ns:?}: want allowed"))
        .collect();
    wrong.extend(
        refusals
            .iter()
            .filter(|(verb, res, ns, _)| can(verb, res, *ns))
            .map(|(verb, res, ns, _)| format!("{verb} {res} in {ns:?}: want refused")),
    );
    let job = if wrong.is_empty() {
        kubesync_does_its_job_with_the_token(&admin, &kubectl)
    } else {
        Vec::new()
    };
    // Clean up what the test created (namespaces cascade; cluster objects by name).
    for name in ["kschart-namespaced", "kschart-read", "kschart-image-sync"] {
        kubectl(&["delete", "clusterrole", name, "--ignore-not-found"], None);
        kubectl(
            &["delete", "clusterrolebinding", name, "--ignore-not-found"],
            None,
        );
    }
    for ns in ["kschart-a", "kschart-b", "kschart-c"] {
        kubectl(&["delete", "namespace", ns, "--wait=false"], None);
    }
    kubectl(
        &[
            "-n",
            "kubesync-system",
            "delete",
            "role,rolebinding",
            "kschart-self",
            "--ignore-not-found",
        ],
        None,
    );
    kubectl(
        &[
            "-n",
            "kubesync-system",
            "delete",
            "applications.kubesync.dev",
            "kschart-web",
            "kschart-stray",
            "kschart-calm",
            "--ignore-not-found",
        ],
        None,
    );
    kubectl(
        &[
            "-n",
            "kubesync-system",
            "delete",
            "lease",
            "kschart-selfheal",
            "--ignore-not-found",
        ],
        None,
    );
    kubectl(
        &[
            "-n",
            "kubesync-system",
            "delete",
            "serviceaccount",
            "kschart",
            "kschart-image-sync",
            "--ignore-not-found",
        ],
        None,
    );
    assert!(
        wrong.is_empty(),
        "RBAC answers differ:\n{}",
        wrong.join("\n")
    );
    assert!(
        job.is_empty(),
        "kubesync with the chart's token:\n{}",
        job.join("\n")
    );
}

/// kubesync itself, holding a token of the chart's ServiceAccount
/// (namespaced mode): a bootstrap syncs the apps in managed namespaces,
/// and the app aimed at a namespace outside the chart's list fails naming
/// the object and the refusal, while the others go on; then `kubesync run`
/// self-heals with it. Returns what went wrong.
fn kubesync_does_its_job_with_the_token(
    admin: &str,
    kubectl: &dyn Fn(&[&str], Option<&str>) -> std::process::Output,
) -> Vec<String> {
    let out = |o: std::process::Output| String::from_utf8_lossy(&o.stdout).trim().to_string();
    let token = out(kubectl(
        &[
            "-n",
            "kubesync-system",
            "create",
            "token",
            "kschart",
            "--duration=10m",
        ],
        None,
    ));
    let server = out(kubectl(
        &[
            "config",
            "view",
            "--raw",
            "--minify",
            "-o",
            "jsonpath={.clusters[0].cluster.server}",
        ],
        None,
    ));
    let ca = out(kubectl(
        &[
            "config",
            "view",
            "--raw",
            "--minify",
            "-o",
            "jsonpath={.clusters[0].cluster.certificate-authority-data}",
        ],
        None,
    ));
    assert!(
        !token.is_empty() && !server.is_empty() && !ca.is_empty(),
        "token, server and CA of {admin}"
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("sa.kubeconfig");
    std::fs::write(
        &config,
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: c, cluster: {{server: '{server}', certificate-authority-data: '{ca}'}}}}]\nusers: [{{name: sa, user: {{token: '{token}'}}}}]\ncontexts: [{{name: c, context: {{cluster: c, user: sa}}}}]\ncurrent-context: c\n"
        ),
    )
    .expect("write kubeconfig");
    let repo = sync_support::Repo::new();
    repo.app(
        "kschart-web",
        "  destination: {namespace: kschart-a}\n  syncPolicy: {automated: {selfHeal: true}}\n",
    );
    repo.app("kschart-calm", "  destination: {namespace: kschart-b}\n");
    repo.write(
        "objects/kschart-calm/cm.yaml",
        &sync_support::configmap("calm-settings", "mode: steady"),
    );
    repo.write(
        "objects/kschart-web/cm.yaml",
        &sync_support::configmap("web-settings", "mode: on-call"),
    );
    repo.app("kschart-stray", "  destination: {namespace: kschart-c}\n");
    repo.write(
        "objects/kschart-stray/cm.yaml",
        &sync_support::configmap("stray", "k: v"),
    );
    let o = Command::new(env!("CARGO_BIN_EXE_kubesync"))
        .args(["bootstrap", "--root"])
        .arg(repo.root())
        .arg("--kubeconfig")
        .arg(&config)
        .args(["--timeout", "60s"])
        .env("PATH", path_with_helm())
        .env_remove("KUBECONFIG")
        .output()
        .expect("run kubesync");
    let said = text(&o);
    eprintln!("kubesync bootstrap with the chart's token:\n{said}");
    let mut wrong = Vec::new();
    if o.status.success() {
        wrong.push(format!(
            "the bootstrap succeeded though kschart-c is not managed:\n{said}"
        ));
    }
    if !(said.contains("kschart-c")
        && said.contains("stray")
        && said.to_lowercase().contains("forbidden"))
    {
        wrong.push(format!(
            "the refusal does not name the object and the reason:\n{said}"
        ));
    }
    let got = out(kubectl(
        &[
            "-n",
            "kschart-a",
            "get",
            "configmap",
            "web-settings",
            "-o",
            "jsonpath={.data.mode}",
        ],
        None,
    ));
    if got != "on-call" {
        wrong.push(format!("web-settings in kschart-a: got {got:?}:\n{said}"));
    }
    let stray = kubectl(&["-n", "kschart-c", "get", "configmap", "stray"], None);
    if stray.status.success() {
        wrong.push("the stray ConfigMap exists in kschart-c".into());
    }
    if wrong.is_empty() {
        wrong.extend(kubesync_self_heals_with_the_token(
            &config,
            &repo.root(),
            kubectl,
        ));
    }
    wrong
}

/// `kubesync run` holding the chart's token: the server refuses it every
/// cluster-wide list of ConfigMaps, so self-heal watches them in the
/// namespaces its apps use — a change made with the admin's kubeconfig to
/// the selfHeal app's ConfigMap is undone, the other app's is reported
/// OutOfSync in its Application status and left alone. Returns what went
/// wrong.
fn kubesync_self_heals_with_the_token(
    config: &Path,
    root: &Path,
    kubectl: &dyn Fn(&[&str], Option<&str>) -> std::process::Output,
) -> Vec<String> {
    use std::time::{Duration, Instant};
    let out = |o: std::process::Output| String::from_utf8_lossy(&o.stdout).trim().to_string();
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("run.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_kubesync"))
        .args(["run", "--root"])
        .arg(root)
        .arg("--kubeconfig")
        .arg(config)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--poll-interval",
            "1s",
            "--lease-name",
            "kschart-selfheal",
        ])
        .env("PATH", path_with_helm())
        .env("RUST_LOG", "kubesync=info")
        .env_remove("KUBECONFIG")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("start kubesync run");
    let mode = |ns: &str, name: &str| {
        out(kubectl(
            &[
                "-n",
                ns,
                "get",
                "configmap",
                name,
                "-o",
                "jsonpath={.data.mode}",
            ],
            None,
        ))
    };
    let edit = |ns: &str, name: &str| {
        kubectl(
            &[
                "-n",
                ns,
                "patch",
                "configmap",
                name,
                "--type=merge",
                "-p",
                r#"{"data":{"mode":"edited-by-admin"}}"#,
            ],
            None,
        )
    };
    let until = |limit: Duration, f: &dyn Fn() -> bool| {
        let deadline = Instant::now() + limit;
        loop {
            if f() {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    let mut wrong = Vec::new();
    // Edits are made once the start-up full runs are over (ready, leading,
    // nothing queued, the last full run finished): no commit comes and
    // the next full run is an hour away, so only a watch can see them.
    let settled = until(Duration::from_secs(90), &|| {
        let said = std::fs::read_to_string(&log).unwrap_or_default();
        let Some(addr) = said
            .split("API on http://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
        else {
            return false;
        };
        let Some(s) = http_get_json(addr, "/api/v1/apps") else {
            return false;
        };
        s["ready"] == true
            && s["leader"] == true
            && s["queued"] == false
            && s["lastRun"]["kind"] == "full"
            && !s["lastRun"]["finished"].is_null()
    });
    if !settled {
        let _ = child.kill();
        let _ = child.wait();
        let said = std::fs::read_to_string(&log).unwrap_or_default();
        return vec![format!("kubesync run never settled:\n{said}")];
    }
    // The first edit may come before the namespace's watch is up (then
    // nobody sees it): edit again until one is undone.
    let healed = until(Duration::from_secs(90), &|| {
        edit("kschart-a", "web-settings");
        until(Duration::from_secs(4), &|| {
            mode("kschart-a", "web-settings") == "on-call"
        })
    });
    if !healed {
        wrong.push(format!(
            "web-settings in kschart-a was not repaired: mode {:?}",
            mode("kschart-a", "web-settings")
        ));
    }
    // Without selfHeal: OutOfSync in the Application status, not written.
    let status = || {
        out(kubectl(
            &[
                "-n",
                "kubesync-system",
                "get",
                "applications.kubesync.dev",
                "kschart-calm",
                "-o",
                "jsonpath={.status.sync.status}",
            ],
            None,
        ))
    };
    let reported = until(Duration::from_secs(60), &|| {
        edit("kschart-b", "calm-settings");
        until(Duration::from_secs(4), &|| status() == "OutOfSync")
    });
    if !reported {
        wrong.push(format!(
            "kschart-calm's drift was not reported: sync status {:?}",
            status()
        ));
    }
    if mode("kschart-b", "calm-settings") != "edited-by-admin" {
        wrong.push("kubesync wrote calm-settings, whose app has no selfHeal".into());
    }
    // Stopped as a pod is (SIGTERM), so the lease is handed back.
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    let said = std::fs::read_to_string(&log).unwrap_or_default();
    eprintln!("kubesync run with the chart's token:\n{said}");
    if !said.contains("drift: ConfigMap kschart-a/web-settings was changed by kubectl-patch") {
        wrong.push("the repair of web-settings did not come from its watch".into());
    }
    if !said.contains("in each namespace the tree's apps put it in") {
        wrong.push("kubesync did not say it watches ConfigMaps per namespace".into());
    }
    if !wrong.is_empty() {
        wrong.push(format!("kubesync run said:\n{said}"));
    }
    wrong
}

/// `GET path` from a `kubesync run` API at `addr`, as JSON (None when it
/// does not answer 200 with JSON).
fn http_get_json(addr: &str, path: &str) -> Option<Value> {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    if head.split_whitespace().nth(1) != Some("200") {
        return None;
    }
    serde_json::from_str(body).ok()
}

/// Every value the chart can set that reaches the controller's command line.
const ALL_FLAGS_VALUES: &str = "        git: {repo: 'https://git.example.com/platform/cluster.git', revision: main, credentialsSecret: git-creds, knownHostsSecret: known-hosts}
        webhook: {existingSecret: kubesync-webhook}
        diffURLFormat: 'https://git.example.com/platform/cluster/commit/%s'
        notify:
          webhookURL: https://ci.example.com/hooks/kubesync
          existingSecret: kubesync-notify
          s3: {bucket: deployments, clusterName: iowa-a, region: eu-west-1, endpoint: 'https://minio.example.com:9000', existingSecret: kubesync-s3}";

#[test]
fn kubesync_run_accepts_every_argument_and_variable_the_chart_passes() {
    let objs = render(ALL_FLAGS_VALUES).expect("the chart renders");
    let dep = find(&objs, "Deployment", "kubesync");
    let c = &dep["spec"]["template"]["spec"]["containers"][0];
    let args = strings(&c["args"]);
    assert_eq!(args[0], "run");
    for want in [
        "--notify-webhook=",
        "--notify-webhook-secret-file=",
        "--git-credentials=",
    ] {
        assert!(
            args.iter().any(|a| a.starts_with(want)),
            "{want} in {args:?}"
        );
    }
    // The variables, with stand-ins for the Secret references.
    let env: Vec<(String, String)> = c["env"]
        .as_array()
        .expect("env")
        .iter()
        .map(|e| {
            let name = e["name"].as_str().expect("name").to_string();
            let value = e["value"].as_str().unwrap_or("from-a-secret").to_string();
            (name, value)
        })
        .collect();
    for want in [
        "S3_BUCKET",
        "CLUSTER_NAME",
        "AWS_REGION",
        "AWS_ENDPOINT_URL",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "DIFF_URL_FORMAT",
    ] {
        assert!(env.iter().any(|(n, _)| n == want), "{want} in {env:?}");
    }

    // The mounted files the arguments name, in a scratch directory.
    let dir = tempfile::tempdir().expect("temp dir");
    let args: Vec<String> = args
        .iter()
        .map(|a| match a.split_once("=/etc/kubesync/") {
            Some((flag, rest)) => {
                let path = dir.path().join(rest);
                std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
                // A credentials file is a YAML list; the rest are secrets
                // or known_hosts lines.
                let content = if rest.ends_with("git-credentials") {
                    "[]\n"
                } else {
                    "secret-or-file-content\n"
                };
                std::fs::write(&path, content).expect("write");
                format!("{flag}={}", path.display())
            }
            None => a.clone(),
        })
        .collect();

    // `run` parses all of them and checks the settings (signals included:
    // S3 needs CLUSTER_NAME, which is the global --cluster-name), then
    // stops only because no cluster is configured here.
    let out = Command::new(env!("CARGO_BIN_EXE_kubesync"))
        .args(&args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("KUBECONFIG", dir.path().join("no-kubeconfig"))
        .envs(env.iter().map(|(n, v)| (n.as_str(), v.as_str())))
        .env("HOME", dir.path())
        .output()
        .expect("run kubesync run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    for refused in [
        "unexpected argument",
        "invalid value",
        "--s3-bucket is set",
        "--notify-webhook",
    ] {
        assert!(
            !stderr.contains(refused),
            "the chart's arguments were refused: {stderr}"
        );
    }
    assert!(
        stderr.contains("cannot connect to kubeconfig"),
        "it got as far as connecting: {stderr}"
    );

    // And each variable is one `kubesync run` reads (its help names it).
    let help = Command::new(env!("CARGO_BIN_EXE_kubesync"))
        .args(["run", "--help"])
        .output()
        .expect("kubesync run --help");
    assert!(help.status.success());
    let help = String::from_utf8_lossy(&help.stdout);
    for (name, _) in env
        .iter()
        .filter(|(n, _)| !matches!(n.as_str(), "HOME" | "RUST_LOG"))
    {
        assert!(
            help.contains(&format!("env: {name}")),
            "{name} not read by run:\n{help}"
        );
    }
    assert_eq!(help.matches("--cluster-name <NAME>").count(), 1, "{help}");
}
