//! Statement tree -> typed [`Config`]. Keywords rvs acts on are typed; keywords it reads but does not act on, and
//! unknown ones, give one warning each with their `file:line`; a value that cannot be used is an error.

use std::net::IpAddr;
use std::time::Duration;

use crate::diag::{Diagnostics, LoadError};
use crate::lexer::Loc;
use crate::model::*;
use crate::tree::Node;
use crate::vrrp::*;

type R<T> = Result<T, LoadError>;

fn invalid(n: &Node, msg: impl Into<String>) -> LoadError {
    LoadError::Invalid {
        loc: n.loc.clone(),
        message: format!("{}: {}", n.keyword, msg.into()),
    }
}

fn arg(n: &Node, i: usize) -> R<&str> {
    n.args
        .get(i)
        .map(String::as_str)
        .ok_or_else(|| invalid(n, "missing value"))
}

fn num<T: std::str::FromStr>(n: &Node, i: usize) -> R<T> {
    let s = arg(n, i)?;
    s.parse()
        .map_err(|_| invalid(n, format!("'{s}' is not a valid number")))
}

/// keepalived's TIMER: seconds, with up to microsecond decimals ("1.5").
fn timer(n: &Node, i: usize) -> R<Duration> {
    let s = arg(n, i)?;
    let v: f64 = s
        .parse()
        .map_err(|_| invalid(n, format!("'{s}' is not a valid time in seconds")))?;
    if !v.is_finite() || !(0.0..=1.0e9).contains(&v) {
        return Err(invalid(n, format!("'{s}' is out of range")));
    }
    Ok(Duration::from_micros((v * 1e6).round() as u64))
}

fn ip(n: &Node, i: usize) -> R<IpAddr> {
    let s = arg(n, i)?;
    parse_ip(s).ok_or_else(|| invalid(n, format!("'{s}' is not an IP address")))
}

fn parse_ip(s: &str) -> Option<IpAddr> {
    // keepalived accepts IPv6 in brackets too.
    let s = s
        .strip_prefix('[')
        .and_then(|x| x.strip_suffix(']'))
        .unwrap_or(s);
    s.parse().ok()
}

fn port(n: &Node, i: usize) -> R<u16> {
    num::<u16>(n, i)
}

/// `KEYWORD [BOOL]`: no value = true.
fn boolean(n: &Node, i: usize) -> R<bool> {
    match n.args.get(i).map(|s| s.to_ascii_lowercase()).as_deref() {
        None | Some("true" | "yes" | "on") => Ok(true),
        Some("false" | "no" | "off") => Ok(false),
        Some(s) => Err(invalid(
            n,
            format!("'{s}' is not a boolean (yes/no, true/false, on/off)"),
        )),
    }
}

/// `script ARGS... [user[:group]]` for quoted-keyword scripts: a quoted first word is the whole command, the
/// next word the user. Unquoted: every word is the command (keepalived reads the user only after a quoted
/// command, except for the one-word form).
fn script(n: &Node) -> R<Script> {
    let cmd = arg(n, 0)?;
    let user = n.args.get(1).filter(|_| n.args.len() == 2).cloned();
    let command = if user.is_some() {
        cmd.to_owned()
    } else {
        n.args.join(" ")
    };
    Ok(Script { command, user })
}

fn block(n: &Node) -> R<&[Node]> {
    n.block
        .as_deref()
        .ok_or_else(|| invalid(n, "needs a { ... } block"))
}

fn unknown(d: &mut Diagnostics, n: &Node, within: &str) {
    d.warn(
        &n.loc,
        format!("unknown keyword '{}' in {within}: ignored", n.keyword),
    );
}

fn unsupported(d: &mut Diagnostics, n: &Node, why: &str) {
    d.warn(
        &n.loc,
        format!("'{}' is not implemented by rvs ({why}): ignored", n.keyword),
    );
}

fn no_block(d: &mut Diagnostics, n: &Node) {
    if n.block.is_some() {
        d.warn(
            &n.loc,
            format!("'{}' takes no block: block ignored", n.keyword),
        );
    }
}

/// Build the typed configuration from the statement tree.
pub fn config(top: &[Node], d: &mut Diagnostics) -> R<Config> {
    let mut cfg = Config::default();
    for n in top {
        match n.keyword.as_str() {
            "global_defs" => global_defs(&mut cfg.global, block(n)?, d)?,
            "virtual_server_group" => cfg.virtual_server_groups.push(vs_group(n, d)?),
            "virtual_server" => cfg.virtual_servers.push(virtual_server(n, d)?),
            "SSL" => cfg.ssl = Some(ssl(block(n)?, d)?),
            "vrrp_instance" => cfg.vrrp.instances.push(vrrp_instance(n, d)?),
            "vrrp_sync_group" => cfg.vrrp.sync_groups.push(vrrp_sync_group(n, d)?),
            "vrrp_script" => cfg.vrrp.scripts.push(vrrp_script(n, d)?),
            "bfd_instance" => unsupported(d, n, "BFD"),
            "static_ipaddress" | "static_routes" | "static_rules" | "static_track_group" => {
                unsupported(
                    d,
                    n,
                    "static addresses and routes: configure them with ip(8)",
                )
            }
            "linkbeat_interfaces"
            | "track_file"
            | "vrrp_track_file"
            | "vrrp_track_process"
            | "garp_group"
            | "vrrp_garp_interval" => unsupported(d, n, "VRRP tracking extras"),
            "net_namespace"
            | "net_namespace_ipvs"
            | "instance"
            | "use_pid_dir"
            | "linkbeat_use_polling" => {
                unsupported(d, n, "rvsd runs in the namespace it is started in")
            }
            _ => unknown(d, n, "the top level"),
        }
    }
    check_groups(&cfg)?;
    check_duplicates(&cfg)?;
    Ok(cfg)
}

