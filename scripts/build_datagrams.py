#!/usr/bin/python3
"""Hand-built NetFlow v5 / v9 / IPFIX datagrams with their expected decode.

Every case writes fixtures/hand/<case>.pcap (Ethernet + IPv4/IPv6 + UDP, built here with
struct, no scapy) and fixtures/hand/<case>.expect.csv: the --flows CSV the daemon should
print, computed from the values this script encoded (an oracle independent of the C
decoders). Some cases also write <case>.expect.json with counters that are not visible in
the CSV (sets without a template, sequence-number loss).

The interpretation rules the oracle applies are in expect_row() and documented in
fixtures/README.md ("Hand-built cases"); the few places where the right answer is a choice
rather than a fact are listed there too.

Usage: build_datagrams.py [--out fixtures/hand]
"""

import argparse
import csv
import io
import ipaddress
import json
import os
import struct
import sys

HEADER = ("recv_ms,exporter,domain,version,src,dst,sport,dport,proto,tcp_flags,packets,bytes,"
          "start_ms,end_ms,sampling,fw_event,direction,nat_src,nat_dst,nat_sport,nat_dport,"
          "rev_packets,rev_bytes")

# 2026-01-15 11:00:00.250123 UTC: a sub-millisecond part, so recv_ms truncation shows.
BASE_US = 1768474800 * 1000000 + 250123

PEN_REVERSE = 29305  # RFC 5103
FW_EVENTS = {1: "created", 2: "deleted", 3: "denied", 4: "alert", 5: "update"}

# IE numbers used below
SRC4, DST4, SPORT, DPORT, PROTO, TCPFLAGS = 8, 12, 7, 11, 4, 6
SRC6, DST6 = 27, 28
OCTETS, PACKETS, OCTETS_TOTAL, PACKETS_TOTAL = 1, 2, 85, 86
END_UPTIME, START_UPTIME = 21, 22  # IPFIX flowEnd/StartSysUpTime; v9 LAST/FIRST_SWITCHED
START_SEC, END_SEC, START_MS, END_MS = 150, 151, 152, 153
SYSINIT_MS = 160
DIRECTION = 61
SAMPLER_ID, SAMPLING_INTERVAL, SAMPLING_ALGO = 48, 34, 35
PKT_INTERVAL, PKT_SPACE, SELECTOR_ALGO = 305, 306, 304
METERING_PID, OBS_DOMAIN = 143, 149
NAT_SRC, NAT_DST, NAT_SPORT, NAT_DPORT = 225, 226, 227, 228
FW_EVENT, FW_EVENT_84 = 233, 40005
INIT_OCTETS, RESP_OCTETS, INIT_PACKETS, RESP_PACKETS = 231, 232, 298, 299
EVENT_TIME_MS = 323
IP_VERSION = 60                      # ipVersion / IP_PROTOCOL_VERSION
OUT_BYTES, OUT_PKTS = 23, 24         # v9 OUT_BYTES/OUT_PKTS; IPFIX postOctet/postPacketDeltaCount
NAT_SRC6, NAT_DST6 = 281, 282        # postNATSourceIPv6Address / postNATDestinationIPv6Address
BGP_SRC_AS, BGP_DST_AS = 16, 17
APP_NAME, VRF_NAME = 96, 236         # applicationName, VRFname (variable length strings)
VARLEN = 0xFFFF

# The collector keeps exported times only within this window around the export time
# (collector/session.h times_plausible(): start <= end, start >= export - 90 days,
# end <= export + 1 day); outside it start/end stay empty and times_dropped counts it.
TIMES_PAST_MS = 90 * 86400 * 1000
TIMES_FUTURE_MS = 86400 * 1000


# ---- packet / pcap writing ----------------------------------------------------------------

