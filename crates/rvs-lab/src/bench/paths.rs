//! The paths (direct, kernel NAT, HAProxy, rvs and its variants), brought up and down around each measurement in
//! the lab's topology ([`crate::lab`], [`Method::Mixed`] with every [`Comparison`]), and the workloads run over them.

use super::sys;
use super::{Args, Sample, Workload, bound, parse, udp};
use crate::bins::Binaries;
use crate::cmd::{self, Background, in_ns, run_bounded, run_checked};
use crate::error::{Context, LabError, Result};
use crate::lab::{self, Comparison, Lab, LabConfig, Method};
use clap::ValueEnum;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

pub const HTTP_PORT: u16 = 80;
pub const UDP_PORT: u16 = 5001;
pub const BULK_PORT: u16 = 5201;
const TUN_NAME: &str = "rvsb0";
const NFT_TABLE: &str = "rvsbench";
/// Bench labs are `rvsb<PID>` (namespaces `rvsb<PID>-client`, ...): a later run removes those of dead processes.
pub const NS_STEM: &str = "rvsb";

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
    /// TUN for the rest (handshakes, closes), whose forwarded packets leave on the link (`--tx link`, implied).
    #[value(name = "rvs-xdp")]
    RvsXdp,
    /// `rvs-xdp` with `--tx tun`: the slow path's forwarded packets written back into the TUN (the kernel's second
    /// forwarding pass), as before `--fast-path` implied `--tx link`.
    #[value(name = "rvs-xdp-tun")]
    RvsXdpTun,
    /// rvsd with direct-routing real servers (`-g`), on the TUN (slow) path: requests go unchanged to the real
    /// server's MAC; replies leave the real servers from the VIP (held on their lo) and are routed by the
    /// director's kernel, never by rvsd.
    #[value(name = "rvs-dr")]
    RvsDr,
    /// rvsd with tunnel real servers (`-i`, IPIP), on the TUN (slow) path: requests go encapsulated (segmented first
    /// when offloaded); each real server decapsulates with `rvs-lab decap`; replies as with `rvs-dr`.
    #[value(name = "rvs-tun")]
    RvsTun,
    /// `rvs-dr` with `--fast-path xdp` (the program rewrites the MAC and redirects).
    #[value(name = "rvs-dr-xdp")]
    RvsDrXdp,
    /// `rvs-tun` with `--fast-path xdp` (the program encapsulates and redirects).
    #[value(name = "rvs-tun-xdp")]
    RvsTunXdp,
}

/// How an rvs path runs rvsd: the real servers' forwarding method (`-m`, `-g`, `-i`) and rvsd's extra arguments.
#[derive(Debug, Clone, Copy)]
struct RvsSetup {
    method: &'static str,
    args: &'static [&'static str],
}

const FAST_PATH: &[&str] = &["--fast-path", "xdp"];

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
            PathKind::RvsXdpTun => "rvs --fast-path xdp --tx tun",
            PathKind::RvsDr => "rvs DR (-g)",
            PathKind::RvsTun => "rvs TUN (-i)",
            PathKind::RvsDrXdp => "rvs DR (-g) xdp",
            PathKind::RvsTunXdp => "rvs TUN (-i) xdp",
        }
    }

    /// rvsd's setup on an rvs path; `None` for the comparison paths.
    fn rvs_setup(self) -> Option<RvsSetup> {
        let (method, args): (&'static str, &'static [&'static str]) = match self {
            PathKind::Direct | PathKind::Nft | PathKind::Haproxy => return None,
            PathKind::Rvs => ("-m", &[]),
            PathKind::RvsSync => ("-m", &["--io", "sync"]),
            PathKind::RvsOneWorker => ("-m", &["--workers", "1"]),
            PathKind::RvsLink => ("-m", &["--tx", "link"]),
            PathKind::RvsXdp => ("-m", FAST_PATH),
            PathKind::RvsXdpTun => ("-m", &["--fast-path", "xdp", "--tx", "tun"]),
            PathKind::RvsDr => ("-g", &[]),
            PathKind::RvsTun => ("-i", &[]),
            PathKind::RvsDrXdp => ("-g", FAST_PATH),
            PathKind::RvsTunXdp => ("-i", FAST_PATH),
        };
        Some(RvsSetup { method, args })
    }

    /// One of the rvs variants.
    pub fn is_rvs(self) -> bool {
        self.rvs_setup().is_some()
    }

    /// Where the client sends to on this path. The rvs variants share the VIP and the client address: rvsd restarts
    /// in between, and the client's TCP timestamp offset (per address pair) is the same, so no PAWS artefact
    /// between them.
    fn target(self) -> String {
        match self {
            PathKind::Direct => Comparison::Direct.target(),
            PathKind::Nft => Comparison::KernelNat.target(),
            PathKind::Haproxy => Comparison::Proxy.target(),
            _ => lab::VIP,
        }
        .to_string()
    }
}

