//! The bench's machine: the load tools it needs (installed from Debian packages when missing) and the CPU counters
//! it reads around a measurement (`rvs-lab million` reads rvsd's CPU time through them too). Commands run through
//! the lab's runner ([`crate::cmd`]).

use crate::cmd::run_bounded;
use crate::error::{LabError, Result};
use std::time::Duration;

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

/// The bound of one `apt-get` run.
const INSTALL: Duration = Duration::from_secs(600);

fn apt_install(pkg: &str) -> bool {
    let argv = ["apt-get", "install", "-y", "-q", pkg];
    matches!(run_bounded(&argv, INSTALL), Ok(o) if o.status.success())
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
                let _ = run_bounded(&["apt-get", "update", "-q"], INSTALL);
                updated = true;
            }
            if pkgs.iter().any(|p| apt_install(p)) && on_path(prog) {
                ok = true;
                break;
            }
        }
        if !ok {
            return Err(LabError::Process {
                what: format!(
                    "{prog} is missing and `apt-get install {}` failed",
                    pkgs.join(" or ")
                ),
            });
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
