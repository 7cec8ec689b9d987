//! Presentation formats `domain` 0.12 cannot read, rewritten into RFC 3597 generic form
//! (`TYPEnnn \# len hex`) before it parses a zone file or API input.
//!
//! `domain`'s `Zonefile` knows the text format of only some types and refuses a whole zone over a
//! single LOC record; Knot and NSD read many more. Each entry of a type in `PARSERS` is parsed
//! here into wire RDATA and written back in generic form on as many lines as it had, so `domain`
//! sees the same file shape and its diagnostics keep their line numbers. A type nobody here reads
//! fails with the line and what to write instead, not with `domain`'s "concrete data".

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::ops::Range;
use std::str::FromStr;

use base64::Engine as _;
use dns_xdp_common::{MAX_LABEL_LEN, MAX_QNAME_LEN};
use domain::base::iana::{Class, Rtype};

mod rdata;
#[cfg(test)]
mod tests;

use rdata::*;

/// Longest RDATA a record can carry (its RDLENGTH is 16 bits).
const MAX_RDATA_LEN: usize = 0xffff;

/// Types whose text format `domain` 0.12.3 reads into the right wire data: passed through as they
/// are (`domain_reads_its_types` below pins each). SVCB and HTTPS are not among them: `domain`
/// refuses SvcParamKeys with a `9` or a `z` in them (`key9`, `key65279`).
const DOMAIN_READS: &[u16] = &[
    1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 13, 14, 15, 16, 17, 28, 33, 35, 39, 43, 44, 45, 46, 47, 48, 50, 51, 52, 59, 60, 61,
    63, 257,
];

/// A parser of one type's RDATA fields into wire format.
type Parser = fn(&mut Fields<'_, '_>, &mut Vec<u8>) -> Result<(), String>;

/// The types read here: code, mnemonic, parser.
const PARSERS: &[(u16, &str, Parser)] = &[
    (18, "AFSDB", afsdb),
    (21, "RT", preference_and_name),
    (25, "KEY", key),
    (26, "PX", px),
    (29, "LOC", loc),
    (36, "KX", preference_and_name),
    (37, "CERT", cert),
    (42, "APL", apl),
    (49, "DHCID", dhcid),
    (53, "SMIMEA", smimea),
    (55, "HIP", hip),
    (62, "CSYNC", csync),
    (64, "SVCB", svcb),
    (65, "HTTPS", svcb),
    (99, "SPF", spf),
    (104, "NID", nid_l64),
    (105, "L32", l32),
    (106, "L64", nid_l64),
    (107, "LP", preference_and_name),
    (108, "EUI48", eui48),
    (109, "EUI64", eui64),
    (256, "URI", uri),
];

/// What is wrong with one zone-file entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PresentationError {
    #[error("unknown record type {mnemonic}; write it in RFC 3597 generic form: {generic} \\# len hex")]
    UnknownType {
        /// The type as written.
        mnemonic: String,
        /// `TYPEnnn` with the type's number when it has one.
        generic: String,
    },
    #[error("{rtype}: {what}")]
    Rdata { rtype: &'static str, what: String },
}

/// A problem with the entry that starts on `line` (1-based) of the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryError {
    pub line: usize,
    pub error: PresentationError,
}

/// A zone file's text as `domain` is to read it, and the entries that could not be rewritten.
/// Each of those is replaced by an empty record of its owner, so later entries keep their
/// meaning; the caller must not serve the result when `errors` is not empty.
pub struct Rewritten<'a> {
    pub text: Cow<'a, [u8]>,
    pub errors: Vec<EntryError>,
}

