//! The jsonnet time limit: an evaluation that runs longer than
//! [`time_limit`] (90 s, Argo CD's repo-server exec timeout; set
//! `KUBESYNC_JSONNET_TIMEOUT`, e.g. `30s`, `5m`) fails its app with an error
//! naming the file and the limit, instead of hanging the run.
//!
//! The interpreter (`rsjsonnet-lang`) cannot be interrupted: it has no step
//! budget, no cancellation, and calls back into kubesync only for imports,
//! `std.trace` and native functions, none of which a loop like `local f(x)
//! = f(x + 1) tailstrict; f(0)` or a huge `std.range` ever reaches. A thread
//! cannot be killed either. So, when this process is the `kubesync` binary,
//! each file is evaluated in a child process of the same binary (started
//! with [`CHILD_ENV`] naming a request file; see [`child_main`]), through
//! the renderers' process runner, which kills it — and anything it started
//! — when the limit passes. The child reads the request (the application,
//! the repository paths, the jsonnet options, the file), evaluates exactly
//! as the parent would, and prints the JSON value or the error (relayed
//! with the same text).
//!
//! When kubesync runs as a library inside another program (its own tests),
//! there is no kubesync binary to start, unless `KUBESYNC_JSONNET_EVALUATOR`
//! names one: the evaluation then runs on a thread of its own and the
//! caller stops waiting at the limit; the runaway thread cannot be stopped
//! and runs on until the process exits.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::jsonnet::{evaluate_unbounded, JsonnetLocation};
use super::process::{self, RunError};
use super::{human_duration, Ctx, RenderError};
use crate::model::{Application, JsonnetOptions};

/// Set (to a request file) in the environment of a jsonnet evaluator child.
pub const CHILD_ENV: &str = "KUBESYNC_JSONNET_CHILD";
/// Overrides the time limit (a duration: `90s`, `5m`).
pub const TIMEOUT_ENV: &str = "KUBESYNC_JSONNET_TIMEOUT";
/// Names the kubesync binary to evaluate in when this process is not one.
pub const EVALUATOR_ENV: &str = "KUBESYNC_JSONNET_EVALUATOR";
/// The default limit: Argo CD's repo-server exec timeout.
pub const DEFAULT_TIME_LIMIT: Duration = Duration::from_secs(90);

/// The time limit of one file's evaluation: [`TIMEOUT_ENV`] when it reads
/// as a duration (at most 24h), else [`DEFAULT_TIME_LIMIT`].
pub fn time_limit() -> Duration {
    std::env::var(TIMEOUT_ENV)
        .ok()
        .and_then(|v| crate::model::parse_duration(v.trim()).ok())
        .filter(|d| !d.is_zero())
        .unwrap_or(DEFAULT_TIME_LIMIT)
}

/// Everything one evaluation reads, owned (sent to the child as JSON).
#[derive(Debug, Serialize, Deserialize)]
struct Request {
    app: Application,
    repo_root: PathBuf,
    app_dir: PathBuf,
    app_rel: PathBuf,
    revision: Option<String>,
    opts: JsonnetOptions,
    path: PathBuf,
    label: PathBuf,
}

/// What the child prints.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
enum Response {
    Value(Value),
    Jsonnet {
        file: PathBuf,
        at: Option<JsonnetLocation>,
        message: String,
    },
    Other(String),
}

impl Request {
    fn evaluate(&self) -> Result<Value, RenderError> {
        let ctx = Ctx {
            app: &self.app,
            repo_root: self.repo_root.clone(),
            app_dir: self.app_dir.clone(),
            app_rel: self.app_rel.clone(),
            revision: self.revision.as_deref(),
            chart_dir: None,
            refs: Vec::new(),
        };
        evaluate_unbounded(&ctx, &self.opts, &self.path, &self.label)
    }
}

impl Response {
    fn of(r: Result<Value, RenderError>) -> Self {
        match r {
            Ok(v) => Response::Value(v),
            Err(RenderError::Jsonnet {
                file, at, message, ..
            }) => Response::Jsonnet { file, at, message },
            Err(e) => Response::Other(e.to_string()),
        }
    }

    fn into_result(self, app: String) -> Result<Value, RenderError> {
        match self {
            Response::Value(v) => Ok(v),
            Response::Jsonnet { file, at, message } => Err(RenderError::Jsonnet {
                app,
                file,
                at,
                message,
            }),
            Response::Other(message) => Err(RenderError::Relayed { app, message }),
        }
    }
}

/// Evaluates one file within the time limit (see the module doc).
pub(crate) fn evaluate(
    ctx: &Ctx,
    opts: &JsonnetOptions,
    path: &Path,
    label: &Path,
) -> Result<Value, RenderError> {
    let request = Request {
        app: ctx.app.clone(),
        repo_root: ctx.repo_root.clone(),
        app_dir: ctx.app_dir.clone(),
        app_rel: ctx.app_rel.clone(),
        revision: ctx.revision.map(str::to_string),
        opts: opts.clone(),
        path: path.to_path_buf(),
        label: label.to_path_buf(),
    };
    let limit = time_limit();
    match evaluator() {
        Some(exe) => in_child(&exe, &request, limit),
        None => in_thread(request, limit),
    }
}

