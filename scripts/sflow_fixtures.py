#!/usr/bin/python3
"""Independent sFlow v5 walker and the pmacctd (sfprobe) fixtures' normalizer and counter.

Walks every sFlow v5 datagram of a pcap by its own length fields (sFlow v5 specification,
sflow.org "sFlow Version 5", 2004: datagram header, then sample_record[] each
`data_format, length, body`, flow/counter records the same way inside a sample). The header's
sample count and a sample's record count are recorded and compared with what the lengths
hold, never trusted. Standard library only; imports count_records.py (pcap reader/writer,
checksums) from this folder.

  sflow_fixtures.py count FILE.pcap [--per-datagram]
      What is really in a capture (JSON).
  sflow_fixtures.py normalize RAW.pcap OUT.pcap --input ORIGINAL.pcap --sport N
                    [--dport 6343] [--counter-datagrams K] [--offset-us 1000]
      Rewrites a live loopback capture of pmacctd sfprobe into a byte-reproducible one
      (rules in fixtures/README.md, "The pmacctd sFlow captures"). Exit 3 when the run is one
      that can't be normalized deterministically (make.sh then runs pmacctd again), 1 when
      the export disagrees with the input pcap (a real problem: never retried away).
  sflow_fixtures.py expect FILE.pcap --input ORIGINAL.pcap --conf PMACCTD.CONF
      Writes the expect JSON of a normalized pmacctd capture.
"""

import argparse
import ipaddress
import json
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import count_records as cr  # noqa: E402  (pcap reader/writer, checksums)

SFLOW_PORT = 6343

# data_format = enterprise << 12 | format (sFlow v5, 4.1)
FLOW_SAMPLE, COUNTERS_SAMPLE, FLOW_SAMPLE_EXP, COUNTERS_SAMPLE_EXP = 1, 2, 3, 4
REC_RAW_HEADER, REC_ETHERNET, REC_IPV4, REC_IPV6 = 1, 2, 3, 4
REC_EXT_SWITCH = 1001
HDR_ETHERNET, HDR_IPV4, HDR_IPV6 = 1, 11, 12


class Bad(Exception):
    """A length or count that does not fit (the walker stops at the first one)."""


class Cur:
    def __init__(self, b, off=0, end=None):
        self.b, self.off = b, off
        self.end = len(b) if end is None else end

    def left(self):
        return self.end - self.off

    def u32(self):
        if self.left() < 4:
            raise Bad("u32 past the end at %d" % self.off)
        v = struct.unpack_from(">I", self.b, self.off)[0]
        self.off += 4
        return v

    def take(self, n):
        if n > self.left():
            raise Bad("%d bytes past the end at %d (%d left)" % (n, self.off, self.left()))
        v = self.b[self.off:self.off + n]
        self.off += n
        return v


def addr(c):
    t = c.u32()
    if t == 1:
        return str(ipaddress.IPv4Address(c.take(4)))
    if t == 2:
        return str(ipaddress.IPv6Address(c.take(16)))
    if t == 0:
        return "unknown"
    raise Bad("agent address type %d" % t)


def walk_records(c, n_declared, flow):
    recs = []
    while c.left() > 0:
        fmt = c.u32()
        length = c.u32()
        body = c.take(length)
        r = {"enterprise": fmt >> 12, "format": fmt & 0xFFF, "length": length, "body": body}
        if flow and fmt == REC_RAW_HEADER:
            if length < 16:
                raise Bad("raw header record of %d bytes" % length)
            proto, flen, stripped, hlen = struct.unpack_from(">IIII", body, 0)
            if hlen > length - 16:
                raise Bad("header_length %d in a %d-byte record" % (hlen, length))
            r.update(header_protocol=proto, frame_length=flen, stripped=stripped,
                     header_length=hlen, header=body[16:16 + hlen])
        recs.append(r)
    if len(recs) != n_declared:
        raise Bad("%d records walked, %d declared" % (len(recs), n_declared))
    return recs


