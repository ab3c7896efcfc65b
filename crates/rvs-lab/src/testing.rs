//! Helpers for the end-to-end tests: the root/namespace/TUN gate and a lab per test.

use crate::lab::{Lab, LabConfig};

/// Why the lab cannot run here, if it cannot.
pub fn missing_prerequisite() -> Option<String> {
    if rvs_io::sys::euid() != 0 {
        return Some("not root (network namespaces need root)".into());
    }
    if !std::path::Path::new("/dev/net/tun").exists() {
        return Some("/dev/net/tun is missing".into());
    }
    match crate::cmd::run_bounded(&["ip", "-V"], crate::cmd::SHORT) {
        Ok(o) if o.status.success() => {}
        _ => return Some("`ip` (iproute2) is not installed".into()),
    }
    None
}

/// True when the lab can run. When it cannot: panics if `CI=true` (the tests must fail there), else prints why the
/// test is skipped and returns false.
pub fn lab_available(test: &str) -> bool {
    match missing_prerequisite() {
        None => true,
        Some(why) => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!(
                    "{test}: the lab cannot run here: {why} (CI=true: this is a failure, not a skip)"
                );
            }
            eprintln!("SKIPPED {test}: {why}");
            false
        }
    }
}

/// Removes labs left behind by test processes that no longer run (namespaces `rvst<PID>-...` whose PID is gone,
/// e.g. after a SIGKILL), with their processes. Runs once per process.
pub fn reap_stale_test_labs() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| crate::manage::reap_stale_labs("rvst"));
}

/// Extra rvsd arguments for every test lab, from `RVS_LAB_RVSD_ARGS` (whitespace-separated): how the suite runs
/// in another mode, e.g. `RVS_LAB_RVSD_ARGS="--fast-path xdp" cargo test -p rvs-lab --test e2e`.
pub fn extra_rvsd_args() -> Vec<String> {
    std::env::var("RVS_LAB_RVSD_ARGS")
        .map(|v| v.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default()
}

/// Whether a test lab's director runs rvsd, or only routes (the plain-router baseline, or a test that starts rvsd
/// itself with options of its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rvsd {
    Started,
    NotStarted,
}

/// A lab with a unique prefix, `real_servers` real servers, the servers and (with [`Rvsd::Started`]) rvsd running;
/// `None` when skipped. Panics with the cause when building fails.
pub fn lab(test: &str, real_servers: usize, rvsd: Rvsd) -> Option<Lab> {
    if !lab_available(test) {
        return None;
    }
    reap_stale_test_labs();
    let cfg = LabConfig {
        real_servers,
        rvsd: rvsd == Rvsd::Started,
        rvsd_args: extra_rvsd_args(),
        ..LabConfig::unique("")
    };
    match Lab::up(cfg) {
        Ok(l) => Some(l),
        Err(e) => panic!("{test}: building the lab failed: {e}"),
    }
}

/// `rvsadm ARGS` against the first director's rvsd, which must succeed: returns stdout; on failure the test panics
/// with rvsadm's message and rvsd's log.
pub fn adm(lab: &Lab, args: &[&str]) -> String {
    lab.rvsadm(args).unwrap_or_else(|e| {
        panic!(
            "rvsadm {}: {e}\nrvsd log:\n{}",
            args.join(" "),
            lab.rvsd_log_text()
        )
    })
}

/// [`adm`] against director `k`'s rvsd.
pub fn adm_in(lab: &Lab, k: usize, args: &[&str]) -> String {
    lab.rvsadm_in(k, args).unwrap_or_else(|e| {
        panic!(
            "director {k}: rvsadm {}: {e}\nrvsd log:\n{}",
            args.join(" "),
            lab.rvsd_log_text_in(k)
        )
    })
}
