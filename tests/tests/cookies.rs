//! DNS cookies (RFC 7873/9018) end to end with dig, which sends a client cookie by default: the
//! XDP program passes the query, the daemon answers with a server cookie, and a query echoing
//! that cookie is good and exempt from response rate limiting.

use dns_xdp_tests::net::Family;
use dns_xdp_tests::{Daemon, DigOutput, Serve, TestNet, ready};

/// The `; COOKIE: <hex> (good)` line of dig's OPT pseudosection: the hex, and whether dig
/// found its client cookie echoed.
fn cookie(o: &DigOutput) -> (String, bool) {
    let line = o
        .stdout
        .lines()
        .find(|l| l.starts_with("; COOKIE: "))
        .unwrap_or_else(|| panic!("no COOKIE in the answer: {o}"));
    let hex = line["; COOKIE: ".len()..].split_whitespace().next().unwrap_or_default().to_owned();
    (hex, line.ends_with("(good)"))
}

#[test]
fn client_cookie_gets_server_cookie_and_exemption() {
    if !ready() {
        return;
    }
    let net = TestNet::new();
    let mut serve = Serve::example();
    // One response per second per prefix and no slips: a burst of queries is mostly dropped.
    serve.extra = ["--rrl-rate", "1", "--rrl-slip", "0"].map(String::from).to_vec();
    let daemon = Daemon::start(&net, serve);
    let passed = |d: &Daemon| d.metrics().value("dnsxdp_xdp_pass_total", &[("reason", "cookie")]);

    for family in Family::BOTH {
        let before = passed(&daemon);
        let first = net.dig(family, &["+cookie", "www.example.com", "A"]);
        first.expect_response();
        assert_eq!(first.rcode().as_deref(), Some("NOERROR"), "{first}");
        let (hex, good) = cookie(&first);
        // 8-byte client cookie + 16-byte RFC 9018 server cookie (version 1, reserved 0).
        assert!(good, "{first}");
        assert_eq!(hex.len(), 48, "client + server cookie: {first}");
        assert_eq!(&hex[16..24].to_ascii_lowercase(), "01000000", "{first}");
        assert!(passed(&daemon) > before, "XDP answered a COOKIE query itself");

        // Echoing the server cookie: good, and the daemon returns the same (fresh) cookie.
        let arg = format!("+cookie={hex}");
        let second = net.dig(family, &[&arg, "www.example.com", "A"]);
        second.expect_response();
        assert_eq!(cookie(&second), (hex.clone(), true), "{second}");

        // Over the rate limit, a valid server cookie still gets every answer...
        for i in 0..8 {
            let o = net.dig(family, &[&arg, "www.example.com", "A"]);
            assert_eq!(o.rcode().as_deref(), Some("NOERROR"), "query {i} with a server cookie went unanswered: {o}");
        }
        // ...while the same queries without a cookie are limited (in the kernel).
        let answered = (0..4)
            .filter(|_| net.dig(family, &["+nocookie", "+time=1", "www.example.com", "A"]).rcode().is_some())
            .count();
        assert!(answered < 4, "no query without a cookie was limited");
    }
    let exempt = daemon.metrics().value("dnsxdp_rrl_total", &[("path", "userspace"), ("result", "cookie_exempt")]);
    assert!(exempt > 0.0, "the daemon never exempted a query with a valid server cookie");
}
