//! Load generators run from the client namespace: dnsperf (unbounded and at a fixed rate, with per-query
//! latencies), our own xdpgen (AF_PACKET TX ring, unbounded and at fixed shares of the XDP_TX ceiling, with
//! replies counted in the kernel; xdpgen/), and kxdpgun (AF_XDP) where the kernel still accepts it.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use serde::{Deserialize, Serialize};

use super::netbed::{CLI_IF, CLI_V4, CLI_V6, SRV_V4, SRV_V6, cli_ns};
use super::stats::quantile;
use super::{proc, xdpgen};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn server_addr(self) -> &'static str {
        match self {
            Family::V4 => SRV_V4,
            Family::V6 => SRV_V6,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tool {
    /// dnsperf with no rate limit: the most replies/s it can get, and the loss.
    DnsperfMax,
    /// dnsperf at a fixed rate with `-v`: per-query latencies.
    DnsperfLatency,
    /// xdpgen as fast as it sends: replies/s, counted in the kernel.
    Xdpgen,
    /// xdpgen at this percentage of the XDP_TX ceiling measured in the same repetition: per-reply latency
    /// under a load dnsperf cannot offer.
    XdpgenAt(u32),
    /// kxdpgun at an offered rate above the path's ceiling: replies/s. Optional: the kernel refuses its
    /// XDP program since December 2026 (it calls bpf_xdp_adjust_meta).
    Kxdpgun,
}

impl Tool {
    /// The generator takes over the client veth with its own XDP program.
    pub fn owns_client_xdp(self) -> bool {
        matches!(self, Tool::Xdpgen | Tool::XdpgenAt(_) | Tool::Kxdpgun)
    }

    /// Loads whose replies/s is bounded by the path or the server, not by a closed loop.
    pub fn is_open_loop_max(self) -> bool {
        matches!(self, Tool::Xdpgen | Tool::Kxdpgun)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueryMix {
    /// Every name, A and AAAA: all hits.
    Hits,
    /// 10% NXDOMAIN.
    Nx10,
}

#[derive(Clone, Copy, Debug)]
pub struct Load {
    /// Stable id used in results.json and the report.
    pub id: &'static str,
    pub tool: Tool,
    pub family: Family,
    pub mix: QueryMix,
}

/// Every load, in the order a server run executes them (the generators that take over the client veth
/// last; the fixed-rate xdpgen loads after the unbounded ones, whose ceiling figure they need).
pub const LOADS: [Load; 12] = [
    Load { id: "dnsperf-max-v4", tool: Tool::DnsperfMax, family: Family::V4, mix: QueryMix::Hits },
    Load { id: "dnsperf-max-v6", tool: Tool::DnsperfMax, family: Family::V6, mix: QueryMix::Hits },
    Load { id: "dnsperf-max-nx10-v4", tool: Tool::DnsperfMax, family: Family::V4, mix: QueryMix::Nx10 },
    Load { id: "dnsperf-latency-v4", tool: Tool::DnsperfLatency, family: Family::V4, mix: QueryMix::Hits },
    Load { id: "dnsperf-latency-v6", tool: Tool::DnsperfLatency, family: Family::V6, mix: QueryMix::Hits },
    Load { id: "xdpgen-v4", tool: Tool::Xdpgen, family: Family::V4, mix: QueryMix::Hits },
    Load { id: "xdpgen-v6", tool: Tool::Xdpgen, family: Family::V6, mix: QueryMix::Hits },
    Load { id: "xdpgen-nx10-v4", tool: Tool::Xdpgen, family: Family::V4, mix: QueryMix::Nx10 },
    Load { id: "xdpgen-at50-v4", tool: Tool::XdpgenAt(50), family: Family::V4, mix: QueryMix::Hits },
    Load { id: "xdpgen-at90-v4", tool: Tool::XdpgenAt(90), family: Family::V4, mix: QueryMix::Hits },
    Load { id: "kxdpgun-v4", tool: Tool::Kxdpgun, family: Family::V4, mix: QueryMix::Hits },
    Load { id: "kxdpgun-v6", tool: Tool::Kxdpgun, family: Family::V6, mix: QueryMix::Hits },
];

pub fn load_by_id(id: &str) -> Option<Load> {
    LOADS.into_iter().find(|l| l.id == id)
}

/// Knobs shared by every load of a suite run; recorded in results.json.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Params {
    pub duration_s: u64,
    /// dnsperf `-c` (client sockets) and `-q` (outstanding queries) for the unbounded runs.
    pub dnsperf_clients: u32,
    pub dnsperf_outstanding: u32,
    /// The fixed rate of the latency runs, queries/s.
    pub latency_qps: u32,
    /// kxdpgun's offered rate, queries/s (above the veth path's ceiling, so replies/s is the server's limit).
    pub kxdpgun_qps: u32,
    /// 1 in (mask + 1) xdpgen replies is checked against its query and timed.
    #[serde(default = "default_sample_mask")]
    pub xdpgen_sample_mask: u16,
    /// xdpgen's sending threads (one per core by default: on veth each also runs the XDP programs' work).
    #[serde(default = "one")]
    pub xdpgen_threads: u16,
    /// Names the hit queries ask (the first ones of the zone); results written before this
    /// existed asked all of them.
    #[serde(default = "all_names")]
    pub hit_names: usize,
}

fn one() -> u16 {
    1
}

fn default_sample_mask() -> u16 {
    super::xdpgen::DEFAULT_SAMPLE_MASK
}

fn all_names() -> usize {
    crate::bench::zone::NAMES
}

/// What one load measured. Fields a tool does not produce stay `None`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Figures {
    pub sent: Option<u64>,
    pub replies: Option<u64>,
    pub lost: Option<u64>,
    /// Replies per second (dnsperf: completed queries per second of run time).
    pub replies_per_s: Option<f64>,
    /// Offered queries per second (the generator's own count).
    pub offered_per_s: Option<f64>,
    /// xdpgen: sampled replies checked against the query sent with their port and ID (all matched, or the
    /// run failed); the latency figures of the fixed-rate loads come from them.
    #[serde(default)]
    pub checked: Option<u64>,
    pub p50_ms: Option<f64>,
    pub p90_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub p999_ms: Option<f64>,
    /// (quantile, latency ms) at CDF_QUANTILES, for the latency plot.
    pub latency_cdf: Vec<(f64, f64)>,
    /// dns-xdp only: the XDP program's mean run time per packet from bpf_stats.
    pub xdp_ns_per_packet: Option<f64>,
    /// The do-nothing XDP_PASS program on the client veth (dnsperf loads, every server): the floor of what
    /// bpf_stats reports on this machine, to read xdp_ns_per_packet against.
    #[serde(default)]
    pub client_xdp_pass_ns_per_packet: Option<f64>,
    /// dns-xdp only: counter deltas over the load.
    pub xdp_tx: Option<u64>,
    pub xdp_pass: Option<u64>,
    pub userspace_responses: Option<u64>,
}

/// Quantiles stored per latency run: dense in the tail, where servers differ.
pub const CDF_QUANTILES: [f64; 16] =
    [0.01, 0.1, 0.25, 0.5, 0.75, 0.8, 0.85, 0.9, 0.95, 0.97, 0.98, 0.99, 0.995, 0.999, 0.9995, 0.9999];

/// What a generator needs to know about the bed.
pub struct Target<'a> {
    pub srv_mac: &'a str,
    pub cli_mac: &'a str,
    pub dns_xdp: &'a Path,
    /// For `XdpgenAt`: the ceiling's replies/s the percentage is of.
    pub ceiling_per_s: f64,
}

