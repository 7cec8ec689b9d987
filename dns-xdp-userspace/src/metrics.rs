//! The HTTP endpoint serving `GET /metrics` (OpenMetrics text, through prometheus-client's
//! encoder) and `GET /healthz`. Owns the series' names and how each part's counters are rendered:
//! the daemon's (state.rs), the rate limiter's, shadow validation's, and the XDP program's, which
//! it reads through a `KernelReader` it is handed (it does not know the loader).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State as Extract;
use axum::http::{HeaderValue, Method, Response, StatusCode, Uri, header};
use dns_xdp_common::dns::rcode;
use dns_xdp_common::stat;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeCounterValue, EncodeGaugeValue, EncodeLabelValue, EncodeMetric, LabelValueEncoder,
    MetricEncoder,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};
use tokio::net::TcpListener;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

use crate::respond::Transport;
use crate::rrl::Limiter;
use crate::shadow::{self, Shadow};
use crate::state::{RCODES, State};

const ACTIONS: [(&str, u32); 6] = [
    ("tx", stat::ACTION_TX),
    ("pass", stat::ACTION_PASS),
    ("drop", stat::ACTION_DROP),
    ("aborted", stat::ACTION_ABORTED),
    ("rate_limited", stat::ACTION_RATE_LIMITED),
    ("slip", stat::ACTION_SLIP),
];

/// Response kinds as the limiter names them (index = `rrl_kind`).
const RRL_KINDS: [&str; dns_xdp_common::rrl_kind::COUNT as usize] =
    ["unclassified", "positive", "nodata", "nxdomain", "referral", "error"];

const PASS_REASONS: [(&str, u32); 14] = [
    ("not_ip", stat::PASS_NOT_IP),
    ("ip_unusual", stat::PASS_IP_UNUSUAL),
    ("not_dns", stat::PASS_NOT_DNS),
    ("header", stat::PASS_HEADER),
    ("qname", stat::PASS_QNAME),
    ("qclass", stat::PASS_QCLASS),
    ("edns", stat::PASS_EDNS),
    ("miss", stat::PASS_MISS),
    ("too_big", stat::PASS_TOO_BIG),
    ("dnssec", stat::PASS_DNSSEC),
    ("resize", stat::PASS_RESIZE),
    ("disabled", stat::PASS_DISABLED),
    ("cookie", stat::PASS_COOKIE),
    ("marker", stat::PASS_MARKER),
];

/// What a scrape reads: registered once in the registry `serve_http` encodes on each request.
#[derive(Clone)]
pub struct Sources {
    pub state: Arc<State>,
    /// Shadow validation, when it runs.
    pub shadow: Option<Arc<Shadow>>,
    pub rrl: Arc<Limiter>,
    /// The XDP program's counters, when it runs.
    pub kernel: Option<KernelReader>,
}

/// The XDP program's counters at one scrape.
pub struct KernelCounters {
    /// The per-CPU STATS map summed, indexed by `dns_xdp_common::stat`.
    pub stats: Vec<u64>,
    /// Nanoseconds spent in the program and runs counted, while BPF stats are enabled.
    pub run_time: Option<(u64, u64)>,
}

/// Reads the XDP program's counters (from the loader's `Stats`, in whoever loaded the program).
pub type KernelReader = Arc<dyn Fn() -> Result<KernelCounters, aya::maps::MapError> + Send + Sync>;

impl std::fmt::Debug for Sources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("metrics::Sources")
    }
}

impl Collector for Sources {
    fn encode(&self, encoder: DescriptorEncoder) -> fmt::Result {
        collect(&mut Exposition(encoder), self)
    }
}

/// Every series, in the OpenMetrics text format (which Prometheus reads).
pub fn render(sources: &Sources) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(sources.clone()));
    let mut out = String::with_capacity(8192);
    if let Err(err) = prometheus_client::encoding::text::encode(&mut out, &registry) {
        log::warn!("encoding metrics: {err}");
    }
    out
}

/// Labels of one sample: (name, value); values are escaped on output (a zone name may hold `"`).
pub type Labels<'a> = &'a [(&'a str, &'a str)];

/// The families of one scrape, written through prometheus-client's encoder. Names are given whole,
/// as they appear in the output (`dnsxdp_responses_total`): the encoder adds a counter's `_total`.
pub struct Exposition<'a>(DescriptorEncoder<'a>);

