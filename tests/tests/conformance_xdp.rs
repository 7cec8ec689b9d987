//! The conformance corpus again, with XDP attached: dns-xdp serves the conformance zones on port 53
//! of a server namespace with its XDP program in native mode on the veth, knotd and NSD run in the
//! same namespace on other ports, and every query is sent from the client namespace. Kernel answers
//! are held to the same rule as the daemon's in `conformance.rs` (match knotd or NSD, or be listed in
//! `deviations.txt`), and must also equal, byte for byte, what the daemon itself answers (a second
//! dns-xdp with `--xdp-mode off` in the same namespace): the fast path may not drift from the slow one.
//! A share of the UDP queries must have been answered by XDP, so the test cannot pass with the
//! program passing everything up.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Instant;

use dns_xdp_tests::conformance::corpus::{self, Transport};
use dns_xdp_tests::conformance::deviations::differing_parts;
use dns_xdp_tests::conformance::servers::{Server, Site, zone_files};
use dns_xdp_tests::conformance::verdict::{Verdict, ask, check, show};
use dns_xdp_tests::net::SRV_IF;
use dns_xdp_tests::{Daemon, Metrics, Serve, TestNet, repo_root, which};

/// Ports of the servers in the server namespace; the XDP program answers port 53 only.
const DNS_PORT: u16 = 53;
const SLOW_PORT: u16 = 5300;
const KNOT_PORT: u16 = 5301;
const NSD_PORT: u16 = 5302;
/// The share of UDP queries XDP must answer. Most of the corpus is static answers the kernel
/// serves; the rest (ANY, unknown classes, malformed, small buffers that truncate) it passes.
const MIN_XDP_SHARE: f64 = 0.5;

/// Root, the namespace tools and the daemon (`dns_xdp_tests::ready`), plus the two references.
fn ready() -> bool {
    if !dns_xdp_tests::ready() {
        return false;
    }
    match ["knotd", "nsd"].into_iter().find(|t| which(t).is_none()) {
        None => true,
        Some(t) if std::env::var_os("CI").is_some() => {
            panic!("conformance_xdp cannot run under CI: `{t}` not found (apt-get install knot nsd)")
        }
        Some(t) => {
            eprintln!("skipped: `{t}` not found (apt-get install knot nsd)");
            false
        }
    }
}

fn xdp_counter(m: &Metrics, action: &str) -> f64 {
    m.value("dnsxdp_xdp_packets_total", &[("action", action)])
}

