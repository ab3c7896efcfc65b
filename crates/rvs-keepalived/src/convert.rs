//! The LVS side as rvs-api configuration: the same [`rvs_api::Command`]s `rvsadm` sends, so a keepalived.conf is
//! applied through the same atomic batch as `rvsadm -R`.

use std::net::IpAddr;

use rvs_api::{Command, DestSpec, Fwmark, Persistence, ServiceKey, ServiceSpec, Weight};

use crate::diag::LoadError;
use crate::model::*;

/// Most services one `virtual_server_group` entry may expand to (a /16 of VIPs; hostile input stays bounded).
pub const MAX_GROUP_EXPANSION: u128 = 65_536;

fn api_protocol(p: VsProtocol) -> rvs_api::Protocol {
    match p {
        VsProtocol::Tcp => rvs_api::Protocol::Tcp,
        VsProtocol::Udp => rvs_api::Protocol::Udp,
        VsProtocol::Sctp => rvs_api::Protocol::Sctp,
    }
}

/// The forwarding method as rvs-api names it.
pub fn api_method(m: LvsMethod) -> rvs_api::ForwardMethod {
    match m {
        LvsMethod::Nat => rvs_api::ForwardMethod::Masq,
        LvsMethod::Dr => rvs_api::ForwardMethod::Route,
        LvsMethod::Tun(t) => rvs_api::ForwardMethod::Tunnel(t),
    }
}

fn fwmark_family(vs: &VirtualServer, explicit: Option<bool>) -> bool {
    explicit
        .or(vs.ipv6_family)
        .or(vs.persistence_granularity.map(|g| g.is_ipv6()))
        .or(vs.real_servers.first().map(|r| r.addr.is_ipv6()))
        .unwrap_or(false)
}

/// The IPVS services a virtual server stands for (one, or one per address/fwmark of its group).
pub fn service_keys(cfg: &Config, vs: &VirtualServer) -> Result<Vec<ServiceKey>, LoadError> {
    let protocol = api_protocol(vs.protocol);
    Ok(match &vs.address {
        VsAddress::Addr { addr, port } => vec![ServiceKey::Addr {
            protocol,
            addr: *addr,
            port: *port,
        }],
        VsAddress::Fwmark(mark) => vec![ServiceKey::Fwmark {
            mark: Fwmark(*mark),
            ipv6: fwmark_family(vs, None),
        }],
        VsAddress::Group(name) => {
            let Some(g) = cfg.virtual_server_groups.iter().find(|g| &g.name == name) else {
                return Err(LoadError::Invalid {
                    loc: vs.loc.clone(),
                    message: format!("no virtual_server_group {name}"),
                });
            };
            let mut keys = Vec::new();
            for (loc, e) in &g.entries {
                match e {
                    GroupEntry::Fwmark { mark, ipv6 } => keys.push(ServiceKey::Fwmark {
                        mark: Fwmark(*mark),
                        ipv6: fwmark_family(vs, *ipv6),
                    }),
                    GroupEntry::Range { first, last, port } => {
                        let (a, b) = (ip_num(*first), ip_num(*last));
                        if b - a >= MAX_GROUP_EXPANSION {
                            return Err(LoadError::Invalid {
                                loc: loc.clone(),
                                message: format!(
                                    "address range of more than {MAX_GROUP_EXPANSION} virtual servers"
                                ),
                            });
                        }
                        if *port == 0 && vs.persistence_timeout.is_none() {
                            return Err(LoadError::Invalid {
                                loc: loc.clone(),
                                message:
                                    "a group entry without a port needs a persistent virtual server"
                                        .into(),
                            });
                        }
                        for x in a..=b {
                            keys.push(ServiceKey::Addr {
                                protocol,
                                addr: num_ip(x, first.is_ipv6()),
                                port: *port,
                            });
                        }
                    }
                }
            }
            keys
        }
    })
}

fn ip_num(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(v) => u128::from(u32::from(v)),
        IpAddr::V6(v) => u128::from(v),
    }
}

fn num_ip(x: u128, v6: bool) -> IpAddr {
    if v6 {
        IpAddr::from(x.to_be_bytes())
    } else {
        IpAddr::from(u32::try_from(x).unwrap_or(u32::MAX).to_be_bytes())
    }
}

/// The service configuration of `vs` for one of its keys.
pub fn service_config(vs: &VirtualServer, key: ServiceKey) -> ServiceSpec {
    ServiceSpec {
        key,
        scheduler: vs.scheduler.clone(),
        sched_flags: vs.flags,
        persistence: vs.persistence_timeout.map(|t| Persistence {
            timeout_s: t,
            netmask: vs
                .persistence_granularity
                .unwrap_or_else(|| Persistence::host_mask(key.ip_version())),
        }),
        one_packet: vs.ops,
        pe: vs.persistence_engine.clone(),
    }
}

/// A real server as a destination with the given (live) weight.
pub fn dest_config(rs: &RealServer, weight: u32) -> DestSpec {
    DestSpec {
        addr: rs.addr,
        port: rs.port,
        weight: Weight(weight),
        method: api_method(rs.method),
        u_threshold: rs.u_threshold,
        l_threshold: rs.l_threshold,
    }
}

/// The sorry server as a destination with the given weight (1 in use, 0 when inhibited).
pub fn sorry_config(s: &SorryServer, weight: u32) -> DestSpec {
    DestSpec {
        addr: s.addr,
        port: s.port,
        weight: Weight(weight),
        method: api_method(s.method),
        u_threshold: 0,
        l_threshold: 0,
    }
}

/// `lvs_timeouts` as a `--set` command.
pub fn timeouts_command(t: &LvsTimeouts) -> Command {
    Command::SetTimeouts(rvs_api::Timeouts {
        tcp_s: t.tcp.unwrap_or(0),
        tcp_fin_s: t.tcpfin.unwrap_or(0),
        udp_s: t.udp.unwrap_or(0),
    })
}

impl Config {
    /// Every (service key, virtual server index) pair, in file order.
    pub fn services(&self) -> Result<Vec<(ServiceKey, usize)>, LoadError> {
        let mut out = Vec::new();
        for (i, vs) in self.virtual_servers.iter().enumerate() {
            for k in service_keys(self, vs)? {
                out.push((k, i));
            }
        }
        Ok(out)
    }

    /// The configuration as if every checker were up (what `keepalived -t` validates and what rvs applies before
    /// any check has run when nothing is in alpha mode): one batch of services and real servers, plus
    /// `lvs_timeouts`.
    pub fn static_batch(&self) -> Result<Command, LoadError> {
        let mut cmds = Vec::new();
        for (key, i) in self.services()? {
            let vs = &self.virtual_servers[i];
            cmds.push(Command::AddService(service_config(vs, key)));
            for rs in &vs.real_servers {
                cmds.push(Command::AddDest {
                    service: key,
                    dest: dest_config(rs, rs.weight),
                });
            }
        }
        if let Some(t) = &self.global.lvs_timeouts {
            cmds.push(timeouts_command(t));
        }
        Ok(Command::Batch(cmds))
    }
}
