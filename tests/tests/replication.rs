//! Replication: a primary with the control API and a journal, secondaries pulling over
//! AXFR/IXFR on NOTIFY, quorum confirmation, crash replay, TSIG refusals, outgoing transfers of a
//! big zone (streamed in bounded memory, at most --xfr-out-max at once) and interop with knotd in
//! both directions. Nodes are `dns-xdp serve` processes on loopback with distinct ports, XDP off
//! (publish order and map updates are the same code as with XDP; xdp_path covers the kernel).

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dns_xdp_tests::cluster::{Node, free_port, http, json_u64, kdig_short, percentile, soa_serial, tcp_query};
use dns_xdp_tests::{TempDir, ready, stop, wait_for, which};

const ZONE: &str = "repl.test";
const TOKEN: &str = "s3cret-token";
/// base64 of "0123456789abcdef0123456789abcdef".
const SECRET: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

fn loopback(port: u16) -> SocketAddr {
    format!("127.0.0.1:{port}").parse().expect("addr")
}

/// The zone file, a TSIG config and a token file in `dir`.
fn setup(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let zone = dir.join("repl.test.zone");
    // REFRESH 3600: updates must travel by NOTIFY, not by the timer.
    std::fs::write(&zone, "$ORIGIN repl.test.\n$TTL 300\n@ IN SOA ns1 host 1 3600 2 86400 60\n  IN NS ns1\nns1 IN A 192.0.2.1\nwww IN A 192.0.2.10\n").unwrap();
    let cfg = dir.join("tsig.toml");
    std::fs::write(
        &cfg,
        format!("[[tsig_key]]\nname = \"xfr-key\"\nalgorithm = \"hmac-sha256\"\nsecret = \"{SECRET}\"\n"),
    )
    .unwrap();
    let token = dir.join("token");
    std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
    (zone, cfg, token)
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

fn put_a(api: SocketAddr, name: &str, addr: &str) -> (u16, String) {
    http(
        api,
        "PUT",
        &format!("/v1/zones/{ZONE}/rrsets/{name}/A"),
        Some(TOKEN),
        &format!("{{\"ttl\": 60, \"rdata\": [\"{addr}\"]}}"),
    )
    .expect("API answers")
}

fn converged(nodes: &[&Node], serial: u32) -> bool {
    nodes.iter().all(|n| soa_serial(n.dns, ZONE) == Some(serial))
}

#[test]
fn cluster_quorum_journal_and_propagation() {
    if !ready() {
        return;
    }
    let dir = TempDir::new();
    let (zone, cfg, token) = setup(dir.path());
    let journal = dir.path().join("journal");
    let primary_dns = loopback(free_port());
    let api = loopback(free_port());
    let node_addrs: Vec<SocketAddr> = (0..6).map(|_| loopback(free_port())).collect();
    let mut pargs = s(&[
        "--zone",
        zone.to_str().unwrap(),
        "--config",
        cfg.to_str().unwrap(),
        "--journal",
        journal.to_str().unwrap(),
    ]);
    pargs.extend(s(&[
        "--api",
        &api.to_string(),
        "--api-token-file",
        token.to_str().unwrap(),
        "--quorum",
        "4",
        "--quorum-timeout-ms",
        "1500",
    ]));
    for n in &node_addrs {
        pargs.extend(["--node".into(), n.to_string()]);
    }
    let mut primary = Node::start(primary_dns, &pargs);
    let secondary = format!("{ZONE}@{primary_dns}");
    let mut nodes: Vec<Node> = node_addrs
        .iter()
        .map(|a| Node::start(*a, &s(&["--config", cfg.to_str().unwrap(), "--secondary", &secondary])))
        .collect();
    assert!(
        wait_for(Duration::from_secs(10), Duration::from_millis(20), || converged(
            &nodes.iter().collect::<Vec<_>>(),
            1
        )
        .then_some(()))
        .is_some(),
        "secondaries did not load serial 1 by AXFR"
    );

    // Authentication and validation: nothing changes.
    let (status, _) = http(
        api,
        "PUT",
        &format!("/v1/zones/{ZONE}/rrsets/www/A"),
        Some("wrong"),
        "{\"ttl\": 60, \"rdata\": [\"192.0.2.1\"]}",
    )
    .unwrap();
    assert_eq!(status, 401);
    let (status, body) = put_a(api, "www", "192.0.2.300");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("\"field\":\"rdata[0]\""), "{body}");
    let (status, body) = http(
        api,
        "PUT",
        &format!("/v1/zones/{ZONE}/rrsets/www/CNAME"),
        Some(TOKEN),
        "{\"ttl\": 60, \"rdata\": [\"ns1\"]}",
    )
    .unwrap();
    assert_eq!(status, 400, "CNAME beside A: {body}");
    assert_eq!(soa_serial(primary_dns, ZONE), Some(1), "rejected writes change nothing");

    // A stream of writes, each confirmed by at least 4 of the 6 nodes.
    const UPDATES: usize = 50;
    let (mut confirmed_ms, mut client_ms) = (Vec::new(), Vec::new());
    for i in 0..UPDATES {
        let t = Instant::now();
        let (status, body) = put_a(api, "www", &format!("192.0.2.{}", 100 + i));
        client_ms.push(t.elapsed().as_secs_f64() * 1e3);
        assert_eq!(status, 200, "{body}");
        assert_eq!(json_u64(&body, "serial"), Some(2 + i as u64), "{body}");
        assert!(json_u64(&body, "confirmed").unwrap() >= 4, "{body}");
        assert_eq!((json_u64(&body, "required"), json_u64(&body, "nodes")), (Some(4), Some(6)), "{body}");
        confirmed_ms.push(json_u64(&body, "elapsed_ms").unwrap() as f64);
    }
    let last = 1 + UPDATES as u32;
    let all: Vec<&Node> = nodes.iter().collect();
    assert!(
        wait_for(Duration::from_secs(5), Duration::from_millis(20), || converged(&all, last).then_some(())).is_some(),
        "all 6 nodes converge"
    );
    for n in &nodes {
        assert_eq!(kdig_short(n.dns, &[&format!("www.{ZONE}"), "A"]), vec![format!("192.0.2.{}", 100 + UPDATES - 1)]);
    }
    println!(
        "propagation to quorum (4 of 6) over {UPDATES} updates: p50 {:.1} ms, p99 {:.1} ms (API call incl. journal fsync: p50 {:.1} ms, p99 {:.1} ms)",
        percentile(&confirmed_ms, 50.0),
        percentile(&confirmed_ms, 99.0),
        percentile(&client_ms, 50.0),
        percentile(&client_ms, 99.0)
    );
    assert!(percentile(&client_ms, 50.0) < 1000.0, "sanity bound");

    // A batch is one serial.
    let batch = "{\"changes\": [{\"op\": \"put\", \"name\": \"a\", \"type\": \"A\", \"ttl\": 60, \"rdata\": [\"192.0.2.7\"]}, {\"op\": \"put\", \"name\": \"mail\", \"type\": \"MX\", \"ttl\": 60, \"rdata\": [\"10 a\"]}]}";
    let (status, body) = http(api, "POST", &format!("/v1/zones/{ZONE}/batch"), Some(TOKEN), batch).unwrap();
    assert_eq!((status, json_u64(&body, "serial")), (200, Some(u64::from(last) + 1)), "{body}");
    let (status, body) = http(api, "DELETE", &format!("/v1/zones/{ZONE}/rrsets/a/A"), Some(TOKEN), "").unwrap();
    assert_eq!(status, 200, "{body}");
    let mut serial = last + 2;

    // Two nodes down: 4 of 6 still confirm.
    nodes[0].kill9();
    nodes[1].kill9();
    let (status, body) = put_a(api, "www", "192.0.2.201");
    serial += 1;
    assert_eq!(status, 200, "{body}");
    assert_eq!(json_u64(&body, "confirmed"), Some(4), "{body}");
    // A third down: 503, and the change stays.
    nodes[2].kill9();
    let (status, body) = put_a(api, "www", "192.0.2.202");
    serial += 1;
    assert_eq!(status, 503, "{body}");
    assert_eq!((json_u64(&body, "confirmed"), json_u64(&body, "required")), (Some(3), Some(4)), "{body}");
    assert_eq!(soa_serial(primary_dns, ZONE), Some(serial));
    // The nodes come back and converge.
    for n in &mut nodes[..3] {
        n.restart();
    }
    let all: Vec<&Node> = nodes.iter().collect();
    assert!(
        wait_for(Duration::from_secs(10), Duration::from_millis(20), || converged(&all, serial).then_some(()))
            .is_some(),
        "restarted nodes catch up"
    );

    // SIGKILL the primary right after a 200: the write survives through the journal.
    let (status, _) = put_a(api, "crash", "192.0.2.203");
    serial += 1;
    assert_eq!(status, 200);
    primary.kill9();
    primary.restart();
    assert_eq!(soa_serial(primary_dns, ZONE), Some(serial), "serial after replay");
    assert_eq!(kdig_short(primary_dns, &[&format!("crash.{ZONE}"), "A"]), vec!["192.0.2.203".to_string()]);
    assert!(primary.log().contains("replayed"), "{}", primary.log());
    let (status, body) = http(api, "GET", &format!("/v1/zones/{ZONE}"), Some(TOKEN), "").unwrap();
    assert!(status == 200 && body.contains("192.0.2.203") && body.contains("\"10 a.repl.test.\""), "{body}");
    // Writes go on after the restart; the secondaries follow by IXFR from the replayed journal.
    let (status, body) = put_a(api, "after", "192.0.2.204");
    assert_eq!(status, 200, "{body}");
    serial += 1;
    let all: Vec<&Node> = nodes.iter().collect();
    assert!(
        wait_for(Duration::from_secs(10), Duration::from_millis(20), || converged(&all, serial).then_some(()))
            .is_some()
    );
    assert!(nodes[5].log().contains("IXFR, 1 changes"), "{}", nodes[5].log());
}

