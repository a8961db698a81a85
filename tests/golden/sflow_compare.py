#!/usr/bin/python3
"""Golden tests for sFlow v5: spamflowd's --flows CSV and --json summary held against tshark.

  sflow_compare.py pmacct --spamflowd EXE --fixture F.pcap --expect F.expect.json
                          [--tshark PROG]
      A pmacctd (sfprobe) capture (fixtures/README.md, "The pmacctd sFlow captures"):
      - nothing lost, nothing invented: our rows == the expect file's `records` (flow samples
        carrying an IP packet, counted by scripts/sflow_fixtures.py), tshark's flow samples
        per datagram == the expect file's;
      - every flow sample tshark decodes gives the row the decode contract
        (doc/sflow.md) says, built from tshark's fields only, and ours is equal
        in every column: recv_ms, exporter (agent), domain (sub-agent), version, src, dst,
        ports, proto, tcp_flags, packets, bytes, start/end, sampling, and the empty ones;
      - the summary: records, datagrams, counter_samples, samples_not_ip, sample_drops as
        the capture holds them; seq_lost, samples_lost, seq_resets and malformed 0.
  sflow_compare.py hand --spamflowd EXE --fixture X.pcap --expect-csv X.expect.csv
                        --expect-json X.expect.json [--tshark PROG]
      A hand-built capture (scripts/build_sflow.py): our --flows output == the generator's
      expected CSV byte for byte; the expected CSV == tshark's rows (so the generator's oracle
      is checked by an independent decoder); the summary's counters == the expect JSON.
  sflow_compare.py registered --dir fixtures/sflow-hand NAME...
      Fails when a capture in DIR has no golden test.

Exit status: 0 pass, 1 fail, 2 usage. Standard library only; shares compare.py's helpers.
"""

import argparse
import csv
import difflib
import io
import json
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare import (HEADER, Report, diff_rows, finish, parse_csv,  # noqa: E402
                     run_spamflowd, time_ms)

SFLOW_PORT = 6343
EMPTY = ["fw_event", "direction", "nat_src", "nat_dst", "nat_sport", "nat_dport",
         "rev_packets", "rev_bytes"]
# IPv6 extension headers the contract skips, by the tshark field holding their next header
IPV6_NXT = ("ipv6.nxt", "ipv6.hopopts.nxt", "ipv6.routing.nxt", "ipv6.dstopts.nxt",
            "ipv6.fraghdr.nxt", "ah.next_header")


# ---- tshark -------------------------------------------------------------------------------

def fields(node):
    """name -> first show, for the named fields directly or indirectly under node, not
    descending into nested protocols (a raw header's dissection is read separately)."""
    out = {}

    def rec(n):
        for c in n:
            if c.tag == "proto":
                continue
            name = c.get("name")
            if name:
                out.setdefault(name, c.get("show", ""))
            rec(c)
    rec(node)
    return out


def containers(node, key):
    """Unnamed field containers directly under node that hold a field named key."""
    return [c for c in node if c.tag == "field" and not c.get("name") and
            any(g.get("name") == key for g in c)]


def inner_protos(hdr_field):
    """The protocols tshark dissected inside a raw header record, in order."""
    return [p for p in hdr_field.iter("proto")]


def proto_fields(p):
    out = {}
    for f in p.iter("field"):
        if f.get("name"):
            out.setdefault(f.get("name"), []).append(f.get("show", ""))
    return out


EXT_PROTOS = ("ipv6.hopopts", "ipv6.routing", "ipv6.dstopts", "ipv6.fraghdr", "ah")
TSHARK_NO_FLAGS = "tshark-no-flags"


