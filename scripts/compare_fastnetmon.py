#!/usr/bin/python3
"""spamflow's verdicts against FastNetMon's (community edition, the Debian package), on the
same exports.

FastNetMon bans a host of the listed networks when its packets, bits or flows a second, in
or out, pass a threshold. Its flows a second are the finest of the three for a spam bot,
whose sessions are small, and 1 (`threshold_flows = 1`, a whole number) is the lowest it
takes. So here FastNetMon runs as sensitive as it can be: flows only, 1 a second, every
listed address watched both ways, the listed mail servers whitelisted (as spamflow's
`mail_servers`), its networks the scenario's (10.0.0.0/16, 192.168.0.0/16, fd00::/8: it
keeps a counter per address: 10.0.0.0/8, 172.16.0.0/12 and 192.168.0.0/16 would take
12.7 GB, it said).

FastNetMon measures rates on its own clock, so the export is sent as the exporter sent it:
each datagram at its capture time, `--speed` times faster (the scenario is 2.5 hours long).
At speed F the threshold is F flows a second over a 1-second average, which is 1 flow a
second over F seconds of the export's time (FastNetMon's default average is 5 s; its
least is 1 s of its own clock, so the default F = 5 is exact; a higher F runs sooner and
averages over F seconds of the export). A host is flagged at its first ban (the notify script's "ban" call), mapped back to
the export's clock. Outgoing bans are the spam verdicts; an incoming ban of an internal
host (traffic to it passed 1 flow a second) is counted apart, and is a false positive
either way if the host is benign, since a ban blackholes it. Scored per host as
compare_verdicts.py scores nfdump's: the bots and the unlisted mail server are bad hosts
(the brute-forcer is external: FastNetMon watches only the listed networks), the rest
benign.

`--by pps` bans on packets a second instead (threshold_pps = 1, its least, the same way).

usage: compare_fastnetmon.py --spamflowd PATH [--seeds 1-5] [-j 5] [--speed 5]
                             [--by flows|pps] [--json]
"""
import argparse
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
from netutil import free_udp_port  # noqa: E402
from nfdump_compare import udp_queue, wait_for  # noqa: E402

NETWORKS = ["10.0.0.0/16", "192.168.0.0/16", "fd00::/8"]
NOTIFY = """#!/bin/sh
# FastNetMon calls this with IP, direction, pps, action (ban, unban, attack_details)
printf '%s %s %s %s\\n' "$(date +%s.%N)" "$1" "$2" "$4" >> "{log}"
cat > /dev/null
"""


def read_export(pcap):
    """[(capture time in us, payload)] of the export's datagrams."""
    import count_records
    out = []
    for ts, lt, frame in count_records.read_pcap(pcap):
        u = count_records.udp_of(lt, frame)
        if u is not None:
            out.append((ts, u[4]))
    return out


def fastnetmon_bans(pcap, truth, speed, by, tmp):
    """Runs FastNetMon on the export sent at its own pace x speed, banning by flows or
    packets a second (`by`); returns {(host, direction): first ban in export ms} and the
    datagrams sent."""
    d = tempfile.mkdtemp(prefix="fastnetmon.", dir=tmp)
    log = os.path.join(d, "notify.log")
    script = os.path.join(d, "notify.sh")
    with open(script, "w") as f:
        f.write(NOTIFY.replace("{log}", log))
    os.chmod(script, 0o755)
    with open(os.path.join(d, "networks"), "w") as f:
        f.write("\n".join(NETWORKS) + "\n")
    with open(os.path.join(d, "whitelist"), "w") as f:
        f.write("".join(f"{a}/32\n" for a in truth["mail_servers"]))
    port = free_udp_port()
    conf = os.path.join(d, "fastnetmon.conf")
    with open(conf, "w") as f:
        f.write(f"""logging_level = info
disable_usage_report = on
enable_ban = on
enable_ban_ipv6 = on
process_incoming_traffic = on
process_outgoing_traffic = on
ban_time = 1900
unban_only_if_attack_finished = on
networks_list_path = {d}/networks
white_list_path = {d}/whitelist
check_period = 1
enable_connection_tracking = on
ban_for_pps = {"on" if by == "pps" else "off"}
ban_for_bandwidth = off
ban_for_flows = {"on" if by == "flows" else "off"}
threshold_flows = {speed}
threshold_pps = {speed}
netflow = on
netflow_port = {port}
netflow_host = 127.0.0.1
netflow_sampling_ratio = 1
average_calculation_time = {max(1, round(5 / speed))}
speed_calculation_delay = 1
notify_script_path = {script}
enable_api = off
prometheus = off
monitor_local_ip_addresses = off
collect_attack_pcap_dumps = off
""")
    # FastNetMon writes attack details under /var/log/fastnetmon_attacks and refuses to
    # ban without it (the package makes it for the service)
    os.makedirs("/var/log/fastnetmon_attacks", exist_ok=True)
    out = open(os.path.join(d, "stdout"), "w")
    p = subprocess.Popen(["fastnetmon", "--configuration_file", conf, "--log_file",
                          os.path.join(d, "log"), "--disable_pid_logic"],
                         stdout=out, stderr=subprocess.STDOUT)
    dgrams = read_export(pcap)
    try:
        wait_for(lambda: udp_queue(port) is not None, "fastnetmon to bind", timeout=60)
        time.sleep(1)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        t0 = dgrams[0][0]
        w0 = time.time()
        for ts, payload in dgrams:
            delay = w0 + (ts - t0) / 1e6 / speed - time.time()
            if delay > 0:
                time.sleep(delay)
            s.sendto(payload, ("127.0.0.1", port))
        time.sleep(5)  # its averages and checks, a few seconds of its clock
        if p.poll() is not None:
            raise RuntimeError("fastnetmon exited (see %s)" % os.path.join(d, "log"))
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    bans = {}
    if os.path.exists(log):
        for line in open(log):
            w = line.split()
            if len(w) == 4 and w[3] == "ban":
                t = t0 // 1000 + int((float(w[0]) - w0) * 1000 * speed)
                key = (ev.norm(w[1]), w[2])
                bans[key] = min(bans.get(key, t), t)
    return bans, len(dgrams)


