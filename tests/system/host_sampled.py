#!/usr/bin/python3
"""How a sampled host's estimates are made, as an admin reads them (issue 14): the live daemon
is sent the scenario exported by softflowd at 1 in 10 (scenario-ipfix-s10.pcap), and
`spamflowctl host` must say, per reason and window, how many items were seen, how many were
taken as failed attempts (and what share of them refused: the servers' resets) and how many
as sessions, with the probability each was seen; those figures must make the estimate shown,
and the estimate must be near the truth the generator wrote (scenario.truth.json).

The web page must say the same: the host pages of the sweep (reached from the offenders
table) and the fast bot, opened in Debian's chromium (tests/web/browse.mjs, as web-browser
does), must carry one estimate line per reason and window with something seen, with the
JSON's figures, and the fact that the host is sampled.

Why a reason past its threshold is not raised must be said (the reply's note, which
spamflowctl and the page print): for every host of the scenario, at 1 in 10 and, in a second
daemon, at 1 in 100 (scenario-ipfix-s100.pcap), each reason not raised whose estimate is past
a threshold has a note; an "estimated" note's figures are the reply's and its decision value
is the estimate less 2 standard errors, under the threshold; the straddle bot, raised for
smtp-fanout, is told that smtp-novelty gives way to it.

Sent all at once, every record lands in the same minute: the windows hold the whole capture.

usage: host_sampled.py SPAMFLOWD SPAMFLOWCTL CAPTURE CONF TRUTH WEB_TEST_DIR CAPTURE_S100
"""
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

from control import Daemon, datagrams, send_all
from netutil import free_port
from web_browser import expected_notes, need_tools

SWEEP = "10.0.5.99"     # lateral-sweep: 80 internal targets, SYNs alone, 70 % reset
FAST = "192.168.10.66"  # fast-bot: hundreds of MXs, delivered sessions
STRADDLE = "192.168.10.70"  # straddle-bot: raised for smtp-fanout, near smtp-novelty's 60
NOTE_EST = re.compile(r"^estimated (\d+)\+-(\d+) in the (short|long) window, over its threshold "
                      r"(\d+), but not raised: thresholds are compared with the estimate less 2 "
                      r"standard errors \(\[sampling\] confidence\), (\d+) here$")
failures = []


def check(cond, what):
    print(("ok    " if cond else "FAIL  ") + what)
    if not cond:
        failures.append(what)


def reason(j, name):
    return next(r for r in j["reasons"] if r["reason"] == name)


def p(n, k):
    return 1 - (1 - 1 / n) ** k


def truth_distinct(truth, name, kind, reason_name):
    h = next(h for h in truth["hosts"] if h["name"] == name)
    w = h["windows"][h["addresses"][0]][kind]
    return w["distinct"], w["peak"][reason_name]


def js_round(x):
    """Math.round()"""
    return math.floor(x + 0.5)


WEB_LINE = re.compile(r"^(\S+) (short|long): (\d+) seen = (.*) \u2192 (\d+)\u00b1(\d+)$")
WEB_FAILED = re.compile(r"^([\d.]+) failed attempts / p ([\d.]+) \((\d+)% refused\)$")
WEB_SESSIONS = re.compile(r"^([\d.]+) sessions of ([\d.]+) packets / p ([\d.]+)$")


