//! VRRP in rvsd (`--vrrp`): one thread per instance drives an rvs-vrrp state machine over a raw
//! IPPROTO_VRRP socket on the instance's interface, and maps its state onto the director:
//!
//! - An address of the instance that is a VIP of a virtual service is answered for (proxy
//!   neighbour) only while the instance is master; as backup, the VIP keeps its route into the
//!   TUN and its synced connections, but nobody sends it traffic. Any other address (e.g. the
//!   real servers' gateway on the private side) is added to the interface as master and removed
//!   as backup, as keepalived's `virtual_ipaddress`.
//! - On takeover: gratuitous ARPs for every IPv4 address (at once and again with the next two
//!   advertisements), then the advertisements.
//! - Every transition is logged, kept for `rvsadm --json -L --daemon`... and handed to the notify
//!   script as keepalived does (`SCRIPT INSTANCE NAME STATE PRIORITY`).
//! - Tracked interfaces: one down (or gone) puts the instance in FAULT.

use std::collections::BTreeSet;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rvs_vrrp::wire::{self, Version};
use rvs_vrrp::{Action, Advert, Auth, Config, Instance, State};
use socket2::{Domain, Protocol, Socket, Type};

use crate::daemon::Daemon;
use crate::dataplane::now;

/// One `--vrrp` instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VrrpSpec {
    pub config: Config,
    pub interface: String,
    pub unicast_peers: Vec<Ipv4Addr>,
    /// keepalived's `notify`: run through `sh -c` with `INSTANCE NAME STATE PRIORITY` appended.
    pub notify: Option<String>,
    /// keepalived's `notify_master` / `notify_backup` / `notify_fault`: run through `sh -c` on that state.
    pub notify_master: Option<String>,
    pub notify_backup: Option<String>,
    pub notify_fault: Option<String>,
    pub track: Vec<String>,
}

/// Parses `name=VI_1,interface=pub0,vrid=51,priority=150,address=198.51.100.100[,address=...]
/// [,advert-int=1][,version=2|3][,nopreempt][,preempt-delay=S][,unicast-peer=IP]
/// [,notify=/path][,track-interface=IF][,auth-pass=PW]`.
pub fn parse_spec(s: &str) -> Result<VrrpSpec, String> {
    let mut name = None;
    let mut interface = None;
    let mut vrid = None;
    let mut priority = 100u8;
    let mut interval_cs = 100u16;
    let mut version = Version::V2;
    let mut preempt = true;
    let mut preempt_delay_ms = 0;
    let mut auth = Auth::None;
    let mut addrs = Vec::new();
    let mut spec_peers = Vec::new();
    let mut notify = None;
    let mut track = Vec::new();
    for kv in s.split(',').filter(|x| !x.is_empty()) {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        let bad = || format!("--vrrp: bad {k}={v}");
        match k {
            "name" => name = Some(v.to_owned()),
            "interface" => interface = Some(v.to_owned()),
            "vrid" => vrid = Some(v.parse::<u8>().ok().filter(|&x| x > 0).ok_or_else(bad)?),
            "priority" => priority = v.parse::<u8>().ok().filter(|&x| x > 0).ok_or_else(bad)?,
            "advert-int" => {
                let secs: f64 = v.parse().map_err(|_| bad())?;
                if !(0.01..=40.95).contains(&secs) {
                    return Err(bad());
                }
                interval_cs = (secs * 100.0).round() as u16;
            }
            "version" => {
                version = match v {
                    "2" => Version::V2,
                    "3" => Version::V3,
                    _ => return Err(bad()),
                }
            }
            "nopreempt" => preempt = false,
            "preempt-delay" => {
                preempt_delay_ms = v.parse::<u64>().map_err(|_| bad())? * 1000;
            }
            "address" => addrs.push(v.parse::<Ipv4Addr>().map_err(|_| bad())?.into()),
            "unicast-peer" => spec_peers.push(v.parse::<Ipv4Addr>().map_err(|_| bad())?),
            "notify" => notify = Some(v.to_owned()),
            "track-interface" => track.push(v.to_owned()),
            "auth-pass" => {
                let mut p = [0u8; wire::AUTH_LEN];
                let b = v.as_bytes();
                let n = b.len().min(wire::AUTH_LEN);
                p[..n].copy_from_slice(&b[..n]);
                auth = Auth::Simple(p);
            }
            _ => return Err(format!("--vrrp: unknown key {k}")),
        }
    }
    let interface = interface.ok_or("--vrrp: interface= is required")?;
    let vrid = vrid.ok_or("--vrrp: vrid= is required")?;
    if addrs.is_empty() {
        return Err("--vrrp: at least one address= is required".into());
    }
    if version == Version::V2 && !interval_cs.is_multiple_of(100) {
        return Err("--vrrp: version 2 advertises whole seconds".into());
    }
    Ok(VrrpSpec {
        config: Config {
            name: name.unwrap_or_else(|| format!("VI_{vrid}")),
            vrid,
            priority,
            interval_cs,
            version,
            preempt,
            preempt_delay_ms,
            auth,
            addrs,
            primary: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        },
        interface,
        unicast_peers: spec_peers,
        notify,
        notify_master: None,
        notify_backup: None,
        notify_fault: None,
        track,
    })
}

