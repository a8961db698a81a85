"""What the one-server cluster tests (cluster-handover, cluster-backlog, cluster-tls) share:
their checks, the single daemon's raised alerts they compare with, polling, and how they stop
their nodes and report.

    run = ClusterRun("handover")         # run.tmp: the test's directory
    ref = run.reference(spamflowd, conf, capture)
    run.check(cond, "what")
    ...
    run.stop()                           # SIGTERM every node started with run.start()
    run.finish()                         # exit 1 with the logs' tails if a check failed
"""
import collections
import os
import signal
import subprocess
import sys
import time

import testdir
from cluster_e2e import events, key  # the same events as cluster-e2e compares

PARTITIONS = 8  # the one-server tests' partitions: few, so that takeovers are quick


def raised(evs):
    """Each raised event's (host, reason, trigger, crossing value), with its count."""
    return collections.Counter(key(e)[1:] for e in evs if e["event"] == "raised")


def wait(fn, timeout):
    """fn() until it is true or timeout seconds passed; its last value."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(0.3)
    return fn()


class ClusterRun:
    def __init__(self, name):
        self.tmp = testdir.mkdtemp(f"spamflow-{name}-")
        self.failures = []
        self.procs, self.logs = {}, {}

    def check(self, cond, what):
        print(("ok    " if cond else "FAIL  ") + what, flush=True)
        if not cond:
            self.failures.append(what)

    def reference(self, spamflowd, conf, capture):
        """The raised set of one daemon replaying capture alone (checked non-trivial)."""
        path = os.path.join(self.tmp, "ref.json")
        subprocess.run([spamflowd, "-c", conf, "--state=", "--history=", "--replay", capture,
                        "--alerts", path], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        ref = raised(events(path))
        self.check(sum(ref.values()) >= 10, f"the reference raised {sum(ref.values())} alerts")
        return ref

    def node_conf(self, base, name, nats, roles, sinks=None, cluster=""):
        """<tmp>/<name>.conf: base, the node's control socket, no HTTP, a JSON sink when
        sinks names a file, then [cluster] on the servers nats with its name, roles, 8
        partitions, 1 replica, a 3 s lease and the keys in `cluster`; its path."""
        path = os.path.join(self.tmp, name + ".conf")
        with open(path, "w") as f:
            f.write(base)
            f.write(f"\n[control]\nsocket = {self.tmp}/{name}.sock\n[http]\nlisten =\n")
            if sinks:
                f.write(f"\n[sinks]\njson = {sinks}\n")
            f.write(f"\n[cluster]\nnats = {nats}\nnode = {name}\nroles = {roles}\n"
                    f"partitions = {PARTITIONS}\nreplicas = 1\nlease_ttl = 3\n{cluster}")
        return path

    def start(self, name, argv):
        """A node, its stderr in <tmp>/<name>.log."""
        self.logs[name] = open(os.path.join(self.tmp, name + ".log"), "a+")
        self.procs[name] = subprocess.Popen(argv, stdout=subprocess.DEVNULL,
                                            stderr=self.logs[name])

    def log(self, name):
        return open(os.path.join(self.tmp, name + ".log")).read()

    def stop(self):
        """SIGTERM every node still running; SIGKILL after 20 s."""
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()

    def finish(self, tail=25):
        if self.failures:
            print(f"{len(self.failures)} check(s) failed; logs in {self.tmp}")
            for name in sorted(self.logs):
                print(f"--- {name}.log (tail)")
                self.logs[name].seek(0)
                print("".join(self.logs[name].readlines()[-tail:]))
            sys.exit(1)
        print("all checks passed")
