//! rvs-dist: writes the files the Debian package (and any other install) ships beside the binaries, generated from
//! the command-line definitions themselves so they cannot drift:
//!
//! - `man/rvsd.8` from rvsd's clap definition (the same `args.rs` rvsd compiles) with clap_mangen;
//! - `man/rvsadm.8` from rvs-api's ipvsadm option table (what the parser accepts) and the help text's
//!   descriptions (`rvsadm -h`);
//! - `completions/{rvsd,rvsadm}.bash`, `_rvsd`/`_rvsadm` (zsh), `*.fish` with clap_complete.
//!
//! Usage: `rvs-dist OUTDIR` (dist/build-deb.sh runs it before cargo-deb).

#[allow(dead_code)]
#[path = "../../rvsd/src/args.rs"]
mod rvsd_args;

mod rvsadm_doc;

use std::path::Path;

use anyhow::Context;
use clap::CommandFactory;

fn main() -> anyhow::Result<()> {
    let out = std::env::args_os()
        .nth(1)
        .context("usage: rvs-dist OUTDIR")?;
    generate(Path::new(&out))
}

fn write(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    std::fs::write(path, data).with_context(|| format!("writing {}", path.display()))
}

/// Every generated file under `out`.
fn generate(out: &Path) -> anyhow::Result<()> {
    let man = out.join("man");
    let comp = out.join("completions");
    for d in [&man, &comp] {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    let mut page = Vec::new();
    clap_mangen::Man::new(rvsd_command())
        .section("8")
        .render(&mut page)?;
    write(&man.join("rvsd.8"), &page)?;
    write(&man.join("rvsadm.8"), rvsadm_doc::man_page().as_bytes())?;
    use clap_complete::Shell;
    for (mut cmd, name) in [(rvsd_command(), "rvsd"), (rvsadm_doc::command(), "rvsadm")] {
        for (shell, file) in [
            (Shell::Bash, name.to_owned()),
            (Shell::Zsh, format!("_{name}")),
            (Shell::Fish, format!("{name}.fish")),
        ] {
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut cmd, name, &mut buf);
            write(&comp.join(file), &buf)?;
        }
    }
    Ok(())
}

/// rvsd's description as its own Cargo.toml gives it (clap's `about` would otherwise be this crate's).
fn rvsd_description() -> &'static str {
    include_str!("../../rvsd/Cargo.toml")
        .lines()
        .find_map(|l| l.strip_prefix("description = \""))
        .and_then(|l| l.strip_suffix('"'))
        .unwrap_or("the rvs director daemon")
}

fn rvsd_command() -> clap::Command {
    rvsd_args::Args::command().about(rvsd_description()).long_about(
        "rvsd is the director of rvs, a Linux Virtual Server in user space: it owns virtual IPs and balances their \
         TCP and UDP services over real servers with IPVS's schedulers and forwarding methods (NAT, direct routing, \
         tunnelling), optionally with an XDP fast path for established connections (--fast-path), configured with \
         rvsadm(8) (ipvsadm's command line) over its control socket or from a rules file in `ipvsadm -S` format. \
         Run it under systemd as rvsd.service (Type=notify; reload with SIGHUP). Metrics for Prometheus and a live \
         view in the browser with --metrics.",
    )
}
