//! The virtual-service table: an immutable snapshot swapped atomically (RCU via arc-swap) on every
//! configuration change. Scheduler state lives behind a per-service mutex shared by every version
//! of the service.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;

use foldhash::fast::FixedState;
use parking_lot::Mutex;

use crate::config::{ConfigError, ConfigOp, TimeoutUpdate};
use crate::dest::{Destination, ServiceShared};
use crate::sched::{SchedFlags, SchedInput, Scheduler, new_scheduler};
use crate::service::{DestKey, DestSpec, ForwardMethod, Fwmark, ServiceKey, ServiceSpec, Weight};
use crate::shards::ShardedMap;

/// Scheduler plus the destination list it was last updated with (updated together, so an index
/// it returns always refers to this list).
#[derive(Debug)]
pub(crate) struct SchedState {
    sched: Box<dyn Scheduler>,
    dests: Vec<Arc<Destination>>,
}

impl SchedState {
    pub(crate) fn schedule(&mut self, input: &SchedInput) -> Option<Arc<Destination>> {
        let i = self.sched.schedule(&self.dests, input)?;
        self.dests.get(i).cloned()
    }

    fn update(&mut self, dests: Vec<Arc<Destination>>) {
        self.sched.update(&dests);
        self.dests = dests;
    }
}

/// One version of a virtual service.
#[derive(Debug)]
pub(crate) struct Service {
    pub(crate) spec: ServiceSpec,
    pub(crate) shared: Arc<ServiceShared>,
    pub(crate) dests: Vec<Arc<Destination>>,
    pub(crate) sched: Arc<Mutex<SchedState>>,
    /// Persistence netmask as raw bits (v4 in the low 32 bits), precomputed.
    pub(crate) mask: Option<u128>,
    pub(crate) persist_ms: u64,
}

impl Service {
    /// The real server with this identity ([`DestKey`]: address and port).
    fn find_dest(&self, key: DestKey) -> Option<usize> {
        self.dests
            .iter()
            .position(|d| d.addr() == key.addr && d.port() == key.port)
    }
}

/// Key of the address index: (protocol number, VIP, port).
pub(crate) type AddrKey = (u8, IpAddr, u16);

/// One immutable version of the whole service table. Its maps are sharded (shards.rs): a batch's
/// copy shares every shard it does not write, so a change costs what it changes.
#[derive(Debug, Default, Clone)]
pub(crate) struct ServiceTable {
    pub(crate) by_addr: ShardedMap<AddrKey, Arc<Service>>,
    pub(crate) by_mark: ShardedMap<(Fwmark, bool), Arc<Service>>,
    /// Every VIP with at least one address service (any protocol/port), with how many it has.
    vip_services: ShardedMap<IpAddr, u32>,
}

impl ServiceTable {
    pub(crate) fn get(&self, key: &ServiceKey) -> Option<&Arc<Service>> {
        match *key {
            ServiceKey::Addr {
                protocol,
                addr,
                port,
            } => self.by_addr.get(&(protocol.number(), addr, port)),
            ServiceKey::Fwmark { mark, ipv6 } => self.by_mark.get(&(mark, ipv6)),
        }
    }

    /// The service for a packet to `vaddr:vport`: exact port first, then the port-0 service.
    #[inline]
    pub(crate) fn lookup(&self, protocol: u8, vaddr: IpAddr, vport: u16) -> Option<&Arc<Service>> {
        self.by_addr
            .get(&(protocol, vaddr, vport))
            .or_else(|| self.by_addr.get(&(protocol, vaddr, 0)))
    }

    /// Whether `addr` is the VIP of an address service.
    #[inline]
    pub(crate) fn is_vip(&self, addr: &IpAddr) -> bool {
        self.vip_services.contains_key(addr)
    }

