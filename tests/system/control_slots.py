#!/usr/bin/python3
"""The control socket's client slots against the real daemon, with real users: spamflowd
runs as root with [control] group = nogroup and max_clients = 6; a user in that group
(uid 65534) opens connections and leaves them idle.

  - the user gets 5 of the 6 slots (the 6th is refused, "too many clients"): one slot is
    kept for root and the daemon's uid, and root's spamflowctl is answered;
  - with every slot taken (the user's 5, one held by root), a second user (uid 65533) is
    still answered: the first user's longest-idle connection is closed to make room, told
    why, and counted as clients_evicted; the first user's other connections stay.

Needs root (to be the other users): exit 77 otherwise.

usage: control_slots.py SPAMFLOWD SPAMFLOWCTL
"""
import grp
import json
import os
import signal
import socket
import subprocess
import sys
import time

import testdir
from netutil import free_udp_port

USER_A, USER_B = 65534, 65533
MAX_CLIENTS = 6
failures = []

# Run as another user: connect N times (or until refused), report, then wait for a line on
# stdin and report which connections the daemon has closed since, and what it said.
HOLDER = r"""
import json, socket, sys
path, n = sys.argv[1], int(sys.argv[2])
held, refused = [], None
for _ in range(n):
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    s.settimeout(0.3)
    try:
        said = s.recv(4096)
    except socket.timeout:
        said = None
    if said is None:
        held.append(s)
    else:
        refused = said.decode()
        s.close()
        break
print(json.dumps({"held": len(held), "refused": refused}), flush=True)
sys.stdin.readline()
closed = []
for i, s in enumerate(held):
    s.setblocking(False)
    try:
        said = s.recv(4096)
        closed.append([i, said.decode()])
    except BlockingIOError:
        pass
print(json.dumps({"closed": closed}), flush=True)
"""

# Run as another user: one request on a fresh connection, print the reply line.
ASK = r"""
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(5)
s.connect(sys.argv[1])
s.sendall(b"version\n")
buf = b""
while not buf.endswith(b"\n"):
    b = s.recv(4096)
    if not b:
        break
    buf += b
print(buf.decode(), end="")
"""


def check(cond, what):
    print(("ok    " if cond else "FAIL  ") + what)
    if not cond:
        failures.append(what)


def as_user(uid, gid):
    def drop():
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)
    return drop


def python_for_others():
    """An interpreter the other users may run (sys.executable may live in root's home)."""
    return "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


def main():
    spamflowd, ctl = sys.argv[1:3]
    if os.geteuid() != 0:
        print("needs root: the test plays other users")
        sys.exit(77)
    gid = grp.getgrnam("nogroup").gr_gid
    tmp = testdir.mkdtemp("spamflow-slots-")
    os.chmod(tmp, 0o755)
    sock = os.path.join(tmp, "run", "control.sock")
    conf = os.path.join(tmp, "spamflow.conf")
    with open(conf, "w") as f:
        f.write(f"[http]\nlisten =\n[control]\nsocket = {sock}\ngroup = nogroup\nmax_clients = {MAX_CLIENTS}\n"
                "idle_timeout = 60\n")
    log = open(os.path.join(tmp, "daemon.log"), "w+")
    d = subprocess.Popen([spamflowd, "--state=", "--history=", "-c", conf, "-l", f"127.0.0.1:{free_udp_port()}",
                          "--stats-interval", "0"], stdout=subprocess.DEVNULL, stderr=log)
    holder = None
    try:
        for _ in range(100):
            if os.path.exists(sock):
                break
            time.sleep(0.05)
        check(os.path.exists(sock), "the daemon made its control socket")

        def stats():
            p = subprocess.run([ctl, "-s", sock, "-j", "stats"], capture_output=True,
                               text=True, timeout=10)
            return json.loads(p.stdout)["control"]

        # user A takes every slot it may
        holder = subprocess.Popen([python_for_others(), "-c", HOLDER, sock, str(MAX_CLIENTS + 2)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                  preexec_fn=as_user(USER_A, gid))
        got = json.loads(holder.stdout.readline())
        check(got["held"] == MAX_CLIENTS - 1,
              f"a user gets {MAX_CLIENTS - 1} of {MAX_CLIENTS} slots (got {got['held']})")
        check(got["refused"] is not None and "too many clients" in got["refused"],
              "its next connection is refused with a reason")

        # root is answered: the kept slot
        p = subprocess.run([ctl, "-s", sock, "version"], capture_output=True, text=True,
                           timeout=10)
        check(p.returncode == 0 and "control protocol" in p.stdout,
              "root's spamflowctl is answered while the user holds the rest")
        c = stats()
        check(c["clients_evicted"] == 0 and c["clients_refused"] == 1,
              "nothing closed for root: the slot was free "
              f"(evicted {c['clients_evicted']}, refused {c['clients_refused']})")

        # every slot taken: root holds the kept one
        r = socket.socket(socket.AF_UNIX)
        r.connect(sock)
        r.sendall(b"version\n")
        check(b'"ok":true' in r.makefile("rb").readline(), "root holds the kept slot")

        # a second user is still answered: user A's longest-idle connection makes room
        p = subprocess.run([python_for_others(), "-c", ASK, sock], capture_output=True, text=True,
                           timeout=10, preexec_fn=as_user(USER_B, gid))
        check('"ok":true' in p.stdout and '"command":"version"' in p.stdout,
              f"another user is answered with every slot taken ({p.stdout.strip()[:80]})")
        holder.stdin.write("\n")
        holder.stdin.flush()
        closed = json.loads(holder.stdout.readline())["closed"]
        check(len(closed) == 1 and closed[0][0] == 0 and "closed to make room" in closed[0][1],
              f"the user's longest-idle connection was closed, and told why ({closed})")
        c = stats()
        check(c["clients_evicted"] == 1, f"counted: clients_evicted {c['clients_evicted']}")
        r.close()
        check(d.poll() is None, "daemon alive")
    finally:
        if holder is not None:
            holder.kill()
            holder.wait()
        d.send_signal(signal.SIGTERM)
        rc = d.wait(timeout=20)
    check(rc == 0, "clean exit on SIGTERM")
    if failures:
        log.seek(0)
        print(log.read()[-3000:])
        sys.exit(f"{len(failures)} checks failed")
    print("all checks passed")


if __name__ == "__main__":
    main()
