#!/usr/bin/python3
"""Sink faults (issue 7, "Faults -> Sinks"): a live spamflowd fed the export datagrams of a
capture over loopback UDP (default fixtures/scenario-ipfix.pcap, its 100 minutes compressed
into seconds: 9 alert events), while a sink fails. One live run per case:

  disk-csv   csv on a full file system: a 16 KiB tmpfs holding a 12 KiB file and the csv
             file of an earlier run, whose last page fills during the first half of the
             stream; then the 12 KiB file is deleted and the second half follows. The csv
             sink counts exactly the events whose record did not fit (simulated byte for byte
             from the JSON lines, the reference), the file holds whole records only (strict
             RFC 4180 parse, the earlier records untouched), writing resumes once there is
             space, and the failure is logged at a limited rate.
  disk-json  the same for the JSON lines sink (the csv on a healthy disk is the reference):
             every line whole, each an event, in order; errors = the events missing.
  readonly   csv on a file system that goes read-only mid-run: ext4 on a loop device mounted
             errors=remount-ro, an error triggered (sysfs trigger_fs_error) between the two
             halves of the stream; the csv holds exactly the events before, the errors are
             exactly the events after. Also: csv on a read-only bind mount at start is refused
             (exit 1, naming the file). /dev/log appears at the same moment as the error: the
             local syslog sink counts the first half as errors and delivers the second half
             (each line checked against its JSON event).
  outage     remote syslog (TCP) down for --outage seconds: rsyslogd is stopped before the
             events and started again after the outage; every event raised meanwhile is
             queued (queue peak = events of the outage) and arrives once, in order, field for
             field, after the server returns. The reconnect attempts back off 1, 2, 4 ... 60 s
             (connect_failures sampled over the control socket: the gaps are printed and
             checked), and the first attempt after the server is back succeeds.

Local syslog in every case: the namespace's /dev has no `log` (missing), or, in the disk
cases, a stale one (a socket file nobody reads, as a crashed syslog daemon leaves it): each
event is counted as an error, never fatally, with one warning at start and rate-limited
failure lines. In every case the sinks that do not fail (json, csv, remote syslog through a
real rsyslogd) get every event; collection is unaffected (datagrams and records decoded =
sent, no kernel drops, no sequence loss, no data set without its template); the counters
over the control socket equal the exit summary's; and each sink's failure lines ("... (errors
so far: N, dropped: M)", exporters/sink.c sink_log_error()) are at least 60 s apart, the
first one at the first failure.

Everything runs inside `unshare -m --propagation private` (this script re-executes itself
with --in-namespace): the tmpfs, the ext4 loop mount, the read-only bind mount and the
private /dev (a tmpfs mirroring the real one without `log`) vanish with the namespace. Needs
root (exit 77 otherwise); unshare, mount, rsyslogd, and for the readonly case findmnt and
mkfs.ext4 (a failure without them). When the readonly case cannot make its ext4 loop mount
(no loop devices, as in some containers), the other cases still run and the test then exits
77, saying why: a skip, never a pass.

usage: sink_faults.py SPAMFLOWD FIXTURES_DIR [--outage SECONDS] [--bots N] [--cases LIST]
                      [--capture NAME] [--keep]
  --outage  length of the remote syslog outage (default 15; `--outage 180` is the minutes run)
  --bots    N more alerting hosts (a v5 stream, sinktest.Stream) during the outage, for a
            bigger queue to drain (default 0)
  --cases   default disk-csv,disk-json,readonly,outage,stalled; `stalled`: /dev/log is a
            socket nobody reads, and the daemon must not block (the local sink sends on its
            own non-blocking socket; what does not fit the reader's queue is an error).
"""
import argparse
import ctypes
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True  # leave the shared tree's __pycache__ alone
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rsyslog_remote  # noqa: E402
import sinktest  # noqa: E402
from all_sinks import DevLog, parse_local  # noqa: E402
from csv_sink import read_csv  # noqa: E402
from live_vs_replay import read_pcap, udp_payload  # noqa: E402

SEVERITY = {"info": 6, "notice": 5, "warning": 4, "critical": 2}
LOG_DAEMON = 3  # rsyslog_remote.check_messages() expects daemon
RATE_LIMIT_S = 60  # exporters/sink.c sink_log_error(): at most once a minute per sink
BACKOFF_MAX_S = 60  # SINK_SYSLOG_BACKOFF_MAX_S
MS_BIND, MS_REC = sinktest.MS_BIND, sinktest.MS_REC
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("  FAIL", what, flush=True)
    return cond


def say(*a):
    print(*a, flush=True)


def skip(why):
    say("SKIP:", why)
    sys.exit(77)


# ---- mounts (inside the private namespace) ----

_libc = ctypes.CDLL(None, use_errno=True)


mount = sinktest.mount
private_dev = sinktest.private_dev


def run(*argv):
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=60)


# ---- the export stream ----

class Capture:
    """The UDP payloads of a capture with their offsets (s) from the first one."""

    def __init__(self, path, expect):
        _, _, linktype, pkts = read_pcap(path)
        t0, t1 = pkts[0][0], pkts[-1][0]
        self.span = (t1 - t0) / 1e6
        self.items = [((ts - t0) / 1e6 / self.span, udp_payload(linktype, p)) for ts, p in pkts]
        e = json.load(open(expect))
        self.datagrams, self.records = e["datagrams"], e["data_records"]
        if len(self.items) != self.datagrams:
            sys.exit(f"{path}: {len(self.items)} datagrams, {expect} says {self.datagrams}")


