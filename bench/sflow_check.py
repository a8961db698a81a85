#!/usr/bin/python3
"""Checks flowgen's sFlow v5 against tshark (issue 12): captures what `flowgen -v sflow`
sends on loopback (dumpcap), then reads the capture back with `tshark -r -T pdml` and checks
every datagram and sample: nothing malformed, no expert error, datagram, flow-sample and
counter-sample sequence numbers consecutive per agent / sub-agent / source, the sample pool
growing by the sampling rate, the rates, interfaces and VLANs a switch would report, the
raw header as long as min(cap, frame - FCS) and the frame length what the sampled IP header
says it is, IPv4 header checksums good, and the totals equal to what flowgen printed.
Prints a summary and exits non-zero on any disagreement.

    bench/sflow_check.py --flowgen build/bench/flowgen [--records 20000] [--keep sf.pcap]
"""
import argparse
import collections
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def fields(elem):
    """name -> [show, ...] over elem's whole subtree, in document order."""
    d = collections.defaultdict(list)
    for e in elem.iter():
        n = e.get("name")
        if n:
            d[n].append(e.get("show"))
    return d


def one(d, name, default=None):
    v = d.get(name)
    return v[0] if v else default


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--flowgen", required=True)
    ap.add_argument("--records", type=int, default=20000)
    ap.add_argument("--rate", type=int, default=50000)
    ap.add_argument("--exporters", type=int, default=2)
    ap.add_argument("--domains", type=int, default=2)
    ap.add_argument("--sampling", type=int, default=1000)
    ap.add_argument("--header-bytes", type=int, default=128)
    ap.add_argument("--expanded", type=float, default=0.25)
    ap.add_argument("--agent6", action="store_true")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--keep", help="keep the capture in this file")
    a = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="sflow-check-")
    cap = a.keep or os.path.join(tmp, "sflow.pcapng")
    port = free_port()
    dc = subprocess.Popen(["dumpcap", "-q", "-i", "lo", "-f", f"udp port {port}", "-w", cap],
                          stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)  # dumpcap has no "ready" signal on -q; its filter is set well before this
    argv = [a.flowgen, "-v", "sflow", "-d", f"127.0.0.1:{port}", "-n", str(a.records), "-r",
            str(a.rate), "--exporters", str(a.exporters), "--domains", str(a.domains),
            "--sampling", str(a.sampling), "--header-bytes", str(a.header_bytes),
            "--expanded", str(a.expanded), "--seed", str(a.seed)] + \
        (["--agent6"] if a.agent6 else [])
    # something must own the port, or loopback answers with ICMP and the sender sees errors
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", port))
    sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    g = json.loads(subprocess.run(argv, capture_output=True, text=True, check=True).stdout)
    time.sleep(1.0)
    dc.send_signal(signal.SIGINT)
    dc.wait(timeout=10)
    sink.close()
    print("flowgen:", " ".join(argv))
    print("flowgen printed:", json.dumps(g))

    tshark = subprocess.Popen(["tshark", "-r", cap, "-o", "ip.check_checksum:TRUE", "-d",
                               f"udp.port=={port},sflow", "-T", "pdml"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    errs = []
    cnt = collections.Counter()
    expert = collections.Counter()
    dg_seq = {}
    fs_seq, cs_seq, pools = {}, {}, {}
    hdr_lens, frame_lens, per_dgram, dgram_sizes = [], [], [], []
    rates = collections.Counter()

    def err(msg):
        if len(errs) < 30:
            errs.append(msg)
        cnt["errors"] += 1

    for _, pkt in ET.iterparse(tshark.stdout, events=("end",)):
        if pkt.tag != "packet":
            continue
        cnt["datagrams"] += 1
        fno = cnt["datagrams"]
        for e in pkt.iter():
            n = e.get("name", "")
            if n == "_ws.malformed":
                err(f"frame {fno}: malformed: {e.get('showname')}")
            if n == "_ws.expert":
                f = fields(e)
                sev = one(f, "_ws.expert.severity", "?")
                msg = one(f, "_ws.expert.message", e.get("showname"))
                expert[(sev, msg.split(":")[0] if msg else "?")] += 1
        sf = [p for p in pkt.iter("proto") if p.get("name") == "sflow"]
        if len(sf) != 1:
            err(f"frame {fno}: {len(sf)} sFlow layers")
            pkt.clear()
            continue
        sf = sf[0]
        top = {c.get("name"): c.get("show") for c in sf if c.get("name")}
        dgram_sizes.append(int(sf.get("size")))
        if top.get("sflow_245.version") != "5":
            err(f"frame {fno}: version {top.get('sflow_245.version')}")
        agent = top.get("sflow_245.agent") or top.get("sflow_245.agent.v6")
        sub = int(top["sflow_245.sub_agent_id"])
        key = (agent, sub)
        seq = int(top["sflow_245.sequence_number"])
        if key in dg_seq and seq != dg_seq[key] + 1:
            err(f"frame {fno}: agent {key} datagram seq {seq} after {dg_seq[key]}")
        if key not in dg_seq and seq != 0:
            err(f"frame {fno}: agent {key} starts at seq {seq}")
        dg_seq[key] = seq
        samples = [c for c in sf if c.get("name") == "" and "sample" in (c.get("show") or "")]
        if len(samples) != int(top["sflow_245.numsamples"]):
            err(f"frame {fno}: {len(samples)} samples, header says {top['sflow_245.numsamples']}")
        nflow = 0
        for s in samples:
            kind = s.get("show")
            f = fields(s)
            if kind.startswith("Counters sample"):
                cnt["counter_samples"] += 1
                idx = int(one(f, "sflow.counters_sample.source_id_index"))
                sq = int(one(f, "sflow.counters_sample.sequence_number"))
                k = key + (idx,)
                if sq != cs_seq.get(k, 0) + 1:
                    err(f"frame {fno}: counter seq {sq} for {k} after {cs_seq.get(k, 0)}")
                cs_seq[k] = sq
                if one(f, "sflow_245.ifindex") != str(idx):
                    err(f"frame {fno}: counter ifIndex {one(f, 'sflow_245.ifindex')} != {idx}")
                continue
            nflow += 1
            cnt["flow_samples"] += 1
            expanded = kind.startswith("Expanded")
            cnt["expanded"] += expanded
            idx = int(one(f, "sflow.flow_sample.source_id_index") if expanded
                      else one(f, "sflow.flow_sample.index"))
            sq = int(one(f, "sflow.flow_sample.sequence_number"))
            rate = int(one(f, "sflow.flow_sample.sampling_rate"))
            pool = int(one(f, "sflow.flow_sample.sample_pool"))
            k = key + (idx,)
            if sq != fs_seq.get(k, 0) + 1:
                err(f"frame {fno}: flow sample seq {sq} for {k} after {fs_seq.get(k, 0)}")
            if pool != pools.get(k, 0) + rate:
                err(f"frame {fno}: pool {pool} for {k} after {pools.get(k, 0)}, rate {rate}")
            fs_seq[k], pools[k] = sq, pool
            rates[rate] += 1
            uplink = idx >= 49
            if rate != a.sampling * (4 if uplink else 1):
                err(f"frame {fno}: ifIndex {idx} rate {rate}")
            inp = one(f, "sflow.flow_sample.input_interface_value" if expanded
                      else "sflow.flow_sample.input_interface")
            if inp != str(idx):
                err(f"frame {fno}: input interface {inp} != source {idx}")
            if one(f, "sflow.flow_sample.dropped_packets") != "0":
                err(f"frame {fno}: drops {one(f, 'sflow.flow_sample.dropped_packets')}")
            fmts = f.get("sflow_245.flow_record_format", [])
            if sorted(fmts) != ["1", "1001"]:
                err(f"frame {fno}: flow records {fmts}")
            if one(f, "sflow_245.header_protocol") != "1" or \
                    one(f, "sflow_245.header.payload_stripped") != "4":
                err(f"frame {fno}: header protocol / stripped")
            flen = int(one(f, "sflow_245.header.frame_length"))
            hlen = int(one(f, "sflow_245.header.sampled_header_length"))
            hdr_lens.append(hlen)
            frame_lens.append(flen)
            if hlen != min(a.header_bytes, flen - 4):
                err(f"frame {fno}: header {hlen} bytes of a {flen}-byte frame")
            tagged = "vlan.id" in f
            cnt["vlan_tagged"] += tagged
            vin, vout = int(one(f, "sflow_245.vlan.in")), int(one(f, "sflow_245.vlan.out"))
            if tagged != uplink or (tagged and int(one(f, "vlan.id")) != vin):
                err(f"frame {fno}: 802.1Q tag {one(f, 'vlan.id')} on ifIndex {idx}, vlan.in {vin}")
            if (vin == 100) != uplink or (vout == 100) == uplink:
                err(f"frame {fno}: vlans {vin} -> {vout} on ifIndex {idx}")
            if "ip.len" in f:
                cnt["ipv4"] += 1
                l3 = int(one(f, "ip.len"))
                proto = one(f, "ip.proto")
                if one(f, "ip.checksum.status") != "1":  # 1 = good when checking is on
                    err(f"frame {fno}: IPv4 checksum status {one(f, 'ip.checksum.status')}")
            elif "ipv6.plen" in f:
                cnt["ipv6"] += 1
                l3 = 40 + int(one(f, "ipv6.plen"))
                proto = one(f, "ipv6.nxt")
            else:
                err(f"frame {fno}: no IP in the sampled header")
                continue
            want = max(14 + 4 * tagged + l3, 60) + 4
            if flen != want:
                err(f"frame {fno}: frame length {flen}, the IP header says {want}")
            if proto == "6":
                cnt["tcp"] += 1
                if "tcp.flags" not in f:
                    # cut off by the header cap: the flags byte is the TCP header's 14th
                    iphl = 40 if "ipv6.plen" in f else 4 * int(one(f, "ip.hdr_len", "5")) // 4
                    if 14 + 4 * tagged + iphl + 14 <= hlen:
                        err(f"frame {fno}: TCP flags missing from a {hlen}-byte header")
                    cnt["tcp flags cut off"] += 1
                    continue
                fl = int(one(f, "tcp.flags"), 16)
                if fl not in (0x02, 0x12, 0x10, 0x18, 0x11):
                    err(f"frame {fno}: TCP flags {fl:#x}")
                cnt[f"tcp flags {fl:#04x}"] += 1
                if one(f, "tcp.dstport") == "25":
                    cnt["tcp to port 25"] += 1
            elif proto == "17":
                cnt["udp"] += 1
            else:
                err(f"frame {fno}: IP protocol {proto}")
        per_dgram.append(nflow)
        pkt.clear()
    tshark.wait()

    if cnt["datagrams"] != g["datagrams"]:
        err(f"captured {cnt['datagrams']} datagrams, flowgen sent {g['datagrams']}")
    if cnt["flow_samples"] != g["records"]:
        err(f"{cnt['flow_samples']} flow samples, flowgen sent {g['records']} records")
    if cnt["counter_samples"] != g["counter_samples"]:
        err(f"{cnt['counter_samples']} counter samples, flowgen sent {g['counter_samples']}")
    for (sev, msg), n in sorted(expert.items()):
        # severities: chat 0x200000, note 0x400000, warn 0x600000, error 0x800000
        if int(sev) >= 0x800000:
            err(f"expert error x{n}: {msg}")

    def rng(v):
        v = sorted(v)
        return f"{v[0]}-{v[-1]} (median {v[len(v) // 2]})" if v else "-"

    print(f"\ndatagrams {cnt['datagrams']} (sFlow payload {rng(dgram_sizes)} bytes), agents x "
          f"sub-agents {len(dg_seq)}, sources {len(fs_seq)}")
    print(f"flow samples {cnt['flow_samples']} ({rng(per_dgram)} per datagram, mean "
          f"{cnt['flow_samples'] / max(cnt['datagrams'], 1):.2f}), expanded {cnt['expanded']}, "
          f"counter samples {cnt['counter_samples']}")
    print(f"sampled headers {rng(hdr_lens)} bytes of frames {rng(frame_lens)} bytes; rates "
          + ", ".join(f"1:{r} x{n}" for r, n in sorted(rates.items())))
    print(f"IPv4 {cnt['ipv4']}, IPv6 {cnt['ipv6']}, TCP {cnt['tcp']}, UDP {cnt['udp']}, 802.1Q "
          f"{cnt['vlan_tagged']}, TCP to port 25 {cnt['tcp to port 25']}; " +
          ", ".join(f"{k} x{v}" for k, v in sorted(cnt.items()) if k.startswith("tcp flags")))
    sevname = {0x200000: "chat", 0x400000: "note", 0x600000: "warning", 0x800000: "error"}
    by_sev = collections.Counter()
    for (s, m), n in expert.items():
        by_sev[sevname.get(int(s), s)] += n
    print("tshark expert info: " + (", ".join(f"{k} {v}" for k, v in sorted(by_sev.items()))
                                    or "none"))
    for (s, m), n in sorted(expert.items()):
        if int(s) >= 0x400000:  # notes and up, by message (chat: SYN, FIN, HTTP request lines)
            print(f"  {sevname.get(int(s), s)}: '{m}' x{n}")
    if errs:
        print(f"\nFAIL: {cnt['errors']} disagreements, the first {len(errs)}:")
        for e in errs:
            print("  " + e)
        return 1
    print("\nOK: every datagram and sample as flowgen meant it, nothing malformed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
