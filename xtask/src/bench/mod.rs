//! `cargo xtask bench`: dns-xdp side by side with Knot DNS and NSD on one machine.
//!
//! Two network namespaces joined by a veth pair (netbed.rs), a generated 10,000-name zone (zone.rs), each
//! server in turn (servers.rs) under dnsperf and our own xdpgen (xdpgen/) over IPv4 and IPv6 (load.rs), and
//! kxdpgun and knotd's AF_XDP mode where the kernel still runs them (probe.rs), servers interleaved
//! across repetitions so slow drifts in machine load hit all of them alike. Every figure lands in
//! `target/bench/<UTC stamp>/results.json` as soon as it is measured (results.rs); the summary
//! (report.rs) and PNG plots (plot.rs) are drawn from that file, and a full run publishes them to
//! BENCHMARKS.md and benchmarks/*.png. Later suites (propagation, large zones) add loads and servers here.

pub mod large_zone;
mod load;
mod netbed;
mod plot;
mod probe;
pub(crate) mod proc;
mod report;
mod results;
mod servers;
mod stats;
pub mod xdpgen;
mod xdpstats;
mod zone;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use crate::cmd;
use load::{LOADS, Load, Params, QueryMix, Tool};
use results::{Meta, Results, Run};
use servers::Server;

/// Settle time after a server is ready and between loads, so one load's tail does not bleed into the next.
const SETTLE: Duration = Duration::from_millis(500);
/// The ceiling load whose replies/s the fixed-rate xdpgen loads take shares of.
const CEILING_LOAD: &str = "xdpgen-v4";
/// The share's base when the ceiling has not run (not chosen, or failed): about what it measured here.
const CEILING_FALLBACK_PER_S: f64 = 400_000.0;

#[derive(clap::Args, Debug)]
pub struct Options {
    /// Smoke mode (1 repetition, 1 s per load, under 3 minutes); does not touch BENCHMARKS.md unless --publish.
    #[arg(long)]
    quick: bool,
    /// Repetitions (servers interleaved in each); default 3, or 1 with --quick.
    #[arg(long)]
    reps: Option<usize>,
    /// Seconds per load; default 4, or 1 with --quick.
    #[arg(long)]
    duration: Option<u64>,
    /// Servers to run (comma-separated); default all.
    #[arg(long, value_enum, value_delimiter = ',')]
    servers: Vec<Server>,
    /// Loads to run, by id (comma-separated, e.g. dnsperf-max-v4,xdpgen-v4); default all.
    #[arg(long, value_delimiter = ',')]
    loads: Vec<String>,
    /// Fixed rate of the latency loads, queries/s.
    #[arg(long, default_value_t = 20_000)]
    latency_qps: u32,
    /// xdpgen's sending threads; default one per core (on a veth each thread's CPU also runs the XDP
    /// programs' work, so fewer threads leave cores idle).
    #[arg(long)]
    xdpgen_threads: Option<u16>,
    /// Rate kxdpgun offers, queries/s (above what the veth path carries), where the kernel runs it.
    #[arg(long, default_value_t = 2_000_000)]
    kxdpgun_qps: u32,
    /// Ask only the first N of the zone's names in the hit queries (default: all). A set small enough
    /// to stay in the CPU caches shows what the lookups' memory costs under load; published runs ask all.
    #[arg(long, value_name = "N")]
    hit_names: Option<usize>,
    /// Use target/release/dns-xdp as it is instead of building first.
    #[arg(long)]
    no_build: bool,
    /// Write BENCHMARKS.md and benchmarks/*.png from this run (default for full runs, not for --quick or
    /// --hit-names).
    #[arg(long, conflicts_with = "no_publish")]
    publish: bool,
    /// Do not write BENCHMARKS.md, only target/bench/<stamp>/.
    #[arg(long)]
    no_publish: bool,
    /// Measure nothing: redraw summary and plots from an existing target/bench/<stamp> directory.
    #[arg(long, value_name = "DIR")]
    report: Option<PathBuf>,
    /// Write results here instead of target/bench/<UTC stamp>/ (e.g. for a smoke test).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Measurement time budget in seconds: no server run starts that would end past it. Default 810
    /// (a full run stays under 15 minutes with the build and setup), or 150 with --quick.
    #[arg(long, value_name = "SECS")]
    budget: Option<u64>,
}

