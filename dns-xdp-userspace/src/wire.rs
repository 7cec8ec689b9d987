//! The DNS wire format: parsing queries and the one response encoder.
//!
//! Both the slow path and the BPF map compiler render responses through `render`, so an answer
//! served from the kernel is byte-for-byte the answer the daemon would have sent.

use std::borrow::Cow;

use dns_xdp_common::dns::{
    CLASS_ANY, CLASS_IN, EDNS_DO, FLAG_AA, FLAG_CD, FLAG_QR, FLAG_RD, FLAG_TC, HEADER_LEN, OPCODE_MASK, OPT_LEN,
    option, rtype,
};

use crate::cookie::{self, QueryCookie};
use crate::name::{Name, wire_name_len};
use crate::zone::Rdata;

/// The EDNS(0) parameters of a query (RFC 6891 section 6.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Edns {
    pub payload: u16,
    pub version: u8,
    pub dnssec_ok: bool,
}

/// A query we understood well enough to answer.
#[derive(Debug)]
pub struct Query<'a> {
    pub id: u16,
    pub flags: u16,
    /// The question's name exactly as received (its case is echoed back).
    pub qname_wire: &'a [u8],
    pub qname: Name,
    pub qtype: u16,
    pub qclass: u16,
    pub edns: Option<Edns>,
    /// The OPT's COOKIE option (RFC 7873), well-formed; the first one when a client sent several.
    pub cookie: Option<QueryCookie>,
    /// The TSIG record, well-formed and last in the message (RFC 8945); its key is not checked here.
    pub tsig: Option<QueryTsig>,
}

/// What a query's TSIG record says, as far as an unsigned error reply needs it (RFC 8945 section 5.3.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryTsig {
    /// The key's name, uncompressed.
    pub key: Vec<u8>,
    /// The algorithm's name, as sent (uncompressed by rule).
    pub algorithm: Vec<u8>,
    pub time_signed: [u8; 6],
    pub fudge: u16,
    pub original_id: u16,
}

impl QueryTsig {
    /// The TSIG record of an unsigned error reply (RFC 8945 section 5.3.2): the query's key, algorithm,
    /// time and fudge, no MAC, and `error`.
    pub fn error_record(&self, error: u16) -> Vec<u8> {
        let mut rdata = self.algorithm.clone();
        rdata.extend_from_slice(&self.time_signed);
        rdata.extend_from_slice(&self.fudge.to_be_bytes());
        rdata.extend_from_slice(&0u16.to_be_bytes()); // MAC size
        rdata.extend_from_slice(&self.original_id.to_be_bytes());
        rdata.extend_from_slice(&error.to_be_bytes());
        rdata.extend_from_slice(&0u16.to_be_bytes()); // other length
        let mut rr = self.key.clone();
        rr.extend_from_slice(&rtype::TSIG.to_be_bytes());
        rr.extend_from_slice(&CLASS_ANY.to_be_bytes());
        rr.extend_from_slice(&0u32.to_be_bytes());
        rr.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        rr.extend_from_slice(&rdata);
        rr
    }
}

impl Query<'_> {
    pub fn opcode(&self) -> u8 {
        ((self.flags >> 11) & 0xf) as u8
    }
}

