#!/usr/bin/python3
"""Live system test: a real pmacctd (sfprobe plugin) reads fixtures/traffic.pcap and sends
sFlow v5 over loopback UDP to a real spamflowd, which must count every flow sample pmacctd
sent, under the sFlow agent address, with no loss and nothing malformed, and write the same
rows as the replay of the checked-in capture of the same export.

usage: live_pmacctd.py SPAMFLOWD SPAMFLOWCTL PMACCTD FIXTURES_DIR RATE[,RATE...]

RATE is pmacctd's sampling_rate (1 or 10); several rates run at once, each with its own
pmacctd and spamflowd (most of a run is waiting for pmacctd's 60-s poll, so two in parallel
take the time of one); the fixture is sflow-pmacct.pcap for 1 and
sflow-pmacct-sampled.pcap for 10 (pmacctd's 1-in-N choice is seeded, so the same packets are
sampled every run). pmacctd sends the last, partly filled datagram only when its plugin's
60-s poll times out (fixtures/README.md, "The pmacctd sFlow captures"): the test waits on the
daemon's counters (spamflowctl -j exporters) with a deadline instead of sleeping, then stops
pmacctd's plugin before its core (the other order makes the plugin send ~40 packets again).
"""
import csv
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import testdir
from netutil import free_udp_port

AGENT = "192.0.2.10"
SUB_AGENT = 1
DEADLINE_S = 100  # the 60-s poll, pmacctd's 2-s start pause, and room


def key(r):
    """A row without its times (the live run's are the wall clock)."""
    return tuple(r[c] for c in ("exporter", "domain", "version", "src", "dst", "sport", "dport",
                                "proto", "tcp_flags", "packets", "bytes", "sampling"))


