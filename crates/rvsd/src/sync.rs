//! The connection sync daemons (`--start-daemon master|backup`): IPVS's sync threads over real
//! UDP multicast sockets, the protocol and decisions in rvs-sync, the table in rvs-core.
//!
//! - Master: every [`WALK_INTERVAL`] a thread walks the director's connections and templates,
//!   an [`Exporter`] picks what the kernel's rules would send, a [`Packer`] fills messages of
//!   `sync_maxlen` bytes, sent to the group from a socket bound to the interface (multicast loop
//!   off, TTL `mcast_ttl`).
//! - Backup: a thread receives on the group and port, bound to the interface; each datagram goes
//!   through a [`Receiver`] (syncid filter, validation) into [`Director::sync_install`]. Bad or
//!   foreign datagrams are counted and dropped, logged at most once a second.
//! - Both at once, as IPVS allows; starting a running one answers "Daemon has already run",
//!   stopping a stopped one "No daemon is running". `-L --daemon` lists the effective
//!   parameters, defaults filled as the kernel fills them (group 224.0.0.81, port 8848, TTL 1,
//!   `sync_maxlen` from the MTU).

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rvs_api::{ApiError, DaemonConfig, DaemonState, ErrorCode};
use rvs_core::Director;
use rvs_sync::{
    ExportPolicy, Exporter, Installed, Packer, ReceiveCounters, Receiver, Skipped, SyncConn,
    SyncTarget,
};

use crate::dataplane::now;

/// How often the master walks the connection table.
pub const WALK_INTERVAL: Duration = Duration::from_millis(500);
/// How long a backup waits in `recv` before it checks for a stop.
const RECV_POLL: Duration = Duration::from_millis(200);
/// IPv4 + UDP header bytes.
const HLEN_V4: u16 = 20 + 8;
/// IPv6 + UDP header bytes.
const HLEN_V6: u16 = 40 + 8;

/// Counters of one sync daemon.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SyncStats {
    /// Master: messages and entries sent, send errors.
    pub sent_messages: u64,
    pub sent_conns: u64,
    pub send_errors: u64,
    /// Backup: what the receiver counted.
    pub received: ReceiveCounters,
}

#[derive(Debug)]
struct Running {
    cfg: DaemonConfig,
    stop: Arc<AtomicBool>,
    stats: Arc<Mutex<SyncStats>>,
    thread: Option<JoinHandle<()>>,
}

impl Running {
    fn halt(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Credits what the XDP fast path forwarded to the core (counters, last-seen): run by the master before each walk.
pub type Credit = Arc<dyn Fn(&Director) + Send + Sync>;

/// The fast path's [`Credit`], once it is attached.
#[derive(Default)]
struct CreditHook(OnceLock<Credit>);

impl std::fmt::Debug for CreditHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "CreditHook(set)"
        } else {
            "CreditHook(none)"
        })
    }
}

/// The master and backup daemons of one rvsd.
#[derive(Debug, Default)]
pub struct SyncDaemons {
    master: Mutex<Option<Running>>,
    backup: Mutex<Option<Running>>,
    credit: Arc<CreditHook>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn no_device() -> ApiError {
    ApiError::with_message(ErrorCode::InvalidArgument, "No such device")
}

/// The interface's index and first IPv4 address (the kernel binds the master's socket to it).
fn interface(ifn: &str) -> Result<(u32, Option<Ipv4Addr>), ApiError> {
    let index = nix::net::if_::if_nametoindex(ifn).map_err(|_| no_device())?;
    let addr = nix::ifaddrs::getifaddrs().ok().and_then(|mut it| {
        it.find_map(|a| {
            (a.interface_name == ifn)
                .then(|| a.address.and_then(|s| s.as_sockaddr_in().map(|s| s.ip())))
                .flatten()
        })
    });
    Ok((index, addr))
}

/// The kernel's defaults (start_sync_thread): group, port, TTL, and `sync_maxlen` clamped.
pub fn effective(mut cfg: DaemonConfig) -> DaemonConfig {
    let group = *cfg
        .mcast_group
        .get_or_insert(IpAddr::V4(rvs_sync::DEFAULT_GROUP));
    if cfg.mcast_port == 0 {
        cfg.mcast_port = rvs_sync::DEFAULT_PORT;
    }
    if cfg.mcast_ttl == 0 {
        cfg.mcast_ttl = 1;
    }
    let hlen = if group.is_ipv6() { HLEN_V6 } else { HLEN_V4 };
    // The kernel takes the backup's MTU (at least 1500); rvs assumes 1500 and always receives
    // into a 64 KiB buffer, so a larger master's messages are not cut.
    let mtu: u16 = 1500;
    let min = match cfg.state {
        DaemonState::Backup => 1024,
        DaemonState::Master => 1,
    };
    cfg.sync_maxlen = if cfg.sync_maxlen == 0 {
        mtu - hlen
    } else {
        cfg.sync_maxlen.clamp(min, u16::MAX - hlen)
    };
    cfg
}

impl SyncDaemons {
    /// The fast path's credit, run before every master walk (set once, when the fast path attaches).
    pub fn set_credit(&self, credit: Credit) {
        let _ = self.credit.0.set(credit);
    }

