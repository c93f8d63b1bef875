//! Running an app's resource hooks (Argo CD's semantics; what an object's
//! annotations make of it is `model::hook`'s): a phase's hooks run wave by
//! wave (`argocd.argoproj.io/sync-wave`, else the hook weight), the hooks of
//! one wave at once; each is
//!
//! 1. cleared away first when its delete policy is BeforeHookCreation (the
//!    default): the live object of a named hook, or every earlier object of
//!    a `generateName` hook (found by kubesync's label and tracking id);
//! 2. created — a `generateName` hook with a create, so the server names
//!    it; a named hook with a server-side apply, like any object;
//! 3. waited for until it finished: a Job Complete or Failed, a Pod
//!    Succeeded or Failed, anything else Healthy (or Degraded: failed), up to
//!    the app's timeout;
//! 4. deleted when it succeeded with HookSucceeded, or failed with
//!    HookFailed.
//!
//! A failed hook fails the sync: the hooks and objects after it are not
//! applied. Hooks are never in the app's inventory, so never pruned as
//! leftovers. Whether hooks run at all in a sync (only when it has
//! something to apply or prune) and which phase runs when is `app`'s.

use std::time::Instant;

use futures::future::join_all;
use kube::core::GroupVersionKind;
use serde_json::Value;

use super::app::{selector_for, AppSync, Plan};
use super::change::{Action, Change, ChangeError, HookNotRun, Note, SkipReason};
use super::gone::{wait_gone, NotGone, Pace};
use super::prepare::{DesiredObject, SyncMode, DESIRED_HASH_ANNOTATION};
use super::prune::annotation;
use super::report::AppReport;
use crate::cluster::Propagation;
use crate::health::{self, Health};
use crate::model::hook::{DeletePolicy, HookPhase};
use crate::model::{ObjectRef, APP_LABEL, TRACKING_ANNOTATION};

/// Where a hook is in its run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum HookState {
    Running(String),
    Succeeded,
    Failed(String),
}

/// A live hook object's state: Jobs and Pods by how they finished, any
/// other kind by its health.
pub(super) fn hook_state(live: Option<&Value>) -> HookState {
    let Some(live) = live else {
        return HookState::Running("not created yet".into());
    };
    let kind = live.get("kind").and_then(Value::as_str).unwrap_or("");
    let group = live
        .get("apiVersion")
        .and_then(Value::as_str)
        .map(|a| crate::model::split_api_version(a).0)
        .unwrap_or("");
    match (group, kind) {
        ("batch", "Job") => {
            let conds = live
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let true_cond = |t: &str| {
                conds.iter().find(|c| {
                    c.get("type").and_then(Value::as_str) == Some(t)
                        && c.get("status").and_then(Value::as_str) == Some("True")
                })
            };
            if true_cond("Complete").is_some() {
                HookState::Succeeded
            } else if let Some(c) = true_cond("Failed") {
                let text = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                HookState::Failed(format!(
                    "Job failed: {}: {}",
                    text("reason"),
                    text("message")
                ))
            } else {
                HookState::Running("Job running".into())
            }
        }
        ("", "Pod") => match live.pointer("/status/phase").and_then(Value::as_str) {
            Some("Succeeded") => HookState::Succeeded,
            Some("Failed") => {
                let why = live
                    .pointer("/status/message")
                    .or_else(|| live.pointer("/status/reason"))
                    .and_then(Value::as_str)
                    .unwrap_or("a container exited with an error");
                HookState::Failed(format!("Pod failed: {why}"))
            }
            other => HookState::Running(format!("Pod {}", other.unwrap_or("Pending"))),
        },
        _ => {
            let h = health::assess(live);
            match h.health {
                Health::Healthy | Health::Suspended => HookState::Succeeded,
                Health::Degraded => HookState::Failed(h.message),
                _ => HookState::Running(h.message),
            }
        }
    }
}

/// The hooks of `phase`, in run order.
pub(super) fn of_phase(hooks: &[DesiredObject], phase: HookPhase) -> Vec<&DesiredObject> {
    hooks
        .iter()
        .filter(|h| h.hook().is_some_and(|k| k.phases.contains(&phase)))
        .collect()
}

/// `hooks` reported as not run, and why.
pub(super) fn not_run(hooks: &[&DesiredObject], phase: HookPhase, why: HookNotRun) -> Vec<Change> {
    hooks
        .iter()
        .map(|h| Change::skipped(&h.object_ref, false, SkipReason::HookNotRun(why)).in_hook(phase))
        .collect()
}

