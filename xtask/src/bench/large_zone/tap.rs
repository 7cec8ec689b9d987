//! Which DNS replies the daemon sent, per reply: an AF_PACKET tap on the server's veth.
//!
//! The daemon's replies leave through the kernel's stack, and `dev_queue_xmit` hands a copy of
//! every outgoing frame to the packet taps (PACKET_OUTGOING) before the veth driver passes the
//! frame on to the client. XDP's replies (XDP_TX) are sent by the driver itself and never meet a
//! tap. So a reply the client received whose (client port, DNS ID) the tap did not see leave came
//! from XDP - provided the tap had read everything queued by the time the client received it,
//! which [`Capture::verdict`] checks with the moment the tap's queue was last found empty.

use std::collections::HashSet;
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

/// One poll's key: the client's UDP port and the DNS ID.
pub type PollKey = (u16, u16);

/// Bytes of each frame the tap keeps: Ethernet, two VLAN tags, IPv6, UDP and the DNS header fit.
const SNAPLEN: u32 = 256;
/// The capture thread's wait for frames between two drains of its queue.
const IDLE_WAIT_MS: i32 = 1;
/// A receive buffer for a few seconds of the change poller's 10,000 replies a second.
const RCVBUF: libc::c_int = 16 << 20;

/// The UDP and DNS header fields of one captured frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpDns {
    pub src_port: u16,
    pub dst_port: u16,
    pub id: u16,
    /// The QR bit: a response.
    pub response: bool,
}

/// Ethernet (up to two 802.1Q/802.1ad tags), IPv4 (first fragment) or IPv6 (UDP as the first next
/// header), UDP, and at least the 3 DNS header bytes this reads; None for anything else.
pub fn parse_frame(f: &[u8]) -> Option<UdpDns> {
    let be16 = |at: usize| -> Option<u16> { Some(u16::from_be_bytes([*f.get(at)?, *f.get(at + 1)?])) };
    let mut at = 12;
    let mut ethertype = be16(at)?;
    for _ in 0..2 {
        if ethertype != 0x8100 && ethertype != 0x88a8 {
            break;
        }
        at += 4;
        ethertype = be16(at)?;
    }
    let l3 = at + 2;
    let udp = match ethertype {
        0x0800 => {
            let vihl = *f.get(l3)?;
            let ihl = usize::from(vihl & 0xf) * 4;
            let frag_offset = be16(l3 + 6)? & 0x1fff;
            if vihl >> 4 != 4 || ihl < 20 || *f.get(l3 + 9)? != 17 || frag_offset != 0 {
                return None;
            }
            l3 + ihl
        }
        0x86dd => {
            if *f.get(l3)? >> 4 != 6 || *f.get(l3 + 6)? != 17 {
                return None;
            }
            l3 + 40
        }
        _ => return None,
    };
    let dns = udp + 8;
    Some(UdpDns {
        src_port: be16(udp)?,
        dst_port: be16(udp + 2)?,
        id: be16(dns)?,
        response: *f.get(dns + 2)? & 0x80 != 0,
    })
}

/// An AF_PACKET socket seeing the frames that leave one interface through the stack.
struct Tap {
    fd: OwnedFd,
    ifindex: libc::c_int,
}

