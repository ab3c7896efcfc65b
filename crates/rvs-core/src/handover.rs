//! The connection table and persistence templates as plain records, for handing them to the next process on a
//! planned restart or upgrade ([`crate::Director::export_state`], [`crate::Director::import_state`]).
//!
//! IPVS cannot do this: unloading the module drops every connection. A record names its real server by address
//! and port; the importing director binds it to that destination of the matching virtual service in its own
//! configuration (loaded first), so a connection keeps going to the same real server. Records whose service or
//! destination no longer exists are skipped and counted. Times travel as "idle for" and "timeout" durations, so
//! the two processes' clocks never meet; the caller adds the time the hand-over itself took to `idle_ms`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use crate::conn::{Conn, ConnAddr, ConnTable, F_INACTIVE};
use crate::dest::{Bound, Destination};
use crate::director::Director;
use crate::service::{Fwmark, ServiceKey};
use crate::table::ServiceTable;
use crate::template::{Template, TemplateKey};
use crate::time::Timestamp;

/// One tracked connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnRecord {
    /// IP protocol number.
    pub protocol: u8,
    pub caddr: IpAddr,
    pub cport: u16,
    pub vaddr: IpAddr,
    pub vport: u16,
    pub daddr: IpAddr,
    pub dport: u16,
    /// `TcpState as u8`.
    pub state: u8,
    /// The connection's flags (forwarding method bound at creation, active/inactive, no output seen).
    pub flags: u8,
    pub in_pkts: u8,
    /// Current timeout.
    pub timeout_ms: u32,
    /// Time since its last packet.
    pub idle_ms: u32,
    /// Index of its persistence template in [`TableState::templates`].
    pub template: Option<u32>,
}

/// One persistence template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateRecord {
    pub protocol: u8,
    /// The masked client address.
    pub caddr: IpAddr,
    pub vaddr: IpAddr,
    pub vport: u16,
    pub fwmark: u32,
    pub daddr: IpAddr,
    pub dport: u16,
    pub timeout_ms: u64,
    pub idle_ms: u64,
}

/// Everything handed over.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TableState {
    pub templates: Vec<TemplateRecord>,
    pub conns: Vec<ConnRecord>,
}

/// What an import did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ImportReport {
    pub conns: usize,
    pub templates: usize,
    /// Records whose virtual service or real server is not configured here (or already timed out).
    pub skipped: usize,
}

/// Why a state file was refused (the next rvsd then starts with an empty table and says why).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error("not an rvs state file")]
    BadMagic,
    #[error("state file version {0}, this rvsd reads version {STATE_VERSION}")]
    Version(u16),
    #[error("state file is {found} bytes, its header announces {expected}")]
    Length { expected: usize, found: usize },
    #[error("state file checksum mismatch (truncated or corrupted)")]
    Checksum,
    #[error("state file record {0} is invalid: {1}")]
    Record(usize, &'static str),
}

/// Version of the state file format written by [`TableState::encode`].
pub const STATE_VERSION: u16 = 1;
const MAGIC: &[u8; 8] = b"RVSSTATE";
const HEADER: usize = 8 + 2 + 8 + 4 + 4;
const TEMPLATE_LEN: usize = 1 + 1 + 16 + 16 + 2 + 4 + 16 + 2 + 8 + 8;
const CONN_LEN: usize = 1 + 1 + 16 + 2 + 16 + 2 + 16 + 2 + 1 + 1 + 1 + 4 + 4 + 4;

/// FNV-1a, 64 bits (detects truncation and bit rot; the file is not a security boundary: it is root's, 0600).
fn fnv1a(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn put_ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(a) => {
            out.extend_from_slice(&a.octets());
            out.extend_from_slice(&[0; 12]);
        }
        IpAddr::V6(a) => out.extend_from_slice(&a.octets()),
    }
}

/// A cursor over a record that was length-checked as a whole (reads cannot run past it).
struct Rd<'a>(&'a [u8]);

impl Rd<'_> {
    fn take<const N: usize>(&mut self) -> [u8; N] {
        let mut a = [0u8; N];
        let n = N.min(self.0.len());
        a[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        a
    }
    fn u8(&mut self) -> u8 {
        self.take::<1>()[0]
    }
    fn u16(&mut self) -> u16 {
        u16::from_be_bytes(self.take())
    }
    fn u32(&mut self) -> u32 {
        u32::from_be_bytes(self.take())
    }
    fn u64(&mut self) -> u64 {
        u64::from_be_bytes(self.take())
    }
    fn ip(&mut self, v6: bool) -> IpAddr {
        let b: [u8; 16] = self.take();
        if v6 {
            IpAddr::from(b)
        } else {
            IpAddr::from([b[0], b[1], b[2], b[3]])
        }
    }
}

