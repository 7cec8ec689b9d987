//! xdp_count: the client end of `cargo xtask bench`'s own load generator (xtask/src/bench/xdpgen/).
//! Counts every DNS reply that reaches the client veth in per-CPU slots and drops it, so replies/s
//! is counted in the kernel at any rate; passes a sample (the DNS ID ANDed with the configured mask
//! is zero) to the stack, where the generator checks each against the query it sent and times it.
//! Everything else passes: the servers need ARP and neighbour discovery to reach the client.

use aya_ebpf::{
    bindings::xdp_action,
    macros::{map, xdp},
    maps::{Array, PerCpuArray},
    programs::XdpContext,
};
use dns_xdp_common::count;
use dns_xdp_common::dns::FLAG_QR;

use crate::cursor;
use crate::headers::UDP_HLEN;
use crate::plain::{self, DNS_PORT, DnsIdFlags};

/// `count::REPLIES`, `count::SAMPLED`, `count::OTHER`.
#[map]
static COUNTS: PerCpuArray<u64> = PerCpuArray::with_max_entries(count::SLOTS, 0);
/// Slot 0: the sample mask (host order); 0 passes every reply.
#[map]
static COUNT_CONFIG: Array<u32> = Array::with_max_entries(1, 0);

#[xdp]
pub fn xdp_count(ctx: XdpContext) -> u32 {
    match reply_id(&ctx) {
        Some(id) => {
            inc(count::REPLIES);
            let mask = COUNT_CONFIG.get(0).copied().unwrap_or(0);
            if u32::from(id) & mask == 0 {
                inc(count::SAMPLED);
                xdp_action::XDP_PASS
            } else {
                xdp_action::XDP_DROP
            }
        }
        None => {
            inc(count::OTHER);
            xdp_action::XDP_PASS
        }
    }
}

/// The DNS ID of a plain UDP datagram from the DNS port with QR set.
#[inline(always)]
fn reply_id(ctx: &XdpContext) -> Option<u16> {
    let p = plain::udp(ctx)?;
    let dns: *mut DnsIdFlags = cursor::ptr_at(ctx, p.l4_off + UDP_HLEN)?;
    // SAFETY: bounds checked by ptr_at (here and in plain::udp).
    let (source, id, flags) = unsafe {
        (u16::from_be_bytes((*p.udp).source), u16::from_be_bytes((*dns).id), u16::from_be_bytes((*dns).flags))
    };
    (source == DNS_PORT && flags & FLAG_QR != 0).then_some(id)
}

#[inline(always)]
fn inc(index: u32) {
    if let Some(slot) = COUNTS.get_ptr_mut(index) {
        // SAFETY: a per-CPU array slot is private to this CPU while the program runs.
        unsafe { *slot += 1 };
    }
}