def csum(b):
    if len(b) % 2:
        b += b"\x00"
    s = sum(struct.unpack(">%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def udp_frame(src, dst, sport, dport, payload):
    """Ethernet + IPv4/IPv6 + UDP with valid checksums."""
    s, d = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    ulen = 8 + len(payload)
    if s.version == 4:
        pseudo = s.packed + d.packed + struct.pack(">BBH", 0, 17, ulen)
    else:
        pseudo = s.packed + d.packed + struct.pack(">IxxxB", ulen, 17)
    udp = struct.pack(">HHHH", sport, dport, ulen, 0) + payload
    c = csum(pseudo + udp) or 0xFFFF
    udp = udp[:6] + struct.pack(">H", c) + udp[8:]
    if s.version == 4:
        ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + ulen, 0, 0x4000, 64, 17, 0,
                         s.packed, d.packed)
        ip = ip[:10] + struct.pack(">H", csum(ip)) + ip[12:]
        et = 0x0800
    else:
        ip = struct.pack(">IHBB16s16s", 6 << 28, ulen, 17, 64, s.packed, d.packed)
        et = 0x86DD
    eth = bytes.fromhex("020000000002") + bytes.fromhex("020000000001") + struct.pack(">H", et)
    return eth + ip + udp


def write_pcap(path, pkts):
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for ts, frame in pkts:
            f.write(struct.pack("<IIII", ts // 1000000, ts % 1000000, len(frame), len(frame)))
            f.write(frame)


# ---- templates and records ----------------------------------------------------------------

class F:
    """A template field: IE number, length on the wire, enterprise number (0 = IANA)."""

    def __init__(self, ie, length, pen=0):
        self.ie, self.length, self.pen = ie, length, pen

    def key(self):
        return (self.pen, self.ie)


def fields(*spec):
    """fields((8, 4), (12, 4), (1, 8, 29305), ...) -> [F]"""
    return [F(*s) for s in spec]


def enc_value(f, v):
    if isinstance(v, str):  # an address
        b = ipaddress.ip_address(v).packed
    elif isinstance(v, bytes):
        b = v
    else:
        b = None
    if f.length == VARLEN:
        if b is None:
            raise ValueError("variable-length field needs bytes")
        return varlen_prefix(len(b)) + b
    if b is not None:
        if len(b) != f.length:
            raise ValueError("IE %d: %d bytes for a %d-byte field" % (f.ie, len(b), f.length))
        return b
    if v < 0 or v >= 1 << (8 * f.length):
        raise ValueError("IE %d: %d does not fit %d bytes" % (f.ie, v, f.length))
    return v.to_bytes(f.length, "big")


def varlen_prefix(n, force_long=False):
    if n < 255 and not force_long:
        return bytes([n])
    return b"\xff" + struct.pack(">H", n)


class Long:
    """A variable-length value to be written with the 3-byte length prefix even if short."""

    def __init__(self, data):
        self.data = data


def enc_record(flds, values):
    """values: {(pen, ie) or ie: value}. Every template field must have a value."""
    out = b""
    for f in flds:
        v = values.get(f.key(), values.get(f.ie) if f.pen == 0 else None)
        if v is None:
            raise ValueError("no value for IE %d/%d" % (f.pen, f.ie))
        if isinstance(v, Long):
            assert f.length == VARLEN
            out += varlen_prefix(len(v.data), True) + v.data
        else:
            out += enc_value(f, v)
    return out


def norm_values(flds, values):
    """{(pen, ie): value} for exactly the fields of the template (what the wire carries)."""
    out = {}
    for f in flds:
        v = values.get(f.key(), values.get(f.ie) if f.pen == 0 else None)
        if isinstance(v, Long):
            v = v.data
        out[f.key()] = v
    return out


def pad4(b):
    return b + bytes(-len(b) % 4)


# IPFIX -----------------------------------------------------------------------------------

def ipfix_template_set(templates):
    """templates: [(tid, [F])]; a template with an empty field list is a withdrawal."""
    body = b""
    for tid, flds in templates:
        body += struct.pack(">HH", tid, len(flds))
        for f in flds:
            if f.pen:
                body += struct.pack(">HHI", f.ie | 0x8000, f.length, f.pen)
            else:
                body += struct.pack(">HH", f.ie, f.length)
    return struct.pack(">HH", 2, 4 + len(body)) + body


def ipfix_options_template_set(templates):
    """templates: [(tid, scope [F], other [F])]"""
    body = b""
    for tid, scope, other in templates:
        body += struct.pack(">HHH", tid, len(scope) + len(other), len(scope))
        for f in scope + other:
            if f.pen:
                body += struct.pack(">HHI", f.ie | 0x8000, f.length, f.pen)
            else:
                body += struct.pack(">HH", f.ie, f.length)
    return struct.pack(">HH", 3, 4 + len(body)) + body


def data_set(tid, records, pad=0):
    body = b"".join(records) + bytes(pad)
    return struct.pack(">HH", tid, 4 + len(body)) + body


def ipfix_message(export_time, seq, domain, sets):
    body = b"".join(sets)
    return struct.pack(">HHIII", 10, 16 + len(body), export_time, seq, domain) + body


# NetFlow v9 ------------------------------------------------------------------------------

def v9_template_flowset(templates):
    body = b""
    for tid, flds in templates:
        body += struct.pack(">HH", tid, len(flds))
        for f in flds:
            assert f.pen == 0
            body += struct.pack(">HH", f.ie, f.length)
    return struct.pack(">HH", 0, 4 + len(body)) + body


def v9_options_template_flowset(templates):
    body = b""
    for tid, scope, other in templates:
        body += struct.pack(">HHH", tid, 4 * len(scope), 4 * len(other))
        for f in scope + other:
            body += struct.pack(">HH", f.ie, f.length)
    body = pad4(body)
    return struct.pack(">HH", 1, 4 + len(body)) + body


def v9_message(uptime, unix_secs, seq, source_id, flowsets, count):
    body = b"".join(flowsets)
    return struct.pack(">HHIIII", 9, count, uptime, unix_secs, seq, source_id) + body


# NetFlow v5 ------------------------------------------------------------------------------

def v5_message(uptime, secs, nsecs, seq, engine_type, engine_id, sampling, records):
    hdr = struct.pack(">HHIIIIBBH", 5, len(records), uptime, secs, nsecs, seq, engine_type,
                      engine_id, sampling)
    body = b""
    for r in records:
        body += struct.pack(">4s4s4sHHIIIIHHBBBBHHBBH",
                            ipaddress.IPv4Address(r["src"]).packed,
                            ipaddress.IPv4Address(r["dst"]).packed,
                            bytes(4), 1, 2, r["packets"], r["bytes"], r["first"], r["last"],
                            r["sport"], r["dport"], 0, r["flags"], r["proto"], 0, 0, 0, 0, 0, 0)
    return hdr + body


# ---- the oracle ---------------------------------------------------------------------------

class Ctx:
    """What the collector knows when it decodes one record."""

    def __init__(self, recv_us, exporter, domain, version, sampling=1, sysinit_ms=None,
                 uptime=None, unix_secs=None, export_ms=None):
        self.recv_ms = recv_us // 1000
        # the header's export time: every case here writes the pcap second into it (v9
        # unix_secs, IPFIX export time), so it defaults to that
        self.export_ms = export_ms if export_ms is not None else recv_us // 1000000 * 1000
        self.exporter = str(ipaddress.ip_address(exporter))
        self.domain = domain
        self.version = version
        self.sampling = sampling
        self.sysinit_ms = sysinit_ms
        self.uptime = uptime
        self.unix_secs = unix_secs


def addr_text(v):
    a = ipaddress.ip_address(v)
    if a.version == 6 and a.ipv4_mapped is not None:
        return str(a.ipv4_mapped)  # the collector stores IPv4 as mapped and prints dotted
    return str(a)  # Python prints IPv6 in RFC 5952 form


def addr_zero(v):
    return ipaddress.ip_address(v).packed == bytes(len(ipaddress.ip_address(v).packed))


def address_family(v):
    """Which address family a record carries (rule 1 of issue 12, see fixtures/README.md).
    Returns 4, 6, or None when the record is ambiguous (not emitted, ambiguous_addr)."""
    def has(ie):
        return (0, ie) in v

    has4 = has(SRC4) or has(DST4)
    has6 = has(SRC6) or has(DST6)
    if not (has4 and has6):
        return 4 if has4 else 6 if has6 else None
    # Dual-stack template (Procera and others zero-fill the unused family):
    # ipVersion 60 when the template has it (4 or 6; anything else is ambiguous) ...
    if has(IP_VERSION):
        ver = v[(0, IP_VERSION)]
        return ver if ver in (4, 6) else None
    # ... else the family whose addresses are non-zero; both or neither: ambiguous
    nz4 = any(not addr_zero(v[(0, ie)]) for ie in (SRC4, DST4) if has(ie))
    nz6 = any(not addr_zero(v[(0, ie)]) for ie in (SRC6, DST6) if has(ie))
    if nz4 == nz6:
        return None
    return 4 if nz4 else 6


def expect_row(ctx, v):
    """v: {(pen, ie): value} as encoded. Returns (row, event): the CSV row (list of str) or
    None when the record is not emitted, and the counter the record adds to, if any
    ("ambiguous_addr", "times_dropped")."""
    def g(ie, pen=0):
        return v.get((pen, ie))

    def has(ie, pen=0):
        return (pen, ie) in v

    event = None
    dual = (has(SRC4) or has(DST4)) and (has(SRC6) or has(DST6))
    if dual:
        fam = address_family(v)
        if fam is None:
            return None, "ambiguous_addr"
        s_ie, d_ie = (SRC4, DST4) if fam == 4 else (SRC6, DST6)
        zero = "0.0.0.0" if fam == 4 else "::"
        src = g(s_ie) if has(s_ie) else zero
        dst = g(d_ie) if has(d_ie) else zero
    else:
        fam = None
        src = g(SRC4) if has(SRC4) else g(SRC6) if has(SRC6) else "::"
        dst = g(DST4) if has(DST4) else g(DST6) if has(DST6) else "::"
    row = [str(ctx.recv_ms), ctx.exporter, str(ctx.domain), str(ctx.version),
           addr_text(src), addr_text(dst), str(g(SPORT) or 0), str(g(DPORT) or 0),
           str(g(PROTO) or 0)]
    row.append(str(g(TCPFLAGS) & 0xFF) if has(TCPFLAGS) else "")
    pk = next((g(ie) for ie in (PACKETS, PACKETS_TOTAL, INIT_PACKETS) if has(ie)), None)
    by = next((g(ie) for ie in (OCTETS, OCTETS_TOTAL, INIT_OCTETS) if has(ie)), None)
    # Egress-only counters: OUT_PKTS/OUT_BYTES (IPFIX postPacket/postOctetDeltaCount)
    # when the template has none of the above, or when the chosen one reads zero.
    if has(OUT_PKTS) and not pk:
        pk = g(OUT_PKTS)
    if has(OUT_BYTES) and not by:
        by = g(OUT_BYTES)
    row += ["" if pk is None else str(pk), "" if by is None else str(by)]

    def uptime_to_ms(x):
        if ctx.version == 10:
            assert ctx.sysinit_ms is not None, "21/22 without systemInitTime"
            return ctx.sysinit_ms + x
        # RFC 3954: sysUptime-relative; a signed 32-bit difference survives the wrap and
        # allows a record that ends just after the header's sysUptime
        d = (ctx.uptime - x) & 0xFFFFFFFF
        if d >= 0x80000000:
            d -= 0x100000000
        return ctx.unix_secs * 1000 - d

    start = end = None
    if has(START_MS):
        start = g(START_MS)
    elif has(START_SEC):
        start = g(START_SEC) * 1000
    elif has(START_UPTIME):
        start = uptime_to_ms(g(START_UPTIME))
    elif has(EVENT_TIME_MS):
        start = g(EVENT_TIME_MS)
    if has(END_MS):
        end = g(END_MS)
    elif has(END_SEC):
        end = g(END_SEC) * 1000
    elif has(END_UPTIME):
        end = uptime_to_ms(g(END_UPTIME))
    elif has(EVENT_TIME_MS):
        end = g(EVENT_TIME_MS)
    if start is None and end is not None:
        start = end
    if end is None and start is not None:
        end = start
    if start is not None and not (start <= end and start >= ctx.export_ms - TIMES_PAST_MS
                                  and end <= ctx.export_ms + TIMES_FUTURE_MS):
        start = end = None
        event = "times_dropped"
    row += ["", ""] if start is None else [str(start), str(end)]
    row.append(str(ctx.sampling))
    ev = g(FW_EVENT) if has(FW_EVENT) else g(FW_EVENT_84) if has(FW_EVENT_84) else None
    row.append("" if ev is None else FW_EVENTS[ev])
    row.append("" if not has(DIRECTION) else ("in" if g(DIRECTION) == 0 else "out"))
    if any(has(ie) for ie in (NAT_SRC, NAT_DST, NAT_SPORT, NAT_DPORT, NAT_SRC6, NAT_DST6)):
        # NAT addresses follow the record's family in a dual-stack template; otherwise
        # 225/226 when the template has them, else 281/282
        v6nat = fam == 6 if dual else not (has(NAT_SRC) or has(NAT_DST))
        ns, nd, zero = (NAT_SRC6, NAT_DST6, "::") if v6nat else (NAT_SRC, NAT_DST, "0.0.0.0")
        row += [addr_text(g(ns) or zero), addr_text(g(nd) or zero),
                str(g(NAT_SPORT) or 0), str(g(NAT_DPORT) or 0)]
    else:
        row += ["", "", "", ""]
    if has(PACKETS, PEN_REVERSE) or has(OCTETS, PEN_REVERSE):
        row += [str(g(PACKETS, PEN_REVERSE) or 0), str(g(OCTETS, PEN_REVERSE) or 0)]
    elif has(RESP_PACKETS) or has(RESP_OCTETS):
        row += [str(g(RESP_PACKETS) or 0), str(g(RESP_OCTETS) or 0)]
    else:
        row += ["", ""]
    return row, event


class Case:
    """Collects datagrams and expected rows for one fixture."""

    def __init__(self, name, exporter, collector, dport, sport=50000):
        self.name = name
        self.exporter, self.collector = exporter, collector
        self.dport, self.sport = dport, sport
        self.pkts = []
        self.rows = []
        self.extra = {}
        self.t = BASE_US
        # summary counters the oracle's rules add to; written to expect.json only for the
        # cases that name them in `counters` (older expect files stay as they were)
        self.counts = {}
        self.counters = ()

    def next_time(self, step_us=1000000):
        t = self.t
        self.t += step_us
        return t

    def send(self, ts_us, payload):
        self.pkts.append((ts_us, udp_frame(self.exporter, self.collector, self.sport,
                                           self.dport, payload)))

    def expect(self, ctx, flds, values):
        row, event = expect_row(ctx, norm_values(flds, values))
        if row is not None:
            self.rows.append(row)
        if event is not None:
            assert event in self.counters, "%s: %s not declared" % (self.name, event)
            self.counts[event] = self.counts.get(event, 0) + 1

    def write(self, outdir):
        write_pcap(os.path.join(outdir, self.name + ".pcap"), self.pkts)
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        for r in self.rows:
            w.writerow(r)
        with open(os.path.join(outdir, self.name + ".expect.csv"), "w") as f:
            f.write(HEADER + "\n" + buf.getvalue())
        info = {"datagrams": len(self.pkts), "records": len(self.rows)}
        info.update({k: self.counts.get(k, 0) for k in self.counters})
        info.update(self.extra)
        with open(os.path.join(outdir, self.name + ".expect.json"), "w") as f:
            json.dump(info, f, indent=1, sort_keys=True)
            f.write("\n")


EXP4 = "192.0.2.1"      # IPFIX exporters
EXP9 = "192.0.2.9"      # NetFlow v9 exporters
EXP5 = "192.0.2.5"      # NetFlow v5 exporter
COLL4 = "192.0.2.100"   # the collector
IPFIX_PORT, NF_PORT = 4739, 2055

BASIC4 = fields((SRC4, 4), (DST4, 4), (SPORT, 2), (DPORT, 2), (PROTO, 1), (TCPFLAGS, 1),
                (PACKETS, 8), (OCTETS, 8), (START_MS, 8), (END_MS, 8))


def flow4(i, kw=None):
    """Distinct plausible values for record i; kw overrides ({ie or (pen, ie): value})."""
    v = {SRC4: "10.1.0.%d" % (10 + i), DST4: "198.51.100.%d" % (20 + i), SPORT: 40000 + i,
         DPORT: 25, PROTO: 6, TCPFLAGS: 0x1B, PACKETS: 10 + i, OCTETS: 1500 + 100 * i,
         START_MS: 1768474790000 + 1000 * i, END_MS: 1768474795000 + 1000 * i}
    v.update(kw or {})
    return v


# ---- cases --------------------------------------------------------------------------------

def case_ipfix_options_sampling():
    """samplerId-scoped options record (48 -> 34) applied to records carrying 48."""
    c = Case("ipfix-options-sampling", EXP4, COLL4, IPFIX_PORT)
    dom = 7
    opt = (400, fields((SAMPLER_ID, 1)), fields((SAMPLING_INTERVAL, 4), (SAMPLING_ALGO, 1)))
    tdata = BASIC4 + fields((SAMPLER_ID, 1))
    seq = 0
    # message 1: options template + options data (sampler 5 = 1 in 100, sampler 6 = 1 in
    # 1000), data template, data with sampler 5 and 6
    ts = c.next_time()
    ctx100 = Ctx(ts, EXP4, dom, 10, sampling=100)
    ctx1000 = Ctx(ts, EXP4, dom, 10, sampling=1000)
    recs = [flow4(0, {SAMPLER_ID: 5}), flow4(1, {SAMPLER_ID: 5}),
            flow4(2, {SAMPLER_ID: 6})]
    opts = [enc_record(opt[1] + opt[2], {SAMPLER_ID: 5, SAMPLING_INTERVAL: 100,
                                         SAMPLING_ALGO: 1}),
            enc_record(opt[1] + opt[2], {SAMPLER_ID: 6, SAMPLING_INTERVAL: 1000,
                                         SAMPLING_ALGO: 2})]
    c.send(ts, ipfix_message(ts // 1000000, seq, dom, [
        ipfix_options_template_set([opt]),
        data_set(400, opts, pad=2),
        ipfix_template_set([(256, tdata)]),
        data_set(256, [enc_record(tdata, r) for r in recs])]))
    seq += len(opts) + len(recs)
    for r, cx in zip(recs, (ctx100, ctx100, ctx1000)):
        c.expect(cx, tdata, r)
    # message 2: more data for sampler 5 only
    ts = c.next_time()
    recs = [flow4(3, {SAMPLER_ID: 5}), flow4(4, {SAMPLER_ID: 5, PROTO: 17, TCPFLAGS: 0})]
    c.send(ts, ipfix_message(ts // 1000000, seq, dom,
                             [data_set(256, [enc_record(tdata, r) for r in recs])]))
    for r in recs:
        c.expect(Ctx(ts, EXP4, dom, 10, sampling=100), tdata, r)
    return c


def case_ipfix_options_sampling_psamp():
    """softflowd-style: options scoped by meteringProcessId carrying 305/306 (1, 99 -> 100);
    data records carry no sampler id, so the interval applies to the whole domain. The
    first message's data arrives before any options record (sampling 1)."""
    c = Case("ipfix-options-sampling-psamp", EXP4, COLL4, IPFIX_PORT)
    dom = 8
    opt = (300, fields((METERING_PID, 4)),
           fields((PKT_INTERVAL, 4), (PKT_SPACE, 4), (SELECTOR_ALGO, 2)))
    seq = 0
    ts = c.next_time()
    recs = [flow4(0), flow4(1)]
    c.send(ts, ipfix_message(ts // 1000000, seq, dom, [
        ipfix_template_set([(256, BASIC4)]),
        data_set(256, [enc_record(BASIC4, r) for r in recs])]))
    seq += len(recs)
    for r in recs:
        c.expect(Ctx(ts, EXP4, dom, 10, sampling=1), BASIC4, r)
    ts = c.next_time()
    recs = [flow4(2), flow4(3), flow4(4)]
    o = enc_record(opt[1] + opt[2], {METERING_PID: 4242, PKT_INTERVAL: 1, PKT_SPACE: 99,
                                     SELECTOR_ALGO: 1})
    c.send(ts, ipfix_message(ts // 1000000, seq, dom, [
        ipfix_options_template_set([opt]),
        data_set(300, [o], pad=2),
        data_set(256, [enc_record(BASIC4, r) for r in recs])]))
    for r in recs:
        c.expect(Ctx(ts, EXP4, dom, 10, sampling=100), BASIC4, r)
    return c


