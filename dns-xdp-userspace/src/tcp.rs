//! DNS over TCP (RFC 7766) with the limits that keep it from being starved: a cap on connections
//! overall (sized from the open-file limit) and per client address, idle, lifetime and write
//! timeouts, TCP_USER_TIMEOUT, and a pause after accept errors instead of a spin. TCP is where rate
//! limiting sends real clients (TC=1), so a client that pipelines queries and never reads must lose
//! its connection, not hold a slot for ever.
//!
//! DNS over TLS (RFC 7858) is the same listener with a TLS handshake in front (bounded by
//! `HANDSHAKE_TIMEOUT`) and a cap on the queries one connection may send.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use dns_xdp_common::dns::MAX_MESSAGE;

use crate::config::TcpLimits;
use crate::replication::Replies;
use crate::respond::Transport;
use crate::responder::{Outcome, Responder};

/// Time allowed for a TLS or QUIC handshake (DoT here, DoH and DoQ in encrypted/): a client that
/// opens a connection and never finishes the handshake holds a slot for no longer.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Queries one encrypted connection may send; the connection is then closed (gracefully where the
/// protocol has a way) and the client opens another. Bounds what one long-lived connection can pin.
pub const MAX_QUERIES_PER_CONNECTION: usize = 65_536;
/// After an accept error (EMFILE, ENFILE, ENOBUFS) wait this long before the next accept: retrying at
/// once spins a core while nothing can change.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// Raises the soft open-file limit to the hard one and returns it: every TCP connection is a
/// descriptor, and the default soft limit (1,024) is below the connection cap.
pub fn raise_nofile_limit() -> std::io::Result<u64> {
    rlimit::increase_nofile_limit(u64::MAX)
}

/// Open connections per client address.
#[derive(Default)]
pub(crate) struct PerClient {
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl PerClient {
    /// Counts a connection from `ip` unless it already has `max`; released when the slot drops.
    pub(crate) fn take(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<ClientSlot> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(ClientSlot { table: self.clone(), ip })
    }
}

pub(crate) struct ClientSlot {
    table: Arc<PerClient>,
    ip: IpAddr,
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut open = self.table.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// Accepts and serves connections on `listener` for ever.
pub async fn serve(listener: TcpListener, responder: Arc<Responder>, limits: TcpLimits) {
    serve_on(listener, responder, limits, None).await
}

/// Accepts and serves DNS-over-TLS connections on `listener` for ever, with TCP's limits.
pub async fn serve_tls(listener: TcpListener, tls: TlsAcceptor, responder: Arc<Responder>, limits: TcpLimits) {
    serve_on(listener, responder, limits, Some(tls)).await
}

async fn serve_on(listener: TcpListener, responder: Arc<Responder>, limits: TcpLimits, tls: Option<TlsAcceptor>) {
    let metrics = &responder.state.metrics;
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let per_client = Arc::new(PerClient::default());
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else { return };
        let (conn, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(err) => {
                // Out of descriptors or memory: nothing changes by retrying at once.
                if matches!(err.raw_os_error(), Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)) {
                    metrics.tcp_refused.fetch_add(1, Relaxed);
                    log::warn!("tcp accept: {err}; pausing accepts for {ACCEPT_BACKOFF:?}");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                } else {
                    log::debug!("tcp accept: {err}");
                }
                continue;
            }
        };
        let Some(slot) = per_client.take(peer.ip(), limits.max_per_client) else {
            metrics.tcp_refused.fetch_add(1, Relaxed);
            log::debug!("tcp {peer}: over {} connections from one address; closed", limits.max_per_client);
            continue;
        };
        metrics.tcp_connections.fetch_add(1, Relaxed);
        let (responder, tls) = (responder.clone(), tls.clone());
        tokio::spawn(async move {
            let opened = Instant::now();
            let served = tokio::time::timeout(limits.lifetime, accepted(conn, peer, &responder, limits, tls)).await;
            match served {
                Ok(Err(err)) => log::debug!("tcp {peer}: {err}"),
                Err(_) => log::debug!("tcp {peer}: closed after {:?} (lifetime)", opened.elapsed()),
                Ok(Ok(())) => {}
            }
            drop(slot);
            drop(permit);
        });
    }
}