def row_from_header(protos):
    """(src, dst, proto, sport, dport, tcp_flags) from tshark's dissection of a sampled
    header, or None when it holds no IP packet. The first IPv4/IPv6 header (after any
    Ethernet, VLAN and MPLS headers) is the packet's; tshark dissects each IPv6 extension
    header as its own protocol, and L4 is the protocol right after them. tcp_flags is
    TSHARK_NO_FLAGS when tshark shows a TCP header cut short without its flags (tshark
    4.0 decodes the ports of a TCP header shorter than 20 bytes, never its flags)."""
    names = [p.get("name") for p in protos]
    ip_at = next((i for i, n in enumerate(names) if n in ("ip", "ipv6")), None)
    if ip_at is None:
        return None
    ipf = proto_fields(protos[ip_at])
    rest = protos[ip_at + 1:]
    if names[ip_at] == "ip":
        src, dst = ipf["ip.src"][0], ipf["ip.dst"][0]
        proto = int(ipf["ip.proto"][0])
    else:
        src, dst = ipf["ipv6.src"][0], ipf["ipv6.dst"][0]
        proto = int(ipf["ipv6.nxt"][0])
        while rest and rest[0].get("name") in EXT_PROTOS:
            pf = proto_fields(rest[0])
            nxt = [v for k in IPV6_NXT for v in pf.get(k, [])]
            if nxt:
                proto = int(nxt[0])
            rest = rest[1:]
    sport = dport = 0
    flags = ""
    if rest and rest[0].get("name") in ("tcp", "udp") and \
            {6: "tcp", 17: "udp"}.get(proto) == rest[0].get("name"):
        n = rest[0].get("name")
        pf = proto_fields(rest[0])
        if n + ".srcport" in pf and n + ".dstport" in pf:
            sport, dport = int(pf[n + ".srcport"][0]), int(pf[n + ".dstport"][0])
        if n == "tcp":
            if "tcp.flags" in pf:
                flags = str(int(pf["tcp.flags"][0], 16) & 0xFF)
            elif int(rest[0].get("size", "20")) < 20:
                flags = TSHARK_NO_FLAGS
    return src, dst, proto, sport, dport, flags


def parse_datagram(pkt):
    """One PDML packet -> dict with the header, the samples and the contract's rows."""
    frame = sflow = None
    for p in pkt.iter("proto"):
        if p.get("name") == "frame" and frame is None:
            frame = p
        elif p.get("name") == "sflow" and sflow is None:
            sflow = p
    if sflow is None:
        return None
    recv_ms = time_ms(fields(frame)["frame.time_epoch"])
    top = {}
    for c in sflow:
        if c.get("name"):
            top.setdefault(c.get("name"), c.get("show", ""))
    agent = top.get("sflow_245.agent") or top.get("sflow_245.agent.v6")
    d = {"recv_ms": recv_ms, "agent": agent, "sub_agent": int(top["sflow_245.sub_agent_id"]),
         "seq": int(top["sflow_245.sequence_number"]),
         "num_samples": int(top["sflow_245.numsamples"]), "samples": [], "rows": [],
         "not_ip": 0, "flow": 0, "counter": 0, "malformed": pkt.find(".//proto[@name='_ws.malformed']") is not None}
    for sc in containers(sflow, "sflow_245.sampletype"):
        sf = {g.get("name"): g.get("show", "") for g in sc if g.get("name")}
        stype = int(sf["sflow_245.sampletype"])
        ent = int(sf.get("sflow.enterprise", "0"))
        if ent != 0 or stype not in (1, 2, 3, 4):
            continue
        if stype in (2, 4):
            d["counter"] += 1
            continue
        d["flow"] += 1
        rate = int(sf.get("sflow.flow_sample.sampling_rate") or
                   sf.get("sflow_5.sampling_rate") or "0")
        recs = containers(sc, "sflow_245.flow_record_format")
        row = None
        for rc in recs:
            rf = {g.get("name"): g.get("show", "") for g in rc if g.get("name")}
            if int(rf.get("sflow.enterprise", "0")) != 0 or rf["sflow_245.flow_record_format"] != "1":
                continue
            if int(rf["sflow_245.header_protocol"]) not in (1, 11, 12):
                continue
            hfield = next((g for g in rc if g.get("name") == "sflow_245.header"), None)
            got = row_from_header(inner_protos(hfield)) if hfield is not None else None
            if got is not None:
                row = got + (int(rf["sflow_245.header.frame_length"]),)
            break  # the first raw header record of a known protocol decides
        if row is None:
            for rc in recs:
                rf = fields(rc)
                fmt = rf.get("sflow_245.flow_record_format")
                if int(rf.get("sflow.enterprise", "0")) != 0 or fmt not in ("3", "4"):
                    continue
                v = "ipv4" if fmt == "3" else "ipv6"
                # tshark 4.0.17 shows the flag bits of the MOST significant byte of the
                # 32-bit tcp_flags field (0 for 0x00000012); the flags are its low byte.
                # Read the 4 bytes where tshark places the field, from the record's bytes.
                at = next(int(g.get("pos")) for g in rc if g.get("name") ==
                          "sflow_245.ip.tcp_flag.fin") - int(rc.get("pos"))
                raw = bytes.fromhex(rc.get("value"))[at:at + 4]
                bits = int.from_bytes(raw, "big") & 0xFF
                row = (rf["sflow_245.%s_src" % v], rf["sflow_245.%s_dst" % v],
                       int(rf["sflow.ip_protocol"]), int(rf["sflow_245.ip.source_port"]),
                       int(rf["sflow.ip.destination_port"]), str(bits),
                       int(rf["sflow_245.ip.length"]))
                break
        if row is None:
            d["not_ip"] += 1
            continue
        src, dst, proto, sport, dport, flags, nbytes = row
        r = dict.fromkeys(HEADER, "")
        r.update(recv_ms=str(recv_ms), exporter=agent, domain=str(d["sub_agent"]),
                 version="sflow5", src=src, dst=dst, sport=str(sport), dport=str(dport),
                 proto=str(proto), tcp_flags=flags, packets="1", bytes=str(nbytes),
                 start_ms=str(recv_ms), end_ms=str(recv_ms), sampling=str(rate or 1))
        if flags == TSHARK_NO_FLAGS:
            del r["tcp_flags"]  # not compared (see row_from_header)
            d["no_flags"] = d.get("no_flags", 0) + 1
        d["rows"].append(r)
    return d


