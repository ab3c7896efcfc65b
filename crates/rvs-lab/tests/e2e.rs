//! End-to-end: real packets from the client namespace through rvsd in the director namespace to the real servers,
//! configured with rvsadm exactly as a user would. One lab per test (unique names), so the tests run in parallel.

#![cfg_attr(test, allow(clippy::unwrap_used))]

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use rvs_lab::client::{self, Connection, HttpConn};
use rvs_lab::lab::{self, CIP, Lab, LabConfig, VIP};
use rvs_lab::testing::adm;
use rvs_lab::{demo, testing};

const T: Duration = Duration::from_secs(5);

fn vip80() -> String {
    format!("{VIP}:80")
}

fn rs80(i: usize) -> String {
    format!("{}:80", lab::rip(i))
}

/// A lab with rvsd and a TCP service on VIP:80 over `weights.len()` real servers.
fn tcp_lab(test: &str, sched: &str, weights: &[u32], extra: &[&str]) -> Option<Lab> {
    let lab = testing::lab(test, weights.len(), testing::Rvsd::Started)?;
    let mut a = vec!["-A", "-t", "198.51.100.100:80", "-s", sched];
    a.extend_from_slice(extra);
    adm(&lab, &a);
    for (i, w) in weights.iter().enumerate() {
        adm(
            &lab,
            &[
                "-a",
                "-t",
                &vip80(),
                "-r",
                &rs80(i + 1),
                "-m",
                "-w",
                &w.to_string(),
            ],
        );
    }
    Some(lab)
}

fn requests(lab: &Lab, n: usize, conc: usize) -> client::Tally {
    let r =
        lab.in_client(move || client::run_requests(lab::vip(80), n, conc, Duration::from_secs(60)));
    match r {
        Ok(t) => t,
        Err(e) => panic!(
            "{n} requests through the VIP failed: {e}\nrvsd log:\n{}",
            lab.rvsd_log_text()
        ),
    }
}

fn count(t: &client::Tally, name: &str) -> usize {
    t.per_server.get(name).copied().unwrap_or(0)
}

#[test]
fn textbook_rr_1000_requests_split_500_500_and_addresses() {
    let Some(lab) = tcp_lab("textbook_rr", "rr", &[1, 1], &[]) else {
        return;
    };
    let t = requests(&lab, 1000, 8);
    assert_eq!((count(&t, "rs1"), count(&t, "rs2")), (500, 500), "{t:?}");
    // The real servers saw the client's own address, never the director's.
    assert_eq!(
        t.client_ips.keys().cloned().collect::<Vec<_>>(),
        vec![CIP.to_string()]
    );
    // On the wire: CIP->VIP at the client, CIP->RIP at the real server, RIP->CIP at the director, VIP->CIP back.
    let (p, name) = demo::trace_one_connection(&lab, lab::vip(80)).expect("trace");
    assert_eq!(p.client_out.dst.ip(), VIP);
    assert_eq!(p.client_in.src.ip(), VIP);
    assert_eq!(p.at_real_server.src.ip(), CIP);
    assert!(name == "rs1" || name == "rs2");
    assert_eq!(p.at_director.src, p.at_real_server.dst);
}

#[test]
fn wrr_3_to_1_gives_750_250() {
    let Some(lab) = tcp_lab("wrr_3_to_1", "wrr", &[3, 1], &[]) else {
        return;
    };
    let t = requests(&lab, 1000, 8);
    assert_eq!((count(&t, "rs1"), count(&t, "rs2")), (750, 250), "{t:?}");
}

#[test]
fn http_in_rr_order_reaches_both_real_servers() {
    let Some(lab) = tcp_lab("rr_order", "rr", &[1, 1], &[]) else {
        return;
    };
    let t = requests(&lab, 10, 1);
    assert_eq!(t.order.len(), 10);
    for w in t.order.windows(2) {
        assert_ne!(w[0], w[1], "rr must alternate: {:?}", t.order);
    }
    assert_eq!(t.order.iter().collect::<BTreeSet<_>>().len(), 2);
}

