//! What the program tests share.

/// Whether this process may load BPF programs (root). Without it: a failure under `CI=true`, else a skip said aloud.
pub fn may_load_bpf(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    let why = "not root (loading BPF programs needs CAP_BPF)";
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{test}: {why} (CI=true: this is a failure, not a skip)");
    }
    eprintln!("SKIPPED {test}: {why}");
    false
}