/// Rewrites every entry of a type in `PARSERS` into generic form; `origin` (uncompressed wire)
/// makes relative names absolute until a `$ORIGIN` changes it.
pub fn rewrite<'a>(text: &'a [u8], origin: Option<&[u8]>) -> Rewritten<'a> {
    let mut out: Option<Vec<u8>> = None;
    let mut errors = Vec::new();
    let mut origin = origin.map(<[u8]>::to_vec);
    let mut lexer = Lexer { text, pos: 0, line: 1 };
    let mut tokens = Vec::new();
    while let Some(entry) = lexer.entry(&mut tokens) {
        let replacement = match classify(&entry, &tokens, origin.as_deref()) {
            Action::Keep => None,
            Action::Origin(new) => {
                origin = Some(new);
                None
            }
            Action::Generic { prefix_len, rtype, wire } => Some(generic(&entry, &tokens[..prefix_len], rtype, &wire)),
            Action::Fail { prefix_len, error } => {
                errors.push(EntryError { line: entry.line, error });
                Some(generic(&entry, &tokens[..prefix_len], 0, &[]))
            }
        };
        match (replacement, &mut out) {
            (Some(new), Some(out)) => out.extend_from_slice(&new),
            (Some(new), None) => {
                let mut copy = text[..entry.span.start].to_vec();
                copy.extend_from_slice(&new);
                out = Some(copy);
            }
            (None, Some(out)) => out.extend_from_slice(&text[entry.span.clone()]),
            (None, None) => {}
        }
    }
    Rewritten { text: out.map_or(Cow::Borrowed(text), Cow::Owned), errors }
}

/// One token of an entry: its bytes as written (escapes kept; a quoted one without its quotes).
#[derive(Debug)]
struct Token<'a> {
    raw: &'a [u8],
    quoted: bool,
    /// Written right after the previous token with no blank between (`alpn="h2,h3"`).
    joined: bool,
}

/// One entry (RFC 1035 section 5.1): a record or directive, with what ends its last line.
struct Entry {
    /// Its bytes, from the start of its first line through the line break that ends it.
    span: Range<usize>,
    line: usize,
    /// Line breaks inside it (in parentheses or quotes), which the rewrite keeps.
    breaks: usize,
    /// Starts with a blank: the owner is the previous entry's.
    blank_owner: bool,
    /// It ends with a line break, not at the end of the text.
    ends_line: bool,
}

/// Splits zone-file text into entries the way `domain` does: parentheses join lines, `;`
/// comments run to the end of the line, quotes and backslash escape.
struct Lexer<'a> {
    text: &'a [u8],
    pos: usize,
    line: usize,
}

impl<'a> Lexer<'a> {
    /// The next entry (possibly without tokens: a blank or comment line), its tokens in `tokens`.
    fn entry(&mut self, tokens: &mut Vec<Token<'a>>) -> Option<Entry> {
        tokens.clear();
        let text = self.text;
        if self.pos >= text.len() {
            return None;
        }
        let start = self.pos;
        let line = self.line;
        let mut breaks = 0;
        let mut depth = 0usize;
        let mut joined = false;
        let mut ends_line = false;
        while let Some(&b) = text.get(self.pos) {
            match b {
                b'\n' => {
                    self.pos += 1;
                    self.line += 1;
                    if depth == 0 {
                        ends_line = true;
                        break;
                    }
                    breaks += 1;
                    joined = false;
                }
                b' ' | b'\t' | b'\r' => {
                    self.pos += 1;
                    joined = false;
                }
                b';' => {
                    while text.get(self.pos).is_some_and(|&c| c != b'\n') {
                        self.pos += 1;
                    }
                }
                b'(' | b')' => {
                    depth = if b == b'(' { depth + 1 } else { depth.saturating_sub(1) };
                    self.pos += 1;
                    joined = false;
                }
                b'"' => {
                    let from = self.pos + 1;
                    let mut at = from;
                    while let Some(&c) = text.get(at) {
                        match c {
                            b'"' => break,
                            b'\\' => at += 1,
                            _ => {}
                        }
                        at += 1;
                    }
                    let end = at.min(text.len());
                    let newlines = text[from..end].iter().filter(|&&c| c == b'\n').count();
                    breaks += newlines;
                    self.line += newlines;
                    tokens.push(Token { raw: &text[from..end], quoted: true, joined });
                    self.pos = (end + 1).min(text.len());
                    joined = true;
                }
                _ => {
                    let from = self.pos;
                    while let Some(&c) = text.get(self.pos) {
                        match c {
                            b' ' | b'\t' | b'\r' | b'\n' | b';' | b'(' | b')' | b'"' => break,
                            b'\\' => {
                                self.pos += 1;
                                if text.get(self.pos) == Some(&b'\n') {
                                    self.line += 1;
                                    breaks += 1;
                                }
                            }
                            _ => {}
                        }
                        self.pos += 1;
                    }
                    self.pos = self.pos.min(text.len());
                    tokens.push(Token { raw: &text[from..self.pos], quoted: false, joined });
                    joined = true;
                }
            }
        }
        let blank_owner = matches!(text[start], b' ' | b'\t');
        Some(Entry { span: start..self.pos, line, breaks, blank_owner, ends_line })
    }
}

