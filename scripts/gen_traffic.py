#!/usr/bin/python3
"""Seeded end-host traffic generator for the softflowd fixtures.

Writes a small Ethernet pcap (DLT_EN10MB) that softflowd (-r) turns into flows. The output
is a pure function of --seed: packet bytes come from scapy with every field that scapy
would otherwise fill from the host (MACs, IP ids, checksums) fixed or derived, and the pcap
is written by the tiny writer below with integer sec/usec timestamps, so no float rounding
or scapy version differences reach the file.

Cast (each kind is one function; add a new kind by writing a function that takes
(Traffic, rng) and appending it to CAST):
  mta          10.0.1.25, the internal mail server: full SMTP sessions to external MXs
  bot          192.168.1.66, an infected desktop: TCP/25 SYN-only attempts (with retries,
               no answer) to ~100 distinct external addresses, plus a few answered by RST
  web          internal clients: HTTPS (TCP/443) sessions to external servers
  dns          internal clients -> internal resolver 10.0.0.53 -> external authorities
  icmp         echo request/reply pairs
  ipv6_mta     2001:db8:1::25: SMTP over IPv6 (full sessions)
  ipv6_udp     IPv6 DNS (UDP/53) and a UDP/443 (QUIC-like) exchange

Usage: gen_traffic.py [--seed N] [--out fixtures/traffic.pcap]
"""

import argparse
import random
import struct
import sys

from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Raw

# 2026-01-15 10:00:00 UTC
BASE_TS = 1768471200
SPAN_S = 180.0  # traffic is spread over ~3 minutes

GW_MAC = "02:00:00:00:00:01"  # the default router all internal hosts talk through

# TCP flag values
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10


def host_mac(ip):
    """A stable locally administered MAC per host address."""
    h = 0
    for ch in ip:
        h = (h * 131 + ord(ch)) & 0xFFFFFFFF
    return "02:%02x:%02x:%02x:%02x:%02x" % (0x10, (h >> 24) & 0xFF, (h >> 16) & 0xFF,
                                          (h >> 8) & 0xFF, h & 0xFF)


def is_internal(ip):
    return (ip.startswith("10.") or ip.startswith("192.168.") or ip.startswith("2001:db8:1:"))


