//! Shared fixtures: a fake director holding a configuration with several services, fwmark
//! (IPv4 and IPv6), persistence with netmask, scheduler flags, every forwarding method, large
//! counters.
#![allow(dead_code)]

use std::net::IpAddr;

use rvs_api::client::ClientError;
use rvs_api::*;
use rvsadm::{Director, Io, run};

pub fn ip(s: &str) -> IpAddr {
    s.parse().expect("fixture address")
}

pub fn dest(addr: &str, port: u16, weight: u32, method: ForwardMethod) -> DestSnapshot {
    DestSnapshot::configured(DestSpec {
        method,
        ..DestSpec::masq(ip(addr), port, Weight(weight))
    })
}

pub fn service(key: ServiceKey, sched: &str, dests: Vec<DestSnapshot>) -> ServiceSnapshot {
    ServiceSnapshot {
        spec: ServiceSpec {
            key,
            scheduler: sched.to_owned(),
            sched_flags: SchedFlags::default(),
            persistence: None,
            one_packet: false,
            pe: None,
        },
        stats: Stats::default(),
        rates: Rates::default(),
        dests,
    }
}

pub fn tcp(addr: &str, port: u16) -> ServiceKey {
    ServiceKey::Addr {
        protocol: Protocol::Tcp,
        addr: ip(addr),
        port,
    }
}

pub fn udp(addr: &str, port: u16) -> ServiceKey {
    ServiceKey::Addr {
        protocol: Protocol::Udp,
        addr: ip(addr),
        port,
    }
}

