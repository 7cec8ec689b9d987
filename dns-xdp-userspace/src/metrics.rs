//! Counters and the tiny HTTP endpoint serving `GET /metrics` (Prometheus text) and
//! `GET /healthz`.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use dns_xdp_common::stat;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::loader::Stats;
use crate::rrl::Limiter;
use crate::state::State;
use crate::wire::rcode;

/// RCODEs we count individually; everything else is "OTHER".
const RCODES: [u16; 8] = [
    rcode::NOERROR,
    rcode::FORMERR,
    rcode::SERVFAIL,
    rcode::NXDOMAIN,
    rcode::NOTIMP,
    rcode::REFUSED,
    rcode::YXDOMAIN,
    rcode::BADVERS,
];

#[derive(Default)]
pub struct Metrics {
    responses: [AtomicU64; RCODES.len() + 1],
    pub queries_dropped: AtomicU64,
    pub reloads_ok: AtomicU64,
    pub reloads_failed: AtomicU64,
    /// Reloads that found a zone's data changed under an unchanged serial.
    pub serial_unchanged: AtomicU64,
    /// Name records in the kernel's NAMES maps.
    pub map_entries: AtomicU64,
    /// Distinct answers in the kernel's ANSWERS maps.
    pub answer_entries: AtomicU64,
    /// Entries in use in the kernel's hit index (HITS).
    pub hit_entries: AtomicU64,
    pub tcp_connections: AtomicU64,
    /// TCP connections closed at accept: over the per-client cap, or out of descriptors (tcp.rs).
    pub tcp_refused: AtomicU64,
    /// TCP connections closed because a reply could not be written in time (a client not reading).
    pub tcp_write_stalls: AtomicU64,
    pub ready: AtomicBool,
}

impl Metrics {
    pub fn count_response(&self, rc: u16) {
        let i = RCODES.iter().position(|&r| r == rc).unwrap_or(RCODES.len());
        self.responses[i].fetch_add(1, Relaxed);
    }
}

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