class Traffic:
    """Collects (timestamp_us, frame bytes) and writes them time-ordered."""

    def __init__(self):
        self.pkts = []
        self.ipid = 0

    def _ether(self, src, dst):
        smac = host_mac(src) if is_internal(src) else GW_MAC
        dmac = host_mac(dst) if is_internal(dst) else GW_MAC
        if not is_internal(src) and not is_internal(dst):
            smac = GW_MAC
        return Ether(src=smac, dst=dmac)

    def _ip(self, src, dst):
        if ":" in src:
            return IPv6(src=src, dst=dst, hlim=64)
        self.ipid = (self.ipid + 1) & 0xFFFF
        return IP(src=src, dst=dst, ttl=64 if is_internal(src) else 52, id=self.ipid)

    def add(self, t, src, dst, l4):
        """t: seconds since BASE_TS (float)."""
        frame = self._ether(src, dst) / self._ip(src, dst) / l4
        us = int(round(t * 1e6))
        self.pkts.append((BASE_TS * 1000000 + us, len(self.pkts), bytes(frame)))

    def write(self, path):
        self.pkts.sort(key=lambda p: (p[0], p[1]))
        with open(path, "wb") as f:
            f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
            for ts, _, data in self.pkts:
                f.write(struct.pack("<IIII", ts // 1000000, ts % 1000000, len(data), len(data)))
                f.write(data)
        return len(self.pkts)


def tcp_session(tr, rng, t, c, s, cport, sport, exchanges, close="fin", rtt=0.02):
    """A TCP session from client c:cport to server s:sport.

    exchanges: list of (direction, payload bytes) with direction 'c' (client->server) or
    's'. close: 'fin' (both sides FIN), 'rst' (server resets after handshake), None.
    Returns the time of the last packet."""
    cseq = rng.randrange(1 << 32)
    sseq = rng.randrange(1 << 32)
    tr.add(t, c, s, TCP(sport=cport, dport=sport, flags=SYN, seq=cseq, window=64240))
    t += rtt / 2
    tr.add(t, s, c, TCP(sport=sport, dport=cport, flags=SYN | ACK, seq=sseq, ack=cseq + 1,
                        window=65160))
    cseq += 1
    sseq += 1
    t += rtt / 2
    tr.add(t, c, s, TCP(sport=cport, dport=sport, flags=ACK, seq=cseq, ack=sseq))
    for who, data in exchanges:
        t += rtt / 2 + rng.uniform(0, 0.01)
        if who == "c":
            tr.add(t, c, s, TCP(sport=cport, dport=sport, flags=PSH | ACK, seq=cseq,
                                ack=sseq) / Raw(data))
            cseq = (cseq + len(data)) & 0xFFFFFFFF
        else:
            tr.add(t, s, c, TCP(sport=sport, dport=cport, flags=PSH | ACK, seq=sseq,
                                ack=cseq) / Raw(data))
            sseq = (sseq + len(data)) & 0xFFFFFFFF
    if close == "fin":
        t += rtt / 2
        tr.add(t, c, s, TCP(sport=cport, dport=sport, flags=FIN | ACK, seq=cseq, ack=sseq))
        t += rtt / 2
        tr.add(t, s, c, TCP(sport=sport, dport=cport, flags=FIN | ACK, seq=sseq,
                            ack=cseq + 1))
        t += rtt / 2
        tr.add(t, c, s, TCP(sport=cport, dport=sport, flags=ACK, seq=cseq + 1,
                            ack=sseq + 1))
    elif close == "rst":
        t += rtt / 2
        tr.add(t, s, c, TCP(sport=sport, dport=cport, flags=RST | ACK, seq=sseq, ack=cseq))
    return t


def smtp_exchange(rng, helo, rcpt_domain):
    body = b"Subject: report %d\r\n\r\n" % rng.randrange(10000) + b"x" * rng.randrange(200, 900)
    return [
        ("s", b"220 mx.%s ESMTP\r\n" % rcpt_domain),
        ("c", b"EHLO %s\r\n" % helo),
        ("s", b"250-mx.%s\r\n250 8BITMIME\r\n" % rcpt_domain),
        ("c", b"MAIL FROM:<noreply@%s>\r\n" % helo),
        ("s", b"250 2.1.0 Ok\r\n"),
        ("c", b"RCPT TO:<user%d@%s>\r\n" % (rng.randrange(100), rcpt_domain)),
        ("s", b"250 2.1.5 Ok\r\n"),
        ("c", b"DATA\r\n"),
        ("s", b"354 End data with <CR><LF>.<CR><LF>\r\n"),
        ("c", body + b"\r\n.\r\n"),
        ("s", b"250 2.0.0 Ok: queued\r\n"),
        ("c", b"QUIT\r\n"),
        ("s", b"221 2.0.0 Bye\r\n"),
    ]


def ext_v4(rng, used):
    """A fresh external IPv4 address from the documentation / benchmarking ranges."""
    nets = ["198.51.100.", "203.0.113.", "192.0.2.", "198.18.0.", "198.19.7."]
    while True:
        a = rng.choice(nets) + str(rng.randrange(1, 255))
        if a not in used:
            used.add(a)
            return a


def ephemeral(rng):
    return rng.randrange(32768, 61000)


# ---- host kinds -------------------------------------------------------------------------

def kind_mta(tr, rng, used):
    """The legitimate internal MTA: 20 full SMTP sessions to distinct MXs."""
    mta = "10.0.1.25"
    for i in range(20):
        mx = ext_v4(rng, used)
        t = rng.uniform(0, SPAN_S - 5)
        tcp_session(tr, rng, t, mta, mx, ephemeral(rng), 25,
                    smtp_exchange(rng, b"mail.corp.example", b"dest%d.example" % i))


def kind_bot(tr, rng, used):
    """The spam bot: SYNs to ~100 distinct external port-25 addresses, retried at +1s and
    +3s with the same source port, never answered; plus 8 attempts that are reset."""
    bot = "192.168.1.66"
    for _ in range(100):
        dst = ext_v4(rng, used)
        t = rng.uniform(0, SPAN_S - 4)
        sport = ephemeral(rng)
        seq = rng.randrange(1 << 32)
        for retry in (0.0, 1.0, 3.0):
            tr.add(t + retry, bot, dst, TCP(sport=sport, dport=25, flags=SYN, seq=seq,
                                            window=8192))
    for _ in range(8):
        dst = ext_v4(rng, used)
        t = rng.uniform(0, SPAN_S - 1)
        sport = ephemeral(rng)
        seq = rng.randrange(1 << 32)
        tr.add(t, bot, dst, TCP(sport=sport, dport=25, flags=SYN, seq=seq, window=8192))
        tr.add(t + 0.03, dst, bot, TCP(sport=25, dport=sport, flags=RST | ACK, seq=0,
                                       ack=seq + 1, window=0))


def kind_web(tr, rng, used):
    """Internal desktops browsing: 60 HTTPS sessions."""
    clients = ["10.0.2.%d" % i for i in range(10, 20)] + ["192.168.1.%d" % i for i in (20, 21)]
    servers = [ext_v4(rng, used) for _ in range(15)]
    for _ in range(60):
        c = rng.choice(clients)
        s = rng.choice(servers)
        t = rng.uniform(0, SPAN_S - 5)
        ex = [("c", bytes(rng.randrange(256) for _ in range(rng.randrange(200, 520))))]
        ex.append(("s", bytes(rng.randrange(256) for _ in range(rng.randrange(600, 1400)))))
        for _ in range(rng.randrange(0, 3)):
            ex.append(("c", bytes(rng.randrange(256) for _ in range(rng.randrange(60, 300)))))
            ex.append(("s", bytes(rng.randrange(256) for _ in range(rng.randrange(200, 1400)))))
        tcp_session(tr, rng, t, c, s, ephemeral(rng), 443, ex, close="fin", rtt=0.04)


def dns_query(rng, name):
    qid = rng.randrange(1 << 16)
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.split(b"."):
        q += bytes([len(label)]) + label
    q += b"\x00" + struct.pack(">HH", 15 if b"mx" in name else 1, 1)
    return qid, q


def kind_dns(tr, rng, used):
    """40 client queries to the internal resolver, each followed by a resolver query to
    an external authority (distinct source ports, so distinct flows)."""
    resolver = "10.0.0.53"
    clients = ["10.0.2.%d" % i for i in range(10, 20)] + ["10.0.1.25", "192.168.1.66"]
    auths = [ext_v4(rng, used) for _ in range(6)]
    for i in range(40):
        c = rng.choice(clients)
        t = rng.uniform(0, SPAN_S - 1)
        name = b"mx%d.dest%d.example" % (i % 3, i)
        _, q = dns_query(rng, name)
        cport = ephemeral(rng)
        tr.add(t, c, resolver, UDP(sport=cport, dport=53) / Raw(q))
        a = rng.choice(auths)
        rport = ephemeral(rng)
        tr.add(t + 0.001, resolver, a, UDP(sport=rport, dport=53) / Raw(q))
        ans = q[:2] + b"\x81\x80" + q[4:] + b"\xc0\x0c" + bytes(16)
        tr.add(t + 0.030, a, resolver, UDP(sport=53, dport=rport) / Raw(ans))
        tr.add(t + 0.031, resolver, c, UDP(sport=53, dport=cport) / Raw(ans))


def kind_icmp(tr, rng, used):
    """10 pings (3 echo requests and replies each) to external hosts."""
    src = "10.0.2.10"
    for i in range(10):
        dst = ext_v4(rng, used)
        t = rng.uniform(0, SPAN_S - 3)
        for k in range(3):
            tr.add(t + k, src, dst, ICMP(type=8, code=0, id=0x4000 + i, seq=k) / Raw(b"p" * 32))
            tr.add(t + k + 0.012, dst, src, ICMP(type=0, code=0, id=0x4000 + i, seq=k) /
                   Raw(b"p" * 32))


def kind_ipv6_mta(tr, rng, used):
    """IPv6 SMTP: 10 full sessions from 2001:db8:1::25 plus 10 unanswered SYNs from an
    IPv6 bot 2001:db8:1::66."""
    mta = "2001:db8:1::25"
    for i in range(10):
        mx = "2001:db8:ff:%x::25" % (i + 1)
        t = rng.uniform(0, SPAN_S - 5)
        tcp_session(tr, rng, t, mta, mx, ephemeral(rng), 25,
                    smtp_exchange(rng, b"mail6.corp.example", b"v6dest%d.example" % i))
    bot = "2001:db8:1::66"
    for i in range(10):
        dst = "2001:db8:fe:%x::1" % (i + 1)
        t = rng.uniform(0, SPAN_S - 2)
        sport = ephemeral(rng)
        seq = rng.randrange(1 << 32)
        for retry in (0.0, 1.0):
            tr.add(t + retry, bot, dst, TCP(sport=sport, dport=25, flags=SYN, seq=seq))


def kind_ipv6_udp(tr, rng, used):
    """IPv6 UDP: 15 DNS exchanges and 3 UDP/443 exchanges."""
    res = "2001:db8:1::53"
    for i in range(15):
        c = "2001:db8:1::%x" % (0x100 + i % 5)
        t = rng.uniform(0, SPAN_S - 1)
        _, q = dns_query(rng, b"www%d.v6.example" % i)
        port = ephemeral(rng)
        tr.add(t, c, res, UDP(sport=port, dport=53) / Raw(q))
        tr.add(t + 0.002, res, c, UDP(sport=53, dport=port) / Raw(q[:2] + b"\x81\x80" + q[4:]))
    for i in range(3):
        c = "2001:db8:1::%x" % (0x200 + i)
        s = "2001:db8:ff:100::%x" % (i + 1)
        t = rng.uniform(0, SPAN_S - 3)
        port = ephemeral(rng)
        for k in range(4):
            tr.add(t + k * 0.05, c, s, UDP(sport=port, dport=443) / Raw(bytes(1200)))
            tr.add(t + k * 0.05 + 0.02, s, c, UDP(sport=443, dport=port) / Raw(bytes(1200)))


CAST = [kind_mta, kind_bot, kind_web, kind_dns, kind_icmp, kind_ipv6_mta, kind_ipv6_udp]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default="fixtures/traffic.pcap")
    args = ap.parse_args()
    tr = Traffic()
    used = set()
    for kind in CAST:
        # one generator per kind, so extending one kind does not reshuffle the others
        kind(tr, random.Random("%d/%s" % (args.seed, kind.__name__)), used)
    n = tr.write(args.out)
    print("%s: %d packets" % (args.out, n), file=sys.stderr)


if __name__ == "__main__":
    main()