/// What to do with a received message.
#[derive(Debug)]
pub enum Parsed<'a> {
    /// A well-formed query (any opcode); the caller decides how to answer.
    Query(Query<'a>),
    /// Malformed, but with a header worth answering: reply FORMERR with this ID, opcode and RD,
    /// and the question when it could be read (as Knot does).
    FormErr { id: u16, flags: u16, question: Option<&'a [u8]> },
    /// Not something to answer at all (too short for a header, or a response: QR=1).
    Drop,
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

/// Skips a possibly compressed name in a message; returns the offset after it.
fn skip_name(msg: &[u8], mut pos: usize) -> Option<usize> {
    // A name has at most 128 labels (255 bytes), so more steps means garbage.
    for _ in 0..128 {
        let len = *msg.get(pos)?;
        match len {
            0 => return Some(pos + 1),
            1..=63 => pos += 1 + len as usize,
            0xc0..=0xff => {
                msg.get(pos + 1)?;
                return Some(pos + 2);
            }
            _ => return None,
        }
    }
    None
}

pub fn parse_query(msg: &[u8]) -> Parsed<'_> {
    let (Some(id), Some(flags)) = (be16(msg, 0), be16(msg, 2)) else { return Parsed::Drop };
    if msg.len() < HEADER_LEN || flags & FLAG_QR != 0 {
        return Parsed::Drop;
    }
    let mut formerr = Parsed::FormErr { id, flags, question: None };
    let counts = [be16(msg, 4), be16(msg, 6), be16(msg, 8), be16(msg, 10)].map(|c| c.unwrap_or(0));
    if counts[0] != 1 {
        return formerr;
    }
    let Some(qlen) = wire_name_len(&msg[HEADER_LEN..]) else { return formerr };
    let qname_wire = &msg[HEADER_LEN..HEADER_LEN + qlen];
    let mut pos = HEADER_LEN + qlen;
    let (Some(qtype), Some(qclass)) = (be16(msg, pos), be16(msg, pos + 2)) else { return formerr };
    pos += 4;
    formerr = Parsed::FormErr { id, flags, question: Some(&msg[HEADER_LEN..pos]) };
    let mut edns = None;
    let mut cookie = None;
    let mut tsig = None;
    for section in 1..4 {
        for i in 0..counts[section] {
            let name_at = pos;
            let Some(after) = skip_name(msg, pos) else { return formerr };
            let (Some(rt), Some(class), Some(ttl_hi), Some(ttl_lo), Some(rdlen)) = (
                be16(msg, after),
                be16(msg, after + 2),
                be16(msg, after + 4),
                be16(msg, after + 6),
                be16(msg, after + 8),
            ) else {
                return formerr;
            };
            pos = after + 10 + rdlen as usize;
            if pos > msg.len() {
                return formerr;
            }
            if rt == rtype::OPT {
                // One OPT, in the additional section, owned by the root (RFC 6891 section 6.1.1).
                if section != 3 || edns.is_some() || msg[name_at] != 0 {
                    return formerr;
                }
                let Some(c) = options(&msg[after + 10..pos]) else { return formerr };
                cookie = c;
                edns = Some(Edns { payload: class, version: (ttl_hi & 0xff) as u8, dnssec_ok: ttl_lo & EDNS_DO != 0 });
            }
            if rt == rtype::TSIG {
                // The last record of the additional section, class ANY, TTL 0, and RDATA that parses
                // (RFC 8945 sections 4.2 and 5.1), or the message is malformed: FORMERR, as Knot and NSD.
                let last = section == 3 && i + 1 == counts[3];
                if !last || class != CLASS_ANY || ttl_hi != 0 || ttl_lo != 0 {
                    return formerr;
                }
                let (Some(key), Some(t)) = (read_name(msg, name_at), tsig_rdata(&msg[after + 10..pos])) else {
                    return formerr;
                };
                tsig = Some(QueryTsig { key, ..t });
            }
        }
    }
    if pos != msg.len() {
        return formerr;
    }
    Parsed::Query(Query {
        id,
        flags,
        qname_wire,
        qname: Name::from_wire(qname_wire).expect("checked"),
        qtype,
        qclass,
        edns,
        cookie,
        tsig,
    })
}

/// A possibly compressed name at `pos`, uncompressed; `None` when it is malformed or loops.
fn read_name(msg: &[u8], mut pos: usize) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    // 128 labels fill a name; as many pointers can only be a loop.
    for _ in 0..256 {
        let len = *msg.get(pos)?;
        match len {
            0 => {
                out.push(0);
                return (out.len() <= 255).then_some(out);
            }
            1..=63 => {
                out.extend_from_slice(msg.get(pos..pos + 1 + len as usize)?);
                pos += 1 + len as usize;
            }
            0xc0..=0xff => pos = usize::from(u16::from_be_bytes([len, *msg.get(pos + 1)?]) & 0x3fff),
            _ => return None,
        }
    }
    None
}

/// TSIG RDATA (RFC 8945 section 4.2): algorithm name, time signed, fudge, MAC, original ID, error,
/// other data, filling the RDATA exactly. The key is left empty for the caller.
fn tsig_rdata(rdata: &[u8]) -> Option<QueryTsig> {
    let alg_len = wire_name_len(rdata)?;
    let fixed = rdata.get(alg_len..alg_len + 10)?;
    let mac_len = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
    let after_mac = alg_len + 10 + mac_len;
    let original_id = be16(rdata, after_mac)?;
    let other_len = usize::from(be16(rdata, after_mac + 4)?);
    if after_mac + 6 + other_len != rdata.len() {
        return None;
    }
    Some(QueryTsig {
        key: Vec::new(),
        algorithm: rdata[..alg_len].to_vec(),
        time_signed: fixed[..6].try_into().ok()?,
        fudge: u16::from_be_bytes([fixed[6], fixed[7]]),
        original_id,
    })
}

