#!/usr/bin/env python3
"""Issue 17, the coordinator: cluster/coord.c on the real bus against a real three-server NATS
cluster on loopback (natsutil.py), with three nodes, each its own process
(tests/cluster/coord_check: a stand-in analyzer whose partition state is the list of flow
payloads it applied). Lease TTL 5 s, rounds of 1 s, node entries that outlive a dead node
(15 s).
  1. the 64 partitions get exactly one owner each, 20 to 22 per node, no partition ever
     acquired while another node still holds it (by the events' wall-clock times);
  2. flows published to n3's partitions; SIGKILL n3: its partitions are acquired by the
     others within 10 s (the time is printed), the new owners' state is the snapshot plus
     the replay: every payload once, in order;
  3. n3 starts again: its partitions come back (RELEASE on the holder, then ACQUIRED on n3
     with exactly the released snapshot and its seq), the flows after it from the next
     payload on, nothing missing or twice;
  4. alerts: the same event id sent by two "owners" (two msg ids) reaches the consumer
     (n1, group "ops") once; one of an old lease after the new one began is told apart; the counts in
     `status` say so;
  5. a request from n2 to n1 is answered through n1's main loop;
  6. every node quits cleanly (release snapshots stored, leases given up).

    cluster_coord.py COORD_CHECK"""
import json
import os
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from natsutil import NatsCluster  # noqa: E402

P = 64
TAKEOVER_MAX_S = 10.0


