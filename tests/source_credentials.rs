//! Git credentials against real servers on loopback: `git http-backend`
//! behind HTTP basic authentication (tests/support/git-http-server.py) and
//! Debian's OpenSSH `sshd` started unprivileged on a free port with its own
//! host key. Clone, fetch and `ls_remote` with the right credentials; clear
//! errors naming the URL, never the secret, with wrong or missing ones, an
//! unknown or changed host key, and a wrong ssh key.
//!
//! Needs python3, git (http-backend) and /usr/sbin/sshd + ssh-keygen
//! (`.ci/run` installs openssh-server). Without them the tests are skipped
//! with the reason printed — except in CI (`CI` set), where they fail.

mod support;

use std::io::{BufRead, BufReader, Read};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kubesync::source::{
    ls_remote, Credential, GitAuth, KeySource, Secret, SourceError, SourceOptions, Sources, SshKey,
};

const USER: &str = "deploy";
const PASSWORD: &str = "s3cret-Pa55word";

/// The repository's one file: a ConfigMap holding `v`.
fn cm(v: u32) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  v: \"{v}\"\n")
}

/// `Some(())` when `tool` is usable; else skipped (locally) or a failure (CI).
fn require(tool: &str, present: bool) -> Option<()> {
    if present {
        return Some(());
    }
    if std::env::var_os("CI").is_some() {
        panic!("{tool} is required in CI (.ci/run installs it)");
    }
    eprintln!("skipped: {tool} is not installed (apt-get install openssh-server git python3)");
    None
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A work repository with one commit, and a bare copy under `srv/`.
struct Repos {
    tmp: tempfile::TempDir,
}

impl Repos {
    fn new() -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let work = tmp.path().join("work");
        std::fs::create_dir_all(&work).unwrap();
        git(&work, &["init", "-q", "-b", "main"]);
        std::fs::write(work.join("app.yaml"), cm(1)).unwrap();
        git(&work, &["add", "."]);
        git(&work, &["commit", "-q", "-m", "one"]);
        std::fs::create_dir_all(tmp.path().join("srv")).unwrap();
        git(
            tmp.path(),
            &["clone", "-q", "--bare", "work", "srv/config.git"],
        );
        std::fs::write(tmp.path().join("root.yaml"), "").unwrap();
        Repos { tmp }
    }

    fn srv(&self) -> PathBuf {
        self.tmp.path().join("srv")
    }

    fn head(&self) -> String {
        git(&self.srv().join("config.git"), &["rev-parse", "HEAD"])
    }

    /// A second commit, pushed to the bare repository.
    fn commit(&self, text: String) -> String {
        let work = self.tmp.path().join("work");
        std::fs::write(work.join("app.yaml"), text).unwrap();
        git(&work, &["commit", "-q", "-am", "next"]);
        let bare = self.srv().join("config.git");
        git(&work, &["push", "-q", bare.to_str().unwrap(), "main"]);
        self.head()
    }

    fn sources(&self, auth: GitAuth) -> Sources {
        Sources::new(SourceOptions {
            root_manifest: self.tmp.path().join("root.yaml"),
            cache_dir: Some(self.tmp.path().join("cache")),
            git_auth: Some(auth),
            ..Default::default()
        })
        .expect("sources")
    }
}

fn checkout_text(s: &Sources, url: &str) -> Result<String, SourceError> {
    let co = s.checkout(Some(url), None)?;
    Ok(std::fs::read_to_string(co.dir.join("app.yaml")).expect("app.yaml"))
}

fn assert_auth_error(err: &SourceError, url_shown: &str, wants: &[&str]) {
    let text = err.to_string();
    assert!(matches!(err, SourceError::Auth { .. }), "{err:?}");
    assert!(text.contains(url_shown), "names the URL: {text}");
    for w in wants {
        assert!(text.contains(w), "{w:?} in: {text}");
    }
    assert!(!text.contains(PASSWORD), "no secret: {text}");
    assert!(!text.contains("wrong-password"), "no secret: {text}");
}