def send_paced(s, port, schedule, duration, t_start=None):
    """schedule: [(fraction of duration, payload bytes or callable)], in order; s is the
    exporter's socket (one source port for the whole run: one IPFIX session)."""
    start = t_start if t_start is not None else time.monotonic()
    for frac, what in schedule:
        due = start + frac * duration
        while (left := due - time.monotonic()) > 0:
            time.sleep(min(0.01, left))
        if callable(what):
            what()
        else:
            s.sendto(what, ("127.0.0.1", port))


def exporter_socket():
    return socket.socket(socket.AF_INET, socket.SOCK_DGRAM)


# ---- the daemon ----

LOG_RE = re.compile(r"spamflow-(\w+)(?: \*\*)?: (\d\d):(\d\d):(\d\d)\.(\d{3}): (.*)$")
SINK_ERR_RE = re.compile(r"^(csv|json|syslog|syslog-remote) sink '([^']*)': (.*) "
                         r"\(errors so far: (\d+), dropped: (\d+)\)$")


class Daemon:
    def __init__(self, spamflowd, d, conf_text, alerts=None):
        self.dir = d
        self.jsonl = alerts or os.path.join(d, "alerts.jsonl")
        self.sock = os.path.join(d, "run", "control.sock")
        self.conf = os.path.join(d, "spamflow.conf")
        with open(self.conf, "w") as f:
            f.write(conf_text + f"\n[http]\nlisten =\n[control]\nsocket = {self.sock}\n")
        self.port = sinktest.free_port()
        self.errpath = os.path.join(d, "daemon.log")
        self.err = open(self.errpath, "w")
        self.p = subprocess.Popen([spamflowd, "--state=", "--history=", "-c", self.conf, "-l",
                                   f"127.0.0.1:{self.port}", "--alerts", self.jsonl,
                                   "--stats-interval", "0", "--json"],
                                  stdout=subprocess.PIPE, stderr=self.err, text=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.p.poll() is not None:
                sys.exit(f"spamflowd exited {self.p.returncode}: {self.stderr()}")
            # the socket file exists from bind(); the log line follows listen()
            if f"127.0.0.1:{self.port}" in self.stderr() and \
                    f"control socket {self.sock}" in self.stderr():
                return
            time.sleep(0.05)
        self.p.kill()
        sys.exit(f"spamflowd did not start: {self.stderr()}")

    def stderr(self):
        return open(self.errpath).read()

    def stats(self):
        c = socket.socket(socket.AF_UNIX)
        c.settimeout(10)
        c.connect(self.sock)
        c.sendall(b"stats\n")
        buf = b""
        while not buf.endswith(b"\n"):
            b = c.recv(65536)
            if not b:
                break
            buf += b
        c.close()
        return json.loads(buf)

    def sink(self, kind, st=None):
        st = st or self.stats()
        return next((s for s in st["sinks"] if s["kind"] == kind), None)

    def settle(self, datagrams, quiet=0.6, timeout=30):
        """Until every datagram sent is received and the alert count has not moved for
        `quiet` seconds; returns the last stats."""
        deadline = time.monotonic() + timeout
        last, since = None, time.monotonic()
        while time.monotonic() < deadline:
            st = self.stats()
            a = st["analyzer"]
            key = (st["listener"]["datagrams"], a["events_raised"] + a["events_updated"] +
                   a["events_cleared"])
            if key != last:
                last, since = key, time.monotonic()
            elif key[0] >= datagrams and time.monotonic() - since >= quiet:
                return st
            time.sleep(0.1)
        check(False, f"the daemon did not settle: {last} for {datagrams} datagrams sent")
        return self.stats()

    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        out, _ = self.p.communicate(timeout=60)
        self.err.close()
        err = self.stderr()
        check(self.p.returncode == 0, f"spamflowd exited {self.p.returncode}: {err[-2000:]}")
        check(not re.search(r"runtime error:|AddressSanitizer|LeakSanitizer", err),
              f"sanitizer report: {err[-3000:]}")
        with open(os.path.join(self.dir, "report.json"), "w") as f:
            f.write(out)
        return json.loads(out), err


def log_lines(err):
    """[(seconds of the day, level, text)] of the daemon's glib log lines."""
    out = []
    for line in err.splitlines():
        m = LOG_RE.search(line)
        if m:
            h, mi, s, ms = (int(x) for x in m.group(2, 3, 4, 5))
            out.append((h * 3600 + mi * 60 + s + ms / 1000, m.group(1), m.group(6)))
    return out


def sink_failure_lines(err, kind):
    """The rate-limited failure lines of one sink: [(t, text, errors so far, dropped)]."""
    out = []
    for t, _, text in log_lines(err):
        m = SINK_ERR_RE.match(text)
        if m and m.group(1) == kind:
            out.append((t, m.group(3), int(m.group(4)), int(m.group(5))))
    return out


def check_rate_limited(label, err, kind, failed, want_first=None):
    """kind's failure lines: one at the first failure, then at least 60 s apart."""
    lines = sink_failure_lines(err, kind)
    ok = True
    if failed:
        ok &= check(len(lines) >= 1, f"{label}: {kind} failed but logged nothing")
    else:
        ok &= check(not lines, f"{label}: {kind} did not fail but logged {lines}")
    for (t0, *_), (t1, *_) in zip(lines, lines[1:]):
        gap = (t1 - t0) % 86400
        ok &= check(gap >= RATE_LIMIT_S - 0.01,
                    f"{label}: {kind} failure lines {gap:.3f} s apart (limit: one a minute)")
    if lines and want_first is not None:
        ok &= check(re.search(want_first, lines[0][1]) is not None,
                    f"{label}: {kind} first failure line {lines[0][1]!r}, want /{want_first}/")
    return lines


def check_collection(label, report, sent_datagrams, sent_records):
    tot, lst = report["totals"], report["listener"]
    ok = check(tot["datagrams"] == sent_datagrams and lst["datagrams"] == sent_datagrams,
               f"{label}: {tot['datagrams']} datagrams decoded, {lst['datagrams']} received, "
               f"{sent_datagrams} sent")
    ok &= check(tot["records"] == sent_records,
                f"{label}: {tot['records']} records decoded, {sent_records} sent")
    ok &= check(lst["kernel_drops"] == 0 and lst["recv_errors"] == 0 and lst["truncated"] == 0,
                f"{label}: listener {lst}")
    for e in report["exporters"]:
        ok &= check(e["seq_lost"] == 0 and e["malformed_total"] == 0 and
                    e["no_template_sets"] == 0,
                    f"{label}: exporter {e['addr']}:{e['port']} seq_lost {e['seq_lost']} "
                    f"malformed {e['malformed_total']} no_template_sets "
                    f"{e['no_template_sets']}")
    return ok


def sinks_of(report):
    return {s["kind"]: s for s in report["sinks"]}


def check_summary_matches_stats(label, report, st):
    """The control socket's counters (after the last event) = the exit summary's."""
    keys = ("events", "errors", "dropped", "reopens")
    a = {s["kind"]: tuple(s[k] for k in keys) for s in st["sinks"]}
    b = {s["kind"]: tuple(s[k] for k in keys) for s in report["sinks"]}
    check(a == b, f"{label}: stats over the control socket {a} != exit summary {b}")
    an = ("events_raised", "events_updated", "events_cleared")
    check(tuple(st["analyzer"][k] for k in an) == tuple(report["analyzer"][k] for k in an),
          f"{label}: analyzer events differ between stats and the summary")


def csv_row_bytes(a):
    """One event as the csv sink writes it (doc/alerts.md, CSV): RFC 4180, CRLF, a field
    quoted when it holds '"', ',', CR or LF, top and exporters always quoted."""
    out = []
    for name, v in sinktest.fields(a):
        v = "" if v is None else v
        if name in ("top", "exporters") or any(c in v for c in '",\r\n'):
            v = '"' + v.replace('"', '""') + '"'
        out.append(v)
    return (",".join(out) + "\r\n").encode()


def csv_want(a):
    return [v if v is not None else "" for _, v in sinktest.fields(a)]


def check_remote(label, rs, before, events, timeout=15):
    """Every JSON event exactly once at rsyslogd, field for field, in the JSON order."""
    raw, parsed = rsyslog_remote.wait_lines(rs, before + len(events), timeout=timeout)
    raw, parsed = raw[before:], parsed[before:]
    missing = rsyslog_remote.check_messages(label, events, raw, parsed)
    index = {rsyslog_remote.expected_params(a): i for i, a in enumerate(events)}
    order = []
    for line in raw:
        try:
            order.append(index.get(tuple(rsyslog_remote.parse_5424(line)[7])))
        except (ValueError, IndexError):
            order.append(None)
    check(order == list(range(len(events))), f"{label}: RFC 5424 messages out of order: "
          f"{order}")
    return len(raw), missing


def base_conf(args, rs, csv_path, facility="daemon"):
    text = open(args.config).read() if args.config else ""
    return (text + "\n[sinks]\n" + (f"csv = {csv_path}\n" if csv_path else "") +
            f"syslog = true\nsyslog_facility = {facility}\n"
            f"remote = tcp://127.0.0.1:{rs.port}\nremote_queue = 10000\n")


def wait_connected(d, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = d.sink("syslog-remote")
        if r["connected"]:
            return r
        time.sleep(0.05)
    check(False, "the remote sink did not connect to rsyslogd")
    return d.sink("syslog-remote")


# ---- case: csv on a full file system ----

def case_disk(args, tmp, cap, rs, old_rows, target):
    """target ("csv" or "json") on a full tmpfs that fills during the first half of the
    stream; then the filler file is deleted and the second half is written again. The other
    file sink, on a healthy disk, is the reference."""
    label = f"disk-{target}"
    say(f"{label}: {target} on a tmpfs that fills, then frees; stale /dev/log; remote up")
    d = os.path.join(tmp, label)
    os.mkdir(d)
    fs = os.path.join(d, "fs")
    os.mkdir(fs)
    page = 4096
    mount("spamflow-test-full", fs, "tmpfs", 0, f"size={4 * page},mode=755")
    filler = os.path.join(fs, "other.log")
    with open(filler, "wb") as f:
        f.write(b"x" * (3 * page))  # three of the four pages
    # the file under test starts with an earlier run's records; the rest of its page is the
    # room it has until the file system is full
    header, row = old_rows[target]
    old = header
    want_room = args.room or {"csv": 1300, "json": 2600}[target]
    while len(old) + len(row) <= page - want_room:
        old += row
    faulty = os.path.join(fs, "alerts." + ("csv" if target == "csv" else "jsonl"))
    with open(faulty, "wb") as f:
        f.write(old)
    room = page - len(old)
    healthy_csv = os.path.join(d, "alerts.csv")
    # /dev/log left over from a syslog daemon that is gone: the socket file is there, nobody
    # reads it (a crashed rsyslogd); access(2) would call it writable
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    stale.bind(os.path.join(d, "stale-devlog.sock"))
    stale.close()
    os.symlink(os.path.join(d, "stale-devlog.sock"), "/dev/log")
    rs_before = len(rs.lines())
    dm = Daemon(args.spamflowd, d, base_conf(args, rs, faulty if target == "csv" else
                                             healthy_csv),
                alerts=faulty if target == "json" else None)
    wait_connected(dm)
    exp = exporter_socket()
    half = [x for x in cap.items if x[0] < 0.5]
    rest = [(f - 0.5, p) for f, p in cap.items if f >= 0.5]
    send_paced(exp, dm.port, half, args.burst)
    st = dm.settle(len(half))
    k = sum(st["analyzer"][x] for x in ("events_raised", "events_updated", "events_cleared"))
    full_size = os.path.getsize(faulty)
    os.unlink(filler)  # space again
    send_paced(exp, dm.port, rest, args.burst)
    st = dm.settle(cap.datagrams)
    report, err = dm.stop()
    os.unlink("/dev/log")
    sk = sinks_of(report)
    # the reference: the json lines (target csv) or the csv rows (target json)
    if target == "csv":
        events = sinktest.read_jsonl(dm.jsonl)
        ref_rows = [csv_want(a) for a in events]
    else:
        _, ref_rows = read_csv(healthy_csv)
        events = None
    n = len(ref_rows)
    check(n >= 5, f"{label}: {n} alert events, want several")
    check(0 < k < n, f"{label}: {k} of {n} events before the space was freed")
    check_collection(label, report, cap.datagrams, cap.records)
    check_summary_matches_stats(label, report, st)
    data = open(faulty, "rb").read()
    check(data.startswith(old), f"{label}: the earlier records were changed")
    new = data[len(old):]
    check(new == b"" or new.endswith(b"\n"), f"{label}: the file ends in a partial line")
    if target == "csv":
        # byte for byte: exactly the records that fitted, the page's room before the space
        # was freed, any room after (a short write is cut back off: exporters/sink_csv.c)
        size, fit, want_bytes = len(old), [], b""
        for i, a in enumerate(events):
            b = csv_row_bytes(a)
            if size + len(b) <= (page if i < k else 4 * page):
                size += len(b)
                fit.append(i)
                want_bytes += b
        check(new == want_bytes, f"{label}: csv holds {len(new)} new bytes, want "
              f"{len(want_bytes)} (events {fit})")
        try:
            _, rows = read_csv(faulty)
            n_old = len(read_csv_bytes(old)[1])
            got_rows = rows[n_old:]
        except Exception as e:  # noqa: BLE001
            check(False, f"{label}: csv not strict RFC 4180 after the disk filled: {e}")
            got_rows = []
        check(got_rows == [ref_rows[i] for i in fit],
              f"{label}: the new csv rows are not the events that fitted, field for field")
        written = fit
    else:
        # every line whole and one of the events (matched through the csv reference, field
        # for field), in order
        written, bad = [], 0
        for line in new.split(b"\n")[:-1]:
            try:
                row = csv_want(json.loads(line))
            except (ValueError, KeyError):
                bad += 1
                continue
            j = next((i for i in range(written[-1] + 1 if written else 0, n)
                      if ref_rows[i] == row), None)
            if j is None:
                bad += 1
            else:
                written.append(j)
        check(bad == 0, f"{label}: {bad} json lines broken or not an event of the csv")
    failed = n - len(written)
    check(any(i < k for i in written) and any(i >= k for i in written) and
          any(i not in written for i in range(k)),
          f"{label}: written {written}, {k} before the space was freed: want some written, "
          "some refused when full, and the writes resumed after")
    check(all(i in written for i in range(k, n)),
          f"{label}: events after the space was freed not all written: {written}")
    f_ = sk[target]
    check(f_["events"] == len(written) and f_["errors"] == failed,
          f"{label}: {target} sink counters {f_}, want events={len(written)} errors={failed}")
    lines = check_rate_limited(label, err, target, failed > 0, "No space left on device")
    check(not lines or lines[0][2] == 1, f"{label}: the first {target} failure line says "
          f"errors so far {lines[0][2] if lines else None}, want 1 (logged at once)")
    other = "json" if target == "csv" else "csv"
    check(sk[other]["events"] == n and sk[other]["errors"] == 0,
          f"{label}: {other} sink counters {sk[other]}")
    if events is not None:
        common_checks(label, report, err, events, rs, rs_before, local_missing=n,
                      local_why="Connection refused")
    else:
        r = sk["syslog-remote"]
        check(r["events"] == n and r["errors"] == 0 and r["dropped"] == 0,
              f"{label}: remote sink counters {r}")
        raw, _ = rsyslog_remote.wait_lines(rs, rs_before + n)
        check(len(raw) - rs_before == n, f"{label}: {len(raw) - rs_before} messages at "
              f"rsyslogd for {n} events")
        s_ = sk["syslog"]
        check(s_["errors"] == n and s_["events"] == 0, f"{label}: local syslog {s_}")
    say(f"  {'ok ' if not failures else '   '} {label}: {n} events, {k} before the space "
        f"was freed; {target}: {len(written)} written (into {room} bytes, full at "
        f"{full_size} bytes, then after the freeing), {failed} errors (ENOSPC), "
        f"{len(lines)} failure log line(s); {other} {sk[other]['events']}, remote "
        f"{sk['syslog-remote']['events']}, local syslog (stale /dev/log) errors "
        f"{sk['syslog']['errors']}")
    umount(fs)


def read_csv_bytes(data):
    p = os.path.join(tempfile.gettempdir(), f"spamflow-faults-{os.getpid()}.csv")
    with open(p, "wb") as f:
        f.write(data)
    try:
        return read_csv(p)
    finally:
        os.unlink(p)


def umount(path):
    if _libc.umount2(path.encode(), 0) != 0:
        say(f"  note: umount {path}: {os.strerror(ctypes.get_errno())}")


def common_checks(label, report, err, events, rs, rs_before, local_missing,
                  local_delivered=0, local_why="No such file or directory"):
    """json and remote got every event; local syslog: the first local_missing events counted
    as errors (no /dev/log), the rest delivered; its failure lines rate-limited."""
    n = len(events)
    sk = sinks_of(report)
    j = sk["json"]
    check(j["events"] == n and j["errors"] == 0, f"{label}: json sink counters {j}")
    r = sk["syslog-remote"]
    check(r["events"] == n and r["errors"] == 0 and r["dropped"] == 0 and r["queue"] == 0,
          f"{label}: remote sink counters {r}")
    check_remote(label, rs, rs_before, events)
    s = sk["syslog"]
    check(s["errors"] == local_missing and s["events"] == local_delivered,
          f"{label}: local syslog counters {s}, want errors={local_missing} "
          f"events={local_delivered}")
    check_rate_limited(label, err, "syslog", local_missing > 0,
                       f"/dev/log: {local_why}: no syslog daemon is listening")
    check(sum(1 for _, _, t in log_lines(err) if f"/dev/log: {local_why}: no syslog daemon "
              "listening; events are counted as errors" in t) == 1,
          f"{label}: want the one warning at start about /dev/log ({local_why})")


# ---- case: csv on a file system that goes read-only ----

def prepare_ext4(tmp):
    """ext4 on a loop device, errors=remount-ro: (mount point, device, its sysfs
    trigger_fs_error) or why not."""
    if not os.path.exists("/dev/loop-control"):
        return "no loop devices (/dev/loop-control)"
    img, fs = os.path.join(tmp, "ext4.img"), os.path.join(tmp, "ext4")
    os.mkdir(fs)
    with open(img, "wb") as f:
        f.truncate(4 << 20)
    r = run("mkfs.ext4", "-q", "-F", img)
    if r.returncode != 0:
        return f"mkfs.ext4: {r.stderr.strip()}"
    r = run("mount", "-o", "loop,errors=remount-ro", img, fs)
    if r.returncode != 0:
        return f"loop mount: {r.stderr.strip()}"
    dev = run("findmnt", "-no", "SOURCE", fs).stdout.strip()
    trigger = f"/sys/fs/ext4/{os.path.basename(dev)}/trigger_fs_error"
    if not os.path.exists(trigger):
        umount(fs)
        return f"no {trigger}"
    return fs, dev, trigger


def case_readonly(args, tmp, cap, rs, ext4):
    label = "readonly"
    d = os.path.join(tmp, label)
    os.mkdir(d)

    # at start: a read-only bind mount is refused, naming the file
    rw, ro = os.path.join(d, "rw"), os.path.join(d, "ro-bind")
    os.mkdir(rw)
    os.mkdir(ro)
    mount(rw, ro, None, MS_BIND)
    r = run("mount", "-o", "remount,bind,ro", ro)
    if check(r.returncode == 0, f"{label}: remount,bind,ro: {r.stderr}"):
        conf = os.path.join(d, "ro-start.conf")
        with open(conf, "w") as f:
            f.write(f"[sinks]\ncsv = {ro}/alerts.csv\n")
        r = run(args.spamflowd, "--state=", "--history=", "-c", conf, "-l", "127.0.0.1:0",
                "--stats-interval", "0")
        check(r.returncode == 1 and f"csv alerts file '{ro}/alerts.csv': Read-only file "
              "system" in r.stderr, f"{label}: csv on a read-only mount at start: exit "
              f"{r.returncode}: {r.stderr[-500:]}")
        say(f"  {'ok ' if r.returncode == 1 else 'BAD'} {label}: at start, csv on a read-only "
            f"bind mount: exit {r.returncode}, {r.stderr.strip().splitlines()[-1]!r}")
    umount(ro)

    # during the run: ext4 that remounts itself read-only on an error (mounted by
    # prepare_ext4() before /dev was replaced: a new loop device node would not show here)
    if isinstance(ext4, str):
        say(f"{label}: cannot run: {ext4}")
        return False
    fs, dev, trigger = ext4
    say(f"{label}: csv on ext4 ({dev}, errors=remount-ro) that goes read-only mid-run; "
        "/dev/log appears at the same moment; remote up")
    csv_path = os.path.join(fs, "alerts.csv")
    devlog = DevLog(os.path.join(d, "devlog.sock"))
    rs_before = len(rs.lines())
    dm = Daemon(args.spamflowd, d, base_conf(args, rs, csv_path))
    wait_connected(dm)
    half = [x for x in cap.items if x[0] < 0.5]
    rest = [(f - 0.5, p) for f, p in cap.items if f >= 0.5]
    exp = exporter_socket()
    send_paced(exp, dm.port, half, args.burst)
    st = dm.settle(len(half))
    k = len(sinktest.read_jsonl(dm.jsonl))
    with open(trigger, "w") as f:
        f.write("1")
    try:
        open(os.path.join(fs, "probe"), "w").close()
        check(False, f"{label}: {fs} still writable after trigger_fs_error")
    except OSError as e:
        check(e.errno == 30, f"{label}: after trigger_fs_error: {e}, want EROFS")
    os.symlink(devlog.path, "/dev/log")
    send_paced(exp, dm.port, rest, args.burst)
    st = dm.settle(cap.datagrams)
    report, err = dm.stop()
    local = devlog.take()
    devlog.close()
    os.unlink("/dev/log")
    events = sinktest.read_jsonl(dm.jsonl)
    n = len(events)
    check(0 < k < n, f"{label}: {k} events before the file system went read-only, {n} in "
          "all: want some on each side")
    check_collection(label, report, cap.datagrams, cap.records)
    check_summary_matches_stats(label, report, st)
    sk = sinks_of(report)
    try:
        h, rows = read_csv(csv_path)
        check(h == [name for name, _ in sinktest.fields(events[0])], f"{label}: csv header")
        check(rows == [csv_want(a) for a in events[:k]],
              f"{label}: the csv holds {len(rows)} records, want exactly the {k} events "
              "before the error")
    except Exception as e:  # noqa: BLE001
        check(False, f"{label}: csv unreadable: {e}")
    c = sk["csv"]
    check(c["events"] == k and c["errors"] == n - k,
          f"{label}: csv sink counters {c}, want events={k} errors={n - k}")
    lines = check_rate_limited(label, err, "csv", n > k, "Read-only file system")
    # local syslog: the first k events without /dev/log, the others delivered, in order
    common_checks(label, report, err, events, rs, rs_before, local_missing=k,
                  local_delivered=n - k)
    check(len(local) == n - k, f"{label}: /dev/log got {len(local)} lines, want {n - k}")
    for i, (line, a) in enumerate(zip(local, events[k:])):
        try:
            pri, ident, pid, kv = parse_local(line)
        except ValueError as e:
            check(False, f"{label}: /dev/log line {i + 1}: {e}")
            continue
        check(pri == LOG_DAEMON * 8 + SEVERITY[a["severity"]] and ident == "spamflowd" and
              pid == dm.p.pid and kv == [(x, v) for x, v in sinktest.fields(a)
                                         if v is not None],
              f"{label}: /dev/log line {i + 1} is not event {k + i + 1}")
    say(f"  {'ok ' if not failures else '   '} {label}: {n} events, {k} before the error; "
        f"csv: {c['events']} written, {c['errors']} errors (EROFS), {len(lines)} failure log "
        f"line(s); local syslog: {sk['syslog']['errors']} errors then {len(local)} delivered; "
        f"json {sk['json']['events']}, remote {sk['syslog-remote']['events']}")
    umount(fs)
    return True


# ---- case: remote syslog down for a long time ----

class Poller(threading.Thread):
    """Samples the remote sink's counters over the control socket."""

    def __init__(self, dm, every=0.1):
        super().__init__(daemon=True)
        self.dm, self.every = dm, every
        self.samples = []  # (monotonic, remote sink dict)
        self.stop_ = False

    def run(self):
        while not self.stop_:
            try:
                self.samples.append((time.monotonic(), self.dm.sink("syslog-remote")))
            except (OSError, ValueError):
                pass
            time.sleep(self.every)

    def events_at(self, key):
        """[(monotonic, value)] where key changed"""
        out, last = [], None
        for t, s in self.samples:
            if s[key] != last:
                out.append((t, s[key]))
                last = s[key]
        return out


def case_outage(args, tmp, cap, rs):
    label = f"outage {args.outage:g}s"
    say(f"{label}: remote syslog (tcp) stopped before the events, started after "
        f"{args.outage:g} s; csv and json on a healthy disk, local syslog without /dev/log")
    d = os.path.join(tmp, "outage")
    os.mkdir(d)
    csv_path = os.path.join(d, "alerts.csv")
    rs_before = len(rs.lines())
    dm = Daemon(args.spamflowd, d, base_conf(args, rs, csv_path))
    wait_connected(dm)
    poll = Poller(dm)
    poll.start()
    rs.stop()
    t_down, wall_down = time.monotonic(), time.time()
    # the scenario's datagrams over 80 % of the outage (its events land in 12 % .. 55 %),
    # plus --bots alerting hosts spread over 10 % .. 60 %
    sched = [(f * 0.8, p) for f, p in cap.items]
    bots_sent = 0
    if args.bots:
        stream = sinktest.Stream(dm.port)

        def bot():
            nonlocal bots_sent
            stream.step()
            bots_sent += 1

        sched += [(0.1 + 0.5 * i / args.bots, bot) for i in range(args.bots)]
        sched.sort(key=lambda x: x[0])
    send_paced(exporter_socket(), dm.port, sched, args.outage, t_start=t_down)
    sent_datagrams = cap.datagrams + 2 * bots_sent
    st_mid = dm.settle(sent_datagrams, timeout=60)
    queued_before_up = dm.sink("syslog-remote", st_mid)["queue"]
    while time.monotonic() < t_down + args.outage:
        time.sleep(0.05)
    rs.start()
    t_up, wall_up = time.monotonic(), time.time()
    n_json = len(sinktest.read_jsonl(dm.jsonl))
    # the queue drains: every event at rsyslogd (the wait: at most one backoff step)
    t_drained = None
    deadline = t_up + BACKOFF_MAX_S + 30
    while time.monotonic() < deadline:
        if len(rs.lines()) - rs_before >= n_json and len(rs.lines("parsed.log")) - \
                rs_before >= n_json:
            t_drained = time.monotonic()
            break
        time.sleep(0.05)
    time.sleep(0.5)
    poll.stop_ = True
    poll.join()
    st = dm.stats()
    report, err = dm.stop()
    events = sinktest.read_jsonl(dm.jsonl)
    n = len(events)
    during = [a for a in events if wall_down * 1000 <= a["time_ms"] <= wall_up * 1000]
    check(n >= 5, f"{label}: {n} alert events, want several")
    check(len(during) == n, f"{label}: {len(during)} of {n} events during the outage")
    check_collection(label, report, sent_datagrams, cap.records + 60 * bots_sent)
    check_summary_matches_stats(label, report, st)
    sk = sinks_of(report)
    r = sk["syslog-remote"]
    check(r["events"] == n and r["dropped"] == 0 and r["errors"] == 0 and r["queue"] == 0,
          f"{label}: remote sink counters {r}")
    check(r["connects"] == 2 and r["reconnects"] == 1 and r["disconnects"] == 1,
          f"{label}: remote connects {r['connects']} reconnects {r['reconnects']} "
          f"disconnects {r['disconnects']}, want 2/1/1")
    check(t_drained is not None, f"{label}: the queue did not drain within "
          f"{BACKOFF_MAX_S + 30} s of the server's return")
    got, missing = check_remote(label, rs, rs_before, events, timeout=5)

    # queue and reconnects, as sampled over the control socket
    queue_peak = max(s["queue"] for _, s in poll.samples)
    check(queue_peak == n and queued_before_up == n,
          f"{label}: queue peak {queue_peak}, {queued_before_up} queued when the server "
          f"came back, want {n}")
    fails = [t for t, v in poll.events_at("connect_failures")[1:]]
    conn = [t for t, v in poll.events_at("connected") if v]
    t_reconnect = next((t for t in conn if t > t_down), None)
    check(all(t < t_up + 0.5 for t in fails),
          f"{label}: a connect attempt failed {max(fails) - t_up:.1f} s after the server "
          "was back")
    # the backoff: 1 s doubling to 60 s between attempts (g_timeout_add_seconds rounds to
    # whole seconds; sampled every 0.1 s; the machine is loaded)
    gaps = [b - a for a, b in zip([t_down] + fails, fails + ([t_reconnect] if t_reconnect
                                                              else []))]
    want = [min(2 ** i, BACKOFF_MAX_S) for i in range(len(gaps))]
    sched_ok = all(w - 0.7 <= g <= w + 2.5 for g, w in zip(gaps[:-1], want))
    # the last gap ends at the reconnect: the attempt scheduled after the server came back
    if t_reconnect is not None and gaps:
        sched_ok &= gaps[-1] <= want[-1] + 2.5
    check(sched_ok, f"{label}: reconnect gaps {[round(g, 1) for g in gaps]} s, want about "
          f"{want}")
    max_fails = sum(1 for w in range(40) if sum(min(2 ** i, BACKOFF_MAX_S)
                                               for i in range(w + 1)) <= args.outage + 1)
    check(len(fails) <= max_fails + 1, f"{label}: {len(fails)} failed attempts in "
          f"{args.outage:g} s, the backoff allows {max_fails}")
    # rsyslogd going away is a close or a reset (seen under ASan): either way no event was
    # in flight
    lines = check_rate_limited(label, err, "syslog-remote", True,
                               r"^(server closed the connection|connection lost: .*); 0 events "
                               "queued, reconnecting$")
    check(len(lines) <= 1 + int((t_up - t_down) // RATE_LIMIT_S),
          f"{label}: {len(lines)} remote failure lines in {t_up - t_down:.0f} s")
    again = [t for t, _, text in log_lines(err) if re.search(
        r"syslog-remote sink '.*': connected again, sending (\d+) queued events", text)]
    check(len(again) == 1, f"{label}: {len(again)} 'connected again' lines, want 1")

    # the csv (healthy) has every event; local syslog counted every event as an error
    try:
        h, rows = read_csv(csv_path)
        check(rows == [csv_want(a) for a in events], f"{label}: csv != json events")
    except Exception as e:  # noqa: BLE001
        check(False, f"{label}: csv unreadable: {e}")
    check(sk["csv"]["events"] == n and sk["csv"]["errors"] == 0, f"{label}: csv {sk['csv']}")
    check_rate_limited(label, err, "csv", False)
    s = sk["syslog"]
    check(s["errors"] == n and s["events"] == 0, f"{label}: local syslog counters {s}")
    check_rate_limited(label, err, "syslog", True, "no syslog daemon is listening")
    check(sk["json"]["events"] == n and sk["json"]["errors"] == 0,
          f"{label}: json {sk['json']}")

    first_ev = min(a["time_ms"] for a in events) / 1000 - wall_down
    last_ev = max(a["time_ms"] for a in events) / 1000 - wall_down
    say(f"  {'ok ' if not failures else '   '} {label}: {n} events, all during the outage "
        f"(+{first_ev:.1f} .. +{last_ev:.1f} s after the server stopped); queue peak "
        f"{queue_peak}; {len(fails)} failed connect attempts, gaps "
        f"{[round(g, 1) for g in gaps]} s (the last one ends in the reconnect)")
    if t_reconnect is not None and t_drained is not None:
        say(f"      server back after {t_up - t_down:.1f} s; reconnected {t_reconnect - t_up:+.1f}"
            f" s after that, all {got} messages at rsyslogd {t_drained - t_up:.1f} s after "
            f"it ({max(t_drained - t_reconnect, 0):.2f} s after the reconnect was seen); lost "
            f"{missing}, "
            f"dropped {r['dropped']}; remote failure log lines {len(lines)}")
    return True


# ---- opt-in: a local syslog daemon that stops reading ----

def case_stalled(args, tmp, hosts=40):
    """/dev/log is a socket nobody reads (a hung syslog daemon). The local sink must count
    what it cannot hand over and never hold up the daemon. With syslog(3) (blocking send on
    glibc's own socket) spamflowd blocked in unix_wait_for_peer once net.unix.max_dgram_qlen
    messages (default 10) were waiting; the sink now sends without waiting."""
    label = "stalled"
    say(f"{label}: /dev/log a socket nobody reads, {hosts} alerting hosts (v5 stream)")
    d = os.path.join(tmp, label)
    os.mkdir(d)
    hung = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    hung.bind(os.path.join(d, "hung-devlog.sock"))
    os.symlink(hung.getsockname(), "/dev/log")
    dm = Daemon(args.spamflowd, d, "[sinks]\nsyslog = true\n")
    stream = sinktest.Stream(dm.port)
    for _ in range(hosts):
        stream.step()
        time.sleep(0.02)
    time.sleep(1)
    try:
        st = dm.stats()
        answered = True
    except (OSError, ValueError) as e:
        answered = False
        wchan = open(f"/proc/{dm.p.pid}/wchan").read()
        check(False, f"{label}: the daemon does not answer stats ({e!r}) while the syslog "
              f"daemon does not read: blocked in {wchan}")
    # read what waits: a blocked daemon goes on
    hung.settimeout(0.5)
    got = 0
    try:
        while True:
            hung.recv(65536)
            got += 1
    except socket.timeout:
        pass
    dm.settle(2 * hosts)
    report, err = dm.stop()
    os.unlink("/dev/log")
    hung.close()
    n = len(sinktest.read_jsonl(dm.jsonl))
    s_ = sinks_of(report)["syslog"]
    check(n == hosts, f"{label}: {n} alert events for {hosts} hosts")
    check(s_["events"] + s_["errors"] == n, f"{label}: local syslog counters {s_}")
    check_collection(label, report, 2 * hosts, 60 * hosts)
    say(f"  {'ok ' if answered else 'BAD'} {label}: stats answered while /dev/log was not "
        f"read: {answered}; {got} messages waiting at /dev/log; syslog {s_}")
    return True


# ---- main ----

def old_rows(args, tmp):
    """An earlier run's files to pre-fill the full file system with: {"csv": (header,
    record), "json": (b"", line)}: the fixture softflowd-ipfix.pcap's one alert."""
    p, pj, conf = (os.path.join(tmp, "old.csv"), os.path.join(tmp, "old.jsonl"),
                   os.path.join(tmp, "old.conf"))
    with open(conf, "w") as f:
        f.write(f"[sinks]\ncsv = {p}\n")
    r = run(args.spamflowd, "-c", conf, "--replay",
            os.path.join(args.fixtures, "softflowd-ipfix.pcap"), "--alerts", pj)
    if r.returncode != 0:
        sys.exit(f"replay for the old files: {r.stderr}")
    header, rest = open(p, "rb").read().split(b"\r\n", 1)
    first = rest.split(b"\r\n", 1)[0]
    line = open(pj, "rb").read().split(b"\n", 1)[0]
    return {"csv": (header + b"\r\n", first + b"\r\n"), "json": (b"", line + b"\n")}


def in_namespace(args, tmp):
    ext4 = prepare_ext4(tmp) if "readonly" in args.cases else None
    private_dev(tmp)
    cap = Capture(os.path.join(args.fixtures, args.capture),
                  os.path.join(args.fixtures, args.capture.replace(".pcap", ".expect.json")))
    say(f"{args.capture}: {cap.datagrams} datagrams, {cap.records} records, "
        f"{cap.span:.0f} s compressed into {args.burst:g} s (disk-*, readonly) and "
        f"{0.8 * args.outage:g} s (outage)")
    rs = sinktest.Rsyslogd(os.path.join(tmp))
    not_run = []
    try:
        rs.start()
        for case in args.cases:
            t0 = time.monotonic()
            if case in ("disk-csv", "disk-json"):
                case_disk(args, tmp, cap, rs, old_rows(args, tmp), case[5:])
            elif case == "readonly":
                if not case_readonly(args, tmp, cap, rs, ext4):
                    not_run.append(f"{case}: {ext4}")
            elif case == "stalled":
                case_stalled(args, tmp)
            elif case == "outage":
                if rs.proc is None:
                    rs.start()
                case_outage(args, tmp, cap, rs)
            say(f"  ({case}: {time.monotonic() - t0:.1f} s)")
    finally:
        rs.stop()
    failures.extend(rsyslog_remote.failures)
    if failures:
        sys.exit(f"FAIL: {len(failures)} checks failed (files in {tmp})")
    if not_run:
        skip("cases that could not run here: " + "; ".join(not_run))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--in-namespace", metavar="TMP")
    ap.add_argument("spamflowd")
    ap.add_argument("fixtures")
    ap.add_argument("--outage", type=float, default=15)
    ap.add_argument("--bots", type=int, default=0)
    ap.add_argument("--burst", type=float, default=6,
                    help="seconds the capture is compressed into (disk-*, readonly)")
    ap.add_argument("--room", type=int, default=None,
                    help="disk-*: bytes left in the file's page when the run starts (about; "
                    "default: csv 1300, json 2600: two or three events)")
    ap.add_argument("--cases", default="disk-csv,disk-json,readonly,outage,stalled")
    ap.add_argument("--capture", default="scenario-ipfix.pcap")
    ap.add_argument("--config", default=None,
                    help="base configuration (default: FIXTURES/scenario.conf)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()
    args.spamflowd = os.path.abspath(args.spamflowd)
    args.fixtures = os.path.abspath(args.fixtures)
    args.cases = [c for c in args.cases.split(",") if c]
    if args.config is None:
        c = os.path.join(args.fixtures, "scenario.conf")
        args.config = c if args.capture.startswith("scenario") else None
    if args.in_namespace:
        in_namespace(args, args.in_namespace)
        return
    if os.geteuid() != 0:
        skip("needs root: mount namespaces, tmpfs, loop devices")
    os.environ["PATH"] += ":/usr/sbin:/sbin"
    progs = ["unshare", "mount", "rsyslogd"]
    if "readonly" in args.cases:
        progs += ["findmnt", "mkfs.ext4"]
    sinktest.require_programs(*progs)
    probe = run("unshare", "-m", "--propagation", "private", "sh", "-c",
                "mount -t tmpfs x /mnt")
    if probe.returncode != 0:
        skip(f"cannot make a private mount namespace: {probe.stderr.strip()}")
    tmp = tempfile.mkdtemp(prefix="spamflow-sinkfaults-")
    argv = [a for a in sys.argv[1:]]
    r = subprocess.run(["unshare", "-m", "--propagation", "private", sys.executable,
                        os.path.abspath(__file__), "--in-namespace", tmp, *argv])
    if r.returncode == 0 and not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    sys.exit(r.returncode)


if __name__ == "__main__":
    main()
