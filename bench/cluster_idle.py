#!/usr/bin/python3
"""What a spamflow cluster asks of JetStream when nothing happens (issue 17, capacity model).

Three nats-servers clustered on loopback (replicas 3), K analyzer nodes of the same binary
with the default lease_ttl (5 s), no flows: every node registers, renews its leases and
reads the buckets of nodes, leases, offenders and suppressions. Measured over --seconds
once every partition has an owner: the JetStream API requests (the servers' /jsz
api.total, summed) and the consumers made (/jsz consumers is a gauge; ordered consumers
come and go: counted by the servers' api and by the nodes' own `cluster` bus counters), per
second and per node.

usage: cluster_idle.py --build build [--analyzers 3,6] [--seconds 30]
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "system"))
from natsutil import NatsCluster  # noqa: E402


def api_total(nats):
    total = 0
    for s in nats.servers:
        j = s.monitor("/jsz", timeout=3) or {}
        total += (j.get("api") or {}).get("total", 0)
    return total


def ctl(spamflowctl, sock, cmd):
    r = subprocess.run([spamflowctl, "-s", sock, "-j", cmd], capture_output=True, text=True,
                       timeout=10)
    try:
        return json.loads(r.stdout)
    except ValueError:
        return {}


def run(build, k, seconds):
    spamflowd = os.path.join(build, "daemon", "spamflowd")
    spamflowctl = os.path.join(build, "client", "spamflowctl")
    tmp = tempfile.mkdtemp(prefix="spamflow-idle-")
    procs = []
    with NatsCluster(3, max_payload=1 << 20) as nats:
        try:
            for i in range(k):
                name = f"a{i + 1}"
                conf = os.path.join(tmp, name + ".conf")
                with open(conf, "w") as f:
                    f.write(f"[control]\nsocket = {tmp}/{name}.sock\n[http]\nlisten =\n"
                            f"[cluster]\nnats = {nats.urls()}\nnode = {name}\n"
                            f"roles = analyzer\nalert_group = sinks\n")
                procs.append(subprocess.Popen(
                    [spamflowd, "-c", conf, "--state=", "--history=", "--stats-interval", "0"],
                    stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, name + ".log"),
                                                           "w")))
            deadline = time.time() + 60
            while time.time() < deadline:
                st = (ctl(spamflowctl, f"{tmp}/a1.sock", "cluster").get("status") or {})
                parts = st.get("partitions", [])
                owners = {p.get("owner") for p in parts}
                if parts and None not in owners and "" not in owners and len(owners) == k:
                    break
                time.sleep(0.5)
            else:
                sys.exit(f"{k} analyzers did not settle in 60 s (logs in {tmp})")
            time.sleep(5)
            a0, t0 = api_total(nats), time.time()
            time.sleep(seconds)
            a1, t1 = api_total(nats), time.time()
            rate = (a1 - a0) / (t1 - t0)
            coord = (ctl(spamflowctl, f"{tmp}/a1.sock", "cluster").get("status") or {})
            return {"analyzers": k, "seconds": round(t1 - t0, 1),
                    "api_requests_per_s": round(rate, 1),
                    "per_node_per_s": round(rate / k, 1),
                    "a1_coordinator": {x: (coord.get("coord") or {}).get(x)
                                       for x in ("watch_reads", "watch_behind")}}
        finally:
            for p in procs:
                p.send_signal(signal.SIGTERM)
            for p in procs:
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--analyzers", default="3,6")
    ap.add_argument("--seconds", type=float, default=30)
    a = ap.parse_args()
    for k in [int(x) for x in a.analyzers.split(",")]:
        print(json.dumps(run(a.build, k, a.seconds)), flush=True)


if __name__ == "__main__":
    main()