impl Tap {
    /// Must be called inside the interface's network namespace (the socket stays bound to it).
    fn open(ifname: &str) -> Result<Tap> {
        let cname = std::ffi::CString::new(ifname)?;
        // SAFETY: a valid NUL-terminated name.
        let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) } as libc::c_int;
        if ifindex == 0 {
            bail!("no interface {ifname}: {}", std::io::Error::last_os_error());
        }
        // Protocol 0: the socket receives nothing until bind names ETH_P_ALL and the interface, so no
        // frame of another interface gets into its queue first.
        // SAFETY: plain socket(2).
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            bail!("socket(AF_PACKET, SOCK_RAW): {}", std::io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let tap = Tap { fd, ifindex };
        // Keep only outgoing frames (classic BPF on the packet type), cut to SNAPLEN.
        let mut prog = [
            bpf_stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, (libc::SKF_AD_OFF + libc::SKF_AD_PKTTYPE) as u32),
            bpf_jump(libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K, u32::from(libc::PACKET_OUTGOING), 0, 1),
            bpf_stmt(libc::BPF_RET | libc::BPF_K, SNAPLEN),
            bpf_stmt(libc::BPF_RET | libc::BPF_K, 0),
        ];
        let fprog = libc::sock_fprog { len: prog.len() as libc::c_ushort, filter: prog.as_mut_ptr() };
        tap.setsockopt(libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &fprog).context("attaching the tap's filter")?;
        // Root may pass the rmem_max limit; otherwise take what the limit gives.
        if tap.setsockopt(libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, &RCVBUF).is_err() {
            tap.setsockopt(libc::SOL_SOCKET, libc::SO_RCVBUF, &RCVBUF).context("SO_RCVBUF on the tap")?;
        }
        // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        sll.sll_ifindex = ifindex;
        // SAFETY: a valid sockaddr_ll of the size passed.
        let rc = unsafe {
            libc::bind(
                tap.fd.as_raw_fd(),
                (&raw const sll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            bail!("binding the tap to {ifname}: {}", std::io::Error::last_os_error());
        }
        Ok(tap)
    }

    fn setsockopt<T>(&self, level: libc::c_int, name: libc::c_int, value: &T) -> std::io::Result<()> {
        // SAFETY: `value` points to a live T of the size passed.
        let rc = unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                level,
                name,
                (value as *const T).cast(),
                std::mem::size_of::<T>() as libc::socklen_t,
            )
        };
        if rc == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
    }

    /// The next queued outgoing frame of our interface without waiting: its length in `buf`, or None
    /// when the queue is empty.
    fn try_recv(&self, buf: &mut [u8]) -> Result<Option<usize>> {
        loop {
            // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
            let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            let mut len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            // SAFETY: `buf` and `sll` are writable for the lengths passed.
            let n = unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                    (&raw mut sll).cast(),
                    &mut len,
                )
            };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                match e.kind() {
                    std::io::ErrorKind::WouldBlock => return Ok(None),
                    std::io::ErrorKind::Interrupted => continue,
                    _ => return Err(e).context("reading the tap"),
                }
            }
            if sll.sll_ifindex == self.ifindex && sll.sll_pkttype == libc::PACKET_OUTGOING {
                return Ok(Some(n as usize));
            }
        }
    }

    /// Waits up to `ms` for a frame to be queued.
    fn wait(&self, ms: libc::c_int) {
        let mut p = libc::pollfd { fd: self.fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut p, 1, ms) };
    }

    /// (frames that passed the filter, frames dropped for want of buffer) since the socket was
    /// bound; the kernel resets them on reading.
    fn stats(&self) -> Result<(u32, u32)> {
        let mut st = libc::tpacket_stats { tp_packets: 0, tp_drops: 0 };
        let mut len = std::mem::size_of::<libc::tpacket_stats>() as libc::socklen_t;
        // SAFETY: `st` is writable for the length passed.
        let rc = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                (&raw mut st).cast(),
                &mut len,
            )
        };
        if rc != 0 {
            bail!("PACKET_STATISTICS: {}", std::io::Error::last_os_error());
        }
        Ok((st.tp_packets, st.tp_drops))
    }
}

fn bpf_stmt(code: u32, k: u32) -> libc::sock_filter {
    libc::sock_filter { code: code as u16, jt: 0, jf: 0, k }
}

fn bpf_jump(code: u32, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code: code as u16, jt, jf, k }
}

/// What the tap has read so far.
#[derive(Debug, Default)]
struct Seen {
    /// (destination port, DNS ID) of every DNS response that left from port 53.
    replies: HashSet<PollKey>,
    /// Outgoing frames of any kind (the /metrics scrapes' TCP segments are some).
    frames: u64,
    /// The tap's queue was empty at this moment: every frame queued before it has been read.
    empty_at: Option<Instant>,
}

/// How a capture ended.
#[derive(Debug, Default)]
pub struct Captured {
    pub replies: HashSet<PollKey>,
    pub frames: u64,
    /// Frames the kernel dropped for want of room in the tap's buffer: then an unseen reply may
    /// still have been the daemon's.
    pub dropped: u32,
    /// The thread stopped at its own time limit, not when asked.
    pub timed_out: bool,
}

