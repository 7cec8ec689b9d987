//! Atomic refresh: a zone changes thousands of times while the XDP program (BPF_PROG_TEST_RUN,
//! no network) answers queries continuously from another thread's point of view. Every kernel
//! answer must be byte-for-byte the daemon's answer of a committed version, and never of a
//! version older than the one reported installed when the query started (no stale answers).
//! Also: a zone with more names than the answer capacity (the hot set) on real maps.

mod testframe;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};

use dns_xdp::kernel::maps::MapSizes;
use dns_xdp::load_zones;
use dns_xdp::loader::XdpProgram;
use dns_xdp::respond::{Transport, handle};
use dns_xdp::update::{Updater, affected_with};
use dns_xdp::zone::ZoneSet;

use testframe::ipv4 as frame;

const XDP_PASS: u32 = 2;
const XDP_TX: u32 = 3;
const PAYLOAD: u16 = 1232;
/// Zone versions installed one after the other.
const VERSIONS: usize = 1500;
/// Ethernet + IPv4 + UDP headers in front of the DNS message.
const HDRS: usize = 14 + 20 + 8;

fn zone_text(k: usize) -> String {
    let mut z = format!(
        "$ORIGIN refresh.test.\n$TTL 300\n@ IN SOA ns admin {} 3600 600 86400 60\n  IN NS ns\nns IN A 192.0.2.1\n\
         www IN A 10.{}.{}.1\ntxt IN TXT \"version {k}\"\nn{} IN A 192.0.2.{}\nalias IN CNAME n{}\n",
        k + 1,
        (k / 256) % 256,
        k % 256,
        k % 4,
        k % 200 + 2,
        (k + 1) % 4,
    );
    // A wildcard that comes and goes, and a delegation that moves.
    if !k.is_multiple_of(3) {
        z.push_str(&format!("*.w IN TXT \"wild {k}\"\n"));
    }
    z.push_str(&format!("cut{} IN NS ns.example.net.\n", k % 2));
    z
}

fn zones(dir: &std::path::Path, k: usize) -> ZoneSet {
    let path = dir.join(format!("refresh-{k}.zone"));
    std::fs::write(&path, zone_text(k)).unwrap();
    let (zones, _) = load_zones(&[path]).unwrap_or_else(|d| panic!("version {k} does not load: {d:?}"));
    zones
}

/// A query; with DO=1 an OPT (payload 4096) to carry it.
fn query(qname: &str, qtype: u16, dnssec: bool) -> Vec<u8> {
    testframe::query(qname, qtype, dnssec.then_some((4096, true)))
}

#[test]
fn answers_stay_whole_and_fresh_while_the_zone_changes() {
    refresh(None);
}

/// The same through the path zones beyond the kernel's SERIALS slots take: their negative
/// answers carry the serial in their own bytes, rewritten in place when it changes.
#[test]
fn answers_stay_whole_and_fresh_when_serials_are_rewritten_in_place() {
    refresh(Some(0));
}

/// Applies VERSIONS versions while querying; `serial_slots` limits the zones with a SERIALS slot.
fn refresh(serial_slots: Option<u32>) {
    if !testframe::can_load_bpf("xdp_refresh") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("dns-xdp-refresh-{}-{serial_slots:?}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let queries: Vec<Vec<u8>> = [
        ("www.refresh.test", 1, false),
        ("txt.refresh.test", 16, false),
        ("txt.refresh.test", 15, false),
        ("n0.refresh.test", 1, false),
        ("n1.refresh.test", 1, false),
        ("n2.refresh.test", 28, false),
        ("n3.refresh.test", 1, true),
        ("alias.refresh.test", 1, false),
        ("missing.refresh.test", 1, false),
        ("a.b.missing.refresh.test", 16, true),
        ("x.w.refresh.test", 16, false),
        ("x.w.refresh.test", 1, false),
        ("host.cut0.refresh.test", 1, false),
        ("cut1.refresh.test", 2, false),
        ("ns.refresh.test", 255, false),
    ]
    .iter()
    .map(|&(n, t, d)| query(n, t, d))
    .collect();
    // What the daemon answers to each query in each version.
    let versions: Vec<ZoneSet> = (0..VERSIONS).map(|k| zones(&dir, k)).collect();
    let expected: Vec<Vec<Vec<u8>>> = versions
        .iter()
        .map(|z| queries.iter().map(|q| handle(z, q, Transport::Udp, PAYLOAD).expect("answer").bytes).collect())
        .collect();

    let (mut program, stats) = XdpProgram::load(53, PAYLOAD).expect("load XDP program");
    // The answers are written on another thread while this one runs the program.
    let mut writer = Updater::new(program.take_response_maps().expect("the answer maps"), Default::default());
    if let Some(n) = serial_slots {
        writer.limit_serial_slots(n);
    }
    writer.install(&versions[0], PAYLOAD).expect("install version 0");
    program.set_enabled(53, PAYLOAD, true).unwrap();
    let committed = AtomicUsize::new(0);
    let done = AtomicBool::new(false);
    let frames: Vec<Vec<u8>> = queries.iter().map(|q| frame(q)).collect();

    let (mut tx, mut pass, mut rounds) = (0usize, 0usize, 0usize);
    std::thread::scope(|s| {
        s.spawn(|| {
            for (k, zones) in versions.iter().enumerate().skip(1) {
                // The daemon's paths: every other version recompiles only the names the change
                // touched when that is safe, the rest recompile everything. Each version has a
                // new serial, so every NODATA and NXDOMAIN answer changes with it.
                let narrow = if k % 2 == 1 { affected_with(&versions[k - 1], zones, None, None) } else { None };
                match narrow {
                    Some(names) => writer.install_names(zones, PAYLOAD, &names),
                    None => writer.install(zones, PAYLOAD),
                }
                .expect("apply a version");
                // Reported served only once every write of the diff is in.
                committed.store(k, SeqCst);
            }
            done.store(true, SeqCst);
        });
        while !done.load(SeqCst) {
            rounds += 1;
            for (q, f) in frames.iter().enumerate() {
                let before = committed.load(SeqCst);
                let (action, out) = program.test_run(f).expect("test_run");
                let after = committed.load(SeqCst);
                match action {
                    XDP_TX => {
                        tx += 1;
                        let got = &out[HDRS..];
                        let last = (after + 1).min(VERSIONS - 1);
                        let matched = (before..=last).find(|&v| expected[v][q] == got);
                        assert!(
                            matched.is_some(),
                            "query {q} answered with bytes of no version in {before}..={last} (torn, mixed or stale):\n{got:?}\n\
                             version {before} says {:?}",
                            expected[before][q]
                        );
                    }
                    XDP_PASS => pass += 1,
                    other => panic!("query {q}: unexpected XDP action {other}"),
                }
            }
        }
    });
    // After the last version is reported, every answer is the last version's.
    for (q, f) in frames.iter().enumerate() {
        let (action, out) = program.test_run(f).expect("test_run");
        if action == XDP_TX {
            assert_eq!(&out[HDRS..], &expected[VERSIONS - 1][q][..], "query {q}: stale after the last version");
        }
    }
    std::fs::remove_dir_all(&dir).ok();
    // The hit index was rewritten with every version and served throughout.
    let hits = stats.read().expect("STATS")[dns_xdp_common::stat::TX_HIT as usize];
    eprintln!(
        "{VERSIONS} versions applied while {rounds} rounds of {} queries ran: {tx} answered by XDP ({hits} through the hit index), {pass} passed",
        frames.len()
    );
    assert!(tx > pass, "XDP answered only {tx} of {} queries", tx + pass);
    assert!(hits * 10 > tx as u64, "only {hits} of {tx} XDP answers came from the hit index");
}

