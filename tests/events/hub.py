#!/usr/bin/env python3
"""The broadcast hub across processes and front-ends (issue 6): TAP tests
against a running shop served by the nginx module, and optionally by
shop-fcgi on the same database.

    hub.py --module URL --dsn "host=... dbname=..." --token-file TOKEN \
           [--fcgi URL] [--master PID] [--reload-cmd "nginx -s reload ..."]

  --module      the module (best with worker_processes 2 or more)
  --fcgi        shop-fcgi behind nginx: changes made through one front-end
                reach subscribers of the other
  --master      nginx's master PID: subscribers on every worker (its
                children) receive every event; memory of a worker under a
                slow subscriber
  --reload-cmd  reloads nginx: the old workers' streams end cleanly (SSE:
                the last chunk; WebSocket: close 1001) and clients resume by
                id on the new ones without a gap

The database should be a throwaway one: the tests write products and test
events.
"""
import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from tap import Tap  # noqa: E402
from wsclient import OP_CLOSE, OP_TEXT, WebSocket, close_code  # noqa: E402



TAP = Tap()
ok, note = TAP.ok, TAP.note


class Sse:
    """An SSE client on a thread: events as dicts (the JSON), and how it ended."""

    def __init__(self, base, query="", headers=None, timeout=60):
        u = urllib.parse.urlsplit(base)
        self.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
        self.conn.connect()
        self.local_port = self.conn.sock.getsockname()[1]
        h = {"Accept": "text/event-stream"}
        h.update(headers or {})
        self.conn.request("GET", u.path.rstrip("/") + "/events" + query, headers=h)
        self.resp = self.conn.getresponse()
        self.status = self.resp.status
        self.events, self.eof, self.clean, self.closed = [], False, False, False
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        cur = {}
        try:
            while True:
                line = self.resp.readline()
                if not line:
                    # http.client ends a chunked body at its last chunk: clean
                    self.clean = self.resp.chunked is False or self.resp.chunk_left is None
                    break
                line = line.decode().rstrip("\r\n")
                if line == "" and "data" in cur:
                    with self.cond:
                        self.events.append(json.loads(cur["data"]))
                        self.cond.notify_all()
                    cur = {}
                elif line and not line.startswith(":"):
                    k, _, v = line.partition(":")
                    cur[k] = v[1:] if v.startswith(" ") else v
        except Exception:
            self.clean = False
        finally:
            with self.cond:
                self.eof = True
                self.cond.notify_all()

    def wait(self, pred, timeout=10.0):
        t_end = time.monotonic() + timeout
        with self.cond:
            while not pred(self.events):
                left = t_end - time.monotonic()
                if left <= 0 or self.eof:
                    return pred(self.events)
                self.cond.wait(min(left, 0.2))
            return True

    def wait_eof(self, timeout=10.0):
        t_end = time.monotonic() + timeout
        with self.cond:
            while not self.eof and time.monotonic() < t_end:
                self.cond.wait(0.2)
            return self.eof

    def ids(self):
        with self.cond:
            return [e["id"] for e in self.events]

    def close(self):
        self.closed = True
        try:
            self.conn.sock.shutdown(socket.SHUT_RDWR)
        except Exception:
            pass
        self.conn.close()


class Ws:
    """A WebSocket subscriber on a thread: events, and the close code it got."""

    def __init__(self, base, path="/events"):
        self.ws = WebSocket(base, path, timeout=60)
        self.status = self.ws.status
        self.local_port = self.ws.sock.getsockname()[1]
        self.events, self.eof, self.code = [], False, None
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        try:
            while True:
                fr = self.ws.recv(timeout=120)
                if fr is None:
                    break
                if fr[0] == OP_TEXT:
                    with self.cond:
                        self.events.append(json.loads(fr[1]))
                        self.cond.notify_all()
                elif fr[0] == OP_CLOSE:
                    self.code = close_code(fr[1])
                    self.ws.close(1000)
                    self.ws.eof(3)
                    break
        except Exception:
            pass
        finally:
            with self.cond:
                self.eof = True
                self.cond.notify_all()

    wait = Sse.wait
    wait_eof = Sse.wait_eof
    ids = Sse.ids

    def close(self):
        self.ws.close()
        self.ws.shutdown()


