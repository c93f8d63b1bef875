//! The volume binder: every PersistentVolumeClaim binds at once to a volume
//! named `pvc-<uid>` (set in `spec.volumeName`, with the binder's
//! annotations) and reports `Bound` with its access modes and requested
//! capacity. No PersistentVolume object is written: the emulator does not
//! serve that type.

use serde_json::{json, Map, Value};

use super::{is_deleting, str_at, uid_of, write_status, Ctx, Kind, Requeue, CONTROLLER_MANAGER};

pub(super) fn reconcile(ctx: &mut Ctx<'_>, ns: &str, name: &str) -> Requeue {
    let mut pvc = super::get(ctx, Kind::Pvc, ns, name)?;
    if is_deleting(&pvc) || str_at(&pvc, "/status/phase") == Some("Bound") {
        return None;
    }
    if str_at(&pvc, "/spec/volumeName").is_none_or(str::is_empty) {
        let volume = format!("pvc-{}", uid_of(&pvc));
        super::merge_patch(
            ctx,
            Kind::Pvc,
            ns,
            name,
            json!({
                "metadata": {"annotations": {
                    "pv.kubernetes.io/bind-completed": "yes",
                    "pv.kubernetes.io/bound-by-controller": "yes",
                }},
                "spec": {"volumeName": volume},
            }),
            CONTROLLER_MANAGER,
        );
        pvc = super::get(ctx, Kind::Pvc, ns, name)?;
    }
    let mut status = Map::new();
    status.insert("phase".into(), json!("Bound"));
    if let Some(modes) = pvc.pointer("/spec/accessModes") {
        status.insert("accessModes".into(), modes.clone());
    }
    if let Some(storage) = pvc.pointer("/spec/resources/requests/storage") {
        status.insert("capacity".into(), json!({"storage": storage}));
    }
    write_status(
        ctx,
        Kind::Pvc,
        &pvc,
        Value::Object(status),
        CONTROLLER_MANAGER,
    );
    None
}
