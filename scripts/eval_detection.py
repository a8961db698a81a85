#!/usr/bin/python3
"""Detection quality over generator seeds (issue 14, "Done when"): precision, recall and
time-to-alert of a spamflowd for the scenario exported unsampled, 1:10 and 1:100.

For each seed (default 1..5): scripts/gen_scenario.py --seed N --lenient writes the scenario
and its truth in a temporary directory; softflowd exports it as IPFIX unsampled, with -s 10
and with -s 100 (the flags of fixtures/make.sh's scenario captures, -m per rate as there);
the export datagrams are received on a loopback UDP socket (no root, no dumpcap) and written
as a pcap normalized like the fixtures (count_records.py normalize: each datagram at its
export header time); each pcap is replayed with `spamflowd -c scenario.conf --replay PCAP
--alerts FILE` (the replay of tests/scenario/check_alerts.py).

Scoring, per sampling rate, over (host, reason) pairs: TP = raised and in the truth, FP =
raised and not in the truth (a benign host raised, or another reason on a bot or the
unlisted MTA, e.g. smtp-blocked for a bot whose truth is smtp-fanout; the benign ones are
also counted on their own), FN = in the truth and not raised. Per bot class (cast name) the time-to-alert: the raised event's time
minus the true crossing (truth's true_crossing_ms), median and max over the seeds. The 1:100
row also gives the recall over the "aggressive" hosts only (the issue's 1:100 target).

Output: a markdown table (stdout), or --json. Seeds run in parallel (-j, at most 2: the
machine's cores are shared).

usage: eval_detection.py --spamflowd PATH [--seeds 1-5 | --seeds 1,3] [-j 2] [--json]
                         [--keep DIR] [--conf fixtures/scenario.conf] [--smtp dialog]
"""

import argparse
import concurrent.futures
import datetime
import ipaddress
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import count_records  # noqa: E402  (normalize: the fixtures' pcap rule)

PY = "/usr/bin/python3"  # the Debian python (gen_scenario imports gen_traffic: scapy)

# rate -> (softflowd args, -m): the scenario captures' flags (fixtures/make.sh); -m is
# smaller when sampled so that a flow still leaves softflowd's table ~20-30 s after its last
# sampled packet (reading a file softflowd only expires when the table is full)
TIMEOUTS = ["-t", "tcp=60", "-t", "tcp.rst=60", "-t", "tcp.fin=60", "-t", "udp=60",
            "-t", "icmp=60", "-t", "general=60"]
RATES = {1: ([], 32), 10: (["-s", "10"], 12), 100: (["-s", "100"], 2)}


def norm(addr):
    if addr is None:
        return None
    a = ipaddress.ip_address(addr)
    if a.version == 6 and a.ipv4_mapped is not None:
        a = a.ipv4_mapped
    return str(a)


def softflowd_export(pcap, out, rate, tmp):
    """Runs softflowd over pcap at rate, receives its IPFIX export on a loopback socket and
    writes it to out, normalized. Returns the datagram count."""
    extra, maxflows = RATES[rate]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 24)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    got, stop = [], threading.Event()

    def receive():
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                got.append(sock.recv(65535))
            except socket.timeout:
                continue

    th = threading.Thread(target=receive, daemon=True)
    th.start()
    cmd = ["softflowd", "-r", pcap, "-n", "127.0.0.1:%d" % port, "-d", "-a", "-m",
           str(maxflows), "-p", os.path.join(tmp, "sf-%d.pid" % rate), "-c", "none",
           "-v", "10"] + extra + TIMEOUTS
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        stop.set()
        raise RuntimeError("softflowd failed: %s" % (r.stderr or r.stdout).strip())
    m = re.search(r"Flows exported: .* in (\d+) packets", r.stdout + r.stderr)
    if not m:
        stop.set()
        raise RuntimeError("no statistics from softflowd: %s" % r.stdout[-300:])
    want = int(m.group(1))
    deadline = time.time() + 10
    while len(got) < want and time.time() < deadline:
        time.sleep(0.05)
    stop.set()
    th.join()
    sock.close()
    if len(got) != want:
        raise RuntimeError("received %d datagrams, softflowd sent %d" % (len(got), want))
    raw = os.path.join(tmp, "raw-%d.pcap" % rate)
    frames = []
    for payload in got:
        udp = (b"\x9c\x40" + port.to_bytes(2, "big") + (8 + len(payload)).to_bytes(2, "big") +
               b"\0\0" + payload)
        ip = (b"\x45\0" + (20 + len(udp)).to_bytes(2, "big") + b"\0\0\x40\0\x40\x11\0\0" +
              bytes([127, 0, 0, 1]) * 2)
        frames.append((0, bytes(12) + b"\x08\x00" + ip + udp))
    count_records.write_pcap(raw, frames)
    return count_records.normalize(raw, out, 4739 + rate, 100, port)


