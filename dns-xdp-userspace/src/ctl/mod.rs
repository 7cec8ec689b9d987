//! `dns-xdp ctl`: the control tool (knotc's role) over the daemon's control API and metrics
//! endpoint. Finds them through the daemon's configuration file (endpoint.rs), sends one request
//! (client.rs), prints the answer for a person and exits with a code a script can test:
//!
//! | code | meaning |
//! | --- | --- |
//! | 0 | done |
//! | 1 | refused: the request is wrong (400, 404, 405) or a reload found broken zone files (500) |
//! | 2 | usage error (bad arguments) |
//! | 3 | the change is made but not yet confirmed by the quorum of nodes (503); it keeps propagating |
//! | 4 | authentication failed (401): wrong token |
//! | 5 | the daemon could not be reached (not running, wrong address, TLS failure, timeout) |
//! | 64 | configuration: no API configured, token file unreadable |

mod client;
mod endpoint;

use std::process::ExitCode;

use serde_json::{Value, json};

pub use client::{ClientError, Server};
pub use endpoint::{DEFAULT_CONFIG, EndpointArgs};

/// Exit codes (module docs).
pub mod exit {
    pub const REFUSED: u8 = 1;
    pub const NOT_CONFIRMED: u8 = 3;
    pub const UNAUTHORIZED: u8 = 4;
    pub const UNREACHABLE: u8 = 5;
    pub const CONFIG: u8 = 64;
}

/// `dns-xdp ctl`.
#[derive(clap::Args, Debug)]
pub struct CtlArgs {
    #[command(flatten)]
    pub endpoint: EndpointArgs,
    #[command(subcommand)]
    pub command: CtlCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum CtlCommand {
    /// Zones: list, status, reload.
    #[command(subcommand)]
    Zone(ZoneCommand),
    /// Records: get, put (replace the RRset), delete. NAME is relative to ZONE, `@` the apex, or
    /// absolute with a trailing dot.
    #[command(subcommand)]
    Rrset(RrsetCommand),
    /// The daemon's counters from the metrics endpoint (no token needed).
    Stats,
}

#[derive(clap::Subcommand, Debug)]
pub enum ZoneCommand {
    /// Every zone served, with its serial.
    List,
    /// One zone: serial and RRsets.
    Status { zone: String },
    /// Reread every zone file, as SIGHUP does; with ZONE, report that zone's serial afterwards.
    /// Broken files change nothing and exit 1 with their errors.
    Reload { zone: Option<String> },
}

#[derive(clap::Subcommand, Debug)]
pub enum RrsetCommand {
    /// Print the RRset NAME TYPE of ZONE.
    Get { zone: String, name: String, rtype: String },
    /// Replace the RRset NAME TYPE of ZONE with RDATA (one argument per record); waits for quorum.
    Put {
        zone: String,
        name: String,
        rtype: String,
        /// TTL of the records.
        #[arg(long, default_value_t = 3600)]
        ttl: u32,
        #[arg(required = true)]
        rdata: Vec<String>,
    },
    /// Delete the RRset NAME TYPE of ZONE; waits for quorum.
    Delete { zone: String, name: String, rtype: String },
}

/// A request's failure, already worded for the operator, with its exit code.
struct Failure(u8, String);

impl From<ClientError> for Failure {
    fn from(err: ClientError) -> Self {
        Failure(exit::UNREACHABLE, format!("{err} (is dns-xdp running, and is this its address?)"))
    }
}

/// Runs `dns-xdp ctl`; the exit code (module docs).
pub fn main(args: CtlArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("dns-xdp ctl: starting the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(Failure(code, message)) => {
            eprintln!("dns-xdp ctl: {message}");
            ExitCode::from(code)
        }
    }
}

