#!/usr/bin/python3
"""Firewall session events over NetFlow v9 (Cisco ASA NSEL: 233 firewall event, 231/232
initiator/responder octets, 298/299 packets, 152/323 times), sent over UDP to a live daemon,
one bot per way a firewall can be set to export:

  - domain 1, every event (`flow-export event-type all`): a create as each session opens and
    its teardown 2 s later, 60 sessions to 60 mail servers;
  - domain 2, `flow-export delay flow-create 60`: sessions shorter than the delay send their
    teardown alone: 60 of them (before analyzer/fwmode.c this bot counted nothing);
  - domain 3, teardowns alone, the servers never answering (responder octets 0) or refusing
    (one bare packet, a reset's 40 octets): 40 failed attempts, smtp-blocked;
  - domain 4, creates alone (`flow-export event-type flow-create`): 60, read as before;
  - domain 5, every event, a host with 8 sessions: nothing raised.

tshark reads the same datagrams (from a capture written here) and counts each domain's
creates, teardowns and teardowns with at most 60 responder octets in one packet; the daemon
must count the same (analyzer stats fw_teardowns, fw_teardowns_failed, fw_creates_skipped),
raise each bot once for the right reason with its session count, and log which domains'
teardowns count.

usage: firewall_events.py SPAMFLOWD SPAMFLOWCTL
"""
import os
import shutil
import struct
import subprocess
import sys
import time

import testdir
from control import Daemon, send_all

failures = []


def check(cond, what):
    print(("ok    " if cond else "FAIL  ") + what, flush=True)
    if not cond:
        failures.append(what)


TID = 260
FIELDS = [(8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (233, 1), (231, 4), (232, 4),
          (298, 8), (299, 8), (152, 8), (323, 8)]
CREATED, DELETED = 1, 2


class Exporter:
    """One ASA context: NetFlow v9, its own source id (the observation domain)."""

    def __init__(self, source_id):
        self.source_id = source_id
        self.seq = 0
        self.boot_ms = int(time.time() * 1000) - 86400000

    def datagram(self, records):
        now = int(time.time() * 1000)
        tmpl = struct.pack(">HH", TID, len(FIELDS)) + b"".join(
            struct.pack(">HH", i, n) for i, n in FIELDS)
        sets = struct.pack(">HH", 0, 4 + len(tmpl)) + tmpl
        body = b"".join(records)
        pad = (-len(body)) % 4
        sets += struct.pack(">HH", TID, 4 + len(body) + pad) + body + b"\0" * pad
        hdr = struct.pack(">HHIIII", 9, len(records) + 1, now - self.boot_ms, now // 1000,
                          self.seq, self.source_id)
        self.seq += 1
        return hdr + sets


def record(src, dst, sport, event, resp_octets, start_ms, end_ms):
    init = (0, 0) if event == CREATED else (1800, 12)
    resp = (0, 0) if event == CREATED else (
        resp_octets, 0 if resp_octets == 0 else 1 if resp_octets <= 60 else 10)
    return (bytes(map(int, src.split("."))) + bytes(map(int, dst.split("."))) +
            struct.pack(">HHBBIIQQQQ", sport, 25, 6, event, init[0], resp[0], init[1], resp[1],
                        start_ms, end_ms))


def mx(domain, i):
    return "198.51.%d.%d" % (100 + domain, 1 + i)


def sessions(domain, host, n, events, resp_octets):
    """n sessions of host, each as the events of `events` (CREATED, DELETED); resp_octets
    None: every other one unanswered (0) and refused (a reset, 40)."""
    t0 = int(time.time() * 1000) - 60000
    out = []
    for i in range(n):
        start = t0 + i * 500
        for ev in events:
            resp = resp_octets if resp_octets is not None else (40 if i % 2 else 0)
            out.append(record(host, mx(domain, i), 40000 + i, ev,
                              resp, start, start if ev == CREATED else start + 2000))
    return out


CAST = {  # domain: (host, sessions, events, responder octets, reason expected or None)
    1: ("10.70.0.1", 60, (CREATED, DELETED), 2400, "smtp-fanout"),
    2: ("10.70.0.2", 60, (DELETED,), 2400, "smtp-fanout"),
    3: ("10.70.0.3", 40, (DELETED,), None, "smtp-blocked"),
    4: ("10.70.0.4", 60, (CREATED,), 0, "smtp-fanout"),
    5: ("10.70.0.5", 8, (CREATED, DELETED), 2400, None),
}


def pcap(path, dgrams, port):
    """The datagrams as a capture for tshark (raw IPv4, linktype 101)."""
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 65535, 101))
        for k, d in enumerate(dgrams):
            udp = struct.pack(">HHHH", 2055, port, 8 + len(d), 0) + d
            ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), k, 0, 64, 17, 0,
                             bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1])) + udp
            f.write(struct.pack("<IIII", 1700000000 + k, 0, len(ip), len(ip)) + ip)