/// rvsd's log line saying it took over a connection table a previous rvsd handed over, if any.
fn took_over_a_table(log: &str) -> Option<String> {
    strip_ansi(log)
        .lines()
        .find(|l| l.contains("took over the connection table"))
        .map(|l| l.trim().to_string())
}

/// `Udp: RcvbufErrors` of the namespace (datagrams dropped because a socket's receive buffer was full).
fn udp_rcvbuf_errors(ns: &str) -> Option<u64> {
    let snmp = crate::cmd::cat_in(ns, "/proc/net/snmp").ok()?;
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp: "));
    let (names, values) = (udp.next()?, udp.next()?);
    let i = names.split_whitespace().position(|n| n == "RcvbufErrors")?;
    values.split_whitespace().nth(i)?.parse().ok()
}

/// What a path needs while it is up.
#[derive(Debug, Default)]
struct Active {
    /// HAProxy.
    proxy: Option<Background>,
    /// rvsd runs (started and stopped through the lab).
    rvsd: bool,
    /// rvsd was started with the fast path.
    fast_path: bool,
}

/// Runs `argv` (30 s bound) inside `ns`.
fn sh_in(ns: &str, argv: &[&str]) -> Result<String> {
    run_checked(&in_ns(ns, argv))
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
    /// Real servers of the HTTP service (1 or 2).
    http_servers: u8,
    rvsd_args: Vec<String>,
    exe: PathBuf,
    /// Why rvs paths cannot run, if they cannot (binaries not found).
    rvs_missing: Option<String>,
    /// Servers first so they are stopped before the namespaces go.
    servers: Vec<Background>,
    lab: Lab,
}

impl Bench {
    pub fn new(args: &Args) -> Result<Bench> {
        crate::manage::reap_stale_labs(NS_STEM);
        let prefix = format!("{NS_STEM}{}", std::process::id());
        let cfg = LabConfig {
            prefix: prefix.clone(),
            real_servers: 2,
            servers: false,
            rvsd: false,
            method: Method::Mixed,
            comparisons: Comparison::ALL.to_vec(),
            ..LabConfig::default()
        };
        let mut lab = Lab::up(cfg).context("building the lab")?;
        tune(&lab)?;
        let dir = lab.state_dir.clone();
        // Private copies: a rebuild of target/ during the run (other engineers, cargo run) must not change or
        // remove the binaries under measurement.
        let exe = private_copy(
            &std::env::current_exe().map_err(LabError::io("own executable"))?,
            &dir,
            "rvs-lab",
        )?;
        let mut rvs_missing = Some("not requested".to_string());
        if args.paths.iter().any(|p| p.is_rvs()) {
            match find_rvs_binaries(args.rvsd.as_deref(), args.rvsadm.as_deref()) {
                Ok((d, a)) => {
                    lab.set_binaries(Binaries {
                        rvsd: private_copy(&d, &dir, "rvsd")?,
                        rvsadm: private_copy(&a, &dir, "rvsadm")?,
                        rvs_lab: exe.clone(),
                    });
                    rvs_missing = None;
                }
                Err(e) => rvs_missing = Some(format!("{e:#}")),
            }
        }
        let mut b = Bench {
            prefix,
            duration: args.duration,
            threads: args.threads,
            connections: args.connections,
            udp_flows: args.udp_flows,
            udp_size: args.udp_size,
            http_servers: args.http_servers,
            rvsd_args: args
                .rvsd_args
                .split_whitespace()
                .map(String::from)
                .collect(),
            exe,
            rvs_missing,
            servers: Vec::new(),
            lab,
        };
        b.start_servers(args.workloads.contains(&Workload::Bulk))?;
        Ok(b)
    }

