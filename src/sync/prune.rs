//! Pruning one app's leftovers: objects of its previous inventory it no
//! longer renders. The rules, in order: never after a failure; not with
//! prune off; released when git had turned them off; handed over when
//! another app renders them now; frozen tree-wide while any app failed to
//! render; kept when turned off (namespace or live object), not applied by
//! this app, `argocd.argoproj.io/sync-options: Prune=false`, or a
//! Namespace/CRD without `kubesync.dev/prune: allow`. A leftover kept counts
//! against the app's sync status unless its live object says
//! `argocd.argoproj.io/compare-options: IgnoreExtraneous`.

use std::collections::HashMap;

use serde_json::Value;

use super::app::{AppSync, Plan};
use super::change::{Action, Change, ChangeError, Note, SkipReason};
use super::prepare::SyncMode;
use super::report::AppReport;
use super::status::InventoryEntry;
use crate::cluster::Propagation;
use crate::model::object_options::{object_options_over, ObjectOptions, PrunePropagation};
use crate::model::{AppName, ObjectRef, APP_LABEL};

impl AppSync<'_> {
    /// Decides every leftover of the previous inventory (see [`Self::leftover`])
    /// and returns those that stay in the inventory.
    pub(super) async fn prune_leftovers(
        &self,
        plan: &Plan,
        namespaces: &HashMap<String, Option<SyncMode>>,
        report: &mut AppReport,
    ) -> Vec<InventoryEntry> {
        let leftovers = plan.inventory.iter().filter(|old| {
            !plan
                .desired
                .iter()
                .any(|d| d.object_ref.same_object(&old.object))
        });
        let mut kept = Vec::new();
        for old in leftovers {
            // Never prune after a failure (a failed prune included).
            let failed = report.changes.iter().any(Change::halts);
            let (c, keep) = self.leftover(old, failed, plan.prune, namespaces).await;
            if keep {
                kept.push(old.clone());
            }
            report.changes.push(c);
        }
        kept
    }

    /// Decides one leftover of the previous inventory (an object this app
    /// applied that it no longer renders): prune it, or keep it and say why.
    /// Returns the change and whether the object stays in the inventory.
    pub(super) async fn leftover(
        &self,
        old: &InventoryEntry,
        failed: bool,
        prune: bool,
        namespaces: &HashMap<String, Option<SyncMode>>,
    ) -> (Change, bool) {
        let r = &old.object;
        let dry = self.opts.dry_run;
        let me = &self.node.app.name;
        let reason = if failed {
            Some(SkipReason::SyncFailed)
        } else if !prune {
            Some(SkipReason::PruneOff)
        } else if old.sync_off {
            // Released: kubesync stops tracking it and never deletes it.
            Some(SkipReason::Released)
        } else if let Some(to) = self.shared.wanted_by_other(r, me) {
            // Handed over: the other app applies it (and owns it from now on).
            Some(SkipReason::HandedOver { to: to.clone() })
        } else {
            self.shared
                .unrendered
                .first()
                .map(|app| SkipReason::Unrendered { app: app.clone() })
        };
        if let Some(reason) = reason {
            let keep = reason.keeps_tracking();
            let mut c = Change::skipped(r, dry, reason);
            if c.reason == Some(SkipReason::PruneOff) {
                // IgnoreExtraneous: a leftover kept does not count against sync.
                if let Ok(Some(live)) = self.read(r).await {
                    c.in_sync |= ignores_extraneous(&live, self.object_defaults());
                }
            }
            return (c, keep);
        }
        let c = self.prune_one(r, dry, namespaces).await;
        let keep = c.action != Action::Pruned;
        (c, keep)
    }

    /// Deletes one leftover, unless it must be kept (see [`keep_leftover`]).
    pub(super) async fn prune_one(
        &self,
        r: &ObjectRef,
        dry: bool,
        namespaces: &HashMap<String, Option<SyncMode>>,
    ) -> Change {
        let ns_mode = r
            .namespace
            .as_ref()
            .and_then(|n| namespaces.get(n))
            .copied()
            .flatten();
        if ns_mode == Some(SyncMode::Off) {
            return Change::skipped(r, dry, SkipReason::KeptSyncOffNamespace);
        }
        let live = match self.read(r).await {
            Ok(None) => return Change::gone(r, dry),
            Ok(Some(live)) => live,
            Err(e) => return Change::failed(r, dry, ChangeError::Prune(e.into())),
        };
        let defaults = self.object_defaults();
        if let Some(label) = super::prepare::labelled_off(&live, self.opts.off_label.as_deref()) {
            return Change::skipped(r, dry, SkipReason::KeptLabelOff { label });
        }
        if let Some(reason) = keep_leftover(r, &live, &self.node.app.name, defaults) {
            let mut c = Change::skipped(r, dry, reason);
            c.in_sync |= ignores_extraneous(&live, defaults);
            return c;
        }
        let mode = super::prepare::sync_mode(&live);
        if dry || mode == SyncMode::DryRun || ns_mode == Some(SyncMode::DryRun) {
            return Change::done(r, Action::Pruned, true).noted(Note::WouldBePruned);
        }
        let propagation = match self.node.app.sync_policy.options().prune_propagation {
            PrunePropagation::Foreground => Propagation::Foreground,
            PrunePropagation::Background => Propagation::Background,
            PrunePropagation::Orphan => Propagation::Orphan,
        };
        match self.client.delete(r, propagation).await {
            Ok(_) => {
                self.live.deleted(r);
                tracing::info!(object = %r, "pruned");
                Change::done(r, Action::Pruned, false)
            }
            Err(e) => Change::failed(r, false, ChangeError::Prune(e.into())),
        }
    }
}

