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

sFlow (pmacctd sfprobe's exports of scenario.pcap, fixtures/README.md "The pmacctd sFlow
captures"; one row per sampled packet):
  --version sflow          sampling 1: every check above, as for v9 (all hosts visible), and
                           the (host, reason) set raised must equal the v9 export's.
  --version sflow-sampled  1 in N (N from the capture's expect file): every event must say
                           "sampling": N and "lower_bound": true. Which bots are raised at
                           that rate is printed, not asserted (how thresholds adapt to
                           sampling is a later issue).

usage: check_alerts.py --spamflowd EXE --fixtures DIR
                       (--version v5|v9|ipfix|sflow|sflow-sampled | --all) [--keep DIR]
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


# sFlow captures: every host is visible, as in v9 (IPv6 included)
SFLOW = {"sflow": "scenario-sflow.pcap", "sflow-sampled": "scenario-sflow-sampled.pcap"}


def check_version(args, truth, version):
    """Returns (ok, raised set, lines)."""
    fx = args.fixtures
    conf = os.path.join(fx, truth["config"])
    capture = os.path.join(fx, SFLOW.get(version, "scenario-%s.pcap" % version))
    out = os.path.join(args.keep, "alerts-%s.jsonl" % version)
    problems, lines = [], []
    visible = "v9" if version in SFLOW else version

    expected, role_of = {}, {}
    for h in truth["hosts"]:
        for ad in h["addresses"]:
            role_of[norm(ad)] = h
        if visible not in h["versions"]:
            continue
        for e in h["expected"]:
            expected[(norm(e["host"]), e["reason"])] = (h, e)

    # the premise of the tolerance: bot flows reach the collector promptly
    tol = truth["tolerance"]
    flows = replay_flows(args.spamflowd, conf, capture)
    bots = {norm(ad) for h in truth["hosts"] if h["role"] == "bot" and visible in h["versions"]
            for ad in h["addresses"]}
    worst, seen = {}, {}
    for r in flows:
        src = norm(r["src"])
        if src not in bots or not r["end_ms"] or not r["recv_ms"]:
            continue
        d = int(r["recv_ms"]) - int(r["end_ms"])
        worst[src] = max(worst.get(src, d), d)
        # the first record of the flow (sFlow has one per sampled packet)
        seen.setdefault((src, int(r["sport"]), norm(r["dst"]), int(r["dport"])),
                        int(r["recv_ms"]))
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


def raised_set(args, truth, capture, name):
    conf = os.path.join(args.fixtures, truth["config"])
    events = replay_alerts(args.spamflowd, conf, capture,
                           os.path.join(args.keep, "alerts-%s.jsonl" % name))
    return {(norm(e.get("host")), e.get("reason")) for e in events if e.get("event") == "raised"}


def check_sflow(args, truth):
    """Sampling 1: the v9 checks, and the same (host, reason) set as the v9 export."""
    problems, got, lines = check_version(args, truth, "sflow")
    print("\n".join(lines))
    print()
    ref = raised_set(args, truth, os.path.join(args.fixtures, "scenario-v9.pcap"), "v9")
    if got != ref:
        problems.append("sflow raises a different (host, reason) set than v9: only sflow: %s, "
                        "only v9: %s" % (sorted(got - ref), sorted(ref - got)))
    else:
        print("sflow raises the same %d (host, reason) as v9" % len(ref))
    return problems


def check_sflow_sampled(args, truth):
    """1 in N: every event carries sampling N and lower_bound true; the rest is reported."""
    fx = args.fixtures
    capture = os.path.join(fx, SFLOW["sflow-sampled"])
    with open(capture[:-5] + ".expect.json") as f:
        rates = json.load(f)["sampling_rates"]
    if len(rates) != 1:
        return ["%s: sampling rates %s, want one" % (capture, rates)]
    rate = rates[0]
    conf = os.path.join(fx, truth["config"])
    events = replay_alerts(args.spamflowd, conf, capture,
                           os.path.join(args.keep, "alerts-sflow-sampled.jsonl"))
    problems = []
    kinds = {}
    for ev in events:
        kinds[ev.get("event")] = kinds.get(ev.get("event"), 0) + 1
    bad = [ev for ev in events if ev.get("sampling") != rate or ev.get("lower_bound") is not True]
    for ev in bad[:10]:
        problems.append("sflow-sampled: %s %s %s says sampling %r, lower_bound %r (want %d, true)"
                        % (ev.get("event"), ev.get("host"), ev.get("reason"), ev.get("sampling"),
                           ev.get("lower_bound"), rate))
    if len(bad) > 10:
        problems.append("sflow-sampled: ... %d more such events" % (len(bad) - 10))
    if not bad:
        print("sflow-sampled: all %d events say \"sampling\": %d, \"lower_bound\": true"
              % (len(events), rate))
    raised = {}
    for ev in events:
        if ev.get("event") == "raised":
            raised.setdefault((norm(ev.get("host")), ev.get("reason")), []).append(ev)
    expected, role_of = {}, {}
    for h in truth["hosts"]:
        for ad in h["addresses"]:
            role_of[norm(ad)] = h
        if "v9" in h["versions"]:
            for e in h["expected"]:
                expected[(norm(e["host"]), e["reason"])] = (h, e)
    fmt = "%-15s %-15s %-17s %8s %8s %8s  %s"
    print("== sflow-sampled: %s, 1 in %d (%d events: %s)"
          % (os.path.basename(capture), rate, len(events),
             ", ".join("%s %d" % kv for kv in sorted(kinds.items()))))
    print(fmt % ("host", "address", "reason", "crossing", "got", "got-tru", "at 1 in %d" % rate))
    hit = 0
    for key in sorted(expected, key=lambda k: expected[k][1]["true_crossing_ms"]):
        h, e = expected[key]
        evs = raised.get(key, [])
        got = evs[0].get("time_ms") if evs else None
        if evs:
            hit += 1
            w = max(evs[0].get("windows") or [{}], key=lambda x: x.get("value") or 0)
            res = "raised (value %s of %s, %s window)" % (w.get("value"), w.get("threshold"),
                                                          evs[0].get("trigger"))
        else:
            res = "not raised"
        print(fmt % (h["name"], key[0], key[1], hms(e["true_crossing_ms"]), hms(got),
                     dsec(got, e["true_crossing_ms"]), res))
    for key in sorted(set(raised) - set(expected), key=lambda k: (str(k[0]), k[1])):
        h = role_of.get(key[0])
        who = "%s (%s)" % (h["name"], h["role"]) if h else "host not in the cast"
        print(fmt % (h["name"] if h else "?", key[0], key[1], "-", hms(raised[key][0].get(
            "time_ms")), "-", "raised, not expected at 1 in 1: %s" % who))
    print("sflow-sampled: %d of %d expected (host, reason) raised at 1 in %d; %d others"
          % (hit, len(expected), rate, len(set(raised) - set(expected))))
    return problems


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--spamflowd", required=True)
    ap.add_argument("--fixtures", required=True)
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--version", choices=["v5", "v9", "ipfix"] + sorted(SFLOW))
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
    if args.version in SFLOW:
        try:
            problems = (check_sflow if args.version == "sflow" else check_sflow_sampled)(
                args, truth)
        except RuntimeError as e:
            problems = ["%s: %s" % (args.version, e)]
        if problems:
            print("FAIL (%d):" % len(problems))
            for p in problems:
                print("  " + p)
            return 1
        print("PASS: %s" % args.version)
        return 0
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
