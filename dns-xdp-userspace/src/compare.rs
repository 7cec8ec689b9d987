//! Comparing DNS responses from two servers: every record decoded into a normalised, comparable
//! form (owner lowercased, embedded names decompressed, sections as sorted sets), then compared
//! part by part. One comparator for the conformance test (`Scope::Strict`), shadow validation
//! and `dns-xdp diff` (`Scope::Answer`).

use std::fmt;
use std::fmt::Write as _;

use dns_xdp_common::dns::{CLASS_CH, CLASS_IN, EDNS_DO, FLAG_AA, FLAG_CD, FLAG_RD, FLAG_TC, HEADER_LEN, OPCODE_MASK};

/// Record types whose RDATA holds names a server may compress (RFC 3597 section 4) or that we
/// decompress for comparison: (type, offset of the first name, number of consecutive names).
const NAME_RDATA: &[(u16, usize, usize)] = &[
    (2, 0, 1),  // NS
    (5, 0, 1),  // CNAME
    (6, 0, 2),  // SOA: MNAME, RNAME
    (12, 0, 1), // PTR
    (15, 2, 1), // MX
    (17, 0, 2), // RP
    (33, 6, 1), // SRV
    (39, 0, 1), // DNAME
];

/// A name at `pos` in `msg`, following compression pointers; returns the lowercased text form and
/// the position after the name as it appears at `pos`.
pub fn read_name(msg: &[u8], mut pos: usize) -> Option<(String, usize)> {
    let mut out = String::new();
    let mut end = None;
    // A legal name has at most 127 labels; pointer loops end here too.
    for _ in 0..256 {
        let len = *msg.get(pos)? as usize;
        match len {
            0 => {
                if out.is_empty() {
                    out.push('.');
                }
                return Some((out, end.unwrap_or(pos + 1)));
            }
            1..=63 => {
                for &b in msg.get(pos + 1..pos + 1 + len)? {
                    let b = b.to_ascii_lowercase();
                    if b.is_ascii_graphic() && b != b'.' && b != b'\\' {
                        out.push(b as char);
                    } else {
                        out.push_str(&format!("\\{b:03}"));
                    }
                }
                out.push('.');
                pos += 1 + len;
            }
            0xc0..=0xff => {
                let ptr = ((len & 0x3f) << 8) | *msg.get(pos + 1)? as usize;
                end.get_or_insert(pos + 2);
                pos = ptr;
            }
            _ => return None,
        }
    }
    None
}

fn be16(msg: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(msg.get(at..at + 2)?.try_into().ok()?))
}

/// One record, normalised.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Record {
    pub owner: String,
    pub rtype: u16,
    pub class: u16,
    pub ttl: u32,
    /// Embedded names (see `NAME_RDATA`) as lowercased text, the rest as hex.
    pub rdata: String,
}

impl fmt::Display for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {} {} {}", self.owner, self.ttl, class_name(self.class), type_name(self.rtype), self.rdata)
    }
}

pub fn type_name(t: u16) -> String {
    let known = [
        (1, "A"),
        (2, "NS"),
        (5, "CNAME"),
        (6, "SOA"),
        (12, "PTR"),
        (13, "HINFO"),
        (15, "MX"),
        (16, "TXT"),
        (17, "RP"),
        (28, "AAAA"),
        (33, "SRV"),
        (35, "NAPTR"),
        (39, "DNAME"),
        (41, "OPT"),
        (43, "DS"),
        (44, "SSHFP"),
        (46, "RRSIG"),
        (47, "NSEC"),
        (48, "DNSKEY"),
        (50, "NSEC3"),
        (51, "NSEC3PARAM"),
        (52, "TLSA"),
        (64, "SVCB"),
        (65, "HTTPS"),
        (251, "IXFR"),
        (252, "AXFR"),
        (255, "ANY"),
        (257, "CAA"),
    ];
    known.iter().find(|(n, _)| *n == t).map_or_else(|| format!("TYPE{t}"), |(_, s)| (*s).to_owned())
}