fn global_defs(g: &mut GlobalDefs, nodes: &[Node], d: &mut Diagnostics) -> R<()> {
    for n in nodes {
        match n.keyword.as_str() {
            "router_id" | "lvs_id" => g.router_id = Some(arg(n, 0)?.to_owned()),
            "lvs_timeouts" => {
                let mut t = LvsTimeouts::default();
                let mut i = 0;
                while i < n.args.len() {
                    let v = num::<u32>(n, i + 1)?;
                    match n.args[i].as_str() {
                        "tcp" => t.tcp = Some(v),
                        "tcpfin" => t.tcpfin = Some(v),
                        "udp" => t.udp = Some(v),
                        other => {
                            return Err(invalid(
                                n,
                                format!("unknown timeout '{other}' (tcp, tcpfin, udp)"),
                            ));
                        }
                    }
                    i += 2;
                }
                g.lvs_timeouts = Some(t);
            }
            "lvs_sync_daemon" => g.lvs_sync_daemon = Some(lvs_sync_daemon(n)?),
            "lvs_flush" => g.lvs_flush = true,
            "lvs_flush_onstop" => g.lvs_flush_onstop = true,
            "vrrp_mcast_group4" => g.vrrp_mcast_group4 = Some(ip(n, 0)?),
            "vrrp_mcast_group6" => g.vrrp_mcast_group6 = Some(ip(n, 0)?),
            "vrrp_version" => {
                let v = num::<u8>(n, 0)?;
                if !(2..=3).contains(&v) {
                    return Err(invalid(n, "must be 2 or 3"));
                }
                g.vrrp_version = Some(v);
            }
            "script_user" => g.script_user = Some(n.args.join(" ")),
            "enable_script_security" => g.enable_script_security = true,
            "notification_email" => {
                g.notification_email
                    .extend(n.children().iter().map(|c| c.keyword.clone()));
                d.warn(
                    &n.loc,
                    "'notification_email' is read but rvs sends no e-mail",
                );
            }
            "notification_email_from" => g.notification_email_from = Some(arg(n, 0)?.to_owned()),
            "smtp_server" => g.smtp_server = Some(arg(n, 0)?.to_owned()),
            "smtp_connect_timeout"
            | "smtp_helo_name"
            | "smtp_alert"
            | "smtp_alert_vrrp"
            | "smtp_alert_checker" => unsupported(d, n, "no e-mail alerts"),
            k if k.starts_with("vrrp_")
                || k.starts_with("lvs_")
                || k.starts_with("checker_")
                || k.starts_with("snmp_")
                || k.starts_with("enable_")
                || k.starts_with("dbus")
                || k.starts_with("notify_fifo")
                || k.starts_with("vrrp_notify_fifo")
                || k.starts_with("lvs_notify_fifo")
                || k.starts_with("max_auto_priority")
                || k.starts_with("dynamic_interfaces")
                || k.starts_with("default_interface")
                || k.starts_with("process_")
                || k.starts_with("script_")
                || k.starts_with("bfd_")
                || k.starts_with("startup_")
                || k.starts_with("reload_")
                || k.starts_with("rs_init_notifies")
                || k.starts_with("no_checker_emails")
                || k.starts_with("umask")
                || k.starts_with("random_seed")
                || k.starts_with("config_save_dir")
                || k.starts_with("net_namespace")
                || k.starts_with("namespace_with_ipsets")
                || k.starts_with("instance")
                || k.starts_with("use_")
                || k.starts_with("local_name") =>
            {
                unsupported(d, n, "global setting without effect in rvs")
            }
            _ => unknown(d, n, "global_defs"),
        }
    }
    Ok(())
}

fn lvs_sync_daemon(n: &Node) -> R<LvsSyncDaemon> {
    let mut s = LvsSyncDaemon {
        loc: n.loc.clone(),
        interface: arg(n, 0)?.to_owned(),
        instance: None,
        syncid: None,
        maxlen: None,
        port: None,
        ttl: None,
        group: None,
    };
    let mut i = 1;
    while i < n.args.len() {
        match n.args[i].as_str() {
            "inst" => {
                s.instance = Some(arg(n, i + 1)?.to_owned());
                i += 2;
            }
            "id" => {
                s.syncid = Some(num(n, i + 1)?);
                i += 2;
            }
            "maxlen" => {
                s.maxlen = Some(num(n, i + 1)?);
                i += 2;
            }
            "port" => {
                s.port = Some(num(n, i + 1)?);
                i += 2;
            }
            "ttl" => {
                s.ttl = Some(num(n, i + 1)?);
                i += 2;
            }
            "group" => {
                s.group = Some(ip(n, i + 1)?);
                i += 2;
            }
            other if s.instance.is_none() => {
                s.instance = Some(other.to_owned());
                i += 1;
            }
            other => return Err(invalid(n, format!("unexpected '{other}'"))),
        }
    }
    Ok(s)
}

fn ssl(nodes: &[Node], d: &mut Diagnostics) -> R<SslContext> {
    let mut s = SslContext::default();
    for n in nodes {
        let v = Some(arg(n, 0)?.to_owned());
        match n.keyword.as_str() {
            "password" => s.password = v,
            "ca" => s.ca = v,
            "certificate" => s.certificate = v,
            "key" => s.key = v,
            _ => unknown(d, n, "SSL"),
        }
    }
    if s.certificate.is_some() || s.key.is_some() || s.password.is_some() {
        d.warn(
            &nodes[0].loc,
            "SSL client certificate/key/password are not used by rvs's SSL_GET (it presents no client certificate)",
        );
    }
    Ok(s)
}

/// `A.B.C.D-E`, `A.B.C.D-A.B.C.E`, `A.B.C.D/LEN` or a single address -> (first, last).
fn addr_range(s: &str) -> Option<(IpAddr, IpAddr)> {
    if let Some((a, len)) = s.split_once('/') {
        let a = parse_ip(a)?;
        let len: u32 = len.parse().ok()?;
        return match a {
            IpAddr::V4(v) => {
                if len > 32 {
                    return None;
                }
                let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
                let base = u32::from(v) & mask;
                Some((
                    IpAddr::from(base.to_be_bytes()),
                    IpAddr::from((base | !mask).to_be_bytes()),
                ))
            }
            IpAddr::V6(v) => {
                if len > 128 {
                    return None;
                }
                let mask = if len == 0 {
                    0
                } else {
                    u128::MAX << (128 - len)
                };
                let base = u128::from(v) & mask;
                Some((
                    IpAddr::from(base.to_be_bytes()),
                    IpAddr::from((base | !mask).to_be_bytes()),
                ))
            }
        };
    }
    if let Some((a, b)) = s.split_once('-') {
        let first = parse_ip(a)?;
        let last = match (first, parse_ip(b)) {
            (_, Some(l)) => l,
            (IpAddr::V4(f), None) => {
                let x: u8 = b.parse().ok()?;
                let mut o = f.octets();
                o[3] = x;
                IpAddr::from(o)
            }
            (IpAddr::V6(f), None) => {
                let x = u16::from_str_radix(b, 16).ok()?;
                let mut s = f.segments();
                s[7] = x;
                IpAddr::from(s)
            }
        };
        if first.is_ipv4() != last.is_ipv4() || last < first {
            return None;
        }
        return Some((first, last));
    }
    let a = parse_ip(s)?;
    Some((a, a))
}

