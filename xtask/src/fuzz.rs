//! `cargo xtask fuzz`: every libFuzzer target in `fuzz/` for a while each, then the XDP program
//! fuzzed through BPF_PROG_TEST_RUN with the daemon as oracle (dns-xdp-userspace/tests/xdp_fuzz.rs).
//!
//! The committed seeds (`fuzz/corpus/<target>`) are read only: what libFuzzer finds goes to
//! `target/fuzz/corpus/<target>`, which later runs start from, and crashes to
//! `target/fuzz/artifacts/<target>/`. A crash fails the task with the file that reproduces it.

use std::io::{BufRead as _, BufReader};
use std::process::Stdio;

use anyhow::{Context as _, Result, bail};

use crate::{bootstrap, cmd};

/// The cargo-fuzz release known to build (with stable) and drive the installed nightly.
const CARGO_FUZZ_VERSION: &str = "0.13.2";
/// The targets of fuzz/Cargo.toml, in the order they run.
pub const TARGETS: &[&str] = &["dns_message", "zone_file", "xfr", "tsig", "api_json"];

#[derive(clap::Args)]
pub struct Options {
    /// Seconds to fuzz each target (and the XDP program).
    #[arg(long, default_value_t = 60)]
    time: u64,
    /// Only these targets (repeatable); all of them when absent.
    #[arg(long = "target", value_parser = clap::builder::PossibleValuesParser::new(TARGETS))]
    targets: Vec<String>,
    /// Skip the XDP program (it needs root and a release build; `cargo xtask test` runs it too).
    #[arg(long)]
    no_xdp: bool,
}

/// What one libFuzzer run reported.
#[derive(Debug, Default, PartialEq)]
struct Stats {
    executions: u64,
    exec_per_sec: u64,
}

pub fn run(opts: &Options) -> Result<()> {
    // The library's build script builds the XDP object, so fuzz builds need bpf-linker too.
    bootstrap::ensure()?;
    ensure_cargo_fuzz()?;
    let root = cmd::repo_root();
    let targets: Vec<&str> =
        if opts.targets.is_empty() { TARGETS.to_vec() } else { opts.targets.iter().map(String::as_str).collect() };

    // `cargo fuzz build` takes one target or none (all of them).
    let builds: Vec<Option<&str>> =
        if targets.len() == TARGETS.len() { vec![None] } else { targets.iter().copied().map(Some).collect() };
    for target in builds {
        cmd::run(fuzz_cargo().current_dir(&root).args(["fuzz", "build"]).args(FUZZ_BUILD_FLAGS).args(target))
            .context("building the fuzz targets")?;
    }
    let mut report = Vec::new();
    for target in &targets {
        let found = root.join("target/fuzz/corpus").join(target);
        let artifacts = root.join("target/fuzz/artifacts").join(target);
        for dir in [&found, &artifacts] {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let mut c = fuzz_cargo();
        c.current_dir(&root)
            .args(["fuzz", "run"])
            .args(FUZZ_BUILD_FLAGS)
            .arg(target)
            .arg(&found)
            .arg(root.join("fuzz/corpus").join(target))
            .arg("--")
            .arg(format!("-max_total_time={}", opts.time))
            .arg(format!("-artifact_prefix={}/", artifacts.display()))
            .arg("-print_final_stats=1");
        let started = std::time::Instant::now();
        let (ok, stats) = run_streaming(&mut c)?;
        if !ok {
            bail!(
                "fuzz target {target} failed: the input that reproduces it is in {} \
                 (replay: cargo +nightly fuzz run -s none {target} <that file>)",
                artifacts.display()
            );
        }
        report.push(format!(
            "{target}: {} s, {} executions, {} exec/s",
            started.elapsed().as_secs(),
            stats.executions,
            stats.exec_per_sec
        ));
    }
    if !opts.no_xdp {
        report.push(xdp(opts.time)?);
    }
    eprintln!("\nxtask fuzz: no crash\n  {}", report.join("\n  "));
    Ok(())
}

/// No sanitizer: the targets reach no unsafe code of ours (the only unsafe is in the loader and
/// the BPF map code), and AddressSanitizer would halve the executions per second. Debug
/// assertions stay on (cargo fuzz's default), so integer overflows are crashes.
const FUZZ_BUILD_FLAGS: &[&str] = &["--sanitizer", "none"];

/// `cargo +nightly` through rustup, whichever toolchain runs xtask.
fn fuzz_cargo() -> std::process::Command {
    let mut c = cmd::command("cargo");
    c.arg("+nightly").env_remove("RUSTUP_TOOLCHAIN").env_remove("RUSTC").env_remove("CARGO");
    c
}

fn ensure_cargo_fuzz() -> Result<()> {
    let probe = cmd::output(cmd::command("cargo-fuzz").arg("--version"));
    if probe.is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains(CARGO_FUZZ_VERSION)) {
        return Ok(());
    }
    eprintln!("xtask: installing cargo-fuzz {CARGO_FUZZ_VERSION} (about a minute)");
    let mut install = cmd::cargo();
    install.args(["install", "cargo-fuzz", "--locked", "--version", CARGO_FUZZ_VERSION]).env_remove("RUSTUP_TOOLCHAIN");
    cmd::run(&mut install)
        .with_context(|| format!("installing cargo-fuzz failed; run by hand: {}", cmd::render(&install)))
}

