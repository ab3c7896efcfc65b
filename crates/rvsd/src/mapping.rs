//! The control protocol on the director: requests in, director operations and listings out.
//!
//! The configuration values (service key, specs, method, flags, timeouts, stats) and the listings
//! (the director's snapshots) are one set of types (rvs-core's, serialized by rvs-api), so nothing here
//! copies them; what is left translates director refusals to ipvsadm's error texts. Commands become
//! director operations in ops.rs (which the daemon uses too, so neither module needs the other).

use rvs_api::{ApiError, Command, ErrorCode, Info, Reply, Request, Response};
use rvs_core::{ConfigError, Director};

use crate::daemon::{ApplyError, Daemon};
use crate::dataplane::now;
use crate::ops::commands_to_ops;

/// IPVS version rvsd reports (ipvsadm's header line).
pub const IPVS_VERSION: &str = "1.2.1";
/// Connection hash table size reported in the header (IPVS's default 2^12).
pub const CONN_TABLE_SIZE: u32 = 4096;

/// The limit, the defences and the drop counters as the protocol reports them.
pub fn defense_info(d: &Director) -> rvs_api::DefenseInfo {
    let s = d.defense();
    let c = s.config;
    rvs_api::DefenseInfo {
        max_conns: (c.max_conns != usize::MAX).then_some(c.max_conns as u64),
        conns: s.conns as u64,
        amemthresh: c.amemthresh as u64,
        am_droprate: c.am_droprate,
        drop_entry: c.drop_entry.sysctl(),
        drop_packet: c.drop_packet.sysctl(),
        secure_tcp: c.secure_tcp.sysctl(),
        expire_nodest_conn: u8::from(c.expire_nodest_conn == rvs_core::NoDestConn::Expire),
        expire_quiescent_template: u8::from(
            c.expire_quiescent_template == rvs_core::QuiescentTemplate::Expire,
        ),
        conn_reuse_mode: c.conn_reuse_mode,
        pressure: s.pressure,
        drop_rate: s.drop_rate,
        entries_dropped: s.entries_dropped,
        entries_evicted: s.entries_evicted,
        drops: d
            .drop_counters()
            .iter()
            .map(|(r, n)| (r.name().to_owned(), n))
            .collect(),
        syn_gate: rvs_api::SynGateInfo::default(),
    }
}

/// A director refusal as the API error ipvsadm would print for that command.
pub fn config_error(e: &ConfigError, cmd: &Command) -> ApiError {
    match e {
        ConfigError::ServiceNotDefined => ApiError::missing_service(cmd),
        ConfigError::ServiceExists => ApiError::new(ErrorCode::ServiceExists),
        ConfigError::NoSuchDestination => ApiError::new(ErrorCode::NoSuchDestination),
        ConfigError::DestinationExists => ApiError::new(ErrorCode::DestinationExists),
        ConfigError::SchedulerNotFound => ApiError::new(ErrorCode::SchedulerNotFound),
        ConfigError::InvalidArgument(d) => {
            ApiError::new(ErrorCode::InvalidArgument).detail(d.clone())
        }
        ConfigError::MethodNotSupported { .. } => ApiError::not_supported(e.to_string()),
        other => ApiError::new(ErrorCode::InvalidArgument).detail(other.to_string()),
    }
}

fn apply_error(e: ApplyError, origin: &[(usize, &Command)], batched: bool) -> ApiError {
    match &e {
        ApplyError::Config(i, ce) => {
            let (top, cmd) = origin.get(*i).copied().unwrap_or((0, &Command::Clear));
            let a = config_error(ce, cmd);
            if batched { a.at_index(top) } else { a }
        }
        ApplyError::Rules(_, ce) => {
            ApiError::with_message(ErrorCode::InvalidArgument, ce.to_string())
        }
        ApplyError::Steering(s) => {
            ApiError::with_message(ErrorCode::InvalidArgument, s.to_string())
        }
        ApplyError::ShuttingDown => ApiError::with_message(ErrorCode::Internal, e.to_string()),
    }
}

