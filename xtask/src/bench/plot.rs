//! PNG plots drawn by the suite: replies/s per server and load, and latency percentile curves per server
//! (dnsperf's fixed rate, and xdpgen's at 90% of the XDP_TX ceiling).
//!
//! Text is rendered with ab_glyph from DejaVu Sans read at run time (Debian `fonts-dejavu-core`), so there
//! is no fontconfig/freetype build dependency; without the font the suite skips the plots and says so.

use std::path::Path;

use anyhow::{Context as _, Result, anyhow, bail};
use plotters::prelude::*;

use super::load::{CDF_QUANTILES, LOADS, Tool};
use super::report::{self, over_reps};
use super::results::Results;
use super::servers::Server;

const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
const SIZE: (u32, u32) = (1100, 560);
/// x units per load group in the bar chart.
const GROUP: i32 = 1000;

/// One colour per server, stable across plots.
fn colour(s: Server) -> RGBColor {
    match s {
        Server::DnsXdp => RGBColor(0xd6, 0x27, 0x28),
        Server::DnsXdpOff => RGBColor(0xff, 0x98, 0x96),
        Server::Knot => RGBColor(0x1f, 0x77, 0xb4),
        Server::KnotXdp => RGBColor(0x9e, 0xda, 0xe5),
        Server::Nsd => RGBColor(0x2c, 0xa0, 0x2c),
        Server::XdpTxCeiling => RGBColor(0x7f, 0x7f, 0x7f),
    }
}

/// Register the font once; Err says why plots are skipped.
pub fn init_font() -> Result<()> {
    static DONE: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    DONE.get_or_init(|| {
        let bytes = std::fs::read(FONT).map_err(|e| format!("{FONT}: {e} (apt-get install fonts-dejavu-core)"))?;
        // plotters keeps fonts for the life of the process; leaking one file is exactly that.
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
            .map_err(|_| format!("{FONT}: not a font"))
    })
    .clone()
    .map_err(|e| anyhow!(e))
}

/// Grouped bars: for each throughput load, one bar per server at its median, with a min-max whisker.
pub fn replies(r: &Results, path: &Path) -> Result<()> {
    init_font()?;
    let servers = report::servers(r);
    // Throughput loads that ran (kxdpgun only where the kernel accepts it).
    let loads: Vec<&str> = LOADS
        .iter()
        .filter(|l| !matches!(l.tool, Tool::DnsperfLatency | Tool::XdpgenAt(_)))
        .filter(|l| servers.iter().any(|&s| over_reps(r, s, l.id, |f| f.replies_per_s).is_some()))
        .map(|l| l.id)
        .collect();
    let stats: Vec<Vec<Option<report::Stat>>> =
        loads.iter().map(|l| servers.iter().map(|&s| over_reps(r, s, l, |f| f.replies_per_s)).collect()).collect();
    let top = stats.iter().flatten().flatten().map(|s| s.max).fold(0.0, f64::max);
    if top <= 0.0 {
        bail!("no replies/s figures to plot");
    }
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    // Integer x (GROUP units per load): plotters formats key points of integer ranges only.
    let n = loads.len() as i32 * GROUP;
    let centres: Vec<i32> = (0..n / GROUP).map(|i| i * GROUP + GROUP / 2).collect();
    let mut chart = ChartBuilder::on(&root)
        .caption("Replies per second (median, min-max whisker)", ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d((0..n).with_key_points(centres), 0.0..top * 1.12)
        .map_err(plot_err)?;
    let names = loads.clone();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_label_formatter(&|x| names.get((*x / GROUP) as usize).map(|s| s.to_string()).unwrap_or_default())
        .y_label_formatter(&|y| format!("{:.0}k", y / 1000.0))
        .y_desc("replies/s")
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(plot_err)?;
    let width = GROUP * 8 / 10 / servers.len() as i32;
    for (si, &server) in servers.iter().enumerate() {
        let c = colour(server);
        let bars = stats.iter().enumerate().filter_map(|(li, row)| {
            let s = row[si]?;
            let x0 = li as i32 * GROUP + GROUP / 10 + si as i32 * width;
            Some((x0, s))
        });
        let bars: Vec<(i32, report::Stat)> = bars.collect();
        chart
            .draw_series(
                bars.iter().map(|&(x0, s)| Rectangle::new([(x0, 0.0), (x0 + width * 9 / 10, s.median)], c.filled())),
            )
            .map_err(plot_err)?
            .label(server.name())
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], c.filled()));
        chart
            .draw_series(bars.iter().map(|&(x0, s)| {
                let xm = x0 + width * 9 / 20;
                PathElement::new(vec![(xm, s.min), (xm, s.max)], BLACK.stroke_width(2))
            }))
            .map_err(plot_err)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()
        .map_err(plot_err)?;
    root.present().map_err(plot_err)?;
    Ok(())
}

