//! Protocol types (serde). Their JSON form is the stable schema documented in README.md. The
//! configuration values inside them are rvs-core's types, re-exported here.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::error::ApiError;

/// The scheduler names rvsd knows (`-s`), listed once in rvs-core.
pub use rvs_core::sched::SCHEDULER_NAMES;
/// The configuration vocabulary and the listings are rvs-core's, defined once there
/// (crates/rvs-core/src/service.rs, config.rs, stats.rs, snapshot.rs); their serde form (rvs-core's
/// `serde` feature) is this protocol's JSON schema. The listings' JSON names (`ServiceInfo`,
/// `DestInfo`, `ConnInfo` in the README) are [`ServiceSnapshot`], [`DestSnapshot`] and
/// [`ConnSnapshot`] here.
pub use rvs_core::{
    ConfigOp, ConnSnapshot, DestKey, DestSnapshot, DestSpec, ForwardMethod, Fwmark, Persistence,
    Protocol, Rates, SchedFlags, ServiceKey, ServiceSnapshot, ServiceSpec, Stats, Timeouts,
    TunnelConfig, TunnelCsum, TunnelKind, Weight,
};

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
    AddService(ServiceSpec),
    /// `-E`
    EditService(ServiceSpec),
    /// `-D`
    DeleteService(ServiceKey),
    /// `-a`
    AddDest { service: ServiceKey, dest: DestSpec },
    /// `-e`
    EditDest { service: ServiceKey, dest: DestSpec },
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

impl Command {
    /// The director operation a single change command asks for (`None` for a batch, whose commands each have
    /// theirs, and for queries). The one conversion between the protocol's commands and the core's operations:
    /// the values inside (specs, keys, timeouts) are the same types, moved, not copied field by field.
    pub fn config_op(&self) -> Option<ConfigOp> {
        Some(match self {
            Self::AddService(s) => ConfigOp::AddService(s.clone()),
            Self::EditService(s) => ConfigOp::EditService(s.clone()),
            Self::DeleteService(k) => ConfigOp::DeleteService(*k),
            Self::AddDest { service, dest } => ConfigOp::AddDest(*service, *dest),
            Self::EditDest { service, dest } => ConfigOp::EditDest(*service, *dest),
            Self::DeleteDest {
                service,
                addr,
                port,
            } => ConfigOp::DeleteDest(*service, *addr, *port),
            Self::Clear => ConfigOp::Clear,
            Self::Zero(k) => ConfigOp::Zero(*k),
            Self::SetTimeouts(t) => ConfigOp::SetTimeouts(*t),
            _ => return None,
        })
    }
}

impl ApiError {
    /// "The service does not exist", worded as libipvs words it for `cmd`: "Service not defined"
    /// for destination operations, "No such service" for the others. (Here, beside [`Command`], so
    /// that error.rs does not need the types that use it.)
    pub fn missing_service(cmd: &Command) -> Self {
        match cmd {
            Command::AddDest { .. } | Command::EditDest { .. } | Command::DeleteDest { .. } => {
                Self::new(crate::ErrorCode::ServiceNotDefined)
            }
            _ => Self::new(crate::ErrorCode::NoSuchService),
        }
    }
}

/// A successful answer.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reply {
    /// A change was applied.
    Done,
    Services(Vec<ServiceSnapshot>),
    Service(ServiceSnapshot),
    Connections(Vec<ConnSnapshot>),
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
    /// rvs's SYN gate (not an IPVS defence: rvsd's `--syn-gate`, on the XDP fast path).
    #[serde(default)]
    pub syn_gate: SynGateInfo,
}

/// rvs's SYN gate (`rvsd --syn-gate`): while on, the XDP fast path drops a first SYN to a VIP and passes its
/// retransmission, so a SYN flood from spoofed sources never reaches the slow path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct SynGateInfo {
    /// `"off"`, `"auto"` (on while the slow path is overloaded by a flood) or `"always"`; `"off"` without the
    /// fast path.
    pub mode: String,
    /// Whether first SYNs are held now.
    pub on: bool,
    /// First SYNs dropped.
    pub held: u64,
    /// Retransmissions passed.
    pub passed: u64,
    /// Times `auto` turned it on.
    pub switched_on: u64,
    /// (address, port) pairs gated: the TCP services' (fwmark services are not gated).
    pub vips: u64,
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

#[cfg(test)]
mod tests {
    use super::*;

    const STATS: &str = r#"{"conns":0,"inpkts":0,"outpkts":0,"inbytes":0,"outbytes":0}"#;
    const RATES: &str = r#"{"cps":0,"inpps":0,"outpps":0,"inbps":0,"outbps":0}"#;