async fn run(args: CtlArgs) -> Result<String, Failure> {
    let endpoints = args.endpoint.settle().map_err(|e| Failure(exit::CONFIG, e))?;
    if let CtlCommand::Stats = args.command {
        let (status, body) = client::request(&endpoints.metrics, "GET", "/metrics", None, None).await?;
        if status != 200 {
            return Err(Failure(exit::REFUSED, format!("GET /metrics on {}: status {status}", endpoints.metrics.addr)));
        }
        return Ok(stats(&body));
    }
    let (api, token) = endpoints.api.ok_or_else(|| {
        Failure(exit::CONFIG, "no control API: give --api, or set api in the config file (--config)".into())
    })?;
    let call = |method: &'static str, path: String, body: Option<Value>| {
        let (api, token) = (&api, token.as_str());
        async move {
            let (status, text) = client::request(api, method, &path, Some(token), body.map(|b| b.to_string())).await?;
            let value: Value = serde_json::from_str(&text).unwrap_or_else(|_| json!({"error": text.trim()}));
            match status {
                200 => Ok(value),
                401 => Err(Failure(
                    exit::UNAUTHORIZED,
                    format!("{method} {path}: 401 unauthorized: the token in the token file is not the daemon's"),
                )),
                503 => Err(Failure(
                    exit::NOT_CONFIRMED,
                    format!(
                        "{method} {path}: 503: committed as serial {} but confirmed by only {} of the {} nodes required in time; it keeps propagating",
                        value["serial"], value["confirmed"], value["required"]
                    ),
                )),
                _ => Err(Failure(exit::REFUSED, format!("{method} {path}: {status}: {}", error_text(&value)))),
            }
        }
    };
    match args.command {
        CtlCommand::Stats => unreachable!("answered above"),
        CtlCommand::Zone(ZoneCommand::List) => Ok(zone_lines(&call("GET", "/v1/zones".into(), None).await?)),
        CtlCommand::Zone(ZoneCommand::Status { zone }) => {
            let z = call("GET", format!("/v1/zones/{zone}"), None).await?;
            let sets = z["rrsets"].as_array().map_or(0, Vec::len);
            Ok(format!("zone {} serial {} ({sets} RRsets)\n", text(&z["zone"]), z["serial"]))
        }
        CtlCommand::Zone(ZoneCommand::Reload { zone }) => {
            let list = call("POST", "/v1/reload".into(), None).await?;
            match zone {
                None => Ok(format!("reloaded\n{}", zone_lines(&list))),
                Some(zone) => {
                    let want = absolute(&zone);
                    let found = list["zones"].as_array().into_iter().flatten().find(|z| same(&z["zone"], &want));
                    match found {
                        Some(z) => Ok(format!("reloaded; zone {} serial {}\n", text(&z["zone"]), z["serial"])),
                        None => Err(Failure(exit::REFUSED, format!("reloaded, but zone {want} is not served"))),
                    }
                }
            }
        }
        CtlCommand::Rrset(RrsetCommand::Get { zone, name, rtype }) => {
            let z = call("GET", format!("/v1/zones/{zone}"), None).await?;
            let owner = owner(&name, &zone);
            let sets: Vec<&Value> = z["rrsets"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|s| same(&s["name"], &owner) && text(&s["type"]).eq_ignore_ascii_case(&rtype))
                .collect();
            if sets.is_empty() {
                return Err(Failure(exit::REFUSED, format!("no {} RRset at {owner}", rtype.to_uppercase())));
            }
            let mut out = String::new();
            for s in sets {
                for rdata in s["rdata"].as_array().into_iter().flatten() {
                    out += &format!("{} {} IN {} {}\n", text(&s["name"]), s["ttl"], text(&s["type"]), text(rdata));
                }
            }
            Ok(out)
        }
        CtlCommand::Rrset(RrsetCommand::Put { zone, name, rtype, ttl, rdata }) => {
            let path = format!("/v1/zones/{zone}/rrsets/{name}/{rtype}");
            let r = call("PUT", path, Some(json!({"ttl": ttl, "rdata": rdata}))).await?;
            Ok(written(&r))
        }
        CtlCommand::Rrset(RrsetCommand::Delete { zone, name, rtype }) => {
            let r = call("DELETE", format!("/v1/zones/{zone}/rrsets/{name}/{rtype}"), None).await?;
            Ok(written(&r))
        }
    }
}

/// A JSON string's text (or the value's JSON when it is not a string).
fn text(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_string)
}

fn error_text(v: &Value) -> String {
    match v["field"].as_str() {
        Some(field) => format!("{} (field {field})", text(&v["error"])),
        None => text(&v["error"]),
    }
}

fn zone_lines(list: &Value) -> String {
    list["zones"].as_array().into_iter().flatten().map(|z| format!("{} {}\n", text(&z["zone"]), z["serial"])).collect()
}

fn written(r: &Value) -> String {
    format!("serial {}: served by {} of {} nodes (quorum {})\n", r["serial"], r["confirmed"], r["nodes"], r["required"])
}

fn absolute(name: &str) -> String {
    if name.ends_with('.') { name.to_string() } else { format!("{name}.") }
}

/// NAME as the API spells owners: `@` the apex, relative names below ZONE, absolute ones as given.
fn owner(name: &str, zone: &str) -> String {
    match name {
        "@" => absolute(zone),
        n if n.ends_with('.') => n.to_string(),
        n => format!("{n}.{}", absolute(zone)),
    }
}

/// DNS names compare without regard to ASCII case (RFC 4343).
fn same(v: &Value, name: &str) -> bool {
    v.as_str().is_some_and(|s| s.eq_ignore_ascii_case(name))
}

/// The metrics an operator reads first, without the Prometheus comments and histogram buckets.
fn stats(metrics: &str) -> String {
    metrics.lines().filter(|l| l.starts_with("dnsxdp_") && !l.contains("_bucket{")).map(|l| format!("{l}\n")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_as_the_api_spells_them() {
        assert_eq!(owner("@", "example.com"), "example.com.");
        assert_eq!(owner("www", "example.com."), "www.example.com.");
        assert_eq!(owner("mail.example.net.", "example.com"), "mail.example.net.");
        assert!(same(&json!("WWW.Example.COM."), "www.example.com."));
    }

    #[test]
    fn stats_keep_samples_only() {
        let m = "# HELP dnsxdp_x x\ndnsxdp_x 1\ndnsxdp_h_bucket{le=\"1\"} 2\ndnsxdp_h_sum 3\nother 4\n";
        assert_eq!(stats(m), "dnsxdp_x 1\ndnsxdp_h_sum 3\n");
    }
}
