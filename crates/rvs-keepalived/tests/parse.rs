//! Parser tests over samples in keepalived's grammar: the typed model, keepalived's defaults, includes,
//! warnings and errors with file:line, and the batch the LVS side converts to.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rvs_keepalived::*;

fn sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/samples/keepalived.conf")
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

fn mem(files: &[(&str, &str)]) -> Result<Loaded, LoadError> {
    let src = MemorySource::new(files.iter().copied());
    load_from(&src, Path::new(files[0].0), &LexOptions::default())
}

#[test]
fn the_sample_reads_fully_typed() {
    let l = load(&sample(), &LexOptions::default()).expect("sample loads");
    let c = &l.config;
    assert_eq!(c.global.router_id.as_deref(), Some("LVS_RVS"));
    assert_eq!(
        c.global.lvs_timeouts,
        Some(LvsTimeouts {
            tcp: Some(900),
            tcpfin: Some(120),
            udp: Some(300)
        })
    );
    let sd = c.global.lvs_sync_daemon.as_ref().expect("sync daemon");
    assert_eq!(
        (sd.interface.as_str(), sd.instance.as_deref(), sd.syncid),
        ("priv0", Some("VI_1"), Some(7))
    );

    // VRRP side.
    let vi = &c.vrrp.instances[0];
    assert_eq!(vi.name, "VI_1");
    assert_eq!(vi.state, VrrpState::Master);
    assert_eq!((vi.virtual_router_id, vi.priority), (Some(51), 150));
    assert_eq!(vi.authentication, Some(VrrpAuth::Pass("rvs1".into())));
    assert_eq!(vi.unicast_peer, vec![ip("198.51.100.2")]);
    assert_eq!(vi.virtual_ipaddress[0].addr, ip("198.51.100.100"));
    assert_eq!(vi.virtual_ipaddress[0].prefix, 24);
    assert_eq!(vi.virtual_ipaddress[0].dev.as_deref(), Some("pub0"));
    assert_eq!(vi.track_interface[0].weight, Some(-30));
    assert_eq!(vi.track_script[0].name, "chk_rvsd");
    let ns = vi.notify_master.as_ref().expect("notify_master");
    assert_eq!(
        (ns.command.as_str(), ns.user.as_deref()),
        ("/etc/keepalived/master.sh", Some("root"))
    );
    assert_eq!(c.vrrp.sync_groups[0].group, vec!["VI_1".to_string()]);
    let sc = &c.vrrp.scripts[0];
    assert_eq!(
        (sc.weight, sc.fall, sc.rise, sc.interval),
        (-20, 3, 2, Duration::from_secs(2))
    );
    assert_eq!(sc.timeout, sc.interval, "timeout defaults to the interval");

    // LVS side.
    assert_eq!(c.virtual_servers.len(), 3);
    let web = &c.virtual_servers[0];
    assert_eq!(
        web.address,
        VsAddress::Addr {
            addr: ip("198.51.100.100"),
            port: 80
        }
    );
    assert_eq!(
        (
            web.scheduler.as_str(),
            web.method,
            web.quorum,
            web.hysteresis
        ),
        ("rr", LvsMethod::Nat, 2, 1)
    );
    assert_eq!(
        web.sorry_server
            .as_ref()
            .map(|s| (s.addr, s.port, s.inhibit)),
        Some((ip("203.0.113.99"), 80, false))
    );
    let rips: Vec<IpAddr> = web.real_servers.iter().map(|r| r.addr).collect();
    assert_eq!(
        rips,
        [
            ip("203.0.113.11"),
            ip("203.0.113.12"),
            ip("203.0.113.14"),
            ip("203.0.113.15")
        ],
        "included real servers in sorted file order"
    );
    let rs1 = &web.real_servers[0];
    assert_eq!((rs1.weight, rs1.inhibit_on_failure), (3, true));
    let http = &rs1.checkers[0];
    let CheckKind::Http(h) = &http.kind else {
        panic!("HTTP_GET expected, got {:?}", http.kind)
    };
    assert_eq!(h.urls.len(), 2);
    assert_eq!(h.urls[0].path, "/health");
    assert_eq!(h.urls[0].status, vec![(200, 299), (301, 301), (404, 404)]);
    assert_eq!(h.urls[0].digest.map(|d| d[0]), Some(0x9b));
    assert!(h.urls[0].accepts(404) && !h.urls[0].accepts(500));
    assert_eq!(h.urls[1].status, vec![(200, 299)], "default status codes");
    assert_eq!(
        h.urls[1].virtualhost.as_deref(),
        Some("www.example.invalid"),
        "virtualhost inherited from the VS"
    );
    assert_eq!(
        http.delay_loop,
        Duration::from_secs(6),
        "delay_loop inherited from the VS"
    );
    assert_eq!(http.connect_timeout, Duration::from_secs(2));
    assert_eq!(http.retry, 2, "nb_get_retry is retry's old spelling");
    assert_eq!(
        http.delay_before_retry,
        Duration::from_secs(3),
        "HTTP_GET's delay_before_retry default"
    );
    assert_eq!(
        http.warmup,
        Duration::from_secs(6),
        "warmup defaults to delay_loop"
    );
    assert_eq!(
        (http.connect_ip, http.connect_port),
        (ip("203.0.113.11"), 80)
    );

    let rs2 = &web.real_servers[1];
    assert_eq!(rs2.weight, 1, "weight default");
    let tcp = &rs2.checkers[0];
    assert_eq!(tcp.kind, CheckKind::Tcp);
    assert_eq!(
        (tcp.connect_port, tcp.bindto),
        (8080, Some(ip("203.0.113.1")))
    );
    assert_eq!(
        (tcp.retry, tcp.delay_before_retry, tcp.connect_timeout),
        (1, Duration::from_secs(1), Duration::from_secs(5))
    );
    let CheckKind::Misc(m) = &rs2.checkers[1].kind else {
        panic!("MISC_CHECK expected")
    };
    assert_eq!(m.script.command, "/usr/local/bin/check-rs 203.0.113.12");
    assert!(m.dynamic);
    assert_eq!(
        m.timeout,
        Duration::from_secs(6),
        "misc_timeout defaults to delay_loop"
    );
    assert_eq!(rs2.checkers[1].retry, 0, "MISC_CHECK retry default is 0");
    assert_eq!(web.real_servers[2].checkers[0].retry, 4);

    let dns_vs = &c.virtual_servers[1];
    assert_eq!(
        (dns_vs.protocol, dns_vs.scheduler.as_str(), dns_vs.ops),
        (VsProtocol::Udp, "wlc", true)
    );
    let dns = &dns_vs.real_servers[0].checkers[0];
    assert_eq!(dns.retry, 3, "DNS_CHECK retry default");
    assert_eq!(
        dns.delay_loop,
        Duration::from_secs(60),
        "delay_loop default"
    );
    assert_eq!(
        dns.delay_before_retry, dns.delay_loop,
        "DNS_CHECK delay_before_retry defaults to delay_loop"
    );
    assert_eq!(
        dns.kind,
        CheckKind::Dns(DnsCheck {
            qtype: DnsType::A,
            name: "example.invalid".into()
        })
    );
    let CheckKind::Udp(u) = &dns_vs.real_servers[1].checkers[0].kind else {
        panic!("UDP_CHECK")
    };
    assert_eq!(u.payload, Some(vec![0, 1, 2]));
    assert_eq!(u.require_reply, Some(vec![]));

    let grp = &c.virtual_servers[2];
    assert_eq!(
        grp.persistence_timeout,
        Some(360),
        "persistence_timeout without a value"
    );
    assert!(grp.flags.port && grp.alpha);
    assert!(
        grp.real_servers[0].checkers.iter().all(|c| c.alpha),
        "alpha is inherited"
    );
    let CheckKind::Ssl(s) = &grp.real_servers[0].checkers[0].kind else {
        panic!("SSL_GET")
    };
    assert!(s.enable_sni);
    assert_eq!(
        grp.real_servers[0].checkers[1].kind,
        CheckKind::Smtp(SmtpCheck {
            helo_name: "rvs.example.invalid".into()
        })
    );

    // Warnings: notification_email only (everything else in the sample is implemented).
    assert_eq!(l.warnings.len(), 1, "{:?}", l.warnings);
    assert!(
        l.warnings[0].to_string().contains("keepalived.conf:4:"),
        "{}",
        l.warnings[0]
    );
}

