//! Plain UDP frames for the test bed's own programs (bounce.rs, count.rs): Ethernet with no VLAN
//! tag, IPv4 without options or fragments, IPv6 without extension headers. The load generators
//! send nothing else, so these programs need none of l2l3.rs's generality, and pass the rest.

use aya_ebpf::programs::XdpContext;

use crate::cursor;
use crate::l2l3::{ETH_HLEN, EthHdr, IPV4_HLEN, IPV6_HLEN, Ipv4Hdr, Ipv6Hdr, UdpHdr};

pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_IPV6: u16 = 0x86dd;
const IPPROTO_UDP: u8 = 17;
/// Queries go to it and replies come from it; everything else (ARP, neighbour discovery) passes.
pub const DNS_PORT: u16 = 53;
/// QR, the high bit of the header's flags word (RFC 1035 4.1.1): what makes a message a reply.
pub const FLAG_QR: u16 = 0x8000;

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