def case_ipfix_withdrawal():
    c = Case("ipfix-withdrawal", EXP4, COLL4, IPFIX_PORT)
    dom = 3
    t_a = BASIC4
    t_b = fields((SRC4, 4), (DST4, 4), (PROTO, 1), (PACKETS, 4), (OCTETS, 4))
    seq = 0
    no_tmpl_sets = no_tmpl_bytes = 0

    def msg(sets, nrec):
        nonlocal seq
        ts = c.next_time()
        c.send(ts, ipfix_message(ts // 1000000, seq, dom, sets))
        seq += nrec
        return ts

    r = [flow4(0), flow4(1)]
    ts = msg([ipfix_template_set([(300, t_a)]), data_set(300, [enc_record(t_a, x) for x in r])],
             2)
    for x in r:
        c.expect(Ctx(ts, EXP4, dom, 10), t_a, x)
    # withdrawal of 300 alone
    msg([ipfix_template_set([(300, [])])], 0)
    # data for the withdrawn 300: not decodable
    body = [enc_record(t_a, flow4(2))]
    msg([data_set(300, body)], 1)
    no_tmpl_sets += 1
    no_tmpl_bytes += len(body[0])
    # a new, different template 300
    r = [{SRC4: "10.2.0.1", DST4: "203.0.113.7", PROTO: 17, PACKETS: 3, OCTETS: 300},
         {SRC4: "10.2.0.2", DST4: "203.0.113.8", PROTO: 1, PACKETS: 4, OCTETS: 336}]
    ts = msg([ipfix_template_set([(300, t_b)]), data_set(300, [enc_record(t_b, x) for x in r])],
             2)
    for x in r:
        c.expect(Ctx(ts, EXP4, dom, 10), t_b, x)
    # all-templates withdrawal (template ID 2, field count 0), then data: not decodable
    msg([ipfix_template_set([(2, [])])], 0)
    body = [enc_record(t_b, {SRC4: "10.2.0.3", DST4: "203.0.113.9", PROTO: 6, PACKETS: 1,
                             OCTETS: 40})]
    msg([data_set(300, body)], 1)
    no_tmpl_sets += 1
    c.extra = {"sets_without_template": no_tmpl_sets, "records_not_decoded": 2,
               "template_withdrawals": 2}
    return c


def case_ipfix_reduced_length():
    c = Case("ipfix-reduced-length", EXP4, COLL4, IPFIX_PORT)
    dom = 4
    t_a = fields((SRC4, 4), (DST4, 4), (SPORT, 2), (DPORT, 2), (PROTO, 1),
                 (OCTETS, 4), (PACKETS, 2), (START_MS, 8), (END_MS, 8))
    t_b = fields((SRC4, 4), (DST4, 4), (OCTETS, 3), (PACKETS, 1), (PROTO, 1))
    ts = c.next_time()
    ra = [flow4(0, {OCTETS: 0xFFFFFFFF, PACKETS: 0xFFFF}), flow4(1, {OCTETS: 1, PACKETS: 1})]
    rb = [{SRC4: "10.4.0.1", DST4: "192.0.2.200", OCTETS: 0xABCDEF, PACKETS: 255, PROTO: 17},
          {SRC4: "10.4.0.2", DST4: "192.0.2.201", OCTETS: 70000, PACKETS: 200, PROTO: 6}]
    # t_b records are 13 bytes: two of them (26) are padded to 28 (padding < record length)
    c.send(ts, ipfix_message(ts // 1000000, 0, dom, [
        ipfix_template_set([(256, t_a), (257, t_b)]),
        data_set(256, [enc_record(t_a, x) for x in ra]),
        data_set(257, [enc_record(t_b, x) for x in rb], pad=2)]))
    for x in ra:
        c.expect(Ctx(ts, EXP4, dom, 10), t_a, x)
    for x in rb:
        c.expect(Ctx(ts, EXP4, dom, 10), t_b, x)
    return c


def case_v9_nsel():
    """Cisco ASA NSEL over NetFlow v9."""
    c = Case("v9-nsel", EXP9, COLL4, NF_PORT)
    src_id = 0x0100
    t_new = fields((SRC4, 4), (DST4, 4), (SPORT, 2), (DPORT, 2), (PROTO, 1),
                   (NAT_SRC, 4), (NAT_DST, 4), (NAT_SPORT, 2), (NAT_DPORT, 2),
                   (FW_EVENT, 1), (INIT_OCTETS, 4), (RESP_OCTETS, 4),
                   (INIT_PACKETS, 8), (RESP_PACKETS, 8), (START_MS, 8), (EVENT_TIME_MS, 8))
    t_old = fields((SRC4, 4), (DST4, 4), (SPORT, 2), (DPORT, 2), (PROTO, 1),
                   (FW_EVENT_84, 1), (INIT_OCTETS, 4), (RESP_OCTETS, 4), (EVENT_TIME_MS, 8))
    uptime0 = 86400000  # one day
    base_ms = 1768474790000

    def nsel(i, ev, counters, start_off, ev_off, nat=True, dport=25):
        v = {SRC4: "10.10.0.%d" % (5 + i), DST4: "203.0.113.%d" % (50 + i),
             SPORT: 51000 + i, DPORT: dport, PROTO: 6,
             NAT_SRC: "198.18.5.1" if nat else "0.0.0.0",
             NAT_DST: "203.0.113.%d" % (50 + i) if nat else "0.0.0.0",
             NAT_SPORT: 61000 + i if nat else 0, NAT_DPORT: 25 if nat else 0,
             FW_EVENT: ev, FW_EVENT_84: ev,
             INIT_OCTETS: counters[0], RESP_OCTETS: counters[1],
             INIT_PACKETS: counters[2], RESP_PACKETS: counters[3],
             START_MS: base_ms + start_off, EVENT_TIME_MS: base_ms + ev_off}
        return v

    seq = 0
    # datagram 1: both templates, creates (zero counters) and a deny
    ts = c.next_time()
    r_new = [nsel(0, 1, (0, 0, 0, 0), 0, 0), nsel(1, 1, (0, 0, 0, 0), 10, 10),
             nsel(2, 3, (0, 0, 0, 0), 20, 20, nat=False)]
    r_old = [nsel(3, 3, (0, 0, 0, 0), 0, 30)]
    tmpl = v9_template_flowset([(260, t_new), (261, t_old)])
    m = v9_message(uptime0 + 1000, ts // 1000000, seq, src_id, [
        tmpl, pad4data(260, [enc_record(t_new, x) for x in r_new]),
        pad4data(261, [enc_record(t_old, x) for x in r_old])], 2 + len(r_new) + len(r_old))
    c.send(ts, m)
    seq += 1
    ctx = Ctx(ts, EXP9, src_id, 9, uptime=uptime0 + 1000, unix_secs=ts // 1000000)
    for x in r_new:
        c.expect(ctx, t_new, x)
    for x in r_old:
        c.expect(ctx, t_old, x)
    # datagram 2: teardowns with counters, on both templates
    ts = c.next_time()
    r_new = [nsel(0, 2, (15320, 220110, 41, 160), 0, 4200),
             nsel(1, 2, (880, 1200, 9, 8), 10, 950)]
    r_old = [nsel(4, 2, (5000, 7000, 0, 0), 0, 3000, dport=587)]
    m = v9_message(uptime0 + 2000, ts // 1000000, seq, src_id, [
        pad4data(260, [enc_record(t_new, x) for x in r_new]),
        pad4data(261, [enc_record(t_old, x) for x in r_old])], len(r_new) + len(r_old))
    c.send(ts, m)
    ctx = Ctx(ts, EXP9, src_id, 9, uptime=uptime0 + 2000, unix_secs=ts // 1000000)
    for x in r_new:
        c.expect(ctx, t_new, x)
    for x in r_old:
        c.expect(ctx, t_old, x)
    return c


def pad4data(tid, records):
    body = b"".join(records)
    return data_set(tid, [body], pad=-(4 + len(body)) % 4)


def case_ipfix_ipv6():
    c = Case("ipfix-ipv6", "2001:db8::1", "::1", NF_PORT)
    dom = 6
    t = fields((SRC6, 16), (DST6, 16), (SPORT, 2), (DPORT, 2), (PROTO, 1), (TCPFLAGS, 1),
               (PACKETS, 8), (OCTETS, 8), (START_MS, 8), (END_MS, 8))
    recs = [
        {SRC6: "2001:db8:0:1::25", DST6: "2001:db8:ff::25", SPORT: 41000, DPORT: 25, PROTO: 6,
         TCPFLAGS: 0x1B, PACKETS: 12, OCTETS: 2400, START_MS: 1768474790000,
         END_MS: 1768474790750},
        {SRC6: "2001:db8:0:1:1:1:1:1", DST6: "2001:db8::53", SPORT: 53001, DPORT: 53,
         PROTO: 17, TCPFLAGS: 0, PACKETS: 1, OCTETS: 80, START_MS: 1768474791000,
         END_MS: 1768474791000},
        {SRC6: "2001:db8:0:0:1:0:0:1", DST6: "fe80::1:2ff:fe00:1", SPORT: 443, DPORT: 50123,
         PROTO: 6, TCPFLAGS: 0x12, PACKETS: 2, OCTETS: 120, START_MS: 1768474792000,
         END_MS: 1768474792001},
    ]
    ts = c.next_time()
    c.send(ts, ipfix_message(ts // 1000000, 0, dom, [
        ipfix_template_set([(256, t)]), data_set(256, [enc_record(t, r) for r in recs])]))
    for r in recs:
        c.expect(Ctx(ts, "2001:db8::1", dom, 10), t, r)
    return c


