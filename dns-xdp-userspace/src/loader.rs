//! Loading, attaching and detaching the XDP program, and its small maps (CONFIG, the rate
//! limiter's, the shadow ring, the counters). The answer maps it loads sized as `MapSizes`
//! says and hands out whole (`take_response_maps`) to the side that writes them (update/).
//! Besides it and kernel/, no module of the daemon talks to the kernel's BPF interfaces (the
//! test bed's programs have their own binary, testbed/).
//!
//! May call: kernel/ (the answer maps' types and sizes), config, rrl. Nothing that decides
//! what the maps hold.

use std::collections::{HashMap, HashSet};

use aya::Ebpf;
use aya::maps::lpm_trie::{Key as LpmKey, LpmTrie};
use aya::maps::{Array, HashMap as BpfHashMap, MapData, PerCpuArray, RingBuf};
use aya::programs::{Xdp, XdpMode};
use dns_xdp_common::{
    MAP_CONFIG, MAP_HITS, MAP_RRL_ALLOW, MAP_RRL_BUCKETS, MAP_RRL_CONFIG, MAP_SHADOW_RING, MAP_STATS, PROG_NAME,
    RRL_ALLOW_KEY_LEN, RrlBucket, RrlConfig, RrlKey, SHADOW_RECORD_LEN, Scratch, XdpConfig, stat,
};

use crate::config::XdpModeChoice;
use crate::kernel::hits::HitIndex;
use crate::kernel::maps::{MapSizes, Maps};
use crate::kernel::{MapsError, ResponseMaps};
use crate::rrl::RrlSettings;

