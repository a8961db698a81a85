#!/usr/bin/python3
"""The exec hook action through the real daemon (issue 15): spamflowd live on loopback, fed
a NetFlow v5 stream (sinktest.py) that raises one smtp-fanout alert per host, with real
scripts in [actions] exec:
  0. a program missing or not executable: the daemon refuses to start, naming it;
  1. two scripts at once (exec = a, b): one records its arguments, environment and standard
     input: for each host exactly "raised" then "cleared" (a short [alerts] hold), the
     arguments of the event, stdin byte-equal to the JSON sink's line of the same event;
     the other hangs for one host (killed at exec_timeout, its background sleep too) and
     fails for another (exit 7, its stderr in the daemon's log): counted in
     `spamflowctl --json stats` and logged;
  2. a burst of 1,000 alerts (1,000 hosts) with exec_max_running = 2 and exec_queue = 20:
     never more than 2 runs at once, the drops counted (and logged once), every run counted,
     and the export decoded in full (records = what was sent, no sequence loss, no kernel
     drops).

usage: actions_exec.py SPAMFLOWD SPAMFLOWCTL
"""
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sinktest  # noqa: E402

failures = []


def check(cond, what):
    print(f"  {'ok ' if cond else 'FAIL'} {what}", flush=True)
    if not cond:
        failures.append(what)
    return cond


def script(path, body):
    with open(path, "w") as f:
        f.write("#!/bin/sh\n" + body)
    os.chmod(path, 0o755)
    return path


def ctl_stats(ctl, sock):
    r = subprocess.run([ctl, "-s", sock, "--json", "stats"], capture_output=True, text=True,
                       timeout=30)
    if r.returncode != 0 or not r.stdout.strip():
        raise SystemExit(f"spamflowctl stats: rc {r.returncode}: {r.stderr}")
    return json.loads(r.stdout)


def exec_stats(stats, path):
    mine = [a for a in stats["actions"] if a["kind"] == "exec" and a["name"] == path]
    if len(mine) != 1:
        raise SystemExit(f"no exec action {path} in stats: {stats['actions']}")
    return mine[0]


def wait_for(what, cond, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.2)
    return check(False, f"{what} within {timeout} s")


def pid_gone(pid):
    try:
        stat = open(f"/proc/{pid}/stat").read()
    except FileNotFoundError:
        return True
    return stat[stat.rindex(")") + 2] == "Z"


class Live:
    """sinktest.start_live with its stderr read all along (1,000 alert lines would fill the
    pipe and stall the daemon's log, not what this test measures)."""

    def __init__(self, spamflowd, cfg, alerts):
        self.d, self.port = sinktest.start_live(spamflowd, cfg, alerts)
        self.err = []
        self.t = threading.Thread(target=lambda: self.err.extend(self.d.stderr), daemon=True)
        self.t.start()

    def stop(self):
        self.d.send_signal(signal.SIGTERM)
        out = self.d.stdout.read()
        rc = self.d.wait(timeout=30)
        self.t.join(timeout=10)
        if rc != 0:
            raise SystemExit(f"spamflowd exited {rc}: {''.join(self.err)}")
        return json.loads(out), "".join(self.err)


def conf(tmp, sock, extra):
    path = os.path.join(tmp, "spamflow.conf")
    with open(path, "w") as f:
        f.write(f"[http]\nlisten =\n[control]\nsocket = {sock}\n" + extra)
    return path


def decoded_in_full(label, stats, hosts):
    t = stats["totals"]
    ex = stats["exporters"]
    check(t["records"] == hosts * 60 and t["datagrams"] == hosts * 2,
          f"{label}: {t['records']} records in {t['datagrams']} datagrams decoded, "
          f"{hosts * 60} in {hosts * 2} sent")
    check(len(ex) == 1 and ex[0]["seq_lost"] == 0 and ex[0]["malformed_total"] == 0,
          f"{label}: no sequence loss, nothing malformed")
    check(stats["listener"]["kernel_drops"] == 0,
          f"{label}: no kernel drops ({stats['listener']['kernel_drops']})")


# ---- 0. a program that is not there ----

def refused(spamflowd, ctl, tmp):
    """The daemon does not start without its hook, and says which program is missing."""
    void = os.path.join(tmp, "not-there")
    noexec = os.path.join(tmp, "noexec.sh")
    script(noexec, "exit 0\n")
    os.chmod(noexec, 0o644)
    for path, why in ((void, "no such file"), (noexec, "not executable by this user")):
        cfg = conf(tmp, "", f"[actions]\nexec = {path}\n")
        r = subprocess.run([spamflowd, "--state=", "--history=", "-c", cfg, "-l", "127.0.0.1:0",
                            "--stats-interval", "0"], capture_output=True, text=True,
                           timeout=20)
        check(r.returncode == 1 and f"exec '{path}': {why}" in r.stderr,
              f"refused: {why}: exit {r.returncode}, {r.stderr.strip()!r}")


# ---- 1. arguments, stdin, hang, fail ----