#[test]
fn tsig_refuses_unsigned_and_wrong_key_transfers() {
    if !ready() {
        return;
    }
    let dir = TempDir::new();
    let (zone, cfg, _) = setup(dir.path());
    let dns = loopback(free_port());
    let _primary = Node::start(
        dns,
        &s(&["--zone", zone.to_str().unwrap(), "--config", cfg.to_str().unwrap(), "--allow-transfer", "127.0.0.1/32"]),
    );
    let axfr = |extra: &[&str]| -> Vec<String> { kdig_short(dns, &[&["+tcp", "AXFR", ZONE][..], extra].concat()) };
    let good = axfr(&["-y", &format!("hmac-sha256:xfr-key:{SECRET}")]);
    assert!(good.iter().any(|l| l == "192.0.2.10"), "signed AXFR: {good:?}");
    assert!(!axfr(&[]).iter().any(|l| l == "192.0.2.10"), "unsigned AXFR must be refused");
    let wrong = axfr(&["-y", "hmac-sha256:xfr-key:d3JvbmcgIHNlY3JldCB3cm9uZyBzZWNyZXQgd3Jvbmc="]);
    assert!(!wrong.iter().any(|l| l == "192.0.2.10"), "wrong secret: {wrong:?}");
    let other = axfr(&["-y", &format!("hmac-sha256:other-key:{SECRET}")]);
    assert!(!other.iter().any(|l| l == "192.0.2.10"), "unknown key: {other:?}");
    // Without a key configured but outside allow_transfer: refused as before replication existed.
    let dns2 = loopback(free_port());
    let _open = Node::start(dns2, &s(&["--zone", zone.to_str().unwrap()]));
    assert!(!kdig_short(dns2, &["+tcp", "AXFR", ZONE]).iter().any(|l| l == "192.0.2.10"));
}

