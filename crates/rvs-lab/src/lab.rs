//! The LVS-NAT picture in network namespaces.
//!
//! ```text
//!   client ns                 director ns                                   real-server ns (one per RS)
//!  +---------------+        +-------------------------------------+        +------------------------------+
//!  | eth0          |--veth--| pub0  198.51.100.1/24               |        | eth0 203.0.113.11/24 (rs1)   |
//!  | 198.51.100.10 |        |       VIP 198.51.100.100 (rvsd)     |        | default via 203.0.113.1      |
//!  | default via   |        | priv0 203.0.113.1/24 (DIP; bridge)  |--veth--| HTTP :80, UDP echo :53       |
//!  | 198.51.100.1  |        |   ports rs1, rs2, ...               |--veth--| eth0 203.0.113.12/24 (rs2)...|
//!  +---------------+        +-------------------------------------+        +------------------------------+
//! ```
//!
//! Every `ip` command is confined to a lab namespace (`ip -n NS ...`); nothing touches the root namespace's
//! interfaces, routes or rules. Everything is registered with [`crate::cleanup`] and removed on drop.

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::bins::Binaries;
use crate::cleanup::{Guard, Proc, StopSignal};
use crate::cmd::{ip, ip_in};
use crate::error::{LabError, Result};
use crate::netns;

/// The client's address (CIP).
pub const CIP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);
/// The director's public address.
pub const PUBLIC_IP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
/// The virtual IP the services live on.
pub const VIP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 100);
/// The director's private address, the real servers' gateway.
pub const DIP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
/// Port of the real servers' HTTP server.
pub const HTTP_PORT: u16 = 80;
/// Port of the real servers' UDP echo server.
pub const UDP_PORT: u16 = 53;
/// The two /24s the lab uses.
pub const RANGES: [(Ipv4Addr, u8); 2] = [
    (Ipv4Addr::new(198, 51, 100, 0), 24),
    (Ipv4Addr::new(203, 0, 113, 0), 24),
];
/// Most real servers a lab can have (RIPs .11 to .210).
pub const MAX_REAL_SERVERS: usize = 200;
/// The director's public and private interfaces (names inside the director namespace).
pub const PUBLIC_IF: &str = "pub0";
pub const PRIVATE_IF: &str = "priv0";
/// The client's and each real server's interface.
pub const HOST_IF: &str = "eth0";

/// RIP of real server `i` (1-based): 203.0.113.(10 + i).
pub fn rip(i: usize) -> Ipv4Addr {
    let last = u8::try_from(10 + i.min(MAX_REAL_SERVERS)).unwrap_or(u8::MAX);
    Ipv4Addr::new(203, 0, 113, last)
}

/// VIP:port.
pub fn vip(port: u16) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(VIP, port))
}

/// How to build a lab.
#[derive(Debug, Clone)]
pub struct LabConfig {
    /// Namespace names are `PREFIX-client`, `PREFIX-director`, `PREFIX-rs1`, ...
    pub prefix: String,
    pub real_servers: usize,
    /// Start `rvs-lab serve` in each real-server namespace.
    pub servers: bool,
    /// Start rvsd in the director namespace.
    pub rvsd: bool,
    /// Where the rvsd socket, rules file and logs live; a fresh temp dir when `None`.
    pub state_dir: Option<PathBuf>,
    /// Extra arguments for rvsd.
    pub rvsd_args: Vec<String>,
}

impl Default for LabConfig {
    fn default() -> Self {
        LabConfig {
            prefix: "rvs".into(),
            real_servers: 2,
            servers: true,
            rvsd: true,
            state_dir: None,
            rvsd_args: vec![],
        }
    }
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl LabConfig {
    /// A configuration with a prefix unique to this process and call (for tests running in parallel).
    pub fn unique(tag: &str) -> LabConfig {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        LabConfig {
            prefix: format!("rvst{}-{n}{tag}", std::process::id()),
            ..LabConfig::default()
        }
    }
}

/// Namespace names of a lab with `prefix`.
pub fn ns_names(prefix: &str, real_servers: usize) -> Vec<String> {
    let mut v = vec![format!("{prefix}-client"), format!("{prefix}-director")];
    v.extend((1..=real_servers).map(|i| format!("{prefix}-rs{i}")));
    v
}

/// Parses `a.b.c.d/len` tokens after `inet` in `ip -o addr` output.
pub fn parse_inet_addrs(text: &str) -> Vec<(Ipv4Addr, u8)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut it = line.split_whitespace();
        while let Some(tok) = it.next() {
            if tok == "inet"
                && let Some((a, l)) = it.next().and_then(|s| s.split_once('/'))
                && let (Ok(a), Ok(l)) = (a.parse(), l.parse())
            {
                out.push((a, l));
            }
        }
    }
    out
}

