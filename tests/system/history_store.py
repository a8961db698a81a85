#!/usr/bin/env python3
"""The history store (issue 16) with a live daemon, real files and a real full disk.

A live spamflowd (1-s slices so that readings reach the disk within the test) is fed
sinktest's NetFlow v5 stream (each host reaches 60 distinct MXs: one smtp-fanout alert, and
a quarantine dry-run action), with `spamflowctl -j follow` running. Then:
  timeline   `host ADDR since=1h -j`: readings, events and actions; its last point (the
             live reading) equals `host -j`'s window values; `follow` got exactly the events
             of the --alerts sink and the actions of `history`.
  restart    the daemon restarts without a state file: the same query answers from disk
             (readings, the raised event: "since when"), the stored points end with the
             readings `host -j` gave before the stop.
  filters    `history since= host= reason=` against the --alerts file: exactly the events of
             that host and reason, newest first; until= cuts; limit= bounds.
  corrupt    one event record of a closed segment gets a byte flipped (found through the
             segment's index sidecar), another segment is cut mid-record: the next start
             skips and reports both (one log line per segment, stats history counters), and
             every other event is still read.
  full-disk  the store on a 64 KiB tmpfs filled by a file: ENOSPC counted, one log line,
             collection unaffected (records decoded = sent); space freed, writing resumes;
             /metrics has the store's counters as stats does, and promtool accepts it.
  stalled    a `follow` client that never reads is cut (followers_cut) while the daemon
             decodes every record sent.
Runs inside `unshare -m --propagation private` (re-executed with --in-namespace) for the
tmpfs. Needs root, unshare and promtool; a missing tool is a failure, never a skip.

usage: history_store.py SPAMFLOWD SPAMFLOWCTL
"""
import atexit
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sinktest  # noqa: E402

failures = []


def check(cond, what):
    print(("ok:   " if cond else "FAIL: ") + what, flush=True)
    if not cond:
        failures.append(what)


CONF = """
[analyzer]
slice = 1
[alerts]
update_interval = 0
[control]
socket = {dir}/ctl/sock
[http]
listen = {http}
[quarantine]
set = inet filter spamflow_history_test
dry_run = true
[history]
dir = {hist}
fsync = interval
"""


DAEMONS = []


@atexit.register
def kill_left():
    """A check that gives up (SystemExit) leaves no daemon behind."""
    for d in DAEMONS:
        if d.p.poll() is None:
            d.p.kill()
            d.p.wait()


class Daemon:
    def __init__(self, spamflowd, ctl, tmp, name, hist, http=""):
        self.ctl = ctl
        self.tmp = tmp
        self.sock = os.path.join(tmp, "ctl", "sock")
        self.conf = os.path.join(tmp, name + ".conf")
        self.alerts = os.path.join(tmp, name + ".alerts.jsonl")
        with open(self.conf, "w") as f:
            f.write(CONF.format(dir=tmp, hist=hist, http=http))
        self.port = sinktest.free_port()
        # stderr to a file: a pipe nobody reads while hundreds of alerts are logged would
        # block the daemon on its own log
        self.err_path = os.path.join(tmp, name + ".stderr")
        self.errf = open(self.err_path, "w")
        self.p = subprocess.Popen([spamflowd, "--state=", "-c", self.conf, "-l",
                                   f"127.0.0.1:{self.port}", "--alerts", self.alerts,
                                   "--stats-interval", "0", "--json"],
                                  stdout=subprocess.PIPE, stderr=self.errf, text=True)
        DAEMONS.append(self)
        end = time.monotonic() + 10
        while f"127.0.0.1:{self.port}" not in open(self.err_path).read():
            if self.p.poll() is not None or time.monotonic() > end:
                raise SystemExit(f"spamflowd did not start: {open(self.err_path).read()}")
            time.sleep(0.05)
        end = time.monotonic() + 10
        while not os.path.exists(self.sock) and time.monotonic() < end:
            time.sleep(0.05)

    def j(self, *args):
        r = subprocess.run([self.ctl, "-s", self.sock, "-j", *args], capture_output=True,
                           text=True, timeout=30)
        if not r.stdout.strip():
            raise SystemExit(f"spamflowctl {args}: {r.stderr}")
        return json.loads(r.stdout)

    def text(self, *args):
        return subprocess.run([self.ctl, "-s", self.sock, *args], capture_output=True,
                              text=True, timeout=30)

    def stats(self):
        return self.j("stats")

    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        out, _ = self.p.communicate(timeout=30)
        self.errf.close()
        err = open(self.err_path).read()
        if self.p.returncode != 0:
            raise SystemExit(f"spamflowd exited {self.p.returncode}: {err}")
        return json.loads(out), err