/// The `vrrp_instance` blocks of keepalived.conf (rvs-keepalived's typed model) as instances, and its
/// `lvs_sync_daemon` (or an instance's old `lvs_sync_daemon_interface`) as sync daemon parameters.
pub fn from_keepalived(
    cfg: &rvs_keepalived::Config,
) -> Result<(Vec<VrrpSpec>, Option<rvs_api::DaemonConfig>), String> {
    let mut specs = Vec::new();
    let global_version = cfg.global.vrrp_version;
    for i in &cfg.vrrp.instances {
        let at = format!("{}: vrrp_instance {}", i.loc, i.name);
        let interface = i
            .interface
            .clone()
            .ok_or_else(|| format!("{at}: no interface"))?;
        let vrid = i
            .virtual_router_id
            .ok_or_else(|| format!("{at}: no virtual_router_id"))?;
        let version = match i.version.or(global_version).unwrap_or(2) {
            2 => Version::V2,
            3 => Version::V3,
            v => return Err(format!("{at}: vrrp_version {v}")),
        };
        let auth = match &i.authentication {
            None => Auth::None,
            Some(rvs_keepalived::VrrpAuth::Pass(p)) => {
                let mut b = [0u8; wire::AUTH_LEN];
                let n = p.len().min(wire::AUTH_LEN);
                b[..n].copy_from_slice(&p.as_bytes()[..n]);
                Auth::Simple(b)
            }
            Some(rvs_keepalived::VrrpAuth::Ah(_)) => {
                return Err(format!("{at}: auth_type AH is not supported"));
            }
        };
        let mut addrs = Vec::new();
        for v in &i.virtual_ipaddress {
            if v.addr.is_ipv6() {
                return Err(format!(
                    "{}: IPv6 virtual addresses are not supported yet",
                    v.loc
                ));
            }
            addrs.push(v.addr);
        }
        if addrs.is_empty() {
            return Err(format!("{at}: no virtual_ipaddress"));
        }
        let mut peers = Vec::new();
        for p in &i.unicast_peer {
            match p {
                IpAddr::V4(a) => peers.push(*a),
                IpAddr::V6(_) => {
                    return Err(format!("{at}: IPv6 unicast peers are not supported yet"));
                }
            }
        }
        let interval_cs = u16::try_from(i.advert_int.as_millis() / 10)
            .unwrap_or(u16::MAX)
            .clamp(1, 4095);
        let sh = |s: &Option<rvs_keepalived::Script>| s.as_ref().map(|s| s.command.clone());
        specs.push(VrrpSpec {
            config: Config {
                name: i.name.clone(),
                vrid,
                priority: i.priority,
                interval_cs,
                version,
                preempt: !i.nopreempt,
                preempt_delay_ms: u64::try_from(i.preempt_delay.as_millis()).unwrap_or(u64::MAX),
                auth,
                addrs,
                primary: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            },
            interface,
            unicast_peers: peers,
            notify: sh(&i.notify),
            notify_master: sh(&i.notify_master),
            notify_backup: sh(&i.notify_backup),
            notify_fault: sh(&i.notify_fault),
            track: i.track_interface.iter().map(|t| t.name.clone()).collect(),
        });
    }
    let sync = if let Some(sd) = &cfg.global.lvs_sync_daemon {
        let vrid = sd.instance.as_ref().and_then(|n| {
            cfg.vrrp
                .instances
                .iter()
                .find(|i| &i.name == n)
                .and_then(|i| i.virtual_router_id)
        });
        Some(rvs_api::DaemonConfig {
            state: rvs_api::DaemonState::Master,
            mcast_ifn: sd.interface.clone(),
            syncid: sd.syncid.or(vrid).unwrap_or(0),
            sync_maxlen: sd.maxlen.unwrap_or(0),
            mcast_group: sd.group,
            mcast_port: sd.port.unwrap_or(0),
            mcast_ttl: sd.ttl.unwrap_or(0),
        })
    } else {
        cfg.vrrp.instances.iter().find_map(|i| {
            i.lvs_sync_daemon_interface
                .as_ref()
                .map(|ifn| rvs_api::DaemonConfig {
                    state: rvs_api::DaemonState::Master,
                    mcast_ifn: ifn.clone(),
                    syncid: i.virtual_router_id.unwrap_or(0),
                    sync_maxlen: 0,
                    mcast_group: None,
                    mcast_port: 0,
                    mcast_ttl: 0,
                })
        })
    };
    Ok((specs, sync))
}

