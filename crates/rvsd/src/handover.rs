//! Restarts and upgrades that keep established connections.
//!
//! On SIGUSR2 (a planned restart or an upgrade: `systemctl kill -s USR2 rvsd`), rvsd holds the real servers'
//! replies (a blackhole behind its reply route, so they are retransmitted later rather than reset by the client),
//! stops its workers, then writes its connection
//! table and persistence templates to the state file (rvs-core's versioned, checksummed format, written atomically,
//! mode 0600). The next rvsd, once its rules are loaded and before its workers start, reads and validates the file,
//! binds every entry to the same real server of its own configuration, and deletes the file (a state is used once).
//! A `.running` marker beside the state file tells the next start whether this run ended cleanly: after a SIGKILL
//! or a crash the marker is still there, and the next rvsd starts with an empty table and says so. SIGTERM and
//! SIGINT (`systemctl stop`) stop for good: everything is removed at once, nothing is held, no state is written.
//! Why a distinct signal: a hold that waits for a next rvsd must not be left by a plain stop (it would black-hole
//! the real servers' replies until someone starts rvsd again), and systemd's ExecStop cannot tell a stop from a
//! restart; the unit restarts rvsd at once after exit status 75 (`RestartForceExitStatus=75`).
//!
//! IPVS cannot do this (unloading the module drops every connection).

use std::path::{Path, PathBuf};

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
        let mut s = self.path.as_os_str().to_owned();
        s.push(".running");
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
        let outcome = match (crashed, state) {
            (Some(pid), _) => Start::AfterCrash {
                pid: pid.trim().to_owned(),
            },
            (None, None) => Start::Fresh,
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
        match std::fs::remove_file(&self.path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        crate::daemon::write_atomic(&marker, format!("{}\n", std::process::id()).as_bytes())?;
        Ok(outcome)
    }

    /// On a planned stop (workers stopped): write the table for the next rvsd. Returns (connections, templates).
    pub fn hand_over(&self, director: &Director) -> std::io::Result<(usize, usize)> {
        let st = director.export_state(now());
        let bytes = st.encode(unix_ms());
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
            Start::Refused(why) => tracing::warn!(
                state = %path,
                error = %why,
                "the handed-over connection table cannot be used: starting with an empty connection table"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_core::{ConfigOp, DestSpec, Protocol, ServiceKey, ServiceSpec, Verdict};

    fn director() -> Director {
        let d = Director::default();
        let k = ServiceKey::Addr {
            protocol: Protocol::Udp,
            addr: "198.51.100.1".parse().expect("ip"),
            port: 53,
        };
        d.apply_batch(vec![
            ConfigOp::AddService(ServiceSpec::new(k, "rr")),
            ConfigOp::AddDest(k, DestSpec::masq("203.0.113.1".parse().expect("ip"), 53, 1)),
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
        assert_eq!(f.hand_over(&first).expect("hand over"), (10, 0));
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
        let _ = std::fs::remove_dir_all(&dir);
    }
}
