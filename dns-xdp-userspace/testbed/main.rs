//! `dns-xdp-testbed`: the XDP helpers of the test bed and the benchmarks, kept out of the daemon.
//! Each subcommand loads one program of the test bed's own object (dns-xdp-ebpf/src/testbed/,
//! which build.rs builds beside the daemon's) and attaches it to an interface:
//!
//! - `xdp-pass`: a do-nothing program for the client end of a veth pair, which delivers
//!   native-mode XDP_TX frames only to a peer that runs XDP itself (ARCHITECTURE.md section 5);
//! - `bounce`: `xdp_bounce`, which sends every DNS query straight back (XDP_TX, nothing looked
//!   up): what the test bed carries with no server work at all, `cargo xtask bench`'s ceiling;
//! - `xdp-count`: `xdp_count`, the bench's load generator's reply counter (count.rs).
// The test build includes testframe, whose root check calls geteuid.
#![cfg_attr(not(test), forbid(unsafe_code))]

mod count;
#[cfg(test)]
#[path = "../tests/testframe/mod.rs"]
mod testframe;

use std::process::ExitCode;

use anyhow::Context as _;
use aya::Ebpf;
use aya::programs::{Xdp, XdpMode};
use clap::Parser as _;
use tokio::signal::unix::{SignalKind, signal};

/// The test bed's programs, built by build.rs from dns-xdp-ebpf/src/testbed/.
static TESTBED_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/dns-xdp-testbed"));

#[derive(clap::Parser, Debug)]
#[command(name = "dns-xdp-testbed", version, about = "XDP helpers for dns-xdp's test bed and benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Attach a do-nothing XDP program to IF (native mode) until SIGTERM/SIGINT. veth only
    /// delivers native-mode XDP_TX frames to a peer that runs an XDP program.
    XdpPass {
        #[arg(long)]
        iface: String,
    },
    /// Attach `xdp_bounce`, which sends every DNS query straight back (XDP_TX, no lookup), to IF
    /// until SIGTERM/SIGINT; the test bed's ceiling for `cargo xtask bench`.
    Bounce {
        #[arg(long)]
        iface: String,
        #[arg(long, value_enum, default_value = "native")]
        xdp_mode: Mode,
    },
    /// Attach `xdp_count`, which counts DNS replies on IF and drops all but a sample; prints the
    /// counters for every line read on stdin, detaches at end of input.
    XdpCount(count::CountArgs),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Mode {
    /// Driver mode: XDP_TX before the kernel allocates anything (what dns-xdp serve uses on veth).
    Native,
    /// Generic (skb) mode.
    Skb,
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let result = match Cli::parse().command {
        Command::XdpPass { iface } => attach_until_stopped("xdp_pass", &iface, XdpMode::Driver),
        Command::Bounce { iface, xdp_mode: Mode::Native } => {
            attach_until_stopped("xdp_bounce", &iface, XdpMode::Driver)
        }
        Command::Bounce { iface, xdp_mode: Mode::Skb } => attach_until_stopped("xdp_bounce", &iface, XdpMode::Skb),
        Command::XdpCount(args) => count::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            log::error!("{err:#}");
            ExitCode::FAILURE
        }
    }
}

/// The test bed's object, its maps created, no program loaded yet.
fn load_object() -> anyhow::Result<Ebpf> {
    // Kernels before 5.11 charge BPF objects to RLIMIT_MEMLOCK; harmless where memcg accounts them.
    if let Err(err) = rlimit::setrlimit(rlimit::Resource::MEMLOCK, rlimit::INFINITY, rlimit::INFINITY) {
        log::debug!("could not raise RLIMIT_MEMLOCK: {err}");
    }
    Ebpf::load(TESTBED_OBJECT).context("loading the test bed's eBPF object (needs root or CAP_BPF)")
}

/// Program `name` of the object, through the verifier.
fn program<'a>(ebpf: &'a mut Ebpf, name: &str) -> anyhow::Result<&'a mut Xdp> {
    let program: &mut Xdp = ebpf
        .program_mut(name)
        .with_context(|| format!("the test bed's object has no {name} program"))?
        .try_into()
        .with_context(|| format!("{name} is not an XDP program"))?;
    program.load().with_context(|| format!("the kernel verifier rejected {name}"))?;
    Ok(program)
}

/// Attaches program `name` to `iface` and keeps it there until SIGTERM or SIGINT.
fn attach_until_stopped(name: &str, iface: &str, mode: XdpMode) -> anyhow::Result<()> {
    let mut ebpf = load_object()?;
    program(&mut ebpf, name)?.attach(iface, mode).with_context(|| format!("attaching {name} to {iface}"))?;
    log::info!("{name} attached to {iface}; waiting for SIGTERM");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
        tokio::select! {
            _ = term.recv() => {},
            _ = tokio::signal::ctrl_c() => {},
        }
        anyhow::Ok(())
    })
    // Dropping the object detaches the program.
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_program_passes_the_verifier() {
        if !testframe::can_load_bpf("every_program_passes_the_verifier") {
            return;
        }
        for name in ["xdp_pass", "xdp_bounce", dns_xdp_common::count::PROG_NAME] {
            let mut ebpf = load_object().unwrap_or_else(|e| panic!("{e:#}"));
            program(&mut ebpf, name).unwrap_or_else(|e| panic!("{e:#}"));
        }
    }
}
