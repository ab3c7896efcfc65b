//! rvsd's command line.

use std::path::PathBuf;

use clap::Parser;

/// Default control socket path (when neither --socket nor RVS_SOCKET is given).
pub const DEFAULT_SOCKET: &str = "/run/rvsd.sock";

/// rvsd: the rvs director daemon (IPVS-compatible virtual services on a TUN data plane: NAT, direct routing,
/// tunnelling; optional XDP fast path).
#[derive(Debug, Clone, Parser, PartialEq, Eq)]
#[command(name = "rvsd", version, about)]
pub struct Args {
    /// Control socket path [env RVS_SOCKET, default /run/rvsd.sock].
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Rules file in `ipvsadm -S` format: loaded at start (missing = no services), saved after every change,
    /// reloaded on SIGHUP.
    #[arg(long, value_name = "FILE")]
    pub rules: Option<PathBuf>,
    /// keepalived.conf: its LVS side (virtual servers, real servers, health checkers) is applied and checked as
    /// keepalived would; SIGHUP re-reads it and applies the difference. VRRP blocks are reported, not run. The
    /// file owns the configuration: --rules is then not loaded, only written (a snapshot of the live table).
    #[arg(long, value_name = "FILE")]
    pub keepalived: Option<PathBuf>,
    /// Check the --keepalived file (syntax, values, what rvsd can serve), print warnings, and exit (like
    /// `keepalived -t`); needs neither root nor a TUN.
    #[arg(short = 't', long, requires = "keepalived")]
    pub config_test: bool,
    /// keepalived's configuration id (`-i`): `@ID` lines apply only when it matches.
    #[arg(long, value_name = "ID", requires = "keepalived")]
    pub config_id: Option<String>,
    /// CPU priority of the --keepalived health checker's thread: `idle` (SCHED_IDLE: checks run only on a core
    /// nothing else wants, so they never take one from the workers; on a saturated machine they run late) or
    /// `normal` (SCHED_OTHER: checks on time, competing with the workers as equals).
    #[arg(long, value_enum, value_name = "PRIORITY", default_value_t = HealthPriority::Idle, requires = "keepalived")]
    pub health_priority: HealthPriority,
    /// How TCP_CHECK closes its connection: `reset` (SO_LINGER 0, keepalived's original way: one RST, no FIN
    /// exchange, no TIME_WAIT socket on the director) or `graceful` (FIN, as current keepalived: no reset seen
    /// by the real server, at the price of more packets and a TIME_WAIT socket per check).
    #[arg(long, value_enum, value_name = "CLOSE", default_value_t = HealthTcpClose::Reset, requires = "keepalived")]
    pub health_tcp_close: HealthTcpClose,
    /// Do not write the rules file back after changes.
    #[arg(long)]
    pub no_save: bool,
    /// Interface facing the clients [default: the one routing to each VIP].
    #[arg(long, value_name = "IFACE")]
    pub public_if: Option<String>,
    /// Interface facing the real servers [default: the one routing to each real server].
    #[arg(long, value_name = "IFACE")]
    pub private_if: Option<String>,
    /// Name of the TUN device rvsd creates.
    #[arg(long, value_name = "NAME", default_value = "rvs0")]
    pub tun: String,
    /// Turn off the TUN's checksum and TCP segmentation offload (on by default: IFF_VNET_HDR, so TCP
    /// super-packets of up to 64 KB cross the TUN in one read and one write instead of one per segment).
    #[arg(long, conflicts_with = "offload")]
    pub no_offload: bool,
    /// Offloads on (the default; kept for command lines of earlier versions).
    #[arg(long, hide = true)]
    pub offload: bool,
    /// How the workers drive their TUN queues: `uring` (io_uring: reads kept posted, one system call per round of
    /// packets) or `sync` (poll, then a read and a write system call per packet). `uring` falls back to `sync`
    /// when the kernel refuses io_uring.
    #[arg(long, value_enum, default_value_t = IoMode::Uring)]
    pub io: IoMode,
    /// How forwarded packets leave: `tun` (written back into the TUN, routed on by the kernel) or `link` (sent
    /// straight to the next hop's MAC on the egress interface through an AF_PACKET socket, skipping the kernel's
    /// second forwarding pass and the director's netfilter hooks; the TUN is the fallback while a next hop is not
    /// yet known). [default: `tun`; `link` with `--fast-path auto|xdp`, whose established packets skip those hooks
    /// already]
    #[arg(long, value_enum)]
    pub tx: Option<TxMode>,
    /// The XDP fast path for established connections (needs --public-if and --private-if): `off`; `auto` (used
    /// where it loads and attaches natively, otherwise rvsd says so once and runs on the TUN alone); `xdp` (refuse
    /// to start without it).
    #[arg(long, value_enum, default_value_t = FastPathMode::Off)]
    pub fast_path: FastPathMode,
    /// Entries of the fast-path map (two per connection; beyond, connections stay on the slow path).
    #[arg(long, value_name = "N", default_value_t = 65_536)]
    pub fast_path_entries: u32,
    /// A directory on a bpffs (e.g. /sys/fs/bpf/rvsd) for the fast path's maps and, at a planned restart
    /// (SIGUSR2), its links: the program keeps forwarding established connections while no rvsd runs and the next
    /// rvsd takes them over. A stop (SIGTERM) removes every pin; a start after a crash removes what was left.
    /// Without it nothing outlives rvsd.
    #[arg(long, value_name = "DIR")]
    pub fast_path_pin_dir: Option<std::path::PathBuf>,
    /// The SYN gate, an rvs defence beyond IPVS's (needs the fast path): the XDP program drops a first SYN to a VIP
    /// and passes its retransmission, so a SYN flood from spoofed sources (which never retransmits) does not reach
    /// the slow path; a real client pays one SYN retransmission (1 s on Linux) per new connection while it is on.
    /// `off`; `auto` (on while the slow path is overloaded by SYNs: the kernel dropped packets into the TUN, most of
    /// them SYN/FIN/RST, in the last interval; off again after 10 s in which it held few more SYNs than it let
    /// through); `always` [default: auto with the fast path, off without].
    #[arg(long, value_enum, value_name = "MODE")]
    pub syn_gate: Option<SynGateMode>,
    /// Buckets of the SYN gate's memory of held SYNs (4 slots of 4 bytes each, 16 bytes a bucket, preallocated by
    /// the kernel; rounded up to a power of two; at most 2^24, 256 MiB).
    #[arg(long, value_name = "N", default_value_t = 1 << 20,
          value_parser = clap::value_parser!(u32).range(1..=(1 << 24)))]
    pub syn_gate_buckets: u32,
    /// Data-plane worker threads, one TUN queue each [default: one per CPU].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub workers: Option<u16>,
    /// IPVS's sloppy_tcp: a TCP packet without SYN (and without RST) for a connection this director does not know
    /// creates one (a flow moved here by the router's ECMP, or seen after a restart) instead of being dropped. With
    /// a consistent scheduler (mh, sh) every director picks the same real server, so the flow survives.
    #[arg(long)]
    pub sloppy_tcp: bool,
    /// IPVS's sloppy_sctp: the same for SCTP (any chunk but ABORT); accepted and kept, SCTP is not forwarded yet.
    #[arg(long)]
    pub sloppy_sctp: bool,
    /// Serve Prometheus metrics (`/metrics`, node_exporter's ipvs names plus `rvs_*`) and the live view (`/`) over
    /// HTTP on this address, e.g. 127.0.0.1:9100 (nothing listens unless given). Read-only.
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics: Option<std::net::SocketAddr>,
    /// Log format on stderr: `text` (colours only on a terminal, no timestamps under journald) or `json` (one
    /// object a line, for log shippers). The level comes from RUST_LOG (default info).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// A VRRP instance (repeatable), for directors without keepalived:
    /// `interface=IF,vrid=N,address=IP[,address=IP...][,name=VI_1][,priority=100][,advert-int=1][,version=2|3]
    /// [,nopreempt][,preempt-delay=S][,unicast-peer=IP][,unicast-src=IP][,auth-pass=PW][,track-interface=IF[:W]]
    /// [,track-script=NAME[:W]][,sync-group=NAME][,notify=SCRIPT]`.
    /// VIPs among the addresses are answered for only while master; other addresses (e.g. the real servers'
    /// gateway) are added to the interface while master.
    #[arg(long, value_name = "SPEC")]
    pub vrrp: Vec<String>,
    /// A tracking script for `--vrrp ...,track-script=NAME` (repeatable), keepalived's `vrrp_script`:
    /// `name=NAME[,interval=S][,timeout=S][,weight=W][,reverse][,rise=N][,fall=N][,init-fail],script=COMMAND`
    /// (`script=` last: the rest of the argument, commas included, run through `sh -c`).
    #[arg(long, value_name = "SPEC")]
    pub vrrp_script: Vec<String>,
    /// Where a stop (SIGTERM, within --restart-hold) or a planned restart (SIGUSR2: exit 75) leaves the connection
    /// table for the next rvsd, which takes it over at start [default: the control socket's path + `.state`].
    #[arg(long, value_name = "FILE")]
    pub state_file: Option<PathBuf>,
    /// Seconds a stop (SIGTERM/SIGINT: `systemctl restart`, an upgrade) holds the real servers' replies and keeps the
    /// connection table for the next rvsd: a start within them keeps established connections. The kernel ends the
    /// hold (nftables set elements with a timeout) even if no rvsd starts again. 0: a stop hands nothing over.
    #[arg(long, value_name = "SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(0..=600))]
    pub restart_hold: u64,
    #[command(flatten)]
    pub defense: DefenseArgs,
}

