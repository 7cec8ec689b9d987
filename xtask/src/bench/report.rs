//! The summary: medians, min-max and ratios to knotd (taken within each repetition), as Markdown.

use std::fmt::Write as _;

use super::load::{Figures, LOADS, Tool, load_by_id};
use super::results::{Derived, Results, Run};
use super::servers::Server;

/// The reference every ratio is taken against.
pub const BASELINE: Server = Server::Knot;
/// Below this loss (percent) the generator's rate, not the server, set the figure.
const GENERATOR_BOUND_LOSS_PCT: f64 = 1.0;
/// The kernel-answers issue's aim: dns-xdp with XDP reaches this share of the XDP_TX ceiling.
const CEILING_AIM: f64 = 0.9;
/// The loads the ceiling runs under, as fast as the generator sends (kxdpgun only where the kernel runs it).
const CEILING_LOADS: [&str; 5] = ["xdpgen-v4", "xdpgen-v6", "xdpgen-nx10-v4", "kxdpgun-v4", "kxdpgun-v6"];
/// The fixed-rate loads: latency at shares of the ceiling.
const LATENCY_UNDER_LOAD: [&str; 2] = ["xdpgen-at50-v4", "xdpgen-at90-v4"];
/// (numerator, denominator) server pairs reported as ratios of replies/s under the ceiling's loads.
const DERIVED_PAIRS: [(Server, Server); 2] =
    [(Server::DnsXdp, Server::XdpTxCeiling), (Server::XdpTxCeiling, Server::KnotXdp)];

/// dns-xdp / ceiling and ceiling / knotd-xdp for each ceiling load both servers ran.
pub fn derived_ratios(r: &Results) -> Vec<Derived> {
    let mut out = Vec::new();
    for load in CEILING_LOADS {
        for (num, den) in DERIVED_PAIRS {
            if let Some(st) = ratio_to(r, num, den, load, |f| f.replies_per_s) {
                out.push(Derived {
                    load: load.into(),
                    numerator: num.name().into(),
                    denominator: den.name().into(),
                    n: st.n,
                    median: st.median,
                    min: st.min,
                    max: st.max,
                });
            }
        }
    }
    out
}

/// Markdown lines about the ceiling, empty when it was not measured.
fn ceiling_lines(r: &Results) -> Vec<String> {
    let mut lines = Vec::new();
    for load in CEILING_LOADS {
        let rps = |f: &Figures| f.replies_per_s;
        let Some(ceiling) = over_reps(r, Server::XdpTxCeiling, load, rps) else { continue };
        let loss = over_reps(r, Server::XdpTxCeiling, load, |f| Some(f.lost? as f64 / f.sent? as f64 * 100.0));
        let share = ratio_to(r, Server::DnsXdp, Server::XdpTxCeiling, load, rps).map(|x| {
            format!(
                "dns-xdp with XDP reaches {:.0}% of it ({:.2}, min-max {:.2}-{:.2}; aim >= {:.0}%: {})",
                x.median * 100.0,
                x.median,
                x.min,
                x.max,
                CEILING_AIM * 100.0,
                if x.median >= CEILING_AIM { "met" } else { "not met" }
            )
        });
        let knot = ratio_to(r, Server::XdpTxCeiling, Server::KnotXdp, load, rps)
            .map(|x| format!("the ceiling is {:.2}x knotd-xdp (AF_XDP)", x.median));
        let parts: Vec<String> = [share, knot].into_iter().flatten().collect();
        lines.push(format!(
            "- XDP_TX ceiling, {load}: {} replies/s{}{}{}.",
            fmt_rate(ceiling.median),
            loss.map(|l| if l.median < GENERATOR_BOUND_LOSS_PCT {
                format!(" ({:.1}% unanswered: the generator's own limit, the bed carries more)", l.median)
            } else {
                format!(" ({:.1}% of the generator's queries unanswered)", l.median)
            })
            .unwrap_or_default(),
            if parts.is_empty() { "" } else { "; " },
            parts.join("; ")
        ));
    }
    lines
}

#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Stat {
    pub n: usize,
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

pub fn stat(mut v: Vec<f64>) -> Option<Stat> {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 };
    Some(Stat { n, median, min: v[0], max: v[n - 1] })
}

/// Servers present in the results, in the fixed report order.
pub fn servers(r: &Results) -> Vec<Server> {
    Server::ALL.into_iter().filter(|s| r.runs.iter().any(|run| run.server == s.name())).collect()
}