impl Exposition<'_> {
    pub fn counter<N: EncodeCounterValue + Copy>(
        &mut self,
        name: &str,
        help: &str,
        samples: &[(Labels, N)],
    ) -> fmt::Result {
        let base = name.strip_suffix("_total").unwrap_or(name);
        let (base, unit) = match base.strip_suffix("_seconds") {
            Some(b) => (b, Some(Unit::Seconds)),
            None => (base, None),
        };
        let family = self.0.encode_descriptor(base, help, unit.as_ref(), MetricType::Counter)?;
        encode_samples(family, samples.iter().map(|(l, v)| (*l, ConstCounter::new(*v))))
    }

    pub fn gauge<N: EncodeGaugeValue + Copy>(
        &mut self,
        name: &str,
        help: &str,
        samples: &[(Labels, N)],
    ) -> fmt::Result {
        let family = self.0.encode_descriptor(name, help, None, MetricType::Gauge)?;
        encode_samples(family, samples.iter().map(|(l, v)| (*l, ConstGauge::new(*v))))
    }
}

/// One sample without labels is the family itself (no `{}`); otherwise each sample is a member.
fn encode_samples<'l, M: EncodeMetric>(
    mut family: MetricEncoder,
    samples: impl ExactSizeIterator<Item = (Labels<'l>, M)>,
) -> fmt::Result {
    let mut samples = samples.peekable();
    if samples.len() == 1
        && let Some(([], _)) = samples.peek()
    {
        let (_, metric) = samples.next().expect("peeked");
        return metric.encode(family);
    }
    for (labels, metric) in samples {
        metric.encode(family.encode_family(&escaped(labels))?)?;
    }
    Ok(())
}

fn escaped<'a>(labels: Labels<'a>) -> Vec<(&'a str, Escaped<'a>)> {
    labels.iter().map(|(k, v)| (*k, Escaped(v))).collect()
}

/// A label value as the exposition format wants it: `\`, `\"` and `\n` escaped. prometheus-client
/// writes `&str` label values as they are.
struct Escaped<'a>(&'a str);

impl EncodeLabelValue for Escaped<'_> {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> fmt::Result {
        use fmt::Write as _;
        let mut rest = self.0;
        while let Some(i) = rest.find(['\\', '"', '\n']) {
            encoder.write_str(&rest[..i])?;
            encoder.write_str(match rest.as_bytes()[i] {
                b'\\' => "\\\\",
                b'"' => "\\\"",
                _ => "\\n",
            })?;
            rest = &rest[i + 1..];
        }
        encoder.write_str(rest)
    }
}

