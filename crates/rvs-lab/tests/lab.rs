//! The lab on its own, without rvsd: the director namespace is a plain router, so the client reaches the real
//! servers' own addresses. Proves topology, servers, clients, captures and cleanup before rvsd joins in.

#![cfg_attr(test, allow(clippy::unwrap_used))]

use std::net::{SocketAddr, SocketAddrV4};
use std::time::Duration;

use rvs_lab::capture::Capture;
use rvs_lab::client::{self, Connection, HttpConn};
use rvs_lab::lab::{self, Lab, LabConfig};
use rvs_lab::{LabError, netns, testing};

fn rs_addr(i: usize, port: u16) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(lab::rip(i), port))
}

#[test]
fn plain_router_http_udp_and_cleanup() {
    let Some(lab) = testing::lab(
        "plain_router_http_udp_and_cleanup",
        2,
        testing::Rvsd::NotStarted,
    ) else {
        return;
    };
    let names = lab.namespaces();
    assert!(names.iter().all(|n| netns::exists(n)));
    // TX checksum offload is off on the client's and the real servers' veths, on (the default) elsewhere.
    for ns in [lab.client(), lab.rs(1), lab.rs(2)] {
        let on = netns::run_in(&ns, || netns::tx_checksum_on(lab::HOST_IF)).expect("GTXCSUM");
        assert!(!on, "tx checksum offload still on in {ns}");
    }
    let on =
        netns::run_in(&lab.director(), || netns::tx_checksum_on(lab::PUBLIC_IF)).expect("GTXCSUM");
    assert!(
        on,
        "the probe should see the director's untouched veth with offload on"
    );
    // GRO (NAPI) on the switch-side peers of the director's veths, so XDP can redirect into them; not elsewhere.
    for (sw, other) in [(lab.pubsw(), "c1"), (lab.privsw(), "rs1")] {
        let (d1, other) = netns::run_in(&sw, move || {
            Ok((netns::gro_on("d1")?, netns::gro_on(other)?))
        })
        .expect("GGRO");
        assert!(d1, "GRO off on the director's switch port");
        assert!(!other, "GRO should stay at the veth default elsewhere");
        // No netfilter on bridged frames in a switch (where br_netfilter is loaded and its sysctls exist).
        let calls = netns::run_in(&sw, || {
            Ok(["iptables", "ip6tables", "arptables"].map(|c| {
                std::fs::read_to_string(format!("/proc/sys/net/bridge/bridge-nf-call-{c}"))
                    .map(|v| v.trim().to_owned())
                    .unwrap_or_else(|_| "0".into())
            }))
        })
        .expect("bridge sysctls");
        assert_eq!(calls, ["0", "0", "0"].map(String::from), "{sw}");
    }
    // The director's private side is a plain veth to the switch, not a bridge.
    let link = lab
        .ip(&lab.director(), &["-d", "link", "show", lab::PRIVATE_IF])
        .expect("ip link");
    assert!(link.contains("veth") && !link.contains("bridge"), "{link}");

    // IPv6 through the director: the real server sees the client's IPv6 address.
    let a6 = SocketAddr::new(lab::rip6(1).into(), 80);
    let r6 = lab
        .in_client(move || client::get(a6, Duration::from_secs(5)))
        .expect("GET over IPv6 through the router");
    let (name6, seen6) = r6.who().expect("who");
    assert_eq!(
        (name6.as_str(), seen6.ip()),
        ("rs1", std::net::IpAddr::V6(lab::CIP6))
    );

    // HTTP through the director, routed: the real server sees the client's address.
    let (a1, a2) = (rs_addr(1, 80), rs_addr(2, 80));
    let (r1, r2) = lab
        .in_client(move || {
            Ok((
                client::get(a1, Duration::from_secs(5))?,
                client::get(a2, Duration::from_secs(5))?,
            ))
        })
        .expect("GET through the router");
    assert_eq!(r1.status, 200);
    assert_eq!(r1.who().expect("who").0, "rs1");
    assert_eq!(
        r1.who().expect("who").1.ip(),
        std::net::IpAddr::V4(lab::CIP)
    );
    assert_eq!(r2.real_server.as_deref(), Some("rs2"));

    // Keep-alive: several requests on one connection, then Connection: close ends it.
    let answers = lab
        .in_client(move || {
            let mut c = HttpConn::connect(a1, Duration::from_secs(5))?;
            let local = c.local_addr()?;
            let mut v = Vec::new();
            for _ in 0..3 {
                let r = c.get(Connection::KeepAlive)?;
                v.push((r.who()?.1, r.keep_alive));
            }
            let last = c.get(Connection::Close)?;
            v.push((last.who()?.1, last.keep_alive));
            Ok((local, v))
        })
        .expect("keep-alive");
    let (local, v) = answers;
    assert_eq!(v.len(), 4);
    assert!(
        v.iter().all(|(seen, _)| *seen == local),
        "one connection carries all requests: {v:?}"
    );
    assert_eq!(
        v.iter().map(|(_, k)| *k).collect::<Vec<_>>(),
        vec![true, true, true, false]
    );

    // 1 MiB echo, byte-identical.
    let body: Vec<u8> = (0..1 << 20)
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let b2 = body.clone();
    let echoed = lab
        .in_client(move || client::echo(a2, &b2, Duration::from_secs(10)))
        .expect("echo");
    assert!(echoed.body == body, "1 MiB came back changed");

    // UDP echo.
    let u = rs_addr(1, 53);
    let (name, seen, payload) = lab
        .in_client(move || client::udp_query(u, b"ping", Duration::from_secs(3)))
        .expect("udp");
    assert_eq!(
        (name.as_str(), seen.ip(), payload.as_slice()),
        ("rs1", std::net::IpAddr::V4(lab::CIP), &b"ping"[..])
    );

    // Many requests, concurrently, each on its own connection.
    let t = lab
        .in_client(move || client::run_requests(a2, 200, 8, Duration::from_secs(20)))
        .expect("200 requests");
    assert_eq!(t.per_server.get("rs2"), Some(&200));

    // Captures see the routed connection at both ends.
    let cap_c = Capture::start(&lab.client(), lab::HOST_IF, 1000).expect("capture client");
    let cap_r = Capture::start(&lab.rs(1), lab::HOST_IF, 1000).expect("capture rs1");
    let cap_d = Capture::start(&lab.director(), lab::PRIVATE_IF, 1000).expect("capture director");
    let local = lab
        .in_client(move || {
            let mut c = HttpConn::connect(a1, Duration::from_secs(5))?;
            let l = c.local_addr()?;
            c.get(Connection::Close)?;
            Ok(l)
        })
        .expect("traced GET");
    std::thread::sleep(Duration::from_millis(50));
    let (sc, sr) = (
        cap_c.finish().expect("client capture"),
        cap_r.finish().expect("rs capture"),
    );
    let sd = cap_d.finish().expect("director capture");
    let SocketAddr::V4(local) = local else {
        panic!("v4")
    };
    let SocketAddr::V4(a1v4) = a1 else {
        panic!("v4")
    };
    assert!(
        sc.iter().any(|s| s.is_syn()
            && s.is_outgoing()
            && s.src == SocketAddr::V4(local)
            && s.dst == SocketAddr::V4(a1v4)),
        "{sc:?}"
    );
    // The real server's SYN-ACK arrives at the director's private side (the bridge holding the DIP).
    assert!(
        sd.iter().any(|s| !s.is_outgoing()
            && s.src == SocketAddr::V4(a1v4)
            && s.dst == SocketAddr::V4(local)
            && s.tcp_flags & 0x12 == 0x12),
        "{sd:?}"
    );
    assert!(
        sr.iter().any(|s| s.is_syn()
            && !s.is_outgoing()
            && s.src == SocketAddr::V4(local)
            && s.dst == SocketAddr::V4(a1v4)),
        "{sr:?}"
    );

    // The same prefix cannot be built twice.
    let again = Lab::up(LabConfig {
        prefix: lab.cfg.prefix.clone(),
        rvsd: false,
        ..LabConfig::default()
    });
    assert!(matches!(again, Err(LabError::StillUp { .. })), "{again:?}");

    let state_dir = lab.state_dir.clone();
    lab.down().expect("down");
    assert!(
        names.iter().all(|n| !netns::exists(n)),
        "namespaces left behind"
    );
    assert!(!state_dir.exists());
}

