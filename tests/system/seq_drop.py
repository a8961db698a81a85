#!/usr/bin/python3
"""Sequence loss on real exporter streams: remove datagrams from a softflowd capture, replay
what is left, and check that spamflowd reports exactly what went missing (records for v5
and IPFIX, datagrams for v9), while the untouched capture reports zero. softflowd's IPFIX
sequence numbers count the records of the message that carries them (RFC 7011 counts those
before it); a lossless stream must show no loss and a real drop must still show.

usage: seq_drop.py SPAMFLOWD CAPTURE EXPECT_JSON DROP_INDEX...
"""
import json
import os
import struct
import subprocess
import sys
import tempfile


def read_pcap(path):
    data = open(path, "rb").read()
    magic = data[:4]
    endian = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    off, packets = 24, []
    while off + 16 <= len(data):
        incl = struct.unpack(endian + "I", data[off + 8:off + 12])[0]
        packets.append(data[off:off + 16 + incl])
        off += 16 + incl
    return data[:24], packets


def replay(spamflowd, path):
    out = subprocess.run([spamflowd, "--replay", path, "--json"], capture_output=True,
                         text=True, check=True).stdout
    rows = [e for e in json.loads(out)["exporters"] if e.get("domain") is not None]
    return sum(e["seq_lost"] for e in rows), sum(e["records"] for e in rows)


def main():
    spamflowd, capture, expect_path = sys.argv[1:4]
    drops = sorted(int(x) for x in sys.argv[4:])
    expect = json.load(open(expect_path))
    per_dgram = expect["records_per_datagram"]
    header, packets = read_pcap(capture)
    if len(packets) != expect["datagrams"]:
        sys.exit(f"{capture}: {len(packets)} packets, expect file says {expect['datagrams']}")

    lost0, rec0 = replay(spamflowd, capture)
    if lost0 != 0 or rec0 != expect["data_records"]:
        sys.exit(f"untouched capture: seq_lost {lost0} (want 0), records {rec0} "
                 f"(want {expect['data_records']})")

    kept = [p for i, p in enumerate(packets) if i not in drops]
    tmp = tempfile.NamedTemporaryFile(suffix=".pcap", delete=False)
    tmp.write(header + b"".join(kept))
    tmp.close()
    try:
        lost, rec = replay(spamflowd, tmp.name)
    finally:
        os.unlink(tmp.name)
    # a drop after the last datagram that arrives cannot show in any sequence number
    last_kept = max(i for i in range(len(packets)) if i not in drops)
    drops_seen = [i for i in drops if i < last_kept]
    if expect["version"] == 9:
        want = len(drops_seen)  # RFC 3954: the sequence counts export datagrams
    else:
        want = sum(per_dgram[i] for i in drops_seen)  # v5, IPFIX: records
    want_rec = expect["data_records"] - sum(per_dgram[i] for i in drops)
    print(f"{os.path.basename(capture)}: dropped datagrams {drops}: seq_lost {lost} "
          f"(want {want}), records {rec} (want {want_rec})")
    if lost != want or rec != want_rec:
        sys.exit("FAIL")


if __name__ == "__main__":
    main()
