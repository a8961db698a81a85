#!/usr/bin/python3
"""[daemon] log = syslog with a syslog daemon that stops reading: spamflowd must keep
collecting and answering (glibc's syslog(3) would block it in the kernel), count the lines it
could not send, and say how many were lost in the next line that gets through.

Runs itself again inside `unshare -m` with a private /dev whose /dev/log is this script's
datagram socket. Needs root (exit 77 otherwise) and unshare (a failure without it).

usage: daemon_log_stall.py SPAMFLOWD
"""
import os
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sinktest  # noqa: E402
import testdir  # noqa: E402

failures = []


def check(cond, what):
    print(("ok    " if cond else "FAIL  ") + what, flush=True)
    if not cond:
        failures.append(what)


def inside(exe, tmp):
    sinktest.private_dev(tmp)

    log = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    log.bind("/dev/log")
    run = os.path.join(tmp, "run")
    conf = os.path.join(tmp, "c.conf")
    with open(conf, "w") as f:
        f.write(f"[daemon]\nlog = syslog\n[http]\nlisten =\n[control]\nsocket = {run}/c.sock\n")
    port = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    port.bind(("127.0.0.1", 0))
    addr = port.getsockname()
    port.close()
    err = open(os.path.join(tmp, "stderr"), "w+")
    p = subprocess.Popen([exe, "--state=", "--history=", "-c", conf, "-l", f"127.0.0.1:{addr[1]}"],
                         stderr=err)
    deadline = time.time() + 20
    while not os.path.exists(f"{run}/c.sock") and time.time() < deadline:
        time.sleep(0.05)
    # nobody reads /dev/log now: each SIGHUP logs a line or two (signals may merge); the
    # socket's queue holds about 10 (net.unix.max_dgram_qlen)
    for _ in range(30):
        p.send_signal(signal.SIGHUP)
        time.sleep(0.02)
    t0 = time.time()
    c = socket.socket(socket.AF_UNIX)
    c.settimeout(5)
    c.connect(f"{run}/c.sock")
    c.sendall(b"version\n")
    reply = c.recv(4096)
    check(reply.startswith(b'{"ok":true') and time.time() - t0 < 2,
          f"the control socket answers while syslog is stalled ({time.time() - t0:.3f} s)")
    check(p.poll() is None, "the daemon is still running")
    log.settimeout(0.3)
    got = []
    try:
        while True:
            got.append(log.recv(8192).decode())
    except socket.timeout:
        pass
    check(0 < len(got) < 30, f"the syslog queue took {len(got)} lines, the rest were dropped")
    check(all(g.startswith("<") and "spamflowd[" in g for g in got),
          "lines are <PRI>TIMESTAMP spamflowd[PID]: ...")
    p.send_signal(signal.SIGHUP)
    lost = None
    try:
        while lost is None:
            m = log.recv(8192).decode()
            if "earlier log lines lost" in m:
                lost = int(m.split("(")[1].split()[0])
    except socket.timeout:
        pass
    check(lost is not None and lost > 0,
          f"the next line that gets through says how many were lost ({lost})")
    p.terminate()
    check(p.wait(timeout=20) == 0, "exit 0")
    sys.exit(1 if failures else 0)


def main():
    exe = sys.argv[1]
    if len(sys.argv) > 2 and sys.argv[2] == "--inside":
        inside(exe, sys.argv[3])
    if os.geteuid() != 0:
        print("SKIP: needs root (a private mount namespace over /dev)")
        sys.exit(77)
    sinktest.require_programs("unshare")
    tmp = testdir.mkdtemp("spamflow-logstall-")
    r = subprocess.run(["unshare", "-m", "--propagation", "private", sys.executable,
                        os.path.abspath(__file__), exe, "--inside", tmp])
    sys.exit(r.returncode)


if __name__ == "__main__":
    main()