impl AppSync<'_> {
    /// Whether this sync has anything to write: an object missing or not
    /// as git wants it, or a leftover to prune. A sync with nothing to do
    /// runs no hooks (so a converged re-sync stays at zero writes).
    pub(super) async fn has_work(
        &self,
        plan: &Plan,
        namespaces: &std::collections::HashMap<String, Option<SyncMode>>,
    ) -> bool {
        for d in plan.desired.iter().filter(|d| d.mode == SyncMode::On) {
            let ns_mode = d
                .object_ref
                .namespace
                .as_ref()
                .and_then(|n| namespaces.get(n))
                .copied();
            match ns_mode {
                Some(Some(SyncMode::Off)) => continue,
                Some(None) => return true, // its namespace does not exist yet
                _ => {}
            }
            let live = match self.read(&d.object_ref).await {
                Ok(Some(l)) => l,
                Ok(None) | Err(_) => return true,
            };
            if super::prepare::sync_mode(&live) == SyncMode::Off {
                continue;
            }
            let d = super::apply::with_pins(d, Some(&live));
            if annotation(&live, DESIRED_HASH_ANNOTATION) != Some(d.hash.as_str())
                || !self.converged(&d, &live).await
            {
                return true;
            }
        }
        if !plan.prune {
            return false;
        }
        let me = &self.node.app.name;
        for old in &plan.inventory {
            let leftover = !old.sync_off
                && !plan
                    .desired
                    .iter()
                    .any(|d| d.object_ref.same_object(&old.object))
                && self.shared.wanted_by_other(&old.object, me).is_none();
            if leftover && matches!(self.read(&old.object).await, Ok(Some(_)) | Err(_)) {
                return true;
            }
        }
        false
    }

    /// Runs `hooks` (all of `phase`) wave by wave, each wave's at once.
    /// With `stop_on_failure`, a wave runs only while the sync has not
    /// failed (its hooks are reported not run otherwise).
    pub(super) async fn run_hooks(
        &self,
        hooks: &[&DesiredObject],
        phase: HookPhase,
        stop_on_failure: bool,
        report: &mut AppReport,
    ) {
        let mut i = 0;
        while i < hooks.len() {
            let wave = hooks[i].wave;
            let end = hooks[i..]
                .iter()
                .position(|h| h.wave != wave)
                .map_or(hooks.len(), |n| i + n);
            let group = &hooks[i..end];
            i = end;
            if stop_on_failure && report.changes.iter().any(Change::halts) {
                report
                    .changes
                    .extend(not_run(group, phase, HookNotRun::SyncFailed));
                continue;
            }
            let runs = group.iter().map(|h| self.run_hook(h, phase));
            report.changes.extend(join_all(runs).await);
        }
    }

    /// One hook's run (see the module doc); the change records what came
    /// of it under the name the hook really got.
    async fn run_hook(&self, d: &DesiredObject, phase: HookPhase) -> Change {
        let Some(hook) = d.hook() else {
            return Change::failed(
                &d.object_ref,
                false,
                ChangeError::Cluster(format!("{}: not a hook", d.object_ref).into()),
            );
        };
        let fail = |r: &ObjectRef, message: String, deleted: bool| {
            Change::failed(r, false, ChangeError::Hook { message, deleted }).in_hook(phase)
        };
        let deadline = self.deadline();
        if hook.deletes(DeletePolicy::BeforeHookCreation) {
            if let Err(e) = self.clear_previous(d, deadline).await {
                return fail(&d.object_ref, e, false);
            }
        }
        let created = if d.generated() {
            self.client.create(&d.object_ref, &d.object).await
        } else {
            self.client.apply(&d.object, false).await
        };
        let live = match created {
            Ok(l) => l,
            Err(e) => return fail(&d.object_ref, e.to_string(), false),
        };
        self.live.applied(&live);
        let r = match ObjectRef::from_object(&live) {
            Ok(r) => r,
            Err(e) => return fail(&d.object_ref, e.to_string(), false),
        };
        tracing::info!(object = %r, %phase, "hook created");
        let state = self.wait_hook(&r, deadline).await;
        let delete = match &state {
            HookState::Succeeded => hook.deletes(DeletePolicy::HookSucceeded),
            _ => hook.deletes(DeletePolicy::HookFailed),
        };
        let deleted = delete && self.delete_hook(&r).await.is_ok();
        match state {
            HookState::Succeeded => {
                tracing::info!(object = %r, %phase, deleted, "hook succeeded");
                Change::done(&r, Action::Created, false)
                    .noted(Note::HookSucceeded { deleted })
                    .in_hook(phase)
            }
            HookState::Failed(m) => fail(&r, m, deleted),
            HookState::Running(m) => fail(
                &r,
                format!("not finished after {}s ({m})", self.timeout().as_secs()),
                deleted,
            ),
        }
    }

    /// Waits until the hook `r` finished, or the deadline passed (then
    /// [`HookState::Running`]); woken by watch events, re-reading the object
    /// every `watch_fallback` (or polling, for a kind not watched).
    async fn wait_hook(&self, r: &ObjectRef, deadline: Instant) -> HookState {
        let mut reread_at = Instant::now() + self.opts.watch_fallback;
        loop {
            let mut changes = self.live.subscribe([r]);
            let state = self
                .live
                .inspect(r, selector_for(r), hook_state)
                .await
                .unwrap_or_else(|e| HookState::Running(e.to_string()));
            if !matches!(state, HookState::Running(_)) || Instant::now() >= deadline {
                return state;
            }
            let wake = if changes.is_watched() {
                reread_at
            } else {
                Instant::now() + self.opts.poll_interval
            };
            tokio::select! {
                _ = changes.changed() => {}
                _ = tokio::time::sleep_until(wake.min(deadline).into()) => {
                    if Instant::now() >= reread_at || !changes.is_watched() {
                        let _ = self.live.refresh(r).await;
                        reread_at = Instant::now() + self.opts.watch_fallback;
                    }
                }
            }
        }
    }

    /// BeforeHookCreation: deletes the hook's earlier objects and waits
    /// until they are gone (a create of the same name would fail, and a
    /// Job's spec cannot be changed in place).
    async fn clear_previous(&self, d: &DesiredObject, deadline: Instant) -> Result<(), String> {
        let previous: Vec<ObjectRef> = if d.generated() {
            let r = &d.object_ref;
            let gvk = GroupVersionKind::gvk(&r.group, &r.version, &r.kind);
            let selector = format!("{APP_LABEL}={}", self.node.app.name);
            let tracking = annotation(&d.object, TRACKING_ANNOTATION);
            let items = self
                .client
                .list(&gvk, r.namespace.as_deref(), &selector)
                .await
                .map_err(|e| format!("cannot list the earlier runs of hook {r}: {e}"))?;
            items
                .iter()
                .filter(|l| annotation(l, TRACKING_ANNOTATION) == tracking && tracking.is_some())
                .filter_map(|l| ObjectRef::from_object(l).ok())
                .collect()
        } else {
            vec![d.object_ref.clone()]
        };
        for r in &previous {
            self.delete_hook(r).await?;
        }
        let pace = Pace {
            poll: self.opts.poll_interval,
            deadline,
        };
        wait_gone(self.client, &previous, pace)
            .await
            .map_err(|e| match e {
                NotGone::Lingering { object, .. } => format!(
                "{object}: the earlier run of this hook is still being deleted (BeforeHookCreation)"
            ),
                NotGone::Unreadable(e) => e.to_string(),
            })
    }

    /// Deletes a hook object and its dependents (a Job's pods).
    async fn delete_hook(&self, r: &ObjectRef) -> Result<(), String> {
        match self.client.delete(r, Propagation::Background).await {
            Ok(_) => {
                self.live.deleted(r);
                tracing::info!(object = %r, "hook deleted");
                Ok(())
            }
            Err(e) => Err(format!("{r}: cannot delete the hook: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn job_and_pod_states() {
        let job = |conds: Value| json!({"apiVersion": "batch/v1", "kind": "Job", "status": {"conditions": conds}});
        assert_eq!(
            hook_state(Some(&job(json!([])))),
            HookState::Running("Job running".into())
        );
        assert_eq!(
            hook_state(Some(&job(json!([{"type": "Complete", "status": "True"}])))),
            HookState::Succeeded
        );
        let failed = hook_state(Some(&job(json!([{"type": "Failed", "status": "True",
            "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]))));
        assert_eq!(
            failed,
            HookState::Failed(
                "Job failed: BackoffLimitExceeded: Job has reached the specified backoff limit"
                    .into()
            )
        );
        let pod =
            |phase: &str| json!({"apiVersion": "v1", "kind": "Pod", "status": {"phase": phase}});
        assert_eq!(hook_state(Some(&pod("Succeeded"))), HookState::Succeeded);
        assert!(matches!(
            hook_state(Some(&pod("Failed"))),
            HookState::Failed(_)
        ));
        assert!(matches!(
            hook_state(Some(&pod("Running"))),
            HookState::Running(_)
        ));
        assert!(matches!(hook_state(None), HookState::Running(_)));
    }

    #[test]
    fn other_kinds_by_health() {
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
        assert_eq!(hook_state(Some(&cm)), HookState::Succeeded);
    }
}