/// What to do with one entry.
enum Action {
    Keep,
    Origin(Vec<u8>),
    /// Replace it with its first `prefix_len` tokens (owner, TTL, class) and `TYPEnnn \# ...`.
    Generic {
        prefix_len: usize,
        rtype: u16,
        wire: Vec<u8>,
    },
    Fail {
        prefix_len: usize,
        error: PresentationError,
    },
}

/// A token as `domain` classifies it in the TTL, class and type positions.
enum Word {
    Ttl,
    Class,
    Type(u16),
    Other,
}

fn word(token: &Token<'_>) -> Word {
    let Ok(text) = std::str::from_utf8(token.raw) else { return Word::Other };
    // `domain` tries the type before the class; no mnemonic is both, and the class goes first
    // here because it is one of five names, the type one of ninety (every record asks this).
    if token.quoted {
        Word::Other
    } else if u32::from_str(text).is_ok() {
        Word::Ttl
    } else if Class::from_str(text).is_ok() {
        Word::Class
    } else if let Ok(rtype) = Rtype::from_str(text) {
        Word::Type(rtype.to_int())
    } else {
        Word::Other
    }
}

/// Where the type is among `tokens` from `at`, as `domain`'s `scan_ctr` finds it: `[TTL]
/// [class] type` or `[class] [TTL] type`. `Err` carries the index of the token that is none of
/// them, if any.
fn find_type(tokens: &[Token<'_>], at: usize) -> Result<(u16, usize), Option<usize>> {
    let get = |i: usize| tokens.get(i).map(word).ok_or(None);
    match get(at)? {
        Word::Type(t) => Ok((t, at)),
        Word::Ttl => match get(at + 1)? {
            Word::Type(t) => Ok((t, at + 1)),
            Word::Class => match get(at + 2)? {
                Word::Type(t) => Ok((t, at + 2)),
                _ => Err(Some(at + 2)),
            },
            _ => Err(Some(at + 1)),
        },
        Word::Class => match get(at + 1)? {
            Word::Type(t) => Ok((t, at + 1)),
            Word::Ttl => match get(at + 2)? {
                Word::Type(t) => Ok((t, at + 2)),
                _ => Err(Some(at + 2)),
            },
            _ => Err(Some(at + 1)),
        },
        Word::Other => Err(Some(at)),
    }
}

fn classify(entry: &Entry, tokens: &[Token<'_>], origin: Option<&[u8]>) -> Action {
    let Some(first) = tokens.first() else { return Action::Keep };
    let mut at = 0;
    if !entry.blank_owner {
        if !first.quoted && first.raw.starts_with(b"$") {
            // `domain` reads the directives; only the origin matters for names in RDATA.
            if first.raw.eq_ignore_ascii_case(b"$ORIGIN")
                && let Some(Ok(new)) = tokens.get(1).map(|t| name_wire(t.raw, origin))
            {
                return Action::Origin(new);
            }
            return Action::Keep;
        }
        at = 1;
    }
    let (rtype, type_at) = match find_type(tokens, at) {
        Ok(found) => found,
        // Something that reads like a type mnemonic (not a mistyped TTL or address): say what
        // to do about it. Anything else `domain` reports in its own words.
        Err(Some(bad)) if looks_like_mnemonic(tokens[bad].raw) && !tokens[bad].quoted => {
            let mnemonic = String::from_utf8_lossy(tokens[bad].raw).into_owned();
            let error = PresentationError::UnknownType { mnemonic, generic: "TYPEnnn".into() };
            return Action::Fail { prefix_len: bad, error };
        }
        Err(_) => return Action::Keep,
    };
    let rdata = &tokens[type_at + 1..];
    if rdata.first().is_some_and(|t| !t.quoted && t.raw == b"\\#") {
        return Action::Keep;
    }
    let Some(&(_, mnemonic, parse)) = PARSERS.iter().find(|(code, _, _)| *code == rtype) else {
        if DOMAIN_READS.contains(&rtype) {
            return Action::Keep;
        }
        let mnemonic = Rtype::from_int(rtype).to_string();
        let error = PresentationError::UnknownType { mnemonic, generic: format!("TYPE{rtype}") };
        return Action::Fail { prefix_len: type_at, error };
    };
    let mut fields = Fields { tokens: rdata, at: 0, origin };
    let mut wire = Vec::new();
    let parsed = parse(&mut fields, &mut wire).and_then(|()| fields.finish()).and_then(|()| {
        if wire.len() > MAX_RDATA_LEN {
            Err(format!("RDATA of {} bytes exceeds {MAX_RDATA_LEN}", wire.len()))
        } else {
            Ok(())
        }
    });
    match parsed {
        Ok(()) => Action::Generic { prefix_len: type_at, rtype, wire },
        Err(what) => Action::Fail { prefix_len: type_at, error: PresentationError::Rdata { rtype: mnemonic, what } },
    }
}

fn looks_like_mnemonic(raw: &[u8]) -> bool {
    raw.first().is_some_and(u8::is_ascii_alphabetic) && raw.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-')
}

/// `owner ttl class TYPEnnn \# len hex` on the entry's first line, then its other lines empty.
fn generic(entry: &Entry, prefix: &[Token<'_>], rtype: u16, wire: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + wire.len() * 2);
    if entry.blank_owner {
        out.push(b'\t');
    }
    for token in prefix {
        if token.quoted {
            out.push(b'"');
            out.extend_from_slice(token.raw);
            out.push(b'"');
        } else {
            out.extend_from_slice(token.raw);
        }
        out.push(b' ');
    }
    out.extend_from_slice(format!("TYPE{rtype} \\# {}", wire.len()).as_bytes());
    if !wire.is_empty() {
        out.push(b' ');
        out.extend_from_slice(hex(wire).as_bytes());
    }
    out.extend(std::iter::repeat_n(b'\n', entry.breaks + usize::from(entry.ends_line)));
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The text of `raw` with its escapes resolved (RFC 1035 section 5.1: `\X` is X, `\DDD` the
/// byte of that decimal value).
fn unescape(raw: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] != b'\\' {
            out.push(raw[i]);
            i += 1;
            continue;
        }
        let digits = raw.get(i + 1..i + 4).filter(|d| d.iter().all(u8::is_ascii_digit));
        match (digits, raw.get(i + 1)) {
            (Some(d), _) => {
                let value = d.iter().fold(0u32, |v, c| v * 10 + u32::from(c - b'0'));
                out.push(u8::try_from(value).map_err(|_| format!("escape \\{} is above 255", value))?);
                i += 4;
            }
            (None, Some(c)) if !c.is_ascii_digit() => {
                out.push(*c);
                i += 2;
            }
            _ => return Err(format!("bad escape in {}", String::from_utf8_lossy(raw))),
        }
    }
    Ok(out)
}

/// A domain name as written into uncompressed wire format, case kept: `@` is the origin, a name
/// without a final dot is relative to it.
fn name_wire(raw: &[u8], origin: Option<&[u8]>) -> Result<Vec<u8>, String> {
    let shown = || String::from_utf8_lossy(raw).into_owned();
    if raw == b"@" {
        return origin.map(<[u8]>::to_vec).ok_or_else(|| "@ but no $ORIGIN".to_string());
    }
    if raw == b"." {
        return Ok(vec![0]);
    }
    let mut wire = Vec::with_capacity(raw.len() + 2);
    let mut label = Vec::new();
    let mut absolute = false;
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'.' => {
                if label.is_empty() {
                    return Err(format!("empty label in name {}", shown()));
                }
                push_label(&mut wire, &label, raw)?;
                label.clear();
                absolute = i + 1 == raw.len();
                i += 1;
            }
            b'\\' => {
                // One escape: `\DDD` or `\X`.
                let len = if raw.get(i + 1).is_some_and(u8::is_ascii_digit) { 4 } else { 2 };
                let escape = raw.get(i..i + len).ok_or_else(|| format!("bad escape in name {}", shown()))?;
                label.extend_from_slice(&unescape(escape)?);
                i += len;
            }
            c => {
                label.push(c);
                i += 1;
            }
        }
    }
    if !label.is_empty() {
        push_label(&mut wire, &label, raw)?;
    }
    if absolute {
        wire.push(0);
    } else {
        let origin = origin.ok_or_else(|| format!("relative name {} but no $ORIGIN", shown()))?;
        wire.extend_from_slice(origin);
    }
    if wire.len() > MAX_QNAME_LEN {
        return Err(format!("name {} is longer than {MAX_QNAME_LEN} bytes", shown()));
    }
    Ok(wire)
}

fn push_label(wire: &mut Vec<u8>, label: &[u8], name: &[u8]) -> Result<(), String> {
    if label.len() > MAX_LABEL_LEN {
        return Err(format!("a label of {} is longer than {MAX_LABEL_LEN} bytes", String::from_utf8_lossy(name)));
    }
    wire.push(label.len() as u8);
    wire.extend_from_slice(label);
    Ok(())
}

/// The RDATA tokens of one entry, read field by field.
struct Fields<'t, 'a> {
    tokens: &'t [Token<'a>],
    at: usize,
    origin: Option<&'t [u8]>,
}

