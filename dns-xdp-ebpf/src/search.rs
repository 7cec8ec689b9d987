//! Which precompiled answer serves the query: the query's own, the type-independent answer at
//! its name (`QTYPE_DEFAULT`), or, when the name does not exist, the answer its closest
//! encloser holds for names below it (`KEY_VARIANT_CHILD`). The daemon decided every answer;
//! this only finds it, walking from the qname towards the root one label at a time, one name
//! record lookup per step.

use dns_xdp_common::{
    KEY_NAME_LEN, KEY_VARIANT_CHILD, KEY_VARIANT_DO, MAX_KERNEL_NAME, MAX_RECORD_PARTS, MAX_WALK_STEPS, NAME_CLASSES,
    NameRecord, QTYPE_DEFAULT, RECORD_CHILD_PARTIAL, RECORD_MORE, RECORD_SIGNED, RECORD_SLOTS, RESPONSE_PASS, Scratch,
    stat,
};

use crate::maps;

/// `search` results that say how the answer was found; any other result is a pass reason.
pub const FOUND_EXACT: u32 = 1;
pub const FOUND_DEFAULT: u32 = 2;
pub const FOUND_ENCLOSER: u32 = 3;

/// RFC 6895 section 3.1: 128..=255 are meta and query types (IXFR, AXFR, ANY...), answered
/// only from slots of their own, never from a name's type-independent answer.
const META_FIRST: u16 = 128;
const META_LAST: u16 = 255;

/// A (QTYPE, variant) pair as one word, as `Slot` holds it.
#[inline(always)]
fn pair(qtype: u16, variant: u16) -> u32 {
    (qtype as u32) | ((variant as u32) << 16)
}

/// `find`'s answer when the pair is not in the record (no answer id has every bit set).
const NOT_FOUND: u32 = u32::MAX;

/// The answer one record part holds for `want`, or `NOT_FOUND`. Every slot is compared,
/// used or not: unused ones hold SLOT_UNUSED, which no want matches (a bound from `count`
/// would be one the verifier cannot follow).
#[inline(always)]
fn find_in(record: &NameRecord, want: u32) -> u32 {
    let slots = record.slots.as_ptr().cast::<u32>();
    for i in 0..RECORD_SLOTS {
        // SAFETY: a Slot is (qtype, variant, answer): its first word, read little-endian as
        // the program runs, is `pair(qtype, variant)`, its second the answer.
        let (p, answer) = unsafe { (*slots.add(2 * i), *slots.add(2 * i + 1)) };
        if p == want {
            return answer;
        }
    }
    NOT_FOUND
}

/// The answer the name's record holds for `want`, or `NOT_FOUND`: part 0 is in `*record`,
/// later parts are copied over it (their number written into the key at `found_name`, the
/// scratch `found` key holding the name, `len` bytes); part 0 is copied back after.
#[inline(never)]
fn find(record: *mut NameRecord, found_name: *mut u8, len: usize, want: u32) -> u32 {
    // SAFETY: `record` is the scratch record, `found_name` the scratch key's 256-byte name.
    unsafe {
        let answer = find_in(&*record, want);
        if answer != NOT_FOUND || (*record).flags & RECORD_MORE == 0 {
            return answer;
        }
        let at = maps::part_offset(len) & 0x1ff;
        let mut answer = NOT_FOUND;
        for part in 1..MAX_RECORD_PARTS as u32 {
            // `at` <= 256: the part number's bytes are the scratch key's qtype and variant.
            core::ptr::write_unaligned(found_name.add(at).cast::<u32>(), part);
            if !maps::record(found_name, len, record) {
                break;
            }
            answer = find_in(&*record, want);
            if answer != NOT_FOUND || (*record).flags & RECORD_MORE == 0 {
                break;
            }
        }
        core::ptr::write_unaligned(found_name.add(at).cast::<u32>(), 0);
        if !maps::record(found_name, len, record) {
            // Gone meanwhile: nothing more to find here.
            (*record).flags = 0;
            (*record).slots[0].variant = dns_xdp_common::SLOT_UNUSED;
        }
        answer
    }
}

/// Copies the key bytes a record lookup for a name of `len` bytes reads (its class size and
/// the part number after it: 32, 64, 128 or 256 bytes) from `src` to `dst`, the scratch
/// `found` name, eight bytes at a time: the helper copy of all 256 bytes it replaces cost
/// 40-50 ns, once per label step. Bytes past that stay as they were; no lookup of this class
/// reads them, and the largest class's part number (`found.qtype`, `found.variant`) is set
/// apart.
///
/// # Safety
/// `src` must have 256 readable bytes of scratch; `dst` is the scratch `found` name.
#[inline(always)]
unsafe fn copy_key(src: *const u8, dst: *mut u8, len: usize) {
    // One straight copy per class, not one loop with a variable end: the verifier would walk
    // every possible end at every label step.
    // SAFETY: the caller's promise; at most KEY_NAME_LEN bytes each.
    unsafe {
        if len <= NAME_CLASSES[0] {
            copy_words::<{ (NAME_CLASSES[0] + 4) / 8 }>(src, dst);
        } else if len <= NAME_CLASSES[1] {
            copy_words::<{ (NAME_CLASSES[1] + 4) / 8 }>(src, dst);
        } else if len <= NAME_CLASSES[2] {
            copy_words::<{ (NAME_CLASSES[2] + 4) / 8 }>(src, dst);
        } else {
            copy_words::<{ KEY_NAME_LEN / 8 }>(src, dst);
        }
    }
}

