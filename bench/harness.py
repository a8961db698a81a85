#!/usr/bin/python3
"""The collector benchmark behind bench/run.sh (issues 6 and 12): spamflowd, nfdump
(nfcapd; sfcapd for sFlow), pmacct (nfacctd; sfacctd for sFlow) and a bare recvmmsg receiver
side by side, for NetFlow v5, v9, IPFIX and sFlow v5, fed by bench/flowgen over loopback.
Per collector and version: the highest paced rate with < 0.1 % loss (binary search), CPU
seconds per million records at fixed rates, and peak RSS (VmHWM); each the median of --reps
repetitions with its spread. Then the in-memory decode/analyzer/RSS figures of
bench/decode_bench. Prints one table and the ratios to nfdump's collector for the version.
A collector that does not speak a version (nfcapd and sFlow, sfcapd and NetFlow) skips it.
pmacct's daemons aggregate to a CSV; their loss is read from the packet total, since they
report no record count (in sFlow one flow sample is one packet: flowgen's packet total is
its record total).
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
import time

LOSS_OK = 0.001  # < 0.1 %
CLK = os.sysconf("SC_CLK_TCK")
VNAME = {5: "v5", 9: "v9", 10: "IPFIX", "sflow": "sFlow"}
# which versions each collector speaks; the nfdump collector each version is compared with
SPEAKS = {"nfcapd": (5, 9, 10), "nfacctd": (5, 9, 10), "sfcapd": ("sflow",),
          "sfacctd": ("sflow",)}
REFERENCE = {5: "nfcapd", 9: "nfcapd", 10: "nfcapd", "sflow": "sfcapd"}


def speaks(coll, version):
    return version in SPEAKS.get(coll, (5, 9, 10, "sflow"))


def parse_version(text):
    t = text.strip().lower()
    if t in ("sflow", "sflow5"):
        return "sflow"
    return 10 if t == "ipfix" else int(t)


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def proc_cpu(pid):
    """utime + stime of pid, in seconds (children not included)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def proc_hwm(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def proc_tree(pid):
    """pid and its live descendants (nfacctd runs its plugins as child processes)."""
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        kids.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def tree_cpu(pid):
    total = 0.0
    for p in proc_tree(pid):
        try:
            total += proc_cpu(p)
        except (OSError, IndexError, ValueError):
            pass
    return total


def udp_sock(port):
    """(rx_queue bytes, drops) of the 127.0.0.1:port UDP socket from /proc/net/udp."""
    key = f"0100007F:{port:04X}"
    with open("/proc/net/udp") as f:
        for line in f:
            parts = line.split()
            if len(parts) > 12 and parts[1] == key:
                return int(parts[4].split(":")[1], 16), int(parts[-1])
    return None


def taskset(core, argv):
    return (["taskset", "-c", str(core)] + argv) if core is not None else argv


class Collector:
    """Start, stop and read one collector process."""

    def __init__(self, name, args, tmp):
        self.name, self.args, self.tmp = name, args, tmp

    def start(self, port, core):
        self.port = port
        self.dir = tempfile.mkdtemp(dir=self.tmp, prefix=self.name + "-")
        self.err = open(os.path.join(self.dir, "stderr"), "w+")
        self.out = open(os.path.join(self.dir, "stdout"), "w+")
        a = self.args
        if self.name == "spamflowd":
            conf = os.path.join(self.dir, "spamflow.conf")
            with open(conf, "w") as f:
                f.write("[collector]\nrcvbuf = %d\n[control]\nsocket =\n" % a.rcvbuf)
            argv = [a.spamflowd, "--state=", "--history=", "-c", conf, "-l", f"127.0.0.1:{port}", "--stats-interval", "0",
                    "--json", "--alerts", os.path.join(self.dir, "alerts.jsonl")]
        elif self.name in ("nfcapd", "sfcapd"):
            # sfcapd is nfcapd's sFlow twin (Debian nfdump-sflow): same options, same files
            argv = [getattr(a, self.name), "-w", self.dir, "-p", str(port), "-b", "127.0.0.1",
                    "-B", str(a.rcvbuf), "-t", "3600"]
        elif self.name in ("nfacctd", "sfacctd"):
            # pmacct's print plugin, its table written once at exit as CSV. nfacctd
            # aggregates as an admin hunting spam senders would (packets and bytes per
            # source, destination port and protocol); sfacctd by protocol only, the
            # cheapest table that still counts every record (bench/README.md, "sfacctd").
            # Loss is read from the packet total (flowgen prints the packets it sent):
            # neither reports a record count. sfacctd counts one packet per flow sample
            # (sfacctd_renormalize is off by default), so its packet total is the number
            # of flow samples that reached the plugin; counter samples add none.
            d = self.name  # the keys are named after the daemon: nfacctd_port, sfacctd_port
            agg = a.nfacctd_aggregate if d == "nfacctd" else a.sfacctd_aggregate
            conf = os.path.join(self.dir, d + ".conf")
            with open(conf, "w") as f:
                f.write(f"daemonize: false\n{d}_ip: 127.0.0.1\n{d}_port: {port}\n"
                        f"{d}_pipe_size: {a.rcvbuf}\nplugin_pipe_size: 67108864\n"
                        "plugin_buffer_size: 65536\nplugins: print[p]\n"
                        f"aggregate[p]: {agg}\nprint_output[p]: csv\n"
                        f"print_output_file[p]: {self.dir}/out-all.csv\n"
                        "print_refresh_time[p]: 86400\n")
            argv = [getattr(a, self.name), "-f", conf]
        else:
            argv = [a.bare_recv, f"127.0.0.1:{port}", str(a.rcvbuf)]
        self.p = subprocess.Popen(taskset(core, argv), stdout=self.out, stderr=self.err,
                                  cwd=self.dir)
        deadline = time.time() + 10
        while udp_sock(port) is None:
            if self.p.poll() is not None or time.time() > deadline:
                self.err.seek(0)
                sys.exit(f"{self.name} did not start: {self.err.read()[-2000:]}")
            time.sleep(0.02)
        time.sleep(0.2)  # past its setup (spamflowd: analyzer, sinks)
        self.cpu0 = tree_cpu(self.p.pid)

    def drain(self):
        """Wait until the socket queue is empty and the process stopped using CPU."""
        deadline = time.time() + 30
        last = -1
        while time.time() < deadline:
            q = udp_sock(self.port)
            c = tree_cpu(self.p.pid)
            if q is not None and q[0] == 0 and c == last:
                break
            last = c
            time.sleep(0.1)

    def stop(self):
        self.drain()
        cpu = tree_cpu(self.p.pid) - self.cpu0
        hwm = sum(proc_hwm(p) for p in proc_tree(self.p.pid))
        q = udp_sock(self.port)
        drops = q[1] if q else 0
        self.p.send_signal(signal.SIGINT if self.name in ("nfacctd", "sfacctd")
                           else signal.SIGTERM)
        try:
            self.p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
        self.out.seek(0)
        self.err.seek(0)
        res = {"cpu_s": cpu, "hwm": hwm, "kernel_drops_proc": drops}
        if self.name == "spamflowd":
            d = json.loads(self.out.read())
            res["records"] = d["totals"]["records"]
            res["datagrams"] = d["totals"]["datagrams"]
            res["seq_lost"] = sum(e["seq_lost"] for e in d["exporters"])
            # sFlow: flow samples lost by the per-source sequence numbers, counter samples
            res["samples_lost"] = sum(e.get("samples_lost", 0) for e in d["exporters"])
            res["counter_samples"] = sum(e.get("counter_samples", 0) for e in d["exporters"])
            res["kernel_drops"] = d["listener"]["kernel_drops"]
            res["flows_relevant"] = d["analyzer"]["flows_relevant"]
            res["alerts"] = sum(1 for _ in open(os.path.join(self.dir, "alerts.jsonl"))) \
                if os.path.exists(os.path.join(self.dir, "alerts.jsonl")) else 0
        elif self.name in ("nfcapd", "sfcapd"):
            flows = seqerr = 0
            for fn in sorted(os.listdir(self.dir)):
                if not fn.startswith("nfcapd.2"):
                    continue
                info = subprocess.run([self.args.nfdump, "-r", os.path.join(self.dir, fn), "-I"],
                                      capture_output=True, text=True).stdout
                for line in info.splitlines():
                    k, _, v = line.partition(":")
                    if k.strip() == "Flows":
                        flows += int(v)
                    elif k.strip() == "Sequence failures":
                        seqerr += int(v)
            res["records"] = flows
            res["seq_lost"] = seqerr  # nfcapd counts sequence failures, not lost units
            res["kernel_drops"] = drops
        elif self.name in ("nfacctd", "sfacctd"):
            pkts = 0
            for fn in os.listdir(self.dir):
                if fn.startswith("out-") and fn.endswith(".csv"):
                    with open(os.path.join(self.dir, fn)) as f:
                        hdr = f.readline().strip().split(",")
                        col = hdr.index("PACKETS")
                        for line in f:
                            pkts += int(line.split(",")[col])
            res["packets"] = pkts
            res["kernel_drops"] = drops
        else:
            d = json.loads(self.out.read())
            res["datagrams"] = d["datagrams"]
            res["kernel_drops"] = d["kernel_drops"]
        subprocess.run(["rm", "-rf", self.dir])
        return res


def flowgen(args, version, port, rate, records, core):
    argv = [args.flowgen, "-v", str(version), "-d", f"127.0.0.1:{port}", "-n", str(records),
            "-r", str(int(rate)), "--exporters", str(args.exporters), "--domains",
            str(args.domains), "--seed", str(args.seed), "--mix", args.mix]
    out = subprocess.run(taskset(core, argv), capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def trial(args, coll, version, rate, records):
    port = free_port()
    coll.start(port, args.coll_core)
    g = flowgen(args, version, port, rate, records, args.gen_core)
    r = coll.stop()
    if coll.name == "bare":
        loss = 1 - r["datagrams"] / g["datagrams"]
    elif coll.name in ("nfacctd", "sfacctd"):
        loss = 1 - r["packets"] / g["packets"]
    else:
        loss = 1 - r["records"] / g["records"]
    r.update(loss=max(loss, 0.0), sent=g["records"], sent_dgrams=g["datagrams"],
             sent_counter_samples=g.get("counter_samples", 0),
             achieved=g["achieved_rate"], gen_bound=g["generator_bound"], asked=rate)
    if args.verbose:
        print(f"    {coll.name:9} {VNAME[version]:5} rate {rate/1e6:6.3f}M -> "
              f"{g['achieved_rate']/1e6:6.3f}M loss {r['loss']*100:7.3f}% "
              f"cpu {r['cpu_s']:6.2f}s hwm {r['hwm']/2**20:6.1f}MB"
              f"{' gen-bound' if g['generator_bound'] else ''}", flush=True)
    return r


def search(args, coll, version):
    """Highest lossless paced rate: first unpaced (the generator's ceiling), then bisect."""
    t = trial(args, coll, version, 0, args.records)
    if t["loss"] < LOSS_OK:
        return t["achieved"], True, [t]
    lo, hi, trials = 0.0, t["achieved"], [t]
    gen_bound = False
    for _ in range(args.steps):
        mid = (lo + hi) / 2
        t = trial(args, coll, version, mid, args.records)
        trials.append(t)
        if t["loss"] < LOSS_OK:
            lo = min(mid, t["achieved"])
            gen_bound = t["gen_bound"]
        else:
            hi = mid
    return lo, gen_bound, trials


def stat(v):
    if not v:
        return None
    return {"median": statistics.median(v), "min": min(v), "max": max(v), "n": len(v)}


def fmt_rate(s, gb=False):
    if s is None:
        return "-"
    spread = (s["max"] - s["min"]) / 2 / 1e6
    return f"{s['median']/1e6:.2f}M ±{spread:.2f}{' G' if gb else ''}"


def fmt_cpu(s):
    if s is None:
        return "-"
    return f"{s['median']:.3f} ±{(s['max'] - s['min']) / 2:.3f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", required=True)
    ap.add_argument("--records", type=int, default=5000000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--steps", type=int, default=6, help="bisection steps (default 6)")
    ap.add_argument("--rates", default="200000,1000000")
    ap.add_argument("--versions", default="5,9,10,sflow",
                    help="5, 9, 10 (or ipfix), sflow; default all four")
    ap.add_argument("--collectors", default="spamflowd,nfcapd,sfcapd,nfacctd,sfacctd,bare",
                    help="each runs the versions it speaks (nfcapd/nfacctd NetFlow and IPFIX, "
                    "sfcapd/sfacctd sFlow)")
    ap.add_argument("--nfacctd-aggregate", default="src_host, dst_port, proto",
                    help="nfacctd's print plugin aggregate (default: src_host, dst_port, proto)")
    ap.add_argument("--sfacctd-aggregate", default="proto",
                    help="sfacctd's print plugin aggregate (default: proto)")
    ap.add_argument("--exporters", type=int, default=4)
    ap.add_argument("--domains", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--mix", default="default", choices=["default", "bot-heavy"],
                    help="flowgen's record mix (bot-heavy: issue 14's outbreak, most records "
                    "bots' port-25 flows to random destinations, a fifth unlisted MTAs)")
    ap.add_argument("--rcvbuf", type=int, default=32 * 1024 * 1024)
    ap.add_argument("--quick", action="store_true",
                    help="1 M records, 1 repetition, 4 bisection steps, small decode_bench")
    ap.add_argument("--no-search", action="store_true", help="skip the lossless-rate search")
    ap.add_argument("--no-decode", action="store_true", help="skip decode_bench")
    ap.add_argument("--json", help="also write every trial and figure to this file")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.records = min(args.records, 1000000)
        args.reps = 1
        args.steps = 4
    b = args.build
    args.flowgen = os.path.join(b, "bench", "flowgen")
    args.bare_recv = os.path.join(b, "bench", "bare_recv")
    args.decode_bench = os.path.join(b, "bench", "decode_bench")
    args.spamflowd = os.path.join(b, "daemon", "spamflowd")
    args.nfcapd, args.nfdump, args.nfacctd = "nfcapd", "nfdump", "nfacctd"
    args.sfcapd, args.sfacctd = "sfcapd", "sfacctd"
    ncpu = os.cpu_count() or 1
    args.gen_core, args.coll_core = (0, 1) if ncpu >= 2 else (None, None)
    versions = [parse_version(v) for v in args.versions.split(",")]
    rates = [int(r) for r in args.rates.split(",")]
    colls = args.collectors.split(",")

    # nfcapd asks with plain SO_RCVBUF, which net.core.rmem_max clamps; spamflowd and the bare
    # receiver use SO_RCVBUFFORCE. Same buffer for all: raise the clamp for the run.
    rmem_path = "/proc/sys/net/core/rmem_max"
    rmem_old = int(open(rmem_path).read())
    if rmem_old < args.rcvbuf:
        try:
            open(rmem_path, "w").write(str(args.rcvbuf))
        except OSError as e:
            print(f"note: cannot raise net.core.rmem_max ({e}): nfcapd gets {rmem_old} bytes")
    tmp = tempfile.mkdtemp(prefix="spamflow-bench-")
    t_start = time.time()
    print(f"# {time.strftime('%Y-%m-%d %H:%M:%S')}  load {os.getloadavg()}  cpus {ncpu}  "
          f"generator core {args.gen_core}, collector core {args.coll_core}  records/trial "
          f"{args.records}  reps {args.reps}  exporters {args.exporters}  mix {args.mix}",
          flush=True)
    res = {c: {v: {"search": [], "gb": [], "cpu": {r: [] for r in rates},
                   "loss_at": {r: [] for r in rates}, "genb_at": {r: [] for r in rates},
                   "hwm": []} for v in versions} for c in colls}
    trials_log = []
    try:
        for rep in range(args.reps):
            for v in versions:
                for c in colls:
                    if not speaks(c, v):
                        continue
                    coll = Collector(c, args, tmp)
                    if args.verbose:
                        print(f"  rep {rep + 1} {c} {VNAME[v]}", flush=True)
                    for r in rates:
                        t = trial(args, coll, v, r, args.records)
                        trials_log.append(dict(t, collector=c, version=v, kind=f"cpu@{r}"))
                        units = t["sent"] / 1e6
                        res[c][v]["cpu"][r].append(t["cpu_s"] / units)
                        res[c][v]["loss_at"][r].append(t["loss"])
                        res[c][v]["genb_at"][r].append(t["gen_bound"])
                        res[c][v]["hwm"].append(t["hwm"])
                    if not args.no_search:
                        rate, gb, ts = search(args, coll, v)
                        for t in ts:
                            trials_log.append(dict(t, collector=c, version=v, kind="search"))
                            res[c][v]["hwm"].append(t["hwm"])
                        res[c][v]["search"].append(rate)
                        res[c][v]["gb"].append(gb)
    finally:
        if rmem_old < args.rcvbuf:
            try:
                open(rmem_path, "w").write(str(rmem_old))
            except OSError:
                pass
    elapsed = time.time() - t_start

    # the table
    hdr = ["collector", "version", "lossless rec/s"] + \
        [f"CPU s/M @{r/1e6:g}M" for r in rates] + ["peak RSS MB"]
    rows = []
    figures = {}
    for c in colls:
        for v in versions:
            if not speaks(c, v):
                continue
            x = res[c][v]
            s = stat(x["search"])
            gb = any(x["gb"])
            cpus = {r: stat(x["cpu"][r]) for r in rates}
            hw = stat([h / 2**20 for h in x["hwm"]])
            figures[(c, v)] = (s, cpus, hw)
            cells = []
            for r in rates:
                cell = fmt_cpu(cpus[r])
                if any(l >= LOSS_OK for l in x["loss_at"][r]):
                    cell += f" (loss {max(x['loss_at'][r])*100:.1f}%)"
                if any(x["genb_at"][r]):
                    cell += " G"
                cells.append(cell)
            rows.append([c, VNAME[v], fmt_rate(s, gb)] + cells +
                        [f"{hw['max']:.1f}" if hw else "-"])
    w = [max(len(str(r[i])) for r in rows + [hdr]) for i in range(len(hdr))]
    print()
    print("| " + " | ".join(h.ljust(w[i]) for i, h in enumerate(hdr)) + " |")
    print("|" + "|".join("-" * (x + 2) for x in w) + "|")
    for r in rows:
        print("| " + " | ".join(str(c).ljust(w[i]) for i, c in enumerate(r)) + " |")
    print("median ± half the spread (max-min)/2 over repetitions; G = generator-bound (the "
          "generator could not reach the asked rate, or the collector kept up with it unpaced); "
          "(loss x%) = that fixed rate lost more than 0.1 %")

    if any(REFERENCE[v] in colls for v in versions):
        print("\nratios to nfdump's collector, nfcapd (sFlow: sfcapd) (median / median):")
        for c in colls:
            for v in versions:
                if c == REFERENCE[v] or (c, v) not in figures or (REFERENCE[v], v) not in figures:
                    continue
                s, cpus, hw = figures[(c, v)]
                ns, ncpus, nhw = figures[(REFERENCE[v], v)]
                parts = []
                if s and ns and ns["median"] > 0:
                    parts.append(f"lossless x{s['median'] / ns['median']:.2f}")
                for r in rates:
                    if cpus[r] and ncpus[r] and ncpus[r]["median"] > 0:
                        parts.append(f"CPU@{r/1e6:g}M x{cpus[r]['median'] / ncpus[r]['median']:.2f}")
                if hw and nhw:
                    parts.append(f"RSS x{hw['max'] / nhw['max']:.2f}")
                print(f"  {c:9} {VNAME[v]:5} " + "  ".join(parts))
    if "bare" in colls and "spamflowd" in colls:
        print("\nspamflowd CPU per record / bare receiver's:")
        for v in versions:
            _, cpus, _ = figures[("spamflowd", v)]
            _, bcpus, _ = figures[("bare", v)]
            print(f"  {VNAME[v]:5} " + "  ".join(
                f"@{r/1e6:g}M x{cpus[r]['median'] / bcpus[r]['median']:.2f}"
                for r in rates if cpus[r] and bcpus[r] and bcpus[r]["median"] > 0))

    decode = []
    if not args.no_decode:
        print("\n# decode_bench (in memory, one core)", flush=True)
        caps = []
        for v in versions:
            p = os.path.join(tmp, f"cap{v}.pcap")
            subprocess.run([args.flowgen, "-v", str(v), "-n", "1000000", "--pcap", p,
                            "--seed", str(args.seed), "--mix", args.mix], check=True,
                           capture_output=True)
            caps.append(p)
        argv = taskset(args.coll_core, [args.decode_bench] + caps)
        if args.quick:
            argv += ["--quick", "--flows", "1000000", "--passes", "3"]
        out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            d = json.loads(line)
            decode.append(d)
            if d["bench"] == "decode":
                v = parse_version(os.path.basename(d["capture"])[3:-5])
                print(f"  decode {VNAME[v]:5}: {d['decode_rec_per_s']/1e6:6.2f} M rec/s "
                      f"({d['decode_ns_per_rec']:.0f} ns/rec; passes {d['decode_min']/1e6:.1f}-"
                      f"{d['decode_max']/1e6:.1f} M)   decode+analyze: "
                      f"{d['decode_analyze_rec_per_s']/1e6:6.2f} M rec/s "
                      f"({d['decode_analyze_ns_per_rec']:.0f} ns/rec)")
            elif d["bench"] == "fanout":
                print(f"  fan-out hosts ({d['mode']}): {d['flows_per_s']/1e6:.2f} M port-25 "
                      f"flows/s into {d['bots']} bots' windows ({d['ns_per_flow']:.0f} ns/flow)")
            elif d["bench"] == "analyzer":
                print(f"  analyzer: {d['flows_per_s']/1e6:.2f} M port-25 flows/s into the windows "
                      f"with {d['hosts_tracked']} tracked hosts ({d['ns_per_flow']:.0f} ns/flow)")
            else:
                print(f"  memory {d['hosts']:>8} hosts x {d['dests_per_host']} dests: RSS "
                      f"+{d['rss_delta']/2**20:7.1f} MB = {d['rss_per_host']:.0f} B/host; heap "
                      f"(mallinfo2) {d['heap_per_host']:.0f} B/host; analyzer estimate "
                      f"{d['estimate_per_host']:.0f} B/host")
    subprocess.run(["rm", "-rf", tmp])
    print(f"\n# done in {elapsed/60:.1f} min of trials; load now {os.getloadavg()}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"trials": trials_log, "decode": decode,
                       "figures": {f"{c} {v}": figures[(c, v)] for c, v in figures}}, f,
                      indent=1, default=str)


if __name__ == "__main__":
    main()