fn collect(out: &mut Exposition, sources: &Sources) -> fmt::Result {
    let state = &sources.state;
    let m = &state.metrics;
    let (kernel, run_time) = match sources.kernel.as_ref().map(|read| read()) {
        Some(Ok(k)) => (Some(k.stats), k.run_time),
        Some(Err(err)) => {
            log::warn!("reading XDP counters (the STATS map): {err}");
            (None, None)
        }
        None => (None, None),
    };
    let mut responses = Vec::new();
    for transport in Transport::ALL {
        let sent = m.responses(transport);
        let t = ("transport", transport.label());
        for (i, rc) in RCODES.iter().enumerate() {
            responses.push((vec![("path", "userspace"), t, ("rcode", rcode::name(*rc))], sent[i]));
        }
        responses.push((vec![("path", "userspace"), t, ("rcode", "OTHER")], sent[RCODES.len()]));
    }
    if let Some(k) = &kernel {
        // XDP answers UDP only.
        for rc in RCODES.iter().filter(|rc| **rc < 16) {
            let labels = vec![("path", "xdp"), ("transport", "udp"), ("rcode", rcode::name(*rc))];
            responses.push((labels, k[(stat::TX_RCODE_BASE + u32::from(*rc)) as usize]));
        }
    }
    out.counter("dnsxdp_responses_total", "DNS responses sent, by path, transport and RCODE.", &borrowed(&responses))?;
    if let Some(k) = &kernel {
        let mut actions = vec![(&[("action", "rx")][..], k[stat::RX as usize])];
        let action_labels: Vec<[(&str, &str); 1]> = ACTIONS.iter().map(|(name, _)| [("action", *name)]).collect();
        actions.extend(ACTIONS.iter().zip(&action_labels).map(|((_, i), l)| (&l[..], k[*i as usize])));
        out.counter("dnsxdp_xdp_packets_total", "Packets seen by the XDP program, by action.", &actions)?;
        out.counter(
            "dnsxdp_xdp_resolved_total",
            "How XDP found the answers it sent other than by its name record's own slot for the type: in the hit index (the same answer, without the record lookup), a name's type-independent answer, or a closest encloser's answer for missing names.",
            &[
                (&[("how", "hit")], k[stat::TX_HIT as usize]),
                (&[("how", "default")], k[stat::TX_DEFAULT as usize]),
                (&[("how", "encloser")], k[stat::TX_ENCLOSER as usize]),
            ],
        )?;
        let reason_labels: Vec<[(&str, &str); 1]> = PASS_REASONS.iter().map(|(name, _)| [("reason", *name)]).collect();
        let passes: Vec<(Labels, u64)> =
            PASS_REASONS.iter().zip(&reason_labels).map(|((_, i), l)| (&l[..], k[*i as usize])).collect();
        out.counter("dnsxdp_xdp_pass_total", "Packets passed to the kernel stack, by reason.", &passes)?;
        if let Some((ns, runs)) = run_time {
            out.counter(
                "dnsxdp_xdp_run_seconds_total",
                "Time spent in the XDP program (while BPF stats are enabled).",
                &[(&[], ns as f64 / 1e9)],
            )?;
            out.counter(
                "dnsxdp_xdp_runs_total",
                "Runs of the XDP program (while BPF stats are enabled).",
                &[(&[], runs)],
            )?;
        }
        out.counter(
            "dnsxdp_xdp_drop_total",
            "Packets the XDP program dropped, by reason.",
            &[
                (&[("reason", "malformed")], k[stat::DROP_MALFORMED as usize]),
                (&[("reason", "reflection_port")], k[stat::DROP_REFLECTION_PORT as usize]),
                (&[("reason", "spoofed_source")], k[stat::DROP_SPOOFED_SOURCE as usize]),
            ],
        )?;
    }
    render_rrl(out, kernel.as_deref(), &sources.rrl)?;
    if let Some(shadow) = &sources.shadow {
        render_shadow(out, shadow, kernel.as_deref())?;
    }
    let zones = state.zones.load();
    let mut list: Vec<_> = zones.iter().map(|z| (z.origin.to_string(), z.serial)).collect();
    list.sort();
    let serials: Vec<_> =
        list.iter().map(|(origin, serial)| (vec![("zone", origin.as_str())], i64::from(*serial))).collect();
    out.gauge("dnsxdp_zone_serial", "SOA serial being served.", &borrowed(&serials))?;
    out.gauge(
        "dnsxdp_bpf_map_entries",
        "Entries installed in each BPF map.",
        &[
            (&[("map", "names")], m.map_entries.load(Relaxed)),
            (&[("map", "answers")], m.response_entries.load(Relaxed)),
            (&[("map", "hits")], m.hit_entries.load(Relaxed)),
        ],
    )?;
    let (promotions, evictions) = state.demand.moves();
    out.counter(
        "dnsxdp_hotset_promotions_total",
        "Names whose answers entered the kernel's map because of demand (--answers-capacity).",
        &[(&[], promotions)],
    )?;
    out.counter(
        "dnsxdp_hotset_evictions_total",
        "Names whose answers left the kernel's map for hotter ones.",
        &[(&[], evictions)],
    )?;
    out.counter(
        "dnsxdp_reloads_total",
        "Zone reloads (SIGHUP), by result.",
        &[(&[("result", "ok")], m.reloads_ok.load(Relaxed)), (&[("result", "failed")], m.reloads_failed.load(Relaxed))],
    )?;
    out.counter(
        "dnsxdp_zone_serial_unchanged_total",
        "Reloads that found a zone's data changed under an unchanged serial.",
        &[(&[], m.serial_unchanged.load(Relaxed))],
    )?;
    out.counter(
        "dnsxdp_queries_dropped_total",
        "Queries the daemon dropped unanswered.",
        &[(&[], m.queries_dropped.load(Relaxed))],
    )?;
    out.counter(
        "dnsxdp_tcp_connections_total",
        "TCP connections accepted.",
        &[(&[], m.tcp_connections.load(Relaxed))],
    )?;
    out.counter(
        "dnsxdp_tcp_closed_total",
        "TCP connections the daemon closed to protect the others.",
        &[
            (&[("reason", "refused")], m.tcp_refused.load(Relaxed)),
            (&[("reason", "write_stalled")], m.tcp_write_stalls.load(Relaxed)),
        ],
    )?;
    out.counter(
        "dnsxdp_xfr_out_total",
        "Zone transfers (AXFR, IXFR) requested of us, by result: started, or answered SERVFAIL because --xfr-out-max were running.",
        &[
            (&[("result", "started")], m.xfr_out_started.load(Relaxed)),
            (&[("result", "busy")], m.xfr_out_busy.load(Relaxed)),
        ],
    )
}