fn vs_group(n: &Node, d: &mut Diagnostics) -> R<VirtualServerGroup> {
    let name = arg(n, 0)?.to_owned();
    let mut entries = Vec::new();
    for e in block(n)? {
        no_block(d, e);
        if e.keyword == "fwmark" {
            let mark = num::<u32>(e, 0)?;
            let ipv6 = match e.args.get(1).map(String::as_str) {
                None => None,
                Some("inet") => Some(false),
                Some("inet6") => Some(true),
                Some(o) => return Err(invalid(e, format!("'{o}': expected inet or inet6"))),
            };
            entries.push((e.loc.clone(), GroupEntry::Fwmark { mark, ipv6 }));
            continue;
        }
        let (first, last) = addr_range(&e.keyword).ok_or_else(|| LoadError::Invalid {
            loc: e.loc.clone(),
            message: format!(
                "virtual_server_group {name}: '{}' is not an address, range or fwmark",
                e.keyword
            ),
        })?;
        let port = match e.args.first() {
            Some(p) => p.parse().map_err(|_| LoadError::Invalid {
                loc: e.loc.clone(),
                message: format!("virtual_server_group {name}: '{p}' is not a port"),
            })?,
            None => 0,
        };
        entries.push((e.loc.clone(), GroupEntry::Range { first, last, port }));
    }
    Ok(VirtualServerGroup {
        loc: n.loc.clone(),
        name,
        entries,
    })
}

/// Timing and alpha settings a virtual server or real server passes down to its checkers.
#[derive(Debug, Clone, Default)]
struct Inherit {
    connect_timeout: Option<Duration>,
    retry: Option<u32>,
    delay_before_retry: Option<Duration>,
    warmup: Option<Duration>,
    delay_loop: Option<Duration>,
    alpha: Option<bool>,
    virtualhost: Option<String>,
    inhibit_on_failure: Option<bool>,
}

