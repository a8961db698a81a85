#!/usr/bin/env python3
"""Enrichment and evidence files through the whole daemon (doc/enrichment.md).

  enrich_evidence.py SPAMFLOWD MMDB_DIR CAPTURE [CONFIG]

Replays CAPTURE (with CONFIG's keys, e.g. fixtures/scenario.conf) twice, once with the
GeoLite2-style databases and once with the IPinfo-Lite-style file for both, all written by
tests/tools/make_mmdb.pl, and an evidence directory. Then, independently of spamflowd's code:
  - every alert's top destinations carry the country and ASN that mmdblookup gives;
  - n_countries/n_asns equal the distinct countries/ASNs (mmdblookup) of the distinct
    destinations of that host's relevant --flows rows in the alert's long window;
  - there is one evidence file per raised or updated alert, the alert names it, and tshark
    reads it (Wireshark opens RFC 5655 IPFIX files directly) and finds exactly the --flows
    rows of that host that fed the alerting window, up to the alert.
"""
import csv
import datetime
import ipaddress
import json
import os
import re
import subprocess
import sys
import tempfile

SMTP, SUBMIT, LOGIN = {25}, {465, 587}, {110, 143, 993, 995, 465, 587}
INTERNAL = [ipaddress.ip_network(n) for n in
            ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")]
MAX_CC, MAX_AS = 32, 64

_cache = {}


def mmdb_get(db, ip, *path):
    """One value by path with mmdblookup, or None."""
    key = (db, ip, path)
    if key not in _cache:
        r = subprocess.run(["mmdblookup", "--file", db, "--ip", ip, *path],
                           capture_output=True, text=True)
        m = re.search(r'^\s*("?)(.*?)\1 <(\w+)>', r.stdout, re.M) if r.returncode == 0 else None
        _cache[key] = m.group(2) if m else None
    return _cache[key]


def lookup(schema, dbs, ip):
    cdb, adb = dbs
    if schema == "geolite":
        cc = mmdb_get(cdb, ip, "country", "iso_code") or \
            mmdb_get(cdb, ip, "registered_country", "iso_code")
        asn = mmdb_get(adb, ip, "autonomous_system_number")
    else:
        cc = mmdb_get(cdb, ip, "country_code")
        asn = mmdb_get(adb, ip, "asn")
    asn = int(asn[2:] if asn and asn.startswith("AS") else asn) if asn else 0
    return cc or "", asn


def internal(ip, mtas):
    a = ipaddress.ip_address(ip)
    return any(a in n for n in INTERNAL) or ip in mtas


def answered(row):
    flags = row["tcp_flags"]
    if flags == "":
        return row["packets"] in ("", None) or int(row["packets"]) > 0
    f = int(flags)
    if f & 0x04 and not f & 0x08:
        return False
    return bool(f & 0x10)


def relevant(row, host, reason, mtas):
    """(forward attempt?, counted?) of a --flows row for host's window of this reason."""
    if row["proto"] != "6":
        return False, False
    src, dst, sp, dp = row["src"], row["dst"], int(row["sport"]), int(row["dport"])
    fw = row["fw_event"]
    attempt = fw in ("", "created", "denied", "none")
    if reason in ("smtp-fanout", "smtp-blocked", "mta-surge", "smtp-novelty"):
        ports, fwd = SMTP, (src == host and not internal(dst, mtas))
        rev = dst == host and sp in SMTP and not internal(src, mtas) and answered(row)
    elif reason == "submission-fanout":
        ports, fwd = SUBMIT, (src == host and not internal(dst, mtas))
        rev = dst == host and sp in SUBMIT and answered(row)
    elif reason == "lateral-smtp":
        ports, fwd = SMTP, (src == host and internal(dst, set()) and dst not in mtas)
        rev = dst == host and sp in SMTP and internal(src, mtas) and answered(row)
    else:
        return False, False  # auth-bruteforce: its short-connection rule is not redone here
    if fwd and dp in ports:
        return attempt, True
    return False, rev and not (src == host and dp in ports)


def is_forward(row, host):
    return row["src"] == host


def run(spamflowd, capture, config_text, schema, dbs, tmp):
    evdir = os.path.join(tmp, schema + "-evidence")
    conf = os.path.join(tmp, schema + ".conf")
    with open(conf, "w") as f:
        f.write(config_text)
        f.write("\n[enrich]\ncountry_db = %s\nasn_db = %s\n[evidence]\ndir = %s\n" %
                (dbs[0], dbs[1], evdir))
    flows, alerts = os.path.join(tmp, schema + ".csv"), os.path.join(tmp, schema + ".jsonl")
    subprocess.run([spamflowd, "-c", conf, "--replay", capture, "--flows", flows,
                    "--alerts", alerts], check=True, stdout=subprocess.DEVNULL)
    with open(flows) as f:
        rows = list(csv.DictReader(f))
    with open(alerts) as f:
        events = [json.loads(line) for line in f]
    return rows, events, evdir


def tshark_records(path):
    fields = ["cflow.srcaddr", "cflow.dstaddr", "cflow.srcaddrv6", "cflow.dstaddrv6",
              "cflow.srcport", "cflow.dstport", "cflow.protocol", "cflow.packets",
              "cflow.octets", "cflow.tcpflags", "cflow.abstimestart"]
    cmd = ["tshark", "-r", path, "-T", "fields", "-E", "aggregator=;"]
    for x in fields:
        cmd += ["-e", x]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    recs = []
    for line in out.splitlines():
        cols = [c.split(";") if c else [] for c in line.split("\t")]
        if len(cols) < len(fields) or not cols[4]:
            continue  # the template message
        src = cols[0] or cols[2]
        dst = cols[1] or cols[3]
        n = len(cols[4])
        assert len(src) == n and len(dst) == n, "mixed address families in one message"
        # Wireshark shows RFC 5103 reverse counters under the same field: every other one
        pk, oc = cols[7][0::2], cols[8][0::2]
        for i in range(n):
            t = datetime.datetime.strptime(cols[10][i].replace(" UTC", "")[:-3],
                                           "%b %d, %Y %H:%M:%S.%f")
            ms = round(t.replace(tzinfo=datetime.timezone.utc).timestamp() * 1000)
            recs.append((str(ipaddress.ip_address(src[i])), str(ipaddress.ip_address(dst[i])),
                         int(cols[4][i]), int(cols[5][i]), int(cols[6][i]), int(pk[i]),
                         int(oc[i]), int(cols[9][i], 0), ms))
    return recs


def row_key(r):
    return (str(ipaddress.ip_address(r["src"])), str(ipaddress.ip_address(r["dst"])),
            int(r["sport"]), int(r["dport"]), int(r["proto"]), int(r["packets"] or 0),
            int(r["bytes"] or 0), int(r["tcp_flags"] or 0), int(r["start_ms"] or 0))


def check(rows, events, evdir, schema, dbs, mtas, slice_ms):
    problems = []
    checked = {"tops": 0, "counts": 0, "files": 0, "flows": 0}
    files = sorted(os.listdir(evdir)) if os.path.isdir(evdir) else []
    named = []
    for ev in events:
        host, reason, t = ev["host"], ev["reason"], ev["time_ms"]
        tag = "%s %s %s at %d" % (ev["event"], reason, host, t)
        for top in ev["top"]:
            cc, asn = lookup(schema, dbs, top["addr"])
            if (top["country"] or "") != cc or (top["asn"] or 0) != asn:
                problems.append("%s: top %s is %s/%s, mmdblookup says %s/%s" %
                                (tag, top["addr"], top["country"], top["asn"], cc, asn))
            checked["tops"] += 1
        if ev["event"] == "cleared":
            if ev["evidence"]:
                problems.append("%s: a cleared event names evidence" % tag)
            continue
        if reason == "auth-bruteforce":
            # its short-connection rule is not redone here: the file only has to exist,
            # be named by the alert and read
            if ev["evidence"] and os.path.isfile(ev["evidence"]):
                named.append(os.path.basename(ev["evidence"]))
                checked["files"] += 1
                checked["flows"] += len(tshark_records(ev["evidence"]))
            else:
                problems.append("%s: no evidence file (%r)" % (tag, ev["evidence"]))
            continue
        span = ev["windows"][1]["span_s"] * 1000
        now = t // slice_ms
        in_window = [r for r in rows if int(r["recv_ms"]) <= t and
                     int(r["recv_ms"]) // slice_ms + span // slice_ms > now]
        # The records of the alert's own datagram carry its time too: the window ends with
        # the record that crossed, so cut where the forward records reach the long
        # window's flow count (spamflowd counts answers apart from flows).
        classed = [(r,) + relevant(r, host, reason, mtas) for r in in_window]
        fwd_before = sum(1 for r, a, c in classed
                         if c and int(r["recv_ms"]) < t and is_forward(r, host))
        dests, fed, fwd = set(), [], fwd_before
        seen_fwd = False  # an answer before any forward record: the analyzer has no window
        for r, attempt, counted in classed:
            if counted and not is_forward(r, host) and not seen_fwd:
                continue
            seen_fwd |= counted and is_forward(r, host)
            if int(r["recv_ms"]) == t and counted:
                if is_forward(r, host):
                    if fwd >= ev["windows"][1]["flows"]:
                        break
                    fwd += 1
            if attempt:
                dests.add(r["dst"])
            if counted:
                fed.append(r)
            if int(r["recv_ms"]) == t and fwd >= ev["windows"][1]["flows"]:
                break  # the crossing record: the event fired here
        geo = [lookup(schema, dbs, d) for d in dests]
        n_cc = min(len({c for c, _ in geo if c}), MAX_CC)
        n_as = min(len({a for _, a in geo if a}), MAX_AS)
        if (ev["countries"], ev["asns"]) != (n_cc, n_as):
            problems.append("%s: countries/asns %d/%d, independent count %d/%d over %d dests"
                            % (tag, ev["countries"], ev["asns"], n_cc, n_as, len(dests)))
        checked["counts"] += 1
        path = ev["evidence"]
        if not path or not os.path.isfile(path):
            problems.append("%s: no evidence file (%r)" % (tag, path))
            continue
        named.append(os.path.basename(path))
        got = sorted(tshark_records(path))
        want = sorted(row_key(r) for r in fed)
        if got != want:
            extra = sorted(set(got) - set(want))[:3]
            missing = sorted(set(want) - set(got))[:3]
            problems.append("%s: evidence has %d flows, --flows %d (extra %s, missing %s)" %
                            (tag, len(got), len(want), extra, missing))
        checked["files"] += 1
        checked["flows"] += len(got)
    if sorted(named) != files:
        problems.append("evidence files %s, alerts name %s" % (files, sorted(named)))
    return problems, checked


def main():
    spamflowd, mmdb_dir, capture = sys.argv[1:4]
    config_text = open(sys.argv[4]).read() if len(sys.argv) > 4 else ""
    mtas = set()
    m = re.search(r"^\s*mail_servers\s*=\s*(.*)$", config_text, re.M)
    if m:
        mtas = {x.strip() for x in m.group(1).split(",") if x.strip()}
    slice_ms = 60000
    m = re.search(r"^\s*slice\s*=\s*(\d+)", config_text, re.M)
    if m:
        slice_ms = int(m.group(1)) * 1000
    schemas = {
        "geolite": (os.path.join(mmdb_dir, "geolite-country.mmdb"),
                    os.path.join(mmdb_dir, "geolite-asn.mmdb")),
        "ipinfo": (os.path.join(mmdb_dir, "ipinfo-lite.mmdb"),) * 2,
    }
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        for schema, dbs in schemas.items():
            rows, events, evdir = run(spamflowd, capture, config_text, schema, dbs, tmp)
            raised = sum(1 for e in events if e["event"] == "raised")
            if raised == 0:
                print("%s: no alert raised: nothing to check" % schema)
                failed = True
                continue
            problems, n = check(rows, events, evdir, schema, dbs, mtas, slice_ms)
            for p in problems:
                print("%s: %s" % (schema, p))
            failed |= bool(problems)
            print("%s: %d events (%d raised): %d top destinations, %d country/ASN counts, "
                  "%d evidence files with %d flows checked" %
                  (schema, len(events), raised, n["tops"], n["counts"], n["files"], n["flows"]))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
