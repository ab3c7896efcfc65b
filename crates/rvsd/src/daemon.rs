//! The daemon's shared state: the director, the steering, the rules file, and the one place configuration changes
//! (so a change and its steering happen together, or not at all).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use rvs_core::{
    ConfigError, ConfigOp, DestSpec, Director, ForwardMethod, Fwmark, ServiceConfig, ServiceKey,
    ServiceSpec,
};
use rvs_io::{Steering, SteeringError};

use crate::dataplane::VipSet;
use crate::marks::MarkPlanes;
use crate::rulesfile::RulesFile;
use crate::xmit::{MethodPaths, TunnelPath};

/// Why a configuration change was refused. `Display` is the message the control client shows.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The director refused operation `index` of the batch (ipvsadm's message).
    #[error("{1}")]
    Config(usize, ConfigError),
    /// The kernel plumbing failed (a VIP routed by something else, ...).
    #[error(transparent)]
    Steering(#[from] SteeringError),
    /// Operation `index` of a rules file contradicts the ones before it.
    #[error("{1}")]
    Rules(usize, ConfigError),
    /// rvsd is shutting down.
    #[error("rvsd is shutting down")]
    ShuttingDown,
}

/// Mutable control-plane state, behind one lock (configuration changes are rare and serialised).
#[derive(Debug)]
pub struct Control {
    pub steering: Steering,
    /// The TUNs and workers of the fwmark services.
    pub marks: MarkPlanes,
    pub shutting_down: bool,
    /// The addresses the director's configuration uses (kept current by every change).
    pub uses: AddressUse,
    /// What the rules file holds beyond the last whole save.
    rules_log: RulesLog,
}

/// The rules file as this rvsd last left it: a whole save (`whole_lines` long) and `appended` change lines after it.
/// `ours` is false until the first whole save succeeds (an older file is never appended to).
#[derive(Debug, Default)]
struct RulesLog {
    ours: bool,
    whole_lines: usize,
    appended: usize,
}

impl RulesLog {
    /// Change lines always allowed before a rewrite, however small the table.
    const MIN_APPEND: usize = 1024;
}

/// Everything the control plane shares.
#[derive(Debug)]
pub struct Daemon {
    pub director: Arc<Director>,
    /// The VIPs steered now (read by the workers).
    pub vips: Arc<VipSet>,
    control: Mutex<Control>,
    rules: Option<PathBuf>,
    /// The rules file as rvsd last read or wrote it (an edit made since is moved aside, never written over).
    pub rules_file: Option<RulesFile>,
    save: bool,
    /// Route and tunnel paths the workers read (kept here, where destinations change).
    paths: Arc<MethodPaths>,
    /// The XDP fast path, when on: flushed after every configuration change, before it is acknowledged.
    pub fast: std::sync::OnceLock<Arc<crate::fastpath::FastPathCtl>>,
    /// The connection sync daemons (`--start-daemon`).
    pub sync: crate::sync::SyncDaemons,
    /// The health checks of `--keepalived` (set once at start).
    pub health: std::sync::OnceLock<rvs_health::engine::Health>,
    /// The VRRP instances (`--vrrp`), once started.
    pub vrrp: std::sync::OnceLock<Arc<crate::vrrp::Vrrp>>,
    /// The SYN gate (`--syn-gate`), with the fast path.
    pub syn_gate: std::sync::OnceLock<Arc<crate::syngate::SynGateCtl>>,
}

/// A whole configuration: services with their destinations.
pub type ConfigSet = Vec<ServiceConfig>;

/// Addresses that need steering for a configuration: VIPs of address services, and masq real servers (route and
/// tunnel real servers answer the client themselves: no reply comes back to steer).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SteeringNeeds {
    pub vips: BTreeSet<IpAddr>,
    pub rips: BTreeSet<IpAddr>,
}

impl SteeringNeeds {
    /// What the director's current configuration needs, by a walk of every service (the change path keeps an
    /// [`AddressUse`] instead).
    pub fn of_director(d: &Director) -> Self {
        let mut n = Self::default();
        for (spec, dests) in d.service_configs() {
            if let ServiceKey::Addr { addr, .. } = spec.key {
                n.vips.insert(addr);
            }
            for dest in dests {
                if dest.method == ForwardMethod::Masq {
                    n.rips.insert(dest.addr);
                }
            }
        }
        n
    }