fn range_of(a: Ipv4Addr, len: u8) -> (u32, u32) {
    let len = len.min(32);
    let mask = if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len))
    };
    let start = u32::from(a) & mask;
    (start, start | !mask)
}

/// True when the two networks share any address.
pub fn overlaps(a: (Ipv4Addr, u8), b: (Ipv4Addr, u8)) -> bool {
    let (a0, a1) = range_of(a.0, a.1);
    let (b0, b1) = range_of(b.0, b.1);
    a0 <= b1 && b0 <= a1
}

/// Checks that we are root, that `ip` works, and that no address of the current (root) namespace overlaps the lab's
/// ranges (read-only `ip -o addr`).
pub fn preflight() -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(LabError::NotRoot);
    }
    let text = ip(&["-o", "-4", "addr", "show"])?;
    for (a, l) in parse_inet_addrs(&text) {
        for r in RANGES {
            if overlaps((a, l), r) {
                return Err(LabError::Overlap {
                    addr: format!("{a}/{l}"),
                    range: format!("{}/{}", r.0, r.1),
                });
            }
        }
    }
    Ok(())
}

/// A running lab. Dropping it removes everything it created.
#[derive(Debug)]
pub struct Lab {
    pub cfg: LabConfig,
    pub state_dir: PathBuf,
    guard: Guard,
    bins: Option<Binaries>,
    lab_exe: PathBuf,
}

