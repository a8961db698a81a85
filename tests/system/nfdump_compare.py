#!/usr/bin/python3
"""Cross-check against nfdump, the collector people run today: the datagrams of a capture
are sent over loopback to a real nfcapd, its file is read back with nfdump, and every record
must equal what `spamflowd --replay` decodes from the same capture (addresses, ports,
protocol, TCP flags, packets, bytes, start and end to the millisecond). Prints nfcapd's own
summary line (its sequence-error count) beside ours.

usage: nfdump_compare.py SPAMFLOWD CAPTURE
"""
import calendar
import csv
import glob
import ipaddress
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time

import testdir
from netutil import free_udp_port


def udp_payloads(path):
    """UDP payloads of an Ethernet or raw-IP pcap (the project's own fixtures)."""
    data = open(path, "rb").read()
    endian = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    linktype = struct.unpack(endian + "I", data[20:24])[0]
    off, out = 24, []
    while off + 16 <= len(data):
        incl = struct.unpack(endian + "I", data[off + 8:off + 12])[0]
        pkt = data[off + 16:off + 16 + incl]
        off += 16 + incl
        if linktype == 1:
            etype = struct.unpack(">H", pkt[12:14])[0]
            ip = pkt[14:]
        elif linktype in (101, 228, 229):
            ip = pkt
            etype = 0x86DD if ip[0] >> 4 == 6 else 0x0800
        else:
            sys.exit(f"{path}: link type {linktype} not handled here")
        if etype == 0x0800:
            udp = ip[(ip[0] & 15) * 4:]
        elif etype == 0x86DD:
            udp = ip[40:]
        else:
            continue
        out.append(udp[8:struct.unpack(">H", udp[4:6])[0]])
    return out


def udp_queue(port):
    """Receive queue bytes of the UDP socket bound to 127.0.0.1:port, None if unbound."""
    for line in open("/proc/net/udp").read().splitlines()[1:]:
        f = line.split()
        if f[1] == f"0100007F:{port:04X}":
            return int(f[4].split(":")[1], 16)
    return None


def wait_for(cond, what, timeout=20):
    deadline = time.time() + timeout
    while not cond():
        if time.time() > deadline:
            sys.exit(f"timed out waiting for {what}")
        time.sleep(0.05)


FLAGS = "CEUAPRSF"  # nfdump's flag string, most significant bit first


def flag_bits(s):
    s = s.strip()
    return sum(1 << (7 - i) for i, ch in enumerate(s[-8:].rjust(8, ".")) if ch != ".")


def ms(text):
    """'2026-01-15 10:00:02.081' (UTC) to Unix ms."""
    date, frac = text.strip().split(".")
    return calendar.timegm(time.strptime(date, "%Y-%m-%d %H:%M:%S")) * 1000 + int(frac)


def key(src, dst, sport, dport, proto):
    src, dst = str(ipaddress.ip_address(src)), str(ipaddress.ip_address(dst))
    if proto in (1, 58):
        sport = dport = 0  # nfdump keeps ICMP type/code in the port columns
    return (src, dst, sport, dport, proto)


