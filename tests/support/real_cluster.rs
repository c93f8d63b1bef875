//! The real-cluster tier's environment: the kubeconfigs and audit log CI
//! exports once `scripts/control-plane up` has started a control plane
//! (`KUBESYNC_E2E_KUBECONFIG`, `KUBESYNC_E2E_ADMIN_KUBECONFIG`,
//! `KUBESYNC_E2E_AUDIT_LOG`), kubectl and kube-rs clients on them, unique
//! names for what a test creates, and the load-balancer provider a kwok
//! cluster lacks. Without `KUBESYNC_E2E_KUBECONFIG` a test is skipped, its
//! reason written past the test harness's capture so that it shows.

use std::io::Write as _;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

/// The real cluster a test runs against.
pub struct RealCluster {
    /// The kubeconfig kubesync uses (`KUBESYNC_E2E_KUBECONFIG`).
    pub kc: String,
    /// A second identity for edits made "by someone else" and for the
    /// test's own bookkeeping (`KUBESYNC_E2E_ADMIN_KUBECONFIG`; default:
    /// the same kubeconfig).
    pub admin: String,
    /// The API server's audit log (`KUBESYNC_E2E_AUDIT_LOG`), when kept.
    pub audit: Option<String>,
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn skipped(what: &str, var: &str) {
    let _ = writeln!(
        std::io::stderr(),
        "{what} skipped: set {var} to the kubeconfig of a disposable cluster (scripts/control-plane up) to run it"
    );
}

/// The cluster CI names, or `None` (saying that `what` is skipped) when
/// `KUBESYNC_E2E_KUBECONFIG` is unset.
pub fn from_env(what: &str) -> Option<RealCluster> {
    let Some(kc) = var("KUBESYNC_E2E_KUBECONFIG") else {
        skipped(what, "KUBESYNC_E2E_KUBECONFIG");
        return None;
    };
    Some(RealCluster {
        admin: var("KUBESYNC_E2E_ADMIN_KUBECONFIG").unwrap_or_else(|| kc.clone()),
        audit: var("KUBESYNC_E2E_AUDIT_LOG"),
        kc,
    })
}

/// The admin kubeconfig alone (tests that never run kubesync against the
/// cluster), or `None` (saying that `what` is skipped) when
/// `KUBESYNC_E2E_ADMIN_KUBECONFIG` is unset.
pub fn admin_from_env(what: &str) -> Option<String> {
    let admin = var("KUBESYNC_E2E_ADMIN_KUBECONFIG");
    if admin.is_none() {
        skipped(what, "KUBESYNC_E2E_ADMIN_KUBECONFIG");
    }
    admin
}

/// A kube-rs client for the kubeconfig at `path`.
pub async fn client(path: &str) -> kube::Client {
    let kc = kube::config::Kubeconfig::read_from(path)
        .unwrap_or_else(|e| panic!("read kubeconfig {path}: {e}"));
    let config =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .unwrap_or_else(|e| panic!("kubeconfig {path}: {e}"));
    kube::Client::try_from(config).expect("client")
}

/// `kubectl --kubeconfig KC ARGS`.
pub fn kubectl(kc: &str, args: &[&str]) -> Output {
    Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kc)
        .args(args)
        .output()
        .expect("run kubectl")
}

/// `kubectl ... -o json` parsed, or `None` when kubectl failed.
pub fn kubectl_json(kc: &str, args: &[&str]) -> Option<Value> {
    let mut a = args.to_vec();
    a.extend(["-o", "json"]);
    let out = kubectl(kc, &a);
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).ok())
        .flatten()
}

/// `kubectl ... -o json` parsed; asserts kubectl succeeded.
pub fn kubectl_value(kc: &str, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.extend(["-o", "json"]);
    let out = kubectl(kc, &a);
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("kubectl json")
}

/// `PREFIX-HEX`, different for every test process and call time: names
/// that do not collide with an earlier run's leftovers.
pub fn unique_name(prefix: &str) -> String {
    format!(
        "{prefix}-{:x}",
        std::process::id()
            ^ std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0)
    )
}

/// Plays the cluster's load-balancer provider (a kwok cluster has none):
/// every LoadBalancer Service without an address gets 192.0.2.10, until
/// dropped.
pub struct LoadBalancerProvider {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LoadBalancerProvider {
    pub fn start(kc: &str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (kc, flag) = (kc.to_string(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                let list = kubectl_json(&kc, &["get", "services", "-A"]).unwrap_or(Value::Null);
                for svc in list["items"].as_array().into_iter().flatten() {
                    let lb =
                        svc.pointer("/spec/type").and_then(Value::as_str) == Some("LoadBalancer");
                    let has = svc
                        .pointer("/status/loadBalancer/ingress")
                        .and_then(Value::as_array)
                        .is_some_and(|a| !a.is_empty());
                    if lb && !has {
                        let ns = svc["metadata"]["namespace"].as_str().unwrap_or("");
                        let name = svc["metadata"]["name"].as_str().unwrap_or("");
                        let _ = kubectl(
                            &kc,
                            &[
                                "-n",
                                ns,
                                "patch",
                                "service",
                                name,
                                "--subresource=status",
                                "--type=merge",
                                "-p",
                                r#"{"status":{"loadBalancer":{"ingress":[{"ip":"192.0.2.10"}]}}}"#,
                            ],
                        );
                    }
                }
                std::thread::sleep(Duration::from_millis(300));
            }
        });
        LoadBalancerProvider {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for LoadBalancerProvider {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The API server's audit log (`KUBESYNC_E2E_AUDIT_LOG`, JSON lines): the
/// write requests it recorded.
pub struct AuditLog {
    pub path: String,
}

impl AuditLog {
    /// How many lines the log has now: a mark for [`AuditLog::writes_since`].
    pub fn mark(&self) -> usize {
        std::fs::File::open(&self.path)
            .map(|f| std::io::BufRead::lines(std::io::BufReader::new(f)).count())
            .unwrap_or(0)
    }

    /// The completed write requests (create, update, patch, delete,
    /// deletecollection; dry runs included) after line `mark`, as logged.
    pub fn writes_since(&self, mark: usize) -> std::io::Result<Vec<Value>> {
        let f = std::fs::File::open(&self.path)?;
        Ok(std::io::BufRead::lines(std::io::BufReader::new(f))
            .skip(mark)
            .map_while(Result::ok)
            .filter_map(|l| serde_json::from_str::<Value>(&l).ok())
            .filter(|e| e["stage"] == "ResponseComplete")
            .filter(|e| {
                matches!(
                    e["verb"].as_str(),
                    Some("create" | "update" | "patch" | "delete" | "deletecollection")
                )
            })
            .collect())
    }
}

/// Deletes what a test created, even when it fails: its namespaces
/// (without waiting), cluster-scoped objects as (kind, name), and
/// Application objects in `kubesync-system`.
pub struct Cleanup<'a> {
    pub kc: &'a str,
    pub namespaces: Vec<String>,
    pub cluster_objects: Vec<(String, String)>,
    pub apps: Vec<String>,
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
        for (kind, name) in &self.cluster_objects {
            let _ = kubectl(self.kc, &["delete", kind, name, "--ignore-not-found"]);
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
