//! The harness checked against Knot DNS, so a failure elsewhere points at the daemon, not the harness.
//! Needs root and knotd; no dns-xdp binary.

use std::time::Duration;

use dns_xdp_tests::malformed::send_burst;
use dns_xdp_tests::net::Family;
use dns_xdp_tests::reference::Knotd;
use dns_xdp_tests::{TestNet, example_zone, ready_with, which};

fn knot_ready() -> bool {
    let knotd = which("knotd").unwrap_or_else(|| "/usr/sbin/knotd".into());
    ready_with(&[knotd.as_path()])
}

#[test]
fn clients_reach_a_reference_server_over_both_families() {
    if !knot_ready() {
        return;
    }
    let net = TestNet::without_xdp_pass();
    let _knot = Knotd::start(&net, "example.com", &example_zone());
    for family in Family::BOTH {
        let a = net.kdig(family, &["www.example.com", "A"]);
        a.expect_response();
        assert_eq!(a.rcode().as_deref(), Some("NOERROR"), "{a}");
        assert!(a.has_flag("aa"), "{a}");
        assert_eq!(a.answers("A"), ["192.0.2.80", "192.0.2.81"], "{a}");
        let aaaa = net.kdig(family, &["+short", "www.example.com", "AAAA"]);
        assert_eq!(aaaa.short_lines(), ["2001:db8::80"], "{aaaa}");
    }
    let nx = net.kdig(Family::V4, &["nope.example.com", "A"]);
    assert_eq!(nx.rcode().as_deref(), Some("NXDOMAIN"), "{nx}");
    assert_eq!(nx.records("AUTHORITY")[0].rtype, "SOA", "{nx}");
}

#[test]
fn dig_shows_the_question_case_the_server_echoed() {
    if !knot_ready() {
        return;
    }
    let net = TestNet::without_xdp_pass();
    let _knot = Knotd::start(&net, "example.com", &example_zone());
    let o = net.dig(Family::V4, &["+nocookie", "WwW.ExAmPlE.CoM", "A"]);
    o.expect_response();
    assert_eq!(o.question_name().as_deref(), Some("WwW.ExAmPlE.CoM."), "{o}");
}

#[test]
fn malformed_burst_reaches_the_server_and_it_survives() {
    if !knot_ready() {
        return;
    }
    let net = TestNet::without_xdp_pass();
    let mut knot = Knotd::start(&net, "example.com", &example_zone());
    let to = std::net::SocketAddr::new(net.srv_v4.into(), 53);
    let sent = send_burst(&net.cli, to, 3000, Duration::from_secs(10), 42);
    assert!(sent >= 2900, "only {sent} of 3000 packets sent");
    assert!(knot.is_alive(), "knotd died:\n{}", knot.log());
    let a = net.kdig(Family::V4, &["+short", "www.example.com", "A"]);
    assert_eq!(a.short_lines(), ["192.0.2.80", "192.0.2.81"], "{a}");
}
