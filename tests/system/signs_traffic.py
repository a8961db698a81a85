"""The capture of the DNS corroboration system test (evidence_signs.py), written with struct
(Ethernet, IPv4, TCP/UDP with their checksums; no scapy): a deterministic function of
nothing, so every run exports the same flows.

Cast, within 6 minutes:
  dns-bot     192.168.10.66  70 SMTP sessions to distinct MXs in 3.5 minutes (from 2:00),
                             asking 8.8.8.8 for MX records itself every 15 s from 1:40
                             (DNS_BOT_QUERIES UDP queries, the last one to 1.1.1.1)
  plain-bot   192.168.10.67  the same fan-out; its DNS goes to the site's resolver
  resolver    10.0.0.53      forwards every query to 192.0.2.53 (external)
The daemon counts a host's DNS once the host is tracked (its first port-25 record), so which
queries an alert counts depends on the order softflowd exports the flows in: the test
computes it from the records as the daemon received them.
"""
import struct

BASE_TS = 1768471200  # 2026-01-15 10:00:00 UTC
DNS_BOT = "192.168.10.66"
PLAIN_BOT = "192.168.10.67"
RESOLVER = "10.0.0.53"
UPSTREAM = "192.0.2.53"
DNS_BOT_QUERIES = 15  # 14 to 8.8.8.8, the last to 1.1.1.1
FANOUT = 70

SYN, FIN, RST, PSH, ACK = 0x02, 0x01, 0x04, 0x08, 0x10


def ip4(text):
    return bytes(int(x) for x in text.split("."))


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


class Pcap:
    def __init__(self):
        self.pkts = []
        self.ipid = 0

    def _frame(self, src, dst, proto, l4):
        self.ipid = (self.ipid + 1) & 0xFFFF
        hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), self.ipid, 0x4000, 64, proto,
                          0, ip4(src), ip4(dst))
        hdr = hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:]
        eth = b"\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02\x08\x00"
        return eth + hdr + l4

    def _l4sum(self, src, dst, proto, l4):
        pseudo = ip4(src) + ip4(dst) + struct.pack("!BBH", 0, proto, len(l4))
        return csum(pseudo + l4)

    def tcp(self, t, src, dst, sport, dport, flags, seq=0, ack=0, payload=b""):
        l4 = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 64240, 0, 0)
        l4 += payload
        l4 = l4[:16] + struct.pack("!H", self._l4sum(src, dst, 6, l4)) + l4[18:]
        self.pkts.append((t, len(self.pkts), self._frame(src, dst, 6, l4)))

    def udp(self, t, src, dst, sport, dport, payload):
        l4 = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
        l4 = l4[:6] + struct.pack("!H", self._l4sum(src, dst, 17, l4)) + l4[8:]
        self.pkts.append((t, len(self.pkts), self._frame(src, dst, 17, l4)))

    def write(self, path):
        self.pkts.sort(key=lambda p: (p[0], p[1]))
        with open(path, "wb") as f:
            f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
            for t, _, data in self.pkts:
                us = BASE_TS * 1000000 + int(round(t * 1e6))
                f.write(struct.pack("<IIII", us // 1000000, us % 1000000, len(data),
                                    len(data)))
                f.write(data)
        return len(self.pkts)


def smtp_session(p, t, c, s, cport):
    """Handshake, a few data packets each way, FIN both ways."""
    cs, ss = 1000, 5000
    p.tcp(t, c, s, cport, 25, SYN, cs)
    p.tcp(t + 0.01, s, c, 25, cport, SYN | ACK, ss, cs + 1)
    p.tcp(t + 0.02, c, s, cport, 25, ACK, cs + 1, ss + 1)
    for i in range(3):
        p.tcp(t + 0.03 + i * 0.02, s, c, 25, cport, PSH | ACK, ss + 1, cs + 1, b"250 ok\r\n")
        p.tcp(t + 0.04 + i * 0.02, c, s, cport, 25, PSH | ACK, cs + 1, ss + 10,
              b"MAIL FROM:<a@b.example>\r\n")
    p.tcp(t + 0.2, c, s, cport, 25, FIN | ACK, cs + 30, ss + 30)
    p.tcp(t + 0.21, s, c, 25, cport, FIN | ACK, ss + 30, cs + 31)
    p.tcp(t + 0.22, c, s, cport, 25, ACK, cs + 31, ss + 31)


def query(qid, name):
    q = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.split(b"."):
        q += bytes([len(label)]) + label
    return q + b"\0" + struct.pack("!HH", 15, 1)


def dns(p, t, c, server, cport, qid):
    q = query(qid, b"mx%d.example" % qid)
    p.udp(t, c, server, cport, 53, q)
    p.udp(t + 0.03, server, c, 53, cport, q[:2] + b"\x81\x80" + q[4:])


def build(path):
    p = Pcap()
    for i in range(DNS_BOT_QUERIES):
        server = "1.1.1.1" if i == DNS_BOT_QUERIES - 1 else "8.8.8.8"
        dns(p, 100 + i * 15, DNS_BOT, server, 30000 + i, 100 + i)
        # the other bot uses the site's resolver, which asks outside
        dns(p, 101 + i * 15, PLAIN_BOT, RESOLVER, 31000 + i, 200 + i)
        dns(p, 101.001 + i * 15, RESOLVER, UPSTREAM, 32000 + i, 300 + i)
    for i in range(FANOUT):
        t = 120 + i * 3
        smtp_session(p, t, DNS_BOT, "198.51.100.%d" % (i + 1), 40000 + i)
        smtp_session(p, t + 1, PLAIN_BOT, "203.0.113.%d" % (i + 1), 41000 + i)
    return p.write(path)
