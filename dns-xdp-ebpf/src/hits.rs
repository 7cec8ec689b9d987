//! The hit index (`HITS`): an exact (name, type) hit found in one cache line, without the
//! record lookup. Under load the record lookup is the program's main cost: a hash bucket and
//! the element's lines, each likely a cache miss. An entry holds no more than the answer id
//! step 0 of `resolve` would find, for the DO bits it serves; anything else (no entry, a
//! name too long for one, an entry being rewritten) takes the record lookup, which finds the
//! same.

use core::ptr::read_volatile;

use dns_xdp_common::{HIT_MAX_NAME, HIT_NAME_WORDS, HIT_SERVES_DO, HIT_SERVES_PLAIN, HitEntry, Scratch, hit_pair};

use crate::maps::HITS;

/// Whether the entry at `index` holds (`name`, `want`); its answer id if so. Every field is
/// read volatile between two reads of `seq`: the daemon rewrites entries in place (odd `seq`
/// while it does), and x86 keeps loads in program order.
#[inline(always)]
fn probe(index: u32, name: &[u64; HIT_NAME_WORDS], want: u32) -> Option<u32> {
    let e: *const HitEntry = HITS.get_ptr(index)?;
    // SAFETY: an array element, valid for the program's run.
    unsafe {
        let seq = read_volatile(&raw const (*e).seq);
        if seq & 1 != 0 {
            return None;
        }
        let qtype_serves = read_volatile(&raw const (*e).qtype_serves);
        if qtype_serves & 0xffff != want & 0xffff || qtype_serves & want & !0xffff == 0 {
            return None;
        }
        let words = (&raw const (*e).name).cast::<u64>();
        for (i, w) in name.iter().enumerate() {
            if read_volatile(words.add(i)) != *w {
                return None;
            }
        }
        let answer = read_volatile(&raw const (*e).answer);
        if read_volatile(&raw const (*e).seq) != seq {
            return None;
        }
        Some(answer)
    }
}

/// The answer id the hit index holds for the query in `scratch.key` (`qname_len` bytes), or
/// None. A BPF-to-BPF call: the caller's registers survive it, and its loops are verified once.
#[inline(never)]
pub fn find(scratch: *mut Scratch, dnssec_ok: u32, qname_len: u32, mask: u32) -> u32 {
    if mask == 0 || qname_len as usize > HIT_MAX_NAME {
        return NONE;
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
    let first = hit_pair(&name, qtype, mask);
    match probe(first, &name, want) {
        Some(answer) => answer,
        None => probe(first | 1, &name, want).unwrap_or(NONE),
    }
}

/// `find`'s miss: no answer id has every bit set.
pub const NONE: u32 = u32::MAX;