    fn insert(&mut self, svc: Arc<Service>) {
        match svc.spec.key {
            ServiceKey::Addr {
                protocol,
                addr,
                port,
            } => {
                if self
                    .by_addr
                    .insert((protocol.number(), addr, port), svc)
                    .is_none()
                {
                    match self.vip_services.get_mut(&addr) {
                        Some(n) => *n += 1,
                        None => {
                            self.vip_services.insert(addr, 1);
                        }
                    }
                }
            }
            ServiceKey::Fwmark { mark, ipv6 } => {
                self.by_mark.insert((mark, ipv6), svc);
            }
        }
    }

    fn remove(&mut self, key: &ServiceKey) -> Option<Arc<Service>> {
        match *key {
            ServiceKey::Addr {
                protocol,
                addr,
                port,
            } => {
                let r = self.by_addr.remove(&(protocol.number(), addr, port))?;
                if let Some(n) = self.vip_services.get_mut(&addr) {
                    *n -= 1;
                    if *n == 0 {
                        self.vip_services.remove(&addr);
                    }
                }
                Some(r)
            }
            ServiceKey::Fwmark { mark, ipv6 } => self.by_mark.remove(&(mark, ipv6)),
        }
    }

    /// Every service, in no particular order (for walks that visit each once).
    pub(crate) fn services_unordered(&self) -> impl Iterator<Item = &Arc<Service>> {
        self.by_addr.values().chain(self.by_mark.values())
    }

    /// Every service in configuration order (listings, saved rules): the order services were
    /// added in, which their ids follow (an edited service keeps its id, so its place).
    pub(crate) fn services(&self) -> impl Iterator<Item = &Arc<Service>> {
        let mut all: Vec<&Arc<Service>> = self.services_unordered().collect();
        all.sort_unstable_by_key(|s| s.shared.id);
        all.into_iter()
    }
}

/// Side effects of a validated batch, applied only when the whole batch succeeded.
#[derive(Debug)]
pub(crate) enum Effect {
    EditDest(Arc<Destination>, DestSpec),
    RemoveDest(Arc<Destination>),
    Zero(Option<Arc<Service>>),
    Timeouts(TimeoutUpdate),
    DeleteService(Arc<ServiceShared>),
}

/// A batch being validated on a copy of the table.
#[derive(Debug)]
pub(crate) struct Pending {
    pub(crate) table: ServiceTable,
    pub(crate) effects: Vec<Effect>,
    /// Services whose scheduler must see a new destination list at commit (a set: a batch of n
    /// operations must stay O(n)).
    changed: HashSet<ServiceKey, FixedState>,
    /// The id of the newest service (a new one gets this + 1).
    last_id: u64,
    /// VIPs new to the table and VIPs gone from it, in batch order (for the director's VIP
    /// filter: counted before the table is published, uncounted after).
    pub(crate) vips_added: Vec<IpAddr>,
    pub(crate) vips_removed: Vec<IpAddr>,
}

fn make_scheduler(name: &str, flags: SchedFlags) -> Result<Box<dyn Scheduler>, ConfigError> {
    new_scheduler(name, flags).map_err(|_| ConfigError::SchedulerNotFound)
}

fn invalid(msg: &str) -> ConfigError {
    ConfigError::InvalidArgument(msg.to_owned())
}

fn mask_bits(spec: &ServiceSpec) -> Result<Option<u128>, ConfigError> {
    let Some(p) = spec.persistence else {
        return Ok(None);
    };
    if p.timeout_s == 0 {
        return Err(invalid("persistence timeout must be > 0"));
    }
    match (spec.key.is_ipv6(), p.netmask) {
        (false, IpAddr::V4(m)) => Ok(Some(u128::from(u32::from(m)))),
        (true, IpAddr::V6(m)) => Ok(Some(u128::from(m))),
        _ => Err(invalid(
            "persistence netmask family differs from the service's",
        )),
    }
}

fn validate_service(spec: &ServiceSpec) -> Result<(), ConfigError> {
    if let ServiceKey::Fwmark {
        mark: Fwmark::NONE, ..
    } = spec.key
    {
        return Err(invalid("fwmark 0"));
    }
    Ok(())
}