impl Lab {
    /// Builds the topology, starts the servers and rvsd as configured.
    pub fn up(cfg: LabConfig) -> Result<Lab> {
        if cfg.real_servers == 0 || cfg.real_servers > MAX_REAL_SERVERS {
            return Err(LabError::Invalid(format!(
                "real servers must be 1..={MAX_REAL_SERVERS}"
            )));
        }
        if cfg.prefix.is_empty()
            || !cfg
                .prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(LabError::Invalid(format!(
                "prefix {:?}: use letters, digits, - and _",
                cfg.prefix
            )));
        }
        preflight()?;
        let names = ns_names(&cfg.prefix, cfg.real_servers);
        if let Some(ns) = names.iter().find(|n| netns::exists(n)) {
            return Err(LabError::StillUp {
                prefix: cfg.prefix.clone(),
                what: format!("namespace {ns}"),
            });
        }
        let bins = if cfg.rvsd {
            Some(crate::bins::find()?)
        } else {
            None
        };
        let lab_exe = match &bins {
            Some(b) => b.rvs_lab.clone(),
            None => crate::bins::find_lab()?,
        };
        let guard = Guard::new();
        let state_dir = match &cfg.state_dir {
            Some(d) => d.clone(),
            None => std::env::temp_dir().join(format!("rvs-lab-{}", cfg.prefix)),
        };
        if state_dir.exists() {
            std::fs::remove_dir_all(&state_dir)
                .map_err(LabError::io(format!("clearing {}", state_dir.display())))?;
        }
        std::fs::create_dir_all(&state_dir)
            .map_err(LabError::io(format!("creating {}", state_dir.display())))?;
        guard.add_dir(state_dir.clone());
        let mut lab = Lab {
            cfg,
            state_dir,
            guard,
            bins,
            lab_exe,
        };
        lab.build_topology()?;
        if lab.cfg.servers {
            lab.start_servers()?;
        }
        if lab.cfg.rvsd {
            lab.start_rvsd()?;
        }
        Ok(lab)
    }

    /// The client namespace.
    pub fn client(&self) -> String {
        format!("{}-client", self.cfg.prefix)
    }
    /// The director namespace.
    pub fn director(&self) -> String {
        format!("{}-director", self.cfg.prefix)
    }
    /// Real server `i`'s namespace (1-based).
    pub fn rs(&self, i: usize) -> String {
        format!("{}-rs{i}", self.cfg.prefix)
    }
    /// All namespaces.
    pub fn namespaces(&self) -> Vec<String> {
        ns_names(&self.cfg.prefix, self.cfg.real_servers)
    }
    /// rvsd's control socket.
    pub fn socket(&self) -> PathBuf {
        self.state_dir.join("rvsd.sock")
    }
    /// rvsd's rules file.
    pub fn rules(&self) -> PathBuf {
        self.state_dir.join("rules")
    }
    /// rvsd's log.
    pub fn rvsd_log(&self) -> PathBuf {
        self.state_dir.join("rvsd.log")
    }
    /// The binaries (when rvsd is part of this lab).
    pub fn binaries(&self) -> Option<&Binaries> {
        self.bins.as_ref()
    }

    fn build_topology(&mut self) -> Result<()> {
        let (client, director) = (self.client(), self.director());
        for ns in self.namespaces() {
            ip(&["netns", "add", ns.as_str()])?;
            self.guard.add_namespace(&ns);
            ip_in(&ns, &["link", "set", "lo", "up"])?;
        }
        for ns in
            std::iter::once(client.clone()).chain((1..=self.cfg.real_servers).map(|i| self.rs(i)))
        {
            netns::run_in(&ns, || {
                netns::write_sysctl("net.ipv6.conf.all.disable_ipv6", "1")?;
                netns::write_sysctl("net.ipv6.conf.default.disable_ipv6", "1")
            })?;
        }
        netns::run_in(&director, || {
            netns::write_sysctl("net.ipv4.ip_forward", "1")
        })?;

        // Public side.
        ip_in(
            &director,
            &[
                "link", "add", PUBLIC_IF, "type", "veth", "peer", "name", HOST_IF, "netns", &client,
            ],
        )?;
        ip_in(
            &director,
            &["addr", "add", &format!("{PUBLIC_IP}/24"), "dev", PUBLIC_IF],
        )?;
        ip_in(&director, &["link", "set", PUBLIC_IF, "up"])?;
        ip_in(
            &client,
            &["addr", "add", &format!("{CIP}/24"), "dev", HOST_IF],
        )?;
        ip_in(&client, &["link", "set", HOST_IF, "up"])?;
        ip_in(
            &client,
            &["route", "add", "default", "via", &PUBLIC_IP.to_string()],
        )?;

        // Private side: a bridge holding the DIP, one veth port per real server.
        ip_in(&director, &["link", "add", PRIVATE_IF, "type", "bridge"])?;
        ip_in(
            &director,
            &["addr", "add", &format!("{DIP}/24"), "dev", PRIVATE_IF],
        )?;
        ip_in(&director, &["link", "set", PRIVATE_IF, "up"])?;
        for i in 1..=self.cfg.real_servers {
            let (rs, port) = (self.rs(i), format!("rs{i}"));
            ip_in(
                &director,
                &[
                    "link", "add", &port, "type", "veth", "peer", "name", HOST_IF, "netns", &rs,
                ],
            )?;
            ip_in(
                &director,
                &["link", "set", &port, "master", PRIVATE_IF, "up"],
            )?;
            ip_in(
                &rs,
                &["addr", "add", &format!("{}/24", rip(i)), "dev", HOST_IF],
            )?;
            ip_in(&rs, &["link", "set", HOST_IF, "up"])?;
            ip_in(&rs, &["route", "add", "default", "via", &DIP.to_string()])?;
        }
        // Packets sent from the client and real-server namespaces carry complete checksums.
        for ns in std::iter::once(client).chain((1..=self.cfg.real_servers).map(|i| self.rs(i))) {
            netns::run_in(&ns, || netns::tx_checksum_off(HOST_IF))?;
        }
        Ok(())
    }

    fn start_servers(&mut self) -> Result<()> {
        for i in 1..=self.cfg.real_servers {
            let ns = self.rs(i);
            let name = format!("rs{i}");
            let log = self.state_dir.join(format!("{name}.log"));
            let logf = std::fs::File::create(&log)
                .map_err(LabError::io(format!("creating {}", log.display())))?;
            let mut c = Command::new("ip");
            c.args(["netns", "exec", &ns])
                .arg(&self.lab_exe)
                .args(["serve", "--name", &name])
                .args([
                    "--http",
                    &format!("0.0.0.0:{HTTP_PORT}"),
                    "--udp",
                    &format!("0.0.0.0:{UDP_PORT}"),
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(logf)
                .process_group(0);
            let mut child = c
                .spawn()
                .map_err(LabError::io(format!("starting the server in {ns}")))?;
            let stdout = child.stdout.take();
            self.guard.add_proc(Proc {
                name: format!("server {name}"),
                child,
                stop: StopSignal::Kill,
            });
            let mut line = String::new();
            if let Some(out) = stdout {
                let _ = BufReader::new(out).read_line(&mut line);
            }
            if line.trim() != "ready" {
                let err = std::fs::read_to_string(&log).unwrap_or_default();
                return Err(LabError::Process {
                    what: format!("the server in {ns} did not start: {}", err.trim()),
                });
            }
        }
        Ok(())
    }

    fn bins(&self) -> Result<&Binaries> {
        self.bins
            .as_ref()
            .ok_or_else(|| LabError::Invalid("this lab was built without rvsd".into()))
    }

    /// True while an rvsd of this lab is running.
    pub fn rvsd_running(&self) -> bool {
        crate::cleanup::lock(&self.guard.resources)
            .procs
            .iter()
            .any(|p| p.name == "rvsd")
    }

    /// The pid of this lab's rvsd.
    pub fn rvsd_pid(&self) -> Option<u32> {
        crate::cleanup::lock(&self.guard.resources)
            .procs
            .iter()
            .find(|p| p.name == "rvsd")
            .map(|p| p.child.id())
    }

    /// Starts rvsd in the director namespace and waits until its control socket answers.
    pub fn start_rvsd(&mut self) -> Result<()> {
        if self.bins.is_none() {
            self.bins = Some(crate::bins::find()?);
        }
        let bins = self.bins()?.clone();
        let log = self.rvsd_log();
        let logf = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(LabError::io(format!("opening {}", log.display())))?;
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.director()])
            .arg(&bins.rvsd)
            .arg("--socket")
            .arg(self.socket())
            .arg("--rules")
            .arg(self.rules())
            .args(["--public-if", PUBLIC_IF, "--private-if", PRIVATE_IF])
            .args(&self.cfg.rvsd_args)
            .env("RVS_SOCKET", self.socket())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(logf)
            .process_group(0);
        let child = c.spawn().map_err(LabError::io("starting rvsd"))?;
        self.guard.add_proc(Proc {
            name: "rvsd".into(),
            child,
            stop: StopSignal::Term,
        });
        let start = Instant::now();
        let limit = Duration::from_secs(20);
        loop {
            {
                let mut res = crate::cleanup::lock(&self.guard.resources);
                if let Some(p) = res.procs.iter_mut().find(|p| p.name == "rvsd")
                    && let Ok(Some(status)) = p.child.try_wait()
                {
                    res.procs.retain(|p| p.name != "rvsd");
                    drop(res);
                    return Err(LabError::Process {
                        what: format!(
                            "rvsd exited at start ({status}); its log says:\n{}",
                            self.log_tail(&log)
                        ),
                    });
                }
            }
            if self.socket().exists()
                && self
                    .rvsadm_output(&["-L", "-n"])
                    .is_ok_and(|o| o.status.success())
            {
                return Ok(());
            }
            if start.elapsed() > limit {
                return Err(LabError::Timeout {
                    what: format!(
                        "rvsd's control socket to answer; its log says:\n{}",
                        self.log_tail(&log)
                    ),
                    ms: limit.as_millis(),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops rvsd with SIGTERM and waits for it; returns its exit status text.
    pub fn stop_rvsd(&mut self) -> Result<String> {
        let p = {
            let mut res = crate::cleanup::lock(&self.guard.resources);
            let idx = res
                .procs
                .iter()
                .position(|p| p.name == "rvsd")
                .ok_or_else(|| LabError::Invalid("rvsd is not running".into()))?;
            res.procs.remove(idx)
        };
        let mut p = p;
        Ok(crate::cleanup::stop_proc(&mut p, Duration::from_secs(10)))
    }

    /// Kills rvsd with SIGKILL (a crash: it cannot remove its steering) and reaps it.
    pub fn crash_rvsd(&mut self) -> Result<()> {
        let mut p = {
            let mut res = crate::cleanup::lock(&self.guard.resources);
            let idx = res
                .procs
                .iter()
                .position(|p| p.name == "rvsd")
                .ok_or_else(|| LabError::Invalid("rvsd is not running".into()))?;
            res.procs.remove(idx)
        };
        p.child.kill().map_err(LabError::io("killing rvsd"))?;
        p.child.wait().map_err(LabError::io("reaping rvsd"))?;
        Ok(())
    }

    fn log_tail(&self, log: &Path) -> String {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// rvsd's log so far (for failure messages).
    pub fn rvsd_log_text(&self) -> String {
        self.log_tail(&self.rvsd_log())
    }

    /// Runs `rvsadm ARGS` against this lab's rvsd and returns its raw output (any exit status).
    pub fn rvsadm_output(&self, args: &[&str]) -> Result<Output> {
        let bins = self.bins()?;
        Command::new(&bins.rvsadm)
            .args(args)
            .env("RVS_SOCKET", self.socket())
            .stdin(Stdio::null())
            .output()
            .map_err(LabError::io("running rvsadm"))
    }

    /// Runs `rvsadm ARGS`; a failure is an error with rvsadm's message. Returns stdout.
    pub fn rvsadm(&self, args: &[&str]) -> Result<String> {
        let out = self.rvsadm_output(args)?;
        if !out.status.success() {
            return Err(LabError::Command {
                command: crate::cmd::render("rvsadm", args),
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs `f` in the client namespace.
    pub fn in_client<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T> + Send + 'static,
    {
        netns::run_in(&self.client(), f)
    }

    /// Runs `ip -n NS ARGS` in one of the lab's namespaces (read-only inspection in tests).
    pub fn ip(&self, ns: &str, args: &[&str]) -> Result<String> {
        ip_in(ns, args)
    }

    /// Removes the lab now, reporting problems.
    pub fn down(self) -> Result<()> {
        let problems = self.guard.teardown();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(LabError::Process {
                what: problems.join("; "),
            })
        }
    }

    /// Leaves the lab running after this process exits (`rvs-lab up`); writes a state file for `rvs-lab down`.
    pub fn detach(self) -> Result<PathBuf> {
        let state = self.state_dir.join("state.json");
        let bins = self.bins.clone();
        let namespaces = self.namespaces();
        let prefix = self.cfg.prefix.clone();
        let socket = self.socket();
        let res = self.guard.detach();
        let procs: Vec<serde_json::Value> = res
            .procs
            .iter()
            .map(|p| serde_json::json!({"name": p.name, "pid": p.child.id()}))
            .collect();
        let json = serde_json::json!({
            "prefix": prefix,
            "namespaces": namespaces,
            "procs": procs,
            "socket": socket,
            "bin_dir": bins.as_ref().map(|b| b.dir().to_path_buf()),
        });
        std::fs::write(
            &state,
            serde_json::to_string_pretty(&json).unwrap_or_default(),
        )
        .map_err(LabError::io(format!("writing {}", state.display())))?;
        Ok(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlap_and_parsing() {
        let text = "1: lo    inet 127.0.0.1/8 scope host lo\n2: eth0    inet 198.51.100.7/16 brd x scope global eth0\n";
        let addrs = parse_inet_addrs(text);
        assert_eq!(
            addrs,
            vec![
                (Ipv4Addr::new(127, 0, 0, 1), 8),
                (Ipv4Addr::new(198, 51, 100, 7), 16)
            ]
        );
        assert!(!overlaps(addrs[0], RANGES[0]));
        assert!(overlaps(addrs[1], RANGES[0]));
        assert!(overlaps((Ipv4Addr::new(203, 0, 113, 200), 32), RANGES[1]));
        assert!(!overlaps((Ipv4Addr::new(203, 0, 114, 1), 24), RANGES[1]));
        assert!(overlaps((Ipv4Addr::new(10, 0, 0, 1), 0), RANGES[1]));
    }

    #[test]
    fn names_and_addresses() {
        assert_eq!(
            ns_names("rvs", 2),
            vec!["rvs-client", "rvs-director", "rvs-rs1", "rvs-rs2"]
        );
        assert_eq!(rip(1), Ipv4Addr::new(203, 0, 113, 11));
        assert_eq!(rip(2), Ipv4Addr::new(203, 0, 113, 12));
        let a = LabConfig::unique("x");
        let b = LabConfig::unique("x");
        assert_ne!(a.prefix, b.prefix);
    }
}