// --- smart HTTP ----------------------------------------------------------------

struct HttpServer {
    child: Child,
    port: u16,
}

impl HttpServer {
    fn start(root: &Path) -> Self {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/git-http-server.py");
        let mut child = Command::new("python3")
            .arg(script)
            .args(["--root", root.to_str().unwrap(), "--user", USER])
            .args(["--password", PASSWORD])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start git-http-server.py");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("port line");
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("git-http-server.py printed {line:?}"));
        HttpServer { child, port }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/config.git", self.port)
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn http_tools() -> Option<()> {
    let python = Command::new("python3").arg("--version").output().is_ok();
    require("python3", python)?;
    let backend = Command::new("git")
        .arg("--exec-path")
        .output()
        .ok()
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()).join("git-http-backend"))
        .is_some_and(|p| p.exists());
    require("git http-backend", backend)
}

fn basic(user: &str, password: &str) -> Credential {
    Credential::Basic {
        user: user.into(),
        password: Secret::new(password),
    }
}

#[test]
fn http_clone_fetch_and_ls_remote_with_the_right_credentials() {
    let Some(()) = http_tools() else { return };
    let repos = Repos::new();
    let server = HttpServer::start(&repos.srv());
    let url = server.url();
    let prefix = format!("http://127.0.0.1:{}/", server.port);
    let auth = GitAuth::default().with_entry(&prefix, basic(USER, PASSWORD));

    let refs = ls_remote(&url, &auth).expect("ls-remote");
    let main = refs
        .iter()
        .find(|r| r.name == "refs/heads/main")
        .expect("refs/heads/main advertised");
    assert_eq!(main.oid, repos.head());
    let head = refs.iter().find(|r| r.name == "HEAD").expect("HEAD");
    assert_eq!(head.oid, repos.head());

    assert_eq!(
        checkout_text(&repos.sources(auth.clone()), &url).unwrap(),
        cm(1)
    );
    // A new commit: the next run's Sources fetches into the same cache.
    let second = repos.commit(cm(2));
    assert_eq!(
        checkout_text(&repos.sources(auth.clone()), &url).unwrap(),
        cm(2)
    );
    let refs = ls_remote(&url, &auth).expect("ls-remote");
    assert!(refs
        .iter()
        .any(|r| r.name == "refs/heads/main" && r.oid == second));

    // REPOCREDS-style defaults and credentials in the URL work too.
    let env_like = GitAuth::default().with_basic(USER, PASSWORD);
    assert!(ls_remote(&url, &env_like).is_ok());
    let in_url = format!(
        "http://{USER}:{PASSWORD}@127.0.0.1:{}/config.git",
        server.port
    );
    assert!(ls_remote(&in_url, &GitAuth::default()).is_ok());
    // A token entry (any user name; this server wants ours).
    let token = GitAuth::default().with_entry(&url, basic(USER, PASSWORD));
    assert!(ls_remote(&url, &token).is_ok());
}

#[test]
fn http_wrong_or_missing_credentials_fail_clearly() {
    let Some(()) = http_tools() else { return };
    let repos = Repos::new();
    let server = HttpServer::start(&repos.srv());
    let url = server.url();

    let wrong = GitAuth::default().with_entry(&url, basic(USER, "wrong-password"));
    let err = ls_remote(&url, &wrong).unwrap_err();
    assert_auth_error(
        &err,
        &url,
        &["refused user \"deploy\"", "--git-credentials entry"],
    );
    let err = checkout_text(&repos.sources(wrong), &url).unwrap_err();
    assert_auth_error(&err, &url, &["refused"]);

    let err = ls_remote(&url, &GitAuth::default()).unwrap_err();
    assert_auth_error(
        &err,
        &url,
        &["authentication required", "--git-credentials"],
    );
    let err = checkout_text(&repos.sources(GitAuth::default()), &url).unwrap_err();
    assert_auth_error(&err, &url, &["authentication required"]);

    // Wrong credentials written into the URL: the error shows it without them.
    let in_url = format!(
        "http://{USER}:wrong-password@127.0.0.1:{}/config.git",
        server.port
    );
    let err = ls_remote(&in_url, &GitAuth::default()).unwrap_err();
    assert_auth_error(&err, &url, &["refused"]);
    // The longest prefix wins: a right entry for the repository beats a
    // wrong one for the host.
    let host = format!("http://127.0.0.1:{}", server.port);
    let both = GitAuth::default()
        .with_entry(&host, basic(USER, "wrong-password"))
        .with_entry(&url, basic(USER, PASSWORD));
    assert!(ls_remote(&url, &both).is_ok());
}

