//! Response rate limiting against a reflection attack: a flood of spoofed-source queries for a
//! large answer from one prefix, while a client in another prefix queries normally (issue 5).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use dns_xdp_tests::net::CLI_IF;
use dns_xdp_tests::raw::{TYPE_A, query, udp_exchange};
use dns_xdp_tests::spoof::{capture_toward, flood, ipv4_udp};
use dns_xdp_tests::{Daemon, Serve, TempDir, TestNet, ready};

/// Flood bounds: packets and time.
const FLOOD_MAX_PACKETS: usize = 400_000;
const FLOOD_MAX_TIME: Duration = Duration::from_secs(4);
/// The legitimate client asks every this often (about 15/s, under the 20/s limit).
const LEGIT_EVERY: Duration = Duration::from_millis(65);
/// The flooded (spoofed) prefix: TEST-NET-2.
const VICTIM: [u8; 3] = [198, 51, 100];
const RATE: u32 = 20;
const BIG_RECORDS: usize = 50;

/// A zone whose `big` name has 50 A records: an 844-byte answer to a 44-byte query.
fn zone(dir: &TempDir) -> std::path::PathBuf {
    let mut z = String::from(
        "$ORIGIN example.com.\n$TTL 300\n@ IN SOA ns1 hostmaster 1 3600 600 86400 300\n@ IN NS ns1\nns1 IN A 192.0.2.53\n",
    );
    for i in 0..BIG_RECORDS {
        z.push_str(&format!("big IN A 10.0.{}.{}\n", i / 250, i % 250 + 1));
    }
    let path = dir.path().join("example.com.zone");
    std::fs::write(&path, z).expect("writing the zone");
    path
}

#[test]
fn spoofed_flood_is_not_amplified_and_real_clients_get_answers() {
    if !ready() {
        return;
    }
    let dir = TempDir::new();
    let net = TestNet::new();
    let mut serve = Serve::zone(zone(&dir));
    serve.extra = ["--rrl-rate", "20", "--rrl-slip", "2"].map(String::from).to_vec();
    let daemon = Daemon::start(&net, serve);
    // Replies the daemon sends to the victim go out through the client's veth, where the capture
    // sees them (the client kernel then drops them: not its address, no forwarding).
    net.srv.ip(&[
        "route",
        "add",
        &format!("{}.{}.{}.0/24", VICTIM[0], VICTIM[1], VICTIM[2]),
        "via",
        &net.cli_v4.to_string(),
    ]);
    let server = SocketAddr::new(net.srv_v4.into(), 53);

    // The answer comes from XDP and is large.
    let q = query(1, "big.example.com", TYPE_A, Some(1232));
    let full = udp_exchange(&net.cli, server, &q).expect("big.example.com answered");
    assert_eq!(u16::from_be_bytes([full[6], full[7]]) as usize, BIG_RECORDS);
    let before = daemon.metrics();
    std::thread::sleep(Duration::from_millis(1100)); // the probe's bucket refills

    let packets: Vec<Vec<u8>> = (0..1024u32)
        .map(|i| {
            let src = Ipv4Addr::new(VICTIM[0], VICTIM[1], VICTIM[2], (i % 254 + 1) as u8);
            ipv4_udp(src, 20_000 + i as u16, net.srv_v4, &query(i as u16, "big.example.com", TYPE_A, Some(1232)))
        })
        .collect();
    let stop = AtomicBool::new(false);
    let (capture, (sent, sent_bytes, flood_time), (asked, answered)) = std::thread::scope(|s| {
        let cap = s.spawn(|| capture_toward(&net.cli, CLI_IF, VICTIM, FLOOD_MAX_TIME + Duration::from_secs(6), &stop));
        std::thread::sleep(Duration::from_millis(200));
        let legit = s.spawn(|| {
            let (mut asked, mut answered) = (0usize, 0usize);
            let start = Instant::now();
            while start.elapsed() < FLOOD_MAX_TIME {
                asked += 1;
                let q = query(asked as u16, "big.example.com", TYPE_A, Some(1232));
                if let Some(r) = udp_exchange(&net.cli, server, &q)
                    && r[2] & 0x02 == 0
                    && u16::from_be_bytes([r[6], r[7]]) as usize == BIG_RECORDS
                {
                    answered += 1;
                }
                std::thread::sleep(LEGIT_EVERY);
            }
            (asked, answered)
        });
        let start = Instant::now();
        let (sent, bytes) = flood(&net.cli, net.srv_v4, &packets, FLOOD_MAX_PACKETS, FLOOD_MAX_TIME);
        let flood_time = start.elapsed();
        let legit = legit.join().expect("legit client");
        std::thread::sleep(Duration::from_millis(500)); // last replies drain
        stop.store(true, Ordering::Relaxed);
        (cap.join().expect("capture"), (sent, bytes, flood_time), legit)
    });
    let after = daemon.metrics();
    let delta = |name: &str, labels: &[(&str, &str)]| after.value(name, labels) - before.value(name, labels);

    let amplification = capture.bytes as f64 / sent_bytes as f64;
    let success = answered as f64 / asked as f64;
    let slip_sizes: Vec<usize> = capture.truncated.iter().map(Vec::len).collect();
    let (min_slip, max_slip) =
        (slip_sizes.iter().min().copied().unwrap_or(0), slip_sizes.iter().max().copied().unwrap_or(0));
    eprintln!(
        "rrl: xdp tx +{}; flood {sent} queries ({sent_bytes} IP bytes) in {flood_time:?} = {:.0} q/s; toward the victim {} replies \
         ({} full, {} TC=1 slips of {min_slip}..={max_slip} DNS bytes), {} IP bytes: amplification {amplification:.3}; \
         legit client {answered}/{asked} answered ({:.2}%); xdp rate_limited +{} slip +{}",
        delta("dnsxdp_xdp_packets_total", &[("action", "tx")]),
        sent as f64 / flood_time.as_secs_f64(),
        capture.packets,
        capture.full,
        capture.truncated.len(),
        capture.bytes,
        success * 100.0,
        delta("dnsxdp_xdp_packets_total", &[("action", "rate_limited")]),
        delta("dnsxdp_xdp_packets_total", &[("action", "slip")]),
    );
    let interesting = |l: &&str| {
        ["dnsxdp_xdp", "dnsxdp_rrl", "dnsxdp_responses"].iter().any(|p| l.starts_with(p)) && !l.ends_with(" 0")
    };
    eprintln!("{}", after.text.lines().filter(interesting).collect::<Vec<_>>().join("\n"));
    assert!(sent > 10_000, "the flood sent only {sent} packets");
    assert!(amplification <= 1.0, "amplification factor {amplification:.3} > 1");
    // Full answers: the burst plus the rate over the flood, with a second of slack.
    let allowed = (RATE as f64 * (flood_time.as_secs_f64() + 2.0)) as usize + RATE as usize;
    assert!(capture.full <= allowed, "{} full answers reached the victim, more than {allowed}", capture.full);
    assert!(!capture.truncated.is_empty(), "no slips reached the victim");
    for slip in &capture.truncated {
        // Header + question + OPT: the size of the query, no answer records.
        assert_eq!(slip.len(), q.len(), "slip size");
        assert_eq!(&slip[6..10], &[0, 0, 0, 0], "a slip carries no answer or authority records");
    }
    assert!(delta("dnsxdp_rrl_limited_total", &[("path", "xdp"), ("kind", "positive")]) > 0.0);
    assert!(success >= 0.999, "the legitimate client got {answered} of {asked} answers");
}
