#!/usr/bin/python3
"""The scenario generator (scripts/gen_scenario.py) against the fixtures it made.

1. Seed 1 with the defaults writes fixtures/scenario.pcap byte for byte, and the truth of
   fixtures/scenario.truth.json but for the capture's name: the fixtures every scenario test
   replays are what the generator makes, so a change to it that moves them shows here.
2. --smtp dialog (scripts/eval_detection.py --smtp dialog, README "Sampled exports") makes
   every complete SMTP session a step-by-step dialog: the client sends 9 packets where the
   compact session sends 4, the server 9 where it sends 4, with the same sessions otherwise
   (as many within 1 %, and as many SYN-only attempts within 1 %: longer sessions move
   some later draws), the probe's MX checks (3 + 3) unchanged, and
   its truth expects the same (host, reason) pairs as the fixtures'.

usage: check_generator.py FIXTURES_DIR
"""

import collections
import json
import os
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPTS = os.path.join(HERE, "..", "..", "scripts")
GEN = os.path.join(SCRIPTS, "gen_scenario.py")
sys.path.insert(0, SCRIPTS)
import count_records  # noqa: E402  (read_pcap)
PY = "/usr/bin/python3"  # gen_scenario imports scapy (Debian's python3-scapy)
SYN, FIN, ACK = 0x02, 0x01, 0x10


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def generate(tmp, name, *extra):
    pcap, truth = os.path.join(tmp, name + ".pcap"), os.path.join(tmp, name + ".json")
    r = subprocess.run([PY, GEN, "--seed", "1", "--out", pcap, "--truth", truth] + list(extra),
                       capture_output=True, text=True)
    if r.returncode != 0:
        fail("gen_scenario.py %s: exit %d: %s" % (" ".join(extra), r.returncode, r.stderr[-600:]))
    return pcap, json.load(open(truth))


def tcp_sessions(path):
    """Per TCP connection to or from port 25 (the client's 5-tuple): [client packets, server
    packets, client FIN seen, server SYN-ACK seen]."""
    conns = collections.defaultdict(lambda: [0, 0, False, False])
    for _us, _linktype, data in count_records.read_pcap(path):
        etype = struct.unpack("!H", data[12:14])[0]
        if etype == 0x0800:
            ihl = (data[14] & 15) * 4
            proto, src, dst = data[23], data[26:30], data[30:34]
            l4 = data[14 + ihl:]
        elif etype == 0x86DD:
            proto, src, dst = data[20], data[22:38], data[38:54]
            l4 = data[54:]
        else:
            continue
        if proto != 6:
            continue
        sport, dport = struct.unpack("!HH", l4[:4])
        flags = l4[13]
        if dport == 25:
            c = conns[(src, sport, dst)]
            c[0] += 1
            c[2] |= bool(flags & FIN)
        elif sport == 25:
            c = conns[(dst, dport, src)]
            c[1] += 1
            c[3] |= (flags & (SYN | ACK)) == (SYN | ACK)
    return conns


def shape(conns):
    """(client packets, server packets) of the complete sessions -> count; SYN-only count."""
    done = collections.Counter((c, s) for c, s, fin, synack in conns.values() if fin and synack)
    syn_only = sum(1 for c, s, fin, synack in conns.values() if s == 0)
    return done, syn_only


def pairs(truth):
    return sorted((h["name"], e["reason"]) for h in truth["hosts"] for e in h["expected"])


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    fixtures = sys.argv[1]
    with tempfile.TemporaryDirectory(prefix="spamflow-gen.") as tmp:
        pcap, truth = generate(tmp, "compact")
        want = open(os.path.join(fixtures, "scenario.pcap"), "rb").read()
        got = open(pcap, "rb").read()
        if got != want:
            fail("seed 1 wrote %d bytes, fixtures/scenario.pcap has %d (or they differ): "
                 "regenerate the fixtures (fixtures/make.sh) or undo the change"
                 % (len(got), len(want)))
        ftruth = json.load(open(os.path.join(fixtures, "scenario.truth.json")))
        truth["capture"] = ftruth["capture"]
        if truth != ftruth:
            fail("seed 1's truth differs from fixtures/scenario.truth.json")
        print("ok: seed 1 is fixtures/scenario.pcap (%d bytes) and its truth" % len(got))

        dpcap, dtruth = generate(tmp, "dialog", "--smtp", "dialog")
        if dtruth.get("design_mismatch"):
            fail("dialog: the traffic crosses other reasons than designed: %s"
                 % dtruth["design_mismatch"])
        if pairs(dtruth) != pairs(truth):
            fail("dialog expects %s, compact %s" % (pairs(dtruth), pairs(truth)))
        print("ok: dialog expects the same %d (host, reason) pairs" % len(pairs(truth)))

        cdone, csyn = shape(tcp_sessions(pcap))
        ddone, dsyn = shape(tcp_sessions(dpcap))
        print("compact sessions (client, server packets): %s; SYN-only %d" %
              (dict(cdone.most_common(4)), csyn))
        print("dialog sessions: %s; SYN-only %d" % (dict(ddone.most_common(4)), dsyn))
        nc, nd = sum(cdone.values()), sum(ddone.values())
        if cdone.most_common(1)[0][0] != (4, 4) or cdone[(4, 4)] < 0.95 * nc:
            fail("compact: %d of %d complete sessions are 4 + 4 packets" % (cdone[(4, 4)], nc))
        # the probe's MX checks (3 + 3, not SMTP deliveries) are the same in both
        if set(ddone) != {(9, 9), (3, 3)} or ddone[(3, 3)] != cdone[(3, 3)]:
            fail("dialog: complete sessions other than 9 + 9 packets and the probe's %d "
                 "MX checks: %s" % (cdone[(3, 3)], dict(ddone)))
        if abs(ddone[(9, 9)] - cdone[(4, 4)]) > 0.01 * cdone[(4, 4)]:
            fail("dialog: %d complete sessions, compact %d" % (ddone[(9, 9)], cdone[(4, 4)]))
        if abs(dsyn - csyn) > 0.01 * csyn:
            fail("dialog: %d SYN-only attempts, compact %d" % (dsyn, csyn))
        print("ok: %d dialog sessions of 9 + 9 packets for %d compact ones of 4 + 4, of %d "
              "and %d complete sessions" % (ddone[(9, 9)], cdone[(4, 4)], nd, nc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
