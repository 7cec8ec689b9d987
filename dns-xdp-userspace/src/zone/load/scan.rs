//! Reading zone-file text into records: `domain`'s scanner, guarded against its panics, with what
//! it leaves to the caller: the line each entry starts on, `$INCLUDE` (opened here, nested at most
//! `MAX_INCLUDE_DEPTH` deep and confined to the zone's folder) and the origin a file without
//! `$ORIGIN` takes from its name. Checks nothing about the records themselves (build.rs, rules.rs).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use domain::base::iana::Class;
use domain::base::{ToName, rdata::ComposeRecordData};
use domain::zonefile::inplace::{Entry, Zonefile};

use super::{Diagnostic, LoadError, Severity};
use crate::name::Name;
use crate::zone::{Record, presentation};

/// `$INCLUDE` nesting limit: guards against include cycles.
const MAX_INCLUDE_DEPTH: usize = 8;

/// A record as scanned, remembered with where it came from.
pub(super) struct Scanned {
    pub(super) owner: Name,
    pub(super) rtype: u16,
    pub(super) class: Class,
    pub(super) ttl: u32,
    pub(super) rdata: Vec<u8>,
    pub(super) file: Arc<PathBuf>,
    pub(super) line: usize,
}

impl Scanned {
    /// A problem with this record, reported at its file and line.
    pub(super) fn diagnostic(&self, severity: Severity, message: String) -> Diagnostic {
        Diagnostic { file: self.file.clone(), line: self.line, severity, message }
    }
}

/// Every record of the zone file at `path` and of the files it includes, and the problems met
/// reading them. The file itself is named `file` (the path the operator gave) in both, included
/// files by their real path.
pub(super) fn scan_file(path: &Path, file: &Arc<PathBuf>) -> Result<(Vec<Scanned>, Vec<Diagnostic>), LoadError> {
    let real = path.canonicalize().map_err(|err| LoadError {
        diagnostics: vec![Diagnostic {
            file: file.clone(),
            line: 1,
            severity: Severity::Error,
            message: format!("cannot read zone file: {err}"),
        }],
    })?;
    let root_dir = real.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut loader = Loader { root_dir, records: Vec::new(), diags: Vec::new() };
    // Scan with the real path for includes, but report against the path the operator gave.
    loader.scan(&real, origin_from_file_name(path), 0, (file, 1));
    for d in &mut loader.diags {
        if *d.file == real {
            d.file = file.clone();
        }
    }
    for r in &mut loader.records {
        if *r.file == real {
            r.file = file.clone();
        }
    }
    Ok((loader.records, loader.diags))
}

/// Where the records of a file and its includes gather while they are read.
struct Loader {
    root_dir: PathBuf,
    records: Vec<Scanned>,
    diags: Vec<Diagnostic>,
}

impl Loader {
    fn diag(&mut self, file: &Arc<PathBuf>, line: usize, severity: Severity, message: String) {
        self.diags.push(Diagnostic { file: file.clone(), line, severity, message });
    }

    fn scan(&mut self, path: &Path, origin: Option<Name>, depth: usize, from: (&Arc<PathBuf>, usize)) {
        let file = Arc::new(path.to_path_buf());
        let text = match std::fs::read(path) {
            Ok(text) => text,
            Err(err) => {
                self.diag(from.0, from.1, Severity::Error, format!("cannot read {}: {err}", path.display()));
                return;
            }
        };
        // Types `domain` cannot read become generic records first, line for line.
        let rewritten = presentation::rewrite(&text, origin.as_ref().map(Name::as_wire));
        let ours: Vec<usize> = rewritten.errors.iter().map(|e| e.line).collect();
        for e in rewritten.errors {
            self.diag(&file, e.line, Severity::Error, e.error.to_string());
        }
        let text = rewritten.text;
        let mut entry_lines = entry_start_lines(&text).into_iter();
        let mut zonefile = Zonefile::from(&text[..]);
        if let Some(origin) = origin {
            zonefile.set_origin(to_domain_name(&origin));
        }
        loop {
            let Some(next) = guarded_next_entry(&mut zonefile) else {
                let line = entry_lines.next().unwrap_or(1);
                self.diag(&file, line, Severity::Error, PARSER_PANIC.into());
                return;
            };
            let entry = match next {
                Ok(Some(entry)) => entry,
                Ok(None) => break,
                Err(err) => {
                    // domain prints "line:col: message". When the bad token ended its line, the
                    // scanner has already moved to column 1 of the next one: report the token's line.
                    let text = err.to_string();
                    let mut parts = text.splitn(3, ':');
                    let line: usize = parts.next().and_then(|l| l.trim().parse().ok()).unwrap_or(1);
                    let col: usize = parts.next().and_then(|c| c.trim().parse().ok()).unwrap_or(0);
                    let line = if col <= 1 && line > 1 { line - 1 } else { line };
                    let msg = parts.next().unwrap_or(&text).trim().to_string();
                    // An entry the rewrite refused is already reported, in better words.
                    if !ours.contains(&line) {
                        self.diag(&file, line, Severity::Error, msg);
                    }
                    return;
                }
            };
            // Entries come back in file order, one per entry start we found.
            let line = entry_lines.next().unwrap_or(1);
            match entry {
                Entry::Record(record) => {
                    let owner: domain::base::Name<Vec<u8>> = record.owner().to_name();
                    let mut rdata = Vec::new();
                    let composed = record.data().compose_rdata(&mut rdata);
                    let owner = Name::from_wire(owner.as_slice());
                    match (owner, composed) {
                        (Some(owner), Ok(())) => self.records.push(Scanned {
                            owner,
                            rtype: record.rtype().to_int(),
                            class: record.class(),
                            ttl: record.ttl().as_secs(),
                            rdata,
                            file: file.clone(),
                            line,
                        }),
                        _ => self.diag(&file, line, Severity::Error, "record cannot be encoded".into()),
                    }
                }
                Entry::Include { path: include, origin } => {
                    let origin = origin
                        .and_then(|o| Name::from_wire(o.as_slice()))
                        .or_else(|| zonefile.origin().ok().and_then(|o| Name::from_wire(o.as_slice())));
                    let include = String::from_utf8_lossy(include.as_slice()).into_owned();
                    let base = path.parent().unwrap_or(Path::new("."));
                    let target = base.join(&include);
                    if depth >= MAX_INCLUDE_DEPTH {
                        self.diag(
                            &file,
                            line,
                            Severity::Error,
                            format!("$INCLUDE nested deeper than {MAX_INCLUDE_DEPTH}"),
                        );
                        continue;
                    }
                    match target.canonicalize() {
                        Ok(real) if real.starts_with(&self.root_dir) => {
                            self.scan(&real, origin, depth + 1, (&file, line))
                        }
                        Ok(_) => self.diag(
                            &file,
                            line,
                            Severity::Error,
                            format!("$INCLUDE {include}: outside the zone's folder {}", self.root_dir.display()),
                        ),
                        Err(err) => self.diag(&file, line, Severity::Error, format!("$INCLUDE {include}: {err}")),
                    }
                }
            }
        }
    }
}

