//! DNS messages as transfers, NOTIFY and SOA probes need them: a reader that decompresses names
//! (owners and the RFC 1035 RDATA names) and a plain uncompressed builder. Queries answered from
//! zones go through `wire.rs`; this is only for the replication protocols.

use dns_xdp_common::dns::{CLASS_IN, FLAG_QR, HEADER_LEN, rtype};

use crate::name::Name;
use crate::zone::Record;

/// Compression pointers one name may follow; more is a loop.
const MAX_POINTERS: usize = 128;

/// One record as read from a message, with where it sat (TSIG needs the offsets).
#[derive(Clone, Debug)]
pub struct Rr {
    pub owner: Name,
    pub rtype: u16,
    pub class: u16,
    pub ttl: u32,
    /// Uncompressed.
    pub rdata: Vec<u8>,
    pub start: usize,
}

impl Rr {
    pub fn record(&self) -> Record {
        Record { owner: self.owner.clone(), rtype: self.rtype, ttl: self.ttl, rdata: self.rdata.clone() }
    }
}

#[derive(Debug)]
pub struct Message {
    pub id: u16,
    pub flags: u16,
    pub question: Option<(Name, u16, u16)>,
    pub answer: Vec<Rr>,
    pub authority: Vec<Rr>,
    pub additional: Vec<Rr>,
}

impl Message {
    pub fn opcode(&self) -> u8 {
        ((self.flags >> 11) & 0xf) as u8
    }
    pub fn rcode(&self) -> u16 {
        self.flags & 0xf
    }
    pub fn is_response(&self) -> bool {
        self.flags & FLAG_QR != 0
    }
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

/// Reads a possibly compressed name at `pos`; returns it and the offset after it in the message.
pub fn read_name(msg: &[u8], mut pos: usize) -> Option<(Name, usize)> {
    let mut wire = Vec::with_capacity(64);
    let mut end = None;
    for _ in 0..MAX_POINTERS {
        let len = *msg.get(pos)? as usize;
        match len {
            0 => {
                wire.push(0);
                return Some((Name::from_wire(&wire)?, end.unwrap_or(pos + 1)));
            }
            1..=63 => {
                wire.extend_from_slice(msg.get(pos..pos + 1 + len)?);
                pos += 1 + len;
                if wire.len() > 255 {
                    return None;
                }
            }
            0xc0..=0xff => {
                let target = (usize::from(*msg.get(pos)? & 0x3f) << 8) | usize::from(*msg.get(pos + 1)?);
                end.get_or_insert(pos + 2);
                if target >= pos {
                    return None;
                }
                pos = target;
            }
            _ => return None,
        }
    }
    None
}

/// RDATA with its RFC 1035 embedded names decompressed (the only ones a sender may compress,
/// RFC 3597 section 4); other types are copied verbatim.
fn read_rdata(msg: &[u8], rt: u16, start: usize, end: usize) -> Option<Vec<u8>> {
    let names_then_rest = |prefix: usize, names: usize| -> Option<Vec<u8>> {
        let mut out = msg.get(start..start + prefix)?.to_vec();
        let mut pos = start + prefix;
        for _ in 0..names {
            let (name, after) = read_name(msg, pos)?;
            out.extend_from_slice(name.as_wire());
            pos = after;
        }
        out.extend_from_slice(msg.get(pos..end)?);
        (pos <= end).then_some(out)
    };
    match rt {
        rtype::NS | rtype::CNAME | rtype::PTR => names_then_rest(0, 1),
        rtype::MX => names_then_rest(2, 1),
        rtype::SOA => names_then_rest(0, 2),
        _ => msg.get(start..end).map(<[u8]>::to_vec),
    }
}

pub fn parse(msg: &[u8]) -> Option<Message> {
    if msg.len() < HEADER_LEN {
        return None;
    }
    let counts = [be16(msg, 4)?, be16(msg, 6)?, be16(msg, 8)?, be16(msg, 10)?];
    let mut pos = HEADER_LEN;
    let mut question = None;
    for _ in 0..counts[0] {
        let (name, after) = read_name(msg, pos)?;
        question = Some((name, be16(msg, after)?, be16(msg, after + 2)?));
        pos = after + 4;
    }
    let mut sections: [Vec<Rr>; 3] = Default::default();
    for (i, section) in sections.iter_mut().enumerate() {
        for _ in 0..counts[i + 1] {
            let start = pos;
            let (owner, after) = read_name(msg, pos)?;
            let rt = be16(msg, after)?;
            let class = be16(msg, after + 2)?;
            let ttl = u32::from_be_bytes(msg.get(after + 4..after + 8)?.try_into().ok()?);
            let rdlen = be16(msg, after + 8)? as usize;
            let rstart = after + 10;
            let rend = rstart + rdlen;
            if rend > msg.len() {
                return None;
            }
            let rdata = read_rdata(msg, rt, rstart, rend)?;
            section.push(Rr { owner, rtype: rt, class, ttl, rdata, start });
            pos = rend;
        }
    }
    let [answer, authority, additional] = sections;
    Some(Message { id: be16(msg, 0)?, flags: be16(msg, 2)?, question, answer, authority, additional })
}

/// An uncompressed message under construction.
pub struct Builder {
    pub buf: Vec<u8>,
}

pub enum Section {
    Answer = 6,
    Authority = 8,
    Additional = 10,
}

impl Builder {
    pub fn new(id: u16, flags: u16, question: Option<(&Name, u16)>) -> Self {
        let mut buf = Vec::with_capacity(512);
        buf.extend_from_slice(&id.to_be_bytes());
        buf.extend_from_slice(&flags.to_be_bytes());
        buf.extend_from_slice(&[0, u8::from(question.is_some()), 0, 0, 0, 0, 0, 0]);
        if let Some((name, qtype)) = question {
            buf.extend_from_slice(name.as_wire());
            buf.extend_from_slice(&qtype.to_be_bytes());
            buf.extend_from_slice(&CLASS_IN.to_be_bytes());
        }
        Builder { buf }
    }

