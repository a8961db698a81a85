#!/usr/bin/python3
"""A spamflow cluster against one daemon on the same input (issue 17), with real parts: three
nats-server processes clustered on loopback (JetStream, replicas 3), three analyzer nodes
(live spamflowd, roles = analyzer, one alert group) and two collector nodes (spamflowd
--replay with [cluster], roles = collector) that replay the scenario's NetFlow v5 export in
step at SPEED times its pace, every other datagram each, so that one host's flows are split
between the collectors.

  - the reference: the same capture replayed by one spamflowd alone;
  - the cluster raises exactly the reference's (host, reason) set with the same crossing
    counts, clears the same (host, reason) set, and no event reaches the sinks twice;
  - mid-run, in this order: an analyzer is killed (SIGKILL): its partitions are owned by
    the others within 10 s (the time is printed); one nats-server is killed (SIGKILL), and
    comes back; the other two analyzers are restarted one at a time (SIGTERM, a
    rolling restart: their partitions handed over through snapshots); the killed analyzer
    comes back. Nothing is missed, nothing is sent twice;
  - garbage on the bus (a flow batch that does not parse, one of a wrong version, an alert
    that does not parse) is counted and skipped;
  - a live collector node (UDP) publishes its exporters: `exporters` on an analyzer node
    lists them with the records that collector decoded;
  - a1's /metrics passes `promtool check metrics` and its spamflow_cluster_* values equal
    `spamflowctl -j cluster`;
  - policy commands on a node that does not own the host: a bot suppressed before the
    replay reaches its crossing raises nothing (its owner is the analyzer killed mid-run, so
    the suppression survives that takeover), and `suppressions` shows it on every node;
    at the end a suppression asked right before its owner is SIGKILLed is kept by the new
    owner (with its expiry), unsuppress removes it everywhere, and forget drops an offender
    from every node's `offenders` and reaches the alert group;
  - `spamflowctl offenders` answers the same on every live node and equals the reference's
    offenders at the end; `host ADDR` is answered on a node that does not own the host (the
    request is routed to the owner); `cluster` shows every partition owned and no lag.

usage: cluster_e2e.py SPAMFLOWD SPAMFLOWCTL CAPTURE BASE_CONFIG [SPEED]
"""
import collections
import json
import os
import re
import shutil
import urllib.request
import signal
import socket
import subprocess
import sys
import time

import testdir
from netutil import free_udp_port
from natsutil import free_tcp_port

from natsutil import NatsCluster

PARTITIONS = 16
SPLIT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts",
                     "pcap-split.py")
LEASE_TTL = 3
SLICE_MS = 60000  # the analyzer's slice (the default): readings are stored at slice ends
MAX_SUPPRESSIONS = 3
failures = []


def check(cond, what):
    print(("ok    " if cond else "FAIL  ") + what, flush=True)
    if not cond:
        failures.append(what)


def read_pcap(path):
    data = open(path, "rb").read()
    assert data[:4] == b"\xd4\xc3\xb2\xa1", "little-endian microsecond pcap expected"
    off, out = 24, []
    while off + 16 <= len(data):
        incl = int.from_bytes(data[off + 8:off + 12], "little")
        out.append(data[off:off + 16 + incl])
        off += 16 + incl
    return data[:24], out


def split_capture(path, tmp, n):
    """scripts/pcap-split.py, as doc/cluster.md has the admin run it."""
    subprocess.run([sys.executable, SPLIT, path, str(n), os.path.join(tmp, "part")],
                   check=True, stdout=subprocess.DEVNULL)
    return [os.path.join(tmp, f"part{i}.pcap") for i in range(n)]


def nats_pub(port, subject, payload, timeout=15):
    """Publish payload on subject over the NATS protocol itself, as any client on the bus
    could, and wait for the stream's acknowledgement (retried while a stream elects a leader
    after a server loss)."""
    deadline = time.time() + timeout
    while True:
        with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
            f = s.makefile("rb")
            f.readline()  # INFO
            s.sendall(b'CONNECT {"verbose":false,"pedantic":false}\r\nSUB _INBOX.t 1\r\n')
            s.sendall(b"PUB %s _INBOX.t %d\r\n%s\r\n" % (subject.encode(), len(payload),
                                                          payload))
            try:
                while True:
                    line = f.readline()
                    if not line:
                        break
                    if line.startswith(b"PING"):
                        s.sendall(b"PONG\r\n")
                    elif line.startswith(b"MSG"):
                        ack = f.read(int(line.split()[-1]) + 2)
                        if b'"seq"' in ack:
                            return
                        break  # an error reply (no responders, no leader yet)
            except socket.timeout:
                pass
        if time.time() > deadline:
            raise RuntimeError(f"no stream took the message on {subject}")
        time.sleep(0.5)


def partition(host, partitions):
    """cluster/wire.c's cluster_partition(): FNV-1a over the 16-byte address, fmix32."""
    import ipaddress
    a = ipaddress.ip_address(host)
    key = (b"\0" * 10 + b"\xff\xff" + a.packed) if a.version == 4 else a.packed
    h = 2166136261
    for b in key:
        h = ((h ^ b) * 16777619) & 0xffffffff
    h ^= h >> 16
    h = (h * 0x85ebca6b) & 0xffffffff
    h ^= h >> 13
    h = (h * 0xc2b2ae35) & 0xffffffff
    h ^= h >> 16
    return h % partitions