/// One accepted connection: socket options, the TLS handshake when there is one, then its queries.
async fn accepted(
    conn: TcpStream,
    peer: SocketAddr,
    responder: &Responder,
    limits: TcpLimits,
    tls: Option<TlsAcceptor>,
) -> std::io::Result<()> {
    let _ = conn.set_nodelay(true);
    // Data the client never acknowledges is given up on after the write timeout, also in the kernel.
    let _ = socket2::SockRef::from(&conn).set_tcp_user_timeout(Some(limits.write));
    let Some(tls) = tls else { return connection(conn, peer, responder, limits, Transport::Tcp, usize::MAX).await };
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(conn)).await {
        Ok(Ok(conn)) => {
            let max_queries = MAX_QUERIES_PER_CONNECTION;
            connection(conn, peer, responder, limits, Transport::Tls, max_queries).await
        }
        Ok(Err(err)) => Err(err),
        Err(_) => Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake timed out")),
    }
}

/// Several length-prefixed queries per connection, answered in order (RFC 7766 section 6.2.1),
/// at most `max_queries` of them.
async fn connection<IO: AsyncRead + AsyncWrite + Unpin>(
    mut conn: IO,
    peer: SocketAddr,
    responder: &Responder,
    limits: TcpLimits,
    transport: Transport,
    max_queries: usize,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; MAX_MESSAGE];
    for _ in 0..max_queries {
        let mut len = [0u8; 2];
        match tokio::time::timeout(limits.idle, conn.read_exact(&mut len)).await {
            Ok(Ok(_)) => {}
            _ => return Ok(()),
        }
        let msg = &mut buf[..usize::from(u16::from_be_bytes(len))];
        match tokio::time::timeout(limits.idle, conn.read_exact(msg)).await {
            Ok(Ok(_)) => {}
            _ => return Ok(()),
        }
        // Zone transfers come back as a stream of messages.
        let replies = match responder.respond(msg, peer, transport) {
            Outcome::Reply(reply) => Replies::one(reply),
            Outcome::Messages(replies) => replies,
            Outcome::Withheld => continue,
            Outcome::Dropped => return Ok(()),
        };
        for reply in replies {
            let mut out = Vec::with_capacity(reply.len() + 2);
            out.extend_from_slice(&(reply.len() as u16).to_be_bytes());
            out.extend_from_slice(&reply);
            // A client that does not read its answers loses the connection, not a slot for ever.
            // TCP_USER_TIMEOUT may end it first, in the kernel: the same stall, counted alike.
            // TLS buffers what it writes: flushing sends it (a no-op on a plain TCP stream).
            let written = async {
                conn.write_all(&out).await?;
                conn.flush().await
            };
            match tokio::time::timeout(limits.write, written).await {
                Ok(Ok(())) => {}
                Ok(Err(err)) if err.kind() != std::io::ErrorKind::TimedOut => return Err(err),
                Ok(Err(_)) | Err(_) => {
                    responder.state.metrics.tcp_write_stalls.fetch_add(1, Relaxed);
                    return Ok(());
                }
            }
        }
    }
    // Past the cap: close cleanly (over TLS, with close_notify) so the client opens another.
    let _ = tokio::time::timeout(limits.write, conn.shutdown()).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_client_slots_are_capped_and_released() {
        let table = Arc::new(PerClient::default());
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let first = table.take(a, 2).expect("first");
        let second = table.take(a, 2).expect("second");
        assert!(table.take(a, 2).is_none(), "a third from the same address");
        assert!(table.take(b, 2).is_some(), "another address is not affected");
        drop(first);
        let third = table.take(a, 2).expect("a slot came back");
        drop((second, third));
        assert!(table.open.lock().unwrap().is_empty(), "no entry left for idle addresses");
    }
}
