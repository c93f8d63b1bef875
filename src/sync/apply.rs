//! Applying one app's desired objects: group by group (one phase of one
//! sync wave), a later wave only once the earlier ones are ready, CRDs
//! waited for until Established, each object skipped when turned off (in
//! git, on its namespace, on the live object) or already converged.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};

use futures::stream::StreamExt;
use serde_json::Value;

use super::app::{namespace_ref, AppSync};
use super::change::{Action, Change, ChangeError, HookNotRun, Note, SkipReason};
use super::failure::{ApiError, SyncFailure};
use super::gone::wait_gone;
use super::hooks;
use super::prepare::{is_subset, DesiredObject, SyncMode, DESIRED_HASH_ANNOTATION};
use super::prune::annotation;
use super::report::AppReport;
use crate::cluster::ClusterError;
use crate::image::adopt_pins;
use crate::model::hook::HookPhase;
use crate::model::{ObjectRef, APP_LABEL};

impl AppSync<'_> {
    /// Creates the destination namespace when the app asks for it.
    pub(super) async fn ensure_destination(&self) -> Result<(), SyncFailure> {
        let app = &self.node.app;
        let (true, Some(namespace)) = (
            app.sync_policy.create_namespace,
            app.destination.namespace.as_ref(),
        ) else {
            return Ok(());
        };
        self.ensure_namespace(namespace, self.opts.dry_run)
            .await
            .map_err(|e| SyncFailure::Namespace {
                namespace: namespace.clone(),
                error: e.into(),
            })
    }

    /// Applies the desired objects wave by wave, group by group (a group:
    /// one phase of one sync wave), running each wave's Sync hooks after its
    /// objects. A later wave waits until the earlier ones are ready; after a
    /// failure, or a wave that never gets ready, the rest is skipped.
    pub(super) async fn apply_groups(
        &self,
        desired: &[DesiredObject],
        sync_hooks: &[&DesiredObject],
        namespaces: &HashMap<String, Option<SyncMode>>,
        report: &mut AppReport,
    ) {
        let dry = self.opts.dry_run;
        let all_groups = groups(desired);
        let mut waves: Vec<i32> = all_groups
            .iter()
            .map(|g| g[0].wave)
            .chain(sync_hooks.iter().map(|h| h.wave))
            .collect();
        waves.sort_unstable();
        waves.dedup();
        let mut ready_before: Vec<&DesiredObject> = Vec::new();
        for (i, &wave) in waves.iter().enumerate() {
            let wave_hooks: Vec<&DesiredObject> = sync_hooks
                .iter()
                .filter(|h| h.wave == wave)
                .copied()
                .collect();
            let halted = report.changes.iter().any(Change::halts);
            if i > 0 && !halted && !dry {
                let h = self.wait_healthy(&ready_before, self.deadline()).await;
                if !h.health.is_ready() {
                    report.health = h;
                    for group in all_groups.iter().filter(|g| g[0].wave == wave) {
                        report.changes.extend(group.iter().map(|d| {
                            Change::skipped(&d.object_ref, dry, SkipReason::WaveNotHealthy)
                        }));
                    }
                    let not_run =
                        hooks::not_run(&wave_hooks, HookPhase::Sync, HookNotRun::NotHealthy);
                    report.changes.extend(not_run);
                    continue;
                }
            }
            for group in all_groups.iter().filter(|g| g[0].wave == wave) {
                if report.changes.iter().any(Change::halts) {
                    report.changes.extend(
                        group
                            .iter()
                            .map(|d| Change::skipped(&d.object_ref, dry, SkipReason::AfterFailure)),
                    );
                    continue;
                }
                let results = self.apply_group(group, namespaces).await;
                ready_before.extend(
                    group
                        .iter()
                        .zip(&results)
                        .filter(|(_, c)| c.holds_desired())
                        .map(|(d, _)| *d),
                );
                report.changes.extend(results);
            }
            self.run_hooks(&wave_hooks, HookPhase::Sync, true, report)
                .await;
        }
    }

    /// Applies one group concurrently; CRDs are then waited for until
    /// Established, so that anything after them can use their kinds.
    pub(super) async fn apply_group(
        &self,
        group: &[&DesiredObject],
        namespaces: &HashMap<String, Option<SyncMode>>,
    ) -> Vec<Change> {
        let mut results: Vec<Change> =
            futures::stream::iter(group.iter().map(|d| self.apply_one(d, namespaces)))
                .buffered(self.opts.apply_concurrency.max(1))
                .collect()
                .await;
        let crds = group[0].phase == super::prepare::Phase::Crds;
        if crds && !self.opts.dry_run && !results.iter().any(Change::is_failure) {
            for (d, c) in group.iter().zip(results.iter_mut()) {
                if !c.holds_desired() {
                    continue;
                }
                let wait = self
                    .client
                    .wait_crd_established(&d.object_ref.name, self.timeout());
                if let Err(e) = wait.await {
                    *c = Change::failed(&d.object_ref, false, ChangeError::Cluster(e.into()));
                }
            }
            self.client.invalidate_discovery();
        }
        results
    }

    /// Applies one desired object, unless it is turned off (in git, on its
    /// namespace or on the live object) or already converged.
    pub(super) async fn apply_one(
        &self,
        d: &DesiredObject,
        namespaces: &HashMap<String, Option<SyncMode>>,
    ) -> Change {
        let r = &d.object_ref;
        // `None`: the namespace does not exist yet; `Some(mode)`: it does.
        let ns_state = r
            .namespace
            .as_ref()
            .and_then(|n| namespaces.get(n))
            .copied();
        let ns_mode = ns_state.flatten();
        if d.mode == SyncMode::Off {
            let reason = match annotation(&d.object, crate::model::OFF_BY_LABEL_ANNOTATION) {
                Some(label) => SkipReason::LabelOff {
                    label: label.to_string(),
                },
                None => SkipReason::SyncOff,
            };
            return Change::skipped(r, false, reason);
        }
        if ns_mode == Some(SyncMode::Off) {
            return Change::skipped(r, false, SkipReason::SyncOffOnNamespace);
        }
        let live = match self.read(r).await {
            Ok(l) => l,
            // The kind is served only once a CRD of this app is applied: in a
            // dry run that never happens, so the object would be created.
            Err(ClusterError::UnknownKind { .. }) if self.opts.dry_run => {
                return Change::done(r, Action::Created, true).noted(Note::AfterItsCrd)
            }
            Err(e) => return Change::failed(r, self.opts.dry_run, ChangeError::Cluster(e.into())),
        };
        let live_mode = live.as_ref().map(super::prepare::sync_mode);
        // A pin image sync wrote (`app:v1@sha256:…` for git's `app:v1`) is
        // kept: compared and applied as it is live, never reverted.
        let pinned = with_pins(d, live.as_ref());
        let d: &DesiredObject = &pinned;
        if let Some(l) = &live {
            if live_mode == Some(SyncMode::Off) {
                return Change::skipped(r, false, SkipReason::SyncOffOnLive);
            }
            if let Some(label) = super::prepare::labelled_off(l, self.opts.off_label.as_deref()) {
                return Change::skipped(r, false, SkipReason::LabelOffOnLive { label });
            }
            if annotation(l, DESIRED_HASH_ANNOTATION) == Some(d.hash.as_str())
                && self.converged(d, l).await
            {
                return Change::done(r, Action::Unchanged, false);
            }
        }
        let dry = self.opts.dry_run
            || [Some(d.mode), ns_mode, live_mode].contains(&Some(SyncMode::DryRun));
        // A dry-run create into a namespace this run would create first
        // cannot be checked by the server; report it as a create.
        if dry && live.is_none() && r.namespace.is_some() && ns_state == Some(None) {
            return Change::done(r, Action::Created, true).noted(Note::WithItsNamespace);
        }
        self.write_one(d, live.as_ref(), dry).await
    }

    /// The server-side apply of one object, and what it did to `live`.
    pub(super) async fn write_one(
        &self,
        d: &DesiredObject,
        live: Option<&Value>,
        dry: bool,
    ) -> Change {
        let r = &d.object_ref;
        if d.options.replace && !dry {
            if let Some(l) = live {
                return self.replace_one(d, l).await;
            }
        }
        let applied = self
            .client
            .apply_validated(&self.to_apply(d, live), dry, d.options.validate)
            .await;
        match applied {
            Ok(result) => {
                if !dry {
                    self.live.applied(&result);
                }
                let action = match live {
                    None => Action::Created,
                    Some(l) if rv(l) == rv(&result) && !dry => Action::Unchanged,
                    Some(l)
                        if dry
                            && crate::diff::compare_ignoring(
                                r.clone(),
                                Some(&result),
                                Some(l),
                                self.ignore,
                            )
                            .kind
                                == crate::diff::ObjectDiffKind::Same =>
                    {
                        Action::Unchanged
                    }
                    Some(_) => Action::Configured,
                };
                if !dry && action == Action::Created && r.group.is_empty() && r.kind == "Namespace"
                {
                    self.live.created_namespace(&r.name);
                }
                tracing::info!(object = %r, %action, dry_run = dry, "applied");
                Change::done(r, action, dry)
            }
            Err(e) => {
                tracing::warn!(object = %r, "apply failed: {e}");
                Change::failed(r, dry, ChangeError::Cluster(e.into()))
            }
        }
    }

    /// `Replace=true` on a live object: a replace (PUT) instead of an
    /// apply; with `Force=true`, when the server refuses the replace (an
    /// immutable field changed), the object is deleted and created again.
    pub(super) async fn replace_one(&self, d: &DesiredObject, live: &Value) -> Change {
        let r = &d.object_ref;
        let failed = |e: ApiError| Change::failed(r, false, ChangeError::Cluster(e));
        // Ignored fields keep their live values (RespectIgnoreDifferences)
        // as on the apply path; the live resourceVersion, because custom
        // resources refuse an unconditional update.
        let mut body = self.to_apply(d, Some(live));
        if let (Some(v), Some(meta)) = (
            rv(live),
            body.get_mut("metadata").and_then(Value::as_object_mut),
        ) {
            meta.insert("resourceVersion".into(), Value::String(v.to_string()));
        }
        let replaced = match self.client.replace(&body).await {
            Ok(result) => Ok(result),
            Err(e) if d.options.force => {
                tracing::info!(object = %r, "replace refused ({e}); Force=true: recreating");
                if let Err(e) = self
                    .client
                    .delete(r, crate::cluster::Propagation::Foreground)
                    .await
                {
                    return failed(e.into());
                }
                let gone = wait_gone(self.client, std::slice::from_ref(r), self.pace()).await;
                if let Err(e) = gone {
                    return failed(format!("{e} (Force=true)").into());
                }
                self.live.deleted(r);
                return match self
                    .client
                    .apply_validated(&d.object, false, d.options.validate)
                    .await
                {
                    Ok(result) => {
                        self.live.applied(&result);
                        Change::done(r, Action::Configured, false)
                            .noted(Note::Replaced { recreated: true })
                    }
                    Err(e) => failed(e.into()),
                };
            }
            Err(e) => Err(e),
        };
        match replaced {
            Ok(result) => {
                self.live.applied(&result);
                let action = if rv(live) == rv(&result) {
                    Action::Unchanged
                } else {
                    Action::Configured
                };
                tracing::info!(object = %r, %action, "replaced");
                Change::done(r, action, false).noted(Note::Replaced { recreated: false })
            }
            Err(e) => failed(e.into()),
        }
    }

    /// Whether a live object that carries the desired hash (git has not
    /// changed since kubesync applied it) still holds what git declares.
    /// Git's text is compared first; when the server stored it in another
    /// form (quantities such as `0.5` → `500m`, defaulted fields), the server
    /// is asked what an apply would leave (a dry run, never a write), so a
    /// converged object costs no write on a real API server either.
    /// Fields the app's `ignoreDifferences` name are left out of both
    /// comparisons: an object that differs only there is converged and is
    /// not rewritten (an HPA's `replicas` stays as the HPA set it).
    pub(super) async fn converged(&self, d: &DesiredObject, live: &Value) -> bool {
        let key = rv(live).map(|v| (d.object_ref.clone(), v.to_string()));
        if let Some(seen) = key
            .as_ref()
            .and_then(|k| self.converged_seen.lock().get(k).copied())
        {
            return seen;
        }
        let answer = self.judge_converged(d, live).await;
        if let Some(k) = key {
            self.converged_seen.lock().insert(k, answer);
        }
        answer
    }

    /// [`Self::converged`], asked afresh.
    async fn judge_converged(&self, d: &DesiredObject, live: &Value) -> bool {
        if self.holds_as_written(d, live) {
            return true;
        }
        match self.client.apply(&self.to_apply(d, Some(live)), true).await {
            Ok(predicted) => {
                crate::diff::compare_ignoring(
                    d.object_ref.clone(),
                    Some(&predicted),
                    Some(live),
                    self.ignore,
                )
                .kind
                    == crate::diff::ObjectDiffKind::Same
            }
            Err(_) => false,
        }
    }

    /// Whether `live` holds git's object as git wrote it (every field git
    /// declares, with that value; ignored fields left out): the converged
    /// check that costs no request. Only meaningful when `live` carries the
    /// desired hash (else a field git dropped may still be set).
    pub(super) fn holds_as_written(&self, d: &DesiredObject, live: &Value) -> bool {
        let comparable = super::prepare::comparable(&d.object);
        if self.ignore.applies_to(&d.object_ref) {
            let (desired, live) = self.ignore.strip(&d.object_ref, &comparable, live);
            is_subset(&desired, &live)
        } else {
            is_subset(&comparable, live)
        }
    }

    /// The object an apply sends: the desired one, or — with the sync
    /// option `RespectIgnoreDifferences=true` and a live object — the desired
    /// one with its ignored fields taken from the live object, so that the
    /// apply leaves them as they are.
    pub(super) fn to_apply(&self, d: &DesiredObject, live: Option<&Value>) -> Value {
        match live {
            Some(live)
                if self.node.app.sync_policy.respect_ignore_differences()
                    && self.ignore.applies_to(&d.object_ref) =>
            {
                let mut out = self.ignore.respect(&d.object_ref, &d.object, live);
                // Only what git declares (and the live values of ignored
                // fields) is sent: never the live object's bookkeeping.
                if let Some(meta) = out.get_mut("metadata").and_then(Value::as_object_mut) {
                    for key in [
                        "managedFields",
                        "resourceVersion",
                        "uid",
                        "creationTimestamp",
                        "generation",
                    ] {
                        meta.remove(key);
                    }
                }
                if let Some(m) = out.as_object_mut() {
                    m.remove("status");
                }
                out
            }
            _ => d.object.clone(),
        }
    }

    pub(super) async fn ensure_namespace(&self, ns: &str, dry: bool) -> Result<(), ClusterError> {
        if self.read(&namespace_ref(ns)).await?.is_some() {
            return Ok(());
        }
        let obj = serde_json::json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": ns, "labels": {APP_LABEL: self.node.app.name.as_str()}}
        });
        let created = self.client.apply(&obj, dry).await?;
        if !dry {
            self.live.applied(&created);
            self.live.created_namespace(ns);
        }
        Ok(())
    }

    /// The namespaces the app's objects (and leftovers) live in: `None` when
    /// the namespace does not exist yet, else its `kubesync.dev/sync` mode.
    pub(super) async fn namespace_modes(
        &self,
        desired: &[DesiredObject],
        leftovers: &[ObjectRef],
    ) -> HashMap<String, Option<SyncMode>> {
        let mut out = HashMap::new();
        let namespaces: BTreeSet<&String> = desired
            .iter()
            .map(|d| &d.object_ref)
            .chain(leftovers.iter())
            .filter_map(|r| r.namespace.as_ref())
            .collect();
        for ns in namespaces {
            let r = namespace_ref(ns);
            let mode = match self.read(&r).await {
                Ok(Some(live)) => Some(super::prepare::sync_mode(&live)),
                Ok(None) => None,
                // Unknown: treat as existing and on; the apply reports the error.
                Err(_) => Some(SyncMode::On),
            };
            out.insert(ns.clone(), mode);
        }
        out
    }
}

/// The desired objects in apply groups: consecutive objects of one sync
/// wave and one phase (they arrive sorted by wave, then phase).
pub(super) fn groups(desired: &[DesiredObject]) -> Vec<Vec<&DesiredObject>> {
    let mut groups: Vec<Vec<&DesiredObject>> = Vec::new();
    for d in desired {
        match groups.last_mut() {
            Some(g) if g[0].wave == d.wave && g[0].phase == d.phase => g.push(d),
            _ => groups.push(vec![d]),
        }
    }
    groups
}

fn rv(obj: &Value) -> Option<&str> {
    obj.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
}

/// What is compared and applied for `d` against `live`: git's object, with
/// the digest pins image sync wrote kept (`app:v1@sha256:…` for git's
/// `app:v1`), so sync never reverts them. One rule for apply, the
/// converged check before hooks and `diff`.
pub(super) fn with_pins<'a>(d: &'a DesiredObject, live: Option<&Value>) -> Cow<'a, DesiredObject> {
    match live.and_then(|l| adopt_pins(&d.object, l)) {
        Some(object) => Cow::Owned(DesiredObject {
            object,
            ..d.clone()
        }),
        None => Cow::Borrowed(d),
    }
}
