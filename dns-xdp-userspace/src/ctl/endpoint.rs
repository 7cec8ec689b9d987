//! Where the control tool finds the daemon: the configuration file `serve` reads (its `api`,
//! `api_token_file`, `api_tls_cert` and `metrics` keys), overridden by `ctl`'s flags. Only those
//! keys are read; the daemon checks the rest.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::client::Server;

/// The packaged configuration file, read when `--config` is not given.
pub const DEFAULT_CONFIG: &str = "/etc/dns-xdp/dns-xdp.toml";
/// `serve`'s default `--metrics` address.
const DEFAULT_METRICS: &str = "127.0.0.1:9153";

/// The flags that override the configuration file.
#[derive(clap::Args, Debug, Default, Clone)]
pub struct EndpointArgs {
    /// The daemon's configuration file. Default: /etc/dns-xdp/dns-xdp.toml (when it exists).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The control API's address. Default: the config file's `api`.
    #[arg(long, value_name = "IP:PORT")]
    pub api: Option<SocketAddr>,
    /// File holding the API's bearer token. Default: the config file's `api_token_file`.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// The metrics address (for `stats`). Default: the config file's `metrics`, else 127.0.0.1:9153.
    #[arg(long, value_name = "IP:PORT")]
    pub metrics: Option<SocketAddr>,
    /// Talk TLS to the API, trusting the certificates in this PEM file. Default: the config
    /// file's `api_tls_cert` when it sets one.
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// The name the API's certificate carries. Default: the API's IP address.
    #[arg(long, value_name = "NAME")]
    pub tls_name: Option<String>,
}

/// The API and the metrics endpoint, settled.
#[derive(Debug)]
pub struct Endpoints {
    /// `None`: neither the flags nor the config file name an API.
    pub api: Option<(Server, String)>,
    pub metrics: Server,
}

/// The configuration keys `ctl` reads.
#[derive(serde::Deserialize, Default)]
struct Keys {
    api: Option<SocketAddr>,
    api_token_file: Option<PathBuf>,
    api_tls_cert: Option<PathBuf>,
    metrics: Option<SocketAddr>,
}

impl EndpointArgs {
    /// Settles the flags over the config file; the error names the file or key at fault.
    pub fn settle(&self) -> Result<Endpoints, String> {
        let keys = match &self.config {
            Some(path) => read(path)?,
            None if Path::new(DEFAULT_CONFIG).exists() => read(Path::new(DEFAULT_CONFIG))?,
            None => Keys::default(),
        };
        let metrics = Server {
            addr: self.metrics.or(keys.metrics).unwrap_or_else(|| DEFAULT_METRICS.parse().expect("literal")),
            tls_roots: None,
            tls_name: None,
        };
        let Some(addr) = self.api.or(keys.api) else {
            return Ok(Endpoints { api: None, metrics });
        };
        let token_file = self
            .token_file
            .clone()
            .or(keys.api_token_file)
            .ok_or("no token file: give --token-file or set api_token_file in the config file")?;
        let token =
            std::fs::read_to_string(&token_file).map_err(|e| format!("token file {}: {e}", token_file.display()))?;
        let api =
            Server { addr, tls_roots: self.tls_ca.clone().or(keys.api_tls_cert), tls_name: self.tls_name.clone() };
        Ok(Endpoints { api: Some((api, token.trim().to_string())), metrics })
    }
}

fn read(path: &Path) -> Result<Keys, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let pick = |key: &str| table.get(key).cloned().map(|v| (key.to_string(), v));
    let wanted: toml::Table =
        ["api", "api_token_file", "api_tls_cert", "metrics"].into_iter().filter_map(pick).collect();
    wanted.try_into().map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_config_file() {
        let dir = std::env::temp_dir().join(format!("dnsxdp-ctl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (cfg, token) = (dir.join("c.toml"), dir.join("token"));
        std::fs::write(&token, "t0k\n").unwrap();
        std::fs::write(&cfg, format!("zone = [\"z\"]\napi = \"127.0.0.1:8053\"\napi_token_file = {token:?}\n"))
            .unwrap();
        let args = EndpointArgs { config: Some(cfg.clone()), ..Default::default() };
        let e = args.settle().unwrap();
        let (api, t) = e.api.unwrap();
        assert_eq!((api.addr.port(), t.as_str(), api.tls_roots), (8053, "t0k", None));
        assert_eq!(e.metrics.addr.port(), 9153);
        let args = EndpointArgs { config: Some(cfg), api: Some("127.0.0.2:1".parse().unwrap()), ..Default::default() };
        assert_eq!(args.settle().unwrap().api.unwrap().0.addr.port(), 1);
        let missing = EndpointArgs { config: Some(dir.join("none.toml")), ..Default::default() };
        assert!(missing.settle().unwrap_err().contains("none.toml"));
    }
}
