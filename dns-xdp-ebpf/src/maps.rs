//! The maps named in the ABI (`dns_xdp_common::MAP_*`). Userspace fills the NAMES and RESPONSES
//! maps and CONFIG.

use aya_ebpf::{
    bindings::{BPF_F_MMAPABLE, BPF_F_NO_PREALLOC},
    helpers::generated::bpf_probe_read_kernel,
    macros::map,
    maps::{Array, HashMap, LpmTrie, LruHashMap, PerCpuArray, RingBuf},
};
use dns_xdp_common::{
    ANSWERS_CAPACITY, HitEntry, MAX_RESPONSE_LEN, NAME_CLASSES, NameKey, NameRecord, RESPONSE_CLASS_SHIFT,
    RRL_ALLOW_CAPACITY, RRL_ALLOW_KEY_LEN, RRL_BUCKETS_CAPACITY, Response, ResponseValue, RrlBucket, RrlConfig, RrlKey,
    SERIAL_SLOTS, SHADOW_RING_BYTES, Scratch, VALUE_SERIAL_SLOT_SHIFT, XdpConfig, stat,
};

// Name records, one map per name length class (NAME_CLASSES), and answers, one map per size
// class (RESPONSE_CLASSES). Userspace sizes them at load time (`--answers-capacity`).
//
// `BPF_F_NO_PREALLOC`: an update allocates a new element and frees the old one after an RCU
// grace period, so a reader never sees a value half-replaced by userspace. Answers are not
// rewritten under the same id except the shared negative answers, which are replaced whole; an
// id names another answer only once its old one is deleted and a second has passed, far past any
// reader of a record that pointed at it (userspace store.rs, ID_QUARANTINE).

#[map]
pub static NAMES28: HashMap<NameKey<28>, NameRecord> =
    HashMap::with_max_entries(ANSWERS_CAPACITY, BPF_F_NO_PREALLOC as u32);
#[map]
pub static NAMES60: HashMap<NameKey<60>, NameRecord> =
    HashMap::with_max_entries(ANSWERS_CAPACITY, BPF_F_NO_PREALLOC as u32);
#[map]
pub static NAMES124: HashMap<NameKey<124>, NameRecord> =
    HashMap::with_max_entries(ANSWERS_CAPACITY, BPF_F_NO_PREALLOC as u32);
#[map]
pub static NAMES256: HashMap<NameKey<256>, NameRecord> =
    HashMap::with_max_entries(ANSWERS_CAPACITY, BPF_F_NO_PREALLOC as u32);

/// The smallest answers, most of them (A, AAAA): an array indexed by id, read without a hash.
/// Its elements are written in place, which is safe because an id is written before any record
/// points at it and not again while one may (store.rs, ID_QUARANTINE); the in-place serial
/// rewrites of zones without a SERIALS slot happen under SERIAL_GEN, whose readers pass.
#[map]
pub static RESPONSES44: Array<Response<44>> = Array::with_max_entries(ANSWERS_CAPACITY, 0);
#[map]
pub static RESPONSES108: HashMap<u32, Response<108>> =
    HashMap::with_max_entries(ANSWERS_CAPACITY, BPF_F_NO_PREALLOC as u32);
#[map]
pub static RESPONSES172: HashMap<u32, Response<172>> =
    HashMap::with_max_entries(ANSWERS_CAPACITY, BPF_F_NO_PREALLOC as u32);
#[map]
pub static RESPONSES428: HashMap<u32, Response<428>> =
    HashMap::with_max_entries(ANSWERS_CAPACITY, BPF_F_NO_PREALLOC as u32);
#[map]
pub static RESPONSES1008: HashMap<u32, ResponseValue> =
    HashMap::with_max_entries(ANSWERS_CAPACITY, BPF_F_NO_PREALLOC as u32);

/// The hit index (dns_xdp_common::MAP_HITS), written by the daemon through its mapping of the
/// array; sized at load time, a power of two (`XdpConfig::hit_mask`).
#[map]
pub static HITS: Array<HitEntry> = Array::with_max_entries(1024, BPF_F_MMAPABLE);

/// The zones' SOA serials, written into answers that carry one (`Answer::serial_at`).
#[map]
pub static SERIALS: Array<u32> = Array::with_max_entries(SERIAL_SLOTS, 0);

/// Odd while the daemon changes SERIALS (dns_xdp_common::MAP_SERIAL_GEN).
#[map]
pub static SERIAL_GEN: Array<u32> = Array::with_max_entries(1, 0);

/// SERIAL_GEN now; u32::MAX (odd: pass) if it cannot be read.
#[inline(always)]
pub fn serial_gen() -> u32 {
    match SERIAL_GEN.get_ptr(0) {
        // SAFETY: an array element, valid for the program's run; volatile so the compiler keeps
        // both reads where they are.
        Some(p) => unsafe { core::ptr::read_volatile(p) },
        None => u32::MAX,
    }
}

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

