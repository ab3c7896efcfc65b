//! Configuration operations and their errors.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::service::{DestKey, DestSpec, ForwardMethod, ServiceKey, ServiceSpec};

/// A control-plane error. `Display` is libipvs's `ipvs_strerror` text, which ipvsadm prints.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("Service not defined")]
    ServiceNotDefined,
    #[error("Service already exists")]
    ServiceExists,
    #[error("No such destination")]
    NoSuchDestination,
    #[error("Destination already exists")]
    DestinationExists,
    #[error("Scheduler or persistence engine not found")]
    SchedulerNotFound,
    /// Bad parameters; the detail says which (not part of the message ipvsadm prints).
    #[error("Invalid argument")]
    InvalidArgument(String),
    /// A forwarding method IPVS lists but rvs does not configure ([`ForwardMethod::Local`],
    /// [`ForwardMethod::Bypass`]; ipvsadm's command line cannot ask for them). The message names the three it
    /// does configure in ipvsadm's words.
    #[error(
        "real server {addr}: forwarding method {} is not supported by rvsd, which forwards with -g (gatewaying), \
         -i (ipip) or -m (masquerading)",
        method.name()
    )]
    MethodNotSupported { addr: IpAddr, method: ForwardMethod },
}

impl ConfigError {
    /// Human detail for `InvalidArgument` (empty otherwise).
    pub fn detail(&self) -> &str {
        match self {
            Self::InvalidArgument(d) => d,
            _ => "",
        }
    }
}

/// Global protocol timeouts (`ipvsadm --set tcp tcpfin udp`), in seconds. As an update
/// ([`TimeoutUpdate`], the `set_timeouts` command) a 0 field leaves that timeout unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Timeouts {
    /// TCP ESTABLISHED.
    pub tcp_s: u32,
    /// TCP FIN_WAIT.
    pub tcp_fin_s: u32,
    /// UDP.
    pub udp_s: u32,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            tcp_s: 900,
            tcp_fin_s: 120,
            udp_s: 300,
        }
    }
}

/// An update of [`Timeouts`]: a 0 field leaves that timeout unchanged (as `ipvsadm --set`).
pub type TimeoutUpdate = Timeouts;

impl Timeouts {
    /// The update that changes nothing (every field 0); [`Timeouts::default`] is IPVS's defaults.
    pub const UNCHANGED: TimeoutUpdate = Self {
        tcp_s: 0,
        tcp_fin_s: 0,
        udp_s: 0,
    };
}

/// One configuration change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigOp {
    AddService(ServiceSpec),
    EditService(ServiceSpec),
    DeleteService(ServiceKey),
    AddDest(ServiceKey, DestSpec),
    EditDest(ServiceKey, DestSpec),
    DeleteDest(ServiceKey, IpAddr, u16),
    /// Delete every service (`ipvsadm -C`).
    Clear,
    /// Zero counters of one service or all (`-Z`).
    Zero(Option<ServiceKey>),
    SetTimeouts(TimeoutUpdate),
}

/// One virtual service's configuration: its spec and its real servers in configuration order
/// ([`crate::Director::service_configs`]).
pub type ServiceConfig = (ServiceSpec, Vec<DestSpec>);

