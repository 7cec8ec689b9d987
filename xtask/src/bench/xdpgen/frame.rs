//! Query frames: Ethernet, IPv4 or IPv6, UDP and a DNS query with EDNS(0), built once for each line of
//! the query file. A send only stamps the source port and the DNS ID into a copy and adjusts the UDP
//! checksum from a precomputed sum, so the generator spends its time sending, not building.

use std::net::IpAddr;
use std::path::Path;

use anyhow::{Context as _, Result, bail};

const ETH_HLEN: usize = 14;
const IPV4_HLEN: usize = 20;
const IPV6_HLEN: usize = 40;
const UDP_HLEN: usize = 8;
const DNS_HLEN: usize = 12;
/// EDNS(0) as resolvers send it (RFC 6891): root owner, type OPT, payload 1232 (the DNS flag day 2020
/// value), no extended flags, no options.
const OPT_RR: [u8; 11] = [0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0];

/// The two ends of the veth the frames cross.
#[derive(Clone, Copy, Debug)]
pub struct Endpoints {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub src: IpAddr,
    pub dst: IpAddr,
    pub dst_port: u16,
}

/// One query, ready to copy.
pub struct Template {
    pub frame: Vec<u8>,
    /// Offset of the UDP header.
    l4_off: usize,
    /// Ones'-complement sum (not folded) of everything the UDP checksum covers, with the source port,
    /// the DNS ID and the checksum field zero.
    partial: u32,
}

impl Template {
    /// The question as it goes on the wire (qname, qtype, qclass): what a reply must repeat.
    pub fn question(&self) -> &[u8] {
        let start = self.l4_off + UDP_HLEN + DNS_HLEN;
        &self.frame[start..self.frame.len() - OPT_RR.len()]
    }

    /// Write this query into `buf` with source port `sport` and DNS ID `id`; returns its length.
    pub fn stamp(&self, buf: &mut [u8], sport: u16, id: u16) -> usize {
        let n = self.frame.len();
        buf[..n].copy_from_slice(&self.frame);
        let l4 = self.l4_off;
        buf[l4..l4 + 2].copy_from_slice(&sport.to_be_bytes());
        buf[l4 + UDP_HLEN..l4 + UDP_HLEN + 2].copy_from_slice(&id.to_be_bytes());
        let sum = self.partial + u32::from(sport) + u32::from(id);
        buf[l4 + 6..l4 + 8].copy_from_slice(&finish(sum).to_be_bytes());
        n
    }
}

/// Read a dnsperf-format query file (`name type` per line; `#` and `;` start comments) into templates.
pub fn read_queries(path: &Path, ends: &Endpoints) -> Result<Vec<Template>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split(['#', ';']).next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let mut words = line.split_whitespace();
        let (Some(name), Some(qtype)) = (words.next(), words.next()) else {
            bail!("{}:{}: expected `name type`, got `{line}`", path.display(), i + 1);
        };
        let qtype =
            qtype_code(qtype).with_context(|| format!("{}:{}: unknown type `{qtype}`", path.display(), i + 1))?;
        let qname = wire_name(name).with_context(|| format!("{}:{}: bad name `{name}`", path.display(), i + 1))?;
        out.push(build(ends, &qname, qtype));
    }
    if out.is_empty() {
        bail!("{}: no queries", path.display());
    }
    Ok(out)
}

fn qtype_code(t: &str) -> Option<u16> {
    let known = [
        ("A", 1),
        ("NS", 2),
        ("CNAME", 5),
        ("SOA", 6),
        ("PTR", 12),
        ("MX", 15),
        ("TXT", 16),
        ("AAAA", 28),
        ("SRV", 33),
        ("DS", 43),
        ("DNSKEY", 48),
        ("SVCB", 64),
        ("HTTPS", 65),
        ("CAA", 257),
    ];
    let upper = t.to_ascii_uppercase();
    if let Some(n) = upper.strip_prefix("TYPE") {
        return n.parse().ok();
    }
    known.iter().find(|(name, _)| *name == upper).map(|(_, code)| *code)
}

