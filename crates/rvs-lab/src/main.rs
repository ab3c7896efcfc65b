//! `rvs-lab`: the LVS-NAT lab in network namespaces.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use rvs_lab::{LabError, Result};

#[derive(Parser, Debug)]
#[command(
    name = "rvs-lab",
    version,
    about = "LVS-NAT lab in network namespaces: demo, hands-on topology, benchmarks"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Build the lab, balance 1000 HTTP requests through rvsd, show what happened, remove everything.
    Demo {
        /// Number of real servers.
        #[arg(short = 'n', long, default_value_t = 2)]
        real_servers: usize,
        /// Scheduler for the demo's virtual services.
        #[arg(short, long, default_value = "rr")]
        scheduler: String,
        /// Number of HTTP requests.
        #[arg(long, default_value_t = 1000)]
        requests: usize,
        /// Namespace name prefix.
        #[arg(long, default_value = "rvs-demo")]
        prefix: String,
        /// Forwarding method: nat, dr or tun (DR and TUN put a router in front; the real servers answer through it).
        #[arg(long, default_value = "nat")]
        method: String,
    },
    /// Build the lab and leave it running (namespaces, real servers, rvsd with no services).
    Up {
        /// Number of real servers.
        #[arg(short = 'n', long, default_value_t = 2)]
        real_servers: usize,
        /// Scheduler used in the printed example commands.
        #[arg(short, long, default_value = "rr")]
        scheduler: String,
        /// Namespace name prefix.
        #[arg(long, default_value = "rvs")]
        prefix: String,
        /// Forwarding method the lab is shaped for: nat, dr (real servers hold the VIP on lo, reply through a
        /// router) or tun (the same, decapsulating with `rvs-lab decap`).
        #[arg(long, default_value = "nat")]
        method: String,
        /// Two directors with VRRP for the VIP and the real servers' gateway, and connection sync both ways.
        #[arg(long, conflicts_with = "directors")]
        ha: bool,
        /// Directors behind the router's ECMP, each announcing the VIP over BGP with BIRD (needs --method dr or
        /// tun; see SCALING.md).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=8))]
        directors: u8,
    },
    /// Remove a lab left running by `up`.
    Down {
        #[arg(long, default_value = "rvs")]
        prefix: String,
    },
    /// Run a command inside one of the lab's namespaces (PATH finds rvsd/rvsadm, RVS_SOCKET points at the lab's rvsd).
    Exec {
        /// A namespace of the lab, e.g. rvs-director or rvs-client.
        namespace: String,
        /// The command and its arguments.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        command: Vec<String>,
    },
    /// Side-by-side benchmarks (arguments, --help included, are passed on).
    #[command(disable_help_flag = true)]
    Bench {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Decapsulate IPIP/GUE/GRE into a TUN device: a tunnel real server's stand-in for the kernel's ipip/fou/gre
    /// modules (run inside a real-server namespace; until killed).
    Decap {
        /// The TUN device to create.
        #[arg(long, default_value = "tunl-rvs")]
        tun: String,
        /// Also take GUE on this UDP port (ipvsadm's --tun-port).
        #[arg(long)]
        gue_port: Option<u16>,
    },
    /// Hold many TCP connections through rvsd (default a million): open them slowly from sources all over
    /// 198.18.0.0/15, keep them idle, use each once, reset them; report rvsd's memory per connection, the table,
    /// how long rvsadm's listings take, the drain and the kernel's memory for the lab's sockets (RELIABILITY.md).
    Million {
        /// Connections to hold.
        #[arg(long, default_value_t = 1_000_000)]
        conns: u64,
        /// Real servers (each one process holding its share; at most a million each).
        #[arg(short = 'n', long, default_value_t = 2)]
        real_servers: usize,
        /// Opener processes in the client namespace (at most a million connections each).
        #[arg(long, default_value_t = 4)]
        openers: u64,
        /// New connections a second, all openers together.
        #[arg(long, default_value_t = 4000)]
        rate: u64,
        /// Most connections being opened at once, all openers together.
        #[arg(long, default_value_t = 4000)]
        window: u64,
        /// Requests (then resets) a second, all openers together.
        #[arg(long, default_value_t = 8000)]
        use_rate: u64,
        /// Seconds the connections sit idle before they are used.
        #[arg(long, default_value_t = 60)]
        idle: u64,
        /// Bound of each phase in seconds.
        #[arg(long, default_value_t = 900)]
        phase: u64,
        /// Namespace name prefix.
        #[arg(long, default_value = "rvs-million")]
        prefix: String,
        /// Extra rvsd arguments (whitespace-separated), e.g. "--workers 2".
        #[arg(long, default_value = "")]
        rvsd_args: String,
    },
    /// (internal) `rvs-lab million`'s epoll server in a real server.
    #[command(hide = true)]
    HoldServe {
        #[arg(long)]
        name: String,
        #[arg(long)]
        listen: SocketAddr,
        #[arg(long)]
        max_conns: u64,
    },
    /// (internal) `rvs-lab million`'s opener in the client namespace.
    #[command(hide = true)]
    HoldOpen(rvs_lab::hold::OpenSpec),
    /// (internal) The real servers' HTTP and UDP echo server.
    #[command(hide = true)]
    Serve {
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "0.0.0.0:80")]
        http: SocketAddr,
        #[arg(long, default_value = "0.0.0.0:53")]
        udp: SocketAddr,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("rvs-lab: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// SIGINT and SIGTERM remove the labs this process built before it exits.
fn signals() -> Result<()> {
    rvs_lab::cleanup::install_signal_handler()
        .map_err(LabError::io("installing the SIGINT/SIGTERM handler"))
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Cmd::Serve { name, http, udp } => rvs_lab::servers::serve(&name, http, udp)?,
        Cmd::HoldServe {
            name,
            listen,
            max_conns,
        } => rvs_lab::hold::serve(&name, listen, max_conns)?,
        Cmd::HoldOpen(spec) => rvs_lab::hold::open(&spec)?,
        Cmd::Million {
            conns,
            real_servers,
            openers,
            rate,
            window,
            use_rate,
            idle,
            phase,
            prefix,
            rvsd_args,
        } => {
            signals()?;
            let opts = rvs_lab::million::MillionOptions {
                conns,
                real_servers,
                openers,
                rate,
                window,
                use_rate,
                idle: std::time::Duration::from_secs(idle),
                phase: std::time::Duration::from_secs(phase),
                ..Default::default()
            };
            let cfg = rvs_lab::LabConfig {
                prefix,
                rvsd_args: rvsd_args.split_whitespace().map(str::to_owned).collect(),
                ..Default::default()
            };
            let report = rvs_lab::million::run(&opts, cfg)?;
            print!("{report}");
        }
        Cmd::Bench { args } => rvs_lab::bench::main(args)?,
        Cmd::Decap { tun, gue_port } => rvs_lab::decap::run(&tun, gue_port)?,
        Cmd::Demo {
            real_servers,
            scheduler,
            requests,
            prefix,
            method,
        } => {
            let method = rvs_lab::lab::Method::parse(&method)?;
            signals()?;
            let opts = rvs_lab::demo::DemoOptions {
                real_servers,
                scheduler,
                requests,
                prefix,
                method,
            };
            rvs_lab::demo::run(&opts)?
        }
        Cmd::Up {
            real_servers,
            scheduler,
            prefix,
            method,
            ha,
            directors,
        } => {
            let method = rvs_lab::lab::Method::parse(&method)?;
            signals()?;
            if directors > 1 {
                rvs_lab::manage::up_ecmp(&prefix, real_servers, method, usize::from(directors))?
            } else {
                rvs_lab::manage::up_with(&prefix, real_servers, &scheduler, method, ha)?
            }
        }
        Cmd::Down { prefix } => rvs_lab::manage::down(&prefix)?,
        Cmd::Exec { namespace, command } => {
            let code = rvs_lab::manage::exec(&namespace, &command)?;
            return Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)));
        }
    }
    Ok(ExitCode::SUCCESS)
}