#[test]
fn drop_on_panic_removes_everything() {
    if !testing::lab_available("drop_on_panic_removes_everything") {
        return;
    }
    let cfg = LabConfig {
        real_servers: 1,
        rvsd: false,
        ..LabConfig::unique("p")
    };
    let names = lab::ns_names(&cfg.prefix, 1);
    let r = std::panic::catch_unwind(move || {
        let _lab = Lab::up(cfg).expect("lab");
        assert!(netns::exists(&_lab.director()));
        panic!("boom");
    });
    assert!(r.is_err());
    assert!(
        names.iter().all(|n| !netns::exists(n)),
        "a panic left namespaces behind"
    );
}

/// Accepts `n` TCP connections on `[::]:port` in `ns`; returns the peers' addresses.
fn accept_peers(
    ns: &str,
    port: u16,
    n: usize,
) -> std::thread::JoinHandle<rvs_lab::Result<Vec<std::net::IpAddr>>> {
    let (tx, rx) = std::sync::mpsc::channel();
    let h = netns::spawn_in(ns, move || {
        let l = std::net::TcpListener::bind(("::", port))
            .map_err(rvs_lab::LabError::io("binding the test listener"))?;
        let _ = tx.send(());
        let mut peers = Vec::new();
        for _ in 0..n {
            let (_, peer) = l.accept().map_err(rvs_lab::LabError::io("accept"))?;
            peers.push(peer.ip().to_canonical());
        }
        Ok(peers)
    })
    .expect("listener thread");
    rx.recv_timeout(Duration::from_secs(10))
        .expect("listener up");
    h
}