#[test]
fn xdp_answers_like_knot_and_nsd() {
    if !ready() {
        return;
    }
    let started = Instant::now();
    let dir = repo_root().join("testdata/conformance");
    let zones = zone_files(&dir);
    assert!(zones.len() >= 5, "conformance zones missing in {}", dir.display());
    let mut verdict = Verdict::new(&dir);
    let mut queries = corpus::generate(&zones);
    queries.extend(corpus::specials());
    let udp_sent = queries.iter().filter(|q| q.transport == Transport::Udp).count();

    let net = TestNet::new();
    let serve = Serve { zones: zones.iter().map(|z| z.path.clone()).collect(), ..Serve::example() };
    let daemon = Daemon::start(&net, serve);
    assert!(net.srv.has_xdp_program(SRV_IF), "no XDP program on {SRV_IF} after start; log:\n{}", daemon.log_excerpt());
    let at = |port| SocketAddr::from((net.srv_v4, port));
    let probe = &zones[0].origin;

    // Sockets and servers are made on a thread inside the client namespace; the servers are started
    // in the server namespace (`ip netns exec`), so every query crosses the veth and its XDP program.
    let (drift, before, after, corpus_time) = net.cli.run_inside(|| {
        let mut fast = Server::remote("dns-xdp", at(DNS_PORT), probe);
        let mut slow = Server::dns_xdp_at(&zones, &[], Site { addr: at(SLOW_PORT), netns: Some(&net.srv) });
        let mut knot = Server::knotd_at(&zones, Site { addr: at(KNOT_PORT), netns: Some(&net.srv) });
        let mut nsd = Server::nsd_at(&zones, Site { addr: at(NSD_PORT), netns: Some(&net.srv) });
        let before = daemon.metrics();
        let t0 = Instant::now();
        let mut drift = Vec::new();
        for q in &queries {
            let k = ask(&mut knot, q).unwrap_or_else(|e| panic!("{}: {e}", q.desc));
            let n = ask(&mut nsd, q).unwrap_or_else(|e| panic!("{}: {e}", q.desc));
            let ours = match q.transport {
                Transport::Tcp => ask(&mut fast, q),
                // XDP sees UDP only: there, the daemon's own reply is the standard too, byte for byte.
                Transport::Udp => {
                    let (with_xdp, daemon_only) = (fast.udp(&q.bytes), slow.udp(&q.bytes));
                    let ours = check(fast.name, q, with_xdp.as_deref());
                    if with_xdp != daemon_only {
                        let s =
                            check(slow.name, q, daemon_only.as_deref()).unwrap_or_else(|e| panic!("{}: {e}", q.desc));
                        let o = ours.clone().unwrap_or(None);
                        let mut parts = differing_parts(&o, &s);
                        if parts.is_empty() {
                            parts.push("bytes");
                        }
                        let mut m = format!("{}  XDP-attached differs in {parts:?} from daemon-only\n", q.desc);
                        let _ = writeln!(m, "  with XDP: {}", show(&o));
                        let _ = write!(m, "  daemon:   {}", show(&s));
                        drift.push(m);
                    }
                    ours
                }
            };
            verdict.judge(q, ours, &k, &n);
        }
        let corpus_time = t0.elapsed();
        assert!(slow.is_alive(), "daemon-only dns-xdp died during the corpus:\n{}", slow.log());
        (drift, before, daemon.metrics(), corpus_time)
    });

    let tx = xdp_counter(&after, "tx") - xdp_counter(&before, "tx");
    let pass = xdp_counter(&after, "pass") - xdp_counter(&before, "pass");
    let rx = xdp_counter(&after, "rx") - xdp_counter(&before, "rx");
    let share = tx / udp_sent as f64;
    println!(
        "conformance_xdp: {} queries ({udp_sent} UDP) in {corpus_time:.1?} ({:.1?} with setup): {} as knotd, {} as nsd only, {} excused, {} mismatches; knotd and nsd disagree on {}",
        verdict.queries,
        started.elapsed(),
        verdict.agree_knot,
        verdict.agree_nsd_only,
        verdict.excused(),
        verdict.mismatches.len(),
        verdict.refs_disagree
    );
    println!(
        "  XDP on {SRV_IF}: rx {rx}, tx {tx} ({:.1}% of UDP queries), pass {pass} (incl. TCP and the references' traffic); XDP-attached vs daemon-only differences: {}",
        share * 100.0,
        drift.len()
    );
    for line in
        after.text.lines().filter(|l| l.starts_with("dnsxdp_xdp_pass_total") || l.starts_with("dnsxdp_xdp_drop_total"))
    {
        println!("  {line}");
    }
    print!("{}", verdict.deviations_used());
    if let Ok(path) = std::env::var("CONFORMANCE_REPORT") {
        std::fs::write(&path, [verdict.mismatches.join("\n"), drift.join("\n")].join("\n"))
            .expect("writing the report");
    }
    let mut daemon = daemon;
    assert!(daemon.is_alive(), "dns-xdp died during the corpus:\n{}", daemon.log_excerpt());
    assert!(
        verdict.mismatches.is_empty(),
        "{} responses with XDP attached differ from both knotd and NSD and are not in deviations.txt (first 30):\n{}",
        verdict.mismatches.len(),
        verdict.mismatches.iter().take(30).cloned().collect::<Vec<_>>().join("\n")
    );
    assert!(
        drift.is_empty(),
        "{} UDP responses with XDP attached differ from the daemon's own (first 30):\n{}",
        drift.len(),
        drift.iter().take(30).cloned().collect::<Vec<_>>().join("\n")
    );
    assert!(
        share > MIN_XDP_SHARE,
        "XDP answered only {tx} of {udp_sent} UDP queries ({:.1}%, want > {:.0}%): the kernel path is passing its work up",
        share * 100.0,
        MIN_XDP_SHARE * 100.0
    );
}
