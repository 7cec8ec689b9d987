//! The generated query corpus: every name of the zones (and names below, beside and around them)
//! times many types, with and without EDNS and DO, over UDP and TCP, some in mixed case; plus
//! hand-made policy and malformed messages.

use std::path::Path;

use super::message::type_name;
use super::servers::ZoneFile;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// One query to send to every server.
#[derive(Clone, Debug)]
pub struct Query {
    /// `udp do Www.example.test. A`, or `udp malformed: what`; deviations match against it.
    pub desc: String,
    pub bytes: Vec<u8>,
    pub transport: Transport,
}

/// EDNS(0) of a query: (payload, DO).
pub type EdnsSpec = Option<(u16, bool)>;

/// Encodes a query: RD=0, one question, an OPT record when `edns` is given. `name` is text,
/// absolute or not; its case is kept.
pub fn query_bytes(id: u16, name: &str, qtype: u16, qclass: u16, edns: EdnsSpec) -> Vec<u8> {
    let mut q = id.to_be_bytes().to_vec();
    q.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, u8::from(edns.is_some())]);
    q.extend_from_slice(&name_wire(name));
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&qclass.to_be_bytes());
    if let Some((payload, dnssec_ok)) = edns {
        q.extend_from_slice(&[0, 0, 41]);
        q.extend_from_slice(&payload.to_be_bytes());
        q.extend_from_slice(&[0, 0, if dnssec_ok { 0x80 } else { 0 }, 0, 0, 0]);
    }
    q
}

pub fn name_wire(name: &str) -> Vec<u8> {
    let mut wire = Vec::new();
    for label in name.trim_end_matches('.').split('.').filter(|l| !l.is_empty()) {
        wire.push(label.len() as u8);
        wire.extend_from_slice(label.as_bytes());
    }
    wire.push(0);
    wire
}

/// Owner names of a zone file as written by hand or by ldns-signzone: the first token of every
/// line that starts in column one, made absolute with the current `$ORIGIN`.
pub fn owners(zone: &ZoneFile) -> Vec<String> {
    let text = std::fs::read_to_string(&zone.path).unwrap_or_else(|e| panic!("{}: {e}", zone.path.display()));
    let mut origin = zone.origin.clone();
    let mut names = vec![zone.origin.clone()];
    for line in text.lines() {
        let Some(first) = line.split_whitespace().next() else { continue };
        if let Some(rest) = line.strip_prefix("$ORIGIN") {
            origin = rest.split_whitespace().next().unwrap_or(&origin).to_owned();
            continue;
        }
        if line.starts_with([' ', '\t', ';', '$', '(']) {
            continue;
        }
        let name = match first {
            "@" => origin.clone(),
            abs if abs.ends_with('.') => abs.to_owned(),
            rel => format!("{rel}.{origin}"),
        };
        if !names.iter().any(|n| n.eq_ignore_ascii_case(&name)) {
            names.push(name);
        }
    }
    names
}

/// Query types asked for every name.
pub const QTYPES: &[u16] = &[
    1, 2, 5, 6, 12, 13, 15, 16, 17, 18, 21, 25, 28, 29, 33, 35, 36, 37, 39, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52,
    53, 61, 62, 63, 64, 65, 99, 104, 105, 106, 107, 108, 109, 255, 256, 257, 65280, 999,
];

/// 0x20-style case mixing, deterministic per query number.
fn mix_case(name: &str, seed: usize) -> String {
    name.chars()
        .enumerate()
        .map(|(i, c)| if (i * 7 + seed).is_multiple_of(3) { c.to_ascii_uppercase() } else { c })
        .collect()
}

/// The generated part of the corpus.
pub fn generate(zones: &[ZoneFile]) -> Vec<Query> {
    let mut names: Vec<String> = Vec::new();
    for zone in zones {
        for owner in owners(zone) {
            // The name itself, a name below it (under a delegation, wildcard or DNAME, or missing).
            names.push(owner.clone());
            names.push(format!("zz.{owner}"));
            if let Some(parent) = owner.strip_prefix("*.") {
                names.push(format!("a.b.{parent}"));
            }
        }
    }
    // Outside every zone, and above them.
    names.extend(["example.org.", "test.", ".", "example.net."].map(String::from));
    names.dedup();

    let edns_variants: [(&str, EdnsSpec); 3] =
        [("plain", None), ("edns", Some((1232, false))), ("do", Some((4096, true)))];
    let mut out = Vec::new();
    let mut n = 0usize;
    for name in &names {
        let bulky = ["big.", "many.", "_domainkey.", "dnskey"].iter().any(|b| name.contains(b));
        for &qtype in QTYPES {
            for (tag, edns) in edns_variants {
                n += 1;
                let sent = if n.is_multiple_of(3) { mix_case(name, n) } else { name.clone() };
                let tcp = n.is_multiple_of(11) || (bulky && edns.is_none()) || qtype == 255 && n.is_multiple_of(2);
                let transport = if tcp { Transport::Tcp } else { Transport::Udp };
                let proto = if tcp { "tcp" } else { "udp" };
                out.push(Query {
                    desc: format!("{proto} {tag} {sent} {}", type_name(qtype)),
                    bytes: query_bytes((n & 0xffff) as u16, &sent, qtype, 1, edns),
                    transport,
                });
            }
        }
    }
    // Small EDNS buffers: 512 is the floor, answers above it truncate.
    for name in
        ["big.example.test.", "many.example.test.", "sel1._domainkey.example.test.", "secure.test.", "nsec3.test."]
    {
        for qtype in [16, 28, 48, 255] {
            n += 1;
            out.push(Query {
                desc: format!("udp edns512 {name} {}", type_name(qtype)),
                bytes: query_bytes((n & 0xffff) as u16, name, qtype, 1, Some((512, true))),
                transport: Transport::Udp,
            });
        }
    }
    out
}

