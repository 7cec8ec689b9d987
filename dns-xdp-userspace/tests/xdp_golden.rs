//! Golden-packet tests of the XDP program: every case in testdata/xdp/cases.txt runs through
//! BPF_PROG_TEST_RUN (no network) and must produce the expected action, bytes and counters.
//!
//! The fixtures come from an independent oracle (testdata/xdp/gen.py: dnspython renders the
//! answers, scapy builds frames and checksums). Needs root (or CAP_BPF + CAP_NET_ADMIN); without
//! it the test prints why and skips. CI runs it as root.

mod testframe;

use std::{collections::BTreeMap, fmt::Write as _, path::PathBuf};

use dns_xdp::compile::Entries;
use dns_xdp::kernel::maps::Maps;
use dns_xdp::store::Store;

use aya::{
    Ebpf, TestRun as _, TestRunOptions,
    maps::{Array, MapData, PerCpuArray},
    programs::Xdp,
};
use dns_xdp_common::{
    KEY_NAME_LEN, MAP_CONFIG, MAP_STATS, MAX_RESPONSE_LEN, PROG_NAME, ResponseKey, ResponseValue, XdpConfig, stat,
};

const XDP_ABORTED: u32 = 0;
const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;
const XDP_TX: u32 = 3;

/// Verifier work allowed for dns_xdp: two thirds of the kernel's 1M limit. Today it needs about
/// 503k: the qname walk, the reply builder and the closest-encloser walk, explored once per frame
/// shape (0-2 VLAN tags x IPv4/IPv6 x EDNS).
const VERIFIER_BUDGET: u32 = 660_000;

struct Answer {
    key: ResponseKey,
    value: ResponseValue,
}

struct Case {
    name: String,
    desc: String,
    input: Vec<u8>,
    action: u32,
    /// The STATS slot this case must bump besides RX and its action.
    stat: u32,
    output: Option<Vec<u8>>,
}

fn fixtures_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/xdp/cases.txt")
}

fn hex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd-length hex: {s}");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap_or_else(|e| panic!("bad hex {s}: {e}")))
        .collect()
}

fn num(s: &str) -> u64 {
    let parsed = match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16),
        None => s.parse(),
    };
    parsed.unwrap_or_else(|e| panic!("bad number {s:?}: {e}"))
}

/// Lowercased wire-format name, zero-padded: exactly what the program builds from a query.
fn key_name(owner: &str) -> [u8; KEY_NAME_LEN] {
    let mut wire = Vec::new();
    for label in owner.trim_end_matches('.').split('.').filter(|l| !l.is_empty()) {
        wire.push(u8::try_from(label.len()).expect("label length"));
        wire.extend(label.bytes().map(|b| b.to_ascii_lowercase()));
    }
    wire.push(0);
    let mut name = [0u8; KEY_NAME_LEN];
    name[..wire.len()].copy_from_slice(&wire);
    name
}

fn stat_by_name(name: &str) -> u32 {
    match name {
        "PASS_NOT_IP" => stat::PASS_NOT_IP,
        "PASS_IP_UNUSUAL" => stat::PASS_IP_UNUSUAL,
        "PASS_NOT_DNS" => stat::PASS_NOT_DNS,
        "PASS_HEADER" => stat::PASS_HEADER,
        "PASS_QNAME" => stat::PASS_QNAME,
        "PASS_QCLASS" => stat::PASS_QCLASS,
        "PASS_EDNS" => stat::PASS_EDNS,
        "PASS_MISS" => stat::PASS_MISS,
        "PASS_TOO_BIG" => stat::PASS_TOO_BIG,
        "PASS_DNSSEC" => stat::PASS_DNSSEC,
        "PASS_RESIZE" => stat::PASS_RESIZE,
        "PASS_DISABLED" => stat::PASS_DISABLED,
        "PASS_COOKIE" => stat::PASS_COOKIE,
        "DROP_MALFORMED" => stat::DROP_MALFORMED,
        other => panic!("unknown stat name {other:?} in fixtures"),
    }
}

fn action_by_name(name: &str) -> u32 {
    match name {
        "TX" => XDP_TX,
        "PASS" => XDP_PASS,
        "DROP" => XDP_DROP,
        "ABORTED" => XDP_ABORTED,
        other => panic!("unknown action {other:?} in fixtures"),
    }
}

fn action_stat(action: u32) -> u32 {
    match action {
        XDP_TX => stat::ACTION_TX,
        XDP_PASS => stat::ACTION_PASS,
        XDP_DROP => stat::ACTION_DROP,
        _ => stat::ACTION_ABORTED,
    }
}

