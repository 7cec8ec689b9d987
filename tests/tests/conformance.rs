//! dns-xdp answers like Knot DNS and NSD: the conformance zones served by all three on loopback,
//! a generated corpus of queries sent to each, normalised responses compared. A difference fails
//! the test unless the daemon matches either reference (where knotd and NSD disagree, either is
//! acceptable) or `testdata/conformance/deviations.txt` lists it with a reason.

use std::fmt::Write as _;
use std::time::Instant;

use dns_xdp_tests::conformance::corpus::{self, Transport};
use dns_xdp_tests::conformance::deviations::{self, differing_parts, excuse};
use dns_xdp_tests::conformance::message::{Normal, parse};
use dns_xdp_tests::conformance::servers::{Server, zone_files};
use dns_xdp_tests::{daemon_bin, repo_root, which};

/// Whether everything needed is installed; skips (or fails under CI) with the reason otherwise.
fn ready() -> bool {
    let missing = ["knotd", "nsd"].into_iter().find(|t| which(t).is_none()).map(|t| format!("`{t}` not found (apt-get install knot nsd)"));
    let missing = missing.or_else(|| (!daemon_bin().is_file()).then(|| format!("{} missing: cargo build --release", daemon_bin().display())));
    match missing {
        None => true,
        Some(reason) if std::env::var_os("CI").is_some() => panic!("conformance test cannot run under CI: {reason}"),
        Some(reason) => {
            eprintln!("skipped: {reason}");
            false
        }
    }
}

fn ask(server: &mut Server, q: &corpus::Query) -> Result<Option<Normal>, String> {
    let reply = match q.transport {
        Transport::Udp => server.udp(&q.bytes),
        Transport::Tcp => server.tcp(&q.bytes),
    };
    match reply {
        None => Ok(None),
        Some(bytes) if bytes.get(..2) != q.bytes.get(..2) && q.bytes.len() >= 2 => Err(format!("{}: reply ID differs", server.name)),
        Some(bytes) => parse(&bytes).map(Some).map_err(|e| format!("{}: unparseable reply ({e})", server.name)),
    }
}

fn show(o: &Option<Normal>) -> String {
    o.as_ref().map_or_else(|| "no response".to_owned(), ToString::to_string)
}

#[test]
fn answers_like_knot_and_nsd() {
    if !ready() {
        return;
    }
    let dir = repo_root().join("testdata/conformance");
    let devs = deviations::parse(&std::fs::read_to_string(dir.join("deviations.txt")).expect("reading deviations.txt"));
    let zones = zone_files(&dir);
    assert!(zones.len() >= 5, "conformance zones missing in {}", dir.display());

    let mut daemon = Server::dns_xdp(&zones, &[]);
    let mut knot = Server::knotd(&zones);
    let mut nsd = Server::nsd(&zones);

    let mut queries = corpus::generate(&zones);
    queries.extend(corpus::specials());
    let started = Instant::now();
    let mut mismatches = Vec::new();
    let mut used = vec![0usize; devs.len()];
    let (mut agree_knot, mut agree_nsd_only, mut refs_disagree) = (0, 0, 0);
    for q in &queries {
        let ours = ask(&mut daemon, q);
        let k = ask(&mut knot, q).unwrap_or_else(|e| panic!("{}: {e}", q.desc));
        let n = ask(&mut nsd, q).unwrap_or_else(|e| panic!("{}: {e}", q.desc));
        if differing_parts(&k, &n).is_empty() {
            // fine
        } else {
            refs_disagree += 1;
        }
        let ours = match ours {
            Ok(o) => o,
            Err(e) => {
                mismatches.push(format!("{}: {e}", q.desc));
                continue;
            }
        };
        let dk = differing_parts(&ours, &k);
        if dk.is_empty() {
            agree_knot += 1;
            continue;
        }
        let dn = differing_parts(&ours, &n);
        if dn.is_empty() {
            agree_nsd_only += 1;
            continue;
        }
        let excused = excuse(&devs, &q.desc, &dk).or_else(|| excuse(&devs, &q.desc, &dn));
        match excused {
            Some(list) => {
                for d in list {
                    used[devs.iter().position(|x| std::ptr::eq(x, d)).expect("from devs")] += 1;
                }
            }
            None => {
                let mut m = format!("{}  differs in {dk:?} from knotd, {dn:?} from nsd\n", q.desc);
                let _ = writeln!(m, "  dns-xdp: {}", show(&ours));
                let _ = writeln!(m, "  knotd:   {}", show(&k));
                let _ = write!(m, "  nsd:     {}", show(&n));
                mismatches.push(m);
            }
        }
    }
    let elapsed = started.elapsed();
    assert!(daemon.is_alive(), "dns-xdp died during the corpus:\n{}", daemon.log());
    println!(
        "conformance: {} queries in {elapsed:.1?}: {agree_knot} as knotd, {agree_nsd_only} as nsd only, {} excused by deviations, {} mismatches; knotd and nsd disagree on {refs_disagree}",
        queries.len(),
        queries.len() - agree_knot - agree_nsd_only - mismatches.len(),
        mismatches.len()
    );
    for (d, n) in devs.iter().zip(&used) {
        println!("  deviations.txt:{} used {n} times: {} | {} | {}", d.line, d.glob, d.part, d.reason);
    }
    if let Ok(path) = std::env::var("CONFORMANCE_REPORT") {
        std::fs::write(&path, mismatches.join("\n")).expect("writing the report");
    }
    assert!(
        mismatches.is_empty(),
        "{} responses differ from both knotd and NSD and are not in deviations.txt (first 30):\n{}",
        mismatches.len(),
        mismatches.iter().take(30).cloned().collect::<Vec<_>>().join("\n")
    );
}
