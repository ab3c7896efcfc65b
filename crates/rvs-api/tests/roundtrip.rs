//! `-S` | `-R` round trips: formatting services as rules and parsing them back gives the same
//! configuration (unit cases and a property test over random valid configurations).
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;
use rvs_api::resolve::NoResolver;
use rvs_api::*;

/// Rebuilds configurations from rule commands (as a director would apply them).
fn apply(cmds: &[Command]) -> BTreeMap<ServiceKey, (ServiceSpec, Vec<DestSpec>)> {
    let mut m = BTreeMap::new();
    for c in cmds {
        match c {
            Command::AddService(s) => {
                assert!(
                    m.insert(s.key, (s.clone(), Vec::new())).is_none(),
                    "duplicate service"
                );
            }
            Command::AddDest { service, dest } => {
                m.get_mut(service)
                    .expect("service before its dests")
                    .1
                    .push(*dest);
            }
            other => panic!("unexpected command {other:?}"),
        }
    }
    for v in m.values_mut() {
        v.1.sort_by_key(|d| (d.addr, d.port));
    }
    m
}

fn model(services: &[ServiceSnapshot]) -> BTreeMap<ServiceKey, (ServiceSpec, Vec<DestSpec>)> {
    services
        .iter()
        .map(|s| {
            let mut d: Vec<DestSpec> = s.dests.iter().map(|d| d.spec).collect();
            d.sort_by_key(|d| (d.addr, d.port));
            (s.spec.key, (s.spec.clone(), d))
        })
        .collect()
}

fn svc(config: ServiceSpec, dests: Vec<DestSpec>) -> ServiceSnapshot {
    ServiceSnapshot::configured(config, &dests)
}

#[test]
fn unit_round_trip_with_every_feature() {
    let v4 = |s: &str| -> IpAddr { s.parse().unwrap() };
    let services = vec![
        svc(
            ServiceSpec {
                key: ServiceKey::Addr {
                    protocol: Protocol::Tcp,
                    addr: v4("198.51.100.1"),
                    port: 80,
                },
                scheduler: "sh".into(),
                sched_flags: SchedFlags {
                    fallback: true,
                    port: true,
                    flag3: false,
                },
                persistence: Some(Persistence {
                    timeout_s: 3600,
                    netmask: v4("255.255.255.0"),
                }),
                one_packet: false,
                pe: Some("sip".into()),
            },
            vec![
                DestSpec {
                    addr: v4("203.0.113.1"),
                    port: 8080,
                    weight: Weight(0),
                    method: ForwardMethod::Masq,
                    u_threshold: 100,
                    l_threshold: 10,
                },
                DestSpec {
                    addr: v4("203.0.113.2"),
                    port: 80,
                    weight: Weight(7),
                    method: ForwardMethod::Tunnel(TunnelConfig {
                        kind: TunnelKind::Gue,
                        port: 6080,
                        csum: TunnelCsum::RemCsum,
                    }),
                    u_threshold: 0,
                    l_threshold: 0,
                },
            ],
        ),
        svc(
            ServiceSpec {
                key: ServiceKey::Fwmark {
                    mark: Fwmark(9),
                    ipv6: true,
                },
                scheduler: "rr".into(),
                sched_flags: SchedFlags::default(),
                persistence: Some(Persistence {
                    timeout_s: 1,
                    netmask: v4("ffff:ffff:ff00::"),
                }),
                one_packet: true,
                pe: None,
            },
            vec![DestSpec {
                addr: v4("2001:db8::9"),
                port: 0,
                weight: Weight(65535),
                method: ForwardMethod::Route,
                u_threshold: 0,
                l_threshold: 0,
            }],
        ),
    ];
    let text = rules::format(&services);
    let cmds = rules::parse_with(&text, &NoResolver).unwrap();
    assert_eq!(apply(&cmds), model(&services), "{text}");
    assert!(text.contains(" -x 100 -y 10\n"), "{text}");
}

#[test]
fn parse_errors_carry_line_numbers() {
    let e =
        rules::parse_with("\n# c\n-A -t 10.0.0.1:80\n-A -t 10.0.0.1\n", &NoResolver).unwrap_err();
    assert_eq!(e.line, 4);
    assert_eq!(e.message, "Zero port specified for non-persistent service");
    assert_eq!(
        e.to_string(),
        "line 4: Zero port specified for non-persistent service"
    );
    let e = rules::parse_with("-L -n\n", &NoResolver).unwrap_err();
    assert_eq!(e.line, 1);
}

#[test]
fn split_line_handles_program_words_quotes_comments() {
    assert_eq!(
        rules::split_line("ipvsadm -A -t 10.0.0.1:80 -s 'rr' # note"),
        vec!["-A", "-t", "10.0.0.1:80", "-s", "rr"]
    );
    assert_eq!(
        rules::split_line("   # only a comment"),
        Vec::<String>::new()
    );
    assert_eq!(rules::split_line("/usr/sbin/ipvsadm -C"), vec!["-C"]);
}

const SCHEDS: &[&str] = &[
    "rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh",
];

fn arb_flags(sched: &'static str) -> impl Strategy<Value = SchedFlags> {
    let generic = !(sched == "sh" || sched == "mh");
    (any::<bool>(), any::<bool>(), any::<bool>()).prop_map(move |(a, b, c)| SchedFlags {
        fallback: a,
        port: b,
        flag3: c && generic,
    })
}