fn validate_dest(key: &ServiceKey, d: &DestSpec) -> Result<(), ConfigError> {
    if !d.method.is_supported() {
        return Err(ConfigError::MethodNotSupported {
            addr: d.addr,
            method: d.method,
        });
    }
    if d.weight > Weight::MAX {
        return Err(invalid("weight out of range 0..65535"));
    }
    if d.u_threshold != 0 && d.l_threshold > d.u_threshold {
        return Err(invalid("lower threshold above upper threshold"));
    }
    if d.addr.is_ipv6() != key.is_ipv6() && !matches!(d.method, ForwardMethod::Tunnel(_)) {
        return Err(invalid(
            "destination address family differs from the service's",
        ));
    }
    Ok(())
}

impl Pending {
    pub(crate) fn new(table: ServiceTable, last_id: u64) -> Self {
        Self {
            table,
            effects: Vec::new(),
            changed: HashSet::default(),
            last_id,
            vips_added: Vec::new(),
            vips_removed: Vec::new(),
        }
    }

    /// Inserts a service version into the working copy, noting a VIP new to it.
    fn insert(&mut self, svc: Arc<Service>) {
        if let ServiceKey::Addr { addr, .. } = svc.spec.key
            && !self.table.is_vip(&addr)
        {
            self.vips_added.push(addr);
        }
        self.table.insert(svc);
    }

    /// Removes a service from the working copy, noting a VIP it leaves without a service.
    fn remove(&mut self, key: &ServiceKey) -> Option<Arc<Service>> {
        let old = self.table.remove(key)?;
        if let ServiceKey::Addr { addr, .. } = *key
            && !self.table.is_vip(&addr)
        {
            self.vips_removed.push(addr);
        }
        Some(old)
    }

    pub(crate) fn last_id(&self) -> u64 {
        self.last_id
    }

    fn mark_changed(&mut self, key: ServiceKey) {
        self.changed.insert(key);
    }

    fn svc(&self, key: &ServiceKey) -> Result<&Arc<Service>, ConfigError> {
        self.table.get(key).ok_or(ConfigError::ServiceNotDefined)
    }

    /// Replaces a service by a new version with a new destination list.
    fn with_dests(&mut self, old: &Service, dests: Vec<Arc<Destination>>) {
        let svc = Service {
            spec: old.spec.clone(),
            shared: old.shared.clone(),
            dests,
            sched: old.sched.clone(),
            mask: old.mask,
            persist_ms: old.persist_ms,
        };
        self.mark_changed(svc.spec.key);
        self.insert(Arc::new(svc));
    }

