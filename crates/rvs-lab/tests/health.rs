//! End-to-end health checks: rvsd --keepalived in the lab, real servers that fail in real ways (refused, HTTP 500,
//! a changed page, a hang past connect_timeout, a MISC_CHECK exit code, a UDP service gone, a real DNS server
//! (dnsmasq) gone), the sorry server, inhibit_on_failure, and a reload that keeps established connections.
//! For each failure, the time until the failed server is out of the table (so no new connection goes to it) is
//! measured against keepalived's bound delay_loop + connect_timeout + retry x (delay_before_retry +
//! connect_timeout), with slack for a loaded machine; the measured times are printed.

#![cfg_attr(test, allow(clippy::unwrap_used))]

use std::collections::BTreeMap;
use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use rvs_lab::client::{self, Connection, HttpConn};
use rvs_lab::lab::{self, Lab, LabConfig, VIP};
use rvs_lab::{netns, servers, testing};

const OK: u8 = 0;
const ERR500: u8 = 1;
const HANG: u8 = 2;
const CLOSED: u8 = 3;
const PAGE2: u8 = 4;

/// md5sum of "rvs static page v1\n" (genhash's digest of /static while the page is unchanged).
const DIGEST_V1: &str = "7a21a40d02627d19235c871453ed6383";

/// Slack over keepalived's bound for a loaded 2-core machine (apply, listing poll, scheduling).
const SLACK: Duration = Duration::from_secs(3);

/// A server in a real-server namespace whose behaviour the test switches.
struct Ctl {
    mode: Arc<AtomicU8>,
    stop: Arc<AtomicBool>,
}

impl Ctl {
    fn set(&self, m: u8) {
        self.mode.store(m, Ordering::SeqCst);
    }
}

