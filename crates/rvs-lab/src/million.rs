//! `rvs-lab million` (issue 15): many concurrent TCP connections held through rvsd in the lab, opened slowly, kept
//! idle, then used, then reset; with what it costs.
//!
//! The lab: one client namespace whose sources are all of 198.18.0.0/15 (`local` route on lo; the director routes
//! the /15 back to the client), rvsd in the director with one masq service `VIP:PORT` (rr) over the real servers,
//! and in each real server an epoll server ([`crate::hold::serve`]) instead of the lab's thread-per-connection
//! HTTP server. Openers ([`crate::hold::open`]) in the client namespace take a slice each.
//!
//! Measured: rvsd's resident set before and with the connections (bytes per connection against the core's ~90 B),
//! the table's count, how long `rvsadm -L -n`, `--stats`, `--json` and `-L -n -c` take with the table full (and
//! that `-c` lists every entry), rvsd's CPU while the table sits idle (expiry walks only what is due), every
//! connection answered after the idle time by a real server that saw the client's own address, the time the table
//! takes to drain after the resets (CLOSE: 10 s), and the kernel's memory for the lab's sockets (slab caches,
//! machine-wide, kept apart from rvsd's).

use std::io::{BufReader, Read, Write};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use crate::bench::sys::{CLOCK_TICKS, process_ticks};
use crate::cleanup::{Proc, StopSignal};
use crate::cmd::ip_in;
use crate::error::{LabError, Result};
use crate::hold;
use crate::lab::{self, CIP, Lab, LabConfig, VIP};

/// What to run.
#[derive(Debug, Clone)]
pub struct MillionOptions {
    pub conns: u64,
    pub real_servers: usize,
    /// Opener processes in the client namespace.
    pub openers: u64,
    /// New connections a second (all openers together), and most connecting at once.
    pub rate: u64,
    pub window: u64,
    /// Requests a second in the use phase and resets a second in the close phase.
    pub use_rate: u64,
    /// How long the connections sit idle before they are used.
    pub idle: Duration,
    /// Bound of each phase (opening, using, closing, draining).
    pub phase: Duration,
    /// The service's port.
    pub port: u16,
}

impl Default for MillionOptions {
    fn default() -> Self {
        MillionOptions {
            conns: 1_000_000,
            real_servers: 2,
            openers: 4,
            rate: 4000,
            window: 4000,
            use_rate: 8000,
            idle: Duration::from_secs(60),
            phase: Duration::from_secs(900),
            port: 8000,
        }
    }
}

/// One rvsadm call at full table.
#[derive(Debug, Clone)]
pub struct Listing {
    pub args: String,
    pub ok: bool,
    pub secs: f64,
    pub lines: usize,
    pub bytes: usize,
}

/// What a run measured.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub conns: u64,
    pub opened: u64,
    pub open_failed: u64,
    pub first_error: String,
    pub open_secs: f64,
    /// rvsd's VmRSS (KiB): with the service and no connection, with every connection held, after the drain.
    pub rss_before_kib: u64,
    pub rss_held_kib: u64,
    pub rss_drained_kib: u64,
    /// Table entries (rvsadm --json `defense.conns`) once every connection was open, and after the idle time.
    pub entries_held: u64,
    pub entries_after_idle: u64,
    pub listings: Vec<Listing>,
    pub idle_secs: f64,
    /// rvsd's CPU during the idle time, in % of one core.
    pub idle_cpu_pct: f64,
    pub used_ok: u64,
    pub used_bad: u64,
    pub unanswered: u64,
    /// Answers per real server (`rs1=N rs2=M`).
    pub by_server: String,
    pub use_secs: f64,
    /// Seconds from the last reset to an empty table (`None`: not empty within the bound).
    pub drain_secs: Option<f64>,
    /// Growth of the slab caches of sockets ([`SOCKET_CACHES`]) at full table (KiB; machine-wide, but the lab's
    /// sockets dominate them), and the biggest caches' growth.
    pub slab_kib: i64,
    pub slab_top: Vec<(String, i64)>,
    /// /proc/net/sockstat's TCP line in the client namespace and in real server 1, at full table.
    pub sockstat_client: String,
    pub sockstat_rs1: String,
    /// rvsd's drop counters at the end (`rvsadm -L -n --json`, `defense.drops`), non-zero ones.
    pub drops: String,
    /// (seconds since the start, rvsd RSS KiB, table entries) every few seconds.
    pub samples: Vec<(f64, u64, u64)>,
    /// Where a connection without an entry comes from: the table's entries by state once every connection was
    /// open and after the idle time (`rvsadm -L -n -c`), the kernel's drops into rvsd's TUN (`tx_dropped` of
    /// `rvs0`) at the same moments, the real servers' listen-queue and SYN-cookie counters (TcpExt, summed) and
    /// the client's SYN retransmissions, at full table.
    pub states_open: String,
    pub states_idle: String,
    pub tun_dropped_open: u64,
    pub tun_dropped_idle: u64,
    pub servers_tcpext: String,
    pub client_tcpext: String,
}