#[test]
fn one_mib_both_ways_is_byte_identical() {
    let Some(lab) = tcp_lab("one_mib", "rr", &[1, 1], &[]) else {
        return;
    };
    let body: Vec<u8> = (0..1u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    for _ in 0..2 {
        let b = body.clone();
        let r = lab
            .in_client(move || client::echo(lab::vip(80), &b, Duration::from_secs(20)))
            .unwrap_or_else(|e| panic!("echo: {e}\n{}", lab.rvsd_log_text()));
        assert_eq!(r.status, 200);
        assert_eq!(r.body.len(), body.len());
        assert!(r.body == body, "1 MiB came back changed");
    }
}

#[test]
fn udp_service_balances_and_answers_from_the_vip() {
    let Some(lab) = testing::lab("udp_service", 2, testing::Rvsd::Started) else {
        return;
    };
    let vip53 = format!("{VIP}:53");
    adm(&lab, &["-A", "-u", &vip53, "-s", "rr"]);
    for i in 1..=2 {
        adm(
            &lab,
            &[
                "-a",
                "-u",
                &vip53,
                "-r",
                &format!("{}:53", lab::rip(i)),
                "-m",
            ],
        );
    }
    let answers = lab
        .in_client(|| {
            let mut v = Vec::new();
            for k in 0..4u8 {
                // A new socket (new client port) per query: a new UDP connection each time.
                v.push(client::udp_query(lab::vip(53), &[b'q', k], T)?);
            }
            Ok(v)
        })
        .unwrap_or_else(|e| panic!("udp: {e}\n{}", lab.rvsd_log_text()));
    let names: Vec<&str> = answers.iter().map(|a| a.0.as_str()).collect();
    assert_eq!(
        names.iter().filter(|n| **n == "rs1").count(),
        2,
        "{names:?}"
    );
    assert_eq!(
        names.iter().filter(|n| **n == "rs2").count(),
        2,
        "{names:?}"
    );
    for (k, (_, seen, payload)) in answers.iter().enumerate() {
        assert_eq!(seen.ip(), IpAddr::V4(CIP));
        assert_eq!(payload, &vec![b'q', k as u8]);
    }
}

#[test]
fn weight_zero_quiesces_new_connections_existing_ones_finish() {
    let Some(lab) = tcp_lab("quiesce", "rr", &[1, 1], &[]) else {
        return;
    };
    // An open keep-alive connection, then its real server is quiesced.
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let (rtx, rrx) = std::sync::mpsc::channel::<Result<(String, Vec<String>), String>>();
    let (ntx, nrx) = std::sync::mpsc::channel::<String>();
    let handle = rvs_lab::netns::spawn_in(&lab.client(), move || {
        let run = || -> rvs_lab::Result<(String, Vec<String>)> {
            let mut c = HttpConn::connect(lab::vip(80), T)?;
            let first = c.get(Connection::KeepAlive)?.who()?.0;
            let _ = ntx.send(first.clone());
            let _ = rx.recv_timeout(Duration::from_secs(30));
            let mut later = Vec::new();
            for then in [
                Connection::KeepAlive,
                Connection::KeepAlive,
                Connection::Close,
            ] {
                later.push(c.get(then)?.who()?.0);
            }
            Ok((first, later))
        };
        let _ = rtx.send(run().map_err(|e| e.to_string()));
        Ok(())
    })
    .expect("client thread");
    let busy = nrx
        .recv_timeout(Duration::from_secs(10))
        .expect("first answer on the kept connection");
    let (busy_i, other) = if busy == "rs1" {
        (1, "rs2")
    } else {
        (2, "rs1")
    };
    adm(
        &lab,
        &["-e", "-t", &vip80(), "-r", &rs80(busy_i), "-m", "-w", "0"],
    );
    let t = requests(&lab, 20, 2);
    assert_eq!(
        count(&t, other),
        20,
        "a quiesced real server got new connections: {t:?}"
    );
    tx.send(()).expect("wake the kept connection");
    let (first, later) = rrx
        .recv_timeout(Duration::from_secs(20))
        .expect("kept connection result")
        .expect("kept");
    handle.join().expect("join").expect("thread");
    assert_eq!(
        later,
        vec![first.clone(), first.clone(), first],
        "the existing connection must finish normally"
    );
    let listing = adm(&lab, &["-L", "-n"]);
    assert!(
        listing
            .lines()
            .any(|l| l.contains(&rs80(busy_i)) && l.split_whitespace().nth(3) == Some("0")),
        "{listing}"
    );
}

#[test]
fn deleting_a_real_server() {
    let Some(lab) = tcp_lab("delete_rs", "rr", &[1, 1], &[]) else {
        return;
    };
    let t = requests(&lab, 10, 2);
    assert_eq!((count(&t, "rs1"), count(&t, "rs2")), (5, 5));
    adm(&lab, &["-d", "-t", &vip80(), "-r", &rs80(1)]);
    let listing = adm(&lab, &["-L", "-n"]);
    assert!(!listing.contains(&rs80(1)), "{listing}");
    assert!(listing.contains(&rs80(2)), "{listing}");
    let t = requests(&lab, 20, 2);
    assert_eq!(count(&t, "rs2"), 20, "{t:?}");
    let err = lab
        .rvsadm_output(&["-d", "-t", &vip80(), "-r", &rs80(1)])
        .expect("rvsadm");
    assert!(!err.status.success());
    assert!(
        String::from_utf8_lossy(&err.stderr).contains("No such destination"),
        "{err:?}"
    );
}

#[test]
fn persistence_keeps_a_client_on_one_real_server() {
    let Some(lab) = tcp_lab("persistence", "rr", &[1, 1], &["-p", "60"]) else {
        return;
    };
    // The first connection creates the persistence template; then 29 more, two at a time.
    let first = requests(&lab, 1, 1);
    let t = requests(&lab, 29, 2);
    assert_eq!(
        t.per_server.keys().collect::<Vec<_>>(),
        first.per_server.keys().collect::<Vec<_>>(),
        "with -p all connections of one client go to one real server: {first:?} then {t:?}"
    );
    assert_eq!(t.total(), 29);
    let conns = adm(&lab, &["-L", "-n", "-c"]);
    assert!(
        conns.lines().any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.get(2) == Some(&"NONE") && f.get(3) == Some(&"198.51.100.10:0")
        }),
        "the persistence template (client port 0, state NONE) is listed:\n{conns}"
    );
    let listing = adm(&lab, &["-L", "-n"]);
    assert!(listing.contains("persistent 60"), "{listing}");
}

