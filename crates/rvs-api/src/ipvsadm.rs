//! ipvsadm's command line: argv -> [`Action`] (a [`Command`] for the director, or a listing).
//!
//! Follows ipvsadm 1.31's `parse_options` / `process_options`: popt-style option syntax (short
//! options bundle, `-t10.0.0.1:80` attached values, `--name=value`, optional `-p [timeout]`), the
//! command must come first, options are checked against ipvsadm's legality table
//! (`commands_v_options`), and errors carry ipvsadm's exact messages and exit codes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::resolve::Resolver;
use crate::types::{
    Command, DaemonConfig, DaemonState, DestConfig, ForwardMethod, Persistence, Protocol,
    SchedFlags, ServiceConfig, ServiceKey, Timeouts, TunnelConfig, TunnelCsum, TunnelType,
};

/// Program name used in messages.
pub const PROGRAM: &str = "rvsadm";
/// ipvsadm's default scheduler (`DEF_SCHED`).
pub const DEF_SCHED: &str = "wlc";
/// Persistence timeout when `-p` has no value (`IPVS_SVC_PERSISTENT_TIMEOUT`, 6*60 in libipvs.h).
pub const DEF_PERSISTENT_TIMEOUT: u32 = 6 * 60;
/// Default weight of a real server.
pub const DEF_WEIGHT: u32 = 1;
/// Longest timeout accepted (`MAX_TIMEOUT`, 31 days).
pub const MAX_TIMEOUT: u32 = 86400 * 31;
/// Default sync-daemon multicast interface (`DEF_MCAST_IFN`).
pub const DEF_MCAST_IFN: &str = "eth0";

/// How a listing is printed (ipvsadm's `FMT_*` flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Format {
    pub numeric: bool,
    pub rule: bool,
    pub stats: bool,
    pub rate: bool,
    pub thresholds: bool,
    pub persistent_conn: bool,
    pub nosort: bool,
    pub exact: bool,
    pub tun_info: bool,
}

/// What `-L` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListTarget {
    All,
    Service(ServiceKey),
    Connections,
    Timeout,
    Daemon,
}

/// The outcome of parsing one ipvsadm command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `-h`: print [`usage`] to stdout, exit 0.
    Help,
    /// `-v`: print [`version`] to stdout, exit 0.
    Version,
    /// `-L`/`-l` (or no argument).
    List { target: ListTarget, format: Format },
    /// `-S`
    Save { format: Format },
    /// `-R`
    Restore,
    /// A change for the director (`-A -E -D -C -Z -a -e -d --set --start-daemon --stop-daemon`).
    Apply(Command),
}

/// A command-line error: print `message` (and the "Try ..." hint when `try_help`) to stderr and
/// exit with `exit_code`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ParseError {
    /// ipvsadm's text (may be empty when only the hint is printed).
    pub message: String,
    /// 2 for ipvsadm's `fail(2, ...)`, 255 for its `-1` returns (popt errors, `tryhelp_exit`).
    pub exit_code: i32,
    /// Print "Try `rvsadm -h' or 'rvsadm --help' for more information." after the message.
    pub try_help: bool,
}

impl ParseError {
    fn fail(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            exit_code: 2,
            try_help: false,
        }
    }
    fn try_help() -> Self {
        Self {
            message: String::new(),
            exit_code: 255,
            try_help: true,
        }
    }
    fn popt(opt: &str, what: &str) -> Self {
        Self {
            message: format!("{opt}: {what}"),
            exit_code: 255,
            try_help: false,
        }
    }

    /// Everything to print on stderr (each line newline-terminated).
    pub fn stderr_text(&self) -> String {
        let mut s = String::new();
        if !self.message.is_empty() || !self.try_help {
            s.push_str(&self.message);
            s.push('\n');
        }
        if self.try_help {
            s.push_str(&try_help_line());
        }
        s
    }
}

/// ipvsadm's hint line.
pub fn try_help_line() -> String {
    format!("Try `{PROGRAM} -h' or '{PROGRAM} --help' for more information.\n")
}

// Command indices (ipvsadm's CMD_* - 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmd {
    Add,
    Edit,
    Del,
    Flush,
    List,
    AddDest,
    DelDest,
    EditDest,
    Timeout,
    StartDaemon,
    StopDaemon,
    Restore,
    Save,
    Zero,
}

const CMD_NAMES: [&str; 14] = [
    "add-service",
    "edit-service",
    "delete-service",
    "flush",
    "list",
    "add-server",
    "delete-server",
    "edit-server",
    "set",
    "start-daemon",
    "stop-daemon",
    "restore",
    "save",
    "zero",
];

// Option indices (ipvsadm's OPTC_*).
const OPTC_NUMERIC: usize = 0;
const OPTC_CONNECTION: usize = 1;
const OPTC_SERVICE: usize = 2;
const OPTC_SCHEDULER: usize = 3;
const OPTC_PERSISTENT: usize = 4;
const OPTC_NETMASK: usize = 5;
const OPTC_SERVER: usize = 6;
const OPTC_FORWARD: usize = 7;
const OPTC_WEIGHT: usize = 8;
const OPTC_UTHRESHOLD: usize = 9;
const OPTC_LTHRESHOLD: usize = 10;
const OPTC_MCAST: usize = 11;
const OPTC_TIMEOUT: usize = 12;
const OPTC_DAEMON: usize = 13;
const OPTC_STATS: usize = 14;
const OPTC_RATE: usize = 15;
const OPTC_THRESHOLDS: usize = 16;
const OPTC_PERSISTENTCONN: usize = 17;
const OPTC_NOSORT: usize = 18;
const OPTC_SYNCID: usize = 19;
const OPTC_EXACT: usize = 20;
const OPTC_ONEPACKET: usize = 21;
const OPTC_PE: usize = 22;
const OPTC_SCHED_FLAGS: usize = 23;
const OPTC_MCAST_GROUP: usize = 24;
const OPTC_MCAST_PORT: usize = 25;
const OPTC_MCAST_TTL: usize = 26;
const OPTC_SYNC_MAXLEN: usize = 27;
const OPTC_TUN_INFO: usize = 28;
const OPTC_TUN_TYPE: usize = 29;
const OPTC_TUN_PORT: usize = 30;
const OPTC_TUN_NOCSUM: usize = 31;
const OPTC_TUN_CSUM: usize = 32;
const OPTC_TUN_REMCSUM: usize = 33;
const NUMBER_OF_OPT: usize = 34;

