//! Which precompiled answer serves the query: the query's own key, the type-independent answer
//! at its name (`QTYPE_DEFAULT`), or, when the name does not exist, the answer its closest
//! encloser holds for names below it (`KEY_VARIANT_CHILD`). The daemon decided every answer;
//! this only finds the key, walking from the qname towards the root one label at a time.

use aya_ebpf::helpers::generated::bpf_probe_read_kernel;
use dns_xdp_common::{
    AnswerKey, KEY_NAME_LEN, KEY_VARIANT_CHILD, KEY_VARIANT_DO, MAX_WALK_STEPS, QTYPE_DEFAULT, Scratch,
    VALUE_FLAG_PASS, VALUE_FLAG_SIGNED, stat,
};

use crate::maps;

/// `resolve` results that say how the key was found; any other result is a pass reason.
pub const FOUND_EXACT: u32 = 1;
pub const FOUND_DEFAULT: u32 = 2;
pub const FOUND_ENCLOSER: u32 = 3;

/// RFC 6895 section 3.1: 128..=255 are meta and query types (IXFR, AXFR, ANY...), answered
/// only from keys of their own, never from a name's type-independent answer.
const META_FIRST: u16 = 128;
const META_LAST: u16 = 255;

/// Whether ANSWERS holds `found` with this type and variant (left set in `found`).
#[inline(always)]
fn probe(found: *mut AnswerKey, qtype: u16, variant: u16) -> bool {
    // SAFETY: `found` points into the per-CPU SCRATCH value, valid for the whole run.
    unsafe {
        (*found).qtype = qtype;
        (*found).variant = variant;
        maps::answer(&*found).is_some()
    }
}

/// Leaves in `scratch.found` the key whose value answers the query and returns `FOUND_*`, or
/// returns the `stat::PASS_*` reason to pass. `scratch.key` is left as the query's key.
///
/// A BPF-to-BPF call, not inlined: its arguments are the same on every frame shape (VLAN tags x
/// IPv4/IPv6 x EDNS), so its loop costs the verifier little, and the caller's registers (frame
/// offsets) survive it untouched.
#[inline(never)]
pub fn resolve(scratch: *mut Scratch, dnssec_ok: u32) -> u32 {
    // SAFETY: `scratch` is the per-CPU SCRATCH value, valid for the whole run. The helper
    // copies are between fields of it, with constant sizes inside each field: `found` is an
    // AnswerKey, and `walk_name` holds 2 * KEY_NAME_LEN bytes, so a KEY_NAME_LEN copy from any
    // offset masked to 0..=255 stays inside it.
    unsafe {
        let found = &raw mut (*scratch).found;
        let key = &raw const (*scratch).key;
        if bpf_probe_read_kernel(found.cast(), core::mem::size_of::<AnswerKey>() as u32, key.cast()) != 0 {
            return stat::PASS_MISS;
        }
        let qtype = (*key).qtype;
        let dnssec = if dnssec_ok != 0 { KEY_VARIANT_DO } else { 0 };
        if probe(found, qtype, dnssec) || (dnssec != 0 && probe(found, qtype, 0)) {
            return FOUND_EXACT;
        }
        let meta = (META_FIRST..=META_LAST).contains(&qtype);
        if !meta && (probe(found, QTYPE_DEFAULT, dnssec) || (dnssec != 0 && probe(found, QTYPE_DEFAULT, 0))) {
            return FOUND_DEFAULT;
        }

        // The name has no answer of its own. Its suffixes come out of walk_name zero-padded
        // (the bytes after the first KEY_NAME_LEN are never written).
        let walk = (*scratch).walk_name.as_mut_ptr();
        if bpf_probe_read_kernel(walk.cast(), KEY_NAME_LEN as u32, key.cast()) != 0 {
            return stat::PASS_MISS;
        }
        let mut off = 0usize;
        // Step 0 is the qname itself: a marker there means it exists but its answer for this
        // type is not installed (hot set) - never answer it as missing. Then one label less
        // per step, up to MAX_WALK_STEPS.
        for step in 0..=MAX_WALK_STEPS {
            if step > 0 {
                let src = walk.add(off & 0xff);
                if bpf_probe_read_kernel(found.cast(), KEY_NAME_LEN as u32, src.cast()) != 0 {
                    return stat::PASS_MISS;
                }
            }
            (*found).qtype = QTYPE_DEFAULT;
            (*found).variant = KEY_VARIANT_CHILD;
            if let Some(marker) = maps::answer(&*found) {
                // Step 0: the name exists. A pass marker: the daemon decides everything below
                // (its answers depend on the qname, or a refresh is rewriting them).
                if step == 0 || marker.value_flags & VALUE_FLAG_PASS != 0 {
                    return stat::PASS_MARKER;
                }
                // A signed zone's answers to DO=1 queries carry proofs: their own keys.
                let variant = if dnssec != 0 && marker.value_flags & VALUE_FLAG_SIGNED != 0 {
                    KEY_VARIANT_CHILD | KEY_VARIANT_DO
                } else {
                    KEY_VARIANT_CHILD
                };
                if probe(found, qtype, variant) || (!meta && probe(found, QTYPE_DEFAULT, variant)) {
                    return FOUND_ENCLOSER;
                }
                return stat::PASS_MARKER;
            }
            let len = *walk.add(off & 0xff) as usize;
            if len == 0 {
                // Walked to the root: no zone of ours holds the name.
                return stat::PASS_MISS;
            }
            off += len + 1;
        }
        stat::PASS_MISS
    }
}
