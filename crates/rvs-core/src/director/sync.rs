//! Connection sync for the IPVS sync daemon (rvs-sync): what a master exports and how a backup
//! installs what it receives (ip_vs_proc_conn), kept apart from the packet path.
//!
//! - Export: a control-plane walk of both connection tables and the templates, one shard lock
//!   at a time, yielding each entry as the kernel's sync entry with its deadline.
//! - Install: only for a configured virtual service and one of its real servers (IPVS would
//!   create an unbound connection); a known connection takes the synced state, timeout and
//!   active/inactive flag (keeping the real server's counters exact); one synced to another real
//!   server replaces it unless the message marks it inactive (a stale closing message);
//!   templates are installed unreferenced (synced connections are not linked to templates), so
//!   a backup that takes over sends a client's new connections to the same real server.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use rvs_sync::{Installed, Skipped, SyncConn, flags};

use super::{Director, MAX_TIMEOUT_S, Xmit, now32, release};
use crate::conn::{Conn, ConnAddr, ConnTable, F_INACTIVE, F_NOOUTPUT, F_ROUTE, F_TUNNEL};
use crate::dest::{Bound, Destination};
use crate::service::{ForwardMethod, Fwmark};
use crate::tcp::TcpState;
use crate::template::{TemplateKey, TemplateTable};
use crate::time::Timestamp;

const TCP: u8 = 6;

/// IPVS's timeout for a synced template that carries none (version 0): 3 minutes.
const DEFAULT_TEMPLATE_TIMEOUT_MS: u64 = 180_000;

/// One exported entry: the sync message entry and when it expires on the caller's clock.
#[derive(Debug, Clone, Copy)]
pub struct SyncExport {
    pub conn: SyncConn<'static>,
    /// Deadline (last use + timeout), ms on the clock of [`Timestamp`].
    pub deadline_ms: u64,
    /// A connection under a persistence template (`sync_persist_mode` skips those).
    pub in_persistence: bool,
}

/// IPVS's forwarding-method bits of a destination's method.
fn method_flags(method: ForwardMethod) -> u32 {
    match method {
        ForwardMethod::Masq => flags::MASQ,
        ForwardMethod::Route => flags::DROUTE,
        ForwardMethod::Tunnel(_) => flags::TUNNEL,
        ForwardMethod::Local => flags::LOCALNODE,
        ForwardMethod::Bypass => flags::BYPASS,
    }
}

/// IPVS's forwarding-method bits of a connection (bound when it was created).
fn conn_method_flags(cflags: u8) -> u32 {
    if cflags & F_ROUTE != 0 {
        flags::DROUTE
    } else if cflags & F_TUNNEL != 0 {
        flags::TUNNEL
    } else {
        flags::MASQ
    }
}

impl Director {
    /// Every connection and persistence template as sync entries (control plane: walks the
    /// tables, one shard lock at a time).
    pub fn sync_export(&self, now: Timestamp, mut f: impl FnMut(&SyncExport)) {
        export_table(&self.v4, now, &mut f);
        export_table(&self.v6, now, &mut f);
        self.templates.for_each(|t| {
            let timeout_ms = TemplateTable::timeout_of(t);
            let e = SyncExport {
                conn: SyncConn {
                    protocol: t.key.proto,
                    flags: flags::TEMPLATE | method_flags(t.dest.method()),
                    state: 0,
                    caddr: t.key.caddr,
                    cport: 0,
                    vaddr: t.key.vaddr,
                    vport: t.key.vport,
                    daddr: t.dest.addr(),
                    dport: t.dest.port(),
                    fwmark: t.key.fwmark,
                    timeout_s: u32::try_from(timeout_ms / 1000).unwrap_or(u32::MAX),
                    seq: None,
                    pe_data: None,
                    pe_name: None,
                },
                deadline_ms: t.deadline(),
                in_persistence: false,
            };
            f(&e);
        });
    }

