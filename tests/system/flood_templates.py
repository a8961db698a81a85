#!/usr/bin/python3
"""Template and observation-domain floods against the live daemon (issue 7, "Floods and
resource limits").

Four runs, each with a fresh spamflowd on loopback at its default caps (read back with the
`config` command: [collector] max_templates, per exporter over all its domains, and
max_domains, per exporter):

  v9-templates, ipfix-templates: one exporter announces 100,000 distinct templates (IDs
      256..50255 in observation domains 0 and 1, 57 template records a datagram);
  v9-domains, ipfix-domains: one exporter sends one datagram (a template set) in each of
      100,000 observation domains (v9 source IDs).

Meanwhile a well-behaved exporter on another UDP source port sends its two templates (IDs
256 and 257, the same IDs and domain 0 as the flood) every 20 datagrams, and data records
of both between them. The flood is paced by the daemon (at most 2,000 datagrams ahead of
what it has received: ~3 MB of socket buffer), so nothing is lost and every count is exact.
Checks:

- the caps hold and every refusal is counted: templates_refused summed over the flooding
  exporter's rows = 100,000 - max_templates (each template is announced once), with
  max_templates active; or domains_refused = 100,000 - max_domains, max_domains domain rows
  and the refused datagrams in its "-" row;
- RSS stays within the idle daemon's + 8 MiB (40 MiB under ASan; see RSS_ALLOWANCE_KB);
- the good exporter is unaffected: every record it sent decoded, its 2 templates active,
  no template refused, no data set without its template, no malformed set, no loss.

Two more runs are only made when named, as they measure what no cap bounds yet (they check
the counts and print the RSS, with no bound on it):

  ipfix-exporters: max_exporters exporters (UDP source ports: no spoofing needed) announce
      max_templates two-field templates each, and one more exporter is refused;
  ipfix-big-templates: one exporter announces max_templates templates of 16,370 fields
      (a 65,507-byte datagram each; one variable-length field).

Template state is capped by count (max_templates per exporter, max_exporters), not by
bytes: each template costs ~0.9 KiB plus its wire record (kept for the state file) plus 2
bytes a field when it has a variable-length one, so the defaults let anyone who reaches
the port make the daemon hold ~0.5 GB with small templates, and ~49 MiB per exporter with
big ones.

usage: flood_templates.py SPAMFLOWD [RUN...]
"""
import resource
import shutil
import socket
import struct
import sys
import tempfile
import time

from floodtest import ASAN_QUARANTINE_MB, Daemon, sanitized

FLOOD = 100_000
AHEAD = 2000  # datagrams the flood may be ahead of what the daemon has received
# What the capped flood may add to RSS: max_templates (512) templates at ~1 KiB of state +
# their wire record (~30 B here), or max_domains (64) domains at a few hundred bytes with a
# template each, is ~1 MiB at most; plus the listener's receive buffers (64 x 64 KiB,
# touched as datagrams land in them: 4 MiB at most) and allocator slack: 8 MiB. Measured:
# +0.2 to +1 MiB. Under ASan (redzones, shadow, a 16 MiB quarantine of freed memory: every
# refused template is allocated, then freed) 3 x that + the quarantine; measured +24 to +27
# MiB.
RSS_ALLOWANCE_KB = 8 << 10
ASAN_RSS_ALLOWANCE_KB = 3 * RSS_ALLOWANCE_KB + (ASAN_QUARANTINE_MB << 10)

failures = []


def check(cond, what):
    print(("ok    " if cond else "FAIL  ") + what, flush=True)
    if not cond:
        failures.append(what)


# ---- datagrams ----

class Stream:
    """Header and sequence numbering of one (exporter, domain) stream."""

    def __init__(self, version, domain):
        self.version, self.domain = version, domain
        self.seq = 0
        self.t0 = time.time()

    def message(self, sets, n_records, n_flowsets_records):
        """sets: encoded (flow)sets; n_records: data records (IPFIX sequence);
        n_flowsets_records: every record incl. templates (v9 count)."""
        body = b"".join(sets)
        now = time.time()
        if self.version == 9:
            uptime = int((now - self.t0) * 1000) + 60000
            hdr = struct.pack(">HHIIII", 9, n_flowsets_records, uptime, int(now), self.seq,
                              self.domain)
            self.seq += 1  # RFC 3954 5.1: export packets
        else:
            hdr = struct.pack(">HHIII", 10, 16 + len(body), int(now), self.seq, self.domain)
            self.seq += n_records  # RFC 7011 3.1: data records before this message
        return hdr + body


