#!/usr/bin/python3
"""Hand-built sFlow v5 datagrams for the golden tests, and hostile vectors.

Every datagram is packed with `struct` from the sFlow v5 specification (sflow.org, "sFlow
Version 5", 2004): what pmacctd's sfprobe never sends (VLAN/QinQ, MPLS, IPv6 extension
headers, IPv4 options and fragments, ARP, expanded samples, sampled IPv4/IPv6 records,
truncated headers, counter samples, an IPv6 agent, sub-agents, sequence gaps, drops). The
sampled packets are built here too (Ethernet, 802.1Q, MPLS, IPv4, IPv6, TCP, UDP, ICMP).

For each case it writes <case>.pcap (Ethernet / IPv4 or IPv6 / UDP to port 6343, valid
checksums), <case>.expect.csv (the --flows rows the decode contract gives, computed from the
values encoded, not by parsing the bytes back) and <case>.expect.json (the summary counters).
tests/golden/sflow_compare.py checks the expected rows against tshark as well.

With --hostile DIR it also writes raw datagrams (no pcap framing) that a decoder must refuse
safely, and DIR/README.md saying what each is and which counter it should raise.

usage: build_sflow.py [--out fixtures/sflow-hand] [--hostile fixtures/sflow-hostile]
"""

import argparse
import ipaddress
import json
import os
import random
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import count_records as cr  # noqa: E402  (pcap writer, checksum)

HEADER = ("recv_ms,exporter,domain,version,src,dst,sport,dport,proto,tcp_flags,packets,bytes,"
          "start_ms,end_ms,sampling,fw_event,direction,nat_src,nat_dst,nat_sport,nat_dport,"
          "rev_packets,rev_bytes")
BASE_US = 1768478400250123  # 2026-01-15 12:00:00.250123 UTC; recv_ms truncates
COLLECTOR4, COLLECTOR6 = "192.0.2.100", "2001:db8::100"
EXPORTER4, EXPORTER6 = "192.0.2.50", "2001:db8::50"
SPORT, DPORT = 50000, 6343
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
SNAP = 128  # bytes of each packet put in a raw header record (pmacctd's default too)


def ip4(a):
    return ipaddress.IPv4Address(a).packed


def ip6(a):
    return ipaddress.IPv6Address(a).packed


# ---- sampled packets ------------------------------------------------------------------------

class Pkt:
    """A sampled frame and what the contract reads from it."""

    def __init__(self, frame, src=None, dst=None, proto=None, sport=0, dport=0, flags=None,
                 l4_at=None):
        self.frame, self.src, self.dst, self.proto = frame, src, dst, proto
        self.sport, self.dport, self.flags, self.l4_at = sport, dport, flags, l4_at

    @property
    def is_ip(self):
        return self.src is not None


MAC_A, MAC_B = bytes.fromhex("020000000001"), bytes.fromhex("0210aabbcc01")


def tcp(sport, dport, flags, payload=b""):
    return struct.pack(">HHIIBBHHH", sport, dport, 1000, 2000 if flags & ACK else 0, 5 << 4,
                       flags, 64240, 0, 0) + payload


def udp(sport, dport, payload=b""):
    return struct.pack(">HHHH", sport, dport, 8 + len(payload), 0) + payload


def icmp_echo(ident, seq, v6=False):
    return struct.pack(">BBHHH", 128 if v6 else 8, 0, 0, ident, seq) + bytes(32)


def ipv4(src, dst, proto, payload, options=b"", frag=0, mf=False, ident=0x1234, total=None):
    ihl = 5 + len(options) // 4
    tot = total if total is not None else ihl * 4 + len(payload)
    h = struct.pack(">BBHHHBBH4s4s", 0x40 | ihl, 0, tot, ident, (0x2000 if mf else 0) | frag,
                    64, proto, 0, ip4(src), ip4(dst)) + options
    h = h[:10] + struct.pack(">H", cr.csum(h)) + h[12:]
    return h + payload


def ipv6(src, dst, nh, payload, plen=None):
    return struct.pack(">IHBB16s16s", 6 << 28, len(payload) if plen is None else plen, nh, 64,
                       ip6(src), ip6(dst)) + payload