    pub fn keep_logs(&mut self) {
        self.lab.keep_state_dir();
    }

    pub fn log_dir(&self) -> PathBuf {
        self.lab.state_dir.clone()
    }

    fn file(&self, name: &str) -> PathBuf {
        self.lab.state_dir.join(name)
    }

    fn start_servers(&mut self, bulk: bool) -> Result<()> {
        let dir = self.lab.state_dir.display().to_string();
        for (i, ns) in [self.lab.rs(1), self.lab.rs(2)].iter().enumerate() {
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
            )
            .map_err(LabError::io(format!("writing {}", conf.display())))?;
            let conf = conf.display().to_string();
            let err = format!("{dir}/nginx-r{}.err", i + 1);
            let argv = in_ns(
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
            self.servers.push(Background::spawn("nginx", &argv, &log)?);
            wait_listening(ns, &format!(":{HTTP_PORT}"), self.servers.last_mut())
                .with_context(|| format!("nginx in {ns}"))?;
        }
        if bulk {
            let ns = self.lab.rs(1);
            let argv = in_ns(&ns, &["iperf3", "-s", "-p", &BULK_PORT.to_string()]);
            let log = self.file("iperf3.log");
            self.servers.push(Background::spawn("iperf3", &argv, &log)?);
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
                return Err(LabError::Check("no HTTP request completed".into()));
            }
            Ok(())
        });
        self.down(p, &mut active);
        r
    }

    /// Brings the path up, runs the workload with CPU accounting, brings it down again.
    pub fn measure(&mut self, p: PathKind, w: Workload) -> Result<Sample> {
        let mut active = self.up(p)?;
        let pid = match &active.proxy {
            Some(d) => d.pid(),
            None if active.rvsd => self.lab.rvsd_pid(),
            None => None,
        };
        let r = self.run(p, w, pid);
        let alive = match active.proxy.as_mut() {
            Some(d) => d.check_alive(),
            None if active.rvsd => match self.lab.proc_exited("rvsd") {
                Some(status) => {
                    active.rvsd = false;
                    Err(LabError::Process {
                        what: format!("rvsd exited ({status}): {}", self.lab.rvsd_log_text()),
                    })
                }
                None => Ok(()),
            },
            None => Ok(()),
        };
        let fast_path = self.down(p, &mut active);
        let mut s = r?;
        alive?;
        s.fast_path = fast_path;
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
        let argv = in_ns(&self.lab.client(), &argv);
        let o = run_bounded(&argv, bound(seconds))?;
        let r = parse::parse_wrk(&o.stdout).ok_or_else(|| {
            LabError::Check(format!(
                "wrk gave no report ({}): {} {}",
                o.status,
                o.stdout.trim(),
                o.stderr.trim()
            ))
        })?;
        if r.non_2xx > 0 {
            return Err(LabError::Check(format!("{} non-2xx responses", r.non_2xx)));
        }
        if r.socket_errors * 100 > r.requests.max(1) {
            return Err(LabError::Check(format!(
                "{} socket errors for {} requests: {}",
                r.socket_errors,
                r.requests,
                o.stdout.trim()
            )));
        }
        Ok((r, o.stdout))
    }

    fn udp(&mut self, p: PathKind, pid: Option<u32>) -> Result<Sample> {
        if p == PathKind::Haproxy {
            return Err(LabError::Check("n/a (HAProxy has no UDP)".into()));
        }
        let exe = self.exe.display().to_string();
        let secs = self.duration.to_string();
        let sink_secs = (self.duration + 8).to_string();
        let port = UDP_PORT.to_string();
        let mut sinks = Vec::new();
        for (i, ns) in [self.lab.rs(1), self.lab.rs(2)].iter().enumerate() {
            let log = self.file(&format!("udp-sink-r{}.log", i + 1));
            let _ = std::fs::remove_file(&log);
            let argv = in_ns(
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
            sinks.push(Background::spawn("udp sink", &argv, &log)?);
        }
        for s in &mut sinks {
            let deadline = Instant::now() + Duration::from_secs(5);
            while !std::fs::read_to_string(&s.log)
                .unwrap_or_default()
                .contains("ready")
            {
                s.check_alive()?;
                if Instant::now() > deadline {
                    return Err(LabError::Process {
                        what: "UDP sink did not start".into(),
                    });
                }
                thread::sleep(Duration::from_millis(20));
            }
        }
        let target = format!("{}:{UDP_PORT}", p.target());
        let flows = self.udp_flows.to_string();
        let size = self.udp_size.to_string();
        let argv = in_ns(
            &self.lab.client(),
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
        let rs = [self.lab.rs(1), self.lab.rs(2)];
        let drops0: Option<u64> = rs.iter().map(|ns| udp_rcvbuf_errors(ns)).sum();
        let m = Meter::start(pid);
        let o = run_bounded(&argv, bound(self.duration))?;
        let m = m.stop();
        let (sent, send_secs) = udp::parse_sent(&o.stdout).ok_or_else(|| {
            LabError::Check(format!(
                "UDP sender: {} {}",
                o.stdout.trim(),
                o.stderr.trim()
            ))
        })?;
        let mut received = 0;
        for s in &mut sinks {
            if !s.wait_timeout(Duration::from_secs(u64::from(self.duration) + 10))? {
                return Err(LabError::Process {
                    what: "UDP sink did not finish".into(),
                });
            }
            let out = std::fs::read_to_string(&s.log)
                .map_err(LabError::io(format!("reading {}", s.log.display())))?;
            received += udp::parse_received(&out).ok_or_else(|| {
                LabError::Check(format!("UDP sink: {}", cmd::log_tail(&s.log, 8, " | ")))
            })?;
        }
        if received == 0 {
            return Err(LabError::Check("no UDP datagram arrived".into()));
        }
        let drops1: Option<u64> = rs.iter().map(|ns| udp_rcvbuf_errors(ns)).sum();
        Ok(m.finish(Sample {
            value: received as f64 / send_secs,
            ops: received as f64,
            sent: Some(sent),
            sink_drops: drops0.zip(drops1).map(|(a, b)| b.saturating_sub(a)),
            ..Sample::default()
        }))
    }

    fn bulk(&mut self, p: PathKind, pid: Option<u32>) -> Result<Sample> {
        let secs = self.duration.to_string();
        let port = BULK_PORT.to_string();
        let target = p.target();
        let argv = in_ns(
            &self.lab.client(),
            &["iperf3", "-c", &target, "-p", &port, "-t", &secs, "-J"],
        );
        let m = Meter::start(pid);
        let o = run_bounded(&argv, bound(self.duration))?;
        let (bps, retransmits) = parse::parse_iperf3_json(&o.stdout).map_err(LabError::Check)?;
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
                let rips = format!("0 : {}, 1 : {}", lab::rip(1), lab::rip(2));
                let http = if self.http_servers == 1 {
                    lab::rip(1).to_string()
                } else {
                    format!("numgen inc mod 2 map {{ {rips} }}")
                };
                std::fs::write(
                    &file,
                    format!(
                        "table ip {NFT_TABLE} {{\n  chain pre {{\n    type nat hook prerouting priority dstnat; policy accept;\n    \
                         ip daddr {vip} tcp dport {HTTP_PORT} dnat to {http}\n    \
                         ip daddr {vip} udp dport {UDP_PORT} dnat to numgen inc mod 2 map {{ {rips} }}\n    \
                         ip daddr {vip} tcp dport {BULK_PORT} dnat to {rs1}\n  }}\n}}\n",
                        vip = Comparison::KernelNat.target(),
                        rs1 = lab::rip(1),
                    ),
                )
                .map_err(LabError::io(format!("writing {}", file.display())))?;
                let f = file.display().to_string();
                sh_in(&self.lab.director(), &["nft", "-f", &f])?;
                Ok(Active::default())
            }
            PathKind::Haproxy => {
                let cfg = self.file("haproxy.cfg");
                std::fs::write(
                    &cfg,
                    format!(
                        "global\n  maxconn 8000\n\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 60s\n  \
                         timeout server 60s\n\nfrontend http\n  bind {a}:{HTTP_PORT}\n  default_backend rs_http\n\n\
                         backend rs_http\n  balance roundrobin\n  server rs1 {r1}:{HTTP_PORT}\n{rs2}\n\
                         frontend bulk\n  bind {a}:{BULK_PORT}\n  default_backend rs_bulk\n\nbackend rs_bulk\n  \
                         server rs1 {r1}:{BULK_PORT}\n",
                        a = Comparison::Proxy.target(),
                        r1 = lab::rip(1),
                        rs2 = if self.http_servers == 1 {
                            String::new()
                        } else {
                            format!("  server rs2 {}:{HTTP_PORT}\n", lab::rip(2))
                        },
                    ),
                )
                .map_err(LabError::io(format!("writing {}", cfg.display())))?;
                let cfg = cfg.display().to_string();
                let argv = in_ns(&self.lab.director(), &["haproxy", "-f", &cfg, "-db"]);
                let mut d = Background::spawn("haproxy", &argv, &self.file("haproxy.log"))?;
                wait_listening(
                    &self.lab.director(),
                    &format!("{}:{HTTP_PORT}", Comparison::Proxy.target()),
                    Some(&mut d),
                )?;
                Ok(Active {
                    proxy: Some(d),
                    ..Active::default()
                })
            }
            _ => match p.rvs_setup() {
                Some(setup) => self.rvs_up(setup),
                None => Err(LabError::Process {
                    what: format!("{} is not an rvs path", p.label()),
                }),
            },
        }
    }

    /// The virtual services, in `ipvsadm -S` form, loaded by rvsd at start (`--rules`), with real servers of
    /// forwarding method `flag` (`-m`, `-g`, `-i`).
    fn rvs_rules_with(flag: &str, http_servers: u8) -> String {
        let vip = lab::VIP;
        let (r1, r2) = (lab::rip(1), lab::rip(2));
        let http2 = if http_servers == 1 {
            String::new()
        } else {
            format!("-a -t {vip}:{HTTP_PORT} -r {r2}:{HTTP_PORT} {flag} -w 1\n")
        };
        format!(
            "-A -t {vip}:{HTTP_PORT} -s rr\n\
             -a -t {vip}:{HTTP_PORT} -r {r1}:{HTTP_PORT} {flag} -w 1\n\
             {http2}\
             -A -u {vip}:{UDP_PORT} -s rr\n\
             -a -u {vip}:{UDP_PORT} -r {r1}:{UDP_PORT} {flag} -w 1\n\
             -a -u {vip}:{UDP_PORT} -r {r2}:{UDP_PORT} {flag} -w 1\n\
             -A -t {vip}:{BULK_PORT} -s rr\n\
             -a -t {vip}:{BULK_PORT} -r {r1}:{BULK_PORT} {flag} -w 1\n"
        )
    }

    /// Starts the lab's rvsd with the bench's rules, the path's arguments, then `--rvsd-args`.
    fn rvs_up(&mut self, setup: RvsSetup) -> Result<Active> {
        if let Some(why) = &self.rvs_missing {
            return Err(LabError::Process { what: why.clone() });
        }
        std::fs::write(
            self.lab.rules(),
            Self::rvs_rules_with(setup.method, self.http_servers),
        )
        .map_err(LabError::io("writing the bench's rules"))?;
        // --restart-hold 0: every path starts with an empty connection table. With a hold, a stop hands the table
        // to an rvsd started within it, so the next path took over the previous one's connections (tens of
        // thousands in TIME_WAIT, bound to that path's forwarding method) and the client's reused 4-tuples went
        // the old way: newconn stalled (2026-12-02 22:03, masq and DR with the fast path after TUN: 15-23
        // connections/s, then wrk hung).
        let mut args: Vec<String> = ["--no-save", "--tun", TUN_NAME, "--restart-hold", "0"]
            .iter()
            .chain(setup.args)
            .map(|s| s.to_string())
            .collect();
        args.extend(self.rvsd_args.iter().cloned());
        let fast_path = args.iter().any(|a| a == "--fast-path");
        self.lab.cfg.rvsd_args = args;
        let log_start = std::fs::metadata(self.lab.rvsd_log()).map_or(0, |m| m.len());
        self.lab.start_rvsd().context("starting rvsd")?;
        let list = self
            .lab
            .rvsadm(&["-L", "-n"])
            .with_context(|| format!("rvsadm -L -n: {}", self.lab.rvsd_log_text()))?;
        if !list.contains(&format!("{}:{HTTP_PORT}", lab::VIP)) {
            return Err(LabError::Process {
                what: format!("rvsd did not load the virtual services: {list}"),
            });
        }
        let log = std::fs::read(self.lab.rvsd_log()).unwrap_or_default();
        let this_run = String::from_utf8_lossy(log.get(log_start as usize..).unwrap_or_default());
        if let Some(line) = took_over_a_table(&this_run) {
            return Err(LabError::Process {
                what: format!(
                    "rvsd did not start empty (a path must not inherit the previous one's connections): {line}"
                ),
            });
        }
        Ok(Active {
            proxy: None,
            rvsd: true,
            fast_path,
        })
    }

    /// Brings the path down; on the fast path, returns what rvsd's exit line says the program did.
    fn down(&mut self, p: PathKind, active: &mut Active) -> Option<FastPathCount> {
        if let Some(d) = active.proxy.as_mut() {
            d.stop();
        }
        if p == PathKind::Nft {
            let _ = sh_in(
                &self.lab.director(),
                &["nft", "delete", "table", "ip", NFT_TABLE],
            );
        }
        if !p.is_rvs() {
            return None;
        }
        if active.rvsd {
            if let Err(e) = self.lab.stop_rvsd() {
                eprintln!("bench: stopping rvsd: {e}");
            }
            active.rvsd = false;
        }
        let count = if active.fast_path {
            self.fast_path_share(p)
        } else {
            None
        };
        self.rvs_leftovers();
        count
    }

    /// The share of packets the XDP program forwarded in the last measurement, from rvsd's last summary line
    /// (`fast path detached ... forwarded=N passed=M`), printed beside the figures.
    fn fast_path_share(&self, p: PathKind) -> Option<FastPathCount> {
        let raw = std::fs::read_to_string(self.lab.rvsd_log()).unwrap_or_default();
        let log = strip_ansi(&raw);
        let Some(line) = log.lines().rev().find(|l| l.contains("fast path detached")) else {
            eprintln!("bench: {}: no fast-path summary in rvsd's log", p.label());
            return None;
        };
        let field = |k: &str| -> u64 {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(k))
                .and_then(|v| v.trim_matches(|c: char| !c.is_ascii_digit()).parse().ok())
                .unwrap_or(0)
        };
        let c = FastPathCount {
            forwarded: field("forwarded="),
            passed: field("passed="),
        };
        eprintln!(
            "bench: {}: {:.1} % of the packets on the fast path ({} forwarded by XDP, {} passed up)",
            p.label(),
            100.0 * c.share(),
            c.forwarded,
            c.passed
        );
        Some(c)
    }

    /// rvsd must remove its TUN, routes, rules and proxy neighbour on SIGTERM; anything left would distort the
    /// other paths, so it is removed here and reported.
    fn rvs_leftovers(&self) {
        let d = self.lab.director();
        let ip = |args: &[&str]| self.lab.ip(&d, args);
        let mut left = Vec::new();
        if let Ok(rules) = ip(&["rule", "show"]) {
            for l in rules.lines() {
                let pref = l.split(':').next().unwrap_or("").trim();
                if !matches!(pref, "0" | "32766" | "32767") && !pref.is_empty() {
                    left.push(format!("rule {}", l.trim()));
                    let _ = ip(&["rule", "del", "pref", pref]);
                }
            }
        }
        if ip(&["link", "show", TUN_NAME]).is_ok() {
            left.push(format!("link {TUN_NAME}"));
            let _ = ip(&["link", "del", TUN_NAME]);
        }
        if let Ok(n) = ip(&["neigh", "show", "proxy"]) {
            for l in n.lines().filter(|l| !l.trim().is_empty()) {
                left.push(format!("proxy neigh {}", l.trim()));
                let mut argv = vec!["neigh", "del", "proxy"];
                argv.extend(l.split_whitespace().take(3));
                let _ = ip(&argv);
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

/// What the XDP program did during one measurement (rvsd's exit line).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FastPathCount {
    pub forwarded: u64,
    pub passed: u64,
}

impl FastPathCount {
    /// Forwarded / all the program saw.
    pub fn share(&self) -> f64 {
        self.forwarded as f64 / (self.forwarded + self.passed).max(1) as f64
    }
}

/// The bench's settings on top of the lab: deep accept queues on the servers, the whole port range and TIME_WAIT
/// reuse for the client and the director (new connections at tens of thousands a second), and a permanent
/// neighbour entry for the VIP on the client (rvsd answers ARP for it by proxy, but stops and starts between
/// measurements: the client must not depend on that detail).
fn tune(lab: &Lab) -> Result<()> {
    let set = |ns: String, kv: &'static [(&'static str, &'static str)]| {
        crate::netns::run_in(&ns, move || {
            kv.iter()
                .try_for_each(|(k, v)| crate::netns::write_sysctl(k, v))
        })
        .with_context(|| format!("sysctls in {ns}"))
    };
    for i in 1..=2 {
        set(
            lab.rs(i),
            &[
                ("net.core.somaxconn", "8192"),
                ("net.ipv4.tcp_max_syn_backlog", "8192"),
            ],
        )?;
    }
    for ns in [lab.client(), lab.director()] {
        set(
            ns,
            &[
                ("net.ipv4.ip_local_port_range", "1024 65535"),
                ("net.ipv4.tcp_tw_reuse", "1"),
            ],
        )?;
    }
    set(lab.director(), &[("net.core.somaxconn", "8192")])?;
    let link = lab.ip(&lab.director(), &["-br", "link", "show", lab::PUBLIC_IF])?;
    let mac = link
        .split_whitespace()
        .nth(2)
        .ok_or_else(|| LabError::Check("no MAC address on pub0".into()))?
        .to_string();
    let vip = lab::VIP.to_string();
    lab.ip(
        &lab.client(),
        &[
            "neigh",
            "replace",
            &vip,
            "lladdr",
            &mac,
            "dev",
            lab::HOST_IF,
            "nud",
            "permanent",
        ],
    )?;
    Ok(())
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
fn wait_listening(ns: &str, suffix: &str, mut daemon: Option<&mut Background>) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(d) = daemon.as_deref_mut() {
            d.check_alive()?;
        }
        let out = sh_in(ns, &["ss", "-Hltn"]).unwrap_or_default();
        if out.lines().any(|l| {
            l.split_whitespace()
                .nth(3)
                .is_some_and(|a| a.ends_with(suffix))
        }) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(LabError::Timeout {
                what: format!("nothing listens on {suffix} in {ns}"),
                ms: 5000,
            });
        }
        thread::sleep(Duration::from_millis(30));
    }
}

