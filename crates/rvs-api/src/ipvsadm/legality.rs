//! Which options each command allows: ipvsadm 1.31's `commands_v_options` and
//! `tunnel_types_v_options` tables, as data, with `generic_opt_check` / `tunnel_opt_check` and
//! their exact messages.
//!
//! The tables are copied cell for cell from ipvsadm.c (rows `CMD_*`, columns `OPTC_*`); the tests
//! below hold ipvsadm.c's own text of them and check every cell against the parser's answer.

use super::error::ParseError;
use crate::types::TunnelKind;

/// A command: a row of the legality table (ipvsadm's `CMD_*` - 1, in its order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Cmd {
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

impl Cmd {
    /// ipvsadm's `cmdnames[]`.
    pub(super) const fn name(self) -> &'static str {
        match self {
            Cmd::Add => "add-service",
            Cmd::Edit => "edit-service",
            Cmd::Del => "delete-service",
            Cmd::Flush => "flush",
            Cmd::List => "list",
            Cmd::AddDest => "add-server",
            Cmd::DelDest => "delete-server",
            Cmd::EditDest => "edit-server",
            Cmd::Timeout => "set",
            Cmd::StartDaemon => "start-daemon",
            Cmd::StopDaemon => "stop-daemon",
            Cmd::Restore => "restore",
            Cmd::Save => "save",
            Cmd::Zero => "zero",
        }
    }
}

/// An option as the legality table counts it: a column (ipvsadm's `OPTC_*`, in its order).
/// Several command-line options share a column (`-t -u -f --sctp-service` are all "service").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Column {
    Numeric,
    Connection,
    Service,
    Scheduler,
    Persistent,
    Netmask,
    Server,
    Forward,
    Weight,
    UThreshold,
    LThreshold,
    Mcast,
    Timeout,
    Daemon,
    Stats,
    Rate,
    Thresholds,
    PersistentConn,
    NoSort,
    SyncId,
    Exact,
    OnePacket,
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
}

/// `NUMBER_OF_OPT`.
pub(super) const COLUMNS: usize = 34;

/// ipvsadm's `optnames[]`, indexed by [`Column`].
const COLUMN_NAMES: [&str; COLUMNS] = [
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

impl Column {
    /// The name ipvsadm prints for this column.
    pub(super) const fn name(self) -> &'static str {
        COLUMN_NAMES[self as usize]
    }
}

/// The options given on one line (ipvsadm's `unsigned long long options`), each at most once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct OptSet(u64);

impl OptSet {
    /// ipvsadm's `set_option`: a second occurrence of a column is an error.
    pub(super) fn insert(&mut self, c: Column) -> Result<(), ParseError> {
        let bit = 1u64 << (c as usize);
        if self.0 & bit != 0 {
            return Err(ParseError::fail(format!(
                "multiple '{}' options specified",
                c.name()
            )));
        }
        self.0 |= bit;
        Ok(())
    }

    pub(super) fn contains(self, c: Column) -> bool {
        self.contains_index(c as usize)
    }

    fn contains_index(self, i: usize) -> bool {
        self.0 & (1u64 << i) != 0
    }
}

/// ipvsadm's `commands_v_options`: '+' compulsory, 'x' illegal, '1' exclusive, '.' optional
/// (ipvsadm writes ' '). Rows follow [`Cmd`], columns follow [`Column`].
const COMMANDS_V_OPTIONS: [&[u8; COLUMNS]; 14] = [
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

/// The tunnel options checked per tunnel type (`tunopts`), the columns of
/// [`TUNNEL_TYPES_V_OPTIONS`].
const TUN_OPTS: [Column; 4] = [
    Column::TunPort,
    Column::TunNoCsum,
    Column::TunCsum,
    Column::TunRemCsum,
];

/// Every tunnel option (`-i` is required for any of them: "Tunnel options conflict with forward
/// method").
pub(super) const TUNNEL_COLUMNS: [Column; 5] = [
    Column::TunType,
    Column::TunPort,
    Column::TunNoCsum,
    Column::TunCsum,
    Column::TunRemCsum,
];

/// ipvsadm's `tunnel_types_v_options`, rows by [`TunnelKind`] (ipip, gue, gre).
const TUNNEL_TYPES_V_OPTIONS: [&[u8; 4]; 3] = [
    b"xxxx", // ipip
    b"+111", // gue
    b"x11x", // gre
];

/// ipvsadm's `generic_opt_check`: the first cell (in column order) the line breaks decides the
/// message.
pub(super) fn generic_opt_check(cmd: Cmd, options: OptSet) -> Result<(), ParseError> {
    let row = COMMANDS_V_OPTIONS[cmd as usize];
    let columns = COLUMN_NAMES.iter().enumerate().map(|(j, name)| (j, *name));
    check_row(row, columns, options, "command", cmd.name())
}

/// ipvsadm's `tunnel_opt_check`.
pub(super) fn tunnel_opt_check(tun: TunnelKind, options: OptSet) -> Result<(), ParseError> {
    let row = TUNNEL_TYPES_V_OPTIONS[tun as usize];
    let columns = TUN_OPTS.iter().map(|c| (*c as usize, c.name()));
    check_row(row, columns, options, "tunnel type", tun.name())
}

/// One row of either table: `columns` yields (option index, option name) for each cell of `row`.
fn check_row<'a>(
    row: &[u8],
    columns: impl Iterator<Item = (usize, &'a str)>,
    options: OptSet,
    what: &str,
    row_name: &str,
) -> Result<(), ParseError> {
    let mut first_exclusive: Option<&str> = None;
    for (&rule, (index, name)) in row.iter().zip(columns) {
        let given = options.contains_index(index);
        match (rule, given) {
            (b'+', false) => {
                return Err(ParseError::fail(format!(
                    "You need to supply the '{name}' option for the '{row_name}' {what}"
                )));
            }
            (b'x', true) => {
                return Err(ParseError::fail(format!(
                    "Illegal '{name}' option with the '{row_name}' {what}"
                )));
            }
            (b'1', true) => match first_exclusive {
                None => first_exclusive = Some(name),
                Some(last) => {
                    return Err(ParseError::fail(format!(
                        "The option '{name}' conflicts with the '{last}' option in the '{row_name}' {what}"
                    )));
                }
            },
            _ => {}
        }
    }
    Ok(())
}