def ext6(nh, body6):
    """A hop-by-hop / routing / destination options header: next header, length in 8-byte
    units past the first 8, then its body (padded to 8n - 2 bytes)."""
    body = body6 + bytes((-(len(body6) + 2)) % 8)
    return struct.pack(">BB", nh, (len(body) + 2) // 8 - 1) + body


def frag6(nh, offset8, more, ident=0xABCD):
    return struct.pack(">BBHI", nh, 0, (offset8 << 3) | (1 if more else 0), ident)


def ah(nh, spi=0x100):
    # RFC 4302: payload length in 4-byte units minus 2; 12 bytes of ICV here (len 24 -> 4)
    return struct.pack(">BBHII", nh, 4, 0, spi, 1) + bytes(12)


def eth(ethertype, payload, tags=()):
    """tags: [(tpid, vid)] outermost first."""
    out = MAC_A + MAC_B
    for tpid, vid in tags:
        out += struct.pack(">HH", tpid, vid)
    return out + struct.pack(">H", ethertype) + payload


def mpls(labels, payload):
    out = b""
    for i, lab in enumerate(labels):
        out += struct.pack(">I", (lab << 12) | (1 << 8 if i == len(labels) - 1 else 0) | 64)
    return out + payload


def tcp4(src, dst, sport, dport, flags, payload=b"", **kw):
    return Pkt(None, src, dst, 6, sport, dport, flags), ipv4(src, dst, 6,
                                                           tcp(sport, dport, flags, payload), **kw)


def v4_tcp_frame(src, dst, sport, dport, flags, tags=(), payload=b""):
    p, ip = tcp4(src, dst, sport, dport, flags, payload)
    p.frame = eth(0x0800, ip, tags)
    return p


# ---- sFlow encoding --------------------------------------------------------------------------

def xdr_addr(a):
    a = ipaddress.ip_address(a)
    return struct.pack(">I", 1 if a.version == 4 else 2) + a.packed


def record(fmt, body, enterprise=0):
    return struct.pack(">II", (enterprise << 12) | fmt, len(body)) + body


def raw_header(frame, proto=1, snap=SNAP, stripped=4):
    h = frame[:snap]
    body = struct.pack(">IIII", proto, len(frame) + stripped, stripped, len(h))
    return record(1, body + h + bytes((-len(h)) % 4))


def sampled_ipv4(length, proto, src, dst, sport, dport, flags, tos=0):
    return record(3, struct.pack(">II4s4sIIII", length, proto, ip4(src), ip4(dst), sport, dport,
                                 flags, tos))


def sampled_ipv6(length, proto, src, dst, sport, dport, flags, prio=0):
    return record(4, struct.pack(">II16s16sIIII", length, proto, ip6(src), ip6(dst), sport, dport,
                                 flags, prio))


def sampled_ethernet(length, src_mac, dst_mac, ethertype):
    return record(2, struct.pack(">I6s2x6s2xI", length, src_mac, dst_mac, ethertype))


def ext_switch(vin, vout):
    return record(1001, struct.pack(">IIII", vin, 0, vout, 0))


def flow_sample(seq, source, rate, pool, drops, records, expanded=False, inp=1, outp=2):
    """source: (type, index)."""
    if expanded:
        body = struct.pack(">IIIIIIIIIII", seq, source[0], source[1], rate, pool, drops,
                           0, inp, 0, outp, len(records))
        fmt = 3
    else:
        body = struct.pack(">IIIIIIII", seq, (source[0] << 24) | source[1], rate, pool, drops,
                           inp, outp, len(records))
        fmt = 1
    body += b"".join(records)
    return struct.pack(">II", fmt, len(body)) + body


def generic_counters(ifindex, in_octets, in_ucast, out_octets, out_ucast):
    body = struct.pack(">IIQII", ifindex, 6, 1000000000, 1, 3)
    body += struct.pack(">QIIIIII", in_octets, in_ucast, 0, 0, 0, 0, 0)
    body += struct.pack(">QIIIIIII", out_octets, out_ucast, 0, 0, 0, 0, 0, 0)
    return record(1, body)


def counter_sample(seq, source, records, expanded=False):
    if expanded:
        body = struct.pack(">IIII", seq, source[0], source[1], len(records))
        fmt = 4
    else:
        body = struct.pack(">III", seq, (source[0] << 24) | source[1], len(records))
        fmt = 2
    body += b"".join(records)
    return struct.pack(">II", fmt, len(body)) + body


def datagram(agent, sub_agent, seq, uptime, samples, count=None):
    return (struct.pack(">I", 5) + xdr_addr(agent) +
            struct.pack(">IIII", sub_agent, seq, uptime, len(samples) if count is None else count)
            + b"".join(samples))


# ---- pcap framing ----------------------------------------------------------------------------

def udp_frame(payload, v6=False):
    if v6:
        s, d = ip6(EXPORTER6), ip6(COLLECTOR6)
        u = struct.pack(">HHHH", SPORT, DPORT, 8 + len(payload), 0) + payload
        c = cr.csum(s + d + struct.pack(">IxxxB", len(u), 17) + u) or 0xFFFF
        u = u[:6] + struct.pack(">H", c) + u[8:]
        ip = struct.pack(">IHBB16s16s", 6 << 28, len(u), 17, 64, s, d) + u
        return bytes(12) + b"\x86\xdd" + ip
    s, d = ip4(EXPORTER4), ip4(COLLECTOR4)
    u = struct.pack(">HHHH", SPORT, DPORT, 8 + len(payload), 0) + payload
    c = cr.csum(s + d + struct.pack(">BBH", 0, 17, len(u)) + u) or 0xFFFF
    u = u[:6] + struct.pack(">H", c) + u[8:]
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(u), 0, 0x4000, 64, 17, 0, s, d)
    ip = ip[:10] + struct.pack(">H", cr.csum(ip)) + ip[12:]
    return bytes(12) + b"\x08\x00" + ip + u


