#!/usr/bin/env python3
"""GET /events over WebSocket (issue 6, the nginx module only): TAP tests
against a running shop, with the small client of wsclient.py.

    websocket.py --url http://127.0.0.1:8080 --dsn "host=... dbname=..." \
                 --token-file TOKEN [--heartbeat]

--url serves the module (FastCGI cannot switch protocols). --dsn is the
shop's database (psql emits test events). --heartbeat waits 16 s for the
server's ping.
"""
import argparse
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from tap import Tap  # noqa: E402
from wsclient import (OP_BINARY, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, WebSocket,  # noqa: E402
                      close_code)



TAP = Tap()
ok, note = TAP.ok, TAP.note


class Shop:
    def __init__(self, url, token, dsn):
        self.url = url.rstrip("/")
        self.token = token
        self.dsn = dsn

    def call(self, method, path, body=None, admin=False):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method)
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

    def emit(self, run, topic="products", n=1):
        out = self.sql("SELECT shop.emit('test.ws', '%s', json_build_object('run', '%s', 'n', i)) "
                       "FROM generate_series(1, %d) i" % (topic, run, n))
        return [int(x) for x in out.split()]


def events(ws, until, timeout=5):
    """Text frames as JSON until until(list) or timeout; other frames are kept apart."""
    got, other = [], []
    t_end = time.monotonic() + timeout
    while not until(got):
        left = t_end - time.monotonic()
        if left <= 0:
            break
        fr = ws.recv(timeout=left)
        if fr is None:
            break
        if fr[0] == OP_TEXT:
            got.append(json.loads(fr[1]))
        else:
            other.append(fr)
    return got, other


def close_of(ws, timeout=5):
    """The close frame's code after skipping other frames; None without one."""
    t_end = time.monotonic() + timeout
    while True:
        left = t_end - time.monotonic()
        if left <= 0:
            return None
        try:
            fr = ws.recv(timeout=left)
        except OSError:
            return None
        if fr is None:
            return None
        if fr[0] == OP_CLOSE:
            return close_code(fr[1])


def test_handshake(shop, a):
    ws = WebSocket(a.url)
    ok(ws.accepted(), "handshake: 101 with Upgrade, Connection and the right Sec-WebSocket-Accept",
       "%s %s" % (ws.status, ws.headers))
    ok(ws.headers.get("x-request-id") is not None, "handshake: X-Request-Id as on every answer")
    ok("content-length" not in ws.headers and "transfer-encoding" not in ws.headers,
       "handshake: no body framing headers on the 101")
    ws.shutdown()

    for name, kw in (("a key of 15 bytes", {"key": "AAAAAAAAAAAAAAAAAAAA"}),
                     ("a key that is not base64", {"key": "!!!!!!!!!!!!!!!!!!!!!!=="}),
                     ("no key", {"key": ""})):
        ws = WebSocket(a.url, **kw)
        body = {}
        try:
            body = json.loads(ws.body)
        except ValueError:
            pass
        ok(ws.status == 400 and body.get("status") == 400, "handshake refused: %s (400 problem)" % name,
           "%s %s" % (ws.status, ws.body[:200]))
        ws.shutdown()

    ws = WebSocket(a.url, version="8")
    ok(ws.status == 400 and ws.headers.get("sec-websocket-version") == "13",
       "handshake refused: version 8 (400, Sec-WebSocket-Version: 13)", "%s %s" % (ws.status, ws.headers))
    ws.shutdown()
    ws = WebSocket(a.url, version=None)
    ok(ws.status == 400, "handshake refused: no version (400)", ws.status)
    ws.shutdown()
    ws = WebSocket(a.url, connection="keep-alive")
    ok(ws.status == 400, "handshake refused: Upgrade without Connection: Upgrade (400)", ws.status)
    ws.shutdown()
    ws = WebSocket(a.url, path="/events?topics=nope")
    ok(ws.status == 400, "handshake refused: topics=nope (400)", ws.status)
    ws.shutdown()
    ws = WebSocket(a.url, upgrade="h2c", version=None, key="")
    ok(ws.status == 200 and ws.headers.get("content-type", "").startswith("text/event-stream"),
       "Upgrade: h2c is ignored: an SSE stream (200)", "%s %s" % (ws.status, ws.headers))
    ws.shutdown()


