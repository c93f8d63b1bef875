//! The Application model: kubesync's own `kubesync.dev/v1alpha1` Application and
//! the `argoproj.io/v1alpha1` Application it accepts as input, both mapped onto
//! one [`Application`] type, plus the small value types every other module
//! speaks in ([`AppName`], [`ObjectRef`], [`Manifest`], [`RevisionSpec`], …).
//!
//! This module owns parsing and validation of Application manifests. It does
//! no IO beyond reading the root file in [`load_root`]; it does not know how a
//! source is fetched or rendered.

mod app;
mod appset;
mod argo;
mod duration;
mod error;
pub mod hook;
mod ignore;
mod names;
mod object;
pub mod object_options;
mod project;
mod revision;
pub mod settings;
pub mod yaml;
pub mod yaml_emit;

pub use app::*;
pub use appset::{
    generated_by, is_application_set, AppSetSpec, ApplicationsSync, GeneratedBy,
    APPLICATIONS_SYNC_ANNOTATION, PRESERVE_RESOURCES_ANNOTATION,
};
pub use argo::deep_merge;
pub use duration::{format_duration, parse_duration, DurationError, MAX_DURATION};
pub use error::ModelError;
pub use ignore::IgnoreRule;
pub use names::{validate_dns1123_label, validate_dns1123_subdomain, AppName};
pub use object::{
    annotation, check_metadata, identity, split_api_version, type_name, Manifest, ObjectError,
    ObjectOrigin, ObjectRef,
};
pub use project::{is_app_project, Project, DEFAULT_PROJECT};
pub use revision::RevisionSpec;

/// API group of kubesync's own Application kind.
pub const KUBESYNC_GROUP: &str = "kubesync.dev";
/// `apiVersion` of kubesync's own Application kind.
pub const KUBESYNC_API_VERSION: &str = "kubesync.dev/v1alpha1";
/// `apiVersion` of the Argo CD Application kind accepted as input.
pub const ARGOCD_API_VERSION: &str = "argoproj.io/v1alpha1";
/// Label carried by every object kubesync applies: the owning app's name.
pub const APP_LABEL: &str = "kubesync.dev/app";
/// Annotation carrying the tracking id of an applied object.
pub const TRACKING_ANNOTATION: &str = "kubesync.dev/tracking-id";
/// Annotation that turns syncing of a resource or namespace `off` or to `dry-run`.
pub const SYNC_ANNOTATION: &str = "kubesync.dev/sync";
/// Set (with `kubesync.dev/sync: off`) on a rendered object that carries
/// its namespace gate's label (kube-applier's `LABEL`) with the value
/// `off`; names the label. Only in memory: an object turned off is never
/// sent to the cluster.
pub const OFF_BY_LABEL_ANNOTATION: &str = "kubesync.dev/off-by-label";
/// Annotation naming an Argo CD Application's dependencies (kubesync extension).
pub const DEPENDS_ON_ANNOTATION: &str = "kubesync.dev/depends-on";
/// Annotation overriding an Argo CD Application's tier (kubesync extension).
pub const TIER_ANNOTATION: &str = "kubesync.dev/tier";
/// Annotation on an Application (in git, or on the Application object in
/// the cluster) naming its own completion-signal webhook URL.
pub const NOTIFY_WEBHOOK_ANNOTATION: &str = "kubesync.dev/notify-webhook";
/// Argo CD's sync-wave annotation, honoured on Applications and on objects.
pub const SYNC_WAVE_ANNOTATION: &str = "argocd.argoproj.io/sync-wave";
#[cfg(test)]
mod tests;

/// An Application manifest's [`NOTIFY_WEBHOOK_ANNOTATION`], trimmed (`None`
/// when absent or blank).
pub fn notify_webhook_of(obj: &serde_json::Value) -> Option<String> {
    annotation(obj, NOTIFY_WEBHOOK_ANNOTATION)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}