fn special(desc: &str, bytes: Vec<u8>, transport: Transport) -> Query {
    let proto = if transport == Transport::Tcp { "tcp" } else { "udp" };
    Query { desc: format!("{proto} special: {desc}"), bytes, transport }
}

/// Policy and malformed messages: opcodes, classes, EDNS versions and options, transfers, broken
/// headers, questions and OPT records.
pub fn specials() -> Vec<Query> {
    let base = || query_bytes(0x5151, "www.example.test.", 1, 1, None);
    let edns = || query_bytes(0x5252, "www.example.test.", 1, 1, Some((1232, false)));
    let mut out = Vec::new();
    let mut with = |desc: &str, f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = base();
        f(&mut b);
        out.push(special(desc, b, Transport::Udp));
    };
    for (op, name) in
        [(1, "IQUERY"), (2, "STATUS"), (3, "opcode 3"), (4, "NOTIFY"), (5, "UPDATE"), (6, "DSO"), (15, "opcode 15")]
    {
        with(&format!("opcode {name}"), &move |b| b[2] |= op << 3);
    }
    with("RD set", &|b| b[2] |= 1);
    with("TC set in query", &|b| b[2] |= 2);
    with("AA set in query", &|b| b[2] |= 4);
    with("CD set", &|b| b[3] |= 0x10);
    with("AD set", &|b| b[3] |= 0x20);
    with("Z bit set", &|b| b[3] |= 0x40);
    with("RCODE set in query", &|b| b[3] |= 3);
    with("QR set (a response)", &|b| b[2] |= 0x80);
    with("QDCOUNT 0", &|b| {
        b[5] = 0;
        b.truncate(12)
    });
    with("QDCOUNT 2 with one question", &|b| b[5] = 2);
    with("QDCOUNT 2 with two questions", &|b| {
        let q = b[12..].to_vec();
        b[5] = 2;
        b.extend_from_slice(&q)
    });
    with("ANCOUNT 1 without a record", &|b| b[7] = 1);
    with("NSCOUNT 1 with a record", &|b| {
        b[9] = 1;
        b.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1])
    });
    with("question cut short", &|b| b.truncate(b.len() - 2));
    with("header only", &|b| b.truncate(12));
    with("11 bytes", &|b| b.truncate(11));
    with("trailing garbage", &|b| b.extend_from_slice(&[1, 2, 3]));
    with("label length 64", &|b| b[12] = 64);
    with("compression pointer in question", &|b| {
        b.truncate(12);
        b.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1])
    });
    with("pointer to itself in question", &|b| {
        b.truncate(12);
        b.extend_from_slice(&[3, b'w', b'w', b'w', 0xc0, 12, 0, 1, 0, 1])
    });
    with("name of 256 bytes", &|b| {
        b.truncate(12);
        for _ in 0..4 {
            b.push(63);
            b.extend_from_slice(&[b'a'; 63]);
        }
        b.extend_from_slice(&[0, 0, 1, 0, 1])
    });
    with("name of 255 bytes", &|b| {
        b.truncate(12);
        for _ in 0..3 {
            b.push(63);
            b.extend_from_slice(&[b'a'; 63]);
        }
        b.push(61);
        b.extend_from_slice(&[b'a'; 61]);
        b.extend_from_slice(&[0, 0, 1, 0, 1])
    });
    with("qtype 0", &|b| {
        let l = b.len();
        b[l - 3] = 0
    });
    with("qtype OPT", &|b| {
        let l = b.len();
        b[l - 3] = 41
    });
    with("qtype MAILB", &|b| {
        let l = b.len();
        b[l - 3] = 253
    });
    // TSIG (RFC 8945): malformed ones are FORMERR; a well-formed one with a key the server does not
    // have is NOTAUTH with an unsigned BADKEY record. The servers have no keys.
    let tsig_rdata = {
        let mut r = name_wire("hmac-sha256.");
        r.extend_from_slice(&[0, 0, 0x65, 0x43, 0x21, 0x00, 0x01, 0x2c, 0, 32]);
        r.extend_from_slice(&[0x5a; 32]);
        r.extend_from_slice(&[0x51, 0x51, 0, 0, 0, 0]);
        r
    };
    let tsig_rr = |class: u16, rdata: &[u8]| {
        let mut rr = name_wire("key.example.");
        rr.extend_from_slice(&250u16.to_be_bytes());
        rr.extend_from_slice(&class.to_be_bytes());
        rr.extend_from_slice(&[0, 0, 0, 0]);
        rr.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        rr.extend_from_slice(rdata);
        rr
    };
    let full = tsig_rdata.clone();
    for (desc, rr) in [
        ("TSIG unknown key", tsig_rr(255, &full)),
        ("TSIG empty rdata", tsig_rr(255, &[])),
        ("TSIG truncated rdata", tsig_rr(255, &full[..full.len() - 3])),
        ("TSIG rdata one byte", tsig_rr(255, &[0])),
        ("TSIG class IN", tsig_rr(1, &full)),
    ] {
        with(desc, &move |b| {
            b[11] = 1;
            b.extend_from_slice(&rr)
        });
    }
    let rr = tsig_rr(255, &full);
    with("TSIG before an OPT", &move |b| {
        b[11] = 2;
        b.extend_from_slice(&rr);
        b.extend_from_slice(&[0, 0, 41, 4, 0xd0, 0, 0, 0, 0, 0, 0])
    });
    for (class, name) in [(3u8, "CH"), (4, "HS"), (254, "NONE"), (255, "ANY"), (2, "CS")] {
        with(&format!("class {name}"), &move |b| {
            let l = b.len();
            b[l - 1] = class
        });
    }
    for (name, ty) in [("version.bind.", 16), ("id.server.", 16), ("hostname.bind.", 16), ("version.server.", 16)] {
        out.push(special(&format!("CH TXT {name}"), query_bytes(0x5353, name, ty, 3, None), Transport::Udp));
    }
    for (qtype, t) in [(252u16, "AXFR"), (251, "IXFR")] {
        for transport in [Transport::Udp, Transport::Tcp] {
            for zone in ["example.test.", "secure.test."] {
                out.push(special(&format!("{t} {zone}"), query_bytes(0x5454, zone, qtype, 1, None), transport));
            }
        }
    }
    // The same TSIG cases over TCP.
    for (desc, class, rdata) in
        [("TSIG unknown key", 255, &full[..]), ("TSIG truncated rdata", 255, &full[..full.len() - 3])]
    {
        let mut b = base();
        b[11] = 1;
        b.extend_from_slice(&tsig_rr(class, rdata));
        out.push(special(desc, b, Transport::Tcp));
    }
    // EDNS.
    let mut with_edns = |desc: &str, f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = edns();
        f(&mut b);
        out.push(special(&format!("edns {desc}"), b, Transport::Udp));
    };
    let opt = |b: &Vec<u8>| b.len() - 11;
    with_edns("version 1", &move |b| {
        let o = opt(b);
        b[o + 6] = 1
    });
    with_edns("version 255 DO", &move |b| {
        let o = opt(b);
        b[o + 6] = 255;
        b[o + 7] = 0x80
    });
    with_edns("payload 0", &move |b| {
        let o = opt(b);
        b[o + 3] = 0;
        b[o + 4] = 0
    });
    with_edns("payload 65535", &move |b| {
        let o = opt(b);
        b[o + 3] = 0xff;
        b[o + 4] = 0xff
    });
    with_edns("unknown flag bits", &move |b| {
        let o = opt(b);
        b[o + 8] = 0x7f
    });
    with_edns("extended rcode set in query", &move |b| {
        let o = opt(b);
        b[o + 5] = 1
    });
    with_edns("unknown option", &move |b| {
        b.truncate(b.len() - 2);
        b.extend_from_slice(&[0, 8, 0xfd, 0xe9, 0, 4, 1, 2, 3, 4])
    });
    with_edns("NSID option", &move |b| {
        b.truncate(b.len() - 2);
        b.extend_from_slice(&[0, 4, 0, 3, 0, 0])
    });
    with_edns("padding option", &move |b| {
        b.truncate(b.len() - 2);
        b.extend_from_slice(&[0, 12, 0, 12, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0])
    });
    with_edns("option longer than rdata", &move |b| {
        b.truncate(b.len() - 2);
        b.extend_from_slice(&[0, 8, 0xfd, 0xe9, 0, 9, 1, 2, 3, 4])
    });
    with_edns("rdlength past the end", &move |b| {
        let l = b.len();
        b[l - 1] = 4
    });
    with_edns("OPT owner not root", &move |b| {
        let o = opt(b);
        let mut tail = b.split_off(o);
        tail[0] = 0xc0;
        tail.insert(1, 12);
        b.extend_from_slice(&tail)
    });
    with_edns("two OPT records", &move |b| {
        let o = opt(b);
        let rec = b[o..].to_vec();
        b.extend_from_slice(&rec);
        b[11] = 2
    });
    with_edns("OPT in the authority section", &move |b| {
        b[11] = 0;
        b[9] = 1
    });
    out
}

/// Whether `dir` holds the conformance zones.
pub fn zone_dir_ok(dir: &Path) -> bool {
    dir.join("example.test.zone").is_file()
}
