#!/usr/bin/python3
"""Remote syslog through a real rsyslogd: spamflowd sends every alert event as an RFC 5424
message with structured data [spamflow@32473 ...] to a private rsyslogd (imudp + imtcp on a
loopback port, no /dev/log), which writes the raw messages and its own parse of them to
files. Checked:
  1. replay of fixture captures, over UDP and over TCP (octet counting): every alert event
     of the run's --alerts JSON lines arrives exactly once, PRI/MSGID/SD-ID right, every SD
     param equal to the JSON field, and rsyslog's own parse of the SD equal to the raw text;
  2. a live daemon fed a paced NetFlow stream, rsyslogd stopped mid-stream and started
     again (TCP): every event arrives exactly once, none lost;
  3. the same with remote_queue = 3: what is missing is exactly the counted overflow.
  4. local syslog enabled without a syslog daemon (no /dev/log): counted errors, not fatal.

usage: rsyslog_remote.py SPAMFLOWD FIXTURES_DIR
"""
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sinktest  # noqa: E402

SEVERITY = {"info": 6, "notice": 5, "warning": 4, "critical": 2}
LOG_DAEMON = 3
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("  FAIL", what)
    return cond


def parse_5424(line):
    """(pri, timestamp, host, app, procid, msgid, sd_id, [(name, value)], sd_text, msg)"""
    m = re.match(r"<(\d{1,3})>1 (\S+) (\S+) (\S+) (\S+) (\S+) \[", line)
    if m is None:
        raise ValueError(f"not RFC 5424: {line[:80]}")
    i = m.end()
    sd_start = i - 1
    j = line.index(" ", i)
    sd_id = line[i:j]
    i = j
    params = []
    while line[i] == " ":
        eq = line.index("=", i)
        name = line[i + 1:eq]
        if line[eq + 1] != '"':
            raise ValueError(f"param {name} not quoted")
        k = eq + 2
        val = []
        while line[k] != '"':
            if line[k] == "\\" and line[k + 1] in '"\\]':
                k += 1
            elif line[k] in '"]':
                raise ValueError(f"unescaped {line[k]} in {name}")
            val.append(line[k])
            k += 1
        params.append((name, "".join(val)))
        i = k + 1
    if line[i] != "]":
        raise ValueError("SD element not closed")
    sd_text = line[sd_start:i + 1]
    if line[i + 1] != " ":
        raise ValueError("no SP before MSG")
    return (int(m.group(1)), m.group(2), m.group(3), m.group(4), m.group(5), m.group(6),
            sd_id, params, sd_text, line[i + 2:])


def expected_params(a):
    return tuple((n, v) for n, v in sinktest.fields(a) if v is not None)


def check_messages(label, events, raw, parsed, allow_missing=0):
    """Every JSON event once in raw (at most allow_missing absent); returns #missing."""
    want = collections.Counter(expected_params(a) for a in events)
    got = collections.Counter()
    by_params = {expected_params(a): a for a in events}
    ok = True
    for line, pline in zip(raw, parsed):
        try:
            pri, ts, host, app, procid, msgid, sd_id, params, sd_text, msg = parse_5424(line)
        except (ValueError, IndexError) as e:
            ok = check(False, f"{label}: {e}")
            continue
        params = tuple(params)
        got[params] += 1
        a = by_params.get(params)
        if not check(a is not None, f"{label}: a message no JSON event matches: "
                     f"{line[:200]}"):
            ok = False
            continue
        ok &= check(pri == LOG_DAEMON * 8 + SEVERITY[a["severity"]],
                    f"{label}: PRI {pri} for {a['severity']}")
        ok &= check(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", ts) is not None,
                    f"{label}: timestamp {ts}")
        ok &= check(app == "spamflowd" and procid.isdigit() and msgid == a["event"],
                    f"{label}: header {app} {procid} {msgid}")
        ok &= check(sd_id == sinktest.SD_ID, f"{label}: SD-ID {sd_id}")
        ok &= check(msg.startswith(f"{a['event']} {a['reason']} host={a['host']} "),
                    f"{label}: MSG {msg}")
        # rsyslog's own parse of the same message
        ppri, papp, pproc, pmsgid, psd = pline.split("|", 4)
        ok &= check((int(ppri), papp, pproc, pmsgid, psd) == (pri, app, procid, msgid,
                                                                sd_text),
                    f"{label}: rsyslog parsed it differently: {pline[:200]}")
    dup = [p for p, n in got.items() if n > 1]
    ok &= check(not dup, f"{label}: {len(dup)} events arrived more than once")
    missing = sum((want - got).values())
    ok &= check(missing <= allow_missing,
                f"{label}: {missing} events missing (allowed {allow_missing})")
    print(f"  {'ok ' if ok else 'BAD'} {label}: {len(events)} events, {sum(got.values())} "
          f"messages, {missing} missing")
    return missing


