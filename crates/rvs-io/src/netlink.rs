//! A small synchronous rtnetlink client (NETLINK_ROUTE) over `netlink-sys`, with the message types of
//! `netlink-packet-route`. Control plane only: it allocates freely.

use std::io;
use std::net::IpAddr;

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REQUEST, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::rule::{RuleAction, RuleAttribute, RuleMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
use rvs_inet::IpVersion;

/// Errors talking to the kernel over rtnetlink.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    #[error("netlink socket: {0}")]
    Socket(#[source] io::Error),
    #[error("{op}: {source}")]
    Kernel {
        op: String,
        #[source]
        source: io::Error,
    },
    #[error("netlink decode: {0}")]
    Decode(String),
}

impl NetlinkError {
    /// The errno the kernel answered, if any.
    pub fn errno(&self) -> Option<i32> {
        match self {
            NetlinkError::Kernel { source, .. } | NetlinkError::Socket(source) => {
                source.raw_os_error()
            }
            NetlinkError::Decode(_) => None,
        }
    }
}

/// A table id as it goes into the 8-bit header field (RT_TABLE_COMPAT when it needs the 32-bit attribute).
fn header_table(table: u32) -> u8 {
    u8::try_from(table).unwrap_or(252)
}

/// The kernel's address family for one of its two sets of tables (routes, rules, neighbours).
fn address_family(family: IpVersion) -> AddressFamily {
    match family {
        IpVersion::V4 => AddressFamily::Inet,
        IpVersion::V6 => AddressFamily::Inet6,
    }
}

fn family(addr: IpAddr) -> AddressFamily {
    address_family(IpVersion::of(addr))
}

fn full_len(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

/// A synchronous rtnetlink connection.
#[derive(Debug)]
pub struct Netlink {
    sock: Socket,
    seq: u32,
}

impl Netlink {
    /// Open a NETLINK_ROUTE socket in the current network namespace.
    pub fn new() -> Result<Self, NetlinkError> {
        let mut sock = Socket::new(NETLINK_ROUTE).map_err(NetlinkError::Socket)?;
        sock.bind_auto().map_err(NetlinkError::Socket)?;
        sock.connect(&SocketAddr::new(0, 0))
            .map_err(NetlinkError::Socket)?;
        Ok(Self { sock, seq: 1 })
    }

    /// Send one request and collect the messages of the answer (until the ack, or NLMSG_DONE for a dump).
    fn request(
        &mut self,
        op: &str,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>, NetlinkError> {
        let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let mut nl = NetlinkMessage::from(msg);
        nl.header.flags = NLM_F_REQUEST | flags | if dump { 0 } else { NLM_F_ACK };
        nl.header.sequence_number = seq;
        nl.finalize();
        let mut out = vec![0u8; nl.buffer_len()];
        nl.serialize(&mut out);
        self.sock.send(&out, 0).map_err(NetlinkError::Socket)?;

        let mut answers = Vec::new();
        loop {
            let (buf, _) = self.sock.recv_from_full().map_err(NetlinkError::Socket)?;
            let mut off = 0;
            while off + 16 <= buf.len() {
                let len = u32::from_ne_bytes([buf[off], buf[off + 1], buf[off + 2], buf[off + 3]])
                    as usize;
                if len < 16 || off + len > buf.len() {
                    return Err(NetlinkError::Decode(format!(
                        "{op}: bad message length {len}"
                    )));
                }
                let parsed =
                    NetlinkMessage::<RouteNetlinkMessage>::deserialize(&buf[off..off + len])
                        .map_err(|e| NetlinkError::Decode(format!("{op}: {e}")))?;
                off += (len + 3) & !3;
                if parsed.header.sequence_number != seq {
                    continue;
                }
                match parsed.payload {
                    NetlinkPayload::Done(_) => return Ok(answers),
                    NetlinkPayload::Error(e) => {
                        if e.code.is_none() {
                            return Ok(answers);
                        }
                        return Err(NetlinkError::Kernel {
                            op: op.to_owned(),
                            source: e.to_io(),
                        });
                    }
                    NetlinkPayload::InnerMessage(m) => answers.push(m),
                    _ => {}
                }
            }
        }
    }

    /// Bring a link up and optionally set its transmit queue length.
    pub fn link_up(&mut self, index: u32, txqueuelen: Option<u32>) -> Result<(), NetlinkError> {
        let mut m = LinkMessage::default();
        m.header.index = index;
        m.header.flags = LinkFlags::Up;
        m.header.change_mask = LinkFlags::Up;
        if let Some(q) = txqueuelen {
            m.attributes.push(LinkAttribute::TxQueueLen(q));
        }
        self.request("set link up", RouteNetlinkMessage::SetLink(m), 0)
            .map(|_| ())
    }

    /// All routes of one family in every table.
    pub fn routes(&mut self, family: IpVersion) -> Result<Vec<RouteMessage>, NetlinkError> {
        let mut m = RouteMessage::default();
        m.header.address_family = address_family(family);
        let ans = self.request("dump routes", RouteNetlinkMessage::GetRoute(m), NLM_F_DUMP)?;
        Ok(ans
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewRoute(r) => Some(r),
                _ => None,
            })
            .collect())
    }

    /// The route the kernel would use to reach `dst` (like `ip route get`).
    pub fn route_get(&mut self, dst: IpAddr) -> Result<RouteLookup, NetlinkError> {
        let mut m = RouteMessage::default();
        m.header.address_family = family(dst);
        m.header.destination_prefix_length = full_len(dst);
        m.attributes
            .push(RouteAttribute::Destination(RouteAddress::from(dst)));
        let ans = self.request(
            &format!("route get {dst}"),
            RouteNetlinkMessage::GetRoute(m),
            0,
        )?;
        for a in ans {
            if let RouteNetlinkMessage::NewRoute(r) = a {
                let oif = r.attributes.iter().find_map(|a| match a {
                    RouteAttribute::Oif(i) => Some(*i),
                    _ => None,
                });
                let gateway = r.attributes.iter().find_map(|a| match a {
                    RouteAttribute::Gateway(g) => route_address(g),
                    _ => None,
                });
                return Ok(RouteLookup {
                    oif,
                    gateway,
                    kind: r.header.kind,
                });
            }
        }
        Err(NetlinkError::Decode(format!("route get {dst}: no answer")))
    }

    /// Add (exclusively) or delete a route.
    pub fn route_change(&mut self, change: Change, r: RouteMessage) -> Result<(), NetlinkError> {
        let op = format!("{} route {}", change.verb(), describe_route(&r));
        if change == Change::Add {
            self.request(
                &op,
                RouteNetlinkMessage::NewRoute(r),
                NLM_F_CREATE | NLM_F_EXCL,
            )
            .map(|_| ())
        } else {
            self.request(&op, RouteNetlinkMessage::DelRoute(r), 0)
                .map(|_| ())
        }
    }

    /// All policy rules of one family.
    pub fn rules(&mut self, family: IpVersion) -> Result<Vec<RuleMessage>, NetlinkError> {
        let mut m = RuleMessage::default();
        m.header.family = address_family(family);
        let ans = self.request("dump rules", RouteNetlinkMessage::GetRule(m), NLM_F_DUMP)?;
        Ok(ans
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewRule(r) => Some(r),
                _ => None,
            })
            .collect())
    }

    /// Add (exclusively) or delete a policy rule.
    pub fn rule_change(&mut self, change: Change, r: RuleMessage) -> Result<(), NetlinkError> {
        let op = format!("{} rule {:?}", change.verb(), r.attributes);
        if change == Change::Add {
            self.request(
                &op,
                RouteNetlinkMessage::NewRule(r),
                NLM_F_CREATE | NLM_F_EXCL,
            )
            .map(|_| ())
        } else {
            self.request(&op, RouteNetlinkMessage::DelRule(r), 0)
                .map(|_| ())
        }
    }

    /// Dump the neighbour table of one family (`flags` [`NeighbourFlags::Proxy`]: the proxy entries only).
    fn neighbours(
        &mut self,
        family: IpVersion,
        flags: NeighbourFlags,
    ) -> Result<Vec<NeighbourMessage>, NetlinkError> {
        let mut m = NeighbourMessage::default();
        m.header.family = address_family(family);
        m.header.flags = flags;
        let ans = self.request(
            "dump neighbours",
            RouteNetlinkMessage::GetNeighbour(m),
            NLM_F_DUMP,
        )?;
        Ok(ans
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewNeighbour(n) => Some(n),
                _ => None,
            })
            .collect())
    }

    /// All proxy neighbour entries of one family.
    pub fn proxy_neighbours(
        &mut self,
        family: IpVersion,
    ) -> Result<Vec<NeighbourMessage>, NetlinkError> {
        let mut all = self.neighbours(family, NeighbourFlags::Proxy)?;
        all.retain(|n| n.header.flags.contains(NeighbourFlags::Proxy));
        Ok(all)
    }

    /// The resolved neighbours of one family (state reachable, stale, delay, probe or permanent, with a
    /// link-layer address): `(ifindex, address, MAC)`.
    pub fn resolved_neighbours(
        &mut self,
        family: IpVersion,
    ) -> Result<Vec<(u32, IpAddr, [u8; 6])>, NetlinkError> {
        Ok(self
            .neighbours(family, NeighbourFlags::empty())?
            .iter()
            .filter_map(resolved_neighbour)
            .collect())
    }

    /// The link-layer (MAC) address of interface `index`, if it has a 6-byte one, and its MTU.
    pub fn link_address(&mut self, index: u32) -> Result<Option<([u8; 6], u32)>, NetlinkError> {
        let mut m = LinkMessage::default();
        m.header.index = index;
        let ans = self.request(
            &format!("get link {index}"),
            RouteNetlinkMessage::GetLink(m),
            0,
        )?;
        for a in ans {
            if let RouteNetlinkMessage::NewLink(l) = a {
                let mac = l.attributes.iter().find_map(|a| match a {
                    LinkAttribute::Address(mac) => <[u8; 6]>::try_from(mac.as_slice()).ok(),
                    _ => None,
                });
                let mtu = l.attributes.iter().find_map(|a| match a {
                    LinkAttribute::Mtu(m) => Some(*m),
                    _ => None,
                });
                return Ok(mac.zip(mtu));
            }
        }
        Ok(None)
    }

    /// Add or delete a proxy neighbour entry.
    pub fn neighbour_change(
        &mut self,
        change: Change,
        n: NeighbourMessage,
    ) -> Result<(), NetlinkError> {
        let op = format!(
            "{} proxy neighbour {:?} on ifindex {}",
            change.verb(),
            n.attributes,
            n.header.ifindex
        );
        if change == Change::Add {
            self.request(&op, RouteNetlinkMessage::NewNeighbour(n), NLM_F_CREATE)
                .map(|_| ())
        } else {
            self.request(&op, RouteNetlinkMessage::DelNeighbour(n), 0)
                .map(|_| ())
        }
    }
}

