#!/usr/bin/python3
"""Soak test (issue 7): spamflowd at a steady paced rate for --minutes (default 30) with the
analyzer, the JSON and CSV alert sinks, evidence files (small caps) and the control socket
on, and a configuration that makes state churn many times over: 1 s slices and a 60 s long
window, so idle hosts are forgotten 61 s after their last flow; exporters and templates
expire after 120 s.

The load is bench/flowgen run in successive chunks (--chunk seconds each). flowgen cycles a
fixed pool of prebuilt datagrams, so one process always shows the same hosts; every chunk
therefore gets its own --seed (a fresh draw of ~30,000 submission clients out of --hosts),
its own exporter sockets (new source ports: new sessions and templates; the old ones expire)
and the next NetFlow version of --versions. Spam bots (10.200.x.x, the same addresses in
every chunk) alternate: 100 bots in every 4th chunk, 20 in the others, so 80 of them are
raised, go quiet and are cleared again, while 20 stay offenders and are updated.

Every minute: VmRSS, VmHWM, RssAnon and CPU of the daemon (from /proc) and its `stats` over
the control socket, one table row. At the end: RSS at the end of warm-up, final and max RSS
after it, the least-squares slope over the minutes after warm-up, records sent / processed /
lost, alerts, and a verdict: no growth when both (a) the slope projected over the minutes
after warm-up and (b) the median RSS of the last 5 samples minus the median of the first 5
after warm-up stay within the tolerance. Medians, not single samples: the tracked population
swings by +-5 % from chunk to chunk, and RSS follows the largest population seen so far
(freed heap stays resident), so one sample taken in a trough makes a false "growth". The
max RSS after warm-up is printed but not judged, for the same reason.

    bench/soak.py                         # 30 minutes at 50,000 records/s
    bench/soak.py --minutes 3 --rate 20000
"""
import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

CLK = os.sysconf("SC_CLK_TCK")
HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(HERE)


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def proc_status(pid):
    """VmRSS, VmHWM, RssAnon of pid in KiB."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key = line.split(":", 1)[0]
            if key in ("VmRSS", "VmHWM", "RssAnon"):
                out[key] = int(line.split()[1])
    return out


def proc_cpu(pid):
    """utime + stime of pid in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def control(path, command, timeout=10.0):
    """One request on a fresh connection; (reply as a dict, seconds it took)."""
    t = time.monotonic()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(path)
        s.sendall(command.encode() + b"\n")
        buf = bytearray()
        while not buf.endswith(b"\n"):
            chunk = s.recv(1 << 16)
            if not chunk:
                break
            buf += chunk
    reply = json.loads(buf)
    if not reply.get("ok"):
        raise RuntimeError(f"control {command}: {reply.get('error')}")
    return reply, time.monotonic() - t


def slope(xs, ys):
    """Least-squares slope of ys over xs (0 when fewer than 2 points)."""
    return fit(xs, ys)[0]


def fit(xs, ys):
    """(least-squares slope, its standard error); (0, 0) when it cannot be had."""
    n = len(xs)
    if n < 2:
        return 0.0, 0.0
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return 0.0, 0.0
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    if n < 3:
        return b, 0.0
    res = sum((y - my - b * (x - mx)) ** 2 for x, y in zip(xs, ys))
    return b, (res / (n - 2) / sxx) ** 0.5


def write_config(a, d, port):
    conf = os.path.join(d, "soak.conf")
    evidence = ""
    if a.evidence:
        evidence = (f"[evidence]\ndir = {d}/evidence\nmax_flows = 200\nmax_bytes = 4M\n"
                    "memory_cap = 8M\n")
    with open(conf, "w") as f:
        f.write(f"""# bench/soak.py: state that churns many times within the soak
[collector]
listen = 127.0.0.1:{port}
# sessions of finished flowgen chunks (new source ports) are forgotten
exporter_timeout = 120
template_timeout = 120
[daemon]
stats_interval = 60
[control]
socket = {d}/run/control.sock
[state]
# its own state file, snapshotted every 30 s: the soak covers the snapshots too
file = {d}/state
snapshot_interval = 30
[analyzer]
# 1 s slices, 10 s short and 60 s long window: a host idle for 61 s is dropped
slice = 1
short_window = 10
long_window = 60
# bots switch to the HyperLogLog estimate
exact_cap = 256
max_hosts = {a.max_hosts}
memory_cap = {a.memory_cap}
[alerts]
update_interval = 60
hold = 20
[sinks]
json = {d}/alerts.jsonl
csv = {d}/alerts.csv
{evidence}""")
    return conf