/// Set by the kubesync binary's `main`: this process can evaluate jsonnet
/// in a child of itself (whatever the binary is called).
static IS_KUBESYNC_BINARY: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// Called by the kubesync binary's `main` before anything else: jsonnet is
/// then evaluated in child processes of this binary.
pub fn running_as_kubesync_binary() {
    IS_KUBESYNC_BINARY.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// The kubesync binary to evaluate in: [`EVALUATOR_ENV`], or this one when
/// it is the kubesync binary.
fn evaluator() -> Option<PathBuf> {
    if let Some(exe) = std::env::var_os(EVALUATOR_ENV).filter(|e| !e.is_empty()) {
        return Some(PathBuf::from(exe));
    }
    if !IS_KUBESYNC_BINARY.load(std::sync::atomic::Ordering::Relaxed) {
        return None;
    }
    std::env::current_exe().ok()
}

/// The error of an evaluation that ran past the limit: `stopped` (its
/// process killed) or abandoned (a thread runs on).
fn timed_out(app: String, label: PathBuf, limit: Duration, stopped: bool) -> RenderError {
    let what = if stopped {
        "was stopped"
    } else {
        "was abandoned"
    };
    RenderError::Jsonnet {
        app,
        file: label,
        at: None,
        message: format!(
            "the evaluation did not finish within {} (the jsonnet time limit; {TIMEOUT_ENV} sets it) and {what}: does it loop forever?",
            human_duration(limit)
        ),
    }
}

fn in_child(exe: &Path, request: &Request, limit: Duration) -> Result<Value, RenderError> {
    let app = request.app.name.to_string();
    let failed = |message: String| RenderError::Jsonnet {
        app: app.clone(),
        file: request.label.clone(),
        at: None,
        message,
    };
    let mut file = tempfile::NamedTempFile::new()
        .map_err(|e| failed(format!("cannot write the evaluator's request: {e}")))?;
    serde_json::to_writer(&mut file, request)
        .map_err(|e| failed(format!("cannot write the evaluator's request: {e}")))?;
    let mut cmd = Command::new(exe);
    cmd.env(CHILD_ENV, file.path());
    let out = match process::run(cmd, limit, process::Stdout::Keep(process::STDOUT_CAP)) {
        Ok(out) => out,
        Err(RunError::TimedOut) => return Err(timed_out(app, request.label.clone(), limit, true)),
        Err(RunError::Spawn(e) | RunError::Wait(e)) => {
            return Err(failed(format!(
                "cannot run the jsonnet evaluator {}: {e}",
                exe.display()
            )))
        }
    };
    let response: Option<Response> = out
        .status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).ok())
        .flatten();
    match response {
        Some(r) => r.into_result(app),
        None => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            Err(failed(format!(
                "the jsonnet evaluator process failed ({}): {}",
                out.status,
                stderr.trim()
            )))
        }
    }
}

fn in_thread(request: Request, limit: Duration) -> Result<Value, RenderError> {
    let (tx, rx) = std::sync::mpsc::channel();
    let label = request.label.clone();
    let app = request.app.name.to_string();
    let spawned = std::thread::Builder::new()
        .name("jsonnet".into())
        .spawn(move || {
            let _ = tx.send(request.evaluate());
        });
    if let Err(e) = spawned {
        return Err(RenderError::Jsonnet {
            app,
            file: label,
            at: None,
            message: format!("cannot start the evaluation: {e}"),
        });
    }
    match rx.recv_timeout(limit) {
        Ok(r) => r,
        // The thread cannot be stopped: it runs on (see the module doc).
        Err(_) => Err(timed_out(app, label, limit, false)),
    }
}

/// The evaluator child: reads the request named by [`CHILD_ENV`], prints
/// the response as JSON. Called by `main` before anything else.
pub fn child_main(request_file: &std::ffi::OsStr) -> ExitCode {
    let request: Request = match std::fs::read(request_file)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("kubesync jsonnet evaluator: cannot read the request: {e}");
            return ExitCode::from(2);
        }
    };
    let response = Response::of(request.evaluate());
    let stdout = std::io::stdout();
    let mut lock = stdout.lock();
    match serde_json::to_writer(&mut lock, &response) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kubesync jsonnet evaluator: cannot write the result: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_keep_the_error_they_carry() {
        let loc = JsonnetLocation {
            file: "lib/x.libsonnet".into(),
            line: 3,
            column: 7,
        };
        let e = RenderError::Jsonnet {
            app: "a".into(),
            file: "x.jsonnet".into(),
            at: Some(loc.clone()),
            message: "boom".into(),
        };
        let text = e.to_string();
        let wire = serde_json::to_string(&Response::of(Err(e))).unwrap();
        let back: Response = serde_json::from_str(&wire).unwrap();
        let again = back.into_result("a".into()).unwrap_err();
        assert_eq!(again.to_string(), text);
        assert!(matches!(again, RenderError::Jsonnet { at: Some(l), .. } if l == loc));

        let other = RenderError::BadOption {
            app: "a".into(),
            option: "directory.jsonnet.libs[0]".into(),
            message: "nope".into(),
        };
        let text = other.to_string();
        let wire = serde_json::to_string(&Response::of(Err(other))).unwrap();
        let back: Response = serde_json::from_str(&wire).unwrap();
        assert_eq!(back.into_result("a".into()).unwrap_err().to_string(), text);
    }
}
