//! Command line and configuration file. Every `serve` flag has a key of the same name (dashes
//! become underscores) in the TOML file; flags given on the command line win; unknown keys are
//! an error.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand, ValueEnum};
use serde::Deserialize;

use crate::answer::{Chaos, DEFAULT_EDNS_PAYLOAD};
use crate::rrl::{Cidr, RrlSettings};

#[derive(Parser, Debug)]
#[command(name = "dns-xdp", version, about = "Authoritative DNS server with an XDP fast path")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
#[expect(clippy::large_enum_variant, reason = "parsed once at start; boxing would only add indirection")]
pub enum Command {
    /// Serve zones: precompiled answers (every type, negatives, wildcards) from XDP at the NIC, the rest from the daemon.
    Serve(ServeArgs),
    /// Validate zone files: prints `file:line: message` for each problem; exit 1 if any is an error.
    Check {
        #[arg(required = true)]
        zone_files: Vec<PathBuf>,
    },
    /// Test-bed helper: attach a do-nothing XDP program to IF (native mode) until SIGTERM/SIGINT.
    /// veth only delivers native-mode XDP_TX frames to a peer that runs an XDP program.
    XdpPass {
        #[arg(long)]
        iface: String,
    },
    /// Benchmark helper: attach `xdp_bounce`, which sends every DNS query straight back (XDP_TX,
    /// no lookup), to IF until SIGTERM/SIGINT; the test bed's ceiling for `cargo xtask bench`.
    #[command(hide = true)]
    Bounce(crate::bounce::BounceArgs),
    /// Load-generator helper: attach `xdp_count`, which counts DNS replies on IF and drops all but a
    /// sample; prints the counters for every line read on stdin, detaches at end of input.
    #[command(hide = true)]
    XdpCount(crate::reply_count::CountArgs),
    /// Ask two servers every query of a file and compare their answers as shadow validation
    /// does; prints each mismatch and a summary; exit 1 if any answer differs.
    Diff(DiffArgs),
}

