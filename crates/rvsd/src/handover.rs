//! Restarts and upgrades that keep established connections.
//!
//! Two ways to restart, one table format (rvs-core's versioned, checksummed state, written atomically, mode 0600):
//!
//! - **SIGTERM/SIGINT** (`systemctl stop`, `systemctl restart`, the Debian package's restart after an upgrade): rvsd
//!   removes everything it installed (steering, TUN, XDP program, maps and pins, socket), as a stop must, but first
//!   puts a **hold with a kernel-enforced expiry** in place and writes its table to the state file. A start within
//!   `--restart-hold` seconds (default 10) takes the table over; a later start finds it expired and starts empty.
//! - **SIGUSR2** (`systemctl kill -s USR2 --kill-whom=main rvsd`): exit 75, restarted at once by the unit
//!   (`RestartForceExitStatus=75`); the hold is a blackhole route behind the reply route with no expiry, and with
//!   `--fast-path-pin-dir` the XDP program stays attached and keeps forwarding established flows meanwhile. A start
//!   takes the table over whatever its age (the blackhole held every reply).
//!
//! Why a hold at all (measured, RELIABILITY.md "Restarts"): in the gap between two rvsds the real servers' replies
//! are no longer steered into rvsd, so the director forwards them un-NATed (source RIP) to the client, whose kernel
//! answers with a reset that the director forwards to the real server: the connection is gone. Dropped instead, the
//! replies are retransmitted after the gap and the next rvsd NATs them as before.
//!
//! Why this hold (an nftables table `inet rvsd_hold`: a forward-hook chain dropping packets whose source is in a set
//! of the masquerading real servers' addresses, each element added with `timeout`): the kernel removes the elements
//! when the time is up, with or without a process, so a `systemctl stop` cannot leave the real servers' packets
//! black-holed past the bound even if no rvsd ever starts again. Alternatives rejected: IPv4 routes have no
//! expiry (IPv6's `expires` does not cover IPv4); a helper process that removes the hold later is killed with the
//! unit's cgroup on stop (`KillMode=mixed`) and would leave the hold for ever; asking systemd over D-Bus whether the
//! SIGTERM belongs to a restart job cannot be tested without systemd as PID 1, and a stop would still lose the
//! table. What a stop leaves, exactly: for `--restart-hold` seconds the hold drops forwarded packets from the
//! masquerading real servers' addresses (their replies to clients); after that the table `inet rvsd_hold` stays with
//! one chain, one rule and empty sets (matching nothing) and the state file stays in place (expired, ignored), both
//! until the next rvsd start removes them (`nft delete table inet rvsd_hold` removes the table by hand). No route,
//! rule, proxy entry, TUN, XDP program, map or pin is left.
//!
//! The next rvsd, once its rules are loaded and its steering is in place, before its workers start, reads and
//! validates the file, binds every entry to the same real server of its own configuration, deletes the file (a state
//! is used once) and removes the hold (the replies it held are then retransmitted into it). A `.running` marker
//! beside the state file tells the next start whether this run ended cleanly: after a SIGKILL or a crash the marker
//! is still there, and the next rvsd starts with an empty table and says so.
//!
//! IPVS cannot do this (unloading the module drops every connection).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use rvs_core::Director;
use rvs_core::handover::TableState;

use crate::dataplane::now;

/// The state file and its `.running` marker.
#[derive(Debug, Clone)]
pub struct StateFile {
    path: PathBuf,
}

