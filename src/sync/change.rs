//! One entry of the change set: what a sync did to one object, and why.
//!
//! The why is typed — a [`SkipReason`] for an object left alone, a [`Note`]
//! on an otherwise plain write, a [`ChangeError`] for a failure — and its
//! `Display` is the sentence users read. Questions about a change are
//! answered by one predicate each ([`Change::wrote`],
//! [`Change::holds_desired`], [`Change::attempted`]); no caller inspects
//! message text. Owns no IO and no policy: `engine` decides, this records.

use std::fmt;

use serde::{Serialize, Serializer};

use super::failure::{ApiError, SyncFailure};
use super::prune::PRUNE_ANNOTATION;
use crate::model::hook::{DeletePolicy, Excluded, HookPhase};
use crate::model::{AppName, ObjectRef};

/// What happened to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Action {
    Created,
    Configured,
    Unchanged,
    Pruned,
    /// Left alone; the [`SkipReason`] says why.
    Skipped,
    Failed,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Created => "created",
            Action::Configured => "configured",
            Action::Unchanged => "unchanged",
            Action::Pruned => "pruned",
            Action::Skipped => "skipped",
            Action::Failed => "failed",
        })
    }
}

/// Why an object was left alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// Desired, and `kubesync.dev/sync: off` in git.
    SyncOff,
    /// Desired, and `kubesync.dev/sync: off` on the live object.
    SyncOffOnLive,
    /// Desired, in a namespace that is `kubesync.dev/sync: off`.
    SyncOffOnNamespace,
    /// Desired, and labelled `off` in git with its namespace gate's label
    /// (kube-applier's per-object `LABEL=off`).
    LabelOff { label: String },
    /// Desired, and the live object is labelled `off` with the gate's label.
    LabelOffOnLive { label: String },
    /// Desired, not attempted: an object of an earlier group failed.
    AfterFailure,
    /// Desired, not attempted: the earlier sync waves did not get ready.
    WaveNotHealthy,
    /// A leftover, kept: the sync failed (never prune after a failure).
    SyncFailed,
    /// A leftover, kept: prune is off.
    PruneOff,
    /// A leftover that git had turned off: kept and no longer tracked.
    Released,
    /// A leftover another app now renders: kept, and that app owns it.
    HandedOver { to: AppName },
    /// A leftover, kept while an app of the tree failed to render (it may
    /// render the object now).
    Unrendered { app: AppName },
    /// A leftover in a namespace that is `kubesync.dev/sync: off`.
    KeptSyncOffNamespace,
    /// A leftover whose live object is `kubesync.dev/sync: off`.
    KeptSyncOff,
    /// A leftover whose live object is labelled `off` with the gate's label.
    KeptLabelOff { label: String },
    /// A leftover whose live object this app did not apply.
    NotOwned,
    /// A leftover Namespace or CRD (deleting it cascades) without
    /// `kubesync.dev/prune: allow`.
    Cascading { kind: String },
    /// A leftover whose live object says `argocd.argoproj.io/sync-options:
    /// Prune=false`.
    PruneDisabled,
    /// An object of an app removed with the resources finalizer, kept:
    /// `argocd.argoproj.io/sync-options: Delete=false`.
    DeleteDisabled,
    /// Rendered, never applied: a `Skip` hook, a Helm test hook, a hook
    /// phase kubesync does not run.
    Excluded(Excluded),
    /// A hook that did not run in this sync, and why.
    HookNotRun(HookNotRun),
}

/// Why a hook did not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookNotRun {
    /// Every object of the app was already as git wants it: a sync with
    /// nothing to apply runs no hooks (kubesync syncs on change; Argo CD
    /// would run them on every sync).
    NothingToSync,
    /// A dry run runs no hooks.
    DryRun,
    /// The sync failed before this hook's phase.
    SyncFailed,
    /// A SyncFail hook: the sync did not fail.
    SyncSucceeded,
    /// A PostSync hook: the app did not get Healthy.
    NotHealthy,
}

