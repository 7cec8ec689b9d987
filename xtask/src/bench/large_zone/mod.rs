//! `cargo xtask bench-zone`: the real `dns-xdp` binary serving one large zone (default 1,000,000
//! names) with XDP attached in native mode on the bench's veth, measured black-box through its CLI,
//! DNS answers, control API, /metrics and /proc, so the harness outlives changes to the map layout:
//! - start: from spawning the process until XDP answers the zone's last name and the daemon's
//!   `dnsxdp_bpf_map_entries` stopped moving;
//! - memory per name: VmRSS, and the memlock of the BPF maps it holds, each divided by N;
//! - one-record change: from just before an API PUT until a client polling every 100 µs gets the
//!   new address, answered by XDP: a reply whose DNS ID an AF_PACKET tap on the server veth did
//!   not see leave through the kernel's stack (XDP_TX passes no tap; see tap.rs);
//! - zone-file reload: the same poller, from a SIGHUP after the zone file was rewritten with one
//!   record changed (reload.rs).
//!
//! knotd and NSD then serve the same zone in the same run and are measured alike (refs.rs), for
//! the ratios. Writes target/bench-zone/results.json and summary.md; a run that is not a smoke
//! run also writes BENCHMARKS-zone.md at the repository root.

mod change;
mod compare;
mod probe;
mod refs;
mod reload;
mod report;
mod start;
mod tap;
mod zonegen;

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use serde::{Deserialize, Serialize};

use super::netbed::{self, CLI_V4, SRV_IF, SRV_V4, SRV_V6, cli_ns, srv_ns};
use super::proc::{self, Guard};
use super::results;
use crate::cmd;
use change::{Change, ChangeSummary};
use probe::Memory;
use refs::{Ref, Reference};
use reload::{Reload, ReloadSummary, Samples, Trigger};
use start::{Start, per_name, settled_memory, start_figures};

/// The aims.
pub const AIM_START_S: f64 = 10.0;
pub const AIM_BYTES_PER_NAME: f64 = 1024.0;
pub const AIM_CHANGE_MS: f64 = 5.0;
/// The aims against knotd in the same run: start and memory per name at most this many times
/// knotd's, and a reload served sooner than knotd serves its `knotc zone-reload`.
pub const AIM_VS_KNOTD_START: f64 = 1.5;
pub const AIM_VS_KNOTD_MEMORY: f64 = 1.5;

const API_PORT: u16 = 8053;
const METRICS_PORT: u16 = 9153;
const TOKEN: &str = "bench-zone-token";
const STOP_DEADLINE: Duration = Duration::from_secs(60);