/// How this start began.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// Entries taken over from the previous rvsd.
    HandedOver {
        conns: usize,
        templates: usize,
        skipped: usize,
        age_ms: u64,
    },
    /// No state: the first start, or the previous rvsd stopped for good (SIGTERM/SIGINT).
    Fresh,
    /// The previous rvsd did not stop cleanly (SIGKILL, crash): its connections are lost.
    AfterCrash { pid: String },
    /// A state file was there but could not be used.
    Refused(String),
    /// The previous rvsd stopped (SIGTERM) longer ago than its hold lasted: its real servers' replies were no longer
    /// held, so its connections are not taken over.
    Expired { age_ms: u64 },
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl StateFile {
    /// `--state-file`, else `<socket>.state` (so rvsds with different sockets never share one).
    pub fn new(explicit: Option<PathBuf>, socket: &Path) -> Self {
        let path = explicit.unwrap_or_else(|| {
            let mut s = socket.as_os_str().to_owned();
            s.push(".state");
            PathBuf::from(s)
        });
        Self { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn marker(&self) -> PathBuf {
        self.beside(".running")
    }

    /// When a stop's hand-over expires (unix ms): the end of its hold. Absent for SIGUSR2's (held until the start).
    fn expiry(&self) -> PathBuf {
        self.beside(".expires")
    }

    fn beside(&self, suffix: &str) -> PathBuf {
        let mut s = self.path.as_os_str().to_owned();
        s.push(suffix);
        PathBuf::from(s)
    }

    /// At start (rules loaded, workers not yet started): take over the previous rvsd's table if it handed one over,
    /// then mark this run as running.
    pub fn start(&self, director: &Director) -> std::io::Result<Start> {
        let marker = self.marker();
        let crashed = std::fs::read_to_string(&marker).ok();
        let state = match std::fs::read(&self.path) {
            Ok(b) => Some(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        // Unreadable or garbled: treated as expired (a table whose hold cannot be shown to last is not taken).
        let expires = match std::fs::read_to_string(self.expiry()) {
            Ok(t) => Some(t.trim().parse::<u64>().unwrap_or(0)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(_) => Some(0),
        };
        let now_ms = unix_ms();
        let outcome = match (crashed, state) {
            (Some(pid), _) => Start::AfterCrash {
                pid: pid.trim().to_owned(),
            },
            (None, None) => Start::Fresh,
            (None, Some(bytes)) if expires.is_some_and(|t| now_ms > t) => Start::Expired {
                age_ms: TableState::decode(&bytes)
                    .map_or(0, |(_, written)| now_ms.saturating_sub(written)),
            },
            (None, Some(bytes)) => match TableState::decode(&bytes) {
                Err(e) => Start::Refused(e.to_string()),
                Ok((mut st, written)) => {
                    // The time between the two processes counts as idle time.
                    let age_ms = unix_ms().saturating_sub(written);
                    for c in &mut st.conns {
                        c.idle_ms = c
                            .idle_ms
                            .saturating_add(u32::try_from(age_ms).unwrap_or(u32::MAX));
                    }
                    for t in &mut st.templates {
                        t.idle_ms = t.idle_ms.saturating_add(age_ms);
                    }
                    let r = director.import_state(now(), &st);
                    Start::HandedOver {
                        conns: r.conns,
                        templates: r.templates,
                        skipped: r.skipped,
                        age_ms,
                    }
                }
            },
        };
        for f in [self.path.clone(), self.expiry()] {
            match std::fs::remove_file(f) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        crate::daemon::write_atomic(&marker, format!("{}\n", std::process::id()).as_bytes())?;
        Ok(outcome)
    }

    /// On a stop that hands over (workers stopped): write the table for the next rvsd, valid for `valid_for` (a
    /// SIGTERM's hold) or until the next start (`None`: SIGUSR2's hold has no expiry). Returns (connections,
    /// templates).
    pub fn hand_over(
        &self,
        director: &Director,
        valid_for: Option<Duration>,
    ) -> std::io::Result<(usize, usize)> {
        let st = director.export_state(now());
        let written = unix_ms();
        // The expiry first: a state file is never valid longer than the hold that protects it.
        match valid_for {
            Some(d) => {
                let until =
                    written.saturating_add(u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
                crate::daemon::write_atomic(&self.expiry(), format!("{until}\n").as_bytes())?;
            }
            None => match std::fs::remove_file(self.expiry()) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            },
        }
        let bytes = st.encode(written);
        crate::daemon::write_atomic(&self.path, &bytes)?;
        std::fs::set_permissions(
            &self.path,
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )?;
        self.stopped();
        Ok((st.conns.len(), st.templates.len()))
    }

    /// This run ended cleanly (with or without a hand-over).
    pub fn stopped(&self) {
        let _ = std::fs::remove_file(self.marker());
    }

    /// Log how this start began.
    pub fn log_start(&self, s: &Start) {
        let path = self.path.display();
        match s {
            Start::HandedOver {
                conns,
                templates,
                skipped,
                age_ms,
            } => tracing::info!(
                conns,
                templates,
                skipped,
                age_ms,
                state = %path,
                "took over the connection table handed over by the previous rvsd"
            ),
            Start::Fresh => tracing::info!(
                state = %path,
                "no connection table handed over (first start, or the previous rvsd stopped for good): starting empty"
            ),
            Start::AfterCrash { pid } => tracing::warn!(
                previous_pid = %pid,
                state = %path,
                "the previous rvsd did not stop cleanly (killed or crashed): its connections are lost; starting with \
                 an empty connection table"
            ),
            Start::Expired { age_ms } => tracing::warn!(
                age_ms,
                state = %path,
                "the connection table handed over by the previous rvsd (stopped) is older than its hold: the real \
                 servers' replies were no longer held, so its connections are not taken over; starting with an empty \
                 connection table"
            ),
            Start::Refused(why) => tracing::warn!(
                state = %path,
                error = %why,
                "the handed-over connection table cannot be used: starting with an empty connection table"
            ),
        }
    }
}

/// The nftables table of a stop's hold (one per network namespace, as rvsd is).
pub const HOLD_TABLE: &str = "rvsd_hold";

/// The hold's ruleset: a forward-hook chain dropping packets from `rips`, each a set element that the kernel
/// removes after `bound`. The table is replaced as a whole in one transaction (`nft -f`), so a hold left by an
/// earlier stop never adds up with this one.
pub fn hold_ruleset(rips: &[IpAddr], bound: Duration) -> String {
    let ms = bound.as_millis().max(1);
    let elements = |v6: bool| -> String {
        rips.iter()
            .filter(|a| a.is_ipv6() == v6)
            .map(|a| format!("{a} timeout {ms}ms"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let set = |name: &str, ty: &str, v6: bool| {
        let e = elements(v6);
        let e = if e.is_empty() {
            String::new()
        } else {
            format!(" elements = {{ {e} }};")
        };
        format!("  set {name} {{ type {ty}; flags timeout;{e} }}\n")
    };
    format!(
        "table inet {HOLD_TABLE} {{}}\ndelete table inet {HOLD_TABLE}\ntable inet {HOLD_TABLE} {{\n{}{}  chain \
         forward {{\n    type filter hook forward priority filter - 10; policy accept;\n    ip saddr @rips4 \
         counter drop\n    ip6 saddr @rips6 counter drop\n  }}\n}}\n",
        set("rips4", "ipv4_addr", false),
        set("rips6", "ipv6_addr", true),
    )
}

/// Runs `nft` with `args`, `input` on its stdin; Err with nft's own words.
fn nft(args: &[&str], input: Option<&str>) -> Result<String, String> {
    use std::io::Write;
    let mut child = Command::new("nft")
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run nft (the nftables package): {e}"))?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin
            .write_all(text.as_bytes())
            .map_err(|e| format!("writing to nft: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("waiting for nft: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

/// Holds the masquerading real servers' packets for at most `bound` (kernel-enforced), in this namespace.
pub fn hold(rips: &[IpAddr], bound: Duration) -> Result<(), String> {
    nft(&["-f", "-"], Some(&hold_ruleset(rips, bound))).map(|_| ())
}

/// Removes a hold left by the previous rvsd, expired or not. Ok(Some(packets)) when there was one: how many
/// packets it held (its rules' counters).
pub fn release_hold() -> Result<Option<u64>, String> {
    let Ok(listing) = nft(&["list", "table", "inet", HOLD_TABLE], None) else {
        return Ok(None);
    };
    nft(&["delete", "table", "inet", HOLD_TABLE], None)?;
    Ok(Some(held_packets(&listing)))
}

/// The sum of the `counter packets N` of an `nft list` listing.
fn held_packets(listing: &str) -> u64 {
    listing
        .split("counter packets ")
        .skip(1)
        .filter_map(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_core::{ConfigOp, DestSpec, Protocol, ServiceKey, ServiceSpec, Verdict, Weight};

    fn director() -> Director {
        let d = Director::default();
        let k = ServiceKey::Addr {
            protocol: Protocol::Udp,
            addr: "198.51.100.1".parse().expect("ip"),
            port: 53,
        };
        d.apply_batch(vec![
            ConfigOp::AddService(ServiceSpec::new(k, "rr")),
            ConfigOp::AddDest(
                k,
                DestSpec::masq("203.0.113.1".parse().expect("ip"), 53, Weight(1)),
            ),
        ])
        .expect("config");
        d
    }

    fn udp(sport: u16) -> Vec<u8> {
        let mut p = vec![
            0x45, 0, 0, 29, 0, 0, 0x40, 0, 64, 17, 0, 0, 198, 51, 100, 7, 198, 51, 100, 1,
        ];
        p.extend_from_slice(&sport.to_be_bytes());
        p.extend_from_slice(&[0, 53, 0, 9, 0, 0, b'q']);
        p
    }

    #[test]
    fn sigusr2_hands_over_sigkill_starts_clean_and_says_so() {
        let dir = std::env::temp_dir().join(format!("rvsd-handover-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let f = StateFile::new(None, &dir.join("rvsd.sock"));
        assert_eq!(f.path(), dir.join("rvsd.sock.state"));

        let first = director();
        assert_eq!(f.start(&first).expect("start"), Start::Fresh);
        for p in 0..10 {
            let mut pkt = udp(1000 + p);
            assert!(matches!(
                first.process(now(), 0, &mut pkt),
                Verdict::Forward(_)
            ));
        }
        // SIGUSR2: handed over; the next start takes all ten and consumes the file.
        assert_eq!(f.hand_over(&first, None).expect("hand over"), (10, 0));
        let second = director();
        match f.start(&second).expect("start") {
            Start::HandedOver { conns: 10, .. } => {}
            other => panic!("{other:?}"),
        }
        assert_eq!(second.conn_count(), 10);
        assert!(!f.path().exists(), "a state is used once");
        // SIGKILL: no hand-over, the marker stays: the next start is clean and knows why.
        let third = director();
        match f.start(&third).expect("start") {
            Start::AfterCrash { pid } => assert_eq!(pid, std::process::id().to_string()),
            other => panic!("{other:?}"),
        }
        assert_eq!(third.conn_count(), 0);
        // A damaged file is refused, not half-read.
        f.stopped();
        std::fs::write(f.path(), b"RVSSTATE\0\x01garbage").expect("write");
        assert!(matches!(
            f.start(&director()).expect("start"),
            Start::Refused(_)
        ));
        f.stopped();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_stops_hand_over_is_taken_within_its_hold_and_expires_after_it() {
        let dir = std::env::temp_dir().join(format!("rvsd-stop-handover-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let f = StateFile::new(None, &dir.join("rvsd.sock"));
        let first = director();
        assert_eq!(f.start(&first).expect("start"), Start::Fresh);
        for p in 0..5 {
            let mut pkt = udp(2000 + p);
            assert!(matches!(
                first.process(now(), 0, &mut pkt),
                Verdict::Forward(_)
            ));
        }
        // Within the hold (systemctl restart): taken over; the expiry goes with the file.
        assert_eq!(
            f.hand_over(&first, Some(Duration::from_secs(10)))
                .expect("hand over"),
            (5, 0)
        );
        assert!(f.expiry().exists());
        let second = director();
        assert!(matches!(
            f.start(&second).expect("start"),
            Start::HandedOver { conns: 5, .. }
        ));
        assert_eq!(second.conn_count(), 5);
        assert!(!f.expiry().exists() && !f.path().exists());
        // Past the hold (systemctl stop, started again later): not taken, said so, both files gone.
        f.stopped();
        f.hand_over(&second, Some(Duration::from_millis(1)))
            .expect("hand over");
        std::thread::sleep(Duration::from_millis(20));
        let third = director();
        match f.start(&third).expect("start") {
            Start::Expired { age_ms } => assert!(age_ms >= 20, "{age_ms}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(third.conn_count(), 0);
        assert!(!f.expiry().exists() && !f.path().exists());
        // SIGUSR2's hand-over has no expiry, and drops a stale one a stop left.
        f.stopped();
        f.hand_over(&second, Some(Duration::from_millis(1)))
            .expect("hand over");
        f.hand_over(&second, None).expect("hand over");
        std::thread::sleep(Duration::from_millis(5));
        assert!(matches!(
            f.start(&director()).expect("start"),
            Start::HandedOver { conns: 5, .. }
        ));
        f.stopped();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_hold_drops_only_masquerading_real_servers_packets_and_expires() {
        let rips: Vec<IpAddr> = vec![
            "203.0.113.11".parse().expect("ip"),
            "2001:db8:2::11".parse().expect("ip"),
            "203.0.113.12".parse().expect("ip"),
        ];
        let r = hold_ruleset(&rips, Duration::from_secs(10));
        assert!(
            r.starts_with("table inet rvsd_hold {}\ndelete table inet rvsd_hold\n"),
            "{r}"
        );
        assert!(
            r.contains(
                "set rips4 { type ipv4_addr; flags timeout; elements = { 203.0.113.11 timeout 10000ms, \
                 203.0.113.12 timeout 10000ms }; }"
            ),
            "{r}"
        );
        assert!(
            r.contains("set rips6 { type ipv6_addr; flags timeout; elements = { 2001:db8:2::11 timeout 10000ms }; }"),
            "{r}"
        );
        assert!(r.contains("type filter hook forward priority filter - 10; policy accept;"));
        assert!(
            r.contains("ip saddr @rips4 counter drop")
                && r.contains("ip6 saddr @rips6 counter drop")
        );
        let listing = "ip saddr @rips4 counter packets 12 bytes 900 drop\n\t\tip6 saddr @rips6 counter packets 3 \
                       bytes 240 drop";
        assert_eq!(held_packets(listing), 15);
        // No IPv6 real server: an empty set, no element list (nft refuses `elements = { }`).
        let r = hold_ruleset(&rips[..1], Duration::from_millis(1500));
        assert!(
            r.contains("set rips6 { type ipv6_addr; flags timeout; }"),
            "{r}"
        );
        assert!(r.contains("203.0.113.11 timeout 1500ms"), "{r}");
    }
}