/// Execute one command.
pub fn execute(d: &Daemon, cmd: &Command) -> Result<Reply, ApiError> {
    match cmd {
        Command::ListServices => Ok(Reply::Services(d.director.services())),
        Command::GetService(k) => d
            .director
            .service(k)
            .map(Reply::Service)
            .ok_or_else(|| ApiError::new(ErrorCode::NoSuchService)),
        Command::ListConnections => Ok(Reply::Connections(d.director.connections(now()))),
        Command::GetTimeouts => Ok(Reply::Timeouts(d.director.timeouts())),
        Command::GetInfo => Ok(Reply::Info(Info {
            version: IPVS_VERSION.to_owned(),
            conn_table_size: CONN_TABLE_SIZE,
        })),
        Command::ListDaemons => Ok(Reply::Daemons(d.sync.list())),
        Command::StartDaemon(cfg) => d.sync.start(&d.director, cfg.clone()).map(|()| Reply::Done),
        Command::StopDaemon(state) => d.sync.stop(*state).map(|()| Reply::Done),
        Command::GetHealth => Ok(Reply::Health(
            d.health.get().map(|h| h.status()).unwrap_or_default(),
        )),
        Command::GetHa => Ok(Reply::Ha(rvs_api::HaStatus {
            vrrp: d.vrrp.get().map(|v| v.status()).unwrap_or_default(),
            sync: d.sync.status(),
        })),
        Command::GetDefense => {
            let mut info = defense_info(&d.director);
            info.syn_gate = match d.syn_gate.get() {
                Some(g) => g.info(),
                None => rvs_api::SynGateInfo {
                    mode: "off".to_owned(),
                    ..Default::default()
                },
            };
            Ok(Reply::Defense(info))
        }
        change => {
            // A batch's errors carry the index of the failing command within the batch (rvsadm -R names the line).
            let (batched, cmds) = match change {
                Command::Batch(inner) => (true, inner.as_slice()),
                one => (false, std::slice::from_ref(one)),
            };
            let mut ops = Vec::new();
            let mut origin = Vec::new();
            commands_to_ops(cmds, &mut ops, &mut origin, None)?;
            d.apply(ops)
                .map(|()| Reply::Done)
                .map_err(|e| apply_error(e, &origin, batched))
        }
    }
}

