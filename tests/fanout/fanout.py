#!/usr/bin/env python3
"""Stock check fan-out (issue 5): TAP tests against a running shop.

    fanout.py --url http://127.0.0.1:8080 --dsn "host=... port=... dbname=..." \
              --token-file TOKEN --hang-port P1 --closed-port P2 \
              [--deadline-ms 250] [--pid FCGI_PID] [--only latency] [--shops N] \
              [--stock-appname 'shop-fcgi stock']

The shop under test must have been started with
    SHOP_WAREHOUSE_FT_HANG_DATABASE="hostaddr=127.0.0.1 port=P1 user=x dbname=x sslmode=disable"
    SHOP_WAREHOUSE_FT_CLOSED_DATABASE="hostaddr=127.0.0.1 port=P2 user=x dbname=x sslmode=disable"
    SHOP_STOCK_DEADLINE_MS=<deadline-ms>
This script opens the listener on P1 (it accepts and never answers); nothing
listens on P2. The test REPLACES the warehouses of the database behind
--dsn (a throwaway one): the fan-out asks every warehouse there is.
--pid (the shop-fcgi process, or the nginx worker) enables the descriptor-leak checks.
"""
import argparse
import json
import os
import select
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from tap import Tap  # noqa: E402



TAP = Tap(diag_lines=None)
ok, note = TAP.ok, TAP.note