#[test]
fn router_and_three_directors_dual_stack() {
    if !testing::lab_available("router_and_three_directors_dual_stack") {
        return;
    }
    testing::reap_stale_test_labs();
    let cfg = LabConfig {
        real_servers: 1,
        rvsd: false,
        directors: 3,
        router: true,
        ..LabConfig::unique("r")
    };
    let lab = Lab::up(cfg).expect("lab with a router and three directors");
    let names = lab.namespaces();
    assert!(names.contains(&lab.router()) && names.contains(&lab.director_n(3)));
    assert!(names.iter().all(|n| netns::exists(n)));
    assert_eq!(lab.cip(), lab::ROUTED_CIP);
    // The router hashes multipath flows on their 5-tuple.
    let policy = netns::run_in(&lab.router(), || {
        std::fs::read_to_string("/proc/sys/net/ipv4/fib_multipath_hash_policy")
            .map_err(rvs_lab::LabError::io("sysctl"))
    })
    .expect("sysctl");
    assert_eq!(policy.trim(), "1");

    // Client -> router -> real server, both families; the real server sees the routed client address.
    for (addr, cip) in [
        (
            SocketAddr::new(lab::rip(1).into(), 80),
            std::net::IpAddr::V4(lab::ROUTED_CIP),
        ),
        (
            SocketAddr::new(lab::rip6(1).into(), 80),
            std::net::IpAddr::V6(lab::ROUTED_CIP6),
        ),
    ] {
        let r = lab
            .in_client(move || client::get(addr, Duration::from_secs(5)))
            .unwrap_or_else(|e| panic!("GET {addr} from behind the router: {e}"));
        assert_eq!(r.who().expect("who").1.ip(), cip, "{addr}");
    }

    // Each director: its private leg reaches the real server (which sees that director's DIP), its public leg and
    // default route reach the client behind the router (which sees that director's public address).
    let client_peers = accept_peers(&lab.client(), 8080, 2 * 3);
    for k in 1..=3 {
        let (d4, d6) = (lab::dip(k), lab::dip6(k));
        let (to4, to6) = (
            SocketAddr::new(lab::ROUTED_CIP.into(), 8080),
            SocketAddr::new(lab::ROUTED_CIP6.into(), 8080),
        );
        let seen = netns::run_in(&lab.director_n(k), move || {
            let a = client::get(
                SocketAddr::new(lab::rip(1).into(), 80),
                Duration::from_secs(5),
            )?;
            let b = client::get(
                SocketAddr::new(lab::rip6(1).into(), 80),
                Duration::from_secs(5),
            )?;
            for to in [to4, to6] {
                std::net::TcpStream::connect_timeout(&to, Duration::from_secs(5))
                    .map_err(rvs_lab::LabError::io(format!("connect {to}")))?;
            }
            Ok((a.who()?.1.ip(), b.who()?.1.ip()))
        })
        .unwrap_or_else(|e| panic!("director {k}: {e}"));
        assert_eq!(seen, (d4.into(), d6.into()), "director {k}");
    }
    let mut peers = client_peers.join().expect("join").expect("accepts");
    peers.sort();
    let mut want: Vec<std::net::IpAddr> = (1..=3)
        .flat_map(|k| [lab::public_ip(k).into(), lab::public_ip6(k).into()])
        .collect();
    want.sort();
    assert_eq!(peers, want);

    lab.down().expect("down");
    assert!(
        names.iter().all(|n| !netns::exists(n)),
        "namespaces left behind"
    );
}