def test_frames(shop, a):
    run = uuid.uuid4().hex[:8]
    ws = WebSocket(a.url, "/events?topics=products")
    ws_p = WebSocket(a.url, "/events?topics=prices")
    time.sleep(0.3)
    ids = shop.emit(run, n=20)
    got, other = events(ws, lambda g: len([e for e in g if e["id"] in ids]) >= 20)
    mine = [e for e in got if e["data"].get("run") == run]
    ok([e["id"] for e in mine] == ids, "20 events arrive as text frames, in order (%d)" % len(mine),
       "%s vs %s" % ([e["id"] for e in mine], ids))
    ok(all(e["type"] == "test.ws" and e["data"]["n"] == i + 1 and "at" in e for i, e in enumerate(mine)),
       "each frame is the event's JSON: id, type, at, data")
    got_p, _ = events(ws_p, lambda g: False, timeout=0.5)
    ok(got_p == [], "topics=prices: no product events")

    # client ping: a pong with the same payload
    ws.send(OP_PING, b"are you there")
    fr = ws.recv(timeout=3)
    while fr is not None and fr[0] == OP_TEXT:
        fr = ws.recv(timeout=3)
    ok(fr is not None and fr[0] == OP_PONG and fr[1] == b"are you there", "a ping gets a pong with its payload", fr)

    # pongs and messages from the client are read and dropped; the stream goes on
    ws.send(OP_PONG, b"unsolicited")
    ws.send(OP_TEXT, b"hello server")
    ws.send(OP_BINARY, bytes(range(200)))
    ws.send(OP_TEXT, b"frag", fin=False)
    ws.send(0x0, b"mented")
    ids2 = shop.emit(run, n=1)
    got, other = events(ws, lambda g: any(e["id"] == ids2[0] for e in g))
    ok(any(e["id"] == ids2[0] for e in got) and not other,
       "pongs, text, binary and fragmented messages from the client are ignored", other)

    # the price ticker on WebSocket
    st, p = shop.call("POST", "/products", {"sku": "WS-" + run, "name": "Ws " + run, "price_cents": 100,
                                            "currency": "EUR"}, admin=True)
    st2, _ = shop.call("PATCH", "/products/%d" % (p["id"] if isinstance(p, dict) else 0), {"price_cents": 150},
                       admin=True)
    got_p, _ = events(ws_p, lambda g: len(g) >= 1)
    ok(st == 201 and st2 == 200 and len(got_p) == 1 and got_p[0]["type"] == "price.changed"
       and got_p[0]["data"]["new_price_cents"] == 150, "topics=prices: the price.changed of a PATCH", got_p)

    # close from the client: the server answers close and closes
    ws.close(1000)
    code = close_of(ws)
    ok(code == 1000, "a close gets a close (1000)", code)
    ok(ws.eof(), "then the server closes the connection")
    ws.shutdown()
    ws_p.close(1001)
    ok(close_of(ws_p) == 1000 and ws_p.eof(), "a close 1001 (going away) too gets 1000 and the close")
    ws_p.shutdown()


def test_refused_frames(shop, a):
    ws = WebSocket(a.url)
    ws.send(OP_TEXT, b"not masked", mask=False)
    code = close_of(ws)
    ok(code == 1002, "an unmasked frame: close 1002", code)
    ok(ws.eof(), "then the server closes the connection")
    ws.shutdown()

    ws = WebSocket(a.url)
    ws.send(OP_TEXT, b"x" * 5000)
    ok(close_of(ws) == 1009 and ws.eof(), "a 5000-byte frame (over 4 KB): close 1009")
    ws.shutdown()

    ws = WebSocket(a.url)
    # only the header: the server refuses before the payload comes
    ws.sock.sendall(ws.frame(OP_BINARY, b"", length=1 << 40)[:14])
    ok(close_of(ws) == 1009 and ws.eof(), "a frame that claims 1 TB: close 1009 at its header")
    ws.shutdown()

    ws = WebSocket(a.url)
    ws.send(OP_PING, b"p" * 126)
    ok(close_of(ws) == 1002 and ws.eof(), "a ping of 126 bytes (control frames <= 125): close 1002")
    ws.shutdown()

    ws = WebSocket(a.url)
    ws.sock.sendall(bytes([0x80 | 0x40 | OP_TEXT, 0x80]) + b"\0\0\0\0")
    ok(close_of(ws) == 1002 and ws.eof(), "a reserved bit: close 1002")
    ws.shutdown()

    ws = WebSocket(a.url)
    ws.sock.sendall(bytes([0x80 | 0x3, 0x80]) + b"\0\0\0\0")
    ok(close_of(ws) == 1002 and ws.eof(), "an unknown opcode: close 1002")
    ws.shutdown()

    ws = WebSocket(a.url)
    ws.send(OP_CLOSE, b"\x03")
    ok(close_of(ws) == 1002 and ws.eof(), "a close with a 1-byte payload: close 1002")
    ws.shutdown()

    # a client that goes away without a close: nothing else breaks
    ws = WebSocket(a.url)
    ws.shutdown()
    st, _ = shop.call("GET", "/healthz")
    ok(st == 200, "a client that vanishes without a close: the server goes on")


