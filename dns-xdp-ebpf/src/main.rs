//! dns_xdp: answers DNS queries whose response the daemon precompiled into RESPONSES, straight from
//! the driver; passes everything else to the kernel stack (ARCHITECTURE.md section 4).
#![no_std]
#![no_main]
// The atomic intrinsics: core's AtomicU64 offers no fetch_add on bpfel (rrl.rs).
#![feature(core_intrinsics)]
#![expect(internal_features, reason = "core::intrinsics atomics, see rrl.rs")]

mod cursor;
mod dns;
mod headers;
mod hits;
mod l2l3;
mod maps;
mod respond;
mod rrl;
mod search;
mod shadow;
mod stats;

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};
use dns_xdp_common::{MAX_RESPONSE_LEN, RESPONSE_PASS, VALUE_FLAG_PASS, VALUE_FLAG_SIGNED, stat};

/// How a packet leaves the program when it is not answered.
#[derive(Clone, Copy)]
pub enum Exit {
    /// To the kernel stack, counted under this `stat::PASS_*` reason.
    Pass(u32),
    /// Broken and addressed to us, counted under this `stat::DROP_*` reason.
    Drop(u32),
    /// An invariant failed after the packet was modified: it must not go anywhere.
    Aborted,
    /// Over its rate limit: dropped, counted under this `stat::RRL_LIMITED_BASE + kind` slot.
    RateLimited(u32),
}

/// How an answered packet leaves.
#[derive(Clone, Copy)]
pub enum Sent {
    /// The precompiled answer, with this RCODE.
    Answer(u8),
    /// A TC=1 slip, counted under this `stat::RRL_LIMITED_BASE + kind` slot.
    Slip(u32),
}

#[xdp]
pub fn dns_xdp(ctx: XdpContext) -> u32 {
    // RX and ACTION_TX are derived by the readers (dns_xdp_common::stat::derive).
    match try_dns_xdp(&ctx) {
        Ok(Sent::Answer(rcode)) => {
            stats::inc(stat::TX_RCODE_BASE + u32::from(rcode & 0xf));
            xdp_action::XDP_TX
        }
        Ok(Sent::Slip(reason)) => {
            stats::inc(stat::ACTION_SLIP);
            stats::inc(reason);
            xdp_action::XDP_TX
        }
        Err(Exit::Pass(reason)) => {
            stats::inc(stat::ACTION_PASS);
            stats::inc(reason);
            xdp_action::XDP_PASS
        }
        Err(Exit::Drop(reason)) => {
            stats::inc(stat::ACTION_DROP);
            stats::inc(reason);
            xdp_action::XDP_DROP
        }
        Err(Exit::Aborted) => {
            stats::inc(stat::ACTION_ABORTED);
            xdp_action::XDP_ABORTED
        }
        Err(Exit::RateLimited(reason)) => {
            stats::inc(stat::ACTION_RATE_LIMITED);
            stats::inc(reason);
            xdp_action::XDP_DROP
        }
    }
}