/// Presentation name to wire format (no escapes: the query files hold plain host names).
pub fn wire_name(name: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(name.len() + 2);
    for label in name.trim_end_matches('.').split('.').filter(|l| !l.is_empty()) {
        if label.len() > 63 {
            return None;
        }
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    (out.len() <= 255).then_some(out)
}

pub(super) fn build(ends: &Endpoints, qname: &[u8], qtype: u16) -> Template {
    let mut dns = vec![0u8; DNS_HLEN];
    dns[5] = 1; // QDCOUNT
    dns[11] = 1; // ARCOUNT: the OPT record
    dns.extend_from_slice(qname);
    dns.extend_from_slice(&qtype.to_be_bytes());
    dns.extend_from_slice(&1u16.to_be_bytes()); // class IN
    dns.extend_from_slice(&OPT_RR);
    let udp_len = (UDP_HLEN + dns.len()) as u16;

    let mut f = Vec::with_capacity(ETH_HLEN + IPV6_HLEN + usize::from(udp_len));
    f.extend_from_slice(&ends.dst_mac);
    f.extend_from_slice(&ends.src_mac);
    let mut pseudo = 0u32;
    match (ends.src, ends.dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            f.extend_from_slice(&0x0800u16.to_be_bytes());
            let mut ip = [0u8; IPV4_HLEN];
            ip[0] = 0x45;
            ip[2..4].copy_from_slice(&(IPV4_HLEN as u16 + udp_len).to_be_bytes());
            ip[6] = 0x40; // DF
            ip[8] = 64; // TTL
            ip[9] = 17; // UDP
            ip[12..16].copy_from_slice(&s.octets());
            ip[16..20].copy_from_slice(&d.octets());
            let c = finish(sum_words(&ip));
            ip[10..12].copy_from_slice(&c.to_be_bytes());
            f.extend_from_slice(&ip);
            pseudo += sum_words(&s.octets()) + sum_words(&d.octets());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            f.extend_from_slice(&0x86ddu16.to_be_bytes());
            let mut ip = [0u8; IPV6_HLEN];
            ip[0] = 0x60;
            ip[4..6].copy_from_slice(&udp_len.to_be_bytes());
            ip[6] = 17; // next header: UDP
            ip[7] = 64; // hop limit
            ip[8..24].copy_from_slice(&s.octets());
            ip[24..40].copy_from_slice(&d.octets());
            f.extend_from_slice(&ip);
            pseudo += sum_words(&s.octets()) + sum_words(&d.octets());
        }
        _ => panic!("source and destination of different families: {} and {}", ends.src, ends.dst),
    }
    pseudo += 17 + u32::from(udp_len);
    let l4_off = f.len();
    f.extend_from_slice(&0u16.to_be_bytes()); // source port: stamped per send
    f.extend_from_slice(&ends.dst_port.to_be_bytes());
    f.extend_from_slice(&udp_len.to_be_bytes());
    f.extend_from_slice(&0u16.to_be_bytes()); // checksum: stamped per send
    f.extend_from_slice(&dns);
    let partial = pseudo + sum_words(&f[l4_off..]);
    Template { frame: f, l4_off, partial }
}

/// Sum of big-endian 16-bit words (an odd last byte padded with zero), not folded.
fn sum_words(b: &[u8]) -> u32 {
    b.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))).sum()
}

/// Fold and complement; a UDP checksum of 0 is sent as 0xffff (RFC 768: 0 means none).
fn finish(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    match !(sum as u16) {
        0 => 0xffff,
        c => c,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ends(v6: bool) -> Endpoints {
        let (src, dst): (IpAddr, IpAddr) = if v6 {
            ("fd00:b:e4c4::2".parse().unwrap(), "fd00:b:e4c4::1".parse().unwrap())
        } else {
            ("198.18.53.2".parse().unwrap(), "198.18.53.1".parse().unwrap())
        };
        Endpoints { src_mac: [2, 0, 0, 0, 0, 2], dst_mac: [2, 0, 0, 0, 0, 1], src, dst, dst_port: 53 }
    }

    /// The UDP checksum over the stamped frame, computed from scratch: 0 (as 0xffff's complement) when right.
    fn verify_udp(frame: &[u8], l4: usize, v6: bool) -> u16 {
        let udp = &frame[l4..];
        let mut sum = sum_words(udp) + 17 + udp.len() as u32;
        sum += if v6 { sum_words(&frame[22..54]) } else { sum_words(&frame[26..34]) };
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }

    #[test]
    fn stamped_frames_carry_correct_checksums() {
        for v6 in [false, true] {
            let t = build(&ends(v6), &wire_name("n00042.bench.test.").unwrap(), 28);
            let mut buf = [0u8; 256];
            for (sport, id) in [(50_000, 0), (50_031, 0xffff), (50_007, 0x1234)] {
                let n = t.stamp(&mut buf, sport, id);
                assert_eq!(verify_udp(&buf[..n], t.l4_off, v6), 0, "v6={v6} sport={sport} id={id:#x}");
                assert_eq!(&buf[t.l4_off..t.l4_off + 2], &sport.to_be_bytes());
                assert_eq!(&buf[t.l4_off + 8..t.l4_off + 10], &id.to_be_bytes());
            }
            if !v6 {
                let n = t.stamp(&mut buf, 1, 1);
                let mut ip = sum_words(&buf[14..34]);
                while ip > 0xffff {
                    ip = (ip & 0xffff) + (ip >> 16);
                }
                assert_eq!(ip, 0xffff, "IPv4 header checksum");
                assert_eq!(u16::from_be_bytes([buf[16], buf[17]]) as usize, n - 14);
            }
        }
    }

    #[test]
    fn question_is_name_type_class() {
        let t = build(&ends(false), &wire_name("www.Example.com").unwrap(), 1);
        assert_eq!(t.question(), b"\x03www\x07Example\x03com\x00\x00\x01\x00\x01");
    }

    #[test]
    fn reads_dnsperf_files_and_names_bad_lines() {
        let dir = std::env::temp_dir().join(format!("xdpgen-frame-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.txt");
        std::fs::write(&good, "# comment\nn00001.bench.test. A\n\nn00002.bench.test AAAA ; trailing\nx.test TYPE65\n")
            .unwrap();
        assert_eq!(read_queries(&good, &ends(false)).unwrap().len(), 3);
        let bad = dir.join("bad.txt");
        std::fs::write(&bad, "n1.test A\nn2.test BOGUS\n").unwrap();
        let e = format!("{:#}", read_queries(&bad, &ends(false)).err().unwrap());
        assert!(e.contains("bad.txt:2: unknown type `BOGUS`"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
