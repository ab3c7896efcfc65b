//! The four paths (direct, kernel NAT, HAProxy, rvs), brought up and down around each measurement, and the
//! workloads run over them.

use super::sys::{self, Daemon, sh};
use super::topo::{self, Lab};
use super::{Args, Sample, Workload, bound, parse, udp};
use anyhow::{Context, Result, bail};
use clap::ValueEnum;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

pub const HTTP_PORT: u16 = 80;
pub const UDP_PORT: u16 = 5001;
pub const BULK_PORT: u16 = 5201;
const TUN_NAME: &str = "rvsb0";
const NFT_TABLE: &str = "rvsbench";
pub const NS_PREFIX: &str = "rvsb-";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, ValueEnum)]
pub enum PathKind {
    /// The client to one real server, the director a plain router (the ceiling).
    Direct,
    /// nftables DNAT, round robin (numgen inc mod 2); conntrack reverses the replies.
    Nft,
    /// HAProxy in TCP mode on the director (a proxy: real servers see the director's address).
    Haproxy,
    /// rvsd in masq mode, round robin, with its defaults (io_uring, TUN offloads).
    Rvs,
    /// The same with `rvsd --io sync`: the worker loop of a system call per packet (poll, read, write), to show
    /// what io_uring changes.
    #[value(name = "rvs-sync")]
    RvsSync,
    /// rvsd with one worker (`--workers 1`): on a machine where the clients and servers share the director's cores,
    /// one worker leaves them more CPU.
    #[value(name = "rvs-1w")]
    RvsOneWorker,
    /// rvsd with `--tx link`: forwarded packets leave through an AF_PACKET socket to the next hop's MAC instead of
    /// being written back into the TUN (no second forwarding pass).
    #[value(name = "rvs-link")]
    RvsLink,
    /// rvsd with `--fast-path xdp`: established connections forwarded by the XDP program on pub0 and priv0, the
    /// TUN for the rest (handshakes, closes).
    #[value(name = "rvs-xdp")]
    RvsXdp,
    /// rvsd with direct-routing real servers (`-g`): requests go unchanged to the real server's MAC; replies leave
    /// the real servers from the VIP (held on their lo) and are routed by the director's kernel, never by rvsd.
    #[value(name = "rvs-dr")]
    RvsDr,
    /// rvsd with tunnel real servers (`-i`, IPIP): requests go encapsulated (segmented first when offloaded);
    /// each real server runs `rvs-lab decap`; replies as with `rvs-dr`.
    #[value(name = "rvs-tun")]
    RvsTun,
}

impl PathKind {
    pub fn label(self) -> &'static str {
        match self {
            PathKind::Direct => "direct",
            PathKind::Nft => "kernel NAT",
            PathKind::Haproxy => "HAProxy",
            PathKind::Rvs => "rvs",
            PathKind::RvsSync => "rvs --io sync",
            PathKind::RvsOneWorker => "rvs --workers 1",
            PathKind::RvsLink => "rvs --tx link",
            PathKind::RvsXdp => "rvs --fast-path xdp",
            PathKind::RvsDr => "rvs DR (-g)",
            PathKind::RvsTun => "rvs TUN (-i)",
        }
    }

    /// One of the rvs variants.
    pub fn is_rvs(self) -> bool {
        matches!(
            self,
            PathKind::Rvs
                | PathKind::RvsSync
                | PathKind::RvsOneWorker
                | PathKind::RvsLink
                | PathKind::RvsXdp
                | PathKind::RvsDr
                | PathKind::RvsTun
        )
    }

    /// Where the client sends to on this path.
    fn target(self) -> &'static str {
        match self {
            PathKind::Direct => topo::RIPS[0],
            PathKind::Nft => topo::VIP_NFT,
            PathKind::Haproxy => topo::HAPROXY_ADDR,
            // Same VIP and client address as rvs: rvsd restarts in between, and the client's TCP timestamp
            // offset (per address pair) is the same, so no PAWS artefact between the two.
            PathKind::Rvs
            | PathKind::RvsSync
            | PathKind::RvsOneWorker
            | PathKind::RvsLink
            | PathKind::RvsXdp
            | PathKind::RvsDr
            | PathKind::RvsTun => topo::VIP_RVS,
        }
    }
}

