//! Interoperability with keepalived's own VRRP (not a re-implementation: the `keepalived` binary,
//! in a director namespace, VRRP v2 as it sends by default): an rvs director and a keepalived
//! director with the same VRID elect one master and fail over both ways.
//!
//! rvsd on director 1: `--vrrp ... priority=150,nopreempt`; keepalived on director 2: priority
//! 100, the VIP as its `virtual_ipaddress`.
//! 1. rvs master, keepalived backup (the VIP is not on director 2).
//! 2. rvsd stops (priority 0): keepalived becomes master (the VIP appears on director 2).
//! 3. rvsd starts again: with nopreempt it stays backup under keepalived.
//! 4. keepalived is killed (SIGKILL): rvs takes over within its master-down interval.

#![cfg_attr(test, allow(clippy::unwrap_used))]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rvs_lab::lab::{self, Lab, LabConfig};
use rvs_lab::testing;

fn keepalived_available(test: &str) -> bool {
    if Command::new("keepalived").arg("--version").output().is_ok() {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test}: keepalived is not installed (CI=true: a failure, not a skip)");
    }
    eprintln!("SKIPPED {test}: keepalived is not installed");
    false
}

/// keepalived in `ns`, VRRP only, in the foreground; killed (with its VRRP child) on drop.
struct Keepalived {
    parent: Child,
    vrrp_pid_file: std::path::PathBuf,
}

impl Keepalived {
    fn start(ns: &str, dir: &std::path::Path) -> Keepalived {
        let conf = dir.join("keepalived.conf");
        std::fs::write(
            &conf,
            format!(
                "global_defs {{\n  router_id rvs_interop\n}}\n\
                 vrrp_instance VI_1 {{\n  state BACKUP\n  interface {pub_if}\n  virtual_router_id 51\n  \
                 priority 100\n  advert_int 1\n  virtual_ipaddress {{\n    {vip}/32 dev {pub_if}\n  }}\n}}\n",
                pub_if = lab::PUBLIC_IF,
                vip = lab::VIP
            ),
        )
        .unwrap();
        let vrrp_pid_file = dir.join("vrrp.pid");
        let parent = Command::new("ip")
            .args(["netns", "exec", ns, "keepalived", "-n", "-l", "-P", "-f"])
            .arg(&conf)
            .arg("-p")
            .arg(dir.join("keepalived.pid"))
            .arg("-r")
            .arg(&vrrp_pid_file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Keepalived {
            parent,
            vrrp_pid_file,
        }
    }

    /// SIGKILL the parent and its VRRP child (a crash: no priority-0 advertisement).
    fn kill(&mut self) {
        let child = std::fs::read_to_string(&self.vrrp_pid_file)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok());
        // The VRRP child first (its pid file is ours alone): killing the parent first would let the
        // child resign cleanly (parent-death signal) instead of crashing.
        if let Some(pid) = child {
            let _ = Command::new("kill")
                .args(["-9", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
        let _ = self.parent.kill();
        let _ = self.parent.wait();
    }
}

impl Drop for Keepalived {
    fn drop(&mut self) {
        self.kill();
    }
}

fn vip_on(lab: &Lab, k: usize) -> bool {
    lab.ip(&lab.director_n(k), &["addr", "show", lab::PUBLIC_IF])
        .unwrap()
        .contains(&format!("{}/32", lab::VIP))
}

fn rvs_state(lab: &Lab) -> String {
    let out = lab.rvsadm_in(1, &["--json", "-L", "--daemon"]).unwrap();
    let j: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
    j["vrrp"][0]["state"].as_str().unwrap_or("").to_owned()
}

fn wait(what: &str, limit: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
    t.elapsed()
}

#[test]
fn rvs_and_keepalived_elect_one_master_and_fail_over_both_ways() {
    let test = "rvs_and_keepalived_elect_one_master_and_fail_over_both_ways";
    if !testing::lab_available(test) || !keepalived_available(test) {
        return;
    }
    testing::reap_stale_test_labs();
    let cfg = LabConfig {
        real_servers: 1,
        directors: 2,
        rvsd_directors: 1,
        rvsd_args: vec![
            "--vrrp".into(),
            format!(
                "name=VI_1,interface={},vrid=51,priority=150,address={},advert-int=1,nopreempt",
                lab::PUBLIC_IF,
                lab::VIP
            ),
        ],
        ..LabConfig::unique("kv")
    };
    let mut lab = Lab::up(cfg).unwrap();
    let dir = std::env::temp_dir().join(format!("rvs-keepalived-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // 1. rvs becomes master alone, then keepalived joins as backup and stays backup.
    wait("rvs master", Duration::from_secs(10), || {
        rvs_state(&lab) == "MASTER"
    });
    let mut k = Keepalived::start(&lab.director_n(2), &dir);
    std::thread::sleep(Duration::from_secs(5));
    assert!(
        !vip_on(&lab, 2),
        "keepalived took the VIP from an rvs master"
    );
    assert_eq!(rvs_state(&lab), "MASTER");

    // 2. rvsd stops (it resigns with priority 0): keepalived takes over.
    lab.stop_rvsd_in(1).unwrap();
    let t = wait("keepalived master", Duration::from_secs(10), || {
        vip_on(&lab, 2)
    });
    eprintln!("rvs -> keepalived (rvs resigned): {t:?}");

    // 3. rvsd back, nopreempt: it stays backup under keepalived's adverts.
    lab.start_rvsd_in(1).unwrap();
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(
        rvs_state(&lab),
        "BACKUP",
        "rvs did not accept keepalived's advertisements"
    );
    assert!(vip_on(&lab, 2));

    // 4. keepalived crashes: rvs takes over within its master-down interval (3 s + 414 ms skew).
    k.kill();
    let t = wait("rvs master again", Duration::from_secs(10), || {
        rvs_state(&lab) == "MASTER"
    });
    eprintln!("keepalived (killed) -> rvs: {t:?}");
    assert!(
        t > Duration::from_secs(2) && t < Duration::from_millis(3414 + 1000),
        "{t:?}: a crash is noticed after the master-down interval"
    );
    drop(k);
    let _ = std::fs::remove_dir_all(&dir);
    lab.down().unwrap();
}