/// The CLI: `--git-credentials FILE` renders an app from the protected
/// repository; without it the app fails naming the URL (exit 1), and no
/// secret appears in the output.
#[test]
fn http_credentials_file_through_the_cli() {
    let Some(()) = http_tools() else { return };
    let repos = Repos::new();
    let server = HttpServer::start(&repos.srv());
    let url = server.url();
    let dir = repos.tmp.path();
    std::fs::write(dir.join("password"), format!("{PASSWORD}\n")).unwrap();
    std::fs::write(
        dir.join("creds.yaml"),
        format!(
            "- url: http://127.0.0.1:{}/\n  username: {USER}\n  passwordFile: password\n",
            server.port
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("root.yaml"),
        format!(
            "apiVersion: kubesync.dev/v1alpha1\nkind: Application\nmetadata:\n  name: remote\n\
             spec:\n  source:\n    repoURL: {url}\n    path: .\n  destination:\n    namespace: default\n"
        ),
    )
    .unwrap();
    let run = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_kubesync"))
            .arg("--root")
            .arg(dir.join("root.yaml"))
            .args(extra)
            .arg("render")
            .env_remove("REPOCREDS")
            .env_remove("KUBESYNC_GIT_USERNAME")
            .env_remove("KUBESYNC_GIT_PASSWORD")
            .env_remove("KUBESYNC_GIT_CREDENTIALS")
            .output()
            .expect("run kubesync")
    };
    let creds = dir.join("creds.yaml");
    let ok = run(&["--git-credentials", creds.to_str().unwrap()]);
    let text = |o: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok));
    assert!(
        String::from_utf8_lossy(&ok.stdout).contains("name: c"),
        "{}",
        text(&ok)
    );
    assert!(!text(&ok).contains(PASSWORD));
    let bad = run(&[]);
    assert_ne!(bad.status.code(), Some(0));
    let t = text(&bad);
    assert!(
        t.contains(&format!("cannot fetch {url}")) && t.contains("authentication required"),
        "{t}"
    );
    assert!(!t.contains(PASSWORD), "{t}");
}

// --- ssh --------------------------------------------------------------------------

const SSHD: &str = "/usr/sbin/sshd";

struct Sshd {
    child: Child,
    port: u16,
    dir: PathBuf,
    user: String,
}

