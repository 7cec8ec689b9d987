#!/usr/bin/env python3
"""Generates testdata/xdp/cases.txt: golden packets for the XDP program.

The oracle is independent of the program: dnspython renders every map entry's answer data and
every expected reply message, scapy builds the frames and computes the IP and UDP checksums.
CI does not run this; the output is committed. Regenerate with:

    python3 -m venv /tmp/genvenv && /tmp/genvenv/bin/pip install scapy dnspython
    /tmp/genvenv/bin/python testdata/xdp/gen.py > testdata/xdp/cases.txt
"""

import struct

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from scapy.all import (
    ARP,
    IP,
    TCP,
    UDP,
    Dot1AD,
    Dot1Q,
    Ether,
    IPOption,
    IPv6,
    IPv6ExtHdrHopByHop,
    Raw,
)

OUR_PAYLOAD = 1232
DNS_PORT = 53
CLIENT_MAC, SERVER_MAC = "02:00:00:00:00:01", "02:00:00:00:00:02"
CLIENT4, SERVER4 = "192.0.2.1", "192.0.2.53"
CLIENT6, SERVER6 = "2001:db8::1", "2001:db8::53"
CLIENT_PORT = 40000
SIGNED = 1  # VALUE_FLAG_SIGNED

out = []


def emit(*lines):
    out.extend(lines)
    out.append("")


# ---------------------------------------------------------------- map entries (the "zone")

ZONE = {}  # (lowercase owner text, rdtype) -> (rcode, answer rrsets, authority rrsets, value_flags)


def rr(owner, rdtype, *rdatas, ttl=3600):
    return dns.rrset.from_text(owner, ttl, "IN", rdtype, *rdatas)


SOA = rr("example.com.", "SOA", "ns1.example.com. hostmaster.example.com. 2024010101 7200 3600 1209600 300")
BIG_TXT = ['"' + chr(ord("a") + i) * 200 + '"' for i in range(3)]
LONG_NAME = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61]) + "."  # 255 bytes in wire form
assert len(dns.name.from_text(LONG_NAME).to_wire()) == 255

ZONE[("www.example.com.", "A")] = (0, [rr("www.example.com.", "A", "192.0.2.80")], [], 0)
ZONE[("www.example.com.", "AAAA")] = (0, [rr("www.example.com.", "AAAA", "2001:db8::80")], [], 0)
ZONE[("multi.example.com.", "A")] = (
    0, [rr("multi.example.com.", "A", "192.0.2.1", "192.0.2.2", "192.0.2.3")], [], 0)
ZONE[("mail.example.com.", "A")] = (0, [rr("mail.example.com.", "A", "192.0.2.25")], [], 0)
ZONE[("odd.example.com.", "TXT")] = (0, [rr("odd.example.com.", "TXT", '"hi!!"')], [], 0)
ZONE[("big.example.com.", "TXT")] = (0, [rr("big.example.com.", "TXT", *BIG_TXT)], [], 0)
ZONE[("nope.example.com.", "A")] = (3, [], [SOA], 0)
ZONE[("signed.example.net.", "A")] = (0, [rr("signed.example.net.", "A", "198.51.100.7")], [], SIGNED)
ZONE[(".", "SOA")] = (0, [rr(".", "SOA", "a.root. b.root. 1 2 3 4 5")], [], 0)
ZONE[(LONG_NAME, "A")] = (0, [rr(LONG_NAME, "A", "192.0.2.255")], [], 0)


def render(query):
    """The full reply dnspython renders for `query` from ZONE, or None on a miss."""
    q = query.question[0]
    entry = ZONE.get((q.name.to_text().lower(), dns.rdatatype.to_text(q.rdtype)))
    if entry is None:
        return None
    rcode, answer, authority, _ = entry
    r = dns.message.make_response(query, our_payload=OUR_PAYLOAD)
    r.flags |= dns.flags.AA | (query.flags & dns.flags.CD)
    r.set_rcode(rcode)
    if query.edns >= 0:
        # Our payload, DO echoed, no options (what the program promises).
        r.use_edns(0, query.ednsflags & dns.flags.DO, OUR_PAYLOAD)
    r.answer = list(answer)
    r.authority = list(authority)
    # want_shuffle=False: dnspython shuffles RRsets by default, the daemon renders in order.
    return r.to_wire(want_shuffle=False)