/// Parses the block format documented in testdata/xdp/README.md.
fn parse_fixtures(text: &str) -> (Vec<Answer>, Vec<Case>) {
    let mut answers = Vec::new();
    let mut cases = Vec::new();
    let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    for block in lines.split(|l| l.trim().is_empty()).filter(|b| !b.is_empty()) {
        let fields: BTreeMap<&str, &str> = block[1..]
            .iter()
            .map(|l| l.split_once(' ').unwrap_or_else(|| panic!("fixture line without value: {l:?}")))
            .collect();
        let get = |k: &str| *fields.get(k).unwrap_or_else(|| panic!("block {block:?} lacks {k:?}"));
        match block[0] {
            "[answer]" => {
                let data = hex(get("data"));
                assert!(data.len() <= MAX_RESPONSE_LEN, "answer data too long for {}", get("owner"));
                let mut value = ResponseValue {
                    flags: num(get("flags")) as u16,
                    ancount: num(get("ancount")) as u16,
                    nscount: num(get("nscount")) as u16,
                    arcount: num(get("arcount")) as u16,
                    data_len: data.len() as u16,
                    value_flags: num(get("value_flags")) as u16,
                    data_csum: num(get("data_csum")) as u16,
                    serial_at: 0,
                    data: [0; MAX_RESPONSE_LEN],
                    rrl_key: fields.get("rrl_key").map_or(0, |k| num(k) as u32),
                };
                value.data[..data.len()].copy_from_slice(&data);
                let key = ResponseKey { name: key_name(get("owner")), qtype: num(get("qtype")) as u16, variant: 0 };
                answers.push(Answer { key, value });
            }
            "[case]" => {
                let action = action_by_name(get("action"));
                let stat = match fields.get("rcode") {
                    Some(rcode) => stat::TX_RCODE_BASE + num(rcode) as u32,
                    None => stat_by_name(get("reason")),
                };
                cases.push(Case {
                    name: get("name").to_string(),
                    desc: get("desc").to_string(),
                    input: hex(get("in")),
                    action,
                    stat,
                    output: fields.get("out").map(|h| hex(h)),
                });
            }
            other => panic!("unknown fixture block {other:?}"),
        }
    }
    (answers, cases)
}

/// A readable diff of two frames: 16 bytes a row, rows that differ marked.
fn hex_diff(expected: &[u8], actual: &[u8]) -> String {
    let mut out = format!("expected {} bytes, got {} bytes\n", expected.len(), actual.len());
    let rows = expected.len().max(actual.len()).div_ceil(16);
    let row = |b: &[u8], r: usize| -> String {
        b.iter().skip(r * 16).take(16).map(|x| format!("{x:02x}")).collect::<Vec<_>>().join(" ")
    };
    for r in 0..rows {
        let (e, a) = (row(expected, r), row(actual, r));
        let mark = if e == a { ' ' } else { '!' };
        let _ = writeln!(out, "{mark} {:04x}  exp {e:<47}  got {a}", r * 16);
    }
    out
}

/// The summed counters, with the ones readers derive filled in (`stat::derive`).
fn stats_snapshot(stats: &PerCpuArray<&MapData, u64>) -> Vec<u64> {
    let mut k: Vec<u64> = (0..stat::COUNT)
        .map(|i| stats.get(&i, 0).unwrap_or_else(|e| panic!("reading STATS[{i}]: {e}")).iter().sum())
        .collect();
    stat::derive(&mut k);
    k
}

/// Runs every case on one CPU, so the per-CPU scratch carries over between cases the way it
/// does between packets (the fixtures order a 255-byte name before short ones on purpose).
fn pin_to_one_cpu() {
    // SAFETY: plain libc calls on a zeroed cpu_set_t owned by this frame.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return;
        }
        let Some(cpu) = (0..libc::CPU_SETSIZE as usize).find(|&c| libc::CPU_ISSET(c, &set)) else {
            return;
        };
        libc::CPU_ZERO(&mut set);
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set);
    }
}

struct Runner {
    ebpf: Ebpf,
    store: Option<Store>,
}

