//! `PreDelete` and `PostDelete` hooks (Argo CD 2.13+/3.x): objects
//! annotated `argocd.argoproj.io/hook: PreDelete|PostDelete` are never
//! applied by a sync; they run when their app is deleted. An app that left
//! the tree has no render any more, so every sync records its deletion
//! hooks — namespace defaulted, kubesync's app label stamped — on its
//! Application object ([`DELETE_HOOKS_ANNOTATION`]), and the deletion
//! (`removed`) runs them from there: PreDelete hooks before any object of
//! the app is deleted (a failure stops the deletion: nothing is deleted,
//! the Application object stays and says why), PostDelete hooks once the
//! objects are gone (a failure keeps the Application object). Each hook is
//! waited for (a Job until Complete or Failed, a Pod until Succeeded or
//! Failed, anything else until Healthy) and deleted per its policies
//! (`BeforeHookCreation`, the default; `HookSucceeded`; `HookFailed`), in
//! wave order, as sync hooks are. The run's options pace the waits: read
//! every `poll_interval`, each hook for up to `--timeout` (default
//! [`crate::model::DEFAULT_WAIT_TIMEOUT`]).

use std::time::{Duration, Instant};

use serde_json::Value;

use super::change::{Action, Change, ChangeError, Note};
use super::engine::SyncOptions;
use super::gone::{wait_gone, NotGone, Pace};
use super::hooks::{hook_state, HookState};
use super::prune::annotation;
use crate::cluster::{ClusterClient, Propagation};
use crate::model::hook::{self, DeletePhase, DeletePolicy, Excluded, Hook, Role};
use crate::model::{ObjectRef, APP_LABEL};
use crate::tree::AppNode;

/// On a kubesync Application object: its app's deletion hooks, as a JSON
/// array of the objects to create.
pub const DELETE_HOOKS_ANNOTATION: &str = "kubesync.dev/delete-hooks";

/// How long one deletion hook may take and how often it is read again:
/// the run's `--timeout` (the app's own wait timeout left with its
/// render: else the default one) and its `poll_interval`.
#[derive(Debug, Clone, Copy)]
struct HookPace {
    timeout: Duration,
    poll: Duration,
}

impl HookPace {
    fn of(opts: &SyncOptions) -> Self {
        HookPace {
            timeout: opts
                .timeout
                .unwrap_or(crate::model::DEFAULT_WAIT_TIMEOUT)
                .min(super::app::MAX_WAIT),
            poll: opts.poll_interval,
        }
    }
}

/// The deletion hooks `node` renders, ready to create: namespace defaulted
/// to the app's (they are namespaced: Jobs, Pods), app label stamped.
pub(super) fn of_node(node: &AppNode) -> Vec<Value> {
    let namespace = node
        .app
        .destination
        .namespace
        .as_deref()
        .unwrap_or("default");
    node.objects()
        .filter(|m| {
            matches!(
                hook::role(&m.object),
                Ok(Role::Excluded(Excluded::DeleteHook { .. }))
            )
        })
        .map(|m| {
            let mut obj = m.object.clone();
            let meta = &mut obj["metadata"];
            if meta.get("namespace").and_then(Value::as_str).is_none() {
                meta["namespace"] = Value::String(namespace.to_string());
            }
            meta["labels"][APP_LABEL] = Value::String(node.app.name.to_string());
            obj
        })
        .collect()
}

/// Records `hooks` on the Application object `app_obj` (or nothing).
pub(super) fn record(app_obj: &mut Value, hooks: &[Value]) {
    if hooks.is_empty() {
        return;
    }
    if let Ok(text) = serde_json::to_string(hooks) {
        app_obj["metadata"]["annotations"][DELETE_HOOKS_ANNOTATION] = Value::String(text);
    }
}