def csum_be_words(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def emit_entries():
    for (owner, rdtype), (rcode, answer, authority, vflags) in ZONE.items():
        query = dns.message.make_query(owner, rdtype)
        query.flags = 0
        wire = render(query)
        qlen = len(dns.name.from_text(owner).to_wire())
        data = wire[12 + qlen + 4:]
        flags, _qd, an, ns, ar = struct.unpack("!HHHHH", wire[2:12])
        emit(
            "[answer]",
            f"owner {owner}",
            f"qtype {dns.rdatatype.from_text(rdtype)}",
            f"flags 0x{flags:04x}",
            f"ancount {an}",
            f"nscount {ns}",
            f"arcount {ar}",
            f"value_flags {vflags}",
            f"data_csum 0x{csum_be_words(data):04x}",
            f"data {data.hex()}",
        )


# ---------------------------------------------------------------- frames


def l2(tags, src=CLIENT_MAC, dst=SERVER_MAC):
    """Ethernet plus VLAN tags; `tags` is a list of ("ad"|"q", vid)."""
    if not tags:
        return Ether(src=src, dst=dst)
    layer = Ether(src=src, dst=dst, type=0x88A8 if tags[0][0] == "ad" else 0x8100)
    for i, (kind, vid) in enumerate(tags):
        cls = Dot1AD if kind == "ad" else Dot1Q
        layer = layer / cls(vlan=vid)
    return layer


def ip_layer(v6, src, dst, **kw):
    if v6:
        return IPv6(src=src, dst=dst, **kw)
    return IP(src=src, dst=dst, **kw)


def query_frame(dns_wire, v6=False, tags=(), sport=CLIENT_PORT, dport=DNS_PORT, udp_kw=None, ip_kw=None):
    c, s = (CLIENT6, SERVER6) if v6 else (CLIENT4, SERVER4)
    ip_kw = dict(ip_kw or {})
    if v6:
        ip_kw.setdefault("hlim", 57)
        ip_kw.setdefault("fl", 0x12345)
    else:
        ip_kw.setdefault("ttl", 57)
        ip_kw.setdefault("id", 0x4242)
        ip_kw.setdefault("flags", "DF")
    return l2(list(tags)) / ip_layer(v6, c, s, **ip_kw) / UDP(sport=sport, dport=dport, **(udp_kw or {})) / Raw(dns_wire)


def reply_frame(query_pkt, dns_wire):
    """The reply the program must produce: addresses and ports swapped, TTL/hop limit 64, fresh
    lengths and checksums (scapy computes them), VLAN tags and other IP fields kept."""
    q = query_pkt
    r = q.copy()
    r[Ether].src, r[Ether].dst = q[Ether].dst, q[Ether].src
    if IPv6 in r:
        r[IPv6].src, r[IPv6].dst = q[IPv6].dst, q[IPv6].src
        r[IPv6].hlim = 64
        r[IPv6].plen = None
    else:
        r[IP].src, r[IP].dst = q[IP].dst, q[IP].src
        r[IP].ttl = 64
        r[IP].len = None
        r[IP].chksum = None
    r[UDP].sport, r[UDP].dport = q[UDP].dport, q[UDP].sport
    r[UDP].len = None
    r[UDP].chksum = None
    r[UDP].remove_payload()
    r = r / Raw(dns_wire)
    return bytes(r.__class__(bytes(r)))


def mkq(name, rdtype="A", flags=0, edns=-1, payload=4096, do=False, options=None, rdclass="IN", qid=0xBEEF):
    q = dns.message.make_query(name, rdtype, rdclass=rdclass, use_edns=edns if edns >= 0 else False,
                               payload=payload, want_dnssec=do, options=options, id=qid)
    q.flags = flags
    return q


def tx_case(name, desc, query, v6=False, tags=(), pad=b"", udp_kw=None):
    wire = query.to_wire()
    pkt = query_frame(wire, v6=v6, tags=tags, udp_kw=udp_kw)
    frame_in = bytes(pkt) + pad
    expected = render(dns.message.from_wire(wire))
    assert expected is not None, name
    rcode = expected[3] & 0xF
    emit("[case]", f"name {name}", f"desc {desc}", f"in {frame_in.hex()}", "action TX",
         f"rcode {rcode}", f"out {reply_frame(pkt, expected).hex()}")


def pass_case(name, desc, frame_in, reason, action="PASS"):
    if not isinstance(frame_in, bytes):
        frame_in = bytes(frame_in)
    emit("[case]", f"name {name}", f"desc {desc}", f"in {frame_in.hex()}", f"action {action}",
         f"reason {reason}")


def raw_dns(hdr, body):
    """A DNS message from header fields (id, flags, qd, an, ns, ar) and raw body bytes."""
    return struct.pack("!HHHHHH", *hdr) + body


def qname_wire(name):
    return dns.name.from_text(name).to_wire()


def cut_frame(dns_wire, v6=False):
    """A consistent datagram (IP and UDP lengths match) carrying a truncated DNS message."""
    return query_frame(dns_wire, v6=v6)


# ---------------------------------------------------------------- cases


def emit_cases():
    # Answered. Order matters in one place: the 255-byte name runs before short names, so a
    # stale key tail in the per-CPU scratch would turn the later hits into misses.
    tx_case("ipv4_a_hit", "IPv4 A query, qname length odd (17)", mkq("www.example.com."))
    tx_case("ipv6_aaaa_hit", "IPv6 AAAA query", mkq("www.example.com.", "AAAA"), v6=True)
    tx_case("long_name_hit", "255-byte qname (the maximum) answered", mkq(LONG_NAME))
    tx_case("ipv4_a_hit_after_long", "short name right after the 255-byte one", mkq("www.example.com.", qid=7))
    tx_case("ipv4_even_qname", "qname length even (18): no byte swap of the answer sum", mkq("mail.example.com."))
    tx_case("ipv6_even_qname", "IPv6, even qname length", mkq("mail.example.com.", qid=9), v6=True)
    tx_case("rrset_multi", "three A records in the RRset", mkq("multi.example.com."))
    tx_case("case_0x20", "0x20 mixed-case qname: matched lowercased, echoed as sent",
            mkq("wWw.ExAmPlE.cOm."))
    tx_case("case_0x20_v6", "0x20 mixed case over IPv6", mkq("MuLtI.eXaMpLe.CoM."), v6=True)
    tx_case("rd_echoed", "RD set in the query is echoed", mkq("www.example.com.", flags=dns.flags.RD))
    tx_case("cd_echoed", "CD and RD set in the query are echoed",
            mkq("www.example.com.", flags=dns.flags.RD | dns.flags.CD))
    tx_case("edns_hit", "EDNS query: OPT appended with payload 1232, DO=0",
            mkq("www.example.com.", edns=0, payload=4096))
    tx_case("edns_do_echoed", "EDNS DO=1 on an unsigned entry: answered, DO echoed",
            mkq("www.example.com.", edns=0, do=True), v6=True)
    tx_case("edns_small_payload", "EDNS payload 256 counts as 512",
            mkq("www.example.com.", edns=0, payload=256))
    tx_case("edns_option_dropped", "EDNS options (NSID, unknown) in the query: not echoed, packet shrinks",
            mkq("www.example.com.", edns=0, options=[dns.edns.GenericOption(3, b""),
                                                    dns.edns.GenericOption(65001, b"\x01\x02\x03\x04")]))
    tx_case("edns_eight_options", "eight options (the walk's bound), none a COOKIE: answered",
            mkq("www.example.com.", edns=0, options=[dns.edns.GenericOption(65001 + i, b"") for i in range(8)]),
            v6=True)
    tx_case("edns_odd_data", "odd answer length with EDNS: the OPT starts at an odd offset",
            mkq("odd.example.com.", "TXT", edns=0))
    tx_case("edns_odd_data_even_qname", "odd answer, even qname, v6: OPT at odd offset",
            mkq("odd.example.com.", "TXT", edns=0, do=True), v6=True)
    tx_case("big_with_edns", "answer over 512 bytes, EDNS 1232: answered (packet grows)",
            mkq("big.example.com.", "TXT", edns=0, payload=1232))
    tx_case("nxdomain", "NXDOMAIN entry with SOA in authority: rcode 3",
            mkq("nope.example.com."))
    tx_case("signed_no_do", "signed entry, EDNS with DO=0: answered", mkq("signed.example.net.", edns=0))
    tx_case("signed_no_edns", "signed entry without EDNS: answered", mkq("signed.example.net."))
    tx_case("vlan_one", "one 802.1Q tag, kept in the reply", mkq("www.example.com."), tags=[("q", 100)])
    tx_case("vlan_two", "802.1ad + 802.1Q tags, kept", mkq("www.example.com.", "AAAA"),
            v6=True, tags=[("ad", 10), ("q", 20)])
    tx_case("eth_padding", "root SOA in a 59-byte frame padded to 60: padding removed",
            mkq(".", "SOA"), pad=b"\0")
    tx_case("eth_padding_junk", "20 bytes of non-zero junk after the datagram: removed",
            mkq("www.example.com."), pad=b"\xaa" * 20)
    tx_case("udp_csum_zero_in_query", "IPv4 query without UDP checksum: reply has one",
            mkq("www.example.com."), udp_kw={"chksum": 0})
    tx_case("udp_csum_partial_in_query", "bogus query checksum (as veth tx offload leaves it)",
            mkq("www.example.com."), udp_kw={"chksum": 0x1234})

    www = mkq("www.example.com.").to_wire()

    pass_case("miss", "name not in the map", query_frame(mkq("ftp.example.com.").to_wire()), "PASS_MISS")
    pass_case("other_qtype", "qtype MX for a name that only has A/AAAA",
              query_frame(mkq("www.example.com.", "MX").to_wire()), "PASS_MISS")
    pass_case("max_name_miss", "a valid 255-byte name not in the map (not a qname error)",
              query_frame(mkq(LONG_NAME.replace("a", "e", 1)).to_wire()), "PASS_MISS")
    pass_case("qclass_ch", "QCLASS CH", query_frame(mkq("www.example.com.", "TXT", rdclass="CH").to_wire()),
              "PASS_QCLASS")
    pass_case("qclass_any", "QCLASS ANY", query_frame(mkq("www.example.com.", rdclass="ANY").to_wire()),
              "PASS_QCLASS")
    pass_case("tcp", "DNS over TCP",
              l2([]) / IP(src=CLIENT4, dst=SERVER4) / TCP(sport=CLIENT_PORT, dport=53, flags="PA")
              / Raw(struct.pack("!H", len(www)) + www), "PASS_NOT_DNS")
    pass_case("other_port", "UDP to port 5353", query_frame(www, dport=5353), "PASS_NOT_DNS")
    pass_case("icmp", "ICMP echo", l2([]) / IP(src=CLIENT4, dst=SERVER4, proto=1) / Raw(b"\x08\0\0\0\0\0\0\0"),
              "PASS_NOT_DNS")
    resp = dns.message.make_response(mkq("www.example.com.")).to_wire()
    pass_case("qr_set", "a response (QR=1) to our port", query_frame(resp), "PASS_HEADER")
    notify = mkq("www.example.com.", "SOA")
    notify.set_opcode(dns.opcode.NOTIFY)
    pass_case("opcode_notify", "opcode NOTIFY", query_frame(notify.to_wire()), "PASS_HEADER")
    q1 = qname_wire("www.example.com.") + b"\0\x01\0\x01"
    pass_case("qdcount_2", "two questions", query_frame(raw_dns((1, 0, 2, 0, 0, 0), q1 + q1)), "PASS_HEADER")
    a_rr = b"\xc0\x0c\0\x01\0\x01\0\0\x0e\x10\0\x04\xc0\0\x02\x50"
    pass_case("ancount_1", "ANCOUNT=1 in a query", query_frame(raw_dns((1, 0, 1, 1, 0, 0), q1 + a_rr)),
              "PASS_HEADER")
    pass_case("nscount_1", "NSCOUNT=1 in a query", query_frame(raw_dns((1, 0, 1, 0, 1, 0), q1 + a_rr)),
              "PASS_HEADER")
    opt = b"\0\0\x29\x10\0\0\0\0\0\0\0"
    pass_case("arcount_2", "ARCOUNT=2", query_frame(raw_dns((1, 0, 1, 0, 0, 2), q1 + opt + a_rr)), "PASS_HEADER")
    pass_case("tc_set", "TC=1 in a query", query_frame(raw_dns((1, 0x0200, 1, 0, 0, 0), q1)), "PASS_HEADER")
    pass_case("trailing_no_ar", "bytes after the question with ARCOUNT=0",
              query_frame(raw_dns((1, 0, 1, 0, 0, 0), q1 + b"junk")), "PASS_HEADER")
    pass_case("non_opt_additional", "ARCOUNT=1 holding an A record",
              query_frame(raw_dns((1, 0, 1, 0, 0, 1), q1 + a_rr)), "PASS_EDNS")
    pass_case("ar_1_missing", "ARCOUNT=1 but the message ends after the question",
              query_frame(raw_dns((1, 0, 1, 0, 0, 1), q1)), "PASS_EDNS")
    pass_case("edns_version_1", "EDNS version 1 (daemon answers BADVERS)",
              query_frame(mkq("www.example.com.", edns=1).to_wire()), "PASS_EDNS")
    pass_case("opt_trailing_garbage", "bytes after the OPT record",
              query_frame(mkq("www.example.com.", edns=0).to_wire() + b"\0\0\0"), "PASS_EDNS")
    pass_case("opt_rdlen_too_long", "OPT RDLEN runs past the message",
              query_frame(raw_dns((1, 0, 1, 0, 0, 1), q1 + b"\0\0\x29\x10\0\0\0\0\0\0\x08\0\x0a\0\x04")),
              "PASS_EDNS")
    pass_case("cookie_client_only", "COOKIE with a client cookie: the daemon answers with a server cookie",
              query_frame(mkq("www.example.com.", edns=0, options=[
                  dns.edns.GenericOption(10, b"\x01\x02\x03\x04\x05\x06\x07\x08")]).to_wire()), "PASS_COOKIE")
    pass_case("cookie_after_options", "COOKIE with a server cookie after NSID and padding",
              query_frame(mkq("www.example.com.", edns=0, options=[
                  dns.edns.GenericOption(3, b""), dns.edns.GenericOption(12, b"\0" * 7),
                  dns.edns.GenericOption(10, bytes(range(24)))]).to_wire(), v6=True), "PASS_COOKIE")
    pass_case("cookie_malformed", "COOKIE of 5 bytes (the daemon answers FORMERR)",
              query_frame(mkq("www.example.com.", edns=0, options=[
                  dns.edns.GenericOption(10, b"\x01\x02\x03\x04\x05")]).to_wire()), "PASS_COOKIE")
    pass_case("edns_nine_options", "nine options, one more than the walk's bound",
              query_frame(mkq("www.example.com.", edns=0, options=[
                  dns.edns.GenericOption(65001 + i, b"") for i in range(9)]).to_wire()), "PASS_EDNS")
    pass_case("edns_option_overruns", "an option longer than the OPT RDATA (the daemon answers FORMERR)",
              query_frame(raw_dns((1, 0, 1, 0, 0, 1), q1 + b"\0\0\x29\x10\0\0\0\0\0\0\x08\xfd\xe9\0\x09\1\2\3\4")),
              "PASS_EDNS")
    pass_case("edns_option_header_cut", "OPT RDATA of 2 bytes: half an option header",
              query_frame(raw_dns((1, 0, 1, 0, 0, 1), q1 + b"\0\0\x29\x10\0\0\0\0\0\0\x02\0\x03")),
              "PASS_EDNS")
    pass_case("opt_not_root", "OPT with a non-root owner name",
              query_frame(raw_dns((1, 0, 1, 0, 0, 1), q1 + b"\xc0\x0c\0\x29\x10\0\0\0\0\0\0\0")), "PASS_EDNS")
    pass_case("signed_do", "DO=1 for a signed entry: the daemon adds RRSIGs",
              query_frame(mkq("signed.example.net.", edns=0, do=True).to_wire()), "PASS_DNSSEC")
    pass_case("too_big_no_edns", "answer over 512 bytes without EDNS: the daemon truncates",
              query_frame(mkq("big.example.com.", "TXT").to_wire()), "PASS_TOO_BIG")
    pass_case("too_big_edns_512", "answer over 512 bytes, EDNS payload 512",
              query_frame(mkq("big.example.com.", "TXT", edns=0, payload=512).to_wire()), "PASS_TOO_BIG")
    pass_case("compression_pointer", "compression pointer in the qname",
              query_frame(raw_dns((1, 0, 1, 0, 0, 0), b"\x03www\xc0\x0c\0\x01\0\x01")), "PASS_QNAME")
    pass_case("label_64", "a 64-byte label",
              query_frame(raw_dns((1, 0, 1, 0, 0, 0), b"\x40" + b"a" * 64 + b"\0\0\x01\0\x01")), "PASS_QNAME")
    pass_case("label_type_0x40", "extended label type 0x41",
              query_frame(raw_dns((1, 0, 1, 0, 0, 0), b"\x41" + b"a" * 1 + b"\0\0\x01\0\x01")), "PASS_QNAME")
    pass_case("name_257", "a 257-byte name",
              query_frame(raw_dns((1, 0, 1, 0, 0, 0), (b"\x3f" + b"a" * 63) * 4 + b"\0\0\x01\0\x01")),
              "PASS_QNAME")

    full = bytes(query_frame(www))
    pass_case("trunc_ethernet_only", "Ethernet header with IPv4 ethertype and nothing else",
              full[:14], "PASS_IP_UNUSUAL")
    pass_case("trunc_half_ip", "half an IPv4 header", full[:24], "PASS_IP_UNUSUAL")
    pass_case("trunc_half_ipv6", "half an IPv6 header", bytes(query_frame(www, v6=True))[:34], "PASS_IP_UNUSUAL")
    pass_case("trunc_half_udp", "half a UDP header", full[:38], "PASS_NOT_DNS")
    pass_case("trunc_dns_header", "datagram holding 6 bytes of DNS header", cut_frame(www[:6]), "PASS_HEADER")
    pass_case("trunc_qname", "datagram ending inside the qname", cut_frame(www[:17]), "PASS_QNAME")
    pass_case("trunc_qtype", "datagram ending inside QTYPE", cut_frame(www[:12 + 17 + 1]), "PASS_QNAME")
    pass_case("trunc_qclass_v6", "IPv6 datagram ending inside QCLASS", cut_frame(www[:-1], v6=True),
              "PASS_QNAME")
    pass_case("trunc_header_only", "DNS header with QDCOUNT=1 and no question", cut_frame(www[:12]),
              "PASS_QNAME")

    pass_case("ipv4_options", "IPv4 header with options (IHL 6)",
              query_frame(www, ip_kw={"options": [IPOption(b"\x01\x01\x01\x00")]}), "PASS_IP_UNUSUAL")
    pass_case("ipv4_first_fragment", "IPv4 first fragment (MF)", query_frame(www, ip_kw={"flags": "MF"}),
              "PASS_IP_UNUSUAL")
    pass_case("ipv4_later_fragment", "IPv4 non-first fragment (offset 8)",
              l2([]) / IP(src=CLIENT4, dst=SERVER4, proto=17, frag=1) / Raw(b"\x9c\x40\0\x35\0\x10\0\0" + www),
              "PASS_IP_UNUSUAL")
    pass_case("ipv6_hop_by_hop", "IPv6 with a hop-by-hop extension header",
              l2([]) / IPv6(src=CLIENT6, dst=SERVER6) / IPv6ExtHdrHopByHop() / UDP(sport=CLIENT_PORT, dport=53)
              / Raw(www), "PASS_IP_UNUSUAL")
    pass_case("arp", "ARP request", Ether(src=CLIENT_MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(psrc=CLIENT4, pdst=SERVER4),
              "PASS_NOT_IP")
    pass_case("vlan_three", "three VLAN tags", l2([("ad", 1), ("q", 2), ("q", 3)]) / IP(src=CLIENT4, dst=SERVER4)
              / UDP(sport=CLIENT_PORT, dport=53) / Raw(www), "PASS_NOT_IP")

    # Structurally broken datagrams to our port: dropped (the kernel would drop them too).
    pass_case("udp_len_short", "UDP length 4 (< header)", query_frame(www, udp_kw={"len": 4}),
              "DROP_MALFORMED", action="DROP")
    pass_case("udp_len_long", "UDP length beyond the IP payload", query_frame(www, udp_kw={"len": 8 + len(www) + 10}),
              "DROP_MALFORMED", action="DROP")
    pass_case("ip_len_beyond_frame", "frame cut 5 bytes short of the IPv4 total length", full[:-5],
              "DROP_MALFORMED", action="DROP")
    pass_case("ipv4_tot_len_tiny", "IPv4 total length 20 with a UDP header present",
              query_frame(www, ip_kw={"len": 20}), "DROP_MALFORMED", action="DROP")
    pass_case("ipv6_plen_beyond_frame", "IPv6 payload length beyond the frame",
              bytes(query_frame(www, v6=True))[:-3], "DROP_MALFORMED", action="DROP")


if __name__ == "__main__":
    out.append("# Generated by testdata/xdp/gen.py (see README.md). Do not edit by hand.")
    out.append("")
    emit_entries()
    emit_cases()
    print("\n".join(out))