impl fmt::Display for HookNotRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HookNotRun::NothingToSync => {
                "hook not run: nothing to sync (every object is as git wants it)"
            }
            HookNotRun::DryRun => "hook not run: dry run",
            HookNotRun::SyncFailed => "hook not run: the sync failed before its phase",
            HookNotRun::SyncSucceeded => "hook not run: the sync did not fail",
            HookNotRun::NotHealthy => "hook not run: the application did not get Healthy",
        })
    }
}

impl SkipReason {
    /// Whether the object is as git wants it although it was skipped.
    pub fn in_sync(&self) -> bool {
        !matches!(
            self,
            SkipReason::AfterFailure
                | SkipReason::WaveNotHealthy
                | SkipReason::SyncFailed
                | SkipReason::PruneOff
                | SkipReason::Unrendered { .. }
                | SkipReason::PruneDisabled
        )
    }

    /// Whether the object stays in the app's inventory (pruned later, once
    /// nothing holds it back); released and handed-over objects leave it.
    pub fn keeps_tracking(&self) -> bool {
        !matches!(self, SkipReason::Released | SkipReason::HandedOver { .. })
    }

    /// A stable machine name for JSON output: `handedOver`.
    pub fn tag(&self) -> &'static str {
        match self {
            SkipReason::SyncOff => "syncOff",
            SkipReason::SyncOffOnLive => "syncOffOnLive",
            SkipReason::SyncOffOnNamespace => "syncOffOnNamespace",
            SkipReason::LabelOff { .. } => "labelOff",
            SkipReason::LabelOffOnLive { .. } => "labelOffOnLive",
            SkipReason::KeptLabelOff { .. } => "keptLabelOff",
            SkipReason::AfterFailure => "afterFailure",
            SkipReason::WaveNotHealthy => "waveNotHealthy",
            SkipReason::SyncFailed => "syncFailed",
            SkipReason::PruneOff => "pruneOff",
            SkipReason::Released => "released",
            SkipReason::HandedOver { .. } => "handedOver",
            SkipReason::Unrendered { .. } => "unrendered",
            SkipReason::KeptSyncOffNamespace => "keptSyncOffNamespace",
            SkipReason::KeptSyncOff => "keptSyncOff",
            SkipReason::NotOwned => "notOwned",
            SkipReason::Cascading { .. } => "cascading",
            SkipReason::PruneDisabled => "pruneDisabled",
            SkipReason::DeleteDisabled => "deleteDisabled",
            SkipReason::Excluded(Excluded::SkipAnnotation) => "hookSkip",
            SkipReason::Excluded(Excluded::HelmTest) => "helmTestHook",
            SkipReason::Excluded(Excluded::UnsupportedHook(_)) => "unsupportedHook",
            SkipReason::Excluded(Excluded::DeleteHook { .. }) => "deleteHook",
            SkipReason::HookNotRun(HookNotRun::NothingToSync) => "nothingToSync",
            SkipReason::HookNotRun(HookNotRun::DryRun) => "hookDryRun",
            SkipReason::HookNotRun(HookNotRun::SyncFailed) => "hookAfterFailure",
            SkipReason::HookNotRun(HookNotRun::SyncSucceeded) => "syncSucceeded",
            SkipReason::HookNotRun(HookNotRun::NotHealthy) => "hookNotHealthy",
        }
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const GONE: &str = "no longer in git;";
        match self {
            SkipReason::SyncOff => f.write_str("kubesync.dev/sync: off"),
            SkipReason::SyncOffOnLive => f.write_str("kubesync.dev/sync: off (on the live object)"),
            SkipReason::SyncOffOnNamespace => {
                f.write_str("kubesync.dev/sync: off (on its namespace)")
            }
            SkipReason::AfterFailure => f.write_str("not attempted: an earlier object failed"),
            SkipReason::WaveNotHealthy => {
                f.write_str("not attempted: an earlier sync wave is not healthy")
            }
            SkipReason::SyncFailed => write!(f, "{GONE} not pruned because the sync failed"),
            SkipReason::PruneOff => write!(f, "{GONE} prune is off"),
            SkipReason::Released => write!(
                f,
                "{GONE} kept and released: it was kubesync.dev/sync: off in git"
            ),
            SkipReason::HandedOver { to } => {
                write!(f, "no longer in this app; kept: now rendered by \"{to}\"")
            }
            SkipReason::Unrendered { app } => write!(
                f,
                "{GONE} not pruned: application \"{app}\" failed to render and may now render it (pruned once every app renders)"
            ),
            SkipReason::KeptSyncOffNamespace => write!(
                f,
                "{GONE} kept: its namespace is kubesync.dev/sync: off"
            ),
            SkipReason::KeptSyncOff => write!(f, "{GONE} kept: kubesync.dev/sync: off"),
            SkipReason::LabelOff { label } => write!(f, "labelled {label}=off"),
            SkipReason::LabelOffOnLive { label } => {
                write!(f, "labelled {label}=off (on the live object)")
            }
            SkipReason::KeptLabelOff { label } => {
                write!(f, "{GONE} kept: labelled {label}=off")
            }
            SkipReason::NotOwned => write!(f, "{GONE} kept: not applied by this app"),
            SkipReason::Cascading { kind } => write!(
                f,
                "{GONE} kept: deleting a {kind} deletes everything in it (annotate it {PRUNE_ANNOTATION}=allow to let kubesync prune it)"
            ),
            SkipReason::PruneDisabled => write!(
                f,
                "{GONE} kept: argocd.argoproj.io/sync-options: Prune=false (delete it by hand when you mean to)"
            ),
            SkipReason::DeleteDisabled => f.write_str(
                "its application was removed; kept: argocd.argoproj.io/sync-options: Delete=false",
            ),
            SkipReason::Excluded(e) => write!(f, "{e}"),
            SkipReason::HookNotRun(n) => write!(f, "{n}"),
        }
    }
}