/// Checks that OPT RDATA is a whole number of well-formed options (RFC 6891 section 6.1.2) and
/// finds the COOKIE among them. `None`: malformed, including a COOKIE of a bad length (RFC 7873
/// section 5.2.2); other options are ignored.
fn options(mut rdata: &[u8]) -> Option<Option<QueryCookie>> {
    let mut found = None;
    while !rdata.is_empty() {
        let (code, len) = (be16(rdata, 0)?, be16(rdata, 2)? as usize);
        let data = rdata.get(4..4 + len)?;
        if code == option::COOKIE {
            let c = QueryCookie::parse(data)?;
            found.get_or_insert(c);
        }
        rdata = &rdata[4 + len..];
    }
    Some(found)
}

/// One resource record to write. The owner is either borrowed from a zone or synthesised.
#[derive(Clone, Debug)]
pub struct Rr<'a> {
    pub owner: Cow<'a, Name>,
    pub rtype: u16,
    pub ttl: u32,
    pub rdata: Cow<'a, Rdata>,
}

/// A response in the making: what lookup decided, before any bytes exist.
#[derive(Clone, Debug, Default)]
pub struct Response<'a> {
    /// Full 12-bit RCODE; values above 15 need the OPT record.
    pub rcode: u16,
    pub aa: bool,
    pub answer: Vec<Rr<'a>>,
    pub authority: Vec<Rr<'a>>,
    pub additional: Vec<Rr<'a>>,
    /// An Extended DNS Error to attach when the query has EDNS (RFC 8914).
    pub ede: Option<u16>,
    /// Class of every record; `None` is IN (CH only for version.bind and friends).
    pub class: Option<u16>,
    /// The qname is not a name of the zone (NXDOMAIN, wildcard synthesis, below a zone cut):
    /// compress only to the whole question (0xC00C), so the bytes after the question do not
    /// depend on the qname's length and the XDP program can serve one rendering to every name
    /// below the closest encloser.
    pub position_independent: bool,
    /// The COOKIE option data to send (client cookie + server cookie) when the query had EDNS.
    pub cookie: Option<[u8; cookie::REPLY_LEN]>,
    /// A TSIG record to end the message with (an unsigned TSIG error, RFC 8945 section 5.3.2).
    pub tsig: Option<Vec<u8>>,
}

impl<'a> Response<'a> {
    pub fn with_rcode(rcode: u16) -> Self {
        Response { rcode, ..Default::default() }
    }
}

/// Writes a message with RFC 1035 section 4.1.4 name compression. Names are matched
/// case-insensitively, so the output does not depend on the case a client used.
struct Writer {
    buf: Vec<u8>,
    /// Offsets of every name suffix written so far, in order (the first match wins).
    seen: Vec<u16>,
    /// No new compression targets (see `Response::position_independent`).
    frozen: bool,
}

/// Whether the (possibly compressed) name at `at` in `buf` equals the uncompressed `suffix`,
/// ignoring ASCII case. Pointers in `buf` only point backwards, at names we wrote.
fn same_name_at(buf: &[u8], mut at: usize, suffix: &[u8]) -> bool {
    let mut pos = 0;
    // Each step consumes a label of `suffix` or follows a pointer; 255 bytes bound both.
    for _ in 0..512 {
        let len = buf[at];
        if len & 0xc0 == 0xc0 {
            at = (usize::from(len & 0x3f) << 8) | usize::from(buf[at + 1]);
            continue;
        }
        let len = usize::from(len);
        if suffix[pos] as usize != len {
            return false;
        }
        if len == 0 {
            return true;
        }
        if !buf[at + 1..at + 1 + len].eq_ignore_ascii_case(&suffix[pos + 1..pos + 1 + len]) {
            return false;
        }
        at += 1 + len;
        pos += 1 + len;
    }
    false
}

impl Writer {
    fn new(capacity: usize) -> Self {
        Writer { buf: Vec::with_capacity(capacity), seen: Vec::with_capacity(16), frozen: false }
    }

    fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    /// Writes an uncompressed wire name (any case), compressing against earlier names.
    fn name(&mut self, wire: &[u8]) {
        let mut pos = 0;
        // Only names already complete can be pointed at (a name never equals its own suffix).
        let known = self.seen.len();
        while wire[pos] != 0 {
            let suffix = &wire[pos..];
            if let Some(&off) = self.seen[..known].iter().find(|&&off| same_name_at(&self.buf, off as usize, suffix)) {
                self.u16(0xc000 | off);
                return;
            }
            if self.buf.len() < 0x3fff && !self.frozen {
                self.seen.push(self.buf.len() as u16);
            }
            let len = wire[pos] as usize;
            self.buf.extend_from_slice(&wire[pos..pos + 1 + len]);
            pos += 1 + len;
        }
        self.buf.push(0);
    }

