//! The XDP program fuzzed with the daemon as oracle: queries for the conformance zones' names,
//! mutated at random (bytes, counts, types, case, the OPT record), run through
//! BPF_PROG_TEST_RUN. The kernel may pass anything to the daemon, but whatever it answers itself
//! (XDP_TX) must be, byte for byte, the daemon's answer to the same query, in a frame with
//! correct addresses, lengths and checksums. It never drops a well-formed UDP frame.
//!
//! Deterministic (a fixed seed) and bounded in count and time: `DNS_XDP_FUZZ_ITERATIONS`
//! (default 200,000 queries, about 2 s) and `DNS_XDP_FUZZ_SECONDS` (default 30); `DNS_XDP_FUZZ_SEED` picks
//! another sequence. `cargo xtask fuzz` runs it with its time budget.

mod testframe;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use dns_xdp::load_zones;
use dns_xdp::loader::XdpProgram;
use dns_xdp::name::Name;
use dns_xdp::respond::{Transport, handle};
use dns_xdp::update::Updater;

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;
const XDP_TX: u32 = 3;
const PAYLOAD: u16 = 1232;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().map_or(default, |v| v.parse().unwrap_or_else(|_| panic!("{name}={v:?} is not a number")))
}

/// xorshift64: a fixed sequence from a seed, so a failure replays with the same seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Query types the zones hold, meta types and a few nobody serves.
const QTYPES: &[u16] =
    &[0, 1, 2, 5, 6, 12, 15, 16, 28, 33, 39, 43, 46, 47, 48, 50, 51, 52, 64, 65, 99, 251, 252, 255, 256, 65535];
/// Byte values at the edges of what the parsers check (label lengths, pointers, counts, OPT).
const EDGES: &[u8] = &[0, 1, 0x29, 0x3f, 0x40, 0x7f, 0x80, 0xbf, 0xc0, 0xc1, 0xff];

/// A query for `qname` (wire form), as a client would send it: ID, RD, maybe an OPT.
fn seed_query(rng: &mut Rng, qname: &[u8]) -> Vec<u8> {
    let edns = match rng.below(4) {
        0 => None,
        1 => Some((512u16, false)),
        2 => Some((1232, rng.below(2) == 0)),
        _ => Some((4096, true)),
    };
    let mut q = (rng.next() as u16).to_be_bytes().to_vec();
    q.extend_from_slice(&[u8::from(rng.below(2) == 0), 0, 0, 1, 0, 0, 0, 0, 0, u8::from(edns.is_some())]);
    q.extend_from_slice(qname);
    q.extend_from_slice(&rng.pick(QTYPES).to_be_bytes());
    q.extend_from_slice(&[0, 1]);
    if let Some((payload, dnssec_ok)) = edns {
        q.extend_from_slice(&[0, 0, 41]);
        q.extend_from_slice(&payload.to_be_bytes());
        q.extend_from_slice(&[0, 0, if dnssec_ok { 0x80 } else { 0 }, 0, 0, 0]);
    }
    q
}

