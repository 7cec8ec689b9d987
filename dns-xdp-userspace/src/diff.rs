//! `dns-xdp diff`: the shadow comparison offline. Every query of a dnsperf-style file (`name
//! type` a line) goes to two servers; their responses are compared with `compare::differences`
//! under `Scope::Answer` (as shadow validation does). Prints each mismatch, then a summary line;
//! the exit code says whether any was found, so it can gate a migration in CI.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use crate::compare::{self, Normal, Scope};
use crate::exchange::{self, Proto};

/// One question of the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Question {
    /// Line number in the file, for reports.
    pub line: usize,
    pub name: String,
    pub qtype: u16,
}

/// EDNS(0) on the queries sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Edns {
    None,
    /// OPT with payload 1232.
    Plain,
    /// OPT with payload 1232 and DO=1.
    Dnssec,
}

/// Reads a dnsperf query file: `name type` per line; blank lines and lines starting with `#` or
/// `;` are skipped. Errors name the line.
pub fn read_queries(path: &Path) -> Result<Vec<Question>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse_queries(&text).map_err(|(line, msg)| format!("{}:{line}: {msg}", path.display()))
}

pub fn parse_queries(text: &str) -> Result<Vec<Question>, (usize, String)> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let mut words = line.split_whitespace();
        let (Some(name), Some(ty), None) = (words.next(), words.next(), words.next()) else {
            return Err((i + 1, format!("want `name type`, got {line:?}")));
        };
        let qtype: domain::base::iana::Rtype = ty.parse().map_err(|_| (i + 1, format!("unknown type {ty:?}")))?;
        if name.trim_end_matches('.').split('.').any(|l| l.len() > 63) || name.len() > 254 {
            return Err((i + 1, format!("name too long: {name:?}")));
        }
        out.push(Question { line: i + 1, name: name.to_owned(), qtype: qtype.to_int() });
    }
    Ok(out)
}

/// The query bytes for a question: RD=0, one question, class IN, an OPT record as `edns` says.
pub fn query_bytes(id: u16, name: &str, qtype: u16, edns: Edns) -> Vec<u8> {
    let mut q = id.to_be_bytes().to_vec();
    q.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, u8::from(edns != Edns::None)]);
    for label in name.trim_end_matches('.').split('.').filter(|l| !l.is_empty()) {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes());
    if edns != Edns::None {
        let do_bit = if edns == Edns::Dnssec { 0x80 } else { 0 };
        q.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, do_bit, 0, 0, 0]);
    }
    q
}

/// One difference found.
#[derive(Debug)]
pub struct Mismatch {
    pub question: Question,
    pub proto: Proto,
    /// `response` when only one server answered; else the fields that differ.
    pub fields: Vec<&'static str>,
    pub a: Option<Normal>,
    pub b: Option<Normal>,
}

/// Totals of a run.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub asked: usize,
    pub agree: usize,
    pub differ: usize,
    /// Neither server answered (not a mismatch: nothing to compare).
    pub unanswered: usize,
}

/// Asks both servers every question over each of `protos`; calls `report` on each mismatch.
pub async fn diff(
    a: SocketAddr,
    b: SocketAddr,
    questions: &[Question],
    protos: &[Proto],
    edns: Edns,
    timeout: Duration,
    mut report: impl FnMut(&Mismatch),
) -> Summary {
    let mut sum = Summary::default();
    for (i, q) in questions.iter().enumerate() {
        let query = query_bytes(i as u16, &q.name, q.qtype, edns);
        for &proto in protos {
            sum.asked += 1;
            let (ra, rb) = tokio::join!(answer(a, &query, proto, timeout), answer(b, &query, proto, timeout));
            let fields = match (&ra, &rb) {
                (None, None) => {
                    sum.unanswered += 1;
                    continue;
                }
                (Some(x), Some(y)) => compare::differences(x, y, Scope::Answer),
                _ => vec!["response"],
            };
            if fields.is_empty() {
                sum.agree += 1;
                continue;
            }
            sum.differ += 1;
            report(&Mismatch { question: q.clone(), proto, fields, a: ra, b: rb });
        }
    }
    sum
}