pub fn run(opts: &Options) -> Result<()> {
    // A run asking fewer names is a diagnosis, not the published figures.
    let diagnosis = opts.hit_names.is_some_and(|n| n < zone::NAMES);
    let publish = opts.publish || !(opts.quick || opts.no_publish || diagnosis);
    if let Some(dir) = &opts.report {
        let r = Results::read(&dir.join("results.json"))?;
        // Redrawing a diagnosis run publishes only when asked to.
        let diagnosis = r.meta.params.hit_names < zone::NAMES;
        return render(&r, dir, opts.publish || (publish && !diagnosis));
    }
    let loads: Vec<Load> = if opts.loads.is_empty() {
        LOADS.to_vec()
    } else {
        opts.loads
            .iter()
            .map(|id| load::load_by_id(id).with_context(|| format!("unknown load `{id}`; known: {}", load_ids())))
            .collect::<Result<_>>()?
    };
    let mut servers = if opts.servers.is_empty() { Server::ALL.to_vec() } else { opts.servers.clone() };
    // The ceiling has nothing to run without an xdpgen or kxdpgun load.
    servers.retain(|s| loads.iter().any(|l| s.runs(l)));
    if servers.is_empty() {
        bail!("none of the chosen servers runs any of the chosen loads");
    }
    let reps = opts.reps.unwrap_or(if opts.quick { 1 } else { 3 }).max(1);
    let hit_names = opts.hit_names.unwrap_or(zone::NAMES);
    if !(1..=zone::NAMES).contains(&hit_names) {
        bail!("--hit-names {hit_names}: the zone has {} names, ask 1 to {} of them", zone::NAMES, zone::NAMES);
    }
    let params = Params {
        duration_s: opts.duration.unwrap_or(if opts.quick { 1 } else { 4 }).max(1),
        dnsperf_clients: 4,
        dnsperf_outstanding: 200,
        latency_qps: opts.latency_qps,
        kxdpgun_qps: opts.kxdpgun_qps,
        xdpgen_sample_mask: xdpgen::DEFAULT_SAMPLE_MASK,
        xdpgen_threads: opts
            .xdpgen_threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get() as u16))
            .max(1),
        hit_names,
    };

    let _signals = proc::catch_stop_signals();
    ensure_tools()?;
    if !opts.no_build {
        crate::build()?;
    }
    let dns_xdp = cmd::repo_root().join("target/release/dns-xdp");
    if !dns_xdp.is_file() {
        bail!("{} not found: run `cargo xtask build` (or drop --no-build)", dns_xdp.display());
    }

    let started = results::utc_stamp();
    let out = opts.out.clone().unwrap_or_else(|| cmd::repo_root().join("target/bench").join(&started));
    let budget = Duration::from_secs(opts.budget.unwrap_or(if opts.quick { 150 } else { 810 }));
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let files = zone::write(&out, hit_names)?;
    let mut r = Results {
        meta: Meta {
            started: started.clone(),
            command: format!("cargo xtask {}", std::env::args().skip(1).collect::<Vec<_>>().join(" ")),
            quick: opts.quick,
            reps,
            params: params.clone(),
            machine: results::machine(),
            versions: servers::versions(&dns_xdp),
            loadavg_start: results::loadavg(),
            loadavg_end: None,
            wall_time_s: None,
            notes: notes(hit_names, params.xdpgen_threads),
            unavailable: Vec::new(),
        },
        runs: Vec::new(),
        derived: Vec::new(),
    };
    let json = out.join("results.json");
    eprintln!("bench: writing {}", json.display());
    let clock = Instant::now();

    let measured = {
        let stats = xdpstats::BpfStats::enable();
        if !stats.enabled() {
            r.meta.notes.push("bpf_stats could not be enabled: no XDP ns/packet figures".into());
        }
        let mut bed = netbed::Netbed::create(&dns_xdp)?;
        // What the kernel refuses is reported and left out; the rest of the suite goes on.
        let tools: Vec<Tool> = loads.iter().map(|l| l.tool).collect();
        r.meta.unavailable = probe::run(&mut bed, &servers, &tools, &files, &out);
        let refused = |what: &str| r.meta.unavailable.iter().any(|u| u.what == what);
        let servers: Vec<Server> = servers.iter().copied().filter(|s| !refused(s.name())).collect();
        let loads: Vec<Load> = loads.iter().copied().filter(|l| !refused(l.id)).collect();
        r.write(&json)?;
        let plan = Plan { servers: &servers, loads: &loads, files: &files, dns_xdp: &dns_xdp, out: &out, json: &json };
        measure(&mut r, &mut bed, &plan, clock, budget)
        // bed, then stats, drop here: namespaces (and every XDP program on them) go, bpf_stats is restored.
    };

    r.derived = report::derived_ratios(&r);
    r.meta.loadavg_end = Some(results::loadavg());
    r.meta.wall_time_s = Some(clock.elapsed().as_secs_f64());
    r.write(&json)?;
    match measured {
        Ok(()) => render(&r, &out, publish),
        Err(e) => {
            // Keep what was measured readable, but never publish a partial run.
            let _ = render(&r, &out, false);
            Err(e)
        }
    }
}

