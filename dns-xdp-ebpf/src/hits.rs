//! The hit index (`HITS`): an exact (name, type) hit found in one entry, without the record
//! lookup. Under load the program's main cost is memory: the record lookup reads a hash
//! bucket and the element's lines, and the answer another line, each likely a miss, one after
//! the other. An entry is two adjacent lines whose loads overlap, and holds no more than what
//! step 0 of `search` would find for the DO bits it serves (the answer id, and for the
//! smallest answers the answer itself), in either of two pairs; anything else (no entry, a
//! name too long for one, an entry being rewritten) takes the record lookup, which finds the
//! same.

use core::ptr::read_volatile;

use dns_xdp_common::{
    HIT_INLINE, HIT_MAX_NAME, HIT_NAME_WORDS, HIT_SERVES_DO, HIT_SERVES_PLAIN, HitEntry, Response, Scratch, hit_pairs,
};

use crate::maps::HITS;

/// 8-byte words of an inline answer (its entry's second line).
const RESPONSE44_WORDS: usize = core::mem::size_of::<Response<44>>() / 8;
const _: () = assert!(core::mem::size_of::<Response<44>>() % 8 == 0);

/// `find` results: not in the index, the answer id left in `scratch.response_id`, or the
/// answer itself also copied into `scratch.answer`.
pub const MISS: u32 = 0;
pub const ID: u32 = 1;
pub const INLINE: u32 = 2;

/// Looks for (`name`, `want`) in the entry at `index`; on a hit leaves the answer id (and an
/// inline answer) in `scratch`. Every read of the entry lies between two reads of `seq`: the
/// daemon rewrites entries in place (odd `seq` while it does), and x86 keeps loads in program
/// order (volatile reads, and a helper call the compiler cannot move them across).
#[inline(always)]
fn probe(index: u32, name: &[u64; HIT_NAME_WORDS], want: u32, scratch: *mut Scratch) -> u32 {
    let Some(e) = HITS.get_ptr(index) else { return MISS };
    let e: *const HitEntry = e;
    // SAFETY: an array element, valid for the program's run; `scratch` is the per-CPU SCRATCH
    // value, whose answer holds an Response<MAX_RESPONSE_LEN>, larger than the Response<44> copied.
    unsafe {
        let seq = read_volatile(&raw const (*e).seq);
        // The second line, read now so its miss overlaps the first's.
        let _ = read_volatile(&raw const (*e).value.data_len);
        if seq & 1 != 0 {
            return MISS;
        }
        let qtype_serves = read_volatile(&raw const (*e).qtype_serves);
        if qtype_serves & 0xffff != want & 0xffff || qtype_serves & want & !0xffff == 0 {
            return MISS;
        }
        let words = (&raw const (*e).name).cast::<u64>();
        for (i, w) in name.iter().enumerate() {
            if read_volatile(words.add(i)) != *w {
                return MISS;
            }
        }
        let answer = read_volatile(&raw const (*e).answer);
        let inline = read_volatile(&raw const (*e).flags) & HIT_INLINE != 0;
        if inline {
            // Word by word: a helper call costs more than the eight loads.
            let from = (&raw const (*e).value).cast::<u64>();
            let to = (&raw mut (*scratch).response).cast::<u64>();
            for i in 0..RESPONSE44_WORDS {
                to.add(i).write_unaligned(read_volatile(from.add(i)));
            }
        }
        if read_volatile(&raw const (*e).seq) != seq {
            return MISS;
        }
        (*scratch).response_id = answer;
        if inline { INLINE } else { ID }
    }
}

/// Looks the query in `scratch.key` (`qname_len` bytes) up in the hit index: `MISS`, `ID` or
/// `INLINE`. A BPF-to-BPF call: the caller's registers survive it, and its loops are verified
/// once. Inlined it would save 15-20 ns a hit (its return goes through the kernel's return
/// thunk), but verification then takes 850k instructions of the verifier's 1M.
#[inline(never)]
pub fn find(scratch: *mut Scratch, dnssec_ok: u32, qname_len: u32, mask: u32) -> u32 {
    if mask == 0 || qname_len as usize > HIT_MAX_NAME {
        return MISS;
    }
    // SAFETY: `scratch` is the per-CPU SCRATCH value; the key name is at its start (8-byte
    // aligned, zero past the name: dns.rs fill_key) and holds KEY_NAME_LEN >= HIT_MAX_NAME bytes.
    let (name, qtype) = unsafe {
        let words = (&raw const (*scratch).key.name).cast::<u64>();
        let mut name = [0u64; HIT_NAME_WORDS];
        for (i, w) in name.iter_mut().enumerate() {
            *w = *words.add(i);
        }
        (name, (*scratch).key.qtype)
    };
    let want = u32::from(qtype) | if dnssec_ok != 0 { HIT_SERVES_DO } else { HIT_SERVES_PLAIN };
    let [first, second] = hit_pairs(&name, qtype, mask);
    for at in [first, first | 1, second, second | 1] {
        let found = probe(at, &name, want, scratch);
        if found != MISS {
            return found;
        }
    }
    MISS
}