#[derive(Debug, Clone)]
struct Gen {
    services: Vec<ServiceSnapshot>,
}

fn arb_service(idx: u32) -> impl Strategy<Value = ServiceSnapshot> {
    (
        0..4u8,        // kind: tcp4, udp4, tcp6, fwmark
        any::<bool>(), // fwmark ipv6
        prop::sample::select(SCHEDS),
        any::<bool>(),    // persistent
        1..=2_678_400u32, // timeout
        0..=32u32,        // v4 mask bits
        1..=128u32,       // v6 plen
        any::<bool>(),    // one packet (only where legal)
        prop::option::of("[a-z]{1,8}"),
        0..6usize,    // dests
        any::<u64>(), // seed for dest details
        any::<u16>(),
    )
        .prop_flat_map(
            move |(kind, fw6, sched, pers, timeout, m4, p6, ops, pe, ndest, seed, port)| {
                arb_flags(sched).prop_map(move |flags| {
                    let (key, v6) = match kind {
                        0 | 1 => (
                            ServiceKey::Addr {
                                protocol: if kind == 0 {
                                    Protocol::Tcp
                                } else {
                                    Protocol::Udp
                                },
                                addr: IpAddr::V4(Ipv4Addr::from(0xc633_6400 + idx)),
                                port,
                            },
                            false,
                        ),
                        2 => (
                            ServiceKey::Addr {
                                protocol: Protocol::Tcp,
                                addr: IpAddr::V6(Ipv6Addr::from(
                                    0x2001_0db8_u128 << 96 | u128::from(idx),
                                )),
                                port,
                            },
                            true,
                        ),
                        _ => (
                            ServiceKey::Fwmark {
                                mark: Fwmark(idx + 1),
                                ipv6: fw6,
                            },
                            fw6,
                        ),
                    };
                    let zero_port = matches!(key, ServiceKey::Addr { port: 0, .. });
                    let persistent = pers || zero_port;
                    let persistence = persistent.then(|| Persistence {
                        timeout_s: timeout,
                        netmask: if v6 {
                            IpAddr::V6(Ipv6Addr::from(u128::MAX << (128 - p6)))
                        } else {
                            IpAddr::V4(Ipv4Addr::from(if m4 == 0 {
                                0
                            } else {
                                u32::MAX << (32 - m4)
                            }))
                        },
                    });
                    let ops_ok = matches!(key, ServiceKey::Fwmark { .. })
                        || key.protocol() == Some(Protocol::Udp);
                    let svc_port = match key {
                        ServiceKey::Addr { port, .. } => port,
                        ServiceKey::Fwmark { .. } => 0,
                    };
                    let fwmark = matches!(key, ServiceKey::Fwmark { .. });
                    let mut dests = Vec::new();
                    let mut s = seed;
                    for d in 0..ndest {
                        s = s
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        let method = match (s >> 33) % 6 {
                            0 | 1 => ForwardMethod::Masq,
                            2 => ForwardMethod::Route,
                            3 => ForwardMethod::Tunnel(TunnelConfig::default()),
                            4 => ForwardMethod::Tunnel(TunnelConfig {
                                kind: TunnelKind::Gue,
                                port: 1 + ((s >> 7) as u16 % 65535),
                                csum: [TunnelCsum::NoCsum, TunnelCsum::Csum, TunnelCsum::RemCsum]
                                    [(s >> 40) as usize % 3],
                            }),
                            _ => ForwardMethod::Tunnel(TunnelConfig {
                                kind: TunnelKind::Gre,
                                port: 0,
                                csum: [TunnelCsum::NoCsum, TunnelCsum::Csum]
                                    [(s >> 41) as usize % 2],
                            }),
                        };
                        let keeps_port = fwmark || method == ForwardMethod::Masq;
                        let dport = if keeps_port {
                            (s >> 17) as u16
                        } else {
                            svc_port
                        };
                        let addr = if v6 {
                            IpAddr::V6(Ipv6Addr::from(0x2001_0db8_ffff_u128 << 80 | d as u128))
                        } else {
                            IpAddr::V4(Ipv4Addr::from(0xcb00_7100 + d as u32))
                        };
                        dests.push(DestSpec {
                            addr,
                            port: dport,
                            weight: Weight((s >> 3) as u32 % 65536),
                            method,
                            u_threshold: (s >> 20) as u32 % 3 * 1000,
                            l_threshold: (s >> 22) as u32 % 2 * 500,
                        });
                    }
                    svc(
                        ServiceSpec {
                            key,
                            scheduler: sched.to_owned(),
                            sched_flags: flags,
                            persistence,
                            one_packet: ops && ops_ok,
                            pe: pe.clone(),
                        },
                        dests,
                    )
                })
            },
        )
}

fn arb_config() -> impl Strategy<Value = Gen> {
    (0..8u32)
        .prop_flat_map(|n| (0..n).map(arb_service).collect::<Vec<_>>())
        .prop_map(|services| Gen { services })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_configs_survive_save_and_restore(g in arb_config()) {
        let text = rules::format(&g.services);
        let cmds = rules::parse_with(&text, &NoResolver)
            .map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(apply(&cmds), model(&g.services), "{}", text);
        // and saving the restored configuration gives the same text
        let restored: Vec<ServiceSnapshot> = apply(&cmds)
            .into_values()
            .map(|(c, d)| svc(c, d))
            .collect();
        prop_assert_eq!(rules::format(&restored), text);
    }
}
