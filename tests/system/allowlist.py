#!/usr/bin/python3
"""Exporter allowlist: datagrams from sources outside [collector] allowed_exporters are
counted (exporters_denied) and dropped before decoding; listed exporters decode as before.
Two captures from different exporters are replayed together: softflowd's (127.0.0.1, 27
datagrams, 526 records) and the hand-built NSEL one (192.0.2.9, 2 datagrams, 7 records).
A refused source is never silent: it is logged once (with the key to change), listed with
its datagram count in the summary's "denied" (and so in `spamflowctl exporters`), and said
again in the text summary.

usage: allowlist.py SPAMFLOWD FIXTURES_DIR
"""
import json
import os
import subprocess
import sys
import tempfile


def run(spamflowd, fixtures, allowed):
    conf = tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False)
    conf.write(f"[collector]\nallowed_exporters = {allowed}\n")
    conf.close()
    args = [spamflowd, "-c", conf.name, "--replay",
            os.path.join(fixtures, "softflowd-ipfix.pcap"),
            os.path.join(fixtures, "hand", "v9-nsel.pcap")]
    p = subprocess.run(args + ["--json"], capture_output=True, text=True, check=True)
    text = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    os.unlink(conf.name)
    d = json.loads(p.stdout)
    denied = {x["addr"]: x["datagrams"] for x in d["denied"]}
    logged = sorted(l.split("datagrams from ")[1].split(":")[0]
                    for l in p.stderr.splitlines() if "refused: not in [collector]" in l)
    listed = sorted(l.split(": ")[1].split(" ")[0]
                    for l in text.splitlines() if l.startswith("refused (not in allowed"))
    return (d["totals"]["exporters_denied"], d["totals"]["records"],
            sorted({e["addr"] for e in d["exporters"]}), denied, logged, listed)


def main():
    spamflowd, fixtures = sys.argv[1], sys.argv[2]
    # (denied, records, exporters, {refused source: datagrams}, logged once, in the summary)
    cases = [
        ("", (0, 533, ["127.0.0.1", "192.0.2.9"], {}, [], [])),  # empty: every source
        ("192.0.2.0/24", (27, 7, ["192.0.2.9"], {"127.0.0.1": 27},  # only the NSEL exporter
                          ["127.0.0.1"], ["127.0.0.1"])),
        ("127.0.0.1, 2001:db8::/32", (2, 526, ["127.0.0.1"], {"192.0.2.9": 2},  # softflowd
                                      ["192.0.2.9"], ["192.0.2.9"])),
        ("10.0.0.0/8", (29, 0, [], {"127.0.0.1": 27, "192.0.2.9": 2},  # nobody
                        ["127.0.0.1", "192.0.2.9"], ["127.0.0.1", "192.0.2.9"])),
    ]
    bad = False
    for allowed, want in cases:
        got = run(spamflowd, fixtures, allowed)
        ok = got == want
        bad |= not ok
        print(f"{'ok ' if ok else 'BAD'} allowed_exporters = {allowed!r}: denied, records, "
              f"exporters, refused sources, logged, listed = {got}"
              + ("" if ok else f", want {want}"))
    if bad:
        sys.exit("FAIL")


if __name__ == "__main__":
    main()