def record_hang_fail(spamflowd, ctl, tmp, hosts=4):
    label = "record/hang/fail"
    runs = os.path.join(tmp, "runs")
    os.mkdir(runs)
    record = script(os.path.join(tmp, "record.sh"),
                    f"f={runs}/$(date +%s%N).$$\n"
                    "{ printf '%s\\n' \"$@\"; "
                    "echo \"env $SPAMFLOW_EVENT $SPAMFLOW_HOST $SPAMFLOW_REASON "
                    "$SPAMFLOW_SEVERITY\"; cat; } > $f.tmp && mv $f.tmp $f\n")
    hangfail = script(os.path.join(tmp, "hangfail.sh"),
                      "cat > /dev/null\n"
                      "case \"$2\" in\n"
                      f"10.77.0.1) sleep 60 & echo $! > {tmp}/sleep.$1; wait;;\n"
                      "10.77.0.2) echo 'ban failed: no route to the router' >&2; exit 7;;\n"
                      "esac\n"
                      "echo \"banned $2\"\n")
    sock = os.path.join(tmp, "run", "control.sock")
    cfg = conf(tmp, sock,
               "[analyzer]\nslice = 1\nshort_window = 2\nlong_window = 3\n"
               "[alerts]\nhold = 1\n"
               f"[actions]\nexec = {record}, {hangfail}\nexec_timeout = 1\n")
    alerts = os.path.join(tmp, "alerts.jsonl")
    d = Live(spamflowd, cfg, alerts)
    try:
        stream = sinktest.Stream(d.port)
        for _ in range(hosts):
            stream.step()
            time.sleep(0.05)

        def settled():
            st = ctl_stats(ctl, sock)
            r, h = exec_stats(st, record), exec_stats(st, hangfail)
            return (r["started"] == 2 * hosts and h["started"] == 2 * hosts and
                    r["running"] + r["queued"] + h["running"] + h["queued"] == 0)

        wait_for(f"{label}: both scripts ran for {hosts} raised + {hosts} cleared", settled,
                 25)
        st = ctl_stats(ctl, sock)
    finally:
        report, err = d.stop()
    events = [line for line in open(alerts).read().splitlines()]
    parsed = [json.loads(line) for line in events]
    want = [(e, f"10.77.0.{i}") for i in range(1, hosts + 1) for e in ("raised", "cleared")]
    check(sorted((a["event"], a["host"]) for a in parsed) == sorted(want),
          f"{label}: the JSON sink has raised and cleared for each of {hosts} hosts")

    # record.sh: one run per event, each host's in order, stdin = the JSON sink's line
    files = sorted(f for f in glob.glob(os.path.join(runs, "*")) if not f.endswith(".tmp"))
    check(len(files) == 2 * hosts, f"{label}: record.sh ran {len(files)} times")
    per_host = {}
    for f in files:
        lines = open(f).read().split("\n")
        args, envline, stdin = lines[:4], lines[4], "\n".join(lines[5:])
        per_host.setdefault(args[1], []).append(args[0])
        line = [t for t, a in zip(events, parsed)
                if a["event"] == args[0] and a["host"] == args[1]]
        a = json.loads(line[0]) if line else None
        ok = check(a is not None and args == [a["event"], a["host"], a["reason"],
                                              a["severity"]],
                   f"{label}: argv {args} of an event in the JSON sink")
        ok and check(envline == "env " + " ".join(args),
                     f"{label}: SPAMFLOW_* environment {envline!r}")
        ok and check(stdin == line[0] + "\n",
                     f"{label}: stdin of {args[0]} {args[1]} equals the JSON sink's line")
    check(per_host == {h: ["raised", "cleared"] for h in {h for _, h in want}},
          f"{label}: per host exactly raised then cleared: {per_host}")

    r, h = exec_stats(st, record), exec_stats(st, hangfail)
    check((r["succeeded"], r["failed"], r["timed_out"], r["dropped"]) == (2 * hosts, 0, 0, 0),
          f"{label}: record.sh counted {r}")
    check((h["succeeded"], h["failed"], h["timed_out"], h["dropped"], h["errors"]) ==
          (2 * hosts - 4, 2, 2, 0, 4),
          f"{label}: hangfail.sh: 2 timed out (raised and cleared of 10.77.0.1), 2 failed "
          f"(10.77.0.2), the rest succeeded: {h}")
    check(h["filtered"] == 0 and h["acted_on"] == 0, f"{label}: filter counters {h}")
    for ev in ("raised", "cleared"):
        p = os.path.join(tmp, f"sleep.{ev}")
        pid = int(open(p).read()) if os.path.exists(p) else 0
        check(pid > 0 and pid_gone(pid),
              f"{label}: the hung {ev} run's background sleep ({pid}) was killed with it")
    check(f"exec action '{hangfail}': raised 10.77.0.1 smtp-fanout: no exit within 1 s" in err,
          f"{label}: the timeout logged")
    check(f"exec action '{hangfail}': raised 10.77.0.2 smtp-fanout: exited with status 7"
          in err, f"{label}: the failure logged")
    check(f"exec '{hangfail}' raised 10.77.0.2: ban failed: no route to the router" in err,
          f"{label}: the failing run's stderr in the log")
    check(f"exec '{hangfail}' cleared 10.77.0.3: banned 10.77.0.3" in err,
          f"{label}: a run's stdout in the log")
    check(err.count("no exit within") == 1 and err.count("exited with status") == 1,
          f"{label}: one warning each a minute, the second counted only")
    decoded_in_full(label, st, hosts)
    check(report["actions"][0]["started"] == 2 * hosts, f"{label}: the exit report too")


