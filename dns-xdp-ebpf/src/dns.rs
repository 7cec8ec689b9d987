//! The DNS side of the gate: header checks, the qname walk and its lowercased copy into the map
//! key, the question's type and class, and the OPT record (RFC 6891).

use aya_ebpf::programs::XdpContext;
use dns_xdp_common::dns::{CLASS_IN, EDNS_DO, FLAG_QR, FLAG_TC, HEADER_LEN, OPCODE_MASK, OPT_LEN, option, rtype};
use dns_xdp_common::{KEY_NAME_LEN, MAX_LABEL_LEN, MAX_LABELS, MAX_QNAME_LEN, Scratch, stat};

use crate::{Exit, cursor, l2l3::Frame};

/// QTYPE + QCLASS after the qname.
pub const QTAIL_LEN: usize = 4;

/// EDNS option code and length fields.
const OPTION_HLEN: usize = 4;
/// Options walked in an OPT: real clients send one to three (COOKIE, NSID, padding, ECS); a
/// query with more is odd enough for the daemon, and the bound keeps the verifier's walk short.
const MAX_EDNS_OPTIONS: usize = 8;

/// 4-byte words of a key name: the lowercasing copy works a word at a time.
const KEY_NAME_WORDS: usize = KEY_NAME_LEN / 4;

#[repr(C)]
pub struct DnsHdr {
    pub id: [u8; 2],
    pub flags: [u8; 2],
    pub qdcount: [u8; 2],
    pub ancount: [u8; 2],
    pub nscount: [u8; 2],
    pub arcount: [u8; 2],
}

/// What the reply needs to know about the query.
#[derive(Clone, Copy)]
pub struct Query {
    pub flags: u16,
    /// Wire length of the qname, root label included (1..=255).
    pub qname_len: usize,
    /// QTYPE and QCLASS exactly as received, for the checksum.
    pub qtail: [u8; QTAIL_LEN],
    pub edns: bool,
    pub dnssec_ok: bool,
    /// max(512, requestor's payload size) with EDNS, else 512 (RFC 6891 section 6.2.5).
    pub client_limit: usize,
    /// Sum of the zero-padded qname in `scratch.raw` as native-order u32 words: congruent mod
    /// 0xffff to its ones'-complement checksum, so the reply's checksum needs no helper call.
    pub qname_sum: u64,
}

#[inline(always)]
fn be16(b: [u8; 2]) -> u16 {
    u16::from_be_bytes(b)
}

/// Checks the query and leaves its key (lowercased qname, qtype) in `scratch.key` and its
/// original-case qname, zero-padded, in `scratch.raw`.
#[inline(always)]
pub fn parse(ctx: &XdpContext, frame: &Frame, scratch: *mut Scratch) -> Result<Query, Exit> {
    let msg_len = frame.msg_len;
    if msg_len < HEADER_LEN {
        return Err(Exit::Pass(stat::PASS_HEADER));
    }
    let hdr: *const DnsHdr = cursor::ptr_at(ctx, frame.dns_off).ok_or(Exit::Pass(stat::PASS_HEADER))?;
    // SAFETY: bounds checked by ptr_at.
    let (flags, qd, an, ns, ar) = unsafe {
        (be16((*hdr).flags), be16((*hdr).qdcount), be16((*hdr).ancount), be16((*hdr).nscount), be16((*hdr).arcount))
    };
    // A plain QUERY with one question and nothing else but maybe an OPT; TC=1 queries are
    // legal but odd enough to leave to the daemon.
    if flags & (FLAG_QR | OPCODE_MASK | FLAG_TC) != 0 || qd != 1 || an != 0 || ns != 0 || ar > 1 {
        return Err(Exit::Pass(stat::PASS_HEADER));
    }

    let (qname_len, qname_sum, mut qtail) = fill_key(scratch, walk_qname(ctx, frame, scratch)?)?;
    let qtail_off = HEADER_LEN + qname_len;
    if qtail_off + QTAIL_LEN > msg_len {
        return Err(Exit::Pass(stat::PASS_QNAME));
    }
    // walk_qname copied min(msg_len - HEADER_LEN, KEY_NAME_LEN) bytes, so fill_key's QTYPE/QCLASS
    // came from this packet unless the name is within 4 bytes of 256.
    if qname_len + QTAIL_LEN > KEY_NAME_LEN {
        cursor::load(ctx, frame.dns_off + qtail_off, qtail.as_mut_ptr(), QTAIL_LEN)
            .ok_or(Exit::Pass(stat::PASS_QNAME))?;
    }
    if be16([qtail[2], qtail[3]]) != CLASS_IN {
        return Err(Exit::Pass(stat::PASS_QCLASS));
    }

    let opt_off = qtail_off + QTAIL_LEN;
    let mut query = Query {
        flags,
        qname_len,
        qtail,
        edns: false,
        dnssec_ok: false,
        client_limit: dns_xdp_common::MIN_UDP_PAYLOAD as usize,
        qname_sum,
    };
    if ar == 0 {
        // Bytes after the question that no count accounts for: let the daemon judge them.
        if opt_off != msg_len {
            return Err(Exit::Pass(stat::PASS_HEADER));
        }
    } else {
        parse_opt(ctx, frame, opt_off, &mut query)?;
    }

    // SAFETY: `scratch` is the per-CPU SCRATCH value.
    unsafe { (*scratch).key.qtype = be16([qtail[0], qtail[1]]) };
    Ok(query)
}