#[test]
fn list_connections_shows_states() {
    let Some(lab) = tcp_lab("list_conns", "rr", &[1, 1], &[]) else {
        return;
    };
    requests(&lab, 4, 1);
    // One connection kept open while listing.
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let (atx, arx) = std::sync::mpsc::channel::<SocketAddr>();
    let h = rvs_lab::netns::spawn_in(&lab.client(), move || {
        let mut c = HttpConn::connect(lab::vip(80), T)?;
        c.get(Connection::KeepAlive)?;
        let _ = atx.send(c.local_addr()?);
        let _ = rx.recv_timeout(Duration::from_secs(30));
        c.get(Connection::Close)?;
        Ok(())
    })
    .expect("thread");
    let local = arx
        .recv_timeout(Duration::from_secs(10))
        .expect("kept connection");
    let out = adm(&lab, &["-L", "-n", "-c"]);
    tx.send(()).expect("release");
    h.join().expect("join").expect("kept connection");
    assert!(out.starts_with("IPVS connection entries"), "{out}");
    let mine = out
        .lines()
        .find(|l| l.contains(&local.to_string()))
        .unwrap_or_else(|| panic!("{local} missing:\n{out}"));
    let f: Vec<&str> = mine.split_whitespace().collect();
    assert_eq!(f[0], "TCP", "{mine}");
    assert_eq!(f[2], "ESTABLISHED", "{mine}");
    assert_eq!(f[4], vip80(), "{mine}");
    assert!(f[5] == rs80(1) || f[5] == rs80(2), "{mine}");
    // The four finished connections are still listed, in a closing state.
    let closing = out
        .lines()
        .filter(|l| l.contains(&CIP.to_string()) && !l.contains("ESTABLISHED"))
        .count();
    assert!(
        closing >= 4,
        "closed connections should linger in FIN_WAIT/TIME_WAIT/CLOSE:\n{out}"
    );
}

/// Parses `rvsadm -L -n --stats --exact` into (service line numbers, per-destination numbers).
fn stats(lab: &Lab) -> (Vec<u64>, Vec<(String, Vec<u64>)>) {
    let out = adm(lab, &["-L", "-n", "--stats", "--exact"]);
    let mut svc = Vec::new();
    let mut dests = Vec::new();
    for l in out.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.first() == Some(&"TCP") && f.len() >= 7 {
            svc = f[2..7]
                .iter()
                .map(|x| x.parse().unwrap_or_else(|_| panic!("number in {l:?}")))
                .collect();
        } else if f.first() == Some(&"->") && f.len() >= 7 {
            dests.push((
                f[1].to_string(),
                f[2..7].iter().map(|x| x.parse().expect("number")).collect(),
            ));
        }
    }
    assert_eq!(svc.len(), 5, "no service line in:\n{out}");
    (svc, dests)
}

