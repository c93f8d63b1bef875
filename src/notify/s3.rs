//! git-sync-operator's S3 version file: once an app is deployed, an
//! object at `CLUSTER_NAME/NAMESPACE/APP/REVISION` whose body is the UTC
//! time of completion (RFC 3339), which CI polls for.
//!
//! One S3 `PutObject`, path-style (`ENDPOINT/BUCKET/KEY`, which every
//! S3-compatible store accepts), signed with AWS Signature V4 by AWS's own
//! signer (`aws-sigv4`) and sent with the shared hyper client. Only
//! `s3:PutObject` is needed (git-sync-operator's push-only IAM policy): the
//! ledger in the Application status, not a read of the bucket, says what
//! was already written.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode,
};
use aws_sigv4::sign::v4;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};

use super::{AppState, HttpClient, NotifyError};

/// Where and as whom to write version files.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Config {
    pub bucket: String,
    pub cluster_name: String,
    /// `https://s3.REGION.amazonaws.com` or an S3-compatible store, no
    /// trailing slash.
    pub endpoint: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("cluster_name", &self.cluster_name)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &"***")
            .field("secret_access_key", &"***")
            .finish()
    }
}

/// What went wrong writing the version file, for the caller to act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum S3ErrorKind {
    /// 403: wrong or unknown keys, or no permission to put objects.
    Unauthorized,
    /// The bucket does not exist.
    NoSuchBucket,
    /// No connection to the endpoint.
    Unreachable,
    /// No answer in time.
    Timeout,
    /// Another answer from the store.
    Refused,
}

/// How long one PUT may take.
const TIMEOUT: Duration = Duration::from_secs(15);

/// The version file's key for an app.
pub fn version_key(cluster: &str, state: &AppState) -> String {
    format!(
        "{cluster}/{}/{}/{}",
        state.namespace, state.app, state.revision
    )
}

/// S3's URI encoding of a key: every byte but unreserved ones and `/`.
fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Writes the version file of a deployed app.
pub(super) async fn put_version_file(
    client: &HttpClient,
    cfg: &S3Config,
    state: &AppState,
) -> Result<(), NotifyError> {
    let key = version_key(&cfg.cluster_name, state);
    let fail = |kind, message: String| NotifyError::S3 {
        app: state.app.clone(),
        bucket: cfg.bucket.clone(),
        key: key.clone(),
        kind,
        message,
    };
    let url = format!(
        "{}/{}/{}",
        cfg.endpoint,
        encode_key(&cfg.bucket),
        encode_key(&key)
    );
    let body = Bytes::from(state.finished_at.clone());
    let mut req = hyper::Request::put(&url)
        .header("content-type", "text/plain; charset=utf-8")
        .body(Full::new(body.clone()))
        .map_err(|_| fail(S3ErrorKind::Refused, "the endpoint URL is not valid".into()))?;
    signed(&mut req, cfg, &body).map_err(|e| {
        fail(
            S3ErrorKind::Refused,
            format!("cannot sign the request: {e}"),
        )
    })?;
    let send = async {
        let resp = client.request(req).await?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        Ok::<_, hyper_util::client::legacy::Error>((status, body))
    };
    match tokio::time::timeout(TIMEOUT, send).await {
        Err(_) => Err(fail(
            S3ErrorKind::Timeout,
            format!(
                "no answer from {} within {}s",
                cfg.endpoint,
                TIMEOUT.as_secs()
            ),
        )),
        Ok(Err(e)) => Err(fail(
            S3ErrorKind::Unreachable,
            format!("cannot reach {}: {}", cfg.endpoint, chain(&e)),
        )),
        Ok(Ok((s, _))) if s.is_success() => Ok(()),
        Ok(Ok((s, body))) => {
            let text = String::from_utf8_lossy(&body);
            let code = xml_field(&text, "Code").unwrap_or_default();
            let kind = match (s.as_u16(), code.as_str()) {
                (_, "NoSuchBucket") => S3ErrorKind::NoSuchBucket,
                (401 | 403, _)
                | (_, "InvalidAccessKeyId" | "SignatureDoesNotMatch" | "AccessDenied") => {
                    S3ErrorKind::Unauthorized
                }
                _ => S3ErrorKind::Refused,
            };
            let what = match kind {
                S3ErrorKind::Unauthorized => "access denied (check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY and the s3:PutObject permission)",
                S3ErrorKind::NoSuchBucket => "the bucket does not exist",
                _ => "the store refused the write",
            };
            let detail = match (code.is_empty(), xml_field(&text, "Message")) {
                (false, Some(m)) => format!(" [{code}: {m}]"),
                (false, None) => format!(" [{code}]"),
                _ => String::new(),
            };
            Err(fail(kind, format!("{what}: HTTP {s}{detail}")))
        }
    }
}

/// Adds the SigV4 headers (`authorization`, `x-amz-date`,
/// `x-amz-content-sha256`) for S3.
fn signed(
    req: &mut hyper::Request<Full<Bytes>>,
    cfg: &S3Config,
    body: &[u8],
) -> Result<(), String> {
    let identity = Credentials::new(
        cfg.access_key_id.clone(),
        cfg.secret_access_key.clone(),
        None,
        None,
        "kubesync",
    )
    .into();
    let mut settings = SigningSettings::default();
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&cfg.region)
        .name("s3")
        .time(SystemTime::now())
        .settings(settings)
        .build()
        .map_err(|e| e.to_string())?
        .into();
    let uri = req.uri().to_string();
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    let signable = SignableRequest::new(
        req.method().as_str(),
        uri,
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Bytes(body),
    )
    .map_err(|e| e.to_string())?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|e| e.to_string())?
        .into_parts();
    instructions.apply_to_request_http1x(req);
    Ok(())
}

/// The text of `<name>…</name>` in an S3 error document (only `Code` and
/// `Message` are read: other fields may echo request details).
fn xml_field(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&format!("</{name}>"))?;
    let text = xml[start..end].trim();
    (!text.is_empty() && text.len() < 300).then(|| text.to_string())
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut msg = String::new();
    let mut src = e.source();
    while let Some(s) = src {
        if !msg.is_empty() {
            msg.push_str(": ");
        }
        msg.push_str(&s.to_string());
        src = s.source();
    }
    if msg.is_empty() {
        msg = e.to_string();
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_encoded_as_s3_canonicalises_them() {
        assert_eq!(
            encode_key("prod-eu/web/api/0123abc"),
            "prod-eu/web/api/0123abc"
        );
        assert_eq!(encode_key("a b/c+d"), "a%20b/c%2Bd");
    }

    #[test]
    fn error_fields_are_read_from_the_document() {
        let doc = "<?xml version=\"1.0\"?><Error><Code>InvalidAccessKeyId</Code><Message>The AWS Access Key Id you provided does not exist in our records.</Message><AWSAccessKeyId>AKIA123</AWSAccessKeyId></Error>";
        assert_eq!(
            xml_field(doc, "Code").as_deref(),
            Some("InvalidAccessKeyId")
        );
        assert!(xml_field(doc, "Message")
            .unwrap()
            .starts_with("The AWS Access Key Id"));
        assert_eq!(xml_field("<Error/>", "Code"), None);
    }

    #[test]
    fn config_debug_hides_the_keys() {
        let c = S3Config {
            bucket: "b".into(),
            cluster_name: "c".into(),
            endpoint: "http://127.0.0.1:1".into(),
            region: "us-east-1".into(),
            access_key_id: "AKIAEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI".into(),
        };
        let d = format!("{c:?}");
        assert!(!d.contains("AKIAEXAMPLE") && !d.contains("wJalr"), "{d}");
    }
}
