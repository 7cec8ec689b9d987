use super::*;
use crate::name::Name;
use crate::zone::load::{load_zone_file, parse_records};

/// The origin the cases are written against.
const ORIGIN: &str = "example.com";

/// `example.com.` in wire format.
const EXAMPLE_COM: &[u8] = b"\x07example\x03com\x00";

/// The type and RDATA of the one record `line` holds, read as zone files and the API read it.
fn rdata(line: &str) -> (u16, Vec<u8>) {
    let origin = Name::from_text(ORIGIN).unwrap();
    let records = parse_records(&format!("{line}\n"), &origin).unwrap_or_else(|e| panic!("{line}: {e}"));
    assert_eq!(records.len(), 1, "{line}");
    (records[0].rtype, records[0].rdata.clone())
}

fn error(line: &str) -> String {
    let origin = Name::from_text(ORIGIN).unwrap();
    match parse_records(&format!("{line}\n"), &origin) {
        Ok(records) => panic!("{line}: read as {records:?}"),
        Err(e) => e,
    }
}

fn unhex(text: &str) -> Vec<u8> {
    decode_hex(&text.split_whitespace().collect::<String>(), "test").unwrap()
}

fn b64(text: &str) -> Vec<u8> {
    decode_base64(text, "test").unwrap()
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// RFC 8005 section 6's HIP public key (one token here, as section 5 requires).
const HIP_KEY: &str = "AwEAAbdxyhNuSutc5EMzxTs9LBPCIkOFH8cIvM4p9+LrV4e19WzK00+CI6zBCQTdtWsuxKbWIy87UOoJTwkUs7lBu+Upr1gsNrut79ryra+bSRGQb1slImA8YVJyuIDsj7kwzG7jnERNqnWxZ48AWkskmdHaVDP4BcelrTI3rMXdXF5D";

/// (presentation, type, RDATA) for the types read here; the RFCs' own examples where they
/// have them.
fn cases() -> Vec<(String, u16, Vec<u8>)> {
    let cases: Vec<(&str, u16, Vec<u8>)> = vec![
        // The issue's record. 52 22 23.000 N: 2^31 + 188 543 000 thousandths of an arcsecond;
        // 4 53 32.000 E: 2^31 + 17 612 000; -2 m: 10^7 - 200 cm; sizes 0 m, 10^6 cm, 10^3 cm.
        (
            "loc IN LOC 52 22 23.000 N 4 53 32.000 E -2.00m 0.00m 10000m 10m",
            29,
            unhex("00 00 16 13 8b3cf018 810cbce0 009895b8"),
        ),
        // RFC 1876 section 4's examples: size 30 m is 3e3 cm; the defaults 1 m, 10 km, 10 m.
        ("cambridge-net IN LOC 42 21 54 N 71 06 18 W -24m 30m", 29, unhex("00 33 16 13 89172dd0 70be15f0 00988d20")),
        ("pipex IN LOC 52 14 05 N 00 08 50 E 10m", 29, unhex("00 12 16 13 8b3556c8 80081650 00989a68")),
        // South and west, minutes only and degrees only, the largest precision, 0.5 m.
        ("x IN LOC 32 7 S 116 W 0 30 90000000 0.5m", 29, unhex("00 33 99 51 791bc760 671bee00 00989680")),
        ("afsdb IN AFSDB 1 afs.example.com.", 18, cat(&[&[0, 1], b"\x03afs", EXAMPLE_COM])),
        ("rt IN RT 10 relay", 21, cat(&[&[0, 10], b"\x05relay", EXAMPLE_COM])),
        // Case kept, relative to the origin, never compressed.
        ("kx IN KX 10 Kx-Host", 36, cat(&[&[0, 10], b"\x07Kx-Host", EXAMPLE_COM])),
        (
            "px IN PX 10 net2.it. PRMD-net2.ADMD-p400.C-it.",
            26,
            cat(&[&[0, 10], b"\x04net2\x02it\x00\x09PRMD-net2\x09ADMD-p400\x04C-it\x00"]),
        ),
        ("key IN KEY 256 3 5 AQID", 25, vec![1, 0, 3, 5, 1, 2, 3]),
        // A KEY without key data (RFC 3445's NOKEY flags) and a mnemonic algorithm.
        ("key IN KEY 49408 3 RSASHA1", 25, vec![0xc1, 0x00, 3, 5]),
        ("cert IN CERT PGP 0 0 AQIDBA==", 37, vec![0, 3, 0, 0, 0, 1, 2, 3, 4]),
        ("cert IN CERT 1 12345 ECDSAP256SHA256 ( AQID BA== )", 37, vec![0, 1, 0x30, 0x39, 13, 1, 2, 3, 4]),
        ("cert IN CERT uri 0 0 aHR0cDovL2V4YW1wbGUuY29tLw==", 37, cat(&[&[0, 253, 0, 0, 0], b"http://example.com/"])),
        // RFC 3123 section 5's examples.
        ("apl IN APL 1:192.168.32.0/21 !1:192.168.38.0/28", 42, unhex("0001 15 03 c0a820  0001 1c 83 c0a826")),
        ("apl IN APL 1:224.0.0.0/4 2:FF00:0:0:0:0:0:0:0/8", 42, unhex("0001 04 01 e0  0002 08 01 ff")),
        ("apl IN APL 1:0.0.0.0/0", 42, unhex("0001 00 00")),
        ("apl IN APL", 42, vec![]),
        // RFC 4701 section 3.6's first example: type 2, digest type 1, a SHA-256 digest.
        (
            "chi IN DHCID ( AAIBY2/AuCccgoJbsaxcQc9TUapptP69lOjxfNuVAA2kjEA= )",
            49,
            unhex("0002 01 636fc0b8271c82825bb1ac5c41cf5351aa69b4febd94e8f17cdb95000da48c40"),
        ),
        ("smimea IN SMIMEA 3 0 1 ( 0123456789abcdef 0123 )", 53, unhex("03 00 01 0123456789abcdef0123")),
        // RFC 7477 section 2.2's example and the wire form it gives.
        ("csync IN CSYNC 66 3 A NS AAAA", 62, unhex("00000042 0003 00 04 60 00 00 08")),
        // Two windows: CAA (257) in window 1, TYPE1234 (4 * 256 + 210) in window 4.
        ("csync IN CSYNC 1 0 TYPE1234 caa", 62, cat(&[&unhex("00000001 0000 01 01 40 04 1b"), &[0; 26], &[0x20]])),
        ("csync IN CSYNC 7 0", 62, unhex("00000007 0000")),
        ("spf IN SPF \"v=spf1 -all\" more", 99, cat(&[b"\x0bv=spf1 -all", b"\x04more"])),
        // RFC 6742 section 2's examples.
        ("nid IN NID 10 0014:4fff:ff20:ee64", 104, unhex("000a 0014 4fff ff20 ee64")),
        ("l32 IN L32 10 10.1.2.0", 105, unhex("000a 0a010200")),
        ("l64 IN L64 10 2001:0DB8:1140:1000", 106, unhex("000a 2001 0db8 1140 1000")),
        ("lp IN LP 10 l64-subnet1.example.com.", 107, cat(&[&[0, 10], b"\x0bl64-subnet1", EXAMPLE_COM])),
        // RFC 7043 sections 3.2 and 4.2.
        ("eui IN EUI48 00-00-5e-00-53-2a", 108, unhex("00005e00532a")),
        ("eui IN EUI64 00-00-5e-ef-10-00-00-2a", 109, unhex("00005eef1000002a")),
        // RFC 7553 section 4.5's example.
        (
            "_ftp._tcp IN URI 10 1 \"ftp://ftp1.example.com/public\"",
            256,
            cat(&[&[0, 10, 0, 1], b"ftp://ftp1.example.com/public"]),
        ),
    ];
    let mut cases: Vec<(String, u16, Vec<u8>)> = cases.into_iter().map(|(l, t, w)| (l.to_string(), t, w)).collect();
    // RFC 8005 section 6's example: a 16-byte HIT, a 132-byte RSA key, one rendezvous server.
    cases.push((
        format!("www IN HIP ( 2 200100107B1A74DF365639CC39F1D578\n {HIP_KEY}\n rvs.example.com. )"),
        55,
        cat(&[&[16, 2, 0, 132], &unhex("200100107B1A74DF365639CC39F1D578"), &b64(HIP_KEY), b"\x03rvs", EXAMPLE_COM]),
    ));
    cases
}

#[test]
fn every_type_read_here_gives_its_wire_data() {
    for (line, rtype, wire) in cases() {
        assert_eq!(rdata(&line), (rtype, wire), "{line}");
    }
    // Every parser has a case.
    for (code, mnemonic, _) in PARSERS {
        assert!(cases().iter().any(|(_, t, _)| t == code) || [64, 65].contains(code), "no case for {mnemonic}");
    }
}

/// RFC 9460 appendix D's test vectors, and each SvcParamKey the RFCs define.
#[test]
fn svcb_and_https_read_every_key() {
    let foo_com = b"\x03foo\x07example\x03com\x00";
    let foo_org = b"\x03foo\x07example\x03org\x00";
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("@ IN HTTPS 0 foo.example.com.", cat(&[&[0, 0], foo_com])),
        ("@ IN SVCB 1 .", vec![0, 1, 0]),
        ("@ IN SVCB 16 foo.example.com. port=53", cat(&[&[0, 16], foo_com, &unhex("0003 0002 0035")])),
        ("@ IN SVCB 1 foo.example.com. key667=hello", cat(&[&[0, 1], foo_com, &unhex("029b 0005 68656c6c6f")])),
        (
            r#"@ IN SVCB 1 foo.example.com. key667="hello\210qoo""#,
            cat(&[&[0, 1], foo_com, &unhex("029b 0009 68656c6c6fd2716f6f")]),
        ),
        (
            r#"@ IN SVCB 1 foo.example.com. ( ipv6hint="2001:db8::1,2001:db8::53:1" )"#,
            cat(&[
                &[0, 1],
                foo_com,
                &unhex("0006 0020 20010db8000000000000000000000001 20010db8000000000000000000530001"),
            ]),
        ),
        (
            r#"@ IN SVCB 1 example.com. ( ipv6hint="2001:db8:ffff:ffff:ffff:ffff:198.51.100.100" )"#,
            cat(&[&[0, 1], EXAMPLE_COM, &unhex("0006 0010 20010db8ffffffffffffffffc6336464")]),
        ),
        // Neither the values nor the mandatory keys sorted in presentation; sorted on the wire.
        (
            "@ IN SVCB 16 foo.example.org. ( alpn=h2,h3-19 mandatory=ipv4hint,alpn ipv4hint=192.0.2.1 )",
            cat(&[
                &[0, 16],
                foo_org,
                &unhex("0000 0004 0001 0004  0001 0009 02 6832 05 68332d3139  0004 0004 c0000201"),
            ]),
        ),
        // Escaped commas and backslashes in a value list (appendix A.1), quoted and not.
        (
            r#"@ IN SVCB 16 foo.example.org. alpn="f\\\\oo\\,bar,h2""#,
            cat(&[&[0, 16], foo_org, &unhex("0001 000c 08 665c6f6f2c626172 02 6832")]),
        ),
        (
            r#"@ IN SVCB 16 foo.example.org. alpn=f\\\092oo\092,bar,h2"#,
            cat(&[&[0, 16], foo_org, &unhex("0001 000c 08 665c6f6f2c626172 02 6832")]),
        ),
        // The rest of the keys: flags, ECH, DoH path, and numbered keys `domain` refuses.
        (
            "@ IN HTTPS 1 . alpn=h3 no-default-alpn ech=AQID ipv4hint=192.0.2.1,192.0.2.2 dohpath=/q{?dns} ohttp",
            cat(&[
                &[0, 1, 0],
                &unhex("0001 0003 02 6833  0002 0000  0004 0008 c0000201 c0000202  0005 0003 010203"),
                &unhex("0007 0008"),
                b"/q{?dns}",
                &unhex("0008 0000"),
            ]),
        ),
        (
            "@ IN SVCB 1 svc key9 key65279=z key0=key9",
            cat(&[&[0, 1], b"\x03svc", EXAMPLE_COM, &unhex("0000 0002 0009  0009 0000  feff 0001 7a")]),
        ),
    ];
    for (line, wire) in cases {
        let rtype = if line.contains("HTTPS") { 65 } else { 64 };
        assert_eq!(rdata(line), (rtype, wire), "{line}");
    }
    // RFC 9460 appendix D.3's failure cases, and our own.
    for (params, what) in [
        ("key123=abc key123=def", "key123 given twice"),
        ("mandatory", "mandatory needs a value"),
        ("alpn", "alpn needs a value"),
        ("port", "port needs a value"),
        ("ipv4hint", "ipv4hint needs a value"),
        ("ipv6hint", "ipv6hint needs a value"),
        ("no-default-alpn=abc", "no-default-alpn takes no value"),
        ("mandatory=key123", "mandatory key123 is missing"),
        ("mandatory=mandatory", "mandatory lists itself"),
        ("mandatory=key123,key123 key123=abc", "mandatory lists a key twice"),
        ("alpn=h2,,h3", "alpn has an empty item"),
        ("key65535", "unknown SvcParamKey \"key65535\""),
        ("Alpn=h2", "unknown SvcParamKey \"Alpn\""),
        ("port=99999", "port 99999 is out of range"),
    ] {
        let text = error(&format!("@ IN SVCB 1 foo.example.com. {params}"));
        assert!(text.starts_with("SVCB: ") && text.contains(what), "{params}: {text}");
    }
}

