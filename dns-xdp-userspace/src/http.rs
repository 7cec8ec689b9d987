//! The HTTP server under the control API and the metrics endpoint: hyper's HTTP/1.1 with the limits
//! a port facing untrusted clients needs. What one connection may hold (header bytes, time between
//! requests) is bounded here, per connection; what one request may hold (its body, its run time, a
//! slot among the requests in flight) is bounded by the tower layers each endpoint stacks in front of
//! its router (api/server.rs, metrics.rs).

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Largest request head (request line and headers) we accept; larger gets 431.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Time allowed for a request head, counted from the moment the connection waits for one: so it is
/// also the idle timeout of a kept-alive connection and bounds a client sending its head slowly.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed for a TLS handshake.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections the kernel completes before we accept them (capped by net.core.somaxconn): a burst
/// of clients past tokio's default 1,024 would otherwise wait out SYN retransmits (1 s, 3 s, ...).
const LISTEN_BACKLOG: u32 = 4096;
/// Pause after a failed accept (EMFILE and friends) so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {source}")]
    Read { path: String, source: io::Error },
    #[error("{path}: no PEM {what} in it")]
    Missing { path: String, what: &'static str },
    #[error("{path}: {message}")]
    Pem { path: String, message: String },
    #[error("certificate {cert} and key {key}: {source}")]
    Config { cert: String, key: String, source: rustls::Error },
}

/// A listening socket for an HTTP endpoint, with a backlog sized for bursts.
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// A PEM certificate chain and a PEM private key (PKCS#8, PKCS#1 or SEC1), read and decoded.
pub fn read_pem(cert: &Path, key: &Path) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    use rustls::pki_types::pem::PemObject as _;
    let name = |p: &Path| p.display().to_string();
    let read = |p: &Path| std::fs::read(p).map_err(|source| TlsError::Read { path: name(p), source });
    let certs = CertificateDer::pem_slice_iter(&read(cert)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem { path: name(cert), message: e.to_string() })?;
    if certs.is_empty() {
        return Err(TlsError::Missing { path: name(cert), what: "certificate" });
    }
    let key_der = PrivateKeyDer::from_pem_slice(&read(key)?).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::Missing { path: name(key), what: "private key" },
        e => TlsError::Pem { path: name(key), message: e.to_string() },
    })?;
    Ok((certs, key_der))
}

/// The TLS provider of every TLS endpoint of the daemon.
pub fn ring_provider() -> Arc<rustls::crypto::CryptoProvider> {
    #[expect(deprecated, reason = "ring has no post-quantum key exchange; aws-lc-rs, which has, needs cmake and nasm")]
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A TLS acceptor from a PEM certificate chain and a PEM private key (PKCS#8, PKCS#1 or SEC1).
pub fn tls_acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, TlsError> {
    let name = |p: &Path| p.display().to_string();
    let (certs, key_der) = read_pem(cert, key)?;
    let config = rustls::ServerConfig::builder_with_provider(ring_provider())
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key_der))
        .map_err(|source| TlsError::Config { cert: name(cert), key: name(key), source })?;
    let mut config = config;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Serves `router` on `listener` (over TLS when `tls` is set) with at most `max_connections` open at
/// once: past that, new connections are closed at accept, so a flood of idle clients costs a
/// descriptor each for at most `HEAD_TIMEOUT` and never starves the requests in flight.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<TlsAcceptor>,
    max_connections: usize,
    what: &'static str,
) {
    let slots = Arc::new(Semaphore::new(max_connections));
    loop {
        let (conn, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(err) => {
                log::debug!("{what}: accept: {err}");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            log::debug!("{what}: {max_connections} connections open; closing the one from {peer}");
            continue;
        };
        let _ = conn.set_nodelay(true);
        let (router, tls) = (router.clone(), tls.clone());
        tokio::spawn(async move {
            let _slot = slot;
            match tls {
                None => connection(conn, router, peer, what).await,
                Some(tls) => match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, tls.accept(conn)).await {
                    Ok(Ok(conn)) => connection(conn, router, peer, what).await,
                    Ok(Err(err)) => log::debug!("{what}: TLS handshake with {peer}: {err}"),
                    Err(_) => log::debug!("{what}: TLS handshake with {peer} timed out"),
                },
            }
        });
    }
}

async fn connection<IO>(io: IO, router: Router, peer: SocketAddr, what: &'static str)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = TowerToHyperService::new(router);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT)
        .max_header_size(MAX_HEADER_BYTES)
        // A head that has not ended within this many bytes is answered 431 as well.
        .max_buf_size(MAX_HEADER_BYTES);
    if let Err(err) = http.serve_connection(TokioIo::new(io), service).await {
        log::debug!("{what}: connection from {peer}: {err}");
    }
}