def events(path):
    out = []
    if os.path.exists(path):
        for line in open(path):
            if line.strip():
                out.append(json.loads(line))
    return out


def key(e):
    trig = 0 if e["trigger"] == "short" else 1
    return (e["event"], e["host"], e["reason"], e["trigger"], e["windows"][trig]["value"])


def ctl(spamflowctl, sock, *args, timeout=10):
    p = subprocess.run([spamflowctl, "-s", sock, "-j", *args], capture_output=True, text=True,
                       timeout=timeout)
    try:
        return json.loads(p.stdout)
    except json.JSONDecodeError:
        return {"ok": False, "error": p.stdout + p.stderr}


def history_settle(spamflowctl, socks, quiet_s=6, limit_s=30):
    """Wait until no node has read a history message for quiet_s seconds."""
    deadline, last, since = time.time() + limit_s, None, time.time()
    while time.time() < deadline:
        now = []
        for s in socks:
            c = ctl(spamflowctl, s, "stats").get("cluster") or {}
            now.append(sum(c.get(k, 0) for k in ("history_in", "history_repeated",
                                                  "history_bad")))
        if now != last:
            last, since = now, time.time()
        elif time.time() - since >= quiet_s:
            return True
        time.sleep(0.5)
    return False


def store_points(spamflowd, spamflowctl, tmp, base, store, hosts):
    """The stored readings of each host in a history store, at slice ends, read by a daemon
    of its own on that store (one daemon per store: the cluster's are stopped):
    {host: {t: {reason: (short, long)}}}."""
    name = os.path.basename(store)
    conf = os.path.join(tmp, name + "-reader.conf")
    sock = os.path.join(tmp, name + "-reader.sock")
    with open(conf, "w") as f:
        f.write(base + f"\n[control]\nsocket = {sock}\n[http]\nlisten =\n"
                "[history]\nmax_age = 0\n")
    log = open(os.path.join(tmp, name + "-reader.log"), "w")
    d = subprocess.Popen([spamflowd, "-c", conf, "--state=", f"--history={store}",
                          "-l", "127.0.0.1:0", "--stats-interval", "0"],
                         stdout=subprocess.DEVNULL, stderr=log)
    out = {}
    try:
        for _ in range(100):
            if os.path.exists(sock):
                break
            time.sleep(0.05)
        for host in hosts:
            h = ctl(spamflowctl, sock, "host", host, "since=2026-01-01T00:00:00Z")
            pts = (h.get("timeline") or {}).get("points") or []
            out[host] = {p["t"]: {r: (v.get("short"), v.get("long"))
                                  for r, v in (p.get("reasons") or {}).items()}
                         for p in pts if not p.get("live") and p["t"] % SLICE_MS == 0}
    finally:
        d.send_signal(signal.SIGTERM)
        d.wait(timeout=20)
    return out


