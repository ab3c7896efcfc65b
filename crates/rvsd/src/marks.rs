//! fwmark virtual services (`ipvsadm -A -f MARK`): how a firewall mark reaches rvsd.
//!
//! A packet read from a TUN carries no skb mark, so the mark is told by *where* the packet arrives: each fwmark service
//! gets a TUN of its own, `rvsm<MARK>`, and policy routing steers the marked packets into it
//! (`ip rule add pref 7113 fwmark MARK lookup T`, `ip route add default dev rvsm<MARK> table T`, both families, tagged
//! proto 114 like the rest of rvsd's steering). The mark itself is set by the user in mangle prerouting, as for IPVS,
//! e.g. ports 80 and 443 of a VIP grouped under mark 1:
//!
//! ```text
//! nft add table inet lvs
//! nft add chain inet lvs pre '{ type filter hook prerouting priority mangle; }'
//! nft add rule inet lvs pre ip daddr 198.51.100.100 tcp dport '{ 80, 443 }' meta mark set 1
//! rvsadm -A -f 1 -s rr -p 300
//! ```
//!
//! A worker per such TUN hands every packet to `Director::process_marked` with its mark: new connections go to the
//! fwmark service (then, as IPVS, to an address service), packets of existing ones follow their connection. What
//! the worker writes back is routed on unmarked (no loop). Replies of masq real servers come back through the common
//! reply rule into the main TUN: the out-lookup needs no mark. rvsd does not make the VIP reachable for a fwmark
//! service (there is no address in `-f`): the router routes it to the director (`ip route add VIP/32 via DIRECTOR`).
//! A VIP that is a local address of the director would be delivered locally before any fwmark rule is consulted.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use rvs_core::{Director, Fwmark};
use rvs_io::{Steering, SteeringError, TunDevice};

use crate::dataplane::{VipSet, WorkerStats, random_seed, run_worker};
use crate::xmit::{MethodPaths, MethodTx};

/// First routing table of the mark planes (one each, 7115, 7116, ...; the reply table is 7114).
const FIRST_TABLE: u32 = 7115;

/// The TUN of mark `mark`.
pub fn tun_name(mark: Fwmark) -> String {
    format!("rvsm{mark}")
}

/// One mark's TUN, steering and worker.
#[derive(Debug)]
struct Plane {
    table: u32,
    stop: Arc<AtomicBool>,
    worker: Option<JoinHandle<()>>,
    _tun: TunDevice,
}

/// The mark planes of the fwmark services configured now.
#[derive(Debug, Default)]
pub struct MarkPlanes {
    planes: BTreeMap<Fwmark, Plane>,
}

/// What a plane's worker shares with the others.
#[derive(Debug, Clone)]
pub struct Shared {
    pub director: Arc<Director>,
    pub vips: Arc<VipSet>,
    pub paths: Arc<MethodPaths>,
}

impl MarkPlanes {
    /// Marks with a plane now.
    pub fn marks(&self) -> BTreeSet<Fwmark> {
        self.planes.keys().copied().collect()
    }

    /// Make a plane for every mark of `want` that has none. On error the planes made by this call are removed again.
    pub fn add(
        &mut self,
        want: &BTreeSet<Fwmark>,
        steering: &mut Steering,
        shared: &Shared,
    ) -> Result<(), SteeringError> {
        let mut made = Vec::new();
        for &mark in want {
            if self.planes.contains_key(&mark) {
                continue;
            }
            match self.start(mark, steering, shared) {
                Ok(p) => {
                    self.planes.insert(mark, p);
                    made.push(mark);
                }
                Err(e) => {
                    for m in made {
                        self.stop(m, steering);
                    }
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Remove the planes of marks not in `keep`.
    pub fn retain(&mut self, keep: &BTreeSet<Fwmark>, steering: &mut Steering) {
        let stale: Vec<Fwmark> = self
            .planes
            .keys()
            .filter(|m| !keep.contains(m))
            .copied()
            .collect();
        for m in stale {
            self.stop(m, steering);
        }
    }

    fn free_table(&self) -> u32 {
        let used: BTreeSet<u32> = self.planes.values().map(|p| p.table).collect();
        (FIRST_TABLE..)
            .find(|t| !used.contains(t))
            .unwrap_or(FIRST_TABLE)
    }

    fn start(
        &self,
        mark: Fwmark,
        steering: &mut Steering,
        shared: &Shared,
    ) -> Result<Plane, SteeringError> {
        let name = tun_name(mark);
        let (tun, mut queues) = TunDevice::create(&name, 1).map_err(|e| SteeringError::Device {
            context: format!("creating TUN {name} for fwmark {mark}"),
            source: std::io::Error::other(e.to_string()),
        })?;
        let queue = queues
            .pop()
            .ok_or_else(|| SteeringError::NoSuchInterface(name.clone()))?;
        let idx = rvs_io::sys::ifindex(&name)
            .ok_or_else(|| SteeringError::NoSuchInterface(name.clone()))?;
        let mut nl = rvs_io::netlink::Netlink::new()?;
        nl.link_up(idx, Some(rvs_io::steering::TUN_TXQUEUELEN))?;
        // Marked packets come from anywhere: no reverse-path check on the plane's TUN.
        let _ = rvs_io::sys::write_sysctl(&format!("net/ipv4/conf/{name}/rp_filter"), "0");
        let table = self.free_table();
        steering.add_mark(mark.get(), idx, table)?;
        let stop = Arc::new(AtomicBool::new(false));
        let (s, sh) = (stop.clone(), shared.clone());
        let worker = std::thread::Builder::new()
            .name(format!("rvsd-mark-{mark}"))
            .spawn(move || {
                let st = WorkerStats::default();
                let mut mx = MethodTx::new(Some(sh.paths.clone()));
                let mut q = queue;
                if let Err(e) = rvs_io::PacketIo::enable_link_tx(&mut q) {
                    tracing::warn!(mark = mark.get(), error = %e, "no link socket: route destinations of this mark cannot be served");
                }
                run_worker(
                    usize::MAX,
                    mark,
                    q,
                    &sh.director,
                    &sh.vips,
                    None,
                    &mut mx,
                    &s,
                    &st,
                    random_seed(u64::from(mark.get())),
                );
            })
            .map_err(|e| SteeringError::Device {
                context: format!("starting the worker of fwmark {mark}"),
                source: e,
            })?;
        tracing::info!(mark = mark.get(), tun = %name, table, "fwmark service steered");
        Ok(Plane {
            table,
            stop,
            worker: Some(worker),
            _tun: tun,
        })
    }

    fn stop(&mut self, mark: Fwmark, steering: &mut Steering) {
        if let Some(mut p) = self.planes.remove(&mark) {
            let _ = steering.remove_mark(mark.get(), p.table);
            p.stop.store(true, Ordering::Relaxed);
            if let Some(w) = p.worker.take() {
                let _ = w.join();
            }
        }
    }

    /// Stop every plane (shutdown).
    pub fn stop_all(&mut self, steering: &mut Steering) {
        let all: Vec<Fwmark> = self.planes.keys().copied().collect();
        for m in all {
            self.stop(m, steering);
        }
    }
}