impl Drop for Ctl {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn handle(name: &str, stream: TcpStream, mode: &AtomicU8) {
    let Ok(peer) = stream.peer_addr() else { return };
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let Ok(mut w) = stream.try_clone() else {
        return;
    };
    let mut r = BufReader::new(stream);
    while let Ok(Some(head)) = servers::read_request_head(&mut r) {
        let m = mode.load(Ordering::SeqCst);
        let (status, body) = match (m, head.path.as_str()) {
            (ERR500, _) => ("500 Internal Server Error", "broken\n".to_string()),
            (PAGE2, "/static") => ("200 OK", "rvs static page v2\n".to_string()),
            (_, "/static") => ("200 OK", "rvs static page v1\n".to_string()),
            _ => ("200 OK", format!("{name} {peer}\n")),
        };
        let conn = if head.keep_alive {
            "keep-alive"
        } else {
            "close"
        };
        let msg = format!(
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nX-Real-Server: {name}\r\nConnection: {conn}\r\n\r\n{body}",
            body.len()
        );
        if w.write_all(msg.as_bytes()).is_err() || !head.keep_alive {
            return;
        }
    }
}

/// HTTP on :80 in real server `i`'s namespace.
fn http_server(lab: &Lab, i: usize) -> Ctl {
    let mode = Arc::new(AtomicU8::new(OK));
    let stop = Arc::new(AtomicBool::new(false));
    let (m, s) = (mode.clone(), stop.clone());
    let name = format!("rs{i}");
    netns::spawn_in(&lab.rs(i), move || {
        let mut listener: Option<TcpListener> = None;
        let mut hung = Vec::new();
        while !s.load(Ordering::SeqCst) {
            let mode = m.load(Ordering::SeqCst);
            if mode == CLOSED {
                listener = None;
                hung.clear();
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            let l = match &listener {
                Some(l) => l,
                None => match TcpListener::bind("0.0.0.0:80") {
                    Ok(l) => {
                        let _ = l.set_nonblocking(true);
                        listener.insert(l)
                    }
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(20));
                        continue;
                    }
                },
            };
            match l.accept() {
                Ok((st, _)) if mode == HANG => hung.push(st),
                Ok((st, _)) => {
                    let (n, m) = (name.clone(), m.clone());
                    std::thread::spawn(move || handle(&n, st, &m));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
        Ok(())
    })
    .expect("server thread");
    Ctl { mode, stop }
}

/// UDP echo on :53 in real server `i`'s namespace (CLOSED: the port is closed, so ICMP port unreachable).
fn udp_server(lab: &Lab, i: usize) -> Ctl {
    let mode = Arc::new(AtomicU8::new(OK));
    let stop = Arc::new(AtomicBool::new(false));
    let (m, s) = (mode.clone(), stop.clone());
    netns::spawn_in(&lab.rs(i), move || {
        let mut sock: Option<UdpSocket> = None;
        let mut buf = [0u8; 1500];
        while !s.load(Ordering::SeqCst) {
            if m.load(Ordering::SeqCst) == CLOSED {
                sock = None;
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            if sock.is_none() {
                match UdpSocket::bind("0.0.0.0:53") {
                    Ok(u) => {
                        let _ = u.set_read_timeout(Some(Duration::from_millis(20)));
                        sock = Some(u);
                    }
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(20));
                        continue;
                    }
                }
            }
            if let Some(u) = &sock
                && let Ok((n, from)) = u.recv_from(&mut buf)
            {
                let _ = u.send_to(&buf[..n], from);
            }
        }
        Ok(())
    })
    .expect("udp thread");
    Ctl { mode, stop }
}

/// A lab whose rvsd reads `conf` (written to a file of its own) with `servers` real servers and no
/// `rvs-lab serve` (the test runs its own servers).
fn lab_with(test: &str, servers: usize, conf: &str) -> Option<(Lab, PathBuf)> {
    if !testing::lab_available(test) {
        return None;
    }
    testing::reap_stale_test_labs();
    let dir = std::env::temp_dir().join(format!("rvs-health-{}-{test}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("keepalived.conf");
    std::fs::write(&path, conf).unwrap();
    let cfg = LabConfig {
        real_servers: servers,
        servers: false,
        rvsd: false,
        rvsd_args: vec!["--keepalived".into(), path.display().to_string()],
        ..LabConfig::unique("h")
    };
    let lab = Lab::up(cfg).unwrap_or_else(|e| panic!("{test}: building the lab failed: {e}"));
    Some((lab, path))
}

fn start(lab: &mut Lab) {
    if let Err(e) = lab.start_rvsd() {
        panic!(
            "rvsd --keepalived did not start: {e}\n{}",
            lab.rvsd_log_text()
        );
    }
}

/// Real servers of one service in `rvsadm -L -n` (RIP:port -> weight).
fn dests(lab: &Lab, proto: &str, svc: &str) -> BTreeMap<String, u32> {
    let out = lab.rvsadm(&["-L", "-n", proto, svc]).unwrap_or_default();
    out.lines()
        .filter(|l| l.starts_with("  -> ") && !l.contains("RemoteAddress"))
        .filter_map(|l| {
            let mut it = l[5..].split_whitespace();
            let addr = it.next()?.to_string();
            let _method = it.next()?;
            Some((addr, it.next()?.parse().ok()?))
        })
        .collect()
}

/// Poll until `f` holds (every 100 ms, at most `limit`); the time it took.
fn wait(limit: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let t = Instant::now();
    while t.elapsed() < limit {
        if f() {
            return Some(t.elapsed());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

fn rs80(i: usize) -> String {
    format!("{}:80", lab::rip(i))
}

fn bound(delay_loop: f64, connect_timeout: f64, retry: f64, dbr: f64) -> Duration {
    Duration::from_secs_f64(delay_loop + connect_timeout + retry * (dbr + connect_timeout))
}

/// Who answers `n` fresh connections to VIP:80.
fn who(lab: &Lab, n: usize) -> Vec<String> {
    lab.in_client(move || {
        let mut v = Vec::new();
        for _ in 0..n {
            let r = client::get(lab::vip(80), Duration::from_secs(5))?;
            v.push(r.who()?.0);
        }
        Ok(v)
    })
    .unwrap()
}

#[test]
fn http_failures_each_leave_the_pool_within_keepalived_bound_and_come_back() {
    // rs1 refused, rs2 HTTP 500, rs3 changed page (digest), rs4 hangs past connect_timeout; rs5 stays.
    let mut conf = String::from(
        "! e2e: four ways to fail\nvirtual_server 198.51.100.100 80 {\n    delay_loop 1\n    lb_algo rr\n    lb_kind NAT\n    protocol TCP\n",
    );
    for i in 1..=5 {
        conf.push_str(&format!(
            "    real_server {} 80 {{\n        HTTP_GET {{\n            url {{\n                path /static\n                digest {DIGEST_V1}\n            }}\n            connect_timeout 1\n            retry 1\n            delay_before_retry 0.5\n        }}\n    }}\n",
            lab::rip(i)
        ));
    }
    conf.push_str("}\n");
    let Some((mut lab, _path)) = lab_with("http_failures", 5, &conf) else {
        return;
    };
    let ctl: Vec<Ctl> = (1..=5).map(|i| http_server(&lab, i)).collect();
    start(&mut lab);
    let all = |lab: &Lab| dests(lab, "-t", "198.51.100.100:80").len() == 5;
    assert!(
        wait(Duration::from_secs(10), || all(&lab)).is_some(),
        "all five in the pool:\n{}",
        lab.rvsd_log_text()
    );

    ctl[0].set(CLOSED);
    ctl[1].set(ERR500);
    ctl[2].set(PAGE2);
    ctl[3].set(HANG);
    let limit = bound(1.0, 1.0, 1.0, 0.5) + SLACK;
    let mut gone = [None; 4];
    let t = Instant::now();
    while t.elapsed() < limit + Duration::from_secs(5) && gone.iter().any(Option::is_none) {
        let d = dests(&lab, "-t", "198.51.100.100:80");
        for (i, g) in gone.iter_mut().enumerate() {
            if g.is_none() && !d.contains_key(&rs80(i + 1)) {
                *g = Some(t.elapsed());
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let names = ["refused", "HTTP 500", "digest", "hang"];
    for (i, g) in gone.iter().enumerate() {
        let g = g.unwrap_or_else(|| {
            panic!(
                "{} server never left the pool\n{}",
                names[i],
                lab.rvsd_log_text()
            )
        });
        eprintln!(
            "{}: out of the pool after {g:?} (keepalived bound {:?})",
            names[i],
            bound(1.0, 1.0, 1.0, 0.5)
        );
        assert!(g <= limit, "{}: {g:?} > {limit:?}", names[i]);
    }
    // No new connection goes to a failed server.
    let answers = who(&lab, 6);
    assert!(answers.iter().all(|w| w == "rs5"), "{answers:?}");
    // Health is visible with its reason; rvsadm -L stays ipvsadm's format.
    let json = lab.rvsadm(&["-L", "--json"]).unwrap();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let rss = &v["health"][0]["real_servers"];
    assert_eq!(rss[0]["state"], "down");
    assert!(
        rss[0]["reason"]
            .as_str()
            .unwrap()
            .contains("connection refused"),
        "{}",
        rss[0]
    );
    assert!(
        rss[1]["reason"]
            .as_str()
            .unwrap()
            .contains("HTTP status 500"),
        "{}",
        rss[1]
    );
    assert!(
        rss[2]["reason"].as_str().unwrap().contains("digest"),
        "{}",
        rss[2]
    );
    assert!(
        rss[3]["reason"]
            .as_str()
            .unwrap()
            .contains("no response within 1.0s"),
        "{}",
        rss[3]
    );
    assert_eq!(rss[4]["state"], "up");
    assert!(rss[0]["changed_unix_ms"].as_u64().unwrap() > 0);
    let text = lab.rvsadm(&["-L", "-n"]).unwrap();
    assert!(
        !text.contains("health") && text.starts_with("IP Virtual Server version"),
        "{text}"
    );
    assert!(lab.rvsd_log_text().contains("real server down"), "logged");

    // Recovery: one success each.
    for c in &ctl {
        c.set(OK);
    }
    let back = wait(Duration::from_secs(15), || all(&lab));
    assert!(
        back.is_some(),
        "recovered servers back in the pool\n{}",
        lab.rvsd_log_text()
    );
    eprintln!("recovery of all four after {:?}", back.unwrap());
    drop(ctl);
    lab.down().unwrap();
}

#[test]
fn misc_dynamic_weight_inhibit_sorry_server_udp_and_dns_checks() {
    let Some(_) = which("dnsmasq") else {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("dnsmasq is not installed (CI=true: .ci/run installs dnsmasq-base)");
        }
        eprintln!(
            "SKIPPED misc_dynamic_weight_inhibit_sorry_server_udp_and_dns_checks: dnsmasq is not installed"
        );
        return;
    };
    let dir = std::env::temp_dir().join(format!("rvs-health-{}-misc", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let code = dir.join("code");
    std::fs::write(&code, "12").unwrap();
    let script = dir.join("misc.sh");
    std::fs::write(
        &script,
        format!("#!/bin/sh\nexit $(cat {})\n", code.display()),
    )
    .unwrap();
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&script)
        .status()
        .unwrap();
    let conf = format!(
        "virtual_server 198.51.100.100 80 {{\n    delay_loop 1\n    lb_algo rr\n    sorry_server {rip2} 80\n    real_server {rip1} 80 {{\n        weight 3\n        inhibit_on_failure\n        MISC_CHECK {{\n            misc_path \"{script}\"\n            misc_timeout 2\n            misc_dynamic\n        }}\n    }}\n}}\n\
         virtual_server 198.51.100.100 53 {{\n    delay_loop 1\n    protocol UDP\n    real_server {rip3} 53 {{\n        UDP_CHECK {{\n            payload 72 76 73\n            require_reply 72 76 73\n            connect_timeout 1\n            retry 1\n            delay_before_retry 0.5\n        }}\n    }}\n    real_server {rip4} 53 {{\n        DNS_CHECK {{\n            name health.example\n            type A\n            connect_timeout 1\n            retry 1\n            delay_before_retry 0.5\n        }}\n    }}\n}}\n",
        rip1 = lab::rip(1),
        rip2 = lab::rip(2),
        rip3 = lab::rip(3),
        rip4 = lab::rip(4),
        script = script.display()
    );
    let Some((mut lab, _path)) = lab_with("misc_udp_dns", 4, &conf) else {
        return;
    };
    let _h1 = http_server(&lab, 1);
    let _h2 = http_server(&lab, 2);
    let udp = udp_server(&lab, 3);
    let mut dns = Dnsmasq::start(&lab, 4);
    start(&mut lab);
    let web = |lab: &Lab| dests(lab, "-t", "198.51.100.100:80");
    let dnsvs = |lab: &Lab| dests(lab, "-u", "198.51.100.100:53");

    // MISC_CHECK exit 12 with misc_dynamic: weight 10.
    assert!(
        wait(Duration::from_secs(10), || web(&lab).get(&rs80(1))
            == Some(&10))
        .is_some(),
        "weight from the exit code: {:?}\n{}",
        web(&lab),
        lab.rvsd_log_text()
    );
    assert!(
        !web(&lab).contains_key(&rs80(2)),
        "sorry server out while there is quorum"
    );
    assert!(
        wait(Duration::from_secs(10), || dnsvs(&lab).len() == 2).is_some(),
        "{:?}",
        dnsvs(&lab)
    );

    // exit 1: rs1 inhibited (weight 0, not removed), quorum lost: the sorry server answers.
    std::fs::write(&code, "1").unwrap();
    let limit = bound(1.0, 0.0, 0.0, 1.0) + Duration::from_secs(2) + SLACK; // retry 0; misc_timeout 2
    let t = wait(limit, || {
        let d = web(&lab);
        d.get(&rs80(1)) == Some(&0) && d.get(&rs80(2)) == Some(&1)
    });
    assert!(
        t.is_some(),
        "inhibited + sorry server: {:?}\n{}",
        web(&lab),
        lab.rvsd_log_text()
    );
    eprintln!(
        "MISC_CHECK exit 1: inhibited and sorry server in after {:?}",
        t.unwrap()
    );
    assert!(
        who(&lab, 3).iter().all(|w| w == "rs2"),
        "the sorry server answers"
    );

    // exit 0: back at its configured weight, sorry server gone.
    std::fs::write(&code, "0").unwrap();
    assert!(
        wait(Duration::from_secs(10), || {
            let d = web(&lab);
            d.get(&rs80(1)) == Some(&3) && !d.contains_key(&rs80(2))
        })
        .is_some(),
        "{:?}",
        web(&lab)
    );

    // UDP service gone (ICMP port unreachable) and DNS server gone.
    udp.set(CLOSED);
    dns.stop();
    let limit = bound(1.0, 1.0, 1.0, 0.5) + SLACK;
    let t = wait(limit, || dnsvs(&lab).is_empty());
    assert!(
        t.is_some(),
        "UDP and DNS servers out: {:?}\n{}",
        dnsvs(&lab),
        lab.rvsd_log_text()
    );
    eprintln!(
        "UDP_CHECK and DNS_CHECK failures out of the pool after {:?} (bound {:?})",
        t.unwrap(),
        bound(1.0, 1.0, 1.0, 0.5)
    );
    udp.set(OK);
    dns = Dnsmasq::start(&lab, 4);
    assert!(
        wait(Duration::from_secs(10), || dnsvs(&lab).len() == 2).is_some(),
        "{:?}",
        dnsvs(&lab)
    );
    drop(dns);
    lab.down().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn reload_adds_and_removes_servers_without_resetting_established_connections() {
    let rs = |i: usize| {
        format!(
            "    real_server {} 80 {{\n        TCP_CHECK {{\n            connect_timeout 1\n        }}\n    }}\n",
            lab::rip(i)
        )
    };
    let head = "virtual_server 198.51.100.100 80 {\n    delay_loop 1\n    lb_algo rr\n";
    let conf = format!("{head}{}{}}}\n", rs(1), rs(2));
    let Some((mut lab, path)) = lab_with("reload", 3, &conf) else {
        return;
    };
    let _s: Vec<Ctl> = (1..=3).map(|i| http_server(&lab, i)).collect();
    start(&mut lab);
    assert!(
        wait(Duration::from_secs(10), || dests(
            &lab,
            "-t",
            "198.51.100.100:80"
        )
        .len()
            == 2)
        .is_some()
    );

    // An established keep-alive connection, and which real server it reached.
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let (rtx, rrx) = std::sync::mpsc::channel::<(String, String)>();
    let client_ns = lab.client();
    let h = netns::spawn_in(&client_ns, move || {
        let mut c = HttpConn::connect(lab::vip(80), Duration::from_secs(5))?;
        let first = c.get(Connection::KeepAlive)?.who()?;
        rtx.send((first.0.clone(), String::new())).ok();
        let _ = rx.recv_timeout(Duration::from_secs(60));
        let again = c.get(Connection::Close)?.who()?;
        rtx.send((again.0, format!("{}", again.1))).ok();
        Ok(())
    })
    .unwrap();
    let (kept, _) = rrx
        .recv_timeout(Duration::from_secs(10))
        .expect("first answer");
    let kept_i: usize = kept.trim_start_matches("rs").parse().unwrap();
    let removed_i = 3 - kept_i; // the other of rs1/rs2
    // New file: keeps `kept`, removes the other, adds rs3.
    let conf2 = format!("{head}{}{}}}\n", rs(kept_i), rs(3));
    std::fs::write(&path, conf2).unwrap();
    let pid = lab.rvsd_pid().expect("rvsd pid");
    assert!(
        std::process::Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    let want: Vec<String> = {
        let mut v = vec![rs80(kept_i), rs80(3)];
        v.sort();
        v
    };
    let t = wait(Duration::from_secs(10), || {
        dests(&lab, "-t", "198.51.100.100:80")
            .keys()
            .cloned()
            .collect::<Vec<_>>()
            == want
    });
    assert!(
        t.is_some(),
        "reloaded set: {:?}\n{}",
        dests(&lab, "-t", "198.51.100.100:80"),
        lab.rvsd_log_text()
    );
    assert!(!dests(&lab, "-t", "198.51.100.100:80").contains_key(&rs80(removed_i)));
    tx.send(()).unwrap();
    let (again, _) = rrx
        .recv_timeout(Duration::from_secs(10))
        .expect("the established connection still answers");
    assert_eq!(again, kept, "same real server, same connection");
    h.join().unwrap().unwrap();
    // The listing changes before the main thread logs the reload: wait for the line.
    assert!(
        wait(Duration::from_secs(5), || lab
            .rvsd_log_text()
            .contains("keepalived configuration reloaded"))
        .is_some(),
        "{}",
        lab.rvsd_log_text()
    );

    // A broken file is refused with file:line and changes nothing.
    std::fs::write(
        &path,
        format!("{head}    real_server 203.0.113.300 80 {{\n    }}\n}}\n"),
    )
    .unwrap();
    assert!(
        std::process::Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    assert!(
        wait(Duration::from_secs(5), || lab.rvsd_log_text().contains(
            "keepalived.conf:4: real_server: '203.0.113.300' is not an IP address"
        ))
        .is_some(),
        "{}",
        lab.rvsd_log_text()
    );
    assert_eq!(
        dests(&lab, "-t", "198.51.100.100:80")
            .keys()
            .cloned()
            .collect::<Vec<_>>(),
        want
    );
    lab.down().unwrap();
}

fn which(bin: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| PathBuf::from(d).join(bin))
        .find(|p| p.exists())
}

/// dnsmasq answering `health.example` in real server `i`'s namespace, killed by PID when dropped.
struct Dnsmasq(Option<std::process::Child>);

impl Dnsmasq {
    fn start(lab: &Lab, i: usize) -> Self {
        let child = std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                &lab.rs(i),
                "dnsmasq",
                "--keep-in-foreground",
                "--no-resolv",
                "--no-hosts",
            ])
            .arg("--conf-file=/dev/null")
            .arg("--pid-file=")
            .arg("--bind-interfaces")
            .arg(format!("--listen-address={}", lab::rip(i)))
            .arg("--address=/health.example/203.0.113.250")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("dnsmasq");
        // Ready when it answers.
        let rip = lab::rip(i);
        let ok = wait(Duration::from_secs(5), || {
            netns::run_in(&lab.rs(i), move || {
                let u = UdpSocket::bind("0.0.0.0:0").map_err(rvs_lab::error::LabError::io("bind"))?;
                u.set_read_timeout(Some(Duration::from_millis(200))).ok();
                let q = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x06health\x07example\x00\x00\x01\x00\x01";
                u.send_to(q, SocketAddr::from((rip, 53))).ok();
                let mut b = [0u8; 512];
                Ok(u.recv_from(&mut b).is_ok())
            })
            .unwrap_or(false)
        });
        assert!(ok.is_some(), "dnsmasq did not come up");
        Dnsmasq(Some(child))
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        self.stop();
    }
}

#[test]
fn config_test_mode_validates_without_root_state() {
    let dir = std::env::temp_dir().join(format!("rvs-health-{}-t", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.conf");
    std::fs::write(&good, "virtual_server 198.51.100.100 80 {\n real_server 203.0.113.11 80 {\n  TCP_CHECK {\n  }\n }\n bogus 1\n}\n").unwrap();
    let bad = dir.join("bad.conf");
    std::fs::write(
        &bad,
        "virtual_server 198.51.100.100 80 {\n real_server 203.0.113.11 80 {\n",
    )
    .unwrap();
    let bin = rvs_lab::bins::find().expect("binaries");
    let out = std::process::Command::new(&bin.rvsd)
        .arg("--keepalived")
        .arg(&good)
        .arg("-t")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("good.conf:6: unknown keyword 'bogus'"),
        "{err}"
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(
            "configuration OK: 1 virtual services, 1 real servers, 1 checkers, 1 warnings"
        )
    );
    let out = std::process::Command::new(&bin.rvsd)
        .arg("--keepalived")
        .arg(&bad)
        .arg("-t")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.conf:2: syntax error: block of 'real_server' is never closed"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
    let _ = VIP;
}