/// A capture thread inside a network namespace, reading a tap on one of its interfaces. It stops
/// when [`Capture::finish`] (or drop) asks, or by itself after its time limit, and closes its socket.
pub struct Capture {
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<Captured>>>,
}

impl Capture {
    /// Spawns the thread; returns once the tap is bound (or failed to be).
    pub fn start(ns: &str, ifname: &str, limit: Duration) -> Result<Capture> {
        let seen: Arc<Mutex<Seen>> = Arc::default();
        let stop: Arc<AtomicBool> = Arc::default();
        let (ready_tx, ready_rx) = mpsc::sync_channel::<Result<()>>(1);
        let thread = {
            let (seen, stop, ns, ifname) = (seen.clone(), stop.clone(), ns.to_owned(), ifname.to_owned());
            std::thread::Builder::new().name("bench-zone-tap".into()).spawn(move || {
                let opened = super::probe::enter_netns(&ns).and_then(|()| Tap::open(&ifname));
                let tap = match opened {
                    Ok(t) => {
                        let _ = ready_tx.send(Ok(()));
                        t
                    }
                    Err(e) => {
                        let msg = format!("{e:#}");
                        let _ = ready_tx.send(Err(e));
                        bail!("{msg}");
                    }
                };
                capture(&tap, &seen, &stop, Instant::now() + limit)
                // `tap` closes here.
            })?
        };
        let mut c = Capture { seen, stop, thread: Some(thread) };
        match ready_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(())) => Ok(c),
            Ok(Err(e)) => Err(e).with_context(|| format!("opening a packet tap on {ifname} in {ns}")),
            Err(_) => {
                c.stop.store(true, Ordering::SeqCst);
                c.thread = None; // it exits by itself at its limit
                bail!("the packet tap on {ifname} in {ns} did not start within 10 s")
            }
        }
    }

    /// Whether the reply with `key` that the client received at `received` left through the
    /// stack: Some(true) the tap saw it (the daemon's), Some(false) it did not though it has read
    /// every frame queued before `received` (XDP's), None not known yet.
    pub fn verdict(&self, key: PollKey, received: Instant) -> Option<bool> {
        let seen = self.seen.lock().expect("tap lock");
        if seen.replies.contains(&key) {
            return Some(true);
        }
        seen.empty_at.filter(|&e| e >= received).map(|_| false)
    }

    /// Stops the thread after a last read of its queue; what it saw.
    pub fn finish(mut self) -> Result<Captured> {
        self.stop.store(true, Ordering::SeqCst);
        let thread = self.thread.take().context("the tap thread was lost")?;
        thread.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The thread's loop: read the queue to empty, publish, wait a little; until asked to stop (then one
/// more read to empty) or `until`.
fn capture(tap: &Tap, seen: &Mutex<Seen>, stop: &AtomicBool, until: Instant) -> Result<Captured> {
    let mut buf = [0u8; SNAPLEN as usize];
    let mut batch = Vec::new();
    let timed_out = loop {
        let stopping = stop.load(Ordering::SeqCst);
        let mut frames = 0u64;
        let empty_at = loop {
            let now = Instant::now();
            match tap.try_recv(&mut buf)? {
                Some(n) => {
                    frames += 1;
                    if let Some(u) = parse_frame(&buf[..n])
                        && u.src_port == 53
                        && u.response
                    {
                        batch.push((u.dst_port, u.id));
                    }
                }
                None => break now,
            }
        };
        {
            let mut s = seen.lock().expect("tap lock");
            s.frames += frames;
            s.replies.extend(batch.drain(..));
            s.empty_at = Some(empty_at);
        }
        if stopping {
            break false;
        }
        if Instant::now() >= until {
            break true;
        }
        tap.wait(IDLE_WAIT_MS);
    };
    let (_, dropped) = tap.stats()?;
    let s = std::mem::take(&mut *seen.lock().expect("tap lock"));
    Ok(Captured { replies: s.replies, frames: s.frames, dropped, timed_out })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn udp(src_port: u16, dst_port: u16, dns: &[u8]) -> Vec<u8> {
        let mut u = src_port.to_be_bytes().to_vec();
        u.extend_from_slice(&dst_port.to_be_bytes());
        u.extend_from_slice(&((8 + dns.len()) as u16).to_be_bytes());
        u.extend_from_slice(&[0, 0]);
        u.extend_from_slice(dns);
        u
    }

    fn ether(ethertype: u16, tags: &[u16]) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
        for &tpid in tags {
            f.extend_from_slice(&tpid.to_be_bytes());
            f.extend_from_slice(&[0, 7]);
        }
        f.extend_from_slice(&ethertype.to_be_bytes());
        f
    }

    fn ipv4(proto: u8, frag: u16, options: usize, payload: &[u8]) -> Vec<u8> {
        let ihl = 5 + options / 4;
        let mut ip = vec![0x40 | ihl as u8, 0];
        ip.extend_from_slice(&((ihl * 4 + payload.len()) as u16).to_be_bytes());
        ip.extend_from_slice(&[0, 1]);
        ip.extend_from_slice(&frag.to_be_bytes());
        ip.extend_from_slice(&[64, proto, 0, 0, 198, 18, 53, 1, 198, 18, 53, 2]);
        ip.extend(std::iter::repeat_n(1u8, options));
        ip.extend_from_slice(payload);
        ip
    }

    fn ipv6(next: u8, payload: &[u8]) -> Vec<u8> {
        let mut ip = vec![0x60, 0, 0, 0];
        ip.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        ip.extend_from_slice(&[next, 64]);
        ip.extend_from_slice(&[0xfd; 32]);
        ip.extend_from_slice(payload);
        ip
    }

    const REPLY: [u8; 12] = [0xbe, 0xef, 0x84, 0, 0, 1, 0, 1, 0, 0, 0, 0];

    #[test]
    fn reads_ports_and_dns_id_from_ipv4_and_ipv6_frames() {
        let want = UdpDns { src_port: 53, dst_port: 40_000, id: 0xbeef, response: true };
        let v4 = [ether(0x0800, &[]), ipv4(17, 0x4000, 0, &udp(53, 40_000, &REPLY))].concat();
        assert_eq!(parse_frame(&v4), Some(want));
        let v4_options = [ether(0x0800, &[]), ipv4(17, 0, 8, &udp(53, 40_000, &REPLY))].concat();
        assert_eq!(parse_frame(&v4_options), Some(want));
        let v6 = [ether(0x86dd, &[]), ipv6(17, &udp(53, 40_000, &REPLY))].concat();
        assert_eq!(parse_frame(&v6), Some(want));
        let tagged = [ether(0x86dd, &[0x88a8, 0x8100]), ipv6(17, &udp(53, 40_000, &REPLY))].concat();
        assert_eq!(parse_frame(&tagged), Some(want));
        let mut query = REPLY;
        query[2] = 0;
        let q = [ether(0x0800, &[]), ipv4(17, 0, 0, &udp(40_000, 53, &query))].concat();
        assert_eq!(parse_frame(&q), Some(UdpDns { src_port: 40_000, dst_port: 53, id: 0xbeef, response: false }));
    }

    #[test]
    fn ignores_what_is_not_a_whole_udp_dns_header() {
        let tcp = [ether(0x0800, &[]), ipv4(6, 0, 0, &udp(53, 40_000, &REPLY))].concat();
        assert_eq!(parse_frame(&tcp), None);
        let later_fragment = [ether(0x0800, &[]), ipv4(17, 185, 0, &udp(53, 40_000, &REPLY))].concat();
        assert_eq!(parse_frame(&later_fragment), None);
        let v6_extension = [ether(0x86dd, &[]), ipv6(0, &udp(53, 40_000, &REPLY))].concat();
        assert_eq!(parse_frame(&v6_extension), None);
        let arp = [ether(0x0806, &[]), vec![0; 28]].concat();
        assert_eq!(parse_frame(&arp), None);
        let short = [ether(0x0800, &[]), ipv4(17, 0, 0, &udp(53, 40_000, &REPLY[..2]))].concat();
        assert_eq!(parse_frame(&short), None);
        assert_eq!(parse_frame(&[0; 13]), None);
    }
}