#[derive(clap::Args, Debug, Clone)]
pub struct Options {
    /// Names in the zone.
    #[arg(long, default_value_t = 1_000_000)]
    names: usize,
    /// One-record changes through the API to time (each on a different name).
    #[arg(long, default_value_t = 20)]
    repeat: usize,
    /// Zone-file reloads with one record changed to time, on each server (SIGHUP for dns-xdp,
    /// `knotc zone-reload`, `nsd-control reload`).
    #[arg(long, default_value_t = 3)]
    reloads: usize,
    /// Reference servers that serve the same zone after dns-xdp, for the ratios.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "knotd,nsd")]
    refs: Vec<Ref>,
    /// Run no reference server.
    #[arg(long)]
    no_refs: bool,
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
    /// Zone-file reloads (SIGHUP), before the API changes.
    #[serde(default)]
    pub reloads: Vec<Reload>,
    #[serde(default)]
    pub reload_summary: Option<ReloadSummary>,
    /// knotd and NSD on the same zone, after dns-xdp.
    #[serde(default)]
    pub references: Vec<Reference>,
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
    #[serde(default)]
    pub reloads: usize,
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

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct PerName {
    pub at_s: f64,
    /// Whether the memory had settled when read (None: read once, not waited for).
    #[serde(default)]
    pub settled: Option<bool>,
    pub memory: Memory,
    pub rss_per_name: f64,
    pub bpf_per_name: f64,
    pub total_per_name: f64,
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
    let refs = r.references.iter().filter_map(|f| Some(format!("{}: {}", f.server, f.error.as_ref()?)));
    let failed: Vec<String> = r.error.iter().cloned().chain(refs).collect();
    if !failed.is_empty() {
        bail!("bench-zone did not complete: {}", failed.join("; "));
    }
    Ok(())
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
    r.meta.reloads = opts.reloads;
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
    // Each server serves, and its reloads rewrite, a copy of its own (refs.rs copies theirs).
    let own = out.join("dns-xdp");
    std::fs::create_dir_all(&own).with_context(|| format!("creating {}", own.display()))?;
    let file = own.join(zone.path.file_name().context("zone file name")?);
    std::fs::copy(&zone.path, &file).with_context(|| format!("copying the zone to {}", file.display()))?;
    let token = out.join("api-token");
    std::fs::write(&token, format!("{TOKEN}\n"))?;
    let args = daemon_args(opts, &dns_xdp, &file, &token, out)?;
    r.meta.daemon_args = args.clone();
    r.meta.notes = notes(opts);

    let mut bed = netbed::Netbed::create(&dns_xdp)?;
    bed.ensure_xdp_pass()?;
    let outcome = serve_and_measure(&mut r, &dns_xdp, &args, &file, out, opts);
    if let Err(e) = outcome {
        r.error = Some(format!("{e:#}"));
    }
    let refs: &[Ref] = if opts.no_refs { &[] } else { &opts.refs };
    let (_, reload_targets) = targets(opts);
    let ctx = refs::Context { opts, out, zone: &zone.path, reload_targets: &reload_targets, versions: &versions };
    for &which in refs {
        if proc::stopping() {
            break;
        }
        r.references.push(refs::measure(which, &ctx));
    }
    drop(bed); // namespaces, veths and every XDP program on them go here
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
         in /proc/PID/fdinfo of the daemon's bpf-map fds. Read once the start is done and RSS + BPF held within \
         1% over 5 readings 100 ms apart, for every server. Summed over the process and its descendants, with Pss \
         from /proc/PID/smaps_rollup (NSD forks: the RSS sum counts the pages its processes share once per process, \
         PSS once in all)."
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
        "Reload: the server's own copy of the zone file is rewritten (beside it, then renamed over) with one more \
         name moved to a new address and the SOA serial bumped, then dns-xdp gets SIGHUP, knotd `knotc zone-reload`, \
         NSD `nsd-control reload` (both on a unix control socket; both return before the reload is done); the change \
         poller times the new answer (dns-xdp: from XDP, told apart as for the changes). dns-xdp's reloads come \
         before its API changes, after which it serves a zone newer than its file."
            .into(),
        "knotd and NSD: after dns-xdp, one at a time, on the same zone, namespaces and client, with the configs of \
         `cargo xtask bench` (knotd: its defaults, one UDP worker per core; NSD: server-count 2, RRL off). Start: \
         spawn to the first right answer for the zone's last name, asked every 20 ms."
            .into(),
    ]
}

/// Log lines of the daemon, each with seconds since the spawn (its own timestamps have 1 s steps).
type Log = Arc<Mutex<Vec<(f64, String)>>>;

/// The names the API changes and the reloads move, each sample on a name of its own.
fn targets(opts: &Options) -> (Vec<usize>, Vec<usize>) {
    let changes = zonegen::spread_a_names(opts.names, opts.repeat, &[]);
    let reloads = zonegen::spread_a_names(opts.names, opts.reloads, &changes);
    (changes, reloads)
}