def check_web_lines(name, page, j):
    """The page's estimate lines of host reply j: one per reason and window with something
    seen, each with the reply's figures (as shown: 1 or 3 decimals, whole estimates)."""
    want = {(r["reason"], span): r for r in j["reasons"] if r.get("estimate_basis")
            and (r["enabled"] or r.get("offender"))
            for span in ("short", "long") if r["estimate_basis"][span]["seen"] > 0}
    lines = page["basis"]["lines"]
    got = {(ln["reason"], ln["span"]): ln for ln in lines}
    check(not page["basis"]["hidden"] and len(lines) == len(got) and set(got) == set(want)
          and all(ln["visible"] for ln in lines),
          "%s: the page shows one estimate line per reason and window seen (%s)"
          % (name, sorted(got)))
    for key in sorted(set(got) & set(want)):
        r, text = want[key], got[key]["text"]
        b = r["estimate_basis"][key[1]]
        m = WEB_LINE.match(text)
        ok = m is not None and m.group(1) == key[0] and int(m.group(3)) == b["seen"]
        ok = ok and int(m.group(5)) == js_round(r["estimate"][key[1]]) \
            and int(m.group(6)) == js_round(r["estimate_se"][key[1]])
        if ok:
            phi = b["failed_share"]
            parts = m.group(4).split(" + ")
            ok = len(parts) == (phi > 0) + (phi < 1)
            if ok and phi > 0:
                f = WEB_FAILED.match(parts[0])
                ok = f is not None and abs(float(f.group(1)) - b["seen"] * phi) <= 0.051 \
                    and abs(float(f.group(2)) - b["p_failed"]) <= 6e-4 \
                    and abs(int(f.group(3)) - 100 * b["refused_share"]) <= 0.51
            if ok and phi < 1:
                f = WEB_SESSIONS.match(parts[-1])
                ok = f is not None and abs(float(f.group(1)) - b["seen"] * (1 - phi)) <= 0.051 \
                    and abs(float(f.group(2)) - b["session_packets"]) <= 0.051 \
                    and abs(float(f.group(3)) - b["p_session"]) <= 6e-4
        check(ok, "%s: the page's line has the reply's figures: %s" % (name, text))


def check_notes(d, truth, tag):
    """Every reason of every scenario host that is not raised although an estimate is past a
    threshold has a note saying why; "estimated" notes carry the reply's figures. Returns the
    notes by kind."""
    kinds = {}
    for h in truth["hosts"]:
        for addr in h["addresses"]:
            rc, j = d.jq("host", addr)
            if rc != 0:
                continue
            for r in j["reasons"]:
                if "estimate" not in r or not r["enabled"] or r["exempt"]:
                    continue
                past = [w for w in ("short", "long") if r["threshold"][w] > 0
                        and r["estimate_basis"][w]["seen"] > 0
                        and r["estimate"][w] >= r["threshold"][w] + 1]
                note = r.get("note")
                if past and r["state"] == "idle" and not r["crossed"]:
                    check(note is not None, "[%s] %s %s: estimate past its threshold (%s), not "
                          "raised: a note says why" % (tag, addr, r["reason"], past))
                if note is None:
                    continue
                m = NOTE_EST.match(note)
                kind = ("estimated" if m else "split" if "counted as" in note
                        else "gives way" if note.startswith("not raised") else "other")
                kinds.setdefault(kind, []).append((addr, r["reason"]))
                if m:
                    w = m.group(3)
                    e, se, thr = int(m.group(1)), int(m.group(2)), int(m.group(4))
                    ok = (abs(e - r["estimate"][w]) <= 1 and abs(se - r["estimate_se"][w]) <= 1
                          and thr == r["threshold"][w] and e >= thr
                          and abs(int(m.group(5)) - max(0, e - 2 * se)) <= 2
                          and int(m.group(5)) < thr and r["level"] < 1
                          and r["state"] == "idle")
                    check(ok, "[%s] %s %s: the note has the reply's figures: %s"
                          % (tag, addr, r["reason"], note))
    print("[%s] notes: %s" % (tag, {k: len(v) for k, v in kinds.items()}), flush=True)
    return kinds


