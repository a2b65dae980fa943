#!/usr/bin/env python3
"""tests/ops/opsload.py: the load client and the checks of the operations
tests (issue 7), imported by tests/ops/*.py.

The load: a few threads per front-end, each sending requests from a mix
(GET a product, a product list, a stock check, POST /orders with an
Idempotency-Key, /healthz, /readyz) until told to stop, recording every
request: start (wall clock), latency, status, the problem type and
Retry-After of an error, the transport error if any. Threads alternate
between keep-alive connections and a new connection per request
(Connection: close). On a keep-alive connection the server may close while
idle (a reload closes idle connections); a request that meets that close
before any byte of the answer is sent again once on a new connection, as
RFC 9112 9.3.1 allows for idempotent requests (POST /orders carries an
Idempotency-Key, so a resend cannot order twice), and is counted as
"resent", never hidden.

Actions (a shell command: reload nginx, stop PostgreSQL, ...) run at given
offsets from the start, on a thread of their own, each with its start and
end time recorded. SSE subscribers (Resumer) reconnect with Last-Event-ID
whenever their stream ends and record every id they get.

Everything returns plain data; the test scripts judge it and print TAP.
"""
import http.client
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid

# ------------------------------------------------------------------- TAP


class Tap:
    def __init__(self):
        self.n = 0
        self.failed = 0

    def ok(self, cond, name, diag=None):
        self.n += 1
        if not cond:
            self.failed += 1
        print(("ok %d - %s" if cond else "not ok %d - %s") % (self.n, name))
        if not cond and diag:
            for line in (diag if isinstance(diag, list) else str(diag).splitlines())[:40]:
                print("#   " + str(line))
        sys.stdout.flush()
        return cond

    def skip(self, name, reason):
        self.n += 1
        print("ok %d - %s # SKIP %s" % (self.n, name, reason))
        sys.stdout.flush()

    def note(self, msg):
        for line in str(msg).splitlines():
            print("# " + line)
        sys.stdout.flush()

    def done(self):
        print("1..%d" % self.n)
        sys.stdout.flush()
        return 1 if self.failed else 0


# ---------------------------------------------------------------- targets


class Front:
    """A front-end: NAME=http://host:port"""

    def __init__(self, spec):
        self.name, _, url = spec.partition("=")
        u = urllib.parse.urlsplit(url)
        self.url = url.rstrip("/")
        self.host, self.port = u.hostname, u.port

    def __repr__(self):
        return self.name


