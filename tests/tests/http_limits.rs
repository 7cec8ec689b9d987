//! The control API and the metrics endpoint as HTTP servers facing untrusted clients (issue 19, item 2):
//! header and body limits, the token checked before the body is read, the `Bearer` scheme in any case,
//! label values escaped in /metrics, TLS on the API, and a write that still meets its quorum time while
//! 2,000 idle or slow connections sit on the API port. Nodes are `dns-xdp serve` processes on loopback.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use dns_xdp_tests::cluster::{Node, free_port, http, json_u64, soa_serial};
use dns_xdp_tests::{Metrics, TempDir, ready, which};

const ZONE: &str = "api.test";
const TOKEN: &str = "s3cret-token";
/// Quorum deadline of the write measured under load: the write must come back within it.
const QUORUM_MS: u64 = 3000;
/// Idle connections plus slow ones (trickling their request head) held open during that write.
const IDLE: usize = 1000;
const SLOW: usize = 1000;

fn loopback(port: u16) -> SocketAddr {
    format!("127.0.0.1:{port}").parse().expect("addr")
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

/// A zone file and a token file in `dir`.
fn setup(dir: &Path, origin: &str) -> (PathBuf, PathBuf) {
    let zone = dir.join("zone");
    std::fs::write(
        &zone,
        format!("$ORIGIN {origin}.\n$TTL 300\n@ IN SOA ns1 host 7 3600 2 86400 60\n  IN NS ns1\nns1 IN A 192.0.2.1\n"),
    )
    .unwrap();
    let token = dir.join("token");
    std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
    (zone, token)
}

fn primary(dir: &Path, api: SocketAddr, extra: &[&str]) -> Node {
    let (zone, token) = setup(dir, ZONE);
    let mut args =
        s(&["--zone", zone.to_str().unwrap(), "--api", &api.to_string(), "--api-token-file", token.to_str().unwrap()]);
    args.extend(s(extra));
    Node::start(loopback(free_port()), &args)
}

/// Sends `head` (and nothing more) and reads what comes back within `wait`: (status, time to answer).
fn raw(addr: SocketAddr, head: &[u8], wait: Duration) -> (Option<u16>, Duration) {
    let mut conn = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).expect("connect");
    conn.set_read_timeout(Some(wait)).unwrap();
    let started = Instant::now();
    // The server may answer (and close) before taking everything: a failed write is not a failure.
    let _ = conn.write_all(head);
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = conn.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
        if out.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    let status = std::str::from_utf8(&out)
        .ok()
        .and_then(|t| t.strip_prefix("HTTP/1.1 "))
        .and_then(|t| t.get(..3))
        .and_then(|c| c.parse().ok());
    (status, started.elapsed())
}