def wait_lines(rs, n, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(rs.lines()) >= n and len(rs.lines("parsed.log")) >= n:
            break
        time.sleep(0.1)
    time.sleep(0.3)  # and nothing more (a duplicate) comes
    return rs.lines(), rs.lines("parsed.log")


def sink_stats(report, kind):
    return [s for s in report["sinks"] if s["kind"] == kind]


def replay_runs(spamflowd, fixtures, tmp, rs):
    runs = [("softflowd-ipfix.pcap", None)]
    if os.path.exists(os.path.join(fixtures, "scenario-ipfix.pcap")):
        runs.append(("scenario-ipfix.pcap", "scenario.conf"))
    for transport in ("udp", "tcp"):
        for pcap, conf in runs:
            label = f"replay {pcap} over {transport}"
            text = open(os.path.join(fixtures, conf)).read() if conf else ""
            cfg = os.path.join(tmp, "replay.conf")
            with open(cfg, "w") as f:
                f.write(text + f"\n[sinks]\nremote = {transport}://127.0.0.1:{rs.port}\n")
            alerts = os.path.join(tmp, f"replay-{transport}-{pcap}.jsonl")
            before = len(rs.lines())
            r = subprocess.run([spamflowd, "-c", cfg, "--replay",
                                os.path.join(fixtures, pcap), "--alerts", alerts, "--json"],
                               capture_output=True, text=True, timeout=60)
            if not check(r.returncode == 0, f"{label}: exit {r.returncode}: {r.stderr}"):
                continue
            import json
            report = json.loads(r.stdout)
            events = sinktest.read_jsonl(alerts)
            check(len(events) > 0, f"{label}: no alerts at all")
            st = sink_stats(report, "syslog-remote")
            check(len(st) == 1 and st[0]["events"] == len(events) and st[0]["errors"] == 0
                  and st[0]["dropped"] == 0 and st[0]["queue"] == 0,
                  f"{label}: sink counters {st}")
            raw, parsed = wait_lines(rs, before + len(events))
            check(len(raw) == before + len(events),
                  f"{label}: {len(raw) - before} messages for {len(events)} events")
            check_messages(label, events, raw[before:], parsed[before:])


def outage_run(spamflowd, tmp, rs, queue, hosts=30, down_at=8, up_at=18, pace=0.15):
    label = f"live tcp, rsyslogd restarted, remote_queue={queue}"
    cfg = os.path.join(tmp, f"live-{queue}.conf")
    with open(cfg, "w") as f:
        f.write(f"[sinks]\nremote = tcp://127.0.0.1:{rs.port}\nremote_queue = {queue}\n")
    alerts = os.path.join(tmp, f"live-{queue}.jsonl")
    before = len(rs.lines())
    d, port = sinktest.start_live(spamflowd, cfg, alerts)
    time.sleep(0.3)  # connected
    stream = sinktest.Stream(port)
    for i in range(hosts):
        if i == down_at:
            time.sleep(0.3)  # the events so far are through
            rs.stop()
        if i == up_at:
            rs.start()
        stream.step()
        time.sleep(pace)
    time.sleep(3)  # reconnect backoff, then the queue drains
    report, err = sinktest.stop_live(d)
    events = sinktest.read_jsonl(alerts)
    st = sink_stats(report, "syslog-remote")[0]
    check(len(events) == hosts, f"{label}: {len(events)} alerts for {hosts} hosts")
    check(st["events"] + st["dropped"] == len(events) and st["errors"] == 0,
          f"{label}: sink counters {st}")
    check(st["reconnects"] >= 1, f"{label}: never reconnected: {st}")
    if queue < up_at - down_at:
        check(st["dropped"] > 0, f"{label}: the queue of {queue} should have overflowed")
    else:
        check(st["dropped"] == 0, f"{label}: dropped {st['dropped']}")
    raw, parsed = wait_lines(rs, before + len(events) - st["dropped"], timeout=5)
    missing = check_messages(label, events, raw[before:], parsed[before:],
                             allow_missing=st["dropped"])
    check(missing == st["dropped"],
          f"{label}: {missing} missing but {st['dropped']} counted as dropped")
    print(f"      dropped={st['dropped']} reconnects={st['reconnects']} "
          f"disconnects={st['disconnects']}")


def local_without_daemon(spamflowd, fixtures, tmp):
    if os.path.exists("/dev/log"):
        print("  skip local syslog without a daemon: /dev/log exists")
        return
    cfg = os.path.join(tmp, "local.conf")
    with open(cfg, "w") as f:
        f.write("[sinks]\nsyslog = true\nsyslog_facility = local5\n")
    alerts = os.path.join(tmp, "local.jsonl")
    r = subprocess.run([spamflowd, "-c", cfg, "--replay",
                        os.path.join(fixtures, "softflowd-ipfix.pcap"), "--alerts", alerts,
                        "--json"], capture_output=True, text=True, timeout=60)
    import json
    ok = check(r.returncode == 0, f"local syslog without /dev/log: exit {r.returncode}")
    if ok:
        st = sink_stats(json.loads(r.stdout), "syslog")
        n = len(sinktest.read_jsonl(alerts))
        ok = check(len(st) == 1 and st[0]["errors"] == n and st[0]["events"] == 0 and n > 0,
                   f"local syslog without /dev/log: counters {st} for {n} events")
    print(f"  {'ok ' if ok else 'BAD'} local syslog without /dev/log: errors counted, "
          "exit 0")


def main():
    spamflowd, fixtures = sys.argv[1], sys.argv[2]
    sinktest.require_programs("rsyslogd")
    os.environ["PATH"] += ":/usr/sbin"
    tmp = tempfile.mkdtemp(prefix="spamflow-rsyslog-")
    rs = sinktest.Rsyslogd(tmp)
    try:
        rs.start()
        replay_runs(spamflowd, fixtures, tmp, rs)
        outage_run(spamflowd, tmp, rs, queue=10000)
        outage_run(spamflowd, tmp, rs, queue=3)
        local_without_daemon(spamflowd, fixtures, tmp)
    finally:
        rs.stop()
    if failures:
        sys.exit(f"FAIL: {len(failures)} checks failed (files in {tmp})")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