# ---- 2. a burst of 1,000 alerts ----

def burst(spamflowd, ctl, tmp, hosts=1000):
    label = f"burst of {hosts}"
    times = os.path.join(tmp, "times")
    quick = script(os.path.join(tmp, "quick.sh"),
                   "s=$(date +%s%N); sleep 0.02\n"
                   f"echo \"$s $(date +%s%N) $2\" >> {times}\n")
    sock = os.path.join(tmp, "run", "control.sock")
    cfg = conf(tmp, sock,
               f"[actions]\nexec = {quick}\nexec_max_running = 2\nexec_queue = 20\n")
    alerts = os.path.join(tmp, "alerts.jsonl")
    d = Live(spamflowd, cfg, alerts)
    try:
        stream = sinktest.Stream(d.port)
        t0 = time.monotonic()
        for i in range(hosts):
            stream.step()
            if i % 50 == 49:
                time.sleep(0.01)
        sent_s = time.monotonic() - t0

        def settled():
            st = ctl_stats(ctl, sock)
            x = exec_stats(st, quick)
            return (st["analyzer"]["events_raised"] == hosts and
                    x["events"] + x["dropped"] == hosts and x["running"] + x["queued"] == 0)

        wait_for(f"{label}: every alert queued or dropped, the queue drained", settled, 30)
        st = ctl_stats(ctl, sock)
    finally:
        report, err = d.stop()
    x = exec_stats(st, quick)
    print(f"  sent in {sent_s:.2f} s; exec: {x}")
    check(x["dropped"] > 0 and x["events"] + x["dropped"] == hosts,
          f"{label}: {x['events']} run, {x['dropped']} dropped (queue full), sum {hosts}")
    check(x["started"] == x["events"] == x["succeeded"] and x["failed"] == 0,
          f"{label}: every queued event ran and succeeded")
    lines = open(times).read().splitlines() if os.path.exists(times) else []
    check(len(lines) == x["started"], f"{label}: the script ran {len(lines)} times")
    spans = [tuple(int(v) for v in ln.split()[:2]) for ln in lines]
    most = max((sum(1 for s, e in spans if s <= t < e) for t, _ in spans), default=0)
    check(most == 2, f"{label}: at most 2 runs at once (seen {most})")
    check(err.count(f"exec action '{quick}': queue full") == 1,
          f"{label}: the overflow logged once")
    check(len(open(alerts).read().splitlines()) == hosts,
          f"{label}: the JSON sink has all {hosts} alerts")
    decoded_in_full(label, st, hosts)


# ---- 3. forget: the actions stop waiting for a cleared that will not come ----

def forget(spamflowd, ctl, tmp, hosts=3):
    label = "forget"
    ok = script(os.path.join(tmp, "ok.sh"), "cat > /dev/null\n")
    sock = os.path.join(tmp, "run", "control.sock")
    cfg = conf(tmp, sock,
               "[analyzer]\nslice = 1\nshort_window = 2\nlong_window = 3\n"
               "[alerts]\nhold = 600\n"
               f"[actions]\nexec = {ok}\n")
    d = Live(spamflowd, cfg, os.path.join(tmp, "alerts.jsonl"))
    try:
        stream = sinktest.Stream(d.port)
        for _ in range(hosts):
            stream.step()
            time.sleep(0.05)
        wait_for(f"{label}: {hosts} raised run",
                 lambda: exec_stats(ctl_stats(ctl, sock), ok)["succeeded"] == hosts, 20)
        before = exec_stats(ctl_stats(ctl, sock), ok)["acted_on"]
        r = subprocess.run([ctl, "-s", sock, "forget", "10.77.0.1"], capture_output=True,
                           text=True, timeout=30)
        after = exec_stats(ctl_stats(ctl, sock), ok)["acted_on"]
    finally:
        d.stop()
    check(r.returncode == 0 and before == hosts and after == hosts - 1,
          f"{label}: the exec filter waited for {before} clears, {after} after "
          f"`forget 10.77.0.1` (rc {r.returncode})")


def main():
    spamflowd, ctl = sys.argv[1], sys.argv[2]
    sinktest.require_programs("sh", "sleep", "date", "cat")
    tmp = tempfile.mkdtemp(prefix="spamflow-exec-")
    try:
        for name, fn in (("refused", refused), ("record", record_hang_fail),
                         ("burst", burst), ("forget", forget)):
            sub = os.path.join(tmp, name)
            os.mkdir(sub)
            print(name, flush=True)
            fn(spamflowd, ctl, sub)
    finally:
        if failures:
            print(f"files kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        sys.exit(f"FAIL: {len(failures)} checks failed")


if __name__ == "__main__":
    main()
