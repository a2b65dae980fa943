#!/usr/bin/env python3
"""GET /metrics of two shop-fcgi processes, straight on their sockets: each
labels its figures with its own pid, and counts exactly the requests it
answered. TAP on stdout.

    metrics.py --a /tmp/a.sock --pid-a 1234 --b /tmp/b.sock --pid-b 1235 \
               --token-file /tmp/token [--b-public]

A keeps metrics behind the admin token; B runs with SHOP_METRICS_PUBLIC=on
when --b-public is given, and a database of its own for warehouse
--b-warehouse. Both serve the same seeded database (products
SKU-000001..., warehouses north/south/east).
"""
import argparse
import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from tap import Tap  # noqa: E402
from fcgiclient import Stream, connect, request, send  # noqa: E402

TAP = Tap()
ok = TAP.ok


SAMPLE = re.compile(r'^([a-z_]+)(?:\{(.*)\})? (-?[0-9.e+]+)$')
LABEL = re.compile(r'([a-z_]+)="((?:[^"\\]|\\.)*)"')


def parse(text):
    """[(name, {label: value}, float)] of every sample line."""
    out, bad = [], []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        if not m:
            bad.append(line)
            continue
        out.append((m.group(1), dict(LABEL.findall(m.group(2) or "")), float(m.group(3))))
    return out, bad


def value(samples, name, **labels):
    """The value of the one sample with these labels (None if absent)."""
    for nm, lb, v in samples:
        if nm == name and all(lb.get(k) == str(x) for k, x in labels.items()):
            return v
    return None