fn family(v: u8, i: usize) -> Result<bool, StateError> {
    match v {
        4 => Ok(false),
        6 => Ok(true),
        _ => Err(StateError::Record(i, "address family is neither 4 nor 6")),
    }
}

impl TableState {
    /// The versioned, checksummed file format (big-endian, fixed-size records).
    pub fn encode(&self, written_unix_ms: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            HEADER + self.templates.len() * TEMPLATE_LEN + self.conns.len() * CONN_LEN + 8,
        );
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&STATE_VERSION.to_be_bytes());
        out.extend_from_slice(&written_unix_ms.to_be_bytes());
        out.extend_from_slice(&(self.templates.len() as u32).to_be_bytes());
        out.extend_from_slice(&(self.conns.len() as u32).to_be_bytes());
        for t in &self.templates {
            out.push(t.protocol);
            out.push(if t.vaddr.is_ipv6() { 6 } else { 4 });
            put_ip(&mut out, t.caddr);
            put_ip(&mut out, t.vaddr);
            out.extend_from_slice(&t.vport.to_be_bytes());
            out.extend_from_slice(&t.fwmark.to_be_bytes());
            put_ip(&mut out, t.daddr);
            out.extend_from_slice(&t.dport.to_be_bytes());
            out.extend_from_slice(&t.timeout_ms.to_be_bytes());
            out.extend_from_slice(&t.idle_ms.to_be_bytes());
        }
        for c in &self.conns {
            out.push(c.protocol);
            out.push(if c.vaddr.is_ipv6() { 6 } else { 4 });
            put_ip(&mut out, c.caddr);
            out.extend_from_slice(&c.cport.to_be_bytes());
            put_ip(&mut out, c.vaddr);
            out.extend_from_slice(&c.vport.to_be_bytes());
            put_ip(&mut out, c.daddr);
            out.extend_from_slice(&c.dport.to_be_bytes());
            out.extend_from_slice(&[c.state, c.flags, c.in_pkts]);
            out.extend_from_slice(&c.timeout_ms.to_be_bytes());
            out.extend_from_slice(&c.idle_ms.to_be_bytes());
            out.extend_from_slice(&c.template.unwrap_or(u32::MAX).to_be_bytes());
        }
        let sum = fnv1a(&out);
        out.extend_from_slice(&sum.to_be_bytes());
        out
    }

    /// Reads [`TableState::encode`]'s format; returns the state and when it was written. Every field is checked;
    /// nothing in the file can make this panic or allocate more than the file's own size.
    pub fn decode(data: &[u8]) -> Result<(TableState, u64), StateError> {
        if data.len() < HEADER + 8 || &data[..8] != MAGIC {
            return Err(StateError::BadMagic);
        }
        let mut h = Rd(&data[8..HEADER]);
        let version = h.u16();
        if version != STATE_VERSION {
            return Err(StateError::Version(version));
        }
        let written = h.u64();
        let nt = h.u32() as usize;
        let nc = h.u32() as usize;
        let expected = nt
            .checked_mul(TEMPLATE_LEN)
            .and_then(|t| nc.checked_mul(CONN_LEN).and_then(|c| c.checked_add(t)))
            .and_then(|b| b.checked_add(HEADER + 8))
            .unwrap_or(usize::MAX);
        if expected != data.len() {
            return Err(StateError::Length {
                expected,
                found: data.len(),
            });
        }
        let (body, sum) = data.split_at(data.len() - 8);
        let mut s = Rd(sum);
        if s.u64() != fnv1a(body) {
            return Err(StateError::Checksum);
        }
        let mut st = TableState {
            templates: Vec::with_capacity(nt),
            conns: Vec::with_capacity(nc),
        };
        let mut off = HEADER;
        for i in 0..nt {
            let mut r = Rd(&data[off..off + TEMPLATE_LEN]);
            off += TEMPLATE_LEN;
            let protocol = r.u8();
            let v6 = family(r.u8(), i)?;
            st.templates.push(TemplateRecord {
                protocol,
                caddr: r.ip(v6),
                vaddr: r.ip(v6),
                vport: r.u16(),
                fwmark: r.u32(),
                daddr: r.ip(v6),
                dport: r.u16(),
                timeout_ms: r.u64(),
                idle_ms: r.u64(),
            });
        }
        for i in 0..nc {
            let mut r = Rd(&data[off..off + CONN_LEN]);
            off += CONN_LEN;
            let protocol = r.u8();
            let v6 = family(r.u8(), nt + i)?;
            let c = ConnRecord {
                protocol,
                caddr: r.ip(v6),
                cport: r.u16(),
                vaddr: r.ip(v6),
                vport: r.u16(),
                daddr: r.ip(v6),
                dport: r.u16(),
                state: r.u8(),
                flags: r.u8(),
                in_pkts: r.u8(),
                timeout_ms: r.u32(),
                idle_ms: r.u32(),
                template: Some(r.u32()).filter(|&t| t != u32::MAX),
            };
            if usize::from(c.state) >= crate::tcp::TCP_STATES {
                return Err(StateError::Record(nt + i, "TCP state out of range"));
            }
            if c.template.is_some_and(|t| t as usize >= nt) {
                return Err(StateError::Record(nt + i, "template index out of range"));
            }
            st.conns.push(c);
        }
        Ok((st, written))
    }
}