# ---- cases -----------------------------------------------------------------------------------

class Case:
    """Collects datagrams with their expected rows and counters."""

    def __init__(self, name, what):
        self.name, self.what = name, what
        self.frames = []   # (ts_us, frame)
        self.rows = []
        self.exp = {"datagrams": 0, "records": 0, "samples_not_ip": 0, "counter_samples": 0,
                    "seq_lost": 0, "samples_lost": 0, "sample_drops": 0, "seq_resets": 0,
                    "malformed": {}}
        self.exporters = set()
        self.slot = 0

    def send(self, agent, sub_agent, seq, samples, v6=False, lost=False):
        """samples: list of (bytes, expected row dict or None for a counter / non-IP
        sample, kind). A lost datagram takes its time slot but is not written."""
        ts = BASE_US + self.slot * 1000000
        self.slot += 1
        d = datagram(agent, sub_agent, seq, 60000 + self.slot * 1000, [s[0] for s in samples])
        if lost:
            return
        self.frames.append((ts, udp_frame(d, v6)))
        self.exp["datagrams"] += 1
        self.exporters.add("%s/%d" % (agent, sub_agent))
        recv_ms = ts // 1000
        for _, row, kind in samples:
            if kind == "counter":
                self.exp["counter_samples"] += 1
            elif row is None:
                self.exp["samples_not_ip"] += 1
            else:
                self.exp["records"] += 1
                r = dict(recv_ms=recv_ms, exporter=str(ipaddress.ip_address(agent)),
                         domain=sub_agent, version="sflow5", packets=1, start_ms=recv_ms,
                         end_ms=recv_ms)
                r.update(row)
                self.rows.append(r)

    def csv(self):
        cols = HEADER.split(",")
        lines = [HEADER]
        for r in self.rows:
            lines.append(",".join("" if r.get(c) is None else str(r.get(c, "")) for c in cols))
        return "\n".join(lines) + "\n"

    def write(self, out):
        cr.write_pcap(os.path.join(out, self.name + ".pcap"), self.frames)
        with open(os.path.join(out, self.name + ".expect.csv"), "w") as f:
            f.write(self.csv())
        exp = dict(self.exp, exporters=sorted(self.exporters), what=self.what)
        with open(os.path.join(out, self.name + ".expect.json"), "w") as f:
            f.write(cr.dumps_compact(exp))


class Source:
    """One sampler (data source) of an agent: numbers its samples and fills pool/drops."""

    def __init__(self, index, rate=1, stype=0, expanded=False):
        self.source = (stype, index)
        self.rate, self.expanded = rate, expanded
        self.seq = 0
        self.pool = 0
        self.drops = 0

    def sample(self, pkt, snap=SNAP, proto_code=1, extra=(), rate=None, skip=0, drops=None,
               records=None, row=None):
        """A flow sample of pkt (a Pkt). Returns (bytes, expected row, kind)."""
        self.seq += 1 + skip
        r = self.rate if rate is None else rate
        self.pool += max(r, 1) * (1 + skip)
        if drops is not None:
            self.drops = drops
        if records is None:
            records = list(extra) + [raw_header(pkt.frame, proto_code, snap)]
        b = flow_sample(self.seq, self.source, r, self.pool, self.drops, records, self.expanded)
        if row is None and pkt is not None and pkt.is_ip:
            row = expect_from_header(pkt, snap)
        if row is not None:
            row = dict(row, sampling=r or 1)
        return b, row, "flow"


