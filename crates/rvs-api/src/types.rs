//! Protocol types (serde). Their JSON form is the stable schema documented in README.md.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

use crate::error::ApiError;

/// Transport protocol of a virtual service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// `-t`
    Tcp,
    /// `-u`
    Udp,
    /// `--sctp-service`
    Sctp,
}

impl Protocol {
    /// IP protocol number.
    pub const fn number(self) -> u8 {
        match self {
            Self::Tcp => 6,
            Self::Udp => 17,
            Self::Sctp => 132,
        }
    }

    /// Name as ipvsadm prints it ("TCP", "UDP", "SCTP").
    pub const fn name(self) -> &'static str {
        match self {
            Self::Tcp => "TCP",
            Self::Udp => "UDP",
            Self::Sctp => "SCTP",
        }
    }

    /// Lower-case name used by /etc/services ("tcp", "udp", "sctp").
    pub const fn services_name(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
            Self::Sctp => "sctp",
        }
    }

    /// The ipvsadm option selecting this protocol (`-t`, `-u`, `--sctp-service`).
    pub const fn option(self) -> &'static str {
        match self {
            Self::Tcp => "-t",
            Self::Udp => "-u",
            Self::Sctp => "--sctp-service",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How a virtual service is identified.
///
/// JSON: `{"addr": {"protocol": "tcp", "addr": "198.51.100.1", "port": 80}}` or
/// `{"fwmark": {"mark": 1, "ipv6": false}}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceKey {
    /// protocol + VIP + port (port 0 = all ports).
    Addr {
        protocol: Protocol,
        addr: IpAddr,
        port: u16,
    },
    /// Firewall mark (`-f`), per address family (`-6`).
    Fwmark { mark: u32, ipv6: bool },
}

impl ServiceKey {
    /// True for an IPv6 service.
    pub fn is_ipv6(&self) -> bool {
        match self {
            Self::Addr { addr, .. } => addr.is_ipv6(),
            Self::Fwmark { ipv6, .. } => *ipv6,
        }
    }

    /// Protocol of an address service (None for fwmark services).
    pub fn protocol(&self) -> Option<Protocol> {
        match self {
            Self::Addr { protocol, .. } => Some(*protocol),
            Self::Fwmark { .. } => None,
        }
    }
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Addr {
                protocol,
                addr: IpAddr::V4(a),
                port,
            } => write!(f, "{protocol} {a}:{port}"),
            Self::Addr {
                protocol,
                addr: IpAddr::V6(a),
                port,
            } => write!(f, "{protocol} [{a}]:{port}"),
            Self::Fwmark { mark, ipv6 } => {
                write!(f, "FWM {mark}{}", if *ipv6 { " IPv6" } else { "" })
            }
        }
    }
}

/// Scheduler flags (`-b flag-1,flag-2,flag-3`; aliases sh-fallback/sh-port, mh-fallback/mh-port).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct SchedFlags {
    /// flag-1 (sh-fallback / mh-fallback).
    #[serde(default)]
    pub flag1: bool,
    /// flag-2 (sh-port / mh-port).
    #[serde(default)]
    pub flag2: bool,
    /// flag-3.
    #[serde(default)]
    pub flag3: bool,
}

impl SchedFlags {
    /// True when no flag is set.
    pub fn is_empty(&self) -> bool {
        !(self.flag1 || self.flag2 || self.flag3)
    }
}

/// Persistence (`-p timeout`, `-M netmask`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Persistence {
    /// Template timeout in seconds (> 0).
    pub timeout_s: u32,
    /// Client address mask: an IPv4 netmask for IPv4 services, an IPv6 mask for IPv6 ones
    /// (ipvsadm shows IPv6 masks as a prefix length).
    pub netmask: IpAddr,
}

impl Persistence {
    /// The default (host) mask for a family: 255.255.255.255 or ffff:...:ffff (/128).
    pub fn host_mask(ipv6: bool) -> IpAddr {
        if ipv6 {
            IpAddr::V6(Ipv6Addr::from(u128::MAX))
        } else {
            IpAddr::V4(Ipv4Addr::BROADCAST)
        }
    }
}