    fn rr(&mut self, rr: &Rr<'_>, class: u16) {
        self.name(rr.owner.as_wire());
        self.u16(rr.rtype);
        self.u16(class);
        self.u32(rr.ttl);
        let len_at = self.buf.len();
        self.u16(0);
        let wire = &rr.rdata.wire;
        let mut copied = 0;
        for &at in &rr.rdata.compressible {
            let at = at as usize;
            self.buf.extend_from_slice(&wire[copied..at]);
            let len = wire_name_len(&wire[at..]).expect("zone rdata holds valid names");
            self.name(&wire[at..at + len]);
            copied = at + len;
        }
        self.buf.extend_from_slice(&wire[copied..]);
        let rdlen = (self.buf.len() - len_at - 2) as u16;
        self.buf[len_at..len_at + 2].copy_from_slice(&rdlen.to_be_bytes());
    }

    fn set_u16(&mut self, at: usize, v: u16) {
        self.buf[at..at + 2].copy_from_slice(&v.to_be_bytes());
    }
}

/// Largest UDP response for a query: 512 without EDNS, else the requestor's payload size capped
/// by ours (RFC 6891 section 6.2.5; capping avoids fragmentation, as Knot and NSD do).
pub fn udp_limit(edns: Option<Edns>, our_payload: u16) -> usize {
    match edns {
        None => 512,
        Some(e) => e.payload.min(our_payload).max(512) as usize,
    }
}

/// Renders a response to `query`. `limit` is the largest message allowed (see `udp_limit`; use
/// 65535 for TCP). When the answer and authority sections do not fit, the response is sent
/// with TC=1 and empty sections so the client retries over TCP; additional records that do
/// not fit are left out.
pub fn render(query: &Query<'_>, resp: &Response<'_>, limit: usize, our_payload: u16) -> Vec<u8> {
    let mut w = Writer::new(512);
    let flags = FLAG_QR
        | (query.flags & OPCODE_MASK)
        | if resp.aa { FLAG_AA } else { 0 }
        | (query.flags & (FLAG_RD | FLAG_CD))
        | (resp.rcode & 0xf);
    w.u16(query.id);
    w.u16(flags);
    w.u16(1);
    w.u16(0);
    w.u16(0);
    w.u16(0);
    w.name(query.qname_wire);
    w.u16(query.qtype);
    w.u16(query.qclass);
    if resp.position_independent {
        // Only the whole qname (offset 12, the first suffix written) stays a target.
        w.seen.truncate(1);
        w.frozen = true;
    }
    let after_question = w.buf.len();
    let ede_len = if resp.ede.is_some() { 6 } else { 0 };
    let cookie_len = if resp.cookie.is_some() { 4 + cookie::REPLY_LEN } else { 0 };
    let opt_len = if query.edns.is_some() { OPT_LEN + ede_len + cookie_len } else { 0 };
    let budget = limit.saturating_sub(opt_len);

    let class = resp.class.unwrap_or(CLASS_IN);
    for rr in &resp.answer {
        w.rr(rr, class);
    }
    for rr in &resp.authority {
        w.rr(rr, class);
    }
    let (mut an, mut ns, mut ar) = (resp.answer.len() as u16, resp.authority.len() as u16, 0u16);
    if w.buf.len() > budget {
        w.buf.truncate(after_question);
        w.set_u16(2, flags | FLAG_TC);
        an = 0;
        ns = 0;
    } else {
        for rr in &resp.additional {
            let before = w.buf.len();
            let seen = w.seen.len();
            w.rr(rr, class);
            if w.buf.len() > budget {
                w.buf.truncate(before);
                w.seen.truncate(seen);
                break;
            }
            ar += 1;
        }
    }
    if let Some(edns) = query.edns {
        w.buf.push(0);
        w.u16(rtype::OPT);
        w.u16(our_payload);
        w.buf.push((resp.rcode >> 4) as u8);
        w.buf.push(0);
        w.u16(if edns.dnssec_ok { EDNS_DO } else { 0 });
        w.u16((ede_len + cookie_len) as u16);
        if let Some(data) = &resp.cookie {
            w.u16(option::COOKIE);
            w.u16(cookie::REPLY_LEN as u16);
            w.buf.extend_from_slice(data);
        }
        if let Some(code) = resp.ede {
            w.u16(option::EDE);
            w.u16(2);
            w.u16(code);
        }
        ar += 1;
    }
    // TSIG comes last, after the OPT (RFC 8945 section 4.2).
    if let Some(rr) = &resp.tsig {
        w.buf.extend_from_slice(rr);
        ar += 1;
    }
    w.set_u16(6, an);
    w.set_u16(8, ns);
    w.set_u16(10, ar);
    w.buf
}

