//! `cargo xtask bench-zone`: the real `dns-xdp` binary serving one large zone (default 1,000,000
//! names) with XDP attached in native mode on the bench's veth, measured black-box through its CLI,
//! DNS answers, control API, /metrics and /proc, so the harness outlives changes to the map layout:
//! - start: from spawning the process until XDP answers the zone's last name and the daemon's
//!   `dnsxdp_bpf_map_entries` stopped moving;
//! - memory per name: VmRSS, and the memlock of the BPF maps it holds, each divided by N;
//! - one-record change: from just before an API PUT until a client polling every 100 µs gets the
//!   new address, answered by XDP: a reply whose DNS ID an AF_PACKET tap on the server veth did
//!   not see leave through the kernel's stack (XDP_TX passes no tap; see tap.rs).
//!
//! Writes target/bench-zone/results.json and summary.md; a run that is not a smoke run also
//! writes BENCHMARKS-zone.md at the repository root.

mod probe;
mod report;
mod tap;
mod zonegen;

use std::collections::VecDeque;
use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use serde::{Deserialize, Serialize};

use super::netbed::{self, CLI_V4, SRV_IF, SRV_V4, SRV_V6, cli_ns, srv_ns};
use super::proc::{self, Guard};
use super::results;
use crate::cmd;
use probe::{Counters, Memory, Prober};
use tap::{Capture, PollKey};

/// The aims.
pub const AIM_START_S: f64 = 10.0;
pub const AIM_BYTES_PER_NAME: f64 = 1024.0;
pub const AIM_CHANGE_MS: f64 = 5.0;

const API_PORT: u16 = 8053;
const METRICS_PORT: u16 = 9153;
const TOKEN: &str = "bench-zone-token";
/// The change poller's query spacing (the issue: every 100 µs).
const CHANGE_POLL: Duration = Duration::from_micros(100);
/// The start poller: one round (scrape, query, scrape) per this, each query waiting this long.
const START_POLL: Duration = Duration::from_millis(20);
/// The map-entries gauge counts as settled after this many equal readings in a row, this far apart.
const SETTLED_READINGS: usize = 5;
const SETTLE_POLL: Duration = Duration::from_millis(100);
const STOP_DEADLINE: Duration = Duration::from_secs(60);
/// After the first reply with the new address, how long to keep polling for one from XDP.
const XDP_AFTER_FIRST_NEW: Duration = Duration::from_secs(5);
/// The packet tap's thread stops by itself this long after the change's deadline at the latest.
const TAP_SLACK: Duration = Duration::from_secs(30);