class Driver(threading.Thread):
    """Runs flowgen chunk after chunk until the deadline, at a steady paced rate."""

    def __init__(self, a, port, t0, deadline, log):
        super().__init__(daemon=True)
        self.a, self.port, self.t0, self.deadline, self.log = a, port, t0, deadline, log
        self.chunks = []  # flowgen's JSON line per chunk, plus what we asked
        self.error = None
        self.proc = None
        self.stop = False

    def run(self):
        a = self.a
        versions = [int(v) for v in a.versions.split(",")]
        i = 0
        try:
            while not self.stop:
                now = time.monotonic()
                end = min(self.t0 + (i + 1) * a.chunk, self.deadline)
                if end - now < 1.0:
                    if self.t0 + (i + 1) * a.chunk >= self.deadline:
                        break
                    i += 1  # late by a whole chunk (never expected): skip its slot
                    continue
                records = int(a.rate * (end - now))
                version = versions[i % len(versions)]
                bots = 100 if i % 4 == 0 else 20
                seed = a.seed * 100000 + i
                argv = [a.flowgen, "-v", str(version), "-d", f"127.0.0.1:{self.port}",
                        "-r", str(a.rate), "-n", str(records), "-e", str(a.exporters),
                        "--domains", str(a.domains), "--template-every", "100",
                        "--seed", str(seed), "--hosts", str(a.hosts),
                        "--mail-share", str(a.mail_share), "--bots", str(bots),
                        "--bot-share", "0.05", "--pool", str(a.pool)]
                self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE,
                                             stderr=subprocess.PIPE, text=True)
                out, err = self.proc.communicate()
                if self.proc.returncode != 0:
                    raise RuntimeError(f"flowgen exited {self.proc.returncode}: {err.strip()}")
                r = json.loads(out.strip().splitlines()[-1])
                r.update(chunk=i, seed=seed, bots=bots, started=now - self.t0)
                self.chunks.append(r)
                if a.verbose:
                    print(f"  chunk {i}: v{version} seed {seed} bots {bots}: "
                          f"{r['records']} records at {r['achieved_rate']:.0f}/s, "
                          f"send errors {r['send_errors']}", file=self.log, flush=True)
                i += 1
        except Exception as e:  # reported by the main thread
            self.error = e

    def kill(self):
        self.stop = True
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()


def sample(a, pid, sock, minute, t_rel, prev):
    st = proc_status(pid)
    cpu = proc_cpu(pid)
    reply, took = control(sock, "stats")
    an = reply["analyzer"]
    tot = reply["totals"]
    fs = reply.get("flowstore", {})
    ev = reply.get("evidence", {})
    sinks = {s["kind"]: s for s in reply["sinks"]}
    s = {
        "minute": minute,
        "t": round(t_rel, 1),
        "rss_kb": st["VmRSS"],
        "hwm_kb": st["VmHWM"],
        "anon_kb": st.get("RssAnon", 0),
        "cpu_s": cpu,
        "records": tot["records"],
        "datagrams": tot["datagrams"],
        "kernel_drops": reply["listener"]["kernel_drops"],
        "recv_errors": reply["listener"]["recv_errors"],
        "sessions": len(reply["exporters"]),
        "templates": sum(e["templates_active"] for e in reply["exporters"]),
        "seq_lost": sum(e["seq_lost"] for e in reply["exporters"]),
        "exporters_expired": tot["exporters_expired"],
        "exporters_refused": tot["exporters_refused"],
        "hosts": an["hosts_tracked"],
        "hosts_created": an["hosts_created"],
        "hosts_expired": an["hosts_expired"],
        "hosts_evicted": an["hosts_evicted"],
        "hosts_estimated": an["hosts_estimated"],
        "mem_bytes": an["mem_bytes"],
        "offenders": an["offenders_active"],
        "raised": an["events_raised"],
        "updated": an["events_updated"],
        "cleared": an["events_cleared"],
        "sink_json": sinks.get("json", {}).get("events", 0),
        "sink_csv": sinks.get("csv", {}).get("events", 0),
        "sink_errors": sum(x["errors"] + x["dropped"] for x in reply["sinks"]),
        "flowstore_bytes": fs.get("flowstore_bytes", 0),
        "flowstore_rings": fs.get("flowstore_rings", 0),
        "evidence_files": ev.get("evidence_files", 0),
        "evidence_bytes": ev.get("evidence_bytes", 0),
        "control_ms": round(took * 1000, 1),
    }
    dt = t_rel - prev["t"] if prev else 0
    s["rec_per_s"] = (s["records"] - prev["records"]) / dt if prev and dt > 0 else 0
    s["cpu_pct"] = 100 * (cpu - prev["cpu_s"]) / dt if prev and dt > 0 else 0
    return s


