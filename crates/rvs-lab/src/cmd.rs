//! Running external commands (`ip`, `rvsadm`, `cargo`, and the bench's load tools) with a time bound and errors
//! that say what failed and why; background processes (the bench's servers and proxy) stopped by PID.
//!
//! One runner for the whole lab: the topology's `ip` calls and `rvs-lab bench`'s `wrk`, `iperf3`, `valgrind` go
//! through [`run_bounded`], so every command is bounded in time and killed (through a pidfd, with its process
//! group) when it overruns.

use std::ffi::OsStr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use crate::cleanup::{Proc, StopSignal};
use crate::error::{LabError, Result};

/// The bound of a command that should return at once (`ip`, `nft`, `date`): generous, only a hang hits it.
pub const SHORT: Duration = Duration::from_secs(30);

/// Renders a command line for messages.
pub fn render<S: AsRef<OsStr>>(program: &str, args: &[S]) -> String {
    let mut s = program.to_string();
    for a in args {
        s.push(' ');
        s.push_str(&a.as_ref().to_string_lossy());
    }
    s
}

/// What a finished command left behind.
#[derive(Debug)]
pub struct Captured {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Captured {
    /// As [`std::process::Output`] (bytes), for callers that take a command's raw output.
    pub fn into_output(self) -> std::process::Output {
        std::process::Output {
            status: self.status,
            stdout: self.stdout.into_bytes(),
            stderr: self.stderr.into_bytes(),
        }
    }

