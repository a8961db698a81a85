#!/usr/bin/python3
"""Events/s through the exec hook in the live daemon (issue 15): EVENTS alerts (one host each,
a NetFlow v5 stream on loopback from tests/system/sinktest.py), one run of PROGRAM each, the
queue big enough for all; timed from the first datagram to the last run reaped (the stats are
polled over the control socket every 50 ms meanwhile). Prints one JSON line.

usage: exec_rate.py SPAMFLOWD SPAMFLOWCTL PROGRAM EVENTS MAX_RUNNING
"""
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "system"))
import actions_exec as ax  # noqa: E402


def main():
    spamflowd, ctl, prog, n, maxr = sys.argv[1:3] + [sys.argv[3], int(sys.argv[4]),
                                                     int(sys.argv[5])]
    tmp = tempfile.mkdtemp(prefix="exec-rate-")
    sock = os.path.join(tmp, "run", "control.sock")
    cfg = ax.conf(tmp, sock,
                  f"[actions]\nexec = {prog}\nexec_max_running = {maxr}\nexec_queue = {n}\n")
    d = ax.Live(spamflowd, cfg, os.path.join(tmp, "alerts.jsonl"))
    s = ax.sinktest.Stream(d.port)
    t0 = time.monotonic()
    for i in range(n):
        s.step()
        if i % 50 == 49:
            time.sleep(0.005)
    sent = time.monotonic() - t0
    while True:
        st = ax.ctl_stats(ctl, sock)
        x = ax.exec_stats(st, prog)
        if x["succeeded"] + x["failed"] + x["dropped"] >= n and x["running"] == 0:
            break
        time.sleep(0.05)
    el = time.monotonic() - t0
    rss = [ln for ln in open(f"/proc/{d.d.pid}/status") if ln.startswith("VmRSS")][0].split()[1]
    d.stop()
    print(json.dumps({"program": prog, "events": n, "max_running": maxr,
                      "sent_s": round(sent, 2), "seconds": round(el, 2),
                      "events_per_s": round(x["succeeded"] / el), "succeeded": x["succeeded"],
                      "failed": x["failed"], "dropped": x["dropped"],
                      "records": st["totals"]["records"],
                      "kernel_drops": st["listener"]["kernel_drops"], "rss_kb": int(rss)}))


if __name__ == "__main__":
    main()