#[derive(clap::Args, Debug, Clone)]
pub struct Options {
    /// Names in the zone.
    #[arg(long, default_value_t = 1_000_000)]
    names: usize,
    /// One-record changes to time (each on a different name).
    #[arg(long, default_value_t = 20)]
    repeat: usize,
    /// Give up on the start after this many seconds.
    #[arg(long, default_value_t = 900)]
    start_timeout: u64,
    /// Give up on one change after this many seconds (the sample then counts as failed).
    #[arg(long, default_value_t = 300)]
    change_timeout: u64,
    /// Stop the daemon when its RSS plus BPF map memory passes this many MiB (the machine is shared).
    #[arg(long, default_value_t = 12_288)]
    max_mem_mib: u64,
    /// `--answers-capacity` for the daemon: `auto` (the zone's names plus a quarter, at least the
    /// daemon's default: every name's record and its answers fit, none is left to the hot set), `none` (the daemon's default) or a number.
    /// Passed only while `dns-xdp serve --help` lists the flag.
    #[arg(long, default_value = "auto")]
    answers_capacity: String,
    /// Give the daemon a journal (API writes are fsynced before they are acknowledged).
    #[arg(long)]
    journal: bool,
    /// Use target/release/dns-xdp as it is instead of building first.
    #[arg(long)]
    no_build: bool,
    /// Do not write BENCHMARKS-zone.md.
    #[arg(long)]
    no_publish: bool,
    /// Results directory (default target/bench-zone).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Measure nothing: print and publish the summary of an earlier run's DIR/results.json.
    #[arg(long, value_name = "DIR")]
    report: Option<PathBuf>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ZoneResults {
    pub meta: Meta,
    pub start: Option<Start>,
    pub memory: Option<PerName>,
    /// The same after the changes: VmHWM then includes what each recompile needed.
    #[serde(default)]
    pub memory_after_changes: Option<PerName>,
    pub changes: Vec<Change>,
    pub change_summary: Option<ChangeSummary>,
    /// The daemon's log lines up to the end of the start, each with seconds since the spawn.
    pub log: Vec<(f64, String)>,
    /// Set when the run did not complete (start timeout, memory cap, daemon exit...).
    pub error: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Meta {
    pub started: String,
    pub command: String,
    pub names: usize,
    pub repeat: usize,
    pub zone_file_bytes: u64,
    pub zone_gen_s: f64,
    pub daemon_args: Vec<String>,
    pub dns_xdp: String,
    pub kernel: String,
    pub machine: Option<results::Machine>,
    pub loadavg_start: [f64; 3],
    pub loadavg_end: Option<[f64; 3]>,
    pub compilers_running_start: usize,
    pub notes: Vec<String>,
}

/// Seconds since the daemon was spawned.
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

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct PerName {
    pub at_s: f64,
    pub memory: Memory,
    pub rss_per_name: f64,
    pub bpf_per_name: f64,
    pub total_per_name: f64,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Change {
    pub name: String,
    pub new_a: String,
    pub api_status: Option<u16>,
    pub api_body: String,
    /// The moment just before the request, in seconds since the daemon was spawned (daemon.log's clock).
    #[serde(default)]
    pub put_at_s: Option<f64>,
    /// From just before the request until its response was read.
    pub api_ms: Option<f64>,
    /// From just before the request until the first reply with the new address (any path).
    pub first_new_ms: Option<f64>,
    /// From just before the request until the first reply with the new address that the packet
    /// tap on the server veth did not see leave through the stack: XDP's.
    pub xdp_ms: Option<f64>,
    /// Polls the daemon (not XDP) answered during the sample: distinct replies the tap saw leave.
    pub daemon_answered: u64,
    /// The same by the daemon's reply counter (/metrics before the PUT and after the last reply):
    /// a cross-check of the tap.
    #[serde(default)]
    pub daemon_answered_metrics: u64,
    /// Replies with the new address the daemon sent before XDP sent one.
    #[serde(default)]
    pub new_from_daemon: u64,
    pub polls_sent: u64,
    pub polls_answered: u64,
    pub error: Option<String>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct ChangeSummary {
    pub ok: usize,
    pub xdp_p50_ms: f64,
    pub xdp_max_ms: f64,
    pub first_new_p50_ms: f64,
    pub first_new_max_ms: f64,
    pub api_p50_ms: f64,
    pub api_max_ms: f64,
    /// Samples where the daemon answered some polls (its old or new data) before XDP served the change.
    pub with_daemon_answers: usize,
}

pub fn run(opts: &Options) -> Result<()> {
    // Names of its own, so it never deletes the namespaces of a `cargo xtask bench` beside it.
    netbed::use_namespace_suffix("-zone");
    let out = opts.out.clone().unwrap_or_else(|| cmd::repo_root().join("target/bench-zone"));
    // The daemon gets paths inside it on its command line: make them mean the same from anywhere.
    let out = std::path::absolute(&out).with_context(|| format!("resolving {}", out.display()))?;
    let (r, out) = match &opts.report {
        Some(dir) => {
            let json = dir.join("results.json");
            let text = std::fs::read_to_string(&json).with_context(|| format!("reading {}", json.display()))?;
            (serde_json::from_str(&text).with_context(|| format!("parsing {}", json.display()))?, dir.clone())
        }
        None => (measure(opts, &out)?, out),
    };
    let json = out.join("results.json");
    write_json(&r, &json)?;
    std::fs::write(out.join("summary.md"), report::markdown(&r))?;
    eprintln!("\n{}", report::terminal(&r));
    eprintln!("bench-zone: results in {}", json.display());
    if !opts.no_publish {
        let page = cmd::repo_root().join("BENCHMARKS-zone.md");
        let old = std::fs::read_to_string(&page).unwrap_or_default();
        std::fs::write(&page, report::publish(&r, &old))?;
        eprintln!("bench-zone: published BENCHMARKS-zone.md");
    }
    match &r.error {
        Some(e) => bail!("bench-zone did not complete: {e}"),
        None => Ok(()),
    }
}

fn write_json(r: &ZoneResults, path: &Path) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(r)?).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))
}

