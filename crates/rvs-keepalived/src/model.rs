//! The typed configuration: global_defs, the LVS side (virtual servers, groups, real servers, checkers) and the
//! VRRP side ([`crate::vrrp`]). Every item keeps its `file:line`. Values are as keepalived resolves them: a
//! checker's timing is already inherited from its real server, virtual server and keepalived's defaults.

use std::net::IpAddr;
use std::time::Duration;

use crate::lexer::Loc;
use crate::vrrp::VrrpConfig;

/// keepalived's documented defaults (keepalived.conf(5), check_api.c, check_parser.c, check_http.c, check_dns.c,
/// check_misc.c).
pub mod defaults {
    use std::time::Duration;
    /// `delay_loop` (KEEPALIVED_DEFAULT_DELAY).
    pub const DELAY_LOOP: Duration = Duration::from_secs(60);
    /// `connect_timeout`.
    pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
    /// `retry` for TCP_CHECK, HTTP_GET, SSL_GET, SMTP_CHECK, UDP_CHECK (checker->default_retry = 1).
    pub const RETRY: u32 = 1;
    /// `retry` for DNS_CHECK (DNS_DEFAULT_RETRY).
    pub const DNS_RETRY: u32 = 3;
    /// `retry` for MISC_CHECK (check_misc.c: default_retry = 0).
    pub const MISC_RETRY: u32 = 0;
    /// `delay_before_retry` (checker->default_delay_before_retry = 1 s).
    pub const DELAY_BEFORE_RETRY: Duration = Duration::from_secs(1);
    /// `delay_before_retry` for HTTP_GET and SSL_GET (3 s). DNS_CHECK's default is its delay_loop.
    pub const HTTP_DELAY_BEFORE_RETRY: Duration = Duration::from_secs(3);
    /// `lvs_sched`.
    pub const SCHEDULER: &str = "wlc";
    /// `persistence_timeout` without a value, or implied by `persistence_granularity` (IPVS_SVC_PERSISTENT_TIMEOUT).
    pub const PERSISTENCE_TIMEOUT: u32 = 360;
    /// `weight`.
    pub const WEIGHT: u32 = 1;
    /// `quorum`.
    pub const QUORUM: u64 = 1;
    /// HTTP `status_code` when none is given: 200-299.
    pub const STATUS_CODES: (u16, u16) = (200, 299);
    /// SMTP_CHECK `helo_name` (SMTP_DEFAULT_HELO).
    pub const SMTP_HELO: &str = "smtpchecker.keepalived.org";
    /// DNS_CHECK `name`.
    pub const DNS_NAME: &str = ".";
    /// UDP_CHECK `max_reply_length`.
    pub const UDP_MAX_REPLY: usize = 255;
}

/// The whole file.
#[derive(Debug, Clone, Default)]
pub struct Config {
    pub global: GlobalDefs,
    pub virtual_server_groups: Vec<VirtualServerGroup>,
    pub virtual_servers: Vec<VirtualServer>,
    /// The top-level `SSL { }` block (SSL_GET's client context).
    pub ssl: Option<SslContext>,
    pub vrrp: VrrpConfig,
}

/// global_defs (the parts that matter to a director; the rest is reported as not used).
#[derive(Debug, Clone, Default)]
pub struct GlobalDefs {
    pub router_id: Option<String>,
    /// `lvs_timeouts [tcp S] [tcpfin S] [udp S]` (0 = unchanged).
    pub lvs_timeouts: Option<LvsTimeouts>,
    /// `lvs_sync_daemon IFACE [inst] VRRP_INSTANCE [id N] [maxlen N] [port N] [ttl N] [group IP]`.
    pub lvs_sync_daemon: Option<LvsSyncDaemon>,
    /// `lvs_flush`: clear all virtual servers at start.
    pub lvs_flush: bool,
    /// `lvs_flush_onstop`.
    pub lvs_flush_onstop: bool,
    pub vrrp_mcast_group4: Option<IpAddr>,
    pub vrrp_mcast_group6: Option<IpAddr>,
    pub vrrp_version: Option<u8>,
    pub script_user: Option<String>,
    pub enable_script_security: bool,
    pub notification_email: Vec<String>,
    pub notification_email_from: Option<String>,
    pub smtp_server: Option<String>,
}

/// `lvs_timeouts` (seconds; `None` = unchanged).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LvsTimeouts {
    pub tcp: Option<u32>,
    pub tcpfin: Option<u32>,
    pub udp: Option<u32>,
}

