//! A real OCI registry on loopback, for image sync and for Helm charts
//! stored as OCI artifacts: Debian's `docker-registry` (the CNCF
//! distribution registry) started unprivileged on a free port with
//! temporary storage — open, behind htpasswd (Basic), behind a token server
//! (Bearer) this module serves itself, signing ES256 JWTs with a key the
//! registry's `rootcertbundle` trusts, or over https with a test CA —;
//! images pushed into it with `skopeo copy` from OCI layouts built here
//! (one tiny layer + config, or a two-platform index), and charts pushed
//! as `helm push` lays them out, over the Registry v2 API.
//!
//! The tools are installed by `.ci/run`; without them a test fails in CI
//! (`CI` set) and is skipped, saying why, elsewhere ([`Registry::start`]
//! returns `None`).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

pub const USER: &str = "alice";
pub const PASSWORD: &str = "s3cret-pw";

/// Whether `tools` are installed. In CI (`CI` set) their absence is a
/// failure; elsewhere the test is skipped with the reason.
fn tools_or_skip(tools: &[&str]) -> bool {
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|t| {
            Command::new("sh")
                .args(["-c", &format!("command -v {t}")])
                .stdout(Stdio::null())
                .status()
                .map(|s| !s.success())
                .unwrap_or(true)
        })
        .collect();
    if missing.is_empty() {
        return true;
    }
    let why = format!(
        "missing {} (apt-get install docker-registry skopeo apache2-utils openssl; .ci/run installs them)",
        missing.join(", ")
    );
    if std::env::var_os("CI").is_some() {
        panic!("registry tests cannot run: {why}");
    }
    eprintln!("skipping: {why}");
    false
}

/// What image tests need: the registry, htpasswd, openssl (test CA, token
/// keys), skopeo and tar (building and pushing images).
const IMAGE_TOOLS: [&str; 5] = ["docker-registry", "skopeo", "htpasswd", "openssl", "tar"];

/// What chart tests need: the registry and htpasswd.
const CHART_TOOLS: [&str; 2] = ["docker-registry", "htpasswd"];

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// How the registry authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    None,
    Basic,
    Token,
    /// Open, over https with a certificate from a test CA ([`Registry::ca`]).
    Tls,
}

