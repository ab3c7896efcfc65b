//! One ipvsadm command line -> [`Action`], in ipvsadm 1.31's three steps:
//! * collect (`parse_options`): the leading command, then each option in order: its legality
//!   column (a repeat is an error) and its value, parsed at once (so the first bad value on the
//!   line is the one reported, as in ipvsadm); then the positional arguments and `-b`'s flags.
//! * check (`process_options`, before the switch): the legality table, then the rules that
//!   cross options (zero port, `-o` only for UDP, address families, tunnel options, list views).
//! * build: ipvsadm's defaults (`wlc`, the service port for `-g`/`-i` servers, `eth0`) and the
//!   [`Command`].
//!
//! Each step is a function of the one before; errors keep ipvsadm's order and texts.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::args::{Occ, Opt, TokErr, Tokens};
use super::error::ParseError;
use super::legality::{Cmd, Column, OptSet, TUNNEL_COLUMNS, generic_opt_check, tunnel_opt_check};
use super::numbers::{
    atoi, parse_fwmark, parse_netmask, parse_service, parse_timeout, string_to_number, truncate,
};
use super::resolve::Resolver;
use super::{
    Action, DEF_MCAST_IFN, DEF_PERSISTENT_TIMEOUT, DEF_SCHED, DEF_WEIGHT, Format, ListTarget,
    MAX_TIMEOUT,
};
use crate::types::{
    Command, DaemonConfig, DaemonState, DestSpec, ForwardMethod, Fwmark, Persistence, Protocol,
    SchedFlags, ServiceKey, ServiceSpec, Timeouts, TunnelConfig, TunnelCsum, TunnelKind, Weight,
};

/// Parses one ipvsadm command line (`args` excludes argv[0]). An empty line means `-L`.
pub fn parse(args: &[String], resolver: &dyn Resolver) -> Result<Action, ParseError> {
    parse_from(args, resolver, Source::CommandLine)
}

/// Parses one line of a rules file (as ipvsadm -R does: `-R` inside is refused).
pub fn parse_restore_line(args: &[String], resolver: &dyn Resolver) -> Result<Action, ParseError> {
    parse_from(args, resolver, Source::RulesFile)
}

/// Where a line comes from (ipvsadm's `reading_stdin`): a rules file may not say `-R`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    CommandLine,
    RulesFile,
}

fn parse_from(
    args: &[String],
    resolver: &dyn Resolver,
    source: Source,
) -> Result<Action, ParseError> {
    if args.is_empty() {
        return Ok(Action::List {
            target: ListTarget::All,
            format: Format::default(),
        });
    }
    let mut toks = Tokens::new(args);
    let (cmd, state) = match leading_command(&mut toks)? {
        Leading::Command(cmd, state) => (cmd, state),
        Leading::Help => return Ok(Action::Help),
        Leading::Version => return Ok(Action::Version),
    };
    let line = collect(cmd, state, toks, resolver)?;
    check(&line, source)?;
    Ok(build(line))
}

/// What the first option says.
enum Leading {
    /// A command; `--start-daemon`/`--stop-daemon` carry the daemon's state.
    Command(Cmd, DaemonState),
    Help,
    Version,
}

/// The first option must be the command (ipvsadm's first `poptGetNextOpt` and `set_command`).
fn leading_command(toks: &mut Tokens<'_>) -> Result<Leading, ParseError> {
    let first = match toks.next_opt() {
        Some(Ok(occ)) => occ,
        _ => return Err(ParseError::try_help()),
    };
    let daemon_cmd = match first.opt {
        Opt::Cmd(c) => return Ok(Leading::Command(c, DaemonState::Master)),
        Opt::Help => return Ok(Leading::Help),
        Opt::Version => return Ok(Leading::Version),
        Opt::StartDaemon => Cmd::StartDaemon,
        Opt::StopDaemon => Cmd::StopDaemon,
        _ => return Err(ParseError::try_help()),
    };
    let state = match first.arg.as_deref().unwrap_or("") {
        "master" => DaemonState::Master,
        "backup" => DaemonState::Backup,
        _ if daemon_cmd == Cmd::StartDaemon => {
            return Err(ParseError::fail("illegal start-daemon parameter specified"));
        }
        _ => return Err(ParseError::fail("illegal start_daemon specified")),
    };
    Ok(Leading::Command(daemon_cmd, state))
}