impl<'t, 'a> Fields<'t, 'a> {
    fn next(&mut self, what: &str) -> Result<&'t Token<'a>, String> {
        let token = self.tokens.get(self.at).ok_or_else(|| format!("missing {what}"))?;
        self.at += 1;
        Ok(token)
    }

    fn peek(&self) -> Option<&'t Token<'a>> {
        self.tokens.get(self.at)
    }

    fn is_done(&self) -> bool {
        self.at >= self.tokens.len()
    }

    /// The next token as text, escapes resolved.
    fn text(&mut self, what: &str) -> Result<String, String> {
        let token = self.next(what)?;
        let bytes = unescape(token.raw)?;
        String::from_utf8(bytes).map_err(|_| format!("{what} is not text"))
    }

    fn int<T: FromStr>(&mut self, what: &str) -> Result<T, String> {
        let text = self.text(what)?;
        parse_int(&text, what)
    }

    fn name(&mut self, what: &str) -> Result<Vec<u8>, String> {
        let token = self.next(what)?;
        name_wire(token.raw, self.origin).map_err(|e| format!("{what}: {e}"))
    }

    /// The rest of the entry as one base64 text (RFC 4648; blanks may split it).
    fn base64_rest(&mut self, what: &str, allow_empty: bool) -> Result<Vec<u8>, String> {
        let text = self.joined_rest()?;
        if text.is_empty() && !allow_empty {
            return Err(format!("missing {what}"));
        }
        decode_base64(&text, what)
    }

