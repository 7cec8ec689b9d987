//! The hit index (dns-xdp-userspace/src/kernel/hits.rs) on real maps, through BPF_PROG_TEST_RUN: exact
//! hits are answered from it, names it has no room for from the records, both byte for byte as
//! the daemon answers; and its entries follow the records, so a removed name is never answered
//! from a stale entry and a changed address is served at once.

mod testframe;

use dns_xdp::kernel::maps::MapSizes;
use dns_xdp::load_zones;
use dns_xdp::loader::{Stats, XdpProgram};
use dns_xdp::respond::{Transport, handle};
use dns_xdp::update::Updater;
use dns_xdp::zone::ZoneSet;
use dns_xdp_common::stat;

use testframe::ipv4 as frame;

const XDP_TX: u32 = 3;
const PAYLOAD: u16 = 1232;
/// Ethernet + IPv4 + UDP headers in front of the DNS message.
const HDRS: usize = 14 + 20 + 8;
/// `--answers-capacity` of the test program: room for every name's own answers, and a hit
/// index of 1024 entries (kernel::hits::entries_for), fewer than the hosts.
const CAPACITY: u32 = 4096;
const HOSTS: usize = 1500;

fn zones(dir: &std::path::Path, version: u32, hosts: &[(String, String)]) -> ZoneSet {
    let mut z = format!(
        "$ORIGIN hits.test.\n$TTL 300\n@ IN SOA ns admin {version} 3600 600 86400 60\n  IN NS ns\nns IN A 192.0.2.1\n"
    );
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
    let q = testframe::query(&format!("{host}.hits.test"), 1, None);
    let before = stats.read().unwrap()[stat::TX_HIT as usize];
    let (action, out) = program.test_run(&frame(&q)).expect("test_run");
    assert_eq!(action, XDP_TX, "{host}: not answered by XDP");
    let daemon = handle(zones, &q, Transport::Udp, PAYLOAD).expect("the daemon answers").bytes;
    assert_eq!(&out[HDRS..], &daemon[..], "{host}: kernel answer differs from the daemon's");
    stats.read().unwrap()[stat::TX_HIT as usize] > before
}

#[test]
fn names_without_room_fall_back_to_the_records_and_entries_follow_updates() {
    if !testframe::can_load_bpf("xdp_hits") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("dns-xdp-hits-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut hosts: Vec<(String, String)> =
        (0..HOSTS).map(|i| (format!("h{i}"), format!("10.0.{}.{}", i / 256, i % 256))).collect();
    assert_eq!(dns_xdp::kernel::hits::entries_for(CAPACITY), 1024);

    let sizes = MapSizes::for_capacity(CAPACITY);
    let (mut program, stats) = XdpProgram::load_sized(53, PAYLOAD, sizes).expect("load XDP program");
    let mut answers = Updater::new(program.take_response_maps().expect("the answer maps"), Default::default());
    let v1 = zones(&dir, 1, &hosts);
    answers.install(&v1, PAYLOAD).expect("install version 1");
    program.set_enabled(53, PAYLOAD, true).unwrap();
    let indexed: Vec<bool> = hosts.iter().map(|(h, _)| ask(&program, &stats, &v1, h)).collect();
    let held = answers.hit_entries();
    let from_index = indexed.iter().filter(|&&x| x).count();
    eprintln!("{HOSTS} hosts: {from_index} answered from the hit index ({held} entries), the rest from the records");
    // Every entry serves its host but the apex's SOA and NS and ns's A.
    assert!(from_index <= held && held - from_index <= 3, "{from_index} hosts from {held} entries");
    assert!(held > 1024 * 9 / 10 && held <= 1024, "{held} of 1024 entries in use");

    // An indexed host goes: its entry with it, so NXDOMAIN, not its old address. Another moves
    // to a new address: served at once, from the index.
    let gone = hosts[indexed.iter().position(|&x| x).unwrap()].0.clone();
    let kept = hosts[indexed.iter().rposition(|&x| x).unwrap()].0.clone();
    hosts.retain(|(h, _)| *h != gone);
    hosts.iter_mut().filter(|(h, _)| *h == kept).for_each(|(_, a)| *a = "10.9.9.9".into());
    let v2 = zones(&dir, 2, &hosts);
    answers.install(&v2, PAYLOAD).expect("install version 2");
    let q = testframe::query(&format!("{gone}.hits.test"), 1, None);
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