/// More names than `--answers-capacity`, all of one length class: the hot set leaves some
/// without their own answers, but every name keeps its record (it marks that the name exists),
/// so a program sized from the capacity alone has too few; the daemon loads one sized for the
/// records (`records_needed`). Then hot names are answered exactly as the daemon answers them,
/// cold ones passed, never answered as missing, and missing names still get NXDOMAIN from XDP.
#[test]
fn more_names_than_capacity_keep_their_records() {
    if !testframe::can_load_bpf("xdp_refresh") {
        return;
    }
    const NAMES: usize = 1500;
    const CAPACITY: u32 = 1000;
    let dir = std::env::temp_dir().join(format!("dns-xdp-hotset-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("hot.test.zone");
    let mut text = String::from(
        "$ORIGIN hot.test.\n$TTL 300\n@ IN SOA ns admin 1 3600 600 86400 60\n  IN NS ns\nns IN A 192.0.2.1\n",
    );
    for i in 0..NAMES {
        text.push_str(&format!("h{i} IN A 10.0.{}.{}\n", i / 256, i % 256));
    }
    std::fs::write(&path, text).unwrap();
    let (zones, _) = load_zones(&[path]).unwrap_or_else(|d| panic!("zone does not load: {d:?}"));
    std::fs::remove_dir_all(&dir).ok();

    let sizes = MapSizes::for_capacity(CAPACITY);
    let (mut small, _) = XdpProgram::load_sized(53, PAYLOAD, sizes).expect("load XDP program");
    let records =
        sizes.records_needed(&zones).expect("1,500 short names need more than the 1,024 records the capacity gives");
    let mut answers = Updater::new(small.take_response_maps().expect("the answer maps"), Default::default());
    assert!(answers.install(&zones, PAYLOAD).is_err(), "the records cannot fit the small program's NAMES map");
    drop((answers, small));
    let (mut program, _) = XdpProgram::load_sized(53, PAYLOAD, sizes.with_records(records)).expect("load XDP program");
    assert!(program.sizes().records_needed(&zones).is_none(), "sized for every record");
    let mut answers = Updater::new(program.take_response_maps().expect("the answer maps"), Default::default());
    answers.install(&zones, PAYLOAD).expect("every name's record fits");
    program.set_enabled(53, PAYLOAD, true).unwrap();

    let (mut hot, mut cold) = (0, 0);
    for i in 0..NAMES {
        let q = query(&format!("h{i}.hot.test"), 1, false);
        let (action, out) = program.test_run(&frame(&q)).expect("test_run");
        match action {
            XDP_TX => {
                hot += 1;
                let daemon = handle(&zones, &q, Transport::Udp, PAYLOAD).expect("answer").bytes;
                assert_eq!(&out[HDRS..], &daemon[..], "h{i}: kernel answer differs from the daemon's");
            }
            XDP_PASS => cold += 1,
            other => panic!("h{i}: unexpected XDP action {other}"),
        }
    }
    assert!(hot > 0 && hot <= CAPACITY as usize, "{hot} names answered from XDP with capacity {CAPACITY}");
    assert!(cold >= NAMES - CAPACITY as usize, "only {cold} names left to the daemon");
    let q = query("missing.hot.test", 1, false);
    let (action, out) = program.test_run(&frame(&q)).expect("test_run");
    assert_eq!(action, XDP_TX, "a missing name is still answered from XDP");
    assert_eq!(&out[HDRS..], &handle(&zones, &q, Transport::Udp, PAYLOAD).expect("answer").bytes[..]);
    assert_eq!(out[HDRS + 3] & 0xf, 3, "NXDOMAIN");
    eprintln!("{NAMES} names, capacity {CAPACITY}: {hot} answered from XDP, {cold} passed");
}