fn figures<'a>(r: &'a Results, server: Server, load: &str) -> impl Iterator<Item = (usize, &'a Figures)> + 'a {
    let name = server.name();
    let load = load.to_owned();
    r.runs
        .iter()
        .filter(move |run: &&Run| run.server == name && run.load == load)
        .filter_map(|run| Some((run.rep, run.figures.as_ref()?)))
}

/// Stat of one figure of one (server, load) over the repetitions.
pub fn over_reps(r: &Results, server: Server, load: &str, get: impl Fn(&Figures) -> Option<f64>) -> Option<Stat> {
    stat(figures(r, server, load).filter_map(|(_, f)| get(f)).collect())
}

/// Stat of server/knotd for one figure, the ratio taken within each repetition (same minute, same noise).
pub fn ratio_to_baseline(
    r: &Results,
    server: Server,
    load: &str,
    get: impl Fn(&Figures) -> Option<f64>,
) -> Option<Stat> {
    ratio_to(r, server, BASELINE, load, get)
}

/// Stat of server/base for one figure, the ratio taken within each repetition.
pub fn ratio_to(
    r: &Results,
    server: Server,
    base: Server,
    load: &str,
    get: impl Fn(&Figures) -> Option<f64>,
) -> Option<Stat> {
    let base: Vec<(usize, f64)> = figures(r, base, load).filter_map(|(rep, f)| Some((rep, get(f)?))).collect();
    let ratios = figures(r, server, load)
        .filter_map(|(rep, f)| {
            let (_, b) = base.iter().find(|(brep, _)| *brep == rep)?;
            let v = get(f)?;
            (*b > 0.0).then(|| v / b)
        })
        .collect();
    stat(ratios)
}

fn fmt_rate(x: f64) -> String {
    if x >= 10_000.0 { format!("{:.0}k", x / 1000.0) } else { format!("{x:.0}") }
}

fn fmt_ratio(s: Option<Stat>) -> String {
    match s {
        Some(s) if s.n > 1 => format!("{:.2} ({:.2}-{:.2})", s.median, s.min, s.max),
        Some(s) => format!("{:.2}", s.median),
        None => "-".into(),
    }
}

/// The Markdown summary; `plots` are (caption, relative path) pairs to embed.
pub fn markdown(r: &Results, plots: &[(String, String)]) -> String {
    let m = &r.meta;
    let mut s = String::new();
    let _ = writeln!(s, "# Benchmarks\n");
    let _ = writeln!(
        s,
        "Written by `cargo xtask bench` (xtask/src/bench/). Figures from one machine, one run: compare ratios \
         within the run, not absolute numbers across machines or runs.\n"
    );
    let _ = writeln!(s, "- Run: {} UTC, `{}`{}", m.started, m.command, if m.quick { " (quick mode)" } else { "" });
    let _ = writeln!(
        s,
        "- Machine: {} ({} cores, {}), kernel {}, host `{}`",
        m.machine.cpu, m.machine.cores, m.machine.mem_total, m.machine.kernel, m.machine.hostname
    );
    let la = |l: [f64; 3]| format!("{:.2} {:.2} {:.2}", l[0], l[1], l[2]);
    let loads: Vec<f64> = r.runs.iter().map(|x| x.loadavg_before[0]).collect();
    let busy = r.runs.iter().filter(|x| x.compilers_running > 0).count();
    let _ = writeln!(
        s,
        "- Machine load: loadavg {} at start, {} at end; 1-min loadavg before each load {}; other builds \
         (rustc/cc/ld) were running during {busy} of {} loads",
        la(m.loadavg_start),
        m.loadavg_end.map(la).unwrap_or_else(|| "-".into()),
        stat(loads).map(|s| format!("{:.2}-{:.2} (median {:.2})", s.min, s.max, s.median)).unwrap_or_default(),
        r.runs.len(),
    );
    let p = &m.params;
    let _ = writeln!(
        s,
        "- {} repetition(s), servers interleaved (order rotated each repetition); {} s per load; dnsperf -c {} -q {}; \
         latency at {} q/s; xdpgen {} sending thread(s); kxdpgun (where it runs) offered {} q/s{}",
        m.reps,
        p.duration_s,
        p.dnsperf_clients,
        p.dnsperf_outstanding,
        p.latency_qps,
        p.xdpgen_threads,
        p.kxdpgun_qps,
        m.wall_time_s.map(|w| format!("; wall time {:.0} s", w)).unwrap_or_default()
    );
    for (k, v) in &m.versions {
        let _ = writeln!(s, "- {k}: {v}");
    }
    for n in &m.notes {
        let _ = writeln!(s, "- {n}");
    }

    let servers = servers(r);
    let _ = writeln!(s, "\n## At a glance\n");
    let asked = if r.meta.params.hit_names >= crate::bench::zone::NAMES {
        "every name of the zone".to_string()
    } else {
        format!("only the first {} names of the zone: a diagnosis run, see --hit-names", r.meta.params.hit_names)
    };
    let _ = writeln!(
        s,
        "A/AAAA hits ({asked}). Median replies/s, and in brackets the median ratio to knotd within each \
         repetition; latency at the fixed rate over IPv4.\n"
    );
    for load in ["xdpgen-v4", "xdpgen-v6", "kxdpgun-v4", "kxdpgun-v6"] {
        let rps = |f: &Figures| f.replies_per_s;
        let Some(xdp) = over_reps(r, Server::DnsXdp, load, rps) else { continue };
        let vs = |base: Server| {
            ratio_to(r, Server::DnsXdp, base, load, rps)
                .map(|x| format!("{:.2}x {}", x.median, base.name()))
                .unwrap_or_else(|| format!("{} not measured", base.name()))
        };
        let bound = over_reps(r, Server::DnsXdp, load, |f| Some(f.lost? as f64 / f.sent? as f64 * 100.0))
            .is_some_and(|l| l.median < GENERATOR_BOUND_LOSS_PCT);
        let _ = writeln!(
            s,
            "- A/AAAA hits, {load}: dns-xdp with XDP {} replies/s{}: {} and {} (same repetitions).",
            fmt_rate(xdp.median),
            if bound { " (the generator's limit, not ours: every query was answered)" } else { "" },
            vs(Server::DnsXdpOff),
            vs(BASELINE),
        );
    }
    let ceiling = ceiling_lines(r);
    if !ceiling.is_empty() {
        let _ = writeln!(
            s,
            "\nThe test bed's ceiling (`xdp-tx-ceiling`): an XDP program that sends each query straight back with \
             XDP_TX (MACs, addresses and ports swapped, QR set, no lookup), under the same xdpgen loads in the same \
             repetitions. Ratios are taken within each repetition.\n"
        );
        for l in ceiling {
            let _ = writeln!(s, "{l}");
        }
    }
    if !r.meta.unavailable.is_empty() {
        let _ = writeln!(s, "\nNot run: the kernel refused them at the start probe (their own words below).\n");
        for u in &r.meta.unavailable {
            let _ = writeln!(s, "- {}: unavailable on this kernel: `{}`", u.what, u.reason);
        }
        if r.meta.unavailable.iter().any(|u| u.what == Server::KnotXdp.name()) {
            s.push_str(PREVIOUS_KNOTD_XDP);
        }
    }
    let _ = writeln!(s);
    let glance = ["xdpgen-v4", "xdpgen-v6", "dnsperf-max-v4", "dnsperf-max-v6"];
    let _ = writeln!(s, "| server | {} | p50 ms | p99 ms |", glance.join(" | "));
    let _ = writeln!(s, "|---|{}---:|---:|", "---:|".repeat(glance.len()));
    for &server in &servers {
        let mut row = format!("| {} |", server.name());
        for load in glance {
            let cell = over_reps(r, server, load, |f| f.replies_per_s).map(|st| {
                let ratio = ratio_to_baseline(r, server, load, |f| f.replies_per_s);
                format!(
                    "{} ({})",
                    fmt_rate(st.median),
                    ratio.map(|x| format!("{:.2}x", x.median)).unwrap_or("-".into())
                )
            });
            let _ = write!(row, " {} |", cell.unwrap_or_else(|| "-".into()));
        }
        for get in [(|f: &Figures| f.p50_ms) as fn(&Figures) -> Option<f64>, |f: &Figures| f.p99_ms] {
            let cell = over_reps(r, server, "dnsperf-latency-v4", get).map(|x| format!("{:.3}", x.median));
            let _ = write!(row, " {} |", cell.unwrap_or_else(|| "-".into()));
        }
        let _ = writeln!(s, "{row}");
    }

    let _ = writeln!(s, "\n## Replies per second\n");
    let _ = writeln!(
        s,
        "Median over repetitions (min-max). `x knotd`: this server's figure divided by knotd's in the same \
         repetition, median (min-max) of those ratios. Loss: queries without a reply. Limit: for xdpgen and kxdpgun, \
         `generator` when (almost) every query got its reply, so the server could have done more than the figure.\n"
    );
    let _ = writeln!(s, "| load | server | replies/s | min-max | x knotd | loss | limit |");
    let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---|");
    for load in LOADS.iter().filter(|l| !matches!(l.tool, Tool::DnsperfLatency | Tool::XdpgenAt(_))) {
        for &server in &servers {
            let Some(st) = over_reps(r, server, load.id, |f| f.replies_per_s) else { continue };
            let loss = over_reps(r, server, load.id, |f| Some(f.lost? as f64 / f.sent? as f64 * 100.0));
            let limit = match (load.tool.is_open_loop_max(), loss) {
                (true, Some(l)) if l.median < GENERATOR_BOUND_LOSS_PCT => "generator",
                (true, Some(_)) => "server",
                _ => "-",
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {}-{} | {} | {} | {limit} |",
                load.id,
                server.name(),
                fmt_rate(st.median),
                fmt_rate(st.min),
                fmt_rate(st.max),
                fmt_ratio(ratio_to_baseline(r, server, load.id, |f| f.replies_per_s)),
                loss.map(|l| format!("{:.1}%", l.median)).unwrap_or_else(|| "-".into()),
            );
        }
    }

    for u in &r.meta.unavailable {
        let _ = writeln!(
            s,
            "| {} | - | - | - | - | - | unavailable on this kernel: {} |",
            u.what,
            u.reason.replace('|', "/")
        );
    }

    let _ = writeln!(s, "\n## Latency under load\n");
    let _ = writeln!(
        s,
        "xdpgen at a fixed share of the XDP_TX ceiling's xdpgen-v4 rate measured in the same repetition (the offered \
         column), far above what dnsperf reaches here. Per-reply latency in ms from the sampled replies (1 in {}): \
         kernel receive timestamp on the client minus the time the query's batch was handed to the kernel; median \
         over repetitions. A server that cannot keep up loses queries (loss) and queues the rest.\n",
        u32::from(p.xdpgen_sample_mask) + 1
    );
    let _ = writeln!(s, "| load | server | offered/s | replies/s | loss | p50 | p90 | p99 | p99.9 | sampled |");
    let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for load in LATENCY_UNDER_LOAD {
        for &server in &servers {
            let q = |get: fn(&Figures) -> Option<f64>| {
                over_reps(r, server, load, get).map(|x| format!("{:.3}", x.median)).unwrap_or_else(|| "-".into())
            };
            let Some(offered) = over_reps(r, server, load, |f| f.offered_per_s) else { continue };
            let replies = over_reps(r, server, load, |f| f.replies_per_s);
            let loss = over_reps(r, server, load, |f| Some(f.lost? as f64 / f.sent? as f64 * 100.0));
            let checked = over_reps(r, server, load, |f| f.checked.map(|c| c as f64));
            let _ = writeln!(
                s,
                "| {load} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                server.name(),
                fmt_rate(offered.median),
                replies.map(|x| fmt_rate(x.median)).unwrap_or_else(|| "-".into()),
                loss.map(|l| format!("{:.1}%", l.median)).unwrap_or_else(|| "-".into()),
                q(|f| f.p50_ms),
                q(|f| f.p90_ms),
                q(|f| f.p99_ms),
                q(|f| f.p999_ms),
                checked.map(|c| format!("{:.0}", c.median)).unwrap_or_else(|| "-".into()),
            );
        }
    }

    let _ = writeln!(s, "\n## Latency at a fixed rate\n");
    let _ = writeln!(
        s,
        "dnsperf at {} q/s, per-query latencies in ms (median over repetitions). `x knotd` as above.\n",
        p.latency_qps
    );
    let _ = writeln!(s, "| load | server | p50 | p90 | p99 | p99.9 | p50 x knotd | p99 x knotd |");
    let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|---:|");
    for load in LOADS.iter().filter(|l| l.tool == Tool::DnsperfLatency) {
        for &server in &servers {
            let q = |get: fn(&Figures) -> Option<f64>| {
                over_reps(r, server, load.id, get).map(|x| format!("{:.3}", x.median)).unwrap_or_else(|| "-".into())
            };
            if over_reps(r, server, load.id, |f| f.p50_ms).is_none() {
                continue;
            }
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                load.id,
                server.name(),
                q(|f| f.p50_ms),
                q(|f| f.p90_ms),
                q(|f| f.p99_ms),
                q(|f| f.p999_ms),
                fmt_ratio(ratio_to_baseline(r, server, load.id, |f| f.p50_ms)),
                fmt_ratio(ratio_to_baseline(r, server, load.id, |f| f.p99_ms)),
            );
        }
    }

    let _ = writeln!(s, "\n## dns-xdp: who answered, and the XDP program's cost\n");
    let _ = writeln!(
        s,
        "XDP share: XDP_TX replies / (XDP_TX + daemon replies), from /metrics deltas over each load. ns/packet: \
         bpf_stats run_time_ns / run_cnt of the program on the server veth (every packet it saw, passed or not); \
         for xdp-tx-ceiling, the bounce program's.\n"
    );
    let floor = stat(r.runs.iter().filter_map(|x| x.figures.as_ref()?.client_xdp_pass_ns_per_packet).collect());
    if let Some(fl) = floor {
        let _ = writeln!(
            s,
            "For scale: the do-nothing XDP_PASS program on the client veth ran {:.0} ns/packet (median of all dnsperf \
             loads, {:.0}-{:.0}) by the same measure; that is the floor bpf_stats reports on this machine.\n",
            fl.median, fl.min, fl.max
        );
    }
    let _ = writeln!(s, "| load | server | XDP share | XDP ns/packet |");
    let _ = writeln!(s, "|---|---|---:|---:|");
    for load in LOADS {
        for server in servers.iter().copied().filter(|s| s.is_dns_xdp() || *s == Server::XdpTxCeiling) {
            let share = over_reps(r, server, load.id, |f| {
                let tx = f.xdp_tx? as f64;
                let total = tx + f.userspace_responses? as f64;
                (total > 0.0).then(|| tx / total * 100.0)
            });
            let ns = over_reps(r, server, load.id, |f| f.xdp_ns_per_packet);
            if share.is_none() && ns.is_none() {
                continue;
            }
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} |",
                load.id,
                server.name(),
                share.map(|x| format!("{:.1}%", x.median)).unwrap_or_else(|| "-".into()),
                ns.map(|x| format!("{:.0} ({:.0}-{:.0})", x.median, x.min, x.max)).unwrap_or_else(|| "-".into()),
            );
        }
    }

    let errors: Vec<&Run> = r.runs.iter().filter(|x| x.error.is_some()).collect();
    if !errors.is_empty() {
        let _ = writeln!(s, "\n## Failed runs\n");
        for e in errors {
            let _ = writeln!(
                s,
                "- rep {} {} {}: {}",
                e.rep,
                e.server,
                e.load,
                e.error.as_deref().unwrap_or_default().replace('\n', " ")
            );
        }
    }

    if !plots.is_empty() {
        let _ = writeln!(s, "\n## Plots\n");
        for (caption, path) in plots {
            let _ = writeln!(s, "![{caption}]({path})\n");
        }
    }
    let _ = writeln!(s, "\nRaw figures of every run: `target/bench/{}/results.json`.", m.started);
    s.push_str(HOW);
    s
}

