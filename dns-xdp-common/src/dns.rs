//! The DNS protocol's numbers, one definition for the XDP program and the daemon: the header's
//! layout and flags (RFC 1035 section 4.1.1), opcodes, RCODEs, classes and record types (the IANA
//! registries of RFC 6895), EDNS(0) (RFC 6891) option codes and Extended DNS Error codes
//! (RFC 8914). Numbers and their names only; parsing and encoding live with their users.

/// The fixed header: ID, flags, four section counts.
pub const HEADER_LEN: usize = 12;
/// Flags word: a response.
pub const FLAG_QR: u16 = 0x8000;
/// Flags word: the OPCODE field.
pub const OPCODE_MASK: u16 = 0x7800;
/// Flags word: authoritative answer.
pub const FLAG_AA: u16 = 0x0400;
/// Flags word: truncated.
pub const FLAG_TC: u16 = 0x0200;
/// Flags word: recursion desired.
pub const FLAG_RD: u16 = 0x0100;
/// Flags word: checking disabled (RFC 4035 section 3.2.2).
pub const FLAG_CD: u16 = 0x0010;
/// EDNS flags (the OPT record's TTL, low half): DNSSEC OK (RFC 3225).
pub const EDNS_DO: u16 = 0x8000;
/// An OPT record with no options: root owner, TYPE, CLASS (the payload size), TTL (extended
/// RCODE, version, flags), RDLENGTH (RFC 6891 section 6.1.2).
pub const OPT_LEN: usize = 11;
/// Longest message: what the two-byte length prefix over TCP can say (RFC 1035 section 4.2.2).
pub const MAX_MESSAGE: usize = 65535;

/// Opcodes (RFC 6895 section 2.2).
pub const OPCODE_QUERY: u8 = 0;
pub const OPCODE_NOTIFY: u8 = 4;

pub const CLASS_IN: u16 = 1;
/// The CHAOS class (RFC 4892 uses it for server identification).
pub const CLASS_CH: u16 = 3;
/// Class ANY: QCLASS * (RFC 1035 section 3.2.5), and the class of a TSIG record (RFC 8945
/// section 4.2).
pub const CLASS_ANY: u16 = 255;

/// Record types (TYPE and QTYPE values).
pub mod rtype {
    pub const A: u16 = 1;
    pub const NS: u16 = 2;
    pub const CNAME: u16 = 5;
    pub const SOA: u16 = 6;
    pub const PTR: u16 = 12;
    pub const MX: u16 = 15;
    pub const TXT: u16 = 16;
    pub const AAAA: u16 = 28;
    pub const SRV: u16 = 33;
    pub const DNAME: u16 = 39;
    pub const OPT: u16 = 41;
    pub const DS: u16 = 43;
    pub const RRSIG: u16 = 46;
    pub const NSEC: u16 = 47;
    pub const DNSKEY: u16 = 48;
    pub const NSEC3: u16 = 50;
    pub const NSEC3PARAM: u16 = 51;
    pub const SVCB: u16 = 64;
    pub const HTTPS: u16 = 65;
    /// Transaction signature (RFC 8945): a meta type, only ever in a message's additional section.
    pub const TSIG: u16 = 250;
    pub const IXFR: u16 = 251;
    pub const AXFR: u16 = 252;
    pub const ANY: u16 = 255;
}

/// Response codes, extended ones (past 15) included.
pub mod rcode {
    pub const NOERROR: u16 = 0;
    pub const FORMERR: u16 = 1;
    pub const SERVFAIL: u16 = 2;
    pub const NXDOMAIN: u16 = 3;
    pub const NOTIMP: u16 = 4;
    pub const REFUSED: u16 = 5;
    pub const YXDOMAIN: u16 = 6;
    pub const NOTAUTH: u16 = 9;
    /// Extended RCODE 16, carried partly in the OPT record (RFC 6891 section 6.1.3).
    pub const BADVERS: u16 = 16;
    /// TSIG error BADKEY (RFC 8945 section 3): the key is not known to the server.
    pub const BADKEY: u16 = 17;

    /// The mnemonic, as metrics label responses.
    pub fn name(rcode: u16) -> &'static str {
        match rcode {
            NOERROR => "NOERROR",
            FORMERR => "FORMERR",
            SERVFAIL => "SERVFAIL",
            NXDOMAIN => "NXDOMAIN",
            NOTIMP => "NOTIMP",
            REFUSED => "REFUSED",
            YXDOMAIN => "YXDOMAIN",
            NOTAUTH => "NOTAUTH",
            BADVERS => "BADVERS",
            _ => "OTHER",
        }
    }
}

/// EDNS(0) option codes.
pub mod option {
    /// DNS cookies (RFC 7873).
    pub const COOKIE: u16 = 10;
    /// Extended DNS Error (RFC 8914).
    pub const EDE: u16 = 15;
}

/// Extended DNS Error info-codes we send (RFC 8914 section 4).
pub mod ede {
    /// "Not Authoritative": the query is for no zone we serve (Knot and NSD send it with REFUSED).
    pub const NOT_AUTHORITATIVE: u16 = 20;
}
