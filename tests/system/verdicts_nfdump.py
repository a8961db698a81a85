#!/usr/bin/python3
"""scripts/compare_verdicts.py on seed 1 (README, "Against the nfdump cron job"): the script
runs end to end (softflowd, spamflowd --replay, a real nfcapd, nfdump), and what the README
says of it holds on this seed: unsampled and at 1:10 spamflow finds all 11 bad hosts and
flags no benign one; nfdump's fixed buckets miss the slow bot and the straddle bot
unsampled, and counting flows flags the retry storm; at 1:10 dividing nfdump's thresholds
by the rate flags the repeat-contact probe. With --pmacct, a real nfacctd counts the same
distinct-destination rule from its print plugins: it must flag exactly the hosts nfdump's
rule flags, at the same bucket ends, at every rate (two collectors, one rule).

usage: verdicts_nfdump.py SPAMFLOWD SCRIPTS_DIR
"""
import json
import subprocess
import sys

failures = []


def check(cond, what):
    print(("ok    " if cond else "FAIL  ") + what, flush=True)
    if not cond:
        failures.append(what)


def main():
    spamflowd, scripts = sys.argv[1], sys.argv[2]
    p = subprocess.run(["/usr/bin/python3", f"{scripts}/compare_verdicts.py", "--spamflowd",
                        spamflowd, "--seeds", "1", "-j", "1", "--pmacct", "--json"],
                       capture_output=True, text=True, timeout=240)
    if p.returncode != 0:
        sys.exit(f"compare_verdicts.py: exit {p.returncode}: {p.stderr[-2000:]}")
    s = json.loads(p.stdout)
    for rate in ("1", "10"):
        x = s[rate]["spamflow"]
        check(x["found"] == 11 and x["bad"] == 11 and x["fp"] == 0,
              f"1:{rate}: spamflow finds {x['found']} of {x['bad']} bad hosts, {x['fp']} benign")
    d, f = s["1"]["distinct"], s["1"]["flows"]
    check(any("slow-bot" in m for m in d["missed"]) and
          any("straddle-bot" in m for m in d["missed"]) and d["fp"] == 0,
          f"unsampled: nfdump's distinct buckets miss the slow and straddle bots ({d['missed']})")
    check(f["false_positives"] == ["seed 1: retry-storm"],
          f"unsampled: counting flows flags the retry storm ({f['false_positives']})")
    sc = s["10"]["scaled"]
    check("seed 1: repeat-probe" in sc["false_positives"],
          f"1:10: thresholds / rate flag the repeat-contact probe ({sc['false_positives']})")
    for rate in ("1", "10", "100"):
        pairs = [("distinct", "pmacct")] + ([("scaled", "pmacct-scaled")] if rate != "1" else [])
        for nf, pm in pairs:
            a, b = s[rate][nf], s[rate][pm]
            same = all(a[k] == b[k] for k in ("found", "fp", "false_positives", "missed",
                                               "delay_median_s"))
            check(same, f"1:{rate}: nfacctd's {pm} flags what nfdump's {nf} flags "
                        f"({b['found']} found, {b['fp']} benign; nfdump {a['found']}, {a['fp']})")
    print(f"{len(failures)} checks failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