/// A reply with no records (FORMERR for malformed queries): ID, opcode and RD echoed, and the
/// question (exactly as received) when there is one.
pub fn render_header_only(id: u16, query_flags: u16, rcode: u16, question: Option<&[u8]>) -> Vec<u8> {
    let flags = FLAG_QR | (query_flags & OPCODE_MASK) | (query_flags & (FLAG_RD | FLAG_CD)) | (rcode & 0xf);
    let mut out = Vec::with_capacity(HEADER_LEN + question.map_or(0, <[u8]>::len));
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&u16::from(question.is_some()).to_be_bytes());
    out.extend_from_slice(&[0; 6]);
    out.extend_from_slice(question.unwrap_or_default());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query_bytes(name: &[u8], qtype: u16, edns: Option<(u16, u16)>) -> Vec<u8> {
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, edns.is_some() as u8];
        q.extend_from_slice(name);
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&1u16.to_be_bytes());
        if let Some((payload, flags)) = edns {
            q.extend_from_slice(&[0, 0, 41]);
            q.extend_from_slice(&payload.to_be_bytes());
            q.extend_from_slice(&[0, 0]);
            q.extend_from_slice(&flags.to_be_bytes());
            q.extend_from_slice(&[0, 0]);
        }
        q
    }

    #[test]
    fn parses_query_with_edns_and_keeps_case() {
        let msg = query_bytes(b"\x03WwW\x07example\x03com\x00", 1, Some((4096, 0x8000)));
        let Parsed::Query(q) = parse_query(&msg) else { panic!("not parsed") };
        assert_eq!(q.qname_wire, b"\x03WwW\x07example\x03com\x00");
        assert_eq!(q.qname.to_string(), "www.example.com.");
        assert_eq!(q.edns, Some(Edns { payload: 4096, version: 0, dnssec_ok: true }));
    }

    #[test]
    fn malformed_queries() {
        assert!(matches!(parse_query(&[0; 5]), Parsed::Drop));
        let mut resp = query_bytes(b"\x01a\x00", 1, None);
        resp[2] |= 0x80;
        assert!(matches!(parse_query(&resp), Parsed::Drop));
        let mut trailing = query_bytes(b"\x01a\x00", 1, None);
        trailing.push(0);
        assert!(matches!(parse_query(&trailing), Parsed::FormErr { id: 0x1234, .. }));
        assert!(matches!(parse_query(&query_bytes(b"\x01a", 1, None)[..15]), Parsed::FormErr { .. }));
        let mut two = query_bytes(b"\x01a\x00", 1, None);
        two[5] = 2;
        assert!(matches!(parse_query(&two), Parsed::FormErr { .. }));
    }

    #[test]
    fn renders_with_compression_to_question() {
        let msg = query_bytes(b"\x03WWW\x07example\x03com\x00", 1, None);
        let Parsed::Query(q) = parse_query(&msg) else { panic!() };
        let owner = Name::from_text("www.example.com").unwrap();
        let rdata = Rdata::new(rtype::A, vec![192, 0, 2, 1]);
        let resp = Response {
            aa: true,
            answer: vec![Rr { owner: Cow::Borrowed(&owner), rtype: 1, ttl: 300, rdata: Cow::Borrowed(&rdata) }],
            ..Default::default()
        };
        let out = render(&q, &resp, 512, 1232);
        let mut expect = vec![0x12, 0x34, 0x85, 0x00, 0, 1, 0, 1, 0, 0, 0, 0];
        expect.extend_from_slice(b"\x03WWW\x07example\x03com\x00\x00\x01\x00\x01");
        expect.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 1, 0x2c, 0, 4, 192, 0, 2, 1]);
        assert_eq!(out, expect);
    }

    #[test]
    fn truncates_when_over_limit() {
        let msg = query_bytes(b"\x01a\x00", 16, None);
        let Parsed::Query(q) = parse_query(&msg) else { panic!() };
        let owner = Name::from_text("a").unwrap();
        let rdata = Rdata::new(rtype::TXT, vec![b'x'; 600]);
        let resp = Response {
            aa: true,
            answer: vec![Rr { owner: Cow::Borrowed(&owner), rtype: 16, ttl: 1, rdata: Cow::Borrowed(&rdata) }],
            ..Default::default()
        };
        let out = render(&q, &resp, 512, 1232);
        assert_eq!(out.len(), 12 + 3 + 4);
        assert_eq!(out[2] & 0x02, 0x02, "TC set");
        assert_eq!(&out[6..8], &[0, 0]);
    }
}
