#!/usr/bin/python3
"""Golden tests: spamflowd's --flows CSV held against independent decoders.

  compare.py softflowd --spamflowd EXE --fixture F.pcap --expect F.expect.json
                       [--tshark PROG] [--fixbuf EXE]
      Replays a softflowd capture and checks, record by record:
      - the record count against the expect file's true count (scripts/count_records.py);
      - every record tshark decodes (PDML, so each record keeps its own fields even when a
        datagram mixes templates) against ours: exporter, domain, version, src, dst, ports,
        proto, tcp flags, packets, bytes, start/end ms, sampling, direction, recv_ms. Times
        are rebuilt from the raw values tshark shows, with the wire's own precision (v5
        secs+nsecs, v9 whole secs, IPFIX sysUpTime + systemInitTimeMilliseconds, or absolute);
      - for IPFIX, with --fixbuf, every column of every record against tests/tools/fixbuf_flows
        (libfixbuf);
      - the --json summary: records, seq_lost == 0 and the sampling interval.
  compare.py hand --spamflowd EXE --fixture X.pcap --expect-csv X.expect.csv
                  [--expect-json X.expect.json] [--tshark PROG [--port N]]
      Replays a hand-built capture; the --flows output must equal the expected CSV byte for
      byte, and the summary's counters must equal those in the expect JSON. With --tshark,
      every record tshark decodes (the collector's rules applied to its raw values) must
      equal ours, datagram by datagram, and the records the rules drop as ambiguous must be
      the summary's ambiguous_addr.
  compare.py registered --dir fixtures/hand NAME...
      Fails when a capture in DIR has no golden test (NAME = registered case names).

Exit status: 0 pass, 1 fail, 77 skipped (meson's convention), 2 usage. Standard library only.
"""

import argparse
import calendar
import csv
import difflib
import io
import ipaddress
import json
import os
import re
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from decimal import ROUND_FLOOR, Decimal

HEADER = ("recv_ms,exporter,domain,version,src,dst,sport,dport,proto,tcp_flags,packets,bytes,"
          "start_ms,end_ms,sampling,fw_event,direction,nat_src,nat_dst,nat_sport,nat_dport,"
          "rev_packets,rev_bytes").split(",")
SKIP = 77
MAX_SHOWN = 15  # mismatches printed in full per comparison

# Columns that must be empty unless the template carries one of these IEs.
OPTIONAL_COLUMNS = {
    "fw_event": ({(0, 233), (0, 40005)}, ["fw_event"]),
    "nat": ({(0, 225), (0, 226), (0, 227), (0, 228), (0, 281), (0, 282)},
            ["nat_src", "nat_dst", "nat_sport", "nat_dport"]),
    "reverse": ({(29305, 1), (29305, 2), (29305, 85), (29305, 86), (0, 232), (0, 299)},
                ["rev_packets", "rev_bytes"]),
}


class Report:
    """Collects check results; a test fails when any check failed."""

    def __init__(self, name):
        self.name = name
        self.failed = 0

    def ok(self, msg):
        print("ok    %s" % msg)

    def fail(self, msg):
        self.failed += 1
        print("FAIL  %s" % msg)

    def note(self, msg):
        print("note  %s" % msg)

    def check(self, cond, msg):
        (self.ok if cond else self.fail)(msg)
        return cond


# ---- running spamflowd --------------------------------------------------------------------

def run_spamflowd(exe, fixture, workdir, want_json):
    out = os.path.join(workdir, "flows.csv")
    cmd = [exe, "--replay", fixture, "--flows", out]
    if want_json:
        cmd.append("--json")
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        raise RuntimeError("%s exited %d: %s" % (" ".join(cmd), p.returncode, p.stderr.strip()))
    with open(out, newline="") as f:
        text = f.read()
    summary = None
    if want_json:
        try:
            summary = json.loads(p.stdout)
        except ValueError as e:
            raise RuntimeError("spamflowd --json printed no JSON document (%s): %r"
                               % (e, p.stdout[:300]))
    return text, summary


def parse_csv(text, who, rep):
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        rep.fail("%s: empty CSV (not even a header)" % who)
        return []
    rep.check(rows[0] == HEADER, "%s: CSV header is the flowcsv header" % who)
    out = []
    for i, r in enumerate(rows[1:], 2):
        if len(r) != len(HEADER):
            rep.fail("%s: line %d has %d columns, not %d: %s"
                     % (who, i, len(r), len(HEADER), ",".join(r)))
            continue
        out.append(dict(zip(HEADER, r)))
    return out


# ---- tshark -------------------------------------------------------------------------------

