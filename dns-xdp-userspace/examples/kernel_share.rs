//! Benchmark for the kernel fast path, run by hand as root
//! (`cargo run --release -p dns-xdp-userspace --example kernel_share`): the share of a realistic query mix and
//! of a random-subdomain flood that the XDP program answers itself (BPF_PROG_TEST_RUN, its own
//! counters), its kernel time per query from bpf_stats, and the cost of installing a large zone.

#[path = "../tests/testframe/mod.rs"]
mod testframe;

use std::path::PathBuf;
use std::time::Instant;

use dns_xdp::compile::compile;
use dns_xdp::kernel::maps::MapSizes;
use dns_xdp::load_zones;
use dns_xdp::loader::XdpProgram;
use dns_xdp::update::Updater;
use dns_xdp_common::stat;

use testframe::ipv4 as frame;

const PAYLOAD: u16 = 1232;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn label(&mut self, len: usize) -> String {
        (0..len).map(|_| b"abcdefghijklmnopqrstuvwxyz0123456789"[(self.next() % 36) as usize] as char).collect()
    }
}

/// A query, with an OPT (our payload size, DO as given) when `edns` is set.
fn query(qname: &str, qtype: u16, edns: Option<bool>) -> Vec<u8> {
    testframe::query(qname, qtype, edns.map(|dnssec| (PAYLOAD, dnssec)))
}

