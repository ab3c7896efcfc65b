//! Everything a lab creates is registered here, so it is removed on drop, on a panic (Drop runs while unwinding) and
//! on SIGINT/SIGTERM (the binary's signal thread calls [`teardown_all`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Child;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How a process is asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopSignal {
    /// SIGTERM, then SIGKILL after a grace period (rvsd: it removes its steering on SIGTERM).
    Term,
    /// SIGKILL straight away (the lab's own servers).
    Kill,
}

/// A process the lab started, with its name for messages.
#[derive(Debug)]
pub struct Proc {
    pub name: String,
    pub child: Child,
    pub stop: StopSignal,
}

/// What one lab owns.
#[derive(Debug, Default)]
pub struct Resources {
    pub procs: Vec<Proc>,
    pub namespaces: Vec<String>,
    pub dirs: Vec<PathBuf>,
}

/// Sends `sig` to `pid` (a process the lab started).
pub fn signal(pid: u32, sig: libc::c_int) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill(2) with a pid of a child we started; no memory is involved.
    unsafe { libc::kill(pid, sig) == 0 }
}

/// Sends `sig` to every process of group `group` (a group the lab started: its leader not yet reaped).
pub fn signal_group(group: libc::pid_t, sig: libc::c_int) -> bool {
    if group <= 1 {
        return false;
    }
    // SAFETY: kill(2) with a negative pid (a process group); no memory is involved.
    unsafe { libc::kill(-group, sig) == 0 }
}

/// Stops a child and reaps it; returns its exit status text.
pub fn stop_proc(p: &mut Proc, grace: Duration) -> String {
    if let Ok(Some(status)) = p.child.try_wait() {
        return format!("had already exited ({status})");
    }
    match p.stop {
        StopSignal::Term => {
            signal(p.child.id(), libc::SIGTERM);
            let deadline = Instant::now() + grace;
            while Instant::now() < deadline {
                if let Ok(Some(status)) = p.child.try_wait() {
                    return status.to_string();
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = p.child.kill();
            let _ = p.child.wait();
            "did not stop on SIGTERM; killed".to_string()
        }
        StopSignal::Kill => {
            let _ = p.child.kill();
            match p.child.wait() {
                Ok(s) => s.to_string(),
                Err(e) => format!("wait failed: {e}"),
            }
        }
    }
}

impl Resources {
    /// Removes everything, processes first (newest first), then namespaces, then directories. Idempotent.
    pub fn teardown(&mut self) -> Vec<String> {
        let mut problems = Vec::new();
        while let Some(mut p) = self.procs.pop() {
            let status = stop_proc(&mut p, Duration::from_secs(5));
            if status.contains("killed") {
                problems.push(format!("{}: {status}", p.name));
            }
        }
        while let Some(ns) = self.namespaces.pop() {
            if crate::netns::exists(&ns)
                && let Err(e) = crate::cmd::ip(&["netns", "del", ns.as_str()])
            {
                problems.push(format!("removing namespace {ns}: {e}"));
            }
        }
        while let Some(d) = self.dirs.pop() {
            if d.exists()
                && let Err(e) = std::fs::remove_dir_all(&d)
            {
                problems.push(format!("removing {}: {e}", d.display()));
            }
        }
        problems
    }
}

type Registry = BTreeMap<u64, Arc<Mutex<Resources>>>;
static REGISTRY: Mutex<Registry> = Mutex::new(BTreeMap::new());
static NEXT: AtomicU64 = AtomicU64::new(1);

fn registry() -> MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

/// Locks one lab's resources (a poisoned lock is still usable for cleanup).
pub fn lock(r: &Mutex<Resources>) -> MutexGuard<'_, Resources> {
    r.lock().unwrap_or_else(|e| e.into_inner())
}

/// A registered set of resources: removed when dropped unless detached.
#[derive(Debug)]
pub struct Guard {
    id: u64,
    pub resources: Arc<Mutex<Resources>>,
}

impl Guard {
    /// Registers a new, empty set of resources.
    pub fn new() -> Guard {
        let id = NEXT.fetch_add(1, Ordering::Relaxed);
        let resources = Arc::new(Mutex::new(Resources::default()));
        registry().insert(id, resources.clone());
        Guard { id, resources }
    }

    /// Adds a namespace to remove.
    pub fn add_namespace(&self, ns: &str) {
        lock(&self.resources).namespaces.push(ns.to_string());
    }

    /// Adds a directory to remove.
    pub fn add_dir(&self, d: PathBuf) {
        lock(&self.resources).dirs.push(d);
    }

    /// Adds a process to stop.
    pub fn add_proc(&self, p: Proc) {
        lock(&self.resources).procs.push(p);
    }

    /// Removes everything now.
    pub fn teardown(&self) -> Vec<String> {
        lock(&self.resources).teardown()
    }

    /// Forgets everything without removing it (`rvs-lab up` leaves the lab running); returns the resources.
    pub fn detach(self) -> Resources {
        registry().remove(&self.id);
        let taken = std::mem::take(&mut *lock(&self.resources));
        std::mem::forget(self);
        taken
    }
}

impl Default for Guard {
    fn default() -> Self {
        Guard::new()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let problems = self.teardown();
        registry().remove(&self.id);
        for p in problems {
            eprintln!("rvs-lab cleanup: {p}");
        }
    }
}

/// Removes every registered lab (called from the signal thread before exiting).
pub fn teardown_all() {
    let all: Vec<_> = registry().values().cloned().collect();
    for r in all {
        for p in lock(&r).teardown() {
            eprintln!("rvs-lab cleanup: {p}");
        }
    }
}

/// Installs a SIGINT/SIGTERM/SIGHUP handler thread that removes every registered lab and exits with 130.
pub fn install_signal_handler() -> std::io::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    std::thread::Builder::new()
        .name("rvs-lab-signals".into())
        .spawn(move || {
            if let Some(sig) = signals.forever().next() {
                eprintln!("\nrvs-lab: caught signal {sig}; removing the lab ...");
                teardown_all();
                std::process::exit(130);
            }
        })?;
    Ok(())
}
