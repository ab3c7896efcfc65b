//! systemd's service notification protocol (sd_notify(3)), written out: one datagram of `KEY=VALUE` lines to the
//! AF_UNIX socket named by `$NOTIFY_SOCKET` (a path, or an abstract name when it starts with `@`).
//!
//! rvsd sends `READY=1` once steering is installed, the rules are loaded, the workers run and the control socket
//! answers; `RELOADING=1` (with `MONOTONIC_USEC`, as `Type=notify-reload` requires) then `READY=1` around a SIGHUP
//! reload; `STOPPING=1` at shutdown; `WATCHDOG=1` from the timer loop (connection expiry and rate estimation) at
//! half the `WatchdogSec` systemd asked for, so a wedged timer loop gets rvsd restarted. Outside systemd (no
//! `$NOTIFY_SOCKET`) every call is a no-op.

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::Duration;

/// Where notifications go.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Path(PathBuf),
    Abstract(Vec<u8>),
}

/// A handle on the notification socket (or nothing, outside systemd).
#[derive(Debug, Clone, Default)]
pub struct Notifier {
    target: Option<Target>,
    watchdog: Option<Duration>,
}

impl Notifier {
    /// From `$NOTIFY_SOCKET`, `$WATCHDOG_USEC` and `$WATCHDOG_PID` (read once, at start).
    pub fn from_env() -> Self {
        let socket = std::env::var_os("NOTIFY_SOCKET");
        let usec = std::env::var("WATCHDOG_USEC").ok();
        let pid = std::env::var("WATCHDOG_PID").ok();
        Self::new(
            socket.map(PathBuf::from),
            usec.as_deref(),
            pid.as_deref(),
            std::process::id(),
        )
    }

    /// From the values of those variables (`own_pid`: this process). The watchdog is on only when
    /// `WATCHDOG_USEC` is a positive number and `WATCHDOG_PID`, if set, is this process.
    pub fn new(
        socket: Option<PathBuf>,
        watchdog_usec: Option<&str>,
        watchdog_pid: Option<&str>,
        own_pid: u32,
    ) -> Self {
        use std::os::unix::ffi::OsStrExt;
        let target = socket.filter(|p| !p.as_os_str().is_empty()).map(|p| {
            match p.as_os_str().as_bytes().strip_prefix(b"@") {
                Some(name) => Target::Abstract(name.to_vec()),
                None => Target::Path(p),
            }
        });
        let for_us = watchdog_pid.is_none_or(|p| p.trim().parse::<u32>() == Ok(own_pid));
        let watchdog = watchdog_usec
            .and_then(|u| u.trim().parse::<u64>().ok())
            .filter(|&u| u > 0 && for_us)
            .map(Duration::from_micros);
        Self { target, watchdog }
    }

    /// True when running under a service manager that listens.
    pub fn enabled(&self) -> bool {
        self.target.is_some()
    }

    /// How often to send `WATCHDOG=1` (half the manager's timeout), if it asked for it.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog.filter(|_| self.enabled()).map(|w| w / 2)
    }

    /// Send one notification (`KEY=VALUE` lines). Failures are logged, never fatal.
    pub fn notify(&self, state: &str) {
        let Some(t) = &self.target else { return };
        if let Err(e) = send(t, state.as_bytes()) {
            tracing::warn!(error = %e, "sd_notify failed");
        }
    }

    /// `READY=1` with a status line.
    pub fn ready(&self, status: &str) {
        self.notify(&format!("READY=1\nSTATUS={status}"));
    }

    /// `RELOADING=1` with the monotonic clock, as systemd wants it.
    pub fn reloading(&self) {
        self.notify(&format!(
            "RELOADING=1\nMONOTONIC_USEC={}\nSTATUS=reloading the rules",
            monotonic_usec()
        ));
    }
}

fn send(t: &Target, msg: &[u8]) -> std::io::Result<()> {
    let sock = UnixDatagram::unbound()?;
    match t {
        Target::Path(p) => sock.send_to(msg, p)?,
        Target::Abstract(name) => {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            sock.send_to_addr(msg, &addr)?
        }
    };
    Ok(())
}

/// CLOCK_MONOTONIC in microseconds.
fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into the valid, exclusively borrowed `ts`.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    if rc != 0 {
        return 0;
    }
    (ts.tv_sec as u64) * 1_000_000 + (ts.tv_nsec as u64) / 1000
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recv(sock: &UnixDatagram) -> String {
        let mut buf = [0u8; 512];
        let n = sock.recv(&mut buf).expect("a datagram");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn datagrams_reach_a_path_and_an_abstract_socket() {
        let dir = std::env::temp_dir().join(format!("rvsd-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let p = dir.join("notify.sock");
        let sock = UnixDatagram::bind(&p).expect("bind");
        sock.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let n = Notifier::new(Some(p.clone()), None, None, 1);
        assert!(n.enabled());
        n.ready("3 services");
        assert_eq!(recv(&sock), "READY=1\nSTATUS=3 services");
        n.reloading();
        let r = recv(&sock);
        assert!(r.starts_with("RELOADING=1\nMONOTONIC_USEC="), "{r}");
        let _ = std::fs::remove_dir_all(&dir);

        use std::os::linux::net::SocketAddrExt;
        let name = format!("rvsd-test-{}", std::process::id());
        let addr =
            std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).expect("addr");
        let sock = UnixDatagram::bind_addr(&addr).expect("bind abstract");
        sock.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let n = Notifier::new(Some(format!("@{name}").into()), None, None, 1);
        n.notify("WATCHDOG=1");
        assert_eq!(recv(&sock), "WATCHDOG=1");
    }

    #[test]
    fn outside_systemd_nothing_happens() {
        let n = Notifier::new(None, Some("1000000"), None, 1);
        assert!(!n.enabled());
        assert_eq!(n.watchdog_interval(), None);
        n.ready("x"); // no socket: a no-op
    }

    #[test]
    fn watchdog_only_for_this_pid_and_a_positive_timeout() {
        let s = Some(PathBuf::from("/run/systemd/notify"));
        let w = |usec, pid| Notifier::new(s.clone(), usec, pid, 42).watchdog_interval();
        assert_eq!(w(Some("30000000"), None), Some(Duration::from_secs(15)));
        assert_eq!(
            w(Some("30000000"), Some("42")),
            Some(Duration::from_secs(15))
        );
        assert_eq!(
            w(Some("30000000"), Some("7")),
            None,
            "another process's watchdog"
        );
        assert_eq!(w(Some("0"), None), None);
        assert_eq!(w(Some("soon"), None), None);
        assert_eq!(w(None, None), None);
    }
}