const OPT_NAMES: [&str; NUMBER_OF_OPT] = [
    "numeric",
    "connection",
    "service-address",
    "scheduler",
    "persistent",
    "netmask",
    "real-server",
    "forwarding-method",
    "weight",
    "u-threshold",
    "l-threshold",
    "mcast-interface",
    "timeout",
    "daemon",
    "stats",
    "rate",
    "thresholds",
    "persistent-conn",
    "nosort",
    "syncid",
    "exact",
    "ops",
    "pe",
    "sched-flags",
    "mcast-group",
    "mcast-port",
    "mcast-ttl",
    "sync-maxlen",
    "tun-info",
    "tun-type",
    "tun-port",
    "tun-nocsum",
    "tun-csum",
    "tun-remcsum",
];

/// ipvsadm's `commands_v_options`: '+' compulsory, 'x' illegal, '1' exclusive, '.' optional.
/// Columns follow `OPT_NAMES`.
const COMMANDS_V_OPTIONS: [&[u8; NUMBER_OF_OPT]; 14] = [
    b"xx+...xxxxxxxxxxxxxxx...xxxxxxxxxx", // ADD
    b"xx+...xxxxxxxxxxxxxxx...xxxxxxxxxx", // EDIT
    b"xx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // DEL
    b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // FLUSH
    b".11xxxxxxxxx11.......xxxxxxx.xxxxx", // LIST
    b"xx+xxx+....xxxxxxxxxxxxxxxxxx.....", // ADDSRV
    b"xx+xxx+xxxxxxxxxxxxxxxxxxxxxxxxxxx", // DELSRV
    b"xx+xxx+....xxxxxxxxxxxxxxxxxx.....", // EDITSRV
    b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // TIMEOUT
    b"xxxxxxxxxxx.xxxxxxx.xxxx....xxxxxx", // STARTD
    b"xxxxxxxxxxxxxxxxxxx.xxxxxxxxxxxxxx", // STOPD
    b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // RESTORE
    b".xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // SAVE
    b"xx.xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // ZERO
];

/// Tunnel options checked per tunnel type (`tunopts` / `tunnel_types_v_options`).
const TUN_OPTS: [usize; 4] = [
    OPTC_TUN_PORT,
    OPTC_TUN_NOCSUM,
    OPTC_TUN_CSUM,
    OPTC_TUN_REMCSUM,
];
const TUNNEL_TYPES_V_OPTIONS: [&[u8; 4]; 3] = [
    b"xxxx", // ipip
    b"+111", // gue
    b"x11x", // gre
];

// Option identities (short letter or long-only tag).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Opt {
    Cmd(Cmd),
    Help,
    Version,
    Tcp,
    Udp,
    Sctp,
    Fwmark,
    Scheduler,
    Persistent,
    Netmask,
    RealServer,
    Masq,
    Ipip,
    Gate,
    Weight,
    UThreshold,
    LThreshold,
    Numeric,
    Connection,
    McastInterface,
    SyncId,
    Timeout,
    Daemon,
    Stats,
    Rate,
    Thresholds,
    PersistentConn,
    NoSort,
    Sort,
    Exact,
    Ipv6,
    Ops,
    Pe,
    SchedFlags,
    McastGroup,
    McastPort,
    McastTtl,
    SyncMaxlen,
    TunInfo,
    TunType,
    TunPort,
    TunNoCsum,
    TunCsum,
    TunRemCsum,
    StartDaemon,
    StopDaemon,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ArgKind {
    None,
    Required,
    Optional,
}

struct OptDef {
    long: &'static str,
    short: Option<char>,
    arg: ArgKind,
    opt: Opt,
}

const fn o(long: &'static str, short: Option<char>, arg: ArgKind, opt: Opt) -> OptDef {
    OptDef {
        long,
        short,
        arg,
        opt,
    }
}

use ArgKind::{None as N, Optional as P, Required as R};

const OPTIONS: &[OptDef] = &[
    o("add-service", Some('A'), N, Opt::Cmd(Cmd::Add)),
    o("edit-service", Some('E'), N, Opt::Cmd(Cmd::Edit)),
    o("delete-service", Some('D'), N, Opt::Cmd(Cmd::Del)),
    o("clear", Some('C'), N, Opt::Cmd(Cmd::Flush)),
    o("list", Some('L'), N, Opt::Cmd(Cmd::List)),
    o("list", Some('l'), N, Opt::Cmd(Cmd::List)),
    o("zero", Some('Z'), N, Opt::Cmd(Cmd::Zero)),
    o("add-server", Some('a'), N, Opt::Cmd(Cmd::AddDest)),
    o("edit-server", Some('e'), N, Opt::Cmd(Cmd::EditDest)),
    o("delete-server", Some('d'), N, Opt::Cmd(Cmd::DelDest)),
    o("set", None, N, Opt::Cmd(Cmd::Timeout)),
    o("help", Some('h'), N, Opt::Help),
    o("version", Some('v'), N, Opt::Version),
    o("restore", Some('R'), N, Opt::Cmd(Cmd::Restore)),
    o("save", Some('S'), N, Opt::Cmd(Cmd::Save)),
    o("start-daemon", None, R, Opt::StartDaemon),
    o("stop-daemon", None, R, Opt::StopDaemon),
    o("tcp-service", Some('t'), R, Opt::Tcp),
    o("udp-service", Some('u'), R, Opt::Udp),
    o("sctp-service", None, R, Opt::Sctp),
    o("fwmark-service", Some('f'), R, Opt::Fwmark),
    o("scheduler", Some('s'), R, Opt::Scheduler),
    o("persistent", Some('p'), P, Opt::Persistent),
    o("netmask", Some('M'), R, Opt::Netmask),
    o("real-server", Some('r'), R, Opt::RealServer),
    o("masquerading", Some('m'), N, Opt::Masq),
    o("ipip", Some('i'), N, Opt::Ipip),
    o("gatewaying", Some('g'), N, Opt::Gate),
    o("weight", Some('w'), R, Opt::Weight),
    o("u-threshold", Some('x'), R, Opt::UThreshold),
    o("l-threshold", Some('y'), R, Opt::LThreshold),
    o("numeric", Some('n'), N, Opt::Numeric),
    o("connection", Some('c'), N, Opt::Connection),
    o("mcast-interface", None, R, Opt::McastInterface),
    o("syncid", None, R, Opt::SyncId),
    o("timeout", None, N, Opt::Timeout),
    o("daemon", None, N, Opt::Daemon),
    o("stats", None, N, Opt::Stats),
    o("rate", None, N, Opt::Rate),
    o("thresholds", None, N, Opt::Thresholds),
    o("persistent-conn", None, N, Opt::PersistentConn),
    o("nosort", None, N, Opt::NoSort),
    o("sort", None, N, Opt::Sort),
    o("exact", Some('X'), N, Opt::Exact),
    o("ipv6", Some('6'), N, Opt::Ipv6),
    o("ops", Some('o'), N, Opt::Ops),
    o("pe", None, R, Opt::Pe),
    o("sched-flags", Some('b'), R, Opt::SchedFlags),
    o("mcast-group", None, R, Opt::McastGroup),
    o("mcast-port", None, R, Opt::McastPort),
    o("mcast-ttl", None, R, Opt::McastTtl),
    o("sync-maxlen", None, R, Opt::SyncMaxlen),
    o("tun-info", None, N, Opt::TunInfo),
    o("tun-type", None, R, Opt::TunType),
    o("tun-port", None, R, Opt::TunPort),
    o("tun-nocsum", None, N, Opt::TunNoCsum),
    o("tun-csum", None, N, Opt::TunCsum),
    o("tun-remcsum", None, N, Opt::TunRemCsum),
];