def case_ipfix_biflow():
    c = Case("ipfix-biflow", EXP4, COLL4, IPFIX_PORT)
    dom = 9
    t = fields((SRC4, 4), (DST4, 4), (SPORT, 2), (DPORT, 2), (PROTO, 1), (PACKETS, 8),
               (OCTETS, 8), (PACKETS, 8, PEN_REVERSE), (OCTETS, 8, PEN_REVERSE),
               (1, 4, 9999), (2, VARLEN, 9999), (START_MS, 8), (END_MS, 8))
    recs = [
        flow4(0, {(PEN_REVERSE, PACKETS): 7, (PEN_REVERSE, OCTETS): 9100, (9999, 1): 0xDEADBEEF,
                    (9999, 2): b"short value"}),
        flow4(1, {(PEN_REVERSE, PACKETS): 0, (PEN_REVERSE, OCTETS): 0, (9999, 1): 1,
                    (9999, 2): b""}),
        flow4(2, {(PEN_REVERSE, PACKETS): 300, (PEN_REVERSE, OCTETS): 420000,
                    (9999, 1): 2, (9999, 2): bytes(range(256)) * 2}),       # 512: long form
        flow4(3, {(PEN_REVERSE, PACKETS): 1, (PEN_REVERSE, OCTETS): 40,
                    (9999, 1): 3, (9999, 2): Long(b"abc")}),                 # long form, 3
    ]
    ts = c.next_time()
    c.send(ts, ipfix_message(ts // 1000000, 0, dom, [
        ipfix_template_set([(256, t)]), data_set(256, [enc_record(t, r) for r in recs])]))
    for r in recs:
        c.expect(Ctx(ts, EXP4, dom, 10), t, r)
    return c


