//! Hand-built queries and frames for running the XDP program through BPF_PROG_TEST_RUN: one
//! copy for the kernel tests, the examples that measure it and the test bed's own test, each of
//! which includes this file (`mod testframe;`, or by `#[path]`); no part of the library. Fixed
//! addresses (198.18.0.2 -> 198.18.0.1, 2001:db8::2 -> 2001:db8::1), client port 40000, server
//! port 53, UDP checksum 0 (the program never trusts the query's).
#![allow(dead_code, reason = "each includer uses its own part of it")]

/// The client's UDP port in every frame.
pub const CLIENT_PORT: u16 = 40000;

/// A query with ID 0x1234 and RD set; with `edns`, an OPT record of that payload size and DO bit.
pub fn query(qname: &str, qtype: u16, edns: Option<(u16, bool)>) -> Vec<u8> {
    let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, u8::from(edns.is_some())];
    for label in qname.split('.').filter(|l| !l.is_empty()) {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&[0, 1]);
    if let Some((payload, dnssec)) = edns {
        let p = payload.to_be_bytes();
        q.extend_from_slice(&[0, 0, 41, p[0], p[1], 0, 0, if dnssec { 0x80 } else { 0 }, 0, 0, 0]);
    }
    q
}

/// The UDP header and `dns`.
pub fn udp(dns: &[u8]) -> Vec<u8> {
    let mut u = Vec::with_capacity(8 + dns.len());
    u.extend_from_slice(&CLIENT_PORT.to_be_bytes());
    u.extend_from_slice(&53u16.to_be_bytes());
    u.extend_from_slice(&((8 + dns.len()) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(dns);
    u
}

/// Ethernet, IPv4 (header checksum set), UDP and `dns`.
pub fn ipv4(dns: &[u8]) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00];
    let total = (20 + 8 + dns.len()) as u16;
    let mut ip = vec![0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, 17, 0, 0, 198, 18, 0, 2, 198, 18, 0, 1];
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    let mut sum: u32 = ip.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], c[1]]))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&udp(dns));
    f
}

/// Ethernet, IPv6, UDP and `dns`.
pub fn ipv6(dns: &[u8]) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x86, 0xdd];
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&((8 + dns.len()) as u16).to_be_bytes());
    f.extend_from_slice(&[17, 64]);
    f.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    f.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    f.extend_from_slice(&udp(dns));
    f
}

/// Whether this process may load BPF programs (root), for the kernel tests. CI runs them as
/// root, so there a missing privilege fails the test; elsewhere it prints why `test` is skipped.
pub fn can_load_bpf(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        assert!(std::env::var_os("CI").is_none(), "CI must run {test} as root");
        eprintln!("skipping {test}: loading BPF programs needs root");
    }
    root
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_header_checksum_verifies() {
        let f = ipv4(&query("www.example.test", 1, Some((1232, true))));
        let sum: u32 = f[14..34].chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], c[1]]))).sum();
        assert_eq!((sum & 0xffff) + (sum >> 16), 0xffff);
        assert_eq!(&f[f.len() - 11..f.len() - 6], &[0, 0, 41, 0x04, 0xd0]);
    }
}