fn keygen(path: &Path, passphrase: &str) {
    let out = Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            passphrase,
            "-C",
            "kubesync-test",
            "-f",
        ])
        .arg(path)
        .output()
        .expect("ssh-keygen");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Sshd {
    fn start(dir: &Path) -> Self {
        let user = String::from_utf8(Command::new("id").arg("-un").output().expect("id").stdout)
            .unwrap()
            .trim()
            .to_string();
        keygen(&dir.join("host_key"), "");
        keygen(&dir.join("client_key"), "");
        keygen(&dir.join("locked_key"), "open sesame");
        keygen(&dir.join("other_key"), "");
        let authorized = [
            std::fs::read_to_string(dir.join("client_key.pub")).unwrap(),
            std::fs::read_to_string(dir.join("locked_key.pub")).unwrap(),
        ]
        .concat();
        std::fs::write(dir.join("authorized_keys"), authorized).unwrap();
        if unsafe { libc::geteuid() } == 0 {
            // sshd run as root wants its privilege separation directory.
            let _ = std::fs::create_dir_all("/run/sshd");
        }
        for attempt in 0..5 {
            let port = support::free_port();
            let config = format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\n\
                 AuthorizedKeysFile {d}/authorized_keys\nStrictModes no\nUsePAM no\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 PubkeyAuthentication yes\nPermitRootLogin prohibit-password\nAllowUsers {user}\n\
                 LogLevel VERBOSE\n",
                d = dir.display()
            );
            std::fs::write(dir.join("sshd_config"), config).unwrap();
            let log = std::fs::File::create(dir.join("sshd.log")).unwrap();
            let mut child = Command::new(SSHD)
                .args(["-D", "-e", "-f"])
                .arg(dir.join("sshd_config"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start sshd");
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Some(status) = child.try_wait().unwrap() {
                    let log = std::fs::read_to_string(dir.join("sshd.log")).unwrap_or_default();
                    if attempt < 4 && log.contains("Address already in use") {
                        break;
                    }
                    panic!("sshd exited ({status}): {log}");
                }
                if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
                    let mut banner = [0u8; 4];
                    if s.read_exact(&mut banner).is_ok() && &banner == b"SSH-" {
                        return Sshd {
                            child,
                            port,
                            dir: dir.to_path_buf(),
                            user,
                        };
                    }
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!(
            "sshd did not start: {}",
            std::fs::read_to_string(dir.join("sshd.log")).unwrap_or_default()
        );
    }

    fn url(&self, repo: &Path) -> String {
        format!(
            "ssh://{}@127.0.0.1:{}{}",
            self.user,
            self.port,
            repo.display()
        )
    }

    /// A known_hosts file listing this server with `key`'s public half.
    fn known_hosts(&self, name: &str, key: &str) -> PathBuf {
        let public = std::fs::read_to_string(self.dir.join(format!("{key}.pub"))).unwrap();
        let mut fields = public.split_whitespace();
        let (ty, blob) = (fields.next().unwrap(), fields.next().unwrap());
        let path = self.dir.join(name);
        std::fs::write(&path, format!("[127.0.0.1]:{} {ty} {blob}\n", self.port)).unwrap();
        path
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("sshd.log")).unwrap_or_default()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ssh_tools() -> Option<()> {
    require("sshd (openssh-server)", Path::new(SSHD).exists())?;
    require(
        "ssh-keygen",
        Command::new("ssh-keygen").arg("-?").output().is_ok(),
    )
}

fn key(path: PathBuf, passphrase: Option<&str>) -> SshKey {
    SshKey {
        user: None,
        key: KeySource::File(path),
        passphrase: passphrase.map(Secret::new),
    }
}

#[test]
fn ssh_clone_fetch_and_ls_remote_with_the_right_key_and_known_host() {
    let Some(()) = ssh_tools() else { return };
    let repos = Repos::new();
    let sshd = Sshd::start(repos.tmp.path());
    let bare = repos.srv().join("config.git");
    let url = sshd.url(&bare);
    let known = sshd.known_hosts("known_hosts", "host_key");
    let auth = GitAuth::default()
        .with_known_hosts(&known)
        .with_ssh_key(key(sshd.dir.join("client_key"), None));

    let refs = ls_remote(&url, &auth).unwrap_or_else(|e| panic!("{e}\nsshd log:\n{}", sshd.log()));
    assert!(refs
        .iter()
        .any(|r| r.name == "refs/heads/main" && r.oid == repos.head()));
    assert_eq!(
        checkout_text(&repos.sources(auth.clone()), &url).unwrap(),
        cm(1)
    );
    repos.commit(cm(2));
    assert_eq!(
        checkout_text(&repos.sources(auth.clone()), &url).unwrap(),
        cm(2)
    );

    // A passphrase-protected key, from a --git-credentials entry for the host.
    let locked = GitAuth::default().with_known_hosts(&known).with_entry(
        &format!("ssh://127.0.0.1:{}", sshd.port),
        Credential::Ssh(key(sshd.dir.join("locked_key"), Some("open sesame"))),
    );
    assert!(ls_remote(&url, &locked).is_ok());
    // The key inline (as a Secret's `sshPrivateKey`).
    let text = std::fs::read_to_string(sshd.dir.join("client_key")).unwrap();
    let inline = GitAuth::default()
        .with_known_hosts(&known)
        .with_ssh_key(SshKey {
            user: None,
            key: KeySource::Inline(Secret::new(text)),
            passphrase: None,
        });
    assert!(ls_remote(&url, &inline).is_ok());
}

#[test]
fn ssh_unknown_or_changed_host_key_and_wrong_key_are_refused() {
    let Some(()) = ssh_tools() else { return };
    let repos = Repos::new();
    let sshd = Sshd::start(repos.tmp.path());
    let bare = repos.srv().join("config.git");
    let url = sshd.url(&bare);
    let client = key(sshd.dir.join("client_key"), None);

    let empty = sshd.dir.join("empty_known_hosts");
    std::fs::write(&empty, "").unwrap();
    let unknown = GitAuth::default()
        .with_known_hosts(&empty)
        .with_ssh_key(client.clone());
    let err = ls_remote(&url, &unknown).unwrap_err();
    let name = format!("[127.0.0.1]:{}", sshd.port);
    assert_auth_error(
        &err,
        &url,
        &[
            "host key verification failed",
            &name,
            "is not in",
            "SHA256:",
            "ssh-keyscan",
        ],
    );
    let err = checkout_text(&repos.sources(unknown), &url).unwrap_err();
    assert_auth_error(&err, &url, &["is not in"]);

    let changed = sshd.known_hosts("changed_known_hosts", "other_key");
    let mismatch = GitAuth::default()
        .with_known_hosts(&changed)
        .with_ssh_key(client);
    let err = ls_remote(&url, &mismatch).unwrap_err();
    assert_auth_error(&err, &url, &["does not match", "intercepting"]);

    let known = sshd.known_hosts("known_hosts", "host_key");
    let wrong = GitAuth::default()
        .with_known_hosts(&known)
        .with_ssh_key(key(sshd.dir.join("other_key"), None));
    let err = ls_remote(&url, &wrong).unwrap_err();
    assert_auth_error(
        &err,
        &url,
        &["refused the ssh key", &format!("user \"{}\"", sshd.user)],
    );

    let locked_wrong = GitAuth::default()
        .with_known_hosts(&known)
        .with_ssh_key(key(sshd.dir.join("locked_key"), Some("wrong-password")));
    let err = ls_remote(&url, &locked_wrong).unwrap_err();
    assert!(matches!(err, SourceError::Auth { .. }), "{err:?}");
    assert!(!err.to_string().contains("wrong-password"), "{err}");
}

/// A broken credentials file is a configuration error (exit 2) naming the
/// file and the entry, before any repository is contacted; the secret in it
/// is not echoed.
#[test]
fn a_bad_credentials_file_is_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root.yaml");
    std::fs::write(
        &root,
        "apiVersion: kubesync.dev/v1alpha1\nkind: Application\nmetadata:\n  name: local\n\
         spec:\n  source:\n    path: .\n  destination:\n    namespace: default\n",
    )
    .unwrap();
    let creds = dir.path().join("creds.yaml");
    std::fs::write(
        &creds,
        format!("- url: https://git.example.com/org\n  username: u\n  pasword: {PASSWORD}\n"),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kubesync"))
        .arg("--root")
        .arg(&root)
        .arg("--git-credentials")
        .arg(&creds)
        .arg("render")
        .output()
        .expect("run kubesync");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(&creds.display().to_string()), "{err}");
    assert!(err.contains("entry 1: unknown key `pasword`"), "{err}");
    assert!(!err.contains(PASSWORD), "{err}");
}