    /// `--start-daemon`.
    pub fn start(&self, director: &Arc<Director>, cfg: DaemonConfig) -> Result<(), ApiError> {
        let slot = match cfg.state {
            DaemonState::Master => &self.master,
            DaemonState::Backup => &self.backup,
        };
        let mut slot = lock(slot);
        if slot.is_some() {
            return Err(ApiError::new(ErrorCode::DaemonRunning));
        }
        let cfg = effective(cfg);
        let (ifindex, ifaddr) = interface(&cfg.mcast_ifn)?;
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(Mutex::new(SyncStats::default()));
        let io = |e: std::io::Error| {
            ApiError::with_message(ErrorCode::Internal, format!("sync daemon socket: {e}"))
        };
        let (d, st, sp, c) = (director.clone(), stats.clone(), stop.clone(), cfg.clone());
        let thread = match cfg.state {
            DaemonState::Master => {
                let sock = master_socket(&cfg, ifaddr).map_err(io)?;
                let credit = self.credit.clone();
                std::thread::Builder::new()
                    .name("rvs-sync-m".into())
                    .spawn(move || master_loop(&d, &c, &sock, &sp, &st, &credit))
            }
            DaemonState::Backup => {
                let sock = backup_socket(&cfg, ifindex, ifaddr).map_err(io)?;
                std::thread::Builder::new()
                    .name("rvs-sync-b".into())
                    .spawn(move || backup_loop(&d, &c, &sock, &sp, &st))
            }
        }
        .map_err(io)?;
        tracing::info!(
            state = cfg.state.name(),
            mcast_ifn = %cfg.mcast_ifn,
            syncid = cfg.syncid,
            group = ?cfg.mcast_group,
            port = cfg.mcast_port,
            maxlen = cfg.sync_maxlen,
            "sync daemon started"
        );
        *slot = Some(Running {
            cfg,
            stop,
            stats,
            thread: Some(thread),
        });
        Ok(())
    }

    /// `--stop-daemon`.
    pub fn stop(&self, state: DaemonState) -> Result<(), ApiError> {
        let slot = match state {
            DaemonState::Master => &self.master,
            DaemonState::Backup => &self.backup,
        };
        let r = lock(slot)
            .take()
            .ok_or_else(|| ApiError::new(ErrorCode::NoDaemon))?;
        let stats = *lock(&r.stats);
        r.halt();
        tracing::info!(state = state.name(), ?stats, "sync daemon stopped");
        Ok(())
    }

    /// `-L --daemon`: master first, then backup (as the kernel lists them).
    pub fn list(&self) -> Vec<DaemonConfig> {
        [&self.master, &self.backup]
            .iter()
            .filter_map(|m| lock(m).as_ref().map(|r| r.cfg.clone()))
            .collect()
    }

