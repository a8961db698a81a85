#!/usr/bin/python3
"""CSV alert sink, read back with Python's csv module (strict):
  1. replay of fixture captures with the csv and json sinks: the header is the documented
     column list, and every field of every record equals the same event's JSON line;
  2. a live daemon fed a paced NetFlow stream, the file rotated mid-stream (rename +
     SIGHUP, as logrotate does): each file starts with one header, and the two files
     together hold every event of the JSON lines exactly once, in order.

usage: csv_sink.py SPAMFLOWD FIXTURES_DIR
"""
import csv
import io
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sinktest  # noqa: E402

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("  FAIL", what)
    return cond


def read_csv(path):
    """(header, rows); raises csv.Error on anything not RFC 4180."""
    with open(path, newline="") as f:
        data = f.read()
    if data and not data.endswith("\r\n"):
        raise csv.Error(f"{path}: the last record does not end in CRLF")
    rows = list(csv.reader(io.StringIO(data, newline=""), strict=True))
    return (rows[0] if rows else None), rows[1:]


def compare(label, header, rows, events):
    names = [n for n, _ in sinktest.fields(events[0])] if events else None
    ok = check(len(events) > 0, f"{label}: no alerts at all")
    ok &= check(header == names, f"{label}: header {header}")
    ok &= check(len(rows) == len(events), f"{label}: {len(rows)} rows, {len(events)} events")
    for i, (row, a) in enumerate(zip(rows, events)):
        want = [v if v is not None else "" for _, v in sinktest.fields(a)]
        if not check(row == want, f"{label}: row {i + 1} differs"):
            for n, g, w in zip(names, row, want):
                if g != w:
                    print(f"      {n}: csv {g!r} json {w!r}")
            ok = False
    print(f"  {'ok ' if ok else 'BAD'} {label}: {len(rows)} records, every field equal")


def replay_runs(spamflowd, fixtures, tmp):
    runs = [("softflowd-ipfix.pcap", None)]
    if os.path.exists(os.path.join(fixtures, "scenario-ipfix.pcap")):
        runs.append(("scenario-ipfix.pcap", "scenario.conf"))
    for pcap, conf in runs:
        label = f"replay {pcap}"
        out_csv = os.path.join(tmp, pcap + ".csv")
        out_json = os.path.join(tmp, pcap + ".jsonl")
        text = open(os.path.join(fixtures, conf)).read() if conf else ""
        cfg = os.path.join(tmp, "replay.conf")
        with open(cfg, "w") as f:
            f.write(text + f"\n[sinks]\ncsv = {out_csv}\njson = {out_json}\n")
        r = subprocess.run([spamflowd, "-c", cfg, "--replay", os.path.join(fixtures, pcap)],
                           capture_output=True, text=True, timeout=60)
        if not check(r.returncode == 0, f"{label}: exit {r.returncode}: {r.stderr}"):
            continue
        header, rows = read_csv(out_csv)
        compare(label, header, rows, sinktest.read_jsonl(out_json))
        # a second run appends: no second header, the old records untouched
        before = open(out_csv, "rb").read()
        subprocess.run([spamflowd, "-c", cfg, "--replay", os.path.join(fixtures, pcap)],
                       capture_output=True, check=True, timeout=60)
        after = open(out_csv, "rb").read()
        header2, rows2 = read_csv(out_csv)
        check(after.startswith(before) and header2 == header and rows2 == rows + rows,
              f"{label}: a second run did not append cleanly")


def rotation_run(spamflowd, tmp, hosts=30, rotate_at=15, pace=0.1):
    label = "live, rotated by rename + SIGHUP mid-stream"
    out_csv = os.path.join(tmp, "live.csv")
    cfg = os.path.join(tmp, "live.conf")
    with open(cfg, "w") as f:
        f.write(f"[sinks]\ncsv = {out_csv}\n")
    alerts = os.path.join(tmp, "live.jsonl")
    d, port = sinktest.start_live(spamflowd, cfg, alerts)
    stream = sinktest.Stream(port)
    for i in range(hosts):
        if i == rotate_at:
            os.rename(out_csv, out_csv + ".1")
            d.send_signal(signal.SIGHUP)
        stream.step()
        time.sleep(pace)
    time.sleep(0.5)
    report, err = sinktest.stop_live(d)
    events = sinktest.read_jsonl(alerts)
    st = [s for s in report["sinks"] if s["kind"] == "csv"][0]
    check(len(events) == hosts, f"{label}: {len(events)} alerts for {hosts} hosts")
    check(st["reopens"] == 1 and st["errors"] == 0 and st["events"] == hosts,
          f"{label}: counters {st}")
    h1, rows1 = read_csv(out_csv + ".1")
    h2, rows2 = read_csv(out_csv)
    names = [n for n, _ in sinktest.fields(events[0])]
    check(h1 == names and h2 == names, f"{label}: headers {h1} / {h2}")
    check(len(rows1) > 0 and len(rows2) > 0,
          f"{label}: {len(rows1)} records before, {len(rows2)} after the rotation")
    compare(label, h1, rows1 + rows2, events)


def main():
    spamflowd, fixtures = sys.argv[1], sys.argv[2]
    tmp = tempfile.mkdtemp(prefix="spamflow-csv-")
    try:
        replay_runs(spamflowd, fixtures, tmp)
        rotation_run(spamflowd, tmp)
    except csv.Error as e:
        check(False, f"not strict RFC 4180 CSV: {e}")
    if failures:
        sys.exit(f"FAIL: {len(failures)} checks failed (files in {tmp})")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
