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
                  [--expect-json X.expect.json]
      Replays a hand-built capture; the --flows output must equal the expected CSV byte for
      byte, and the summary's counters must equal those in the expect JSON.
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


def template_ies(tnode):
    """(pen, id, is_scope) for each field specifier of a template node."""
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
        if ie & 0x8000 and len(v) >= 16:
            pen = int(v[8:16], 16)
        ies.append((pen, ie & 0x7FFF, "[Scope]" in show))
    return ies


class TsharkDecoder:
    """Turns tshark's PDML into one expected CSV row per data record, carrying options state
    (systemInitTimeMilliseconds, sampling) per exporter and domain as a collector must."""

    def __init__(self):
        self.templates = {}  # (exporter, port, domain, tid) -> (set of (pen, ie), options)
        self.state = {}      # (exporter, port, domain) -> {"sysinit": ms, "sampling": n}
        self.notes = []

    def datagram(self, pkt):
        frame = ip = udp = cflow = None
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
        elif version == 9:
            domain = int(hdr["cflow.source_id"])
        else:
            domain = int(hdr["cflow.od_id"])
        st = self.state.setdefault((exporter, sport, domain), {"sysinit": None, "sampling": 1})
        ctx = {"recv_ms": recv_ms, "exporter": exporter, "port": sport, "domain": domain,
               "version": version, "hdr": hdr, "state": st}
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
                ies, options = tpl
                if options:
                    self.options_record(ctx, rec)
                else:
                    rows.append(self.record(ctx, rec, ies))
        return {"recv_ms": recv_ms, "rows": rows}

    def template_set(self, ctx, node, set_id):
        options = set_id in (1, 3)
        for t in node:
            if t.get("name"):
                continue
            tv = {f.get("name"): f.get("show") for f in t if f.get("name")}
            if "cflow.template_id" not in tv:
                continue
            tid = int(tv["cflow.template_id"])
            ies = template_ies(t)
            if ctx["version"] == 9:
                ies = [x for x in ies if not x[2]]
            key = (ctx["exporter"], ctx["port"], ctx["domain"], tid)
            if not ies:
                self.templates.pop(key, None)  # IPFIX withdrawal (field count 0)
                continue
            self.templates[key] = ({(p, i) for p, i, _ in ies}, options)

    def options_record(self, ctx, rec):
        v = field_values(rec)
        st = ctx["state"]
        if "cflow.sys_init_time" in v:
            st["sysinit"] = time_ms(v["cflow.sys_init_time"][0])
        n = sampling_of(v)
        if n:
            st["sampling"] = n

    def record(self, ctx, rec, ies):
        v = field_values(rec)

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
            "src": first("cflow.srcaddr", "cflow.srcaddrv6") or "::",
            "dst": first("cflow.dstaddr", "cflow.dstaddrv6") or "::",
            "sport": num("cflow.srcport", "0"),
            "dport": num("cflow.dstport", "0"),
            "proto": num("cflow.protocol", "0"),
            "tcp_flags": num("cflow.tcpflags"),
            "packets": num("cflow.packets"),
            "bytes": num("cflow.octets"),
        }
        d = first("cflow.direction")
        row["direction"] = "" if d is None else ("in" if int(d, 0) == 0 else "out")
        n = sampling_of(v)
        row["sampling"] = str(n or ctx["state"]["sampling"])
        row["start_ms"], row["end_ms"] = self.times(ctx, v, ies)
        if ies is not None:
            for ie_set, cols in OPTIONAL_COLUMNS.values():
                if not (ies & ie_set):
                    for c in cols:
                        row[c] = ""
        else:
            for _, cols in OPTIONAL_COLUMNS.values():
                for c in cols:
                    row[c] = ""
        return row

    def times(self, ctx, v, ies):
        def ms(*names):
            for n in names:
                if n in v:
                    return time_ms(v[n][0])
            return None

        start = ms("cflow.timestart", "cflow.abstimestart")
        end = ms("cflow.timeend", "cflow.abstimeend")
        hdr = ctx["hdr"]
        absolute = ies is not None and ies & {(0, 150), (0, 151), (0, 152), (0, 153)}
        uptime = ies is None or ies & {(0, 21), (0, 22)}
        if uptime and not absolute:
            # sysUpTime-relative: tshark shows the raw ms offset
            if ctx["version"] in (5, 9):
                export_ms = int(hdr["cflow.unix_secs"]) * 1000
                if ctx["version"] == 5:
                    export_ms += int(hdr["cflow.unix_nsecs"]) // 1000000
                up = time_ms(hdr["cflow.sysuptime"])
                conv = lambda x: export_ms - s32(up - x)  # noqa: E731
            else:
                init = ms("cflow.sys_init_time")
                if init is None:
                    init = ctx["state"]["sysinit"]
                if not init:
                    return "", ""
                conv = lambda x: init + x  # noqa: E731
            start = conv(start) if start is not None else None
            end = conv(end) if end is not None else None
        if start is None and end is None:
            return "", ""
        if start is None:
            start = end
        if end is None:
            end = start
        return str(start), str(end)


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
    # expect.json key -> summary row key
    "datagrams": "datagrams",
    "records": "records",
    "seq_lost": "seq_lost",
    "sets_without_template": "no_template_sets",
    "template_withdrawals": "templates_withdrawn",
}


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
    if a.expect_json:
        with open(a.expect_json) as f:
            expect = json.load(f)
        rows = summary.get("exporters")
        if not isinstance(rows, list) or not rows:
            rep.fail("--json summary has no exporter rows: %s" % json.dumps(summary)[:300])
            return finish(rep)
        # Lossless unless the case says otherwise.
        expect.setdefault("seq_lost", 0)
        for key, skey in HAND_COUNTERS.items():
            if key not in expect:
                continue
            got = sum(r.get(skey, 0) for r in rows)
            rep.check(got == expect[key], "summary: %s = %d (want %s = %d)"
                      % (skey, got, key, expect[key]))
        if "records" in expect:
            got = summary.get("totals", {}).get("records")
            rep.check(got == expect["records"], "summary: totals.records = %s (want %d)"
                      % (got, expect["records"]))
        for key in sorted(set(expect) - set(HAND_COUNTERS)):
            rep.note("expect key %s = %s: no summary counter to compare" % (key, expect[key]))
    return finish(rep)


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
