//! The load-balancer controller: a `LoadBalancer` Service gets the lowest
//! free address of [`SimulationConfig::lb_ip_pool`] in
//! `status.loadBalancer.ingress`; the address is released when the Service
//! is deleted or changes type. An exhausted pool leaves the Service pending,
//! as a real cluster without capacity would.
//!
//! [`SimulationConfig::lb_ip_pool`]: super::SimulationConfig::lb_ip_pool

use std::net::Ipv4Addr;

use serde_json::{json, Value};

use crate::emulator::util::obj_mut;

use super::{is_deleting, str_at, write_status, Ctx, Kind, Requeue, CLOUD_CONTROLLER};

pub(super) fn reconcile(ctx: &mut Ctx<'_>, ns: &str, name: &str) -> Requeue {
    let key = (ns.to_string(), name.to_string());
    let Some(svc) = super::get(ctx, Kind::Service, ns, name) else {
        ctx.state.lb_ips.remove(&key);
        return None;
    };
    if is_deleting(&svc) {
        return None;
    }
    let is_lb = str_at(&svc, "/spec/type") == Some("LoadBalancer");
    if !is_lb {
        ctx.state.lb_ips.remove(&key);
        let has_ingress = svc
            .pointer("/status/loadBalancer/ingress")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty());
        if has_ingress {
            let mut status = svc.get("status").cloned().unwrap_or(json!({}));
            obj_mut(&mut status).insert("loadBalancer".into(), json!({}));
            write_status(ctx, Kind::Service, &svc, status, CLOUD_CONTROLLER);
        }
        return None;
    }
    let shown: Option<Ipv4Addr> =
        str_at(&svc, "/status/loadBalancer/ingress/0/ip").and_then(|ip| ip.parse().ok());
    let ip = match ctx.state.lb_ips.get(&key) {
        Some(ip) => *ip,
        None => {
            let taken: Vec<Ipv4Addr> = ctx.state.lb_ips.values().copied().collect();
            let adopt = shown.filter(|ip| !taken.contains(ip));
            let free = adopt.or_else(|| {
                ctx.config
                    .lb_ip_pool
                    .iter()
                    .find(|ip| !taken.contains(ip))
                    .copied()
            });
            match free {
                Some(ip) => {
                    ctx.state.lb_ips.insert(key, ip);
                    ip
                }
                None => {
                    tracing::warn!(
                        namespace = ns,
                        service = name,
                        "simulation: load-balancer pool exhausted"
                    );
                    return None;
                }
            }
        }
    };
    let mut status = svc.get("status").cloned().unwrap_or(json!({}));
    obj_mut(&mut status).insert(
        "loadBalancer".into(),
        json!({"ingress": [{"ip": ip.to_string(), "ipMode": "VIP"}]}),
    );
    write_status(ctx, Kind::Service, &svc, status, CLOUD_CONTROLLER);
    None
}
