//! dns-xdp: an authoritative DNS server whose hot path runs in XDP.
//!
//! The kernel looks up, userspace decides: `zone` holds the data and the RFC 1034 lookup,
//! `wire` the one encoder, `answer` the policy around it, `compile` turns zones into the XDP
//! program's map entries, `loader` puts them into the kernel, `slowpath` and `tcp` answer what
//! XDP passes on (through `responder`), `encrypted` answers over TLS, HTTPS and QUIC through the
//! same `responder`, and `daemon` starts, reloads and stops it all with the `config` settings.

pub mod answer;
pub mod api;
pub mod bounce;
pub mod compare;
pub mod compile;
pub mod config;
pub mod cookie;
pub mod daemon;
pub mod diff;
pub mod encrypted;
pub mod exchange;
#[doc(hidden)]
pub mod fuzzing;
pub mod hits;
pub mod hotset;
pub mod http;
pub mod loader;
pub mod metrics;
pub mod name;
pub mod publish;
pub mod replication;
pub mod reply_count;
pub mod responder;
pub mod rrl;
pub mod shadow;
pub mod slowpath;
pub mod state;
pub mod store;
pub mod tcp;
pub mod testframe;
pub mod wire;
pub mod zone;

/// The XDP program, built by build.rs from the dns-xdp-ebpf crate.
pub static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/dns-xdp"));

use std::path::PathBuf;
use std::sync::Arc;

use zone::{Diagnostic, Severity, ZoneSet, load_zone_file};

/// Loads every zone file; all problems of all files on failure.
pub fn load_zones(files: &[PathBuf]) -> Result<(ZoneSet, Vec<Diagnostic>), Vec<Diagnostic>> {
    let mut zones = Vec::new();
    let mut warnings = Vec::new();
    let mut errors = Vec::new();
    for file in files {
        match load_zone_file(file) {
            Ok((zone, warn)) => {
                warnings.extend(warn);
                if let Some(other) = zones.iter().find(|z: &&Arc<zone::Zone>| z.origin == zone.origin) {
                    errors.push(Diagnostic {
                        file: Arc::new(file.clone()),
                        line: 1,
                        severity: Severity::Error,
                        message: format!("zone {} is already loaded from {}", zone.origin, other.file.display()),
                    });
                    continue;
                }
                zones.push(Arc::new(zone));
            }
            Err(err) => errors.extend(err.diagnostics),
        }
    }
    if errors.iter().any(|d| d.severity == Severity::Error) {
        return Err(errors);
    }
    Ok((ZoneSet::new(zones), warnings))
}
