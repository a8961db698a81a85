#!/usr/bin/python3
"""Scenario test: replay softflowd's export of fixtures/scenario.pcap through spamflowd and
compare its alert events with fixtures/scenario.truth.json (scripts/gen_scenario.py).

For one export version (v5, v9 or ipfix):
  - every bot the version can see gets exactly one `raised` event per expected reason, at a
    time within [not_before_ms, not_after_ms] of the truth (true crossing - 1 slice ..
    crossing flow's last packet + softflowd's expiry delay + 1 slice);
  - no other (host, reason) is raised: zero false positives on benign hosts, and no extra
    reason on a bot (the blocked bot is smtp-blocked, never smtp-fanout);
  - each raised event explains itself: a window whose value reaches its threshold, top
    destinations, exporters (and for smtp-blocked/fanout a failed share on the right side
    of 0.8; for auth-bruteforce the targeted server among the top destinations);
  - the capture keeps the premise of the tolerance: every flow of a bot reaches the
    collector within the expiry delay of its last packet (from `--flows`).
With --all it runs the three versions and also checks that they raise the same set of
(host, reason), the IPv6 bot aside for v5.

usage: check_alerts.py --spamflowd EXE --fixtures DIR (--version v5|v9|ipfix | --all)
                       [--keep DIR]
"""

import argparse
import csv
import datetime
import ipaddress
import io
import json
import os
import subprocess
import sys
import tempfile


def norm(addr):
    """Canonical text of an address (IPv4-mapped IPv6 as IPv4)."""
    if addr is None:
        return None
    a = ipaddress.ip_address(addr)
    if a.version == 6 and a.ipv4_mapped is not None:
        a = a.ipv4_mapped
    return str(a)


def hms(ms):
    if ms is None:
        return "-"
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).strftime(
        "%H:%M:%S")


def dsec(a, b):
    return "-" if a is None or b is None else "%+.0fs" % ((a - b) / 1000)


def run(cmd):
    return subprocess.run(cmd, capture_output=True, text=True)


def replay_alerts(spamflowd, conf, capture, out):
    r = run([spamflowd, "-c", conf, "--replay", capture, "--alerts", out])
    if r.returncode != 0:
        msg = (r.stderr or r.stdout).strip()
        if "--alerts" in msg and ("nknown option" in msg or "nrecognized" in msg):
            msg += "\n(spamflowd has no --alerts yet: this test can only pass once it does)"
        raise RuntimeError("spamflowd --alerts failed (exit %d): %s" % (r.returncode, msg))
    events = []
    with open(out) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                events.append(json.loads(line))
            except ValueError as e:
                raise RuntimeError("%s:%d: not JSON: %s" % (out, n, e))
    return events


def replay_flows(spamflowd, conf, capture):
    r = run([spamflowd, "-c", conf, "--replay", capture, "--flows", "-"])
    if r.returncode != 0:
        raise RuntimeError("spamflowd --flows failed (exit %d): %s" % (r.returncode,
                                                                       r.stderr.strip()))
    return list(csv.DictReader(io.StringIO(r.stdout)))


def explain_problems(ev, exp):
    """Why a raised event does not explain itself ([] when it does)."""
    bad = []
    wins = ev.get("windows") or []
    if not any(isinstance(w.get("value"), (int, float)) and w.get("threshold") and
               w["value"] >= w["threshold"] for w in wins):
        bad.append("no window with value >= threshold: %s" %
                   [(w.get("span_s"), w.get("value"), w.get("threshold")) for w in wins])
    top = ev.get("top") or []
    if not top:
        bad.append("no top destinations")
    if not ev.get("exporters"):
        bad.append("no exporters")
    share, attempts = ev.get("failed_share"), ev.get("attempts")
    if exp["reason"] == "smtp-blocked" and not (share is not None and share >= 0.8):
        bad.append("smtp-blocked with failed_share %s" % share)
    if exp["reason"] == "smtp-fanout" and share is not None and attempts is not None and \
            share >= 0.8 and attempts >= 30:
        bad.append("smtp-fanout with failed_share %s over %s attempts (that is blocked)"
                   % (share, attempts))
    if exp["reason"] == "auth-bruteforce":
        target = exp["crossing_flow"]["dst"]
        named = {norm(t.get("addr")) for t in top} | {norm(ev.get("peer"))}
        if target not in named:
            bad.append("targeted server %s neither peer nor in top" % target)
    return bad


