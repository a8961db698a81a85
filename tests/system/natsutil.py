"""Shared by the cluster tests: a real NATS cluster on loopback (issue 17).

NatsCluster(n) writes one nats-server configuration per server into a temporary directory
(server_name, client port, monitoring port, cluster routes to every other server, JetStream
with its store_dir in that directory, max_payload), starts them, and waits until the routes
are up and JetStream has a meta leader. A server can then be killed (SIGKILL), stopped
(SIGTERM, waited for), started again on the same ports and store (restart), and the whole
cluster stopped. A missing nats-server is a failure (exit 1 naming the package), never a
skip: a bus we cannot run in a test is a bus we cannot trust.

    with NatsCluster(3, max_payload=1 << 20) as c:
        urls = c.urls()              # "nats://127.0.0.1:p1, nats://127.0.0.1:p2, ..."
        c.kill(0); c.start(0); c.wait_ready()
"""
import base64
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

from netutil import free_port

NATS_SERVER_NAMES = ["nats-server", "/usr/sbin/nats-server", "/usr/bin/nats-server"]


def find_nats_server():
    """The nats-server binary, or exit 1 saying which package has it."""
    for name in NATS_SERVER_NAMES:
        path = shutil.which(name) if not os.path.isabs(name) else (
            name if os.access(name, os.X_OK) else None)
        if path:
            return path
    print("FAIL: nats-server not found: scripts/setup.sh test installs it (Debian package "
          "nats-server)", file=sys.stderr)
    sys.exit(1)


def free_tcp_port():
    return free_port(socket.SOCK_STREAM)


def server_port(taken):
    """A loopback TCP port for a server, free now and outside the kernel's ephemeral range
    (net.ipv4.ip_local_port_range), not in taken. A server stopped and started again on its
    ports (cluster-outage: every server down for 30 s) needs them free again; the kernel
    hands out ephemeral ports (a bind to port 0, every outgoing connection) only from that
    range, so no other socket can take one meanwhile unless it asks for that very port.
    free_tcp_port()'s ports are in the range ("address already in use" was seen with them
    when two runs shared the machine)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        lo = 32768
    rng = random.SystemRandom()
    for _ in range(1000 if lo > 12000 else 0):
        p = rng.randrange(10000, lo)
        if p in taken:
            continue
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind(("127.0.0.1", p))
        except OSError:
            continue
        finally:
            s.close()
        return p
    while True:  # an ephemeral range reaching down low: what the kernel hands out
        p = free_tcp_port()
        if p not in taken:
            return p


class NatsServer:
    def __init__(self, index, name, port, cluster_port, http_port, store_dir, conf):
        self.index = index
        self.name = name
        self.port = port
        self.cluster_port = cluster_port
        self.http_port = http_port
        self.store_dir = store_dir
        self.conf = conf
        self.proc = None
        self.log = None

    @property
    def url(self):
        return "nats://127.0.0.1:%d" % self.port

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def monitor(self, path, timeout=1.0):
        """The JSON of a monitoring endpoint (/varz, /jsz, /routez, ...), or None."""
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d%s" % (self.http_port, path),
                                        timeout=timeout) as r:
                return json.loads(r.read().decode())
        except (OSError, ValueError):
            return None


class NatsCluster:
    """n nats-server processes clustered on loopback, JetStream on, in a temporary dir."""

    def __init__(self, n=3, max_payload=1 << 20, workdir=None, cluster_name="spamflow-test",
                 verbose=False, extra="", keep_in=None):
        self.binary = find_nats_server()
        self.keep_in = keep_in  # at close: the servers' logs and /jsz copied there
        self.extra = extra  # appended to every server's configuration (authorization, ...)
        self.n = n
        self.max_payload = max_payload
        self.own_dir = workdir is None
        self.dir = workdir or tempfile.mkdtemp(prefix="spamflow-nats-")
        self.cluster_name = cluster_name
        self.verbose = verbose
        self.servers = []
        ports = set()

        def port():
            # distinct within the cluster: free_port() hands out what is free right now
            p = server_port(ports)
            ports.add(p)
            return p

        for i in range(n):
            name = "n%d" % (i + 1)
            store = os.path.join(self.dir, name, "jetstream")
            os.makedirs(store, exist_ok=True)
            self.servers.append(NatsServer(i, name, port(), port(), port(), store,
                                           os.path.join(self.dir, name + ".conf")))
        for s in self.servers:
            self._write_conf(s)

    def _write_conf(self, s):
        routes = ",\n    ".join("nats-route://127.0.0.1:%d" % o.cluster_port
                                for o in self.servers if o is not s)
        # max_memory_store/max_file_store: small and explicit, so a test never reserves a
        # share of the machine's disk; max_payload: the largest message a client may send
        # (flow batches are bounded at 256 KiB; snapshots are chunked below it).
        text = """server_name: %(name)s