/// Whether a `*_change` call adds or deletes its object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Add,
    Delete,
}

impl Change {
    /// The word error messages use ("add", "delete").
    pub const fn verb(self) -> &'static str {
        match self {
            Self::Add => "add",
            Self::Delete => "delete",
        }
    }
}

/// What `route get` answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteLookup {
    /// Output interface.
    pub oif: Option<u32>,
    /// The next hop when it is not the destination itself.
    pub gateway: Option<IpAddr>,
    /// Route type (`Local` for the director's own addresses).
    pub kind: RouteType,
}

impl RouteLookup {
    /// A unicast route through an interface (not local, not unreachable, not blackhole).
    pub fn unicast_oif(&self) -> Option<u32> {
        match self.kind {
            RouteType::Unicast => self.oif,
            _ => None,
        }
    }
}

fn describe_route(r: &RouteMessage) -> String {
    let dst = route_destination(r)
        .map(|a| a.to_string())
        .unwrap_or_else(|| "default".into());
    format!(
        "{dst}/{} table {}",
        r.header.destination_prefix_length,
        route_table(r)
    )
}

/// The destination address of a route, if any.
pub fn route_destination(r: &RouteMessage) -> Option<IpAddr> {
    r.attributes.iter().find_map(|a| match a {
        RouteAttribute::Destination(RouteAddress::Inet(a)) => Some(IpAddr::V4(*a)),
        RouteAttribute::Destination(RouteAddress::Inet6(a)) => Some(IpAddr::V6(*a)),
        _ => None,
    })
}

