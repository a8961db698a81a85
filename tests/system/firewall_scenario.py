#!/usr/bin/python3
"""scripts/eval_firewall.py on seed 1 (README, "Firewall session events"): the scenario as
a Cisco ASA exports it in NSEL (scripts/nsel_export.py) with every event, with `flow-export
delay flow-create 60` and with teardowns only, replayed: each export raises every expected
(host, reason) pair of the truth and nothing else.

usage: firewall_scenario.py SPAMFLOWD SCRIPTS_DIR
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
    p = subprocess.run(["/usr/bin/python3", f"{scripts}/eval_firewall.py", "--spamflowd",
                        spamflowd, "--seeds", "1", "-j", "1", "--json"],
                       capture_output=True, text=True, timeout=240)
    if p.returncode != 0:
        sys.exit(f"eval_firewall.py: exit {p.returncode}: {p.stderr[-2000:]}")
    s = json.loads(p.stdout)
    for mode in ("all", "delay=60", "teardown"):
        x = s[mode]
        check(x["tp"] == 12 and x["fn"] == 0 and x["fp"] == 0,
              f"{mode}: {x['tp']} of 12 expected pairs raised, {x['fp']} false positives "
              f"(missed {x['missed']}, false {x['false_positives']})")
    b = s["delay=60"]["classes"]["blocked-bot smtp-blocked"]
    check(b["raised"] == 1 and 0 <= b["delay_median_s"] <= 40,
          f"delay=60: the blocked bot raised for smtp-blocked from its failed teardowns, "
          f"{b['delay_median_s']} s after its true crossing (30 s embryonic timeout)")
    print(f"{len(failures)} checks failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