/// What a path needs while it is up.
#[derive(Debug, Default)]
struct Active {
    daemon: Option<Daemon>,
    /// Helpers of the path (the tunnel real servers' decapsulators).
    helpers: Vec<Daemon>,
}

/// The lab with its permanent servers (nginx on both real servers, iperf3 on the first).
#[derive(Debug)]
pub struct Bench {
    pub prefix: String,
    duration: u32,
    threads: u32,
    connections: u32,
    udp_flows: usize,
    udp_size: usize,
    rvsd_args: Vec<String>,
    exe: PathBuf,
    rvs_bins: Result<(PathBuf, Option<PathBuf>), String>,
    /// Servers first so they are stopped before the namespaces go.
    servers: Vec<Daemon>,
    lab: Lab,
}

impl Bench {
    pub fn new(args: &Args) -> Result<Bench> {
        let prefix = format!("{NS_PREFIX}{}", std::process::id());
        let lab = Lab::up(&prefix)?;
        // Private copies: a rebuild of target/ during the run (other engineers, cargo run) must not change or
        // remove the binaries under measurement.
        let exe = private_copy(
            &std::env::current_exe().context("own executable")?,
            &lab.dir,
            "rvs-lab",
        )?;
        let rvs_bins = if args.paths.iter().any(|p| p.is_rvs()) {
            find_rvs_binaries(args.rvsd.as_deref(), args.rvsadm.as_deref())
                .and_then(|(d, a)| {
                    let a = match a {
                        Some(a) => Some(private_copy(&a, &lab.dir, "rvsadm")?),
                        None => None,
                    };
                    Ok((private_copy(&d, &lab.dir, "rvsd")?, a))
                })
                .map_err(|e| format!("{e:#}"))
        } else {
            Err("not requested".into())
        };
        let mut b = Bench {
            prefix,
            duration: args.duration,
            threads: args.threads,
            connections: args.connections,
            udp_flows: args.udp_flows,
            udp_size: args.udp_size,
            rvsd_args: args
                .rvsd_args
                .split_whitespace()
                .map(String::from)
                .collect(),
            exe,
            rvs_bins,
            servers: Vec::new(),
            lab,
        };
        b.start_servers(args.workloads.contains(&Workload::Bulk))?;
        Ok(b)
    }

    pub fn keep_logs(&mut self) {
        self.lab.keep_dir();
    }

    pub fn log_dir(&self) -> PathBuf {
        self.lab.dir.clone()
    }

    fn file(&self, name: &str) -> PathBuf {
        self.lab.dir.join(name)
    }