impl AppSync<'_> {
    /// What a live object's options start from: the app-level `syncOptions`
    /// (`Prune=false` there keeps every leftover an annotation does not
    /// release).
    fn object_defaults(&self) -> ObjectOptions {
        self.node.app.sync_policy.options().objects
    }
}

/// Why a live leftover must be kept, if it must: turned off, not applied
/// by `me` (its label and tracking id), `Prune=false` (its annotation, else
/// the app's `defaults`), or a Namespace or CRD — whose deletion cascades to
/// everything in it — without `kubesync.dev/prune: allow`.
fn keep_leftover(
    r: &ObjectRef,
    live: &Value,
    me: &AppName,
    defaults: ObjectOptions,
) -> Option<SkipReason> {
    if super::prepare::sync_mode(live) == SyncMode::Off {
        return Some(SkipReason::KeptSyncOff);
    }
    if !applied_by(live, me) {
        return Some(SkipReason::NotOwned);
    }
    // Prune=false (an unreadable annotation keeps the object too).
    if object_options_over(live, defaults).map_or(true, |o| !o.prune) {
        return Some(SkipReason::PruneDisabled);
    }
    let cascading = (r.group.is_empty() && r.kind == "Namespace")
        || (r.group == "apiextensions.k8s.io" && r.kind == "CustomResourceDefinition");
    if cascading && annotation(live, PRUNE_ANNOTATION) != Some("allow") {
        let kind = r.kind.clone();
        return Some(SkipReason::Cascading { kind });
    }
    None
}

/// Whether `app` applied this live object: it carries the app's
/// `kubesync.dev/app` label and a tracking id of the app (`APP:…`). Only
/// such objects are ever deleted on the app's behalf (prune, or the app's
/// removal from the tree).
pub(super) fn applied_by(live: &Value, app: &AppName) -> bool {
    let owner = live
        .pointer("/metadata/labels")
        .and_then(|l| l.get(APP_LABEL))
        .and_then(Value::as_str);
    let tracked = annotation(live, crate::model::TRACKING_ANNOTATION)
        .and_then(|t| t.strip_prefix(app.as_str()))
        .is_some_and(|rest| rest.starts_with(':'));
    owner == Some(app.as_str()) && tracked
}

/// Whether a live leftover says `argocd.argoproj.io/compare-options:
/// IgnoreExtraneous`: kept, it does not make its app OutOfSync.
fn ignores_extraneous(live: &Value, defaults: ObjectOptions) -> bool {
    object_options_over(live, defaults).is_ok_and(|o| o.ignore_extraneous)
}

pub(super) use crate::model::annotation;

/// Annotation that lets kubesync prune a Namespace or CRD.
pub const PRUNE_ANNOTATION: &str = "kubesync.dev/prune";