/// Samples whose labels were built per scrape, as the slices `Exposition` takes.
fn borrowed<'a, N: Copy>(samples: &'a [(Vec<(&'a str, &'a str)>, N)]) -> Vec<(Labels<'a>, N)> {
    samples.iter().map(|(l, n)| (&l[..], *n)).collect()
}

/// Rate limiting, both paths: `dnsxdp_rrl_limited_total{path,kind}` (dropped or slipped),
/// `dnsxdp_rrl_total{path,result}` (slipped, dropped, dry_run, allowlisted, cookie_exempt,
/// reflection_port). The kernel has no cookie_exempt: it passes every COOKIE query to the daemon
/// (`dnsxdp_xdp_packets_total` pass reason "cookie").
fn render_rrl(out: &mut Exposition, kernel: Option<&[u64]>, rrl: &Limiter) -> fmt::Result {
    let c = &rrl.counters;
    let mut limited = Vec::new();
    for (i, kind) in RRL_KINDS.iter().enumerate() {
        limited.push((vec![("path", "userspace"), ("kind", *kind)], c.limited[i].load(Relaxed)));
        if let Some(k) = kernel {
            limited.push((vec![("path", "xdp"), ("kind", *kind)], k[stat::RRL_LIMITED_BASE as usize + i]));
        }
    }
    out.counter(
        "dnsxdp_rrl_limited_total",
        "Responses over their rate limit (dropped or slipped), by path and response kind.",
        &borrowed(&limited),
    )?;
    let user = [
        ("slipped", c.slipped.load(Relaxed)),
        ("dropped", c.dropped.load(Relaxed)),
        ("dry_run", c.dry_run.load(Relaxed)),
        ("allowlisted", c.allowlisted.load(Relaxed)),
        ("cookie_exempt", c.cookie_exempt.load(Relaxed)),
        ("reflection_port", c.reflection.load(Relaxed)),
    ];
    let mut results: Vec<_> =
        user.iter().map(|(result, n)| (vec![("path", "userspace"), ("result", *result)], *n)).collect();
    if let Some(k) = kernel {
        let xdp = [
            ("slipped", stat::ACTION_SLIP),
            ("dropped", stat::ACTION_RATE_LIMITED),
            ("dry_run", stat::RRL_DRY_RUN),
            ("allowlisted", stat::RRL_ALLOWLISTED),
            ("reflection_port", stat::DROP_REFLECTION_PORT),
            ("spoofed_source", stat::DROP_SPOOFED_SOURCE),
        ];
        results.extend(xdp.iter().map(|(result, i)| (vec![("path", "xdp"), ("result", *result)], k[*i as usize])));
    }
    out.counter("dnsxdp_rrl_total", "Rate limiter outcomes other than answering, by path.", &borrowed(&results))
}