/// An address family as ipvsadm's `af` fields hold it: AF_UNSPEC until an address (or `-f`, or `-6`) says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Af {
    Unspec,
    Inet,
    Inet6,
}

impl Af {
    fn of(addr: IpAddr) -> Self {
        if addr.is_ipv6() { Af::Inet6 } else { Af::Inet }
    }
}

/// ipvsadm's `ipvs_service_t` being built.
#[derive(Debug, Clone)]
struct Svc {
    af: Af,
    protocol: Protocol,
    addr: IpAddr,
    port: u16,
    fwmark: u32,
    sched: String,
    persistent: bool,
    timeout: u32,
    /// IPv4: mask in host order; IPv6: prefix length.
    netmask: u32,
    one_packet: bool,
    pe: String,
    flags: SchedFlags,
}

#[derive(Debug, Clone)]
struct Dest {
    af: Af,
    addr: IpAddr,
    port: u16,
    fwd: Fwd,
    weight: u32,
    u_threshold: u32,
    l_threshold: u32,
    tun_type: TunnelKind,
    tun_port: u16,
    /// IP_VS_TUNNEL_ENCAP_FLAG_* bits (CSUM 1, REMCSUM 2).
    tun_flags: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fwd {
    Masq,
    Route,
    Tunnel,
}

/// Everything one line said (ipvsadm's `ipvs_command_entry`, `options` and `format` after
/// `parse_options`).
#[derive(Debug, Clone)]
struct Line {
    cmd: Cmd,
    /// The legality columns given.
    options: OptSet,
    svc: Svc,
    dest: Dest,
    daemon: DaemonConfig,
    format: Format,
    timeouts: Timeouts,
}

impl Line {
    /// ipvsadm's `process_options` initial values.
    fn new(cmd: Cmd, state: DaemonState) -> Self {
        Self {
            cmd,
            options: OptSet::default(),
            svc: Svc {
                af: Af::Unspec,
                protocol: Protocol::Tcp,
                addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                port: 0,
                fwmark: 0,
                sched: String::new(),
                persistent: false,
                timeout: 0,
                netmask: 0xffff_ffff,
                one_packet: false,
                pe: String::new(),
                flags: SchedFlags::default(),
            },
            dest: Dest {
                af: Af::Inet,
                addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                port: 0,
                fwd: Fwd::Route,
                weight: DEF_WEIGHT,
                u_threshold: 0,
                l_threshold: 0,
                tun_type: TunnelKind::Ipip,
                tun_port: 0,
                tun_flags: 0,
            },
            daemon: DaemonConfig {
                state,
                mcast_ifn: String::new(),
                syncid: 0,
                sync_maxlen: 0,
                mcast_group: None,
                mcast_port: 0,
                mcast_ttl: 0,
            },
            format: Format::default(),
            timeouts: Timeouts::UNCHANGED,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// collect

/// The rest of `parse_options`: every option after the command, then the positional arguments
/// (`--set`'s three timeouts, nothing else) and the scheduler flags (parsed last: they depend on
/// `-s`).
fn collect(
    cmd: Cmd,
    state: DaemonState,
    mut toks: Tokens<'_>,
    resolver: &dyn Resolver,
) -> Result<Line, ParseError> {
    let mut line = Line::new(cmd, state);
    let mut sched_flags_arg: Option<String> = None;
    while let Some(next) = toks.next_opt() {
        let occ = next.map_err(|e| match e {
            TokErr::Unknown(w) => ParseError::popt(w, "unknown option"),
            TokErr::NoArg(w) => ParseError::popt(w, "missing argument"),
        })?;
        if let Some(column) = occ.opt.column() {
            line.options.insert(column)?;
        }
        if occ.opt == Opt::SchedFlags {
            sched_flags_arg = Some(truncate(occ.arg.as_deref().unwrap_or(""), 127));
        } else {
            line.take(&occ, resolver)?;
        }
    }

    let mut positional = std::mem::take(&mut toks.positional).into_iter();
    if cmd == Cmd::Timeout {
        line.timeouts = match (positional.next(), positional.next(), positional.next()) {
            (Some(a), Some(b), Some(c)) => Timeouts {
                tcp_s: parse_timeout(&a, 0, MAX_TIMEOUT)?,
                tcp_fin_s: parse_timeout(&b, 0, MAX_TIMEOUT)?,
                udp_s: parse_timeout(&c, 0, MAX_TIMEOUT)?,
            },
            _ => return Err(ParseError::fail("--set option requires 3 timeout values")),
        };
    }
    if let Some(extra) = positional.next() {
        return Err(ParseError::fail(format!("unexpected argument {extra}")));
    }
    if let Some(flags_arg) = sched_flags_arg.filter(|s| !s.is_empty()) {
        line.svc.flags = parse_sched_flags(&line.svc.sched, &flags_arg)?;
    }
    Ok(line)
}

impl Line {
    /// One option's value, as ipvsadm's `parse_options` switch reads it (its legality column is
    /// already counted).
    fn take(&mut self, occ: &Occ<'_>, resolver: &dyn Resolver) -> Result<(), ParseError> {
        let given = occ.arg.as_deref();
        let arg = given.unwrap_or("");
        let (svc, dest, daemon, format) = (
            &mut self.svc,
            &mut self.dest,
            &mut self.daemon,
            &mut self.format,
        );
        match occ.opt {
            Opt::Tcp | Opt::Udp | Opt::Sctp => {
                svc.protocol = match occ.opt {
                    Opt::Tcp => Protocol::Tcp,
                    Opt::Udp => Protocol::Udp,
                    _ => Protocol::Sctp,
                };
                svc.take_address(arg, resolver)?;
            }
            Opt::Fwmark => {
                svc.af = Af::Inet;
                svc.protocol = Protocol::Tcp;
                svc.fwmark = parse_fwmark(arg)?;
            }
            Opt::Scheduler => svc.sched = truncate(arg, 15),
            Opt::Persistent => {
                svc.persistent = true;
                svc.timeout = match given {
                    None => DEF_PERSISTENT_TIMEOUT,
                    Some(a) => parse_timeout(a, 1, MAX_TIMEOUT)?,
                };
            }
            Opt::Netmask => svc.take_netmask(arg, resolver)?,
            Opt::Ipv6 => {
                if svc.fwmark == 0 {
                    return Err(ParseError::fail("-6 used before -f\n"));
                }
                svc.af = Af::Inet6;
                svc.netmask = 128;
            }
            Opt::Ops => svc.one_packet = true,
            Opt::Pe => svc.pe = truncate(arg, 16),
            Opt::SchedFlags => {} // collected whole, parsed after the loop
            Opt::RealServer => {
                let p = parse_service(arg, svc.protocol, resolver).ok_or_else(|| {
                    ParseError::fail("illegal real server address[:port] specified")
                })?;
                dest.addr = p.addr;
                dest.af = Af::of(p.addr);
                dest.port = p.port.unwrap_or(svc.port);
            }
            Opt::Ipip => dest.fwd = Fwd::Tunnel,
            Opt::Gate => dest.fwd = Fwd::Route,
            Opt::Masq => dest.fwd = Fwd::Masq,
            Opt::Weight => dest.weight = number(arg, 0, 65535, "illegal weight specified")?,
            Opt::UThreshold => {
                dest.u_threshold =
                    number(arg, 0, i32::MAX as u32, "illegal u_threshold specified")?;
            }
            Opt::LThreshold => {
                dest.l_threshold =
                    number(arg, 0, i32::MAX as u32, "illegal l_threshold specified")?;
            }
            Opt::TunType => {
                dest.tun_type = match arg {
                    "ipip" => TunnelKind::Ipip,
                    "gue" => TunnelKind::Gue,
                    "gre" => TunnelKind::Gre,
                    _ => return Err(ParseError::fail("illegal tunnel type specified")),
                };
            }
            Opt::TunPort => {
                dest.tun_port = number(arg, 1, 65535, "illegal tunnel port specified")? as u16;
            }
            Opt::TunNoCsum => {}
            Opt::TunCsum => dest.tun_flags |= 1,
            Opt::TunRemCsum => dest.tun_flags |= 2,
            Opt::McastInterface => daemon.mcast_ifn = truncate(arg, 15),
            Opt::SyncId => daemon.syncid = number(arg, 0, 255, "illegal syncid specified")? as u8,
            Opt::McastGroup => daemon.mcast_group = Some(mcast_group(arg)?),
            Opt::McastPort => {
                daemon.mcast_port = number(arg, 1, 65535, "illegal mcast-port specified")? as u16;
            }
            Opt::McastTtl => {
                daemon.mcast_ttl = number(arg, 1, 255, "illegal mcast-ttl specified")? as u8;
            }
            Opt::SyncMaxlen => {
                daemon.sync_maxlen =
                    number(arg, 1, 65535 - 20 - 8, "illegal sync-maxlen specified")? as u16;
            }
            Opt::Numeric => format.numeric = true,
            Opt::Stats => format.stats = true,
            Opt::Rate => format.rate = true,
            Opt::Thresholds => format.thresholds = true,
            Opt::PersistentConn => format.persistent_conn = true,
            Opt::NoSort => format.nosort = true,
            Opt::Exact => format.exact = true,
            Opt::TunInfo => format.tun_info = true,
            Opt::Connection | Opt::Timeout | Opt::Daemon | Opt::Sort => {}
            Opt::Cmd(_) | Opt::Help | Opt::Version | Opt::StartDaemon | Opt::StopDaemon => {
                return Err(ParseError::fail(format!("invalid option `{}'", occ.word)));
            }
        }
        Ok(())
    }
}

impl Svc {
    /// `-t/-u/--sctp-service host[:port]`.
    fn take_address(&mut self, arg: &str, resolver: &dyn Resolver) -> Result<(), ParseError> {
        let p = parse_service(arg, self.protocol, resolver)
            .ok_or_else(|| ParseError::fail("illegal virtual server address[:port] specified"))?;
        self.addr = p.addr;
        self.af = Af::of(p.addr);
        if p.addr.is_ipv6() {
            self.netmask = 128;
        }
        if let Some(port) = p.port {
            self.port = port;
        }
        Ok(())
    }

    /// `-M`: a dotted mask (or a host name) for IPv4, a prefix length for IPv6.
    fn take_netmask(&mut self, arg: &str, resolver: &dyn Resolver) -> Result<(), ParseError> {
        if self.af != Af::Inet6 {
            self.netmask = parse_netmask(arg, resolver).ok_or_else(|| {
                ParseError::fail("illegal virtual server persistent mask specified")
            })?;
        } else {
            let n = atoi(arg);
            if !(1..=128).contains(&n) {
                return Err(ParseError::fail("illegal ipv6 netmask specified"));
            }
            self.netmask = n as u32;
        }
        Ok(())
    }
}

/// `string_to_number` or `fail(2, message)`.
fn number(arg: &str, min: u32, max: u32, message: &str) -> Result<u32, ParseError> {
    string_to_number(arg, min, max).ok_or_else(|| ParseError::fail(message))
}

/// `--mcast-group`: a multicast address of the family its text says.
fn mcast_group(arg: &str) -> Result<IpAddr, ParseError> {
    if arg.contains(':') {
        match arg.parse::<Ipv6Addr>() {
            Ok(a) if a.is_multicast() => Ok(IpAddr::V6(a)),
            _ => Err(ParseError::fail(format!(
                "invalid IPv6 mcast-group `{arg}'"
            ))),
        }
    } else {
        match arg.parse::<Ipv4Addr>() {
            Ok(a) if a.is_multicast() => Ok(IpAddr::V4(a)),
            _ => Err(ParseError::fail(format!(
                "invalid IPv4 mcast-group `{arg}'"
            ))),
        }
    }
}

/// One of the three IPVS scheduler flag bits (`IP_VS_SVC_F_SCHED1..3`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SchedFlag {
    Fallback,
    Port,
    Flag3,
}

/// ipvsadm's `-b` names (`parse_sched_flags`): the bit each sets and the scheduler it belongs to (`None`: any).
const SCHED_FLAG_NAMES: [(&str, SchedFlag, Option<&str>); 7] = [
    ("flag-1", SchedFlag::Fallback, None),
    ("flag-2", SchedFlag::Port, None),
    ("flag-3", SchedFlag::Flag3, None),
    ("sh-fallback", SchedFlag::Fallback, Some("sh")),
    ("sh-port", SchedFlag::Port, Some("sh")),
    ("mh-fallback", SchedFlag::Fallback, Some("mh")),
    ("mh-port", SchedFlag::Port, Some("mh")),
];

/// ipvsadm's `parse_sched_flags`: comma-separated names from [`SCHED_FLAG_NAMES`], each checked
/// against the scheduler (`-s`, else the default) in order.
fn parse_sched_flags(sched: &str, arg: &str) -> Result<SchedFlags, ParseError> {
    let sched = if sched.is_empty() { DEF_SCHED } else { sched };
    let mut f = SchedFlags::default();
    for flag in arg.split(',').filter(|s| !s.is_empty()) {
        let Some(&(_, bit, need)) = SCHED_FLAG_NAMES.iter().find(|(name, ..)| *name == flag) else {
            return Err(ParseError::fail(format!("invalid scheduler flag `{flag}'")));
        };
        match bit {
            SchedFlag::Fallback => f.fallback = true,
            SchedFlag::Port => f.port = true,
            SchedFlag::Flag3 => f.flag3 = true,
        }
        if need.is_some_and(|need| need != sched) {
            return Err(ParseError::fail(format!(
                "incompatible scheduler flag `{flag}'"
            )));
        }
    }
    Ok(f)
}

// ---------------------------------------------------------------------------------------------
// check

/// `process_options` before its switch: the legality table, then the rules across options.
fn check(line: &Line, source: Source) -> Result<(), ParseError> {
    let Line {
        cmd,
        options,
        svc,
        dest,
        format,
        ..
    } = line;
    generic_opt_check(*cmd, *options)?;
    match cmd {
        Cmd::Add | Cmd::Edit => {
            if svc.fwmark == 0 && svc.port == 0 && !svc.persistent {
                return Err(ParseError::fail(
                    "Zero port specified for non-persistent service",
                ));
            }
            if svc.one_packet && svc.fwmark == 0 && svc.protocol != Protocol::Udp {
                return Err(ParseError::fail(
                    "One-Packet Scheduling is only for UDP virtual services",
                ));
            }
        }
        Cmd::AddDest | Cmd::EditDest => {
            if (dest.af == Af::Inet6) != (svc.af == Af::Inet6) && dest.fwd != Fwd::Tunnel {
                return Err(ParseError::fail(
                    "Different address family is allowed only for tunneling servers",
                ));
            }
            if TUNNEL_COLUMNS.iter().any(|c| options.contains(*c)) && dest.fwd != Fwd::Tunnel {
                return Err(ParseError::fail(
                    "Tunnel options conflict with forward method",
                ));
            }
            tunnel_opt_check(dest.tun_type, *options)?;
        }
        Cmd::List => {
            let views = [Column::Connection, Column::Timeout, Column::Daemon];
            let [c, t, d] = views.map(|v| options.contains(v));
            if ((c || t || d) && (format.stats || format.rate || format.thresholds))
                || ((t || d) && format.persistent_conn)
            {
                return Err(ParseError::fail("options conflicts in the list command"));
            }
        }
        Cmd::Restore if source == Source::RulesFile => return Err(ParseError::try_help()),
        _ => {}
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// build

/// ipvsadm's defaults, then the [`Action`] (a checked line always builds).
fn build(line: Line) -> Action {
    let Line {
        cmd,
        options,
        mut svc,
        mut dest,
        mut daemon,
        mut format,
        timeouts,
    } = line;
    match cmd {
        Cmd::Add | Cmd::Edit if svc.sched.is_empty() => svc.sched = DEF_SCHED.to_owned(),
        Cmd::StartDaemon if daemon.mcast_ifn.is_empty() => {
            daemon.mcast_ifn = DEF_MCAST_IFN.to_owned();
        }
        // The real server's port is the service's unless it is NAT (or the service a fwmark).
        Cmd::AddDest | Cmd::EditDest
            if svc.fwmark == 0 && matches!(dest.fwd, Fwd::Tunnel | Fwd::Route) =>
        {
            dest.port = svc.port;
        }
        _ => {}
    }
    let key = service_key(&svc);
    match cmd {
        Cmd::List => {
            let target = if options.contains(Column::Connection) {
                ListTarget::Connections
            } else if options.contains(Column::Service) {
                ListTarget::Service(key)
            } else if options.contains(Column::Timeout) {
                ListTarget::Timeout
            } else if options.contains(Column::Daemon) {
                ListTarget::Daemon
            } else {
                ListTarget::All
            };
            Action::List { target, format }
        }
        Cmd::Restore => Action::Restore,
        Cmd::Save => {
            format.rule = true;
            Action::Save { format }
        }
        Cmd::Flush => Action::Apply(Command::Clear),
        Cmd::Add => Action::Apply(Command::AddService(service_config(&svc, key))),
        Cmd::Edit => Action::Apply(Command::EditService(service_config(&svc, key))),
        Cmd::Del => Action::Apply(Command::DeleteService(key)),
        Cmd::Zero => Action::Apply(Command::Zero(
            options.contains(Column::Service).then_some(key),
        )),
        Cmd::AddDest => Action::Apply(Command::AddDest {
            service: key,
            dest: dest_config(&dest),
        }),
        Cmd::EditDest => Action::Apply(Command::EditDest {
            service: key,
            dest: dest_config(&dest),
        }),
        Cmd::DelDest => Action::Apply(Command::DeleteDest {
            service: key,
            addr: dest.addr,
            port: dest.port,
        }),
        Cmd::Timeout => Action::Apply(Command::SetTimeouts(timeouts)),
        Cmd::StartDaemon => Action::Apply(Command::StartDaemon(daemon)),
        Cmd::StopDaemon => Action::Apply(Command::StopDaemon(daemon.state)),
    }
}

fn service_key(svc: &Svc) -> ServiceKey {
    if svc.fwmark != 0 {
        ServiceKey::Fwmark {
            mark: Fwmark(svc.fwmark),
            ipv6: svc.af == Af::Inet6,
        }
    } else {
        ServiceKey::Addr {
            protocol: svc.protocol,
            addr: svc.addr,
            port: svc.port,
        }
    }
}

fn service_config(svc: &Svc, key: ServiceKey) -> ServiceSpec {
    let persistence = svc.persistent.then(|| Persistence {
        timeout_s: svc.timeout,
        netmask: if key.is_ipv6() {
            let plen = svc.netmask.min(128);
            let bits = if plen == 0 {
                0
            } else {
                u128::MAX << (128 - plen)
            };
            IpAddr::V6(Ipv6Addr::from(bits))
        } else {
            IpAddr::V4(Ipv4Addr::from(svc.netmask))
        },
    });
    ServiceSpec {
        key,
        scheduler: svc.sched.clone(),
        sched_flags: svc.flags,
        persistence,
        one_packet: svc.one_packet,
        pe: (!svc.pe.is_empty()).then(|| svc.pe.clone()),
    }
}

fn dest_config(d: &Dest) -> DestSpec {
    DestSpec {
        addr: d.addr,
        port: d.port,
        weight: Weight(d.weight),
        method: match d.fwd {
            Fwd::Masq => ForwardMethod::Masq,
            Fwd::Route => ForwardMethod::Route,
            Fwd::Tunnel => ForwardMethod::Tunnel(TunnelConfig {
                kind: d.tun_type,
                port: d.tun_port,
                csum: match d.tun_flags {
                    0 => TunnelCsum::NoCsum,
                    1 => TunnelCsum::Csum,
                    _ => TunnelCsum::RemCsum,
                },
            }),
        },
        u_threshold: d.u_threshold,
        l_threshold: d.l_threshold,
    }
}
