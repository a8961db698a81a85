#!/usr/bin/python3
"""Every alert sink at once (issue 4, "Done when"): one replay of a scenario capture with
the json, csv, local syslog and remote syslog sinks, the GeoLite2-style test databases and
an evidence directory. Checked, each form parsed on its own:
  - the JSON lines, the CSV rows (csv module, strict), the local syslog(3) lines (as they
    arrive on /dev/log) and the RFC 5424 messages (as a real rsyslogd receives them, over
    UDP in one run and TCP in another) are the same events in the same order, field for
    field (sinktest.fields() is the documented column list);
  - PRI/severity, ident, PID and MSGID of both syslog forms;
  - every top destination's country/ASN is what mmdblookup says, countries/asns equal an
    independent count, and every raised/updated event names its own IPFIX evidence file
    (one per such event, none for cleared) that tshark reads with exactly the flows that
    fed the window (enrich_evidence.check); the two runs write identical files;
  - the --json summary: every sink's events = number of events, errors = dropped = 0;
  - a sink failure is harmless: csv = /dev/full (every write fails with ENOSPC), the
    daemon still exits 0, the JSON lines and both syslog forms carry every event, and the
    csv sink's errors = number of events.

Local syslog without touching the machine's syslog: spamflowd runs in a private mount
namespace (unshare -m --propagation private) whose /dev is a private tmpfs holding bind
mounts of every entry of the real /dev (null, zero, urandom, pts, shm ... and symlinks
copied) plus `log`, a symlink to this test's own Unix datagram socket (this script, run
as `all_sinks.py --in-namespace TMP SOCKET SPAMFLOWD ARGS...`, sets it up and execs). Nothing outside the
namespace changes; the namespace ends with the daemon. Without root the test is skipped
(77); without unshare, mount, rsyslogd, mmdblookup or tshark it fails.

usage: all_sinks.py SPAMFLOWD MMDB_DIR CAPTURE CONFIG
"""
import csv
import hashlib
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import enrich_evidence  # noqa: E402
import sinktest  # noqa: E402
from csv_sink import read_csv  # noqa: E402
from rsyslog_remote import parse_5424  # noqa: E402

# tshark once per evidence file: enrich_evidence.check() and the counts here share it
_tshark = enrich_evidence.tshark_records
_tshark_memo = {}


def tshark_records(path):
    """by content: the second run's files are the same bytes (checked below)"""
    with open(path, "rb") as f:
        key = hashlib.sha256(f.read()).hexdigest()
    if key not in _tshark_memo:
        _tshark_memo[key] = _tshark(path)
    return _tshark_memo[key]


enrich_evidence.tshark_records = tshark_records

SEVERITY = {"info": 6, "notice": 5, "warning": 4, "critical": 2}
LOG_DAEMON = 3
IDENT = "spamflowd"
failures = []


def ns_exec(tmp, sock, argv):
    """Inside the private mount namespace (unshare -m --propagation private): replace /dev
    by a tmpfs mirroring the real one (bind mounts, symlinks copied) plus log -> sock, then
    exec argv. mount(2) directly: mount(8) once per /dev entry takes seconds."""
    sinktest.private_dev(tmp)
    os.symlink(sock, "/dev/log")
    os.execv(argv[0], argv)


def check(cond, what):
    if not cond:
        failures.append(what)
        print("  FAIL", what)
    return cond


def skip(why):
    print("SKIP:", why)
    sys.exit(77)


