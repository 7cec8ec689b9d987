//! The settled settings of `serve`: plain data, read and checked once at start (merge.rs), then
//! handed down to the parts that use them (replication, shadow validation, the TCP listener, the
//! XDP loader). Those import this module, never the reverse. Owns the types and their defaults;
//! uses only the value types it holds (names, prefixes, cookies, CH answers, rate-limit settings).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::cli::{RrlArgs, XdpModeChoice};
use crate::cookie::Cookies;
use crate::name::Name;
use crate::respond::Chaos;
use crate::rrl::{Cidr, RrlSettings};
use crate::source::Sources;

/// Settled settings for `serve`.
#[derive(Debug, Clone)]
pub struct Settings {
    pub ifaces: Vec<String>,
    pub zones: Vec<PathBuf>,
    pub listen: Vec<SocketAddr>,
    pub xdp_mode: XdpModeChoice,
    pub metrics: SocketAddr,
    pub edns_payload: u16,
    /// Names with their own answers in the kernel, and the answer maps' size (`--answers-capacity`).
    pub answers_capacity: u32,
    /// Bounds on DNS over TCP (before fitting them to the open-file limit).
    pub tcp: TcpLimits,
    /// CH-class version.bind/id.server answers (refused when unset).
    pub chaos: Chaos,
    /// The DNS cookie secret (RFC 9018).
    pub cookies: Cookies,
    pub bpf_stats: bool,
    /// Shadow validation against a reference server; `None` when off.
    pub shadow: Option<ShadowSettings>,
    pub rrl: RrlSettings,
    /// Where `rrl` came from, for SIGHUP: the file and the command line's rate-limiting flags.
    pub config_file: Option<PathBuf>,
    pub rrl_cli: RrlArgs,
    pub replication: ReplicationSettings,
    /// The control API: address, bearer token, TLS.
    pub api: Option<ApiSettings>,
    pub log_format: crate::logging::LogFormat,
    /// DNS over TLS, HTTPS and QUIC.
    pub encrypted: EncryptedSettings,
}

impl Settings {
    /// The UDP port XDP answers on.
    pub fn dns_port(&self) -> u16 {
        self.listen[0].port()
    }

    pub fn xdp_enabled(&self) -> bool {
        !self.ifaces.is_empty() && self.xdp_mode != XdpModeChoice::Off
    }
}

#[derive(Clone)]
pub struct ApiSettings {
    pub addr: SocketAddr,
    pub token: String,
    /// Set with --api-tls-cert/--api-tls-key: the certificate and key, loaded and checked.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
}

impl std::fmt::Debug for ApiSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiSettings")
            .field("addr", &self.addr)
            .field("token", &"<redacted>")
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

/// DNS over TLS, HTTPS and QUIC (`--tls-cert`, `--tls-key`, `--listen-tls`, `--listen-https`,
/// `--listen-quic`).
#[derive(Clone, Debug, Default)]
pub struct EncryptedSettings {
    /// The certificate and key, loaded and checked; set whenever a listener is.
    pub certs: Option<std::sync::Arc<crate::encrypted::certs::Certs>>,
    pub tls: Vec<SocketAddr>,
    pub https: Vec<SocketAddr>,
    pub quic: Vec<SocketAddr>,
}

/// File descriptors kept back from the TCP cap for everything else the daemon opens (UDP sockets,
/// BPF maps and programs, journals, the API and metrics connections).
const RESERVED_FDS: u64 = 256;

/// How DNS over TCP is bounded. Defaults as Knot's and NSD's where they have one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpLimits {
    /// Connections at once, all clients together; more wait in the accept queue.
    pub max_connections: usize,
    /// Connections at once from one client address; more are closed at accept.
    pub max_per_client: usize,
    /// A connection with no complete query for this long is closed (RFC 7766 section 6.2.3;
    /// Knot's tcp-idle-timeout).
    pub idle: Duration,
    /// A connection is closed this long after it opened, whatever it does (NSD's tcp-timeout).
    pub lifetime: Duration,
    /// A reply not written within this long closes the connection (Knot's tcp-remote-io-timeout),
    /// and unacknowledged data is given up after as long (TCP_USER_TIMEOUT).
    pub write: Duration,
}

impl Default for TcpLimits {
    fn default() -> Self {
        TcpLimits {
            max_connections: 1024,
            max_per_client: 32,
            idle: Duration::from_secs(10),
            lifetime: Duration::from_secs(120),
            write: Duration::from_secs(5),
        }
    }
}

impl TcpLimits {
    /// `self` with the overall cap lowered to what the open-file limit `nofile` leaves room for.
    pub fn fitted_to(self, nofile: u64) -> Self {
        let room = usize::try_from(nofile.saturating_sub(RESERVED_FDS)).unwrap_or(usize::MAX).max(1);
        TcpLimits { max_connections: self.max_connections.min(room), ..self }
    }
}

