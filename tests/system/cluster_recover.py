#!/usr/bin/python3
"""Batches lost on the way to the analyzer are found again (issue 17, doc/cluster.md "Batches
lost on the way"): one nats-server, an analyzer node and a live collector node (spamflowd,
UDP). The analyzer runs with a test's fault, SPAMFLOW_TEST_LOSE_FLOWS=N: the first delivery
of every flow message whose stream sequence is a multiple of N is not handed on, as if the
client library had lost it; the message stays in the stream. The scenario's NetFlow v5
datagrams are sent to the collector at a steady pace.

  - the analyzer sees the collector's batch numbers skipped, reads the partition's stream
    again and takes the lost batches from it, each once: every batch the collector
    published is applied exactly once, and every flow routed is applied;
  - it counts them: batches_recovered = the messages the fault lost (its log says each),
    but for at most one a reading that came back in order as the reading began; no batch
    missing or still waiting;
  - the nats-server is restarted in the middle: the analyzer reconnects, waits for the bus
    to be calm (no reconnect, no missed heartbeat for 10 s) and reads again after it, and
    no reading fails (one made while JetStream still starts would);
  - the checks can fail: with REWIND_WAIT_US (daemon/cluster_node.c) made longer than the
    run, this test fails with 0 recovered, 68 missing and 283 flows not applied.

usage: cluster_recover.py SPAMFLOWD SPAMFLOWCTL CAPTURE [EVERY]
"""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import testdir
from cluster_e2e import ctl  # spamflowctl -j, its reply as JSON
from cluster_outage import datagrams, flows_stream_report
from natsutil import NatsCluster
from netutil import free_udp_port

failures = []


def check(cond, what):
    print(("ok    " if cond else "FAIL  ") + what, flush=True)
    if not cond:
        failures.append(what)


