//! The benchmark zone (10,000 names with A and AAAA) and its query files, generated deterministically.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

pub const ORIGIN: &str = "bench.test.";
pub const NAMES: usize = 10_000;
/// Share of NXDOMAIN queries in the mixed file, in percent (the issue asks for 10%).
pub const NX_PERCENT: usize = 10;

pub struct Files {
    pub zone: PathBuf,
    /// Every name, A and AAAA, shuffled: all hits.
    pub hits: PathBuf,
    /// The same, with NX_PERCENT of the lines replaced by names that do not exist.
    pub nx10: PathBuf,
}

/// Writes the zone (always every name) and the query files, which ask the first `asked` names
/// (all of them unless `--hit-names` says fewer).
pub fn write(dir: &Path, asked: usize) -> Result<Files> {
    let files = Files {
        zone: dir.join("bench.test.zone"),
        hits: dir.join("queries-hits.txt"),
        nx10: dir.join("queries-nx10.txt"),
    };
    std::fs::write(&files.zone, zone_text()).with_context(|| format!("writing {}", files.zone.display()))?;
    let hits = hit_queries(asked);
    std::fs::write(&files.hits, hits.concat()).with_context(|| format!("writing {}", files.hits.display()))?;
    std::fs::write(&files.nx10, with_nxdomain(hits).concat())
        .with_context(|| format!("writing {}", files.nx10.display()))?;
    Ok(files)
}

pub fn name(i: usize) -> String {
    format!("n{i:05}.{ORIGIN}")
}

fn zone_text() -> String {
    let mut z = format!(
        "$ORIGIN {ORIGIN}\n$TTL 3600\n\
         @ IN SOA ns.{ORIGIN} hostmaster.{ORIGIN} 1 3600 900 604800 300\n\
         @ IN NS ns.{ORIGIN}\nns IN A 198.18.53.1\n"
    );
    for i in 0..NAMES {
        // Record data only: 198.19/16 and fd00:b:d/48 are never routed.
        let _ = writeln!(z, "n{i:05} IN A 198.19.{}.{}", i / 256, i % 256);
        let _ = writeln!(z, "n{i:05} IN AAAA fd00:b:d::{i:x}");
    }
    z
}

/// One `name type` line per name and type for the first `asked` names, in a fixed pseudo-random order (so
/// consecutive queries do not walk the hash map in insertion order).
fn hit_queries(asked: usize) -> Vec<String> {
    let mut lines: Vec<String> =
        (0..asked.min(NAMES)).flat_map(|i| [format!("{} A\n", name(i)), format!("{} AAAA\n", name(i))]).collect();
    let mut rng = Lcg(0x5eed);
    for i in (1..lines.len()).rev() {
        let j = (rng.next() % (i as u64 + 1)) as usize;
        lines.swap(i, j);
    }
    lines
}

fn with_nxdomain(mut lines: Vec<String>) -> Vec<String> {
    let every = 100 / NX_PERCENT;
    for (i, l) in lines.iter_mut().enumerate() {
        if i % every == every - 1 {
            let qtype = if i % 2 == 0 { "A" } else { "AAAA" };
            *l = format!("x{i:05}.{ORIGIN} {qtype}\n");
        }
    }
    lines
}

/// Knuth's MMIX LCG: enough to shuffle deterministically without a dependency.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_is_queried_for_a_and_aaaa_once() {
        let lines = hit_queries(NAMES);
        assert_eq!(lines.len(), 2 * NAMES);
        let mut sorted = lines.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 2 * NAMES);
        assert!(lines[0] != "n00000.bench.test. A\n", "queries are shuffled");
    }

    #[test]
    fn nx_mix_has_the_asked_share_of_missing_names() {
        let nx = with_nxdomain(hit_queries(NAMES));
        let missing = nx.iter().filter(|l| l.starts_with('x')).count();
        assert_eq!(missing * 100 / nx.len(), NX_PERCENT);
    }

    #[test]
    fn fewer_names_asked_are_the_first_ones() {
        let mut lines = hit_queries(100);
        assert_eq!(lines.len(), 200);
        lines.sort();
        assert_eq!(lines.first().map(String::as_str), Some("n00000.bench.test. A\n"));
        assert_eq!(lines.last().map(String::as_str), Some("n00099.bench.test. AAAA\n"));
    }

    #[test]
    fn zone_has_an_a_and_aaaa_per_name() {
        let z = zone_text();
        assert_eq!(z.lines().filter(|l| l.contains(" IN A ")).count(), NAMES + 1);
        assert_eq!(z.lines().filter(|l| l.contains(" IN AAAA ")).count(), NAMES);
    }
}