/// dns-xdp serving `file` (its own copy of the zone) with `args`: start, memory, the SIGHUP
/// reloads, then the API changes (after them the served zone is newer than any file: a reload
/// would keep it, see the daemon's `reload`).
fn serve_and_measure(
    r: &mut ZoneResults,
    dns_xdp: &Path,
    args: &[String],
    file: &Path,
    out: &Path,
    opts: &Options,
) -> Result<()> {
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
        r.memory = Some(settled_memory(pid, spawned, opts.names)?);
        let probe_name = zonegen::name(zonegen::last_a(opts.names));
        in_netns_client(|| change::tap_self_check(&probe_name, srv(METRICS_PORT)))?;
        eprintln!("bench-zone: packet tap self-check passed (it sees the daemon's replies, not XDP's)");
        let (targets, reload_targets) = targets(opts);
        let deadline = Duration::from_secs(opts.change_timeout);
        let samples = Samples {
            server: "dns-xdp",
            pid,
            spawned,
            file,
            names: opts.names,
            targets: &reload_targets,
            deadline,
            metrics: Some(srv(METRICS_PORT)),
        };
        samples.run(&Trigger::Sighup(pid), &mut r.reloads)?;
        r.reload_summary = reload::summarise(&r.reloads, true);
        for (k, &i) in targets.iter().enumerate() {
            proc::check_stop()?;
            if !probe::alive(pid) {
                bail!("the daemon exited during the changes (see daemon.log)");
            }
            // TEST-NET-2: never one of the zone's 10/8 addresses, so the new answer is unmistakable.
            let new_a = Ipv4Addr::new(198, 51, 100, (k % 254 + 1) as u8);
            let change = in_netns_client(|| Ok(change::api_change(&zonegen::name(i), new_a, deadline, spawned)))?;
            eprintln!(
                "bench-zone: change {}/{}: {} -> {new_a}: PUT at +{:.3} s, API {} in {} ms, {}{}",
                k + 1,
                targets.len(),
                zonegen::name(i),
                change.put_at_s.unwrap_or(f64::NAN),
                change.api_status.map(|s| s.to_string()).unwrap_or("-".into()),
                fmt_ms(change.api_ms),
                change.seen.progress(true),
                change.error.as_ref().map(|e| format!(" ({e})")).unwrap_or_default()
            );
            r.changes.push(change);
            proc::sleep(Duration::from_millis(50));
        }
        r.change_summary = change::summarise_changes(&r.changes);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The whole command, small: 10,000 names, 3 changes, 2 reloads on dns-xdp, knotd and NSD,
    /// namespaces of its own. Runs under
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
            reloads: 2,
            refs: vec![Ref::Knotd, Ref::Nsd],
            no_refs: false,
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
        assert!(r.changes.iter().all(|c| c.api_status == Some(200) && c.seen.xdp_ms.is_some()), "{:?}", r.changes);
        assert!(r.change_summary.is_some_and(|s| s.ok == 3));
        assert!(r.reload_summary.is_some_and(|s| s.ok == 2), "{:?}", r.reloads);
        assert_eq!(r.references.iter().map(|f| f.server.as_str()).collect::<Vec<_>>(), ["knotd", "nsd"]);
        for f in &r.references {
            assert!(f.error.is_none(), "{}: {:?}", f.server, f.error);
            assert!(f.start.as_ref().is_some_and(|s| s.last_name_s > 0.0), "{f:?}");
            assert!(f.memory.as_ref().is_some_and(|m| m.memory.rss_bytes > 0), "{f:?}");
            assert!(f.reload_summary.as_ref().is_some_and(|s| s.ok == 2), "{:?}", f.reloads);
        }
        let md = std::fs::read_to_string(out.join("summary.md")).unwrap();
        assert!(md.contains("names") && md.contains("| dns-xdp / knotd | dns-xdp / nsd |"), "{md}");
        assert!(!Path::new("/run/netns").join(srv_ns()).exists(), "namespaces removed");
        let _ = std::fs::remove_dir_all(&out);
    }
}
