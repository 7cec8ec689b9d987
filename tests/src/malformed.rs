//! Malformed DNS-over-UDP packets, generated deterministically, and a bounded sender.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use crate::Netns;

/// Largest packet we generate: above the common 1232-byte EDNS size, below the veth MTU.
const MAX_PACKET: usize = 1400;

/// xorshift64*: reproducible bytes with no dependency; the seed is printed by callers on failure.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64() as u8).collect()
    }
}

/// A plausible query header: RD, QDCOUNT=1, with a random id.
fn header(rng: &mut Rng, qdcount: u16, arcount: u16) -> Vec<u8> {
    let id = rng.next_u64() as u16;
    let mut h = Vec::with_capacity(12);
    h.extend(id.to_be_bytes());
    h.extend(0x0100u16.to_be_bytes());
    h.extend(qdcount.to_be_bytes());
    h.extend(0u16.to_be_bytes());
    h.extend(0u16.to_be_bytes());
    h.extend(arcount.to_be_bytes());
    h
}

fn www_example_com() -> Vec<u8> {
    b"\x03www\x07example\x03com\x00".to_vec()
}

/// Kinds of breakage, each aimed at a parser edge.
pub const KINDS: usize = 12;

/// Packet number `kind` (mod [`KINDS`]) of the malformed corpus.
pub fn packet(rng: &mut Rng, kind: usize) -> Vec<u8> {
    let a = 1u16.to_be_bytes(); // qtype A / class IN
    match kind % KINDS {
        // Random bytes of random length (including 0).
        0 => {
            let len = rng.below(MAX_PACKET + 1);
            rng.bytes(len)
        }
        // Truncated header: fewer than 12 bytes.
        1 => {
            let len = rng.below(12);
            header(rng, 1, 0)[..len].to_vec()
        }
        // Question cut anywhere inside the name or the type/class.
        2 => {
            let mut p = header(rng, 1, 0);
            p.extend(www_example_com());
            p.extend(a);
            p.extend(a);
            let cut = 12 + rng.below(p.len() - 12);
            p.truncate(cut);
            p
        }
        // Compression pointer to itself (a loop) in the question name.
        3 => {
            let mut p = header(rng, 1, 0);
            p.extend([0xc0, 0x0c]);
            p.extend(a);
            p.extend(a);
            p
        }
        // Two pointers pointing at each other.
        4 => {
            let mut p = header(rng, 1, 0);
            p.extend([0x03, b'w', b'w', b'w', 0xc0, 0x12, 0xc0, 0x0c]);
            p.extend(a);
            p.extend(a);
            p
        }
        // Pointer past the end of the packet.
        5 => {
            let mut p = header(rng, 1, 0);
            p.extend([0xc3, 0xff]);
            p.extend(a);
            p.extend(a);
            p
        }
        // Name longer than 255 bytes: many 63-byte labels.
        6 => {
            let mut p = header(rng, 1, 0);
            for _ in 0..(5 + rng.below(15)) {
                p.push(63);
                p.extend(std::iter::repeat_n(b'a', 63));
            }
            p.push(0);
            p.extend(a);
            p.extend(a);
            p.truncate(MAX_PACKET);
            p
        }
        // Reserved label types (0x40/0x80 prefixes) and labels running past the end.
        7 => {
            let mut p = header(rng, 1, 0);
            p.push([0x40, 0x80, 0x7f, 0x3f][rng.below(4)]);
            let len = rng.below(40);
            p.extend(rng.bytes(len));
            p
        }
        // Counts that lie: many questions / answers announced, one present.
        8 => {
            let (qd, ar) = (1 + rng.below(u16::MAX as usize) as u16, rng.next_u64() as u16);
            let mut p = header(rng, qd, ar);
            p[6..10].copy_from_slice(&(rng.next_u64() as u32).to_be_bytes());
            p.extend(www_example_com());
            p.extend(a);
            p.extend(a);
            p
        }
        // An OPT record that is cut short or claims a huge rdata length.
        9 => {
            let mut p = header(rng, 1, 1);
            p.extend(www_example_com());
            p.extend(a);
            p.extend(a);
            p.extend([0, 0, 41, 0x10, 0, 0, 0, 0x80, 0]); // root, OPT, 4096, DO
            p.extend((rng.next_u64() as u16).to_be_bytes()); // rdlength
            let len = rng.below(20);
            p.extend(rng.bytes(len));
            p
        }
        // A valid query with random trailing garbage.
        10 => {
            let mut p = header(rng, 1, 0);
            p.extend(www_example_com());
            p.extend(a);
            p.extend(a);
            let len = 1 + rng.below(200);
            p.extend(rng.bytes(len));
            p
        }
        // A valid-looking header with random flags/opcode (responses, NOTIFY, UPDATE...), random body.
        _ => {
            let mut p = header(rng, 1, 0);
            p[2] = rng.next_u64() as u8;
            p[3] = rng.next_u64() as u8;
            let len = rng.below(300);
            p.extend(rng.bytes(len));
            p
        }
    }
}

/// Send up to `count` malformed packets from inside `from` to `to`, stopping at `max_time`.
/// Returns how many were sent. Replies are not read; send errors (e.g. ICMP-triggered) are ignored.
pub fn send_burst(from: &Netns, to: SocketAddr, count: usize, max_time: Duration, seed: u64) -> usize {
    from.run_inside(|| {
        let bind: SocketAddr = if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse().expect("literal");
        let sock = UdpSocket::bind(bind).expect("binding the sender socket");
        let mut rng = Rng::new(seed);
        let start = Instant::now();
        let mut sent = 0;
        for i in 0..count {
            if start.elapsed() > max_time {
                break;
            }
            let p = packet(&mut rng, i);
            if sock.send_to(&p, to).is_ok() {
                sent += 1;
            }
        }
        sent
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corpus_is_deterministic_and_bounded() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        for i in 0..1000 {
            let p = packet(&mut a, i);
            assert_eq!(p, packet(&mut b, i));
            assert!(p.len() <= MAX_PACKET, "kind {} made {} bytes", i % KINDS, p.len());
        }
    }

    #[test]
    fn loops_and_oversize_names_are_what_they_claim() {
        let mut rng = Rng::new(1);
        assert_eq!(&packet(&mut rng, 3)[12..14], &[0xc0, 0x0c]);
        assert!(packet(&mut rng, 6).len() > 12 + 255);
        assert!(packet(&mut rng, 1).len() < 12);
    }
}
