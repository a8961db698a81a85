#!/usr/bin/python3
"""The webhook action through the whole daemon: spamflowd live on loopback, fed a NetFlow v5
stream that raises one smtp-fanout alert per host (sinktest.Stream), posts its events to
real HTTP servers in this process (http.server, one thread per connection, HTTP/1.1
keep-alive), one of them TLS with a certificate from a CA this test makes with openssl.
  a. plain HTTP: exactly the events of the run's JSON sink, once each, body equal to the JSON
     line, Content-Type application/json, Authorization from webhook_header_file;
  b. HTTPS with webhook_ca = the test CA: delivered the same; the same server without
     webhook_ca: refused (certificate not verified), counted failed and retried, last_error
     names the certificate, and not one request reaches the server;
  c. a server down for the first seconds (port closed), then started: retried, then every
     event delivered once, "reachable again" logged;
  d. a server answering 400: one request per event, failed counted, nothing retried;
  e. a server that takes 5 s per request: while requests hang, the control socket answers
     stats within 0.5 s and the v5 export still decodes in full (records = records sent);
  f. webhook_format = chat: {"text": "spamflow: " + the daemon's alert log line}.
The token never appears in the daemon's log.

usage: actions_webhook.py SPAMFLOWD SPAMFLOWCTL
"""
import http.server
import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sinktest  # noqa: E402
from netutil import free_port  # noqa: E402

TOKEN = "Bearer s3cr3t-t0ken-4711"
failures = []


def check(cond, what):
    print(("ok    " if cond else "FAIL  ") + what, flush=True)
    if not cond:
        failures.append(what)
    return cond


# ---- local HTTP(S) servers ----

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a real endpoint
    disable_nagle_algorithm = True  # else each answer's body waits 40 ms for a delayed ACK

    def do_POST(self):
        hook = self.server.hook
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with hook.lock:
            hook.requests.append((self.path, dict(self.headers.items()), body))
            hook.active += 1
        if hook.delay:
            time.sleep(hook.delay)
        with hook.lock:
            hook.active -= 1
            hook.answered += 1
        self.send_response(hook.status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, fmt, *args):
        pass


class TLSServer(http.server.ThreadingHTTPServer):
    """The handshake in the connection's thread (a refused handshake is the client's
    business, and must not stall the accept loop)."""
    daemon_threads = True

    def get_request(self):
        sock, addr = self.socket.accept()
        return self.ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr

    def handle_error(self, request, client_address):
        self.hook.handshake_errors += 1


class PlainServer(http.server.ThreadingHTTPServer):
    daemon_threads = True


class Hook:
    def __init__(self, name, status=200, delay=0.0, tls=None):
        self.name = name
        self.status = status
        self.delay = delay
        self.tls = tls  # (certfile, keyfile) or None
        self.port = free_port(socket.SOCK_STREAM)
        self.lock = threading.Lock()
        self.requests = []
        self.active = self.answered = self.handshake_errors = 0
        self.server = None

    def url(self, path="/hook", host="127.0.0.1"):
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}{path}"

    def start(self):
        cls = TLSServer if self.tls else PlainServer
        self.server = cls(("127.0.0.1", self.port), Handler)
        self.server.hook = self
        if self.tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*self.tls)
            self.server.ctx = ctx
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def bodies(self):
        with self.lock:
            return [json.loads(b) for _, _, b in self.requests]

    def wait(self, n, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.requests) >= n and self.active == 0:
                    break
            time.sleep(0.05)
        time.sleep(0.3)  # and nothing more (a duplicate) comes
        with self.lock:
            return len(self.requests)


