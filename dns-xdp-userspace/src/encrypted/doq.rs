//! DNS over QUIC (RFC 9250) on quinn: one query per bidirectional stream, two-byte length prefix,
//! message ID 0; with TCP's connection budgets, a handshake timeout, QUIC's own cap on concurrent
//! streams and a cap on queries per connection.

use std::net::SocketAddr;
use std::sync::Arc;

use quinn::crypto::rustls::QuicServerConfig;
use quinn::{
    Connection, Endpoint, IdleTimeout, Incoming, RecvStream, SendStream, ServerConfig, TransportConfig, VarInt,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use super::certs::Certs;
use super::{ALPN_DOQ, HANDSHAKE_TIMEOUT, MAX_CONCURRENT_STREAMS, MAX_QUERIES_PER_CONNECTION};
use crate::config::TcpLimits;
use crate::replication::Replies;
use crate::respond::Transport;
use crate::responder::{Outcome, Responder};
use crate::tcp::{ClientSlot, PerClient};

/// Application error codes (RFC 9250 section 4.3).
const DOQ_NO_ERROR: u32 = 0x0;
const DOQ_PROTOCOL_ERROR: u32 = 0x2;
/// The largest stream we read: a length prefix and the largest DNS message.
const MAX_STREAM: usize = 2 + 65535;

#[derive(Debug, thiserror::Error)]
pub enum DoqError {
    #[error("TLS configuration for QUIC: {0}")]
    Crypto(#[from] quinn::crypto::rustls::NoInitialCipherSuite),
    #[error("idle timeout: {0}")]
    Idle(#[from] quinn::VarIntBoundsExceeded),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// A QUIC endpoint on `addr` offering ALPN `doq` with the certificates of `certs`.
pub fn bind(addr: SocketAddr, certs: &Arc<Certs>, limits: TcpLimits) -> Result<Endpoint, DoqError> {
    let crypto = QuicServerConfig::try_from(certs.server_config(&[ALPN_DOQ], true))?;
    let mut transport = TransportConfig::default();
    transport
        .max_concurrent_bidi_streams(VarInt::from_u32(MAX_CONCURRENT_STREAMS))
        // DoQ uses no unidirectional streams (RFC 9250 section 4.2).
        .max_concurrent_uni_streams(VarInt::from_u32(0))
        .max_idle_timeout(Some(IdleTimeout::try_from(limits.idle)?));
    let mut config = ServerConfig::with_crypto(Arc::new(crypto));
    config.transport_config(Arc::new(transport));
    Ok(Endpoint::server(config, addr)?)
}

/// Accepts and serves connections on `endpoint` for ever.
pub async fn serve(endpoint: Endpoint, responder: Arc<Responder>, limits: TcpLimits) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let per_client = Arc::new(PerClient::default());
    while let Some(incoming) = endpoint.accept().await {
        let peer = incoming.remote_address();
        // QUIC has no accept queue to leave a client waiting in: over a cap, refuse at once.
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            log::debug!("quic {peer}: {} connections open; refused", limits.max_connections);
            incoming.refuse();
            continue;
        };
        let Some(slot) = per_client.take(peer.ip(), limits.max_per_client) else {
            log::debug!("quic {peer}: over {} connections from one address; refused", limits.max_per_client);
            incoming.refuse();
            continue;
        };
        tokio::spawn(connection(incoming, peer, responder.clone(), limits, (slot, permit)));
    }
}

/// One connection: the handshake, then a stream per query, until the client is done, idle, past
/// its lifetime or past `MAX_QUERIES_PER_CONNECTION`.
async fn connection(
    incoming: Incoming,
    peer: SocketAddr,
    responder: Arc<Responder>,
    limits: TcpLimits,
    _held: (ClientSlot, OwnedSemaphorePermit),
) {
    let conn = match incoming.accept() {
        Ok(connecting) => match tokio::time::timeout(HANDSHAKE_TIMEOUT, connecting).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(err)) => return log::debug!("quic {peer}: handshake: {err}"),
            Err(_) => return log::debug!("quic {peer}: handshake timed out"),
        },
        Err(err) => return log::debug!("quic {peer}: {err}"),
    };
    let streams = async {
        let mut running = JoinSet::new();
        for _ in 0..MAX_QUERIES_PER_CONNECTION {
            let Ok((send, recv)) = conn.accept_bi().await else { break };
            running.spawn(stream(conn.clone(), send, recv, peer, responder.clone(), limits));
            // Reap what has finished so a long connection does not accumulate handles.
            while running.try_join_next().is_some() {}
        }
        running.join_all().await;
    };
    if tokio::time::timeout(limits.lifetime, streams).await.is_err() {
        log::debug!("quic {peer}: closed after {:?} (lifetime)", limits.lifetime);
    }
    conn.close(VarInt::from_u32(DOQ_NO_ERROR), b"");
}

/// One query on one stream (RFC 9250 section 4.2): the client's length-prefixed message up to its
/// FIN, our length-prefixed answer and our FIN.
async fn stream(
    conn: Connection,
    mut send: SendStream,
    mut recv: RecvStream,
    peer: SocketAddr,
    responder: Arc<Responder>,
    limits: TcpLimits,
) {
    let data = match tokio::time::timeout(limits.idle, recv.read_to_end(MAX_STREAM)).await {
        Ok(Ok(data)) => data,
        Ok(Err(err)) => return log::debug!("quic {peer}: reading a query: {err}"),
        Err(_) => return log::debug!("quic {peer}: a query not sent in time"),
    };
    let query = match data.split_first_chunk::<2>() {
        Some((len, query)) if usize::from(u16::from_be_bytes(*len)) == query.len() => query,
        _ => return conn.close(VarInt::from_u32(DOQ_PROTOCOL_ERROR), b"bad length"),
    };
    // Section 4.2.1: a query's message ID must be 0; anything else is a connection error.
    if query.get(..2).is_some_and(|id| id != [0, 0]) {
        return conn.close(VarInt::from_u32(DOQ_PROTOCOL_ERROR), b"message id not 0");
    }
    let replies = match responder.respond(query, peer, Transport::Quic) {
        Outcome::Reply(reply) => Replies::one(reply),
        Outcome::Messages(replies) => replies,
        Outcome::Withheld | Outcome::Dropped => {
            return conn.close(VarInt::from_u32(DOQ_PROTOCOL_ERROR), b"not a query");
        }
    };
    let written = async {
        for reply in replies {
            send.write_all(&(reply.len() as u16).to_be_bytes()).await?;
            send.write_all(&reply).await?;
        }
        send.finish()?;
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
    };
    match tokio::time::timeout(limits.write, written).await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => log::debug!("quic {peer}: writing an answer: {err}"),
        Err(_) => log::debug!("quic {peer}: an answer not read in time"),
    }
}