/// The connection limit and IPVS's defences (the sysctls of /proc/sys/net/ipv4/vs/ by the same names).
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
#[command(next_help_heading = "Connection limit and defences (IPVS's sysctls)")]
pub struct DefenseArgs {
    /// Most entries tracked at once: connections (IPv4 and IPv6 each) plus persistence templates, which IPVS
    /// counts in its connection table too [default: a quarter of physical memory at ~128 bytes per connection,
    /// at least 65536]. A new connection or template beyond it evicts a half-open or long-idle entry (with its
    /// template) when --drop-entry is not 0, else it is dropped (counted as table_full).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_conns: Option<u64>,
    /// "Memory pressure" threshold: the defences set to 1 switch on when fewer than N entries are free under
    /// --max-conns (IPVS counts free memory pages; rvs counts free table entries) [default: max-conns / 8].
    #[arg(long, value_name = "N")]
    pub amemthresh: Option<u64>,
    /// With --drop-packet 3: drop one in N new connections.
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub am_droprate: u32,
    /// Drop random entries, half-open ones first: 0 never, 1 on memory pressure, 3 always.
    #[arg(long, value_name = "0-3", default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=3))]
    pub drop_entry: u8,
    /// Drop new connections at a rate rising with the pressure: 0 never, 1 on memory pressure, 3 always (one in
    /// --am-droprate).
    #[arg(long, value_name = "0-3", default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=3))]
    pub drop_packet: u8,
    /// The stricter TCP state table (ESTABLISHED only once the real server answered): 0 never, 1 on memory
    /// pressure, 3 always.
    #[arg(long, value_name = "0-3", default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=3))]
    pub secure_tcp: u8,
    /// 1: a connection whose real server was removed ends at its next packet, which is scheduled anew (0: its
    /// packets are dropped until it times out).
    #[arg(long, value_name = "0|1", default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=1))]
    pub expire_nodest_conn: u8,
    /// 1: a persistence template whose real server is quiesced (weight 0) expires, so its client's next
    /// connection is scheduled anew.
    #[arg(long, value_name = "0|1", default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=1))]
    pub expire_quiescent_template: u8,
    /// Port reuse: 0 a SYN on an old connection keeps its real server; bit 1 a SYN on TIME_WAIT/CLOSE is
    /// scheduled anew; bit 2 also on FIN_WAIT without output seen.
    #[arg(long, value_name = "0-3", default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=3))]
    pub conn_reuse_mode: u8,
}

