#!/usr/bin/env python3
"""The quarantine end to end, with real parts: three network namespaces joined by veth
pairs, "bot" (10.66.0.2) -> "router" (forwards; the ruleset of doc/actions.md drops and logs
TCP 25/465/587 from @spamflow_quarantine) -> "internet" (one listener on 25 and one on 443
answering every address of 198.51.100.0/24: `ip route add local`). softflowd watches the
router's bot-side interface and exports NetFlow v9 to spamflowd in the router namespace.
The bot really connects to port 25 of many addresses: smtp-fanout is raised, the daemon
puts the bot in the set, and its new connections to 25 fail while 443 still works; after
`spamflowctl release` 25 works again; then the bot offends anew (after its offence cleared):
quarantined again, and when that clears (on_clear = delete) 25 works again. Prints the time
from the crossing flow to the set (the daemon's stats) and from the bot's crossing connection
to the set (this test's clock, with softflowd's export delay). Namespaces are removed even
on failure.

usage: quarantine_netns.py SPAMFLOWD SPAMFLOWCTL
       (internal: --listen | --fill RATE | --connect PORT FIRST N TIMEOUT)"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nftutil import Daemon, nft, set_members  # noqa: E402
from sinktest import require_programs  # noqa: E402

BOT = "10.66.0.2"
SET = ("inet", "filter", "spamflow_quarantine")

# The ruleset of doc/actions.md, as documented (its own base chain on the forward hook).
RULESET = """
table inet filter {
	set spamflow_quarantine {
		type ipv4_addr
		flags timeout
	}
	set spamflow_quarantine6 {
		type ipv6_addr
		flags timeout
	}
	chain spamflow_forward {
		type filter hook forward priority filter - 10; policy accept;
		ip saddr @spamflow_quarantine tcp dport { 25, 465, 587 } limit rate 10/minute burst 20 packets log prefix "spamflow-quarantine: " level warn
		ip saddr @spamflow_quarantine tcp dport { 25, 465, 587 } counter drop
		ip6 saddr @spamflow_quarantine6 tcp dport { 25, 465, 587 } limit rate 10/minute burst 20 packets log prefix "spamflow-quarantine: " level warn
		ip6 saddr @spamflow_quarantine6 tcp dport { 25, 465, 587 } counter drop
	}
}
"""

CONF = """
[http]
listen =
[control]
socket = {dir}/control.sock
[state]
file =
[analyzer]
slice = 1
short_window = 2
long_window = 4
[smtp-fanout]
short = 20
long = 20
[smtp-blocked]
enabled = false
[smtp-novelty]
enabled = false
[alerts]
hold = 1
update_interval = 0
[quarantine]
set = inet filter spamflow_quarantine
timeout = 600
on_clear = delete
"""


# ---- the parts that run inside the namespaces ----

def listen():
    """internet: accept on 25 and 443, say hello, close; until killed."""
    def serve(port):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", port))
        s.listen(512)
        while True:
            c, _ = s.accept()
            try:
                c.sendall(b"220 hello\r\n" if port == 25 else b"hello\r\n")
            except OSError:
                pass
            c.close()

    for p in (25, 443):
        threading.Thread(target=serve, args=(p,), daemon=True).start()
    print("listening", flush=True)
    while True:
        time.sleep(3600)


def fill(rate):
    """bot: small UDP datagrams to the router's discard port, rate a second, until killed.
    softflowd (1.1.0) opens its live capture without libpcap's immediate mode, and with
    TPACKET_V3 a quiet interface hands it nothing until a block of ~1,800 frames fills
    (`softflowctl statistics`: "Packets processed: 0" while libpcap received hundreds; see
    irino/softflowd pull request 71): this traffic fills a block every ~0.45 s. It is UDP
    to an internal address, port 9: no heuristic counts it."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    t0, n = time.monotonic(), 0
    while True:
        s.sendto(b"x" * 16, ("10.66.0.1", 9))
        n += 1
        if n % 100 == 0:
            ahead = n / rate - (time.monotonic() - t0)
            if ahead > 0:
                time.sleep(ahead)


def connect(port, first, n, timeout):
    """bot: connect to port of 198.51.100.first .. first+n-1 at once; print the addresses
    that answered."""
    ok = []

    def one(addr):
        try:
            with socket.create_connection((addr, port), timeout=timeout) as c:
                if c.recv(16):
                    ok.append(addr)
        except OSError:
            pass

    th = [threading.Thread(target=one, args=(f"198.51.100.{first + i}",)) for i in range(n)]
    for t in th:
        t.start()
    for t in th:
        t.join()
    print(json.dumps(sorted(ok)), flush=True)


