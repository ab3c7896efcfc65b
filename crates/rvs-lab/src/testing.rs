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
    match std::process::Command::new("ip").arg("-V").output() {
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

/// A lab with a unique prefix, `real_servers` real servers, the servers and (if `rvsd`) rvsd running; `None` when
/// skipped. Panics with the cause when building fails.
pub fn lab(test: &str, real_servers: usize, rvsd: bool) -> Option<Lab> {
    if !lab_available(test) {
        return None;
    }
    let cfg = LabConfig {
        real_servers,
        rvsd,
        ..LabConfig::unique("")
    };
    match Lab::up(cfg) {
        Ok(l) => Some(l),
        Err(e) => panic!("{test}: building the lab failed: {e}"),
    }
}
