//! Zone files (RFC 1035 section 5) into validated `Zone` snapshots, with `file:line:` diagnostics.
//!
//! Parsing is NLnet Labs `domain`'s; what it leaves to the caller lives here, one concern a file:
//! `scan` reads text (opening `$INCLUDE`d files, confined to the zone's folder, and mapping
//! records to source lines), `build` assembles the records into a zone, `rules` holds the checks
//! an operator expects before a zone goes live. This file is the door: the diagnostics and the
//! three ways in (a zone file, wire records, one record's text).

mod build;
mod rules;
mod scan;
#[cfg(test)]
mod tests;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use domain::base::iana::Class;

use super::Zone;
pub(super) use build::Growing;
pub(super) use rules::MAX_TTL;
use scan::Scanned;
pub use scan::parse_records;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// One problem found in a zone file, printed as `file:line: message`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: Arc<PathBuf>,
    pub line: usize,
    pub severity: Severity,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefix = match self.severity {
            Severity::Error => "",
            Severity::Warning => "warning: ",
        };
        write!(f, "{}:{}: {prefix}{}", self.file.display(), self.line, self.message)
    }
}

/// A zone file that cannot be served; every problem found, in file order.
#[derive(Debug)]
pub struct LoadError {
    pub diagnostics: Vec<Diagnostic>,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let errors: Vec<String> =
            self.diagnostics.iter().filter(|d| d.severity == Severity::Error).map(ToString::to_string).collect();
        f.write_str(&errors.join("; "))
    }
}

impl std::error::Error for LoadError {}

/// Loads and validates one zone file. `Ok` carries the zone and its warnings; `Err` every
/// problem (errors and warnings) when at least one is an error.
pub fn load_zone_file(path: &Path) -> Result<(Zone, Vec<Diagnostic>), LoadError> {
    let file = Arc::new(path.to_path_buf());
    let (records, mut diags) = scan::scan_file(path, &file)?;
    if diags.iter().any(|d| d.severity == Severity::Error) {
        // In file order: the rewrite's and `domain`'s errors come in two passes.
        diags.sort_by(|a, b| (a.file.as_ref(), a.line).cmp(&(b.file.as_ref(), b.line)));
        return Err(LoadError { diagnostics: diags });
    }
    let zone = build::build_zone(file.clone(), records, &mut diags);
    diags.sort_by(|a, b| (a.file.as_ref(), a.line).cmp(&(b.file.as_ref(), b.line)));
    match zone {
        Some(zone) if !diags.iter().any(|d| d.severity == Severity::Error) => Ok((zone, diags)),
        _ => Err(LoadError { diagnostics: diags }),
    }
}

/// Builds and validates a zone from wire records (a transfer, a journal replay, an API change)
/// with the same rules as a zone file; `source` names the input in diagnostics.
pub fn zone_from_records(source: &str, records: Vec<super::Record>) -> Result<Zone, Vec<Diagnostic>> {
    let file = Arc::new(PathBuf::from(source));
    let scanned = records
        .into_iter()
        .enumerate()
        .map(|(i, r)| Scanned {
            owner: r.owner,
            rtype: r.rtype,
            class: Class::IN,
            ttl: r.ttl,
            rdata: r.rdata,
            file: file.clone(),
            line: i + 1,
        })
        .collect();
    let mut diags = Vec::new();
    match build::build_zone(file, scanned, &mut diags) {
        Some(zone) if !diags.iter().any(|d| d.severity == Severity::Error) => Ok(zone),
        _ => Err(diags.into_iter().filter(|d| d.severity == Severity::Error).collect()),
    }
}

/// Mnemonic of a record type, for messages.
pub fn type_name(rt: u16) -> String {
    domain::base::iana::Rtype::from_int(rt).to_string()
}
