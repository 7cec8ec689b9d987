//! dns-xdp beside the reference servers of the same run (knotd, NSD): one figure a row, each
//! server's value and dns-xdp's ratio to it (below 1: dns-xdp took less time or memory).

use std::fmt::Write as _;

use super::refs::Reference;
use super::{PerName, ZoneResults};

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Unit {
    Seconds,
    Millis,
    BytesPerName,
    MiB,
}

impl Unit {
    fn show(self, v: Option<f64>) -> String {
        let Some(v) = v else { return "-".into() };
        match self {
            Unit::Seconds => format!("{v:.2} s"),
            Unit::Millis => format!("{v:.1} ms"),
            Unit::BytesPerName => format!("{v:.0} B"),
            Unit::MiB => format!("{v:.1} MiB"),
        }
    }
}

/// One figure: dns-xdp's value, and each reference's in the order of `ZoneResults::references`.
#[derive(Debug)]
pub struct Row {
    pub what: Figure,
    pub dns_xdp: Option<f64>,
    pub refs: Vec<Option<f64>>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Figure {
    Start,
    FirstAnswer,
    MemorySettled,
    MemoryPeak,
    MemoryPss,
    MemoryTotal,
    ReloadP50,
    ReloadMax,
}

impl Figure {
    const ALL: [Figure; 8] = [
        Figure::Start,
        Figure::FirstAnswer,
        Figure::MemorySettled,
        Figure::MemoryPeak,
        Figure::MemoryPss,
        Figure::MemoryTotal,
        Figure::ReloadP50,
        Figure::ReloadMax,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Figure::Start => "start: spawn to the last name answered (dns-xdp: by XDP, every map entry installed)",
            Figure::FirstAnswer => "start: spawn to the first right answer for the last name, any path",
            Figure::MemorySettled => "memory per name, settled: RSS (dns-xdp: + BPF maps)",
            Figure::MemoryPeak => "memory per name, peak: VmHWM (dns-xdp: + BPF maps)",
            Figure::MemoryPss => "memory per name, settled: PSS (dns-xdp: + BPF maps)",
            Figure::MemoryTotal => "memory, settled: RSS (dns-xdp: + BPF maps)",
            Figure::ReloadP50 => {
                "zone file reloaded with one record changed: command to the new answer (dns-xdp: SIGHUP, from XDP), p50"
            }
            Figure::ReloadMax => "the same, max",
        }
    }

    fn unit(self) -> Unit {
        match self {
            Figure::Start | Figure::FirstAnswer => Unit::Seconds,
            Figure::MemorySettled | Figure::MemoryPeak | Figure::MemoryPss => Unit::BytesPerName,
            Figure::MemoryTotal => Unit::MiB,
            Figure::ReloadP50 | Figure::ReloadMax => Unit::Millis,
        }
    }

    fn of_memory(self, m: &PerName, names: usize) -> Option<f64> {
        let mm = &m.memory;
        let per_name = |b: u64| b as f64 / names.max(1) as f64;
        match self {
            Figure::MemorySettled => Some(m.total_per_name),
            Figure::MemoryPeak => Some(per_name(mm.rss_peak_bytes + mm.bpf_memlock_bytes)),
            // Results from before PSS was read have none.
            Figure::MemoryPss => (mm.pss_bytes > 0).then(|| per_name(mm.pss_bytes + mm.bpf_memlock_bytes)),
            Figure::MemoryTotal => Some((mm.rss_bytes + mm.bpf_memlock_bytes) as f64 / (1024.0 * 1024.0)),
            _ => None,
        }
    }

    fn of_dns_xdp(self, r: &ZoneResults) -> Option<f64> {
        match self {
            Figure::Start => r.start.as_ref().map(|s| s.installed_s),
            Figure::FirstAnswer => r.start.as_ref().and_then(|s| s.first_answer_s),
            Figure::ReloadP50 => r.reload_summary.as_ref().map(|s| s.served_p50_ms),
            Figure::ReloadMax => r.reload_summary.as_ref().map(|s| s.served_max_ms),
            f => f.of_memory(r.memory.as_ref()?, r.meta.names),
        }
    }

    fn of_ref(self, f: &Reference, names: usize) -> Option<f64> {
        match self {
            Figure::Start | Figure::FirstAnswer => f.start.as_ref().map(|s| s.last_name_s),
            Figure::ReloadP50 => f.reload_summary.as_ref().map(|s| s.served_p50_ms),
            Figure::ReloadMax => f.reload_summary.as_ref().map(|s| s.served_max_ms),
            m => m.of_memory(f.memory.as_ref()?, names),
        }
    }
}