def tshark_datagrams(tshark, fixture):
    # no reassembly: a first fragment is dissected down to its ports, as the contract reads it
    cmd = [tshark, "-r", fixture, "-n", "-o", "ip.defragment:FALSE", "-o",
           "ipv6.defragment:FALSE", "-d", "udp.port==%d,sflow" % SFLOW_PORT, "-T", "pdml"]
    env = dict(os.environ, TZ="UTC", LC_ALL="C")
    p = subprocess.run(cmd, capture_output=True, env=env, timeout=600)
    if p.returncode != 0:
        raise RuntimeError("%s exited %d: %s" % (" ".join(cmd), p.returncode,
                                                 p.stderr.decode(errors="replace").strip()))
    out = []
    for _, elem in ET.iterparse(io.BytesIO(p.stdout)):
        if elem.tag != "packet":
            continue
        d = parse_datagram(elem)
        if d is not None:
            out.append(d)
        elem.clear()
    return out


# ---- checks -------------------------------------------------------------------------------

def compare_rows(ours, tdgrams, rep, label="ours vs tshark"):
    """Pairs our rows with tshark's datagram by datagram (ours are in datagram order)."""
    theirs = [r for d in tdgrams for r in d["rows"]]
    if len(ours) != len(theirs):
        rep.fail("%s: %d rows, tshark %d" % (label, len(ours), len(theirs)))
        # show where the per-datagram counts diverge (by recv_ms)
        groups = {}
        for r in ours:
            groups[r["recv_ms"]] = groups.get(r["recv_ms"], 0) + 1
        tgroups = {}
        for d in tdgrams:
            tgroups[str(d["recv_ms"])] = tgroups.get(str(d["recv_ms"]), 0) + len(d["rows"])
        shown = 0
        for k in sorted(set(groups) | set(tgroups), key=int):
            if groups.get(k, 0) != tgroups.get(k, 0) and shown < 15:
                print("      datagram(s) at recv_ms %s: ours %d rows, tshark %d"
                      % (k, groups.get(k, 0), tgroups.get(k, 0)))
                shown += 1
        return False
    nf = sum(d.get("no_flags", 0) for d in tdgrams)
    if nf:
        rep.note("%s: tcp_flags not compared on %d rows: tshark shows no flags for a TCP "
                 "header cut short of 20 bytes" % (label, nf))
    pairs = []
    n = 0
    for i, d in enumerate(tdgrams):
        for j, t in enumerate(d["rows"]):
            pairs.append(("datagram %d (seq %d) sample-row %d (csv line %d)"
                          % (i + 1, d["seq"], j + 1, n + 2), ours[n], t))
            n += 1
    if diff_rows(pairs, HEADER, label, rep) == 0:
        rep.ok("%s: all %d rows equal in all %d columns" % (label, len(pairs), len(HEADER)))
        return True
    return False