def tshark_counts(path, port):
    """{domain: [creates, teardowns, teardowns whose responder sent at most one packet of
    at most 60 octets]} as tshark reads it."""
    p = subprocess.run(["tshark", "-r", path, "-d", f"udp.port=={port},cflow", "-T", "fields",
                        "-E", "occurrence=a", "-E", "aggregator=;",
                        "-e", "cflow.source_id", "-e", "cflow.firewall_event",
                        "-e", "cflow.responder_octets", "-e", "cflow.responder_packets"],
                       capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        sys.exit("tshark: " + p.stderr)
    out = {}
    for line in p.stdout.splitlines():
        sid, events, resp, rpk = (line.split("\t") + ["", "", ""])[:4]
        c = out.setdefault(int(sid), [0, 0, 0])
        for ev, r, k in zip(events.split(";"), resp.split(";"), rpk.split(";")):
            if ev == "1":
                c[0] += 1
            elif ev == "2":
                c[1] += 1
                c[2] += int(r) <= 60 and int(k) <= 1
    return out


def main():
    spamflowd, spamflowctl = sys.argv[1], sys.argv[2]
    if shutil.which("tshark") is None:
        sys.exit("tshark is missing (Debian tshark; scripts/setup.sh test installs it)")
    tmp = testdir.mkdtemp("spamflow-fw-")
    d = Daemon(spamflowd, spamflowctl, tmp)
    try:
        return run(d, tmp)
    finally:
        if d.alive():
            d.p.kill()


def run(d, tmp):
    dgrams = []
    for dom, (host, n, events, resp, _) in CAST.items():
        e = Exporter(dom)
        recs = sessions(dom, host, n, events, resp)
        for k in range(0, len(recs), 20):
            dgrams.append(e.datagram(recs[k:k + 20]))
    send_all(d.port, dgrams)
    path = os.path.join(tmp, "nsel.pcap")
    pcap(path, dgrams, d.port)
    want = tshark_counts(path, d.port)

    deadline = time.time() + 15
    while time.time() < deadline:
        st = d.jq("stats")[1]
        if st["listener"]["datagrams"] >= len(dgrams):
            break
        time.sleep(0.1)
    time.sleep(0.3)
    an = d.jq("stats")[1]["analyzer"]
    # every teardown of a domain that sent one is its session's attempt; the creates of
    # such a domain after its first teardown are flows only (domains 1 and 5: each session's
    # create comes before its teardown, so all but the first of each)
    teardowns = sum(c[1] for c in want.values())
    failed = sum(c[2] for c in want.values())
    skipped = sum(c[0] - 1 for c in want.values() if c[0] and c[1])
    check(want.get(1) == [60, 60, 0] and want.get(2) == [0, 60, 0] and
          want.get(3) == [0, 40, 40] and want.get(4) == [60, 0, 0],
          f"tshark reads the export as sent: {want}")
    check(an["fw_teardowns"] == teardowns and an["fw_teardowns_failed"] == failed and
          an["fw_creates_skipped"] == skipped and an["fw_domains_teardown"] == 4,
          f"stats: fw_teardowns {an['fw_teardowns']} (tshark {teardowns}), "
          f"fw_teardowns_failed {an['fw_teardowns_failed']} ({failed}), "
          f"fw_creates_skipped {an['fw_creates_skipped']} ({skipped}), "
          f"fw_domains_teardown {an['fw_domains_teardown']} (4)")

    offenders = d.jq("offenders")[1].get("offenders", [])
    for dom, (host, n, events, resp, reason) in CAST.items():
        mine = [o for o in offenders if o["host"] == host]
        rc, h = d.jq("host", host)
        w = next((x["long"] for x in h.get("windows", []) if x.get("traffic") == "smtp-external"),
                 {}) if rc == 0 else {}
        # a session is counted once: the first of domain 1 twice (its create came before
        # any teardown of its domain)
        attempts = n + (1 if events == (CREATED, DELETED) else 0)
        if reason is None:
            check(mine == [], f"domain {dom}: {host}, {n} sessions, raises nothing ({mine})")
            continue
        check(len(mine) == 1 and mine[0]["reason"] == reason,
              f"domain {dom}: {host} raised for {reason} "
              f"({[(o['reason'], o.get('severity')) for o in mine]})")
        check(w.get("distinct") == n and w.get("attempts") == attempts and
              w.get("failed") == (n if resp is None else 0),
              f"domain {dom}: its window holds {n} destinations, {attempts} attempts "
              f"({ {k: w.get(k) for k in ('distinct', 'attempts', 'failed', 'flows')} })")
    log = open(os.path.join(tmp, "daemon.log")).read()
    told = sorted(int(x.split(" domain ")[1].split()[0]) for x in log.splitlines()
                  if "sends firewall teardown events" in x)
    check(told == [1, 2, 3, 5], f"the log names the domains whose teardowns count: {told}")
    check(d.stop() == 0, "the daemon exits 0")
    print(f"{len(failures)} checks failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
