//! The maps named in the ABI (`dns_xdp_common::MAP_*`). Userspace fills ANSWERS and CONFIG.

use aya_ebpf::{
    bindings::BPF_F_NO_PREALLOC,
    macros::map,
    maps::{Array, HashMap, PerCpuArray},
};
use dns_xdp_common::{ANSWERS_CAPACITY, AnswerKey, AnswerValue, Scratch, XdpConfig, stat};

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
