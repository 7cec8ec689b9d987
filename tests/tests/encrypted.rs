//! DNS over TLS, HTTPS and QUIC (issue 22): the same answers as TCP, byte for byte, through clients
//! nobody here wrote (kdig +tls/+https/+https-get, dnsperf -m dot/doh, curl --doh-url, quinn with
//! hickory-proto's message codec for DoQ); padding only when asked and only on these transports;
//! DoH's cache lifetime; clear start errors; the certificate reloaded on SIGHUP without dropping
//! open connections; responses counted by transport. Loopback only, a daemon per test, XDP off.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use dns_xdp_tests::cluster::{Node, free_port};
use dns_xdp_tests::conformance::corpus::{self, query_bytes};
use dns_xdp_tests::conformance::servers::{Server, zone_files};
use dns_xdp_tests::{DigOutput, TempDir, daemon_bin, ready, repo_root, which};
use rustls::pki_types::{CertificateDer, ServerName};

/// The padding option (RFC 7830) and the response block (RFC 8467 section 4.1).
const PADDING: u16 = 12;
const BLOCK: usize = 468;

/// A self-signed certificate for `localhost` and 127.0.0.1, made now: (cert.pem, key.pem, DER).
fn make_cert(dir: &Path, tag: &str) -> (PathBuf, PathBuf, CertificateDer<'static>) {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).expect("rcgen");
    let (cert, key) = (dir.join(format!("{tag}-cert.pem")), dir.join(format!("{tag}-key.pem")));
    std::fs::write(&cert, made.cert.pem()).expect("writing the certificate");
    std::fs::write(&key, made.key_pair.serialize_pem()).expect("writing the key");
    (cert, key, made.cert.der().clone())
}

/// A daemon answering the conformance zones (and `doh.test.`, whose `www` is 127.0.0.1) over UDP and
/// TCP and over TLS, HTTPS and QUIC, with a client for the plain transports.
struct Bed {
    node: Node,
    plain: Server,
    tls: SocketAddr,
    https: SocketAddr,
    quic: SocketAddr,
    cert: PathBuf,
    key: PathBuf,
    der: CertificateDer<'static>,
    dir: TempDir,
}

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

impl Bed {
    fn start() -> Bed {
        let dir = TempDir::new();
        let (cert, key, der) = make_cert(dir.path(), "first");
        let doh_zone = dir.path().join("doh.test.zone");
        std::fs::write(
            &doh_zone,
            "$ORIGIN doh.test.\n$TTL 300\n@ IN SOA ns hostmaster 1 3600 600 86400 60\n@ IN NS ns\nns IN A 127.0.0.1\nwww 120 IN A 127.0.0.1\n",
        )
        .expect("writing the doh.test zone");
        let (tls, https, quic) = (loopback(), loopback(), loopback());
        let mut args: Vec<String> = Vec::new();
        for zone in zones() {
            args.extend(["--zone".into(), zone.path.display().to_string()]);
        }
        args.extend(["--zone".into(), doh_zone.display().to_string()]);
        args.extend(["--tls-cert".into(), cert.display().to_string(), "--tls-key".into(), key.display().to_string()]);
        args.extend(["--listen-tls".into(), tls.to_string(), "--listen-https".into(), https.to_string()]);
        args.extend(["--listen-quic".into(), quic.to_string()]);
        let node = Node::start(loopback(), &args);
        let plain = Server::remote("dns-xdp", node.dns, "example.test.");
        Bed { node, plain, tls, https, quic, cert, key, der, dir }
    }
}

fn zones() -> Vec<dns_xdp_tests::conformance::servers::ZoneFile> {
    zone_files(&repo_root().join("testdata/conformance"))
}

#[expect(deprecated, reason = "ring has no post-quantum key exchange; the daemon uses ring as well")]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A TLS client configuration trusting `der` and offering `alpn`.
fn client_config(der: &CertificateDer<'static>, alpn: &[u8]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(der.clone()).expect("our certificate as a root");
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    Arc::new(config)
}

/// A DNS-over-TLS connection (RFC 7858): length-prefixed messages inside TLS.
struct Dot {
    stream: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
}