    /// Add what the operations would need.
    pub fn add_ops(&mut self, ops: &[ConfigOp]) {
        for op in ops {
            match op {
                ConfigOp::AddService(s) | ConfigOp::EditService(s) => {
                    if let ServiceKey::Addr { addr, .. } = s.key {
                        self.vips.insert(addr);
                    }
                }
                ConfigOp::AddDest(_, d) | ConfigOp::EditDest(_, d)
                    if d.method == ForwardMethod::Masq =>
                {
                    self.rips.insert(d.addr);
                }
                _ => {}
            }
        }
    }
}

/// What the configuration uses, counted per address (by services, by destinations), so a change updates it by what
/// it touches: the changed services' configuration before and after, never a walk of the whole table.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AddressUse {
    vips: BTreeMap<IpAddr, u32>,
    masq: BTreeMap<IpAddr, u32>,
    route: BTreeMap<IpAddr, u32>,
    tunnel: BTreeMap<IpAddr, u32>,
    /// fwmark services by mark (both families).
    marks: BTreeMap<Fwmark, u32>,
}

/// Which way [`AddressUse::count`] counts a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Count {
    /// The service is (now) configured: count its addresses in.
    Add,
    /// The service is gone (or about to change): count them out.
    Remove,
}

impl AddressUse {
    /// Counts one service and its destinations in or out.
    fn count(&mut self, spec: &ServiceSpec, dests: &[DestSpec], way: Count) {
        fn step<K: Ord>(m: &mut BTreeMap<K, u32>, a: K, way: Count) {
            if way == Count::Add {
                *m.entry(a).or_default() += 1;
            } else if let Some(n) = m.get_mut(&a) {
                *n -= 1;
                if *n == 0 {
                    m.remove(&a);
                }
            }
        }
        match spec.key {
            ServiceKey::Addr { addr, .. } => step(&mut self.vips, addr, way),
            ServiceKey::Fwmark { mark, .. } => step(&mut self.marks, mark, way),
        }
        for d in dests {
            let m = match d.method {
                ForwardMethod::Masq => &mut self.masq,
                ForwardMethod::Route => &mut self.route,
                ForwardMethod::Tunnel(_) => &mut self.tunnel,
                // Never configured: the core refuses them (ConfigError::MethodNotSupported).
                ForwardMethod::Local | ForwardMethod::Bypass => continue,
            };
            step(m, d.addr, way);
        }
    }

    /// The steering this use needs.
    pub fn steering(&self) -> SteeringNeeds {
        SteeringNeeds {
            vips: self.vips.keys().copied().collect(),
            rips: self.masq.keys().copied().collect(),
        }
    }
}

/// The services a batch touches (their configuration before and after is what changes); `None`: all of them
/// (`-C`).
fn touched(ops: &[ConfigOp]) -> Option<BTreeSet<ServiceKey>> {
    let mut keys = BTreeSet::new();
    for op in ops {
        match op {
            ConfigOp::AddService(s) | ConfigOp::EditService(s) => keys.insert(s.key),
            ConfigOp::DeleteService(k)
            | ConfigOp::AddDest(k, _)
            | ConfigOp::EditDest(k, _)
            | ConfigOp::DeleteDest(k, ..) => keys.insert(*k),
            ConfigOp::Clear => return None,
            ConfigOp::Zero(_) | ConfigOp::SetTimeouts(_) => false,
        };
    }
    Some(keys)
}

/// The configuration of `keys` (all services for `None`) as the director has it now.
fn configs_of(d: &Director, keys: Option<&BTreeSet<ServiceKey>>) -> ConfigSet {
    match keys {
        Some(keys) => keys.iter().filter_map(|k| d.service_config(k)).collect(),
        None => d.service_configs(),
    }
}

