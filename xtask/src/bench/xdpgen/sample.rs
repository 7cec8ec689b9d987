//! The sample of replies that `xdp_count` passes to the stack arrives here: one UDP socket per source
//! port the generator uses (so the stack has somewhere to deliver them and sends no ICMP back), each
//! reply with the kernel's receive timestamp (SO_TIMESTAMPNS).

use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How long one poll waits before the stop flag is looked at again.
const POLL_SLICE: Duration = Duration::from_millis(10);
/// Longest reply read; longer ones are truncated, which the check reports as a mismatch.
const MAX_REPLY: usize = 4096;

/// Sockets bound to `src` at each of `ports`, non-blocking, with receive timestamps on.
pub fn open(src: IpAddr, ports: impl Iterator<Item = u16>) -> io::Result<Vec<UdpSocket>> {
    ports
        .map(|port| {
            let s = UdpSocket::bind(SocketAddr::new(src, port))?;
            s.set_nonblocking(true)?;
            super::enable(s.as_raw_fd(), libc::SOL_SOCKET, libc::SO_TIMESTAMPNS)?;
            Ok(s)
        })
        .collect()
}

/// CLOCK_REALTIME in ns: the clock SO_TIMESTAMPNS stamps with.
pub fn realtime_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Read replies until `stop` is set, calling `on_reply(socket index, DNS message, receive time ns)`.
pub fn receive(socks: &[UdpSocket], stop: &AtomicBool, mut on_reply: impl FnMut(usize, &[u8], u64)) -> io::Result<()> {
    let mut fds: Vec<libc::pollfd> =
        socks.iter().map(|s| libc::pollfd { fd: s.as_raw_fd(), events: libc::POLLIN, revents: 0 }).collect();
    let mut buf = vec![0u8; MAX_REPLY];
    while !stop.load(Ordering::Relaxed) {
        // SAFETY: `fds` is a live array of `fds.len()` pollfds.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, POLL_SLICE.as_millis() as i32) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for (i, fd) in fds.iter().enumerate() {
            if fd.revents & libc::POLLIN == 0 {
                continue;
            }
            while let Some((len, at)) = recv_stamped(fd.fd, &mut buf)? {
                on_reply(i, &buf[..len], at);
            }
        }
    }
    Ok(())
}

/// One datagram and its receive timestamp, or `None` when the socket has nothing queued.
fn recv_stamped(fd: libc::c_int, buf: &mut [u8]) -> io::Result<Option<(usize, u64)>> {
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    // Room for one cmsg holding a timespec, 8-byte aligned as cmsghdr needs.
    let mut control = [0u64; 8];
    // SAFETY: zeroed msghdr is valid; the pointers set below outlive the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control);
    // SAFETY: `msg` describes live buffers of the sizes given.
    let n = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_DONTWAIT) };
    if n < 0 {
        let e = io::Error::last_os_error();
        return match e.kind() {
            io::ErrorKind::WouldBlock => Ok(None),
            io::ErrorKind::Interrupted => Ok(None),
            _ => Err(e),
        };
    }
    let mut at = 0;
    // SAFETY: the CMSG_* walk stays inside msg_control as the kernel filled it (msg_controllen).
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                let ts = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::timespec>());
                at = ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64;
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    if at == 0 {
        // No kernel stamp (should not happen with SO_TIMESTAMPNS): the time we read it.
        at = realtime_ns();
    }
    Ok(Some((n as usize, at)))
}