fn class_name(c: u16) -> String {
    match c {
        CLASS_IN => "IN".into(),
        CLASS_CH => "CH".into(),
        _ => format!("CLASS{c}"),
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The EDNS(0) part of a response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Opt {
    pub payload: u16,
    pub version: u8,
    pub dnssec_ok: bool,
    /// Option codes present, sorted.
    pub options: Vec<u16>,
}

/// A response reduced to what two correct servers must agree on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Normal {
    /// Full RCODE (extended bits from the OPT record included).
    pub rcode: u16,
    pub aa: bool,
    pub tc: bool,
    pub rd: bool,
    /// Checking Disabled, echoed or not (RFC 4035 section 3.1.6 says a security-aware server copies it).
    pub cd: bool,
    pub opcode: u8,
    /// The question exactly as sent back (case kept: 0x20 randomisation relies on it), as hex.
    pub question: Option<String>,
    pub answer: Vec<Record>,
    pub authority: Vec<Record>,
    pub additional: Vec<Record>,
    pub opt: Option<Opt>,
}

impl fmt::Display for Normal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rcode={} opcode={}", self.rcode, self.opcode)?;
        for (on, name) in [(self.aa, "aa"), (self.tc, "tc"), (self.rd, "rd"), (self.cd, "cd")] {
            if on {
                write!(f, " {name}")?;
            }
        }
        if let Some(o) = &self.opt {
            write!(
                f,
                " opt(v{} payload {}{} options {:?})",
                o.version,
                o.payload,
                if o.dnssec_ok { " do" } else { "" },
                o.options
            )?;
        }
        if self.question.is_none() {
            write!(f, " no-question")?;
        }
        for (name, list) in [("ANSWER", &self.answer), ("AUTHORITY", &self.authority), ("ADDITIONAL", &self.additional)]
        {
            for r in list.iter() {
                write!(f, "\n    {name}: {r}")?;
            }
        }
        Ok(())
    }
}

/// What is broken in a response `parse` refuses.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    #[error("shorter than a header")]
    Short,
    #[error("bad question name")]
    QuestionName,
    #[error("question cut short")]
    QuestionCut,
    #[error("QDCOUNT {0}")]
    Qdcount(u16),
    #[error("bad owner name at {0}")]
    OwnerName(usize),
    #[error("record cut short")]
    RecordCut,
    #[error("rdata cut short")]
    RdataCut,
    #[error("rdata too short")]
    RdataShort,
    #[error("bad name in rdata")]
    RdataName,
    #[error("rdata names overrun")]
    RdataOverrun,
    #[error("{0} trailing bytes")]
    Trailing(usize),
}

/// Parses a response; `Err` says what is broken.
pub fn parse(msg: &[u8]) -> Result<Normal, Malformed> {
    let flags = be16(msg, 2).ok_or(Malformed::Short)?;
    if msg.len() < 12 {
        return Err(Malformed::Short);
    }
    let counts: Vec<u16> = (0..4).map(|i| be16(msg, 4 + 2 * i).unwrap_or(0)).collect();
    let mut pos = 12;
    let question = match counts[0] {
        0 => None,
        1 => {
            let (_, after) = read_name(msg, pos).ok_or(Malformed::QuestionName)?;
            let end = after + 4;
            let q = msg.get(pos..end).ok_or(Malformed::QuestionCut)?;
            pos = end;
            Some(hex(q))
        }
        n => return Err(Malformed::Qdcount(n)),
    };
    let mut sections: [Vec<Record>; 3] = Default::default();
    let mut opt = None;
    let mut rcode = flags & 0xf;
    for (s, section) in sections.iter_mut().enumerate() {
        for _ in 0..counts[s + 1] {
            let (owner, after) = read_name(msg, pos).ok_or(Malformed::OwnerName(pos))?;
            let rtype = be16(msg, after).ok_or(Malformed::RecordCut)?;
            let class = be16(msg, after + 2).ok_or(Malformed::RecordCut)?;
            let ttl =
                u32::from_be_bytes(msg.get(after + 4..after + 8).ok_or(Malformed::RecordCut)?.try_into().unwrap());
            let rdlen = be16(msg, after + 8).ok_or(Malformed::RecordCut)? as usize;
            let start = after + 10;
            let rdata = msg.get(start..start + rdlen).ok_or(Malformed::RdataCut)?;
            pos = start + rdlen;
            if rtype == dns_xdp_common::dns::rtype::OPT {
                let mut options = Vec::new();
                let mut at = 0;
                while at + 4 <= rdata.len() {
                    options.push(u16::from_be_bytes([rdata[at], rdata[at + 1]]));
                    at += 4 + u16::from_be_bytes([rdata[at + 2], rdata[at + 3]]) as usize;
                }
                options.sort_unstable();
                rcode |= ((ttl >> 24) as u16) << 4;
                opt = Some(Opt {
                    payload: class,
                    version: (ttl >> 16) as u8,
                    dnssec_ok: ttl & u32::from(EDNS_DO) != 0,
                    options,
                });
                continue;
            }
            let rdata = match NAME_RDATA.iter().find(|(t, _, _)| *t == rtype) {
                Some(&(_, first, names)) => {
                    let mut text = hex(rdata.get(..first).ok_or(Malformed::RdataShort)?);
                    let mut at = start + first;
                    for _ in 0..names {
                        let (name, next) = read_name(msg, at).ok_or(Malformed::RdataName)?;
                        text.push_str(&format!(" {name} "));
                        at = next;
                    }
                    text.push_str(&hex(msg.get(at..pos).ok_or(Malformed::RdataOverrun)?));
                    text.trim().to_owned()
                }
                None => hex(rdata),
            };
            section.push(Record { owner, rtype, class, ttl, rdata });
        }
    }
    if pos != msg.len() {
        return Err(Malformed::Trailing(msg.len() - pos));
    }
    for section in &mut sections {
        section.sort();
        section.dedup();
    }
    let [answer, authority, additional] = sections;
    Ok(Normal {
        rcode,
        aa: flags & FLAG_AA != 0,
        tc: flags & FLAG_TC != 0,
        rd: flags & FLAG_RD != 0,
        cd: flags & FLAG_CD != 0,
        opcode: ((flags & OPCODE_MASK) >> 11) as u8,
        question,
        answer,
        authority,
        additional,
        opt,
    })
}