/// Bytes budgeted per tracked connection for the default --max-conns (a 64-byte entry, its two index slots and
/// its share of the wheel and the slab's free slots, rounded up).
pub const BYTES_PER_CONN: u64 = 128;

/// The default connection limit: a quarter of physical memory at [`BYTES_PER_CONN`], at least 65536.
pub fn default_max_conns(mem_total_bytes: u64) -> u64 {
    (mem_total_bytes / 4 / BYTES_PER_CONN).max(65_536)
}

/// MemTotal from /proc/meminfo, in bytes.
pub fn mem_total() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The data-plane I/O method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum IoMode {
    /// io_uring, one `io_uring_enter` per round.
    Uring,
    /// A system call per packet.
    Sync,
}

/// --health-priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum HealthPriority {
    /// SCHED_IDLE.
    Idle,
    /// SCHED_OTHER.
    Normal,
}

/// --health-tcp-close.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum HealthTcpClose {
    /// Abortive (RST).
    Reset,
    /// Orderly (FIN).
    Graceful,
}

/// Whether established connections take the XDP fast path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FastPathMode {
    /// The TUN alone.
    Off,
    /// XDP where it works, else the TUN alone (said once).
    Auto,
    /// XDP or refuse to start.
    Xdp,
}

/// `--syn-gate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SynGateMode {
    /// Never hold a SYN.
    Off,
    /// On while the slow path is overloaded.
    Auto,
    /// Always hold first SYNs.
    Always,
}