/// What `rvsadm` shows of one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceStatus {
    pub name: String,
    pub vrid: u8,
    pub interface: String,
    pub state: &'static str,
    pub priority: u8,
    pub transitions: u64,
}

/// The running instances.
#[derive(Debug, Default)]
pub struct Vrrp {
    status: Mutex<Vec<InstanceStatus>>,
    /// Addresses of the instances this director is master of.
    owned: Mutex<BTreeSet<IpAddr>>,
    stop: Arc<AtomicBool>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Vrrp {
    /// Status of every instance.
    pub fn status(&self) -> Vec<rvs_api::VrrpStatus> {
        lock(&self.status)
            .iter()
            .map(|s| rvs_api::VrrpStatus {
                name: s.name.clone(),
                vrid: s.vrid,
                interface: s.interface.clone(),
                state: s.state.to_owned(),
                priority: s.priority,
                transitions: s.transitions,
            })
            .collect()
    }

    /// Stops the instances (a master resigns with priority 0).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn ifaddr_v4(ifn: &str) -> Option<Ipv4Addr> {
    nix::ifaddrs::getifaddrs().ok()?.find_map(|a| {
        (a.interface_name == ifn)
            .then(|| a.address.and_then(|s| s.as_sockaddr_in().map(|s| s.ip())))
            .flatten()
    })
}

fn if_up(ifn: &str) -> bool {
    use nix::net::if_::InterfaceFlags;
    nix::ifaddrs::getifaddrs().is_ok_and(|mut it| {
        it.any(|a| {
            a.interface_name == ifn
                && a.flags.contains(InterfaceFlags::IFF_UP)
                && a.flags.contains(InterfaceFlags::IFF_RUNNING)
        })
    })
}

/// Starts every instance (before the rules load, VIPs are not answered for: see main).
pub fn start(daemon: &Arc<Daemon>, specs: Vec<VrrpSpec>) -> anyhow::Result<Arc<Vrrp>> {
    let v = Arc::new(Vrrp::default());
    let vips = crate::daemon::SteeringNeeds::of_director(&daemon.director).vips;
    for (k, mut spec) in specs.into_iter().enumerate() {
        // Addresses a killed predecessor left on the interface go first (we start as backup).
        for a in spec.config.addrs.iter().filter(|a| !vips.contains(a)) {
            let _ = std::process::Command::new("ip")
                .args(["addr", "del", &format!("{a}/32"), "dev", &spec.interface])
                .stderr(std::process::Stdio::null())
                .status();
        }
        let primary = ifaddr_v4(&spec.interface).ok_or_else(|| {
            anyhow::anyhow!("--vrrp: interface {} has no IPv4 address", spec.interface)
        })?;
        spec.config.primary = IpAddr::V4(primary);
        let sock = vrrp_socket(&spec.interface, primary)
            .map_err(|e| anyhow::anyhow!("--vrrp {}: socket: {e}", spec.config.name))?;
        lock(&v.status).push(InstanceStatus {
            name: spec.config.name.clone(),
            vrid: spec.config.vrid,
            interface: spec.interface.clone(),
            state: State::Init.name(),
            priority: spec.config.priority,
            transitions: 0,
        });
        let (d, v2) = (daemon.clone(), v.clone());
        std::thread::Builder::new()
            .name(format!("rvs-vrrp{k}"))
            .spawn(move || run(&d, &v2, k, &spec, &sock))?;
    }
    Ok(v)
}

fn vrrp_socket(ifn: &str, primary: Ipv4Addr) -> std::io::Result<Socket> {
    let s = Socket::new(
        Domain::IPV4,
        Type::RAW,
        Some(Protocol::from(i32::from(wire::IPPROTO_VRRP))),
    )?;
    s.bind_device(Some(ifn.as_bytes()))?;
    s.set_multicast_ttl_v4(u32::from(wire::TTL))?;
    s.set_ttl_v4(u32::from(wire::TTL))?;
    s.set_multicast_loop_v4(false)?;
    s.set_multicast_if_v4(&primary)?;
    s.join_multicast_v4(&wire::GROUP_V4, &primary)?;
    // Not bound to the primary address: a raw socket bound to an address receives only packets sent to it.
    Ok(s)
}

/// Keeps the announcements going: gratuitous ARPs now and with the next advertisements.
const GARP_REPEAT: u8 = 3;

fn run(daemon: &Daemon, v: &Vrrp, k: usize, spec: &VrrpSpec, sock: &Socket) {
    let mut inst = Instance::new(spec.config.clone());
    let mut buf = [0u8; 2048];
    let mut out = Vec::new();
    let mut garps_left = 0u8;
    let t0 = now().0;
    let mut actions = inst.startup(t0);
    let mut faulty = false;
    loop {
        for a in actions.drain(..) {
            act(
                daemon,
                v,
                k,
                spec,
                &inst,
                sock,
                &mut out,
                a,
                &mut garps_left,
            );
        }
        if v.stop.load(Ordering::Relaxed) {
            let a = inst.shutdown();
            for x in a {
                act(
                    daemon,
                    v,
                    k,
                    spec,
                    &inst,
                    sock,
                    &mut out,
                    x,
                    &mut garps_left,
                );
            }
            return;
        }
        let t = now().0;
        let fault = spec.track.iter().any(|i| !if_up(i)) || !if_up(&spec.interface);
        if fault != faulty {
            faulty = fault;
            actions = inst.set_fault(t, fault);
            continue;
        }
        let wait = inst
            .next_deadline()
            .map_or(200, |d| d.saturating_sub(t))
            .clamp(5, 200);
        let _ = sock.set_read_timeout(Some(Duration::from_millis(wait)));
        match (&*sock).read(&mut buf) {
            Ok(n) => {
                let t = now().0;
                if let Some((src, dst, ttl, payload)) = ipv4_payload(buf.get(..n).unwrap_or(&[])) {
                    match Advert::parse(payload, src, dst) {
                        Ok(adv) => match inst.on_advert(t, src, ttl, &adv) {
                            Ok(a) => actions = a,
                            Err(why) => tracing::trace!(%src, %why, "VRRP advert ignored"),
                        },
                        Err(e) => tracing::debug!(%src, error = %e, "bad VRRP packet dropped"),
                    }
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) => {}
            Err(e) => {
                tracing::error!(error = %e, "VRRP receive failed");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        let t = now().0;
        let mut timer = inst.on_timer(t);
        if !timer.is_empty() && garps_left > 0 && inst.state() == State::Master {
            garps_left -= 1;
            announce(daemon, spec);
        }
        actions.append(&mut timer);
    }
}

/// (src, dst, TTL, payload) of an IPv4 packet from a raw socket.
fn ipv4_payload(p: &[u8]) -> Option<(IpAddr, IpAddr, u8, &[u8])> {
    let b0 = *p.first()?;
    if b0 >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(b0 & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([*p.get(2)?, *p.get(3)?]));
    if ihl < 20 || total < ihl || p.len() < total || p.get(9) != Some(&wire::IPPROTO_VRRP) {
        return None;
    }
    let src = IpAddr::V4(Ipv4Addr::new(p[12], p[13], p[14], p[15]));
    let dst = IpAddr::V4(Ipv4Addr::new(p[16], p[17], p[18], p[19]));
    Some((src, dst, p[8], &p[ihl..total]))
}

#[allow(clippy::too_many_arguments)]
fn act(
    daemon: &Daemon,
    v: &Vrrp,
    k: usize,
    spec: &VrrpSpec,
    inst: &Instance,
    sock: &Socket,
    out: &mut Vec<u8>,
    a: Action,
    garps_left: &mut u8,
) {
    let c = &spec.config;
    match a {
        Action::Send { priority } => {
            let dsts: Vec<IpAddr> = if spec.unicast_peers.is_empty() {
                vec![IpAddr::V4(wire::GROUP_V4)]
            } else {
                spec.unicast_peers.iter().map(|p| IpAddr::V4(*p)).collect()
            };
            for dst in dsts {
                if wire::build(
                    out,
                    c.version,
                    c.vrid,
                    priority,
                    c.interval_cs,
                    c.auth,
                    &c.addrs,
                    c.primary,
                    dst,
                )
                .is_ok()
                {
                    let to: socket2::SockAddr = SocketAddr::new(dst, 0).into();
                    if let Err(e) = sock.send_to(out, &to) {
                        tracing::warn!(error = %e, "VRRP advertisement not sent");
                    }
                }
            }
        }
        Action::TakeOver => {
            let owned = {
                let mut o = lock(&v.owned);
                o.extend(c.addrs.iter().copied());
                o.clone()
            };
            apply_ownership(daemon, spec, owned, true);
            announce(daemon, spec);
            *garps_left = GARP_REPEAT;
        }
        Action::Release => {
            let owned = {
                let mut o = lock(&v.owned);
                for a in &c.addrs {
                    o.remove(a);
                }
                o.clone()
            };
            apply_ownership(daemon, spec, owned, false);
            *garps_left = 0;
        }
        Action::Transition { from, to } => {
            tracing::info!(
                instance = %c.name,
                vrid = c.vrid,
                from = from.name(),
                to = to.name(),
                priority = c.priority,
                "VRRP state change"
            );
            if let Some(s) = lock(&v.status).get_mut(k) {
                s.state = to.name();
                s.transitions += 1;
            }
            if let Some(script) = &spec.notify {
                let line = format!("{script} INSTANCE {} {} {}", c.name, to.name(), c.priority);
                run_script(&line);
            }
            let specific = match to {
                State::Master => &spec.notify_master,
                State::Backup => &spec.notify_backup,
                State::Fault => &spec.notify_fault,
                State::Init => &None,
            };
            if let Some(script) = specific {
                run_script(script);
            }
            let _ = inst;
        }
    }
}

/// Runs a notify script through `sh -c` (as keepalived); reaped by a thread of its own so a slow script never holds
/// VRRP up.
fn run_script(line: &str) {
    let r = std::process::Command::new("/bin/sh")
        .args(["-c", line])
        .stdin(std::process::Stdio::null())
        .spawn();
    match r {
        Ok(mut child) => {
            let _ = std::thread::Builder::new()
                .name("rvs-notify".into())
                .spawn(move || child.wait());
        }
        Err(e) => tracing::warn!(script = line, error = %e, "notify script failed"),
    }
}

/// Answer (or stop answering) for the instance's addresses: VIPs through the steering's proxy
/// neighbours, other addresses as addresses of the interface.
fn apply_ownership(daemon: &Daemon, spec: &VrrpSpec, owned: BTreeSet<IpAddr>, master: bool) {
    let vips = crate::daemon::SteeringNeeds::of_director(&daemon.director).vips;
    if let Err(e) = daemon.set_owned(Some(owned)) {
        tracing::error!(error = %e, "VRRP: changing the VIPs answered for failed");
    }
    for a in spec.config.addrs.iter().filter(|a| !vips.contains(a)) {
        let verb = if master { "add" } else { "del" };
        let r = std::process::Command::new("ip")
            .args(["addr", verb, &format!("{a}/32"), "dev", &spec.interface])
            .stderr(std::process::Stdio::null())
            .status();
        if !r.is_ok_and(|s| s.success()) && master {
            tracing::warn!(address = %a, interface = %spec.interface, "VRRP: adding the address failed");
        }
    }
}

/// Gratuitous ARP for every IPv4 address of the instance, from the interface's MAC.
fn announce(daemon: &Daemon, spec: &VrrpSpec) {
    let _ = daemon;
    let Some(index) = rvs_io::sys::ifindex(&spec.interface) else {
        return;
    };
    let mac = rvs_io::netlink::Netlink::new()
        .ok()
        .and_then(|mut n| n.link_address(index).ok().flatten())
        .map(|(m, _)| m);
    let (Some(mac), Ok(tx)) = (mac, rvs_io::l2::L2Tx::new(false)) else {
        return;
    };
    for a in &spec.config.addrs {
        let IpAddr::V4(ip) = a else { continue };
        let frame = wire::gratuitous_arp(mac, *ip);
        let mut hop = rvs_io::l2::NextHop::new(index, 1500, [0xff; 6], mac, false);
        hop.eth.copy_from_slice(&frame[..rvs_io::l2::ETH_HLEN]);
        if let Err(e) = tx.send(
            &hop,
            &rvs_io::VnetHdr::default(),
            &frame[rvs_io::l2::ETH_HLEN..],
        ) {
            tracing::warn!(address = %ip, error = %e, "gratuitous ARP not sent");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_parsing() {
        let s = parse_spec(
            "name=VI_1,interface=pub0,vrid=51,priority=150,address=198.51.100.100,advert-int=1,nopreempt,unicast-peer=198.51.100.2,auth-pass=secret",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.config.vrid, 51);
        assert_eq!(s.config.priority, 150);
        assert!(!s.config.preempt);
        assert_eq!(s.config.version, Version::V2);
        assert_eq!(s.unicast_peers.len(), 1);
        assert!(parse_spec("interface=pub0,address=198.51.100.100").is_err());
        assert!(parse_spec("interface=pub0,vrid=1").is_err());
        assert!(parse_spec("interface=pub0,vrid=1,address=x").is_err());
        assert!(parse_spec("interface=pub0,vrid=1,address=198.51.100.1,advert-int=0.5").is_err());
        let v3 = parse_spec("interface=pub0,vrid=1,address=198.51.100.1,advert-int=0.5,version=3")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v3.config.interval_cs, 50);
    }

    #[test]
    fn keepalived_conf_blocks() {
        let text = "global_defs {\n  lvs_sync_daemon priv0 VI_1\n}\n\
            vrrp_instance VI_1 {\n  state MASTER\n  interface pub0\n  virtual_router_id 51\n  priority 150\n\
              advert_int 2\n  nopreempt\n  authentication {\n    auth_type PASS\n    auth_pass secret\n  }\n\
              virtual_ipaddress {\n    198.51.100.100/32 dev pub0\n  }\n  unicast_peer {\n    198.51.100.2\n  }\n\
              track_interface {\n    priv0\n  }\n  notify /etc/rvs/notify.sh\n}\n";
        let loaded = rvs_keepalived::parse_str(text).unwrap_or_else(|e| panic!("{e}"));
        let (specs, sync) = from_keepalived(&loaded.config).unwrap_or_else(|e| panic!("{e}"));
        let s = &specs[0];
        assert_eq!(
            (s.config.vrid, s.config.priority, s.config.interval_cs),
            (51, 150, 200)
        );
        assert!(!s.config.preempt);
        assert_eq!(s.config.version, Version::V2);
        assert_eq!(s.config.auth, Auth::Simple(*b"secret\0\0"));
        assert_eq!(
            s.config.addrs,
            vec![IpAddr::V4(Ipv4Addr::new(198, 51, 100, 100))]
        );
        assert_eq!(s.unicast_peers, vec![Ipv4Addr::new(198, 51, 100, 2)]);
        assert_eq!(s.track, vec!["priv0".to_owned()]);
        assert_eq!(s.notify.as_deref(), Some("/etc/rvs/notify.sh"));
        let sync = sync.unwrap_or_else(|| panic!("lvs_sync_daemon"));
        assert_eq!((sync.mcast_ifn.as_str(), sync.syncid), ("priv0", 51));
    }

    #[test]
    fn raw_packet_payload() {
        let mut p = vec![
            0x45, 0, 0, 32, 0, 0, 0, 0, 255, 112, 0, 0, 198, 51, 100, 1, 224, 0, 0, 18,
        ];
        p.extend_from_slice(&[0x21, 51, 100, 1, 0, 1, 0, 0, 1, 2, 3, 4]);
        let (s, d, ttl, pl) = ipv4_payload(&p).unwrap_or_else(|| panic!("parses"));
        assert_eq!(
            (s.to_string(), d.to_string(), ttl, pl.len()),
            ("198.51.100.1".into(), "224.0.0.18".into(), 255, 12)
        );
        p[9] = 6;
        assert!(ipv4_payload(&p).is_none());
        assert!(ipv4_payload(&p[..10]).is_none());
    }
}