listen: 127.0.0.1:%(port)d
http: 127.0.0.1:%(http)d
max_payload: %(max_payload)d
jetstream {
  store_dir: "%(store)s"
  max_memory_store: 268435456
  max_file_store: 2147483648
}
cluster {
  name: %(cluster)s
  listen: 127.0.0.1:%(cport)d
  routes: [
    %(routes)s
  ]
}
""" % {"name": s.name, "port": s.port, "http": s.http_port, "max_payload": self.max_payload,
       "store": s.store_dir, "cluster": self.cluster_name, "cport": s.cluster_port,
       "routes": routes}
        if self.n == 1:  # one server is no cluster (JetStream refuses one without routes)
            text = text[:text.index("cluster {")]
        with open(s.conf, "w") as f:
            f.write(text + self.extra)

    # ---- life cycle ----

    def start(self, i=None):
        """Start server i (all when None) on its ports and store."""
        for s in (self.servers if i is None else [self.servers[i]]):
            if s.running():
                continue
            s.log = open(os.path.join(self.dir, s.name + ".log"), "ab")
            s.proc = subprocess.Popen([self.binary, "-c", s.conf], stdout=s.log,
                                      stderr=subprocess.STDOUT)

    def kill(self, i):
        """SIGKILL server i (no goodbye to the cluster) and reap it."""
        s = self.servers[i]
        if s.running():
            s.proc.send_signal(signal.SIGKILL)
            s.proc.wait()
        self._closelog(s)

    def stop(self, i, timeout=10):
        """SIGTERM server i and wait for it; SIGKILL after timeout."""
        s = self.servers[i]
        if s.running():
            s.proc.send_signal(signal.SIGTERM)
            try:
                s.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                s.proc.kill()
                s.proc.wait()
        self._closelog(s)

    def restart(self, i, kill=False):
        (self.kill if kill else self.stop)(i)
        self.start(i)

    def reload(self, extra):
        """Replace what is appended to every server's configuration (authorization, ...) and
        have the running servers reload it (SIGHUP): permissions change for the clients
        already connected."""
        self.extra = extra
        for s in self.servers:
            self._write_conf(s)
            if s.running():
                s.proc.send_signal(signal.SIGHUP)

    def stop_all(self):
        for i in range(self.n):
            self.stop(i)

    def _closelog(self, s):
        if s.log is not None:
            s.log.close()
            s.log = None

    def close(self):
        if self.keep_in:
            # what a failure is read by: each server's JetStream view (streams, consumers
            # with their pending and redelivered counts) and its log
            for s in self.servers:
                j = s.monitor("/jsz?consumers=true&config=true", timeout=3)
                if j is not None:
                    with open(os.path.join(self.keep_in, s.name + "-jsz.json"), "w") as f:
                        json.dump(j, f, indent=1)
        for i in range(self.n):
            self.kill(i)
        if self.keep_in:
            for s in self.servers:
                log = os.path.join(self.dir, s.name + ".log")
                if os.path.exists(log):
                    shutil.copy(log, os.path.join(self.keep_in, s.name + ".log"))
        if self.own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        self.start()
        self.wait_ready()
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- state ----

    def urls(self, running_only=False):
        return ", ".join(s.url for s in self.servers if not running_only or s.running())

    def meta_leader(self, s):
        j = s.monitor("/jsz")
        if not j:
            return None
        if self.n == 1:  # standalone: JetStream is up once it answers
            return s.name if j.get("config") else None
        return (j.get("meta_cluster") or {}).get("leader") or None

    # After every server of the cluster stopped, nats-server 2.9.10 sometimes needs more
    # than 30 s to elect its JetStream meta leader again (seen twice in 2026-12 runs: still
    # "JetStream cluster no metadata leader" 24 s after the start); the tests that stop
    # them all wait this long instead.
    FULL_RESTART_TIMEOUT = 75

    def wait_ready(self, timeout=30):
        """Wait until every running server answers, has its routes to the other running ones
        and sees the same JetStream meta leader. Fails (exit 1) after timeout, with the logs.
        A wait longer than 10 s is printed, so a slow election shows in the test's log."""
        t0 = time.monotonic()
        deadline = t0 + timeout
        up = [s for s in self.servers if s.running()]
        while time.monotonic() < deadline:
            for s in up:
                if s.proc.poll() is not None:
                    self.fail("nats-server %s exited with %d" % (s.name, s.proc.returncode))
            leaders = set()
            ok = True
            for s in up:
                r = s.monitor("/routez")
                if r is None or r.get("num_routes", 0) < len(up) - 1:
                    ok = False
                    break
                leaders.add(self.meta_leader(s))
            if ok and len(leaders) == 1 and None not in leaders:
                took = time.monotonic() - t0
                if took > 10:
                    print("   the NATS cluster took %.1f s to become ready" % took, flush=True)
                return leaders.pop()
            time.sleep(0.1)
        self.fail("the NATS cluster did not become ready within %d s" % timeout)

    def stream_leader(self, stream, account="$G"):
        """The server_name leading stream (None when unknown or no leader)."""
        for s in self.servers:
            if not s.running():
                continue
            j = s.monitor("/jsz?acc=%s&streams=true" % urllib.request.quote(account))
            if not j:
                continue
            for acc in j.get("account_details") or []:
                for st in acc.get("stream_detail") or []:
                    if st.get("name") == stream:
                        leader = (st.get("cluster") or {}).get("leader")
                        if leader:
                            return leader
        return None

    def index_of(self, name):
        for s in self.servers:
            if s.name == name:
                return s.index
        raise KeyError(name)

    def fail(self, why):
        print("FAIL: " + why, file=sys.stderr)
        for s in self.servers:
            path = os.path.join(self.dir, s.name + ".log")
            if os.path.exists(path):
                with open(path, "rb") as f:
                    tail = f.read()[-3000:].decode(errors="replace")
                print("---- %s.log (tail) ----\n%s" % (s.name, tail), file=sys.stderr)
        self.close()
        sys.exit(1)