impl Runner {
    fn load(answers: &[Answer]) -> Self {
        let mut ebpf = Ebpf::load(dns_xdp::EBPF_OBJECT).unwrap_or_else(|e| panic!("loading the eBPF object: {e}"));
        let prog: &mut Xdp = ebpf
            .program_mut(PROG_NAME)
            .unwrap_or_else(|| panic!("no program {PROG_NAME} in the object"))
            .try_into()
            .expect("dns_xdp is not an XDP program");
        // The verifier runs here: a rejected program fails the test with its log.
        prog.load().unwrap_or_else(|e| panic!("verifier rejected {PROG_NAME}: {e:?}"));
        // The verifier gives up at 1M processed instructions; keep well clear of that, so a
        // change that makes verification explode fails here with a number, not a wall of log.
        let verified = prog.info().ok().and_then(|i| i.verified_instruction_count());
        eprintln!("xdp_golden: verifier processed {verified:?} instructions for {PROG_NAME}");
        if let Some(n) = verified {
            assert!(n < VERIFIER_BUDGET, "verifier processed {n} instructions (budget {VERIFIER_BUDGET})");
        }
        let mut runner = Runner { ebpf, store: None };
        runner.set_config(1);
        // The answers go in through the daemon's own store (name records, interned answers).
        let maps = Maps::take(|name| runner.ebpf.take_map(name)).expect("the answer maps");
        let mut store = Store::new(maps, None);
        let entries: Entries = answers.iter().map(|a| (a.key, a.value)).collect();
        assert_eq!(entries.len(), answers.len(), "two fixtures share a key");
        store.install_entries(&entries).unwrap_or_else(|e| panic!("installing the fixtures' answers: {e:#}"));
        runner.store = Some(store);
        runner
    }

    fn set_config(&mut self, enabled: u32) {
        let mut config: Array<_, XdpConfig> =
            Array::try_from(self.ebpf.map_mut(MAP_CONFIG).expect("no CONFIG map")).expect("CONFIG type");
        config
            .set(0, XdpConfig { dns_port: 53, edns_payload: 1232, enabled, ..Default::default() }, 0)
            .expect("writing CONFIG");
    }

    fn stats(&self) -> Vec<u64> {
        let stats: PerCpuArray<_, u64> =
            PerCpuArray::try_from(self.ebpf.map(MAP_STATS).expect("no STATS map")).expect("STATS type");
        stats_snapshot(&stats)
    }

    /// Runs one frame and returns (action, output frame).
    fn run(&self, name: &str, input: &[u8]) -> (u32, Vec<u8>) {
        let prog: &Xdp = self.ebpf.program(PROG_NAME).expect("program").try_into().expect("xdp");
        let mut out = vec![0u8; 4096];
        let opts = TestRunOptions { data_in: Some(input), data_out: Some(&mut out), ..Default::default() };
        let result = prog.test_run(opts).unwrap_or_else(|e| panic!("case {name}: test_run failed: {e}"));
        out.truncate(result.data_size_out as usize);
        (result.return_value, out)
    }

    fn run_timed(&self, input: &[u8]) -> std::time::Duration {
        let prog: &Xdp = self.ebpf.program(PROG_NAME).expect("program").try_into().expect("xdp");
        let mut out = vec![0u8; 4096];
        let opts = TestRunOptions { data_in: Some(input), data_out: Some(&mut out), ..Default::default() };
        let result = prog.test_run(opts).expect("test_run");
        assert_eq!(result.return_value, XDP_TX, "timed run did not answer");
        result.duration
    }

    /// Runs a case and checks action, bytes and counters; returns a failure description.
    fn check(&self, case: &Case) -> Result<(), String> {
        let before = self.stats();
        let (action, out) = self.run(&case.name, &case.input);
        let after = self.stats();
        let ctx = format!("case {} ({})", case.name, case.desc);
        if action != case.action {
            return Err(format!("{ctx}: action {action}, expected {}", case.action));
        }
        // A passed or dropped packet must leave the program untouched.
        let expected = case.output.as_deref().unwrap_or(&case.input);
        if out != expected {
            return Err(format!("{ctx}: output frame differs\n{}", hex_diff(expected, &out)));
        }
        let mut want = vec![0u64; stat::COUNT as usize];
        want[stat::RX as usize] += 1;
        want[action_stat(case.action) as usize] += 1;
        want[case.stat as usize] += 1;
        let got: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
        if got != want {
            let moved = |v: &[u64]| -> Vec<(usize, u64)> {
                v.iter().enumerate().filter(|(_, n)| **n != 0).map(|(i, n)| (i, *n)).collect()
            };
            return Err(format!("{ctx}: STATS moved {:?} (slot, delta), expected {:?}", moved(&got), moved(&want)));
        }
        Ok(())
    }
}

