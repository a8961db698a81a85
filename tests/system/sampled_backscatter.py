#!/usr/bin/python3
"""Backscatter through a real exporter (issue 14): a sampled record of a server's SYN-ACK or
reset to an internal host counts as a sample of that host's attempt only when the host
sent records of its own, and a host's answers to connections it did not open (a reset or
a SYN-ACK alone) are no attempts: an address spoofed in an attack elsewhere, or a server
under a flood of spoofed SYNs, must not become a bot.

The capture (written here with scripts/gen_scenario.py's frame writer, 240 s):
  - the victim, 192.168.10.200, sends nothing; 400 mail servers (198.18.1-2.x) answer SYNs
    spoofed in its name: 70 % a SYN-ACK retransmitted twice (3 packets), 30 % a reset;
  - a bot, 192.168.10.66, sends SYNs (one retry) to 400 other mail servers (198.18.3-4.x),
    which answer it exactly the same way (the servers' packets are the same for both;
    only the bot's own SYNs tell them apart);
  - a web server, 192.168.10.80, under a SYN flood from spoofed sources: 400 of them
    (198.18.5-6.x) with source port 25, each answered by a SYN-ACK sent 3 times;
  - a second web server, 192.168.10.81, under the same flood (198.18.7-8.x, from 30 s on),
    that also sends mail of its own: 36 compact sessions to its 3 mail relays (198.18.9.x),
    one every 6 s from 1 s.
softflowd exports it as IPFIX at 1 in 10 (-s 10, as scripts/eval_detection.py runs it), the
export goes over UDP to a live daemon, and tshark reads the same export:
  - the bot is raised for an SMTP reason, its estimate near its 400 servers;
  - nothing is held about the victim or the web server (spamflowctl host: nothing held),
    and neither is an offender (sampled, a record of several packets reading SYN-ACK could
    be a client's SYN and handshake ACK: it counts only for a host with a window);
  - the second web server has a window, and it holds its 3 relays and nothing else: its
    SYN-ACKs are flows, not attempts, even sampled records of several of them (they come
    from port 443, a service's: a client's own connection comes from an ephemeral port);
    not an offender;
  - analyzer.answers_untracked counts the victim's resets and the web server's SYN-ACKs
    that tshark finds in the export (unsampled, exactly); sampled, also every server record
    to the victim, and at most the bot's servers' records besides (those that came before
    its first record counted); the second web server's count only before its first record
    of its own (none here: its flood starts later).

usage: sampled_backscatter.py SPAMFLOWD SPAMFLOWCTL
"""
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "scripts"))
import eval_detection as ev  # noqa: E402 (softflowd_export: softflowd's IPFIX, normalized)
import gen_scenario as gs  # noqa: E402 (the frame writer)

from control import Daemon, datagrams, send_all  # noqa: E402

VICTIM = "192.168.10.200"
BOT = "192.168.10.66"
WEB = "192.168.10.80"
WEB2 = "192.168.10.81"
RELAYS = 3
SERVERS = 400
SPAN = 240.0
EXPORT_PORT = 4739  # + the rate: the source port eval_detection's normalized exports carry
failures = []


def check(cond, what):
    print(("ok    " if cond else "FAIL  ") + what, flush=True)
    if not cond:
        failures.append(what)