pub fn run(load: Load, params: &Params, query_file: &Path, target: &Target) -> Result<Figures> {
    let d = params.duration_s;
    let addr = load.family.server_addr();
    let file = query_file.to_string_lossy();
    // Hard deadline: the tool's own limit plus its reply timeout plus slack; then it is killed.
    let deadline = Duration::from_secs(d + 15);
    match load.tool {
        Tool::DnsperfMax | Tool::DnsperfLatency => {
            let mut c = proc::in_netns(cli_ns(), "dnsperf");
            c.args(["-s", addr, "-d", &file, "-l", &d.to_string(), "-t", "2"]);
            // Bounded in count too: at most 1,000 passes over the file.
            c.args(["-n", "1000"]);
            if load.tool == Tool::DnsperfMax {
                c.args(["-c", &params.dnsperf_clients.to_string(), "-q", &params.dnsperf_outstanding.to_string()]);
            } else {
                c.args(["-Q", &params.latency_qps.to_string(), "-v"]);
            }
            let (status, out, err) = proc::run_captured(c, deadline)?;
            if !status.success() {
                bail!("dnsperf exited with {status}: {}", last_lines(&err, 5));
            }
            let mut f =
                parse_dnsperf(&out).with_context(|| format!("parsing dnsperf output: {}", last_lines(&out, 5)))?;
            if load.tool == Tool::DnsperfLatency {
                add_latencies(&mut f, &out)?;
            }
            Ok(f)
        }
        Tool::Kxdpgun => {
            let mut c = proc::in_netns(cli_ns(), "kxdpgun");
            c.args(["-t", &d.to_string(), "-Q", &params.kxdpgun_qps.to_string(), "-i", &file]);
            c.args(["-I", CLI_IF, "-R", target.srv_mac, addr]);
            let (status, out, err) = proc::run_captured(c, deadline)?;
            // kxdpgun exits 0 even when its XDP socket fails to start.
            if !status.success() || err.contains("failed to initialize") {
                bail!("kxdpgun exited with {status}: {}", last_lines(&format!("{out}\n{err}"), 5));
            }
            parse_kxdpgun(&out).with_context(|| format!("parsing kxdpgun output: {}", last_lines(&out, 5)))
        }
        Tool::Xdpgen | Tool::XdpgenAt(_) => {
            let rate = match load.tool {
                Tool::XdpgenAt(pct) => Some((target.ceiling_per_s * f64::from(pct) / 100.0).max(1.0) as u64),
                _ => None,
            };
            let (src, dst) = match load.family {
                Family::V4 => (CLI_V4, SRV_V4),
                Family::V6 => (CLI_V6, SRV_V6),
            };
            let cfg = xdpgen::Config {
                netns: Some(cli_ns().to_owned()),
                iface: CLI_IF.to_owned(),
                ends: xdpgen::Endpoints {
                    src_mac: xdpgen::parse_mac(target.cli_mac)?,
                    dst_mac: xdpgen::parse_mac(target.srv_mac)?,
                    src: src.parse()?,
                    dst: dst.parse()?,
                    dst_port: 53,
                },
                queries: query_file.to_owned(),
                duration: Duration::from_secs(d),
                rate,
                sample_mask: params.xdpgen_sample_mask,
                testbed: crate::cmd::testbed_beside(target.dns_xdp),
                threads: params.xdpgen_threads,
            };
            let o = xdpgen::run(&cfg)?;
            let mut f = Figures {
                sent: Some(o.sent),
                replies: Some(o.replies),
                lost: Some(o.lost()),
                replies_per_s: Some(o.replies_per_s()),
                offered_per_s: Some(o.offered_per_s()),
                checked: Some(o.checked),
                ..Figures::default()
            };
            if rate.is_some() && !o.latencies_ms.is_empty() {
                f.p50_ms = o.latency_ms(0.5);
                f.p90_ms = o.latency_ms(0.9);
                f.p99_ms = o.latency_ms(0.99);
                f.p999_ms = o.latency_ms(0.999);
                f.latency_cdf = CDF_QUANTILES.iter().filter_map(|&q| Some((q, o.latency_ms(q)?))).collect();
            }
            Ok(f)
        }
    }
}