/// Copies the qname into `scratch.raw` and finds its length. Every malformed or unusual name
/// passes: compression (never in a query's question in practice), the 0x40/0x80 label types,
/// labels over 63, names over 255, names running past the message.
#[inline(always)]
fn walk_qname(ctx: &XdpContext, frame: &Frame, scratch: *mut Scratch) -> Result<usize, Exit> {
    let avail = frame.msg_len - HEADER_LEN;
    // Need at least a root label, QTYPE and QCLASS; the lower bound also proves len > 0 to
    // the verifier for the helper below.
    if avail < 1 + QTAIL_LEN {
        return Err(Exit::Pass(stat::PASS_QNAME));
    }
    let copy = if avail > KEY_NAME_LEN { KEY_NAME_LEN } else { avail };
    // SAFETY: `scratch` is the per-CPU SCRATCH value, valid for the whole run; raw holds
    // KEY_NAME_LEN + 4 bytes and copy <= KEY_NAME_LEN.
    let raw = unsafe { (*scratch).raw.as_mut_ptr() };
    cursor::load_words(ctx, frame.dns_off + HEADER_LEN, raw, copy).ok_or(Exit::Pass(stat::PASS_QNAME))?;

    let mut idx = 0usize;
    // MAX_LABELS: a 255-byte name has at most 128 labels (root included), so the walk ends by
    // then; the verifier needs the constant bound.
    for _ in 0..MAX_LABELS {
        // idx < MAX_QNAME_LEN keeps the name within 255 bytes and the read inside raw.
        if idx >= MAX_QNAME_LEN || idx >= copy {
            return Err(Exit::Pass(stat::PASS_QNAME));
        }
        // SAFETY: idx < MAX_QNAME_LEN < raw.len().
        let len = unsafe { *raw.add(idx) } as usize;
        if len == 0 {
            return Ok(idx + 1);
        }
        if len > MAX_LABEL_LEN {
            return Err(Exit::Pass(stat::PASS_QNAME));
        }
        idx += len + 1;
    }
    Err(Exit::Pass(stat::PASS_QNAME))
}

/// The OPT must be the one additional record, at its real position right after the question,
/// and end exactly where the message ends.
#[inline(always)]
fn parse_opt(ctx: &XdpContext, frame: &Frame, opt_off: usize, query: &mut Query) -> Result<(), Exit> {
    if opt_off + OPT_LEN > frame.msg_len {
        return Err(Exit::Pass(stat::PASS_EDNS));
    }
    // Read in place: a helper copy costs a call, and the stack copy's byte fields would be
    // misaligned word loads, which the verifier refuses on the stack (packet data may be).
    let opt: *const [u8; OPT_LEN] = cursor::ptr_at(ctx, frame.dns_off + opt_off).ok_or(Exit::Pass(stat::PASS_EDNS))?;
    // SAFETY: bounds checked by ptr_at.
    let opt = unsafe { *opt };
    let opt_type = be16([opt[1], opt[2]]);
    let payload = be16([opt[3], opt[4]]);
    let version = opt[6];
    let ext_flags = be16([opt[7], opt[8]]);
    let rdlen = be16([opt[9], opt[10]]) as usize;
    // The RDATA must end the message; its options are walked below. Version > 0 goes to the
    // daemon, which answers BADVERS (RFC 6891 6.1.3).
    if opt[0] != 0 || opt_type != rtype::OPT || opt_off + OPT_LEN + rdlen != frame.msg_len || version != 0 {
        return Err(Exit::Pass(stat::PASS_EDNS));
    }
    query.edns = true;
    query.dnssec_ok = ext_flags & EDNS_DO != 0;
    if payload as usize > query.client_limit {
        query.client_limit = payload as usize;
    }
    walk_options(ctx, frame, opt_off + OPT_LEN)
}

/// Walks the OPT's options from `off` to the end of the message. Other options are ignored (the
/// daemon ignores them too and we echo none), but a COOKIE anywhere goes to the daemon: its
/// answer carries a server cookie (RFC 7873, RFC 9018) that only the daemon can compute, and
/// an answer from here without it would differ from the daemon's. Options that do not tile the
/// RDATA exactly go to the daemon too, which answers FORMERR (RFC 6891 section 6.1.2).
#[inline(always)]
fn walk_options(ctx: &XdpContext, frame: &Frame, mut off: usize) -> Result<(), Exit> {
    for _ in 0..MAX_EDNS_OPTIONS {
        if off == frame.msg_len {
            return Ok(());
        }
        if off + OPTION_HLEN > frame.msg_len {
            return Err(Exit::Pass(stat::PASS_EDNS));
        }
        let opt_hdr: *const [u8; OPTION_HLEN] =
            cursor::ptr_at(ctx, frame.dns_off + off).ok_or(Exit::Pass(stat::PASS_EDNS))?;
        // SAFETY: bounds checked by ptr_at.
        let opt_hdr = unsafe { *opt_hdr };
        if be16([opt_hdr[0], opt_hdr[1]]) == option::COOKIE {
            return Err(Exit::Pass(stat::PASS_COOKIE));
        }
        off += OPTION_HLEN + be16([opt_hdr[2], opt_hdr[3]]) as usize;
    }
    if off == frame.msg_len { Ok(()) } else { Err(Exit::Pass(stat::PASS_EDNS)) }
}

