#!/usr/bin/python3
"""The web page in a real browser (issue 16): Debian's chromium, headless, driven by
playwright-core from npm (tests/web/browse.mjs; `scripts/setup.sh test` installs chromium,
nodejs and, with `npm ci` in tests/web, playwright-core; no browser is downloaded).

The scenario (fixtures/scenario-ipfix.pcap, fixtures/scenario.conf) is sent over UDP to a
live spamflowd with its timing compressed 600 times (150 minutes in 15 s: one analyzer
slice a second stands for the scenario's minute ... ten of them, so the short window is
one slice and the long one twelve), with the history store and the evidence files on.
Meanwhile chromium starts. Then the browser opens the offenders page (/) and the test
checks:
  - the table holds exactly the offenders `spamflowctl -j offenders` lists, and every host
    the scenario raised (`spamflowctl -j history`);
  - one host's page, reached through its link: the chart is drawn (an SVG, not empty) from
    the history, and the values it plots for the range chosen (1 h) are those of
    `spamflowctl -j host ADDR since=1h` (its "timeline");
  - the evidence link downloads the host's newest evidence file, byte for byte;
  - no console error or warning, no Content-Security-Policy violation, no page error, no
    failed request;
and saves the screenshots web-offenders.png and web-host.png into OUT_DIR (the build
directory), printing their paths.

A missing chromium, node or playwright-core fails the test naming what to install.
SPAMFLOW_WEB_SAMPLE=FILE (development only, never set by meson): no history store,
the browser is answered /api/host/* from FILE (a hand-made reply following the timeline
contract, tests/web/sample-host.json) and the chart is compared with FILE.

With MMDB_DIR (the test databases tests/tools/make_mmdb.pl writes into the build
directory, which cover the scenario's 198.18/15 destinations) [enrich] is on and the host
page's top destinations must show countries and ASNs.

usage: web_browser.py SPAMFLOWD SPAMFLOWCTL FIXTURES_DIR WEB_TEST_DIR OUT_DIR [MMDB_DIR]
"""
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import live_vs_replay as lvr  # noqa: E402 (the capture reader)
from netutil import free_port, free_udp_port  # noqa: E402

SCALE = 600          # capture seconds per wall second
SINCE = "1h"         # the range the test picks on the host page
T0 = time.monotonic()


def log(msg):
    print(f"[{time.monotonic() - T0:5.1f} s] {msg}", flush=True)


def fail(msg):
    sys.exit(f"FAIL: {msg}")


def expected_notes(j):
    """The host page's notes under its reasons table for host reply j: what spamflowctl
    host prints after its table (smtp-novelty's columns; a reason's "note")."""
    out = []
    for r in j["reasons"]:
        if not r["enabled"] and not r.get("offender"):
            continue
        if r.get("window_s") and r.get("value"):
            out.append("%s: Short is the destinations not contacted within the horizon, over "
                       "the last %d h; Long the port-25 long window's distinct (context)"
                       % (r["reason"], int(r["window_s"] / 3600 + 0.5)))
        if r.get("note"):
            out.append("%s: %s" % (r["reason"], r["note"]))
    return out


def need_tools(web_dir):
    chromium = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    if not os.access(chromium, os.X_OK):
        fail(f"{chromium} not found: scripts/setup.sh test installs it (Debian package chromium)")
    node = shutil.which("node")
    if node is None:
        fail("node not found: scripts/setup.sh test installs it (Debian package nodejs)")
    if not os.path.exists(os.path.join(web_dir, "node_modules", "playwright-core", "package.json")):
        fail(f"the npm package playwright-core is not in {web_dir}/node_modules: "
             "scripts/setup.sh test installs it (npm ci in tests/web; Debian package npm)")
    return node


