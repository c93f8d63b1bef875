//! jq path expressions (`jqPathExpressions` of `ignoreDifferences`): jq's
//! `path(EXPR)` run by jaq, with a time limit.
//!
//! jaq cannot be interrupted (no step budget, no cancellation) and a
//! thread cannot be killed, so an expression such as
//! `(range(1e12) | select(. < 0)) as $x | .` would hang the sync that
//! diffs with it. Each evaluation therefore runs on a worker thread (one
//! per calling thread, started on first use) and the caller waits at most
//! [`time_limit`] — Argo CD's `controller.ignore.normalizer.jq.timeout`,
//! 1 s by default, `KUBESYNC_JQ_TIMEOUT` to change it. An expression that
//! overruns is an error value ([`JqError::TimedOut`]) and is remembered as
//! such for the life of the process: it never runs again (every later use
//! fails at once), so at most one runaway thread per such expression is
//! left spinning until the process exits. The caller's worker is replaced.
//!
//! An expression that fails on an object (a jq error) selects nothing
//! there, as in Argo CD: `Ok(None)`.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::sync::mpsc;
use std::sync::{Arc, LazyLock, OnceLock};
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::Value;

/// At most this many paths are taken from one expression on one object.
pub const MAX_PATHS: usize = 10_000;
/// Overrides the time limit (a duration: `1s`, `500ms`).
pub const TIMEOUT_ENV: &str = "KUBESYNC_JQ_TIMEOUT";
/// Argo CD's default jq timeout.
pub const DEFAULT_TIME_LIMIT: Duration = Duration::from_secs(1);

/// The time one evaluation may take: [`TIMEOUT_ENV`] when it reads as a
/// non-zero duration, else [`DEFAULT_TIME_LIMIT`] (read once).
pub fn time_limit() -> Duration {
    static LIMIT: OnceLock<Duration> = OnceLock::new();
    *LIMIT.get_or_init(|| {
        std::env::var(TIMEOUT_ENV)
            .ok()
            .and_then(|v| crate::model::parse_duration(v.trim()).ok())
            .filter(|d| !d.is_zero())
            .unwrap_or(DEFAULT_TIME_LIMIT)
    })
}

/// Why an expression gave no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JqError {
    #[error(
        "jqPathExpressions \"{expr}\" did not finish within {} (the jq time limit, \
         KUBESYNC_JQ_TIMEOUT); it is not run again until kubesync restarts",
        crate::model::format_duration(*limit)
    )]
    TimedOut { expr: String, limit: Duration },
}

/// Expressions that overran their limit, with it.
static TIMED_OUT: LazyLock<Mutex<HashMap<String, Duration>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// Whether `expr` overran its limit before (and then the error).
pub fn timed_out(expr: &str) -> Option<JqError> {
    TIMED_OUT.lock().get(expr).map(|limit| JqError::TimedOut {
        expr: expr.to_string(),
        limit: *limit,
    })
}

/// Checks that `expr` compiles (as `path(EXPR)`).
pub fn check(expr: &str) -> Result<(), String> {
    compiled(expr).map(|_| ())
}

/// The paths `expr` selects in `input` (each a list of keys and indexes),
/// within [`time_limit`]; `Ok(None)` when it fails on `input`.
pub fn paths(expr: &str, input: &Arc<Value>) -> Result<Option<Vec<Vec<Value>>>, JqError> {
    paths_within(expr, input, time_limit())
}

struct Job {
    expr: String,
    input: Arc<Value>,
    reply: mpsc::SyncSender<Option<Vec<Vec<Value>>>>,
}

thread_local! {
    /// This thread's jq worker.
    static WORKER: RefCell<Option<mpsc::Sender<Job>>> = const { RefCell::new(None) };
}

