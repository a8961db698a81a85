#!/usr/bin/python3
"""Split a capture of flow export datagrams among N collectors, datagram by datagram: part i
gets datagrams i, i+N, i+2N, ... (so every host's flows are split among them, the hardest case
for a cluster), each part a pcap with the original header and timestamps. For NetFlow v5 and
sFlow (no templates); a v9 or IPFIX export's templates would go to one part only.

Replay the parts in step into a spamflow cluster's collectors (doc/cluster.md):
    scripts/pcap-split.py fixtures/scenario-v5.pcap 2 /tmp/part
    spamflowd -c c1.conf --replay /tmp/part0.pcap --replay-speed 500 --replay-start MS &
    spamflowd -c c2.conf --replay /tmp/part1.pcap --replay-speed 500 --replay-start MS

usage: pcap-split.py CAPTURE N PREFIX   (writes PREFIX0.pcap .. PREFIX<N-1>.pcap)
"""
import sys


def main():
    if len(sys.argv) != 4 or not sys.argv[2].isdigit() or int(sys.argv[2]) < 1:
        sys.exit(__doc__.strip().splitlines()[-1])
    path, n, prefix = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    data = open(path, "rb").read()
    if data[:4] == b"\xd4\xc3\xb2\xa1" or data[:4] == b"\x4d\x3c\xb2\xa1":
        order = "little"
    elif data[:4] == b"\xa1\xb2\xc3\xd4" or data[:4] == b"\xa1\xb2\x3c\x4d":
        order = "big"
    else:
        sys.exit(f"{path}: not a pcap file (pcapng: convert it with editcap -F pcap)")
    outs = [open(f"{prefix}{i}.pcap", "wb") for i in range(n)]
    for f in outs:
        f.write(data[:24])
    off, i = 24, 0
    while off + 16 <= len(data):
        incl = int.from_bytes(data[off + 8:off + 12], order)
        if off + 16 + incl > len(data):
            sys.exit(f"{path}: truncated at byte {off}")
        outs[i % n].write(data[off:off + 16 + incl])
        off += 16 + incl
        i += 1
    for f in outs:
        f.close()
    print(f"{i} datagrams into {n} parts: " + ", ".join(f"{prefix}{k}.pcap" for k in range(n)))


if __name__ == "__main__":
    main()
