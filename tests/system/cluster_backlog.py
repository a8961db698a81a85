#!/usr/bin/python3
"""An analyzer's alert events are never lost to a full publish buffer (issue 17).

The loss it guards against: a node that is both collector and analyzer shares one bounded
publish buffer between its flow batches and its partitions' events. When the bus is slow the
batches fill it, and an event raised meanwhile was refused and counted (`alerts_dropped`), and
no owner sent it again: the snapshots after it were not held back for it.

Made certain here with real parts: one nats-server whose user `limited` may not publish flow
batches or alert events (a server-side permission: what it publishes there waits in its
buffer, retried), a node a1 connected as that user with both roles, a 16 KiB buffer (4 KiB
batches), a JSON sink, and its own UDP listener; then:

  - a1's listener gets the scenario's NetFlow v5 datagrams again and again: its flow batches
    fill seven eighths of its buffer, and the rest are dropped and counted;
  - a collector c1 (a user who may publish) replays the scenario into the cluster: a1 owns
    the 8 partitions, applies every flow and raises; its events take the buffer's last
    eighth (kept for them), what does not fit is held by the partition (`held`, up to 4 KiB),
    and the rest is dropped (`alerts_dropped`): the partitions' snapshots are put off, and
    a partition that dropped one is not restarted while the bus has no room;
  - the admin fixes the permission (the server reloads its configuration): a1's buffer and
    held events reach the alert stream, the partitions that dropped one are given up and
    taken again from the snapshot stored before (`restarts`), whose replay sends it again,
    and a1's sink gets exactly the reference's raised
    (host, reason, trigger, count) set, each once; nothing is held any more and the
    snapshots go on.

Without the buffer's last eighth, the held events and the restarts, a1's events were refused
by the full buffer and its sink got none of the 11 raises.

usage: cluster_backlog.py SPAMFLOWD SPAMFLOWCTL CAPTURE BASE_CONFIG
"""
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

from cluster_e2e import ctl, events  # the same replies and events as there
from clusterrun import PARTITIONS, ClusterRun, raised, wait
from cluster_outage import datagrams
from natsutil import NatsCluster
from netutil import free_udp_port


def users(deny):
    rule = f", permissions: {{publish: {{deny: {json.dumps(deny)}}}}}" if deny else ""
    return f"""
authorization {{
  users = [
    {{user: full, password: s3cret}}
    {{user: limited, password: s3cret{rule}}}
  ]
}}
"""


