#!/usr/bin/env python3
"""Events over SSE (issue 6, both front-ends): TAP tests against a running
shop.

    events.py --url http://127.0.0.1:8080 --dsn "host=... port=... dbname=..." \
              --token-file TOKEN [--pid FCGI_PID] [--max-streams N] \
              [--restart-cmd "command that restarts PostgreSQL"] [--heartbeat] \
              [--log FCGI_STDERR_FILE] [--limited-url URL [--replay-limit N]] \
              [--burst N] [--writers N] [--only test_a,test_b]

--url reaches GET /events unbuffered (nginx: fastcgi_buffering off). --dsn
is the shop's database (psql makes bursts with shop.emit and checks the
table). The database should be a throwaway one: the test writes products,
warehouses, orders and test events, and ages and prunes some of its own
events (test_retention: events_pruned moves on). --token-file: the admin
token (the orders topic). --max-streams: the shop's SHOP_MAX_STREAMS, to
test the 503 past it (skipped without). --restart-cmd: restarts the
database under a live stream (skipped without). --heartbeat waits 16 s for
a heartbeat comment. --limited-url: the same shop and database with the
replay limit --replay-limit (small: 50), for the reset tests (skipped
without). --burst (EVENTS_BURST, default 20000): events committed by
--writers (32) concurrent psql sessions; --url's replay limit should be
above it, or a resume mid-burst under load may get a reset.
"""
import argparse
import collections
import http.client
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from tap import Tap  # noqa: E402

TOPIC = {"product.created": "products", "product.updated": "products", "product.deleted": "products",
         "price.changed": "prices", "stock.changed": "stock", "order.created": "orders",
         "order.status_changed": "orders"}
PUBLIC = ("products", "prices", "stock")
ALL = "orders,stock,products,prices"


TAP = Tap()
ok, note = TAP.ok, TAP.note


