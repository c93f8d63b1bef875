//! A real S3-compatible server on loopback for the completion-signal
//! tests: PyPI's `moto` in server mode with authentication on, a bucket
//! `kubesync-versions`, and an IAM user allowed to put, get and list in it
//! (the seed's push-only policy, plus reads so a test can check what was
//! written) whose access key the tests hand to kubesync. What the bucket
//! holds is read back with boto3, a client independent of kubesync's.
//!
//! `.ci/run` installs `moto[server]`; without it [`Moto::start`] fails the
//! test when `CI` is set and returns `None` (saying so) otherwise.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The bucket the IAM user may use.
pub const BUCKET: &str = "kubesync-versions";

/// A running `moto_server` (killed on drop) and the IAM user's key.
pub struct Moto {
    child: Child,
    pub endpoint: String,
    pub key_id: String,
    pub secret: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Creates the bucket, the IAM user, its policy and its access key during
/// moto's first four unauthenticated requests; prints the key.
const SETUP: &str = r#"
import sys, boto3
ep = sys.argv[1]
kw = dict(endpoint_url=ep, region_name="us-east-1", aws_access_key_id="setup", aws_secret_access_key="setup")
boto3.client("s3", **kw).create_bucket(Bucket="kubesync-versions")
iam = boto3.client("iam", **kw)
iam.create_user(UserName="kubesync")
iam.put_user_policy(UserName="kubesync", PolicyName="push", PolicyDocument='{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:PutObject","s3:GetObject","s3:ListBucket"],"Resource":["arn:aws:s3:::kubesync-versions","arn:aws:s3:::kubesync-versions/*"]}]}')
k = iam.create_access_key(UserName="kubesync")["AccessKey"]
print(k["AccessKeyId"], k["SecretAccessKey"])
"#;

/// Every object of the bucket as key -> body.
const LIST: &str = r#"
import sys, json, boto3
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1", aws_access_key_id=sys.argv[2], aws_secret_access_key=sys.argv[3])
out = {}
for o in s3.list_objects_v2(Bucket="kubesync-versions").get("Contents", []):
    out[o["Key"]] = s3.get_object(Bucket="kubesync-versions", Key=o["Key"])["Body"].read().decode()
print(json.dumps(out))
"#;

impl Moto {
    /// Starts moto (blocking: call from `spawn_blocking`) and sets up the
    /// bucket and the user. `None` when moto is not installed and `CI` is
    /// unset; `what` names the skipped part in the message.
    pub fn start(what: &str) -> Option<Moto> {
        let probe = Command::new("moto_server")
            .arg("--help")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if !probe.is_ok_and(|s| s.success()) {
            assert!(
                std::env::var_os("CI").is_none(),
                "moto_server is not installed, and CI is set: .ci/run must install moto[server]"
            );
            eprintln!(
                "{what} skipped: moto_server is not installed (pip install 'moto[server]'); CI unset"
            );
            return None;
        }
        let port = super::free_port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            // Authentication (IAM) is enforced after the setup's 4 requests.
            .env("INITIAL_NO_AUTH_ACTION_COUNT", "4")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        let mut moto = Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            key_id: String::new(),
            secret: String::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto_server did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let out = python(SETUP, &[&moto.endpoint]);
        assert!(
            out.status.success(),
            "moto setup: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).expect("utf-8 key");
        let mut parts = text.split_whitespace();
        moto.key_id = parts.next().expect("access key id").to_string();
        moto.secret = parts.next().expect("secret access key").to_string();
        Some(moto)
    }

    /// The bucket's keys and bodies.
    pub async fn objects(&self) -> BTreeMap<String, String> {
        let args = [
            self.endpoint.clone(),
            self.key_id.clone(),
            self.secret.clone(),
        ];
        let out = tokio::task::spawn_blocking(move || {
            python(LIST, &args.iter().map(String::as_str).collect::<Vec<_>>())
        })
        .await
        .expect("list the bucket");
        assert!(
            out.status.success(),
            "list the bucket: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("the bucket as JSON")
    }

    /// One object's body.
    pub async fn get_object(&self, bucket: &str, key: &str) -> String {
        let script = r#"
import sys, boto3
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1", aws_access_key_id=sys.argv[4], aws_secret_access_key=sys.argv[5])
try:
    print(s3.get_object(Bucket=sys.argv[2], Key=sys.argv[3])["Body"].read().decode(), end="")
except Exception as e:
    print("ERR", e, file=sys.stderr); sys.exit(1)
"#;
        let args = [
            self.endpoint.clone(),
            bucket.to_string(),
            key.to_string(),
            self.key_id.clone(),
            self.secret.clone(),
        ];
        let out = tokio::task::spawn_blocking(move || {
            python(script, &args.iter().map(String::as_str).collect::<Vec<_>>())
        })
        .await
        .expect("get the object");
        assert!(
            out.status.success(),
            "get_object: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("a utf-8 body")
    }
}

fn python(script: &str, args: &[&str]) -> std::process::Output {
    Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("run python3")
}