    /// The listings are the core's snapshots; their JSON is the README's `ServiceInfo`, `DestInfo` and `ConnInfo`,
    /// byte for byte (the field names `config` and `expires_ms`, the order, the optional fields).
    #[test]
    fn listings_serialize_as_the_documented_schema() {
        let key = ServiceKey::Addr {
            protocol: Protocol::Tcp,
            addr: IpAddr::from([198, 51, 100, 1]),
            port: 80,
        };
        let dest = DestSpec::masq(IpAddr::from([203, 0, 113, 10]), 8080, Weight(3));
        let mut svc = ServiceSnapshot::configured(ServiceSpec::new(key, "wlc"), &[dest]);
        let dest_json = format!(
            r#"{{"config":{{"addr":"203.0.113.10","port":8080,"weight":3,"method":"masq","u_threshold":0,"l_threshold":0}},"active_conns":0,"inactive_conns":0,"persistent_conns":0,"stats":{STATS},"rates":{RATES}}}"#
        );
        let svc_json = format!(
            r#"{{"config":{{"key":{{"addr":{{"protocol":"tcp","addr":"198.51.100.1","port":80}}}},"scheduler":"wlc","sched_flags":{{"flag1":false,"flag2":false,"flag3":false}},"persistence":null,"one_packet":false,"pe":null}},"stats":{STATS},"rates":{RATES},"dests":[{dest_json}]}}"#
        );
        assert_eq!(serde_json::to_string(&svc).expect("json"), svc_json);
        assert_eq!(
            serde_json::from_str::<ServiceSnapshot>(&svc_json).expect("reads"),
            svc
        );
        // An overloaded real server says so; a listing without the field (an older rvsd) reads as not overloaded.
        svc.dests[0].overloaded = true;
        let overloaded = serde_json::to_string(&svc.dests[0]).expect("json");
        assert!(
            overloaded.contains(r#""persistent_conns":0,"overloaded":true,"stats""#),
            "{overloaded}"
        );
        assert_eq!(
            serde_json::from_str::<DestSnapshot>(&overloaded).expect("reads"),
            svc.dests[0]
        );
        assert!(
            !serde_json::from_str::<DestSnapshot>(&dest_json)
                .expect("reads")
                .overloaded
        );

        let conn = ConnSnapshot {
            protocol: Protocol::Tcp,
            caddr: IpAddr::from([198, 51, 100, 200]),
            cport: 40001,
            vaddr: IpAddr::from([198, 51, 100, 1]),
            vport: 80,
            daddr: IpAddr::from([203, 0, 113, 10]),
            dport: 8080,
            state: "ESTABLISHED".into(),
            expires_in_ms: 899_999,
            template: false,
        };
        let conn_json = r#"{"protocol":"tcp","caddr":"198.51.100.200","cport":40001,"vaddr":"198.51.100.1","vport":80,"daddr":"203.0.113.10","dport":8080,"state":"ESTABLISHED","expires_ms":899999,"template":false}"#;
        assert_eq!(serde_json::to_string(&conn).expect("json"), conn_json);
        assert_eq!(
            serde_json::from_str::<ConnSnapshot>(conn_json).expect("reads"),
            conn
        );
    }

    /// Every change command has its director operation; batches and queries have none.
    #[test]
    fn change_commands_are_operations() {
        let key = ServiceKey::Fwmark {
            mark: Fwmark(7),
            ipv6: false,
        };
        let dest = DestSpec::masq(IpAddr::from([203, 0, 113, 10]), 0, Weight(1));
        let pairs = [
            (
                Command::AddService(ServiceSpec::new(key, "rr")),
                ConfigOp::AddService(ServiceSpec::new(key, "rr")),
            ),
            (
                Command::EditService(ServiceSpec::new(key, "wlc")),
                ConfigOp::EditService(ServiceSpec::new(key, "wlc")),
            ),
            (Command::DeleteService(key), ConfigOp::DeleteService(key)),
            (
                Command::AddDest { service: key, dest },
                ConfigOp::AddDest(key, dest),
            ),
            (
                Command::EditDest { service: key, dest },
                ConfigOp::EditDest(key, dest),
            ),
            (
                Command::DeleteDest {
                    service: key,
                    addr: dest.addr,
                    port: 0,
                },
                ConfigOp::DeleteDest(key, dest.addr, 0),
            ),
            (Command::Clear, ConfigOp::Clear),
            (Command::Zero(Some(key)), ConfigOp::Zero(Some(key))),
            (
                Command::SetTimeouts(Timeouts::default()),
                ConfigOp::SetTimeouts(Timeouts::default()),
            ),
        ];
        for (cmd, op) in pairs {
            assert!(cmd.is_change());
            assert_eq!(cmd.config_op(), Some(op), "{cmd:?}");
        }
        assert_eq!(Command::Batch(vec![Command::Clear]).config_op(), None);
        assert_eq!(Command::ListServices.config_op(), None);
    }
}
