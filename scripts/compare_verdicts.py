#!/usr/bin/python3
"""spamflow's verdicts against what an admin does today with nfdump, on the same exports.

For each seed, scripts/eval_detection.py makes the scenario, has softflowd export it as IPFIX
unsampled, 1:10 and 1:100, and replays each export through spamflowd. Here the same export
datagrams are also sent over loopback to a real nfcapd, and its file is asked with nfdump
the way a cron job asks it every 10 minutes (and every hour), with the same thresholds as
spamflow's smtp-fanout and the same listed mail servers left out:

  nfdump -r FILE -t BUCKET -s srcip/flows 'proto tcp and dst port 25 and (src net <internal>)
                                          and not src ip in [<mail servers>]'
      "flows": a source with 50 or more port-25 flows in a 10-minute bucket, or 150 in an hour
  nfdump -r FILE -t BUCKET -A srcip,dstip '<the same filter>'
      "distinct": a source with 50 or more distinct port-25 destinations in a 10-minute
      bucket, or 150 in an hour (what smtp-fanout counts, over fixed buckets)

With --pmacct the same export also goes to pmacct's nfacctd, whose print plugins keep
port-25 (source, destination) pairs per 10-minute and 1-hour bin of the flows' own times
(`print_history`), the job's filter as their `aggregate_filter`; "pmacct" flags a source
with 50 / 150 distinct destinations in a bin, as "distinct" does from nfdump (and, sampled,
"pmacct, thresholds / rate"): two collectors counting the same rule.

A host is flagged at the end of the first bucket that flags it (when the cron job would
run; nfcapd's own file rotation, 5 minutes by default, would add to that). Scored per host
against the scenario's truth: a bad host (a bot, the unlisted mail server) flagged is found;
a benign one flagged is a false positive. Delay: flagged (spamflow: its first raised alert)
minus the host's earliest true crossing. The port-25 column counts only the bad hosts that
send on port 25 (what the nfdump rules look at); spamflow's other reasons (submission,
lateral, login brute force) find the rest.

usage: compare_verdicts.py --spamflowd PATH [--seeds 1-5] [-j 2] [--pmacct] [--json]
"""
import argparse
import calendar
import concurrent.futures
import glob
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tests", "system"))
import eval_detection as ev  # noqa: E402
import count_records  # noqa: E402 (the export's data records, to check nfcapd kept them all)
from netutil import free_udp_port  # noqa: E402
from nfdump_compare import udp_payloads, udp_queue, wait_for  # noqa: E402

SHORT_S, LONG_S = 600, 3600
FLAG_SHORT, FLAG_LONG = 50, 150  # smtp-fanout's defaults


def nfcapd_file(pcap, tmp):
    """The export's datagrams through a real nfcapd; returns its file."""
    out = tempfile.mkdtemp(prefix="nfcapd.", dir=tmp)
    port = free_udp_port()
    log = open(os.path.join(out, "log"), "w")
    # a receive buffer that holds a whole export (its datagrams are sent at once); none may
    # be lost: nfcapd's count is checked against the datagrams' records
    p = subprocess.Popen(["nfcapd", "-w", out, "-p", str(port), "-b", "127.0.0.1", "-t", "3600",
                          "-B", "33554432"], stdout=log, stderr=subprocess.STDOUT)
    dgrams = udp_payloads(pcap)
    try:
        wait_for(lambda: udp_queue(port) is not None, "nfcapd to bind")
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for k, d in enumerate(dgrams):
            s.sendto(d, ("127.0.0.1", port))
            if k % 500 == 499:
                wait_for(lambda: udp_queue(port) == 0, "nfcapd to read its queue")
        wait_for(lambda: udp_queue(port) == 0, "nfcapd to read its queue")
        time.sleep(0.3)
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=30)
    files = glob.glob(os.path.join(out, "nfcapd.2*"))
    if len(files) != 1:
        raise RuntimeError(f"nfcapd wrote {files}")
    want = count_records.count(pcap).data_records
    got = next((int(x.split()[1]) for x in nfdump(["-r", files[0], "-I"]).splitlines()
                if x.startswith("Flows:")), -1)
    if got != want:
        raise RuntimeError(f"nfcapd stored {got} flows of the export's {want}")
    return files[0]