impl Report {
    /// rvsd's resident bytes per held connection.
    pub fn bytes_per_conn(&self) -> f64 {
        (self.rss_held_kib.saturating_sub(self.rss_before_kib) as f64 * 1024.0)
            / self.opened.max(1) as f64
    }

    /// Kernel slab bytes per lab socket (two a connection: the client's and the real server's).
    pub fn kernel_bytes_per_socket(&self) -> f64 {
        (self.slab_kib.max(0) as f64 * 1024.0) / (2 * self.opened.max(1)) as f64
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "connections: {} asked, {} open, {} failed (first error: {}) in {:.1} s",
            self.conns, self.opened, self.open_failed, self.first_error, self.open_secs
        )?;
        writeln!(
            f,
            "rvsd RSS: {} KiB before, {} KiB held, {} KiB after the drain: {:.0} bytes per connection",
            self.rss_before_kib,
            self.rss_held_kib,
            self.rss_drained_kib,
            self.bytes_per_conn()
        )?;
        writeln!(
            f,
            "table: {} entries held, {} after {:.0} s idle (rvsd {:.1} % of a core meanwhile)",
            self.entries_held, self.entries_after_idle, self.idle_secs, self.idle_cpu_pct
        )?;
        for l in &self.listings {
            writeln!(
                f,
                "rvsadm {}: {} in {:.2} s, {} lines, {} bytes",
                l.args,
                if l.ok { "ok" } else { "FAILED" },
                l.secs,
                l.lines,
                l.bytes
            )?;
        }
        writeln!(
            f,
            "used: {} ok, {} wrong, {} unanswered in {:.1} s ({})",
            self.used_ok, self.used_bad, self.unanswered, self.use_secs, self.by_server
        )?;
        match self.drain_secs {
            Some(s) => writeln!(
                f,
                "drain after the resets: empty table {s:.1} s after the last reset"
            )?,
            None => writeln!(f, "drain after the resets: NOT empty within the bound")?,
        }
        writeln!(
            f,
            "kernel: socket slab caches +{} KiB at full table, {:.0} bytes per lab socket; biggest growth: {}",
            self.slab_kib,
            self.kernel_bytes_per_socket(),
            self.slab_top
                .iter()
                .map(|(n, k)| format!("{n} +{k} KiB"))
                .collect::<Vec<_>>()
                .join(", ")
        )?;
        writeln!(f, "sockstat client: {}", self.sockstat_client)?;
        writeln!(f, "sockstat rs1: {}", self.sockstat_rs1)?;
        writeln!(f, "rvsd drops: {}", self.drops)?;
        writeln!(
            f,
            "entries by state: {} when open, {} after the idle time",
            self.states_open, self.states_idle
        )?;
        writeln!(
            f,
            "TUN queue drops (rvs0 tx_dropped): {} when open, {} after the idle time",
            self.tun_dropped_open, self.tun_dropped_idle
        )?;
        writeln!(f, "real servers (summed): {}", self.servers_tcpext)?;
        writeln!(f, "client: {}", self.client_tcpext)
    }
}

/// A holder process: its stdin (commands) and its stdout lines.
struct Holder {
    name: String,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
}

