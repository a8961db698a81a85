#!/usr/bin/python3
"""Events per second through the whole daemon to a webhook: spamflowd live on loopback, fed
a NetFlow v5 stream that raises one alert per host (tests/system/sinktest.py), posts each
event to an HTTP/1.1 keep-alive server in this process (python's http.server, Nagle off).
Prints the rate at which the server received them (first request to last) and the rate at
which the daemon raised them.

usage: webhook_e2e.py SPAMFLOWD SPAMFLOWCTL [HOSTS]
"""
import os
import signal
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "system"))
import actions_webhook as aw  # noqa: E402


def main():
    spamflowd, ctl = sys.argv[1:3]
    hosts = int(sys.argv[3]) if len(sys.argv) > 3 else 3000
    hook = aw.Hook("bench")
    times = []
    orig = aw.Handler.do_POST

    def do_post(self):
        times.append(time.monotonic())
        orig(self)
    aw.Handler.do_POST = do_post
    hook.start()
    with tempfile.TemporaryDirectory() as tmp:
        d = aw.Daemon(spamflowd, ctl, tmp, "bench",
                      f"webhook = {hook.url()}\nwebhook_queue = {hosts}\n")
        # a line logged per alert: read them, or the daemon waits on a full pipe
        drain = threading.Thread(target=lambda: [None for _ in d.p.stderr], daemon=True)
        drain.start()
        t0 = time.monotonic()
        for i in range(hosts):
            d.stream.step()
            if i % 100 == 99:
                time.sleep(0.005)  # the receive buffer keeps up: no datagram lost
        t_sent = time.monotonic()
        hook.wait(hosts, 120)
        st = d.hook_stats(d.stats(), hook.url())
        d.p.send_signal(signal.SIGTERM)
        d.p.stdout.read()
        d.p.wait(timeout=30)
        events = aw.sinktest.read_jsonl(d.alerts)
    hook.stop()
    n = len(hook.requests)
    span = times[-1] - times[0] if n > 1 else 0
    print(f"{len(events)} events raised in {t_sent - t0:.2f} s ({len(events) / (t_sent - t0):.0f}/s "
          f"offered); {n} delivered, first to last request {span:.2f} s: "
          f"{(n - 1) / span if span else 0:.0f} events/s; end to end {n / (times[-1] - t0):.0f} "
          f"events/s")
    print(f"webhook stats: sent={st['sent']} failed={st['failed']} retried={st['retried']} "
          f"dropped={st['dropped']}")


if __name__ == "__main__":
    main()