def main():
    spamflowd, spamflowctl, capture, base_conf = sys.argv[1:5]
    run = ClusterRun("backlog")
    check, tmp = run.check, run.tmp
    base = open(base_conf).read()

    ref = run.reference(spamflowd, base_conf, capture)

    password = os.path.join(tmp, "password")
    with open(password, "w") as f:
        f.write("s3cret\n")
    dgrams = datagrams(capture)
    port = free_udp_port()
    procs = run.procs
    stop_flood = threading.Event()
    sent = [0]

    def flood():
        """a1's own exporter: the capture's datagrams, again and again, 2,000 a second"""
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        while not stop_flood.is_set():
            for d in dgrams:
                if stop_flood.is_set():
                    break
                s.sendto(d, ("127.0.0.1", port))
                sent[0] += 1
                if sent[0] % 20 == 0:
                    time.sleep(0.01)
        s.close()

    with NatsCluster(1, max_payload=1 << 20,
                     extra=users(["spamflow.flows.>", "spamflow.alerts"])) as nats:
        def conf(name, roles, user, sink=None):
            return run.node_conf(base, name, nats.urls(), roles, sink,
                                 f"user = {user}\npassword_file = {password}\n"
                                 "snapshot_interval = 1\n" +
                                 ("publish_buffer = 16384\nbatch_bytes = 4096\n"
                                  "alert_group = sinks\n" if name == "a1" else ""))

        def stats(name):
            return ctl(spamflowctl, f"{tmp}/{name}.sock", "stats").get("cluster") or {}

        def owns_all(name):
            st = ctl(spamflowctl, f"{tmp}/{name}.sock", "cluster").get("status") or {}
            parts = st.get("partitions", [])
            return len(parts) == PARTITIONS and all(p.get("owner") == name for p in parts)

        a1_sink = os.path.join(tmp, "a1.json")
        flooder = threading.Thread(target=flood, daemon=True)
        try:
            run.start("a1", [spamflowd, "-c",
                             conf("a1", "collector, analyzer", "limited", a1_sink),
                             "-l", f"127.0.0.1:{port}", "--state=", "--history=",
                             "--stats-interval", "0"])
            check(wait(lambda: owns_all("a1"), 40), "a1 owns the 8 partitions")

            flooder.start()
            s = wait(lambda: (lambda st: st if st.get("batches_dropped", 0) > 0 else None)(
                stats("a1")), 30) or stats("a1")
            bus = s.get("bus") or {}
            check(s.get("batches_dropped", 0) > 0 and
                  bus.get("buffered", 0) > 16384 * 3 // 4,
                  f"a1's own flow batches fill its buffer ({bus.get('buffered')} of 16384 "
                  f"bytes, {s.get('batches_dropped')} batches dropped; last error "
                  f"{bus.get('last_error', '')!r})")

            c1 = subprocess.run(
                [spamflowd, "-c", conf("c1", "collector", "full"), "--state=", "--history=",
                 "--replay", capture, "--json"],
                stdout=subprocess.PIPE, stderr=open(os.path.join(tmp, "c1.log"), "w"),
                text=True, timeout=120)
            check(c1.returncode == 0, f"the collector's replay exited {c1.returncode}")
            routed = (json.loads(c1.stdout or "{}").get("cluster") or {}).get("flows_routed", 0)

            def applied():
                st = stats("a1")
                return st if st.get("flows_in", 0) >= routed > 0 and st.get("lag") == 0 \
                    else None
            s = wait(applied, 60) or stats("a1")
            check(s.get("flows_in", 0) >= routed > 0,
                  f"a1 applied the {routed} flows c1 routed ({s.get('flows_in')})")
            time.sleep(2)  # two snapshot rounds
            s = stats("a1")
            bus = s.get("bus") or {}
            # held ones move into the buffer as a1's flow batches there are given up (2 s)
            check(s.get("held", 0) > 0,
                  f"the events the buffer had no room for were held ({s.get('held')} held, "
                  f"{s.get('held_now')} still; {s.get('alerts_out')} taken by the bus, "
                  f"buffer {bus.get('buffered')} bytes)")
            check(s.get("alerts_dropped", 0) > 0 and s.get("restarts", 0) == 0,
                  f"those beyond the 4 KiB held are dropped ({s.get('alerts_dropped')}), "
                  f"their partitions not restarted while the bus has no room "
                  f"({s.get('restarts')} restarts: a replay now would drop them again)")
            check(len(events(a1_sink)) == 0,
                  f"the sink got nothing while the server refuses ({len(events(a1_sink))})")
            deferred = s.get("snapshots_deferred", 0)
            check(deferred > 0, f"the partitions' snapshots are put off ({deferred})")

            # the admin fixes the permission; a1's own flood stops
            stop_flood.set()
            flooder.join(10)
            snaps = s.get("snapshots", 0)
            nats.reload(users(["spamflow.flows.>"]))

            def settled():
                # nothing held, no partition waiting for its restart, all 8 owned again and
                # caught up, and the sink still for 8 readings
                st = stats("a1")
                n = len(events(a1_sink))
                settled.hist.append((st.get("held_now"), st.get("restarts_waiting"),
                                     st.get("owned"), st.get("lag"), n))
                h = settled.hist[-8:]
                return st if (len(h) == 8 and h[0][:4] == (0, 0, PARTITIONS, 0) and
                              len(set(h)) == 1) else None
            settled.hist = []
            s = wait(settled, 60) or stats("a1")
            got = raised(events(a1_sink))
            twice = sorted(k for k, v in got.items() if v > 1)
            missing = sorted(set(ref) - set(got))
            extra = sorted(set(got) - set(ref))
            check(not missing and not extra,
                  f"a1's sink has the reference's raised set ({sum(got.values())} vs "
                  f"{sum(ref.values())}; missing {missing}, extra {extra})")
            check(not twice, f"no event reached the sink twice ({twice})")
            check(s.get("held_now") == 0, f"nothing held after the reload ({s.get('held_now')})")
            check(s.get("restarts", 0) > 0,
                  f"the partitions that dropped an event were restarted from their stored "
                  f"snapshot once the bus had room ({s.get('restarts')} restarts)")
            log1 = run.log("a1")
            check("is taken again from its stored snapshot, whose replay sends it again" in log1,
                  "a1's log says an event was dropped and what happens to it")
            time.sleep(2.5)
            s2 = stats("a1")
            check(s2.get("snapshots", 0) > snaps,
                  f"the snapshots go on ({snaps} -> {s2.get('snapshots')})")
            procs["a1"].send_signal(signal.SIGTERM)
            rc = procs["a1"].wait(timeout=30)
            check(rc == 0, f"a1 stopped cleanly (exit {rc})")
        finally:
            stop_flood.set()
            run.stop()
    print(f"{sent[0]} datagrams sent to a1's listener")
    run.finish()


if __name__ == "__main__":
    main()