def main():
    spamflowd, ctl, pmacctd, fixtures, rate = sys.argv[1:6]
    if "," in rate:
        # one child per rate, at once; each prints its own lines, prefixed with its rate
        kids = [(r, subprocess.Popen([sys.executable, os.path.abspath(__file__), spamflowd,
                                      ctl, pmacctd, fixtures, r],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True)) for r in rate.split(",")]
        failed = []
        for r, k in kids:
            out, _ = k.communicate(timeout=DEADLINE_S + 60)
            for line in out.splitlines():
                print(f"[sampling {r}] {line}")
            if k.returncode != 0:
                failed.append(r)
        if failed:
            sys.exit(f"FAIL at sampling rate(s) {', '.join(failed)}")
        print("PASS at every rate")
        return
    rate = int(rate)
    name = "sflow-pmacct" if rate == 1 else "sflow-pmacct-sampled"
    with open(os.path.join(fixtures, name + ".expect.json")) as f:
        expect = json.load(f)
    if expect["sampling_rates"] != [rate]:
        sys.exit(f"{name}.expect.json samples at {expect['sampling_rates']}, not {rate}")
    want = expect["records"]

    tmp = testdir.mkdtemp("spamflow-live-pmacctd-")
    port = free_udp_port()
    sock = os.path.join(tmp, "run", "control.sock")
    conf = os.path.join(tmp, "spamflow.conf")
    with open(conf, "w") as f:
        f.write(f"[http]\nlisten =\n[control]\nsocket = {sock}\n")
    flows = os.path.join(tmp, "flows.csv")
    dlog = open(os.path.join(tmp, "daemon.log"), "w+")
    d = subprocess.Popen([spamflowd, "--state=", "--history=", "-c", conf, "-l", f"127.0.0.1:{port}",
                          "--stats-interval", "0", "--json", "--flows", flows],
                         stdout=subprocess.PIPE, stderr=dlog, text=True)
    pm = None
    problems = []
    try:
        for _ in range(100):
            if os.path.exists(sock):
                break
            time.sleep(0.05)
        else:
            sys.exit("spamflowd did not create its control socket")

        pmconf = os.path.join(tmp, "pmacctd.conf")
        with open(pmconf, "w") as f:
            f.write("daemonize: false\n"
                    f"pcap_savefile: {os.path.join(fixtures, 'traffic.pcap')}\n"
                    "pcap_savefile_wait: true\n"
                    "plugins: sfprobe\n"
                    f"sfprobe_receiver: 127.0.0.1:{port}\n"
                    f"sfprobe_agentip: {AGENT}\n"
                    f"sfprobe_agentsubid: {SUB_AGENT}\n"
                    f"sampling_rate: {rate}\n")
        pmlog = open(os.path.join(tmp, "pmacctd.log"), "w+")
        t0 = time.time()
        pm = subprocess.Popen([pmacctd, "-f", pmconf], stdout=pmlog, stderr=subprocess.STDOUT)

        def row():
            p = subprocess.run([ctl, "-s", sock, "--json", "exporters"], capture_output=True,
                               text=True, timeout=10)
            if p.returncode != 0 or not p.stdout.strip():
                return None
            doc = json.loads(p.stdout)
            rows = doc.get("exporters", doc) if isinstance(doc, dict) else doc
            mine = [r for r in rows if r.get("version") == "sflow5"]
            return mine

        mine = None
        got = 0
        while time.time() - t0 < DEADLINE_S:
            time.sleep(1)
            if pm.poll() is not None:
                problems.append(f"pmacctd exited {pm.returncode} early")
                break
            mine = row() or []
            got = sum(r.get("records", 0) + r.get("samples_not_ip", 0) for r in mine)
            if got >= expect["flow_samples"]:
                break
        waited = time.time() - t0
        print(f"flow samples counted by spamflowctl -j exporters: {got} after {waited:.1f} s "
              f"(pmacctd's last datagram comes with its 60-s poll)")
        if got < expect["flow_samples"]:
            problems.append(f"only {got} of {expect['flow_samples']} flow samples arrived "
                            f"within {DEADLINE_S} s")
        time.sleep(1)  # let a duplicate or a stray late datagram show, if any
    finally:
        if pm is not None and pm.poll() is None:
            # the plugin first: stopping the core first makes the plugin resend
            kids = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pm.pid)],
                                  capture_output=True, text=True).stdout.split()
            for k in kids:
                os.kill(int(k), signal.SIGINT)
            try:
                pm.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pm.send_signal(signal.SIGINT)
                try:
                    pm.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pm.kill()
        d.send_signal(signal.SIGTERM)
        try:
            stdout, _ = d.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            d.kill()
            sys.exit("spamflowd did not exit on SIGTERM")
    if d.returncode != 0:
        dlog.seek(0)
        sys.exit(f"spamflowd exited {d.returncode}: {dlog.read()[-2000:]}")

    summary = json.loads(stdout)
    rows = [e for e in summary["exporters"] if e.get("version") == "sflow5"]
    others = [e for e in summary["exporters"] if e.get("version") != "sflow5"]
    if others:
        problems.append(f"non-sFlow exporter rows: {[(e.get('addr'), e.get('version')) for e in others]}")
    if [(e.get("addr"), e.get("domain"), e.get("port")) for e in rows] != [(AGENT, SUB_AGENT, None)]:
        problems.append("exporter rows %s, want one: agent %s, domain %d, port null (not the UDP "
                        "source 127.0.0.1)" % ([(e.get("addr"), e.get("domain"), e.get("port"))
                                                for e in rows], AGENT, SUB_AGENT))

    def tot(k):
        return sum(e.get(k, 0) for e in rows)

    if tot("records") != want:
        problems.append(f"records {tot('records')}, the replayed fixture {name} has {want}")
    for k in ("seq_lost", "samples_lost", "seq_resets", "malformed_total", "samples_not_ip",
              "sample_drops"):
        if tot(k) != 0:
            problems.append(f"{k} {tot(k)}, want 0")
    if tot("counter_samples") < 3:
        problems.append(f"counter_samples {tot('counter_samples')}, pmacctd sends at least 3 "
                        "in the 60 s it waits (every 20 s)")
    drops = summary.get("listener", {}).get("kernel_drops", 0)
    if drops:
        problems.append(f"kernel dropped {drops} datagrams")

    # the same rows as the replay of the checked-in capture, times aside
    with open(flows, newline="") as f:
        live = list(csv.DictReader(f))
    r = subprocess.run([spamflowd, "--replay", os.path.join(fixtures, name + ".pcap"),
                        "--flows", "-"], capture_output=True, text=True, timeout=120)
    replay = list(csv.DictReader(io.StringIO(r.stdout)))
    if r.returncode != 0 or len(replay) != want:
        problems.append(f"replay of {name}.pcap: exit {r.returncode}, {len(replay)} rows")
    elif [key(x) for x in live] != [key(x) for x in replay]:
        diff = next(i for i, (a, b) in enumerate(zip(live + [None] * len(replay),
                                                     replay + [None] * len(live)))
                    if a is None or b is None or key(a) != key(b))
        problems.append(f"live --flows differs from the replay of {name}.pcap from row {diff + 1} "
                        f"({len(live)} vs {len(replay)} rows)")
    else:
        print(f"live --flows == replay of {name}.pcap on all {want} rows (times aside)")
    print(f"sampling {rate}: agent {AGENT}/{SUB_AGENT}: datagrams {tot('datagrams')}, records "
          f"{tot('records')}, counter samples {tot('counter_samples')}, seq_lost "
          f"{tot('seq_lost')}, samples_lost {tot('samples_lost')}, malformed "
          f"{tot('malformed_total')}")
    if problems:
        sys.exit(f"FAIL (logs kept in {tmp}): " + "; ".join(problems))
    shutil.rmtree(tmp, ignore_errors=True)
    print("PASS")


if __name__ == "__main__":
    main()