def scrape(addr, token=None):
    h = {"Authorization": "Bearer " + token} if token else {}
    st, hd, body = request(addr, "GET", "/metrics", headers=h)
    return st, hd, body.decode()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--a", required=True)
    ap.add_argument("--pid-a", required=True)
    ap.add_argument("--b", required=True)
    ap.add_argument("--pid-b", required=True)
    ap.add_argument("--token-file", required=True)
    ap.add_argument("--b-public", action="store_true")
    ap.add_argument("--b-warehouse", help="B has SHOP_WAREHOUSE_<CODE>_DATABASE for this code")
    o = ap.parse_args()
    A, B = "unix:" + o.a, "unix:" + o.b
    token = open(o.token_file).read().strip()
    admin = {"Authorization": "Bearer " + token}

    # Access: the token, or metrics_public.
    st, hd, _ = request(A, "GET", "/metrics")
    ok(st == 401 and "bearer" in hd.get("www-authenticate", "").lower(),
       "A: GET /metrics without the token is 401", st)
    st, _, _ = request(A, "GET", "/metrics", headers={"Authorization": "Bearer " + "x" * 32})
    ok(st == 403, "A: GET /metrics with a wrong token is 403", st)
    if o.b_public:
        st, hd, body = scrape(B)
        ok(st == 200, "B (SHOP_METRICS_PUBLIC=on): GET /metrics without the token is 200", st)

    # Known traffic: A products and stock checks, B health checks.
    for i in range(7):
        st, _, _ = request(A, "GET", "/products/%d" % (i + 1))
        assert st == 200, st
    for i in range(3):
        st, _, _ = request(A, "GET", "/products/no-such-slug-%d" % i)
        assert st == 404, st
    chk = json.dumps({"items": [{"sku": "SKU-000001", "quantity": 1}]}).encode()
    for _ in range(2):
        st, _, _ = request(A, "POST", "/stock/check", chk)
        assert st == 200, st
    for _ in range(4):
        st, _, _ = request(B, "GET", "/healthz")
        assert st == 200, st

    # An event stream on A, and one event it delivers.
    s = connect(A)
    send(s, "GET", "/events?topics=stock")
    stream = Stream(s)
    got = stream.feed(b"\n:", timeout=5)
    ok(b"200" in got.split(b"\r\n")[0] or b"text/event-stream" in got,
       "A: GET /events streams", got[:200])
    st, _, _ = request(A, "PUT", "/warehouses/north/stock/SKU-000002",
                       json.dumps({"quantity": 17}).encode(), headers=admin)
    ok(st == 200, "A: PUT stock (one stock.changed event)", st)
    got = stream.feed(b"event: stock.changed", timeout=5)
    ok(b"event: stock.changed" in got, "A: the stream delivers the event", got[-300:])

    # The stream's thread counts an event once its write returned, which
    # may be just after the client read it: scrape until it is counted
    # (2 s at most; the check below says if it never is).
    deadline = time.monotonic() + 2
    while True:
        st, hd, text = scrape(A, token)
        sa, bad = parse(text)
        got = value(sa, "shop_events_delivered_total") if st == 200 else None
        if (got is not None and got >= 1) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    ok(st == 200 and hd.get("content-type", "").startswith("text/plain; version=0.0.4"),
       "A: GET /metrics with the token is 200 text/plain; version=0.0.4", (st, hd))
    ok(not bad, "A: every line is a comment or a sample", "\n".join(bad[:10]))
    pa = {lb.get("process") for _, lb, _ in sa}
    ok(pa == {o.pid_a}, 'A: every sample has process="%s"' % o.pid_a, pa)

    def eq(samples, who, want, name, **labels):
        got = value(samples, name, **labels)
        lbl = ",".join('%s="%s"' % kv for kv in labels.items())
        return ok(got == want, "%s: %s{%s} = %s" % (who, name, lbl, "absent" if want is None else
                                                   "%g" % want), "got %r" % (got,))

    eq(sa, "A", 7, "shop_requests_total", route="/products/{id}", method="GET", status="200")
    eq(sa, "A", 3, "shop_requests_total", route="/products/{id}", method="GET", status="404")
    eq(sa, "A", 2, "shop_requests_total", route="/stock/check", method="POST", status="200")
    eq(sa, "A", 1, "shop_requests_total", route="/metrics", method="GET", status="401")
    eq(sa, "A", 1, "shop_requests_total", route="/metrics", method="GET", status="403")
    eq(sa, "A", 1, "shop_requests_total", route="/events", method="GET", status="200")
    eq(sa, "A", None, "shop_requests_total", route="/healthz")
    eq(sa, "A", 10, "shop_request_duration_seconds_count", route="/products/{id}")
    eq(sa, "A", 10, "shop_request_duration_seconds_bucket", route="/products/{id}", le="+Inf")
    # Statements ran for 10 product reads, 2 stock checks and the PUT.
    eq(sa, "A", 13, "shop_db_duration_seconds_count")
    for state in ("idle", "busy", "connecting", "broken"):
        ok(value(sa, "shop_pool_connections", target="primary", state=state) is not None,
           'A: shop_pool_connections{target="primary",state="%s"}' % state)
    idle = value(sa, "shop_pool_connections", target="primary", state="idle")
    ok(idle is not None and idle >= 1, "A: the primary pool has an idle connection", idle)
    stock = {lb["target"] for nm, lb, _ in sa if nm == "shop_pool_connections"
             and lb.get("target", "").startswith("stock:")}
    ok(stock == {"stock:primary"}, "A: the stock check's pool is target stock:primary", stock)
    eq(sa, "A", 0, "shop_pool_waiting")
    eq(sa, "A", 1, "shop_events_subscribers", transport="sse")
    got = value(sa, "shop_events_delivered_total")
    ok(got is not None and got >= 1, "A: shop_events_delivered_total >= 1", got)
    eq(sa, "A", 0, "shop_events_dropped_subscribers_total")
    ok(value(sa, "shop_build_info") == 1, "A: shop_build_info")

    stream.close()
    # The stream ends once the server notices the client left (about a second).
    for _ in range(40):
        _, _, text = scrape(A, token)
        sa, _ = parse(text)
        if value(sa, "shop_events_subscribers", transport="sse") == 0:
            break
        time.sleep(0.1)
    eq(sa, "A", 0, "shop_events_subscribers", transport="sse")

    st, _, text = scrape(B, token)
    sb, bad = parse(text)
    ok(st == 200 and not bad, "B: GET /metrics is 200", st)
    pb = {lb.get("process") for _, lb, _ in sb}
    ok(pb == {o.pid_b} and o.pid_a != o.pid_b, 'B: every sample has process="%s"' % o.pid_b, pb)
    eq(sb, "B", 4, "shop_requests_total", route="/healthz", method="GET", status="200")
    eq(sb, "B", None, "shop_requests_total", route="/products/{id}", method="GET", status="200")
    eq(sb, "B", 0, "shop_db_duration_seconds_count")

    # B asks warehouse north in a database of its own (--b-warehouse).
    if o.b_warehouse:
        st, _, _ = request(B, "POST", "/stock/check", chk)
        _, _, text = scrape(B, token)
        sb, _ = parse(text)
        targets = {lb["target"] for nm, lb, _ in sb if nm == "shop_pool_connections"}
        ok(st == 200 and targets == {"primary", "stock:primary", "warehouse:%s" % o.b_warehouse},
           "B: pools primary, stock:primary and warehouse:%s" % o.b_warehouse, (st, targets))

    return TAP.done()


if __name__ == "__main__":
    sys.exit(main())