/// Default of `--shadow-sample`: 1% of the queries keeps a reference's load small.
pub const DEFAULT_SHADOW_SAMPLE: u32 = 100;
/// How long the shadow reference may take to answer (per transport tried).
pub const SHADOW_TIMEOUT: Duration = Duration::from_secs(1);

/// Settings of `--shadow-reference` and `--shadow-sample`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShadowSettings {
    pub reference: SocketAddr,
    /// One query in `sample` is shadowed (1: all).
    pub sample: u32,
    pub timeout: Duration,
}

/// Default `--journal-max-size`. Knot's `journal-max-usage` is 100 MiB on disk; our journal is also
/// held in memory (IXFR is served from it, about three bytes of memory per byte of record), so the
/// cap is lower: 16 MiB is some 100,000 single-record changes.
pub const DEFAULT_JOURNAL_MAX_SIZE: u64 = 16 << 20;
/// The smallest `--journal-max-size` (BIND rounds smaller `max-journal-size` values up to 4 KiB).
pub const MIN_JOURNAL_MAX_SIZE: u64 = 4096;
/// Default `--xfr-out-max`: BIND's `transfers-out`.
pub const DEFAULT_XFR_OUT_MAX: usize = 10;

/// Replication settings (flags `--secondary`, `--node`, `--quorum`, `--journal`, ...).
#[derive(Clone, Debug)]
pub struct ReplicationSettings {
    /// Zones pulled from a primary.
    pub secondaries: Vec<(Name, SocketAddr)>,
    /// The fleet a primary notifies and counts confirmations from.
    pub nodes: Vec<SocketAddr>,
    /// Nodes that must serve a new serial before a write returns 200.
    pub quorum: usize,
    pub quorum_deadline: Duration,
    pub journal: Option<PathBuf>,
    /// TSIG keys: when any is set, transfers and NOTIFY must be signed with one of the keys valid
    /// for the peer (replication/tsig.rs), and ours to a peer are signed with its first key.
    pub tsig_keys: Vec<TsigKeySettings>,
    /// Who may transfer our zones (and send us NOTIFY besides our primaries). Default: the nodes.
    pub allow_transfer: Vec<Cidr>,
    /// Bounds on what a transfer from our primary may bring.
    pub xfr_limits: XfrLimits,
    /// Bytes of changes a zone's journal (and in-memory history) holds before it is compacted.
    pub journal_max_size: u64,
    /// Transfers we serve at once; more are answered SERVFAIL.
    pub xfr_out_max: usize,
    /// Where our NOTIFYs, SOA probes and transfer requests leave from (`--source`).
    pub source: Sources,
}

impl Default for ReplicationSettings {
    fn default() -> Self {
        ReplicationSettings {
            secondaries: Vec::new(),
            nodes: Vec::new(),
            quorum: 0,
            quorum_deadline: Duration::ZERO,
            journal: None,
            tsig_keys: Vec::new(),
            allow_transfer: Vec::new(),
            xfr_limits: XfrLimits::default(),
            journal_max_size: DEFAULT_JOURNAL_MAX_SIZE,
            xfr_out_max: DEFAULT_XFR_OUT_MAX,
            source: Sources::default(),
        }
    }
}

/// A TSIG key (RFC 8945) as configured (`[[tsig_key]]`): checked, not yet a signing key.
#[derive(Clone)]
pub struct TsigKeySettings {
    pub name: Name,
    pub algorithm: domain::tsig::Algorithm,
    pub secret: Vec<u8>,
    /// Addresses this key is for; empty: every address no other key lists.
    pub peers: Vec<Cidr>,
}

impl std::fmt::Debug for TsigKeySettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TsigKeySettings")
            .field("name", &self.name)
            .field("algorithm", &self.algorithm)
            .field("secret", &"<redacted>")
            .field("peers", &self.peers)
            .finish()
    }
}

/// What a transfer from a primary may bring (`--xfr-max-records`, `--xfr-max-bytes`), like BIND's
/// `max-records` and Knot's `zone-max-size`: a primary gone wrong cannot exhaust our memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XfrLimits {
    pub max_records: u64,
    pub max_bytes: u64,
}

impl Default for XfrLimits {
    fn default() -> Self {
        XfrLimits { max_records: 20_000_000, max_bytes: 4 << 30 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tcp_cap_fits_the_open_file_limit() {
        let l = TcpLimits::default();
        assert_eq!(l.fitted_to(1024).max_connections, 1024 - RESERVED_FDS as usize);
        assert_eq!(l.fitted_to(1 << 20).max_connections, 1024);
        assert_eq!(l.fitted_to(10).max_connections, 1);
    }
}
