#!/usr/bin/python3
"""All actions on, the scenario replayed: the actions must not change what is decoded or
raised, and each must act on exactly the events it is meant to.

The 150-minute scenario capture (softflowd IPFIX) is replayed twice by spamflowd: once with
no action, once with an exec hook (a real script that keeps its arguments and standard
input), a webhook (a real local HTTP server) and the quarantine (a replay runs it dry: it
logs what it would do). Both runs must decode the same records and raise the same alert
events; the script must have run once per event with the event's JSON on its standard input;
the server must have received every event's JSON once; the quarantine must have named
exactly the raised hosts its rules allow (internal, not a listed mail server, a quarantine
reason at warning or above, not looking like a mail server), and nothing else.

usage: actions_scenario.py SPAMFLOWD FIXTURES
"""
import glob
import http.server
import json
import os
import re
import subprocess
import sys
import tempfile
import threading

QUARANTINE_REASONS = {"smtp-fanout", "smtp-blocked", "submission-fanout", "lateral-smtp",
                      "smtp-novelty"}
SEVERITIES = ["info", "notice", "warning", "critical"]
fails = 0


def check(ok, what):
    global fails
    print(("ok   " if ok else "FAIL ") + what, flush=True)
    if not ok:
        fails += 1


class Recorder(http.server.BaseHTTPRequestHandler):
    bodies = []
    lock = threading.Lock()

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with Recorder.lock:
            Recorder.bodies.append((self.headers.get("Content-Type"), body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def no_duplicates(pairs):
    """A JSON object whose keys are all different (a counter printed twice is a bug)."""
    keys = [k for k, _ in pairs]
    dup = {k for k in keys if keys.count(k) > 1}
    if dup:
        sys.exit(f"FAIL duplicate keys in the report: {sorted(dup)}")
    return dict(pairs)


def replay(spamflowd, conf, capture, alerts):
    r = subprocess.run([spamflowd, "-c", conf, "--replay", capture, "--alerts", alerts,
                        "--json"], capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        sys.exit(f"replay failed ({r.returncode}): {r.stderr[-2000:]}")
    report = json.loads(r.stdout, object_pairs_hook=no_duplicates)
    events = [json.loads(l) for l in open(alerts)]
    return report, events, r.stderr


def main():
    spamflowd, fixtures = sys.argv[1], sys.argv[2]
    capture = os.path.join(fixtures, "scenario-ipfix.pcap")
    base = open(os.path.join(fixtures, "scenario.conf")).read()
    tmp = tempfile.mkdtemp(prefix="actions-scenario-")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    runs = os.path.join(tmp, "runs")
    os.mkdir(runs)
    script = os.path.join(tmp, "hook.sh")
    with open(script, "w") as f:
        f.write("#!/bin/sh\n"
                f"out=$(mktemp {runs}/run.XXXXXXXX)\n"
                "{ printf '%s %s %s %s\\n' \"$1\" \"$2\" \"$3\" \"$4\"; cat; } > \"$out\"\n")
    os.chmod(script, 0o755)

    plain = os.path.join(tmp, "plain.conf")
    open(plain, "w").write(base + "\n[state]\nfile =\n")
    acting = os.path.join(tmp, "actions.conf")
    open(acting, "w").write(
        base + "\n[state]\nfile =\n"
        f"[actions]\nexec = {script}\nexec_host_limit = 0\nexec_queue = 100000\n"
        f"webhook = http://127.0.0.1:{server.server_address[1]}/hook\n"
        "[quarantine]\nset = inet filter spamflow_quarantine\n")

    rep0, ev0, _ = replay(spamflowd, plain, capture, os.path.join(tmp, "plain.json"))
    rep1, ev1, log1 = replay(spamflowd, acting, capture, os.path.join(tmp, "actions.json"))
    server.shutdown()

    check(rep0["totals"]["records"] == rep1["totals"]["records"] and
          rep1["totals"]["records"] > 30000,
          f"records decoded alike: {rep0['totals']['records']} and "
          f"{rep1['totals']['records']}")
    check(ev0 == ev1 and len(ev1) >= 20,
          f"the same {len(ev1)} alert events with and without actions ({len(ev0)} without)")
    check("replay: [quarantine] runs as dry_run" in log1, "the replay says the quarantine runs dry")

    # the exec hook: once per event, arguments and standard input from that event
    want = sorted((e["event"], e["host"], e["reason"], e["severity"]) for e in ev1)
    got, stdin_ok = [], True
    by_key = {}
    for e in ev1:
        by_key.setdefault((e["event"], e["host"], e["reason"], e["severity"]), []).append(e)
    for path in glob.glob(os.path.join(runs, "run.*")):
        text = open(path).read()
        head, _, body = text.partition("\n")
        key = tuple(head.split(" "))
        got.append(key)
        try:
            stdin_ok &= json.loads(body) in by_key.get(key, [])
        except ValueError:
            stdin_ok = False
    got.sort()
    check(got == want, f"exec ran once per event: {len(got)} runs for {len(want)} events")
    check(stdin_ok, "each run's standard input is its event's JSON (as the JSON sink's line)")
    ex = [a for a in rep1.get("actions", []) if a["kind"] == "exec"]
    check(len(ex) == 1 and ex[0].get("started") == len(ev1) and ex[0].get("failed") == 0 and
          ex[0].get("dropped") == 0 and ex[0].get("timed_out") == 0,
          f"exec counters: {ex}")

    # the webhook: every event's JSON once, as application/json
    bodies = sorted(json.dumps(json.loads(b), sort_keys=True) for _, b in Recorder.bodies)
    check(bodies == sorted(json.dumps(e, sort_keys=True) for e in ev1),
          f"the webhook received each event once: {len(bodies)} for {len(ev1)}")
    check(all(t == "application/json" for t, _ in Recorder.bodies), "Content-Type application/json")
    wh = [a for a in rep1.get("actions", []) if a["kind"] == "webhook"]
    check(len(wh) == 1 and wh[0].get("sent") == len(ev1) and wh[0].get("failed") == 0,
          f"webhook counters: {wh}")

    # the quarantine, dry: the raised hosts its rules allow, and only those
    mail = {"10.0.1.25", "10.0.1.26"}
    expect_q = set()
    for e in ev1:
        if (e["event"] in ("raised", "updated") and e["reason"] in QUARANTINE_REASONS and
                SEVERITIES.index(e["severity"]) >= 2 and e["host"] not in mail and
                not e.get("mta_like")):
            expect_q.add(e["host"])
    named = set(re.findall(r"action quarantine-dry-run host=(\S+)", log1))
    check(named == expect_q and len(named) >= 3,
          f"quarantine (dry) named {sorted(named)}, expected {sorted(expect_q)}")
    check("10.0.1.27" not in named, "the unlisted mail server (looks like one) is not quarantined")
    if fails:
        sys.exit(1)


main()