/// The types `domain` reads itself (`DOMAIN_READS`), each with the bytes it must give.
#[test]
fn domain_reads_its_types() {
    let ipseckey = b64("AQNRU3mG7TVTO2BkR47usntb102uFJtugbo6BSGvgqt4AQ==");
    let digest = "a1".repeat(48);
    let sha256 = "0123456789abcdef".repeat(4);
    let mail = cat(&[b"\x04mail", EXAMPLE_COM]);
    let cases: Vec<(String, u16, Vec<u8>)> = vec![
        ("a IN A 192.0.2.1".into(), 1, vec![192, 0, 2, 1]),
        ("a IN NS mail".into(), 2, mail.clone()),
        ("a IN MD mail".into(), 3, mail.clone()),
        ("a IN MF mail".into(), 4, mail.clone()),
        ("a IN CNAME mail".into(), 5, mail.clone()),
        (
            "@ IN SOA mail mail 1 2 3 4 5".into(),
            6,
            cat(&[&mail, &mail, &unhex("00000001 00000002 00000003 00000004 00000005")]),
        ),
        ("a IN MB mail".into(), 7, mail.clone()),
        ("a IN MG mail".into(), 8, mail.clone()),
        ("a IN MR mail".into(), 9, mail.clone()),
        ("a IN PTR mail".into(), 12, mail.clone()),
        ("a IN HINFO \"PC\" Linux".into(), 13, b"\x02PC\x05Linux".to_vec()),
        ("a IN MINFO mail mail".into(), 14, cat(&[&mail, &mail])),
        ("a IN MX 10 mail".into(), 15, cat(&[&[0, 10], &mail])),
        ("a IN TXT \"a b\" c".into(), 16, b"\x03a b\x01c".to_vec()),
        ("a IN RP mail mail".into(), 17, cat(&[&mail, &mail])),
        ("a IN AAAA 2001:db8::1".into(), 28, unhex("20010db8000000000000000000000001")),
        ("a IN SRV 10 60 5060 mail".into(), 33, cat(&[&unhex("000a 003c 13c4"), &mail])),
        (
            "a IN NAPTR 100 10 \"S\" \"SIP+D2U\" \"\" _sip._udp".into(),
            35,
            cat(&[&unhex("0064 000a"), b"\x01S\x07SIP+D2U\x00\x04_sip\x04_udp", EXAMPLE_COM]),
        ),
        ("a IN DNAME mail".into(), 39, mail.clone()),
        (format!("a IN DS 12345 13 2 {sha256}"), 43, cat(&[&unhex("3039 0d 02"), &unhex(&sha256)])),
        (format!("a IN SSHFP 4 2 {sha256}"), 44, cat(&[&[4, 2], &unhex(&sha256)])),
        // RFC 4025 section 3's examples: every gateway type.
        (
            "a IN IPSECKEY ( 10 1 2 192.0.2.38 AQNRU3mG7TVTO2BkR47usntb102uFJtugbo6BSGvgqt4AQ== )".into(),
            45,
            cat(&[&[10, 1, 2, 192, 0, 2, 38], &ipseckey]),
        ),
        (
            "a IN IPSECKEY ( 10 0 2 . AQNRU3mG7TVTO2BkR47usntb102uFJtugbo6BSGvgqt4AQ== )".into(),
            45,
            cat(&[&[10, 0, 2], &ipseckey]),
        ),
        (
            "a IN IPSECKEY ( 10 2 2 2001:0DB8:0:8002::2000:1 AQNRU3mG7TVTO2BkR47usntb102uFJtugbo6BSGvgqt4AQ== )".into(),
            45,
            cat(&[&[10, 2, 2], &unhex("20010db8000080020000000020000001"), &ipseckey]),
        ),
        (
            "a IN IPSECKEY ( 10 3 2 mygateway.example.com. AQNRU3mG7TVTO2BkR47usntb102uFJtugbo6BSGvgqt4AQ== )".into(),
            45,
            cat(&[&[10, 3, 2], b"\x09mygateway", EXAMPLE_COM, &ipseckey]),
        ),
        // 2024-01-01 and 2023-12-01 00:00:00 UTC.
        (
            "a IN RRSIG A 13 2 3600 20240101000000 20231201000000 12345 example.com. AQID".into(),
            46,
            cat(&[&unhex("0001 0d 02 00000e10 65920080 65692200 3039"), EXAMPLE_COM, &[1, 2, 3]]),
        ),
        ("a IN NSEC mail A MX NSEC".into(), 47, cat(&[&mail, &unhex("00 06 40 01 00 00 00 01")])),
        ("a IN DNSKEY 257 3 13 AQID".into(), 48, vec![1, 1, 3, 13, 1, 2, 3]),
        // RFC 5155 appendix A's first hash.
        (
            "a IN NSEC3 1 1 12 aabbccdd 2vptu5timamqttgl4luu9kg21e0aor3s A RRSIG".into(),
            50,
            unhex("01 01 000c 04 aabbccdd 14 17f3df17b2b2adaef615257de4d2020b80ac6c7c 00 06 40 00 00 00 00 02"),
        ),
        ("@ IN NSEC3PARAM 1 0 10 aabbccdd".into(), 51, unhex("01 00 000a 04 aabbccdd")),
        (format!("a IN TLSA 3 1 1 {sha256}"), 52, cat(&[&[3, 1, 1], &unhex(&sha256)])),
        (format!("a IN CDS 12345 13 2 {sha256}"), 59, cat(&[&unhex("3039 0d 02"), &unhex(&sha256)])),
        ("a IN CDNSKEY 257 3 13 AQID".into(), 60, vec![1, 1, 3, 13, 1, 2, 3]),
        ("a IN OPENPGPKEY ( AQID BA== )".into(), 61, vec![1, 2, 3, 4]),
        // RFC 8976 section A.1's record: serial 2018031900, SHA-384 (48 bytes).
        (
            format!("@ IN ZONEMD 2018031900 1 1 ( {} {} )", &digest[..48], &digest[48..]),
            63,
            cat(&[&unhex("7848b91c 01 01"), &unhex(&digest)]),
        ),
        ("a IN CAA 0 issue \"ca.example.net\"".into(), 257, b"\x00\x05issueca.example.net".to_vec()),
        ("a IN CAA 128 tbs Unknown".into(), 257, b"\x80\x03tbsUnknown".to_vec()),
    ];
    for (line, rtype, wire) in cases {
        assert_eq!(rdata(&line), (rtype, wire), "{line}");
    }
    for code in DOMAIN_READS {
        assert!(!PARSERS.iter().any(|(c, _, _)| c == code), "type {code} read twice");
    }
}