/// What one suite run measures, and where it writes.
struct Plan<'a> {
    servers: &'a [Server],
    loads: &'a [Load],
    files: &'a zone::Files,
    dns_xdp: &'a Path,
    out: &'a Path,
    json: &'a Path,
}

fn measure(r: &mut Results, bed: &mut netbed::Netbed, plan: &Plan, clock: Instant, budget: Duration) -> Result<()> {
    let Plan { servers, loads, files, dns_xdp, out, json } = *plan;
    let reps = r.meta.reps;
    let params = r.meta.params.clone();
    // The longest server run so far: a run that would end past the budget does not start.
    let mut longest = Duration::ZERO;
    // The ceiling's xdpgen-v4 replies/s, latest first: the fixed-rate xdpgen loads offer shares of it.
    let mut ceiling_per_s = CEILING_FALLBACK_PER_S;
    let servers_rotating: Vec<Server> = servers.iter().copied().filter(|&s| s != Server::XdpTxCeiling).collect();
    for rep in 0..reps {
        // Rotate the order each repetition: no server always runs first, right after zone generation. The
        // ceiling goes first, so the fixed-rate loads of this repetition know it.
        let n = servers_rotating.len();
        let order: Vec<Server> = servers
            .iter()
            .copied()
            .filter(|&s| s == Server::XdpTxCeiling)
            .chain((0..n).map(|i| servers_rotating[(i + rep) % n]))
            .collect();
        for server in order {
            proc::check_stop()?;
            if clock.elapsed() + longest > budget {
                let note = format!(
                    "stopped at repetition {} before {}: the next server run would end past the {budget:?} budget",
                    rep + 1,
                    server.name()
                );
                eprintln!("bench: {note}");
                r.meta.notes.push(note);
                return Ok(());
            }
            let run_start = Instant::now();
            eprintln!("bench: rep {}/{reps}: {}", rep + 1, server.name());
            let outcome = (|| -> Result<()> {
                bed.ensure_xdp_pass()?;
                let dir = servers::run_dir(out, rep, server);
                let mut running = servers::start(server, dns_xdp, &files.zone, &dir)?;
                proc::sleep(SETTLE);
                for &l in loads.iter().filter(|l| server.runs(l)) {
                    proc::check_stop()?;
                    let run = one_load(rep, server, l, &params, files, bed, dns_xdp, ceiling_per_s);
                    if server == Server::XdpTxCeiling
                        && l.id == CEILING_LOAD
                        && let Some(x) = run.figures.as_ref().and_then(|f| f.replies_per_s)
                    {
                        ceiling_per_s = x;
                    }
                    // A load cut short by Ctrl-C is no result.
                    proc::check_stop()?;
                    match (&run.figures, &run.error) {
                        (Some(f), _) => eprintln!(
                            "bench:   {:<20} {:>10} replies/s{}",
                            l.id,
                            f.replies_per_s.map(|x| format!("{x:.0}")).unwrap_or("-".into()),
                            f.p99_ms
                                .map(|p| format!("  p50 {:.3} ms p99 {p:.3} ms", f.p50_ms.unwrap_or(f64::NAN)))
                                .unwrap_or_default()
                        ),
                        (None, Some(e)) => eprintln!("bench:   {:<20} failed: {e}", l.id),
                        (None, None) => {}
                    }
                    r.runs.push(run);
                    r.write(json)?;
                    running.alive()?;
                    proc::sleep(SETTLE);
                }
                running.stop();
                Ok(())
            })();
            if let Err(e) = outcome {
                proc::check_stop()?;
                // A server that fails to start or dies is a result too; the other servers still run.
                eprintln!("bench: {} rep {}: {e:#}", server.name(), rep + 1);
                r.runs.push(Run {
                    rep,
                    server: server.name().into(),
                    load: "-".into(),
                    loadavg_before: results::loadavg(),
                    compilers_running: results::compilers_running(),
                    figures: None,
                    error: Some(format!("{e:#}")),
                });
                r.write(json)?;
            }
            // Whatever the server left on the veth goes before the next one starts.
            netbed::detach_xdp(netbed::srv_ns(), netbed::SRV_IF);
            longest = longest.max(run_start.elapsed());
        }
    }
    Ok(())
}