/// Everything up to the figures; an error inside the measurement lands in `error`, one before it
/// (build, bed) is returned.
fn measure(opts: &Options, out: &Path) -> Result<ZoneResults> {
    let _signals = proc::catch_stop_signals();
    if opts.repeat == 0 {
        bail!("--repeat must be at least 1");
    }
    if !opts.no_build {
        crate::build()?;
    }
    let dns_xdp = cmd::repo_root().join("target/release/dns-xdp");
    if !dns_xdp.is_file() {
        bail!("{} not found: run `cargo xtask build` (or drop --no-build)", dns_xdp.display());
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let _ = std::fs::remove_file(out.join("results.json"));
    let mut r = ZoneResults::default();
    r.meta.started = results::utc_stamp();
    r.meta.command = format!("cargo xtask {}", std::env::args().skip(1).collect::<Vec<_>>().join(" "));
    r.meta.names = opts.names;
    r.meta.repeat = opts.repeat;
    r.meta.machine = Some(results::machine());
    r.meta.loadavg_start = results::loadavg();
    r.meta.compilers_running_start = results::compilers_running();
    let versions = super::servers::versions(&dns_xdp);
    let version = |k: &str| versions.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()).unwrap_or_default();
    r.meta.dns_xdp = version("dns-xdp");
    r.meta.kernel = version("kernel");

    eprintln!("bench-zone: generating a zone of {} names", opts.names);
    let t = Instant::now();
    let zone = zonegen::write(out, opts.names)?;
    r.meta.zone_gen_s = t.elapsed().as_secs_f64();
    r.meta.zone_file_bytes = zone.bytes;
    let token = out.join("api-token");
    std::fs::write(&token, format!("{TOKEN}\n"))?;
    let args = daemon_args(opts, &dns_xdp, &zone.path, &token, out)?;
    r.meta.daemon_args = args.clone();
    r.meta.notes = notes(opts);

    let mut bed = netbed::Netbed::create(&dns_xdp)?;
    bed.ensure_xdp_pass()?;
    let outcome = serve_and_measure(&mut r, &dns_xdp, &args, out, opts);
    drop(bed); // namespaces, veths and every XDP program on them go here
    if let Err(e) = outcome {
        r.error = Some(format!("{e:#}"));
    }
    r.meta.loadavg_end = Some(results::loadavg());
    Ok(r)
}

fn daemon_args(opts: &Options, dns_xdp: &Path, zone: &Path, token: &Path, out: &Path) -> Result<Vec<String>> {
    let mut a: Vec<String> = ["serve", "--iface", SRV_IF, "--xdp-mode", "native", "--zone"].map(String::from).to_vec();
    a.push(zone.display().to_string());
    a.extend(["--listen".into(), format!("{SRV_V4}:53"), "--listen".into(), format!("[{SRV_V6}]:53")]);
    a.extend(["--metrics".into(), format!("{SRV_V4}:{METRICS_PORT}")]);
    a.extend(["--api".into(), format!("{SRV_V4}:{API_PORT}"), "--api-token-file".into(), token.display().to_string()]);
    if opts.journal {
        let dir = out.join("journal");
        let _ = std::fs::remove_dir_all(&dir);
        a.extend(["--journal".into(), dir.display().to_string()]);
    }
    let capacity = match opts.answers_capacity.as_str() {
        "none" => None,
        "auto" => Some((opts.names as u64 * 5 / 4).max(262_144)),
        n => Some(n.parse().with_context(|| format!("--answers-capacity {n:?}: auto, none or a number"))?),
    };
    if let Some(c) = capacity {
        // Black-box: a daemon whose maps need no capacity may drop the flag.
        let help = cmd::output(cmd::command(&dns_xdp.to_string_lossy()).args(["serve", "--help"]))?;
        if String::from_utf8_lossy(&help.stdout).contains("--answers-capacity") {
            a.extend(["--answers-capacity".into(), c.to_string()]);
        }
    }
    Ok(a)
}

