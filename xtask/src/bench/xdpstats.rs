//! Per-packet run time of the XDP program (kernel bpf_stats, read with bpftool) and dns-xdp's own counters.

use std::process::Command;

use anyhow::{Context as _, Result};

use super::netbed::{self, SRV_IF, srv_ns};
use super::servers;

const SYSCTL: &str = "/proc/sys/kernel/bpf_stats_enabled";

/// `kernel.bpf_stats_enabled=1` for the whole suite, restored on drop. It is global and costs every BPF
/// program two clock reads per run, so it stays on for every server (same bed for all) and no longer.
pub struct BpfStats {
    previous: Option<String>,
}

impl BpfStats {
    pub fn enable() -> Self {
        let previous = std::fs::read_to_string(SYSCTL).ok().map(|s| s.trim().to_owned());
        if let Err(e) = std::fs::write(SYSCTL, "1") {
            eprintln!("bench: could not enable bpf_stats ({e}); no XDP run time per packet");
            return BpfStats { previous: None };
        }
        BpfStats { previous }
    }

    pub fn enabled(&self) -> bool {
        self.previous.is_some()
    }
}

impl Drop for BpfStats {
    fn drop(&mut self) {
        if let Some(p) = self.previous.take() {
            let _ = std::fs::write(SYSCTL, p);
        }
    }
}

/// (run_time_ns, run_cnt) of the XDP program attached to the server veth: found by the link's program id,
/// not by name, since other test runs may have their own dns_xdp loaded.
pub fn prog_stats() -> Option<(u64, u64)> {
    prog_stats_on(srv_ns(), SRV_IF)
}

/// (run_time_ns, run_cnt) of the XDP program on `ifname` in `ns`.
pub fn prog_stats_on(ns: &str, ifname: &str) -> Option<(u64, u64)> {
    let id = netbed::xdp_prog_id(ns, ifname)?;
    let out = Command::new("bpftool").args(["-j", "prog", "show", "id", &id.to_string()]).output().ok()?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    Some((v.get("run_time_ns")?.as_u64()?, v.get("run_cnt")?.as_u64()?))
}

/// Mean ns per run between two `prog_stats` readings.
pub fn ns_per_packet(before: Option<(u64, u64)>, after: Option<(u64, u64)>) -> Option<f64> {
    let ((t0, n0), (t1, n1)) = (before?, after?);
    (n1 > n0).then(|| (t1 - t0) as f64 / (n1 - n0) as f64)
}

/// The dns-xdp counters the report uses, summed over label sets.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counters {
    pub xdp_tx: u64,
    pub xdp_pass: u64,
    pub userspace_responses: u64,
}

pub fn scrape() -> Result<Counters> {
    let body = servers::http_get(&format!("http://{}/metrics", servers::METRICS)).context("scraping /metrics")?;
    Ok(parse_metrics(&body))
}

fn parse_metrics(body: &str) -> Counters {
    let mut c = Counters::default();
    for line in body.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else { continue };
        let Ok(v) = value.parse::<f64>() else { continue };
        let v = v as u64;
        if series.starts_with("dnsxdp_xdp_packets_total") {
            if series.contains("action=\"tx\"") {
                c.xdp_tx += v;
            } else if series.contains("action=\"pass\"") {
                c.xdp_pass += v;
            }
        } else if series.starts_with("dnsxdp_responses_total") && series.contains("path=\"userspace\"") {
            c.userspace_responses += v;
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_counters_over_labels() {
        let body = "# TYPE dnsxdp_xdp_packets_total counter\n\
                    dnsxdp_xdp_packets_total{action=\"tx\"} 10\n\
                    dnsxdp_xdp_packets_total{action=\"pass\"} 3\n\
                    dnsxdp_responses_total{path=\"userspace\",rcode=\"NOERROR\"} 2\n\
                    dnsxdp_responses_total{path=\"userspace\",rcode=\"NXDOMAIN\"} 1\n\
                    dnsxdp_responses_total{path=\"xdp\",rcode=\"NOERROR\"} 10\n";
        let c = parse_metrics(body);
        assert_eq!((c.xdp_tx, c.xdp_pass, c.userspace_responses), (10, 3, 3));
    }

    #[test]
    fn ns_per_packet_needs_runs() {
        assert_eq!(ns_per_packet(Some((100, 10)), Some((400, 20))), Some(30.0));
        assert_eq!(ns_per_packet(Some((100, 10)), Some((100, 10))), None);
        assert_eq!(ns_per_packet(None, Some((100, 10))), None);
    }
}