impl SynGateMode {
    /// The name in `rvsadm --json`.
    pub fn name(self) -> &'static str {
        match self {
            SynGateMode::Off => "off",
            SynGateMode::Auto => "auto",
            SynGateMode::Always => "always",
        }
    }
}

/// Where forwarded packets are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TxMode {
    /// Back into the TUN.
    Tun,
    /// On the link, to the next hop's MAC.
    Link,
}

impl Args {
    /// keepalived.conf reading options.
    pub fn keepalived_options(&self) -> rvs_keepalived::LexOptions {
        rvs_keepalived::LexOptions {
            config_id: self.config_id.clone(),
            no_include: false,
        }
    }

    /// How forwarded packets leave: `--tx` when given; otherwise `link` when the fast path is asked for (its slow
    /// path then carries only handshakes and closes, and skipping the second forwarding pass made new connections
    /// ~1.2x faster in the bench, BENCHMARKS.md), else `tun`.
    pub fn tx_mode(&self) -> TxMode {
        match (self.tx, self.fast_path) {
            (Some(tx), _) => tx,
            (None, FastPathMode::Off) => TxMode::Tun,
            (None, FastPathMode::Auto | FastPathMode::Xdp) => TxMode::Link,
        }
    }

    /// Whether the TUN uses offloads.
    pub fn offload(&self) -> bool {
        !self.no_offload
    }

    /// The socket path: --socket, else $RVS_SOCKET, else /run/rvsd.sock.
    pub fn socket_path(&self, env: Option<std::ffi::OsString>) -> PathBuf {
        if let Some(p) = &self.socket {
            return p.clone();
        }
        match env {
            Some(v) if !v.is_empty() => PathBuf::from(v),
            _ => PathBuf::from(DEFAULT_SOCKET),
        }
    }

    /// Number of workers: --workers, else the CPUs available.
    pub fn worker_count(&self) -> usize {
        match self.workers {
            Some(n) => usize::from(n),
            None => std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("rvsd").chain(args.iter().copied()))
    }

    #[test]
    fn defaults() {
        let a = parse(&[]).expect("no args is valid");
        assert_eq!(a.tun, "rvs0");
        assert!(!a.no_save);
        assert!(a.offload(), "offloads are on by default");
        assert_eq!(a.io, IoMode::Uring);
        assert_eq!(a.tx_mode(), TxMode::Tun);
        assert_eq!(a.socket_path(None), PathBuf::from("/run/rvsd.sock"));
        assert_eq!(
            a.socket_path(Some("/tmp/x.sock".into())),
            PathBuf::from("/tmp/x.sock")
        );
        assert!(a.worker_count() >= 1);
        assert_eq!(a.metrics, None, "nothing listens unless asked");
    }

    #[test]
    fn sloppy_flags() {
        let a = parse(&[]).expect("valid");
        assert!(!a.sloppy_tcp && !a.sloppy_sctp, "off by default, as IPVS");
        let a = parse(&["--sloppy-tcp"]).expect("valid");
        assert!(a.sloppy_tcp && !a.sloppy_sctp);
        let a = parse(&["--sloppy-tcp", "--sloppy-sctp"]).expect("valid");
        assert!(a.sloppy_tcp && a.sloppy_sctp);
        assert!(parse(&["--sloppy-tcp=1"]).is_err(), "a switch, not a value");
    }

