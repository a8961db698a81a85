#!/usr/bin/python3
"""The bus goes away under a live cluster (issue 17): three nats-server processes clustered on
loopback, one analyzer node and one live collector node (spamflowd, UDP) with a small
publish buffer (64 KiB). The scenario's NetFlow v5 datagrams are sent to the collector at a
steady pace for the whole test; in the middle every NATS server is stopped for OUTAGE
seconds, then started again.

  - the collector never stalls: every datagram sent is decoded, no kernel drop;
  - while the bus is away the collector buffers, then drops, and counts both;
  - when the bus returns everything buffered is delivered and the analyzer catches up;
  - the counts add up: flows routed = flows the analyzer applied + flows in dropped batches
    (+ flows in publishes the bus gave up on after the servers returned, counted
    flows_failed: under load a stream can take longer than the bus's timeout to answer).

usage: cluster_outage.py SPAMFLOWD SPAMFLOWCTL CAPTURE [OUTAGE_S]
"""
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import testdir
from cluster_e2e import ctl  # spamflowctl -j, its reply as JSON
from natsutil import NatsCluster, batch_head, stream_messages
from netutil import free_udp_port

failures = []


def check(cond, what):
    print(("ok    " if cond else "FAIL  ") + what, flush=True)
    if not cond:
        failures.append(what)


def datagrams(path):
    data = open(path, "rb").read()
    off, out = 24, []
    while off + 16 <= len(data):
        incl = int.from_bytes(data[off + 8:off + 12], "little")
        ip = data[off + 16 + 14:off + 16 + incl]
        udp = ip[(ip[0] & 15) * 4:]
        out.append(udp[8:int.from_bytes(udp[4:6], "big")])
        off += 16 + incl
    return out


def jsz_flows(nats):
    """Each running server's view of the stream of flows: its state and consumers."""
    out = []
    for srv in nats.servers:
        if not srv.running():
            continue
        j = srv.monitor("/jsz?streams=true&consumers=true&config=true", timeout=3) or {}
        for acc in j.get("account_details") or []:
            for st in acc.get("stream_detail") or []:
                if "FLOW" not in st.get("name", "").upper():
                    continue
                out.append(f"{srv.name}: stream {st.get('name')} state "
                           f"{json.dumps(st.get('state'))} cluster "
                           f"{json.dumps(st.get('cluster'))}")
                for c in st.get("consumer_detail") or []:
                    cfg = c.get("config") or {}
                    out.append(f"  consumer {c.get('name')} filter "
                               f"{cfg.get('filter_subject')} delivered "
                               f"{json.dumps(c.get('delivered'))} ack_floor "
                               f"{json.dumps(c.get('ack_floor'))} pending "
                               f"{c.get('num_pending')} ack_pending "
                               f"{c.get('num_ack_pending')} cluster "
                               f"{json.dumps(c.get('cluster'))}")
    return "\n".join(out) or "(no server reports the stream of flows)"


def flows_stream_report(nats):
    """The stream of flows read back, per partition subject: each collector's batch numbers
    that are not there, and those stored twice (with their sequences and times): what tells
    a batch lost on the way to the stream from one lost after it."""
    srv = next((s for s in nats.servers if s.running()), None)
    if srv is None:
        return "(no server running to read the stream from)"
    last = 0
    for acc in ((srv.monitor("/jsz?streams=true", timeout=3) or {})
                .get("account_details") or []):
        for st in acc.get("stream_detail") or []:
            if st.get("name") == "SPAMFLOW_FLOWS":
                last = (st.get("state") or {}).get("last_seq", 0)
    try:
        msgs = stream_messages(srv.url, "SPAMFLOW_FLOWS", 1, last)
    except OSError as e:
        return f"(the stream of flows not read: {e})"
    per = {}
    for m in msgs:
        head = batch_head(m["data"])
        if head is None:
            continue
        per.setdefault((m["subject"], head[0]), {}).setdefault(head[1], []).append(
            (m["seq"], m["time"]))
    out = [f"the stream of flows read back from {srv.name}: {len(msgs)} messages "
           f"(last sequence {last})"]
    for (subject, node), nums in sorted(per.items()):
        have = sorted(nums)
        gaps = [q for q in range(have[0], have[-1] + 1) if q not in nums]
        twice = {q: v for q, v in nums.items() if len(v) > 1}
        out.append(f"  {subject} from {node}: numbers {have[0]}..{have[-1]}, {len(have)} "
                   f"stored; not there: {gaps[:20]}; stored twice: {twice}")
        for q in gaps[:5]:
            near = [(x, nums[x]) for x in (q - 1, q + 1) if x in nums]
            out.append(f"    {q} missing; its neighbours: {near}")
    return "\n".join(out)