/// `dns-xdp diff`.
#[derive(clap::Args, Debug)]
pub struct DiffArgs {
    /// The first server, IP:PORT.
    #[arg(long)]
    pub a: SocketAddr,
    /// The second server, IP:PORT.
    #[arg(long)]
    pub b: SocketAddr,
    /// Query file in dnsperf format: `name type` per line (`#` and `;` start comments).
    #[arg(long, value_name = "FILE")]
    pub queries: PathBuf,
    /// Transport(s) to ask over; a truncated UDP answer is asked again over TCP.
    #[arg(long, value_enum, default_value = "udp")]
    pub proto: DiffProto,
    /// Send queries with EDNS(0) (payload 1232).
    #[arg(long)]
    pub edns: bool,
    /// Send queries with EDNS(0) and the DO bit.
    #[arg(long)]
    pub dnssec: bool,
    /// Milliseconds to wait for each answer.
    #[arg(long, default_value_t = 2000)]
    pub timeout_ms: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DiffProto {
    Udp,
    Tcp,
    Both,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum XdpModeChoice {
    /// Native (driver) mode, falling back to generic with a warning.
    #[default]
    Auto,
    Native,
    /// Generic (skb) mode: works on any interface, slower.
    Skb,
    /// No XDP: the daemon answers everything.
    Off,
}

#[derive(clap::Args, Debug, Default)]
pub struct ServeArgs {
    /// TOML configuration file; command-line flags override its keys.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Interface to attach the XDP program to (repeatable). None: the daemon answers everything.
    #[arg(long)]
    pub iface: Vec<String>,
    /// Zone file to serve (repeatable). The origin is the owner of its SOA record.
    #[arg(long)]
    pub zone: Vec<PathBuf>,
    /// Address to answer DNS on, UDP and TCP (repeatable). Default: [::]:53 (all addresses).
    #[arg(long)]
    pub listen: Vec<SocketAddr>,
    /// XDP attach mode.
    #[arg(long, value_enum)]
    pub xdp_mode: Option<XdpModeChoice>,
    /// Address for GET /metrics and GET /healthz. Default: 127.0.0.1:9153.
    #[arg(long)]
    pub metrics: Option<SocketAddr>,
    /// EDNS(0) UDP payload size we advertise and cap UDP answers at. Default: 1232.
    #[arg(long)]
    pub edns_payload: Option<u16>,
    /// Most names whose own answers the kernel holds, and the size of its record maps and of
    /// its smallest answer map. When the zones hold more names, every name keeps its record
    /// (existence, answers for missing names below it) and the most queried names their own
    /// answers; the rest are answered by the daemon. Default: 262144.
    #[arg(long, value_name = "N")]
    pub answers_capacity: Option<u32>,
    /// DNS-over-TCP connections at once, all clients together (lowered to what the open-file limit
    /// allows). Default: 1024.
    #[arg(long, value_name = "N")]
    pub tcp_max_connections: Option<usize>,
    /// DNS-over-TCP connections at once from one client address; more are closed at accept. Default: 32.
    #[arg(long, value_name = "N")]
    pub tcp_max_per_client: Option<usize>,
    /// Answer CH TXT version.bind/version.server with TEXT. Default: refuse.
    #[arg(long, value_name = "TEXT")]
    pub version_bind: Option<String>,
    /// Answer CH TXT id.server/hostname.bind with TEXT. Default: refuse.
    #[arg(long, value_name = "TEXT")]
    pub id_server: Option<String>,
    /// DNS cookie secret (RFC 9018), 32 hex digits: give every node of an anycast set the same one
    /// so a server cookie from one node is valid at all. Default: random at start. Prefer the
    /// config file's `cookie_secret` (a flag shows in the process list).
    #[arg(long, value_name = "HEX")]
    pub cookie_secret: Option<String>,
    /// Enable the kernel's BPF run-time accounting (exported as dnsxdp_xdp_run_seconds_total);
    /// costs a few nanoseconds per packet.
    #[arg(long)]
    pub bpf_stats: bool,
    /// Shadow validation: also ask this server (IP:PORT, e.g. the server being replaced) a
    /// sample of the queries answered, compare, count and log mismatches. Default: off.
    #[arg(long, value_name = "IP:PORT")]
    pub shadow_reference: Option<SocketAddr>,
    /// Shadow one query in N (1: every query), from XDP and the daemon alike. Default: 100.
    #[arg(long, value_name = "N")]
    pub shadow_sample: Option<u32>,
    #[command(flatten)]
    pub rrl: RrlArgs,
    #[command(flatten)]
    pub replication: ReplicationArgs,
}

/// Replication (README "Replication"). TSIG keys live in the config file only (`[[tsig_key]]`).
#[derive(clap::Args, Debug, Default, Clone)]
pub struct ReplicationArgs {
    /// Pull ZONE from the primary at IP:PORT and follow its NOTIFYs, e.g. example.com@192.0.2.1:53
    /// (repeatable). Such a zone needs no zone file.
    #[arg(long, value_name = "ZONE@IP:PORT")]
    pub secondary: Vec<String>,
    /// On a primary: a node of the fleet, NOTIFYed on every change and counted for quorum
    /// (repeatable).
    #[arg(long, value_name = "IP:PORT")]
    pub node: Vec<SocketAddr>,
    /// Nodes that must serve a change before an API write returns 200. Default: M - M/4 of the
    /// M nodes (12 of 16).
    #[arg(long)]
    pub quorum: Option<usize>,
    /// Milliseconds an API write waits for quorum before answering 503. Default: 5000.
    #[arg(long)]
    pub quorum_timeout_ms: Option<u64>,
    /// Address of the control API (HTTP/JSON). Needs --api-token-file.
    #[arg(long, value_name = "IP:PORT")]
    pub api: Option<SocketAddr>,
    /// File holding the API's bearer token.
    #[arg(long, value_name = "FILE")]
    pub api_token_file: Option<PathBuf>,
    /// Serve the API over TLS with this PEM certificate chain (needs --api-tls-key); plain HTTP
    /// is then refused on the API address.
    #[arg(long, value_name = "FILE", requires = "api_tls_key")]
    pub api_tls_cert: Option<PathBuf>,
    /// The PEM private key of --api-tls-cert.
    #[arg(long, value_name = "FILE", requires = "api_tls_cert")]
    pub api_tls_key: Option<PathBuf>,
    /// Directory of the zone journals (one file per zone): changes made through the API are
    /// fsynced there before they are acknowledged, and replayed on start. A secondary keeps what
    /// it transferred there (snapshot + IXFR journal), so after a restart it catches up by IXFR.
    #[arg(long, value_name = "DIR")]
    pub journal: Option<PathBuf>,
    /// Who may transfer our zones (AXFR/IXFR) and NOTIFY us, e.g. 192.0.2.0/24 (repeatable).
    /// Default: the --node addresses.
    #[arg(long, value_name = "CIDR")]
    pub allow_transfer: Vec<Cidr>,
    /// A transfer from our primary bringing more records than this is abandoned (the old
    /// version keeps serving). Default: 20000000.
    #[arg(long)]
    pub xfr_max_records: Option<u64>,
    /// A transfer from our primary bringing more bytes of messages than this is abandoned.
    /// Default: 4294967296 (4 GiB).
    #[arg(long)]
    pub xfr_max_bytes: Option<u64>,
    /// Bytes of changes a zone's journal (and the history IXFR is served from) may hold: past
    /// it, the zone is snapshotted and only the newest changes, up to half of it, are kept; a
    /// secondary further behind gets the whole zone. Default: 16777216 (16 MiB); at least 4096.
    #[arg(long, value_name = "BYTES")]
    pub journal_max_size: Option<u64>,
    /// Zone transfers (AXFR, IXFR) served at once; more are answered SERVFAIL (BIND's
    /// transfers-out). Default: 10.
    #[arg(long, value_name = "N")]
    pub xfr_out_max: Option<usize>,
}

/// A TSIG key (RFC 8945) in the config file: `[[tsig_key]]` with `name`, `algorithm`
/// ("hmac-sha256") and `secret` (base64).
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
struct TsigKeyConfig {
    name: String,
    #[serde(default = "default_algorithm")]
    algorithm: String,
    secret: String,
    /// Addresses (CIDR) this key is for; absent: every peer no other key lists.
    #[serde(default)]
    peers: Vec<String>,
}

fn default_algorithm() -> String {
    "hmac-sha256".into()
}

/// Response rate limiting (README "Rate limiting"). SIGHUP rereads these keys from the config
/// file and applies them live; flags given on the command line keep winning.
#[derive(clap::Args, Debug, Default, Clone)]
pub struct RrlArgs {
    /// Responses per second per client prefix and response kind (positive per name, NXDOMAIN
    /// and NODATA per zone, referral per delegation, errors); 0 turns limiting off. Default: 0.
    #[arg(long)]
    pub rrl_rate: Option<u32>,
    /// Responses a prefix may get back to back before the rate applies. Default: the rate.
    #[arg(long)]
    pub rrl_burst: Option<u32>,
    /// Every Nth limited response is a minimal TC=1 reply, so real clients retry over TCP;
    /// 0 never slips. Default: 2.
    #[arg(long)]
    pub rrl_slip: Option<u32>,
    /// Prefix length that groups IPv4 clients. Default: 24.
    #[arg(long)]
    pub rrl_ipv4_prefix: Option<u8>,
    /// Prefix length that groups IPv6 clients. Default: 56.
    #[arg(long)]
    pub rrl_ipv6_prefix: Option<u8>,
    /// Client prefix never limited, e.g. 192.0.2.0/24 (repeatable).
    #[arg(long)]
    pub rrl_allow: Vec<Cidr>,
    /// Count what would be limited, but answer it.
    #[arg(long)]
    pub rrl_dry_run: bool,
}

/// The configuration file's keys.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    iface: Vec<String>,
    #[serde(default)]
    zone: Vec<PathBuf>,
    #[serde(default)]
    listen: Vec<SocketAddr>,
    xdp_mode: Option<XdpModeChoice>,
    metrics: Option<SocketAddr>,
    edns_payload: Option<u16>,
    answers_capacity: Option<u32>,
    tcp_max_connections: Option<usize>,
    tcp_max_per_client: Option<usize>,
    version_bind: Option<String>,
    id_server: Option<String>,
    cookie_secret: Option<String>,
    #[serde(default)]
    bpf_stats: bool,
    shadow_reference: Option<SocketAddr>,
    shadow_sample: Option<u32>,
    rrl_rate: Option<u32>,
    rrl_burst: Option<u32>,
    rrl_slip: Option<u32>,
    rrl_ipv4_prefix: Option<u8>,
    rrl_ipv6_prefix: Option<u8>,
    #[serde(default)]
    rrl_allow: Vec<String>,
    #[serde(default)]
    rrl_dry_run: bool,
    #[serde(default)]
    secondary: Vec<String>,
    #[serde(default)]
    node: Vec<SocketAddr>,
    quorum: Option<usize>,
    quorum_timeout_ms: Option<u64>,
    api: Option<SocketAddr>,
    api_token_file: Option<PathBuf>,
    api_tls_cert: Option<PathBuf>,
    api_tls_key: Option<PathBuf>,
    journal: Option<PathBuf>,
    #[serde(default)]
    allow_transfer: Vec<String>,
    #[serde(default)]
    tsig_key: Vec<TsigKeyConfig>,
    xfr_max_records: Option<u64>,
    xfr_max_bytes: Option<u64>,
    journal_max_size: Option<u64>,
    xfr_out_max: Option<usize>,
}

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
    pub tcp: crate::tcp::TcpLimits,
    /// CH-class version.bind/id.server answers (refused when unset).
    pub chaos: Chaos,
    /// The DNS cookie secret (RFC 9018).
    pub cookies: crate::cookie::Cookies,
    pub bpf_stats: bool,
    /// Shadow validation against a reference server; `None` when off.
    pub shadow: Option<crate::shadow::ShadowSettings>,
    pub rrl: RrlSettings,
    /// Where `rrl` came from, for SIGHUP: the file and the command line's rate-limiting flags.
    pub config_file: Option<PathBuf>,
    pub rrl_cli: RrlArgs,
    pub replication: crate::replication::Config,
    /// The control API: address, bearer token, TLS.
    pub api: Option<ApiSettings>,
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

/// Merges the replication flags over the file's keys.
fn replication_settings(
    cli: ReplicationArgs,
    file: &FileConfig,
) -> Result<(crate::replication::Config, Option<ApiSettings>), String> {
    use crate::name::Name;
    use crate::replication::tsig::{Key, decode_base64};
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
        return Err(format!("quorum {quorum} is more than the {} configured --node addresses", nodes.len()));
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
        keys.push(
            Key::new(name, &k.algorithm.to_ascii_lowercase(), &secret, peers)
                .map_err(|e| format!("tsig_key {}: {e}", k.name))?,
        );
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
                return Err(format!("api_token_file {}: empty", path.display()));
            }
            Some(ApiSettings { addr, token, tls })
        }
    };
    let journal_max_size =
        cli.journal_max_size.or(file.journal_max_size).unwrap_or(crate::replication::persist::DEFAULT_MAX_SIZE);
    if journal_max_size < crate::replication::persist::MIN_MAX_SIZE {
        return Err(format!(
            "journal_max_size {journal_max_size}: at least {} bytes",
            crate::replication::persist::MIN_MAX_SIZE
        ));
    }
    let xfr_out_max = cli.xfr_out_max.or(file.xfr_out_max).unwrap_or(crate::replication::DEFAULT_XFR_OUT_MAX);
    if xfr_out_max == 0 {
        return Err("xfr_out_max 0: at least 1 (--allow-transfer decides who may transfer)".into());
    }
    let config = crate::replication::Config {
        secondaries,
        nodes,
        quorum,
        quorum_deadline: std::time::Duration::from_millis(
            cli.quorum_timeout_ms.or(file.quorum_timeout_ms).unwrap_or(5000),
        ),
        journal: cli.journal.or(file.journal.clone()),
        keys,
        allow_transfer: pick(cli.allow_transfer, file_allow),
        xfr_limits: crate::replication::xfr::Limits {
            max_records: cli
                .xfr_max_records
                .or(file.xfr_max_records)
                .unwrap_or(crate::replication::xfr::Limits::default().max_records),
            max_bytes: cli
                .xfr_max_bytes
                .or(file.xfr_max_bytes)
                .unwrap_or(crate::replication::xfr::Limits::default().max_bytes),
        },
        journal_max_size,
        xfr_out_max,
    };
    Ok((config, api))
}