def udp_drops(port):
    """The kernel's drop count of the UDP socket bound to 127.0.0.1:port."""
    for line in open("/proc/net/udp").read().splitlines()[1:]:
        f = line.split()
        if f[1] == f"0100007F:{port:04X}":
            return int(f[-1])
    return 0


def bpf_filter(truth):
    """The job's filter in pcap-filter syntax (pmacct's aggregate_filter)."""
    nets = " or ".join("src net %s" % n for n in truth["analyzer_defaults"]["internal_networks"])
    mtas = " or ".join("src host %s" % a for a in truth["mail_servers"])
    return f"tcp and dst port 25 and ({nets})" + (f" and not ({mtas})" if mtas else "")


def pmacct_flags(pcap, truth, rate, tmp):
    """{rule: {host: flagged_ms}} from a real nfacctd's print plugins: per bin of the flows'
    own times (10 minutes and 1 hour), the distinct destinations of each source."""
    out_dir = tempfile.mkdtemp(prefix="nfacctd.", dir=tmp)
    port = free_udp_port()
    conf = os.path.join(out_dir, "nfacctd.conf")
    spans = {"short": (SHORT_S, FLAG_SHORT, "10m", "m"), "long": (LONG_S, FLAG_LONG, "1h", "h")}
    with open(conf, "w") as f:
        f.write(f"daemonize: false\nnfacctd_ip: 127.0.0.1\nnfacctd_port: {port}\n"
                "nfacctd_time_new: false\nplugins: print[short], print[long]\n"
                # a receive buffer as nfcapd's (-B): the default lost 40 % of the datagrams
                # when 500 came at once (the kernel's drop count is checked below)
                "nfacctd_pipe_size: 33554432\n")
        for name, (_s, _n, hist, roundoff) in spans.items():
            f.write(f"aggregate[{name}]: src_host, dst_host\n"
                    f"aggregate_filter[{name}]: {bpf_filter(truth)}\n"
                    f"print_output[{name}]: csv\n"
                    f"print_output_file[{name}]: {out_dir}/{name}-%Y%m%d-%H%M.csv\n"
                    f"print_output_file_append[{name}]: true\n"
                    f"print_history[{name}]: {hist}\nprint_history_roundoff[{name}]: {roundoff}\n"
                    f"print_refresh_time[{name}]: 60\n")
    log = open(os.path.join(out_dir, "log"), "w")
    env = dict(os.environ, TZ="UTC")  # the file names' times
    p = subprocess.Popen(["nfacctd", "-f", conf], stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        wait_for(lambda: udp_queue(port) is not None, "nfacctd to bind")
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for k, d in enumerate(udp_payloads(pcap)):
            s.sendto(d, ("127.0.0.1", port))
            if k % 500 == 499:
                wait_for(lambda: udp_queue(port) == 0, "nfacctd to read its queue")
        wait_for(lambda: udp_queue(port) == 0, "nfacctd to read its queue")
        time.sleep(0.5)  # the core hands its last records to the plugins
        if udp_drops(port):
            raise RuntimeError(f"nfacctd's socket dropped {udp_drops(port)} datagrams")
    finally:
        p.send_signal(signal.SIGINT)  # the plugins write their caches and exit
        p.wait(timeout=30)
    out = {"pmacct": {}, "pmacct-scaled": {}}
    for name, (span, need, _h, _r) in spans.items():
        for path in glob.glob(os.path.join(out_dir, name + "-*.csv")):
            stamp = os.path.basename(path)[len(name) + 1:-4]
            start = calendar.timegm(time.strptime(stamp, "%Y%m%d-%H%M")) * 1000
            dests = {}
            for line in open(path):
                c = line.strip().split(",")
                if len(c) >= 2 and c[0] != "SRC_IP":
                    dests.setdefault(ev.norm(c[0]), set()).add(c[1])
            end = start + span * 1000
            for src, d in dests.items():
                hits = [("pmacct", len(d) >= need)]
                if rate > 1:
                    hits.append(("pmacct-scaled", len(d) >= max(1, round(need / rate))))
                for rule, hit in hits:
                    if hit:
                        out[rule][src] = min(out[rule].get(src, end), end)
    if not glob.glob(os.path.join(out_dir, "short-*.csv")):
        raise RuntimeError(f"nfacctd wrote no file (see {out_dir}/log)")
    return out


def nfdump(args):
    r = subprocess.run(["nfdump", "-q"] + args, capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise RuntimeError("nfdump %s: %s" % (" ".join(args), r.stderr.strip()))
    return r.stdout


def flt(truth):
    nets = " or ".join("src net %s" % n for n in truth["analyzer_defaults"]["internal_networks"])
    mtas = " ".join(truth["mail_servers"])
    return f"proto tcp and dst port 25 and ({nets}) and not src ip in [ {mtas} ]"


def nfdump_flags(nffile, truth, rate):
    """{rule: {host: flagged_ms}} over fixed buckets. nfdump reads the file once with the
    job's filter and prints each flow's first-seen time, source and destination; the buckets
    are counted here as `nfdump -t BUCKET -s srcip/flows` (flows) and `-A srcip,dstip`
    (distinct destinations) count them, which select a flow by its first-seen time (checked
    against those calls bucket by bucket before this replaced them: the same flags, 108
    nfdump runs fewer). Sampled, a third rule: distinct destinations against the thresholds
    divided by the rate (what an admin who knows the rate might do)."""
    os.environ["TZ"] = "UTC"
    flows = []
    for line in nfdump(["-r", nffile, "-o", "fmt:%ts,%sa,%da", flt(truth)]).splitlines():
        c = [x.strip() for x in line.split(",")]
        if len(c) == 3 and c[0][:1].isdigit():
            date, frac = c[0].split(".")
            t = calendar.timegm(time.strptime(date, "%Y-%m-%d %H:%M:%S")) * 1000 + int(frac)
            flows.append((t, ev.norm(c[1]), c[2]))
    t0 = truth["first_packet_ms"] // (SHORT_S * 1000) * SHORT_S * 1000
    out = {"flows": {}, "distinct": {}, "scaled": {}}
    for span, need in ((SHORT_S, FLAG_SHORT), (LONG_S, FLAG_LONG)):
        scaled = max(1, round(need / rate))
        width = span * 1000
        base = t0 // width * width
        count, dests = {}, {}
        for t, src, dst in flows:
            b = (t - base) // width
            count[(b, src)] = count.get((b, src), 0) + 1
            dests.setdefault((b, src), set()).add(dst)
        for (b, src), n in count.items():
            e = base + (b + 1) * width
            hits = [("flows", n >= need), ("distinct", len(dests[(b, src)]) >= need)]
            if rate > 1:
                hits.append(("scaled", len(dests[(b, src)]) >= scaled))
            for rule, hit in hits:
                if hit:
                    out[rule][src] = min(out[rule].get(src, e), e)
    return out


def one(seed, spamflowd, conf, keep, pmacct=False):
    res = ev.one_seed(seed, spamflowd, conf, keep)
    d = glob.glob(os.path.join(keep, "eval-%d.*" % seed))[0]
    flags = {}
    for rate in ev.RATES:
        nffile = nfcapd_file(os.path.join(d, "ipfix-s%d.pcap" % rate), d)
        flags[rate] = nfdump_flags(nffile, res["truth"], rate)
        if pmacct:
            flags[rate].update(pmacct_flags(os.path.join(d, "ipfix-s%d.pcap" % rate),
                                            res["truth"], rate, d))
        spam = {}
        for (host, _reason), t in res["rates"][rate]["raised"].items():
            spam[host] = min(spam.get(host, t), t)
        flags[rate]["spamflow"] = spam
    return {"seed": seed, "truth": res["truth"], "flags": flags}


def score(results):
    out = {}
    for rate in ev.RATES:
        rows = {}
        rules = ("spamflow", "distinct", "flows") + (("scaled",) if rate > 1 else ())
        if "pmacct" in results[0]["flags"][rate]:
            rules += ("pmacct",) + (("pmacct-scaled",) if rate > 1 else ())
        for rule in rules:
            found = found25 = bad = bad25 = fp = 0
            delays, fps, missed = [], [], []
            for r in results:
                truth = r["truth"]
                flagged = r["flags"][rate][rule]
                for h in truth["hosts"]:
                    addrs = [ev.norm(a) for a in h["addresses"]]
                    t = [flagged[a] for a in addrs if a in flagged]
                    port25 = any(e["reason"] in ("smtp-fanout", "smtp-blocked", "smtp-novelty")
                                 for e in h["expected"])
                    if h["role"] == "benign":
                        if t:
                            fp += 1
                            fps.append(f"seed {r['seed']}: {h['name']}")
                        continue
                    bad += 1
                    bad25 += port25
                    if t:
                        found += 1
                        found25 += port25
                        cross = min(e["true_crossing_ms"] for e in h["expected"])
                        delays.append((min(t) - cross) / 1000)
                    else:
                        missed.append(f"seed {r['seed']}: {h['name']}")
            rows[rule] = {"found": found, "bad": bad, "found25": found25, "bad25": bad25,
                          "fp": fp, "false_positives": fps, "missed": missed,
                          "delay_median_s": statistics.median(delays) if delays else None}
        out[rate] = rows
    return out


def markdown(s, seeds):
    names = {"spamflow": "spamflow (its six heuristics + smtp-novelty)",
             "distinct": "nfdump -A srcip,dstip: >= 50 distinct / 10 min or 150 / h",
             "flows": "nfdump -s srcip/flows: >= 50 flows / 10 min or 150 / h",
             "scaled": "nfdump -A srcip,dstip, thresholds / rate",
             "pmacct": "nfacctd print src_host,dst_host: >= 50 distinct / 10 min or 150 / h",
             "pmacct-scaled": "nfacctd print src_host,dst_host, thresholds / rate"}
    lines = [f"Seeds {seeds}, the scenario exported by softflowd (IPFIX); per host over all "
             "seeds (below, in brackets: in how many seeds):", "",
             "| sampling | verdicts | bad hosts found | port-25 bad hosts found | benign hosts "
             "flagged | median delay |", "|---|---|---|---|---|---|"]
    for rate, rows in s.items():
        for rule, x in rows.items():
            d = "-" if x["delay_median_s"] is None else "%+.0f s" % x["delay_median_s"]
            lines.append(f"| {'unsampled' if rate == 1 else '1:%d' % rate} | {names[rule]} | "
                         f"{x['found']}/{x['bad']} | {x['found25']}/{x['bad25']} | {x['fp']} | "
                         f"{d} |")
    lines.append("")
    for rate, rows in s.items():
        for rule, x in rows.items():
            for what, key in (("benign flagged", "false_positives"), ("missed", "missed")):
                if x[key]:
                    n = {}
                    for item in x[key]:
                        name = item.split(": ", 1)[1]
                        n[name] = n.get(name, 0) + 1
                    lines.append(f"- {rule}, {'unsampled' if rate == 1 else '1:%d' % rate}, "
                                 f"{what}: " + ", ".join("%s (%d)" % kv for kv in sorted(n.items())))
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--spamflowd", required=True)
    ap.add_argument("--seeds", default="1-5")
    ap.add_argument("-j", type=int, default=2)
    ap.add_argument("--conf", default=os.path.join(HERE, "..", "fixtures", "scenario.conf"))
    ap.add_argument("--pmacct", action="store_true",
                    help="also pmacct's nfacctd, counting the same rule from its print plugin")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    for tool in ("nfcapd", "nfdump", "softflowd") + (("nfacctd",) if args.pmacct else ()):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is missing (scripts/setup.sh bench-deps installs nfdump, "
                     "scripts/setup.sh test softflowd)")
    seeds = ev.parse_seeds(args.seeds)
    keep = tempfile.mkdtemp(prefix="verdicts.")
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=min(args.j, 2)) as ex:
            results = list(ex.map(lambda s: one(s, args.spamflowd, args.conf, keep, args.pmacct),
                                  seeds))
    finally:
        shutil.rmtree(keep, ignore_errors=True)
    s = score(results)
    if args.json:
        json.dump({str(k): v for k, v in s.items()}, sys.stdout, indent=1)
        print()
    else:
        print(markdown(s, args.seeds))


if __name__ == "__main__":
    main()