    fn start_servers(&mut self, bulk: bool) -> Result<()> {
        let dir = self.lab.dir.display().to_string();
        for (i, ns) in self.lab.rs.clone().iter().enumerate() {
            let conf = self.file(&format!("nginx-r{}.conf", i + 1));
            std::fs::write(
                &conf,
                format!(
                    "worker_processes 1;\nworker_rlimit_nofile 65536;\npid {dir}/nginx-r{n}.pid;\n\
                     error_log {dir}/nginx-r{n}.err warn;\n\
                     events {{ worker_connections 16384; multi_accept on; }}\n\
                     http {{\n  access_log off;\n  default_type text/plain;\n  keepalive_requests 100000000;\n  \
                     keepalive_timeout 120s;\n  server {{\n    listen {HTTP_PORT} backlog=8192;\n    \
                     location / {{ return 200 \"rvs bench ok\\n\"; }}\n  }}\n}}\n",
                    n = i + 1
                ),
            )?;
            let conf = conf.display().to_string();
            let err = format!("{dir}/nginx-r{}.err", i + 1);
            let argv = Lab::in_ns(
                ns,
                &[
                    "nginx",
                    "-p",
                    &dir,
                    "-e",
                    &err,
                    "-c",
                    &conf,
                    "-g",
                    "daemon off;",
                ],
            );
            let log = self.file(&format!("nginx-r{}.log", i + 1));
            self.servers.push(Daemon::spawn("nginx", &argv, &log, &[])?);
            wait_listening(ns, &format!(":{HTTP_PORT}"), self.servers.last_mut())
                .with_context(|| format!("nginx in {ns}"))?;
        }
        if bulk {
            let ns = self.lab.rs[0].clone();
            let argv = Lab::in_ns(&ns, &["iperf3", "-s", "-p", &BULK_PORT.to_string()]);
            let log = self.file("iperf3.log");
            self.servers
                .push(Daemon::spawn("iperf3", &argv, &log, &[])?);
            wait_listening(&ns, &format!(":{BULK_PORT}"), self.servers.last_mut())
                .context("iperf3 server")?;
        }
        Ok(())
    }

    /// One short HTTP run through the path (not counted).
    pub fn validate(&mut self, p: PathKind) -> Result<()> {
        let mut active = self.up(p)?;
        let r = self.wrk(p, 2, 1, false).and_then(|(w, _)| {
            if w.requests == 0 {
                bail!("no HTTP request completed");
            }
            Ok(())
        });
        self.down(p, &mut active);
        r
    }

    /// Brings the path up, runs the workload with CPU accounting, brings it down again.
    pub fn measure(&mut self, p: PathKind, w: Workload) -> Result<Sample> {
        let mut active = self.up(p)?;
        let pid = active.daemon.as_ref().and_then(Daemon::pid);
        let r = self.run(p, w, pid);
        let alive = match active.daemon.as_mut() {
            Some(d) => d.check_alive(),
            None => Ok(()),
        };
        self.down(p, &mut active);
        let s = r?;
        alive?;
        Ok(s)
    }

    fn run(&mut self, p: PathKind, w: Workload, pid: Option<u32>) -> Result<Sample> {
        match w {
            Workload::Keepalive | Workload::Newconn => {
                let m = Meter::start(pid);
                let (r, _) =
                    self.wrk(p, self.connections, self.duration, w == Workload::Newconn)?;
                Ok(m.finish(Sample {
                    value: r.requests_per_s,
                    p50_s: r.p50_s,
                    p99_s: r.p99_s,
                    ops: r.requests as f64,
                    ..Sample::default()
                }))
            }
            Workload::Udp => self.udp(p, pid),
            Workload::Bulk => self.bulk(p, pid),
        }
    }

    fn wrk(
        &self,
        p: PathKind,
        connections: u32,
        seconds: u32,
        close: bool,
    ) -> Result<(parse::WrkResult, String)> {
        let url = format!("http://{}:{HTTP_PORT}/", p.target());
        let threads = self.threads.min(connections).max(1).to_string();
        let conns = connections.to_string();
        let dur = format!("{seconds}s");
        let mut argv = vec![
            "wrk",
            "-t",
            &threads,
            "-c",
            &conns,
            "-d",
            &dur,
            "--timeout",
            "2s",
            "--latency",
        ];
        if close {
            argv.extend(["-H", "Connection: close"]);
        }
        argv.push(&url);
        let argv = Lab::in_ns(&self.lab.client, &argv);
        let o = sys::run_timeout(&argv, bound(seconds))?;
        let r = parse::parse_wrk(&o.stdout).with_context(|| {
            format!(
                "wrk gave no report ({}): {} {}",
                o.status,
                o.stdout.trim(),
                o.stderr.trim()
            )
        })?;
        if r.non_2xx > 0 {
            bail!("{} non-2xx responses", r.non_2xx);
        }
        if r.socket_errors * 100 > r.requests.max(1) {
            bail!(
                "{} socket errors for {} requests: {}",
                r.socket_errors,
                r.requests,
                o.stdout.trim()
            );
        }
        Ok((r, o.stdout))
    }

