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
//! - IPv4 and IPv6 instances (an instance is one family, as RFC 5798 and keepalived have it; IPv6 is version 3,
//!   from the interface's link-local address); sockets and announcements in [`net`].

mod net;
pub mod track;

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rvs_vrrp::wire::{self, Version};
use rvs_vrrp::{Action, Advert, Auth, Config, Instance, State};

use self::net::VrrpSocket;
use self::track::{TrackedScript, Weight};
use crate::daemon::Daemon;
use crate::dataplane::now;

/// One `--vrrp` instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VrrpSpec {
    pub config: Config,
    pub interface: String,
    /// Unicast adverts to these instead of the multicast group (of the instance's family).
    pub unicast_peers: Vec<IpAddr>,
    /// keepalived's `unicast_src_ip`: the adverts' source (default: the interface's first IPv4 address, or its IPv6
    /// link-local address).
    pub unicast_src: Option<IpAddr>,
    /// keepalived's `notify`: run through `sh -c` with `INSTANCE NAME STATE PRIORITY` appended.
    pub notify: Option<String>,
    /// keepalived's `notify_master` / `notify_backup` / `notify_fault`: run through `sh -c` on that state.
    pub notify_master: Option<String>,
    pub notify_backup: Option<String>,
    pub notify_fault: Option<String>,
    /// Tracked interfaces (keepalived's `track_interface`, with the sync group's), weight 0 = FAULT when down.
    pub track: Vec<(String, Weight)>,
    /// Tracked scripts (keepalived's `track_script` of `vrrp_script`s, with the sync group's).
    pub track_scripts: Vec<TrackedScript>,
    /// The `vrrp_sync_group` the instance belongs to.
    pub sync_group: Option<GroupSpec>,
}

/// A sync group as its members carry it (keepalived's `vrrp_sync_group`): instances that change state together.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GroupSpec {
    pub name: String,
    /// Run with `GROUP NAME STATE` appended once every member is in a new state.
    pub notify: Option<String>,
    pub notify_master: Option<String>,
    pub notify_backup: Option<String>,
    pub notify_fault: Option<String>,
}

/// Parses `name=VI_1,interface=pub0,vrid=51,priority=150,address=198.51.100.100[,address=...]
/// [,advert-int=1][,version=2|3][,nopreempt][,preempt-delay=S][,unicast-peer=IP]
/// [,unicast-src=IP][,notify=/path][,track-interface=IF[:WEIGHT]][,track-script=NAME[:WEIGHT]][,sync-group=NAME]
/// [,auth-pass=PW]`. Addresses are all IPv4 or all IPv6; an IPv6 instance is version 3 whatever `version=` says
/// (version 2 is IPv4 only; keepalived does the same). `track-script` names a `--vrrp-script`.
pub fn parse_specs(instances: &[String], scripts: &[String]) -> Result<Vec<VrrpSpec>, String> {
    let scripts = scripts
        .iter()
        .map(|s| parse_script(s))
        .collect::<Result<Vec<_>, _>>()?;
    instances.iter().map(|s| parse_spec(s, &scripts)).collect()
}

/// Parses `--vrrp-script name=NAME[,interval=S][,timeout=S][,weight=W][,reverse][,rise=N][,fall=N][,init-fail]
/// ,script=COMMAND`: keepalived's `vrrp_script`, same defaults (interval 1 s, timeout = interval, weight 0, rise and
/// fall 1). `script=` comes last and takes the rest of the line, commas included.
pub fn parse_script(s: &str) -> Result<track::ScriptSpec, String> {
    let (opts, command) = match s.split_once("script=") {
        Some((o, c)) if o.is_empty() || o.ends_with(',') => (o, c),
        _ => return Err("--vrrp-script: script=COMMAND is required, last".into()),
    };
    if command.trim().is_empty() {
        return Err("--vrrp-script: empty script=".into());
    }
    let mut spec = track::ScriptSpec {
        name: String::new(),
        command: command.to_owned(),
        interval: Duration::from_secs(1),
        timeout: Duration::ZERO,
        weight: Weight::default(),
        rise: 1,
        fall: 1,
        init_fail: false,
    };
    let secs = |v: &str| {
        v.parse::<f64>()
            .ok()
            .filter(|x| (0.001..=86_400.0).contains(x))
            .map(Duration::from_secs_f64)
    };
    for kv in opts.split(',').filter(|x| !x.is_empty()) {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        let bad = || format!("--vrrp-script: bad {k}={v}");
        match k {
            "name" if !v.is_empty() => spec.name = v.to_owned(),
            "interval" => spec.interval = secs(v).ok_or_else(bad)?,
            "timeout" => spec.timeout = secs(v).ok_or_else(bad)?,
            "weight" => {
                spec.weight.weight = v
                    .parse::<i32>()
                    .ok()
                    .filter(|w| w.abs() <= 253)
                    .ok_or_else(bad)?
            }
            "reverse" => spec.weight.reverse = true,
            "rise" => spec.rise = v.parse::<u32>().ok().filter(|&n| n > 0).ok_or_else(bad)?,
            "fall" => spec.fall = v.parse::<u32>().ok().filter(|&n| n > 0).ok_or_else(bad)?,
            "init-fail" => spec.init_fail = true,
            _ => return Err(format!("--vrrp-script: unknown key {k}")),
        }
    }
    if spec.name.is_empty() {
        return Err("--vrrp-script: name= is required".into());
    }
    if spec.timeout.is_zero() {
        spec.timeout = spec.interval;
    }
    Ok(spec)
}