def collected(label, report, datagrams, records):
    tot, lst = report["totals"], report["listener"]
    check(tot["datagrams"] == datagrams and tot["records"] == records and
          lst["kernel_drops"] == 0,
          f"{label}: {tot['records']} records of {records} decoded, {tot['datagrams']} "
          f"datagrams of {datagrams}, kernel drops {lst['kernel_drops']}")


def send_hosts(port, first, n, pause=0.0):
    s = sinktest.Stream(port)
    s.host = first
    sent = 0
    for _ in range(n):
        s.step()
        sent += 2
        if pause:
            time.sleep(pause)
    return sent, 60 * n


def addr(i):
    return f"10.77.{i // 250}.{i % 250 + 1}"


def wait_for(what, fn, timeout=15):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = fn()
        if v:
            return v
        time.sleep(0.2)
    check(False, f"{what} (waited {timeout} s)")
    return None


def key(ev):
    return (ev["time_ms"], ev["host"], ev["reason"], ev["event"])


def read_idx(path):
    """history_seg.h: header (magic, version, pad, segment bytes, n), entries of 53 bytes."""
    data = open(path, "rb").read()
    magic, ver, _pad, seg_bytes, n = struct.unpack(">4sHHQQ", data[:24])
    assert magic == b"SFHX" and ver == 1
    out = []
    for i in range(n):
        off, ln, typ, t = struct.unpack(">QIBq", data[24 + 53 * i:24 + 53 * i + 21])
        out.append((off, ln, typ, t))
    return seg_bytes, out


