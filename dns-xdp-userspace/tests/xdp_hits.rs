//! The hit index (dns-xdp-userspace/src/hits.rs) on real maps, through BPF_PROG_TEST_RUN: exact
//! hits are answered from it, a name whose pair is taken from the records, both byte for byte as
//! the daemon answers; and its entries follow the records, so a removed name is never answered
//! from a stale entry and a changed address is served at once.

use dns_xdp::answer::{Transport, handle};
use dns_xdp::load_zones;
use dns_xdp::loader::{Stats, XdpProgram};
use dns_xdp::name::Name;
use dns_xdp::testframe::ipv4 as frame;
use dns_xdp::zone::ZoneSet;
use dns_xdp_common::{HIT_MAX_NAME, HIT_NAME_WORDS, hit_pair, stat};

const XDP_TX: u32 = 3;
const PAYLOAD: u16 = 1232;
/// Ethernet + IPv4 + UDP headers in front of the DNS message.
const HDRS: usize = 14 + 20 + 8;
/// `--answers-capacity` of the test program: its hit index has 1024 entries (hits::entries_for).
const CAPACITY: u32 = 1024;

/// The name as the program reads it from its key (hits.rs `words`).
fn words(wire: &[u8]) -> [u64; HIT_NAME_WORDS] {
    let mut bytes = [0u8; HIT_MAX_NAME];
    bytes[..wire.len()].copy_from_slice(wire);
    std::array::from_fn(|i| u64::from_le_bytes(bytes[8 * i..8 * i + 8].try_into().unwrap()))
}

fn zones(dir: &std::path::Path, version: u32, hosts: &[(String, &str)]) -> ZoneSet {
    let mut z = format!("$ORIGIN hits.test.\n$TTL 300\n@ IN SOA ns admin {version} 3600 600 86400 60\n  IN NS ns\nns IN A 192.0.2.1\n");
    for (host, addr) in hosts {
        z.push_str(&format!("{host} IN A {addr}\n"));
    }
    let path = dir.join(format!("hits-{version}.zone"));
    std::fs::write(&path, z).unwrap();
    load_zones(&[path]).unwrap_or_else(|d| panic!("version {version} does not load: {d:?}")).0
}

/// Asks for `host`'s A record: the kernel must answer, exactly as the daemon does. True if the
/// answer came from the hit index.
fn ask(program: &XdpProgram, stats: &Stats, zones: &ZoneSet, host: &str) -> bool {
    let q = dns_xdp::testframe::query(&format!("{host}.hits.test"), 1, None);
    let before = stats.read().unwrap()[stat::TX_HIT as usize];
    let (action, out) = program.test_run(&frame(&q)).expect("test_run");
    assert_eq!(action, XDP_TX, "{host}: not answered by XDP");
    let daemon = handle(zones, &q, Transport::Udp, PAYLOAD).expect("the daemon answers").bytes;
    assert_eq!(&out[HDRS..], &daemon[..], "{host}: kernel answer differs from the daemon's");
    stats.read().unwrap()[stat::TX_HIT as usize] > before
}

#[test]
fn full_pairs_fall_back_to_the_records_and_entries_follow_updates() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        assert!(std::env::var_os("CI").is_none(), "CI must run these tests as root");
        eprintln!("skipping: loading BPF programs needs root");
        return;
    }
    let dir = std::env::temp_dir().join(format!("dns-xdp-hits-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // Three hosts whose A entries share one pair of the 1024-entry index.
    let mask = dns_xdp::hits::entries_for(CAPACITY) - 1;
    let mut by_pair: std::collections::HashMap<u32, Vec<String>> = Default::default();
    let crowd = (0..)
        .find_map(|i| {
            let host = format!("h{i}");
            let wire = Name::from_text(&format!("{host}.hits.test")).unwrap();
            let pair = by_pair.entry(hit_pair(&words(wire.as_wire()), 1, mask)).or_default();
            pair.push(host);
            (pair.len() == 3).then(|| pair.clone())
        })
        .unwrap();
    let mut hosts: Vec<(String, &str)> = crowd.iter().map(|h| (h.clone(), "10.0.0.1")).collect();
    hosts.push(("other".into(), "10.0.0.9"));

    let (mut program, stats) = XdpProgram::load_with_capacity(53, PAYLOAD, CAPACITY).expect("load XDP program");
    let v1 = zones(&dir, 1, &hosts);
    program.install(&v1, PAYLOAD).expect("install version 1");
    program.set_enabled(53, PAYLOAD, true).unwrap();
    let from_index: Vec<bool> = crowd.iter().map(|h| ask(&program, &stats, &v1, h)).collect();
    assert_eq!(from_index.iter().filter(|&&x| x).count(), 2, "two of a pair's three keys in the index: {from_index:?}");
    assert!(ask(&program, &stats, &v1, "other"), "a host alone in its pair is answered from the index");

    // The crowd's first indexed host goes: its entry with it, so NXDOMAIN, not its old address.
    let gone = crowd[from_index.iter().position(|&x| x).unwrap()].clone();
    let kept = crowd[from_index.iter().rposition(|&x| x).unwrap()].clone();
    hosts.retain(|(h, _)| *h != gone);
    // The kept one moves to another address: served at once, from the index.
    hosts.iter_mut().filter(|(h, _)| *h == kept).for_each(|(_, a)| *a = "10.0.0.2");
    let v2 = zones(&dir, 2, &hosts);
    program.install(&v2, PAYLOAD).expect("install version 2");
    let q = dns_xdp::testframe::query(&format!("{gone}.hits.test"), 1, None);
    let (action, out) = program.test_run(&frame(&q)).expect("test_run");
    let daemon = handle(&v2, &q, Transport::Udp, PAYLOAD).expect("the daemon answers").bytes;
    assert_eq!(daemon[3] & 0xf, 3, "{gone} is gone: NXDOMAIN");
    assert_eq!(action, XDP_TX, "{gone}: NXDOMAIN from XDP");
    assert_eq!(&out[HDRS..], &daemon[..], "{gone}: kernel answer differs from the daemon's");
    assert!(ask(&program, &stats, &v2, &kept), "{kept}: its new address from the index");
    for (host, _) in &hosts {
        ask(&program, &stats, &v2, host);
    }
    std::fs::remove_dir_all(&dir).ok();
}
