//! Running code inside a network namespace from this process: a thread that `setns()`s into the namespace
//! (setns is per thread; every socket it then creates belongs to that namespace), plus the two interface settings
//! the lab needs there (TX checksum offload off, GRO on) through rvs-io's ethtool ioctls (`rvs_io::sys`).

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::thread::JoinHandle;

use crate::error::{LabError, Result};

/// Where `ip netns add NAME` bind-mounts a namespace.
pub fn path(ns: &str) -> PathBuf {
    PathBuf::from("/run/netns").join(ns)
}

/// True when the named namespace exists.
pub fn exists(ns: &str) -> bool {
    path(ns).exists()
}

/// Moves the calling thread into the named network namespace.
fn enter(ns: &str) -> Result<()> {
    let file =
        File::open(path(ns)).map_err(LabError::io(format!("opening network namespace {ns}")))?;
    // SAFETY: setns() on a valid open namespace fd; it only changes the calling thread's network namespace.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        return Err(LabError::Io {
            context: format!("setns into network namespace {ns}"),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// Starts `f` on a new thread inside namespace `ns`.
pub fn spawn_in<T, F>(ns: &str, f: F) -> Result<JoinHandle<Result<T>>>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    let ns_owned = ns.to_string();
    std::thread::Builder::new()
        .name(format!("netns-{ns}"))
        .spawn(move || {
            enter(&ns_owned)?;
            f()
        })
        .map_err(LabError::io("spawning a thread"))
}

/// Runs `f` inside namespace `ns` and waits for its result.
pub fn run_in<T, F>(ns: &str, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    let handle = spawn_in(ns, f)?;
    handle.join().map_err(|_| LabError::Process {
        what: format!("a thread in namespace {ns} panicked"),
    })?
}

/// Writes a sysctl of the calling thread's namespace (call inside [`run_in`]).
pub fn write_sysctl(name: &str, value: &str) -> Result<()> {
    let p = PathBuf::from("/proc/sys").join(name.replace('.', "/"));
    std::fs::write(&p, value).map_err(LabError::io(format!("writing sysctl {name}={value}")))
}

/// Turns TX checksum offload off on `ifname` in the calling thread's namespace (like `ethtool -K IF tx off`), so
/// packets sent from this namespace carry complete checksums.
pub fn tx_checksum_off(ifname: &str) -> Result<()> {
    rvs_io::sys::set_tx_checksum(ifname, false).map_err(LabError::io(format!(
        "turning TX checksum offload off on {ifname}"
    )))
}

/// Whether TX checksum offload is on for `ifname` in the calling thread's namespace.
pub fn tx_checksum_on(ifname: &str) -> Result<bool> {
    rvs_io::sys::tx_checksum(ifname).map_err(LabError::io(format!(
        "reading TX checksum offload of {ifname}"
    )))
}

/// Turns GRO on or off on `ifname` in the calling thread's namespace (like `ethtool -K IF gro on`). On a veth, GRO
/// gives the device NAPI, which XDP_REDIRECT into its peer needs.
pub fn set_gro(ifname: &str, on: bool) -> Result<()> {
    rvs_io::sys::set_gro(ifname, on).map_err(LabError::io(format!("setting GRO on {ifname}")))
}

/// Whether GRO is on for `ifname` in the calling thread's namespace.
pub fn gro_on(ifname: &str) -> Result<bool> {
    rvs_io::sys::gro(ifname).map_err(LabError::io(format!("reading GRO of {ifname}")))
}

/// Turns TCP segmentation offload on or off on `ifname` in the calling thread's namespace (like `ethtool -K IF tso
/// off`).
pub fn set_tso(ifname: &str, on: bool) -> Result<()> {
    rvs_io::sys::set_tso(ifname, on).map_err(LabError::io(format!("setting TSO on {ifname}")))
}