/// A running registry; stopped (and its storage removed) on drop.
pub struct Registry {
    pub dir: tempfile::TempDir,
    pub port: u16,
    child: Child,
    token: Option<TokenServer>,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Registry {
    /// A registry for image tests (`None`: tools missing and `CI` unset).
    pub async fn start(auth: Auth) -> Option<Registry> {
        if !tools_or_skip(&IMAGE_TOOLS) {
            return None;
        }
        Some(Registry::launch(auth).await)
    }

    /// A registry for chart tests, open or behind Basic auth, started from
    /// a test without a runtime (`None`: tools missing and `CI` unset).
    pub fn start_for_charts(basic_auth: bool) -> Option<Registry> {
        if !tools_or_skip(&CHART_TOOLS) {
            return None;
        }
        let auth = if basic_auth { Auth::Basic } else { Auth::None };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        Some(rt.block_on(Registry::launch(auth)))
    }

    async fn launch(auth: Auth) -> Registry {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let mut token = None;
        let auth_yaml = match auth {
            Auth::None => String::new(),
            Auth::Tls => {
                super::tls::make_tls(dir.path());
                format!(
                    "  tls:\n    certificate: {}\n    key: {}\n",
                    dir.path().join("tls.crt").display(),
                    dir.path().join("tls.key").display()
                )
            }
            Auth::Basic => {
                let out = Command::new("htpasswd")
                    .args(["-Bbn", USER, PASSWORD])
                    .output()
                    .expect("htpasswd");
                assert!(out.status.success(), "htpasswd failed");
                std::fs::write(dir.path().join("htpasswd"), &out.stdout).expect("write htpasswd");
                format!(
                    "auth:\n  htpasswd:\n    realm: test-realm\n    path: {}\n",
                    dir.path().join("htpasswd").display()
                )
            }
            Auth::Token => {
                let t = TokenServer::start(dir.path()).await;
                let yaml = format!(
                    "auth:\n  token:\n    realm: http://127.0.0.1:{}/token\n    service: test-registry\n    issuer: test-issuer\n    rootcertbundle: {}\n",
                    t.port,
                    t.cert.display()
                );
                token = Some(t);
                yaml
            }
        };
        let config = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n{auth_yaml}",
            dir.path().join("data").display()
        );
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).expect("write config");
        let log = std::fs::File::create(dir.path().join("registry.log")).expect("log");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start docker-registry");
        let reg = Registry {
            dir,
            port,
            child,
            token,
        };
        reg.wait_up().await;
        reg
    }

    async fn wait_up(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let addr = format!("127.0.0.1:{}", self.port);
        loop {
            if let Ok(mut s) = tokio::net::TcpStream::connect(&addr).await {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let req = format!("GET /v2/ HTTP/1.0\r\nHost: {addr}\r\n\r\n");
                if s.write_all(req.as_bytes()).await.is_ok() {
                    let mut buf = [0u8; 12];
                    if s.read_exact(&mut buf).await.is_ok() && buf.starts_with(b"HTTP/1.") {
                        return;
                    }
                }
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(self.dir.path().join("registry.log"))
                    .unwrap_or_default();
                panic!("docker-registry did not start on {addr}:\n{log}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The test CA's certificate (PEM), for [`Auth::Tls`].
    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `127.0.0.1:PORT/NAME:TAG`
    pub fn image(&self, name: &str, tag: &str) -> String {
        format!("{}/{name}:{tag}", self.host())
    }

    /// Token requests the token server answered.
    pub fn tokens_issued(&self) -> u64 {
        self.token
            .as_ref()
            .map(|t| t.issued.load(Ordering::Relaxed))
            .unwrap_or(0)
    }

    /// Builds an image whose content is `content` (one platform, or an
    /// index of amd64 + arm64 when `multi_arch`) and pushes it as
    /// `name:tag`; returns the digest the registry serves for the tag.
    pub fn push(&self, name: &str, tag: &str, content: &str, multi_arch: bool) -> String {
        let layout = tempfile::tempdir().expect("layout dir");
        build_layout(layout.path(), tag, content, multi_arch);
        let digest_file = layout.path().join("pushed.digest");
        let mut cmd = Command::new("skopeo");
        cmd.args([
            "--insecure-policy",
            "copy",
            "--quiet",
            "--dest-tls-verify=false",
        ]);
        if multi_arch {
            cmd.arg("--all");
        }
        cmd.arg("--preserve-digests");
        cmd.arg("--digestfile").arg(&digest_file);
        if self.token.is_some() || self.dir.path().join("htpasswd").exists() {
            cmd.arg("--dest-creds").arg(format!("{USER}:{PASSWORD}"));
        }
        cmd.arg(format!("oci:{}:{tag}", layout.path().display()))
            .arg(format!("docker://{}", self.image(name, tag)))
            .env("HOME", layout.path());
        let out = cmd.output().expect("run skopeo");
        assert!(
            out.status.success(),
            "skopeo copy failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
        );
        std::fs::read_to_string(&digest_file)
            .expect("digest file")
            .trim()
            .to_string()
    }

    /// Deletes the tag's manifest (the tag then answers 404).
    pub fn delete(&self, name: &str, tag: &str) {
        let mut cmd = Command::new("skopeo");
        cmd.args(["--insecure-policy", "delete", "--tls-verify=false"]);
        if self.token.is_some() || self.dir.path().join("htpasswd").exists() {
            cmd.arg("--creds").arg(format!("{USER}:{PASSWORD}"));
        }
        let out = cmd
            .arg(format!("docker://{}", self.image(name, tag)))
            .output()
            .expect("skopeo delete");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Pushes a chart as `helm push` lays it out: config blob, chart
    /// layer, manifest (with this registry's credentials when it has any).
    pub fn push_chart(&self, repository: &str, tag: &str, tgz: &[u8], config: &str) {
        let addr = self.host();
        let authorization = self.dir.path().join("htpasswd").exists().then(|| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"))
            )
        });
        let with_auth = |req: ureq::RequestBuilder<ureq::typestate::WithBody>| match &authorization
        {
            Some(a) => req.header("Authorization", a),
            None => req,
        };
        let upload = |data: &[u8]| -> String {
            let digest = format!("sha256:{}", sha256_hex(data));
            let resp = with_auth(ureq::post(&format!(
                "http://{addr}/v2/{repository}/blobs/uploads/"
            )))
            .send_empty()
            .expect("start upload");
            let location = resp.headers()["location"]
                .to_str()
                .expect("an ASCII location")
                .to_string();
            let location = if location.starts_with('/') {
                format!("http://{addr}{location}")
            } else {
                location
            };
            let sep = if location.contains('?') { '&' } else { '?' };
            with_auth(ureq::put(&format!("{location}{sep}digest={digest}")))
                .header("Content-Type", "application/octet-stream")
                .send(data)
                .expect("upload blob");
            digest
        };
        let config_digest = upload(config.as_bytes());
        let layer_digest = upload(tgz);
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": kubesync::chart::oci::CHART_CONFIG, "digest": config_digest, "size": config.len()},
            "layers": [{"mediaType": kubesync::chart::oci::CHART_LAYER, "digest": layer_digest, "size": tgz.len()}],
        });
        with_auth(ureq::put(&format!(
            "http://{addr}/v2/{repository}/manifests/{tag}"
        )))
        .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
        .send(manifest.to_string().as_bytes())
        .expect("put manifest");
    }

    /// A docker config naming this registry's credentials.
    pub fn docker_config(&self) -> String {
        docker_config(&self.host(), USER, PASSWORD)
    }
}