/// What went wrong with the XDP program or one of its maps: what the daemon was doing, and
/// aya's or the kernel's cause, kept whole.
#[derive(Debug, thiserror::Error)]
pub enum LoaderError {
    /// The eBPF object, or the program loaded from it, lacks what the daemon takes.
    #[error("{0}")]
    Missing(&'static str),
    #[error("{doing}: {err}")]
    Ebpf { doing: &'static str, err: aya::EbpfError },
    #[error("{doing}: {err}")]
    Program { doing: String, err: aya::programs::ProgramError },
    #[error("{doing}: {err}")]
    Map { doing: &'static str, err: aya::maps::MapError },
    #[error("{doing}: {err}")]
    Io { doing: &'static str, err: std::io::Error },
    #[error("{doing}: {err}")]
    Syscall { doing: &'static str, err: aya::sys::SyscallError },
    #[error(transparent)]
    Maps(#[from] MapsError),
    #[error("XDP is off")]
    Off,
}

impl LoaderError {
    fn program(doing: impl Into<String>) -> impl FnOnce(aya::programs::ProgramError) -> Self {
        move |err| LoaderError::Program { doing: doing.into(), err }
    }

    fn map(doing: &'static str) -> impl FnOnce(aya::maps::MapError) -> Self {
        move |err| LoaderError::Map { doing, err }
    }
}

/// The loaded program and the maps the daemon writes.
pub struct XdpProgram {
    ebpf: Ebpf,
    /// The answer maps; `None` once handed out (`take_response_maps`).
    response_maps: Option<ResponseMaps>,
    /// The sizes the maps were loaded with.
    sizes: MapSizes,
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
    pub fn read(&self) -> Result<Vec<u64>, aya::maps::MapError> {
        let mut k = (0..stat::COUNT)
            .map(|i| Ok::<u64, aya::maps::MapError>(self.counters.get(&i, 0)?.iter().sum()))
            .collect::<Result<Vec<u64>, _>>()?;
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
pub fn enable_bpf_stats() -> Result<std::os::fd::OwnedFd, LoaderError> {
    aya::sys::enable_stats(aya::sys::Stats::RunTime)
        .map_err(|err| LoaderError::Syscall { doing: "enabling BPF run-time statistics", err })
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
    /// Loads the embedded object with the default map sizes and verifies the program. Queries
    /// pass until `set_enabled`.
    pub fn load(dns_port: u16, edns_payload: u16) -> Result<(Self, Stats), LoaderError> {
        Self::load_sized(dns_port, edns_payload, MapSizes::default())
    }

    /// `load`, with the answer maps sized as `sizes` says (`--answers-capacity`, and room for
    /// every name's record: `MapSizes::records_needed`).
    pub fn load_sized(dns_port: u16, edns_payload: u16, sizes: MapSizes) -> Result<(Self, Stats), LoaderError> {
        raise_memlock_limit();
        let started = std::time::Instant::now();
        let mut loader = aya::EbpfLoader::new();
        for (name, entries) in sizes.classes() {
            loader.map_max_entries(name, entries);
        }
        loader.map_max_entries(MAP_HITS, sizes.hits());
        let mut ebpf = loader
            .load(crate::EBPF_OBJECT)
            .map_err(|err| LoaderError::Ebpf { doing: "loading the eBPF object (needs root or CAP_BPF)", err })?;
        let program: &mut Xdp = ebpf
            .program_mut(PROG_NAME)
            .ok_or(LoaderError::Missing("eBPF object has no dns_xdp program"))?
            .try_into()
            .map_err(LoaderError::program("dns_xdp is not an XDP program"))?;
        program.load().map_err(LoaderError::program("the kernel verifier rejected the XDP program"))?;
        log::debug!("XDP program loaded and verified in {:.1?}", started.elapsed());
        let maps = Maps::take(|name| ebpf.take_map(name))?;
        let hits = HitIndex::new(ebpf.take_map(MAP_HITS).ok_or(LoaderError::Missing("no HITS map"))?, sizes.hits())?;
        let hit_mask = hits.mask();
        let mut take =
            |name: &'static str, missing: &'static str| ebpf.take_map(name).ok_or(LoaderError::Missing(missing));
        let mut config = Array::try_from(take(MAP_CONFIG, "no CONFIG map")?).map_err(LoaderError::map("CONFIG"))?;
        let counters = PerCpuArray::try_from(take(MAP_STATS, "no STATS map")?).map_err(LoaderError::map("STATS"))?;
        let rrl_config =
            Array::try_from(take(MAP_RRL_CONFIG, "no RRL_CONFIG map")?).map_err(LoaderError::map("RRL_CONFIG"))?;
        let rrl_allow =
            LpmTrie::try_from(take(MAP_RRL_ALLOW, "no RRL_ALLOW map")?).map_err(LoaderError::map("RRL_ALLOW"))?;
        let rrl_buckets = BpfHashMap::try_from(take(MAP_RRL_BUCKETS, "no RRL_BUCKETS map")?)
            .map_err(LoaderError::map("RRL_BUCKETS"))?;
        let program: &Xdp = ebpf
            .program(PROG_NAME)
            .ok_or(LoaderError::Missing("no dns_xdp program"))?
            .try_into()
            .map_err(LoaderError::program("dns_xdp is not an XDP program"))?;
        let program_id = program.info().map_err(LoaderError::program("reading the program's info"))?.id();
        let config_value = XdpConfig { dns_port, edns_payload, hit_mask, ..Default::default() };
        config.set(0, config_value, 0).map_err(LoaderError::map("writing CONFIG"))?;
        let program = XdpProgram {
            ebpf,
            response_maps: Some(ResponseMaps { maps, hits, sizes }),
            sizes,
            config,
            config_value,
            rrl_config,
            rrl_allow,
            rrl_buckets,
            allow_installed: HashSet::new(),
            limited_seen: HashMap::new(),
            attached: Vec::new(),
        };
        Ok((program, Stats { counters, program_id }))
    }

    /// The sizes the answer maps were loaded with.
    pub fn sizes(&self) -> MapSizes {
        self.sizes
    }

    /// The answer maps, for the side that writes them from now on (update/; the refresh tests
    /// write them on another thread while this one runs the program). Once.
    pub fn take_response_maps(&mut self) -> Result<ResponseMaps, LoaderError> {
        self.response_maps.take().ok_or(LoaderError::Missing("the answer maps were handed out already"))
    }

    /// Attaches to `iface`; returns the mode used. `Auto` tries native and falls back to generic.
    pub fn attach(&mut self, iface: &str, mode: XdpModeChoice) -> Result<&'static str, LoaderError> {
        let program: &mut Xdp = self
            .ebpf
            .program_mut(PROG_NAME)
            .ok_or(LoaderError::Missing("no dns_xdp program"))?
            .try_into()
            .map_err(LoaderError::program("dns_xdp is not an XDP program"))?;
        let generic = || LoaderError::program(format!("attaching XDP (generic) to {iface}"));
        let used = match mode {
            XdpModeChoice::Native => {
                program
                    .attach(iface, XdpMode::Driver)
                    .map_err(LoaderError::program(format!("attaching XDP (native) to {iface}")))?;
                "native"
            }
            XdpModeChoice::Skb => {
                program.attach(iface, XdpMode::Skb).map_err(generic())?;
                "generic"
            }
            XdpModeChoice::Auto => match program.attach(iface, XdpMode::Driver) {
                Ok(_) => "native",
                Err(err) => {
                    log::warn!("native XDP on {iface} failed ({err}); falling back to generic (skb) mode");
                    program.attach(iface, XdpMode::Skb).map_err(generic())?;
                    "generic"
                }
            },
            XdpModeChoice::Off => return Err(LoaderError::Off),
        };
        self.attached.push(iface.to_string());
        Ok(used)
    }

    /// Lets the program answer from the maps.
    pub fn set_enabled(&mut self, dns_port: u16, edns_payload: u16, enabled: bool) -> Result<(), LoaderError> {
        self.write_config(XdpConfig { dns_port, edns_payload, enabled: enabled as u32, ..self.config_value })
    }

    /// Shadow validation: copy one answered query in `one_in` to SHADOW_RING (0: none).
    pub fn set_shadow_sample(&mut self, one_in: u32) -> Result<(), LoaderError> {
        self.write_config(XdpConfig { shadow_sample: one_in, ..self.config_value })
    }

    fn write_config(&mut self, value: XdpConfig) -> Result<(), LoaderError> {
        self.config.set(0, value, 0).map_err(LoaderError::map("writing CONFIG"))?;
        self.config_value = value;
        Ok(())
    }

    /// The ring of sampled XDP answers; taken once (the caller drains it).
    pub fn take_shadow_ring(&mut self) -> Result<ShadowRing, LoaderError> {
        let map =
            self.ebpf.take_map(MAP_SHADOW_RING).ok_or(LoaderError::Missing("no SHADOW_RING map (taken already?)"))?;
        let ring = RingBuf::try_from(map).map_err(LoaderError::map("SHADOW_RING is not a ring buffer"))?;
        // SAFETY: the RingBuf owns its map's fd and keeps it open, unchanged, for as long as it
        // lives, and the AsyncFd owns the RingBuf.
        let fd = unsafe { tokio::io::unix::AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) };
        let fd = fd.map_err(|err| LoaderError::Io { doing: "polling SHADOW_RING", err: err.into() })?;
        Ok(ShadowRing { fd })
    }

    /// Writes the rate-limiting settings and allowlist; takes effect at the next packet, with
    /// no reload of the program (buckets are kept).
    pub fn set_rrl(&mut self, rrl: &RrlSettings) -> Result<(), LoaderError> {
        let wanted: HashSet<_> = rrl.allow.iter().map(|c| c.trie_key()).collect();
        for (len, addr) in &wanted {
            self.rrl_allow
                .insert(&LpmKey::new(*len, *addr), 1, 0)
                .map_err(LoaderError::map("writing the RRL_ALLOW map (is it full?)"))?;
        }
        for (len, addr) in self.allow_installed.difference(&wanted) {
            self.rrl_allow
                .remove(&LpmKey::new(*len, *addr))
                .map_err(LoaderError::map("removing from the RRL_ALLOW map"))?;
        }
        self.allow_installed = wanted;
        self.rrl_config.set(0, rrl.kernel_config(), 0).map_err(LoaderError::map("writing RRL_CONFIG"))
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

    /// Runs the (loaded, not necessarily attached) program once on `frame` through
    /// BPF_PROG_TEST_RUN: returns the XDP action and the frame as the program left it.
    pub fn test_run(&self, frame: &[u8]) -> Result<(u32, Vec<u8>), LoaderError> {
        use aya::programs::{TestRun as _, TestRunOptions};
        let program: &Xdp = self
            .ebpf
            .program(PROG_NAME)
            .ok_or(LoaderError::Missing("no dns_xdp program"))?
            .try_into()
            .map_err(LoaderError::program("dns_xdp is not an XDP program"))?;
        // Room for the largest reply the program may grow the frame into.
        let mut out = vec![0u8; frame.len() + dns_xdp_common::MAX_RESPONSE_LEN + 512];
        let result = program
            .test_run(TestRunOptions {
                data_in: Some(frame),
                data_out: Some(&mut out),
                repeat: 1,
                ..Default::default()
            })
            .map_err(LoaderError::program("BPF_PROG_TEST_RUN"))?;
        out.truncate(result.data_size_out as usize);
        Ok((result.return_value, out))
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
