//! DNS over TLS (RFC 7858), HTTPS (RFC 8484) and QUIC (RFC 9250): the same answers as TCP, from the
//! same per-query handler (responder.rs), with padding (RFC 8467) and TCP's budgets (connections
//! overall and per client, idle and lifetime timeouts), plus a handshake timeout and caps on
//! concurrent streams and on queries per connection. Owns starting these listeners; DNS over TLS is
//! TCP's listener with a handshake in front (tcp.rs), HTTPS in doh.rs, QUIC in doq.rs.

pub mod certs;
pub mod doh;
pub mod doq;
pub mod message;
pub mod padding;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::task::JoinHandle;

use crate::config::{EncryptedSettings, TcpLimits};
use crate::responder::Responder;
use certs::Certs;

/// The encrypted transports' handshake timeout and per-connection query cap live with the TCP
/// listener that DoT shares (tcp.rs), so tcp.rs does not reach up into this module.
pub use crate::tcp::{HANDSHAKE_TIMEOUT, MAX_QUERIES_PER_CONNECTION};
/// Streams (HTTP/2 streams, QUIC bidirectional streams) in flight on one connection.
pub const MAX_CONCURRENT_STREAMS: u32 = 100;

/// ALPN of DNS over TLS (RFC 7858 section 3.2, registered by RFC 8310).
pub const ALPN_DOT: &[u8] = b"dot";
/// ALPN of DNS over QUIC (RFC 9250 section 4.1.1).
pub const ALPN_DOQ: &[u8] = b"doq";

/// Binds and starts every encrypted listener `settings` names, with `limits` (TCP's, fitted to the
/// open-file limit); returns their tasks.
pub fn listen(
    settings: &EncryptedSettings,
    responder: &Arc<Responder>,
    limits: TcpLimits,
) -> anyhow::Result<Vec<JoinHandle<()>>> {
    let mut tasks = Vec::new();
    let Some(certs) = &settings.certs else { return Ok(tasks) };
    for addr in &settings.tls {
        let listener = bind_tcp(*addr)?;
        let acceptor = tokio_rustls::TlsAcceptor::from(certs.server_config(&[ALPN_DOT], false));
        tasks.push(tokio::spawn(crate::tcp::serve_tls(listener, acceptor, responder.clone(), limits)));
        log::info!("answering DNS over TLS on {addr}");
    }
    for addr in &settings.https {
        let listener = bind_tcp(*addr)?;
        let acceptor = tokio_rustls::TlsAcceptor::from(certs.server_config(&[b"h2", b"http/1.1"], false));
        tasks.push(tokio::spawn(doh::serve(listener, acceptor, responder.clone(), limits)));
        log::info!("answering DNS over HTTPS on https://{addr}/dns-query");
    }
    for addr in &settings.quic {
        let endpoint = doq::bind(*addr, certs, limits).with_context(|| format!("binding DNS over QUIC on {addr}"))?;
        tasks.push(tokio::spawn(doq::serve(endpoint, responder.clone(), limits)));
        log::info!("answering DNS over QUIC on {addr}");
    }
    Ok(tasks)
}

fn bind_tcp(addr: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    crate::http::bind(addr).with_context(|| format!("binding {addr}"))
}

/// Reloads the certificate and key (SIGHUP): new handshakes use them, open connections go on.
pub fn reload(certs: &Arc<Certs>) {
    match certs.reload() {
        Ok(()) => log::info!("SIGHUP: TLS certificate reloaded from {}", certs.cert_path().display()),
        Err(err) => log::error!("SIGHUP: TLS certificate not reloaded, the previous one stays: {err}"),
    }
}