/// One to four random edits; most keep the query close to valid, so the kernel still has
/// something to answer and the comparison has teeth.
fn mutate(rng: &mut Rng, q: &mut Vec<u8>, qname_len: usize) {
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(q.len().max(1));
        match rng.below(12) {
            0 => q[at] ^= 1 << rng.below(8),
            1 => q[at] = *rng.pick(EDGES),
            2 => q.insert(at, rng.next() as u8),
            3 if q.len() > 12 => {
                q.remove(at);
            }
            4 => q.truncate(at.max(12)),
            // Header flags and counts.
            5 => q[2 + rng.below(10)] = *rng.pick(EDGES),
            // Another query type.
            6 if q.len() >= 12 + qname_len + 4 => {
                q[12 + qname_len..14 + qname_len].copy_from_slice(&rng.pick(QTYPES).to_be_bytes());
            }
            // 0x20 case: flip the case of one letter of the name.
            7 if qname_len > 1 => {
                let i = 12 + rng.below(qname_len);
                if let Some(b) = q.get_mut(i).filter(|b| b.is_ascii_alphabetic()) {
                    *b ^= 0x20;
                }
            }
            // The class: IN, CH, ANY, NONE.
            8 if q.len() >= 12 + qname_len + 4 => {
                q[14 + qname_len..16 + qname_len].copy_from_slice(&rng.pick(&[1u16, 3, 254, 255]).to_be_bytes());
            }
            // The OPT's payload size, version or DO bit, when there is one at the end.
            9 if q[11] == 1 && q.len() >= 12 + qname_len + 15 => {
                let opt = 12 + qname_len + 4;
                match rng.below(3) {
                    0 => q[opt + 3..opt + 5]
                        .copy_from_slice(&rng.pick(&[0u16, 1, 511, 512, 513, 1231, 1232, 1233, 65535]).to_be_bytes()),
                    1 => q[opt + 6] = *rng.pick(&[0u8, 1, 255]),
                    _ => q[opt + 7] ^= 0x80,
                }
            }
            // An option in the OPT (NSID, COOKIE, padding, unknown), or bytes after the message.
            10 if q[11] == 1 && q.len() == 12 + qname_len + 15 => {
                let code = *rng.pick(&[3u16, 10, 12, 65001]);
                let data: Vec<u8> = (0..rng.below(3) * 8).map(|_| rng.next() as u8).collect();
                q.extend_from_slice(&code.to_be_bytes());
                q.extend_from_slice(&(data.len() as u16).to_be_bytes());
                q.extend_from_slice(&data);
                let rdlen = (4 + data.len()) as u16;
                let l = 12 + qname_len + 4 + 9;
                q[l..l + 2].copy_from_slice(&rdlen.to_be_bytes());
            }
            _ => q.extend((0..1 + rng.below(4)).map(|_| rng.next() as u8)),
        }
    }
}

/// The reply frame's headers and checksums, against the query frame testframe built; its DNS payload.
fn reply_payload(out: &[u8], v6: bool, case: &str) -> Vec<u8> {
    let fold = |mut s: u32| {
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        s as u16
    };
    let words =
        |d: &[u8]| -> u32 { d.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))).sum() };
    assert_eq!((&out[0..6], &out[6..12]), (&[2, 0, 0, 0, 0, 2][..], &[2, 0, 0, 0, 0, 1][..]), "{case}: MACs swapped");
    let (udp_at, pseudo) = if v6 {
        let (src, dst) = (&out[22..38], &out[38..54]);
        assert_eq!((src[15], dst[15]), (1, 2), "{case}: IPv6 addresses swapped");
        assert_eq!(54 + usize::from(u16::from_be_bytes([out[18], out[19]])), out.len(), "{case}: IPv6 payload length");
        (54, words(src) + words(dst) + 17)
    } else {
        assert_eq!(
            (&out[26..30], &out[30..34]),
            (&[198, 18, 0, 1][..], &[198, 18, 0, 2][..]),
            "{case}: IPv4 addresses swapped"
        );
        assert_eq!(fold(words(&out[14..34])), 0xffff, "{case}: IPv4 header checksum");
        assert_eq!(14 + usize::from(u16::from_be_bytes([out[16], out[17]])), out.len(), "{case}: IPv4 total length");
        (34, words(&out[26..34]) + 17)
    };
    let udp = &out[udp_at..];
    assert_eq!(u16::from_be_bytes([udp[0], udp[1]]), 53, "{case}: source port");
    assert_eq!(u16::from_be_bytes([udp[2], udp[3]]), testframe::CLIENT_PORT, "{case}: destination port");
    assert_eq!(usize::from(u16::from_be_bytes([udp[4], udp[5]])), udp.len(), "{case}: UDP length");
    assert_ne!(&udp[6..8], &[0, 0], "{case}: UDP checksum present");
    assert_eq!(fold(pseudo + udp.len() as u32 + words(udp)), 0xffff, "{case}: UDP checksum");
    udp[8..].to_vec()
}