/// A virtual service's configuration (`-A`/`-E`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ServiceConfig {
    pub key: ServiceKey,
    /// Scheduler name (`rr`, `wlc`, `mh`, ...).
    pub scheduler: String,
    #[serde(default)]
    pub sched_flags: SchedFlags,
    /// `-p` / `-M`; `null` when not persistent.
    #[serde(default)]
    pub persistence: Option<Persistence>,
    /// One-packet scheduling (`-o`).
    #[serde(default)]
    pub one_packet: bool,
    /// Persistence engine (`--pe`), e.g. "sip".
    #[serde(default)]
    pub pe: Option<String>,
}

/// Tunnel encapsulation (`--tun-type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TunnelType {
    #[default]
    Ipip,
    Gue,
    Gre,
}

impl TunnelType {
    /// ipvsadm's name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Ipip => "ipip",
            Self::Gue => "gue",
            Self::Gre => "gre",
        }
    }
}

/// Tunnel checksum mode (`--tun-nocsum`, `--tun-csum`, `--tun-remcsum`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TunnelCsum {
    #[default]
    NoCsum,
    Csum,
    RemCsum,
}

/// Tunnel parameters of a tunnel destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct TunnelConfig {
    #[serde(rename = "type", default)]
    pub tun_type: TunnelType,
    /// UDP port for GUE (0 otherwise).
    #[serde(default)]
    pub port: u16,
    #[serde(default)]
    pub csum: TunnelCsum,
}

/// Forwarding method of a destination.
///
/// JSON: `"masq"`, `"local"`, `"route"`, `"bypass"`, or `{"tunnel": {"type": "ipip", "port": 0, "csum": "nocsum"}}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ForwardMethod {
    /// NAT (`-m`).
    Masq,
    /// Local node (the kernel picks it when the real server is a local address).
    Local,
    /// Direct routing (`-g`, ipvsadm's default).
    #[default]
    Route,
    /// IP tunnelling (`-i`).
    Tunnel(TunnelConfig),
    /// Bypass (kernel internal; listed only).
    Bypass,
}

impl ForwardMethod {
    /// ipvsadm's column name ("Masq", "Local", "Tunnel", "Route", "Bypass").
    pub const fn name(&self) -> &'static str {
        match self {
            Self::Masq => "Masq",
            Self::Local => "Local",
            Self::Route => "Route",
            Self::Tunnel(_) => "Tunnel",
            Self::Bypass => "Bypass",
        }
    }
}

/// A destination's (real server's) configuration (`-a`/`-e`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DestConfig {
    pub addr: IpAddr,
    /// 0 = the port of the packet (port-0 / fwmark services).
    pub port: u16,
    /// 0 = quiesced.
    pub weight: u32,
    pub method: ForwardMethod,
    /// Upper connection threshold `-x` (0 = none).
    #[serde(default)]
    pub u_threshold: u32,
    /// Lower connection threshold `-y` (0 = none).
    #[serde(default)]
    pub l_threshold: u32,
}

/// Traffic counters (totals since creation or the last `-Z`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Stats {
    pub conns: u64,
    pub inpkts: u64,
    pub outpkts: u64,
    pub inbytes: u64,
    pub outbytes: u64,
}

/// Estimated rates (per second).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Rates {
    pub cps: u64,
    pub inpps: u64,
    pub outpps: u64,
    /// Bytes per second in.
    pub inbps: u64,
    /// Bytes per second out.
    pub outbps: u64,
}

/// A destination as listed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DestInfo {
    pub config: DestConfig,
    pub active_conns: u32,
    pub inactive_conns: u32,
    pub persistent_conns: u32,
    #[serde(default)]
    pub stats: Stats,
    #[serde(default)]
    pub rates: Rates,
}

/// A virtual service as listed, with its destinations in configuration order.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ServiceInfo {
    pub config: ServiceConfig,
    #[serde(default)]
    pub stats: Stats,
    #[serde(default)]
    pub rates: Rates,
    #[serde(default)]
    pub dests: Vec<DestInfo>,
}

/// A connection or persistence template (`-L -c`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ConnInfo {
    pub protocol: Protocol,
    pub caddr: IpAddr,
    pub cport: u16,
    pub vaddr: IpAddr,
    pub vport: u16,
    pub daddr: IpAddr,
    pub dport: u16,
    /// IPVS state name ("ESTABLISHED", "SYN_RECV", "FIN_WAIT", "UDP", "NONE", ...).
    pub state: String,
    /// Milliseconds until expiry.
    pub expires_ms: u64,
    /// A persistence template rather than a connection.
    #[serde(default)]
    pub template: bool,
}