def main():
    spamflowd, spamflowctl, capture = sys.argv[1:4]
    outage = float(sys.argv[4]) if len(sys.argv) > 4 else 8
    tmp = testdir.mkdtemp("spamflow-outage-")
    dgrams = datagrams(capture)
    procs, logs = {}, {}
    with NatsCluster(3, max_payload=1 << 20) as nats:
        def conf(name, roles, extra=""):
            path = os.path.join(tmp, name + ".conf")
            with open(path, "w") as f:
                f.write(f"[control]\nsocket = {tmp}/{name}.sock\n[http]\nlisten =\n"
                        f"[cluster]\nnats = {nats.urls()}\nnode = {name}\nroles = {roles}\n"
                        f"alert_group =\npartitions = 8\n"
                        # leases outlive the outage: the analyzer keeps its partitions, so
                        # that what it applied is each batch once
                        f"lease_ttl = 60\nsnapshot_interval = 2\n{extra}")
            return path
        port = free_udp_port()
        try:
            for name, roles, extra, args in (
                    ("a1", "analyzer", "", []),
                    ("c1", "collector", "publish_buffer = 65536\nbatch_bytes = 16384\n",
                     ["-l", f"127.0.0.1:{port}"])):
                logs[name] = open(os.path.join(tmp, name + ".log"), "w+")
                procs[name] = subprocess.Popen(
                    [spamflowd, "-c", conf(name, roles, extra), "--state=", "--history=",
                     "--stats-interval", "0", *args],
                    stdout=subprocess.DEVNULL, stderr=logs[name])
            deadline = time.time() + 40
            while time.time() < deadline:
                parts = ((ctl(spamflowctl, f"{tmp}/a1.sock", "cluster").get("status") or {})
                         .get("partitions", []))
                if len(parts) == 8 and all(p.get("owner") == "a1" for p in parts):
                    break
                time.sleep(0.3)
            check(len(parts) == 8 and all(p.get("owner") == "a1" for p in parts),
                  "a1 owns the 8 partitions")

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
            time.sleep(2)
            before = (ctl(spamflowctl, f"{tmp}/c1.sock", "stats").get("cluster") or {})
            for i in range(3):
                nats.stop(i)
            print(f"every nats-server stopped for {outage:.0f} s", flush=True)
            time.sleep(outage)
            during = (ctl(spamflowctl, f"{tmp}/c1.sock", "stats").get("cluster") or {})
            nats.start()
            nats.wait_ready(nats.FULL_RESTART_TIMEOUT)
            print("the nats-servers are back", flush=True)
            time.sleep(2)
            stop.set()
            t.join()

            # caught up: the collector's buffer empty, every flow routed accounted for
            # (applied, dropped or in a failed publish: an analyzer whose consumer libnats
            # is still making again after the outage applies the last batches seconds
            # later), and the analyzer's flows settle; a flow really lost keeps the sum
            # short until the deadline, and the check below fails
            deadline, last, stable = time.time() + 60, None, 0
            while time.time() < deadline:
                c1 = ctl(spamflowctl, f"{tmp}/c1.sock", "stats")
                a1 = ctl(spamflowctl, f"{tmp}/a1.sock", "stats")
                cc, ac = c1.get("cluster") or {}, a1.get("cluster") or {}
                now = ((cc.get("bus") or {}).get("buffered"), ac.get("flows_in"))
                accounted = ((ac.get("flows_in") or 0) + cc.get("flows_dropped", 0) +
                             cc.get("flows_failed", 0) >= cc.get("flows_routed", 0))
                stable = stable + 1 if now == last and now[0] == 0 and accounted else 0
                last = now
                if stable >= 6:
                    break
                time.sleep(0.5)
            check(stable >= 6, f"the cluster settled after the outage (buffered "
                               f"{(cc.get('bus') or {}).get('buffered')})")
            if stable < 6:
                # what tells a lost batch from a stuck consumer: the analyzer's counts, and
                # each server's view of the flows stream and its consumers (messages per
                # partition subject, each consumer's delivered position and pending)
                print(f"analyzer's cluster stats: {json.dumps(ac)}", flush=True)
                parts = ((ctl(spamflowctl, f"{tmp}/a1.sock", "cluster").get("status") or {})
                         .get("partitions", []))
                print(f"analyzer's partitions: {json.dumps(parts)}", flush=True)
                print(jsz_flows(nats), flush=True)
            bus = cc.get("bus") or {}
            print(f"collector: {json.dumps(cc)[:700]}", flush=True)
            print(f"collector's bus: {json.dumps(bus)}", flush=True)
            print(f"analyzer: flows_in {ac.get('flows_in')} batches_in {ac.get('batches_in')} "
                  f"lost {ac.get('lost')} acquired {ac.get('acquired')}; batches missing "
                  f"{ac.get('batches_missing')}, late {ac.get('batches_late')}, twice "
                  f"{ac.get('batches_twice')}, recovered {ac.get('batches_recovered')} in "
                  f"{ac.get('rereads')} readings again", flush=True)
            totals = c1.get("totals") or {}
            check(totals.get("datagrams") == sent[0] and
                  (c1.get("listener") or {}).get("kernel_drops", 1) == 0,
                  f"the collector decoded every datagram sent ({totals.get('datagrams')} of "
                  f"{sent[0]}), no kernel drop: it never stalled")
            check(during.get("batches_dropped", 0) > before.get("batches_dropped", 0) and
                  bus.get("dropped", 0) > 0,
                  f"while the bus was away the buffer filled and batches were dropped and "
                  f"counted ({during.get('batches_dropped')} batches, "
                  f"{during.get('flows_dropped')} flows)")
            # a publish that found the stream back but not answering in time (under load,
            # while its leader settles) is given up and counted, with its flows
            check(bus.get("buffered", 1) == 0 and cc.get("flows_failed") is not None,
                  f"nothing left in the buffer (buffered {bus.get('buffered')}; failed "
                  f"{bus.get('failed')} batches with {cc.get('flows_failed')} flows, retried "
                  f"{bus.get('retried')})")
            check(ac.get("lost", 1) == 0, "the analyzer kept its partitions")
            # (a publish given up on may still have been stored, its acknowledgement lost:
            # its flows are then applied as well as counted failed)
            routed, applied = cc.get("flows_routed", -1), ac.get("flows_in", 0)
            dropped, failed = cc.get("flows_dropped", 0), cc.get("flows_failed", 0)
            check(applied + dropped <= routed <= applied + dropped + failed and
                  (failed > 0 or routed == applied + dropped),
                  f"the counts add up: {cc.get('flows_routed')} flows routed = "
                  f"{ac.get('flows_in')} applied + {cc.get('flows_dropped')} dropped + "
                  f"{cc.get('flows_failed')} in failed publishes")
            # the analyzer's own account: the collector numbers the batches its bus took, so
            # the thousands it dropped during the outage leave no gap; a number never seen
            # is a batch the bus gave up on (failed) or one lost on the way
            missing, waiting = ac.get("batches_missing"), ac.get("batches_waiting")
            check(missing is not None and waiting is not None and
                  missing + waiting <= bus.get("failed", 0),
                  f"the analyzer saw every batch number the collector's bus did not give up "
                  f"on: {missing} missing + {waiting} waiting <= {bus.get('failed')} failed "
                  f"({cc.get('batches_dropped')} batches not taken, not numbered; "
                  f"{ac.get('batches_late')} late, {ac.get('batches_twice')} stored twice "
                  f"and applied once, {ac.get('batches_recovered')} found by reading the "
                  f"stream again)")
            # held during the outage, and none of it failed or was left behind: published
            held = (during.get("bus") or {}).get("buffered", 0)
            check(held > 0 and bus.get("buffered", 1) == 0 and
                  bus.get("published", 0) > (during.get("bus") or {}).get("published", 0),
                  f"what the buffer held at the end of the outage ({held} bytes) went out "
                  f"after it")

            if failures:
                print(flows_stream_report(nats), flush=True)

            # stopped while the servers are away: each partition's consumer is left to the
            # connection's close, not deleted on the servers (a request each that waits out
            # its timeout: 2 s a partition, 21 s for these 8, over 120 s for the default 64).
            # Nor does it wait for the coordinator's round in progress, whose requests time
            # out one by one while libnats reconnects (28.4 s under ASan before the round
            # ended early on a stop): what is left is a request in flight and the last
            # snapshot's (2 s each).
            for i in range(3):
                nats.stop(i)
            time.sleep(2)
            t0 = time.time()
            procs["a1"].send_signal(signal.SIGTERM)
            try:
                # past the daemon's exit watchdog (60 s, daemon/exitwatch.h): a stop that
                # hangs is aborted, and its log line names the step
                rc = procs["a1"].wait(timeout=75)
            except subprocess.TimeoutExpired:
                rc = "hung"
            took = time.time() - t0
            logs["a1"].seek(0)
            log = logs["a1"].read()
            stuck = [ln for ln in log.splitlines() if "still stopping after" in ln]
            check(rc == 0 and took < 20 and "consumers closed while the servers were away" in log,
                  f"with the servers away the analyzer stopped in {took:.1f} s (rc {rc}), its "
                  f"consumers left to the connection's close{'; ' + stuck[0] if stuck else ''}")
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
            # an ASan report is longer than the tail: its head (the access and the two
            # stacks) is what tells the race, so it is printed whole
            at = text.find("ERROR: AddressSanitizer")
            if at >= 0:
                print(f"---- {name} (its AddressSanitizer report)\n" + text[at:at + 12000])
            print(f"---- {name}\n" + text[-2500:])
        sys.exit(f"{len(failures)} checks failed")
    print("all checks passed")


if __name__ == "__main__":
    main()
