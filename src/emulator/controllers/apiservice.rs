//! The aggregator: an APIService becomes `Available` once the Service it
//! names exists (a local APIService, with no service, at once), as the real
//! kube-aggregator reports after its backend answers. The emulator does not
//! proxy the aggregated API itself.

use serde_json::json;

use super::{is_deleting, str_at, write_status, Ctx, Kind, Requeue};

/// The field manager the real aggregator writes status with.
const AGGREGATOR: &str = "kube-apiserver";

pub(super) fn reconcile(ctx: &mut Ctx<'_>, _ns: &str, name: &str) -> Requeue {
    let svc = super::get(ctx, Kind::ApiService, "", name)?;
    if is_deleting(&svc) {
        return None;
    }
    let (available, reason, message) = match (
        str_at(&svc, "/spec/service/namespace"),
        str_at(&svc, "/spec/service/name"),
    ) {
        (Some(ns), Some(service)) => {
            if super::get(ctx, Kind::Service, ns, service).is_some() {
                ("True", "Passed", "all checks passed".to_string())
            } else {
                (
                    "False",
                    "ServiceNotFound",
                    format!("service/{service} in \"{ns}\" is not present"),
                )
            }
        }
        _ => (
            "True",
            "Local",
            "Local APIServices are always available".to_string(),
        ),
    };
    let prev = svc
        .pointer("/status/conditions/0/lastTransitionTime")
        .cloned()
        .filter(|_| str_at(&svc, "/status/conditions/0/status") == Some(available));
    let time = prev.unwrap_or_else(|| {
        json!(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
    });
    let status = json!({"conditions": [{
        "type": "Available",
        "status": available,
        "reason": reason,
        "message": message,
        "lastTransitionTime": time,
    }]});
    write_status(ctx, Kind::ApiService, &svc, status, AGGREGATOR);
    // A missing Service may appear later: look again.
    (available == "False").then(|| std::time::Duration::from_millis(200))
}
