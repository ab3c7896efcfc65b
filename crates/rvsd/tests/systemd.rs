//! rvsd under systemd's protocols, with a real rvsd in a namespace of its own (two veth ends give it a public and a
//! private side): READY=1 only once the rules file is loaded and the control socket answers, WATCHDOG=1 pings at
//! half the asked period, RELOADING=1 then READY=1 around a SIGHUP reload, STOPPING=1 at SIGTERM; logs without
//! colour codes on a pipe, and one JSON object per line with --log-format json.
//!
//! Needs root, /dev/net/tun and iproute2: FAILS under CI=true without them, skips (printing why) otherwise.
#![allow(clippy::unwrap_used)]

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rvs_api::Reply;
use rvs_api::client::Client;

fn can_run() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let root = status
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"));
    let tun = Path::new("/dev/net/tun").exists();
    let ip = Command::new("ip")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
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

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A namespace, a temp dir and the rvsd child: removed / killed (by PID) on drop, also when the test fails.
struct Sandbox {
    ns: String,
    dir: PathBuf,
    rvsd: Option<Child>,
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Some(mut c) = self.rvsd.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn setup(tag: &str) -> Sandbox {
    let ns = format!("rvsdsd-{}-{tag}", std::process::id());
    let dir = std::env::temp_dir().join(&ns);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let b = Sandbox {
        ns,
        dir,
        rvsd: None,
    };
    ip(&["netns", "add", &b.ns]);
    let n = b.ns.as_str();
    ip(&["-n", n, "link", "set", "lo", "up"]);
    ip(&[
        "-n", n, "link", "add", "pub0", "type", "veth", "peer", "name", "priv0",
    ]);
    ip(&["-n", n, "addr", "add", "198.51.100.1/24", "dev", "pub0"]);
    ip(&["-n", n, "addr", "add", "203.0.113.1/24", "dev", "priv0"]);
    ip(&["-n", n, "link", "set", "pub0", "up"]);
    ip(&["-n", n, "link", "set", "priv0", "up"]);
    b
}

const ONE: &str =
    "-A -t 198.51.100.100:80 -s rr\n-a -t 198.51.100.100:80 -r 203.0.113.11:80 -m -w 1\n";
const TWO: &str = "-A -t 198.51.100.100:80 -s rr\n-a -t 198.51.100.100:80 -r 203.0.113.11:80 -m -w 1\n\
-A -u 198.51.100.100:53 -s rr\n-a -u 198.51.100.100:53 -r 203.0.113.12:53 -m -w 1\n";

fn services(sock: &Path) -> usize {
    match Client::connect(sock)
        .unwrap()
        .call(rvs_api::Command::ListServices)
        .unwrap()
    {
        Reply::Services(s) => s.len(),
        other => panic!("unexpected {other:?}"),
    }
}

/// The next notification that is not a watchdog ping.
fn next_state(n: &UnixDatagram, pings: &mut usize) -> String {
    let mut buf = [0u8; 1024];
    loop {
        let len = n.recv(&mut buf).expect("a notification within the timeout");
        let msg = String::from_utf8_lossy(&buf[..len]).into_owned();
        if msg == "WATCHDOG=1" {
            *pings += 1;
            continue;
        }
        return msg;
    }
}

#[test]
fn notify_ready_after_rules_watchdog_reload_and_stop() {
    if !can_run() {
        return;
    }
    let mut b = setup("n");
    let rules = b.dir.join("rules");
    std::fs::write(&rules, ONE).unwrap();
    let notify_path = b.dir.join("notify");
    let n = UnixDatagram::bind(&notify_path).unwrap();
    n.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let sock = b.dir.join("rvsd.sock");
    let child = Command::new("ip")
        .args(["netns", "exec", &b.ns, env!("CARGO_BIN_EXE_rvsd")])
        .arg("--socket")
        .arg(&sock)
        .arg("--rules")
        .arg(&rules)
        .args(["--no-save", "--workers", "1"])
        .env("NOTIFY_SOCKET", &notify_path)
        .env("WATCHDOG_USEC", "400000")
        .env_remove("WATCHDOG_PID")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    b.rvsd = Some(child);
    let mut pings = 0;

    let ready = next_state(&n, &mut pings);
    assert!(
        ready.starts_with("READY=1\nSTATUS=1 virtual services"),
        "{ready}"
    );
    // READY means ready: the rules are in and the socket answers now, without retrying.
    assert_eq!(services(&sock), 1);

    // Watchdog pings every ~200 ms (half of 400 ms).
    let t0 = Instant::now();
    let mut buf = [0u8; 64];
    let mut seen = 0;
    while seen < 3 {
        let len = n.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"WATCHDOG=1");
        seen += 1;
    }
    assert!(t0.elapsed() < Duration::from_secs(20), "pings keep coming");

    // SIGHUP: RELOADING=1 (with the monotonic clock), the new rules, READY=1.
    std::fs::write(&rules, TWO).unwrap();
    let pid = b.rvsd.as_ref().unwrap().id();
    // `ip netns exec` execs rvsd in place: the child's PID is rvsd's.
    Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .unwrap();
    let reloading = next_state(&n, &mut pings);
    assert!(
        reloading.starts_with("RELOADING=1\nMONOTONIC_USEC="),
        "{reloading}"
    );
    let usec: u64 = reloading
        .lines()
        .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
        .unwrap()
        .parse()
        .unwrap();
    assert!(usec > 0);
    let ready = next_state(&n, &mut pings);
    assert!(
        ready.starts_with("READY=1\nSTATUS=2 virtual services"),
        "{ready}"
    );
    assert_eq!(services(&sock), 2);

    // A broken rules file: still RELOADING/READY, configuration unchanged.
    std::fs::write(&rules, "-A -t 198.51.100.100:80 -s nosuchsched\n").unwrap();
    Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .unwrap();
    assert!(next_state(&n, &mut pings).starts_with("RELOADING=1"));
    assert!(next_state(&n, &mut pings).starts_with("READY=1\nSTATUS=2 virtual services"));

    Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(next_state(&n, &mut pings).starts_with("STOPPING=1"));
    let out = b.rvsd.take().unwrap().wait_with_output().unwrap();
    assert!(out.status.success(), "exit {}", out.status);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("rvsd ready") && log.contains("reload failed"),
        "{log}"
    );
    assert!(!log.contains('\x1b'), "no colour codes on a pipe: {log:?}");
}

#[test]
fn json_logs_are_one_object_per_line() {
    if !can_run() {
        return;
    }
    let mut b = setup("j");
    let rules = b.dir.join("rules");
    std::fs::write(&rules, ONE).unwrap();
    let sock = b.dir.join("rvsd.sock");
    let child = Command::new("ip")
        .args(["netns", "exec", &b.ns, env!("CARGO_BIN_EXE_rvsd")])
        .arg("--socket")
        .arg(&sock)
        .arg("--rules")
        .arg(&rules)
        .args(["--no-save", "--workers", "1", "--log-format", "json"])
        .env_remove("NOTIFY_SOCKET")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    b.rvsd = Some(child);
    let t0 = Instant::now();
    while Client::connect(&sock).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "rvsd did not come up"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    let out = b.rvsd.take().unwrap().wait_with_output().unwrap();
    assert!(out.status.success());
    let log = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let ready = lines
        .iter()
        .find(|v| v["message"] == "rvsd ready")
        .unwrap_or_else(|| panic!("no ready line in {log}"));
    assert_eq!(ready["level"], "INFO");
    assert_eq!(ready["services"], 1);
    assert!(ready["timestamp"].is_string());
}
