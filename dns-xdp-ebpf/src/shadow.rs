//! Shadow validation (issue 8): a random sample of the answers XDP sends is copied to
//! SHADOW_RING, so the daemon can ask a reference server the same question and compare.
//!
//! Kept cheap and off the reply's path: the pick (one prandom draw when sampling is on) and the
//! client's address go into the per-CPU scratch before the reply is built; after a successful
//! build the scratch's first SHADOW_RECORD_LEN bytes go to bpf_ringbuf_output in one helper call
//! (no copy loop for the verifier to walk). A full ring loses the sample, never the reply.
//! Costs about 13k of the verifier's processed instructions.

use aya_ebpf::{helpers::bpf_get_prandom_u32, programs::XdpContext};
use dns_xdp_common::{SHADOW_EDNS_DO, SHADOW_EDNS_PRESENT, SHADOW_RECORD_LEN, Scratch, ShadowSample, XdpConfig, stat};

use crate::{
    cursor,
    dns::Query,
    headers::{Ipv4Hdr, Ipv6Hdr, UdpHdr},
    l2l3::Frame,
    maps::SHADOW_RING,
    stats,
};

/// Decides whether this query is sampled and, if so, notes who asked and how in `scratch`.
/// Must run before the reply overwrites the addresses.
#[inline(always)]
pub fn pick(ctx: &XdpContext, frame: &Frame, query: &Query, config: &XdpConfig, scratch: *mut Scratch) {
    let rate = config.shadow_sample;
    // The outcome goes through memory, not a register, so the verifier walks the reply builder
    // once rather than once per sampling outcome.
    // SAFETY: bpf_get_prandom_u32 has no preconditions.
    if rate == 0 || unsafe { bpf_get_prandom_u32() } % rate != 0 {
        return unpick(scratch);
    }
    let mut s = ShadowSample {
        picked: 1,
        family: 4,
        client_addr: [0; 16],
        client_port: 0,
        query_flags: query.flags,
        edns_payload: if query.edns { query.client_limit as u16 } else { 0 },
        edns_flags: if query.edns { SHADOW_EDNS_PRESENT } else { 0 } | if query.dnssec_ok { SHADOW_EDNS_DO } else { 0 },
        qname_len: query.qname_len as u16,
        _pad: 0,
    };
    if frame.ipv6 {
        let Some(ip) = cursor::ptr_at::<Ipv6Hdr>(ctx, frame.l3_off) else { return unpick(scratch) };
        s.family = 6;
        // SAFETY: bounds checked by ptr_at.
        s.client_addr = unsafe { (*ip).saddr };
    } else {
        let Some(ip) = cursor::ptr_at::<Ipv4Hdr>(ctx, frame.l3_off) else { return unpick(scratch) };
        // SAFETY: bounds checked by ptr_at.
        let a = unsafe { (*ip).saddr };
        s.client_addr[..4].copy_from_slice(&a);
    }
    let Some(udp) = cursor::ptr_at::<UdpHdr>(ctx, frame.l4_off) else { return unpick(scratch) };
    // SAFETY: bounds checked by ptr_at.
    s.client_port = u16::from_be_bytes(unsafe { (*udp).source });
    // SAFETY: `scratch` is the per-CPU SCRATCH value, valid for the whole run.
    unsafe { (*scratch).shadow = s };
}

#[inline(always)]
fn unpick(scratch: *mut Scratch) {
    // SAFETY: `scratch` is the per-CPU SCRATCH value.
    unsafe { (*scratch).shadow.picked = 0 };
}

/// After a successful build of an answer: sends the scratch of a picked query to SHADOW_RING.
#[inline(always)]
pub fn emit(scratch: *mut Scratch) {
    // SAFETY: `scratch` is the per-CPU SCRATCH value; read back from memory (see `pick`).
    if unsafe { core::ptr::read_volatile(&raw const (*scratch).shadow.picked) } == 0 {
        return;
    }
    // SAFETY: as above, and Scratch is at least SHADOW_RECORD_LEN bytes (asserted in the ABI
    // crate); the ring copies the bytes before this returns.
    let record = unsafe { &*scratch.cast::<[u8; SHADOW_RECORD_LEN]>() };
    match SHADOW_RING.output::<[u8; SHADOW_RECORD_LEN]>(record, 0) {
        Ok(()) => stats::inc(stat::SHADOW_SAMPLED),
        Err(_) => stats::inc(stat::SHADOW_RING_FULL),
    }
}