/// The recorded deletion hooks of `phase` on a live Application object, in
/// run order (wave, then kind and name).
fn recorded(app_obj: &Value, phase: DeletePhase) -> Vec<(Hook, i32, Value)> {
    let list: Vec<Value> = annotation(app_obj, DELETE_HOOKS_ANNOTATION)
        .and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or_default();
    let mut out: Vec<(Hook, i32, Value)> = list
        .into_iter()
        .filter_map(|obj| match hook::role(&obj) {
            Ok(Role::Excluded(Excluded::DeleteHook { phase: p, hook })) if p == phase => {
                let wave = hook::wave(&obj).unwrap_or(0);
                Some((hook, wave, obj))
            }
            _ => None,
        })
        .collect();
    let key = |o: &Value, k: &str| {
        o.pointer(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    out.sort_by_key(|(_, wave, o)| {
        (
            *wave,
            key(o, "/kind"),
            key(o, "/metadata/name"),
            key(o, "/metadata/generateName"),
        )
    });
    out
}

/// The recorded hooks of `phase` of app `app_obj`, in run order, as the
/// objects they would create (a `generateName` hook by its prefix).
pub(super) fn planned(app_obj: &Value, phase: DeletePhase) -> Vec<ObjectRef> {
    recorded(app_obj, phase)
        .into_iter()
        .map(|(_, _, obj)| {
            ObjectRef::from_object(&obj)
                .or_else(|_| generated_ref(&obj))
                .unwrap_or_else(|_| placeholder(&obj))
        })
        .collect()
}

/// Runs the recorded hooks of `phase` of app `app_obj`, one after the other;
/// the changes made, or the failure (naming the hook) that stops the
/// deletion, with the changes made until then.
pub(super) async fn run(
    client: &ClusterClient,
    app_obj: &Value,
    phase: DeletePhase,
    opts: &SyncOptions,
) -> Result<Vec<Change>, (String, Vec<Change>)> {
    let pace = HookPace::of(opts);
    let mut changes = Vec::new();
    for (hook, _, obj) in recorded(app_obj, phase) {
        match run_one(client, &hook, &obj, pace).await {
            Ok(c) => changes.push(c),
            Err((r, message, deleted)) => {
                let text = format!("{phase} hook {r} failed: {message}");
                changes.push(Change::failed(
                    &r,
                    false,
                    ChangeError::Hook { message, deleted },
                ));
                return Err((text, changes));
            }
        }
    }
    Ok(changes)
}

/// Creates one hook, waits for it, deletes it per its policies.
async fn run_one(
    client: &ClusterClient,
    hook: &Hook,
    obj: &Value,
    pace: HookPace,
) -> Result<Change, (ObjectRef, String, bool)> {
    let planned = ObjectRef::from_object(obj)
        .or_else(|_| generated_ref(obj))
        .map_err(|e| (placeholder(obj), e, false))?;
    let now = Instant::now();
    let deadline = now.checked_add(pace.timeout).unwrap_or(now);
    if hook.deletes(DeletePolicy::BeforeHookCreation) && hook.generate_name.is_none() {
        clear(client, &planned, deadline, pace.poll)
            .await
            .map_err(|e| (planned.clone(), e, false))?;
    }
    let created = if hook.generate_name.is_some() {
        client.create(&planned, obj).await
    } else {
        client.apply(obj, false).await
    };
    let live = created.map_err(|e| (planned.clone(), e.to_string(), false))?;
    let r = ObjectRef::from_object(&live).map_err(|e| (planned.clone(), e.to_string(), false))?;
    tracing::info!(object = %r, "deletion hook created");
    let state = loop {
        let state = match client.get(&r).await {
            Ok(live) => hook_state(live.as_ref()),
            Err(e) => HookState::Running(e.to_string()),
        };
        if !matches!(state, HookState::Running(_)) || Instant::now() >= deadline {
            break state;
        }
        tokio::time::sleep(
            pace.poll
                .min(deadline.saturating_duration_since(Instant::now())),
        )
        .await;
    };
    let delete = match &state {
        HookState::Succeeded => hook.deletes(DeletePolicy::HookSucceeded),
        _ => hook.deletes(DeletePolicy::HookFailed),
    };
    let deleted = delete && client.delete(&r, Propagation::Background).await.is_ok();
    match state {
        HookState::Succeeded => {
            Ok(Change::done(&r, Action::Created, false).noted(Note::HookSucceeded { deleted }))
        }
        HookState::Failed(m) => Err((r, m, deleted)),
        HookState::Running(m) => Err((
            r,
            format!(
                "not finished after {} ({m})",
                crate::model::format_duration(pace.timeout)
            ),
            deleted,
        )),
    }
}

/// BeforeHookCreation: the earlier run of a named hook, deleted and gone.
async fn clear(
    client: &ClusterClient,
    r: &ObjectRef,
    deadline: Instant,
    poll: Duration,
) -> Result<(), String> {
    match client.get(r).await {
        Ok(None) => return Ok(()),
        Ok(Some(_)) => {}
        Err(e) => return Err(format!("{r}: {e}")),
    }
    client
        .delete(r, Propagation::Background)
        .await
        .map_err(|e| format!("{r}: cannot delete the earlier run of this hook: {e}"))?;
    let pace = Pace { poll, deadline };
    wait_gone(client, std::slice::from_ref(r), pace)
        .await
        .map_err(|e| match e {
            NotGone::Lingering { .. } => format!(
                "{r}: the earlier run of this hook is still being deleted (BeforeHookCreation)"
            ),
            NotGone::Unreadable(e) => format!("{r}: {e}"),
        })
}

/// The ref of a `generateName` hook before it is created (its prefix as
/// the name).
fn generated_ref(obj: &Value) -> Result<ObjectRef, String> {
    let mut named = obj.clone();
    let prefix = obj
        .pointer("/metadata/generateName")
        .and_then(Value::as_str)
        .ok_or("the hook has neither metadata.name nor metadata.generateName")?
        .to_string();
    named["metadata"]["name"] = Value::String(prefix);
    ObjectRef::from_object(&named).map_err(|e| e.to_string())
}

/// A ref naming what can be read of an object that has none.
fn placeholder(obj: &Value) -> ObjectRef {
    let s = |k: &str| {
        obj.pointer(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    ObjectRef {
        group: String::new(),
        version: String::new(),
        kind: s("/kind"),
        namespace: obj
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .map(str::to_string),
        name: s("/metadata/name"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job(name: &str, phase: &str, wave: &str) -> Value {
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": "a",
            "annotations": {"argocd.argoproj.io/hook": phase, "argocd.argoproj.io/sync-wave": wave}}})
    }

    #[test]
    fn recorded_hooks_by_phase_in_wave_order() {
        let mut app = json!({"metadata": {"name": "x"}});
        record(
            &mut app,
            &[
                job("late", "PreDelete", "2"),
                job("after", "PostDelete", "0"),
                job("early", "PreDelete", "-1"),
            ],
        );
        let names = |p| {
            recorded(&app, p)
                .into_iter()
                .map(|(_, _, o)| o["metadata"]["name"].as_str().unwrap_or("").to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(DeletePhase::PreDelete), ["early", "late"]);
        assert_eq!(names(DeletePhase::PostDelete), ["after"]);
        // Nothing recorded: nothing to run, and no annotation written.
        let mut none = json!({"metadata": {"name": "y"}});
        record(&mut none, &[]);
        assert!(none.pointer("/metadata/annotations").is_none());
        assert!(recorded(&none, DeletePhase::PreDelete).is_empty());
    }
}
