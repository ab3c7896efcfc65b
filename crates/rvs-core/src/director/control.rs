//! The director's control side: configuration changes (applied on a copy of the service table, published
//! at once) and the snapshots the control plane lists (services, connections, timeouts, counters).

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::config::{ConfigError, ConfigOp, ServiceConfig, Timeouts};
use crate::conn::{ConnAddr, ConnTable};
use crate::service::{Protocol, ServiceKey};
use crate::snapshot::{ConnSnapshot, DestSnapshot, ServiceSnapshot};
use crate::table::{Effect, Pending, Service};
use crate::tcp::TcpState;
use crate::time::Timestamp;
use crate::verdict::{DropCounters, DropReason};

use super::{Director, MAX_TIMEOUT_S, now32, release};

/// Bytes used by the connection table (see [`Director::memory`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryUsage {
    /// Tracked connections (both families).
    pub conns: usize,
    /// Heap + inline bytes of the connection tables (slabs, indexes, wheels, shard headers).
    pub table_bytes: usize,
}

impl Director {
    /// Applies one configuration change.
    pub fn apply(&self, op: ConfigOp) -> Result<(), ConfigError> {
        self.apply_batch(vec![op]).map_err(|(_, e)| e)
    }

    /// Applies several changes atomically: validated on a copy of the service table, then
    /// published at once. On error nothing changed; the index says which op failed.
    pub fn apply_batch(&self, ops: Vec<ConfigOp>) -> Result<(), (usize, ConfigError)> {
        let mut last_id = self.last_service_id.lock();
        let current = self.services.load_full();
        let mut pending = Pending::new((*current).clone(), *last_id);
        for (i, op) in ops.into_iter().enumerate() {
            if let ConfigOp::SetTimeouts(t) = &op {
                for v in [t.tcp_s, t.tcp_fin_s, t.udp_s] {
                    if v > MAX_TIMEOUT_S {
                        return Err((
                            i,
                            ConfigError::InvalidArgument(format!("timeout {v} s too large")),
                        ));
                    }
                }
            }
            pending.apply(op).map_err(|e| (i, e))?;
        }
        // Commit: destination edits and scheduler updates, then the director's own effects.
        *last_id = pending.last_id();
        let rest = pending.commit_services();
        let mut deleted = Vec::new();
        for e in rest {
            match e {
                Effect::Zero(Some(svc)) => {
                    svc.shared.stats.zero();
                    for d in &svc.dests {
                        d.stats.zero();
                    }
                }
                Effect::Zero(None) => {
                    for svc in pending.table.services_unordered() {
                        svc.shared.stats.zero();
                        for d in &svc.dests {
                            d.stats.zero();
                        }
                    }
                }
                Effect::Timeouts(t) => {
                    if t.tcp_s != 0 {
                        self.tcp_timeouts[TcpState::Established as usize]
                            .store(t.tcp_s * 1000, Ordering::Relaxed);
                    }
                    if t.tcp_fin_s != 0 {
                        self.tcp_timeouts[TcpState::FinWait as usize]
                            .store(t.tcp_fin_s * 1000, Ordering::Relaxed);
                    }
                    if t.udp_s != 0 {
                        self.udp_timeout.store(t.udp_s * 1000, Ordering::Relaxed);
                    }
                }
                Effect::DeleteService(shared) => {
                    shared.deleted.store(true, Ordering::SeqCst);
                    deleted.push(shared);
                }
                Effect::EditDest(..) | Effect::RemoveDest(_) => {}
            }
        }
        // The VIP filter stays a superset of the published VIPs: new ones counted before, gone
        // ones uncounted after (vips.rs).
        for &vip in &pending.vips_added {
            self.vips.add(vip);
        }
        self.services.store(Arc::new(pending.table));
        for &vip in &pending.vips_removed {
            self.vips.remove(vip);
        }
        // A deleted service's connections and templates go now (control-plane walk).
        for shared in deleted {
            let id = shared.id;
            self.purge(&self.v4, id);
            self.purge(&self.v6, id);
            self.templates.purge_service(id);
        }
        Ok(())
    }

    fn purge<A: ConnAddr>(&self, tbl: &ConnTable<A>, svc_id: u64) {
        for shard in tbl.shards() {
            shard
                .lock()
                .remove_where(|c| c.dest.svc.id == svc_id, release);
        }
    }

    /// Every virtual service with its destinations, counters and rates, in configuration order.
    pub fn services(&self) -> Vec<ServiceSnapshot> {
        let table = self.services.load();
        table.services().map(|svc| snapshot(svc)).collect()
    }

    /// One service by key (a lookup: its cost is that service's, not the table's).
    pub fn service(&self, key: &ServiceKey) -> Option<ServiceSnapshot> {
        self.services.load().get(key).map(|svc| snapshot(svc))
    }

    /// One service's configuration, without counters: what a change to it replaces.
    pub fn service_config(&self, key: &ServiceKey) -> Option<ServiceConfig> {
        self.services.load().get(key).map(|svc| config_of(svc))
    }

    /// Every service's configuration, without counters, in configuration order.
    pub fn service_configs(&self) -> Vec<ServiceConfig> {
        let table = self.services.load();
        table.services().map(|svc| config_of(svc)).collect()
    }