/// Names in the big zone: its AXFR (some 9 MB) is more than a client that does not read lets the
/// daemon's socket buffers take (tcp_wmem's 4 MB and the client's unread window), so such a
/// transfer stays in progress.
const BIG: usize = 300_000;
const AXFR: u16 = 252;

/// A primary serving a zone of `BIG` A records (h0..h299999 besides SOA, NS and ns1) to
/// 127.0.0.1, with the flags `extra` and the environment `env`.
fn big_primary(extra: &[&str], env: &[(&str, &str)]) -> (Node, TempDir) {
    let dir = TempDir::new();
    let zone = big_zone(dir.path());
    let mut args = s(&["--zone", zone.to_str().unwrap(), "--allow-transfer", "127.0.0.1/32"]);
    args.extend(s(extra));
    (Node::start_with_env(loopback(free_port()), &args, env), dir)
}

fn big_zone(dir: &Path) -> PathBuf {
    let path = dir.join("big.zone");
    let mut text =
        format!("$ORIGIN {ZONE}.\n$TTL 300\n@ IN SOA ns1 host 1 3600 2 86400 60\n  IN NS ns1\nns1 IN A 192.0.2.1\n");
    for i in 0..BIG {
        text.push_str(&format!("h{i} IN A 10.{}.{}.{}\n", i >> 16, (i >> 8) & 0xff, i & 0xff));
    }
    std::fs::write(&path, text).unwrap();
    path
}

