//! rvs-announce: health-aware route announcement for scale-out (many directors behind a router's ECMP).
//!
//! A routing daemon announces the VIP; this small watcher tells it when to stop. Every interval it asks rvsd (its
//! control socket, the protocol rvsadm uses) for the virtual services, and switches a BIRD protocol on or off
//! through BIRD's control socket (`enable` / `disable`, what `birdc` does):
//!
//! - announce a VIP while rvsd answers and at least one virtual service on that address has a real server with a
//!   weight above 0 (a failed health check removes the real server or sets its weight to 0, keepalived's way);
//! - withdraw it when rvsd does not answer in time (stopped, crashed, hung), when the VIP has no service or no
//!   usable real server, and when the watcher itself is stopped (SIGTERM/SIGINT).
//!
//! The BIRD side names one `protocol static` per VIP whose route points at rvsd's TUN device
//! (`route 198.51.100.100/32 via "rvs0";`): BIRD itself drops that route the moment the TUN disappears (rvsd
//! exits or is killed, the device goes with it), even if this watcher is gone too. See SCALING.md for the whole
//! configuration.

pub mod bird;

use std::io::{BufReader, BufWriter};
use std::net::IpAddr;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use rvs_api::framing;
use rvs_api::{Command, Reply, Request, Response, ServiceKey, ServiceSnapshot};

/// One VIP and the BIRD protocol that announces it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    pub vip: IpAddr,
    pub protocol: String,
}

/// A bad `VIP=PROTOCOL` argument.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?}: expected VIP=PROTOCOL, e.g. 198.51.100.100=rvs_vip4 (a BIRD protocol name: letters, digits, _)"
)]
pub struct BadAnnouncement(pub String);

impl std::str::FromStr for Announcement {
    type Err = BadAnnouncement;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadAnnouncement(s.to_string());
        let (vip, proto) = s.split_once('=').ok_or_else(bad)?;
        let vip: IpAddr = vip.trim().parse().map_err(|_| bad())?;
        let proto = proto.trim();
        let name_ok = proto
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && proto.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !name_ok {
            return Err(bad());
        }
        Ok(Announcement {
            vip,
            protocol: proto.to_string(),
        })
    }
}

/// True while some address service on `vip` has a real server with a weight above 0.
pub fn serving(services: &[ServiceSnapshot], vip: IpAddr) -> bool {
    services.iter().any(|s| {
        matches!(s.spec.key, ServiceKey::Addr { addr, .. } if addr == vip)
            && s.dests.iter().any(|d| !d.spec.weight.is_quiesced())
    })
}

/// Why rvsd could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum RvsdError {
    #[error("cannot reach rvsd at {path}: {source}")]
    Connect {
        path: String,
        source: std::io::Error,
    },
    #[error("rvsd control connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("rvsd control connection: {0}")]
    Framing(#[from] framing::FramingError),
    #[error("rvsd answered {0}")]
    Unexpected(String),
}

/// Lists rvsd's services over its control socket, every step bounded by `timeout` (a hung rvsd is not serving).
pub fn list_services(socket: &Path, timeout: Duration) -> Result<Vec<ServiceSnapshot>, RvsdError> {
    let stream = UnixStream::connect(socket).map_err(|source| RvsdError::Connect {
        path: socket.display().to_string(),
        source,
    })?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let mut w = BufWriter::new(stream.try_clone()?);
    framing::write_message(&mut w, &Request::new(Command::ListServices))?;
    drop(w);
    let mut r = BufReader::new(stream);
    match framing::read_message::<_, Response>(&mut r)? {
        Some(Response::Ok(Reply::Services(s))) => Ok(s),
        Some(Response::Err(e)) => Err(RvsdError::Unexpected(e.to_string())),
        other => Err(RvsdError::Unexpected(format!("{other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_api::{DestSpec, ForwardMethod, Protocol, ServiceSpec};

    fn svc(addr: &str, weights: &[u32]) -> ServiceSnapshot {
        let key = ServiceKey::Addr {
            protocol: Protocol::Tcp,
            addr: addr.parse().unwrap_or(IpAddr::from([0, 0, 0, 0])),
            port: 80,
        };
        let dests: Vec<DestSpec> = weights
            .iter()
            .enumerate()
            .map(|(i, &w)| DestSpec {
                method: ForwardMethod::Route,
                ..DestSpec::masq(
                    IpAddr::from([203, 0, 113, 11 + i as u8]),
                    80,
                    rvs_api::Weight(w),
                )
            })
            .collect();
        ServiceSnapshot::configured(ServiceSpec::new(key, "mh"), &dests)
    }

    #[test]
    fn serving_needs_a_usable_real_server_on_that_vip() {
        let vip: IpAddr = "198.51.100.100"
            .parse()
            .unwrap_or(IpAddr::from([0, 0, 0, 0]));
        assert!(!serving(&[], vip), "no service");
        assert!(
            !serving(&[svc("198.51.100.100", &[])], vip),
            "no real server"
        );
        assert!(
            !serving(&[svc("198.51.100.100", &[0, 0])], vip),
            "all quiesced / failed"
        );
        assert!(serving(&[svc("198.51.100.100", &[0, 3])], vip));
        assert!(!serving(&[svc("198.51.100.101", &[1])], vip), "another VIP");
        assert!(serving(
            &[svc("198.51.100.100", &[0]), svc("198.51.100.100", &[1])],
            vip
        ));
    }

    #[test]
    fn announcement_arguments() {
        let a: Announcement = "198.51.100.100=rvs_vip4".parse().expect("valid");
        assert_eq!(a.protocol, "rvs_vip4");
        assert_eq!(a.vip, IpAddr::from([198, 51, 100, 100]));
        let b: Announcement = "2001:db8:0:1::100=vip6".parse().expect("v6");
        assert!(b.vip.is_ipv6());
        for bad in [
            "198.51.100.100",
            "x=vip",
            "198.51.100.100=",
            "198.51.100.100=vip;reload",
            "1.2.3.4=9x",
            "1.2.3.4=a b",
        ] {
            assert!(bad.parse::<Announcement>().is_err(), "{bad}");
        }
    }
}
