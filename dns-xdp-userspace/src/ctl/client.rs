//! One HTTP/1.1 request to the daemon's control API or metrics endpoint, over TCP or, when the
//! API serves TLS, over rustls trusting the API's own certificate file (the control tool runs on
//! the server's host and reads the same configuration). A server whose certificate is one of
//! that file's is trusted as pinned, whatever its name or CA flag (operators' API certificates are
//! often self-signed, which WebPKI refuses as an end entity); any other must chain to the file's
//! certificates as roots and carry the expected name.

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

/// A TLS client trusting only the certificates in `roots` (PEM): pinned, or as CAs.
fn connector(roots: &Path) -> Result<tokio_rustls::TlsConnector, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    let at = |e: &dyn std::fmt::Display| format!("{}: {e}", roots.display());
    let pem = std::fs::read(roots).map_err(|e| at(&e))?;
    let pinned = CertificateDer::pem_slice_iter(&pem).collect::<Result<Vec<_>, _>>().map_err(|e| at(&e))?;
    let mut store = rustls::RootCertStore::empty();
    for cert in &pinned {
        store.add(cert.clone()).map_err(|e| at(&e))?;
    }
    if store.is_empty() {
        return Err(at(&"no certificate"));
    }
    #[expect(deprecated, reason = "ring has no post-quantum key exchange; aws-lc-rs, which has, needs cmake and nasm")]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider.clone())
        .build()
        .map_err(|e| at(&e))?;
    let verifier = Arc::new(PinnedOrCa { pinned, webpki, provider: provider.clone() });
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// Trusts a server presenting one of `pinned` as its certificate (the handshake signature still
/// proves it holds the key), else verifies the chain and name against them as roots.
#[derive(Debug)]
struct PinnedOrCa {
    pinned: Vec<rustls::pki_types::CertificateDer<'static>>,
    webpki: Arc<rustls::client::WebPkiServerVerifier>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::client::danger::ServerCertVerifier for PinnedOrCa {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        intermediates: &[rustls::pki_types::CertificateDer<'_>],
        server_name: &rustls::pki_types::ServerName<'_>,
        ocsp: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        if self.pinned.iter().any(|c| c.as_ref() == end_entity.as_ref()) {
            return Ok(rustls::client::danger::ServerCertVerified::assertion());
        }
        self.webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}
