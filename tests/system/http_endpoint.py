#!/usr/bin/python3
"""The HTTP endpoint against the real daemon (issue 16): spamflowd runs live on loopback,
fed a real NetFlow v5 stream (sinktest.py's: one smtp-fanout alert per host) while hostile
clients come and go; then
- /metrics passes `promtool check metrics` and its values equal `spamflowctl -j stats`
  (records, datagrams, alerts by reason and event, offenders by reason);
- each /api/X equals `spamflowctl -j X` as parsed JSON (time-dependent members aside);
- access: basic auth (a yescrypt hash made by mkpasswd): none or wrong 401, right 200; a
  second daemon with allow = 10.0.0.0/8 answers the loopback client 403; a request over
  max_request 431; a slowloris client cut at the timeout; connections over max_clients
  closed; POST 405, unknown paths 404, changing commands unreachable; security headers;
- every refusal counted in stats "http" and /metrics;
- and all the while the v5 export decodes in full: the record count is what was sent;
- a third daemon serves HTTPS on [::1] with a self-signed certificate (openssl) to python's ssl
  client with that certificate as its CA.

usage: http_endpoint.py SPAMFLOWD SPAMFLOWCTL
"""
import atexit
import base64
import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sinktest  # noqa: E402
import testdir  # noqa: E402
from netutil import free_port  # noqa: E402

sinktest.PACKAGES.update({"promtool": "prometheus", "mkpasswd": "whois", "openssl": "openssl"})

failures = []
running = []  # daemons to kill if the test dies half-way
USER, PASSWORD = "scraper", "s3cret-Pass"
TIMEOUT = 3  # [http] timeout of the main daemon
HOSTS = 30   # alerting hosts the stream sends: 60 records each


def check(cond, what):
    print(("ok    " if cond else "FAIL  ") + what, flush=True)
    if not cond:
        failures.append(what)


class Daemon:
    def __init__(self, spamflowd, ctl, tmp, name, http_conf, host="127.0.0.1"):
        self.ctl = ctl
        self.dir = os.path.join(tmp, name)
        os.makedirs(self.dir)
        self.sock = os.path.join(self.dir, "run", "control.sock")
        self.port = free_port(socket.SOCK_DGRAM)
        self.http_port = free_port(socket.SOCK_STREAM)
        listen = f"[{host}]:{self.http_port}" if ":" in host else f"{host}:{self.http_port}"
        conf = os.path.join(self.dir, "spamflow.conf")
        with open(conf, "w") as f:
            f.write(f"[control]\nsocket = {self.sock}\n"
                    f"[http]\nlisten = {listen}\n{http_conf}")
        self.log = open(os.path.join(self.dir, "daemon.log"), "w+")
        self.p = subprocess.Popen([spamflowd, "--state=", "--history=", "-c", conf, "-l",
                                   f"127.0.0.1:{self.port}", "--stats-interval", "0"],
                                  stdout=subprocess.DEVNULL, stderr=self.log)
        running.append(self.p)
        for _ in range(200):
            if os.path.exists(self.sock) and "http: serving" in open(self.log.name).read():
                return
            if self.p.poll() is not None:
                break
            time.sleep(0.05)
        sys.exit(f"spamflowd ({name}) did not start: {open(self.log.name).read()}")

    def jq(self, *args):
        p = subprocess.run([self.ctl, "-s", self.sock, "--json", *args], capture_output=True,
                           text=True, timeout=30)
        if not p.stdout.strip():
            raise RuntimeError(f"spamflowctl {args}: rc {p.returncode}: {p.stderr}")
        return json.loads(p.stdout)

    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        return self.p.wait(timeout=20)


def auth_header(user=USER, password=PASSWORD):
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def get(port, path, headers=None, method="GET", context=None, timeout=10, host="127.0.0.1"):
    """(status, headers as a dict with lower-case names, body bytes)"""
    if context is not None:
        c = http.client.HTTPSConnection(host, port, timeout=timeout, context=context)
    else:
        c = http.client.HTTPConnection(host, port, timeout=timeout)
    c.request(method, path, headers=headers or {})
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, body


