//! Helm chart servers on loopback for the chart tests: a tiny HTTP server
//! answering every GET with a handler of (path, Authorization) — a fake
//! OCI registry is one handler —, a chart repository served from a
//! directory (`index.yaml` + packaged charts, optionally behind Basic auth,
//! counting archive downloads), charts packed from files, and the local
//! mirror of https://charts.helm.sh/stable that Argo CD's
//! `helm-dependency` example needs.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use kubesync::chart::archive;
use sha2::{Digest, Sha256};

/// Answers a GET: (status, extra headers, body) for (path, Authorization).
pub type Handler =
    dyn Fn(&str, Option<&str>) -> (u16, Vec<(String, String)>, Vec<u8>) + Send + Sync;

/// Serves every GET on a loopback port with `handler`, a thread per
/// connection, until the test process ends; returns `ADDR:PORT`.
pub fn http_server(handler: Arc<Handler>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let handler = Arc::clone(&handler);
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut first = String::new();
                if reader.read_line(&mut first).is_err() {
                    return;
                }
                let mut authorization = None;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = line.split_once(':') {
                        if k.eq_ignore_ascii_case("authorization") {
                            authorization = Some(v.trim().to_string());
                        }
                    }
                }
                let path = first.split_whitespace().nth(1).unwrap_or("/").to_string();
                let (status, headers, body) = handler(&path, authorization.as_deref());
                let reason = axum::http::StatusCode::from_u16(status)
                    .ok()
                    .and_then(|s| s.canonical_reason())
                    .unwrap_or("X");
                let mut head = format!(
                    "HTTP/1.1 {status} {reason}\r\nContent-Length: {}\r\nConnection: close\r\n",
                    body.len()
                );
                for (k, v) in headers {
                    head.push_str(&format!("{k}: {v}\r\n"));
                }
                head.push_str("\r\n");
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(&body);
            });
        }
    });
    addr
}

/// A chart repository served over HTTP on loopback from a directory, at
/// `http://ADDR/charts`.
pub struct ChartRepo {
    dir: tempfile::TempDir,
    pub url: String,
    archives_served: Arc<AtomicUsize>,
    entries: Vec<(String, String, String, String)>,
}

impl ChartRepo {
    /// An empty repository; with `basic_auth`, every request needs those
    /// credentials (401 with a Basic challenge otherwise).
    pub fn new(basic_auth: Option<(&str, &str)>) -> ChartRepo {
        let dir = tempfile::tempdir().expect("temp dir");
        let served = Arc::new(AtomicUsize::new(0));
        let want = basic_auth.map(|(u, p)| {
            use base64::Engine;
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            )
        });
        let (root, counter) = (dir.path().to_path_buf(), Arc::clone(&served));
        let handler: Arc<Handler> = Arc::new(move |path: &str, auth: Option<&str>| {
            if want.is_some() && auth != want.as_deref() {
                let challenge = ("WWW-Authenticate".into(), "Basic realm=\"charts\"".into());
                return (401, vec![challenge], vec![]);
            }
            let Some(rel) = path
                .strip_prefix("/charts/")
                .filter(|r| !r.contains("..") && !r.contains('/'))
            else {
                return (404, vec![], vec![]);
            };
            match std::fs::read(root.join(rel)) {
                Ok(body) => {
                    if rel.ends_with(".tgz") {
                        counter.fetch_add(1, Ordering::SeqCst);
                    }
                    (200, vec![], body)
                }
                Err(_) => (404, vec![], vec![]),
            }
        });
        let url = format!("http://{}/charts", http_server(handler));
        ChartRepo {
            dir,
            url,
            archives_served: served,
            entries: Vec::new(),
        }
    }

    /// How many `.tgz` requests were served.
    pub fn archives_served(&self) -> usize {
        self.archives_served.load(Ordering::SeqCst)
    }

    /// Adds the packed `chart` as `name` `version` and rewrites index.yaml;
    /// returns its digest.
    pub fn add(&mut self, chart: &[u8], name: &str, version: &str) -> String {
        let file = format!("{name}-{version}.tgz");
        std::fs::write(self.dir.path().join(&file), chart).expect("write chart");
        let digest = hex::encode(Sha256::digest(chart));
        self.entries
            .push((name.into(), version.into(), file, digest.clone()));
        self.write_index(None);
        digest
    }

    /// Writes index.yaml; `lie` replaces the digest of that chart.
    pub fn write_index(&self, lie: Option<&str>) {
        let mut text = String::from("apiVersion: v1\nentries:\n");
        let mut names: Vec<&String> = self.entries.iter().map(|e| &e.0).collect();
        names.dedup();
        for name in names {
            text.push_str(&format!("  {name}:\n"));
            for (n, v, file, digest) in self.entries.iter().filter(|e| &e.0 == name) {
                let digest = if lie == Some(n.as_str()) {
                    "0".repeat(64)
                } else {
                    digest.clone()
                };
                text.push_str(&format!(
                    "  - name: {n}\n    version: {v}\n    urls: [{file}]\n    digest: {digest}\n"
                ));
            }
        }
        std::fs::write(self.dir.path().join("index.yaml"), text).expect("index");
    }
}