pub fn docker_config(host: &str, user: &str, password: &str) -> String {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    json!({"auths": {host: {"auth": auth}}}).to_string()
}

fn write_blob(layout: &Path, bytes: &[u8]) -> (String, usize) {
    let hex = sha256_hex(bytes);
    let dir = layout.join("blobs/sha256");
    std::fs::create_dir_all(&dir).expect("blobs dir");
    std::fs::write(dir.join(&hex), bytes).expect("blob");
    (format!("sha256:{hex}"), bytes.len())
}

/// One image manifest (a tar layer holding `content`); returns its
/// descriptor.
fn image_manifest(layout: &Path, content: &str, arch: &str) -> Value {
    let src = tempfile::tempdir().expect("layer src");
    std::fs::write(src.path().join("hello.txt"), format!("{content} {arch}\n")).expect("file");
    let tar = src.path().join("layer.tar");
    let status = Command::new("tar")
        .args([
            "--mtime=@0",
            "--owner=0",
            "--group=0",
            "--numeric-owner",
            "-cf",
        ])
        .arg(&tar)
        .arg("-C")
        .arg(src.path())
        .arg("hello.txt")
        .status()
        .expect("tar");
    assert!(status.success());
    let layer = std::fs::read(&tar).expect("layer");
    let (layer_digest, layer_size) = write_blob(layout, &layer);
    let config = json!({
        "architecture": arch, "os": "linux",
        "config": {"Cmd": ["/hello.txt"]},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]}
    })
    .to_string();
    let (config_digest, config_size) = write_blob(layout, config.as_bytes());
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer_size}]
    })
    .to_string();
    let (digest, size) = write_blob(layout, manifest.as_bytes());
    json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": size,
        "platform": {"architecture": arch, "os": "linux"}})
}

fn build_layout(layout: &Path, tag: &str, content: &str, multi_arch: bool) {
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .expect("oci-layout");
    let mut top = if multi_arch {
        let manifests = vec![
            image_manifest(layout, content, "amd64"),
            image_manifest(layout, content, "arm64"),
        ];
        let index = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": manifests
        })
        .to_string();
        let (digest, size) = write_blob(layout, index.as_bytes());
        json!({"mediaType": "application/vnd.oci.image.index.v1+json", "digest": digest, "size": size})
    } else {
        let mut m = image_manifest(layout, content, "amd64");
        if let Some(o) = m.as_object_mut() {
            o.remove("platform");
        }
        m
    };
    top["annotations"] = json!({"org.opencontainers.image.ref.name": tag});
    let index = json!({"schemaVersion": 2, "manifests": [top]});
    std::fs::write(layout.join("index.json"), index.to_string()).expect("index.json");
}