fn parse_spec(s: &str, scripts: &[track::ScriptSpec]) -> Result<VrrpSpec, String> {
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
    let mut unicast_src = None;
    let mut notify = None;
    let mut track = Vec::new();
    let mut sync_group = None;
    let mut track_scripts = Vec::new();
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
            "address" => addrs.push(v.parse::<IpAddr>().map_err(|_| bad())?),
            "unicast-peer" => spec_peers.push(v.parse::<IpAddr>().map_err(|_| bad())?),
            "unicast-src" => unicast_src = Some(v.parse::<IpAddr>().map_err(|_| bad())?),
            "notify" => notify = Some(v.to_owned()),
            "track-interface" => {
                let (ifn, w) = match v.split_once(':') {
                    Some((i, w)) => (
                        i,
                        w.parse::<i32>()
                            .ok()
                            .filter(|w| w.abs() <= 253)
                            .ok_or_else(bad)?,
                    ),
                    None => (v, 0),
                };
                if ifn.is_empty() {
                    return Err(bad());
                }
                track.push((
                    ifn.to_owned(),
                    Weight {
                        weight: w,
                        reverse: false,
                    },
                ));
            }
            "track-script" => {
                let (name, w) = match v.split_once(':') {
                    Some((n, w)) => (
                        n,
                        Some(
                            w.parse::<i32>()
                                .ok()
                                .filter(|w| w.abs() <= 253)
                                .ok_or_else(bad)?,
                        ),
                    ),
                    None => (v, None),
                };
                let script = scripts
                    .iter()
                    .find(|s| s.name == name)
                    .ok_or_else(|| {
                        format!("--vrrp: track-script={name}: no --vrrp-script name={name}")
                    })?
                    .clone();
                let weight = w.map_or(script.weight, |w| Weight {
                    weight: w,
                    reverse: script.weight.reverse,
                });
                track_scripts.push(TrackedScript { script, weight });
            }
            "sync-group" if !v.is_empty() => {
                sync_group = Some(GroupSpec {
                    name: v.to_owned(),
                    ..GroupSpec::default()
                })
            }
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
    let v6 = one_family(&addrs, &spec_peers, unicast_src).map_err(|e| format!("--vrrp: {e}"))?;
    if v6 {
        version = Version::V3;
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
        unicast_src,
        notify,
        notify_master: None,
        notify_backup: None,
        notify_fault: None,
        track,
        track_scripts,
        sync_group,
    })
}

/// The `vrrp_script` called `name`.
fn vrrp_script(cfg: &rvs_keepalived::Config, name: &str) -> Result<track::ScriptSpec, String> {
    let s = cfg
        .vrrp
        .scripts
        .iter()
        .find(|s| s.name == name)
        .ok_or_else(|| format!("track_script {name}: no vrrp_script {name}"))?;
    let command = s
        .script
        .as_ref()
        .map(|c| c.command.clone())
        .ok_or_else(|| format!("{}: vrrp_script {name} has no script", s.loc))?;
    Ok(track::ScriptSpec {
        name: name.to_owned(),
        command,
        interval: s.interval,
        timeout: s.timeout,
        weight: Weight {
            weight: s.weight,
            reverse: s.weight_reverse,
        },
        rise: s.rise,
        fall: s.fall,
        init_fail: s.init_fail,
    })
}