/// Packs a chart: `Chart.yaml` (name, version and `extra` lines), templates,
/// values and vendored subcharts given as (path, text).
pub fn chart(name: &str, version: &str, extra: &str, files: &[(&str, &str)]) -> Vec<u8> {
    let d = tempfile::tempdir().expect("temp");
    write_chart(d.path(), name, version, extra, files);
    archive::pack(d.path(), name).expect("pack")
}

/// Writes a chart directory, as [`chart`] packs it.
pub fn write_chart(dir: &Path, name: &str, version: &str, extra: &str, files: &[(&str, &str)]) {
    std::fs::create_dir_all(dir.join("templates")).expect("mkdir");
    std::fs::write(
        dir.join("Chart.yaml"),
        format!("apiVersion: v2\nname: {name}\nversion: {version}\n{extra}"),
    )
    .expect("Chart.yaml");
    for (p, t) in files {
        let f = dir.join(p);
        std::fs::create_dir_all(f.parent().expect("parent")).expect("mkdir");
        std::fs::write(f, t).expect("write");
    }
}

/// A stand-in for stable/wordpress 9.0.3 (same name and version, with its
/// mariadb subchart vendored and switched by `mariadb.enabled` and the
/// `wordpress-database` tag), as a chart repository directory: the local
/// mirror of https://charts.helm.sh/stable that `--repo-override` points at.
pub fn wordpress_mirror() -> tempfile::TempDir {
    let d = tempfile::tempdir().expect("temp dir");
    let src = tempfile::tempdir().expect("temp dir");
    write_chart(
        src.path(),
        "wordpress",
        "9.0.3",
        "appVersion: 5.3.2\ndependencies:\n- name: mariadb\n  version: 7.x.x\n  repository: https://charts.helm.sh/stable\n  condition: mariadb.enabled\n  tags: [wordpress-database]\n",
        &[
            ("values.yaml", "image: {repository: bitnami/wordpress, tag: 5.3.2}\nwordpressPassword: \"\"\nmariadb: {enabled: true}\n"),
            ("templates/secret.yaml", "apiVersion: v1\nkind: Secret\nmetadata: {name: {{ .Release.Name }}-wordpress}\ntype: Opaque\ndata:\n  wordpress-password: {{ .Values.wordpressPassword | b64enc | quote }}\n"),
            ("templates/svc.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: {{ .Release.Name }}-wordpress}\nspec:\n  selector: {app: wordpress}\n  ports: [{name: http, port: 80}]\n"),
            ("templates/deployment.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: {{ .Release.Name }}-wordpress}\nspec:\n  replicas: 1\n  selector: {matchLabels: {app: wordpress}}\n  template:\n    metadata: {labels: {app: wordpress}}\n    spec:\n      containers:\n      - name: wordpress\n        image: \"{{ .Values.image.repository }}:{{ .Values.image.tag }}\"\n        env:\n        - {name: MARIADB_ENABLED, value: {{ .Values.mariadb.enabled | quote }}}\n"),
            ("charts/mariadb/Chart.yaml", "apiVersion: v1\nname: mariadb\nversion: 7.3.1\n"),
            ("charts/mariadb/values.yaml", "db: {password: \"\"}\nrootUser: {password: \"\"}\n"),
            ("charts/mariadb/templates/statefulset.yaml", "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: {{ .Release.Name }}-mariadb}\nspec:\n  serviceName: {{ .Release.Name }}-mariadb\n  replicas: 1\n  selector: {matchLabels: {app: mariadb}}\n  template:\n    metadata: {labels: {app: mariadb}}\n    spec:\n      containers: [{name: mariadb, image: \"bitnami/mariadb:10.3\"}]\n"),
            ("charts/mariadb/templates/svc.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: {{ .Release.Name }}-mariadb}\nspec:\n  selector: {app: mariadb}\n  ports: [{name: mysql, port: 3306}]\n"),
        ],
    );
    let tgz = archive::pack(src.path(), "wordpress").expect("pack");
    std::fs::write(d.path().join("wordpress-9.0.3.tgz"), &tgz).expect("tgz");
    std::fs::write(
        d.path().join("index.yaml"),
        format!(
            "apiVersion: v1\nentries:\n  wordpress:\n  - name: wordpress\n    version: 9.0.3\n    urls: [https://charts.helm.sh/stable/wordpress-9.0.3.tgz]\n    digest: {}\n",
            hex::encode(Sha256::digest(&tgz))
        ),
    )
    .expect("index.yaml");
    d
}
