#!/usr/bin/python3
"""Writes the seed corpora for the fuzz harnesses into tests/fuzz/corpus/<name>/.

Seeds are small valid (and a few deliberately broken) datagrams built here, plus single UDP
payloads taken from fixtures/*.pcap (classic pcap, Ethernet / Linux SLL / raw IP) when those
captures exist, plus the hostile IPFIX fixtures cut into messages for the collector harness.
The collector harness reads a sequence of datagrams, each behind a 2-byte big-endian length;
the replay harness reads a link-type selector byte (REPLAY_LINKTYPES) and one packet.
The control harness reads what a client sends (request lines): every command of the table
in daemon/control.c with typical and edge arguments, and broken framing. The config harness
reads a config file: spamflow.conf, every *.conf under fixtures/ and tests/, and hand-made
edge cases and broken files. The cluster harness reads a flow batch or an alert message as
cluster/wire.c writes them (an encoder of their own here), and broken ones.
Stdlib only; re-running rewrites the seed-*/pcap-* files and leaves fuzzer-found entries.

Usage: make_corpus.py [--root REPO_ROOT] [--max-per-capture N] [--only HARNESS...]
"""

import argparse
import os
import struct
import sys

EXPORT_S = 1700000000


def u8(v):
    return struct.pack(">B", v & 0xFF)


def u16(v):
    return struct.pack(">H", v & 0xFFFF)


def u32(v):
    return struct.pack(">I", v & 0xFFFFFFFF)


def u64(v):
    return struct.pack(">Q", v & 0xFFFFFFFFFFFFFFFF)


def ip4(s):
    return bytes(int(x) for x in s.split("."))


def sett(set_id, body):
    """A v9 flowset or IPFIX set: the length includes its 4-byte header."""
    return u16(set_id) + u16(len(body) + 4) + body


def fields(specs):
    out = b""
    for spec in specs:
        ie, ln = spec[0], spec[1]
        pen = spec[2] if len(spec) > 2 else 0
        out += u16(ie | 0x8000 if pen else ie) + u16(ln) + (u32(pen) if pen else b"")
    return out


def template(tid, specs):
    return u16(tid) + u16(len(specs)) + fields(specs)


# ---- NetFlow v5 -------------------------------------------------------------------------

def v5_record(src, dst, pkts, octets, first, last, sport, dport, flags, proto):
    return (ip4(src) + ip4(dst) + ip4("0.0.0.0") + u16(1) + u16(2) + u32(pkts) + u32(octets)
            + u32(first) + u32(last) + u16(sport) + u16(dport) + u8(0) + u8(flags) + u8(proto)
            + u8(0) + u16(0) + u16(0) + u8(24) + u8(24) + u16(0))


def v5(records, seq=0, sampling=0, uptime=100000, engine=(0, 0)):
    hdr = (u16(5) + u16(len(records)) + u32(uptime) + u32(EXPORT_S) + u32(0) + u32(seq)
           + u8(engine[0]) + u8(engine[1]) + u16(sampling))
    return hdr + b"".join(records)


def v5_seeds():
    r1 = v5_record("10.0.0.1", "192.0.2.25", 10, 1500, 90000, 99000, 40000, 25, 0x1B, 6)
    r2 = v5_record("172.16.5.9", "8.8.8.8", 1, 76, 99500, 99600, 5353, 53, 0, 17)
    return {
        "seed-v5-two": v5([r1, r2], seq=1000, engine=(1, 2)),
        "seed-v5-sampled": v5([r1], sampling=0x4000 | 100),
        "seed-v5-thirty": v5([r1] * 30, seq=7),
        "seed-v5-count0": v5([]),
    }


# ---- NetFlow v9 -------------------------------------------------------------------------