    /// Counters of the running daemons (master first).
    pub fn status(&self) -> Vec<rvs_api::SyncStatus> {
        let mut out = Vec::new();
        for (state, m) in [
            (DaemonState::Master, &self.master),
            (DaemonState::Backup, &self.backup),
        ] {
            let Some(st) = lock(m).as_ref().map(|r| *lock(&r.stats)) else {
                continue;
            };
            let r = st.received;
            let counters: Vec<(&str, u64)> = match state {
                DaemonState::Master => vec![
                    ("sent_messages", st.sent_messages),
                    ("sent_conns", st.sent_conns),
                    ("send_errors", st.send_errors),
                ],
                DaemonState::Backup => vec![
                    ("messages", r.messages),
                    ("bad_messages", r.bad_messages),
                    ("foreign_syncid", r.foreign_syncid),
                    ("v0_messages", r.v0_messages),
                    ("created", r.created),
                    ("updated", r.updated),
                    ("replaced", r.replaced),
                    ("no_service", r.no_service),
                    ("no_destination", r.no_destination),
                    ("stale", r.stale),
                    ("unsupported", r.unsupported),
                    ("bad_state", r.bad_state),
                    ("table_full", r.table_full),
                ],
            };
            out.push(rvs_api::SyncStatus {
                state,
                counters: counters
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v))
                    .collect(),
            });
        }
        out
    }

    /// The running daemons' counters, master first (for the metrics; each daemon's own small lock).
    pub fn stats(&self) -> Vec<(DaemonState, SyncStats)> {
        [
            (&self.master, DaemonState::Master),
            (&self.backup, DaemonState::Backup),
        ]
        .into_iter()
        .filter_map(|(m, st)| lock(m).as_ref().map(|r| (st, *lock(&r.stats))))
        .collect()
    }

    /// Stops whatever runs (shutdown).
    pub fn stop_all(&self) {
        for s in [DaemonState::Master, DaemonState::Backup] {
            let _ = self.stop(s);
        }
    }
}

fn sockaddr(cfg: &DaemonConfig) -> SocketAddr {
    let group = cfg
        .mcast_group
        .unwrap_or(IpAddr::V4(rvs_sync::DEFAULT_GROUP));
    SocketAddr::new(group, cfg.mcast_port)
}

fn bind_device(sock: &UdpSocket, ifn: &str) -> std::io::Result<()> {
    nix::sys::socket::setsockopt(
        &sock.as_fd(),
        nix::sys::socket::sockopt::BindToDevice,
        &std::ffi::OsString::from(ifn),
    )
    .map_err(std::io::Error::from)
}

/// make_send_sock: bound to the interface (and its address), loop off, TTL, connected.
fn master_socket(cfg: &DaemonConfig, ifaddr: Option<Ipv4Addr>) -> std::io::Result<UdpSocket> {
    let dst = sockaddr(cfg);
    let sock = match dst {
        SocketAddr::V4(_) => {
            let s = UdpSocket::bind((ifaddr.unwrap_or(Ipv4Addr::UNSPECIFIED), 0))?;
            s.set_multicast_loop_v4(false)?;
            s.set_multicast_ttl_v4(u32::from(cfg.mcast_ttl))?;
            s
        }
        SocketAddr::V6(_) => {
            let s = UdpSocket::bind("[::]:0")?;
            s.set_multicast_loop_v6(false)?;
            nix::sys::socket::setsockopt(
                &s.as_fd(),
                nix::sys::socket::sockopt::Ipv6MulticastHops,
                &i32::from(cfg.mcast_ttl),
            )
            .map_err(std::io::Error::from)?;
            s
        }
    };
    bind_device(&sock, &cfg.mcast_ifn)?;
    sock.connect(dst)?;
    Ok(sock)
}

/// make_receive_sock: reuse, bound to the group and port on the interface, group joined.
fn backup_socket(
    cfg: &DaemonConfig,
    ifindex: u32,
    ifaddr: Option<Ipv4Addr>,
) -> std::io::Result<UdpSocket> {
    use nix::sys::socket::{
        AddressFamily, SockFlag, SockType, SockaddrStorage, bind, setsockopt, socket, sockopt,
    };
    let dst = sockaddr(cfg);
    let family = if dst.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    let fd = socket(family, SockType::Datagram, SockFlag::SOCK_CLOEXEC, None)?;
    setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    setsockopt(
        &fd,
        sockopt::BindToDevice,
        &std::ffi::OsString::from(&cfg.mcast_ifn),
    )?;
    bind(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrStorage::from(dst),
    )?;
    let sock = UdpSocket::from(fd);
    match dst.ip() {
        IpAddr::V4(g) => {
            sock.join_multicast_v4(&g, &ifaddr.unwrap_or(Ipv4Addr::UNSPECIFIED))?;
        }
        IpAddr::V6(g) => sock.join_multicast_v6(&g, ifindex)?,
    }
    sock.set_read_timeout(Some(RECV_POLL))?;
    Ok(sock)
}