/// One row of summary.json: what a program compares between runs.
#[derive(Debug, serde::Serialize)]
pub struct Row {
    pub server: &'static str,
    pub load: &'static str,
    pub figure: &'static str,
    #[serde(flatten)]
    pub stat: Stat,
    /// This figure over knotd's, taken within each repetition.
    pub ratio_to_knotd: Option<Stat>,
}

/// Every (server, load, figure) with its median, min-max and ratio to knotd.
pub fn summary_rows(r: &Results) -> Vec<Row> {
    type Get = fn(&Figures) -> Option<f64>;
    let figures: [(&str, Get); 6] = [
        ("replies_per_s", |f| f.replies_per_s),
        ("p50_ms", |f| f.p50_ms),
        ("p90_ms", |f| f.p90_ms),
        ("p99_ms", |f| f.p99_ms),
        ("p999_ms", |f| f.p999_ms),
        ("xdp_ns_per_packet", |f| f.xdp_ns_per_packet),
    ];
    let mut rows = Vec::new();
    for load in LOADS {
        for server in servers(r) {
            for (figure, get) in figures {
                if let Some(stat) = over_reps(r, server, load.id, get) {
                    let ratio_to_knotd = ratio_to_baseline(r, server, load.id, get);
                    rows.push(Row { server: server.name(), load: load.id, figure, stat, ratio_to_knotd });
                }
            }
        }
    }
    rows
}