V9_T4 = [(8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (6, 1), (2, 4), (1, 4), (22, 4), (21, 4),
         (10, 2)]
V9_T6 = [(27, 16), (28, 16), (7, 2), (11, 2), (4, 1), (2, 8), (1, 8), (48, 1)]
V9_NSEL = [(8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (225, 4), (226, 4), (227, 2), (228, 2),
           (40005, 1), (233, 1), (61, 1), (231, 8), (232, 8), (298, 8), (299, 8)]


def v9(flowsets, seq=0, source_id=0, uptime=100000):
    return (u16(9) + u16(len(flowsets)) + u32(uptime) + u32(EXPORT_S) + u32(seq)
            + u32(source_id) + b"".join(flowsets))


def v9_rec4(src, dst, sport, dport):
    return (ip4(src) + ip4(dst) + u16(sport) + u16(dport) + u8(6) + u8(0x12) + u32(3)
            + u32(180) + u32(90000) + u32(99000) + u16(7))


def v9_options_template(tid, scope, opts):
    return u16(tid) + u16(4 * len(scope)) + u16(4 * len(opts)) + fields(scope) + fields(opts)


def v9_seeds():
    t = sett(0, template(256, V9_T4) + template(257, V9_T6) + template(258, V9_NSEL))
    d4 = sett(256, v9_rec4("10.0.0.1", "192.0.2.25", 40000, 25)
              + v9_rec4("10.0.0.2", "192.0.2.26", 40001, 587) + b"\0\0\0")
    d6 = sett(257, bytes(range(16)) + bytes(range(16, 32)) + u16(443) + u16(51000) + u8(17)
              + u64(5) + u64(900) + u8(5))
    nsel = sett(258, ip4("10.0.0.5") + ip4("198.51.100.7") + u16(1234) + u16(25) + u8(6)
                + ip4("203.0.113.5") + ip4("198.51.100.7") + u16(61000) + u16(25) + u8(3)
                + u8(3) + u8(1) + u64(60) + u64(0) + u64(1) + u64(0))
    opt_t = sett(1, v9_options_template(300, [(1, 4)], [(48, 1), (49, 1), (50, 4)])
                 + v9_options_template(301, [(1, 4)], [(34, 4), (35, 1)]))
    opt_d = sett(300, ip4("10.0.0.254") + u8(5) + u8(2) + u32(1000) + b"\0\0") + sett(
        301, ip4("10.0.0.254") + u32(100) + u8(2) + b"\0\0\0")
    return {
        "seed-v9-template": v9([t]),
        "seed-v9-template-data": v9([t, d4, d6, nsel], seq=1, source_id=7),
        "seed-v9-options": v9([opt_t, opt_d, t, d6], seq=2),
        "seed-v9-data-only": v9([d4]),
        "seed-v9-zero-fields": v9([sett(0, u16(256) + u16(0))]),
        "seed-v9-huge-count": v9([sett(0, u16(256) + u16(65535) + u32(0x00080004))]),
    }


# ---- IPFIX ------------------------------------------------------------------------------

IPFIX_T4 = [(8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (6, 2), (2, 8), (1, 8), (152, 8),
            (153, 8), (100, 4, 9), (10, 4)]
IPFIX_REDUCED = [(8, 4), (12, 4), (2, 3), (1, 4), (22, 4), (21, 4), (48, 2)]
IPFIX_REV = [(27, 16), (28, 16), (1, 8), (2, 8), (1, 8, 29305), (2, 8, 29305), (150, 4),
             (151, 4), (61, 1), (233, 1)]
IPFIX_VARLEN = [(8, 4), (82, 0xFFFF), (7, 2), (11, 2), (156, 8), (157, 8)]
IPFIX_PSAMP = [(8, 4), (12, 4), (305, 4), (306, 4), (158, 4), (159, 4)]


def ipfix(sets, seq=0, domain=0):
    body = b"".join(sets)
    return u16(10) + u16(16 + len(body)) + u32(EXPORT_S) + u32(seq) + u32(domain) + body


def opt_template(tid, scope, specs):
    return u16(tid) + u16(len(specs)) + u16(scope) + fields(specs)


def ipfix_seeds():
    t = sett(2, template(256, IPFIX_T4) + template(257, IPFIX_REDUCED)
             + template(258, IPFIX_REV) + template(259, IPFIX_VARLEN)
             + template(260, IPFIX_PSAMP))
    ms = EXPORT_S * 1000
    d256 = sett(256, ip4("10.0.0.1") + ip4("192.0.2.25") + u16(40000) + u16(25) + u8(6)
                + u16(0x12) + u64(10) + u64(1500) + u64(ms - 10000) + u64(ms - 1000)
                + u32(0xDEADBEEF) + u32(3))
    d257 = sett(257, ip4("10.0.0.2") + ip4("192.0.2.26") + b"\x0a\x0b\x0c" + u32(0x01020304)
                + u32(1000) + u32(2000) + u16(9) + b"\0")
    d258 = sett(258, bytes(16) + bytes(range(16)) + u64(1) + u64(2) + u64(3) + u64(4)
                + u32(EXPORT_S - 5) + u32(EXPORT_S) + u8(1) + u8(2))
    ntp = (EXPORT_S + 2208988800) << 32
    d259 = sett(259, ip4("10.0.0.3") + u8(4) + b"eth0" + u16(1) + u16(2) + u64(ntp) + u64(ntp)
                + ip4("10.0.0.4") + u8(255) + u16(300) + bytes(300) + u16(3) + u16(4)
                + u64(ntp) + u64(ntp))
    d260 = sett(260, ip4("10.0.0.5") + ip4("10.0.0.6") + u32(1) + u32(99) + u32(5000000)
                + u32(1000))
    opt_t = sett(3, opt_template(400, 1, [(48, 2), (34, 4)])
                 + opt_template(401, 1, [(144, 4), (160, 8)]))
    opt_d = sett(400, u16(9) + u32(1000)) + sett(401, u32(1) + u64(ms - 3600000))
    withdraw = sett(2, u16(256) + u16(0) + u16(2) + u16(0)) + sett(3, u16(3) + u16(0))
    return {
        "seed-ipfix-template": ipfix([t]),
        "seed-ipfix-template-data": ipfix([t, d256, d257, d258, d259, d260], seq=5, domain=1),
        "seed-ipfix-options": ipfix([opt_t, opt_d, t, d257]),
        "seed-ipfix-withdraw": ipfix([t, d256, withdraw, d256]),
        "seed-ipfix-padding": ipfix([sett(2, template(256, IPFIX_T4) + bytes(4))]),
        "seed-ipfix-id255": ipfix([sett(2, template(255, IPFIX_T4) + template(256, IPFIX_T4))]),
        "seed-ipfix-huge-count": ipfix([sett(2, u16(256) + u16(65535) + u32(0x00080004))]),
    }


# ---- captures ---------------------------------------------------------------------------

# ---- sFlow v5 (sflow.org "sFlow Version 5") ----

def sf_dgram(samples, agent=b"\xc0\x00\x02\x4d", sub=0, seq=1, uptime=100000):
    atype = 2 if len(agent) == 16 else 1
    return (u32(5) + u32(atype) + agent + u32(sub) + u32(seq) + u32(uptime) + u32(len(samples))
            + b"".join(samples))


def sf_pad(b):
    return b + b"\x00" * ((4 - len(b) % 4) % 4)


def sf_record(fmt, body):
    return u32(fmt) + u32(len(body)) + body


def sf_raw(proto, frame_len, hdr):
    return sf_record(1, u32(proto) + u32(frame_len) + u32(4) + u32(len(hdr)) + sf_pad(hdr))


def sf_flow_sample(records, seq=1, source=7, rate=1, drops=0, expanded=False):
    if expanded:
        head = u32(seq) + u32(0) + u32(source) + u32(rate) + u32(seq * rate) + u32(drops) + \
            u32(0) + u32(7) + u32(0) + u32(9)
    else:
        head = u32(seq) + u32(source) + u32(rate) + u32(seq * rate) + u32(drops) + u32(7) + \
            u32(9)
    body = head + u32(len(records)) + b"".join(records)
    return u32(3 if expanded else 1) + u32(len(body)) + body


def sf_counter_sample(seq=1):
    body = u32(seq) + u32(7) + u32(1) + sf_record(1, b"\x00" * 88)
    return u32(2) + u32(len(body)) + body


def eth(types, payload):
    out = b"\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02"
    for i, t in enumerate(types):
        out += u16(t) + (u16(100 + i) if i + 1 < len(types) else b"")
    return out + payload


def ipv4_hdr(proto, l4, src="10.1.2.3", dst="198.51.100.25", frag=0, ihl=5):
    return (u8(0x40 | ihl) + u8(0) + u16(ihl * 4 + len(l4)) + u16(1) + u16(frag) + u8(64) +
            u8(proto) + u16(0) + ip4(src) + ip4(dst) + b"\x00" * ((ihl - 5) * 4) + l4)


def ipv6_hdr(nh, rest):
    return (u32(0x60000000) + u16(len(rest)) + u8(nh) + u8(64) + b"\x20\x01\x0d\xb8" +
            b"\x00" * 11 + b"\x66" + b"\x20\x01\x0d\xb8" + b"\x00" * 11 + b"\x25" + rest)


def tcp_hdr(sport, dport, flags):
    return u16(sport) + u16(dport) + u32(1) + u32(0) + u8(0x50) + u8(flags) + u16(65535) + u32(0)


def sflow_seeds():
    syn = eth([0x0800], ipv4_hdr(6, tcp_hdr(40000, 25, 2)))
    vlan = eth([0x8100, 0x88A8, 0x0800], ipv4_hdr(17, u16(53) + u16(53) + u16(8) + u16(0)))
    mpls = eth([0x8847], u32((16000 << 12) | 0x40) + u32((17000 << 12) | 0x140) +
               ipv4_hdr(6, tcp_hdr(1, 587, 2)))
    v6 = eth([0x86DD], ipv6_hdr(0, u8(44) + u8(0) + b"\x00" * 6 + u8(6) + u8(0) + u16(1) +
                                u32(9) + tcp_hdr(2, 25, 2)))
    arp = eth([0x0806], b"\x00" * 28)
    sw = sf_record(1001, u32(10) + u32(0) + u32(20) + u32(0))
    s4 = sf_record(3, u32(576) + u32(6) + ip4("10.1.2.3") + ip4("198.51.100.25") + u32(1) +
                   u32(25) + u32(2) + u32(0))
    s6 = sf_record(4, u32(1280) + u32(6) + b"\x20\x01" + b"\x00" * 13 + b"\x66" +
                   b"\x20\x01" + b"\x00" * 13 + b"\x25" + u32(1) + u32(25) + u32(2) + u32(0))
    return {
        "seed-sflow-syn": sf_dgram([sf_flow_sample([sw, sf_raw(1, 64, syn)])]),
        "seed-sflow-kinds": sf_dgram([
            sf_flow_sample([sf_raw(1, 1518, vlan)], seq=1, rate=512),
            sf_flow_sample([sf_raw(1, 128, mpls)], seq=2, rate=512, drops=3),
            sf_flow_sample([sf_raw(1, 90, v6)], seq=3, source=8, rate=2048, expanded=True),
            sf_flow_sample([sf_raw(1, 64, arp), s4], seq=4),
            sf_flow_sample([s6], seq=5, expanded=True),
            sf_flow_sample([sf_raw(11, 40, ipv4_hdr(6, tcp_hdr(3, 25, 2))[:24])], seq=6),
            sf_counter_sample(),
            u32((4300 << 12) | 1) + u32(4) + u32(0),
        ], sub=2, seq=9),
        "seed-sflow-agent6": sf_dgram([sf_flow_sample([sf_raw(1, 64, syn)])],
                                      agent=b"\x20\x01\x0d\xb8" + b"\x00" * 11 + b"\x07"),
        "seed-sflow-lying-count": sf_dgram([sf_flow_sample([sf_raw(1, 64, syn)])])[:24] +
        u32(5) + sf_flow_sample([sf_raw(1, 64, syn)]),
    }


def pcap_packets(path):
    """(linktype, packet bytes) of each record of a classic pcap (either byte order, us or
    ns). pcapng files give nothing: they are not needed for seeds."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 24:
        return []
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        end = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        end = ">"
    else:
        return []
    linktype = struct.unpack(end + "I", data[20:24])[0] & 0x0FFFFFFF
    out = []
    off = 24
    while off + 16 <= len(data):
        incl = struct.unpack(end + "I", data[off + 8:off + 12])[0]
        out.append((linktype, data[off + 16:off + 16 + incl]))
        off += 16 + incl
    return out


def pcap_udp_payloads(path):
    """UDP payloads of a classic pcap: IPv4/IPv6 over Ethernet (with VLAN tags), Linux SLL,
    raw IP or BSD loopback. Anything else is skipped."""
    out = []
    for linktype, pkt in pcap_packets(path):
        ip = None
        if linktype == 1 and len(pkt) >= 14:
            et, p = struct.unpack(">H", pkt[12:14])[0], 14
            while et in (0x8100, 0x88A8) and len(pkt) >= p + 4:
                et, p = struct.unpack(">H", pkt[p + 2:p + 4])[0], p + 4
            ip = pkt[p:] if et in (0x0800, 0x86DD) else None
        elif linktype == 113 and len(pkt) >= 16:
            ip = pkt[16:]
        elif linktype in (12, 101):
            ip = pkt
        elif linktype in (0, 108) and len(pkt) >= 4:
            ip = pkt[4:]
        if not ip:
            continue
        payload = None
        if ip[0] >> 4 == 4 and len(ip) >= 20 and ip[9] == 17:
            ihl = (ip[0] & 0xF) * 4
            payload = ip[ihl + 8:]
        elif ip[0] >> 4 == 6 and len(ip) >= 48 and ip[6] == 17:
            payload = ip[48:]
        if payload and len(payload) >= 2:
            out.append(payload)
    return out


# fuzz_replay.c's table: the first input byte (mod 10) picks the link type
REPLAY_LINKTYPES = [0, 108, 1, 113, 276, 12, 101, 228, 229, 147]


def replay_seed(linktype, pkt):
    return u8(REPLAY_LINKTYPES.index(linktype)) + pkt


def ipv4_udp(payload, frag=0):
    udp = u16(40000) + u16(2055) + u16(8 + len(payload)) + u16(0) + payload
    return (u8(0x45) + u8(0) + u16(20 + len(udp)) + u16(1) + u16(frag) + u8(64) + u8(17)
            + u16(0) + ip4("192.0.2.1") + ip4("192.0.2.2") + udp)


def ipv6_udp(payload, ext=b"", first_nh=17):
    udp = u16(40000) + u16(4739) + u16(8 + len(payload)) + u16(0) + payload
    return (u32(0x60000000) + u16(len(ext) + len(udp)) + u8(first_nh) + u8(64) + bytes(15)
            + b"\x01" + bytes(15) + b"\x02" + ext + udp)


def replay_seeds(payload):
    eth = bytes(6) + b"\x02" + bytes(5)
    v4, v6 = ipv4_udp(payload), ipv6_udp(payload)
    hop = u8(17) + u8(0) + bytes(6)  # a hop-by-hop header, then UDP
    return {
        "seed-replay-eth-ipv4": replay_seed(1, eth + u16(0x0800) + v4),
        "seed-replay-eth-vlan-ipv6": replay_seed(1, eth + u16(0x8100) + u16(5) + u16(0x86DD)
                                                 + v6),
        "seed-replay-eth-qinq": replay_seed(1, eth + u16(0x88A8) + u16(1) + u16(0x8100)
                                            + u16(2) + u16(0x0800) + v4),
        "seed-replay-ipv6-hopopts": replay_seed(101, ipv6_udp(payload, hop, 0)),
        "seed-replay-ipv4-fragment": replay_seed(12, ipv4_udp(payload, 0x2000)),
        "seed-replay-sll": replay_seed(113, u16(0) + u16(1) + u16(6) + bytes(8) + u16(0x0800)
                                       + v4),
        "seed-replay-sll2": replay_seed(276, u16(0x86DD) + u16(0) + u32(2) + u16(1) + u8(0)
                                        + u8(6) + bytes(8) + v6),
        "seed-replay-null": replay_seed(0, struct.pack("<I", 2) + v4),
        "seed-replay-loop": replay_seed(108, u32(2) + v4),
        "seed-replay-ipv4": replay_seed(228, v4),
        "seed-replay-ipv6": replay_seed(229, v6),
    }


# ---- control socket (fuzz_control.c) --------------------------------------------------------

# The harness's analyzer holds these hosts (see feed_flows() there).
CONTROL_HOSTS = ["10.1.2.3", "10.1.2.4", "10.1.2.5", "10.1.2.6", "10.0.0.25", "203.0.113.7"]
REASONS = ["smtp-fanout", "smtp-blocked", "submission-fanout", "lateral-smtp", "mta-surge",
           "auth-bruteforce"]


def control_seeds():
    """Each command with typical and edge arguments, one request per seed, and sessions."""
    lines = {
        "offenders": ["offenders", "offenders limit=0", "offenders limit=1",
                      "offenders limit=1000000", "offenders limit=1000001",
                      "offenders since=0", "offenders since=60", "offenders since=100000000",
                      "offenders since=-1", "offenders reason=smtp", "offenders limit=",
                      "offenders reason=smtp-fanout reason=smtp-fanout",
                      "offenders reason=smtp-fanout since=3600 limit=5", "offenders bogus=1",
                      "offenders 10.1.2.3", "offenders limit=18446744073709551616"]
                     + ["offenders reason=" + r for r in REASONS],
        "history": ["history", "history limit=0", "history limit=1", "history limit=1000000",
                    "history limit=x", "history limit=1 limit=2"],
        "host": ["host", "host ::ffff:10.1.2.3", "host 2001:db8::1", "host ::", "host 1.2.3",
                 "host 10.1.2.3 10.1.2.4", "host 0.0.0.0", "host 255.255.255.255",
                 "host " + "1" * 70, "host fe80::1%eth0", "host limit=1"]
                + ["host " + h for h in CONTROL_HOSTS],
        "exporters": ["exporters", "exporters x"],
        "stats": ["stats", "  stats  ", "\tstats\t"],
        "config": ["config", "config x=1"],
        "reload": ["reload", "reload now"],
        "forget": ["forget", "forget 10.1.2.3", "forget 192.0.2.99", "forget ::ffff:203.0.113.7",
                   "forget not-an-address"],
        "suppress": ["suppress 10.1.2.3 until=2h note=lab box, ticket 42",
                     "suppress 10.1.2.3 reason=smtp-fanout until=30m note=known",
                     "suppress 10.1.2.4 until=2026-12-24T08:00:00Z note=x",
                     "suppress 10.1.2.4 until=2026-12-24 note=x",
                     "suppress 10.1.2.4 until=2026-12-24T08:00 note=x",
                     "suppress 2001:db8::1 until=1w note=v6",
                     "suppress 10.1.2.3 until=1d2h3m4s note=x reason=smtp-fanout until=1h",
                     "suppress 10.1.2.3 until=366d note=longest",
                     "suppress 10.1.2.3 until=367d note=too long",
                     "suppress 10.1.2.3 until=2000-01-01T00:00:00Z note=past",
                     "suppress 10.1.2.3 until=0 note=x", "suppress 10.1.2.3 until=2h",
                     "suppress 10.1.2.3 note=x", "suppress 10.1.2.3 until=2h note=",
                     "suppress 10.1.2.3 until=2h note=" + "n" * 200,
                     "suppress 10.1.2.3 until=2h note=" + "n" * 201,
                     "suppress 10.1.2.3 until=2x note=x", "suppress until=2h note=x",
                     "suppress 10.1.2.3 reason=nope until=2h note=x",
                     "suppress 10.1.2.3 until=99999999999999999999 note=x"],
        "unsuppress": ["unsuppress 10.1.2.3", "unsuppress 10.1.2.3 reason=smtp-fanout",
                       "unsuppress", "unsuppress 10.1.2.3 until=1h", "unsuppress 192.0.2.99"],
        "suppressions": ["suppressions", "suppressions limit=0", "suppressions limit=1",
                         "suppressions 10.1.2.3"],
        "help": ["help", "HELP", "help me"],
        "version": ["version"],
    }
    out = {}
    for cmd, reqs in lines.items():
        for i, req in enumerate(reqs):
            out["seed-%s-%d" % (cmd, i)] = req.encode() + b"\n"
    session = b"".join(l.encode() + b"\n" for l in
                       ["help", "version", "offenders", "host 10.1.2.3", "history limit=3",
                        "exporters", "stats", "config", "forget 10.1.2.3", "host 10.1.2.3",
                        "offenders reason=smtp-fanout", "reload", "config", "reload",
                        "reload", "history", "stats"])
    out["seed-session"] = session
    out["seed-reload-cycle"] = b"reload\nhost 10.1.2.3\n" * 5
    # suppressions: set (all, one reason), listed, shown by host and offenders, across a
    # reload, replaced, removed one reason then all, and the cap (the harness's is 16)
    out["seed-suppress-session"] = b"".join(l.encode() + b"\n" for l in
        ["suppress 10.1.2.3 until=2h note=lab box", "suppress 10.1.2.4 reason=smtp-fanout "
         "until=30m note=known", "suppressions", "host 10.1.2.3", "offenders", "reload",
         "suppressions", "suppress 10.1.2.3 until=4h note=longer", "unsuppress 10.1.2.4 "
         "reason=smtp-fanout", "unsuppress 10.1.2.3", "suppressions", "host 10.1.2.3"])
    out["seed-suppress-cap"] = b"".join(
        ("suppress 10.9.%d.%d until=1h note=n%d\n" % (i // 250, i % 250, i)).encode()
        for i in range(20)) + b"suppressions limit=3\nsuppressions\n"
    out["seed-forget-all"] = b"".join(b"forget " + h.encode() + b"\n" for h in CONTROL_HOSTS) \
        + b"offenders\nhistory\n"
    out["seed-crlf"] = b"version\r\nstats\r\n\r\n"
    out["seed-blank-lines"] = b"\n\n \t \nversion\n"
    out["seed-unterminated"] = b"help\nversi"
    out["seed-nul"] = b"vers\x00ion\nversion\n"
    out["seed-control-bytes"] = b"help\x1b[2J\nhelp\x7f\n"
    out["seed-bad-utf8"] = b"host \xff\xfe\nhost \xc3\xa9\n"
    out["seed-utf8-command"] = "h\u00e9lp\n".encode()
    out["seed-too-long"] = b"x" * 600 + b"\nversion\n"
    out["seed-exactly-limit"] = b"help" + b" " * 508 + b"\nversion\n"
    out["seed-over-limit-split"] = b"offenders " + b"limit=1 " * 70 + b"\n"
    out["seed-many"] = b"history\n" * 40
    out["seed-empty"] = b""
    return out


# ---- config file (fuzz_config.c) ------------------------------------------------------------

CONFIG_HANDMADE = {
    "seed-empty": "",
    "seed-comments": "# nothing but comments\n\n# and blanks\n",
    "seed-every-section": (
        "[collector]\nlisten = 127.0.0.1:2055;[::1]:9995\nrcvbuf = 4M\nmax_exporters = 10\n"
        "max_domains = 4\nmax_templates = 64\ntemplate_timeout = 1800\nexporter_timeout = 3600\n"
        "allowed_exporters = 192.0.2.0/24, 2001:db8::/32\n"
        "[daemon]\nlog_level = DEBUG\nlog = syslog\nstats_interval = 0\nuser =\n"
        "[control]\nsocket = /tmp/x.sock\ngroup = adm\nmax_clients = 1\nmax_request = 64\n"
        "idle_timeout = 1\nmax_output = 1G\n"
        "[analyzer]\ninternal_networks = 10.0.0.0/8\nmail_servers = 10.0.0.25, fd00::25\nresolvers = 10.0.0.53, fd00::53\n"
        "smtp_ports = 25 2525\nsubmission_ports = 587,465\nlogin_ports = 993\nslice = 30\n"
        "short_window = 2\nlong_window = 4\nexact_cap = 16\nmax_hosts = 1\nmemory_cap = 1M\n"
        "history = 1\n"
        "[smtp-fanout]\nenabled = false\nshort = 0\nlong = 10000000\n"
        "[smtp-blocked]\nenabled = no\nfailed_share = 0\nmin_attempts = 1\n"
        "[mta-surge]\nfactor = 1000\nbaseline_samples = 1\nmin_samples = 100000\n"
        "warmup_factor = 1.5\n"
        "[auth-bruteforce]\nmax_packets = 1\nmax_bytes = 1K\n"
        "[alerts]\nescalate_factor = 1e0\nupdate_interval = 0\nclear_level = 1\nhold = 604800\n"
        "[sinks]\njson = /var/log/a.json\ncsv = -\nsyslog = 1\nsyslog_ident = x\n"
        "syslog_facility = local7\nremote = tcp://[2001:db8::1]:6514\nremote_queue = 1\n"
        "[enrich]\ncountry_db = /x.mmdb\nasn_db = /x.mmdb\n"
        "[evidence]\ndir = /var/lib/spamflow/evidence\nmax_flows = 1\nmax_age = 0\n"
        "max_bytes = 0\nmemory_cap = 1048576\n"),
    "seed-escapes": "[daemon]\nuser = a\\sb\\tc\n[sinks]\njson = /tmp/\\\\x\n",
    "seed-escape-newline": "[sinks]\nsyslog_ident = a\\nb\n",
    "seed-leading-space-escape": "[control]\ngroup = \\s adm\n",
    "seed-crlf": "[daemon]\r\nlog_level = info\r\n",
    "seed-spaces": "  [daemon]  \n   log_level   =   warning   \n",
    "seed-locale-key": "[collector]\nlisten[de] = 0.0.0.0:2055\n",
    "seed-duplicate-key": "[collector]\nrcvbuf = 1M\n[daemon]\n[collector]\nrcvbuf = 2M\n",
    "seed-repeated-section": "[collector]\nrcvbuf = 1M\n[daemon]\nlog = stderr\n[collector]\n"
                             "max_domains = 2\n",
    "seed-unknown-section": "[colector]\nlisten = 0.0.0.0:2055\n",
    "seed-unknown-key": "[collector]\nlisen = 0.0.0.0:2055\n",
    "seed-not-ini": "[collector]\nthis is not ini\n",
    "seed-no-group": "log_level = info\n",
    "seed-group-brackets": "[daemon]]\n[[daemon]\n",
    "seed-bad-values": "[collector]\nrcvbuf = 1T\n",
    "seed-size-overflow": "[analyzer]\nmemory_cap = 18446744073709551615G\n",
    "seed-double-nan": "[alerts]\nescalate_factor = nan\n",
    "seed-double-hex": "[alerts]\nescalate_factor = 0x1p1\n",
    "seed-double-inf": "[mta-surge]\nfactor = inf\n",
    "seed-negative": "[daemon]\nstats_interval = -1\n",
    "seed-empty-listen": "[collector]\nlisten = ;;\n",
    "seed-bad-listen": "[collector]\nlisten = 1.2.3.4\n",
    "seed-bad-prefix": "[analyzer]\ninternal_networks = 10.0.0.0/33\n",
    "seed-bad-ports": "[analyzer]\nsmtp_ports = 0, 65536\n",
    "seed-bad-facility": "[sinks]\nsyslog_facility = kern2\n",
    "seed-bad-remote": "[sinks]\nremote = http://x\n",
    "seed-windows-cross": "[analyzer]\nshort_window = 100\nlong_window = 10\n",
    "seed-nul": "[daemon]\nlog_level = info\x00garbage\n",
    "seed-utf8": "[sinks]\nsyslog_ident = sp\u00e4mflow\n",
    "seed-bad-utf8-marker": "[sinks]\nsyslog_ident = @BAD@\n",
    "seed-comment-in-value": "[daemon]\nuser = nobody # the user\n",
    # [group NAME] sections: nested prefixes, overrides, exempt, every kind of mistake
    "seed-groups": ("[group lab]\nprefixes = 10.20.0.0/16, fd00:20::/48  # the lab\n"
                    "smtp-fanout = 200/600\nexempt = submission-fanout, lateral-smtp\n"
                    "[group printers]\nprefixes = 10.20.9.0/24\nexempt = all\n"
                    "[group probe]\nprefixes = 10.20.9.7\nmta-surge = 0/10\n"
                    "auth-bruteforce = 1000/3000\n"),
    "seed-group-tie": "[group a]\nprefixes = 10.0.0.0/8\n[group b]\nprefixes = ::ffff:10.0.0.0/104\n",
    "seed-group-no-prefixes": "[group a]\nexempt = all\n",
    "seed-group-bad-prefix": "[group a]\nprefixes = 10.0.0.1/8\n",
    "seed-group-empty-prefixes": "[group a]\nprefixes = # none\n",
    "seed-group-bad-name": "[group a b]\nprefixes = 10.0.0.0/8\n[group]\nprefixes = 1.2.3.4\n",
    "seed-group-long-name": "[group " + "n" * 32 + "]\nprefixes = 10.0.0.0/8\n",
    "seed-group-unknown-key": "[group a]\nprefixes = 10.0.0.0/8\nsmtp-fanin = 1/2\n",
    "seed-group-one-threshold": "[group a]\nprefixes = 10.0.0.0/8\nsmtp-fanout = 200\n",
    "seed-group-three-thresholds": "[group a]\nprefixes = 10.0.0.0/8\nsmtp-fanout = 1/2/3\n",
    "seed-group-bad-threshold": "[group a]\nprefixes = 10.0.0.0/8\nsmtp-fanout = -1/x\n",
    "seed-group-big-threshold": "[group a]\nprefixes = 10.0.0.0/8\nsmtp-fanout = 10000001/1\n",
    "seed-group-bad-exempt": "[group a]\nprefixes = 10.0.0.0/8\nexempt = smtp, all\n",
    "seed-group-twice": "[group a]\nprefixes = 10.0.0.0/8\n[group a]\nprefixes = 10.1.0.0/16\n",
    "seed-group-split": "[group a]\nprefixes = 10.0.0.0/8\n[daemon]\n[group a]\nexempt = all\n",
    "seed-max-suppressions": "[analyzer]\nmax_suppressions = 1\n",
}


def config_seeds(root):
    """The sample config, every *.conf under fixtures/ and tests/, and the cases above."""
    out = {}
    found = [os.path.join(root, "spamflow.conf")]
    for top in ("fixtures", "tests"):
        for dirpath, dirnames, filenames in os.walk(os.path.join(root, top)):
            dirnames[:] = sorted(d for d in dirnames if d != "corpus")
            found += [os.path.join(dirpath, f) for f in sorted(filenames) if f.endswith(".conf")]
    for path in found:
        if os.path.isfile(path):
            with open(path, "rb") as f:
                rel = os.path.relpath(path, root).replace(os.sep, "-")
                out["file-" + rel] = f.read()
    for name, text in CONFIG_HANDMADE.items():
        out[name] = text.encode().replace(b"@BAD@", b"\xff\xfe")
    return out


# ---- saved suppressions (fuzz_state.c, inputs starting with "SFSP") ------------------------

def supp_entry(addr16, tag, until, set_ms, uid, note):
    n = note.encode() if isinstance(note, str) else note
    return addr16 + u8(tag) + u64(until) + u64(set_ms) + u32(uid) + u8(len(n)) + n


def supp_blob(entries, count=None, version=1):
    return b"SFSP" + u16(version) + u32(len(entries) if count is None else count) + \
        b"".join(entries)


def state_seeds():
    """Saved suppressions as analyzer_suppressions_save() writes them (policy.c), and
    broken ones."""
    v4 = b"\0" * 10 + b"\xff\xff"
    h1, h2 = v4 + ip4("10.1.2.3"), v4 + ip4("10.1.2.4")
    six = bytes.fromhex("20010db8000000000000000000000007")
    t = 1700000000000
    good = [supp_entry(h1, 0xff, t + 7200000, t, 1000, "lab box, ticket 42"),
            supp_entry(h1, 0, t + 1800000, t, 0, "known"),
            supp_entry(h2, 5, t + 60000, t, 0, "caf\u00e9"),
            supp_entry(six, 0xff, t + 86400000, t - 5000, 4242, "")]
    return {
        "seed-supp-good": supp_blob(good),
        "seed-supp-empty": supp_blob([]),
        "seed-supp-expired": supp_blob([supp_entry(h1, 0xff, t - 1, t - 10, 0, "over")]),
        "seed-supp-unsorted-dup": supp_blob([good[2], good[0], good[0]]),
        "seed-supp-over-cap": supp_blob([supp_entry(v4 + bytes([10, 9, 0, i]), 0xff, t + 1000,
                                                    t, 0, "n%d" % i) for i in range(12)]),
        "seed-supp-bad-reason": supp_blob([supp_entry(h1, 7, t + 1000, t, 0, "x")]),
        "seed-supp-bad-utf8": supp_blob([supp_entry(h1, 0xff, t + 1000, t, 0, b"\xff\xfe")]),
        "seed-supp-nul-note": supp_blob([supp_entry(h1, 0xff, t + 1000, t, 0, b"a\0b")]),
        "seed-supp-long-note": supp_blob([supp_entry(h1, 0xff, t + 1000, t, 0, "n" * 201)]),
        "seed-supp-count-past-end": supp_blob(good[:1], count=1000),
        "seed-supp-trailing": supp_blob(good[:1]) + b"x",
        "seed-supp-truncated": supp_blob(good)[:-3],
        "seed-supp-version": supp_blob(good[:1], version=2),
        "seed-supp-huge-time": supp_blob([supp_entry(h1, 0xff, 1 << 62, t, 0, "far")]),
    }


# ---- the cluster's wire format (cluster/wire.c) --------------------------------------------

V4MAP = b"\0" * 10 + b"\xff\xff"


def varint(v):
    """LEB128, as wire.c writes it"""
    out = b""
    while v >= 0x80:
        out += u8((v & 0x7F) | 0x80)
        v >>= 7
    return out + u8(v)


def zz(d):
    """a signed delta, zigzag-mapped"""
    return d << 1 if d >= 0 else ((-d) << 1) - 1


def a16(text):
    """an address as Flow keeps it: 16 bytes, IPv4 mapped"""
    if ":" in text:
        import ipaddress
        return ipaddress.IPv6Address(text).packed
    return V4MAP + ip4(text)


def wire_addr(a):
    return u8(4) + a[12:] if a[:12] == V4MAP else u8(16) + a


def wire_node(name):
    return u8(len(name)) + name


FLOW_DEFAULTS = dict(recv_ms=0, start_ms=0, end_ms=0, packets=0, bytes=0, rev_packets=0,
                     rev_bytes=0, src=a16("0.0.0.0"), dst=a16("0.0.0.0"), nat_src=bytes(16),
                     nat_dst=bytes(16), sampling=1, exporter=0, domain=0, sport=0, dport=0,
                     nat_sport=0, nat_dport=0, has=0, proto=6, tcp_flags=0, fw_event=0,
                     direction=0, version=10)


def wire_flow(f, prev_recv):
    f = dict(FLOW_DEFAULTS, **f)
    v6 = lambda a: a[:12] != V4MAP
    adr = lambda a: a if v6(a) else a[12:]
    bits = [("start_ms", f["start_ms"] != 0), ("end_ms", f["end_ms"] != 0),
            ("packets", f["packets"] != 0), ("bytes", f["bytes"] != 0),
            ("tcp_flags", f["tcp_flags"] != 0), ("src6", v6(f["src"])), ("dst6", v6(f["dst"])),
            ("exporter", f["exporter"] != 0), ("domain", f["domain"] != 0),
            ("sampling", f["sampling"] != 1), ("rev_packets", f["rev_packets"] != 0),
            ("rev_bytes", f["rev_bytes"] != 0), ("fw_event", f["fw_event"] != 0),
            ("direction", f["direction"] != 0), ("nat_src", any(f["nat_src"])),
            ("nat_src6", any(f["nat_src"]) and v6(f["nat_src"])),
            ("nat_dst", any(f["nat_dst"])), ("nat_dst6", any(f["nat_dst"]) and v6(f["nat_dst"])),
            ("nat_sport", f["nat_sport"] != 0), ("nat_dport", f["nat_dport"] != 0)]
    on = {name for name, is_on in bits if is_on}
    out = varint(sum(1 << i for i, (name, is_on) in enumerate(bits) if is_on))
    out += varint(zz(f["recv_ms"] - prev_recv)) + u8(f["proto"]) + u8(f["version"])
    out += varint(f["has"]) + u16(f["sport"]) + u16(f["dport"]) + adr(f["src"]) + adr(f["dst"])
    if "start_ms" in on:
        out += varint(zz(f["start_ms"] - f["recv_ms"]))
    if "end_ms" in on:
        out += varint(zz(f["end_ms"] - f["start_ms"]))
    for name in ("packets", "bytes"):
        if name in on:
            out += varint(f[name])
    if "tcp_flags" in on:
        out += u8(f["tcp_flags"])
    for name in ("exporter", "domain", "sampling", "rev_packets", "rev_bytes"):
        if name in on:
            out += varint(f[name])
    for name in ("fw_event", "direction"):
        if name in on:
            out += u8(f[name])
    for name in ("nat_src", "nat_dst"):
        if name in on:
            out += adr(f[name])
    for name in ("nat_sport", "nat_dport"):
        if name in on:
            out += u16(f[name])
    return out


def wire_batch(flows, exporters, node=b"collector-a", partition=5, seq=1, clock=1700000000000,
               version=1, n_flows=None):
    out = b"SFCB" + u8(version) + wire_node(node) + u32(partition) + u64(seq) + u64(clock)
    out += u16(len(exporters)) + b"".join(wire_addr(a) for a in exporters)
    out += u32(len(flows) if n_flows is None else n_flows)
    prev = clock
    for f in flows:
        out += wire_flow(f, prev)
        prev = f["recv_ms"]
    return out


def f64(v):
    return struct.pack(">d", v)


def wire_event(kind=0, reason=0, sev=2, host="10.1.2.3", peer=None, t=1700000000000,
               top=(), n_exporters=0, evidence=b"", group=b"", dns=None):
    out = u64(t) + u8(kind) + u8(reason) + u8(sev) + a16(host)
    out += (a16(peer) if peer else bytes(16)) + u8(1 if peer else 0)
    for span, value, thr in ((600000, 62, 50), (3600000, 80, 150)):
        out += u64(span) + u32(value) + u32(thr) + u32(value) + u8(0) + u32(value + 8)
        out += u32(value + 9) + u32(12)
    out += u8(0) + f64(1.25) + u32(90) + u32(95) + u32(12) + u32(83) + u32(77) + f64(12 / 95)
    out += u64(t - 5000) + u64(t)
    out += u8(len(top)) + b"".join(a16(a) + u32(3) + u32(64500) + cc for a, cc in top)
    out += u8(n_exporters) + b"".join(u32(i) for i in range(n_exporters))
    out += u8(0) + u32(1) + u8(0) + u64(t - 60000) + u32(1) + u32(1)
    out += u8(len(evidence)) + evidence
    out += u32(62) + u32(0) + u32(80) + u32(0)
    out += u8(1) + u32(4) + u32(37) + u8(1 if dns else 0) + (a16(dns) if dns else bytes(16))
    out += u8(0) + u8(len(group)) + group
    return out


def wire_alert(event, exporters, node=b"analyzer-b", partition=5, lease_rev=42, version=1,
               lease_from=1700000000000):
    return (b"SFCA" + u8(version) + wire_node(node) + u32(partition) + u64(lease_rev)
            + u64(lease_from) + u32(len(event)) + event + b"".join(wire_addr(a) for a in exporters))


def wire_history(slice_payload, node=b"a1", partition=7, rev=42, piece=0, version=1,
                 length=None):
    """A history message (cluster/wire.c "SFCH") around an opaque slice payload."""
    n = len(slice_payload) if length is None else length
    return (b"SFCH" + bytes([version, len(node)]) + node + struct.pack(">IQHI", partition, rev,
                                                                       piece, n)
            + slice_payload)
def wire_ctl(op=1, host="10.1.2.3", flags=0, reason=0, until=1700003600000,
             set_ms=1700000000000, uid=1000, pid=4242, note=b"newsletter run",
             node=b"analyzer-a", boot=1700000000000, rid=7, partition=5, version=1,
             note_len=None):
    """A control record (suppress 1, unsuppress 2, forget 3), as cluster/wire.c writes it"""
    return (b"SFCC" + u8(version) + wire_node(node) + u64(boot) + u64(rid) + u32(partition)
            + u8(op) + wire_addr(a16(host)) + u8(flags) + u8(reason) + u64(until)
            + u64(set_ms) + u32(uid) + u32(pid)
            + u8(len(note) if note_len is None else note_len) + note)


def cluster_seeds():
    """Flow batches and alert messages as cluster/wire.c writes them, and broken ones."""
    t = 1700000000000
    smtp = []
    for i in range(24):
        recv = t + (i // 8) * 37
        end = recv - 1000 * (i % 7)
        failed = i % 3 == 0
        smtp.append(dict(recv_ms=recv, start_ms=end - 250 * i, end_ms=end,
                         packets=2 if failed else 9 + i, bytes=(2 if failed else 9 + i) * 120,
                         src=a16("10.1.2.%d" % (3 + i % 4)), dst=a16("198.51.100.%d" % i),
                         sport=40000 + 17 * i, dport=25, tcp_flags=0x02 if failed else 0x1B,
                         has=0x183, version=10))
    full = [dict(recv_ms=t + 5, start_ms=t - 30000, end_ms=t - 100, packets=12, bytes=3400,
                 rev_packets=9, rev_bytes=1800, src=a16("2001:db8::10"),
                 dst=a16("2001:db8:ffff::25"), nat_src=a16("203.0.113.9"),
                 nat_dst=a16("2001:db8:2::2"), sampling=100, exporter=2, domain=4242,
                 sport=40000, dport=587, nat_sport=61000, nat_dport=2525, has=0x1BF,
                 tcp_flags=0x1B, fw_event=1, direction=1, version=10),
            dict(recv_ms=t - 86400000, src=a16("10.9.9.9"), dst=a16("8.8.8.8"), proto=17,
                 sport=5353, dport=53, exporter=1, version=205, sampling=4096, packets=1,
                 bytes=76, has=0x380),
            dict(recv_ms=t, src=a16("192.0.2.7"), dst=a16("192.0.2.8"), version=5, packets=1,
                 bytes=40, fw_event=3, has=0x188)]
    exps = [a16("192.0.2.1"), a16("2001:db8:e::1"), a16("192.0.2.3")]
    many = [a16("192.0.2.%d" % i) if i % 2 == 0 else a16("2001:db8:e::%x" % i)
            for i in range(256)]
    last = dict(full[2], exporter=255)
    good_batch = wire_batch(smtp, exps[:1])
    event = wire_event(top=[("198.51.100.7", b"US"), ("2001:db8::9", b"\0\0")], n_exporters=2,
                       evidence=b"/var/lib/spamflow/evidence/10.1.2.3-1700000000000.ipfix",
                       group=b"students", dns="8.8.8.8")
    good_alert = wire_alert(event, exps[:2])
    return {
        "seed-batch-smtp": good_batch,
        "seed-batch-every-field": wire_batch(full, exps, node=b"n" * 63, partition=63,
                                             seq=(1 << 64) - 1),
        "seed-batch-tick": wire_batch([], [], node=b"", clock=t + 1000),
        "seed-batch-max-exporters": wire_batch(full[:2] + [last], many),
        "seed-batch-truncated": good_batch[:-5],
        "seed-batch-trailing": good_batch + b"\0",
        "seed-batch-version": wire_batch(smtp[:2], exps[:1], version=2),
        "seed-batch-exporter-past-end": wire_batch([dict(smtp[0], exporter=1)], exps[:1]),
        "seed-batch-count-past-end": wire_batch(smtp[:1], exps[:1], n_flows=60000),
        "seed-batch-sampling-zero": wire_batch([dict(smtp[0], sampling=0)], exps[:1]),
        "seed-alert-raised": good_alert,
        "seed-alert-v6-cleared": wire_alert(wire_event(kind=2, reason=5, sev=0,
                                                        host="2001:db8::66", peer="2001:db8::25"),
                                            []),
        "seed-alert-truncated": good_alert[:-3],
        "seed-alert-trailing": good_alert + b"x",
        "seed-alert-bad-kind": wire_alert(wire_event(kind=3), []),
        "seed-alert-nul-evidence": wire_alert(wire_event(evidence=b"a\0b"), []),
        "seed-history": wire_history(bytes(range(64))),
        "seed-history-empty-node-piece": wire_history(b"", node=b"", piece=65535),
        "seed-history-truncated": wire_history(bytes(32))[:-4],
        "seed-history-trailing": wire_history(bytes(8)) + b"z",
        "seed-history-length-lies": wire_history(bytes(8), length=1 << 24),
        "seed-history-version": wire_history(bytes(8), version=2),
        "seed-ctl-suppress": wire_ctl(),
        "seed-ctl-suppress-all-v6": wire_ctl(host="2001:db8::66", flags=1, note=b"n" * 200,
                                             node=b"n" * 63, rid=(1 << 64) - 1),
        "seed-ctl-unsuppress": wire_ctl(op=2, reason=3, note=b""),
        "seed-ctl-forget": wire_ctl(op=3, flags=1, until=0, note=b""),
        "seed-ctl-truncated": wire_ctl()[:-4],
        "seed-ctl-trailing": wire_ctl() + b"\0",
        "seed-ctl-bad-op": wire_ctl(op=4),
        "seed-ctl-bad-reason": wire_ctl(reason=200),
        "seed-ctl-all-with-reason": wire_ctl(flags=1, reason=2),
        "seed-ctl-note-too-long": wire_ctl(note=b"x" * 201),
        "seed-ctl-note-past-end": wire_ctl(note=b"ab", note_len=50),
        "seed-ctl-nul-note": wire_ctl(note=b"a\0b"),
        "seed-ctl-version": wire_ctl(version=2),
        "seed-ctl-time-range": wire_ctl(until=1 << 62),
    }


def framed(datagrams):
    """The collector harness's input: each datagram behind a 2-byte big-endian length."""
    out = b""
    for d in datagrams:
        if len(out) + 2 + len(d) > 65535:
            break
        out += u16(len(d)) + d
    return out


def split_messages(data):
    """Hostile fixture files: messages back to back, cut at each header's length (bytes 2-3);
    a length below 16 or past the end leaves the rest as one last datagram."""
    out, off = [], 0
    while off < len(data):
        mlen = struct.unpack(">H", data[off + 2:off + 4])[0] if len(data) - off >= 4 else 0
        if mlen < 16 or mlen > len(data) - off:
            out.append(data[off:])
            break
        out.append(data[off:off + mlen])
        off += mlen
    return out


ONLY = set()  # --only: the corpora to write (empty: all)


def write(dirpath, name, data):
    if ONLY and os.path.basename(dirpath) not in ONLY:
        return
    os.makedirs(dirpath, exist_ok=True)
    with open(os.path.join(dirpath, name), "wb") as f:
        f.write(data)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=os.path.normpath(os.path.join(here, "..", "..")))
    ap.add_argument("--max-per-capture", type=int, default=8)
    ap.add_argument("--only", nargs="+", metavar="HARNESS", help="write only these corpora",
                    choices=["v5", "v9", "ipfix", "sflow", "collector", "replay", "control",
                             "config", "state", "cluster"])
    args = ap.parse_args()
    ONLY.update(args.only or [])
    corpus = os.path.join(args.root, "tests", "fuzz", "corpus")
    fixtures = os.path.join(args.root, "fixtures")

    seeds = {"v5": v5_seeds(), "v9": v9_seeds(), "ipfix": ipfix_seeds(),
             "sflow": sflow_seeds()}
    for name, group in seeds.items():
        for fname, data in group.items():
            write(os.path.join(corpus, name), fname, data)

    coll = {
        "seed-coll-v9-sequence": [seeds["v9"]["seed-v9-template"],
                                  seeds["v9"]["seed-v9-data-only"],
                                  seeds["v9"]["seed-v9-options"]],
        "seed-coll-ipfix-sequence": [seeds["ipfix"]["seed-ipfix-options"],
                                     seeds["ipfix"]["seed-ipfix-template-data"], b"",
                                     seeds["ipfix"]["seed-ipfix-withdraw"]],
        "seed-coll-mixed-ports": [seeds["v5"]["seed-v5-two"], b"\x01",
                                  seeds["ipfix"]["seed-ipfix-template"], b"\x02",
                                  seeds["v9"]["seed-v9-template-data"], b"", b""],
        "seed-coll-sflow-sequence": [seeds["sflow"]["seed-sflow-syn"],
                                     seeds["sflow"]["seed-sflow-kinds"], b"",
                                     seeds["sflow"]["seed-sflow-syn"]],
    }
    hostile = os.path.join(fixtures, "hostile", "ipfix")
    if os.path.isdir(hostile):
        for fn in sorted(os.listdir(hostile)):
            path = os.path.join(hostile, fn)
            if os.path.isfile(path) and not fn.startswith(".") and fn != "README.md":
                with open(path, "rb") as f:
                    coll["seed-coll-hostile-" + fn] = split_messages(f.read())
    for fname, dgrams in coll.items():
        write(os.path.join(corpus, "collector"), fname, framed(dgrams))

    for fname, data in replay_seeds(seeds["v9"]["seed-v9-template-data"]).items():
        write(os.path.join(corpus, "replay"), fname, data)

    for fname, data in control_seeds().items():
        write(os.path.join(corpus, "control"), fname, data)
    for fname, data in config_seeds(args.root).items():
        write(os.path.join(corpus, "config"), fname, data)
    for fname, data in state_seeds().items():
        write(os.path.join(corpus, "state"), fname, data)
    for fname, data in cluster_seeds().items():
        write(os.path.join(corpus, "cluster"), fname, data)

    n_pcap = 0
    if os.path.isdir(fixtures):
        for fn in sorted(os.listdir(fixtures)):
            if not fn.endswith(".pcap"):
                continue
            stem = fn[:-len(".pcap")]
            packets = [(lt, p) for lt, p in pcap_packets(os.path.join(fixtures, fn))
                       if lt in REPLAY_LINKTYPES]
            for i, (lt, p) in enumerate(packets[:args.max_per_capture]):
                write(os.path.join(corpus, "replay"), "pcap-%s-%d" % (stem, i),
                      replay_seed(lt, p))
                n_pcap += 1
            by_version = {5: "v5", 9: "v9", 10: "ipfix"}

            def kind(p):
                if len(p) >= 4 and struct.unpack(">I", p[:4])[0] == 5:
                    return "sflow"
                return by_version.get(struct.unpack(">H", p[:2])[0]) if len(p) >= 2 else None
            # only flow export: captures of end-host traffic (DNS, QUIC) are not seeds
            payloads = [p for p in pcap_udp_payloads(os.path.join(fixtures, fn)) if kind(p)]
            taken = {}
            for p in payloads:
                name = kind(p)
                if taken.get(name, 0) >= args.max_per_capture:
                    continue
                write(os.path.join(corpus, name), "pcap-%s-%d" % (stem, taken.get(name, 0)), p)
                taken[name] = taken.get(name, 0) + 1
                n_pcap += 1
            if payloads:
                write(os.path.join(corpus, "collector"), "pcap-" + stem, framed(payloads))
    print("seeds written to %s (%d from captures)" % (corpus, n_pcap))
    return 0


if __name__ == "__main__":
    sys.exit(main())
