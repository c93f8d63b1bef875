//! The same scenarios as `sync_engine.rs`, against a real cluster, when
//! `KUBESYNC_E2E_KUBECONFIG` names a kubeconfig (skipped, with the reason
//! printed, otherwise). Everything is created in namespaces named
//! `kse2e-<random>-…` and deleted at the end.

mod sync_support;

use std::path::Path;
use std::process::{Command, Output};

use sync_support::{configmap, deployment, path_with_helm, text, Repo};

fn kubeconfig() -> Option<String> {
    match std::env::var("KUBESYNC_E2E_KUBECONFIG") {
        Ok(k) if !k.is_empty() => Some(k),
        _ => {
            // Written past the test harness's capture, so the reason shows.
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "real-cluster tier skipped: set KUBESYNC_E2E_KUBECONFIG to the kubeconfig of a disposable cluster to run it"
            );
            None
        }
    }
}

fn kubesync(kc: &str, root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kubesync"))
        .args(args)
        .arg("--root")
        .arg(root)
        .arg("--kubeconfig")
        .arg(kc)
        .env("PATH", path_with_helm())
        .output()
        .expect("run kubesync")
}

fn kubectl(kc: &str, args: &[&str]) -> Output {
    Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kc)
        .args(args)
        .output()
        .expect("run kubectl")
}

struct Cleanup<'a> {
    kc: &'a str,
    namespaces: Vec<String>,
    apps: Vec<String>,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for ns in &self.namespaces {
            let _ = kubectl(
                self.kc,
                &[
                    "delete",
                    "namespace",
                    ns,
                    "--ignore-not-found",
                    "--wait=false",
                ],
            );
        }
        for app in &self.apps {
            let _ = kubectl(
                self.kc,
                &[
                    "delete",
                    "applications.kubesync.dev",
                    "-n",
                    "kubesync-system",
                    app,
                    "--ignore-not-found",
                ],
            );
        }
    }
}

#[test]
fn real_cluster_bootstrap_drift_prune_and_no_op() {
    let Some(kc) = kubeconfig() else { return };
    let id = format!(
        "kse2e-{:x}",
        std::process::id()
            ^ (std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0))
    );
    let (db, web) = (format!("{id}-db"), format!("{id}-web"));
    let _cleanup = Cleanup {
        kc: &kc,
        namespaces: vec![db.clone(), web.clone()],
        apps: vec![db.clone(), web.clone(), "root".into()],
    };
    let repo = Repo::new();
    let spec = |ns: &str, deps: &str| {
        format!("  destination: {{namespace: {ns}}}\n  syncPolicy: {{createNamespace: true, automated: {{prune: true}}, wait: {{timeout: 3m}}}}\n{deps}")
    };
    repo.app(&db, &spec(&db, ""));
    repo.write(
        &format!("objects/{db}/deploy.yaml"),
        &deployment("db", "registry.k8s.io/pause:3.10"),
    );
    repo.app(&web, &spec(&web, &format!("  dependsOn: [{db}]\n")));
    repo.write(
        &format!("objects/{web}/a.yaml"),
        &configmap("a", "mode: blue"),
    );
    repo.write(&format!("objects/{web}/b.yaml"), &configmap("b", "x: y"));

    let out = kubesync(&kc, &repo.root(), &["bootstrap"]);
    assert!(out.status.success(), "{}", text(&out));

    let again = kubesync(&kc, &repo.root(), &["bootstrap"]);
    assert!(again.status.success(), "{}", text(&again));
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("0 created, 0 configured"),
        "{}",
        text(&again)
    );

    let edit = kubectl(
        &kc,
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
    let drift = kubesync(&kc, &repo.root(), &["diff", &web]);
    assert_eq!(drift.status.code(), Some(1), "{}", text(&drift));
    let fix = kubesync(&kc, &repo.root(), &["sync", &web]);
    assert!(fix.status.success(), "{}", text(&fix));
    let mode = kubectl(
        &kc,
        &[
            "-n",
            &web,
            "get",
            "configmap",
            "a",
            "-o",
            "jsonpath={.data.mode}",
        ],
    );
    assert_eq!(String::from_utf8_lossy(&mode.stdout), "blue");

    repo.remove(&format!("objects/{web}/b.yaml"));
    let prune = kubesync(&kc, &repo.root(), &["sync", &web]);
    assert!(prune.status.success(), "{}", text(&prune));
    let gone = kubectl(
        &kc,
        &[
            "-n",
            &web,
            "get",
            "configmap",
            "b",
            "--ignore-not-found",
            "-o",
            "name",
        ],
    );
    assert!(
        String::from_utf8_lossy(&gone.stdout).trim().is_empty(),
        "b should be pruned"
    );
}