#[test]
fn golden_packets() {
    if !testframe::can_load_bpf("xdp_golden") {
        return;
    }
    pin_to_one_cpu();
    let text = std::fs::read_to_string(fixtures_path())
        .unwrap_or_else(|e| panic!("reading {}: {e}", fixtures_path().display()));
    let (answers, cases) = parse_fixtures(&text);
    assert!(cases.len() >= 60, "only {} cases in the fixtures", cases.len());
    let runner = Runner::load(&answers);

    let failures: Vec<String> = cases.iter().filter_map(|c| runner.check(c).err()).collect();
    let tx = cases.iter().filter(|c| c.action == XDP_TX).count();
    eprintln!("xdp_golden: {} cases ({tx} answered), {} failed", cases.len(), failures.len());
    if !failures.is_empty() {
        panic!("{} of {} golden cases failed:\n\n{}", failures.len(), cases.len(), failures.join("\n\n"));
    }

    // Rough cost of an answered query (kernel-measured, includes test_run's per-run overhead).
    // Repeats rerun on the program's own output, a reply that passes, so time single runs.
    if let Some(case) = cases.iter().find(|c| c.name == "ipv4_a_hit") {
        let runs = 200u32;
        let total: std::time::Duration = (0..runs).map(|_| runner.run_timed(&case.input)).sum();
        eprintln!("xdp_golden: {} answered in {:?} on average", case.name, total / runs);
    }

    // Totals agree with the per-case deltas: every TX case counted once under ACTION_TX.
    let totals = runner.stats();
    assert_eq!(totals[stat::ACTION_TX as usize], tx as u64 + 200, "ACTION_TX total");
    assert_eq!(totals[stat::RX as usize], cases.len() as u64 + 200, "RX total");
}

#[test]
fn disabled_config_passes_everything() {
    if !testframe::can_load_bpf("xdp_golden") {
        return;
    }
    let text = std::fs::read_to_string(fixtures_path()).expect("fixtures");
    let (answers, cases) = parse_fixtures(&text);
    let mut runner = Runner::load(&answers);
    runner.set_config(0);
    for case in cases.iter().filter(|c| c.action == XDP_TX).take(3) {
        let before = runner.stats();
        let (action, out) = runner.run(&case.name, &case.input);
        let after = runner.stats();
        assert_eq!(action, XDP_PASS, "case {} with enabled=0", case.name);
        assert_eq!(out, case.input, "case {} with enabled=0 modified the frame", case.name);
        assert_eq!(after[stat::PASS_DISABLED as usize] - before[stat::PASS_DISABLED as usize], 1);
    }
}

#[test]
fn fixture_keys_are_lowercase_wire_names() {
    // Cheap and rootless: guards the test's own key builder against the program's contract.
    let name = key_name("WwW.Example.COM.");
    assert_eq!(&name[..17], b"\x03www\x07example\x03com\x00");
    assert!(name[17..].iter().all(|&b| b == 0));
    assert_eq!(&key_name(".")[..2], b"\0\0");
}

/// Ones'-complement sum of big-endian words, folded (not inverted).
fn ones_sum(data: &[u8], mut sum: u32) -> u32 {
    for c in data.chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum
}