/// Handle one request line of the control protocol; returns the response line (without the newline).
pub fn handle_line(d: &Daemon, line: &str) -> String {
    let resp: Response = match serde_json::from_str::<Request>(line) {
        Err(e) => Response::Err(ApiError::with_message(
            ErrorCode::BadRequest,
            format!("bad request: {e}"),
        )),
        Ok(req) if req.version != rvs_api::PROTOCOL_VERSION => {
            Response::Err(ApiError::with_message(
                ErrorCode::VersionMismatch,
                format!(
                    "protocol version {} is not supported by this rvsd (it speaks version {})",
                    req.version,
                    rvs_api::PROTOCOL_VERSION
                ),
            ))
        }
        Ok(req) => execute(d, &req.command).into(),
    };
    serde_json::to_string(&resp).unwrap_or_else(|e| {
        format!(
            "{{\"err\":{{\"code\":\"internal\",\"message\":\"cannot encode the reply: {e}\"}}}}"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::{ops_rules_lines, rules_to_ops};
    use rvs_core::ConfigOp;
    use rvs_core::{ServiceSpec, Weight};
    use std::net::IpAddr;

    fn akey(port: u16) -> rvs_api::ServiceKey {
        rvs_api::ServiceKey::Addr {
            protocol: rvs_api::Protocol::Udp,
            addr: "198.51.100.100".parse().expect("ip"),
            port,
        }
    }

    #[test]
    fn service_round_trip() {
        // One type from the request to the director and back out: the flags keep their meaning
        // (flag-1 = fallback, flag-2 = port) through the director, a listing and the rules file.
        let c = rvs_api::ServiceSpec {
            key: akey(53),
            scheduler: "mh".into(),
            sched_flags: rvs_api::SchedFlags {
                fallback: true,
                port: false,
                flag3: true,
            },
            persistence: Some(rvs_api::Persistence {
                timeout_s: 600,
                netmask: "255.255.255.0".parse().expect("ip"),
            }),
            one_packet: true,
            pe: Some("sip".into()),
        };
        let (mut ops, mut origin) = (Vec::new(), Vec::new());
        commands_to_ops(
            &[Command::AddService(c.clone())],
            &mut ops,
            &mut origin,
            None,
        )
        .expect("a change");
        let d = Director::default();
        d.apply_batch(ops.clone()).expect("applies");
        let listed = d.service(&c.key).expect("configured");
        assert_eq!(listed.spec, c);
        // ipvsadm -S names mh's flags (mh-fallback, mh-port) and, like ipvsadm, drops flag-3 there.
        let (again, _) = rules_to_ops(&ops_rules_lines(&ops)).expect("rules lines parse");
        let mut saved = c;
        saved.sched_flags.flag3 = false;
        assert_eq!(again, vec![ConfigOp::AddService(saved)]);
    }

    #[test]
    fn dest_round_trip_and_refusals() {
        let svc = Command::AddService(rvs_api::ServiceSpec::new(akey(53), "rr"));
        let mut d = rvs_api::DestSpec {
            addr: "203.0.113.11".parse().expect("ip"),
            port: 80,
            weight: Weight(3),
            method: rvs_api::ForwardMethod::Masq,
            u_threshold: 10,
            l_threshold: 5,
        };
        for m in [
            rvs_api::ForwardMethod::Masq,
            rvs_api::ForwardMethod::Route,
            rvs_api::ForwardMethod::Tunnel(rvs_api::TunnelConfig {
                kind: rvs_api::TunnelKind::Gue,
                port: 6080,
                csum: rvs_api::TunnelCsum::RemCsum,
            }),
        ] {
            d.method = m;
            let add = Command::AddDest {
                service: akey(53),
                dest: d,
            };
            let (mut ops, mut origin) = (Vec::new(), Vec::new());
            commands_to_ops(&[svc.clone(), add], &mut ops, &mut origin, None).expect("changes");
            let director = Director::default();
            director.apply_batch(ops).expect("applies");
            let listed = director.service(&akey(53)).expect("configured");
            assert_eq!(listed.dests[0].spec, d);
        }
        d.method = rvs_api::ForwardMethod::Local;
        let add = Command::AddDest {
            service: akey(53),
            dest: d,
        };
        let (mut ops, mut origin) = (Vec::new(), Vec::new());
        commands_to_ops(&[svc, add.clone()], &mut ops, &mut origin, None).expect("changes");
        let e = Director::default()
            .apply_batch(ops)
            .expect_err("local refused");
        assert!(
            matches!(e.1, ConfigError::MethodNotSupported { .. }),
            "{e:?}"
        );
        let refused = config_error(&e.1, &add);
        assert_eq!(refused.code, ErrorCode::NotSupported);
        assert_eq!(
            refused.message,
            "real server 203.0.113.11: forwarding method Local is not supported by rvsd, which forwards with \
             -g (gatewaying), -i (ipip) or -m (masquerading)"
        );
    }

    #[test]
    fn missing_service_texts_follow_ipvsadm() {
        let del = Command::DeleteService(akey(1));
        assert_eq!(
            config_error(&ConfigError::ServiceNotDefined, &del).message,
            "No such service"
        );
        let deld = Command::DeleteDest {
            service: akey(1),
            addr: IpAddr::from([203, 0, 113, 11]),
            port: 1,
        };
        assert_eq!(
            config_error(&ConfigError::ServiceNotDefined, &deld).message,
            "Service not defined"
        );
        let e = config_error(&ConfigError::InvalidArgument("weight".into()), &del);
        assert_eq!(e.code, ErrorCode::InvalidArgument);
        assert_eq!(e.detail.as_deref(), Some("weight"));
    }

    #[test]
    fn batches_flatten_with_top_level_indexes_and_refuse_queries() {
        let add = Command::AddService(ServiceSpec {
            key: akey(53),
            scheduler: "rr".into(),
            sched_flags: Default::default(),
            persistence: None,
            one_packet: false,
            pe: None,
        });
        let cmds = vec![
            Command::Clear,
            Command::Batch(vec![add.clone(), Command::Zero(None)]),
        ];
        let (mut ops, mut origin) = (Vec::new(), Vec::new());
        commands_to_ops(&cmds, &mut ops, &mut origin, None).expect("changes only");
        assert_eq!(ops.len(), 3);
        assert_eq!(
            origin.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
            vec![0, 1, 1]
        );
        assert!(matches!(ops[1], ConfigOp::AddService(_)));
        let bad = vec![Command::Batch(vec![add, Command::ListServices])];
        let (mut ops, mut origin) = (Vec::new(), Vec::new());
        let e = commands_to_ops(&bad, &mut ops, &mut origin, None).expect_err("query in a batch");
        assert_eq!(e.code, ErrorCode::BadRequest);
        assert_eq!(e.index, Some(0));
    }
}
