//! One HTTP/1.1 request to the daemon's control API or metrics endpoint, over TCP or, when the
//! API serves TLS, over rustls trusting the API's own certificate file (the control tool runs on
//! the server's host and reads the same configuration).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// Connecting gives up after this long (the daemon is local, or close).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A whole request: a write waits for quorum (`--quorum-timeout-ms`, 5 s by default) and a reload
/// reads every zone file.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// Where to send a request.
#[derive(Clone, Debug)]
pub struct Server {
    pub addr: SocketAddr,
    /// TLS with these PEM certificates as the only roots; `None`: plain HTTP.
    pub tls_roots: Option<PathBuf>,
    /// The name the server's certificate must carry; default: its IP address.
    pub tls_name: Option<String>,
}

/// Why no HTTP answer came.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("connecting to {0}: {1}")]
    Connect(SocketAddr, std::io::Error),
    #[error("no answer from {0} within {1:?}")]
    Timeout(SocketAddr, Duration),
    #[error("TLS to {0}: {1}")]
    Tls(SocketAddr, String),
    #[error("HTTP with {0}: {1}")]
    Http(SocketAddr, hyper::Error),
}

/// Sends `method path` with an optional bearer token and JSON body; the status and the body.
pub async fn request(
    server: &Server,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<String>,
) -> Result<(u16, String), ClientError> {
    let addr = server.addr;
    tokio::time::timeout(REQUEST_TIMEOUT, async {
        let tcp = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(conn) => conn.map_err(|e| ClientError::Connect(addr, e))?,
            Err(_) => return Err(ClientError::Connect(addr, std::io::ErrorKind::TimedOut.into())),
        };
        let mut req = Request::builder().method(method).uri(path).header(hyper::header::HOST, addr.to_string());
        if let Some(token) = token {
            req = req.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        if body.is_some() {
            req = req.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| ClientError::Tls(addr, format!("building the request: {e}")))?;
        match &server.tls_roots {
            None => exchange(addr, tcp, req).await,
            Some(roots) => {
                let tls = connector(roots).map_err(|e| ClientError::Tls(addr, e))?;
                let name = match &server.tls_name {
                    Some(n) => rustls::pki_types::ServerName::try_from(n.clone())
                        .map_err(|e| ClientError::Tls(addr, format!("--tls-name {n:?}: {e}")))?,
                    None => rustls::pki_types::ServerName::IpAddress(addr.ip().into()),
                };
                let stream = tls.connect(name, tcp).await.map_err(|e| ClientError::Tls(addr, e.to_string()))?;
                exchange(addr, stream, req).await
            }
        }
    })
    .await
    .map_err(|_| ClientError::Timeout(addr, REQUEST_TIMEOUT))?
}

async fn exchange<S>(addr: SocketAddr, stream: S, req: Request<Full<Bytes>>) -> Result<(u16, String), ClientError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let http = |e| ClientError::Http(addr, e);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(http)?;
    tokio::spawn(conn);
    let response = sender.send_request(req).await.map_err(http)?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.map_err(http)?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// A TLS client trusting only the certificates in `roots` (PEM).
fn connector(roots: &Path) -> Result<tokio_rustls::TlsConnector, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    let pem = std::fs::read(roots).map_err(|e| format!("{}: {e}", roots.display()))?;
    let mut store = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| format!("{}: {e}", roots.display()))?;
        store.add(cert).map_err(|e| format!("{}: {e}", roots.display()))?;
    }
    if store.is_empty() {
        return Err(format!("{}: no certificate", roots.display()));
    }
    #[expect(deprecated, reason = "ring has no post-quantum key exchange; aws-lc-rs, which has, needs cmake and nasm")]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(store)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}