/// Whether an option takes an argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptionArg {
    None,
    Required,
    Optional,
}

/// One option of ipvsadm's command line as the parser knows it (for man pages and shell completions, so they
/// cannot drift from what is accepted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionInfo {
    pub long: &'static str,
    pub short: Option<char>,
    pub arg: OptionArg,
}

/// The parser's option table, in order (`--list` appears twice: `-L` and `-l`).
pub fn options() -> impl Iterator<Item = OptionInfo> {
    OPTIONS.iter().map(|d| OptionInfo {
        long: d.long,
        short: d.short,
        arg: match d.arg {
            ArgKind::None => OptionArg::None,
            ArgKind::Required => OptionArg::Required,
            ArgKind::Optional => OptionArg::Optional,
        },
    })
}

/// One option occurrence from the tokenizer.
#[derive(Debug)]
struct Occ<'a> {
    opt: Opt,
    /// The argv word it came from (popt's `poptBadOption`).
    word: &'a str,
    arg: Option<String>,
}

/// popt-like tokenizer: yields options in order; non-options are collected as positionals.
struct Tokens<'a> {
    args: &'a [String],
    next: usize,
    /// Remaining short options of a bundle: (word, byte offset).
    bundle: Option<(&'a str, usize)>,
    positional: Vec<String>,
    no_more_opts: bool,
}

