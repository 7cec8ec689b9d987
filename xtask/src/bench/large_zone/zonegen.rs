//! The large zone: N names, mostly A records with distinct addresses, some AAAA, a few MX, TXT and
//! CNAME (the mix of big_zone() in dns-xdp-userspace/examples/kernel_share.rs), written
//! deterministically so runs compare.

use std::collections::HashMap;
use std::io::{BufWriter, Write as _};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};

pub const ORIGIN: &str = "big.test.";
/// Name i is a CNAME (to name i-1) when i % CNAME_EVERY == CNAME_AT: 1% of the names. Never the
/// last name of a zone whose size is a round number, so the start probe asks for an A record.
const CNAME_EVERY: usize = 100;
const CNAME_AT: usize = 50;
/// One name in AAAA_EVERY also has an AAAA record; one in EXTRA_EVERY an MX and a TXT.
const AAAA_EVERY: usize = 4;
const EXTRA_EVERY: usize = 50;
/// 10.0.0.0/8 gives 2^24 distinct addresses: record data only, never routed by the bed.
pub const MAX_NAMES: usize = 1 << 24;

pub struct ZoneFile {
    pub path: PathBuf,
    pub bytes: u64,
}

/// Owner name of name `i` (absolute).
pub fn name(i: usize) -> String {
    format!("h{i}.{ORIGIN}")
}

/// The A address name `i` holds in the file (for the names that hold one).
pub fn addr(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, (i >> 16) as u8, (i >> 8) as u8, i as u8)
}

/// Whether name `i` holds an A record of its own (not a CNAME).
pub fn has_a(i: usize) -> bool {
    i % CNAME_EVERY != CNAME_AT
}

/// The last name of the zone that holds an A record: the start probe asks for it.
pub fn last_a(names: usize) -> usize {
    (0..names).rev().find(|&i| has_a(i)).expect("a zone of at least one name has an A name")
}

/// `count` distinct names holding an A record, spread over the zone, none of them in `taken` (for
/// the change and reload latencies: each sample on a name of its own).
pub fn spread_a_names(names: usize, count: usize, taken: &[usize]) -> Vec<usize> {
    let mut out: Vec<usize> = Vec::with_capacity(count);
    for k in 0..count {
        let mut i = (k * names) / count.max(1) + names / (2 * count.max(1));
        while i < names && (!has_a(i) || out.contains(&i) || taken.contains(&i)) {
            i += 1;
        }
        if i < names {
            out.push(i);
        }
    }
    out
}

/// The zone as generated: serial 1, every name with its own address.
pub fn write(dir: &Path, names: usize) -> Result<ZoneFile> {
    write_version(&dir.join(format!("big-{names}.zone")), names, 1, &[])
}

/// The zone at `path` with SOA serial `serial` and name i's A address replaced by a for each (i, a)
/// in `changed` (the reload samples: each one more changed record than the last). Written beside
/// and renamed over, so a server that reads the file meanwhile sees one version or the other.
pub fn write_version(path: &Path, names: usize, serial: u32, changed: &[(usize, Ipv4Addr)]) -> Result<ZoneFile> {
    if names == 0 || names > MAX_NAMES {
        bail!("--names must be 1..={MAX_NAMES}");
    }
    let tmp = path.with_extension("zone.tmp");
    let file = std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    write!(
        w,
        "$ORIGIN {ORIGIN}\n$TTL 300\n@ IN SOA ns hostmaster {serial} 3600 600 86400 60\n  IN NS ns\n  IN MX 10 mail\n\
         ns IN A 192.0.2.1\nmail IN A 192.0.2.2\n"
    )?;
    let changed: HashMap<usize, Ipv4Addr> = changed.iter().copied().collect();
    for i in 0..names {
        if !has_a(i) {
            writeln!(w, "h{i} IN CNAME h{}", i.saturating_sub(1))?;
            continue;
        }
        writeln!(w, "h{i} IN A {}", changed.get(&i).copied().unwrap_or_else(|| addr(i)))?;
        if i % AAAA_EVERY == 0 {
            writeln!(w, "h{i} IN AAAA fd00:b:d::{:x}:{:x}", i >> 16, i & 0xffff)?;
        }
        if i % EXTRA_EVERY == 0 {
            writeln!(w, "h{i} IN MX 10 mail\nh{i} IN TXT \"v=spf1 -all\"")?;
        }
    }
    w.flush().with_context(|| format!("writing {}", tmp.display()))?;
    drop(w);
    std::fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    let bytes = std::fs::metadata(path)?.len();
    Ok(ZoneFile { path: path.to_owned(), bytes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zone_has_the_asked_number_of_names_with_a_distinct_addresses() {
        let dir = std::env::temp_dir().join(format!("dnsxdp-bigzone-gen-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let z = write(&dir, 1000).unwrap();
        let text = std::fs::read_to_string(&z.path).unwrap();
        let owners: std::collections::HashSet<&str> =
            text.lines().filter(|l| l.starts_with('h')).filter_map(|l| l.split_whitespace().next()).collect();
        assert_eq!(owners.len(), 1000);
        let a: Vec<&str> = text.lines().filter(|l| l.starts_with('h') && l.contains(" IN A ")).collect();
        assert_eq!(a.len(), 990, "1% CNAMEs");
        let addrs: std::collections::HashSet<&str> = a.iter().filter_map(|l| l.split_whitespace().last()).collect();
        assert_eq!(addrs.len(), a.len(), "distinct addresses");
        assert!(text.contains("h999 IN A 10.0.3.231\n"));
        assert!(text.lines().any(|l| l.contains(" IN AAAA ")) && text.lines().any(|l| l.contains(" IN TXT ")));
        let v = write_version(&z.path, 1000, 3, &[(999, Ipv4Addr::new(203, 0, 113, 1))]).unwrap();
        let changed = std::fs::read_to_string(&v.path).unwrap();
        let diff: Vec<(&str, &str)> = text.lines().zip(changed.lines()).filter(|(a, b)| a != b).collect();
        assert_eq!(
            diff,
            [
                ("@ IN SOA ns hostmaster 1 3600 600 86400 60", "@ IN SOA ns hostmaster 3 3600 600 86400 60"),
                ("h999 IN A 10.0.3.231", "h999 IN A 203.0.113.1")
            ]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn probes_ask_names_that_hold_an_a_record() {
        assert_eq!(last_a(1000), 999);
        assert_eq!(last_a(51), 49);
        let spread = spread_a_names(10_000, 20, &[]);
        assert_eq!(spread.len(), 20);
        assert!(spread.iter().all(|&i| has_a(i) && i < 10_000));
        let mut sorted = spread.clone();
        sorted.dedup();
        assert_eq!(sorted.len(), 20);
        let others = spread_a_names(10_000, 20, &spread);
        assert_eq!(others.len(), 20);
        assert!(others.iter().all(|i| has_a(*i) && !spread.contains(i)), "{others:?}");
    }
}
