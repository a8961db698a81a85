"""Shared by the quarantine system tests (quarantine_daemon.py, quarantine_netns.py): nft
through the nft program (the test's own look at the kernel, independent of libnftables in
the daemon), NetFlow v5 datagrams of SMTP flows from one host to a list of destinations, and
a live spamflowd with a control socket whose stderr is read in the background."""
import json
import os
import socket
import struct
import subprocess
import threading
import time

import sinktest

# The Debian package of each program the quarantine tests run, for require_programs()'s
# message.
sinktest.PACKAGES.update({"nft": "nftables", "ip": "iproute2", "softflowd": "softflowd",
                          "sysctl": "procps", "setpriv": "util-linux"})


def nft(*args, ns=None, check=True):
    cmd = (["ip", "netns", "exec", ns] if ns else []) + ["nft", *args]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise SystemExit(f"FAIL: {' '.join(cmd)}: {r.stderr.strip()}")
    return r


def set_members(family, table, name, ns=None):
    """{address: (timeout_s, expires_s)} of one set, from `nft -j list set`."""
    out = json.loads(nft("-j", "list", "set", family, table, name, ns=ns).stdout)
    members = {}
    for item in out["nftables"]:
        s = item.get("set")
        if not s:
            continue
        for e in s.get("elem", []):
            if isinstance(e, dict) and "elem" in e:
                members[e["elem"]["val"]] = (e["elem"].get("timeout"), e["elem"].get("expires"))
            elif isinstance(e, str):
                members[e] = (None, None)
    return members


def v5_datagram(src, dsts, seq, uptime_ms, dport=25):
    """One NetFlow v5 datagram (at most 30 records): a SYN-ACK-FIN TCP flow from src to
    each of dsts on dport."""
    assert len(dsts) <= 30
    now = time.time()
    recs = b""
    for k, dst in enumerate(dsts):
        recs += struct.pack(">4s4s4sHHIIIIHHBBBBHHBBH", socket.inet_aton(src),
                            socket.inet_aton(dst), b"\0" * 4, 1, 2, 5, 400, uptime_ms - 200,
                            uptime_ms - 100, 40000 + k, dport, 0, 0x1b, 6, 0, 0, 0, 24, 24, 0)
    hdr = struct.pack(">HHIIIIBBH", 5, len(dsts), uptime_ms, int(now),
                      int((now % 1) * 1e9), seq, 0, 0, 0)
    return hdr + recs


class Exporter:
    """Sends v5 datagrams to a daemon on loopback."""

    def __init__(self, port):
        self.port = port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.seq = 0
        self.start = time.monotonic()

    def smtp(self, src, n, first=1, net=(198, 18)):
        """src reaches n distinct destinations (net.x.y from index first) on port 25;
        returns the time the last datagram left (time.time())."""
        dsts = [f"{net[0]}.{net[1]}.{(first + i) // 250}.{(first + i) % 250 + 1}"
                for i in range(n)]
        for i in range(0, n, 30):
            part = dsts[i:i + 30]
            d = v5_datagram(src, part, self.seq,
                            int((time.monotonic() - self.start) * 1000) + 100000)
            self.seq += len(part)
            self.sock.sendto(d, ("127.0.0.1", self.port))
        return time.time()


class Daemon:
    """spamflowd -c CONF -l 127.0.0.1:PORT [in netns ns]; stderr collected in lines."""

    def __init__(self, spamflowd, spamflowctl, conf, port, sock, ns=None, pre=()):
        self.spamflowctl = spamflowctl
        self.sock = sock
        self.port = port
        pre = (["ip", "netns", "exec", ns] if ns else []) + list(pre)
        self.proc = subprocess.Popen(pre + [spamflowd, "--history=", "-c", conf, "-l", f"127.0.0.1:{port}",
                                            "--stats-interval", "0"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True)
        self.lines = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.reader.join(2)
                raise SystemExit("FAIL: spamflowd exited at start:\n" + self.log())
            if os.path.exists(sock) and any("listening on" in l for l in self.lines):
                return
            time.sleep(0.05)
        self.proc.kill()
        raise SystemExit("FAIL: spamflowd did not come up:\n" + self.log())

    def _read(self):
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def log(self):
        return "\n".join(self.lines)

    def ctl(self, *args, json_out=True, check=True):
        cmd = [self.spamflowctl, "-s", self.sock] + (["-j"] if json_out else []) + list(args)
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
        if check and r.returncode != 0:
            raise SystemExit(f"FAIL: {' '.join(cmd)}: exit {r.returncode}: {r.stdout}{r.stderr}")
        return json.loads(r.stdout) if json_out and r.stdout.strip() else r

    def quarantine_stats(self):
        st = self.ctl("stats")
        for a in st.get("actions", []):
            if a.get("kind") == "quarantine":
                return a
        raise SystemExit(f"FAIL: no quarantine in stats: {st.get('actions')}")

    def actions(self):
        """The action records, oldest first."""
        return list(reversed(self.ctl("history", "limit=100000")["actions"]))

    def wait(self, what, cond, timeout=15):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            v = cond()
            if v:
                return v
            time.sleep(0.05)
        raise SystemExit(f"FAIL: {what} within {timeout} s\n--- daemon log:\n" + self.log())

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.reader.join(5)
        return self.proc.returncode


def proc_caps(pid):
    """{'CapInh': int, 'CapPrm': ..., 'CapEff': ..., 'CapAmb': ..., 'Uid': real uid}"""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k.startswith("Cap"):
                out[k] = int(v.strip(), 16)
            elif k == "Uid":
                out["Uid"] = int(v.split()[0])
    return out


def daemon_pid(d):
    """The spamflowd process itself (under `ip netns exec` it is a child of it: exec'ed, so
    the same pid)."""
    return d.proc.pid
