//! `cargo xtask xdpgen`: the generator on its own, against any server reachable over a veth (or NIC) whose
//! MAC address is known. The bench drives the same code through `xdpgen::run`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};

use super::{Config, DEFAULT_SAMPLE_MASK, Endpoints, parse_mac, run};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Network namespace of the interface (`ip netns` name); default: ours.
    #[arg(long)]
    netns: Option<String>,
    /// Interface to send from; xdpgen attaches its reply counter to it.
    #[arg(long)]
    iface: String,
    /// Our address on it (IPv4 or IPv6; the server's must be of the same family).
    #[arg(long)]
    src: std::net::IpAddr,
    /// The server's address.
    #[arg(long)]
    dst: std::net::IpAddr,
    /// The next hop's MAC address (the server's, on a veth).
    #[arg(long)]
    dst_mac: String,
    /// Destination port.
    #[arg(long, default_value_t = 53)]
    port: u16,
    /// Query file, dnsperf format (`name type` per line), sent in order and cycled.
    #[arg(long)]
    queries: PathBuf,
    /// Seconds to send.
    #[arg(long, default_value_t = 4)]
    duration: u64,
    /// Queries/s to offer; default: as fast as one thread sends.
    #[arg(long)]
    rate: Option<u64>,
    /// Replies with `ID & MASK == 0` are checked and timed.
    #[arg(long, default_value_t = DEFAULT_SAMPLE_MASK)]
    sample_mask: u16,
    /// Sending threads.
    #[arg(long, default_value_t = 1)]
    threads: u16,
    /// The test bed's binary (for its reply counter).
    #[arg(long, default_value = "target/release/dns-xdp-testbed")]
    testbed: PathBuf,
}

pub fn main(a: &Args) -> Result<()> {
    let src_mac = mac_of(a.netns.as_deref(), &a.iface)?;
    if a.src.is_ipv4() != a.dst.is_ipv4() {
        bail!("--src {} and --dst {} are of different families", a.src, a.dst);
    }
    let cfg = Config {
        netns: a.netns.clone(),
        iface: a.iface.clone(),
        ends: Endpoints { src_mac, dst_mac: parse_mac(&a.dst_mac)?, src: a.src, dst: a.dst, dst_port: a.port },
        queries: a.queries.clone(),
        duration: Duration::from_secs(a.duration),
        rate: a.rate,
        sample_mask: a.sample_mask,
        testbed: crate::cmd::repo_root().join(&a.testbed),
        threads: a.threads,
    };
    let _signals = crate::bench::proc::catch_stop_signals();
    let o = run(&cfg)?;
    println!("xdpgen: {}", o.summary());
    Ok(())
}

fn mac_of(netns: Option<&str>, iface: &str) -> Result<[u8; 6]> {
    let mut c = crate::cmd::command("ip");
    if let Some(ns) = netns {
        c.args(["-n", ns]);
    }
    let out = crate::cmd::output(c.args(["-j", "link", "show", "dev", iface]))?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).context("parsing `ip -j link show`")?;
    let mac = v.get(0).and_then(|l| l.get("address")).and_then(|a| a.as_str()).context("no MAC address")?;
    parse_mac(mac)
}
