//! Zone files (RFC 1035 section 5) into validated `Zone` snapshots, with `file:line:` diagnostics.
//!
//! Parsing is NLnet Labs `domain`'s; what it leaves to the caller lives here: opening
//! `$INCLUDE`d files (confined to the zone's folder), mapping records to source lines, and the
//! checks an operator expects before a zone goes live.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use domain::base::iana::Class;
use domain::base::{ToName, rdata::ComposeRecordData};
use domain::zonefile::inplace::{Entry, Zonefile};

use super::{Node, RRset, Rdata, Zone, presentation, rtype};
use crate::name::Name;

/// Largest TTL a resolver honours (RFC 2181 section 8: the top bit must be zero).
const MAX_TTL: u32 = 0x7fff_ffff;

/// `$INCLUDE` nesting limit: guards against include cycles.
const MAX_INCLUDE_DEPTH: usize = 8;

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

/// An RRset as its records come in, which `build` boxes for the zone.
struct Growing {
    rtype: u16,
    ttl: u32,
    rdatas: Vec<Rdata>,
}

impl Growing {
    fn into_rrset(self) -> RRset {
        RRset { rtype: self.rtype, ttl: self.ttl, rdatas: self.rdatas.into_boxed_slice() }
    }

    fn build(&self) -> RRset {
        RRset { rtype: self.rtype, ttl: self.ttl, rdatas: self.rdatas.as_slice().into() }
    }
}

/// A record as scanned, remembered with where it came from.
struct Scanned {
    owner: Name,
    rtype: u16,
    class: Class,
    ttl: u32,
    rdata: Vec<u8>,
    file: Arc<PathBuf>,
    line: usize,
}

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

/// Loads and validates one zone file. `Ok` carries the zone and its warnings; `Err` every
/// problem (errors and warnings) when at least one is an error.
pub fn load_zone_file(path: &Path) -> Result<(Zone, Vec<Diagnostic>), LoadError> {
    let file = Arc::new(path.to_path_buf());
    let fail = |message: String| LoadError {
        diagnostics: vec![Diagnostic { file: file.clone(), line: 1, severity: Severity::Error, message }],
    };
    let real = path.canonicalize().map_err(|err| fail(format!("cannot read zone file: {err}")))?;
    let root_dir = real.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut loader = Loader { root_dir, records: Vec::new(), diags: Vec::new() };
    let default_origin = origin_from_file_name(path);
    // Scan with the real path for includes, but report against the path the operator gave.
    loader.scan(&real, default_origin, 0, (&file, 1));
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
    let Loader { records, mut diags, .. } = loader;
    if diags.iter().any(|d| d.severity == Severity::Error) {
        // In file order: the rewrite's and `domain`'s errors come in two passes.
        diags.sort_by(|a, b| (a.file.as_ref(), a.line).cmp(&(b.file.as_ref(), b.line)));
        return Err(LoadError { diagnostics: diags });
    }
    let zone = build_zone(file.clone(), records, &mut diags);
    diags.sort_by(|a, b| (a.file.as_ref(), a.line).cmp(&(b.file.as_ref(), b.line)));
    match zone {
        Some(zone) if !diags.iter().any(|d| d.severity == Severity::Error) => Ok((zone, diags)),
        _ => Err(LoadError { diagnostics: diags }),
    }
}