/// Latency by percentile at dnsperf's fixed rate (IPv4).
pub fn latency(r: &Results, path: &Path) -> Result<()> {
    let title = format!(
        "Latency by percentile, dnsperf at {} q/s over IPv4 (median of repetitions)",
        r.meta.params.latency_qps
    );
    latency_of(r, path, "dnsperf-latency-v4", &title)
}

/// Latency by percentile under xdpgen at 90% of the XDP_TX ceiling (IPv4).
pub fn latency_under_load(r: &Results, path: &Path) -> Result<()> {
    let title = "Latency by percentile, xdpgen at 90% of the XDP_TX ceiling over IPv4 (median of repetitions)";
    latency_of(r, path, "xdpgen-at90-v4", title)
}

/// Latency by percentile under `load`, one line per server: x is -log10(1-q) so the tail (p99, p99.9)
/// gets room; each point is the median over repetitions.
fn latency_of(r: &Results, path: &Path, load: &str, title: &str) -> Result<()> {
    init_font()?;
    let servers = report::servers(r);
    let curves: Vec<(Server, Vec<(i32, f64)>)> = servers
        .iter()
        .map(|&s| {
            let pts = CDF_QUANTILES
                .iter()
                .filter_map(|&q| {
                    let st = over_reps(r, s, load, |f| {
                        f.latency_cdf.iter().find(|(fq, _)| (fq - q).abs() < 1e-12).map(|&(_, ms)| ms)
                    })?;
                    Some((x_of(q), st.median))
                })
                .collect();
            (s, pts)
        })
        .filter(|(_, pts): &(Server, Vec<(i32, f64)>)| !pts.is_empty())
        .collect();
    let all = curves.iter().flat_map(|(_, p)| p.iter().map(|&(_, y)| y));
    let (lo, hi) = all.fold((f64::MAX, 0.0f64), |(lo, hi), y| (lo.min(y), hi.max(y)));
    if curves.is_empty() || hi <= 0.0 {
        bail!("no latency figures to plot");
    }
    let lo = (lo * 0.8).max(0.001);
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let ticks = [0.0, 0.5, 0.9, 0.99, 0.999, 0.9999].map(x_of).to_vec();
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d((0..x_of(0.99991)).with_key_points(ticks), (lo..hi * 1.5).log_scale())
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_label_formatter(&|x| {
            let q = 100.0 * (1.0 - 10f64.powf(-f64::from(*x) / 1000.0));
            if q < 0.5 { "p0".into() } else { format!("p{}", (q * 100.0).round() / 100.0) }
        })
        .y_label_formatter(&|y| format!("{y:.3}"))
        .y_desc("ms (log)")
        .x_desc("percentile")
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(plot_err)?;
    for (server, pts) in curves {
        let c = colour(server);
        chart
            .draw_series(LineSeries::new(pts, c.stroke_width(3)))
            .map_err(plot_err)?
            .label(server.name())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(3)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()
        .map_err(plot_err)?;
    root.present().map_err(plot_err)?;
    Ok(())
}

/// Milli-units of -log10(1 - q): p90 at 1000, p99 at 2000, p99.9 at 3000.
fn x_of(q: f64) -> i32 {
    (-(1.0 - q).log10() * 1000.0).round() as i32
}

fn plot_err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing a plot: {e:?}")
}

/// Draw both plots into `dir`; returns (caption, file name) of those drawn, warning about the rest.
pub fn draw_all(r: &Results, dir: &Path) -> Vec<(String, String)> {
    let mut drawn = Vec::new();
    type Draw = fn(&Results, &Path) -> Result<()>;
    let jobs: [(&str, &str, Draw); 3] = [
        ("Replies per second per server and load", "replies.png", replies),
        ("Latency by percentile per server", "latency.png", latency),
        (
            "Latency by percentile under load (xdpgen at 90% of the ceiling)",
            "latency-under-load.png",
            latency_under_load,
        ),
    ];
    for (caption, file, draw) in jobs {
        match draw(r, &dir.join(file)).with_context(|| format!("plot {file}")) {
            Ok(()) => drawn.push((caption.to_owned(), file.to_owned())),
            Err(e) => eprintln!("bench: skipping {file}: {e:#}"),
        }
    }
    drawn
}
