//! The VRRP side of keepalived.conf, typed for the VRRP engine (rvs-vrrp) to consume: `vrrp_instance`,
//! `vrrp_sync_group`, `vrrp_script`. Defaults are keepalived's (vrrp_parser.c, vrrp_data.c). Keywords not
//! listed here are reported as warnings with their `file:line` when read.

use std::net::IpAddr;
use std::time::Duration;

use crate::lexer::Loc;
use crate::model::Script;

/// All VRRP blocks of the file, in file order.
#[derive(Debug, Clone, Default)]
pub struct VrrpConfig {
    pub instances: Vec<VrrpInstance>,
    pub sync_groups: Vec<VrrpSyncGroup>,
    pub scripts: Vec<VrrpScript>,
}

impl VrrpConfig {
    pub fn is_empty(&self) -> bool {
        self.instances.is_empty() && self.sync_groups.is_empty() && self.scripts.is_empty()
    }
}

/// `state MASTER|BACKUP`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VrrpState {
    Master,
    Backup,
}

/// `authentication { auth_type PASS|AH; auth_pass X }` (VRRPv2 only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VrrpAuth {
    /// Simple text password (at most 8 bytes are used on the wire).
    Pass(String),
    /// IPSEC-AH.
    Ah(String),
}

/// One `virtual_ipaddress` / `virtual_ipaddress_excluded` line:
/// `ADDR[/LEN] [brd X] [dev IFACE] [scope S] [label L] ...` (words after the address that rvs does not model are
/// kept in `options`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualIp {
    pub loc: Loc,
    pub addr: IpAddr,
    /// Prefix length (default /32 or /128).
    pub prefix: u8,
    pub dev: Option<String>,
    pub label: Option<String>,
    /// Remaining `key value` words (brd, scope, ...).
    pub options: Vec<String>,
}

/// `track_interface { IFACE [weight N] }` / `track_script { NAME [weight N] }` entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracked {
    pub loc: Loc,
    pub name: String,
    /// Priority change while failed (`None`: the instance goes to FAULT).
    pub weight: Option<i32>,
}

/// `vrrp_instance NAME { ... }`.
#[derive(Debug, Clone)]
pub struct VrrpInstance {
    pub loc: Loc,
    pub name: String,
    /// Initial state (keepalived starts BACKUP unless `state MASTER` and priority 255).
    pub state: VrrpState,
    pub interface: Option<String>,
    /// 1..=255 (required).
    pub virtual_router_id: Option<u8>,
    /// 1..=255, default 100.
    pub priority: u8,
    /// Default 1 s.
    pub advert_int: Duration,
    /// 2 or 3 (default: global vrrp_version, else 2; IPv6 uses 3).
    pub version: Option<u8>,
    pub nopreempt: bool,
    /// `preempt_delay` (default 0).
    pub preempt_delay: Duration,
    pub authentication: Option<VrrpAuth>,
    pub virtual_ipaddress: Vec<VirtualIp>,
    pub virtual_ipaddress_excluded: Vec<VirtualIp>,
    /// `unicast_src_ip`.
    pub unicast_src_ip: Option<IpAddr>,
    /// `unicast_peer { IP ... }`: unicast instead of multicast adverts.
    pub unicast_peer: Vec<IpAddr>,
    pub mcast_src_ip: Option<IpAddr>,
    pub track_interface: Vec<Tracked>,
    pub track_script: Vec<Tracked>,
    pub dont_track_primary: bool,
    /// `accept` / `no_accept` (keepalived: accept unless strict mode).
    pub accept: Option<bool>,
    pub garp_master_delay: Option<Duration>,
    pub notify_master: Option<Script>,
    pub notify_backup: Option<Script>,
    pub notify_fault: Option<Script>,
    pub notify_stop: Option<Script>,
    /// `notify SCRIPT`: called with `INSTANCE NAME STATE PRIORITY`.
    pub notify: Option<Script>,
    /// Old per-instance `lvs_sync_daemon_interface IFACE` (global `lvs_sync_daemon` replaces it).
    pub lvs_sync_daemon_interface: Option<String>,
}

/// `vrrp_sync_group NAME { group { I1 I2 } ... }`: instances that change state together.
#[derive(Debug, Clone)]
pub struct VrrpSyncGroup {
    pub loc: Loc,
    pub name: String,
    pub group: Vec<String>,
    pub track_interface: Vec<Tracked>,
    pub track_script: Vec<Tracked>,
    pub notify_master: Option<Script>,
    pub notify_backup: Option<Script>,
    pub notify_fault: Option<Script>,
    pub notify_stop: Option<Script>,
    pub notify: Option<Script>,
}

/// `vrrp_script NAME { script ...; interval; timeout; weight; rise; fall }`.
#[derive(Debug, Clone)]
pub struct VrrpScript {
    pub loc: Loc,
    pub name: String,
    pub script: Option<Script>,
    /// Default 1 s.
    pub interval: Duration,
    /// Default: the interval.
    pub timeout: Duration,
    /// Priority change (default 0: failure means FAULT).
    pub weight: i32,
    /// `weight N reverse`.
    pub weight_reverse: bool,
    /// Successes needed to go up (default 1).
    pub rise: u32,
    /// Failures needed to go down (default 1).
    pub fall: u32,
    pub user: Option<String>,
    /// `init_fail`: starts failed.
    pub init_fail: bool,
}
