//! Judging one server's answers against knotd and NSD, query by query: agreement with either
//! reference, an excuse from `deviations.txt`, or a mismatch written out for the failure message.

use std::fmt::Write as _;
use std::path::Path;

use super::corpus::{Query, Transport};
use super::deviations::{self, Deviation, differing_parts, excuse};
use super::message::{Normal, parse};
use super::servers::Server;

/// Sends `q` over its transport; `Err` for a reply with another ID or one that does not parse.
pub fn ask(server: &mut Server, q: &Query) -> Result<Option<Normal>, String> {
    let reply = match q.transport {
        Transport::Udp => server.udp(&q.bytes),
        Transport::Tcp => server.tcp(&q.bytes),
    };
    check(server.name, q, reply.as_deref())
}

/// [`ask`] for a reply already received from `name`.
pub fn check(name: &str, q: &Query, reply: Option<&[u8]>) -> Result<Option<Normal>, String> {
    match reply {
        None => Ok(None),
        Some(bytes) if bytes.get(..2) != q.bytes.get(..2) && q.bytes.len() >= 2 => {
            Err(format!("{name}: reply ID differs"))
        }
        Some(bytes) => parse(bytes).map(Some).map_err(|e| format!("{name}: unparseable reply ({e})")),
    }
}

pub fn show(o: &Option<Normal>) -> String {
    o.as_ref().map_or_else(|| "no response".to_owned(), ToString::to_string)
}

/// The running verdict over a corpus.
pub struct Verdict {
    devs: Vec<Deviation>,
    used: Vec<usize>,
    pub queries: usize,
    pub agree_knot: usize,
    pub agree_nsd_only: usize,
    pub refs_disagree: usize,
    pub mismatches: Vec<String>,
}

impl Verdict {
    /// Reads `deviations.txt` from the conformance directory.
    pub fn new(dir: &Path) -> Self {
        let path = dir.join("deviations.txt");
        let devs = deviations::parse(
            &std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display())),
        );
        let used = vec![0; devs.len()];
        Verdict { devs, used, queries: 0, agree_knot: 0, agree_nsd_only: 0, refs_disagree: 0, mismatches: Vec::new() }
    }

    /// Judges our answer to `q` (`ours`, as [`ask`] returned it) against knotd's and NSD's.
    pub fn judge(&mut self, q: &Query, ours: Result<Option<Normal>, String>, k: &Option<Normal>, n: &Option<Normal>) {
        self.queries += 1;
        if !differing_parts(k, n).is_empty() {
            self.refs_disagree += 1;
        }
        let ours = match ours {
            Ok(o) => o,
            Err(e) => {
                self.mismatches.push(format!("{}: {e}", q.desc));
                return;
            }
        };
        let dk = differing_parts(&ours, k);
        if dk.is_empty() {
            self.agree_knot += 1;
            return;
        }
        let dn = differing_parts(&ours, n);
        if dn.is_empty() {
            self.agree_nsd_only += 1;
            return;
        }
        match excuse(&self.devs, &q.desc, &dk).or_else(|| excuse(&self.devs, &q.desc, &dn)) {
            Some(list) => {
                for d in list {
                    self.used[self.devs.iter().position(|x| std::ptr::eq(x, d)).expect("from devs")] += 1;
                }
            }
            None => {
                let mut m = format!("{}  differs in {dk:?} from knotd, {dn:?} from nsd\n", q.desc);
                let _ = writeln!(m, "  dns-xdp: {}", show(&ours));
                let _ = writeln!(m, "  knotd:   {}", show(k));
                let _ = write!(m, "  nsd:     {}", show(n));
                self.mismatches.push(m);
            }
        }
    }

    pub fn excused(&self) -> usize {
        self.queries - self.agree_knot - self.agree_nsd_only - self.mismatches.len()
    }

    /// One line per deviation with how often it was needed.
    pub fn deviations_used(&self) -> String {
        let mut out = String::new();
        for (d, n) in self.devs.iter().zip(&self.used) {
            let _ = writeln!(out, "  deviations.txt:{} used {n} times: {} | {} | {}", d.line, d.glob, d.part, d.reason);
        }
        out
    }
}
