//! Helpers for the end-to-end tests: the root/namespace/TUN gate and a lab per test.

use crate::lab::{Lab, LabConfig};

/// Why the lab cannot run here, if it cannot.
pub fn missing_prerequisite() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
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
    ONCE.call_once(|| reap_stale_labs("rvst"));
}

/// Removes labs whose prefix is `STEM<PID>...` (namespaces `STEM<PID>-...`, state directories
/// `rvs-lab-STEM<PID>...`) when process PID no longer runs, with their processes: the tests use `rvst`, the bench
/// `rvsb`.
pub fn reap_stale_labs(stem: &str) {
    let Ok(list) = crate::cmd::ip(&["netns", "list"]) else {
        return;
    };
    let dead = |rest: &str| {
        let pid = rest.split(['-', '_']).next().unwrap_or("");
        pid.parse::<u32>()
            .is_ok_and(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists())
    };
    let mut prefixes = std::collections::BTreeSet::new();
    for line in list.lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(rest) = name.strip_prefix(stem) else {
            continue;
        };
        if rest.contains('-')
            && dead(rest)
            && let Some((prefix, _)) = name.rsplit_once('-')
        {
            prefixes.insert(prefix.to_string());
        }
    }
    for prefix in prefixes {
        eprintln!("removing the stale lab {prefix} (the process that built it is gone)");
        let _ = crate::manage::down(&prefix);
    }
    // Their state directories (rvsd socket, rules, logs) too.
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    let dir_stem = format!("rvs-lab-{stem}");
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.strip_prefix(&dir_stem).is_some_and(dead) {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
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