impl Holder {
    fn send(&mut self, cmd: &str) -> Result<()> {
        let w = self
            .stdin
            .as_mut()
            .ok_or_else(|| LabError::Check(format!("{}: stdin closed", self.name)))?;
        writeln!(w, "{cmd}")
            .and_then(|()| w.flush())
            .map_err(LabError::io(format!("commanding {}", self.name)))
    }

    /// The next line starting with `word` (other lines are passed to `seen`), within `bound`.
    fn expect(&self, word: &str, bound: Duration, mut seen: impl FnMut(&str)) -> Result<String> {
        let deadline = Instant::now() + bound;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l.split_whitespace().next() == Some(word) => return Ok(l),
                Ok(l) => seen(&l),
                Err(RecvTimeoutError::Timeout) => {
                    return Err(LabError::Check(format!(
                        "{}: no `{word}` line within {bound:?}",
                        self.name
                    )));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(LabError::Check(format!(
                        "{}: exited before `{word}`",
                        self.name
                    )));
                }
            }
        }
    }
}

/// Starts `rvs-lab ARGS` in `ns`, registered with the lab's cleanup (killed by PID), stderr into the state dir.
fn spawn_holder(lab: &Lab, ns: &str, name: &str, args: &[String]) -> Result<Holder> {
    let exe = &lab
        .binaries()
        .ok_or_else(|| LabError::Invalid("the million lab needs rvsd".into()))?
        .rvs_lab;
    let log = lab.state_dir.join(format!("{name}.log"));
    let logf =
        std::fs::File::create(&log).map_err(LabError::io(format!("creating {}", log.display())))?;
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns])
        .arg(exe)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(logf)
        .spawn()
        .map_err(LabError::io(format!("starting {name} in {ns}")))?;
    let stdin = child.stdin.take();
    let stdout = child.stdout.take();
    lab.guard_add(Proc {
        name: name.to_owned(),
        child,
        stop: StopSignal::Kill,
    });
    let (tx, rx) = std::sync::mpsc::channel();
    if let Some(out) = stdout {
        std::thread::spawn(move || {
            let mut r = BufReader::new(out);
            while let Some(l) = hold::read_line(&mut r) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
    }
    Ok(Holder {
        name: name.to_owned(),
        stdin,
        lines: rx,
    })
}

fn rvsd_pid(lab: &Lab) -> Result<u32> {
    lab.rvsd_pid()
        .ok_or_else(|| LabError::Check("rvsd is not running".into()))
}

/// VmRSS of `pid` in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

/// Table entries as rvsd counts them (`defense.conns`, evaluated once a second) and the JSON it came in.
fn table(lab: &Lab) -> (u64, serde_json::Value) {
    let v: serde_json::Value = lab
        .rvsadm(&["-L", "-n", "--json"])
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default();
    (v["defense"]["conns"].as_u64().unwrap_or(0), v)
}

/// The table's entries by state (`rvsadm -L -n -c`'s third column), e.g. `ESTABLISHED=999530 SYN_RECV=103`.
fn states(lab: &Lab) -> String {
    let text = lab.rvsadm(&["-L", "-n", "-c"]).unwrap_or_default();
    let mut by = std::collections::BTreeMap::<&str, u64>::new();
    // Two header lines ("IPVS connection entries", the column names), then one line an entry.
    for l in text.lines().skip(2) {
        if let Some(st) = l.split_whitespace().nth(2) {
            *by.entry(st).or_default() += 1;
        }
    }
    if by.is_empty() {
        return "none".into();
    }
    by.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// TcpExt counters that tell a lost handshake apart (SYN cookies sent and taken, listen-queue overflows and
/// drops, SYN-ACK and SYN retransmissions).
const HANDSHAKE_COUNTERS: [&str; 9] = [
    "TCPReqQFullDoCookies",
    "TCPReqQFullDrop",
    "SyncookiesSent",
    "SyncookiesRecv",
    "SyncookiesFailed",
    "ListenOverflows",
    "ListenDrops",
    "TCPSynRetrans",
    "TCPTimeouts",
];

/// [`HANDSHAKE_COUNTERS`] of namespace `ns` (`/proc/net/netstat`), added into `sum`.
fn tcpext_into(ns: &str, sum: &mut std::collections::BTreeMap<&'static str, u64>) {
    let text = crate::cmd::cat_in(ns, "/proc/net/netstat").unwrap_or_default();
    let mut ext = text.lines().filter(|l| l.starts_with("TcpExt:"));
    let (Some(names), Some(values)) = (ext.next(), ext.next()) else {
        return;
    };
    for (n, v) in names.split_whitespace().zip(values.split_whitespace()) {
        if let Some(k) = HANDSHAKE_COUNTERS.iter().find(|k| **k == n) {
            *sum.entry(k).or_default() += v.parse::<u64>().unwrap_or(0);
        }
    }
}

fn tcpext(namespaces: &[String]) -> String {
    let mut sum = std::collections::BTreeMap::new();
    for ns in namespaces {
        tcpext_into(ns, &mut sum);
    }
    sum.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Slab caches' sizes (bytes), from /proc/slabinfo.
fn slabinfo() -> std::collections::BTreeMap<String, i64> {
    let text = std::fs::read_to_string("/proc/slabinfo").unwrap_or_default();
    text.lines()
        .skip(2)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let objs: i64 = f.get(2)?.parse().ok()?;
            let size: i64 = f.get(3)?.parse().ok()?;
            Some((f.first()?.to_string(), objs * size))
        })
        .collect()
}

/// The slab caches of a TCP socket with its descriptor and epoll registration (and its buffers' heads).
const SOCKET_CACHES: [&str; 7] = [
    "TCP",
    "sock_inode_cache",
    "dentry",
    "filp",
    "eventpoll_epi",
    "eventpoll_pwq",
    "skbuff_",
];

fn sockstat_tcp(ns: &str) -> String {
    crate::cmd::cat_in(ns, "/proc/net/sockstat")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("TCP:"))
        .unwrap_or("")
        .to_string()
}

