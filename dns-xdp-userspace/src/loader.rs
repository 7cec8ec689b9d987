//! Loading, attaching and detaching the XDP program, and typed access to its maps (the answer
//! maps through store.rs). No other module of the daemon talks to the kernel's BPF interfaces
//! (the test bed's programs have their own binary, testbed/).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use aya::Ebpf;
use aya::maps::lpm_trie::{Key as LpmKey, LpmTrie};
use aya::maps::{Array, HashMap as BpfHashMap, MapData, PerCpuArray, RingBuf};
use aya::programs::{Xdp, XdpMode};
use dns_xdp_common::{
    ANSWER_CLASS_SIZE, MAP_ANSWERS, MAP_CONFIG, MAP_NAMES, MAP_RRL_ALLOW, MAP_RRL_BUCKETS, MAP_RRL_CONFIG,
    MAP_SHADOW_RING, MAP_STATS, NAME_CLASS_SIZE, PROG_NAME, RRL_ALLOW_KEY_LEN, RrlBucket, RrlConfig, RrlKey,
    SHADOW_RECORD_LEN, Scratch, XdpConfig, stat,
};

use crate::compile::Entries;
use crate::config::XdpModeChoice;
use crate::name::Name;
use crate::rrl::RrlSettings;
pub use crate::store::Diff;
use crate::store::{Maps, Store};
use crate::zone::ZoneSet;

/// The loaded program and the maps the daemon writes.
pub struct XdpProgram {
    ebpf: Ebpf,
    /// The answer store; `None` once handed to a writer (`answers_writer`).
    store: Option<Store>,
    config: Array<MapData, XdpConfig>,
    /// What CONFIG holds, so one setting changes without touching the others.
    config_value: XdpConfig,
    rrl_config: Array<MapData, RrlConfig>,
    rrl_allow: LpmTrie<MapData, [u8; RRL_ALLOW_KEY_LEN], u32>,
    rrl_buckets: BpfHashMap<MapData, RrlKey, RrlBucket>,
    /// Allowlist entries installed, so a reconfiguration removes the ones dropped.
    allow_installed: HashSet<(u32, [u8; RRL_ALLOW_KEY_LEN])>,
    /// Each bucket's limited count at the last scan, to tell which limited since.
    limited_seen: HashMap<RrlKey, u64>,
    /// Most names whose own answers the kernel holds (`--answers-capacity`); the others keep
    /// only their existence marker (hot set).
    capacity: usize,
    /// Entries of each NAMES map.
    record_room: [usize; MAP_NAMES.len()],
    /// Names left to the daemon now, for the hot set.
    cold: std::collections::HashSet<Name>,
    /// Who points at whom in the installed zones: built beside the start's compile
    /// (`expect_referrers`), else at the first narrow update after a full install.
    referrers: Option<crate::compile::Referrers>,
    /// An index being built elsewhere (`expect_referrers`): waited for rather than built again.
    referrers_pending: Option<std::sync::mpsc::Receiver<(Arc<ZoneSet>, crate::compile::Referrers)>>,
    attached: Vec<String>,
}

/// The program's counters: the per-CPU STATS map, and the kernel's own run-time accounting.
pub struct Stats {
    counters: PerCpuArray<MapData, u64>,
    program_id: u32,
}

impl Stats {
    /// Per-CPU counters summed, indexed by `dns_xdp_common::stat`, with the derived ones
    /// (`stat::derive`) filled in.
    pub fn read(&self) -> anyhow::Result<Vec<u64>> {
        let mut k = (0..stat::COUNT)
            .map(|i| Ok(self.counters.get(&i, 0).context("reading the STATS map")?.iter().sum()))
            .collect::<anyhow::Result<Vec<u64>>>()?;
        stat::derive(&mut k);
        Ok(k)
    }

    /// Total nanoseconds spent in the program and runs counted, while BPF stats are enabled
    /// (`--bpf-stats` or sysctl kernel.bpf_stats_enabled=1).
    pub fn run_time(&self) -> Option<(u64, u64)> {
        aya::programs::loaded_programs()
            .filter_map(Result::ok)
            .find(|p| p.id() == self.program_id)
            .map(|p| (p.run_time().as_nanos() as u64, p.run_count()))
    }
}

/// Turns on the kernel's per-program run-time accounting for as long as the value lives.
pub fn enable_bpf_stats() -> anyhow::Result<std::os::fd::OwnedFd> {
    aya::sys::enable_stats(aya::sys::Stats::RunTime).context("enabling BPF run-time statistics")
}