    pub fn push(&mut self, section: Section, r: &Record) {
        self.push_raw(section, &r.owner, r.rtype, CLASS_IN, r.ttl, &r.rdata);
    }

    pub fn push_raw(&mut self, section: Section, owner: &Name, rt: u16, class: u16, ttl: u32, rdata: &[u8]) {
        self.buf.extend_from_slice(owner.as_wire());
        self.buf.extend_from_slice(&rt.to_be_bytes());
        self.buf.extend_from_slice(&class.to_be_bytes());
        self.buf.extend_from_slice(&ttl.to_be_bytes());
        self.buf.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        self.buf.extend_from_slice(rdata);
        let at = section as usize;
        let n = u16::from_be_bytes([self.buf[at], self.buf[at + 1]]) + 1;
        self.buf[at..at + 2].copy_from_slice(&n.to_be_bytes());
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.len() <= HEADER_LEN
    }
}

/// Wire length of a record as `Builder` writes it.
pub fn record_len(r: &Record) -> usize {
    r.owner.as_wire().len() + 10 + r.rdata.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decompresses_owner_and_soa_names() {
        let origin = Name::from_text("example.org").unwrap();
        let mut b = Builder::new(7, 0x8400, Some((&origin, rtype::SOA)));
        let mut soa = Name::from_text("ns1.example.org").unwrap().as_wire().to_vec();
        soa.extend_from_slice(Name::from_text("host.example.org").unwrap().as_wire());
        soa.extend_from_slice(&[0; 20]);
        b.push(Section::Answer, &Record { owner: origin.clone(), rtype: rtype::SOA, ttl: 60, rdata: soa.clone() });
        // A compressed copy: owner as a pointer to the question, MNAME "ns1" + pointer.
        let mut msg = b.buf.clone();
        msg[7] = 2;
        msg.extend_from_slice(&[0xc0, 12, 0, 6, 0, 1, 0, 0, 0, 60]);
        let rdata = [&[3u8, b'n', b's', b'1', 0xc0, 12, 0xc0, 12][..], &[0; 20]].concat();
        msg.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        msg.extend_from_slice(&rdata);
        let m = parse(&msg).unwrap();
        assert_eq!(m.answer.len(), 2);
        assert_eq!(m.answer[1].owner, origin);
        assert!(m.answer[1].rdata.starts_with(Name::from_text("ns1.example.org").unwrap().as_wire()));
        assert_eq!(m.answer[0].rdata, soa);
    }
}