/// Renders every series in Prometheus text format.
pub fn render(state: &State, xdp: Option<&Stats>, rrl: &Limiter) -> String {
    let m = &state.metrics;
    let mut out = String::with_capacity(4096);
    let kernel = xdp.and_then(|s| match s.read() {
        Ok(v) => Some(v),
        Err(err) => {
            log::warn!("reading XDP counters: {err:#}");
            None
        }
    });
    out.push_str("# HELP dnsxdp_responses_total DNS responses sent, by path and RCODE.\n# TYPE dnsxdp_responses_total counter\n");
    for (i, rc) in RCODES.iter().enumerate() {
        let name = rcode::name(*rc);
        let _ = writeln!(out, "dnsxdp_responses_total{{path=\"userspace\",rcode=\"{name}\"}} {}", m.responses[i].load(Relaxed));
        if let Some(k) = &kernel
            && *rc < 16
        {
            let _ = writeln!(out, "dnsxdp_responses_total{{path=\"xdp\",rcode=\"{name}\"}} {}", k[(stat::TX_RCODE_BASE + u32::from(*rc)) as usize]);
        }
    }
    let _ = writeln!(out, "dnsxdp_responses_total{{path=\"userspace\",rcode=\"OTHER\"}} {}", m.responses[RCODES.len()].load(Relaxed));
    if let Some(k) = &kernel {
        out.push_str("# HELP dnsxdp_xdp_packets_total Packets seen by the XDP program, by action.\n# TYPE dnsxdp_xdp_packets_total counter\n");
        let _ = writeln!(out, "dnsxdp_xdp_packets_total{{action=\"rx\"}} {}", k[stat::RX as usize]);
        for (name, i) in ACTIONS {
            let _ = writeln!(out, "dnsxdp_xdp_packets_total{{action=\"{name}\"}} {}", k[i as usize]);
        }
        out.push_str("# HELP dnsxdp_xdp_resolved_total How XDP found the answers it sent other than by its name record's own slot for the type: in the hit index (the same answer, without the record lookup), a name's type-independent answer, or a closest encloser's answer for missing names.\n# TYPE dnsxdp_xdp_resolved_total counter\n");
        let _ = writeln!(out, "dnsxdp_xdp_resolved_total{{how=\"hit\"}} {}", k[stat::TX_HIT as usize]);
        let _ = writeln!(out, "dnsxdp_xdp_resolved_total{{how=\"default\"}} {}", k[stat::TX_DEFAULT as usize]);
        let _ = writeln!(out, "dnsxdp_xdp_resolved_total{{how=\"encloser\"}} {}", k[stat::TX_ENCLOSER as usize]);
        out.push_str("# HELP dnsxdp_xdp_pass_total Packets passed to the kernel stack, by reason.\n# TYPE dnsxdp_xdp_pass_total counter\n");
        for (name, i) in PASS_REASONS {
            let _ = writeln!(out, "dnsxdp_xdp_pass_total{{reason=\"{name}\"}} {}", k[i as usize]);
        }
        if let Some((ns, runs)) = xdp.and_then(Stats::run_time) {
            let _ = writeln!(out, "# HELP dnsxdp_xdp_run_seconds_total Time spent in the XDP program (while BPF stats are enabled).\n# TYPE dnsxdp_xdp_run_seconds_total counter\ndnsxdp_xdp_run_seconds_total {}", ns as f64 / 1e9);
            let _ = writeln!(out, "# TYPE dnsxdp_xdp_runs_total counter\ndnsxdp_xdp_runs_total {runs}");
        }
        let _ = writeln!(out, "# TYPE dnsxdp_xdp_drop_total counter\ndnsxdp_xdp_drop_total{{reason=\"malformed\"}} {}", k[stat::DROP_MALFORMED as usize]);
        let _ = writeln!(out, "dnsxdp_xdp_drop_total{{reason=\"reflection_port\"}} {}", k[stat::DROP_REFLECTION_PORT as usize]);
        let _ = writeln!(out, "dnsxdp_xdp_drop_total{{reason=\"spoofed_source\"}} {}", k[stat::DROP_SPOOFED_SOURCE as usize]);
    }
    render_rrl(&mut out, kernel.as_deref(), rrl);
    if let Some(shadow) = state.shadow.get() {
        shadow.render(&mut out, kernel.as_deref());
    }
    out.push_str("# HELP dnsxdp_zone_serial SOA serial being served.\n# TYPE dnsxdp_zone_serial gauge\n");
    let zones = state.zones.load();
    let mut list: Vec<_> = zones.iter().map(|z| (z.origin.to_string(), z.serial)).collect();
    list.sort();
    for (origin, serial) in list {
        let _ = writeln!(out, "dnsxdp_zone_serial{{zone=\"{origin}\"}} {serial}");
    }
    out.push_str("# HELP dnsxdp_bpf_map_entries Entries installed in each BPF map.\n# TYPE dnsxdp_bpf_map_entries gauge\n");
    let _ = writeln!(out, "dnsxdp_bpf_map_entries{{map=\"names\"}} {}", m.map_entries.load(Relaxed));
    let _ = writeln!(out, "dnsxdp_bpf_map_entries{{map=\"answers\"}} {}", m.answer_entries.load(Relaxed));
    let _ = writeln!(out, "dnsxdp_bpf_map_entries{{map=\"hits\"}} {}", m.hit_entries.load(Relaxed));
    out.push_str("# HELP dnsxdp_hotset_promotions_total Names whose answers entered the kernel's map because of demand (--answers-capacity).\n# TYPE dnsxdp_hotset_promotions_total counter\n");
    let _ = writeln!(out, "dnsxdp_hotset_promotions_total {}", crate::hotset::PROMOTIONS.load(Relaxed));
    out.push_str("# HELP dnsxdp_hotset_evictions_total Names whose answers left the kernel's map for hotter ones.\n# TYPE dnsxdp_hotset_evictions_total counter\n");
    let _ = writeln!(out, "dnsxdp_hotset_evictions_total {}", crate::hotset::EVICTIONS.load(Relaxed));
    let _ = writeln!(out, "# TYPE dnsxdp_reloads_total counter\ndnsxdp_reloads_total{{result=\"ok\"}} {}\ndnsxdp_reloads_total{{result=\"failed\"}} {}", m.reloads_ok.load(Relaxed), m.reloads_failed.load(Relaxed));
    let _ = writeln!(out, "# TYPE dnsxdp_zone_serial_unchanged_total counter\ndnsxdp_zone_serial_unchanged_total {}", m.serial_unchanged.load(Relaxed));
    let _ = writeln!(out, "# TYPE dnsxdp_queries_dropped_total counter\ndnsxdp_queries_dropped_total {}", m.queries_dropped.load(Relaxed));
    let _ = writeln!(out, "# TYPE dnsxdp_tcp_connections_total counter\ndnsxdp_tcp_connections_total {}", m.tcp_connections.load(Relaxed));
    out.push_str("# HELP dnsxdp_tcp_closed_total TCP connections the daemon closed to protect the others.\n# TYPE dnsxdp_tcp_closed_total counter\n");
    let _ = writeln!(out, "dnsxdp_tcp_closed_total{{reason=\"refused\"}} {}", m.tcp_refused.load(Relaxed));
    let _ = writeln!(out, "dnsxdp_tcp_closed_total{{reason=\"write_stalled\"}} {}", m.tcp_write_stalls.load(Relaxed));
    out
}