/// A zone of `names` hosts: A everywhere, AAAA on half, MX and TXT on a tenth, CNAMEs on a tenth.
fn big_zone(dir: &std::path::Path, names: usize) -> PathBuf {
    use std::fmt::Write as _;
    let mut z = String::with_capacity(names * 64);
    z.push_str("$ORIGIN bench.test.\n$TTL 300\n@ IN SOA ns admin 1 3600 600 86400 60\n  IN NS ns\n  IN MX 10 mail\nns IN A 192.0.2.1\nmail IN A 192.0.2.2\n");
    for i in 0..names {
        let _ = writeln!(z, "h{i} IN A 10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255);
        if i % 2 == 0 {
            let _ = writeln!(z, "h{i} IN AAAA 2001:db8::{:x}", i & 0xffff);
        }
        if i % 10 == 0 {
            let _ = writeln!(z, "h{i} IN MX 10 mail\nh{i} IN TXT \"v=spf1 -all\"\nc{i} IN CNAME h{i}");
        }
    }
    let path = dir.join(format!("bench-{names}.zone"));
    std::fs::write(&path, z).unwrap();
    path
}

/// Memory the kernel charges for this process's BPF maps (the `memlock` of each map fd).
fn bpf_map_memlock() -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir("/proc/self/fd").into_iter().flatten().flatten() {
        let is_map = std::fs::read_link(entry.path()).is_ok_and(|l| l.to_string_lossy().contains("bpf-map"));
        let fd = entry.file_name();
        let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.to_string_lossy())).unwrap_or_default();
        if is_map {
            total += info
                .lines()
                .find_map(|l| l.strip_prefix("memlock:"))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    total
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

// A benchmark, not a test: figures, no assertions on timing, so it lives outside the test suite.
fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = std::env::temp_dir().join(format!("dns-xdp-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let names = 10_000;
    let files = vec![big_zone(&dir, names), root.join("testdata/conformance/secure.test.zone")];
    let (zones, _) = load_zones(&files).expect("zones load");
    let _bpf_stats = dns_xdp::loader::enable_bpf_stats().expect("bpf_stats");
    let (mut program, stats) = XdpProgram::load_sized(53, PAYLOAD, MapSizes::for_capacity(1 << 20)).expect("load");
    let mut answers = Updater::new(program.take_response_maps().expect("the answer maps"), Default::default());
    answers.apply(&compile(&zones, PAYLOAD)).expect("install");
    program.set_enabled(53, PAYLOAD, true).unwrap();
    let signed: Vec<(&str, u16)> = vec![
        ("secure.test", 6),
        ("secure.test", 15),
        ("secure.test", 16),
        ("secure.test", 48),
        ("secure.test", 2),
        ("www.secure.test", 1),
        ("www.secure.test", 28),
        ("alias.secure.test", 1),
        ("a.b.ent.secure.test", 1),
        ("mail.secure.test", 1),
        ("www.secure.test", 16),
    ];

    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let run = |label: &str, queries: &[Vec<u8>]| {
        let before = stats.read().unwrap();
        let (t0, c0) = stats.run_time().unwrap_or((0, 0));
        for q in queries {
            program.test_run(&frame(q)).expect("test_run");
        }
        let after = stats.read().unwrap();
        let (t1, c1) = stats.run_time().unwrap_or((0, 0));
        let d = |i: u32| after[i as usize] - before[i as usize];
        let share = d(stat::ACTION_TX) as f64 / queries.len() as f64 * 100.0;
        let ns = (t1 - t0) as f64 / (c1 - c0).max(1) as f64;
        eprintln!(
            "{label}: {} queries, {:.2}% answered by XDP (tx {}, pass {}: miss {}, marker {}, dnssec {}, too_big {}), \
             resolved via default {}, via encloser {}; bpf_stats {ns:.0} ns/run",
            queries.len(),
            share,
            d(stat::ACTION_TX),
            d(stat::ACTION_PASS),
            d(stat::PASS_MISS),
            d(stat::PASS_MARKER),
            d(stat::PASS_DNSSEC),
            d(stat::PASS_TOO_BIG),
            d(stat::TX_DEFAULT),
            d(stat::TX_ENCLOSER)
        );
        share
    };

    // The realistic mix: 60% positives of all types (A, AAAA, MX, TXT, CNAME chains, NS/SOA,
    // NODATA), 10% NXDOMAIN, 30% DO=1 on the signed zone.
    let mut mix = Vec::new();
    for _ in 0..100_000 {
        let roll = rng.next() % 100;
        let i = (rng.next() % names as u64) as usize;
        let edns = if rng.next().is_multiple_of(2) { Some(false) } else { None };
        let q = match roll {
            0..=29 => {
                let (n, t) = signed[(rng.next() % signed.len() as u64) as usize];
                query(n, t, Some(true))
            }
            30..=39 => query(&format!("{}.bench.test", rng.label(10)), 1, edns),
            40..=64 => query(&format!("h{i}.bench.test"), 1, edns),
            65..=74 => query(&format!("h{i}.bench.test"), 28, edns),
            75..=79 => query(&format!("h{}.bench.test", i / 10 * 10), 15, edns),
            80..=84 => query(&format!("h{}.bench.test", i / 10 * 10), 16, edns),
            85..=92 => query(&format!("c{}.bench.test", i / 10 * 10), 1, edns),
            93..=95 => query("bench.test", [2u16, 6, 15][(rng.next() % 3) as usize], edns),
            _ => query(&format!("h{i}.bench.test"), 99, edns),
        };
        mix.push(q);
    }
    let mix_share = run("realistic mix", &mix);
    let flood: Vec<Vec<u8>> = (0..100_000)
        .map(|_| {
            let n = if rng.next().is_multiple_of(4) {
                format!("{}.www.bench.test", rng.label(12))
            } else {
                format!("{}.bench.test", rng.label(16))
            };
            query(
                &n,
                [1u16, 28, 16][(rng.next() % 3) as usize],
                if rng.next().is_multiple_of(2) { Some(false) } else { None },
            )
        })
        .collect();
    let flood_share = run("random-subdomain flood", &flood);
    let hits: Vec<Vec<u8>> = (0..50_000).map(|i| query(&format!("h{}.bench.test", i % names), 1, None)).collect();
    run("A hits only", &hits);
    assert!(mix_share >= 95.0 && flood_share >= 99.0, "mix {mix_share:.2}%, flood {flood_share:.2}%");

    // Installing a large zone: load, compile, write the maps (`BIG_ZONE_NAMES`, default 100k).
    drop((answers, program));
    let size: usize = std::env::var("BIG_ZONE_NAMES").ok().and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let file = big_zone(&dir, size);
    let rss0 = rss_kib();
    let t = Instant::now();
    let (zones, _) = load_zones(std::slice::from_ref(&file)).expect("zone loads");
    // SAFETY: as below.
    unsafe { libc::malloc_trim(0) };
    let t_load = t.elapsed();
    let rss_zone = rss_kib().saturating_sub(rss0);
    let names: usize = zones.iter().map(|z| z.nodes.len()).sum();
    let capacity = (names + names / 4) as u32;
    let (mut program, _stats) = XdpProgram::load_sized(53, PAYLOAD, MapSizes::for_capacity(capacity)).expect("load");
    let mut writer = Updater::new(program.take_response_maps().expect("the answer maps"), Default::default());
    let diff = writer.install(&zones, PAYLOAD).expect("install");
    // As the daemon does after a full compile (publish::install).
    // SAFETY: malloc_trim only walks glibc's own heap.
    unsafe { libc::malloc_trim(0) };
    let t_all = t.elapsed();
    let rss = rss_kib().saturating_sub(rss0);
    let (records, answers) = writer.entries();
    let memlock = bpf_map_memlock();
    eprintln!(
        "{size}-host zone ({names} names): {records} name records, {answers} answers ({} written); load {:.2}s, \
         compile + map writes {:.2}s, total {:.2}s; daemon RSS +{} KiB ({:.0} B/name, of which the zone {:.0}); \
         BPF map memlock {} MiB ({:.0} B/name); total {:.0} B/name",
        diff.responses_written,
        t_load.as_secs_f64(),
        (t_all - t_load).as_secs_f64(),
        t_all.as_secs_f64(),
        rss,
        rss as f64 * 1024.0 / names as f64,
        rss_zone as f64 * 1024.0 / names as f64,
        memlock >> 20,
        memlock as f64 / names as f64,
        (rss * 1024 + memlock) as f64 / names as f64
    );
    // A one-record change (and the new serial): only the changed name is recompiled, plus the
    // zone's shared negative answers; served from the kernel once install_names returns.
    let text = std::fs::read_to_string(&file).unwrap();
    let changed = dir.join("bench-changed.zone");
    std::fs::write(
        &changed,
        text.replacen("h0 IN A 10.0.0.0", "h0 IN A 10.9.9.9", 1).replacen("admin 1 ", "admin 2 ", 1),
    )
    .unwrap();
    let (zones2, _) = load_zones(&[changed]).expect("changed zone loads");
    let t = Instant::now();
    let names = dns_xdp::update::affected(&zones, &zones2).expect("a narrow change");
    let t_affected = t.elapsed();
    let diff = writer.install_names(&zones2, PAYLOAD, &names).expect("apply the change");
    eprintln!(
        "one-record change in the {size}-host zone: {} names affected (found in {:.1} ms), {} rewritten, {} answers written, \
         {} freed; maps updated {:.1} ms after that",
        names.len(),
        t_affected.as_secs_f64() * 1e3,
        diff.added + diff.changed + diff.removed,
        diff.responses_written,
        diff.responses_freed,
        (t.elapsed() - t_affected).as_secs_f64() * 1e3
    );
    let t = Instant::now();
    let diff = writer.install(&zones2, PAYLOAD).expect("full recompile");
    eprintln!(
        "the same zone recompiled in full afterwards: {} names rewritten (must be 0) in {:.2}s",
        diff.added + diff.changed + diff.removed,
        t.elapsed().as_secs_f64()
    );
    assert_eq!(
        diff.added + diff.changed + diff.removed,
        0,
        "the incremental update left the maps as a full compile would"
    );
    std::fs::remove_dir_all(&dir).ok();
}