fn notes(opts: &Options) -> Vec<String> {
    vec![
        "Test bed: the bench's server and client namespaces joined by one veth pair; dns-xdp serve with XDP native \
         on the server veth, a do-nothing XDP program and tx checksum offload off on the client veth (ARCHITECTURE.md \
         section 5). Client, daemon and other builds share the machine's cores."
            .into(),
        "Start: the daemon is spawned; every 20 ms the client scrapes /metrics, asks the zone's last A name, and \
         scrapes again. Done when the answer is right, XDP_TX moved and the daemon's own reply counter did not \
         (so XDP answered), and the summed dnsxdp_bpf_map_entries has settled (5 equal readings 100 ms apart); \
         installed = the later of the two moments."
            .into(),
        "Memory: VmRSS / VmHWM from /proc/PID/status, less the resident pages of BPF maps the daemon maps \
         (its hit index, /proc/PID/smaps `anon_inode:bpf-map`), which memlock counts; BPF: the sum of `memlock` \
         in /proc/PID/fdinfo of the daemon's bpf-map fds. Read once the start is done."
            .into(),
        format!(
            "Change: PUT /v1/zones/{}/rrsets/<name>/A with a new address (no other nodes, so 200 once served \
             locally{}); a client thread asks for the name every 100 µs, open loop, each query with its own DNS ID. \
             Times are taken when the client reads a reply. First new: the first reply with the new address, any path. \
             From XDP: the first reply with the new address whose ID an AF_PACKET tap on the server veth did not see \
             leave: the daemon's replies pass the kernel's packet taps on their way out (and reach the tap's queue \
             before the client), XDP_TX replies do not; a reply counts only once the tap has read every frame queued \
             before the client got it. Polls answered by the daemon: the replies the tap saw, checked against the \
             daemon's reply counter in /metrics (a sample fails if the tap saw fewer or dropped frames). Before the \
             changes the tap must see the reply to a query with a DNS COOKIE option (XDP passes all of those to the \
             daemon) and must not see XDP's reply to a plain query.",
            zonegen::ORIGIN.trim_end_matches('.'),
            if opts.journal { ", after the journal fsync" } else { "; no journal" }
        ),
    ]
}

/// Log lines of the daemon, each with seconds since the spawn (its own timestamps have 1 s steps).
type Log = Arc<Mutex<Vec<(f64, String)>>>;