    #[test]
    fn metrics_address() {
        let a = parse(&["--metrics", "127.0.0.1:9100"]).expect("valid");
        assert_eq!(a.metrics, Some("127.0.0.1:9100".parse().expect("addr")));
        assert!(parse(&["--metrics", "[::1]:9100"]).is_ok());
        assert!(
            parse(&["--metrics", "localhost"]).is_err(),
            "needs ADDR:PORT"
        );
    }

    #[test]
    fn the_lab_command_line() {
        let a = parse(&[
            "--socket",
            "/tmp/s",
            "--rules",
            "/tmp/r",
            "--public-if",
            "pub0",
            "--private-if",
            "priv0",
            "--workers",
            "2",
            "--no-save",
            "--tun",
            "lb0",
        ])
        .expect("valid");
        assert_eq!(
            a.socket_path(Some("/ignored".into())),
            PathBuf::from("/tmp/s")
        );
        assert_eq!(a.rules.as_deref(), Some(std::path::Path::new("/tmp/r")));
        assert_eq!(a.public_if.as_deref(), Some("pub0"));
        assert_eq!(a.private_if.as_deref(), Some("priv0"));
        assert_eq!(a.worker_count(), 2);
        assert!(a.no_save);
        assert_eq!(a.tun, "lb0");
    }

    #[test]
    fn io_and_offload_switches() {
        let a = parse(&["--io", "sync", "--no-offload"]).expect("valid");
        assert_eq!(a.io, IoMode::Sync);
        assert!(!a.offload());
        assert!(
            parse(&["--offload"])
                .expect("old flag still accepted")
                .offload()
        );
        assert!(parse(&["--offload", "--no-offload"]).is_err());
        assert!(parse(&["--io", "epoll"]).is_err());
        assert_eq!(
            parse(&["--tx", "link"]).expect("valid").tx_mode(),
            TxMode::Link
        );
        assert!(parse(&["--tx", "xdp"]).is_err());
        // With the fast path the slow path's packets go on the link, unless --tx says otherwise.
        let tx = |args: &[&str]| parse(args).expect("valid").tx_mode();
        assert_eq!(tx(&["--fast-path", "xdp"]), TxMode::Link);
        assert_eq!(tx(&["--fast-path", "auto"]), TxMode::Link);
        assert_eq!(tx(&["--fast-path", "off"]), TxMode::Tun);
        assert_eq!(tx(&["--fast-path", "xdp", "--tx", "tun"]), TxMode::Tun);
        assert_eq!(tx(&["--tx", "tun", "--fast-path", "auto"]), TxMode::Tun);
    }

    #[test]
    fn keepalived_switches() {
        let a = parse(&["--keepalived", "/etc/keepalived/keepalived.conf", "-t"]).expect("valid");
        assert!(a.config_test);
        assert!(parse(&["-t"]).is_err(), "-t needs --keepalived");
        let a = parse(&["--keepalived", "k", "--config-id", "lb1"]).expect("valid");
        assert_eq!(a.keepalived_options().config_id.as_deref(), Some("lb1"));
        // The health checker: idle priority and abortive TCP_CHECK close unless asked otherwise.
        assert_eq!(
            (a.health_priority, a.health_tcp_close),
            (HealthPriority::Idle, HealthTcpClose::Reset)
        );
        let a = parse(&[
            "--keepalived",
            "k",
            "--health-priority",
            "normal",
            "--health-tcp-close",
            "graceful",
        ])
        .expect("valid");
        assert_eq!(
            (a.health_priority, a.health_tcp_close),
            (HealthPriority::Normal, HealthTcpClose::Graceful)
        );
        assert!(
            parse(&["--health-priority", "normal"]).is_err(),
            "--health-priority needs --keepalived"
        );
        assert!(parse(&["--keepalived", "k", "--health-priority", "high"]).is_err());
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(parse(&["--workers", "0"]).is_err());
        assert!(parse(&["--workers", "x"]).is_err());
        assert!(parse(&["--bogus"]).is_err());
    }
}