#[test]
fn the_lvs_side_is_one_rvsadm_batch() {
    let l = load(&sample(), &LexOptions::default()).expect("sample loads");
    let rvs_api::Command::Batch(cmds) = l.config.static_batch().expect("batch") else {
        panic!("a batch")
    };
    let services: Vec<String> = cmds
        .iter()
        .filter_map(|c| match c {
            rvs_api::Command::AddService(s) => Some(s.key.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(
        services,
        [
            "TCP 198.51.100.100:80",
            "UDP 198.51.100.100:53",
            "TCP 198.51.100.101:443",
            "TCP 198.51.100.102:443",
            "FWM 7"
        ]
    );
    let first = cmds.iter().find_map(|c| match c {
        rvs_api::Command::AddDest { dest, .. } => Some(*dest),
        _ => None,
    });
    let d = first.expect("a destination");
    assert_eq!(
        (d.addr, d.port, d.weight, d.method),
        (
            ip("203.0.113.11"),
            80,
            rvs_api::Weight(3),
            rvs_api::ForwardMethod::Masq
        )
    );
    assert!(
        matches!(cmds.last(), Some(rvs_api::Command::SetTimeouts(t)) if t.tcp_s == 900 && t.udp_s == 300)
    );
    let persistent = cmds.iter().find_map(|c| match c {
        rvs_api::Command::AddService(s) if s.scheduler == "sh" => Some(s.clone()),
        _ => None,
    });
    let p = persistent.expect("sh service");
    assert_eq!(p.persistence.map(|p| p.timeout_s), Some(360));
    assert!(p.sched_flags.port);
}

#[test]
fn grammar_corners() {
    let text = "virtual_server 10.0.0.1 80\n{\n  lb_algo rr # trailing comment\n  real_server 10.0.1.1 80 { weight 2 } ! other comment\n  real_server \"10.0.1.2\" 80 {\n    MISC_CHECK { misc_path \"/bin/x # not a comment\" }\n  }\n}\n";
    let l = parse_str(text).expect("valid");
    let vs = &l.config.virtual_servers[0];
    assert_eq!(vs.scheduler, "rr");
    assert_eq!(vs.real_servers[0].weight, 2);
    let CheckKind::Misc(m) = &vs.real_servers[1].checkers[0].kind else {
        panic!("misc")
    };
    assert_eq!(m.script.command, "/bin/x # not a comment");
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
}

#[test]
fn parameters_and_conditional_lines() {
    let text = "$RIP=10.0.1.1\n$W=5\nvirtual_server 10.0.0.1 80 {\n real_server $RIP 80 {\n  weight ${W}\n }\n @other real_server 10.0.1.9 80 { }\n @^other real_server 10.0.1.8 80 { }\n}\n";
    let l = parse_str(text).expect("valid");
    let rs: Vec<(IpAddr, u32)> = l.config.virtual_servers[0]
        .real_servers
        .iter()
        .map(|r| (r.addr, r.weight))
        .collect();
    assert_eq!(rs, [(ip("10.0.1.1"), 5), (ip("10.0.1.8"), 1)]);
}

#[test]
fn defaults_of_a_bare_virtual_server() {
    let l = parse_str("virtual_server 10.0.0.1 80 {\n real_server 10.0.1.1 80 {\n  HTTP_GET { url { path / } }\n }\n}\n")
        .expect("valid");
    let vs = &l.config.virtual_servers[0];
    assert_eq!(
        (vs.scheduler.as_str(), vs.method, vs.protocol, vs.quorum),
        ("wlc", LvsMethod::Nat, VsProtocol::Tcp, 1)
    );
    let c = &vs.real_servers[0].checkers[0];
    assert_eq!(
        (
            c.delay_loop,
            c.connect_timeout,
            c.retry,
            c.delay_before_retry
        ),
        (
            Duration::from_secs(60),
            Duration::from_secs(5),
            1,
            Duration::from_secs(3)
        )
    );
}

#[test]
fn unknown_and_unimplemented_keywords_warn_once_each_with_file_line() {
    let text = "virtual_server 10.0.0.1 80 {\n  bogus_keyword 1\n  real_server 10.0.1.1 80 {\n    PING_CHECK { }\n    smtp_alert\n  }\n}\nbfd_instance b1 {\n}\n";
    let l = parse_str(text).expect("warnings do not stop the load");
    let w: Vec<String> = l.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(w.len(), 4, "{w:?}");
    assert!(
        w[0].starts_with("keepalived.conf:2: unknown keyword 'bogus_keyword'"),
        "{}",
        w[0]
    );
    assert!(
        w.iter()
            .any(|x| x.starts_with("keepalived.conf:4: 'PING_CHECK' is not implemented")),
        "{w:?}"
    );
    assert!(
        w.iter()
            .any(|x| x.starts_with("keepalived.conf:5: 'smtp_alert'")),
        "{w:?}"
    );
    assert!(
        w.iter()
            .any(|x| x.starts_with("keepalived.conf:8: 'bfd_instance'")),
        "{w:?}"
    );
}

#[test]
fn syntax_errors_name_file_and_line() {
    let cases: &[(&str, &str)] = &[
        (
            "virtual_server 10.0.0.1 80 {\n real_server 10.0.1.1 80 {\n}\n",
            "keepalived.conf:1: syntax error: block of 'virtual_server' is never closed",
        ),
        (
            "global_defs {\n}\n}\n",
            "keepalived.conf:3: syntax error: '}' without a matching '{'",
        ),
        (
            "global_defs {\n router_id \"abc\n}\n",
            "keepalived.conf:2: syntax error: unterminated quoted string",
        ),
        (
            "virtual_server 10.0.0.300 80 {\n}\n",
            "keepalived.conf:1: virtual_server: '10.0.0.300' is not an IP address",
        ),
        (
            "virtual_server 10.0.0.1 80 {\n real_server 10.0.1.1 80 {\n  weight x\n }\n}\n",
            "keepalived.conf:3: weight: 'x' is not a valid number",
        ),
        (
            "virtual_server 10.0.0.1 80 {\n lb_algo nope\n}\n",
            "keepalived.conf:2: lb_algo: unknown scheduler 'nope'",
        ),
        (
            "virtual_server 10.0.0.1 80 {\n}\nvirtual_server 10.0.0.1 80 {\n}\n",
            "keepalived.conf:3: virtual server TCP 10.0.0.1:80 is already defined at keepalived.conf:1",
        ),
        (
            "virtual_server group G {\n}\n",
            "keepalived.conf:1: virtual_server group G: no virtual_server_group of that name",
        ),
        (
            "{\n}\n",
            "keepalived.conf:1: syntax error: '{' without a keyword",
        ),
        (
            "virtual_server 10.0.0.1 80 {\n real_server 10.0.1.1 80 {\n  HTTP_GET { url {\n path /\n digest abc\n } }\n }\n}\n",
            "keepalived.conf:5: digest: 'abc' is not an MD5 digest",
        ),
        (
            "virtual_server 10.0.0.1 80 {\n real_server 10.0.1.1 80 {\n  HTTP_GET { url {\n path /\n status_code 200-1\n } }\n }\n}\n",
            "keepalived.conf:5: status_code: '200-1' is not a status code or range",
        ),
    ];
    for (text, want) in cases {
        let e = parse_str(text).expect_err(want);
        assert!(e.to_string().starts_with(want), "got '{e}', want '{want}'");
    }
}

#[test]
fn includes_are_relative_to_the_including_file_and_errors_name_the_included_file() {
    let l = mem(&[
        (
            "/etc/keepalived/keepalived.conf",
            "include conf.d/*.conf\ninclude missing/*.conf\n",
        ),
        (
            "/etc/keepalived/conf.d/20-b.conf",
            "virtual_server 10.0.0.2 80 {\n}\n",
        ),
        (
            "/etc/keepalived/conf.d/10-a.conf",
            "virtual_server 10.0.0.1 80 {\n include ../rs/*.rs\n}\n",
        ),
        ("/etc/keepalived/rs/x.rs", "real_server 10.0.1.1 80 {\n}\n"),
    ])
    .expect("valid");
    let vs: Vec<String> = l
        .config
        .virtual_servers
        .iter()
        .map(|v| format!("{:?}", v.address))
        .collect();
    assert!(
        vs[0].contains("10.0.0.1") && vs[1].contains("10.0.0.2"),
        "sorted glob order: {vs:?}"
    );
    assert_eq!(l.config.virtual_servers[0].real_servers.len(), 1);
    assert_eq!(
        l.config.virtual_servers[0].real_servers[0].loc.to_string(),
        "/etc/keepalived/rs/x.rs:1"
    );
    assert_eq!(l.warnings.len(), 1);
    assert!(l.warnings[0].to_string().starts_with(
        "/etc/keepalived/keepalived.conf:2: include /etc/keepalived/missing/*.conf: no file matches"
    ));

    let e = mem(&[
        ("/k/main.conf", "include sub.conf\n"),
        (
            "/k/sub.conf",
            "! comment\nvirtual_server 10.0.0.1 80 {\n lb_kind XX\n}\n",
        ),
    ])
    .expect_err("bad method");
    assert!(
        e.to_string()
            .starts_with("/k/sub.conf:3: lb_kind: unknown forwarding method 'XX'"),
        "{e}"
    );

    let e = mem(&[("/k/main.conf", "include main.conf\n")]).expect_err("loop");
    assert!(e.to_string().contains("includes itself"), "{e}");
}

#[test]
fn includes_on_the_file_system() {
    let dir = std::env::temp_dir().join(format!("rvs-keepalived-inc-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("d")).expect("mkdir");
    std::fs::write(dir.join("main.conf"), "include d/*.conf\n").expect("write");
    std::fs::write(dir.join("d/1.conf"), "virtual_server 10.0.0.1 80 {\n}\n").expect("write");
    std::fs::write(dir.join("d/.hidden.conf"), "garbage {{{\n").expect("write");
    let l = load(&dir.join("main.conf"), &LexOptions::default());
    let _ = std::fs::remove_dir_all(&dir);
    let l = l.expect("valid");
    assert_eq!(
        l.config.virtual_servers.len(),
        1,
        "hidden files are not matched by *"
    );
}

#[test]
fn group_ranges_and_fwmarks_expand() {
    let l = parse_str("virtual_server_group G {\n 10.0.0.1-3 80\n 10.0.1.0/31 80\n fwmark 9 inet6\n}\nvirtual_server group G {\n protocol UDP\n}\n")
        .expect("valid");
    let keys: Vec<String> = l
        .config
        .services()
        .expect("keys")
        .iter()
        .map(|(k, _)| k.to_string())
        .collect();
    assert_eq!(
        keys,
        [
            "UDP 10.0.0.1:80",
            "UDP 10.0.0.2:80",
            "UDP 10.0.0.3:80",
            "UDP 10.0.1.0:80",
            "UDP 10.0.1.1:80",
            "FWM 9 IPv6"
        ]
    );
    let e = parse_str("virtual_server_group G {\n 10.0.0.0/8 80\n}\nvirtual_server group G {\n}\n")
        .expect_err("too big");
    assert!(
        e.to_string()
            .starts_with("keepalived.conf:2: address range of more than"),
        "{e}"
    );
}
