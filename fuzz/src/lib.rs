//! What the fuzz targets share: the conformance zones as the daemon would serve them, a TSIG key,
//! and TCP-style framing of several messages in one input.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use dns_xdp::name::Name;
use dns_xdp::replication::tsig::{self, Key};
use dns_xdp::zone::{Zone, ZoneSet};

/// The conformance zones (testdata/conformance), loaded once per fuzzing process.
pub fn conformance_zones() -> &'static ZoneSet {
    static ZONES: OnceLock<ZoneSet> = OnceLock::new();
    ZONES.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/conformance");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
            .map(|e| e.expect("directory entry").path())
            .filter(|p| p.extension().is_some_and(|x| x == "zone"))
            .collect();
        files.sort();
        match dns_xdp::load_zones(&files) {
            Ok((zones, _warnings)) => zones,
            Err(errors) => panic!("the conformance zones do not load: {errors:?}"),
        }
    })
}

/// The zone the transfer and API targets work on.
pub fn example_test() -> &'static Arc<Zone> {
    let origin = Name::from_text("example.test").expect("literal");
    conformance_zones().get(&origin).expect("testdata/conformance/example.test.zone is loaded")
}

/// The key the TSIG target signs and verifies with.
pub fn tsig_key() -> Key {
    Key::new(
        Name::from_text("xfr-key").expect("literal"),
        tsig::Algorithm::Sha256,
        b"dns-xdp fuzzing secret, 32 bytes",
        Vec::new(),
    )
    .expect("a valid key")
}

/// Splits `data` as a TCP stream of DNS messages: each prefixed by its length, big-endian u16
/// (RFC 1035 section 4.2.2). A short last message takes what is left.
pub fn frames(mut data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while data.len() >= 2 {
        let len = usize::from(u16::from_be_bytes([data[0], data[1]]));
        let end = (2 + len).min(data.len());
        out.push(&data[2..end]);
        data = &data[end..];
    }
    out
}

/// A file of this process's own, for targets that must go through the file system.
pub fn scratch_file(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dns-xdp-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    dir.join(name)
}

/// libfuzzer-sys aborts on every panic from its panic hook, even one the library catches: the
/// zone-file reader catches `domain`'s scanner panics (zone/load/scan.rs), so targets that reach it
/// install a hook that only prints one line (no backtrace: caught panics are frequent). A panic
/// that unwinds out of the target still aborts (libfuzzer-sys checks), so crashes are still found.
pub fn allow_caught_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| eprintln!("panic (a crash unless the library catches it): {info}")))
    });
}