class Node:
    """A coord_check process; its JSON lines gathered by a thread."""

    def __init__(self, exe, urls, name, group, log):
        self.name = name
        self.events = []
        self.cond = threading.Condition()
        self.log = log
        self.proc = subprocess.Popen([exe, urls, name, group], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=log, text=True)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for line in self.proc.stdout:
            try:
                ev = json.loads(line)
            except ValueError:
                ev = {"ev": "garbage", "line": line}
            with self.cond:
                self.events.append(ev)
                self.cond.notify_all()

    def send(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def wait_for(self, pred, timeout, what):
        """The first event from the current end on that pred accepts."""
        deadline = time.monotonic() + timeout
        with self.cond:
            start = len(self.events)
            while True:
                for ev in self.events[start:]:
                    if pred(ev):
                        return ev
                start = len(self.events)
                left = deadline - time.monotonic()
                if left <= 0:
                    fail("%s: no %s within %.0f s" % (self.name, what, timeout))
                self.cond.wait(left)

    def command(self, line, answer, timeout=15):
        with self.cond:
            mark = len(self.events)
        self.send(line)
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for ev in self.events[mark:]:
                    if ev.get("ev") == answer:
                        return ev
                left = deadline - time.monotonic()
                if left <= 0:
                    fail("%s: no answer %s to %r" % (self.name, answer, line))
                self.cond.wait(left)

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def quit(self, timeout=30):
        self.send("quit")
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            fail("%s did not exit within %d s of quit" % (self.name, timeout))
        self.thread.join(5)
        return rc


cluster = None
nodes = {}


def fail(why):
    print("FAIL: " + why, flush=True)
    for n in nodes.values():
        if n.proc.poll() is None:
            n.proc.kill()
    if cluster is not None:
        cluster.fail(why)
    sys.exit(1)


def all_events():
    """Every node's events (including killed runs), in wall-clock order."""
    out = []
    for n in nodes.values():
        with n.cond:
            out.extend(n.events)
    for n in dead:
        out.extend(n.events)
    return sorted(out, key=lambda e: e["t"])


dead = []


def owners_now():
    """partition -> node from the events; also checks that no partition was ever acquired
    while its previous owner had not yet released or lost it."""
    owner = {}
    for ev in all_events():
        k, p = ev["ev"], ev.get("p")
        if k == "error":
            fail("%s reported: %s" % (ev["node"], ev["what"]))
        if k == "acquired":
            if p in owner and owner[p] != ev["node"]:
                fail("p%d acquired by %s at %d while %s still held it" % (
                    p, ev["node"], ev["t"], owner[p]))
            owner[p] = ev["node"]
        elif k in ("release", "lost") and owner.get(p) == ev["node"]:
            del owner[p]
        elif k == "killed":  # it holds nothing from here on (its leases still run)
            owner = {q: o for q, o in owner.items() if o != ev["node"]}
    return owner


def wait_settled(names, timeout, why):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        owner = owners_now()
        if len(owner) == P and set(owner.values()) <= set(names):
            counts = {n: sum(1 for o in owner.values() if o == n) for n in names}
            if all(20 <= c <= 22 for c in counts.values()) or len(names) < 3:
                return owner, counts
        time.sleep(0.2)
    fail("partitions did not settle (%s) within %d s: %s" % (why, timeout, owners_now()))


def state_of(node, p):
    """What node holds for p, from its events: the acquired snapshot, then the flows."""
    items = None
    for ev in node.events:
        if ev.get("p") != p:
            continue
        if ev["ev"] == "acquired":
            items = [x for x in ev["data"].split(",") if x]
        elif ev["ev"] == "flows" and items is not None:
            items.append(ev["payload"])
        elif ev["ev"] in ("release", "lost"):
            items = None
    return items


def expect_state(node, p, upto, timeout=15):
    want = ["m%d" % i for i in range(1, upto + 1)]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with node.cond:
            got = state_of(node, p)
        if got is not None and len(got) >= upto:
            break
        time.sleep(0.1)
    if got != want:
        fail("%s p%d: state %s, expected m1..m%d once each, in order" % (node.name, p, got,
                                                                         upto))


def main():
    global cluster
    exe = sys.argv[1]
    t0 = time.monotonic()
    cluster = NatsCluster(3, max_payload=1 << 20)
    cluster.start()
    cluster.wait_ready()
    urls = cluster.urls()
    print("NATS cluster ready in %.1f s: %s" % (time.monotonic() - t0, urls), flush=True)
    logpath = os.path.join(cluster.dir, "nodes.log")
    log = open(logpath, "a")

    def start(name, group=""):
        nodes[name] = Node(exe, urls, name, group, log)

    # 1. three nodes share the partitions
    start("n1", "ops")
    start("n2")
    start("n3")
    owner, counts = wait_settled(["n1", "n2", "n3"], 30, "three nodes")
    first = dict(owner)
    print("1. settled after %.1f s: %s" % (time.monotonic() - t0, counts), flush=True)
    time.sleep(2.5)  # two more rounds: nothing moves
    if owners_now() != first:
        fail("ownership moved without a reason")

    # 2. flows on n3's partitions, then n3 is killed
    mine = sorted(p for p, o in first.items() if o == "n3")[:4]
    for p in mine:
        ans = nodes["n1"].command("pub %d 1 20" % p, "published")
        if ans["taken"] != 20 or not ans["flushed"]:
            fail("publish: %s" % ans)
    for p in mine:
        expect_state(nodes["n3"], p, 20)
    time.sleep(1.5)  # periodic snapshots of m1..m20 stored
    for p in mine:
        nodes["n1"].command("pub %d 21 30" % p, "published")
    for p in mine:
        expect_state(nodes["n3"], p, 30)  # applied, maybe not in a snapshot yet
    theirs = sorted(p for p, o in first.items() if o == "n3")
    t_kill = time.time() * 1000
    nodes["n3"].kill()
    nodes["n3"].events.append({"ev": "killed", "node": "n3", "t": t_kill})
    dead.append(nodes.pop("n3"))
    print("2. n3 killed (SIGKILL) owning %d partitions" % len(theirs), flush=True)
    deadline = time.monotonic() + 20
    taken = {}
    while time.monotonic() < deadline and len(taken) < len(theirs):
        for ev in all_events():
            if ev["ev"] == "acquired" and ev["p"] in theirs and ev["t"] > t_kill:
                taken.setdefault(ev["p"], (ev["t"] - t_kill) / 1000.0)
        time.sleep(0.1)
    if len(taken) < len(theirs):
        fail("only %d of n3's %d partitions taken over" % (len(taken), len(theirs)))
    worst = max(taken.values())
    print("   takeover: all %d partitions acquired by n1/n2 within %.2f s of the SIGKILL "
          "(first %.2f s; lease TTL 5 s)" % (len(taken), worst, min(taken.values())),
          flush=True)
    if worst > TAKEOVER_MAX_S:
        fail("takeover took %.1f s (more than %.0f s)" % (worst, TAKEOVER_MAX_S))
    owner, counts = wait_settled(["n1", "n2"], 15, "n3 dead")
    print("   now %s" % counts, flush=True)
    for p in mine:
        expect_state(nodes[owner[p]], p, 30)
    print("   replay from the snapshots: m1..m30 once each on the new owners", flush=True)
    time.sleep(1.5)  # snapshots of m1..m30

    # 3. n3 returns: its partitions come back through release snapshots
    t_back = time.time() * 1000
    start("n3")
    owner, counts = wait_settled(["n1", "n2", "n3"], 30, "n3 back")
    if owner != first:
        fail("n3 back, but the ownership is not what it was: %s" % {
            p: (first[p], owner[p]) for p in owner if owner[p] != first[p]})
    print("3. n3 back: every partition where it was after %.1f s" % (
        (time.time() * 1000 - t_back) / 1000.0), flush=True)
    evs = [e for e in all_events() if e["t"] >= t_back]
    for p in theirs:
        rel = [e for e in evs if e["ev"] == "release" and e["p"] == p]
        acq = [e for e in evs if e["ev"] == "acquired" and e["p"] == p and e["node"] == "n3"]
        if len(rel) != 1 or len(acq) != 1:
            fail("p%d: %d releases, %d acquisitions by n3 after its return" % (p, len(rel),
                                                                                len(acq)))
        if acq[0]["data"] != rel[0]["data"] or acq[0]["seq"] != rel[0]["seq"]:
            fail("p%d: released %r at seq %d, n3 acquired %r at seq %d" % (
                p, rel[0]["data"], rel[0]["seq"], acq[0]["data"], acq[0]["seq"]))
        if acq[0]["t"] < rel[0]["t"]:
            fail("p%d acquired before it was released" % p)
    for p in mine:
        nodes["n1"].command("pub %d 31 35" % p, "published")
    for p in mine:
        expect_state(nodes["n3"], p, 35)
    print("   handover: n3 acquired exactly the released snapshots; m1..m35 once each",
          flush=True)

    # 4. alerts, fenced and deduplicated by n1's consumer
    c = nodes["n1"]
    with c.cond:
        mark = len(c.events)
    for who, cmd in (("n2", "alert 5 5 1 1000 a1"),   # the old owner
                     ("n3", "alert 5 9 1 1000 a2"),   # the new one replays it: duplicate
                     ("n2", "alert 5 5 1 1000 a1"),   # a retry: the stream drops it
                     ("n2", "alert 5 5 2 2000 a3"),   # the old owner goes on: told apart
                     ("n3", "alert 5 9 2 2000 a4")):  # the new owner's copy: duplicate
        ans = nodes[who].command(cmd, "alerted")
        if not ans["taken"] or not ans["flushed"]:
            fail("alert publish: %s" % ans)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        st = c.command("status", "status")["status"]["alerts"]
        if st["received"] >= 4:
            break
        time.sleep(0.2)
    time.sleep(0.5)
    st = c.command("status", "status")["status"]
    with c.cond:
        got = [(e["rev"], e["id"]) for e in c.events[mark:] if e["ev"] == "alert"]
    print("4. alerts delivered %s; counters %s" % (got, st["alerts"]), flush=True)
    # each event once, the first copy: the stream keeps one copy of an id, which is
    # delivered whoever sent it (coord_private.h)
    want = [(5, "p5-10.0.0.1-smtp-fanout-raised-1000-1000"),
            (5, "p5-10.0.0.2-smtp-fanout-raised-2000-2000")]
    if got != want:
        fail("alerts delivered %s, expected %s" % (got, want))
    a = st["alerts"]
    if (a["received"], a["delivered"], a["old_lease_late"], a["duplicates"]) != (4, 2, 1, 2):
        fail("alert counters %s" % a)
    for name in ("n2", "n3"):
        if any(e["ev"] == "alert" for e in nodes[name].events):
            fail("%s is no alert consumer but got alerts" % name)

    # 5. a request through the other node's main loop
    r = nodes["n2"].command("req n1 host 10.0.0.1", "reply")
    if r["error"] is not None or json.loads(r["data"]) != {"ok": True, "node": "n1",
                                                              "echo": "host 10.0.0.1"}:
        fail("request: %s" % r)
    print("5. request n2 -> n1 answered: %s" % r["data"], flush=True)
    # the status is n1's view, read from its mirror of the leases bucket: after the server
    # moved the mirror's consumer (a leader change under load), one partition read unowned
    # for a while, until the coordinator made the mirror again; it must converge
    t_status = time.monotonic()
    deadline = t_status + 20
    while True:
        parts = nodes["n1"].command("status", "status")["status"]["partitions"]
        if len(parts) == P and all(x["owner"] != "" for x in parts):
            break
        if time.monotonic() > deadline:
            fail("status partitions: %s" % parts)
        time.sleep(0.2)
    if time.monotonic() - t_status > 0.5:
        print("   (n1's status showed every partition owned after %.1f s)"
              % (time.monotonic() - t_status), flush=True)
    live = [x["node"] for x in st["nodes"] if x["live"]]
    if sorted(live) != ["n1", "n2", "n3"]:
        fail("status nodes live: %s" % st["nodes"])

    # the stream's stored time of every batch delivered (the lag in time is made of it):
    # known, and no older than this test (replays after takeovers deliver older ones)
    ages = [ev["age_ms"] for ev in all_events() if ev.get("ev") == "flows"]
    bad = [a for a in ages if not 0 <= a <= (time.monotonic() - t0 + 5) * 1000]
    if not ages or bad:
        fail("flows' stored times: %d delivered, ages out of range: %s" % (len(ages), bad[:10]))
    print("   stored times of %d batches delivered: %d-%d ms before delivery" % (
        len(ages), min(ages), max(ages)), flush=True)

    # 6. everyone quits
    for name in ("n1", "n2", "n3"):
        rc = nodes[name].quit()
        if rc != 0:
            fail("%s exited %d (see %s)" % (name, rc, logpath))
    print("6. all nodes quit cleanly after %.1f s in all" % (time.monotonic() - t0),
          flush=True)
    log.close()
    cluster.close()
    print("PASS")


if __name__ == "__main__":
    main()