def main_in_namespace(spamflowd, ctl, tmp):
    hist = os.path.join(tmp, "hist")
    t0 = time.monotonic()

    # ---- timeline, follow ----
    d = Daemon(spamflowd, ctl, tmp, "run1", hist)
    fol = subprocess.Popen([ctl, "-s", d.sock, "-j", "follow"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    wait_for("the follower is registered",
             lambda: d.stats()["control"]["followers"] == 1, 5)
    dg1, rec1 = send_hosts(d.port, 0, 5, pause=0.3)
    wait_for("5 raised events", lambda: len(sinktest.read_jsonl(d.alerts)) >= 5)
    time.sleep(2.5)  # a few 1-s slices reach the disk
    host = addr(0)
    tl = d.j("host", host, "since=1h")
    live = d.j("host", host)
    t = tl.get("timeline", {})
    pts = t.get("points", [])
    check(tl["ok"] and len(pts) >= 2, f"host {host} since=1h: {len(pts)} timeline points")
    check(t.get("slice_ms") == 1000 and t.get("truncated") is False and t.get("stored") is True,
          "timeline: slice_ms 1000, not truncated, from the store")
    check(all(pts[i]["t"] < pts[i + 1]["t"] for i in range(len(pts) - 1)),
          "timeline points oldest first")
    check(pts and pts[-1].get("live") is True, "the last point is the reading now")
    want = {r["reason"]: r["value"] for r in live["reasons"] if "value" in r}
    got = pts[-1]["reasons"] if pts else {}
    same = set(want) == set(got) and all(
        got[r]["short"] == want[r]["short"] and
        got[r]["long"] == (0 if r == "smtp-novelty" else want[r]["long"]) for r in want)
    check(same, f"last point equals host -j's windows: {got} vs {want}")
    thr = {r["reason"]: r["threshold"] for r in live["reasons"] if "threshold" in r}
    check(all(got[r]["short_threshold"] == thr[r]["short"] for r in thr if r in got),
          "last point's thresholds equal host -j's")
    stored = [p for p in pts if not p.get("live")]
    check(stored and stored[-1]["reasons"].get("smtp-fanout", {}).get("short") == 60,
          "a stored reading has the 60 destinations")
    evs = t.get("events", [])
    check(any(e["event"] == "raised" and e["reason"] == "smtp-fanout" and e["host"] == host
              for e in evs), "timeline events: the raised smtp-fanout")
    acts = t.get("actions", [])
    check(any(a["action"] == "quarantine-dry-run" and a["host"] == host for a in acts),
          f"timeline actions: the quarantine dry-run ({len(acts)})")
    txt = d.text("host", host, "since=1h").stdout
    check("timeline" in txt and any(c in txt for c in "▁▂▃▄▅▆▇█"),
          "spamflowctl host since=: a sparkline in the table view")
    before_stop = live
    # follow got exactly what was raised while it ran
    fol.send_signal(signal.SIGINT)
    fout, _ = fol.communicate(timeout=10)
    lines = [json.loads(x) for x in fout.splitlines() if x.strip()]
    fev = [x["event"] for x in lines if x.get("type") == "event"]
    fact = [x["action"] for x in lines if x.get("type") == "action"]
    sink = sinktest.read_jsonl(d.alerts)
    check(sorted(map(key, fev)) == sorted(map(key, sink)),
          f"follow: exactly the {len(sink)} events of the --alerts sink ({len(fev)})")
    mem = d.j("history")
    check(sorted((a["time_ms"], a["action"], a["host"]) for a in fact) ==
          sorted((a["time_ms"], a["action"], a["host"]) for a in mem["actions"]),
          f"follow: exactly the {len(mem['actions'])} actions of history ({len(fact)})")
    rep1, err1 = d.stop()
    collected("run 1", rep1, dg1, rec1)

    # ---- restart: the same query from disk ----
    d = Daemon(spamflowd, ctl, tmp, "run2", hist)
    tl2 = d.j("host", host, "since=1h")
    pts2 = tl2.get("timeline", {}).get("points", [])
    check(tl2["ok"] and len(pts2) >= len(stored) and not any(p.get("live") for p in pts2),
          f"after a restart (no state file): {len(pts2)} points from disk")
    last = pts2[-1]["reasons"] if pts2 else {}
    want = {r["reason"]: r["value"] for r in before_stop["reasons"] if "value" in r}
    check(all(last.get(r, {}).get("short") == want[r]["short"] for r in want),
          "the stored series ends with the readings host -j gave before the stop")
    evs2 = tl2.get("timeline", {}).get("events", [])
    raised = [e for e in evs2 if e["event"] == "raised"]
    check(raised and pts2 and pts2[0]["t"] <= raised[0]["time_ms"] + 1000,
          "since when: the series starts by the raised event, read from disk")
    # a second batch in run 2, for the filters and a second segment
    dg2, rec2 = send_hosts(d.port, 5, 3, pause=0.2)
    wait_for("3 more raised events", lambda: len(sinktest.read_jsonl(d.alerts)) >= 3)
    time.sleep(1.5)

    # ---- filters ----
    all_events = sinktest.read_jsonl(os.path.join(tmp, "run1.alerts.jsonl")) + \
        sinktest.read_jsonl(d.alerts)
    h2 = addr(6)
    r = d.j("history", "since=1h", f"host={h2}", "reason=smtp-fanout")
    want = sorted([e for e in all_events if e["host"] == h2 and e["reason"] == "smtp-fanout"],
                  key=lambda e: -e["time_ms"])
    check(r["ok"] and r.get("source") == "disk" and list(map(key, r["events"])) ==
          list(map(key, want)), f"history host={h2} reason=smtp-fanout: exactly "
          f"{len(want)} events, newest first")
    r = d.j("history", "since=1h", "reason=smtp-blocked")
    check(r["ok"] and r["events"] == [] and r["total"] == 0, "reason=smtp-blocked: none")
    r = d.j("history", "since=1h")
    check(sorted(map(key, r["events"])) == sorted(map(key, all_events)),
          f"history since=1h: every one of the {len(all_events)} events")
    cut = min(e["time_ms"] for e in sinktest.read_jsonl(d.alerts)) - 1
    iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(cut / 1000))
    r = d.j("history", "since=1h", f"until={iso}")
    check(r["ok"] and all(e["time_ms"] <= cut for e in r["events"]) and
          len(r["events"]) >= 5, f"until={iso}: only the first run's events")
    r = d.j("history", "since=1h", "limit=2")
    check(r["shown"] == 2 and r["total"] == len(all_events), "limit=2: 2 shown, all counted")
    rep2, _ = d.stop()
    collected("run 2", rep2, dg2, rec2)

    # ---- corrupt segments ----
    segs = sorted(f for f in os.listdir(hist) if f.endswith(".seg"))
    check(len(segs) >= 2, f"{len(segs)} segments (one per start)")
    a = os.path.join(hist, segs[0])
    _, ents = read_idx(a + ".idx")
    ev_ents = [e for e in ents if e[2] == 2]
    off, ln, _typ, t_flip = ev_ents[0]
    with open(a, "r+b") as f:
        f.seek(off + 5 + 40)  # inside the payload's JSON
        b = f.read(1)
        f.seek(off + 5 + 40)
        f.write(bytes([b[0] ^ 0x55]))
    bpath = os.path.join(hist, segs[-1])
    size = os.path.getsize(bpath)
    _, bents = read_idx(bpath + ".idx")
    with open(bpath, "r+b") as f:
        f.truncate(size - 3)  # inside its last record
    flipped = [e for e in all_events if e["time_ms"] == t_flip]
    d = Daemon(spamflowd, ctl, tmp, "run3", hist)
    r = d.j("history", "since=1h")
    st = d.stats()["history"]
    lost = {key(e) for e in all_events} - {key(e) for e in r["events"]}
    check(r["ok"] and len(lost) == 1 and list(lost)[0][0] == t_flip,
          f"the flipped event alone is missing, {len(r['events'])} others read ({lost})")
    check(st["corrupt_records"] >= 1 and st["truncated_records"] >= 1 and
          st["damaged_segments"] >= 2 and st["index_rebuilt"] >= 1,
          f"stats history: corrupt {st['corrupt_records']}, truncated "
          f"{st['truncated_records']}, damaged segments {st['damaged_segments']}, "
          f"index rebuilt {st['index_rebuilt']}")
    tl3 = d.j("host", host, "since=1h")
    check(len(tl3["timeline"]["points"]) >= 2, "the host's readings still read")
    _, err3 = d.stop()
    dmg = [x for x in err3.splitlines() if "history:" in x and "skipped" in x]
    check(len(dmg) == 2 and any(segs[0] in x for x in dmg) and any(segs[-1] in x for x in dmg),
          f"one log line per damaged segment: {dmg}")
    del flipped

    # ---- full disk ----
    full = os.path.join(tmp, "full")
    os.makedirs(full)
    sinktest.mount("spamflow-history-full", full, "tmpfs", 0, "size=64k,mode=755")
    fill = os.path.join(full, "filler")
    with open(fill, "wb") as f:
        try:
            f.write(b"x" * (64 * 1024 - 12 * 1024))
        except OSError:
            pass
    os.makedirs(os.path.join(tmp, "ctl"), exist_ok=True)
    http_port = sinktest.free_port(socket.SOCK_STREAM)
    d = Daemon(spamflowd, ctl, tmp, "run4", os.path.join(full, "hist"),
               http=f"127.0.0.1:{http_port}")
    dg4, rec4 = send_hosts(d.port, 100, 40)
    wait_for("ENOSPC counted", lambda: d.stats()["history"]["enospc"] > 0, 15)
    s = d.stats()
    check(s["history"]["enospc"] > 0, f"full disk: enospc {s['history']['enospc']}")
    os.unlink(fill)
    w0 = s["history"]["records_written"]
    e0 = s["history"]["enospc"]
    dg5, rec5 = send_hosts(d.port, 200, 5)
    wait_for("writing resumes", lambda: d.stats()["history"]["records_written"] > w0 + 3, 15)
    s = d.stats()
    check(s["history"]["enospc"] == e0 or s["history"]["records_written"] > w0,
          "space freed: records written again")
    # /metrics: the store's counters, as stats has them, and promtool accepts them
    # (read between two equal stats replies: the writer may still be catching up after the
    # freed space, and a record written between the two reads is no disagreement)
    import urllib.request
    for _ in range(20):
        before = d.stats()["history"]
        text = urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=10).read()
        text = text.decode()
        s = d.stats()
        if s["history"] == before:
            break
        time.sleep(0.3)
    m = {ln.split()[0]: int(float(ln.split()[1])) for ln in text.splitlines()
         if ln.startswith("spamflow_history_")}
    check(m.get("spamflow_history_enospc_total") == s["history"]["enospc"] and
          m.get("spamflow_history_records_written_total") == s["history"]["records_written"] and
          m.get("spamflow_history_segments") == s["history"]["segments"],
          f"/metrics spamflow_history_*: {m}")
    p = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                       text=True, timeout=30)
    check(p.returncode == 0, f"promtool check metrics: {p.stdout}{p.stderr}")
    rep4, err4 = d.stop()
    collected("full disk: collection unaffected", rep4, dg4 + dg5, rec4 + rec5)
    nospc = [x for x in err4.splitlines() if "history:" in x and "No space" in x]
    check(1 <= len(nospc) <= 2, f"ENOSPC logged once (rate-limited): {len(nospc)} lines")

    # ---- stalled follower ----
    d = Daemon(spamflowd, ctl, tmp, "run5", os.path.join(tmp, "hist5"))
    stuck = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.connect(d.sock)
    stuck.sendall(b"follow\n")
    wait_for("the stalled follower is registered",
             lambda: d.stats()["control"]["followers"] == 1, 5)
    dg6, rec6 = send_hosts(d.port, 1000, 500)
    wait_for("the stalled follower is cut",
             lambda: d.stats()["control"]["followers_cut"] >= 1, 20)
    s = d.stats()
    check(s["control"]["followers_cut"] == 1 and s["control"]["followers"] == 0,
          "stalled follower cut and counted")
    rep6, _ = d.stop()
    collected("stalled follower: collection unaffected", rep6, dg6, rec6)
    stuck.close()
    print(f"history_store: {time.monotonic() - t0:.1f} s", flush=True)
    return 1 if failures else 0


def main():
    if len(sys.argv) >= 5 and sys.argv[3] == "--in-namespace":
        sys.exit(main_in_namespace(sys.argv[1], sys.argv[2], sys.argv[4]))
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    sinktest.PACKAGES.update({"promtool": "prometheus"})
    sinktest.require_programs("unshare", "promtool")
    if os.geteuid() != 0:
        print("FAIL: needs root (a tmpfs for the full disk)")
        sys.exit(1)
    tmp = tempfile.mkdtemp(prefix="spamflow-history-")
    try:
        r = subprocess.run(["unshare", "-m", "--propagation", "private", sys.executable,
                            os.path.abspath(__file__), sys.argv[1], sys.argv[2],
                            "--in-namespace", tmp])
        sys.exit(r.returncode)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
