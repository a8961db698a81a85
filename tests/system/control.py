#!/usr/bin/python3
"""The control socket against the real daemon: spamflowd runs live on a loopback UDP port
with its control socket in a temp dir; the export datagrams of a capture are sent to it, and
spamflowctl's offenders, host, exporters and stats (text and --json) must show the alert the
capture raises and the counters it made. Then: forget drops a host; reload with a changed
threshold takes effect without losing window state; a broken config is refused and the daemon
keeps running; hostile clients (a line over the limit, binary garbage, 1000 connections at
once, a client that never reads) do not stop it collecting or answering others.

usage: control.py SPAMFLOWD SPAMFLOWCTL CAPTURE
"""
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

import testdir
from netutil import free_udp_port

HOST = "192.168.1.66"  # softflowd-ipfix.pcap: smtp-blocked with the default config
failures = []


def check(cond, what):
    print(("ok    " if cond else "FAIL  ") + what)
    if not cond:
        failures.append(what)


def datagrams(path):
    data = open(path, "rb").read()
    endian = "<" if data[:4] == b"\xd4\xc3\xb2\xa1" else ">"
    linktype = struct.unpack(endian + "I", data[20:24])[0]
    off, out = 24, []
    while off + 16 <= len(data):
        _, _, incl, _ = struct.unpack(endian + "IIII", data[off:off + 16])
        pkt = data[off + 16:off + 16 + incl]
        off += 16 + incl
        ip = pkt[14:] if linktype == 1 else pkt
        udp = ip[(ip[0] & 15) * 4:]
        out.append(udp[8:struct.unpack(">H", udp[4:6])[0]])
    return out


class Daemon:
    def __init__(self, spamflowd, ctl, tmp, extra_conf=""):
        self.ctl = ctl
        self.sock = os.path.join(tmp, "run", "control.sock")
        self.port = free_udp_port()
        self.conf = os.path.join(tmp, "spamflow.conf")
        self.write_conf(extra_conf)
        self.log = open(os.path.join(tmp, "daemon.log"), "w+")
        self.p = subprocess.Popen([spamflowd, "--state=", "--history=", "-c", self.conf, "-l", f"127.0.0.1:{self.port}",
                                   "--stats-interval", "0"],
                                  stdout=subprocess.DEVNULL, stderr=self.log)
        for _ in range(100):
            if os.path.exists(self.sock):
                return
            if self.p.poll() is not None:
                break
            time.sleep(0.05)
        # say why: the daemon's own words (a port taken meanwhile by a parallel test, ...)
        self.log.seek(0)
        sys.exit("spamflowd did not create its control socket (exit status %s); its log:\n%s"
                 % (self.p.poll(), self.log.read()[-3000:]))

    def write_conf(self, extra):
        # no HTTP endpoint unless extra asks for one: not the system's 127.0.0.1:9300, which a
        # running spamflowd, or a parallel test, may hold
        with open(self.conf, "w") as f:
            f.write("[control]\n"
                    f"socket = {self.sock}\n"
                    "max_clients = 64\nidle_timeout = 3\nmax_request = 4096\n"
                    "max_output = 256K\n" + extra +
                    ("" if "[http]" in extra else "\n[http]\nlisten =\n"))

    def run(self, *args, json_out=False):
        cmd = [self.ctl, "-s", self.sock] + (["--json"] if json_out else []) + list(args)
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=30,
                           env=dict(os.environ, COLUMNS="200"))
        return p.returncode, p.stdout, p.stderr

    def jq(self, *args):
        rc, out, err = self.run(*args, json_out=True)
        if not out.strip():
            raise RuntimeError(f"{args}: rc {rc}, no output: {err}")
        return rc, json.loads(out)

    def alive(self):
        return self.p.poll() is None

    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        return self.p.wait(timeout=20)


def send_all(port, dgrams):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for d in dgrams:
        s.sendto(d, ("127.0.0.1", port))
    s.close()


