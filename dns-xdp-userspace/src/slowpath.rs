//! The daemon's DNS listeners on every `--listen` address: UDP here, TCP in tcp.rs (bound here). They
//! answer whatever the XDP program passed on, with the full zone logic, through the responder
//! (responder.rs) they share.

use std::net::SocketAddr;
use std::sync::Arc;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;

use crate::respond::Transport;
use crate::responder::{Outcome, Responder};

/// UDP receive buffer: the largest DNS message over UDP.
const UDP_BUF: usize = 65535;

/// A listening socket that could not be set up: its address, and the call that failed.
#[derive(Debug, thiserror::Error)]
#[error("binding {addr}: {err}")]
pub struct BindError {
    pub addr: SocketAddr,
    pub err: std::io::Error,
}

fn socket_for(addr: SocketAddr, ty: Type, protocol: Protocol) -> std::io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), ty, Some(protocol))?;
    if addr.is_ipv6() {
        // [::] also takes IPv4 (mapped), so one default address serves both families.
        socket.set_only_v6(false)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(socket)
}

/// Binds `count` blocking UDP sockets sharing `addr` (SO_REUSEPORT spreads queries across them).
pub fn bind_udp(addr: SocketAddr, count: usize) -> Result<Vec<std::net::UdpSocket>, BindError> {
    (0..count)
        .map(|_| {
            let socket = socket_for(addr, Type::DGRAM, Protocol::UDP)?;
            socket.set_nonblocking(false)?;
            Ok(socket.into())
        })
        .collect::<std::io::Result<_>>()
        .map_err(|err| BindError { addr, err })
}

/// Answers UDP queries on `socket` on a thread of its own, one per core: a query is answered
/// start to finish without awaiting, so a blocking receive/send loop does less work per packet
/// than an async task (no readiness polling, no waker traffic).
pub fn spawn_udp(socket: std::net::UdpSocket, responder: Arc<Responder>) -> std::io::Result<()> {
    // Hooks called from here (NOTIFY handling, shadow sampling) may spawn tokio tasks.
    let runtime = tokio::runtime::Handle::current();
    std::thread::Builder::new().name("dns-udp".into()).spawn(move || {
        let _runtime = runtime.enter();
        serve_udp(&socket, &responder)
    })?;
    Ok(())
}

pub fn bind_tcp(addr: SocketAddr) -> Result<TcpListener, BindError> {
    let bound = || {
        let socket = socket_for(addr, Type::STREAM, Protocol::TCP)?;
        socket.listen(1024)?;
        TcpListener::from_std(socket.into())
    };
    bound().map_err(|err| BindError { addr, err })
}

/// Answers UDP queries through the responder (which rate-limits them).
fn serve_udp(socket: &std::net::UdpSocket, responder: &Responder) {
    let mut buf = vec![0u8; UDP_BUF];
    loop {
        let (len, peer) = match socket.recv_from(&mut buf) {
            Ok(r) => r,
            Err(err) => {
                log::debug!("udp receive: {err}");
                continue;
            }
        };
        match responder.respond(&buf[..len], peer, Transport::Udp) {
            Outcome::Reply(reply) => {
                if let Err(err) = socket.send_to(&reply, peer) {
                    log::debug!("udp send to {peer}: {err}");
                }
            }
            Outcome::Messages(replies) => {
                for reply in replies {
                    let _ = socket.send_to(&reply, peer);
                }
            }
            Outcome::Withheld | Outcome::Dropped => {}
        }
    }
}
