//! The zone-file loader end to end: files on disk (includes, errors with their lines) and the
//! records that come from elsewhere (transfers, the API) through the same checks.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use domain::base::iana::Class;

use super::build::build_zone;
use super::scan::Scanned;
use super::{Severity, load_zone_file, parse_records, zone_from_records};
use crate::name::Name;
use crate::zone::Record;

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
    let scanned = |r: &Record, class| Scanned {
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
