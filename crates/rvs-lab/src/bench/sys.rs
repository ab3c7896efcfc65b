//! Running commands with a time bound, background daemons killed by PID, tool installation.

use anyhow::{Context, Result, bail};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// What a finished command left behind.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

fn describe(argv: &[String]) -> String {
    argv.join(" ")
}

/// Runs `argv` to completion, killing it after `timeout`. A non-zero exit is not an error here.
pub fn run_timeout(argv: &[String], timeout: Duration) -> Result<Output> {
    let (prog, args) = argv.split_first().context("empty command")?;
    let mut child = Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start `{}`", describe(argv)))?;
    let mut out = child.stdout.take().context("stdout pipe")?;
    let mut err = child.stderr.take().context("stderr pipe")?;
    let t_out = thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    });
    let t_err = thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("`{}` did not finish within {timeout:?}", describe(argv));
        }
        thread::sleep(Duration::from_millis(10));
    };
    let stdout = t_out.join().unwrap_or_default();
    let stderr = t_err.join().unwrap_or_default();
    Ok(Output {
        status,
        stdout,
        stderr,
    })
}

/// Runs `argv` (30 s bound) and fails with its stderr when it exits non-zero.
pub fn sh(argv: &[&str]) -> Result<String> {
    let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
    let o = run_timeout(&argv, Duration::from_secs(30))?;
    if !o.status.success() {
        bail!(
            "`{}` failed ({}): {}",
            describe(&argv),
            o.status,
            o.stderr.trim()
        );
    }
    Ok(o.stdout)
}

/// Sends a signal to one process we started, by PID, through kill(1).
pub fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// A background process we started; terminated (SIGTERM, then SIGKILL after 5 s) when dropped.
#[derive(Debug)]
pub struct Daemon {
    pub name: String,
    child: Option<Child>,
    pub log: PathBuf,
}

impl Daemon {
    /// Starts `argv` with stdout and stderr appended to `log`.
    pub fn spawn(name: &str, argv: &[String], log: &Path, env: &[(&str, &str)]) -> Result<Daemon> {
        let (prog, args) = argv.split_first().context("empty command")?;
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("log file {}", log.display()))?;
        let f2 = f.try_clone()?;
        let mut cmd = Command::new(prog);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(f))
            .stderr(Stdio::from(f2));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {name}: `{}`", describe(argv)))?;
        Ok(Daemon {
            name: name.to_string(),
            child: Some(child),
            log: log.to_path_buf(),
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `Err` with the tail of its log if it has already exited.
    pub fn check_alive(&mut self) -> Result<()> {
        if let Some(c) = self.child.as_mut()
            && let Some(st) = c.try_wait()?
        {
            self.child = None;
            bail!("{} exited ({st}): {}", self.name, log_tail(&self.log));
        }
        Ok(())
    }

    /// Waits up to `timeout` for the process to exit by itself; `true` if it did.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<bool> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.as_mut() {
                None => return Ok(true),
                Some(c) => {
                    if c.try_wait()?.is_some() {
                        self.child = None;
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

    /// SIGTERM, wait up to 5 s, then SIGKILL.
    pub fn stop(&mut self) {
        let Some(mut c) = self.child.take() else {
            return;
        };
        if matches!(c.try_wait(), Ok(Some(_))) {
            return;
        }
        signal(c.id(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(c.try_wait(), Ok(Some(_))) {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The last lines of a log file, for error messages.
pub fn log_tail(path: &Path) -> String {
    let s = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = s.lines().collect();
    let from = lines.len().saturating_sub(8);
    lines[from..].join(" | ")
}

/// Whether `prog` is an executable on PATH.
pub fn on_path(prog: &str) -> bool {
    let Some(path) = std::env::var_os("PATH") else {
        return false;
    };
    std::env::split_paths(&path).any(|d| {
        let p = d.join(prog);
        p.is_file()
    })
}

/// The tools the benchmark needs: (program, Debian packages to try in order).
const TOOLS: &[(&str, &[&str])] = &[
    ("nginx", &["nginx-light", "nginx"]),
    ("wrk", &["wrk"]),
    ("haproxy", &["haproxy"]),
    ("iperf3", &["iperf3"]),
    ("nft", &["nftables"]),
    ("valgrind", &["valgrind"]),
    ("ip", &["iproute2"]),
];

fn apt_install(pkg: &str) -> bool {
    let argv = vec![
        "apt-get".to_string(),
        "install".into(),
        "-y".into(),
        "-q".into(),
        pkg.into(),
    ];
    matches!(run_timeout(&argv, Duration::from_secs(600)), Ok(o) if o.status.success())
}

/// Installs missing tools from Debian packages (`apt-get update` once if an install fails).
pub fn ensure_tools(want: &[&str]) -> Result<()> {
    let mut updated = false;
    for (prog, pkgs) in TOOLS {
        if !want.contains(prog) || on_path(prog) {
            continue;
        }
        eprintln!("bench: {prog} missing, installing from Debian packages");
        let mut ok = false;
        for attempt in 0..2 {
            if attempt == 1 && !updated {
                let argv = vec!["apt-get".to_string(), "update".into(), "-q".into()];
                let _ = run_timeout(&argv, Duration::from_secs(600));
                updated = true;
            }
            if pkgs.iter().any(|p| apt_install(p)) && on_path(prog) {
                ok = true;
                break;
            }
        }
        if !ok {
            bail!(
                "{prog} is missing and `apt-get install {}` failed",
                pkgs.join(" or ")
            );
        }
    }
    Ok(())
}

/// /proc/stat's aggregate CPU times.
pub fn cpu_times() -> Option<super::parse::CpuTimes> {
    super::parse::parse_proc_stat(&std::fs::read_to_string("/proc/stat").ok()?)
}

/// A process's utime + stime in clock ticks.
pub fn process_ticks(pid: u32) -> Option<u64> {
    super::parse::parse_pid_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Clock ticks per second of /proc/stat (USER_HZ; 100 on Linux for every architecture we run on).
pub const CLOCK_TICKS: f64 = 100.0;