fn last_lines(s: &str, n: usize) -> String {
    let v: Vec<&str> = s.lines().rev().take(n).collect();
    v.into_iter().rev().collect::<Vec<_>>().join(" | ")
}

/// The first number after `label` on the line that starts with it.
fn number_after(text: &str, label: &str) -> Option<f64> {
    let line = text.lines().map(str::trim).find(|l| l.starts_with(label))?;
    line[label.len()..].split_whitespace().next()?.parse().ok()
}

fn parse_dnsperf(out: &str) -> Result<Figures> {
    let sent = number_after(out, "Queries sent:").context("no `Queries sent:`")?;
    let completed = number_after(out, "Queries completed:").context("no `Queries completed:`")?;
    let lost = number_after(out, "Queries lost:").context("no `Queries lost:`")?;
    let qps = number_after(out, "Queries per second:").context("no `Queries per second:`")?;
    Ok(Figures {
        sent: Some(sent as u64),
        replies: Some(completed as u64),
        lost: Some(lost as u64),
        replies_per_s: Some(qps),
        ..Figures::default()
    })
}

/// Per-query lines of `dnsperf -v`: `> NOERROR n00001.bench.test. A 0.000218` (seconds).
fn add_latencies(f: &mut Figures, out: &str) -> Result<()> {
    let mut ms: Vec<f64> = out
        .lines()
        .filter(|l| l.starts_with("> "))
        .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
        .map(|s| s * 1000.0)
        .collect();
    if ms.is_empty() {
        bail!("dnsperf -v printed no per-query latencies");
    }
    ms.sort_by(f64::total_cmp);
    f.p50_ms = Some(quantile(&ms, 0.5));
    f.p90_ms = Some(quantile(&ms, 0.9));
    f.p99_ms = Some(quantile(&ms, 0.99));
    f.p999_ms = Some(quantile(&ms, 0.999));
    f.latency_cdf = CDF_QUANTILES.iter().map(|&q| (q, quantile(&ms, q))).collect();
    Ok(())
}