enum TokErr<'a> {
    Unknown(&'a str),
    NoArg(&'a str),
}

impl<'a> Tokens<'a> {
    fn new(args: &'a [String]) -> Self {
        Self {
            args,
            next: 0,
            bundle: None,
            positional: Vec::new(),
            no_more_opts: false,
        }
    }

    fn next_opt(&mut self) -> Option<Result<Occ<'a>, TokErr<'a>>> {
        if let Some((word, pos)) = self.bundle.take() {
            return Some(self.short_at(word, pos));
        }
        loop {
            let word = self.args.get(self.next)?.as_str();
            self.next += 1;
            if self.no_more_opts || word == "-" || !word.starts_with('-') {
                self.positional.push(word.to_owned());
                continue;
            }
            if word == "--" {
                self.no_more_opts = true;
                continue;
            }
            if let Some(long) = word.strip_prefix("--") {
                let (name, attached) = match long.split_once('=') {
                    Some((n, v)) => (n, Some(v)),
                    None => (long, None),
                };
                let Some(def) = OPTIONS.iter().find(|d| d.long == name) else {
                    return Some(Err(TokErr::Unknown(word)));
                };
                let arg = match def.arg {
                    ArgKind::None => {
                        if attached.is_some() {
                            return Some(Err(TokErr::Unknown(word)));
                        }
                        None
                    }
                    ArgKind::Required => match attached {
                        Some(v) => Some(v.to_owned()),
                        None => match self.args.get(self.next) {
                            Some(v) => {
                                self.next += 1;
                                Some(v.clone())
                            }
                            None => return Some(Err(TokErr::NoArg(word))),
                        },
                    },
                    ArgKind::Optional => match attached {
                        Some(v) => Some(v.to_owned()),
                        None => self.optional_next(),
                    },
                };
                return Some(Ok(Occ {
                    opt: def.opt,
                    word,
                    arg,
                }));
            }
            return Some(self.short_at(word, 1));
        }
    }

    fn optional_next(&mut self) -> Option<String> {
        match self.args.get(self.next) {
            Some(v) if !v.starts_with('-') && !self.no_more_opts => {
                self.next += 1;
                Some(v.clone())
            }
            _ => None,
        }
    }

    fn short_at(&mut self, word: &'a str, pos: usize) -> Result<Occ<'a>, TokErr<'a>> {
        let rest = &word[pos..];
        let Some(c) = rest.chars().next() else {
            return Err(TokErr::Unknown(word));
        };
        let after = pos + c.len_utf8();
        let Some(def) = OPTIONS.iter().find(|d| d.short == Some(c)) else {
            return Err(TokErr::Unknown(word));
        };
        let tail = &word[after..];
        let arg = match def.arg {
            ArgKind::None => {
                if !tail.is_empty() {
                    self.bundle = Some((word, after));
                }
                None
            }
            ArgKind::Required => {
                if !tail.is_empty() {
                    Some(tail.to_owned())
                } else {
                    match self.args.get(self.next) {
                        Some(v) => {
                            self.next += 1;
                            Some(v.clone())
                        }
                        None => return Err(TokErr::NoArg(word)),
                    }
                }
            }
            ArgKind::Optional => {
                if !tail.is_empty() {
                    Some(tail.to_owned())
                } else {
                    self.optional_next()
                }
            }
        };
        Ok(Occ {
            opt: def.opt,
            word,
            arg,
        })
    }
}

/// ipvsadm's `ipvs_service_t` being built.
#[derive(Debug, Clone)]
struct Svc {
    /// None = AF_UNSPEC (never set).
    ipv6: Option<bool>,
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
    ipv6: bool,
    addr: IpAddr,
    port: u16,
    fwd: Fwd,
    weight: u32,
    u_threshold: u32,
    l_threshold: u32,
    tun_type: TunnelType,
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

/// Parses one ipvsadm command line (`args` excludes argv[0]). An empty line means `-L`.
pub fn parse(args: &[String], resolver: &dyn Resolver) -> Result<Action, ParseError> {
    parse_inner(args, resolver, false)
}

/// Parses one line of a rules file (as ipvsadm -R does: `-R` inside is refused).
pub fn parse_restore_line(args: &[String], resolver: &dyn Resolver) -> Result<Action, ParseError> {
    parse_inner(args, resolver, true)
}

fn parse_inner(
    args: &[String],
    resolver: &dyn Resolver,
    reading_stdin: bool,
) -> Result<Action, ParseError> {
    if args.is_empty() {
        return Ok(Action::List {
            target: ListTarget::All,
            format: Format::default(),
        });
    }
    let mut toks = Tokens::new(args);
    let mut svc = Svc {
        ipv6: None,
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
    };
    let mut dest = Dest {
        ipv6: false,
        addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        port: 0,
        fwd: Fwd::Route,
        weight: DEF_WEIGHT,
        u_threshold: 0,
        l_threshold: 0,
        tun_type: TunnelType::Ipip,
        tun_port: 0,
        tun_flags: 0,
    };
    let mut daemon = DaemonConfig {
        state: DaemonState::Master,
        mcast_ifn: String::new(),
        syncid: 0,
        sync_maxlen: 0,
        mcast_group: None,
        mcast_port: 0,
        mcast_ttl: 0,
    };
    let mut format = Format::default();
    let mut options: u64 = 0;
    let mut sched_flags_arg: Option<String> = None;

    // The first option must be the command.
    let first = match toks.next_opt() {
        Some(Ok(occ)) => occ,
        _ => return Err(ParseError::try_help()),
    };
    let cmd = match first.opt {
        Opt::Cmd(c) => c,
        Opt::StartDaemon | Opt::StopDaemon => {
            let arg = first.arg.as_deref().unwrap_or("");
            daemon.state = match arg {
                "master" => DaemonState::Master,
                "backup" => DaemonState::Backup,
                _ if first.opt == Opt::StartDaemon => {
                    return Err(ParseError::fail("illegal start-daemon parameter specified"));
                }
                _ => return Err(ParseError::fail("illegal start_daemon specified")),
            };
            if first.opt == Opt::StartDaemon {
                Cmd::StartDaemon
            } else {
                Cmd::StopDaemon
            }
        }
        Opt::Help => return Ok(Action::Help),
        Opt::Version => return Ok(Action::Version),
        _ => return Err(ParseError::try_help()),
    };

    let set_option = |options: &mut u64, optc: usize| -> Result<(), ParseError> {
        let bit = 1u64 << optc;
        if *options & bit != 0 {
            return Err(ParseError::fail(format!(
                "multiple '{}' options specified",
                OPT_NAMES[optc]
            )));
        }
        *options |= bit;
        Ok(())
    };

    while let Some(next) = toks.next_opt() {
        let occ = match next {
            Ok(occ) => occ,
            Err(TokErr::Unknown(w)) => return Err(ParseError::popt(w, "unknown option")),
            Err(TokErr::NoArg(w)) => return Err(ParseError::popt(w, "missing argument")),
        };
        let Occ {
            opt,
            word,
            arg: given,
        } = occ;
        let arg: &str = given.as_deref().unwrap_or("");
        match opt {
            Opt::Tcp | Opt::Udp | Opt::Sctp => {
                set_option(&mut options, OPTC_SERVICE)?;
                svc.protocol = match opt {
                    Opt::Tcp => Protocol::Tcp,
                    Opt::Udp => Protocol::Udp,
                    _ => Protocol::Sctp,
                };
                match parse_service(arg, svc.protocol, resolver) {
                    Some(p) => {
                        svc.addr = p.addr;
                        svc.ipv6 = Some(p.addr.is_ipv6());
                        if p.addr.is_ipv6() {
                            svc.netmask = 128;
                        }
                        if let Some(port) = p.port {
                            svc.port = port;
                        }
                    }
                    None => {
                        return Err(ParseError::fail(
                            "illegal virtual server address[:port] specified",
                        ));
                    }
                }
            }
            Opt::Fwmark => {
                set_option(&mut options, OPTC_SERVICE)?;
                svc.ipv6 = Some(false);
                svc.protocol = Protocol::Tcp;
                svc.fwmark = parse_fwmark(arg)?;
            }
            Opt::Scheduler => {
                set_option(&mut options, OPTC_SCHEDULER)?;
                svc.sched = truncate(arg, 15);
            }
            Opt::Persistent => {
                set_option(&mut options, OPTC_PERSISTENT)?;
                svc.persistent = true;
                svc.timeout = match given.as_deref() {
                    None => DEF_PERSISTENT_TIMEOUT,
                    Some(a) => parse_timeout(a, 1, MAX_TIMEOUT)?,
                };
            }
            Opt::Netmask => {
                set_option(&mut options, OPTC_NETMASK)?;
                if svc.ipv6 != Some(true) {
                    match parse_netmask(arg, resolver) {
                        Some(m) => svc.netmask = m,
                        None => {
                            return Err(ParseError::fail(
                                "illegal virtual server persistent mask specified",
                            ));
                        }
                    }
                } else {
                    let n = atoi(arg);
                    if !(1..=128).contains(&n) {
                        return Err(ParseError::fail("illegal ipv6 netmask specified"));
                    }
                    svc.netmask = n as u32;
                }
            }
            Opt::RealServer => {
                set_option(&mut options, OPTC_SERVER)?;
                match parse_service(arg, svc.protocol, resolver) {
                    Some(p) => {
                        dest.addr = p.addr;
                        dest.ipv6 = p.addr.is_ipv6();
                        dest.port = p.port.unwrap_or(svc.port);
                    }
                    None => {
                        return Err(ParseError::fail(
                            "illegal real server address[:port] specified",
                        ));
                    }
                }
            }
            Opt::Ipip => {
                set_option(&mut options, OPTC_FORWARD)?;
                dest.fwd = Fwd::Tunnel;
            }
            Opt::Gate => {
                set_option(&mut options, OPTC_FORWARD)?;
                dest.fwd = Fwd::Route;
            }
            Opt::Masq => {
                set_option(&mut options, OPTC_FORWARD)?;
                dest.fwd = Fwd::Masq;
            }
            Opt::Weight => {
                set_option(&mut options, OPTC_WEIGHT)?;
                dest.weight = string_to_number(arg, 0, 65535)
                    .ok_or_else(|| ParseError::fail("illegal weight specified"))?;
            }
            Opt::UThreshold => {
                set_option(&mut options, OPTC_UTHRESHOLD)?;
                dest.u_threshold = string_to_number(arg, 0, i32::MAX as u32)
                    .ok_or_else(|| ParseError::fail("illegal u_threshold specified"))?;
            }
            Opt::LThreshold => {
                set_option(&mut options, OPTC_LTHRESHOLD)?;
                dest.l_threshold = string_to_number(arg, 0, i32::MAX as u32)
                    .ok_or_else(|| ParseError::fail("illegal l_threshold specified"))?;
            }
            Opt::Connection => set_option(&mut options, OPTC_CONNECTION)?,
            Opt::Numeric => {
                set_option(&mut options, OPTC_NUMERIC)?;
                format.numeric = true;
            }
            Opt::McastInterface => {
                set_option(&mut options, OPTC_MCAST)?;
                daemon.mcast_ifn = truncate(arg, 15);
            }
            Opt::SyncId => {
                set_option(&mut options, OPTC_SYNCID)?;
                daemon.syncid = string_to_number(arg, 0, 255)
                    .ok_or_else(|| ParseError::fail("illegal syncid specified"))?
                    as u8;
            }
            Opt::Timeout => set_option(&mut options, OPTC_TIMEOUT)?,
            Opt::Daemon => set_option(&mut options, OPTC_DAEMON)?,
            Opt::Stats => {
                set_option(&mut options, OPTC_STATS)?;
                format.stats = true;
            }
            Opt::Rate => {
                set_option(&mut options, OPTC_RATE)?;
                format.rate = true;
            }
            Opt::Thresholds => {
                set_option(&mut options, OPTC_THRESHOLDS)?;
                format.thresholds = true;
            }
            Opt::PersistentConn => {
                set_option(&mut options, OPTC_PERSISTENTCONN)?;
                format.persistent_conn = true;
            }
            Opt::NoSort => {
                set_option(&mut options, OPTC_NOSORT)?;
                format.nosort = true;
            }
            Opt::Sort => {}
            Opt::Exact => {
                set_option(&mut options, OPTC_EXACT)?;
                format.exact = true;
            }
            Opt::Ipv6 => {
                if svc.fwmark != 0 {
                    svc.ipv6 = Some(true);
                    svc.netmask = 128;
                } else {
                    return Err(ParseError::fail("-6 used before -f\n"));
                }
            }
            Opt::Ops => {
                set_option(&mut options, OPTC_ONEPACKET)?;
                svc.one_packet = true;
            }
            Opt::Pe => {
                set_option(&mut options, OPTC_PE)?;
                svc.pe = truncate(arg, 16);
            }
            Opt::SchedFlags => {
                set_option(&mut options, OPTC_SCHED_FLAGS)?;
                sched_flags_arg = Some(truncate(arg, 127));
            }
            Opt::McastGroup => {
                set_option(&mut options, OPTC_MCAST_GROUP)?;
                if arg.contains(':') {
                    match arg.parse::<Ipv6Addr>() {
                        Ok(a) if a.is_multicast() => daemon.mcast_group = Some(IpAddr::V6(a)),
                        _ => {
                            return Err(ParseError::fail(format!(
                                "invalid IPv6 mcast-group `{arg}'"
                            )));
                        }
                    }
                } else {
                    match arg.parse::<Ipv4Addr>() {
                        Ok(a) if a.is_multicast() => daemon.mcast_group = Some(IpAddr::V4(a)),
                        _ => {
                            return Err(ParseError::fail(format!(
                                "invalid IPv4 mcast-group `{arg}'"
                            )));
                        }
                    }
                }
            }
            Opt::McastPort => {
                set_option(&mut options, OPTC_MCAST_PORT)?;
                daemon.mcast_port = string_to_number(arg, 1, 65535)
                    .ok_or_else(|| ParseError::fail("illegal mcast-port specified"))?
                    as u16;
            }
            Opt::McastTtl => {
                set_option(&mut options, OPTC_MCAST_TTL)?;
                daemon.mcast_ttl = string_to_number(arg, 1, 255)
                    .ok_or_else(|| ParseError::fail("illegal mcast-ttl specified"))?
                    as u8;
            }
            Opt::SyncMaxlen => {
                set_option(&mut options, OPTC_SYNC_MAXLEN)?;
                daemon.sync_maxlen = string_to_number(arg, 1, 65535 - 20 - 8)
                    .ok_or_else(|| ParseError::fail("illegal sync-maxlen specified"))?
                    as u16;
            }
            Opt::TunInfo => {
                set_option(&mut options, OPTC_TUN_INFO)?;
                format.tun_info = true;
            }
            Opt::TunType => {
                set_option(&mut options, OPTC_TUN_TYPE)?;
                dest.tun_type = match arg {
                    "ipip" => TunnelType::Ipip,
                    "gue" => TunnelType::Gue,
                    "gre" => TunnelType::Gre,
                    _ => return Err(ParseError::fail("illegal tunnel type specified")),
                };
            }
            Opt::TunPort => {
                set_option(&mut options, OPTC_TUN_PORT)?;
                dest.tun_port = string_to_number(arg, 1, 65535)
                    .ok_or_else(|| ParseError::fail("illegal tunnel port specified"))?
                    as u16;
            }
            Opt::TunNoCsum => set_option(&mut options, OPTC_TUN_NOCSUM)?,
            Opt::TunCsum => {
                set_option(&mut options, OPTC_TUN_CSUM)?;
                dest.tun_flags |= 1;
            }
            Opt::TunRemCsum => {
                set_option(&mut options, OPTC_TUN_REMCSUM)?;
                dest.tun_flags |= 2;
            }
            Opt::Cmd(_) | Opt::Help | Opt::Version | Opt::StartDaemon | Opt::StopDaemon => {
                return Err(ParseError::fail(format!("invalid option `{word}'")));
            }
        }
    }

    let mut positional = std::mem::take(&mut toks.positional).into_iter();
    let mut timeouts = Timeouts::default();
    if cmd == Cmd::Timeout {
        match (positional.next(), positional.next(), positional.next()) {
            (Some(a), Some(b), Some(c)) => {
                timeouts.tcp_s = parse_timeout(&a, 0, MAX_TIMEOUT)?;
                timeouts.tcp_fin_s = parse_timeout(&b, 0, MAX_TIMEOUT)?;
                timeouts.udp_s = parse_timeout(&c, 0, MAX_TIMEOUT)?;
            }
            _ => return Err(ParseError::fail("--set option requires 3 timeout values")),
        }
    }
    if let Some(extra) = positional.next() {
        return Err(ParseError::fail(format!("unexpected argument {extra}")));
    }

    if let Some(flags_arg) = sched_flags_arg.filter(|s| !s.is_empty()) {
        svc.flags = parse_sched_flags(&svc.sched, &flags_arg)?;
    }

    generic_opt_check(cmd, options)?;

    if matches!(cmd, Cmd::Add | Cmd::Edit) {
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
        if svc.sched.is_empty() {
            svc.sched = DEF_SCHED.to_owned();
        }
    }
    if cmd == Cmd::StartDaemon && daemon.mcast_ifn.is_empty() {
        daemon.mcast_ifn = DEF_MCAST_IFN.to_owned();
    }
    if matches!(cmd, Cmd::AddDest | Cmd::EditDest) {
        if svc.fwmark == 0 && matches!(dest.fwd, Fwd::Tunnel | Fwd::Route) {
            dest.port = svc.port;
        }
        if dest.ipv6 != svc.ipv6.unwrap_or(false) && dest.fwd != Fwd::Tunnel {
            return Err(ParseError::fail(
                "Different address family is allowed only for tunneling servers",
            ));
        }
        let tun_mask = (1u64 << OPTC_TUN_TYPE)
            | (1u64 << OPTC_TUN_PORT)
            | (1u64 << OPTC_TUN_NOCSUM)
            | (1u64 << OPTC_TUN_CSUM)
            | (1u64 << OPTC_TUN_REMCSUM);
        if options & tun_mask != 0 && dest.fwd != Fwd::Tunnel {
            return Err(ParseError::fail(
                "Tunnel options conflict with forward method",
            ));
        }
        tunnel_opt_check(dest.tun_type, options)?;
    }

    let key = service_key(&svc);
    let has = |optc: usize| options & (1u64 << optc) != 0;
    let action = match cmd {
        Cmd::List => {
            let (c, t, d) = (has(OPTC_CONNECTION), has(OPTC_TIMEOUT), has(OPTC_DAEMON));
            if ((c || t || d) && (format.stats || format.rate || format.thresholds))
                || ((t || d) && format.persistent_conn)
            {
                return Err(ParseError::fail("options conflicts in the list command"));
            }
            let target = if c {
                ListTarget::Connections
            } else if has(OPTC_SERVICE) {
                ListTarget::Service(key)
            } else if t {
                ListTarget::Timeout
            } else if d {
                ListTarget::Daemon
            } else {
                ListTarget::All
            };
            Action::List { target, format }
        }
        Cmd::Restore => {
            if reading_stdin {
                return Err(ParseError::try_help());
            }
            Action::Restore
        }
        Cmd::Save => {
            format.rule = true;
            Action::Save { format }
        }
        Cmd::Flush => Action::Apply(Command::Clear),
        Cmd::Add => Action::Apply(Command::AddService(service_config(&svc, key))),
        Cmd::Edit => Action::Apply(Command::EditService(service_config(&svc, key))),
        Cmd::Del => Action::Apply(Command::DeleteService(key)),
        Cmd::Zero => Action::Apply(Command::Zero(has(OPTC_SERVICE).then_some(key))),
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
    };
    Ok(action)
}

fn service_key(svc: &Svc) -> ServiceKey {
    if svc.fwmark != 0 {
        ServiceKey::Fwmark {
            mark: svc.fwmark,
            ipv6: svc.ipv6 == Some(true),
        }
    } else {
        ServiceKey::Addr {
            protocol: svc.protocol,
            addr: svc.addr,
            port: svc.port,
        }
    }
}

fn service_config(svc: &Svc, key: ServiceKey) -> ServiceConfig {
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
    ServiceConfig {
        key,
        scheduler: svc.sched.clone(),
        sched_flags: svc.flags,
        persistence,
        one_packet: svc.one_packet,
        pe: (!svc.pe.is_empty()).then(|| svc.pe.clone()),
    }
}

fn dest_config(d: &Dest) -> DestConfig {
    DestConfig {
        addr: d.addr,
        port: d.port,
        weight: d.weight,
        method: match d.fwd {
            Fwd::Masq => ForwardMethod::Masq,
            Fwd::Route => ForwardMethod::Route,
            Fwd::Tunnel => ForwardMethod::Tunnel(TunnelConfig {
                tun_type: d.tun_type,
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

fn generic_opt_check(cmd: Cmd, options: u64) -> Result<(), ParseError> {
    let i = cmd as usize;
    let row = COMMANDS_V_OPTIONS[i];
    let mut last = 0;
    let mut count = 0;
    for (j, &rule) in row.iter().enumerate() {
        if options & (1u64 << j) == 0 {
            if rule == b'+' {
                return Err(ParseError::fail(format!(
                    "You need to supply the '{}' option for the '{}' command",
                    OPT_NAMES[j], CMD_NAMES[i]
                )));
            }
        } else {
            if rule == b'x' {
                return Err(ParseError::fail(format!(
                    "Illegal '{}' option with the '{}' command",
                    OPT_NAMES[j], CMD_NAMES[i]
                )));
            }
            if rule == b'1' {
                count += 1;
                if count == 1 {
                    last = j;
                    continue;
                }
                return Err(ParseError::fail(format!(
                    "The option '{}' conflicts with the '{}' option in the '{}' command",
                    OPT_NAMES[j], OPT_NAMES[last], CMD_NAMES[i]
                )));
            }
        }
    }
    Ok(())
}

fn tunnel_opt_check(tun: TunnelType, options: u64) -> Result<(), ParseError> {
    let i = tun as usize;
    let row = TUNNEL_TYPES_V_OPTIONS[i];
    let mut last = 0;
    let mut count = 0;
    for (j, &k) in TUN_OPTS.iter().enumerate() {
        let rule = row[j];
        if options & (1u64 << k) == 0 {
            if rule == b'+' {
                return Err(ParseError::fail(format!(
                    "You need to supply the '{}' option for the '{}' tunnel type",
                    OPT_NAMES[k],
                    tun.name()
                )));
            }
        } else {
            if rule == b'x' {
                return Err(ParseError::fail(format!(
                    "Illegal '{}' option with the '{}' tunnel type",
                    OPT_NAMES[k],
                    tun.name()
                )));
            }
            if rule == b'1' {
                count += 1;
                if count == 1 {
                    last = k;
                    continue;
                }
                return Err(ParseError::fail(format!(
                    "The option '{}' conflicts with the '{}' option in the '{}' tunnel type",
                    OPT_NAMES[k],
                    OPT_NAMES[last],
                    tun.name()
                )));
            }
        }
    }
    Ok(())
}

fn parse_sched_flags(sched: &str, arg: &str) -> Result<SchedFlags, ParseError> {
    let sched = if sched.is_empty() { DEF_SCHED } else { sched };
    let mut f = SchedFlags::default();
    for flag in arg.split(',').filter(|s| !s.is_empty()) {
        let need = match flag {
            "flag-1" => {
                f.flag1 = true;
                None
            }
            "flag-2" => {
                f.flag2 = true;
                None
            }
            "flag-3" => {
                f.flag3 = true;
                None
            }
            "sh-fallback" => {
                f.flag1 = true;
                Some("sh")
            }
            "sh-port" => {
                f.flag2 = true;
                Some("sh")
            }
            "mh-fallback" => {
                f.flag1 = true;
                Some("mh")
            }
            "mh-port" => {
                f.flag2 = true;
                Some("mh")
            }
            _ => {
                return Err(ParseError::fail(format!("invalid scheduler flag `{flag}'")));
            }
        };
        if let Some(need) = need
            && need != sched
        {
            return Err(ParseError::fail(format!(
                "incompatible scheduler flag `{flag}'"
            )));
        }
    }
    Ok(f)
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// C `strtol(s, &end, 10)` requiring the whole string: optional leading spaces and sign.
fn strtol_full(s: &str) -> Option<i64> {
    let t = s.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let v: i64 = digits.parse().ok()?;
    Some(if neg { -v } else { v })
}

/// ipvsadm's `string_to_number`.
fn string_to_number(s: &str, min: u32, max: u32) -> Option<u32> {
    let n = strtol_full(s)?;
    (i64::from(min) <= n && n <= i64::from(max)).then_some(n as u32)
}

fn parse_timeout(s: &str, min: u32, max: u32) -> Result<u32, ParseError> {
    string_to_number(s, min, max)
        .ok_or_else(|| ParseError::fail(format!("invalid timeout value `{s}' specified")))
}

fn parse_fwmark(s: &str) -> Result<u32, ParseError> {
    match strtol_full(s) {
        Some(n) if n > 0 && n <= i64::from(u32::MAX) => Ok(n as u32),
        _ => Err(ParseError::fail(format!(
            "invalid fwmark value `{s}' specified"
        ))),
    }
}

/// C `atoi`: leading spaces, sign, digits; stops at the first non-digit; 0 when none.
fn atoi(s: &str) -> i64 {
    let t = s.trim_start();
    let (neg, rest) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let mut v: i64 = 0;
    for b in rest.bytes() {
        if !b.is_ascii_digit() {
            break;
        }
        v = v.saturating_mul(10).saturating_add(i64::from(b - b'0'));
    }
    if neg { -v } else { v }
}

/// C `inet_aton`: 1-4 parts, each decimal, octal (leading 0) or hex (0x).
pub fn inet_aton(s: &str) -> Option<Ipv4Addr> {
    if s.is_empty() {
        return None;
    }
    let mut vals = [0u32; 4];
    let mut n = 0;
    for p in s.split('.') {
        if n == 4 {
            return None;
        }
        vals[n] = parse_c_uint(p)?;
        n += 1;
    }
    let last = vals[n - 1];
    let mut addr: u32 = 0;
    for (i, v) in vals[..n - 1].iter().enumerate() {
        if *v > 255 {
            return None;
        }
        addr |= v << (24 - 8 * i);
    }
    let last_max: u64 = match n {
        1 => u64::from(u32::MAX),
        2 => 0x00ff_ffff,
        3 => 0xffff,
        _ => 0xff,
    };
    if u64::from(last) > last_max {
        return None;
    }
    addr |= last;
    Some(Ipv4Addr::from(addr))
}

fn parse_c_uint(p: &str) -> Option<u32> {
    if p.is_empty() {
        return None;
    }
    let (digits, radix) = if let Some(h) = p.strip_prefix("0x").or_else(|| p.strip_prefix("0X")) {
        (h, 16)
    } else if p.len() > 1 && p.starts_with('0') {
        (&p[1..], 8)
    } else {
        (p, 10)
    };
    if digits.is_empty() {
        // "0x" alone is accepted by inet_aton as 0.
        return (radix == 16).then_some(0);
    }
    u32::from_str_radix(digits, radix).ok()
}

/// Result of ipvsadm's `parse_service`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostPort {
    pub addr: IpAddr,
    pub port: Option<u16>,
}

/// ipvsadm's `parse_service`: `host[:port]`, `[v6]:port` or a bare IPv6 address.
pub fn parse_service(buf: &str, proto: Protocol, resolver: &dyn Resolver) -> Option<HostPort> {
    if buf.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (host, portp): (&str, Option<&str>) = if let Some(rest) = buf.strip_prefix('[') {
        let close = rest.find(']')?;
        let host = &rest[..close];
        let after = &rest[close + 1..];
        let port = after.strip_prefix(':')?;
        (host, Some(port))
    } else {
        (buf, None)
    };
    // an IPv6 address has at least two colons: skip the attempt for host:port
    let maybe_v6 = host.bytes().filter(|&b| b == b':').nth(1).is_some();
    let (addr, portp) = if let Some(a6) = maybe_v6.then(|| host.parse::<Ipv6Addr>().ok()).flatten()
    {
        (IpAddr::V6(a6), portp)
    } else {
        let (h, p) = match (portp, host.rfind(':')) {
            (Some(p), _) => (host, Some(p)),
            (None, Some(i)) => (&host[..i], Some(&host[i + 1..])),
            (None, None) => (host, None),
        };
        let a4 = inet_aton(h).or_else(|| resolver.host_to_addr(h))?;
        (IpAddr::V4(a4), p)
    };
    let port = match portp {
        None => None,
        Some(p) => Some(match string_to_number(p, 0, 65535) {
            Some(n) => n as u16,
            None => resolver.service_to_port(p, proto)?,
        }),
    };
    Some(HostPort { addr, port })
}

fn parse_netmask(buf: &str, resolver: &dyn Resolver) -> Option<u32> {
    inet_aton(buf)
        .or_else(|| resolver.host_to_addr(buf))
        .map(u32::from)
}

/// `-v` text.
pub fn version() -> String {
    format!(
        "{PROGRAM} v{} (ipvsadm v1.31 compatible; rvs control protocol v{})\n",
        env!("CARGO_PKG_VERSION"),
        crate::PROTOCOL_VERSION
    )
}

/// `-h` text (ipvsadm's usage, program name rvsadm).
pub fn usage() -> String {
    let p = PROGRAM;
    let mut s = version();
    s.push_str(&format!(
        "Usage:\n  {p} -A|E virtual-service [-s scheduler] [-p [timeout]] [-M netmask] [--pe persistence_engine] [-b sched-flags]\n  {p} -D virtual-service\n  {p} -C\n  {p} -R\n  {p} -S [-n]\n  {p} -a|e virtual-service -r server-address [options]\n  {p} -d virtual-service -r server-address\n  {p} -L|l [virtual-service] [options]\n  {p} -Z [virtual-service]\n  {p} --set tcp tcpfin udp\n  {p} --start-daemon {{master|backup}} [daemon-options]\n  {p} --stop-daemon {{master|backup}}\n  {p} -h\n\n"
    ));
    s.push_str(concat!(
        "Commands:\n",
        "Either long or short options are allowed.\n",
        "  --add-service     -A        add virtual service with options\n",
        "  --edit-service    -E        edit virtual service with options\n",
        "  --delete-service  -D        delete virtual service\n",
        "  --clear           -C        clear the whole table\n",
        "  --restore         -R        restore rules from stdin\n",
        "  --save            -S        save rules to stdout\n",
        "  --add-server      -a        add real server with options\n",
        "  --edit-server     -e        edit real server with options\n",
        "  --delete-server   -d        delete real server\n",
        "  --list            -L|-l     list the table\n",
        "  --zero            -Z        zero counters in a service or all services\n",
        "  --set tcp tcpfin udp        set connection timeout values\n",
        "  --start-daemon              start connection sync daemon\n",
        "  --stop-daemon               stop connection sync daemon\n",
        "  --help            -h        display this help message\n\n",
        "virtual-service:\n",
        "  --tcp-service|-t  service-address   service-address is host[:port]\n",
        "  --udp-service|-u  service-address   service-address is host[:port]\n",
        "  --sctp-service    service-address   service-address is host[:port]\n",
        "  --fwmark-service|-f fwmark          fwmark is an integer greater than zero\n",
        "\n",
        "Options:\n",
        "  --ipv6         -6                   fwmark entry uses IPv6\n",
        "  --scheduler    -s scheduler         one of rr|wrr|lc|wlc|lblc|lblcr|dh|sh|sed|nq|fo|ovf|mh,\n",
        "                                      the default scheduler is wlc.\n",
        "  --pe            engine              alternate persistence engine may be sip,\n",
        "                                      not set by default.\n",
        "  --persistent   -p [timeout]         persistent service\n",
        "  --netmask      -M netmask           persistent granularity mask\n",
        "  --real-server  -r server-address    server-address is host (and port)\n",
        "  --gatewaying   -g                   gatewaying (direct routing) (default)\n",
        "  --ipip         -i                   ipip encapsulation (tunneling)\n",
        "  --masquerading -m                   masquerading (NAT)\n",
        "  --tun-type      type                one of ipip|gue|gre,\n",
        "                                      the default tunnel type is ipip.\n",
        "  --tun-port      port                tunnel destination port\n",
        "  --tun-nocsum                        tunnel encapsulation without checksum\n",
        "  --tun-csum                          tunnel encapsulation with checksum\n",
        "  --tun-remcsum                       tunnel encapsulation with remote checksum\n",
        "  --weight       -w weight            capacity of real server\n",
        "  --u-threshold  -x uthreshold        upper threshold of connections\n",
        "  --l-threshold  -y lthreshold        lower threshold of connections\n",
        "  --connection   -c                   output of current IPVS connections\n",
        "  --timeout                           output of timeout (tcp tcpfin udp)\n",
        "  --daemon                            output of daemon information\n",
        "  --stats                             output of statistics information\n",
        "  --rate                              output of rate information\n",
        "  --exact                             expand numbers (display exact values)\n",
        "  --thresholds                        output of thresholds information\n",
        "  --persistent-conn                   output of persistent connection info\n",
        "  --tun-info                          output of tunnel information\n",
        "  --nosort                            disable sorting output of service/server entries\n",
        "  --sort                              does nothing, for backwards compatibility\n",
        "  --ops          -o                   one-packet scheduling\n",
        "  --numeric      -n                   numeric output of addresses and ports\n",
        "  --sched-flags  -b flags             scheduler flags (comma-separated)\n",
        "  --json                              (rvsadm) listings as JSON, see rvs-api README\n",
        "Daemon Options:\n",
        "  --syncid sid                        syncid for connection sync (default=255)\n",
        "  --sync-maxlen length                Max sync message length (default=1472)\n",
        "  --mcast-interface interface         multicast interface for connection sync\n",
        "  --mcast-group address               IPv4/IPv6 group (default=224.0.0.81)\n",
        "  --mcast-port port                   UDP port (default=8848)\n",
        "  --mcast-ttl ttl                     Multicast TTL (default=1)\n",
    ));
    s
}