def raw(sock_path, payload, read=True, timeout=5):
    """Send payload on a fresh connection; return the reply lines until EOF or timeout."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(timeout)
    s.connect(sock_path)
    s.sendall(payload)
    if not read:
        return s
    buf = b""
    try:
        while True:
            b = s.recv(65536)
            if not b:
                break
            buf += b
    except socket.timeout:
        pass
    s.close()
    return buf.split(b"\n")


def main():
    spamflowd, ctl, capture = sys.argv[1:4]
    tmp = testdir.mkdtemp("spamflow-ctl-")
    os.chmod(tmp, 0o755)
    dgrams = datagrams(capture)
    d = Daemon(spamflowd, ctl, tmp)
    try:
        st = os.stat(os.path.dirname(d.sock))
        check(oct(st.st_mode & 0o777) == "0o750", "socket directory has mode 0750")
        check(oct(os.stat(d.sock).st_mode & 0o777) == "0o660", "socket has mode 0660")

        send_all(d.port, dgrams)
        time.sleep(0.5)

        # offenders: text and JSON
        rc, out, err = d.run("offenders")
        check(rc == 0 and HOST in out and "smtp-blocked" in out and "SEVERITY" in out,
              f"offenders (text) lists {HOST} smtp-blocked")
        print(out, end="")
        rc, j = d.jq("offenders")
        offs = [(o["host"], o["reason"]) for o in j["offenders"]]
        check(rc == 0 and j["ok"] and j["version"] == 1 and (HOST, "smtp-blocked") in offs,
              "offenders --json has the alert and the protocol version")
        rc, j = d.jq("offenders", "reason=smtp-fanout")
        check(rc == 0 and all(o["reason"] == "smtp-fanout" for o in j["offenders"]),
              "offenders reason= filters")
        rc, j = d.jq("offenders", "limit=0")
        check(j["shown"] == 0 and j["total"] >= 1, "offenders limit=0 shows none, counts all")
        # since=: seconds, a duration or a time, as history's and host's
        all_offs = sorted(offs)
        for since in ("3600", "1h", time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                  time.gmtime(time.time() - 3600))):
            rc, j = d.jq("offenders", "since=" + since)
            got = sorted((o["host"], o["reason"]) for o in j.get("offenders", []))
            check(rc == 0 and got == all_offs,
                  f"offenders since={since}: the same {len(all_offs)} as without it ({got})")
        rc, j = d.jq("offenders", "since=" + time.strftime(
            "%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600)))
        check(rc == 0 and j["offenders"] == [], "offenders since= an hour from now: none")

        # host
        rc, out, err = d.run("host", HOST)
        check(rc == 0 and "smtp-blocked" in out and "active" in out and "TOP DESTINATION" in out,
              f"host {HOST} (text) explains the alert")
        print(out, end="")
        rc, j = d.jq("host", HOST)
        win = {w["traffic"]: w for w in j["windows"]}
        check("smtp-external" in win and win["smtp-external"]["long"]["distinct"] >= 30,
              "host --json has the smtp-external window counts")
        reasons = {r["reason"]: r for r in j["reasons"]}
        check(reasons.get("smtp-blocked", {}).get("state") == "active",
              "host --json: smtp-blocked is active")
        long_before = win["smtp-external"]["long"]["distinct"]
        rc, out, err = d.run("host", "203.0.113.250")
        check(rc == 1 and "nothing is held" in err, "host of an unknown address: exit 1")

        # exporters, stats
        rc, out, err = d.run("exporters")
        check(rc == 0 and "127.0.0.1:" in out and str(len(dgrams)) in out,
              "exporters (text) shows the exporter and its datagrams")
        rc, j = d.jq("exporters")
        check(sum(e["datagrams"] for e in j["exporters"]) == len(dgrams),
              "exporters --json counts every datagram")
        rc, out, err = d.run("stats")
        check(rc == 0 and "listener:" in out and "kernel_drops=" in out and "control:" in out,
              "stats (text) shows listener, kernel drops and control counters")
        rc, j = d.jq("stats")
        check(j["listener"]["datagrams"] == len(dgrams) and j["totals"]["datagrams"] == len(dgrams)
              and j["analyzer"]["events_raised"] >= 1 and "control" in j and "sinks" in j,
              "stats --json: receive, decode, analyzer, sinks, control")

        # usage errors and a daemon that is not there
        rc, out, err = d.run("bogus")
        check(rc == 2 and "unknown command" in err, "unknown command: exit 2 (checked locally)")
        rc, out, err = d.run("offenders", "limit=x")
        check(rc == 2, "bad argument: exit 2")
        p = subprocess.run([ctl, "-s", os.path.join(tmp, "nothing.sock"), "offenders"],
                           capture_output=True, text=True)
        check(p.returncode == 3 and "is spamflowd running?" in p.stderr,
              "no daemon: exit 3 and a clear message")
        rc, out, err = d.run("help")
        check(rc == 0 and "forget ADDR" in out, "help lists the commands")

        # reload: a changed threshold takes effect, the windows stay
        d.write_conf("[smtp-fanout]\nshort = 20\n")
        rc, j = d.jq("reload")
        check(rc == 0 and "smtp-fanout.short" in j["applied"], "reload applies smtp-fanout.short")
        rc, j = d.jq("host", HOST)
        r = {x["reason"]: x for x in j["reasons"]}
        w = {x["traffic"]: x for x in j["windows"]}
        check(r["smtp-fanout"]["threshold"]["short"] == 20, "host shows the new threshold")
        check(w["smtp-external"]["long"]["distinct"] == long_before,
              "reload kept the window state")
        rc, j = d.jq("config")
        check(j["config"]["smtp-fanout"]["short"] == "20", "config shows the reloaded value")
        d.write_conf("[collector]\nmax_exporters = 7\n")
        rc, j = d.jq("reload")
        check("collector.max_exporters" in j["restart_needed"],
              "reload names keys that need a restart")
        # broken config: refused, old kept, daemon alive
        with open(d.conf, "a") as f:
            f.write("[smtp-fanout]\nshort = banana\n")
        rc, out, err = d.run("reload")
        check(rc == 1 and "banana" in err, "broken config on reload: exit 1, says why")
        rc, j = d.jq("config")
        check(j["config"]["collector"]["max_exporters"] == "7" and d.alive(),
              "broken config refused, the one in force kept, daemon running")
        os.kill(d.p.pid, signal.SIGHUP)
        time.sleep(0.3)
        check(d.alive(), "SIGHUP with a broken config: daemon keeps running")

        # hostile clients
        before = d.jq("stats")[1]
        lines = raw(d.sock, b"x" * 10000 + b"\n")
        check(lines and b"longer than 4096" in lines[0], "line over the limit: error reply")
        lines = raw(d.sock, b"\x00\xff\xfe garbage\x01\x02\nversion\n")
        check(b"not text" in lines[0] and b'"ok":true' in lines[1],
              "binary garbage: error reply, and the connection still answers")
        lines = raw(d.sock, b"offenders\x00\n")
        check(b"not text" in lines[0], "NUL byte: error reply")

        # a client connected before the attack: it must keep being answered
        good = socket.socket(socket.AF_UNIX)
        good.settimeout(5)
        good.connect(d.sock)
        goodf = good.makefile("rwb")
        # a client that never reads its reply, asking for big replies again and again
        stuck = raw(d.sock, b"", read=False)
        stuck.setblocking(False)
        asked = 0
        try:
            for _ in range(20000):
                stuck.send(b"config\n")
                asked += 1
        except BlockingIOError:
            pass
        # 1000 connections at once, while datagrams keep coming
        conns = []
        errors = 0
        sender = threading.Thread(target=send_all, args=(d.port, dgrams * 4))
        sender.start()
        for _ in range(1000):
            try:
                s = socket.socket(socket.AF_UNIX)
                s.settimeout(5)
                s.connect(d.sock)
                conns.append(s)
            except OSError:
                errors += 1
        sender.join()
        # others are answered meanwhile: the one connected before; new ones are refused
        # with a reason while max_clients are connected
        # (the daemon may answer it before it has reached the queued connections over the
        # limit: ask until it has refused one, every reply counting as an answer)
        answers, deadline = [], time.time() + 10
        while time.time() < deadline:
            goodf.write(b"stats\n")
            goodf.flush()
            j = json.loads(goodf.readline())
            answers.append(j["ok"])
            if j["ok"] and j["control"]["clients_refused"] >= 1:
                break
            time.sleep(0.05)
        check(all(answers) and j["control"]["clients_refused"] >= 1,
              f"a connected client is answered during the attack ({len(answers)} replies, "
              f"{j['control']['clients_refused']} refused by then)")
        rc, out, err = d.run("version")
        check(rc == 1 and "too many clients" in err, "over max_clients: told so, exit 1")
        time.sleep(1)
        for s in conns:
            s.close()
        time.sleep(0.3)
        rc, j = d.jq("version")
        check(rc == 0 and j["ok"], "answered again once the flood is gone")
        goodf.write(b"version\n")
        goodf.flush()
        check(json.loads(goodf.readline())["ok"], "the connected client is still answered")
        good.close()
        # the stuck client times out (idle_timeout = 3)
        time.sleep(4.5)
        rc, j = d.jq("stats")
        c = j["control"]
        expect = before["listener"]["datagrams"] + 4 * len(dgrams)
        check(j["listener"]["datagrams"] + j["listener"]["kernel_drops"] >= expect and
              j["listener"]["datagrams"] == expect,
              f"every datagram sent during the attack was counted ({j['listener']['datagrams']}"
              f" of {expect})")
        check(c["clients_refused"] >= 1000 - 64 - errors,
              f"connections over max_clients refused and counted ({c['clients_refused']})")
        check(c["requests_too_long"] >= 1 and c["requests_not_text"] >= 2,
              "too long and not-text requests counted")
        check(c["clients_timed_out"] + c["clients_dropped"] >= 1,
              "the client that never read was closed and counted")
        check(c["clients_active"] <= 1, "no client left behind")
        stuck.close()

        # forget
        rc, j = d.jq("forget", HOST)
        check(rc == 0 and j["forgotten"], f"forget {HOST}")
        rc, j = d.jq("offenders")
        check(all(o["host"] != HOST for o in j["offenders"]), "forgotten host is no offender")
        d.log.seek(0)
        log = d.log.read()
        check(f"forget {HOST} by uid=" in log, "forget is logged with the peer uid")
        check(d.alive(), "daemon alive at the end")
    finally:
        rc = d.stop()
    check(rc == 0, "clean exit on SIGTERM")
    check(not os.path.exists(d.sock), "socket removed at exit")
    if failures:
        d.log.seek(0)
        print(d.log.read()[-3000:])
        sys.exit(f"{len(failures)} checks failed")
    print("all checks passed")


if __name__ == "__main__":
    main()
