//! dns-xdp answers like Knot DNS and NSD: the conformance zones served by all three on loopback,
//! a generated corpus of queries sent to each, normalised responses compared. A difference fails
//! the test unless the daemon matches either reference (where knotd and NSD disagree, either is
//! acceptable) or `testdata/conformance/deviations.txt` lists it with a reason.

use std::time::Instant;

use dns_xdp_tests::conformance::corpus;
use dns_xdp_tests::conformance::servers::{Server, zone_files};
use dns_xdp_tests::conformance::verdict::{Verdict, ask};
use dns_xdp_tests::{daemon_bin, repo_root, which};

/// Whether everything needed is installed; skips (or fails under CI) with the reason otherwise.
fn ready() -> bool {
    let missing = ["knotd", "nsd"]
        .into_iter()
        .find(|t| which(t).is_none())
        .map(|t| format!("`{t}` not found (apt-get install knot nsd)"));
    let missing = missing.or_else(|| {
        (!daemon_bin().is_file()).then(|| format!("{} missing: cargo build --release", daemon_bin().display()))
    });
    match missing {
        None => true,
        Some(reason) if std::env::var_os("CI").is_some() => panic!("conformance test cannot run under CI: {reason}"),
        Some(reason) => {
            eprintln!("skipped: {reason}");
            false
        }
    }
}

#[test]
fn answers_like_knot_and_nsd() {
    if !ready() {
        return;
    }
    let dir = repo_root().join("testdata/conformance");
    let zones = zone_files(&dir);
    assert!(zones.len() >= 5, "conformance zones missing in {}", dir.display());
    let mut verdict = Verdict::new(&dir);

    let mut daemon = Server::dns_xdp(&zones, &[]);
    let mut knot = Server::knotd(&zones);
    let mut nsd = Server::nsd(&zones);

    let mut queries = corpus::generate(&zones);
    queries.extend(corpus::specials());
    let started = Instant::now();
    for q in &queries {
        let ours = ask(&mut daemon, q);
        let k = ask(&mut knot, q).unwrap_or_else(|e| panic!("{}: {e}", q.desc));
        let n = ask(&mut nsd, q).unwrap_or_else(|e| panic!("{}: {e}", q.desc));
        verdict.judge(q, ours, &k, &n);
    }
    let elapsed = started.elapsed();
    assert!(daemon.is_alive(), "dns-xdp died during the corpus:\n{}", daemon.log());
    println!(
        "conformance: {} queries in {elapsed:.1?}: {} as knotd, {} as nsd only, {} excused by deviations, {} mismatches; knotd and nsd disagree on {}",
        verdict.queries,
        verdict.agree_knot,
        verdict.agree_nsd_only,
        verdict.excused(),
        verdict.mismatches.len(),
        verdict.refs_disagree
    );
    print!("{}", verdict.deviations_used());
    let mismatches = verdict.mismatches;
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