/// A token server for the registry's `auth.token`: answers
/// `GET /token?service=…&scope=…` for [`USER`]/[`PASSWORD`] (Basic) with an
/// ES256 JWT carrying the requested pull/push access, its signing
/// certificate in the `x5c` header, trusted by the registry through
/// `rootcertbundle`.
struct TokenServer {
    port: u16,
    cert: PathBuf,
    issued: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TokenServer {
    async fn start(dir: &Path) -> TokenServer {
        let key = dir.join("token.key");
        let cert = dir.join("token.crt");
        let ok = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=test-token-issuer",
                "-keyout",
            ])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stderr(Stdio::null())
            .status()
            .expect("openssl req");
        assert!(ok.success(), "openssl could not make the token key");
        let pkcs8 = Command::new("openssl")
            .args(["pkcs8", "-topk8", "-nocrypt", "-outform", "DER", "-in"])
            .arg(&key)
            .output()
            .expect("openssl pkcs8");
        assert!(pkcs8.status.success());
        let der = Command::new("openssl")
            .args(["x509", "-outform", "DER", "-in"])
            .arg(&cert)
            .output()
            .expect("openssl x509");
        assert!(der.status.success());
        let rng = ring::rand::SystemRandom::new();
        let pair = ring::signature::EcdsaKeyPair::from_pkcs8(
            &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &pkcs8.stdout,
            &rng,
        )
        .expect("ES256 key");
        let signer = Arc::new((pair, rng, der.stdout));
        let issued = Arc::new(AtomicU64::new(0));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind token server");
        let port = listener.local_addr().expect("addr").port();
        let counter = issued.clone();
        let app = axum::Router::new().route(
            "/token",
            axum::routing::get(
                move |headers: axum::http::HeaderMap,
                      axum::extract::RawQuery(query): axum::extract::RawQuery| {
                    let signer = signer.clone();
                    let counter = counter.clone();
                    async move {
                        let expected = format!(
                            "Basic {}",
                            base64::engine::general_purpose::STANDARD
                                .encode(format!("{USER}:{PASSWORD}"))
                        );
                        let auth = headers
                            .get("authorization")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("");
                        if auth != expected {
                            return (axum::http::StatusCode::UNAUTHORIZED, String::new());
                        }
                        let params: Vec<(String, String)> =
                            url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
                                .into_owned()
                                .collect();
                        let access: Vec<Value> = params
                            .iter()
                            .filter(|(k, _)| k == "scope")
                            .filter_map(|(_, v)| {
                                let mut parts = v.splitn(3, ':');
                                let (t, n, a) = (parts.next()?, parts.next()?, parts.next()?);
                                Some(json!({"type": t, "name": n, "actions": a.split(',').collect::<Vec<_>>()}))
                            })
                            .collect();
                        counter.fetch_add(1, Ordering::Relaxed);
                        let (pair, rng, cert_der) = &*signer;
                        let token = jwt(pair, rng, cert_der, access);
                        (
                            axum::http::StatusCode::OK,
                            json!({"token": token, "expires_in": 300}).to_string(),
                        )
                    }
                },
            ),
        );
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        TokenServer {
            port,
            cert,
            issued,
            task,
        }
    }
}

fn jwt(
    pair: &ring::signature::EcdsaKeyPair,
    rng: &ring::rand::SystemRandom,
    cert_der: &[u8],
    access: Vec<Value>,
) -> String {
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let header = json!({
        "typ": "JWT", "alg": "ES256",
        "x5c": [base64::engine::general_purpose::STANDARD.encode(cert_der)]
    });
    let claims = json!({
        "iss": "test-issuer", "sub": USER, "aud": "test-registry",
        "exp": now + 300, "nbf": now - 10, "iat": now,
        "jti": format!("{now}-{}", sha256_hex(format!("{access:?}").as_bytes())),
        "access": access
    });
    let signing_input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let sig = pair
        .sign(rng, signing_input.as_bytes())
        .expect("sign token");
    format!("{signing_input}.{}", b64(sig.as_ref()))
}
