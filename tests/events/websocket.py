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
    a = ap.parse_args()
    shop = Shop(a.url, open(a.token_file).read().strip(), a.dsn)
    for t in (test_handshake, test_frames, test_refused_frames, test_resume, test_heartbeat):
        try:
            t(shop, a)
        except Exception as e:
            ok(False, "%s raised %r" % (t.__name__, e))
    sys.exit(TAP.done())


if __name__ == "__main__":
    main()