/// The destination `daddr:dport` of the service a packet to `vaddr:vport` (or fwmark) belongs to.
fn find_dest(
    svcs: &ServiceTable,
    proto: u8,
    vaddr: IpAddr,
    vport: u16,
    fwmark: u32,
    daddr: IpAddr,
    dport: u16,
) -> Option<Arc<Destination>> {
    let svc = if fwmark != 0 {
        svcs.get(&ServiceKey::Fwmark {
            mark: Fwmark(fwmark),
            ipv6: vaddr.is_ipv6(),
        })?
    } else {
        svcs.lookup(proto, vaddr, vport)?
    };
    svc.dests
        .iter()
        .find(|d| d.addr() == daddr && (d.port() == dport || (d.port() == 0 && dport == vport)))
        .cloned()
}

impl Director {
    /// The connection table and persistence templates as records (control plane: walks every shard).
    pub fn export_state(&self, now: Timestamp) -> TableState {
        let mut st = TableState::default();
        let mut index: HashMap<*const Template, u32> = HashMap::new();
        self.templates.for_each(|t| {
            index.insert(std::ptr::from_ref(t), st.templates.len() as u32);
            st.templates.push(TemplateRecord {
                protocol: t.key.proto,
                caddr: t.key.caddr,
                vaddr: t.key.vaddr,
                vport: t.key.vport,
                fwmark: t.key.fwmark,
                daddr: t.dest.addr(),
                dport: t.dest.port(),
                timeout_ms: t.timeout_ms(),
                idle_ms: now.0.saturating_sub(t.last_used()),
            });
        });
        let n = now.0 as u32;
        export_table(&self.v4, n, &index, &mut st.conns);
        export_table(&self.v6, n, &index, &mut st.conns);
        st
    }

    /// Adds handed-over connections and templates to the table, bound to this director's destinations. Call after
    /// loading the configuration and before traffic flows.
    pub fn import_state(&self, now: Timestamp, st: &TableState) -> ImportReport {
        let svcs = self.services.load();
        let mut report = ImportReport::default();
        let mut tmpls: Vec<Option<Arc<Template>>> = Vec::with_capacity(st.templates.len());
        for t in &st.templates {
            let dest = find_dest(
                &svcs, t.protocol, t.vaddr, t.vport, t.fwmark, t.daddr, t.dport,
            );
            let live = t.idle_ms < t.timeout_ms;
            match dest {
                Some(d) if live => {
                    let key = TemplateKey {
                        proto: t.protocol,
                        caddr: t.caddr,
                        vaddr: t.vaddr,
                        vport: t.vport,
                        fwmark: t.fwmark,
                    };
                    let last = now.0.saturating_sub(t.idle_ms);
                    tmpls.push(Some(self.templates.restore(key, d, t.timeout_ms, last)));
                    report.templates += 1;
                }
                _ => {
                    tmpls.push(None);
                    report.skipped += 1;
                }
            }
        }
        for c in &st.conns {
            let ok = match (c.caddr, c.vaddr, c.daddr) {
                (IpAddr::V4(ca), IpAddr::V4(va), IpAddr::V4(da)) => {
                    import_conn(&self.v4, &svcs, now, c, ca, va, da, &tmpls)
                }
                (IpAddr::V6(ca), IpAddr::V6(va), IpAddr::V6(da)) => {
                    import_conn(&self.v6, &svcs, now, c, ca, va, da, &tmpls)
                }
                _ => false,
            };
            if ok {
                report.conns += 1;
            } else {
                report.skipped += 1;
            }
        }
        report
    }
}

