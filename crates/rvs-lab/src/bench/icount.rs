//! `rvs-lab bench --icount`: instructions per packet of `rvs_core::Director::process`, counted by valgrind.
//!
//! The example `core_icount` (crates/rvs-lab/examples/core_icount.rs) prepares N packets and then either feeds
//! them to the director (`run`) or only copies them the same way (`baseline`). The difference of the two
//! instruction totals, divided by N, is the cost of `process` alone: set-up, packet building and the copy loop
//! cancel out.

use super::parse::parse_callgrind_collected;
use super::sys;
use anyhow::{Context, Result, bail};
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
    let argv = vec![
        "cargo".to_string(),
        "build".into(),
        "--release".into(),
        "-p".into(),
        "rvs-lab".into(),
        "--example".into(),
        "core_icount".into(),
        "--manifest-path".into(),
        workspace.join("Cargo.toml").display().to_string(),
    ];
    eprintln!("bench: building the core_icount example (release)");
    let o = sys::run_timeout(&argv, Duration::from_secs(900))?;
    if !o.status.success() {
        bail!("building core_icount failed: {}", o.stderr.trim());
    }
    let p = workspace.join("target/release/examples/core_icount");
    if !p.is_file() {
        bail!("{} missing after build", p.display());
    }
    Ok(p)
}

fn instructions(bin: &Path, mode: &str, kind: &str, n: u64) -> Result<u64> {
    let argv = vec![
        "valgrind".to_string(),
        "--tool=callgrind".into(),
        "--callgrind-out-file=/dev/null".into(),
        bin.display().to_string(),
        mode.into(),
        kind.into(),
        n.to_string(),
    ];
    let o = sys::run_timeout(&argv, Duration::from_secs(600))?;
    if !o.status.success() {
        bail!(
            "valgrind {mode} {kind} {n} failed: {}",
            o.stderr
                .lines()
                .rev()
                .take(5)
                .collect::<Vec<_>>()
                .join(" | ")
        );
    }
    // The example checks its verdicts and says how many packets were forwarded.
    if mode == "run" && !o.stdout.contains(&format!("forwarded {n}")) {
        bail!(
            "core_icount {kind}: not every packet was forwarded: {}",
            o.stdout.trim()
        );
    }
    parse_callgrind_collected(&o.stderr).context("no instruction total in valgrind's output")
}

/// Prints instructions per packet for each flow kind.
pub fn run(n: u64) -> Result<()> {
    if n == 0 || n > 10_000_000 {
        bail!("--icount-packets must be 1..=10000000");
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
