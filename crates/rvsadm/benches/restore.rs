//! `rvsadm -R` cost: 10,000 services with 10 real servers each (110,000 rule lines) through
//! rules parsing and batch building, then through the control protocol's JSON framing (encode,
//! and a fake rvsd decoding it on a Unix socket). `RVSADM_BENCH_WRITE=FILE` also writes the rules
//! file (for timing `rvsadm -R` against a live rvsd, see benches/restore_rvsd.sh).

use std::hint::black_box;
use std::io::{BufReader, BufWriter};
use std::os::unix::net::UnixStream;

use criterion::{Criterion, criterion_group, criterion_main};
use rvs_api::framing::{read_message, write_message};
use rvs_api::resolve::NoResolver;
use rvs_api::{Command, Request, rules};

/// 10,000 services (250 VIPs in 198.51.100.0/24 x 40 ports), 10 real servers each in
/// 203.0.113.0/24.
pub fn rules_text() -> String {
    let mut s = String::with_capacity(8 << 20);
    for i in 0..10_000u32 {
        let vip = format!("198.51.100.{}:{}", i % 250 + 1, 1000 + i / 250);
        s.push_str(&format!("-A -t {vip} -s wlc\n"));
        for j in 0..10u32 {
            s.push_str(&format!(
                "-a -t {vip} -r 203.0.113.{}:8080 -m -w 1\n",
                10 + j
            ));
        }
    }
    s
}

fn parse_and_batch(text: &str) -> Command {
    let lines = rules::parse_lines(text, &NoResolver).expect("valid rules");
    Command::Batch(lines.into_iter().map(|(_, c)| c).collect())
}

fn bench(c: &mut Criterion) {
    let text = rules_text();
    if let Some(path) = std::env::var_os("RVSADM_BENCH_WRITE") {
        std::fs::write(path, &text).expect("write rules file");
    }
    let mut g = c.benchmark_group("restore_10k_services_x10_dests");
    g.sample_size(10);
    g.bench_function("parse+batch", |b| {
        b.iter(|| parse_and_batch(black_box(&text)))
    });
    g.bench_function("parse+batch+json_encode", |b| {
        b.iter(|| {
            let req = Request::new(parse_and_batch(black_box(&text)));
            let mut buf = Vec::new();
            write_message(&mut buf, &req).expect("encode");
            buf.len()
        })
    });
    g.bench_function("parse+batch+socket_to_decoding_server", |b| {
        b.iter(|| {
            let (a, server) = UnixStream::pair().expect("socketpair");
            let t = std::thread::spawn(move || {
                let mut r = BufReader::new(server);
                let req: Request = read_message(&mut r).expect("decode").expect("a request");
                match req.command {
                    Command::Batch(v) => v.len(),
                    _ => 0,
                }
            });
            let req = Request::new(parse_and_batch(black_box(&text)));
            let mut w = BufWriter::new(a);
            write_message(&mut w, &req).expect("send");
            drop(w);
            t.join().expect("server thread")
        })
    });
    g.finish();

    // the other direction: listing and saving the same configuration (pure formatting)
    let Command::Batch(cmds) = parse_and_batch(&text) else {
        unreachable!("parse_and_batch builds a batch")
    };
    let mut services: Vec<rvs_api::ServiceSnapshot> = Vec::new();
    for c in cmds {
        match c {
            Command::AddService(spec) => {
                services.push(rvs_api::ServiceSnapshot::configured(spec, &[]))
            }
            Command::AddDest { dest, .. } => {
                if let Some(s) = services.last_mut() {
                    s.dests.push(rvs_api::DestSnapshot::configured(dest));
                }
            }
            _ => {}
        }
    }
    let info = rvs_api::Info {
        version: "1.2.1".into(),
        conn_table_size: 4096,
    };
    let mut g = c.benchmark_group("format_10k_services_x10_dests");
    g.sample_size(10);
    let numeric = rvs_api::ipvsadm::Format {
        numeric: true,
        ..Default::default()
    };
    g.bench_function("list_-Ln", |b| {
        b.iter(|| {
            rvs_api::listing::list_all(&info, black_box(&services), &numeric, &NoResolver).len()
        })
    });
    g.bench_function("save_-Sn", |b| {
        b.iter(|| rules::format(black_box(&services)).len())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
