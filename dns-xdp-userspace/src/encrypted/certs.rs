//! The certificate and key of the encrypted transports, swappable while they serve: every
//! listener's rustls configuration resolves the certificate through this one store, and SIGHUP
//! replaces what it holds, so new handshakes get the new certificate and open connections go on.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio_rustls::rustls::crypto::CryptoProvider;
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::{self, ServerConfig};

use crate::http::{TlsError, read_pem, ring_provider};

/// The certificate chain and key of `--tls-cert`/`--tls-key`, and where to read them again.
pub struct Certs {
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    current: ArcSwap<CertifiedKey>,
}

impl fmt::Debug for Certs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certs").field("cert", &self.cert).field("key", &self.key).finish_non_exhaustive()
    }
}

impl Certs {
    /// Reads and checks the PEM files (the key must belong to the certificate).
    pub fn load(cert: &Path, key: &Path) -> Result<Arc<Self>, TlsError> {
        let provider = ring_provider();
        let current = ArcSwap::from_pointee(certified(cert, key, &provider)?);
        Ok(Arc::new(Certs { cert: cert.to_owned(), key: key.to_owned(), provider, current }))
    }

    /// Reads the files again; on any error the previous certificate stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        self.current.store(Arc::new(certified(&self.cert, &self.key, &self.provider)?));
        Ok(())
    }

    pub fn cert_path(&self) -> &Path {
        &self.cert
    }

    /// A server configuration offering `alpn`, with certificates from this store. QUIC needs TLS 1.3
    /// only (RFC 9001 section 4.2).
    pub fn server_config(self: &Arc<Self>, alpn: &[&[u8]], tls13_only: bool) -> Arc<ServerConfig> {
        let builder = ServerConfig::builder_with_provider(self.provider.clone());
        let builder = if tls13_only {
            builder.with_protocol_versions(&[&rustls::version::TLS13])
        } else {
            builder.with_safe_default_protocol_versions()
        };
        let mut config = builder
            .expect("the ring provider supports the default protocol versions")
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }
}

impl ResolvesServerCert for Certs {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

fn certified(cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let (chain, key_der) = read_pem(cert, key)?;
    CertifiedKey::from_der(chain, key_der, provider).map_err(|source| TlsError::Config {
        cert: cert.display().to_string(),
        key: key.display().to_string(),
        source,
    })
}