    /// Every tracked connection and persistence template (`ipvsadm -L -c`).
    pub fn connections(&self, now: Timestamp) -> Vec<ConnSnapshot> {
        let mut out = Vec::new();
        let n = now32(now);
        self.snapshot_conns(&self.v4, n, &mut out);
        self.snapshot_conns(&self.v6, n, &mut out);
        self.templates.for_each(|t| {
            let Some(protocol) = Protocol::from_number(t.key.proto) else {
                return;
            };
            out.push(ConnSnapshot {
                protocol,
                caddr: t.key.caddr,
                cport: 0,
                vaddr: t.key.vaddr,
                vport: t.key.vport,
                daddr: t.dest.addr(),
                dport: t.dest.port(),
                state: Cow::Borrowed(if protocol == Protocol::Udp {
                    "UDP"
                } else {
                    "NONE"
                }),
                expires_in_ms: t.deadline().saturating_sub(now.0),
                template: true,
            });
        });
        out
    }

    fn snapshot_conns<A: ConnAddr>(
        &self,
        tbl: &ConnTable<A>,
        now: u32,
        out: &mut Vec<ConnSnapshot>,
    ) {
        for shard in tbl.shards() {
            shard.lock().for_each(|c| {
                let Some(protocol) = Protocol::from_number(c.proto) else {
                    return;
                };
                let left = c.deadline().wrapping_sub(now) as i32;
                out.push(ConnSnapshot {
                    protocol,
                    caddr: c.caddr.to_ip(),
                    cport: c.cport,
                    vaddr: c.vaddr.to_ip(),
                    vport: c.vport,
                    daddr: c.daddr.to_ip(),
                    dport: c.dport,
                    state: Cow::Borrowed(match protocol {
                        Protocol::Udp => "UDP",
                        _ => TcpState::from_u8(c.state).name(),
                    }),
                    expires_in_ms: u64::try_from(left).unwrap_or(0),
                    template: false,
                });
            });
        }
    }

    /// Current protocol timeouts (`ipvsadm -L --timeout`).
    pub fn timeouts(&self) -> Timeouts {
        Timeouts {
            tcp_s: self.tcp_timeouts[TcpState::Established as usize].load(Ordering::Relaxed) / 1000,
            tcp_fin_s: self.tcp_timeouts[TcpState::FinWait as usize].load(Ordering::Relaxed) / 1000,
            udp_s: self.udp_timeout.load(Ordering::Relaxed) / 1000,
        }
    }

    /// Expires due connections and templates. Cost is proportional to what is due (timer wheel),
    /// never to the table size. Returns how many entries expired.
    pub fn expire(&self, now: Timestamp) -> usize {
        let n = now32(now);
        let mut total = 0;
        total += expire_table(&self.v4, n);
        total += expire_table(&self.v6, n);
        total + self.templates.expire(now.0)
    }

    /// Updates rate estimates; call every 2 seconds (as IPVS's estimator).
    pub fn estimate_rates(&self, now: Timestamp) {
        let table = self.services.load();
        for svc in table.services_unordered() {
            svc.shared.stats.estimate(now);
            for d in &svc.dests {
                d.stats.estimate(now);
            }
        }
    }

    /// Dropped packets per reason.
    pub fn drop_counters(&self) -> DropCounters {
        let mut a = [0u64; DropReason::ALL.len()];
        for s in self.drops.iter() {
            for (i, c) in s.0.iter().enumerate() {
                a[i] = a[i].wrapping_add(c.load(Ordering::Relaxed));
            }
        }
        DropCounters::from_array(a)
    }

    /// Tracked connections (templates not included).
    pub fn conn_count(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    /// Live persistence templates.
    pub fn template_count(&self) -> usize {
        self.templates.len()
    }

    /// Memory held by the connection tables.
    pub fn memory(&self) -> MemoryUsage {
        MemoryUsage {
            conns: self.conn_count(),
            table_bytes: self.v4.heap_bytes() + self.v6.heap_bytes(),
        }
    }
}

/// Entries visited per shard-lock hold in `expire` (bounds the pause a worker can see).
const EXPIRE_BUDGET: usize = 4096;

fn expire_table<A: ConnAddr>(tbl: &ConnTable<A>, now: u32) -> usize {
    let mut total = 0;
    for shard in tbl.shards() {
        loop {
            let (n, done) = shard.lock().expire(now, EXPIRE_BUDGET, release);
            total += n;
            if done {
                break;
            }
        }
    }
    total
}

fn snapshot(svc: &Service) -> ServiceSnapshot {
    ServiceSnapshot {
        spec: svc.spec.clone(),
        stats: svc.shared.stats.stats(),
        rates: svc.shared.stats.rates(),
        dests: svc
            .dests
            .iter()
            .map(|d| DestSnapshot {
                spec: d.spec(),
                active_conns: d.active_conns(),
                inactive_conns: d.inactive_conns(),
                persistent_conns: d.persistent_conns(),
                overloaded: d.is_overloaded(),
                stats: d.stats(),
                rates: d.rates(),
            })
            .collect(),
    }
}

fn config_of(svc: &Service) -> ServiceConfig {
    (
        svc.spec.clone(),
        svc.dests.iter().map(|d| d.spec()).collect(),
    )
}
