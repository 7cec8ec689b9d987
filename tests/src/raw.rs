//! Hand-built DNS queries over plain sockets inside a namespace: for byte-exact comparisons that kdig
//! and dig, which only print presentation format, cannot make.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use crate::Netns;

/// How long one exchange may take.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(2);

pub const TYPE_A: u16 = 1;
pub const TYPE_AAAA: u16 = 28;

/// A query: header with RD, one question for `name` (dotted, case kept), class IN, and an OPT record
/// advertising `edns_payload` when given.
pub fn query(id: u16, name: &str, qtype: u16, edns_payload: Option<u16>) -> Vec<u8> {
    let mut p = Vec::with_capacity(64);
    p.extend(id.to_be_bytes());
    p.extend(0x0100u16.to_be_bytes());
    p.extend(1u16.to_be_bytes());
    p.extend([0, 0, 0, 0]);
    p.extend(u16::from(edns_payload.is_some()).to_be_bytes());
    for label in name.trim_end_matches('.').split('.').filter(|l| !l.is_empty()) {
        p.push(u8::try_from(label.len()).expect("label length"));
        p.extend(label.as_bytes());
    }
    p.push(0);
    p.extend(qtype.to_be_bytes());
    p.extend(1u16.to_be_bytes());
    if let Some(size) = edns_payload {
        // Root owner, type OPT (41), class = payload size, TTL = ext-rcode/version/flags 0, no rdata.
        p.extend([0, 0, 41]);
        p.extend(size.to_be_bytes());
        p.extend([0, 0, 0, 0, 0, 0]);
    }
    p
}

/// Send `q` over UDP from inside `ns` and return the first reply, or `None` on timeout.
pub fn udp_exchange(ns: &Netns, to: SocketAddr, q: &[u8]) -> Option<Vec<u8>> {
    ns.run_inside(|| {
        let bind: SocketAddr = if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse().expect("literal");
        let sock = UdpSocket::bind(bind).expect("binding a UDP socket");
        sock.set_read_timeout(Some(EXCHANGE_TIMEOUT)).expect("setting a timeout");
        sock.connect(to).expect("connecting the UDP socket");
        sock.send(q).expect("sending the query");
        let mut buf = vec![0; 65535];
        let n = sock.recv(&mut buf).ok()?;
        buf.truncate(n);
        Some(buf)
    })
}

/// Send `q` over TCP (RFC 1035 section 4.2.2 length prefix) from inside `ns`; return the reply message.
pub fn tcp_exchange(ns: &Netns, to: SocketAddr, q: &[u8]) -> Option<Vec<u8>> {
    ns.run_inside(|| {
        let mut s = TcpStream::connect_timeout(&to, EXCHANGE_TIMEOUT).ok()?;
        s.set_read_timeout(Some(EXCHANGE_TIMEOUT)).ok()?;
        let len = u16::try_from(q.len()).expect("query fits TCP framing");
        let mut framed = len.to_be_bytes().to_vec();
        framed.extend(q);
        s.write_all(&framed).ok()?;
        let mut len = [0; 2];
        s.read_exact(&mut len).ok()?;
        let mut msg = vec![0; usize::from(u16::from_be_bytes(len))];
        s.read_exact(&mut msg).ok()?;
        Some(msg)
    })
}

/// Hex dump, 16 bytes a line, for assertion messages.
pub fn hex(b: &[u8]) -> String {
    b.chunks(16)
        .map(|c| c.iter().map(|x| format!("{x:02x}")).collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_a_query_with_opt() {
        let q = query(0x1234, "WwW.example.com.", TYPE_A, Some(1232));
        let mut want = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1];
        want.extend(b"\x03WwW\x07example\x03com\x00\x00\x01\x00\x01");
        want.extend([0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(q, want);
        assert_eq!(query(1, "example.com", TYPE_AAAA, None).len(), 12 + 13 + 4);
    }
}