    /// Validates one operation against the working copy.
    pub(crate) fn apply(&mut self, op: ConfigOp) -> Result<(), ConfigError> {
        match op {
            ConfigOp::AddService(spec) => {
                if self.table.get(&spec.key).is_some() {
                    return Err(ConfigError::ServiceExists);
                }
                validate_service(&spec)?;
                let mask = mask_bits(&spec)?;
                let sched = make_scheduler(&spec.scheduler, spec.sched_flags)?;
                self.last_id += 1;
                let persist_ms = spec
                    .persistence
                    .map_or(0, |p| u64::from(p.timeout_s) * 1000);
                let svc = Service {
                    shared: Arc::new(ServiceShared::new(
                        self.last_id,
                        match spec.key {
                            ServiceKey::Addr { addr, .. } => Some(addr),
                            ServiceKey::Fwmark { .. } => None,
                        },
                    )),
                    dests: Vec::new(),
                    sched: Arc::new(Mutex::new(SchedState {
                        sched,
                        dests: Vec::new(),
                    })),
                    mask,
                    persist_ms,
                    spec,
                };
                self.mark_changed(svc.spec.key);
                self.insert(Arc::new(svc));
            }
            ConfigOp::EditService(spec) => {
                let old = self.svc(&spec.key)?.clone();
                validate_service(&spec)?;
                let mask = mask_bits(&spec)?;
                let sched = if spec.scheduler != old.spec.scheduler
                    || spec.sched_flags != old.spec.sched_flags
                {
                    let s = make_scheduler(&spec.scheduler, spec.sched_flags)?;
                    Arc::new(Mutex::new(SchedState {
                        sched: s,
                        dests: Vec::new(),
                    }))
                } else {
                    old.sched.clone()
                };
                let persist_ms = spec
                    .persistence
                    .map_or(0, |p| u64::from(p.timeout_s) * 1000);
                let svc = Service {
                    spec,
                    shared: old.shared.clone(),
                    dests: old.dests.clone(),
                    sched,
                    mask,
                    persist_ms,
                };
                self.mark_changed(svc.spec.key);
                self.insert(Arc::new(svc));
            }
            ConfigOp::DeleteService(key) => {
                let old = self.remove(&key).ok_or(ConfigError::ServiceNotDefined)?;
                self.delete_effects(&old);
            }
            ConfigOp::Clear => {
                let all: Vec<ServiceKey> = self.table.services().map(|s| s.spec.key).collect();
                for key in all {
                    if let Some(old) = self.remove(&key) {
                        self.delete_effects(&old);
                    }
                }
            }
            ConfigOp::AddDest(key, d) => {
                let old = self.svc(&key)?.clone();
                validate_dest(&key, &d)?;
                if old.find_dest(d.key()).is_some() {
                    return Err(ConfigError::DestinationExists);
                }
                let mut dests = old.dests.clone();
                dests.push(Arc::new(Destination::from_spec(&d, old.shared.clone())));
                self.with_dests(&old, dests);
            }
            ConfigOp::EditDest(key, d) => {
                let old = self.svc(&key)?.clone();
                let i = old
                    .find_dest(d.key())
                    .ok_or(ConfigError::NoSuchDestination)?;
                validate_dest(&key, &d)?;
                self.effects.push(Effect::EditDest(old.dests[i].clone(), d));
                self.mark_changed(key);
            }
            ConfigOp::DeleteDest(key, addr, port) => {
                let old = self.svc(&key)?.clone();
                let i = old
                    .find_dest(DestKey { addr, port })
                    .ok_or(ConfigError::NoSuchDestination)?;
                let mut dests = old.dests.clone();
                let gone = dests.remove(i);
                self.effects.push(Effect::RemoveDest(gone));
                self.with_dests(&old, dests);
            }
            ConfigOp::Zero(None) => self.effects.push(Effect::Zero(None)),
            ConfigOp::Zero(Some(key)) => {
                let svc = self.svc(&key)?.clone();
                self.effects.push(Effect::Zero(Some(svc)));
            }
            ConfigOp::SetTimeouts(t) => self.effects.push(Effect::Timeouts(t)),
        }
        Ok(())
    }

    fn delete_effects(&mut self, old: &Service) {
        for d in &old.dests {
            self.effects.push(Effect::RemoveDest(d.clone()));
        }
        self.effects.push(Effect::DeleteService(old.shared.clone()));
        self.changed.remove(&old.spec.key);
    }

    /// Commit step 1: applies destination edits and tells the schedulers about their new lists.
    /// Returns the effects the director handles itself (zero, timeouts, service deletion).
    pub(crate) fn commit_services(&mut self) -> Vec<Effect> {
        let mut rest = Vec::new();
        for e in self.effects.drain(..) {
            match e {
                Effect::EditDest(d, spec) => d.update(&spec),
                Effect::RemoveDest(d) => d.set_unavailable(),
                other => rest.push(other),
            }
        }
        for key in &self.changed {
            if let Some(svc) = self.table.get(key) {
                svc.sched.lock().update(svc.dests.clone());
            }
        }
        rest
    }
}
