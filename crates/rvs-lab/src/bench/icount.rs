//! `rvs-lab bench --icount`: instructions per packet of `rvs_core::Director::process`, counted by valgrind.
//!
//! The example `core_icount` (crates/rvs-lab/examples/core_icount.rs) prepares N packets and then either feeds
//! them to the director (`run`) or only copies them the same way (`baseline`). The difference of the two
//! instruction totals, divided by N, is the cost of `process` alone: set-up, packet building and the copy loop
//! cancel out.

use super::parse::parse_callgrind_collected;
use super::sys;
use crate::cmd::run_bounded;
use crate::error::{LabError, Result};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The flow kinds the example knows.
const KINDS: &[(&str, &str)] = &[
    (
        "established",
        "established TCP flow (client->VIP and RS->client alternating)",
    ),
    ("new", "new TCP connection (SYN from a new client port)"),
    (
        "udp",
        "UDP datagram of an existing flow (in and out alternating)",
    ),
];

fn example_binary() -> Result<PathBuf> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let manifest = workspace.join("Cargo.toml").display().to_string();
    let argv = [
        "cargo",
        "build",
        "--release",
        "-p",
        "rvs-lab",
        "--example",
        "core_icount",
        "--manifest-path",
        &manifest,
    ];
    eprintln!("bench: building the core_icount example (release)");
    let o = run_bounded(&argv, Duration::from_secs(900))?;
    if !o.status.success() {
        return Err(LabError::Process {
            what: format!("building core_icount failed: {}", o.stderr.trim()),
        });
    }
    let p = workspace.join("target/release/examples/core_icount");
    if !p.is_file() {
        return Err(LabError::Process {
            what: format!("{} missing after build", p.display()),
        });
    }
    Ok(p)
}

fn instructions(bin: &Path, mode: &str, kind: &str, n: u64) -> Result<u64> {
    let (bin, n_text) = (bin.display().to_string(), n.to_string());
    let argv = [
        "valgrind",
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        &bin,
        mode,
        kind,
        &n_text,
    ];
    let o = run_bounded(&argv, Duration::from_secs(600))?;
    if !o.status.success() {
        return Err(LabError::Process {
            what: format!(
                "valgrind {mode} {kind} {n} failed: {}",
                o.stderr
                    .lines()
                    .rev()
                    .take(5)
                    .collect::<Vec<_>>()
                    .join(" | ")
            ),
        });
    }
    // The example checks its verdicts and says how many packets were forwarded.
    if mode == "run" && !o.stdout.contains(&format!("forwarded {n}")) {
        return Err(LabError::Check(format!(
            "core_icount {kind}: not every packet was forwarded: {}",
            o.stdout.trim()
        )));
    }
    parse_callgrind_collected(&o.stderr)
        .ok_or_else(|| LabError::Check("no instruction total in valgrind's output".into()))
}

/// Prints instructions per packet for each flow kind.
pub fn run(n: u64) -> Result<()> {
    if n == 0 || n > 10_000_000 {
        return Err(LabError::Invalid(
            "--icount-packets must be 1..=10000000".into(),
        ));
    }
    sys::ensure_tools(&["valgrind"])?;
    let bin = example_binary()?;
    println!(
        "rvs-core Director::process, instructions per packet (valgrind callgrind, {n} packets, baseline subtracted)"
    );
    println!();
    println!("| packet | instructions/packet |");
    println!("|---|---|");
    for (kind, what) in KINDS {
        let run = instructions(&bin, "run", kind, n)?;
        let base = instructions(&bin, "baseline", kind, n)?;
        let per = run.saturating_sub(base) as f64 / n as f64;
        println!("| {what} | {per:.0} |");
    }
    Ok(())
}