def walk_sample(fmt, body):
    c = Cur(body)
    s = {"enterprise": fmt >> 12, "format": fmt & 0xFFF, "length": len(body)}
    f = fmt
    if f in (FLOW_SAMPLE, FLOW_SAMPLE_EXP):
        s["seq"] = c.u32()
        if f == FLOW_SAMPLE:
            sid = c.u32()
            s["source_id"] = (sid >> 24, sid & 0xFFFFFF)
        else:
            s["source_id"] = (c.u32(), c.u32())
        s["rate"], s["pool"], s["drops"] = c.u32(), c.u32(), c.u32()
        if f == FLOW_SAMPLE:
            s["input"], s["output"] = c.u32(), c.u32()
        else:
            s["input"] = (c.u32(), c.u32())
            s["output"] = (c.u32(), c.u32())
        n = c.u32()
        s["records"] = walk_records(c, n, True)
        s["kind"] = "flow"
    elif f in (COUNTERS_SAMPLE, COUNTERS_SAMPLE_EXP):
        s["seq"] = c.u32()
        if f == COUNTERS_SAMPLE:
            sid = c.u32()
            s["source_id"] = (sid >> 24, sid & 0xFFFFFF)
        else:
            s["source_id"] = (c.u32(), c.u32())
        n = c.u32()
        s["records"] = walk_records(c, n, False)
        s["kind"] = "counter"
    else:
        s["kind"] = "other"
    return s


def walk(payload):
    """One sFlow v5 datagram -> dict (raises Bad on the first inconsistency)."""
    c = Cur(payload)
    d = {"version": c.u32()}
    if d["version"] != 5:
        raise Bad("version %d" % d["version"])
    d["agent"] = addr(c)
    d["sub_agent"], d["seq"], d["uptime"], d["num_samples"] = c.u32(), c.u32(), c.u32(), c.u32()
    d["samples_at"] = []  # byte offset of each sample (for rewriting)
    samples = []
    while c.left() > 0:
        at = c.off
        fmt = c.u32()
        length = c.u32()
        body = c.take(length)
        samples.append(walk_sample(fmt, body))
        d["samples_at"].append(at)
    d["samples"] = samples
    if len(samples) != d["num_samples"]:
        raise Bad("%d samples walked, %d declared" % (len(samples), d["num_samples"]))
    return d


def sflow_datagrams(path, port=None):
    """Yields (ts_us, src, sport, dst, dport, payload) for each sFlow v5 datagram."""
    for ts, lt, frame in cr.read_pcap(path):
        u = udp_any(lt, frame)
        if u is None:
            continue
        src, dst, sport, dport, payload = u
        if port is not None and dport != port:
            continue
        if payload[:4] != b"\x00\x00\x00\x05":
            continue
        yield ts, src, sport, dst, dport, payload


def udp_any(lt, frame):
    """count_records.udp_of, plus IPv6 (the hand-built captures have an IPv6 exporter)."""
    r = cr.l3_of(lt, frame)
    if r is None:
        return None
    et, ip, _ = r
    if et == 0x86DD and len(ip) >= 48 and ip[6] == 17:
        plen = struct.unpack_from(">H", ip, 4)[0]
        udp = ip[40:40 + plen]
        sport, dport, ulen = struct.unpack_from(">HHH", udp, 0)
        return (str(ipaddress.IPv6Address(ip[8:24])), str(ipaddress.IPv6Address(ip[24:40])),
                sport, dport, udp[8:ulen])
    return cr.udp_of(lt, frame)


# ---- count -------------------------------------------------------------------------------