def server(i, base):
    return "198.18.%d.%d" % (base + i // 200, 10 + i % 200)


def backscatter(s, t, srv, hport, refuse):
    """srv's answer on port 25 to a SYN spoofed as VICTIM:hport at t: a reset, or a SYN-ACK
    sent 3 times, each reset by the victim's own stack (it opened no such connection)."""
    if refuse:
        s.tcp(t, srv, VICTIM, 25, hport, gs.RST | gs.ACK, seq=0, ack=1)
        return
    for dt in (0.0, 1.0, 3.0):
        s.tcp(t + dt, srv, VICTIM, 25, hport, gs.SYN | gs.ACK, seq=7000, ack=1)
        s.tcp(t + dt + 0.0002, VICTIM, srv, hport, 25, gs.RST, seq=1)


def attempt(s, t, srv, port, refuse, client=BOT):
    """the client's (the bot's) attempt to srv at t: refused (its SYN, the server's reset) or
    a compact session, 5 packets each way (handshake, banner, EHLO, QUIT, close)."""
    s.tcp(t, client, srv, port, 25, gs.SYN, seq=1)
    if refuse:
        s.tcp(t + 0.02, srv, client, 25, port, gs.RST | gs.ACK, seq=0, ack=2)
        return
    c, v = gs.ACK, gs.ACK
    for dt, src, flags, data in ((0.02, srv, gs.SYN | v, b""), (0.04, BOT, c, b""),
                                 (0.10, srv, gs.PSH | v, b"220 mx ESMTP\r\n"),
                                 (0.12, BOT, gs.PSH | c, b"EHLO pc\r\n"),
                                 (0.15, srv, gs.PSH | v, b"250 mx\r\n"),
                                 (0.17, BOT, gs.PSH | c, b"QUIT\r\n"),
                                 (0.20, srv, gs.PSH | gs.FIN | v, b"221 bye\r\n"),
                                 (0.21, BOT, gs.FIN | c, b""), (0.22, srv, v, b"")):
        if src == BOT:
            s.tcp(t + dt, client, srv, port, 25, flags, seq=2, ack=2, data=data)
        else:
            s.tcp(t + dt, srv, client, 25, port, flags, seq=2, ack=2, data=data)


def capture(path, rng):
    s = gs.Scenario()
    refused = {"victim": 0, "bot": 0}
    for i in range(SERVERS):
        # backscatter: the SYN that caused it was spoofed elsewhere, never seen here
        refuse = rng.random() < 0.3
        refused["victim"] += refuse
        backscatter(s, rng.uniform(1, SPAN - 10), server(i, 1), 20000 + i, refuse)
        refuse = rng.random() < 0.3
        refused["bot"] += refuse
        attempt(s, rng.uniform(1, SPAN - 10), server(i, 3), 30000 + i, refuse)
        # a SYN flood on the web server from spoofed sources, these with source port 25:
        # it answers each with a SYN-ACK, sent 3 times
        t = rng.uniform(1, SPAN - 10)
        for dt in (0.0, 1.0, 3.0):
            if dt == 0.0:
                s.tcp(t, server(i, 5), WEB, 25, 443, gs.SYN, seq=5)
            s.tcp(t + dt + 0.0001, WEB, server(i, 5), 443, 25, gs.SYN | gs.ACK, seq=9000, ack=6)
        # the same on the second web server, from 30 s on
        t = rng.uniform(30, SPAN - 10)
        for dt in (0.0, 1.0, 3.0):
            if dt == 0.0:
                s.tcp(t, server(i, 7), WEB2, 25, 443, gs.SYN, seq=5)
            s.tcp(t + dt + 0.0001, WEB2, server(i, 7), 443, 25, gs.SYN | gs.ACK, seq=9000,
                  ack=6)
    # the second web server's own mail: a session to one of its relays every 6 s
    for k in range(36):
        attempt(s, 1 + 6 * k, "198.18.9.%d" % (1 + k % RELAYS), 41000 + k, False, client=WEB2)
    s.write(path)
    return len(s.pkts), refused


def records(export, rate):
    """Records in the export (tshark): all, and per direction of interest: a server's (source
    port 25) to the victim and to the bot, the victim's own to a server (its resets)."""
    out = subprocess.run(["tshark", "-r", export, "-d", "udp.port==%d,cflow" % (EXPORT_PORT + rate),
                          "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=;",
                          "-e", "cflow.srcaddr", "-e", "cflow.dstaddr", "-e", "cflow.srcport",
                          "-e", "cflow.dstport", "-e", "cflow.packets"],
                         capture_output=True, text=True, check=True).stdout
    n = {"all": 0, "to_victim": 0, "to_bot": 0, "from_victim": 0, "from_web": 0,
         "from_web_multi": 0, "from_web2": 0, "from_web2_multi": 0, "web2_own": 0,
         "web2_before": 0}
    for line in out.splitlines():
        cols = line.split("\t")
        if len(cols) < 5 or not cols[0]:
            continue
        for src, dst, sport, dport, pkts in zip(*(c.split(";") for c in cols[:5])):
            n["all"] += 1
            if src == WEB2 and dport == "25":
                if sport == "443":
                    n["from_web2"] += 1
                    n["from_web2_multi"] += int(pkts) > 1
                    n["web2_before"] += n["web2_own"] == 0
                else:
                    n["web2_own"] += 1
            if sport == "25" and dst == VICTIM:
                n["to_victim"] += 1
            elif sport == "25" and dst == BOT:
                n["to_bot"] += 1
            elif src == VICTIM and dport == "25":
                n["from_victim"] += 1
            elif src == WEB and dport == "25":
                n["from_web"] += 1
                n["from_web_multi"] += int(pkts) > 1
    return n


def run(spamflowd, ctl, pcap, rate, tmp):
    """softflowd at 1 in rate -> a live daemon; the checks."""
    tag = "unsampled" if rate == 1 else "1:%d" % rate
    export = os.path.join(tmp, "backscatter-%d.pcap" % rate)
    dg = ev.softflowd_export(pcap, export, rate, tmp)
    n = records(export, rate)
    print("[%s] softflowd: %d datagrams; tshark: %s" % (tag, dg, n), flush=True)
    check(n["to_victim"] >= 50 and n["to_bot"] >= 50 and n["from_victim"] >= 50
          and n["from_web"] >= 50,
          "[%s] the export carries the servers' answers to both, the victim's resets and the "
          "web server's SYN-ACKs" % tag)
    d = Daemon(spamflowd, ctl, os.path.join(tmp, str(rate)))
    try:
        send_all(d.port, datagrams(export))
        deadline = time.time() + 10
        st = {}
        while time.time() < deadline:
            st = d.jq("stats")[1]
            if st["totals"]["records"] >= n["all"]:
                break
            time.sleep(0.1)
        check(st["totals"]["records"] == n["all"],
              "[%s] the daemon decoded every record (%d of %d)"
              % (tag, st["totals"]["records"], n["all"]))

        rc, j = d.jq("host", BOT)
        offs = {o["reason"] for o in d.jq("offenders")[1]["offenders"] if o["host"] == BOT}
        check(rc == 0 and j["sampling"] == rate and offs & {"smtp-blocked", "smtp-fanout"},
              "[%s] the bot is raised (%s)" % (tag, sorted(offs)))
        fan = next(r for r in j["reasons"] if r["reason"] == "smtp-fanout")
        if rate == 1:
            check(fan["value"]["long"] == SERVERS,
                  "[%s] its %d servers, counted exactly (%d)" % (tag, SERVERS, fan["value"]["long"]))
        else:
            est = fan["estimate"]["long"]
            check(abs(est - SERVERS) <= max(2.5 * fan["estimate_se"]["long"], 0.2 * SERVERS),
                  "[%s] its estimate %d +- %d is near its %d servers"
                  % (tag, est, fan["estimate_se"]["long"], SERVERS))

        rc, out, err = d.run("host", VICTIM)
        print("[%s] spamflowctl host %s: rc %d, %s" % (tag, VICTIM, rc, (out + err).strip()[:300]))
        check(rc != 0 and "nothing is held" in (out + err),
              "[%s] nothing is held about the victim" % tag)
        # (sampled, a record of several SYN-ACKs could be a client's SYN and handshake ACK:
        # an attempt only of a host that has a window, and the web server never makes one)
        rc, out, err = d.run("host", WEB)
        check(rc != 0 and "nothing is held" in (out + err),
              "[%s] nothing is held about the flooded web server (%d of its records of "
              "several packets)" % (tag, n["from_web_multi"]))
        # the second web server sends mail of its own: it has a window, and its SYN-ACKs
        # from port 443 are flows in it, not attempts, sampled records of several included
        rc, j = d.jq("host", WEB2)
        fan = next(r for r in j["reasons"] if r["reason"] == "smtp-fanout") if rc == 0 else {}
        seen = fan.get("value", {}).get("long", -1)
        print("[%s] host %s: %s" % (tag, WEB2, json.dumps(fan)[:400]), flush=True)
        check(rc == 0 and seen == RELAYS,
              "[%s] the second web server holds its %d relays and nothing else (%d; %d of its "
              "%d SYN-ACK records of several packets)" % (tag, RELAYS, seen, n["from_web2_multi"],
                                                          n["from_web2"]))
        if rate > 1:
            check(n["from_web2_multi"] >= 3,
                  "[%s] the export has records of several of its SYN-ACKs to test (%d)"
                  % (tag, n["from_web2_multi"]))
        offenders = d.jq("offenders")[1]["offenders"]
        check(all(o["host"] not in (VICTIM, WEB, WEB2) for o in offenders),
              "[%s] neither the victim nor the web servers is an offender (%s)"
              % (tag, sorted({o["host"] for o in offenders})))
        untracked = d.jq("stats")[1]["analyzer"]["answers_untracked"]
        if rate == 1:
            # unsampled, a server's record only marks an attempt answered: the victim's
            # resets and the web server's SYN-ACKs are all that is counted
            want = n["from_victim"] + n["from_web"] + n["web2_before"]
            check(untracked == want,
                  "[%s] answers_untracked %d: the victim's resets and the web server's SYN-ACKs "
                  "(%d; the second one's before its first own record: %d)"
                  % (tag, untracked, want, n["web2_before"]))
        else:
            low = n["to_victim"] + n["from_victim"] + n["from_web"] + n["web2_before"]
            check(low <= untracked <= low + n["to_bot"],
                  "[%s] answers_untracked %d: every record to or from the victim and from the "
                  "web server (%d), and at most %d of the bot's servers' records besides"
                  % (tag, untracked, low, n["to_bot"]))
        check(d.alive(), "[%s] the daemon is still running" % tag)
    finally:
        d.stop()


def main():
    spamflowd, ctl = sys.argv[1:3]
    for tool in ("softflowd", "tshark"):
        if shutil.which(tool) is None:
            sys.exit("FAIL: %s not found: scripts/setup.sh test installs it" % tool)
    tmp = tempfile.mkdtemp(prefix="spamflow-backscatter-")
    os.chmod(tmp, 0o755)
    try:
        pcap = os.path.join(tmp, "backscatter.pcap")
        n, refused = capture(pcap, random.Random(14))
        print("capture: %d packets; refused: %s" % (n, refused), flush=True)
        for rate in (1, 10):
            os.makedirs(os.path.join(tmp, str(rate)))
            os.chmod(os.path.join(tmp, str(rate)), 0o755)
            run(spamflowd, ctl, pcap, rate, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        print("%d check(s) failed" % len(failures))
        sys.exit(1)
    print("all checks passed")


if __name__ == "__main__":
    main()