    /// Installs or updates one entry received by a backup (flags as [`rvs_sync::Receiver`]
    /// hands them over). Nothing changes unless a configured service and real server match.
    pub fn sync_install(&self, now: Timestamp, c: &SyncConn<'_>) -> Result<Installed, Skipped> {
        let table = self.services.load();
        let svc = if c.fwmark != 0 {
            table.by_mark.get(&(Fwmark(c.fwmark), c.vaddr.is_ipv6()))
        } else {
            table.lookup(c.protocol, c.vaddr, c.vport)
        }
        .ok_or(Skipped::NoService)?;
        if svc.shared.deleted.load(Ordering::Relaxed) {
            return Err(Skipped::NoService);
        }
        let dest = svc
            .dests
            .iter()
            .find(|d| d.addr() == c.daddr && (d.port() == c.dport || d.port() == 0))
            .ok_or(Skipped::NoDestination)?
            .clone();
        let timeout_ms = u64::from(c.timeout_s.min(MAX_TIMEOUT_S)) * 1000;
        if c.flags & flags::TEMPLATE != 0 {
            let timeout_ms = if timeout_ms == 0 {
                if svc.persist_ms > 0 {
                    svc.persist_ms
                } else {
                    DEFAULT_TEMPLATE_TIMEOUT_MS
                }
            } else {
                timeout_ms
            };
            let key = TemplateKey {
                proto: c.protocol,
                caddr: c.caddr,
                vaddr: c.vaddr,
                vport: c.vport,
                fwmark: c.fwmark,
            };
            let fresh = self.templates.install_synced(key, &dest, timeout_ms, now.0);
            return Ok(if fresh {
                Installed::Created
            } else {
                Installed::Updated
            });
        }
        let timeout = if timeout_ms > 0 {
            timeout_ms as u32
        } else if c.protocol == TCP {
            self.tcp_timeout(TcpState::from_u8(c.state as u8))
        } else {
            self.udp_timeout.load(Ordering::Relaxed)
        };
        match (c.caddr, c.vaddr, c.daddr) {
            (IpAddr::V4(_), IpAddr::V4(_), IpAddr::V4(_)) => {
                install_conn(&self.v4, now, c, dest, timeout)
            }
            (IpAddr::V6(_), IpAddr::V6(_), IpAddr::V6(_)) => {
                install_conn(&self.v6, now, c, dest, timeout)
            }
            _ => Err(Skipped::Unsupported),
        }
    }
}

fn export_table<A: ConnAddr>(tbl: &ConnTable<A>, now: Timestamp, f: &mut impl FnMut(&SyncExport)) {
    let n = now32(now);
    let mut batch = Vec::new();
    for shard in tbl.shards() {
        batch.clear();
        shard.lock().for_each(|c| {
            let left = c.deadline().wrapping_sub(n) as i32;
            let mut fl = conn_method_flags(c.flags);
            if !c.is_active() {
                fl |= flags::INACTIVE;
            }
            if c.flags & F_NOOUTPUT != 0 {
                fl |= flags::NOOUTPUT;
            }
            batch.push(SyncExport {
                conn: SyncConn {
                    protocol: c.proto,
                    flags: fl,
                    state: u16::from(c.state),
                    caddr: c.caddr.to_ip(),
                    cport: c.cport,
                    vaddr: c.vaddr.to_ip(),
                    vport: c.vport,
                    daddr: c.daddr.to_ip(),
                    dport: c.dport,
                    fwmark: 0,
                    timeout_s: c.timeout / 1000,
                    seq: None,
                    pe_data: None,
                    pe_name: None,
                },
                deadline_ms: now.0.saturating_add_signed(i64::from(left)),
                in_persistence: c.tmpl.is_some(),
            });
        });
        for e in &batch {
            f(e);
        }
    }
}