/// Run one load against the running server, with dns-xdp's counters and bpf_stats around it.
#[expect(clippy::too_many_arguments, reason = "one call site; the arguments are the run's context")]
fn one_load(
    rep: usize,
    server: Server,
    l: Load,
    params: &Params,
    files: &zone::Files,
    bed: &mut netbed::Netbed,
    dns_xdp: &Path,
    ceiling_per_s: f64,
) -> Run {
    let mut run = Run {
        rep,
        server: server.name().into(),
        load: l.id.into(),
        loadavg_before: results::loadavg(),
        compilers_running: results::compilers_running(),
        figures: None,
        error: None,
    };
    let result = (|| -> Result<load::Figures> {
        if l.tool.owns_client_xdp() {
            bed.release_client_xdp();
        } else {
            bed.ensure_xdp_pass()?;
        }
        let counters0 = server.is_dns_xdp().then(xdpstats::scrape).transpose()?;
        let prog0 = xdpstats::prog_stats();
        let client0 = xdpstats::prog_stats_on(netbed::cli_ns(), netbed::CLI_IF);
        let query_file = match l.mix {
            QueryMix::Hits => &files.hits,
            QueryMix::Nx10 => &files.nx10,
        };
        let target = load::Target { srv_mac: &bed.srv_mac, cli_mac: &bed.cli_mac, dns_xdp, ceiling_per_s };
        let res = load::run(l, params, query_file, &target);
        let client1 = xdpstats::prog_stats_on(netbed::cli_ns(), netbed::CLI_IF);
        if l.tool.owns_client_xdp() {
            // kxdpgun leaves its program on the client veth.
            bed.release_client_xdp();
        }
        let mut f = res?;
        if !l.tool.owns_client_xdp() {
            f.client_xdp_pass_ns_per_packet = xdpstats::ns_per_packet(client0, client1);
        }
        if matches!(server, Server::DnsXdp | Server::XdpTxCeiling) {
            f.xdp_ns_per_packet = xdpstats::ns_per_packet(prog0, xdpstats::prog_stats());
        }
        if let Some(c0) = counters0 {
            let c1 = xdpstats::scrape()?;
            f.xdp_tx = Some(c1.xdp_tx.saturating_sub(c0.xdp_tx));
            f.xdp_pass = Some(c1.xdp_pass.saturating_sub(c0.xdp_pass));
            f.userspace_responses = Some(c1.userspace_responses.saturating_sub(c0.userspace_responses));
        }
        Ok(f)
    })();
    match result {
        Ok(f) => run.figures = Some(f),
        Err(e) => run.error = Some(format!("{e:#}")),
    }
    run
}

/// summary.md and plots in `dir`; with `publish`, also BENCHMARKS.md and benchmarks/*.png in the repo.
fn render(r: &Results, dir: &Path, publish: bool) -> Result<()> {
    let plots = plot::draw_all(r, dir);
    std::fs::write(dir.join("summary.md"), report::markdown(r, &plots))?;
    std::fs::write(dir.join("summary.json"), serde_json::to_string_pretty(&report::summary_rows(r))?)?;
    eprintln!("\n{}", report::terminal(r));
    eprintln!("bench: summary in {}", dir.join("summary.md").display());
    if publish {
        let root = cmd::repo_root();
        let pub_dir = root.join("benchmarks");
        std::fs::create_dir_all(&pub_dir)?;
        let mut published = Vec::new();
        for (caption, file) in &plots {
            std::fs::copy(dir.join(file), pub_dir.join(file)).with_context(|| format!("copying {file}"))?;
            published.push((caption.clone(), format!("benchmarks/{file}")));
        }
        std::fs::write(root.join("BENCHMARKS.md"), report::markdown(r, &published))?;
        eprintln!("bench: published BENCHMARKS.md and benchmarks/*.png");
    }
    Ok(())
}