/// The table of a route (the 32-bit attribute when present).
pub fn route_table(r: &RouteMessage) -> u32 {
    r.attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(u32::from(r.header.table))
}

/// A route `dst/len dev oif table table proto proto` (unicast, link scope).
pub fn device_route(
    dst: Option<IpAddr>,
    family: IpVersion,
    oif: u32,
    table: u32,
    proto: u8,
) -> RouteMessage {
    let mut r = RouteMessage::default();
    r.header = RouteHeader {
        address_family: address_family(family),
        destination_prefix_length: dst.map(full_len).unwrap_or(0),
        table: header_table(table),
        protocol: RouteProtocol::Other(proto),
        scope: RouteScope::Link,
        kind: RouteType::Unicast,
        ..RouteHeader::default()
    };
    if let Some(d) = dst {
        r.attributes
            .push(RouteAttribute::Destination(RouteAddress::from(d)));
    }
    r.attributes.push(RouteAttribute::Oif(oif));
    r.attributes.push(RouteAttribute::Table(table));
    r
}

/// A `blackhole default table T proto P metric M` route: the reply table's last resort. While the TUN lives its
/// default route wins; once the TUN is gone (rvsd killed), replies from the real servers are dropped here instead
/// of being forwarded to the clients un-NATed (whose RSTs would kill connections another director now serves).
pub fn blackhole_default(family: IpVersion, table: u32, proto: u8, metric: u32) -> RouteMessage {
    let mut r = RouteMessage::default();
    r.header = RouteHeader {
        address_family: address_family(family),
        destination_prefix_length: 0,
        table: header_table(table),
        protocol: RouteProtocol::Other(proto),
        scope: RouteScope::Universe,
        kind: RouteType::BlackHole,
        ..RouteHeader::default()
    };
    r.attributes.push(RouteAttribute::Table(table));
    r.attributes.push(RouteAttribute::Priority(metric));
    r
}

