#!/usr/bin/env python3
"""Reads on a streaming replica, writes on the primary (issue 7: scale-out).

    replica.py --front fcgi=URL [--front module=URL] [--skip NAME=REASON] \
               --dsn PRIMARY --replica-dsn REPLICA --token-file F

Each front-end is configured with the replica as its read database
(SHOP_READ_DATABASE_URL / shop_read_database). The replica's replay is
paused, then changes go through each front-end: a product renamed, a
warehouse created, a stock level set, an order placed. While it is paused:
  - the writes succeed (they went to the primary: the replica is read-only);
  - the order reads back at once (GET /orders/{id}: always the primary);
  - GET /products/{id}, the product list, GET /warehouses and the stock
    check still show the old data (they read the replica);
  - the replica has the shop's connections (pg_stat_activity).
Replay resumed, the same reads show the new data within 5 s. A front-end
that opens no connection to the replica at all (a build from before the
setting landed) is skipped, saying so.
"""
import argparse
import time

import opsload as L


# application_name of each front-end's connections
APP = {"fcgi": "shop-fcgi", "module": "shop-nginx"}


def wait_replayed(primary, replica, timeout=10):
    lsn = L.sql(primary, "SELECT pg_current_wal_lsn()")
    t_end = time.time() + timeout
    while time.time() < t_end:
        if L.sql(replica, "SELECT pg_last_wal_replay_lsn() >= '%s'::pg_lsn" % lsn) == "t":
            return True
        time.sleep(0.05)
    return False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--front", action="append", required=True)
    ap.add_argument("--skip", action="append", default=[])
    ap.add_argument("--dsn", required=True)
    ap.add_argument("--replica-dsn", required=True)
    ap.add_argument("--token-file", required=True)
    a = ap.parse_args()
    tap = L.Tap()
    auth = {"Authorization": "Bearer " + open(a.token_file).read().strip()}
    fronts = [L.Front(f) for f in a.front]
    for s in a.skip:
        name, _, why = s.partition("=")
        tap.skip("[%s] reads on the replica, writes on the primary" % name, why)

    tap.ok(L.sql(a.replica_dsn, "SELECT pg_is_in_recovery()") == "t" and wait_replayed(a.dsn, a.replica_dsn),
           "the replica is a streaming standby, caught up with the primary")

    for i, f in enumerate(fronts):
        # A front-end that never connects to the replica does not know the
        # setting yet (HEAD before it landed): skipped, saying so.
        app = APP.get(f.name, f.name)
        for path in ("/products/1", "/warehouses"):
            L.call(f, "GET", path)
        L.call(f, "POST", "/stock/check", {"items": [{"sku": "SKU-000001", "quantity": 1}]})
        n = int(L.sql(a.replica_dsn, "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE '%s%%'" % app))
        if n == 0:
            tap.skip("[%s] reads on the replica, writes on the primary" % f.name,
                     "this build of %s opens no connection to the read database (application_name %s*): "
                     "the read_database setting has not landed in it" % (f.name, app))
            continue
        pid, sku = 7 + i, "SKU-%06d" % (7 + i)
        wh = "ops-%s" % f.name
        old = L.call(f, "GET", "/products/%d" % pid)[2]["name"]
        old_qty = int(L.sql(a.dsn, "SELECT quantity FROM shop.stock s WHERE s.product_id = %d AND warehouse = 'north'"
                            % pid))
        new_name, new_qty = "Replica test %s" % f.name, old_qty + 4242
        L.sql(a.replica_dsn, "SELECT pg_wal_replay_pause()")
        paused = False
        for _ in range(100):
            if L.sql(a.replica_dsn, "SELECT pg_get_wal_replay_pause_state()") == "paused":
                paused = True
                break
            time.sleep(0.05)
        tap.ok(paused, "[%s] the replica's replay is paused" % f.name)

        # Writes: the primary takes them while the replica cannot.
        w = {
            "PATCH product": L.call(f, "PATCH", "/products/%d" % pid, {"name": new_name}, auth),
            "PUT warehouse": L.call(f, "PUT", "/warehouses/" + wh, {"name": "Ops " + f.name}, auth),
            "PUT stock": L.call(f, "PUT", "/warehouses/north/stock/" + sku, {"quantity": new_qty}, auth),
            "POST order": L.call(f, "POST", "/orders", {"items": [{"sku": "SKU-000001", "quantity": 1}],
                                                        "customer_email": "replica@example.com"}),
        }
        want = {"PATCH product": 200, "PUT warehouse": 201, "PUT stock": 200, "POST order": 201}
        tap.ok(all(w[k][0] == want[k] for k in want),
               "[%s] writes succeed with the replica paused (they go to the primary): %s"
               % (f.name, ", ".join("%s %s" % (k, w[k][0]) for k in want)),
               ["%s: %s %s" % (k, w[k][0], w[k][2]) for k in want if w[k][0] != want[k]])
        oid = w["POST order"][2].get("id") if isinstance(w["POST order"][2], dict) else None
        st, _, doc = L.call(f, "GET", "/orders/%s" % oid) if oid else (None, None, None)
        tap.ok(st == 200, "[%s] the new order reads back at once (GET /orders/{id} reads the primary): %s"
               % (f.name, st), doc)

        # Reads: still the replica's (old) data.
        def reads():
            p = L.call(f, "GET", "/products/%d" % pid)[2]
            lst = L.call(f, "GET", "/products?q=%s&limit=5" % sku)[2]
            whs = L.call(f, "GET", "/warehouses")[2]
            chk = L.call(f, "POST", "/stock/check", {"items": [{"sku": sku, "quantity": 1}]})[2]
            return {
                "product": p.get("name") if isinstance(p, dict) else p,
                "list": [x.get("name") for x in lst.get("items", [])] if isinstance(lst, dict) else lst,
                "warehouses": sorted(x.get("code") for x in whs.get("items", [])) if isinstance(whs, dict) else whs,
                "stock": (chk.get("items") or [{}])[0].get("by_warehouse", {}).get("north")
                if isinstance(chk, dict) else chk,
            }
        r = reads()
        stale = (r["product"] == old and r["list"] == [old] and wh not in (r["warehouses"] or [])
                 and r["stock"] == old_qty)
        tap.ok(stale, "[%s] with replay paused, GET product, the list, GET /warehouses and the stock check show "
                      "the replica's data (name %r, north %s, %d warehouses)"
               % (f.name, r["product"], r["stock"], len(r["warehouses"] or [])),
               ["got %s" % r, "the primary has name %r, north %d, warehouse %s" % (new_name, new_qty, wh)])
        conns = L.sql(a.replica_dsn, "SELECT coalesce(string_agg(application_name || ' x' || n, ', '), '') FROM "
                                     "(SELECT application_name, count(*) AS n FROM pg_stat_activity "
                                     "WHERE datname = 'shop' AND backend_type = 'client backend' "
                                     "AND pid <> pg_backend_pid() GROUP BY 1 ORDER BY 1) x")
        tap.note("[%s] the replica's client connections: %s" % (f.name, conns or "none"))

        L.sql(a.replica_dsn, "SELECT pg_wal_replay_resume()")
        caught = wait_replayed(a.dsn, a.replica_dsn)
        t_end, r = time.time() + 5, None
        while time.time() < t_end:
            r = reads()
            if (r["product"] == new_name and r["list"] == [new_name] and wh in (r["warehouses"] or [])
                    and r["stock"] == new_qty):
                break
            time.sleep(0.1)
        fresh = r["product"] == new_name and wh in (r["warehouses"] or []) and r["stock"] == new_qty
        tap.ok(caught and fresh, "[%s] replay resumed: the same reads show the new data" % f.name,
               ["replayed: %s, got %s" % (caught, r)])
    return tap.done()


if __name__ == "__main__":
    raise SystemExit(main())