def test_resume(shop, a):
    run = uuid.uuid4().hex[:8]
    ids = shop.emit(run, n=30)
    ws = WebSocket(a.url, "/events?topics=products&after=%d" % (ids[9]))
    got, _ = events(ws, lambda g: any(e["id"] == ids[-1] for e in g))
    mine = [e["id"] for e in got if e["data"].get("run") == run]
    ok(mine == ids[10:], "?after= over WebSocket: the 20 later events from the table, in order",
       "%s vs %s" % (mine, ids[10:]))
    more = shop.emit(run, n=5)
    got, _ = events(ws, lambda g: any(e["id"] == more[-1] for e in g))
    ok([e["id"] for e in got] == more, "then live, without a gap or a duplicate")
    ws.close()
    ws.shutdown()

    ws = WebSocket(a.url, "/events", headers={"Last-Event-ID": str(ids[24])})
    got, _ = events(ws, lambda g: any(e["id"] == more[-1] for e in g))
    ok([e["id"] for e in got if e["data"].get("run") == run] == ids[25:] + more,
       "Last-Event-ID over WebSocket: the same")
    ws.close()
    ws.shutdown()


def test_auth(shop, a):
    """The orders topic over WebSocket: the admin token, checked before the
    101 (a refusal is an ordinary answer: no upgrade, no frame)."""
    run = uuid.uuid4().hex[:8]
    wrong = ("x" if not shop.token.startswith("x") else "y") + shop.token[1:]
    for name, path, headers, want, kind in (
            ("topics=orders without the token", "/events?topics=orders", {}, 401, "unauthorized"),
            ("topics=prices,orders without the token", "/events?topics=prices,orders", {}, 401, "unauthorized"),
            ("topics=orders&after=0 without the token", "/events?topics=orders&after=0", {}, 401, "unauthorized"),
            ("topics=orders with a wrong token", "/events?topics=orders", {"Authorization": "Bearer " + wrong},
             403, "forbidden")):
        ws = WebSocket(a.url, path, headers=headers)
        body = {}
        try:
            body = json.loads(ws.body)
        except ValueError:
            pass
        ok(ws.status == want and "upgrade" not in ws.headers and "sec-websocket-accept" not in ws.headers
           and ws.headers.get("content-type", "").startswith("application/problem+json")
           and str(body.get("type", "")).endswith("/" + kind),
           "handshake %s: %d %s problem+json, not 101" % (name, want, kind), "%s %s %r" % (ws.status, ws.headers,
                                                                                        ws.body[:300]))
        if want == 401:
            www = ws.headers.get("www-authenticate", "")
            ok(www.startswith("Bearer") and 'realm="shop"' in www,
               "handshake %s: WWW-Authenticate: Bearer realm=\"shop\"" % name, ws.headers)
        shop.sql("SELECT shop.emit('test.private', 'orders', json_build_object('run', '%s'))" % run)
        ws.sock.settimeout(0.5)
        rest = b""
        try:
            while True:
                more = ws.sock.recv(65536)
                if not more:
                    break
                rest += more
        except OSError:
            pass
        ok(ws.buf == b"" and run.encode() not in rest and b"order" not in rest,
           "handshake %s: nothing after the answer (an order event was written meanwhile)" % name,
           "%r %r" % (ws.buf[:200], rest[:200]))
        ws.shutdown()

    # With the token: 101, and the order events as text frames.
    sku, wh = "WSA-" + run, "wsa-" + run
    st1, _ = shop.call("POST", "/products", {"sku": sku, "name": "Ws auth " + run, "price_cents": 900,
                                             "currency": "EUR"}, admin=True)
    st2, _ = shop.call("PUT", "/warehouses/" + wh, {"name": "Ws " + run}, admin=True)
    st3, _ = shop.call("PUT", "/warehouses/%s/stock/%s" % (wh, sku), {"quantity": 3}, admin=True)
    ws = WebSocket(a.url, "/events?topics=orders", headers={"Authorization": "Bearer " + shop.token})
    ok(ws.accepted(), "handshake topics=orders with the token: 101", "%s %s" % (ws.status, ws.headers))
    time.sleep(0.3)
    email = "wsa-%s@example.com" % run
    st4, o = shop.call("POST", "/orders", {"items": [{"sku": sku, "quantity": 1}], "customer_email": email})
    oid = o.get("id") if isinstance(o, dict) else None
    st5, _ = shop.call("POST", "/orders/%s/transitions" % oid, {"to": "cancelled"}, admin=True)
    got, other = events(ws, lambda g: len([e for e in g if e["data"].get("id") == oid]) >= 2)
    mine = [e for e in got if e["data"].get("id") == oid]
    ok((st1, st2 in (200, 201), st3, st4, st5) == (201, True, 200, 201, 200)
       and [e["type"] for e in mine] == ["order.created", "order.status_changed"]
       and mine[0]["data"].get("customer_email") == email and not other,
       "with the token: order.created and order.status_changed as text frames",
       "%s %s" % ([(e["type"], e["data"]) for e in got], other))
    ok(all(e["type"].startswith("order.") for e in got), "topics=orders: no other event (no stock.changed)",
       [e["type"] for e in got])
    ws.close()
    ws.shutdown()