def flowset(version, set_id, payload):
    """A set with its header; v9 flowsets padded to 32 bits (RFC 3954 5.3)."""
    pad = (-len(payload)) % 4 if version == 9 else 0
    return struct.pack(">HH", set_id, 4 + len(payload) + pad) + payload + b"\0" * pad


def template_set(version, templates):
    """templates: [(id, [(ie, len), ...])]; RFC 3954 flowset 0 / RFC 7011 set 2."""
    payload = b"".join(struct.pack(">HH", tid, len(fields)) +
                       b"".join(struct.pack(">HH", ie, ln) for ie, ln in fields)
                       for tid, fields in templates)
    return flowset(version, 0 if version == 9 else 2, payload)


# The flood's templates: 5 or 6 fields each (source, destination, ports, protocol, and for
# every other ID the TCP flags), so IDs and layouts both differ.
def flood_template(i):
    fields = [(8, 4), (12, 4), (7, 2), (11, 2), (4, 1)]
    if i % 2:
        fields.append((6, 1))
    return fields


def template_flood(version):
    """100,000 distinct templates: 50,000 IDs in each of domains 0 and 1."""
    streams = [Stream(version, 0), Stream(version, 1)]
    per_dgram = 57  # 57 x <= 28 bytes + headers < 1,600
    for base in range(0, FLOOD, per_dgram):
        n = min(per_dgram, FLOOD - base)
        s = streams[base // 50_000]
        tpls = [(256 + i % 50_000, flood_template(i)) for i in range(base, base + n)
                if i // 50_000 == base // 50_000]
        rest = [(256 + i % 50_000, flood_template(i)) for i in range(base, base + n)
                if i // 50_000 != base // 50_000]
        yield s.message([template_set(version, tpls)], 0, len(tpls))
        if rest:
            yield streams[1].message([template_set(version, rest)], 0, len(rest))


def big_template_flood(n):
    """n templates of the most fields an IPFIX message holds, one per datagram."""
    nf = (65507 - 16 - 4 - 4) // 4
    s = Stream(10, 0)
    for i in range(n):
        fields = [(8, 4)] + [(210, 65535)] + [(210, 0)] * (nf - 2)  # paddingOctets
        yield s.message([template_set(10, [(256 + i, fields)])], 0, 1)


def domain_flood(version):
    """One datagram, holding one template, in each of 100,000 observation domains."""
    for dom in range(FLOOD):
        yield Stream(version, dom).message(
            [template_set(version, [(256, flood_template(dom))])], 0, 1)


class Good:
    """The well-behaved exporter: templates 256 (IPv4 5-tuple, counters) and 257 (with ToS
    and interfaces) in domain 0, resent every 20 datagrams; 20 + 10 records a datagram."""

    T256 = [(8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (6, 1), (2, 4), (1, 4)]
    T257 = [(8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (5, 1), (10, 4), (14, 4), (2, 4),
            (1, 4)]

    def __init__(self, version):
        self.version = version
        self.stream = Stream(version, 0)
        self.n = 0
        self.records = 0

    def datagram(self):
        v = self.version
        sets, nrec, ntpl = [], 0, 0
        if self.n % 20 == 0:
            sets.append(template_set(v, [(256, self.T256), (257, self.T257)]))
            ntpl = 2
        k = self.n
        r256 = b"".join(struct.pack(">4s4sHHBBII", bytes([192, 168, 7, 1 + j]),
                                    bytes([93, 184, k % 250, j + 1]), 40000 + j, 443, 6,
                                    0x1b, 10 + j, 1500 + j) for j in range(20))
        r257 = b"".join(struct.pack(">4s4sHHBBIIII", bytes([192, 168, 8, 1 + j]),
                                    bytes([93, 185, k % 250, j + 1]), 50000 + j, 80, 6,
                                    0, 1, 2, 5 + j, 900 + j) for j in range(10))
        sets += [flowset(v, 256, r256), flowset(v, 257, r257)]
        nrec = 30
        self.n += 1
        self.records += nrec
        return self.stream.message(sets, nrec, nrec + ntpl)


# ---- one run ----

def rows_of(exporters, port):
    return [r for r in exporters if r["addr"] == "127.0.0.1" and r["port"] == port]


def run_exporters(spamflowd, name):
    """max_exporters exporters with max_templates templates each, then one too many."""
    tmp = tempfile.mkdtemp(prefix=f"spamflow-{name}-")
    d = Daemon(spamflowd, tmp, "")
    dest = ("127.0.0.1", d.port)
    socks = []
    try:
        cfg = d.ask("config")["config"]["collector"]
        max_t, max_e = int(cfg["max_templates"]), int(cfg["max_exporters"])
        time.sleep(0.5)
        base_kb = d.sampler.peak()
        good, good_sock = Good(10), socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        good_sock.bind(("127.0.0.1", 0))
        good_sock.sendto(good.datagram(), dest)
        sent = 1
        t_start = time.monotonic()
        # open sockets keep their ports distinct; the good exporter holds one exporter slot,
        # so the last flood exporter is refused
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, max_e + 256)), hard))
        for e in range(max_e):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            st = Stream(10, 0)
            for b in range(0, max_t, 64):
                s.sendto(st.message([template_set(10, [(256 + i, [(8, 4), (12, 4)])
                                                       for i in range(b, min(b + 64, max_t))])],
                                    0, 0), dest)
                sent += 1
            if e % 50 == 0:
                good_sock.sendto(good.datagram(), dest)
                sent += 1
                d.wait_received(sent)
        good_sock.sendto(good.datagram(), dest)
        sent += 1
        st = d.wait_received(sent)
        t_flood = time.monotonic() - t_start
        time.sleep(0.5)
        ex = d.ask("exporters")["exporters"]
        st = d.ask("stats")
    finally:
        rc = d.stop()
        for s in socks:
            s.close()
    peak_kb = d.sampler.peak()
    gd = rows_of(ex, good_sock.getsockname()[1])
    active = sum(r["templates_active"] for r in ex)
    refused = st["totals"]["exporters_refused"]
    print(f"== {name}: {sent} datagrams in {t_flood:.2f} s; {len(ex)} exporter rows, "
          f"{active} templates active, exporters_refused {refused}")
    print(f"   RSS: idle {base_kb} kB, peak {peak_kb} kB (+{(peak_kb - base_kb) / 1024:.1f} MiB"
          f" for {active - 2} flood templates: "
          f"{(peak_kb - base_kb) * 1024 / max(active - 2, 1):.0f} B each): no byte cap")
    check(rc == 0, f"{name}: clean exit")
    check(active == (max_e - 1) * max_t + 2 and refused == max_t // 64 + (max_t % 64 > 0),
          f"{name}: {max_e - 1} flood exporters x {max_t} templates, the last one refused "
          "(each of its datagrams counted)")
    check(len(gd) == 1 and gd[0]["records"] == good.records and gd[0]["templates_active"] == 2,
          f"{name}: good exporter: {good.records} records decoded, 2 templates active")
    if not failures:
        shutil.rmtree(tmp, ignore_errors=True)


def run(spamflowd, name):
    if name == "ipfix-exporters":
        return run_exporters(spamflowd, name)
    version = 9 if name.startswith("v9") else 10
    kind = name.split("-")[1]
    tmp = tempfile.mkdtemp(prefix=f"spamflow-{name}-")
    d = Daemon(spamflowd, tmp, "")
    flood_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    good_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    flood_sock.bind(("127.0.0.1", 0))
    good_sock.bind(("127.0.0.1", 0))
    flood_port, good_port = flood_sock.getsockname()[1], good_sock.getsockname()[1]
    dest = ("127.0.0.1", d.port)
    try:
        cfg = d.ask("config")["config"]["collector"]
        max_templates, max_domains = int(cfg["max_templates"]), int(cfg["max_domains"])
        time.sleep(0.5)
        base_kb = d.sampler.peak()
        good = Good(version)
        if kind == "big":
            gen = big_template_flood(max_templates)
        elif kind == "templates":
            gen = template_flood(version)
        else:
            gen = domain_flood(version)
        sent = waited = 0
        t_start = time.monotonic()
        for i, dg in enumerate(gen):
            flood_sock.sendto(dg, dest)
            sent += 1
            if i % 50 == 0:  # the good exporter keeps going throughout
                good_sock.sendto(good.datagram(), dest)
                sent += 1
            if sent - waited >= (16 if kind == "big" else AHEAD):
                d.wait_received(sent)
                waited = sent
        for _ in range(20):  # and after the flood
            good_sock.sendto(good.datagram(), dest)
            sent += 1
        st = d.wait_received(sent)
        t_flood = time.monotonic() - t_start
        time.sleep(0.3)
        ex = d.ask("exporters")["exporters"]
        st = d.ask("stats")
        drops = d.udp_drops()
    finally:
        rc = d.stop()
    peak_kb = d.sampler.peak()

    flood, gd = rows_of(ex, flood_port), rows_of(ex, good_port)
    fd = [r for r in flood if r["domain"] is not None]
    fh = [r for r in flood if r["domain"] is None]
    refused = sum(r["templates_refused"] for r in flood)
    active = sum(r["templates_active"] for r in flood)
    dom_refused = st["totals"]["domains_refused"]
    print(f"== {name}: {sent} datagrams in {t_flood:.2f} s, kernel drops "
          f"{st['listener']['kernel_drops']} (SO_RXQ_OVFL) {drops} (/proc/net/udp); "
          f"max_templates {max_templates}, max_domains {max_domains}")
    print(f"   flood exporter: {len(fd)} domain rows, templates active {active}, "
          f"templates_refused {refused}, domains_refused {dom_refused}, datagrams in the "
          f"'-' row {sum(r['datagrams'] for r in fh)}")
    print(f"   good exporter: rows {[(r['domain'], r['records'], r['templates_active']) for r in gd]}"
          f", sent {good.records} records in {good.n} datagrams")
    print(f"   RSS: idle {base_kb} kB, peak {peak_kb} kB (+{peak_kb - base_kb} kB)")

    check(rc == 0, f"{name}: clean exit")
    check(st["listener"]["kernel_drops"] == 0 and drops == 0 and
          st["listener"]["datagrams"] == sent, f"{name}: lossless ({sent} datagrams)")
    if kind == "big":
        check(active == max_templates and refused == 0,
              f"{name}: {active} templates of 16,370 fields active (no size cap; RSS above)")
    elif kind == "templates":
        check(refused == FLOOD - max_templates,
              f"{name}: templates_refused {refused} = {FLOOD} - max_templates {max_templates}")
        check(active == max_templates, f"{name}: {active} templates active = max_templates")
        check(dom_refused == 0 and len(fd) == 2, f"{name}: 2 domains, none refused")
    else:
        check(dom_refused == FLOOD - max_domains,
              f"{name}: domains_refused {dom_refused} = {FLOOD} - max_domains {max_domains}")
        check(len(fd) == max_domains and active == max_domains,
              f"{name}: {len(fd)} domain rows, {active} templates = max_domains")
        check(len(fh) == 1 and fh[0]["datagrams"] == FLOOD - max_domains,
              f"{name}: the refused datagrams counted in the exporter's '-' row")
        check(refused == 0, f"{name}: no template refused")
    allowance = ASAN_RSS_ALLOWANCE_KB if sanitized(spamflowd) else RSS_ALLOWANCE_KB
    check(kind == "big" or peak_kb - base_kb <= allowance,
          f"{name}: RSS grew {peak_kb - base_kb} kB <= {allowance} kB")
    ok = (len(gd) == 1 and gd[0]["domain"] == 0 and gd[0]["records"] == good.records and
          gd[0]["templates_active"] == 2 and gd[0]["templates_refused"] == 0 and
          gd[0]["no_template_sets"] == 0 and gd[0]["malformed_total"] == 0 and
          gd[0]["seq_lost"] == 0 and gd[0]["seq_resets"] == 0)
    check(ok, f"{name}: good exporter: {good.records} records decoded of {good.records} sent, "
          "2 templates active, nothing refused, lost or malformed")
    if failures:
        print("".join(d.log[-20:]))
    else:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    spamflowd = sys.argv[1]
    runs = sys.argv[2:] or ["v9-templates", "ipfix-templates", "v9-domains", "ipfix-domains"]
    print(f"build: {'ASan+UBSan' if sanitized(spamflowd) else 'plain'}")
    for name in runs:
        run(spamflowd, name)
    if failures:
        sys.exit(f"{len(failures)} checks failed")
    print("all checks passed")


if __name__ == "__main__":
    main()
