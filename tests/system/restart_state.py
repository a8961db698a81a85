#!/usr/bin/python3
"""Restart without loss, against the real daemon on loopback (issue 7).

An IPFIX exporter (this script: one UDP socket whose source port stays the same, as a router's
does) sends its template once, then data. spamflowd runs live with a state file in a temp
dir:

1. SIGTERM in the middle of two bots' runs: one bot was raised before the restart, one
   crosses its threshold only after it. After the restart, with no template resent: the
   first data sets decode, the records lost while the daemon was down show as exactly that
   sequence loss, the first bot gets no second `raised`, the second is raised once, and both
   counts continue (60 destinations = 30 before + 30 after).
2. SIGKILL: with snapshot_interval = 1 s, what was sent more than a snapshot interval
   before the kill is still there after the restart.
3. A state file that is corrupted (one byte flipped), truncated, garbage, too old, or has a
   valid checksum over mutated contents: reported, not used (or, for mutations the loaders
   accept, used consistently), never a crash.

usage: restart_state.py SPAMFLOWD
"""
import atexit
import hashlib
import json
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time

import testdir
from netutil import free_udp_port

failures = []
started = []  # every daemon, killed at exit whatever happens
ctl_exe = None  # spamflowctl (argv[2])


@atexit.register
def _kill_daemons():
    for p in started:
        if p.poll() is None:
            p.kill()


def check(cond, what):
    print(("ok    " if cond else "FAIL  ") + what, flush=True)
    if not cond:
        failures.append(what)


# ---- an IPFIX exporter ----