def main():
    spamflowd, ctl, capture, conf, truth_path, web_dir, capture100 = sys.argv[1:8]
    web_dir = os.path.abspath(web_dir)
    node = need_tools(web_dir)
    truth = json.load(open(truth_path))
    tmp = tempfile.mkdtemp(prefix="spamflow-hostsampled-")
    os.chmod(tmp, 0o755)
    http = free_port()
    d = Daemon(spamflowd, ctl, tmp,
               extra_conf=open(conf).read() + f"[http]\nlisten = 127.0.0.1:{http}\n")
    # chromium starts while the capture is sent and read (its start is the slow part)
    browser = subprocess.Popen([node, os.path.join(web_dir, "browse.mjs")], cwd=web_dir,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                               env=dict(os.environ, PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD="1"))
    try:
        send_all(d.port, datagrams(capture))
        time.sleep(1.0)

        # the sweep: failed attempts only, a share of them refused
        rc, j = d.jq("host", SWEEP)
        check(rc == 0 and j["sampling"] == 10, "the sweep is a sampled host, 1:10")
        r = reason(j, "lateral-smtp")
        b = r["estimate_basis"]["short"]
        print("lateral-smtp short:", json.dumps(b), "estimate", r["estimate"]["short"],
              "+-", r["estimate_se"]["short"])
        check(b["seen"] == r["value"]["short"] and b["seen"] >= 5,
              "the basis' items seen are the window's value (%s)" % b["seen"])
        check(b["failed_share"] == 1.0, "every item seen of the sweep is a failed attempt")
        # (70 % of its targets reset, but the silent ones' SYNs are sent 3 times: resets /
        # SYNs is under 0.7, and a sample of a dozen records is noisy)
        check(0 < b["refused_share"] < 1.0,
              "the sweep's resets show some of its attempts refused (refused_share %s)"
              % b["refused_share"])
        rho = b["refused_share"]
        check(abs(b["p_failed"] - (rho * p(10, 2) + (1 - rho) * p(10, 1))) < 1e-3,
              "p_failed = rho p(2) + (1 - rho) p(1) at 1:10 (%s)" % b["p_failed"])
        est = b["seen"] / b["p_failed"]
        check(abs(r["estimate"]["short"] - est) <= 1,
              "the estimate is seen / p_failed (%d vs %.1f)" % (r["estimate"]["short"], est))
        true_n, _ = truth_distinct(truth, "lateral-sweep", "smtp_int", "lateral-smtp")
        se = r["estimate_se"]["short"]
        check(abs(r["estimate"]["short"] - true_n) <= 2.5 * se,
              "the estimate %d +- %d is within 2.5 se of the sweep's %d targets"
              % (r["estimate"]["short"], se, true_n))

        # the fast bot: sessions, most of them
        rc, j = d.jq("host", FAST)
        r = reason(j, "smtp-fanout")
        b = r["estimate_basis"]["long"]
        print("smtp-fanout long:", json.dumps(b), "estimate", r["estimate"]["long"],
              "+-", r["estimate_se"]["long"])
        check(b["session_packets"] >= 10, "sessions are taken as 10 packets or more (%s)"
              % b["session_packets"])
        check(abs(b["p_session"] - p(10, b["session_packets"])) < 2e-3,
              "p_session = p(k) at 1:10 (%s, k %s)" % (b["p_session"], b["session_packets"]))
        phi = b["failed_share"]
        check(phi < 0.5, "most of the fast bot's items are sessions (failed_share %s)" % phi)
        pf = b["p_failed"] if phi > 0 else 1
        est = b["seen"] * phi / pf + b["seen"] * (1 - phi) / b["p_session"]
        check(abs(r["estimate"]["long"] - est) <= 1,
              "the estimate is seen phi / p_failed + seen (1 - phi) / p_session (%d vs %.1f)"
              % (r["estimate"]["long"], est))
        true_n, _ = truth_distinct(truth, "fast-bot", "smtp_ext", "smtp-fanout")
        se = r["estimate_se"]["long"]
        check(abs(r["estimate"]["long"] - true_n) <= max(2.5 * se, 0.15 * true_n),
              "the estimate %d +- %d is near the fast bot's %d MXs"
              % (r["estimate"]["long"], se, true_n))

        # the text: one line per window, with the same figures
        rc, out, err = d.run("host", SWEEP)
        print(out)
        m = re.search(r"estimate lateral-smtp, short: (\d+) seen = ([\d.]+) failed attempts / "
                      r"p ([\d.]+) \((\d+)% refused\) -> (\d+)\+-(\d+)", out)
        check(m is not None, "spamflowctl host explains the sweep's short estimate")
        if m:
            jr = reason(d.jq("host", SWEEP)[1], "lateral-smtp")
            jb = jr["estimate_basis"]["short"]
            check(int(m.group(1)) == jb["seen"] and float(m.group(2)) == jb["seen"]
                  and abs(float(m.group(3)) - jb["p_failed"]) < 1e-3
                  and int(m.group(4)) == round(100 * jb["refused_share"])
                  and int(m.group(5)) == jr["estimate"]["short"]
                  and int(m.group(6)) == jr["estimate_se"]["short"],
                  "the line's figures are the JSON's")
        rc, out, err = d.run("host", FAST)
        check(re.search(r"estimate smtp-fanout, long: \d+ seen = .*sessions of [\d.]+ packets "
                        r"/ p [\d.]+ -> \d+\+-\d+", out) is not None,
              "spamflowctl host explains the fast bot's long estimate")

        # why a reason past a threshold is not raised
        check_notes(d, truth, "1:10")
        rc, j = d.jq("host", STRADDLE)
        nov, fan = reason(j, "smtp-novelty"), reason(j, "smtp-fanout")
        check(fan["state"] == "active" and nov["state"] == "idle" and not nov["crossed"]
              and nov["estimate"]["short"] >= nov["threshold"]["short"]
              and nov.get("note", "").startswith("not raised: the host is raised for "
                                                 "smtp-fanout"),
              "the straddle bot is told that smtp-novelty (est. %s/%s) gives way to its "
              "smtp-fanout: %s" % (nov["estimate"]["short"], nov["threshold"]["short"],
                                   nov.get("note")))
        rc, out, err = d.run("host", STRADDLE)
        check("note: smtp-novelty: not raised: the host is raised for smtp-fanout" in out,
              "spamflowctl host prints it")

        # the web page: the sweep's, reached from the offenders table, and the fast bot's
        ready = json.loads(browser.stdout.readline() or "{}")
        check(ready.get("ready") is True, "chromium started")
        res = {"error": "chromium did not start"}
        if ready.get("ready") is True:
            browser.stdin.write(json.dumps({"base": f"http://127.0.0.1:{http}", "host": SWEEP,
                                            "out": tmp, "also": [FAST]}) + "\n")
            browser.stdin.flush()
            res = json.loads(browser.stdout.readline() or '{"error": "no reply"}')
            browser.wait(timeout=30)
            check("error" not in res, "the browser's run: %s" % res.get("error", "no error"))
        if "error" not in res:
            for name, addr, page in (("sweep", SWEEP, res), ("fast bot", FAST, res["also"][FAST])):
                print("%s on the page:" % name)
                for ln in page["basis"]["lines"]:
                    print("   ", ln["text"])
                check(any(f.startswith("sampled 1 in 10") for f in page["facts"]),
                      "%s: the page says the host is sampled 1 in 10 (%s)" % (name, page["facts"]))
                hj = page["hostReply"]  # what the page rendered: the daemon's reply
                check(hj is not None and hj["host"] == addr and
                      hj["reasons"] == d.jq("host", addr)[1]["reasons"],
                      "%s: the page was given the daemon's host reply" % name)
                check_web_lines(name, page, hj)
                check(page["basis"]["notes"] == expected_notes(hj),
                      "%s: the notes under the reasons are the reply's: %s"
                      % (name, page["basis"]["notes"]))
            # (this daemon runs without a history store: --history=)
            check(res["chart"]["note"].startswith("This daemon keeps no history"),
                  "the chart says the daemon keeps no history (%r)" % res["chart"]["note"])
            check(not res["console"] and not res["csp"] and not res["pageErrors"]
                  and not res["failed"],
                  "no console error, CSP violation, page error or failed request (%s)"
                  % {k: res[k] for k in ("console", "csp", "pageErrors", "failed")})
        check(d.alive(), "the daemon is still running")

        # 1 in 100: most estimates are far from their decision values
        os.makedirs(os.path.join(tmp, "s100"))
        os.chmod(os.path.join(tmp, "s100"), 0o755)
        d100 = Daemon(spamflowd, ctl, os.path.join(tmp, "s100"), extra_conf=open(conf).read())
        try:
            send_all(d100.port, datagrams(capture100))
            time.sleep(1.0)
            kinds = check_notes(d100, truth, "1:100")
            check(len(kinds.get("estimated", [])) >= 5,
                  "[1:100] hosts whose estimate is past a threshold but not its decision value "
                  "are told so (%d)" % len(kinds.get("estimated", [])))
            check(d100.alive(), "the 1:100 daemon is still running")
        finally:
            d100.stop()
    finally:
        if browser.poll() is None:
            browser.kill()
        browser.wait()
        d.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        print("%d check(s) failed" % len(failures))
        sys.exit(1)
    print("all checks passed")


if __name__ == "__main__":
    main()