/// Rate-limiting decisions through test_run: burst, limit, slip bytes, the budget shared across
/// CPUs, reflection ports, allowlist and dry run. Expected slips come from the daemon's own slip
/// builder (dns_xdp::rrl::slip) applied to the oracle's expected answer.
#[test]
fn rate_limiter_decisions() {
    use aya::maps::lpm_trie::{Key as LpmKey, LpmTrie};
    use dns_xdp::rrl::{Cidr, RrlSettings};
    use dns_xdp_common::{MAP_RRL_ALLOW, MAP_RRL_CONFIG, RrlConfig};
    if !testframe::can_load_bpf("xdp_golden") {
        return;
    }
    pin_to_one_cpu();
    let text = std::fs::read_to_string(fixtures_path()).expect("fixtures");
    let (answers, cases) = parse_fixtures(&text);
    let mut runner = Runner::load(&answers);
    let case = cases.iter().find(|c| c.name == "ipv4_a_hit").expect("ipv4_a_hit case");
    let answer = case.output.clone().expect("ipv4_a_hit answers");
    // rate 1/s, burst 3, every 2nd limited response slipped, /24.
    let settings = RrlSettings { rate: 1, burst: 3, slip: 2, ..Default::default() };
    let set = |runner: &mut Runner, cfg: RrlConfig| {
        let mut map: Array<_, RrlConfig> =
            Array::try_from(runner.ebpf.map_mut(MAP_RRL_CONFIG).expect("RRL_CONFIG")).expect("type");
        map.set(0, cfg, 0).expect("writing RRL_CONFIG");
    };
    set(&mut runner, settings.kernel_config());
    let step = |runner: &Runner, what: &str, input: &[u8], action: u32, slot: u32| -> Vec<u8> {
        let before = runner.stats();
        let (got, out) = runner.run(what, input);
        let after = runner.stats();
        assert_eq!(got, action, "{what}: action");
        assert_eq!(after[slot as usize] - before[slot as usize], 1, "{what}: STATS[{slot}]");
        out
    };
    for i in 0..3 {
        let out = step(&runner, &format!("burst {i}"), &case.input, XDP_TX, stat::ACTION_TX);
        assert_eq!(out, answer, "burst answer {i}\n{}", hex_diff(&answer, &out));
    }
    step(&runner, "limited 1", &case.input, XDP_DROP, stat::ACTION_RATE_LIMITED);
    let slip = step(&runner, "limited 2 (slip)", &case.input, XDP_TX, stat::ACTION_SLIP);
    // Ethernet + IPv4 + UDP: 42 bytes before the DNS message.
    let want_dns = dns_xdp::rrl::slip(&answer[42..], None, 0, 1232).expect("slip of the answer");
    assert_eq!(&slip[..12], &answer[..12], "slip: MACs swapped like the answer");
    assert_eq!(&slip[42..], &want_dns[..], "slip DNS bytes\n{}", hex_diff(&want_dns, &slip[42..]));
    assert_eq!(slip.len(), case.input.len(), "a slip is no bigger than the query");
    assert_eq!(ones_sum(&slip[14..34], 0), 0xffff, "slip IPv4 header checksum");
    let mut pseudo = slip[26..34].to_vec();
    pseudo.extend([0, 17]);
    pseudo.extend(((slip.len() - 34) as u16).to_be_bytes());
    assert_eq!(ones_sum(&slip[34..], ones_sum(&pseudo, 0)), 0xffff, "slip UDP checksum");

    // The budget is one for all CPUs: another CPU sees the prefix limited too.
    // SAFETY: plain libc calls on a zeroed cpu_set_t owned by this frame.
    let other_cpu = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set);
        let me = libc::sched_getcpu();
        let online = libc::sysconf(libc::_SC_NPROCESSORS_ONLN) as usize;
        (0..online).find(|&c| c as i32 != me).map(|c| {
            libc::CPU_ZERO(&mut set);
            libc::CPU_SET(c, &mut set);
            libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) == 0
        })
    };
    if other_cpu == Some(true) {
        step(&runner, "limited on another CPU", &case.input, XDP_DROP, stat::ACTION_RATE_LIMITED);
    } else {
        eprintln!("xdp_golden: one CPU only, cross-CPU budget not checked");
    }

    // Another /24 has its own budget.
    let mut other = case.input.clone();
    other[28] ^= 1; // third octet of the IPv4 source (checksum is not checked on the way in)
    step(&runner, "other prefix", &other, XDP_TX, stat::ACTION_TX);

    // Reflection source port: dropped before any DNS work, whatever the budget.
    let mut ntp = case.input.clone();
    ntp[34..36].copy_from_slice(&123u16.to_be_bytes());
    let out = step(&runner, "from NTP's port", &ntp, XDP_DROP, stat::DROP_REFLECTION_PORT);
    assert_eq!(out, ntp, "a dropped frame is unchanged");

    // Allowlisted: answered, counted.
    let cidr: Cidr = "192.0.2.0/24".parse().expect("cidr");
    let (len, addr) = cidr.trie_key();
    {
        let mut allow: LpmTrie<_, [u8; 16], u32> =
            LpmTrie::try_from(runner.ebpf.map_mut(MAP_RRL_ALLOW).expect("RRL_ALLOW")).expect("type");
        allow.insert(&LpmKey::new(len, addr), 1, 0).expect("allowlisting");
    }
    step(&runner, "allowlisted", &case.input, XDP_TX, stat::RRL_ALLOWLISTED);
    {
        let mut allow: LpmTrie<_, [u8; 16], u32> =
            LpmTrie::try_from(runner.ebpf.map_mut(MAP_RRL_ALLOW).expect("RRL_ALLOW")).expect("type");
        allow.remove(&LpmKey::new(len, addr)).expect("un-allowlisting");
    }

    // Dry run: answered, counted as would-be-limited.
    set(&mut runner, RrlSettings { dry_run: true, ..settings.clone() }.kernel_config());
    let out = step(&runner, "dry run", &case.input, XDP_TX, stat::RRL_DRY_RUN);
    assert_eq!(out, answer);

    // Live reconfiguration: rate 0 turns limiting off at the next packet.
    set(&mut runner, RrlSettings::default().kernel_config());
    step(&runner, "limiting off", &case.input, XDP_TX, stat::ACTION_TX);
}