    /// The output of a successful run; a non-zero exit is [`LabError::Command`] carrying stderr.
    pub fn checked(self, shown: &str) -> Result<String> {
        if !self.status.success() {
            return Err(LabError::Command {
                command: shown.to_string(),
                status: self.status.to_string(),
                stderr: self.stderr.trim().to_string(),
            });
        }
        Ok(self.stdout)
    }
}

/// A pidfd for `pid` (pidfd_open(2)): it names that process and no other, so a signal sent through it can never
/// reach a process that later reuses the number.
fn pidfd_open(pid: u32) -> std::io::Result<OwnedFd> {
    let pid = libc::pid_t::try_from(pid)
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    // SAFETY: pidfd_open takes a pid and flags, no pointers.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let fd = libc::c_int::try_from(fd)
        .ok()
        .filter(|fd| *fd >= 0)
        .ok_or_else(std::io::Error::last_os_error)?;
    // SAFETY: fd is a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// SIGKILL through a pidfd; true when the process was still there to get it (running, or exited but not reaped).
fn pidfd_kill(fd: &OwnedFd) -> bool {
    // SAFETY: pidfd_send_signal with a live pidfd, no siginfo (null, as kill(2) would send) and no flags.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            libc::SIGKILL,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    rc == 0
}

/// Runs `cmd` (stdin from /dev/null, stdout and stderr captured) to completion, killing it after `bound`
/// ([`LabError::Timeout`]). A non-zero exit is not an error here: see [`Captured::checked`].
///
/// The calling thread reads the output and reaps the command as `Command::output` does; a watchdog thread waits
/// out the bound and then kills the command through a pidfd, and the rest of its process group (the command
/// runs in a group of its own, so a child it left holding the pipes goes too). Why not poll `try_wait` and read
/// the pipes on two threads: that made each `ip` call 1.8x as long as `Command::output` (median of 8 rounds of
/// 300 `ip -V`, 2026-12-03, shared 2-core machine, noisy); this shape is 1.0x (0.76-1.87x).
pub fn run_command(mut cmd: Command, shown: &str, bound: Duration) -> Result<Captured> {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(LabError::io(format!("running `{shown}`")))?;
    let pid = child.id();
    let pidfd = match pidfd_open(pid) {
        Ok(fd) => fd,
        Err(e) => {
            let mut child = child;
            let _ = child.kill();
            let _ = child.wait();
            return Err(LabError::io(format!("pidfd of `{shown}`"))(e));
        }
    };
    let (done, finished) = mpsc::channel::<()>();
    let watchdog = thread::spawn(move || {
        if finished.recv_timeout(bound) != Err(RecvTimeoutError::Timeout) {
            return false;
        }
        // Still unreaped when the pidfd signal lands, so its PID, which is its group's ID, is not reused yet.
        if pidfd_kill(&pidfd)
            && let Ok(group) = libc::pid_t::try_from(pid)
        {
            crate::cleanup::signal_group(group, libc::SIGKILL);
        }
        true
    });
    let out = child.wait_with_output();
    let _ = done.send(());
    let timed_out = watchdog.join().unwrap_or(false);
    let out = out.map_err(LabError::io(format!("waiting for `{shown}`")))?;
    if timed_out {
        return Err(LabError::Timeout {
            what: format!("`{shown}` did not finish"),
            ms: bound.as_millis(),
        });
    }
    Ok(Captured {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// Runs `argv` to completion within `bound` (see [`run_command`]); a non-zero exit is not an error here.
pub fn run_bounded<S: AsRef<OsStr>>(argv: &[S], bound: Duration) -> Result<Captured> {
    let (prog, args) = argv
        .split_first()
        .ok_or_else(|| LabError::Invalid("empty command".into()))?;
    let mut c = Command::new(prog);
    c.args(args);
    run_command(c, &render(&prog.as_ref().to_string_lossy(), args), bound)
}

/// Runs `argv` within [`SHORT`] and returns its stdout; a non-zero exit is an error carrying stderr.
pub fn run_checked<S: AsRef<OsStr>>(argv: &[S]) -> Result<String> {
    let shown = argv.split_first().map_or_else(String::new, |(p, a)| {
        render(&p.as_ref().to_string_lossy(), a)
    });
    run_bounded(argv, SHORT)?.checked(&shown)
}

/// Runs `ip ARGS...`.
pub fn ip<S: AsRef<OsStr>>(args: &[S]) -> Result<String> {
    let mut c = Command::new("ip");
    c.args(args);
    let shown = render("ip", args);
    run_command(c, &shown, SHORT)?.checked(&shown)
}

/// Runs `ip -n NS ARGS...` (a command confined to namespace `ns`).
pub fn ip_in(ns: &str, args: &[&str]) -> Result<String> {
    let mut all = vec!["-n", ns];
    all.extend_from_slice(args);
    ip(&all)
}

/// `ip netns exec NS argv...` as an argument vector (a program run inside namespace `ns`).
pub fn in_ns(ns: &str, argv: &[&str]) -> Vec<String> {
    let mut v = vec!["ip".to_string(), "netns".into(), "exec".into(), ns.into()];
    v.extend(argv.iter().map(|s| s.to_string()));
    v
}

/// A file of namespace `ns`'s own view (`/proc/net/...`, `/sys/class/net/...`), read by `cat` run inside it: a
/// thread that `setns`es still sees its process's `/proc/self/net`, so the file is read from a process in `ns`.
pub fn cat_in(ns: &str, path: &str) -> Result<String> {
    run_checked(&in_ns(ns, &["cat", path]))
}

/// The last `n` lines of a log file joined by `sep`, for error messages.
pub fn log_tail(path: &Path, n: usize, sep: &str) -> String {
    let s = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join(sep)
}

/// A process started in the background with its output appended to a log; stopped by PID (SIGTERM, SIGKILL after
/// 5 s, as the lab stops rvsd: [`crate::cleanup::stop_proc`]) when dropped.
#[derive(Debug)]
pub struct Background {
    name: String,
    proc: Option<Proc>,
    pub log: PathBuf,
}

impl Background {
    /// Starts `argv` (named `name` in messages) with stdout and stderr appended to `log`.
    pub fn spawn<S: AsRef<OsStr>>(name: &str, argv: &[S], log: &Path) -> Result<Background> {
        let (prog, args) = argv
            .split_first()
            .ok_or_else(|| LabError::Invalid(format!("{name}: empty command")))?;
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(LabError::io(format!("log file {}", log.display())))?;
        let f2 = f
            .try_clone()
            .map_err(LabError::io(format!("log file {}", log.display())))?;
        let child = Command::new(prog)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(f))
            .stderr(Stdio::from(f2))
            .spawn()
            .map_err(LabError::io(format!(
                "starting {name}: `{}`",
                render(&prog.as_ref().to_string_lossy(), args)
            )))?;
        Ok(Background {
            name: name.to_string(),
            proc: Some(Proc {
                name: name.to_string(),
                child,
                stop: StopSignal::Term,
            }),
            log: log.to_path_buf(),
        })
    }

    /// Its PID while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.proc.as_ref().map(|p| p.child.id())
    }

    fn child(&mut self) -> Option<&mut Child> {
        self.proc.as_mut().map(|p| &mut p.child)
    }

    /// [`LabError::Process`] with the tail of its log if it has already exited.
    pub fn check_alive(&mut self) -> Result<()> {
        if let Some(c) = self.child()
            && let Some(st) = c
                .try_wait()
                .map_err(LabError::io(format!("waiting for {}", self.name)))?
        {
            self.proc = None;
            return Err(LabError::Process {
                what: format!(
                    "{} exited ({st}): {}",
                    self.name,
                    log_tail(&self.log, 8, " | ")
                ),
            });
        }
        Ok(())
    }

    /// Waits up to `timeout` for the process to exit by itself; `true` if it did.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<bool> {
        let deadline = Instant::now() + timeout;
        loop {
            let name = self.name.clone();
            match self.child() {
                None => return Ok(true),
                Some(c) => {
                    if c.try_wait()
                        .map_err(LabError::io(format!("waiting for {name}")))?
                        .is_some()
                    {
                        self.proc = None;
                        return Ok(true);
                    }
                }
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, wait up to 5 s, then SIGKILL; reaped either way.
    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            crate::cleanup::stop_proc(&mut p, Duration::from_secs(5));
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bounded_run_captures_both_outputs_and_the_status() {
        let c = run_bounded(&["sh", "-c", "echo out; echo err >&2; exit 3"], SHORT).expect("runs");
        assert_eq!(c.status.code(), Some(3));
        assert_eq!(c.stdout, "out\n");
        assert_eq!(c.stderr, "err\n");
        match c.checked("sh") {
            Err(LabError::Command { status, stderr, .. }) => {
                assert!(status.contains('3'), "{status}");
                assert_eq!(stderr, "err");
            }
            other => panic!("expected a command error, got {other:?}"),
        }
        assert_eq!(
            run_checked(&["sh", "-c", "echo fine"]).expect("runs"),
            "fine\n"
        );
    }

    #[test]
    fn an_overrun_is_killed_and_named() {
        let t = Instant::now();
        match run_bounded(&["sleep", "5"], Duration::from_millis(200)) {
            Err(LabError::Timeout { what, ms }) => {
                assert!(what.contains("sleep 5"), "{what}");
                assert_eq!(ms, 200);
            }
            other => panic!("expected a timeout, got {other:?}"),
        }
        assert!(
            t.elapsed() < Duration::from_secs(4),
            "not killed: {:?}",
            t.elapsed()
        );
        // A child the command left behind holds the output pipes: it goes with the command's process group, or
        // reading the output would wait for it.
        let t = Instant::now();
        let left = run_bounded(
            &["sh", "-c", "sleep 20 & sleep 20"],
            Duration::from_millis(300),
        );
        assert!(matches!(left, Err(LabError::Timeout { .. })), "{left:?}");
        assert!(
            t.elapsed() < Duration::from_secs(4),
            "group not killed: {:?}",
            t.elapsed()
        );
    }

    #[test]
    fn a_missing_program_and_an_empty_command_are_errors() {
        assert!(matches!(
            run_bounded(&["/nonexistent/rvs-lab-test"], SHORT),
            Err(LabError::Io { .. })
        ));
        assert!(matches!(
            run_bounded::<&str>(&[], SHORT),
            Err(LabError::Invalid(_))
        ));
    }

    #[test]
    fn a_background_process_is_stopped_by_pid_and_its_exit_seen() {
        let dir = std::env::temp_dir().join(format!("rvs-lab-cmd-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let log = dir.join("bg.log");
        let mut b = Background::spawn("sleeper", &["sleep", "30"], &log).expect("starts");
        let pid = b.pid().expect("running");
        assert!(b.check_alive().is_ok());
        assert!(!b.wait_timeout(Duration::from_millis(50)).expect("waits"));
        b.stop();
        assert_eq!(b.pid(), None);
        // The PID is gone (reaped): kill(pid, 0) fails.
        assert!(!crate::cleanup::signal(pid, 0));
        let mut d =
            Background::spawn("quitter", &["sh", "-c", "echo bye; exit 7"], &log).expect("starts");
        assert!(d.wait_timeout(Duration::from_secs(5)).expect("waits"));
        let mut e =
            Background::spawn("quitter", &["sh", "-c", "echo bye; exit 7"], &log).expect("starts");
        let deadline = Instant::now() + Duration::from_secs(5);
        let seen = loop {
            match e.check_alive() {
                Ok(()) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
                other => break other,
            }
        };
        match seen {
            Err(LabError::Process { what }) => {
                assert!(
                    what.contains("quitter exited") && what.contains("bye"),
                    "{what}"
                )
            }
            other => panic!("expected an exit, got {other:?}"),
        }
        drop((d, e));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
