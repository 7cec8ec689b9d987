//! dns-xdp: an authoritative DNS server whose hot path runs in XDP.
//!
//! The kernel looks up, userspace decides: `zone` holds the data and the RFC 1034 lookup,
//! `wire` the one encoder, `respond` the policy around it, `compile` turns zones into the XDP
//! program's map entries, `update` decides what a change recompiles and which names the hot
//! set keeps, `store` writes the entries into the maps (`kernel`) that `loader` loads with the
//! program, `slowpath` and `tcp` answer what XDP passes on (through `responder`), `encrypted`
//! answers over TLS, HTTPS and QUIC through the same `responder`, and `daemon` starts, reloads
//! and stops it all with the `config` settings.

pub mod api;
pub mod compare;
pub mod compile;
pub mod config;
pub mod cookie;
pub mod ctl;
pub mod daemon;
pub mod diff;
pub mod encrypted;
pub mod exchange;
#[doc(hidden)]
pub mod fuzzing;
pub mod hotset;
pub mod http;
pub mod kernel;
pub mod loader;
pub mod logging;
pub mod metrics;
pub mod name;
pub mod package_docs;
pub mod publish;
pub mod replication;
pub mod respond;
pub mod responder;
pub mod rrl;
pub mod shadow;
pub mod slowpath;
pub mod source;
pub mod state;
pub mod store;
pub mod tcp;
pub mod update;
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

/// The zones of the repository's `testdata/` files `paths` (unit tests).
#[cfg(test)]
pub(crate) fn test_zones(paths: &[&str]) -> ZoneSet {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata");
    let files: Vec<PathBuf> = paths.iter().map(|p| root.join(p)).collect();
    load_zones(&files).unwrap_or_else(|d| panic!("{paths:?} do not load: {d:?}")).0
}
