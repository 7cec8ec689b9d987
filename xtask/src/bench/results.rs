//! results.json: every run's raw figures, plus what a reader needs to judge them (machine, load, versions).

use std::path::Path;

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};

use super::load::{Figures, Params};

#[derive(Debug, Serialize, Deserialize)]
pub struct Results {
    pub meta: Meta,
    pub runs: Vec<Run>,
    /// Ratios between servers that the issue asks for (dns-xdp / XDP_TX ceiling, ceiling / knotd-xdp),
    /// each taken within a repetition; written at the end of a run (report::derived_ratios).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub derived: Vec<Derived>,
}

/// A ratio of replies/s between two servers under one load, taken within each repetition.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Derived {
    pub load: String,
    pub numerator: String,
    pub denominator: String,
    pub n: usize,
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Meta {
    /// UTC, `YYYYmmddTHHMMSSZ`; also the directory name.
    pub started: String,
    pub command: String,
    pub quick: bool,
    pub reps: usize,
    pub params: Params,
    pub machine: Machine,
    pub versions: Vec<(String, String)>,
    /// /proc/loadavg (1, 5, 15 min) when the suite started and ended.
    pub loadavg_start: [f64; 3],
    pub loadavg_end: Option<[f64; 3]>,
    pub wall_time_s: Option<f64>,
    pub notes: Vec<String>,
    /// Servers and loads the kernel refused at the start probe (probe.rs), with the refusal.
    #[serde(default)]
    pub unavailable: Vec<Unavailable>,
}

/// A server or load this kernel will not run, and why, in the tool's own words.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Unavailable {
    /// A server name (`knotd-xdp`) or a load id (`kxdpgun-v4`).
    pub what: String,
    /// The line that says why: the verifier's, when the kernel refused a program.
    pub reason: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Machine {
    pub hostname: String,
    pub cpu: String,
    pub cores: usize,
    pub mem_total: String,
    pub kernel: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Run {
    pub rep: usize,
    pub server: String,
    pub load: String,
    /// /proc/loadavg before this load, and how many compilers (rustc, cc1, ld) were running: noise markers.
    pub loadavg_before: [f64; 3],
    pub compilers_running: usize,
    pub figures: Option<Figures>,
    pub error: Option<String>,
}

impl Results {
    pub fn write(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_string_pretty(self)?;
        // Write then rename, so an interrupted suite never leaves half a file.
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, json).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))
    }

    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }
}

pub fn loadavg() -> [f64; 3] {
    let s = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut it = s.split_whitespace().map(|x| x.parse().unwrap_or(f64::NAN));
    [it.next().unwrap_or(f64::NAN), it.next().unwrap_or(f64::NAN), it.next().unwrap_or(f64::NAN)]
}

/// Processes that are compiling right now (other engineers' builds share our cores).
pub fn compilers_running() -> usize {
    let Ok(dir) = std::fs::read_dir("/proc") else { return 0 };
    dir.filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("comm")).ok())
        .filter(|c| matches!(c.trim(), "rustc" | "cc1" | "cc1plus" | "ld" | "ld.lld" | "bpf-linker"))
        .count()
}

pub fn machine() -> Machine {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let cpu = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_else(|| "unknown".into());
    let mem_total = read("/proc/meminfo")
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .map(|l| l.trim_start_matches("MemTotal:").trim().to_owned())
        .unwrap_or_default();
    Machine {
        hostname: read("/proc/sys/kernel/hostname").trim().to_owned(),
        cpu,
        cores: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        mem_total,
        kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
    }
}

/// UTC now as `YYYYmmddTHHMMSSZ` (civil-from-days, Howard Hinnant's algorithm; no date crate needed).
pub fn utc_stamp() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    stamp_of(secs)
}

pub fn stamp_of(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_utc_dates() {
        assert_eq!(stamp_of(0), "19700101T000000Z");
        assert_eq!(stamp_of(951_782_400 + 3661), "20000229T010101Z");
    }
}