class Daemon:
    def __init__(self, spamflowd, ctl, fixtures, tmp, sample, mmdb):
        self.ctl = ctl
        self.sock = os.path.join(tmp, "control.sock")
        self.evidence = os.path.join(tmp, "evidence")
        self.port = free_udp_port()
        self.http = free_port(socket.SOCK_STREAM)
        base = open(os.path.join(fixtures, "scenario.conf")).read()
        timing = "slice = 1\nshort_window = 1\nlong_window = 12\n"
        base = base.replace("[analyzer]\n", "[analyzer]\n" + timing, 1)
        conf = self.conf = os.path.join(tmp, "spamflow.conf")
        with open(conf, "w") as f:
            # hold: every raised host stays an offender while the browser looks
            f.write(base + "\n[alerts]\nupdate_interval = 1\nhold = 600\n"
                    f"[control]\nsocket = {self.sock}\n"
                    f"[http]\nlisten = 127.0.0.1:{self.http}\n"
                    f"[evidence]\ndir = {self.evidence}\n")
            if mmdb:
                f.write(f"[enrich]\ncountry_db = {mmdb}/geolite-country.mmdb\n"
                        f"asn_db = {mmdb}/geolite-asn.mmdb\n")
        self.log = open(os.path.join(tmp, "daemon.log"), "w+")
        # the history store in the test's directory (none with the sample)
        history = "" if sample else os.path.join(tmp, "history")
        self.p = subprocess.Popen([spamflowd, "--state=", f"--history={history}", "-c", conf, "-l",
                                   f"127.0.0.1:{self.port}", "--stats-interval", "0"],
                                  stdout=subprocess.DEVNULL, stderr=self.log)
        for _ in range(400):
            if os.path.exists(self.sock) and "http: serving" in open(self.log.name).read():
                return
            if self.p.poll() is not None:
                break
            time.sleep(0.05)
        fail(f"spamflowd did not start: {open(self.log.name).read()}")

    def jq(self, *args):
        p = subprocess.run([self.ctl, "-s", self.sock, "--json", *args], capture_output=True,
                           text=True, timeout=30)
        if not p.stdout.strip():
            fail(f"spamflowctl {' '.join(args)}: rc {p.returncode}: {p.stderr}")
        r = json.loads(p.stdout)
        if not r.get("ok"):
            fail(f"spamflowctl {' '.join(args)}: {r.get('error')}")
        return r

    def raw(self, path):
        """(status, headers with lower-case names, body) of a GET"""
        c = http.client.HTTPConnection("127.0.0.1", self.http, timeout=10)
        c.request("GET", path)
        r = c.getresponse()
        body = r.read()
        c.close()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, body

    def get(self, path):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http}{path}", timeout=10) as r:
            return json.loads(r.read())

    def stop(self):
        """The exit status (a sanitizer's report makes it non-zero)."""
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        return self.p.returncode


def send_scenario(fixtures, port):
    """The export datagrams with their captured gaps / SCALE (as live_vs_replay.py)."""
    _, _, linktype, pkts = lvr.read_pcap(os.path.join(fixtures, "scenario-ipfix.pcap"))
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    t0, start = pkts[0][0], time.monotonic()
    for ts, pkt in pkts:
        due = start + (ts - t0) / 1e6 / SCALE
        while (left := due - time.monotonic()) > 0:
            time.sleep(min(0.01, left))
        s.sendto(lvr.udp_payload(linktype, pkt), ("127.0.0.1", port))
    return len(pkts)


def plotted(timeline, since_ms, until_ms):
    """{(reason, window): [[t, value], ...]} as the page must plot the timeline: the value
    the heuristic compared (the estimate when there is one), slices in [since, until]. The
    reading "now" (a "live" point, the last) is left out: a later request has a later one."""
    out = {}
    for p in timeline.get("points", []):
        if not since_ms <= p["t"] <= until_ms or p.get("live"):
            continue
        for r, v in (p.get("reasons") or {}).items():
            for w in ("short", "long"):
                est = v.get(f"{w}_estimate")
                out.setdefault((r, w), []).append([p["t"], est if est is not None else v[w]])
    return out


