//! The large-zone summary: figures beside the issue's aims, as Markdown (summary.md,
//! BENCHMARKS-zone.md) and a few terminal lines.

use std::fmt::Write as _;

use super::compare::{self, Figure};
use super::reload::Reload;
use super::{AIM_BYTES_PER_NAME, AIM_CHANGE_MS, AIM_START_S, AIM_VS_KNOTD_MEMORY, AIM_VS_KNOTD_START, ZoneResults};

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "not met" }
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0))
}

/// (figure, value, aim, verdict) rows.
fn rows(r: &ZoneResults) -> Vec<[String; 4]> {
    let mut out = Vec::new();
    if let Some(s) = &r.start {
        out.push([
            "start: spawn to every answer installed (XDP answers the last name, map entries settled)".into(),
            format!("{:.2} s", s.installed_s),
            format!("< {AIM_START_S:.0} s"),
            verdict(s.installed_s < AIM_START_S).into(),
        ]);
    }
    if let Some(m) = &r.memory {
        let label = if r.start.is_some() {
            "memory per name: daemon RSS + BPF map memlock"
        } else {
            "memory per name when the run stopped, before the start completed (a lower bound)"
        };
        out.push([
            label.into(),
            format!("{:.0} B ({:.0} + {:.0})", m.total_per_name, m.rss_per_name, m.bpf_per_name),
            format!("< {AIM_BYTES_PER_NAME:.0} B"),
            verdict(m.total_per_name < AIM_BYTES_PER_NAME).into(),
        ]);
    }
    if let Some(c) = &r.change_summary {
        out.push([
            format!("one-record change, API call to the new answer from XDP (p50 / max of {})", c.ok),
            format!("{:.2} / {:.2} ms", c.xdp_p50_ms, c.xdp_max_ms),
            format!("< {AIM_CHANGE_MS:.0} ms"),
            verdict(c.xdp_max_ms < AIM_CHANGE_MS).into(),
        ]);
    }
    let vs_knotd = [
        (Figure::Start, "start against knotd's (knotd: spawn to the last name answered)", AIM_VS_KNOTD_START, "s"),
        (Figure::MemorySettled, "memory per name against knotd's RSS per name", AIM_VS_KNOTD_MEMORY, "B"),
        (
            Figure::ReloadP50,
            "zone file reload, one record changed: SIGHUP to the new answer from XDP against knotc zone-reload to the new answer (p50)",
            1.0,
            "ms",
        ),
    ];
    for (what, label, aim, unit) in vs_knotd {
        if let Some((a, b, x)) = compare::against_knotd(r, what) {
            // The reload must be faster; start and memory may reach the bound.
            let (met, bound) = if what == Figure::ReloadP50 { (x < aim, "< 1x") } else { (x <= aim, "<= 1.5x") };
            let digits = if unit == "B" { 0 } else { 2 };
            out.push([
                label.into(),
                format!("{x:.2}x ({a:.digits$} / {b:.digits$} {unit})"),
                bound.into(),
                verdict(met).into(),
            ]);
        }
    }
    out
}

/// Marks where one zone size's section starts in BENCHMARKS-zone.md.
const SECTION: &str = "<!-- bench-zone names=";

/// summary.md: this run alone.
pub fn markdown(r: &ZoneResults) -> String {
    page(&[section(r)])
}

/// BENCHMARKS-zone.md: this run's section in place of the one of the same zone size in `old`, the
/// other sizes kept (largest first), so a 1,000,000-name run does not erase the 100,000-name figures.
pub fn publish(r: &ZoneResults, old: &str) -> String {
    let mut sections: Vec<(usize, String)> = old
        .split(SECTION)
        .skip(1)
        .filter_map(|part| {
            let names: usize = part.split(' ').next()?.parse().ok()?;
            // A section ends where the page's fixed text starts.
            let body = part.split(HOW_HEADING).next()?.trim_end();
            Some((names, format!("{SECTION}{body}\n")))
        })
        .filter(|(n, _)| *n != r.meta.names)
        .collect();
    sections.push((r.meta.names, section(r)));
    sections.sort_by_key(|(n, _)| std::cmp::Reverse(*n));
    page(&sections.into_iter().map(|(_, s)| s).collect::<Vec<_>>())
}

fn page(sections: &[String]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Benchmarks: one large zone\n");
    let _ = writeln!(
        s,
        "Written by `cargo xtask bench-zone` (xtask/src/bench/large_zone/), one section per zone size, each from one \
         run on one machine; the daemon is measured black-box (CLI, DNS, control API, /metrics, /proc).\n"
    );
    for sec in sections {
        s.push_str(sec);
        s.push('\n');
    }
    s.push_str(HOW);
    s
}