def expect_from_header(p, snap):
    """The contract's row for a raw header record of p cut at snap bytes."""
    hlen = min(len(p.frame), snap)
    sport = dport = 0
    flags = None
    if p.proto in (6, 17) and p.l4_at is not None and p.l4_at + 4 <= hlen:
        sport, dport = p.sport, p.dport
    elif p.proto in (6, 17) and p.l4_at is None:
        pass  # non-first fragment
    if p.proto == 6 and p.l4_at is not None and p.l4_at + 14 <= hlen:
        flags = p.flags
    return dict(src=p.src, dst=p.dst, sport=sport, dport=dport, proto=p.proto, tcp_flags=flags,
                bytes=len(p.frame) + 4)


def with_l4(p, l4_at):
    p.l4_at = l4_at
    return p


def pkt_v4(src, dst, proto, l4, sport=0, dport=0, flags=None, tags=(), ethertype=0x0800,
           mpls_labels=None, **ipkw):
    ip = ipv4(src, dst, proto, l4, **ipkw)
    ihl = (ip[0] & 0x0F) * 4
    if mpls_labels:
        body = mpls(mpls_labels, ip)
        l2 = 14 + 4 * len(tags) + 4 * len(mpls_labels)
        frame = eth(ethertype, body, tags)
    else:
        l2 = 14 + 4 * len(tags)
        frame = eth(ethertype, ip, tags)
    frag = ipkw.get("frag", 0)
    return Pkt(frame, src, dst, proto, sport, dport, flags, None if frag else l2 + ihl)


def pkt_v6(src, dst, chain, l4, proto, sport=0, dport=0, flags=None, tags=(), first_frag=True,
           mpls_labels=None, ethertype=0x86DD):
    """chain: [(nh_code, builder(next) -> bytes)] extension headers in order."""
    # build from the inside out
    nxt = proto
    ext = b""
    for code, build in reversed(chain):
        ext = build(nxt) + ext
        nxt = code
    ip = ipv6(src, dst, nxt, ext + l4)
    if mpls_labels:
        frame = eth(ethertype, mpls(mpls_labels, ip), tags)
        l2 = 14 + 4 * len(tags) + 4 * len(mpls_labels)
    else:
        frame = eth(ethertype, ip, tags)
        l2 = 14 + 4 * len(tags)
    return Pkt(frame, src, dst, proto, sport, dport, flags,
               (l2 + 40 + len(ext)) if first_frag else None)