#[test]
fn stats_match_the_traffic_and_zero_resets_them() {
    let Some(lab) = tcp_lab("stats", "rr", &[1, 1], &[]) else {
        return;
    };
    let n = 100u64;
    requests(&lab, n as usize, 4);
    std::thread::sleep(Duration::from_millis(200));
    let (svc, dests) = stats(&lab);
    let (conns, inpkts, outpkts, inbytes, outbytes) = (svc[0], svc[1], svc[2], svc[3], svc[4]);
    assert_eq!(conns, n, "Conns");
    // Each connection: SYN, ACK, request, FIN, ACK at least inbound; SYN-ACK, answer, FIN at least outbound.
    assert!(inpkts >= 4 * n && inpkts <= 12 * n, "InPkts {inpkts}");
    assert!(outpkts >= 3 * n && outpkts <= 12 * n, "OutPkts {outpkts}");
    let req = "GET / HTTP/1.1\r\nHost: rvs-lab\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        .len() as u64;
    assert!(
        inbytes >= n * (req + 4 * 40) && inbytes <= n * (req + 12 * 60),
        "InBytes {inbytes}"
    );
    assert!(outbytes >= n * (100 + 3 * 40), "OutBytes {outbytes}");
    assert_eq!(dests.len(), 2);
    assert_eq!(
        dests.iter().map(|d| d.1[0]).collect::<Vec<_>>(),
        vec![n / 2, n / 2]
    );
    assert_eq!(dests.iter().map(|d| d.1[1]).sum::<u64>(), inpkts);
    adm(&lab, &["-Z"]);
    let (svc, dests) = stats(&lab);
    assert_eq!(svc, vec![0; 5], "-Z zeroes the service counters");
    assert!(
        dests.iter().all(|d| d.1 == vec![0; 5]),
        "-Z zeroes the destination counters: {dests:?}"
    );
}

#[test]
fn rules_come_back_after_an_rvsd_restart() {
    let Some(mut lab) = tcp_lab("restart", "wrr", &[3, 1], &[]) else {
        return;
    };
    let vip53 = format!("{VIP}:53");
    adm(&lab, &["-A", "-u", &vip53, "-s", "rr"]);
    adm(
        &lab,
        &[
            "-a",
            "-u",
            &vip53,
            "-r",
            &format!("{}:53", lab::rip(2)),
            "-m",
        ],
    );
    let before = adm(&lab, &["-S", "-n"]);
    let status = lab.stop_rvsd().expect("stop");
    assert!(
        !status.contains("killed"),
        "rvsd did not stop on SIGTERM: {status}"
    );
    let saved = std::fs::read_to_string(lab.rules()).expect("rules file written");
    assert!(saved.contains("-A -t 198.51.100.100:80 -s wrr"), "{saved}");
    lab.start_rvsd().expect("restart");
    assert_eq!(adm(&lab, &["-S", "-n"]), before);
    let t = requests(&lab, 8, 1);
    assert_eq!((count(&t, "rs1"), count(&t, "rs2")), (6, 2), "{t:?}");
}

fn steering_snapshot(lab: &Lab) -> Vec<String> {
    let d = lab.director();
    vec![
        lab.ip(&d, &["rule", "show"]).expect("rules"),
        lab.ip(&d, &["-4", "route", "show", "table", "all"])
            .expect("routes"),
        lab.ip(&d, &["neigh", "show", "proxy"])
            .expect("proxy neigh"),
        lab.ip(&d, &["-o", "link", "show"])
            .expect("links")
            .lines()
            .map(|l| l.split_whitespace().nth(1).unwrap_or("").to_string())
            .collect::<Vec<_>>()
            .join(" "),
    ]
}

#[test]
fn no_kernel_steering_left_after_rvsd_stops() {
    if !testing::lab_available("no_steering_left") {
        return;
    }
    let cfg = LabConfig {
        real_servers: 1,
        rvsd: false,
        ..LabConfig::unique("s")
    };
    let mut lab = Lab::up(cfg).expect("lab");
    let clean = steering_snapshot(&lab);
    lab.start_rvsd().expect("rvsd");
    adm(&lab, &["-A", "-t", &vip80(), "-s", "rr"]);
    adm(&lab, &["-a", "-t", &vip80(), "-r", &rs80(1), "-m"]);
    let t = requests(&lab, 3, 1);
    assert_eq!(count(&t, "rs1"), 3);
    let running = steering_snapshot(&lab);
    assert_ne!(
        running, clean,
        "rvsd should have installed its steering (route/rule/proxy neigh/TUN)"
    );
    let status = lab.stop_rvsd().expect("stop");
    assert!(
        !status.contains("killed"),
        "rvsd did not stop on SIGTERM: {status}"
    );
    assert_eq!(
        steering_snapshot(&lab),
        clean,
        "rvsd left kernel steering behind"
    );
}

