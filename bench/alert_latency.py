#!/usr/bin/python3
"""Alert latency on a live daemon: the time from sending the NetFlow v5 datagram whose flow
crosses the smtp-fanout threshold to the alert's JSON line appearing in the --alerts file.
Each of BOTS internal hosts sends one port-25 flow per datagram to a new external address;
the datagram carrying flow number THRESHOLD (default config: 50 distinct in 10 minutes) is
the crossing one, and its send time is compared with the moment the alert line is read.

usage: alert_latency.py SPAMFLOWD [BOTS]
Prints each bot's latency and the median and maximum.
"""
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

THRESHOLD = 50


def v5(seq, records, now):
    uptime = 100000
    hdr = struct.pack(">HHIIIIBBH", 5, len(records), uptime, int(now), 0, seq, 0, 0, 0)
    body = b"".join(struct.pack(">4s4s4sHHIIIIHHBBBBHHBBH", src, dst, bytes(4), 0, 0, 3, 180,
                                uptime - 2000, uptime - 1000, 40000, 25, 0, 0x1B, 6, 0, 0, 0,
                                0, 0, 0) for src, dst in records)
    return hdr + body


def main():
    spamflowd = sys.argv[1]
    bots = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    tmp = tempfile.mkdtemp(prefix="spamflow-lat-")
    out = os.path.join(tmp, "alerts.jsonl")
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    d = subprocess.Popen([spamflowd, "--state=", "--history=", "-l", f"127.0.0.1:{port}", "--alerts", out,
                          "--stats-interval", "0"], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    seen = ""
    while f":{port}" not in seen:  # warnings may come first
        line = d.stderr.readline()
        if not line:
            sys.exit(f"spamflowd did not start: {seen}")
        seen += line
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    lat = []
    seq = 0
    try:
        for b in range(bots):
            src = bytes([10, 77, b // 256, b % 256])
            # THRESHOLD - 1 flows first, then wait until things are quiet
            for i in range(THRESHOLD - 1):
                tx.sendto(v5(seq, [(src, bytes([198, 51, i // 256, i % 256]))], time.time()),
                          ("127.0.0.1", port))
                seq += 1
            time.sleep(0.05)
            seen = sum(1 for _ in open(out)) if os.path.exists(out) else 0
            t_send = time.perf_counter()
            tx.sendto(v5(seq, [(src, bytes([198, 51, 1, THRESHOLD]))], time.time()),
                      ("127.0.0.1", port))
            seq += 1
            while True:
                # complete lines only: the daemon may be in the middle of writing one
                lines = open(out).read().split("\n")[:-1] if os.path.exists(out) else []
                if len(lines) > seen:
                    t_seen = time.perf_counter()
                    a = json.loads(lines[seen])
                    assert a["event"] == "raised" and a["host"] == socket.inet_ntoa(src), a
                    lat.append((t_seen - t_send) * 1000)
                    break
                if time.perf_counter() - t_send > 5:
                    sys.exit(f"bot {b}: no alert within 5 s")
    finally:
        d.send_signal(signal.SIGTERM)
        d.communicate(timeout=20)
    lat.sort()
    print("latency ms per bot: " + " ".join(f"{x:.2f}" for x in lat))
    print(f"{bots} bots: median {lat[len(lat) // 2]:.2f} ms, max {lat[-1]:.2f} ms "
          f"(send of the crossing datagram -> alert line readable in the file; polling adds "
          f"up to the poll loop's own cost)")


if __name__ == "__main__":
    main()