    fn udp(&mut self, p: PathKind, pid: Option<u32>) -> Result<Sample> {
        if p == PathKind::Haproxy {
            bail!("n/a (HAProxy has no UDP)");
        }
        let exe = self.exe.display().to_string();
        let secs = self.duration.to_string();
        let sink_secs = (self.duration + 8).to_string();
        let port = UDP_PORT.to_string();
        let mut sinks = Vec::new();
        for (i, ns) in self.lab.rs.iter().enumerate() {
            let log = self.file(&format!("udp-sink-r{}.log", i + 1));
            let _ = std::fs::remove_file(&log);
            let argv = Lab::in_ns(
                ns,
                &[
                    &exe,
                    "bench",
                    "__udp-sink",
                    "--port",
                    &port,
                    "--seconds",
                    &sink_secs,
                ],
            );
            sinks.push(Daemon::spawn("udp sink", &argv, &log, &[])?);
        }
        for s in &mut sinks {
            let deadline = Instant::now() + Duration::from_secs(5);
            while !std::fs::read_to_string(&s.log)
                .unwrap_or_default()
                .contains("ready")
            {
                s.check_alive()?;
                if Instant::now() > deadline {
                    bail!("UDP sink did not start");
                }
                thread::sleep(Duration::from_millis(20));
            }
        }
        let target = format!("{}:{UDP_PORT}", p.target());
        let flows = self.udp_flows.to_string();
        let size = self.udp_size.to_string();
        let argv = Lab::in_ns(
            &self.lab.client,
            &[
                &exe,
                "bench",
                "__udp-send",
                "--target",
                &target,
                "--seconds",
                &secs,
                "--flows",
                &flows,
                "--size",
                &size,
            ],
        );
        let m = Meter::start(pid);
        let o = sys::run_timeout(&argv, bound(self.duration))?;
        let m = m.stop();
        let (sent, send_secs) = udp::parse_sent(&o.stdout)
            .with_context(|| format!("UDP sender: {} {}", o.stdout.trim(), o.stderr.trim()))?;
        let mut received = 0;
        for s in &mut sinks {
            if !s.wait_timeout(Duration::from_secs(u64::from(self.duration) + 10))? {
                bail!("UDP sink did not finish");
            }
            received += udp::parse_received(&std::fs::read_to_string(&s.log)?)
                .with_context(|| format!("UDP sink: {}", sys::log_tail(&s.log)))?;
        }
        if received == 0 {
            bail!("no UDP datagram arrived");
        }
        Ok(m.finish(Sample {
            value: received as f64 / send_secs,
            ops: received as f64,
            sent: Some(sent),
            ..Sample::default()
        }))
    }

    fn bulk(&mut self, p: PathKind, pid: Option<u32>) -> Result<Sample> {
        let secs = self.duration.to_string();
        let port = BULK_PORT.to_string();
        let argv = Lab::in_ns(
            &self.lab.client,
            &["iperf3", "-c", p.target(), "-p", &port, "-t", &secs, "-J"],
        );
        let m = Meter::start(pid);
        let o = sys::run_timeout(&argv, bound(self.duration))?;
        let (bps, retransmits) = parse::parse_iperf3_json(&o.stdout).map_err(anyhow::Error::msg)?;
        Ok(m.finish(Sample {
            value: bps,
            retransmits,
            ops: bps * f64::from(self.duration) / 8.0,
            ..Sample::default()
        }))
    }