class Shop:
    def __init__(self, url, token, dsn):
        self.url = url.rstrip("/")
        self.token = token
        self.dsn = dsn

    def call(self, method, path, body=None, admin=False, timeout=10):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if admin:
            req.add_header("Authorization", "Bearer " + self.token)
        t0 = time.monotonic()
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                status, raw, hdrs = r.status, r.read(), r.headers
        except urllib.error.HTTPError as e:
            status, raw, hdrs = e.code, e.read(), e.headers
        ms = (time.monotonic() - t0) * 1000
        try:
            doc = json.loads(raw) if raw else None
        except ValueError:
            doc = raw
        return status, doc, ms, hdrs

    def check(self, items):
        return self.call("POST", "/stock/check", {"items": items})

    def sql(self, text):
        r = subprocess.run(["psql", "-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1", self.dsn, "-c", text],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError("psql: " + r.stderr.strip())
        return r.stdout.strip()

    def warehouses(self, spec):
        """Makes the warehouse table exactly spec: {code: latency_ms}."""
        codes = ",".join("'%s'" % c for c in spec)
        self.sql("DELETE FROM shop.stock WHERE warehouse NOT IN (%s)" % (codes or "''"))
        self.sql("DELETE FROM shop.warehouses WHERE code NOT IN (%s)" % (codes or "''"))
        for code, lat in spec.items():
            self.sql("INSERT INTO shop.warehouses (code, name, latency_ms) VALUES ('%s', 'FT %s', %d)"
                     " ON CONFLICT (code) DO UPDATE SET latency_ms = EXCLUDED.latency_ms" % (code, code, lat))

    def wait_registry(self, codes, limit=15.0, dead=False):
        """Waits until the stock check asks exactly these warehouses (dead:
        all of them are down, so the reply is a 503 that names none)."""
        want = set(codes)
        t_end = time.monotonic() + limit
        seen = None
        while time.monotonic() < t_end:
            st, doc, _, _ = self.check([{"sku": "FT-1", "quantity": 1}])
            if isinstance(doc, dict) and "warehouses" in doc:
                seen = set(doc["warehouses"])
            elif st == 503 and (dead or not want):
                return True
            if seen == want:
                return True
            time.sleep(0.2)
        note("registry still %r, want %r" % (seen, want))
        return False


class HangServer:
    """Accepts TCP connections and never answers; counts the ones still open."""

    def __init__(self, port):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(128)
        self.conns = []
        self.accepted = 0
        self.lock = threading.Lock()
        self.stop = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop:
            r, _, _ = select.select([self.sock] + self.conns, [], [], 0.05)
            for s in r:
                if s is self.sock:
                    c, _ = self.sock.accept()
                    with self.lock:
                        self.conns.append(c)
                        self.accepted += 1
                    continue
                try:
                    data = s.recv(4096)      # the client's startup packet, or EOF
                except OSError:
                    data = b""
                if not data:
                    with self.lock:
                        self.conns.remove(s)
                    s.close()

    def open_count(self):
        time.sleep(0.1)
        with self.lock:
            return len(self.conns)

    def close(self):
        self.stop = True
        self.thread.join()
        for c in self.conns:
            c.close()
        self.sock.close()


def fd_count(pid):
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return None


def stock_backends(shop, appname):
    return int(shop.sql("SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE '%s'"
                        % appname.replace("'", "''")))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--dsn", required=True)
    ap.add_argument("--token-file", required=True)
    ap.add_argument("--hang-port", type=int, required=True)
    ap.add_argument("--closed-port", type=int, required=True)
    ap.add_argument("--deadline-ms", type=int, default=250)
    ap.add_argument("--pid", type=int)
    ap.add_argument("--only", choices=["latency"])
    ap.add_argument("--shops", type=int, default=1, help="shop-fcgi processes (or module configurations) on this database")
    ap.add_argument("--stock-appname", default="shop-fcgi stock",
                    help="application_name (a LIKE pattern) of the shop's stock-check connections")
    a = ap.parse_args()

    shop = Shop(a.url, open(a.token_file).read().strip(), a.dsn)
    D = a.deadline_ms

    # Products the checks ask for, with known stock per warehouse.
    shop.sql("INSERT INTO shop.products (sku, slug, name, price_cents, currency) VALUES"
             " ('FT-1', 'ft-1', 'Fan-out one', 100, 'EUR'), ('FT-2', 'ft-2', 'Fan-out two', 100, 'EUR')"
             " ON CONFLICT DO NOTHING")

    def set_stock(levels):
        for (code, sku), q in levels.items():
            shop.sql("INSERT INTO shop.stock (warehouse, product_id, quantity)"
                     " SELECT '%s', id, %d FROM shop.products WHERE sku = '%s'"
                     " ON CONFLICT (product_id, warehouse) DO UPDATE SET quantity = EXCLUDED.quantity"
                     % (code, q, sku))

    if a.only == "latency":
        latency_tests(shop, D)
        finish()
        return

    hang = HangServer(a.hang_port)
    try:
        # ---- all warehouses healthy
        shop.warehouses({"ft-a": 0, "ft-b": 0, "ft-c": 0})
        set_stock({("ft-a", "FT-1"): 3, ("ft-b", "FT-1"): 2, ("ft-c", "FT-2"): 5})
        ok(shop.wait_registry(["ft-a", "ft-b", "ft-c"]), "registry: the three warehouses, within its refresh")
        st, doc, ms, _ = shop.check([{"sku": "FT-1", "quantity": 4}, {"sku": "FT-2", "quantity": 6},
                                     {"sku": "NO-SUCH", "quantity": 1}])
        want = {"items": [
            {"sku": "FT-1", "requested": 4, "available": 5, "by_warehouse": {"ft-a": 3, "ft-b": 2, "ft-c": 0}, "ok": True},
            {"sku": "FT-2", "requested": 6, "available": 5, "by_warehouse": {"ft-a": 0, "ft-b": 0, "ft-c": 5}, "ok": False},
            {"sku": "NO-SUCH", "requested": 1, "available": 0, "by_warehouse": {}, "ok": False, "unknown": True}],
            "warehouses": {"ft-a": "ok", "ft-b": "ok", "ft-c": "ok"}, "complete": True}
        ok(st == 200 and doc == want, "healthy: sums, flags, complete:true", json.dumps(doc))
        note("healthy check: %.1f ms" % ms)

        # ---- a target that accepts and never answers
        fd0 = fd_count(a.pid) if a.pid else None
        st, _, _, _ = shop.call("PUT", "/warehouses/ft-hang", {"name": "Hangs"}, admin=True)
        ok(st == 201, "PUT /warehouses/ft-hang creates it")
        worst, statuses, bad, times = 0.0, set(), [], []
        for i in range(20):
            st, doc, ms, _ = shop.check([{"sku": "FT-1", "quantity": 1}])
            worst = max(worst, ms)
            times.append(ms)
            wh = doc.get("warehouses", {}) if isinstance(doc, dict) else {}
            statuses.add(wh.get("ft-hang"))
            if not (st == 200 and wh.get("ft-hang") == "timeout" and doc.get("complete") is False
                    and all(wh.get(c) == "ok" for c in ("ft-a", "ft-b", "ft-c"))
                    and doc["items"][0]["available"] == 5):
                bad.append((i, st, doc))
            if ms > D + 50:
                bad.append((i, "slow", ms))
        ok(not bad, "hanging target x20: ft-hang timeout, the others ok, complete:false, each within deadline+50 ms",
           "\n".join(map(str, bad[:5])))
        note("hanging target: replies %s ms (deadline %d ms; the target counts as down once a "
             "connect hung for a few seconds)" % (" ".join("%.0f" % t for t in times), D))
        if a.pid:
            time.sleep(3.5)     # the background connects to it give up after 3 s
            fd1 = fd_count(a.pid)
            ok(fd0 is not None and fd1 is not None and fd1 <= fd0 + 1,
               "hanging target x20: the shop process's descriptors do not grow (%s -> %s, at most one retry "
               "in flight)" % (fd0, fd1))
        n_open = hang.open_count()
        ok(n_open <= a.shops, "hanging target: each shop keeps at most one connection to it open "
           "(%d open for %d shops, %d accepted)" % (n_open, a.shops, hang.accepted))

        # ---- a closed port
        st, _, _, _ = shop.call("PUT", "/warehouses/ft-closed", {"name": "Closed"}, admin=True)
        times, bad = [], []
        for i in range(5):
            st, doc, ms, _ = shop.check([{"sku": "FT-1", "quantity": 1}])
            times.append(ms)
            wh = doc.get("warehouses", {}) if isinstance(doc, dict) else {}
            if not (st == 200 and wh.get("ft-closed") == "error" and doc.get("complete") is False
                    and wh.get("ft-a") == "ok"):
                bad.append((i, st, doc))
        ok(not bad, "closed port: ft-closed error, others ok, complete:false", "\n".join(map(str, bad[:3])))
        ok(max(times) < min(100, D), "closed port: answered quickly (max %.1f ms)" % max(times))

        # ---- every target dead
        shop.warehouses({"ft-hang": 0, "ft-closed": 0})
        ok(shop.wait_registry(["ft-hang", "ft-closed"], dead=True), "registry: only the dead warehouses")
        st, doc, ms, hdrs = shop.check([{"sku": "FT-1", "quantity": 1}])
        ok(st == 503 and isinstance(doc, dict) and doc.get("type", "").endswith("/unavailable")
           and hdrs.get("Retry-After") is not None,
           "all targets dead: 503 unavailable with Retry-After", "%s %s" % (st, doc))
        ok(ms < D + 50, "all targets dead: within deadline+50 ms (%.1f ms)" % ms)

        # ---- a warehouse slower than the deadline
        shop.warehouses({"ft-a": 0, "ft-b": 0, "ft-slow": D + 400})
        set_stock({("ft-a", "FT-1"): 3, ("ft-b", "FT-1"): 2, ("ft-slow", "FT-1"): 7})
        ok(shop.wait_registry(["ft-a", "ft-b", "ft-slow"]), "registry: ft-a, ft-b, ft-slow")
        bad, times = [], []
        for i in range(5):
            st, doc, ms, _ = shop.check([{"sku": "FT-1", "quantity": 1}])
            times.append(ms)
            wh = doc.get("warehouses", {}) if isinstance(doc, dict) else {}
            if not (st == 200 and wh.get("ft-slow") == "timeout" and wh.get("ft-a") == "ok"
                    and doc["items"][0]["available"] == 5):
                bad.append((i, st, doc))
        ok(not bad, "slow warehouse: timeout, others ok", "\n".join(map(str, bad[:3])))
        ok(all(D - 5 <= t < D + 50 for t in times),
           "slow warehouse: answered at the deadline (%s ms)" % ", ".join("%.0f" % t for t in times))
        n_back = stock_backends(shop, a.stock_appname)
        ok(n_back <= 3 * 4, "slow warehouse: stock connections stay bounded (%d backends)" % n_back)
        st, _, _, _ = shop.call("PUT", "/warehouses/ft-slow", {"name": "Fast now", "latency_ms": 0}, admin=True)
        st, doc, ms, _ = shop.check([{"sku": "FT-1", "quantity": 1}])
        wh = doc.get("warehouses", {}) if isinstance(doc, dict) else {}
        ok(st == 200 and doc.get("complete") is True and doc["items"][0]["available"] == 12 and ms < 100,
           "after the timeouts: the next request is not slowed (%.1f ms, %s)" % (ms, wh))

        latency_tests(shop, D)
    finally:
        hang.close()
    finish()


def latency_tests(shop, D):
    if D < 300:
        note("deadline %d ms: the latency test needs >= 300 ms; run it with --deadline-ms 1000 --only latency" % D)
        return
    shop.warehouses({"ft-l150": 150, "ft-l100a": 100, "ft-l100b": 100, "ft-l50": 50})
    ok(shop.wait_registry(["ft-l150", "ft-l100a", "ft-l100b", "ft-l50"]), "registry: four warehouses 150/100/100/50 ms")
    times, bad = [], []
    for i in range(10):
        st, doc, ms, _ = shop.check([{"sku": "FT-1", "quantity": 1}])
        times.append(ms)
        if not (st == 200 and isinstance(doc, dict) and doc.get("complete") is True):
            bad.append((i, st, doc))
    ok(not bad, "latency 150/100/100/50: all ok, complete", "\n".join(map(str, bad[:3])))
    ok(all(150 <= t < 400 for t in times),
       "latency 150/100/100/50, deadline %d ms: >= 150 and < 400 ms (%s)" % (D, ", ".join("%.0f" % t for t in times)))
    times.sort()
    note("latency 150/100/100/50: min %.1f, median %.1f, max %.1f ms" % (times[0], times[len(times) // 2], times[-1]))


def finish():
    sys.exit(TAP.done())


if __name__ == "__main__":
    main()
