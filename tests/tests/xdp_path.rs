//! A/AAAA hits over UDP are answered by the XDP program (native and generic mode), or by the daemon when
//! XDP is off; answers are the same either way.

use std::time::Duration;

use dns_xdp_tests::net::Family;
use dns_xdp_tests::{Daemon, Metrics, Serve, TestNet, ready, wait_for};

const TX: (&str, &[(&str, &str)]) = ("dnsxdp_xdp_packets_total", &[("action", "tx")]);
const USERSPACE_NOERROR: (&str, &[(&str, &str)]) =
    ("dnsxdp_responses_total", &[("path", "userspace"), ("rcode", "NOERROR")]);
/// Replies XDP could not make room for. veth and generic mode leave almost no tailroom, so growth
/// at the tail fails there; the program then grows at the head, and this must stay 0.
const PASS_RESIZE: (&str, &[(&str, &str)]) = ("dnsxdp_xdp_pass_total", &[("reason", "resize")]);

/// The XDP counters of a scrape (actions and pass reasons), for failure messages.
fn xdp_counters(m: &Metrics) -> String {
    m.text.lines().filter(|l| l.starts_with("dnsxdp_xdp")).collect::<Vec<_>>().join("\n")
}

fn value(m: &Metrics, series: (&str, &[(&str, &str)])) -> f64 {
    m.value(series.0, series.1)
}

/// Query www A and AAAA over both families; every answer must be complete and authoritative.
/// Returns the number of queries sent.
fn query_www(net: &TestNet) -> usize {
    let mut n = 0;
    for family in Family::BOTH {
        let a = net.kdig(family, &["www.example.com", "A"]);
        a.expect_response();
        assert_eq!(a.rcode().as_deref(), Some("NOERROR"), "{a}");
        assert!(a.has_flag("aa") && a.has_flag("qr"), "flags {:?}: {a}", a.flags());
        assert_eq!(a.answers("A"), ["192.0.2.80", "192.0.2.81"], "{a}");
        assert!(a.records("ANSWER").iter().all(|r| r.ttl == Some(300)), "{a}");

        let aaaa = net.kdig(family, &["www.example.com", "AAAA"]);
        aaaa.expect_response();
        assert_eq!(aaaa.rcode().as_deref(), Some("NOERROR"), "{aaaa}");
        assert!(aaaa.has_flag("aa"), "{aaaa}");
        assert_eq!(aaaa.answers("AAAA"), ["2001:db8::80"], "{aaaa}");
        n += 2;
    }
    n
}

/// Answers come from XDP: `tx` grows by exactly the number of queries and the daemon answers none.
fn answered_by_xdp(mode: &str) {
    if !ready() {
        return;
    }
    let net = TestNet::new();
    let daemon = Daemon::start(&net, Serve::example().xdp_mode(mode));
    let before = daemon.metrics();
    let queries = query_www(&net);
    let after = daemon.metrics();
    assert_eq!(
        value(&after, TX) - value(&before, TX),
        queries as f64,
        "XDP tx count in {mode} mode did not grow by the {queries} queries; metrics:\n{}",
        after.text
    );
    assert_eq!(
        value(&after, USERSPACE_NOERROR),
        value(&before, USERSPACE_NOERROR),
        "the daemon answered A/AAAA hits that XDP should have answered"
    );
    assert_eq!(value(&after, PASS_RESIZE), 0.0, "XDP in {mode} mode could not grow replies:\n{}", xdp_counters(&after));
}

#[test]
fn native_mode_answers_a_and_aaaa_from_xdp() {
    answered_by_xdp("native");
}

#[test]
fn skb_mode_answers_a_and_aaaa_from_xdp() {
    answered_by_xdp("skb");
}

#[test]
fn xdp_off_the_daemon_answers_the_same() {
    if !ready() {
        return;
    }
    let net = TestNet::new();
    let daemon = Daemon::start(&net, Serve::example().xdp_mode("off"));
    assert!(!net.srv.has_xdp_program(dns_xdp_tests::net::SRV_IF), "--xdp-mode off attached a program");
    let before = daemon.metrics();
    let queries = query_www(&net) as f64;
    // The daemon may count a response just after sending it: give the counter a moment.
    let grown = wait_for(Duration::from_secs(3), Duration::from_millis(100), || {
        let m = daemon.metrics();
        (value(&m, USERSPACE_NOERROR) - value(&before, USERSPACE_NOERROR) >= queries).then_some(m)
    });
    let after = grown.unwrap_or_else(|| {
        panic!("userspace NOERROR responses did not grow by {queries}; metrics:\n{}", daemon.metrics().text)
    });
    assert_eq!(value(&after, USERSPACE_NOERROR) - value(&before, USERSPACE_NOERROR), queries);
    assert_eq!(value(&after, TX), 0.0, "XDP transmitted with --xdp-mode off");
}

