//! Compiles the XDP program (bpf/rvs_xdp.c) with `clang -O2 -g -target bpf`; src/lib.rs embeds the object.
//! Needs clang and libbpf's headers (Debian: `apt-get install clang libbpf-dev`, done by .ci/run).

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=bpf/rvs_xdp.c");
    println!("cargo:rerun-if-changed=bpf/rvs_xdp.h");
    println!("cargo:rerun-if-changed=bpf/rvs_methods.h");
    println!("cargo:rerun-if-changed=bpf/rvs_gate.h");
    println!("cargo:rerun-if-env-changed=RVS_BPF_CLANG");
    println!("cargo:rerun-if-changed=bpf/rvs_bench.c");
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let clang = std::env::var("RVS_BPF_CLANG").unwrap_or_else(|_| "clang".to_owned());
    // The kernel's uapi headers include <asm/types.h>, which Debian keeps under the host triple.
    let multiarch = format!("/usr/include/{}-linux-gnu", std::env::consts::ARCH);
    // The fast path, and the capacity bench's sender and sink (examples/capacity.rs; rvsd never loads it).
    for (src, obj) in [
        ("bpf/rvs_xdp.c", "rvs_xdp.o"),
        ("bpf/rvs_bench.c", "rvs_bench.o"),
    ] {
        let status = Command::new(&clang)
            .args(["-O2", "-g", "-target", "bpf", "-Wall", "-Werror"])
            .arg(format!("-I{multiarch}"))
            .args(["-c", src, "-o"])
            .arg(out_dir.join(obj))
            .status();
        match status {
            Ok(s) if s.success() => {}
            Ok(s) => panic!("{clang} failed to compile {src} ({s})"),
            Err(e) => panic!(
                "cannot run {clang} ({e}): the XDP fast path is C compiled at build time; \
                 install clang and libbpf-dev (apt-get install -y clang libbpf-dev)"
            ),
        }
    }
}