def make_ca(tmp):
    """A CA and a server certificate for 127.0.0.1 and localhost (SAN) signed by it."""
    def run(*args):
        r = subprocess.run(["openssl", *args], capture_output=True, text=True, cwd=tmp)
        if r.returncode != 0:
            raise SystemExit(f"openssl {args[0]}: {r.stderr}")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=spamflow test CA", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("req", *ec, "-keyout", "srv.key", "-out", "srv.csr", "-subj", "/CN=localhost")
    with open(os.path.join(tmp, "srv.ext"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n")
    run("x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "srv.pem", "-days", "2", "-extfile", "srv.ext")
    return (os.path.join(tmp, "ca.pem"), (os.path.join(tmp, "srv.pem"),
                                          os.path.join(tmp, "srv.key")))


# ---- the daemon ----

class Daemon:
    def __init__(self, spamflowd, ctl, tmp, name, actions):
        self.ctl = ctl
        self.sock = os.path.join(tmp, f"run-{name}", "control.sock")
        self.conf = os.path.join(tmp, f"{name}.conf")
        self.alerts = os.path.join(tmp, f"{name}.jsonl")
        with open(self.conf, "w") as f:
            f.write(f"[http]\nlisten =\n[control]\nsocket = {self.sock}\n\n[actions]\n{actions}\n")
        self.p, self.port = sinktest.start_live(spamflowd, self.conf, self.alerts)
        self.stream = sinktest.Stream(self.port)

    def stats(self):
        r = subprocess.run([self.ctl, "-s", self.sock, "--json", "stats"], capture_output=True,
                           text=True, timeout=10)
        if r.returncode != 0:
            raise SystemExit(f"spamflowctl stats: {r.returncode}: {r.stderr}")
        return json.loads(r.stdout)

    def hook_stats(self, stats, url):
        hits = [a for a in stats.get("actions", []) if a["kind"] == "webhook"
                and a["name"] == url]
        if len(hits) != 1:
            raise SystemExit(f"no single webhook action {url} in {stats.get('actions')}")
        return hits[0]

    def stats_time(self):
        """Seconds the control socket takes to answer `stats` (a fresh connection)."""
        t0 = time.monotonic()
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(5)
        s.connect(self.sock)
        s.sendall(b"stats\n")
        buf = b""
        while not buf.endswith(b"\n"):
            b = s.recv(65536)
            if not b:
                break
            buf += b
        s.close()
        json.loads(buf)
        return time.monotonic() - t0

    def stop(self):
        report, err = sinktest.stop_live(self.p)
        return report, err, sinktest.read_jsonl(self.alerts)


def key(a):
    return (a["event"], a["reason"], a["host"])


def check_exact(label, hook, events, n_requests=None):
    """hook got exactly the events (bodies equal to the JSON sink's objects), once each."""
    got = hook.bodies()
    want = {key(a): a for a in events}
    keys = [key(b) for b in got]
    check(len(events) > 0, f"{label}: the run raised events ({len(events)})")
    check(sorted(keys) == sorted(want), f"{label}: {len(got)} bodies for {len(events)} "
          f"events, each once (duplicates: {len(keys) - len(set(keys))})")
    check(all(b == want.get(key(b)) for b in got),
          f"{label}: every body equals the JSON sink's line of the same event")
    with hook.lock:
        heads = [h for _, h, _ in hook.requests]
        paths = {p for p, _, _ in hook.requests}
    check(all(h.get("Content-Type") == "application/json" for h in heads),
          f"{label}: Content-Type application/json on every request")
    check(all(h.get("Authorization") == TOKEN for h in heads),
          f"{label}: the Authorization header of webhook_header_file on every request")
    check(paths == {"/hook"}, f"{label}: POSTed to the URL's path ({paths})")


def run_main(spamflowd, ctl, tmp, ca, cert):
    """a, b (with webhook_ca), c, d in one daemon: one webhook per server."""
    plain = Hook("plain")
    tls = Hook("tls", tls=cert)
    late = Hook("late")  # down at first
    bad = Hook("bad", status=400)
    for h in (plain, tls, bad):
        h.start()
    token_file = os.path.join(tmp, "token")
    with open(token_file, "w") as f:
        f.write(f"Authorization: {TOKEN}\n")
    os.chmod(token_file, 0o600)
    urls = [plain.url(), tls.url(), late.url(), bad.url()]
    d = Daemon(spamflowd, ctl, tmp, "main",
               f"webhook = {', '.join(urls)}\nwebhook_header_file = {token_file}\n"
               f"webhook_ca = {ca}\nwebhook_timeout = 5\nwebhook_attempts = 12\n"
               "webhook_backoff = 1\n")
    hosts = 12
    t0 = time.monotonic()
    for i in range(hosts):
        d.stream.step()
        time.sleep(0.1)
    time.sleep(max(0.0, 3.0 - (time.monotonic() - t0)))
    st = d.hook_stats(d.stats(), late.url())
    check(st["sent"] == 0 and st["retried"] >= 1 and st["failed"] == 0
          and st["queued"] + st["in_flight"] == hosts and st["last_status"] == 0
          and "onnect" in st["last_error"] and st["last_error_ms"] > 0,
          f"c: while the server is down: nothing sent, retried, all {hosts} held: {st}")
    late.start()
    check(late.wait(hosts, 25) == hosts, f"c: the server came up: {len(late.requests)} "
          f"requests for {hosts} events")
    for h in (plain, tls, bad):
        h.wait(hosts, 10)
    stats = d.stats()
    sp, stl, sl, sb = (d.hook_stats(stats, h.url()) for h in (plain, tls, late, bad))
    report, err, events = d.stop()
    for h in (plain, tls, late, bad):
        h.stop()

    check(len(events) == hosts, f"{hosts} hosts raised {len(events)} events")
    check_exact("a: http", plain, events)
    check(sp["sent"] == hosts and sp["failed"] == 0 and sp["retried"] == 0
          and sp["dropped"] == 0 and sp["queued"] == 0 and sp["in_flight"] == 0
          and sp["last_status"] == 200 and sp["last_error"] == "",
          f"a: stats of the http target: {sp}")
    check_exact("b: https, webhook_ca", tls, events)
    check(stl["sent"] == hosts and stl["failed"] == 0 and stl["retried"] == 0,
          f"b: stats of the https target: {stl}")
    check_exact("c: down, then up", late, events)
    check(sl["sent"] == hosts and sl["failed"] == 0 and sl["retried"] >= 2
          and sl["dropped"] == 0 and sl["queued"] == 0,
          f"c: stats after: delivered all, retried > 0: {sl}")
    check(f"webhook sink '{late.url()}': reachable again after " in err,
          "c: the log says the target is reachable again")
    check(len(bad.requests) == hosts, f"d: 400: one request per event "
          f"({len(bad.requests)} for {hosts})")
    check(sb["sent"] == 0 and sb["failed"] == hosts and sb["retried"] == 0
          and sb["last_status"] == 400 and sb["last_error"] == "HTTP status 400"
          and sb["errors"] == hosts, f"d: 400 not retried, failed counted: {sb}")
    check("HTTP status 400: event not delivered (not retried)" in err,
          "d: the 400 is logged")
    check("s3cr3t" not in err, "the token is never in the log")
    final = [a for a in report.get("actions", []) if a["kind"] == "webhook"]
    check(len(final) == 4 and sum(a["sent"] for a in final) == 3 * hosts,
          f"the exit report has the four webhooks: {[a['sent'] for a in final]}")


def run_refused_and_slow(spamflowd, ctl, tmp, cert):
    """b without webhook_ca, and e, in one daemon."""
    tls = Hook("tls-noca", tls=cert)
    slow = Hook("slow", delay=5.0)
    tls.start()
    slow.start()
    d = Daemon(spamflowd, ctl, tmp, "noca-slow",
               f"webhook = {tls.url()}, {slow.url()}\nwebhook_timeout = 10\n"
               "webhook_attempts = 2\nwebhook_backoff = 1\n")
    alerting = 6
    for i in range(alerting):
        d.stream.step()
    # a request hangs at the slow server: the daemon must not
    deadline = time.monotonic() + 5
    while slow.active == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    check(slow.active > 0, f"e: requests hang at the slow server ({slow.active})")
    times = []
    datagrams = 2 * alerting
    for i in range(60):  # the same hosts again: records, no new events
        uptime = int((time.monotonic() - d.stream.start) * 1000) + 100000
        dgs, d.stream.seq = sinktest.v5_datagrams(i % alerting, d.stream.seq, uptime)
        for dg in dgs:
            d.stream.sock.sendto(dg, ("127.0.0.1", d.port))
        datagrams += len(dgs)
        if i % 10 == 0:
            times.append(d.stats_time())
        time.sleep(0.01)
    hanging = slow.active
    check(hanging > 0 and slow.answered == 0,
          f"e: still hanging after the export ({hanging} requests, {slow.answered} answered)")
    check(max(times) < 0.5, f"e: stats answered within 0.5 s while requests hang "
          f"(slowest {max(times) * 1000:.0f} ms)")
    time.sleep(0.5)
    stats = d.stats()
    check(stats["totals"]["records"] == 30 * datagrams,
          f"e: every record decoded: {stats['totals']['records']} of {30 * datagrams}")
    ss = d.hook_stats(stats, slow.url())
    check(ss["in_flight"] >= 1 and ss["sent"] == 0 and ss["failed"] == 0,
          f"e: the slow target: requests in flight, none failed: {ss}")
    # the refused TLS target: 2 attempts of the first event take ~1 s
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        st = d.hook_stats(d.stats(), tls.url())
        if st["failed"] >= 1:
            break
        time.sleep(0.2)
    check(st["failed"] >= 1 and st["retried"] >= 1 and st["sent"] == 0
          and "certificate" in st["last_error"].lower() and st["last_status"] == 0,
          f"b: without webhook_ca: not verified, failed and retried: {st}")
    check(len(tls.requests) == 0 and tls.handshake_errors >= 1,
          f"b: no request reached the server without verification "
          f"({len(tls.requests)} requests, {tls.handshake_errors} refused handshakes)")
    report, err, events = d.stop()
    tls.stop()
    slow.stop()
    check(len(events) == alerting, f"e: {alerting} events raised ({len(events)})")
    check("certificate" in err, "b: the certificate failure is logged")


def run_chat(spamflowd, ctl, tmp):
    chat = Hook("chat")
    chat.start()
    d = Daemon(spamflowd, ctl, tmp, "chat", f"webhook = {chat.url()}\nwebhook_format = chat\n")
    n = 3
    for i in range(n):
        d.stream.step()
    chat.wait(n, 10)
    report, err, events = d.stop()
    chat.stop()
    logged = {line.split(": alert ", 1)[1] for line in err.splitlines() if ": alert " in line}
    bodies = chat.bodies()
    check(len(bodies) == n and len(events) == n, f"f: {len(bodies)} chat posts for "
          f"{len(events)} events")
    check(all(list(b) == ["text"] for b in bodies), "f: each body is {\"text\": ...} alone")
    texts = [b.get("text", "") for b in bodies]
    check(all(t.startswith("spamflow: ") and t[len("spamflow: "):] in logged for t in texts),
          f"f: each text is 'spamflow: ' + an alert log line: {texts[:1]}")
    check(sorted(t.split()[3] for t in texts) == sorted(f"host={a['host']}" for a in events),
          "f: one post per event's host")


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    spamflowd, ctl = sys.argv[1:3]
    sinktest.PACKAGES.setdefault("openssl", "openssl")
    sinktest.require_programs("openssl")
    with tempfile.TemporaryDirectory(prefix="spamflow-webhook-") as tmp:
        ca, cert = make_ca(tmp)
        print("-- a, b, c, d: one daemon, four webhooks", flush=True)
        run_main(spamflowd, ctl, tmp, ca, cert)
        print("-- b without webhook_ca, e: a slow server", flush=True)
        run_refused_and_slow(spamflowd, ctl, tmp, cert)
        print("-- f: chat format", flush=True)
        run_chat(spamflowd, ctl, tmp)
    if failures:
        print(f"{len(failures)} checks failed", flush=True)
        sys.exit(1)
    print("all checks passed")


if __name__ == "__main__":
    main()
