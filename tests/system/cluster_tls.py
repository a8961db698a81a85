#!/usr/bin/python3
"""A spamflow cluster over TLS with a token, as an ISP runs its bus between machines (issue 17:
"credentials/TLS for NATS as NATS clients usually take them").

Real parts: a CA, a server certificate (for 127.0.0.1) and a client certificate made with
openssl; one nats-server that requires TLS with a client certificate from that CA
(`verify: true`) and a token; an analyzer a1 (alert group, JSON sink) and a collector replay
c1, both with `tls_ca`, `tls_cert`, `tls_key` and `token_file`:

  - a1 connects, owns the 8 partitions, and its sink gets exactly the raised
    (host, reason, trigger, count) set of one daemon on the same capture, each once;
  - a node whose CA is another (the server's certificate does not verify), one without a
    client certificate, and one with a wrong token never connect; each keeps running, its
    `cluster` says the bus is not connected, and its log says why: what an admin needs to
    fix it.

usage: cluster_tls.py SPAMFLOWD SPAMFLOWCTL CAPTURE BASE_CONFIG
"""
import json
import os
import subprocess
import sys
import time

from cluster_e2e import ctl, events  # the same replies and events as there
from clusterrun import PARTITIONS, ClusterRun, raised, wait
from natsutil import NatsCluster


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


def make_pki(d):
    """ca.pem, server.pem/key (IP 127.0.0.1), client.pem/key; other-ca.pem: a second CA."""
    for ca in ("ca", "other-ca"):
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                "-nodes", "-keyout", f"{d}/{ca}.key", "-out", f"{d}/{ca}.pem", "-days", "2",
                "-subj", f"/CN=spamflow test {ca}")
    for name, ext in (("server", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth"),
                      ("client", "extendedKeyUsage=clientAuth")):
        with open(f"{d}/{name}.ext", "w") as f:
            f.write(ext + "\n")
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", f"{d}/{name}.key", "-out", f"{d}/{name}.csr", "-subj",
                f"/CN=spamflow test {name}")
        openssl("x509", "-req", "-in", f"{d}/{name}.csr", "-CA", f"{d}/ca.pem", "-CAkey",
                f"{d}/ca.key", "-CAcreateserial", "-out", f"{d}/{name}.pem", "-days", "2",
                "-extfile", f"{d}/{name}.ext")


def main():
    spamflowd, spamflowctl, capture, base_conf = sys.argv[1:5]
    run = ClusterRun("tls")
    check, tmp = run.check, run.tmp
    base = open(base_conf).read()
    make_pki(tmp)

    ref = run.reference(spamflowd, base_conf, capture)

    for name, text in (("token", "tls-test-token-1\n"), ("bad-token", "not-the-token\n")):
        with open(os.path.join(tmp, name), "w") as f:
            f.write(text)
    server = f"""
tls {{
  cert_file: "{tmp}/server.pem"
  key_file: "{tmp}/server.key"
  ca_file: "{tmp}/ca.pem"
  verify: true
  timeout: 2
}}
authorization {{
  token: "tls-test-token-1"
}}
"""
    procs = run.procs
    with NatsCluster(1, max_payload=1 << 20, extra=server) as nats:
        def conf(name, roles, ca="ca", cert=True, token="token", sink=None):
            return run.node_conf(base, name, nats.urls(), roles, sink,
                                 f"alert_group = {'sinks' if sink else ''}\n"
                                 f"token_file = {tmp}/{token}\ntls_ca = {tmp}/{ca}.pem\n" +
                                 (f"tls_cert = {tmp}/client.pem\ntls_key = {tmp}/client.key\n"
                                  if cert else ""))

        def start(name, **kw):
            run.start(name, [spamflowd, "-c", conf(name, "analyzer", **kw), "--state=",
                             "--history=", "--stats-interval", "0"])

        def status(name):
            return ctl(spamflowctl, f"{tmp}/{name}.sock", "cluster").get("status") or {}

        def owns_all(name):
            parts = status(name).get("partitions", [])
            return len(parts) == PARTITIONS and all(p.get("owner") == name for p in parts)

        try:
            a1_sink = os.path.join(tmp, "a1.json")
            start("a1", sink=a1_sink)
            check(wait(lambda: owns_all("a1"), 40),
                  "a1 connects over TLS with its certificate and the token, owns the 8 "
                  "partitions")
            c1 = subprocess.run(
                [spamflowd, "-c", conf("c1", "collector"), "--state=", "--history=",
                 "--replay", capture, "--json"],
                stdout=subprocess.PIPE, stderr=open(os.path.join(tmp, "c1.log"), "w"),
                text=True, timeout=120)
            routed = (json.loads(c1.stdout or "{}").get("cluster") or {}).get("flows_routed", 0)
            check(c1.returncode == 0 and routed > 0,
                  f"the collector's replay over TLS exited {c1.returncode}, {routed} flows "
                  f"routed")

            def settled():
                n = len(events(a1_sink))
                settled.hist.append(n)
                h = settled.hist[-8:]
                return len(h) == 8 and h[0] > 0 and len(set(h)) == 1
            settled.hist = []
            wait(settled, 60)
            got = raised(events(a1_sink))
            missing = sorted(set(ref) - set(got))
            extra = sorted(set(got) - set(ref))
            twice = sorted(k for k, v in got.items() if v > 1)
            check(not missing and not extra and not twice,
                  f"a1's sink has the reference's raised set, each once ({sum(got.values())} "
                  f"vs {sum(ref.values())}; missing {missing}, extra {extra}, twice {twice})")

            # three that cannot connect, each for its own reason
            start("x-ca", ca="other-ca")
            start("x-cert", cert=False)
            start("x-token", token="bad-token")
            time.sleep(6)
            for name, why in (("x-ca", "SSL handshake error: 20:unable to get local issuer "
                                       "certificate"),
                              ("x-cert", "does it require a TLS client certificate"),
                              ("x-token", "Authorization Violation")):
                st = status(name)
                alive = procs[name].poll() is None
                connected = (st.get("bus") or {}).get("connected")
                log = run.log(name)
                said = [ln for ln in log.splitlines()
                        if "cannot connect to the NATS servers" in ln]
                last = (st.get("bus") or {}).get("last_error", "")
                check(alive and connected is False and len(said) == 1 and why in said[0] and
                      why in last,
                      f"{name}: running {alive}, bus connected {connected}, its log says "
                      f"(once): {said}; `cluster` says {last!r}")
            check(owns_all("a1"), "a1 still owns every partition")
        finally:
            run.stop()
    run.finish(tail=15)


if __name__ == "__main__":
    main()