fn notes(hit_names: usize, threads: u16) -> Vec<String> {
    vec![
        "Test bed: server and client network namespaces joined by one veth pair; servers and load generators \
         share the same cores, unpinned."
            .into(),
        "Client veth for dnsperf loads: tx checksum offload off and a do-nothing XDP program (`dns-xdp-testbed \
         xdp-pass`), which native XDP_TX over veth needs (ARCHITECTURE.md section 5); the same for every server. \
         xdpgen replaces it with its reply counter (`dns-xdp-testbed xdp-count`), kxdpgun with its own AF_XDP \
         program."
            .into(),
        format!(
            "xdpgen: AF_PACKET sockets with the qdisc bypassed, a batch of frames per sendmmsg, {} sending \
             thread(s) (one per core: on a veth each thread's core also runs both ends' XDP programs), {} source \
             ports, random-looking IDs, EDNS(0) queries; replies counted by an XDP program on the client veth, 1 in \
             {} checked against its query (ID and question) and timed (kernel receive timestamp minus the batch's \
             hand-off). xdpgen-at50/-at90 offer 50%/90% of the XDP_TX ceiling's xdpgen-v4 rate measured in the \
             same repetition.",
            threads,
            xdpgen::SRC_PORTS,
            u32::from(xdpgen::DEFAULT_SAMPLE_MASK) + 1
        ),
        "dns-xdp runs with --xdp-mode native (dns-xdp) or off (dns-xdp-off). knotd runs with its defaults \
         (one UDP worker per core); knotd-xdp adds `xdp: listen: <veth>@53`."
            .into(),
        "NSD: server-count 2 (one per core, like knotd) and rrl-ratelimit 0 for every NSD run: Debian's default \
         response rate limiting would throttle the NXDOMAIN mix."
            .into(),
        "kernel.bpf_stats_enabled=1 for the whole suite (every server alike), restored afterwards.".into(),
        format!(
            "Zone: {} names under {}, each with A and AAAA; queries: {} for A and AAAA, shuffled \
             (hits), and the same with {}% NXDOMAIN (nx10).",
            zone::NAMES,
            zone::ORIGIN,
            if hit_names == zone::NAMES {
                "every name".to_string()
            } else {
                format!("only the first {hit_names} names (--hit-names)")
            },
            zone::NX_PERCENT
        ),
    ]
}

fn load_ids() -> String {
    LOADS.iter().map(|l| l.id).collect::<Vec<_>>().join(", ")
}