fn export_table<A: ConnAddr>(
    tbl: &ConnTable<A>,
    now: u32,
    index: &HashMap<*const Template, u32>,
    out: &mut Vec<ConnRecord>,
) {
    for shard in tbl.shards() {
        shard.lock().for_each(|c| {
            out.push(ConnRecord {
                protocol: c.proto,
                caddr: c.caddr.to_ip(),
                cport: c.cport,
                vaddr: c.vaddr.to_ip(),
                vport: c.vport,
                daddr: c.daddr.to_ip(),
                dport: c.dport,
                state: c.state,
                flags: c.flags,
                in_pkts: c.in_pkts,
                timeout_ms: c.timeout,
                idle_ms: now.wrapping_sub(c.last_seen),
                template: c
                    .tmpl
                    .as_ref()
                    .and_then(|h| index.get(&Arc::as_ptr(h.template())).copied()),
            });
        });
    }
}

#[allow(clippy::too_many_arguments)]
fn import_conn<A: ConnAddr>(
    tbl: &ConnTable<A>,
    svcs: &ServiceTable,
    now: Timestamp,
    c: &ConnRecord,
    caddr: A,
    vaddr: A,
    daddr: A,
    tmpls: &[Option<Arc<Template>>],
) -> bool {
    if c.idle_ms >= c.timeout_ms {
        return false;
    }
    let fwmark = 0;
    let Some(dest) = find_dest(svcs, c.protocol, c.vaddr, c.vport, fwmark, c.daddr, c.dport) else {
        return false;
    };
    // A hold on its template (given back if the connection is not inserted).
    let tmpl = c
        .template
        .and_then(|i| tmpls.get(i as usize).cloned().flatten())
        .map(|t| t.hold());
    let si = tbl.shard_index(c.protocol, caddr, c.cport);
    let mut sh = tbl.shard(si).lock();
    if sh
        .find_in(c.protocol, caddr, c.cport, vaddr, c.vport)
        .is_some()
    {
        return false;
    }
    let last = (now.0 as u32).wrapping_sub(c.idle_ms);
    let mut conn = Conn::new(
        c.protocol,
        caddr,
        c.cport,
        vaddr,
        c.vport,
        daddr,
        c.dport,
        dest.clone(),
        tmpl,
        c.flags,
        last,
        c.timeout_ms,
    );
    conn.state = c.state;
    conn.in_pkts = c.in_pkts;
    if sh.insert(conn).is_err() {
        return false;
    }
    dest.bind(Bound::conn(c.flags & F_INACTIVE == 0));
    true
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use etherparse::PacketBuilder;

    use crate::*;

    const VIP: [u8; 4] = [198, 51, 100, 250];
    const RIPS: [[u8; 4]; 3] = [[203, 0, 113, 1], [203, 0, 113, 2], [203, 0, 113, 3]];

    fn tcp(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, syn: bool, ack: bool) -> Vec<u8> {
        let mut b = PacketBuilder::ipv4(src, dst, 64).tcp(sport, dport, 1, 4096);
        if syn {
            b = b.syn();
        }
        if ack {
            b = b.ack(1);
        }
        let mut v = Vec::new();
        b.write(&mut v, b"").expect("packet");
        v
    }

    fn director(persist: bool, sched: &str) -> Director {
        let d = Director::default();
        let k = ServiceKey::Addr {
            protocol: Protocol::Tcp,
            addr: Ipv4Addr::from(VIP).into(),
            port: 80,
        };
        let mut spec = ServiceSpec::new(k, sched);
        if persist {
            spec.persistence = Some(Persistence {
                timeout_s: 300,
                netmask: Ipv4Addr::BROADCAST.into(),
            });
        }
        let mut ops = vec![ConfigOp::AddService(spec)];
        for r in RIPS {
            ops.push(ConfigOp::AddDest(
                k,
                DestSpec::masq(Ipv4Addr::from(r).into(), 8080, Weight(1)),
            ));
        }
        d.apply_batch(ops).expect("config");
        d
    }

    #[test]
    fn a_handed_over_table_keeps_every_connection_on_its_real_server() {
        for persist in [false, true] {
            let old = director(persist, "rr");
            let mut placed = Vec::new();
            for k in 0..300u16 {
                let c = [198, 51, 100, (k % 50) as u8 + 1];
                let mut p = tcp(c, 1000 + k, VIP, 80, true, false);
                assert_eq!(
                    old.process(Timestamp(1000), u64::from(k), &mut p),
                    Verdict::Forward(Direction::In)
                );
                let rs = [p[16], p[17], p[18], p[19]];
                let mut r = tcp(rs, 8080, c, 1000 + k, true, true);
                old.process(Timestamp(1001), 0, &mut r);
                let mut a = tcp(c, 1000 + k, VIP, 80, false, true);
                old.process(Timestamp(1002), 0, &mut a);
                placed.push((c, 1000 + k, rs));
            }
            let st = old.export_state(Timestamp(5000));
            assert_eq!(st.conns.len(), 300);
            assert_eq!(st.templates.len(), if persist { 50 } else { 0 });
            // The next process: same configuration, its own clock (starting near 0), a scheduler in a different
            // position (wlc) so a rescheduled connection would show.
            let new = director(persist, "wlc");
            let rep = new.import_state(Timestamp(10), &st);
            assert_eq!(
                (rep.conns, rep.templates, rep.skipped),
                (300, st.templates.len(), 0)
            );
            for (c, port, rs) in &placed {
                let mut p = tcp(*c, *port, VIP, 80, false, true);
                assert_eq!(
                    new.process(Timestamp(20), 0, &mut p),
                    Verdict::Forward(Direction::In)
                );
                assert_eq!([p[16], p[17], p[18], p[19]], *rs);
            }
            let s = new.services();
            let active: u32 = s[0].dests.iter().map(|d| d.active_conns).sum();
            assert_eq!(active, 300, "ESTABLISHED counted active again");
            if persist {
                let pc: u32 = s[0].dests.iter().map(|d| d.persistent_conns).sum();
                assert_eq!(pc, 50);
                // A new connection from a known client follows its template.
                let (c, _, rs) = placed[7];
                let mut p = tcp(c, 60000, VIP, 80, true, false);
                new.process(Timestamp(30), 99, &mut p);
                assert_eq!([p[16], p[17], p[18], p[19]], rs);
            }
            // Deadlines carried over: ESTABLISHED (900 s) idle 3 s before the hand-over.
            let left = new
                .connections(Timestamp(20))
                .iter()
                .filter(|c| !c.template)
                .map(|c| c.expires_in_ms)
                .max();
            assert!(
                left.is_some_and(|l| l > 890_000 && l <= 900_000),
                "{left:?}"
            );
        }
    }

    #[test]
    fn the_state_file_round_trips_and_refuses_damage() {
        use crate::handover::{StateError, TableState};
        let old = director(true, "rr");
        for k in 0..20u16 {
            let mut p = tcp([198, 51, 100, k as u8 + 1], 1000 + k, VIP, 80, true, false);
            old.process(Timestamp(0), u64::from(k), &mut p);
        }
        let st = old.export_state(Timestamp(100));
        let bytes = st.encode(1_700_000_000_000);
        let (back, written) = TableState::decode(&bytes).expect("decodes");
        assert_eq!((back, written), (st.clone(), 1_700_000_000_000));
        assert!(matches!(
            TableState::decode(&bytes[..bytes.len() - 1]),
            Err(StateError::Length { .. })
        ));
        let mut flipped = bytes.clone();
        flipped[40] ^= 1;
        assert_eq!(TableState::decode(&flipped), Err(StateError::Checksum));
        let mut v2 = bytes.clone();
        v2[9] = 2;
        assert_eq!(TableState::decode(&v2), Err(StateError::Version(2)));
        assert_eq!(TableState::decode(b"garbage"), Err(StateError::BadMagic));
        // A header announcing billions of records does not allocate them.
        let mut huge = bytes[..26].to_vec();
        huge[18..26].copy_from_slice(&[0xff; 8]);
        huge.extend_from_slice(&[0; 8]);
        assert!(matches!(
            TableState::decode(&huge),
            Err(StateError::Length { .. })
        ));
    }

    #[test]
    fn records_for_missing_servers_or_timed_out_are_skipped() {
        let old = director(false, "rr");
        let c = [198, 51, 100, 9];
        let mut p = tcp(c, 1000, VIP, 80, true, false);
        old.process(Timestamp(0), 0, &mut p);
        let rs = [p[16], p[17], p[18], p[19]];
        let mut st = old.export_state(Timestamp(100));
        assert_eq!(st.conns.len(), 1);
        // The next configuration lacks that real server.
        let new = director(false, "rr");
        let k = ServiceKey::Addr {
            protocol: Protocol::Tcp,
            addr: Ipv4Addr::from(VIP).into(),
            port: 80,
        };
        new.apply(ConfigOp::DeleteDest(k, Ipv4Addr::from(rs).into(), 8080))
            .expect("delete");
        assert_eq!(new.import_state(Timestamp(0), &st).skipped, 1);
        // Timed out while handed over (SYN_RECV: 60 s).
        st.conns[0].idle_ms = 61_000;
        let again = director(false, "rr");
        let r = again.import_state(Timestamp(0), &st);
        assert_eq!((r.conns, r.skipped), (0, 1));
        assert_eq!(again.conn_count(), 0);
    }
}
