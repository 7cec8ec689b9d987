//! The maps named in the ABI (`dns_xdp_common::MAP_*`). Userspace fills ANSWERS and CONFIG.

use aya_ebpf::{
    bindings::BPF_F_NO_PREALLOC,
    macros::map,
    maps::{Array, HashMap, LpmTrie, LruHashMap, PerCpuArray, RingBuf},
};
use dns_xdp_common::{
    ANSWERS_CAPACITY, AnswerKey, AnswerValue, RRL_ALLOW_CAPACITY, RRL_ALLOW_KEY_LEN, RRL_BUCKETS_CAPACITY, RrlBucket,
    RrlConfig, RrlKey, SHADOW_RING_BYTES, Scratch, XdpConfig, stat,
};

/// Precompiled answers. `BPF_F_NO_PREALLOC`: an update allocates a new element and frees the old
/// one after an RCU grace period, so a reader never sees a value half-replaced by userspace.
#[map]
pub static ANSWERS: HashMap<AnswerKey, AnswerValue> =
    HashMap::with_max_entries(ANSWERS_CAPACITY, BPF_F_NO_PREALLOC as u32);

#[map]
pub static CONFIG: Array<XdpConfig> = Array::with_max_entries(1, 0);

#[map]
pub static STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(stat::COUNT, 0);

/// Per-CPU room for the key and the raw qname: too big for the 512-byte BPF stack.
#[map]
pub static SCRATCH: PerCpuArray<Scratch> = PerCpuArray::with_max_entries(1, 0);

/// Rate-limiting settings, rewritten live by the daemon; all zeros until it does (no limiting).
#[map]
pub static RRL_CONFIG: Array<RrlConfig> = Array::with_max_entries(1, 0);

/// One bucket per (client prefix, response kind and name), shared by all CPUs. LRU: when full,
/// the least recently used bucket goes, and a bucket not used lately holds its full budget.
#[map]
pub static RRL_BUCKETS: LruHashMap<RrlKey, RrlBucket> = LruHashMap::with_max_entries(RRL_BUCKETS_CAPACITY, 0);

/// Client prefixes never limited (IPv4 as IPv4-mapped IPv6); the value is unused.
#[map]
pub static RRL_ALLOW: LpmTrie<[u8; RRL_ALLOW_KEY_LEN], u32> = LpmTrie::with_max_entries(RRL_ALLOW_CAPACITY, 0);

/// Sampled XDP answers for shadow validation (`Scratch` records); the daemon drains it.
#[map]
pub static SHADOW_RING: RingBuf = RingBuf::with_byte_size(SHADOW_RING_BYTES, 0);

#[inline(always)]
pub fn rrl_config() -> Option<&'static RrlConfig> {
    RRL_CONFIG.get(0)
}

#[inline(always)]
pub fn config() -> Option<&'static XdpConfig> {
    CONFIG.get(0)
}

#[inline(always)]
pub fn scratch() -> Option<*mut Scratch> {
    SCRATCH.get_ptr_mut(0)
}

/// The answer for the key in `scratch`, if any.
#[inline(always)]
pub fn answer(key: &AnswerKey) -> Option<&'static AnswerValue> {
    // SAFETY: ANSWERS is BPF_F_NO_PREALLOC, so the element stays whole and alive for this RCU
    // read section even if userspace replaces or deletes it meanwhile.
    unsafe { ANSWERS.get(key) }
}