fn build_zone(file: Arc<PathBuf>, records: Vec<Scanned>, diags: &mut Vec<Diagnostic>) -> Option<Zone> {
    let mut push = |r: &Scanned, severity, message: String| {
        diags.push(Diagnostic { file: r.file.clone(), line: r.line, severity, message })
    };
    // The zone's origin is the owner of its SOA record.
    let soas: Vec<&Scanned> = records.iter().filter(|r| r.rtype == rtype::SOA).collect();
    let Some(first_soa) = soas.first() else {
        diags.push(Diagnostic {
            file,
            line: 1,
            severity: Severity::Error,
            message: "missing SOA record: a zone needs exactly one, at its apex".into(),
        });
        return None;
    };
    let origin = first_soa.owner.clone();
    for extra in soas.iter().skip(1) {
        push(extra, Severity::Error, format!("second SOA record (the zone's SOA is at {origin})"));
    }

    // Group into RRsets at their nodes, straight from the records. RRSIGs are grouped by the
    // type they cover: each such set has its own TTL. The first record of the RRsets the node
    // rules below check is remembered for their diagnostics.
    const CHECKED: [u16; 4] = [rtype::CNAME, rtype::DNAME, rtype::SOA, rtype::NS];
    type Growing2 = (Vec<Growing>, Vec<Growing>);
    let mut growing: HashMap<Name, Growing2, foldhash::fast::RandomState> = HashMap::default();
    let mut firsts: Vec<(Name, u16, &Scanned)> = Vec::new();
    for r in &records {
        if r.class != Class::IN {
            push(r, Severity::Error, format!("class {} is not served (only IN)", r.class));
            continue;
        }
        if r.ttl > MAX_TTL {
            push(
                r,
                Severity::Error,
                format!("TTL {} exceeds 2^31-1; resolvers treat it as 0 (RFC 2181 section 8)", r.ttl),
            );
            continue;
        }
        if !r.owner.is_subdomain_of(&origin) {
            push(r, Severity::Error, format!("{} is outside the zone {origin}", r.owner));
            continue;
        }
        let node = match growing.get_mut(&r.owner) {
            Some(node) => node,
            None => growing.entry(r.owner.clone()).or_default(),
        };
        let (sets, key) = if r.rtype == rtype::RRSIG {
            (&mut node.1, covered_type(r.rtype, &r.rdata))
        } else {
            (&mut node.0, r.rtype)
        };
        let set = match sets.iter().position(|s| s.rtype == key) {
            Some(i) => &mut sets[i],
            None => {
                if CHECKED.contains(&r.rtype) {
                    firsts.push((r.owner.clone(), r.rtype, r));
                }
                sets.push(Growing { rtype: key, ttl: r.ttl, rdatas: Vec::new() });
                sets.last_mut().expect("just pushed")
            }
        };
        let rdata = Rdata::new(r.rtype, r.rdata.clone());
        if set.rdatas.contains(&rdata) {
            push(r, Severity::Warning, format!("duplicate {} record at {} ignored", type_name(r.rtype), r.owner));
            continue;
        }
        if set.ttl != r.ttl {
            push(
                r,
                Severity::Warning,
                format!(
                    "TTL {} differs from {} of the same {} RRset at {}; serving the lower (RFC 2181 section 5.2)",
                    r.ttl,
                    set.ttl,
                    type_name(r.rtype),
                    r.owner
                ),
            );
            set.ttl = set.ttl.min(r.ttl);
        }
        set.rdatas.push(rdata);
    }
    // The nodes: RRsets by type, signatures by the type they cover, each list exactly as long
    // as it needs to be.
    let mut nodes: HashMap<Name, Node, foldhash::fast::RandomState> = HashMap::default();
    nodes.reserve(growing.len());
    for (owner, (mut rrsets, mut sigs)) in growing {
        rrsets.sort_by_key(|s| s.rtype);
        sigs.sort_by_key(|s| s.rtype);
        let node = Node {
            rrsets: rrsets.into_iter().map(Growing::into_rrset).collect(),
            sigs: sigs.into_iter().map(Growing::into_rrset).collect(),
        };
        nodes.insert(owner, node);
    }
    // Node-level rules, in the order of the records they are about.
    firsts.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    for (owner, rt, first) in &firsts {
        let node = &nodes[owner];
        let set = node.get(*rt).expect("grouped above");
        match *rt {
            rtype::CNAME => {
                if *owner == origin {
                    push(
                        first,
                        Severity::Error,
                        format!(
                            "CNAME at the zone apex {origin} is not allowed (RFC 1912 section 2.4); use ALIAS flattening to point the apex elsewhere"
                        ),
                    );
                } else if node.rrsets.iter().any(|r| !matches!(r.rtype, rtype::CNAME | rtype::RRSIG | rtype::NSEC)) {
                    push(
                        first,
                        Severity::Error,
                        format!("CNAME at {owner} beside other data (RFC 1034 section 3.6.2)"),
                    );
                }
                if set.rdatas.len() > 1 {
                    push(first, Severity::Error, format!("more than one CNAME at {owner}"));
                }
            }
            rtype::DNAME if *owner == origin => {
                push(
                    first,
                    Severity::Error,
                    format!(
                        "DNAME at the zone apex {origin} is not supported; use ALIAS flattening or a DNAME in the parent"
                    ),
                );
            }
            rtype::SOA if *owner != origin => {
                push(first, Severity::Error, format!("SOA at {owner}, which is not the zone apex {origin}"));
            }
            _ => {}
        }
    }
    let apex = nodes.get(&origin);
    if apex.and_then(|n| n.get(rtype::NS)).is_none() {
        push(first_soa, Severity::Error, format!("missing NS records at the zone apex {origin}"));
    }
    // In-bailiwick NS targets need addresses in this zone (glue for delegations).
    for (owner, rt, first) in &firsts {
        if *rt != rtype::NS {
            continue;
        }
        let set = nodes[owner].get(rtype::NS).expect("grouped above");
        for rdata in &set.rdatas {
            let Some(target) = rdata.target(rtype::NS) else { continue };
            if !target.is_subdomain_of(&origin) {
                continue;
            }
            let has_address =
                nodes.get(&target).is_some_and(|n| n.get(rtype::A).is_some() || n.get(rtype::AAAA).is_some());
            if !has_address {
                push(
                    first,
                    Severity::Error,
                    format!("NS {target} of {owner} is inside the zone but has no A or AAAA record (missing glue)"),
                );
            }
        }
    }

    // NSEC3 owners are hashes, not names of the zone's tree (RFC 5155 section 7.2.8): a query for
    // one gets NXDOMAIN. Keep them apart.
    // Not the apex, though: it is no hash, and moving it out left a zone without its SOA node
    // (a panic found by fuzz/xfr: an AXFR or a zone file with an NSEC3 record at the apex).
    if nodes.get(&origin).is_some_and(|n| n.get(rtype::NSEC3).is_some()) {
        push(
            first_soa,
            Severity::Error,
            format!("NSEC3 record at the apex {origin}: NSEC3 owners are hashed names below it (RFC 5155 section 3)"),
        );
    }
    let hashed: Vec<Name> =
        nodes.iter().filter(|(o, n)| n.get(rtype::NSEC3).is_some() && **o != origin).map(|(o, _)| o.clone()).collect();
    let nsec3_nodes: std::collections::HashMap<Name, Node> =
        hashed.iter().filter_map(|o| nodes.remove_entry(o)).collect();
    let nsec3 = match nodes.get(&origin).and_then(|n| n.get(rtype::NSEC3PARAM)) {
        Some(param) => {
            let chain = super::nsec3::Chain::new(&param.rdatas[0].wire, nsec3_nodes);
            if chain.is_none() {
                push(
                    first_soa,
                    Severity::Error,
                    format!(
                        "NSEC3PARAM at {origin}: malformed or more than {} iterations",
                        super::nsec3::MAX_ITERATIONS
                    ),
                );
            }
            chain
        }
        None => None,
    };
    let mut nsec_chain: Vec<(Vec<Vec<u8>>, Name)> = nodes
        .iter()
        .filter(|(_, n)| n.get(rtype::NSEC).is_some())
        .map(|(o, _)| (super::canonical_key(o), o.clone()))
        .collect();
    nsec_chain.sort();
    // Empty non-terminals: every ancestor of a name, up to the origin, exists (RFC 4592 section 2.2.2).
    let owners: Vec<Name> = nodes.keys().cloned().collect();
    for owner in owners {
        let mut cur = owner;
        while cur != origin {
            let Some(parent) = cur.parent() else { break };
            nodes.entry(parent.clone()).or_default();
            cur = parent;
        }
    }
    // No apex node when the first SOA itself was refused above (its class or TTL; already
    // reported): fuzz/xfr found the lookup panicking on such a transfer.
    let soa_wire = &nodes.get(&origin)?.get(rtype::SOA)?.rdatas[0].wire;
    let mname_len = crate::name::wire_name_len(soa_wire)?;
    let rname_len = crate::name::wire_name_len(&soa_wire[mname_len..])?;
    let serial_at = mname_len + rname_len;
    let serial = u32::from_be_bytes(soa_wire.get(serial_at..serial_at + 4)?.try_into().ok()?);
    // Signed means served with signatures: a DNSKEY at the apex and an RRSIG over the SOA, as
    // Knot (zone_contents_is_signed) and NSD (is_secure) decide. A zone that only holds DNSKEY or DS
    // records is unsigned: its referrals carry no DS and its answers no proofs.
    let apex = &nodes[&origin];
    let signed = apex.get(rtype::DNSKEY).is_some() && apex.sigs_for(rtype::SOA).is_some();
    if apex.get(rtype::DNSKEY).is_some() && !signed {
        diags.push(Diagnostic {
            file: first_soa.file.clone(),
            line: first_soa.line,
            severity: Severity::Warning,
            message: format!(
                "{origin} has DNSKEY records but no RRSIG over its SOA: served unsigned (no DS in referrals, no proofs)"
            ),
        });
    }
    // The zone keeps a copy made in one go, now that the parse is done: the nodes as built sit
    // among the blocks the parse and the grouping freed, which would keep pages the zone only
    // partly uses for as long as it is served (zone RSS at a million names: 380 B a name as
    // built, 250 copied; the copy takes about 0.5 s there).
    let nodes: super::NodeMap = nodes.iter().map(|(name, node)| (name.clone(), node.clone())).collect();
    let mut types: Vec<u16> = nodes.values().flat_map(|n| n.rrsets.iter().map(|s| s.rtype)).collect();
    types.sort_unstable();
    types.dedup();
    Some(Zone { origin, file, nodes, serial, signed, nsec_chain, nsec3, types })
}