def test_reset(shop, a):
    """A resume from further back than the replay limit: a reset frame first."""
    if not a.limited_url:
        note("skipped: the replay limit (no --limited-url)")
        return
    lim, L = a.limited_url, a.replay_limit
    run = uuid.uuid4().hex[:8]
    ids = shop.emit(run, n=2 * L)
    watch = WebSocket(lim, "/events?topics=products&after=%d" % (ids[-1] - 1))
    events(watch, lambda g: any(e["id"] == ids[-1] for e in g))
    # Within the limit: no reset.
    ws = WebSocket(lim, "/events?topics=products&after=%d" % ids[L - 1])
    got, _ = events(ws, lambda g: any(e.get("id") == ids[-1] for e in g))
    ok([e.get("type") for e in got if e.get("type") == "reset"] == [] and [e.get("id") for e in got] == ids[L:],
       "?after= with the limit (%d) of events after it: no reset, all of them" % L, got[:3])
    ws.close()
    ws.shutdown()
    # One more: a reset to the newest L, then those, then live.
    for name, path, headers in (("?after=", "/events?topics=products&after=%d" % ids[L - 2], None),
                                ("Last-Event-ID", "/events?topics=products", {"Last-Event-ID": str(ids[0] - 1)})):
        ws = WebSocket(lim, path, headers=headers)
        got, _ = events(ws, lambda g: any(e.get("id") == ids[-1] for e in g))
        want0 = {"type": "reset", "data": {"reason": "too-far-behind", "next_id": ids[L]}}
        ok(got[:1] == [want0] and [e.get("id") for e in got[1:]] == ids[L:],
           "%s too far back: the first frame is %s, then the newest %d events" % (name, json.dumps(want0), L),
           "%s ... (%d frames)" % (got[:2], len(got)))
        more = shop.emit(run, n=3)
        got2, _ = events(ws, lambda g: any(e.get("id") == more[-1] for e in g))
        ok([e.get("id") for e in got2] == more, "%s: then live, no gap, no duplicate, no second reset" % name, got2)
        ws.close()
        ws.shutdown()
        ids = ids[3:] + more                # the newest 2L again
    watch.close()
    watch.shutdown()


def test_heartbeat(shop, a):
    if not a.heartbeat:
        note("skipped: the server's ping (no --heartbeat)")
        return
    ws = WebSocket(a.url, "/events?topics=prices")
    t0 = time.monotonic()
    fr = ws.recv(timeout=17)
    ok(fr is not None and fr[0] == OP_PING, "a ping within 15 s of silence (%.1f s)" % (time.monotonic() - t0), fr)
    if fr is not None and fr[0] == OP_PING:
        ws.send(OP_PONG, fr[1])
    ws.close()
    ws.shutdown()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--dsn", required=True)
    ap.add_argument("--token-file", required=True)
    ap.add_argument("--heartbeat", action="store_true")
    ap.add_argument("--limited-url", help="the same shop with a small replay limit: the reset frame")
    ap.add_argument("--replay-limit", type=int, default=50, help="the replay limit of --limited-url")
    ap.add_argument("--only", help="comma-separated test names (test_burst,...): only those")
    a = ap.parse_args()
    shop = Shop(a.url, open(a.token_file).read().strip(), a.dsn)
    for t in (test_handshake, test_frames, test_refused_frames, test_resume, test_auth, test_reset,
              test_heartbeat):
        if a.only and t.__name__ not in a.only.split(","):
            continue
        t0 = time.monotonic()
        try:
            t(shop, a)
        except Exception as e:
            ok(False, "%s raised %r" % (t.__name__, e))
        note("%s: %.1f s" % (t.__name__, time.monotonic() - t0))
    sys.exit(TAP.done())


if __name__ == "__main__":
    main()