fn private_copy(src: &Path, dir: &Path, name: &str) -> Result<PathBuf> {
    let dst = dir.join(name);
    std::fs::copy(src, &dst).map_err(LabError::io(format!(
        "copying {} to {}",
        src.display(),
        dst.display()
    )))?;
    Ok(dst)
}

/// rvsd and rvsadm: given on the command line, else next to this executable, else found or built by the lab's
/// [`crate::bins::find`].
fn find_rvs_binaries(rvsd: Option<&Path>, rvsadm: Option<&Path>) -> Result<(PathBuf, PathBuf)> {
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
        (Some(d), Some(a)) => Ok((d, a)),
        (d, a) => {
            let found = crate::bins::find().context("finding rvsd and rvsadm")?;
            Ok((d.unwrap_or(found.rvsd), a.unwrap_or(found.rvsadm)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_start_that_took_over_a_table_is_seen() {
        // rvsd's own lines (2026-12-02 22:03, a bench run before --restart-hold 0), colours and all.
        let took = "2026-12-02T22:03:28.697294Z \u{1b}[32m INFO\u{1b}[0m rvsd::handover: took over the connection \
                    table handed over by the previous rvsd conns=25620 templates=0 skipped=0 age_ms=4345\n";
        let fresh = "2026-12-02T22:03:28.661390Z  INFO rvsd: rules loaded path=/tmp/x/rules ops=8\n\
                     2026-12-02T22:03:28.838300Z  INFO rvsd: rvsd ready tun=\"rvsb0\" workers=2\n";
        let line = took_over_a_table(&format!("{fresh}{took}")).expect("seen");
        assert!(
            line.contains("conns=25620") && !line.contains('\u{1b}'),
            "{line}"
        );
        assert_eq!(took_over_a_table(fresh), None);
    }
}
