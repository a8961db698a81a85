#!/usr/bin/python3
"""A firewall's view of a capture: the sessions of a pcap exported as Cisco ASA NSEL over
NetFlow v9 (firewall event 233, initiator/responder octets 231/232 and packets 298/299,
start 152 and event time 323; IPv4 template 260, IPv6 template 261 with 27/28), written as a
pcap of the export datagrams, each at its event's time (normalized like the fixtures'
exports: raw IP, 192.0.2.9:50000 to port 2055).

A session is the first TCP or UDP packet's 5-tuple both ways; its initiator sent that
packet. Events, as an ASA sends them:
  - create, when the session opens (its first packet), with zero counters;
  - teardown, when it closes: a TCP session 1 s after its RST or its second FIN, else after
    an idle timeout (TCP embryonic, no answer: 30 s; TCP: 60 s; UDP: 30 s), with the
    session's counters from both sides.
--mode all sends both (`flow-export event-type all`); --mode delay=N drops the create of a
session that closes within N s of opening (`flow-export delay flow-create N`: the ASA sends
its create only when the session outlives the delay); --mode teardown sends teardowns only.
Up to 20 records a datagram, sent when full, or 1 s after its first record.

usage: nsel_export.py CAPTURE OUT [--mode all|teardown|delay=60]
"""
import argparse
import ipaddress
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import count_records as cr  # noqa: E402 (the pcap reader and writer)