fn install_conn<A: ConnAddr>(
    tbl: &ConnTable<A>,
    now: Timestamp,
    c: &SyncConn<'_>,
    dest: Arc<Destination>,
    timeout: u32,
) -> Result<Installed, Skipped> {
    let (Some(caddr), Some(vaddr), Some(daddr)) = (
        A::from_ip(c.caddr),
        A::from_ip(c.vaddr),
        A::from_ip(c.daddr),
    ) else {
        return Err(Skipped::Unsupported);
    };
    let n = now32(now);
    let proto = c.protocol;
    // UDP connections are always inactive in IPVS's counters.
    let active =
        proto == TCP && c.flags & flags::INACTIVE == 0 && c.state == TcpState::Established as u16;
    let si = tbl.shard_index(proto, caddr, c.cport);
    let mut sh = tbl.shard(si).lock();
    let mut replaced = false;
    if let Some(i) = sh.find_in(proto, caddr, c.cport, vaddr, c.vport) {
        let same_rs = sh
            .get(i)
            .is_some_and(|k| k.daddr == daddr && k.dport == c.dport);
        if same_rs {
            if let Some(k) = sh.get_mut(i) {
                if k.is_active() != active {
                    k.dest.set_active(active);
                    if active {
                        k.flags &= !F_INACTIVE;
                    } else {
                        k.flags |= F_INACTIVE;
                    }
                }
                k.state = c.state as u8;
                k.timeout = timeout;
                k.last_seen = n;
            }
            sh.rearm_if_earlier(i);
            return Ok(Installed::Updated);
        }
        if c.flags & flags::INACTIVE != 0 {
            return Err(Skipped::Stale);
        }
        if let Some(old) = sh.remove(i) {
            release(old);
        }
        replaced = true;
    }
    // The method comes from the destination, not the message (ip_vs_bind_dest on a synced
    // connection); the connection starts inactive unless synced active.
    let mut cflags = Xmit::conn_flags(dest.method());
    if active {
        cflags &= !F_INACTIVE;
    }
    let mut conn = Conn::new(
        proto,
        caddr,
        c.cport,
        vaddr,
        c.vport,
        daddr,
        c.dport,
        dest.clone(),
        None,
        cflags,
        n,
        timeout,
    );
    conn.state = c.state as u8;
    match sh.insert(conn) {
        Ok(_) => {
            dest.bind(Bound::conn(active));
            Ok(if replaced {
                Installed::Replaced
            } else {
                Installed::Created
            })
        }
        Err(_) => Err(Skipped::TableFull),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use crate::Weight;
    use std::net::Ipv4Addr;

    use super::*;
    use crate::config::ConfigOp;
    use crate::service::{DestSpec, Persistence, Protocol, ServiceKey, ServiceSpec};
    use crate::verdict::Verdict;

    fn ip(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(a, b, c, d))
    }
    const VIP: [u8; 4] = [198, 51, 100, 250];

    fn director(persist: bool) -> Director {
        let d = Director::default();
        let key = ServiceKey::Addr {
            protocol: Protocol::Tcp,
            addr: IpAddr::from(VIP),
            port: 80,
        };
        let mut spec = ServiceSpec::new(key, "rr");
        if persist {
            spec.persistence = Some(Persistence {
                timeout_s: 300,
                netmask: ip(255, 255, 255, 255),
            });
        }
        d.apply(ConfigOp::AddService(spec)).unwrap();
        for h in [10, 11] {
            d.apply(ConfigOp::AddDest(
                key,
                DestSpec::masq(ip(203, 0, 113, h), 8080, Weight(1)),
            ))
            .unwrap();
        }
        d
    }

    /// A TCP packet client:cport -> VIP:80 with `flags` (checksums not needed by the core).
    fn tcp_in(cport: u16, flags: u8) -> Vec<u8> {
        let mut p = vec![
            0x45, 0, 0, 40, 0, 1, 0x40, 0, 64, 6, 0, 0, 198, 51, 100, 7, VIP[0], VIP[1], VIP[2],
            VIP[3],
        ];
        p.extend_from_slice(&cport.to_be_bytes());
        p.extend_from_slice(&[
            0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, flags, 0xfa, 0xf0, 0, 0, 0, 0,
        ]);
        p
    }

    fn exported(d: &Director, now: u64) -> Vec<SyncExport> {
        let mut v = Vec::new();
        d.sync_export(Timestamp(now), |e| v.push(*e));
        v
    }

    #[test]
    fn export_then_install_on_a_backup_keeps_the_real_server() {
        let master = director(true);
        let mut p = tcp_in(40000, 0x02);
        assert!(matches!(
            master.process(Timestamp(1000), 7, &mut p),
            Verdict::Forward(_)
        ));
        let mut p = tcp_in(40000, 0x10);
        master.process(Timestamp(1100), 7, &mut p);
        let out = exported(&master, 1200);
        assert_eq!(out.len(), 2, "one connection, one template");
        let conn = out.iter().find(|e| !e.conn.is_template()).unwrap();
        assert_eq!(conn.conn.state, TcpState::Established as u16);
        assert_eq!(conn.conn.flags & flags::INACTIVE, 0);
        assert_eq!(conn.conn.timeout_s, 900);
        assert_eq!(conn.deadline_ms, 1100 + 900_000);
        assert!(conn.in_persistence);
        let rs = conn.conn.daddr;

        let backup = director(true);
        for e in &out {
            let mut c = e.conn;
            c.flags = (c.flags & flags::BACKUP_MASK) | flags::SYNC;
            assert_eq!(
                backup.sync_install(Timestamp(5), &c),
                Ok(Installed::Created)
            );
        }
        assert_eq!(backup.conn_count(), 1);
        assert_eq!(backup.template_count(), 1);
        let svc = backup.services().remove(0);
        let d = svc.dests.iter().find(|d| d.spec.addr == rs).unwrap();
        assert_eq!((d.active_conns, d.persistent_conns), (1, 1));
        // The backup forwards the synced connection's next packet to the same real server.
        let mut p = tcp_in(40000, 0x10);
        assert!(matches!(
            backup.process(Timestamp(10), 1, &mut p),
            Verdict::Forward(_)
        ));
        assert_eq!(
            &p[16..20],
            &rs.to_string().parse::<Ipv4Addr>().unwrap().octets()
        );
        // A new connection from the same client follows the synced template.
        let mut p = tcp_in(40001, 0x02);
        backup.process(Timestamp(20), 1, &mut p);
        assert_eq!(
            &p[16..20],
            &rs.to_string().parse::<Ipv4Addr>().unwrap().octets()
        );
        // Re-install: an update, counters unchanged; marked inactive: counters move.
        let mut c = conn.conn;
        c.flags = flags::SYNC;
        assert_eq!(
            backup.sync_install(Timestamp(30), &c),
            Ok(Installed::Updated)
        );
        c.flags = flags::SYNC | flags::INACTIVE;
        c.state = TcpState::FinWait as u16;
        c.timeout_s = 120;
        assert_eq!(
            backup.sync_install(Timestamp(30), &c),
            Ok(Installed::Updated)
        );
        let svc = backup.services().remove(0);
        let d = svc.dests.iter().find(|d| d.spec.addr == rs).unwrap();
        assert_eq!((d.active_conns, d.inactive_conns), (0, 2));
        // The synced timeout holds: gone 120 s later.
        // (the backup's own SYN_RECV connection from t=20 is gone after 60 s).
        backup.expire(Timestamp(30 + 119_000));
        assert_eq!(backup.conn_count(), 1);
        backup.expire(Timestamp(30 + 120_000));
        assert_eq!(backup.conn_count(), 0);
    }

    #[test]
    fn install_refuses_unknown_service_and_real_server_and_stale_updates() {
        let d = director(false);
        let mut c = SyncConn {
            protocol: TCP,
            flags: flags::SYNC,
            state: 1,
            caddr: ip(198, 51, 100, 7),
            cport: 1,
            vaddr: IpAddr::from(VIP),
            vport: 443,
            daddr: ip(203, 0, 113, 10),
            dport: 8080,
            fwmark: 0,
            timeout_s: 900,
            seq: None,
            pe_data: None,
            pe_name: None,
        };
        assert_eq!(d.sync_install(Timestamp(0), &c), Err(Skipped::NoService));
        c.vport = 80;
        c.daddr = ip(203, 0, 113, 99);
        assert_eq!(
            d.sync_install(Timestamp(0), &c),
            Err(Skipped::NoDestination)
        );
        assert_eq!(d.conn_count(), 0);
        c.daddr = ip(203, 0, 113, 10);
        assert_eq!(d.sync_install(Timestamp(0), &c), Ok(Installed::Created));
        // Same connection, other real server: a closing (inactive) message is stale...
        c.daddr = ip(203, 0, 113, 11);
        c.flags |= flags::INACTIVE;
        assert_eq!(d.sync_install(Timestamp(0), &c), Err(Skipped::Stale));
        // ...an active one replaces it.
        c.flags = flags::SYNC;
        assert_eq!(d.sync_install(Timestamp(0), &c), Ok(Installed::Replaced));
        assert_eq!(d.conn_count(), 1);
        let s = d.services().remove(0);
        let counts: Vec<_> = s.dests.iter().map(|x| x.active_conns).collect();
        assert_eq!(counts, vec![0, 1]);
        // Mixed families.
        c.daddr = "2001:db8::1".parse().unwrap();
        assert!(d.sync_install(Timestamp(0), &c).is_err());
    }
}
