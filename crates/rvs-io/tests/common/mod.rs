//! Helpers shared by the namespace tests of rvs-io: a private network namespace that removes itself, running
//! `ip`, entering a namespace from a thread, and the root/TUN check (fail under CI=true, skip outside it).
#![allow(dead_code, clippy::unwrap_used)]

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

static COUNTER: AtomicU32 = AtomicU32::new(0);

pub fn can_run() -> bool {
    let root = rvs_io::sys::euid() == 0;
    let tun = std::path::Path::new("/dev/net/tun").exists();
    let ip = Command::new("ip").arg("-V").output().is_ok();
    if root && tun && ip {
        return true;
    }
    let why = format!("needs root ({root}), /dev/net/tun ({tun}) and iproute2 ({ip})");
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("CI=true: {why}");
    }
    eprintln!("SKIP: {why}");
    false
}

#[derive(Debug)]
pub struct Netns(pub String);
impl Netns {
    pub fn new() -> Self {
        let name = format!(
            "rvsio-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        run(&["ip", "netns", "add", &name]);
        Netns(name)
    }
    pub fn ip(&self, args: &str) -> String {
        let mut full = vec!["ip", "-n", &self.0];
        full.extend(args.split_whitespace());
        run(&full)
    }
}
impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

pub fn run(args: &[&str]) -> String {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Run `f` on a thread that has entered namespace `ns`.
pub fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let fd = std::fs::File::open(path).unwrap();
        nix::sched::setns(fd, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        f()
    })
    .join()
    .unwrap()
}

/// Move the calling thread into namespace `name`.
pub fn enter(name: &str) {
    let fd = std::fs::File::open(format!("/run/netns/{name}")).unwrap();
    nix::sched::setns(fd, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
}
