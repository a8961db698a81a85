#!/usr/bin/python3
"""Live system test: a real softflowd exports fixtures/traffic.pcap over loopback UDP to a
real spamflowd, which must count every record softflowd sent, with no loss, no malformed
datagram and the right sampling.

usage: live_softflowd.py SPAMFLOWD FIXTURES_DIR VERSION [softflowd args...]
VERSION is 5, 9 or 10; the expected count comes from softflowd itself (its "Flows
exported" statistics line), and is also checked against the fixture's expect file.
"""
import json
import os
import re
import signal
import subprocess
import sys
import time

import testdir
from netutil import free_udp_port


def udp_queue(port):
    """Receive queue bytes of the UDP socket bound to 127.0.0.1:port, None if unbound."""
    for line in open("/proc/net/udp").read().splitlines()[1:]:
        f = line.split()
        if f[1] == f"0100007F:{port:04X}":
            return int(f[4].split(":")[1], 16)
    return None


def main():
    spamflowd, fixtures, version = sys.argv[1], sys.argv[2], sys.argv[3]
    extra = sys.argv[4:]
    tmp = testdir.mkdtemp("spamflow-live-")
    port = free_udp_port()
    flows = os.path.join(tmp, "flows.csv")
    # every default but the system's control socket and HTTP port (a running spamflowd, or
    # a parallel test, may hold them)
    conf = os.path.join(tmp, "spamflow.conf")
    with open(conf, "w") as f:
        f.write("[control]\nsocket =\n[http]\nlisten =\n")
    d = subprocess.Popen([spamflowd, "--state=", "--history=", "-c", conf, "-l", f"127.0.0.1:{port}",
                          "--stats-interval", "0", "--json", "--flows", flows],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # wait until the daemon says it listens
    deadline = time.time() + 10
    seen = ""
    while time.time() < deadline and f":{port}" not in seen:
        line = d.stderr.readline()
        if not line:
            break
        seen += line
    if f":{port}" not in seen:
        d.kill()
        sys.exit(f"spamflowd did not start listening: {seen}")

    sf = subprocess.run(["softflowd", "-r", os.path.join(fixtures, "traffic.pcap"),
                         "-n", f"127.0.0.1:{port}", "-v", version, "-d", "-a", "-m", "64",
                         "-p", os.path.join(tmp, "sf.pid"), "-c", "none"]
                        + extra, capture_output=True, text=True, timeout=120)
    out = sf.stdout + sf.stderr
    # "Flows exported: 330 (526 records) in 27 packets": v9/IPFIX send a record per
    # direction of softflowd's two-way flows; v5 prints no record count.
    m = re.search(r"^Flows exported: (\d+) (?:\((\d+) records\) )?in (\d+) packets", out, re.M)
    if sf.returncode != 0 or not m:
        d.kill()
        sys.exit(f"softflowd failed ({sf.returncode}): {out}")
    want_records = int(m.group(2) or m.group(1))
    want_packets = int(m.group(3))

    # the daemon has read every datagram once its socket queue is empty
    deadline = time.time() + 20
    while udp_queue(port) != 0 and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)
    d.send_signal(signal.SIGTERM)
    try:
        stdout, stderr = d.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        d.kill()
        sys.exit("spamflowd did not exit on SIGTERM")
    if d.returncode != 0:
        sys.exit(f"spamflowd exited {d.returncode}: {stderr}")
    summary = json.loads(stdout)
    rows = [e for e in summary["exporters"] if e.get("domain") is not None]
    records = sum(e["records"] for e in summary["exporters"])
    datagrams = sum(e["datagrams"] for e in summary["exporters"])
    malformed = sum(sum(e["malformed"].values()) for e in summary["exporters"])
    lost = sum(e["seq_lost"] for e in summary["exporters"])
    no_tpl = sum(e["no_template_sets"] for e in summary["exporters"])
    with open(flows) as fp:
        csv_lines = sum(1 for _ in fp) - 1

    problems = []
    if records != want_records:
        problems.append(f"records {records}, softflowd exported {want_records}")
    if csv_lines != want_records:
        problems.append(f"--flows has {csv_lines} records, softflowd exported {want_records}")
    if datagrams != want_packets:
        problems.append(f"datagrams {datagrams}, softflowd sent {want_packets}")
    if malformed or lost or no_tpl:
        problems.append(f"malformed {malformed}, seq_lost {lost}, no-template sets {no_tpl}")
    if not rows or any(e["version"] != int(version) for e in rows):
        problems.append(f"versions seen: {[e['version'] for e in rows]}, want {version}")
    want_sampling = int(extra[extra.index("-s") + 1]) if "-s" in extra else 1
    samplings = sorted({e["sampling"] for e in rows})
    if samplings != [want_sampling]:
        problems.append(f"sampling {samplings}, softflowd samples 1 in {want_sampling}")
    drops = summary.get("listener", {}).get("kernel_drops", 0)
    if drops:
        problems.append(f"kernel dropped {drops} datagrams")
    print(f"v{version}: softflowd sent {want_records} records in {want_packets} datagrams; "
          f"spamflowd counted {records} records in {datagrams} datagrams, "
          f"{csv_lines} CSV lines, seq_lost {lost}, malformed {malformed}, sampling {samplings}")
    if problems:
        sys.exit("FAIL: " + "; ".join(problems))


if __name__ == "__main__":
    main()