impl Dot {
    fn connect(addr: SocketAddr, der: &CertificateDer<'static>) -> Dot {
        let tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(3)).expect("connecting over TCP");
        tcp.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        let name = ServerName::try_from("localhost").expect("name");
        let conn = rustls::ClientConnection::new(client_config(der, b"dot"), name).expect("TLS client");
        Dot { stream: rustls::StreamOwned::new(conn, tcp) }
    }

    fn ask(&mut self, query: &[u8]) -> std::io::Result<Vec<u8>> {
        let mut framed = (query.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(query);
        self.stream.write_all(&framed)?;
        let mut len = [0u8; 2];
        self.stream.read_exact(&mut len)?;
        let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
        self.stream.read_exact(&mut msg)?;
        Ok(msg)
    }

    /// The certificate the server presented.
    fn peer_cert(&self) -> CertificateDer<'static> {
        self.stream.conn.peer_certificates().expect("a certificate")[0].clone().into_owned()
    }
}

/// Sends every query over DoQ (RFC 9250): quinn for QUIC, a stream per query, length prefix, FIN.
fn doq_ask_all(addr: SocketAddr, der: &CertificateDer<'static>, queries: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(client_config(der, b"doq")).expect("QUIC TLS");
        let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).expect("client endpoint");
        endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
        let conn = endpoint.connect(addr, "localhost").expect("connect").await.expect("QUIC handshake");
        let mut answers = Vec::new();
        for query in queries {
            let (mut send, mut recv) = conn.open_bi().await.expect("a stream");
            let mut framed = (query.len() as u16).to_be_bytes().to_vec();
            framed.extend_from_slice(query);
            send.write_all(&framed).await.expect("sending");
            send.finish().expect("FIN");
            let data = tokio::time::timeout(Duration::from_secs(5), recv.read_to_end(65537))
                .await
                .expect("an answer in time")
                .expect("reading the answer");
            assert_eq!(usize::from(u16::from_be_bytes([data[0], data[1]])), data.len() - 2, "one framed message");
            answers.push(data[2..].to_vec());
        }
        conn.close(0u32.into(), b"");
        endpoint.wait_idle().await;
        answers
    })
}

/// `query` with message ID 0 (DoQ requires it; the comparison then covers the whole message).
fn id0(query: &[u8]) -> Vec<u8> {
    let mut q = query.to_vec();
    q[..2].copy_from_slice(&[0, 0]);
    q
}

/// `query_bytes` with a padding option in its OPT record.
fn padded_query(name: &str, qtype: u16) -> Vec<u8> {
    let mut q = query_bytes(0, name, qtype, 1, Some((1232, false)));
    let rdlen = q.len() - 2;
    q[rdlen..].copy_from_slice(&4u16.to_be_bytes());
    q.extend_from_slice(&PADDING.to_be_bytes());
    q.extend_from_slice(&0u16.to_be_bytes());
    q
}