/// Rate limiting, both paths: `dnsxdp_rrl_limited_total{path,kind}` (dropped or slipped),
/// `dnsxdp_rrl_total{path,result}` (slipped, dropped, dry_run, allowlisted, cookie_exempt,
/// reflection_port). The kernel has no cookie_exempt: it passes every COOKIE query to the daemon
/// (`dnsxdp_xdp_packets_total` pass reason "cookie").
fn render_rrl(out: &mut String, kernel: Option<&[u64]>, rrl: &Limiter) {
    let c = &rrl.counters;
    out.push_str("# HELP dnsxdp_rrl_limited_total Responses over their rate limit (dropped or slipped), by path and response kind.\n# TYPE dnsxdp_rrl_limited_total counter\n");
    for (i, kind) in RRL_KINDS.iter().enumerate() {
        let _ = writeln!(out, "dnsxdp_rrl_limited_total{{path=\"userspace\",kind=\"{kind}\"}} {}", c.limited[i].load(Relaxed));
        if let Some(k) = kernel {
            let _ = writeln!(out, "dnsxdp_rrl_limited_total{{path=\"xdp\",kind=\"{kind}\"}} {}", k[stat::RRL_LIMITED_BASE as usize + i]);
        }
    }
    out.push_str("# HELP dnsxdp_rrl_total Rate limiter outcomes other than answering, by path.\n# TYPE dnsxdp_rrl_total counter\n");
    let user = [
        ("slipped", c.slipped.load(Relaxed)),
        ("dropped", c.dropped.load(Relaxed)),
        ("dry_run", c.dry_run.load(Relaxed)),
        ("allowlisted", c.allowlisted.load(Relaxed)),
        ("cookie_exempt", c.cookie_exempt.load(Relaxed)),
        ("reflection_port", c.reflection.load(Relaxed)),
    ];
    for (result, n) in user {
        let _ = writeln!(out, "dnsxdp_rrl_total{{path=\"userspace\",result=\"{result}\"}} {n}");
    }
    if let Some(k) = kernel {
        let xdp = [
            ("slipped", stat::ACTION_SLIP),
            ("dropped", stat::ACTION_RATE_LIMITED),
            ("dry_run", stat::RRL_DRY_RUN),
            ("allowlisted", stat::RRL_ALLOWLISTED),
            ("reflection_port", stat::DROP_REFLECTION_PORT),
            ("spoofed_source", stat::DROP_SPOOFED_SOURCE),
        ];
        for (result, i) in xdp {
            let _ = writeln!(out, "dnsxdp_rrl_total{{path=\"xdp\",result=\"{result}\"}} {}", k[i as usize]);
        }
    }
}

/// Longest request head we read before answering 400.
const MAX_REQUEST: usize = 8192;

pub async fn serve_http(listener: TcpListener, state: Arc<State>, xdp: Option<Arc<Stats>>, rrl: Arc<Limiter>) {
    loop {
        let Ok((mut conn, _)) = listener.accept().await else { continue };
        let state = state.clone();
        let xdp = xdp.clone();
        let rrl = rrl.clone();
        tokio::spawn(async move {
            let mut buf = Vec::with_capacity(512);
            let read = tokio::time::timeout(Duration::from_secs(5), async {
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < MAX_REQUEST {
                    let n = conn.read(&mut chunk).await.ok()?;
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                Some(())
            })
            .await;
            if !matches!(read, Ok(Some(()))) {
                return;
            }
            let head = String::from_utf8_lossy(&buf);
            let mut parts = head.split_whitespace();
            let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            let (status, body) = match (method, path) {
                ("GET", "/metrics") => ("200 OK", render(&state, xdp.as_deref(), &rrl)),
                ("GET", "/healthz") if state.metrics.ready.load(Relaxed) => ("200 OK", "ok\n".to_string()),
                ("GET", "/healthz") => ("503 Service Unavailable", "starting\n".to_string()),
                ("GET", _) => ("404 Not Found", "not found\n".to_string()),
                _ => ("405 Method Not Allowed", "only GET\n".to_string()),
            };
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = conn.write_all(response.as_bytes()).await;
            let _ = conn.shutdown().await;
        });
    }
}