fn serve_and_measure(r: &mut ZoneResults, dns_xdp: &Path, args: &[String], out: &Path, opts: &Options) -> Result<()> {
    netbed::detach_xdp(srv_ns(), SRV_IF);
    let mut c = proc::in_netns(srv_ns(), &dns_xdp.to_string_lossy());
    // publish=debug: the daemon logs each API update's install into the XDP maps, to set beside the
    // changes' put_at_s in daemon.log.
    c.args(args)
        .env("RUST_LOG", "info,dns_xdp::publish=debug,dns_xdp::api=debug,dns_xdp::store=debug,dns_xdp::update=debug,dns_xdp::loader=debug")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    eprintln!("bench-zone: starting {}", cmd::render(&c));
    let spawned = Instant::now();
    let mut daemon = Guard::spawn(c)?;
    let pid = daemon.pid().context("daemon pid")?;
    let log: Log = Arc::default();
    let reader = {
        let stderr = daemon.take_stderr().context("daemon stderr")?;
        let mut file = std::fs::File::create(out.join("daemon.log"))?;
        let log = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let at = spawned.elapsed().as_secs_f64();
                let _ = writeln!(file, "+{at:.3}s {line}");
                log.lock().expect("log lock").push((at, line));
            }
        })
    };
    let result = (|| -> Result<()> {
        let start = in_netns_client(|| start_figures(pid, spawned, opts))?;
        eprintln!("bench-zone: all answers installed {:.2} s after the spawn", start.installed_s);
        r.start = Some(start.clone());
        r.log = log.lock().expect("log lock").iter().filter(|(t, _)| *t <= start.installed_s + 1.0).cloned().collect();
        r.memory = Some(per_name(pid, spawned, opts.names));
        let probe_name = zonegen::name(zonegen::last_a(opts.names));
        in_netns_client(|| tap_self_check(&probe_name))?;
        eprintln!("bench-zone: packet tap self-check passed (it sees the daemon's replies, not XDP's)");
        let targets = zonegen::spread_a_names(opts.names, opts.repeat);
        for (k, &i) in targets.iter().enumerate() {
            proc::check_stop()?;
            if !probe::alive(pid) {
                bail!("the daemon exited during the changes (see daemon.log)");
            }
            // TEST-NET-2: never one of the zone's 10/8 addresses, so the new answer is unmistakable.
            let new_a = Ipv4Addr::new(198, 51, 100, (k % 254 + 1) as u8);
            let deadline = Duration::from_secs(opts.change_timeout);
            let change = in_netns_client(|| Ok(one_change(&zonegen::name(i), new_a, deadline, spawned)))?;
            eprintln!(
                "bench-zone: change {}/{}: {} -> {new_a}: PUT at +{:.3} s, API {} in {} ms, first new answer after {} ms, from XDP \
                 after {} ms; daemon answered {} of {} polls ({} by its counter, {} with the new address){}",
                k + 1,
                targets.len(),
                zonegen::name(i),
                change.put_at_s.unwrap_or(f64::NAN),
                change.api_status.map(|s| s.to_string()).unwrap_or("-".into()),
                fmt_ms(change.api_ms),
                fmt_ms(change.first_new_ms),
                fmt_ms(change.xdp_ms),
                change.daemon_answered,
                change.polls_sent,
                change.daemon_answered_metrics,
                change.new_from_daemon,
                change.error.as_ref().map(|e| format!(" ({e})")).unwrap_or_default()
            );
            r.changes.push(change);
            proc::sleep(Duration::from_millis(50));
        }
        r.change_summary = summarise(&r.changes);
        r.memory_after_changes = Some(per_name(pid, spawned, opts.names));
        Ok(())
    })();
    if result.is_err() {
        // What the daemon said is the best clue to what went wrong.
        r.log = log.lock().expect("log lock").clone();
        if r.memory.is_none() && probe::alive(pid) {
            r.memory = Some(per_name(pid, spawned, opts.names));
        }
    }
    daemon.stop(STOP_DEADLINE);
    let _ = reader.join();
    netbed::detach_xdp(srv_ns(), SRV_IF);
    result
}

fn per_name(pid: u32, spawned: Instant, names: usize) -> PerName {
    let m = probe::memory(pid);
    let n = names as f64;
    PerName {
        at_s: spawned.elapsed().as_secs_f64(),
        rss_per_name: m.rss_bytes as f64 / n,
        bpf_per_name: m.bpf_memlock_bytes as f64 / n,
        total_per_name: (m.rss_bytes + m.bpf_memlock_bytes) as f64 / n,
        memory: m,
    }
}

fn in_netns_client<T: Send>(f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    probe::in_netns(cli_ns(), f)
}

fn fmt_ms(x: Option<f64>) -> String {
    x.map(|v| format!("{v:.2}")).unwrap_or_else(|| "-".into())
}

fn srv(port: u16) -> SocketAddr {
    SocketAddr::new(SRV_V4.parse().expect("literal"), port)
}

fn cli_v4() -> Ipv4Addr {
    CLI_V4.parse().expect("literal")
}

/// The start figures; runs inside the client namespace.
fn start_figures(pid: u32, spawned: Instant, opts: &Options) -> Result<Start> {
    let metrics = srv(METRICS_PORT);
    let last = zonegen::last_a(opts.names);
    let (qname, want) = (zonegen::name(last), zonegen::addr(last));
    let mut prober = Prober::new(cli_v4(), srv(53))?;
    let timeout = Duration::from_secs(opts.start_timeout);
    let cap = opts.max_mem_mib * 1024 * 1024;
    let mut s = Start::default();
    // (seconds, summed entries) of every scrape: when the gauge reached its final value.
    let mut entries: Vec<(f64, u64)> = Vec::new();
    let mut rounds = 0u64;
    let at = || spawned.elapsed().as_secs_f64();
    loop {
        proc::check_stop()?;
        if !probe::alive(pid) {
            bail!("the daemon exited during the start (see daemon.log)");
        }
        if spawned.elapsed() > timeout {
            bail!("no XDP answer for {qname} within {timeout:?} of the spawn");
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
                    at()
                );
            }
        }
        let round_end = Instant::now() + START_POLL;
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
                && from_xdp(b, a)
            {
                s.last_name_xdp_s = answered_at;
                break;
            }
        }
        if let Some(left) = round_end.checked_duration_since(Instant::now()) {
            std::thread::sleep(left);
        }
    }
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