/// A rule `pref prio iif iifname lookup table proto proto`.
/// `from all fwmark MARK lookup TABLE` at priority `prio`, tagged with `proto`.
pub fn fwmark_rule(family: IpVersion, prio: u32, mark: u32, table: u32, proto: u8) -> RuleMessage {
    let mut r = RuleMessage::default();
    r.header.family = address_family(family);
    r.header.table = header_table(table);
    r.header.action = RuleAction::ToTable;
    r.attributes.push(RuleAttribute::Priority(prio));
    r.attributes.push(RuleAttribute::FwMark(mark));
    r.attributes.push(RuleAttribute::Table(table));
    r.attributes
        .push(RuleAttribute::Protocol(RouteProtocol::Other(proto)));
    r
}

pub fn iif_rule(family: IpVersion, prio: u32, iifname: &str, table: u32, proto: u8) -> RuleMessage {
    let mut r = RuleMessage::default();
    r.header.family = address_family(family);
    r.header.table = header_table(table);
    r.header.action = RuleAction::ToTable;
    r.attributes.push(RuleAttribute::Priority(prio));
    r.attributes
        .push(RuleAttribute::Iifname(iifname.to_owned()));
    r.attributes.push(RuleAttribute::Table(table));
    r.attributes
        .push(RuleAttribute::Protocol(RouteProtocol::Other(proto)));
    r
}

/// A proxy neighbour entry `proxy addr dev ifindex proto proto`.
pub fn proxy_neighbour(addr: IpAddr, ifindex: u32, proto: u8) -> NeighbourMessage {
    let mut n = NeighbourMessage::default();
    n.header.family = family(addr);
    n.header.ifindex = ifindex;
    n.header.state = NeighbourState::Permanent;
    n.header.flags = NeighbourFlags::Proxy;
    n.attributes
        .push(NeighbourAttribute::Destination(match addr {
            IpAddr::V4(a) => NeighbourAddress::Inet(a),
            IpAddr::V6(a) => NeighbourAddress::Inet6(a),
        }));
    n.attributes
        .push(NeighbourAttribute::Protocol(RouteProtocol::Other(proto)));
    n
}

/// Protocol tag of a route, as a number.
pub fn route_proto(r: &RouteMessage) -> u8 {
    u8::from(r.header.protocol)
}

/// Table, priority, iif name and protocol of a rule.
pub fn rule_fields(r: &RuleMessage) -> (u32, Option<u32>, Option<String>, Option<u8>) {
    let mut table = u32::from(r.header.table);
    let (mut prio, mut iif, mut proto) = (None, None, None);
    for a in &r.attributes {
        match a {
            RuleAttribute::Table(t) => table = *t,
            RuleAttribute::Priority(p) => prio = Some(*p),
            RuleAttribute::Iifname(n) => iif = Some(n.clone()),
            RuleAttribute::Protocol(p) => proto = Some(u8::from(*p)),
            _ => {}
        }
    }
    (table, prio, iif, proto)
}

fn route_address(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(a) => Some(IpAddr::V4(*a)),
        RouteAddress::Inet6(a) => Some(IpAddr::V6(*a)),
        _ => None,
    }
}

/// `(ifindex, address, MAC)` of a neighbour entry whose link-layer address can be used now.
fn resolved_neighbour(n: &NeighbourMessage) -> Option<(u32, IpAddr, [u8; 6])> {
    if n.header.flags.contains(NeighbourFlags::Proxy)
        || !matches!(
            n.header.state,
            NeighbourState::Reachable
                | NeighbourState::Stale
                | NeighbourState::Delay
                | NeighbourState::Probe
                | NeighbourState::Permanent
        )
    {
        return None;
    }
    let (addr, _) = neighbour_fields(n);
    let mac = n.attributes.iter().find_map(|a| match a {
        NeighbourAttribute::LinkLayerAddress(m) => <[u8; 6]>::try_from(m.as_slice()).ok(),
        _ => None,
    })?;
    Some((n.header.ifindex, addr?, mac))
}

/// Address and protocol tag of a proxy neighbour entry.
pub fn neighbour_fields(n: &NeighbourMessage) -> (Option<IpAddr>, Option<u8>) {
    let (mut addr, mut proto) = (None, None);
    for a in &n.attributes {
        match a {
            NeighbourAttribute::Destination(NeighbourAddress::Inet(a)) => {
                addr = Some(IpAddr::V4(*a))
            }
            NeighbourAttribute::Destination(NeighbourAddress::Inet6(a)) => {
                addr = Some(IpAddr::V6(*a))
            }
            NeighbourAttribute::Protocol(p) => proto = Some(u8::from(*p)),
            _ => {}
        }
    }
    (addr, proto)
}
