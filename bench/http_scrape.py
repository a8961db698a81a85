#!/usr/bin/python3
"""What the HTTP endpoint costs collection (issue 16), two measurements:

cpu    spamflowd fed by bench/flowgen at a fixed rate, the same trial with nothing polling
       ("none"), with a client that GETs /metrics every second ("metrics": a Prometheus
       scrape), and one that GETs /metrics and /api/offenders every second ("metrics+api":
       the scrape and a page refreshing its table), in turn over --reps: CPU seconds per
       million records (utime+stime of spamflowd, all its threads) and loss (records
       decoded against records sent, the kernel's drop counter).
render a daemon holding --offenders offenders (one smtp-fanout alert per host, from
       sinktest.py's v5 stream) seen through --exporters exporters (UDP source ports):
       the time of a GET of /metrics and of /api/offenders (client side, so the HTTP round
       trip on loopback is included; median and max of --gets), and their sizes.

render-flowgen  the same figures on the state flowgen's --records at --rate leave (its
       bots fan out far enough for HyperLogLog windows, which make `offenders` dearer).
Each render figure also has the main thread's CPU per request (/proc/PID/task/PID/stat over
--gets requests): what the flows lose to it.

"metrics+page" (--modes none,metrics+page): a scrape a second and the page open, a headless
       chromium (bench/page_open.mjs, on the generator's core) with the offenders page and
       a host page refreshing; --history gives every trial's daemon a history store, so the
       host page has a timeline to fetch.

usage: bench/http_scrape.py --build build [cpu|render|render-flowgen|all] [--rate R]
       [--records N] [--reps N] [--gets N] [--modes none,metrics,...] [--history]
"""
import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tests", "system"))
import harness  # noqa: E402
import sinktest  # noqa: E402


def tcp_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Daemon:
    def __init__(self, spamflowd, tmp, core=None, extra="", history=""):
        self.dir = tempfile.mkdtemp(dir=tmp, prefix="spamflowd-")
        self.port = harness.free_port()
        self.http = tcp_port()
        conf = os.path.join(self.dir, "spamflow.conf")
        with open(conf, "w") as f:
            f.write(f"[collector]\nrcvbuf = {32 << 20}\n[control]\nsocket =\n"
                    f"[http]\nlisten = 127.0.0.1:{self.http}\n{extra}")
        self.out = open(os.path.join(self.dir, "stdout"), "w+")
        self.err = open(os.path.join(self.dir, "stderr"), "w+")
        self.p = subprocess.Popen(harness.taskset(core, [spamflowd, "--state=", f"--history={history}", "-c", conf, "-l",
                                                         f"127.0.0.1:{self.port}",
                                                         "--stats-interval", "0", "--json"]),
                                  stdout=self.out, stderr=self.err)
        deadline = time.time() + 10
        while harness.udp_sock(self.port) is None or not self.get("/metrics", quiet=True):
            if self.p.poll() is not None or time.time() > deadline:
                self.err.seek(0)
                sys.exit(f"spamflowd did not start: {self.err.read()[-2000:]}")
            time.sleep(0.05)
        time.sleep(0.2)
        self.cpu0 = harness.proc_cpu(self.p.pid)

    def get(self, path, quiet=False):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http}{path}", timeout=10) as r:
                return r.read()
        except OSError:
            if quiet:
                return None
            raise

    def drain(self):
        deadline, last = time.time() + 30, -1
        while time.time() < deadline:
            q = harness.udp_sock(self.port)
            c = harness.proc_cpu(self.p.pid)
            if q is not None and q[0] == 0 and c == last:
                break
            last = c
            time.sleep(0.1)

    def stop(self):
        self.drain()
        cpu = harness.proc_cpu(self.p.pid) - self.cpu0
        self.p.send_signal(signal.SIGTERM)
        self.p.wait(timeout=60)
        self.out.seek(0)
        d = json.loads(self.out.read())
        return {"cpu_s": cpu, "records": d["totals"]["records"],
                "kernel_drops": d["listener"]["kernel_drops"], "http": d.get("http", {})}