/// The fixture configuration, deliberately NOT in ipvsadm's sort order.
pub fn fixture() -> Vec<ServiceSnapshot> {
    // 1. plain web service with big counters, two masq real servers (given out of order)
    let mut web = service(
        tcp("198.51.100.1", 80),
        "rr",
        vec![
            dest("203.0.113.11", 80, 1, ForwardMethod::Masq),
            dest("203.0.113.10", 8080, 3, ForwardMethod::Masq),
        ],
    );
    web.stats = Stats {
        conns: 123_456_789,
        inpkts: 99_999_999,
        outpkts: 1_000_000_000,
        inbytes: 123_456_789_012_345,
        outbytes: 98_765_432_109,
    };
    web.rates = Rates {
        cps: 12,
        inpps: 3400,
        outpps: 5600,
        inbps: 987_654_321,
        outbps: 100_000_000,
    };
    web.dests[0].active_conns = 12;
    web.dests[0].inactive_conns = 34;
    web.dests[0].persistent_conns = 5;
    web.dests[0].spec.u_threshold = 1000;
    web.dests[0].spec.l_threshold = 750;
    web.dests[0].stats = Stats {
        conns: 61_000_000,
        inpkts: 500_000_000,
        outpkts: 600,
        inbytes: 70_000_000_000,
        outbytes: 1,
    };
    web.dests[0].rates = Rates {
        cps: 6,
        inpps: 1700,
        outpps: 2800,
        inbps: 493_827_160,
        outbps: 50_000_000,
    };
    web.dests[1].active_conns = 7;
    web.dests[1].stats = Stats {
        conns: 62_456_789,
        inpkts: 100,
        outpkts: 200,
        inbytes: 300,
        outbytes: 400,
    };

    // 2. UDP DNS, one-packet scheduling, a quiesced route real server
    let mut dns = service(
        udp("198.51.100.1", 53),
        "wlc",
        vec![dest("203.0.113.20", 53, 0, ForwardMethod::Route)],
    );
    dns.spec.one_packet = true;

    // 3. sh with flags, persistence with netmask, tunnels of every type and a local server
    let mut tls = service(
        tcp("198.51.100.2", 443),
        "sh",
        vec![
            dest(
                "203.0.113.32",
                443,
                1,
                ForwardMethod::Tunnel(TunnelConfig {
                    kind: TunnelKind::Gre,
                    port: 0,
                    csum: TunnelCsum::Csum,
                }),
            ),
            dest(
                "203.0.113.30",
                443,
                2,
                ForwardMethod::Tunnel(TunnelConfig::default()),
            ),
            dest(
                "203.0.113.31",
                443,
                65535,
                ForwardMethod::Tunnel(TunnelConfig {
                    kind: TunnelKind::Gue,
                    port: 6080,
                    csum: TunnelCsum::RemCsum,
                }),
            ),
            dest("203.0.113.33", 443, 4, ForwardMethod::Local),
        ],
    );
    tls.spec.sched_flags = SchedFlags {
        fallback: true,
        port: true,
        flag3: false,
    };
    tls.spec.persistence = Some(Persistence {
        timeout_s: 360,
        netmask: ip("255.255.255.0"),
    });

    // 4. fwmark service, mh with a flag, persistent with the host mask
    let mut fwm = service(
        ServiceKey::Fwmark {
            mark: Fwmark(1),
            ipv6: false,
        },
        "mh",
        vec![dest("203.0.113.40", 0, 2, ForwardMethod::Masq)],
    );
    fwm.spec.sched_flags = SchedFlags {
        fallback: false,
        port: true,
        flag3: false,
    };
    fwm.spec.persistence = Some(Persistence {
        timeout_s: 300,
        netmask: ip("255.255.255.255"),
    });

    // 5. IPv6 fwmark service with generic flags
    let mut fwm6 = service(
        ServiceKey::Fwmark {
            mark: Fwmark(2),
            ipv6: true,
        },
        "wrr",
        vec![dest("2001:db8::1", 0, 1, ForwardMethod::Masq)],
    );
    fwm6.spec.sched_flags = SchedFlags {
        fallback: true,
        port: false,
        flag3: true,
    };

    // 6. IPv6 service, persistence with a /64 mask and a persistence engine
    let mut v6 = service(
        tcp("2001:db8::100", 80),
        "lc",
        vec![
            dest("2001:db8::3", 80, 1, ForwardMethod::Masq),
            dest("2001:db8::2", 8080, 1, ForwardMethod::Masq),
        ],
    );
    v6.spec.persistence = Some(Persistence {
        timeout_s: 600,
        netmask: ip("ffff:ffff:ffff:ffff::"),
    });
    v6.spec.pe = Some("sip".to_owned());

    // 7. all-ports persistent service without real servers
    let mut any = service(tcp("198.51.100.3", 0), "wlc", vec![]);
    any.spec.persistence = Some(Persistence {
        timeout_s: 360,
        netmask: ip("255.255.255.255"),
    });

    vec![v6, fwm6, tls, any, fwm, dns, web]
}

pub fn fixture_conns() -> Vec<ConnSnapshot> {
    vec![
        ConnSnapshot {
            protocol: Protocol::Tcp,
            caddr: ip("198.51.100.200"),
            cport: 40001,
            vaddr: ip("198.51.100.1"),
            vport: 80,
            daddr: ip("203.0.113.10"),
            dport: 8080,
            state: "ESTABLISHED".into(),
            expires_in_ms: 899_999,
            template: false,
        },
        ConnSnapshot {
            protocol: Protocol::Udp,
            caddr: ip("198.51.100.201"),
            cport: 5353,
            vaddr: ip("198.51.100.1"),
            vport: 53,
            daddr: ip("203.0.113.20"),
            dport: 53,
            state: "UDP".into(),
            expires_in_ms: 5_000,
            template: false,
        },
        ConnSnapshot {
            protocol: Protocol::Tcp,
            caddr: ip("198.51.100.0"),
            cport: 0,
            vaddr: ip("198.51.100.2"),
            vport: 443,
            daddr: ip("203.0.113.30"),
            dport: 443,
            state: "NONE".into(),
            expires_in_ms: 359_500,
            template: true,
        },
        ConnSnapshot {
            protocol: Protocol::Tcp,
            caddr: ip("2001:db8::ff"),
            cport: 50000,
            vaddr: ip("2001:db8::100"),
            vport: 80,
            daddr: ip("2001:db8::2"),
            dport: 8080,
            state: "SYN_RECV".into(),
            expires_in_ms: 59_000,
            template: false,
        },
    ]
}