HEAD = ("  min RSS MiB HWM MiB anon MiB  CPU%   Mrec   rec/s   hosts est MiB  created  expired"
        "  evicted  offend  raised/upd/clr  sess  tmpl  exp.exp  kdrop  sink ev fstore MiB"
        "  evid  ctl ms")


def row(s):
    mb = lambda kb: kb / 1024
    events = f"{s['raised']}/{s['updated']}/{s['cleared']}"
    return (f"{s['minute']:5d}  {mb(s['rss_kb']):6.1f}  {mb(s['hwm_kb']):6.1f}  "
            f"{mb(s['anon_kb']):7.1f}  {s['cpu_pct']:4.0f}  {s['records'] / 1e6:5.1f}  "
            f"{s['rec_per_s']:6.0f}  {s['hosts']:6d}  {s['mem_bytes'] / 2**20:6.1f}  "
            f"{s['hosts_created']:7d}  {s['hosts_expired']:7d}  {s['hosts_evicted']:7d}  "
            f"{s['offenders']:6d}  {events:>14}  {s['sessions']:4d}  {s['templates']:4d}  {s['exporters_expired']:7d}  "
            f"{s['kernel_drops']:5d}  {s['sink_json']:7d}  "
            f"{s['flowstore_bytes'] / 2**20:9.1f}  {s['evidence_files']:4d}  "
            f"{s['control_ms']:6.1f}")


