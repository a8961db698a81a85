#!/usr/bin/python3
"""Host groups and suppressions against the real daemon (issue 14, "Policy the admin can
shape"). spamflowd runs live on loopback with a control socket and a state file in a temp
dir; the export datagrams of the scenario capture (softflowd IPFIX) are sent to it at once,
so every host's flows land in one window.

Groups: the bots' /29 takes smtp-fanout 1000/2000 (the fast bot's 400 destinations, far over
the global 50, raise nothing) and is exempt from submission-fanout and smtp-novelty (the submission bot's 40
raise nothing); the blocked bot's /32 inside it takes smtp-blocked 150/300 and so not the
/29's settings (raised at exactly 150, its event naming the group); the IPv6 bot, in no
group, is raised at the global 50 with group "". `spamflowctl host` says all this.

Suppressions: the brute-forcer (all reasons) and the lateral sweep (lateral-smtp) are
suppressed over the real socket before the capture: both raise nothing, both are still
tracked and shown. The daemon is restarted: the suppressions are back (same time, uid,
note); a reload with changed groups keeps them; unsuppress of the sweep is logged with the
client's uid, and the capture sent again raises the sweep and still not the brute-forcer.

usage: policy.py SPAMFLOWD SPAMFLOWCTL CAPTURE SCENARIO_CONF
"""
import atexit
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import time

import testdir
from netutil import free_udp_port

failures = []
started = []

FAST, BLOCKED, SUBMIT, STRADDLE = ("192.168.10.66", "192.168.10.68", "192.168.10.69",
                                   "192.168.10.70")
SWEEP, BRUTE, V6BOT = "10.0.5.99", "198.51.100.66", "fd00:5a:10::66"


@atexit.register
def _kill():
    for p in started:
        if p.poll() is None:
            p.kill()


def check(cond, what):
    print(("ok    " if cond else "FAIL  ") + what, flush=True)
    if not cond:
        failures.append(what)


def datagrams(path):
    data = open(path, "rb").read()
    endian = "<" if data[:4] == b"\xd4\xc3\xb2\xa1" else ">"
    linktype = struct.unpack(endian + "I", data[20:24])[0]
    off, out = 24, []
    while off + 16 <= len(data):
        _, _, incl, _ = struct.unpack(endian + "IIII", data[off:off + 16])
        pkt = data[off + 16:off + 16 + incl]
        off += 16 + incl
        ip = pkt[14:] if linktype == 1 else pkt
        udp = ip[(ip[0] & 15) * 4:]
        out.append(udp[8:struct.unpack(">H", udp[4:6])[0]])
    return out


def groups_conf(lab_fanout):
    return ("[group bots-lab]\nprefixes = 192.168.10.64/29\n"
            f"smtp-fanout = {lab_fanout}\nexempt = submission-fanout, smtp-novelty\n"
            "[group blocked]\nprefixes = 192.168.10.68/32\nsmtp-blocked = 150/300\n")