    /// The rest of the entry as one hex text (blanks may split it).
    fn hex_rest(&mut self, what: &str) -> Result<Vec<u8>, String> {
        let text = self.joined_rest()?;
        if text.is_empty() {
            return Err(format!("missing {what}"));
        }
        decode_hex(&text, what)
    }

    fn joined_rest(&mut self) -> Result<String, String> {
        let mut text = String::new();
        while !self.is_done() {
            text.push_str(&self.text("data")?);
        }
        Ok(text)
    }

    /// One character-string's bytes (RFC 1035 section 5.1), quoted or not.
    fn char_string(&mut self, what: &str) -> Result<Vec<u8>, String> {
        let token = self.next(what)?;
        unescape(token.raw)
    }

    fn finish(&self) -> Result<(), String> {
        match self.peek() {
            None => Ok(()),
            Some(token) => Err(format!("unexpected {} after the last field", String::from_utf8_lossy(token.raw))),
        }
    }
}

fn parse_int<T: FromStr>(text: &str, what: &str) -> Result<T, String> {
    // `u16::from_str` takes a leading `+`; zone files do not.
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{what} {text:?} is not a number"));
    }
    text.parse().map_err(|_| format!("{what} {text} is out of range"))
}

fn decode_base64(text: &str, what: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::STANDARD.decode(text).map_err(|e| format!("{what} is not base64: {e}"))
}

fn decode_hex(text: &str, what: &str) -> Result<Vec<u8>, String> {
    if !text.len().is_multiple_of(2) {
        return Err(format!("{what} has an odd number of hex digits"));
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2).unwrap_or("x"), 16))
        .collect::<Result<Vec<u8>, _>>()
        .map_err(|_| format!("{what} is not hex"))
}