def main():
    spamflowd, spamflowctl, capture = sys.argv[1:4]
    every = int(sys.argv[4]) if len(sys.argv) > 4 else 40
    tmp = testdir.mkdtemp("spamflow-recover-")
    dgrams = datagrams(capture)
    procs, logs = {}, {}
    with NatsCluster(1, max_payload=1 << 20) as nats:
        def conf(name, roles, extra=""):
            path = os.path.join(tmp, name + ".conf")
            with open(path, "w") as f:
                f.write(f"[control]\nsocket = {tmp}/{name}.sock\n[http]\nlisten =\n"
                        f"[cluster]\nnats = {nats.urls()}\nnode = {name}\nroles = {roles}\n"
                        f"alert_group =\npartitions = 4\nreplicas = 1\n"
                        f"snapshot_interval = 2\n{extra}")
            return path
        port = free_udp_port()
        try:
            for name, roles, extra, args, env in (
                    ("a1", "analyzer", "", [],
                     {"SPAMFLOW_TEST_LOSE_FLOWS": str(every)}),
                    # small batches: many of them, so that the fault loses several a
                    # partition
                    ("c1", "collector", "batch_bytes = 4096\n",
                     ["-l", f"127.0.0.1:{port}"], {})):
                logs[name] = open(os.path.join(tmp, name + ".log"), "w+")
                procs[name] = subprocess.Popen(
                    [spamflowd, "-c", conf(name, roles, extra), "--state=", "--history=",
                     "--stats-interval", "0", *args],
                    stdout=subprocess.DEVNULL, stderr=logs[name],
                    env={**os.environ, **env})
            deadline = time.time() + 40
            parts = []
            while time.time() < deadline:
                parts = ((ctl(spamflowctl, f"{tmp}/a1.sock", "cluster").get("status") or {})
                         .get("partitions", []))
                if len(parts) == 4 and all(p.get("owner") == "a1" for p in parts):
                    break
                time.sleep(0.3)
            check(len(parts) == 4 and all(p.get("owner") == "a1" for p in parts),
                  "a1 owns the 4 partitions")

            sent = [0]
            stop = threading.Event()

            def sender():
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                    i = 0
                    while not stop.is_set():
                        u.sendto(dgrams[i % len(dgrams)], ("127.0.0.1", port))
                        sent[0] += 1
                        i += 1
                        time.sleep(0.004)  # ~250 datagrams, ~2,000 records a second
            t = threading.Thread(target=sender)
            t.start()
            time.sleep(6)
            # the server restarted under the flows: the analyzer reconnects, libnats makes
            # its consumers again, and holes seen before and after wait for the bus to be
            # calm (10 s with no reconnect or missed heartbeat) before they are looked for or
            # count missing
            before = ctl(spamflowctl, f"{tmp}/a1.sock", "stats").get("cluster") or {}
            nats.restart(0)
            nats.wait_ready(nats.FULL_RESTART_TIMEOUT)
            print("the nats-server was restarted", flush=True)
            time.sleep(4)
            stop.set()
            t.join()

            # settled: every number skipped found again or given up (nothing waiting), and
            # the analyzer's flows stand still; a hole is looked for after 5 s, and a
            # partition read again at most every 20 s (daemon/cluster_node.c)
            deadline, last, stable = time.time() + 90, None, 0
            while time.time() < deadline:
                c1 = ctl(spamflowctl, f"{tmp}/c1.sock", "stats")
                a1 = ctl(spamflowctl, f"{tmp}/a1.sock", "stats")
                cc, ac = c1.get("cluster") or {}, a1.get("cluster") or {}
                now = (ac.get("flows_in"), ac.get("batches_in"))
                done = (ac.get("batches_waiting", 1) == 0 and
                        ac.get("batches_in", 0) >= cc.get("batches_out", 1))
                stable = stable + 1 if now == last and done else 0
                last = now
                if stable >= 4:
                    break
                time.sleep(0.5)
            check(stable >= 4, "the analyzer settled")
            logs["a1"].seek(0)
            log = logs["a1"].read()
            lost = re.findall(r"a test's fault: flow message (\d+) lost", log)
            print(f"collector: {json.dumps(cc)[:600]}", flush=True)
            print(f"analyzer: {json.dumps(ac)[:900]}", flush=True)
            print(f"the fault lost {len(lost)} flow messages: {' '.join(lost[:20])}",
                  flush=True)
            check(len(lost) >= 4, f"the fault lost flow messages ({len(lost)}, every "
                                  f"{every}th of the stream)")
            bus = cc.get("bus") or {}
            check(cc.get("batches_dropped", 1) == 0 and bus.get("failed", 1) == 0,
                  "the collector's bus took and stored every batch (none dropped or failed)")
            # a message lost just as a reading again begins (the one before the message
            # the old consumer held, dropped at its close) comes with the new consumer
            # above what was applied: taken in order, no hole, not counted recovered. So
            # up to one a reading.
            rereads = ac.get("rereads", 0)
            check(rereads >= 1 and
                  len(lost) - rereads <= ac.get("batches_recovered", -1) <= len(lost),
                  f"the lost batches were found by reading the stream again "
                  f"({ac.get('batches_recovered')} recovered of {len(lost)} lost, in "
                  f"{rereads} readings; the rest, if any, came in order)")
            bus = ac.get("bus") or {}
            check(bus.get("reconnects", 0) >= 1 and
                  ac.get("rereads", 0) > before.get("rereads", 0),
                  f"the analyzer reconnected ({bus.get('reconnects')} reconnects) and read the "
                  f"stream again after it ({before.get('rereads')} readings before the "
                  f"restart, {ac.get('rereads')} in all)")
            check(ac.get("batches_missing") == 0 and ac.get("batches_waiting") == 0,
                  f"no batch missing or waiting ({ac.get('batches_missing')}, "
                  f"{ac.get('batches_waiting')})")
            check(ac.get("batches_in") == cc.get("batches_out") and
                  ac.get("batches_late") == 0 and ac.get("batches_twice") == 0,
                  f"every batch published applied once: {ac.get('batches_in')} applied of "
                  f"{cc.get('batches_out')} published, {ac.get('batches_late')} late, "
                  f"{ac.get('batches_twice')} twice")
            check(ac.get("flows_in") == cc.get("flows_routed") and
                  ac.get("flows_in", 0) > 1000,
                  f"every flow routed applied: {ac.get('flows_in')} of "
                  f"{cc.get('flows_routed')}")
            check(ac.get("batches_repeated", 0) > 0,
                  f"the stream read again repeated batches already applied, skipped "
                  f"({ac.get('batches_repeated')})")
            # the coordinator's own count of the consumers it made again
            m = ctl(spamflowctl, f"{tmp}/a1.sock", "cluster").get("status") or {}
            coord = m.get("coord") or {}
            check(coord.get("rereads") == ac.get("rereads") and
                  coord.get("rereads_failed") == 0,
                  f"the coordinator made each reading ({coord.get('rereads')} made, "
                  f"{coord.get('rereads_failed')} failed)")
            if failures or os.environ.get("SPAMFLOW_TEST_DUMP"):
                print(flows_stream_report(nats), flush=True)
        finally:
            for p in procs.values():
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
            for name, p in procs.items():
                try:
                    rc = p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    p.kill()
                    rc = "hung"
                check(rc == 0, f"{name} exited {rc} on SIGTERM")
    if failures:
        for name, f in logs.items():
            f.seek(0)
            text = f.read()
            at = text.find("ERROR: AddressSanitizer")
            if at >= 0:
                print(f"---- {name} (its AddressSanitizer report)\n" + text[at:at + 12000])
            print(f"---- {name}\n" + text[-3000:])
        sys.exit(f"{len(failures)} checks failed")
    print("all checks passed")


if __name__ == "__main__":
    main()