/// Copies the record part whose key starts at `key` (a name of `len` bytes zero-padded to its
/// class size, followed by the part number) into `dst`; false if there is none. `key` must
/// point into a map value (the per-CPU scratch) with at least 256 readable bytes. A copy,
/// not a pointer: a pointer's type would be one of four maps, and the verifier would walk
/// everything after once per map.
#[inline(always)]
pub fn record(key: *const u8, len: usize, dst: *mut NameRecord) -> bool {
    // SAFETY: the maps are BPF_F_NO_PREALLOC, so an element stays whole and alive for this RCU
    // read section even if userspace replaces or deletes it meanwhile. The key casts read the
    // class's key size from `key`, within the 256 bytes the caller guarantees; `dst` holds a
    // NameRecord.
    unsafe {
        let found = if len <= NAME_CLASSES[0] {
            NAMES28.get(&*key.cast::<NameKey<28>>())
        } else if len <= NAME_CLASSES[1] {
            NAMES60.get(&*key.cast::<NameKey<60>>())
        } else if len <= NAME_CLASSES[2] {
            NAMES124.get(&*key.cast::<NameKey<124>>())
        } else if len <= NAME_CLASSES[3] {
            NAMES256.get(&*key.cast::<NameKey<256>>())
        } else {
            None
        };
        match found {
            Some(r) => {
                bpf_probe_read_kernel(
                    dst.cast(),
                    core::mem::size_of::<NameRecord>() as u32,
                    (r as *const NameRecord).cast(),
                ) == 0
            }
            None => false,
        }
    }
}

/// The byte offset of the part number in a key for a name of `len` bytes (its class size).
#[inline(always)]
pub fn part_offset(len: usize) -> usize {
    if len <= NAME_CLASSES[0] {
        NAME_CLASSES[0]
    } else if len <= NAME_CLASSES[1] {
        NAME_CLASSES[1]
    } else if len <= NAME_CLASSES[2] {
        NAME_CLASSES[2]
    } else {
        NAME_CLASSES[3]
    }
}

/// Copies one answer of class `N` into `dst`; false if it is gone or claims more data than
/// its class holds.
#[inline(always)]
fn copy<const N: usize>(found: Option<&Response<N>>, dst: *mut ResponseValue) -> bool {
    let Some(answer) = found else { return false };
    if answer.data_len as usize > N {
        return false;
    }
    // SAFETY: `dst` is the scratch answer (an Response<MAX_RESPONSE_LEN>, N <= MAX_RESPONSE_LEN) and
    // `answer` a live map element of size_of::<Response<N>>() bytes; both layouts agree up to N.
    unsafe {
        bpf_probe_read_kernel(
            dst.cast(),
            core::mem::size_of::<Response<N>>() as u32,
            (answer as *const Response<N>).cast(),
        ) == 0
    }
}

/// Copies the answer `id` names into `dst` (the scratch answer); false if there is none.
#[inline(always)]
pub fn load_response(id: u32, dst: *mut ResponseValue) -> bool {
    // SAFETY: as in `record`.
    unsafe {
        match id >> RESPONSE_CLASS_SHIFT {
            0 => copy(RESPONSES44.get(id), dst),
            1 => copy(RESPONSES108.get(&id), dst),
            2 => copy(RESPONSES172.get(&id), dst),
            3 => copy(RESPONSES428.get(&id), dst),
            4 => copy(RESPONSES1008.get(&id), dst),
            _ => false,
        }
    }
}

/// Writes its zone's current SOA serial into an answer that carries one (`serial_at` nonzero) and
/// fixes `data_csum` to match (RFC 1624: add the complement of the old words and the new ones).
/// False if the answer claims a serial outside its data.
#[inline(always)]
pub fn patch_serial(answer: *mut ResponseValue) -> bool {
    // SAFETY: `answer` is the scratch answer; `at + 4 <= MAX_RESPONSE_LEN` bounds the accesses.
    unsafe {
        let at = (*answer).serial_at as usize;
        if at == 0 {
            return true;
        }
        if at > MAX_RESPONSE_LEN - 4 || at + 4 > (*answer).data_len as usize {
            return false;
        }
        let slot = u32::from((*answer).value_flags >> VALUE_SERIAL_SLOT_SHIFT);
        let Some(serial) = SERIALS.get(slot) else { return false };
        let new = serial.to_be_bytes();
        let p = (*answer).data.as_mut_ptr().add(at);
        let old = [*p, *p.add(1), *p.add(2), *p.add(3)];
        *p = new[0];
        *p.add(1) = new[1];
        *p.add(2) = new[2];
        *p.add(3) = new[3];
        // The four bytes' share of the big-endian word sum; at an odd offset every byte sits in
        // the other half of its word, which byte-swaps the share.
        let share = |b: [u8; 4]| -> u64 {
            let even = crate::respond::fold(
                u64::from(u16::from_be_bytes([b[0], b[1]])) + u64::from(u16::from_be_bytes([b[2], b[3]])),
            );
            u64::from(if at & 1 == 0 { even } else { even.swap_bytes() })
        };
        let sum = u64::from((*answer).data_csum) + (0xffff - share(old)) + share(new);
        (*answer).data_csum = crate::respond::fold(sum);
        true
    }
}
