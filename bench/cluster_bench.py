#!/usr/bin/python3
"""The cluster's cost (issue 17) on this machine, side by side with one daemon on the same
capture: a flowgen capture (NetFlow v5, the bot-heavy mix: 80 % of the records are port-25
flows the analyzers read) replayed

  - by one spamflowd alone (--replay): records/s and CPU per record;
  - into a cluster: three nats-servers (replicas 3), ANALYZERS analyzer nodes, one collector
    replay as fast as it goes; the time until the analyzers have applied everything (lag 0),
    the CPU per record of the collector (decode, route, encode, publish), of the analyzers
    (consume, decode, analyze) and of the NATS servers (replication), and the bytes per
    record in the flow stream;
  - then one analyzer is killed (SIGKILL) and the time until the others own its partitions
    and have caught up is measured, with the state they took over (snapshot bytes).

usage: cluster_bench.py --build DIR [--records N] [--analyzers N] [--hosts N] [--json FILE]
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

CLK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid):
    """user + system CPU seconds of a live process."""
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / CLK


def ctl(spamflowctl, sock, *args):
    p = subprocess.run([spamflowctl, "-s", sock, "-j", *args], capture_output=True, text=True,
                       timeout=20)
    try:
        return json.loads(p.stdout)
    except json.JSONDecodeError:
        return {}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", required=True)
    ap.add_argument("--records", type=int, default=2000000)
    ap.add_argument("--analyzers", type=int, default=2)
    ap.add_argument("--hosts", type=int, default=20000)
    ap.add_argument("--partitions", type=int, default=64)
    ap.add_argument("--spoof", action="store_true",
                    help="flowgen --spoof: every non-bot record a port-25 flow from a fresh "
                         "internal host, so that the state (and the takeover) grows with "
                         "--records")
    ap.add_argument("--json")
    a = ap.parse_args()
    spamflowd = os.path.join(a.build, "daemon", "spamflowd")
    spamflowctl = os.path.join(a.build, "client", "spamflowctl")
    flowgen = os.path.join(a.build, "bench", "flowgen")
    tmp = tempfile.mkdtemp(prefix="spamflow-cbench-")
    cap = os.path.join(tmp, "cap.pcap")
    mix = ["--spoof"] if a.spoof else ["--mix", "bot-heavy"]
    subprocess.run([flowgen, "-v", "5", *mix, "-n", str(a.records), "-r", "0",
                    "--hosts", str(a.hosts), "--pcap", cap], check=True,
                   stdout=subprocess.DEVNULL)
    out = {"records": a.records, "analyzers": a.analyzers, "partitions": a.partitions}

    # one daemon alone
    t0 = time.time()
    r0 = os.times()
    rep = subprocess.run([spamflowd, "--state=", "--history=", "--replay", cap, "--json"],
                         capture_output=True, text=True, check=True)
    r1 = os.times()
    single_s = time.time() - t0
    single_cpu = (r1.children_user - r0.children_user) + (r1.children_system - r0.children_system)
    recs = json.loads(rep.stdout)["totals"]["records"]
    out["single"] = {"seconds": single_s, "records_per_s": recs / single_s,
                     "cpu_ns_per_record": single_cpu / recs * 1e9}
    print(f"one daemon: {recs} records in {single_s:.2f} s = {recs / single_s:,.0f} rec/s, "
          f"{single_cpu / recs * 1e9:.0f} ns CPU per record", flush=True)

    with NatsCluster(3, max_payload=1 << 20) as nats:
        urls = nats.urls()
        procs, socks = {}, {}

        def conf(name, roles):
            p = os.path.join(tmp, name + ".conf")
            with open(p, "w") as f:
                f.write(f"[control]\nsocket = {tmp}/{name}.sock\n[http]\nlisten =\n"
                        f"[cluster]\nnats = {urls}\nnode = {name}\nroles = {roles}\n"
                        f"alert_group = {'sinks' if roles == 'analyzer' else ''}\n"
                        f"partitions = {a.partitions}\nsnapshot_interval = 5\n")
            return p

        names = [f"a{i + 1}" for i in range(a.analyzers)]
        try:
            for n in names:
                procs[n] = subprocess.Popen([spamflowd, "-c", conf(n, "analyzer"), "--state=",
                                             "--history=", "--stats-interval", "0"],
                                            stdout=subprocess.DEVNULL,
                                            stderr=open(os.path.join(tmp, n + ".log"), "w"))
                socks[n] = f"{tmp}/{n}.sock"
            deadline = time.time() + 60
            while time.time() < deadline:
                c = ctl(spamflowctl, socks[names[0]], "cluster")
                parts = (c.get("status") or {}).get("partitions", [])
                if len(parts) == a.partitions and all(p.get("owner") for p in parts):
                    break
                time.sleep(0.5)
            nats_cpu0 = sum(cpu_s(s.proc.pid) for s in nats.servers)
            an_cpu0 = {n: cpu_s(procs[n].pid) for n in names}
            t0 = time.time()
            r0 = os.times()
            rep = subprocess.run([spamflowd, "-c", conf("c1", "collector"), "--state=",
                                  "--history=", "--replay", cap, "--json"],
                                 capture_output=True, text=True, check=True)
            r1 = os.times()
            coll_s = time.time() - t0
            coll_cpu = (r1.children_user - r0.children_user) + \
                (r1.children_system - r0.children_system)
            crep = json.loads(rep.stdout)
            routed = crep["cluster"]["flows_routed"]
            # what the collector's publish buffer could not take never reaches the bus
            dropped = crep["cluster"].get("flows_dropped", 0)
            # the analyzers have applied everything: their flows_in add up to what was routed
            while time.time() - t0 < 600:
                got = sum((ctl(spamflowctl, socks[n], "stats").get("cluster") or {})
                          .get("flows_in", 0) for n in names)
                if got >= routed - dropped:
                    break
                time.sleep(0.2)
            done_s = time.time() - t0
            an_cpu = sum(cpu_s(procs[n].pid) - an_cpu0[n] for n in names)
            nats_cpu = sum(cpu_s(s.proc.pid) for s in nats.servers) - nats_cpu0
            jsz = nats.servers[0].monitor("/jsz?streams=true&accounts=true", timeout=5) or {}
            flow_bytes = 0
            for acc in jsz.get("account_details", []):
                for st in acc.get("stream_detail", []):
                    if st["name"] == "SPAMFLOW_FLOWS":
                        flow_bytes = st["state"]["bytes"]
            out["cluster"] = {
                "collector_seconds": coll_s, "end_to_end_seconds": done_s,
                "records_per_s": recs / done_s, "flows_routed": routed, "flows_applied": got,
                "collector_cpu_ns_per_record": coll_cpu / recs * 1e9,
                "analyzers_cpu_ns_per_routed_flow": an_cpu / routed * 1e9,
                "nats_cpu_ns_per_routed_flow": nats_cpu / routed * 1e9,
                "bus_bytes_per_routed_flow": flow_bytes / routed,
                "batches_dropped": crep["cluster"]["batches_dropped"]}
            print(f"cluster: {recs} records ({routed} routed to the bus) in {done_s:.2f} s end "
                  f"to end = {recs / done_s:,.0f} rec/s (collector done after {coll_s:.2f} s); "
                  f"CPU per record: collector {coll_cpu / recs * 1e9:.0f} ns; per routed flow: "
                  f"analyzers {an_cpu / routed * 1e9:.0f} ns, NATS servers "
                  f"{nats_cpu / routed * 1e9:.0f} ns; {flow_bytes / routed:.1f} bytes per flow in "
                  f"the stream (one replica); {crep['cluster']['batches_dropped']} batches dropped",
                  flush=True)

            # takeover: kill the first analyzer once its snapshots are stored
            time.sleep(6)
            st = ctl(spamflowctl, socks[names[0]], "stats")
            cl = st.get("cluster") or {}
            owned = cl.get("owned", 0)
            snap_each = cl.get("snapshot_bytes", 0) / max(1, cl.get("snapshots", 1))
            hosts = (st.get("analyzer") or {}).get("hosts_tracked", 0)
            procs[names[0]].send_signal(signal.SIGKILL)
            procs[names[0]].wait()
            tk = time.time()
            took = None
            while time.time() - tk < 120:
                c = ctl(spamflowctl, socks[names[1]], "cluster")
                nodes = (c.get("status") or {}).get("nodes", [])
                parts = (c.get("status") or {}).get("partitions", [])
                lag = sum((x.get("info") or {}).get("lag", 0) for x in nodes if x.get("live"))
                if parts and all(p.get("owner") in names[1:] for p in parts) and lag == 0:
                    took = time.time() - tk
                    break
                time.sleep(0.1)
            out["takeover"] = {"seconds": took, "partitions": owned, "hosts": hosts,
                               "state_bytes": snap_each * owned}
            print(f"takeover of {owned} partitions ({hosts} hosts, about "
                  f"{snap_each * owned / 1e6:.1f} MB of state): "
                  f"{'%.1f s' % took if took else 'not within 120 s'} from SIGKILL to every "
                  f"partition owned and caught up", flush=True)
        finally:
            for p in procs.values():
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
            for p in procs.values():
                p.wait(timeout=30)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