/// Between two scrapes around one query: XDP sent something and the daemon answered nothing.
fn from_xdp(before: Counters, after: Counters) -> bool {
    after.daemon_responses == before.daemon_responses && after.xdp_tx > before.xdp_tx
}

/// One timed change; runs inside the client namespace. Failures land in the sample's `error`.
fn one_change(name: &str, new_a: Ipv4Addr, deadline: Duration, spawned: Instant) -> Change {
    let mut ch = Change { name: name.to_owned(), new_a: new_a.to_string(), ..Change::default() };
    if let Err(e) = timed_change(&mut ch, name, new_a, deadline, spawned) {
        ch.error = Some(format!("{e:#}"));
    }
    ch
}

fn timed_change(ch: &mut Change, name: &str, new_a: Ipv4Addr, deadline: Duration, spawned: Instant) -> Result<()> {
    let metrics = srv(METRICS_PORT);
    let mut prober = Prober::new(cli_v4(), srv(53))?;
    // The name answers from XDP before the change: the sample starts from the served state.
    let before = prober.ask_a(name, Duration::from_secs(1))?.context("no answer for the name before the change")?;
    if before.a.contains(&new_a) {
        bail!("{name} already holds {new_a}");
    }
    // The tap is bound before the first scrape, so it covers every reply the counters below count.
    let tap = Capture::start(srv_ns(), SRV_IF, deadline + TAP_SLACK)?;
    let c0 = probe::scrape(metrics)?;
    let zone = zonegen::ORIGIN.trim_end_matches('.');
    let relative = name.strip_suffix(zonegen::ORIGIN).unwrap_or(name).trim_end_matches('.');
    let path = format!("/v1/zones/{zone}/rrsets/{relative}/A");
    let body = format!("{{\"ttl\": 300, \"rdata\": [\"{new_a}\"]}}");
    // The prober's ports during the sample (a new one each 65,535 IDs): the tap's replies to count.
    let mut ports = vec![prober.local_port()];
    // The PUT's status once it is back (1: no response), so a rejected write ends the polling.
    let put_status = AtomicU16::new(0);
    let t0 = Instant::now();
    ch.put_at_s = Some(t0.duration_since(spawned).as_secs_f64());
    let (api, first_new, xdp_at) = std::thread::scope(|s| {
        let put = s.spawn(|| {
            let res = probe::http(srv(API_PORT), "PUT", &path, Some(TOKEN), &body);
            let took = t0.elapsed();
            put_status.store(res.as_ref().map_or(1, |(st, _)| *st), Ordering::SeqCst);
            (res, took)
        });
        // Open loop: a query every CHANGE_POLL whatever came back; replies are matched by content.
        let mut next = t0;
        let mut first_new: Option<Duration> = None;
        let mut xdp_at: Option<Duration> = None;
        // Replies with the new address, in arrival order, whose path the tap cannot tell yet.
        let mut pending: VecDeque<(PollKey, Instant)> = VecDeque::new();
        while t0.elapsed() < deadline && !proc::stopping() {
            if !matches!(put_status.load(Ordering::SeqCst), 0 | 200) {
                break;
            }
            if first_new.is_some_and(|f| t0.elapsed() > f + XDP_AFTER_FIRST_NEW) {
                break;
            }
            if Instant::now() >= next {
                if prober.send_a(name).is_ok() {
                    ch.polls_sent += 1;
                    let port = prober.local_port();
                    if !ports.contains(&port) {
                        ports.push(port);
                    }
                }
                next += CHANGE_POLL;
            }
            let wait = next.saturating_duration_since(Instant::now());
            if let Some(r) = prober.recv(wait) {
                let at = Instant::now();
                ch.polls_answered += 1;
                if r.a.contains(&new_a) {
                    first_new.get_or_insert(at - t0);
                    pending.push_back(((prober.local_port(), r.id), at));
                }
            }
            while let Some(&(key, at)) = pending.front() {
                match tap.verdict(key, at) {
                    Some(true) => {
                        ch.new_from_daemon += 1;
                        pending.pop_front();
                    }
                    Some(false) => {
                        xdp_at = Some(at - t0);
                        break;
                    }
                    None => break,
                }
            }
            if xdp_at.is_some() {
                break;
            }
        }
        (put.join().expect("PUT thread"), first_new, xdp_at)
    });
    let (res, api_took) = api;
    let (status, resp) = res.context("PUT")?;
    ch.api_status = Some(status);
    ch.api_ms = Some(api_took.as_secs_f64() * 1e3);
    ch.api_body = resp.chars().take(300).collect();
    if status != 200 {
        bail!("PUT {path}: {status} {}", ch.api_body);
    }
    let first_new = first_new.with_context(|| format!("no reply with {new_a} within {deadline:?}"))?;
    ch.first_new_ms = Some(first_new.as_secs_f64() * 1e3);
    // The replies still in flight, so both counts below cover every poll (the figures are taken).
    while prober.recv(Duration::from_millis(20)).is_some() {
        ch.polls_answered += 1;
    }
    let c1 = probe::scrape(metrics)?;
    let seen = tap.finish()?;
    ch.daemon_answered = seen.replies.iter().filter(|(port, _)| ports.contains(port)).count() as u64;
    ch.daemon_answered_metrics = c1.daemon_responses.saturating_sub(c0.daemon_responses);
    if seen.frames == 0 {
        bail!(
            "the packet tap on {SRV_IF} saw no frame at all (not even the /metrics responses) while the daemon's reply \
             counter moved by {}: the tap is broken, the sample cannot be attributed",
            ch.daemon_answered_metrics
        );
    }
    if seen.dropped > 0 || seen.timed_out {
        bail!(
            "the packet tap on {SRV_IF} dropped {} frames{}: an unseen reply is no proof of XDP",
            seen.dropped,
            if seen.timed_out { " and stopped at its time limit" } else { "" }
        );
    }
    if ch.daemon_answered < ch.daemon_answered_metrics {
        bail!(
            "the daemon's counter says it sent {} replies, the packet tap on {SRV_IF} saw {} of ours leave ({} frames in \
             all): the tap misses replies, so an unseen one is no proof of XDP",
            ch.daemon_answered_metrics,
            ch.daemon_answered,
            seen.frames
        );
    }
    let xdp_at = xdp_at.with_context(|| {
        format!(
            "the new address never came from XDP within {XDP_AFTER_FIRST_NEW:?} of the first new answer ({} replies with \
             it left through the daemon)",
            ch.new_from_daemon
        )
    })?;
    ch.xdp_ms = Some(xdp_at.as_secs_f64() * 1e3);
    Ok(())
}