/// ASCII-lowercases the four bytes of `w` (SWAR): a byte gets 0x20 iff it is in b'A'..=b'Z'.
/// Length octets are < 0x40, so they never match.
#[inline(always)]
fn lower4(w: u32) -> u32 {
    let heptets = w & 0x7f7f_7f7f;
    // High bit of each byte set iff its low seven bits are >= b'A' (0x80 - 0x41 = 0x3f) and
    // > b'Z' (0x7f - 0x5a = 0x25); neither sum carries into the next byte.
    let ge_a = heptets.wrapping_add(0x3f3f_3f3f);
    let gt_z = heptets.wrapping_add(0x2525_2525);
    let upper = ge_a & !gt_z & !w & 0x8080_8080;
    w | (upper >> 2)
}

/// Builds the key name from `raw` a word at a time; returns the qname length, the sum of its
/// zero-padded words (see `Query::qname_sum`) and the four bytes after it in `raw` (QTYPE and
/// QCLASS when walk_qname copied that far; the caller decides).
///
/// The last word is masked so both `raw` and the key are zero past the name (the shadow record
/// and the sum rely on it); if the previous packet's name was longer, the key is cleared
/// first. The length goes through `scratch.prev_len` and comes back as a value the verifier
/// cannot know: otherwise each of the walk's 128 exits would carry its own exact range through
/// the rest of the program and verification would blow past its 1M-instruction budget.
#[inline(always)]
fn fill_key(scratch: *mut Scratch, walked_len: usize) -> Result<(usize, u64, [u8; QTAIL_LEN]), Exit> {
    // SAFETY: `scratch` is the per-CPU SCRATCH value, valid for the whole run. The kernel
    // allocates map values 8-byte aligned and key.name is at offset 0, so u64 accesses to it
    // are aligned; raw is at offset 260, so its u32 accesses are. Every index below is checked
    // against the arrays' sizes (KEY_NAME_WORDS u32 words, KEY_NAME_LEN / 8 u64 words; raw
    // holds KEY_NAME_LEN + 4 bytes, so the 4 bytes at qname_len <= 255 are inside it).
    unsafe {
        let prev_len = (*scratch).prev_len as usize;
        (*scratch).prev_len = walked_len as u32;
        let qname_len = core::ptr::read_volatile(&(*scratch).prev_len) as usize;
        if qname_len == 0 || qname_len > MAX_QNAME_LEN {
            return Err(Exit::Pass(stat::PASS_QNAME));
        }
        let key = (*scratch).key.name.as_mut_ptr();
        if prev_len > qname_len {
            // Branch-free 32 stores beat a loop over the stale tail. Volatile, or LLVM turns
            // them into a call to a byte-at-a-time memset (1000+ instructions, ~200 ns).
            let key64 = key.cast::<u64>();
            for i in 0..KEY_NAME_LEN / 8 {
                core::ptr::write_volatile(key64.add(i), 0);
            }
        }
        // Before the masking below clears them. Saves a load helper call per packet.
        let after = (*scratch).raw.as_ptr().add(qname_len);
        let qtail = [*after, *after.add(1), *after.add(2), *after.add(3)];
        let key = key.cast::<u32>();
        let raw = (*scratch).raw.as_mut_ptr().cast::<u32>();
        let full = qname_len / 4;
        let mut sum: u64 = 0;
        // KEY_NAME_WORDS: a 255-byte name has at most 63 whole words.
        for k in 0..KEY_NAME_WORDS {
            if k >= full {
                break;
            }
            let w = *raw.add(k);
            sum += w as u64;
            *key.add(k) = lower4(w);
        }
        let rest = qname_len % 4;
        if rest != 0 {
            // Little-endian: the name's bytes are the low `rest` bytes of the word. full <= 63.
            let w = *raw.add(full) & ((1u32 << (8 * rest)) - 1);
            *raw.add(full) = w;
            sum += w as u64;
            *key.add(full) = lower4(w);
        }
        // The ABI promises at least 4 zero bytes after the raw name: raw has KEY_NAME_WORDS + 1
        // words, so index `words` (<= KEY_NAME_WORDS) is inside it.
        let words = (qname_len + 3) / 4;
        if words <= KEY_NAME_WORDS {
            *raw.add(words) = 0;
        }
        // Once more after the loop, whose 64 exits would otherwise each carry their own state.
        let qname_len = core::ptr::read_volatile(&(*scratch).prev_len) as usize;
        if qname_len == 0 || qname_len > MAX_QNAME_LEN {
            return Err(Exit::Pass(stat::PASS_QNAME));
        }
        Ok((qname_len, sum, qtail))
    }
}