#[test]
fn dot_and_doq_answer_the_corpus_as_tcp_does_byte_for_byte() {
    if !ready() {
        return;
    }
    let mut bed = Bed::start();
    let queries: Vec<Vec<u8>> = corpus::generate(&zones()).iter().map(|q| id0(&q.bytes)).collect();
    assert!(queries.len() > 500, "a corpus worth comparing: {}", queries.len());
    let over_tcp: Vec<Vec<u8>> =
        queries.iter().map(|q| bed.plain.tcp(q).unwrap_or_else(|| panic!("no TCP answer to {q:02x?}"))).collect();
    let mut dot = Dot::connect(bed.tls, &bed.der);
    for (query, tcp) in queries.iter().zip(&over_tcp) {
        let tls = dot.ask(query).expect("a DoT answer");
        assert_eq!(&tls, tcp, "DoT and TCP differ for {}", dns_xdp::compare::describe_query(query));
    }
    let over_quic = doq_ask_all(bed.quic, &bed.der, &queries);
    for ((query, tcp), quic) in queries.iter().zip(&over_tcp).zip(&over_quic) {
        assert_eq!(quic, tcp, "DoQ and TCP differ for {}", dns_xdp::compare::describe_query(query));
    }
    // An independent codec reads the DoQ answers: message ID 0, the question echoed.
    let mut ask = hickory_proto::op::Message::new();
    ask.set_id(0)
        .set_message_type(hickory_proto::op::MessageType::Query)
        .set_op_code(hickory_proto::op::OpCode::Query)
        .add_query(hickory_proto::op::Query::query(
            hickory_proto::rr::Name::from_ascii("www.example.test.").unwrap(),
            hickory_proto::rr::RecordType::A,
        ));
    let bytes = hickory_proto::serialize::binary::BinEncodable::to_bytes(&ask).expect("encoding");
    let answer = &doq_ask_all(bed.quic, &bed.der, std::slice::from_ref(&bytes))[0];
    let parsed = hickory_proto::op::Message::from_vec(answer).expect("hickory parses our DoQ answer");
    assert_eq!(parsed.id(), 0);
    assert_eq!(parsed.response_code(), hickory_proto::op::ResponseCode::NoError);
    assert!(!parsed.answers().is_empty(), "{parsed:?}");
    assert_eq!(answer, &bed.plain.tcp(&bytes).expect("TCP"), "hickory's query: DoQ and TCP differ");

    // Padding: only when asked, only over the encrypted transports, to 468-octet blocks.
    let padded = padded_query("www.example.test.", 1);
    let tcp = bed.plain.tcp(&padded).expect("TCP");
    // A fresh connection: the first may have been idle past the idle timeout while DoQ ran.
    let tls = Dot::connect(bed.tls, &bed.der).ask(&padded).expect("DoT");
    let quic = &doq_ask_all(bed.quic, &bed.der, std::slice::from_ref(&padded))[0];
    assert_eq!(tls.len() % BLOCK, 0, "DoT answer not padded: {} bytes", tls.len());
    assert_eq!(quic.len() % BLOCK, 0, "DoQ answer not padded: {} bytes", quic.len());
    assert!(tcp.len() < BLOCK, "TCP answers are not padded: {} bytes", tcp.len());
    // The same message but for the OPT's RDATA length (its last two bytes over TCP) and the option.
    let opt_len = tcp.len() - 2;
    assert_eq!(&tls[..opt_len], &tcp[..opt_len], "the padded answer is the TCP answer and a padding option");
    assert_eq!(usize::from(u16::from_be_bytes([tls[opt_len], tls[opt_len + 1]])), tls.len() - tcp.len());
    assert_eq!(&tls[tcp.len()..tcp.len() + 2], &PADDING.to_be_bytes());

    // Counted by transport.
    let metrics = dns_xdp_tests::Metrics::parse(
        &dns_xdp_tests::cluster::http(bed.node.metrics, "GET", "/metrics", None, "").expect("metrics").1,
    );
    for transport in ["tcp", "tls", "quic"] {
        let n = metrics.value("dnsxdp_responses_total", &[("path", "userspace"), ("transport", transport)]);
        assert!(n >= queries.len() as f64, "{transport}: {n} responses counted:\n{}", metrics.text);
    }
    drop(bed.dir);
}

/// kdig's answer section over the given transport flags.
fn kdig(server: SocketAddr, flags: &[&str], name: &str, qtype: &str) -> DigOutput {
    let out = DigOutput::run(
        Command::new("kdig")
            .args([format!("@{}", server.ip()), "-p".into(), server.port().to_string()])
            .args(flags)
            .args(["+norecurse", "+timeout=3", "+retry=0", name, qtype]),
    );
    out.expect_response();
    out
}

#[test]
fn kdig_over_tls_https_and_https_get_matches_tcp() {
    if !ready() || which("kdig").is_none() {
        return;
    }
    let bed = Bed::start();
    for (name, qtype) in [
        ("www.example.test.", "A"),
        ("example.test.", "MX"),
        ("nonexistent.example.test.", "A"),
        ("secure.test.", "DNSKEY"),
        ("www.doh.test.", "AAAA"),
    ] {
        let tcp = kdig(bed.node.dns, &["+tcp"], name, qtype);
        for (server, flags) in
            [(bed.tls, &["+tls"][..]), (bed.https, &["+https"][..]), (bed.https, &["+https-get"][..])]
        {
            let got = kdig(server, flags, name, qtype);
            assert_eq!(got.rcode(), tcp.rcode(), "{flags:?} {name} {qtype}:\n{got}\n{tcp}");
            for section in ["ANSWER", "AUTHORITY", "ADDITIONAL"] {
                assert_eq!(
                    got.records(section),
                    tcp.records(section),
                    "{flags:?} {name} {qtype} {section}:\n{got}\n{tcp}"
                );
            }
            // kdig asks for padding over TLS and HTTPS (its +padding default); we pad to blocks.
            if got.stdout.contains("PADDING") {
                let size = got.stdout.lines().find_map(|l| l.split("Received ").nth(1)).unwrap_or("");
                let bytes: usize = size.split_whitespace().next().and_then(|n| n.parse().ok()).unwrap_or(0);
                assert_eq!(bytes % BLOCK, 0, "{flags:?}: {bytes} bytes:\n{got}");
            }
        }
    }
}

