//! Ethernet, VLAN, IPv4, IPv6 and UDP: find the DNS message of a UDP datagram to our port.

use aya_ebpf::programs::XdpContext;
use dns_xdp_common::stat;

use crate::headers::{
    ETH_HLEN, ETH_P_IP, ETH_P_IPV6, EthHdr, IPPROTO_UDP, IPV4_HLEN, IPV6_HLEN, Ipv4Hdr, Ipv6Hdr, UDP_HLEN, UdpHdr,
};
use crate::{Exit, cursor};

const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;

/// VLAN tags we look through: one 802.1Q tag, or QinQ (802.1ad outer + 802.1Q inner), is the
/// deepest stack a server port sees; a bound is also what lets the verifier accept the loop.
const MAX_VLAN_TAGS: usize = 2;

#[repr(C)]
struct VlanHdr {
    _tci: [u8; 2],
    proto: [u8; 2],
}

/// Where the layers of an accepted query start, and how long its DNS message is.
#[derive(Clone, Copy)]
pub struct Frame {
    pub l3_off: usize,
    pub ipv6: bool,
    pub l4_off: usize,
    pub dns_off: usize,
    /// From the UDP length field, so Ethernet padding after the datagram is not part of it.
    pub msg_len: usize,
}

#[inline(always)]
fn be16(b: [u8; 2]) -> u16 {
    u16::from_be_bytes(b)
}

pub fn parse(ctx: &XdpContext, dns_port: u16) -> Result<Frame, Exit> {
    let eth: *const EthHdr = cursor::ptr_at(ctx, 0).ok_or(Exit::Pass(stat::PASS_NOT_IP))?;
    // SAFETY: ptr_at checked that the whole header lies inside the packet.
    let mut proto = be16(unsafe { (*eth).proto });
    let mut off = ETH_HLEN;
    for _ in 0..MAX_VLAN_TAGS {
        if proto != ETH_P_8021Q && proto != ETH_P_8021AD {
            break;
        }
        let tag: *const VlanHdr = cursor::ptr_at(ctx, off).ok_or(Exit::Pass(stat::PASS_NOT_IP))?;
        // SAFETY: bounds checked by ptr_at.
        proto = be16(unsafe { (*tag).proto });
        off += 4;
    }
    // A third tag lands here as an unknown ethertype and passes.
    match proto {
        ETH_P_IP => ipv4(ctx, off, dns_port),
        ETH_P_IPV6 => ipv6(ctx, off, dns_port),
        _ => Err(Exit::Pass(stat::PASS_NOT_IP)),
    }
}

#[inline(always)]
fn ipv4(ctx: &XdpContext, l3_off: usize, dns_port: u16) -> Result<Frame, Exit> {
    let ip: *const Ipv4Hdr = cursor::ptr_at(ctx, l3_off).ok_or(Exit::Pass(stat::PASS_IP_UNUSUAL))?;
    // SAFETY: bounds checked by ptr_at.
    let (version_ihl, frag_off, protocol, tot_len) =
        unsafe { ((*ip).version_ihl, be16((*ip).frag_off), (*ip).protocol, be16((*ip).tot_len)) };
    // Version 4 with IHL 5: options are legal but rare enough to leave to the kernel.
    if version_ihl != 0x45 {
        return Err(Exit::Pass(stat::PASS_IP_UNUSUAL));
    }
    // MF set or a fragment offset: only the kernel can reassemble.
    if frag_off & 0x3fff != 0 {
        return Err(Exit::Pass(stat::PASS_IP_UNUSUAL));
    }
    if protocol != IPPROTO_UDP {
        return Err(Exit::Pass(stat::PASS_NOT_DNS));
    }
    // A total length shorter than our header becomes 0 and fails udp()'s length checks.
    let ip_payload = (tot_len as usize).saturating_sub(IPV4_HLEN);
    udp(ctx, l3_off, false, l3_off + IPV4_HLEN, ip_payload, dns_port)
}

#[inline(always)]
fn ipv6(ctx: &XdpContext, l3_off: usize, dns_port: u16) -> Result<Frame, Exit> {
    let ip: *const Ipv6Hdr = cursor::ptr_at(ctx, l3_off).ok_or(Exit::Pass(stat::PASS_IP_UNUSUAL))?;
    // SAFETY: bounds checked by ptr_at.
    let (version, next_header, payload_len) =
        unsafe { ((*ip).version_class_flow[0] >> 4, (*ip).next_header, be16((*ip).payload_len)) };
    if version != 6 {
        return Err(Exit::Pass(stat::PASS_IP_UNUSUAL));
    }
    match next_header {
        IPPROTO_UDP => {}
        // Hop-by-hop, routing, fragment, ESP, AH, destination options, mobility, HIP, shim6,
        // experimental (RFC 7045's list): the kernel walks extension headers, we do not.
        0 | 43 | 44 | 50 | 51 | 60 | 135 | 139 | 140 | 253 | 254 => {
            return Err(Exit::Pass(stat::PASS_IP_UNUSUAL));
        }
        _ => return Err(Exit::Pass(stat::PASS_NOT_DNS)),
    }
    udp(ctx, l3_off, true, l3_off + IPV6_HLEN, payload_len as usize, dns_port)
}

/// `ip_payload`: bytes the IP header says follow it.
#[inline(always)]
fn udp(
    ctx: &XdpContext,
    l3_off: usize,
    ipv6: bool,
    l4_off: usize,
    ip_payload: usize,
    dns_port: u16,
) -> Result<Frame, Exit> {
    let udp: *const UdpHdr = cursor::ptr_at(ctx, l4_off).ok_or(Exit::Pass(stat::PASS_NOT_DNS))?;
    // SAFETY: bounds checked by ptr_at.
    let (dest, udp_len) = unsafe { (be16((*udp).dest), be16((*udp).len) as usize) };
    if dest != dns_port {
        return Err(Exit::Pass(stat::PASS_NOT_DNS));
    }
    // From here the datagram is addressed to us, so a broken length is ours to drop (the kernel
    // would drop it too). The IP length may exceed the UDP length (Linux trims, RFC 768 allows
    // it), and the frame may be longer than the IP length (Ethernet padding to 60 bytes); the
    // reverse of either means a truncated or lying header.
    if udp_len < UDP_HLEN || udp_len > ip_payload || l4_off + ip_payload > cursor::frame_len(ctx) {
        return Err(Exit::Drop(stat::DROP_MALFORMED));
    }
    Ok(Frame { l3_off, ipv6, l4_off, dns_off: l4_off + UDP_HLEN, msg_len: udp_len - UDP_HLEN })
}