fn section(r: &ZoneResults) -> String {
    let m = &r.meta;
    let mut s = String::new();
    let _ = writeln!(s, "{SECTION}{} -->", m.names);
    let _ = writeln!(s, "## {} names\n", m.names);
    let _ = writeln!(s, "- Run: {} UTC, `{}`", m.started, m.command);
    if let Some(mc) = &m.machine {
        let _ = writeln!(
            s,
            "- Machine: {} ({} cores, {}), kernel {}, host `{}`",
            mc.cpu, mc.cores, mc.mem_total, m.kernel, mc.hostname
        );
    }
    let la = |l: [f64; 3]| format!("{:.2} {:.2} {:.2}", l[0], l[1], l[2]);
    let _ = writeln!(
        s,
        "- Machine load: loadavg {} at start ({} compilers running), {} at end",
        la(m.loadavg_start),
        m.compilers_running_start,
        m.loadavg_end.map(la).unwrap_or_else(|| "-".into())
    );
    let _ = writeln!(s, "- dns-xdp: {}", m.dns_xdp);
    let _ = writeln!(
        s,
        "- Zone: {} names under big.test. ({:.1} MB file, generated in {:.1} s): A with distinct addresses; every 4th \
         name also AAAA, every 50th MX and TXT, 1% CNAME",
        m.names,
        m.zone_file_bytes as f64 / 1e6,
        m.zone_gen_s
    );
    let _ = writeln!(s, "- Daemon: `dns-xdp {}`", m.daemon_args.join(" "));
    for n in &m.notes {
        let _ = writeln!(s, "- {n}");
    }
    if let Some(e) = &r.error {
        let _ = writeln!(s, "\n**The run did not complete:** {}\n", e.replace('\n', " "));
    }

    let _ = writeln!(s, "\n### Against the issue's aims\n");
    let _ = writeln!(s, "| figure | measured | aim | |");
    let _ = writeln!(s, "|---|---:|---:|---|");
    for [a, b, c, d] in rows(r) {
        let _ = writeln!(s, "| {a} | {b} | {c} | {d} |");
    }

    if let Some(st) = &r.start {
        let _ = writeln!(s, "\n### Start\n");
        let _ = writeln!(s, "Seconds since the daemon was spawned.\n");
        let opt = |x: Option<f64>| x.map(|v| format!("{v:.2}")).unwrap_or_else(|| "-".into());
        let _ = writeln!(s, "| moment | s |");
        let _ = writeln!(s, "|---|---:|");
        let _ = writeln!(s, "| /healthz first 200 | {} |", opt(st.healthz_s));
        let _ = writeln!(s, "| first right answer for the last name (any path) | {} |", opt(st.first_answer_s));
        let _ = writeln!(s, "| the same answered by XDP | {:.2} |", st.last_name_xdp_s);
        let _ = writeln!(
            s,
            "| dnsxdp_bpf_map_entries reached its final value ({}) | {} |",
            st.map_entries.map(|n| n.to_string()).unwrap_or_else(|| "-".into()),
            opt(st.entries_final_s)
        );
        let _ = writeln!(s, "| **all answers installed** | **{:.2}** |", st.installed_s);
    }
    if !r.log.is_empty() {
        let _ = writeln!(s, "\nThe daemon's log during the start, seconds since the spawn:\n\n```");
        for (t, line) in r.log.iter().take(40) {
            let _ = writeln!(s, "+{t:7.3}s {line}");
        }
        let _ = writeln!(s, "```");
    }
    if let Some(pm) = &r.memory {
        let mm = &pm.memory;
        let _ = writeln!(s, "\n### Memory\n");
        let _ = writeln!(
            s,
            "Read {:.1} s after the spawn{}, divided by {} names.\n",
            pm.at_s,
            if r.start.is_none() { ", when the run stopped before the start completed" } else { "" },
            m.names
        );
        let _ = writeln!(s, "| part | total | per name |");
        let _ = writeln!(s, "|---|---:|---:|");
        let _ = writeln!(s, "| daemon VmRSS | {} | {:.0} B |", mib(mm.rss_bytes), pm.rss_per_name);
        let _ = writeln!(
            s,
            "| daemon VmHWM (peak RSS) | {} | {:.0} B |",
            mib(mm.rss_peak_bytes),
            mm.rss_peak_bytes as f64 / m.names as f64
        );
        let _ = writeln!(
            s,
            "| BPF maps, memlock ({} maps) | {} | {:.0} B |",
            mm.bpf_maps,
            mib(mm.bpf_memlock_bytes),
            pm.bpf_per_name
        );
        let _ = writeln!(
            s,
            "| **RSS + BPF** | **{}** | **{:.0} B** |",
            mib(mm.rss_bytes + mm.bpf_memlock_bytes),
            pm.total_per_name
        );
        if let Some(after) = &r.memory_after_changes {
            let am = &after.memory;
            let _ = writeln!(
                s,
                "\nAfter the changes ({:.1} s): VmRSS {}, VmHWM {} (the peak includes the changes' recompiles), BPF maps {}.",
                after.at_s,
                mib(am.rss_bytes),
                mib(am.rss_peak_bytes),
                mib(am.bpf_memlock_bytes)
            );
        }
    }
    compare::markdown(r, &mut s);
    reloads(r, &mut s);
    if !r.changes.is_empty() {
        let _ = writeln!(s, "\n### One-record changes\n");
        if let Some(c) = &r.change_summary {
            let _ = writeln!(
                s,
                "{} of {} changes served. New answer from XDP: p50 {:.2} ms, max {:.2} ms. First reply with the new \
                 address (any path): p50 {:.2} ms, max {:.2} ms. API 200 response: p50 {:.2} ms, max {:.2} ms. \
                 Samples in which the daemon answered some polls: {}.\n",
                c.ok,
                r.changes.len(),
                c.xdp_p50_ms,
                c.xdp_max_ms,
                c.first_new_p50_ms,
                c.first_new_max_ms,
                c.api_p50_ms,
                c.api_max_ms,
                c.with_daemon_answers
            );
        }
        let ms = |x: Option<f64>| x.map(|v| format!("{v:.2}")).unwrap_or_else(|| "-".into());
        let _ = writeln!(
            s,
            "Polls by the daemon: the polls whose replies the packet tap saw leave through the stack / the daemon's \
             reply counter over the same window; of them, the replies that already carried the new address.\n"
        );
        let _ = writeln!(
            s,
            "| name | API status | API ms | first new ms | from XDP ms | polls sent / answered | polls by the daemon: tap / \
             counter / with new address | error |"
        );
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---|");
        for c in &r.changes {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} / {} | {} / {} / {} | {} |",
                c.name,
                c.api_status.map(|x| x.to_string()).unwrap_or_else(|| "-".into()),
                ms(c.api_ms),
                ms(c.seen.first_new_ms),
                ms(c.seen.xdp_ms),
                c.seen.polls_sent,
                c.seen.polls_answered,
                c.seen.daemon_answered,
                c.seen.daemon_answered_metrics,
                c.seen.new_from_daemon,
                c.error.as_deref().unwrap_or("").replace('|', "/")
            );
        }
    }
    let _ = writeln!(
        s,
        "\nRaw figures: `results.json` in the run's directory (default target/bench-zone/); the daemon's log with \
         times: `daemon.log` there."
    );
    s
}

