//! `cargo xtask`: build, demo, test and bench entry points for dns-xdp.
//!
//! Every subcommand that compiles bootstraps the toolchain first (nightly + rust-src + bpf-linker built
//! against the nightly's LLVM; see ARCHITECTURE.md section 5), so a fresh checkout needs only rustup.

mod bench;
mod bootstrap;
mod cmd;
mod deb;
mod demo;
mod fuzz;
mod test;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask", about = "dns-xdp build, demo and test tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Bootstrap the toolchain if needed, then `cargo build --release` (XDP object + `dns-xdp`).
    Build,
    /// Build, then run `dns-xdp serve ARGS`; with no ARGS, serve the example zone in a demo netns pair.
    BuildAndLoad {
        /// Arguments for `dns-xdp serve`, after `--` (e.g. `-- --iface eth0 --zone /path/zone`).
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Build, then the Debian package target/debian/dns-xdp_<version>_<arch>.deb (binary, man pages,
    /// completions, example config, systemd unit).
    Deb,
    /// Run every unit and integration test (needs root, iproute2, knot-dnsutils, bind9-dnsutils...).
    Test {
        /// Extra arguments for `cargo test`, after `--` (e.g. `-- reload -- --nocapture`).
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Fuzz each `cargo fuzz` target (message parser, zone files, transfers, TSIG, API JSON) for
    /// `--time` seconds, then the XDP program against the daemon through BPF_PROG_TEST_RUN.
    Fuzz(fuzz::Options),
    /// The benchmark suite: dns-xdp beside knotd and NSD in a netns pair (see BENCHMARKS.md).
    Bench(bench::Options),
    /// The bench's own load generator on its own: DNS queries at a high or fixed rate over AF_PACKET,
    /// replies counted in the kernel, a sample checked and timed.
    Xdpgen(bench::xdpgen::cli::Args),
    /// One large zone served by dns-xdp: start time, memory per name, one-record change latency.
    BenchZone(bench::large_zone::Options),
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.task {
        Task::Build => build(),
        Task::BuildAndLoad { args } => {
            build()?;
            demo::build_and_load(&args)
        }
        Task::Deb => {
            build()?;
            deb::package().map(drop)
        }
        Task::Test { args } => test::run(&args),
        Task::Fuzz(opts) => fuzz::run(&opts),
        Task::Bench(opts) => bench::run(&opts),
        Task::BenchZone(opts) => bench::large_zone::run(&opts),
        Task::Xdpgen(args) => bench::xdpgen::cli::main(&args),
    }
}

/// Bootstrap, then build the default members in release mode.
fn build() -> Result<()> {
    bootstrap::ensure()?;
    cmd::run(cmd::cargo().args(["build", "--release"]).current_dir(cmd::repo_root()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_everything_after_the_first_double_dash_through() {
        let cli = Cli::try_parse_from(["xtask", "test", "--", "reload", "--", "--nocapture"]).unwrap();
        let Task::Test { args } = cli.task else { panic!("parsed as another task") };
        assert_eq!(args, ["reload", "--", "--nocapture"]);
    }

    #[test]
    fn build_and_load_takes_serve_arguments() {
        let cli = Cli::try_parse_from(["xtask", "build-and-load", "--", "--iface", "eth0"]).unwrap();
        let Task::BuildAndLoad { args } = cli.task else { panic!("parsed as another task") };
        assert_eq!(args, ["--iface", "eth0"]);
    }
}
