//! rvsadm binary: see the library for the logic.

use std::process::ExitCode;

use rvs_api::resolve::SystemResolver;
use rvsadm::{Io, LazyClient, run};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    // Lookups are lazy: only names in arguments, and output without -n, consult /etc files.
    let resolver = SystemResolver::new();
    let mut director = LazyClient::new(rvs_api::socket_path());
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let mut stdin = stdin.lock();
    let mut stdout = stdout.lock();
    let mut stderr = stderr.lock();
    let mut io = Io {
        stdin: &mut stdin,
        stdout: &mut stdout,
        stderr: &mut stderr,
    };
    let code = run(&args, &mut director, &resolver, &mut io);
    ExitCode::from((code & 0xff) as u8)
}