def count(path, port=None):
    """What is really in a capture: totals and one entry per datagram."""
    out = {"datagrams": 0, "samples": 0, "flow_samples": 0, "expanded_flow_samples": 0,
           "counter_samples": 0, "expanded_counter_samples": 0, "other_samples": 0,
           "malformed_datagrams": 0, "agents": [], "record_formats": {},
           "header_protocols": {}, "sampling_rates": [], "drops_max": 0, "per_datagram": []}
    agents = set()
    rates = set()
    for ts, src, sport, dst, dport, payload in sflow_datagrams(path, port):
        out["datagrams"] += 1
        try:
            d = walk(payload)
        except Bad as e:
            out["malformed_datagrams"] += 1
            out["per_datagram"].append({"ts_us": ts, "bytes": len(payload), "malformed": str(e)})
            continue
        agents.add("%s/%d" % (d["agent"], d["sub_agent"]))
        fl = [s for s in d["samples"] if s["kind"] == "flow"]
        co = [s for s in d["samples"] if s["kind"] == "counter"]
        out["samples"] += len(d["samples"])
        out["flow_samples"] += len(fl)
        out["expanded_flow_samples"] += sum(1 for s in fl if s["format"] == FLOW_SAMPLE_EXP)
        out["counter_samples"] += len(co)
        out["expanded_counter_samples"] += sum(1 for s in co
                                               if s["format"] == COUNTERS_SAMPLE_EXP)
        out["other_samples"] += len(d["samples"]) - len(fl) - len(co)
        for s in d["samples"]:
            for r in s.get("records", []):
                k = "%s %d:%d" % (s["kind"], r["enterprise"], r["format"])
                out["record_formats"][k] = out["record_formats"].get(k, 0) + 1
                if s["kind"] == "flow" and r["enterprise"] == 0 and r["format"] == REC_RAW_HEADER:
                    k = str(r["header_protocol"])
                    out["header_protocols"][k] = out["header_protocols"].get(k, 0) + 1
        for s in fl:
            rates.add(s["rate"])
            out["drops_max"] = max(out["drops_max"], s["drops"])
        out["per_datagram"].append({
            "ts_us": ts, "bytes": len(payload), "agent": d["agent"], "sub_agent": d["sub_agent"],
            "seq": d["seq"], "uptime": d["uptime"], "samples": len(d["samples"]),
            "flow": len(fl), "counter": len(co),
            "flow_seqs": [s["seq"] for s in fl], "counter_seqs": [s["seq"] for s in co]})
    out["agents"] = sorted(agents)
    out["sampling_rates"] = sorted(rates)
    return out


# ---- normalize (pmacctd sfprobe captures) ------------------------------------------------

class NotDeterministic(Exception):
    """This run can't be normalized byte for byte (make.sh runs pmacctd again)."""


