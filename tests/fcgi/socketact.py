#!/usr/bin/env python3
"""A restart of shop-fcgi under systemd-style socket activation loses no
request: this script holds the listening socket as systemd does and starts
shop-fcgi with it as fd 3 (LISTEN_FDS=1, LISTEN_PID). TAP on stdout.

    socketact.py --bin build/fcgi/shop-fcgi --socket /tmp/x.sock --log /tmp/x.log \
                 --threads 2 [VAR=VALUE ...]       (the responder's environment)

The responder knows a warehouse whose stock query sleeps about a second
(the caller's database): 2 stock checks occupy both threads, 4 more
requests wait in the queue, SIGTERM: the 2 are answered, the process
exits 0 and leaves the socket open (a connect after the signal is queued,
not refused); a second process on the same socket answers the 5 waiting.
An idle process stops within about a second; the socket still serves a
third one.
"""
import argparse
import json
import os
import signal
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from tap import Tap  # noqa: E402
from fcgiclient import connect, receive, request, send  # noqa: E402

TAP = Tap()
ok = TAP.ok


def start(o, lsock, env):
    """fork + exec shop-fcgi with lsock as fd 3, as systemd passes it."""
    pid = os.fork()
    if pid == 0:
        try:
            if lsock.fileno() == 3:
                os.set_inheritable(3, True)
            else:
                os.dup2(lsock.fileno(), 3, inheritable=True)
            null = os.open("/dev/null", os.O_RDWR)
            os.dup2(null, 0)
            logfd = os.open(o.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.dup2(logfd, 1)
            os.dup2(logfd, 2)
            e = dict(env, LISTEN_PID=str(os.getpid()), LISTEN_FDS="1")
            os.execve(o.bin, [o.bin], e)
        finally:
            os._exit(127)
    return pid


def wait_exit(pid, limit):
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status), time.monotonic() - t0
        time.sleep(0.02)
    return None, limit


def ready(addr, pid):
    for _ in range(100):
        try:
            if request(addr, "GET", "/readyz", timeout=2)[0] == 200:
                return True
        except OSError:
            pass
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            return False
        time.sleep(0.1)
    return False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--socket", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("env", nargs="*")
    o = ap.parse_args()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "SHOP_THREADS": str(o.threads)}
    for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS"):
        if k in os.environ:
            env[k] = os.environ[k]
    env.update(kv.split("=", 1) for kv in o.env)
    addr = "unix:" + o.socket

    try:
        os.unlink(o.socket)
    except FileNotFoundError:
        pass
    lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    lsock.bind(o.socket)
    lsock.listen(64)
    pids = []
    try:
        p1 = start(o, lsock, env)
        pids.append(p1)
        ok(ready(addr, p1), "first process (fd 3 from LISTEN_FDS) answers /readyz")

        check = json.dumps({"items": [{"sku": "SKU-000001", "quantity": 1}]}).encode()
        busy, queued = [], []
        for _ in range(o.threads):
            s = connect(addr, timeout=20)
            send(s, "POST", "/stock/check", check)
            busy.append(s)
        time.sleep(0.3)
        for _ in range(4):
            s = connect(addr, timeout=20)
            send(s, "GET", "/healthz")
            queued.append(s)
        os.kill(p1, signal.SIGTERM)
        time.sleep(0.05)
        try:
            s = connect(addr, timeout=20)
            send(s, "GET", "/healthz")
            queued.append(s)
            late = True
        except OSError as e:
            late = e
        ok(late is True, "a connect after SIGTERM is queued, not refused (the socket stays open)", late)

        st = []
        for s in busy:
            try:
                st.append(receive(s)[0])
            except OSError as e:
                st.append(str(e))
        ok(st == [200] * o.threads, "the %d requests in flight are answered 200" % o.threads, st)
        code, secs = wait_exit(p1, 10)
        ok(code == 0, "the first process exits 0 (%.0f ms after its last answer)" % (secs * 1000), code)
        pids.remove(p1)

        p2 = start(o, lsock, env)
        pids.append(p2)
        t0 = time.monotonic()
        st = []
        for s in queued:
            try:
                st.append(receive(s)[0])
            except OSError as e:
                st.append(str(e))
        ok(st == [200] * len(queued), "the second process answers the %d requests that waited"
           % len(queued), st)
        print("# answered %.0f ms after the second process started" % ((time.monotonic() - t0) * 1000))

        ok(ready(addr, p2), "the second process serves")
        time.sleep(0.5)
        t0 = time.monotonic()
        os.kill(p2, signal.SIGTERM)
        code, secs = wait_exit(p2, 10)
        ok(code == 0 and secs < 3, "an idle process exits 0 within the accept tick (%.0f ms)"
           % (secs * 1000), (code, secs))
        pids.remove(p2)

        p3 = start(o, lsock, env)
        pids.append(p3)
        ok(ready(addr, p3), "the socket still serves a third process")
        os.kill(p3, signal.SIGTERM)
        code, _ = wait_exit(p3, 10)
        ok(code == 0, "the third process exits 0", code)
        pids.remove(p3)
    finally:
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
                os.waitpid(p, 0)
            except OSError:
                pass
        lsock.close()
    return TAP.done()


if __name__ == "__main__":
    sys.exit(main())
