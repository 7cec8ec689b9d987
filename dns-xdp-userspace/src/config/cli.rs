//! The command line: subcommands and the `serve` flags, as clap parses them. Every `serve` flag
//! has a key of the same name in the configuration file (file.rs); merge.rs settles the two into
//! `Settings`. Owns the clap types; uses only address prefixes (rrl.rs) and the test-bed
//! subcommands' own argument types.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use serde::Deserialize;

use crate::rrl::Cidr;

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
    /// Ask two servers every query of a file and compare their answers as shadow validation
    /// does; prints each mismatch and a summary; exit 1 if any answer differs.
    Diff(DiffArgs),
    /// Control a running daemon over its control API: zones, records, reloads, counters.
    /// Exit codes: 0 done, 1 refused, 2 usage, 3 not confirmed by quorum, 4 wrong token,
    /// 5 unreachable, 64 configuration.
    Ctl(crate::ctl::CtlArgs),
    /// Packaging helper: write the man pages and shell completions into DIR (`cargo xtask deb`).
    #[command(hide = true)]
    GenerateDocs(crate::package_docs::GenerateDocsArgs),
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

/// How the XDP program is attached (`--xdp-mode`, `xdp_mode`).
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
    /// Log lines as text or as one JSON object per line. Under systemd (JOURNAL_STREAM set) each
    /// line carries its syslog priority for the journal. Default: text.
    #[arg(long, value_enum)]
    pub log_format: Option<crate::logging::LogFormat>,
    #[command(flatten)]
    pub rrl: RrlArgs,
    #[command(flatten)]
    pub replication: ReplicationArgs,
    #[command(flatten)]
    pub encrypted: EncryptedArgs,
}

/// DNS over TLS, HTTPS and QUIC (README "Encrypted transports"). Each listener starts only when
/// named, and needs --tls-cert and --tls-key. They share TCP's connection limits.
#[derive(clap::Args, Debug, Default, Clone)]
pub struct EncryptedArgs {
    /// PEM certificate chain of the encrypted transports; SIGHUP reads it again.
    #[arg(long, value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert; SIGHUP reads it again.
    #[arg(long, value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// Answer DNS over TLS (RFC 7858, ALPN dot) on IP:PORT, usually port 853 (repeatable).
    #[arg(long, value_name = "IP:PORT")]
    pub listen_tls: Vec<SocketAddr>,
    /// Answer DNS over HTTPS (RFC 8484, /dns-query, HTTP/2 and HTTP/1.1) on IP:PORT, usually port
    /// 443 (repeatable).
    #[arg(long, value_name = "IP:PORT")]
    pub listen_https: Vec<SocketAddr>,
    /// Answer DNS over QUIC (RFC 9250, ALPN doq) on IP:PORT, usually UDP port 853 (repeatable).
    #[arg(long, value_name = "IP:PORT")]
    pub listen_quic: Vec<SocketAddr>,
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
    /// Source address of the NOTIFYs, SOA probes and transfer requests we send, one per address
    /// family (repeatable: one IPv4, one IPv6). Default: the --listen address when exactly one
    /// specific address of that family is given, else the kernel's choice.
    #[arg(long, value_name = "IP")]
    pub source: Vec<IpAddr>,
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