/// Protocol timeouts in seconds (`--set tcp tcpfin udp`; in a `set_timeouts` command 0 = unchanged).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Timeouts {
    pub tcp_s: u32,
    pub tcp_fin_s: u32,
    pub udp_s: u32,
}

/// Director information (`GetInfo`): the header line of `ipvsadm -L`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Info {
    /// IPVS version emulated, e.g. "1.2.1".
    pub version: String,
    /// Connection hash table size (`size=` in the header).
    pub conn_table_size: u32,
}

/// Sync daemon state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DaemonState {
    Master,
    Backup,
}

impl DaemonState {
    pub const fn name(self) -> &'static str {
        match self {
            Self::Master => "master",
            Self::Backup => "backup",
        }
    }
}

/// Sync daemon parameters (`--start-daemon`); listed by `ListDaemons`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DaemonConfig {
    pub state: DaemonState,
    pub mcast_ifn: String,
    pub syncid: u8,
    /// `--sync-maxlen` (0 = default).
    #[serde(default)]
    pub sync_maxlen: u16,
    #[serde(default)]
    pub mcast_group: Option<IpAddr>,
    /// 0 = default.
    #[serde(default)]
    pub mcast_port: u16,
    /// 0 = default.
    #[serde(default)]
    pub mcast_ttl: u8,
}

/// Every control operation (one per ipvsadm operation, plus batching and queries).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    /// `-A`
    AddService(ServiceConfig),
    /// `-E`
    EditService(ServiceConfig),
    /// `-D`
    DeleteService(ServiceKey),
    /// `-a`
    AddDest {
        service: ServiceKey,
        dest: DestConfig,
    },
    /// `-e`
    EditDest {
        service: ServiceKey,
        dest: DestConfig,
    },
    /// `-d`
    DeleteDest {
        service: ServiceKey,
        addr: IpAddr,
        port: u16,
    },
    /// `-C`
    Clear,
    /// `-Z [service]`
    Zero(Option<ServiceKey>),
    /// `--set tcp tcpfin udp` (0 = unchanged)
    SetTimeouts(Timeouts),
    /// All or nothing (`-R`): on failure nothing is applied and the error carries the index.
    Batch(Vec<Command>),
    /// `-L` (replies `Services`)
    ListServices,
    /// `-L -t ...` (replies `Service`)
    GetService(ServiceKey),
    /// `-L -c` (replies `Connections`)
    ListConnections,
    /// `-L --timeout` (replies `Timeouts`)
    GetTimeouts,
    /// Header data (replies `Info`)
    GetInfo,
    /// `--start-daemon`
    StartDaemon(DaemonConfig),
    /// `--stop-daemon`
    StopDaemon(DaemonState),
    /// `-L --daemon` (replies `Daemons`)
    ListDaemons,
    /// Health of the real servers rvsd checks (`rvsd --keepalived`; replies `Health`, empty without checks).
    GetHealth,
    /// VRRP instances and sync daemon counters (replies `Ha`; `rvsadm --json -L --daemon`)
    GetHa,
    /// The connection limit, the defences and the drop counters (replies `Defense`; rvs only)
    GetDefense,
}

impl Command {
    /// True for commands that change configuration (those a rules file is made of).
    pub fn is_change(&self) -> bool {
        matches!(
            self,
            Self::AddService(_)
                | Self::EditService(_)
                | Self::DeleteService(_)
                | Self::AddDest { .. }
                | Self::EditDest { .. }
                | Self::DeleteDest { .. }
                | Self::Clear
                | Self::Zero(_)
                | Self::SetTimeouts(_)
                | Self::Batch(_)
        )
    }
}

/// A successful answer.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reply {
    /// A change was applied.
    Done,
    Services(Vec<ServiceInfo>),
    Service(ServiceInfo),
    Connections(Vec<ConnInfo>),
    Timeouts(Timeouts),
    Info(Info),
    Daemons(Vec<DaemonConfig>),
    Health(Vec<ServiceHealth>),
    Ha(HaStatus),
    Defense(DefenseInfo),
}

/// Health of one keepalived virtual server (`GetHealth`; `rvsadm -L --json` shows it as `"health"`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ServiceHealth {
    /// The IPVS services this virtual server stands for (several for a `virtual_server group`).
    pub keys: Vec<ServiceKey>,
    pub quorum_up: bool,
    /// Sum of the weights of the alive real servers.
    pub live_weight: u64,
    pub sorry_server_active: bool,
    /// Every configured real server, in the pool or not.
    pub real_servers: Vec<RealServerHealth>,
}