def cases():
    out = []
    A = "192.0.2.20"  # the agent of most cases (the UDP source is 192.0.2.50)

    c = Case("vlan-qinq", "802.1Q, QinQ (0x88a8 + 0x8100) and 0x9100 + 0x8100 tags before IPv4/"
             "IPv6; the agent address (192.0.2.20) is the exporter, not the UDP source")
    s = Source(5)
    p1 = pkt_v4("10.1.1.10", "198.51.100.7", 6, tcp(40001, 25, SYN), 40001, 25, SYN,
                tags=[(0x8100, 100)])
    p2 = pkt_v4("10.1.1.11", "203.0.113.53", 17, udp(40002, 53, b"q" * 20), 40002, 53,
                tags=[(0x88A8, 200), (0x8100, 300)])
    p3 = pkt_v6("fd00:1::10", "2001:db8:25::1", [], tcp(40003, 587, SYN | ACK), 6, 40003, 587,
                SYN | ACK, tags=[(0x9100, 10), (0x8100, 20)])
    c.send(A, 0, 1, [s.sample(p1), s.sample(p2), s.sample(p3)])
    out.append(c)

    c = Case("mpls", "MPLS label stacks (0x8847 two labels -> IPv4 TCP, 0x8848 one label -> "
             "IPv6 UDP, 0x8847 three labels under an 802.1Q tag -> IPv4 TCP)")
    s = Source(6)
    p1 = pkt_v4("10.2.0.1", "198.51.100.25", 6, tcp(41000, 25, SYN), 41000, 25, SYN,
                ethertype=0x8847, mpls_labels=[16001, 24002])
    p2 = pkt_v6("fd00:2::1", "2001:db8:53::1", [], udp(41001, 53, b"x" * 12), 17, 41001, 53,
                ethertype=0x8848, mpls_labels=[30000])
    p3 = pkt_v4("10.2.0.2", "198.51.100.26", 6, tcp(41002, 465, ACK | PSH, b"d" * 40), 41002, 465,
                ACK | PSH, tags=[(0x8100, 42)], ethertype=0x8847, mpls_labels=[100, 200, 300])
    c.send(A, 0, 1, [s.sample(p1), s.sample(p2), s.sample(p3)])
    out.append(c)

    c = Case("ipv6-ext", "IPv6 extension headers: hop-by-hop + routing + destination options "
             "-> TCP; fragment header (first fragment) -> UDP; AH -> TCP; a non-first fragment "
             "(proto from the fragment header, no ports)")
    s = Source(7)
    hbh = (0, lambda n: ext6(n, bytes([5, 2, 0, 0])))            # router alert
    rt = (43, lambda n: ext6(n, bytes([0, 0]) + bytes(4) + ip6("2001:db8::9")))  # type 0, 1 seg
    dst = (60, lambda n: ext6(n, bytes([1, 2, 0, 0])))           # PadN
    p1 = pkt_v6("fd00:3::1", "2001:db8:25::3", [hbh, rt, dst], tcp(42000, 25, SYN), 6, 42000, 25,
                SYN)
    p2 = pkt_v6("fd00:3::2", "2001:db8:53::3", [(44, lambda n: frag6(n, 0, True))],
                udp(42001, 53, b"y" * 100), 17, 42001, 53)
    p3 = pkt_v6("fd00:3::3", "2001:db8:25::4", [(51, lambda n: ah(n))], tcp(42002, 25, SYN), 6,
                42002, 25, SYN)
    p4 = pkt_v6("fd00:3::4", "2001:db8:53::4", [(44, lambda n: frag6(n, 185, False))],
                b"z" * 60, 17, first_frag=False)
    c.send(A, 0, 1, [s.sample(p1), s.sample(p2), s.sample(p3), s.sample(p4)])
    out.append(c)

    c = Case("ipv4-options-frag", "IPv4 with 8 bytes of options (IHL 7) -> TCP; a first fragment "
             "(MF, offset 0) -> UDP with ports; a non-first fragment (offset 1480) -> no ports")
    s = Source(8)
    p1 = pkt_v4("10.4.0.1", "198.51.100.40", 6, tcp(43000, 25, SYN), 43000, 25, SYN,
                options=bytes([0x94, 0x04, 0, 0]) + bytes([1, 1, 1, 0]))  # router alert, NOPs
    p2 = pkt_v4("10.4.0.2", "203.0.113.40", 17, udp(43001, 514, b"s" * 64), 43001, 514, mf=True)
    p3 = pkt_v4("10.4.0.2", "203.0.113.40", 17, b"t" * 64, frag=185, ident=0x2222)
    c.send(A, 0, 1, [s.sample(p1), s.sample(p2), s.sample(p3)])
    out.append(c)

    c = Case("udp-icmp", "UDP (DNS), ICMP echo, ICMPv6 echo: ports 0 and no flags for ICMP; "
             "a TCP packet longer than the 128-byte header (bytes = frame length + FCS)")
    s = Source(9)
    p1 = pkt_v4("10.5.0.1", "10.0.0.53", 17, udp(44000, 53, b"a" * 30), 44000, 53)
    p2 = pkt_v4("10.5.0.1", "198.51.100.1", 1, icmp_echo(7, 1))
    p3 = pkt_v6("fd00:5::1", "2001:db8::1", [], icmp_echo(8, 1, True), 58)
    p4 = pkt_v4("10.5.0.2", "198.51.100.80", 6, tcp(44001, 443, ACK | PSH, b"w" * 1200), 44001,
                443, ACK | PSH)
    c.send(A, 0, 1, [s.sample(p1), s.sample(p2), s.sample(p3), s.sample(p4)])
    out.append(c)

    c = Case("not-ip", "an ARP frame and a header of unknown protocol (2, ISO 802.4): no row, "
             "samples_not_ip 2; an IPv4 sample between them gives its row")
    s = Source(10)
    arp = Pkt(eth(0x0806, struct.pack(">HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, MAC_A,
                                      ip4("10.6.0.1"), bytes(6), ip4("10.6.0.254"))))
    p2 = pkt_v4("10.6.0.1", "198.51.100.60", 6, tcp(45000, 25, SYN), 45000, 25, SYN)
    odd = Pkt(bytes(range(60)))
    c.send(A, 0, 1, [s.sample(arp), s.sample(p2), s.sample(odd, proto_code=2)])
    out.append(c)

    c = Case("expanded", "expanded flow samples (format 3): source id type 0 index 70000 (over "
             "24 bits), ifIndex format fields; an extended switch record before the header; a "
             "sample with sampling_rate 0 (taken as 1) and one at 512")
    s = Source(70000, rate=512, expanded=True)
    p1 = pkt_v4("10.7.0.1", "198.51.100.70", 6, tcp(46000, 25, SYN), 46000, 25, SYN)
    p2 = pkt_v4("10.7.0.2", "198.51.100.71", 6, tcp(46001, 25, FIN | ACK), 46001, 25, FIN | ACK)
    c.send(A, 0, 1, [s.sample(p1, extra=[ext_switch(10, 20)]), s.sample(p2, rate=0)])
    out.append(c)

    c = Case("sampled-records", "no raw header: sampled IPv4 (format 3, TCP, tcp_flags 0x112 -> "
             "18) and sampled IPv6 (format 4, UDP, flags 0) records, bytes = their length field; "
             "a sampled Ethernet record (format 2) before a sampled IPv4 one is skipped")
    s = Source(11, rate=100)
    r1 = sampled_ipv4(1500, 6, "10.8.0.1", "198.51.100.81", 47000, 25, 0x112)
    r2 = sampled_ipv6(200, 17, "fd00:8::1", "2001:db8:53::8", 47001, 53, 0)
    r3 = [sampled_ethernet(90, MAC_A, MAC_B, 0x0800),
          sampled_ipv4(72, 6, "10.8.0.2", "198.51.100.82", 47002, 587, SYN)]
    c.send(A, 0, 1, [
        s.sample(None, records=[r1], row=dict(src="10.8.0.1", dst="198.51.100.81", sport=47000,
                                               dport=25, proto=6, tcp_flags=18, bytes=1500)),
        s.sample(None, records=[r2], row=dict(src="fd00:8::1", dst="2001:db8:53::8", sport=47001,
                                               dport=53, proto=17, tcp_flags=0, bytes=200)),
        s.sample(None, records=r3, row=dict(src="10.8.0.2", dst="198.51.100.82", sport=47002,
                                             dport=587, proto=6, tcp_flags=SYN, bytes=72))])
    out.append(c)

    c = Case("truncated-tcp", "headers cut inside the TCP header: 8 bytes of TCP (ports known, "
             "flags not), 13 bytes (flags byte just outside), 14 bytes (flags known); and one "
             "cut after 2 bytes of UDP (no ports)")
    s = Source(12)
    p = pkt_v4("10.9.0.1", "198.51.100.90", 6, tcp(48000, 25, SYN), 48000, 25, SYN)
    pu = pkt_v4("10.9.0.2", "203.0.113.90", 17, udp(48001, 53, b"q" * 10), 48001, 53)
    c.send(A, 0, 1, [s.sample(p, snap=14 + 20 + 8), s.sample(p, snap=14 + 20 + 13),
                     s.sample(p, snap=14 + 20 + 14), s.sample(pu, snap=14 + 20 + 2)])
    out.append(c)

    c = Case("counters", "counter samples: format 2 (generic interface counters) and expanded "
             "format 4 (generic + an enterprise-specific record), beside one flow sample")
    s = Source(13)
    p = pkt_v4("10.10.0.1", "198.51.100.100", 6, tcp(49000, 25, SYN), 49000, 25, SYN)
    cs1 = counter_sample(1, (0, 13), [generic_counters(13, 123456, 789, 654321, 987)])
    cs2 = counter_sample(1, (0, 14), [generic_counters(14, 1, 2, 3, 4),
                                      record(7, bytes(8), enterprise=4413)], expanded=True)
    c.send(A, 0, 1, [(cs1, None, "counter"), s.sample(p), (cs2, None, "counter")])
    out.append(c)

    c = Case("ipv6-agent", "an IPv6 agent address (2001:db8:0:1::5, RFC 5952 text) and "
             "sub-agent 3, over IPv6 UDP; the datagram sequence starts at 1000 (no loss)")
    s = Source(15)
    p = pkt_v4("10.11.0.1", "198.51.100.110", 6, tcp(50100, 25, SYN), 50100, 25, SYN)
    c.send("2001:db8:0:1::5", 3, 1000, [s.sample(p)], v6=True)
    c.send("2001:db8:0:1::5", 3, 1001, [s.sample(p)], v6=True)
    out.append(c)

    c = Case("sub-agents", "one agent, two sub-agents (1 and 2) interleaved, each with its own "
             "datagram and sample sequence: two exporters, no loss")
    s1, s2 = Source(1), Source(1)
    for i in range(3):
        pa = pkt_v4("10.12.0.1", "198.51.100.%d" % (120 + i), 6, tcp(51000 + i, 25, SYN),
                    51000 + i, 25, SYN)
        pb = pkt_v4("10.12.0.2", "198.51.100.%d" % (130 + i), 17, udp(52000 + i, 53, b"r"),
                    52000 + i, 53)
        c.send(A, 1, i + 1, [s1.sample(pa)])
        c.send(A, 2, i + 1, [s2.sample(pb)])
    out.append(c)

    c = Case("seq-gap", "datagram 3 of 5 is lost (with its 2 flow samples): seq_lost 1, "
             "samples_lost 2")
    s = Source(16)
    for i in range(5):
        ps = [pkt_v4("10.13.0.1", "198.51.100.%d" % (140 + 2 * i + k), 6,
                     tcp(53000 + 2 * i + k, 25, SYN), 53000 + 2 * i + k, 25, SYN) for k in (0, 1)]
        c.send(A, 0, i + 1, [s.sample(ps[0]), s.sample(ps[1])], lost=(i == 2))
    c.exp["seq_lost"], c.exp["samples_lost"] = 1, 2
    out.append(c)

    c = Case("sample-gap", "no datagram lost, but source 17 skips 3 sample sequence numbers "
             "(sample 3 -> 7) while source 18 beside it is complete: samples_lost 3")
    sa, sb = Source(17), Source(18)
    for i in range(4):
        pa = pkt_v4("10.14.0.1", "198.51.100.%d" % (160 + i), 6, tcp(54000 + i, 25, SYN),
                    54000 + i, 25, SYN)
        pb = pkt_v4("10.14.0.2", "198.51.100.%d" % (170 + i), 6, tcp(55000 + i, 25, SYN),
                    55000 + i, 25, SYN)
        c.send(A, 0, i + 1, [sa.sample(pa, skip=3 if i == 2 else 0), sb.sample(pb)])
    c.exp["samples_lost"] = 3
    out.append(c)

    c = Case("drops", "the drops counter of one source goes 0, 0, 5, 5, 12: sample_drops 12")
    s = Source(19)
    for i, dr in enumerate([0, 0, 5, 5, 12]):
        p = pkt_v4("10.15.0.1", "198.51.100.%d" % (180 + i), 6, tcp(56000 + i, 25, SYN),
                   56000 + i, 25, SYN)
        c.send(A, 0, i + 1, [s.sample(p, drops=dr)])
    c.exp["sample_drops"] = 12
    out.append(c)
    return out


