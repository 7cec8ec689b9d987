//! Turns the query into the reply in place: resize, swap addresses, rewrite the DNS header,
//! append the precompiled answer and our OPT, fix lengths and checksums.

use aya_ebpf::{helpers::bpf_xdp_adjust_tail, programs::XdpContext};
use dns_xdp_common::dns::{EDNS_DO, FLAG_CD, FLAG_RD, FLAG_TC, HEADER_LEN, OPT_LEN};
use dns_xdp_common::{MAX_QNAME_LEN, MAX_RESPONSE_LEN, ReplyBody, ResponseValue, Scratch, XdpConfig, stat};

use crate::{
    Exit, cursor,
    dns::{DnsHdr, QTAIL_LEN, Query},
    headers::{EthHdr, IPPROTO_UDP, IPV4_HLEN, Ipv4Hdr, Ipv6Hdr, UDP_HLEN, UdpHdr},
};

/// TTL / hop limit of our replies (the Linux default).
const REPLY_TTL: u8 = 64;
const IPV4_ADDR_WORDS: usize = 2;
const IPV6_ADDR_WORDS: usize = 8;
/// Ethernet with two VLAN tags, IPv6, UDP and DNS headers: 14 + 8 + 40 + 8 + 12 = 82 bytes,
/// rounded up to 8; the most `front_to_head` copies through the stack.
const HDRS_MAX: usize = 88;

/// Bytes of the DNS reply: header, question as received, answer data, our OPT if the query had one.
#[inline(always)]
pub fn reply_len(query: &Query, data_len: usize) -> usize {
    HEADER_LEN + query.qname_len + QTAIL_LEN + data_len + if query.edns { OPT_LEN } else { 0 }
}

/// Ones'-complement sum helpers. Every word is read in memory order (native little-endian
/// loads of network-order bytes): the sum is byte-order independent (RFC 1071 2(B)), so storing
/// the folded result with the same native order yields the right checksum bytes.
#[inline(always)]
fn ne16(b: [u8; 2]) -> u64 {
    u16::from_ne_bytes(b) as u64
}

#[inline(always)]
pub fn fold(mut sum: u64) -> u16 {
    sum = (sum & 0xffff_ffff) + (sum >> 32);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum as u16
}

/// The contribution of a block whose folded sum is `sum16` and which starts at `offset` of the
/// checksummed stream. At an odd offset each byte sits in the other half of its 16-bit word,
/// which byte-swaps the block's sum; times 256 is that swap in ones'-complement arithmetic
/// (2^16 = 1 mod 0xffff), and a shift keeps it branch-free, sparing the verifier a path per
/// parity combination.
#[inline(always)]
fn at_offset(sum16: u16, offset: usize) -> u64 {
    (sum16 as u64) << ((offset as u64 & 1) * 8)
}

/// Leaves in `scratch` what `build` writes: the answer in `value`, or for a slip the same
/// header with TC=1 and every section empty (the daemon's truncated response, RFC 2181 9).
/// `slip` is 0 for an answer, else the slot the slip is counted under, plus 1.
#[inline(always)]
pub fn stage(scratch: *mut Scratch, value: &ResponseValue, slip: u32) {
    let body = if slip != 0 {
        ReplyBody { flags: value.flags | FLAG_TC, ancount: 0, nscount: 0, arcount: 0, data_len: 0, data_csum: 0 }
    } else {
        ReplyBody {
            flags: value.flags,
            ancount: value.ancount,
            nscount: value.nscount,
            arcount: value.arcount,
            data_len: value.data_len,
            data_csum: value.data_csum,
        }
    };
    // SAFETY: `scratch` is the per-CPU SCRATCH value, valid for the whole run.
    unsafe {
        (*scratch).body = body;
        (*scratch).slip = slip;
    }
}