MODES = {"none": (), "metrics": ("/metrics",), "metrics+api": ("/metrics", "/api/offenders"),
         # a scrape a second and the page open in a headless chromium (bench/page_open.mjs)
         "metrics+page": ("/metrics",)}
PAGE_MODES = ("metrics+page",)


class Page:
    """Headless chromium with the offenders page and a host page open (page_open.mjs), on
    the generator's core: its CPU is not spamflowd's, and the collector keeps its core."""

    def __init__(self, a, http):
        self.p = subprocess.Popen(harness.taskset(a.gen_core, ["node", os.path.join(
            HERE, "page_open.mjs"), f"http://127.0.0.1:{http}"]), stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True)
        line = self.p.stdout.readline()
        if '"ready"' not in line:
            sys.exit("page_open.mjs did not start (chromium: scripts/setup.sh test installs "
                     "it and playwright-core)")

    def stop(self):
        self.p.stdin.close()
        out = self.p.stdout.readline()
        self.p.wait(timeout=30)
        return json.loads(out) if out.strip() else {}


def cpu_trial(a, mode):
    history = f"{a.tmp}/history-{mode}-{time.monotonic_ns()}" if a.history else ""
    d = Daemon(a.spamflowd, a.tmp, a.coll_core, history=history)
    page = Page(a, d.http) if mode in PAGE_MODES else None
    stop = threading.Event()
    gets = []

    def poll():
        while not stop.wait(1.0):
            t = time.monotonic()
            for path in MODES[mode]:
                d.get(path)
            gets.append(time.monotonic() - t)

    t = threading.Thread(target=poll)
    if MODES[mode]:
        t.start()
    g = harness.flowgen(a, a.version, d.port, a.rate, a.records, a.gen_core)
    stop.set()
    if MODES[mode]:
        t.join()
    pr = page.stop() if page is not None else {}
    r = d.stop()
    r.update(sent=g["records"], achieved=g["achieved_rate"], scrapes=len(gets),
             loss=1 - r["records"] / g["records"], page=pr)
    r["cpu_s_per_M"] = r["cpu_s"] / (r["records"] / 1e6)
    print(f"  {mode:11} rate {g['achieved_rate']/1e6:.3f}M/s "
          f"records {r['records']} loss {r['loss']*100:.3f}% kernel_drops {r['kernel_drops']} "
          f"cpu {r['cpu_s']:.2f}s = {r['cpu_s_per_M']:.4f} s/M  scrapes {len(gets)}"
          + (f"  page: {pr.get('requests')} requests {pr.get('by_path')}, host {pr.get('host')}, "
             f"{len(pr.get('errors', []))} console errors" if page is not None else ""),
          flush=True)
    return r


def render(a):
    d = Daemon(a.spamflowd, a.tmp)
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(a.exporters)]
    seq = [0] * a.exporters
    t0 = time.monotonic()
    for host in range(a.offenders):
        e = host % a.exporters
        dgs, seq[e] = sinktest.v5_datagrams(host, seq[e],
                                            int((time.monotonic() - t0) * 1000) + 100000)
        for dg in dgs:
            socks[e].sendto(dg, ("127.0.0.1", d.port))
        if host % 50 == 49:
            time.sleep(0.02)  # under the receive buffer
    time.sleep(1.0)
    return measure(a, d)