def build(a):
    if a.no_build:
        return
    if not os.path.exists(os.path.join(a.build, "build.ninja")):
        subprocess.run(["meson", "setup", a.build, SRC, "-Dbuildtype=debugoptimized"],
                       check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["ninja", "-C", a.build, "daemon/spamflowd", "bench/flowgen"], check=True,
                   stdout=subprocess.DEVNULL)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=int, default=30, help="length of the soak (default 30)")
    p.add_argument("--rate", type=int, default=50000, help="records/s, paced (default 50000)")
    p.add_argument("--warmup", type=int, default=5,
                   help="minutes of warm-up (default 5; halved runs shorter than that)")
    p.add_argument("--tolerance-kb", type=int, default=0,
                   help="allowed growth after warm-up (default: 5%% of the warm-up RSS, "
                        "at least 2048 KiB)")
    p.add_argument("--chunk", type=int, default=30,
                   help="seconds per flowgen process (new seed, sessions, version)")
    p.add_argument("--versions", default="10,9,5", help="NetFlow versions, one per chunk in turn")
    p.add_argument("--hosts", type=int, default=4000000,
                   help="internal address space each chunk draws its hosts from")
    p.add_argument("--mail-share", type=float, default=0.3,
                   help="flowgen --mail-share: half of it are submission flows, one tracked "
                        "host each (default 0.3)")
    p.add_argument("--pool", type=int, default=8192, help="flowgen --pool (default 8192)")
    p.add_argument("--exporters", type=int, default=4, help="exporters per chunk")
    p.add_argument("--domains", type=int, default=2, help="observation domains per exporter")
    p.add_argument("--seed", type=int, default=1, help="base seed (chunk i: seed*100000+i)")
    p.add_argument("--memory-cap", default="64M", help="[analyzer] memory_cap (default 64M)")
    p.add_argument("--max-hosts", type=int, default=500000, help="[analyzer] max_hosts")
    p.add_argument("--no-evidence", dest="evidence", action="store_false",
                   help="evidence files off (default on: 8 MiB flow store, 4 MiB of files)")
    p.add_argument("--build", default=os.path.join(SRC, "build-soak"),
                   help="meson build directory (default build-soak, set up when missing)")
    p.add_argument("--no-build", action="store_true", help="use --build as it is")
    p.add_argument("--json", metavar="FILE", help="write every sample and the summary here")
    p.add_argument("--keep", action="store_true",
                   help="keep the temp dir (config, daemon log, alert files)")
    p.add_argument("-v", "--verbose", action="store_true", help="one line per flowgen chunk")
    a = p.parse_args()
    if a.minutes < 2 or a.rate < 1 or a.chunk < 5:
        p.error("--minutes >= 2, --rate >= 1 and --chunk >= 5 are needed")
    warm = a.warmup if a.warmup < a.minutes else max(1, a.minutes // 2)

    build(a)
    spamflowd = os.path.join(a.build, "daemon", "spamflowd")
    a.flowgen = os.path.join(a.build, "bench", "flowgen")
    d = tempfile.mkdtemp(prefix="spamflow-soak-")
    port = free_port()
    conf = write_config(a, d, port)
    sock = os.path.join(d, "run", "control.sock")
    log = open(os.path.join(d, "spamflowd.log"), "w")
    daemon = subprocess.Popen([spamflowd, "-c", conf], stdout=log, stderr=subprocess.STDOUT)
    driver = None
    samples = []
    try:
        for _ in range(100):
            if os.path.exists(sock) or daemon.poll() is not None:
                break
            time.sleep(0.05)
        if daemon.poll() is not None:
            sys.exit(f"soak: spamflowd exited {daemon.returncode}, see {d}/spamflowd.log")
        print(f"# bench/soak.py: {a.minutes} min at {a.rate} records/s, chunks of {a.chunk} s "
              f"(versions {a.versions}), {a.exporters} exporters x {a.domains} domains, "
              f"evidence {'on' if a.evidence else 'off'}; warm-up {warm} min", flush=True)
        print(f"# spamflowd pid {daemon.pid}, config {conf}", flush=True)
        print(HEAD, flush=True)
        load0 = os.getloadavg()
        t0 = time.monotonic()
        deadline = t0 + a.minutes * 60
        driver = Driver(a, port, t0, deadline, sys.stdout)
        samples.append(sample(a, daemon.pid, sock, 0, 0.0, None))
        print(row(samples[-1]), flush=True)
        driver.start()
        for m in range(1, a.minutes + 1):
            while True:
                left = t0 + m * 60 - time.monotonic()
                if left <= 0:
                    break
                time.sleep(min(left, 1.0))
                if driver.error is not None:
                    raise driver.error
                if daemon.poll() is not None:
                    raise RuntimeError(f"spamflowd exited {daemon.returncode}")
            samples.append(sample(a, daemon.pid, sock, m, time.monotonic() - t0, samples[-1]))
            print(row(samples[-1]), flush=True)
        driver.join()
        if driver.error is not None:
            raise driver.error
        time.sleep(2)  # let the socket drain
        final, _ = control(sock, "stats")
        load1 = os.getloadavg()
    except KeyboardInterrupt:
        print("soak: interrupted", file=sys.stderr)
        if driver is not None:
            driver.kill()
        daemon.terminate()
        daemon.wait()
        sys.exit(130)
    except Exception as e:
        if driver is not None:
            driver.kill()
        daemon.terminate()
        daemon.wait()
        sys.exit(f"soak: {e} (daemon log: {d}/spamflowd.log)")

    daemon.send_signal(signal.SIGTERM)
    daemon.wait(timeout=30)
    log.close()

    # ---- summary ----
    sent = sum(c["records"] for c in driver.chunks)
    send_errors = sum(c["send_errors"] for c in driver.chunks)
    got = final["totals"]["records"]
    lost = sent - got
    an = final["analyzer"]
    sinks = {s["kind"]: s for s in final["sinks"]}
    with open(os.path.join(d, "alerts.jsonl")) as f:
        json_lines = sum(1 for _ in f)
    with open(os.path.join(d, "alerts.csv")) as f:
        csv_lines = sum(1 for _ in f) - 1  # header
    after = [s for s in samples if s["minute"] >= warm]
    w = after[0]
    mx = max(after, key=lambda s: s["rss_kb"])
    xs = [s["minute"] for s in after]
    k, k_se = fit(xs, [s["rss_kb"] for s in after])
    span = a.minutes - warm
    tol = a.tolerance_kb or max(2048, int(0.05 * w["rss_kb"]))
    growth_max = mx["rss_kb"] - w["rss_kb"]
    growth_slope = k * span
    nmed = max(1, min(5, len(after) // 2))
    med_first = statistics.median(s["rss_kb"] for s in after[:nmed])
    med_last = statistics.median(s["rss_kb"] for s in after[-nmed:])
    growth_med = med_last - med_first
    ok = growth_slope <= tol and growth_med <= tol
    elapsed = samples[-1]["t"]

    def trend(key, scale=1):
        return slope(xs, [s[key] / scale for s in after])

    print()
    print(f"warm-up RSS (minute {warm}):   {w['rss_kb'] / 1024:.1f} MiB")
    print(f"final RSS (minute {a.minutes}):    {samples[-1]['rss_kb'] / 1024:.1f} MiB "
          f"(VmHWM {samples[-1]['hwm_kb'] / 1024:.1f} MiB)")
    print(f"max RSS after warm-up:  {mx['rss_kb'] / 1024:.1f} MiB at minute {mx['minute']} "
          f"(+{growth_max} KiB over the warm-up RSS)")
    print(f"RSS slope, minutes {warm}..{a.minutes}: {k:+.1f} KiB/min (standard error "
          f"{k_se:.1f}; {growth_slope:+.0f} KiB over {span} min)")
    print(f"median RSS, minutes {after[0]['minute']}..{after[nmed - 1]['minute']}: "
          f"{med_first / 1024:.1f} MiB; minutes {after[-nmed]['minute']}..{a.minutes}: "
          f"{med_last / 1024:.1f} MiB ({growth_med:+.0f} KiB)")
    print(f"state slopes, per min: hosts {trend('hosts'):+.0f}, analyzer estimate "
          f"{trend('mem_bytes', 1024):+.1f} KiB, flow store {trend('flowstore_bytes', 1024):+.1f} "
          f"KiB, sessions {trend('sessions'):+.2f}, offenders {trend('offenders'):+.2f}, "
          f"evidence files {trend('evidence_files'):+.2f}")
    rest = slope(xs, [s["anon_kb"] - (s["mem_bytes"] + s["flowstore_bytes"]) / 1024
                      for s in after])
    print(f"RssAnon not covered by the analyzer estimate and the flow store: {rest:+.1f} KiB/min")
    print(f"records: sent {sent:,} in {len(driver.chunks)} chunks "
          f"({sent / elapsed:,.0f}/s average), processed {got:,}, lost {lost:,} "
          f"({100 * lost / sent if sent else 0:.4f} %); kernel drops "
          f"{final['listener']['kernel_drops']}, send errors {send_errors}")
    print(f"hosts: created {an['hosts_created']:,}, expired {an['hosts_expired']:,}, evicted "
          f"{an['hosts_evicted']:,}, tracked at the end {an['hosts_tracked']:,}; exporter "
          f"sessions expired {final['totals']['exporters_expired']}")
    print(f"alerts: raised {an['events_raised']}, updated {an['events_updated']}, cleared "
          f"{an['events_cleared']}; sinks json {sinks['json']['events']} "
          f"({json_lines} lines), csv {sinks['csv']['events']} ({csv_lines} records), "
          f"errors {sum(s['errors'] + s['dropped'] for s in final['sinks'])}")
    fs = final.get("flowstore")
    if fs is not None:
        ev = final.get("evidence", {})
        print(f"evidence: flow store rings evicted by its cap {fs['flowstore_rings_evicted']:,}, "
              f"expired by age {fs['flowstore_rings_expired']:,}; files written "
              f"{ev.get('evidence_files_written', 0)}, pruned {ev.get('evidence_files_pruned', 0)}, "
              f"write errors {ev.get('evidence_write_errors', 0)}")
    print(f"control: stats answered in {max(s['control_ms'] for s in samples):.1f} ms at most")
    print(f"load average: {load0[0]:.1f} at the start, {load1[0]:.1f} at the end")
    print(f"verdict: {'PASS' if ok else 'FAIL'}: growth after warm-up {growth_slope:+.0f} KiB "
          f"(slope x {span} min) and {growth_med:+.0f} KiB (medians), tolerance {tol} KiB")

    if a.json:
        with open(a.json, "w") as f:
            json.dump({"args": {k2: v for k2, v in vars(a).items()}, "samples": samples,
                       "chunks": driver.chunks, "final_stats": final,
                       "summary": {"warmup_min": warm, "warmup_rss_kb": w["rss_kb"],
                                   "final_rss_kb": samples[-1]["rss_kb"],
                                   "max_rss_after_warmup_kb": mx["rss_kb"],
                                   "slope_kb_per_min": k, "slope_se": k_se,
                                   "median_growth_kb": growth_med, "sent": sent, "processed": got,
                                   "lost": lost, "tolerance_kb": tol, "pass": ok}}, f,
                      indent=1)
    if a.keep:
        print(f"kept {d}")
    else:
        shutil.rmtree(d, ignore_errors=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