class DevLog:
    """A Unix datagram socket standing in for /dev/log; keeps every datagram received."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.2)
        self.msgs = []
        self.lock = threading.Lock()
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            with self.lock:
                self.msgs.append(data.decode("utf-8", "replace"))

    def take(self):
        """The datagrams since the last take(), once none has come for 0.5 s."""
        n = -1
        while True:
            with self.lock:
                if len(self.msgs) == n:
                    out, self.msgs = self.msgs, []
                    return out
                n = len(self.msgs)
            time.sleep(0.5)

    def close(self):
        self.stop = True
        self.thread.join()
        self.sock.close()


def parse_local(line):
    """(pri, ident, pid, [(key, value)]) of '<PRI>Mmm dd hh:mm:ss ident[pid]: k=v ...'."""
    m = re.match(r"<(\d{1,3})>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d (\S+)\[(\d+)\]: (.*)\Z",
                 line, re.S)
    if m is None:
        raise ValueError(f"not a syslog(3) line: {line[:100]}")
    kv = []
    for word in shlex.split(m.group(4)):
        k, sep, v = word.partition("=")
        if not sep:
            raise ValueError(f"not key=value: {word[:60]}")
        kv.append((k, v))
    return int(m.group(1)), m.group(2), int(m.group(3)), kv


def non_null(a):
    return [(n, v) for n, v in sinktest.fields(a) if v is not None]


def compare_forms(label, events, csv_rows, local, remote, parsed, pid, transport):
    """Each form against the JSON lines, in order, field by field. Returns per-form counts."""
    n = len(events)
    ok = True
    if csv_rows is not None:
        ok &= check(len(csv_rows) == n, f"{label}: csv {len(csv_rows)} rows, {n} events")
        for i, (row, a) in enumerate(zip(csv_rows, events)):
            want = [v if v is not None else "" for _, v in sinktest.fields(a)]
            if not check(row == want, f"{label}: csv row {i + 1} differs"):
                for (name, w), g in zip(sinktest.fields(a), row):
                    if g != (w or ""):
                        print(f"      {name}: csv {g!r} json {w!r}")
                ok = False
    ok &= check(len(local) == n, f"{label}: local syslog {len(local)} lines, {n} events")
    for i, (line, a) in enumerate(zip(local, events)):
        try:
            pri, ident, lpid, kv = parse_local(line)
        except ValueError as e:
            ok = check(False, f"{label}: local syslog line {i + 1}: {e}")
            continue
        ok &= check(pri == LOG_DAEMON * 8 + SEVERITY[a["severity"]] and ident == IDENT and
                    lpid == pid, f"{label}: local line {i + 1}: <{pri}> {ident}[{lpid}] for "
                    f"{a['severity']}, pid {pid}")
        want = non_null(a)
        if not check(kv == want, f"{label}: local syslog line {i + 1} differs"):
            dk, dw = dict(kv), dict(want)
            for k in dict.fromkeys([k for k, _ in want] + [k for k, _ in kv]):
                if dk.get(k) != dw.get(k):
                    print(f"      {k}: syslog {dk.get(k)!r} json {dw.get(k)!r}")
            ok = False
    ok &= check(len(remote) == n, f"{label}: RFC 5424 {len(remote)} messages ({transport}), "
                f"{n} events")
    for i, (line, pline, a) in enumerate(zip(remote, parsed, events)):
        try:
            pri, ts, host, app, procid, msgid, sd_id, params, sd_text, msg = parse_5424(line)
        except (ValueError, IndexError) as e:
            ok = check(False, f"{label}: RFC 5424 message {i + 1}: {e}")
            continue
        ok &= check(pri == LOG_DAEMON * 8 + SEVERITY[a["severity"]] and app == IDENT and
                    procid == str(pid) and msgid == a["event"] and sd_id == sinktest.SD_ID,
                    f"{label}: RFC 5424 message {i + 1} header <{pri}> {app} {procid} "
                    f"{msgid} {sd_id}")
        want = non_null(a)
        if not check(params == want, f"{label}: RFC 5424 message {i + 1} SD differs"):
            dk, dw = dict(params), dict(want)
            for k in dict.fromkeys([k for k, _ in want] + [k for k, _ in params]):
                if dk.get(k) != dw.get(k):
                    print(f"      {k}: rfc5424 {dk.get(k)!r} json {dw.get(k)!r}")
            ok = False
        # rsyslog's own parse of the same message
        ppri, papp, pproc, pmsgid, psd = pline.split("|", 4)
        ok &= check((int(ppri), papp, pproc, pmsgid, psd) == (pri, app, procid, msgid,
                                                                sd_text),
                    f"{label}: rsyslog parsed message {i + 1} differently: {pline[:150]}")
    return ok


def sink_table(report):
    return {s["kind"]: s for s in report["sinks"]}


def run_daemon(spamflowd, tmp, devlog, conf, capture, flows=None):
    args = [spamflowd, "-c", conf, "--replay", capture, "--json"]
    if flows:
        args += ["--flows", flows]
    p = subprocess.Popen(["unshare", "-m", "--propagation", "private", sys.executable,
                          os.path.abspath(__file__), "--in-namespace", tmp, devlog.path,
                          *args],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = p.communicate(timeout=120)
    return p.pid, p.returncode, out, err


def one_run(spamflowd, tmp, devlog, rs, capture, config_text, dbs, name, transport,
            csv_path=None):
    """One replay with every sink; returns a dict of what came out (or None)."""
    d = os.path.join(tmp, name)
    os.mkdir(d)
    jsonl, evdir, flows = (os.path.join(d, "alerts.jsonl"), os.path.join(d, "evidence"),
                           os.path.join(d, "flows.csv"))
    csv_path = csv_path or os.path.join(d, "alerts.csv")
    conf = os.path.join(d, "spamflow.conf")
    with open(conf, "w") as f:
        f.write(config_text)
        f.write(f"\n[sinks]\njson = {jsonl}\ncsv = {csv_path}\nsyslog = true\n"
                f"syslog_ident = {IDENT}\nsyslog_facility = daemon\n"
                f"remote = {transport}://127.0.0.1:{rs.port}\n"
                f"[enrich]\ncountry_db = {dbs[0]}\nasn_db = {dbs[1]}\n"
                f"[evidence]\ndir = {evdir}\n")
    before = len(rs.lines())
    pid, rc, out, err = run_daemon(spamflowd, d, devlog, conf, capture, flows)
    label = f"{name} ({transport})"
    if not check(rc == 0, f"{label}: exit {rc}: {err[-2000:]}"):
        return None
    check(not re.search(r"runtime error:|AddressSanitizer|LeakSanitizer", err),
          f"{label}: sanitizer report: {err[-2000:]}")
    report = json.loads(out)
    events = sinktest.read_jsonl(jsonl)
    local = devlog.take()
    raw, parsed = [], []
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        raw, parsed = rs.lines()[before:], rs.lines("parsed.log")[before:]
        if len(raw) >= len(events) and len(parsed) >= len(events):
            break
        time.sleep(0.1)
    time.sleep(0.3)  # and nothing more (a duplicate) comes
    raw, parsed = rs.lines()[before:], rs.lines("parsed.log")[before:]
    return {"label": label, "pid": pid, "report": report, "events": events, "local": local,
            "raw": raw, "parsed": parsed, "evdir": evdir, "flows": flows, "csv": csv_path,
            "transport": transport, "stderr": err}


def check_all_sinks(r, dbs, mtas, slice_ms):
    label, events, report = r["label"], r["events"], r["report"]
    n = len(events)
    check(n > 0, f"{label}: no alerts at all")
    header, rows = read_csv(r["csv"])
    check(header == [k for k, _ in sinktest.fields(events[0])], f"{label}: csv header {header}")
    ok = compare_forms(label, events, rows, r["local"], r["raw"], r["parsed"], r["pid"],
                       r["transport"])
    st = sink_table(report)
    check(sorted(st) == ["csv", "json", "syslog", "syslog-remote"],
          f"{label}: sinks in the summary: {sorted(st)}")
    for kind, s in st.items():
        check(s["events"] == n and s["errors"] == 0 and s.get("dropped", 0) == 0,
              f"{label}: {kind} sink counters {s} for {n} events")
    # enrichment and evidence, independently (mmdblookup, tshark, the --flows rows)
    with open(r["flows"]) as f:
        flow_rows = list(csv.DictReader(f))
    problems, n_checked = enrich_evidence.check(flow_rows, events, r["evdir"], "geolite",
                                                dbs, mtas, slice_ms)
    for p in problems:
        check(False, f"{label}: {p}")
    per_event = []
    for a in events:
        ccs = {t["country"] for t in a["top"] if t["country"]}
        asns = {t["asn"] for t in a["top"] if t["asn"]}
        # the window's destinations include the top ones
        check(a["countries"] >= len(ccs) and a["asns"] >= len(asns),
              f"{label}: {a['event']} {a['host']}: countries/asns {a['countries']}/"
              f"{a['asns']} < the top destinations' {len(ccs)}/{len(asns)}")
        ev = a["evidence"]
        nflows = None
        if a["event"] == "cleared":
            check(not ev, f"{label}: cleared {a['host']} names evidence {ev}")
        elif check(bool(ev) and os.path.dirname(ev) == r["evdir"] and os.path.isfile(ev),
                   f"{label}: {a['event']} {a['host']}: evidence {ev!r}"):
            t = time.strftime("%Y%m%dT%H%M%S", time.gmtime(a["time_ms"] // 1000))
            base = f"{t}.{a['time_ms'] % 1000:03d}Z-{a['reason']}-" + a["host"].replace(":", "_")
            check(re.fullmatch(re.escape(base) + r"(-\d+)?\.ipfix", os.path.basename(ev)),
                  f"{label}: evidence name {os.path.basename(ev)} for {base}")
            nflows = len(tshark_records(ev))
            check(nflows > 0, f"{label}: tshark finds no flows in {ev}")
        per_event.append((a, ccs, asns, nflows))
    files = sorted(os.listdir(r["evdir"]))
    want_files = sum(1 for a in events if a["event"] != "cleared")
    check(len(files) == want_files,
          f"{label}: {len(files)} evidence files, {want_files} raised/updated events")
    ev_sum = report.get("evidence", {})
    check(ev_sum.get("evidence_files_written") == want_files and
          ev_sum.get("evidence_write_errors") == 0, f"{label}: evidence summary {ev_sum}")
    return ok, n_checked, per_event


def failing_csv_run(spamflowd, tmp, devlog, rs, capture, config_text, dbs):
    r = one_run(spamflowd, tmp, devlog, rs, capture, config_text, dbs, "csv-dev-full", "tcp",
                csv_path="/dev/full")
    if r is None:
        return None
    label, events = r["label"], r["events"]
    n = len(events)
    check(n > 0, f"{label}: no alerts")
    compare_forms(label, events, None, r["local"], r["raw"], r["parsed"], r["pid"], "tcp")
    st = sink_table(r["report"])
    c = st.get("csv", {})
    check(c.get("errors") == n and c.get("events") == 0,
          f"{label}: csv sink counters {c}, want errors = {n}, events = 0")
    for kind in ("json", "syslog", "syslog-remote"):
        s = st.get(kind, {})
        check(s.get("events") == n and s.get("errors") == 0,
              f"{label}: {kind} sink counters {s} for {n} events")
    logged = [x for x in r["stderr"].splitlines() if "/dev/full" in x]
    check(0 < len(logged) <= 3, f"{label}: {len(logged)} log lines about /dev/full "
          "(want a few: rate-limited)")
    return r, c, logged


def main():
    if sys.argv[1] == "--in-namespace":
        ns_exec(sys.argv[2], sys.argv[3], sys.argv[4:])
    spamflowd, mmdb_dir, capture, config = sys.argv[1:5]
    if os.geteuid() != 0:
        skip("needs root: a private mount namespace over /dev for local syslog")
    sinktest.require_programs("unshare", "mount", "rsyslogd", "mmdblookup", "tshark")
    os.environ["PATH"] += ":/usr/sbin:/sbin"
    probe = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                            "mount -t tmpfs x /mnt"], capture_output=True, text=True)
    if probe.returncode != 0:
        skip(f"cannot make a private mount namespace: {probe.stderr.strip()}")
    dbs = (os.path.join(mmdb_dir, "geolite-country.mmdb"),
           os.path.join(mmdb_dir, "geolite-asn.mmdb"))
    for db in dbs:
        if not os.path.isfile(db):
            sys.exit(f"{db} missing (tests/tools/make_mmdb.pl)")
    config_text = open(config).read()
    mtas = set()
    m = re.search(r"^\s*mail_servers\s*=\s*(.*)$", config_text, re.M)
    if m:
        mtas = {x.strip() for x in m.group(1).split(",") if x.strip()}
    slice_ms = 60000
    m = re.search(r"^\s*slice\s*=\s*(\d+)", config_text, re.M)
    if m:
        slice_ms = int(m.group(1)) * 1000

    tmp = tempfile.mkdtemp(prefix="spamflow-allsinks-")
    rs = sinktest.Rsyslogd(tmp)
    devlog = DevLog(os.path.join(tmp, "devlog.sock"))
    print(f"capture {os.path.basename(capture)}, config {os.path.basename(config)}")
    try:
        rs.start()
        runs = []
        for transport in ("udp", "tcp"):
            r = one_run(spamflowd, tmp, devlog, rs, capture, config_text, dbs,
                        f"all-sinks-{transport}", transport)
            if r is None:
                continue
            ok, n_checked, per_event = check_all_sinks(r, dbs, mtas, slice_ms)
            runs.append((r, n_checked, per_event))
            st = sink_table(r["report"])
            print(f"  {'ok ' if ok else 'BAD'} {r['label']}: {len(r['events'])} events; "
                  f"json lines {len(r['events'])}, csv rows {len(read_csv(r['csv'])[1])}, "
                  f"local syslog {len(r['local'])}, RFC 5424 via rsyslogd {len(r['raw'])}")
            print("      summary: " + ", ".join(
                f"{k} events={s['events']} errors={s['errors']} dropped={s['dropped']}"
                for k, s in st.items()))
            print(f"      enrichment: {n_checked['tops']} top destinations = mmdblookup, "
                  f"{n_checked['counts']} countries/asns counts = independent count; "
                  f"evidence: {n_checked['files']} files, {n_checked['flows']} flows = "
                  "--flows rows (tshark)")
        if len(runs) == 2:
            a, b = runs[0][0], runs[1][0]
            check([x["evidence"] and os.path.basename(x["evidence"]) for x in a["events"]] ==
                  [x["evidence"] and os.path.basename(x["evidence"]) for x in b["events"]],
                  "the two runs name different evidence files")
            same = all(open(os.path.join(a["evdir"], f), "rb").read() ==
                       open(os.path.join(b["evdir"], f), "rb").read()
                       for f in sorted(os.listdir(a["evdir"])))
            check(same, "the two runs wrote different evidence files")
        if runs:
            r, _, per_event = runs[0]
            print("  events (time, event, reason, host, countries/asns, top countries, "
                  "evidence flows by tshark):")
            for a, ccs, asns, nflows in per_event:
                t = time.strftime("%H:%M:%S", time.gmtime(a["time_ms"] // 1000))
                ev = os.path.basename(a["evidence"]) if a["evidence"] else "-"
                print(f"    {t} {a['event']:8} {a['reason']:17} {a['host']:15} "
                      f"{a['countries']}/{a['asns']:<3} {','.join(sorted(ccs)) or '-':9} "
                      f"{'-' if nflows is None else nflows:>4} {ev}")
            # Bots spray across the world: every raised/updated event of a bot with IPv4
            # external destinations spans more than one country and ASN (the test
            # databases spread 198.18.1.0-198.18.255.255 over 10 countries, 8 ASNs).
            bots = [a for a, *_ in per_event if a["event"] != "cleared" and
                    a["reason"] in ("smtp-fanout", "smtp-blocked", "submission-fanout")
                    and ":" not in a["host"]]
            single = [a for a in bots if a["countries"] <= 1 or a["asns"] <= 1]
            print(f"  {'ok ' if not single else 'BAD'} {len(bots) - len(single)} of "
                  f"{len(bots)} IPv4 bot events span more than one country and ASN")
            for a in single:
                failures.append(f"{a['host']} {a['reason']}: countries {a['countries']}, "
                                f"asns {a['asns']}: a bot's MXs should span the world")
        res = failing_csv_run(spamflowd, tmp, devlog, rs, capture, config_text, dbs)
        if res is not None:
            r, c, logged = res
            print(f"  {'ok ' if not failures else '   '} csv = /dev/full: exit 0, "
                  f"{len(r['events'])} events in json/local syslog/RFC 5424 (tcp); csv "
                  f"errors={c.get('errors')} events={c.get('events')}; "
                  f"{len(logged)} log line(s) about it")
    finally:
        rs.stop()
        devlog.close()
    if failures:
        sys.exit(f"FAIL: {len(failures)} checks failed (files in {tmp})")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
