//! Steering in a private network namespace: install, check with `ip`, remove, check nothing is left.
//! Needs root and /dev/net/tun: FAILS under CI=true without them, skips (printing why) otherwise.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::process::Command;

use common::{Netns, can_run, in_netns};
use rvs_io::{Steering, SteeringConfig, TunDevice};

#[test]
fn install_check_and_remove_all() {
    if !can_run() {
        return;
    }
    let ns = Netns::new();
    ns.ip("link add pub0 type veth peer name pubx");
    ns.ip("link add priv0 type veth peer name privx");
    for d in ["pub0", "priv0", "pubx", "privx", "lo"] {
        ns.ip(&format!("link set {d} up"));
    }
    ns.ip("addr add 198.51.100.1/24 dev pub0");
    ns.ip("addr add 203.0.113.1/24 dev priv0");
    // A route that is not ours for 198.51.100.200, to be refused.
    ns.ip("route add 198.51.100.200/32 dev pub0");

    let name = ns.0.clone();
    let (vips, ifs, refused_local, refused_route, removed_again) = in_netns(&name, || {
        let (_dev, queues) = TunDevice::create("rvs0", 2).unwrap();
        let mut s = Steering::new(SteeringConfig::new("rvs0")).unwrap();
        s.remove_all().unwrap();
        s.install_base().unwrap();
        let vip: IpAddr = "198.51.100.100".parse().unwrap();
        let rips: BTreeSet<IpAddr> = ["203.0.113.11".parse().unwrap()].into();
        s.reconcile(&[vip].into(), &rips).unwrap();
        let vips: Vec<IpAddr> = s.vips().collect();
        let ifs: Vec<String> = s.reply_interfaces().map(|(_, n)| n.to_owned()).collect();
        let refused_local = s
            .check_vip("198.51.100.1".parse().unwrap())
            .unwrap_err()
            .to_string();
        let refused_route = s
            .check_vip("198.51.100.200".parse().unwrap())
            .unwrap_err()
            .to_string();
        // Leave things installed; a "crashed run" is then cleaned by a fresh instance.
        drop(s);
        let mut fresh = Steering::new(SteeringConfig::new("rvs0")).unwrap();
        let before = Command::new("ip")
            .args(["route", "show", "proto", "114", "table", "all"])
            .output()
            .unwrap();
        let n = fresh.remove_all().unwrap();
        drop(queues);
        (
            vips,
            ifs,
            refused_local,
            refused_route,
            (String::from_utf8_lossy(&before.stdout).into_owned(), n),
        )
    });
    assert_eq!(vips, vec!["198.51.100.100".parse::<IpAddr>().unwrap()]);
    assert_eq!(ifs, vec!["priv0".to_owned()]);
    assert!(refused_local.contains("local address"), "{refused_local}");
    assert!(refused_route.contains("already routed"), "{refused_route}");
    let (before, n) = removed_again;
    assert!(before.contains("198.51.100.100 dev rvs0"), "{before}");
    assert!(before.contains("default dev rvs0 table 7114"), "{before}");
    assert!(before.contains("blackhole default table 7114"), "{before}");
    assert_eq!(
        n, 5,
        "route, reply route, reply blackhole, rule, proxy neighbour"
    );
    assert_eq!(ns.ip("route show proto 114 table all").trim(), "");
    assert!(!ns.ip("rule show").contains("7114"));
    assert_eq!(ns.ip("neigh show proxy").trim(), "");
    assert!(!ns.ip("link show").contains("rvs0"));
}