/// Whether an instance is IPv6: its addresses, unicast peers and source are all of one family.
fn one_family(addrs: &[IpAddr], peers: &[IpAddr], src: Option<IpAddr>) -> Result<bool, String> {
    let v6 = addrs.first().is_some_and(IpAddr::is_ipv6);
    let mixed = |a: &IpAddr| a.is_ipv6() != v6;
    if addrs.iter().any(mixed) {
        return Err(
            "IPv4 and IPv6 addresses in one instance (an instance is one family: use two)".into(),
        );
    }
    if peers.iter().chain(src.iter()).any(mixed) {
        return Err(format!(
            "unicast peers and source must be {} as the instance's addresses",
            if v6 { "IPv6" } else { "IPv4" }
        ));
    }
    Ok(v6)
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
        let addrs: Vec<IpAddr> = i.virtual_ipaddress.iter().map(|v| v.addr).collect();
        if addrs.is_empty() {
            return Err(format!("{at}: no virtual_ipaddress"));
        }
        let peers = i.unicast_peer.clone();
        let v6 = one_family(&addrs, &peers, i.unicast_src_ip.or(i.mcast_src_ip))
            .map_err(|e| format!("{at}: {e}"))?;
        // Version 2 is IPv4 only: keepalived runs an IPv6 instance as version 3 whatever vrrp_version says.
        let version = if v6 { Version::V3 } else { version };
        let interval_cs = u16::try_from(i.advert_int.as_millis() / 10)
            .unwrap_or(u16::MAX)
            .clamp(1, 4095);
        let sh = |s: &Option<rvs_keepalived::Script>| s.as_ref().map(|s| s.command.clone());
        // The instance's sync group (its tracking applies to every member, as in keepalived).
        let group = cfg
            .vrrp
            .sync_groups
            .iter()
            .find(|g| g.group.contains(&i.name));
        let sync_group = group.map(|g| GroupSpec {
            name: g.name.clone(),
            notify: sh(&g.notify),
            notify_master: sh(&g.notify_master),
            notify_backup: sh(&g.notify_backup),
            notify_fault: sh(&g.notify_fault),
        });
        let group_ifs = group.map_or(&[][..], |g| &g.track_interface[..]);
        let track = i
            .track_interface
            .iter()
            .chain(group_ifs)
            .map(|t| {
                let weight = Weight {
                    weight: t.weight.unwrap_or(0),
                    reverse: false,
                };
                (t.name.clone(), weight)
            })
            .collect();
        let group_scripts = group.map_or(&[][..], |g| &g.track_script[..]);
        let mut track_scripts = Vec::new();
        for t in i.track_script.iter().chain(group_scripts) {
            let script = vrrp_script(cfg, &t.name).map_err(|e| format!("{}: {e}", t.loc))?;
            let weight = match t.weight {
                Some(w) => Weight {
                    weight: w,
                    reverse: script.weight.reverse,
                },
                None => script.weight,
            };
            track_scripts.push(TrackedScript { script, weight });
        }
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
            // keepalived's mcast_src_ip is the same setting for multicast adverts.
            unicast_src: i.unicast_src_ip.or(i.mcast_src_ip),
            notify: sh(&i.notify),
            notify_master: sh(&i.notify_master),
            notify_backup: sh(&i.notify_backup),
            notify_fault: sh(&i.notify_fault),
            track,
            track_scripts,
            sync_group,
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
    /// Dropped by the engine thread when it returns (after resigning).
    done: Mutex<Option<std::sync::mpsc::Receiver<()>>>,
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
    /// Waits (at most half a second) until the masters have sent their priority-0 adverts and released.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(rx) = lock(&self.done).take() {
            let _ = rx.recv_timeout(Duration::from_millis(500));
        }
    }
}

/// Starts every instance (before the rules load, VIPs are not answered for: see main). `public_if`: rvsd's
/// `--public-if`, where every instance address is a VIP (see [`on_interface`]).
pub fn start(
    daemon: &Arc<Daemon>,
    specs: Vec<VrrpSpec>,
    public_if: Option<String>,
) -> anyhow::Result<Arc<Vrrp>> {
    let v = Arc::new(Vrrp::default());
    let vips = crate::daemon::SteeringNeeds::of_director(&daemon.director).vips;
    let mut insts = Vec::new();
    let mut groups: Vec<Group> = Vec::new();
    let mut scripts: Vec<track::ScriptRun> = Vec::new();
    let t0 = std::time::Instant::now();
    for (k, mut spec) in specs.into_iter().enumerate() {
        // Addresses a killed predecessor left on the interface go first (we start as backup).
        for a in &spec.config.addrs {
            if on_interface(&spec, *a, &vips, public_if.as_deref()) {
                interface_address(AddressChange::Delete, *a, &spec.interface);
            }
        }
        let v6 = spec.config.addrs.first().is_some_and(IpAddr::is_ipv6);
        let primary = match spec.unicast_src {
            Some(a) => Some(a),
            None if v6 => net::ifaddr_v6_link_local(&spec.interface).map(IpAddr::V6),
            None => net::ifaddr_v4(&spec.interface).map(IpAddr::V4),
        };
        let primary = primary.ok_or_else(|| {
            anyhow::anyhow!(
                "--vrrp {}: interface {} has no {} address",
                spec.config.name,
                spec.interface,
                if v6 { "IPv6 link-local" } else { "IPv4" }
            )
        })?;
        spec.config.primary = primary;
        let ifindex = rvs_io::sys::ifindex(&spec.interface).ok_or_else(|| {
            anyhow::anyhow!(
                "--vrrp {}: no interface {}",
                spec.config.name,
                spec.interface
            )
        })?;
        let sock = VrrpSocket::open(&spec.interface, ifindex, primary)
            .map_err(|e| anyhow::anyhow!("--vrrp {}: socket: {e}", spec.config.name))?;
        lock(&v.status).push(InstanceStatus {
            name: spec.config.name.clone(),
            vrid: spec.config.vrid,
            interface: spec.interface.clone(),
            state: State::Init.name(),
            priority: spec.config.priority,
            transitions: 0,
        });
        for ts in &spec.track_scripts {
            if !scripts.iter().any(|s| s.spec.name == ts.script.name) {
                scripts.push(track::ScriptRun::new(ts.script.clone(), t0));
            }
        }
        let group = spec.sync_group.as_ref().map(|g| {
            match groups.iter().position(|x| x.spec.name == g.name) {
                Some(i) => i,
                None => {
                    groups.push(Group {
                        spec: g.clone(),
                        members: Vec::new(),
                        notified: None,
                    });
                    groups.len() - 1
                }
            }
        });
        if let Some(g) = group {
            groups[g].members.push(k);
        }
        insts.push(Running {
            inst: Instance::new(spec.config.clone()),
            priority: spec.config.priority,
            spec,
            sock,
            garps_left: 0,
            fault: false,
            group,
        });
    }
    let mut engine = Engine {
        daemon: daemon.clone(),
        v: v.clone(),
        insts,
        groups,
        scripts,
        out: Vec::new(),
        public_if,
        watch: match net::LinkWatch::open() {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(error = %e, "VRRP: no rtnetlink notifications, interfaces are polled");
                None
            }
        },
        links_changed: false,
    };
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    *lock(&v.done) = Some(done_rx);
    std::thread::Builder::new()
        .name("rvs-vrrp".into())
        .spawn(move || {
            engine.run();
            drop(done_tx);
        })?;
    Ok(v)
}