/// Runs dnsperf over `mode` for two seconds with `outstanding` queries in flight per client;
/// (queries completed, queries lost, queries per second).
fn dnsperf(mode: &str, server: SocketAddr, file: &Path, outstanding: &str) -> (u64, u64, f64) {
    let out = Command::new("dnsperf")
        .args(["-m", mode, "-s", &server.ip().to_string(), "-p", &server.port().to_string()])
        .args(["-d".as_ref(), file.as_os_str()])
        .args(["-l", "2", "-c", "4", "-Q", "2000", "-q", outstanding])
        .output()
        .expect("running dnsperf");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let field = |label: &str| -> f64 {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(label))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| {
                panic!("dnsperf -m {mode}: no {label:?} in:\n{text}\n{}", String::from_utf8_lossy(&out.stderr))
            })
    };
    (field("Queries completed:") as u64, field("Queries lost:") as u64, field("Queries per second:"))
}

#[test]
fn dnsperf_over_dot_and_doh() {
    if !ready() || which("dnsperf").is_none() {
        return;
    }
    let bed = Bed::start();
    let file = bed.dir.path().join("queries");
    std::fs::write(&file, "www.example.test A\nexample.test MX\nnope.example.test A\nwww.doh.test A\n").unwrap();
    // dnsperf 2.10's DoH client handles one DNS message per TLS read: with several queries in
    // flight, answers that arrive together are lost (on the client side; kdig and curl get them).
    // So DoH runs one query in flight per client, where dnsperf paces itself (about 25 queries/s
    // per client over DoT as well, at 0.1 ms latency).
    for (mode, server, outstanding, least) in [("dot", bed.tls, "100", 1000), ("doh", bed.https, "1", 20)] {
        let (completed, lost, qps) = dnsperf(mode, server, &file, outstanding);
        eprintln!("dnsperf -m {mode} -q {outstanding}: {completed} completed, {lost} lost, {qps:.0} queries/s");
        assert!(completed > least, "dnsperf -m {mode}: only {completed} answers");
        assert_eq!(lost, 0, "dnsperf -m {mode}: {lost} lost");
    }
}

/// `curl ARGS`: (exit success, stdout).
fn curl(args: &[&str]) -> (bool, String) {
    let out = Command::new("curl").args(["-s", "--max-time", "10"]).args(args).output().expect("running curl");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn curl_resolves_through_doh_and_sees_the_cache_lifetime() {
    if !ready() || which("curl").is_none() {
        return;
    }
    let bed = Bed::start();
    // A tiny web server the name www.doh.test leads to.
    let web = TcpListener::bind("127.0.0.1:0").expect("web listener");
    let web_port = web.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut conn in web.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            let _ = conn.write_all(b"HTTP/1.0 200 OK\r\ncontent-length: 15\r\n\r\nhello over doh\n");
        }
    });
    let doh_url = format!("https://127.0.0.1:{}/dns-query", bed.https.port());
    let (ok, body) = curl(&["--doh-url", &doh_url, "--doh-insecure", &format!("http://www.doh.test:{web_port}/")]);
    assert!(ok && body == "hello over doh\n", "curl through our DoH: {ok} {body:?}");

    // GET with base64url: the smallest TTL of the answer as the cache lifetime, over HTTP/2.
    let query = query_bytes(0, "www.doh.test.", 1, 1, None);
    let url = format!("{doh_url}?dns={}", base64_url_no_pad(&query));
    let (ok, head) = curl(&["-k", "--http2", "-D", "-", "-o", "/dev/null", &url]);
    assert!(ok, "{head}");
    assert!(head.starts_with("HTTP/2 200"), "{head}");
    assert!(head.to_ascii_lowercase().contains("content-type: application/dns-message"), "{head}");
    assert!(head.contains("cache-control: max-age=120"), "{head}");
    // POST over HTTP/1.1; the same bytes as TCP.
    let qfile = bed.dir.path().join("query.bin");
    std::fs::write(&qfile, &query).unwrap();
    let out = Command::new("curl")
        .args(["-s", "-k", "--http1.1", "-H", "content-type: application/dns-message", "--data-binary"])
        .arg(format!("@{}", qfile.display()))
        .arg(&doh_url)
        .output()
        .expect("curl");
    let mut plain = Server::remote("dns-xdp", bed.node.dns, "example.test.");
    assert_eq!(out.stdout, plain.tcp(&query).expect("TCP"), "DoH POST and TCP differ");
    // What is not DNS over HTTPS is refused.
    let (_, head) = curl(&["-k", "-D", "-", "-o", "/dev/null", &format!("{doh_url}?dns=!!")]);
    assert!(head.starts_with("HTTP/2 400") || head.starts_with("HTTP/1.1 400"), "{head}");
    let (_, head) =
        curl(&["-k", "-D", "-", "-o", "/dev/null", &format!("https://127.0.0.1:{}/other", bed.https.port())]);
    assert!(head.contains(" 404"), "{head}");
    let metrics = dns_xdp_tests::Metrics::parse(
        &dns_xdp_tests::cluster::http(bed.node.metrics, "GET", "/metrics", None, "").expect("metrics").1,
    );
    assert!(metrics.value("dnsxdp_responses_total", &[("transport", "https")]) >= 4.0, "{}", metrics.text);
}

