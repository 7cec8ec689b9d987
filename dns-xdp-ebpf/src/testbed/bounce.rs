//! xdp_bounce: the test bed's XDP_TX ceiling. Sends every DNS query straight back as its own
//! "reply" (addresses and ports swapped, QR set, nothing looked up), so `cargo xtask bench` can
//! measure how many replies per second the veth path and the load generator carry at all, and
//! read dns-xdp's figure as a share of that.

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};
use dns_xdp_common::dns::FLAG_QR;

use crate::cursor;
use crate::headers::{ETH_HLEN, ETH_P_IP, Ipv4Hdr, Ipv6Hdr, UDP_HLEN};
use crate::plain::{self, DNS_PORT, DnsIdFlags};

#[xdp]
pub fn xdp_bounce(ctx: XdpContext) -> u32 {
    match try_bounce(&ctx) {
        Some(()) => xdp_action::XDP_TX,
        None => xdp_action::XDP_PASS,
    }
}

/// `Some` once the packet has been turned around; `None` (untouched) for anything that is not a
/// plain UDP DNS query: no VLAN tags, IPv4 without options, IPv6 without extension headers.
#[inline(always)]
fn try_bounce(ctx: &XdpContext) -> Option<()> {
    let plain::PlainUdp { eth, proto, l4_off, udp } = plain::udp(ctx)?;
    let dns: *mut DnsIdFlags = cursor::ptr_at(ctx, l4_off + UDP_HLEN)?;
    // SAFETY: bounds checked by ptr_at.
    let (dest, old_flags, check) = unsafe {
        (u16::from_be_bytes((*udp).dest), u16::from_be_bytes((*dns).flags), u16::from_be_bytes((*udp).check))
    };
    if dest != DNS_PORT || old_flags & FLAG_QR != 0 {
        return None;
    }
    let new_flags = old_flags | FLAG_QR;

    // Swapping addresses and ports leaves every checksum as it was (a ones'-complement sum does
    // not depend on the order of its words): the IPv4 header checksum stays, and the UDP checksum
    // only needs the flags word's change.
    // SAFETY: every pointer was bounds checked by ptr_at above and no helper moved the packet.
    unsafe {
        core::mem::swap(&mut (*eth).dst, &mut (*eth).src);
        if proto == ETH_P_IP {
            let ip: *mut Ipv4Hdr = cursor::ptr_at(ctx, ETH_HLEN)?;
            core::mem::swap(&mut (*ip).saddr, &mut (*ip).daddr);
        } else {
            let ip: *mut Ipv6Hdr = cursor::ptr_at(ctx, ETH_HLEN)?;
            core::mem::swap(&mut (*ip).saddr, &mut (*ip).daddr);
        }
        core::mem::swap(&mut (*udp).source, &mut (*udp).dest);
        (*dns).flags = new_flags.to_be_bytes();
        // 0 on IPv4 means "no checksum" and stays so; IPv6 always carries one (RFC 8200 8.1).
        if !(check == 0 && proto == ETH_P_IP) {
            (*udp).check = csum_replace(check, old_flags, new_flags).to_be_bytes();
        }
    }
    Some(())
}

/// The checksum after one 16-bit word of the data changed from `old` to `new`: RFC 1624 eqn. 3,
/// HC' = ~(~HC + ~m + m'). A result of 0 is sent as 0xffff, its other ones'-complement form, since
/// 0 would mean "no checksum" (RFC 768).
#[inline(always)]
fn csum_replace(check: u16, old: u16, new: u16) -> u16 {
    let mut sum = u32::from(!check) + u32::from(!old) + u32::from(new);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    let c = !(sum as u16);
    if c == 0 { 0xffff } else { c }
}