    fn up(&mut self, p: PathKind) -> Result<Active> {
        match p {
            PathKind::Direct => Ok(Active::default()),
            PathKind::Nft => {
                let file = self.file("nft.rules");
                let rips = format!("0 : {}, 1 : {}", topo::RIPS[0], topo::RIPS[1]);
                std::fs::write(
                    &file,
                    format!(
                        "table ip {NFT_TABLE} {{\n  chain pre {{\n    type nat hook prerouting priority dstnat; policy accept;\n    \
                         ip daddr {vip} tcp dport {HTTP_PORT} dnat to numgen inc mod 2 map {{ {rips} }}\n    \
                         ip daddr {vip} udp dport {UDP_PORT} dnat to numgen inc mod 2 map {{ {rips} }}\n    \
                         ip daddr {vip} tcp dport {BULK_PORT} dnat to {rs1}\n  }}\n}}\n",
                        vip = topo::VIP_NFT,
                        rs1 = topo::RIPS[0],
                    ),
                )?;
                let f = file.display().to_string();
                sh(&Lab::in_ns(&self.lab.director, &["nft", "-f", &f])
                    .iter()
                    .map(String::as_str)
                    .collect::<Vec<_>>())?;
                Ok(Active::default())
            }
            PathKind::Haproxy => {
                let cfg = self.file("haproxy.cfg");
                std::fs::write(
                    &cfg,
                    format!(
                        "global\n  maxconn 8000\n\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 60s\n  \
                         timeout server 60s\n\nfrontend http\n  bind {a}:{HTTP_PORT}\n  default_backend rs_http\n\n\
                         backend rs_http\n  balance roundrobin\n  server rs1 {r1}:{HTTP_PORT}\n  server rs2 {r2}:{HTTP_PORT}\n\n\
                         frontend bulk\n  bind {a}:{BULK_PORT}\n  default_backend rs_bulk\n\nbackend rs_bulk\n  \
                         server rs1 {r1}:{BULK_PORT}\n",
                        a = topo::HAPROXY_ADDR,
                        r1 = topo::RIPS[0],
                        r2 = topo::RIPS[1],
                    ),
                )?;
                let cfg = cfg.display().to_string();
                let argv = Lab::in_ns(&self.lab.director, &["haproxy", "-f", &cfg, "-db"]);
                let mut d = Daemon::spawn("haproxy", &argv, &self.file("haproxy.log"), &[])?;
                wait_listening(
                    &self.lab.director,
                    &format!("{}:{HTTP_PORT}", topo::HAPROXY_ADDR),
                    Some(&mut d),
                )?;
                Ok(Active {
                    daemon: Some(d),
                    helpers: Vec::new(),
                })
            }
            PathKind::Rvs => self.rvs_up(&[]),
            PathKind::RvsSync => self.rvs_up(&["--io", "sync"]),
            PathKind::RvsOneWorker => self.rvs_up(&["--workers", "1"]),
            PathKind::RvsLink => self.rvs_up(&["--tx", "link"]),
            PathKind::RvsXdp => self.rvs_up(&["--fast-path", "xdp"]),
            PathKind::RvsDr => self.rvs_up_method("-g", &[]),
            PathKind::RvsTun => {
                let mut helpers = Vec::new();
                for (i, r) in self.lab.rs.clone().iter().enumerate() {
                    let exe = self.exe.display().to_string();
                    let argv = Lab::in_ns(r, &[exe.as_str(), "decap"]);
                    helpers.push(Daemon::spawn(
                        "rvs-lab decap",
                        &argv,
                        &self.file(&format!("decap{}.log", i + 1)),
                        &[],
                    )?);
                }
                thread::sleep(Duration::from_millis(300));
                let mut a = self.rvs_up_method("-i", &[])?;
                a.helpers = helpers;
                Ok(a)
            }
        }
    }