/// `lvs_sync_daemon` (global_defs): which interface and VRRP instance drive the IPVS connection sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LvsSyncDaemon {
    pub loc: Loc,
    pub interface: String,
    /// The VRRP instance whose state (master/backup) selects the sync role.
    pub instance: Option<String>,
    /// Sync id (default: the instance's virtual_router_id).
    pub syncid: Option<u8>,
    pub maxlen: Option<u16>,
    /// UDP port (default 8848).
    pub port: Option<u16>,
    /// Multicast TTL (default 1).
    pub ttl: Option<u8>,
    /// Multicast group (default 224.0.0.81).
    pub group: Option<IpAddr>,
}

/// The top-level SSL block.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SslContext {
    pub password: Option<String>,
    pub ca: Option<String>,
    pub certificate: Option<String>,
    pub key: Option<String>,
}

/// One entry of a `virtual_server_group`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupEntry {
    /// `IP[-LAST] [PORT]` or `IP/LEN [PORT]`: every address from `first` to `last` (inclusive).
    Range {
        first: IpAddr,
        last: IpAddr,
        port: u16,
    },
    /// `fwmark N [inet|inet6]`.
    Fwmark { mark: u32, ipv6: Option<bool> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualServerGroup {
    pub loc: Loc,
    pub name: String,
    pub entries: Vec<(Loc, GroupEntry)>,
}

/// How a virtual_server is named.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum VsAddress {
    /// `virtual_server IP [PORT]` (port 0 when omitted: persistent port-0 services).
    Addr { addr: IpAddr, port: u16 },
    /// `virtual_server fwmark N`.
    Fwmark(u32),
    /// `virtual_server group NAME`.
    Group(String),
}

/// `protocol TCP|UDP|SCTP`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum VsProtocol {
    #[default]
    Tcp,
    Udp,
    Sctp,
}

/// `lvs_method` / `lb_kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum LvsMethod {
    /// NAT (masquerading; keepalived's default).
    #[default]
    Nat,
    /// DR (direct routing).
    Dr,
    /// TUN [type ipip|gue port N|gre] [nocsum|csum|remcsum].
    Tun(rvs_api::TunnelConfig),
}

/// Scheduler flags (`flag-1`/`sh-fallback`/`mh-fallback`, `flag-2`/`sh-port`/`mh-port`, `flag-3`): IPVS's.
pub use rvs_api::SchedFlags;

/// A script with optional `user[:group]` (notify_up, quorum_up, misc_path, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    /// The command line, run through /bin/sh -c like keepalived's scripts.
    pub command: String,
    pub user: Option<String>,
}

#[derive(Debug, Clone)]
pub struct VirtualServer {
    pub loc: Loc,
    pub address: VsAddress,
    pub protocol: VsProtocol,
    /// `lvs_sched` / `lb_algo`.
    pub scheduler: String,
    pub flags: SchedFlags,
    /// `ops`: one-packet scheduling.
    pub ops: bool,
    pub method: LvsMethod,
    pub persistence_engine: Option<String>,
    /// Seconds; `None`: not persistent.
    pub persistence_timeout: Option<u32>,
    pub persistence_granularity: Option<IpAddr>,
    /// `ip_family inet6` (fwmark services).
    pub ipv6_family: Option<bool>,
    pub ha_suspend: bool,
    pub virtualhost: Option<String>,
    pub alpha: bool,
    pub omega: bool,
    pub quorum: u64,
    pub hysteresis: u64,
    pub quorum_up: Option<Script>,
    pub quorum_down: Option<Script>,
    pub sorry_server: Option<SorryServer>,
    pub inhibit_on_failure: bool,
    pub real_servers: Vec<RealServer>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SorryServer {
    pub loc: Loc,
    pub addr: IpAddr,
    pub port: u16,
    /// `sorry_server_inhibit`: kept at weight 0 while unused instead of absent.
    pub inhibit: bool,
    /// `sorry_server_lvs_method` (default: the virtual server's).
    pub method: LvsMethod,
}

#[derive(Debug, Clone)]
pub struct RealServer {
    pub loc: Loc,
    pub addr: IpAddr,
    /// 0 when omitted (fwmark / port-0 services).
    pub port: u16,
    pub weight: u32,
    pub method: LvsMethod,
    pub u_threshold: u32,
    pub l_threshold: u32,
    pub inhibit_on_failure: bool,
    /// Start as failed until the checkers succeed once.
    pub alpha: bool,
    pub notify_up: Option<Script>,
    pub notify_down: Option<Script>,
    pub checkers: Vec<Checker>,
}

/// One health checker with its timing resolved (checker, else real server, else virtual server, else default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checker {
    pub loc: Loc,
    pub kind: CheckKind,
    /// Address and port checked (default: the real server's).
    pub connect_ip: IpAddr,
    pub connect_port: u16,
    pub bindto: Option<IpAddr>,
    pub bind_port: Option<u16>,
    pub bind_if: Option<String>,
    /// Mark set on the checker's packets (SO_MARK).
    pub fwmark: Option<u32>,
    pub connect_timeout: Duration,
    /// Failures tolerated before the checker goes down: it goes down after `retry + 1` consecutive failures.
    pub retry: u32,
    pub delay_before_retry: Duration,
    pub delay_loop: Duration,
    /// The first check runs after a random delay in [0, warmup).
    pub warmup: Duration,
    /// Starts failed (from the real server / virtual server `alpha`, or its own).
    pub alpha: bool,
    pub log_all_failures: bool,
}

