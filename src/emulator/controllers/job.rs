//! The Job controller: runs up to `parallelism` pods `<job>-<5 chars>` at a
//! time until `completions` have succeeded, then marks the Job `Complete`
//! (with `SuccessCriteriaMet`, `completionTime`, `succeeded`). The first
//! failed pod fails the Job with `BackoffLimitExceeded` (no retries are
//! simulated). A suspended Job runs nothing.

use serde_json::{json, Map, Value};

use super::{
    condition_status, conditions, i64_at, is_deleting, owned, pod_active, pod_ready, put_count,
    str_at, uid_of, write_status, Cond, Ctx, Kind, PodName, Requeue, CONTROLLER_MANAGER,
};
use crate::emulator::util::now;

pub(super) fn reconcile(ctx: &mut Ctx<'_>, ns: &str, name: &str) -> Requeue {
    let job = super::get(ctx, Kind::Job, ns, name)?;
    if is_deleting(&job)
        || condition_status(&job, "Complete") == Some("True")
        || condition_status(&job, "Failed") == Some("True")
    {
        return None;
    }
    let completions = i64_at(&job, "/spec/completions").unwrap_or(1).max(0);
    let parallelism = i64_at(&job, "/spec/parallelism").unwrap_or(1).max(0);
    let suspended = job.pointer("/spec/suspend").and_then(Value::as_bool) == Some(true);
    let pods = owned(ctx.cluster, ctx.types.of(Kind::Pod), ns, &job);
    let phase_count = |phase: &str| {
        i64::try_from(
            pods.iter()
                .filter(|p| str_at(p, "/status/phase") == Some(phase))
                .count(),
        )
        .unwrap_or(0)
    };
    let succeeded = phase_count("Succeeded");
    let failed = phase_count("Failed");
    let mut active: Vec<Value> = pods.iter().filter(|p| pod_active(p)).cloned().collect();
    let finished_ok = succeeded >= completions;
    let finished_failed = failed > 0;

    if !suspended && !finished_ok && !finished_failed {
        let want = parallelism.min(completions - succeeded);
        let have = i64::try_from(active.len()).unwrap_or(0);
        if have < want {
            let template = job.pointer("/spec/template").cloned().unwrap_or(json!({}));
            let uid = uid_of(&job).to_string();
            for _ in have..want {
                if let Some(p) = super::create_pod(
                    ctx,
                    &job,
                    &template,
                    PodName::Generated(name),
                    &[
                        ("batch.kubernetes.io/controller-uid", uid.clone()),
                        ("batch.kubernetes.io/job-name", name.to_string()),
                        ("controller-uid", uid.clone()),
                        ("job-name", name.to_string()),
                    ],
                    |_| {},
                ) {
                    active.push(p);
                }
            }
        }
    }
    if finished_ok || finished_failed || suspended {
        for p in active.drain(..) {
            super::delete(ctx, Kind::Pod, ns, super::name_of(&p));
        }
    }

    let ts = now();
    let mut status = Map::new();
    let start = str_at(&job, "/status/startTime").map(str::to_string);
    if let Some(s) = start.or_else(|| (!suspended).then(|| ts.clone())) {
        status.insert("startTime".into(), json!(s));
    }
    put_count(
        &mut status,
        "active",
        i64::try_from(active.len()).unwrap_or(0),
    );
    put_count(&mut status, "succeeded", succeeded);
    put_count(&mut status, "failed", failed);
    status.insert("terminating".into(), json!(0));
    status.insert(
        "ready".into(),
        json!(active.iter().filter(|p| pod_ready(p)).count()),
    );
    status.insert("uncountedTerminatedPods".into(), json!({}));
    let conds: Vec<Cond> = if finished_ok {
        let msg = "Reached expected number of succeeded pods";
        status.insert("completionTime".into(), json!(ts));
        vec![
            Cond::new("SuccessCriteriaMet", "True", "CompletionsReached", msg),
            Cond::new("Complete", "True", "CompletionsReached", msg),
        ]
    } else if finished_failed {
        let msg = "Job has reached the specified backoff limit";
        vec![
            Cond::new("FailureTarget", "True", "BackoffLimitExceeded", msg),
            Cond::new("Failed", "True", "BackoffLimitExceeded", msg),
        ]
    } else if suspended {
        vec![Cond::new(
            "Suspended",
            "True",
            "JobSuspended",
            "Job suspended",
        )]
    } else {
        Vec::new()
    };
    if !conds.is_empty() {
        status.insert("conditions".into(), conditions(&job, &conds, false));
    }
    write_status(
        ctx,
        Kind::Job,
        &job,
        Value::Object(status),
        CONTROLLER_MANAGER,
    );
    None
}
