//! Spoofed-source IPv4 queries (a raw socket inside a test namespace) and a capture that counts
//! the bytes the server sends toward a prefix: what an amplification attack aims at a victim.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use crate::Netns;

/// IPv4 + UDP headers.
const HDRS: usize = 28;

fn csum(data: &[u8], mut sum: u32) -> u16 {
    for c in data.chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An IPv4/UDP packet from `src:sport` to `dst:53` carrying `dns`, with correct checksums.
pub fn ipv4_udp(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dns: &[u8]) -> Vec<u8> {
    let total = HDRS + dns.len();
    let mut p = Vec::with_capacity(total);
    p.extend([0x45, 0]);
    p.extend((total as u16).to_be_bytes());
    p.extend([0, 0, 0x40, 0, 64, 17, 0, 0]);
    p.extend(src.octets());
    p.extend(dst.octets());
    let ip_sum = csum(&p[..20], 0);
    p[10..12].copy_from_slice(&ip_sum.to_be_bytes());
    let udp_len = (8 + dns.len()) as u16;
    p.extend(sport.to_be_bytes());
    p.extend(53u16.to_be_bytes());
    p.extend(udp_len.to_be_bytes());
    p.extend([0, 0]);
    p.extend(dns);
    let mut pseudo = Vec::with_capacity(12 + p.len() - 20);
    pseudo.extend(src.octets());
    pseudo.extend(dst.octets());
    pseudo.extend([0, 17]);
    pseudo.extend(udp_len.to_be_bytes());
    pseudo.extend(&p[20..]);
    let mut udp_sum = csum(&pseudo, 0);
    if udp_sum == 0 {
        udp_sum = 0xffff;
    }
    p[26..28].copy_from_slice(&udp_sum.to_be_bytes());
    p
}

/// Sends `packets` (cycled) through a raw IPv4 socket from inside `ns`, as fast as it can, at most
/// `max_count` packets and `max_time`. Returns (packets sent, IP bytes sent).
pub fn flood(ns: &Netns, dst: Ipv4Addr, packets: &[Vec<u8>], max_count: usize, max_time: Duration) -> (usize, u64) {
    ns.run_inside(|| {
        // SAFETY: plain socket syscalls on a descriptor this closure owns and closes.
        unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW);
            assert!(fd >= 0, "raw socket: {}", std::io::Error::last_os_error());
            let addr = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: 0,
                sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(dst.octets()) },
                sin_zero: [0; 8],
            };
            let start = Instant::now();
            let (mut sent, mut bytes) = (0usize, 0u64);
            for i in 0..max_count {
                if i % 256 == 0 && start.elapsed() > max_time {
                    break;
                }
                let p = &packets[i % packets.len()];
                let rc = libc::sendto(
                    fd,
                    p.as_ptr().cast(),
                    p.len(),
                    0,
                    (&raw const addr).cast(),
                    size_of::<libc::sockaddr_in>() as libc::socklen_t,
                );
                if rc > 0 {
                    sent += 1;
                    bytes += p.len() as u64;
                }
            }
            libc::close(fd);
            (sent, bytes)
        }
    })
}

/// DNS replies (UDP from port 53) seen on an interface toward one /24.
#[derive(Debug, Default, Clone)]
pub struct Capture {
    pub packets: usize,
    /// IP bytes (IPv4 total length) of those replies.
    pub bytes: u64,
    /// DNS messages of the replies with TC=1, as received.
    pub truncated: Vec<Vec<u8>>,
    /// Replies with TC=0.
    pub full: usize,
}

/// Captures on `ifname` inside `ns` until `stop` returns true (checked every receive timeout)
/// or `max_time` passes.
pub fn capture_toward(
    ns: &Netns,
    ifname: &str,
    prefix: [u8; 3],
    max_time: Duration,
    stop: &std::sync::atomic::AtomicBool,
) -> Capture {
    ns.run_inside(|| {
        let mut cap = Capture::default();
        // SAFETY: plain socket syscalls on a descriptor this closure owns and closes; the buffer
        // outlives every recv into it.
        unsafe {
            let proto = (libc::ETH_P_IP as u16).to_be();
            let fd = libc::socket(libc::AF_PACKET, libc::SOCK_DGRAM, i32::from(proto));
            assert!(fd >= 0, "packet socket: {}", std::io::Error::last_os_error());
            let name = std::ffi::CString::new(ifname).expect("interface name");
            let mut sll: libc::sockaddr_ll = std::mem::zeroed();
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_protocol = proto;
            sll.sll_ifindex = libc::if_nametoindex(name.as_ptr()) as i32;
            let rc = libc::bind(fd, (&raw const sll).cast(), size_of::<libc::sockaddr_ll>() as u32);
            assert_eq!(rc, 0, "bind packet socket: {}", std::io::Error::last_os_error());
            let tv = libc::timeval { tv_sec: 0, tv_usec: 100_000 };
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&raw const tv).cast(),
                size_of::<libc::timeval>() as u32,
            );
            // Big enough a buffer to ride out a burst.
            let rcvbuf: libc::c_int = 8 << 20;
            libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, (&raw const rcvbuf).cast(), 4);
            let mut buf = vec![0u8; 2048];
            let start = Instant::now();
            while start.elapsed() < max_time {
                let n = libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0);
                if n <= 0 {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        break;
                    }
                    continue;
                }
                let p = &buf[..n as usize];
                if p.len() < HDRS + 12 || p[0] != 0x45 || p[9] != 17 || p[16..19] != prefix || p[20..22] != [0, 53] {
                    continue;
                }
                cap.packets += 1;
                cap.bytes += u64::from(u16::from_be_bytes([p[2], p[3]]));
                let dns = &p[HDRS..];
                if dns[2] & 0x02 != 0 {
                    cap.truncated.push(dns.to_vec());
                } else {
                    cap.full += 1;
                }
            }
            libc::close(fd);
        }
        cap
    })
}
