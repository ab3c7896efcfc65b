//! BPF_PROG_TEST_RUN: run a loaded program on a packet without attaching it (tests and instruction/time figures).

use std::os::fd::RawFd;

/// `union bpf_attr`'s `test` member (linux/bpf.h), padded like the kernel expects (trailing zeros are fine).
#[repr(C)]
#[derive(Debug, Default)]
struct TestAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
    flags: u32,
    cpu: u32,
    batch_size: u32,
    pad: [u32; 13],
}

const BPF_PROG_TEST_RUN: libc::c_long = 10;

/// What one test run returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestRun {
    /// The program's return value (an `XDP_*` action).
    pub action: u32,
    /// The packet as the program left it (after the last repetition).
    pub data: Vec<u8>,
    /// The kernel's mean time per repetition, in nanoseconds.
    pub duration_ns: u32,
}

/// `struct xdp_md` as BPF_PROG_TEST_RUN's context: only the ingress interface is set (data/data_end cover the packet).
#[repr(C)]
#[derive(Debug, Default)]
struct XdpMd {
    data: u32,
    data_end: u32,
    data_meta: u32,
    ingress_ifindex: u32,
    rx_queue_index: u32,
    egress_ifindex: u32,
}

/// `BPF_F_TEST_XDP_LIVE_FRAMES` (linux/bpf.h).
const LIVE_FRAMES: u32 = 1 << 1;
/// Frames per batch in live mode (the kernel's maximum; its default is 64).
const LIVE_BATCH: u32 = 64;

/// Run `prog_fd` `repeat` times in live-frame mode on `packet` arriving at `ingress_ifindex` (
/// `BPF_F_TEST_XDP_LIVE_FRAMES`: the verdict is carried out: XDP_PASS injects the frame into the stack, XDP_REDIRECT
/// transmits it; pages are recycled without their content being restored). Returns the wall time of the call.
pub fn run_live(
    prog_fd: RawFd,
    packet: &[u8],
    repeat: u32,
    ingress_ifindex: u32,
) -> std::io::Result<std::time::Duration> {
    let mut ctx = XdpMd {
        data_end: packet.len() as u32,
        ingress_ifindex,
        ..XdpMd::default()
    };
    let mut attr = TestAttr {
        prog_fd: prog_fd as u32,
        data_size_in: packet.len() as u32,
        data_in: packet.as_ptr() as u64,
        repeat,
        ctx_size_in: size_of::<XdpMd>() as u32,
        ctx_in: (&raw mut ctx) as u64,
        flags: LIVE_FRAMES,
        batch_size: LIVE_BATCH,
        ..TestAttr::default()
    };
    let start = std::time::Instant::now();
    // SAFETY: attr is a valid bpf_attr prefix (zero-padded) that lives across the call; data_in points to
    // packet.len() readable bytes and ctx_in to a live xdp_md of ctx_size_in bytes; nothing is written back (live
    // mode refuses data_out/ctx_out, which are 0).
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_TEST_RUN,
            &mut attr as *mut TestAttr,
            size_of::<TestAttr>() as libc::c_uint,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(start.elapsed())
}

/// XDP actions.
pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;
pub const XDP_REDIRECT: u32 = 4;

/// Run `prog_fd` `repeat` times on `packet` (each repetition sees what the previous one left).
pub(crate) fn run(prog_fd: RawFd, packet: &[u8], repeat: u32) -> std::io::Result<TestRun> {
    let mut out = vec![0u8; packet.len() + 256];
    let mut attr = TestAttr {
        prog_fd: prog_fd as u32,
        data_size_in: packet.len() as u32,
        data_size_out: out.len() as u32,
        data_in: packet.as_ptr() as u64,
        data_out: out.as_mut_ptr() as u64,
        repeat,
        ..TestAttr::default()
    };
    // SAFETY: attr is a valid bpf_attr prefix (zero-padded) that lives across the call; data_in points to
    // packet.len() readable bytes and data_out to out.len() writable bytes, both alive until the call returns.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_TEST_RUN,
            &mut attr as *mut TestAttr,
            size_of::<TestAttr>() as libc::c_uint,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    out.truncate((attr.data_size_out as usize).min(out.len()));
    Ok(TestRun {
        action: attr.retval,
        data: out,
        duration_ns: attr.duration,
    })
}
