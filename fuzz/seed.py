#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpus (fuzz/corpus/<target>/) from the conformance zones.

Run from the repository root: python3 fuzz/seed.py. The files are committed; libFuzzer adds what it
finds to a scratch copy (see `cargo xtask fuzz`), so the repository only holds these seeds.
"""
import json
import os
import struct

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")


def name(text):
    out = b""
    for label in text.strip(".").split("."):
        if label:
            out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def header(id_, flags, qd, an, ns, ar):
    return struct.pack(">HHHHHH", id_, flags, qd, an, ns, ar)


def opt(payload=1232, do=False, options=b""):
    return b"\0" + struct.pack(">HHBBHH", 41, payload, 0, 0, 0x8000 if do else 0, len(options)) + options


def query(qname, qtype, edns=None, id_=0x1234, extra=b"", ar=None):
    body = name(qname) + struct.pack(">HH", qtype, 1)
    additional = b""
    count = 0
    if edns is not None:
        additional += opt(*edns)
        count += 1
    return header(id_, 0x0100, 1, 0, 0, count if ar is None else ar) + body + additional + extra


def rr(owner, rtype, rdata, ttl=3600, cls=1):
    return name(owner) + struct.pack(">HHIH", rtype, cls, ttl, len(rdata)) + rdata


def soa(serial, origin="example.test"):
    return name("ns1." + origin) + name("hostmaster." + origin) + struct.pack(">IIIII", serial, 7200, 3600, 1209600, 300)


def a(ip):
    return bytes(int(x) for x in ip.split("."))


def response(id_, records, qname="example.test", qtype=252):
    return header(id_, 0x8400, 1, len(records), 0, 0) + name(qname) + struct.pack(">HH", qtype, 1) + b"".join(records)


def framed(*messages):
    return b"".join(struct.pack(">H", len(m)) + m for m in messages)


def journal_payload(lists):
    """A changeset as the journal stores it: four counted lists of (owner, type, ttl, rdata)."""
    out = b""
    for records in lists:
        out += struct.pack(">I", len(records))
        for owner, rtype, ttl, rdata in records:
            out += name(owner) + struct.pack(">HIH", rtype, ttl, len(rdata)) + rdata
    return out


def write(target, label, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, label), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def main():
    names = ["example.test", "www.example.test", "MiXeD.example.test", "alias.example.test", "chain1.example.test",
             "x.wild.example.test", "child.example.test", "nothere.example.test", "sub.example.test",
             "secure.test", "www.secure.test", "nx.secure.test", "nsec3.test", "nx.nsec3.test",
             "1.2.0.192.in-addr.arpa", "nothere.invalid"]
    types = [1, 28, 15, 16, 6, 2, 255, 43, 48, 65]
    for i, n in enumerate(names):
        t = types[i % len(types)]
        write("dns_message", f"q-{n}-{t}", query(n, t))
        write("dns_message", f"q-{n}-{t}-edns", query(n, t, edns=(1232, i % 2 == 0)))
    cookie = struct.pack(">HH", 10, 8) + b"clientck"
    write("dns_message", "q-cookie", query("www.example.test", 1, edns=(1232, False, cookie)))
    write("dns_message", "q-nsid", query("www.example.test", 1, edns=(4096, True, struct.pack(">HH", 3, 0))))
    tsig_rdata = name("hmac-sha256") + b"\0\0\0\0\0\1" + struct.pack(">HH", 300, 32) + b"\xaa" * 32 + struct.pack(">HHH", 0x1234, 0, 0)
    write("dns_message", "q-tsig", query("example.test", 6, extra=rr("xfr-key", 250, tsig_rdata, ttl=0, cls=255), ar=1))
    write("dns_message", "q-chaos", header(7, 0x0100, 1, 0, 0, 0) + name("version.bind") + struct.pack(">HH", 16, 3))
    write("dns_message", "q-notify", header(8, 0x2000, 1, 0, 0, 0) + name("example.test") + struct.pack(">HH", 6, 1))
    write("dns_message", "q-compressed-opt", query("www.example.test", 1, edns=(512, False)) + b"\xc0\x0c")

    for f in ["example.test.zone", "sub.example.test.zone", "2.0.192.in-addr.arpa.zone", "secure.test.zone"]:
        with open(os.path.join(ROOT, "testdata", "conformance", f), "rb") as src:
            write("zone_file", f, src.read())
    write("zone_file", "include.zone", "$ORIGIN example.test.\n$TTL 60\n@ SOA ns1 host 1 2 3 4 5\n@ NS ns1\nns1 A 192.0.2.1\n$INCLUDE example.test.zone\n")
    write("zone_file", "generic.zone", "@ 60 IN SOA ns1 host 1 2 3 4 5\n@ 60 IN NS ns1\nns1 60 A 192.0.2.1\nx 60 TYPE65280 \\# 3 abcdef\nd 60 DNAME example.net.\n*.w 60 TXT \"a\" \"b\"\n")

    current = 2024010101
    axfr = [rr("example.test", 6, soa(current + 1)), rr("example.test", 2, name("ns1.example.test")),
            rr("ns1.example.test", 1, a("192.0.2.53")), rr("www.example.test", 1, a("192.0.2.80")),
            rr("example.test", 6, soa(current + 1))]
    write("xfr", "axfr-one-message", b"\0" + framed(response(0x1234, axfr)))
    write("xfr", "axfr-two-messages", b"\0" + framed(response(0x1234, axfr[:2]), response(0x1234, axfr[2:])))
    ixfr = [rr("example.test", 6, soa(current + 1)), rr("example.test", 6, soa(current)),
            rr("www.example.test", 1, a("192.0.2.80")), rr("example.test", 6, soa(current + 1)),
            rr("www.example.test", 1, a("192.0.2.90")), rr("example.test", 6, soa(current + 1))]
    write("xfr", "ixfr", b"\1" + framed(response(0x1234, ixfr, qtype=251)))
    write("xfr", "ixfr-up-to-date", b"\1" + framed(response(0x1234, [rr("example.test", 6, soa(current))], qtype=251)))
    soa_old = ("example.test", 6, 3600, soa(current))
    soa_new = ("example.test", 6, 3600, soa(current + 1))
    write("xfr", "journal-changeset", b"\0" + framed(journal_payload([[soa_old], [("www.example.test", 1, 300, a("192.0.2.80"))],
                                                                     [soa_new], [("www.example.test", 1, 300, a("192.0.2.81"))]])))

    plain = query("example.test", 6)
    write("tsig", "sign-query", b"\1" + plain)
    write("tsig", "sign-notify", b"\1" + header(9, 0x2400, 1, 1, 0, 0) + name("example.test") + struct.pack(">HH", 6, 1) + rr("example.test", 6, soa(current)))
    signed = header(0x1234, 0x0000, 1, 0, 0, 1) + name("example.test") + struct.pack(">HH", 252, 1) + rr("xfr-key", 250, tsig_rdata, ttl=0, cls=255)
    write("tsig", "verify-request", b"\0" + signed)
    write("tsig", "stream", b"\2" + framed(response(0x1234, axfr[:2]) , response(0x1234, axfr[2:])))

    bodies = {
        "put-a": {"op": "put", "name": "www", "type": "A", "ttl": 300, "rdata": ["192.0.2.9", "192.0.2.10"]},
        "put-mx": {"op": "put", "name": "@", "type": "MX", "ttl": 60, "rdata": ["10 mail.example.test."]},
        "put-txt": {"op": "put", "name": "t.example.test.", "type": "txt", "ttl": 0, "rdata": ["\"hello world\" \"x\""]},
        "put-cname": {"op": "put", "name": "new", "type": "CNAME", "ttl": 60, "rdata": ["www"]},
        "delete": {"op": "delete", "name": "www", "type": "AAAA"},
        "batch": {"changes": [{"op": "put", "name": "a.b", "type": "AAAA", "ttl": 5, "rdata": ["2001:db8::5"]},
                              {"op": "delete", "name": "mail", "type": "A"},
                              {"op": "put", "name": "_sip._tcp", "type": "SRV", "ttl": 60, "rdata": ["0 5 5060 www"]}]},
        "bad-soa": {"op": "put", "name": "@", "type": "SOA", "ttl": 60, "rdata": ["a b 1 2 3 4 5"]},
    }
    for label, body in bodies.items():
        write("api_json", label, json.dumps(body))


if __name__ == "__main__":
    main()