/// Every reload sample of every server, in one table.
fn reloads(r: &ZoneResults, s: &mut String) {
    let all: Vec<(&str, &Reload)> = r
        .reloads
        .iter()
        .map(|x| ("dns-xdp", x))
        .chain(r.references.iter().flat_map(|f| f.reloads.iter().map(|x| (f.server.as_str(), x))))
        .collect();
    if all.is_empty() {
        return;
    }
    let _ = writeln!(s, "\n### Zone file reloads\n");
    let _ = writeln!(
        s,
        "Each reload rewrites the server's zone file with one more name moved to a new address and the SOA serial \
         bumped, then sets it off; times from just before the command. From XDP: dns-xdp's new answer as in the \
         changes below.\n"
    );
    let _ = writeln!(
        s,
        "| server | name | serial | command | command ms | first new ms | from XDP ms | polls sent / answered | error |"
    );
    let _ = writeln!(s, "|---|---|---:|---|---:|---:|---:|---:|---|");
    let ms = |x: Option<f64>| x.map(|v| format!("{v:.2}")).unwrap_or_else(|| "-".into());
    for (server, x) in all {
        let _ = writeln!(
            s,
            "| {server} | {} | {} | `{}` | {} | {} | {} | {} / {} | {} |",
            x.name,
            x.serial,
            x.command,
            ms(x.command_ms),
            ms(x.seen.first_new_ms),
            ms(x.seen.xdp_ms),
            x.seen.polls_sent,
            x.seen.polls_answered,
            x.error.as_deref().unwrap_or("").replace('|', "/")
        );
    }
}