/// Keeps the announcements going: gratuitous ARPs / unsolicited NAs now and with the next advertisements.
const GARP_REPEAT: u8 = 3;
/// The longest the loop sleeps (it also wakes for packets, timers, scripts and link changes).
const MAX_WAIT_MS: u64 = 100;
/// How often interfaces are looked at when rtnetlink's notifications cannot be had (they normally drive it).
const POLL_WITHOUT_WATCH: Duration = Duration::from_millis(100);

/// One running instance.
struct Running {
    spec: VrrpSpec,
    inst: Instance,
    sock: VrrpSocket,
    garps_left: u8,
    /// In FAULT for its own tracking or its group's.
    fault: bool,
    /// The effective priority (the configured one moved by tracking weights).
    priority: u8,
    group: Option<usize>,
}

/// A sync group: its members (indexes into the instances) and the state its notify scripts were last run for.
struct Group {
    spec: GroupSpec,
    members: Vec<usize>,
    notified: Option<State>,
}

/// Every instance in one thread: one loop polls their sockets, runs their timers, tracks interfaces and scripts,
/// and moves sync groups together (a member's transition is applied to the others before anything else runs).
struct Engine {
    daemon: Arc<Daemon>,
    v: Arc<Vrrp>,
    insts: Vec<Running>,
    groups: Vec<Group>,
    scripts: Vec<track::ScriptRun>,
    out: Vec<u8>,
    /// rvsd's `--public-if`.
    public_if: Option<String>,
    /// Link and address notifications (`None`: polled every [`POLL_WITHOUT_WATCH`]).
    watch: Option<net::LinkWatch>,
    /// A notification arrived since the last look.
    links_changed: bool,
}

impl Engine {
    fn run(&mut self) {
        let t0 = now().0;
        let mut pending: Vec<(usize, Action)> = Vec::new();
        // Tracking first: an instance whose interface is down starts in FAULT, not BACKUP.
        self.track(t0, &mut pending);
        for (k, r) in self.insts.iter_mut().enumerate() {
            if !r.fault {
                pending.extend(r.inst.startup(t0).into_iter().map(|a| (k, a)));
            }
        }
        let mut buf = [0u8; 2048];
        let mut tracked_at = std::time::Instant::now();
        loop {
            self.apply(&mut pending);
            if self.v.stop.load(Ordering::Relaxed) {
                for (k, r) in self.insts.iter_mut().enumerate() {
                    pending.extend(r.inst.shutdown().into_iter().map(|a| (k, a)));
                }
                self.apply(&mut pending);
                return;
            }
            let wall = std::time::Instant::now();
            let mut changed = std::mem::take(&mut self.links_changed);
            for s in &mut self.scripts {
                changed |= s.poll(wall);
            }
            if changed
                || (self.watch.is_none() && wall.duration_since(tracked_at) >= POLL_WITHOUT_WATCH)
            {
                tracked_at = wall;
                self.track(now().0, &mut pending);
                if !pending.is_empty() {
                    continue;
                }
            }
            let t = now().0;
            let mut wait = MAX_WAIT_MS;
            for r in &self.insts {
                if let Some(d) = r.inst.next_deadline() {
                    wait = wait.min(d.saturating_sub(t));
                }
            }
            for s in &self.scripts {
                let due = s.next_due(wall).saturating_duration_since(wall);
                wait = wait.min(due.as_millis() as u64);
            }
            let ready = self.wait(wait.clamp(1, MAX_WAIT_MS));
            for k in ready {
                self.receive(k, &mut buf, &mut pending);
            }
            let t = now().0;
            for (k, r) in self.insts.iter_mut().enumerate() {
                let timer = r.inst.on_timer(t);
                if !timer.is_empty() && r.garps_left > 0 && r.inst.state() == State::Master {
                    r.garps_left -= 1;
                    net::announce(&r.spec.interface, &r.spec.config.addrs);
                }
                pending.extend(timer.into_iter().map(|a| (k, a)));
            }
        }
    }