/// The RCODE of the first message answering an AXFR on a fresh connection (closed after it).
fn first_rcode(server: SocketAddr) -> Result<u8, String> {
    let mut conn = TcpStream::connect(server).map_err(|e| e.to_string())?;
    conn.set_read_timeout(Some(Duration::from_secs(5))).map_err(|e| e.to_string())?;
    conn.write_all(&tcp_query(0x5151, ZONE, AXFR)).map_err(|e| e.to_string())?;
    let mut len = [0u8; 2];
    conn.read_exact(&mut len).map_err(|e| format!("reading: {e}"))?;
    let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
    conn.read_exact(&mut msg).map_err(|e| format!("reading: {e}"))?;
    Ok(msg[3] & 0xf)
}

/// A sample of the daemon's /metrics: the value on the line starting with `series`.
fn metric(node: &Node, series: &str) -> Option<u64> {
    let (_, body) = http(node.metrics, "GET", "/metrics", None, "")?;
    body.lines().find_map(|l| l.strip_prefix(series)?.trim().parse::<f64>().ok()).map(|v| v as u64)
}

/// A field of /proc/PID/status in KiB (VmRSS, VmHWM).
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("reading /proc/pid/status");
    let line = status.lines().find(|l| l.starts_with(field)).unwrap_or_else(|| panic!("no {field}"));
    line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("a number of kB")
}

/// An AXFR of a big zone is sent as it is rendered: the daemon's peak memory during the transfer
/// stays within a few messages of what it holds anyway. The old code cloned every record and
/// rendered every message before sending the first (some 40 MB more at the peak for this zone).
#[test]
fn an_axfr_of_a_big_zone_streams_in_bounded_memory() {
    if !ready() {
        return;
    }
    // mimalloc hands freed pages back at once, so the resident size follows what is allocated.
    let (node, _dir) = big_primary(&[], &[("MIMALLOC_PURGE_DELAY", "0")]);
    let dns = node.dns;
    let pid = node.pid().expect("running");
    let axfr = || kdig_short(dns, &["+tcp", "AXFR", ZONE]).len();
    // A first transfer warms up what any transfer allocates once (buffers, the runtime's tasks).
    assert_eq!(axfr(), BIG + 4, "SOA, NS, ns1 A, the names, SOA");
    std::thread::sleep(Duration::from_millis(200));
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").expect("resetting VmHWM");
    let before = status_kib(pid, "VmRSS");
    assert_eq!(axfr(), BIG + 4);
    let grew = status_kib(pid, "VmHWM").saturating_sub(before);
    println!("AXFR of {BIG} names: resident {before} KiB before, peak {grew} KiB above it");
    assert!(grew < 8 * 1024, "the transfer's peak was {grew} KiB above {before} KiB");
}

