//! The fast path is never wrong: for a large set of queries, whatever the XDP program answers
//! (run through BPF_PROG_TEST_RUN, no network) must be byte-for-byte the daemon's answer to the
//! same query, inside a frame with correct addresses, lengths and checksums.

mod testframe;

use std::path::PathBuf;

use std::net::IpAddr;

use dns_xdp::compile::{compile, search};
use dns_xdp::cookie::Cookies;
use dns_xdp::load_zones;
use dns_xdp::loader::XdpProgram;
use dns_xdp::name::Name;
use dns_xdp::respond::{Chaos, Client, Transport, handle, handle_from};
use dns_xdp::update::Updater;

const XDP_PASS: u32 = 2;
const XDP_TX: u32 = 3;
const PAYLOAD: u16 = 1232;

fn root_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn csum_fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

fn sum_words(data: &[u8]) -> u32 {
    data.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))).sum()
}

struct Frame {
    bytes: Vec<u8>,
    l3: usize,
    v6: bool,
}

const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
const SERVER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const CLIENT4: [u8; 4] = [198, 18, 0, 2];
const SERVER4: [u8; 4] = [198, 18, 0, 1];
const CLIENT6: [u8; 16] = [0xfd, 0, 0x0d, 0x15, 0xc0, 0xde, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
const SERVER6: [u8; 16] = [0xfd, 0, 0x0d, 0x15, 0xc0, 0xde, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];

fn frame(dns: &[u8], v6: bool, sport: u16) -> Frame {
    let mut f = Vec::new();
    f.extend_from_slice(&SERVER_MAC);
    f.extend_from_slice(&CLIENT_MAC);
    f.extend_from_slice(if v6 { &[0x86, 0xdd] } else { &[0x08, 0x00] });
    let l3 = f.len();
    let udp_len = (8 + dns.len()) as u16;
    let mut udp = Vec::new();
    udp.extend_from_slice(&sport.to_be_bytes());
    udp.extend_from_slice(&53u16.to_be_bytes());
    udp.extend_from_slice(&udp_len.to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(dns);
    let pseudo = if v6 {
        sum_words(&CLIENT6) + sum_words(&SERVER6) + u32::from(udp_len) + 17
    } else {
        sum_words(&CLIENT4) + sum_words(&SERVER4) + u32::from(udp_len) + 17
    };
    let c = !csum_fold(pseudo + sum_words(&udp));
    udp[6..8].copy_from_slice(&(if c == 0 { 0xffff } else { c }).to_be_bytes());
    if v6 {
        f.extend_from_slice(&[0x60, 0, 0, 0]);
        f.extend_from_slice(&udp_len.to_be_bytes());
        f.extend_from_slice(&[17, 64]);
        f.extend_from_slice(&CLIENT6);
        f.extend_from_slice(&SERVER6);
    } else {
        let total = (20 + udp.len()) as u16;
        let mut ip = vec![0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, 64, 17, 0, 0];
        ip[2..4].copy_from_slice(&total.to_be_bytes());
        ip.extend_from_slice(&CLIENT4);
        ip.extend_from_slice(&SERVER4);
        let c = !csum_fold(sum_words(&ip));
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(&ip);
    }
    f.extend_from_slice(&udp);
    Frame { bytes: f, l3, v6 }
}

/// Checks the reply frame's headers and checksums; returns its DNS payload.
fn reply_payload(query: &Frame, out: &[u8], case: &str) -> Vec<u8> {
    assert_eq!(&out[0..6], &CLIENT_MAC, "{case}: destination MAC");
    assert_eq!(&out[6..12], &SERVER_MAC, "{case}: source MAC");
    let l3 = query.l3;
    let (udp_at, pseudo) = if query.v6 {
        assert_eq!(&out[l3 + 8..l3 + 24], &SERVER6, "{case}: source address");
        assert_eq!(&out[l3 + 24..l3 + 40], &CLIENT6, "{case}: destination address");
        let plen = u16::from_be_bytes([out[l3 + 4], out[l3 + 5]]) as usize;
        assert_eq!(l3 + 40 + plen, out.len(), "{case}: IPv6 payload length");
        (l3 + 40, sum_words(&SERVER6) + sum_words(&CLIENT6) + 17)
    } else {
        assert_eq!(&out[l3 + 12..l3 + 16], &SERVER4, "{case}: source address");
        assert_eq!(&out[l3 + 16..l3 + 20], &CLIENT4, "{case}: destination address");
        assert_eq!(csum_fold(sum_words(&out[l3..l3 + 20])), 0xffff, "{case}: IPv4 header checksum");
        let total = u16::from_be_bytes([out[l3 + 2], out[l3 + 3]]) as usize;
        assert_eq!(l3 + total, out.len(), "{case}: IPv4 total length");
        (l3 + 20, sum_words(&SERVER4) + sum_words(&CLIENT4) + 17)
    };
    let udp = &out[udp_at..];
    assert_eq!(u16::from_be_bytes([udp[0], udp[1]]), 53, "{case}: source port");
    let udp_len = u16::from_be_bytes([udp[4], udp[5]]) as usize;
    assert_eq!(udp_len, udp.len(), "{case}: UDP length");
    assert_ne!(&udp[6..8], &[0, 0], "{case}: UDP checksum present");
    assert_eq!(csum_fold(pseudo + udp_len as u32 + sum_words(udp)), 0xffff, "{case}: UDP checksum");
    udp[8..].to_vec()
}

fn query(id: u16, qname: &[u8], qtype: u16, rd: bool, edns: Option<(u16, bool)>) -> Vec<u8> {
    let mut q = id.to_be_bytes().to_vec();
    q.extend_from_slice(&[if rd { 1 } else { 0 }, 0, 0, 1, 0, 0, 0, 0, 0, edns.is_some() as u8]);
    q.extend_from_slice(qname);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&[0, 1]);
    if let Some((payload, dnssec_ok)) = edns {
        q.extend_from_slice(&[0, 0, 41]);
        q.extend_from_slice(&payload.to_be_bytes());
        q.extend_from_slice(&[0, 0, if dnssec_ok { 0x80 } else { 0 }, 0, 0, 0]);
    }
    q
}

/// Deterministic case scrambling (0x20): upper-cases letters where the bit pattern says so.
fn scramble(wire: &[u8], pattern: u32) -> Vec<u8> {
    wire.iter()
        .enumerate()
        .map(
            |(i, &b)| if b.is_ascii_lowercase() && (pattern >> (i % 32)) & 1 == 1 { b.to_ascii_uppercase() } else { b },
        )
        .collect()
}

#[test]
fn kernel_answers_equal_daemon_answers() {
    if !testframe::can_load_bpf("xdp_matches_daemon") {
        return;
    }
    let root = root_dir();
    let files = vec![
        root.join("examples/example.com.zone"),
        root.join("testdata/zones/xdp.test.zone"),
        root.join("testdata/zones/signed.test.zone"),
        // The conformance zones: NSEC and NSEC3 signed, DNAME, wildcards, delegations, ENTs.
        root.join("testdata/conformance/example.test.zone"),
        root.join("testdata/conformance/secure.test.zone"),
        root.join("testdata/conformance/nsec3.test.zone"),
        root.join("testdata/conformance/sub.example.test.zone"),
    ];
    let (zones, _) = load_zones(&files).unwrap_or_else(|d| panic!("zones do not load: {d:?}"));
    let entries = compile(&zones, PAYLOAD);
    assert!(entries.len() > 20, "compiled only {} entries", entries.len());
    let mut by_rcode = [(0usize, 0usize); 16];
    let (mut program, stats) = XdpProgram::load(53, PAYLOAD).expect("load XDP program");
    let mut answers = Updater::new(program.take_response_maps().expect("the answer maps"), Default::default());
    // The daemon's own install path: zone-aware, so answers carrying a SOA serial get it from
    // the kernel's SERIALS map at reply time.
    answers.install(&zones, PAYLOAD).expect("fill the answers map");
    program.set_enabled(53, PAYLOAD, true).unwrap();

    // Every name of every zone, and missing names around them: one and two random labels
    // below each (NXDOMAIN, wildcard synthesis, below a zone cut), and the fixed edge cases.
    let mut names: Vec<Name> = zones.iter().flat_map(|z| z.nodes.keys().cloned()).collect();
    let mut rng: u32 = 0x2545_f491;
    let mut label = |len: usize| -> Vec<u8> {
        (0..len)
            .map(|_| {
                rng ^= rng << 13;
                rng ^= rng >> 17;
                rng ^= rng << 5;
                b"abcdefghijklmnopqrstuvwxyz0123456789-"[(rng % 37) as usize]
            })
            .collect()
    };
    let existing = names.clone();
    for name in &existing {
        let one = label(1 + name.as_wire().len() % 9);
        if let Some(n) = name.prepend(&one) {
            if let Some(two) = n.prepend(&label(12)) {
                names.push(two);
            }
            names.push(n);
        }
    }
    for text in [
        "nothere.example.com",
        "x.wild.xdp.test",
        "a.b.c.wild.xdp.test",
        "host.sub.xdp.test",
        "deep.under.sub.xdp.test",
        "b.deep.xdp.test",
        "zz.a.b.deep.xdp.test",
        "nope.signed.test",
        "x.y.nope.signed.test",
    ] {
        names.push(Name::from_text(text).unwrap());
    }
    names.sort();
    names.dedup();
    let qtypes = [0u16, 1, 2, 5, 6, 12, 15, 16, 28, 33, 43, 46, 47, 48, 50, 51, 65, 99, 252, 255];
    let (mut cases, mut tx, mut expected_tx) = (0, 0, 0);
    for name in &names {
        for &qtype in &qtypes {
            for (variant, edns) in
                [None, Some((512, false)), Some((1232, false)), Some((4096, true)), Some((600, true))]
                    .into_iter()
                    .enumerate()
            {
                let v6 = variant % 2 == 1;
                let qname = scramble(name.as_wire(), 0x5a5a_5a5a ^ variant as u32);
                let id = cases as u16;
                let dns = query(id, &qname, qtype, variant % 3 == 0, edns);
                let case = format!("{name} type {qtype} edns {edns:?} v6 {v6}");
                let f = frame(&dns, v6, 40000 + variant as u16);
                let (action, out) = program.test_run(&f.bytes).expect("test_run");
                let daemon = handle(&zones, &dns, Transport::Udp, PAYLOAD).expect("daemon answers").bytes;
                cases += 1;
                // What the kernel should have answered (the userspace mirror of its key search):
                // a value, fitting the client's limit, and not a DO=1 query for a signed zone
                // answered from a plain value.
                let dnssec = edns.is_some_and(|e| e.1);
                // The installed records decide first: an answer the compiler made but the record
                // layout could not hold (RECORD_CHILD_PARTIAL) passes.
                let installed = answers.kernel_answers(name.as_wire(), qtype, dnssec);
                let hit = installed
                    && search(&entries, name.as_wire(), qtype, dnssec).is_some_and(|v| {
                        let signed = v.value_flags & dns_xdp_common::VALUE_FLAG_SIGNED != 0;
                        let limit = dns_xdp::wire::udp_limit(
                            edns.map(|(p, d)| dns_xdp::wire::Edns { payload: p, version: 0, dnssec_ok: d }),
                            PAYLOAD,
                        );
                        daemon.len() <= limit && daemon[2] & 0x02 == 0 && !(signed && dnssec)
                    });
                if hit {
                    expected_tx += 1;
                }
                match action {
                    XDP_TX => {
                        tx += 1;
                        let payload = reply_payload(&f, &out, &case);
                        assert_eq!(payload, daemon, "{case}: kernel answer differs from the daemon's");
                        assert_eq!(&payload[12..12 + qname.len()], &qname[..], "{case}: question case");
                        assert!(hit, "{case}: answered a query the mirror says it would pass");
                    }
                    XDP_PASS => assert!(!hit, "{case}: passed a query the kernel should answer"),
                    other => panic!("{case}: unexpected XDP action {other}"),
                }
                by_rcode[(daemon[3] & 0xf) as usize].0 += 1;
                if action == XDP_TX {
                    by_rcode[(daemon[3] & 0xf) as usize].1 += 1;
                }
            }
        }
    }
    assert_eq!(tx, expected_tx, "kernel answers");
    // Exact hits come from the hit index, the rest from the records: both are checked above.
    let hits = stats.read().expect("STATS")[dns_xdp_common::stat::TX_HIT as usize];
    // These zones give 1,130 (every name up to 48 bytes with a type of its own, meta types
    // aside, has its entries; a lost entry falls back to the records, still right, so only
    // this count notices).
    assert!(hits > 1100, "only {hits} of {tx} kernel answers came from the hit index");
    let (cookie_cases, other_options) = cookie_queries(&mut program, &zones, &names);
    assert!(tx * 10 > cases * 7, "only {tx} of {cases} queries were answered by XDP");
    let (nx, nx_tx) = by_rcode[3];
    assert!(nx > 500 && nx_tx * 10 > nx * 8, "NXDOMAIN: {nx_tx} of {nx} answered by XDP");
    eprintln!(
        "{cases} queries: {tx} answered in the kernel ({hits} through the hit index), all equal to the daemon's answers; by rcode (all, xdp): {by_rcode:?}"
    );
    eprintln!(
        "{cookie_cases} COOKIE queries passed to the daemon, which answered each with a server cookie; {other_options} with other options answered alike"
    );
}

/// `query` with EDNS (payload 1232) whose OPT holds `options` (already encoded).
fn with_options(id: u16, qname: &[u8], qtype: u16, options: &[u8]) -> Vec<u8> {
    let mut q = query(id, qname, qtype, false, Some((1232, false)));
    let l = q.len();
    q[l - 2..].copy_from_slice(&(options.len() as u16).to_be_bytes());
    q.extend_from_slice(options);
    q
}

/// Queries carrying a COOKIE (alone, after other options, with a server cookie) must pass to the
/// daemon, whose answer echoes the client cookie with a server cookie the next query can prove
/// its address with; queries with other options only are answered in the kernel as before.
fn cookie_queries(program: &mut XdpProgram, zones: &dns_xdp::zone::ZoneSet, names: &[Name]) -> (usize, usize) {
    let cookies = Cookies::new(*b"0123456789abcdef");
    let chaos = Chaos::default();
    const NSID: &[u8] = b"\x00\x03\x00\x00";
    let (mut cookie_cases, mut other_options) = (0, 0);
    for (i, name) in names.iter().enumerate() {
        let v6 = i % 2 == 1;
        let ip: IpAddr = if v6 { CLIENT6.into() } else { CLIENT4.into() };
        let client = Some(Client { ip, cookies: &cookies });
        let qtype = [1u16, 28, 16, 15][i % 4];
        let client_cookie = (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15).to_be_bytes();
        let mut cookie = b"\x00\x0a\x00\x08".to_vec();
        cookie.extend_from_slice(&client_cookie);
        let options = if i % 3 == 0 { [NSID, &cookie[..]].concat() } else { cookie.clone() };
        let dns = with_options(i as u16, name.as_wire(), qtype, &options);
        let case = format!("{name} type {qtype} cookie v6 {v6}");
        let f = frame(&dns, v6, 41000);
        let (action, _) = program.test_run(&f.bytes).expect("test_run");
        assert_eq!(action, XDP_PASS, "{case}: a COOKIE query must go to the daemon");
        let first = handle_from(zones, &dns, Transport::Udp, PAYLOAD, &chaos, client, None).expect("daemon answers");
        // The COOKIE option is the OPT's first: client cookie + 16-byte RFC 9018 server cookie.
        let b = &first.bytes;
        let opt = b
            .windows(7)
            .rposition(|w| w == [0, 0, 41, 4, 0xd0, 0, 0])
            .unwrap_or_else(|| panic!("{case}: no OPT in {b:?}"));
        assert_eq!(&b[opt + 11..opt + 23], &[&[0, 10, 0, 24][..], &client_cookie].concat()[..], "{case}: COOKIE echo");
        assert!(!first.server_cookie, "{case}: no server cookie sent yet");
        let mut echo = b"\x00\x0a\x00\x18".to_vec();
        echo.extend_from_slice(&b[opt + 15..opt + 39]);
        let again = with_options(i as u16, name.as_wire(), qtype, &echo);
        let (action, _) = program.test_run(&frame(&again, v6, 41000).bytes).expect("test_run");
        assert_eq!(action, XDP_PASS, "{case}: a server cookie must go to the daemon");
        let second = handle_from(zones, &again, Transport::Udp, PAYLOAD, &chaos, client, None).expect("daemon answers");
        assert!(second.server_cookie, "{case}: the echoed server cookie is valid for its address");
        // Apart from the OPT's option, the answer is the one a query without a cookie gets.
        let plain = with_options(i as u16, name.as_wire(), qtype, b"");
        let plain_reply = handle(zones, &plain, Transport::Udp, PAYLOAD).expect("daemon answers").bytes;
        if first.bytes[2] & 0x02 == 0 {
            assert_eq!(&first.bytes[..opt + 9], &plain_reply[..opt + 9], "{case}: answer sections");
        }
        cookie_cases += 2;
        // NSID alone: still the kernel's to answer when it has the answer, and equal to the daemon's.
        let nsid = with_options(i as u16, name.as_wire(), qtype, NSID);
        let f = frame(&nsid, v6, 41001);
        let (action, out) = program.test_run(&f.bytes).expect("test_run");
        if action == XDP_TX {
            let daemon =
                handle_from(zones, &nsid, Transport::Udp, PAYLOAD, &chaos, client, None).expect("daemon answers").bytes;
            assert_eq!(reply_payload(&f, &out, &case), daemon, "{case}: NSID query answered differently");
            other_options += 1;
        }
    }
    assert!(other_options * 2 > names.len(), "only {other_options} option-bearing queries answered in the kernel");
    (cookie_cases, other_options)
}