MONTHS = {m: i for i, m in enumerate(
    ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"], 1)}
ABS_RE = re.compile(r"^([A-Z][a-z]{2})\s+(\d{1,2}), (\d{4}) (\d{2}):(\d{2}):(\d{2})(\.\d+)?"
                    r"(?: UTC)?$")
REL_RE = re.compile(r"^-?\d+(\.\d+)?$")
SET_RE = re.compile(r"^(?:Flow)?Set \d+ \[id=(\d+)\]")
RECORD_RE = re.compile(r"^(?:Flow \d+|pdu \d+/\d+)$")


def time_ms(show):
    """tshark's text for a time field (absolute in UTC, or relative seconds) -> integer ms,
    truncated. Exact: tshark prints nanoseconds."""
    m = ABS_RE.match(show)
    if m:
        secs = calendar.timegm((int(m.group(3)), MONTHS[m.group(1)], int(m.group(2)),
                                int(m.group(4)), int(m.group(5)), int(m.group(6))))
        frac = Decimal("0" + (m.group(7) or ".0"))
        return secs * 1000 + int((frac * 1000).to_integral_value(rounding=ROUND_FLOOR))
    if REL_RE.match(show):
        return int((Decimal(show) * 1000).to_integral_value(rounding=ROUND_FLOOR))
    raise ValueError("unrecognised tshark time %r" % show)


def s32(x):
    return ((x + 2 ** 31) % 2 ** 32) - 2 ** 31


def field_values(node):
    """name -> [show, ...] for every named field under node, in order."""
    vals = {}
    for f in node.iter("field"):
        name = f.get("name")
        if name:
            vals.setdefault(name, []).append(f.get("show", ""))
    return vals


def record_fields(node):
    """A data record's fields split into forward and RFC 5103 reverse ones (tshark names
    both alike and says "(Reverse Type ...)" in the display): two dicts name -> [field]."""
    fwd, rev = {}, {}
    for f in node.iter("field"):
        name = f.get("name")
        if name:
            (rev if "(Reverse " in f.get("showname", "") else fwd).setdefault(
                name, []).append(f)
    return fwd, rev


def template_ies(tnode, ipfix):
    """(pen, id, is_scope) for each field specifier of a template node. Only IPFIX has the
    enterprise bit (v9 types go up to 65535: NSEL's 40005)."""
    ies = []
    for f in tnode:
        show = f.get("show", "")
        if f.get("name") or not show.startswith("Field ("):
            continue
        v = f.get("value", "")
        if len(v) < 8:
            continue
        ie = int(v[0:4], 16)
        pen = 0
        if ipfix and ie & 0x8000 and len(v) >= 16:
            pen = int(v[8:16], 16)
        ies.append((pen, ie & 0x7FFF if ipfix else ie, "[Scope]" in show))
    return ies


# What the collector reads from a record, by IE, and the name tshark 4.0 shows it under.
# Counters in the collector's precedence (1 over 85 over 231; 2 over 86 over 298), then the
# egress-only fallback 23/24 (issue 12 rule 3).
BYTES_IES = [(1, "cflow.octets"), (85, "cflow.permanent_octets"),
             (231, "cflow.initiator_octets")]
PKTS_IES = [(2, "cflow.packets"), (86, "cflow.permanent_packets"),
            (298, "cflow.initiator_packets")]
OUT_BYTES_IE, OUT_PKTS_IE = (23, "cflow.post_octets"), (24, "cflow.post_packets")
# Absolute start/end times: tshark shows 150/152/154/156 (151/153/155/157) all as
# cflow.abstimestart (abstimeend); which is which follows the template's order.
ABS_START = {150: "s", 152: "ms", 154: "us", 156: "ns"}
ABS_END = {151: "s", 153: "ms", 155: "us", 157: "ns"}
V5_IES = {(0, ie) for ie in (8, 12, 7, 11, 4, 6, 2, 1, 22, 21)}
FW_EVENT_NAMES = {1: "created", 2: "deleted", 3: "denied", 4: "alert", 5: "update"}
# Collector rule for exported times (collector/session.h times_plausible())
TIMES_PAST_MS, TIMES_FUTURE_MS = 90 * 86400 * 1000, 86400 * 1000
# Variable-length strings a hand case can check tshark's decode of, by IE
VARLEN_NAMES = {96: "cflow.appl_name", 236: "cflow.vrfname"}


def addr_is_zero(a):
    return a is None or ipaddress.ip_address(a).packed.count(0) == len(
        ipaddress.ip_address(a).packed)


class TsharkDecoder:
    """Turns tshark's PDML into one expected CSV row per data record, carrying options state
    (systemInitTimeMilliseconds, sampling) per exporter and domain as a collector must, and
    applying the collector's rules to tshark's raw values: the address family of dual-stack
    templates, egress-only counters, implausible times (issue 12). A record the family rule
    drops is returned with "_ambiguous" set; one whose times the rule empties has
    "_times_dropped"."""

    def __init__(self):
        self.templates = {}  # (exporter, port, domain, tid) -> (set of (pen, ie), options, order)
        self.state = {}      # (exporter, port, domain) -> {"sysinit": ms, "sampling": n, ...}
        self.notes = []

    def datagram(self, pkt):
        frame = ip = udp = cflow = None
        malformed = False
        for proto in pkt.iter("proto"):
            name = proto.get("name")
            if name == "frame":
                frame = proto
            elif name in ("ip", "ipv6"):
                ip = ip or proto
            elif name == "udp":
                udp = proto
            elif name == "cflow":
                cflow = proto
            elif name == "_ws.malformed":
                malformed = True
        if cflow is None:
            return None
        fv = field_values(frame)
        recv_ms = time_ms(fv["frame.time_epoch"][0])
        iv = field_values(ip)
        exporter = (iv.get("ip.src") or iv.get("ipv6.src"))[0]
        sport = int(field_values(udp)["udp.srcport"][0])

        hdr = {}
        for f in cflow:
            name = f.get("name")
            if name and name.startswith("cflow."):
                hdr.setdefault(name, f.get("show", ""))
                for sub in f.iter("field"):
                    if sub.get("name"):
                        hdr.setdefault(sub.get("name"), sub.get("show", ""))
        version = int(hdr["cflow.version"])
        if version == 5:
            domain = (int(hdr["cflow.engine_type"]) << 8) | int(hdr["cflow.engine_id"])
            export_ms = int(hdr["cflow.unix_secs"]) * 1000 + int(hdr["cflow.unix_nsecs"]) \
                // 1000000
        elif version == 9:
            domain = int(hdr["cflow.source_id"])
            export_ms = int(hdr["cflow.unix_secs"]) * 1000
        else:
            domain = int(hdr["cflow.od_id"])
            export_ms = int(hdr["cflow.exporttime"]) * 1000
        st = self.state.setdefault((exporter, sport, domain),
                                   {"sysinit": None, "sampling": 1, "samplers": {}})
        ctx = {"recv_ms": recv_ms, "exporter": exporter, "port": sport, "domain": domain,
               "version": version, "hdr": hdr, "state": st, "export_ms": export_ms}
        if version == 5:
            rate = int(hdr.get("cflow.samplerate", "0"))
            st["sampling"] = rate if rate > 1 else 1

        rows = []
        for node in cflow:
            if node.get("name"):
                continue
            show = node.get("show", "")
            if version == 5 and RECORD_RE.match(show):
                rows.append(self.record(ctx, node, None))
                continue
            m = SET_RE.match(show)
            if not m:
                continue
            set_id = int(m.group(1))
            if set_id in (0, 1, 2, 3):
                self.template_set(ctx, node, set_id)
                continue
            if set_id < 256:
                continue
            tpl = self.templates.get((exporter, sport, domain, set_id))
            for rec in node:
                if rec.get("name") or not RECORD_RE.match(rec.get("show", "")):
                    continue
                if tpl is None:
                    self.notes.append("tshark decoded a record of set %d without a template "
                                      "seen before (frame time %d)" % (set_id, recv_ms))
                    continue
                if tpl[1]:
                    self.options_record(ctx, rec)
                else:
                    rows.append(self.record(ctx, rec, tpl))
        if malformed and rows:
            # tshark hit an exception inside this datagram: the record it was reading
            # may be cut short, so only the ones before it count as decoded
            rows.pop()
        return {"recv_ms": recv_ms, "rows": rows, "malformed": malformed}

    def template_set(self, ctx, node, set_id):
        options = set_id in (1, 3)
        for t in node:
            if t.get("name"):
                continue
            tv = {f.get("name"): f.get("show") for f in t if f.get("name")}
            if "cflow.template_id" not in tv:
                continue
            tid = int(tv["cflow.template_id"])
            ies = template_ies(t, ctx["version"] == 10)
            if ctx["version"] == 9:
                ies = [x for x in ies if not x[2]]
            key = (ctx["exporter"], ctx["port"], ctx["domain"], tid)
            if not ies:
                self.templates.pop(key, None)  # IPFIX withdrawal (field count 0)
                continue
            order = [(p, i) for p, i, _ in ies]
            self.templates[key] = (set(order), options, order)

    def options_record(self, ctx, rec):
        v = field_values(rec)
        st = ctx["state"]
        if "cflow.sys_init_time" in v:
            st["sysinit"] = time_ms(v["cflow.sys_init_time"][0])
        n = sampling_of(v)
        if n:
            sid = v.get("cflow.sampler_id") or v.get("cflow.selector_id")
            if sid:
                st["samplers"][int(sid[0], 0)] = n
            else:
                st["sampling"] = n

    def record(self, ctx, rec, tpl):
        fwd, rev = record_fields(rec)
        v = {k: [f.get("show", "") for f in fs] for k, fs in fwd.items()}
        ies, order = (V5_IES, None) if tpl is None else (tpl[0], tpl[2])

        def has(ie, pen=0):
            return (pen, ie) in ies

        def first(*names):
            for n in names:
                if n in v:
                    return v[n][0]
            return None

        def num(name, default=""):
            x = first(name)
            return str(int(x, 0)) if x is not None else default

        row = {
            "recv_ms": str(ctx["recv_ms"]),
            "exporter": ctx["exporter"],
            "domain": str(ctx["domain"]),
            "version": str(ctx["version"]),
        }
        # Addresses; a dual-stack template carries the family of ipVersion 60, else of
        # the non-zero addresses; both or neither: the record is not a flow
        fam = None
        dual = (has(8) or has(12)) and (has(27) or has(28))
        a4 = (first("cflow.srcaddr"), first("cflow.dstaddr"))
        a6 = (first("cflow.srcaddrv6"), first("cflow.dstaddrv6"))
        if dual:
            if has(60):
                ver = first("cflow.ip_version")
                fam = int(ver, 0) if ver is not None and int(ver, 0) in (4, 6) else None
            else:
                nz4 = not all(addr_is_zero(a) for a in a4)
                nz6 = not all(addr_is_zero(a) for a in a6)
                fam = None if nz4 == nz6 else 4 if nz4 else 6
            if fam is None:
                row["_ambiguous"] = True
                return row
            zero = "0.0.0.0" if fam == 4 else "::"
            pair = a4 if fam == 4 else a6
            row["src"], row["dst"] = pair[0] or zero, pair[1] or zero
        else:
            row["src"] = a4[0] or a6[0] or "::"
            row["dst"] = a4[1] or a6[1] or "::"
        row["sport"] = num("cflow.srcport", "0")
        row["dport"] = num("cflow.dstport", "0")
        row["proto"] = num("cflow.protocol", "0")
        flags = first("cflow.tcpflags")
        row["tcp_flags"] = "" if flags is None else str(int(flags, 0) & 0xFF)

        def counter(choices, out):
            val = None
            for ie, name in choices:
                if has(ie):
                    val = num(name, None)
                    break
            if has(out[0]) and not (val and int(val)):
                val = num(out[1], val)
            return "" if val is None else val

        row["packets"] = counter(PKTS_IES, OUT_PKTS_IE)
        row["bytes"] = counter(BYTES_IES, OUT_BYTES_IE)
        d = first("cflow.direction")
        row["direction"] = "" if d is None else ("in" if int(d, 0) == 0 else "out")
        n = sampling_of(v)
        if not n:
            sid = first("cflow.sampler_id") or first("cflow.selector_id")
            n = ctx["state"]["samplers"].get(int(sid, 0)) if sid is not None else None
        row["sampling"] = str(n or ctx["state"]["sampling"])
        row["start_ms"], row["end_ms"], dropped = self.times(ctx, v, ies, order)
        if dropped:
            row["_times_dropped"] = True
        ev = first("cflow.firewall_event")
        row["fw_event"] = "" if ev is None else FW_EVENT_NAMES.get(int(ev, 0), "?%s" % ev)
        if ies & {(0, 225), (0, 226), (0, 281), (0, 282)}:
            v6nat = fam == 6 if dual else not (has(225) or has(226))
            names = (("cflow.post_nat_source_ipv6_address",
                      "cflow.post_nat_destination_ipv6_address", "::") if v6nat else
                     ("cflow.post_natsource_ipv4_address",
                      "cflow.post_natdestination_ipv4_address", "0.0.0.0"))
            row["nat_src"] = first(names[0]) or names[2]
            row["nat_dst"] = first(names[1]) or names[2]
            row["nat_sport"] = num("cflow.post_naptsource_transport_port", "0")
            row["nat_dport"] = num("cflow.post_naptdestination_transport_port", "0")
        if ies & {(29305, 1), (29305, 2), (29305, 85), (29305, 86)}:
            r = {k: fs[0].get("show", "") for k, fs in rev.items()}
            row["rev_packets"] = str(int(r.get("cflow.packets", r.get(
                "cflow.permanent_packets", "0")), 0))
            row["rev_bytes"] = str(int(r.get("cflow.octets", r.get(
                "cflow.permanent_octets", "0")), 0))
        elif has(232) or has(299):
            row["rev_packets"] = num("cflow.responder_packets", "0")
            row["rev_bytes"] = num("cflow.responder_octets", "0")
        for ie_set, cols in OPTIONAL_COLUMNS.values():
            if not (ies & ie_set):
                for c in cols:
                    row[c] = ""
        # variable-length strings tshark decoded (cases check them against what they sent)
        row["_varlen"] = {ie: bytes.fromhex(fwd[name][0].get("value", "")) if name in fwd
                          else b"" for ie, name in VARLEN_NAMES.items() if has(ie)}
        return row

    def times(self, ctx, v, ies, order):
        """(start, end, dropped) as the collector derives them from the raw values tshark
        shows, at the precision the wire has."""
        def has(ie):
            return (0, ie) in ies

        def abs_times(name, kinds):
            # the k-th value shown belongs to the k-th such IE of the template
            ids = [ie for p, ie in (order or []) if p == 0 and ie in kinds]
            return dict(zip(ids, (time_ms(x) for x in v.get(name, []))))

        starts = abs_times("cflow.abstimestart", ABS_START)
        ends = abs_times("cflow.abstimeend", ABS_END)
        s = e = None
        hs = he = False
        if has(152) or has(153):
            s, e, hs, he = starts.get(152), ends.get(153), has(152), has(153)
        elif has(150) or has(151):
            s, e, hs, he = starts.get(150), ends.get(151), has(150), has(151)
        elif ies & {(0, 154), (0, 155), (0, 156), (0, 157)}:
            s = starts.get(154, starts.get(156))
            e = ends.get(155, ends.get(157))
            hs, he = s is not None, e is not None
        elif has(22) or has(21) or ctx["version"] == 5:
            # sysUpTime-relative: tshark shows the raw ms offset (as an absolute time in
            # 1970, i.e. the same number, when both offsets are 0)
            rel = {}
            for key, names in (("s", ("cflow.timestart", "cflow.abstimestart")),
                               ("e", ("cflow.timeend", "cflow.abstimeend"))):
                for name in names:
                    if name in v:
                        rel[key] = time_ms(v[name][0])
                        break
            if ctx["version"] in (5, 9):
                hdr = ctx["hdr"]
                export_ms = int(hdr["cflow.unix_secs"]) * 1000
                if ctx["version"] == 5:
                    export_ms += int(hdr["cflow.unix_nsecs"]) // 1000000
                up = time_ms(hdr["cflow.sysuptime"])
                conv = lambda x: export_ms - s32(up - x)  # noqa: E731
            else:
                init = None
                if "cflow.sys_init_time" in v:
                    init = time_ms(v["cflow.sys_init_time"][0])
                if init is None:
                    init = ctx["state"]["sysinit"]
                if not init:
                    return "", "", False  # no clock to place them: no times, nothing dropped
                conv = lambda x: init + x  # noqa: E731
            if "s" in rel:
                s, hs = conv(rel["s"]), True
            if "e" in rel:
                e, he = conv(rel["e"]), True
        elif has(323):
            s = e = time_ms(v["cflow.observation_time_milliseconds"][0])
            hs = he = True
        # NSEL: flowStartMilliseconds and an event time (323) but no end: the event ends it
        if hs and not he and has(323) and "cflow.observation_time_milliseconds" in v:
            e, he = time_ms(v["cflow.observation_time_milliseconds"][0]), True
        if not hs and not he:
            return "", "", False
        if not hs:
            s = e
        if not he:
            e = s
        x = ctx["export_ms"]
        if not (s <= e and s >= x - TIMES_PAST_MS and e <= x + TIMES_FUTURE_MS):
            return "", "", True
        return str(s), str(e), False


def sampling_of(v):
    """A sampling interval signalled by a record's fields, or 0."""
    def get(name):
        return int(v[name][0], 0) if name in v else 0

    if get("cflow.sampling_interval") > 0:
        return get("cflow.sampling_interval")
    i = get("cflow.sampling_packet_interval")
    if i > 0:
        return (i + get("cflow.sampling_packet_space")) // i
    return get("cflow.sampler_random_interval")


def tshark_datagrams(tshark, fixture, port):
    cmd = [tshark, "-r", fixture, "-n", "-d", "udp.port==%d,cflow" % port, "-T", "pdml"]
    env = dict(os.environ, TZ="UTC", LC_ALL="C")
    p = subprocess.run(cmd, capture_output=True, env=env, timeout=300)
    if p.returncode != 0:
        raise RuntimeError("%s exited %d: %s" % (" ".join(cmd), p.returncode,
                                                 p.stderr.decode(errors="replace").strip()))
    dec = TsharkDecoder()
    out = []
    for _, elem in ET.iterparse(io.BytesIO(p.stdout)):
        if elem.tag != "packet":
            continue
        d = dec.datagram(elem)
        if d is not None:
            out.append(d)
        elem.clear()
    return out, dec.notes


# ---- comparisons ----------------------------------------------------------------------------

def same_value(col, ours, theirs):
    if col in ("src", "dst", "exporter", "nat_src", "nat_dst") and ours != theirs:
        try:
            return ipaddress.ip_address(ours) == ipaddress.ip_address(theirs)
        except ValueError:
            return False
    return ours == theirs


def diff_rows(pairs, columns, label, rep):
    """pairs: [(where, ours_row, their_row)]. Prints the first mismatches; returns count."""
    bad = []
    per_col = {}
    for where, ours, theirs in pairs:
        cols = [c for c in columns if c in theirs and not same_value(c, ours[c], theirs[c])]
        if cols:
            bad.append((where, ours, theirs, cols))
            for c in cols:
                per_col[c] = per_col.get(c, 0) + 1
    if not bad:
        return 0
    rep.fail("%s: %d of %d records differ (by column: %s)"
             % (label, len(bad), len(pairs),
                ", ".join("%s %d" % kv for kv in sorted(per_col.items()))))
    for where, ours, theirs, cols in bad[:MAX_SHOWN]:
        print("      %s: %s" % (where, "; ".join("%s ours=%r theirs=%r"
                                                 % (c, ours[c], theirs[c]) for c in cols)))
        print("        ours:   %s" % ",".join(ours[c] for c in HEADER))
        print("        theirs: %s" % ",".join(theirs.get(c, "?") for c in HEADER))
    if len(bad) > MAX_SHOWN:
        print("      ... %d more" % (len(bad) - MAX_SHOWN))
    return len(bad)


def split_by(rows, counts):
    out, off = [], 0
    for n in counts:
        out.append(rows[off:off + n])
        off += n
    return out


def compare_tshark(ours, tdgrams, expect, rep):
    per_dg = expect.get("records_per_datagram")
    tcounts = [len(d["rows"]) for d in tdgrams]
    total_t = sum(tcounts)
    rep.note("tshark decoded %d records in %d datagrams" % (total_t, len(tdgrams)))
    if per_dg is None or len(per_dg) != len(tdgrams):
        rep.fail("expect file's records_per_datagram (%s datagrams) does not match tshark's %d "
                 "datagrams" % (None if per_dg is None else len(per_dg), len(tdgrams)))
        return
    if sum(per_dg) != len(ours):
        # Can't align by datagram; show where recv_ms groups diverge instead.
        groups = {}
        for r in ours:
            groups[r["recv_ms"]] = groups.get(r["recv_ms"], 0) + 1
        shown = 0
        for d in tdgrams:
            k = str(d["recv_ms"])
            if groups.get(k, 0) != len(d["rows"]) and shown < MAX_SHOWN:
                print("      datagram at %s: ours %d records, tshark %d"
                      % (k, groups.get(k, 0), len(d["rows"])))
                shown += 1
        return
    stopped = [(i, t, e) for i, (t, e) in enumerate(zip(tcounts, per_dg)) if t < e]
    extra = [(i, t, e) for i, (t, e) in enumerate(zip(tcounts, per_dg)) if t > e]
    if stopped:
        rep.note("tshark stopped early in %d datagrams (%d records not decoded by tshark, "
                 "compared only with the expect count): %s"
                 % (len(stopped), sum(e - t for _, t, e in stopped),
                    ", ".join("#%d %d/%d" % (i + 1, t, e) for i, t, e in stopped[:10])))
    rep.check(not extra, "tshark never decodes more records in a datagram than the true count"
              + ("" if not extra else ": " + ", ".join("#%d %d/%d" % (i + 1, t, e)
                                                        for i, t, e in extra[:10])))
    pairs = []
    n = 0
    for i, (chunk, d) in enumerate(zip(split_by(ours, per_dg), tdgrams)):
        for j, theirs in enumerate(d["rows"][:len(chunk)]):
            pairs.append(("datagram %d record %d (csv line %d)" % (i + 1, j + 1, n + j + 2),
                          chunk[j], theirs))
        n += len(chunk)
    if diff_rows(pairs, HEADER, "ours vs tshark", rep) == 0:
        cols = [c for c in HEADER if any(c in t for _, _, t in pairs)]
        rep.ok("ours == tshark on all %d records tshark decodes (columns: %s; fw_event, NAT and "
               "reverse columns checked empty when the template has no such IE)"
               % (len(pairs), " ".join(cols)))


def compare_fixbuf(exe, fixture, ours, rep):
    p = subprocess.run([exe, fixture], capture_output=True, text=True, timeout=120)
    last = p.stderr.strip().splitlines()[-1:] or [""]
    if p.returncode != 0:
        rep.fail("fixbuf_flows exited %d: %s" % (p.returncode, p.stderr.strip()[-2000:]))
        return
    rep.note(last[0])
    theirs = parse_csv(p.stdout, "fixbuf_flows", rep)
    if not rep.check(len(theirs) == len(ours), "fixbuf_flows records (%d) == ours (%d)"
                     % (len(theirs), len(ours))):
        return
    pairs = [("csv line %d" % (i + 2), o, t) for i, (o, t) in enumerate(zip(ours, theirs))]
    if diff_rows(pairs, HEADER, "ours vs libfixbuf", rep) == 0:
        rep.ok("ours == libfixbuf on all %d records, all %d columns" % (len(pairs), len(HEADER)))


def summary_rows(summary, addr, port, rep):
    rows = summary.get("exporters")
    if not isinstance(rows, list):
        rep.fail("--json summary has no \"exporters\" list: %s" % json.dumps(summary)[:300])
        return []
    mine = [r for r in rows if r.get("addr") == addr and (port is None or r.get("port") == port)]
    if not mine:
        rep.fail("--json summary has no row for exporter %s:%s (rows: %s)"
                 % (addr, port, [(r.get("addr"), r.get("port")) for r in rows]))
    return mine


def check_summary_softflowd(summary, expect, rep):
    addr, _, port = expect["exporter"].rpartition(":")
    rows = summary_rows(summary, addr, int(port), rep)
    if not rows:
        return
    want = expect["data_records"]
    rep.check(sum(r.get("records", 0) for r in rows) == want,
              "summary: records for %s = %d (want %d)"
              % (expect["exporter"], sum(r.get("records", 0) for r in rows), want))
    rep.check(summary.get("totals", {}).get("records") == want,
              "summary: totals.records = %s (want %d)"
              % (summary.get("totals", {}).get("records"), want))
    rep.check(sum(r.get("datagrams", 0) for r in rows) == expect["datagrams"],
              "summary: datagrams = %d (want %d)"
              % (sum(r.get("datagrams", 0) for r in rows), expect["datagrams"]))
    # A clean, lossless capture from one softflowd run: no loss, no restart, nothing
    # malformed, every data set's template known.
    for key in ("seq_lost", "seq_resets", "malformed_total", "no_template_sets"):
        got = [r.get(key) for r in rows]
        if all(x is None for x in got):
            rep.note("summary rows have no %s" % key)
            continue
        rep.check(all(x == 0 for x in got), "summary: %s = %s (want 0: clean lossless capture)"
                  % (key, got))
    if "sampling_interval" in expect:
        got = [r.get("sampling") for r in rows if r.get("records", 0) > 0]
        rep.check(got and all(x == expect["sampling_interval"] for x in got),
                  "summary: sampling = %s (want %d)" % (got, expect["sampling_interval"]))


def cmd_softflowd(a):
    rep = Report(os.path.basename(a.fixture))
    with open(a.expect) as f:
        expect = json.load(f)
    port = int(expect["collector"].rpartition(":")[2])
    with tempfile.TemporaryDirectory(prefix="golden-") as tmp:
        text, summary = run_spamflowd(a.spamflowd, a.fixture, tmp, True)
    ours = parse_csv(text, "spamflowd", rep)
    rep.check(len(ours) == expect["data_records"], "spamflowd records: %d (want %d, the true "
              "count in %s)" % (len(ours), expect["data_records"], os.path.basename(a.expect)))
    versions = sorted({r["version"] for r in ours})
    rep.check(versions == [str(expect["version"])], "versions in the CSV: %s (want %s)"
              % (versions, expect["version"]))
    check_summary_softflowd(summary, expect, rep)

    tshark = a.tshark or "tshark"
    try:
        tdgrams, notes = tshark_datagrams(tshark, a.fixture, port)
    except FileNotFoundError:
        rep.note("tshark not found: tshark comparison skipped")
        tdgrams = None
    if tdgrams is not None:
        for n in notes[:5]:
            rep.note(n)
        compare_tshark(ours, tdgrams, expect, rep)
    if a.fixbuf:
        if expect["version"] == 10:
            compare_fixbuf(a.fixbuf, a.fixture, ours, rep)
        else:
            rep.note("fixbuf_flows reads IPFIX only: not run for v%d" % expect["version"])
    return finish(rep)


# ---- hand-built fixtures -----------------------------------------------------------------------

HAND_COUNTERS = {
    # expect.json key -> summary row key (a.b: key b of the row's object a)
    "datagrams": "datagrams",
    "records": "records",
    "seq_lost": "seq_lost",
    "sets_without_template": "no_template_sets",
    "template_withdrawals": "templates_withdrawn",
    "ambiguous_addr": "ambiguous_addr",
    "times_dropped": "times_dropped",
    "malformed_total": "malformed_total",
    "bad_varlen": "malformed.bad_varlen",
}
# Counters that must be 0 when a case does not give them.
HAND_ZERO_UNLESS_GIVEN = ("seq_lost", "ambiguous_addr", "times_dropped", "malformed_total")
# Expect keys read by the tshark check, not by the summary check.
HAND_TSHARK_KEYS = ("varlen_values",)


def summary_value(row, skey):
    for part in skey.split("."):
        if not isinstance(row, dict) or part not in row:
            return None
        row = row[part]
    return row


def compare_tshark_hand(ours, tdgrams, notes, expect, rows, rep):
    """Every record tshark decodes, with the collector's rules applied to its raw values,
    against ours, datagram by datagram (grouped by receive time: hand-built datagrams are at
    least 1 s apart). Records the family rule drops must be exactly the ones missing from
    ours: each datagram's remaining records must equal ours one for one, and their count
    must equal the summary's ambiguous_addr."""
    for n in notes[:5]:
        rep.note(n)
    tgroups = {}
    for d in tdgrams:
        g = tgroups.setdefault(str(d["recv_ms"]), {"rows": [], "malformed": False})
        g["rows"] += d["rows"]
        g["malformed"] |= d["malformed"]
    ogroups = {}
    for r in ours:
        ogroups.setdefault(r["recv_ms"], []).append(r)
    keys = list(ogroups) + [k for k in tgroups if k not in ogroups]
    pairs, problems, stopped = [], [], []
    n_t = n_amb = n_times = 0
    line = 2
    for k in keys:
        mine = ogroups.get(k, [])
        g = tgroups.get(k)
        if g is None:
            problems.append("datagram at %s: ours %d records, tshark shows no NetFlow/IPFIX "
                            "there" % (k, len(mine)))
            line += len(mine)
            continue
        kept = [r for r in g["rows"] if not r.get("_ambiguous")]
        n_amb += len(g["rows"]) - len(kept)
        n_times += sum(1 for r in kept if r.get("_times_dropped"))
        n_t += len(kept)
        if g["malformed"]:
            stopped.append("%s (%d of our %d)" % (k, len(kept), len(mine)))
            if len(kept) > len(mine):
                problems.append("datagram at %s: tshark stopped at a malformed record after "
                                "%d records, ours has only %d" % (k, len(kept), len(mine)))
        elif len(kept) != len(mine):
            problems.append("datagram at %s: ours %d records, tshark %d (+%d it shows with "
                            "ambiguous addresses)" % (k, len(mine), len(kept),
                                                     len(g["rows"]) - len(kept)))
        for j, theirs in enumerate(kept[:len(mine)]):
            pairs.append(("datagram at %s record %d (csv line %d)" % (k, j + 1, line + j),
                          mine[j], theirs))
        line += len(mine)
    rep.note("tshark decoded %d records (+%d it shows with ambiguous addresses) in %d "
             "datagrams" % (n_t, n_amb, len(tdgrams)))
    if stopped:
        rep.note("tshark met a malformed record and stopped in %d datagrams (the records "
                 "after it are checked against the expected CSV only): %s"
                 % (len(stopped), ", ".join(stopped)))
    rep.check(not problems, "tshark and ours have the same records in each datagram"
              + ("" if not problems else ": " + "; ".join(problems[:MAX_SHOWN])))
    if diff_rows(pairs, HEADER, "ours vs tshark", rep) == 0 and pairs:
        cols = [c for c in HEADER if any(c in t for _, _, t in pairs)]
        rep.ok("ours == tshark on all %d records tshark decodes (columns: %s)"
               % (len(pairs), " ".join(cols)))
    # the rule's drops: tshark's ambiguous records are the ones missing from ours, so their
    # number is the summary's ambiguous_addr (and the times the rule empties, times_dropped)
    for key, n in (("ambiguous_addr", n_amb), ("times_dropped", n_times)):
        vals = [summary_value(r, key) for r in rows]
        if not rows or any(x is None for x in vals):
            rep.check(n == expect.get(key, 0), "tshark records the rule counts as %s: %d "
                      "(expect file %d; the summary has no %s)"
                      % (key, n, expect.get(key, 0), key))
            continue
        got = sum(vals)
        if stopped and n < got:
            rep.note("tshark shows %d %s records before it stopped; summary %s = %d"
                     % (n, key, key, got))
            continue
        rep.check(n == got and n == expect.get(key, 0),
                  "tshark records the rule counts as %s: %d (summary %d, expect file %d)"
                  % (key, n, got, expect.get(key, 0)))
    want = expect.get("varlen_values")
    if want:
        for ie, values in sorted(want.items()):
            seen = [r["_varlen"][int(ie)] for d in tdgrams for r in d["rows"]
                    if int(ie) in r.get("_varlen", {})]
            exp = [x.encode() for x in values]
            rep.check(seen == exp, "tshark's decode of IE %s (%s): %d values%s"
                      % (ie, VARLEN_NAMES.get(int(ie), "?"), len(seen),
                         " == the values sent" if seen == exp else
                         " != the %d values sent: first difference at %s" % (
                             len(exp), next((i for i, (x, y) in enumerate(zip(seen, exp))
                                             if x != y), min(len(seen), len(exp))))))


def cmd_hand(a):
    rep = Report(os.path.basename(a.fixture))
    with open(a.expect_csv, newline="") as f:
        want = f.read()
    with tempfile.TemporaryDirectory(prefix="golden-") as tmp:
        text, summary = run_spamflowd(a.spamflowd, a.fixture, tmp, a.expect_json is not None)
    if text == want:
        rep.ok("--flows output == %s (%d records)"
               % (os.path.basename(a.expect_csv), max(0, text.count("\n") - 1)))
    else:
        rep.fail("--flows output differs from %s" % os.path.basename(a.expect_csv))
        sys.stdout.writelines(difflib.unified_diff(
            want.splitlines(True), text.splitlines(True),
            fromfile=a.expect_csv, tofile="spamflowd --flows"))
    expect, rows = {}, []
    if a.expect_json:
        with open(a.expect_json) as f:
            expect = json.load(f)
        rows = summary.get("exporters")
        if not isinstance(rows, list) or not rows:
            rep.fail("--json summary has no exporter rows: %s" % json.dumps(summary)[:300])
            return finish(rep)
        for key, skey in HAND_COUNTERS.items():
            given = key in expect
            if not given and key not in HAND_ZERO_UNLESS_GIVEN:
                continue
            vals = [summary_value(r, skey) for r in rows]
            if any(x is None for x in vals):
                (rep.fail if given else rep.note)(
                    "summary rows have no %s%s" % (skey, "" if given else
                                                   " (0 expected, not checked)"))
                continue
            rep.check(sum(vals) == expect.get(key, 0), "summary: %s = %d (want %s = %d%s)"
                      % (skey, sum(vals), key, expect.get(key, 0),
                         "" if given else ", not in the expect file"))
        if "records" in expect:
            got = summary.get("totals", {}).get("records")
            rep.check(got == expect["records"], "summary: totals.records = %s (want %d)"
                      % (got, expect["records"]))
        for key in sorted(set(expect) - set(HAND_COUNTERS) - set(HAND_TSHARK_KEYS)):
            rep.note("expect key %s = %s: no summary counter to compare" % (key, expect[key]))
    if a.tshark:
        port = int(a.port) if a.port else hand_port(a.fixture)
        ours = parse_csv(text, "spamflowd", rep)
        tdgrams, notes = tshark_datagrams(a.tshark, a.fixture, port)
        compare_tshark_hand(ours, tdgrams, notes, expect, rows, rep)
    elif any(k in expect for k in HAND_TSHARK_KEYS):
        rep.note("%s: checked only with --tshark" % ", ".join(
            k for k in HAND_TSHARK_KEYS if k in expect))
    return finish(rep)


def hand_port(fixture):
    """The collector port of a hand-built capture: the UDP destination of its first
    datagram (classic pcap, Ethernet, IPv4 or IPv6, as scripts/build_datagrams.py writes)."""
    with open(fixture, "rb") as f:
        data = f.read(24 + 16 + 14 + 40 + 8)
    eth = 24 + 16
    et = int.from_bytes(data[eth + 12:eth + 14], "big")
    ip = eth + 14
    udp = ip + (20 if et == 0x0800 else 40)
    return int.from_bytes(data[udp + 2:udp + 4], "big")


def cmd_registered(a):
    rep = Report("registered")
    have = sorted(f[:-5] for f in os.listdir(a.dir) if f.endswith(".pcap"))
    missing = [n for n in have if n not in a.names]
    gone = [n for n in a.names if n not in have]
    rep.check(not missing, "every capture in %s has a golden test%s"
              % (a.dir, "" if not missing else " (missing: %s)" % ", ".join(missing)))
    rep.check(not gone, "every registered case has a capture%s"
              % ("" if not gone else " (no pcap: %s)" % ", ".join(gone)))
    return finish(rep)


def finish(rep):
    print("%s: %s" % (rep.name, "FAIL (%d checks)" % rep.failed if rep.failed else "pass"))
    return 1 if rep.failed else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("softflowd")
    s.add_argument("--spamflowd", required=True)
    s.add_argument("--fixture", required=True)
    s.add_argument("--expect", required=True)
    s.add_argument("--tshark")
    s.add_argument("--fixbuf")
    h = sub.add_parser("hand")
    h.add_argument("--spamflowd", required=True)
    h.add_argument("--fixture", required=True)
    h.add_argument("--expect-csv", required=True)
    h.add_argument("--expect-json")
    h.add_argument("--tshark")
    h.add_argument("--port", help="collector port (default: the first datagram's)")
    r = sub.add_parser("registered")
    r.add_argument("--dir", required=True)
    r.add_argument("names", nargs="*")
    a = ap.parse_args()
    try:
        return {"softflowd": cmd_softflowd, "hand": cmd_hand, "registered": cmd_registered}[
            a.cmd](a)
    except (RuntimeError, OSError, ValueError, KeyError, subprocess.TimeoutExpired) as e:
        print("FAIL  %s: %s" % (type(e).__name__, e))
        return 1


if __name__ == "__main__":
    sys.exit(main())