/// Runs `rvs-lab down --prefix P` when dropped, so a failing test leaves nothing behind.
struct Down(String);
impl Drop for Down {
    fn drop(&mut self) {
        let _ = std::process::Command::new(env!("CARGO_BIN_EXE_rvs-lab"))
            .args(["down", "--prefix", &self.0])
            .output();
    }
}

#[test]
fn up_exec_down_by_hand() {
    if !testing::lab_available("up_exec_down_by_hand") {
        return;
    }
    let exe = env!("CARGO_BIN_EXE_rvs-lab");
    let prefix = LabConfig::unique("u").prefix;
    let run = |args: &[&str]| {
        std::process::Command::new(exe)
            .args(args)
            .output()
            .expect("run rvs-lab")
    };
    let _down = Down(prefix.clone());
    let up = run(&["up", "--prefix", &prefix, "--real-servers", "2"]);
    let text = String::from_utf8_lossy(&up.stdout).into_owned();
    assert!(
        up.status.success(),
        "up failed: {}{}",
        text,
        String::from_utf8_lossy(&up.stderr)
    );
    let director = format!("{prefix}-director");
    let client_ns = format!("{prefix}-client");
    assert!(
        text.contains(&format!(
            "rvs-lab exec {director} rvsadm -A -t 198.51.100.100:80 -s rr"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("rvs-lab down --prefix {prefix}")),
        "{text}"
    );

    // A second `up` over it refuses and says how to remove it.
    let again = run(&["up", "--prefix", &prefix]);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains(&format!("rvs-lab down --prefix {prefix}"))
    );

    // exec finds rvsadm on PATH and the lab's rvsd through RVS_SOCKET.
    let exec_ok = |args: &[&str]| {
        let mut a = vec!["exec", director.as_str()];
        a.extend_from_slice(args);
        let o = run(&a);
        assert!(
            o.status.success(),
            "exec {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    exec_ok(&["rvsadm", "-A", "-t", "198.51.100.100:80", "-s", "rr"]);
    exec_ok(&[
        "rvsadm",
        "-a",
        "-t",
        "198.51.100.100:80",
        "-r",
        "203.0.113.11:80",
        "-m",
    ]);
    exec_ok(&[
        "rvsadm",
        "-a",
        "-t",
        "198.51.100.100:80",
        "-r",
        "203.0.113.12:80",
        "-m",
    ]);
    let sock = exec_ok(&["sh", "-c", "echo $RVS_SOCKET"]);
    assert!(
        sock.trim().ends_with(&format!("{prefix}/rvsd.sock")),
        "{sock}"
    );
    let names = rvs_lab::netns::run_in(&client_ns, || {
        let mut v = Vec::new();
        for _ in 0..2 {
            v.push(client::get(lab::vip(80), T)?.who()?.0);
        }
        Ok(v)
    })
    .expect("GET through the lab left by `up`");
    assert_eq!(names.iter().collect::<BTreeSet<_>>().len(), 2, "{names:?}");

    let down = run(&["down", "--prefix", &prefix]);
    assert!(
        down.status.success(),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
    for ns in lab::ns_names(&prefix, 2) {
        assert!(!rvs_lab::netns::exists(&ns), "{ns} left behind by down");
    }
    assert!(!rvs_lab::manage::state_root().join(&prefix).exists());
}

#[test]
fn the_demo_runs_and_cleans_up() {
    if !testing::lab_available("the_demo_runs_and_cleans_up") {
        return;
    }
    let bins = rvs_lab::bins::find().expect("rvsd and rvsadm");
    let prefix = LabConfig::unique("demo").prefix;
    let _down = Down(prefix.clone());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rvs-lab"))
        .args([
            "demo",
            "--requests",
            "100",
            "--real-servers",
            "2",
            "--prefix",
            &prefix,
        ])
        .env("RVS_BIN_DIR", bins.dir())
        .output()
        .expect("run the demo");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "demo failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in [
        "$ rvsadm -A -t 198.51.100.100:80 -s rr",
        "$ rvsadm -a -t 198.51.100.100:80 -r 203.0.113.11:80 -m -w 1",
        "rs1 (203.0.113.11):    50 answers",
        "rs2 (203.0.113.12):    50 answers",
        "client address seen by the real servers: 198.51.100.10\n",
        "== rvsadm -Ln --stats",
        "-> 198.51.100.100:80",
        "-> 203.0.113.1",
        "-> 198.51.100.10:",
        "all namespaces, processes and files removed",
    ] {
        assert!(
            text.contains(needle),
            "demo output lacks {needle:?}:\n{text}"
        );
    }
    for ns in lab::ns_names(&prefix, 2) {
        assert!(!rvs_lab::netns::exists(&ns), "{ns} left behind by the demo");
    }
}

#[test]
fn a_restarted_rvsd_cleans_what_a_crashed_one_left() {
    if !testing::lab_available("crash_leftovers") {
        return;
    }
    let cfg = LabConfig {
        real_servers: 1,
        rvsd: false,
        ..LabConfig::unique("k")
    };
    let mut lab = Lab::up(cfg).expect("lab");
    let clean = steering_snapshot(&lab);
    lab.start_rvsd().expect("rvsd");
    adm(&lab, &["-A", "-t", &vip80(), "-s", "rr"]);
    adm(&lab, &["-a", "-t", &vip80(), "-r", &rs80(1), "-m"]);
    lab.crash_rvsd().expect("SIGKILL rvsd");
    assert_ne!(
        steering_snapshot(&lab),
        clean,
        "a killed rvsd cannot have removed its steering"
    );
    // The next rvsd removes the leftovers, loads the saved rules and serves again.
    lab.start_rvsd().expect("rvsd after a crash");
    let t = requests(&lab, 2, 1);
    assert_eq!(count(&t, "rs1"), 2);
    let status = lab.stop_rvsd().expect("stop");
    assert!(!status.contains("killed"), "{status}");
    assert_eq!(
        steering_snapshot(&lab),
        clean,
        "steering left behind after crash, restart and stop"
    );
}

#[test]
fn ipv6_service_through_the_switches() {
    let Some(lab) = testing::lab("ipv6_service", 2, testing::Rvsd::Started) else {
        return;
    };
    let vip = format!("[{}]:80", lab::VIP6);
    adm(&lab, &["-A", "-t", &vip, "-s", "rr"]);
    for i in 1..=2 {
        adm(
            &lab,
            &[
                "-a",
                "-t",
                &vip,
                "-r",
                &format!("[{}]:80", lab::rip6(i)),
                "-m",
            ],
        );
    }
    let t = lab
        .in_client(|| client::run_requests(lab::vip6(80), 20, 2, Duration::from_secs(30)))
        .unwrap_or_else(|e| panic!("IPv6 through the VIP: {e}\n{}", lab.rvsd_log_text()));
    assert_eq!((count(&t, "rs1"), count(&t, "rs2")), (10, 10), "{t:?}");
    assert_eq!(
        t.client_ips.keys().cloned().collect::<Vec<_>>(),
        vec![lab::CIP6.to_string()]
    );
}

#[test]
fn nat_through_a_router_with_two_directors() {
    if !testing::lab_available("nat_through_a_router") {
        return;
    }
    testing::reap_stale_test_labs();
    let cfg = LabConfig {
        real_servers: 2,
        directors: 2,
        router: true,
        ..LabConfig::unique("nr")
    };
    let lab = Lab::up(cfg).expect("lab");
    assert!(lab.rvsd_running_in(1) && !lab.rvsd_running_in(2));
    adm(&lab, &["-A", "-t", &vip80(), "-s", "rr"]);
    for i in 1..=2 {
        adm(&lab, &["-a", "-t", &vip80(), "-r", &rs80(i), "-m"]);
    }
    // client -> router -> public switch -> director 1 (rvsd answers ARP for the VIP) -> real server, and the
    // replies back through director 1's default route to the router.
    let t = requests(&lab, 10, 2);
    assert_eq!((count(&t, "rs1"), count(&t, "rs2")), (5, 5), "{t:?}");
    assert_eq!(
        t.client_ips.keys().cloned().collect::<Vec<_>>(),
        vec![lab::ROUTED_CIP.to_string()]
    );
}
