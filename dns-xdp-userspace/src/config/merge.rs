//! How `serve`'s settings are settled: the flags over the configuration file's keys over the
//! defaults, each value checked, the whole checked together. Owns `Settings::from_args` and the
//! SIGHUP reread of the rate-limiting keys; calls the value parsers of the types it fills (zone
//! names, prefixes, cookies, the API's TLS files).

use std::net::SocketAddr;
use std::path::PathBuf;

use super::cli::{EncryptedArgs, ReplicationArgs, RrlArgs, ServeArgs, XdpModeChoice};
use super::file::{FileConfig, decode_base64, read_file};
use super::settings::{
    ApiSettings, DEFAULT_JOURNAL_MAX_SIZE, DEFAULT_SHADOW_SAMPLE, DEFAULT_XFR_OUT_MAX, EncryptedSettings,
    MIN_JOURNAL_MAX_SIZE, ReplicationSettings, SHADOW_TIMEOUT, Settings, ShadowSettings, TcpLimits, TsigKeySettings,
    XfrLimits,
};
use crate::name::Name;
use crate::respond::{Chaos, DEFAULT_EDNS_PAYLOAD};
use crate::rrl::{Cidr, RrlSettingError, RrlSettings};
use crate::source::Sources;

/// Why `serve`'s settings cannot be used; each message names the file, flag or key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The configuration file cannot be read.
    #[error("{}: {err}", .path.display())]
    Read { path: PathBuf, err: std::io::Error },
    /// The configuration file is not TOML with known keys of the right types.
    #[error("{}: {err}", .path.display())]
    Syntax { path: PathBuf, err: Box<toml::de::Error> },
    #[error(transparent)]
    Rrl(#[from] RrlSettingError),
    /// A value, or values together, the daemon cannot serve with; the message names the flag or
    /// key (each check is one of a kind, so its message is what it carries).
    #[error("{0}")]
    Invalid(String),
}

impl From<String> for ConfigError {
    fn from(message: String) -> Self {
        ConfigError::Invalid(message)
    }
}

impl From<&str> for ConfigError {
    fn from(message: &str) -> Self {
        ConfigError::Invalid(message.to_string())
    }
}