class Daemon:
    def __init__(self, exe, ctl, tmp, port, base_conf):
        self.exe, self.ctl, self.tmp, self.port = exe, ctl, tmp, port
        self.sock = os.path.join(tmp, "run", "control.sock")
        self.conf = os.path.join(tmp, "spamflow.conf")
        self.alerts = os.path.join(tmp, "alerts.jsonl")
        self.state = os.path.join(tmp, "lib", "state")
        self.base = base_conf
        self.write_conf(groups_conf("1000/2000"))
        self.logf = open(os.path.join(tmp, "daemon.log"), "a+")

    def write_conf(self, groups):
        with open(self.conf, "w") as f:
            f.write(self.base + f"\n[http]\nlisten =\n[control]\nsocket = {self.sock}\n"
                    f"[state]\nfile = {self.state}\nsnapshot_interval = 3600\n" + groups)

    def start(self):
        self.log_start = self.logf.seek(0, os.SEEK_END)
        self.p = subprocess.Popen([self.exe, "--history=", "-c", self.conf, "-l", f"127.0.0.1:{self.port}",
                                   "--alerts", self.alerts, "--stats-interval", "0"],
                                  stdout=subprocess.DEVNULL, stderr=self.logf)
        started.append(self.p)
        deadline = time.time() + 30
        while time.time() < deadline:
            if "listening on" in self.log() and "control socket" in self.log():
                return
            if self.p.poll() is not None:
                break
            time.sleep(0.05)
        sys.exit("spamflowd did not start:\n" + self.log())

    def log(self):
        self.logf.flush()
        with open(self.logf.name) as f:
            f.seek(self.log_start)
            return f.read()

    def run(self, *args):
        p = subprocess.run([self.ctl, "-s", self.sock] + list(args), capture_output=True,
                           text=True, timeout=30, env=dict(os.environ, COLUMNS="250"))
        return p.returncode, p.stdout, p.stderr

    def jq(self, *args):
        rc, out, err = self.run("--json", *args)
        return rc, json.loads(out) if out.strip() else {"ok": False, "error": err}

    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        return self.p.wait(timeout=30)

    def send(self, dgrams):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for i, d in enumerate(dgrams):
            s.sendto(d, ("127.0.0.1", self.port))
            if i % 200 == 199:
                time.sleep(0.01)
        s.close()

    def wait_received(self, n, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            _, j = self.jq("stats")
            if j.get("listener", {}).get("datagrams") == n:
                return True
            time.sleep(0.1)
        return False

    def events(self):
        if not os.path.exists(self.alerts):
            return []
        return [json.loads(line) for line in open(self.alerts) if line.strip()]


def raised(events, host, reason=None):
    return [e for e in events if e["host"] == host and e["event"] == "raised" and
            (reason is None or e["reason"] == reason)]


def reasons_of(host_reply):
    return {r["reason"]: r for r in host_reply.get("reasons", [])}


def main():
    exe, ctl, capture, scenario_conf = sys.argv[1:5]
    tmp = testdir.mkdtemp("spamflow-policy-")
    os.chmod(tmp, 0o755)
    dgrams = datagrams(capture)
    uid = os.getuid()
    d = Daemon(exe, ctl, tmp, free_udp_port(), open(scenario_conf).read())
    d.start()

    # ---- suppress over the real socket, before any flow ----
    rc, out, err = d.run("suppress", BRUTE, "until=1h", "note=pen test, ticket 7")
    check(rc == 0 and f"suppressed {BRUTE} (all reasons)" in out,
          f"suppress {BRUTE} (all reasons): {out.strip() or err.strip()}")
    rc, j = d.jq("suppress", SWEEP, "reason=lateral-smtp", "until=2h", "note=worm drill")
    sup = j.get("suppression", {})
    check(rc == 0 and sup.get("reason") == "lateral-smtp" and sup.get("uid") == uid and
          sup.get("note") == "worm drill" and j.get("replaced") is False,
          f"suppress {SWEEP} reason=lateral-smtp --json: reason, uid {uid}, note ({sup})")
    now_ms = time.time() * 1000
    check(abs(sup.get("until_ms", 0) - (now_ms + 2 * 3600 * 1000)) < 5000,
          "until=2h is two hours from now")
    rc, out, err = d.run("suppress", SWEEP, "until=2h")
    check(rc == 2 and "missing note" in err, "a suppression needs a note (exit 2)")
    rc, out, err = d.run("suppress", SWEEP, "until=2000-01-01T00:00:00Z", "note=x")
    check(rc == 1 and "in the past" in err, "a time in the past is refused by the daemon")
    log = d.log()
    check(re.search(rf"suppression set: {re.escape(BRUTE)} \(all reasons\) until \S+ by "
                    rf"uid={uid} pid=\d+: pen test, ticket 7", log) is not None,
          "the suppression is logged with the client's uid and the note")

    # ---- the capture ----
    d.send(dgrams)
    check(d.wait_received(len(dgrams)), f"all {len(dgrams)} datagrams received")
    time.sleep(1.0)
    ev = d.events()

    # groups: raised thresholds, exempt, longest prefix
    check(raised(ev, FAST) == [] and raised(ev, STRADDLE) == [],
          "bots-lab: the fast and straddle bots raise nothing under smtp-fanout 1000/2000")
    check(raised(ev, SUBMIT) == [], "bots-lab: the submission bot is exempt")
    rb = raised(ev, BLOCKED, "smtp-blocked")
    check(len(rb) == 1, f"the blocked bot's /32 group: smtp-blocked raised once ({len(rb)})")
    if rb:
        w = rb[0]["windows"][0]
        check(w["threshold"] == 150 and w["value"] == 150 and rb[0]["group"] == "blocked",
              f"... at its group's 150, the event naming the group (value {w['value']}, "
              f"threshold {w['threshold']}, group {rb[0]['group']!r})")
    r6 = raised(ev, V6BOT, "smtp-fanout")
    check(len(r6) == 1 and r6[0]["windows"][0]["threshold"] == 50 and r6[0]["group"] == "",
          f"no group: the IPv6 bot raised at the global 50, group \"\" ({r6[:1]})")

    # suppressions: nothing raised, still tracked and shown
    check(raised(ev, BRUTE) == [], "the suppressed brute-forcer raised nothing")
    check(raised(ev, SWEEP) == [], "the lateral sweep, suppressed for lateral-smtp, raised "
                                   "nothing")
    rc, j = d.jq("host", BRUTE)
    r = reasons_of(j).get("auth-bruteforce", {})
    check(rc == 0 and r.get("value", {}).get("short", 0) >= 100 and r.get("state") == "idle"
          and isinstance(r.get("suppressed_until_ms"), int),
          f"host {BRUTE} --json: tracked over its threshold, idle, suppressed ({r.get('value')})")
    rc, out, err = d.run("host", BRUTE)
    check(rc == 0 and re.search(r"suppressed \(all reasons\) until [-0-9: ]+\S+ \(in \d+m\) "
                                rf"by uid {uid}: pen test, ticket 7", out) is not None
          and "idle (suppressed)" in out,
          "host (text): 'suppressed ... until ... by uid N: note' and the reason idle "
          "(suppressed)")
    print(out, end="")

    rc, out, err = d.run("host", FAST)
    check(rc == 0 and "group bots-lab (192.168.10.64/29): smtp-fanout thresholds 1000/2000, "
          "exempt submission-fanout, smtp-novelty" in out,
          "host (text) of the fast bot names its group, thresholds and exempt reason")
    print(out, end="")
    rc, j = d.jq("host", FAST)
    g = j.get("group") or {}
    r = reasons_of(j).get("smtp-fanout", {})
    check(g.get("name") == "bots-lab" and g.get("prefix") == "192.168.10.64/29" and
          g.get("thresholds", {}).get("smtp-fanout") == {"short": 1000, "long": 2000} and
          g.get("exempt") == ["submission-fanout", "smtp-novelty"],
          f"host --json: the group object ({g})")
    check(r.get("threshold") == {"short": 1000, "long": 2000} and
          r.get("value", {}).get("short", 0) >= 400 and r.get("state") == "idle",
          f"host --json: smtp-fanout at 400 against the group's 1000, idle ({r.get('value')})")
    rc, j = d.jq("host", SUBMIT)
    r = reasons_of(j).get("submission-fanout", {})
    check(r.get("exempt") is True and r.get("value", {}).get("short", 0) >= 20 and
          r.get("state") == "idle",
          f"host --json: the submission bot over 20 and exempt ({r.get('value')})")
    rc, j = d.jq("host", BLOCKED)
    check((j.get("group") or {}).get("name") == "blocked" and
          "smtp-fanout" not in (j.get("group") or {}).get("thresholds", {}),
          "the /32 group wins for its host: none of the /29's settings")

    # ---- restart: the suppressions come back ----
    before = d.jq("suppressions")[1].get("suppressions", [])
    check(d.stop() == 0, "SIGTERM: exit 0")
    d.start()
    check("restored 2 suppressions" in d.log(), "restart: 'restored 2 suppressions' logged")
    rc, j = d.jq("suppressions")
    after = j.get("suppressions", [])
    strip = [{k: s[k] for k in ("host", "reason", "until_ms", "set_ms", "uid", "note")}
             for s in after]
    check(len(after) == 2 and strip == [{k: s[k] for k in ("host", "reason", "until_ms",
                                                         "set_ms", "uid", "note")}
                                        for s in before],
          f"restart: both suppressions back as they were ({strip})")
    an = d.jq("stats")[1].get("analyzer", {})
    check(an.get("suppressions") == 2 and an.get("suppressions_set") == 0,
          f"stats after the restart: 2 suppressions held, none set since the start ({an.get('suppressions')}, {an.get('suppressions_set')})")
    rc, out, err = d.run("suppressions")
    check(rc == 0 and BRUTE in out and "worm drill" in out and "lateral-smtp" in out,
          "suppressions (text) lists them")
    print(out, end="")

    # ---- reload: new groups, the suppressions stay ----
    d.write_conf(groups_conf("100/200"))
    rc, j = d.jq("reload")
    check(rc == 0 and "group bots-lab.smtp-fanout" in j.get("applied", []),
          f"reload applies the changed group ({j.get('applied')})")
    rc, j = d.jq("host", FAST)
    check(((j.get("group") or {}).get("thresholds") or {}).get("smtp-fanout") ==
          {"short": 100, "long": 200}, "after the reload the host has the new thresholds")
    check(len(d.jq("suppressions")[1].get("suppressions", [])) == 2,
          "the reload kept the suppressions")
    d.write_conf(groups_conf("100/200").split("[group blocked]")[0])
    rc, j = d.jq("reload")
    check(rc == 0 and "group blocked.prefixes" in j.get("applied", []) and
          d.jq("host", BLOCKED)[1].get("group", {}).get("name") == "bots-lab",
          f"a group removed: reported as applied, its host falls back to the /29 "
          f"({j.get('applied')})")
    d.write_conf(groups_conf("100/200") + "[group dup]\nprefixes = 192.168.10.64/29\n")
    rc, out, err = d.run("reload")
    check(rc == 1 and re.search(r"spamflow\.conf:\d+: \[group dup\] prefixes: prefix "
                                r"192\.168\.10\.64/29 is also in \[group bots-lab\]", err),
          f"a prefix in two groups: reload refused with file:line ({err.strip()})")

    # ---- unsuppress: logged with the uid; the sweep raises again, the brute-forcer not ----
    rc, j = d.jq("unsuppress", SWEEP)
    check(rc == 0 and j.get("removed") == 1 and j.get("remaining") == [],
          f"unsuppress {SWEEP}: 1 removed, none left ({j.get('removed')})")
    check(re.search(rf"suppression removed: {re.escape(SWEEP)} \(all reasons\): 1 removed by "
                    rf"uid={uid} pid=\d+", d.log()) is not None and
          re.search(rf"control: unsuppress {re.escape(SWEEP)} by uid={uid} pid=\d+: done",
                    d.log()) is not None,
          f"the unsuppress is logged with the client's uid ({uid})")
    n0 = len(d.events())
    d.send(dgrams)
    check(d.wait_received(len(dgrams)), "the capture again: received")
    time.sleep(1.0)
    ev = d.events()[n0:]
    check(len(raised(ev, SWEEP, "lateral-smtp")) == 1,
          "unsuppressed, the sweep raises lateral-smtp")
    check(raised(ev, BRUTE) == [], "the brute-forcer, still suppressed, raises nothing")
    check(d.stop() == 0, "second run exits 0")

    print(f"{len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