def replay(spamflowd, conf, pcap, out):
    r = subprocess.run([spamflowd, "-c", conf, "--replay", pcap, "--alerts", out],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("spamflowd --replay %s: exit %d: %s" % (pcap, r.returncode,
                                                                  r.stderr.strip()[-400:]))
    events = []
    with open(out) as f:
        for line in f:
            if line.strip():
                events.append(json.loads(line))
    return events


def one_seed(seed, spamflowd, conf, keep, smtp="compact"):
    """Generates, exports and replays one seed; returns its raw results."""
    tmp = tempfile.mkdtemp(prefix="eval-%d." % seed, dir=keep)
    pcap = os.path.join(tmp, "scenario.pcap")
    truth_path = os.path.join(tmp, "scenario.truth.json")
    r = subprocess.run([PY, os.path.join(HERE, "gen_scenario.py"), "--seed", str(seed),
                        "--lenient", "--smtp", smtp, "--out", pcap, "--truth", truth_path],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("seed %d: gen_scenario.py failed: %s" % (seed, r.stderr[-400:]))
    truth = json.load(open(truth_path))
    res = {"seed": seed, "truth": truth, "rates": {}}
    for rate in RATES:
        exp = os.path.join(tmp, "ipfix-s%d.pcap" % rate)
        n = softflowd_export(pcap, exp, rate, tmp)
        events = replay(spamflowd, conf, exp, os.path.join(tmp, "alerts-s%d.jsonl" % rate))
        raised = {}
        for ev in events:
            if ev.get("event") == "raised":
                raised.setdefault((norm(ev.get("host")), ev.get("reason")), ev.get("time_ms"))
        res["rates"][rate] = {"datagrams": n, "raised": raised}
    if keep is None:
        for f in os.listdir(tmp):
            os.unlink(os.path.join(tmp, f))
        os.rmdir(tmp)
    return res


def score(results):
    """Per rate: TP/FP/FN over (host, reason), and per bot class the time-to-alert."""
    out = {}
    for rate in RATES:
        tp = fp = fn = fp_benign = 0
        agg_tp = agg_fn = 0
        classes = {}
        fps, fns = [], []
        for res in results:
            truth = res["truth"]
            raised = res["rates"][rate]["raised"]
            owner, expected = {}, {}
            for h in truth["hosts"]:
                for ad in h["addresses"]:
                    owner[norm(ad)] = h
                for e in h["expected"]:
                    expected[(norm(e["host"]), e["reason"])] = (h, e)
            for key, (h, e) in expected.items():
                c = classes.setdefault((h["name"], e["reason"]), {
                    "role": h["role"], "aggressive": h.get("aggressive", False),
                    "expected": 0, "raised": 0, "delays_s": []})
                c["expected"] += 1
                if key in raised:
                    tp += 1
                    c["raised"] += 1
                    c["delays_s"].append((raised[key] - e["true_crossing_ms"]) / 1000)
                    if h.get("aggressive"):
                        agg_tp += 1
                else:
                    fn += 1
                    fns.append("seed %d: %s %s" % (res["seed"], h["name"], e["reason"]))
                    if h.get("aggressive"):
                        agg_fn += 1
            for key in set(raised) - set(expected):
                fp += 1
                h = owner.get(key[0])
                if h is None or h["role"] == "benign":
                    fp_benign += 1
                fps.append("seed %d: %s (%s) %s" % (res["seed"], h["name"] if h else key[0],
                                                   h["role"] if h else "not in the cast",
                                                   key[1]))
        for c in classes.values():
            d = c.pop("delays_s")
            c["delay_median_s"] = statistics.median(d) if d else None
            c["delay_max_s"] = max(d) if d else None
        out[rate] = {
            "tp": tp, "fp": fp, "fp_benign": fp_benign, "fn": fn,
            "precision": tp / (tp + fp) if tp + fp else None,
            "recall": tp / (tp + fn) if tp + fn else None,
            "aggressive_recall": agg_tp / (agg_tp + agg_fn) if agg_tp + agg_fn else None,
            "false_positives": sorted(fps), "missed": sorted(fns),
            "classes": {"%s %s" % k: v for k, v in sorted(classes.items())},
        }
    return out


def f3(x):
    return "-" if x is None else "%.3f" % x


def fs(x):
    return "-" if x is None else "%+.0f s" % x


def markdown(scores, seeds, spamflowd, smtp="compact"):
    lines = ["Detection over seeds %s (SMTP sessions %s, softflowd IPFIX, `%s`), (host, reason) "
             "pairs:" % (",".join(map(str, seeds)), smtp, spamflowd), "",
        "| sampling | TP | FP (benign host) | FN | precision | recall | recall (aggressive) |",
        "|---|---|---|---|---|---|---|"]
    for rate, s in scores.items():
        lines.append("| %s | %d | %d (%d) | %d | %s | %s | %s |" % (
            "unsampled" if rate == 1 else "1:%d" % rate, s["tp"], s["fp"], s["fp_benign"],
            s["fn"],
            f3(s["precision"]), f3(s["recall"]), f3(s["aggressive_recall"])))
    lines += ["", "Time to alert (raised - true crossing), per class: raised/expected, "
              "median / max over the seeds:", ""]
    names = list(next(iter(scores.values()))["classes"])
    hdr = "| class | reason |" + "".join(" %s |" % ("unsampled" if r == 1 else "1:%d" % r)
                                         for r in scores)
    lines += [hdr, "|---|---|" + "---|" * len(scores)]
    for n in names:
        name, reason = n.split(" ", 1)
        row = "| %s%s | %s |" % (name, " (aggressive)" if scores[1]["classes"][n]["aggressive"]
                                 else "", reason)
        for rate in scores:
            c = scores[rate]["classes"][n]
            row += " %d/%d, %s / %s |" % (c["raised"], c["expected"], fs(c["delay_median_s"]),
                                          fs(c["delay_max_s"]))
        lines.append(row)
    for rate, s in scores.items():
        label = "unsampled" if rate == 1 else "1:%d" % rate
        for title, items in (("False positives", s["false_positives"]),
                             ("Missed", s["missed"])):
            if not items:
                continue
            by = {}
            for x in items:  # "seed N: what" -> what: seeds
                seed, what = x.split(": ", 1)
                by.setdefault(what, []).append(seed.split()[1])
            lines += ["", "%s at %s: %s." % (title, label, "; ".join(
                "%s (seed %s)" % (w, ",".join(v)) for w, v in sorted(by.items())))]
    return "\n".join(lines)


def parse_seeds(text):
    seeds = []
    for part in text.split(","):
        if "-" in part:
            a, b = part.split("-")
            seeds += range(int(a), int(b) + 1)
        else:
            seeds.append(int(part))
    return seeds


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--spamflowd", required=True)
    ap.add_argument("--seeds", default="1-5")
    ap.add_argument("-j", type=int, default=2, help="seeds in parallel (at most 2)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--keep", help="keep each seed's files in a directory under this one")
    ap.add_argument("--conf", default=os.path.join(HERE, "..", "fixtures", "scenario.conf"))
    ap.add_argument("--smtp", choices=("compact", "dialog"), default="compact",
                    help="the generator's SMTP sessions (gen_scenario.py --smtp): compact, 4 "
                    "client packets (the fixtures'), or dialog, 9 (no PIPELINING)")
    args = ap.parse_args()
    seeds = parse_seeds(args.seeds)
    jobs = max(1, min(args.j, 2))
    if args.keep:
        os.makedirs(args.keep, exist_ok=True)
    started = time.time()
    with concurrent.futures.ThreadPoolExecutor(jobs) as ex:
        results = list(ex.map(lambda s: one_seed(s, args.spamflowd, args.conf, args.keep,
                                               args.smtp),
                              seeds))
    scores = score(results)
    if args.json:
        json.dump({"seeds": seeds, "smtp": args.smtp, "spamflowd": args.spamflowd,
                   "generated": datetime.datetime.now(datetime.timezone.utc).isoformat(),
                   "seconds": round(time.time() - started, 1),
                   "rates": {str(k): v for k, v in scores.items()}}, sys.stdout, indent=1)
        print()
    else:
        print(markdown(scores, seeds, args.spamflowd, args.smtp))
        print("\n(%d seeds in %.0f s)" % (len(seeds), time.time() - started))
    return 0


if __name__ == "__main__":
    sys.exit(main())
