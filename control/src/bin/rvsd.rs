//! `rvsd`: the rvs daemon. Loads and validates the configuration, builds the IPVS table
//! from its services, drives the dataplane backend and serves rvsadm on a Unix socket.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use rvs_control::backend::ControlOnly;
use rvs_control::daemon::Daemon;
use rvs_control::dpdk_backend::{engine_config, DpdkBackend};
use rvs_control::reload::Source;

/// rvs daemon: kernel-bypass IPVS on DPDK.
#[derive(Parser, Debug)]
#[command(name = "rvsd", version)]
struct Args {
    /// Configuration file (TOML).
    #[arg(long, short = 'c', value_name = "FILE")]
    config: PathBuf,
    /// Run the control plane only: tables and commands work, counters stay zero.
    #[arg(long)]
    no_dataplane: bool,
    /// Control socket path (overrides [control] socket).
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Validate the configuration and exit.
    #[arg(long)]
    check: bool,
    /// Withdraw this director's BGP routes and exit: empty the `[bgp] routes_file` and
    /// run `birdc configure` (for the service manager after rvsd stopped or crashed:
    /// the unit's ExecStopPost).
    #[arg(long)]
    withdraw_routes: bool,
    /// Log format on stderr: `text` (colours only when stderr is a terminal) or `json`
    /// (one JSON object per line).
    #[arg(long, value_name = "FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
}

/// Logs to stderr (the journal under systemd): ANSI colours only when stderr is a
/// terminal, JSON lines with `--log-format json`; the level from `RUST_LOG` (default info).
fn init_logs(format: &str) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    if format == "json" {
        builder.json().with_ansi(false).init();
    } else {
        builder.with_ansi(std::io::stderr().is_terminal()).init();
    }
}

fn main() -> ExitCode {
    // Hidden: `rvsd --man` prints the man page generated from `Args` (package build).
    if std::env::args_os().nth(1).is_some_and(|a| a == "--man") {
        return rvs_control::man::print(&rvs_control::man::rvsd_page(Args::command()));
    }
    let args = Args::parse();
    init_logs(&args.log_format);

    let (source, notes) = match Source::load(&args.config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("rvsd: invalid configuration: {e}");
            return ExitCode::from(1);
        }
    };
    let cfg = source.config.clone();
    let table = source.file_table.clone();
    if args.withdraw_routes {
        if cfg.bgp.routes_file.is_none() {
            println!("rvsd: no [bgp] routes_file: nothing to withdraw");
            return ExitCode::SUCCESS;
        }
        let mut a = rvs_control::bgp::Announcer::new(cfg.bgp.clone());
        a.withdraw();
        return if a.describe().contains("failures=0") {
            ExitCode::SUCCESS
        } else {
            eprintln!("rvsd: {}", a.describe().trim_end());
            ExitCode::from(1)
        };
    }
    if args.check {
        // keepalived.conf's notices as keepalived -t prints them: file:line: message.
        for n in &notes {
            eprintln!("rvsd: keepalived.conf: {n}");
        }
        println!("rvsd: configuration {} is valid", args.config.display());
        return ExitCode::SUCCESS;
    }
    rvs_control::reload::log_notes(&notes);
    let socket = args.socket.unwrap_or(cfg.control.socket.clone());
    let backend: Box<dyn rvs_control::backend::Backend> = if args.no_dataplane {
        Box::new(ControlOnly)
    } else {
        let ecfg = match engine_config(&cfg) {
            Ok(e) => e,
            Err(e) => {
                eprintln!("rvsd: invalid configuration {}: {e}", args.config.display());
                return ExitCode::from(1);
            }
        };
        match DpdkBackend::start(&ecfg) {
            Ok(mut b) => {
                b.set_probe_servers(&cfg);
                b.set_sync_peer(
                    cfg.sync
                        .unicast_peer
                        .as_deref()
                        .and_then(|p| p.parse().ok()),
                );
                b.set_sync_key(source.sync_key);
                b.set_sync_group((cfg.sync.state == rvs_config::SyncState::Group).then(|| {
                    cfg.sync
                        .peers
                        .iter()
                        .filter_map(|p| p.parse().ok())
                        .collect()
                }));
                tracing::info!(
                    workers = ecfg.workers,
                    ports = ecfg.ports.len(),
                    "dataplane started"
                );
                Box::new(b)
            }
            Err(e) => {
                eprintln!("rvsd: cannot start the dataplane: {e}");
                return ExitCode::from(1);
            }
        }
    };
    let daemon = match Daemon::new(table, backend) {
        Ok(d) => d.with_source(source),
        Err(e) => {
            eprintln!("rvsd: dataplane refused the configuration: {e}");
            return ExitCode::from(1);
        }
    };
    tracing::info!(
        config = %args.config.display(),
        services = cfg.services.len(),
        dataplane = !args.no_dataplane,
        "rvsd ready"
    );
    // Bound before the control socket, so that a taken address fails the start cleanly.
    let metrics = match cfg.metrics.listen_addr() {
        None => None,
        Some(addr) => match std::net::TcpListener::bind(addr) {
            Ok(l) => Some(l),
            Err(e) => {
                eprintln!("rvsd: metrics.listen: cannot listen on {addr}: {e}");
                return ExitCode::from(1);
            }
        },
    };
    let listener = match rvs_control::server::bind(&socket) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("rvsd: cannot listen on {}: {e}", socket.display());
            return ExitCode::from(1);
        }
    };
    // The ports are up and rvsadm's connections queue on the bound socket: tell systemd.
    rvs_control::notify::ready();
    match rvs_control::server::run(listener, socket.clone(), daemon, metrics) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rvsd: {e}");
            let _ = std::fs::remove_file(&socket);
            ExitCode::from(1)
        }
    }
}