def one(seed, spamflowd, conf, keep, speed, by):
    res = ev.one_seed(seed, spamflowd, conf, keep)
    d = glob.glob(os.path.join(keep, "eval-%d.*" % seed))[0]
    bans, n = fastnetmon_bans(os.path.join(d, "ipfix-s1.pcap"), res["truth"], speed, by, d)
    spam = {}
    for (host, _reason), t in res["rates"][1]["raised"].items():
        spam[host] = min(spam.get(host, t), t)
    flags = {"spamflow": spam,
             "out": {h: t for (h, dirn), t in bans.items() if dirn == "outgoing"},
             "any": {}}
    for (h, _dirn), t in bans.items():
        flags["any"][h] = min(flags["any"].get(h, t), t)
    return {"seed": seed, "truth": res["truth"], "flags": flags, "datagrams": n}


def score(results):
    rows = {}
    for rule in ("spamflow", "out", "any"):
        found = bad = fp = 0
        delays, fps, missed, by_class = [], [], [], {}
        for r in results:
            flagged = r["flags"][rule]
            for h in r["truth"]["hosts"]:
                t = [flagged[a] for a in map(ev.norm, h["addresses"]) if a in flagged]
                if h["role"] == "benign":
                    if t:
                        fp += 1
                        fps.append(f"seed {r['seed']}: {h['name']}")
                    continue
                bad += 1
                if t:
                    found += 1
                    delays.append((min(t) - min(e["true_crossing_ms"]
                                                for e in h["expected"])) / 1000)
                    by_class.setdefault(h["name"], []).append(delays[-1])
                else:
                    missed.append(f"seed {r['seed']}: {h['name']}")
        rows[rule] = {"found": found, "bad": bad, "fp": fp, "false_positives": fps,
                      "missed": missed,
                      "delay_median_s": statistics.median(delays) if delays else None,
                      "found_delay_median_s": {k: statistics.median(v)
                                               for k, v in sorted(by_class.items())}}
    return rows


def markdown(rows, seeds, speed, by):
    unit = "flow/s" if by == "flows" else "packet/s"
    names = {"spamflow": "spamflow (default configuration)",
             "out": f"FastNetMon, outgoing bans (1 {unit})",
             "any": f"FastNetMon, any ban (1 {unit} in or out)"}
    lines = [f"Seeds {seeds}, the scenario exported by softflowd (IPFIX, unsampled), sent to "
             f"FastNetMon at {speed} x its pace; per host over all seeds:", "",
             "| verdicts | bad hosts found | benign hosts flagged | median delay |",
             "|---|---|---|---|"]
    for rule, x in rows.items():
        dl = "-" if x["delay_median_s"] is None else "%+.0f s" % x["delay_median_s"]
        lines.append(f"| {names[rule]} | {x['found']}/{x['bad']} | {x['fp']} | {dl} |")
    lines.append("")
    for rule, x in rows.items():
        if rule != "spamflow":
            lines.append(f"- {rule}, found (median delay): " +
                         ", ".join("%s %+.0f s" % kv for kv in x["found_delay_median_s"].items()))
        for what, key in (("benign flagged", "false_positives"), ("missed", "missed")):
            if x[key]:
                n = {}
                for item in x[key]:
                    name = item.split(": ", 1)[1]
                    n[name] = n.get(name, 0) + 1
                lines.append(f"- {rule}, {what}: " +
                             ", ".join("%s (%d)" % kv for kv in sorted(n.items())))
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--spamflowd", required=True)
    ap.add_argument("--seeds", default="1-5")
    ap.add_argument("-j", type=int, default=5, help="seeds at once (FastNetMon mostly waits)")
    ap.add_argument("--speed", type=int, default=5,
                    help="the export sent this many times faster than it was made (>= 1)")
    ap.add_argument("--by", choices=("flows", "pps"), default="flows",
                    help="ban on flows a second (the default) or packets a second, 1 a second")
    ap.add_argument("--conf", default=os.path.join(HERE, "..", "fixtures", "scenario.conf"))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.speed < 1:
        sys.exit("--speed must be 1 or more")
    for tool in ("fastnetmon", "softflowd"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is missing (scripts/setup.sh bench-deps installs fastnetmon, "
                     "scripts/setup.sh test softflowd)")
    seeds = ev.parse_seeds(args.seeds)
    keep = tempfile.mkdtemp(prefix="fnm-verdicts.")
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.j)) as ex:
            results = list(ex.map(lambda s: one(s, args.spamflowd, args.conf, keep, args.speed,
                                              args.by), seeds))
    finally:
        shutil.rmtree(keep, ignore_errors=True)
    rows = score(results)
    if args.json:
        json.dump(rows, sys.stdout, indent=1)
        print()
    else:
        print(markdown(rows, args.seeds, args.speed, args.by))


if __name__ == "__main__":
    main()
