//! Queries the XDP program passes to the kernel are answered correctly by the daemon.

use dns_xdp_tests::net::Family;
use dns_xdp_tests::{Daemon, DigOutput, Serve, TestNet, ready};

fn authoritative(o: &DigOutput, rcode: &str) {
    o.expect_response();
    assert_eq!(o.rcode().as_deref(), Some(rcode), "{o}");
    assert!(o.has_flag("aa"), "flags {:?}: {o}", o.flags());
}

#[test]
fn daemon_answers_what_xdp_passes() {
    slow_path_answers("native");
}

/// The same answers with no XDP at all: the daemon alone must be complete.
#[test]
fn daemon_alone_answers_the_same() {
    slow_path_answers("off");
}

fn slow_path_answers(mode: &str) {
    if !ready() {
        return;
    }
    let net = TestNet::new();
    let daemon = Daemon::start(&net, Serve::example().xdp_mode(mode));
    let tx = |d: &Daemon| d.metrics().value("dnsxdp_xdp_packets_total", &[("action", "tx")]);

    for family in Family::BOTH {
        // Other types and NXDOMAIN: XDP serves these too (every static answer is compiled), so
        // only the content is checked here; TCP and cookie-bearing queries must reach the daemon.
        let mx = net.kdig(family, &["example.com", "MX"]);
        authoritative(&mx, "NOERROR");
        assert_eq!(mx.answers("MX"), ["10 mail.example.com."], "{mx}");

        let txt = net.kdig(family, &["example.com", "TXT"]);
        authoritative(&txt, "NOERROR");
        assert_eq!(txt.answers("TXT"), ["\"v=spf1 mx -all\""], "{txt}");

        let nx = net.kdig(family, &["nope.example.com", "A"]);
        authoritative(&nx, "NXDOMAIN");
        assert!(nx.answers("A").is_empty(), "{nx}");
        let soa = nx.records("AUTHORITY");
        assert!(
            soa.len() == 1 && soa[0].owner == "example.com." && soa[0].rtype == "SOA",
            "NXDOMAIN needs the zone's SOA in authority (RFC 2308 section 3): {nx}"
        );
        assert!(soa[0].rdata.contains(" 2026112101 "), "{nx}");

        let tx_before = tx(&daemon);
        let tcp = net.kdig(family, &["+tcp", "www.example.com", "A"]);
        authoritative(&tcp, "NOERROR");
        assert_eq!(tcp.answers("A"), ["192.0.2.80", "192.0.2.81"], "{tcp}");
        assert!(tcp.stdout.contains("(TCP)"), "kdig did not use TCP: {tcp}");

        // A client cookie needs a server cookie back, which only the daemon computes.
        let cookie = net.kdig(family, &["+cookie", "www.example.com", "A"]);
        authoritative(&cookie, "NOERROR");
        assert_eq!(cookie.answers("A"), ["192.0.2.80", "192.0.2.81"], "{cookie}");
        assert_eq!(tx(&daemon), tx_before, "XDP answered a TCP or cookie query it should have passed");

        // An in-zone CNAME: the chain is followed within the zone (RFC 1034 section 4.3.2). Either path
        // may answer it, so only the content is checked.
        let cname = net.kdig(family, &["api.example.com", "A"]);
        authoritative(&cname, "NOERROR");
        assert_eq!(cname.answers("CNAME"), ["www.example.com."], "{cname}");
        assert_eq!(cname.answers("A"), ["192.0.2.80", "192.0.2.81"], "{cname}");

        // Out-of-zone CNAME target: the CNAME alone.
        let ftp = net.kdig(family, &["ftp.example.com", "A"]);
        authoritative(&ftp, "NOERROR");
        assert_eq!(ftp.answers("CNAME"), ["www.example.net."], "{ftp}");
        assert!(ftp.answers("A").is_empty(), "{ftp}");
    }
    // The two NXDOMAIN answers (one per family) came from one path or the other; the counters
    // must account for both.
    let m = daemon.metrics();
    let nx = |path| m.value("dnsxdp_responses_total", &[("path", path), ("rcode", "NXDOMAIN")]);
    assert!(nx("userspace") + nx("xdp") >= 2.0, "NXDOMAIN answers not counted:\n{}", m.text);
}
