//! The daemon's DNS listeners on every `--listen` address: UDP here, TCP in tcp.rs (bound here). They
//! answer whatever the XDP program passed on, with the full zone logic.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use anyhow::Context as _;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;

use crate::answer::{Client, Transport, handle_from};
use crate::rrl::{self, Decision, Limiter};
use crate::state::State;
use crate::wire::{self, Parsed};

/// UDP receive buffer: the largest DNS message over UDP.
const UDP_BUF: usize = 65535;

fn socket_for(addr: SocketAddr, ty: Type, protocol: Protocol) -> anyhow::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), ty, Some(protocol))?;
    if addr.is_ipv6() {
        // [::] also takes IPv4 (mapped), so one default address serves both families.
        socket.set_only_v6(false)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into()).with_context(|| format!("binding {addr}"))?;
    Ok(socket)
}

/// Binds `count` blocking UDP sockets sharing `addr` (SO_REUSEPORT spreads queries across them).
pub fn bind_udp(addr: SocketAddr, count: usize) -> anyhow::Result<Vec<std::net::UdpSocket>> {
    (0..count)
        .map(|_| {
            let socket = socket_for(addr, Type::DGRAM, Protocol::UDP)?;
            socket.set_nonblocking(false)?;
            Ok(socket.into())
        })
        .collect()
}

/// Answers UDP queries on `socket` on a thread of its own, one per core: a query is answered
/// start to finish without awaiting, so a blocking receive/send loop does less work per packet
/// than an async task (no readiness polling, no waker traffic).
pub fn spawn_udp(socket: std::net::UdpSocket, state: Arc<State>, limiter: Arc<Limiter>) -> std::io::Result<()> {
    // Hooks called from here (NOTIFY handling, shadow sampling) may spawn tokio tasks.
    let runtime = tokio::runtime::Handle::current();
    std::thread::Builder::new().name("dns-udp".into()).spawn(move || {
        let _runtime = runtime.enter();
        serve_udp(&socket, &state, &limiter)
    })?;
    Ok(())
}

pub fn bind_tcp(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    let socket = socket_for(addr, Type::STREAM, Protocol::TCP)?;
    socket.listen(1024)?;
    Ok(TcpListener::from_std(socket.into())?)
}

/// `reply` to `peer` as the rate limiter decides: as is, slipped (TC=1) or not at all.
fn limit_udp(limiter: &Limiter, state: &State, peer: SocketAddr, reply: Vec<u8>) -> Option<Vec<u8>> {
    if !limiter.is_on() {
        return Some(reply);
    }
    match limiter.check(peer.ip(), rrl::rrl_key(&reply), false) {
        Decision::Send => Some(reply),
        Decision::Drop => None,
        Decision::Slip => rrl::slip(&reply, None, u16::from(reply.get(3).map_or(0, |b| b & 0xf)), state.edns_payload),
    }
}

/// Answers UDP queries, under the same rate limits as the XDP program (rrl.rs). TCP is not
/// limited: its source address cannot be spoofed, and it is where slips send real clients.
fn serve_udp(socket: &std::net::UdpSocket, state: &State, limiter: &Limiter) {
    let mut buf = vec![0u8; UDP_BUF];
    loop {
        let (len, peer) = match socket.recv_from(&mut buf) {
            Ok(r) => r,
            Err(err) => {
                log::debug!("udp receive: {err}");
                continue;
            }
        };
        if rrl::reflection_port(peer.port()) {
            limiter.counters.reflection.fetch_add(1, Relaxed);
            continue;
        }
        if let Some(replies) = state.replication.get().and_then(|r| r.intercept(&buf[..len], peer, false)) {
            // NOTIFY answers (and refusals) are responses like any other: a spoofed flood must
            // not be reflected at full rate (BIND's RRL limits every UDP response the same way).
            for reply in replies {
                if let Some(reply) = limit_udp(limiter, state, peer, reply) {
                    let _ = socket.send_to(&reply, peer);
                }
            }
            continue;
        }
        let zones = state.zones.load();
        let client = Client { ip: peer.ip(), cookies: &state.cookies };
        let (payload, chaos, demand) = (state.edns_payload, &state.chaos, Some(&*state.demand));
        match handle_from(&zones, &buf[..len], Transport::Udp, payload, chaos, Some(client), demand) {
            Some(mut reply) => {
                if let Some(shadow) = state.shadow.get() {
                    shadow.sample_answer(&buf[..len], &reply.bytes, Transport::Udp, peer);
                }
                if limiter.is_on() {
                    match limiter.check(peer.ip(), rrl::rrl_key(&reply.bytes), reply.server_cookie) {
                        Decision::Send => {}
                        Decision::Drop => continue,
                        Decision::Slip => {
                            let edns = match wire::parse_query(&buf[..len]) {
                                Parsed::Query(q) => q.edns,
                                _ => None,
                            };
                            match rrl::slip(&reply.bytes, edns, reply.rcode, state.edns_payload) {
                                Some(bytes) => reply.bytes = bytes,
                                None => continue,
                            }
                        }
                    }
                }
                state.metrics.count_response(reply.rcode);
                if let Err(err) = socket.send_to(&reply.bytes, peer) {
                    log::debug!("udp send to {peer}: {err}");
                }
            }
            None => {
                state.metrics.queries_dropped.fetch_add(1, Relaxed);
            }
        }
    }
}