/// Parses zone-file text (no `$INCLUDE`) relative to `origin` into wire records: the API feeds
/// its input through here so it obeys exactly the zone-file rules.
pub fn parse_records(text: &str, origin: &Name) -> Result<Vec<super::Record>, String> {
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
                out.push(super::Record { owner, rtype: record.rtype().to_int(), ttl: record.ttl().as_secs(), rdata });
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
    match build_zone(file, scanned, &mut diags) {
        Some(zone) if !diags.iter().any(|d| d.severity == Severity::Error) => Ok(zone),
        _ => Err(diags.into_iter().filter(|d| d.severity == Severity::Error).collect()),
    }
}

/// `zone` with the RRsets `changes` (owner, type, its new records) put in and its SOA serial
/// set to `serial`: what `zone_from_records` builds from the zone's records as served with
/// those RRsets replaced, made by copying only the shards of the names it touches. `None` when
/// the change needs the whole rebuild (which also reports any error precisely): a signed zone,
/// an empty RRset (a deletion), a type with zone-wide rules (SOA, NS, DNAME, DNSSEC types), a
/// TTL out of range, or a CNAME that would break its rules.
pub fn zone_with_rrsets(
    source: &str,
    zone: &Zone,
    changes: &[(Name, u16, Vec<super::Record>)],
    serial: u32,
) -> Option<Zone> {
    const ZONE_WIDE: [u16; 9] = [
        rtype::SOA,
        rtype::NS,
        rtype::DNAME,
        rtype::DS,
        rtype::RRSIG,
        rtype::NSEC,
        rtype::DNSKEY,
        rtype::NSEC3,
        rtype::NSEC3PARAM,
    ];
    if zone.signed || zone.nsec3.is_some() || !zone.nsec_chain.is_empty() {
        return None;
    }
    let origin = &zone.origin;
    let mut new = zone.clone();
    new.file = Arc::new(PathBuf::from(source));
    for (owner, rt, records) in changes {
        let first = records.first()?;
        if ZONE_WIDE.contains(rt) || !owner.is_subdomain_of(origin) {
            return None;
        }
        // As build_zone groups them: duplicates dropped, the lowest TTL served.
        let mut set = Growing { rtype: *rt, ttl: first.ttl, rdatas: Vec::new() };
        for r in records {
            if r.owner != *owner || r.rtype != *rt || r.ttl > MAX_TTL {
                return None;
            }
            let rdata = Rdata::new(*rt, r.rdata.clone());
            if set.rdatas.contains(&rdata) {
                continue;
            }
            set.ttl = set.ttl.min(r.ttl);
            set.rdatas.push(rdata);
        }
        let existed = new.nodes.contains_key(owner);
        let mut node = new.nodes.get(owner).cloned().unwrap_or_default();
        let mut rrsets = std::mem::take(&mut node.rrsets).into_vec();
        match rrsets.binary_search_by_key(rt, |s| s.rtype) {
            Ok(i) => rrsets[i] = set.build(),
            Err(i) => rrsets.insert(i, set.build()),
        }
        node.rrsets = rrsets.into();
        if let Some(cname) = node.get(rtype::CNAME) {
            let beside = node.rrsets.iter().any(|r| !matches!(r.rtype, rtype::CNAME | rtype::RRSIG | rtype::NSEC));
            if owner == origin || beside || cname.rdatas.len() > 1 {
                return None;
            }
        }
        new.nodes.insert(owner.clone(), node);
        // Empty non-terminals up to the origin, as build_zone adds them.
        if !existed {
            let mut cur = owner.clone();
            while cur != *origin {
                let parent = cur.parent()?;
                if !new.nodes.contains_key(&parent) {
                    new.nodes.insert(parent.clone(), Node::default());
                }
                cur = parent;
            }
        }
        if let Err(at) = new.types.binary_search(rt) {
            new.types.insert(at, *rt);
        }
    }
    let apex = new.nodes.get_mut(origin)?;
    let soa = apex.rrsets.iter_mut().find(|s| s.rtype == rtype::SOA)?;
    let wire = super::soa_with_serial(&soa.rdatas.first()?.wire, serial);
    soa.rdatas[0] = Rdata::new(rtype::SOA, wire);
    new.serial = serial;
    Some(new)
}