    /// The virtual services, in `ipvsadm -S` form, loaded by rvsd at start (`--rules`), with real servers of
    /// forwarding method `flag` (`-m`, `-g`, `-i`).
    fn rvs_rules_with(flag: &str) -> String {
        let vip = topo::VIP_RVS;
        let [r1, r2] = topo::RIPS;
        format!(
            "-A -t {vip}:{HTTP_PORT} -s rr\n\
             -a -t {vip}:{HTTP_PORT} -r {r1}:{HTTP_PORT} {flag} -w 1\n\
             -a -t {vip}:{HTTP_PORT} -r {r2}:{HTTP_PORT} {flag} -w 1\n\
             -A -u {vip}:{UDP_PORT} -s rr\n\
             -a -u {vip}:{UDP_PORT} -r {r1}:{UDP_PORT} {flag} -w 1\n\
             -a -u {vip}:{UDP_PORT} -r {r2}:{UDP_PORT} {flag} -w 1\n\
             -A -t {vip}:{BULK_PORT} -s rr\n\
             -a -t {vip}:{BULK_PORT} -r {r1}:{BULK_PORT} {flag} -w 1\n"
        )
    }

    /// Start rvsd with the bench's rules and `extra` arguments (then `--rvsd-args`).
    fn rvs_up(&mut self, extra: &[&str]) -> Result<Active> {
        self.rvs_up_method("-m", extra)
    }