/// One line per server for the terminal: the headline throughput and latency figures.
pub fn terminal(r: &Results) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<16} {:>22} {:>22} {:>22} {:>10}",
        "server", "dnsperf-max-v4 r/s", "xdpgen-v4 r/s", "x knotd (dp/xg)", "p99 ms"
    );
    for server in servers(r) {
        let rate = |load: &str| {
            over_reps(r, server, load, |f| f.replies_per_s).map(|x| fmt_rate(x.median)).unwrap_or("-".into())
        };
        let ratio = |load: &str| {
            ratio_to_baseline(r, server, load, |f| f.replies_per_s)
                .map(|x| format!("{:.2}", x.median))
                .unwrap_or("-".into())
        };
        let p99 = over_reps(r, server, "dnsperf-latency-v4", |f| f.p99_ms)
            .map(|x| format!("{:.3}", x.median))
            .unwrap_or("-".into());
        let _ = writeln!(
            s,
            "{:<16} {:>22} {:>22} {:>22} {:>10}",
            server.name(),
            rate("dnsperf-max-v4"),
            rate("xdpgen-v4"),
            format!("{}/{}", ratio("dnsperf-max-v4"), ratio("xdpgen-v4")),
            p99
        );
    }
    for d in derived_ratios(r) {
        let _ = writeln!(
            s,
            "{} / {} under {}: {:.2} (min-max {:.2}-{:.2}, {} rep(s))",
            d.numerator, d.denominator, d.load, d.median, d.min, d.max, d.n
        );
    }
    debug_assert!(load_by_id("dnsperf-max-v4").is_some() && load_by_id("xdpgen-v4").is_some());
    s
}

