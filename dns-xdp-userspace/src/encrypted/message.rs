//! A read-only walk over a DNS message's records, for what the encrypted transports add around an
//! answer: the padding option (padding.rs) and DoH's cache lifetime (RFC 8484 section 5.1). The
//! answer itself is rendered by wire.rs.

use std::ops::Range;

use dns_xdp_common::dns::{HEADER_LEN, rtype};

/// Message sections holding records, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    Answer,
    Authority,
    Additional,
}

/// One resource record's place in a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub section: Section,
    pub rtype: u16,
    pub ttl: u32,
    /// Where its RDATA lies in the message.
    pub rdata: Range<usize>,
}

fn be16(msg: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(msg.get(at..at + 2)?.try_into().ok()?))
}

/// The offset after the (possibly compressed) name at `pos`.
fn skip_name(msg: &[u8], mut pos: usize) -> Option<usize> {
    loop {
        let len = *msg.get(pos)?;
        match len {
            0 => return Some(pos + 1),
            l if l & 0xc0 == 0xc0 => return Some(pos + 2),
            l if l & 0xc0 == 0 => pos += 1 + usize::from(l),
            _ => return None,
        }
    }
}

/// Every record of `msg` after its question(s); `None` when the message does not parse.
pub fn records(msg: &[u8]) -> Option<Vec<Record>> {
    let mut pos = HEADER_LEN;
    for _ in 0..be16(msg, 4)? {
        pos = skip_name(msg, pos)? + 4;
    }
    let counts =
        [(Section::Answer, be16(msg, 6)?), (Section::Authority, be16(msg, 8)?), (Section::Additional, be16(msg, 10)?)];
    let mut out = Vec::new();
    for (section, count) in counts {
        for _ in 0..count {
            pos = skip_name(msg, pos)?;
            let rtype = be16(msg, pos)?;
            let ttl = u32::from_be_bytes(msg.get(pos + 4..pos + 8)?.try_into().ok()?);
            let len = usize::from(be16(msg, pos + 8)?);
            let start = pos + 10;
            let rdata = start..start + len;
            msg.get(rdata.clone())?;
            pos = rdata.end;
            out.push(Record { section, rtype, ttl, rdata });
        }
    }
    (pos == msg.len()).then_some(out)
}

/// How long a DoH answer may be cached (RFC 8484 section 5.1): the smallest TTL of its answer
/// section, or for a negative answer of its authority section (the SOA, RFC 2308 section 5).
/// `None` when it has no record to take a lifetime from.
pub fn min_ttl(msg: &[u8]) -> Option<u32> {
    let records = records(msg)?;
    let smallest = |section| records.iter().filter(|r| r.section == section).map(|r| r.ttl).min();
    smallest(Section::Answer).or_else(|| smallest(Section::Authority))
}

/// The OPT record of `msg` (RFC 6891), if any.
pub fn opt(records: &[Record]) -> Option<&Record> {
    records.iter().find(|r| r.section == Section::Additional && r.rtype == rtype::OPT)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A response for `a.` with one record per (section, type, TTL) given, empty RDATA.
    fn response(records: &[(Section, u16, u32)]) -> Vec<u8> {
        let count = |s| records.iter().filter(|r| r.0 == s).count() as u8;
        let mut m = vec![0, 1, 0x84, 0, 0, 1, 0, count(Section::Answer), 0, count(Section::Authority), 0];
        m.extend_from_slice(&[count(Section::Additional), 1, b'a', 0, 0, 1, 0, 1]);
        for (_, rtype, ttl) in records {
            m.extend_from_slice(&[0xc0, 12]);
            m.extend_from_slice(&rtype.to_be_bytes());
            m.extend_from_slice(&[0, 1]);
            m.extend_from_slice(&ttl.to_be_bytes());
            m.extend_from_slice(&[0, 0]);
        }
        m
    }

    #[test]
    fn cache_lifetime_is_the_smallest_answer_ttl_else_the_authority_s() {
        use Section::*;
        let answer = response(&[(Answer, 1, 300), (Answer, 1, 120), (Authority, 2, 60), (Additional, 41, 0)]);
        assert_eq!(min_ttl(&answer), Some(120), "the authority and the OPT do not count");
        assert_eq!(min_ttl(&response(&[(Authority, 6, 900), (Additional, 41, 0)])), Some(900), "negative: the SOA");
        assert_eq!(min_ttl(&response(&[(Additional, 41, 0)])), None);
        let mut truncated = answer.clone();
        truncated.pop();
        assert_eq!(records(&truncated), None, "a short message does not parse");
    }
}