fn raise_memlock_limit() {
    // Kernels before 5.11 charge BPF maps to RLIMIT_MEMLOCK; harmless where memcg accounting is used.
    let rlim = libc::rlimit { rlim_cur: libc::RLIM_INFINITY, rlim_max: libc::RLIM_INFINITY };
    // SAFETY: setrlimit reads a valid, initialised struct; failure is only logged.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &rlim) } != 0 {
        log::debug!("could not raise RLIMIT_MEMLOCK");
    }
}

impl XdpProgram {
    /// Loads the embedded object and verifies the program. Queries pass until `enable`.
    pub fn load(dns_port: u16, edns_payload: u16) -> anyhow::Result<(Self, Stats)> {
        Self::load_with_capacity(dns_port, edns_payload, dns_xdp_common::ANSWERS_CAPACITY)
    }

    /// `load`, with room for `capacity` answers (`--answers-capacity`); when more are
    /// compiled, `apply` installs the hot set (see hotset.rs).
    pub fn load_with_capacity(dns_port: u16, edns_payload: u16, capacity: u32) -> anyhow::Result<(Self, Stats)> {
        Self::load_sized(dns_port, edns_payload, capacity, [0; MAP_NAMES.len()])
    }

    /// `load_with_capacity`, with at least `records[i]` entries in NAMES map `i` (every name
    /// needs its record, hot or not: `records_needed`).
    pub fn load_sized(
        dns_port: u16,
        edns_payload: u16,
        capacity: u32,
        records: [u32; MAP_NAMES.len()],
    ) -> anyhow::Result<(Self, Stats)> {
        raise_memlock_limit();
        let started = std::time::Instant::now();
        let capacity = capacity.max(1);
        let mut loader = aya::EbpfLoader::new();
        let size = |share: u64| (u64::from(capacity) * share / 16).clamp(1024, u64::from(u32::MAX)) as u32;
        let mut record_room = [0usize; MAP_NAMES.len()];
        for (i, (name, share)) in MAP_NAMES.iter().zip(NAME_CLASS_SIZE).enumerate() {
            let entries = size(share).max(records[i]);
            record_room[i] = entries as usize;
            loader.map_max_entries(name, entries);
        }
        for (name, share) in MAP_ANSWERS.iter().zip(ANSWER_CLASS_SIZE) {
            loader.map_max_entries(name, size(share));
        }
        let hit_entries = crate::hits::entries_for(capacity);
        loader.map_max_entries(dns_xdp_common::MAP_HITS, hit_entries);
        let mut ebpf = loader.load(crate::EBPF_OBJECT).context("loading the eBPF object (needs root or CAP_BPF)")?;
        let program: &mut Xdp = ebpf
            .program_mut(PROG_NAME)
            .context("eBPF object has no dns_xdp program")?
            .try_into()
            .context("dns_xdp is not an XDP program")?;
        program.load().context("the kernel verifier rejected the XDP program")?;
        log::debug!("XDP program loaded and verified in {:.1?}", started.elapsed());
        let mut store = Store::new(Maps::take(|name| ebpf.take_map(name))?);
        let hits =
            crate::hits::HitIndex::new(ebpf.take_map(dns_xdp_common::MAP_HITS).context("no HITS map")?, hit_entries)?;
        let hit_mask = hits.mask();
        store.set_hits(hits);
        let mut config = Array::try_from(ebpf.take_map(MAP_CONFIG).context("no CONFIG map")?)?;
        let counters = PerCpuArray::try_from(ebpf.take_map(MAP_STATS).context("no STATS map")?)?;
        let rrl_config = Array::try_from(ebpf.take_map(MAP_RRL_CONFIG).context("no RRL_CONFIG map")?)?;
        let rrl_allow = LpmTrie::try_from(ebpf.take_map(MAP_RRL_ALLOW).context("no RRL_ALLOW map")?)?;
        let rrl_buckets = BpfHashMap::try_from(ebpf.take_map(MAP_RRL_BUCKETS).context("no RRL_BUCKETS map")?)?;
        let program: &Xdp = ebpf.program(PROG_NAME).context("no dns_xdp program")?.try_into()?;
        let program_id = program.info().context("reading the program's info")?.id();
        let config_value = XdpConfig { dns_port, edns_payload, hit_mask, ..Default::default() };
        config.set(0, config_value, 0).context("writing CONFIG")?;
        let program = XdpProgram {
            ebpf,
            store: Some(store),
            config,
            config_value,
            rrl_config,
            rrl_allow,
            rrl_buckets,
            allow_installed: HashSet::new(),
            limited_seen: HashMap::new(),
            capacity: capacity as usize,
            record_room,
            cold: Default::default(),
            referrers: None,
            referrers_pending: None,
            attached: Vec::new(),
        };
        Ok((program, Stats { counters, program_id }))
    }

