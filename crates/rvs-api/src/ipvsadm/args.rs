//! ipvsadm's option table and popt's rules for reading it: short options bundle (`-nL`), values
//! attach (`-t10.0.0.1:80`, `--weight=3`) or follow, `-p` takes an optional value, `--` ends
//! options, everything else is positional. Yields each option occurrence in order; the meaning of
//! an option is not decided here.

use super::legality::{Cmd, Column};

// Option identities (short letter or long-only tag).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Opt {
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
pub(super) struct Occ<'a> {
    pub(super) opt: Opt,
    /// The argv word it came from (popt's `poptBadOption`).
    pub(super) word: &'a str,
    pub(super) arg: Option<String>,
}

/// popt-like tokenizer: yields options in order; non-options are collected as positionals.
pub(super) struct Tokens<'a> {
    args: &'a [String],
    next: usize,
    /// Remaining short options of a bundle: (word, byte offset).
    bundle: Option<(&'a str, usize)>,
    pub(super) positional: Vec<String>,
    no_more_opts: bool,
}

pub(super) enum TokErr<'a> {
    Unknown(&'a str),
    NoArg(&'a str),
}

impl<'a> Tokens<'a> {
    pub(super) fn new(args: &'a [String]) -> Self {
        Self {
            args,
            next: 0,
            bundle: None,
            positional: Vec::new(),
            no_more_opts: false,
        }
    }

    pub(super) fn next_opt(&mut self) -> Option<Result<Occ<'a>, TokErr<'a>>> {
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

impl Opt {
    /// The legality-table column this option counts towards (the `set_option(OPTC_...)` call in
    /// ipvsadm's `parse_options`); `None` for `-6`, `--sort` and the commands.
    pub(super) const fn column(self) -> Option<Column> {
        Some(match self {
            Opt::Tcp | Opt::Udp | Opt::Sctp | Opt::Fwmark => Column::Service,
            Opt::Scheduler => Column::Scheduler,
            Opt::Persistent => Column::Persistent,
            Opt::Netmask => Column::Netmask,
            Opt::RealServer => Column::Server,
            Opt::Masq | Opt::Ipip | Opt::Gate => Column::Forward,
            Opt::Weight => Column::Weight,
            Opt::UThreshold => Column::UThreshold,
            Opt::LThreshold => Column::LThreshold,
            Opt::Numeric => Column::Numeric,
            Opt::Connection => Column::Connection,
            Opt::McastInterface => Column::Mcast,
            Opt::SyncId => Column::SyncId,
            Opt::Timeout => Column::Timeout,
            Opt::Daemon => Column::Daemon,
            Opt::Stats => Column::Stats,
            Opt::Rate => Column::Rate,
            Opt::Thresholds => Column::Thresholds,
            Opt::PersistentConn => Column::PersistentConn,
            Opt::NoSort => Column::NoSort,
            Opt::Exact => Column::Exact,
            Opt::Ops => Column::OnePacket,
            Opt::Pe => Column::Pe,
            Opt::SchedFlags => Column::SchedFlags,
            Opt::McastGroup => Column::McastGroup,
            Opt::McastPort => Column::McastPort,
            Opt::McastTtl => Column::McastTtl,
            Opt::SyncMaxlen => Column::SyncMaxlen,
            Opt::TunInfo => Column::TunInfo,
            Opt::TunType => Column::TunType,
            Opt::TunPort => Column::TunPort,
            Opt::TunNoCsum => Column::TunNoCsum,
            Opt::TunCsum => Column::TunCsum,
            Opt::TunRemCsum => Column::TunRemCsum,
            Opt::Sort
            | Opt::Ipv6
            | Opt::Cmd(_)
            | Opt::Help
            | Opt::Version
            | Opt::StartDaemon
            | Opt::StopDaemon => return None,
        })
    }
}
