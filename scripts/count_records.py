#!/usr/bin/python3
"""Independent NetFlow v5 / v9 / IPFIX record counter (the fixtures' oracle).

Walks every export datagram in a pcap by its own length fields: v5 by the fixed 48-byte
record size, v9 flowsets and IPFIX sets by their length fields, data records by the
template's record length (IPFIX variable-length fields are walked record by record). The
header `count` field is recorded but never trusted. Standard library only.

  count_records.py count FILE.pcap [--port N] [--json] [--per-datagram]
  count_records.py normalize IN.pcap OUT.pcap --sport N [--step-us N]

`normalize` rewrites a live loopback capture into a byte-reproducible one: Ethernet
frames with zero MACs (as Linux lo captures them), IPv4 id 0, the UDP source port set to
--sport, checksums recomputed, and each datagram's timestamp set to its export header time
(v5 unix_secs.unix_nsecs, v9 unix_secs, IPFIX export time) plus index * --step-us.
"""

import argparse
import ipaddress
import json
import struct
import sys

LINKTYPE_NULL, LINKTYPE_ETHERNET, LINKTYPE_RAW, LINKTYPE_LOOP = 0, 1, 101, 108
LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2 = 113, 276


# ---- pcap ---------------------------------------------------------------------------------

def read_pcap(path):
    """Yields (ts_us, linktype, frame bytes). Classic pcap only (µs or ns)."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 24:
        raise ValueError("%s: too short for a pcap header" % path)
    magic_le = struct.unpack_from("<I", data, 0)[0]
    magic_be = struct.unpack_from(">I", data, 0)[0]
    if magic_le in (0xA1B2C3D4, 0xA1B23C4D):
        e, magic = "<", magic_le
    elif magic_be in (0xA1B2C3D4, 0xA1B23C4D):
        e, magic = ">", magic_be
    else:
        raise ValueError("%s: not a classic pcap (pcapng? write it with dumpcap -P)" % path)
    nano = magic == 0xA1B23C4D
    linktype = struct.unpack_from(e + "I", data, 20)[0] & 0x0FFFFFFF
    off = 24
    while off + 16 <= len(data):
        sec, frac, incl, _orig = struct.unpack_from(e + "IIII", data, off)
        off += 16
        frame = data[off:off + incl]
        off += incl
        us = sec * 1000000 + (frac // 1000 if nano else frac)
        yield us, linktype, frame


def write_pcap(path, pkts, linktype=LINKTYPE_ETHERNET):
    """pkts: iterable of (ts_us, frame bytes)."""
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, linktype))
        for ts, frame in pkts:
            f.write(struct.pack("<IIII", ts // 1000000, ts % 1000000, len(frame), len(frame)))
            f.write(frame)


def l3_of(linktype, frame):
    """Returns (ethertype, l3 bytes, l2 header bytes) or None."""
    if linktype == LINKTYPE_ETHERNET:
        if len(frame) < 14:
            return None
        et = struct.unpack_from(">H", frame, 12)[0]
        off = 14
        while et in (0x8100, 0x88A8) and len(frame) >= off + 4:
            et = struct.unpack_from(">H", frame, off + 2)[0]
            off += 4
        return et, frame[off:], frame[:off]
    if linktype in (LINKTYPE_NULL, LINKTYPE_LOOP):
        fam = struct.unpack_from("<I", frame, 0)[0]
        if fam > 0xFFFF:
            fam = struct.unpack_from(">I", frame, 0)[0]
        return (0x0800 if fam == 2 else 0x86DD), frame[4:], frame[:4]
    if linktype == LINKTYPE_LINUX_SLL:
        return struct.unpack_from(">H", frame, 14)[0], frame[16:], frame[:16]
    if linktype == LINKTYPE_LINUX_SLL2:
        return struct.unpack_from(">H", frame, 0)[0], frame[20:], frame[:20]
    if linktype == LINKTYPE_RAW:
        return (0x0800 if frame[0] >> 4 == 4 else 0x86DD), frame, b""
    raise ValueError("unsupported linktype %d" % linktype)


def udp_of(linktype, frame):
    """Returns (src ip text, dst ip text, sport, dport, payload) or None."""
    r = l3_of(linktype, frame)
    if r is None:
        return None
    et, ip, _ = r
    if et == 0x0800 and len(ip) >= 20:
        ihl = (ip[0] & 0x0F) * 4
        if ip[9] != 17:
            return None
        tot = struct.unpack_from(">H", ip, 2)[0]
        src = str(ipaddress.IPv4Address(ip[12:16]))
        dst = str(ipaddress.IPv4Address(ip[16:20]))
        udp = ip[ihl:tot]
    elif et == 0x86DD and len(ip) >= 40:
        if ip[6] != 17:  # no extension headers expected here
            return None
        plen = struct.unpack_from(">H", ip, 4)[0]
        src = str(ipaddress.IPv6Address(ip[8:24]))
        dst = str(ipaddress.IPv6Address(ip[24:40]))
        udp = ip[40:40 + plen]
    else:
        return None
    if len(udp) < 8:
        return None
    sport, dport, ulen = struct.unpack_from(">HHH", udp, 0)
    return src, dst, sport, dport, udp[8:ulen]


# ---- decoders -----------------------------------------------------------------------------

class Template:
    def __init__(self, tid, fields, scope_count=0):
        self.tid = tid
        self.fields = fields  # [(ie, length, pen)]
        self.scope_count = scope_count
        self.ies = {(pen, ie) for ie, _, pen in fields}
        self.varlen = any(length == 0xFFFF for _, length, _ in fields)
        self.reclen = sum(length for _, length, _ in fields if length != 0xFFFF)

    def family(self):
        if (0, 8) in self.ies or (0, 12) in self.ies:
            return 4
        if (0, 27) in self.ies or (0, 28) in self.ies:
            return 6
        return 0


class Stats:
    def __init__(self):
        self.datagrams = 0
        self.versions = set()
        self.exporters = set()
        self.data_records = 0  # flow records (data records of non-options templates)
        self.options_data_records = 0
        self.template_records = 0
        self.options_template_records = 0
        self.withdrawals = 0
        self.ipv4_records = 0
        self.ipv6_records = 0
        self.header_count_sum = 0
        self.no_template_sets = 0
        self.no_template_bytes = 0
        self.malformed = 0
        self.sampling = set()  # intervals seen in options records / v5 header
        self.sampling_sources = set()
        self.options_values = []  # decoded options data records (small)
        self.per_datagram = []
        self.templates = {}  # (exporter, domain, tid) -> Template


def be_uint(b):
    return int.from_bytes(b, "big")


def note_options_record(st, tpl, rec_fields):
    """rec_fields: [(pen, ie, bytes)]. Records sampling-related values."""
    vals = {}
    for pen, ie, v in rec_fields:
        if pen == 0:
            vals[ie] = v
    summary = {}
    for ie, name in ((34, "samplingInterval"), (35, "samplingAlgorithm"), (48, "samplerId"),
                     (49, "samplerMode"), (50, "samplerRandomInterval"),
                     (305, "samplingPacketInterval"), (306, "samplingPacketSpace"),
                     (304, "selectorAlgorithm"), (302, "selectorId"),
                     (160, "systemInitTimeMilliseconds"), (82, "interfaceName"),
                     (10, "ingressInterface"), (149, "observationDomainId"),
                     (144, "exportingProcessId"), (41, "exportedMessageTotalCount"),
                     (42, "exportedFlowRecordTotalCount"),
                     (40, "exportedOctetTotalCount"), (130, "exporterIPv4Address"),
                     (214, "exportProtocolVersion"), (215, "exportTransportProtocol")):
        if ie in vals:
            v = vals[ie]
            summary[name] = (v.rstrip(b"\x00").decode("latin-1") if ie == 82
                             else str(ipaddress.IPv4Address(v)) if ie == 130 and len(v) == 4
                             else be_uint(v))
    summary["_ies"] = ["%s%d" % ("" if pen == 0 else "%d/" % pen, ie)
                       for pen, ie, _ in rec_fields]
    if len(st.options_values) < 50:
        st.options_values.append(summary)
    if 34 in vals and be_uint(vals[34]) > 0:
        st.sampling.add(be_uint(vals[34]))
        st.sampling_sources.add("options IE 34 samplingInterval")
    if 305 in vals and 306 in vals:
        st.sampling.add(be_uint(vals[305]) + be_uint(vals[306]))
        st.sampling_sources.add("options IE 305+306 samplingPacketInterval/Space")
    if 50 in vals and be_uint(vals[50]) > 0:
        st.sampling.add(be_uint(vals[50]))
        st.sampling_sources.add("options IE 50 samplerRandomInterval")


def walk_records(st, key, tpl, body, ipfix, dg):
    """Walks the data records of one set/flowset body. Returns records walked."""
    n = 0
    off = 0
    is_opt = tpl.scope_count > 0
    while True:
        if not tpl.varlen:
            if tpl.reclen == 0 or off + tpl.reclen > len(body):
                break
            rec_fields = []
            p = off
            for ie, length, pen in tpl.fields:
                rec_fields.append((pen, ie, body[p:p + length]))
                p += length
            off += tpl.reclen
        else:
            p = off
            rec_fields = []
            ok = True
            for ie, length, pen in tpl.fields:
                if length == 0xFFFF:
                    if p + 1 > len(body):
                        ok = False
                        break
                    length = body[p]
                    p += 1
                    if length == 255:
                        if p + 2 > len(body):
                            ok = False
                            break
                        length = struct.unpack_from(">H", body, p)[0]
                        p += 2
                if p + length > len(body):
                    ok = False
                    break
                rec_fields.append((pen, ie, body[p:p + length]))
                p += length
            if not ok or p == off:
                break
            off = p
        n += 1
        if is_opt:
            st.options_data_records += 1
            dg["options_data"] += 1
            note_options_record(st, tpl, rec_fields)
        else:
            st.data_records += 1
            dg["data"] += 1
            fam = tpl.family()
            if fam == 4:
                st.ipv4_records += 1
            elif fam == 6:
                st.ipv6_records += 1
    # whatever is left must be padding shorter than one record
    return n


def parse_template_set(st, key, body, ipfix, options, dg):
    off = 0
    while off + 4 <= len(body):
        if options and ipfix:
            tid, fc = struct.unpack_from(">HH", body, off)
            off += 4
            scope = 0
            if fc != 0:  # a withdrawal (field count 0) has no scope field count
                if off + 2 > len(body):
                    break
                scope = struct.unpack_from(">H", body, off)[0]
                off += 2
        elif options:  # v9 options template: lengths in bytes
            if off + 6 > len(body):
                break
            tid, scope_len, opt_len = struct.unpack_from(">HHH", body, off)
            off += 6
            fc = (scope_len + opt_len) // 4
            scope = scope_len // 4
        else:
            tid, fc = struct.unpack_from(">HH", body, off)
            off += 4
            scope = 0
        if tid == 0 and fc == 0 and not options:
            break  # padding
        if ipfix and fc == 0:
            st.withdrawals += 1
            dg["withdrawals"] += 1
            if tid == (3 if options else 2):
                for k in [k for k in st.templates if k[:2] == key]:
                    del st.templates[k]
            else:
                st.templates.pop(key + (tid,), None)
            continue
        fields = []
        bad = False
        for _ in range(fc):
            if off + 4 > len(body):
                bad = True
                break
            ie, length = struct.unpack_from(">HH", body, off)
            off += 4
            pen = 0
            if ipfix and ie & 0x8000:
                if off + 4 > len(body):
                    bad = True
                    break
                pen = struct.unpack_from(">I", body, off)[0]
                off += 4
                ie &= 0x7FFF
            fields.append((ie, length, pen))
        if bad:
            st.malformed += 1
            break
        st.templates[key + (tid,)] = Template(tid, fields, scope if options else 0)
        if options:
            st.options_template_records += 1
            dg["options_templates"] += 1
        else:
            st.template_records += 1
            dg["templates"] += 1


def decode_v9_ipfix(st, exporter, payload, dg):
    ipfix = payload[1] == 10
    if ipfix:
        if len(payload) < 16:
            st.malformed += 1
            return
        _, length, export_time, seq, domain = struct.unpack_from(">HHIII", payload, 0)
        payload = payload[:length]
        off = 16
        dg.update(export_time=export_time, seq=seq, domain=domain, length=length)
    else:
        if len(payload) < 20:
            st.malformed += 1
            return
        _, count, uptime, secs, seq, domain = struct.unpack_from(">HHIIII", payload, 0)
        st.header_count_sum += count
        off = 20
        dg.update(header_count=count, sys_uptime=uptime, unix_secs=secs, seq=seq,
                  domain=domain)
    key = (exporter, domain)
    tmpl_ids, opt_ids = (2, 3) if ipfix else (0, 1)
    sets = []
    while off + 4 <= len(payload):
        sid, slen = struct.unpack_from(">HH", payload, off)
        if slen < 4 or off + slen > len(payload):
            st.malformed += 1
            break
        body = payload[off + 4:off + slen]
        off += slen
        sets.append(sid)
        if sid == tmpl_ids:
            parse_template_set(st, key, body, ipfix, False, dg)
        elif sid == opt_ids:
            parse_template_set(st, key, body, ipfix, True, dg)
        elif sid >= 256:
            tpl = st.templates.get(key + (sid,))
            if tpl is None:
                st.no_template_sets += 1
                st.no_template_bytes += len(body)
                dg["no_template_sets"] += 1
                continue
            walk_records(st, key, tpl, body, ipfix, dg)
        else:
            st.malformed += 1
    dg["sets"] = sets


def decode_v5(st, payload, dg):
    if len(payload) < 24:
        st.malformed += 1
        return
    (_, count, uptime, secs, nsecs, seq, etype, eid,
     samp) = struct.unpack_from(">HHIIIIBBH", payload, 0)
    st.header_count_sum += count
    n = (len(payload) - 24) // 48  # independent of the count field
    st.data_records += n
    st.ipv4_records += n
    dg["data"] += n
    dg.update(header_count=count, sys_uptime=uptime, unix_secs=secs, unix_nsecs=nsecs,
              seq=seq, domain=(etype << 8) | eid, sampling_field=samp)
    interval = samp & 0x3FFF
    if interval > 1:
        st.sampling.add(interval)
        st.sampling_sources.add("v5 header sampling_interval (mode %d)" % (samp >> 14))


def count(path, port=None):
    st = Stats()
    for ts, lt, frame in read_pcap(path):
        u = udp_of(lt, frame)
        if u is None:
            continue
        src, dst, sport, dport, payload = u
        if port is not None and dport != port:
            continue
        if len(payload) < 2:
            continue
        ver = struct.unpack_from(">H", payload, 0)[0]
        if ver not in (5, 9, 10):
            continue
        st.datagrams += 1
        st.versions.add(ver)
        st.exporters.add((src, sport))
        dg = {"ts_us": ts, "version": ver, "bytes": len(payload), "data": 0,
              "options_data": 0, "templates": 0, "options_templates": 0, "withdrawals": 0,
              "no_template_sets": 0}
        if ver == 5:
            decode_v5(st, payload, dg)
        else:
            decode_v9_ipfix(st, src, payload, dg)
        st.per_datagram.append(dg)
    return st


def summary(st):
    out = {
        "datagrams": st.datagrams,
        "versions": sorted(st.versions),
        "exporters": ["%s:%d" % e for e in sorted(st.exporters)],
        "data_records": st.data_records,
        "options_data_records": st.options_data_records,
        "template_records": st.template_records,
        "options_template_records": st.options_template_records,
        "template_withdrawals": st.withdrawals,
        "ipv4_records": st.ipv4_records,
        "ipv6_records": st.ipv6_records,
        "header_count_sum": st.header_count_sum,
        "sets_without_template": st.no_template_sets,
        "malformed": st.malformed,
        "sampling_intervals": sorted(st.sampling),
        "sampling_sources": sorted(st.sampling_sources),
    }
    seqs = [(d.get("domain"), d.get("seq")) for d in st.per_datagram]
    if seqs:
        out["sequence_numbers"] = [s for _, s in seqs]
    out["sequence_semantics"] = sequence_semantics(st.per_datagram)
    out["templates"] = {
        "%s/%d/%d" % k: ["%s%d/%d" % ("" if pen == 0 else "%d:" % pen, ie, length)
                         for ie, length, pen in t.fields]
        for k, t in sorted(st.templates.items())}
    return out


def sequence_semantics(dgs):
    """Classifies the header sequence numbers of one exporter/domain stream (no loss):
    'datagrams' (+1 per datagram, v9), 'records-before' (seq = data records sent before
    this datagram: v5, RFC 7011), 'records-including' (seq = data records sent including
    this datagram's), or 'other'. Options data records are not counted."""
    if len(dgs) < 2:
        return "unknown"
    pairs = list(zip(dgs, dgs[1:]))
    m32 = 0xFFFFFFFF
    if all((b["seq"] - a["seq"]) & m32 == 1 for a, b in pairs):
        return "datagrams"
    if all((b["seq"] - a["seq"]) & m32 == a["data"] for a, b in pairs):
        return "records-before"
    if all((b["seq"] - a["seq"]) & m32 == b["data"] for a, b in pairs):
        return "records-including"
    return "other"


# ---- expect files for the softflowd captures ----------------------------------------------

def tshark_records(path, port):
    """Records tshark decodes (source addresses seen) and the sum of its header count."""
    import subprocess
    out = subprocess.run(["tshark", "-r", path, "-d", "udp.port==%d,cflow" % port,
                          "-T", "fields", "-e", "cflow.srcaddr", "-e", "cflow.srcaddrv6",
                          "-e", "cflow.count"],
                         capture_output=True, text=True, check=True).stdout
    n = cnt = 0
    for line in out.splitlines():
        cols = (line.split("\t") + ["", "", ""])[:3]
        n += len([x for x in cols[0].split(",") if x]) + len([x for x in cols[1].split(",") if x])
        cnt += sum(int(x) for x in cols[2].split(",") if x)
    return n, cnt


def softflowd_stats(log):
    import re
    m = re.search(r"Flows exported: (\d+) \((\d+) records\) in (\d+) packets "
                  r"\((\d+) failures\)", log)
    if not m:
        return None
    sf = {"flows_exported": int(m.group(1)), "records": int(m.group(2)),
          "packets": int(m.group(3)), "failures": int(m.group(4))}
    m = re.search(r"Flows expired: (\d+) \((\d+) forced\)", log)
    if m:
        sf["flows_expired"], sf["forced"] = int(m.group(1)), int(m.group(2))
    return sf


def dumps_compact(obj):
    """json.dumps with indent, but lists of numbers/strings on one line."""
    import re
    text = json.dumps(obj, indent=1)
    return re.sub(r"\[\s*([^\[\]{}]*?)\s*\]",
                  lambda m: "[" + ", ".join(x.strip() for x in m.group(1).split(",")
                                            if x.strip()) + "]", text) + "\n"


def expect_json(path, port, sflog, args):
    st = count(path, port)
    s = summary(st)
    t_records, t_count = tshark_records(path, port)
    ver = s["versions"][0]
    exp = {
        "file": path.split("/")[-1],
        "generator": "softflowd 1.1.0 -r traffic.pcap -d -a -m 64 -c none " + args,
        "version": ver,
        "collector": "127.0.0.1:%d" % port,
        "exporter": s["exporters"][0],
        "domain": st.per_datagram[0]["domain"],
        "datagrams": s["datagrams"],
        "data_records": s["data_records"],
        "ipv4_records": s["ipv4_records"],
        "ipv6_records": s["ipv6_records"],
        "template_records": s["template_records"],
        "options_template_records": s["options_template_records"],
        "options_data_records": s["options_data_records"],
        "sampling_interval": s["sampling_intervals"][-1] if s["sampling_intervals"] else 1,
        "sampling_signalled_by": s["sampling_sources"],
        "header_count_sum": s["header_count_sum"] if ver != 10 else None,
        "header_count_excludes_templates": (
            None if ver != 9 else all(d["header_count"] == d["data"] for d in st.per_datagram)),
        "tshark_records": t_records,
        "tshark_header_count_sum": t_count if ver != 10 else None,
        "softflowd_stats": softflowd_stats(open(sflog).read()),
        "sequence_semantics": s["sequence_semantics"],
        "sequence_numbers": s["sequence_numbers"],
        "records_per_datagram": [d["data"] for d in st.per_datagram],
        "export_times": [d.get("export_time", d.get("unix_secs")) for d in st.per_datagram],
        "templates": s["templates"],
    }
    if exp["softflowd_stats"] and exp["softflowd_stats"]["records"] != exp["data_records"]:
        exp["note"] = "count_records.py and softflowd's own statistics disagree"
    return dumps_compact(exp)


# ---- normalize ----------------------------------------------------------------------------

def csum(b):
    if len(b) % 2:
        b += b"\x00"
    s = sum(struct.unpack(">%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def export_time_us(payload):
    ver = struct.unpack_from(">H", payload, 0)[0]
    if ver == 5:
        secs, nsecs = struct.unpack_from(">II", payload, 8)
        return secs * 1000000 + nsecs // 1000
    if ver == 9:
        return struct.unpack_from(">I", payload, 8)[0] * 1000000
    if ver == 10:
        return struct.unpack_from(">I", payload, 4)[0] * 1000000
    raise ValueError("not an export datagram")


def normalize(inp, outp, sport, step_us, port=None):
    out = []
    i = 0
    for ts, lt, frame in read_pcap(inp):
        u = udp_of(lt, frame)
        if u is None:
            continue
        src, dst, _sp, dport, payload = u
        if port is not None and dport != port:
            continue
        if ":" in src:
            raise ValueError("normalize: IPv4 exporters only")
        udp = struct.pack(">HHHH", sport, dport, 8 + len(payload), 0) + payload
        pseudo = (ipaddress.IPv4Address(src).packed + ipaddress.IPv4Address(dst).packed +
                  struct.pack(">BBH", 0, 17, len(udp)))
        c = csum(pseudo + udp) or 0xFFFF
        udp = udp[:6] + struct.pack(">H", c) + udp[8:]
        ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0x4000, 64, 17, 0,
                         ipaddress.IPv4Address(src).packed, ipaddress.IPv4Address(dst).packed)
        ip = ip[:10] + struct.pack(">H", csum(ip)) + ip[12:]
        frame = bytes(12) + b"\x08\x00" + ip + udp
        out.append((export_time_us(payload) + i * step_us, frame))
        i += 1
    write_pcap(outp, out)
    return i


def main():
    ap = argparse.ArgumentParser(description="NetFlow/IPFIX record counter")
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("count")
    c.add_argument("pcap")
    c.add_argument("--port", type=int)
    c.add_argument("--per-datagram", action="store_true")
    e = sub.add_parser("expect", help="write the softflowd fixture's expect JSON")
    e.add_argument("pcap")
    e.add_argument("--port", type=int, required=True)
    e.add_argument("--softflowd-log", required=True)
    e.add_argument("--args", default="")
    n = sub.add_parser("normalize")
    n.add_argument("inp")
    n.add_argument("outp")
    n.add_argument("--sport", type=int, required=True)
    n.add_argument("--port", type=int)
    n.add_argument("--step-us", type=int, default=100)
    a = ap.parse_args()
    if a.cmd == "count":
        st = count(a.pcap, a.port)
        s = summary(st)
        if a.per_datagram:
            s["per_datagram"] = st.per_datagram
            s["options_values"] = st.options_values
        json.dump(s, sys.stdout, indent=1, sort_keys=True)
        print()
    elif a.cmd == "expect":
        sys.stdout.write(expect_json(a.pcap, a.port, a.softflowd_log, a.args))
    else:
        k = normalize(a.inp, a.outp, a.sport, a.step_us, a.port)
        print("%s: %d datagrams" % (a.outp, k), file=sys.stderr)


if __name__ == "__main__":
    main()