/// Merges the rate-limiting flags over the file's keys over the defaults.
fn rrl_settings(cli: &RrlArgs, file: &FileConfig) -> Result<RrlSettings, String> {
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

fn pick<T>(cli: Vec<T>, file: Vec<T>) -> Vec<T> {
    if cli.is_empty() { file } else { cli }
}

impl Settings {
    pub fn from_args(args: ServeArgs) -> Result<Self, String> {
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
        let (replication, api) = replication_settings(args.replication.clone(), &file)?;
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
                let d = crate::tcp::TcpLimits::default();
                crate::tcp::TcpLimits {
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
        };
        let mut settings = settings;
        if settings.tcp.max_connections == 0 || settings.tcp.max_per_client == 0 {
            return Err("tcp_max_connections and tcp_max_per_client must be at least 1 (0 would refuse all TCP)".into());
        }
        if settings.listen.is_empty() {
            settings.listen.push("[::]:53".parse().expect("literal"));
        }
        if settings.zones.is_empty() && settings.replication.secondaries.is_empty() {
            return Err(
                "no zone to serve: give --zone FILE or --secondary ZONE@IP:PORT (or their keys in the config file)"
                    .into(),
            );
        }
        if settings.edns_payload < 512 {
            return Err(format!("edns_payload {} is below the DNS minimum of 512", settings.edns_payload));
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
    pub fn reread_rrl(&self) -> Result<RrlSettings, String> {
        let file = match &self.config_file {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        rrl_settings(&self.rrl_cli, &file)
    }

    /// The UDP port XDP answers on.
    pub fn dns_port(&self) -> u16 {
        self.listen[0].port()
    }

    pub fn xdp_enabled(&self) -> bool {
        !self.ifaces.is_empty() && self.xdp_mode != XdpModeChoice::Off
    }
}

/// Default of `--shadow-sample`: 1% of the queries keeps a reference's load small.
pub const DEFAULT_SHADOW_SAMPLE: u32 = 100;

fn shadow_settings(cli: &ServeArgs, file: &FileConfig) -> Result<Option<crate::shadow::ShadowSettings>, String> {
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
    Ok(Some(crate::shadow::ShadowSettings { reference, sample, timeout: crate::shadow::DEFAULT_TIMEOUT }))
}

fn read_file(path: &Path) -> Result<FileConfig, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
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
        assert!(err.unwrap_err().contains("shadow_reference"));
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
        assert_eq!(file("api_tls_cert = \"c.pem\"\n").unwrap_err(), "api_tls_cert needs api_tls_key");
        // Both keys given: the files are read at configuration time, so a missing one is named.
        let err = file("api_tls_cert = \"/nonexistent/c.pem\"\napi_tls_key = \"/nonexistent/k.pem\"\n").unwrap_err();
        assert!(err.contains("/nonexistent/c.pem"), "{err}");
        // The flags override the file's keys (and fail the same way on a missing file).
        std::fs::write(&path, format!("zone = [\"f.zone\"]\napi = \"127.0.0.1:8053\"\napi_token_file = {token:?}\n"))
            .unwrap();
        let mut args = ServeArgs { config: Some(path.clone()), ..Default::default() };
        args.replication.api_tls_cert = Some("/nonexistent/flag.pem".into());
        args.replication.api_tls_key = Some("/nonexistent/k.pem".into());
        assert!(Settings::from_args(args).unwrap_err().contains("/nonexistent/flag.pem"));
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
        assert!(Settings::from_args(bad).unwrap_err().contains("cookie_secret"), "the flag overrides the file");
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
            settings("journal_max_size = 100\n", ReplicationArgs::default()).unwrap_err().contains("journal_max_size")
        );
        assert!(settings("xfr_out_max = 0\n", ReplicationArgs::default()).unwrap_err().contains("xfr_out_max"));
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
        assert!(Settings::from_args(args(RrlArgs::default())).unwrap_err().contains("rrl_ipv4_prefix"));
    }
}