/// How much of two responses must agree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every part: additional section and the OPT record's payload, version, DO and option codes
    /// too (parts `additional`, `opt`). For comparing servers on a fixed corpus.
    Strict,
    /// What an authoritative answer is judged by (issue 8): RCODE, the flags that matter (AA, TC,
    /// RD and CD echo, opcode), the question, the answer and authority sections as sets with TTLs, and
    /// whether there is an OPT record at all (part `edns`). Additional data is optional (RFC 2181
    /// section 9 lets a server leave it out) and EDNS details are each server's own.
    Answer,
}

/// The parts in which two responses differ, in a fixed order: `rcode`, `flags`, `question`,
/// `answer`, `authority`, then `additional` and `opt` (`Strict`) or `edns` (`Answer`).
pub fn differences(a: &Normal, b: &Normal, scope: Scope) -> Vec<&'static str> {
    let mut parts = Vec::new();
    if a.rcode != b.rcode {
        parts.push("rcode");
    }
    if (a.aa, a.tc, a.rd, a.cd, a.opcode) != (b.aa, b.tc, b.rd, b.cd, b.opcode) {
        parts.push("flags");
    }
    if a.question != b.question {
        parts.push("question");
    }
    // A truncated answer's sections are only a hint (RFC 2181 section 9): compare them only
    // when neither side truncated.
    if !(a.tc || b.tc) {
        if a.answer != b.answer {
            parts.push("answer");
        }
        let authority_differs = match scope {
            Scope::Strict => a.authority != b.authority,
            Scope::Answer => essential_authority(a).ne(essential_authority(b)),
        };
        if authority_differs {
            parts.push("authority");
        }
        if scope == Scope::Strict && a.additional != b.additional {
            parts.push("additional");
        }
    }
    match scope {
        Scope::Strict if a.opt != b.opt => parts.push("opt"),
        Scope::Answer if a.opt.is_some() != b.opt.is_some() => parts.push("edns"),
        _ => {}
    }
    parts
}

/// A query in a few words, for reports: `www.example.com. A edns do` (`rd` when RD is set).
pub fn describe_query(msg: &[u8]) -> String {
    let Some((name, after)) = read_name(msg, HEADER_LEN).filter(|_| msg.len() >= HEADER_LEN) else {
        return format!("unparseable query ({} bytes)", msg.len());
    };
    let mut out = format!("{name} {}", be16(msg, after).map_or_else(|| "?".into(), type_name));
    if be16(msg, after + 2).is_some_and(|c| c != CLASS_IN) {
        let _ = write!(out, " class{}", be16(msg, after + 2).unwrap_or(0));
    }
    if msg[2] & 1 != 0 {
        out.push_str(" rd");
    }
    // The OPT record, when it is the only additional record right after the question.
    let opt = after + 4;
    if be16(msg, 10) == Some(1) && msg.get(opt) == Some(&0) && be16(msg, opt + 1) == Some(41) {
        out.push_str(" edns");
        if msg.get(opt + 7).is_some_and(|f| f & 0x80 != 0) {
            out.push_str(" do");
        }
    }
    out
}