class Stream:
    """An SSE client on its own thread: events as (id, type, data, t_recv)."""

    def __init__(self, base, topics=None, after=None, last_event_id=None, timeout=60, token=None, raw=False):
        u = urllib.parse.urlsplit(base)
        q = {}
        if topics is not None:
            q["topics"] = topics
        if after is not None:
            q["after"] = str(after)
        path = (u.path.rstrip("/") + "/events") + ("?" + urllib.parse.urlencode(q, safe=",") if q else "")
        self.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
        self.conn.connect()
        self.sock = self.conn.sock          # the response keeps using it after getresponse()
        headers = {"Accept": "text/event-stream"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = str(last_event_id)
        if token is not None:
            headers["Authorization"] = "Bearer " + token
        self.raw = bytearray() if raw else None     # the body as it came (chunks undone)
        self.conn.request("GET", path, headers=headers)
        self.resp = self.conn.getresponse()
        self.status = self.resp.status
        self.headers = self.resp.headers
        self.events, self.comments = [], 0
        self.runs = {}                      # events per data.run (the test bursts)
        self.eof, self.error, self.closed = False, None, False
        self.cond = threading.Condition()
        if self.status == 200:
            self.thread = threading.Thread(target=self.run, daemon=True)
            self.thread.start()
        else:
            self.body = self.resp.read()
            self.eof = True

    def run(self):
        cur = {}
        try:
            while True:
                line = self.resp.readline()
                if not line:
                    break
                if self.raw is not None:
                    with self.cond:
                        self.raw += line
                line = line.decode("utf-8").rstrip("\r\n")
                if line == "":
                    if "data" in cur:
                        ev = (int(cur.get("id", "-1")), cur.get("event"), json.loads(cur["data"]), time.time())
                        run = ev[2].get("data", {}).get("run") if isinstance(ev[2].get("data"), dict) else None
                        with self.cond:
                            self.events.append(ev)
                            if run is not None:
                                self.runs[run] = self.runs.get(run, 0) + 1
                            self.cond.notify_all()
                    cur = {}
                elif line.startswith(":"):
                    with self.cond:
                        self.comments += 1
                        self.cond.notify_all()
                else:
                    k, _, v = line.partition(":")
                    cur[k] = v[1:] if v.startswith(" ") else v
        except Exception as e:              # closed by us, or cut by the server
            if not self.closed:
                self.error = e
        finally:
            with self.cond:
                self.eof = True
                self.cond.notify_all()

    def wait(self, pred, timeout=10.0):
        t_end = time.monotonic() + timeout
        with self.cond:
            while not pred(self):
                left = t_end - time.monotonic()
                if left <= 0 or self.eof:
                    return pred(self)
                self.cond.wait(min(left, 0.2))
            return True

    def ids(self):
        with self.cond:
            return [e[0] for e in self.events]

    def close(self):
        self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except Exception:
            pass
        self.conn.close()


class FastStream:
    """An SSE client for bursts, on a socket of its own: reads in bulk and
    splits frames in bulk (a line-at-a-time reader falls behind 32 writers
    and is dropped as slow). events: (id, type, data, t_recv). With
    resume=True it does what a client does when the server drops it: it
    comes back with Last-Event-ID (counted in drops)."""

    def __init__(self, base, topics=None, last_event_id=None, token=None, resume=False, timeout=60,
                 stop_after=None):
        self.base, self.topics, self.token, self.resume, self.timeout = base, topics, token, resume, timeout
        # (run, n): the reader itself hangs up once it has n events of run
        # (a client that goes away mid-burst, not later when the test gets to it)
        self.stop_after = stop_after
        self.events, self.runs, self.drops = [], {}, 0
        self.eof, self.closed, self.error, self.hung_up = False, False, None, False
        self.cond = threading.Condition()
        self.sock = None
        self.status = self._open(last_event_id)
        self.thread = threading.Thread(target=self.run, daemon=True)
        if self.status == 200:
            self.thread.start()
        else:
            self.eof = True

    def _open(self, last_event_id):
        u = urllib.parse.urlsplit(self.base)
        q = "?topics=" + self.topics if self.topics is not None else ""
        lines = ["GET %s/events%s HTTP/1.1" % (u.path.rstrip("/"), q), "Host: %s:%d" % (u.hostname, u.port),
                 "Accept: text/event-stream"]
        if last_event_id is not None:
            lines.append("Last-Event-ID: %d" % last_event_id)
        if self.token is not None:
            lines.append("Authorization: Bearer " + self.token)
        self.sock = socket.create_connection((u.hostname, u.port), timeout=self.timeout)
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            more = self.sock.recv(65536)
            if not more:
                return 0
            buf += more
        head, _, self.pending = buf.partition(b"\r\n\r\n")
        self.chunked = b"transfer-encoding: chunked" in head.lower()
        return int(head.split(b" ", 2)[1])

    def _body(self, data, st):
        """Undoes the chunked framing incrementally: the body bytes in data."""
        if not self.chunked:
            return data
        raw, pos, out = st["raw"] + data, 0, []
        while True:
            if st["left"] > 0:
                take = raw[pos:pos + st["left"]]
                out.append(take)
                pos += len(take)
                st["left"] -= len(take)
                if st["left"] > 0:
                    break
                st["crlf"] = True
            if st["crlf"]:
                if len(raw) - pos < 2:
                    break
                pos, st["crlf"] = pos + 2, False
            i = raw.find(b"\r\n", pos)
            if i < 0:
                break
            n = int(raw[pos:i].split(b";")[0], 16)
            pos = i + 2
            if n == 0:
                st["end"] = True
                break
            st["left"] = n
        st["raw"] = raw[pos:]
        return b"".join(out)

    def run(self):
        while True:
            try:
                self._read()
            except Exception as e:          # closed by us, or cut by the server
                if not self.closed:
                    self.error = e
            if self.closed or not self.resume:
                break
            # dropped: come back from the last id, as EventSource does
            with self.cond:
                last = self.events[-1][0] if self.events else None
                self.drops += 1
            try:
                self.sock.close()
                if self._open(last) != 200:
                    break
            except OSError as e:
                self.error = e
                break
        with self.cond:
            self.eof = True
            self.cond.notify_all()

    def _read(self):
        state = {"raw": b"", "left": 0, "crlf": False, "end": False}
        text = b""
        data = self.pending
        while True:
            text += self._body(data, state)
            *frames, text = text.split(b"\n\n")
            got = []
            for fr in frames:
                f = {}
                for line in fr.split(b"\n"):
                    if line and not line.startswith(b":"):
                        k, _, v = line.partition(b":")
                        f[k] = v[1:] if v.startswith(b" ") else v
                if b"data" in f:
                    got.append((int(f.get(b"id", b"-1")), f.get(b"event", b"").decode(), json.loads(f[b"data"]),
                                time.time()))
            if got:
                with self.cond:
                    for ev in got:
                        d = ev[2].get("data")
                        r = d.get("run") if isinstance(d, dict) else None
                        if r is not None:
                            self.runs[r] = self.runs.get(r, 0) + 1
                    self.events.extend(got)
                    self.cond.notify_all()
                    if self.stop_after and self.runs.get(self.stop_after[0], 0) >= self.stop_after[1]:
                        self.closed = self.hung_up = True
                        self.sock.close()
                        return
            if state["end"]:
                return
            data = self.sock.recv(1 << 16 if self.stop_after else 1 << 20)
            if not data:
                return

    wait = Stream.wait
    ids = Stream.ids

    def close(self):
        self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


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

    def sql(self, text, stdin=None):
        r = subprocess.run(["psql", "-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1", self.dsn]
                           + (["-c", text] if text else ["-f", "-"]),
                           input=stdin, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError("psql: " + r.stderr.strip())
        return r.stdout.strip()

    def emit_script(self, run, start, n, topic="products", pad=0, rate=None):
        lines = []
        for i in range(start, start + n):
            lines.append("SELECT shop.emit('test.burst', '%s', json_build_object('run', '%s', 'n', %d%s));"
                         % (topic, run, i, ", 'pad', repeat('x', %d)" % pad if pad else ""))
            if rate:
                lines.append("SELECT pg_sleep(%f);" % (1.0 / rate))
        return "\n".join(lines) + "\n"

    def burst(self, run, n, writers=4, pad=0, rate=None):
        """n test events from `writers` concurrent sessions, one transaction each."""
        per = n // writers
        procs = []
        for w in range(writers):
            cnt = per if w < writers - 1 else n - per * (writers - 1)
            p = subprocess.Popen(["psql", "-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1", self.dsn, "-f", "-"],
                                 stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            procs.append((p, self.emit_script(run, w * per, cnt, pad=pad, rate=rate)))
        threads = [threading.Thread(target=p.communicate, args=(s,)) for p, s in procs]
        for t in threads:
            t.start()
        return threads, [p for p, _ in procs]

    def burst_ids(self, run):
        out = self.sql("SELECT id FROM shop.events WHERE type = 'test.burst' AND data->>'run' = '%s' ORDER BY id" % run)
        return [int(x) for x in out.split()] if out else []

    def marker(self, run):
        return int(self.sql("SELECT shop.emit('test.marker', 'products', json_build_object('run', '%s'))" % run))

    def emit(self, run, n=1, topic="products", type_="test.emit"):
        """n events in one statement (one transaction): their ids, in order."""
        out = self.sql("SELECT shop.emit('%s', '%s', json_build_object('run', '%s', 'n', i)) "
                       "FROM generate_series(1, %d) i" % (type_, topic, run, n))
        return [int(x) for x in out.split()]

    def emit_mixed(self, run, n):
        """n events alternating between the topics prices and products: [(id, topic)]."""
        out = self.sql("SELECT shop.emit('test.limit', t, json_build_object('run', '%s', 'n', i)) || ' ' || t "
                       "FROM (SELECT i, CASE WHEN i %% 2 = 0 THEN 'products' ELSE 'prices' END AS t "
                       "      FROM generate_series(1, %d) i) s" % (run, n))
        return [(int(x.split()[0]), x.split()[1]) for x in out.splitlines()]

    def tx_script(self, run, w, target, rng):
        """One writer's script: short transactions of 1-4 shop.emit until
        `target` events committed; about one in ten rolled back (its events
        say "rb": true). Returns (script, events rolled back)."""
        lines, committed, rolled, n = [], 0, 0, 0
        while committed < target:
            k = min(rng.randint(1, 4), target - committed)
            rb = rng.random() < 0.1
            lines.append("BEGIN;")
            lines.append("SELECT shop.emit('test.burst', 'products', json_build_object('run', '%s', 'w', %d, "
                         "'n', i%s)) FROM generate_series(%d, %d) i;"
                         % (run, w, ", 'rb', true" if rb else "", n, n + k - 1))
            lines.append("ROLLBACK;" if rb else "COMMIT;")
            n += k
            if rb:
                rolled += k
            else:
                committed += k
        return "\n".join(lines) + "\n", rolled

    def burst_tx(self, run, n, writers, seed=1):
        """n committed test events from `writers` concurrent psql sessions,
        in short transactions, some rolled back (not counted in n). psql
        reads its script from a file: no thread of ours feeds it (32 threads
        writing pipes would take the readers' turns). Returns (the psql
        processes, events rolled back, a directory to remove)."""
        rng = random.Random(seed)
        per = n // writers
        procs, rolled = [], 0
        tmp = tempfile.mkdtemp(prefix="events-burst.")
        for w in range(writers):
            script, rb = self.tx_script(run, w, per if w < writers - 1 else n - per * (writers - 1), rng)
            rolled += rb
            path = os.path.join(tmp, "w%d.sql" % w)
            with open(path, "w") as f:
                f.write(script)
            procs.append(subprocess.Popen(["psql", "-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1", self.dsn, "-f", path],
                                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                          stderr=open(path + ".err", "w")))
        return procs, rolled, tmp

    def stock_item(self, run, quantity, prefix="EV"):
        """A product with `quantity` in a warehouse of its own: (sku, warehouse, all answered as expected)."""
        sku, wh = "%s-%s" % (prefix, run), "%s-%s" % (prefix.lower(), run)
        st1, _ = self.call("POST", "/products", {"sku": sku, "name": "%s %s" % (prefix, run), "price_cents": 700,
                                                 "currency": "EUR"}, admin=True)
        st2, _ = self.call("PUT", "/warehouses/" + wh, {"name": "Events " + run}, admin=True)
        st3, _ = self.call("PUT", "/warehouses/%s/stock/%s" % (wh, sku), {"quantity": quantity}, admin=True)
        return sku, wh, (st1 == 201 and st2 in (200, 201) and st3 == 200)

    def pruned_through(self):
        return int(self.sql("SELECT through FROM shop.events_pruned"))


def raw_get(base, query, headers=None, during=None, timeout=5):
    """GET /events on a socket of its own, Connection: close, read to the end:
    (status, {header: value} with lower-case names, body, ended). during() runs
    once the head is in (to write an event the answer must not carry); ended:
    the server closed the connection within `timeout` (a stream would not)."""
    u = urllib.parse.urlsplit(base)
    sock = socket.create_connection((u.hostname, u.port), timeout=timeout)
    lines = ["GET %s/events%s HTTP/1.1" % (u.path.rstrip("/"), query), "Host: %s:%d" % (u.hostname, u.port),
             "Accept: text/event-stream", "Connection: close"]
    lines += ["%s: %s" % kv for kv in (headers or {}).items()]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    buf, ended, t_end = b"", False, time.monotonic() + timeout
    try:
        while b"\r\n\r\n" not in buf:
            more = sock.recv(65536)
            if not more:
                break
            buf += more
        if during is not None:
            during()
        while time.monotonic() < t_end:
            sock.settimeout(max(0.05, t_end - time.monotonic()))
            more = sock.recv(65536)
            if not more:
                ended = True
                break
            buf += more
    except socket.timeout:
        pass
    finally:
        sock.close()
    head, _, body = buf.partition(b"\r\n\r\n")
    status_line, *hlines = head.decode("latin-1").split("\r\n")
    hdrs = {}
    for h in hlines:
        k, _, v = h.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    if hdrs.get("transfer-encoding", "").lower() == "chunked":
        out, rest = b"", body
        while rest:
            size, _, rest = rest.partition(b"\r\n")
            n = int(size.split(b";")[0] or b"0", 16)
            if n == 0:
                break
            out, rest = out + rest[:n], rest[n + 2:]
        body = out
    status = int(status_line.split()[1]) if len(status_line.split()) > 1 else 0
    return status, hdrs, body, ended


def run_of(e):
    d = e[2].get("data")
    return d.get("run") if isinstance(d, dict) else None


def jload(b):
    try:
        return json.loads(b)
    except (ValueError, TypeError):
        return None


def frames_of(raw):
    """The SSE frames of a raw body, comments left out: [text of each frame]."""
    out = []
    for block in bytes(raw).decode("utf-8", "replace").split("\n\n"):
        lines = [x for x in block.split("\n") if x and not x.startswith(":")]
        if lines:
            out.append("\n".join(lines))
    return out


def reset_frame(next_id):
    return 'id: %d\nevent: reset\ndata: {"reason":"too-far-behind","next_id":%d}' % (next_id - 1, next_id)


def gap_dup(got, want):
    """A diagnostic: what is missing, duplicated, out of order."""
    sg, cnt = set(got), collections.Counter(got)
    return "lost %d %s; duplicated %d %s; not in the table %d %s; out of order %d; got %d, want %d" % (
        len(set(want) - sg), sorted(set(want) - sg)[:8], len(got) - len(sg),
        sorted(x for x, c in cnt.items() if c > 1)[:8], len(sg - set(want)), sorted(sg - set(want))[:8],
        sum(1 for x, y in zip(got, got[1:]) if x >= y), len(got), len(want))


def types_of(events, lo, hi):
    return [(e[1], e[2].get("data")) for e in events if lo < e[0] < hi]


def test_changes(shop, a):
    run = uuid.uuid4().hex[:8]
    # Every topic (orders is the admin's), twice; the public topics (no
    # topics=); two filters.
    s_all = Stream(a.url, topics=ALL, token=shop.token)
    s_all2 = Stream(a.url, topics=ALL, token=shop.token)
    s_pub = Stream(a.url)
    s_prices = Stream(a.url, topics="prices")
    s_so = Stream(a.url, topics="stock,orders", token=shop.token)
    ok(s_all.status == 200 and s_all.headers.get("Content-Type", "").startswith("text/event-stream"),
       "GET /events: 200 text/event-stream")
    ok("no-cache" in (s_all.headers.get("Cache-Control") or ""), "GET /events: Cache-Control no-cache")
    ok(s_pub.status == 200 and s_so.status == 200, "GET /events without topics, and topics=stock,orders with "
       "the token: 200", "%s %s" % (s_pub.status, s_so.status))
    time.sleep(0.3)
    m0 = shop.marker(run + "-start")
    ok(s_all.wait(lambda s: any(e[0] == m0 for e in s.events), 5), "a live stream gets an event committed after it opened")

    sku, sku2, wh = "EV-" + run, "EV2-" + run, "ev-" + run
    steps = []
    st, p = shop.call("POST", "/products", {"sku": sku, "name": "Event " + run, "price_cents": 500, "currency": "EUR"}, admin=True)
    steps.append(("create", st == 201, ["product.created"]))
    pid = p["id"] if isinstance(p, dict) else 0
    st, _ = shop.call("PATCH", "/products/%d" % pid, {"name": "Renamed " + run}, admin=True)
    steps.append(("rename", st == 200, ["product.updated"]))
    st, _ = shop.call("PATCH", "/products/%d" % pid, {"price_cents": 600}, admin=True)
    steps.append(("price", st == 200, ["product.updated", "price.changed"]))
    st, _ = shop.call("PUT", "/warehouses/" + wh, {"name": "Events"}, admin=True)
    steps.append(("warehouse", st in (200, 201), []))
    st, _ = shop.call("PUT", "/warehouses/%s/stock/%s" % (wh, sku), {"quantity": 5}, admin=True)
    steps.append(("stock", st == 200, ["stock.changed"]))
    st, o = shop.call("POST", "/orders", {"items": [{"sku": sku, "quantity": 2}], "customer_email": "e@example.com"})
    steps.append(("order", st == 201, ["stock.changed", "order.created"]))
    oid = o["id"] if isinstance(o, dict) else "x"
    st, _ = shop.call("POST", "/orders/%s/transitions" % oid, {"to": "paid"}, admin=True)
    steps.append(("paid", st == 200, ["order.status_changed"]))
    # Rolled back: a taken sku, an order over the stock, a transaction rolled back.
    st, _ = shop.call("POST", "/products", {"sku": sku, "name": "Dup", "price_cents": 1, "currency": "EUR"}, admin=True)
    steps.append(("duplicate sku (rolled back)", st == 409, []))
    st, _ = shop.call("POST", "/orders", {"items": [{"sku": sku, "quantity": 100}], "customer_email": "e@example.com"})
    steps.append(("order over stock (rolled back)", st == 409, []))
    shop.sql(None, "BEGIN;\nSELECT shop.emit('test.rollback', 'products', '{}');\nROLLBACK;\n")
    steps.append(("psql ROLLBACK", True, []))
    st, p2 = shop.call("POST", "/products", {"sku": sku2, "name": "Gone " + run, "price_cents": 1, "currency": "EUR"}, admin=True)
    steps.append(("create 2", st == 201, ["product.created"]))
    st, _ = shop.call("DELETE", "/products/%d" % (p2["id"] if isinstance(p2, dict) else 0), admin=True)
    steps.append(("delete", st == 204, ["product.deleted"]))
    ok(all(s[1] for s in steps), "the changes were answered as expected",
       [s[0] for s in steps if not s[1]])

    m1 = shop.marker(run + "-end")
    got = s_all.wait(lambda s: any(e[0] == m1 for e in s.events), 5)
    ok(got, "the closing marker arrived")
    evs = [e for e in s_all.events if m0 < e[0] < m1]
    want = [t for s in steps for t in s[2]]
    ok([e[1] for e in evs] == want, "each change gave exactly its events, rolled-back ones none",
       "got  %s\nwant %s" % ([e[1] for e in evs], want))
    n_table = int(shop.sql("SELECT count(*) FROM shop.events WHERE id > %d AND id < %d" % (m0, m1)))
    ok(n_table == len(want), "the table holds exactly those events (%d)" % n_table)
    byt = {}
    for e in evs:
        byt.setdefault(e[1], []).append(e[2]["data"])
    try:
        good = (byt["product.created"][0]["sku"] == sku
                and byt["price.changed"][0] == {"sku": sku, "slug": byt["price.changed"][0]["slug"],
                                                "old_price_cents": 500, "new_price_cents": 600, "currency": "EUR"}
                and [d["quantity"] for d in byt["stock.changed"]] == [5, 3]
                and byt["order.created"][0]["id"] == oid
                and byt["order.status_changed"][0]["from"] == "pending"
                and byt["order.status_changed"][0]["to"] == "paid"
                and byt["product.deleted"][0]["sku"] == sku2)
    except (KeyError, IndexError, TypeError) as e:
        good = False
        byt["error"] = repr(e)
    ok(good, "event data: sku, prices, quantities, order id, transition", json.dumps(byt)[:2000])
    ok(all(e[2]["id"] == e[0] and e[2]["type"] == e[1] for e in evs), "id: and event: lines match the JSON")

    ids = s_all.ids()
    ok(all(x < y for x, y in zip(ids, ids[1:])), "ids strictly increase on the stream")
    time.sleep(0.3)
    ok(s_all2.ids() == ids, "two streams see the same events (%d)" % len(ids))
    want_pub = [e[0] for e in s_all.events if m0 < e[0] < m1 and TOPIC.get(e[1]) in PUBLIC]
    got_pub = [x for x in s_pub.ids() if m0 < x < m1]
    ok(got_pub == want_pub and len(want_pub) == 8,
       "no topics: the public topics only, no order event (%d)" % len(want_pub),
       "%s vs %s" % (got_pub, want_pub))
    want_p = [e[0] for e in s_all.events if TOPIC.get(e[1]) == "prices"]
    want_so = [e[0] for e in s_all.events if TOPIC.get(e[1]) in ("stock", "orders")]
    ok(s_prices.ids() == want_p and len(want_p) == 1, "topics=prices: only price.changed (%d)" % len(want_p),
       "%s vs %s" % (s_prices.ids(), want_p))
    ok(s_so.ids() == want_so and len(want_so) == 4, "topics=stock,orders: only those (%d)" % len(want_so),
       "%s vs %s" % (s_so.ids(), want_so))

    # Resume from an id: the same events again, from the table.
    s_re = Stream(a.url, topics=ALL, token=shop.token, after=m0)
    s_re.wait(lambda s: any(e[0] == m1 for e in s.events), 5)
    ok([e[0] for e in s_re.events if e[0] <= m1] == [x for x in ids if m0 < x <= m1],
       "?after= replays the retained events in order")
    for s in (s_all, s_all2, s_pub, s_prices, s_so, s_re):
        s.close()
    bad = Stream(a.url, topics="nope")
    ok(bad.status == 400, "topics=nope: 400")


def test_auth(shop, a):
    """The orders topic is the admin's: refused before any event, no stream."""
    run = uuid.uuid4().hex[:8]
    wrong = ("x" if not shop.token.startswith("x") else "y") + shop.token[1:]

    def private():
        shop.sql("SELECT shop.emit('test.private', 'orders', json_build_object('run', '%s'))" % run)

    for name, query, headers, want, kind in (
            ("topics=orders without the token", "?topics=orders", {}, 401, "unauthorized"),
            ("topics=stock,orders without the token", "?topics=stock,orders", {}, 401, "unauthorized"),
            ("topics=orders&after=0 without the token", "?topics=orders&after=0", {}, 401, "unauthorized"),
            ("topics=orders with a wrong token", "?topics=orders", {"Authorization": "Bearer " + wrong}, 403,
             "forbidden"),
            ("topics=orders,prices with a wrong token and Last-Event-ID: 0", "?topics=orders,prices",
             {"Authorization": "Bearer " + wrong, "Last-Event-ID": "0"}, 403, "forbidden")):
        st, h, body, ended = raw_get(a.url, query, headers, during=private)
        pb = jload(body) or {}
        ok(st == want and h.get("content-type", "").startswith("application/problem+json")
           and str(pb.get("type", "")).endswith("/" + kind) and pb.get("status") == want,
           "%s: %d %s, problem+json" % (name, want, kind), "%s %s %r" % (st, h, body[:300]))
        if want == 401:
            www = h.get("www-authenticate", "")
            ok(re.match(r"Bearer\b", www) is not None and 'realm="shop"' in www,
               "%s: WWW-Authenticate: Bearer realm=\"shop\"" % name, h)
        ok(ended and run.encode() not in body and not re.search(rb"(^|\n)(id|event|data):", body)
           and "event-stream" not in h.get("content-type", ""),
           "%s: the answer ends, no event bytes (an order event was written meanwhile)" % name,
           "ended %s, %r" % (ended, body[:300]))

    # With the token: the order events, and only those.
    sku, wh, good = shop.stock_item(run, 5, prefix="AU")
    s = Stream(a.url, topics="orders", token=shop.token)
    s_so = Stream(a.url, topics="stock,orders", token=shop.token)
    ok(s.status == 200 and s_so.status == 200 and good, "topics=orders and topics=stock,orders with the token: 200",
       "%s %s %s" % (s.status, s_so.status, good))
    time.sleep(0.3)
    email = "au-%s@example.com" % run
    st, o = shop.call("POST", "/orders", {"items": [{"sku": sku, "quantity": 1}], "customer_email": email})
    oid = o.get("id") if isinstance(o, dict) else None
    st2, _ = shop.call("POST", "/orders/%s/transitions" % oid, {"to": "paid"}, admin=True)
    mine = lambda ev: [e for e in ev if isinstance(e[2].get("data"), dict)  # noqa: E731
                       and (e[2]["data"].get("id") == oid or e[2]["data"].get("order_id") == oid)]
    s.wait(lambda st_: len(mine(st_.events)) >= 2, 5)
    got = mine(s.events)
    ok(st == 201 and st2 == 200 and [e[1] for e in got] == ["order.created", "order.status_changed"]
       and got[0][2]["data"].get("customer_email") == email,
       "with the token: order.created (with the customer's e-mail) and order.status_changed arrive",
       "%s %s %s" % (st, st2, [(e[1], e[2]) for e in got]))
    time.sleep(0.3)
    ok(all(TOPIC.get(e[1], "orders") == "orders" for e in s.events), "topics=orders: no other topic",
       [e[1] for e in s.events])
    s_so.wait(lambda st_: len([e for e in st_.events if e[1] == "order.status_changed"]) >= 1, 5)
    ok([e[1] for e in s_so.events if e[1] in ("stock.changed", "order.created", "order.status_changed")]
       == ["stock.changed", "order.created", "order.status_changed"],
       "topics=stock,orders with the token: the order's stock.changed and its order events",
       [e[1] for e in s_so.events])
    s.close()
    s_so.close()


def test_public(shop, a):
    """No topics: the public topics; nothing personal, no order id."""
    run = uuid.uuid4().hex[:8]
    sku, wh, good = shop.stock_item(run, 5, prefix="PB")
    email = "pub-%s@example.com" % run
    s_pub = Stream(a.url, raw=True)
    s_empty = Stream(a.url, topics="", raw=True)
    s_adm = Stream(a.url, topics=ALL, token=shop.token)
    ok(s_pub.status == 200 and s_empty.status == 200, "GET /events and GET /events?topics= without a token: 200",
       "%s %s" % (s_pub.status, s_empty.status))
    time.sleep(0.3)
    m0 = shop.marker(run + "-start")
    st, o = shop.call("POST", "/orders", {"items": [{"sku": sku, "quantity": 2}], "customer_email": email})
    oid = o.get("id") if isinstance(o, dict) else "none"
    st2, _ = shop.call("POST", "/orders/%s/transitions" % oid, {"to": "cancelled"}, admin=True)
    m1 = shop.marker(run + "-end")
    got = [x.wait(lambda st_: m1 in [e[0] for e in st_.events], 5) for x in (s_pub, s_empty, s_adm)]
    ok(good and st == 201 and st2 == 200 and all(got), "an order placed and cancelled; the three streams got the "
       "closing marker", "%s %s %s %s" % (good, st, st2, got))
    adm = [e for e in s_adm.events if m0 < e[0] < m1]
    created = [e for e in adm if e[1] == "order.created"]
    ok([e[1] for e in adm if e[1].startswith("order.")] == ["order.created", "order.status_changed"]
       and created[0][2]["data"].get("customer_email") == email
       and sorted(e[1] for e in adm) == sorted(["stock.changed", "order.created", "stock.changed",
                                                "order.status_changed"]),
       "the admin's stream: two stock.changed, order.created (with the e-mail) and order.status_changed",
       [(e[1], e[2]["data"]) for e in adm])
    want = [e[0] for e in adm if TOPIC.get(e[1]) in PUBLIC]
    pub = [e for e in s_pub.events if m0 < e[0] < m1]
    ok([e[0] for e in pub] == want and [e[1] for e in pub] == ["stock.changed", "stock.changed"]
       and [e[2]["data"].get("quantity") for e in pub] == [3, 5]
       and all(e[2]["data"].get("sku") == sku and e[2]["data"].get("warehouse") == wh for e in pub),
       "no topics: the order's two stock.changed (5 -> 3 -> 5), no order event",
       "%s vs %s" % ([(e[0], e[1], e[2]["data"]) for e in pub], want))
    ok([e[0] for e in s_empty.events if m0 < e[0] < m1] == want, "topics= (empty): the same")
    ok(not any(e[1].startswith("order.") or TOPIC.get(e[1]) == "orders" for x in (s_pub, s_empty)
               for e in x.events),
       "no order event on either public stream, ever", [e[1] for e in s_pub.events])
    with s_pub.cond, s_empty.cond:
        raw = bytes(s_pub.raw) + bytes(s_empty.raw)
    ok(email.encode() not in raw and oid.encode() not in raw and len(raw) > 0,
       "the public streams' bytes hold neither the customer's e-mail nor the order id (%d bytes)" % len(raw))
    stock = [e for x in (s_pub, s_empty) for e in x.events if e[1] == "stock.changed"]
    bad = [e[2]["data"] for e in stock if sorted(e[2]["data"]) != ["quantity", "sku", "warehouse"]]
    ok(len(stock) >= 4 and not bad, "each public stock.changed holds exactly warehouse, sku, quantity (%d)"
       % len(stock), bad[:5])
    for x in (s_pub, s_empty, s_adm):
        x.close()


def test_burst(shop, a):
    """Concurrent writers (psql: shop.emit, and so NOTIFY), short
    transactions, some rolled back: a live subscriber and one that resumes
    by Last-Event-ID mid-burst get every committed event once, in id order."""
    run = uuid.uuid4().hex[:8]
    n, writers = a.burst, a.writers
    live = FastStream(a.url, topics="products", resume=True)
    first = FastStream(a.url, topics="products", stop_after=(run, n // 3))
    time.sleep(0.3)
    t0 = time.monotonic()
    procs, rolled, tmp = shop.burst_tx(run, n, writers)
    first.wait(lambda st: st.eof, 60)
    with first.cond:
        got1 = [e for e in first.events if run_of(e) == run]
        last = first.events[-1][0] if first.events else 0
    second = FastStream(a.url, topics="products", last_event_id=last, resume=True)
    mid = sum(1 for p in procs if p.poll() is None)
    for p in procs:
        p.wait()
    t_written = time.monotonic() - t0
    errs = [open(p.args[-1] + ".err").read() for p in procs if p.returncode != 0]
    shutil.rmtree(tmp, ignore_errors=True)
    ok(not errs, "%d writers, %d events committed in short transactions (1-4 events), %d more rolled back"
       % (writers, n, rolled), "\n".join(errs)[:1000])
    table = shop.burst_ids(run)
    n_rb = int(shop.sql("SELECT count(*) FROM shop.events WHERE data->>'run' = '%s' AND data->>'rb' IS NOT NULL"
                        % run))
    ok(len(table) == n and n_rb == 0, "the table holds the %d committed events, none rolled back (%d, %d)"
       % (n, len(table), n_rb))
    wait_s = 30 + n / 1000.0
    live.wait(lambda st: st.runs.get(run, 0) >= len(table), wait_s)
    second.wait(lambda st: st.runs.get(run, 0) >= len(table) - len(got1), wait_s)
    t_all = time.monotonic() - t0
    time.sleep(0.5)                         # a duplicate or a stray would come now
    with live.cond:
        got = [e[0] for e in live.events if run_of(e) == run]
        rb = [e[0] for e in live.events if (e[2].get("data") or {}).get("rb")]
    with live.cond:
        resets = [e for e in live.events if e[1] == "reset"]
    ok(got == table and not rb and not resets, "a live subscriber got every committed event once, in id order "
       "(%d of %d: 0 lost, 0 duplicated, none rolled back; dropped as slow and resumed %d times)"
       % (len(got), len(table), live.drops), "%s; resets %s" % (gap_dup(got, table), resets[:2]))
    with second.cond:
        got2 = [e for e in second.events if run_of(e) == run]
        resets = [e for e in second.events if e[1] == "reset"]
    union = [e[0] for e in got1] + [e[0] for e in got2]
    ok(union == table and not resets,
       "resume by Last-Event-ID mid-burst: first %d + second %d = exactly the committed events, in order, "
       "no reset (dropped as slow and resumed %d times)" % (len(got1), len(got2), second.drops),
       "%s; resets %s" % (gap_dup(union, table), resets[:2]))
    note("%d writers, %d events (+%d rolled back): written in %.2f s, all delivered %.2f s after the start "
         "(%.0f events/s)" % (writers, n, rolled, t_written, t_all, n / t_all if t_all else 0))
    with first.cond:
        note("the first %s at id %d (%d events of the burst); the second came back with %d of %d writers "
             "still writing" % ("hung up" if first.hung_up else "was dropped by the server",
                                first.events[-1][0] if first.events else -1,
                                len(got1), mid, writers))
    live.close()
    second.close()


def test_frontend_writers(shop, a):
    """Writes through the front-end (no NOTIFY per event: the writer's
    process wakes the hubs once its own hub read): every event reaches a
    subscriber here and one on the other URL (shop-fcgi: another process),
    rolled-back orders give none."""
    run = uuid.uuid4().hex[:8]
    threads_n, puts = 16, 20
    wh = "fw-" + run
    st, _ = shop.call("PUT", "/warehouses/" + wh, {"name": "Front-end writers " + run}, admin=True)
    skus = ["FW%d-%s" % (i, run) for i in range(threads_n)]
    good = st in (200, 201)
    for sku in skus:
        st, _ = shop.call("POST", "/products", {"sku": sku, "name": sku, "price_cents": 100, "currency": "EUR"},
                          admin=True)
        good = good and st == 201
    urls = [a.url] + ([a.limited_url] if a.limited_url else [])
    subs = [Stream(u, topics="stock,orders", token=shop.token) for u in urls]
    time.sleep(0.3)
    m0 = shop.marker(run + "-start")
    answers = [[] for _ in range(threads_n)]

    def writer(i):
        sku = skus[i]
        for k in range(puts):
            st_, _ = shop.call("PUT", "/warehouses/%s/stock/%s" % (wh, sku), {"quantity": 100 + k}, admin=True)
            answers[i].append(("put", st_, 200))
        st_, _ = shop.call("POST", "/orders", {"items": [{"sku": sku, "quantity": 1000}],
                                               "customer_email": "fw@example.com"})
        answers[i].append(("order over the stock", st_, 409))
        st_, _ = shop.call("POST", "/orders", {"items": [{"sku": sku, "quantity": 1}],
                                               "customer_email": "fw@example.com"})
        answers[i].append(("order", st_, 201))
    ths = [threading.Thread(target=writer, args=(i,)) for i in range(threads_n)]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    m1 = shop.marker(run + "-end")
    bad = [x for ans in answers for x in ans if x[1] != x[2]]
    ok(good and not bad, "%d threads wrote through the front-end: %d stock levels, %d orders refused, %d placed"
       % (threads_n, threads_n * puts, threads_n, threads_n), bad[:10])
    table = [int(x) for x in shop.sql("SELECT id FROM shop.events WHERE id > %d AND id < %d "
                                      "AND topic IN ('stock', 'orders') ORDER BY id" % (m0, m1)).split()]
    n_want = threads_n * (puts + 2)         # each put, and each order: stock.changed and order.created
    ok(len(table) == n_want, "the table holds exactly their %d events: a refused order wrote none" % n_want,
       len(table))
    for u, sub in zip(urls, subs):
        sub.wait(lambda st_: set(table) <= set(st_.ids()), 10)
        time.sleep(0.2)
        got = [x for x in sub.ids() if m0 < x < m1]
        ok(got == table, "a subscriber on %s got each of them once, in id order" % (
            "the same URL" if u == a.url else "the other URL (%s)" % u), gap_dup(got, table))
    for sub in subs:
        sub.close()

    # One write at a time: how long to the subscriber on the other URL (a
    # wake-up, not the idle poll of a second).
    if a.limited_url:
        sub = Stream(a.limited_url, topics="stock")
        time.sleep(0.3)
        lat = []
        for k in range(10):
            t0 = time.monotonic()
            st, _ = shop.call("PUT", "/warehouses/%s/stock/%s" % (wh, skus[0]), {"quantity": 500 + k}, admin=True)
            if sub.wait(lambda st_: any(e[2]["data"].get("quantity") == 500 + k for e in st_.events), 3):
                lat.append((time.monotonic() - t0) * 1000)
            time.sleep(0.05)
        lat.sort()
        p50 = lat[len(lat) // 2] if lat else -1
        note("write through %s -> subscriber on %s: p50 %.1f ms, max %.1f ms"
             % (a.url, a.limited_url, p50, lat[-1] if lat else -1))
        ok(len(lat) == 10 and p50 < 250, "a write through one URL reaches a subscriber of the other within "
           "a wake-up (p50 %.1f ms < 250)" % p50, lat)
        sub.close()


def test_commit_order(shop, a):
    """Ids are drawn before commit: an id drawn earlier and committed later
    holds later ones back; a rolled-back one does not hold them for long."""
    for end in ("COMMIT", "ROLLBACK"):
        run = uuid.uuid4().hex[:8]
        s = Stream(a.url, topics="products")
        time.sleep(0.3)
        held = subprocess.Popen(["psql", "-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1", shop.dsn],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        held.stdin.write("BEGIN;\nSELECT shop.emit('test.held', 'products', json_build_object('run', '%s'));\n"
                         % run)
        held.stdin.flush()
        first = int(held.stdout.readline())
        second = shop.emit(run)[0]
        time.sleep(0.5)
        early = [e[0] for e in s.events if e[2]["data"].get("run") == run]
        t0 = time.monotonic()
        held.stdin.write(end + ";\n")
        held.stdin.close()
        held.wait()
        want = [first, second] if end == "COMMIT" else [second]
        s.wait(lambda st: len([e for e in st.events if e[2]["data"].get("run") == run]) >= len(want), 5)
        dt = time.monotonic() - t0
        time.sleep(0.2)
        got = [e[0] for e in s.events if e[2]["data"].get("run") == run]
        ok(first < second and early == [], "%s: nothing delivered while id %d is open and %d committed"
           % (end, first, second), early)
        ok(got == want and dt < 2, "%s of the held id: %s arrive%s in order (%.0f ms)"
           % (end, "both" if end == "COMMIT" else "the later one", "" if end == "COMMIT" else "s", dt * 1000),
           "%s vs %s" % (got, want))
        s.close()


def after_reset(st):
    """(the reset frames, the ids of the events after the first one)."""
    with st.cond:
        resets = [e for e in st.events if e[1] == "reset"]
        rest = [e[0] for e in st.events if e[1] != "reset"]
    return resets, rest


def check_reset(st, next_id, name):
    """The stream's first frame is the reset to next_id (raw bytes), and the
    only one."""
    with st.cond:
        frames = frames_of(st.raw) if st.raw is not None else []
        first = st.events[0] if st.events else None
    resets, _ = after_reset(st)
    return ok(first is not None and first[1] == "reset" and first[2] == {"reason": "too-far-behind", "next_id": next_id}
              and first[0] == next_id - 1 and len(resets) == 1
              and (st.raw is None or (frames and frames[0] == reset_frame(next_id))),
              "%s: the first frame is the reset, next_id %d, id: %d" % (name, next_id, next_id - 1),
              "first %s, %d resets, raw %r" % (first, len(resets), frames[:1]))


def test_replay_limit(shop, a):
    """A resume replays at most the replay limit (counting every topic)."""
    if not a.limited_url:
        note("skipped: the replay limit (no --limited-url)")
        return
    lim, L = a.limited_url, a.replay_limit
    run = uuid.uuid4().hex[:8]
    watch = Stream(lim, topics="products,prices")
    time.sleep(0.3)
    evs = shop.emit_mixed(run, 2 * L + 20)      # prices, products, prices, ...
    ids = [x for x, _ in evs]
    products = [x for x, t in evs if t == "products"]
    synced = watch.wait(lambda st: ids[-1] in st.ids(), 10)
    ok(synced and len(ids) == 2 * L + 20, "%d events, prices and products in turn, reached a subscriber of %s"
       % (len(ids), lim))

    # Exactly L events after the resume point: no reset, all of them.
    k = len(ids) - L - 1
    s1 = Stream(lim, topics="products,prices", last_event_id=ids[k])
    s1.wait(lambda st: ids[-1] in st.ids(), 5)
    resets, rest = after_reset(s1)
    ok(not resets and rest == ids[k + 1:], "Last-Event-ID with exactly the limit (%d) of events after it: no reset, "
       "all of them" % L, "resets %s; %s" % (resets, gap_dup(rest, ids[k + 1:])))
    s1.close()

    # L + 1 after it: a reset to the newest L (every topic counts), then
    # that stream's topics from there.
    nxt = ids[-L]
    s2 = Stream(lim, topics="products", after=ids[k - 1], raw=True)
    s2.wait(lambda st: products[-1] in st.ids(), 5)
    check_reset(s2, nxt, "?after= with the limit + 1 events after it (topics=products)")
    _, rest = after_reset(s2)
    want = [x for x in products if x >= nxt]
    ok(rest == want, "then the products events from next_id on, %d of the %d events from there" % (len(want), L),
       gap_dup(rest, want))

    # Far back, by Last-Event-ID: the same reset, the events, then live.
    s3 = Stream(lim, topics="products", last_event_id=ids[0] - 1, raw=True)
    s3.wait(lambda st: products[-1] in st.ids(), 5)
    check_reset(s3, nxt, "Last-Event-ID %d events back" % len(ids))
    live = shop.emit(run, n=5)
    s3.wait(lambda st: live[-1] in st.ids(), 5)
    s2.wait(lambda st: live[-1] in st.ids(), 5)
    time.sleep(0.3)
    for name, st in (("Last-Event-ID", s3), ("?after=", s2)):
        resets, rest = after_reset(st)
        ok(rest == want + live and len(resets) == 1, "%s: after the reset, the replay then 5 live events: no gap, "
           "no duplicate, one reset" % name, "%s; resets %d" % (gap_dup(rest, want + live), len(resets)))
    s2.close()
    s3.close()
    watch.wait(lambda st: live[-1] in st.ids(), 5)

    # ?after=0 on a table of thousands: a reset, then the newest L.
    total = int(shop.sql("SELECT count(*) FROM shop.events"))
    n0 = int(shop.sql("SELECT min(id) FROM (SELECT id FROM shop.events ORDER BY id DESC LIMIT %d) t" % L))
    pub0 = [int(x) for x in shop.sql("SELECT id FROM shop.events WHERE id >= %d AND topic IN ('products', "
                                     "'prices', 'stock') ORDER BY id" % n0).split()]
    s4 = Stream(lim, after=0, raw=True)
    s4.wait(lambda st: pub0[-1] in st.ids(), 5)
    check_reset(s4, n0, "?after=0 with %d events in the table" % total)
    resets, rest = after_reset(s4)
    ok(rest == pub0, "?after=0: then the public events of the newest %d (%d)" % (L, len(pub0)), gap_dup(rest, pub0))
    s4.close()
    # The reset's id is a resume point that needs no second reset.
    s5 = Stream(lim, last_event_id=n0 - 1, raw=True)
    s5.wait(lambda st: pub0[-1] in st.ids(), 5)
    resets, rest = after_reset(s5)
    ok(not resets and rest == pub0, "Last-Event-ID: the reset's id (%d): no second reset, the same events"
       % (n0 - 1), "resets %s; %s" % (resets, gap_dup(rest, pub0)))
    s5.close()
    # A resume point at the hub's position: live, no reset.
    s6 = Stream(lim, topics="products", last_event_id=live[-1])
    time.sleep(0.2)
    more = shop.emit(run, n=2)
    s6.wait(lambda st: more[-1] in st.ids(), 5)
    resets, rest = after_reset(s6)
    ok(not resets and rest == more, "Last-Event-ID: the newest id: live, no reset", "%s %s" % (resets, rest))
    s6.close()
    watch.close()


def test_retention(shop, a):
    """Events older than the retention, then pruned: a resume from before
    them gets a reset to the first id after them."""
    url = a.limited_url or a.url
    run = uuid.uuid4().hex[:8]
    watch = Stream(url, topics="products")
    time.sleep(0.3)
    through0 = shop.pruned_through()
    aged = shop.emit(run, n=20, type_="test.aged")
    fresh = shop.emit(run, n=10, type_="test.fresh")
    shop.sql("UPDATE shop.events SET created_at = created_at - interval '2 days' WHERE id BETWEEN %d AND %d"
             % (aged[0], aged[-1]))
    watch.wait(lambda st: fresh[-1] in st.ids(), 5)
    ok(through0 < aged[0] - 1 and fresh[0] == aged[-1] + 1, "20 events aged by two days, 10 fresh ones after them "
       "(ids %d-%d, %d-%d)" % (aged[0], aged[-1], fresh[0], fresh[-1]), "pruned through %d" % through0)

    s1 = Stream(url, topics="products", last_event_id=aged[0] - 1, raw=True)
    s1.wait(lambda st: fresh[-1] in st.ids(), 5)
    left = int(shop.sql("SELECT count(*) FROM shop.events WHERE id BETWEEN %d AND %d" % (aged[0], aged[-1])))
    if left < len(aged):
        note("the server's own retention pass pruned %d of the aged events already" % (len(aged) - left))
    check_reset(s1, fresh[0], "a resume from before events older than the retention (30 events back, within the "
                              "limit)")
    live = shop.emit(run, n=3)
    s1.wait(lambda st: live[-1] in st.ids(), 5)
    _, rest = after_reset(s1)
    ok(rest == fresh + live, "then the fresh events and the live ones", gap_dup(rest, fresh + live))
    s1.close()

    n = int(shop.sql("SELECT shop.events_prune(86400000, 100000)"))
    left = int(shop.sql("SELECT count(*) FROM shop.events WHERE id BETWEEN %d AND %d" % (aged[0], aged[-1])))
    through = shop.pruned_through()
    ok(left == 0 and through >= aged[-1] and int(shop.sql("SELECT count(*) FROM shop.events WHERE id >= %d"
                                                          % fresh[0])) >= len(fresh) + len(live),
       "shop.events_prune(24 h): the aged events are gone (%d now, the rest before), pruned through %d, the "
       "fresh ones stay" % (n, through), "left %d" % left)
    for name, after in (("from before them", aged[0] - 1), ("from among them", aged[9])):
        st = Stream(url, topics="products", after=after, raw=True)
        st.wait(lambda x: live[-1] in x.ids(), 5)
        check_reset(st, fresh[0], "a resume %s, once pruned" % name)
        _, rest = after_reset(st)
        ok(rest == fresh + live, "%s: then the events that are left, from next_id" % name,
           gap_dup(rest, fresh + live))
        st.close()
    st = Stream(url, topics="products", last_event_id=aged[-1])
    st.wait(lambda x: live[-1] in x.ids(), 5)
    resets, rest = after_reset(st)
    ok(not resets and rest == fresh + live, "a resume from the last pruned id (%d): no reset, all that follows"
       % aged[-1], "resets %s; %s" % (resets, gap_dup(rest, fresh + live)))
    st.close()
    watch.close()


def test_slow(shop, a):
    run = uuid.uuid4().hex[:8]
    u = urllib.parse.urlsplit(a.url)
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.connect((u.hostname, u.port))
    slow.sendall(("GET %s/events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n" % u.path.rstrip("/")).encode())
    reader = Stream(a.url)
    time.sleep(0.3)
    rss0 = rss(a.pid)
    n, pad = 3000, 4000
    threads, procs = shop.burst(run, n, writers=2, pad=pad)
    for t in threads:
        t.join()
    t0 = time.monotonic()
    reader.wait(lambda s: s.runs.get(run, 0) >= n, 30)
    got = sum(1 for e in reader.events if e[2]["data"].get("run") == run)
    if got != n:
        seen = set(e[2]["data"].get("n") for e in reader.events if e[2]["data"].get("run") == run)
        miss = sorted(set(range(n)) - seen)[:5]
        ids = dict((int(x.split("|")[1]), int(x.split("|")[0])) for x in shop.sql(
            "SELECT id || '|' || (data->>'n') FROM shop.events WHERE data->>'run' = '%s'" % run).split())
        note("missing n=%s ids=%s; reader last ids %s" % (miss, [ids.get(m) for m in miss], reader.ids()[-3:]))
    ok(got == n, "a reading stream gets all %d events of %d KB each while another never reads (%d, %.1f s)"
       % (n, pad // 1000, got, time.monotonic() - t0))
    # The slow one: cut by the server. What the buffers held, then the end:
    # EOF, or (nginx, fastcgi_buffering off) the last chunk of the response.
    time.sleep(2)
    slow.settimeout(5)
    total, tail, ended = 0, b"", False
    try:
        while True:
            b = slow.recv(1 << 20)
            if not b:
                ended = True
                break
            total += len(b)
            tail = (tail + b)[-16:]
            if tail.endswith(b"\r\n0\r\n\r\n"):
                ended = True
                break
    except socket.timeout:
        pass
    except OSError:
        ended = True
    slow.close()
    ok(ended and total < n * pad, "the slow stream was dropped: its response ended after %d KB of %d KB"
       % (total // 1024, n * pad // 1024))
    if a.log:
        time.sleep(0.5)
        ok("dropped: the client does not keep up" in open(a.log, errors="replace").read(),
           "shop-fcgi logged the drop")
    if rss0:
        rss1 = rss(a.pid)
        note("shop-fcgi RSS %d KB before, %d KB after the %d MB burst" % (rss0, rss1, n * pad >> 20))
    reader.close()


def rss(pid):
    if not pid:
        return None
    try:
        for line in open("/proc/%d/status" % pid):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None


def test_latency(shop, a):
    run = uuid.uuid4().hex[:8]
    s = Stream(a.url, topics="products")
    time.sleep(0.2)
    n = 300
    t0 = time.monotonic()
    threads, procs = shop.burst(run, n, writers=1, rate=100)
    for t in threads:
        t.join()
    s.wait(lambda st: st.runs.get(run, 0) >= n, 10)
    evs = [e for e in s.events if e[2]["data"].get("run") == run]
    lat = []
    for e in evs:
        at = e[2]["at"]                     # 2026-11-22T23:34:02.123Z
        t = time.mktime(time.strptime(at[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone + int(at[20:23]) / 1000.0
        lat.append((e[3] - t) * 1000)
    lat.sort()
    ok(len(evs) == n, "steady 100 events/s for 3 s: all %d delivered" % n)
    if lat:
        p50, p99 = lat[len(lat) // 2], lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        note("commit->delivery (event 'at' -> client, ms resolution): p50 %.1f ms, p99 %.1f ms, max %.1f ms"
             % (p50, p99, lat[-1]))
        ok(p99 < 100, "commit->delivery p99 < 100 ms (%.1f)" % p99)
    s.close()

    # Throughput: a burst of 5000 as fast as 4 writers go.
    run = uuid.uuid4().hex[:8]
    s = Stream(a.url, topics="products")
    time.sleep(0.2)
    t0 = time.monotonic()
    threads, procs = shop.burst(run, 5000, writers=4)
    s.wait(lambda st: st.runs.get(run, 0) >= 5000, 60)
    dt = time.monotonic() - t0
    for t in threads:
        t.join()
    got = sum(1 for e in s.events if e[2]["data"].get("run") == run)
    ok(got == 5000, "burst of 5000: all delivered")
    note("burst of 5000 from 4 writers: delivered in %.2f s (%.0f events/s, bounded by the writers)" % (dt, got / dt))
    s.close()


def test_max_streams(shop, a):
    if not a.max_streams:
        note("skipped: 503 past max_streams (no --max-streams)")
        return
    time.sleep(1.5)                        # streams closed above end within a second
    streams = [Stream(a.url) for _ in range(a.max_streams)]
    ok(all(s.status == 200 for s in streams), "%d streams open" % a.max_streams)
    extra = Stream(a.url)
    body = {}
    try:
        body = json.loads(extra.body)
    except Exception:
        pass
    ok(extra.status == 503 and extra.headers.get("Retry-After") is not None
       and body.get("type", "").endswith("/unavailable"),
       "one more: 503 unavailable with Retry-After", "%s %s" % (extra.status, body))
    st, _ = shop.call("GET", "/healthz")
    ok(st == 200, "requests are still answered with every stream slot taken")
    for s in streams:
        s.close()
    time.sleep(1.5)
    again = Stream(a.url)
    ok(again.status == 200, "a slot frees when a client goes away")
    again.close()


def test_restart(shop, a):
    if not a.restart_cmd:
        note("skipped: database restart (no --restart-cmd)")
        return
    run = uuid.uuid4().hex[:8]
    s = Stream(a.url, topics="products")
    time.sleep(0.2)
    m0 = shop.marker(run + "-a")
    s.wait(lambda st: any(e[0] == m0 for e in st.events), 5)
    # No pipes: a restarted server would hold them open.
    r = subprocess.run(a.restart_cmd, shell=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    ok(r.returncode == 0, "database restarted")
    ids = []
    for i in range(5):
        for _ in range(50):
            try:
                ids.append(shop.marker("%s-%d" % (run, i)))
                break
            except RuntimeError:
                time.sleep(0.2)
    got = s.wait(lambda st: all(any(e[0] == x for e in st.events) for x in ids), 15)
    ok(len(ids) == 5 and got, "a stream open across the restart gets the events committed after it")
    ok(not s.eof, "the stream stayed open")
    s.close()


def test_heartbeat(shop, a):
    if not a.heartbeat:
        note("skipped: heartbeat (no --heartbeat)")
        return
    s = Stream(a.url, topics="prices")
    ok(s.wait(lambda st: st.comments >= 1, 17), "a heartbeat comment within 15 s of silence")
    s.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--dsn", required=True)
    ap.add_argument("--token-file", required=True)
    ap.add_argument("--pid", type=int)
    ap.add_argument("--max-streams", type=int)
    ap.add_argument("--restart-cmd")
    ap.add_argument("--heartbeat", action="store_true")
    ap.add_argument("--log", help="shop-fcgi's stderr, to see why streams ended")
    ap.add_argument("--limited-url", help="the same shop with a small replay limit (another process for "
                                          "shop-fcgi): the replay limit and retention tests")
    ap.add_argument("--replay-limit", type=int, default=50, help="the replay limit of --limited-url")
    ap.add_argument("--burst", type=int, default=int(os.environ.get("EVENTS_BURST", "20000")),
                    help="committed events of the concurrent writers' burst (EVENTS_BURST, default 20000)")
    ap.add_argument("--writers", type=int, default=32, help="concurrent writers of the burst")
    ap.add_argument("--only", help="comma-separated test names (test_burst,...): only those")
    a = ap.parse_args()
    shop = Shop(a.url, open(a.token_file).read().strip(), a.dsn)
    for t in (test_changes, test_auth, test_public, test_burst, test_frontend_writers, test_commit_order,
              test_slow, test_latency, test_max_streams, test_replay_limit, test_restart, test_retention,
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