/// The checker types and their own options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckKind {
    Tcp,
    Http(HttpCheck),
    /// SSL_GET: HTTP over TLS.
    Ssl(HttpCheck),
    Misc(MiscCheck),
    Udp(UdpCheck),
    Dns(DnsCheck),
    Smtp(SmtpCheck),
}

impl CheckKind {
    /// keepalived's block name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Tcp => "TCP_CHECK",
            Self::Http(_) => "HTTP_GET",
            Self::Ssl(_) => "SSL_GET",
            Self::Misc(_) => "MISC_CHECK",
            Self::Udp(_) => "UDP_CHECK",
            Self::Dns(_) => "DNS_CHECK",
            Self::Smtp(_) => "SMTP_CHECK",
        }
    }
}

/// `http_protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HttpProtocol {
    /// HTTP/1.0 (keepalived's default).
    #[default]
    V10,
    /// HTTP/1.0 with `Connection: close`.
    V10C,
    /// HTTP/1.1 (with `Connection: close`).
    V11,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HttpCheck {
    pub urls: Vec<HttpUrl>,
    pub protocol: HttpProtocol,
    /// SSL_GET `enable_sni`: send SNI (the virtualhost, or `sni_name`).
    pub enable_sni: bool,
    pub sni_name: Option<String>,
    pub fast_recovery: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    pub loc: Loc,
    pub path: String,
    /// MD5 of the body, as genhash prints it.
    pub digest: Option<[u8; 16]>,
    /// Accepted status codes (inclusive ranges).
    pub status: Vec<(u16, u16)>,
    /// Host header: the url's, else the checker's, real server's or virtual server's `virtualhost`; else the
    /// connect address.
    pub virtualhost: Option<String>,
}

impl HttpUrl {
    /// Is `code` accepted?
    pub fn accepts(&self, code: u16) -> bool {
        self.status.iter().any(|&(a, b)| a <= code && code <= b)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MiscCheck {
    pub script: Script,
    /// `misc_timeout` (default: the checker's delay_loop).
    pub timeout: Duration,
    /// `misc_dynamic`: exit codes 2..=255 mean up with weight `code - 2`.
    pub dynamic: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UdpCheck {
    /// `payload HEX` (default: keepalived sends random bytes; rvs sends 4 fixed bytes).
    pub payload: Option<Vec<u8>>,
    /// `require_reply [HEX]`: `None` = no reply needed (only an ICMP error fails); `Some(pattern)` = a reply is
    /// needed and must start with the pattern (`None` nibbles are wildcards).
    pub require_reply: Option<Vec<HexNibblePair>>,
    pub min_reply_length: usize,
    pub max_reply_length: usize,
}

/// One byte of a `require_reply` pattern: (high nibble, low nibble), `None` = X (any).
pub type HexNibblePair = (Option<u8>, Option<u8>);

/// DNS_CHECK query type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DnsType {
    A,
    Ns,
    Cname,
    #[default]
    Soa,
    Mx,
    Txt,
    Aaaa,
}

impl DnsType {
    /// The RR type number.
    pub fn code(self) -> u16 {
        match self {
            Self::A => 1,
            Self::Ns => 2,
            Self::Cname => 5,
            Self::Soa => 6,
            Self::Mx => 15,
            Self::Txt => 16,
            Self::Aaaa => 28,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsCheck {
    pub qtype: DnsType,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpCheck {
    pub helo_name: String,
}