fn get_zones(api: SocketAddr, authorization: &str) -> Option<u16> {
    raw(
        api,
        format!("GET /v1/zones HTTP/1.1\r\nHost: x\r\nAuthorization: {authorization}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
        Duration::from_secs(5),
    )
    .0
}

#[test]
fn api_limits_and_bearer_token() {
    if !ready() {
        return;
    }
    let dir = TempDir::new();
    let api = loopback(free_port());
    let _node = primary(dir.path(), api, &[]);

    // The scheme is case-insensitive (RFC 9110 section 11.1); the token is not.
    for scheme in ["Bearer", "bearer", "BEARER"] {
        assert_eq!(get_zones(api, &format!("{scheme} {TOKEN}")), Some(200), "scheme {scheme}");
    }
    for wrong in [
        format!("Bearer {TOKEN}x"),
        format!("Bearer {}", &TOKEN[..TOKEN.len() - 1]),
        "Bearer ".into(),
        format!("Basic {TOKEN}"),
        TOKEN.into(),
    ] {
        assert_eq!(get_zones(api, &wrong), Some(401), "authorization {wrong:?}");
    }
    let (status, body) = http(api, "GET", "/v1/zones", Some("nope"), "").expect("answer");
    assert_eq!((status, body.contains("missing or wrong bearer token")), (401, true), "{body}");

    // Headers: 15 KiB pass, 20 KiB are 431.
    let padded = |n: usize| {
        format!(
            "GET /v1/zones HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nX-Pad: {}\r\nConnection: close\r\n\r\n",
            "a".repeat(n)
        )
    };
    assert_eq!(raw(api, padded(15 * 1024).as_bytes(), Duration::from_secs(5)).0, Some(200));
    assert_eq!(raw(api, padded(20 * 1024).as_bytes(), Duration::from_secs(5)).0, Some(431));

    // A wrong token with a 1 GB body announced: 401 at once, nothing of the body read.
    let path = format!("/v1/zones/{ZONE}/rrsets/www/A");
    let huge = |auth: &str| {
        format!(
            "PUT {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {auth}\r\nContent-Length: 1000000000\r\n\r\n{{\"ttl\""
        )
    };
    let (status, took) = raw(api, huge("wrong").as_bytes(), Duration::from_secs(5));
    assert_eq!(status, Some(401));
    assert!(took < Duration::from_secs(1), "401 took {took:?}");
    // The right token with the same body: 413 at once (the announced length is over the limit).
    let (status, took) = raw(api, huge(TOKEN).as_bytes(), Duration::from_secs(5));
    assert_eq!(status, Some(413));
    assert!(took < Duration::from_secs(1), "413 took {took:?}");
    // A chunked body (no length announced) is cut off at the limit: 413 too.
    let chunk = format!("{:x}\r\n{}\r\n", 64 * 1024, "x".repeat(64 * 1024));
    let chunked = format!(
        "PUT {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nTransfer-Encoding: chunked\r\n\r\n{}",
        chunk.repeat(20)
    );
    assert_eq!(raw(api, chunked.as_bytes(), Duration::from_secs(5)).0, Some(413));

    // What was there before still is: routes, codes, JSON.
    let (status, body) =
        http(api, "PUT", &path, Some(TOKEN), "{\"ttl\": 60, \"rdata\": [\"192.0.2.7\"]}").expect("answer");
    assert_eq!(status, 200, "{body}");
    assert_eq!(json_u64(&body, "serial"), Some(8), "{body}");
    assert_eq!(http(api, "GET", "/nope", Some(TOKEN), "").map(|r| r.0), Some(404));
    assert_eq!(http(api, "PATCH", "/v1/zones", Some(TOKEN), "").map(|r| r.0), Some(405));
    let (status, body) = http(api, "PUT", &path, Some(TOKEN), "[]").expect("answer");
    assert_eq!((status, body.contains("\"field\":\"body\"")), (400, true), "{body}");
}

#[test]
fn metrics_escape_label_values() {
    if !ready() {
        return;
    }
    let dir = TempDir::new();
    // A `"` and a `\` are legal in a DNS label (escaped in the zone file); our presentation format
    // writes `\` as \092 and `"` as it is.
    let origin = r#"we\"ird\\x.test"#;
    let (zone, _) = setup(dir.path(), origin);
    let node = Node::start(loopback(free_port()), &s(&["--zone", zone.to_str().unwrap()]));
    let (status, text) = http(node.metrics, "GET", "/metrics", None, "").expect("scrape");
    assert_eq!(status, 200);
    let metrics = Metrics::parse(&text);
    assert_eq!(metrics.sum("dnsxdp_zone_serial", &[("zone", r#"we"ird\092x.test."#)]), Some(7.0), "{text}");
    assert!(text.contains(r#"dnsxdp_zone_serial{zone="we\"ird\\092x.test."} 7"#), "{text}");
    // Every sample line is `name{labels} value` with balanced quotes.
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let unescaped_quotes = line.replace("\\\\", "").replace("\\\"", "").matches('"').count();
        assert_eq!(unescaped_quotes % 2, 0, "unbalanced quotes: {line}");
    }
    for (name, labels) in [
        ("dnsxdp_responses_total", vec![("path", "userspace"), ("rcode", "NOERROR")]),
        ("dnsxdp_bpf_map_entries", vec![("map", "names")]),
    ] {
        assert!(metrics.sum(name, &labels).is_some(), "{name} missing:\n{text}");
    }
    // A body on the metrics port is refused before it is read; other paths and methods as before.
    assert_eq!(http(node.metrics, "GET", "/nope", None, "").map(|r| r.0), Some(404));
    assert_eq!(http(node.metrics, "POST", "/metrics", None, "").map(|r| r.0), Some(405));
    assert_eq!(http(node.metrics, "GET", "/healthz", None, "").map(|r| r.0), Some(200));
}

#[test]
fn api_over_tls() {
    if !ready() {
        return;
    }
    let (Some(openssl), Some(curl)) = (which("openssl"), which("curl")) else {
        panic!("api_over_tls needs openssl and curl");
    };
    let dir = TempDir::new();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = Command::new(openssl)
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ])
        .args([
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
            key.to_str().unwrap(),
            "-out",
            cert.to_str().unwrap(),
        ])
        .output()
        .expect("running openssl");
    assert!(made.status.success(), "openssl: {}", String::from_utf8_lossy(&made.stderr));
    let api = loopback(free_port());
    let _node =
        primary(dir.path(), api, &["--api-tls-cert", cert.to_str().unwrap(), "--api-tls-key", key.to_str().unwrap()]);

    let out = Command::new(&curl)
        .args([
            "-sS",
            "--max-time",
            "5",
            "--cacert",
            cert.to_str().unwrap(),
            "-H",
            &format!("Authorization: bearer {TOKEN}"),
        ])
        .args(["-w", "\n%{http_code}", &format!("https://{api}/v1/zones")])
        .output()
        .expect("running curl");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.ends_with("\n200") && text.contains(&format!("\"zone\":\"{ZONE}.\"")),
        "curl over TLS: {text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Plain HTTP on the TLS port gets no HTTP answer.
    let (status, took) = raw(
        api,
        format!("GET /v1/zones HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\r\n").as_bytes(),
        Duration::from_secs(5),
    );
    assert_eq!(status, None);
    assert!(took < Duration::from_secs(4), "plain HTTP was held {took:?} instead of refused");
}

/// Open descriptors of a process once two counts 100 ms apart agree: the sockets a write's
/// quorum probes and NOTIFYs used close in the background after its answer.
fn settled_fds(pid: u32) -> usize {
    let mut last = open_fds(pid);
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(100));
        let now = open_fds(pid);
        if now == last {
            return now;
        }
        last = now;
    }
    last
}

/// Open descriptors of a process (its sockets among them).
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

#[test]
fn put_meets_quorum_time_under_2000_idle_and_slow_connections() {
    if !ready() {
        return;
    }
    dns_xdp_tests::allow_open_files(IDLE + SLOW + 200);

    // A primary with one secondary and quorum 1: a write returns once the secondary serves it.
    let dir = TempDir::new();
    let api = loopback(free_port());
    let primary_dns = loopback(free_port());
    let secondary_dns = loopback(free_port());
    let (zone, token) = setup(dir.path(), ZONE);
    let p = Node::start(
        primary_dns,
        &s(&["--zone", zone.to_str().unwrap(), "--api", &api.to_string(), "--api-token-file", token.to_str().unwrap()])
            .into_iter()
            .chain(s(&[
                "--node",
                &secondary_dns.to_string(),
                "--quorum",
                "1",
                "--quorum-timeout-ms",
                &QUORUM_MS.to_string(),
                "--allow-transfer",
                "127.0.0.0/8",
            ]))
            .collect::<Vec<_>>(),
    );
    let secondary = Node::start(secondary_dns, &s(&["--secondary", &format!("{ZONE}@{primary_dns}")]));
    assert!(
        dns_xdp_tests::wait_for(Duration::from_secs(10), Duration::from_millis(50), || (soa_serial(
            secondary.dns,
            ZONE
        ) == Some(7))
        .then_some(()))
        .is_some()
    );

    let put = |n: u32| {
        let started = Instant::now();
        let (status, body) = http(
            api,
            "PUT",
            &format!("/v1/zones/{ZONE}/rrsets/w{n}/A"),
            Some(TOKEN),
            "{\"ttl\": 60, \"rdata\": [\"192.0.2.9\"]}",
        )
        .expect("API answers");
        (status, body, started.elapsed())
    };
    let (status, body, quiet) = put(0);
    assert_eq!(status, 200, "{body}");

    // The crowd: idle connections that send nothing, and slow ones that trickle a request head,
    // one byte per connection per 200 ms (the head never completes within the test).
    let fds_before = settled_fds(p.pid().expect("running"));
    let mut idle = Vec::new();
    for _ in 0..IDLE {
        idle.push(TcpStream::connect(api).expect("idle connect"));
    }
    let mut slow = Vec::new();
    for _ in 0..SLOW {
        let mut c = TcpStream::connect(api).expect("slow connect");
        c.write_all(b"PUT /v1/zones/api.test/rrsets/x/A HTTP/1.1\r\nX-Slow: ").expect("slow head");
        slow.push(c);
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let trickle = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for c in &mut slow {
                    let _ = c.write_all(b"a");
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            slow
        })
    };
    // Every one of them is a socket the daemon holds.
    let held = dns_xdp_tests::wait_for(Duration::from_secs(5), Duration::from_millis(50), || {
        let n = open_fds(p.pid().expect("running")).saturating_sub(fds_before);
        (n >= IDLE + SLOW).then_some(n)
    });
    assert!(
        held.is_some(),
        "the daemon holds {} of {} connections",
        open_fds(p.pid().unwrap()) - fds_before,
        IDLE + SLOW
    );

    let mut times = Vec::new();
    for n in 1..=5 {
        let (status, body, took) = put(n);
        assert_eq!(status, 200, "write {n} under load: {body}");
        times.push(took);
    }
    let worst = times.iter().max().copied().unwrap_or_default();
    eprintln!(
        "PUT on a quiet API: {quiet:?}; with {IDLE} idle + {SLOW} slow connections open: {times:?} (quorum time {QUORUM_MS} ms)"
    );
    assert!(worst < Duration::from_millis(QUORUM_MS), "a PUT took {worst:?} with {} connections open", IDLE + SLOW);
    // The crowd is still there: nothing was shed to make room.
    assert!(
        open_fds(p.pid().unwrap()).saturating_sub(fds_before) >= IDLE + SLOW,
        "connections were dropped during the writes"
    );

    // And it does not stay: within the head timeout (10 s) every idle and slow connection is closed.
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let slow = trickle.join().expect("trickle thread");
    std::thread::sleep(Duration::from_secs(11));
    let closed = idle.into_iter().chain(slow).filter(is_closed).count();
    assert_eq!(closed, IDLE + SLOW, "connections still open after the head timeout");
}

/// Whether the server has closed `conn` (EOF or reset on read, after whatever it sent last).
fn is_closed(mut conn: &TcpStream) -> bool {
    conn.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let mut buf = [0u8; 512];
    loop {
        match conn.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) => return !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
        }
    }
}