/// Two running sync daemons as rvsd lists them: it fills in the defaults of what `--start-daemon` left out
/// (maxlen, group, port, ttl), as the kernel does.
pub fn fixture_daemons() -> Vec<DaemonConfig> {
    vec![
        DaemonConfig {
            state: DaemonState::Master,
            mcast_ifn: "eth1".to_owned(),
            syncid: 7,
            sync_maxlen: 1472,
            mcast_group: Some(ip("224.0.0.81")),
            mcast_port: 8848,
            mcast_ttl: 1,
        },
        DaemonConfig {
            state: DaemonState::Backup,
            mcast_ifn: "eth2".to_owned(),
            syncid: 0,
            sync_maxlen: 1472,
            mcast_group: Some(ip("224.0.0.81")),
            mcast_port: 8848,
            mcast_ttl: 1,
        },
    ]
}

/// In-memory director answering queries from the fixture and recording changes.
#[derive(Debug, Default)]
pub struct Fake {
    pub services: Vec<ServiceSnapshot>,
    pub conns: Vec<ConnSnapshot>,
    /// What `ListDaemons` answers: rvsd always sends the list of running sync daemons (empty when none runs).
    pub daemons: Vec<DaemonConfig>,
    pub calls: Vec<Command>,
    /// Error to return for change commands.
    pub fail_with: Option<ApiError>,
}

impl Fake {
    pub fn with_fixture() -> Self {
        Self {
            services: fixture(),
            conns: fixture_conns(),
            daemons: fixture_daemons(),
            ..Self::default()
        }
    }
}

impl Director for Fake {
    fn call(&mut self, cmd: Command) -> Result<Reply, ClientError> {
        self.calls.push(cmd.clone());
        match cmd {
            Command::GetInfo => Ok(Reply::Info(Info {
                version: "1.2.1".to_owned(),
                conn_table_size: 4096,
            })),
            Command::ListServices => Ok(Reply::Services(self.services.clone())),
            Command::GetService(k) => self
                .services
                .iter()
                .find(|s| s.spec.key == k)
                .cloned()
                .map(Reply::Service)
                .ok_or_else(|| ClientError::Api(ApiError::new(ErrorCode::NoSuchService))),
            Command::ListConnections => Ok(Reply::Connections(self.conns.clone())),
            Command::GetTimeouts => Ok(Reply::Timeouts(Timeouts {
                tcp_s: 900,
                tcp_fin_s: 120,
                udp_s: 300,
            })),
            Command::ListDaemons => Ok(Reply::Daemons(self.daemons.clone())),
            _ => match &self.fail_with {
                Some(e) => Err(ClientError::Api(e.clone())),
                None => Ok(Reply::Done),
            },
        }
    }
}

/// Runs rvsadm with `args` (space separated) against `fake`; returns (status, stdout, stderr).
pub fn run_with(fake: &mut Fake, args: &str, stdin: &str) -> (i32, String, String) {
    let args: Vec<String> = args.split_whitespace().map(str::to_owned).collect();
    run_args(fake, &args, stdin)
}

pub fn run_args(fake: &mut Fake, args: &[String], stdin: &str) -> (i32, String, String) {
    let mut input = stdin.as_bytes();
    let mut out = Vec::new();
    let mut err = Vec::new();
    let code = {
        let mut io = Io {
            stdin: &mut input,
            stdout: &mut out,
            stderr: &mut err,
        };
        run(args, fake, &rvs_api::resolve::NoResolver, &mut io)
    };
    (
        code,
        String::from_utf8(out).expect("utf8 stdout"),
        String::from_utf8(err).expect("utf8 stderr"),
    )
}