/// Install what is missing from Debian (the suite runs as root, like the tests).
fn ensure_tools() -> Result<()> {
    let needed = [
        ("knotd", "knot"),
        ("kxdpgun", "knot-dnsutils"),
        ("kdig", "knot-dnsutils"),
        ("nsd", "nsd"),
        ("dnsperf", "dnsperf"),
        ("bpftool", "bpftool"),
        ("ethtool", "ethtool"),
        ("curl", "curl"),
    ];
    let mut missing: Vec<&str> = needed
        .iter()
        .filter(|(prog, _)| !cmd::on_path(prog) && !Path::new("/usr/sbin").join(prog).is_file())
        .map(|(_, pkg)| *pkg)
        .collect();
    if !Path::new("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf").is_file() {
        missing.push("fonts-dejavu-core");
    }
    missing.dedup();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("bench: installing {}", missing.join(" "));
    cmd::run(
        cmd::command("apt-get")
            .args(["install", "-y", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
    .with_context(|| format!("installing {} (try `apt-get update` first)", missing.join(" ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use load::Figures;

    /// Results as a run of two servers over two repetitions would write them.
    fn synthetic() -> Results {
        let mut runs = Vec::new();
        for rep in 0..2 {
            for (server, base) in
                [(Server::DnsXdp, 400_000.0), (Server::Knot, 100_000.0), (Server::XdpTxCeiling, 500_000.0)]
            {
                for l in LOADS.iter().filter(|l| server.runs(l)) {
                    let scale = if rep == 0 { 1.0 } else { 1.1 };
                    let mut f = Figures {
                        sent: Some(1000),
                        replies: Some(990),
                        lost: Some(10),
                        replies_per_s: Some(base * scale),
                        ..Figures::default()
                    };
                    if matches!(l.tool, Tool::DnsperfLatency | Tool::XdpgenAt(_)) {
                        f.p50_ms = Some(0.02 * scale);
                        f.p99_ms = Some(0.3);
                        f.latency_cdf = load::CDF_QUANTILES.iter().map(|&q| (q, 0.01 + q)).collect();
                    }
                    if server == Server::DnsXdp {
                        (f.xdp_tx, f.userspace_responses, f.xdp_ns_per_packet) = (Some(900), Some(90), Some(80.0));
                    }
                    runs.push(Run {
                        rep,
                        server: server.name().into(),
                        load: l.id.into(),
                        loadavg_before: [1.0, 1.0, 1.0],
                        compilers_running: 0,
                        figures: Some(f),
                        error: None,
                    });
                }
            }
        }
        Results {
            meta: Meta {
                started: "20260101T000000Z".into(),
                command: "cargo xtask bench".into(),
                quick: false,
                reps: 2,
                params: Params {
                    duration_s: 1,
                    dnsperf_clients: 4,
                    dnsperf_outstanding: 200,
                    latency_qps: 20_000,
                    kxdpgun_qps: 1_000_000,
                    xdpgen_sample_mask: xdpgen::DEFAULT_SAMPLE_MASK,
                    xdpgen_threads: 2,
                    hit_names: zone::NAMES,
                },
                machine: results::machine(),
                versions: vec![],
                loadavg_start: [0.0; 3],
                loadavg_end: None,
                wall_time_s: None,
                notes: notes(zone::NAMES, 2),
                unavailable: vec![results::Unavailable {
                    what: "knotd-xdp".into(),
                    reason: "program of this type cannot use helper bpf_xdp_adjust_meta#54".into(),
                }],
            },
            runs,
            derived: Vec::new(),
        }
    }

    /// The suite itself, tiny: every server, two loads, 1 s each, in namespaces of its own. Runs under
    /// `cargo xtask test` (root, DNS_XDP_BIN set); elsewhere it says why it skipped. It checks that the suite
    /// runs and its output parses, never how fast anything is.
    /// The smoke runs share one pair of namespaces (`-smoke`): one at a time.
    pub(crate) static SMOKE_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

    #[test]
    fn quick_smoke_run_writes_results_that_parse() {
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        if !root || std::env::var_os("DNS_XDP_BIN").is_none() {
            eprintln!("skipped: needs root and DNS_XDP_BIN (run it through `cargo xtask test`)");
            return;
        }
        let _serial = SMOKE_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        netbed::use_namespace_suffix("-smoke");
        let out = std::env::temp_dir().join(format!("dnsxdp-bench-smoke-{}", std::process::id()));
        let opts = Options {
            quick: true,
            reps: Some(1),
            duration: Some(1),
            servers: vec![],
            loads: vec!["dnsperf-latency-v4".into(), "xdpgen-v6".into(), "xdpgen-at50-v4".into(), "kxdpgun-v4".into()],
            xdpgen_threads: None,
            latency_qps: 2_000,
            kxdpgun_qps: 100_000,
            hit_names: Some(500),
            no_build: true,
            publish: false,
            no_publish: true,
            report: None,
            out: Some(out.clone()),
            budget: Some(170),
        };
        run(&opts).unwrap_or_else(|e| panic!("cargo xtask bench --quick failed: {e:#}"));
        let r = Results::read(&out.join("results.json")).unwrap();
        // --hit-names: the first 500 names, each for A and AAAA; the zone still holds all of them.
        assert_eq!(r.meta.params.hit_names, 500);
        assert_eq!(std::fs::read_to_string(out.join("queries-hits.txt")).unwrap().lines().count(), 1000);
        assert!(r.meta.notes.iter().any(|n| n.contains("only the first 500 names")), "{:?}", r.meta.notes);
        // A server or load the kernel refuses is reported with its reason and not run; everything else runs.
        let refused = |what: &str| r.meta.unavailable.iter().any(|u| u.what == what && !u.reason.is_empty());
        for u in &r.meta.unavailable {
            assert!(!u.reason.is_empty(), "{} unavailable without a reason", u.what);
            eprintln!("smoke: {} unavailable on this kernel: {}", u.what, u.reason);
        }
        for server in Server::ALL {
            let runs: Vec<&Run> = r.runs.iter().filter(|x| x.server == server.name()).collect();
            if refused(server.name()) {
                assert!(runs.is_empty(), "{} ran although refused: {runs:?}", server.name());
                continue;
            }
            let expected =
                opts.loads.iter().filter(|id| !refused(id) && server.runs(&load::load_by_id(id).unwrap())).count();
            assert_eq!(runs.len(), expected, "{}: one run per load it runs: {runs:?}", server.name());
            for run in runs {
                assert!(run.error.is_none(), "{} {}: {:?}", run.server, run.load, run.error);
                let f = run.figures.as_ref().unwrap();
                assert!(f.replies.is_some_and(|n| n > 0), "{} {}: no replies", run.server, run.load);
            }
        }
        let md = std::fs::read_to_string(out.join("summary.md")).unwrap();
        assert!(md.contains("## At a glance"));
        assert!(md.contains("XDP_TX ceiling, xdpgen-v6:"), "{md}");
        // The generator's own check ran: sampled replies matched their queries (or the run failed).
        for run in r.runs.iter().filter(|x| x.load.starts_with("xdpgen")) {
            let f = run.figures.as_ref().unwrap();
            assert!(f.checked.is_some_and(|n| n > 0), "{} {}: no sampled reply checked", run.server, run.load);
            if run.load == "xdpgen-at50-v4" {
                assert!(f.p99_ms.is_some_and(|p| p > 0.0), "{} {}: no latency", run.server, run.load);
            }
        }
        assert!(md.contains("## Latency under load"), "{md}");
        assert!(r.derived.iter().any(|d| d.numerator == "dns-xdp" && d.denominator == "xdp-tx-ceiling"));
        let _: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
        assert!(!Path::new("/run/netns").join(netbed::srv_ns()).exists(), "namespaces removed");
        let _ = std::fs::remove_dir_all(&out);
    }

    #[test]
    fn results_round_trip_and_render_with_plots() {
        let dir = std::env::temp_dir().join(format!("dnsxdp-bench-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        synthetic().write(&dir.join("results.json")).unwrap();
        let r = Results::read(&dir.join("results.json")).unwrap();
        render(&r, &dir, false).unwrap();
        let md = std::fs::read_to_string(dir.join("summary.md")).unwrap();
        let rows: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
        let kx = rows
            .as_array()
            .unwrap()
            .iter()
            .find(|row| row["server"] == "dns-xdp" && row["load"] == "xdpgen-v4" && row["figure"] == "replies_per_s")
            .expect("summary.json has dns-xdp xdpgen-v4 replies_per_s");
        assert_eq!(kx["median"], 420_000.0);
        assert_eq!(kx["ratio_to_knotd"]["median"], 4.0);
        // dns-xdp reached 400k of the ceiling's 500k in each repetition.
        assert!(md.contains("- XDP_TX ceiling, xdpgen-v4: 525k replies/s"), "{md}");
        assert!(
            md.contains("dns-xdp with XDP reaches 80% of it (0.80, min-max 0.80-0.80; aim >= 90%: not met)"),
            "{md}"
        );
        let d = report::derived_ratios(&r);
        assert!(d.iter().any(|d| d.numerator == "dns-xdp" && d.load == "xdpgen-v6" && (d.median - 0.8).abs() < 1e-9));
        // Ratios are taken within a repetition: 4.00 in both, not a ratio of medians.
        assert!(md.contains("| xdpgen-v4 | dns-xdp | 420k | 400k-440k | 4.00 (4.00-4.00) | 1.0% | server |"), "{md}");
        // What the kernel refused is said, with its reason, and the last figures from before are quoted as such.
        assert!(
            md.contains("- knotd-xdp: unavailable on this kernel: `program of this type cannot use helper bpf_xdp_adjust_meta#54`"),
            "{md}"
        );
        assert!(md.contains("| knotd-xdp | - | - | - | - | - | unavailable on this kernel:"), "{md}");
        assert!(md.contains("quoted from the run of 2026-12-06"), "{md}");
        // Latency under load: the fixed-rate xdpgen rows with their percentiles.
        assert!(md.contains("| xdpgen-at90-v4 | dns-xdp |"), "{md}");
        assert!(md.contains("| dnsperf-max-v4 | dns-xdp | 90.9% | 80 (80-80) |"), "{md}");
        if plot::init_font().is_ok() {
            for png in ["replies.png", "latency.png"] {
                let bytes = std::fs::read(dir.join(png)).unwrap_or_else(|e| panic!("{png}: {e}"));
                assert!(bytes.starts_with(b"\x89PNG"), "{png} is not a PNG");
                assert!(md.contains(png), "summary links {png}");
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
