//! Plain UDP frames for the test bed's programs (bounce.rs, count.rs): Ethernet with no VLAN
//! tag, IPv4 without options or fragments, IPv6 without extension headers. The load generators
//! send nothing else, so these programs need none of dns_xdp's l2l3.rs, and pass the rest.

use aya_ebpf::programs::XdpContext;

use crate::cursor;
use crate::headers::{
    ETH_HLEN, ETH_P_IP, ETH_P_IPV6, EthHdr, IPPROTO_UDP, IPV4_HLEN, IPV6_HLEN, Ipv4Hdr, Ipv6Hdr, UdpHdr,
};
/// Queries go to it and replies come from it; everything else (ARP, neighbour discovery) passes.
pub const DNS_PORT: u16 = 53;

/// The first 4 bytes of the DNS header: the ID, then the flags word.
#[repr(C)]
pub struct DnsIdFlags {
    pub id: [u8; 2],
    pub flags: [u8; 2],
}

/// Where a plain UDP datagram's parts lie in the frame.
pub struct PlainUdp {
    pub eth: *mut EthHdr,
    /// `ETH_P_IP` or `ETH_P_IPV6`.
    pub proto: u16,
    /// Offset of the UDP header.
    pub l4_off: usize,
    pub udp: *mut UdpHdr,
}

/// The UDP header of a plain frame, or `None` for anything else.
#[inline(always)]
pub fn udp(ctx: &XdpContext) -> Option<PlainUdp> {
    let eth: *mut EthHdr = cursor::ptr_at(ctx, 0)?;
    // SAFETY: ptr_at checked that the header lies inside the packet.
    let proto = u16::from_be_bytes(unsafe { (*eth).proto });
    let l4_off = match proto {
        ETH_P_IP => {
            let ip: *mut Ipv4Hdr = cursor::ptr_at(ctx, ETH_HLEN)?;
            // SAFETY: bounds checked by ptr_at.
            unsafe {
                // IHL 5, not a fragment: the UDP header follows at a fixed offset.
                if (*ip).version_ihl != 0x45 || u16::from_be_bytes((*ip).frag_off) & 0x3fff != 0 {
                    return None;
                }
                if (*ip).protocol != IPPROTO_UDP {
                    return None;
                }
            }
            ETH_HLEN + IPV4_HLEN
        }
        ETH_P_IPV6 => {
            let ip: *mut Ipv6Hdr = cursor::ptr_at(ctx, ETH_HLEN)?;
            // SAFETY: bounds checked by ptr_at.
            if unsafe { (*ip).next_header } != IPPROTO_UDP {
                return None;
            }
            ETH_HLEN + IPV6_HLEN
        }
        _ => return None,
    };
    let udp: *mut UdpHdr = cursor::ptr_at(ctx, l4_off)?;
    Some(PlainUdp { eth, proto, l4_off, udp })
}