/// `--xfr-out-max 2`: with two transfers held open by clients that do not read, a third is
/// answered SERVFAIL at once and counted, queries are answered meanwhile, and the slots come back
/// when those clients go. The old code served any number of transfers at once.
#[test]
fn transfers_past_xfr_out_max_get_servfail_until_slots_free() {
    if !ready() {
        return;
    }
    let (node, _dir) = big_primary(&["--xfr-out-max", "2"], &[]);
    let dns = node.dns;
    let started = "dnsxdp_xfr_out_total{result=\"started\"}";
    let busy = "dnsxdp_xfr_out_total{result=\"busy\"}";
    let stalled: Vec<TcpStream> = (0..2)
        .map(|i| {
            let mut conn = TcpStream::connect(dns).expect("connecting");
            conn.write_all(&tcp_query(i, ZONE, AXFR)).expect("sending the AXFR request");
            conn
        })
        .collect();
    let held = wait_for(Duration::from_secs(10), Duration::from_millis(20), || {
        (metric(&node, started) == Some(2)).then_some(())
    });
    assert!(held.is_some(), "two transfers started: {:?}", metric(&node, started));
    let asked = Instant::now();
    assert_eq!(first_rcode(dns), Ok(2), "SERVFAIL past the cap");
    assert!(asked.elapsed() < Duration::from_secs(2), "promptly: {:?}", asked.elapsed());
    assert_eq!(metric(&node, busy), Some(1));
    for tcp in [&[][..], &["+tcp"][..]] {
        let answer = kdig_short(dns, &[tcp, &[&format!("h1.{ZONE}"), "A"][..]].concat());
        assert_eq!(answer, vec!["10.0.0.1".to_string()], "queries answered meanwhile ({tcp:?})");
    }
    // The clients go: their transfers end (write errors) and give their slots back.
    drop(stalled);
    let freed =
        wait_for(Duration::from_secs(10), Duration::from_millis(50), || (first_rcode(dns) == Ok(0)).then_some(()));
    assert!(freed.is_some(), "a slot came back");
    assert_eq!(kdig_short(dns, &["+tcp", "AXFR", ZONE]).len(), BIG + 4, "a whole transfer again");
}

/// knotd on loopback with `conf` (its `{d}` is the run dir); stopped on Drop.
struct Knot {
    child: Option<Child>,
    dir: TempDir,
}

impl Knot {
    fn start(conf: &str, zone_text: &str, port: u16) -> Knot {
        let dir = TempDir::new();
        let d = dir.path().display().to_string();
        std::fs::write(dir.path().join("repl.test.zone"), zone_text).unwrap();
        let conf_path = dir.path().join("knot.conf");
        std::fs::write(&conf_path, conf.replace("{d}", &d)).unwrap();
        let log = std::fs::File::create(dir.path().join("knotd.log")).unwrap();
        let child = Command::new(which("knotd").expect("knotd"))
            .args(["-c", conf_path.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting knotd");
        let k = Knot { child: Some(child), dir };
        let up = wait_for(Duration::from_secs(10), Duration::from_millis(50), || {
            std::net::UdpSocket::bind("127.0.0.1:0").ok()?.send_to(&[0; 12], loopback(port)).ok()?;
            (!kdig_short(loopback(port), &["SOA", "invalid."]).is_empty() || k.log().contains("server started"))
                .then_some(())
        });
        assert!(up.is_some(), "knotd did not start:\n{}", k.log());
        k
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("knotd.log")).unwrap_or_default()
    }
}

impl Drop for Knot {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            stop(&mut c, Duration::from_secs(5));
        }
        if std::thread::panicking() {
            eprintln!("--- knotd log ---\n{}", self.log());
        }
    }
}

const KNOT_KEY: &str = "key:\n  - id: xfr-key\n    algorithm: hmac-sha256\n    secret: SECRET\n";

