"""Shared by the alert sink system tests (rsyslog_remote.py, csv_sink.py): the documented
field list of an alert event computed from its JSON line (an independent implementation of
exporters/alertfields.c), a NetFlow v5 stream that raises one smtp-fanout alert per host at
a pace, a live spamflowd on loopback, and a private rsyslogd (no /dev/log, no system files).
"""
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time

from netutil import free_port

SD_ID = "spamflow@32473"

# The Debian package of each program the system tests run (scripts/setup.sh test installs
# them all).
PACKAGES = {"unshare": "util-linux", "findmnt": "util-linux", "mount": "mount",
            "rsyslogd": "rsyslog", "mmdblookup": "mmdb-bin", "tshark": "tshark",
            "mkfs.ext4": "e2fsprogs"}


def missing_program(prog):
    """None when PROG is on PATH (or in /usr/sbin, /sbin), else why the test fails."""
    if shutil.which(prog, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin"):
        return None
    return (f"{prog} not found: scripts/setup.sh test installs it (Debian package "
            f"{PACKAGES.get(prog, '?')})")


def require_programs(*progs):
    """Exits 1 naming every one of PROGS that is missing: a missing tool is a failure,
    never a skip (a skipped test looks like a passed one in a green suite)."""
    why = [w for w in map(missing_program, progs) if w]
    for w in why:
        print("FAIL:", w, flush=True)
    if why:
        sys.exit(1)


def fmt3(x):
    return "%.3f" % x


def b(x):
    return "true" if x else "false"


def fields(a):
    """[(name, text or None)] in the documented column order, from one JSON alert."""
    out = [("time_ms", str(a["time_ms"])), ("event", a["event"]), ("reason", a["reason"]),
           ("severity", a["severity"]), ("host", a["host"]), ("peer", a["peer"]),
           ("level", fmt3(a["level"]))]
    assert len(a["windows"]) == 2
    for name, w in zip(("short", "long"), a["windows"]):
        out += [(f"{name}_span_s", str(w["span_s"])), (f"{name}_value", str(w["value"])),
                (f"{name}_threshold", str(w["threshold"])),
                (f"{name}_distinct", str(w["distinct"])),
                (f"{name}_estimated", b(w["estimated"])), (f"{name}_flows", str(w["flows"])),
                (f"{name}_attempts", str(w["attempts"])), (f"{name}_failed", str(w["failed"]))]
    out += [("trigger", a["trigger"])]
    out += [(k, str(a[k])) for k in ("flows", "attempts", "failed", "succeeded", "answered")]
    out += [("failed_share", fmt3(a["failed_share"])),
            ("first_seen_ms", str(a["first_seen_ms"])),
            ("last_seen_ms", str(a["last_seen_ms"]))]
    top = ";".join(f"{t['addr']}/{t['count']}/{t['country'] or ''}/"
                   f"{'' if t['asn'] is None else t['asn']}" for t in a["top"])
    out += [("top", top), ("exporters", ";".join(a["exporters"])),
            ("exporters_truncated", b(a["exporters_truncated"])),
            ("sampling", str(a["sampling"])), ("lower_bound", b(a["lower_bound"])),
            ("raised_ms", str(a["raised_ms"])), ("countries", str(a["countries"])),
            ("asns", str(a["asns"])), ("evidence", a["evidence"])]
    out += [(k, str(a[k])) for k in ("short_estimate", "short_estimate_se", "long_estimate",
                                     "long_estimate_se")]
    out += [("mta_like", b(a["mta_like"])), ("inbound_smtp", str(a["inbound_smtp"])),
            ("dns_external", str(a["dns_external"])), ("dns_server", a["dns_server"]),
            ("dns_corroborated", b(a["dns_corroborated"])),
            ("group", a["group"] or None)]
    return out


def read_jsonl(path):
    return [json.loads(line) for line in open(path)]


def free_ports():
    """A port free for both UDP and TCP."""
    for _ in range(50):
        p = free_port(socket.SOCK_STREAM)
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            u.bind(("127.0.0.1", p))
            return p
        except OSError:
            continue
        finally:
            u.close()
    raise SystemExit("no free port")


# ---- a NetFlow v5 stream: host i reaches 60 distinct MXs on port 25 -> one alert each ----

def v5_datagrams(host_index, seq, uptime_ms):
    """Two v5 datagrams (30 records each) of 60 SMTP flows from 10.77.x.y."""
    src = bytes([10, 77, host_index // 250, host_index % 250 + 1])
    now = time.time()
    out = []
    for part in range(2):
        recs = b""
        for j in range(30):
            k = part * 30 + j
            dst = bytes([198, 18, host_index % 200, k + 1])
            recs += struct.pack(">4s4s4sHHIIIIHHBBBBHHBBH", src, dst, b"\0" * 4, 1, 2, 5,
                                400, uptime_ms - 200, uptime_ms - 100, 40000 + k, 25, 0,
                                0x1b, 6, 0, 0, 0, 24, 24, 0)
        hdr = struct.pack(">HHIIIIBBH", 5, 30, uptime_ms, int(now),
                          int((now % 1) * 1e9), seq, 0, 0, 0)
        seq += 30
        out.append(hdr + recs)
    return out, seq


class Stream:
    """Sends one alerting host's flows per call to step()."""

    def __init__(self, port):
        self.port = port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.seq = 0
        self.host = 0
        self.start = time.monotonic()

    def step(self):
        dgs, self.seq = v5_datagrams(self.host, self.seq,
                                     int((time.monotonic() - self.start) * 1000) + 100000)
        for d in dgs:
            self.sock.sendto(d, ("127.0.0.1", self.port))
        self.host += 1


def start_live(spamflowd, conf, alerts, extra=()):
    """spamflowd on a free loopback port; returns (process, port). A conf that sets no control
    socket or HTTP endpoint gets none (not the system's /run/spamflow/control.sock and
    127.0.0.1:9300, which a running spamflowd, or a parallel test, may hold)."""
    with open(conf) as f:
        text = f.read()
    with open(conf, "a") as f:
        f.write(("" if "[control]" in text else "\n[control]\nsocket =\n") +
                ("" if "[http]" in text else "\n[http]\nlisten =\n"))
    port = free_port()
    d = subprocess.Popen([spamflowd, "--state=", "--history=", "-c", conf, "-l", f"127.0.0.1:{port}", "--alerts",
                          alerts, "--stats-interval", "0", "--json", *extra],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while True:
        line = d.stderr.readline()
        if not line:
            d.kill()
            raise SystemExit(f"spamflowd did not start: {d.stderr.read()}")
        if f"127.0.0.1:{port}" in line:
            return d, port


def stop_live(d):
    """SIGTERM; returns (report JSON, stderr)."""
    d.send_signal(signal.SIGTERM)
    out, err = d.communicate(timeout=30)
    if d.returncode != 0:
        raise SystemExit(f"spamflowd exited {d.returncode}: {err}")
    return json.loads(out), err


# ---- a private rsyslogd ----

RSYSLOG_CONF = """
# private test instance: no imuxsock (no /dev/log), no system files
global(workDirectory="{dir}")
module(load="imudp")
module(load="imtcp")
input(type="imudp" address="127.0.0.1" port="{port}")
input(type="imtcp" address="127.0.0.1" port="{port}")
template(name="raw" type="string" string="%rawmsg%\\n")
template(name="parsed" type="string"
         string="%pri%|%app-name%|%procid%|%msgid%|%structured-data%\\n")
if $app-name == "spamflowd" then {{
  action(type="omfile" file="{dir}/raw.log" template="raw")
  action(type="omfile" file="{dir}/parsed.log" template="parsed")
}} else {{
  action(type="omfile" file="{dir}/probe.log" template="raw")
}}
"""


class Rsyslogd:
    def __init__(self, workdir):
        self.dir = workdir
        self.port = free_ports()
        self.conf = os.path.join(workdir, "rsyslog.conf")
        with open(self.conf, "w") as f:
            f.write(RSYSLOG_CONF.format(dir=workdir, port=self.port))
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(["rsyslogd", "-n", "-f", self.conf, "-i",
                                      os.path.join(self.dir, "rsyslogd.pid")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True)
        # ready when a probe over TCP and one over UDP have both been written out
        probe = os.path.join(self.dir, "probe.log")

        def seen(word):
            if not os.path.exists(probe):
                return 0
            return sum(1 for line in open(probe) if line.endswith(word + "\n"))

        tcp0, udp0 = seen("tcp"), seen("udp")
        tcp_sent = False
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"rsyslogd exited: {self.proc.stderr.read()}")
            if not tcp_sent:
                try:
                    with socket.create_connection(("127.0.0.1", self.port), timeout=1) as c:
                        m = b"<14>1 - - probe - - - tcp"
                        c.sendall(b"%d %s" % (len(m), m))
                    tcp_sent = True
                except OSError:
                    pass
            if seen("udp") == udp0:
                u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                u.sendto(b"<14>1 - - probe - - - udp", ("127.0.0.1", self.port))
                u.close()
            time.sleep(0.1)
            if seen("tcp") > tcp0 and seen("udp") > udp0:
                return
        raise SystemExit("rsyslogd did not come up")

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=15)
        self.proc = None

    def lines(self, name="raw.log"):
        p = os.path.join(self.dir, name)
        return open(p).read().splitlines() if os.path.exists(p) else []


# ---- a private /dev, for tests that own /dev/log (inside `unshare -m --propagation private`)

MS_BIND, MS_REC = 4096, 16384
_libc = None


def mount(src, target, fstype, flags, data=None):
    """mount(2) directly: mount(8) once per /dev entry takes seconds."""
    global _libc
    import ctypes
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    if _libc.mount(src.encode(), target.encode(), fstype and fstype.encode(), flags,
                   data and data.encode()) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"mount {src} {target}: {os.strerror(e)}")


def private_dev(tmp):
    """/dev becomes a tmpfs mirroring the real one (bind mounts, symlinks copied) without
    `log`: no syslog daemon, whatever the host has; the caller adds /dev/log if it wants."""
    old = os.path.join(tmp, "olddev")
    os.mkdir(old)
    mount("/dev", old, None, MS_BIND | MS_REC)
    mount("spamflow-test-dev", "/dev", "tmpfs", 0, "mode=755,size=64k")
    for name in sorted(os.listdir(old)):
        src, dst = os.path.join(old, name), os.path.join("/dev", name)
        if name == "log":
            continue
        if os.path.islink(src):
            os.symlink(os.readlink(src), dst)
        elif os.path.isdir(src):
            os.mkdir(dst)
            mount(src, dst, None, MS_BIND | MS_REC)
        else:
            open(dst, "w").close()
            mount(src, dst, None, MS_BIND)