def main():
    spamflowd, ctl, fixtures, web_dir, out_dir = sys.argv[1:6]
    web_dir = os.path.abspath(web_dir)
    mmdb = sys.argv[6] if len(sys.argv) > 6 else None
    if mmdb and not os.path.exists(os.path.join(mmdb, "geolite-asn.mmdb")):
        fail(f"{mmdb}/geolite-asn.mmdb is missing: ninja builds it (tests/tools/make_mmdb.pl)")
    sample = os.environ.get("SPAMFLOW_WEB_SAMPLE")
    node = need_tools(web_dir)
    os.makedirs(out_dir, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="spamflow-web-")
    d = Daemon(spamflowd, ctl, fixtures, tmp, sample, mmdb)
    browser = None
    try:
        # chromium starts while the scenario plays (its start is the slow part under load)
        env = dict(os.environ, PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD="1")
        browser = subprocess.Popen([node, os.path.join(web_dir, "browse.mjs")], cwd=web_dir,
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                   env=env)
        ready = {}
        t = threading.Thread(target=lambda: ready.update(json.loads(browser.stdout.readline() or "{}")))
        t.start()
        log(f"spamflowd on udp {d.port}, http {d.http}; sending the scenario at 1/{SCALE} time")
        n = send_scenario(fixtures, d.port)
        log(f"sent {n} datagrams")
        t.join(timeout=40)
        if not ready.get("ready"):
            fail("chromium did not start (see the lines above)")
        log("chromium ready")
        time.sleep(1.2)  # the last slice ends, its readings reach the history

        offenders = d.jq("offenders")["offenders"]
        if not offenders:
            fail("the scenario raised no offender: nothing to show")
        hosts = [o["host"] for o in offenders]
        # the unlisted MTA sends until the end (its top destinations are still held) and
        # carries the "looks like a mail server" hint; else any offender with evidence
        host = None
        for h in sorted(hosts, key=lambda h: h != "10.0.1.27"):
            if d.get(f"/api/evidence?host={h}")["files"]:
                host = h
                break
        if host is None:
            fail("no offender has an evidence file")
        job = {"base": f"http://127.0.0.1:{d.http}", "host": host, "since": SINCE,
               "out": os.path.abspath(out_dir)}
        browser.stdin.write(json.dumps(job) + "\n")
        browser.stdin.flush()
        line = browser.stdout.readline()
        browser.wait(timeout=60)
        if not line:
            fail("the browser driver gave no result")
        res = json.loads(line)
        log(f"the browser is done: {host}")
        for p in res.get("shots", []):
            print(f"screenshot: {p}")
        if res.get("error"):
            fail(f"in the browser: {res['error']}")

        bad = []

        def check(ok, what):
            print(f"  {'ok ' if ok else 'BAD'} {what}")
            if not ok:
                bad.append(what)

        # the offenders table against spamflowctl
        want = {(o["host"], o["reason"]) for o in d.jq("offenders")["offenders"]}
        got = {(r[0], r[1]) for r in res["rows"]}
        check(got == want, f"the table holds the {len(want)} offenders of spamflowctl -j "
              f"offenders (page {len(got)}; missing {sorted(want - got)}, extra {sorted(got - want)})")
        raised = {e["host"] for e in d.jq("history", "limit=1000")["events"]
                  if e["event"] == "raised"}
        check(raised <= {h for h, _ in got},
              f"every host the scenario raised ({len(raised)}) is in the table "
              f"(missing {sorted(raised - {h for h, _ in got})})")

        # the host page: its chart from the history
        ch = res["chart"]
        check(res["url"].split("#")[0].endswith(f"/host/{host}"), f"the link leads to /host/{host}")
        want_notes = expected_notes(res["hostReply"] or {"reasons": []})
        check(res["basis"]["notes"] == want_notes,
              f"the notes under the reasons are the host reply's: {res['basis']['notes']}")
        # an unsampled export: no estimate, so no line saying how one was made
        check(res["basis"]["hidden"] and not res["basis"]["lines"]
              and not any("sampled" in f for f in res["facts"]),
              f"no sampling fact or estimate line for an unsampled host ({res['facts']})")
        check("keeps no history" not in ch["note"] if not sample else True,
              f"with a history store the chart does not say there is none ({ch['note']!r})")
        check(ch["state"] == "drawn" and ch["points"] > 0 and ch["width"] > 100 and ch["height"] > 100,
              f"the chart is drawn: {ch['points']} slices, {ch['width']:.0f}x{ch['height']:.0f} px "
              f"({ch['note'] or 'no note'})")
        check(any(len(s["values"]) > 1 and s["d"] > 20 for s in ch["series"]),
              f"its series have lines ({[(s['reason'], s['window'], len(s['values'])) for s in ch['series']]})")
        # the panels' titles say what the values drawn count
        drawn = {s["reason"] for s in ch["series"]}
        t_short, t_long = (ch["titles"] + ["", ""])[:2]
        check(t_short.startswith("short window: ") and t_long.startswith("long window: ")
              and ("new ones for smtp-novelty" in t_short) == ("smtp-novelty" in drawn)
              and "smtp-novelty" not in t_long
              and all(("attempts for auth-bruteforce" in t) == ("auth-bruteforce" in drawn)
                      for t in (t_short, t_long))
              and all(("distinct destinations" in t) == bool(drawn - {"auth-bruteforce"})
                      for t in (t_long,)),
              f"the panel titles match the reasons drawn {sorted(drawn)}: {ch['titles']}")
        # a value with no neighbour within 1.5 slices draws no line: it has a dot, and only it
        gap = 1.5 * ch["slice_ms"]
        lone = sorted([s["reason"], s["window"], v[i][0]] for s in ch["series"]
                      for v in [s["values"]] for i in range(len(v))
                      if (i == 0 or v[i][0] - v[i - 1][0] > gap)
                      and (i == len(v) - 1 or v[i + 1][0] - v[i][0] > gap))
        check(ch["slice_ms"] > 0 and sorted(ch["dots"]) == lone,
              f"a dot for each lone value and no other ({len(ch['dots'])} dots, "
              f"{len(lone)} lone values)")
        if not sample:
            # the same reply cut to one stored slice: every value of it is a dot, no line
            one = res.get("lone") or {}
            want = sorted([r, w, p["t"]] for p in one.get("points", [])
                          for r, x in (p.get("reasons") or {}).items()
                          for w in ("short", "long")
                          if (x.get(f"{w}_estimate") if x.get(f"{w}_estimate") is not None
                              else x.get(w)) is not None)
            check(want and sorted(one.get("dots", [])) == want and one.get("lines") == 0,
                  f"one stored slice: a dot for each of its {len(want)} values, no line "
                  f"({len(one.get('dots', []))} dots, {one.get('lines')} lines)")
        if sample:
            timeline = json.load(open(sample))["timeline"]
            source = f"the sample {sample}"
        else:
            timeline = d.jq("host", host, f"since={SINCE}").get("timeline") or {}
            source = f"spamflowctl -j host {host} since={SINCE}"
        # the page's "now" slice is stored by the time spamflowctl asks (1-s slices), and so
        # may be the slice before it (the history store writes behind a queue): compare the
        # slices the page had stored, up to the last of them
        got_series = {(s["reason"], s["window"]): [v for v in s["values"] if v[0] != ch["live"]]
                      for s in ch["series"]}
        got_series = {k: v for k, v in got_series.items() if v}
        stored = [v[0] for vs in got_series.values() for v in vs]
        until = max(stored) if stored else (ch["live"] - 1 if ch.get("live") else ch["until"])
        want_series = plotted(timeline, ch["since"], until)
        check(got_series == want_series and want_series,
              f"the values plotted are those of {source} "
              f"({sum(len(v) for v in want_series.values())} values in {len(want_series)} series; "
              f"page {sum(len(v) for v in got_series.values())} in {len(got_series)})")
        if got_series != want_series:
            for k in sorted(set(got_series) | set(want_series)):
                if got_series.get(k) != want_series.get(k):
                    print(f"      {k}: page {got_series.get(k)} != {want_series.get(k)}")

        top = res.get("top") or []
        check(len(top) > 0, f"the top destinations are listed ({len(top)} rows)")
        if mmdb:
            check(any(r[2] != "-" and r[3].startswith("AS") for r in top),
                  f"with their country and ASN (first: {top[0] if top else None})")

        # the evidence link: the host's newest file, byte for byte
        part = host.replace(":", "_")
        files = sorted(f for f in os.listdir(d.evidence) if f"-{part}." in f or f"-{part}-" in f)
        dl = res.get("download") or {}
        check(bool(files) and dl.get("name") == files[-1] and not dl.get("failure"),
              f"the evidence link downloads the newest file {files[-1] if files else None} "
              f"(got {dl.get('name')}, failure {dl.get('failure')})")
        if dl.get("path"):
            same = open(dl["path"], "rb").read() == open(os.path.join(d.evidence, dl["name"]), "rb").read()
            check(same, f"the download is the file on disk ({os.path.getsize(dl['path'])} bytes)")

        # the headers, and what /evidence/ refuses (over plain HTTP, no browser)
        csp = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
               "connect-src 'self'; frame-ancestors 'none'")
        st, hd, _ = d.raw("/")
        check(st == 200 and hd.get("content-security-policy") == csp
              and hd.get("content-type", "").startswith("text/html"), f"/: 200, the page's CSP ({hd.get('content-security-policy')})")
        st, hd, _ = d.raw("/static/host.js")
        check(st == 200 and "max-age" in hd.get("cache-control", ""), f"/static/host.js: cacheable ({hd.get('cache-control')})")
        st, hd, _ = d.raw(f"/api/host/{host}")
        check(hd.get("cache-control") == "no-store", "the API: no-store")
        if files:
            st, hd, body = d.raw(f"/evidence/{files[-1]}")
            check(st == 200 and hd.get("content-type") == "application/ipfix"
                  and hd.get("content-disposition") == f'attachment; filename="{files[-1]}"',
                  f"/evidence/NAME: application/ipfix, attachment ({hd.get('content-disposition')})")
            # a link with an evidence file's name, to a file outside the directory
            link = "20260101T000000.000Z-smtp-fanout-10.9.9.9.ipfix"
            os.symlink(os.path.abspath(d.conf), os.path.join(d.evidence, link))
            for name in (link, "..%2Fspamflow.conf", "%2E%2E/spamflow.conf", ".evidence-x",
                        "20260101T000000.000Z-smtp-fanout-..-x.ipfix", "spamflow.conf"):
                st, _, body = d.raw(f"/evidence/{name}")
                check(st == 404 and b"[analyzer]" not in body, f"/evidence/{name}: 404")

        check(not res["console"], f"no console error or warning {res['console']}")
        check(not res["csp"], f"no Content-Security-Policy violation {res['csp']}")
        check(not res["pageErrors"], f"no page error {res['pageErrors']}")
        check(not res["failed"], f"no failed request {res['failed']}")
        log("checked")
        if bad:
            fail(f"{len(bad)} checks failed")
    finally:
        if browser is not None and browser.poll() is None:
            browser.kill()
        rc = d.stop()
    if rc != 0:
        fail(f"spamflowd exited {rc}: {open(d.log.name).read()[-3000:]}")
    log("spamflowd stopped cleanly")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