/// knotd's AF_XDP mode, last measured before the kernel began refusing its program: quoted, not measured.
const PREVIOUS_KNOTD_XDP: &str = "
Last figures of knotd-xdp (Knot 3.2.6 in AF_XDP mode), **quoted from the run of 2026-12-06 13:53 UTC on kernel
6.18.44-fc-v1272, before that kernel's update began refusing `bpf_xdp_adjust_meta`; not measured in this run**
(5 repetitions, kxdpgun one thread and dnsperf): kxdpgun-v4 171k replies/s (1.05x knotd), kxdpgun-v6 180k (1.05x),
dnsperf-max-v4 114k (1.27x), dnsperf-max-v6 97k (1.30x), latency at 20k q/s p50 0.070 ms, p99 0.155 ms; the
XDP_TX ceiling was 2.13x / 2.17x knotd-xdp under kxdpgun-v4 / -v6.
";

/// The part of BENCHMARKS.md that does not change between runs.
const HOW: &str = "
## How to run and what is measured

```
cargo xtask bench                 # full suite: 3 repetitions, 4 s per load, about 15 minutes; writes this file
cargo xtask bench --quick         # smoke run: 1 repetition, 1 s per load, under 3 minutes; target/bench only
cargo xtask bench --servers dns-xdp,xdp-tx-ceiling --loads xdpgen-v4,xdpgen-v6 --reps 5
cargo xtask bench --report target/bench/<stamp>   # redraw summary and plots from results.json
cargo xtask bench --servers dns-xdp,xdp-tx-ceiling --loads xdpgen-v4 --hit-names 100   # a diagnosis
cargo xtask xdpgen --netns NS --iface IF --src IP --dst IP --dst-mac MAC --queries FILE [--rate N]  # the generator alone
```