impl Daemon {
    /// The daemon state over an installed base steering.
    pub fn new(
        director: Arc<Director>,
        steering: Steering,
        rules: Option<PathBuf>,
        save: bool,
        paths: Arc<MethodPaths>,
    ) -> Self {
        Self {
            director,
            vips: Arc::new(VipSet::default()),
            control: Mutex::new(Control {
                steering,
                marks: MarkPlanes::default(),
                shutting_down: false,
                uses: AddressUse::default(),
                rules_log: RulesLog::default(),
            }),
            rules_file: rules.clone().map(RulesFile::new),
            rules,
            save,
            paths,
            fast: std::sync::OnceLock::new(),
            sync: crate::sync::SyncDaemons::default(),
            health: std::sync::OnceLock::new(),
            vrrp: std::sync::OnceLock::new(),
            syn_gate: std::sync::OnceLock::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Control> {
        self.control.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Apply `ops` as one atomic batch with their steering: on error nothing changed. Saves the rules afterwards.
    pub fn apply(&self, ops: Vec<ConfigOp>) -> Result<(), ApplyError> {
        let mut ctl = self.lock();
        if ctl.shutting_down {
            return Err(ApplyError::ShuttingDown);
        }
        let lines = match self.rules_path() {
            Some(_) => crate::ops::ops_rules_lines(&ops),
            None => String::new(),
        };
        self.apply_locked(&mut ctl, ops)?;
        self.save_change(&mut ctl, &lines);
        Ok(())
    }

    fn apply_locked(&self, ctl: &mut Control, ops: Vec<ConfigOp>) -> Result<(), ApplyError> {
        let res = self.apply_steered(ctl, ops);
        self.vips.set(ctl.steering.vips().collect());
        if res.is_ok()
            && let Some(f) = self.fast.get()
        {
            f.flush(&self.director);
        }
        res
    }

    fn apply_steered(&self, ctl: &mut Control, ops: Vec<ConfigOp>) -> Result<(), ApplyError> {
        check_paths(&mut ctl.steering, &ops)?;
        // fwmark services: their TUNs and steering first (nothing else changed yet if that fails).
        let marks_before = ctl.marks.marks();
        let mut marks_union = marks_before.clone();
        marks_union.extend(ops.iter().filter_map(|op| match op {
            ConfigOp::AddService(s) | ConfigOp::EditService(s) => match s.key {
                ServiceKey::Fwmark { mark, .. } => Some(mark),
                ServiceKey::Addr { .. } => None,
            },
            _ => None,
        }));
        let shared = self.plane_shared();
        let Control {
            steering, marks, ..
        } = &mut *ctl;
        marks.add(&marks_union, steering, &shared)?;
        let keys = touched(&ops);
        let old = configs_of(&self.director, keys.as_ref());
        let before = ctl.uses.steering();
        let mut union = before.clone();
        union.add_ops(&ops);
        if union != before
            && let Err(e) = ctl.steering.reconcile(&union.vips, &union.rips)
        {
            if let Err(e2) = ctl.steering.reconcile(&before.vips, &before.rips) {
                tracing::error!(error = %e2, "undoing partial steering failed");
            }
            return Err(e.into());
        }
        if let Err((i, e)) = self.director.apply_batch(ops) {
            if let Err(e2) = ctl.steering.reconcile(&before.vips, &before.rips) {
                tracing::error!(error = %e2, "undoing steering after a refused change failed");
            }
            let Control {
                steering, marks, ..
            } = &mut *ctl;
            marks.retain(&marks_before, steering);
            return Err(ApplyError::Config(i, e));
        }
        let new = configs_of(&self.director, keys.as_ref());
        for (spec, dests) in &old {
            ctl.uses.count(spec, dests, Count::Remove);
        }
        for (spec, dests) in &new {
            ctl.uses.count(spec, dests, Count::Add);
        }
        let after = ctl.uses.steering();
        if after != union
            && let Err(e) = ctl.steering.reconcile(&after.vips, &after.rips)
        {
            tracing::error!(error = %e, "removing steering no longer needed failed");
        }
        self.refresh_paths(ctl, &old, &new);
        let marks_after: BTreeSet<Fwmark> = ctl.uses.marks.keys().copied().collect();
        let Control {
            steering, marks, ..
        } = &mut *ctl;
        marks.retain(&marks_after, steering);
        Ok(())
    }

    fn plane_shared(&self) -> crate::marks::Shared {
        crate::marks::Shared {
            director: self.director.clone(),
            vips: self.vips.clone(),
            paths: self.paths.clone(),
        }
    }

    /// Recompute what the workers need to reach route and tunnel real servers, for the services a change touched
    /// (`old` before it, `new` after): route destinations go to the next-hop resolver (and the kernel is asked to
    /// resolve them now, so first packets find their MAC); when tunnel destinations came or went, every tunnel
    /// destination gets the outer source address and MTU the kernel's route gives.
    fn refresh_paths(&self, ctl: &mut Control, old: &ConfigSet, new: &ConfigSet) {
        for d in new.iter().flat_map(|(_, d)| d) {
            if d.method == ForwardMethod::Route {
                crate::nexthop::probe(d.addr);
                self.paths.hops.miss(d.addr);
            }
        }
        let tunnel = |d: &DestSpec| matches!(d.method, ForwardMethod::Tunnel(_));
        if !old.iter().chain(new).flat_map(|(_, d)| d).any(tunnel) {
            return;
        }
        let mut tunnels = HashMap::new();
        for &rip in ctl.uses.tunnel.keys() {
            match (ctl.steering.path(rip), tunnel_source(rip)) {
                (Ok(p), Some(src)) => {
                    tunnels.insert(rip, TunnelPath { src, mtu: p.mtu });
                }
                (Err(e), _) => {
                    tracing::warn!(%rip, error = %e, "no path to tunnel real server")
                }
                (_, None) => {
                    tracing::warn!(%rip, "no source address toward tunnel real server")
                }
            }
        }
        self.paths.set_tunnels(tunnels);
    }

    /// Replace the whole configuration with `ops` (a rules file): only the difference is applied, so the
    /// connections of unchanged services stay.
    pub fn replace(&self, ops: Vec<ConfigOp>) -> Result<(), ApplyError> {
        let (target, extra) = desired_config(&ops)?;
        let mut ctl = self.lock();
        if ctl.shutting_down {
            return Err(ApplyError::ShuttingDown);
        }
        let current = self.director.service_configs();
        let mut diff = rvs_core::config::diff(&current, &target);
        diff.extend(extra);
        if diff.is_empty() {
            return Ok(());
        }
        self.apply_locked(&mut ctl, diff)?;
        self.save_whole(&mut ctl);
        Ok(())
    }

    /// The rules file, when configured and saving is on.
    fn rules_path(&self) -> Option<&Path> {
        self.rules.as_deref().filter(|_| self.save)
    }

    /// Write the whole rules file (when configured and saving is on), atomically.
    fn save_whole(&self, ctl: &mut Control) {
        let Some(path) = self.rules_path() else {
            return;
        };
        self.keep_unapplied_edit();
        let text = crate::ops::rules_text(&self.director);
        match write_atomic(path, text.as_bytes()) {
            Ok(()) => {
                if let Some(f) = &self.rules_file {
                    f.written();
                }
                ctl.rules_log = RulesLog {
                    ours: true,
                    whole_lines: text.lines().count(),
                    appended: 0,
                };
            }
            Err(e) => {
                ctl.rules_log.ours = false;
                tracing::error!(path = %path.display(), error = %e, "saving the rules failed");
            }
        }
    }

    /// Which VIPs this director answers for (`None`: all; VRRP: those of its master instances).
    pub fn set_owned(
        &self,
        owned: Option<std::collections::BTreeSet<IpAddr>>,
    ) -> Result<(), SteeringError> {
        self.lock().steering.set_owned(owned)
    }

    /// Record one applied change in the rules file: its own lines appended (and synced) while the file is the one
    /// this rvsd wrote and the appended lines do not outnumber the file's own (at least [`RulesLog::MIN_APPEND`]);
    /// else the whole file is rewritten. A change so costs its own lines, and the rewrite, which costs the whole
    /// table, comes once per that many appended lines.
    fn save_change(&self, ctl: &mut Control, lines: &str) {
        let Some(path) = self.rules_path() else {
            return;
        };
        if lines.is_empty() {
            return;
        }
        let n = lines.lines().count();
        let log = &ctl.rules_log;
        let untouched = self
            .rules_file
            .as_ref()
            .is_none_or(|f| !f.changed_on_disk());
        if untouched && log.ours && log.appended + n <= log.whole_lines.max(RulesLog::MIN_APPEND) {
            match append_synced(path, lines.as_bytes()) {
                Ok(()) => {
                    ctl.rules_log.appended += n;
                    if let Some(f) = &self.rules_file {
                        f.written();
                    }
                    return;
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "appending to the rules failed; rewriting them")
                }
            }
        }
        self.save_whole(ctl);
    }

    /// A rules file changed on disk since rvsd last read or wrote it (an edit whose reload failed, or never asked
    /// for) is moved aside before rvsd writes, and the log says where.
    fn keep_unapplied_edit(&self) {
        let Some(f) = &self.rules_file else { return };
        match f.move_aside_if_changed() {
            Ok(Some(kept)) => tracing::warn!(
                path = %f.path().display(),
                kept = %kept.display(),
                "the rules file had changed on disk since rvsd last read or wrote it (an edit not reloaded, or whose \
                 reload failed): it was moved aside, the running configuration saved in its place"
            ),
            Ok(None) => {}
            Err(e) => {
                tracing::error!(path = %f.path().display(), error = %e, "moving the edited rules file aside failed")
            }
        }
    }

    /// [`Daemon::teardown`] for a hand-over: the real servers' packets are held until the next rvsd steers them
    /// (see `Steering::hold_replies`).
    pub fn teardown_holding(&self) -> Result<usize, SteeringError> {
        self.stop_planes().steering.hold_replies()
    }

    /// Stop accepting changes and remove all steering. Returns how many kernel objects were removed.
    pub fn teardown(&self) -> Result<usize, SteeringError> {
        self.stop_planes().steering.remove_all()
    }

    /// What both teardowns do first: refuse further changes, stop serving VIPs, stop the fwmark planes. Returns the
    /// locked control state for the steering's last step.
    fn stop_planes(&self) -> MutexGuard<'_, Control> {
        let mut ctl = self.lock();
        ctl.shutting_down = true;
        self.vips.set(Vec::new());
        let Control {
            steering, marks, ..
        } = &mut *ctl;
        marks.stop_all(steering);
        ctl
    }
}

/// Route destinations must be on a directly connected network and tunnel destinations routable: checked before
/// anything changes, so a refused add leaves everything as it was.
fn check_paths(steering: &mut Steering, ops: &[ConfigOp]) -> Result<(), ApplyError> {
    for op in ops {
        if let ConfigOp::AddDest(_, d) | ConfigOp::EditDest(_, d) = op {
            match d.method {
                // Local and bypass: the core refuses them when the batch is applied.
                ForwardMethod::Masq | ForwardMethod::Local | ForwardMethod::Bypass => {}
                ForwardMethod::Route => {
                    steering.check_direct(d.addr)?;
                }
                ForwardMethod::Tunnel(_) => {
                    steering.path(d.addr)?;
                }
            }
        }
    }
    Ok(())
}

/// The address the kernel would send from toward `rip` (a connected UDP socket's local address; nothing is sent).
fn tunnel_source(rip: IpAddr) -> Option<IpAddr> {
    let any: IpAddr = if rip.is_ipv6() {
        std::net::Ipv6Addr::UNSPECIFIED.into()
    } else {
        std::net::Ipv4Addr::UNSPECIFIED.into()
    };
    let s = std::net::UdpSocket::bind((any, 0)).ok()?;
    s.connect((rip, 9)).ok()?;
    Some(s.local_addr().ok()?.ip())
}

/// The configuration a list of operations (from a rules file) describes when applied to an empty director, in
/// order of first appearance, plus the timeout changes it makes. The director's own rules decide what the file may
/// do (service exists, destination exists, ...): it is applied to an empty director of its own. Errors name the
/// operation index.
pub fn desired_config(ops: &[ConfigOp]) -> Result<(ConfigSet, Vec<ConfigOp>), ApplyError> {
    let scratch = Director::new(rvs_core::DirectorConfig {
        shards: 1,
        ..Default::default()
    });
    scratch
        .apply_batch(ops.to_vec())
        .map_err(|(i, e)| ApplyError::Rules(i, e))?;
    let extra = ops
        .iter()
        .filter(|op| matches!(op, ConfigOp::SetTimeouts(_)))
        .cloned()
        .collect();
    Ok((scratch.service_configs(), extra))
}

/// Append `data` to the existing file `path` and sync it (a missing file is an error: the caller rewrites it).
fn append_synced(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().append(true).open(path)?;
    f.write_all(data)?;
    f.sync_data()
}

/// Write `data` to `path` atomically: a temporary file beside it, fsync, rename, fsync of the directory.
pub fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "rules".into());
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let res = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_core::{Fwmark, Protocol, ServiceKey, Weight};

    /// Addresses stay needed while any service or destination uses them, and go with the last one.
    #[test]
    fn address_use_counts_what_changes_touch() {
        let mut u = AddressUse::default();
        let (a, b) = (
            ServiceSpec::new(key(80), "rr"),
            ServiceSpec::new(key(81), "rr"),
        );
        let masq = dest(11, 1);
        let mut route = dest(12, 1);
        route.method = ForwardMethod::Route;
        u.count(&a, &[masq, route], Count::Add);
        u.count(&b, &[masq], Count::Add);
        let vip: IpAddr = "198.51.100.100".parse().expect("ip");
        let want = SteeringNeeds {
            vips: [vip].into(),
            rips: [masq.addr].into(),
        };
        assert_eq!(
            u.steering(),
            want,
            "route real servers need no reply steering"
        );
        assert_eq!(u.route.len(), 1);
        u.count(&a, &[masq, route], Count::Remove);
        assert_eq!(u.steering(), want, "b still uses both");
        assert!(u.route.is_empty());
        u.count(&b, &[masq], Count::Remove);
        assert_eq!(u, AddressUse::default());
        let fw = |ipv6| {
            ServiceSpec::new(
                ServiceKey::Fwmark {
                    mark: Fwmark(7),
                    ipv6,
                },
                "rr",
            )
        };
        u.count(&fw(false), &[masq], Count::Add);
        u.count(&fw(true), &[], Count::Add);
        assert_eq!(
            u.marks.keys().copied().collect::<Vec<_>>(),
            [Fwmark(7)],
            "one plane per mark"
        );
        assert!(
            u.steering().vips.is_empty(),
            "a fwmark service steers no VIP"
        );
        u.count(&fw(false), &[masq], Count::Remove);
        assert_eq!(u.marks.len(), 1, "the IPv6 service still uses mark 7");
        u.count(&fw(true), &[], Count::Remove);
        assert_eq!(u, AddressUse::default());
    }

    fn key(port: u16) -> ServiceKey {
        ServiceKey::Addr {
            protocol: Protocol::Tcp,
            addr: "198.51.100.100".parse().expect("ip"),
            port,
        }
    }
    fn dest(last: u8, w: u32) -> DestSpec {
        DestSpec::masq(IpAddr::from([203, 0, 113, last]), 80, Weight(w))
    }

    #[test]
    fn needs_collect_vips_and_rips() {
        let mut n = SteeringNeeds::default();
        n.add_ops(&[
            ConfigOp::AddService(ServiceSpec::new(key(80), "rr")),
            ConfigOp::AddService(ServiceSpec::new(key(443), "rr")),
            ConfigOp::AddDest(key(80), dest(11, 1)),
            ConfigOp::AddDest(key(443), dest(12, 1)),
        ]);
        assert_eq!(n.vips.len(), 1, "two services share one VIP");
        assert_eq!(n.rips.len(), 2);
    }

    #[test]
    fn desired_config_rejects_duplicates_and_orphans() {
        let s = ServiceSpec::new(key(80), "rr");
        let (ok, extra) = desired_config(&[
            ConfigOp::AddService(s.clone()),
            ConfigOp::AddDest(key(80), dest(11, 1)),
            ConfigOp::AddDest(key(80), dest(12, 1)),
            ConfigOp::EditDest(key(80), dest(12, 7)),
            ConfigOp::DeleteDest(key(80), dest(11, 1).addr, 80),
        ])
        .expect("valid");
        assert!(extra.is_empty());
        assert_eq!(ok.len(), 1);
        assert_eq!(ok[0].1, vec![dest(12, 7)]);
        let (cleared, _) =
            desired_config(&[ConfigOp::AddService(s.clone()), ConfigOp::Clear]).expect("valid");
        assert!(cleared.is_empty());
        assert!(matches!(
            desired_config(&[ConfigOp::AddDest(key(80), dest(11, 1))]),
            Err(ApplyError::Rules(0, ConfigError::ServiceNotDefined))
        ));
        assert!(matches!(
            desired_config(&[ConfigOp::AddService(s.clone()), ConfigOp::AddService(s)]),
            Err(ApplyError::Rules(1, ConfigError::ServiceExists))
        ));
    }

    #[test]
    fn atomic_write_replaces_content() {
        let dir = std::env::temp_dir().join(format!("rvsd-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp dir");
        let p = dir.join("rules");
        write_atomic(&p, b"one\n").expect("write");
        write_atomic(&p, b"two\n").expect("rewrite");
        assert_eq!(std::fs::read_to_string(&p).expect("read"), "two\n");
        let leftovers: Vec<_> = std::fs::read_dir(&dir)
            .expect("ls")
            .filter_map(Result::ok)
            .collect();
        assert_eq!(leftovers.len(), 1, "no temporary file left");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
