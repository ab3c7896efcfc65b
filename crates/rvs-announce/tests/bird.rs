//! The BIRD control-socket client against a real BIRD (bird2), run in a network namespace of its own with a
//! configuration holding one disabled `protocol static` (nothing is exported to any kernel table).
//!
//! Needs root, iproute2 and bird: FAILS under CI=true without them, skips (printing why) otherwise.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rvs_announce::bird::{Bird, BirdError, Change};

fn can_run() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let root = status
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"));
    let has = |p: &str| Command::new(p).arg("--version").output().is_ok();
    let (ip, bird) = (
        Command::new("ip").arg("-V").output().is_ok(),
        has("bird") || std::path::Path::new("/usr/sbin/bird").exists(),
    );
    if root && ip && bird {
        return true;
    }
    let why =
        format!("needs root ({root}), iproute2 ({ip}) and bird ({bird}; apt-get install bird2)");
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("CI=true: {why}");
    }
    eprintln!("SKIP: {why}");
    false
}

/// A namespace with a BIRD in it; both removed on drop.
struct Lab {
    ns: String,
    dir: PathBuf,
    bird: Option<Child>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(mut c) = self.bird.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn enable_disable_and_errors_against_a_real_bird() {
    if !can_run() {
        return;
    }
    let ns = format!("rvsat{}", std::process::id());
    let dir = std::env::temp_dir().join(&ns);
    std::fs::create_dir_all(&dir).unwrap();
    let mut lab = Lab {
        ns: ns.clone(),
        dir: dir.clone(),
        bird: None,
    };
    assert!(
        Command::new("ip")
            .args(["netns", "add", &ns])
            .status()
            .unwrap()
            .success()
    );
    let conf = dir.join("bird.conf");
    std::fs::write(
        &conf,
        "router id 198.51.100.1;\nprotocol device {}\n\
         protocol static rvs_vip4 { disabled; ipv4; route 198.51.100.100/32 unreachable; }\n",
    )
    .unwrap();
    let sock = dir.join("bird.ctl");
    let bird = if std::path::Path::new("/usr/sbin/bird").exists() {
        "/usr/sbin/bird"
    } else {
        "bird"
    };
    lab.bird = Some(
        Command::new("ip")
            .args(["netns", "exec", &ns, bird, "-f", "-c"])
            .arg(&conf)
            .arg("-s")
            .arg(&sock)
            .arg("-P")
            .arg(dir.join("bird.pid"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("bird.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    let start = Instant::now();
    let mut b = loop {
        match Bird::connect(&sock, Duration::from_secs(2)) {
            Ok(b) => break b,
            Err(e) if start.elapsed() < Duration::from_secs(10) => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!(
                "BIRD did not come up: {e}\n{}",
                std::fs::read_to_string(dir.join("bird.log")).unwrap_or_default()
            ),
        }
    };
    let state = |b: &mut Bird| {
        let a = b.command("show protocols rvs_vip4").unwrap();
        let row = a
            .lines
            .iter()
            .find(|(code, text)| *code == 1002 && text.starts_with("rvs_vip4"))
            .unwrap_or_else(|| panic!("{a:?}"))
            .1
            .clone();
        row.split_whitespace().nth(3).unwrap_or("").to_string()
    };
    assert_eq!(state(&mut b), "down", "configured disabled");
    assert_eq!(b.set_enabled("rvs_vip4", true).unwrap(), Change::Changed);
    assert_eq!(b.set_enabled("rvs_vip4", true).unwrap(), Change::AlreadySo);
    assert_eq!(state(&mut b), "up");
    let routes = b.command("show route protocol rvs_vip4").unwrap();
    assert!(
        routes
            .lines
            .iter()
            .any(|l| l.1.contains("198.51.100.100/32")),
        "{routes:?}"
    );
    assert_eq!(b.set_enabled("rvs_vip4", false).unwrap(), Change::Changed);
    assert_eq!(b.set_enabled("rvs_vip4", false).unwrap(), Change::AlreadySo);
    assert_eq!(state(&mut b), "down");
    // A protocol BIRD does not know is an error carrying BIRD's message, and the connection stays usable.
    match b.set_enabled("no_such_protocol", true) {
        Err(BirdError::Refused { code, .. }) => assert!(code >= 8000, "{code}"),
        other => panic!("{other:?}"),
    }
    assert!(b.command("bogus command").is_err());
    assert_eq!(b.set_enabled("rvs_vip4", true).unwrap(), Change::Changed);
    // A socket nobody listens on.
    assert!(matches!(
        Bird::connect(&dir.join("nothing.ctl"), Duration::from_secs(1)),
        Err(BirdError::Connect { .. })
    ));
}