/// Once before the changes: the tap on the server veth must see the daemon's reply to a query with
/// a COOKIE option (the XDP program passes every such query to the daemon), and must not see XDP's
/// reply to a plain query for the same name. Runs inside the client namespace.
fn tap_self_check(name: &str) -> Result<()> {
    let metrics = srv(METRICS_PORT);
    let mut prober = Prober::new(cli_v4(), srv(53))?;
    let tap = Capture::start(srv_ns(), SRV_IF, Duration::from_secs(60))?;
    let wait = Duration::from_secs(1);
    let verdict = |tap: &Capture, key: PollKey, at: Instant| {
        let end = Instant::now() + wait;
        loop {
            match tap.verdict(key, at) {
                Some(v) => return Some(v),
                None if Instant::now() > end => return None,
                None => std::thread::sleep(Duration::from_micros(200)),
            }
        }
    };
    let c0 = probe::scrape(metrics)?;
    let id = prober.send_a_with_cookie(name)?;
    prober
        .reply_to(id, wait)
        .with_context(|| format!("tap self-check: no reply to a query for {name} with a COOKIE"))?;
    let cookie_seen = verdict(&tap, (prober.local_port(), id), Instant::now());
    let c1 = probe::scrape(metrics)?;
    let id = prober.send_a(name)?;
    prober.reply_to(id, wait).with_context(|| format!("tap self-check: no reply to a plain query for {name}"))?;
    let plain_seen = verdict(&tap, (prober.local_port(), id), Instant::now());
    let c2 = probe::scrape(metrics)?;
    let seen = tap.finish()?;
    if c1.daemon_responses == c0.daemon_responses {
        bail!(
            "tap self-check: the daemon's reply counter did not move for a query with a COOKIE option (XDP answered it?)"
        );
    }
    if cookie_seen != Some(true) {
        bail!(
            "tap self-check: the daemon answered a query with a DNS COOKIE option (XDP passes all of those to it), but an \
             AF_PACKET tap on {SRV_IF} in {} did not see the reply leave ({} frames seen): it cannot tell the daemon's \
             replies from XDP's",
            srv_ns(),
            seen.frames
        );
    }
    if from_xdp(c1, c2) && plain_seen != Some(false) {
        bail!(
            "tap self-check: XDP answered a plain query for {name} (the daemon's reply counter did not move), yet the tap \
             on {SRV_IF} saw the reply leave: XDP_TX replies are visible to it here, so it cannot tell the paths apart"
        );
    }
    if seen.dropped > 0 {
        bail!("tap self-check: the tap dropped {} frames", seen.dropped);
    }
    Ok(())
}