def normalize(raw, outp, inp, sport, dport=SFLOW_PORT, counter_datagrams=3, offset_us=1000,
              port=None):
    """Returns a dict of what was found. Raises NotDeterministic or ValueError."""
    packets = [(ts, frame) for ts, _lt, frame in cr.read_pcap(inp)]
    dgs = list(sflow_datagrams(raw, port))
    if not dgs:
        raise ValueError("no sFlow datagrams in %s" % raw)
    walked = [walk(p) for _, _, _, _, _, p in dgs]
    srcs = {(s, sp, d, dp) for _, s, sp, d, dp, _ in dgs}
    if len(srcs) != 1:
        raise ValueError("more than one UDP flow in the capture: %s" % sorted(srcs))

    # Datagram sequence: 1, 2, 3, ... with nothing missing or repeated.
    seqs = [d["seq"] for d in walked]
    if seqs != list(range(1, len(seqs) + 1)):
        raise ValueError("datagram sequence numbers are not 1..%d: %s" % (len(seqs), seqs[:20]))

    # Flow samples: sequence 1..N in order, each one's raw header is the input packet its
    # sample_pool points at (pool = packets the sampler has seen, this one included).
    fseq, last_flow_dg = [], -1
    for i, d in enumerate(walked):
        for s in d["samples"]:
            if s["kind"] != "flow":
                continue
            fseq.append(s["seq"])
            last_flow_dg = i
            hdr = [r for r in s["records"] if r["format"] == REC_RAW_HEADER]
            if len(hdr) != 1:
                raise ValueError("flow sample %d has %d raw header records" % (s["seq"], len(hdr)))
            h = hdr[0]
            k = s["pool"] - 1
            if k >= len(packets):
                again = [i + 1 for i, (_, f) in enumerate(packets)
                         if f[:h["header_length"]] == h["header"]]
                raise ValueError("flow sample %d (pool %d) is past the input's %d packets; its "
                                 "header is input packet %s: pmacctd exported a packet again "
                                 "(its plugin re-reads its ring when the core stops first)"
                                 % (s["seq"], s["pool"], len(packets), again or "none"))
            if not 0 <= k < len(packets):
                raise ValueError("flow sample %d: pool %d outside the input's %d packets"
                                 % (s["seq"], s["pool"], len(packets)))
            frame = packets[k][1]
            if h["header"] != frame[:h["header_length"]] or \
                    h["frame_length"] != len(frame) + h["stripped"]:
                raise ValueError("flow sample %d: header is not input packet %d" % (s["seq"], k + 1))
            s["packet_index"] = k
    if fseq != list(range(1, len(fseq) + 1)):
        dup = len(fseq) - len(set(fseq))
        raise ValueError("flow sample sequence numbers are not 1..%d (%d repeated)"
                         % (len(fseq), dup))
    pools = [s["pool"] for d in walked for s in d["samples"] if s["kind"] == "flow"]
    if pools != sorted(set(pools)):
        raise ValueError("sample pools do not increase")
    # The end of the input: the last, partly filled flow datagram goes out on pmacctd's first
    # tick after the read. A run lost it once (scenario.pcap at sampling 1: the last 16
    # packets missing, nothing else wrong). At sampling 1 the last pool is the input's last
    # packet; at 1 in N the sampler's gaps are N on average, so one of more than 20 N at the
    # end is a lost datagram (chance of such a gap: e^-20).
    rate = max(s["rate"] for d in walked for s in d["samples"] if s["kind"] == "flow")
    if len(packets) - pools[-1] > (0 if rate <= 1 else 20 * rate):
        raise NotDeterministic("the last flow sample is input packet %d of %d: the last "
                               "datagram of flow samples was lost" % (pools[-1], len(packets)))

    # Counter samples: pmacctd polls every 20 s of wall clock, first after a random 1-20 s.
    # Reading a file they come out in the 60-s catch-up after the last flow sample; keep runs
    # where exactly `counter_datagrams` of them follow the flow samples, one per datagram.
    tail = walked[last_flow_dg + 1:]
    mid = [i for i, d in enumerate(walked[:last_flow_dg + 1])
           if any(s["kind"] != "flow" for s in d["samples"])]
    if mid:
        raise NotDeterministic("a counter sample among the flow samples (datagram %d): the "
                               "poller fired while pmacctd was reading" % (mid[0] + 1))
    if len(tail) != counter_datagrams or any(
            [s["kind"] for s in d["samples"]] != ["counter"] for d in tail):
        raise NotDeterministic("%d datagrams after the last flow sample (want %d with one "
                               "counter sample each)" % (len(tail), counter_datagrams))

    # Times (fixtures/README.md): a datagram carrying flow samples is stamped at the capture
    # time of the last input packet it carries + offset_us; a counter-only datagram 1 s after
    # the datagram before it (pmacctd ticks once a second). sysUptime is rewritten to the ms
    # from the first input packet to that time (pmacctd's own value counts wall-clock seconds
    # of a run that read the file in 2 s, and changes from run to run).
    t0 = packets[0][0]
    out, times = [], []
    prev = None
    for (ts, src, _sp, dst, _dp, payload), d in zip(dgs, walked):
        fl = [s for s in d["samples"] if s["kind"] == "flow"]
        if fl:
            t = packets[fl[-1]["packet_index"]][0] + offset_us
        else:
            t = prev + 1000000
        if prev is not None and t < prev:
            raise ValueError("datagram times would go backwards")
        prev = t
        times.append(t)
        up_off = 8 + (4 if d["agent"].count(":") == 0 else 16) + 8
        payload = payload[:up_off] + struct.pack(">I", ((t - t0) // 1000) & 0xFFFFFFFF) + \
            payload[up_off + 4:]
        out.append((t, frame_v4(src, dst, sport, dport, payload)))
    cr.write_pcap(outp, out)
    return {"datagrams": len(out), "flow_samples": len(fseq),
            "counter_samples": sum(len(d["samples"]) for d in tail)}


def frame_v4(src, dst, sport, dport, payload):
    """Ethernet (zero MACs, as Linux lo) / IPv4 id 0, DF / UDP, valid checksums."""
    s, d = ipaddress.IPv4Address(src).packed, ipaddress.IPv4Address(dst).packed
    udp = struct.pack(">HHHH", sport, dport, 8 + len(payload), 0) + payload
    c = cr.csum(s + d + struct.pack(">BBH", 0, 17, len(udp)) + udp) or 0xFFFF
    udp = udp[:6] + struct.pack(">H", c) + udp[8:]
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0x4000, 64, 17, 0, s, d)
    ip = ip[:10] + struct.pack(">H", cr.csum(ip)) + ip[12:]
    return bytes(12) + b"\x08\x00" + ip + udp


# ---- expect ------------------------------------------------------------------------------

def ip_packet(frame):
    """(is IP, ) for an Ethernet frame of the input pcap: the rows the contract gives."""
    et = struct.unpack_from(">H", frame, 12)[0]
    off = 14
    while et in (0x8100, 0x88A8, 0x9100) and len(frame) >= off + 4:
        et = struct.unpack_from(">H", frame, off + 2)[0]
        off += 4
    return et in (0x0800, 0x86DD)


def expect(path, inp, conf):
    st = count(path)
    packets = [frame for _, _, frame in cr.read_pcap(inp)]
    rows = 0
    not_ip = 0
    pools = []
    for _, _, _, _, _, payload in sflow_datagrams(path):
        for s in walk(payload)["samples"]:
            if s["kind"] != "flow":
                continue
            pools.append(s["pool"])
            if ip_packet(packets[s["pool"] - 1]):
                rows += 1
            else:
                not_ip += 1
    first = st["per_datagram"][0]
    settings = {}
    for line in open(conf):
        line = line.split("!")[0].strip()
        if ":" in line:
            k, v = line.split(":", 1)
            settings[k.strip()] = v.strip()
    exp = {
        "file": os.path.basename(path),
        "generator": "pmacctd 1.7.7 sfprobe: %s" % ", ".join(
            "%s: %s" % kv for kv in sorted(settings.items()) if kv[0] != "pcap_savefile"),
        "input": os.path.basename(inp),
        "input_packets": len(packets),
        "collector": "127.0.0.1:%d" % SFLOW_PORT,
        "agent": first["agent"],
        "sub_agent": first["sub_agent"],
        "datagrams": st["datagrams"],
        "samples": st["samples"],
        "flow_samples": st["flow_samples"],
        "expanded_flow_samples": st["expanded_flow_samples"],
        "counter_samples": st["counter_samples"],
        "malformed_datagrams": st["malformed_datagrams"],
        "records": rows,
        "samples_not_ip": not_ip,
        "sampling_rates": st["sampling_rates"],
        "drops_max": st["drops_max"],
        "record_formats": st["record_formats"],
        "header_protocols": st["header_protocols"],
        "sequence_numbers": [d["seq"] for d in st["per_datagram"]],
        "samples_per_datagram": [d["samples"] for d in st["per_datagram"]],
        "flow_samples_per_datagram": [d["flow"] for d in st["per_datagram"]],
        "counter_samples_per_datagram": [d["counter"] for d in st["per_datagram"]],
        "first_flow_sample_seq_per_datagram": [d["flow_seqs"][0] if d["flow_seqs"] else None
                                               for d in st["per_datagram"]],
        "sample_pools_first_last": [pools[0], pools[-1]] if pools else None,
    }
    return cr.dumps_compact(exp)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("count")
    c.add_argument("pcap")
    c.add_argument("--port", type=int)
    c.add_argument("--per-datagram", action="store_true")
    n = sub.add_parser("normalize")
    n.add_argument("raw")
    n.add_argument("out")
    n.add_argument("--input", required=True)
    n.add_argument("--sport", type=int, required=True)
    n.add_argument("--dport", type=int, default=SFLOW_PORT)
    n.add_argument("--port", type=int, help="only datagrams to this port in RAW")
    n.add_argument("--counter-datagrams", type=int, default=3)
    n.add_argument("--offset-us", type=int, default=1000)
    e = sub.add_parser("expect")
    e.add_argument("pcap")
    e.add_argument("--input", required=True)
    e.add_argument("--conf", required=True)
    a = ap.parse_args()
    if a.cmd == "count":
        st = count(a.pcap, a.port)
        if not a.per_datagram:
            del st["per_datagram"]
        json.dump(st, sys.stdout, indent=1, sort_keys=True)
        print()
    elif a.cmd == "normalize":
        try:
            r = normalize(a.raw, a.out, a.input, a.sport, a.dport, a.counter_datagrams,
                          a.offset_us, a.port)
        except NotDeterministic as e:
            print("normalize: %s" % e, file=sys.stderr)
            return 3
        except (ValueError, Bad) as e:
            print("normalize: %s" % e, file=sys.stderr)
            return 1
        print("%s: %d datagrams, %d flow samples, %d counter samples"
              % (a.out, r["datagrams"], r["flow_samples"], r["counter_samples"]), file=sys.stderr)
    else:
        sys.stdout.write(expect(a.pcap, a.input, a.conf))
    return 0


if __name__ == "__main__":
    sys.exit(main())