fn start_worker() -> mpsc::Sender<Job> {
    let (tx, rx) = mpsc::channel::<Job>();
    let spawned = std::thread::Builder::new()
        .name("kubesync-jq".into())
        .spawn(move || {
            while let Ok(job) = rx.recv() {
                let out = evaluate(&job.expr, &job.input);
                // The caller may have stopped waiting.
                let _ = job.reply.send(out);
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("cannot start a jq worker thread: {e}");
    }
    tx
}

/// [`paths`] with an explicit limit.
pub fn paths_within(
    expr: &str,
    input: &Arc<Value>,
    limit: Duration,
) -> Result<Option<Vec<Vec<Value>>>, JqError> {
    if let Some(e) = timed_out(expr) {
        return Err(e);
    }
    let (reply, answer) = mpsc::sync_channel(1);
    let job = Job {
        expr: expr.to_string(),
        input: input.clone(),
        reply,
    };
    let sent = WORKER.with(|w| {
        let mut w = w.borrow_mut();
        let tx = w.get_or_insert_with(start_worker);
        match tx.send(job) {
            Ok(()) => true,
            Err(mpsc::SendError(job)) => {
                // The worker is gone (it could not start, or died): a new one.
                let tx = start_worker();
                let ok = tx.send(job).is_ok();
                *w = Some(tx);
                ok
            }
        }
    });
    if !sent {
        return Ok(None);
    }
    match answer.recv_timeout(limit) {
        Ok(out) => Ok(out),
        Err(mpsc::RecvTimeoutError::Timeout) => {
            TIMED_OUT.lock().insert(expr.to_string(), limit);
            // That worker is stuck: the next evaluation gets a new one.
            WORKER.with(|w| *w.borrow_mut() = None);
            let e = JqError::TimedOut {
                expr: expr.to_string(),
                limit,
            };
            tracing::warn!("{e}");
            Err(e)
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => Ok(None),
    }
}

type JqFilter = jaq_core::Filter<jaq_core::data::JustLut<jaq_json::Val>>;

thread_local! {
    static CACHE: RefCell<HashMap<String, Rc<JqFilter>>> = RefCell::new(HashMap::new());
    /// Expressions that do not compile (checked by the model already; kept
    /// so a bad one is not compiled again on every object).
    static INVALID: RefCell<HashSet<String>> = RefCell::new(HashSet::new());
}

/// `path(EXPR)` compiled (once per thread and expression).
fn compiled(expr: &str) -> Result<Rc<JqFilter>, String> {
    if let Some(hit) = CACHE.with(|c| c.borrow().get(expr).cloned()) {
        return Ok(hit);
    }
    use jaq_core::load::{Arena, File, Loader};
    let code = format!("path({expr})");
    let defs = jaq_core::defs()
        .chain(jaq_std::defs())
        .chain(jaq_json::defs());
    let funs = jaq_core::funs()
        .chain(jaq_std::funs())
        .chain(jaq_json::funs());
    let arena = Arena::default();
    let modules = Loader::new(defs)
        .load(
            &arena,
            File {
                code: code.as_str(),
                path: (),
            },
        )
        .map_err(|errs| {
            format!(
                "not a valid jq expression ({} error(s) parsing it)",
                errs.len()
            )
        })?;
    let filter = jaq_core::Compiler::default()
        .with_funs(funs)
        .compile(modules)
        .map_err(|errs| {
            let names: Vec<String> = errs
                .iter()
                .flat_map(|(_, e)| e.iter().map(|(name, _)| name.to_string()))
                .collect();
            format!("not a valid jq expression: undefined {}", names.join(", "))
        })?;
    let filter = Rc::new(filter);
    CACHE.with(|c| c.borrow_mut().insert(expr.to_string(), Rc::clone(&filter)));
    Ok(filter)
}

/// The evaluation itself (unbounded: run on a worker).
fn evaluate(expr: &str, input: &Value) -> Option<Vec<Vec<Value>>> {
    if INVALID.with(|i| i.borrow().contains(expr)) {
        return None;
    }
    let filter = match compiled(expr) {
        Ok(f) => f,
        Err(_) => {
            INVALID.with(|i| i.borrow_mut().insert(expr.to_string()));
            return None;
        }
    };
    let input = jaq_json::read::parse_single(input.to_string().as_bytes()).ok()?;
    let ctx = jaq_core::Ctx::<jaq_core::data::JustLut<jaq_json::Val>>::new(
        &filter.lut,
        jaq_core::Vars::new([]),
    );
    let mut out = Vec::new();
    for item in filter
        .id
        .run((ctx, input))
        .map(jaq_core::unwrap_valr)
        .take(MAX_PATHS)
    {
        let Ok(path) = item else {
            tracing::debug!(
                expr,
                "jq path expression failed on an object; it ignores nothing there"
            );
            return None;
        };
        if let Ok(Value::Array(parts)) = serde_json::from_str::<Value>(&path.to_string()) {
            out.push(parts);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_of_an_expression() {
        let obj = Arc::new(json!({"spec": {"a": 1, "list": [{"n": "x"}, {"n": "y"}]}}));
        let got = paths_within(
            ".spec.list[] | select(.n == \"y\")",
            &obj,
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(
            got,
            Some(vec![vec![json!("spec"), json!("list"), json!(1)]])
        );
        // A jq error on this object: selects nothing, not an error.
        assert_eq!(
            paths_within(".spec.a[0]", &obj, Duration::from_secs(10)).unwrap(),
            None
        );
    }

    #[test]
    fn an_expression_that_overruns_is_an_error_and_is_not_run_again() {
        // A finite but long loop (it ends on its own, after the test).
        let expr = "(range(100000000) | select(. < 0)) as $x | .spec";
        let obj = Arc::new(json!({"spec": {}}));
        let limit = Duration::from_millis(100);
        let err = paths_within(expr, &obj, limit).unwrap_err();
        assert_eq!(
            err,
            JqError::TimedOut {
                expr: expr.into(),
                limit
            }
        );
        let text = err.to_string();
        assert!(text.contains(expr) && text.contains("100ms"), "{text}");
        // Remembered: the next use fails at once, whatever its limit.
        assert!(timed_out(expr).is_some());
        assert!(paths_within(expr, &obj, Duration::from_secs(600)).is_err());
        // This thread's next evaluation runs on a fresh worker.
        assert!(paths_within(".spec", &obj, Duration::from_secs(10))
            .unwrap()
            .is_some());
    }
}