def main():
    spamflowd, spamflowctl, capture, base_conf = sys.argv[1:5]
    speed = float(sys.argv[5]) if len(sys.argv) > 5 else 500
    tmp = testdir.mkdtemp("spamflow-cluster-")
    if shutil.which("promtool") is None:
        sys.exit("promtool not found: scripts/setup.sh test installs it (Debian package "
                 "prometheus)")
    http_port = free_tcp_port()
    base = open(base_conf).read()
    procs = {}
    logs = {}
    want_off = set()

    # the reference: one daemon, the whole capture
    ref_alerts = os.path.join(tmp, "ref.json")
    subprocess.run([spamflowd, "-c", base_conf, "--state=", f"--history={tmp}/ref-history",
                    "--replay", capture, "--alerts", ref_alerts], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ref = events(ref_alerts)
    check(len([e for e in ref if e["event"] == "raised"]) >= 10,
          f"the reference raised {len([e for e in ref if e['event'] == 'raised'])} alerts")

    with NatsCluster(3, max_payload=1 << 20, keep_in=tmp) as nats:
        urls = nats.urls()

        def conf(name, roles, group, sink=None):
            path = os.path.join(tmp, name + ".conf")
            with open(path, "w") as f:
                # the cluster's limit on suppressions, small enough to reach (the reference
                # daemon reads base_conf as it is)
                f.write(base.replace("[analyzer]\n", f"[analyzer]\nmax_suppressions = "
                                     f"{MAX_SUPPRESSIONS}\n", 1))
                f.write(f"\n[control]\nsocket = {tmp}/{name}.sock\n")
                if sink:
                    f.write(f"\n[sinks]\njson = {sink}\n")
                # a1 serves /metrics; the others no HTTP at all
                listen = f"127.0.0.1:{http_port}" if name == "a1" else ""
                f.write(f"\n[http]\nlisten = {listen}\n")
                # the readings are at capture time (January 2026), the nodes' own exit
                # readings at the wall clock's: no age limit, or the store removes the former
                f.write("\n[history]\nmax_age = 0\n")
                # SPAMFLOW_TEST_LOG_LEVEL=debug: the nodes log each event's way (published,
                # stored, fenced, handed back) and each snapshot, to read a failure by
                if os.environ.get("SPAMFLOW_TEST_LOG_LEVEL"):
                    f.write(f"\n[daemon]\nlog_level = {os.environ['SPAMFLOW_TEST_LOG_LEVEL']}\n")
                f.write(f"\n[cluster]\nnats = {urls}\nnode = {name}\nroles = {roles}\n"
                        f"alert_group = {group}\npartitions = {PARTITIONS}\nreplicas = 3\n"
                        f"lease_ttl = {LEASE_TTL}\nsnapshot_interval = 2\n")
            return path

        def start(name):
            # appended: a restarted node's log keeps its first life's
            logs[name] = open(os.path.join(tmp, name + ".log"), "a+")
            # each keeps a history store: its partitions' readings go there
            hist = f"{tmp}/{name}-history"
            procs[name] = subprocess.Popen(
                [spamflowd, "-c", conf(name, "analyzer", "sinks", f"{tmp}/{name}.json"),
                 "--state=", f"--history={hist}", "--stats-interval", "0"],
                stdout=subprocess.DEVNULL, stderr=logs[name])

        analyzers = ["a1", "a2", "a3"]
        try:
            for a in analyzers:
                start(a)
            sock = {a: f"{tmp}/{a}.sock" for a in analyzers}

            def owners(via):
                c = ctl(spamflowctl, sock[via], "cluster")
                parts = (c.get("status") or {}).get("partitions", [])
                return {p["p"]: p.get("owner", "") for p in parts}, c

            # every partition owned, spread over the three
            deadline = time.time() + 30
            while time.time() < deadline:
                own, c = owners("a1")
                counts = collections.Counter(own.values())
                if len(own) == PARTITIONS and "" not in counts and len(counts) == 3:
                    break
                time.sleep(0.3)
            check(len(own) == PARTITIONS and "" not in counts and len(counts) == 3,
                  f"every partition owned, spread over the three analyzers ({dict(counts)})")

            # a bot suppressed before the replay: on a node that does not own it, and owned
            # by a2, which is killed at 15 % (so the suppression must survive a takeover)
            own, _ = owners("a1")
            bots = sorted({e["host"] for e in ref if e["event"] == "raised"})
            sup_host = next((h for h in bots if own.get(partition(h, PARTITIONS)) == "a2"),
                            bots[0])
            sup_owner = own.get(partition(sup_host, PARTITIONS))
            asker = next(a for a in analyzers if a != sup_owner)
            t_ask = time.time()
            r = ctl(spamflowctl, sock[asker], "suppress", sup_host, "until=1d", "note=e2e test")
            t_reply = time.time()
            check(r.get("ok") and (r.get("suppression") or {}).get("host") == sup_host and
                  r.get("sequence", 0) > 0 and r.get("partition") == partition(sup_host, PARTITIONS),
                  f"suppress {sup_host} on {asker} (owner {sup_owner}): stored at sequence "
                  f"{r.get('sequence')} in {(t_reply - t_ask) * 1000:.0f} ms ({str(r)[:160]})")
            sup_until = (r.get("suppression") or {}).get("until_ms")
            deadline, shown_all = time.time() + 10, None
            while time.time() < deadline:
                shown = {a: [x for x in ctl(spamflowctl, sock[a], "suppressions")
                             .get("suppressions", []) if x.get("host") == sup_host]
                         for a in analyzers}
                if all(len(v) == 1 and v[0].get("until_ms") == sup_until
                       for v in shown.values()):
                    shown_all = time.time() - t_reply
                    break
                time.sleep(0.1)
            check(shown_all is not None,
                  f"suppressions on every node shows {sup_host} until {sup_until} "
                  f"{'%.2f s after the reply' % shown_all if shown_all is not None else 'never'}")
            logs[sup_owner].flush()
            with open(os.path.join(tmp, sup_owner + ".log")) as f:
                olog = f.read()
            with open(os.path.join(tmp, asker + ".log")) as f:
                alog = f.read()
            # when the owner applied it, from its log line's time (local, ms)
            import re
            m = re.search(r"(\d\d):(\d\d):(\d\d)\.(\d\d\d): cluster: suppression set: " +
                          re.escape(sup_host), olog)
            if m:
                lt = time.localtime(t_reply)
                applied = time.mktime(lt[:3] + (int(m[1]), int(m[2]), int(m[3])) + lt[6:]) \
                    + int(m[4]) / 1000
                print(f"the owner {sup_owner} applied it {(applied - t_reply) * 1000:+.0f} ms "
                      f"from the reply", flush=True)
            check(f"suppression set: {sup_host} (all reasons)" in olog and
                  f"on node {asker}" in olog and "uid=" in olog and
                  f"suppression of {sup_host}" in alog and "asked by uid=" in alog,
                  f"the suppression is logged on its owner {sup_owner} and on {asker}, with "
                  f"the client's uid and pid")

            # the collectors replay in step, every other datagram each
            parts = split_capture(capture, tmp, 2)
            t_start = int(time.time() * 1000) + 1500
            coll = []
            for i, p in enumerate(parts):
                name = f"c{i + 1}"
                logs[name] = open(os.path.join(tmp, name + ".log"), "w+")
                coll.append(subprocess.Popen(
                    [spamflowd, "-c", conf(name, "collector", ""), "--state=", "--history=",
                     "--replay", p, "--replay-speed", str(speed), "--replay-start",
                     str(t_start), "--json"],
                    stdout=subprocess.PIPE, stderr=logs[name], text=True))

            # the faults, at points of the replay
            _, recs = read_pcap(capture)
            span_s = (int.from_bytes(recs[-1][0:4], "little") -
                      int.from_bytes(recs[0][0:4], "little")) / speed
            t0 = t_start / 1000

            def at(share):
                time.sleep(max(0.0, t0 + span_s * share - time.time()))

            def restart(name):
                procs[name].send_signal(signal.SIGTERM)
                rc = procs[name].wait(timeout=30)
                check(rc == 0, f"{name} stopped cleanly for its restart (exit {rc})")
                logs[name].close()
                start(name)

            at(0.15)
            own, _ = owners("a1")
            had = sorted(p for p, o in own.items() if o == "a2")
            procs["a2"].send_signal(signal.SIGKILL)
            procs["a2"].wait()
            t_kill = time.time()
            took = None
            while time.time() - t_kill < 20:
                own, _ = owners("a1")
                if own and all(o in ("a1", "a3") for o in own.values()):
                    took = time.time() - t_kill
                    break
                time.sleep(0.2)
            check(took is not None and took <= 10,
                  f"a2's {len(had)} partitions taken over in "
                  f"{'%.1f s' % took if took is not None else 'more than 20 s'} (at most 10)")
            # garbage on the bus, to a partition someone owns and to the alerts
            bad_before = sum((ctl(spamflowctl, sock[a], "stats").get("cluster") or {})
                             .get("batches_bad", 0) for a in ("a1", "a3"))
            port = nats.servers[0].port
            nats_pub(port, "spamflow.flows.3", b"not a batch")
            nats_pub(port, "spamflow.flows.3", b"SFCB\x07" + bytes(40))
            nats_pub(port, "spamflow.alerts", b"not an alert")
            nats_pub(port, "spamflow.history.3", b"SFCH\x01\x00" + bytes(10))
            # a control record that does not parse (a wrong op), on a flow subject
            nats_pub(port, "spamflow.flows.3", b"SFCC\x01\x01x" + bytes(20) + b"\x09" + bytes(60))
            # suppressions bucket entries no owner wrote: every node must skip them
            far = int(time.time() * 1000) + 86400000
            for k, v in (("bad1", b'{"host":5,"reason":null,"until_ms":%d,"note":7}' % far),
                         ("bad2", b'{"host":"10.0.0.1","reason":["x"],"until_ms":%d}' % far),
                         ("bad3", b'{"host":"not an address","reason":null,"until_ms":%d}' % far),
                         ("bad5", b'{"host":"10.0.0.2","reason":null,"until_ms":%d,"uid":[1],'
                                  b'"set_ms":{},"partition":"x"}' % far),
                         ("bad4", b"[" * 100000)):
                nats_pub(port, f"$KV.spamflow_suppressions.{k}", v)

            def bad_counts():
                fb = sum((ctl(spamflowctl, sock[a], "stats").get("cluster") or {})
                         .get("batches_bad", 0) for a in ("a1", "a3"))
                ab = sum(((ctl(spamflowctl, sock[a], "cluster").get("status") or {})
                          .get("alerts") or {}).get("bad", 0) for a in ("a1", "a3"))
                hb = sum((ctl(spamflowctl, sock[a], "stats").get("cluster") or {})
                         .get("history_bad", 0) for a in ("a1", "a3"))
                return fb, ab, hb
            deadline = time.time() + 8
            while time.time() < deadline:
                fb, ab, hb = bad_counts()
                cb = sum((ctl(spamflowctl, sock[a], "stats").get("cluster") or {})
                         .get("ctl_bad", 0) for a in ("a1", "a3"))
                if fb >= bad_before + 2 and ab >= 1 and hb >= 2 and cb >= 1:
                    break
                time.sleep(0.3)
            check(cb == 1, f"a control record that does not parse: counted ctl_bad {cb} (1 sent)")
            # the bucket is read every coordinator round (a second, later while a takeover
            # keeps the coordinator busy)
            def supp_ok(s):
                return (s.get("ok") and s.get("total") == 2 and
                        {x["host"] for x in s["suppressions"]} == {sup_host, "10.0.0.2"} and
                        [x["uid"] for x in s["suppressions"] if x["host"] == "10.0.0.2"] == [0])
            deadline = time.time() + 6
            while True:
                sj = {a: ctl(spamflowctl, sock[a], "suppressions") for a in ("a1", "a3")}
                if all(supp_ok(s) for s in sj.values()) or time.time() > deadline:
                    break
                time.sleep(0.2)
            check(all(supp_ok(s) for s in sj.values()),
                  f"hostile entries in the suppressions bucket are skipped or read as far as "
                  f"they go ({ {a: s.get('total') for a, s in sj.items()} } listed: "
                  f"{sup_host} and 10.0.0.2 with uid 0)")
            # (bad5 is a suppression as far as `suppressions` can tell: gone again)
            nats_pub(port, "$KV.spamflow_suppressions.bad5", b"")
            # each node with a store reads every history message: a1 and a3 count it once each
            check(fb == bad_before + 2 and ab == 1 and hb == 2,
                  f"garbage on the bus counted and skipped: {fb - bad_before} bad flow batches "
                  f"(2 sent), {ab} bad alert messages (1 sent), {hb} bad history messages (1 "
                  f"sent, read by a1 and a3)")
            at(0.3)
            nats.kill(1)
            print("killed nats-server n2", flush=True)
            at(0.45)
            nats.start(1)
            print("nats-server n2 is back", flush=True)
            at(0.55)
            restart("a1")
            at(0.7)
            restart("a3")
            at(0.85)
            start("a2")
            reports = []
            for c in coll:
                out, _ = c.communicate(timeout=120)
                check(c.returncode == 0, f"a collector's replay exited {c.returncode}")
                try:
                    reports.append(json.loads(out))
                except json.JSONDecodeError:
                    reports.append({})

            # caught up: no lag, and the alert counts settle
            live = ["a1", "a2", "a3"]
            deadline, last, stable = time.time() + 40, None, 0
            while time.time() < deadline:
                own, c = owners("a1")
                infos = [n.get("info") or {}
                         for n in (c.get("status") or {}).get("nodes", []) if n.get("live")]
                lag = sum(i.get("lag", 0) for i in infos)
                behind = max([i.get("lag_ms", 0) for i in infos] or [0])
                got = sum(len(events(f"{tmp}/{a}.json")) for a in analyzers)
                stable = stable + 1 if (lag == 0 and behind == 0 and got == last) else 0
                last = got
                if stable >= 6:
                    break
                time.sleep(0.5)
            check(stable >= 6 and all("lag_ms" in i for i in infos),
                  f"the cluster caught up (lag {lag}, behind {behind} ms)")

            # the alert group's consumer on the server: every event sent and acknowledged
            # (an event the server left pending, as nats-server 2.9.10 once did with a
            # delayed handback, shows here before any sink misses it)
            deadline = time.time() + 15
            while True:
                al = ((ctl(spamflowctl, sock["a1"], "cluster").get("status") or {})
                      .get("alerts") or {})
                done = ("server_ack_floor" in al and al.get("server_ack_pending") == 0 and
                        al.get("server_not_sent") == 0 and
                        al["server_ack_floor"] == al.get("server_delivered"))
                if done or time.time() > deadline:
                    break
                time.sleep(0.5)
            check(done, f"the alert consumer has every event acknowledged (delivered "
                        f"{al.get('server_delivered')}, ack floor {al.get('server_ack_floor')}, "
                        f"pending {al.get('server_ack_pending')}, not sent "
                        f"{al.get('server_not_sent')}, redelivered "
                        f"{al.get('server_redelivered')})")

            got = []
            for a in analyzers:
                got += events(f"{tmp}/{a}.json")
            ids = collections.Counter((e["event"], e["host"], e["reason"], e["time_ms"])
                                      for e in got)
            dup = [k for k, n in ids.items() if n > 1]
            check(not dup, f"no event reached the sinks twice ({len(got)} events; "
                           f"duplicates: {dup[:3]})")
            check(not any(e["host"] == sup_host for e in got),
                  f"the suppressed {sup_host} raised nothing in the cluster (the reference "
                  f"raised it {sum(1 for e in ref if e['host'] == sup_host and e['event'] == 'raised')}"
                  f" times)")
            ref = [e for e in ref if e["host"] != sup_host]
            want = collections.Counter(key(e) for e in ref if e["event"] == "raised")
            have = collections.Counter(key(e) for e in got if e["event"] == "raised")
            check(want == have,
                  f"raised: the same (host, reason, trigger, count) as one daemon "
                  f"({sum(want.values())} vs {sum(have.values())}; missing "
                  f"{list((want - have).elements())[:3]}, extra {list((have - want).elements())[:3]})")
            wc = {(e["host"], e["reason"]) for e in ref if e["event"] == "cleared"}
            hc = {(e["host"], e["reason"]) for e in got if e["event"] == "cleared"}
            check(wc == hc, f"cleared: the same (host, reason) set ({len(wc)} vs {len(hc)}; "
                            f"missing {sorted(wc - hc)[:3]}, extra {sorted(hc - wc)[:3]})")

            # offenders: the same on every live node, and the reference's at its end
            active = collections.Counter()
            for e in ref:
                k = (e["host"], e["reason"])
                if e["event"] == "raised":
                    active[k] += 1
                elif e["event"] == "cleared":
                    active[k] -= 1
            want_off = {k for k, v in active.items() if v > 0}
            time.sleep(1.5)  # the offenders bucket is read every second
            seen = {}
            for a in live:
                o = ctl(spamflowctl, sock[a], "offenders")
                seen[a] = {(x["host"], x["reason"]) for x in o.get("offenders", [])}
            check(all(seen[a] == want_off for a in live),
                  f"offenders on every node equal the reference's {len(want_off)} "
                  f"({ {a: len(v) for a, v in seen.items()} }; missing on a1 "
                  f"{sorted(want_off - seen['a1'])[:3]}, extra {sorted(seen['a1'] - want_off)[:3]})")

            # host: asked on the node that does not own it, answered by the owner
            if want_off:
                host = sorted(want_off)[0][0]
                own, _ = owners("a1")
                asks = [a for a in live]
                for a in asks:
                    h = ctl(spamflowctl, sock[a], "host", host)
                    check(h.get("ok") and h.get("host") == host,
                          f"host {host} answered on {a} ({str(h)[:120]})")
            # the history: each offender's readings, from its owner's store, asked on a1
            own, _ = owners("a1")
            for host in sorted({h for h, _ in want_off}):
                h = ctl(spamflowctl, sock["a1"], "host", host, "since=2026-01-01T00:00:00Z")
                pts = ((h.get("timeline") or {}).get("points") or [])
                stored = [p for p in pts if not p.get("live")]
                owner = own.get(partition(host, PARTITIONS))
                check(h.get("ok") and (h.get("timeline") or {}).get("stored") and len(stored) > 0,
                      f"host {host} since=2026-01-01 asked on a1: {len(stored)} readings from the "
                      f"store of its owner {owner}")
            # /metrics of a cluster node
            with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=10) as r:
                text = r.read().decode()
            p = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                               text=True, timeout=30)
            check(p.returncode == 0, f"promtool check metrics on a1: rc {p.returncode} "
                                     f"{p.stdout[:300]}{p.stderr[:300]}")
            values = {}
            for line in text.splitlines():
                if line.startswith("spamflow_cluster_") and " " in line:
                    name, v = line.rsplit(" ", 1)
                    values[name] = float(v)
            me = ctl(spamflowctl, sock["a1"], "cluster").get("cluster") or {}
            check(values.get("spamflow_cluster_partitions_owned") == me.get("owned") and
                  values.get("spamflow_cluster_partitions") == PARTITIONS and
                  values.get("spamflow_cluster_bus_connected") == 1 and
                  values.get("spamflow_cluster_lag_seconds") == 0 and
                  values.get("spamflow_cluster_partitions_acquired_total") == me.get("acquired"),
                  f"a1's /metrics: owned {values.get('spamflow_cluster_partitions_owned')}, "
                  f"acquired {values.get('spamflow_cluster_partitions_acquired_total')} "
                  f"(cluster -j: {me.get('owned')}, {me.get('acquired')})")
            c = ctl(spamflowctl, sock["a3"], "cluster")
            check(c.get("ok") and len((c.get("status") or {}).get("partitions", [])) == PARTITIONS,
                  "cluster answers on a3 with every partition")
            txt = subprocess.run([spamflowctl, "-s", sock["a3"], "cluster"], capture_output=True,
                                 text=True, timeout=10).stdout
            print(txt)
            check("a1" in txt and "a3" in txt and "lag" in txt, "cluster's table names the nodes")
            for a in live:
                st = ctl(spamflowctl, sock[a], "cluster")
                print(f"{a}: this node {json.dumps((st.get('cluster') or {}))[:900]}")
                print(f"{a}: coordinator {json.dumps((st.get('status') or {}).get('coord'))}")
            # suppress, then SIGKILL the owner at once: the new owner has it (the record is
            # in the partition's stream, replayed after the newest snapshot)
            own, _ = owners("a1")
            victim = "a3"
            k_host = next(f"10.9.{i // 250}.{i % 250 + 1}" for i in range(5000)
                          if own.get(partition(f"10.9.{i // 250}.{i % 250 + 1}", PARTITIONS)) == victim)
            r = ctl(spamflowctl, sock["a1"], "suppress", k_host, "reason=smtp-fanout",
                    "until=2h", "note=takeover")
            k_until = (r.get("suppression") or {}).get("until_ms")
            procs[victim].send_signal(signal.SIGKILL)
            procs.pop(victim).wait()
            t_kill = time.time()
            check(r.get("ok") and r.get("sequence", 0) > 0,
                  f"suppress {k_host} on a1, its owner {victim} SIGKILLed right after the reply")
            live = ["a1", "a2"]
            kept, new_owner = None, None
            while time.time() - t_kill < 20:
                own, _ = owners("a1")
                new_owner = own.get(partition(k_host, PARTITIONS))
                if new_owner in live:
                    h = ctl(spamflowctl, sock["a2"], "host", k_host)
                    kept = [x for x in h.get("suppressions", []) if x.get("host") == k_host]
                    if kept:
                        break
                time.sleep(0.3)
            check(kept and kept[0].get("until_ms") == k_until and
                  kept[0].get("reason") == "smtp-fanout" and kept[0].get("note") == "takeover",
                  f"the new owner {new_owner} of {k_host} keeps the suppression until {k_until} "
                  f"after {time.time() - t_kill:.1f} s ({str(kept)[:160]})")
            # unsuppress: gone from every node. Its reply's `removed` counts what the asked
            # node's reading of the suppressions bucket holds (doc/cluster.md, "What the
            # replies say"): wait until a2 reads the suppression there (later under load)
            deadline = time.time() + 15
            while time.time() < deadline and not any(
                    x.get("host") == k_host
                    for x in ctl(spamflowctl, sock["a2"], "suppressions").get("suppressions", [])):
                time.sleep(0.2)
            r = ctl(spamflowctl, sock["a2"], "unsuppress", k_host)
            check(r.get("ok") and r.get("removed") == 1 and r.get("sequence", 0) > 0,
                  f"unsuppress {k_host} on a2: {str(r)[:160]}")
            deadline, gone = time.time() + 10, False
            while time.time() < deadline and not gone:
                gone = all(not any(x.get("host") == k_host for x in
                                   ctl(spamflowctl, sock[a], "suppressions").get("suppressions", []))
                           for a in live)
                gone = gone and not ctl(spamflowctl, sock["a1"], "host", k_host).get("suppressions")
                time.sleep(0.2)
            check(gone, f"{k_host}'s suppression is gone on every node and at its owner")
            # max_suppressions is the cluster's: sup_host's and two more fill it; a fourth
            # is refused saying so, replacing one is not
            more = [f"10.9.9.{i}" for i in (1, 2)]
            for h in more:
                r = ctl(spamflowctl, sock["a2"], "suppress", h, "until=1h", "note=fill")
                check(r.get("ok"), f"suppress {h}: {str(r)[:100]}")
            deadline = time.time() + 10
            while time.time() < deadline:
                if ctl(spamflowctl, sock["a1"], "suppressions").get("total") == MAX_SUPPRESSIONS:
                    break
                time.sleep(0.2)
            r = ctl(spamflowctl, sock["a1"], "suppress", "10.9.9.3", "until=1h", "note=over")
            r2 = ctl(spamflowctl, sock["a1"], "suppress", more[0], "until=2h", "note=again")
            check(not r.get("ok") and f"max_suppressions ({MAX_SUPPRESSIONS}) reached" in
                  r.get("error", "") and r2.get("ok") and r2.get("replaced") is True,
                  f"at max_suppressions {MAX_SUPPRESSIONS} a new one is refused "
                  f"({r.get('error', '')[:90]}), a replacement taken ({r2.get('replaced')})")
            for h in more:
                ctl(spamflowctl, sock["a2"], "unsuppress", h)
            # forget an offender, asked on a node that does not own it
            if want_off:
                f_host = sorted(want_off)[-1][0]
                own, _ = owners("a1")
                f_ask = next(a for a in live if a != own.get(partition(f_host, PARTITIONS)))
                r = ctl(spamflowctl, sock[f_ask], "forget", f_host)
                check(r.get("ok") and r.get("forgotten") and r.get("sequence", 0) > 0,
                      f"forget {f_host} on {f_ask}: {str(r)[:160]}")
                deadline, gone = time.time() + 10, False
                while time.time() < deadline and not gone:
                    gone = all(not any(x["host"] == f_host for x in
                                       ctl(spamflowctl, sock[a], "offenders").get("offenders", []))
                               for a in live)
                    time.sleep(0.2)
                fin = sum((ctl(spamflowctl, sock[a], "stats").get("cluster") or {})
                          .get("ctl_forgets_in", 0) for a in live)
                check(gone and fin == 1,
                      f"{f_host} is in no node's offenders after forget, and the alert group "
                      f"got the forget once ({fin})")

            # the HTTP API on a1: /api/host/ADDR of a host a2 owns is routed to a2 (the same
            # object as `host` on the control socket); with a2 stopped (SIGSTOP) it is a 504
            # with a JSON error, and the server answers other requests meanwhile
            own, _ = owners("a1")
            r_host = next((h for h, _ in sorted(want_off)
                           if own.get(partition(h, PARTITIONS)) == "a2"), None)
            if r_host is None:
                r_host = next(f"10.9.{i // 250}.{i % 250 + 1}" for i in range(5000)
                              if own.get(partition(f"10.9.{i // 250}.{i % 250 + 1}",
                                                   PARTITIONS)) == "a2")

            def http_get(path, timeout=15):
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{http_port}{path}",
                                                timeout=timeout) as resp:
                        return resp.status, resp.read().decode()
                except urllib.error.HTTPError as e:
                    return e.code, e.read().decode()
            st, body = http_get(f"/api/host/{r_host}")
            via_ctl = ctl(spamflowctl, sock["a1"], "host", r_host)
            try:
                hj = json.loads(body)
            except json.JSONDecodeError:
                hj = {}
            same = (hj.get("reasons") == via_ctl.get("reasons") and "reasons" in hj
                    if via_ctl.get("ok") else hj.get("error") == via_ctl.get("error"))
            check(st == (200 if via_ctl.get("ok") else 404) and hj.get("ok") == via_ctl.get("ok")
                  and same and (hj.get("host") == r_host or not via_ctl.get("ok")),
                  f"/api/host/{r_host} on a1 is answered by its owner a2 (HTTP {st}, "
                  f"{body[:120]})")
            import threading
            procs["a2"].send_signal(signal.SIGSTOP)
            res = {}
            t_req = time.time()
            th = threading.Thread(target=lambda: res.update(r=http_get(f"/api/host/{r_host}")))
            th.start()
            time.sleep(0.3)
            t_m = time.time()
            st_m, _ = http_get("/metrics", timeout=5)
            t_m = time.time() - t_m
            th.join(20)
            t_req = time.time() - t_req
            procs["a2"].send_signal(signal.SIGCONT)
            st, body = res.get("r", (0, ""))
            try:
                ej = json.loads(body)
            except json.JSONDecodeError:
                ej = {}
            check(st == 504 and ej.get("ok") is False and "did not answer" in ej.get("error", "")
                  and t_req < 8,
                  f"/api/host/{r_host} with its owner stopped: HTTP {st} after {t_req:.1f} s "
                  f"({body[:140]})")
            check(st_m == 200 and t_m < 1.0,
                  f"a1 served /metrics in {t_m * 1000:.0f} ms while that request waited")
            # a2 comes back: its partitions settle again before the rest
            deadline = time.time() + 20
            while time.time() < deadline:
                own, _ = owners("a1")
                if own and all(o in ("a1", "a2") for o in own.values()):
                    break
                time.sleep(0.3)

            # a live collector: its exporters, on another node
            port = free_udp_port()
            logs["c3"] = open(os.path.join(tmp, "c3.log"), "w+")
            procs["c3"] = subprocess.Popen(
                [spamflowd, "-c", conf("c3", "collector", ""), "--state=", "--history=",
                 "-l", f"127.0.0.1:{port}", "--stats-interval", "0"],
                stdout=subprocess.DEVNULL, stderr=logs["c3"])
            time.sleep(1.5)
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                for r in recs[:40]:
                    ip = r[16 + 14:]
                    udp = ip[(ip[0] & 15) * 4:]
                    u.sendto(udp[8:int.from_bytes(udp[4:6], "big")], ("127.0.0.1", port))
            sock["c3"] = f"{tmp}/c3.sock"
            deadline, seen_c3, own_c3 = time.time() + 10, None, None
            while time.time() < deadline:
                own_c3 = (ctl(spamflowctl, sock["c3"], "exporters").get("exporters") or [{}])[0]
                for c in ctl(spamflowctl, sock["a1"], "exporters").get("cluster") or []:
                    if c.get("node") == "c3" and c.get("exporters"):
                        seen_c3 = c["exporters"][0]
                if seen_c3 and seen_c3.get("datagrams") == 40:
                    break
                time.sleep(0.5)
            check(seen_c3 is not None and seen_c3.get("datagrams") == 40 and
                  seen_c3.get("records") == own_c3.get("records") and own_c3.get("records", 0) > 0,
                  f"a1 lists collector c3's exporter: {json.dumps(seen_c3)[:160]} (c3 itself: "
                  f"{own_c3.get('records')} records)")
            txt = subprocess.run([spamflowctl, "-s", sock["a1"], "exporters"], capture_output=True,
                                 text=True, timeout=10).stdout
            print(txt)
            check("collector c3" in txt, "spamflowctl exporters on a1 names collector c3")
            # a collector whose internal_networks miss the scenario: it routes nothing, and
            # counts and warns about the records with no host of the site (the analyzers
            # never see them)
            cw = conf("cw", "collector", "")
            with open(cw) as f:
                text = f.read()
            # (and no mail servers: a listed one's flows have a host of the site)
            text = re.sub(r"(?m)^mail_servers *=.*$", "mail_servers =", text)
            with open(cw, "w") as f:
                f.write(text.replace("[analyzer]\n", "[analyzer]\ninternal_networks = 10.99.0.0/16\n",
                                     1))
            p = subprocess.run([spamflowd, "-c", cw, "--state=", "--history=", "--replay",
                                capture, "--json"], capture_output=True, text=True, timeout=120)
            cwc = (json.loads(p.stdout or "{}").get("cluster") or {}) if p.returncode == 0 else {}
            warned = [ln for ln in p.stderr.splitlines()
                      if "records on mail and login ports in the last 10 min had neither end "
                         "in [analyzer] internal_networks (10.99.0.0/16)" in ln and
                         "this collector routed no record" in ln]
            check(p.returncode == 0 and cwc.get("flows_routed") == 0 and
                  cwc.get("flows_outside", 0) >= 100 and len(warned) >= 1,
                  f"a collector whose internal_networks miss the site routes nothing "
                  f"({cwc.get('flows_routed')}), counts {cwc.get('flows_outside')} records "
                  f"outside and warns {len(warned)} times (rc {p.returncode})")
            for r in reports:
                cl = r.get("cluster") or {}
                print(f"collector: bus {json.dumps(cl.get('bus'))}")
                check(cl.get("batches_dropped", 1) == 0 and cl.get("flows_routed", 0) > 0,
                      f"a collector routed {cl.get('flows_routed')} flows, dropped "
                      f"{cl.get('batches_dropped')} batches")
            # the history readers have read everything
            history_settle(spamflowctl, [sock[a] for a in analyzers if a in procs])
        finally:
            for name, p in procs.items():
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
            for name, p in procs.items():
                try:
                    rc = p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    rc = "hung"
                check(rc == 0, f"{name} exited {rc} on SIGTERM")
            if sys.exc_info()[0] is not None:
                # an exception is on its way out (a node that stopped answering): what the
                # nodes said is all there is to read it by
                for name, f in logs.items():
                    f.seek(0)
                    print(f"---- {name}\n" + f.read()[-3000:], flush=True)
    # The history: every analyzer's store holds every partition's readings (cluster/wire.h
    # history messages, each node its own durable consumer), whichever node analyzed the
    # partition at the time, although a2 was killed and the others restarted: the three
    # stores hold the same readings of each offender, and at the reference daemon's slice
    # times. (Their values at a slice's end may differ from the reference's: there the
    # split capture's other collector may still have flows of that slice on their way.)
    hosts = sorted({h for h, _ in want_off})
    ref_pts = store_points(spamflowd, spamflowctl, tmp, base, f"{tmp}/ref-history", hosts)
    cap_end = max((t for v in ref_pts.values() for t in v), default=0)
    stores = {}
    kept = [a for a in ("a1", "a2", "a3") if a in procs]  # not SIGKILLed at the end
    for a in kept:
        got = store_points(spamflowd, spamflowctl, tmp, base, f"{tmp}/{a}-history", hosts)
        # a node's own last readings at its exit are at the wall clock: not the capture's
        stores[a] = {h: {t: v for t, v in pts.items() if t <= cap_end} for h, pts in got.items()}
    for host in hosts:
        r, g = ref_pts.get(host, {}), stores[kept[0]].get(host, {})
        same = all(stores[a].get(host) == g for a in kept[1:])
        common = set(r) & set(g)
        equal = sum(1 for t in common if r[t] == g[t])
        # the reference's slice times the cluster's stores lack, in s from the first (to
        # tell a handover's gap from the capture's start or end)
        t0 = min(r, default=0)
        lack = sorted((t - t0) // 1000 for t in set(r) - set(g))
        check(g and same and len(common) >= 0.95 * len(r),
              f"{host}: the same {len(g)} readings in the stores of {', '.join(kept)} "
              f"({'yes' if same else 'NO: ' + str({a: len(stores[a].get(host, {})) for a in stores})}"
              f"); {len(common)} of the reference's {len(r)} slice times, values equal at "
              f"{equal}; lacking at +{lack[:12]} s")
    if failures:
        for name, f in logs.items():
            f.seek(0)
            print(f"---- {name}\n" + f.read()[-3000:])
        sys.exit(f"{len(failures)} checks failed")
    print("all checks passed")


if __name__ == "__main__":
    main()