/// A server's normalised answer (a truncated UDP answer asked again over TCP), `None` when it
/// gave none (or nothing parseable).
async fn answer(server: SocketAddr, query: &[u8], proto: Proto, timeout: Duration) -> Option<Normal> {
    match exchange::ask_full(server, query, proto, timeout).await {
        Ok((bytes, _)) => compare::parse(&bytes).ok(),
        Err(_) => None,
    }
}

/// A mismatch as printed: a head line, then each side's response, one line each.
pub fn render(m: &Mismatch, a: SocketAddr, b: SocketAddr) -> String {
    let side = |n: &Option<Normal>| n.as_ref().map_or_else(|| "no response".to_owned(), Normal::one_line);
    format!(
        "MISMATCH {} {} {} (line {}): {}\n  a {a}: {}\n  b {b}: {}",
        m.proto.name(),
        m.question.name,
        compare::type_name(m.question.qtype),
        m.question.line,
        m.fields.join(","),
        side(&m.a),
        side(&m.b)
    )
}

/// `dns-xdp diff`: exit 0 when every answer agrees, 1 when any differs, 2 on a usage error.
pub fn main(args: crate::config::DiffArgs) -> std::process::ExitCode {
    use crate::config::DiffProto;
    let questions = match read_queries(&args.queries) {
        Ok(q) if q.is_empty() => {
            eprintln!("{}: no queries", args.queries.display());
            return std::process::ExitCode::from(2);
        }
        Ok(q) => q,
        Err(msg) => {
            eprintln!("{msg}");
            return std::process::ExitCode::from(2);
        }
    };
    let protos: &[Proto] = match args.proto {
        DiffProto::Udp => &[Proto::Udp],
        DiffProto::Tcp => &[Proto::Tcp],
        DiffProto::Both => &[Proto::Udp, Proto::Tcp],
    };
    let edns = match (args.edns, args.dnssec) {
        (_, true) => Edns::Dnssec,
        (true, false) => Edns::Plain,
        _ => Edns::None,
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    let started = std::time::Instant::now();
    let (a, b) = (args.a, args.b);
    let sum = runtime.block_on(diff(a, b, &questions, protos, edns, Duration::from_millis(args.timeout_ms), |m| {
        println!("{}", render(m, a, b));
    }));
    println!(
        "summary: {} queries asked ({} of file x {}), {} agree, {} differ, {} unanswered by both; a={a} b={b} in {:.1?}",
        sum.asked,
        questions.len(),
        protos.iter().map(|p| p.name()).collect::<Vec<_>>().join("+"),
        sum.agree,
        sum.differ,
        sum.unanswered,
        started.elapsed()
    );
    if sum.differ > 0 { std::process::ExitCode::from(1) } else { std::process::ExitCode::SUCCESS }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_dnsperf_files() {
        let qs = parse_queries("# comment\nwww.example.com A\n\nexample.com. any\n; x\nfoo TYPE65280\n").unwrap();
        assert_eq!(qs.iter().map(|q| (q.line, q.qtype)).collect::<Vec<_>>(), [(2, 1), (4, 255), (6, 65280)]);
        assert_eq!(parse_queries("www.example.com\n").unwrap_err().0, 1);
        assert!(parse_queries("a NOSUCHTYPE\n").unwrap_err().1.contains("unknown type"));
    }

    #[test]
    fn query_bytes_carry_edns_as_asked() {
        let q = query_bytes(7, "a.", 1, Edns::Dnssec);
        assert_eq!(
            q,
            [0, 7, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 1, b'a', 0, 0, 1, 0, 1, 0, 0, 41, 4, 0xd0, 0, 0, 0x80, 0, 0, 0]
        );
        assert_eq!(query_bytes(7, "a", 1, Edns::None).len(), 12 + 3 + 4);
        assert_eq!(compare::describe_query(&q), "a. A edns do");
    }
}