fn master_loop(
    director: &Director,
    cfg: &DaemonConfig,
    sock: &UdpSocket,
    stop: &AtomicBool,
    stats: &Mutex<SyncStats>,
    credit: &CreditHook,
) {
    let mut exporter = Exporter::new(ExportPolicy::default());
    let mut packer = Packer::new(cfg.syncid, usize::from(cfg.sync_maxlen));
    let mut last_err: Option<Instant> = None;
    while !stop.load(Ordering::Relaxed) {
        let mut sent = SyncStats::default();
        let mut send = |m: &[u8]| match sock.send(m) {
            Ok(_) => sent.sent_messages += 1,
            Err(e) => {
                sent.send_errors += 1;
                if last_err.is_none_or(|l| l.elapsed() >= Duration::from_secs(1)) {
                    last_err = Some(Instant::now());
                    tracing::warn!(error = %e, "sync message not sent");
                }
            }
        };
        let conns = walk(
            director,
            credit.0.get(),
            now,
            &mut exporter,
            &mut packer,
            &mut send,
        );
        sent.sent_conns = conns;
        {
            let mut s = lock(stats);
            s.sent_messages += sent.sent_messages;
            s.sent_conns += sent.sent_conns;
            s.send_errors += sent.send_errors;
        }
        std::thread::sleep(WALK_INTERVAL);
    }
}

/// One master walk: the fast path's credit first (what XDP forwarded moves last-seen before anything is decided
/// from it), then every connection and template offered to the exporter at `clock()`; returns the entries packed.
fn walk(
    director: &Director,
    credit: Option<&Credit>,
    clock: impl Fn() -> rvs_core::Timestamp,
    exporter: &mut Exporter,
    packer: &mut Packer,
    mut send: impl FnMut(&[u8]),
) -> u64 {
    if let Some(credit) = credit {
        credit(director);
    }
    let t = clock();
    exporter.begin_walk();
    let mut conns = 0;
    director.sync_export(t, |e| {
        if exporter.offer(&e.conn, e.deadline_ms, t.0, e.in_persistence)
            && packer.add(&e.conn, t.0, &mut send)
        {
            conns += 1;
        }
    });
    exporter.end_walk();
    packer.flush_now(&mut send);
    conns
}

/// The director as the backup's receiver sees it.
struct Install<'a>(&'a Director);

impl SyncTarget for Install<'_> {
    fn install(&mut self, c: &SyncConn<'_>) -> Result<Installed, Skipped> {
        self.0.sync_install(now(), c)
    }
}