#[test]
fn knotd_secondary_of_dns_xdp_primary() {
    if !ready() || which("knotd").is_none() {
        assert!(std::env::var_os("CI").is_none() || which("knotd").is_some(), "knotd missing under CI");
        return;
    }
    let dir = TempDir::new();
    let (zone, cfg, token) = setup(dir.path());
    let (ours, api, kport) = (loopback(free_port()), loopback(free_port()), free_port());
    let _primary = Node::start(
        ours,
        &s(&[
            "--zone",
            zone.to_str().unwrap(),
            "--config",
            cfg.to_str().unwrap(),
            "--api",
            &api.to_string(),
            "--api-token-file",
            token.to_str().unwrap(),
            "--node",
            &loopback(kport).to_string(),
            "--quorum",
            "1",
        ]),
    );
    let conf = format!(
        "server:\n  rundir: \"{{d}}\"\n  listen: 127.0.0.1@{kport}\ndatabase:\n  storage: \"{{d}}\"\nlog:\n  - target: stderr\n    any: info\n{}remote:\n  - id: primary\n    address: 127.0.0.1@{}\n    key: xfr-key\nacl:\n  - id: notify\n    address: 127.0.0.1\n    key: xfr-key\n    action: notify\nzone:\n  - domain: {ZONE}\n    file: \"{{d}}/secondary.zone\"\n    master: primary\n    acl: notify\n    zonefile-sync: -1\n",
        KNOT_KEY.replace("SECRET", SECRET),
        ours.port()
    );
    let knot = Knot::start(&conf, "", kport);
    assert!(
        wait_for(Duration::from_secs(10), Duration::from_millis(50), || (soa_serial(loopback(kport), ZONE) == Some(1))
            .then_some(()))
        .is_some(),
        "knotd AXFR:\n{}",
        knot.log()
    );
    for i in 0..3 {
        let (status, body) = put_a(api, "www", &format!("192.0.2.{}", 50 + i));
        assert_eq!(status, 200, "knotd confirms serial via SOA: {body}\n{}", knot.log());
    }
    assert_eq!(kdig_short(loopback(kport), &[&format!("www.{ZONE}"), "A"]), vec!["192.0.2.52".to_string()]);
    let log = knot.log();
    assert!(log.contains("IXFR") && log.contains("finished"), "knotd pulled by IXFR:\n{log}");
    assert!(!log.contains("fallback to AXFR"), "{log}");
}

#[test]
fn dns_xdp_secondary_of_knotd_primary() {
    if !ready() || which("knotd").is_none() || which("knsupdate").is_none() {
        assert!(std::env::var_os("CI").is_none(), "knotd/knsupdate missing under CI");
        return;
    }
    let dir = TempDir::new();
    let (_, cfg, _) = setup(dir.path());
    let (ours, kport) = (loopback(free_port()), free_port());
    let conf = format!(
        "server:\n  rundir: \"{{d}}\"\n  listen: 127.0.0.1@{kport}\ndatabase:\n  storage: \"{{d}}\"\nlog:\n  - target: stderr\n    any: info\n{}remote:\n  - id: ours\n    address: 127.0.0.1@{}\n    key: xfr-key\nacl:\n  - id: xfr\n    address: 127.0.0.1\n    key: xfr-key\n    action: transfer\n  - id: upd\n    address: 127.0.0.1\n    action: update\nzone:\n  - domain: {ZONE}\n    file: \"{{d}}/repl.test.zone\"\n    notify: ours\n    acl: [xfr, upd]\n    zonefile-sync: -1\n",
        KNOT_KEY.replace("SECRET", SECRET),
        ours.port()
    );
    let zone_text = std::fs::read_to_string(dir.path().join("repl.test.zone")).unwrap();
    let knot = Knot::start(&conf, &zone_text, kport);
    let node = Node::start(
        ours,
        &s(&["--config", cfg.to_str().unwrap(), "--secondary", &format!("{ZONE}@{}", loopback(kport))]),
    );
    assert!(
        wait_for(Duration::from_secs(10), Duration::from_millis(50), || (soa_serial(ours, ZONE) == Some(1))
            .then_some(()))
        .is_some(),
        "AXFR from knotd:\n{}",
        node.log()
    );
    let mut upd = Command::new("knsupdate").stdin(Stdio::piped()).stdout(Stdio::null()).spawn().unwrap();
    use std::io::Write as _;
    writeln!(
        upd.stdin.as_mut().unwrap(),
        "server 127.0.0.1 {kport}\nzone {ZONE}.\nupdate add new.{ZONE}. 60 A 192.0.2.77\nsend\nquit"
    )
    .unwrap();
    assert!(upd.wait().unwrap().success());
    let got = wait_for(Duration::from_secs(10), Duration::from_millis(20), || {
        (kdig_short(ours, &[&format!("new.{ZONE}"), "A"]) == vec!["192.0.2.77".to_string()]).then_some(())
    });
    assert!(got.is_some(), "NOTIFY + IXFR from knotd:\n{}\n{}", node.log(), knot.log());
    assert!(node.log().contains("IXFR, 1 changes"), "{}", node.log());
}