# sourceIPv4Address, destinationIPv4Address, sourceTransportPort, destinationTransportPort,
# protocolIdentifier, tcpControlBits, packetDeltaCount, octetDeltaCount,
# flowStartMilliseconds, flowEndMilliseconds
FIELDS = [(8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (6, 1), (2, 4), (1, 4), (152, 8), (153, 8)]
TID = 256


class Exporter:
    def __init__(self, port):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.dst = ("127.0.0.1", port)
        self.seq = 0  # RFC 7011: data records sent before this message

    def message(self, sets, nrec):
        body = b"".join(sets)
        hdr = struct.pack(">HHIII", 10, 16 + len(body), int(time.time()), self.seq, 1)
        self.seq += nrec
        return hdr + body

    def template(self):
        rec = struct.pack(">HH", TID, len(FIELDS)) + b"".join(
            struct.pack(">HH", ie, ln) for ie, ln in FIELDS)
        s = struct.pack(">HH", 2, 4 + len(rec)) + rec
        self.sock.sendto(self.message([s], 0), self.dst)

    def data(self, flows, send=True):
        """flows: (src, dst) IPv4 text pairs, port 25, a completed session each."""
        now = int(time.time() * 1000)
        sent = 0
        for i in range(0, len(flows), 10):
            chunk = flows[i:i + 10]
            recs = b"".join(
                socket.inet_aton(s) + socket.inet_aton(d) +
                struct.pack(">HHBBIIQQ", 40000 + j, 25, 6, 0x1b, 12, 5000, now - 2000, now)
                for j, (s, d) in enumerate(chunk))
            msg = self.message([struct.pack(">HH", TID, 4 + len(recs)) + recs], len(chunk))
            if send:
                self.sock.sendto(msg, self.dst)
            sent += len(chunk)
            time.sleep(0.002)
        return sent


def fanout(src, first, n):
    return [(src, f"198.51.{100 + k // 250}.{1 + k % 250}") for k in range(first, first + n)]


# ---- the daemon ----

class Daemon:
    def __init__(self, exe, tmp, port, state, interval):
        self.sock = os.path.join(tmp, "control.sock")
        self.alerts = os.path.join(tmp, f"alerts-{time.monotonic_ns()}.json")
        conf = os.path.join(tmp, "spamflow.conf")
        with open(conf, "w") as f:
            f.write(f"[http]\nlisten =\n[control]\nsocket = {self.sock}\n"
                    f"[state]\nfile = {state}\nsnapshot_interval = {interval}\n")
        self.log = open(os.path.join(tmp, "daemon.log"), "a+")
        self.log_start = self.log.tell()
        self.p = subprocess.Popen([exe, "--history=", "-c", conf, "-l", f"127.0.0.1:{port}", "--alerts",
                                   self.alerts, "--stats-interval", "0"],
                                  stdout=subprocess.DEVNULL, stderr=self.log)
        started.append(self.p)
        deadline = time.time() + 30
        while time.time() < deadline:
            # the log line, not the path: a previous daemon's socket file may still be there
            if "listening on" in self.text() and "control socket" in self.text():
                return
            if self.p.poll() is not None:
                break
            time.sleep(0.05)
        sys.exit("spamflowd did not start:\n" + self.text())

    def text(self):
        self.log.flush()
        with open(self.log.name) as f:
            f.seek(self.log_start)
            return f.read()

    def cmd(self, line):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
            c.settimeout(10)
            c.connect(self.sock)
            c.sendall(line.encode() + b"\n")
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = c.recv(65536)
                if not chunk:
                    break
                buf += chunk
        return json.loads(buf)

    def host_distinct(self, addr):
        r = self.cmd(f"host {addr}")
        if not r.get("ok", True) or "windows" not in r:
            return None
        for w in r["windows"]:
            if w["traffic"] == "smtp-external":
                return w["short"]["distinct"]
        return None

    def wait_distinct(self, addr, n, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.host_distinct(addr) == n:
                return True
            time.sleep(0.05)
        return False

    def session(self):
        r = self.cmd("exporters")
        rows = [e for e in r["exporters"] if e.get("domain") == 1]
        return rows[0] if rows else None

    def events(self):
        if not os.path.exists(self.alerts):
            return []
        with open(self.alerts) as f:
            return [json.loads(line) for line in f if line.strip()]

    def stop(self, sig=signal.SIGTERM):
        self.p.send_signal(sig)
        self.p.wait(timeout=30)
        return self.p.returncode


def raised(events, host):
    return [e for e in events if e["host"] == host and e["event"] == "raised"]


def rewrite(path, data):
    """Write data with a valid trailing SHA-256 (so only the loaders can refuse it)."""
    with open(path, "wb") as f:
        f.write(data + hashlib.sha256(data).digest())


def main():
    global ctl_exe
    exe, ctl_exe = sys.argv[1], sys.argv[2]
    tmp = testdir.mkdtemp("spamflow-restart-")
    state = os.path.join(tmp, "lib", "state")
    port = free_udp_port()
    exp = Exporter(port)
    bot_a, bot_b, bot_c = "10.9.9.1", "10.9.9.2", "10.9.9.3"

    # ---- 1. SIGTERM in the middle of a run ----
    d = Daemon(exe, tmp, port, state, 3600)
    check("no state file at" in d.text(), "first start: no state file, starts afresh")
    exp.template()
    time.sleep(0.1)
    exp.data(fanout(bot_a, 0, 60))  # crosses 50: raised before the restart
    exp.data(fanout(bot_b, 0, 30))  # under 50
    check(d.wait_distinct(bot_a, 60) and d.wait_distinct(bot_b, 30),
          "before the restart: 60 and 30 destinations counted")
    before = d.session()
    check(len(raised(d.events(), bot_a)) == 1, "bot A raised once before the restart")
    check(raised(d.events(), bot_b) == [], "bot B not raised before the restart")
    rc = d.stop()
    check(rc == 0, f"SIGTERM: exit 0 (got {rc})")
    check("state saved to" in d.text() and os.path.exists(state), "SIGTERM: state file written")
    check(not os.path.exists(state + ".tmp"), "no temporary file left behind")

    lost = exp.data(fanout("10.9.9.99", 0, 20), send=False)  # sent while the daemon is down

    d = Daemon(exe, tmp, port, state, 3600)
    text = d.text()
    check("restored state from" in text and "1 exporters, 1 domains, 1 templates" in text,
          "restart: exporter, domain and template restored")
    stats = d.cmd("stats")
    restored = stats.get("state", {}).get("restored", {})
    check(restored.get("result") == "restored" and restored.get("offenders") == 1,
          f"stats: state.restored says restored with 1 offender ({restored})")
    check(d.host_distinct(bot_a) == 60 and d.host_distinct(bot_b) == 30,
          "restart: both windows back with their counts before any datagram")
    sent = exp.data(fanout(bot_a, 60, 30)) + exp.data(fanout(bot_b, 30, 30))  # no template
    check(d.wait_distinct(bot_a, 90) and d.wait_distinct(bot_b, 60),
          "after the restart the counts continue: A 60+30 = 90, B 30+30 = 60")
    s = d.session()
    check(s is not None and s["records"] == sent,
          f"first data sets after the restart decoded without a template resend "
          f"({s and s['records']} of {sent})")
    check(s is not None and s["no_template_sets"] == 0, "no data set waited for a template")
    check(s is not None and s["seq_lost"] == lost,
          f"sequence continues: the {lost} records sent while down are the loss "
          f"({s and s['seq_lost']})")
    ev = d.events()
    check(raised(ev, bot_a) == [], "bot A: no second raised after the restart")
    rb = raised(ev, bot_b)
    check(len(rb) == 1, f"bot B: raised exactly once, after the restart ({len(rb)})")
    if rb:
        check(rb[0]["windows"][0]["distinct"] == 50,
              f"bot B raised at the crossing flow: 50 distinct "
              f"({rb[0]['windows'][0]['distinct']})")
    offs = d.cmd("offenders")
    hosts = sorted(o["host"] for o in offs.get("offenders", []))
    check(hosts == [bot_a, bot_b], f"offenders after the restart: A and B ({hosts})")
    check(d.stop() == 0, "second run exits 0")
    del before

    # ---- 2. SIGKILL loses at most the snapshot interval ----
    d = Daemon(exe, tmp, port, state, 1)
    exp.data(fanout(bot_c, 0, 20))
    check(d.wait_distinct(bot_c, 20), "bot C: 20 destinations")
    counted_ms = time.time() * 1000
    # wait for a snapshot taken after the flows were counted (one a second; the deadline
    # leaves room for slow fsyncs on a busy disk)
    deadline, st = time.time() + 15, {}
    while time.time() < deadline:
        st = d.cmd("stats")["state"]
        if st["last_ms"] > counted_ms:
            break
        time.sleep(0.1)
    check(st.get("last_ms", 0) > counted_ms and st["errors"] == 0,
          f"a snapshot followed within the interval ({st})")
    # Periodic snapshots are written by a forked child: its failure must come back to the
    # daemon (counted, logged with the reason) and writing must resume once it can.
    lib = os.path.dirname(state)
    saved = open(state, "rb").read()
    shutil.rmtree(lib)
    deadline = time.time() + 10
    while time.time() < deadline and d.cmd("stats")["state"]["errors"] == 0:
        time.sleep(0.1)
    st = d.cmd("stats")["state"]
    text = d.text()
    check(st["errors"] >= 1 and "No such file or directory" in text and
          "failed snapshots so far" in text,
          f"the writer's failure is counted and logged with its reason ({st['errors']} errors)")
    os.makedirs(lib)
    with open(state, "wb") as f:
        f.write(saved)
    n0 = st["snapshots"]
    deadline = time.time() + 10
    while time.time() < deadline and d.cmd("stats")["state"]["snapshots"] <= n0:
        time.sleep(0.1)
    st = d.cmd("stats")["state"]
    check(st["snapshots"] > n0 and os.path.exists(state),
          f"snapshots resume when the directory is back ({n0} -> {st['snapshots']})")
    check(st["last_pause_ms"] < 1000 and st["skipped"] >= 0,
          f"stats tell the fork's pause and skipped snapshots ({st})")
    d.stop(signal.SIGKILL)
    d = Daemon(exe, tmp, port, state, 1)
    n = d.host_distinct(bot_c)
    check(n == 20, f"after SIGKILL: bot C's 20 destinations restored from the snapshot ({n})")
    check(d.host_distinct(bot_a) == 90, "after SIGKILL: bot A still 90")
    check(d.stop() == 0, "exits 0")
    good = open(state, "rb").read()

    # ---- 3. files that must not be trusted ----
    def start_with(data, name, expect):
        with open(state, "wb") as f:
            f.write(data)
        dd = Daemon(exe, tmp, port, state, 3600)
        r = dd.cmd("stats")["state"]["restored"]["result"]
        # spamflowctl's text shows the nested object's members (it printed "restored=...")
        out = subprocess.run([ctl_exe, "-s", dd.sock, "stats"], capture_output=True,
                             text=True, timeout=10).stdout
        state_line = next((ln for ln in out.splitlines() if ln.startswith("state:")), "")
        check(f"restored.result={r}" in state_line and "=..." not in out,
              f"{name}: spamflowctl stats (text) says restored.result={r} ({state_line!r})")
        text = dd.text()
        alive = dd.p.poll() is None
        rc = dd.stop()
        ok = alive and rc == 0 and (r in expect)
        check(ok, f"{name}: daemon runs, restore result {r} (expected {'/'.join(expect)})")
        return text

    mid = len(good) // 2
    flipped = bytearray(good)
    flipped[mid] ^= 0x40
    t = start_with(bytes(flipped), "one byte flipped", ["invalid"])
    check("checksum mismatch" in t, "one byte flipped: the log says checksum mismatch")
    t = start_with(good[:mid], "truncated to half", ["invalid"])
    check("checksum mismatch" in t or "truncated" in t, "truncated: reported")
    start_with(b"", "empty file", ["invalid"])
    start_with(os.urandom(4096), "4 KiB of random bytes", ["invalid"])
    body = bytearray(good[:-32])
    struct.pack_into(">Q", body, 12, int(time.time() * 1000) - 2 * 3600 * 1000)
    rewrite(state, bytes(body))
    start_with(open(state, "rb").read(), "written 2 h ago (max_age 1 h)", ["too_old"])
    # valid checksums over mutated contents: the section loaders are the last line
    rnd = random.Random(7)
    for i in range(12):
        body = bytearray(good[:-32])
        for _ in range(rnd.choice([1, 1, 2, 8])):
            pos = rnd.randrange(24, len(body))
            body[pos] = rnd.randrange(256)
        start_with(bytes(body) + hashlib.sha256(bytes(body)).digest(),
                   f"mutation {i} with a valid checksum", ["invalid", "restored"])

    # the daemon never left state.tmp or crashed; the good file restores again
    start_with(good, "the good file again", ["restored"])

    if failures:
        print(f"\n{len(failures)} check(s) failed; daemon log: {tmp}/daemon.log")
        sys.exit(1)
    print("all checks passed")


if __name__ == "__main__":
    main()