/// Health of one real server.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RealServerHealth {
    pub addr: IpAddr,
    pub port: u16,
    /// `"up"` (in the pool), `"down"` (removed, or weight 0 with inhibit_on_failure), `"sorry"` (alive but out of
    /// the pool while the sorry server serves).
    pub state: String,
    /// Weight in the pool; `null` when removed.
    pub weight: Option<u32>,
    /// `"success"`, `"failure"` or `"none"` (not checked yet).
    pub last_result: String,
    /// Why it is in its state (the failing checker's reason when down).
    pub reason: String,
    /// When the state last changed (Unix time in milliseconds).
    pub changed_unix_ms: u64,
    pub checkers: Vec<CheckerHealth>,
}

/// Health of one checker of a real server.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CheckerHealth {
    /// keepalived's name: `"TCP_CHECK"`, `"HTTP_GET"`, ...
    pub kind: String,
    /// `IP:port` checked.
    pub target: String,
    pub up: bool,
    pub last_result: String,
    pub reason: String,
    pub changed_unix_ms: u64,
    /// Failures in the current retry cycle.
    pub retries: u32,
}

/// High availability state: VRRP instances and sync daemon counters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub struct HaStatus {
    pub vrrp: Vec<VrrpStatus>,
    pub sync: Vec<SyncStatus>,
}

/// One VRRP instance.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct VrrpStatus {
    pub name: String,
    pub vrid: u8,
    pub interface: String,
    /// keepalived's state name: INIT, BACKUP, MASTER, FAULT.
    pub state: String,
    pub priority: u8,
    /// State changes since start.
    pub transitions: u64,
}

/// Counters of one running sync daemon.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SyncStatus {
    pub state: DaemonState,
    /// Name -> value (master: sent_messages, sent_conns, send_errors; backup: messages, bad_messages,
    /// foreign_syncid, created, updated, replaced, no_service, no_destination, stale, unsupported, bad_state,
    /// table_full).
    pub counters: Vec<(String, u64)>,
}

/// The connection-table limit and IPVS's defences (their sysctl names and values: 0 off, 1 automatic and
/// inactive, 2 automatic and active, 3 always), with the drop counters by reason (`rvsadm -L --json`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct DefenseInfo {
    /// Connection limit (`None`: unlimited).
    pub max_conns: Option<u64>,
    /// Connections at the last evaluation (once a second).
    pub conns: u64,
    /// "Memory pressure" threshold, in free entries under `max_conns`.
    pub amemthresh: u64,
    pub am_droprate: u32,
    pub drop_entry: u8,
    pub drop_packet: u8,
    pub secure_tcp: u8,
    pub expire_nodest_conn: u8,
    pub expire_quiescent_template: u8,
    pub conn_reuse_mode: u8,
    /// Fewer than `amemthresh` entries free at the last evaluation.
    pub pressure: bool,
    /// drop_packet's current rate (0: none; n: one in n new connections).
    pub drop_rate: u32,
    /// Entries removed by drop_entry's periodic scan.
    pub entries_dropped: u64,
    /// Entries evicted to make room for a new connection at the limit.
    pub entries_evicted: u64,
    /// Dropped packets by reason.
    pub drops: std::collections::BTreeMap<String, u64>,
}

/// One request line.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Request {
    /// [`crate::PROTOCOL_VERSION`] of the sender.
    pub version: u32,
    pub command: Command,
}

impl Request {
    /// A request at the current protocol version.
    pub fn new(command: Command) -> Self {
        Self {
            version: crate::PROTOCOL_VERSION,
            command,
        }
    }
}

/// One response line: `{"ok": <Reply>}` or `{"err": <ApiError>}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Response {
    Ok(Reply),
    Err(ApiError),
}

impl From<Result<Reply, ApiError>> for Response {
    fn from(r: Result<Reply, ApiError>) -> Self {
        match r {
            Ok(v) => Self::Ok(v),
            Err(e) => Self::Err(e),
        }
    }
}

impl From<Response> for Result<Reply, ApiError> {
    fn from(r: Response) -> Self {
        match r {
            Response::Ok(v) => Ok(v),
            Response::Err(e) => Err(e),
        }
    }
}
