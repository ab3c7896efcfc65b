//! The live view: one self-contained page (HTML, CSS and JS embedded; no external fetch) and the JSON it polls.
//!
//! The page polls `/status.json` every second, derives conn/s, pkt/s and bytes/s from the counters' differences
//! over the server's own clock, keeps the last five minutes of samples and draws them on canvases.

use std::net::IpAddr;

use rvs_core::{ServiceKey, Stats};
use serde_json::{Value, json};

use super::{PathSource as _, Sources, WorkerCounters};

/// The page.
pub const HTML: &str = include_str!("page.html");

/// How ipvsadm -Ln names a service ("TCP  198.51.100.100:80", "FWM  1").
fn service_name(key: &ServiceKey) -> String {
    match *key {
        ServiceKey::Addr {
            protocol,
            addr,
            port,
        } => format!("{} {}", protocol.name(), addr_port(addr, port)),
        ServiceKey::Fwmark { mark, ipv6 } => {
            format!("FWM {mark}{}", if ipv6 { " IPv6" } else { "" })
        }
    }
}

fn addr_port(addr: IpAddr, port: u16) -> String {
    match addr {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

fn stats(s: &Stats) -> Value {
    json!({
        "conns": s.conns,
        "inpkts": s.inpkts,
        "outpkts": s.outpkts,
        "inbytes": s.inbytes,
        "outbytes": s.outbytes,
    })
}

/// The current state as the page reads it.
pub fn status_json(src: &Sources) -> String {
    let t_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let services = src.director.services();
    let health: std::collections::HashMap<(ServiceKey, IpAddr, u16), String> = src
        .health
        .as_ref()
        .map(|h| {
            h.states()
                .into_iter()
                .map(|(k, a, p, s)| ((k, a, p), s))
                .collect()
        })
        .unwrap_or_default();
    let svc: Vec<Value> = services
        .iter()
        .map(|s| {
            let dests: Vec<Value> = s
                .dests
                .iter()
                .map(|d| {
                    let health = health.get(&(s.spec.key, d.spec.addr, d.spec.port));
                    json!({
                        "addr": addr_port(d.spec.addr, d.spec.port),
                        "method": d.spec.method.name(),
                        "weight": d.spec.weight,
                        "active": d.active_conns,
                        "inactive": d.inactive_conns,
                        "overloaded": d.overloaded,
                        "health": health,
                        "stats": stats(&d.stats),
                    })
                })
                .collect();
            json!({
                "name": service_name(&s.spec.key),
                "scheduler": s.spec.scheduler,
                "persistent": s.spec.persistence.map(|p| p.timeout_s),
                "stats": stats(&s.stats),
                "dests": dests,
            })
        })
        .collect();
    let drops: serde_json::Map<String, Value> = src
        .director
        .drop_counters()
        .iter()
        .map(|(r, n)| (r.name().to_owned(), json!(n)))
        .collect();
    let mut rows: Vec<WorkerCounters> = Vec::new();
    src.workers.read(&mut rows);
    for p in &src.paths {
        p.read(&mut rows);
    }
    let sum = |f: fn(&WorkerCounters) -> u64| rows.iter().map(f).sum::<u64>();
    let vrrp = src.vrrp.as_ref().map(|v| v.instances()).unwrap_or_default();
    json!({
        "t": t_ms,
        "vrrp": vrrp,
        "services": svc,
        "drops": drops,
        "dataplane": {
            "received": sum(|c| c.received),
            "forwarded": sum(|c| c.forwarded_in + c.forwarded_out),
            "passed": sum(|c| c.passed),
            "dropped": sum(|c| c.dropped),
        },
    })
    .to_string()
}