/// Shadow validation (shadow.rs): comparisons, mismatches by field, what was not compared.
fn render_shadow(out: &mut Exposition, shadow: &Shadow, kernel: Option<&[u64]>) -> fmt::Result {
    let c = &shadow.counters;
    let queries: Vec<_> = [shadow::Path::Xdp, shadow::Path::Userspace]
        .map(|p| ([("path", p.name())], c.queries[p as usize].load(Relaxed)))
        .to_vec();
    out.counter(
        "dnsxdp_shadow_queries_total",
        "Answers compared with the reference server's, by the path that sent ours.",
        &queries.iter().map(|(l, n)| (&l[..], *n)).collect::<Vec<_>>(),
    )?;
    let fields: Vec<_> =
        shadow::FIELDS.iter().zip(&c.mismatches).map(|(field, n)| ([("field", *field)], n.load(Relaxed))).collect();
    out.counter(
        "dnsxdp_shadow_mismatches_total",
        "Compared answers that differ from the reference's, by field.",
        &fields.iter().map(|(l, n)| (&l[..], *n)).collect::<Vec<_>>(),
    )?;
    out.counter(
        "dnsxdp_shadow_mismatched_queries_total",
        "Compared queries with at least one mismatch.",
        &[(&[], c.mismatched_queries.load(Relaxed))],
    )?;
    out.counter(
        "dnsxdp_shadow_reference_errors_total",
        "Shadow queries the reference did not answer usably (not mismatches).",
        &[
            (&[("kind", "timeout")], c.timeouts.load(Relaxed)),
            (&[("kind", "unreachable")], c.unreachable.load(Relaxed)),
            (&[("kind", "malformed")], c.malformed.load(Relaxed)),
        ],
    )?;
    let mut dropped: Vec<(Labels, u64)> = vec![
        (&[("reason", "queue_full")], c.dropped.load(Relaxed)),
        (&[("reason", "answer_changed")], c.stale.load(Relaxed)),
    ];
    if let Some(k) = kernel {
        dropped.push((&[("reason", "ring_full")], k[stat::SHADOW_RING_FULL as usize]));
    }
    out.counter(
        "dnsxdp_shadow_dropped_total",
        "Samples not compared: queue full, ring buffer full, or answer changed since sent.",
        &dropped,
    )?;
    if let Some(k) = kernel {
        out.counter(
            "dnsxdp_shadow_xdp_sampled_total",
            "Answers the XDP program sampled for comparison.",
            &[(&[], k[stat::SHADOW_SAMPLED as usize])],
        )?;
    }
    out.gauge(
        "dnsxdp_shadow_seconds_since_mismatch",
        "Seconds since the last mismatch (or since shadowing started).",
        &[(&[], (shadow.seconds_since_mismatch() * 1000.0).round() / 1000.0)],
    )
}

/// The content type of the OpenMetrics text format.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Scrapes and health checks running at once (rendering takes a moment with XDP counters).
const MAX_IN_FLIGHT: usize = 16;
/// Open connections at once (a scraper or two and health probes need a handful).
const MAX_CONNECTIONS: usize = 1024;
/// A request's whole run time.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// `GET /metrics` and `GET /healthz`, with the limits of http.rs and a cap on requests in flight.
pub async fn serve_http(listener: TcpListener, sources: Sources) {
    let router = Router::new()
        .fallback(handle)
        .with_state(sources)
        // Nothing here takes a body: refuse any before reading it.
        .layer(RequestBodyLimitLayer::new(0))
        .layer(GlobalConcurrencyLimitLayer::new(MAX_IN_FLIGHT))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, REQUEST_TIMEOUT));
    crate::http::serve(listener, router, None, MAX_CONNECTIONS, "metrics").await
}

async fn handle(Extract(sources): Extract<Sources>, method: Method, uri: Uri) -> Response<Body> {
    let text = |status: StatusCode, body: &'static str| {
        let mut r = Response::new(Body::from(body));
        *r.status_mut() = status;
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
        r
    };
    match (method, uri.path()) {
        (Method::GET, "/metrics") => {
            let mut r = Response::new(Body::from(render(&sources)));
            r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(OPENMETRICS));
            r
        }
        (Method::GET, "/healthz") if sources.state.metrics.ready.load(Relaxed) => text(StatusCode::OK, "ok\n"),
        (Method::GET, "/healthz") => text(StatusCode::SERVICE_UNAVAILABLE, "starting\n"),
        (Method::GET, _) => text(StatusCode::NOT_FOUND, "not found\n"),
        _ => text(StatusCode::METHOD_NOT_ALLOWED, "only GET\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Zones;

    impl Collector for Zones {
        fn encode(&self, encoder: DescriptorEncoder) -> fmt::Result {
            let mut out = Exposition(encoder);
            out.gauge("dnsxdp_zone_serial", "SOA serial being served.", &[(&[("zone", "we\"ird\\.\n.")], 7i64)])?;
            out.counter("dnsxdp_xdp_run_seconds_total", "Time.", &[(&[], 1.5f64)])?;
            out.counter("dnsxdp_reloads_total", "Reloads.", &[(&[("result", "ok")], 2u64)])
        }
    }

    #[test]
    fn label_values_are_escaped_and_names_kept() {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Zones));
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
        assert!(out.contains("dnsxdp_zone_serial{zone=\"we\\\"ird\\\\.\\n.\"} 7\n"), "{out}");
        assert!(out.contains("dnsxdp_xdp_run_seconds_total 1.5\n"), "{out}");
        assert!(out.contains("dnsxdp_reloads_total{result=\"ok\"} 2\n"), "{out}");
        assert!(out.ends_with("# EOF\n"), "{out}");
    }
}
