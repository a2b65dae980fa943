#!/usr/bin/env python3
"""SIGTERM to a busy shop-fcgi, straight on its socket (no web server):
every request it accepted and every one waiting in its accept backlog is
answered, a new connection is refused at once, and it exits.

    backlog.py --socket /tmp/a.sock --pid 1234 --threads 2 [--queued 6]

The responder runs with SHOP_THREADS=--threads and knows a warehouse whose
stock query sleeps (latency_ms) longer than --busy-ms, with a stock deadline
above it: --threads stock checks occupy every thread, then --queued GET
/healthz connections wait in the backlog, then SIGTERM. TAP on stdout.
"""
import argparse
import errno
import json
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from tap import Tap  # noqa: E402
from fcgiclient import connect, send, receive  # noqa: E402

TAP = Tap()
ok = TAP.ok


def alive(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            return not any(l.startswith("State:") and "Z" in l.split()[1] for l in f)
    except OSError:
        return False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--socket", required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--queued", type=int, default=6)
    ap.add_argument("--busy-ms", type=int, default=1000)
    a = ap.parse_args()
    addr = "unix:" + a.socket

    check = json.dumps({"items": [{"sku": "SKU-000001", "quantity": 1}]}).encode()
    busy = []
    for _ in range(a.threads):
        s = connect(addr, timeout=15)
        send(s, "POST", "/stock/check", check)
        busy.append(s)
    time.sleep(0.3)                      # every thread now waits on the slow warehouse
    queued = []
    for _ in range(a.queued):
        s = connect(addr, timeout=15)
        send(s, "GET", "/healthz")
        queued.append(s)
    t0 = time.monotonic()
    os.kill(a.pid, signal.SIGTERM)

    # A new connection is refused soon after the signal (nginx: next upstream).
    refused_after, err = None, None
    while time.monotonic() - t0 < 2.0:
        try:
            s = connect(addr, timeout=1)
            s.close()                    # accepted: still listening; it gets no request
        except OSError as e:
            err = e
            if e.errno == errno.ECONNREFUSED:
                refused_after = time.monotonic() - t0
                break
        time.sleep(0.005)
    ok(refused_after is not None, "a new connection is refused after SIGTERM",
       "last error: %r" % (err,))
    if refused_after is not None:
        print("# refused %.1f ms after the signal" % (refused_after * 1000))

    statuses = []
    for s in busy + queued:
        try:
            st, _, _ = receive(s)
        except OSError as e:
            st = "%s" % e
        statuses.append(st)
    answered = time.monotonic() - t0
    ok(statuses[:a.threads] == [200] * a.threads,
       "the %d requests in flight at SIGTERM are answered 200" % a.threads, statuses[:a.threads])
    ok(statuses[a.threads:] == [200] * a.queued,
       "the %d requests waiting in the accept backlog are answered 200" % a.queued,
       statuses[a.threads:])
    print("# all answered %.0f ms after the signal" % (answered * 1000))

    while alive(a.pid) and time.monotonic() - t0 < 15:
        time.sleep(0.05)
    ok(not alive(a.pid), "the responder exits after the requests (%.0f ms after SIGTERM)"
       % ((time.monotonic() - t0) * 1000))
    return TAP.done()


if __name__ == "__main__":
    sys.exit(main())