def sflow_rows(summary, rep):
    rows = summary.get("exporters")
    if not isinstance(rows, list):
        rep.fail("--json summary has no \"exporters\" list: %s" % json.dumps(summary)[:300])
        return []
    mine = [r for r in rows if r.get("version") == "sflow5"]
    if not mine:
        rep.fail("--json summary has no sflow5 exporter row (rows: %s)"
                 % [(r.get("addr"), r.get("version")) for r in rows])
    for r in mine:
        if r.get("port") is not None:
            rep.fail("summary: sflow5 row %s has port %r (contract: null)"
                     % (r.get("addr"), r.get("port")))
    return mine


def total(rows, key, rep):
    vals = [r.get(key) for r in rows]
    if any(v is None for v in vals):
        rep.fail("summary: an sflow5 row has no %r" % key)
        return None
    return sum(vals)


def malformed_of(rows):
    out = {}
    for r in rows:
        for k, v in (r.get("malformed") or {}).items():
            out[k] = out.get(k, 0) + v
    return out


def check_counter(rep, rows, key, want, why=""):
    got = total(rows, key, rep)
    if got is not None:
        rep.check(got == want, "summary: %s = %d (want %d%s)" % (key, got, want, why))


# ---- pmacct -------------------------------------------------------------------------------

def cmd_pmacct(a):
    rep = Report(os.path.basename(a.fixture))
    with open(a.expect) as f:
        expect = json.load(f)
    with tempfile.TemporaryDirectory(prefix="sflow-golden-") as tmp:
        text, summary = run_spamflowd(a.spamflowd, a.fixture, tmp, True)
    ours = parse_csv(text, "spamflowd", rep)
    rep.check(len(ours) == expect["records"], "spamflowd rows: %d (want %d, the flow samples "
              "carrying an IP packet in %s)" % (len(ours), expect["records"],
                                                os.path.basename(a.expect)))
    rep.check(sorted({r["version"] for r in ours}) == ["sflow5"], "versions in the CSV: %s"
              % sorted({r["version"] for r in ours}))

    tdgrams = tshark_datagrams(a.tshark or "tshark", a.fixture)
    rep.check(len(tdgrams) == expect["datagrams"], "tshark datagrams: %d (want %d)"
              % (len(tdgrams), expect["datagrams"]))
    rep.check([d["flow"] for d in tdgrams] == expect["flow_samples_per_datagram"],
              "tshark's flow samples per datagram == the walker's (%d in all)"
              % sum(d["flow"] for d in tdgrams))
    rep.check([d["counter"] for d in tdgrams] == expect["counter_samples_per_datagram"],
              "tshark's counter samples per datagram == the walker's (%d in all)"
              % sum(d["counter"] for d in tdgrams))
    rep.check(not any(d["malformed"] for d in tdgrams), "tshark finds no malformed datagram")
    trows = sum(len(d["rows"]) for d in tdgrams)
    rep.check(trows == expect["records"], "rows from tshark's fields: %d (want %d)"
              % (trows, expect["records"]))
    rep.note("tshark: %d datagrams, %d flow samples, %d counter samples, %d rows, %d not IP"
             % (len(tdgrams), sum(d["flow"] for d in tdgrams),
                sum(d["counter"] for d in tdgrams), trows, sum(d["not_ip"] for d in tdgrams)))
    compare_rows(ours, tdgrams, rep)

    rows = sflow_rows(summary, rep)
    if rows:
        rep.check({(r.get("addr"), r.get("domain")) for r in rows} ==
                  {(expect["agent"], expect["sub_agent"])},
                  "summary: exporter is the agent %s, domain %d (sub-agent)"
                  % (expect["agent"], expect["sub_agent"]))
        check_counter(rep, rows, "records", expect["records"])
        check_counter(rep, rows, "datagrams", expect["datagrams"])
        check_counter(rep, rows, "counter_samples", expect["counter_samples"])
        check_counter(rep, rows, "samples_not_ip", expect["samples_not_ip"])
        check_counter(rep, rows, "sample_drops", expect["drops_max"],
                      ": pmacctd's drops field never increases")
        for key in ("seq_lost", "samples_lost", "seq_resets", "malformed_total"):
            check_counter(rep, rows, key, 0, ": one clean, lossless pmacctd run")
        got = summary.get("totals", {}).get("records")
        rep.check(got == expect["records"], "summary: totals.records = %s (want %d)"
                  % (got, expect["records"]))
    return finish(rep)


# ---- hand-built -----------------------------------------------------------------------------