/// 0x20: the reply's question must carry the exact bytes the client sent (dig keeps case; kdig doesn't).
#[test]
fn xdp_keeps_the_question_case() {
    if !ready() {
        return;
    }
    let net = TestNet::new();
    let daemon = Daemon::start(&net, Serve::example());
    for family in Family::BOTH {
        let before = value(&daemon.metrics(), TX);
        let o = net.dig(family, &["+nocookie", "WwW.ExAmPlE.CoM", "A"]);
        o.expect_response();
        assert_eq!(o.question_name().as_deref(), Some("WwW.ExAmPlE.CoM."), "{o}");
        assert_eq!(o.answers("A"), ["192.0.2.80", "192.0.2.81"], "{o}");
        assert!(o.has_flag("aa"), "{o}");
        let after = daemon.metrics();
        assert_eq!(
            value(&after, TX) - before,
            1.0,
            "the mixed-case query over {family:?} was not answered by XDP; counters:\n{}",
            xdp_counters(&after)
        );
    }
}

/// The architecture's rule: whatever XDP sends is byte-identical to what the daemon sends for the same
/// query. The same query goes over UDP (answered by XDP, checked by the tx count) and over TCP (always
/// the daemon); the two messages must match byte for byte. Both modes: their frames differ in tailroom,
/// so replies that grow are built at the tail or at the head.
fn xdp_replies_equal_the_daemon_replies(mode: &str) {
    use dns_xdp_tests::raw::{TYPE_A, TYPE_AAAA, hex, query, tcp_exchange, udp_exchange};
    if !ready() {
        return;
    }
    let net = TestNet::new();
    let daemon = Daemon::start(&net, Serve::example().xdp_mode(mode));
    let cases: &[(&str, u16, Option<u16>)] = &[
        ("www.example.com", TYPE_A, None),
        ("www.example.com", TYPE_AAAA, Some(1232)),
        ("WwW.eXaMpLe.CoM", TYPE_A, Some(4096)),
        ("api.example.com", TYPE_A, None),    // in-zone CNAME chain
        ("ns2.example.com", TYPE_AAAA, None), // no data: SOA in authority
        ("example.com", TYPE_A, Some(1232)),  // apex
    ];
    for family in Family::BOTH {
        let to = std::net::SocketAddr::new(net.srv_addr(family), 53);
        for (i, &(name, qtype, edns)) in cases.iter().enumerate() {
            let q = query(0x4000 + i as u16, name, qtype, edns);
            let before = value(&daemon.metrics(), TX);
            let udp = udp_exchange(&net.cli, to, &q)
                .unwrap_or_else(|| panic!("no UDP reply to {name}/{qtype} over {family:?}"));
            let after = daemon.metrics();
            let from_xdp = value(&after, TX) - before == 1.0;
            let tcp = tcp_exchange(&net.cli, to, &q)
                .unwrap_or_else(|| panic!("no TCP reply to {name}/{qtype} over {family:?}"));
            assert!(
                from_xdp,
                "{name}/{qtype} edns {edns:?} over {family:?} ({mode}): not answered by XDP; counters:\n{}",
                xdp_counters(&after)
            );
            assert_eq!(
                udp,
                tcp,
                "{name}/{qtype} edns {edns:?} over {family:?} ({mode}): XDP reply (left) differs from the \
                 daemon's:\nXDP:\n{}\ndaemon:\n{}",
                hex(&udp),
                hex(&tcp)
            );
        }
    }
    let after = daemon.metrics();
    assert_eq!(value(&after, PASS_RESIZE), 0.0, "XDP in {mode} mode could not grow replies:\n{}", xdp_counters(&after));
}

#[test]
fn xdp_replies_equal_the_daemon_replies_byte_for_byte() {
    xdp_replies_equal_the_daemon_replies("native");
}

#[test]
fn skb_mode_xdp_replies_equal_the_daemon_replies_byte_for_byte() {
    xdp_replies_equal_the_daemon_replies("skb");
}