def parse_metrics(text):
    """{(name, frozenset(labels)): value} from the exposition (our own output: no escapes
    in the labels compared here)."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        head, value = line.rsplit(" ", 1)
        labels = frozenset()
        if "{" in head:
            name, rest = head.split("{", 1)
            pairs = [p for p in rest.rstrip("}").split('",') if p]
            labels = frozenset(tuple(p.rstrip('"').split('="', 1)) for p in pairs)
        else:
            name = head
        out[(name, labels)] = float(value)
    return out


def strip_time(obj, drop):
    """obj without the members named in drop, at any depth."""
    if isinstance(obj, dict):
        return {k: strip_time(v, drop) for k, v in obj.items() if k not in drop}
    if isinstance(obj, list):
        return [strip_time(v, drop) for v in obj]
    return obj


# ---- hostile clients ----

def slowloris(port, results):
    """Sends a request's headers one byte every 0.5 s; records when the server cut it."""
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(0.5)
    start = time.monotonic()
    payload = b"GET /metrics HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: " + b"a" * 200
    cut = None
    for i in range(len(payload)):
        try:
            s.sendall(payload[i:i + 1])
        except OSError:
            cut = time.monotonic() - start
            break
        try:
            if s.recv(4096) == b"":
                cut = time.monotonic() - start
                break
        except socket.timeout:
            pass
        except OSError:
            cut = time.monotonic() - start
            break
        if time.monotonic() - start > 4 * TIMEOUT:
            break
    s.close()
    results["slowloris_cut_s"] = cut


def over_max_clients(port, n):
    """Holds n idle connections, then opens one more: was it closed at once?"""
    held = [socket.create_connection(("127.0.0.1", port)) for _ in range(n)]
    time.sleep(0.3)
    extra = socket.create_connection(("127.0.0.1", port))
    extra.settimeout(2)
    try:
        extra.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        closed = extra.recv(4096) == b""
    except (ConnectionResetError, BrokenPipeError):
        closed = True
    except socket.timeout:
        closed = False
    extra.close()
    for s in held:
        s.close()
    return closed


def kill_running():
    for p in running:
        if p.poll() is None:
            p.kill()


