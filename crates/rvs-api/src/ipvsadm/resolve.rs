//! Name resolution as ipvsadm does it (hosts and services), kept offline-safe: forward host
//! lookups go through the system resolver (`getaddrinfo` via std, /etc/hosts first), reverse host
//! lookups and service names read /etc/hosts and /etc/services only (no reverse DNS).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, ToSocketAddrs};
use std::sync::OnceLock;

use crate::types::Protocol;

/// Lookups used by the parser (names -> numbers) and the formatter (numbers -> names, unless `-n`).
pub trait Resolver {
    /// `gethostbyname`: the first IPv4 address of `name`.
    fn host_to_addr(&self, name: &str) -> Option<Ipv4Addr>;
    /// `getservbyname(name, proto)`.
    fn service_to_port(&self, name: &str, proto: Protocol) -> Option<u16>;
    /// `gethostbyaddr`: a host name for `addr`.
    fn addr_to_host(&self, addr: IpAddr) -> Option<String>;
    /// `getservbyport(port, proto)`.
    fn port_to_service(&self, port: u16, proto: Protocol) -> Option<String>;
}

/// Resolves nothing: every name is unknown, every number prints as a number.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoResolver;

impl Resolver for NoResolver {
    fn host_to_addr(&self, _: &str) -> Option<Ipv4Addr> {
        None
    }
    fn service_to_port(&self, _: &str, _: Protocol) -> Option<u16> {
        None
    }
    fn addr_to_host(&self, _: IpAddr) -> Option<String> {
        None
    }
    fn port_to_service(&self, _: u16, _: Protocol) -> Option<String> {
        None
    }
}

/// Fixed tables (tests, or a snapshot of /etc files).
#[derive(Debug, Clone, Default)]
pub struct TableResolver {
    /// name -> address (first match wins for forward lookups).
    pub hosts: Vec<(String, IpAddr)>,
    /// (name, protocol, port); aliases are extra rows.
    pub services: Vec<(String, Protocol, u16)>,
}

impl TableResolver {
    /// Parses /etc/hosts and /etc/services formatted text.
    pub fn parse(hosts: &str, services: &str) -> Self {
        let mut t = Self::default();
        for line in hosts.lines() {
            let line = line.split('#').next().unwrap_or("");
            let mut words = line.split_whitespace();
            let Some(addr) = words.next().and_then(|a| a.parse::<IpAddr>().ok()) else {
                continue;
            };
            for name in words {
                t.hosts.push((name.to_owned(), addr));
            }
        }
        for line in services.lines() {
            let line = line.split('#').next().unwrap_or("");
            let mut words = line.split_whitespace();
            let (Some(name), Some(pp)) = (words.next(), words.next()) else {
                continue;
            };
            let Some((port, proto)) = pp.split_once('/') else {
                continue;
            };
            let Ok(port) = port.parse::<u16>() else {
                continue;
            };
            let proto = match proto {
                "tcp" => Protocol::Tcp,
                "udp" => Protocol::Udp,
                "sctp" => Protocol::Sctp,
                _ => continue,
            };
            t.services.push((name.to_owned(), proto, port));
            for alias in words {
                t.services.push((alias.to_owned(), proto, port));
            }
        }
        t
    }
}

impl Resolver for TableResolver {
    fn host_to_addr(&self, name: &str) -> Option<Ipv4Addr> {
        self.hosts.iter().find_map(|(n, a)| match a {
            IpAddr::V4(v4) if n == name => Some(*v4),
            _ => None,
        })
    }
    fn service_to_port(&self, name: &str, proto: Protocol) -> Option<u16> {
        self.services
            .iter()
            .find(|(n, p, _)| n == name && *p == proto)
            .map(|s| s.2)
    }
    fn addr_to_host(&self, addr: IpAddr) -> Option<String> {
        self.hosts
            .iter()
            .find(|(_, a)| *a == addr)
            .map(|(n, _)| n.clone())
    }
    fn port_to_service(&self, port: u16, proto: Protocol) -> Option<String> {
        self.services
            .iter()
            .find(|(_, p, n)| *n == port && *p == proto)
            .map(|s| s.0.clone())
    }
}

/// The system: /etc/hosts + /etc/services tables (read once), and std's resolver for forward host
/// lookups not found in /etc/hosts.
#[derive(Debug, Default)]
pub struct SystemResolver {
    tables: OnceLock<TableResolver>,
    cache: std::sync::Mutex<HashMap<String, Option<Ipv4Addr>>>,
}

impl SystemResolver {
    pub fn new() -> Self {
        Self::default()
    }

    fn tables(&self) -> &TableResolver {
        self.tables.get_or_init(|| {
            let hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
            let services = std::fs::read_to_string("/etc/services").unwrap_or_default();
            TableResolver::parse(&hosts, &services)
        })
    }
}

impl Resolver for SystemResolver {
    fn host_to_addr(&self, name: &str) -> Option<Ipv4Addr> {
        if let Some(a) = self.tables().host_to_addr(name) {
            return Some(a);
        }
        if let Ok(cache) = self.cache.lock()
            && let Some(hit) = cache.get(name)
        {
            return *hit;
        }
        let found = (name, 0u16).to_socket_addrs().ok().and_then(|mut it| {
            it.find_map(|sa| match sa.ip() {
                IpAddr::V4(v4) => Some(v4),
                IpAddr::V6(_) => None,
            })
        });
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(name.to_owned(), found);
        }
        found
    }
    fn service_to_port(&self, name: &str, proto: Protocol) -> Option<u16> {
        self.tables().service_to_port(name, proto)
    }
    fn addr_to_host(&self, addr: IpAddr) -> Option<String> {
        self.tables().addr_to_host(addr)
    }
    fn port_to_service(&self, port: u16, proto: Protocol) -> Option<String> {
        self.tables().port_to_service(port, proto)
    }
}