def main_thread_cpu(pid):
    """utime + stime of the main thread alone (it renders every reply), in seconds."""
    with open(f"/proc/{pid}/task/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / harness.CLK


def measure(a, d):
    st = json.loads(d.get("/api/stats"))
    print(f"  held: {st['analyzer']['offenders_active']} offenders, "
          f"{len(st['exporters'])} exporters, {st['totals']['records']} records", flush=True)
    out = {}
    for path in ("/metrics", "/api/offenders"):
        times, size = [], 0
        cpu0 = main_thread_cpu(d.p.pid)
        for _ in range(a.gets):
            # apart enough that the server's share limit (a render of T holds the next
            # back for 9 T) does not count in the time
            time.sleep(0.1)
            t = time.perf_counter()
            size = len(d.get(path))
            times.append(time.perf_counter() - t)
        cpu = (main_thread_cpu(d.p.pid) - cpu0) / a.gets
        out[path] = {"median_ms": statistics.median(times) * 1e3, "max_ms": max(times) * 1e3,
                     "min_ms": min(times) * 1e3, "bytes": size,
                     "main_thread_cpu_ms": cpu * 1e3}
        print(f"  GET {path}: median {out[path]['median_ms']:.2f} ms, min "
              f"{out[path]['min_ms']:.2f}, max {out[path]['max_ms']:.2f} ms over {a.gets}, "
              f"{size} bytes; main thread CPU {cpu * 1e3:.2f} ms a request", flush=True)
    d.stop()
    return out


def flowgen_state(a):
    """The render figures on what --rate x --records of flowgen's mix leaves behind."""
    d = Daemon(a.spamflowd, a.tmp)
    harness.flowgen(a, a.version, d.port, a.rate, a.records, None)
    time.sleep(1.0)
    return measure(a, d)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("what", nargs="?", default="all",
                    choices=["cpu", "render", "render-flowgen", "all"])
    ap.add_argument("--build", required=True)
    ap.add_argument("--rate", type=int, default=1000000)
    ap.add_argument("--records", type=int, default=10000000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--version", type=harness.parse_version, default=9)
    ap.add_argument("--exporters", type=int, default=4, help="flowgen exporters (cpu); "
                    "exporters of the render state")
    ap.add_argument("--offenders", type=int, default=1000)
    ap.add_argument("--gets", type=int, default=20)
    ap.add_argument("--modes", default="none,metrics,metrics+api",
                    help="cpu: the trials, in turn (" + ", ".join(MODES) + ")")
    ap.add_argument("--history", action="store_true",
                    help="cpu: every trial's daemon keeps a history store ([history] dir)")
    ap.add_argument("--json")
    a = ap.parse_args()
    modes = a.modes.split(",")
    if any(m not in MODES for m in modes) or "none" not in modes:
        ap.error(f"--modes: of {', '.join(MODES)}, with none")
    a.spamflowd = os.path.join(a.build, "daemon", "spamflowd")
    a.flowgen = os.path.join(a.build, "bench", "flowgen")
    a.domains, a.seed, a.mix = 1, 1, "default"
    a.gen_core, a.coll_core = 0, 1
    a.tmp = tempfile.mkdtemp(prefix="spamflow-http-bench-")
    res = {}
    if a.what in ("cpu", "all"):
        print(f"cpu: v{a.version}, {a.records} records at {a.rate} rec/s, {a.reps} reps each",
              flush=True)
        runs = {m: [] for m in modes}
        for _ in range(a.reps):
            for m in modes:
                runs[m].append(cpu_trial(a, m))
        for k, v in runs.items():
            c = [r["cpu_s_per_M"] for r in v]
            print(f"  {k}: median {statistics.median(c):.4f} s/M (min {min(c):.4f}, max "
                  f"{max(c):.4f}), worst loss {max(r['loss'] for r in v)*100:.3f}%")
        m0 = statistics.median(r["cpu_s_per_M"] for r in runs["none"])
        for m in [x for x in modes if x != "none"]:
            m1 = statistics.median(r["cpu_s_per_M"] for r in runs[m])
            print(f"  {m} / none: {m1 / m0:.3f}")
        res["cpu"] = runs
    if a.what in ("render", "all"):
        if a.what == "render" or a.exporters == 4:
            a.exporters = 100 if a.exporters == 4 else a.exporters
        print(f"render: {a.offenders} offenders, {a.exporters} exporters", flush=True)
        res["render"] = render(a)
    if a.what == "render-flowgen":
        print(f"render after flowgen: v{a.version}, {a.records} records at {a.rate} rec/s, "
              f"{a.exporters} exporters", flush=True)
        res["render-flowgen"] = flowgen_state(a)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)
    subprocess.run(["rm", "-rf", a.tmp])


if __name__ == "__main__":
    main()
