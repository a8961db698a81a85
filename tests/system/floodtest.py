"""Shared by the flood system tests (flood_spoofed.py, flood_templates.py): a live spamflowd
on a loopback port with its control socket in a temp dir, its RSS sampled every 100 ms in
the background, commands over the control socket with their reply time, and the kernel's
drop counter for its UDP socket.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

from netutil import free_udp_port


ASAN_QUARANTINE_MB = 16


def rss_kb(pid):
    """VmRSS of a process in kB, None when it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def proc_udp_drops(port):
    """The drops column of /proc/net/udp for the socket bound to 127.0.0.1:port."""
    want = f"0100007F:{port:04X}"
    with open("/proc/net/udp") as f:
        for line in f.readlines()[1:]:
            cols = line.split()
            if cols[1] == want:
                return int(cols[-1])
    return None


def sanitized(binary):
    """True for a build with AddressSanitizer (meson -Db_sanitize=address,...)."""
    with open(binary, "rb") as f:
        return b"__asan_init" in f.read()


def ask(sock_path, command, timeout):
    """One command on a fresh connection: (reply dict, seconds)."""
    t0 = time.monotonic()
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(timeout)
    try:
        s.connect(sock_path)
        s.sendall(command.encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            b = s.recv(1 << 20)
            if not b:
                break
            buf += b
    finally:
        s.close()
    return json.loads(buf), time.monotonic() - t0


class Sampler(threading.Thread):
    """VmRSS every 100 ms until stop is set: series of (seconds since t0, kB)."""

    def __init__(self, pid, t0):
        super().__init__(daemon=True)
        self.pid, self.t0 = pid, t0
        self.series = []
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            r = rss_kb(self.pid)
            if r is not None:
                self.series.append((time.monotonic() - self.t0, r))
            self.stop.wait(0.1)

    def peak(self, since=0.0):
        return max((r for t, r in self.series if t >= since), default=0)


class Daemon:
    """spamflowd -c CONF -l 127.0.0.1:PORT, started and ready (listening, control socket
    made), RSS sampled from then on."""

    def __init__(self, spamflowd, tmp, conf_text, extra_args=()):
        self.sock = os.path.join(tmp, "run", "control.sock")
        self.port = free_udp_port()
        self.conf = os.path.join(tmp, "spamflow.conf")
        with open(self.conf, "w") as f:
            f.write(f"[http]\nlisten =\n[control]\nsocket = {self.sock}\n" + conf_text)
            # start from nothing and leave nothing: no state file (restart without loss)
            # restored from, or written to, the default path
            if "\n[state]\n" in subprocess.run([spamflowd, "--print-config"],
                                               capture_output=True, text=True).stdout:
                f.write("[state]\nfile =\n")
        env = dict(os.environ)
        if sanitized(spamflowd):
            # ASan keeps freed memory in a quarantine (256 MiB by default) before reusing
            # it: under a flood that churns allocations RSS would show the quarantine
            env["ASAN_OPTIONS"] = ":".join(
                x for x in (env.get("ASAN_OPTIONS", ""), f"quarantine_size_mb={ASAN_QUARANTINE_MB}")
                if x)
        self.t0 = time.monotonic()
        self.p = subprocess.Popen([spamflowd, "--history=", "-c", self.conf, "-l", f"127.0.0.1:{self.port}",
                                   "--stats-interval", "0", *extra_args],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                  env=env)
        # glib prints a blank line before a warning: read lines until the listening one
        self.log = []
        while True:
            line = self.p.stderr.readline()
            if not line:
                sys.exit(f"spamflowd did not start: {''.join(self.log)}")
            self.log.append(line)
            if f"listening on 127.0.0.1:{self.port}" in line:
                break
        threading.Thread(target=lambda: self.log.extend(self.p.stderr), daemon=True).start()
        for _ in range(200):
            if os.path.exists(self.sock):
                break
            time.sleep(0.05)
        self.sampler = Sampler(self.p.pid, self.t0)
        self.sampler.start()

    def now(self):
        return time.monotonic() - self.t0

    def ask(self, command, timeout=10):
        return ask(self.sock, command, timeout)[0]

    def udp_drops(self):
        return proc_udp_drops(self.port)

    def wait_received(self, want, timeout=120):
        """Until the listener has received or the kernel dropped `want` datagrams."""
        deadline = time.monotonic() + timeout
        while True:
            st = self.ask("stats")
            if st["listener"]["datagrams"] + (self.udp_drops() or 0) >= want:
                return st
            if time.monotonic() > deadline:
                sys.exit(f"spamflowd received {st['listener']['datagrams']} of {want} "
                         "datagrams")
            time.sleep(0.05)

    def stop(self):
        """SIGTERM; returns the exit code."""
        self.sampler.stop.set()
        self.p.send_signal(signal.SIGTERM)
        try:
            return self.p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.p.kill()
            return self.p.wait()
