//! The configuration file's format: TOML whose keys are the `serve` flags' names (dashes become
//! underscores), unknown keys an error, plus the `[[tsig_key]]` tables the command line has no
//! flags for. Owns reading and parsing the file; the values are checked and merged with the
//! flags in merge.rs. Calls nothing of the daemon's.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::ConfigError;
use super::cli::XdpModeChoice;

/// A TSIG key (RFC 8945) in the config file: `[[tsig_key]]` with `name`, `algorithm`
/// ("hmac-sha256") and `secret` (base64).
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub(super) struct TsigKeyConfig {
    pub(super) name: String,
    #[serde(default = "default_algorithm")]
    pub(super) algorithm: String,
    pub(super) secret: String,
    /// Addresses (CIDR) this key is for; absent: every peer no other key lists.
    #[serde(default)]
    pub(super) peers: Vec<String>,
}

fn default_algorithm() -> String {
    "hmac-sha256".into()
}

/// The configuration file's keys.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct FileConfig {
    #[serde(default)]
    pub(super) iface: Vec<String>,
    #[serde(default)]
    pub(super) zone: Vec<PathBuf>,
    #[serde(default)]
    pub(super) listen: Vec<SocketAddr>,
    pub(super) xdp_mode: Option<XdpModeChoice>,
    pub(super) metrics: Option<SocketAddr>,
    pub(super) edns_payload: Option<u16>,
    pub(super) answers_capacity: Option<u32>,
    pub(super) tcp_max_connections: Option<usize>,
    pub(super) tcp_max_per_client: Option<usize>,
    pub(super) version_bind: Option<String>,
    pub(super) id_server: Option<String>,
    pub(super) cookie_secret: Option<String>,
    #[serde(default)]
    pub(super) bpf_stats: bool,
    pub(super) shadow_reference: Option<SocketAddr>,
    pub(super) shadow_sample: Option<u32>,
    pub(super) log_format: Option<crate::logging::LogFormat>,
    pub(super) rrl_rate: Option<u32>,
    pub(super) rrl_burst: Option<u32>,
    pub(super) rrl_slip: Option<u32>,
    pub(super) rrl_ipv4_prefix: Option<u8>,
    pub(super) rrl_ipv6_prefix: Option<u8>,
    #[serde(default)]
    pub(super) rrl_allow: Vec<String>,
    #[serde(default)]
    pub(super) rrl_dry_run: bool,
    #[serde(default)]
    pub(super) secondary: Vec<String>,
    #[serde(default)]
    pub(super) node: Vec<SocketAddr>,
    pub(super) quorum: Option<usize>,
    pub(super) quorum_timeout_ms: Option<u64>,
    pub(super) api: Option<SocketAddr>,
    pub(super) api_token_file: Option<PathBuf>,
    pub(super) api_tls_cert: Option<PathBuf>,
    pub(super) api_tls_key: Option<PathBuf>,
    pub(super) journal: Option<PathBuf>,
    #[serde(default)]
    pub(super) allow_transfer: Vec<String>,
    #[serde(default)]
    pub(super) tsig_key: Vec<TsigKeyConfig>,
    pub(super) xfr_max_records: Option<u64>,
    pub(super) xfr_max_bytes: Option<u64>,
    pub(super) journal_max_size: Option<u64>,
    pub(super) xfr_out_max: Option<usize>,
    #[serde(default)]
    pub(super) source: Vec<IpAddr>,
    pub(super) tls_cert: Option<PathBuf>,
    pub(super) tls_key: Option<PathBuf>,
    #[serde(default)]
    pub(super) listen_tls: Vec<SocketAddr>,
    #[serde(default)]
    pub(super) listen_https: Vec<SocketAddr>,
    #[serde(default)]
    pub(super) listen_quic: Vec<SocketAddr>,
}

pub(super) fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|err| ConfigError::Read { path: path.to_path_buf(), err })?;
    toml::from_str(&text).map_err(|err| ConfigError::Syntax { path: path.to_path_buf(), err: Box::new(err) })
}

/// Decodes a base64 secret as key files write it (RFC 4648 section 4, padding optional).
pub(super) fn decode_base64(text: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(text.trim()).ok()
}
