#!/usr/bin/env python3
"""tests/servers/check.py URL TOKEN-FILE: the shop through one web server.

TAP on stdout (its own plan; tests/servers/run.sh renumbers). The cases are
what a web server in front of the shop must not break:

  - GET /products?limit=3: 200, JSON, three items (the query string passes)
  - GET /products/{slug}: 200 with an ETag, and If-None-Match gives 304
  - an unknown path: 404 application/problem+json with X-Request-Id
  - the client's X-Request-Id comes back
  - POST /products without a token: 401 with WWW-Authenticate: Bearer
  - POST /products with the token: 201 and Location (Authorization and the
    body reach the responder)
  - GET /events streams: an event written while the stream is open arrives
    within seconds (the server does not buffer the endless response)
"""
import http.client
import json
import os
import socket
import sys
import time
import urllib.parse

url = urllib.parse.urlsplit(sys.argv[1])
token = open(sys.argv[2]).read().strip()
base = url.path.rstrip("/")
HOST, PORT = url.hostname, url.port

n = 0
failed = 0


def result(cond, name, *diag):
    global n, failed
    n += 1
    print(("ok %d - %s" if cond else "not ok %d - %s") % (n, name))
    if not cond:
        failed += 1
        for d in diag:
            for line in str(d).splitlines():
                print("#   " + line)
    sys.stdout.flush()


def request(method, path, body=None, headers=None, timeout=10):
    c = http.client.HTTPConnection(HOST, PORT, timeout=timeout)
    h = dict(headers or {})
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        h.setdefault("Content-Type", "application/json")
    c.request(method, base + path, body=data, headers=h)
    r = c.getresponse()
    raw = r.read()
    c.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, raw


def js(raw):
    try:
        return json.loads(raw)
    except ValueError:
        return None


print("1..8")
auth = {"Authorization": "Bearer " + token}

st, h, raw = request("GET", "/products?limit=3")
doc = js(raw)
result(st == 200 and h.get("content-type", "").startswith("application/json")
       and isinstance(doc, dict) and len(doc.get("items", [])) == 3,
       "GET /products?limit=3: 200, three items", st, h, raw[:300])

st, h, raw = request("GET", "/products/product-1")
etag = h.get("etag")
result(st == 200 and etag and (js(raw) or {}).get("slug") == "product-1",
       "GET /products/product-1: 200 with an ETag", st, h, raw[:300])
st2, h2, raw2 = request("GET", "/products/product-1", headers={"If-None-Match": etag or '"x"'})
result(st2 == 304, "If-None-Match: 304", st2, h2)

st, h, raw = request("GET", "/no/such/thing")
result(st == 404 and h.get("content-type", "").startswith("application/problem+json")
       and h.get("x-request-id"), "unknown path: 404 problem+json with X-Request-Id", st, h, raw[:300])

rid = "servers-test-%d" % os.getpid()
st, h, raw = request("GET", "/healthz", headers={"X-Request-Id": rid})
result(st == 200 and h.get("x-request-id") == rid, "the client's X-Request-Id comes back", st, h)

sku = "SRV-%d-%d" % (os.getpid(), int(time.time() * 1000) % 100000000)
product = {"sku": sku, "name": "Server test " + sku, "price_cents": 1234, "currency": "EUR"}
st, h, raw = request("POST", "/products", body=product)
result(st == 401 and h.get("www-authenticate", "").startswith("Bearer"),
       "POST /products without a token: 401, WWW-Authenticate: Bearer", st, h, raw[:300])

st, h, raw = request("POST", "/products", body=product, headers=auth)
created = js(raw) or {}
result(st == 201 and h.get("location") and created.get("sku") == sku,
       "POST /products with the token: 201 and Location (Authorization and body pass)",
       st, h, raw[:300])


def sse_check():
    """Opens GET /events, then changes the product's price; the event must
    arrive while the stream stays open."""
    s = socket.create_connection((HOST, PORT), timeout=10)
    s.sendall(("GET %s/events?topics=prices,products HTTP/1.1\r\nHost: %s:%d\r\n"
               "Accept: text/event-stream\r\n\r\n" % (base, HOST, PORT)).encode())
    buf = b""
    deadline = time.time() + 10
    try:
        while b"\r\n\r\n" not in buf and time.time() < deadline:
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
    except socket.timeout:
        pass
    head, _, rest = buf.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        s.close()
        return False, "no 200 head within 10 s", head[:400]
    t0 = time.time()
    st, h, raw = request("PATCH", "/products/%s" % created.get("id"),
                         body={"price_cents": 4321}, headers=auth)
    if st != 200:
        s.close()
        return False, "PATCH failed", st, raw[:300]
    got = rest
    s.settimeout(0.5)
    while time.time() - t0 < 8:
        if b"price.changed" in got and sku.encode() in got:
            s.close()
            return True, "%.2f s" % (time.time() - t0)
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            continue
        if not chunk:
            break
        got += chunk
    s.close()
    return False, "no price.changed event for %s within 8 s" % sku, got[-600:]


try:
    ok, *diag = sse_check() if created.get("id") else (False, "no product created")
except OSError as e:
    ok, diag = False, ["GET /events: %r" % e]
result(ok, "GET /events streams: the price change arrives while the stream is open (%s)"
       % (diag[0] if ok else "no"), *diag)
sys.exit(1 if failed else 0)