/// The authority section without what a server may add to a positive answer at will: the
/// zone's NS RRset (and its RRSIG) beside answer data is optional (RFC 2181 section 9; NSD
/// sends it, Knot and dns-xdp do not). Proofs and referrals are kept.
fn essential_authority(n: &Normal) -> impl Iterator<Item = &Record> {
    let positive = !n.answer.is_empty();
    n.authority.iter().filter(move |r| !(positive && (r.rtype == 2 || (r.rtype == 46 && r.rdata.starts_with("0002")))))
}

impl Normal {
    /// One line: the header summary and every record, `|`-separated (for logs).
    pub fn one_line(&self) -> String {
        self.to_string().replace("\n    ", " | ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decompresses_names_in_rdata() {
        // Response to "a. CNAME": answer a. CNAME b.a. with the target compressed to the qname.
        let mut m = vec![0, 1, 0x84, 0, 0, 1, 0, 1, 0, 0, 0, 0];
        m.extend_from_slice(b"\x01A\x00\x00\x05\x00\x01");
        m.extend_from_slice(&[0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 4, 1, b'b', 0xc0, 12]);
        let n = parse(&m).unwrap();
        assert_eq!(n.answer[0].to_string(), "a. 60 IN CNAME b.a.");
        assert_eq!(n.question.as_deref(), Some("014100000500 01".replace(' ', "").as_str()));
    }

    fn response(answer_ttl: u32, additional: bool, edns: bool) -> Vec<u8> {
        // "a. A" answered with a. 60 A 192.0.2.1, optionally glue-like additional data and an OPT.
        let mut m = vec![0, 1, 0x84, 0, 0, 1, 0, 1, 0, 0, 0, u8::from(additional) + u8::from(edns)];
        m.extend_from_slice(b"\x01a\x00\x00\x01\x00\x01");
        m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
        m.extend_from_slice(&answer_ttl.to_be_bytes());
        m.extend_from_slice(&[0, 4, 192, 0, 2, 1]);
        if additional {
            m.extend_from_slice(&[0xc0, 12, 0, 28, 0, 1, 0, 0, 0, 60, 0, 16]);
            m.extend_from_slice(&[0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        }
        if edns {
            m.extend_from_slice(&[0, 0, 41, 4, 0xd0, 0, 0, 0, 0, 0, 0]);
        }
        m
    }

    #[test]
    fn answer_scope_ignores_additional_data_and_edns_details() {
        let plain = parse(&response(60, false, false)).unwrap();
        let extra = parse(&response(60, true, false)).unwrap();
        assert_eq!(differences(&plain, &extra, Scope::Answer), Vec::<&str>::new());
        assert_eq!(differences(&plain, &extra, Scope::Strict), ["additional"]);
        let ttl = parse(&response(61, false, false)).unwrap();
        assert_eq!(differences(&plain, &ttl, Scope::Answer), ["answer"], "TTLs are part of the set");
        let mut with_ns = plain.clone();
        with_ns.authority.push(Record { owner: "a.".into(), rtype: 2, class: 1, ttl: 60, rdata: "ns.a.".into() });
        assert_eq!(differences(&plain, &with_ns, Scope::Answer), Vec::<&str>::new(), "NS beside an answer is optional");
        assert_eq!(differences(&plain, &with_ns, Scope::Strict), ["authority"]);
        let edns = parse(&response(60, false, true)).unwrap();
        assert_eq!(differences(&plain, &edns, Scope::Answer), ["edns"]);
        assert_eq!(differences(&plain, &edns, Scope::Strict), ["opt"]);
        assert!(!plain.one_line().contains('\n'));
    }

    #[test]
    fn describes_queries() {
        let mut q = vec![0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 1];
        q.extend_from_slice(b"\x03WwW\x07example\x00\x00\x1c\x00\x01");
        q.extend_from_slice(&[0, 0, 41, 4, 0xd0, 0, 0, 0x80, 0, 0, 0]);
        assert_eq!(describe_query(&q), "www.example. AAAA rd edns do");
        assert_eq!(describe_query(&q[..5]), "unparseable query (5 bytes)");
    }
}
