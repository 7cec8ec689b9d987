//! `dns-xdp`: parses the command line and dispatches. `serve` settles its settings, then runs
//! the daemon (`dns_xdp::daemon`: start-up, signals, reload, drain) and maps how it ended to an
//! exit code.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser as _;

use dns_xdp::config::{Cli, Command, ServeArgs, Settings};
use dns_xdp::daemon::{self, ServeError};
use dns_xdp::load_zones;
use dns_xdp::zone::Severity;

/// sysexits.h: bad usage or configuration.
const EX_CONFIG: u8 = 64;
/// sysexits.h: bad input data (a zone that does not load).
const EX_DATAERR: u8 = 65;

/// Small allocations packed tighter than glibc's 32-byte chunks, and freed memory returned to
/// the system without malloc_trim.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    dns_xdp::logging::init();
    let cli = Cli::parse();
    match cli.command {
        Command::Check { zone_files } => check(&zone_files),
        Command::Diff(args) => dns_xdp::diff::main(args),
        Command::Ctl(args) => dns_xdp::ctl::main(args),
        Command::GenerateDocs(args) => match dns_xdp::package_docs::generate(&args.dir) {
            Ok(_) => ExitCode::SUCCESS,
            Err(err) => {
                log::error!("writing the docs into {}: {err}", args.dir.display());
                ExitCode::FAILURE
            }
        },
        Command::Serve(args) => serve(args),
    }
}

/// `serve`: a bad setting exits 64 before anything starts, a zone that does not load 65.
fn serve(args: ServeArgs) -> ExitCode {
    let settings = match Settings::from_args(args) {
        Ok(s) => s,
        Err(msg) => {
            log::error!("{msg}");
            return ExitCode::from(EX_CONFIG);
        }
    };
    dns_xdp::logging::set_format(settings.log_format);
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    match runtime.block_on(daemon::serve(settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(ServeError::Zones(diags)) => {
            for d in diags.iter().filter(|d| d.severity == Severity::Error) {
                log::error!("{d}");
            }
            ExitCode::from(EX_DATAERR)
        }
        Err(err) => {
            log::error!("{err:#}");
            ExitCode::FAILURE
        }
    }
}

fn check(files: &[std::path::PathBuf]) -> ExitCode {
    match load_zones(files) {
        Ok((zones, warnings)) => {
            for w in &warnings {
                println!("{w}");
            }
            for zone in zones.iter() {
                println!(
                    "{}: zone {} serial {} ok ({} names)",
                    zone.file.display(),
                    zone.origin,
                    zone.serial,
                    zone.nodes.len()
                );
            }
            ExitCode::SUCCESS
        }
        Err(diags) => {
            for d in &diags {
                println!("{d}");
            }
            ExitCode::from(1)
        }
    }
}
