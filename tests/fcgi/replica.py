#!/usr/bin/env python3
"""The read replica of shop-fcgi (SHOP_READ_DATABASE_URL), FastCGI straight
to its socket. TAP on stdout.

  replica.py standby --socket S --token-file F --primary DSN --replica DSN
      shop-fcgi reads from a streaming hot standby of the primary: its
      connections show up there (application_name "shop-fcgi read",
      "shop-fcgi stock") and not on the primary; with the standby's replay
      paused, a PATCH (primary) is not seen by GET (replica) until replay
      resumes, orders are read from the primary all the same; metrics name
      the pools.
  replica.py down --socket S --token-file F --primary DSN --log FILE --create CMD
      the read database does not exist yet: reads answer 503 with
      Retry-After (no fallback to the primary), writes and orders work,
      /readyz is 200, one log line says so; CMD creates it, and reads
      succeed again without a restart.
"""
import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from tap import Tap  # noqa: E402
from fcgiclient import request  # noqa: E402

TAP = Tap()
ok = TAP.ok


def psql(dsn, sql):
    r = subprocess.run(["psql", "-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1", dsn, "-c", sql],
                       capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        raise RuntimeError("psql: " + r.stderr.strip())
    return r.stdout.strip()


class Shop:
    def __init__(self, sock, token):
        self.addr = "unix:" + sock
        self.admin = {"Authorization": "Bearer " + token}

    def get(self, path, admin=False):
        st, hd, body = request(self.addr, "GET", path, headers=self.admin if admin else None)
        return st, hd, json.loads(body) if body.startswith(b"{") else body

    def send(self, method, path, obj, admin=False):
        st, hd, body = request(self.addr, method, path, json.dumps(obj).encode(),
                               headers=self.admin if admin else None)
        return st, hd, json.loads(body) if body.startswith(b"{") else body


def apps(dsn, db):
    """application_name -> connections to database db."""
    rows = psql(dsn, "SELECT application_name, count(*) FROM pg_stat_activity "
                     "WHERE datname = '%s' GROUP BY 1" % db)
    out = {}
    for line in rows.splitlines():
        k, _, v = line.rpartition("|")
        out[k] = int(v)
    return out


def order(shop):
    return shop.send("POST", "/orders", {"items": [{"sku": "SKU-000003", "quantity": 1}],
                                         "customer_email": "replica@example.com"})


def metrics_targets(shop):
    st, _, body = shop.get("/metrics", admin=True)
    text = body.decode() if isinstance(body, bytes) else ""
    out = {}
    for line in text.splitlines():
        if line.startswith("shop_pool_connections{"):
            labels = dict(kv.split("=", 1) for kv in line[line.index("{") + 1:line.index("}")].split(","))
            t, s = labels["target"].strip('"'), labels["state"].strip('"')
            out.setdefault(t, {})[s] = int(line.rsplit(" ", 1)[1])
    return st, out


def standby(o):
    shop = Shop(o.socket, open(o.token_file).read().strip())
    pdb = psql(o.primary, "SELECT current_database()")
    rdb = psql(o.replica, "SELECT current_database()")
    ok(psql(o.replica, "SELECT pg_is_in_recovery()") == "t", "the replica is a hot standby")

    st, _, p = shop.get("/products/1")
    ok(st == 200, "GET /products/1 is 200", st)
    name = p.get("name") if isinstance(p, dict) else None
    st, _, _ = shop.get("/products?limit=5")
    ok(st == 200, "GET /products is 200", st)
    st, _, _ = shop.get("/warehouses")
    ok(st == 200, "GET /warehouses is 200", st)
    st, _, chk = shop.send("POST", "/stock/check", {"items": [{"sku": "SKU-000001", "quantity": 1}]})
    ok(st == 200 and chk.get("complete") is True, "POST /stock/check is 200, complete", chk)
    before = chk.get("items", [{}])[0].get("by_warehouse", {}).get("north")

    on_replica, on_primary = apps(o.replica, rdb), apps(o.primary, pdb)
    ok(on_replica.get("shop-fcgi read", 0) >= 1, "the read pool is connected to the replica",
       on_replica)
    ok(on_replica.get("shop-fcgi stock", 0) >= 1,
       "the stock check asks the replica (no SHOP_WAREHOUSE_*_DATABASE)", on_replica)
    ok("shop-fcgi read" not in on_primary and "shop-fcgi stock" not in on_primary
       and on_primary.get("shop-fcgi", 0) >= 1,
       "the primary has the shop's pool and no read or stock connection", on_primary)

    # Replay paused: what the primary commits now, the replica does not show.
    psql(o.replica, "SELECT pg_wal_replay_pause()")
    try:
        st, _, p2 = shop.send("PATCH", "/products/1", {"name": "Renamed on the primary"}, admin=True)
        ok(st == 200 and p2.get("name") == "Renamed on the primary", "PATCH /products/1 is 200", (st, p2))
        ok(psql(o.primary, "SELECT name FROM shop.products WHERE id = 1") == "Renamed on the primary",
           "the PATCH went to the primary")
        st, _, p3 = shop.get("/products/1")
        ok(st == 200 and p3.get("name") == name,
           "GET /products/1 still shows the replica's (paused) name", (st, p3, name))
        st, _, _ = shop.send("PUT", "/warehouses/north/stock/SKU-000001", {"quantity": 4242}, admin=True)
        ok(st == 200, "PUT stock is 200 (primary)", st)
        st, _, chk = shop.send("POST", "/stock/check", {"items": [{"sku": "SKU-000001", "quantity": 1}]})
        got = chk.get("items", [{}])[0].get("by_warehouse", {}).get("north") if st == 200 else None
        ok(got == before and got != 4242, "the stock check reads the replica's (paused) stock",
           (st, got, before))
        st, _, od = order(shop)
        ok(st == 201, "POST /orders is 201 (the primary)", (st, od))
        st, _, od2 = shop.get("/orders/%s" % od.get("id")) if st == 201 else (None, None, None)
        ok(st == 200, "GET /orders/{id} of the new order is 200: orders are read from the primary",
           (st, od2))
        ok(psql(o.replica, "SELECT count(*) FROM shop.orders WHERE id = '%s'" % od.get("id")) == "0",
           "the paused replica does not have that order")
    finally:
        psql(o.replica, "SELECT pg_wal_replay_resume()")
    seen = None
    for _ in range(50):
        st, _, p4 = shop.get("/products/1")
        if st == 200 and p4.get("name") == "Renamed on the primary":
            seen = True
            break
        time.sleep(0.1)
    ok(seen, "once replay resumes, GET /products/1 shows the new name")

    st, targets = metrics_targets(shop)
    ok(st == 200 and {"primary", "read", "stock:read"} <= set(targets) and "stock:primary" not in targets,
       "metrics: pools primary, read and stock:read", targets)


def down(o):
    shop = Shop(o.socket, open(o.token_file).read().strip())
    t0 = time.monotonic()
    for path in ("/products/1", "/products?limit=3", "/warehouses"):
        st, hd, p = shop.get(path)
        ok(st == 503 and "retry-after" in hd and str(p.get("type", "")).endswith("/unavailable"),
           "read database down: GET %s is 503 unavailable with Retry-After" % path, (st, hd, p))
    st, hd, p = shop.send("POST", "/stock/check", {"items": [{"sku": "SKU-000001", "quantity": 1}]})
    ok(st == 503, "read database down: POST /stock/check is 503 (no warehouse answered)", (st, p))
    ok(time.monotonic() - t0 < 3, "those answers took %.0f ms (no hang)" % ((time.monotonic() - t0) * 1000))
    st, _, od = order(shop)
    ok(st == 201, "read database down: POST /orders is 201 (writes never use it)", (st, od))
    if st == 201:
        st, _, _ = shop.get("/orders/%s" % od["id"])
        ok(st == 200, "read database down: GET /orders/{id} is 200 (the primary)", st)
    st, _, _ = shop.send("PUT", "/warehouses/north/stock/SKU-000002", {"quantity": 7}, admin=True)
    ok(st == 200, "read database down: PUT stock is 200", st)
    st, _, _ = shop.get("/readyz")
    ok(st == 200, "read database down: /readyz is 200 (it asks the shop's database)", st)
    st, targets = metrics_targets(shop)
    ok(st == 200 and targets.get("read", {}).get("broken", 0) > 0
       and targets.get("primary", {}).get("broken") == 0,
       "metrics: the read pool's slots are broken, the primary's are not", targets)
    lines = [l for l in open(o.log, errors="replace") if "read database unavailable" in l]
    ok(len(lines) == 1 and '"level":"error"' in lines[0],
       "one error line says the read database is unavailable (not one per request)", lines)

    # The database appears: reads recover without a restart.
    subprocess.run(o.create, shell=True, check=True, stdout=subprocess.DEVNULL)
    t0 = time.monotonic()
    st = None
    while time.monotonic() - t0 < 10:
        st, _, _ = shop.get("/products/1")
        if st == 200:
            break
        time.sleep(0.05)
    ok(st == 200, "the read database came up: GET /products/1 is 200 after %.0f ms"
       % ((time.monotonic() - t0) * 1000), st)
    t0 = time.monotonic()
    chk = None
    while time.monotonic() - t0 < 10:
        st, _, chk = shop.send("POST", "/stock/check", {"items": [{"sku": "SKU-000001", "quantity": 1}]})
        if st == 200 and chk.get("complete"):
            break
        time.sleep(0.1)
    ok(st == 200 and chk.get("complete"), "and the stock check is complete again after %.0f ms"
       % ((time.monotonic() - t0) * 1000), (st, chk))
    lines = [l for l in open(o.log, errors="replace") if "read database is back" in l]
    ok(len(lines) == 1, "one log line says the read database is back", lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=("standby", "down"))
    ap.add_argument("--socket", required=True)
    ap.add_argument("--token-file", required=True)
    ap.add_argument("--primary", required=True)
    ap.add_argument("--replica")
    ap.add_argument("--log")
    ap.add_argument("--create")
    o = ap.parse_args()
    standby(o) if o.mode == "standby" else down(o)
    return TAP.done()


if __name__ == "__main__":
    sys.exit(main())