/// Returns what reply was left in the packet, or how else the packet leaves.
#[inline(always)]
fn try_dns_xdp(ctx: &XdpContext) -> Result<Sent, Exit> {
    let config = maps::config().ok_or(Exit::Pass(stat::PASS_DISABLED))?;
    if config.enabled == 0 {
        return Err(Exit::Pass(stat::PASS_DISABLED));
    }
    let frame = l2l3::parse(ctx, config.dns_port)?;
    // Zeros (no limiting, no screening) until the daemon writes the settings.
    let rrl_config = maps::rrl_config().ok_or(Exit::Pass(stat::PASS_DISABLED))?;
    // Spoofs go before any DNS work.
    rrl::screen(ctx, &frame, rrl_config)?;
    let scratch = maps::scratch().ok_or(Exit::Pass(stat::PASS_DISABLED))?;
    let query = dns::parse(ctx, &frame, scratch)?;

    // Read again after the serial: a change of SERIALS in between could mix versions.
    let generation = maps::serial_gen();
    // An exact hit, found in the hit index; or the answer the records give: the query's own,
    // its name's type-independent one, or its closest encloser's answer for missing names
    // below it. The daemon chose what each name holds.
    let hit = hits::find(scratch, query.dnssec_ok as u32, query.qname_len as u32, config.hit_mask);
    if hit != hits::MISS {
        stats::inc(stat::TX_HIT);
    } else {
        match search::search(scratch, query.dnssec_ok as u32, query.qname_len as u32) {
            search::FOUND_DEFAULT => stats::inc(stat::TX_DEFAULT),
            search::FOUND_ENCLOSER => stats::inc(stat::TX_ENCLOSER),
            search::FOUND_EXACT => {}
            reason => return Err(Exit::Pass(reason)),
        }
    }
    // SAFETY: `scratch` is the per-CPU SCRATCH value; the index or the search left the response id in it.
    let (response_id, answer) = unsafe { ((*scratch).response_id, &raw mut (*scratch).response) };
    // Markers are not answers: the daemon decides (exists but not installed, qname-dependent).
    if response_id == RESPONSE_PASS {
        return Err(Exit::Pass(stat::PASS_MARKER));
    }
    // Gone meanwhile (a refresh freed it after the record was read): the daemon answers.
    if hit != hits::INLINE && !maps::load_response(response_id, answer) {
        return Err(Exit::Pass(stat::PASS_MISS));
    }
    // Answers carrying a SOA serial get the zone's current one.
    if !maps::patch_serial(answer) {
        return Err(Exit::Pass(stat::PASS_MISS));
    }
    if generation & 1 != 0 || maps::serial_gen() != generation {
        return Err(Exit::Pass(stat::PASS_MISS));
    }
    // SAFETY: as above; load_response filled it.
    let value = unsafe { &*answer };
    if value.value_flags & VALUE_FLAG_PASS != 0 {
        return Err(Exit::Pass(stat::PASS_MARKER));
    }
    let data_len = value.data_len as usize;
    // The daemon never stores more; a value claiming it is not ours to trust.
    if data_len > MAX_RESPONSE_LEN {
        return Err(Exit::Pass(stat::PASS_MISS));
    }
    // An unsigned answer to a DO=1 query for a signed zone would be wrong: the daemon adds RRSIGs.
    if value.value_flags & VALUE_FLAG_SIGNED != 0 && query.dnssec_ok {
        return Err(Exit::Pass(stat::PASS_DNSSEC));
    }
    // The daemon truncates (TC=1) what the client cannot take.
    // Same limit as the daemon (wire::udp_limit): the requestor's size capped by ours, never
    // below 512; capping avoids fragmented replies.
    let our_limit = core::cmp::max(config.edns_payload as usize, dns_xdp_common::MIN_UDP_PAYLOAD as usize);
    let limit = core::cmp::min(query.client_limit, our_limit);
    if respond::reply_len(&query, data_len) > limit {
        return Err(Exit::Pass(stat::PASS_TOO_BIG));
    }
    // Limited after the lookup: the response's kind and name are in the value. Whatever the
    // kernel passes, the daemon limits with the same settings and keys.
    let slip = match rrl::limit(ctx, &frame, &query, value, rrl_config)? {
        rrl::Verdict::Answer => 0,
        rrl::Verdict::Slip(reason) => reason + 1,
    };
    shadow::pick(ctx, &frame, &query, config, scratch);
    respond::stage(scratch, value, slip);
    respond::build(ctx, &frame, &query, value, config, scratch)?;
    // SAFETY: `scratch` is the per-CPU SCRATCH value; read back rather than kept in a register
    // so the two outcomes share one verifier path through the builder.
    let slip = unsafe { core::ptr::read_volatile(&raw const (*scratch).slip) };
    if slip != 0 {
        return Ok(Sent::Slip(slip - 1));
    }
    shadow::emit(scratch);
    Ok(Sent::Answer((value.flags & 0xf) as u8))
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
