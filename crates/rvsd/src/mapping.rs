//! rvs-api <-> rvs-core mapping (placeholder until rvs-api lands: a minimal rules reader for development).

use rvs_core::{ConfigOp, DestSpec, Director, Protocol, ServiceKey, ServiceSpec};

/// Parse a rules file into configuration operations.
pub fn rules_to_ops(text: &str) -> anyhow::Result<Vec<ConfigOp>> {
    let mut ops = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let w: Vec<&str> = line.split_whitespace().collect();
        if w.is_empty() || w[0].starts_with('#') {
            continue;
        }
        let get = |f: &str| {
            w.iter()
                .position(|x| *x == f)
                .and_then(|p| w.get(p + 1))
                .copied()
        };
        let svc: std::net::SocketAddr = get("-t")
            .ok_or_else(|| anyhow::anyhow!("line {}: no -t", i + 1))?
            .parse()?;
        let key = ServiceKey::Addr {
            protocol: Protocol::Tcp,
            addr: svc.ip(),
            port: svc.port(),
        };
        match w[0] {
            "-A" => ops.push(ConfigOp::AddService(ServiceSpec::new(
                key,
                get("-s").unwrap_or("wlc"),
            ))),
            "-a" => {
                let r: std::net::SocketAddr = get("-r")
                    .ok_or_else(|| anyhow::anyhow!("line {}: no -r", i + 1))?
                    .parse()?;
                let wt = get("-w").unwrap_or("1").parse()?;
                ops.push(ConfigOp::AddDest(key, DestSpec::masq(r.ip(), r.port(), wt)));
            }
            _ => anyhow::bail!("line {}: unsupported", i + 1),
        }
    }
    Ok(ops)
}

/// The rules text of the director's configuration.
pub fn rules_text(d: &Director) -> String {
    let mut s = String::new();
    for svc in d.services() {
        if let ServiceKey::Addr { addr, port, .. } = svc.spec.key {
            s.push_str(&format!("-A -t {addr}:{port} -s {}\n", svc.spec.scheduler));
            for dst in svc.dests {
                s.push_str(&format!(
                    "-a -t {addr}:{port} -r {}:{} -m -w {}\n",
                    dst.spec.addr, dst.spec.port, dst.spec.weight
                ));
            }
        }
    }
    s
}

/// Handle one request line of the control protocol.
pub fn handle_line(_d: &crate::daemon::Daemon, _line: &str) -> String {
    "{\"Err\":{\"code\":1,\"message\":\"not implemented\"}}".into()
}