/// The type an RRSIG covers (its first two RDATA bytes); 0 for every other type.
fn covered_type(rt: u16, rdata: &[u8]) -> u16 {
    match (rt, rdata) {
        (rtype::RRSIG, [hi, lo, ..]) => u16::from_be_bytes([*hi, *lo]),
        _ => 0,
    }
}

/// Mnemonic of a record type, for messages.
pub fn type_name(rt: u16) -> String {
    domain::base::iana::Rtype::from_int(rt).to_string()
}

#[cfg(test)]
mod incremental_tests {
    use super::*;
    use crate::zone::Record;

    fn full(zone: &Zone, changes: &[(Name, u16, Vec<Record>)], serial: u32) -> Zone {
        let mut records = zone.records_as_served();
        for (owner, rt, new) in changes {
            records.retain(|r| !(r.owner == *owner && r.rtype == *rt));
            records.extend(new.iter().cloned());
        }
        let soa = zone.soa_record();
        records.push(Record { rdata: crate::zone::soa_with_serial(&soa.rdata, serial), ..soa });
        zone_from_records("API change", records).expect("valid change")
    }

    #[test]
    fn narrow_rebuild_equals_the_whole_rebuild() {
        let origin = Name::from_text("inc.test").unwrap();
        let text = "@ 300 IN SOA ns host 7 2 3 4 60\n@ 300 IN NS ns\nns 300 IN A 192.0.2.1\n\
                    www 60 IN A 192.0.2.9\nwww 60 IN A 192.0.2.3\nalias 60 IN CNAME www\nmail 60 IN MX 10 ns\n";
        let zone = zone_from_records("API change", parse_records(text, &origin).unwrap()).unwrap();
        let rr = |owner: &str, line: &str| -> (Name, u16, Vec<Record>) {
            let recs = parse_records(line, &origin).unwrap();
            (Name::from_text(owner).unwrap(), recs[0].rtype, recs)
        };
        let cases = vec![
            vec![rr("www.inc.test", "www 60 IN A 192.0.2.7\nwww 30 IN A 192.0.2.8\nwww 60 IN A 192.0.2.7\n")],
            vec![rr("a.b.new.inc.test", "a.b.new 120 IN TXT \"fresh\"\n")],
            vec![rr("mail.inc.test", "mail 60 IN AAAA 2001:db8::1\n"), rr("www.inc.test", "www 60 IN A 192.0.2.1\n")],
            vec![rr("alias.inc.test", "alias 60 IN CNAME mail\n")],
        ];
        for changes in cases {
            let narrow = zone_with_rrsets("API change", &zone, &changes, 8).expect("the narrow path applies");
            let whole = full(&zone, &changes, 8);
            assert_eq!(narrow.nodes, whole.nodes, "{changes:?}");
            assert_eq!(
                (narrow.types.clone(), narrow.serial, narrow.soa_record()),
                (whole.types.clone(), whole.serial, whole.soa_record())
            );
        }
        // What the narrow path leaves to the whole rebuild.
        assert!(
            zone_with_rrsets("x", &zone, &[rr("alias.inc.test", "alias 60 IN TXT \"beside\"\n")], 8).is_none(),
            "CNAME and other data"
        );
        assert!(zone_with_rrsets("x", &zone, &[rr("sub.inc.test", "sub 60 IN NS ns\n")], 8).is_none(), "a delegation");
        assert!(
            zone_with_rrsets("x", &zone, &[(Name::from_text("www.inc.test").unwrap(), 1, vec![])], 8).is_none(),
            "a deletion"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn tempdir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("dnsxdp-load-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    const GOOD: &str = "$ORIGIN example.org.\n$TTL 300\n@ IN SOA ns1 host 1 2 3 4 60\n  IN NS ns1\nns1 IN A 192.0.2.1\n\n; comment\nwww IN A 192.0.2.2\n";

    /// fuzz/zone_file found that domain's scanner panics (index out of bounds in
    /// `convert_charstr`) on this file; it must be an error, from a file and from the API.
    const DOMAIN_PANICS: &[u8] =
        b"@ 60 IN  A 191.0.2.1\nx 60 TYPE56234 \\#1 3\xff2 abcdef\nd 60 DNAME example.net.\n*.w 60 TXT(\"a\" \"b\"\n";

    #[test]
    fn a_panic_in_the_zone_file_parser_is_an_error() {
        let dir = tempdir("panic");
        let path = dir.join("example.org.zone");
        std::fs::write(&path, DOMAIN_PANICS).unwrap();
        let err = load_zone_file(&path).expect_err("a broken file");
        assert!(err.diagnostics.iter().any(|d| d.severity == Severity::Error), "{:?}", err.diagnostics);
        let text = String::from_utf8_lossy(DOMAIN_PANICS).into_owned();
        assert!(parse_records(&text, &Name::from_text("example.org").unwrap()).is_err());
    }

    /// fuzz/xfr: an NSEC3 record at the apex moved the apex out of the tree, and building the zone
    /// panicked looking up its SOA. A transfer or a zone file may carry one; it is an error.
    #[test]
    fn nsec3_at_the_apex_is_an_error() {
        let origin = Name::from_text("example.org").unwrap();
        let text = "@ 300 IN SOA ns1 host 1 2 3 4 60\n@ 300 IN NS ns1\nns1 300 IN A 192.0.2.1\n\
                    @ 300 IN NSEC3 1 0 0 - 2i3fn7j8uobt1mv604aatrac16iaspid A\n";
        let errors = zone_from_records("test", parse_records(text, &origin).unwrap()).expect_err("NSEC3 at the apex");
        assert!(errors.iter().any(|d| d.message.contains("NSEC3 record at the apex")), "{errors:?}");
    }

    /// fuzz/xfr: a first SOA of another class is refused, which left no apex node, and building
    /// the zone panicked looking it up.
    #[test]
    fn a_refused_first_soa_is_an_error() {
        let origin = Name::from_text("example.org").unwrap();
        let text = "@ 300 IN SOA ns1 host 1 2 3 4 60\n@ 300 IN NS ns1\nns1 300 IN A 192.0.2.1\n";
        let mut records = parse_records(text, &origin).unwrap();
        let scanned = |r: &super::super::Record, class| Scanned {
            owner: r.owner.clone(),
            rtype: r.rtype,
            class,
            ttl: r.ttl,
            rdata: r.rdata.clone(),
            file: Arc::new(PathBuf::from("test")),
            line: 1,
        };
        let mut all = vec![scanned(&records[0], Class::CH)];
        all.extend(records.drain(1..).map(|r| scanned(&r, Class::IN)));
        let mut diags = Vec::new();
        assert!(build_zone(Arc::new(PathBuf::from("test")), all, &mut diags).is_none());
        assert!(diags.iter().any(|d| d.message.contains("class CH is not served")), "{diags:?}");
    }

    #[test]
    fn loads_a_good_zone_with_ents() {
        let dir = tempdir("good");
        let path = write(&dir, "example.org.zone", &GOOD.replace("www", "a.b.www"));
        let (zone, warnings) = load_zone_file(&path).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(zone.origin.to_string(), "example.org.");
        assert_eq!(zone.serial, 1);
        assert_eq!(zone.negative_ttl(), 60);
        assert!(zone.nodes[&Name::from_text("b.www.example.org").unwrap()].rrsets.is_empty());
    }

    #[test]
    fn syntax_error_names_file_and_line() {
        let dir = tempdir("syntax");
        let path = write(&dir, "z.zone", &GOOD.replace("192.0.2.2", "192.0.2.300"));
        // Line 8 holds the bad address as its last token.
        let err = load_zone_file(&path).unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with(&format!("{}:8:", path.display())), "{text}");
    }

    #[test]
    fn semantic_errors_reported_together_with_lines() {
        let dir = tempdir("semantic");
        let text = "$ORIGIN example.org.\n@ 300 IN SOA ns1 host 1 2 3 4 60\n@ 300 IN NS ns1\nns1 300 IN A 192.0.2.1\nwww 300 IN CNAME ns1\nwww 300 IN A 192.0.2.9\nother.test. 300 IN A 192.0.2.3\n";
        let path = write(&dir, "z.zone", text);
        let err = load_zone_file(&path).unwrap_err();
        let lines: Vec<String> = err.diagnostics.iter().map(|d| format!("{}:{}", d.line, d.message)).collect();
        assert!(lines.iter().any(|l| l.starts_with("5:CNAME at www.example.org. beside other data")), "{lines:?}");
        assert!(lines.iter().any(|l| l.starts_with("7:other.test. is outside")), "{lines:?}");
    }

    #[test]
    fn ttl_over_2_31_is_an_error() {
        let dir = tempdir("ttl");
        let path = write(&dir, "z.zone", &GOOD.replace("www IN A", "www 2147483648 IN A"));
        let text = load_zone_file(&path).unwrap_err().to_string();
        assert!(text.contains(":8: TTL 2147483648 exceeds 2^31-1"), "{text}");
    }

    #[test]
    fn missing_glue_and_include_confinement() {
        let dir = tempdir("glue");
        let sub = dir.join("zones");
        std::fs::create_dir_all(&sub).unwrap();
        write(&dir, "outside.inc", "x IN A 192.0.2.1\n");
        let path = write(
            &sub,
            "z.zone",
            "$ORIGIN example.org.\n@ 300 IN SOA ns1 host 1 2 3 4 60\n@ 300 IN NS ns1\n$INCLUDE ../outside.inc\n",
        );
        let text = load_zone_file(&path).unwrap_err().to_string();
        assert!(text.contains(":4: $INCLUDE ../outside.inc: outside the zone's folder"), "{text}");
        let path = write(&sub, "y.zone", "$ORIGIN example.org.\n@ 300 IN SOA ns1 host 1 2 3 4 60\n@ 300 IN NS ns1\n");
        let text = load_zone_file(&path).unwrap_err().to_string();
        assert!(
            text.contains(
                ":3: NS ns1.example.org. of example.org. is inside the zone but has no A or AAAA record (missing glue)"
            ),
            "{text}"
        );
    }

    #[test]
    fn include_inside_folder_is_read() {
        let dir = tempdir("inc");
        write(&dir, "hosts.inc", "www IN A 192.0.2.7\n");
        let path = write(&dir, "z.zone", &format!("{GOOD}$INCLUDE hosts.inc\n").replace("www IN A 192.0.2.2\n", ""));
        let (zone, _) = load_zone_file(&path).unwrap();
        assert!(zone.nodes.contains_key(&Name::from_text("www.example.org").unwrap()));
    }
}