F4 = [(8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (233, 1), (231, 4), (232, 4), (298, 8),
      (299, 8), (152, 8), (323, 8)]
F6 = [(27, 16), (28, 16)] + F4[2:]
CREATED, DELETED = 1, 2
SRC, DST, SPORT, DPORT = "192.0.2.9", "127.0.0.1", 50000, 2055
SOURCE_ID = 256
UPTIME0_MS = 86400000


def parse(frame, linktype):
    """(src, dst, proto, sport, dport, tcp flags, ip length) or None."""
    r = cr.l3_of(linktype, frame)
    if r is None:
        return None
    et, ip, _ = r
    if et == 0x0800 and len(ip) >= 20:
        hl, proto, length = (ip[0] & 15) * 4, ip[9], struct.unpack(">H", ip[2:4])[0]
        src, dst, l4 = ip[12:16], ip[16:20], ip[hl:]
    elif et == 0x86DD and len(ip) >= 40:
        proto, length = ip[6], 40 + struct.unpack(">H", ip[4:6])[0]
        src, dst, l4 = ip[8:24], ip[24:40], ip[40:]
    else:
        return None
    if proto not in (6, 17) or len(l4) < 8:
        return None
    sport, dport = struct.unpack(">HH", l4[:4])
    flags = l4[13] if proto == 6 and len(l4) >= 14 else 0
    return src, dst, proto, sport, dport, flags, length


def sessions(path):
    """Yields closed sessions in the order they close: dict with the initiator's 5-tuple,
    first/last/close times (ms), counters both ways, answered."""
    open_, out = {}, []
    for us, lt, frame in cr.read_pcap(path):
        p = parse(frame, lt)
        if p is None:
            continue
        src, dst, proto, sport, dport, flags, length = p
        t = us // 1000
        fwd, rev = (src, dst, proto, sport, dport), (dst, src, proto, dport, sport)
        s = open_.get(fwd) or open_.get(rev)
        if s is not None and t > s["close_ms"]:
            out.append(open_.pop(s["key"]))  # timed out before this packet: a new one
            s = None
        if s is None:
            s = {"key": fwd, "first": t, "last": t, "close_ms": 0, "ipkt": 0, "ibyt": 0,
                 "rpkt": 0, "rbyt": 0, "fins": 0, "closed": False}
            open_[fwd] = s
        side = "i" if s["key"] == fwd else "r"
        s[side + "pkt"] += 1
        s[side + "byt"] += length
        s["last"] = t
        if proto == 6:
            s["fins"] += 1 if flags & 0x01 else 0
            if flags & 0x04 or s["fins"] >= 2:
                s["closed"] = True
        if s["closed"]:
            s["close_ms"] = t + 1000
        elif proto == 6 and s["rpkt"] == 0:
            s["close_ms"] = t + 30000
        else:
            s["close_ms"] = t + (60000 if proto == 6 else 30000)
    out.extend(open_.values())
    return out


def record(s, event, t):
    src, dst, proto, sport, dport = s["key"]
    zero = event == CREATED
    body = struct.pack(">HHBBIIQQQQ", sport, dport, proto, event,
                       0 if zero else min(s["ibyt"], 0xFFFFFFFF),
                       0 if zero else min(s["rbyt"], 0xFFFFFFFF),
                       0 if zero else s["ipkt"], 0 if zero else s["rpkt"], s["first"], t)
    return (260 if len(src) == 4 else 261), src + dst + body


def export(capture, out, mode):
    delay = None
    if mode.startswith("delay="):
        delay = int(mode.split("=", 1)[1]) * 1000
    events = []  # (time, tid, bytes)
    for s in sessions(capture):
        close = min(s["close_ms"], s["last"] + 60000)
        lasts = close - s["first"]
        if mode == "all" or (delay is not None and lasts >= delay):
            t = s["first"] if mode == "all" else s["first"] + delay
            events.append((t,) + record(s, CREATED, t))
        events.append((close,) + record(s, DELETED, close))
    events.sort(key=lambda e: e[0])
    tmpl = b""
    for tid, flds in ((260, F4), (261, F6)):
        tmpl += struct.pack(">HH", tid, len(flds)) + b"".join(struct.pack(">HH", *f) for f in flds)
    tmpl_set = struct.pack(">HH", 0, 4 + len(tmpl)) + tmpl
    frames, seq, pending, t0 = [], 0, [], events[0][0] if events else 0

    def flush(now):
        nonlocal seq, pending
        if not pending:
            return
        sets = tmpl_set
        for tid in (260, 261):
            body = b"".join(r for k, r in pending if k == tid)
            if body:
                pad = (-len(body)) % 4
                sets += struct.pack(">HH", tid, 4 + len(body) + pad) + body + b"\0" * pad
        hdr = struct.pack(">HHIIII", 9, len(pending) + 2, UPTIME0_MS + now - t0, now // 1000,
                          seq, SOURCE_ID)
        seq += 1
        udp = struct.pack(">HHHH", SPORT, DPORT, 8 + len(hdr) + len(sets), 0) + hdr + sets
        ip = (struct.pack(">BBHHHBBH", 0x45, 0, 20 + len(udp), seq & 0xFFFF, 0, 64, 17, 0) +
              ipaddress.ip_address(SRC).packed + ipaddress.ip_address(DST).packed)
        ip = ip[:10] + struct.pack(">H", cr.csum(ip)) + ip[12:]
        frames.append((now * 1000, ip + udp))
        pending = []

    first = None
    for t, tid, rec in events:
        if pending and t - first >= 1000:
            flush(first + 1000)  # the export timer: a record waits at most 1 s
        if not pending:
            first = t
        pending.append((tid, rec))
        if len(pending) == 20:
            flush(t)
    if pending:
        flush(first + 1000)
    cr.write_pcap(out, frames, linktype=cr.LINKTYPE_RAW)
    return len(frames), sum(1 for e in events)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("capture")
    ap.add_argument("out")
    ap.add_argument("--mode", default="all")
    a = ap.parse_args()
    if a.mode not in ("all", "teardown") and not a.mode.startswith("delay="):
        sys.exit("--mode: all, teardown or delay=SECONDS")
    n, r = export(a.capture, a.out, a.mode)
    print(f"{a.out}: {n} datagrams, {r} records ({a.mode})")


if __name__ == "__main__":
    main()