/// Copies `W` 8-byte words, unaligned (single instructions: dns-xdp-ebpf/build.rs).
///
/// # Safety
/// `W * 8` bytes must be readable at `src` and writable at `dst`.
#[inline(always)]
unsafe fn copy_words<const W: usize>(src: *const u8, dst: *mut u8) {
    for i in 0..W {
        // SAFETY: the caller's promise.
        unsafe { dst.add(8 * i).cast::<u64>().write_unaligned(src.add(8 * i).cast::<u64>().read_unaligned()) };
    }
}

/// Leaves in `scratch.response_id` the id of the answer to the query and returns `FOUND_*`, or
/// returns the `stat::PASS_*` reason to pass. `scratch.key` holds the query's key and
/// `qname_len` its name's length.
///
/// A BPF-to-BPF call, not inlined: its arguments are the same on every frame shape (VLAN tags x
/// IPv4/IPv6 x EDNS), so its loops cost the verifier little, and the caller's registers (frame
/// offsets) survive it untouched.
#[inline(never)]
pub fn search(scratch: *mut Scratch, dnssec_ok: u32, qname_len: u32) -> u32 {
    let qname_len = qname_len as usize;
    if qname_len == 0 || qname_len > MAX_KERNEL_NAME {
        return stat::PASS_MISS;
    }
    // SAFETY: `scratch` is the per-CPU SCRATCH value, valid for the whole run. The copies are
    // between fields of it, at most KEY_NAME_LEN bytes inside each field: `found` is an
    // ResponseKey, and `walk_name` holds 2 * KEY_NAME_LEN bytes, so a KEY_NAME_LEN copy from any
    // offset masked to 0..=255 stays inside it.
    unsafe {
        let found_name = (*scratch).found.name.as_mut_ptr();
        let key = &raw const (*scratch).key;
        let qtype = (*key).qtype;
        let meta = (META_FIRST..=META_LAST).contains(&qtype);
        let dnssec = if dnssec_ok != 0 { KEY_VARIANT_DO } else { 0 };

        // Step 0, the name itself: its own answer for the type, then its type-independent one.
        copy_key(key.cast(), found_name, qname_len);
        // The largest class's keys run 4 bytes past the name: the part number, 0.
        (*scratch).found.qtype = 0;
        (*scratch).found.variant = 0;
        let record = &raw mut (*scratch).record;
        if maps::record(found_name, qname_len, record) {
            let mut answer = find(record, found_name, qname_len, pair(qtype, dnssec));
            if answer == NOT_FOUND && dnssec != 0 {
                answer = find(record, found_name, qname_len, pair(qtype, 0));
            }
            if answer != NOT_FOUND {
                (*scratch).response_id = answer;
                return FOUND_EXACT;
            }
            if !meta {
                answer = find(record, found_name, qname_len, pair(QTYPE_DEFAULT, dnssec));
                if answer == NOT_FOUND && dnssec != 0 {
                    answer = find(record, found_name, qname_len, pair(QTYPE_DEFAULT, 0));
                }
                if answer != NOT_FOUND {
                    (*scratch).response_id = answer;
                    return FOUND_DEFAULT;
                }
            }
            // The name exists but holds no answer for this type here (hot set, or an answer
            // that depends on more than the question): never answer it as missing.
            if find(record, found_name, qname_len, pair(QTYPE_DEFAULT, KEY_VARIANT_CHILD)) != NOT_FOUND {
                return stat::PASS_MARKER;
            }
        }

        // The name has no record of its own. Its suffixes come out of walk_name zero-padded
        // (the bytes after the first KEY_NAME_LEN are never written).
        let walk = (*scratch).walk_name.as_mut_ptr();
        // All 256 bytes: a suffix is only zero-padded if no longer name's bytes linger.
        copy_words::<{ KEY_NAME_LEN / 8 }>(key.cast(), walk);
        let mut off = 0usize;
        for _ in 0..MAX_WALK_STEPS {
            let len = *walk.add(off & 0xff) as usize;
            if len == 0 {
                // Walked to the root: no zone of ours holds the name.
                return stat::PASS_MISS;
            }
            off += len + 1;
            let src = walk.add(off & 0xff);
            let suffix_len = qname_len.saturating_sub(off);
            copy_key(src, found_name, suffix_len);
            if !maps::record(found_name, suffix_len, record) {
                continue;
            }
            // Only a name with an existence marker counts as existing. The marker leads part 0.
            let marker = find_in(&*record, pair(QTYPE_DEFAULT, KEY_VARIANT_CHILD));
            if marker == NOT_FOUND {
                continue;
            }
            // A pass marker: the daemon decides everything below (answers that depend on the
            // qname, or a refresh rewriting them).
            if marker == RESPONSE_PASS {
                return stat::PASS_MARKER;
            }
            // A signed zone's answers to DO=1 queries carry proofs: their own slots. They sit
            // in part 0 (the daemon puts them right after the marker, and sets
            // RECORD_CHILD_PARTIAL when they do not all fit).
            let record = &*record;
            let variant = if dnssec != 0 && record.flags & RECORD_SIGNED != 0 {
                KEY_VARIANT_CHILD | KEY_VARIANT_DO
            } else {
                KEY_VARIANT_CHILD
            };
            let mut answer = find_in(record, pair(qtype, variant));
            if answer == NOT_FOUND && record.flags & RECORD_CHILD_PARTIAL != 0 {
                return stat::PASS_MARKER;
            }
            if answer == NOT_FOUND && !meta {
                answer = find_in(record, pair(QTYPE_DEFAULT, variant));
            }
            if answer == NOT_FOUND {
                return stat::PASS_MARKER;
            }
            (*scratch).response_id = answer;
            return FOUND_ENCLOSER;
        }
        stat::PASS_MISS
    }
}