# ---- the test ----

def sh(*cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"FAIL: {' '.join(cmd)}: {r.stderr.strip()}")
    return r.stdout


def check(cond, what):
    if not cond:
        raise SystemExit(f"FAIL: {what}")
    print("ok:", what, flush=True)


class Net:
    def __init__(self):
        tag = f"sfq{os.getpid()}"
        self.bot, self.router, self.inet = f"{tag}-bot", f"{tag}-router", f"{tag}-inet"
        self.made = []

    def up(self):
        for ns in (self.bot, self.router, self.inet):
            sh("ip", "netns", "add", ns)
            self.made.append(ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "link", "add", "b0", "netns", self.bot, "type", "veth", "peer", "name", "rb0",
           "netns", self.router)
        sh("ip", "link", "add", "ri0", "netns", self.router, "type", "veth", "peer", "name",
           "i0", "netns", self.inet)
        sh("ip", "-n", self.bot, "addr", "add", f"{BOT}/24", "dev", "b0")
        sh("ip", "-n", self.router, "addr", "add", "10.66.0.1/24", "dev", "rb0")
        sh("ip", "-n", self.router, "addr", "add", "203.0.113.1/30", "dev", "ri0")
        sh("ip", "-n", self.inet, "addr", "add", "203.0.113.2/30", "dev", "i0")
        for ns, dev in ((self.bot, "b0"), (self.router, "rb0"), (self.router, "ri0"),
                        (self.inet, "i0")):
            sh("ip", "-n", ns, "link", "set", dev, "up")
        sh("ip", "-n", self.bot, "route", "add", "default", "via", "10.66.0.1")
        sh("ip", "-n", self.inet, "route", "add", "default", "via", "203.0.113.1")
        sh("ip", "-n", self.router, "route", "add", "198.51.100.0/24", "via", "203.0.113.2")
        # every address of 198.51.100.0/24 is the internet namespace's own
        sh("ip", "-n", self.inet, "route", "add", "local", "198.51.100.0/24", "dev", "lo")
        sh("ip", "netns", "exec", self.router, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")

    def down(self):
        for ns in self.made:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        self.made = []


def bot_connect(net, port, first, n, timeout=1.0):
    out = sh("ip", "netns", "exec", net.bot, sys.executable, os.path.abspath(__file__),
             "--connect", str(port), str(first), str(n), str(timeout))
    return json.loads(out)


def wait(what, cond, timeout, d):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.02)
    st = d.ctl("stats")
    raise SystemExit(f"FAIL: {what} within {timeout} s\n--- collector: "
                     f"{json.dumps(st.get('collector'))}\n--- analyzer: "
                     f"{json.dumps(st.get('analyzer'))}\n--- daemon log:\n" + d.log())


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--listen":
        return listen()
    if len(sys.argv) > 1 and sys.argv[1] == "--fill":
        return fill(int(sys.argv[2]))
    if len(sys.argv) > 1 and sys.argv[1] == "--connect":
        return connect(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]),
                       float(sys.argv[5]))
    spamflowd, spamflowctl = sys.argv[1:3]
    require_programs("ip", "nft", "softflowd", "sysctl")
    t_start = time.monotonic()
    net = Net()
    tmp = tempfile.mkdtemp(prefix="spamflow-qnetns-")
    procs = []
    d = None
    try:
        net.up()
        with open(os.path.join(tmp, "ruleset.nft"), "w") as f:
            f.write(RULESET)
        nft("-f", os.path.join(tmp, "ruleset.nft"), ns=net.router)
        conf = os.path.join(tmp, "spamflow.conf")
        with open(conf, "w") as f:
            f.write(CONF.format(dir=tmp))
        lst = subprocess.Popen(["ip", "netns", "exec", net.inet, sys.executable,
                                os.path.abspath(__file__), "--listen"],
                               stdout=subprocess.PIPE, text=True)
        procs.append(lst)
        check(lst.stdout.readline().strip() == "listening", "listeners on 25 and 443")
        port = 20555
        d = Daemon(spamflowd, spamflowctl, conf, port, os.path.join(tmp, "control.sock"),
                   ns=net.router)
        sf = subprocess.Popen(["ip", "netns", "exec", net.router, "softflowd", "-d", "-i", "rb0",
                               "-n", f"127.0.0.1:{port}", "-v", "9", "-t", "maxlife=1",
                               "-t", "expint=1", "-t", "tcp.fin=1", "-t", "tcp.rst=1",
                               "-t", "tcp=1", "-t", "general=1",
                               "-p", os.path.join(tmp, "softflowd.pid"),
                               "-c", os.path.join(tmp, "softflowd.ctl")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        procs.append(sf)
        procs.append(subprocess.Popen(["ip", "netns", "exec", net.bot, sys.executable,
                                       os.path.abspath(__file__), "--fill", "4000"]))
        time.sleep(0.5)  # softflowd opens its capture
        check(sf.poll() is None, "softflowd runs on the router's bot-side interface")

        # phase 1: the bot sends mail to 30 MXs; they all answer
        ok = bot_connect(net, 25, 1, 30)
        t_conn = time.monotonic()
        check(len(ok) == 30, f"before: the bot reaches port 25 of 30 addresses ({len(ok)})")
        wait("the bot in the set", lambda: BOT in set_members(*SET, ns=net.router), 15, d)
        t_set = time.monotonic()
        st = d.quarantine_stats()
        print(f"latency: crossing flow received -> host in the nft set: "
              f"{st['last_latency_ms']} ms (stats last_latency_ms; max {st['max_latency_ms']} ms)",
              flush=True)
        print(f"latency: the bot's connections done -> host in the set: "
              f"{(t_set - t_conn) * 1000:.0f} ms (softflowd's export delay included)",
              flush=True)
        check(0 <= st["last_latency_ms"] < 1000, "the set holds the host within 1 s of the "
              "crossing flow's arrival")
        blocked = bot_connect(net, 25, 101, 3)
        web = bot_connect(net, 443, 101, 3)
        check(blocked == [], "quarantined: new connections to port 25 fail")
        check(len(web) == 3, "quarantined: port 443 still works")
        cnt = nft("list", "chain", "inet", "filter", "spamflow_forward", ns=net.router).stdout
        drop = [l for l in cnt.splitlines() if "ip saddr" in l and l.strip().endswith("drop")]
        check(len(drop) == 1 and "counter packets 0 " not in drop[0],
              f"the ruleset's drop rule counted the bot's SYNs: {drop}")

        # release: 25 works again, and the offence going on does not put it back
        r = d.ctl("release", BOT)
        check(r["released"] is True and BOT not in set_members(*SET, ns=net.router),
              "spamflowctl release: out of the set")
        ok = bot_connect(net, 25, 111, 3)
        check(len(ok) == 3, "released: port 25 works again")

        # phase 2: the offence clears; the bot offends anew -> quarantined again
        wait("the offence cleared", lambda: d.ctl("offenders")["offenders"] == [], 20, d)
        ok = bot_connect(net, 25, 121, 30)
        check(len(ok) == 30, "a fresh offence: the bot reaches 30 addresses first")
        wait("the bot in the set again", lambda: BOT in set_members(*SET, ns=net.router),
             15, d)
        check(bot_connect(net, 25, 161, 3) == [], "quarantined again: port 25 fails")
        # the bot stops; the alert clears (on_clear = delete): out of the set
        wait("cleared and deleted", lambda: BOT not in set_members(*SET, ns=net.router), 25, d)
        deleted = [a for a in d.actions() if a["action"] == "quarantine-delete"]
        check(len(deleted) == 1 and deleted[0]["detail"].startswith("cleared"),
              "deleted on cleared, recorded")
        ok = bot_connect(net, 25, 171, 3)
        check(len(ok) == 3, "cleared: port 25 works again")
        st = d.quarantine_stats()
        check(st["added"] == 2 and st["released"] == 1 and st["deleted"] == 1
              and st["errors"] == 0 and st["dropped"] == 0,
              f"stats: added 2, released 1, deleted 1, no errors ({st})")
        print(f"latency over the run: max {st['max_latency_ms']} ms, last "
              f"{st['last_latency_ms']} ms; test took {time.monotonic() - t_start:.1f} s",
              flush=True)
        check(d.stop() == 0, "spamflowd exits cleanly")
        d = None
        print("PASS", flush=True)
    except BaseException:
        if d is not None:
            print("--- daemon log:\n" + d.log(), flush=True)
        raise
    finally:
        if d is not None:
            d.stop()
        for p in procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    p.kill()
        net.down()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