pub fn terminal(r: &ZoneResults) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "bench-zone: {} names, dns-xdp {}", r.meta.names, r.meta.dns_xdp);
    for [a, b, c, d] in rows(r) {
        let _ = writeln!(s, "  {a}: {b} (aim {c}: {d})");
    }
    if let Some(c) = &r.change_summary {
        let _ = writeln!(
            s,
            "  API 200 response: p50 {:.2} ms, max {:.2} ms; first new answer (any path): p50 {:.2} ms, max {:.2} ms",
            c.api_p50_ms, c.api_max_ms, c.first_new_p50_ms, c.first_new_max_ms
        );
    }
    for row in compare::rows(r).iter().filter(|row| !row.refs.is_empty()) {
        let refs: Vec<String> = r
            .references
            .iter()
            .zip(&row.refs)
            .map(|(f, &v)| {
                let x = compare::ratio(row.dns_xdp, v).map(|x| format!("{x:.2}x")).unwrap_or_else(|| "-".into());
                format!("{} {} ({x})", f.server, v.map(|v| format!("{v:.2}")).unwrap_or_else(|| "-".into()))
            })
            .collect();
        let dns_xdp = row.dns_xdp.map(|v| format!("{v:.2}")).unwrap_or_else(|| "-".into());
        let _ = writeln!(s, "  {}: dns-xdp {dns_xdp}; {}", row.what.label(), refs.join("; "));
    }
    if let Some(e) = &r.error {
        let _ = writeln!(s, "  did not complete: {e}");
    }
    for f in &r.references {
        if let Some(e) = &f.error {
            let _ = writeln!(s, "  {} did not complete: {e}", f.server);
        }
    }
    s
}

const HOW_HEADING: &str = "## How to run";
const HOW: &str = "## How to run

```
cargo xtask bench-zone                          # 1,000,000 names, 20 changes, 3 reloads; writes this file
cargo xtask bench-zone --names 100000 --repeat 20
cargo xtask bench-zone --names 10000 --repeat 3 --no-publish   # quick look; target/bench-zone only
```

Needs root (namespaces, XDP). Builds first unless `--no-build`. `--start-timeout SECS` (default 900),
`--change-timeout SECS` (default 300, per change) and
`--max-mem-mib N` (default 12288: daemon RSS + BPF maps) stop a start that takes too long or too much of a
shared machine; the run then records what it saw and how it ended. `--answers-capacity auto|none|N` (auto: 8
entries per name, passed only while `dns-xdp serve --help` lists the flag) keeps every answer in the map rather
than in the hot set. `--journal` gives the daemon a journal, so each API write includes an fsync.
`--reloads N` (default 3) zone file reloads per server; `--refs knotd,nsd` (the default) are the servers run
after dns-xdp on the same zone for the side-by-side table, `--no-refs` runs none.
`cargo xtask test` runs it with 10,000 names, 3 changes and 2 reloads, knotd and NSD too, and checks only that the
figures exist and parse.
";

#[cfg(test)]
mod tests {
    use super::super::change::{Change, ChangeSummary, Polled};
    use super::super::{PerName, Start, ZoneResults};
    use super::*;

    #[test]
    fn renders_figures_against_the_aims() {
        let mut r = ZoneResults::default();
        r.meta.names = 1000;
        r.start =
            Some(Start { last_name_xdp_s: 2.0, entries_final_s: Some(2.5), installed_s: 2.5, ..Start::default() });
        r.memory =
            Some(PerName { total_per_name: 2048.0, rss_per_name: 1024.0, bpf_per_name: 1024.0, ..PerName::default() });
        let seen = Polled { xdp_ms: Some(3.0), ..Polled::default() };
        r.changes = vec![Change { name: "h1.big.test.".into(), seen, ..Change::default() }];
        r.change_summary = Some(ChangeSummary { ok: 1, xdp_p50_ms: 3.0, xdp_max_ms: 3.0, ..ChangeSummary::default() });
        let md = markdown(&r);
        assert!(md.contains("| 2.50 s | < 10 s | met |"), "{md}");
        assert!(md.contains("| 2048 B (1024 + 1024) | < 1024 B | not met |"), "{md}");
        assert!(md.contains("| 3.00 / 3.00 ms | < 5 ms | met |"), "{md}");
        assert!(terminal(&r).contains("aim < 10 s: met"));
    }

    #[test]
    fn publishing_replaces_only_the_section_of_the_same_size() {
        let mut small = ZoneResults::default();
        small.meta.names = 1000;
        small.meta.started = "first".into();
        let mut big = ZoneResults::default();
        big.meta.names = 5000;
        let page = publish(&small, "");
        let page = publish(&big, &page);
        small.meta.started = "second".into();
        let page = publish(&small, &page);
        assert_eq!(page.matches("## How to run").count(), 1, "{page}");
        let (big_at, small_at) = (page.find("## 5000 names").unwrap(), page.find("## 1000 names").unwrap());
        assert!(big_at < small_at, "largest first: {page}");
        assert!(page.contains("Run: second") && !page.contains("Run: first"), "{page}");
    }
}