/// A primary and three secondaries on loopback aliases, as a new user sets them up on one host:
/// NOTIFY, SOA probes and transfers must leave from each node's own address (its single --listen
/// address, or --source), or the peers refuse them (a NOTIFY "not from our primary", a transfer
/// to an address not allowed). No TSIG: the address checks alone decide.
#[test]
fn loopback_aliases_replicate_from_their_own_addresses() {
    if !ready() {
        return;
    }
    let dir = TempDir::new();
    let (zone, _, token) = setup(dir.path());
    let port = free_port();
    let at = |host: u8| -> SocketAddr { format!("127.0.0.{host}:{port}").parse().expect("addr") };
    let api = loopback(free_port());
    let mut pargs = s(&["--zone", zone.to_str().unwrap(), "--api", &api.to_string()]);
    pargs.extend(s(&["--api-token-file", token.to_str().unwrap(), "--quorum", "2", "--quorum-timeout-ms", "3000"]));
    for host in 11..=13 {
        pargs.extend(["--node".into(), at(host).to_string()]);
    }
    let _primary = Node::start(at(10), &pargs);
    let secondary = format!("{ZONE}@{}", at(10));
    let mut nodes: Vec<Node> = (11..=12).map(|host| Node::start(at(host), &s(&["--secondary", &secondary]))).collect();
    // Two addresses of one family: no default source, --source names the one the primary knows.
    let second_listen = format!("127.0.0.23:{port}");
    nodes.push(Node::start(
        at(13),
        &s(&["--listen", &second_listen, "--source", "127.0.0.13", "--secondary", &secondary]),
    ));
    let all: Vec<&Node> = nodes.iter().collect();
    assert!(
        wait_for(Duration::from_secs(10), Duration::from_millis(20), || converged(&all, 1).then_some(())).is_some(),
        "secondaries on 127.0.0.11-13 did not transfer serial 1 from 127.0.0.10"
    );

    const WRITES: usize = 20;
    let (mut confirmed_ms, mut client_ms) = (Vec::new(), Vec::new());
    for i in 0..WRITES {
        let t = Instant::now();
        let (status, body) = put_a(api, "www", &format!("192.0.2.{}", 100 + i));
        client_ms.push(t.elapsed().as_secs_f64() * 1e3);
        assert_eq!(status, 200, "write {i}: {body}");
        assert!(json_u64(&body, "confirmed").unwrap() >= 2, "{body}");
        confirmed_ms.push(json_u64(&body, "elapsed_ms").unwrap() as f64);
    }
    let last = 1 + WRITES as u32;
    assert!(
        wait_for(Duration::from_secs(5), Duration::from_millis(20), || converged(&all, last).then_some(())).is_some(),
        "all three secondaries converge on serial {last}"
    );
    let max = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
    println!(
        "loopback aliases 127.0.0.10-13, {WRITES} writes confirmed by 2 of 3: propagation p50 {:.1} ms, max {:.1} ms \
         (API call incl. quorum: p50 {:.1} ms, max {:.1} ms)",
        percentile(&confirmed_ms, 50.0),
        max(&confirmed_ms),
        percentile(&client_ms, 50.0),
        max(&client_ms)
    );
}
