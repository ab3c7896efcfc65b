//! ipvsadm command-line parsing: syntax (bundling, attached values, optional -p value), defaults
//! (wlc, -g, weight 1, persistence 360 s), and the commands produced.
#![allow(clippy::unwrap_used)]

use std::net::IpAddr;

use rvs_api::ipvsadm::{Action, Format, ListTarget, parse};
use rvs_api::resolve::NoResolver;
use rvs_api::*;

fn p(line: &str) -> Action {
    let args: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
    parse(&args, &NoResolver).unwrap_or_else(|e| panic!("{line}: {e:?}"))
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn tcp(a: &str, port: u16) -> ServiceKey {
    ServiceKey::Addr {
        protocol: Protocol::Tcp,
        addr: ip(a),
        port,
    }
}

fn add_service(line: &str) -> ServiceSpec {
    match p(line) {
        Action::Apply(Command::AddService(s)) => s,
        other => panic!("{line}: {other:?}"),
    }
}

fn add_dest(line: &str) -> (ServiceKey, DestSpec) {
    match p(line) {
        Action::Apply(Command::AddDest { service, dest }) => (service, dest),
        other => panic!("{line}: {other:?}"),
    }
}

#[test]
fn defaults_follow_ipvsadm_source() {
    let s = add_service("-A -t 10.0.0.1:80");
    assert_eq!(s.scheduler, "wlc"); // DEF_SCHED
    assert_eq!(s.persistence, None);
    let s = add_service("-A -t 10.0.0.1:80 -p");
    // IPVS_SVC_PERSISTENT_TIMEOUT is (6*60) in libipvs.h
    assert_eq!(
        s.persistence,
        Some(Persistence {
            timeout_s: 360,
            netmask: ip("255.255.255.255")
        })
    );
    let (_, d) = add_dest("-a -t 10.0.0.1:80 -r 10.0.0.2");
    assert_eq!(d.weight, Weight(1));
    assert_eq!(d.method, ForwardMethod::Route); // -g is ipvsadm's default
    assert_eq!(d.port, 80, "port copied from the service");
}

#[test]
fn no_argument_means_list() {
    assert_eq!(
        parse(&[], &NoResolver).unwrap(),
        Action::List {
            target: ListTarget::All,
            format: Format::default()
        }
    );
}

#[test]
fn popt_syntax() {
    // bundled short options, attached values, --name=value, optional -p value
    assert_eq!(
        p("-Ln"),
        Action::List {
            target: ListTarget::All,
            format: Format {
                numeric: true,
                ..Format::default()
            }
        }
    );
    assert_eq!(p("-Lnt10.0.0.1:80"), p("-L -n -t 10.0.0.1:80"));
    let s = add_service("-At10.0.0.1:80 -srr -p120");
    assert_eq!((s.key, s.scheduler.as_str()), (tcp("10.0.0.1", 80), "rr"));
    assert_eq!(s.persistence.unwrap().timeout_s, 120);
    let s = add_service(
        "--add-service --tcp-service=10.0.0.1:80 --scheduler=sh --persistent 90 --netmask 255.255.0.0",
    );
    assert_eq!(
        s.persistence,
        Some(Persistence {
            timeout_s: 90,
            netmask: ip("255.255.0.0")
        })
    );
    // -p followed by an option takes no value
    let s = add_service("-A -t 10.0.0.1:80 -p -s rr");
    assert_eq!(
        (s.persistence.unwrap().timeout_s, s.scheduler.as_str()),
        (360, "rr")
    );
    // --sort is accepted and does nothing
    assert_eq!(p("-L --sort"), p("-L"));
}

#[test]
fn services_and_addresses() {
    let s = add_service("-A -u [2001:db8::1]:53 -s rr -o");
    assert_eq!(
        s.key,
        ServiceKey::Addr {
            protocol: Protocol::Udp,
            addr: ip("2001:db8::1"),
            port: 53
        }
    );
    assert!(s.one_packet);
    let s = add_service("-A --sctp-service 10.0.0.1:3868");
    assert_eq!(s.key.protocol(), Some(Protocol::Sctp));
    let s = add_service("-A -f 42 -6 -p 60 -M 64");
    assert_eq!(
        s.key,
        ServiceKey::Fwmark {
            mark: Fwmark(42),
            ipv6: true
        }
    );
    assert_eq!(s.persistence.unwrap().netmask, ip("ffff:ffff:ffff:ffff::"));
    // inet_aton forms
    let s = add_service("-A -t 10.1:80");
    assert_eq!(s.key, tcp("10.0.0.1", 80));
    let s = add_service("-A -t 0x0a.0.0.012:80");
    assert_eq!(s.key, tcp("10.0.0.10", 80));
    // zero port is fine when persistent
    let s = add_service("-A -t 10.0.0.1 -p");
    assert_eq!(s.key, tcp("10.0.0.1", 0));
}

#[test]
fn sched_flags() {
    let s = add_service("-A -t 10.0.0.1:80 -b sh-fallback,sh-port -s sh");
    assert_eq!(
        s.sched_flags,
        SchedFlags {
            fallback: true,
            port: true,
            flag3: false
        }
    );
    let s = add_service("-A -t 10.0.0.1:80 -s mh --sched-flags mh-port");
    assert!(s.sched_flags.port && !s.sched_flags.fallback);
    let s = add_service("-A -t 10.0.0.1:80 -b flag-3");
    assert!(s.sched_flags.flag3);
}

#[test]
fn destinations() {
    let (k, d) = add_dest("-a -t 10.0.0.1:80 -r 10.0.0.2:8080 -m -w 5 -x 100 -y 50");
    assert_eq!(k, tcp("10.0.0.1", 80));
    assert_eq!(
        d,
        DestSpec {
            addr: ip("10.0.0.2"),
            port: 8080,
            weight: Weight(5),
            method: ForwardMethod::Masq,
            u_threshold: 100,
            l_threshold: 50
        }
    );
    // route and tunnel force the service port (ipvsadm does)
    let (_, d) = add_dest("-a -t 10.0.0.1:80 -r 10.0.0.2:8080 -g");
    assert_eq!(d.port, 80);
    let (_, d) =
        add_dest("-a -t 10.0.0.1:80 -r 10.0.0.2 -i --tun-type gue --tun-port 6080 --tun-csum");
    assert_eq!(
        d.method,
        ForwardMethod::Tunnel(TunnelConfig {
            kind: TunnelKind::Gue,
            port: 6080,
            csum: TunnelCsum::Csum
        })
    );
    // tunnels may cross address families
    let (_, d) = add_dest("-a -t 10.0.0.1:80 -r [2001:db8::2]:80 -i");
    assert_eq!(d.addr, ip("2001:db8::2"));
    // fwmark services keep the given real-server port
    let (k, d) = add_dest("-a -f 3 -r 10.0.0.2:8080 -g");
    assert_eq!(
        (k, d.port),
        (
            ServiceKey::Fwmark {
                mark: Fwmark(3),
                ipv6: false
            },
            8080
        )
    );
    match p("-e -t 10.0.0.1:80 -r 10.0.0.2 -m -w 0") {
        Action::Apply(Command::EditDest { dest, .. }) => assert_eq!(dest.weight, Weight(0)),
        other => panic!("{other:?}"),
    }
    match p("-d -t 10.0.0.1:80 -r 10.0.0.2") {
        Action::Apply(Command::DeleteDest { addr, port, .. }) => {
            assert_eq!((addr, port), (ip("10.0.0.2"), 80))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn other_commands() {
    assert_eq!(p("-C"), Action::Apply(Command::Clear));
    assert_eq!(p("-Z"), Action::Apply(Command::Zero(None)));
    assert_eq!(
        p("-Z -t 10.0.0.1:80"),
        Action::Apply(Command::Zero(Some(tcp("10.0.0.1", 80))))
    );
    assert_eq!(
        p("-D -t 10.0.0.1:80"),
        Action::Apply(Command::DeleteService(tcp("10.0.0.1", 80)))
    );
    assert_eq!(
        p("--set 900 120 300"),
        Action::Apply(Command::SetTimeouts(Timeouts {
            tcp_s: 900,
            tcp_fin_s: 120,
            udp_s: 300
        }))
    );
    assert!(
        matches!(p("-E -t 10.0.0.1:80 -s rr"), Action::Apply(Command::EditService(s)) if s.scheduler == "rr")
    );
    assert_eq!(p("-R"), Action::Restore);
    assert!(matches!(p("-S -n"), Action::Save { format } if format.rule && format.numeric));
    assert_eq!(
        p("-L --timeout"),
        Action::List {
            target: ListTarget::Timeout,
            format: Format::default()
        }
    );
    assert!(matches!(
        p("-L -c -n"),
        Action::List {
            target: ListTarget::Connections,
            ..
        }
    ));
    assert!(matches!(
        p("-L --daemon"),
        Action::List {
            target: ListTarget::Daemon,
            ..
        }
    ));
    match p(
        "--start-daemon backup --mcast-interface eth1 --syncid 7 --mcast-group 239.1.2.3 --mcast-port 8849 --mcast-ttl 2 --sync-maxlen 1400",
    ) {
        Action::Apply(Command::StartDaemon(d)) => {
            assert_eq!(d.state, DaemonState::Backup);
            assert_eq!(
                (
                    d.mcast_ifn.as_str(),
                    d.syncid,
                    d.mcast_port,
                    d.mcast_ttl,
                    d.sync_maxlen
                ),
                ("eth1", 7, 8849, 2, 1400)
            );
            assert_eq!(d.mcast_group, Some(ip("239.1.2.3")));
        }
        other => panic!("{other:?}"),
    }
    match p("--start-daemon master") {
        Action::Apply(Command::StartDaemon(d)) => assert_eq!(d.mcast_ifn, "eth0"),
        other => panic!("{other:?}"),
    }
    assert_eq!(p("-h"), Action::Help);
    assert_eq!(p("-v"), Action::Version);
}

mod no_panic {
    use proptest::prelude::*;
    use rvs_api::ipvsadm::parse;
    use rvs_api::resolve::NoResolver;

    const WORDS: &[&str] = &[
        "-A",
        "-E",
        "-D",
        "-C",
        "-R",
        "-S",
        "-a",
        "-e",
        "-d",
        "-L",
        "-l",
        "-Z",
        "--set",
        "-h",
        "-v",
        "--start-daemon",
        "--stop-daemon",
        "master",
        "backup",
        "-t",
        "-u",
        "--sctp-service",
        "-f",
        "-6",
        "-s",
        "-p",
        "-M",
        "-b",
        "-o",
        "--ops",
        "--pe",
        "-r",
        "-g",
        "-i",
        "-m",
        "--tun-type",
        "--tun-port",
        "--tun-nocsum",
        "--tun-csum",
        "--tun-remcsum",
        "-w",
        "-x",
        "-y",
        "-c",
        "--timeout",
        "--daemon",
        "--stats",
        "--rate",
        "--thresholds",
        "--persistent-conn",
        "--tun-info",
        "--nosort",
        "--sort",
        "-n",
        "--exact",
        "--mcast-interface",
        "--syncid",
        "--sync-maxlen",
        "--mcast-group",
        "--mcast-port",
        "--mcast-ttl",
        "10.0.0.1:80",
        "[2001:db8::1]:80",
        "2001:db8::1",
        "10.0.0.2",
        "0",
        "1",
        "65535",
        "65536",
        "-1",
        "rr",
        "sh",
        "mh",
        "sh-port,sh-fallback",
        "flag-1,flag-3",
        "gue",
        "gre",
        "ipip",
        "255.255.255.0",
        "64",
        "239.1.1.1",
        "ff02::1",
        "--",
        "-",
        "-Ln",
        "-At10.0.0.1:80",
        "-p300",
        "é",
        "-é",
        ":",
        "[",
        "[]:",
        "0x",
        "1.2.3.4.5",
        "--=",
        "--tcp-service=",
    ];

    fn word() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => prop::sample::select(WORDS).prop_map(str::to_owned),
            1 => any::<String>(),
            1 => "-[a-zA-Z0-9]{1,4}",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        /// Whatever the words, the parser answers (an action or ipvsadm's error), never panics,
        /// and its errors use ipvsadm's exit codes.
        #[test]
        fn parser_never_panics(args in prop::collection::vec(word(), 0..8)) {
            match parse(&args, &NoResolver) {
                Ok(_) => {}
                Err(e) => prop_assert!(e.exit_code == 2 || e.exit_code == 255),
            }
        }

        #[test]
        fn rules_parser_never_panics(text in prop::collection::vec(prop::collection::vec(word(), 0..8), 0..6)) {
            let text: String = text.iter().map(|l| l.join(" ") + "\n").collect();
            let _ = rvs_api::rules::parse_with(&text, &NoResolver);
        }
    }
}