impl Inherit {
    /// Take the checker-common keyword `n` if it is one.
    fn take(&mut self, n: &Node) -> R<bool> {
        match n.keyword.as_str() {
            "connect_timeout" => self.connect_timeout = Some(timer(n, 0)?),
            "retry" | "nb_get_retry" => self.retry = Some(num(n, 0)?),
            "delay_before_retry" => self.delay_before_retry = Some(timer(n, 0)?),
            "warmup" => self.warmup = Some(timer(n, 0)?),
            "delay_loop" => {
                let t = timer(n, 0)?;
                if t.is_zero() {
                    return Err(invalid(n, "must be at least 1 µs"));
                }
                self.delay_loop = Some(t)
            }
            "alpha" => self.alpha = Some(boolean(n, 0)?),
            "virtualhost" => self.virtualhost = Some(arg(n, 0)?.to_owned()),
            "inhibit_on_failure" => self.inhibit_on_failure = Some(boolean(n, 0)?),
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn over(&self, parent: &Inherit) -> Inherit {
        Inherit {
            connect_timeout: self.connect_timeout.or(parent.connect_timeout),
            retry: self.retry.or(parent.retry),
            delay_before_retry: self.delay_before_retry.or(parent.delay_before_retry),
            warmup: self.warmup.or(parent.warmup),
            delay_loop: self.delay_loop.or(parent.delay_loop),
            alpha: self.alpha.or(parent.alpha),
            virtualhost: self
                .virtualhost
                .clone()
                .or_else(|| parent.virtualhost.clone()),
            inhibit_on_failure: self.inhibit_on_failure.or(parent.inhibit_on_failure),
        }
    }
}

fn lvs_method(n: &Node, from: usize) -> R<LvsMethod> {
    let m = arg(n, from)?;
    Ok(match m.to_ascii_uppercase().as_str() {
        "NAT" => LvsMethod::Nat,
        "DR" => LvsMethod::Dr,
        "TUN" => {
            let mut t = rvs_api::TunnelConfig::default();
            let mut i = from + 1;
            while i < n.args.len() {
                match n.args[i].as_str() {
                    "type" => {
                        t.kind = match arg(n, i + 1)? {
                            "ipip" => rvs_api::TunnelKind::Ipip,
                            "gue" => rvs_api::TunnelKind::Gue,
                            "gre" => rvs_api::TunnelKind::Gre,
                            o => return Err(invalid(n, format!("unknown tunnel type '{o}'"))),
                        };
                        i += 2;
                    }
                    "port" => {
                        t.port = port(n, i + 1)?;
                        i += 2;
                    }
                    "nocsum" => {
                        t.csum = rvs_api::TunnelCsum::NoCsum;
                        i += 1;
                    }
                    "csum" => {
                        t.csum = rvs_api::TunnelCsum::Csum;
                        i += 1;
                    }
                    "remcsum" => {
                        t.csum = rvs_api::TunnelCsum::RemCsum;
                        i += 1;
                    }
                    o => return Err(invalid(n, format!("unexpected '{o}'"))),
                }
            }
            if t.kind == rvs_api::TunnelKind::Gue && t.port == 0 {
                return Err(invalid(n, "type gue needs a port"));
            }
            LvsMethod::Tun(t)
        }
        o => {
            return Err(invalid(
                n,
                format!("unknown forwarding method '{o}' (NAT, DR, TUN)"),
            ));
        }
    })
}

/// keepalived's lvs_schedulers list: the stock IPVS schedulers, which are rvs-core's.
const SCHEDULERS: &[&str] = rvs_api::SCHEDULER_NAMES;

fn virtual_server(n: &Node, d: &mut Diagnostics) -> R<VirtualServer> {
    let address = match arg(n, 0)? {
        "fwmark" => VsAddress::Fwmark(num(n, 1)?),
        "group" => VsAddress::Group(arg(n, 1)?.to_owned()),
        a => {
            let addr =
                parse_ip(a).ok_or_else(|| invalid(n, format!("'{a}' is not an IP address")))?;
            let port = match n.args.get(1) {
                Some(_) => port(n, 1)?,
                None => 0,
            };
            VsAddress::Addr { addr, port }
        }
    };
    let mut vs = VirtualServer {
        loc: n.loc.clone(),
        address,
        protocol: VsProtocol::Tcp,
        scheduler: defaults::SCHEDULER.into(),
        flags: SchedFlags::default(),
        ops: false,
        method: LvsMethod::Nat,
        persistence_engine: None,
        persistence_timeout: None,
        persistence_granularity: None,
        ipv6_family: None,
        ha_suspend: false,
        virtualhost: None,
        alpha: false,
        omega: false,
        quorum: defaults::QUORUM,
        hysteresis: 0,
        quorum_up: None,
        quorum_down: None,
        sorry_server: None,
        inhibit_on_failure: false,
        real_servers: Vec::new(),
    };
    let mut inherit = Inherit::default();
    let mut sorry: Option<(Loc, IpAddr, u16)> = None;
    let mut sorry_inhibit = false;
    let mut sorry_method = None;
    let body = block(n)?;
    // Settings first (they may follow the real servers in the file), real servers second.
    for c in body.iter().filter(|c| c.keyword != "real_server") {
        no_block(d, c);
        if inherit.take(c)? {
            continue;
        }
        match c.keyword.as_str() {
            "lvs_sched" | "lb_algo" => {
                let s = arg(c, 0)?;
                if !SCHEDULERS.contains(&s) {
                    return Err(invalid(c, format!("unknown scheduler '{s}'")));
                }
                vs.scheduler = s.to_owned();
            }
            "hashed" => unsupported(d, c, "kernel-internal scheduler option"),
            "flag-1" | "sh-fallback" | "mh-fallback" => vs.flags.fallback = true,
            "flag-2" | "sh-port" | "mh-port" => vs.flags.port = true,
            "flag-3" => vs.flags.flag3 = true,
            "ops" => vs.ops = true,
            "lvs_method" | "lb_kind" => vs.method = lvs_method(c, 0)?,
            "persistence_engine" => vs.persistence_engine = Some(arg(c, 0)?.to_owned()),
            "persistence_timeout" => {
                vs.persistence_timeout = Some(match c.args.first() {
                    None => defaults::PERSISTENCE_TIMEOUT,
                    Some(_) => num(c, 0)?,
                })
            }
            "persistence_granularity" => vs.persistence_granularity = Some(ip(c, 0)?),
            "protocol" => {
                vs.protocol = match arg(c, 0)?.to_ascii_uppercase().as_str() {
                    "TCP" => VsProtocol::Tcp,
                    "UDP" => VsProtocol::Udp,
                    "SCTP" => VsProtocol::Sctp,
                    o => {
                        return Err(invalid(
                            c,
                            format!("unknown protocol '{o}' (TCP, UDP, SCTP)"),
                        ));
                    }
                }
            }
            "ip_family" => {
                vs.ipv6_family = Some(match arg(c, 0)? {
                    "inet" => false,
                    "inet6" => true,
                    o => return Err(invalid(c, format!("'{o}': expected inet or inet6"))),
                })
            }
            "ha_suspend" => {
                vs.ha_suspend = true;
                d.warn(
                    &c.loc,
                    "'ha_suspend' has no effect in rvs (checks always run)",
                );
            }
            "omega" => {
                vs.omega = true;
                d.warn(
                    &c.loc,
                    "'omega' is read but rvsd runs no notify scripts at shutdown",
                );
            }
            "quorum" => {
                let q: u64 = num(c, 0)?;
                if q == 0 {
                    return Err(invalid(c, "must be at least 1"));
                }
                vs.quorum = q;
            }
            "hysteresis" => vs.hysteresis = num(c, 0)?,
            "quorum_up" => vs.quorum_up = Some(script(c)?),
            "quorum_down" => vs.quorum_down = Some(script(c)?),
            "sorry_server" => {
                let a = ip(c, 0)?;
                let p = match c.args.get(1) {
                    Some(_) => port(c, 1)?,
                    None => 0,
                };
                sorry = Some((c.loc.clone(), a, p));
            }
            "sorry_server_inhibit" => sorry_inhibit = boolean(c, 0)?,
            "sorry_server_lvs_method" => sorry_method = Some(lvs_method(c, 0)?),
            "smtp_alert" | "snmp_name" => unsupported(d, c, "no e-mail/SNMP"),
            "weight" => unsupported(d, c, "virtual-server weight is for FILE_CHECK/track_file"),
            _ => unknown(d, c, "virtual_server"),
        }
    }
    if vs.persistence_granularity.is_some() && vs.persistence_timeout.is_none() {
        vs.persistence_timeout = Some(defaults::PERSISTENCE_TIMEOUT);
    }
    vs.alpha = inherit.alpha.unwrap_or(false);
    vs.virtualhost = inherit.virtualhost.clone();
    vs.inhibit_on_failure = inherit.inhibit_on_failure.unwrap_or(false);
    if let VsAddress::Addr { port: 0, .. } = vs.address
        && vs.persistence_timeout.is_none()
    {
        return Err(invalid(
            n,
            "a virtual server without a port must be persistent (persistence_timeout)",
        ));
    }
    if let Some((loc, addr, port)) = sorry {
        vs.sorry_server = Some(SorryServer {
            loc,
            addr,
            port,
            inhibit: sorry_inhibit,
            method: sorry_method.unwrap_or(vs.method),
        });
    }
    for c in body.iter().filter(|c| c.keyword == "real_server") {
        let rs = real_server(c, &vs, &inherit, d)?;
        if vs
            .real_servers
            .iter()
            .any(|o| o.addr == rs.addr && o.port == rs.port)
        {
            return Err(invalid(
                c,
                format!(
                    "{} port {} is already a real server of this virtual server",
                    rs.addr, rs.port
                ),
            ));
        }
        vs.real_servers.push(rs);
    }
    Ok(vs)
}

fn real_server(
    n: &Node,
    vs: &VirtualServer,
    vs_inherit: &Inherit,
    d: &mut Diagnostics,
) -> R<RealServer> {
    let addr = ip(n, 0)?;
    let port = match n.args.get(1) {
        Some(_) => port(n, 1)?,
        None => 0,
    };
    let mut rs = RealServer {
        loc: n.loc.clone(),
        addr,
        port,
        weight: defaults::WEIGHT,
        method: vs.method,
        u_threshold: 0,
        l_threshold: 0,
        inhibit_on_failure: false,
        alpha: false,
        notify_up: None,
        notify_down: None,
        checkers: Vec::new(),
    };
    let mut own = Inherit::default();
    let body = block(n)?;
    for c in body.iter().filter(|c| !is_checker(&c.keyword)) {
        no_block(d, c);
        if own.take(c)? {
            continue;
        }
        match c.keyword.as_str() {
            "weight" => {
                let w: u32 = num(c, 0)?;
                if w > 65535 {
                    return Err(invalid(c, "must be in 0..65535"));
                }
                rs.weight = w;
            }
            "lvs_method" | "lb_kind" => rs.method = lvs_method(c, 0)?,
            "uthreshold" => rs.u_threshold = num(c, 0)?,
            "lthreshold" => rs.l_threshold = num(c, 0)?,
            "notify_up" => rs.notify_up = Some(script(c)?),
            "notify_down" => rs.notify_down = Some(script(c)?),
            "smtp_alert" | "snmp_name" => unsupported(d, c, "no e-mail/SNMP"),
            _ => unknown(d, c, "real_server"),
        }
    }
    let inh = own.over(vs_inherit);
    rs.inhibit_on_failure = inh.inhibit_on_failure.unwrap_or(false);
    rs.alpha = inh.alpha.unwrap_or(false);
    for c in body.iter().filter(|c| is_checker(&c.keyword)) {
        if let Some(ck) = checker(c, &rs, &inh, d)? {
            rs.checkers.push(ck);
        }
    }
    Ok(rs)
}

fn is_checker(k: &str) -> bool {
    matches!(
        k,
        "TCP_CHECK"
            | "HTTP_GET"
            | "SSL_GET"
            | "MISC_CHECK"
            | "UDP_CHECK"
            | "DNS_CHECK"
            | "SMTP_CHECK"
            | "BFD_CHECK"
            | "PING_CHECK"
            | "FILE_CHECK"
    )
}

fn checker(n: &Node, rs: &RealServer, parent: &Inherit, d: &mut Diagnostics) -> R<Option<Checker>> {
    if matches!(
        n.keyword.as_str(),
        "BFD_CHECK" | "PING_CHECK" | "FILE_CHECK"
    ) {
        unsupported(
            d,
            n,
            "checker type not available in rvs; the real server is checked by its other checkers",
        );
        return Ok(None);
    }
    let body = n.block.as_deref().unwrap_or(&[]);
    let mut own = Inherit::default();
    let mut connect_ip = None;
    let mut connect_port = None;
    let mut bindto = None;
    let mut bind_port = None;
    let mut bind_if = None;
    let mut fwmark = None;
    let mut log_all_failures = false;
    let mut http = HttpCheck::default();
    let mut misc_path = None;
    let mut misc_timeout = None;
    let mut misc_dynamic = false;
    let mut udp = UdpCheck {
        max_reply_length: defaults::UDP_MAX_REPLY,
        ..UdpCheck::default()
    };
    let mut dns_type = DnsType::default();
    let mut dns_name = defaults::DNS_NAME.to_owned();
    let mut helo = defaults::SMTP_HELO.to_owned();
    let kind = n.keyword.as_str();
    let mut urls: Vec<&Node> = Vec::new();
    for c in body {
        if c.keyword != "url" && c.keyword != "host" {
            no_block(d, c);
        }
        if own.take(c)? {
            continue;
        }
        match (kind, c.keyword.as_str()) {
            (_, "connect_ip") => connect_ip = Some(ip(c, 0)?),
            (_, "connect_port") => connect_port = Some(port(c, 0)?),
            (_, "bindto") => bindto = Some(ip(c, 0)?),
            (_, "bind_port") => bind_port = Some(port(c, 0)?),
            (_, "bind_if") => bind_if = Some(arg(c, 0)?.to_owned()),
            (_, "fwmark") => fwmark = Some(num(c, 0)?),
            (_, "log_all_failures") => {
                log_all_failures = boolean(c, 0)?;
                d.warn(&c.loc, "'log_all_failures' has no effect in rvs (state changes are logged, with their reason)");
            }
            ("HTTP_GET" | "SSL_GET", "url") => urls.push(c),
            ("HTTP_GET" | "SSL_GET", "http_protocol") => {
                http.protocol = match arg(c, 0)? {
                    "1.0" => HttpProtocol::V10,
                    "1.0C" | "1.0c" => HttpProtocol::V10C,
                    "1.1" => HttpProtocol::V11,
                    o => return Err(invalid(c, format!("'{o}': expected 1.0, 1.0C or 1.1"))),
                }
            }
            ("HTTP_GET" | "SSL_GET", "fast_recovery") => http.fast_recovery = boolean(c, 0)?,
            ("SSL_GET", "enable_sni") => http.enable_sni = boolean(c, 0)?,
            ("SSL_GET", "sni_name") => {
                http.sni_name = Some(arg(c, 0)?.to_owned());
                http.enable_sni = true;
            }
            ("SSL_GET", "tls_compliant") => {
                d.warn(&c.loc, "'tls_compliant' has no effect in rvs (the TLS session is dropped after the response)")
            }
            ("MISC_CHECK", "misc_path") => misc_path = Some(script(c)?),
            ("MISC_CHECK", "misc_timeout") => misc_timeout = Some(timer(c, 0)?),
            ("MISC_CHECK", "misc_dynamic") => misc_dynamic = boolean(c, 0)?,
            ("MISC_CHECK", "user") => unsupported(d, c, "scripts run as rvsd's user"),
            ("UDP_CHECK", "payload") => {
                udp.payload = Some(
                    hex_bytes(&c.args.join(" ")).ok_or_else(|| invalid(c, "not a hex string"))?,
                )
            }
            ("UDP_CHECK", "require_reply") => {
                udp.require_reply = Some(
                    hex_pattern(&c.args.join(" ")).ok_or_else(|| invalid(c, "not a hex string"))?,
                )
            }
            ("UDP_CHECK", "min_reply_length") => udp.min_reply_length = num(c, 0)?,
            ("UDP_CHECK", "max_reply_length") => udp.max_reply_length = num(c, 0)?,
            ("DNS_CHECK", "type") => {
                dns_type = match arg(c, 0)?.to_ascii_uppercase().as_str() {
                    "A" => DnsType::A,
                    "NS" => DnsType::Ns,
                    "CNAME" => DnsType::Cname,
                    "SOA" => DnsType::Soa,
                    "MX" => DnsType::Mx,
                    "TXT" => DnsType::Txt,
                    "AAAA" => DnsType::Aaaa,
                    o => return Err(invalid(c, format!("unknown DNS type '{o}'"))),
                }
            }
            ("DNS_CHECK", "name") => dns_name = arg(c, 0)?.to_owned(),
            ("SMTP_CHECK", "helo_name") => helo = arg(c, 0)?.to_owned(),
            ("SMTP_CHECK", "host") => {
                unsupported(
                    d,
                    c,
                    "SMTP_CHECK host blocks: use one SMTP_CHECK per address",
                );
            }
            _ => unknown(d, c, kind),
        }
    }
    let inh = own.over(parent);
    let delay_loop = inh.delay_loop.unwrap_or(defaults::DELAY_LOOP);
    let (retry_default, dbr_default) = match kind {
        "DNS_CHECK" => (defaults::DNS_RETRY, delay_loop),
        "MISC_CHECK" => (defaults::MISC_RETRY, defaults::DELAY_BEFORE_RETRY),
        "HTTP_GET" | "SSL_GET" => (defaults::RETRY, defaults::HTTP_DELAY_BEFORE_RETRY),
        _ => (defaults::RETRY, defaults::DELAY_BEFORE_RETRY),
    };
    let kind = match kind {
        "TCP_CHECK" => CheckKind::Tcp,
        "HTTP_GET" | "SSL_GET" => {
            for u in urls {
                http.urls.push(url(u, inh.virtualhost.as_deref(), d)?);
            }
            if http.urls.is_empty() {
                return Err(invalid(n, "needs at least one url { path ... } block"));
            }
            if kind == "HTTP_GET" {
                CheckKind::Http(http)
            } else {
                CheckKind::Ssl(http)
            }
        }
        "MISC_CHECK" => CheckKind::Misc(MiscCheck {
            script: misc_path.ok_or_else(|| invalid(n, "needs misc_path"))?,
            timeout: misc_timeout.unwrap_or(delay_loop),
            dynamic: misc_dynamic,
        }),
        "UDP_CHECK" => CheckKind::Udp(udp),
        "DNS_CHECK" => CheckKind::Dns(DnsCheck {
            qtype: dns_type,
            name: dns_name,
        }),
        "SMTP_CHECK" => CheckKind::Smtp(SmtpCheck { helo_name: helo }),
        _ => return Ok(None),
    };
    let connect_port = connect_port.unwrap_or(rs.port);
    if connect_port == 0 && !matches!(kind, CheckKind::Misc(_)) {
        return Err(invalid(n, "the real server has no port: set connect_port"));
    }
    Ok(Some(Checker {
        loc: n.loc.clone(),
        kind,
        connect_ip: connect_ip.unwrap_or(rs.addr),
        connect_port,
        bindto,
        bind_port,
        bind_if,
        fwmark,
        connect_timeout: inh.connect_timeout.unwrap_or(defaults::CONNECT_TIMEOUT),
        retry: inh.retry.unwrap_or(retry_default),
        delay_before_retry: inh.delay_before_retry.unwrap_or(dbr_default),
        delay_loop,
        warmup: inh.warmup.unwrap_or(delay_loop),
        alpha: inh.alpha.unwrap_or(false),
        log_all_failures,
    }))
}

fn url(n: &Node, virtualhost: Option<&str>, d: &mut Diagnostics) -> R<HttpUrl> {
    let mut u = HttpUrl {
        loc: n.loc.clone(),
        path: String::new(),
        digest: None,
        status: Vec::new(),
        virtualhost: virtualhost.map(str::to_owned),
    };
    for c in block(n)? {
        no_block(d, c);
        match c.keyword.as_str() {
            "path" => u.path = arg(c, 0)?.to_owned(),
            "digest" => {
                let s = arg(c, 0)?;
                let b = hex_bytes(s)
                    .filter(|b| b.len() == 16 && s.len() == 32)
                    .ok_or_else(|| {
                        invalid(
                            c,
                            format!(
                                "'{s}' is not an MD5 digest (32 hex digits, as genhash prints it)"
                            ),
                        )
                    })?;
                let mut a = [0u8; 16];
                a.copy_from_slice(&b);
                u.digest = Some(a);
            }
            "status_code" => {
                for s in &c.args {
                    let (a, b) = match s.split_once('-') {
                        Some((a, b)) => (a, b),
                        None => (s.as_str(), s.as_str()),
                    };
                    let (a, b): (u16, u16) = match (a.parse(), b.parse()) {
                        (Ok(a), Ok(b)) if (100..=999).contains(&a) && a <= b && b <= 999 => (a, b),
                        _ => {
                            return Err(invalid(c, format!("'{s}' is not a status code or range")));
                        }
                    };
                    u.status.push((a, b));
                }
                if c.args.is_empty() {
                    return Err(invalid(c, "missing value"));
                }
            }
            "virtualhost" => u.virtualhost = Some(arg(c, 0)?.to_owned()),
            "regex" | "regex_no_match" | "regex_options" | "regex_stack" | "regex_min_offset"
            | "regex_max_offset" => unsupported(d, c, "regex matching of HTTP bodies"),
            "tls_compliant" => d.warn(
                &c.loc,
                "'tls_compliant' has no effect in rvs (the TLS session is dropped after the response)",
            ),
            _ => unknown(d, c, "url"),
        }
    }
    if u.path.is_empty() {
        return Err(invalid(n, "needs a path"));
    }
    if u.status.is_empty() && u.digest.is_none() {
        u.status.push(defaults::STATUS_CODES);
    } else if u.status.is_empty() {
        // keepalived: with only a digest, the default status range still applies.
        u.status.push(defaults::STATUS_CODES);
    }
    Ok(u)
}

/// keepalived's free-format hex (read_hex_str): blanks separate numbers; each group is read two digits at a
/// time from the left, an odd last digit being one byte ("Ab12f 3" = AB 12 0F 03).
fn hex_bytes(s: &str) -> Option<Vec<u8>> {
    let p = hex_pattern(s)?;
    p.into_iter().map(|(h, l)| Some((h? << 4) | l?)).collect()
}

fn hex_pattern(s: &str) -> Option<Vec<HexNibblePair>> {
    let mut out = Vec::new();
    let nib = |c: char| -> Option<Option<u8>> {
        match c {
            'x' | 'X' => Some(None),
            _ => c.to_digit(16).map(|v| Some(v as u8)),
        }
    };
    for group in s.split_whitespace() {
        let chars: Vec<char> = group.chars().collect();
        for pair in chars.chunks(2) {
            match pair {
                [h, l] => out.push((nib(*h)?, nib(*l)?)),
                [l] => out.push((Some(0), nib(*l)?)),
                _ => return None,
            }
        }
    }
    Some(out)
}

fn check_groups(cfg: &Config) -> R<()> {
    for vs in &cfg.virtual_servers {
        if let VsAddress::Group(g) = &vs.address
            && !cfg.virtual_server_groups.iter().any(|x| &x.name == g)
        {
            return Err(LoadError::Invalid {
                loc: vs.loc.clone(),
                message: format!("virtual_server group {g}: no virtual_server_group of that name"),
            });
        }
    }
    Ok(())
}

fn check_duplicates(cfg: &Config) -> R<()> {
    let mut seen = std::collections::HashMap::new();
    for vs in &cfg.virtual_servers {
        for key in crate::convert::service_keys(cfg, vs)? {
            if let Some(prev) = seen.insert(key, vs.loc.clone()) {
                return Err(LoadError::Invalid {
                    loc: vs.loc.clone(),
                    message: format!("virtual server {key} is already defined at {prev}"),
                });
            }
        }
    }
    Ok(())
}

// ---- VRRP ----

fn tracked(n: &Node) -> R<Vec<Tracked>> {
    let mut v = Vec::new();
    for c in block(n)? {
        let weight = match c.args.first().map(String::as_str) {
            Some("weight") => Some(num::<i32>(c, 1)?),
            _ => None,
        };
        v.push(Tracked {
            loc: c.loc.clone(),
            name: c.keyword.clone(),
            weight,
        });
    }
    Ok(v)
}

fn vip_list(n: &Node) -> R<Vec<VirtualIp>> {
    let mut v = Vec::new();
    for c in block(n)? {
        let (a, prefix) = match c.keyword.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (c.keyword.as_str(), None),
        };
        let addr = parse_ip(a).ok_or_else(|| LoadError::Invalid {
            loc: c.loc.clone(),
            message: format!("{}: '{}' is not an address", n.keyword, c.keyword),
        })?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix =
            match prefix {
                None => max,
                Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(|| {
                    LoadError::Invalid {
                        loc: c.loc.clone(),
                        message: format!("{}: bad prefix length in '{}'", n.keyword, c.keyword),
                    }
                })?,
            };
        let mut vip = VirtualIp {
            loc: c.loc.clone(),
            addr,
            prefix,
            dev: None,
            label: None,
            options: Vec::new(),
        };
        let mut i = 0;
        while i < c.args.len() {
            match (c.args[i].as_str(), c.args.get(i + 1)) {
                ("dev", Some(x)) => vip.dev = Some(x.clone()),
                ("label", Some(x)) => vip.label = Some(x.clone()),
                (k, Some(x)) => {
                    vip.options.push(k.to_owned());
                    vip.options.push(x.clone());
                }
                (k, None) => vip.options.push(k.to_owned()),
            }
            i += 2;
        }
        v.push(vip);
    }
    Ok(v)
}

fn vrrp_instance(n: &Node, d: &mut Diagnostics) -> R<VrrpInstance> {
    let mut v = VrrpInstance {
        loc: n.loc.clone(),
        name: arg(n, 0)?.to_owned(),
        state: VrrpState::Backup,
        interface: None,
        virtual_router_id: None,
        priority: 100,
        advert_int: Duration::from_secs(1),
        version: None,
        nopreempt: false,
        preempt_delay: Duration::ZERO,
        authentication: None,
        virtual_ipaddress: Vec::new(),
        virtual_ipaddress_excluded: Vec::new(),
        unicast_src_ip: None,
        unicast_peer: Vec::new(),
        mcast_src_ip: None,
        track_interface: Vec::new(),
        track_script: Vec::new(),
        dont_track_primary: false,
        accept: None,
        garp_master_delay: None,
        notify_master: None,
        notify_backup: None,
        notify_fault: None,
        notify_stop: None,
        notify: None,
        lvs_sync_daemon_interface: None,
    };
    for c in block(n)? {
        match c.keyword.as_str() {
            "state" => {
                v.state = match arg(c, 0)?.to_ascii_uppercase().as_str() {
                    "MASTER" => VrrpState::Master,
                    "BACKUP" => VrrpState::Backup,
                    o => return Err(invalid(c, format!("'{o}': expected MASTER or BACKUP"))),
                }
            }
            "interface" => v.interface = Some(arg(c, 0)?.to_owned()),
            "virtual_router_id" => {
                let id: u8 = num(c, 0)?;
                if id == 0 {
                    return Err(invalid(c, "must be in 1..255"));
                }
                v.virtual_router_id = Some(id);
            }
            "priority" => {
                let p: u8 = num(c, 0)?;
                if p == 0 {
                    return Err(invalid(c, "must be in 1..255"));
                }
                v.priority = p;
            }
            "advert_int" => v.advert_int = timer(c, 0)?,
            "version" => v.version = Some(num(c, 0)?),
            "nopreempt" => v.nopreempt = true,
            "preempt" => v.nopreempt = false,
            "preempt_delay" => v.preempt_delay = timer(c, 0)?,
            "authentication" => {
                let (mut ty, mut pass) = (None, None);
                for a in block(c)? {
                    match a.keyword.as_str() {
                        "auth_type" => ty = Some(arg(a, 0)?.to_ascii_uppercase()),
                        "auth_pass" => pass = Some(arg(a, 0)?.to_owned()),
                        _ => unknown(d, a, "authentication"),
                    }
                }
                let pass = pass.unwrap_or_default();
                v.authentication = match ty.as_deref() {
                    Some("PASS") | None => Some(VrrpAuth::Pass(pass)),
                    Some("AH") => Some(VrrpAuth::Ah(pass)),
                    Some(o) => {
                        return Err(invalid(c, format!("auth_type '{o}': expected PASS or AH")));
                    }
                };
            }
            "virtual_ipaddress" => v.virtual_ipaddress.extend(vip_list(c)?),
            "virtual_ipaddress_excluded" => v.virtual_ipaddress_excluded.extend(vip_list(c)?),
            "unicast_src_ip" => v.unicast_src_ip = Some(ip(c, 0)?),
            "unicast_peer" => {
                for p in block(c)? {
                    v.unicast_peer.push(parse_ip(&p.keyword).ok_or_else(|| {
                        LoadError::Invalid {
                            loc: p.loc.clone(),
                            message: format!("unicast_peer: '{}' is not an address", p.keyword),
                        }
                    })?);
                }
            }
            "mcast_src_ip" => v.mcast_src_ip = Some(ip(c, 0)?),
            "track_interface" => v.track_interface.extend(tracked(c)?),
            "track_script" => v.track_script.extend(tracked(c)?),
            "dont_track_primary" => v.dont_track_primary = true,
            "accept" => v.accept = Some(true),
            "no_accept" => v.accept = Some(false),
            "garp_master_delay" => v.garp_master_delay = Some(timer(c, 0)?),
            "notify_master" => v.notify_master = Some(script(c)?),
            "notify_backup" => v.notify_backup = Some(script(c)?),
            "notify_fault" => v.notify_fault = Some(script(c)?),
            "notify_stop" => v.notify_stop = Some(script(c)?),
            "notify" => v.notify = Some(script(c)?),
            "lvs_sync_daemon_interface" => {
                v.lvs_sync_daemon_interface = Some(arg(c, 0)?.to_owned())
            }
            "smtp_alert"
            | "use_vmac"
            | "vmac_xmit_base"
            | "native_ipv6"
            | "strict_mode"
            | "garp_master_refresh"
            | "garp_master_repeat"
            | "garp_lower_prio_delay"
            | "garp_lower_prio_repeat"
            | "garp_master_refresh_repeat"
            | "virtual_routes"
            | "virtual_rules"
            | "track_file"
            | "track_process"
            | "track_bfd"
            | "kernel_rx_buf_size"
            | "debug"
            | "notify_master_rx_lower_pri"
            | "lower_prio_no_advert"
            | "higher_prio_send_advert"
            | "old_unicast_checksum"
            | "unicast_ttl"
            | "unicast_fault_no_peer"
            | "check_unicast_src"
            | "skip_check_adv_addr" => unsupported(d, c, "VRRP option not modelled by rvs"),
            _ => unknown(d, c, "vrrp_instance"),
        }
    }
    Ok(v)
}

fn vrrp_sync_group(n: &Node, d: &mut Diagnostics) -> R<VrrpSyncGroup> {
    let mut g = VrrpSyncGroup {
        loc: n.loc.clone(),
        name: arg(n, 0)?.to_owned(),
        group: Vec::new(),
        track_interface: Vec::new(),
        track_script: Vec::new(),
        notify_master: None,
        notify_backup: None,
        notify_fault: None,
        notify_stop: None,
        notify: None,
    };
    for c in block(n)? {
        match c.keyword.as_str() {
            "group" => g.group.extend(
                block(c)?
                    .iter()
                    .flat_map(|m| std::iter::once(m.keyword.clone()).chain(m.args.iter().cloned())),
            ),
            "track_interface" => g.track_interface.extend(tracked(c)?),
            "track_script" => g.track_script.extend(tracked(c)?),
            "notify_master" => g.notify_master = Some(script(c)?),
            "notify_backup" => g.notify_backup = Some(script(c)?),
            "notify_fault" => g.notify_fault = Some(script(c)?),
            "notify_stop" => g.notify_stop = Some(script(c)?),
            "notify" => g.notify = Some(script(c)?),
            "smtp_alert"
            | "global_tracking"
            | "sync_group_tracking_weight"
            | "track_file"
            | "track_process"
            | "track_bfd" => unsupported(d, c, "VRRP option not modelled by rvs"),
            _ => unknown(d, c, "vrrp_sync_group"),
        }
    }
    Ok(g)
}

fn vrrp_script(n: &Node, d: &mut Diagnostics) -> R<VrrpScript> {
    let mut s = VrrpScript {
        loc: n.loc.clone(),
        name: arg(n, 0)?.to_owned(),
        script: None,
        interval: Duration::from_secs(1),
        timeout: Duration::ZERO,
        weight: 0,
        weight_reverse: false,
        rise: 1,
        fall: 1,
        user: None,
        init_fail: false,
    };
    let mut timeout = None;
    for c in block(n)? {
        no_block(d, c);
        match c.keyword.as_str() {
            "script" => s.script = Some(script(c)?),
            "interval" => s.interval = timer(c, 0)?,
            "timeout" => timeout = Some(timer(c, 0)?),
            "weight" => {
                s.weight = num(c, 0)?;
                s.weight_reverse = c.args.get(1).is_some_and(|a| a == "reverse");
            }
            "rise" => s.rise = num(c, 0)?,
            "fall" => s.fall = num(c, 0)?,
            "user" => s.user = Some(c.args.join(" ")),
            "init_fail" => s.init_fail = true,
            _ => unknown(d, c, "vrrp_script"),
        }
    }
    s.timeout = timeout.unwrap_or(s.interval);
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let a = |s: &str| s.parse::<IpAddr>().expect("ip");
        assert_eq!(
            addr_range("10.0.0.1-3"),
            Some((a("10.0.0.1"), a("10.0.0.3")))
        );
        assert_eq!(
            addr_range("10.0.0.250-10.0.1.2"),
            Some((a("10.0.0.250"), a("10.0.1.2")))
        );
        assert_eq!(
            addr_range("10.0.0.8/29"),
            Some((a("10.0.0.8"), a("10.0.0.15")))
        );
        assert_eq!(addr_range("10.0.0.5-1"), None);
        assert_eq!(
            addr_range("2001:db8::1-a"),
            Some((a("2001:db8::1"), a("2001:db8::a")))
        );
    }

    #[test]
    fn hex() {
        assert_eq!(
            hex_bytes("Ab12f 3 456 546443123"),
            Some(vec![
                0xab, 0x12, 0x0f, 0x03, 0x45, 0x06, 0x54, 0x64, 0x43, 0x12, 0x03
            ])
        );
        assert_eq!(hex_pattern("1x"), Some(vec![(Some(1), None)]));
        assert_eq!(hex_bytes("zz"), None);
    }
}