def case_ipfix_systeminit():
    c = Case("ipfix-systeminit", EXP4, COLL4, IPFIX_PORT)
    sysinit = 1768400000123  # the exporter booted ~20 h before the capture
    up = 1768474790000 - sysinit  # uptime (ms) at 10:59:50
    # domain 1: 160 inside each data record
    t1 = fields((SRC4, 4), (DST4, 4), (SPORT, 2), (DPORT, 2), (PROTO, 1), (PACKETS, 4),
                (OCTETS, 4), (START_UPTIME, 4), (END_UPTIME, 4), (SYSINIT_MS, 8))
    recs = [flow4(i, {START_UPTIME: up + 1000 * i, END_UPTIME: up + 1000 * i + 2500,
                        SYSINIT_MS: sysinit}) for i in range(3)]
    ts = c.next_time()
    c.send(ts, ipfix_message(ts // 1000000, 0, 1, [
        ipfix_template_set([(256, t1)]), data_set(256, [enc_record(t1, r) for r in recs])]))
    for r in recs:
        c.expect(Ctx(ts, EXP4, 1, 10, sysinit_ms=sysinit), t1, r)
    # domain 2: 160 from an options record (scope observationDomainId), another boot time
    sysinit2 = 1768470000999
    up2 = 1768474790000 - sysinit2
    opt = (258, fields((OBS_DOMAIN, 4)), fields((SYSINIT_MS, 8)))
    t2 = fields((SRC4, 4), (DST4, 4), (SPORT, 2), (DPORT, 2), (PROTO, 1), (PACKETS, 4),
                (OCTETS, 4), (START_UPTIME, 4), (END_UPTIME, 4))
    recs = [flow4(10 + i, {START_UPTIME: up2 + 700 * i, END_UPTIME: up2 + 700 * i + 99})
            for i in range(3)]
    ts = c.next_time()
    c.send(ts, ipfix_message(ts // 1000000, 0, 2, [
        ipfix_options_template_set([opt]),
        data_set(258, [enc_record(opt[1] + opt[2], {OBS_DOMAIN: 2, SYSINIT_MS: sysinit2})]),
        ipfix_template_set([(256, t2)]),
        data_set(256, [enc_record(t2, r) for r in recs])]))
    for r in recs:
        c.expect(Ctx(ts, EXP4, 2, 10, sysinit_ms=sysinit2), t2, r)
    return c


V9_BASIC = fields((SRC4, 4), (DST4, 4), (SPORT, 2), (DPORT, 2), (PROTO, 1), (TCPFLAGS, 1),
                  (PACKETS, 4), (OCTETS, 4), (START_UPTIME, 4), (END_UPTIME, 4))


def v9_flow(i, uptime, kw=None):
    v = {SRC4: "10.9.0.%d" % (1 + i), DST4: "198.51.100.%d" % (100 + i), SPORT: 42000 + i,
         DPORT: 25, PROTO: 6, TCPFLAGS: 0x02, PACKETS: 1 + i, OCTETS: 40 + 40 * i,
         START_UPTIME: (uptime - 5000 + 100 * i) & 0xFFFFFFFF,
         END_UPTIME: (uptime - 1000 + 100 * i) & 0xFFFFFFFF}
    v.update(kw or {})
    return v


def case_v9_data_before_template():
    c = Case("v9-data-before-template", EXP9, COLL4, NF_PORT)
    sid = 77
    up = 3600000
    ts = c.next_time()
    early = [v9_flow(0, up), v9_flow(1, up)]
    late = [v9_flow(2, up), v9_flow(3, up)]
    c.send(ts, v9_message(up, ts // 1000000, 0, sid, [
        pad4data(256, [enc_record(V9_BASIC, r) for r in early]),
        v9_template_flowset([(256, V9_BASIC)]),
        pad4data(256, [enc_record(V9_BASIC, r) for r in late])], 1 + len(early) + len(late)))
    ctx = Ctx(ts, EXP9, sid, 9, uptime=up, unix_secs=ts // 1000000)
    for r in late:
        c.expect(ctx, V9_BASIC, r)
    ts = c.next_time()
    up += 1000
    more = [v9_flow(4, up), v9_flow(5, up)]
    c.send(ts, v9_message(up, ts // 1000000, 1, sid, [
        pad4data(256, [enc_record(V9_BASIC, r) for r in more])], len(more)))
    ctx = Ctx(ts, EXP9, sid, 9, uptime=up, unix_secs=ts // 1000000)
    for r in more:
        c.expect(ctx, V9_BASIC, r)
    c.extra = {"sets_without_template": 1, "records_not_decoded": 2}
    return c


def case_v9_uptime_wrap():
    c = Case("v9-uptime-wrap", EXP9, COLL4, NF_PORT)
    sid = 78
    # datagram 1: sysUptime just below 2^32, first/last a few seconds before it
    up = 0xFFFFFFFF - 1500
    ts = c.next_time()
    recs = [v9_flow(0, up), v9_flow(1, up)]
    c.send(ts, v9_message(up, ts // 1000000, 0, sid, [
        v9_template_flowset([(256, V9_BASIC)]),
        pad4data(256, [enc_record(V9_BASIC, r) for r in recs])], 1 + len(recs)))
    ctx = Ctx(ts, EXP9, sid, 9, uptime=up, unix_secs=ts // 1000000)
    for r in recs:
        c.expect(ctx, V9_BASIC, r)
    # datagram 2: sysUptime has wrapped (small), first/last are from before the wrap
    up = (up + 4000) & 0xFFFFFFFF  # = 2499
    ts = c.next_time(4000000)
    recs = [v9_flow(2, up, {START_UPTIME: 0xFFFFFFFF - 9000, END_UPTIME: 0xFFFFFFFF - 10}),
            v9_flow(3, up, {START_UPTIME: 0xFFFFF000, END_UPTIME: 1000})]
    c.send(ts, v9_message(up, ts // 1000000, 1, sid, [
        pad4data(256, [enc_record(V9_BASIC, r) for r in recs])], len(recs)))
    ctx = Ctx(ts, EXP9, sid, 9, uptime=up, unix_secs=ts // 1000000)
    for r in recs:
        c.expect(ctx, V9_BASIC, r)
    return c


def case_ipfix_flowdirection():
    c = Case("ipfix-flowdirection", EXP4, COLL4, IPFIX_PORT)
    dom = 10
    t = fields((SRC4, 4), (DST4, 4), (SPORT, 2), (DPORT, 2), (PROTO, 1), (TCPFLAGS, 2),
               (DIRECTION, 1), (PACKETS, 8), (OCTETS, 8), (START_MS, 8), (END_MS, 8))
    recs = [flow4(0, {DIRECTION: 0, TCPFLAGS: 0x0002}),
            flow4(1, {DIRECTION: 1, TCPFLAGS: 0x0112}),   # NS bit + SYN/ACK: low 8 = 0x12
            flow4(2, {DIRECTION: 1, TCPFLAGS: 0x0FFF}),
            flow4(3, {DIRECTION: 0, TCPFLAGS: 0x0000, PROTO: 17})]
    ts = c.next_time()
    c.send(ts, ipfix_message(ts // 1000000, 0, dom, [
        ipfix_template_set([(256, t)]), data_set(256, [enc_record(t, r) for r in recs])]))
    for r in recs:
        c.expect(Ctx(ts, EXP4, dom, 10), t, r)
    return c