    /// Polls every socket (and the link watch) up to `ms`; the instances with a packet waiting.
    fn wait(&mut self, ms: u64) -> Vec<usize> {
        use std::os::fd::AsRawFd;
        let mut fds: Vec<libc::pollfd> = self
            .insts
            .iter()
            .map(|r| r.sock.as_raw_fd())
            .chain(self.watch.as_ref().map(AsRawFd::as_raw_fd))
            .map(|fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        let timeout = libc::c_int::try_from(ms).unwrap_or(100);
        // SAFETY: `fds` is a live, exclusively borrowed array of `fds.len()` pollfd structs for the whole call, and
        // its descriptors belong to sockets `self` keeps open.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                tracing::error!(error = %e, "VRRP poll failed");
                std::thread::sleep(Duration::from_millis(100));
            }
            return Vec::new();
        }
        let n = self.insts.len();
        if fds.get(n).is_some_and(|f| f.revents != 0)
            && let Some(w) = &mut self.watch
        {
            self.links_changed |= w.drain();
        }
        fds.iter()
            .take(n)
            .enumerate()
            .filter(|(_, f)| f.revents != 0)
            .map(|(k, _)| k)
            .collect()
    }

    /// Every packet waiting on instance `k`'s socket.
    fn receive(&mut self, k: usize, buf: &mut [u8], pending: &mut Vec<(usize, Action)>) {
        let Some(r) = self.insts.get_mut(k) else {
            return;
        };
        // Bounded: a flood cannot hold the other instances' timers up for long.
        for _ in 0..64 {
            match r.sock.recv(buf) {
                Ok(Some(p)) => {
                    let t = now().0;
                    let src = p.src;
                    match Advert::parse(p.payload, src, p.dst) {
                        Ok(adv) => match r.inst.on_advert(t, src, p.ttl, &adv) {
                            Ok(a) => pending.extend(a.into_iter().map(|a| (k, a))),
                            Err(why) => tracing::trace!(%src, %why, "VRRP advert ignored"),
                        },
                        Err(e) => tracing::debug!(%src, error = %e, "bad VRRP packet dropped"),
                    }
                }
                Ok(None) => return,
                Err(e) => {
                    tracing::error!(error = %e, "VRRP receive failed");
                    return;
                }
            }
        }
    }

    /// Tracked interfaces and scripts: FAULT (an instance's own or its group's) and effective priorities.
    fn track(&mut self, t: u64, pending: &mut Vec<(usize, Action)>) {
        let links = track::Links::now();
        let up = &links.up;
        let mut faults = Vec::with_capacity(self.insts.len());
        let mut deltas = Vec::with_capacity(self.insts.len());
        for r in &self.insts {
            let mut fault = !up.contains(&r.spec.interface);
            let mut delta = 0;
            for (ifn, w) in &r.spec.track {
                let (f, d) = w.effect(up.contains(ifn));
                fault |= f;
                delta += d;
            }
            for ts in &r.spec.track_scripts {
                let ok = self
                    .scripts
                    .iter()
                    .find(|s| s.spec.name == ts.script.name)
                    .is_some_and(track::ScriptRun::ok);
                let (f, d) = ts.weight.effect(ok);
                fault |= f;
                delta += d;
            }
            faults.push(fault);
            deltas.push(delta);
        }
        // keepalived's sync group: one member in FAULT puts them all in FAULT.
        for g in &self.groups {
            if g.members.iter().any(|&m| faults.get(m) == Some(&true)) {
                for &m in &g.members {
                    if let Some(f) = faults.get_mut(m) {
                        *f = true;
                    }
                }
            }
        }
        for (k, r) in self.insts.iter_mut().enumerate() {
            let p = track::effective_priority(r.spec.config.priority, deltas[k]);
            if p != r.priority {
                tracing::info!(
                    instance = %r.spec.config.name,
                    from = r.priority,
                    to = p,
                    "VRRP effective priority change"
                );
                r.priority = p;
                r.inst.set_priority(p);
                if let Some(s) = lock(&self.v.status).get_mut(k) {
                    s.priority = p;
                }
            }
            if faults[k] != r.fault {
                r.fault = faults[k];
                pending.extend(r.inst.set_fault(t, r.fault).into_iter().map(|a| (k, a)));
            }
        }
        self.restore_addresses(&links);
    }

    /// A master's addresses that are not VIPs (the real servers' gateway) are put back on the interface when
    /// something removed them, as keepalived does: the backup does not hold them, so nobody else would answer.
    fn restore_addresses(&self, links: &track::Links) {
        let mut vips = None;
        for r in self
            .insts
            .iter()
            .filter(|r| r.inst.state() == State::Master)
        {
            for a in &r.spec.config.addrs {
                if links.addrs.contains(&(r.spec.interface.clone(), *a)) {
                    continue;
                }
                let vips = vips.get_or_insert_with(|| {
                    crate::daemon::SteeringNeeds::of_director(&self.daemon.director).vips
                });
                if !on_interface(&r.spec, *a, vips, self.public_if.as_deref()) {
                    continue;
                }
                let ok = interface_address(AddressChange::Add, *a, &r.spec.interface);
                tracing::warn!(
                    instance = %r.spec.config.name,
                    address = %a,
                    interface = %r.spec.interface,
                    added_back = ok,
                    "VRRP: an address of a master instance was removed from its interface"
                );
            }
        }
    }

    /// Carries out the pending actions; a sync group member's transition to master (or from master to backup)
    /// moves the other members the same way, their actions queued behind.
    fn apply(&mut self, pending: &mut Vec<(usize, Action)>) {
        let mut i = 0;
        while let Some(&(k, a)) = pending.get(i) {
            i += 1;
            self.act(k, a);
            let Action::Transition { from, to } = a else {
                continue;
            };
            let Some(g) = self.insts.get(k).and_then(|r| r.group) else {
                continue;
            };
            let t = now().0;
            let members = self.groups[g].members.clone();
            for j in members.into_iter().filter(|&j| j != k) {
                let r = &mut self.insts[j];
                let more = match (from, to) {
                    (_, State::Master) => r.inst.sync_master(t),
                    (State::Master, State::Backup) => r.inst.sync_backup(t),
                    _ => Vec::new(),
                };
                pending.extend(more.into_iter().map(|a| (j, a)));
            }
            self.group_notify(g);
        }
        pending.clear();
    }

    /// Runs a group's notify scripts once all its members are in one state (keepalived: `GROUP NAME STATE`).
    fn group_notify(&mut self, g: usize) {
        let Some(grp) = self.groups.get_mut(g) else {
            return;
        };
        let mut states = grp.members.iter().map(|&m| self.insts[m].inst.state());
        let Some(first) = states.next() else {
            return;
        };
        if first == State::Init || states.any(|s| s != first) || grp.notified == Some(first) {
            return;
        }
        grp.notified = Some(first);
        tracing::info!(group = %grp.spec.name, state = first.name(), "VRRP sync group state change");
        if let Some(script) = &grp.spec.notify {
            run_script(&format!(
                "{script} GROUP {} {}",
                grp.spec.name,
                first.name()
            ));
        }
        let specific = match first {
            State::Master => &grp.spec.notify_master,
            State::Backup => &grp.spec.notify_backup,
            State::Fault => &grp.spec.notify_fault,
            State::Init => &None,
        };
        if let Some(script) = specific {
            run_script(script);
        }
    }

    fn act(&mut self, k: usize, a: Action) {
        let Some(r) = self.insts.get_mut(k) else {
            return;
        };
        let (spec, c) = (&r.spec, &r.spec.config);
        match a {
            Action::Send { priority } => {
                let group = match c.primary {
                    IpAddr::V4(_) => IpAddr::V4(wire::GROUP_V4),
                    IpAddr::V6(_) => IpAddr::V6(wire::GROUP_V6),
                };
                let dsts = if spec.unicast_peers.is_empty() {
                    std::slice::from_ref(&group)
                } else {
                    &spec.unicast_peers[..]
                };
                for &dst in dsts {
                    if wire::build(
                        &mut self.out,
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
                        && let Err(e) = r.sock.send(&self.out, dst)
                    {
                        tracing::warn!(%dst, error = %e, "VRRP advertisement not sent");
                    }
                }
            }
            Action::TakeOver => {
                let owned = {
                    let mut o = lock(&self.v.owned);
                    o.extend(c.addrs.iter().copied());
                    o.clone()
                };
                apply_ownership(
                    &self.daemon,
                    spec,
                    owned,
                    AddressChange::Add,
                    self.public_if.as_deref(),
                );
                net::announce(&spec.interface, &c.addrs);
                r.garps_left = GARP_REPEAT;
            }
            Action::Release => {
                let owned = {
                    let mut o = lock(&self.v.owned);
                    for a in &c.addrs {
                        o.remove(a);
                    }
                    o.clone()
                };
                apply_ownership(
                    &self.daemon,
                    spec,
                    owned,
                    AddressChange::Delete,
                    self.public_if.as_deref(),
                );
                r.garps_left = 0;
            }
            Action::Transition { from, to } => {
                tracing::info!(
                    instance = %c.name,
                    vrid = c.vrid,
                    from = from.name(),
                    to = to.name(),
                    priority = r.priority,
                    "VRRP state change"
                );
                if let Some(s) = lock(&self.v.status).get_mut(k) {
                    s.state = to.name();
                    s.transitions += 1;
                }
                if let Some(script) = &spec.notify {
                    let line = format!("{script} INSTANCE {} {} {}", c.name, to.name(), r.priority);
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
            }
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

/// Whether an instance's addresses go onto its interface (taking over as master) or come off it (released).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AddressChange {
    Add,
    Delete,
}

/// Answer (or stop answering) for the instance's addresses: VIPs through the steering's proxy
/// neighbours (`owned`: every address answered for now), other addresses as addresses of the interface (`change`:
/// added on a takeover, deleted on a release).
fn apply_ownership(
    daemon: &Daemon,
    spec: &VrrpSpec,
    owned: BTreeSet<IpAddr>,
    change: AddressChange,
    public_if: Option<&str>,
) {
    let vips = crate::daemon::SteeringNeeds::of_director(&daemon.director).vips;
    if let Err(e) = daemon.set_owned(Some(owned)) {
        tracing::error!(error = %e, "VRRP: changing the VIPs answered for failed");
    }
    for a in spec
        .config
        .addrs
        .iter()
        .filter(|a| on_interface(spec, **a, &vips, public_if))
    {
        if !interface_address(change, *a, &spec.interface) && change == AddressChange::Add {
            tracing::warn!(address = %a, interface = %spec.interface, "VRRP: adding the address failed");
        }
    }
}

/// Whether the instance's address `a` is held as an address of its interface (keepalived's `virtual_ipaddress`)
/// rather than answered for as a VIP (proxy neighbour, steered into the TUN): not a VIP of a configured service,
/// and not on rvsd's public interface. The public side's addresses are VIPs even before their services exist, so
/// an address VRRP took over before the services were configured never becomes a local address that the VIP's
/// steering would then refuse.
fn on_interface(
    spec: &VrrpSpec,
    a: IpAddr,
    vips: &std::collections::BTreeSet<IpAddr>,
    public_if: Option<&str>,
) -> bool {
    !vips.contains(&a) && public_if != Some(spec.interface.as_str())
}

/// Adds (or deletes) `a` as a host address of `ifn`, as keepalived's `virtual_ipaddress`; IPv6 without duplicate
/// address detection (the address is the instance's, and a tentative one would not answer during the takeover).
fn interface_address(change: AddressChange, a: IpAddr, ifn: &str) -> bool {
    let verb = match change {
        AddressChange::Add => "add",
        AddressChange::Delete => "del",
    };
    let mut c = std::process::Command::new("ip");
    match a {
        IpAddr::V4(_) => c.args(["addr", verb, &format!("{a}/32"), "dev", ifn]),
        IpAddr::V6(_) => c.args(["-6", "addr", verb, &format!("{a}/128"), "dev", ifn]),
    };
    if change == AddressChange::Add && a.is_ipv6() {
        c.arg("nodad");
    }
    c.stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_spec(s: &str) -> Result<VrrpSpec, String> {
        super::parse_spec(s, &[])
    }

    #[test]
    fn vrrp_scripts_from_options() {
        let scripts = vec![
            "name=chk,interval=0.5,weight=-30,rise=2,fall=3,script=curl -fs http://127.0.0.1/,a,b"
                .to_owned(),
            "name=up,weight=10,reverse,init-fail,script=test -e /run/x".to_owned(),
        ];
        let instances = vec![
            "interface=pub0,vrid=1,address=198.51.100.1,track-script=chk,track-script=up:5"
                .to_owned(),
        ];
        let specs = parse_specs(&instances, &scripts).unwrap_or_else(|e| panic!("{e}"));
        let t = &specs[0].track_scripts;
        assert_eq!(
            t[0].script.command, "curl -fs http://127.0.0.1/,a,b",
            "script= takes the rest"
        );
        assert_eq!(
            (
                t[0].script.interval,
                t[0].script.timeout,
                t[0].script.rise,
                t[0].script.fall
            ),
            (Duration::from_millis(500), Duration::from_millis(500), 2, 3)
        );
        assert_eq!(
            t[0].weight,
            Weight {
                weight: -30,
                reverse: false
            }
        );
        assert_eq!(
            t[1].weight,
            Weight {
                weight: 5,
                reverse: true
            }
        );
        assert!(t[1].script.init_fail);
        let no_such =
            vec!["interface=pub0,vrid=1,address=198.51.100.1,track-script=nosuch".to_owned()];
        assert!(
            parse_specs(&no_such, &scripts)
                .is_err_and(|e| e.contains("no --vrrp-script name=nosuch"))
        );
        assert!(parse_script("name=x").is_err(), "script= required");
        assert!(parse_script("script=true").is_err(), "name= required");
        assert!(parse_script("name=x,rise=0,script=true").is_err());
        assert!(parse_script("name=x,weight=254,script=true").is_err());
        assert!(parse_script("name=x,bogus,script=true").is_err());
    }

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
        // IPv6: version 3 whatever version= says; one family per instance.
        let v6 = parse_spec(
            "interface=pub0,vrid=61,address=2001:db8:0:1::100,version=2,advert-int=0.5,unicast-peer=fe80::2,unicast-src=fe80::1",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v6.config.version, Version::V3);
        assert_eq!(v6.unicast_src, "fe80::1".parse().ok());
        let mixed =
            parse_spec("interface=pub0,vrid=1,address=2001:db8:0:1::100,address=198.51.100.1");
        assert!(mixed.is_err_and(|e| e.contains("one family")));
        let peer =
            parse_spec("interface=pub0,vrid=1,address=2001:db8:0:1::100,unicast-peer=198.51.100.2");
        assert!(peer.is_err_and(|e| e.contains("IPv6")));
    }

    #[test]
    fn tracking_and_sync_groups() {
        let s = parse_spec(
            "interface=pub0,vrid=1,address=198.51.100.1,track-interface=priv0:-60,track-interface=eth9,sync-group=G",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let w = |weight| Weight {
            weight,
            reverse: false,
        };
        assert_eq!(
            s.track,
            vec![("priv0".to_owned(), w(-60)), ("eth9".to_owned(), w(0))]
        );
        assert_eq!(s.sync_group.map(|g| g.name), Some("G".to_owned()));
        assert!(
            parse_spec("interface=pub0,vrid=1,address=198.51.100.1,track-interface=priv0:x")
                .is_err()
        );
        assert!(
            parse_spec("interface=pub0,vrid=1,address=198.51.100.1,track-interface=priv0:300")
                .is_err()
        );

        let text = "vrrp_script chk {\n  script \"/bin/true\"\n  interval 2\n  weight -30\n  rise 3\n  fall 2\n}\n\
            vrrp_script up {\n  script \"test -e /x\"\n  weight 10 reverse\n  init_fail\n}\n\
            vrrp_sync_group G_LVS {\n  group {\n    VI_1\n    VI_2\n  }\n  track_interface {\n    eth3\n  }\n\
              notify_master /bin/g-master\n}\n\
            vrrp_instance VI_1 {\n  interface pub0\n  virtual_router_id 51\n  virtual_ipaddress {\n    198.51.100.100\n  }\n\
              track_interface {\n    priv0 weight -20\n  }\n  track_script {\n    chk\n    up weight 5\n  }\n}\n\
            vrrp_instance VI_2 {\n  interface priv0\n  virtual_router_id 52\n  virtual_ipaddress {\n    203.0.113.100\n  }\n}\n\
            vrrp_instance VI_3 {\n  interface priv0\n  virtual_router_id 53\n  virtual_ipaddress {\n    203.0.113.101\n  }\n}\n";
        let loaded = rvs_keepalived::parse_str(text).unwrap_or_else(|e| panic!("{e}"));
        let (specs, _) = from_keepalived(&loaded.config).unwrap_or_else(|e| panic!("{e}"));
        let (v1, v2, v3) = (&specs[0], &specs[1], &specs[2]);
        assert_eq!(
            v1.track,
            vec![("priv0".to_owned(), w(-20)), ("eth3".to_owned(), w(0))]
        );
        assert_eq!(
            v2.track,
            vec![("eth3".to_owned(), w(0))],
            "the group's tracking"
        );
        assert!(v3.track.is_empty() && v3.sync_group.is_none());
        let g = v2.sync_group.clone().unwrap_or_default();
        assert_eq!(
            (g.name.as_str(), g.notify_master.as_deref()),
            ("G_LVS", Some("/bin/g-master"))
        );
        let chk = &v1.track_scripts[0];
        assert_eq!(
            (
                chk.script.interval,
                chk.script.rise,
                chk.script.fall,
                chk.weight
            ),
            (Duration::from_secs(2), 3, 2, w(-30))
        );
        let up = &v1.track_scripts[1];
        assert!(up.script.init_fail);
        assert_eq!(
            up.weight,
            Weight {
                weight: 5,
                reverse: true
            },
            "the entry's weight, the script's reverse"
        );
        // A track_script naming no vrrp_script is an error with its line.
        let bad = text.replace("    chk\n", "    nosuch\n");
        let loaded = rvs_keepalived::parse_str(&bad).unwrap_or_else(|e| panic!("{e}"));
        let e = from_keepalived(&loaded.config).err().unwrap_or_default();
        assert!(
            e.contains("no vrrp_script nosuch") && e.contains(':'),
            "{e}"
        );
    }

    #[test]
    fn keepalived_ipv6_instance() {
        let text = "vrrp_instance VI_6 {\n  interface pub0\n  virtual_router_id 61\n  priority 120\n\
              advert_int 0.5\n  virtual_ipaddress {\n    2001:db8:0:1::100/128\n  }\n}\n\
            vrrp_instance VI_MIX {\n  interface pub0\n  virtual_router_id 62\n\
              virtual_ipaddress {\n    2001:db8:0:1::101\n    198.51.100.101\n  }\n}\n";
        let loaded = rvs_keepalived::parse_str(text).unwrap_or_else(|e| panic!("{e}"));
        let e = from_keepalived(&loaded.config).err().unwrap_or_default();
        assert!(e.contains("VI_MIX") && e.contains("one family"), "{e}");
        let only6 = text
            .split("vrrp_instance VI_MIX")
            .next()
            .unwrap_or_default();
        let loaded = rvs_keepalived::parse_str(only6).unwrap_or_else(|e| panic!("{e}"));
        let (specs, _) = from_keepalived(&loaded.config).unwrap_or_else(|e| panic!("{e}"));
        let c = &specs[0].config;
        assert_eq!(
            (c.version, c.interval_cs, c.priority),
            (Version::V3, 50, 120)
        );
        assert_eq!(
            c.addrs,
            vec![
                "2001:db8:0:1::100"
                    .parse::<IpAddr>()
                    .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
            ]
        );
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
        assert_eq!(
            s.unicast_peers,
            vec![IpAddr::V4(Ipv4Addr::new(198, 51, 100, 2))]
        );
        assert_eq!(s.track, vec![("priv0".to_owned(), Weight::default())]);
        assert_eq!(s.notify.as_deref(), Some("/etc/rvs/notify.sh"));
        let sync = sync.unwrap_or_else(|| panic!("lvs_sync_daemon"));
        assert_eq!((sync.mcast_ifn.as_str(), sync.syncid), ("priv0", 51));
    }
}