# ---- hostile vectors -------------------------------------------------------------------------

def hostile():
    """[(file name, bytes, what it is, counter it should raise)]."""
    A = "192.0.2.66"
    p = pkt_v4("10.66.0.1", "198.51.100.66", 6, tcp(60000, 25, SYN), 60000, 25, SYN)
    good = flow_sample(1, (0, 1), 1, 1, 0, [raw_header(p.frame)])
    v = []

    def hdr(count, sub=0, seq=1):
        return struct.pack(">I", 5) + xdr_addr(A) + struct.pack(">IIII", sub, seq, 1000, count)

    d = hdr(1) + struct.pack(">II", 1, 4000) + good[8:]
    v.append(("sample-length-past-end.bin", d, "one flow sample whose length (4000) runs past "
              "the datagram", "bad_set_length"))
    rec = raw_header(p.frame)
    rec_bad = rec[:4] + struct.pack(">I", 3000) + rec[8:]
    body = struct.pack(">IIIIIIII", 1, 1, 1, 1, 0, 1, 2, 1) + rec_bad
    d = hdr(1) + struct.pack(">II", 1, len(body)) + body
    v.append(("record-length-past-sample.bin", d, "the sample's length is right, its raw header "
              "record says 3000 bytes", "bad_set_length (the contract: a record length runs "
              "past its container); main's decoder at 56f2212 counts bad_sample"))
    d = hdr(5) + good + good
    v.append(("sample-count-high.bin", d, "header says 5 samples, 2 are there", "bad_length"))
    d = hdr(1) + good + good
    v.append(("sample-count-low.bin", d, "header says 1 sample, 2 are there", "bad_length"))
    d = hdr(0xFFFFFFFF) + good
    v.append(("sample-count-huge.bin", d, "header says 2^32-1 samples (an allocation sized by "
              "it would be 4 G entries), 1 is there", "bad_length"))
    hb = struct.pack(">IIII", 1, 64, 4, 200) + p.frame[:60]
    body = struct.pack(">IIIIIIII", 1, 1, 1, 1, 0, 1, 2, 1) + record(1, hb)
    d = hdr(1) + struct.pack(">II", 1, len(body)) + body
    v.append(("header-longer-than-record.bin", d, "raw header record of 76 bytes whose "
              "header_length says 200", "bad_sample"))
    body = struct.pack(">IIIIIIII", 1, 1, 1, 1, 0, 1, 2, 1) + record(1, b"")
    d = hdr(1) + struct.pack(">II", 1, len(body)) + body
    v.append(("zero-length-header-record.bin", d, "a raw header record (format 1) of length 0 "
              "(it needs at least 16)", "bad_sample"))
    d = hdr(1) + struct.pack(">II", 1, 0)
    v.append(("zero-length-flow-sample.bin", d, "a flow sample (format 1) of length 0",
              "bad_sample"))
    body = struct.pack(">IIIIIIII", 1, 1, 1, 1, 0, 1, 2, 2) + record(1002, b"") + rec
    d = hdr(1) + struct.pack(">II", 1, len(body)) + body
    v.append(("zero-length-unknown-record.bin", d, "a zero-length record of an unknown format "
              "(1002) before a good raw header: legal, skipped; 1 record, nothing malformed",
              "none (records 1)"))
    body = struct.pack(">IIIIIIII", 1, 1, 1, 1, 0, 1, 2, 3) + rec
    d = hdr(1) + struct.pack(">II", 1, len(body)) + body
    v.append(("record-count-high.bin", d, "a flow sample that says 3 records and holds 1",
              "bad_sample"))
    d = struct.pack(">II", 5, 1) + ip4(A) + struct.pack(">II", 0, 1)
    v.append(("short-header.bin", d, "a datagram cut inside its header (20 of 28 bytes)",
              "short_header"))
    rng = random.Random(5)
    d = struct.pack(">I", 5) + bytes(rng.getrandbits(8) for _ in range(65536 - 4))
    v.append(("random-64k.bin", d, "65536 bytes: 00 00 00 05 then random (seed 5); more than "
              "fits in a UDP datagram, as a fuzzer would feed it", "never a crash; its agent "
              "address type (0x9f41bd5b) is neither 1 nor 2, so no exporter row: main's decoder "
              "counts totals.sflow_no_agent"))
    return v


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="fixtures/sflow-hand")
    ap.add_argument("--hostile")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    for c in cases():
        c.write(a.out)
        print("%s/%s.pcap: %d datagrams, %d rows" % (a.out, c.name, c.exp["datagrams"],
                                                     c.exp["records"]), file=sys.stderr)
    if a.hostile:
        os.makedirs(a.hostile, exist_ok=True)
        lines = ["# sFlow v5 hostile vectors", "",
                 "Raw sFlow v5 datagrams (no pcap framing), one per file, written by "
                 "`scripts/build_sflow.py --hostile` (fixtures/make.sh sflow-hand). Each must be "
                 "refused without reading past its end; the counter is the `malformed` reason of "
                 "the decode contract it should raise (agent 192.0.2.66).", "",
                 "| file | what | counter |", "|---|---|---|"]
        for name, data, what, counter in hostile():
            with open(os.path.join(a.hostile, name), "wb") as f:
                f.write(data)
            lines.append("| `%s` | %s (%d bytes) | %s |" % (name, what, len(data), counter))
        with open(os.path.join(a.hostile, "README.md"), "w") as f:
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