    /// [`rvs_up`](Self::rvs_up) with real servers of forwarding method `flag`.
    fn rvs_up_method(&mut self, flag: &str, extra: &[&str]) -> Result<Active> {
        let (rvsd, rvsadm) = self.rvs_bins.clone().map_err(anyhow::Error::msg)?;
        let sock = self.file("rvsd.sock");
        let _ = std::fs::remove_file(&sock);
        let rules = self.file("rvsd.rules");
        std::fs::write(&rules, Self::rvs_rules_with(flag))?;
        let rules = rules.display().to_string();
        let sock_s = sock.display().to_string();
        let bin = rvsd.display().to_string();
        let mut argv = vec![
            bin.as_str(),
            "--socket",
            &sock_s,
            "--rules",
            &rules,
            "--no-save",
            "--public-if",
            topo::PUBLIC_IF,
            "--private-if",
            topo::PRIVATE_IF,
            "--tun",
            TUN_NAME,
        ];
        argv.extend(extra);
        argv.extend(self.rvsd_args.iter().map(String::as_str));
        let argv = Lab::in_ns(&self.lab.director, &argv);
        let log = self.file("rvsd.log");
        let mut d = Daemon::spawn(
            "rvsd",
            &argv,
            &log,
            &[("RUST_LOG", "warn,rvsd::fastpath=info")],
        )?;
        // Ready when the control socket accepts (the rules are loaded before it opens).
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            d.check_alive()?;
            if std::os::unix::net::UnixStream::connect(&sock).is_ok() {
                break;
            }
            if Instant::now() > deadline {
                bail!("rvsd not ready after 10 s: {}", sys::log_tail(&log));
            }
            thread::sleep(Duration::from_millis(50));
        }
        if let Some(adm) = rvsadm {
            let env = format!("RVS_SOCKET={sock_s}");
            let adm = adm.display().to_string();
            let list = sh(&["env", &env, &adm, "-L", "-n"])
                .with_context(|| format!("rvsadm -L -n: {}", sys::log_tail(&log)))?;
            if !list.contains(&format!("{}:{HTTP_PORT}", topo::VIP_RVS)) {
                bail!("rvsd did not load the virtual services: {list}");
            }
        }
        d.check_alive()?;
        Ok(Active {
            daemon: Some(d),
            helpers: Vec::new(),
        })
    }

    fn down(&mut self, p: PathKind, active: &mut Active) {
        if let Some(d) = active.daemon.as_mut() {
            d.stop();
        }
        for h in &mut active.helpers {
            h.stop();
        }
        match p {
            PathKind::Nft => {
                let _ = sh(&Lab::in_ns(
                    &self.lab.director,
                    &["nft", "delete", "table", "ip", NFT_TABLE],
                )
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>());
            }
            PathKind::RvsXdp => {
                self.fast_path_share(p);
                self.rvs_leftovers()
            }
            PathKind::Rvs
            | PathKind::RvsSync
            | PathKind::RvsOneWorker
            | PathKind::RvsLink
            | PathKind::RvsDr
            | PathKind::RvsTun => {
                // `--rvsd-args "--fast-path xdp"` puts every rvs path on the fast path (DR and TUN beside NAT).
                if self.rvsd_args.iter().any(|a| a == "--fast-path") {
                    self.fast_path_share(p);
                }
                self.rvs_leftovers()
            }
            PathKind::Direct | PathKind::Haproxy => {}
        }
    }

    /// The share of packets the XDP program forwarded in the last measurement, from rvsd's last summary line
    /// (`fast path detached ... forwarded=N passed=M`), printed beside the figures.
    fn fast_path_share(&self, p: PathKind) {
        let raw = std::fs::read_to_string(self.file("rvsd.log")).unwrap_or_default();
        let log = strip_ansi(&raw);
        let Some(line) = log.lines().rev().find(|l| l.contains("fast path detached")) else {
            eprintln!("bench: {}: no fast-path summary in rvsd's log", p.label());
            return;
        };
        let field = |k: &str| -> u64 {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(k))
                .and_then(|v| v.trim_matches(|c: char| !c.is_ascii_digit()).parse().ok())
                .unwrap_or(0)
        };
        let (fwd, passed) = (field("forwarded="), field("passed="));
        let total = (fwd + passed).max(1);
        eprintln!(
            "bench: {}: {:.1} % of the packets on the fast path ({fwd} forwarded by XDP, {passed} passed up)",
            p.label(),
            100.0 * fwd as f64 / total as f64
        );
    }

    /// rvsd must remove its TUN, routes, rules and proxy neighbour on SIGTERM; anything left would distort the
    /// other paths, so it is removed here and reported.
    fn rvs_leftovers(&self) {
        let d = &self.lab.director;
        let mut left = Vec::new();
        if let Ok(rules) = sh(&["ip", "-n", d, "rule", "show"]) {
            for l in rules.lines() {
                let pref = l.split(':').next().unwrap_or("").trim();
                if !matches!(pref, "0" | "32766" | "32767") && !pref.is_empty() {
                    left.push(format!("rule {}", l.trim()));
                    let _ = sh(&["ip", "-n", d, "rule", "del", "pref", pref]);
                }
            }
        }
        if sh(&["ip", "-n", d, "link", "show", TUN_NAME]).is_ok() {
            left.push(format!("link {TUN_NAME}"));
            let _ = sh(&["ip", "-n", d, "link", "del", TUN_NAME]);
        }
        if let Ok(n) = sh(&["ip", "-n", d, "neigh", "show", "proxy"]) {
            for l in n.lines().filter(|l| !l.trim().is_empty()) {
                left.push(format!("proxy neigh {}", l.trim()));
                let mut argv = vec!["ip", "-n", d, "neigh", "del", "proxy"];
                argv.extend(l.split_whitespace().take(3));
                let _ = sh(&argv);
            }
        }
        if !left.is_empty() {
            eprintln!(
                "bench: WARNING rvsd left behind after SIGTERM (removed): {}",
                left.join("; ")
            );
        }
    }
}

