//! Applying one app's desired objects: group by group (one phase of one
//! sync wave), a later wave only once the earlier ones are ready, CRDs
//! waited for until Established, each object skipped when turned off (in
//! git, on its namespace, on the live object) or already converged.

use std::collections::{BTreeSet, HashMap};

use futures::stream::StreamExt;
use serde_json::Value;

use super::app::{namespace_ref, AppSync};
use super::change::{Action, Change, ChangeError, Note, SkipReason};
use super::prepare::{is_subset, DesiredObject, SyncMode, DESIRED_HASH_ANNOTATION};
use super::prune::annotation;
use super::report::AppReport;
use crate::cluster::ClusterError;
use crate::image::adopt_pins;
use crate::model::{ObjectRef, APP_LABEL};

impl AppSync<'_> {
    /// Creates the destination namespace when the app asks for it.
    pub(super) async fn ensure_destination(&self) -> Result<(), String> {
        let app = &self.node.app;
        let (true, Some(namespace)) = (
            app.sync_policy.create_namespace,
            app.destination.namespace.as_ref(),
        ) else {
            return Ok(());
        };
        self.ensure_namespace(namespace, self.opts.dry_run)
            .await
            .map_err(|e| format!("cannot create namespace \"{namespace}\": {e}"))
    }

    /// Applies the desired objects group by group (a group: one phase of
    /// one sync wave). A later wave waits until the earlier ones are ready;
    /// after a failure, or a wave that never gets ready, the rest is skipped.
    pub(super) async fn apply_groups(
        &self,
        desired: &[DesiredObject],
        namespaces: &HashMap<String, Option<SyncMode>>,
        report: &mut AppReport,
    ) {
        let dry = self.opts.dry_run;
        let mut ready_before: Vec<&DesiredObject> = Vec::new();
        let mut current_wave: Option<i32> = None;
        for group in groups(desired) {
            let skip = |reason: SkipReason| {
                let skipped = group
                    .iter()
                    .map(|d| Change::skipped(&d.object_ref, dry, reason.clone()));
                skipped.collect::<Vec<_>>()
            };
            if report.changes.iter().any(Change::halts) {
                report.changes.extend(skip(SkipReason::AfterFailure));
                continue;
            }
            let wave = group[0].wave;
            if current_wave.is_some_and(|w| w != wave) && !dry {
                let h = self.wait_healthy(&ready_before, self.deadline()).await;
                if !h.health.is_ready() {
                    report.changes.extend(skip(SkipReason::WaveNotHealthy));
                    report.health = h;
                    continue;
                }
            }
            current_wave = Some(wave);
            let results = self.apply_group(&group, namespaces).await;
            ready_before.extend(
                group
                    .iter()
                    .zip(&results)
                    .filter(|(_, c)| c.holds_desired())
                    .map(|(d, _)| *d),
            );
            report.changes.extend(results);
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
                    *c = Change::failed(&d.object_ref, false, ChangeError::Cluster(e.to_string()));
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
            return Change::skipped(r, false, SkipReason::SyncOff);
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
            Err(e) => {
                return Change::failed(r, self.opts.dry_run, ChangeError::Cluster(e.to_string()))
            }
        };
        let live_mode = live.as_ref().map(super::prepare::sync_mode);
        // A pin image sync wrote (`app:v1@sha256:…` for git's `app:v1`) is
        // kept: compared and applied as it is live, never reverted.
        let adopted;
        let d = match live.as_ref().and_then(|l| adopt_pins(&d.object, l)) {
            Some(object) => {
                adopted = DesiredObject {
                    object,
                    ..d.clone()
                };
                &adopted
            }
            None => d,
        };
        if let Some(l) = &live {
            if live_mode == Some(SyncMode::Off) {
                return Change::skipped(r, false, SkipReason::SyncOffOnLive);
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
        match self.client.apply(&d.object, dry).await {
            Ok(result) => {
                if !dry {
                    self.live.applied(&result);
                }
                let action = match live {
                    None => Action::Created,
                    Some(l) if rv(l) == rv(&result) && !dry => Action::Unchanged,
                    Some(l)
                        if dry
                            && crate::diff::compare(r.clone(), Some(&result), Some(l)).kind
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
                Change::failed(r, dry, ChangeError::Cluster(e.to_string()))
            }
        }
    }

    /// Whether a live object that carries the desired hash (git has not
    /// changed since kubesync applied it) still holds what git declares.
    /// Git's text is compared first; when the server stored it in another
    /// form (quantities such as `0.5` → `500m`, defaulted fields), the server
    /// is asked what an apply would leave (a dry run, never a write), so a
    /// converged object costs no write on a real API server either.
    pub(super) async fn converged(&self, d: &DesiredObject, live: &Value) -> bool {
        if is_subset(&super::prepare::comparable(&d.object), live) {
            return true;
        }
        match self.client.apply(&d.object, true).await {
            Ok(predicted) => {
                crate::diff::compare(d.object_ref.clone(), Some(&predicted), Some(live)).kind
                    == crate::diff::ObjectDiffKind::Same
            }
            Err(_) => false,
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