#[test]
fn kernel_answers_to_mutated_queries_equal_the_daemons() {
    if !testframe::can_load_bpf("xdp_fuzz") {
        return;
    }
    let iterations: usize = env_or("DNS_XDP_FUZZ_ITERATIONS", 200_000);
    let budget = Duration::from_secs(env_or("DNS_XDP_FUZZ_SECONDS", 30));
    let seed: u64 = env_or("DNS_XDP_FUZZ_SEED", 0x9e37_79b9_7f4a_7c15);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace").to_path_buf();
    let mut files: Vec<PathBuf> = std::fs::read_dir(root.join("testdata/conformance"))
        .expect("testdata/conformance")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "zone"))
        .collect();
    files.extend([root.join("testdata/zones/xdp.test.zone"), root.join("testdata/zones/signed.test.zone")]);
    files.sort();
    let (zones, _) = load_zones(&files).unwrap_or_else(|d| panic!("zones do not load: {d:?}"));
    let (mut program, _stats) = XdpProgram::load(53, PAYLOAD).expect("load XDP program");
    let mut answers = Updater::new(program.take_response_maps().expect("the answer maps"), Default::default());
    answers.install(&zones, PAYLOAD).expect("fill the answers map");
    program.set_enabled(53, PAYLOAD, true).expect("enable");

    // Every name, and a name below each (NXDOMAIN, wildcards, below cuts) and above the roots.
    let mut names: Vec<Name> = zones.iter().flat_map(|z| z.nodes.keys().cloned()).collect();
    let below: Vec<Name> = names.iter().filter_map(|n| n.prepend(b"fz")).collect();
    names.extend(below);
    names.extend(["test", "nothere.example", "."].iter().filter_map(|t| Name::from_text(t)));
    names.sort();
    names.dedup();

    let mut rng = Rng(seed | 1);
    let started = Instant::now();
    let (mut done, mut tx, mut passed, mut unmutated_tx) = (0usize, 0usize, 0usize, 0usize);
    while done < iterations && started.elapsed() < budget {
        let name = rng.pick(&names).as_wire().to_vec();
        let mut q = seed_query(&mut rng, &name);
        // One query in four goes as built: the kernel answers those, which keeps its encoder busy.
        let mutated = rng.below(4) != 0;
        if mutated {
            mutate(&mut rng, &mut q, name.len());
        }
        let v6 = rng.below(2) == 0;
        let frame = if v6 { testframe::ipv6(&q) } else { testframe::ipv4(&q) };
        let case = format!("query #{done} (seed {seed:#x}, v6 {v6}): {q:02x?}");
        let (action, out) = program.test_run(&frame).unwrap_or_else(|e| panic!("{case}: test_run: {e}"));
        match action {
            XDP_TX => {
                let daemon = handle(&zones, &q, Transport::Udp, PAYLOAD)
                    .unwrap_or_else(|| panic!("{case}: the kernel answered a query the daemon drops"));
                let payload = reply_payload(&out, v6, &case);
                assert_eq!(payload, daemon.bytes, "{case}: the kernel's answer differs from the daemon's");
                tx += 1;
                unmutated_tx += usize::from(!mutated);
            }
            XDP_PASS => passed += 1,
            XDP_DROP => panic!("{case}: dropped a well-formed UDP frame"),
            other => panic!("{case}: unexpected XDP action {other}"),
        }
        done += 1;
    }
    eprintln!(
        "{done} queries in {:.1} s ({} names, seed {seed:#x}): {tx} answered in the kernel, all equal to the daemon's; {passed} passed",
        started.elapsed().as_secs_f64(),
        names.len()
    );
    assert!(done >= 1000.min(iterations), "only {done} queries ran within {budget:?}");
    // The comparison only means something if the kernel answers plenty of them.
    assert!(
        unmutated_tx * 2 > done / 4,
        "the kernel answered only {unmutated_tx} of about {} unmutated queries",
        done / 4
    );
    assert!(tx > unmutated_tx, "no mutated query was answered in the kernel");
}
