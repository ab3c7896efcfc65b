//! Configuration operations and their errors.

use std::net::IpAddr;

use crate::service::{DestSpec, ForwardMethod, ServiceKey, ServiceSpec};

/// A control-plane error. `Display` is libipvs's `ipvs_strerror` text, which ipvsadm prints.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("Service not defined")]
    ServiceNotDefined,
    #[error("Service already exists")]
    ServiceExists,
    #[error("No such destination")]
    NoSuchDestination,
    #[error("Destination already exists")]
    DestinationExists,
    #[error("Scheduler or persistence engine not found")]
    SchedulerNotFound,
    /// Bad parameters; the detail says which (not part of the message ipvsadm prints).
    #[error("Invalid argument")]
    InvalidArgument(String),
    /// A forwarding method IPVS lists but rvs does not configure ([`ForwardMethod::Local`],
    /// [`ForwardMethod::Bypass`]; ipvsadm's command line cannot ask for them). The message names the three it
    /// does configure in ipvsadm's words.
    #[error(
        "real server {addr}: forwarding method {} is not supported by rvsd, which forwards with -g (gatewaying), \
         -i (ipip) or -m (masquerading)",
        method.name()
    )]
    MethodNotSupported { addr: IpAddr, method: ForwardMethod },
}

impl ConfigError {
    /// Human detail for `InvalidArgument` (empty otherwise).
    pub fn detail(&self) -> &str {
        match self {
            Self::InvalidArgument(d) => d,
            _ => "",
        }
    }
}

/// Global protocol timeouts (`ipvsadm --set tcp tcpfin udp`), in seconds. As an update
/// ([`TimeoutUpdate`], the `set_timeouts` command) a 0 field leaves that timeout unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Timeouts {
    /// TCP ESTABLISHED.
    pub tcp_s: u32,
    /// TCP FIN_WAIT.
    pub tcp_fin_s: u32,
    /// UDP.
    pub udp_s: u32,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            tcp_s: 900,
            tcp_fin_s: 120,
            udp_s: 300,
        }
    }
}

/// An update of [`Timeouts`]: a 0 field leaves that timeout unchanged (as `ipvsadm --set`).
pub type TimeoutUpdate = Timeouts;

impl Timeouts {
    /// The update that changes nothing (every field 0); [`Timeouts::default`] is IPVS's defaults.
    pub const UNCHANGED: TimeoutUpdate = Self {
        tcp_s: 0,
        tcp_fin_s: 0,
        udp_s: 0,
    };
}

/// One configuration change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigOp {
    AddService(ServiceSpec),
    EditService(ServiceSpec),
    DeleteService(ServiceKey),
    AddDest(ServiceKey, DestSpec),
    EditDest(ServiceKey, DestSpec),
    DeleteDest(ServiceKey, IpAddr, u16),
    /// Delete every service (`ipvsadm -C`).
    Clear,
    /// Zero counters of one service or all (`-Z`).
    Zero(Option<ServiceKey>),
    SetTimeouts(TimeoutUpdate),
}
