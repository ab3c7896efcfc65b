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