def cmd_hand(a):
    rep = Report(os.path.basename(a.fixture))
    with open(a.expect_csv, newline="") as f:
        want = f.read()
    with open(a.expect_json) as f:
        expect = json.load(f)
    # 1. the generator's oracle against tshark (no spamflowd involved)
    tdgrams = tshark_datagrams(a.tshark or "tshark", a.fixture)
    wrows = parse_csv(want, os.path.basename(a.expect_csv), rep)
    compare_rows(wrows, tdgrams, rep, "expected CSV vs tshark")
    rep.check(len(tdgrams) == expect["datagrams"], "tshark datagrams: %d (want %d)"
              % (len(tdgrams), expect["datagrams"]))
    if "counter_samples" in expect:
        got = sum(d["counter"] for d in tdgrams)
        rep.check(got == expect["counter_samples"], "tshark counter samples: %d (want %d)"
                  % (got, expect["counter_samples"]))
    if "samples_not_ip" in expect:
        got = sum(d["not_ip"] for d in tdgrams)
        rep.check(got == expect["samples_not_ip"], "tshark: %d flow samples without an IP "
                  "packet (want %d)" % (got, expect["samples_not_ip"]))
    # 2. spamflowd against the oracle
    with tempfile.TemporaryDirectory(prefix="sflow-golden-") as tmp:
        text, summary = run_spamflowd(a.spamflowd, a.fixture, tmp, True)
    if text == want:
        rep.ok("--flows output == %s (%d rows)" % (os.path.basename(a.expect_csv),
                                                   max(0, text.count("\n") - 1)))
    else:
        rep.fail("--flows output differs from %s" % os.path.basename(a.expect_csv))
        sys.stdout.writelines(difflib.unified_diff(
            want.splitlines(True), text.splitlines(True),
            fromfile=a.expect_csv, tofile="spamflowd --flows"))
    rows = sflow_rows(summary, rep)
    if rows:
        exporters = expect.get("exporters")
        if exporters:
            got = sorted("%s/%s" % (r.get("addr"), r.get("domain")) for r in rows)
            rep.check(got == sorted(exporters), "summary: sflow5 exporters %s (want %s)"
                      % (got, sorted(exporters)))
        for key in ("datagrams", "records", "counter_samples", "samples_not_ip", "seq_lost",
                    "samples_lost", "sample_drops", "seq_resets"):
            check_counter(rep, rows, key, expect.get(key, 0))
        mal = malformed_of(rows)
        want_mal = expect.get("malformed", {})
        bad = {k: (mal.get(k, 0), want_mal.get(k, 0)) for k in set(mal) | set(want_mal)
               if mal.get(k, 0) != want_mal.get(k, 0)}
        rep.check(not bad, "summary: malformed by reason %s (want %s)"
                  % ({k: v for k, v in mal.items() if v} or "none", want_mal or "none"))
        got = summary.get("totals", {}).get("records")
        rep.check(got == expect["records"], "summary: totals.records = %s (want %d)"
                  % (got, expect["records"]))
    return finish(rep)


def cmd_registered(a):
    rep = Report("sflow-registered")
    have = sorted(f[:-5] for f in os.listdir(a.dir) if f.endswith(".pcap"))
    missing = [n for n in have if n not in a.names]
    gone = [n for n in a.names if n not in have]
    rep.check(not missing, "every capture in %s has a golden test%s"
              % (a.dir, "" if not missing else " (missing: %s)" % ", ".join(missing)))
    rep.check(not gone, "every registered case has a capture%s"
              % ("" if not gone else " (no pcap: %s)" % ", ".join(gone)))
    return finish(rep)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pmacct")
    p.add_argument("--spamflowd", required=True)
    p.add_argument("--fixture", required=True)
    p.add_argument("--expect", required=True)
    p.add_argument("--tshark")
    h = sub.add_parser("hand")
    h.add_argument("--spamflowd", required=True)
    h.add_argument("--fixture", required=True)
    h.add_argument("--expect-csv", required=True)
    h.add_argument("--expect-json", required=True)
    h.add_argument("--tshark")
    r = sub.add_parser("registered")
    r.add_argument("--dir", required=True)
    r.add_argument("names", nargs="*")
    a = ap.parse_args()
    try:
        return {"pmacct": cmd_pmacct, "hand": cmd_hand, "registered": cmd_registered}[a.cmd](a)
    except (RuntimeError, OSError, ValueError, KeyError, subprocess.TimeoutExpired) as e:
        print("FAIL  %s: %s" % (type(e).__name__, e))
        return 1


if __name__ == "__main__":
    sys.exit(main())