/// The text without ANSI colour sequences (`ESC [ ... m`), as rvsd's log may carry them.
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c == '\u{1b}' {
            for c in it.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// CPU accounting around the load phase of a measurement: machine-wide busy and softirq time from /proc/stat,
/// and the director process's utime + stime.
#[derive(Debug, Clone, Copy)]
struct Meter {
    pid: Option<u32>,
    cpu0: Option<parse::CpuTimes>,
    proc0: Option<u64>,
    cpu1: Option<parse::CpuTimes>,
    proc1: Option<u64>,
}

impl Meter {
    fn start(pid: Option<u32>) -> Meter {
        Meter {
            pid,
            cpu0: sys::cpu_times(),
            proc0: pid.and_then(sys::process_ticks),
            cpu1: None,
            proc1: None,
        }
    }

    /// Takes the closing readings (before any post-processing of the measurement).
    fn stop(mut self) -> Meter {
        self.cpu1 = sys::cpu_times();
        self.proc1 = self.pid.and_then(sys::process_ticks);
        self
    }

    fn finish(self, mut s: Sample) -> Sample {
        let m = if self.cpu1.is_none() {
            self.stop()
        } else {
            self
        };
        if let (Some(a), Some(b)) = (m.cpu0, m.cpu1) {
            let d = b.since(&a);
            s.cpu_busy_s = d.busy as f64 / sys::CLOCK_TICKS;
            s.cpu_softirq_s = d.softirq as f64 / sys::CLOCK_TICKS;
        }
        if let (Some(a), Some(b)) = (m.proc0, m.proc1) {
            s.proc_s = Some(b.saturating_sub(a) as f64 / sys::CLOCK_TICKS);
        }
        s
    }
}

/// Waits (5 s at most) until something listens on a local address ending in `suffix` in `ns`.
fn wait_listening(ns: &str, suffix: &str, mut daemon: Option<&mut Daemon>) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(d) = daemon.as_deref_mut() {
            d.check_alive()?;
        }
        let out = sh(&["ip", "netns", "exec", ns, "ss", "-Hltn"]).unwrap_or_default();
        if out.lines().any(|l| {
            l.split_whitespace()
                .nth(3)
                .is_some_and(|a| a.ends_with(suffix))
        }) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("nothing listens on {suffix} in {ns} after 5 s");
        }
        thread::sleep(Duration::from_millis(30));
    }
}

fn private_copy(src: &Path, dir: &Path, name: &str) -> Result<PathBuf> {
    let dst = dir.join(name);
    std::fs::copy(src, &dst)
        .with_context(|| format!("copying {} to {}", src.display(), dst.display()))?;
    Ok(dst)
}

/// rvsd (required) and rvsadm (optional: only used to check the loaded services): given on the command line,
/// else next to this executable, else found or built by the lab's [`crate::bins::find`].
fn find_rvs_binaries(
    rvsd: Option<&Path>,
    rvsadm: Option<&Path>,
) -> Result<(PathBuf, Option<PathBuf>)> {
    let exe_dir = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf));
    let beside = |name: &str| {
        exe_dir
            .as_ref()
            .map(|d| d.join(name))
            .filter(|p| p.is_file())
    };
    let rvsd = rvsd.map(Path::to_path_buf).or_else(|| beside("rvsd"));
    let rvsadm = rvsadm.map(Path::to_path_buf).or_else(|| beside("rvsadm"));
    match (rvsd, rvsadm) {
        (Some(d), a) => Ok((d, a)),
        (None, a) => {
            let found = crate::bins::find().context("finding rvsd")?;
            Ok((found.rvsd, a.or(Some(found.rvsadm))))
        }
    }
}

/// Removes namespaces of earlier bench runs whose process is gone (e.g. killed with SIGKILL), with the
/// processes still inside them.
pub fn remove_stale_labs() {
    let Ok(list) = sh(&["ip", "netns", "list"]) else {
        return;
    };
    for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
        let Some(rest) = name.strip_prefix(NS_PREFIX) else {
            continue;
        };
        let Some(pid) = rest.split('-').next() else {
            continue;
        };
        if pid.parse::<u32>().is_err() || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        if let Ok(pids) = sh(&["ip", "netns", "pids", name]) {
            for p in pids.lines().filter_map(|p| p.trim().parse::<u32>().ok()) {
                sys::signal(p, "KILL");
            }
        }
        let _ = sh(&["ip", "netns", "del", name]);
        let _ = std::fs::remove_dir_all(std::env::temp_dir().join(format!("{NS_PREFIX}{pid}")));
        eprintln!("bench: removed stale namespace {name}");
    }
}