#[test]
fn owner_ttl_and_class_as_domain_reads_them() {
    let loc = unhex("00 12 16 13 8b3556c8 80081650 00989a68");
    let data = "52 14 05 N 00 08 50 E 10m";
    let origin = Name::from_text(ORIGIN).unwrap();
    // Class and TTL in either order or left out (the class is then the previous record's).
    for head in ["x 300 IN LOC", "x IN 300 LOC", "x loc", "x 300 loc", "x IN Loc", "x TYPE29"] {
        let text = format!("$TTL 60\nprev IN A 192.0.2.1\n{head} {data}\n");
        let records = parse_records(&text, &origin).unwrap_or_else(|e| panic!("{head}: {e}"));
        let ttl = if head.contains("300") { 300 } else { 60 };
        assert_eq!((records[1].rtype, records[1].ttl, &records[1].rdata), (29, ttl, &loc), "{head}");
    }
    // No owner: the previous one's; a generic LOC is `domain`'s to read.
    let text = format!("x 300 IN A 192.0.2.1\n\tIN LOC {data}\ny IN LOC \\# 2 0102\n");
    let records = parse_records(&text, &origin).unwrap();
    assert_eq!(records[1].owner, Name::from_text("x.example.com").unwrap());
    assert_eq!((records[1].rtype, records[1].ttl), (29, 300));
    assert_eq!(records[2].rdata, vec![1, 2]);
}

