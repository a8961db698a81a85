#!/usr/bin/python3
"""Detection from a firewall's export: the scenario of each seed (scripts/gen_scenario.py,
as eval_detection.py makes it) exported as Cisco ASA NSEL by scripts/nsel_export.py in three
settings (every event; `flow-export delay flow-create 60`, under which the scenario's short
sessions send their teardown alone; teardowns only), each replayed with `spamflowd -c
scenario.conf --replay` and scored as eval_detection.py scores softflowd's exports: (host,
reason) pairs against the truth, and the time to alert per class.

usage: eval_firewall.py --spamflowd PATH [--seeds 1-5] [-j 2]
"""
import argparse
import concurrent.futures
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import eval_detection as ev  # noqa: E402
import nsel_export  # noqa: E402

MODES = ["all", "delay=60", "teardown"]


def one(seed, spamflowd, conf):
    tmp = tempfile.mkdtemp(prefix="fw-eval-%d." % seed)
    try:
        pcap = os.path.join(tmp, "scenario.pcap")
        truth_path = os.path.join(tmp, "truth.json")
        r = subprocess.run([ev.PY, os.path.join(HERE, "gen_scenario.py"), "--seed", str(seed),
                            "--lenient", "--out", pcap, "--truth", truth_path],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError("seed %d: gen_scenario.py: %s" % (seed, r.stderr[-400:]))
        res = {"seed": seed, "truth": json.load(open(truth_path)), "rates": {}}
        for mode in MODES:
            exp = os.path.join(tmp, "nsel-%s.pcap" % mode)
            n, _ = nsel_export.export(pcap, exp, mode)
            # a file per mode: spamflowd appends to an alert file
            events = ev.replay(spamflowd, conf, exp, os.path.join(tmp, "alerts-%s.jsonl" % mode))
            raised = {}
            for e in events:
                if e.get("event") == "raised":
                    raised.setdefault((ev.norm(e.get("host")), e.get("reason")), e.get("time_ms"))
            res["rates"][mode] = {"datagrams": n, "raised": raised}
        return res
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--spamflowd", required=True)
    ap.add_argument("--seeds", default="1-5")
    ap.add_argument("-j", type=int, default=2)
    ap.add_argument("--conf", default=os.path.join(HERE, "..", "fixtures", "scenario.conf"))
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    seeds = ev.parse_seeds(a.seeds)
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(a.j, 2)) as ex:
        results = list(ex.map(lambda s: one(s, a.spamflowd, a.conf), seeds))
    ev.RATES = {m: None for m in MODES}  # score() reads the rates' names from here
    s = ev.score(results)
    if a.json:
        json.dump(s, sys.stdout, indent=1)
        print()
        return
    print("Seeds %s, the scenario as ASA NSEL (scripts/nsel_export.py), (host, reason) pairs:"
          % a.seeds)
    print()
    print("| export | TP | FP (benign host) | FN | precision | recall |")
    print("|---|---|---|---|---|---|")
    for m in MODES:
        x = s[m]
        print("| %s | %d | %d (%d) | %d | %s | %s |" % (m, x["tp"], x["fp"], x["fp_benign"],
                                                       x["fn"], ev.f3(x["precision"]),
                                                       ev.f3(x["recall"])))
    print()
    print("| class | reason |" + "".join(" %s |" % m for m in MODES))
    print("|---|---|" + "---|" * len(MODES))
    for n in s[MODES[0]]["classes"]:
        name, reason = n.split(" ", 1)
        print("| %s | %s |" % (name, reason) + "".join(
            " %d/%d, %s / %s |" % (s[m]["classes"][n]["raised"], s[m]["classes"][n]["expected"],
                                  ev.fs(s[m]["classes"][n]["delay_median_s"]),
                                  ev.fs(s[m]["classes"][n]["delay_max_s"])) for m in MODES))
    for m in MODES:
        for title, items in (("False positives", s[m]["false_positives"]),
                             ("Missed", s[m]["missed"])):
            if items:
                print("\n%s, %s: %s" % (title, m, "; ".join(items)))


if __name__ == "__main__":
    main()