/// After the frame grew by `shift` at the head, puts what the tail path leaves in place (the
/// headers up to and including the DNS header, then the question) at the new start; the rest
/// of `build` rewrites it as usual. The old bytes are intact at `shift` on, so the headers are
/// copied through the stack (source and destination overlap when `shift` is small); the
/// question comes from `scratch.raw` and `query.qtail`, which hold it exactly as received.
///
/// False if a copy failed, which leaves the packet half-written.
///
/// A BPF-to-BPF call, not inlined: inlined, LLVM left the stack buffer's address in a register
/// that the shared exit path treats as the pass reason (undefined for `Aborted`), and the
/// verifier rejects arithmetic on it. A callee's registers go back to the caller's on return.
#[inline(never)]
fn front_to_head(
    ctx: &XdpContext,
    frame: &crate::l2l3::Frame,
    query: &Query,
    scratch: *mut Scratch,
    shift: usize,
) -> bool {
    let hdrs_len = (frame.dns_off + HEADER_LEN) & 0x7f;
    if hdrs_len == 0 || hdrs_len > HDRS_MAX {
        return false;
    }
    // Uninitialised: zeroing it costs a byte-at-a-time memset call, and only the hdrs_len
    // bytes the load fills are stored back (the verifier accepts uninit stack as the load's
    // destination: ARG_PTR_TO_UNINIT_MEM).
    let mut hdrs = core::mem::MaybeUninit::<[u8; HDRS_MAX]>::uninit();
    let hdrs = hdrs.as_mut_ptr().cast::<u8>();
    if cursor::load(ctx, shift, hdrs, hdrs_len).is_none() || cursor::store(ctx, 0, hdrs, hdrs_len).is_none() {
        return false;
    }
    let qname_len = query.qname_len & 0x1ff;
    if qname_len == 0 || qname_len > MAX_QNAME_LEN {
        return false;
    }
    // SAFETY: `scratch` is the per-CPU SCRATCH value; raw holds KEY_NAME_LEN + 4 bytes.
    let raw = unsafe { (*scratch).raw.as_ptr() };
    cursor::store(ctx, hdrs_len, raw, qname_len).is_some()
        && cursor::store(ctx, hdrs_len + qname_len, query.qtail.as_ptr(), QTAIL_LEN).is_some()
}