def case_ipfix_seqloss():
    c = Case("ipfix-seqloss", EXP4, COLL4, IPFIX_PORT)
    dom = 11
    seq = 0
    lost = 0
    for n in range(1, 13):
        nrec = 1 + n % 4
        recs = [flow4(10 * n + i) for i in range(nrec)]
        sets = []
        if n == 1:
            sets.append(ipfix_template_set([(256, BASIC4)]))
        sets.append(data_set(256, [enc_record(BASIC4, r) for r in recs]))
        ts = c.next_time()
        if n in (5, 9):
            lost += nrec  # dropped on the way: not in the pcap
        else:
            c.send(ts, ipfix_message(ts // 1000000, seq, dom, sets))
            for r in recs:
                c.expect(Ctx(ts, EXP4, dom, 10), BASIC4, r)
        seq += nrec
    c.extra = {"seq_lost": lost, "seq_unit": "records", "missing_messages": [5, 9]}
    return c


def case_v9_seqloss():
    c = Case("v9-seqloss", EXP9, COLL4, NF_PORT)
    sid = 79
    up = 7200000
    for n in range(1, 13):
        up += 1000
        recs = [v9_flow(10 * n + i, up) for i in range(1 + n % 3)]
        fs = []
        if n == 1:
            fs.append(v9_template_flowset([(256, V9_BASIC)]))
        fs.append(pad4data(256, [enc_record(V9_BASIC, r) for r in recs]))
        ts = c.next_time()
        if n in (5, 9):
            continue
        # RFC 3954: the sequence number counts export packets (first one 0 here)
        c.send(ts, v9_message(up, ts // 1000000, n - 1, sid, fs, len(fs) - 1 + len(recs)))
        ctx = Ctx(ts, EXP9, sid, 9, uptime=up, unix_secs=ts // 1000000)
        for r in recs:
            c.expect(ctx, V9_BASIC, r)
    c.extra = {"seq_lost": 2, "seq_unit": "datagrams", "missing_messages": [5, 9]}
    return c


def case_v5_seqloss():
    c = Case("v5-seqloss", EXP5, COLL4, NF_PORT)
    etype, eid = 1, 2
    seq = 0
    lost = 0
    up = 1000000
    for n in range(1, 13):
        up += 1000
        ts = c.next_time()
        secs, nsecs = ts // 1000000, (ts % 1000000) * 1000
        recs = [{"src": "10.5.0.%d" % (n), "dst": "203.0.113.%d" % (i + 1), "sport": 30000 + n,
                 "dport": 25, "proto": 6, "flags": 0x02, "packets": 3, "bytes": 180,
                 "first": up - 3000 - i, "last": up - 1000 - i} for i in range(2 + n % 5)]
        if n in (5, 9):
            lost += len(recs)
        else:
            c.send(ts, v5_message(up, secs, nsecs, seq, etype, eid, 0, recs))
            for r in recs:
                # the header's Unix time at sysUptime: seconds plus nanoseconds
                now_ms = secs * 1000 + nsecs // 1000000
                c.rows.append([str(ts // 1000), EXP5, str(etype << 8 | eid), "5", r["src"],
                               r["dst"], str(r["sport"]), str(r["dport"]), str(r["proto"]),
                               str(r["flags"]), str(r["packets"]), str(r["bytes"]),
                               str(now_ms - ((up - r["first"]) & 0xFFFFFFFF)),
                               str(now_ms - ((up - r["last"]) & 0xFFFFFFFF)),
                               "1", "", "", "", "", "", "", "", ""])
        seq += len(recs)
    c.extra = {"seq_lost": lost, "seq_unit": "records", "missing_messages": [5, 9]}
    return c


# ---- real vendor layouts (issue 12; sources in fixtures/README.md) ------------------------

PEN_PROCERA = 15397  # Procera Networks / Sandvine (tshark: "Sandvine Corporation")


def procera_template(with_ipversion):
    """Procera PacketLogic's IPFIX flow template: the 23 information elements of the
    PacketLogic record decoded in logstash-codec-netflow's spec ("IPFIX Procera", template
    52935), PEN 15397 numbers and types from calmh/ipfixcat's procera-fields.ini. Both
    address families in one template; the unused one is zero-filled. The order on the wire
    is not published; this one is ours. with_ipversion appends ipVersion 60."""
    P = PEN_PROCERA
    f = fields((SRC4, 4), (DST4, 4), (SRC6, 16), (DST6, 16), (SPORT, 2), (DPORT, 2),
               (PROTO, 1), (START_SEC, 4), (END_SEC, 4), (BGP_SRC_AS, 4), (BGP_DST_AS, 4),
               (1, VARLEN, P),    # proceraService
               (2, VARLEN, P),    # proceraBaseService
               (3, 8, P),         # proceraIncomingOctets
               (4, 8, P),         # proceraOutgoingOctets
               (15, VARLEN, P),   # proceraFlowBehavior
               (16, VARLEN, P),   # proceraContentCategories
               (28, VARLEN, P),   # proceraSubscriberIdentifier
               (21, VARLEN, P),   # proceraHttpContentType
               (22, VARLEN, P),   # proceraHttpUrl
               (25, 4, P),        # proceraHttpFileLength
               (26, VARLEN, P),   # proceraHttpLocation
               (47, VARLEN, P))   # proceraTemplateName
    if with_ipversion:
        f += fields((IP_VERSION, 1))
    return f


def procera_flow(i, src4, dst4, src6, dst6, sport, dport, proto, service, export_s, kw=None):
    """A PacketLogic record: 5-minute interval times (flowStart/EndSeconds), service and
    behaviour strings, byte counters in the vendor fields (no octetDeltaCount)."""
    P = PEN_PROCERA
    end = export_s - export_s % 300
    v = {SRC4: src4, DST4: dst4, SRC6: src6, DST6: dst6, SPORT: sport, DPORT: dport,
         PROTO: proto, START_SEC: end - 300, END_SEC: end, BGP_SRC_AS: 64496,
         BGP_DST_AS: 64497 + i,
         (P, 1): service.encode(), (P, 2): service.encode(),
         (P, 3): 4200 + 100 * i, (P, 4): 950 + 10 * i,
         (P, 15): b"INTERACTIVE,CLIENT_IS_LOCAL,OUTBOUND,ESTABLISHED,ACTIVE",
         (P, 16): b"", (P, 28): b"", (P, 21): b"", (P, 22): b"", (P, 25): 0, (P, 26): b"",
         (P, 47): b"IPFIX"}
    v.update(kw or {})
    return v


def case_ipfix_dualstack_procera():
    """Procera PacketLogic: IPv4 and IPv6 addresses in one template, the unused family
    zero-filled; records of both families, ambiguous ones, and a variant with ipVersion."""
    c = Case("ipfix-dualstack-procera", EXP4, COLL4, IPFIX_PORT)
    c.counters = ("ambiguous_addr",)
    dom = 12
    t1, t2 = procera_template(False), procera_template(True)
    z4, z6 = "0.0.0.0", "::"
    # message 1: template 52935 (no ipVersion): the family is the one with non-zero
    # addresses
    ts = c.next_time()
    e = ts // 1000000
    recs = [
        procera_flow(0, "10.20.0.5", "198.51.100.25", z6, z6, 40001, 25, 6, "SMTP", e),
        procera_flow(1, z4, z4, "2001:db8:20::5", "2001:db8:ff::443", 40002, 443, 6,
                     "HTTPS", e),
        # DHCP discover: IPv4 source 0.0.0.0, only the destination is non-zero
        procera_flow(2, z4, "255.255.255.255", z6, z6, 68, 67, 17, "DHCP", e),
        # ambiguous: both families zero, then both non-zero
        procera_flow(3, z4, z4, z6, z6, 0, 0, 0, "Unknown", e),
        procera_flow(4, "10.20.0.6", "198.51.100.26", "2001:db8:20::6", "2001:db8:ff::26",
                     40004, 25, 6, "SMTP", e),
    ]
    c.send(ts, ipfix_message(e, 0, dom, [
        ipfix_template_set([(52935, t1)]),
        data_set(52935, [enc_record(t1, r) for r in recs])]))
    for r in recs:
        c.expect(Ctx(ts, EXP4, dom, 10), t1, r)
    seq = len(recs)
    # message 2: template 52936 = 52935 + ipVersion; ipVersion decides, whatever the
    # addresses say; a value other than 4 or 6 is ambiguous
    ts = c.next_time()
    e = ts // 1000000
    recs = [
        procera_flow(5, "10.20.0.7", "198.51.100.27", z6, z6, 40005, 587, 6, "SMTP", e,
                     {IP_VERSION: 4}),
        procera_flow(6, z4, z4, "2001:db8:20::7", "2001:db8:ff::25", 40006, 25, 6, "SMTP", e,
                     {IP_VERSION: 6}),
        procera_flow(7, "10.20.0.8", "198.51.100.28", "2001:db8:20::8", "2001:db8:ff::28",
                     40007, 25, 6, "SMTP", e, {IP_VERSION: 6}),
        procera_flow(8, z4, z4, z6, z6, 40008, 25, 6, "SMTP", e, {IP_VERSION: 4}),
        procera_flow(9, "10.20.0.9", "198.51.100.29", z6, z6, 40009, 25, 6, "SMTP", e,
                     {IP_VERSION: 0}),
    ]
    c.send(ts, ipfix_message(e, seq, dom, [
        ipfix_template_set([(52936, t2)]),
        data_set(52936, [enc_record(t2, r) for r in recs])]))
    for r in recs:
        c.expect(Ctx(ts, EXP4, dom, 10), t2, r)
    return c


def case_ipfix_dualstack_nat():
    """Dual-stack template with NAT addresses of both families (225/226 and 281/282): the
    NAT columns follow the record's family. No vendor layout: the rule's NAT clause."""
    c = Case("ipfix-dualstack-nat", EXP4, COLL4, IPFIX_PORT)
    c.counters = ("ambiguous_addr",)
    dom = 14
    t = fields((SRC4, 4), (DST4, 4), (SRC6, 16), (DST6, 16), (SPORT, 2), (DPORT, 2),
               (PROTO, 1), (PACKETS, 8), (OCTETS, 8), (START_MS, 8), (END_MS, 8),
               (NAT_SRC, 4), (NAT_DST, 4), (NAT_SRC6, 16), (NAT_DST6, 16),
               (NAT_SPORT, 2), (NAT_DPORT, 2))
    z4, z6 = "0.0.0.0", "::"

    def rec(i, s4, d4, s6, d6, n4s, n4d, n6s, n6d):
        return flow4(i, {SRC4: s4, DST4: d4, SRC6: s6, DST6: d6, NAT_SRC: n4s, NAT_DST: n4d,
                         NAT_SRC6: n6s, NAT_DST6: n6d, NAT_SPORT: 61000 + i, NAT_DPORT: 25})
    recs = [
        # NAT44
        rec(0, "10.30.0.5", "203.0.113.25", z6, z6, "198.18.30.1", "203.0.113.25", z6, z6),
        # NPTv6 (RFC 6296): IPv6 NAT addresses
        rec(1, z4, z4, "fd00:30::5", "2001:db8:ff::25", z4, z4, "2001:db8:30::5",
            "2001:db8:ff::25"),
        # an IPv6 record whose IPv4 NAT fields are filled: they must not leak into it
        rec(2, z4, z4, "fd00:30::6", "2001:db8:ff::26", "198.18.30.2", "203.0.113.26", z6,
            z6),
        # ambiguous: both families set
        rec(3, "10.30.0.8", "203.0.113.28", "fd00:30::8", "2001:db8:ff::28", "198.18.30.3",
            "203.0.113.28", z6, z6),
    ]
    ts = c.next_time()
    c.send(ts, ipfix_message(ts // 1000000, 0, dom, [
        ipfix_template_set([(256, t)]), data_set(256, [enc_record(t, r) for r in recs])]))
    for r in recs:
        c.expect(Ctx(ts, EXP4, dom, 10), t, r)
    return c


# H3C NetStream v9: the traditional IPv4 flow (H3C's 7-tuple key: addresses, ports,
# protocol, ToS, interfaces; counters, first/last forwarded, direction; the field names of
# "display ip netstream template") with the VPN instance as VRFname 236 in IPFIX's
# variable-length encoding (length 65535) as the last field. 3282 also carries
# applicationName 96 as a variable-length field in the middle (goflow2 #76/#77: H3C's
# variable-length application name in v9).
H3C_FIXED = fields((SRC4, 4), (DST4, 4), (SPORT, 2), (DPORT, 2), (PROTO, 1), (5, 1),
                   (TCPFLAGS, 1), (10, 4), (14, 4), (PACKETS, 8), (OCTETS, 8),
                   (START_UPTIME, 4), (END_UPTIME, 4), (DIRECTION, 1))
H3C_VRF = H3C_FIXED + fields((VRF_NAME, VARLEN))
H3C_APP = fields((SRC4, 4), (DST4, 4), (SPORT, 2), (DPORT, 2), (PROTO, 1),
                 (APP_NAME, VARLEN), (PACKETS, 8), (OCTETS, 8), (START_UPTIME, 4),
                 (END_UPTIME, 4), (VRF_NAME, VARLEN))
H3C_SID = 0x00000101


def h3c_flow(i, up, kw=None):
    v = {SRC4: "10.40.%d.%d" % (i // 200, 10 + i % 200), DST4: "198.51.100.%d" % (40 + i),
         SPORT: 45000 + i, DPORT: 25, PROTO: 6, 5: 0, TCPFLAGS: 0x1B, 10: 3, 14: 7,
         PACKETS: 12 + i, OCTETS: 3400 + 10 * i, START_UPTIME: up - 9000 + 100 * i,
         END_UPTIME: up - 2000 + 100 * i, DIRECTION: 0}
    v.update(kw or {})
    return v


def case_v9_h3c_vrfname():
    c = Case("v9-h3c-vrfname", EXP9, COLL4, NF_PORT)
    up = 5 * 86400000 + 1234
    vrfs = []
    ts = c.next_time()
    # 3281: a short name, an empty one, a short one in the 3-byte form (legal), one over
    # 255 bytes (3-byte form), one of exactly 255 (3-byte form: 255 is the escape)
    names = [b"vpn-red", b"", Long(b"blue"), b"customer-" + b"0123456789" * 30,
             b"v" * 255]
    recs = [h3c_flow(i, up, {VRF_NAME: n}) for i, n in enumerate(names)]
    vrfs += [n.data if isinstance(n, Long) else n for n in names]
    c.send(ts, v9_message(up, ts // 1000000, 0, H3C_SID, [
        v9_template_flowset([(3281, H3C_VRF), (3282, H3C_APP)]),
        pad4data(3281, [enc_record(H3C_VRF, r) for r in recs])], 2 + len(recs)))
    ctx = Ctx(ts, EXP9, H3C_SID, 9, uptime=up, unix_secs=ts // 1000000)
    for r in recs:
        c.expect(ctx, H3C_VRF, r)
    # 3282: applicationName in the middle, VRFname last
    up += 1000
    ts = c.next_time()
    recs = [h3c_flow(10, up, {APP_NAME: b"smtp", VRF_NAME: b"vpn-red"}),
            h3c_flow(11, up, {APP_NAME: Long(b""), VRF_NAME: b"w" * 256}),
            h3c_flow(12, up, {APP_NAME: b"https", VRF_NAME: b"", DPORT: 443})]
    vrfs += [b"vpn-red", b"w" * 256, b""]
    c.send(ts, v9_message(up, ts // 1000000, 1, H3C_SID, [
        pad4data(3282, [enc_record(H3C_APP, r) for r in recs])], len(recs)))
    ctx = Ctx(ts, EXP9, H3C_SID, 9, uptime=up, unix_secs=ts // 1000000)
    for r in recs:
        c.expect(ctx, H3C_APP, r)
    # what tshark must show for each record's strings (compare.py --tshark), by IE
    c.extra = {"varlen_values": {str(VRF_NAME): [x.decode() for x in vrfs],
                                 str(APP_NAME): ["smtp", "", "https"]}}
    return c


def case_v9_h3c_varlen_hostile():
    """The H3C template with length prefixes that run past the flowset: the records before
    them decode, and the bad length is counted (bad_varlen). As for every malformed set
    (README, "Counters"), the rest of that datagram is not read: the same encoder wrote
    the flowsets after it, so their records are not trusted either."""
    c = Case("v9-h3c-varlen-hostile", EXP9, COLL4, NF_PORT)
    c.counters = ("bad_varlen", "malformed_total")
    up = 5 * 86400000 + 1234
    fixed = H3C_FIXED

    def head(r):  # the fixed part of a 3281 record, without the VRF name
        return enc_record(fixed, r)

    def flowset(tid, body):
        return struct.pack(">HH", tid, 4 + len(body)) + body

    # datagram 1: [3281: good, then a 1-byte length of 200 with 3 bytes left] [3281: good]
    ts = c.next_time()
    ctx = Ctx(ts, EXP9, H3C_SID, 9, uptime=up, unix_secs=ts // 1000000)
    r0 = h3c_flow(0, up, {VRF_NAME: b"vpn-red"})
    r1 = h3c_flow(1, up, {VRF_NAME: b"unused"})
    r2 = h3c_flow(2, up, {VRF_NAME: b"vpn-blue"})
    bad1 = head(r1) + bytes([200]) + b"abc"
    fs_a = flowset(3281, pad4(enc_record(H3C_VRF, r0) + bad1))
    c.send(ts, v9_message(up, ts // 1000000, 0, H3C_SID, [
        v9_template_flowset([(3281, H3C_VRF)]), fs_a,
        pad4data(3281, [enc_record(H3C_VRF, r2)])], 4))
    c.expect(ctx, H3C_VRF, r0)  # r2 is in the flowset after the bad one: not read
    # datagram 2: [3281: good, then 255 + a 2-byte length of 1000 with 5 bytes left]
    # [3281: 255 and one byte of the 2-byte length, the flowset ends there]
    up += 1000
    ts = c.next_time()
    ctx = Ctx(ts, EXP9, H3C_SID, 9, uptime=up, unix_secs=ts // 1000000)
    r3 = h3c_flow(3, up, {VRF_NAME: b"vpn-green"})
    r4 = h3c_flow(4, up, {VRF_NAME: b"unused"})
    r5 = h3c_flow(5, up, {VRF_NAME: b"unused"})
    bad2 = head(r4) + b"\xff" + struct.pack(">H", 1000) + b"12345"
    fs_c = flowset(3281, pad4(enc_record(H3C_VRF, r3) + bad2))
    bad3 = head(r5) + b"\xff\x00"  # 4 + 48 + 2 = 54: no padding, the length is cut
    fs_d = flowset(3281, bad3)
    c.send(ts, v9_message(up, ts // 1000000, 1, H3C_SID, [fs_c, fs_d], 3))
    c.expect(ctx, H3C_VRF, r3)  # fs_d is after the bad one: not read
    c.counts = {"bad_varlen": 2, "malformed_total": 2}
    c.extra = {"records_not_decoded": 4}
    return c


def case_v9_egress_only():
    """Egress NetFlow: the counters only in OUT_PKTS/OUT_BYTES 24/23 (no IN_* 1/2),
    DIRECTION 61 = 1 (egress). Cisco's v9 field types (RFC 3954 8)."""
    c = Case("v9-egress-only", EXP9, COLL4, NF_PORT)
    sid = 0x0200
    t = fields((SRC4, 4), (DST4, 4), (SPORT, 2), (DPORT, 2), (PROTO, 1), (TCPFLAGS, 1),
               (10, 2), (14, 2), (OUT_PKTS, 4), (OUT_BYTES, 4), (START_UPTIME, 4),
               (END_UPTIME, 4), (DIRECTION, 1))
    up = 86400000 * 3
    recs = [v9_flow(i, up, {10: 1, 14: 2, DIRECTION: 1, OUT_PKTS: 3 + i,
                            OUT_BYTES: 180 + 1000 * i}) for i in range(3)]
    recs.append(v9_flow(3, up, {10: 1, 14: 2, DIRECTION: 1, OUT_PKTS: 0, OUT_BYTES: 0}))
    for r in recs:
        del r[PACKETS], r[OCTETS]
    ts = c.next_time()
    c.send(ts, v9_message(up, ts // 1000000, 0, sid, [
        v9_template_flowset([(260, t)]), pad4data(260, [enc_record(t, r) for r in recs])],
        1 + len(recs)))
    ctx = Ctx(ts, EXP9, sid, 9, uptime=up, unix_secs=ts // 1000000)
    for r in recs:
        c.expect(ctx, t, r)
    return c


def case_v9_egress_freebsd():
    """Templates with both IN_* 1/2 and OUT_* 23/24. 256: FreeBSD ng_netflow (OPNsense,
    pfSense) IPv4 template, OUT_* always 0 (goflow2 #186/#524): 1/2 stay. 257: the layout of
    logstash-codec-netflow's netflow9_test_0length_fields_tpl_data.dat (DIRECTION and
    ENGINE_ID, three zero-length fields of type 0): egress records have IN_* 0 and the
    counts in OUT_*."""
    c = Case("v9-egress-freebsd", EXP9, COLL4, NF_PORT)
    sid = 0
    t_bsd = fields((SRC4, 4), (DST4, 4), (15, 4), (10, 2), (14, 2), (PACKETS, 4),
                   (OCTETS, 4), (OUT_PKTS, 4), (OUT_BYTES, 4), (START_UPTIME, 4),
                   (END_UPTIME, 4), (SPORT, 2), (DPORT, 2), (TCPFLAGS, 1), (PROTO, 1),
                   (5, 1), (BGP_SRC_AS, 4), (BGP_DST_AS, 4), (9, 1), (13, 1))
    t_0len = fields((SRC4, 4), (DST4, 4), (10, 2), (14, 2), (PACKETS, 4), (OCTETS, 4),
                    (OUT_PKTS, 4), (OUT_BYTES, 4), (START_UPTIME, 4), (END_UPTIME, 4),
                    (SPORT, 2), (DPORT, 2), (TCPFLAGS, 1), (PROTO, 1), (9, 1), (13, 1),
                    (DIRECTION, 1), (39, 1), (0, 0), (0, 0), (0, 0))
    up = 4175241
    common = {15: "0.0.0.0", 10: 1, 14: 2, 5: 0, BGP_SRC_AS: 0, BGP_DST_AS: 0, 9: 24,
              13: 24, 39: 1, 0: b""}
    bsd = [v9_flow(i, up, {**common, OUT_PKTS: 0, OUT_BYTES: 0}) for i in range(3)]
    egress = [
        # IN_* zero, OUT_* counted (the capture's egress records)
        v9_flow(3, up, {**common, DIRECTION: 1, PACKETS: 0, OCTETS: 0, OUT_PKTS: 1,
                        OUT_BYTES: 32, PROTO: 2, SPORT: 0, DPORT: 0}),
        # ingress record of the same template: IN_* counted, OUT_* zero
        v9_flow(4, up, {**common, DIRECTION: 0, OUT_PKTS: 0, OUT_BYTES: 0}),
        # IN_PKTS counted but IN_BYTES zero: each counter falls back on its own
        v9_flow(5, up, {**common, DIRECTION: 1, PACKETS: 3, OCTETS: 0, OUT_PKTS: 9,
                        OUT_BYTES: 180}),
        # everything zero: 0 and 0
        v9_flow(6, up, {**common, DIRECTION: 1, PACKETS: 0, OCTETS: 0, OUT_PKTS: 0,
                        OUT_BYTES: 0}),
    ]
    ts = c.next_time()
    c.send(ts, v9_message(up, ts // 1000000, 100728833, sid, [
        v9_template_flowset([(256, t_bsd), (257, t_0len)]),
        pad4data(256, [enc_record(t_bsd, r) for r in bsd]),
        pad4data(257, [enc_record(t_0len, r) for r in egress])], 2 + len(bsd) + len(egress)))
    ctx = Ctx(ts, EXP9, sid, 9, uptime=up, unix_secs=ts // 1000000)
    for r in bsd:
        c.expect(ctx, t_bsd, r)
    for r in egress:
        c.expect(ctx, t_0len, r)
    return c


def case_ipfix_postcounters():
    """IPFIX postPacketDeltaCount 24 / postOctetDeltaCount 23: alone, and beside
    packetTotalCount 86 / octetTotalCount 85 that read zero. No vendor layout: IANA IEs."""
    c = Case("ipfix-postcounters", EXP4, COLL4, IPFIX_PORT)
    dom = 15
    t_a = fields((SRC4, 4), (DST4, 4), (SPORT, 2), (DPORT, 2), (PROTO, 1), (OUT_PKTS, 8),
                 (OUT_BYTES, 8), (START_MS, 8), (END_MS, 8))
    t_b = fields((SRC4, 4), (DST4, 4), (SPORT, 2), (DPORT, 2), (PROTO, 1),
                 (PACKETS_TOTAL, 8), (OCTETS_TOTAL, 8), (OUT_PKTS, 8), (OUT_BYTES, 8),
                 (START_MS, 8), (END_MS, 8))
    ra = [flow4(i, {OUT_PKTS: 4 + i, OUT_BYTES: 520 + 40 * i}) for i in range(2)]
    rb = [flow4(2, {PACKETS_TOTAL: 0, OCTETS_TOTAL: 0, OUT_PKTS: 7, OUT_BYTES: 700}),
          flow4(3, {PACKETS_TOTAL: 5, OCTETS_TOTAL: 300, OUT_PKTS: 0, OUT_BYTES: 0}),
          flow4(4, {PACKETS_TOTAL: 5, OCTETS_TOTAL: 0, OUT_PKTS: 6, OUT_BYTES: 360})]
    ts = c.next_time()
    c.send(ts, ipfix_message(ts // 1000000, 0, dom, [
        ipfix_template_set([(256, t_a), (257, t_b)]),
        data_set(256, [enc_record(t_a, r) for r in ra]),
        data_set(257, [enc_record(t_b, r) for r in rb])]))
    for r in ra:
        c.expect(Ctx(ts, EXP4, dom, 10), t_a, r)
    for r in rb:
        c.expect(Ctx(ts, EXP4, dom, 10), t_b, r)
    return c


def case_ipfix_times_implausible():
    """Flow times outside [export - 90 days, export + 1 day] (or start after end) are left
    empty and counted per exporter (times_dropped); the boundaries themselves are kept."""
    c = Case("ipfix-times-implausible", EXP4, COLL4, IPFIX_PORT)
    c.counters = ("times_dropped",)
    dom = 13
    ts = c.next_time()
    e = ts // 1000000 * 1000
    day = 86400000
    t_ms = BASIC4
    t_s = fields((SRC4, 4), (DST4, 4), (SPORT, 2), (DPORT, 2), (PROTO, 1), (PACKETS, 4),
                 (OCTETS, 4), (START_SEC, 4), (END_SEC, 4))
    t_up = fields((SRC4, 4), (DST4, 4), (SPORT, 2), (DPORT, 2), (PROTO, 1), (PACKETS, 4),
                  (OCTETS, 4), (START_UPTIME, 4), (END_UPTIME, 4), (SYSINIT_MS, 8))
    r_ms = [flow4(0, {START_MS: e - 5000, END_MS: e - 1000}),          # plausible
            flow4(1, {START_MS: e - 90 * day - 1, END_MS: e - 1000}),  # 1 ms too old
            flow4(2, {START_MS: e - 90 * day, END_MS: e - 1000}),      # oldest kept
            flow4(3, {START_MS: e - 1000, END_MS: e + day}),           # latest kept
            flow4(4, {START_MS: e - 1000, END_MS: e + day + 1}),       # 1 ms too late
            flow4(5, {START_MS: e - 1000, END_MS: e - 2000})]          # start after end
    # an exporter clock a year behind (flowStart/EndSeconds)
    r_s = [flow4(6, {START_SEC: e // 1000 - 365 * 86400 - 10,
                     END_SEC: e // 1000 - 365 * 86400})]
    # systemInitTimeMilliseconds of an exporter whose clock was never set (1970)
    r_up = [flow4(7, {SYSINIT_MS: 1000, START_UPTIME: 5000, END_UPTIME: 9000})]
    for r in r_s + r_up:
        del r[START_MS], r[END_MS]
    c.send(ts, ipfix_message(e // 1000, 0, dom, [
        ipfix_template_set([(256, t_ms), (257, t_s), (258, t_up)]),
        data_set(256, [enc_record(t_ms, r) for r in r_ms]),
        data_set(257, [enc_record(t_s, r) for r in r_s]),
        data_set(258, [enc_record(t_up, r) for r in r_up])]))
    for r in r_ms:
        c.expect(Ctx(ts, EXP4, dom, 10), t_ms, r)
    for r in r_s:
        c.expect(Ctx(ts, EXP4, dom, 10), t_s, r)
    for r in r_up:
        c.expect(Ctx(ts, EXP4, dom, 10, sysinit_ms=1000), t_up, r)
    return c


CASES = [case_ipfix_options_sampling, case_ipfix_options_sampling_psamp, case_ipfix_withdrawal,
         case_ipfix_reduced_length, case_v9_nsel, case_ipfix_ipv6, case_ipfix_biflow,
         case_ipfix_systeminit, case_v9_data_before_template, case_v9_uptime_wrap,
         case_ipfix_flowdirection, case_ipfix_seqloss, case_v9_seqloss, case_v5_seqloss,
         case_ipfix_dualstack_procera, case_ipfix_dualstack_nat, case_v9_h3c_vrfname,
         case_v9_h3c_varlen_hostile, case_v9_egress_only, case_v9_egress_freebsd,
         case_ipfix_postcounters, case_ipfix_times_implausible]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="fixtures/hand")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for fn in CASES:
        c = fn()
        c.write(args.out)
        print("%s: %d datagrams, %d records" % (c.name, len(c.pkts), len(c.rows)),
              file=sys.stderr)


if __name__ == "__main__":
    main()