fn summarise(changes: &[Change]) -> Option<ChangeSummary> {
    let pick = |get: fn(&Change) -> Option<f64>| -> Vec<f64> {
        let mut v: Vec<f64> = changes.iter().filter(|c| c.error.is_none()).filter_map(get).collect();
        v.sort_by(f64::total_cmp);
        v
    };
    let xdp = pick(|c| c.xdp_ms);
    if xdp.is_empty() {
        return None;
    }
    let first = pick(|c| c.first_new_ms);
    let api = pick(|c| c.api_ms);
    let q = |v: &[f64], p: f64| if v.is_empty() { f64::NAN } else { super::load::quantile(v, p) };
    Some(ChangeSummary {
        ok: xdp.len(),
        xdp_p50_ms: q(&xdp, 0.5),
        xdp_max_ms: q(&xdp, 1.0),
        first_new_p50_ms: q(&first, 0.5),
        first_new_max_ms: q(&first, 1.0),
        api_p50_ms: q(&api, 0.5),
        api_max_ms: q(&api, 1.0),
        with_daemon_answers: changes.iter().filter(|c| c.daemon_answered > 0).count(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The whole command, small: 10,000 names, 3 changes, namespaces of its own. Runs under
    /// `cargo xtask test` (root, DNS_XDP_BIN set); asserts that figures were produced and parse,
    /// never how fast anything was.
    #[test]
    fn bench_zone_smoke_run_produces_figures() {
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        if !root || std::env::var_os("DNS_XDP_BIN").is_none() {
            eprintln!("skipped: needs root and DNS_XDP_BIN (run it through `cargo xtask test`)");
            return;
        }
        let _serial = super::super::tests::SMOKE_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        netbed::use_namespace_suffix("-smoke");
        let out = std::env::temp_dir().join(format!("dnsxdp-bench-zone-smoke-{}", std::process::id()));
        let opts = Options {
            names: 10_000,
            repeat: 3,
            start_timeout: 60,
            change_timeout: 60,
            max_mem_mib: 4096,
            answers_capacity: "auto".into(),
            journal: false,
            no_build: true,
            no_publish: true,
            out: Some(out.clone()),
            report: None,
        };
        run(&opts).unwrap_or_else(|e| panic!("cargo xtask bench-zone failed: {e:#}"));
        let text = std::fs::read_to_string(out.join("results.json")).unwrap();
        let r: ZoneResults = serde_json::from_str(&text).unwrap();
        assert!(r.error.is_none(), "{:?}", r.error);
        let start = r.start.expect("start figures");
        assert!(start.installed_s > 0.0 && start.map_entries.is_some_and(|n| n > 0), "{start:?}");
        let m = r.memory.expect("memory figures");
        assert!(m.memory.rss_bytes > 0 && m.memory.bpf_memlock_bytes > 0, "{m:?}");
        assert_eq!(r.changes.len(), 3);
        assert!(r.changes.iter().all(|c| c.api_status == Some(200) && c.xdp_ms.is_some()), "{:?}", r.changes);
        assert!(r.change_summary.is_some_and(|s| s.ok == 3));
        assert!(std::fs::read_to_string(out.join("summary.md")).unwrap().contains("names"));
        assert!(!Path::new("/run/netns").join(srv_ns()).exists(), "namespaces removed");
        let _ = std::fs::remove_dir_all(&out);
    }
}