/// Runs `c` with its stderr echoed line by line, collecting libFuzzer's final stats.
fn run_streaming(c: &mut std::process::Command) -> Result<(bool, Stats)> {
    let mut child =
        c.stderr(Stdio::piped()).spawn().with_context(|| format!("could not start `{}`", cmd::render(c)))?;
    let mut stats = Stats::default();
    for line in BufReader::new(child.stderr.take().expect("piped")).lines() {
        let line = line.context("reading libFuzzer's output")?;
        eprintln!("{line}");
        parse_stat(&line, &mut stats);
    }
    let status = child.wait().with_context(|| format!("waiting for `{}`", cmd::render(c)))?;
    Ok((status.success(), stats))
}

/// `stat::number_of_executed_units: 1234` and its siblings (libFuzzer's -print_final_stats).
fn parse_stat(line: &str, stats: &mut Stats) {
    let Some((key, value)) = line.strip_prefix("stat::").and_then(|l| l.split_once(':')) else { return };
    let Ok(value) = value.trim().parse() else { return };
    match key {
        "number_of_executed_units" => stats.executions = value,
        "average_exec_per_sec" => stats.exec_per_sec = value,
        _ => {}
    }
}

/// The XDP program against the daemon for `seconds`, as many mutated queries as fit.
fn xdp(seconds: u64) -> Result<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        let msg = "xdp: skipped (loading BPF programs needs root; run as root or pass --no-xdp)";
        if std::env::var_os("CI").is_some() {
            bail!("{msg}");
        }
        return Ok(msg.into());
    }
    crate::build()?;
    let root = cmd::repo_root();
    let mut test = cmd::cargo();
    test.current_dir(&root)
        .args(["test", "--release", "-p", "dns-xdp-userspace", "--test", "xdp_fuzz", "--", "--nocapture"])
        .env("DNS_XDP_FUZZ_SECONDS", seconds.to_string())
        .env("DNS_XDP_FUZZ_ITERATIONS", u64::MAX.to_string())
        // A new sequence each run, printed in the failure message to replay it.
        .env("DNS_XDP_FUZZ_SEED", std::env::var("DNS_XDP_FUZZ_SEED").unwrap_or_else(|_| seed().to_string()));
    cmd::run(&mut test).context("the XDP program answered differently from the daemon (see the case above)")?;
    Ok(format!("xdp: {seconds} s of mutated queries through BPF_PROG_TEST_RUN, kernel answers equal to the daemon's"))
}

fn seed() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_libfuzzer_final_stats() {
        let mut s = Stats::default();
        for line in [
            "stat::number_of_executed_units: 271828",
            "stat::average_exec_per_sec:     4530",
            "stat::new_units_added: 3",
            "#2 INITED cov: 4",
        ] {
            parse_stat(line, &mut s);
        }
        assert_eq!(s, Stats { executions: 271_828, exec_per_sec: 4530 });
    }

    #[test]
    fn targets_match_the_fuzz_crate() {
        let manifest = std::fs::read_to_string(cmd::repo_root().join("fuzz/Cargo.toml")).expect("fuzz/Cargo.toml");
        let declared: Vec<&str> = manifest
            .lines()
            .filter_map(|l| l.strip_prefix("name = \"")?.strip_suffix('"'))
            .filter(|n| *n != "dns-xdp-fuzz")
            .collect();
        assert_eq!(declared, TARGETS);
    }
}