/// Merges the replication flags over the file's keys.
fn replication_settings(
    cli: ReplicationArgs,
    file: &FileConfig,
) -> Result<(ReplicationSettings, Option<ApiSettings>), ConfigError> {
    let mut secondaries = Vec::new();
    for text in pick(cli.secondary, file.secondary.clone()) {
        let (zone, addr) = text.split_once('@').ok_or_else(|| format!("secondary {text:?}: expected ZONE@IP:PORT"))?;
        let zone = Name::from_text(zone).ok_or_else(|| format!("secondary {text:?}: {zone:?} is not a zone name"))?;
        let addr: SocketAddr = addr.parse().map_err(|e| format!("secondary {text:?}: {e}"))?;
        secondaries.push((zone, addr));
    }
    let nodes = pick(cli.node, file.node.clone());
    let default_quorum = nodes.len() - nodes.len() / 4;
    let quorum = cli.quorum.or(file.quorum).unwrap_or(default_quorum);
    if quorum > nodes.len() {
        return Err(format!("quorum {quorum} is more than the {} configured --node addresses", nodes.len()).into());
    }
    let mut keys = Vec::new();
    for k in &file.tsig_key {
        let name = Name::from_text(&k.name).ok_or_else(|| format!("tsig_key: {:?} is not a key name", k.name))?;
        let secret = decode_base64(&k.secret).ok_or_else(|| format!("tsig_key {}: secret is not base64", k.name))?;
        let peers = k
            .peers
            .iter()
            .map(|p| p.parse::<Cidr>().map_err(|e| format!("tsig_key {}: peers: {e}", k.name)))
            .collect::<Result<Vec<_>, _>>()?;
        let algorithm =
            tsig_algorithm(&k.algorithm.to_ascii_lowercase()).map_err(|e| format!("tsig_key {}: {e}", k.name))?;
        keys.push(TsigKeySettings { name, algorithm, secret, peers });
    }
    let file_allow = file
        .allow_transfer
        .iter()
        .map(|s| s.parse::<Cidr>().map_err(|e| format!("allow_transfer: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    let tls = match (cli.api_tls_cert.or(file.api_tls_cert.clone()), cli.api_tls_key.or(file.api_tls_key.clone())) {
        (None, None) => None,
        (Some(cert), Some(key)) => {
            Some(crate::http::tls_acceptor(&cert, &key).map_err(|e| format!("api_tls_cert/api_tls_key: {e}"))?)
        }
        (Some(_), None) => return Err("api_tls_cert needs api_tls_key".into()),
        (None, Some(_)) => return Err("api_tls_key needs api_tls_cert".into()),
    };
    let api = match (cli.api.or(file.api), cli.api_token_file.or(file.api_token_file.clone())) {
        (None, _) if tls.is_some() => return Err("api_tls_cert/api_tls_key need --api".into()),
        (None, _) => None,
        (Some(_), None) => return Err("--api needs --api-token-file (the bearer token clients must send)".into()),
        (Some(addr), Some(path)) => {
            let token =
                std::fs::read_to_string(&path).map_err(|e| format!("api_token_file {}: {e}", path.display()))?;
            let token = token.trim().to_string();
            if token.is_empty() {
                return Err(format!("api_token_file {}: empty", path.display()).into());
            }
            Some(ApiSettings { addr, token, tls })
        }
    };
    let journal_max_size = cli.journal_max_size.or(file.journal_max_size).unwrap_or(DEFAULT_JOURNAL_MAX_SIZE);
    if journal_max_size < MIN_JOURNAL_MAX_SIZE {
        return Err(format!("journal_max_size {journal_max_size}: at least {MIN_JOURNAL_MAX_SIZE} bytes").into());
    }
    let xfr_out_max = cli.xfr_out_max.or(file.xfr_out_max).unwrap_or(DEFAULT_XFR_OUT_MAX);
    if xfr_out_max == 0 {
        return Err("xfr_out_max 0: at least 1 (--allow-transfer decides who may transfer)".into());
    }
    let config = ReplicationSettings {
        secondaries,
        nodes,
        quorum,
        quorum_deadline: std::time::Duration::from_millis(
            cli.quorum_timeout_ms.or(file.quorum_timeout_ms).unwrap_or(5000),
        ),
        journal: cli.journal.or(file.journal.clone()),
        tsig_keys: keys,
        allow_transfer: pick(cli.allow_transfer, file_allow),
        xfr_limits: XfrLimits {
            max_records: cli.xfr_max_records.or(file.xfr_max_records).unwrap_or(XfrLimits::default().max_records),
            max_bytes: cli.xfr_max_bytes.or(file.xfr_max_bytes).unwrap_or(XfrLimits::default().max_bytes),
        },
        journal_max_size,
        xfr_out_max,
        // Settled against --listen in `from_args`, once the listen addresses are known.
        source: Sources::default(),
    };
    Ok((config, api))
}

/// A TSIG algorithm as key files spell it: "hmac-sha256" (also sha1, sha384, sha512).
fn tsig_algorithm(text: &str) -> Result<domain::tsig::Algorithm, ConfigError> {
    let name = domain::base::Name::<Vec<u8>>::from_chars(text.chars()).map_err(|e| format!("{text:?}: {e}"))?;
    let algorithm = domain::tsig::Algorithm::from_name(&name).ok_or_else(|| {
        format!("algorithm {text:?} is not supported (hmac-sha1, hmac-sha256, hmac-sha384, hmac-sha512)")
    })?;
    Ok(algorithm)
}

/// Merges the rate-limiting flags over the file's keys over the defaults.
fn rrl_settings(cli: &RrlArgs, file: &FileConfig) -> Result<RrlSettings, ConfigError> {
    let d = RrlSettings::default();
    let file_allow = file
        .rrl_allow
        .iter()
        .map(|s| s.parse::<Cidr>().map_err(|e| format!("rrl_allow: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    let rrl = RrlSettings {
        rate: cli.rrl_rate.or(file.rrl_rate).unwrap_or(d.rate),
        burst: cli.rrl_burst.or(file.rrl_burst).unwrap_or(d.burst),
        slip: cli.rrl_slip.or(file.rrl_slip).unwrap_or(d.slip),
        ipv4_prefix: cli.rrl_ipv4_prefix.or(file.rrl_ipv4_prefix).unwrap_or(d.ipv4_prefix),
        ipv6_prefix: cli.rrl_ipv6_prefix.or(file.rrl_ipv6_prefix).unwrap_or(d.ipv6_prefix),
        allow: pick(cli.rrl_allow.clone(), file_allow),
        dry_run: cli.rrl_dry_run || file.rrl_dry_run,
    };
    rrl.validate()?;
    Ok(rrl)
}

/// Merges the encrypted transports' flags over the file's keys; the certificate is loaded here, so
/// a listener without one, or a bad one, stops the start.
fn encrypted_settings(cli: EncryptedArgs, file: &FileConfig) -> Result<EncryptedSettings, String> {
    let tls = pick(cli.listen_tls, file.listen_tls.clone());
    let https = pick(cli.listen_https, file.listen_https.clone());
    let quic = pick(cli.listen_quic, file.listen_quic.clone());
    let listeners = !(tls.is_empty() && https.is_empty() && quic.is_empty());
    let certs = match (cli.tls_cert.or(file.tls_cert.clone()), cli.tls_key.or(file.tls_key.clone())) {
        (Some(cert), Some(key)) => {
            Some(crate::encrypted::certs::Certs::load(&cert, &key).map_err(|e| format!("tls_cert/tls_key: {e}"))?)
        }
        (None, None) if listeners => {
            return Err(
                "listen_tls, listen_https and listen_quic need a certificate: give --tls-cert and --tls-key".into()
            );
        }
        (None, None) => None,
        (Some(_), None) => return Err("tls_cert needs tls_key".into()),
        (None, Some(_)) => return Err("tls_key needs tls_cert".into()),
    };
    if certs.is_some() && !listeners {
        log::warn!("tls_cert/tls_key given without listen_tls, listen_https or listen_quic: no encrypted listener");
    }
    Ok(EncryptedSettings { certs, tls, https, quic })
}

fn pick<T>(cli: Vec<T>, file: Vec<T>) -> Vec<T> {
    if cli.is_empty() { file } else { cli }
}

impl Settings {
    pub fn from_args(args: ServeArgs) -> Result<Self, ConfigError> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let rrl = rrl_settings(&args.rrl, &file)?;
        let shadow = shadow_settings(&args, &file)?;
        let cookies = match args.cookie_secret.as_deref().or(file.cookie_secret.as_deref()) {
            Some(hex) => crate::cookie::Cookies::from_hex(hex).map_err(|e| format!("cookie_secret: {e}"))?,
            None => crate::cookie::Cookies::random().map_err(|e| format!("cookie secret from /dev/urandom: {e}"))?,
        };
        let sources_given = pick(args.replication.source.clone(), file.source.clone());
        let (replication, api) = replication_settings(args.replication.clone(), &file)?;
        let encrypted = encrypted_settings(args.encrypted.clone(), &file)?;
        let settings = Settings {
            ifaces: pick(args.iface, file.iface),
            zones: pick(args.zone, file.zone),
            listen: pick(args.listen, file.listen),
            xdp_mode: args.xdp_mode.or(file.xdp_mode).unwrap_or_default(),
            metrics: args.metrics.or(file.metrics).unwrap_or_else(|| "127.0.0.1:9153".parse().expect("literal")),
            edns_payload: args.edns_payload.or(file.edns_payload).unwrap_or(DEFAULT_EDNS_PAYLOAD),
            answers_capacity: args
                .answers_capacity
                .or(file.answers_capacity)
                .unwrap_or(dns_xdp_common::ANSWERS_CAPACITY),
            tcp: {
                let d = TcpLimits::default();
                TcpLimits {
                    max_connections: args.tcp_max_connections.or(file.tcp_max_connections).unwrap_or(d.max_connections),
                    max_per_client: args.tcp_max_per_client.or(file.tcp_max_per_client).unwrap_or(d.max_per_client),
                    ..d
                }
            },
            chaos: Chaos {
                version: args.version_bind.or(file.version_bind),
                identity: args.id_server.or(file.id_server),
            },
            cookies,
            bpf_stats: args.bpf_stats || file.bpf_stats,
            shadow,
            rrl,
            config_file: args.config.clone(),
            rrl_cli: args.rrl.clone(),
            replication,
            api,
            log_format: args.log_format.or(file.log_format).unwrap_or_default(),
            encrypted,
        };
        let mut settings = settings;
        if settings.tcp.max_connections == 0 || settings.tcp.max_per_client == 0 {
            return Err("tcp_max_connections and tcp_max_per_client must be at least 1 (0 would refuse all TCP)".into());
        }
        if settings.listen.is_empty() {
            settings.listen.push("[::]:53".parse().expect("literal"));
        }
        settings.replication.source = Sources::settle(&sources_given, &settings.listen)?;
        if settings.zones.is_empty() && settings.replication.secondaries.is_empty() {
            return Err(
                "no zone to serve: give --zone FILE or --secondary ZONE@IP:PORT (or their keys in the config file)"
                    .into(),
            );
        }
        if settings.edns_payload < 512 {
            return Err(format!("edns_payload {} is below the DNS minimum of 512", settings.edns_payload).into());
        }
        let ports: Vec<u16> = settings.listen.iter().map(SocketAddr::port).collect();
        if !settings.ifaces.is_empty()
            && settings.xdp_mode != XdpModeChoice::Off
            && ports.iter().any(|p| *p != ports[0])
        {
            return Err("with XDP, every --listen address must use the same port (the one XDP answers on)".into());
        }
        Ok(settings)
    }

    /// SIGHUP: the rate-limiting settings as the config file now says, under the same flags.
    pub fn reread_rrl(&self) -> Result<RrlSettings, ConfigError> {
        let file = match &self.config_file {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        rrl_settings(&self.rrl_cli, &file)
    }
}

fn shadow_settings(cli: &ServeArgs, file: &FileConfig) -> Result<Option<ShadowSettings>, ConfigError> {
    let sample = cli.shadow_sample.or(file.shadow_sample);
    let Some(reference) = cli.shadow_reference.or(file.shadow_reference) else {
        return match sample {
            Some(_) => Err("shadow_sample needs shadow_reference (the server to compare with)".into()),
            None => Ok(None),
        };
    };
    let sample = sample.unwrap_or(DEFAULT_SHADOW_SAMPLE);
    if sample == 0 {
        return Err("shadow_sample 0: give N >= 1 (one query in N), or leave shadow_reference out".into());
    }
    Ok(Some(ShadowSettings { reference, sample, timeout: SHADOW_TIMEOUT }))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    #[test]
    fn shadow_keys_and_flags() {
        let off = Settings::from_args(ServeArgs { zone: vec!["f.zone".into()], ..Default::default() }).unwrap();
        assert_eq!(off.shadow, None);
        let on = Settings::from_args(ServeArgs {
            zone: vec!["f.zone".into()],
            shadow_reference: Some("127.0.0.1:5300".parse().unwrap()),
            ..Default::default()
        })
        .unwrap();
        let s = on.shadow.unwrap();
        assert_eq!((s.reference.port(), s.sample), (5300, DEFAULT_SHADOW_SAMPLE));
        let err = Settings::from_args(ServeArgs {
            zone: vec!["f.zone".into()],
            shadow_sample: Some(5),
            ..Default::default()
        });
        assert!(err.unwrap_err().to_string().contains("shadow_reference"));
        let file = toml::from_str::<FileConfig>("shadow_reference = \"[::1]:53\"\nshadow_sample = 1\n").unwrap();
        assert_eq!(file.shadow_sample, Some(1));
    }

    #[test]
    fn unknown_config_keys_are_errors() {
        let err = toml::from_str::<FileConfig>("zone = [\"a\"]\nlisten_port = 5\n").unwrap_err();
        assert!(err.to_string().contains("unknown field `listen_port`"), "{err}");
    }

    #[test]
    fn flags_override_file() {
        let dir = std::env::temp_dir().join(format!("dnsxdp-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.toml");
        std::fs::write(&path, "zone = [\"f.zone\"]\nxdp_mode = \"skb\"\nedns_payload = 1400\nversion_bind = \"v1\"\n")
            .unwrap();
        let s = Settings::from_args(ServeArgs {
            config: Some(path),
            xdp_mode: Some(XdpModeChoice::Off),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(s.zones, vec![PathBuf::from("f.zone")]);
        assert_eq!(s.xdp_mode, XdpModeChoice::Off);
        assert_eq!(s.edns_payload, 1400);
        assert_eq!(s.chaos, Chaos { version: Some("v1".into()), identity: None });
        assert_eq!(s.listen[0].port(), 53);
    }

    #[test]
    fn api_tls_keys_and_flags() {
        let dir = std::env::temp_dir().join(format!("dnsxdp-apitls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (token, path) = (dir.join("token"), dir.join("c.toml"));
        std::fs::write(&token, "t\n").unwrap();
        let file = |extra: &str| {
            std::fs::write(
                &path,
                format!("zone = [\"f.zone\"]\napi = \"127.0.0.1:8053\"\napi_token_file = {token:?}\n{extra}"),
            )
            .unwrap();
            Settings::from_args(ServeArgs { config: Some(path.clone()), ..Default::default() })
        };
        assert!(file("").unwrap().api.unwrap().tls.is_none());
        assert_eq!(file("api_tls_cert = \"c.pem\"\n").unwrap_err().to_string(), "api_tls_cert needs api_tls_key");
        // Both keys given: the files are read at configuration time, so a missing one is named.
        let err = file("api_tls_cert = \"/nonexistent/c.pem\"\napi_tls_key = \"/nonexistent/k.pem\"\n").unwrap_err();
        assert!(err.to_string().contains("/nonexistent/c.pem"), "{err}");
        // The flags override the file's keys (and fail the same way on a missing file).
        std::fs::write(&path, format!("zone = [\"f.zone\"]\napi = \"127.0.0.1:8053\"\napi_token_file = {token:?}\n"))
            .unwrap();
        let mut args = ServeArgs { config: Some(path.clone()), ..Default::default() };
        args.replication.api_tls_cert = Some("/nonexistent/flag.pem".into());
        args.replication.api_tls_key = Some("/nonexistent/k.pem".into());
        assert!(Settings::from_args(args).unwrap_err().to_string().contains("/nonexistent/flag.pem"));
    }

    #[test]
    fn cookie_secret_key_and_flag() {
        let dir = std::env::temp_dir().join(format!("dnsxdp-cookie-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.toml");
        std::fs::write(&path, "zone = [\"f.zone\"]\ncookie_secret = \"e5e973e5a6b2a43f48e7dc849e37bfcf\"\n").unwrap();
        let from_file = Settings::from_args(ServeArgs { config: Some(path.clone()), ..Default::default() }).unwrap();
        let ip = "198.51.100.100".parse().unwrap();
        let client = [0x24, 0x64, 0xc4, 0xab, 0xcf, 0x10, 0xc9, 0x57];
        // RFC 9018 A.1 with the file's secret.
        assert_eq!(
            &from_file.cookies.server_cookie(&client, ip, 1559731985)[8..],
            &[0x1f, 0x81, 0x30, 0xc3, 0xee, 0xe2, 0x94, 0x80]
        );
        let bad = ServeArgs { config: Some(path), cookie_secret: Some("abc".into()), ..Default::default() };
        assert!(
            Settings::from_args(bad).unwrap_err().to_string().contains("cookie_secret"),
            "the flag overrides the file"
        );
    }

    #[test]
    fn journal_and_transfer_bounds() {
        let dir = std::env::temp_dir().join(format!("dnsxdp-xfr-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.toml");
        let settings = |keys: &str, flags: ReplicationArgs| {
            std::fs::write(&path, format!("zone = [\"f.zone\"]\n{keys}")).unwrap();
            Settings::from_args(ServeArgs { config: Some(path.clone()), replication: flags, ..Default::default() })
        };
        let s = settings("", ReplicationArgs::default()).unwrap().replication;
        assert_eq!((s.journal_max_size, s.xfr_out_max), (16 << 20, 10), "Knot-like and BIND defaults");
        let keys = "journal_max_size = 65536\nxfr_out_max = 3\n";
        let s = settings(keys, ReplicationArgs::default()).unwrap().replication;
        assert_eq!((s.journal_max_size, s.xfr_out_max), (65536, 3));
        let flag = ReplicationArgs { xfr_out_max: Some(5), ..Default::default() };
        assert_eq!(settings(keys, flag).unwrap().replication.xfr_out_max, 5, "the flag wins");
        assert!(
            settings("journal_max_size = 100\n", ReplicationArgs::default())
                .unwrap_err()
                .to_string()
                .contains("journal_max_size")
        );
        assert!(
            settings("xfr_out_max = 0\n", ReplicationArgs::default()).unwrap_err().to_string().contains("xfr_out_max")
        );
    }

    #[test]
    fn rrl_keys_and_flags() {
        let dir = std::env::temp_dir().join(format!("dnsxdp-rrl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.toml");
        std::fs::write(&path, "zone = [\"f.zone\"]\nrrl_rate = 20\nrrl_slip = 3\nrrl_allow = [\"10.0.0.0/8\"]\n")
            .unwrap();
        let args = |rrl: RrlArgs| ServeArgs { config: Some(path.clone()), rrl, ..Default::default() };
        let s = Settings::from_args(args(RrlArgs { rrl_slip: Some(1), ..Default::default() })).unwrap();
        assert_eq!((s.rrl.rate, s.rrl.slip, s.rrl.effective_burst()), (20, 1, 20));
        assert_eq!(s.rrl.allow, vec!["10.0.0.0/8".parse().unwrap()]);
        assert_eq!((s.rrl.ipv4_prefix, s.rrl.ipv6_prefix), (24, 56));
        // SIGHUP rereads the file; the command line still wins.
        std::fs::write(&path, "zone = [\"f.zone\"]\nrrl_rate = 5\nrrl_slip = 0\nrrl_dry_run = true\n").unwrap();
        let r = s.reread_rrl().unwrap();
        assert_eq!((r.rate, r.slip, r.dry_run, r.allow.len()), (5, 1, true, 0));
        std::fs::write(&path, "zone = [\"f.zone\"]\nrrl_ipv4_prefix = 33\n").unwrap();
        assert!(Settings::from_args(args(RrlArgs::default())).unwrap_err().to_string().contains("rrl_ipv4_prefix"));
    }
}