/// Runs rvsadm, counting its output's lines and bytes as they stream (a million-line listing is not kept).
fn timed_listing(lab: &Lab, args: &[&str]) -> Result<Listing> {
    let bins = lab
        .binaries()
        .ok_or_else(|| LabError::Invalid("the million lab needs rvsd".into()))?;
    let start = Instant::now();
    let mut child = Command::new(&bins.rvsadm)
        .args(args)
        .env("RVS_SOCKET", lab.socket())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(LabError::io("running rvsadm"))?;
    let (mut lines, mut bytes) = (0usize, 0usize);
    if let Some(mut out) = child.stdout.take() {
        let mut buf = vec![0u8; 1 << 16];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 {
                break;
            }
            bytes += n;
            lines += buf[..n].iter().filter(|&&b| b == b'\n').count();
        }
    }
    let ok = child.wait().is_ok_and(|s| s.success());
    Ok(Listing {
        args: args.join(" "),
        ok,
        secs: start.elapsed().as_secs_f64(),
        lines,
        bytes,
    })
}

fn words(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

fn num(w: &[&str], i: usize) -> u64 {
    w.get(i).and_then(|x| x.parse().ok()).unwrap_or(0)
}

/// Builds the lab from `cfg` (its servers replaced by the holders), runs the whole sequence, removes the lab.
pub fn run(opts: &MillionOptions, mut cfg: LabConfig) -> Result<Report> {
    if opts.conns == 0 || opts.openers == 0 || opts.real_servers == 0 {
        return Err(LabError::Invalid(
            "conns, openers and real servers must be at least 1".into(),
        ));
    }
    let per_server = opts.conns.div_ceil(opts.real_servers as u64);
    let per_opener = opts.conns.div_ceil(opts.openers);
    if per_server > hold::MAX_PER_PROCESS || per_opener > hold::MAX_PER_PROCESS {
        return Err(LabError::Invalid(format!(
            "at most {} connections per real server and per opener: add --real-servers/--openers",
            hold::MAX_PER_PROCESS
        )));
    }
    cfg.real_servers = opts.real_servers;
    cfg.servers = false;
    cfg.rvsd = true;
    let lab = Lab::up(cfg)?;
    let result = run_in(&lab, opts);
    let down = lab.down();
    let report = result?;
    down?;
    Ok(report)
}

fn run_in(lab: &Lab, opts: &MillionOptions) -> Result<Report> {
    let t0 = Instant::now();
    let mut r = Report {
        conns: opts.conns,
        ..Report::default()
    };
    // Every address of 198.18.0.0/15 is the client's own; the director routes the /15 back to it.
    ip_in(
        &lab.client(),
        &["route", "add", "local", "198.18.0.0/15", "dev", "lo"],
    )?;
    ip_in(
        &lab.director(),
        &["route", "add", "198.18.0.0/15", "via", &CIP.to_string()],
    )?;
    let per_server = opts.conns.div_ceil(opts.real_servers as u64) + 1024;
    let mut servers = Vec::new();
    for i in 1..=opts.real_servers {
        let args = [
            "hold-serve".to_string(),
            "--name".into(),
            format!("rs{i}"),
            "--listen".into(),
            format!("0.0.0.0:{}", opts.port),
            "--max-conns".into(),
            per_server.to_string(),
        ];
        let h = spawn_holder(lab, &lab.rs(i), &format!("hold-serve{i}"), &args)?;
        h.expect("ready", Duration::from_secs(30), |_| {})?;
        servers.push(h);
    }
    let svc = format!("{VIP}:{}", opts.port);
    lab.rvsadm(&["-A", "-t", &svc, "-s", "rr"])?;
    for i in 1..=opts.real_servers {
        lab.rvsadm(&[
            "-a",
            "-t",
            &svc,
            "-r",
            &format!("{}:{}", lab::rip(i), opts.port),
            "-m",
        ])?;
    }
    // The connections must outlive the run's idle time: ESTABLISHED 1 h (tcpfin and udp unchanged).
    lab.rvsadm(&["--set", "3600", "0", "0"])?;
    let pid = rvsd_pid(lab)?;
    std::thread::sleep(Duration::from_secs(1));
    r.rss_before_kib = rss_kib(pid);
    let slab0 = slabinfo();
    let sample = |r: &mut Report| {
        let (entries, _) = table(lab);
        let s = (t0.elapsed().as_secs_f64(), rss_kib(pid), entries);
        eprintln!(
            "[million] {:7.1} s: rvsd {} KiB, {} table entries",
            s.0, s.1, s.2
        );
        r.samples.push(s);
    };

    // Open.
    let addrs = hold::addrs_for(opts.conns);
    let per_opener = opts.conns.div_ceil(opts.openers);
    let mut openers = Vec::new();
    let start = Instant::now();
    for j in 0..opts.openers {
        let first = j * per_opener;
        let count = per_opener.min(opts.conns.saturating_sub(first));
        if count == 0 {
            break;
        }
        let args = vec![
            "hold-open".to_string(),
            "--target".into(),
            format!("{VIP}:{}", opts.port),
            "--first".into(),
            first.to_string(),
            "--count".into(),
            count.to_string(),
            "--addrs".into(),
            addrs.to_string(),
            "--rate".into(),
            (opts.rate / opts.openers).max(1).to_string(),
            "--window".into(),
            (opts.window / opts.openers).max(1).to_string(),
            "--phase-secs".into(),
            opts.phase.as_secs().to_string(),
        ];
        openers.push(spawn_holder(
            lab,
            &lab.client(),
            &format!("hold-open{j}"),
            &args,
        )?);
    }
    let bound = opts.phase + Duration::from_secs(30);
    let mut last_sample = Instant::now();
    let mut first_error = Vec::new();
    for o in &openers {
        let l = o.expect("opened", bound, |_| {
            if last_sample.elapsed() >= Duration::from_secs(10) {
                sample(&mut r);
                last_sample = Instant::now();
            }
        })?;
        let w = words(&l);
        r.opened += num(&w, 1);
        r.open_failed += num(&w, 2);
        if w.get(3).is_some_and(|e| *e != "-") {
            first_error.push(w[3].to_string());
        }
    }
    r.open_secs = start.elapsed().as_secs_f64();
    r.first_error = first_error.first().cloned().unwrap_or_else(|| "-".into());

    // Held: wait for the table's count (evaluated once a second) to catch up, then measure.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (n, _) = table(lab);
        r.entries_held = n;
        if n >= r.opened || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    r.rss_held_kib = rss_kib(pid);
    sample(&mut r);
    let slab1 = slabinfo();
    let mut grown: Vec<(String, i64)> = slab1
        .iter()
        .map(|(k, v)| (k.clone(), (v - slab0.get(k).copied().unwrap_or(0)) / 1024))
        .filter(|(_, d)| *d > 0)
        .collect();
    // The machine's total moves with everyone's work; the caches a socket lives in are what the lab added.
    r.slab_kib = grown
        .iter()
        .filter(|(k, _)| SOCKET_CACHES.iter().any(|c| k.starts_with(c)))
        .map(|(_, d)| d)
        .sum();
    grown.sort_by_key(|(_, d)| -d);
    grown.truncate(8);
    r.slab_top = grown;
    r.states_open = states(lab);
    r.tun_dropped_open = lab.tun_tx_dropped();
    let rs_ns: Vec<String> = (1..=opts.real_servers).map(|i| lab.rs(i)).collect();
    r.servers_tcpext = tcpext(&rs_ns);
    r.client_tcpext = tcpext(&[lab.client()]);
    r.sockstat_client = sockstat_tcp(&lab.client());
    r.sockstat_rs1 = sockstat_tcp(&lab.rs(1));
    for args in [
        &["-L", "-n"][..],
        &["-L", "-n", "--stats"],
        &["-L", "-n", "--json"],
        &["-L", "-n", "-c"],
    ] {
        r.listings.push(timed_listing(lab, args)?);
    }

    // Idle: nothing expires early, and expiry costs what it expires (rvsd's CPU meanwhile).
    let (c0, i0) = (process_ticks(pid).unwrap_or(0), Instant::now());
    while i0.elapsed() < opts.idle {
        std::thread::sleep(Duration::from_secs(1).min(opts.idle));
        if last_sample.elapsed() >= Duration::from_secs(10) {
            sample(&mut r);
            last_sample = Instant::now();
        }
    }
    r.idle_secs = i0.elapsed().as_secs_f64();
    r.idle_cpu_pct =
        (process_ticks(pid).unwrap_or(0).saturating_sub(c0)) as f64 / CLOCK_TICKS / r.idle_secs
            * 100.0;
    r.entries_after_idle = table(lab).0;
    r.states_idle = states(lab);
    r.tun_dropped_idle = lab.tun_tx_dropped();

    // Use every connection.
    let start = Instant::now();
    let use_rate = (opts.use_rate / opts.openers).max(1);
    for o in &mut openers {
        o.send(&format!("use {use_rate}"))?;
    }
    let mut by_server = std::collections::BTreeMap::<String, u64>::new();
    for o in &openers {
        let l = o.expect("used", bound, |_| {})?;
        let w = words(&l);
        r.used_ok += num(&w, 1);
        r.used_bad += num(&w, 2);
        r.unanswered += num(&w, 3);
        for kv in w.iter().skip(4) {
            if let Some((k, v)) = kv.split_once('=') {
                *by_server.entry(k.to_string()).or_default() += v.parse::<u64>().unwrap_or(0);
            }
        }
    }
    r.use_secs = start.elapsed().as_secs_f64();
    r.by_server = by_server
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ");
    sample(&mut r);

    // Reset every connection, then watch the table drain (CLOSE: 10 s).
    for o in &mut openers {
        o.send(&format!("close {use_rate}"))?;
    }
    for o in &openers {
        o.expect("closed", bound, |_| {})?;
    }
    let closed = Instant::now();
    while closed.elapsed() < opts.phase.min(Duration::from_secs(120)) {
        let (n, _) = table(lab);
        if n == 0 {
            r.drain_secs = Some(closed.elapsed().as_secs_f64());
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    r.rss_drained_kib = rss_kib(pid);
    sample(&mut r);
    let (_, v) = table(lab);
    r.drops = v["defense"]["drops"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(_, n)| n.as_u64().unwrap_or(0) > 0)
                .map(|(k, n)| format!("{k}={n}"))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default();
    if r.drops.is_empty() {
        r.drops = "none".into();
    }
    // The holders exit when their stdin closes; the lab's teardown kills whatever is left, by PID.
    drop(openers);
    drop(servers);
    Ok(r)
}