class Shop:
    def __init__(self, url, token, dsn):
        self.url = url.rstrip("/")
        self.token = token
        self.dsn = dsn

    def call(self, method, path, body=None, admin=False, url=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request((url or self.url) + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if admin:
            req.add_header("Authorization", "Bearer " + self.token)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                status, raw = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
        return status, (json.loads(raw) if raw else None)

    def sql(self, text):
        r = subprocess.run(["psql", "-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1", self.dsn, "-c", text],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError("psql: " + r.stderr.strip())
        return r.stdout.strip()

    def emit(self, run, n=1, topic="products", pad=0):
        out = self.sql("SELECT shop.emit('test.hub', '%s', json_build_object('run', '%s', 'n', i%s)) "
                       "FROM generate_series(1, %d) i"
                       % (topic, run, ", 'pad', repeat('x', %d)" % pad if pad else "", n))
        return [int(x) for x in out.split()]


def product(shop, run, url=None):
    st, p = shop.call("POST", "/products", {"sku": "HUB-" + run, "name": "Hub " + run, "price_cents": 1000,
                                            "currency": "EUR"}, admin=True, url=url)
    return st, (p or {})


def test_cross(shop, a):
    if not a.fcgi:
        note("skipped: cross-front-end delivery (no --fcgi)")
        return
    run = uuid.uuid4().hex[:8]
    m_sse, m_ws, f_sse = Sse(a.module, "?topics=products"), Ws(a.module, "/events?topics=products"), \
        Sse(a.fcgi, "?topics=products")
    ok(m_sse.status == 200 and m_ws.status == 101 and f_sse.status == 200, "subscribed on both front-ends")
    time.sleep(0.3)
    st, p = product(shop, run, url=a.fcgi)
    pid = p.get("id")
    got = [s.wait(lambda ev: any(e["type"] == "product.created" and e["data"].get("id") == pid for e in ev))
           for s in (m_sse, m_ws)]
    ok(st == 201 and all(got), "a product created through shop-fcgi reaches SSE and WebSocket subscribers of "
       "the module", "%s %s" % (st, got))
    st, _ = shop.call("PATCH", "/products/%s" % pid, {"name": "Hub renamed " + run}, admin=True)
    got = [s.wait(lambda ev: any(e["type"] == "product.updated" and e["data"].get("id") == pid for e in ev))
           for s in (f_sse, m_sse, m_ws)]
    ok(st == 200 and got[0], "a change made through the module reaches a subscriber of shop-fcgi")
    mine = lambda s: [e["id"] for e in s.events if e["data"].get("id") == pid]  # noqa: E731
    ok(mine(m_sse) == mine(m_ws) == mine(f_sse) and len(mine(f_sse)) == 2,
       "the three subscribers saw the same two events", "%s %s %s" % (mine(m_sse), mine(m_ws), mine(f_sse)))
    for s in (m_sse, m_ws, f_sse):
        s.close()


def worker_of(master, local_ports):
    """{client port: worker pid} for connections to nginx (from ss)."""
    out = subprocess.run(["ss", "-Htnp", "state", "established"], capture_output=True, text=True).stdout
    owner = {}
    for line in out.splitlines():
        cols = line.split()
        if len(cols) < 5 or "nginx" not in line:
            continue
        peer = cols[3].rsplit(":", 1)[-1]
        for part in line.split("pid=")[1:]:
            pid = int(part.split(",")[0])
            if peer.isdigit() and int(peer) in local_ports:
                owner[int(peer)] = pid
    return owner


def test_workers(shop, a):
    if not a.master:
        note("skipped: every worker (no --master)")
        return
    workers = subprocess.run(["pgrep", "-P", str(a.master)], capture_output=True, text=True).stdout.split()
    workers = sorted(int(w) for w in workers)
    subs = []
    for i in range(60):
        subs.append(Sse(a.module, "?topics=products") if i % 2 else Ws(a.module, "/events?topics=products"))
    time.sleep(0.5)
    owner = worker_of(a.master, {s.local_port: s for s in subs})
    per = {w: sum(1 for s in subs if owner.get(s.local_port) == w) for w in workers}
    note("workers %s; subscribers per worker %s" % (workers, per))
    ok(len(workers) >= 2 and all(per[w] > 0 for w in workers),
       "60 subscribers spread over all %d workers" % len(workers), per)
    run = uuid.uuid4().hex[:8]
    ids = shop.emit(run, n=200)
    got = [s.wait(lambda ev: sum(1 for e in ev if e["data"].get("run") == run) >= 200, 15) for s in subs]
    exact = [[e["id"] for e in s.events if e["data"].get("run") == run] == ids for s in subs]
    ok(all(got) and all(exact), "every subscriber on every worker got all 200 events, in order (%d of %d)"
       % (sum(exact), len(subs)))
    for s in subs:
        s.close()


def test_commit_order(shop, a):
    """Ids are drawn before commit: a later id may commit first."""
    run = uuid.uuid4().hex[:8]
    sse, ws = Sse(a.module, "?topics=products"), Ws(a.module, "/events?topics=products")
    time.sleep(0.3)
    held = subprocess.Popen(["psql", "-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1", a.dsn], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    held.stdin.write("BEGIN;\nSELECT shop.emit('test.hub', 'products', json_build_object('run', '%s', 'n', 1));\n"
                     % run)
    held.stdin.flush()
    first = int(held.stdout.readline())
    second = shop.emit(run, n=1)[0]
    time.sleep(1)
    early = [e["id"] for s in (sse, ws) for e in s.events if e["data"].get("run") == run]
    held.stdin.write("COMMIT;\n")
    held.stdin.close()
    held.wait()
    got = [s.wait(lambda ev: sum(1 for e in ev if e["data"].get("run") == run) >= 2, 5) for s in (sse, ws)]
    ok(first < second and early == [], "an event committed after a later one is held back: nothing delivered "
       "while id %d is open and %d committed" % (first, second), early)
    ok(all(got) and all([e["id"] for e in s.events if e["data"].get("run") == run] == [first, second]
                        for s in (sse, ws)),
       "once it commits, both arrive in id order (SSE and WebSocket)")
    sse.close()
    ws.close()


def test_ticker(shop, a):
    run = uuid.uuid4().hex[:8]
    st, p = product(shop, run)
    ws1, ws2, sse = Ws(a.module, "/events?topics=prices"), Ws(a.module, "/events?topics=prices"), \
        Sse(a.module, "?topics=prices")
    time.sleep(0.3)
    st2, _ = shop.call("PATCH", "/products/%s" % p.get("id"), {"price_cents": 1234}, admin=True)
    got = [s.wait(lambda ev: len(ev) >= 1, 5) for s in (ws1, ws2, sse)]
    evs = [s.events[0] if s.events else None for s in (ws1, ws2, sse)]
    ok(st == 201 and st2 == 200 and all(got) and evs[0] == evs[1] == evs[2]
       and evs[0]["type"] == "price.changed" and evs[0]["data"]["slug"] == p.get("slug")
       and evs[0]["data"]["old_price_cents"] == 1000 and evs[0]["data"]["new_price_cents"] == 1234,
       "the price ticker: two WebSocket clients and one SSE client see the same price.changed", evs)
    time.sleep(0.3)
    ok(all(len(s.events) == 1 for s in (ws1, ws2, sse)), "and nothing else")
    for s in (ws1, ws2, sse):
        s.close()


def rss_kb(pid):
    try:
        for line in open("/proc/%d/status" % pid):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None


def test_slow(shop, a):
    """A WebSocket client that never reads, next to one that does."""
    run = uuid.uuid4().hex[:8]
    u = urllib.parse.urlsplit(a.module)
    slow = WebSocket(a.module, "/events?topics=products")
    slow.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    reader = Ws(a.module, "/events?topics=products")
    time.sleep(0.3)
    workers = []
    if a.master:
        workers = [int(w) for w in subprocess.run(["pgrep", "-P", str(a.master)], capture_output=True,
                                                  text=True).stdout.split()]
    rss0 = {w: rss_kb(w) for w in workers}
    n, pad = 3000, 4000
    t0 = time.monotonic()
    for i in range(0, n, 500):
        shop.emit(run, n=500, pad=pad)
    got = reader.wait(lambda ev: sum(1 for e in ev if e["data"].get("run") == run) >= n, 30)
    ok(got, "a WebSocket reader gets all %d events of 4 KB while another never reads (%.1f s)"
       % (n, time.monotonic() - t0))
    time.sleep(2.5)
    slow.sock.settimeout(5)
    total, ended = 0, False
    try:
        while True:
            b = slow.sock.recv(1 << 20)
            if not b:
                ended = True
                break
            total += len(b)
    except socket.timeout:
        pass
    except OSError:
        ended = True
    ok(ended and total < n * pad, "the one that never reads was dropped (%d KB had reached it)" % (total // 1024))
    slow.shutdown()
    rss1 = {w: rss_kb(w) for w in workers}
    if workers:
        grow = max((rss1[w] or 0) - (rss0[w] or 0) for w in workers)
        note("worker RSS before %s, after %s KB (the burst: %d MB)" % (rss0, rss1, n * pad >> 20))
        ok(grow < 24 * 1024, "worker memory stays bounded: +%d KB after a %d MB burst" % (grow, n * pad >> 20))
    st, _ = shop.call("GET", "/healthz")
    ok(st == 200 and not reader.eof, "the reader and the server go on")
    reader.close()


def test_reload(shop, a):
    if not a.reload_cmd:
        note("skipped: streams across a reload (no --reload-cmd)")
        return
    run = uuid.uuid4().hex[:8]
    sse, ws = Sse(a.module, "?topics=products"), Ws(a.module, "/events?topics=products")
    time.sleep(0.3)
    first = shop.emit(run, n=10)
    sse.wait(lambda ev: len(ev) >= 10)
    ws.wait(lambda ev: len(ev) >= 10)
    stop = threading.Event()
    written = []

    def writer():
        while not stop.is_set():
            written.extend(shop.emit(run, n=5))
            time.sleep(0.02)
    th = threading.Thread(target=writer)
    th.start()
    time.sleep(0.3)
    r = subprocess.run(a.reload_cmd, shell=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    ended = sse.wait_eof(10) and ws.wait_eof(10)
    ok(r.returncode == 0 and ended, "reload: the old worker's streams end")
    ok(sse.clean, "reload: the SSE stream ends with its last chunk")
    ok(ws.code == 1001, "reload: the WebSocket gets close 1001 (going away)", ws.code)
    # the clients come back, with their last ids
    time.sleep(0.5)
    sse2 = Sse(a.module, "", headers={"Last-Event-ID": str(sse.ids()[-1])})
    ws2 = Ws(a.module, "/events?after=%d" % ws.ids()[-1])
    time.sleep(0.5)
    stop.set()
    th.join()
    last = shop.emit(run, n=1)
    for s2 in (sse2, ws2):
        s2.wait(lambda ev: any(e["id"] == last[0] for e in ev), 10)
    want = first + written + last
    for name, s1, s2 in (("SSE", sse, sse2), ("WebSocket", ws, ws2)):
        union = [i for i in s1.ids() if i in set(want)] + [i for i in s2.ids() if i in set(want)]
        ok(union == want, "reload: %s resumes on a new worker: %d + %d events, no gap, no duplicate"
           % (name, len(s1.ids()), len(s2.ids())),
           "missing %s, extra %s" % (sorted(set(want) - set(union))[:10], len(union) - len(set(union))))
    sse2.close()
    ws2.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--module", required=True)
    ap.add_argument("--fcgi")
    ap.add_argument("--dsn", required=True)
    ap.add_argument("--token-file", required=True)
    ap.add_argument("--master", type=int)
    ap.add_argument("--reload-cmd")
    a = ap.parse_args()
    shop = Shop(a.module, open(a.token_file).read().strip(), a.dsn)
    for t in (test_cross, test_workers, test_commit_order, test_ticker, test_slow, test_reload):
        try:
            t(shop, a)
        except Exception as e:
            ok(False, "%s raised %r" % (t.__name__, e))
    sys.exit(TAP.done())


if __name__ == "__main__":
    main()
