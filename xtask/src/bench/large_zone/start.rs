//! The start figures of every server: from the spawn until the zone's last name is served (for
//! dns-xdp: by XDP, with the map-entries gauge settled), and the memory once it stopped moving.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

use super::super::proc;
use super::probe::{self, Prober};
use super::{METRICS_PORT, Options, PerName, cli_v4, srv, zonegen};

/// The start poller: one round (for dns-xdp: scrape, query, scrape) per this, each query waiting
/// this long.
pub const START_POLL: Duration = Duration::from_millis(20);
/// The map-entries gauge, and the memory, count as settled after this many readings in a row
/// this far apart (the gauge equal, the memory within MEMORY_SETTLED_PERMILLE of the last).
const SETTLED_READINGS: usize = 5;
const SETTLE_POLL: Duration = Duration::from_millis(100);
const MEMORY_SETTLED_PERMILLE: u64 = 10;
/// How long the memory may take to settle after the start before it is read as it is.
const MEMORY_SETTLE_DEADLINE: Duration = Duration::from_secs(30);

/// dns-xdp's start, in seconds since the daemon was spawned.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Start {
    /// GET /healthz first said 200.
    pub healthz_s: Option<f64>,
    /// The first correct answer for the last name, from whichever path.
    pub first_answer_s: Option<f64>,
    /// An answer for the last name with the daemon's reply counter unmoved and XDP_TX moved.
    pub last_name_xdp_s: f64,
    /// The map-entries gauge first reached the value it then kept.
    pub entries_final_s: Option<f64>,
    pub map_entries: Option<u64>,
    /// All answers installed: the later of last_name_xdp_s and entries_final_s.
    pub installed_s: f64,
}

/// The memory of `pid` and its descendants now, per name of the zone.
pub fn per_name(pid: u32, spawned: Instant, names: usize) -> PerName {
    let m = probe::memory(pid);
    let n = names as f64;
    PerName {
        at_s: spawned.elapsed().as_secs_f64(),
        settled: None,
        rss_per_name: m.rss_bytes as f64 / n,
        bpf_per_name: m.bpf_memlock_bytes as f64 / n,
        total_per_name: (m.rss_bytes + m.bpf_memlock_bytes) as f64 / n,
        memory: m,
    }
}

/// The memory once it stopped moving after the start (SETTLED_READINGS readings within
/// MEMORY_SETTLED_PERMILLE of the last), or as it is after MEMORY_SETTLE_DEADLINE.
pub fn settled_memory(pid: u32, spawned: Instant, names: usize) -> Result<PerName> {
    let deadline = Instant::now() + MEMORY_SETTLE_DEADLINE;
    let mut readings: Vec<u64> = Vec::new();
    loop {
        let m = per_name(pid, spawned, names);
        let total = m.memory.rss_bytes + m.memory.bpf_memlock_bytes;
        readings.push(total);
        let tail = &readings[readings.len().saturating_sub(SETTLED_READINGS)..];
        let settled = tail.len() == SETTLED_READINGS
            && tail.iter().all(|&v| v.abs_diff(total) * 1000 <= total * MEMORY_SETTLED_PERMILLE);
        if settled || Instant::now() > deadline {
            return Ok(PerName { settled: Some(settled), ..m });
        }
        proc::check_stop()?;
        std::thread::sleep(SETTLE_POLL);
    }
}