def main():
    spamflowd, capture = sys.argv[1], sys.argv[2]
    tmp = testdir.mkdtemp("spamflow-nfdump-")
    port = free_udp_port()
    log = open(os.path.join(tmp, "nfcapd.log"), "w")
    nfcapd = subprocess.Popen(["nfcapd", "-w", tmp, "-p", str(port), "-b", "127.0.0.1",
                               "-t", "3600"], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: udp_queue(port) is not None, "nfcapd to bind its port")
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        payloads = udp_payloads(capture)
        for p in payloads:
            s.sendto(p, ("127.0.0.1", port))
            time.sleep(0.002)
        # nfcapd has read everything once its socket queue is empty
        wait_for(lambda: udp_queue(port) == 0, "nfcapd to read its queue")
        time.sleep(0.3)
    finally:
        nfcapd.send_signal(signal.SIGTERM)
        nfcapd.wait(timeout=20)
    log.close()
    nflog = open(os.path.join(tmp, "nfcapd.log")).read()
    files = glob.glob(os.path.join(tmp, "nfcapd.2*"))
    if len(files) != 1:
        sys.exit(f"nfcapd wrote {files}: {nflog}")
    fmt = "fmt:%ts|%te|%sa|%da|%sp|%dp|%pr|%flg|%ipkt|%ibyt"
    out = subprocess.run(["nfdump", "-r", files[0], "-q", "-N", "-6", "-o", fmt], capture_output=True,
                         text=True, check=True, env=dict(os.environ, TZ="UTC")).stdout
    theirs = []
    reversed_times = no_time = 0
    for line in out.splitlines():
        f = [x.strip() for x in line.split("|")]
        if len(f) != 10:
            continue
        proto = int(f[6]) if f[6].isdigit() else {"TCP": 6, "UDP": 17, "ICMP": 1}[f[6]]
        start, end = ms(f[0]), ms(f[1])
        if start == end == 0:
            # nfdump drops a time of 0 ms after systemInitTime (a flow that began the
            # moment the exporter started) as "no time"; compare the other fields.
            start = end = None
            no_time += 1
        elif start > end:
            # nfdump 1.7.1 reads IPFIX flowEndSysUpTime (21) as the start and
            # flowStartSysUpTime (22) as the end: an end before the start is impossible,
            # so compare it swapped and say how often it happened.
            start, end = end, start
            reversed_times += 1
        theirs.append(key(f[2], f[3], int(f[4]), int(float(f[5])), proto) +
                      (flag_bits(f[7]) if proto == 6 else None, int(f[8]), int(f[9]),
                       start, end))

    flows = os.path.join(tmp, "flows.csv")
    summary = json.loads(subprocess.run([spamflowd, "--replay", capture, "--flows", flows,
                                         "--json"], capture_output=True, text=True,
                                        check=True).stdout)
    ours = []
    for r in csv.DictReader(open(flows)):
        proto = int(r["proto"])
        ours.append(key(r["src"], r["dst"], int(r["sport"]), int(r["dport"]), proto) +
                    (int(r["tcp_flags"]) if proto == 6 else None, int(r["packets"]),
                     int(r["bytes"]), int(r["start_ms"]), int(r["end_ms"])))

    for t in [t for t in theirs if t[8] is None]:
        for i, o in enumerate(ours):
            if o[:8] == t[:8] and o[8] is not None:
                ours[i] = o[:8] + (None, None)
                break
    rows = [e for e in summary["exporters"] if e.get("domain") is not None]
    nf_summary = [l for l in nflog.splitlines() if l.startswith("Ident:")]
    print(f"{os.path.basename(capture)}: {len(payloads)} datagrams; nfdump {len(theirs)} "
          f"records, spamflowd {len(ours)}; spamflowd seq_lost "
          f"{sum(e['seq_lost'] for e in rows)}; nfcapd: {' '.join(nf_summary)}"
          + (f"; nfdump gave {reversed_times} records an end before their start"
             if reversed_times else "")
          + (f"; nfdump gave {no_time} records no time" if no_time else ""))
    names = ["src", "dst", "sport", "dport", "proto", "tcp_flags", "packets", "bytes",
             "start_ms", "end_ms"]
    bad = 0
    if sorted(ours, key=str) != sorted(theirs, key=str):
        only_ours = sorted(set(ours) - set(theirs), key=str)
        only_theirs = sorted(set(theirs) - set(ours), key=str)
        for a, b in list(zip(only_ours, only_theirs))[:10]:
            diff = {n: (x, y) for n, x, y in zip(names, a, b) if x != y}
            print(f"  mismatch {a[:5]}: (spamflowd, nfdump) {diff}")
        bad = max(len(only_ours), len(only_theirs), 1)
    if len(ours) != len(theirs) or bad:
        sys.exit(f"FAIL: {bad} records differ")


if __name__ == "__main__":
    main()