`--hit-names N` asks only the first N names (the zone still holds all of them) and does not publish: with few
names the lookups' memory stays in the CPU caches, so comparing it with a full run shows what cache misses cost
under load.

Needs root (network namespaces, XDP, bpf_stats). Missing Debian packages (knot, knot-dnsutils, nsd, dnsperf,
bpftool, ethtool, curl, fonts-dejavu-core) are installed with apt-get. The suite builds dns-xdp first unless
`--no-build`, stays inside its time budget (`--budget`), and removes its namespaces, servers and XDP programs on
exit, error or Ctrl-C. Each repetition runs the XDP_TX ceiling first, then every server once in a rotated order;
ratios are taken within a repetition, so machine-load drift between repetitions cancels out of them.

At the start the suite probes what the kernel may refuse: it starts knotd in AF_XDP mode and kxdpgun for real,
briefly. One the kernel refuses is reported above as unavailable, with its own line for why (the verifier's), and
left out; the rest of the suite goes on.

Loads, all from the client namespace against one server at a time:
- `dnsperf-max-v4/-v6`: dnsperf with no rate limit (4 sockets, 200 queries outstanding), hits only. A closed
  loop on a machine where dnsperf and the server share the cores: it shows the server plus the client's CPU cost,
  and on two cores the client is usually the limit.
- `dnsperf-max-nx10-v4`: the same with 10% NXDOMAIN (for dns-xdp, those go to the daemon).
- `dnsperf-latency-v4/-v6`: dnsperf at a fixed rate with per-query latencies (`-v`); p50 to p99.9.
- `xdpgen-v4/-v6`, `xdpgen-nx10-v4`: our own generator (xtask/src/bench/xdpgen/) as fast as it sends: AF_PACKET
  sockets with the qdisc bypassed, a batch of frames per sendmmsg, one thread per core, 32 source ports, IDs that
  look random and repeat on a port only after 65,536 queries. Replies are counted in the kernel by an XDP program
  on the client veth (`dns-xdp-testbed xdp-count`, dns-xdp-ebpf/src/testbed/count.rs), which drops them but for 1 in 64; each of
  those must repeat the ID and question of the query sent from its port with its ID, or the run fails.
  replies/s is the server's limit unless the limit column says `generator`.
- `xdpgen-at50-v4`, `xdpgen-at90-v4`: the same at 50% and 90% of the XDP_TX ceiling's xdpgen-v4 rate in the
  same repetition; per-reply latency from the sampled replies (kernel receive timestamp minus the time the
  query's batch went to the kernel).
- `kxdpgun-v4/-v6`: kxdpgun (AF_XDP, one thread), where the kernel still accepts its program.

`xdp-tx-ceiling` is not a server: `dns-xdp-testbed bounce` attaches `xdp_bounce` (dns-xdp-ebpf/src/testbed/bounce.rs) in native
mode, which turns every query around with XDP_TX (MACs, addresses and ports swapped, QR set, UDP checksum updated
for the flag, nothing looked up). It runs under the generator loads only, in the same repetitions as the servers:
what this bed carries with no server work. dns-xdp / ceiling is the share of it dns-xdp reaches (the
kernel-answers issue's aim: at least 0.9); ceiling / knotd-xdp compares it with an AF_XDP server where knotd's
AF_XDP mode runs. Both ratios are also in results.json (`derived`).

For dns-xdp also: the share of replies sent by the XDP program (/metrics deltas) and its mean run time per
packet (kernel bpf_stats of the program attached to the server veth).

One large zone (start time, memory per name, one-record change latency) has its own command and page:
`cargo xtask bench-zone [--names N] [--repeat R]` writes [BENCHMARKS-zone.md](BENCHMARKS-zone.md).

`cargo xtask test` runs the suite once in miniature (every server, four loads, 1 s each, namespaces of its own)
and checks that it runs, that its output parses and that what the kernel refuses is reported; no figure is
asserted.

Known limits of this bed:
- On a veth, the XDP programs of both ends run in the softirq of the CPU that sends: a generator thread's core
  also carries the server's XDP work and the client's reply counting. xdpgen runs one thread per core so both
  cores do that work; a userspace server then competes with the generator for the same cores.
- When every query is answered (limit `generator`) the server's ceiling is higher than the figure.
- Everything shares the machine's cores (two here), including other people's builds: see the load line above,
  and `loadavg_before` / `compilers_running` per load in results.json.
- veth is not a NIC: native XDP_TX on veth needs an XDP program on the peer (the client side pays for it), and
  AF_XDP on veth runs in copy mode. Absolute figures say little about a real NIC; ratios say more.
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_min_max() {
        assert_eq!(stat(vec![3.0, 1.0, 2.0]), Some(Stat { n: 3, median: 2.0, min: 1.0, max: 3.0 }));
        assert_eq!(stat(vec![4.0, 1.0]).map(|s| s.median), Some(2.5));
        assert_eq!(stat(vec![f64::NAN]), None);
    }
}