    /// Attaches to `iface`; returns the mode used. `Auto` tries native and falls back to generic.
    pub fn attach(&mut self, iface: &str, mode: XdpModeChoice) -> anyhow::Result<&'static str> {
        let program: &mut Xdp = self.ebpf.program_mut(PROG_NAME).context("no dns_xdp program")?.try_into()?;
        let used = match mode {
            XdpModeChoice::Native => {
                program.attach(iface, XdpMode::Driver).with_context(|| format!("attaching XDP (native) to {iface}"))?;
                "native"
            }
            XdpModeChoice::Skb => {
                program.attach(iface, XdpMode::Skb).with_context(|| format!("attaching XDP (generic) to {iface}"))?;
                "generic"
            }
            XdpModeChoice::Auto => match program.attach(iface, XdpMode::Driver) {
                Ok(_) => "native",
                Err(err) => {
                    log::warn!("native XDP on {iface} failed ({err}); falling back to generic (skb) mode");
                    program
                        .attach(iface, XdpMode::Skb)
                        .with_context(|| format!("attaching XDP (generic) to {iface}"))?;
                    "generic"
                }
            },
            XdpModeChoice::Off => bail!("XDP is off"),
        };
        self.attached.push(iface.to_string());
        Ok(used)
    }

    /// Lets the program answer from the maps.
    pub fn set_enabled(&mut self, dns_port: u16, edns_payload: u16, enabled: bool) -> anyhow::Result<()> {
        self.write_config(XdpConfig { dns_port, edns_payload, enabled: enabled as u32, ..self.config_value })
    }

    /// Shadow validation: copy one answered query in `one_in` to SHADOW_RING (0: none).
    pub fn set_shadow_sample(&mut self, one_in: u32) -> anyhow::Result<()> {
        self.write_config(XdpConfig { shadow_sample: one_in, ..self.config_value })
    }

    fn write_config(&mut self, value: XdpConfig) -> anyhow::Result<()> {
        self.config.set(0, value, 0).context("writing CONFIG")?;
        self.config_value = value;
        Ok(())
    }

    /// The ring of sampled XDP answers; taken once (the caller drains it).
    pub fn take_shadow_ring(&mut self) -> anyhow::Result<ShadowRing> {
        let map = self.ebpf.take_map(MAP_SHADOW_RING).context("no SHADOW_RING map (taken already?)")?;
        let ring = RingBuf::try_from(map).context("SHADOW_RING is not a ring buffer")?;
        // SAFETY: the RingBuf owns its map's fd and keeps it open, unchanged, for as long as it
        // lives, and the AsyncFd owns the RingBuf.
        let fd = unsafe { tokio::io::unix::AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) };
        Ok(ShadowRing { fd: fd.map_err(std::io::Error::from).context("polling SHADOW_RING")? })
    }

    /// Writes the rate-limiting settings and allowlist; takes effect at the next packet, with
    /// no reload of the program (buckets are kept).
    pub fn set_rrl(&mut self, rrl: &RrlSettings) -> anyhow::Result<()> {
        let wanted: HashSet<_> = rrl.allow.iter().map(|c| c.trie_key()).collect();
        for (len, addr) in &wanted {
            self.rrl_allow
                .insert(&LpmKey::new(*len, *addr), 1, 0)
                .context("writing the RRL_ALLOW map (is it full?)")?;
        }
        for (len, addr) in self.allow_installed.difference(&wanted) {
            self.rrl_allow.remove(&LpmKey::new(*len, *addr)).context("removing from the RRL_ALLOW map")?;
        }
        self.allow_installed = wanted;
        self.rrl_config.set(0, rrl.kernel_config(), 0).context("writing RRL_CONFIG")
    }

    /// The kernel's buckets that limited a response since the last call (for the start/stop
    /// log lines). Walks the whole bucket map: call it every few seconds, not per packet.
    pub fn rrl_limiting(&mut self) -> Vec<RrlKey> {
        let mut now = HashMap::new();
        let mut limiting = Vec::new();
        for (key, bucket) in self.rrl_buckets.iter().filter_map(Result::ok) {
            if bucket.limited > self.limited_seen.get(&key).copied().unwrap_or(0) {
                limiting.push(key);
            }
            if bucket.limited > 0 {
                now.insert(key, bucket.limited);
            }
        }
        self.limited_seen = now;
        limiting
    }

    fn store(&mut self) -> anyhow::Result<&mut Store> {
        self.store.as_mut().context("the answer store was handed to a writer")
    }

    /// Makes the maps hold exactly `entries` (precompiled; tests and benchmarks), writing only
    /// what differs.
    pub fn apply(&mut self, entries: Entries) -> anyhow::Result<Diff> {
        self.store()?.install_entries(&entries)
    }

    /// Compiles `zones` into the maps, writing only what differs from what they hold. When
    /// the zones have more names than `--answers-capacity`, the hot set (hotset.rs) decides
    /// which names keep their own answers in the kernel; every name keeps its existence
    /// marker and the answers for missing names below it.
    pub fn install(&mut self, zones: &ZoneSet, payload: u16) -> anyhow::Result<Diff> {
        self.referrers = None;
        self.referrers_pending = None;
        self.choose_cold(zones);
        if !self.cold.is_empty() {
            let total: usize = zones.iter().map(|z| z.nodes.len()).sum();
            log::info!(
                "XDP answers: {total} names, capacity {}: {} names left to the daemon",
                self.capacity,
                self.cold.len()
            );
        }
        let cold = std::mem::take(&mut self.cold);
        let result = self.store()?.install_all(zones, payload, &|n| cold.contains(n));
        self.cold = cold;
        result
    }

    /// Recompiles only `names` (the owners a change touched, their ancestors and the names
    /// whose answers mention them) against `zones`, which must differ from the installed
    /// version in those names alone.
    pub fn install_names(&mut self, zones: &ZoneSet, payload: u16, names: &[Name]) -> anyhow::Result<Diff> {
        let cold = std::mem::take(&mut self.cold);
        let result = self.store()?.install_names(zones, payload, names, &|n| cold.contains(n));
        self.cold = cold;
        result
    }

    /// The index of who points at whom in `installed` (the zones the maps hold now).
    pub fn referrers(&mut self, installed: &ZoneSet) -> &crate::compile::Referrers {
        if let Some(pending) = self.referrers_pending.take().filter(|_| self.referrers.is_none()) {
            // Built for other zones (an update went live since): of no use.
            if let Ok((built_for, index)) = pending.recv()
                && std::ptr::eq(&*built_for, installed)
            {
                self.referrers = Some(index);
            }
        }
        self.referrers.get_or_insert_with(|| crate::compile::Referrers::build(installed))
    }

    /// NAMES map sizes that would hold a record for every name of `zones` (with a quarter to
    /// spare), when this program's do not: every name keeps its record even when the hot set
    /// leaves it without answers, so `--answers-capacity` alone may leave too little room.
    pub fn records_needed(&self, zones: &ZoneSet) -> Option<[u32; MAP_NAMES.len()]> {
        let mut count = [0usize; MAP_NAMES.len()];
        for zone in zones.iter() {
            for name in zone.nodes.keys() {
                let len = name.as_wire().len();
                if let Some(class) = dns_xdp_common::NAME_CLASSES.iter().position(|&c| len <= c) {
                    count[class] += 1;
                }
            }
        }
        if count.iter().zip(&self.record_room).all(|(n, room)| n <= room) {
            return None;
        }
        Some(std::array::from_fn(|i| {
            (count[i].max(self.record_room[i]) as u64 * 5 / 4).min(u64::from(u32::MAX)) as u32
        }))
    }

    /// The index of the installed zones will arrive on `pending` (built on another thread,
    /// from the zones as they were installed): the first write waits for it there, which takes
    /// less than building its own (a walk of every zone: 0.3 s at a million names).
    pub fn expect_referrers(&mut self, pending: std::sync::mpsc::Receiver<(Arc<ZoneSet>, crate::compile::Referrers)>) {
        self.referrers_pending = Some(pending);
    }

    /// After a narrow update: what the recompiled `names` point at now.
    pub fn note_referrers(&mut self, zones: &ZoneSet, names: &[Name]) {
        if let Some(r) = self.referrers.as_mut() {
            r.add(zones, names);
        }
    }

    fn choose_cold(&mut self, zones: &ZoneSet) {
        let total: usize = zones.iter().map(|z| z.nodes.len()).sum();
        if total <= self.capacity {
            self.cold.clear();
            return;
        }
        let demand = crate::hotset::take_demand();
        let hot_now = |n: &Name| self.store.as_ref().is_some_and(|s| s.is_hot(n));
        let cold = crate::hotset::select_cold(zones, self.capacity, &demand, &hot_now);
        log::debug!("XDP answers: {total} names, capacity {}: {} names left to the daemon", self.capacity, cold.len());
        self.cold = cold;
    }

    /// Re-chooses the hot set from the demand sampled since the last call (promotions and
    /// evictions) and recompiles the names that moved; nothing to do while every name fits.
    pub fn rebalance(&mut self, zones: &ZoneSet, payload: u16) -> anyhow::Result<Diff> {
        let total: usize = zones.iter().map(|z| z.nodes.len()).sum();
        if total <= self.capacity && self.cold.is_empty() {
            return Ok(Diff::default());
        }
        let before = std::mem::take(&mut self.cold);
        self.choose_cold(zones);
        let moved: Vec<Name> = before.symmetric_difference(&self.cold).cloned().collect();
        let promoted = before.difference(&self.cold).count();
        crate::hotset::count_moves(promoted, moved.len() - promoted);
        if !moved.is_empty() {
            log::info!(
                "XDP hot set: {promoted} names promoted, {} evicted; {} of {total} names left to the daemon (capacity {})",
                moved.len() - promoted,
                self.cold.len(),
                self.capacity
            );
        }
        self.install_names(zones, payload, &moved)
    }

    /// The answer store, taken out for a writer on another thread while this one keeps
    /// running the program (the refresh tests).
    pub fn answers_writer(&mut self) -> anyhow::Result<Store> {
        self.store.take().context("the answer store was handed out already")
    }

    /// Runs the (loaded, not necessarily attached) program once on `frame` through
    /// BPF_PROG_TEST_RUN: returns the XDP action and the frame as the program left it.
    pub fn test_run(&self, frame: &[u8]) -> anyhow::Result<(u32, Vec<u8>)> {
        use aya::programs::{TestRun as _, TestRunOptions};
        let program: &Xdp = self.ebpf.program(PROG_NAME).context("no dns_xdp program")?.try_into()?;
        // Room for the largest reply the program may grow the frame into.
        let mut out = vec![0u8; frame.len() + dns_xdp_common::MAX_ANSWER_LEN + 512];
        let result = program
            .test_run(TestRunOptions {
                data_in: Some(frame),
                data_out: Some(&mut out),
                repeat: 1,
                ..Default::default()
            })
            .context("BPF_PROG_TEST_RUN")?;
        out.truncate(result.data_size_out as usize);
        Ok((result.return_value, out))
    }

    /// Whether the kernel answers this query from its maps (before its size, DNSSEC and
    /// rate-limit checks), as the installed records say; see `Store::lookup`.
    pub fn kernel_answers(&self, qname: &[u8], qtype: u16, dnssec: bool) -> bool {
        self.store
            .as_ref()
            .and_then(|s| s.lookup(qname, qtype, dnssec))
            .is_some_and(|id| id != dns_xdp_common::ANSWER_PASS)
    }

    /// Entries in the answer maps: name records and distinct answers.
    pub fn entries(&self) -> (usize, usize) {
        self.store.as_ref().map_or((0, 0), |s| (s.names(), s.answers()))
    }

    /// Entries in use in the hit index (hits.rs).
    pub fn hit_entries(&self) -> usize {
        self.store.as_ref().map_or(0, Store::hits_held)
    }

    pub fn attached(&self) -> &[String] {
        &self.attached
    }
}

/// The kernel's shadow samples (`dns_xdp_common::Scratch` records), readable from async code.
pub struct ShadowRing {
    fd: tokio::io::unix::AsyncFd<RingBuf<MapData>>,
}

impl ShadowRing {
    /// Waits for records, then hands every record now in the ring to `each`.
    pub async fn drain(&mut self, mut each: impl FnMut(Scratch)) -> std::io::Result<()> {
        let mut guard = self.fd.readable_mut().await?;
        let ring = guard.get_inner_mut();
        while let Some(item) = ring.next() {
            if item.len() >= SHADOW_RECORD_LEN {
                // SAFETY: Scratch is plain `#[repr(C)]` data valid for any bit pattern (all
                // zeros included); the record fills its first SHADOW_RECORD_LEN bytes (length
                // checked), the rest stays zero.
                let record = unsafe {
                    let mut s: Scratch = std::mem::zeroed();
                    std::ptr::copy_nonoverlapping(item.as_ptr(), (&raw mut s).cast::<u8>(), SHADOW_RECORD_LEN);
                    s
                };
                each(record);
            }
        }
        guard.clear_ready();
        Ok(())
    }
}