def stream_messages(url, stream, first, last, timeout=5.0):
    """Messages first..last of a JetStream stream, read one by one with the stream API's
    message get over the plain NATS protocol (no client library): a list of dicts with
    seq, subject, time, headers (bytes) and data (bytes); a sequence the stream does not
    hold (deleted, or past its end) is left out. For a failing test's dump."""
    host, port = url.replace("nats://", "").rsplit(":", 1)
    out = []
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        f = s.makefile("rb")
        f.readline()  # INFO
        s.sendall(b'CONNECT {"verbose":false,"pedantic":false,"headers":true,'
                  b'"no_responders":true}\r\nSUB _INBOX.spamflow-dump 1\r\n')
        api = f"$JS.API.STREAM.MSG.GET.{stream}"
        for seq in range(first, last + 1):
            req = json.dumps({"seq": seq}).encode()
            s.sendall(f"PUB {api} _INBOX.spamflow-dump {len(req)}\r\n".encode() + req +
                      b"\r\n")
            while True:
                line = f.readline()
                if not line:
                    raise OSError("connection closed")
                if line.startswith(b"PING"):
                    s.sendall(b"PONG\r\n")
                    continue
                if line.startswith(b"MSG") or line.startswith(b"HMSG"):
                    n = int(line.split()[-1])
                    payload = f.read(n + 2)[:n]
                    if line.startswith(b"HMSG"):
                        payload = payload[int(line.split()[-2]):]
                    break
            reply = json.loads(payload or b"{}")
            m = reply.get("message")
            if not m:
                continue
            out.append({"seq": m.get("seq"), "subject": m.get("subject"),
                        "time": m.get("time"),
                        "headers": base64.b64decode(m.get("hdrs") or ""),
                        "data": base64.b64decode(m.get("data") or "")})
    return out


def batch_head(data):
    """A flow batch's collector and number (cluster/wire.c: magic "SFCB"..., big-endian),
    or None."""
    if len(data) < 6 or data[:4] != b"SFCB" or data[4] != 1:
        return None
    n = data[5]
    if len(data) < 6 + n + 12:
        return None
    node = data[6:6 + n].decode(errors="replace")
    return node, int.from_bytes(data[6 + n + 4:6 + n + 12], "big")


if __name__ == "__main__":
    # A cluster by hand: python3 natsutil.py [n] [max_payload] runs one until Ctrl-C;
    # python3 natsutil.py n max_payload -- COMMAND ARGS... runs COMMAND against a fresh one
    # ("{urls}" in ARGS becomes the servers' URLs) and exits with its status.
    argv = sys.argv[1:]
    cmd = []
    if "--" in argv:
        cmd = argv[argv.index("--") + 1:]
        argv = argv[:argv.index("--")]
    n = int(argv[0]) if len(argv) > 0 else 3
    mp = int(argv[1]) if len(argv) > 1 else 1 << 20
    with NatsCluster(n, max_payload=mp) as c:
        if cmd:
            rc = subprocess.call([a.replace("{urls}", c.urls()) for a in cmd])
        else:
            print(c.urls(), flush=True)
            print("dir", c.dir, flush=True)
            rc = 0
            try:
                while True:
                    time.sleep(1)
            except KeyboardInterrupt:
                pass
    sys.exit(rc)