/// The operations turning `current` into `target` (a rules file reloaded over a running director). A service or
/// real server is the same one when its identity ([`ServiceSpec::key`], [`DestSpec::key`]) is: present in both with
/// the same configuration it is untouched (its connections stay); with another configuration it is edited; else it
/// is deleted or added. Deletions of services come first, then per target service in order: its edit or addition,
/// its real servers' deletions, then their additions and edits. Linear in the two configurations' sizes.
pub fn diff(current: &[ServiceConfig], target: &[ServiceConfig]) -> Vec<ConfigOp> {
    let now: HashMap<ServiceKey, &ServiceConfig> = current.iter().map(|c| (c.0.key, c)).collect();
    let wanted: HashMap<ServiceKey, ()> = target.iter().map(|(t, _)| (t.key, ())).collect();
    let mut ops: Vec<ConfigOp> = current
        .iter()
        .filter(|(s, _)| !wanted.contains_key(&s.key))
        .map(|(s, _)| ConfigOp::DeleteService(s.key))
        .collect();
    for (t, tdests) in target {
        let Some((s, cdests)) = now.get(&t.key) else {
            ops.push(ConfigOp::AddService(t.clone()));
            ops.extend(tdests.iter().map(|d| ConfigOp::AddDest(t.key, *d)));
            continue;
        };
        if s != t {
            ops.push(ConfigOp::EditService(t.clone()));
        }
        let have: HashMap<DestKey, &DestSpec> = cdests.iter().map(|c| (c.key(), c)).collect();
        let keep: HashMap<DestKey, ()> = tdests.iter().map(|d| (d.key(), ())).collect();
        for c in cdests.iter().filter(|c| !keep.contains_key(&c.key())) {
            ops.push(ConfigOp::DeleteDest(t.key, c.addr, c.port));
        }
        for d in tdests {
            match have.get(&d.key()) {
                None => ops.push(ConfigOp::AddDest(t.key, *d)),
                Some(c) if *c != d => ops.push(ConfigOp::EditDest(t.key, *d)),
                Some(_) => {}
            }
        }
    }
    ops
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::{Protocol, Weight};

    fn key(port: u16) -> ServiceKey {
        ServiceKey::Addr {
            protocol: Protocol::Tcp,
            addr: IpAddr::from([198, 51, 100, 100]),
            port,
        }
    }
    fn dest(last: u8, w: u32) -> DestSpec {
        DestSpec::masq(IpAddr::from([203, 0, 113, last]), 80, Weight(w))
    }

    #[test]
    fn diff_keeps_unchanged_and_edits_changed() {
        let s80 = ServiceSpec::new(key(80), "rr");
        let s81 = ServiceSpec::new(key(81), "rr");
        let mut s80wlc = s80.clone();
        s80wlc.scheduler = "wlc".into();
        let current = vec![
            (s80.clone(), vec![dest(11, 1), dest(12, 1)]),
            (s81.clone(), vec![dest(11, 1)]),
        ];
        // Unchanged: no ops at all.
        assert!(diff(&current, &current).is_empty());
        let target = vec![(s80wlc.clone(), vec![dest(11, 1), dest(12, 5), dest(13, 1)])];
        assert_eq!(
            diff(&current, &target),
            vec![
                ConfigOp::DeleteService(key(81)),
                ConfigOp::EditService(s80wlc),
                ConfigOp::EditDest(key(80), dest(12, 5)),
                ConfigOp::AddDest(key(80), dest(13, 1)),
            ]
        );
    }

    #[test]
    fn diff_identifies_real_servers_by_address_and_port_only() {
        // Same address, another port: another real server (deleted and added); same address and port with another
        // method and thresholds: the same real server, edited.
        let s = ServiceSpec::new(key(80), "rr");
        let mut other_port = dest(11, 1);
        other_port.port = 8080;
        let mut routed = dest(12, 1);
        routed.method = ForwardMethod::Route;
        routed.u_threshold = 10;
        let current = vec![(s.clone(), vec![dest(11, 1), dest(12, 1)])];
        let target = vec![(s, vec![other_port, routed])];
        assert_eq!(
            diff(&current, &target),
            vec![
                ConfigOp::DeleteDest(key(80), dest(11, 1).addr, 80),
                ConfigOp::AddDest(key(80), other_port),
                ConfigOp::EditDest(key(80), routed),
            ]
        );
        let applied = crate::Director::default();
        applied
            .apply_batch(
                std::iter::once(ConfigOp::AddService(current[0].0.clone()))
                    .chain(current[0].1.iter().map(|d| ConfigOp::AddDest(key(80), *d)))
                    .chain(diff(&current, &target))
                    .collect(),
            )
            .expect("the director takes the diff");
        // The edited real server keeps its place; the added one comes after it (the order `-L` lists).
        let (spec, _) = &target[0];
        assert_eq!(
            applied.service_configs(),
            vec![(spec.clone(), vec![routed, other_port])]
        );
    }
}