def main():
    spamflowd, ctl = sys.argv[1:3]
    atexit.register(kill_running)
    sinktest.require_programs("promtool", "mkpasswd", "openssl")
    tmp = testdir.mkdtemp("spamflow-http-")
    pw = subprocess.run(["mkpasswd", "-m", "yescrypt", "--stdin"], input=PASSWORD,
                        capture_output=True, text=True, check=True).stdout.strip()
    auth_file = os.path.join(tmp, "http.passwd")
    with open(auth_file, "w") as f:
        f.write(f"# made by mkpasswd -m yescrypt\n{USER}:{pw}\n")
    d = Daemon(spamflowd, ctl, tmp, "main",
               f"auth_file = {auth_file}\nmax_clients = 4\ntimeout = {TIMEOUT}\n")
    port = d.http_port
    A = auth_header()

    # The export runs in the background for the whole hostile part.
    stream = sinktest.Stream(d.port)
    sent = {"records": 0, "datagrams": 0}
    stop_stream = threading.Event()

    def feed():
        while not stop_stream.is_set() and stream.host < HOSTS:
            stream.step()
            sent["records"] += 60
            sent["datagrams"] += 2
            time.sleep(0.25)

    feeder = threading.Thread(target=feed)
    feeder.start()

    # ---- access control and refusals, while flows arrive ----
    st, h, body = get(port, "/metrics")
    check(st == 401 and h.get("www-authenticate", "").startswith("Basic"),
          f"no credentials: 401 with WWW-Authenticate (got {st})")
    st, _, _ = get(port, "/metrics", auth_header(password="wrong"))
    check(st == 401, f"wrong password: 401 (got {st})")
    st, _, _ = get(port, "/metrics", auth_header(user="nobody"))
    check(st == 401, f"unknown user: 401 (got {st})")
    st, h, body = get(port, "/metrics", A)
    check(st == 200, f"right password: 200 (got {st})")
    check(h.get("content-type") == "text/plain; version=0.0.4; charset=utf-8",
          f"/metrics Content-Type (got {h.get('content-type')})")
    for name, want in (("content-security-policy", "default-src 'none'; frame-ancestors 'none'"),
                       ("x-content-type-options", "nosniff"),
                       ("referrer-policy", "no-referrer")):
        check(h.get(name) == want, f"{name}: {want} (got {h.get(name)})")
    st, h, body = get(port, "/api/stats", A)
    check(st == 200 and h.get("content-type") == "application/json" and
          h.get("cache-control") == "no-store", "/api/stats: application/json, no-store")
    st, _, _ = get(port, "/api/stats", A, method="POST")
    check(st == 405, f"POST: 405 (got {st})")
    st, _, _ = get(port, "/nope", A)
    check(st == 404, f"unknown path: 404 (got {st})")
    for path in ("/api/reload", "/api/forget/10.77.0.1", "/api/config", "/api/stats/x",
                 "/api/suppress/10.77.0.1"):
        st, _, body = get(port, path, A)
        check(st == 404, f"{path}: 404, not reachable over HTTP (got {st})")
    st, _, body = get(port, "/api/history?limit=abc", A)
    check(st == 400 and json.loads(body)["ok"] is False, f"bad argument: 400 (got {st})")
    st, _, body = get(port, "/api/history?limit=1%20reason=x", A)
    check(st == 400, f"an argument that would split the command line: 400 (got {st})")
    st, _, body = get(port, "/metrics", {**A, "X-Big": "b" * 20000})
    check(st == 431, f"20 kB of headers (max_request 8 KiB): 431 (got {st})")

    res = {}
    t0 = time.monotonic()
    slowloris(port, res)
    cut = res.get("slowloris_cut_s")
    check(cut is not None and cut <= TIMEOUT + 2.5,
          f"slowloris cut at the timeout ({TIMEOUT} s): after {cut} s")
    check(over_max_clients(port, 4), "a 5th connection over max_clients = 4 is closed")
    st = None
    for _ in range(20):  # the server's thread sees the held connections close
        try:
            st, _, _ = get(port, "/metrics", A)
            break
        except OSError:
            time.sleep(0.1)
    check(st == 200, f"served again once the idle connections went (got {st})")
    print(f"      hostile part took {time.monotonic() - t0:.1f} s", flush=True)

    feeder.join()
    # everything sent has been decoded; the analyzer's clock has the last flows
    for _ in range(100):
        s = d.jq("stats")
        if s["totals"]["records"] >= sent["records"]:
            break
        time.sleep(0.1)
    time.sleep(0.5)

    # ---- /metrics against stats ----
    st, _, body = get(port, "/metrics", A)
    text = body.decode()
    with open(os.path.join(d.dir, "metrics.txt"), "w") as f:
        f.write(text)
    p = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                       text=True)
    check(p.returncode == 0, f"promtool check metrics: rc {p.returncode} {p.stdout}{p.stderr}")
    m = parse_metrics(text)
    s = d.jq("stats")

    def mv(name, **labels):
        return m.get((name, frozenset(labels.items())))

    check(mv("spamflow_records_total") == s["totals"]["records"] == sent["records"],
          f"records: metrics {mv('spamflow_records_total')}, stats {s['totals']['records']}, "
          f"sent {sent['records']} (the export decoded in full)")
    check(mv("spamflow_datagrams_total") == s["totals"]["datagrams"] == sent["datagrams"],
          f"datagrams: metrics {mv('spamflow_datagrams_total')}, stats "
          f"{s['totals']['datagrams']}, sent {sent['datagrams']}")
    check(s["listener"]["kernel_drops"] == 0 and mv("spamflow_kernel_drops_total") == 0,
          "no kernel drops")
    alerts_ok = True
    for reason, events in s["alerts"].items():
        for event, n in events.items():
            alerts_ok &= mv("spamflow_alerts_total", reason=reason, event=event) == n
    check(alerts_ok and s["alerts"]["smtp-fanout"]["raised"] == HOSTS,
          f"alerts by reason and event equal stats ({HOSTS} smtp-fanout raised: "
          f"{s['alerts']['smtp-fanout']['raised']})")
    offs = d.jq("offenders")["offenders"]
    by_reason = {}
    for o in offs:
        by_reason[o["reason"]] = by_reason.get(o["reason"], 0) + 1
    check(all(mv("spamflow_offenders", reason=r) == by_reason.get(r, 0) for r in s["alerts"]) and
          sum(by_reason.values()) == s["analyzer"]["offenders_active"] == HOSTS,
          f"offenders by reason equal `offenders` and stats ({by_reason})")
    check(mv("spamflow_hosts_tracked") == s["analyzer"]["hosts_tracked"], "hosts tracked")
    exp = s["exporters"][0]
    check(mv("spamflow_exporter_records_total", exporter=f"127.0.0.1:{exp['port']}",
             domain=str(exp["domain"]) if exp["domain"] is not None else "") == exp["records"],
          "per-exporter records, labelled exporter=address:port")
    check(not any("10.77." in line for line in text.splitlines() if not line.startswith("#")),
          "no internal host in any label")
    http_st = s["http"]
    for key, reason, at_least in (("refused_auth", "auth", 3), ("refused_too_big", "too_big", 1),
                                  ("timed_out", "timeout", 1),
                                  ("refused_clients", "too_many_clients", 1),
                                  ("refused_method", "method", 1)):
        check(http_st[key] >= at_least and
              mv("spamflow_http_refused_total", reason=reason) == http_st[key],
              f"stats http.{key} = {http_st[key]} (>= {at_least}) = /metrics {reason}")

    # ---- /api against spamflowctl -j ----
    host = offs[0]["host"]
    drop = {"now_ms", "uptime_s", "control", "http", "last_seen_ms"}
    for path, cmd in (("offenders", ["offenders"]), ("offenders?limit=2", ["offenders", "limit=2"]),
                      ("offenders?reason=smtp-fanout",
                       ["offenders", "reason=smtp-fanout"]),
                      ("history", ["history"]), ("history?limit=10", ["history", "limit=10"]),
                      (f"host/{host}", ["host", host]), ("exporters", ["exporters"]),
                      ("stats", ["stats"]), ("suppressions", ["suppressions"])):
        st, h, body = get(port, "/api/" + path, A)
        want = d.jq(*cmd)
        got = json.loads(body) if st == 200 else {"status": st}
        same = strip_time(got, drop) == strip_time(want, drop)
        check(same, f"/api/{path} equals spamflowctl -j {' '.join(cmd)}")
        if not same:
            print("   http:", json.dumps(strip_time(got, drop))[:600])
            print("   ctl: ", json.dumps(strip_time(want, drop))[:600])
    st, _, body = get(port, "/api/host/10.99.99.99", A)
    check(st == 404 and json.loads(body)["ok"] is False, f"an unknown host: 404 (got {st})")
    st, h, body = get(port, "/api/offenders", A, method="HEAD")
    check(st == 200 and body == b"", "HEAD: 200, no body")

    # back to back: each reply waits until the last one's render time x 9 has passed
    before = d.jq("stats")["http"]
    t0 = time.monotonic()
    codes = [get(port, "/api/offenders", A)[0] for _ in range(10)]
    took = time.monotonic() - t0
    after = d.jq("stats")["http"]
    check(codes == [200] * 10 and after["renders_delayed"] > before["renders_delayed"] and
          after["render_us"] > before["render_us"],
          f"10 back-to-back /api/offenders: all 200 in {took:.2f} s, "
          f"{after['renders_delayed'] - before['renders_delayed']} held back to keep the "
          f"main loop's share, {after['render_us'] - before['render_us']} us rendering")

    s = d.jq("stats")
    check(s["totals"]["records"] == sent["records"] and s["listener"]["kernel_drops"] == 0,
          f"at the end, still every record decoded ({s['totals']['records']} of "
          f"{sent['records']}) and no kernel drops")
    check(d.p.poll() is None, "the daemon is still running")
    check(d.stop() == 0, "it stops cleanly")

    # ---- a source outside allow ----
    b = Daemon(spamflowd, ctl, tmp, "allow", "allow = 10.0.0.0/8\n")
    st, h, body = get(b.http_port, "/metrics")
    check(st == 403, f"allow = 10.0.0.0/8: the loopback client gets 403 (got {st})")
    st, _, _ = get(b.http_port, "/api/stats")
    s = b.jq("stats")
    check(s["http"]["refused_not_allowed"] == 2, "both counted as refused_not_allowed")
    check(b.stop() == 0, "the allow daemon stops cleanly")

    # ---- HTTPS, on IPv6 loopback ----
    cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:::1",
                    "-keyout", key, "-out", cert], check=True, capture_output=True)
    t = Daemon(spamflowd, ctl, tmp, "tls", f"tls_cert = {cert}\ntls_key = {key}\n", host="::1")
    ctx = ssl.create_default_context(cafile=cert)
    st, h, body = get(t.http_port, "/metrics", context=ctx, host="::1")
    check(st == 200 and b"spamflow_records_total" in body,
          f"HTTPS on [::1] with the self-signed certificate as CA: /metrics 200 (got {st})")
    check(h.get("content-security-policy") == "default-src 'none'; frame-ancestors 'none'",
          "HTTPS replies carry the security headers too")
    try:
        get(t.http_port, "/metrics", host="::1")
        plain = "answered"
    except (http.client.HTTPException, OSError) as e:
        plain = f"refused ({type(e).__name__})"
    check(plain != "answered", f"plain HTTP to the HTTPS port is not answered: {plain}")
    try:
        get(t.http_port, "/metrics", context=ssl.create_default_context(), host="::1")
        verified = "accepted"
    except ssl.SSLError as e:
        verified = f"refused ({e.reason})"
    check(verified != "accepted", f"a client without that CA refuses the certificate: {verified}")
    check(t.stop() == 0, "the TLS daemon stops cleanly")

    if failures:
        print(f"{len(failures)} failures; logs in {tmp}")
        sys.exit(1)
    print("all ok")


if __name__ == "__main__":
    main()
