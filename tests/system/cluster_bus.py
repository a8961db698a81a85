#!/usr/bin/env python3
"""Issue 17, the bus: cluster/bus_nats.c against a real three-server NATS cluster on loopback
(natsutil.py), streams and buckets with 3 replicas. tests/cluster/bus_check runs the checks
and asks for the cluster's changes on its standard output; this script makes them:
  @kill-leader     SIGKILL the server leading SPAMFLOW_FLOWS (bus_check is publishing)
  @restart-killed  start it again, wait for the cluster
  @stop-all        stop all three (bus_check then publishes into the void, timing each call)
  @start-all       start all three, wait for the JetStream meta leader
A missing nats-server fails the test.

    cluster_bus.py BUS_CHECK"""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from natsutil import NatsCluster  # noqa: E402

MAX_PAYLOAD = 1 << 20


def main():
    bus_check = sys.argv[1]
    t0 = time.monotonic()
    c = NatsCluster(3, max_payload=MAX_PAYLOAD)
    try:
        c.start()
        leader = c.wait_ready()
        print("cluster ready in %.1f s (meta leader %s): %s" % (time.monotonic() - t0, leader,
              c.urls()), flush=True)
        p = subprocess.Popen([bus_check, c.urls(), str(MAX_PAYLOAD)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
        killed = None
        failed = False
        for line in p.stdout:
            line = line.rstrip("\n")
            print(line, flush=True)
            if line.startswith("FAIL"):
                failed = True
            if not line.startswith("@"):
                continue
            what = line[1:]
            if what == "kill-leader":
                name = c.stream_leader("SPAMFLOW_FLOWS")
                if name is None:
                    c.fail("no leader known for SPAMFLOW_FLOWS")
                killed = c.index_of(name)
                c.kill(killed)
                print("   killed %s (SIGKILL), the flows stream's leader" % name, flush=True)
            elif what == "restart-killed":
                c.start(killed)
                c.wait_ready()
                print("   %s restarted" % c.servers[killed].name, flush=True)
            elif what == "stop-all":
                c.stop_all()
                print("   all servers stopped", flush=True)
            elif what == "start-all":
                time.sleep(2)  # the bus stays away a while longer while bus_check waits
                c.start()
                leader = c.wait_ready(c.FULL_RESTART_TIMEOUT)
                print("   all servers started (meta leader %s)" % leader, flush=True)
            else:
                c.fail("bus_check asked for an unknown action: " + what)
            p.stdin.write("done\n")
            p.stdin.flush()
        rc = p.wait()
        print("bus_check exited %d after %.1f s" % (rc, time.monotonic() - t0), flush=True)
        if rc != 0 or failed:
            c.fail("bus_check failed")
    finally:
        c.close()
    print("PASS")


if __name__ == "__main__":
    main()