/// The start's polling, for every server: `round` once per START_POLL until it says done, failing
/// when `who` exits, the start passes --start-timeout (`waiting` says for what) or the memory
/// passes --max-mem-mib.
pub fn poll_start(
    pid: u32,
    spawned: Instant,
    opts: &Options,
    who: &str,
    waiting: &str,
    mut round: impl FnMut() -> Result<bool>,
) -> Result<()> {
    let timeout = Duration::from_secs(opts.start_timeout);
    let cap = opts.max_mem_mib * 1024 * 1024;
    let mut rounds = 0u64;
    loop {
        proc::check_stop()?;
        if !probe::alive(pid) {
            bail!("{who} exited during the start");
        }
        if spawned.elapsed() > timeout {
            bail!("{waiting} within {timeout:?} of the spawn");
        }
        rounds += 1;
        if rounds.is_multiple_of(10) {
            let m = probe::memory(pid);
            if m.rss_bytes + m.bpf_memlock_bytes > cap {
                bail!(
                    "memory cap: RSS {} MiB + BPF maps {} MiB passed --max-mem-mib {} at {:.1} s; stopped",
                    m.rss_bytes >> 20,
                    m.bpf_memlock_bytes >> 20,
                    opts.max_mem_mib,
                    spawned.elapsed().as_secs_f64()
                );
            }
        }
        let round_end = Instant::now() + START_POLL;
        if round()? {
            return Ok(());
        }
        if let Some(left) = round_end.checked_duration_since(Instant::now()) {
            std::thread::sleep(left);
        }
    }
}

/// dns-xdp's start figures; runs inside the client namespace.
pub fn start_figures(pid: u32, spawned: Instant, opts: &Options) -> Result<Start> {
    let metrics = srv(METRICS_PORT);
    let last = zonegen::last_a(opts.names);
    let (qname, want) = (zonegen::name(last), zonegen::addr(last));
    let mut prober = Prober::new(cli_v4(), srv(53))?;
    let timeout = Duration::from_secs(opts.start_timeout);
    let mut s = Start::default();
    // (seconds, summed entries) of every scrape: when the gauge reached its final value.
    let mut entries: Vec<(f64, u64)> = Vec::new();
    let at = || spawned.elapsed().as_secs_f64();
    poll_start(pid, spawned, opts, "the daemon (see daemon.log)", &format!("no XDP answer for {qname}"), || {
        if s.healthz_s.is_none() && probe::http(metrics, "GET", "/healthz", None, "").is_ok_and(|(st, _)| st == 200) {
            s.healthz_s = Some(at());
        }
        let before = probe::scrape(metrics).ok();
        if let Some(n) = before.and_then(|c| c.map_entries) {
            entries.push((at(), n));
        }
        let reply = prober.ask_a(&qname, START_POLL)?;
        let answered_at = at();
        if reply.is_some_and(|r| r.rcode == 0 && r.a == [want]) {
            s.first_answer_s.get_or_insert(answered_at);
            let after = probe::scrape(metrics).ok();
            if let (Some(b), Some(a)) = (before, after)
                && probe::from_xdp(b, a)
            {
                s.last_name_xdp_s = answered_at;
                return Ok(true);
            }
        }
        Ok(false)
    })?;
    // The answer alone does not prove the rest is installed (a loader may fill in any order): wait for
    // the gauge to settle, then take the moment it first showed its final value.
    let settle_deadline = Instant::now() + timeout.saturating_sub(spawned.elapsed()).max(Duration::from_secs(30));
    loop {
        let c = probe::scrape(metrics)?;
        let Some(n) = c.map_entries else { break };
        entries.push((at(), n));
        let tail = &entries[entries.len().saturating_sub(SETTLED_READINGS)..];
        if tail.len() == SETTLED_READINGS && tail.iter().all(|&(_, v)| v == n) {
            break;
        }
        if Instant::now() > settle_deadline {
            bail!("dnsxdp_bpf_map_entries still moving at {:.1} s (now {n})", at());
        }
        proc::check_stop()?;
        std::thread::sleep(SETTLE_POLL);
    }
    if let Some(&(_, last)) = entries.last() {
        let first = entries.iter().rev().take_while(|&&(_, v)| v == last).last().map(|&(t, _)| t);
        s.entries_final_s = first;
        s.map_entries = Some(last);
    }
    s.installed_s = s.last_name_xdp_s.max(s.entries_final_s.unwrap_or(0.0));
    Ok(s)
}
