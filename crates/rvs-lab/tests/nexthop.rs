//! The router-side remedy for ECMP rehash (SCALING.md): Linux's resilient next-hop groups
//! (`ip nexthop add id N group A/B/C type resilient`) move only the departed next hop's flows when a director
//! leaves, and only flows *to* a director when it returns; the plain (hash-threshold) multipath group moves flows
//! between surviving directors too. Shown on the kernel's own route lookup (`ip route get ... ipproto tcp sport P`
//! with the L4 multipath hash) for 1,000 flows: no traffic, one namespace with one veth pair.
//!
//! Needs root, namespaces and a kernel with resilient groups (5.13+): FAILS under CI=true without them, skips
//! (printing why) otherwise.

#![cfg_attr(test, allow(clippy::unwrap_used))]

use std::io::Write;
use std::process::{Command, Stdio};

use rvs_lab::testing;

const VIP: &str = "198.51.100.100";
/// The three directors' addresses on the router's link.
const DIRECTORS: [&str; 3] = ["198.18.0.2", "198.18.0.3", "198.18.0.4"];
const FLOWS: u16 = 1000;

/// A namespace this test created, removed on drop (also when an assertion fails).
struct Ns(String);

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn ip(ns: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new("ip")
        .args(["-n", ns])
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "ip -n {ns} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn must(ns: &str, args: &[&str]) -> String {
    ip(ns, args).unwrap_or_else(|e| panic!("{e}"))
}