/// Builds the reply `stage` described. The body comes back through memory (volatile) as values
/// the verifier cannot know, so the builder is explored once for answers and slips alike.
#[inline(always)]
pub fn build(
    ctx: &XdpContext,
    frame: &crate::l2l3::Frame,
    query: &Query,
    value: &ResponseValue,
    config: &XdpConfig,
    scratch: *mut Scratch,
) -> Result<(), Exit> {
    // SAFETY: `scratch` is the per-CPU SCRATCH value; stage() filled body.
    let body: ReplyBody = unsafe { core::ptr::read_volatile(&raw const (*scratch).body) };
    let data_len = body.data_len as usize;
    if data_len > MAX_RESPONSE_LEN {
        return Err(Exit::Pass(stat::PASS_MISS));
    }
    let dns_len = reply_len(query, data_len);
    let udp_len = UDP_HLEN + dns_len;
    let new_len = frame.dns_off + dns_len;

    // Shrinks away the query's OPT and any Ethernet padding, or grows for the answer.
    let delta = new_len as i32 - cursor::frame_len(ctx) as i32;
    // SAFETY: the helper validates delta against the frame's tailroom.
    if delta != 0 && unsafe { bpf_xdp_adjust_tail(ctx.ctx, delta) } != 0 {
        // Only growth fails. Tailroom is whatever the driver left (real NICs: plenty; veth and
        // generic mode: the allocation's slack, often under 64 bytes), but every mode keeps
        // XDP_PACKET_HEADROOM (256) in front: grow there instead and rebuild the front.
        if delta < 0 || !cursor::grow_head(ctx, delta as usize) {
            return Err(Exit::Pass(stat::PASS_RESIZE));
        }
        if !front_to_head(ctx, frame, query, scratch, delta as usize) {
            return Err(Exit::Aborted);
        }
    }
    // The resize invalidated every packet pointer: all are re-derived (and re-checked) below.
    // A failure now would leave a half-written packet, which must not be passed on.
    if cursor::frame_len(ctx) != new_len {
        return Err(Exit::Aborted);
    }

    let mut sum: u64 = 0;

    let eth: *mut EthHdr = cursor::ptr_at(ctx, 0).ok_or(Exit::Aborted)?;
    // SAFETY: bounds checked by ptr_at; the header lies in the packet we own for this run.
    // As three words (the program allows misaligned accesses: dns-xdp-ebpf/build.rs); as
    // byte arrays they were twelve loads and stores.
    unsafe {
        let words = eth.cast::<u8>();
        let (dst_lo, dst_hi) = (words.cast::<u32>().read_unaligned(), words.add(4).cast::<u16>().read_unaligned());
        let src_words = words.add(6);
        words.cast::<u32>().write_unaligned(src_words.cast::<u32>().read_unaligned());
        words.add(4).cast::<u16>().write_unaligned(src_words.add(4).cast::<u16>().read_unaligned());
        src_words.cast::<u32>().write_unaligned(dst_lo);
        src_words.add(4).cast::<u16>().write_unaligned(dst_hi);
    }

    if frame.ipv6 {
        let ip: *mut Ipv6Hdr = cursor::ptr_at(ctx, frame.l3_off).ok_or(Exit::Aborted)?;
        // SAFETY: bounds checked by ptr_at.
        unsafe {
            let src = (*ip).saddr;
            (*ip).saddr = (*ip).daddr;
            (*ip).daddr = src;
            (*ip).payload_len = (udp_len as u16).to_be_bytes();
            (*ip).hop_limit = REPLY_TTL;
            // Pseudo header (RFC 8200 8.1): addresses, upper-layer length, next header.
            // IPV6_ADDR_WORDS: 16-byte addresses, 8 words each.
            for i in 0..IPV6_ADDR_WORDS {
                sum += ne16([(*ip).saddr[2 * i], (*ip).saddr[2 * i + 1]]);
                sum += ne16([(*ip).daddr[2 * i], (*ip).daddr[2 * i + 1]]);
            }
        }
    } else {
        let ip: *mut Ipv4Hdr = cursor::ptr_at(ctx, frame.l3_off).ok_or(Exit::Aborted)?;
        // SAFETY: bounds checked by ptr_at.
        unsafe {
            let src = (*ip).saddr;
            (*ip).saddr = (*ip).daddr;
            (*ip).daddr = src;
            (*ip).tot_len = ((IPV4_HLEN + udp_len) as u16).to_be_bytes();
            (*ip).ttl = REPLY_TTL;
            (*ip).check = [0, 0];
            let words = ip.cast::<u32>();
            let mut hsum: u64 = 0;
            // IPV4_HLEN / 4 words: IHL is 5 (l2l3 checked it). 32-bit words sum to the same
            // ones'-complement checksum once folded (RFC 1071 2(C)).
            for i in 0..IPV4_HLEN / 4 {
                hsum += u64::from(words.add(i).read_unaligned());
            }
            (*ip).check = (!fold(hsum)).to_ne_bytes();
            // Pseudo header (RFC 768): addresses, zero + protocol, UDP length.
            // IPV4_ADDR_WORDS: 4-byte addresses, 2 words each.
            for i in 0..IPV4_ADDR_WORDS {
                sum += ne16([(*ip).saddr[2 * i], (*ip).saddr[2 * i + 1]]);
                sum += ne16([(*ip).daddr[2 * i], (*ip).daddr[2 * i + 1]]);
            }
        }
    }
    sum += ne16([0, IPPROTO_UDP]);
    sum += ne16((udp_len as u16).to_be_bytes());

    let udp: *mut UdpHdr = cursor::ptr_at(ctx, frame.l4_off).ok_or(Exit::Aborted)?;
    // SAFETY: bounds checked by ptr_at.
    unsafe {
        let src = (*udp).source;
        (*udp).source = (*udp).dest;
        (*udp).dest = src;
        (*udp).len = (udp_len as u16).to_be_bytes();
        (*udp).check = [0, 0];
        sum += ne16((*udp).source) + ne16((*udp).dest) + ne16((*udp).len);
    }

    let flags = body.flags | (query.flags & (FLAG_RD | FLAG_CD));
    let arcount = body.arcount + query.edns as u16;
    let hdr: *mut DnsHdr = cursor::ptr_at(ctx, frame.dns_off).ok_or(Exit::Aborted)?;
    // SAFETY: bounds checked by ptr_at. The ID stays as the client sent it.
    unsafe {
        (*hdr).flags = flags.to_be_bytes();
        (*hdr).qdcount = 1u16.to_be_bytes();
        (*hdr).ancount = body.ancount.to_be_bytes();
        (*hdr).nscount = body.nscount.to_be_bytes();
        (*hdr).arcount = arcount.to_be_bytes();
        sum += ne16((*hdr).id);
    }
    sum += ne16(flags.to_be_bytes()) + ne16(1u16.to_be_bytes());
    sum += ne16(body.ancount.to_be_bytes()) + ne16(body.nscount.to_be_bytes());
    sum += ne16(arcount.to_be_bytes());

    // The question stays in the packet untouched; dns::parse summed it (zero-padded, in
    // 4-byte words of scratch.raw) while lowercasing it; it starts at an even offset (8 + 12)
    // of the UDP datagram. At most 64 words below 2^32: no overflow.
    sum += query.qname_sum;

    // QTYPE/QCLASS, the answer and the OPT follow the qname: at odd offsets if its length is odd.
    let qt = query.qtail;
    sum += at_offset(fold(ne16([qt[0], qt[1]]) + ne16([qt[2], qt[3]])), query.qname_len);

    let data_off = frame.dns_off + HEADER_LEN + query.qname_len + QTAIL_LEN;
    if data_len > 0 {
        let data = value.data.as_ptr();
        if (8..=cursor::WORDS_MAX_LEN).contains(&data_len) {
            cursor::store_words(ctx, data_off, data, data_len).ok_or(Exit::Aborted)?;
        } else {
            cursor::store(ctx, data_off, data, data_len).ok_or(Exit::Aborted)?;
        }
        // data_csum is the big-endian-word sum of data from an even offset; in memory-order
        // terms that is its byte swap, and an odd start swaps it once more.
        sum += at_offset(body.data_csum.swap_bytes(), query.qname_len);
    }

    if query.edns {
        let ext_flags: u16 = if query.dnssec_ok { EDNS_DO } else { 0 };
        let payload = config.edns_payload.to_be_bytes();
        let fl = ext_flags.to_be_bytes();
        // Root name, TYPE OPT, CLASS = our payload size, ext-RCODE 0, version 0, DO echoed,
        // RDLEN 0 (RFC 6891 6.1.2; no options echoed). Written in place: a stack copy's
        // byte fields would be misaligned word accesses, which the verifier refuses there.
        let opt: *mut [u8; OPT_LEN] = cursor::ptr_at(ctx, data_off + data_len).ok_or(Exit::Aborted)?;
        // SAFETY: bounds checked by ptr_at.
        unsafe { *opt = [0, 0, 41, payload[0], payload[1], 0, 0, fl[0], fl[1], 0, 0] };
        // Its words, the last padded with a zero byte: (0, 0), (41, payload), (payload, 0),
        // (0, flags), (flags, 0), (0, pad).
        let osum = ne16([41, payload[0]]) + ne16([payload[1], 0]) + ne16([0, fl[0]]) + ne16([fl[1], 0]);
        sum += at_offset(fold(osum), query.qname_len + data_len);
    }

    // Never trust the query's checksum (veth with tx offload delivers a partial one): this
    // one is computed from scratch. 0 means "no checksum" on IPv4 and is illegal on IPv6:
    // send 0xffff, its ones'-complement twin (RFC 768, RFC 8200 8.1).
    let mut check = !fold(sum);
    if check == 0 {
        check = 0xffff;
    }
    let udp: *mut UdpHdr = cursor::ptr_at(ctx, frame.l4_off).ok_or(Exit::Aborted)?;
    // SAFETY: bounds checked by ptr_at.
    unsafe { (*udp).check = check.to_ne_bytes() };
    Ok(())
}