#[test]
fn names_follow_origin_directives() {
    let origin = Name::from_text(ORIGIN).unwrap();
    let text = "kx IN KX 1 a\n$ORIGIN sub\nkx IN KX 2 a\nkx IN KX 3 @\n$ORIGIN other.test.\nkx IN KX 4 a\n";
    let names: Vec<Vec<u8>> =
        parse_records(text, &origin).unwrap().into_iter().map(|r| r.rdata[2..].to_vec()).collect();
    assert_eq!(
        names,
        vec![
            cat(&[b"\x01a", EXAMPLE_COM]),
            cat(&[b"\x01a\x03sub", EXAMPLE_COM]),
            cat(&[b"\x03sub", EXAMPLE_COM]),
            b"\x01a\x05other\x04test\x00".to_vec(),
        ]
    );
    let rewritten = rewrite(b"kx IN KX 1 a\n", None);
    assert_eq!(rewritten.errors[0].error.to_string(), "KX: name: relative name a but no $ORIGIN");
}

#[test]
fn errors_name_the_type_and_field() {
    for (line, expected) in [
        ("x IN LOC 91 N 0 E 0", "LOC: latitude beyond 90 degrees"),
        ("x IN LOC 52 22 23.000 X 4 E 0", "LOC: latitude hemisphere X is neither N nor S"),
        ("x IN LOC 52 N 4 E", "LOC: missing altitude"),
        ("x IN LOC 52 N 4 E 0 1 2 3 4", "LOC: unexpected 4 after the last field"),
        ("x IN LOC 52 60 N 4 E 0", "LOC: latitude minutes 60 above 59"),
        ("x IN LOC 0 N 0 E -100000.01", "LOC: altitude -100000.01 is outside"),
        ("x IN CERT FOO 0 0 AQID", "CERT: certificate type \"FOO\" is not a number"),
        ("x IN CERT PGP 0 0", "CERT: missing certificate"),
        ("x IN APL 3:1.2.3.4/8", "APL: 3:1.2.3.4/8: address family 3 is neither 1 (IPv4) nor 2 (IPv6)"),
        ("x IN APL 1:1.2.3.4/33", "APL: 1:1.2.3.4/33: prefix longer than 32"),
        ("x IN EUI48 00-00-5e-00-53", "EUI48: 00-00-5e-00-53 is not 6 hex pairs joined by hyphens"),
        ("x IN NID 10 14:4fff:ff20:ee64", "NID: 14:4fff:ff20:ee64 is not four groups"),
        ("x IN L32 10 10.1.02.0", "L32: locator 10.1.02.0 is not an IPv4 address"),
        ("x IN DHCID AQ=", "DHCID: digest is not base64"),
        ("x IN SMIMEA 3 0 1 abc", "SMIMEA: certificate association data has an odd number of hex digits"),
        ("x IN CSYNC 1 0 A NOTATYPE", "CSYNC: unknown type NOTATYPE in the type bitmap"),
        ("x IN KX 70000 a", "KX: preference 70000 is out of range"),
        ("x IN URI 1 1 \"\"", "URI: empty target"),
    ] {
        assert!(error(line).starts_with(expected), "{line}: {}", error(line));
    }
}