/// A remark on a write that did happen (or would, in a dry run).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Note {
    /// A dry-run create into a namespace the same run creates first.
    WithItsNamespace,
    /// A dry-run create of a custom resource whose CRD the run creates first.
    AfterItsCrd,
    /// A leftover that was already deleted.
    AlreadyGone,
    /// A leftover a dry run would delete.
    WouldBePruned,
    /// A hook that ran to success; `deleted` by its HookSucceeded policy.
    HookSucceeded { deleted: bool },
    /// Written with a replace (`Replace=true`); `recreated` when the
    /// replace was refused and `Force=true` deleted and created it again.
    Replaced { recreated: bool },
}

impl Note {
    pub fn tag(self) -> &'static str {
        match self {
            Note::WithItsNamespace => "withItsNamespace",
            Note::AfterItsCrd => "afterItsCrd",
            Note::AlreadyGone => "alreadyGone",
            Note::WouldBePruned => "wouldBePruned",
            Note::HookSucceeded { .. } => "hookSucceeded",
            Note::Replaced { recreated: false } => "replaced",
            Note::Replaced { recreated: true } => "recreated",
        }
    }
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Note::WithItsNamespace => "would be created (with its namespace)",
            Note::AfterItsCrd => "would be created (its CRD is created first)",
            Note::AlreadyGone => "already gone",
            Note::WouldBePruned => "would be pruned",
            Note::HookSucceeded { deleted: false } => "hook succeeded",
            Note::HookSucceeded { deleted: true } => "hook succeeded; deleted (HookSucceeded)",
            Note::Replaced { recreated: false } => "replaced (Replace=true)",
            Note::Replaced { recreated: true } => {
                "deleted and created again (Replace=true, Force=true: the replace was refused)"
            }
        })
    }
}

/// Why a change failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeError {
    /// A cluster call about the object failed (apply, read, CRD wait); the
    /// text is the cluster error's, which names the object, with the
    /// server's status code and reason when it answered.
    Cluster(ApiError),
    /// Deleting a leftover failed.
    Prune(ApiError),
    /// A hook failed (or did not finish in time); `deleted` by its
    /// HookFailed policy.
    Hook { message: String, deleted: bool },
}