fn backup_loop(
    director: &Director,
    cfg: &DaemonConfig,
    sock: &UdpSocket,
    stop: &AtomicBool,
    stats: &Mutex<SyncStats>,
) {
    let mut rx = Receiver::new(cfg.syncid);
    let mut buf = vec![0u8; 65_536];
    let mut last_log: Option<Instant> = None;
    while !stop.load(Ordering::Relaxed) {
        let n = match sock.recv(&mut buf) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) =>
            {
                continue;
            }
            Err(e) => {
                tracing::error!(error = %e, "sync receive failed; backup daemon stops");
                return;
            }
        };
        let data = buf.get(..n).unwrap_or(&[]);
        if let Err(e) = rx.receive(data, &mut Install(director))
            && last_log.is_none_or(|l| l.elapsed() >= Duration::from_secs(1))
        {
            last_log = Some(Instant::now());
            tracing::warn!(error = %e, len = n, "sync datagram dropped");
        }
        lock(stats).received = rx.counters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::net::Ipv4Addr;

    use rvs_core::{
        ConfigOp, DestSpec, FastConn, FastCredit, ForwardMethod, Protocol, ServiceKey, ServiceSpec,
        Timestamp, Weight,
    };

    const CIP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
    const VIP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 250);
    const RIP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);

    /// A director holding one established TCP connection (installed by sync at t = 0, 900 s timeout) that only
    /// the fast path will see again.
    fn director_with_a_connection() -> Director {
        let d = Director::default();
        let key = ServiceKey::Addr {
            protocol: Protocol::Tcp,
            addr: IpAddr::V4(VIP),
            port: 80,
        };
        d.apply(ConfigOp::AddService(ServiceSpec::new(key, "rr")))
            .expect("service");
        d.apply(ConfigOp::AddDest(
            key,
            DestSpec::masq(IpAddr::V4(RIP), 8080, Weight(1)),
        ))
        .expect("real server");
        let c = SyncConn {
            protocol: 6,
            flags: rvs_sync::flags::SYNC,
            state: 1,
            caddr: IpAddr::V4(CIP),
            cport: 40_000,
            vaddr: IpAddr::V4(VIP),
            vport: 80,
            daddr: IpAddr::V4(RIP),
            dport: 8080,
            fwmark: 0,
            timeout_s: 900,
            seq: None,
            pe_data: None,
            pe_name: None,
        };
        d.sync_install(Timestamp(0), &c).expect("installed");
        d
    }

    #[test]
    fn the_walk_credits_the_fast_path_before_it_decides() {
        // The connection's packets go through XDP only: at 10 s the fast path has seen it at 10 s, the core still
        // at 0. The walk must credit first: the deadline then moved by the refresh period (10 s) and the entry is
        // sent again; deciding on the core's stale last-seen would skip it (nothing moved).
        let d = director_with_a_connection();
        let mut exporter = Exporter::new(ExportPolicy::default());
        let mut packer = Packer::new(0, 1472);
        let mut messages = 0;
        let first = walk(
            &d,
            None,
            || Timestamp(0),
            &mut exporter,
            &mut packer,
            |_| messages += 1,
        );
        assert_eq!(
            (first, messages),
            (1, 1),
            "a new established connection is sent"
        );
        let credit: Credit = Arc::new(|d: &Director| {
            let fc = FastConn {
                protocol: 6,
                caddr: IpAddr::V4(CIP),
                cport: 40_000,
                vaddr: IpAddr::V4(VIP),
                vport: 80,
                daddr: IpAddr::V4(RIP),
                dport: 8080,
                method: ForwardMethod::Masq,
            };
            let seen = FastCredit {
                in_packets: 1,
                in_bytes: 60,
                last_seen: Some(Timestamp(10_000)),
                ..FastCredit::default()
            };
            assert!(d.fast_path_credit(&fc, &seen).is_some());
        });
        let again = walk(
            &d,
            Some(&credit),
            || Timestamp(10_000),
            &mut exporter,
            &mut packer,
            |_| messages += 1,
        );
        assert_eq!(
            (again, messages),
            (1, 2),
            "refreshed from the fast path's last-seen"
        );
        // Nothing new since: not sent again.
        let idle = walk(
            &d,
            None,
            || Timestamp(10_500),
            &mut exporter,
            &mut packer,
            |_| messages += 1,
        );
        assert_eq!(idle, 0);
    }

    #[test]
    fn defaults_are_the_kernels() {
        let cfg = DaemonConfig {
            state: DaemonState::Master,
            mcast_ifn: "eth0".into(),
            syncid: 0,
            sync_maxlen: 0,
            mcast_group: None,
            mcast_port: 0,
            mcast_ttl: 0,
        };
        let e = effective(cfg.clone());
        assert_eq!(
            e.mcast_group,
            Some(IpAddr::V4(Ipv4Addr::new(224, 0, 0, 81)))
        );
        assert_eq!((e.mcast_port, e.mcast_ttl, e.sync_maxlen), (8848, 1, 1472));
        assert_eq!(
            rvs_api::listing::list_daemons(&[e]),
            "master sync daemon (mcast=eth0, syncid=0, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n"
        );
        let b = effective(DaemonConfig {
            state: DaemonState::Backup,
            sync_maxlen: 100,
            mcast_group: Some(
                "ff02::81"
                    .parse()
                    .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            ),
            ..cfg
        });
        assert_eq!(b.sync_maxlen, 1024, "a backup's maxlen is at least 1024");
        let m = effective(DaemonConfig {
            sync_maxlen: 65_535,
            ..b
        });
        assert_eq!(m.sync_maxlen, 65_535 - 48);
    }
}