#[test]
fn unknown_types_say_what_to_write() {
    assert_eq!(
        error("x IN FOO 1 2"),
        "unknown record type FOO; write it in RFC 3597 generic form: TYPEnnn \\# len hex"
    );
    // Types with a mnemonic but no presentation format here.
    assert_eq!(
        error("x IN WKS 192.0.2.1 6 25"),
        "unknown record type WKS; write it in RFC 3597 generic form: TYPE11 \\# len hex"
    );
    assert_eq!(
        error("x 300 NULL 1"),
        "unknown record type NULL; write it in RFC 3597 generic form: TYPE10 \\# len hex"
    );
    assert_eq!(rdata("x IN WKS \\# 1 ff"), (11, vec![0xff]));
    // Not a type at all: `domain` says what it sees.
    assert!(!error("x 1h IN A 192.0.2.1").contains("unknown record type"));
}

/// Rewritten entries keep their lines: diagnostics after them point where they did.
#[test]
fn rewrite_keeps_line_numbers() {
    let text = b"x IN LOC ( 52 14 05 N ; lat\n 00 08 50 E\n 10m )\ny IN A 1.2.3.4\n\tIN SPF \"a\n b\"\nz IN TXT \"x\"";
    let rewritten = rewrite(text, Some(EXAMPLE_COM));
    assert!(rewritten.errors.is_empty());
    let out = String::from_utf8(rewritten.text.into_owned()).unwrap();
    let expected = "x IN TYPE29 \\# 16 001216138b3556c88008165000989a68\n\n\ny IN A 1.2.3.4\n\tIN TYPE99 \\# 5 04610a2062\n\nz IN TXT \"x\"";
    assert_eq!(out, expected);
    // Nothing to rewrite: the text itself, not a copy.
    assert!(matches!(rewrite(b"x IN A 1.2.3.4\n", None).text, Cow::Borrowed(_)));

    let dir = std::env::temp_dir().join(format!("dnsxdp-presentation-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("lines.zone");
    let zone = "$ORIGIN example.com.\n@ 300 IN SOA ns host 1 2 3 4 60\n@ 300 IN NS ns\nns 300 IN A 192.0.2.1\n\
                loc 300 IN LOC ( 52 14 05 N\n 00 08 50 E\n 10m )\nbad 300 IN LOC 91 N 0 E 0\nworse 300 IN A 192.0.2.300\n\
                odd 300 IN FOO 1\n";
    std::fs::write(&path, zone).unwrap();
    let err = load_zone_file(&path).unwrap_err();
    let lines: Vec<String> = err.diagnostics.iter().map(|d| format!("{}: {}", d.line, d.message)).collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert_eq!(lines[0], "8: LOC: latitude beyond 90 degrees");
    assert!(lines[1].starts_with("9: "), "{lines:?}");
    assert_eq!(lines[2], "10: unknown record type FOO; write it in RFC 3597 generic form: TYPEnnn \\# len hex");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A zone with a record of every type read here or by `domain` loads, as `dns-xdp check` does.
#[test]
fn a_zone_with_every_type_loads() {
    let dir = std::env::temp_dir().join(format!("dnsxdp-alltypes-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("example.com.zone");
    let mut zone =
        String::from("$ORIGIN example.com.\n$TTL 300\n@ IN SOA ns host 1 2 3 4 60\n@ IN NS ns\nns IN A 192.0.2.1\n");
    for (line, _, _) in cases() {
        zone.push_str(&line);
        zone.push('\n');
    }
    zone.push_str("svc IN SVCB 1 . alpn=h2 key65279=x\nsvc IN HTTPS 1 . mandatory=port port=8443\n");
    std::fs::write(&path, &zone).unwrap();
    let (loaded, _) = load_zone_file(&path).unwrap_or_else(|e| panic!("{e}"));
    for (code, mnemonic, _) in PARSERS {
        assert!(loaded.types.contains(code), "no {mnemonic} served");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