impl ChangeError {
    pub fn tag(&self) -> &'static str {
        match self {
            ChangeError::Cluster(_) => "clusterError",
            ChangeError::Prune(_) => "pruneFailed",
            ChangeError::Hook { .. } => "hookFailed",
        }
    }
}

impl fmt::Display for ChangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChangeError::Cluster(e) => write!(f, "{e}"),
            ChangeError::Prune(m) => write!(f, "prune failed: {m}"),
            ChangeError::Hook { message, deleted } => {
                write!(f, "hook failed: {message}")?;
                if *deleted {
                    write!(f, "; deleted ({})", DeletePolicy::HookFailed)?;
                }
                Ok(())
            }
        }
    }
}

/// One entry of the change set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub object: ObjectRef,
    pub action: Action,
    /// Whether the write was a server-side dry run (nothing persisted).
    pub dry_run: bool,
    /// Why it was skipped (only with [`Action::Skipped`]).
    pub reason: Option<SkipReason>,
    /// A remark on a create or prune.
    pub note: Option<Note>,
    /// Why it failed (only with [`Action::Failed`]).
    pub error: Option<ChangeError>,
    /// Whether the object matches git after this sync (false for a dry-run
    /// create/configure, a failure, or an extra object left unpruned).
    pub in_sync: bool,
    /// The phase, when the object is a resource hook (never in the
    /// inventory, never pruned).
    pub hook: Option<HookPhase>,
}

impl Change {
    /// A create, configure, unchanged or prune (really, or as a dry run).
    pub fn done(object: &ObjectRef, action: Action, dry_run: bool) -> Self {
        Change {
            object: object.clone(),
            action,
            dry_run,
            reason: None,
            note: None,
            error: None,
            in_sync: !dry_run || action == Action::Unchanged,
            hook: None,
        }
    }

    /// Marks the change as a hook's, in `phase`.
    pub fn in_hook(mut self, phase: HookPhase) -> Self {
        self.hook = Some(phase);
        self
    }

    /// A leftover that was already gone: nothing to delete, and in sync.
    pub fn gone(object: &ObjectRef, dry_run: bool) -> Self {
        Change {
            in_sync: true,
            ..Change::done(object, Action::Pruned, dry_run).noted(Note::AlreadyGone)
        }
    }

    /// Adds a remark.
    pub fn noted(mut self, note: Note) -> Self {
        self.note = Some(note);
        self
    }

    pub fn skipped(object: &ObjectRef, dry_run: bool, reason: SkipReason) -> Self {
        Change {
            in_sync: reason.in_sync(),
            reason: Some(reason),
            ..Change::done(object, Action::Skipped, dry_run)
        }
    }

    pub fn failed(object: &ObjectRef, dry_run: bool, error: ChangeError) -> Self {
        Change {
            in_sync: false,
            error: Some(error),
            ..Change::done(object, Action::Failed, dry_run)
        }
    }

    /// Changed the cluster: a real create, configure or prune.
    pub fn wrote(&self) -> bool {
        !self.dry_run
            && matches!(
                self.action,
                Action::Created | Action::Configured | Action::Pruned
            )
    }

    /// The cluster now holds the desired object (really written, or already
    /// in sync): the objects whose health is waited for.
    pub fn holds_desired(&self) -> bool {
        !self.dry_run
            && matches!(
                self.action,
                Action::Created | Action::Configured | Action::Unchanged
            )
    }

    /// A real attempt was made on the object, whatever came of it (a skip
    /// or a dry run is none).
    pub fn attempted(&self) -> bool {
        !self.dry_run && self.action != Action::Skipped
    }

    pub fn is_failure(&self) -> bool {
        self.action == Action::Failed
    }

    /// This change stops the app's sync: nothing after it is applied and
    /// nothing is pruned (a failure, or a sync wave that never got ready).
    pub fn halts(&self) -> bool {
        self.is_failure() || self.reason == Some(SkipReason::WaveNotHealthy)
    }

    /// The sentence users read: why it was skipped, failed, or the remark;
    /// empty for a plain write.
    pub fn message(&self) -> String {
        if let Some(r) = &self.reason {
            r.to_string()
        } else if let Some(e) = &self.error {
            e.to_string()
        } else {
            self.note.map(|n| n.to_string()).unwrap_or_default()
        }
    }