def sql(dsn, text):
    r = subprocess.run(["psql", "-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1", dsn, "-c", text],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("psql: " + r.stderr.strip())
    return r.stdout.strip()


def call(front, method, path, body=None, headers=None, timeout=10):
    """One request on a connection of its own: (status, headers, json-or-bytes)."""
    c = http.client.HTTPConnection(front.host, front.port, timeout=timeout)
    try:
        h = dict(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        raw = r.read()
        try:
            doc = json.loads(raw) if raw else None
        except ValueError:
            doc = raw
        return r.status, {k.lower(): v for k, v in r.getheaders()}, doc
    finally:
        c.close()


# ------------------------------------------------------------------- load

# Statuses a request of each kind must get while nothing is wrong.
EXPECT = {"get": {200}, "list": {200}, "stock": {200}, "order": {201}, "healthz": {200}, "readyz": {200},
          "patch": {200}}
# Kinds that need the database (/healthz does not).
NEEDS_DB = {"get", "list", "stock", "order", "readyz", "patch"}


class Shop:
    """What the requests are about: product ids to read, skus to order
    (their stock topped up beforehand so orders never run short)."""

    def __init__(self, product_ids, order_skus, check_skus):
        self.product_ids = product_ids
        self.order_skus = order_skus
        self.check_skus = check_skus

    def request(self, kind, rnd):
        """(method, path, headers, body) of a request of this kind."""
        if kind == "get":
            return "GET", "/products/%d" % rnd.choice(self.product_ids), {}, None
        if kind == "list":
            return "GET", "/products?limit=5&category=%s" % rnd.choice(
                ["apparel", "books", "garden", "kitchen", "toys"]), {}, None
        if kind == "stock":
            return "POST", "/stock/check", {}, {"items": [{"sku": s, "quantity": 1}
                                                          for s in rnd.sample(self.check_skus, 3)]}
        if kind == "order":
            return "POST", "/orders", {"Idempotency-Key": "ops-" + uuid.uuid4().hex}, \
                {"items": [{"sku": rnd.choice(self.order_skus), "quantity": 1 + rnd.randrange(2)}],
                 "customer_email": "ops@example.com"}
        if kind == "healthz":
            return "GET", "/healthz", {}, None
        if kind == "readyz":
            return "GET", "/readyz", {}, None
        raise ValueError(kind)


def ops_shop():
    """What every ops script's load is about: products 1..200 to read (the
    seed of ops_pg_up), SKU-000001..20 to order (ops_stock_up tops them up),
    SKU-000001..100 to check."""
    return Shop(list(range(1, 201)), ["SKU-%06d" % i for i in range(1, 21)],
                ["SKU-%06d" % i for i in range(1, 101)])


class Rec:
    __slots__ = ("t0", "dt", "front", "kind", "status", "problem", "retry_after", "err", "resent",
                 "order_id", "rid", "phase", "detail")

    def as_list(self):
        return [getattr(self, k) for k in self.__slots__]


RETRYABLE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


class Worker(threading.Thread):
    def __init__(self, load, front, mix, keepalive, seed):
        super().__init__(daemon=True)
        self.load, self.front, self.mix, self.keepalive = load, front, mix, keepalive
        self.rnd = random.Random(seed)
        self.conn = None
        self.reused = False
        self.recs = []

    def close(self):
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:
                pass
        self.conn = None

    def once(self, method, path, headers, data):
        """(status, headers, body); raises on transport errors with .phase set."""
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.front.host, self.front.port, timeout=self.load.timeout)
            self.reused = False
        else:
            self.reused = True
        phase = "send"
        try:
            self.conn.request(method, path, body=data, headers=headers)
            phase = "status"
            r = self.conn.getresponse()
            phase = "body"
            raw = r.read()
        except Exception as e:
            e.phase = phase
            self.close()
            raise
        if r.will_close or not self.keepalive:
            self.close()
        return r.status, r, raw

    def run(self):
        L = self.load
        while not L.stop.is_set():
            kind = self.rnd.choice(self.mix)
            method, path, headers, body = L.shop.request(kind, self.rnd)
            rec = Rec()
            rec.front, rec.kind, rec.resent = self.front.name, kind, 0
            rec.status = rec.problem = rec.retry_after = rec.err = rec.order_id = rec.phase = rec.detail = None
            rec.rid = "ops-%s-%d" % (uuid.uuid4().hex[:12], len(self.recs))
            h = {"X-Request-Id": rec.rid}
            h.update(headers)
            if not self.keepalive:
                h["Connection"] = "close"
            data = None
            if body is not None:
                data = json.dumps(body).encode()
                h["Content-Type"] = "application/json"
            rec.t0 = time.time()
            m0 = time.monotonic()
            try:
                try:
                    status, r, raw = self.once(method, path, h, data)
                except RETRYABLE as e:
                    # The server closed a kept-alive connection as we used
                    # it: no byte of an answer came. Send it again, once,
                    # on a new connection.
                    if not (self.reused and e.phase in ("send", "status")):
                        raise
                    rec.resent = 1
                    status, r, raw = self.once(method, path, h, data)
                rec.status = status
                if status >= 400:
                    try:
                        doc = json.loads(raw)
                        rec.problem = doc.get("type", "").rsplit("/", 1)[-1]
                        rec.detail = str(doc.get("detail", ""))[:120]
                    except (ValueError, AttributeError):
                        rec.problem = "(not json)"
                    rec.retry_after = r.getheader("Retry-After")
                elif kind == "order" and status in (200, 201):
                    try:
                        rec.order_id = json.loads(raw)["id"]
                    except (ValueError, KeyError):
                        rec.problem = "(order without id)"
            except Exception as e:
                rec.err = "%s: %s" % (type(e).__name__, e)
                rec.phase = getattr(e, "phase", None)
            rec.dt = time.monotonic() - m0
            self.recs.append(rec)
            if rec.err:
                time.sleep(0.02)       # refused (say): no busy loop
            elif L.pause:
                time.sleep(L.pause)
        self.close()


class Action:
    def __init__(self, at, name, cmd):
        self.at, self.name, self.cmd = at, name, cmd
        self.t_begin = self.t_end = None
        self.rc, self.out = None, ""


class Load:
    """threads per front-end, each running the mix, for `duration` seconds;
    actions at their offsets."""

    def __init__(self, shop, fronts, mix, threads=4, timeout=10.0, pause=0.0):
        self.shop, self.fronts, self.mix = shop, fronts, mix
        self.threads, self.timeout, self.pause = threads, timeout, pause
        self.stop = threading.Event()
        self.workers = []
        self.actions = []
        self.t_start = None

    def at(self, offset, name, cmd):
        a = Action(offset, name, cmd)
        self.actions.append(a)
        return a

    def _actions(self):
        for a in sorted(self.actions, key=lambda a: a.at):
            left = self.t_start + a.at - time.time()
            if left > 0 and self.stop.wait(left):
                return
            a.t_begin = time.time()
            if callable(a.cmd):
                try:
                    a.rc, a.out = 0, str(a.cmd() or "")
                except Exception as e:
                    a.rc, a.out = 1, repr(e)
            else:
                p = subprocess.run(["bash", "-c", a.cmd], capture_output=True, text=True)
                a.rc, a.out = p.returncode, (p.stdout + p.stderr).strip()
            # An action may say when its real work began ("T=<epoch
            # seconds>" on a line of its output): after its shell started,
            # or after what it waited for.
            for line in a.out.splitlines():
                if line.startswith("T="):
                    a.t_begin = float(line[2:])
                    break
            a.t_end = time.time()

    def run(self, duration):
        seed = 1
        for f in self.fronts:
            for i in range(self.threads):
                self.workers.append(Worker(self, f, self.mix, keepalive=(i % 2 == 0), seed=seed))
                seed += 1
        self.t_start = time.time()
        for w in self.workers:
            w.start()
        act = threading.Thread(target=self._actions, daemon=True)
        act.start()
        self.stop.wait(duration)
        act.join()             # actions run to their end even past the duration
        self.stop.set()
        for w in self.workers:
            w.join(self.timeout + 5)
        self.t_end = time.time()
        return self.records()

    def records(self):
        out = []
        for w in self.workers:
            out.extend(w.recs)
        out.sort(key=lambda r: r.t0)
        return out


def failed(rec):
    return rec.err is not None or rec.status not in EXPECT[rec.kind]


def describe(rec, t_ref=0.0):
    what = rec.err if rec.err else "%s%s%s%s" % (rec.status, " " + rec.problem if rec.problem else "",
                                                 " Retry-After: %s" % rec.retry_after if rec.retry_after else "",
                                                 ' "%s"' % rec.detail if rec.detail else "")
    return "%s %s at +%.3f s, %.3f s: %s%s (X-Request-Id %s)" % (
        rec.front, rec.kind, rec.t0 - t_ref, rec.dt, what, " [resent]" if rec.resent else "", rec.rid)


def summary(recs):
    """{sent, failed, resent, max_latency, p99, rps-ish} of a list of records."""
    n = len(recs)
    lat = sorted(r.dt for r in recs)
    return {
        "sent": n,
        "failed": sum(1 for r in recs if failed(r)),
        "resent": sum(r.resent for r in recs),
        "max": lat[-1] if lat else 0.0,
        "p99": lat[min(n - 1, int(n * 0.99))] if lat else 0.0,
        "p50": lat[n // 2] if lat else 0.0,
    }


def fmt_summary(s):
    return "%d sent, %d failed, %d resent after an idle keep-alive close, latency p50 %.1f ms, p99 %.1f ms, max %.1f ms" % (
        s["sent"], s["failed"], s["resent"], s["p50"] * 1000, s["p99"] * 1000, s["max"] * 1000)


# -------------------------------------------------------------------- SSE


class Resumer(threading.Thread):
    """An SSE subscriber that reconnects with Last-Event-ID whenever its
    stream ends (or fails), from `start_id`. Records every id received, in
    order, and each reconnect."""

    def __init__(self, front, topics, start_id):
        super().__init__(daemon=True)
        self.front, self.topics = front, topics
        self.last = start_id
        self.ids = []
        self.reconnects = []      # (time, how the previous stream ended)
        self.connect_errors = []
        self.stop = threading.Event()
        self.cond = threading.Condition()
        self.sock = None
        self.connected = 0

    def run(self):
        ended = None
        while not self.stop.is_set():
            streaming = False
            try:
                c = http.client.HTTPConnection(self.front.host, self.front.port, timeout=30)
                c.connect()
                self.sock = c.sock
                c.request("GET", "/events?topics=" + self.topics,
                          headers={"Accept": "text/event-stream", "Last-Event-ID": str(self.last)})
                r = c.getresponse()
                if r.status != 200:
                    self.connect_errors.append((time.time(), "status %d" % r.status))
                    r.read()
                    c.close()
                    time.sleep(0.05)
                    continue
                streaming = True
                if ended is not None:
                    self.reconnects.append((time.time(), ended))
                self.connected += 1
                cur = {}
                while True:
                    line = r.readline()
                    if not line:
                        ended = "end of stream"
                        break
                    line = line.decode("utf-8").rstrip("\r\n")
                    if line == "":
                        if "id" in cur and "data" in cur:
                            i = int(cur["id"])
                            with self.cond:
                                self.ids.append(i)
                                self.last = i
                                self.cond.notify_all()
                        cur = {}
                    elif not line.startswith(":"):
                        k, _, v = line.partition(":")
                        cur[k] = v[1:] if v.startswith(" ") else v
                c.close()
            except Exception as e:
                if self.stop.is_set():
                    break
                if streaming:
                    ended = "%s: %s" % (type(e).__name__, e)
                else:
                    self.connect_errors.append((time.time(), "%s: %s" % (type(e).__name__, e)))
                time.sleep(0.05)

    def wait_for(self, last_id, timeout):
        t_end = time.monotonic() + timeout
        with self.cond:
            while self.last < last_id:
                left = t_end - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(min(left, 0.2))
        return True

    def close(self):
        self.stop.set()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except Exception:
            pass

    def check(self, expected):
        """(ok, text): ids == expected (the table's ids for these topics
        after start), no gap, no duplicate."""
        got = self.ids
        dup = sorted({x for x in got if got.count(x) > 1}) if len(set(got)) != len(got) else []
        missing = sorted(set(expected) - set(got))
        extra = sorted(set(got) - set(expected))
        order = all(a < b for a, b in zip(got, got[1:]))
        good = not dup and not missing and not extra and order
        return good, "%d events, %d reconnects, missing %s, duplicated %s, unexpected %s, ordered %s" % (
            len(got), len(self.reconnects), missing[:10], dup[:10], extra[:10], order)


# ------------------------------------------------- slow requests, row locks


class RowLock:
    """A psql session holding FOR UPDATE on some products for `hold`
    seconds: a PATCH of one of them waits for it (a slow request)."""

    def __init__(self, dsn, product_ids, hold):
        script = ("BEGIN;\nSELECT 1 FROM shop.products WHERE id IN (%s) FOR UPDATE;\n\\echo locked\n"
                  "SELECT pg_sleep(%f);\nCOMMIT;\n\\echo released\n"
                  % (",".join(str(i) for i in product_ids), hold))
        self.t_locked = self.t_released = None
        self.p = subprocess.Popen(["psql", "-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1", dsn, "-f", "-"],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True)
        self.p.stdin.write(script)
        self.p.stdin.close()
        self.lines = []
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for line in self.p.stdout:
            line = line.strip()
            self.lines.append(line)
            if line == "locked":
                self.t_locked = time.time()
                self.ready.set()
            elif line == "released":
                self.t_released = time.time()
        self.p.wait()
        self.ready.set()

    def wait_locked(self, timeout=10):
        return self.ready.wait(timeout) and self.t_locked is not None

    def join(self, timeout=30):
        self.thread.join(timeout)
        return self.p.returncode


def wait_lock_waiters(dsn, n, timeout=5.0):
    """Waits until n sessions of the database wait on a lock (the slow
    requests are in flight); True if they do."""
    t_end = time.time() + timeout
    while time.time() < t_end:
        if int(sql(dsn, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                        "AND datname = current_database()")) >= n:
            return True
        time.sleep(0.02)
    return False


class Slow(threading.Thread):
    """One request on a thread of its own: status, start, end, body."""

    def __init__(self, front, method, path, body=None, headers=None, timeout=30):
        super().__init__(daemon=True)
        self.front, self.method, self.path, self.body = front, method, path, body
        self.headers, self.timeout = headers or {}, timeout
        self.status = self.err = self.doc = None
        self.t0 = self.t1 = None

    def run(self):
        self.t0 = time.time()
        try:
            self.status, _, self.doc = call(self.front, self.method, self.path, self.body, self.headers, self.timeout)
        except Exception as e:
            self.err = "%s: %s" % (type(e).__name__, e)
        self.t1 = time.time()


class ExitWatch(threading.Thread):
    """Notes when a process is gone (polls /proc every 10 ms)."""

    def __init__(self, pid, limit=30):
        super().__init__(daemon=True)
        self.pid, self.limit = pid, limit
        self.t_gone = None
        self.start()

    def run(self):
        t_end = time.time() + self.limit
        while time.time() < t_end:
            if not pid_alive(self.pid):
                self.t_gone = time.time()
                return
            time.sleep(0.01)


# --------------------------------------------------------- database checks

ORDER_CHECKS = [
    ("orders without lines",
     "SELECT count(*) FROM shop.orders o WHERE NOT EXISTS "
     "(SELECT 1 FROM shop.order_lines l WHERE l.order_id = o.id)"),
    ("orders whose total is not the sum of their lines",
     "SELECT count(*) FROM shop.orders o WHERE o.total_cents <> "
     "(SELECT coalesce(sum(l.quantity::bigint * l.unit_price_cents), 0) FROM shop.order_lines l WHERE l.order_id = o.id)"),
    ("orders without exactly one order.created event",
     "SELECT count(*) FROM shop.orders o WHERE (SELECT count(*) FROM shop.events e "
     "WHERE e.type = 'order.created' AND e.data->>'id' = o.id::text) <> 1"),
    ("order.created events without their order",
     "SELECT count(*) FROM shop.events e WHERE e.type = 'order.created' AND NOT EXISTS "
     "(SELECT 1 FROM shop.orders o WHERE o.id::text = e.data->>'id')"),
    ("order lines of the load without their stock.changed event (counts differ by)",
     "SELECT abs((SELECT count(*) FROM shop.events WHERE type = 'stock.changed' AND id > (SELECT event_id FROM ops.mark)) - "
     "(SELECT count(*) FROM shop.order_lines l JOIN shop.orders o ON o.id = l.order_id "
     "WHERE o.seq > (SELECT order_seq FROM ops.mark)))"),
    ("products whose stock + ordered units differ from before the load",
     "SELECT count(*) FROM ops.stock0 s0 WHERE s0.units <> "
     "coalesce((SELECT sum(quantity) FROM shop.stock st WHERE st.product_id = s0.product_id), 0) + "
     "coalesce((SELECT sum(l.quantity) FROM shop.order_lines l JOIN shop.orders o ON o.id = l.order_id "
     "WHERE l.product_id = s0.product_id AND o.status NOT IN ('cancelled', 'refunded')), 0)"),
]


def snapshot_stock(dsn):
    """Units per product (stock + on live orders) before the load."""
    sql(dsn, "CREATE SCHEMA IF NOT EXISTS ops; DROP TABLE IF EXISTS ops.stock0; "
             "CREATE TABLE ops.stock0 AS SELECT p.id AS product_id, "
             "coalesce((SELECT sum(quantity) FROM shop.stock st WHERE st.product_id = p.id), 0) + "
             "coalesce((SELECT sum(l.quantity) FROM shop.order_lines l JOIN shop.orders o ON o.id = l.order_id "
             "WHERE l.product_id = p.id AND o.status NOT IN ('cancelled', 'refunded')), 0) AS units "
             "FROM shop.products p; "
             "DROP TABLE IF EXISTS ops.mark; CREATE TABLE ops.mark AS SELECT "
             "coalesce((SELECT max(id) FROM shop.events), 0) AS event_id, "
             "coalesce((SELECT max(seq) FROM shop.orders), 0) AS order_seq")


def check_orders(tap, dsn, label, recs):
    """The database after a load with POST /orders: no half-written order or
    event, stock conserved; every 201 is in the table."""
    problems = []
    for name, q in ORDER_CHECKS:
        n = int(sql(dsn, q))
        if n:
            problems.append("%d %s" % (n, name))
    n_orders = int(sql(dsn, "SELECT count(*) FROM shop.orders"))
    answered = {r.order_id for r in recs if r.kind == "order" and r.order_id}
    in_db = set(sql(dsn, "SELECT id FROM shop.orders").split())
    lost = answered - in_db
    if lost:
        problems.append("%d orders answered 201 are not in the table: %s" % (len(lost), sorted(lost)[:5]))
    tap.ok(not problems, "%s: database consistent after the load: %d orders, each with lines, total = lines, "
                         "one order.created event each and no orphan event, stock + ordered units conserved per product"
           % (label, n_orders), problems)
    return n_orders, len(answered)


def tail(path, n=30):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.readlines()[-n:]
    except OSError:
        return []


def pid_alive(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("State:"):
                    return "Z" not in line.split()[1]
    except OSError:
        return False
    return False


def children(pid):
    try:
        out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
        return sorted(int(x) for x in out.split())
    except OSError:
        return []


if __name__ == "__main__":
    sys.exit("a library: see tests/ops/*.py")