pub fn rows(r: &ZoneResults) -> Vec<Row> {
    Figure::ALL
        .into_iter()
        .map(|what| Row {
            what,
            dns_xdp: what.of_dns_xdp(r),
            refs: r.references.iter().map(|f| what.of_ref(f, r.meta.names)).collect(),
        })
        .collect()
}

/// `a / b` when both are there and `b` is not zero.
pub fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

/// (dns-xdp's value, knotd's, their ratio) for one figure, when the run had knotd.
pub fn against_knotd(r: &ZoneResults, what: Figure) -> Option<(f64, f64, f64)> {
    let k = r.references.iter().position(|f| f.server == "knotd")?;
    let row = rows(r).into_iter().find(|row| row.what == what)?;
    let (a, b) = (row.dns_xdp?, row.refs[k]?);
    Some((a, b, ratio(Some(a), Some(b))?))
}

/// The side-by-side table and what each reference ran, for summary.md and BENCHMARKS-zone.md.
pub fn markdown(r: &ZoneResults, s: &mut String) {
    if r.references.is_empty() {
        return;
    }
    let _ = writeln!(s, "\n### Beside knotd and NSD\n");
    let _ = writeln!(
        s,
        "The same zone file, the same namespaces, one server after the other in this run. A ratio is dns-xdp's \
         figure over the other server's: below 1, dns-xdp took less time or memory.\n"
    );
    let names: Vec<&str> = r.references.iter().map(|f| f.server.as_str()).collect();
    let _ = writeln!(
        s,
        "| figure | dns-xdp | {} | {} |",
        names.join(" | "),
        names.iter().map(|n| format!("dns-xdp / {n}")).collect::<Vec<_>>().join(" | ")
    );
    let _ = writeln!(s, "|---|---:|{}", "---:|".repeat(2 * names.len()));
    for row in rows(r) {
        let unit = row.what.unit();
        let values: Vec<String> = row.refs.iter().map(|&v| unit.show(v)).collect();
        let ratios: Vec<String> = row
            .refs
            .iter()
            .map(|&v| ratio(row.dns_xdp, v).map(|x| format!("{x:.2}")).unwrap_or_else(|| "-".into()))
            .collect();
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} |",
            row.what.label(),
            unit.show(row.dns_xdp),
            values.join(" | "),
            ratios.join(" | ")
        );
    }
    let _ = writeln!(s);
    for f in &r.references {
        let processes = f.memory.as_ref().map(|m| m.memory.processes).unwrap_or(0);
        let _ = writeln!(
            s,
            "- {}: {}; `{}`{}{}",
            f.server,
            f.version,
            f.command,
            if processes > 1 { format!("; memory summed over its {processes} processes") } else { String::new() },
            f.error.as_ref().map(|e| format!("; **did not complete:** {}", e.replace('\n', " "))).unwrap_or_default()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::reload::ReloadSummary;
    use super::super::{Start, refs::RefStart};
    use super::*;

    #[test]
    fn ratios_put_dns_xdp_over_each_reference() {
        let mut r = ZoneResults::default();
        r.meta.names = 1000;
        r.start = Some(Start { installed_s: 3.0, first_answer_s: Some(1.0), ..Start::default() });
        r.memory = Some(PerName { total_per_name: 300.0, ..PerName::default() });
        r.reload_summary = Some(ReloadSummary { ok: 1, served_p50_ms: 20.0, served_max_ms: 30.0 });
        let knotd = Reference {
            server: "knotd".into(),
            start: Some(RefStart { first_reply_s: Some(0.1), last_name_s: 2.0 }),
            memory: Some(PerName { total_per_name: 200.0, ..PerName::default() }),
            reload_summary: Some(ReloadSummary { ok: 1, served_p50_ms: 40.0, served_max_ms: 50.0 }),
            ..Reference::default()
        };
        let nsd = Reference { server: "nsd".into(), error: Some("nsd did not start".into()), ..Reference::default() };
        r.references = vec![knotd, nsd];
        assert_eq!(against_knotd(&r, Figure::Start), Some((3.0, 2.0, 1.5)));
        assert_eq!(against_knotd(&r, Figure::MemorySettled), Some((300.0, 200.0, 1.5)));
        assert_eq!(against_knotd(&r, Figure::ReloadP50), Some((20.0, 40.0, 0.5)));
        let mut md = String::new();
        markdown(&r, &mut md);
        assert!(md.contains("| dns-xdp | knotd | nsd | dns-xdp / knotd | dns-xdp / nsd |"), "{md}");
        assert!(md.contains("| 3.00 s | 2.00 s | - | 1.50 | - |"), "{md}");
        assert!(md.contains("**did not complete:** nsd did not start"), "{md}");
    }
}