    /// The machine name of [`Change::message`]'s cause, if any.
    pub fn reason_tag(&self) -> Option<&'static str> {
        match (&self.reason, &self.error, self.note) {
            (Some(r), _, _) => Some(r.tag()),
            (_, Some(e), _) => Some(e.tag()),
            (_, _, Some(n)) => Some(n.tag()),
            _ => None,
        }
    }

    /// The failure as an app's one-line message, naming the object.
    pub fn failure(&self) -> Option<String> {
        self.sync_failure().map(|f| f.to_string())
    }

    /// The failure as the app's sync failure.
    pub fn sync_failure(&self) -> Option<SyncFailure> {
        Some(SyncFailure::Object {
            object: self.object.clone(),
            error: self.error.clone()?,
        })
    }
}

/// On the wire (`-o json`): `message` is the reason's sentence, `reason` its
/// machine name; both absent for a plain write; `hook` the phase of a
/// resource hook.
impl Serialize for Change {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Wire<'a> {
            object: &'a ObjectRef,
            action: Action,
            dry_run: bool,
            #[serde(skip_serializing_if = "String::is_empty")]
            message: String,
            #[serde(skip_serializing_if = "Option::is_none")]
            reason: Option<&'static str>,
            in_sync: bool,
            #[serde(skip_serializing_if = "Option::is_none")]
            hook: Option<HookPhase>,
        }
        Wire {
            object: &self.object,
            action: self.action,
            dry_run: self.dry_run,
            message: self.message(),
            reason: self.reason_tag(),
            in_sync: self.in_sync,
            hook: self.hook,
        }
        .serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cm() -> ObjectRef {
        ObjectRef {
            group: String::new(),
            version: "v1".into(),
            kind: "ConfigMap".into(),
            namespace: Some("web".into()),
            name: "conf".into(),
        }
    }

    #[test]
    fn json_keeps_the_message_and_adds_a_reason_tag() {
        let to = AppName::new("b").unwrap();
        let c = Change::skipped(&cm(), false, SkipReason::HandedOver { to });
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(
            v["message"],
            "no longer in this app; kept: now rendered by \"b\""
        );
        assert_eq!(v["reason"], "handedOver");
        assert_eq!(v["inSync"], true);
        let plain = serde_json::to_value(Change::done(&cm(), Action::Created, false)).unwrap();
        assert!(plain.get("message").is_none() && plain.get("reason").is_none());
    }

    #[test]
    fn predicates_answer_one_question_each() {
        let real = Change::done(&cm(), Action::Created, false);
        let dry = Change::done(&cm(), Action::Created, true);
        let same = Change::done(&cm(), Action::Unchanged, false);
        let pruned = Change::done(&cm(), Action::Pruned, false);
        let failed = Change::failed(&cm(), false, ChangeError::Cluster("x".into()));
        let off = Change::skipped(&cm(), false, SkipReason::SyncOff);
        let cases = [
            // (change, wrote, holds_desired, attempted, in_sync)
            (&real, true, true, true, true),
            (&dry, false, false, false, false),
            (&same, false, true, true, true),
            (&pruned, true, false, true, true),
            (&failed, false, false, true, false),
            (&off, false, false, false, true),
        ];
        for (c, wrote, holds, attempted, in_sync) in cases {
            assert_eq!(c.wrote(), wrote, "wrote {c:?}");
            assert_eq!(c.holds_desired(), holds, "holds_desired {c:?}");
            assert_eq!(c.attempted(), attempted, "attempted {c:?}");
            assert_eq!(c.in_sync, in_sync, "in_sync {c:?}");
        }
    }

    #[test]
    fn a_prune_failure_names_its_object() {
        let c = Change::failed(&cm(), false, ChangeError::Prune("boom".into()));
        assert_eq!(c.message(), "prune failed: boom");
        assert_eq!(
            c.failure().unwrap(),
            "ConfigMap web/conf: prune failed: boom"
        );
    }
}