/// `total queries:     860100 (430050 pps)` / `total replies:     301622 (150811 pps) (35%)`.
fn parse_kxdpgun(out: &str) -> Result<Figures> {
    let pps = |label: &str| -> Option<(f64, f64)> {
        let line = out.lines().map(str::trim).find(|l| l.starts_with(label))?;
        let rest = &line[label.len()..];
        let count = rest.split_whitespace().next()?.parse().ok()?;
        let rate = rest.split('(').nth(1)?.split_whitespace().next()?.parse().ok()?;
        Some((count, rate))
    };
    let (sent, offered) = pps("total queries:").context("no `total queries:`")?;
    let (replies, rate) = pps("total replies:").context("no `total replies:`")?;
    Ok(Figures {
        sent: Some(sent as u64),
        replies: Some(replies as u64),
        lost: Some((sent - replies).max(0.0) as u64),
        replies_per_s: Some(rate),
        offered_per_s: Some(offered),
        ..Figures::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DNSPERF: &str = "\
[Status] Testing complete (time limit)

Statistics:

  Queries sent:         86304
  Queries completed:    86300 (100.00%)
  Queries lost:         4 (0.00%)

  Response codes:       NOERROR 57536 (66.67%), NXDOMAIN 28768 (33.33%)
  Run time (s):         1.000078
  Queries per second:   86297.268813

  Average Latency (s):  0.000761 (min 0.000010, max 0.012719)
";

    #[test]
    fn parses_dnsperf_statistics() {
        let f = parse_dnsperf(DNSPERF).unwrap();
        assert_eq!((f.sent, f.replies, f.lost), (Some(86304), Some(86300), Some(4)));
        assert!((f.replies_per_s.unwrap() - 86297.27).abs() < 0.01);
    }

    #[test]
    fn parses_dnsperf_per_query_latencies() {
        let mut out = String::from("[Status] Sending queries\n");
        for i in 1..=1000 {
            out.push_str(&format!("> NOERROR n{i:05}.bench.test. A {:.6}\n", f64::from(i) / 1e6));
        }
        let mut f = Figures::default();
        add_latencies(&mut f, &out).unwrap();
        assert!((f.p50_ms.unwrap() - 0.5).abs() < 1e-9);
        assert!((f.p999_ms.unwrap() - 0.999).abs() < 1e-9);
        assert_eq!(f.latency_cdf.len(), CDF_QUANTILES.len());
    }

    #[test]
    fn parses_kxdpgun_totals() {
        let out = "using interface vC, XDP threads 1, UDP, native mode\n\
                   thread#00: sent 860100, received 301622\n\
                   total queries:     860100 (430050 pps)\n\
                   total replies:     301622 (150811 pps) (35%)\n";
        let f = parse_kxdpgun(out).unwrap();
        assert_eq!(f.replies, Some(301622));
        assert_eq!(f.replies_per_s, Some(150811.0));
        assert_eq!(f.offered_per_s, Some(430050.0));
    }
}