/// The next hop the kernel picks for each of the flows (client 198.18.0.1, source ports 20000.., to VIP:80), in
/// one `ip -batch` run.
fn next_hops(ns: &str) -> Vec<String> {
    let mut child = Command::new("ip")
        .args(["-n", ns, "-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ip -batch");
    let mut script = String::new();
    for p in 0..FLOWS {
        script.push_str(&format!(
            "route get {VIP} from 198.18.0.1 ipproto tcp sport {} dport 80\n",
            20_000 + p
        ));
    }
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(script.as_bytes())
        .expect("writing to ip -batch");
    let out = child.wait_with_output().expect("ip -batch");
    assert!(
        out.status.success(),
        "ip -batch: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let hops: Vec<String> = text
        .lines()
        .filter(|l| l.starts_with(VIP))
        .map(|l| {
            let mut w = l.split_whitespace();
            w.find(|x| *x == "via");
            w.next().unwrap_or("none").to_string()
        })
        .collect();
    assert_eq!(
        hops.len(),
        usize::from(FLOWS),
        "one route per flow:\n{text}"
    );
    hops
}

/// (flows that moved between two directors that are both still there, flows that moved at all)
fn moves(
    before: &[String],
    after: &[String],
    gone: Option<&str>,
    new: Option<&str>,
) -> (usize, usize) {
    let mut between_survivors = 0;
    let mut moved = 0;
    for (b, a) in before.iter().zip(after) {
        if a != b {
            moved += 1;
            if Some(b.as_str()) != gone && Some(a.as_str()) != new {
                between_survivors += 1;
            }
        }
    }
    (between_survivors, moved)
}

fn share(hops: &[String], d: &str) -> f64 {
    hops.iter().filter(|h| *h == d).count() as f64 / hops.len() as f64
}

#[test]
fn resilient_next_hop_groups_move_only_the_departed_directors_flows() {
    let test = "resilient_next_hop_groups_move_only_the_departed_directors_flows";
    if !testing::lab_available(test) {
        return;
    }
    testing::reap_stale_test_labs();
    let ns = Ns(format!("rvst{}-rnh-router", std::process::id()));
    let n = ns.0.as_str();
    let st = Command::new("ip")
        .args(["netns", "add", n])
        .status()
        .expect("ip netns add");
    assert!(st.success(), "ip netns add {n}");
    must(
        n,
        &["link", "add", "r0", "type", "veth", "peer", "name", "r1"],
    );
    must(n, &["addr", "add", "198.18.0.1/24", "dev", "r0"]);
    must(n, &["link", "set", "r0", "up"]);
    must(n, &["link", "set", "r1", "up"]);
    Command::new("ip")
        .args([
            "netns",
            "exec",
            n,
            "sysctl",
            "-qw",
            "net.ipv4.fib_multipath_hash_policy=1",
        ])
        .status()
        .expect("sysctl");
    // The veth may take a moment to report carrier; next hops need the device up.
    let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !must(n, &["link", "show", "r0"]).contains("LOWER_UP") && std::time::Instant::now() < end
    {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    for (i, d) in DIRECTORS.iter().enumerate() {
        must(
            n,
            &[
                "nexthop",
                "add",
                "id",
                &(11 + i).to_string(),
                "via",
                d,
                "dev",
                "r0",
            ],
        );
    }
    if let Err(e) = ip(
        n,
        &[
            "nexthop",
            "add",
            "id",
            "100",
            "group",
            "11/12/13",
            "type",
            "resilient",
            "buckets",
            "256",
            "idle_timer",
            "0",
        ],
    ) {
        let why = format!("the kernel has no resilient next-hop groups: {e}");
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{test}: {why} (CI=true: this is a failure, not a skip)");
        }
        eprintln!("SKIPPED {test}: {why}");
        return;
    }
    // The hash-threshold group (what BIRD's multipath routes amount to), for the comparison.
    must(n, &["nexthop", "add", "id", "200", "group", "11/12/13"]);
    let (first, middle, last) = (DIRECTORS[0], DIRECTORS[1], DIRECTORS[2]);

    for (group, resilient) in [("200", false), ("100", true)] {
        must(n, &["route", "replace", VIP, "nhid", group]);
        let three = next_hops(n);
        for d in DIRECTORS {
            let s = share(&three, d);
            assert!(
                (0.2..0.47).contains(&s),
                "group {group}: director {d} has {s:.3} of the flows: {three:?}"
            );
        }
        // The last director leaves (the worst case for hash-threshold: every range boundary shifts).
        let rest = if resilient {
            vec![
                "nexthop",
                "replace",
                "id",
                "100",
                "group",
                "11/12",
                "type",
                "resilient",
                "buckets",
                "256",
                "idle_timer",
                "0",
            ]
        } else {
            vec!["nexthop", "replace", "id", "200", "group", "11/12"]
        };
        must(n, &rest);
        let two = next_hops(n);
        assert_eq!(
            share(&two, last),
            0.0,
            "group {group}: no flow left on the departed director"
        );
        let (survivors, moved) = moves(&three, &two, Some(last), None);
        // It comes back.
        let back = if resilient {
            vec![
                "nexthop",
                "replace",
                "id",
                "100",
                "group",
                "11/12/13",
                "type",
                "resilient",
                "buckets",
                "256",
                "idle_timer",
                "0",
            ]
        } else {
            vec!["nexthop", "replace", "id", "200", "group", "11/12/13"]
        };
        must(n, &back);
        let again = next_hops(n);
        let (survivors_back, moved_back) = moves(&two, &again, None, Some(last));
        eprintln!(
            "group {group} ({}): {last} leaves: {moved} of {FLOWS} flows move, {survivors} between the two that stay; \
             it returns: {moved_back} move, {survivors_back} between the other two",
            if resilient {
                "resilient"
            } else {
                "hash-threshold"
            }
        );
        if resilient {
            assert_eq!(
                survivors, 0,
                "resilient: only the departed director's flows move"
            );
            assert_eq!(
                moved,
                three.iter().filter(|h| *h == last).count(),
                "resilient: all of its flows move"
            );
            assert_eq!(
                survivors_back, 0,
                "resilient: on return, flows move only to the returning director"
            );
            assert!(
                share(&again, last) > 0.2,
                "resilient: the returning director gets its share back"
            );
        } else {
            // 3 -> 2 with the last one gone: the flows in (1/3, 1/2] of the hash space go from the middle one to
            // the first: about a sixth of all flows.
            assert!(
                survivors > usize::from(FLOWS) / 10,
                "hash-threshold moves flows between survivors ({survivors}); {first} and {middle} stay"
            );
        }
    }
    must(n, &["route", "del", VIP]);
}