def check_version(args, truth, version):
    """Returns (ok, raised set, lines)."""
    fx = args.fixtures
    conf = os.path.join(fx, truth["config"])
    capture = os.path.join(fx, "scenario-%s.pcap" % version)
    out = os.path.join(args.keep, "alerts-%s.jsonl" % version)
    problems, lines = [], []

    expected, role_of = {}, {}
    for h in truth["hosts"]:
        for ad in h["addresses"]:
            role_of[norm(ad)] = h
        if version not in h["versions"]:
            continue
        for e in h["expected"]:
            expected[(norm(e["host"]), e["reason"])] = (h, e)

    # the premise of the tolerance: bot flows reach the collector promptly
    tol = truth["tolerance"]
    flows = replay_flows(args.spamflowd, conf, capture)
    bots = {norm(ad) for h in truth["hosts"] if h["role"] == "bot" and version in h["versions"]
            for ad in h["addresses"]}
    worst, seen = {}, {}
    for r in flows:
        src = norm(r["src"])
        if src not in bots or not r["end_ms"] or not r["recv_ms"]:
            continue
        d = int(r["recv_ms"]) - int(r["end_ms"])
        worst[src] = max(worst.get(src, d), d)
        seen[(src, int(r["sport"]), norm(r["dst"]), int(r["dport"]))] = int(r["recv_ms"])
    for b in sorted(bots):
        if b not in worst:
            problems.append("%s: no flow of bot %s in the capture" % (version, b))
        elif worst[b] > tol["expiry_delay_ms"] + 1000:  # v9/IPFIX headers: whole seconds
            problems.append("%s: a flow of %s reached the collector %.0f s after its last "
                            "packet (> expiry delay %d s): regenerate the capture"
                            % (version, b, worst[b] / 1000, tol["expiry_delay_ms"] // 1000))

    events = replay_alerts(args.spamflowd, conf, capture, out)
    raised = {}
    kinds = {}
    for ev in events:
        kinds[ev.get("event")] = kinds.get(ev.get("event"), 0) + 1
        if ev.get("event") == "raised":
            raised.setdefault((norm(ev.get("host")), ev.get("reason")), []).append(ev)

    fmt = "%-15s %-15s %-17s %8s %8s %8s %8s %7s %7s  %s"
    lines.append("== %s: %s (%d events: %s)" % (version, os.path.basename(capture), len(events),
                                                 ", ".join("%s %d" % kv for kv in
                                                           sorted(kinds.items()))))
    lines.append(fmt % ("host", "address", "reason", "crossing", "seen", "got", "latest",
                        "got-tru", "got-see", "result"))
    for key in sorted(expected, key=lambda k: expected[k][1]["true_crossing_ms"]):
        h, e = expected[key]
        evs = raised.get(key, [])
        cf = e["crossing_flow"]
        seen_ms = seen.get((key[0], cf["sport"], norm(cf["dst"]), cf["dport"]))
        got = evs[0].get("time_ms") if evs else None
        res = []
        if not evs:
            res.append("MISSING")
        else:
            if len(evs) > 1:
                res.append("raised %d times" % len(evs))
            if not isinstance(got, int) or not e["not_before_ms"] <= got <= e["not_after_ms"]:
                res.append("time outside [%s, %s]" % (hms(e["not_before_ms"]),
                                                      hms(e["not_after_ms"])))
            res += explain_problems(evs[0], e)
        lines.append(fmt % (h["name"], key[0], key[1], hms(e["true_crossing_ms"]), hms(seen_ms),
                            hms(got), hms(e["not_after_ms"]), dsec(got, e["true_crossing_ms"]),
                            dsec(got, seen_ms), "ok" if not res else "; ".join(res)))
        problems += ["%s: %s %s: %s" % (version, h["name"], key[1], r) for r in res]
    for key in sorted(set(raised) - set(expected), key=lambda k: (str(k[0]), k[1])):
        h = role_of.get(key[0])
        who = "%s (%s)" % (h["name"], h["role"]) if h else "host not in the cast"
        kind = "FALSE POSITIVE" if not h or h["role"] == "benign" else "UNEXPECTED REASON"
        ev = raised[key][0]
        lines.append(fmt % (h["name"] if h else "?", key[0], key[1], "-", "-",
                            hms(ev.get("time_ms")), "-", "-", "-", "%s: %s" % (kind, who)))
        problems.append("%s: %s: %s raised for %s" % (version, kind, key[1], who))
    return problems, set(raised), lines


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--spamflowd", required=True)
    ap.add_argument("--fixtures", required=True)
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--version", choices=["v5", "v9", "ipfix"])
    g.add_argument("--all", action="store_true")
    ap.add_argument("--keep", help="write the alert files here (default: a temporary dir)")
    args = ap.parse_args()
    if args.keep:
        os.makedirs(args.keep, exist_ok=True)
        return check(args)
    with tempfile.TemporaryDirectory(prefix="scenario-alerts.") as tmp:
        args.keep = tmp
        return check(args)


def check(args):
    truth = json.load(open(os.path.join(args.fixtures, "scenario.truth.json")))
    versions = truth["versions"] if args.all else [args.version]
    problems, sets = [], {}
    for v in versions:
        try:
            p, s, lines = check_version(args, truth, v)
        except RuntimeError as e:
            print("%s: %s" % (v, e))
            problems.append("%s: %s" % (v, str(e).splitlines()[0]))
            continue
        print("\n".join(lines))
        print()
        problems += p
        sets[v] = s
    if args.all and len(sets) == len(versions):
        v6 = {(ad, e["reason"]) for h in truth["hosts"] for ad in h["addresses"]
              for e in h["expected"] if "v5" not in h["versions"]}
        v6 = {(norm(a), r) for a, r in v6}
        ref = sets["v9"]
        for v in versions:
            s = sets[v] | (v6 if v == "v5" else set())
            if s != ref:
                problems.append("%s raises a different set than v9: only %s: %s, only v9: %s"
                                % (v, v, sorted(s - ref), sorted(ref - s)))
    if problems:
        print("FAIL (%d):" % len(problems))
        for p in problems:
            print("  " + p)
        return 1
    print("PASS: %s" % ", ".join(versions))
    return 0


if __name__ == "__main__":
    sys.exit(main())