/// Base64url without padding (RFC 4648 section 5), as DoH GET wants it.
fn base64_url_no_pad(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    out
}

#[test]
fn the_certificate_is_reloaded_on_sighup_without_dropping_connections() {
    if !ready() {
        return;
    }
    let bed = Bed::start();
    let mut open = Dot::connect(bed.tls, &bed.der);
    let query = query_bytes(7, "www.example.test.", 1, 1, None);
    open.ask(&query).expect("an answer before the reload");
    assert_eq!(open.peer_cert(), bed.der);
    let (cert, key, second) = make_cert(bed.dir.path(), "second");
    std::fs::rename(cert, &bed.cert).unwrap();
    std::fs::rename(key, &bed.key).unwrap();
    let pid = bed.node.pid().expect("running") as libc::pid_t;
    // SAFETY: plain syscall on our own child.
    unsafe { libc::kill(pid, libc::SIGHUP) };
    let reloaded = dns_xdp_tests::wait_for(Duration::from_secs(10), Duration::from_millis(100), || {
        bed.node.log().contains("TLS certificate reloaded").then_some(())
    });
    assert!(reloaded.is_some(), "no reload logged:\n{}", bed.node.log());
    let mut fresh = Dot::connect(bed.tls, &second);
    fresh.ask(&query).expect("an answer with the new certificate");
    assert_eq!(fresh.peer_cert(), second, "a new handshake gets the new certificate");
    open.ask(&query).expect("the connection opened before the reload still answers");

    // A broken file keeps the previous certificate.
    std::fs::write(&bed.cert, "not a certificate").unwrap();
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGHUP) };
    let kept = dns_xdp_tests::wait_for(Duration::from_secs(10), Duration::from_millis(100), || {
        bed.node.log().contains("the previous one stays").then_some(())
    });
    assert!(kept.is_some(), "{}", bed.node.log());
    Dot::connect(bed.tls, &second).ask(&query).expect("still served with the second certificate");
}

#[test]
fn encrypted_listeners_without_a_certificate_are_a_start_error() {
    if !ready() {
        return;
    }
    let dir = TempDir::new();
    let zone = repo_root().join("testdata/conformance/example.test.zone");
    let run = |extra: &[&str]| {
        let out = Command::new(daemon_bin())
            .args(["serve", "--xdp-mode", "off", "--listen", &loopback().to_string()])
            .args(["--metrics", &loopback().to_string(), "--zone"])
            .arg(&zone)
            .args(extra)
            .output()
            .expect("running dns-xdp");
        (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    for flag in ["--listen-tls", "--listen-https", "--listen-quic"] {
        let (ok, err) = run(&[flag, &loopback().to_string()]);
        assert!(!ok && err.contains("--tls-cert"), "{flag} without a certificate: {err}");
    }
    let missing = dir.path().join("missing.pem");
    let missing = missing.to_str().unwrap();
    let (ok, err) = run(&["--listen-tls", &loopback().to_string(), "--tls-cert", missing, "--tls-key", missing]);
    assert!(!ok && err.contains("missing.pem"), "a missing certificate file is named: {err}");
}