fn to_domain_name(name: &Name) -> domain::base::Name<Bytes> {
    domain::base::Name::from_octets(Bytes::copy_from_slice(name.as_wire())).expect("valid wire name")
}

/// What we report when `domain`'s zone-file scanner panics on an entry.
const PARSER_PANIC: &str = "malformed entry (the zone-file parser could not read it)";

/// `domain`'s next entry, `None` when the scanner panics: domain 0.12.3 indexes past its buffer
/// on some character strings left open at the end of the input (found by fuzz/zone_file), and a
/// bad zone file or API write must be an error, not a daemon that dies. The scanner is not used
/// after a panic.
fn guarded_next_entry(zonefile: &mut Zonefile) -> Option<Result<Option<Entry>, domain::zonefile::inplace::Error>> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| zonefile.next_entry())).ok()
}

/// The 1-based lines where each record or `$INCLUDE` entry starts, in order (RFC 1035 section
/// 5.1): a line with content outside parentheses, comments and quotes, not a `$ORIGIN` or `$TTL`
/// directive (the parser consumes those itself). `domain` does not report record positions.
fn entry_start_lines(text: &[u8]) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut depth = 0usize;
    let mut in_quote = false;
    for (index, line) in text.split(|&b| b == b'\n').enumerate() {
        let mut has_content = false;
        let begins_in_entry = depth > 0 || in_quote;
        let mut escaped = false;
        for &b in line {
            if in_quote {
                match (escaped, b) {
                    (false, b'\\') => escaped = true,
                    (false, b'"') => in_quote = false,
                    _ => escaped = false,
                }
                continue;
            }
            match b {
                b';' => break,
                b'(' => depth += 1,
                b')' => depth = depth.saturating_sub(1),
                b'"' => in_quote = true,
                b' ' | b'\t' | b'\r' => continue,
                _ => {}
            }
            has_content = true;
        }
        if has_content && !begins_in_entry {
            let trimmed = line.trim_ascii_start();
            let directive = trimmed.first() == Some(&b'$')
                && !trimmed.get(..8).is_some_and(|d| d.eq_ignore_ascii_case(b"$INCLUDE"));
            if !directive {
                starts.push(index + 1);
            }
        }
    }
    starts
}

/// Origin for a zone file without `$ORIGIN`: its file name minus a `.zone`/`.db` suffix.
fn origin_from_file_name(path: &Path) -> Option<Name> {
    let stem = path.file_name()?.to_str()?;
    let stem = stem.strip_suffix(".zone").or_else(|| stem.strip_suffix(".db")).unwrap_or(stem);
    Name::from_text(stem)
}

/// Parses zone-file text (no `$INCLUDE`) relative to `origin` into wire records: the API feeds
/// its input through here so it obeys exactly the zone-file rules.
pub fn parse_records(text: &str, origin: &Name) -> Result<Vec<Record>, String> {
    let rewritten = presentation::rewrite(text.as_bytes(), Some(origin.as_wire()));
    if let Some(e) = rewritten.errors.first() {
        return Err(e.error.to_string());
    }
    let mut zonefile = Zonefile::from(&rewritten.text[..]);
    zonefile.set_origin(to_domain_name(origin));
    let mut out = Vec::new();
    loop {
        match guarded_next_entry(&mut zonefile).ok_or(PARSER_PANIC)? {
            Ok(Some(Entry::Record(record))) => {
                if record.class() != Class::IN {
                    return Err(format!("class {} is not served (only IN)", record.class()));
                }
                let owner: domain::base::Name<Vec<u8>> = record.owner().to_name();
                let mut rdata = Vec::new();
                record.data().compose_rdata(&mut rdata).map_err(|_| "record cannot be encoded".to_string())?;
                let owner = Name::from_wire(owner.as_slice()).ok_or("bad owner name")?;
                out.push(Record { owner, rtype: record.rtype().to_int(), ttl: record.ttl().as_secs(), rdata });
            }
            Ok(Some(Entry::Include { .. })) => return Err("$INCLUDE is not allowed here".into()),
            Ok(None) => return Ok(out),
            Err(err) => {
                let text = err.to_string();
                // domain prefixes "line:col:"; the caller knows which input it gave.
                let msg = text.splitn(3, ':').nth(2).map(str::trim).unwrap_or(&text);
                return Err(msg.to_string());
            }
        }
    }
}
