//! Per-packet cost of the XDP program through BPF_PROG_TEST_RUN, for instruction counts under perf:
//!
//! ```text
//! perf stat -e instructions:k -x, target/release/examples/per_packet forward 400
//! perf stat -e instructions:k -x, target/release/examples/per_packet empty 400
//! ```
//! Both runs load the same object and make the same number of test-run calls (250 repetitions each); the
//! difference of the kernel instruction counts divided by calls x 250 is what the program adds per packet over an
//! empty one. `miss` runs a packet with no entry (passed up), `forward` one that is rewritten and redirected (two
//! entries rewriting into each other, so every repetition hits). Prints the kernel's mean ns per repetition.
//! Needs root.

use std::net::SocketAddr;

use rvs_xdp::{Egress, FastPath, Flow, FlowKey, L4, Options, Program};

fn frame(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
    let mut out = Vec::new();
    etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4(src, dst, 255)
        .tcp(sport, dport, 1, 64240)
        .ack(1)
        .write(&mut out, &[0x5a; 64])
        .expect("build");
    out
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "forward".into());
    let calls: u32 = args.next().and_then(|n| n.parse().ok()).unwrap_or(400);
    let mut fp = FastPath::load(Options::default())?;
    let a: SocketAddr = "198.51.100.10:40000".parse()?;
    let b: SocketAddr = "198.51.100.100:80".parse()?;
    let c: SocketAddr = "203.0.113.11:8080".parse()?;
    let e = Egress {
        ifindex: 1,
        dst_mac: [2, 0, 0, 0, 0, 3],
        src_mac: [2, 0, 0, 0, 0, 4],
        mtu: 1500,
    };
    let k1 = FlowKey::new(L4::Tcp, a, b)?;
    let k2 = FlowKey::new(L4::Tcp, a, c)?;
    fp.add_egress(1)?;
    fp.insert(&k1, &Flow::new(&k1, a, c, e)?)?;
    fp.insert(&k2, &Flow::new(&k2, a, b, e)?)?;
    let (prog, pkt) = match mode.as_str() {
        "empty" => (
            Program::Empty,
            frame([198, 51, 100, 10], [198, 51, 100, 100], 40000, 80),
        ),
        "miss" => (
            Program::FastPath,
            frame([198, 51, 100, 10], [198, 51, 100, 100], 40001, 80),
        ),
        _ => (
            Program::FastPath,
            frame([198, 51, 100, 10], [198, 51, 100, 100], 40000, 80),
        ),
    };
    let mut ns = 0u64;
    for _ in 0..calls {
        ns += u64::from(fp.test_run(prog, &pkt, 250)?.duration_ns);
    }
    let s = fp.program_stats(prog)?;
    println!(
        "{mode}: {:.0} ns per packet (mean of {calls} x 250), {} xlated instructions",
        ns as f64 / f64::from(calls),
        s.xlated_insns
    );
    Ok(())
}
